//! Client authentication takes the same time for an unknown client as for a known client with a
//! wrong secret (so response times do not reveal which client ids exist): a statistical check
//! over interleaved samples, with PBKDF2 made expensive enough to dominate the request.

use crate::harness::*;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
fn unknown_clients_and_wrong_secrets_take_the_same_time() {
    let s = Opts::new("io_uring").env("OAUTH2_HASHERS_PBKDF2_ITERATIONS", "5000").start();
    let (id, secret) = cc_client(&s, "read");
    // A right secret once, so the known client's secret digest is cached: a wrong secret must
    // still cost a full PBKDF2, not a cache comparison.
    token(&s, &id, &secret, &[]);
    let time = |who: &str, pw: &str| {
        let t = Instant::now();
        let r = token_req(who, pw, &[]).send(s.public);
        assert_eq!(r.status, 401, "{}", r.text());
        t.elapsed().as_secs_f64() * 1000.0
    };
    let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
    for i in 0..30 {
        // Interleaved, so drift of a noisy machine hits both alike.
        if i % 2 == 0 {
            unknown.push(time(&format!("no-such-client-{i}"), "whatever-secret"));
            wrong.push(time(&id, "wrong-secret"));
        } else {
            wrong.push(time(&id, "wrong-secret"));
            unknown.push(time(&format!("no-such-client-{i}"), "whatever-secret"));
        }
    }
    let t0 = Instant::now();
    for _ in 0..30 {
        Req::get("/health/alive").send(s.public).expect(200);
    }
    let baseline = t0.elapsed().as_secs_f64() * 1000.0 / 30.0;
    let (mu, mw) = (median(unknown.clone()), median(wrong.clone()));
    eprintln!("median ms: unknown client {mu:.2}, wrong secret {mw:.2}, bare request {baseline:.2}");
    // Both pay the key derivation: each is far above a bare request...
    assert!(mu > 3.0 * baseline && mw > 3.0 * baseline, "unknown {mu:.2} wrong {mw:.2} baseline {baseline:.2}");
    // ...and the two medians agree within 35 %.
    let ratio = mu / mw;
    assert!(
        (0.65..1.0 / 0.65).contains(&ratio),
        "unknown {mu:.2} ms vs wrong secret {mw:.2} ms: {unknown:?} {wrong:?}"
    );
}
