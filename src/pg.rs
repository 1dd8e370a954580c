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
    })
}

/// How many lanes a process runs: each holds two connections, so `max_conns` (Hydra's default:
/// twice the CPUs) bounds them; at least one.
pub fn lanes(d: &PgDsn) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let max = d.max_conns.map_or(2 * cpus, |m| m as usize);
    (max / 2).max(1)
}

/// Opens the backend: refuses a database whose schema is behind this release.
pub fn open(d: &PgDsn, partitions: u32) -> Result<PgStore, String> {
    let o = PgStoreOptions { conn: options(d)?, lanes: lanes(d), partitions };
    PgStore::open(&o).map_err(|e| e.to_string())
}
