//! RFC 7662 introspection answers with Hydra's fields, from a stored token record.
//!
//! Invariant: anything not provably active (unknown, forged, expired, revoked, missing a
//! required scope) is exactly `{"active":false}`, with no hint why.

use crate::oauth2::push_json_str;
use crate::oauth2::scope::{self, ScopeStrategy};
use serde_json::{json, Value};
use std::borrow::Cow;
use std::io::Write as _;

pub fn inactive() -> Value {
    json!({"active": false})
}

/// [`inactive`] as bytes, for the hot path.
pub const INACTIVE: &[u8] = br#"{"active":false}"#;

/// Whether every scope in `required` (space separated) is covered by the granted scopes.
pub fn has_required_scopes(strategy: ScopeStrategy, granted: &str, required: Option<&str>) -> bool {
    // Nothing required (the common case) needs no split of the granted scopes.
    let Some(required) = required.filter(|r| !r.trim().is_empty()) else { return true };
    let granted: Vec<&str> = scope::split(granted);
    scope::split(required).iter().all(|r| strategy.matches(granted.iter().copied(), r))
}

/// What an active answer shows of a token that passed every check (read in place from the
/// stored record: nothing is deserialized to build it).
#[derive(Debug, Clone, Copy)]
pub struct ActiveToken<'a> {
    pub refresh: bool,
    pub client_id: &'a str,
    pub subject: &'a str,
    /// Granted scopes, space separated.
    pub scope: &'a str,
    pub issued_at: i64,
    pub expires_at: i64,
    /// The stored `ext` JSON (see [`access_ext`]).
    pub ext: &'a str,
    /// The subject the client sees when it is not `subject` (a pairwise identifier): Hydra's
    /// `obfuscated_subject`, for a resource server to link the token to what the client knows.
    pub obfuscated_subject: Option<&'a str>,
}

/// The active answer (RFC 7662 §2.2, Hydra's fields), written straight to JSON bytes.
pub fn active<'a>(t: &ActiveToken<'a>, audience: impl Iterator<Item = &'a str>, issuer: &str) -> Vec<u8> {
    // Sized for a typical answer (~300-450 bytes) so it is written without growing
    // (`bench/src/bin/allocs.rs -- trace`: 256 bytes grew to 512 on every introspection).
    let mut out = Vec::with_capacity(512 + t.ext.len());
    let s = push_json_str;
    out.extend_from_slice(b"{\"active\":true,\"client_id\":");
    s(&mut out, t.client_id);
    out.extend_from_slice(b",\"sub\":");
    s(&mut out, t.subject);
    if let Some(o) = t.obfuscated_subject.filter(|o| *o != t.subject) {
        out.extend_from_slice(b",\"obfuscated_subject\":");
        s(&mut out, o);
    }
    let _ = write!(out, ",\"exp\":{},\"iat\":{},\"nbf\":{},\"aud\":[", t.expires_at, t.issued_at, t.issued_at);
    for (i, a) in audience.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        s(&mut out, a);
    }
    out.extend_from_slice(b"],\"iss\":");
    s(&mut out, issuer);
    out.extend_from_slice(b",\"token_type\":\"Bearer\",\"token_use\":");
    out.extend_from_slice(if t.refresh { b"\"refresh_token\"" } else { b"\"access_token\"" });
    if !t.scope.is_empty() {
        out.extend_from_slice(b",\"scope\":");
        s(&mut out, t.scope);
    }
    if let Some(ext) = access_ext(t.refresh, t.ext) {
        out.extend_from_slice(b",\"ext\":");
        out.extend_from_slice(ext.as_bytes());
    }
    out.push(b'}');
    out
}

/// The access-token claims (`session.access_token`, introspection `ext`) of a record, as JSON
/// text, or `None` when there are none: the whole `ext` of an access token (checked to be one
/// JSON object, then used as stored); the `at` member of a refresh token's grant object, which
/// also carries what re-issuing an ID token needs.
pub fn access_ext(refresh: bool, ext: &str) -> Option<Cow<'_, str>> {
    let trimmed = ext.trim();
    if !refresh {
        let is_object = trimmed.starts_with('{') && serde_json::from_str::<serde::de::IgnoredAny>(trimmed).is_ok();
        return (is_object && trimmed != "{}").then_some(Cow::Borrowed(trimmed));
    }
    let v: Value = serde_json::from_str(trimmed).ok()?;
    match v.get("at") {
        Some(Value::Object(m)) if !m.is_empty() => serde_json::to_string(m).ok().map(Cow::Owned),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok() -> ActiveToken<'static> {
        ActiveToken {
            refresh: false,
            client_id: "c",
            subject: "c\"q",
            scope: "read foo.bar",
            issued_at: 10,
            expires_at: 20,
            ext: "",
            obfuscated_subject: None,
        }
    }

    fn parse(b: Vec<u8>) -> Value {
        serde_json::from_slice(&b).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&b)))
    }

    #[test]
    fn active_shape() {
        let v = parse(active(&tok(), std::iter::empty(), "https://issuer"));
        assert_eq!(v["active"], true);
        assert_eq!(v["sub"], "c\"q");
        assert_eq!(v["scope"], "read foo.bar");
        assert_eq!(v["aud"], json!([]));
        assert_eq!(v["nbf"], 10);
        assert_eq!(v["exp"], 20);
        assert_eq!(v["iss"], "https://issuer");
        assert_eq!(v["token_type"], "Bearer");
        assert_eq!(v["token_use"], "access_token");
        assert!(v.get("ext").is_none());
        assert!(v.get("obfuscated_subject").is_none());
        let pairwise = ActiveToken { obfuscated_subject: Some("9f86d081"), ..tok() };
        assert_eq!(parse(active(&pairwise, std::iter::empty(), "i"))["obfuscated_subject"], "9f86d081");
        let same = ActiveToken { obfuscated_subject: Some("c\"q"), ..tok() };
        assert!(parse(active(&same, std::iter::empty(), "i")).get("obfuscated_subject").is_none());
        let t = ActiveToken { scope: "", ext: "{\"k\":1}", ..tok() };
        let v = parse(active(&t, ["a", "b\\"].into_iter(), "i"));
        assert!(v.get("scope").is_none());
        assert_eq!(v["ext"]["k"], 1);
        assert_eq!(v["aud"], json!(["a", "b\\"]));
        // Stored ext that is not one JSON object never reaches the answer.
        for bad in ["{}", "[1]", "{\"k\":", "1", "{\"a\":1}}"] {
            let v = parse(active(&ActiveToken { ext: bad, ..tok() }, std::iter::empty(), "i"));
            assert!(v.get("ext").is_none(), "{bad}");
        }
        let r = ActiveToken { refresh: true, ext: "{\"at\":{\"tier\":\"gold\"},\"g\":{}}", ..tok() };
        let v = parse(active(&r, std::iter::empty(), "i"));
        assert_eq!(v["token_use"], "refresh_token");
        assert_eq!(v["ext"], json!({"tier": "gold"}));
    }

    #[test]
    fn inactive_bytes_are_the_inactive_answer() {
        assert_eq!(serde_json::from_slice::<Value>(INACTIVE).unwrap(), inactive());
    }

    #[test]
    fn required_scopes() {
        assert!(has_required_scopes(ScopeStrategy::Exact, "read foo.bar", None));
        assert!(has_required_scopes(ScopeStrategy::Exact, "read foo.bar", Some("read")));
        assert!(!has_required_scopes(ScopeStrategy::Exact, "read", Some("read write")));
        assert!(!has_required_scopes(ScopeStrategy::Exact, "", Some("read")));
    }
}
