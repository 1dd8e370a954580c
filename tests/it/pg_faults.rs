//! PostgreSQL going away under a running server (a cluster of the test's own, so it can be
//! stopped): requests that need the database answer `503 temporarily_unavailable`, readiness
//! fails, liveness holds, the process keeps running and heals by itself when the database is
//! back; nothing acknowledged is lost when PostgreSQL is killed with SIGKILL under load.

use crate::harness::*;
use crate::restart::Load;
use std::time::{Duration, Instant};

fn token_status(s: &Server, id: &str, secret: &str) -> Response {
    token_req(id, secret, &[]).send(s.public)
}

/// Waits (up to 15 s) until the server issues tokens again.
#[track_caller]
fn heals(s: &Server, id: &str, secret: &str) {
    let t0 = Instant::now();
    while token_status(s, id, secret).status != 200 {
        assert!(t0.elapsed() < Duration::from_secs(15), "the server did not recover:\n{}", s.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    Req::get("/health/ready").send(s.public).expect(200);
}

#[test]
fn outages_are_503_and_heal_by_themselves() {
    let cluster = testpg::Cluster::start(&[]).unwrap();
    let dsn = create_database(&cluster, "faults");
    let s = Opts::new("io_uring").env("DSN", &dsn).start();
    let (id, secret) = cc_client(&s, "read");
    let before = access_token(&s, &id, &secret);
    for (what, stop) in [
        ("stopped (immediate)", &(|c: &testpg::Cluster| c.stop_immediate()) as &dyn Fn(&testpg::Cluster) -> _),
        ("killed with SIGKILL", &|c: &testpg::Cluster| c.kill_9()),
    ] {
        stop(&cluster).unwrap();
        // Every request that needs the database: 503, promptly, with the RFC 6749 error body.
        // After SIGKILL of the postmaster its orphaned backends may answer (and durably commit)
        // a little longer; a 200 is acceptable until they notice, any other answer is not.
        let t0 = Instant::now();
        loop {
            let r = token_status(&s, &id, &secret);
            if r.status == 503 {
                r.expect_error(503, "temporarily_unavailable");
                break;
            }
            r.expect(200);
            assert!(t0.elapsed() < Duration::from_secs(10), "{what}: still served after {:?}", t0.elapsed());
            std::thread::sleep(Duration::from_millis(50));
        }
        let t0 = Instant::now();
        token_status(&s, &id, &secret).expect_error(503, "temporarily_unavailable");
        assert!(t0.elapsed() < Duration::from_secs(6), "{what}: the 503 took {:?}", t0.elapsed());
        introspect_req(&before, None).send(s.admin).expect_error(503, "temporarily_unavailable");
        Req::new("POST", "/admin/clients").json(&serde_json::json!({})).send(s.admin).expect_json_error(503);
        Req::get("/health/ready").send(s.public).expect(503);
        Req::get("/health/ready").send(s.admin).expect(503);
        Req::get("/health/alive").send(s.public).expect(200);
        cluster.start_again().unwrap();
        heals(&s, &id, &secret);
        assert!(is_active(&s, &before), "{what}: a token issued before the outage is still active");
    }
    let m = scrape(&s);
    // The outages were seen: statements that failed, or connections that could not be opened.
    let failed = metric(&m, "hydra_pg_statement_failures_total").unwrap_or(0.0)
        + metric(&m, "hydra_pg_connect_failures_total").unwrap_or(0.0);
    assert!(failed > 0.0, "{m}");
    assert!(metric(&m, "hydra_pg_connects_total").is_some_and(|c| c >= 2.0), "{m}");
    s.stop();
}

#[test]
fn nothing_acknowledged_is_lost_when_postgres_is_killed_under_load() {
    let cluster = testpg::Cluster::start(&[]).unwrap();
    let dsn = create_database(&cluster, "crash");
    let s = Opts::new("io_uring").env("DSN", &dsn).start();
    let load = Load::start(&s, 4);
    std::thread::sleep(Duration::from_millis(600));
    cluster.kill_9().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    cluster.start_again().unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let acked = load.finish();
    assert!(acked.len() > 10, "the load ran ({} tokens)", acked.len());
    // Acknowledged ⇒ committed: every one of them is active, on this node and on a new one.
    assert_eq!(count_active(s.admin, &acked), acked.len(), "a token acknowledged before the crash was lost");
    let other = Opts::new("io_uring").env("DSN", &dsn).start();
    assert_eq!(count_active(other.admin, &acked), acked.len());
}

/// A TCP relay to the database that can go silent: it stops passing bytes in both directions
/// and holds new connections without answering, as a cut network does (no reset).
struct Relay {
    addr: std::net::SocketAddr,
    silent: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Relay {
    fn start(to: u16) -> Relay {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering::SeqCst;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let silent = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let quiet = silent.clone();
        std::thread::spawn(move || {
            for client in l.incoming().flatten() {
                let quiet = quiet.clone();
                std::thread::spawn(move || {
                    while quiet.load(SeqCst) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", to)) else { return };
                    for (mut from, mut into) in
                        [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)]
                    {
                        let quiet = quiet.clone();
                        std::thread::spawn(move || {
                            let mut buf = [0u8; 16384];
                            loop {
                                let n = match from.read(&mut buf) {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => n,
                                };
                                // Silent: the bytes are held, never delivered (the link is gone).
                                while quiet.load(SeqCst) {
                                    std::thread::sleep(Duration::from_millis(20));
                                }
                                if into.write_all(&buf[..n]).is_err() {
                                    return;
                                }
                            }
                        });
                    }
                });
            }
        });
        Relay { addr, silent }
    }

    fn set_silent(&self, on: bool) {
        self.silent.store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The database unreachable without a reset (packets dropped): statements in flight fail after
/// the statement timeout (10 s), new connections after `connect_timeout`, every request then
/// answers 503 at once until the link is back, and the server heals by itself.
#[test]
fn an_unreachable_database_is_503_within_the_timeouts_and_heals() {
    let cluster = testpg::Cluster::start(&[]).unwrap();
    create_database(&cluster, "unreachable");
    let relay = Relay::start(cluster.port());
    let dsn = format!("postgres://postgres@{}/unreachable?sslmode=disable&connect_timeout=2", relay.addr);
    let s = Opts::new("io_uring").env("DSN", &dsn).start();
    let (id, secret) = cc_client(&s, "read");
    let before = access_token(&s, &id, &secret);
    relay.set_silent(true);
    let t0 = Instant::now();
    let mut c = Conn::open(s.public);
    c.set_timeout(Duration::from_secs(30));
    c.send(&token_req(&id, &secret, &[]).bytes(true));
    c.response().expect_error(503, "temporarily_unavailable");
    let first = t0.elapsed();
    assert!(first < Duration::from_secs(14), "the first request waited {first:?}");
    // Later requests do not wait for the dead link again and again.
    let t1 = Instant::now();
    let mut c = Conn::open(s.public);
    c.set_timeout(Duration::from_secs(30));
    c.send(&token_req(&id, &secret, &[]).bytes(true));
    c.response().expect_error(503, "temporarily_unavailable");
    assert!(t1.elapsed() < Duration::from_secs(4), "a later request waited {:?}:\n{}", t1.elapsed(), s.log());
    Req::get("/health/alive").send(s.public).expect(200);
    relay.set_silent(false);
    heals(&s, &id, &secret);
    assert!(is_active(&s, &before));
}
