//! JWT access tokens (`strategies.access_token: jwt` or a client's `access_token_strategy`), sans-IO:
//! the claim set Hydra signs with `hydra.jwt.access-token`.
//!
//! Invariants: `iss sub aud exp iat nbf jti client_id scp ext` are the server's and a consent
//! app's `session.access_token` cannot override them (`oauth2.allowed_top_level_claims` naming one
//! of them is ignored, as Hydra); `aud` is always a list (`[]` when nothing was granted); the
//! `jti` names the token's record, so a JWT is only ever honoured by this server while its record
//! lives (introspection, revocation, userinfo).

use serde_json::{json, Map, Value};

/// Claims the server sets itself.
const RESERVED: [&str; 10] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id", "scp", "ext"];

/// `strategies.jwt.scope_claim`: how the granted scope is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScopeClaim {
    /// `scp` as a list (Hydra's default).
    #[default]
    List,
    /// `scope` as a space-separated string (RFC 9068 §2.2.3).
    String,
    /// Both.
    Both,
}

impl ScopeClaim {
    pub fn parse(s: &str) -> Option<ScopeClaim> {
        match s {
            "list" => Some(ScopeClaim::List),
            "string" => Some(ScopeClaim::String),
            "both" => Some(ScopeClaim::Both),
            _ => None,
        }
    }
}

/// How the claim set is shaped (`strategies.jwt.scope_claim`, `oauth2.exclude_not_before_claim`,
/// `oauth2.allowed_top_level_claims`, `oauth2.mirror_top_level_claims`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shaping {
    pub scope_claim: ScopeClaim,
    pub exclude_not_before: bool,
    pub allowed_top_level: Vec<String>,
    pub mirror_top_level: bool,
    /// `oauth2.preserve_ext_claims`: without mirroring, the claims not promoted to the top level
    /// stay under `ext`.
    pub preserve_ext: bool,
}

impl Default for Shaping {
    fn default() -> Self {
        Shaping {
            scope_claim: ScopeClaim::List,
            exclude_not_before: false,
            allowed_top_level: Vec::new(),
            mirror_top_level: true,
            preserve_ext: false,
        }
    }
}

/// Everything one JWT access token says.
#[derive(Debug, Clone)]
pub struct AccessClaims<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    pub client_id: &'a str,
    pub audience: &'a [String],
    /// Space-separated, as granted.
    pub scope: &'a str,
    pub issued_at: i64,
    pub expires_at: i64,
    pub jti: &'a str,
    /// `session.access_token` from the consent app (empty for client credentials).
    pub ext: &'a Map<String, Value>,
}

impl AccessClaims<'_> {
    pub fn to_json(&self, shaping: &Shaping) -> Value {
        let mut m = Map::new();
        for name in &shaping.allowed_top_level {
            if RESERVED.contains(&name.as_str()) {
                continue;
            }
            if let Some(v) = self.ext.get(name) {
                m.insert(name.clone(), v.clone());
            }
        }
        if shaping.mirror_top_level {
            m.insert("ext".into(), Value::Object(self.ext.clone()));
        } else if shaping.preserve_ext {
            let rest: Map<String, Value> = self
                .ext
                .iter()
                .filter(|(k, _)| !m.contains_key(k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            m.insert("ext".into(), Value::Object(rest));
        }
        m.insert("iss".into(), json!(self.issuer));
        m.insert("sub".into(), json!(self.subject));
        m.insert("aud".into(), json!(self.audience));
        m.insert("exp".into(), json!(self.expires_at));
        m.insert("iat".into(), json!(self.issued_at));
        if !shaping.exclude_not_before {
            m.insert("nbf".into(), json!(self.issued_at));
        }
        m.insert("jti".into(), json!(self.jti));
        m.insert("client_id".into(), json!(self.client_id));
        let scopes: Vec<&str> = self.scope.split(' ').filter(|s| !s.is_empty()).collect();
        if shaping.scope_claim != ScopeClaim::String {
            m.insert("scp".into(), json!(scopes));
        }
        if shaping.scope_claim != ScopeClaim::List {
            m.insert("scope".into(), json!(scopes.join(" ")));
        }
        Value::Object(m)
    }
}

/// Whether a presented token has the shape of a compact JWS (three base64url parts), so it is
/// checked as a JWT access token rather than as an opaque one.
pub fn looks_like_jwt(token: &str) -> bool {
    token.len() > 4
        && token.bytes().filter(|b| *b == b'.').count() == 2
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims<'a>(ext: &'a Map<String, Value>, aud: &'a [String]) -> AccessClaims<'a> {
        AccessClaims {
            issuer: "https://op.example",
            subject: "alice",
            client_id: "c1",
            audience: aud,
            scope: "openid offline",
            issued_at: 100,
            expires_at: 3700,
            jti: "j1",
            ext,
        }
    }

    #[test]
    fn hydra_claim_set_by_default() {
        let ext: Map<String, Value> = serde_json::from_value(json!({"role": "admin", "sub": "mallory"})).unwrap();
        let v = claims(&ext, &[]).to_json(&Shaping::default());
        assert_eq!(v["iss"], "https://op.example");
        assert_eq!(v["sub"], "alice", "a consent app cannot override sub");
        assert_eq!(v["aud"], json!([]));
        assert_eq!((v["iat"].as_i64(), v["nbf"].as_i64(), v["exp"].as_i64()), (Some(100), Some(100), Some(3700)));
        assert_eq!(v["scp"], json!(["openid", "offline"]));
        assert!(v.get("scope").is_none());
        assert_eq!(v["ext"], json!({"role": "admin", "sub": "mallory"}));
        assert_eq!((v["client_id"].as_str(), v["jti"].as_str()), (Some("c1"), Some("j1")));
        assert!(v.get("role").is_none(), "extra claims stay under ext unless allowed at top level");
    }

    #[test]
    fn shaping_options() {
        let ext: Map<String, Value> = serde_json::from_value(json!({"role": "admin", "exp": 1})).unwrap();
        let aud = vec!["api".to_string()];
        let shaping = Shaping {
            scope_claim: ScopeClaim::Both,
            exclude_not_before: true,
            allowed_top_level: vec!["role".into(), "exp".into(), "missing".into()],
            mirror_top_level: false,
            preserve_ext: false,
        };
        let v = claims(&ext, &aud).to_json(&shaping);
        assert_eq!(v["role"], "admin");
        assert_eq!(v["exp"], 3700, "a reserved name is never promoted");
        assert!(v.get("missing").is_none() && v.get("ext").is_none() && v.get("nbf").is_none());
        assert_eq!((v["scope"].as_str(), &v["scp"]), (Some("openid offline"), &json!(["openid", "offline"])));
        assert_eq!(v["aud"], json!(["api"]));
        let preserved = Shaping {
            allowed_top_level: vec!["role".into()],
            mirror_top_level: false,
            preserve_ext: true,
            ..Shaping::default()
        };
        let v = claims(&ext, &aud).to_json(&preserved);
        assert_eq!((&v["role"], &v["ext"]), (&json!("admin"), &json!({"exp": 1})), "only what was not promoted");
        let only_string = Shaping { scope_claim: ScopeClaim::String, ..Shaping::default() };
        let v = claims(&ext, &aud).to_json(&only_string);
        assert!(v.get("scp").is_none());
        assert_eq!(ScopeClaim::parse("both"), Some(ScopeClaim::Both));
        assert_eq!(ScopeClaim::parse("LIST"), None);
    }

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"));
        for t in ["ory_at_abc.def", "a.b", "a.b.c.d", "a b.c.d", "...", ""] {
            assert!(!looks_like_jwt(t), "{t:?}");
        }
    }
}
