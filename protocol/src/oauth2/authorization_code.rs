//! The authorization code grant (RFC 6749 §4.1.3, RFC 7636 §4.6) and the refresh token grant
//! (§6), sans-IO: what a code or refresh token carries, and the checks of an exchange.
//!
//! Invariants: a code is bound to its client, its redirect URI and its PKCE challenge; a
//! `code_verifier` without a challenge is refused (PKCE downgrade, RFC 9700 §2.1.1); a refresh
//! may narrow the scope, never widen it; a refresh token is issued only for `offline` /
//! `offline_access` to a client registered for `refresh_token`.

use crate::oauth2::authorize::verify_pkce;
use crate::oauth2::error::{ErrorCode, OAuthError};
use crate::oauth2::scope::ScopeStrategy;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a grant remembers beyond the token record (stored as the record's `ext`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    pub redirect_uri: String,
    pub redirect_uri_given: bool,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub auth_time: i64,
    pub requested_at: i64,
    pub acr: String,
    pub amr: Vec<String>,
    /// Login session id.
    pub sid: String,
    /// `sub` as this client sees it (pairwise when the client asks for it).
    pub client_subject: String,
    /// `session.id_token` claims.
    pub id_token: Map<String, Value>,
    pub flow: String,
}

/// The `ext` of a code or refresh record: access-token claims and the grant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantExt {
    pub at: Map<String, Value>,
    pub g: Grant,
}

impl GrantExt {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn parse(ext: &str) -> Result<GrantExt, OAuthError> {
        serde_json::from_str(ext).map_err(|_| OAuthError::new(ErrorCode::ServerError))
    }

    /// The access-token claims (`at`) of a stored `ext` as JSON, the grant skipped unbuilt: a
    /// refresh without `openid` needs nothing else. Why: parsing the whole grant and encoding it
    /// again for the new refresh token was 4.8 % of the server's CPU under refresh load
    /// (`CALL_GRAPH=dwarf,16384 flamegraphs/record.sh refresh`).
    pub fn access_claims(ext: &str) -> Result<String, OAuthError> {
        // Most grants carry no access-token claims, and `encode` writes `at` first with no
        // whitespace: then the grant is not even scanned.
        if ext.strip_prefix("{\"at\":{}").is_some_and(|rest| rest.starts_with(',') || rest == "}") {
            return Ok("{}".into());
        }
        #[derive(Deserialize)]
        struct At {
            at: Map<String, Value>,
        }
        let at: At = serde_json::from_str(ext).map_err(|_| OAuthError::new(ErrorCode::ServerError))?;
        Ok(serde_json::to_string(&at.at).unwrap_or_default())
    }
}

fn invalid_grant(hint: &'static str) -> OAuthError {
    OAuthError::hint(ErrorCode::InvalidGrant, hint)
}

/// Checks a code exchange against the stored code (its client and expiry are checked too), then
/// PKCE. A PKCE failure is [`ExchangeError::Pkce`]: the caller must burn the code, as fosite does
/// (it deletes the PKCE session before comparing), so a verifier cannot be guessed one try at a
/// time against one code.
pub fn check_exchange(
    code_client: &str,
    code_expires_at: i64,
    grant: &Grant,
    client_id: &str,
    redirect_uri: Option<&str>,
    code_verifier: Option<&str>,
    now: i64,
) -> Result<(), ExchangeError> {
    if code_client != client_id {
        return Err(ExchangeError::Other(invalid_grant("The authorization code was issued to another client.")));
    }
    if now >= code_expires_at {
        return Err(ExchangeError::Other(invalid_grant("The authorization code has expired.")));
    }
    match redirect_uri {
        Some(r) if r != grant.redirect_uri => {
            return Err(ExchangeError::Other(invalid_grant(
                "The redirect_uri does not match the one of the authorization request.",
            )))
        }
        None if grant.redirect_uri_given => {
            return Err(ExchangeError::Other(invalid_grant(
                "The redirect_uri of the authorization request must be repeated.",
            )))
        }
        _ => {}
    }
    let pkce = |hint| Err(ExchangeError::Pkce(invalid_grant(hint)));
    match (&grant.code_challenge, code_verifier) {
        (Some(challenge), Some(v)) if verify_pkce(challenge, v) => Ok(()),
        (Some(_), Some(_)) => pkce("The PKCE code_verifier does not match the code_challenge."),
        (Some(_), None) => pkce("The PKCE code_verifier is missing."),
        (None, Some(_)) => pkce("A code_verifier was sent but the authorization request had no code_challenge."),
        (None, None) => Ok(()),
    }
}

/// Why a code exchange was refused.
#[derive(Debug)]
pub enum ExchangeError {
    /// PKCE failed: the code must be burnt before answering.
    Pkce(OAuthError),
    /// Anything else: the code stays redeemable by its rightful client.
    Other(OAuthError),
}

impl ExchangeError {
    pub fn into_oauth(self) -> OAuthError {
        match self {
            ExchangeError::Pkce(e) | ExchangeError::Other(e) => e,
        }
    }
}

/// A refresh is checked against the client as it is now (fosite does): an admin who removed a
/// scope or an audience from the client ends every grant that holds it. Scope: `invalid_scope`;
/// audience: `invalid_request` (fosite's audience strategy error).
pub fn check_grant_still_allowed(
    granted_scope: &str,
    granted_audience: &[String],
    client_scope: &str,
    client_audience: &[String],
    strategy: ScopeStrategy,
) -> Result<(), OAuthError> {
    let allowed: Vec<&str> = client_scope.split_whitespace().collect();
    if let Some(s) =
        granted_scope.split(' ').filter(|s| !s.is_empty()).find(|s| !strategy.matches(allowed.iter().copied(), s))
    {
        return Err(OAuthError::hint(
            ErrorCode::InvalidScope,
            format!("The OAuth 2.0 Client is no longer allowed to request scope '{s}'."),
        ));
    }
    if let Some(a) = granted_audience.iter().find(|a| !client_audience.contains(a)) {
        return Err(OAuthError::hint(
            ErrorCode::InvalidRequest,
            format!("The OAuth 2.0 Client is no longer allowed to request audience '{a}'."),
        ));
    }
    Ok(())
}

/// Whether the granted scopes and the client allow a refresh token.
pub fn issues_refresh(scope: &[String], client_has_refresh_grant: bool) -> bool {
    client_has_refresh_grant && scope.iter().any(|s| s == "offline" || s == "offline_access")
}

/// The scope of a refreshed access token: the request's, which must be a subset of the grant's,
/// or the grant's.
pub fn refreshed_scope(granted: &str, requested: Option<&str>) -> Result<Vec<String>, OAuthError> {
    let granted: Vec<&str> = granted.split(' ').filter(|s| !s.is_empty()).collect();
    match requested.map(|r| r.split(' ').filter(|s| !s.is_empty()).collect::<Vec<_>>()) {
        None => Ok(granted.into_iter().map(String::from).collect()),
        Some(req) if req.is_empty() => Ok(granted.into_iter().map(String::from).collect()),
        Some(req) => {
            if let Some(extra) = req.iter().find(|s| !granted.contains(s)) {
                return Err(OAuthError::hint(
                    ErrorCode::InvalidScope,
                    format!("The scope '{extra}' was not granted and cannot be added on refresh."),
                ));
            }
            Ok(req.into_iter().map(String::from).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(challenge: Option<&str>, given: bool) -> Grant {
        Grant {
            redirect_uri: "https://rp.example/cb".into(),
            redirect_uri_given: given,
            code_challenge: challenge.map(String::from),
            nonce: None,
            auth_time: 1,
            requested_at: 1,
            acr: String::new(),
            amr: vec![],
            sid: "s".into(),
            client_subject: "alice".into(),
            id_token: Map::new(),
            flow: "f".into(),
        }
    }

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn exchange_rules() {
        let cb = Some("https://rp.example/cb");
        let g = grant(Some(CHALLENGE), true);
        assert!(check_exchange("c", 100, &g, "c", cb, Some(VERIFIER), 50).is_ok());
        let err = |r: Result<(), ExchangeError>| r.unwrap_err().into_oauth().code;
        let burns = |r: Result<(), ExchangeError>| matches!(r, Err(ExchangeError::Pkce(_)));
        assert_eq!(err(check_exchange("c", 100, &g, "other", cb, Some(VERIFIER), 50)), ErrorCode::InvalidGrant);
        assert_eq!(err(check_exchange("c", 100, &g, "c", cb, Some(VERIFIER), 100)), ErrorCode::InvalidGrant);
        assert_eq!(
            err(check_exchange("c", 100, &g, "c", Some("https://rp.example/cb/"), Some(VERIFIER), 50)),
            ErrorCode::InvalidGrant
        );
        assert_eq!(err(check_exchange("c", 100, &g, "c", None, Some(VERIFIER), 50)), ErrorCode::InvalidGrant);
        assert_eq!(err(check_exchange("c", 100, &g, "c", cb, None, 50)), ErrorCode::InvalidGrant);
        assert!(burns(check_exchange("c", 100, &g, "c", cb, None, 50)));
        assert!(burns(check_exchange("c", 100, &g, "c", cb, Some("x"), 50)));
        assert!(!burns(check_exchange("c", 100, &g, "other", cb, Some("x"), 50)), "another client cannot burn it");
        assert!(!burns(check_exchange("c", 100, &g, "c", Some("https://other"), Some(VERIFIER), 50)));
        assert_eq!(
            err(check_exchange("c", 100, &g, "c", cb, Some(&VERIFIER.replace('d', "e")), 50)),
            ErrorCode::InvalidGrant
        );
        // No challenge: a verifier is a downgrade attempt; none at all is fine; redirect_uri may be
        // left out when the authorization request left it out.
        let plain = grant(None, false);
        assert_eq!(err(check_exchange("c", 100, &plain, "c", None, Some(VERIFIER), 50)), ErrorCode::InvalidGrant);
        assert!(check_exchange("c", 100, &plain, "c", None, None, 50).is_ok());
        assert!(check_exchange("c", 100, &plain, "c", cb, None, 50).is_ok());
    }

    #[test]
    fn refresh_is_checked_against_the_client_as_it_is_now() {
        let aud = vec!["https://api".to_string()];
        let ok = check_grant_still_allowed("openid offline a", &aud, "openid offline a b", &aud, ScopeStrategy::Exact);
        assert!(ok.is_ok());
        let e = check_grant_still_allowed("openid offline a", &aud, "openid offline", &aud, ScopeStrategy::Exact);
        assert_eq!(e.unwrap_err().code, ErrorCode::InvalidScope);
        let e = check_grant_still_allowed("openid", &aud, "openid", &[], ScopeStrategy::Exact);
        assert_eq!(e.unwrap_err().code, ErrorCode::InvalidRequest);
        assert!(check_grant_still_allowed("read.x", &[], "read.*", &[], ScopeStrategy::Wildcard).is_ok());
        assert!(check_grant_still_allowed("read.x", &[], "read.*", &[], ScopeStrategy::Exact).is_err());
    }

    #[test]
    fn refresh_scope_may_only_narrow() {
        assert_eq!(refreshed_scope("openid offline a", None).unwrap(), vec!["openid", "offline", "a"]);
        assert_eq!(refreshed_scope("openid offline a", Some("a")).unwrap(), vec!["a"]);
        assert_eq!(refreshed_scope("openid offline", Some("openid b")).unwrap_err().code, ErrorCode::InvalidScope);
        assert!(issues_refresh(&["offline_access".into()], true));
        assert!(!issues_refresh(&["offline".into()], false));
        assert!(!issues_refresh(&["openid".into()], true));
    }

    #[test]
    fn access_claims_are_those_a_full_parse_gives() {
        let mut at = Map::new();
        at.insert("tenant".into(), Value::from("t-1"));
        at.insert("n".into(), Value::from(1.5));
        for at in [Map::new(), at] {
            let ext = GrantExt { at, g: grant(Some(CHALLENGE), true) }.encode();
            let full = serde_json::to_string(&GrantExt::parse(&ext).unwrap().at).unwrap();
            assert_eq!(GrantExt::access_claims(&ext).unwrap(), full);
        }
        assert_eq!(GrantExt::access_claims("{\"g\":{}}").unwrap_err().code, ErrorCode::ServerError);
        // The shortcut for no claims only takes an empty `at` that ends there.
        assert_eq!(GrantExt::access_claims("{\"at\":{},\"g\":{}}").unwrap(), "{}");
        assert_eq!(GrantExt::access_claims("{\"at\":{}}").unwrap(), "{}");
        assert_eq!(GrantExt::access_claims("{\"at\":{}x").unwrap_err().code, ErrorCode::ServerError);
        assert_eq!(GrantExt::access_claims("not json").unwrap_err().code, ErrorCode::ServerError);
    }
}
