//! Responses as data: status, headers and body, built by handlers and serialized by the
//! connection loop. Every error body is JSON.

use crate::oauth2::error::{ErrorCode, OAuthError};

#[derive(Debug, Default)]
pub struct Response {
    pub status: u16,
    /// Values are `Cow`: constant values (content types, `no-store`) are not copied per response.
    pub headers: Vec<(&'static str, std::borrow::Cow<'static, str>)>,
    pub body: Vec<u8>,
    /// Close the connection after this response (protocol errors that leave framing unknown).
    pub close: bool,
}

impl Response {
    pub fn json(status: u16, body: Vec<u8>) -> Response {
        Response {
            status,
            // Room for the headers most answers add (no-store, X-Request-Id) without growing.
            headers: {
                let mut h = Vec::with_capacity(4);
                h.push(("Content-Type", "application/json; charset=utf-8".into()));
                h
            },
            body,
            close: false,
        }
    }

    pub fn json_value(status: u16, v: &serde_json::Value) -> Response {
        Response::json(status, serde_json::to_vec(v).unwrap_or_default())
    }

    /// A small HTML page (the fallback and logout pages); `title` and `body` are trusted markup.
    pub fn html_page(title: &str, body: &str) -> Response {
        let html = format!(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{title}</title></head><body><h1>{title}</h1>{body}</body></html>"
        );
        Response {
            status: 200,
            headers: vec![("Content-Type", "text/html; charset=utf-8".into())],
            body: html.into_bytes(),
            close: false,
        }
    }

    pub fn empty(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: Vec::new(), close: false }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<std::borrow::Cow<'static, str>>) -> Response {
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

    /// Hydra's 409 for a create whose identifier is taken (a client id, a key id).
    pub fn exists_already() -> Response {
        Response::generic_error(
            409,
            "Unable to insert or update resource because a resource with that value exists already",
            "",
        )
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

/// The one place storage failures become protocol errors: a failed or aborted commit, an I/O
/// error (full disk, failed sync) or a partition being reopened after one means nothing was
/// acknowledged and the client may retry (`temporarily_unavailable`, 503); a corrupt record or an
/// unusable data directory is a `server_error`. (Here, not in the protocol crate: the protocol
/// rules know nothing of the store.)
pub fn store_error(e: hydra_storage::StoreError) -> OAuthError {
    use hydra_storage::StoreError as S;
    match e {
        S::Corrupt(_) | S::Manifest(_) | S::InUse => OAuthError::new(ErrorCode::ServerError),
        _ => OAuthError::hint(ErrorCode::TemporarilyUnavailable, "The store is unavailable; retry later."),
    }
}

/// `result.oauth()?`: a storage result in a handler that answers protocol errors.
pub trait StoreResult<T> {
    fn oauth(self) -> Result<T, OAuthError>;
}

impl<T> StoreResult<T> for Result<T, hydra_storage::StoreError> {
    fn oauth(self) -> Result<T, OAuthError> {
        self.map_err(store_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_retryable_or_server_error() {
        let e = store_error(hydra_storage::StoreError::Commit("disk full".into()));
        assert_eq!(e.status(), 503);
        assert!(!e.full_description().contains("disk full"));
        let e = store_error(hydra_storage::StoreError::Database("i/o error: No space left on device".into()));
        assert_eq!(e.status(), 503);
        assert!(!e.full_description().contains("space"));
        let e = store_error(hydra_storage::StoreError::Unavailable);
        assert_eq!(e.status(), 503);
        let e = store_error(hydra_storage::StoreError::Corrupt("x"));
        assert_eq!(e.status(), 500);
    }
}
