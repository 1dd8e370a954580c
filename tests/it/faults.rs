//! I/O errors under the whole server: with the storage fault switch (the test hook
//! `HYDRA_TEST_FAULT_FILE`) set to a full disk or to failing syncs, every write is answered
//! `503 temporarily_unavailable` (never a 2xx), readiness fails, and once the fault clears the
//! server recovers by itself: writes succeed again and every write acknowledged before, during
//! or after the fault is still there after a restart.

use crate::harness::*;
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

fn set_fault(file: &Path, mode: &str) {
    std::fs::write(file, mode).unwrap();
    // The switch is polled every 20 ms.
    std::thread::sleep(Duration::from_millis(100));
}

fn run(mode: &str) {
    if embedded_only("the simulated disk of the embedded store") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fault = dir.path().join("fault");
    let opts = Opts::new("legacy").dir(&data).env("HYDRA_TEST_FAULT_FILE", fault.to_str().unwrap());
    let s = opts.start();
    assert!(s.log().contains("fault injection is on"), "{}", s.log());
    let (id, secret) = cc_client(&s, "");
    let mut acked: Vec<String> = (0..20).map(|_| access_token(&s, &id, &secret)).collect();

    set_fault(&fault, mode);
    for _ in 0..10 {
        let r = token_req(&id, &secret, &[]).send(s.public);
        assert_eq!(r.status, 503, "{mode}: a token was issued while the disk fails: {}", r.text());
        assert_eq!(r.json()["error"], "temporarily_unavailable", "{mode}: {}", r.text());
    }
    let r = Req::new("POST", "/admin/clients")
        .json(&json!({"client_id": format!("during-{mode}"), "client_secret": "secret-during-fault", "grant_types": ["client_credentials"]}))
        .send(s.admin);
    assert_eq!(r.status, 503, "{mode}: {}", r.text());
    let r = Req::get("/health/ready").send(s.admin);
    assert_eq!(r.status, 503, "{mode}: ready while the store fails: {}", r.text());
    // Nothing panicked and the process still answers what needs no write.
    Req::get("/health/alive").send(s.public).expect(200);

    set_fault(&fault, "none");
    // Each partition reopens on its own schedule: until every one has (ready again), a request
    // may still meet one that refuses writes, and must then be a 503, never a lost 200.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut issued_again = false;
    loop {
        let r = token_req(&id, &secret, &[]).send(s.public);
        if r.status == 200 {
            acked.push(r.json()["access_token"].as_str().unwrap().to_string());
            issued_again = true;
        } else {
            assert_eq!(r.status, 503, "{mode}: {}", r.text());
        }
        if issued_again && Req::get("/health/ready").send(s.admin).status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "{mode}: the server did not recover:\n{}", s.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..10 {
        acked.push(access_token(&s, &id, &secret));
    }
    Req::get("/health/ready").send(s.admin).expect(200);
    let metrics = scrape(&s);
    assert!(metric_sum(&metrics, "hydra_store_reopens_total{") >= 1.0, "{mode}: no reopen counted:\n{metrics}");
    for t in &acked {
        assert!(is_active(&s, t), "{mode}: an acknowledged token is gone");
    }
    s.stop();
    let s = Opts::new("legacy").dir(&data).start();
    for t in &acked {
        assert!(is_active(&s, t), "{mode}: an acknowledged token is gone after a restart");
    }
    token(&s, &id, &secret, &[]);
    s.stop();
}

#[test]
fn a_full_disk_is_503_until_it_clears() {
    run("disk_full");
}

#[test]
fn failing_syncs_are_503_until_they_clear() {
    run("sync_fails");
}
