//! The storage crate: a partitioned, group-committed redb store with rkyv records.
//!
//! On-disk contract (see `docs/design.md` §3–§4 of the repository):
//! - A data directory holds `MANIFEST` (`{"format":1,"partitions":P}`), `meta.redb` (clients,
//!   token watermarks) and `p0000.redb` … one file per token partition. P is a power of two
//!   fixed at creation.
//! - Token records are keyed by a per-partition sequence number (u64, increasing) and stored as
//!   a version byte followed by a validated rkyv archive; only the token's signature is stored.
//! - Each database has exactly one writer thread (group commit); a write is acknowledged only
//!   after the transaction containing it is durable.
//!
//! No HTTP, no async runtime: callers get a [`Pending`] future (or block on it with `wait`).

mod commit;
mod error;
pub mod records;
mod store;
mod tx;
mod wal;

pub use commit::{CommitStats, Durability, Pending};
pub use error::StoreError;
pub use records::{TokenKind, TokenRecord};
pub use store::{
    ClientStore, PutMode, PutOutcome, Store, StoreOptions, TokenStore, CLIENT_RECORD_VERSION, FORMAT_VERSION,
};
pub use tx::{Table, Tx};
pub use wal::DEFAULT_WAL_BYTES;
