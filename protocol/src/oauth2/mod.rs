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
