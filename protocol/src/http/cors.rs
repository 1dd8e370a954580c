//! Cross-origin resource sharing (sans-IO): `serve.{public,admin}.cors.*` checked once into a
//! [`Cors`] policy, origin patterns, and the headers of a preflight and of an actual request.
//!
//! Invariants: a wildcard pattern names one DNS label under a registrable-looking domain
//! (`https://*.example.com`), anything wider is refused at start-up, never ignored; an
//! allow-all policy (`*`, or no origins listed, as Hydra) answers `Access-Control-Allow-Origin: *`
//! and never with credentials (the Fetch standard forbids the pair, and reflecting any origin
//! with credentials would let every site read credentialed answers); a preflight is decided from
//! the policy and the client snapshot alone (no storage).

/// One allowed origin: exact (`https://app.example.com`, lower-cased), or a wildcard for one
/// label (`https://*.example.com` matches `https://a.example.com`, not `https://a.b.example.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPattern {
    Exact(String),
    Label { prefix: String, suffix: String },
}

impl OriginPattern {
    /// Parses a pattern; `Err` says why it is refused.
    pub fn parse(raw: &str) -> Result<OriginPattern, String> {
        let p = raw.trim().trim_end_matches('/').to_ascii_lowercase();
        let Some((scheme, host)) = p.split_once("://") else {
            return Err(format!("origin {raw:?} must be scheme://host[:port]"));
        };
        if scheme != "http" && scheme != "https" {
            return Err(format!("origin {raw:?} must use http or https"));
        }
        if host.is_empty() || host.contains(['/', '?', '#', '@']) {
            return Err(format!("origin {raw:?} must have a host and nothing after it"));
        }
        match host.matches('*').count() {
            0 => Ok(OriginPattern::Exact(p)),
            1 => {
                // Only a leading label: `*.` then at least two labels (`*.example.com`), so a
                // pattern never covers a whole top-level domain.
                let Some(rest) = host.strip_prefix("*.") else {
                    return Err(format!(
                        "origin {raw:?}: a wildcard may only be the first label (https://*.example.com)"
                    ));
                };
                let name = rest.split(':').next().unwrap_or("");
                let labels: Vec<&str> = name.split('.').collect();
                if labels.len() < 2 || labels.iter().any(|l| l.is_empty()) {
                    return Err(format!(
                        "origin {raw:?}: a wildcard must be followed by a domain of two labels or more"
                    ));
                }
                Ok(OriginPattern::Label { prefix: format!("{scheme}://"), suffix: format!(".{rest}") })
            }
            _ => Err(format!("origin {raw:?} may hold one wildcard at most")),
        }
    }

    /// Whether a request's `Origin` matches (compared lower-cased).
    pub fn matches(&self, origin: &str) -> bool {
        let o = origin.to_ascii_lowercase();
        match self {
            OriginPattern::Exact(e) => *e == o,
            OriginPattern::Label { prefix, suffix } => {
                o.strip_prefix(prefix.as_str()).and_then(|r| r.strip_suffix(suffix.as_str())).is_some_and(|label| {
                    !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
            }
        }
    }
}

impl OriginPattern {
    /// The pattern as one string (`https://app.example`, `https://*.example.com`): the key of an
    /// index of patterns.
    pub fn key(&self) -> String {
        match self {
            OriginPattern::Exact(e) => e.clone(),
            OriginPattern::Label { prefix, suffix } => format!("{prefix}*{suffix}"),
        }
    }
}

/// The keys of the patterns that could allow `origin`: the origin itself, and its one-label
/// wildcard when its first label is a valid wildcard label (`https://a.example.com` →
/// `https://*.example.com`). An index holding pattern keys answers a request with two lookups.
pub fn candidate_keys(origin: &str) -> Vec<String> {
    let o = origin.to_ascii_lowercase();
    let mut keys = vec![o.clone()];
    if let Some((scheme, host)) = o.split_once("://") {
        if let Some((label, rest)) = host.split_once('.') {
            if !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                keys.push(format!("{scheme}://*.{rest}"));
            }
        }
    }
    keys
}

/// Whether one of a client's `allowed_cors_origins` allows `origin` (patterns that do not parse,
/// which registration refuses, allow nothing).
pub fn client_allows(allowed: &[String], origin: &str) -> bool {
    allowed.iter().any(|a| OriginPattern::parse(a).is_ok_and(|p| p.matches(origin)))
}

/// Hydra's default `allowed_methods`, and the only methods it accepts.
pub const METHODS: [&str; 9] = ["POST", "GET", "PUT", "PATCH", "DELETE", "CONNECT", "HEAD", "OPTIONS", "TRACE"];
/// Hydra's default `allowed_headers`.
pub const HEADERS: [&str; 6] =
    ["Accept", "Content-Type", "Content-Length", "Accept-Language", "Content-Language", "Authorization"];
/// Hydra's default `exposed_headers`.
pub const EXPOSED: [&str; 7] =
    ["Cache-Control", "Expires", "Last-Modified", "Pragma", "Content-Length", "Content-Language", "Content-Type"];

/// One listener's CORS policy (present only when `cors.enabled`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    /// Empty: every origin (answered with `*`, without credentials).
    pub origins: Vec<OriginPattern>,
    pub any_origin: bool,
    pub methods: Vec<String>,
    /// Lower case.
    pub headers: Vec<String>,
    /// `Access-Control-Expose-Headers`, joined.
    pub exposed: String,
    pub allow_credentials: bool,
    /// Seconds; 0 sends no `Access-Control-Max-Age`.
    pub max_age: u64,
    /// Log each decision (`cors.debug`).
    pub debug: bool,
}

/// What the policy says of an origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Every origin is allowed: `*`, never with credentials.
    Any,
    /// This origin is allowed: reflected, with credentials when configured.
    Origin,
    Refused,
}

/// The settings as configured (the config module fills it from the keys).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Option<Vec<String>>,
    pub allowed_headers: Option<Vec<String>>,
    pub exposed_headers: Option<Vec<String>>,
    pub allow_credentials: bool,
    pub max_age: i64,
    pub debug: bool,
}

impl Cors {
    pub fn new(s: &Settings) -> Result<Cors, String> {
        let mut origins = Vec::new();
        let mut any_origin = s.allowed_origins.is_empty();
        for o in &s.allowed_origins {
            if o.trim() == "*" {
                any_origin = true;
            } else {
                origins.push(OriginPattern::parse(o)?);
            }
        }
        let methods = match &s.allowed_methods {
            None => METHODS.iter().map(|m| m.to_string()).collect(),
            Some(ms) => {
                let mut out = Vec::new();
                for m in ms {
                    let up = m.trim().to_ascii_uppercase();
                    if !METHODS.contains(&up.as_str()) {
                        return Err(format!("allowed_methods: {m:?} is not one of {}", METHODS.join(", ")));
                    }
                    out.push(up);
                }
                out
            }
        };
        let names = |v: &Option<Vec<String>>, default: &[&str], key: &str| -> Result<Vec<String>, String> {
            let list: Vec<String> = match v {
                None => default.iter().map(|h| h.to_string()).collect(),
                Some(l) => l.iter().map(|h| h.trim().to_string()).collect(),
            };
            match list.iter().find(|h| !super::is_token(h)) {
                Some(bad) => Err(format!("{key}: {bad:?} is not a header name")),
                None => Ok(list),
            }
        };
        let headers =
            names(&s.allowed_headers, &HEADERS, "allowed_headers")?.iter().map(|h| h.to_ascii_lowercase()).collect();
        let exposed = names(&s.exposed_headers, &EXPOSED, "exposed_headers")?.join(", ");
        if s.max_age < 0 {
            return Err("max_age must not be negative".into());
        }
        Ok(Cors {
            origins,
            any_origin,
            methods,
            headers,
            exposed,
            allow_credentials: s.allow_credentials,
            max_age: s.max_age as u64,
            debug: s.debug,
        })
    }

    /// The policy's own verdict on an origin (without any client's list).
    pub fn decide(&self, origin: &str) -> Decision {
        if self.any_origin {
            Decision::Any
        } else if self.origins.iter().any(|p| p.matches(origin)) {
            Decision::Origin
        } else {
            Decision::Refused
        }
    }

    fn allow_origin(&self, origin: &str, d: Decision, out: &mut Vec<(&'static str, String)>) {
        match d {
            Decision::Any => out.push(("Access-Control-Allow-Origin", "*".into())),
            Decision::Origin => {
                out.push(("Access-Control-Allow-Origin", origin.to_string()));
                if self.allow_credentials {
                    out.push(("Access-Control-Allow-Credentials", "true".into()));
                }
            }
            Decision::Refused => {}
        }
    }

    /// A preflight's headers (`OPTIONS` with `Access-Control-Request-Method`): the origin must be
    /// allowed (`d`), the method one of `allowed_methods` and every requested header one of
    /// `allowed_headers`; otherwise only `Vary`.
    pub fn preflight(
        &self,
        origin: &str,
        d: Decision,
        method: &str,
        headers: Option<&str>,
    ) -> Vec<(&'static str, String)> {
        let mut out =
            vec![("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers".to_string())];
        let method_ok = self.methods.iter().any(|m| m == method);
        let asked: Vec<String> =
            headers.unwrap_or("").split(',').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect();
        let headers_ok = asked.iter().all(|h| self.headers.contains(h));
        if d == Decision::Refused || !method_ok || !headers_ok {
            return out;
        }
        self.allow_origin(origin, d, &mut out);
        out.push(("Access-Control-Allow-Methods", method.to_string()));
        if !asked.is_empty() {
            out.push(("Access-Control-Allow-Headers", asked.join(", ")));
        }
        if self.max_age > 0 {
            out.push(("Access-Control-Max-Age", self.max_age.to_string()));
        }
        out
    }

    /// The headers of an actual request's answer.
    pub fn actual(&self, origin: &str, d: Decision, method: &str) -> Vec<(&'static str, String)> {
        let mut out = vec![("Vary", "Origin".to_string())];
        if d == Decision::Refused || !self.methods.iter().any(|m| m == method) {
            return out;
        }
        self.allow_origin(origin, d, &mut out);
        if !self.exposed.is_empty() {
            out.push(("Access-Control-Expose-Headers", self.exposed.clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str]) -> Cors {
        Cors::new(&Settings {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allow_credentials: true,
            ..Default::default()
        })
        .unwrap()
    }

    fn get<'a>(h: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        h.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn patterns() {
        let p = OriginPattern::parse("https://*.example.com").unwrap();
        assert!(p.matches("https://a.example.com"));
        assert!(p.matches("HTTPS://A.Example.COM"));
        assert!(!p.matches("https://a.b.example.com"), "one label only");
        assert!(!p.matches("https://.example.com"));
        assert!(!p.matches("http://a.example.com"));
        assert!(!p.matches("https://evil-example.com"));
        assert!(!p.matches("https://a.example.com.evil.net"));
        let e = OriginPattern::parse("https://App.example.com:8443/").unwrap();
        assert!(e.matches("https://app.example.com:8443"));
        assert!(!e.matches("https://app.example.com"));
        for bad in [
            "*",
            "https://*",
            "https://*.com",
            "https://*foo.com",
            "https://www.ory.*",
            "https://a.*.com",
            "ftp://a.example",
            "https://a.example/path",
            "https://*.*.example.com",
            "a.example",
        ] {
            assert!(OriginPattern::parse(bad).is_err(), "{bad} was accepted");
        }
        assert!(client_allows(&["https://*.example.com".into()], "https://x.example.com"));
        // The index keys agree with matching.
        for (pattern, origin, hit) in [
            ("https://*.example.com", "https://A.example.com", true),
            ("https://*.example.com", "https://a.b.example.com", false),
            ("https://app.example", "https://APP.example", true),
            ("https://*.example.com:8443", "https://x.example.com:8443", true),
        ] {
            let p = OriginPattern::parse(pattern).unwrap();
            assert_eq!(candidate_keys(origin).contains(&p.key()), hit, "{pattern} {origin}");
            assert_eq!(p.matches(origin), hit, "{pattern} {origin}");
        }
        assert!(!client_allows(&["https://*.example.com".into(), "junk".into()], "https://example.com"));
    }

    #[test]
    fn allow_all_never_goes_with_credentials() {
        for origins in [&[][..], &["*"][..], &["*", "https://a.example"][..]] {
            let c = policy(origins);
            let d = c.decide("https://evil.example");
            assert_eq!(d, Decision::Any);
            let h = c.actual("https://evil.example", d, "POST");
            assert_eq!(get(&h, "Access-Control-Allow-Origin"), Some("*"));
            assert_eq!(get(&h, "Access-Control-Allow-Credentials"), None);
        }
    }

    #[test]
    fn listed_origins_are_reflected_with_credentials() {
        let c = policy(&["https://app.example"]);
        assert_eq!(c.decide("https://other.example"), Decision::Refused);
        let d = c.decide("https://app.example");
        let h = c.actual("https://app.example", d, "GET");
        assert_eq!(get(&h, "Access-Control-Allow-Origin"), Some("https://app.example"));
        assert_eq!(get(&h, "Access-Control-Allow-Credentials"), Some("true"));
        assert_eq!(get(&h, "Access-Control-Expose-Headers"), Some(EXPOSED.join(", ").as_str()));
        assert_eq!(get(&h, "Vary"), Some("Origin"));
        let refused = c.actual("https://other.example", Decision::Refused, "GET");
        assert_eq!(refused.len(), 1, "only Vary: {refused:?}");
    }

    #[test]
    fn preflights() {
        let mut c = policy(&["https://app.example"]);
        c.max_age = 600;
        let d = c.decide("https://app.example");
        let h = c.preflight("https://app.example", d, "POST", Some("Content-Type, authorization"));
        assert_eq!(get(&h, "Access-Control-Allow-Origin"), Some("https://app.example"));
        assert_eq!(get(&h, "Access-Control-Allow-Methods"), Some("POST"));
        assert_eq!(get(&h, "Access-Control-Allow-Headers"), Some("content-type, authorization"));
        assert_eq!(get(&h, "Access-Control-Max-Age"), Some("600"));
        for (m, hs) in [("POST", Some("X-Evil")), ("PROPFIND", None)] {
            let h = c.preflight("https://app.example", d, m, hs);
            assert_eq!(get(&h, "Access-Control-Allow-Origin"), None, "{m} {hs:?}");
        }
        assert_eq!(
            get(&c.preflight("https://x.example", Decision::Refused, "GET", None), "Access-Control-Allow-Origin"),
            None
        );
    }

    #[test]
    fn settings_are_checked() {
        let bad = |s: Settings| Cors::new(&s).unwrap_err();
        assert!(bad(Settings { allowed_methods: Some(vec!["FETCH".into()]), ..Default::default() })
            .contains("allowed_methods"));
        assert!(bad(Settings { allowed_headers: Some(vec!["bad header".into()]), ..Default::default() })
            .contains("allowed_headers"));
        assert!(
            bad(Settings { allowed_origins: vec!["https://*.com".into()], ..Default::default() }).contains("wildcard")
        );
        assert!(bad(Settings { max_age: -1, ..Default::default() }).contains("max_age"));
        let c = Cors::new(&Settings { allowed_methods: Some(vec!["get".into()]), ..Default::default() }).unwrap();
        assert_eq!(c.methods, vec!["GET"]);
    }
}
