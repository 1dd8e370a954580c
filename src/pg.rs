//! From a parsed `postgres://` DSN to the PostgreSQL backend: connection options and how many
//! lanes, for `serve`, `migrate` and `janitor` alike.
//!
//! Invariant: what the connection code does not do is refused here, never ignored.

use crate::config::pg_dsn::{PgDsn, SslMode};
use hydra_storage::pg::{PgOptions, PgStore, PgStoreOptions, TlsMode};

/// The connection options of a parsed DSN.
pub fn options(d: &PgDsn) -> Result<PgOptions, String> {
    if d.sslcert.is_some() {
        return Err("client certificates (sslcert, sslkey) are not supported yet".into());
    }
    Ok(PgOptions {
        host: d.host.clone(),
        port: d.port,
        user: d.user.clone(),
        password: d.password.clone(),
        dbname: d.dbname.clone(),
        tls: match d.sslmode {
            SslMode::Disable => TlsMode::Disable,
            SslMode::Require => TlsMode::Require,
            SslMode::VerifyCa => TlsMode::VerifyCa,
            SslMode::VerifyFull => TlsMode::VerifyFull,
        },
        root_cert: d.sslrootcert.clone(),
        connect_timeout: d.connect_timeout,
        application_name: d.application_name.clone(),
        max_lifetime: d.max_conn_lifetime,
    })
}

/// When the DSN gives no `max_conns`: at least this many connections per process (Hydra's
/// default, twice the CPUs, when that is more). Single-statement writes commit once per WAL
/// flush per connection, so a few connections cap them (`docs/compat.md`).
pub const DEFAULT_MAX_CONNS: usize = 16;

/// How a process spreads its connections (`max_conns` bounds them all, at least three): lanes
/// (threads), one per two CPUs; per lane one exclusive connection, a quarter (one to four) for
/// group commits, the rest for pipelined reads. Returns (lanes, readers, writers) per lane.
pub fn layout(d: &PgDsn) -> (usize, usize, usize) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let max = d.max_conns.map_or((2 * cpus).max(DEFAULT_MAX_CONNS), |m| m as usize).max(3);
    let lanes = cpus.div_ceil(2).clamp(1, max / 3);
    let per_lane = max / lanes;
    let writers = (per_lane / 4).clamp(1, 4);
    (lanes, per_lane - 1 - writers, writers)
}

/// Opens the backend: refuses a database whose schema is behind this release.
pub fn open(d: &PgDsn, partitions: u32) -> Result<PgStore, String> {
    let (lanes, shared, writers) = layout(d);
    let o = PgStoreOptions { conn: options(d)?, lanes, shared, writers, partitions };
    PgStore::open(&o).map_err(|e| e.to_string())
}
