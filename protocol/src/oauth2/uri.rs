//! URIs, parsed into one type and judged in one place: Go's `url.Parse` and
//! `url.ParseRequestURI` as Hydra's client rules use them (with Go's error messages), the strict
//! RFC 3986 absolute URI the authorization endpoint requires of a redirect URI, and the rules on
//! redirect targets (schemes, hosts, loopback) that registration and `/oauth2/auth` share.
//!
//! Invariant: a redirect URI is judged by these functions only, so registration can never accept
//! a target the authorization endpoint would treat differently.

/// A parsed URI; every part borrows the input.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Uri<'a> {
    /// As written: compare with [`Uri::scheme_is`] (schemes are case-insensitive) unless a rule
    /// says exact.
    pub scheme: &'a str,
    pub authority: Option<Authority<'a>>,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub fragment: Option<&'a str>,
}

/// `[userinfo@]host[:port]`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Authority<'a> {
    pub userinfo: Option<&'a str>,
    /// As written, with the brackets of an IPv6 literal.
    pub host: &'a str,
    /// `None` without a `:` after the host, `Some("")` for a bare `:`.
    pub port: Option<&'a str>,
}

impl<'a> Uri<'a> {
    pub fn scheme_is(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }

    /// The host as written ("" without an authority).
    pub fn host(&self) -> &'a str {
        self.authority.as_ref().map_or("", |a| a.host)
    }

    /// The host without IPv6 brackets (Go's `Hostname()`).
    pub fn hostname(&self) -> &'a str {
        let h = self.host();
        h.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(h)
    }

    /// The port, "" when there is none (Go's `Port()`).
    pub fn port(&self) -> &'a str {
        self.authority.as_ref().and_then(|a| a.port).unwrap_or("")
    }

    pub fn userinfo(&self) -> Option<&'a str> {
        self.authority.as_ref().and_then(|a| a.userinfo)
    }

    /// Go's `url.Parse`, for the cases Hydra's client rules meet; errors read as Go's.
    pub fn parse_go(s: &'a str) -> Result<Uri<'a>, String> {
        if s.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err("net/url: invalid control character in URL".to_owned());
        }
        let (rest, fragment) = match s.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (s, None),
        };
        let mut uri = Uri { fragment, ..Uri::default() };
        // Scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":", only before any '/'.
        let mut rest = rest;
        if let Some(colon) = rest.find(':') {
            let cand = &rest[..colon];
            if valid_scheme(cand) {
                uri.scheme = cand;
                rest = &rest[colon + 1..];
            } else if colon == 0 {
                return Err("missing protocol scheme".to_owned());
            } else if !cand.contains('/') {
                return Err("first path segment in URL cannot contain colon".to_owned());
            }
        }
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        uri.query = query;
        if let Some(after) = rest.strip_prefix("//") {
            let end = after.find('/').unwrap_or(after.len());
            let (authority, path) = after.split_at(end);
            uri.path = path;
            let (userinfo, host_port) = match authority.rsplit_once('@') {
                Some((ui, hp)) => (Some(ui), hp),
                None => (None, authority),
            };
            let (host, port) = if host_port.starts_with('[') {
                let close = host_port.find(']').ok_or("missing ']' in host")?;
                let (h, p) = host_port.split_at(close + 1);
                match p {
                    "" => (h, None),
                    _ => (h, Some(p.strip_prefix(':').ok_or("invalid port after host")?)),
                }
            } else {
                match host_port.rsplit_once(':') {
                    Some((h, p)) => (h, Some(p)),
                    None => (host_port, None),
                }
            };
            if let Some(port) = port.filter(|p| !p.bytes().all(|b| b.is_ascii_digit())) {
                return Err(format!("invalid port \":{port}\" after host"));
            }
            let host_ok = host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%:[]".contains(&b));
            if !host_ok {
                return Err(format!("invalid character in host name {host:?}"));
            }
            uri.authority = Some(Authority { userinfo, host, port });
        } else {
            uri.path = rest;
        }
        if !valid_percent_escapes(uri.host()) || !valid_percent_escapes(uri.path) {
            return Err("invalid URL escape".to_owned());
        }
        Ok(uri)
    }

    /// Go's `url.ParseRequestURI`: as [`Uri::parse_go`], but the URL must be absolute or an
    /// absolute path.
    pub fn parse_go_request(s: &'a str) -> Result<Uri<'a>, String> {
        if s.is_empty() {
            return Err("empty url".to_owned());
        }
        let u = Uri::parse_go(s)?;
        if u.scheme.is_empty() && !s.starts_with('/') {
            return Err("invalid URI for request".to_owned());
        }
        Ok(u)
    }

    /// A strict RFC 3986 absolute URI: URI characters only, well-formed percent escapes, a valid
    /// scheme, at most one `#`, and brackets and colons in the host only for an IP literal.
    pub fn parse_absolute(s: &'a str) -> Option<Uri<'a>> {
        let bytes = s.as_bytes();
        if !bytes.iter().all(|&b| is_uri_char(b)) || !valid_percent_escapes(s) {
            return None;
        }
        let (scheme, rest) = s.split_once(':')?;
        if !valid_scheme(scheme) {
            return None;
        }
        let (rest, fragment) = match rest.split_once('#') {
            Some((r, f)) if !f.contains('#') => (r, Some(f)),
            Some(_) => return None,
            None => (rest, None),
        };
        let (hier, query) = match rest.split_once('?') {
            Some((h, q)) => (h, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match hier.strip_prefix("//") {
            Some(after) => {
                let end = after.find('/').unwrap_or(after.len());
                (Some(strict_authority(&after[..end])?), &after[end..])
            }
            None => (None, hier),
        };
        if authority.is_none() && path.is_empty() {
            return None;
        }
        Some(Uri { scheme, authority, path, query, fragment })
    }
}

fn strict_authority(a: &str) -> Option<Authority<'_>> {
    let (userinfo, hostport) = match a.rsplit_once('@') {
        Some((ui, hp)) => (Some(ui), hp),
        None => (None, a),
    };
    let (host, port) = if hostport.starts_with('[') {
        let close = hostport.find(']')?;
        let (host, after) = hostport.split_at(close + 1);
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    // Brackets and colons belong only to an IP literal; anywhere else they signal a confused
    // authority.
    let inner = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if inner.contains(['[', ']']) || (inner.len() == host.len() && host.contains(':')) {
        return None;
    }
    if port.is_some_and(|p| !p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    Some(Authority { userinfo, host, port })
}

fn valid_scheme(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic()) && b.all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
}

fn is_uri_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b)
}

/// Every `%` starts an escape of two hex digits.
pub fn valid_percent_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit) && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

// ---------------------------------------------------------------------------------------------
// Redirect targets.

/// Schemes a browser would execute or render in place rather than hand to an application: a
/// redirect (or a self-submitting form) there runs script in this server's origin.
pub const FORBIDDEN_REDIRECT_SCHEMES: [&str; 4] = ["javascript", "data", "vbscript", "file"];

/// Whether `scheme` may receive an authorization response.
pub fn redirect_scheme_allowed(scheme: &str) -> bool {
    !FORBIDDEN_REDIRECT_SCHEMES.iter().any(|f| f.eq_ignore_ascii_case(scheme))
}

/// fosite's `IsRedirectURISecure`: plain `http` only for localhost, `*.localhost` and loopback
/// IPs; https and custom (native-app) schemes pass.
pub fn is_redirect_uri_secure(uri: &str) -> bool {
    match Uri::parse_go(uri) {
        Ok(u) => !u.scheme_is("http") || is_localhost(u.hostname()),
        Err(_) => false,
    }
}

/// Whether a redirect to `uri` goes to the client it names, as far as this server can tell: a
/// claimed `https` URI, or `http` to this machine (RFC 8252 §8.6, RFC 6749 §10.2). A custom
/// scheme (`com.example.app:/cb`) can be claimed by any app on the device.
pub fn redirect_proves_client(uri: &str) -> bool {
    match Uri::parse_go(uri) {
        Ok(u) => u.scheme_is("https") || (u.scheme_is("http") && is_localhost(u.hostname())),
        Err(_) => false,
    }
}

pub fn is_localhost(hostname: &str) -> bool {
    hostname == "localhost"
        || hostname.ends_with(".localhost")
        || hostname.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A host a redirect can go to: an IP literal, or a DNS name whose labels are non-empty and made
/// of letters, digits, `-` and `_`. No wildcard (`*.example.com` is a pattern, not a host), no
/// percent-escapes, nothing empty (`https://` has no host).
pub fn valid_host(hostname: &str) -> bool {
    if hostname.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let name = hostname.strip_suffix('.').unwrap_or(hostname);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// RFC 8252 §7.3: a request to a registered loopback redirect URI may name any port (the native
/// app listens where it can). `localhost` is left out: its resolution is not guaranteed to stay
/// on the loopback (§8.3).
pub fn loopback_matches(registered: &Uri, requested: &Uri) -> bool {
    let (Some(ra), Some(qa)) = (&registered.authority, &requested.authority) else { return false };
    registered.scheme == "http"
        && requested.scheme == "http"
        && ra.userinfo.is_none()
        && qa.userinfo.is_none()
        && (ra.host == "127.0.0.1" || ra.host == "[::1]")
        && ra.host == qa.host
        && qa.port.is_none_or(valid_port)
        && registered.path == requested.path
        && registered.query == requested.query
        && registered.fragment.is_none()
        && requested.fragment.is_none()
}

fn valid_port(p: &str) -> bool {
    p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok_and(|n| n > 0)
}

/// Go's `url.PathEscape`: keeps unreserved characters and the sub-delims allowed in a segment.
pub fn path_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~$&+,;=:@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_parsing_reads_as_go_and_keeps_the_parts() {
        assert_eq!(Uri::parse_go(":x").unwrap_err(), "missing protocol scheme");
        assert_eq!(Uri::parse_go("1a:b").unwrap_err(), "first path segment in URL cannot contain colon");
        assert_eq!(Uri::parse_go("http://a:x/").unwrap_err(), "invalid port \":x\" after host");
        assert_eq!(Uri::parse_go("http://a/%zz").unwrap_err(), "invalid URL escape");
        assert_eq!(Uri::parse_go_request("cb").unwrap_err(), "invalid URI for request");
        let u = Uri::parse_go("HTTPS://me:pw@[::1]:8443/p?q=1#f").unwrap();
        assert!(u.scheme_is("https"));
        assert_eq!((u.userinfo(), u.host(), u.hostname(), u.port()), (Some("me:pw"), "[::1]", "::1", "8443"));
        assert_eq!((u.path, u.query, u.fragment), ("/p", Some("q=1"), Some("f")));
        let bare = Uri::parse_go("/only/a/path").unwrap();
        assert_eq!((bare.scheme, bare.authority, bare.path), ("", None, "/only/a/path"));
    }

    #[test]
    fn strict_parsing_refuses_what_go_would_take() {
        for bad in [
            "http://a b/",
            "http://[::1/cb",
            "http://a:b:c/",
            "https://x/#a#b",
            "/relative",
            "http:",
            "http://h/\u{e9}",
        ] {
            assert!(Uri::parse_absolute(bad).is_none(), "{bad}");
        }
        let native = Uri::parse_absolute("com.example.app:/cb").unwrap();
        assert_eq!((native.scheme, native.authority, native.path), ("com.example.app", None, "/cb"));
        // Both parsers agree on an ordinary redirect URI.
        let (a, b) = (
            Uri::parse_absolute("https://rp.example:8443/cb?x=1").unwrap(),
            Uri::parse_go("https://rp.example:8443/cb?x=1").unwrap(),
        );
        assert_eq!(a, b);
    }

    #[test]
    fn loopback_redirects_may_change_the_port_only() {
        let reg = Uri::parse_absolute("http://127.0.0.1/cb").unwrap();
        let ok = |s: &str| loopback_matches(&reg, &Uri::parse_absolute(s).unwrap());
        assert!(ok("http://127.0.0.1:51234/cb"));
        assert!(!ok("http://127.0.0.1:0/cb"), "port 0 is no port");
        assert!(!ok("http://127.0.0.1:5000/other"));
        assert!(!ok("http://u@127.0.0.1:5000/cb"), "userinfo");
        assert!(!ok("https://127.0.0.1:5000/cb"));
        let localhost = Uri::parse_absolute("http://localhost/cb").unwrap();
        assert!(!loopback_matches(&localhost, &Uri::parse_absolute("http://localhost:5000/cb").unwrap()));
    }

    #[test]
    fn only_https_and_local_http_redirects_prove_the_client() {
        assert!(redirect_proves_client("https://rp.example/cb"));
        assert!(redirect_proves_client("http://127.0.0.1:8080/cb"));
        assert!(redirect_proves_client("http://localhost/cb"));
        assert!(redirect_proves_client("http://[::1]:9/cb"));
        assert!(!redirect_proves_client("http://rp.example/cb"));
        assert!(!redirect_proves_client("com.example.app:/cb"));
        assert!(!redirect_proves_client("not a uri"));
    }

    #[test]
    fn redirect_targets() {
        assert!(!redirect_scheme_allowed("JavaScript") && redirect_scheme_allowed("com.example.app"));
        assert!(valid_host("a.example") && valid_host("::1") && valid_host("rp_1.example."));
        assert!(!valid_host("*.example.com") && !valid_host("") && !valid_host("a..b") && !valid_host("a%2eb"));
        assert_eq!(path_escape("a b/c:d"), "a%20b%2Fc:d");
    }
}
