//! OpenID Connect ID-token claims (Core §2, §3.1.3.6) and subject identifiers (§8), sans-IO.
//!
//! Invariants: the standard claims are computed here and win over extra claims a consent app
//! put in `session.id_token`; `at_hash` and `c_hash` are bound to the access token and code
//! issued beside the ID token, with the hash of the signing algorithm; a pairwise subject never reveals the local one.

use crate::jose::jwk::Alg;
use crate::jose::jws::half_hash;
use serde_json::{json, Map, Value};

/// Claims the server sets itself; a consent app cannot override them.
const RESERVED: [&str; 15] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "rat",
    "auth_time",
    "nonce",
    "at_hash",
    "c_hash",
    "acr",
    "amr",
    "sid",
    "jti",
];

/// Everything an ID token says.
#[derive(Debug, Clone)]
pub struct IdTokenClaims<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    pub client_id: &'a str,
    pub now: i64,
    pub lifespan_secs: i64,
    pub requested_at: i64,
    pub auth_time: i64,
    pub nonce: Option<&'a str>,
    pub acr: &'a str,
    pub amr: &'a [String],
    pub sid: &'a str,
    pub jti: &'a str,
    /// The access token issued with it, for `at_hash`.
    pub access_token: Option<&'a str>,
    /// The code issued with it (hybrid flow), for `c_hash` (OIDC Core §3.3.2.11).
    pub code: Option<&'a str>,
    pub alg: Alg,
    /// `session.id_token` from the consent app.
    pub extra: &'a Map<String, Value>,
}

impl IdTokenClaims<'_> {
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        for (k, v) in self.extra {
            if !RESERVED.contains(&k.as_str()) {
                m.insert(k.clone(), v.clone());
            }
        }
        m.insert("iss".into(), json!(self.issuer));
        m.insert("sub".into(), json!(self.subject));
        m.insert("aud".into(), json!([self.client_id]));
        m.insert("exp".into(), json!(self.now + self.lifespan_secs));
        m.insert("iat".into(), json!(self.now));
        m.insert("rat".into(), json!(self.requested_at));
        m.insert("auth_time".into(), json!(self.auth_time));
        if let Some(n) = self.nonce.filter(|n| !n.is_empty()) {
            m.insert("nonce".into(), json!(n));
        }
        if let Some(at) = self.access_token {
            m.insert("at_hash".into(), json!(half_hash(self.alg, at.as_bytes())));
        }
        if let Some(code) = self.code {
            m.insert("c_hash".into(), json!(half_hash(self.alg, code.as_bytes())));
        }
        if !self.acr.is_empty() {
            m.insert("acr".into(), json!(self.acr));
        }
        if !self.amr.is_empty() {
            m.insert("amr".into(), json!(self.amr));
        }
        m.insert("sid".into(), json!(self.sid));
        m.insert("jti".into(), json!(self.jti));
        Value::Object(m)
    }
}

/// The `sub` a client sees: the local subject for `public` clients; for `pairwise` clients
/// `hex(SHA-256(sector ‖ subject ‖ salt))`, the sector being the host of the client's single
/// URI (its `sector_identifier_uri`, else its one redirect URI) as Go's `url.URL.Host` gives
/// it, a port included, so subjects match those Hydra issued.
pub fn subject_for(subject_type: &str, subject: &str, redirect_uris: &[String], salt: &str) -> Option<String> {
    if subject_type != "pairwise" {
        return Some(subject.to_string());
    }
    let [uri] = redirect_uris else { return None };
    let host = uri.split_once("://")?.1.split(['/', '?', '#']).next()?;
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let d = ring::digest::digest(
        &ring::digest::SHA256,
        [host.as_bytes(), subject.as_bytes(), salt.as_bytes()].concat().as_slice(),
    );
    Some(crate::token::hex(d.as_ref()))
}

/// Userinfo (Core §5.3): the grant's extra claims (the consent app's `session.id_token`, never
/// one of the claims the server sets itself) and the subject the client sees.
pub fn userinfo(client_subject: &str, extra: &Map<String, Value>) -> Value {
    let mut m: Map<String, Value> =
        extra.iter().filter(|(k, _)| !RESERVED.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    m.insert("sub".into(), json!(client_subject));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base<'a>(extra: &'a Map<String, Value>, amr: &'a [String]) -> IdTokenClaims<'a> {
        IdTokenClaims {
            issuer: "https://op.example/",
            subject: "alice",
            client_id: "rp",
            now: 1000,
            lifespan_secs: 3600,
            requested_at: 990,
            auth_time: 995,
            nonce: Some("n-0S6_WzA2Mj"),
            acr: "",
            amr,
            sid: "sid-1",
            jti: "jti-1",
            access_token: Some("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            code: Some("Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk"),
            alg: Alg::RS256,
            extra,
        }
    }

    #[test]
    fn standard_claims_win_and_at_hash_and_c_hash_match_the_spec_examples() {
        let mut extra = Map::new();
        extra.insert("sub".into(), json!("mallory"));
        extra.insert("email".into(), json!("alice@example.com"));
        let amr = vec!["pwd".to_string()];
        let v = base(&extra, &amr).to_json();
        assert_eq!(v["sub"], "alice");
        assert_eq!(v["email"], "alice@example.com");
        assert_eq!(v["aud"], json!(["rp"]));
        assert_eq!(
            (v["exp"].as_i64(), v["iat"].as_i64(), v["auth_time"].as_i64()),
            (Some(4600), Some(1000), Some(995))
        );
        assert_eq!(v["nonce"], "n-0S6_WzA2Mj");
        assert_eq!(v["amr"], json!(["pwd"]));
        assert!(v.get("acr").is_none(), "empty acr is left out");
        // OpenID Connect Core A.3: at_hash of this access token.
        assert_eq!(v["at_hash"], "77QmUPtjPfzWtF2AnpK9RQ");
        // OpenID Connect Core A.4: c_hash of this code.
        assert_eq!(v["c_hash"], "LDktKdoQak3Pk0cnXxCltA");
        let u = userinfo("alice", &extra);
        assert!(u.get("nonce").is_none() && u.get("at_hash").is_none() && u.get("exp").is_none());
        assert_eq!(u["sub"], "alice");
        assert_eq!(u["email"], "alice@example.com");
    }

    #[test]
    fn pairwise_subjects_differ_per_sector_and_hide_the_local_one() {
        let a = subject_for("pairwise", "alice", &["https://a.example/cb".into()], "salt-1234").unwrap();
        let a2 = subject_for("pairwise", "alice", &["https://a.example:8443/other".into()], "salt-1234").unwrap();
        let b = subject_for("pairwise", "alice", &["https://b.example/cb".into()], "salt-1234").unwrap();
        assert_ne!(a, a2, "another port is another sector (Go's Host keeps it, so Hydra's does)");
        assert_ne!(a, b);
        // The sector as Hydra hashes it: host and port, no user information.
        let expect = |sector: &str| {
            let d = ring::digest::digest(&ring::digest::SHA256, format!("{sector}alicesalt-1234").as_bytes());
            crate::token::hex(d.as_ref())
        };
        assert_eq!(a, expect("a.example"));
        assert_eq!(a2, expect("a.example:8443"));
        let with_user = subject_for("pairwise", "alice", &["https://u@a.example:8443/cb".into()], "salt-1234");
        assert_eq!(with_user.as_deref(), Some(expect("a.example:8443").as_str()));
        assert_eq!(a.len(), 64);
        assert!(!a.contains("alice"));
        assert_eq!(subject_for("public", "alice", &[], "s").as_deref(), Some("alice"));
        assert_eq!(subject_for("pairwise", "alice", &["https://a/cb".into(), "https://b/cb".into()], "s"), None);
    }
}
