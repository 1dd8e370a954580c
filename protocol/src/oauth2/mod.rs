//! OAuth 2.0 protocol rules, sans-IO: no runtime, no store, no sockets. Each function takes
//! typed values and returns typed values or an [`error::OAuthError`].

pub mod authorization_code;
pub mod authorize;
pub mod client;
pub mod client_auth;
pub mod client_credentials;
pub mod error;
pub mod flow;
pub mod hasher;
pub mod id_token;
pub mod introspection;
pub mod page_token;
pub mod scope;
pub mod token_request;
pub mod uri;

/// Appends `s` as a JSON string literal (escaped as serde_json escapes it), for the answers that
/// are written directly instead of through a `serde_json::Value` (token, introspection).
pub(crate) fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail; an error could only truncate the body, never panic.
    let _ = serde_json::to_writer(&mut *out, s);
}
