//! TLS on the listeners, spoken to by a real TLS client (rustls, verifying the chain against a
//! CA made for the test): shared `serve.tls` by path, per-API `serve.<api>.tls` by base64, both
//! protocol versions, ALPN, https URLs in discovery, plain HTTP refused on a TLS port, a
//! stalled handshake cut at the header timeout, and bad settings refused at start.

use crate::harness::*;
use base64::Engine;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) struct Pki {
    pub(crate) ca: CertificateDer<'static>,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

/// A CA and a server certificate it signed, for `localhost` and 127.0.0.1.
pub(crate) fn make_pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "hydra-rs test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    Pki { ca: ca.der().clone(), cert_pem: cert.pem(), key_pem: key.serialize_pem() }
}

fn client_config(
    ca: &CertificateDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut c = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}

struct TlsReply {
    status: u16,
    body: String,
    version: Option<rustls::ProtocolVersion>,
    alpn: Option<Vec<u8>>,
}

/// One request over a fresh TLS connection (`Connection: close`, read to the end).
fn tls_request(addr: SocketAddr, cfg: &Arc<rustls::ClientConfig>, req: &Req) -> std::io::Result<TlsReply> {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(cfg.clone(), name).unwrap();
    let sock = TcpStream::connect(addr)?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(&req.bytes(true))?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // The server closes after the answer without a close_notify when it must; what was read counts.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok(TlsReply {
        status,
        body,
        version: tls.conn.protocol_version(),
        alpn: tls.conn.alpn_protocol().map(<[u8]>::to_vec),
    })
}

const BOTH: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

#[test]
fn shared_tls_by_path_serves_both_apis_over_tls_only() {
    let pki = make_pki();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, &pki.cert_pem).unwrap();
    std::fs::write(&key, &pki.key_pem).unwrap();
    let s = Opts::new("legacy")
        .env("SERVE_TLS_CERT_PATH", cert.to_str().unwrap())
        .env("SERVE_TLS_KEY_PATH", key.to_str().unwrap())
        .env("ENGINE_HEADER_TIMEOUT", "1s")
        .start();
    assert!(s.log().contains("tls=true"), "{}", s.log());
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let cfg = client_config(&pki.ca, &[version]);
        let r = tls_request(s.public, &cfg, &Req::get("/health/alive")).unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.version, Some(version.version));
        assert_eq!(r.alpn.as_deref(), Some(&b"http/1.1"[..]));
    }
    let cfg = client_config(&pki.ca, BOTH);
    // The admin API is on TLS too: create a client over it, then get a token on the public one.
    let body = serde_json::json!({"client_id": "tls-client", "client_secret": "tls-secret-123456",
        "grant_types": ["client_credentials"]});
    let r = tls_request(s.admin, &cfg, &Req::new("POST", "/admin/clients").json(&body)).unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let r = tls_request(s.public, &cfg, &token_req("tls-client", "tls-secret-123456", &[])).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("\"access_token\":\"ory_at_"), "{}", r.body);
    // URLs derived from a TLS listener are https.
    let r = tls_request(s.public, &cfg, &Req::get("/.well-known/openid-configuration")).unwrap();
    let d: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert!(d["issuer"].as_str().unwrap().starts_with("https://127.0.0.1:"), "{d}");
    // Plain HTTP on a TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(s.public).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    plain.write_all(b"GET /health/alive HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(!String::from_utf8_lossy(&got).contains("HTTP/1.1 200"), "{got:?}");
    // A client trusting another CA refuses the server.
    let stranger = make_pki();
    assert!(tls_request(s.public, &client_config(&stranger.ca, BOTH), &Req::get("/health/alive")).is_err());
    // A connection that never starts its handshake is closed at the header timeout.
    let mut idle = TcpStream::connect(s.public).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t0 = Instant::now();
    let n = idle.read(&mut [0u8; 16]).unwrap_or(0);
    assert_eq!(n, 0);
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    // And the server still serves.
    assert_eq!(tls_request(s.public, &cfg, &Req::get("/health/ready")).unwrap().status, 200);
    s.stop();
}

#[test]
fn per_api_tls_by_base64_leaves_the_other_api_plain() {
    let pki = make_pki();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let s = Opts::new("legacy")
        .env("SERVE_PUBLIC_TLS_CERT_BASE64", &b64(&pki.cert_pem))
        .env("SERVE_PUBLIC_TLS_KEY_BASE64", &b64(&pki.key_pem))
        .start();
    let cfg = client_config(&pki.ca, BOTH);
    assert_eq!(tls_request(s.public, &cfg, &Req::get("/health/alive")).unwrap().status, 200);
    Req::get("/health/alive").send(s.admin).expect(200);
    // `enabled: false` on the admin API wins over a shared certificate.
    s.stop();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert, &pki.cert_pem).unwrap();
    std::fs::write(&key, &pki.key_pem).unwrap();
    let s = Opts::new("legacy")
        .env("SERVE_TLS_CERT_PATH", cert.to_str().unwrap())
        .env("SERVE_TLS_KEY_PATH", key.to_str().unwrap())
        .env("SERVE_ADMIN_TLS_ENABLED", "false")
        .start();
    assert_eq!(tls_request(s.public, &cfg, &Req::get("/health/alive")).unwrap().status, 200);
    Req::get("/health/alive").send(s.admin).expect(200);
    s.stop();
}

#[test]
fn bad_tls_settings_stop_the_start_with_a_named_reason() {
    let pki = make_pki();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("c.pem");
    std::fs::write(&cert, &pki.cert_pem).unwrap();
    let other = make_pki();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![("SERVE_TLS_CERT_PATH", cert.display().to_string())], "serve.tls.key"),
        (vec![("SERVE_PUBLIC_TLS_ENABLED", "true".into())], "serve.public.tls.enabled"),
        (
            vec![("SERVE_TLS_CERT_PATH", cert.display().to_string()), ("SERVE_TLS_KEY_BASE64", "not base64!".into())],
            "not valid base64",
        ),
        (
            vec![("SERVE_TLS_CERT_PATH", cert.display().to_string()), ("SERVE_TLS_KEY_BASE64", b64(&other.key_pem))],
            "do not fit together",
        ),
        (
            vec![
                ("SERVE_TLS_CERT_PATH", cert.display().to_string()),
                ("SERVE_TLS_CERT_BASE64", b64(&pki.cert_pem)),
                ("SERVE_TLS_KEY_BASE64", b64(&pki.key_pem)),
            ],
            "either path or base64",
        ),
    ];
    for (env, want) in cases {
        let mut o = Opts::new("legacy");
        for (k, v) in &env {
            o = o.env(k, v);
        }
        let (code, err) = run_to_exit(o.command());
        assert_eq!(code, Some(1), "{env:?}: {err}");
        assert!(err.contains(want), "{env:?}: want {want:?} in {err}");
        assert!(!err.contains("PRIVATE KEY"), "key material in an error: {err}");
    }
}
