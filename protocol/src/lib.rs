//! The sans-IO core of hydra-rs: everything that is protocol and no I/O. HTTP/1.1 parsing and
//! form decoding (`http`), OAuth 2.0 and OpenID Connect rules (`oauth2`), JOSE (`jose`), the
//! opaque token format (`token`), configuration (`config`), dates and Go durations.
//!
//! Invariant: this crate depends on no async runtime, no store and no socket crate, so none of
//! it can block a worker, touch the disk behind the store's back or open a connection; it is
//! tested and fuzzed on bytes and values alone. The server crate re-exports these modules under
//! the same paths.

pub mod config;
pub mod dates;
pub mod duration;
pub mod http;
pub mod jose;
pub mod oauth2;
pub mod token;
