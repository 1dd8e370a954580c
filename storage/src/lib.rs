//! The storage crate: a partitioned, group-committed redb store with rkyv records.
//!
//! On-disk contract (see `docs/design.md` §3–§4 of the repository):
//! - A data directory holds `MANIFEST` (`{"format":2,"partitions":P}`), `meta.redb` (clients,
//!   token watermarks) and `p0000.redb` … one file per token partition, each with its
//!   write-ahead log (`meta.wal`, `p0000.wal`, …). P is a power of two fixed at creation.
//! - Every table is bytes → bytes. Token records are keyed by a per-partition sequence number
//!   (big-endian u64, increasing) and stored as a version byte followed by a validated rkyv
//!   archive; only the token's signature is stored.
//! - Each database has exactly one writer thread (group commit); a write is acknowledged only
//!   after its batch is durable: its log record is on disk, or the batch was a durable redb
//!   commit (a checkpoint).
//!
//! No HTTP, no async runtime: callers get a [`Pending`] future (or block on it with `wait`).

mod commit;
mod disk;
mod error;
pub mod records;
mod store;
mod sweep;
mod tx;
mod wal;

pub use commit::{block_on, CommitStats, Durability, Pending, BATCH_BUCKETS, SYNC_BUCKETS_US};
pub use disk::{FaultMode, Faults, SimDisk};
pub use error::StoreError;
pub use records::{ArchivedTokenKind, ArchivedTokenRecord, TokenKind, TokenRecord, TokenView};
pub use store::{
    compact_dir, flow_started, manifest_info, ClientStore, DocStore, GrantStore, KeyRow, KeyStore, KeyWrite, PutMode,
    PutOutcome, Redeem, Rotate, RowMap, Store, StoreOptions, TokenStore, CLIENT_RECORD_VERSION, FORMAT_VERSION,
};
pub use sweep::{DeadRule, Step};
pub use tx::{Table, Tx};
pub use wal::DEFAULT_WAL_BYTES;
