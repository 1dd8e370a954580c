//! Incremental request-head parser (request line + header fields) for HTTP/1.0 and 1.1.
//!
//! Invariants: `parse_head` never reads past the first CRLFCRLF, never allocates more than
//! the configured limits allow, and decides body framing strictly per RFC 9112 §6 so that a
//! front proxy and this server can't disagree about where one request ends (smuggling).
//! It is called again with a longer buffer whenever it returns `Ok(None)`.

use super::HttpError;

/// Upper bounds applied while the head is still arriving, so a slow or hostile client
/// can't make us buffer without limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_head_bytes: usize,
    pub max_url_bytes: usize,
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_head_bytes: 16 * 1024, max_url_bytes: 8 * 1024, max_headers: 64 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Other,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Other => "OTHER",
        }
    }

    // Methods are case-sensitive (RFC 9110 §9.1), so "get" is `Other`, not `Get`.
    pub fn from_token(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }
}

/// How the message body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    None,
    Length(u64),
    Chunked,
}

/// A span of [`RequestHead`]'s text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span(u32, u32);

/// A parsed request head. Its strings (path, query, header names lower-cased, values trimmed of
/// surrounding SP/HTAB) live in one buffer, addressed by spans.
///
/// Why: with a `String` per path, query, header name and header value, parsing an issuance
/// request made 16 of its 59 heap allocations (`bench --bin allocs -- trace`); now it makes two.
#[derive(Debug)]
pub struct RequestHead {
    pub method: Method,
    text: String,
    path: Span,
    query: Option<Span>,
    /// Name and value of each header field, in arrival order.
    fields: Vec<(Span, Span)>,
    /// Bytes consumed by the request line + headers + CRLFCRLF.
    pub head_len: usize,
    pub body: BodyKind,
    pub keep_alive: bool,
    pub expect_continue: bool,
    /// An HTTP/1.0 request: its connection persists only when the answer says so
    /// (`Connection: keep-alive`, RFC 9112 §9.3 and Appendix C.2.2).
    pub http10: bool,
}

impl RequestHead {
    fn get(&self, s: Span) -> &str {
        self.text.get(s.0 as usize..s.1 as usize).unwrap_or_default()
    }

    /// Target path without query, NOT percent-decoded; one trailing '/' stripped unless path == "/".
    pub fn path(&self) -> &str {
        self.get(self.path)
    }

    /// Raw query string after '?', without any '#fragment'.
    pub fn query(&self) -> Option<&str> {
        self.query.map(|s| self.get(s))
    }

    /// Every header field as (lower-case name, trimmed value), in arrival order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.fields.iter().map(|&(n, v)| (self.get(n), self.get(v)))
    }

    /// How many header fields the head has.
    pub fn header_count(&self) -> usize {
        self.fields.len()
    }

    /// First value of the header, looked up by its lower-case name.
    pub fn header(&self, name_lowercase: &str) -> Option<&str> {
        self.fields.iter().find(|&&(n, _)| self.get(n) == name_lowercase).map(|&(_, v)| self.get(v))
    }

    /// All values of a header in arrival order (for fields that may repeat).
    pub fn header_all<'a>(&'a self, name_lowercase: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers().filter(move |(n, _)| *n == name_lowercase).map(|(_, v)| v)
    }
}

/// Appends `s` to `text` and returns where it landed.
fn push_span(text: &mut String, s: &str) -> Span {
    let start = text.len() as u32;
    text.push_str(s);
    Span(start, text.len() as u32)
}

// Room for "OPTIONS " + " HTTP/1.1" around the target when judging a partial request line
// (`first_line` has already dropped the CR).
const REQUEST_LINE_SLACK: usize = 17;

const STACK_HEADERS: usize = 64;

/// Ok(None) = need more bytes. Ok(Some(head)) = complete head at buf[..head.head_len].
pub fn parse_head(buf: &[u8], limits: &Limits) -> Result<Option<RequestHead>, HttpError> {
    // Judge the request line before httparse does: a client streaming a huge URL should
    // learn the URL is the problem (414) rather than the head as a whole (431).
    let line = first_line(buf);
    if line.len() > limits.max_url_bytes.saturating_add(REQUEST_LINE_SLACK) {
        return Err(HttpError::URI_TOO_LONG);
    }

    // parse_head runs on every read until the head is complete, so keep the common case
    // (default limit) off the heap.
    let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut heap;
    let slots: &mut [httparse::Header<'_>] = match stack.get_mut(..limits.max_headers) {
        Some(s) => s,
        None => {
            heap = vec![httparse::EMPTY_HEADER; limits.max_headers];
            &mut heap
        }
    };
    let mut req = httparse::Request::new(slots);
    let status = match req.parse(buf) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HEADERS_TOO_LARGE),
        Err(httparse::Error::Version) => return Err(version_error(line)),
        Err(_) => return Err(HttpError::BAD_REQUEST),
    };

    // httparse fills fields progressively, so the target may be known before the head ends.
    if let Some(target) = req.path {
        if target.len() > limits.max_url_bytes {
            return Err(HttpError::URI_TOO_LONG);
        }
    }

    let head_len = match status {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => {
            if buf.len() > limits.max_head_bytes {
                return Err(HttpError::HEADERS_TOO_LARGE);
            }
            return Ok(None);
        }
    };
    if head_len > limits.max_head_bytes {
        return Err(HttpError::HEADERS_TOO_LARGE);
    }

    let method = Method::from_token(req.method.unwrap_or(""));
    let http10 = match req.version {
        Some(0) => true,
        Some(1) => false,
        _ => return Err(HttpError::VERSION_NOT_SUPPORTED),
    };
    let (path, query) = split_target(req.path.unwrap_or(""))?;

    // head_len bounds every string below (but for obs-text, whose bytes become 3-byte U+FFFD), so
    // the text grows only then.
    let mut text = String::with_capacity(head_len);
    let path = push_span(&mut text, path);
    let query = query.map(|q| push_span(&mut text, q));
    let mut fields = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        if h.value.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return Err(INVALID_HEADER_VALUE);
        }
        // obs-text (bytes 0x80-0xFF that are not UTF-8, a Latin-1 User-Agent say) is allowed in a
        // field value (RFC 9110 §5.5) and kept with U+FFFD in their place: no header this server
        // interprets is anything but ASCII, so none can come to mean something else.
        let value = String::from_utf8_lossy(h.value);
        // Lower-cased in place: char by char it was 1.6% of an issuance profile (DWARF `perf`).
        let name = push_span(&mut text, h.name);
        if let Some(n) = text.get_mut(name.0 as usize..) {
            n.make_ascii_lowercase();
        }
        let value = push_span(&mut text, value.trim_matches(|c| c == ' ' || c == '\t'));
        fields.push((name, value));
    }

    let mut head = RequestHead {
        method,
        text,
        path,
        query,
        fields,
        head_len,
        body: BodyKind::None,
        keep_alive: false,
        expect_continue: false,
        http10,
    };
    head.body = body_kind(&head, http10)?;
    head.keep_alive = keep_alive(&head, http10);
    // RFC 9110 §10.1.1: a server MUST ignore 100-continue in an HTTP/1.0 request.
    head.expect_continue = !http10 && head.header_all("expect").any(|v| v.eq_ignore_ascii_case("100-continue"));
    Ok(Some(head))
}

const INVALID_HEADER_VALUE: HttpError = HttpError::bad_request("A header value is invalid.");
const INVALID_TARGET: HttpError = HttpError::bad_request("The request target is invalid.");
const INVALID_CONTENT_LENGTH: HttpError = HttpError::bad_request("The Content-Length header is invalid.");
const AMBIGUOUS_FRAMING: HttpError =
    HttpError::bad_request("The request has both Transfer-Encoding and Content-Length.");
const TE_IN_HTTP10: HttpError = HttpError::bad_request("Transfer-Encoding is not allowed in HTTP/1.0 requests.");

/// The request line as received so far: leading empty lines (which httparse tolerates
/// per RFC 9112 §2.2) skipped, line terminator excluded.
fn first_line(buf: &[u8]) -> &[u8] {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(buf.len());
    let rest = buf.get(start..).unwrap_or_default();
    match rest.iter().position(|&b| b == b'\n') {
        Some(end) => {
            let line = rest.get(..end).unwrap_or_default();
            line.strip_suffix(b"\r").unwrap_or(line)
        }
        None => rest,
    }
}

/// httparse lumps "not HTTP/1.x" together with garbage; a well-formed `HTTP/d.d` that is
/// simply another version deserves 505 rather than 400.
fn version_error(line: &[u8]) -> HttpError {
    let token = match line.iter().rposition(|&b| b == b' ') {
        Some(i) => line.get(i + 1..).unwrap_or_default(),
        None => return HttpError::BAD_REQUEST,
    };
    match token {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] if major.is_ascii_digit() && minor.is_ascii_digit() => {
            HttpError::VERSION_NOT_SUPPORTED
        }
        // The version may still be arriving; a major digit is enough to know it's not 1.x.
        [b'H', b'T', b'T', b'P', b'/', major, ..] if major.is_ascii_digit() && *major != b'1' => {
            HttpError::VERSION_NOT_SUPPORTED
        }
        _ => HttpError::BAD_REQUEST,
    }
}

/// RFC 9112 §3.2: an HTTP/1.1 request carries exactly one Host field, an HTTP/1.0 request at
/// most one; otherwise 400 (as Go answers, so Hydra). Checked by the connection after a head is
/// parsed, so this parser's own tests need not name a host.
pub fn check_host(head: &RequestHead) -> Result<(), HttpError> {
    let n = head.header_all("host").count();
    if n > 1 || (n == 0 && !head.http10) {
        return Err(HttpError::bad_request("The request needs exactly one Host header."));
    }
    Ok(())
}

fn split_target(target: &str) -> Result<(&str, Option<&str>), HttpError> {
    // Absolute-form must be accepted (RFC 9112 §3.2.2) and is served by its path, as Go serves
    // it; authority-form and '*' would need proxy semantics we don't implement.
    let target = match absolute_form_rest(target) {
        Some("") => "/",
        Some(rest) => rest,
        None => target,
    };
    if !target.starts_with('/') {
        return Err(INVALID_TARGET);
    }
    // Clients must not send fragments, but if one does it must not leak into the query.
    let target = target.split_once('#').map_or(target, |(t, _)| t);
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let path = if path.len() > 1 { path.strip_suffix('/').unwrap_or(path) } else { path };
    Ok((path, query))
}

/// What follows the authority of an `http://` or `https://` target (empty when nothing does);
/// `None` for any other form.
fn absolute_form_rest(target: &str) -> Option<&str> {
    let (scheme, after) = target.split_once("://")?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return None;
    }
    let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    if authority_end == 0 {
        return None;
    }
    after.get(authority_end..)
}

fn body_kind(head: &RequestHead, http10: bool) -> Result<BodyKind, HttpError> {
    let mut te_count = 0usize;
    let mut te_chunked = false;
    let mut content_length: Option<u64> = None;
    for (name, value) in head.headers() {
        match name {
            "transfer-encoding" => {
                te_count += 1;
                te_chunked = value.eq_ignore_ascii_case("chunked");
            }
            "content-length" => {
                // Duplicates are rejected even when equal: cheaper than proving every hop
                // in front of us would merge them the same way.
                if content_length.is_some() {
                    return Err(INVALID_CONTENT_LENGTH);
                }
                content_length = Some(parse_content_length(value)?);
            }
            _ => {}
        }
    }
    if te_count > 0 {
        if content_length.is_some() {
            return Err(AMBIGUOUS_FRAMING);
        }
        // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
        if http10 {
            return Err(TE_IN_HTTP10);
        }
        // Anything but a single, bare `chunked` is a coding we can't decode.
        if te_count != 1 || !te_chunked {
            return Err(HttpError::NOT_IMPLEMENTED);
        }
        return Ok(BodyKind::Chunked);
    }
    Ok(content_length.map_or(BodyKind::None, BodyKind::Length))
}

fn parse_content_length(value: &str) -> Result<u64, HttpError> {
    if value.is_empty() {
        return Err(INVALID_CONTENT_LENGTH);
    }
    let mut n: u64 = 0;
    for b in value.bytes() {
        if !b.is_ascii_digit() {
            return Err(INVALID_CONTENT_LENGTH);
        }
        n = n.checked_mul(10).and_then(|n| n.checked_add(u64::from(b - b'0'))).ok_or(INVALID_CONTENT_LENGTH)?;
    }
    Ok(n)
}

fn keep_alive(head: &RequestHead, http10: bool) -> bool {
    let mut close = false;
    let mut keep = false;
    let tokens = head.header_all("connection").flat_map(|v| v.split(',')).map(str::trim);
    for token in tokens {
        if token.eq_ignore_ascii_case("close") {
            close = true;
        } else if token.eq_ignore_ascii_case("keep-alive") {
            keep = true;
        }
    }
    // `close` wins over everything: the client has said it will hang up.
    !close && (!http10 || keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(buf: &[u8]) -> Result<Option<RequestHead>, HttpError> {
        parse_head(buf, &Limits::default())
    }

    fn parse_ok(buf: &[u8]) -> RequestHead {
        parse(buf).unwrap().expect("complete head")
    }

    fn status_of(buf: &[u8]) -> u16 {
        parse(buf).unwrap_err().status
    }

    #[test]
    fn default_limits() {
        let l = Limits::default();
        assert_eq!(l.max_head_bytes, 16384);
        assert_eq!(l.max_url_bytes, 8192);
        assert_eq!(l.max_headers, 64);
    }

    #[test]
    fn parses_simple_post() {
        let raw = b"POST /oauth2/token?x=1 HTTP/1.1\r\nHost: a\r\nContent-Type:  application/x-www-form-urlencoded \r\nContent-Length: 5\r\n\r\nhello";
        let h = parse_ok(raw);
        assert_eq!(h.method, Method::Post);
        assert_eq!(h.path(), "/oauth2/token");
        assert_eq!(h.query(), Some("x=1"));
        assert_eq!(h.body, BodyKind::Length(5));
        assert_eq!(h.head_len, raw.len() - 5);
        assert_eq!(h.header("content-type"), Some("application/x-www-form-urlencoded"));
        assert_eq!(h.header("host"), Some("a"));
        assert_eq!(h.header("missing"), None);
        assert!(h.keep_alive);
        assert!(!h.expect_continue);
    }

    #[test]
    fn header_names_lowercased_and_order_kept() {
        let h = parse_ok(b"GET / HTTP/1.1\r\nX-Foo: 1\r\nx-FOO: 2\r\nACCEPT: */*\r\n\r\n");
        let names: Vec<&str> = h.headers().map(|(n, _)| n).collect();
        assert_eq!(names, ["x-foo", "x-foo", "accept"]);
        assert_eq!(h.header("x-foo"), Some("1"));
        assert_eq!(h.header_all("x-foo").collect::<Vec<_>>(), ["1", "2"]);
    }

    #[test]
    fn methods() {
        let table = [
            ("GET", Method::Get),
            ("HEAD", Method::Head),
            ("POST", Method::Post),
            ("PUT", Method::Put),
            ("PATCH", Method::Patch),
            ("DELETE", Method::Delete),
            ("OPTIONS", Method::Options),
            ("TRACE", Method::Other),
            ("get", Method::Other),
        ];
        for (token, want) in table {
            let raw = format!("{token} / HTTP/1.1\r\n\r\n");
            assert_eq!(parse_ok(raw.as_bytes()).method, want, "{token}");
        }
    }

    #[test]
    fn partial_at_every_split_point() {
        let raw = b"POST /a/b/?q=1 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\nConnection: close\r\n\r\n";
        for i in 0..raw.len() {
            assert!(parse(&raw[..i]).unwrap().is_none(), "prefix of {i} bytes must need more");
        }
        let h = parse_ok(raw);
        assert_eq!(h.head_len, raw.len());
        assert_eq!(h.path(), "/a/b");
        assert!(!h.keep_alive);
    }

    #[test]
    fn pipelined_requests() {
        let first = b"POST /one HTTP/1.1\r\nContent-Length: 4\r\n\r\n";
        let second = b"GET /two HTTP/1.1\r\n\r\n";
        let mut buf = Vec::new();
        buf.extend_from_slice(first);
        buf.extend_from_slice(b"body");
        buf.extend_from_slice(second);
        let h1 = parse_ok(&buf);
        assert_eq!(h1.head_len, first.len());
        assert_eq!(h1.path(), "/one");
        assert_eq!(h1.body, BodyKind::Length(4));
        let rest = &buf[h1.head_len + 4..];
        let h2 = parse_ok(rest);
        assert_eq!(h2.path(), "/two");
        assert_eq!(h2.head_len, second.len());
        assert_eq!(h2.body, BodyKind::None);
    }

    #[test]
    fn leading_empty_lines_are_counted_in_head_len() {
        let raw = b"\r\nGET / HTTP/1.1\r\n\r\n";
        assert_eq!(parse_ok(raw).head_len, raw.len());
    }

    #[test]
    fn one_host_header_for_http11_at_most_one_for_http10() {
        let host = |raw: &[u8]| check_host(&parse_ok(raw)).is_ok();
        assert!(host(b"GET / HTTP/1.1\r\nHost: op.example\r\n\r\n"));
        assert!(host(b"GET / HTTP/1.1\r\nHost:\r\n\r\n"), "empty is allowed (no authority)");
        assert!(!host(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(!host(b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"));
        assert!(host(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(!host(b"GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n"));
    }

    #[test]
    fn only_origin_and_http_absolute_forms_are_targets() {
        for target in ["*", "op.example:443", "ftp://op.example/x", "http:///x", "http://op.example?x=1", "x"] {
            let raw = format!("GET {target} HTTP/1.1\r\n\r\n");
            assert!(parse_head(raw.as_bytes(), &Limits::default()).is_err(), "{target}");
        }
    }

    #[test]
    fn target_splitting_and_trailing_slash() {
        let table: &[(&str, &str, Option<&str>)] = &[
            ("/", "/", None),
            ("/?a=b", "/", Some("a=b")),
            ("/oauth2/auth/", "/oauth2/auth", None),
            ("/oauth2/auth//", "/oauth2/auth/", None),
            ("//", "/", None),
            ("/x?", "/x", Some("")),
            ("/x/?a=1&b=2", "/x", Some("a=1&b=2")),
            ("/x?a=/b/?c", "/x", Some("a=/b/?c")),
            ("/x?a=1#frag", "/x", Some("a=1")),
            ("/x/#frag", "/x", None),
            ("/%2Fenc%20oded/", "/%2Fenc%20oded", None),
            // Absolute-form is served by its path (RFC 9112 §3.2.2).
            ("http://op.example/health/alive", "/health/alive", None),
            ("HTTPS://op.example:8443/oauth2/auth?a=b", "/oauth2/auth", Some("a=b")),
            ("http://op.example", "/", None),
        ];
        for (target, path, query) in table {
            let raw = format!("GET {target} HTTP/1.1\r\n\r\n");
            let h = parse_ok(raw.as_bytes());
            assert_eq!(h.path(), *path, "{target}");
            assert_eq!(h.query(), *query, "{target}");
        }
    }

    #[test]
    fn keep_alive_rules() {
        let table: &[(&str, &str, bool)] = &[
            ("1.1", "", true),
            ("1.1", "Connection: close\r\n", false),
            ("1.1", "Connection: CLOSE\r\n", false),
            ("1.1", "Connection: keep-alive, close\r\n", false),
            ("1.1", "Connection: upgrade\r\nConnection: close\r\n", false),
            ("1.1", "Connection: keep-alive\r\n", true),
            ("1.0", "", false),
            ("1.0", "Connection: keep-alive\r\n", true),
            ("1.0", "Connection: Keep-Alive\r\n", true),
            ("1.0", "Connection: keep-alive, close\r\n", false),
            ("1.0", "Connection: close\r\n", false),
        ];
        for (version, headers, want) in table {
            let raw = format!("GET / HTTP/{version}\r\n{headers}\r\n");
            assert_eq!(parse_ok(raw.as_bytes()).keep_alive, *want, "{version} {headers:?}");
        }
    }

    #[test]
    fn expect_continue() {
        let table: &[(&str, &str, bool)] = &[
            ("1.1", "Expect: 100-continue\r\n", true),
            ("1.1", "Expect: 100-Continue\r\n", true),
            ("1.1", "Expect:   100-continue  \r\n", true),
            ("1.1", "Expect: 200-ok\r\n", false),
            ("1.1", "", false),
            ("1.0", "Expect: 100-continue\r\n", false),
        ];
        for (version, headers, want) in table {
            let raw = format!("POST / HTTP/{version}\r\n{headers}Content-Length: 1\r\n\r\n");
            assert_eq!(parse_ok(raw.as_bytes()).expect_continue, *want, "{version} {headers:?}");
        }
    }

    #[test]
    fn body_framing() {
        let table: &[(&str, Result<BodyKind, u16>)] = &[
            ("", Ok(BodyKind::None)),
            ("Content-Length: 0\r\n", Ok(BodyKind::Length(0))),
            ("Content-Length: 42\r\n", Ok(BodyKind::Length(42))),
            ("Content-Length: 007\r\n", Ok(BodyKind::Length(7))),
            ("Content-Length: 18446744073709551615\r\n", Ok(BodyKind::Length(u64::MAX))),
            ("Content-Length: 18446744073709551616\r\n", Err(400)),
            ("Content-Length: +5\r\n", Err(400)),
            ("Content-Length: -5\r\n", Err(400)),
            ("Content-Length: 5 5\r\n", Err(400)),
            ("Content-Length: 5,5\r\n", Err(400)),
            ("Content-Length: 0x10\r\n", Err(400)),
            ("Content-Length:\r\n", Err(400)),
            ("Content-Length: 5\r\nContent-Length: 5\r\n", Err(400)),
            ("Content-Length: 5\r\nContent-Length: 6\r\n", Err(400)),
            ("Transfer-Encoding: chunked\r\n", Ok(BodyKind::Chunked)),
            ("Transfer-Encoding: Chunked\r\n", Ok(BodyKind::Chunked)),
            ("Transfer-Encoding: chunked \r\n", Ok(BodyKind::Chunked)),
            ("Transfer-Encoding: gzip\r\n", Err(501)),
            ("Transfer-Encoding: gzip, chunked\r\n", Err(501)),
            ("Transfer-Encoding: chunked, chunked\r\n", Err(501)),
            ("Transfer-Encoding: chunked;x=1\r\n", Err(501)),
            ("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", Err(501)),
            ("Transfer-Encoding: \r\n", Err(501)),
            ("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", Err(400)),
            ("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", Err(400)),
            ("Content-Length: 5\r\nTransfer-Encoding: gzip\r\n", Err(400)),
        ];
        for (headers, want) in table {
            let raw = format!("POST / HTTP/1.1\r\n{headers}\r\n");
            let got = parse(raw.as_bytes()).map(|h| h.unwrap().body);
            assert_eq!(got.map_err(|e| e.status), *want, "{headers:?}");
        }
    }

    #[test]
    fn transfer_encoding_in_http10_rejected() {
        assert_eq!(status_of(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
    }

    #[test]
    fn malformed_requests_are_400() {
        let table: &[&[u8]] = &[
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1 \r\n\r\n",
            b"GET\r\n\r\n",
            b"GET /\r\n\r\n",
            b"/ HTTP/1.1\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET * HTTP/1.1\r\n\r\n",
            b"OPTIONS * HTTP/1.1\r\n\r\n",
            b"CONNECT example.com:443 HTTP/1.1\r\n\r\n",
            b"GET / FTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nName : x\r\n\r\n",
            b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\0b\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
            b"GET /a\x7f HTTP/1.1\r\n\r\n",
        ];
        for raw in table {
            assert_eq!(status_of(raw), 400, "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn utf8_header_values_allowed() {
        let h = parse_ok("GET / HTTP/1.1\r\nX-Name: Zoë\r\n\r\n".as_bytes());
        assert_eq!(h.header("x-name"), Some("Zoë"));
        // obs-text that is not UTF-8 (Latin-1) is a valid field value, kept with U+FFFD.
        let h = parse_ok(b"GET / HTTP/1.1\r\nUser-Agent: caf\xe9\r\nX: \xff\xfe\r\n\r\n");
        assert_eq!(h.header("user-agent"), Some("caf\u{fffd}"));
        assert_eq!(h.header("x"), Some("\u{fffd}\u{fffd}"));
    }

    #[test]
    fn other_versions_are_505() {
        let table: &[&[u8]] =
            &[b"GET / HTTP/2.0\r\n\r\n", b"GET / HTTP/1.2\r\n\r\n", b"GET / HTTP/0.9\r\n\r\n", b"GET / HTTP/3"];
        for raw in table {
            assert_eq!(status_of(raw), 505, "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn too_many_headers_is_431() {
        let limits = Limits { max_headers: 3, ..Limits::default() };
        let ok = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert!(parse_head(ok, &limits).unwrap().is_some());
        let bad = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
        assert_eq!(parse_head(bad, &limits).unwrap_err().status, 431);
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..65 {
            many.extend_from_slice(format!("H{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(status_of(&many), 431);

        // Above the on-stack capacity the parser must still honour the configured limit.
        let roomy = Limits { max_headers: 100, ..Limits::default() };
        assert_eq!(parse_head(&many, &roomy).unwrap().unwrap().header_count(), 65);
    }

    #[test]
    fn oversized_head_is_431() {
        let limits = Limits::default();
        let mut raw = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        raw.resize(limits.max_head_bytes, b'a');
        // Exactly at the limit and incomplete: still waiting.
        assert!(parse_head(&raw, &limits).unwrap().is_none());
        raw.push(b'a');
        assert_eq!(parse_head(&raw, &limits).unwrap_err().status, 431);

        // A complete head larger than the limit is also refused.
        let mut complete = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        complete.resize(limits.max_head_bytes, b'a');
        complete.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse_head(&complete, &limits).unwrap_err().status, 431);
    }

    #[test]
    fn head_exactly_at_limit_is_accepted() {
        let limits = Limits::default();
        let mut raw = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        raw.resize(limits.max_head_bytes - 4, b'a');
        raw.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse_head(&raw, &limits).unwrap().unwrap().head_len, raw.len());
    }

    #[test]
    fn long_uri_is_414() {
        let limits = Limits::default();
        let target = format!("/{}", "a".repeat(limits.max_url_bytes - 1));
        let raw = format!("GET {target} HTTP/1.1\r\n\r\n");
        assert!(parse(raw.as_bytes()).unwrap().is_some());

        let target = format!("/{}", "a".repeat(limits.max_url_bytes));
        let raw = format!("GET {target} HTTP/1.1\r\n\r\n");
        assert_eq!(status_of(raw.as_bytes()), 414);
        // Complete request line, head not finished yet.
        let raw = format!("GET {target} HTTP/1.1\r\nHost: x\r\n");
        assert_eq!(status_of(raw.as_bytes()), 414);
        // The longest method (OPTIONS) with a target at the limit, its head still coming: not 414.
        let target = format!("/{}", "a".repeat(limits.max_url_bytes - 1));
        let raw = format!("OPTIONS {target} HTTP/1.1\r\nHost: x\r\n");
        assert!(parse(raw.as_bytes()).unwrap().is_none(), "a legal line waits for the rest of the head");
    }

    #[test]
    fn streaming_long_uri_is_414_not_431() {
        let limits = Limits { max_head_bytes: 1024, max_url_bytes: 512, max_headers: 8 };
        let mut raw = b"GET /".to_vec();
        let mut got = None;
        for _ in 0..2000 {
            raw.resize(raw.len() + 1, b'a');
            match parse_head(&raw, &limits) {
                Ok(None) => continue,
                Ok(Some(_)) => panic!("no complete head expected"),
                Err(e) => {
                    got = Some((e.status, raw.len()));
                    break;
                }
            }
        }
        let (status, len) = got.expect("an error before 2000 bytes");
        assert_eq!(status, 414);
        assert!(len <= limits.max_url_bytes + REQUEST_LINE_SLACK + 1, "{len}");
    }

    #[test]
    fn garbage_is_rejected_early() {
        // An invalid first byte is detectable without waiting for more input.
        assert_eq!(status_of(b"\x16\x03\x01"), 400);
        assert_eq!(status_of(b"GET /\x01"), 400);
    }

    #[test]
    fn empty_and_blank_buffers_need_more() {
        assert!(parse(b"").unwrap().is_none());
        assert!(parse(b"\r\n").unwrap().is_none());
    }
}
