//! The JWT bearer grant (RFC 7523 §2.1, `urn:ietf:params:oauth:grant-type:jwt-bearer`) and
//! Hydra's trust relationships (`/admin/trust/grants/jwt-bearer/issuers`), sans-IO.
//!
//! Invariants: an assertion is believed only after its signature verified with a key of a trust
//! relationship for its `iss` (and its `sub`, or one that allows any subject) that has not
//! expired; `aud` must name this server (its token endpoint URL or its issuer); `exp` is required,
//! not past and at most `max_ttl` after `iat` (or now); `iat` and `jti` are required unless
//! configured optional (`oauth2.grant.jwt.*`, as Hydra); requested scopes must be allowed by the
//! relationship. The caller makes the `jti` single use per issuer until `exp` and checks the
//! client's own scopes.

use crate::dates::{parse_rfc3339, rfc3339};
use crate::jose::jwk::Jwk;
use crate::jose::jws::{numeric_date, peek};
use crate::oauth2::error::{ErrorCode, OAuthError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// RFC 7523 §2.1 grant type.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Clock skew allowed between the assertion's issuer and this server.
pub const LEEWAY_SECS: i64 = 60;

/// One trust relationship: `issuer` may assert `subject` (or any subject) with `jwk`, for
/// `scope`, until `expires_at`. Stored as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrustGrant {
    pub id: String,
    pub issuer: String,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub allow_any_subject: bool,
    #[serde(default)]
    pub scope: Vec<String>,
    /// The public key (private members never kept).
    pub jwk: Jwk,
    pub created_at: i64,
    pub expires_at: i64,
}

/// An admin API failure: status and Hydra's herodot body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

impl TrustError {
    fn bad(description: impl Into<String>) -> TrustError {
        TrustError {
            status: 400,
            error: "The request was malformed or contained invalid parameters",
            description: description.into(),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({"error": self.error, "error_description": self.description})
    }
}

impl TrustGrant {
    /// The admin API's view (`trustedOAuth2JwtGrantIssuer`).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "issuer": self.issuer,
            "subject": self.subject,
            "allow_any_subject": self.allow_any_subject,
            "scope": self.scope,
            "public_key": {"set": self.issuer, "kid": self.jwk.kid},
            "created_at": rfc3339(self.created_at),
            "expires_at": rfc3339(self.expires_at),
        })
    }

    /// Whether it vouches for `subject` from `issuer` at `now`.
    pub fn covers(&self, issuer: &str, subject: &str, now: i64) -> bool {
        self.issuer == issuer && (self.allow_any_subject || self.subject == subject) && self.expires_at > now
    }

    /// The relationship's id: derived from its issuer, subject (or any) and key id, formatted as
    /// a UUID (version 8, RFC 9562 §5.8), so two concurrent creations of the same relationship,
    /// on any workers or nodes, write one row rather than two.
    pub fn derived_id(&self) -> String {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for part in
            [self.issuer.as_str(), self.subject.as_str(), if self.allow_any_subject { "*" } else { "" }, &self.jwk.kid]
        {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part.as_bytes());
        }
        let d = ctx.finish();
        let mut b = [0u8; 16];
        b.copy_from_slice(&d.as_ref()[..16]);
        b[6] = (b[6] & 0x0f) | 0x80;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h = crate::token::hex(&b);
        format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
    }

    /// Whether another relationship names the same issuer, subject and key (Hydra: 409).
    pub fn same_as(&self, other: &TrustGrant) -> bool {
        self.issuer == other.issuer
            && self.subject == other.subject
            && self.allow_any_subject == other.allow_any_subject
            && self.jwk.kid == other.jwk.kid
    }
}

/// Missing and `null` members read as empty, as Go's decoder leaves them.
#[derive(Deserialize)]
struct CreateBody {
    issuer: Option<String>,
    subject: Option<String>,
    allow_any_subject: Option<bool>,
    scope: Option<Vec<String>>,
    jwk: Option<Jwk>,
    expires_at: Option<String>,
}

/// `POST /admin/trust/grants/jwt-bearer/issuers`: Hydra's validation, in its order.
pub fn parse_create(body: &[u8], id: String, now: i64) -> Result<TrustGrant, TrustError> {
    let b: CreateBody =
        serde_json::from_slice(body).map_err(|e| TrustError::bad(format!("Unable to decode the request body: {e}")))?;
    let issuer = b.issuer.unwrap_or_default();
    let subject = b.subject.unwrap_or_default();
    let allow_any_subject = b.allow_any_subject.unwrap_or(false);
    if issuer.is_empty() {
        return Err(TrustError::bad("Field 'issuer' is required."));
    }
    if subject.is_empty() && !allow_any_subject {
        return Err(TrustError::bad("One of 'subject' or 'allow_any_subject' field must be set."));
    }
    if !subject.is_empty() && allow_any_subject {
        return Err(TrustError::bad("Both 'subject' and 'allow_any_subject' fields cannot be set at the same time."));
    }
    let expires_at = b
        .expires_at
        .as_deref()
        .and_then(parse_rfc3339)
        .ok_or_else(|| TrustError::bad("Field 'expires_at' is required."))?;
    let Some(jwk) = b.jwk else { return Err(TrustError::bad("Field 'jwk' is required.")) };
    if jwk.kid.is_empty() {
        return Err(TrustError::bad("Field 'jwk' must contain JWK with kid header."));
    }
    // Stricter than Hydra: a key nothing here can verify with, or an encryption key, is refused
    // now rather than failing every assertion later.
    if jwk.use_.as_deref() == Some("enc") || jwk.validate().is_err() || crate::jose::jwk::Alg::of_key(&jwk).is_err() {
        return Err(TrustError::bad(
            "Field 'jwk' must be a valid public signature key (RS256/384/512, PS256/384/512, ES256, ES384 or EdDSA).",
        ));
    }
    if expires_at <= now {
        return Err(TrustError::bad("Field 'expires_at' must lie in the future."));
    }
    Ok(TrustGrant {
        id,
        issuer,
        subject,
        allow_any_subject,
        scope: b.scope.unwrap_or_default(),
        jwk: jwk.public(),
        created_at: now,
        expires_at,
    })
}

/// `oauth2.grant.jwt.*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub iat_optional: bool,
    pub jti_optional: bool,
    pub max_ttl_secs: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { iat_optional: false, jti_optional: false, max_ttl_secs: 720 * 3600 }
    }
}

/// What a good assertion grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asserted {
    /// The verified `iss`: a `jti` is single use per issuer (not per relationship, which an
    /// admin may delete and create again).
    pub issuer: String,
    pub subject: String,
    /// `None` only when `jti_optional` and the assertion has none.
    pub jti: Option<String>,
    pub exp: i64,
    /// The id of the relationship whose key verified it.
    pub grant_id: String,
}

fn invalid_grant(hint: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::hint(ErrorCode::InvalidGrant, hint)
}

/// Checks `assertion` against the trust relationships `grants` (all of them; the ones that apply
/// are chosen here) and the requested `scope`.
pub fn check<G: std::borrow::Borrow<TrustGrant>>(
    assertion: &str,
    grants: &[G],
    audiences: &[&str],
    scope: &[String],
    strategy: crate::oauth2::scope::ScopeStrategy,
    policy: &Policy,
    now: i64,
) -> Result<Asserted, OAuthError> {
    let claimed = peek(assertion, 1).ok_or_else(|| invalid_grant("The 'assertion' is not a JWT."))?;
    let iss = claimed.get("iss").and_then(Value::as_str).filter(|s| !s.is_empty());
    let iss = iss.ok_or_else(|| invalid_grant("The JWT in 'assertion' must contain an 'iss' (issuer) claim."))?;
    let sub = claimed.get("sub").and_then(Value::as_str).filter(|s| !s.is_empty());
    let sub = sub.ok_or_else(|| invalid_grant("The JWT in 'assertion' must contain a 'sub' (subject) claim."))?;
    let kid = peek(assertion, 0).and_then(|h| h.get("kid")?.as_str().map(String::from));
    let candidates: Vec<&TrustGrant> = grants
        .iter()
        .map(|g| g.borrow())
        .filter(|g| g.covers(iss, sub, now) && kid.as_deref().is_none_or(|k| g.jwk.kid == k))
        .collect();
    if candidates.is_empty() {
        return Err(invalid_grant(format!(
            "No public JWK was registered for issuer \"{iss}\" and subject \"{sub}\", or the trust relationship expired."
        )));
    }
    // Each candidate's key alone, so the relationship whose key verified is the one that counts.
    let (grant, verified) = candidates
        .iter()
        .find_map(|g| crate::jose::jws::verify(assertion, std::slice::from_ref(&g.jwk)).ok().map(|v| (*g, v)))
        .ok_or_else(|| invalid_grant("Unable to verify the integrity of the 'assertion' value."))?;
    let c: Value =
        serde_json::from_slice(&verified.payload).map_err(|_| invalid_grant("The 'assertion' is not JSON."))?;
    // The verified claims must be the ones the relationship was chosen by.
    if c.get("iss").and_then(Value::as_str) != Some(iss) || c.get("sub").and_then(Value::as_str) != Some(sub) {
        return Err(invalid_grant("Unable to verify the integrity of the 'assertion' value."));
    }
    if !crate::jose::jws::aud_names(c.get("aud"), audiences) {
        return Err(invalid_grant(format!(
            "The JWT in 'assertion' must contain an 'aud' (audience) claim naming this server (\"{}\").",
            audiences.first().copied().unwrap_or_default()
        )));
    }
    let date = |name: &str| {
        numeric_date(c.get(name))
            .map_err(|_| invalid_grant(format!("The '{name}' claim of the JWT in 'assertion' is not a number.")))
    };
    let exp = date("exp")?;
    let exp =
        exp.ok_or_else(|| invalid_grant("The JWT in 'assertion' must contain an 'exp' (expiration time) claim."))?;
    if exp <= now - LEEWAY_SECS {
        return Err(invalid_grant("The JWT in 'assertion' has expired."));
    }
    let iat = date("iat")?;
    if iat.is_none() && !policy.iat_optional {
        return Err(invalid_grant("The JWT in 'assertion' must contain an 'iat' (issued at) claim."));
    }
    if iat.is_some_and(|i| i > now + LEEWAY_SECS) {
        return Err(invalid_grant("The JWT in 'assertion' was issued in the future ('iat')."));
    }
    if exp.saturating_sub(iat.unwrap_or(now).min(now)) > policy.max_ttl_secs {
        return Err(invalid_grant(
            "The JWT in 'assertion' has an 'exp' (expiration time) unreasonably far in the future (oauth2.grant.jwt.max_ttl).",
        ));
    }
    if date("nbf")?.is_some_and(|nbf| nbf > now + LEEWAY_SECS) {
        return Err(invalid_grant("The JWT in 'assertion' is not valid yet ('nbf')."));
    }
    let jti = c.get("jti").and_then(Value::as_str).filter(|j| !j.is_empty() && j.len() <= 256).map(String::from);
    if jti.is_none() && !policy.jti_optional {
        return Err(invalid_grant("The JWT in 'assertion' must contain a 'jti' (JWT ID) claim."));
    }
    if let Some(s) = scope.iter().find(|s| !strategy.matches(grant.scope.iter().map(String::as_str), s)) {
        return Err(OAuthError::hint(
            ErrorCode::InvalidScope,
            format!("The public key registered for issuer \"{iss}\" and subject \"{sub}\" is not allowed to request scope \"{s}\"."),
        ));
    }
    Ok(Asserted { issuer: iss.to_string(), subject: sub.to_string(), jti, exp, grant_id: grant.id.clone() })
}

/// The client's side of the grant: it must be allowed the grant type; scope and audience as
/// for client credentials (no scope asked, none granted); the lifespan is its
/// `jwt_bearer_grant_access_token_lifespan`, else `ttl.access_token`.
pub fn plan(
    client: &crate::oauth2::client::Client,
    scope: Option<&str>,
    audience: &[String],
    policy: &crate::oauth2::client_credentials::Policy,
) -> Result<crate::oauth2::client_credentials::IssuePlan, OAuthError> {
    if !client.has_grant(GRANT_TYPE) {
        return Err(OAuthError::hint(
            ErrorCode::UnauthorizedClient,
            format!("The OAuth 2.0 Client is not allowed to use authorization grant '{GRANT_TYPE}'."),
        ));
    }
    let (scope, audience) =
        crate::oauth2::client_credentials::scope_and_audience(client, scope, audience, policy, false)?;
    let lifespan =
        client.lifespan(crate::oauth2::client::Lifespan::JwtBearerAccessToken).unwrap_or(policy.access_token_ttl);
    Ok(crate::oauth2::client_credentials::IssuePlan { scope, audience, lifespan })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::jwk::Alg;
    use crate::jose::jws::Signer;

    const AUD: [&str; 2] = ["https://op.example/oauth2/token", "https://op.example"];
    const W: crate::oauth2::scope::ScopeStrategy = crate::oauth2::scope::ScopeStrategy::Wildcard;
    const NOW: i64 = 1_800_000_000;

    fn key(kid: &str) -> Jwk {
        Jwk::generate(Alg::ES256, kid, "sig").unwrap()
    }

    fn grant(k: &Jwk, subject: &str, any: bool) -> TrustGrant {
        TrustGrant {
            id: format!("g-{}", k.kid),
            issuer: "https://idp.example".into(),
            subject: subject.into(),
            allow_any_subject: any,
            scope: vec!["read".into(), "write".into()],
            jwk: k.public(),
            created_at: NOW - 10,
            expires_at: NOW + 3600,
        }
    }

    fn claims() -> Value {
        json!({"iss": "https://idp.example", "sub": "alice", "aud": AUD[0], "exp": NOW + 300, "iat": NOW, "jti": "j1"})
    }

    fn sign(k: &Jwk, c: &Value) -> String {
        Signer::from_jwk(k).unwrap().sign(c.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn a_trusted_assertion_and_every_refusal() {
        let k = key("k1");
        let g = grant(&k, "alice", false);
        let p = Policy::default();
        let ok = check(&sign(&k, &claims()), &[&g], &AUD, &["read".into()], W, &p, NOW).unwrap();
        assert_eq!(
            (ok.subject.as_str(), ok.jti.as_deref(), ok.exp, ok.grant_id.as_str()),
            ("alice", Some("j1"), NOW + 300, "g-k1")
        );
        // Another subject is outside the relationship; an any-subject one covers it.
        let mut bob = claims();
        bob["sub"] = json!("bob");
        assert_eq!(check(&sign(&k, &bob), &[&g], &AUD, &[], W, &p, NOW).unwrap_err().code, ErrorCode::InvalidGrant);
        let any = grant(&k, "", true);
        assert!(check(&sign(&k, &bob), &[&any], &AUD, &[], W, &p, NOW).is_ok());
        // Expired relationship, untrusted issuer, foreign key, scope beyond the relationship.
        let mut old = g.clone();
        old.expires_at = NOW - 1;
        assert!(check(&sign(&k, &claims()), &[&old], &AUD, &[], W, &p, NOW).is_err());
        let mut other_iss = claims();
        other_iss["iss"] = json!("https://evil.example");
        assert!(check(&sign(&k, &other_iss), &[&g], &AUD, &[], W, &p, NOW).is_err());
        let foreign = key("k1");
        assert!(check(&sign(&foreign, &claims()), &[&g], &AUD, &[], W, &p, NOW).is_err());
        let e = check(&sign(&k, &claims()), &[&g], &AUD, &["admin".into()], W, &p, NOW).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidScope);
        // Claims.
        let bad: [(&str, Value); 11] = [
            ("aud", json!("https://elsewhere.example")),
            ("exp", Value::Null),
            ("exp", json!(NOW - 120)),
            ("exp", json!(NOW + 721 * 3600)),
            ("iat", Value::Null),
            ("iat", json!(NOW + 3600)),
            ("jti", Value::Null),
            ("nbf", json!(NOW + 3600)),
            ("nbf", json!(NOW as f64 + 3600.0)),
            ("iat", json!(NOW as f64 + 3600.5)),
            ("nbf", json!([NOW])),
        ];
        for (name, v) in bad {
            let mut c = claims();
            if v.is_null() {
                c.as_object_mut().unwrap().remove(name);
            } else {
                c[name] = v;
            }
            assert!(check(&sign(&k, &c), &[&g], &AUD, &[], W, &p, NOW).is_err(), "{name}");
        }
        // Optional iat and jti when configured so.
        let relaxed = Policy { iat_optional: true, jti_optional: true, ..p };
        let mut c = claims();
        c.as_object_mut().unwrap().remove("iat");
        c.as_object_mut().unwrap().remove("jti");
        let ok = check(&sign(&k, &c), &[&g], &AUD, &[], W, &relaxed, NOW).unwrap();
        assert_eq!(ok.jti, None);
        // alg none and junk.
        use base64::Engine;
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let none = format!("{}.{}.", b64(br#"{"alg":"none","kid":"k1"}"#), b64(claims().to_string().as_bytes()));
        assert!(check(&none, &[&g], &AUD, &[], W, &p, NOW).is_err());
        assert!(check("not-a-jwt", &[&g], &AUD, &[], W, &p, NOW).is_err());
    }

    #[test]
    fn create_validation_in_hydras_order() {
        let k = key("k1");
        let body = |v: Value| v.to_string().into_bytes();
        let exp = rfc3339(NOW + 3600);
        let good = json!({"issuer": "https://idp.example", "subject": "alice", "scope": ["read"], "jwk": k.public(), "expires_at": exp});
        let g = parse_create(&body(good.clone()), "id1".into(), NOW).unwrap();
        assert_eq!((g.issuer.as_str(), g.subject.as_str(), g.expires_at), ("https://idp.example", "alice", NOW + 3600));
        assert!(!g.jwk.is_private());
        let v = g.to_json();
        assert_eq!(v["public_key"], json!({"set": "https://idp.example", "kid": "k1"}));
        let cases: [(Value, &str); 7] = [
            (json!({"issuer": ""}), "Field 'issuer' is required."),
            (
                json!({"subject": "", "allow_any_subject": false}),
                "One of 'subject' or 'allow_any_subject' field must be set.",
            ),
            (
                json!({"allow_any_subject": true}),
                "Both 'subject' and 'allow_any_subject' fields cannot be set at the same time.",
            ),
            (json!({"expires_at": "tomorrow"}), "Field 'expires_at' is required."),
            (json!({"jwk": null}), "Field 'jwk' is required."),
            (
                json!({"jwk": {"kty": "EC", "crv": "P-256", "x": k.x, "y": k.y}}),
                "Field 'jwk' must contain JWK with kid header.",
            ),
            (json!({"expires_at": rfc3339(NOW - 1)}), "Field 'expires_at' must lie in the future."),
        ];
        for (patch, want) in cases {
            let mut b = good.clone();
            for (key, val) in patch.as_object().unwrap() {
                b[key] = val.clone();
            }
            let e = parse_create(&body(b), "id".into(), NOW).unwrap_err();
            assert_eq!((e.status, e.description.as_str()), (400, want));
        }
        let mut hs = good.clone();
        hs["jwk"] = json!({"kty": "oct", "k": "c2VjcmV0", "kid": "h"});
        assert!(parse_create(&body(hs), "id".into(), NOW).is_err());
        let same = parse_create(&body(good), "id2".into(), NOW).unwrap();
        assert!(same.same_as(&g));
        assert_eq!(same.derived_id(), g.derived_id());
        assert_eq!(g.derived_id().len(), 36);
        let mut other = g.clone();
        other.subject = "bob".into();
        assert_ne!(other.derived_id(), g.derived_id());
    }
}
