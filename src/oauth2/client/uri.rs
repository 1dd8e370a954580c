//! The URI checks Hydra's client rules make, as Go's `url.Parse` / `url.ParseRequestURI` make
//! them (so error messages match Hydra's), plus the URLs built from a client id.

use super::*;
// ---------------------------------------------------------------------------------------------
// Minimal URI parsing (enough for Go's url.Parse / url.ParseRequestURI checks Hydra performs)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default, PartialEq)]
pub(super) struct Uri<'a> {
    /// Lowercased like Go does.
    pub(super) scheme: String,
    pub(super) has_authority: bool,
    pub(super) userinfo: Option<&'a str>,
    /// Host as written, including brackets for IPv6.
    pub(super) host: &'a str,
    pub(super) port: &'a str,
    pub(super) path: &'a str,
    pub(super) query: Option<&'a str>,
    pub(super) fragment: Option<&'a str>,
}

impl Uri<'_> {
    /// Host without IPv6 brackets (Go's `Hostname()`).
    pub(super) fn hostname(&self) -> &str {
        self.host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(self.host)
    }
}

pub(super) fn valid_percent_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let ok = b.len() > i + 2 && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit();
            if !ok {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// Parses a URI reference the way Go's `url.Parse` does for the cases that matter here.
pub(super) fn parse_uri(s: &str) -> Result<Uri<'_>, String> {
    if s.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("net/url: invalid control character in URL".to_owned());
    }
    let (rest, fragment) = match s.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (s, None),
    };
    let mut uri = Uri { fragment, ..Uri::default() };
    // Scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" — only if it appears before any '/'.
    let mut rest = rest;
    if let Some(colon) = rest.find(':') {
        let cand = &rest[..colon];
        let mut chars = cand.chars();
        let first_alpha = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
        if first_alpha && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
            uri.scheme = cand.to_ascii_lowercase();
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
        uri.has_authority = true;
        let end = after.find('/').unwrap_or(after.len());
        let (authority, path) = after.split_at(end);
        uri.path = path;
        let host_port = match authority.rsplit_once('@') {
            Some((ui, hp)) => {
                uri.userinfo = Some(ui);
                hp
            }
            None => authority,
        };
        let (host, port) = if host_port.starts_with('[') {
            let close = host_port.find(']').ok_or("missing ']' in host")?;
            let (h, p) = host_port.split_at(close + 1);
            match p {
                "" => (h, ""),
                _ => (h, p.strip_prefix(':').ok_or("invalid port after host")?),
            }
        } else {
            match host_port.rsplit_once(':') {
                Some((h, p)) => (h, p),
                None => (host_port, ""),
            }
        };
        if !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("invalid port \":{port}\" after host"));
        }
        let host_ok = host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%:[]".contains(&b));
        if !host_ok {
            return Err(format!("invalid character in host name {host:?}"));
        }
        uri.host = host;
        uri.port = port;
    } else {
        uri.path = rest;
    }
    if !valid_percent_escapes(uri.host) || !valid_percent_escapes(uri.path) {
        return Err("invalid URL escape".to_owned());
    }
    Ok(uri)
}

/// Go's `url.ParseRequestURI`: like `parse_uri` but `#` is not special and the URL must be
/// absolute or an absolute path.
pub(super) fn parse_request_uri(s: &str) -> Result<Uri<'_>, String> {
    if s.is_empty() {
        return Err("empty url".to_owned());
    }
    let u = parse_uri(s)?;
    if u.scheme.is_empty() && !s.starts_with('/') {
        return Err("invalid URI for request".to_owned());
    }
    Ok(u)
}

/// OpenID Connect Registration §5: the document at `sector_identifier_uri` is a JSON array of
/// URIs that must include every redirect URI of the client.
pub fn check_sector_document(body: &[u8], redirect_uris: &[String]) -> Result<(), ClientError> {
    let listed: Vec<String> = serde_json::from_slice(body).map_err(|_| {
        ClientError::invalid_client_metadata(
            "Unable to read sector_identifier_uri: it must serve a JSON array of URIs.",
        )
    })?;
    match redirect_uris.iter().find(|r| !listed.contains(r)) {
        Some(r) => Err(ClientError::invalid_client_metadata(&format!(
            "Redirect URL \"{r}\" does not match values from sector_identifier_uri."
        ))),
        None => Ok(()),
    }
}

/// fosite's `IsRedirectURISecure`, for the authorize endpoint: plain `http` only for localhost /
/// `*.localhost` / loopback IPs; https and custom (native-app) schemes pass.
pub fn is_redirect_uri_secure(uri: &str) -> bool {
    match parse_uri(uri) {
        Ok(u) => u.scheme != "http" || is_localhost(u.hostname()),
        Err(_) => false,
    }
}

pub(super) fn is_localhost(hostname: &str) -> bool {
    hostname == "localhost"
        || hostname.ends_with(".localhost")
        || hostname.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A host a redirect can go to: an IP literal, or a DNS name whose labels are non-empty and made
/// of letters, digits, `-` and `_`. No wildcard (`*.example.com` is a pattern, not a host), no
/// percent-escapes, nothing empty (`https://` has no host).
pub(super) fn valid_host(hostname: &str) -> bool {
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

/// `registration_client_uri` as Hydra builds it: `<public>/oauth2/register/<PathEscape(id)>`.
pub fn registration_client_uri(policy: &ClientPolicy, client_id: &str) -> String {
    format!("{}/oauth2/register/{}", policy.public_url.trim_end_matches('/'), path_escape(client_id))
}

/// `Location` header of the admin create response: `/admin/clients/<PathEscape(id)>`.
pub fn admin_location(client_id: &str) -> String {
    format!("/admin/clients/{}", path_escape(client_id))
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

/// Schemes a browser would execute or render in place rather than hand to an application: a
/// redirect (or a self-submitting form) there runs script in this server's origin.
pub const FORBIDDEN_REDIRECT_SCHEMES: [&str; 4] = ["javascript", "data", "vbscript", "file"];

/// Whether `scheme` may receive an authorization response (registration and `/oauth2/auth`
/// judge it with this one function).
pub fn redirect_scheme_allowed(scheme: &str) -> bool {
    !FORBIDDEN_REDIRECT_SCHEMES.iter().any(|f| f.eq_ignore_ascii_case(scheme))
}
