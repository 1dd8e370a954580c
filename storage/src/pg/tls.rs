//! TLS to PostgreSQL with rustls, for monoio's poll-io streams (the published adapters need
//! `Send` streams, which these are not). What a certificate must pass follows `sslmode`.

use crate::pg::TlsMode;
use crate::StoreError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error as TlsError, SignatureScheme};
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

type Inner = tokio_rustls::client::TlsStream<monoio::net::tcp::stream_poll::TcpStreamPoll>;

/// Makes the TLS session of one connection.
pub(crate) struct Connector {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

fn failed(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(format!("PostgreSQL TLS: {what}: {e}"))
}

impl Connector {
    pub(crate) fn new(mode: TlsMode, root_cert: Option<&Path>, host: &str) -> Result<Connector, StoreError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| failed("configuration", e))?;
        // libpq: `require` with a root certificate checks the chain, as `verify-ca`.
        let mode = if mode == TlsMode::Require && root_cert.is_some() { TlsMode::VerifyCa } else { mode };
        let webpki = match mode {
            TlsMode::Require | TlsMode::Disable => None,
            TlsMode::VerifyCa | TlsMode::VerifyFull => {
                let mut roots = rustls::RootCertStore::empty();
                match root_cert {
                    Some(path) => {
                        let certs = CertificateDer::pem_file_iter(path)
                            .map_err(|e| failed(&format!("cannot read sslrootcert {}", path.display()), e))?;
                        for cert in certs {
                            let cert = cert.map_err(|e| failed(&format!("sslrootcert {}", path.display()), e))?;
                            roots.add(cert).map_err(|e| failed(&format!("sslrootcert {}", path.display()), e))?;
                        }
                        if roots.is_empty() {
                            return Err(failed("sslrootcert holds no certificate", path.display()));
                        }
                    }
                    None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
                }
                Some(
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| failed("verifier", e))?,
                )
            }
        };
        let verifier = Arc::new(Verifier { mode, webpki, provider });
        let config = builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth();
        let name = ServerName::try_from(host.to_string()).map_err(|e| failed("host name", e))?;
        Ok(Connector { config: Arc::new(config), name })
    }
}

impl tokio_postgres::tls::TlsConnect<monoio::net::tcp::stream_poll::TcpStreamPoll> for Connector {
    type Stream = Stream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Stream>>>>;

    fn connect(self, stream: monoio::net::tcp::stream_poll::TcpStreamPoll) -> Self::Future {
        let connector = tokio_rustls::TlsConnector::from(self.config);
        Box::pin(async move { connector.connect(self.name, stream).await.map(Stream) })
    }
}

/// A TLS session over a poll-io stream.
pub(crate) struct Stream(Inner);

impl AsyncRead for Stream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl tokio_postgres::tls::TlsStream for Stream {
    fn channel_binding(&self) -> tokio_postgres::tls::ChannelBinding {
        // SCRAM then runs without channel binding (the driver's default is to prefer it).
        tokio_postgres::tls::ChannelBinding::none()
    }
}

/// What a server certificate must pass, per `sslmode`: `require` (without a root certificate)
/// nothing, as libpq (encrypted, not authenticated); `verify-ca` a valid chain, any name;
/// `verify-full` a valid chain and the host's name. The handshake's signatures are verified in
/// every mode.
#[derive(Debug)]
struct Verifier {
    mode: TlsMode,
    /// The chain check (`verify-ca`, `verify-full`).
    webpki: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        let Some(webpki) = &self.webpki else { return Ok(ServerCertVerified::assertion()) };
        match webpki.verify_server_cert(end_entity, intermediates, name, ocsp, now) {
            Err(TlsError::InvalidCertificate(CertificateError::NotValidForName))
            | Err(TlsError::InvalidCertificate(CertificateError::NotValidForNameContext { .. }))
                if self.mode == TlsMode::VerifyCa =>
            {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
