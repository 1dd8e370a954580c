//! The client credentials grant (RFC 6749 §4.4): a pure check of an authenticated client's
//! request, producing what to issue.
//!
//! Invariants: only confidential clients registered for the grant get a token (§4.4: "MUST only
//! be used by confidential clients"); every granted scope is allowed by the client under the
//! configured strategy; every audience is on the client's allow-list; no refresh token.

use crate::oauth2::client::{Client, Lifespan};
use crate::oauth2::error::{ErrorCode, OAuthError};
use crate::oauth2::scope::{self, ScopeStrategy};
use crate::oauth2::token_response;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub strategy: ScopeStrategy,
    /// `oauth2.client_credentials.default_grant_allowed_scope`.
    pub default_grant_allowed_scope: bool,
    /// `ttl.access_token`.
    pub access_token_ttl: Duration,
}

/// What to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuePlan {
    /// Granted scopes, space separated (as stored and answered).
    pub scope: String,
    pub audience: Vec<String>,
    pub lifespan: Duration,
}

pub fn check(
    client: &Client,
    scope: Option<&str>,
    audience: &[String],
    policy: &Policy,
) -> Result<IssuePlan, OAuthError> {
    if client.is_public() {
        return Err(OAuthError::hint(
            ErrorCode::UnauthorizedClient,
            "The OAuth 2.0 Client is marked as public and is thus not allowed to use authorization grant 'client_credentials'.",
        ));
    }
    if !client.has_grant("client_credentials") {
        return Err(OAuthError::hint(
            ErrorCode::UnauthorizedClient,
            "The OAuth 2.0 Client is not allowed to use authorization grant 'client_credentials'.",
        ));
    }
    let (granted, audience) = scope_and_audience(client, scope, audience, policy, policy.default_grant_allowed_scope)?;
    let lifespan = client.lifespan(Lifespan::ClientCredentialsAccessToken).unwrap_or(policy.access_token_ttl);
    Ok(IssuePlan { scope: granted, audience, lifespan })
}

/// The scope and audience a client may have for a grant without a user (client credentials, JWT
/// bearer): each requested scope allowed by the client's `scope` under the scope strategy, each
/// audience registered; no scope requested means none, or (`all_by_default`) all the client's.
pub fn scope_and_audience(
    client: &Client,
    scope: Option<&str>,
    audience: &[String],
    policy: &Policy,
    all_by_default: bool,
) -> Result<(String, Vec<String>), OAuthError> {
    let requested = scope.map(scope::split).unwrap_or_default();
    for s in &requested {
        if !scope::is_valid_token(s) {
            return Err(OAuthError::hint(
                ErrorCode::InvalidScope,
                "The scope parameter contains an invalid character.",
            ));
        }
        if !policy.strategy.matches(client.scopes(), s) {
            return Err(OAuthError::hint(
                ErrorCode::InvalidScope,
                format!("The OAuth 2.0 Client is not allowed to request scope '{s}'."),
            ));
        }
    }
    let mut granted = String::new();
    let mut grant = |s: &str| {
        if !granted.is_empty() {
            granted.push(' ');
        }
        granted.push_str(s);
    };
    if requested.is_empty() && all_by_default {
        client.scopes().for_each(grant);
    } else {
        requested.iter().for_each(|s| grant(s));
    }
    for a in audience {
        if !client.audience.iter().any(|allowed| allowed == a) {
            return Err(OAuthError::hint(
                ErrorCode::InvalidRequest,
                "Requested audience has not been whitelisted by the OAuth 2.0 Client.",
            ));
        }
    }
    Ok((granted, audience.to_vec()))
}

/// The token response (RFC 6749 §5.1) of the grant: [`token_response`] with an access token only.
pub fn response_body(access_token: &str, expires_in: i64, scope: &str) -> Vec<u8> {
    token_response(access_token, expires_in, None, None, scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(grants: &[&str], scope: &str, method: &str) -> Client {
        Client {
            client_id: "c".into(),
            grant_types: Some(grants.iter().map(|s| s.to_string()).collect()),
            scope: scope.into(),
            token_endpoint_auth_method: method.into(),
            audience: vec!["https://api.example.com".into()],
            ..Default::default()
        }
    }

    fn policy(default_all: bool) -> Policy {
        Policy {
            strategy: ScopeStrategy::Wildcard,
            default_grant_allowed_scope: default_all,
            access_token_ttl: Duration::from_secs(3600),
        }
    }

    #[test]
    fn grants_requested_scopes_and_audience() {
        let c = client(&["client_credentials"], "read write foo.*", "client_secret_basic");
        let aud = vec!["https://api.example.com".to_string()];
        let plan = check(&c, Some("read foo.bar"), &aud, &policy(false)).unwrap();
        assert_eq!(plan.scope, "read foo.bar");
        assert_eq!(plan.audience, aud);
        assert_eq!(plan.lifespan, Duration::from_secs(3600));
    }

    #[test]
    fn default_scope_rules() {
        let c = client(&["client_credentials"], "read write", "client_secret_post");
        assert!(check(&c, None, &[], &policy(false)).unwrap().scope.is_empty());
        assert_eq!(check(&c, None, &[], &policy(true)).unwrap().scope, "read write");
    }

    #[test]
    fn refusals() {
        let p = policy(false);
        let no_grant = client(&["authorization_code"], "read", "client_secret_basic");
        assert_eq!(check(&no_grant, None, &[], &p).unwrap_err().code, ErrorCode::UnauthorizedClient);
        let public = client(&["client_credentials"], "read", "none");
        assert_eq!(check(&public, None, &[], &p).unwrap_err().code, ErrorCode::UnauthorizedClient);
        let c = client(&["client_credentials"], "read", "client_secret_basic");
        assert_eq!(check(&c, Some("admin"), &[], &p).unwrap_err().code, ErrorCode::InvalidScope);
        assert_eq!(check(&c, Some("re\"ad"), &[], &p).unwrap_err().code, ErrorCode::InvalidScope);
        assert_eq!(
            check(&c, None, &["https://evil.example.com".into()], &p).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn per_client_lifespan_wins() {
        let mut c = client(&["client_credentials"], "read", "client_secret_basic");
        c.client_credentials_grant_access_token_lifespan = Some("5m0s".into());
        assert_eq!(check(&c, None, &[], &policy(false)).unwrap().lifespan, Duration::from_secs(300));
    }

    #[test]
    fn response_body_matches_the_json_hydra_sends() {
        let body = response_body("ory_at_x.y", 3599, "read \"odd\\");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"access_token": "ory_at_x.y", "expires_in": 3599, "scope": "read \"odd\\", "token_type": "bearer"})
        );
        // Same bytes as serializing the Value (members in the order serde_json sorts them).
        assert_eq!(body, serde_json::to_vec(&v).unwrap());
    }
}
