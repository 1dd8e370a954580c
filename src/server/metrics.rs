//! Prometheus metrics (`GET /admin/metrics/prometheus`): requests by route and status, latency
//! histograms by route, tokens issued, introspections, commits, batch sizes, durable-write
//! latency, and data-file sizes.
//!
//! Invariants: every worker counts into its own block of relaxed atomics (no lock, no shared
//! cache line on the request path); a scrape sums the blocks, so a scrape sees every request
//! that finished before it, possibly plus some that finished during it.

use crate::server::respond::Response;
use crate::server::router::Route;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Route labels; `route_index` maps each `Route` to one of them.
const ROUTES: [&str; 30] = [
    "health_alive",
    "health_ready",
    "version",
    "token",
    "revoke",
    "introspect",
    "delete_tokens",
    "list_clients",
    "create_client",
    "get_client",
    "put_client",
    "patch_client",
    "delete_client",
    "client_lifespans",
    "rotate_secret",
    "keys",
    "jwks",
    "authorize",
    "fallback",
    "discovery",
    "userinfo",
    "login_consent_requests",
    "sessions",
    "metrics",
    "not_found",
    "method_not_allowed",
    "logout",
    "dynamic_registration",
    "trust",
    "device",
];

/// Status codes counted apart; anything else counts as `other`.
const STATUSES: [u16; 16] = [200, 201, 204, 302, 400, 401, 403, 404, 405, 408, 409, 410, 413, 429, 500, 503];

/// Latency histogram bounds, in microseconds.
pub const BUCKETS_US: [u64; 12] =
    [100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000];

pub fn route_index(r: &Route) -> usize {
    match r {
        Route::HealthAlive => 0,
        Route::HealthReady => 1,
        Route::Version => 2,
        Route::Token => 3,
        Route::Revoke => 4,
        Route::Introspect => 5,
        Route::DeleteTokens => 6,
        Route::ListClients => 7,
        Route::CreateClient => 8,
        Route::GetClient(_) => 9,
        Route::PutClient(_) => 10,
        Route::PatchClient(_) => 11,
        Route::DeleteClient(_) => 12,
        Route::ClientLifespans(_) => 13,
        Route::RotateSecret(_) | Route::DeleteRotatedSecrets(_) => 14,
        Route::GetKeySet(_)
        | Route::CreateKey(_)
        | Route::PutKeySet(_)
        | Route::DeleteKeySet(_)
        | Route::GetKey(..)
        | Route::PutKey(..)
        | Route::DeleteKey(..) => 15,
        Route::WellKnownJwks => 16,
        Route::Authorize => 17,
        Route::Fallback(_) => 18,
        Route::Discovery => 19,
        Route::Userinfo => 20,
        Route::FlowRequest(..) | Route::LogoutRequest(_) => 21,
        Route::ListConsentSessions | Route::RevokeConsentSessions | Route::RevokeLoginSessions => 22,
        Route::Metrics | Route::Backup => 23,
        Route::NotFound | Route::Credentials => 24,
        Route::MethodNotAllowed(_) => 25,
        Route::Logout | Route::LogoutFallback => 26,
        Route::Register | Route::GetRegistered(_) | Route::PutRegistered(_) | Route::DeleteRegistered(_) => 27,
        Route::ListTrust | Route::CreateTrust | Route::GetTrust(_) | Route::DeleteTrust(_) => 28,
        Route::DeviceAuth | Route::DeviceVerify | Route::DeviceAccept => 29,
    }
}

/// One worker's counters. Written only by that worker; read by scrapes.
#[derive(Debug)]
pub struct WorkerMetrics {
    requests: Vec<AtomicU64>,
    latency: Vec<AtomicU64>,
    latency_sum_us: Vec<AtomicU64>,
    pub tokens_issued: AtomicU64,
    pub introspections: AtomicU64,
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        let n = |k: usize| (0..k).map(|_| AtomicU64::new(0)).collect();
        WorkerMetrics {
            requests: n(ROUTES.len() * (STATUSES.len() + 1)),
            latency: n(ROUTES.len() * (BUCKETS_US.len() + 1)),
            latency_sum_us: n(ROUTES.len()),
            tokens_issued: AtomicU64::new(0),
            introspections: AtomicU64::new(0),
        }
    }
}

impl WorkerMetrics {
    /// Counts one answered request of the route with index `r` (`route_index`).
    pub fn record(&self, r: usize, status: u16, micros: u64) {
        let s = STATUSES.iter().position(|x| *x == status).unwrap_or(STATUSES.len());
        self.requests[r * (STATUSES.len() + 1) + s].fetch_add(1, Relaxed);
        let b = BUCKETS_US.iter().position(|x| micros <= *x).unwrap_or(BUCKETS_US.len());
        self.latency[r * (BUCKETS_US.len() + 1) + b].fetch_add(1, Relaxed);
        self.latency_sum_us[r].fetch_add(micros, Relaxed);
    }
}

fn sum(all: &[std::sync::Arc<WorkerMetrics>], f: impl Fn(&WorkerMetrics) -> &AtomicU64) -> u64 {
    all.iter().map(|m| f(m).load(Relaxed)).sum()
}

/// The Prometheus text exposition of every counter.
pub fn render(all: &[std::sync::Arc<WorkerMetrics>], janitor: &JanitorStats, store: &hydra_storage::Backend) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let _ = writeln!(out, "# HELP hydra_http_requests_total HTTP requests answered, by route and status.");
    let _ = writeln!(out, "# TYPE hydra_http_requests_total counter");
    for (r, route) in ROUTES.iter().enumerate() {
        for s in 0..=STATUSES.len() {
            let n = sum(all, |m| &m.requests[r * (STATUSES.len() + 1) + s]);
            if n > 0 {
                let code = STATUSES.get(s).map_or("other".to_string(), u16::to_string);
                let _ = writeln!(out, "hydra_http_requests_total{{route=\"{route}\",code=\"{code}\"}} {n}");
            }
        }
    }
    let _ = writeln!(
        out,
        "# HELP hydra_http_request_duration_seconds Time from a complete request to its answer, by route."
    );
    let _ = writeln!(out, "# TYPE hydra_http_request_duration_seconds histogram");
    for (r, route) in ROUTES.iter().enumerate() {
        let counts: Vec<u64> =
            (0..=BUCKETS_US.len()).map(|b| sum(all, |m| &m.latency[r * (BUCKETS_US.len() + 1) + b])).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            continue;
        }
        let mut cumulative = 0;
        for (b, bound) in BUCKETS_US.iter().enumerate() {
            cumulative += counts[b];
            let le = *bound as f64 / 1e6;
            let _ = writeln!(
                out,
                "hydra_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(out, "hydra_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {total}");
        let secs = sum(all, |m| &m.latency_sum_us[r]) as f64 / 1e6;
        let _ = writeln!(out, "hydra_http_request_duration_seconds_sum{{route=\"{route}\"}} {secs}");
        let _ = writeln!(out, "hydra_http_request_duration_seconds_count{{route=\"{route}\"}} {total}");
    }
    let counter = |out: &mut String, name: &str, help: &str, v: u64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
    };
    counter(&mut out, "hydra_tokens_issued_total", "Access and refresh tokens issued.", sum(all, |m| &m.tokens_issued));
    counter(
        &mut out,
        "hydra_introspections_total",
        "Introspection requests answered.",
        sum(all, |m| &m.introspections),
    );
    counter(&mut out, "hydra_log_lines_total", "Log lines written by the log writer thread.", crate::log::written());
    counter(
        &mut out,
        "hydra_log_lines_dropped_total",
        "Log lines dropped because the log writer could not keep up (each drop is also reported in a log line).",
        crate::log::dropped(),
    );
    let b = &BACKCHANNEL;
    let (sent, failed, dropped) = (b.sent.load(Relaxed), b.failed.load(Relaxed), b.dropped.load(Relaxed));
    let _ = writeln!(
        out,
        "# HELP hydra_backchannel_logout_total Back-channel logout notices, by result (dropped: the queue was full).\n# TYPE hydra_backchannel_logout_total counter"
    );
    for (result, n) in [("sent", sent), ("failed", failed), ("dropped", dropped)] {
        let _ = writeln!(out, "hydra_backchannel_logout_total{{result=\"{result}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP hydra_device_user_code_failures_total User codes refused at the device accept endpoint, by reason (wrong: unknown, expired or used; locked: the challenge had used up its guesses).\n# TYPE hydra_device_user_code_failures_total counter"
    );
    for (reason, n) in [("wrong", DEVICE_WRONG_CODES.load(Relaxed)), ("locked", DEVICE_LOCKED.load(Relaxed))] {
        let _ = writeln!(out, "hydra_device_user_code_failures_total{{reason=\"{reason}\"}} {n}");
    }
    let j = janitor;
    counter(&mut out, "hydra_janitor_passes_total", "Completed janitor passes.", j.passes.load(Relaxed));
    let _ = writeln!(out, "# HELP hydra_janitor_deleted_total Rows the janitor deleted, by kind.\n# TYPE hydra_janitor_deleted_total counter");
    for (kind, n) in [("tokens", &j.tokens), ("flows", &j.flows), ("login_sessions", &j.login_sessions)] {
        let _ = writeln!(out, "hydra_janitor_deleted_total{{kind=\"{kind}\"}} {}", n.load(Relaxed));
    }
    storage(store, &mut out);
    out
}

/// Back-channel logout notices since start: answered 2xx, failed, dropped (queue full).
#[derive(Debug, Default)]
pub struct BackchannelStats {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
}

/// Wrong user codes given for device challenges, and answers refused because a challenge had
/// used up its guesses (`hydra_device_user_code_failures_total`).
pub static DEVICE_WRONG_CODES: AtomicU64 = AtomicU64::new(0);
pub static DEVICE_LOCKED: AtomicU64 = AtomicU64::new(0);

pub static BACKCHANNEL: BackchannelStats =
    BackchannelStats { sent: AtomicU64::new(0), failed: AtomicU64::new(0), dropped: AtomicU64::new(0) };

/// What the background janitor did since start.
#[derive(Debug, Default)]
pub struct JanitorStats {
    pub passes: AtomicU64,
    pub tokens: AtomicU64,
    pub flows: AtomicU64,
    pub login_sessions: AtomicU64,
}

impl JanitorStats {
    pub fn record(&self, r: &crate::janitor::Report) {
        self.tokens.fetch_add(r.tokens, Relaxed);
        self.flows.fetch_add(r.flows, Relaxed);
        self.login_sessions.fetch_add(r.login_sessions, Relaxed);
        self.passes.fetch_add(1, Relaxed);
    }
}

/// One unlabelled histogram from its bucket counts (the last one is `+Inf`) and sum.
fn histogram(out: &mut String, name: &str, help: &str, per_unit: f64, bounds: &[u64], slots: &[AtomicU64], sum: f64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    let mut cumulative = 0;
    for (i, le) in bounds.iter().enumerate() {
        cumulative += slots[i].load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {cumulative}", *le as f64 / per_unit);
    }
    cumulative += slots[bounds.len()].load(Relaxed);
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(out, "{name}_sum {sum}");
    let _ = writeln!(out, "{name}_count {cumulative}");
}

/// The PostgreSQL backend's figures.
fn postgres(s: &hydra_storage::pg::PgStats, out: &mut String) {
    let counters: [(&str, &str, u64); 5] = [
        ("hydra_pg_statements_total", "Statements sent to PostgreSQL.", s.statements.load(Relaxed)),
        (
            "hydra_pg_statement_failures_total",
            "Statements that failed (refused, or their connection broke).",
            s.failures.load(Relaxed),
        ),
        (
            "hydra_pg_transactions_total",
            "Multi-statement transactions committed (client, key and epoch writes).",
            s.transactions.load(Relaxed),
        ),
        ("hydra_pg_connects_total", "Connections opened.", s.connects.load(Relaxed)),
        ("hydra_pg_connect_failures_total", "Connection attempts that failed.", s.connect_failures.load(Relaxed)),
    ];
    for (name, help, v) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
    }
    let _ = writeln!(
        out,
        "# HELP hydra_pg_statements_in_flight Statements sent and not yet answered (the pool in use).\n# TYPE hydra_pg_statements_in_flight gauge\nhydra_pg_statements_in_flight {}",
        s.in_flight.load(Relaxed).max(0)
    );
    histogram(
        out,
        "hydra_pg_round_trip_seconds",
        "Latency of each statement, from sending it to its answer (commit included for writes).",
        1e6,
        &hydra_storage::SYNC_BUCKETS_US,
        &s.rtt_hist,
        s.rtt_micros.load(Relaxed) as f64 / 1e6,
    );
    histogram(
        out,
        "hydra_pg_write_group_writes",
        "Writes committed together by each group commit (one transaction, one WAL flush).",
        1.0,
        &hydra_storage::BATCH_BUCKETS,
        &s.group_hist,
        s.group_writes.load(Relaxed) as f64,
    );
    histogram(
        out,
        "hydra_pg_lookup_batch_keys",
        "Token lookups answered by each lookup statement.",
        1.0,
        &hydra_storage::BATCH_BUCKETS,
        &s.lookup_hist,
        s.lookup_keys.load(Relaxed) as f64,
    );
    histogram(
        out,
        "hydra_pg_insert_batch_rows",
        "Token rows written by each multi-row insert (a worker's group commit).",
        1.0,
        &hydra_storage::BATCH_BUCKETS,
        &s.batch_hist,
        s.batch_rows.load(Relaxed) as f64,
    );
}

fn storage(store: &hydra_storage::Backend, out: &mut String) {
    if let Some(pg) = store.postgres() {
        return postgres(pg.stats(), out);
    }
    // Commit counters and data files are the embedded store's.
    let Some(store) = store.embedded() else { return };
    let parts = hydra_storage::Storage::partition_count(store);
    let _ = writeln!(out, "# HELP hydra_store_commits_total Commits (group commits) per partition.\n# TYPE hydra_store_commits_total counter");
    let _ = writeln!(out, "# HELP hydra_store_commit_jobs_total Writes carried by those commits (batch size = jobs / commits).\n# TYPE hydra_store_commit_jobs_total counter");
    let _ = writeln!(out, "# HELP hydra_store_checkpoints_total Durable redb commits (write-ahead log checkpoints).\n# TYPE hydra_store_checkpoints_total counter");
    let _ = writeln!(out, "# HELP hydra_store_commit_failures_total Commits that failed (nothing acknowledged).\n# TYPE hydra_store_commit_failures_total counter");
    let _ = writeln!(out, "# HELP hydra_store_sync_seconds_total Time spent making commits durable (log writes and checkpoints).\n# TYPE hydra_store_sync_seconds_total counter");
    let _ = writeln!(out, "# HELP hydra_store_reopens_total Times a partition's database was reopened after an I/O error.\n# TYPE hydra_store_reopens_total counter");
    let _ = writeln!(out, "# HELP hydra_store_failed Whether a partition refuses writes until its database is reopened (1) or not (0).\n# TYPE hydra_store_failed gauge");
    for p in 0..parts {
        let Some(s) = store.partition_stats(p) else { continue };
        let _ = writeln!(out, "hydra_store_commits_total{{partition=\"{p}\"}} {}", s.commits.load(Relaxed));
        let _ = writeln!(out, "hydra_store_commit_jobs_total{{partition=\"{p}\"}} {}", s.jobs.load(Relaxed));
        let _ = writeln!(out, "hydra_store_checkpoints_total{{partition=\"{p}\"}} {}", s.checkpoints.load(Relaxed));
        let _ = writeln!(out, "hydra_store_commit_failures_total{{partition=\"{p}\"}} {}", s.failures.load(Relaxed));
        let _ = writeln!(out, "hydra_store_reopens_total{{partition=\"{p}\"}} {}", s.reopens.load(Relaxed));
        let _ = writeln!(out, "hydra_store_failed{{partition=\"{p}\"}} {}", u8::from(s.failed.load(Relaxed)));
        let _ = writeln!(
            out,
            "hydra_store_sync_seconds_total{{partition=\"{p}\"}} {}",
            s.sync_micros.load(Relaxed) as f64 / 1e6
        );
    }
    let hist = |out: &mut String,
                name: &str,
                help: &str,
                per_unit: f64,
                bounds: &[u64],
                pick: &dyn Fn(&hydra_storage::CommitStats) -> (&[std::sync::atomic::AtomicU64], f64)| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for p in 0..parts {
            let Some(s) = store.partition_stats(p) else { continue };
            let (slots, sum) = pick(s);
            let mut cumulative = 0;
            for (i, le) in bounds.iter().enumerate() {
                cumulative += slots[i].load(Relaxed);
                let _ =
                    writeln!(out, "{name}_bucket{{partition=\"{p}\",le=\"{}\"}} {cumulative}", *le as f64 / per_unit);
            }
            cumulative += slots[bounds.len()].load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{partition=\"{p}\",le=\"+Inf\"}} {cumulative}");
            let _ = writeln!(out, "{name}_sum{{partition=\"{p}\"}} {sum}");
            let _ = writeln!(out, "{name}_count{{partition=\"{p}\"}} {cumulative}");
        }
    };
    hist(
        out,
        "hydra_store_sync_duration_seconds",
        "Latency of each durable write (a log record, or a checkpoint's durable commit).",
        1e6,
        &hydra_storage::SYNC_BUCKETS_US,
        &|s| (&s.sync_hist[..], s.sync_micros.load(Relaxed) as f64 / 1e6),
    );
    hist(
        out,
        "hydra_store_commit_batch_size",
        "Writes carried by each group commit.",
        1.0,
        &hydra_storage::BATCH_BUCKETS,
        &|s| (&s.batch_hist[..], s.jobs.load(Relaxed) as f64),
    );
    if let Some(dir) = store.dir() {
        let _ =
            writeln!(out, "# HELP hydra_store_file_bytes Size of each data file.\n# TYPE hydra_store_file_bytes gauge");
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut files: Vec<(String, u64)> = entries
                .filter_map(Result::ok)
                .filter_map(|e| Some((e.file_name().into_string().ok()?, e.metadata().ok()?.len())))
                .filter(|(n, _)| n.ends_with(".redb") || n.ends_with(".wal"))
                .collect();
            files.sort();
            for (name, len) in files {
                let _ = writeln!(out, "hydra_store_file_bytes{{file=\"{name}\"}} {len}");
            }
        }
    }
}

/// The scrape answer (`GET /admin/metrics/prometheus`).
pub fn answer(
    all: &[std::sync::Arc<WorkerMetrics>],
    janitor: &JanitorStats,
    store: &hydra_storage::Backend,
) -> Response {
    Response {
        status: 200,
        headers: vec![("Content-Type", "text/plain; version=0.0.4; charset=utf-8".into())],
        body: render(all, janitor, store).into_bytes(),
        close: false,
    }
}
