//! Outbound requests (the `sector_identifier_uri` document fetched at client registration):
//! private, loopback and metadata addresses are refused before any connection unless
//! `clients.http.disallow_private_ip_ranges` is off; with it off, the document is fetched over
//! verified TLS, must list every redirect URI, and oversized, redirected, slow or untrusted
//! answers are refused with `invalid_client_metadata`.

use crate::harness::*;
use crate::tls::make_pki;
use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A TLS server on 127.0.0.1 answering by path; counts the connections it accepts.
pub struct Peer {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
}

/// A TLS server on 127.0.0.1 that answers each request with `answer(path)` (a whole HTTP
/// response); counts the connections it accepts. Shared with the other outbound tests.
pub fn tls_peer(cert_pem: &str, key_pem: &str, answer: impl Fn(&str) -> String + Send + Sync + 'static) -> Peer {
    use rustls::pki_types::pem::PemObject;
    let chain: Vec<_> =
        rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<_, _>>().unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(sock) = sock else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            let (cfg, answer) = (cfg.clone(), answer.clone());
            std::thread::spawn(move || {
                let _ = sock.set_read_timeout(Some(Duration::from_secs(10)));
                let conn = rustls::ServerConnection::new(cfg).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, sock);
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    match tls.read(&mut b) {
                        Ok(1) => head.push(b[0]),
                        _ => return,
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                let _ = tls.write_all(answer(&path).as_bytes());
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    Peer { addr, connections }
}

/// A `200 OK` answer with `body`.
pub fn ok(body: &str) -> String {
    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len())
}

/// The CA of `pki` as a PEM file in `dir`, for the server's `SSL_CERT_FILE`.
pub fn ca_file(pki: &crate::tls::Pki, dir: &std::path::Path) -> std::path::PathBuf {
    let ca = dir.join("ca.pem");
    let ca_pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pki.ca.as_ref())
    );
    std::fs::write(&ca, ca_pem).unwrap();
    ca
}

fn peer(cert_pem: &str, key_pem: &str) -> Peer {
    tls_peer(cert_pem, key_pem, |path| match path {
        "/ok.json" => ok(r#"["https://a.example/cb","https://b.example/cb"]"#),
        "/partial.json" => ok(r#"["https://a.example/cb"]"#),
        "/big.json" => ok(&format!("[{}\"x\"]", "\"https://a.example/cb\",".repeat(4000))),
        "/redirect.json" => {
            "HTTP/1.1 302 Found\r\nLocation: https://127.0.0.1/ok.json\r\nContent-Length: 0\r\n\r\n".into()
        }
        "/slow.json" => {
            std::thread::sleep(Duration::from_secs(8));
            ok("[]")
        }
        _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".into(),
    })
}

fn register_req(sector: &str) -> Req {
    Req::new("POST", "/admin/clients").json(&json!({
        "client_id": uniq("sector"),
        "client_secret": "a-secret-of-some-length",
        "redirect_uris": ["https://a.example/cb", "https://b.example/cb"],
        "subject_type": "public",
        "sector_identifier_uri": sector,
    }))
}

fn register(s: &Server, sector: &str) -> Response {
    register_req(sector).send(s.admin)
}

#[test]
fn private_and_loopback_addresses_are_refused_before_connecting() {
    let pki = make_pki();
    let p = peer(&pki.cert_pem, &pki.key_pem);
    let s = Opts::new("legacy").start();
    for url in [
        format!("https://127.0.0.1:{}/ok.json", p.addr.port()),
        format!("https://localhost:{}/ok.json", p.addr.port()),
        format!("https://[::ffff:127.0.0.1]:{}/ok.json", p.addr.port()),
        "https://169.254.169.254/latest/meta-data/".to_string(),
        "https://10.0.0.1/s.json".to_string(),
    ] {
        let r = register(&s, &url);
        let body = r.expect_error(400, "invalid_client_metadata");
        assert!(body.to_string().contains("disallow_private_ip_ranges"), "{url}: {body}");
        // Where the name resolved is not told (localhost must not leak 127.0.0.1 or ::1).
        let text = body["error_description"].as_str().unwrap_or("");
        assert!(!text.contains("resolves to"), "{url}: {text}");
        if url.contains("localhost") {
            assert!(!text.contains("127.0.0.1") && !text.contains("::1"), "{url}: {text}");
        }
    }
    assert_eq!(p.connections.load(Ordering::SeqCst), 0, "a refused address was connected to");
    s.stop();
}

#[test]
fn sector_documents_are_fetched_verified_bounded_and_checked() {
    let pki = make_pki();
    let p = peer(&pki.cert_pem, &pki.key_pem);
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(&pki, dir.path());
    let base = format!("https://127.0.0.1:{}", p.addr.port());
    let s = Opts::new("legacy")
        .env("CLIENTS_HTTP_DISALLOW_PRIVATE_IP_RANGES", "false")
        .env("SSL_CERT_FILE", ca.to_str().unwrap())
        .start();
    let r = register(&s, &format!("{base}/ok.json"));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["sector_identifier_uri"], format!("{base}/ok.json"));
    for (path, want) in [
        ("/partial.json", "https://b.example/cb"),
        ("/big.json", "larger than"),
        ("/redirect.json", "302"),
        ("/missing.json", "404"),
    ] {
        let body = register(&s, &format!("{base}{path}")).expect_error(400, "invalid_client_metadata");
        assert!(body.to_string().contains(want), "{path}: {body}");
    }
    let t0 = Instant::now();
    let body = register(&s, &format!("{base}/slow.json")).expect_error(400, "invalid_client_metadata");
    assert!(t0.elapsed() < Duration::from_secs(8), "the timeout did not cut a slow peer: {:?}", t0.elapsed());
    assert!(body.to_string().contains("sector_identifier_uri"), "{body}");
    s.stop();

    // Without the test CA the same peer is not trusted.
    let s = Opts::new("legacy").env("CLIENTS_HTTP_DISALLOW_PRIVATE_IP_RANGES", "false").start();
    let body = register(&s, &format!("{base}/ok.json")).expect_error(400, "invalid_client_metadata");
    assert!(body.to_string().to_lowercase().contains("certificate"), "{body}");
    s.stop();
}

/// A peer that answers the TLS handshake a byte at a time (a valid record header announcing a
/// 16 KiB handshake record, then one byte a second) never makes a single read wait the 5 s
/// timeout, so only the whole request's 10 s deadline can cut it: it does, and the outbound slot
/// is free again.
#[test]
fn a_handshake_trickled_byte_by_byte_is_cut_at_the_deadline() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            std::thread::spawn(move || {
                use std::io::Write;
                let mut header = [0x16u8, 0x03, 0x03, 0x40, 0x00].into_iter();
                loop {
                    let b = header.next().unwrap_or(0x00);
                    if c.write_all(&[b]).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            });
        }
    });
    let s = Opts::new("legacy").env("CLIENTS_HTTP_DISALLOW_PRIVATE_IP_RANGES", "false").start();
    let t0 = Instant::now();
    // The answer takes the whole 10 s deadline: read it with a longer timeout than the harness's.
    let mut conn = Conn::open(s.admin);
    conn.set_timeout(Duration::from_secs(30));
    conn.send(&register_req(&format!("https://127.0.0.1:{port}/s.json")).bytes(true));
    let r = conn.response();
    let body = r.expect_error(400, "invalid_client_metadata");
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(14), "the trickled handshake held the request for {took:?}: {body}");
    assert!(took >= Duration::from_secs(9), "cut before the deadline ({took:?}): {body}");
    s.stop();
}
