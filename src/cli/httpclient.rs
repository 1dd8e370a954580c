//! The CLI's HTTP client: ureq (blocking; rustls with ring) for `http://` and `https://`
//! endpoints.
//!
//! Invariants: TLS certificates are verified against Mozilla's roots, or the PEM bundle named by
//! `SSL_CERT_FILE` when it is set (as Go's TLS does), unless `--skip-tls-verify` asks for no
//! verification at all; redirects are never followed (an admin answer is data); every answer,
//! whatever its status, comes back as a [`Response`]; a request has 30 s in all; a body larger
//! than 16 MiB is an error.

use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);
const MAX_BODY_BYTES: u64 = 16 << 20;

/// How to connect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// `--skip-tls-verify`: accept any certificate (for development servers only).
    pub skip_tls_verify: bool,
}

/// A parsed HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// All values of headers with this name (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }
}

/// Components of an endpoint URL (checked before any request is made).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    /// Host as written in the URL (IPv6 literals keep their brackets).
    pub host: String,
    pub port: u16,
    /// Whether the port was given explicitly.
    pub explicit_port: bool,
    /// Path plus query, always starting with `/`.
    pub path_and_query: String,
}

/// Parses an `http://` or `https://` URL.
pub fn parse_url(url: &str) -> Result<Url, String> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| "URL must start with http:// or https://".to_string())?;
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        443
    } else if scheme.eq_ignore_ascii_case("http") {
        80
    } else {
        return Err(format!("unsupported URL scheme {scheme:?}; use http:// or https://"));
    };
    let rest = rest.split('#').next().unwrap_or("");
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..auth_end];
    let tail = &rest[auth_end..];
    if authority.contains('@') {
        return Err("credentials in the endpoint URL are not supported".to_string());
    }
    let (host, port_str) = if let Some(after) = authority.strip_prefix('[') {
        let close = after.find(']').ok_or_else(|| "invalid IPv6 literal in URL".to_string())?;
        let host = &authority[..close + 2];
        let remainder = &after[close + 1..];
        let port = match remainder {
            "" => None,
            r => Some(r.strip_prefix(':').ok_or_else(|| "invalid characters after IPv6 literal in URL".to_string())?),
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err("URL has no host".to_string());
    }
    let (port, explicit_port) = match port_str {
        None | Some("") => (default_port, false),
        Some(p) => (p.parse::<u16>().map_err(|_| format!("invalid port {p:?} in URL"))?, true),
    };
    let path_and_query = if tail.is_empty() {
        "/".to_string()
    } else if tail.starts_with('?') {
        format!("/{tail}")
    } else {
        tail.to_string()
    };
    Ok(Url { https: default_port == 443, host: host.to_string(), port, explicit_port, path_and_query })
}

/// Sends one request with the default options and reads the whole response.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) -> Result<Response, String> {
    request_with(Options::default(), method, url, headers, body)
}

/// Sends one request and reads the whole response (any status).
pub fn request_with(
    opts: Options,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) -> Result<Response, String> {
    parse_url(url)?;
    let agent = agent(opts)?;
    let mut b = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let sent = match body {
        Some((content_type, bytes)) => {
            let req = b.header("Content-Type", content_type).body(bytes.to_vec()).map_err(|e| e.to_string())?;
            agent.run(req)
        }
        None => agent.run(b.body(()).map_err(|e| e.to_string())?),
    };
    let mut resp = sent.map_err(describe)?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = resp.body_mut().with_config().limit(MAX_BODY_BYTES).read_to_vec().map_err(describe)?;
    Ok(Response { status, headers, body })
}

/// A one-line reason for a failed request.
fn describe(e: ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            format!("the response was truncated: {io}")
        }
        ureq::Error::Protocol(p) => format!("malformed response: {p}"),
        other => other.to_string(),
    }
}

fn agent(opts: Options) -> Result<ureq::Agent, String> {
    use ureq::tls::{Certificate, RootCerts, TlsConfig};
    let mut tls = TlsConfig::builder().disable_verification(opts.skip_tls_verify);
    if let Some(path) = std::env::var_os("SSL_CERT_FILE").filter(|p| !p.is_empty()) {
        let pem = std::fs::read(&path)
            .map_err(|e| format!("SSL_CERT_FILE {}: {e}", std::path::Path::new(&path).display()))?;
        let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err("SSL_CERT_FILE holds no PEM certificate".into());
        }
        tls = tls.root_certs(RootCerts::new_with_certs(&certs));
    }
    let config = ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(TIMEOUT))
        .build();
    Ok(config.into())
}
