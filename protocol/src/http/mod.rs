//! Sans-IO HTTP/1.1 layer: request-head parsing, body framing, form decoding and
//! response serialisation as pure functions over byte slices. Nothing here touches
//! sockets or storage, and nothing panics on attacker-controlled bytes: every
//! failure surfaces as an [`HttpError`] carrying the status to answer with.

pub mod body;
pub mod cors;
pub mod form;
pub mod request;
pub mod response;

use std::fmt;

/// Whether `s` is an RFC 9110 token (§5.6.2): one or more `tchar`s. Header names, cookie names and
/// configured names that become either are checked with it.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// An HTTP-level failure: the status to answer with and a short reason for the JSON error body.
///
/// The strings are `'static` on purpose: they never echo request bytes back, so an
/// error body can't be used to reflect attacker-chosen content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpError {
    pub status: u16,
    pub error: &'static str,
    pub description: &'static str,
}

impl HttpError {
    /// 400 with a specific description; the error code stays `invalid_request`
    /// because that is what OAuth clients know how to interpret.
    pub const fn bad_request(description: &'static str) -> Self {
        HttpError { status: 400, error: "invalid_request", description }
    }

    pub const BAD_REQUEST: HttpError = HttpError::bad_request("The request is malformed.");
    pub const REQUEST_TIMEOUT: HttpError =
        HttpError { status: 408, error: "invalid_request", description: "The request was not received in time." };
    pub const PAYLOAD_TOO_LARGE: HttpError =
        HttpError { status: 413, error: "invalid_request", description: "The request body is too large." };
    pub const URI_TOO_LONG: HttpError =
        HttpError { status: 414, error: "invalid_request", description: "The request URI is too long." };
    pub const HEADERS_TOO_LARGE: HttpError =
        HttpError { status: 431, error: "invalid_request", description: "The request header fields are too large." };
    pub const NOT_IMPLEMENTED: HttpError =
        HttpError { status: 501, error: "invalid_request", description: "The transfer encoding is not supported." };
    pub const VERSION_NOT_SUPPORTED: HttpError =
        HttpError { status: 505, error: "invalid_request", description: "The HTTP version is not supported." };
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.error, self.description)
    }
}

impl std::error::Error for HttpError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_carry_expected_statuses() {
        let table = [
            (HttpError::BAD_REQUEST, 400),
            (HttpError::REQUEST_TIMEOUT, 408),
            (HttpError::PAYLOAD_TOO_LARGE, 413),
            (HttpError::URI_TOO_LONG, 414),
            (HttpError::HEADERS_TOO_LARGE, 431),
            (HttpError::NOT_IMPLEMENTED, 501),
            (HttpError::VERSION_NOT_SUPPORTED, 505),
        ];
        for (err, status) in table {
            assert_eq!(err.status, status);
            assert_eq!(err.error, "invalid_request");
            assert!(!err.description.is_empty());
        }
        assert_eq!(HttpError::PAYLOAD_TOO_LARGE.description, "The request body is too large.");
    }

    #[test]
    fn display_includes_status_and_description() {
        let s = HttpError::URI_TOO_LONG.to_string();
        assert_eq!(s, "414 invalid_request: The request URI is too long.");
    }
}

/// A parsed request with its whole body.
#[derive(Debug)]
pub struct Request {
    pub head: request::RequestHead,
    pub body: Vec<u8>,
}
