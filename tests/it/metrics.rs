//! `GET /admin/metrics/prometheus`: per-worker counters summed on scrape.

use crate::harness::*;
use serde_json::json;
use std::sync::{Arc, Mutex};

#[test]
fn counters_histograms_and_store_figures() {
    let dir = tempfile::tempdir().unwrap();
    let s = Opts::new("io_uring").dir(dir.path()).start();
    let c = create_client(&s, &json!({"grant_types": ["client_credentials"], "scope": "read"}));
    let (id, secret) = (c["client_id"].as_str().unwrap(), c["client_secret"].as_str().unwrap());
    let mut tokens = Vec::new();
    for _ in 0..5 {
        let r = token_req(id, secret, &[("scope", "read")]).send(s.public);
        r.expect(200);
        tokens.push(r.json()["access_token"].as_str().unwrap().to_string());
    }
    for t in &tokens[..3] {
        assert!(is_active(&s, t));
    }
    Req::get("/no/such/path").send(s.public).expect(404);
    let r = Req::get("/admin/metrics/prometheus").send(s.admin);
    r.expect(200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain; version=0.0.4"));
    let m = r.text();
    assert_eq!(metric(&m, "hydra_http_requests_total{route=\"token\",code=\"200\"}"), Some(5.0), "{m}");
    assert_eq!(metric(&m, "hydra_http_requests_total{route=\"create_client\",code=\"201\"}"), Some(1.0));
    assert_eq!(metric(&m, "hydra_http_requests_total{route=\"not_found\",code=\"404\"}"), Some(1.0));
    assert_eq!(metric(&m, "hydra_tokens_issued_total"), Some(5.0));
    assert_eq!(metric(&m, "hydra_introspections_total"), Some(3.0));
    assert_eq!(metric(&m, "hydra_http_request_duration_seconds_count{route=\"token\"}"), Some(5.0));
    assert_eq!(metric(&m, "hydra_http_request_duration_seconds_bucket{route=\"token\",le=\"+Inf\"}"), Some(5.0));
    // Buckets are cumulative.
    let buckets = metric_values(&m, "hydra_http_request_duration_seconds_bucket{route=\"token\"");
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    if postgres() {
        // The PostgreSQL backend's figures: statements and their round trips, the token
        // inserts' batch sizes (five tokens, at least one row each), the client's transaction.
        let statements = metric(&m, "hydra_pg_statements_total").unwrap_or(0.0);
        assert!(statements >= 5.0, "{m}");
        assert_eq!(metric(&m, "hydra_pg_round_trip_seconds_count"), Some(statements), "{m}");
        assert_eq!(metric(&m, "hydra_pg_round_trip_seconds_bucket{le=\"+Inf\"}"), Some(statements), "{m}");
        assert_eq!(metric(&m, "hydra_pg_insert_batch_rows_sum"), Some(5.0), "{m}");
        assert_eq!(metric(&m, "hydra_pg_lookup_batch_keys_sum"), Some(3.0), "three introspections: {m}");
        assert!(metric(&m, "hydra_pg_write_group_writes_sum").is_some_and(|w| w >= 5.0), "{m}");
        assert!(metric(&m, "hydra_pg_transactions_total").is_some_and(|t| t >= 1.0), "{m}");
        assert_eq!(metric(&m, "hydra_pg_statement_failures_total"), Some(0.0), "{m}");
        assert_eq!(metric(&m, "hydra_pg_statements_in_flight"), Some(0.0), "{m}");
        assert!(metric(&m, "hydra_pg_connects_total").is_some_and(|c| c >= 1.0), "{m}");
    } else {
        let commits = metric_sum(&m, "hydra_store_commits_total{");
        assert!(commits >= 1.0, "{m}");
        // Batch sizes: one observation per commit, summing to the writes carried; durable-write
        // latencies: one observation per commit that made one (the five tokens each needed one; the
        // client went to the meta database, which these per-partition figures leave out).
        let sum_of = |prefix: &str| metric_sum(&m, prefix);
        assert_eq!(sum_of("hydra_store_commit_batch_size_count{"), commits, "{m}");
        assert_eq!(
            sum_of("hydra_store_commit_batch_size_bucket{partition=\"0\",le=\"+Inf\"}"),
            sum_of("hydra_store_commit_batch_size_count{partition=\"0\"}")
        );
        assert!(sum_of("hydra_store_commit_batch_size_sum{") >= 5.0, "five tokens: {m}");
        let syncs = sum_of("hydra_store_sync_duration_seconds_count{");
        assert!(syncs >= 5.0, "{m}");
        assert!(m.contains("hydra_store_sync_duration_seconds_bucket{partition=\"0\",le=\"0.00005\"}"), "{m}");
        assert_eq!(
            sum_of("hydra_store_sync_duration_seconds_bucket{partition=\"0\",le=\"+Inf\"}"),
            sum_of("hydra_store_sync_duration_seconds_count{partition=\"0\"}")
        );
        let sync_buckets = metric_values(&m, "hydra_store_sync_duration_seconds_bucket{partition=\"0\"");
        assert_eq!(sync_buckets.len(), 11);
        assert!(sync_buckets.windows(2).all(|w| w[0] <= w[1]), "{sync_buckets:?}");
        assert!(metric(&m, "hydra_store_file_bytes{file=\"p0000.redb\"}").is_some_and(|b| b > 0.0), "{m}");
        assert!(metric(&m, "hydra_store_file_bytes{file=\"p0000.wal\"}").is_some());
    }
    // No token or secret ever appears in the scrape.
    for t in &tokens {
        assert!(!m.contains(t.as_str()));
    }
    assert!(!m.contains(secret));
    // The scrape itself is counted by the next one; the public port does not serve it.
    Req::get("/admin/metrics/prometheus").send(s.public).expect(404);
    let again = Req::get("/metrics/prometheus").send(s.admin).text();
    assert_eq!(metric(&again, "hydra_http_requests_total{route=\"metrics\",code=\"200\"}"), Some(1.0));
}

#[test]
fn one_log_line_per_request_with_a_request_id_and_no_secrets() {
    let s = Opts::new("legacy").start();
    let (id, secret) = cc_client(&s, "read");
    let tok = access_token(&s, &id, &secret);
    let r = introspect_req(&tok, None).header("X-Request-Id", "trace-abc.123").send(s.admin);
    r.expect(200);
    assert_eq!(r.header("x-request-id"), Some("trace-abc.123"));
    // A forged id (spaces, quotes) is replaced by a generated one.
    let r = Req::get("/health/alive").header("X-Request-Id", "x\" level=error msg=\"forged").send(s.public);
    let generated = r.header("x-request-id").unwrap().to_string();
    assert_eq!(generated.len(), 24);
    assert!(generated.bytes().all(|b| b.is_ascii_hexdigit()));
    // A verifier in the query string is not logged.
    Req::get("/oauth2/auth?consent_verifier=VERIFIER-SECRET-VALUE").send(s.public);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let log = s.log();
    let line = log.lines().find(|l| l.contains("request_id=trace-abc.123")).unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains("msg=\"request\"") && line.contains("/admin/oauth2/introspect") && line.contains("status=200"),
        "{line}"
    );
    assert!(line.contains("method=POST") || line.contains("method=\"POST\""), "{line}");
    assert!(line.contains("duration_ms="), "{line}");
    assert!(log.contains(&format!("request_id={generated}")), "{log}");
    assert!(!log.contains("forged"), "{log}");
    assert!(!log.contains("VERIFIER-SECRET-VALUE"), "{log}");
    assert!(!log.contains(&tok), "a token reached the log");
    assert!(!log.contains(&secret), "a client secret reached the log");
    // One line per request: the traced request appears exactly once.
    assert_eq!(log.lines().filter(|l| l.contains("request_id=trace-abc.123")).count(), 1, "{log}");
}

/// Log lines are written off the worker threads: with stderr full (nobody reading it), requests
/// are still answered at once; lines that cannot be queued are dropped and counted
/// (`hydra_log_lines_dropped_total`), and once stderr drains the server says how many it dropped.
#[test]
fn a_full_stderr_never_stalls_a_worker_and_drops_are_counted() {
    use std::io::BufRead;
    let (s, pipe) = Server::start_undrained(Opts::new("io_uring"));
    // Each request logs a line of ~150 bytes; a pipe holds 64 KiB: thousands of lines overflow
    // it and the writer's queue many times over.
    let t0 = std::time::Instant::now();
    let addr = s.public;
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                conn.set_timeout(std::time::Duration::from_secs(5));
                for _ in 0..6000 {
                    conn.request(&Req::get("/health/alive")).expect(200);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("every request answered");
    }
    let took = t0.elapsed();
    assert!(took < std::time::Duration::from_secs(60), "requests stalled behind a full stderr: {took:?}");
    let m = Req::get("/admin/metrics/prometheus").send(s.admin).text();
    let dropped = metric(&m, "hydra_log_lines_dropped_total").unwrap_or(0.0);
    assert!(dropped > 0.0, "lines beyond the queue are counted as dropped:\n{m}");
    // Drain stderr: the writer catches up and reports the drop in a line of its own.
    let seen = Arc::new(Mutex::new(String::new()));
    {
        let seen = seen.clone();
        std::thread::spawn(move || {
            for line in pipe.lines() {
                let Ok(line) = line else { break };
                let mut s = seen.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        Req::get("/health/ready").send(s.public).expect(200);
        let text = seen.lock().unwrap().clone();
        if text.contains("log lines were dropped") && text.contains("/health/ready") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no drop notice after draining:\n{}",
            &text[text.len().saturating_sub(2000)..]
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
