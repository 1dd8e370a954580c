//! A tiny blocking HTTP/1.1 client over `std::net::TcpStream` (http:// only).
//!
//! Every request is sent with `Connection: close`; the response body is
//! delimited by `Content-Length`, chunked transfer-encoding, or EOF.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);
const MAX_HEADER_BYTES: usize = 64 * 1024;

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

/// Components of an `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Host as written in the URL (IPv6 literals keep their brackets).
    pub host: String,
    pub port: u16,
    /// Whether the port was given explicitly.
    pub explicit_port: bool,
    /// Path plus query, always starting with `/`.
    pub path_and_query: String,
}

impl Url {
    /// Value for the `Host` header.
    pub fn host_header(&self) -> String {
        if self.explicit_port && self.port != 80 {
            format!("{}:{}", self.host, self.port)
        } else {
            self.host.clone()
        }
    }

    fn connect_host(&self) -> &str {
        self.host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(&self.host)
    }
}

/// Parses an `http://` URL. `https://` gives a clear "not supported" error.
pub fn parse_url(url: &str) -> Result<Url, String> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| "URL must start with http://".to_string())?;
    if scheme.eq_ignore_ascii_case("https") {
        return Err("TLS endpoints are not supported by this CLI yet".to_string());
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(format!("unsupported URL scheme {scheme:?}; only http:// is supported"));
    }
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
        None | Some("") => (80, false),
        Some(p) => (p.parse::<u16>().map_err(|_| format!("invalid port {p:?} in URL"))?, true),
    };
    let path_and_query = if tail.is_empty() {
        "/".to_string()
    } else if tail.starts_with('?') {
        format!("/{tail}")
    } else {
        tail.to_string()
    };
    Ok(Url { host: host.to_string(), port, explicit_port, path_and_query })
}

/// Sends one request and reads the whole response.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) -> Result<Response, String> {
    let u = parse_url(url)?;
    let addrs: Vec<_> =
        (u.connect_host(), u.port).to_socket_addrs().map_err(|e| format!("cannot resolve {}: {e}", u.host))?.collect();
    let mut last_err = format!("no address found for {}", u.host);
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_err = e.to_string(),
        }
    }
    let mut stream = stream.ok_or(last_err)?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|_| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| e.to_string())?;

    let req = build_request(method, &u, headers, body);
    stream.write_all(&req).map_err(|e| e.to_string())?;
    stream.flush().map_err(|e| e.to_string())?;
    read_response(&mut stream, method.eq_ignore_ascii_case("HEAD"))
}

/// Serializes the request head and body.
pub(crate) fn build_request(method: &str, u: &Url, headers: &[(&str, &str)], body: Option<(&str, &[u8])>) -> Vec<u8> {
    let mut head =
        format!("{method} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", u.path_and_query, u.host_header());
    let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    if !has("user-agent") {
        head.push_str("User-Agent: hydra-cli\r\n");
    }
    for (k, v) in headers {
        // Header injection guard: drop CR/LF from user-provided values.
        let k: String = k.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        let v: String = v.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    match body {
        Some((ct, b)) => {
            if !has("content-type") {
                head.push_str(&format!("Content-Type: {ct}\r\n"));
            }
            head.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
        None => {
            if !method.eq_ignore_ascii_case("GET") && !method.eq_ignore_ascii_case("HEAD") {
                head.push_str("Content-Length: 0\r\n");
            }
        }
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if let Some((_, b)) = body {
        out.extend_from_slice(b);
    }
    out
}

fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
        return Some((i, i + 4));
    }
    buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, i + 2))
}

/// Reads more bytes; returns false at EOF.
fn fill(r: &mut dyn Read, buf: &mut Vec<u8>) -> Result<bool, String> {
    let mut tmp = [0u8; 8192];
    loop {
        match r.read(&mut tmp) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                buf.extend_from_slice(&tmp[..n]);
                return Ok(true);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("error reading response: {e}")),
        }
    }
}

/// Reads and parses one response (skipping interim 1xx responses).
pub(crate) fn read_response(r: &mut dyn Read, head_request: bool) -> Result<Response, String> {
    let mut buf = Vec::new();
    loop {
        let (head_len, body_start) = loop {
            if let Some(found) = find_head_end(&buf) {
                break found;
            }
            if buf.len() > MAX_HEADER_BYTES {
                return Err("response headers too large".to_string());
            }
            if !fill(r, &mut buf)? {
                return Err(if buf.is_empty() {
                    "server closed the connection without a response".to_string()
                } else {
                    "truncated response headers".to_string()
                });
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
        let (status, headers) = parse_head(&head)?;
        buf.drain(..body_start);
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let resp = Response { status, headers, body: Vec::new() };
        let body = read_body(r, buf, &resp, head_request)?;
        return Ok(Response { body, ..resp });
    }
}

fn parse_head(head: &str) -> Result<(u16, Vec<(String, String)>), String> {
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/") {
        return Err(format!("malformed HTTP status line {status_line:?}"));
    }
    let status = parts
        .next()
        .and_then(|s| s.trim().parse::<u16>().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or_else(|| format!("malformed HTTP status line {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok((status, headers))
}

fn read_body(r: &mut dyn Read, mut buf: Vec<u8>, resp: &Response, head_request: bool) -> Result<Vec<u8>, String> {
    if head_request || resp.status == 204 || resp.status == 304 {
        return Ok(Vec::new());
    }
    let chunked = resp.header_all("transfer-encoding").iter().any(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        loop {
            if let Some(body) = decode_chunked(&buf)? {
                return Ok(body);
            }
            if !fill(r, &mut buf)? {
                return Err("truncated chunked response body".to_string());
            }
        }
    }
    if let Some(cl) = resp.header("content-length") {
        let n: usize = cl.trim().parse().map_err(|_| format!("invalid Content-Length {cl:?}"))?;
        while buf.len() < n {
            if !fill(r, &mut buf)? {
                return Err(format!("truncated response body: got {} of {n} bytes", buf.len()));
            }
        }
        buf.truncate(n);
        return Ok(buf);
    }
    while fill(r, &mut buf)? {}
    Ok(buf)
}

/// Decodes a complete chunked body; `Ok(None)` when more bytes are needed.
pub(crate) fn decode_chunked(data: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let Some(rel) = data[pos..].windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = String::from_utf8_lossy(&data[pos..pos + rel]).into_owned();
        let size_str = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_str, 16).map_err(|_| format!("invalid chunk size {size_str:?}"))?;
        pos += rel + 2;
        if size == 0 {
            // Trailer section ends with an empty line.
            loop {
                let Some(rel) = data[pos..].windows(2).position(|w| w == b"\r\n") else {
                    return Ok(None);
                };
                pos += rel + 2;
                if rel == 0 {
                    return Ok(Some(out));
                }
            }
        }
        if data.len() < pos + size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&data[pos..pos + size]);
        pos += size;
        if &data[pos..pos + 2] != b"\r\n" {
            return Err("malformed chunk terminator".to_string());
        }
        pos += 2;
    }
}
