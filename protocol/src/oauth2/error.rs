//! OAuth 2.0 protocol errors as data, and their single mapping to an HTTP status and an
//! RFC 6749 §5.2-shaped body (`{"error","error_description"}`, Hydra's non-legacy format).
//!
//! Invariant: descriptions and hints are static or built from server-side facts; nothing a client
//! sent (tokens, secrets, parameter values) is echoed into an error.

use std::borrow::Cow;

/// The RFC names of the errors this server emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    ServerError,
    TemporarilyUnavailable,
    NotFound,
    MethodNotAllowed,
    /// RFC 6750 §3.1 (bearer token at a resource endpoint).
    InvalidToken,
    InsufficientScope,
    /// RFC 8628 §3.5: the device's user has not finished yet.
    AuthorizationPending,
    /// RFC 8628 §3.5: polled faster than the interval.
    SlowDown,
    /// RFC 8628 §3.5: the device code expired.
    ExpiredToken,
    /// RFC 6749 §4.1.2.1, RFC 8628 §3.5: the user (or the login or consent app) refused.
    AccessDenied,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::AuthorizationPending => "authorization_pending",
            ErrorCode::SlowDown => "slow_down",
            ErrorCode::ExpiredToken => "expired_token",
            ErrorCode::AccessDenied => "access_denied",
        }
    }

    /// Hydra's status for each code (§0.1 of the surface notes).
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => 401,
            ErrorCode::InsufficientScope | ErrorCode::AccessDenied => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::ServerError => 500,
            ErrorCode::TemporarilyUnavailable => 503,
            _ => 400,
        }
    }

    /// fosite's standard description of the code.
    pub fn description(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "The request is missing a required parameter, includes an invalid parameter value, includes a parameter more than once, or is otherwise malformed.",
            ErrorCode::InvalidClient => "Client authentication failed (e.g., unknown client, no client authentication included, or unsupported authentication method).",
            ErrorCode::InvalidGrant => "The provided authorization grant (e.g., authorization code, resource owner credentials) or refresh token is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.",
            ErrorCode::UnauthorizedClient => "The client is not authorized to request a token using this method.",
            ErrorCode::UnsupportedGrantType => "The authorization grant type is not supported by the authorization server.",
            ErrorCode::InvalidScope => "The requested scope is invalid, unknown, or malformed.",
            ErrorCode::ServerError => "The authorization server encountered an unexpected condition that prevented it from fulfilling the request.",
            ErrorCode::TemporarilyUnavailable => "The authorization server is currently unable to handle the request due to a temporary overloading or maintenance of the server.",
            ErrorCode::NotFound => "The requested resource could not be found.",
            ErrorCode::MethodNotAllowed => "The requested method is not allowed on this resource.",
            ErrorCode::InvalidToken => "The access token provided is expired, revoked, malformed, or invalid for other reasons.",
            ErrorCode::InsufficientScope => "The request requires higher privileges than provided by the access token.",
            ErrorCode::AuthorizationPending => "The authorization request is still pending as the end user hasn't yet completed the user-interaction steps.",
            ErrorCode::SlowDown => "The authorization request was rate-limited to prevent system overload. Ensure that you don't call the token endpoint sooner than the polling interval",
            ErrorCode::ExpiredToken => "The device_code has expired, and the device authorization session has concluded.",
            ErrorCode::AccessDenied => "The resource owner or authorization server denied the request. Make sure that the request you are making is valid. Maybe the credential or request parameters you are using are limited in scope or otherwise restricted.",
        }
    }
}

/// An error answer: code, optional hint (appended to the description, as Hydra does), and
/// whether the client used HTTP Basic (then a 401 carries `WWW-Authenticate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub hint: Option<Cow<'static, str>>,
    pub basic_auth: bool,
    /// Replaces the code's standard description (fosite's `WithDescription`).
    pub description: Option<&'static str>,
}

impl OAuthError {
    pub fn new(code: ErrorCode) -> Self {
        OAuthError { code, hint: None, basic_auth: false, description: None }
    }

    /// An error whose description is not the code's standard one.
    pub fn described(code: ErrorCode, description: &'static str) -> Self {
        OAuthError { code, hint: None, basic_auth: false, description: Some(description) }
    }

    pub fn hint(code: ErrorCode, hint: impl Into<Cow<'static, str>>) -> Self {
        OAuthError { code, hint: Some(hint.into()), basic_auth: false, description: None }
    }

    pub fn with_basic(mut self, basic: bool) -> Self {
        self.basic_auth = basic;
        self
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// The `error_description`: description, then the hint after a space; double quotes become
    /// single quotes (Hydra's rendering).
    pub fn full_description(&self) -> String {
        let mut d = self.description.unwrap_or(self.code.description()).to_string();
        if let Some(h) = &self.hint {
            d.push(' ');
            d.push_str(h);
        }
        d.replace('"', "'")
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "error": self.code.as_str(),
            "error_description": self.full_description(),
        }))
        .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_hydra() {
        let cases = [
            (ErrorCode::InvalidRequest, 400),
            (ErrorCode::InvalidClient, 401),
            (ErrorCode::UnauthorizedClient, 400),
            (ErrorCode::ServerError, 500),
            (ErrorCode::TemporarilyUnavailable, 503),
        ];
        for (code, status) in cases {
            assert_eq!(code.status(), status, "{}", code.as_str());
        }
    }

    #[test]
    fn body_appends_hint_and_replaces_double_quotes() {
        let e = OAuthError::hint(ErrorCode::InvalidScope, "Scope \"x\" is not allowed.");
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["error"], "invalid_scope");
        assert_eq!(
            v["error_description"],
            "The requested scope is invalid, unknown, or malformed. Scope 'x' is not allowed."
        );
        assert_eq!(v.as_object().unwrap().len(), 2);
    }
}
