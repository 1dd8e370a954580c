//! hydra-rs: a Hydra-compatible OAuth 2.0 and OpenID Connect server on a thread-per-core
//! io_uring runtime (monoio), with state in a partitioned, group-committed redb store.
//!
//! Invariants (kept true in `docs/design.md`):
//! 1. Sans-IO core: `http`, `oauth2`, `jose`, `token`, `config`, `dates`, `duration` live in the
//!    `hydra-protocol` crate (re-exported here under the same paths), which depends on no runtime,
//!    store or socket crate: the compiler enforces it.
//! 2. Verify before work: an opaque token's MAC is checked before any storage read.
//! 3. Durable before reply: a 2xx that reports a write is sent after the write is durable.
//! 4. Workers never block: PBKDF2 runs on helper threads, fsync on committer threads.
//! 5. Secrets never printed: secret-holding types redact their `Debug`; logs carry no tokens.
//! 6. Single writer per partition: only the partition's committer thread writes it.

pub mod cli;
#[doc(inline)]
pub use hydra_protocol::{config, dates, duration, http, jose, oauth2, token};
#[doc(hidden)]
pub mod fuzzing;
pub mod janitor;
pub mod log;
pub mod outbound;
pub mod pg;
pub mod rng;
pub mod server;
