//! Security tests, one file per area: what an attacker can send to each surface and what the
//! server must answer per RFC 6749, RFC 7636, RFC 9700 (OAuth 2.0 Security BCP) and OIDC Core.
//!
//! The browser-side helpers (every leg of a flow, so a test can stop at any one and tamper with
//! what the browser carries) live in `crate::browser`; the area files reach them through `super`.

mod admin_json;
mod challenges;
mod client_auth;
mod client_auth_timing;
mod grants;
mod http;
pub mod outbound;
mod pkce_state_nonce;
mod ports;
mod redirect;

pub use crate::browser::*;
