//! The janitor: deletes what can no longer be used (expired tokens, codes and spent markers,
//! tokens revoked by a client's watermark, flows past their request lifespan, expired login
//! sessions) in paced steps, for the
//! `hydra janitor` command and the server's background thread alike.
//!
//! Invariants: a row is deleted only when nothing could still accept it: a token after its
//! expiry or below its client's watermark, a flow's single-use marker after the flow's challenges expired (so a consent verifier
//! can never be replayed into a second code), a login session after its expiry; consent
//! sessions are never swept (the admin API lists them and they revoke their grant's tokens);
//! each step is a bounded read plus one commit, with a pause between steps so that a walk never
//! takes a partition's writer for long.

use hydra_storage::records::decode_token;
use hydra_storage::{flow_started, DeadRule, Step, Store, StoreError, Table, TokenKind};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What to delete and how fast.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Expired tokens, codes and spent markers (`--tokens`).
    pub tokens: bool,
    /// Finished flows and expired login sessions (`--requests`).
    pub requests: bool,
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
}

impl Report {
    pub fn deleted(&self) -> u64 {
        self.tokens + self.flows + self.login_sessions
    }
}

/// When a stored token can no longer be used, by the policy's lifespans.
fn token_end(p: &Policy, kind: TokenKind, issued_at: i64, expires_at: i64) -> i64 {
    let cap = match kind {
        TokenKind::Access => p.access_lifespan,
        TokenKind::Refresh | TokenKind::RefreshUsed => p.refresh_lifespan,
        TokenKind::Code | TokenKind::CodeUsed => None,
    };
    cap.map_or(expires_at, |life| expires_at.min(issued_at.saturating_add(life)))
}

#[derive(serde::Deserialize)]
struct Expiring {
    expires_at: i64,
}

/// Per client, the partition's watermark: every token of that client below it was revoked
/// (client deleted, or `DELETE /admin/oauth2/tokens`). Marks only rise, so a mark read at the
/// start of a pass stays true for the whole pass.
type Marks = Arc<HashMap<String, u64>>;

/// The rule for one table of one partition at time `now`. Rows the rule cannot read are kept:
/// the janitor never deletes what it does not understand.
fn rule(p: &Policy, table: Table, now: i64, marks: Marks) -> DeadRule {
    let before = now.saturating_sub(p.keep_secs);
    let p = p.clone();
    match table {
        Table::Tokens => Arc::new(move |k, v| {
            let seq = <[u8; 8]>::try_from(k).map(u64::from_be_bytes).ok();
            decode_token(v).is_ok_and(|r| {
                let revoked = seq.is_some_and(|s| marks.get(&r.client_id).is_some_and(|m| s < *m));
                revoked || token_end(&p, r.kind, r.issued_at, r.expires_at) <= before
            })
        }),
        Table::Flows => {
            Arc::new(move |_, v| flow_started(v).is_some_and(|t| t.saturating_add(p.flow_lifespan) < before))
        }
        _ => Arc::new(move |_, v| serde_json::from_slice::<Expiring>(v).is_ok_and(|s| s.expires_at <= before)),
    }
}

/// Walks every partition once. Stops early (with what it did so far) when `stop` is set or the
/// policy's limit is reached.
pub fn run(store: &Store, p: &Policy, now: i64, stop: &AtomicBool) -> Result<Report, StoreError> {
    use hydra_storage::{ClientStore, TokenStore};
    let mut report = Report::default();
    let watermarks = store.load_watermarks()?;
    let mut tables = Vec::new();
    if p.tokens {
        tables.push(Table::Tokens);
    }
    if p.requests {
        tables.extend([Table::Flows, Table::LoginSessions, Table::SessionIds]);
    }
    for table in tables {
        for partition in 0..store.partition_count() {
            let marks: HashMap<String, u64> = watermarks
                .iter()
                .filter_map(|(id, m)| Some((id.clone(), *m.get(partition as usize)?)))
                .filter(|(_, m)| *m > 0)
                .collect();
            let dead = rule(p, table, now, Arc::new(marks));
            let mut after: Option<Vec<u8>> = None;
            loop {
                if stop.load(Ordering::Relaxed) || p.limit.is_some_and(|l| report.deleted() >= l as u64) {
                    return Ok(report);
                }
                let Step { examined, deleted, next } =
                    store.sweep_step(partition, table, after.as_deref(), p.batch, &dead)?;
                report.examined += examined as u64;
                let n = deleted as u64;
                match table {
                    Table::Tokens => report.tokens += n,
                    Table::Flows => report.flows += n,
                    _ => report.login_sessions += n,
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
