//! TLS for the listeners: the configured certificate chain and private key (PEM, by path or
//! base64, as Hydra's `serve.tls` takes them) become one rustls server configuration per API.
//!
//! Invariants: the configuration is built once at start-up, so a bad certificate or key stops
//! the start with a message naming the setting, never the first client; TLS 1.2 and 1.3 only,
//! with rustls' ring provider and its default (forward-secret, AEAD) suites; ALPN offers
//! `http/1.1` only, the one protocol served; key material never reaches a log or an error.

use crate::config::{PemSource, TlsFiles};
use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

fn read_pem(src: &PemSource, what: &str) -> Result<Vec<u8>, String> {
    match src {
        PemSource::Path(p) => std::fs::read(p).map_err(|e| format!("cannot read the TLS {what} {}: {e}", p.display())),
        PemSource::Base64(b) => {
            let compact: String = b.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact.as_bytes())
                .map_err(|_| format!("the TLS {what} is not valid base64"))
        }
    }
}

/// Builds the rustls configuration of one listener.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, String> {
    let cert_pem = read_pem(&files.cert, "certificate")?;
    let key_pem = read_pem(&files.key, "private key")?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|_| "the TLS certificate is not valid PEM".to_string())?;
    if chain.is_empty() {
        return Err("the TLS certificate file holds no CERTIFICATE block".into());
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| "the TLS private key holds no readable PEM private key".to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the TLS certificate and private key do not fit together: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_sources_are_refused_with_a_named_reason() {
        let b64 = |s: &str| PemSource::Base64(base64::engine::general_purpose::STANDARD.encode(s));
        let files = |cert, key| TlsFiles { cert, key };
        let e = server_config(&files(PemSource::Base64("%%%".into()), b64("x"))).unwrap_err();
        assert!(e.contains("not valid base64"), "{e}");
        let e = server_config(&files(b64("no pem here"), b64("x"))).unwrap_err();
        assert!(e.contains("no CERTIFICATE"), "{e}");
        let e = server_config(&files(PemSource::Path("/nonexistent/cert.pem".into()), b64("x"))).unwrap_err();
        assert!(e.contains("cannot read the TLS certificate"), "{e}");
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let e = server_config(&files(b64(cert), b64("nothing"))).unwrap_err();
        assert!(e.contains("private key"), "{e}");
    }
}
