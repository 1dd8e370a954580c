//! `hydra janitor [database_url]`: deletes expired tokens, finished flows and expired login
//! sessions from a data directory that no server has open, then compacts its files so the
//! directory shrinks; on PostgreSQL, from the shared database while servers run. A running server holds the directory's lock; its background janitor
//! (`engine.janitor.interval`) does the same work, so the command says so and succeeds.

use crate::cli::JanitorCmd;
use crate::config::{parse_dsn, Config, Dsn};
use crate::duration::parse_go_duration;
use crate::janitor::{run, Policy};
use hydra_storage::{Backend, Store, StoreError, StoreOptions};
use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// The partition count recorded when `hydra janitor` is the first to open a PostgreSQL database
/// (a server records its own `engine.partitions` otherwise): the configuration's default, one
/// per CPU rounded up to a power of two.
fn default_partitions() -> u32 {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    cpus.next_power_of_two()
}

fn secs(flag: &str, v: &Option<String>) -> Result<Option<i64>, String> {
    v.as_deref()
        .map(|s| {
            parse_go_duration(s.trim())
                .map(|d| d.as_secs() as i64)
                .ok_or_else(|| format!("Error: --{flag} must be a duration such as 1h or 30m, got {s:?}"))
        })
        .transpose()
}

pub fn janitor(a: &JanitorCmd, out: &mut dyn Write) -> Result<(), String> {
    if !(a.tokens || a.requests || a.grants) {
        return Err("Error: Janitor requires at least one of --tokens, --requests or --grants to be set".into());
    }
    if a.batch_size == 0 || a.limit == 0 {
        return Err("Error: Values for --limit and --batch-size should both be greater than 0".into());
    }
    if a.batch_size > a.limit {
        return Err("Error: Value for --batch-size must not be greater than value for --limit".into());
    }
    let config = if a.config.is_empty() {
        None
    } else {
        // Only the DSN and lifespans are read; no secret is needed for that.
        Some(Config::load(&a.config, true, &|k| std::env::var(k).ok()).map_err(|e| format!("Error: {e}"))?)
    };
    let raw = match (&a.database_url, a.read_from_env, &config) {
        (Some(u), _, _) => Some(u.clone()),
        (None, true, _) => std::env::var("DSN").ok(),
        (None, false, Some(_)) => None,
        (None, false, None) => {
            return Err("Error: give the database URL as an argument, or use -e/--read-from-env or -c/--config".into())
        }
    };
    let dsn = match (raw, &config) {
        (Some(r), _) => parse_dsn(Some(&r)).map_err(|e| format!("Error: {e}"))?,
        (None, Some(c)) => c.dsn.clone(),
        (None, None) => return Err("Error: the DSN environment variable is not set".into()),
    };
    let flow_default = config.as_ref().map_or(1800, |c| c.ttl.login_consent_request.as_secs() as i64);
    let policy = Policy {
        tokens: a.tokens,
        requests: a.requests,
        grants: a.grants,
        keep_secs: secs("keep-if-younger", &a.keep_if_younger)?.unwrap_or(0),
        access_lifespan: secs("access-lifespan", &a.access_lifespan)?,
        refresh_lifespan: secs("refresh-lifespan", &a.refresh_lifespan)?,
        flow_lifespan: secs("consent-request-lifespan", &a.consent_request_lifespan)?.unwrap_or(flow_default),
        batch: a.batch_size,
        limit: Some(a.limit),
        pause: Duration::ZERO,
    };
    let dir = match dsn {
        Dsn::Memory => {
            let _ = writeln!(out, "The in-memory store lives inside its server; nothing to clean here.");
            return Ok(());
        }
        Dsn::Redb(dir) => dir,
        Dsn::Postgres(d) => {
            // Any number of janitors may run against one database: each step is one statement.
            let partitions = config.as_ref().map_or_else(default_partitions, |c| c.engine.partitions);
            let store = Backend::from(crate::pg::open(&d, partitions).map_err(|e| format!("Error: {e}"))?);
            let now = crate::server::state::unix_now();
            let report = run(&store, &policy, now, &AtomicBool::new(false)).map_err(|e| format!("Error: {e}"))?;
            return summary(&report, None, out);
        }
    };
    if hydra_storage::manifest_info(&dir).map_err(|e| format!("Error: {e}"))?.is_none() {
        return Err(format!("Error: {} is not a data directory", dir.display()));
    }
    let store = match Store::open(&dir, &StoreOptions::default()) {
        Ok(s) => Backend::from(s),
        Err(StoreError::InUse) => {
            let _ = writeln!(
                out,
                "{} is in use by a running server; its background janitor (engine.janitor.interval) deletes the same rows. Nothing done.",
                dir.display()
            );
            return Ok(());
        }
        Err(e) => return Err(format!("Error: {e}")),
    };
    let now = crate::server::state::unix_now();
    let report = run(&store, &policy, now, &AtomicBool::new(false)).map_err(|e| format!("Error: {e}"))?;
    drop(store);
    let (before, after) = hydra_storage::compact_dir(&dir).map_err(|e| format!("Error: {e}"))?;
    summary(&report, Some((before, after)), out)
}

fn summary(report: &crate::janitor::Report, sizes: Option<(u64, u64)>, out: &mut dyn Write) -> Result<(), String> {
    let _ = write!(
        out,
        "Examined {} rows; deleted {} tokens, {} flows, {} login sessions and {} trust relationships.",
        report.examined, report.tokens, report.flows, report.login_sessions, report.grants
    );
    match sizes {
        Some((before, after)) => {
            let _ = writeln!(out, " Data files: {before} bytes before, {after} after compaction.");
        }
        None => {
            let _ = writeln!(out);
        }
    }
    Ok(())
}
