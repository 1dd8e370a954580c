//! `GET /admin/metrics/prometheus`: per-worker counters summed on scrape.

use crate::harness::*;
use serde_json::json;

fn metric(text: &str, line_start: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(line_start)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

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
    let buckets: Vec<f64> = m
        .lines()
        .filter(|l| l.starts_with("hydra_http_request_duration_seconds_bucket{route=\"token\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    let commits: f64 = m
        .lines()
        .filter(|l| l.starts_with("hydra_store_commits_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(commits >= 1.0, "{m}");
    assert!(metric(&m, "hydra_store_file_bytes{file=\"p0000.redb\"}").is_some_and(|b| b > 0.0), "{m}");
    assert!(metric(&m, "hydra_store_file_bytes{file=\"p0000.wal\"}").is_some());
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
