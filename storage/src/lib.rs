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
//! The server sees [`Storage`] (the backend-neutral interface, `api.rs`) through a [`Backend`];
//! [`Store`] is the embedded implementation. No HTTP, no async runtime: the futures complete
//! from committer threads (block on one with [`block_on`] outside a worker). The exception is
//! [`pg`] (PostgreSQL connections and schema migrations, the start of the second backend): its
//! connections run on the calling thread's monoio runtime.

pub mod api;
mod backend;
mod commit;
mod disk;
mod embedded;
mod error;
mod feed;
pub mod pg;
pub mod records;
mod rows;
mod store;
mod sweep;
mod tx;
mod wal;

pub use api::{
    partition_of, Change, Changes, Consent, GrantRef, KeyRow, KeyWrite, LoginSession, PutMode, PutOutcome, Recovered,
    Redeem, Rotate, Step, Storage, SweepRules, SweepTarget, DEVICE_KEPT_AFTER_EXPIRY,
};
pub use backend::Backend;
pub use commit::{block_on, CommitStats, Durability, Pending, Wait, BATCH_BUCKETS, SYNC_BUCKETS_US};
pub use disk::{FaultMode, Faults, SimDisk};
pub use error::StoreError;
pub use records::{ArchivedTokenKind, ArchivedTokenRecord, TokenKind, TokenRecord, TokenView};
pub use rows::Rows;
pub use store::{compact_dir, manifest_info, BackupReport, Store, StoreOptions, CLIENT_RECORD_VERSION, FORMAT_VERSION};
pub use tx::Table;
pub use wal::DEFAULT_WAL_BYTES;
