//! Minimal HTTP/1.1 response serialiser writing into a caller-owned, reused buffer.
//!
//! Invariants: output is always a complete, self-delimiting response (Content-Length is
//! always present except for 204, where it is forbidden), and no header line can be split
//! by CR/LF smuggled in through a value, so callers may put request-derived text in headers.

/// Standard reason phrase for a status code; "Unknown" for codes this server never sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Writes one response. Bytes are appended to `buf` (never cleared), so several pipelined
/// responses can be queued in the same write buffer.
pub struct ResponseWriter<'a> {
    buf: &'a mut Vec<u8>,
    status: u16,
}

impl<'a> ResponseWriter<'a> {
    /// Writes "HTTP/1.1 {status} {reason}\r\n".
    pub fn new(buf: &'a mut Vec<u8>, status: u16) -> Self {
        debug_assert!((100..=999).contains(&status), "status must have 3 digits");
        buf.extend_from_slice(b"HTTP/1.1 ");
        push_decimal(buf, u64::from(status));
        buf.push(b' ');
        buf.extend_from_slice(reason(status).as_bytes());
        buf.extend_from_slice(b"\r\n");
        ResponseWriter { buf, status }
    }

    /// Adds a header line. CR, LF and NUL are bugs in debug builds and dropped in release
    /// builds: a value echoing request data must never start a new header or the body.
    pub fn header(&mut self, name: &str, value: &str) -> &mut Self {
        debug_assert!(!has_line_break(name), "CR/LF in header name {name:?}");
        debug_assert!(!has_line_break(value), "CR/LF in header value for {name:?}");
        push_sanitized(self.buf, name);
        self.buf.extend_from_slice(b": ");
        push_sanitized(self.buf, value);
        self.buf.extend_from_slice(b"\r\n");
        self
    }

    /// Adds Content-Length (also when 0; not for 204), "Connection: close" if !keep_alive,
    /// the blank line and the body (omitted for 204 and 304, which can't have one).
    pub fn finish(mut self, body: &[u8], keep_alive: bool) {
        let send_body = !matches!(self.status, 204 | 304);
        self.finish_inner(body.len(), keep_alive);
        if send_body {
            self.buf.extend_from_slice(body);
        }
    }

    /// Like [`finish`](Self::finish) for a HEAD request: the headers describe `body`
    /// (same Content-Length as the GET would send) but no body bytes are written.
    pub fn finish_head(mut self, body: &[u8], keep_alive: bool) {
        self.finish_inner(body.len(), keep_alive);
    }

    fn finish_inner(&mut self, body_len: usize, keep_alive: bool) {
        if self.status != 204 {
            self.buf.extend_from_slice(b"Content-Length: ");
            push_decimal(self.buf, body_len as u64);
            self.buf.extend_from_slice(b"\r\n");
        }
        if !keep_alive {
            self.buf.extend_from_slice(b"Connection: close\r\n");
        }
        self.buf.extend_from_slice(b"\r\n");
    }
}

fn has_line_break(s: &str) -> bool {
    s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))
}

fn push_sanitized(buf: &mut Vec<u8>, s: &str) {
    if has_line_break(s) {
        buf.extend(s.bytes().filter(|b| !matches!(b, b'\r' | b'\n' | 0)));
    } else {
        buf.extend_from_slice(s.as_bytes());
    }
}

/// Decimal formatting without going through `fmt`, which is noticeably slower per response.
fn push_decimal(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        if let Some(d) = digits.get_mut(start) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(digits.get(start..).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(status: u16, headers: &[(&str, &str)], body: &[u8], keep_alive: bool) -> String {
        let mut buf = Vec::new();
        let mut w = ResponseWriter::new(&mut buf, status);
        for (n, v) in headers {
            w.header(n, v);
        }
        w.finish(body, keep_alive);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn json_response_bytes() {
        let got =
            render(200, &[("Content-Type", "application/json"), ("Cache-Control", "no-store")], b"{\"a\":1}", true);
        assert_eq!(
            got,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nContent-Length: 7\r\n\r\n{\"a\":1}"
        );
    }

    #[test]
    fn empty_body_and_close() {
        assert_eq!(
            render(302, &[("Location", "https://a.example/cb?code=x")], b"", false),
            "HTTP/1.1 302 Found\r\nLocation: https://a.example/cb?code=x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn no_content_has_neither_length_nor_body() {
        assert_eq!(render(204, &[], b"ignored", true), "HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!(render(204, &[], b"", false), "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
    }

    #[test]
    fn not_modified_has_length_but_no_body() {
        assert_eq!(
            render(304, &[("ETag", "\"v1\"")], b"abc", true),
            "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 3\r\n\r\n"
        );
    }

    #[test]
    fn head_response_omits_body() {
        let mut buf = Vec::new();
        ResponseWriter::new(&mut buf, 200).finish_head(b"hello", true);
        assert_eq!(buf, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
    }

    #[test]
    fn appends_to_existing_buffer() {
        let mut buf = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
        ResponseWriter::new(&mut buf, 404).finish(b"x", true);
        ResponseWriter::new(&mut buf, 999).finish(b"", true);
        assert_eq!(
            buf,
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 999 Unknown\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn header_chaining() {
        let mut buf = Vec::new();
        let mut w = ResponseWriter::new(&mut buf, 201);
        w.header("A", "1").header("B", "2");
        w.finish(b"", true);
        assert_eq!(buf, b"HTTP/1.1 201 Created\r\nA: 1\r\nB: 2\r\nContent-Length: 0\r\n\r\n");
    }

    #[test]
    fn sanitizer_strips_line_breaks() {
        let mut buf = Vec::new();
        push_sanitized(&mut buf, "a\r\nSet-Cookie: x\0=1\n");
        assert_eq!(buf, b"aSet-Cookie: x=1");
        let mut buf = Vec::new();
        push_sanitized(&mut buf, "clean value");
        assert_eq!(buf, b"clean value");
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "CR/LF in header value")]
    fn header_injection_is_a_debug_bug() {
        let mut buf = Vec::new();
        ResponseWriter::new(&mut buf, 200).header("Location", "/x\r\nEvil: 1");
    }

    #[cfg(not(debug_assertions))]
    #[test]
    fn header_injection_is_neutralised_in_release() {
        let got = render(302, &[("Location", "/x\r\nSet-Cookie: a=b")], b"", true);
        assert_eq!(got, "HTTP/1.1 302 Found\r\nLocation: /xSet-Cookie: a=b\r\nContent-Length: 0\r\n\r\n");
    }

    #[test]
    fn decimal_formatting() {
        for n in [0u64, 7, 10, 99, 100, 12345, u64::MAX] {
            let mut buf = Vec::new();
            push_decimal(&mut buf, n);
            assert_eq!(buf, n.to_string().as_bytes());
        }
    }

    #[test]
    fn reason_phrases() {
        let table = [
            (200, "OK"),
            (201, "Created"),
            (204, "No Content"),
            (301, "Moved Permanently"),
            (302, "Found"),
            (303, "See Other"),
            (400, "Bad Request"),
            (401, "Unauthorized"),
            (403, "Forbidden"),
            (404, "Not Found"),
            (405, "Method Not Allowed"),
            (406, "Not Acceptable"),
            (408, "Request Timeout"),
            (409, "Conflict"),
            (410, "Gone"),
            (413, "Content Too Large"),
            (414, "URI Too Long"),
            (415, "Unsupported Media Type"),
            (422, "Unprocessable Content"),
            (429, "Too Many Requests"),
            (431, "Request Header Fields Too Large"),
            (500, "Internal Server Error"),
            (501, "Not Implemented"),
            (503, "Service Unavailable"),
            (505, "HTTP Version Not Supported"),
            (299, "Unknown"),
            (0, "Unknown"),
        ];
        for (status, want) in table {
            assert_eq!(reason(status), want, "{status}");
        }
    }
}
