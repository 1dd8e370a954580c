//! PostgreSQL (issue 11, in progress): connections made on the calling thread's monoio runtime.
//! The backend behind the `Storage` trait is not built yet; what exists is how a worker reaches
//! the database: [`connect`] with the options of a `postgres://` DSN, TLS per `sslmode`.
//!
//! Invariants: a connection lives on the runtime that made it (its socket is registered with
//! that ring, and its driving future is spawned there); nothing here blocks the calling thread
//! (host names are resolved on a thread of their own); the password never reaches `Debug` or an
//! error message.

mod connect;
mod lane;
pub mod migrate;
pub(crate) mod sql;
mod store;
mod tls;

pub use connect::{connect, PgOptions, TlsMode};
pub use lane::PgStats;
pub use store::{PgStore, PgStoreOptions, SEQ_BLOCK};
