//! Responses as data: status, headers and body, built by handlers and serialized by the
//! connection loop. Every error body is JSON.

use crate::oauth2::error::{ErrorCode, OAuthError};

#[derive(Debug, Default)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// Close the connection after this response (protocol errors that leave framing unknown).
    pub close: bool,
}

impl Response {
    pub fn json(status: u16, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type", "application/json; charset=utf-8".into())],
            body,
            close: false,
        }
    }

    pub fn json_value(status: u16, v: &serde_json::Value) -> Response {
        Response::json(status, serde_json::to_vec(v).unwrap_or_default())
    }

    pub fn empty(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: Vec::new(), close: false }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// RFC 6749 §5.1: token-bearing answers (and their errors) must not be cached.
    pub fn no_store(self) -> Response {
        self.header("Cache-Control", "no-store").header("Pragma", "no-cache")
    }

    /// An OAuth error with its status; a 401 after HTTP Basic carries `WWW-Authenticate`
    /// (RFC 6749 §5.2).
    pub fn oauth_error(e: &OAuthError) -> Response {
        let mut r = Response::json(e.status(), e.body());
        if e.status() == 401 && e.basic_auth {
            r = r.header("WWW-Authenticate", "Basic realm=\"oauth2\"");
        }
        r
    }

    /// Hydra's generic (herodot) error shape used by the admin API: `error` holds the human
    /// message, `error_description` the reason.
    pub fn generic_error(status: u16, error: &str, description: &str) -> Response {
        Response::json_value(status, &serde_json::json!({"error": error, "error_description": description}))
    }

    pub fn not_found() -> Response {
        Response::oauth_error(&OAuthError::hint(
            ErrorCode::NotFound,
            "The requested route does not exist. Make sure you are using the right path, domain, and port.",
        ))
    }

    pub fn method_not_allowed(allow: &'static str) -> Response {
        Response::oauth_error(&OAuthError::new(ErrorCode::MethodNotAllowed)).header("Allow", allow)
    }
}
