//! Outbound requests under the rules of `crate::outbound` (address guard, timeouts, size cap):
//! HTTPS GETs of client documents, each on a short-lived thread of its own so a slow peer never
//! holds a worker or the PBKDF2 pool (at most `MAX_IN_FLIGHT` at once), and the blocking
//! exchange the back-channel logout senders use on their own threads.
//!
//! Invariants: https only, certificates verified against the Mozilla roots (plus the PEM file
//! named by `SSL_CERT_FILE`, as Go's TLS stack and so Hydra honour it); the connection goes to
//! the address the guard judged; redirects are not followed; only a `200` with a body within the
//! cap is returned; nothing fetched is logged.

use crate::outbound::{pick, web_target, Target, DEADLINE, MAX_RESPONSE_BYTES, TIMEOUT};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Fetches running at once; more are refused (the caller answers 503).
const MAX_IN_FLIGHT: usize = 16;
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn roots() -> Arc<rustls::RootCertStore> {
    static ROOTS: OnceLock<Arc<rustls::RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut r = rustls::RootCertStore::empty();
            r.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            if let Some(path) = std::env::var_os("SSL_CERT_FILE") {
                use rustls::pki_types::pem::PemObject;
                if let Ok(certs) = rustls::pki_types::CertificateDer::pem_file_iter(&path) {
                    for c in certs.flatten() {
                        let _ = r.add(c);
                    }
                }
            }
            Arc::new(r)
        })
        .clone()
}

/// One outbound request: GET, POST with a form body, or DELETE with extra headers.
pub enum Method<'a> {
    Get,
    PostForm(&'a [u8]),
    Delete(&'a [(String, String)]),
}

/// Sends one request and returns the raw answer (head and body, within the cap). Blocking: run
/// it on a thread of its own. `allow_http` admits plain `http` URLs (`--dev` only).
pub fn exchange_blocking(url: &str, method: Method, allow_private: bool, allow_http: bool) -> Result<Vec<u8>, String> {
    let t = web_target(url, allow_http)?;
    let deadline = Instant::now() + DEADLINE;
    let sock = Bounded { sock: connect(&t, allow_private)?, deadline };
    let host = host_header(&t);
    let mut req = match method {
        Method::Get => format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: hydra-rs\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
            t.path_and_query
        )
        .into_bytes(),
        Method::Delete(headers) => {
            let mut r = format!("DELETE {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: hydra-rs\r\n", t.path_and_query);
            for (k, v) in headers {
                r.push_str(&format!("{k}: {v}\r\n"));
            }
            r.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
            r.into_bytes()
        }
        Method::PostForm(body) => {
            let mut r = format!(
                "POST {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: hydra-rs\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                t.path_and_query,
                body.len()
            )
            .into_bytes();
            r.extend_from_slice(body);
            r
        }
    };
    if !t.tls {
        let mut sock = sock;
        sock.write_all(&req).map_err(|e| format!("write failed: {e}"))?;
        req.clear();
        return read_answer(&mut sock);
    }
    let mut tls = rustls::StreamOwned::new(tls_client(&t.host)?, sock);
    tls.write_all(&req).map_err(|e| format!("TLS or write failed: {e}"))?;
    read_answer(&mut tls)
}

/// The `Host` field of a request to `t`: the port too unless it is the scheme's default (RFC 9112
/// §3.2; as Go's client, so Hydra), IPv6 literals in brackets.
pub(crate) fn host_header(t: &Target) -> String {
    let host = if t.host.contains(':') { format!("[{}]", t.host) } else { t.host.clone() };
    let default = if t.tls { 443 } else { 80 };
    if t.port == default {
        host
    } else {
        format!("{host}:{}", t.port)
    }
}

/// A connection whose every read and write, the TLS handshake's included, waits at most the
/// outbound timeout and never past its deadline: a peer that trickles bytes (a handshake a byte
/// at a time) cannot stretch a request, or hold one of the few outbound slots, past `DEADLINE`.
pub(crate) struct Bounded {
    pub(crate) sock: TcpStream,
    pub(crate) deadline: Instant,
}

impl Bounded {
    fn arm(&self) -> std::io::Result<()> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the outbound deadline passed"));
        }
        let t = Some(left.min(TIMEOUT));
        self.sock.set_read_timeout(t)?;
        self.sock.set_write_timeout(t)
    }
}

impl Read for Bounded {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.arm()?;
        self.sock.read(buf)
    }
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.arm()?;
        self.sock.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.sock.flush()
    }
}

/// Connects to a target under the outbound rules: its host resolved, every address judged, the
/// connection made to the address judged (no second lookup), with the timeouts set.
pub(crate) fn connect(t: &Target, allow_private: bool) -> Result<TcpStream, String> {
    let addrs: Vec<_> =
        (t.host.as_str(), t.port).to_socket_addrs().map_err(|e| format!("cannot resolve {}: {e}", t.host))?.collect();
    let addr = pick(&addrs, allow_private)?;
    let sock = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    sock.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    sock.set_write_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    Ok(sock)
}

/// A TLS client session for `host`, verified against the roots (`roots`).
pub(crate) fn tls_client(host: &str) -> Result<rustls::ClientConnection, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|_| "bad host name".to_string())?;
    rustls::ClientConnection::new(Arc::new(cfg), name).map_err(|e| e.to_string())
}

/// Reads until the peer closes, within the size cap (the deadline is the connection's, `Bounded`).
fn read_answer(r: &mut dyn Read) -> Result<Vec<u8>, String> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if raw.len() > MAX_RESPONSE_BYTES {
                    return Err(format!("the answer is larger than {MAX_RESPONSE_BYTES} bytes"));
                }
            }
            // A peer that closes without close_notify after a complete answer is common.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => break,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) => {
                return Err("the peer took too long to answer".into())
            }
            Err(e) => return Err(format!("reading the answer failed: {e}")),
        }
    }
    Ok(raw)
}

/// The status of an answer's head.
pub fn status_of(raw: &[u8]) -> Result<u16, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(raw) {
        Ok(httparse::Status::Complete(_)) => resp.code.ok_or_else(|| "the answer has no status".into()),
        _ => Err("the answer is not valid HTTP".into()),
    }
}

/// GETs `url` and returns the body of a `200` answer. Blocking: call [`fetch`] from a worker.
fn get_blocking(url: &str, allow_private: bool) -> Result<Vec<u8>, String> {
    parse_response(&exchange_blocking(url, Method::Get, allow_private, false)?)
}

/// The body of a complete `200` answer (Content-Length, chunked, or until close).
fn parse_response(raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return Err("the answer is not valid HTTP".into()),
    };
    match resp.code {
        Some(200) => {}
        Some(c) => return Err(format!("the answer's status is {c}, not 200 (redirects are not followed)")),
        None => return Err("the answer has no status".into()),
    }
    let header = |name: &str| resp.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value);
    let body = &raw[head_len..];
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case(b"chunked")) {
        let mut d = crate::http::body::ChunkedDecoder::new(MAX_RESPONSE_BYTES);
        let mut out = Vec::new();
        return match d.feed(body, &mut out) {
            Ok((_, crate::http::body::ChunkedProgress::Done)) => Ok(out),
            _ => Err("the chunked answer is incomplete or malformed".into()),
        };
    }
    match header("content-length").and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok()) {
        Some(n) if body.len() >= n => Ok(body[..n].to_vec()),
        Some(_) => Err("the answer was cut short".into()),
        None => Ok(body.to_vec()),
    }
}

/// GETs `url` on a thread of its own and resolves with the body of a `200` answer.
pub async fn fetch(url: &str, allow_private: bool) -> Result<Vec<u8>, String> {
    if IN_FLIGHT.fetch_add(1, Ordering::SeqCst) >= MAX_IN_FLIGHT {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        return Err("too many outbound requests in flight; retry later".into());
    }
    let (tx, rx) = futures_channel::oneshot::channel();
    let url = url.to_string();
    let spawned = std::thread::Builder::new().name("outbound".into()).spawn(move || {
        let r = get_blocking(&url, allow_private);
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        let _ = tx.send(r);
    });
    if spawned.is_err() {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        return Err("cannot start the outbound request".into());
    }
    rx.await.unwrap_or_else(|_| Err("the outbound request was lost".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_fields_name_the_port_unless_it_is_the_default() {
        let h = |url: &str| host_header(&crate::outbound::web_target(url, true).unwrap());
        assert_eq!(h("https://hook.example/x"), "hook.example");
        assert_eq!(h("https://hook.example:443/x"), "hook.example");
        assert_eq!(h("https://hook.example:8443/x"), "hook.example:8443");
        assert_eq!(h("http://127.0.0.1:15601/x"), "127.0.0.1:15601");
        assert_eq!(h("http://hook.example/x"), "hook.example");
        assert_eq!(h("https://[::1]:9443/x"), "[::1]:9443");
    }

    #[test]
    fn answers_are_parsed_strictly() {
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]xx").unwrap(), b"[]");
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\n\r\n[1]").unwrap(), b"[1]");
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n[]\r\n0\r\n\r\n").unwrap(),
            b"[]"
        );
        assert!(parse_response(b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1/\r\n\r\n")
            .unwrap_err()
            .contains("302"));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n[]").is_err());
        assert!(parse_response(b"garbage").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n[]").is_err());
    }
}
