//! The janitor: deletes what can no longer be used (expired tokens, codes and spent markers,
//! tokens revoked by a client's watermark, flows past their request lifespan, expired login
//! sessions, expired trust relationships of the JWT bearer grant) in paced steps, for the
//! `hydra janitor` command and the server's background thread alike.
//!
//! Invariants: a row is deleted only when nothing could still accept it: a token after its
//! expiry or below its client's watermark, a flow's single-use marker after the flow's challenges expired (so a consent verifier
//! can never be replayed into a second code), a login session after its expiry; consent
//! sessions are never swept (the admin API lists them and they revoke their grant's tokens);
//! each step is a bounded read plus one commit, with a pause between steps so that a walk never
//! takes a partition's writer for long. What is dead is data ([`SweepRules`]); the backend
//! applies it.

use hydra_storage::{block_on, Backend, Step, Storage, StoreError, SweepRules, SweepTarget};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What to delete and how fast.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Expired tokens, codes and spent markers (`--tokens`).
    pub tokens: bool,
    /// Finished flows and expired login sessions (`--requests`).
    pub requests: bool,
    /// Expired trust relationships of the JWT bearer grant (`--grants`).
    pub grants: bool,
    /// Keep rows that died less than this long ago (`--keep-if-younger`), seconds.
    pub keep_secs: i64,
    /// Treat access tokens as expired this long after issue, if sooner (`--access-lifespan`).
    pub access_lifespan: Option<i64>,
    /// Same for refresh tokens (`--refresh-lifespan`).
    pub refresh_lifespan: Option<i64>,
    /// How long a flow's challenges stay valid (`ttl.login_consent_request`, or
    /// `--consent-request-lifespan`), seconds.
    pub flow_lifespan: i64,
    /// Rows read per step (`--batch-size`).
    pub batch: usize,
    /// Stop after deleting this many rows (`--limit`); `None`: no limit.
    pub limit: Option<usize>,
    /// Pause between steps.
    pub pause: Duration,
}

/// What a walk deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub examined: u64,
    pub tokens: u64,
    pub flows: u64,
    pub login_sessions: u64,
    pub grants: u64,
    /// The key store's version after the last trust relationship deleted, for the server to
    /// refresh its snapshot.
    pub trust_version: Option<u64>,
}

impl Report {
    pub fn deleted(&self) -> u64 {
        self.tokens + self.flows + self.login_sessions + self.grants
    }
}

/// Walks every partition once. Stops early (with what it did so far) when `stop` is set or the
/// policy's limit is reached. Blocks: run it on a thread of its own, never on a worker.
pub fn run(store: &Backend, p: &Policy, now: i64, stop: &AtomicBool) -> Result<Report, StoreError> {
    let mut report = Report::default();
    // Marks only rise, so marks read at the start of a pass stay true for the whole pass.
    let rules = SweepRules {
        before: now.saturating_sub(p.keep_secs),
        access_lifespan: p.access_lifespan,
        refresh_lifespan: p.refresh_lifespan,
        flow_lifespan: p.flow_lifespan,
        watermarks: block_on(store.load_watermarks())?.into_iter().collect(),
    };
    if p.grants {
        // Their rows carry their expiry as `created` (µs), so they go without being opened.
        let cut = (rules.before.max(0) as u64).saturating_mul(1_000_000);
        let set = crate::server::keys::TRUST_SET;
        for row in block_on(store.load_keys())?.into_iter().filter(|r| r.set == set && r.created <= cut) {
            if stop.load(Ordering::Relaxed) || p.limit.is_some_and(|l| report.deleted() >= l as u64) {
                return Ok(report);
            }
            report.examined += 1;
            let (had, version) = block_on(store.write_keys(set, hydra_storage::KeyWrite::DeleteKey(row.kid)))?;
            report.grants += u64::from(had);
            report.trust_version = Some(version);
        }
    }
    let mut targets = Vec::new();
    if p.tokens {
        targets.push(SweepTarget::Tokens);
    }
    if p.requests {
        targets.extend([SweepTarget::Flows, SweepTarget::LoginSessions]);
    }
    for target in targets {
        for partition in 0..store.partition_count() {
            let mut after: Option<Vec<u8>> = None;
            loop {
                if stop.load(Ordering::Relaxed) || p.limit.is_some_and(|l| report.deleted() >= l as u64) {
                    return Ok(report);
                }
                let Step { examined, deleted, next } =
                    block_on(store.sweep_step(partition, target, after.take(), p.batch, &rules))?;
                report.examined += examined as u64;
                let n = deleted as u64;
                match target {
                    SweepTarget::Tokens => report.tokens += n,
                    SweepTarget::Flows => report.flows += n,
                    SweepTarget::LoginSessions => report.login_sessions += n,
                }
                match next {
                    Some(k) => after = Some(k),
                    None => break,
                }
                if !p.pause.is_zero() {
                    std::thread::sleep(p.pause);
                }
            }
        }
    }
    Ok(report)
}
