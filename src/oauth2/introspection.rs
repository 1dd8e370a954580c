//! RFC 7662 introspection answers with Hydra's fields, from a stored token record.
//!
//! Invariant: anything not provably active (unknown, forged, expired, revoked, missing a
//! required scope) is exactly `{"active":false}`, with no hint why.

use crate::oauth2::scope::{self, ScopeStrategy};
use hydra_storage::{TokenKind, TokenRecord};
use serde_json::{json, Value};

pub fn inactive() -> Value {
    json!({"active": false})
}

/// Whether every scope in `required` (space separated) is covered by the granted scopes.
pub fn has_required_scopes(strategy: ScopeStrategy, granted: &str, required: Option<&str>) -> bool {
    let granted: Vec<&str> = scope::split(granted);
    required.map(scope::split).unwrap_or_default().iter().all(|r| strategy.matches(granted.iter().copied(), r))
}

/// The active answer for a record that passed every check.
pub fn active(rec: &TokenRecord, issuer: &str) -> Value {
    let mut v = json!({
        "active": true,
        "client_id": rec.client_id,
        "sub": rec.subject,
        "exp": rec.expires_at,
        "iat": rec.issued_at,
        "nbf": rec.issued_at,
        "aud": rec.audience,
        "iss": issuer,
        "token_type": "Bearer",
        "token_use": if rec.kind == TokenKind::Refresh { "refresh_token" } else { "access_token" },
    });
    if let Value::Object(m) = &mut v {
        if !rec.scope.is_empty() {
            m.insert("scope".into(), Value::String(rec.scope.clone()));
        }
        if let Some(Value::Object(ext)) = access_ext(rec) {
            if !ext.is_empty() {
                m.insert("ext".into(), Value::Object(ext));
            }
        }
    }
    v
}

/// The access-token claims (`session.access_token`, introspection `ext`) of a record: the whole
/// `ext` of an access token; the `at` member of a refresh token's or code's grant object, which
/// also carries what re-issuing an ID token needs.
pub fn access_ext(rec: &TokenRecord) -> Option<Value> {
    let v: Value = serde_json::from_str(&rec.ext).ok()?;
    match rec.kind {
        TokenKind::Access => Some(v),
        _ => v.get("at").cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> TokenRecord {
        TokenRecord {
            kind: TokenKind::Access,
            signature: [0; 32],
            family: 1,
            client_id: "c".into(),
            subject: "c".into(),
            scope: "read foo.bar".into(),
            audience: vec![],
            issued_at: 10,
            expires_at: 20,
            ext: String::new(),
        }
    }

    #[test]
    fn active_shape() {
        let v = active(&rec(), "https://issuer");
        assert_eq!(v["active"], true);
        assert_eq!(v["scope"], "read foo.bar");
        assert_eq!(v["aud"], json!([]));
        assert_eq!(v["nbf"], 10);
        assert_eq!(v["token_type"], "Bearer");
        assert_eq!(v["token_use"], "access_token");
        assert!(v.get("ext").is_none());
        let mut r = rec();
        r.scope.clear();
        r.ext = "{\"k\":1}".into();
        let v = active(&r, "i");
        assert!(v.get("scope").is_none());
        assert_eq!(v["ext"]["k"], 1);
    }

    #[test]
    fn required_scopes() {
        assert!(has_required_scopes(ScopeStrategy::Exact, "read foo.bar", None));
        assert!(has_required_scopes(ScopeStrategy::Exact, "read foo.bar", Some("read")));
        assert!(!has_required_scopes(ScopeStrategy::Exact, "read", Some("read write")));
        assert!(!has_required_scopes(ScopeStrategy::Exact, "", Some("read")));
    }
}
