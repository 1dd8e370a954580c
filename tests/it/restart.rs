//! Areas 7 and 9: durability across SIGTERM, SIGKILL and shutdown under load (redb DSN).

use crate::harness::*;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn sigterm_restart_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Opts::new("io_uring").dir(dir.path());
    let s = opts.start();
    let (a, asec) = cc_client(&s, "a");
    let (b, bsec) = cc_client(&s, "a");
    let mut tokens = Vec::new();
    let mut ca = Conn::open(s.public);
    for i in 0..50 {
        let r =
            if i % 2 == 0 { ca.request(&token_req(&a, &asec, &[])) } else { ca.request(&token_req(&b, &bsec, &[])) };
        r.expect(200);
        tokens.push(r.json()["access_token"].as_str().unwrap().to_string());
    }
    drop(ca);
    let revoked = tokens.remove(7);
    revoke(&s, &b, &bsec, &revoked).expect(200);
    assert!(!is_active(&s, &revoked));
    let took = s.stop();
    assert!(took < Duration::from_secs(15));

    let s = opts.start();
    for id in [&a, &b] {
        let r = Req::get(&format!("/admin/clients/{id}")).send(s.admin);
        r.expect(200);
        assert_eq!(r.json()["client_id"], json!(id));
    }
    assert_eq!(count_active(s.admin, &tokens), 49, "every token survives a graceful restart");
    assert!(!is_active(&s, &revoked), "revoked stays revoked");
    // Secrets still verify (hashes persisted), and new tokens are distinct from the old ones.
    let fresh = access_token(&s, &a, &asec);
    assert!(!tokens.contains(&fresh));
    assert!(is_active(&s, &fresh));
    access_token(&s, &b, &bsec);
    s.stop();
}

#[test]
fn sigkill_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Opts::new("legacy").dir(dir.path());
    let s = opts.start();
    let (a, asec) = cc_client(&s, "a");
    let mut c = Conn::open(s.public);
    let mut tokens = Vec::new();
    for _ in 0..40 {
        let r = c.request(&token_req(&a, &asec, &[]));
        r.expect(200);
        tokens.push(r.json()["access_token"].as_str().unwrap().to_string());
    }
    let revoked = tokens.pop().unwrap();
    revoke(&s, &a, &asec, &revoked).expect(200);
    // A client created (201) right before the kill, and a rotated secret.
    let (late, latesec) = cc_client(&s, "a");
    let r = Req::new("POST", &format!("/admin/clients/{late}/secrets/rotate")).send(s.admin);
    r.expect(200);
    let rotated = r.json()["client_secret"].as_str().unwrap().to_string();
    s.kill();

    let s = opts.start();
    assert_eq!(count_active(s.admin, &tokens), tokens.len(), "every 200 before SIGKILL is durable");
    assert!(!is_active(&s, &revoked));
    access_token(&s, &late, &latesec);
    access_token(&s, &late, &rotated);
    s.kill();
}

#[test]
fn sigkill_during_load_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Opts::new("io_uring").dir(dir.path());
    let s = opts.start();
    let load = Load::start(&s, 4);
    std::thread::sleep(Duration::from_millis(400));
    s.kill();
    let acked = load.finish();
    assert!(!acked.is_empty());
    let s = opts.start();
    assert_eq!(count_active(s.admin, &acked), acked.len(), "acknowledged before SIGKILL ⇒ durable");
}

/// Threads issuing tokens for one client until stopped; collects every token that got a 200.
pub struct Load {
    acked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    pub fn start(s: &Server, threads: usize) -> Load {
        let (a, asec) = cc_client(s, "a");
        let acked = Arc::new(Mutex::new(Vec::<String>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handles = (0..threads)
            .map(|_| {
                let (acked, stop, a, asec, addr) = (acked.clone(), stop.clone(), a.clone(), asec.clone(), s.public);
                std::thread::spawn(move || load(addr, &a, &asec, &acked, &stop))
            })
            .collect();
        Load { acked, stop, handles }
    }

    /// Stops the threads and returns the acknowledged tokens.
    pub fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        for h in self.handles {
            h.join().unwrap();
        }
        let acked = self.acked.lock().unwrap().clone();
        acked
    }
}

/// Issues tokens on keep-alive connections until the server goes away or `stop` is set;
/// records every token that got a 200.
fn load(addr: std::net::SocketAddr, id: &str, secret: &str, acked: &Mutex<Vec<String>>, stop: &AtomicBool) {
    let req = token_req(id, secret, &[]).bytes(false);
    let deadline = Instant::now() + Duration::from_secs(20);
    'outer: while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        let Ok(stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
            break;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(3)));
        let mut c = Conn::from_stream(stream);
        loop {
            if !c.send_lossy(&req) {
                continue 'outer;
            }
            match c.read_response() {
                Ok(r) if r.status == 200 => {
                    acked.lock().unwrap().push(r.json()["access_token"].as_str().unwrap().to_string())
                }
                Ok(r) => {
                    // Only a refusal to take new work is acceptable while stopping.
                    assert!(r.status == 503, "unexpected {} {}", r.status, r.text());
                }
                Err(_) => continue 'outer,
            }
            if stop.load(Ordering::SeqCst) {
                break 'outer;
            }
        }
    }
}

#[test]
fn graceful_shutdown_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Opts::new("io_uring").dir(dir.path());
    let s = opts.start();
    let load = Load::start(&s, 8);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!load.acked.lock().unwrap().is_empty(), "load is running");
    let took = s.stop(); // asserts exit code 0 within 15 s
    assert!(took < Duration::from_secs(15), "{took:?}");
    let acked = load.finish();
    let unique: std::collections::HashSet<_> = acked.iter().collect();
    assert_eq!(unique.len(), acked.len(), "no token issued twice");
    let s = opts.start();
    assert_eq!(count_active(s.admin, &acked), acked.len(), "every 200 before/while stopping is durable");
    s.stop();
}

/// After `DELETE /admin/oauth2/tokens?client_id=` the client's NEW tokens must be active, also
/// after a restart. The store recovers each partition's next sequence number from the last
/// stored token, so when the newest tokens were revoked (deleted) before the watermark was
/// raised, the restarted server hands out sequence numbers below the client's watermark.
#[test]
fn new_tokens_active_after_revoke_delete_tokens_restart() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Opts::new("io_uring").dir(dir.path()).env("ENGINE_PARTITIONS", "1");
    let s = opts.start();
    let (a, asec) = cc_client(&s, "a");
    let t1 = access_token(&s, &a, &asec);
    let t2 = access_token(&s, &a, &asec);
    revoke(&s, &a, &asec, &t2).expect(200);
    Req::new("DELETE", &format!("/admin/oauth2/tokens?client_id={a}")).send(s.admin).expect(204);
    assert!(!is_active(&s, &t1));
    s.stop();

    let s = opts.start();
    assert!(!is_active(&s, &t1), "old tokens stay revoked");
    let fresh = access_token(&s, &a, &asec);
    assert!(is_active(&s, &fresh), "a token issued after the restart must be active");
    s.stop();
}

/// Watermarks and client deletions survive a restart (tokens stay dead; new ones live).
#[test]
fn revocations_by_client_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Opts::new("legacy").dir(dir.path());
    let s = opts.start();
    let (a, asec) = cc_client(&s, "a");
    let (b, bsec) = cc_client(&s, "a");
    let (c, csec) = cc_client(&s, "a");
    let a_old: Vec<String> = (0..6).map(|_| access_token(&s, &a, &asec)).collect();
    let b_old: Vec<String> = (0..6).map(|_| access_token(&s, &b, &bsec)).collect();
    let c_keep: Vec<String> = (0..6).map(|_| access_token(&s, &c, &csec)).collect();
    Req::new("DELETE", &format!("/admin/oauth2/tokens?client_id={a}")).send(s.admin).expect(204);
    Req::new("DELETE", &format!("/admin/clients/{b}")).send(s.admin).expect(204);
    let a_new: Vec<String> = (0..6).map(|_| access_token(&s, &a, &asec)).collect();
    s.stop();

    let s = opts.start();
    assert_eq!(count_active(s.admin, &a_old), 0);
    assert_eq!(count_active(s.admin, &a_new), 6);
    assert_eq!(count_active(s.admin, &b_old), 0);
    assert_eq!(count_active(s.admin, &c_keep), 6);
    Req::get(&format!("/admin/clients/{b}")).send(s.admin).expect(404);
    // Re-creating the deleted id does not resurrect its old tokens.
    create_client(&s, &json!({"client_id": b, "client_secret": bsec, "grant_types": ["client_credentials"]}));
    assert_eq!(count_active(s.admin, &b_old), 0);
    let b_new = access_token(&s, &b, &bsec);
    assert!(is_active(&s, &b_new));
    s.stop();
}

/// `SECRETS_SYSTEM` rotation: prepend a new secret and old tokens keep working while new ones are
/// signed with the new secret; drop the old secret and its tokens stop verifying.
#[test]
fn system_secret_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let old = "old-system-secret-0123456789";
    let new = "new-system-secret-0123456789";
    let s = Opts::new("io_uring").dir(dir.path()).env("SECRETS_SYSTEM", old).start();
    let (id, secret) = cc_client(&s, "a");
    let t_old = access_token(&s, &id, &secret);
    s.stop();

    let s = Opts::new("io_uring").dir(dir.path()).env("SECRETS_SYSTEM", &format!("{new},{old}")).start();
    assert!(is_active(&s, &t_old), "a token signed with a rotated secret still verifies");
    let t_new = access_token(&s, &id, &secret);
    assert!(is_active(&s, &t_new));
    s.stop();

    let s = Opts::new("io_uring").dir(dir.path()).env("SECRETS_SYSTEM", new).start();
    assert!(is_active(&s, &t_new), "tokens signed with the first secret survive dropping the old one");
    assert!(!is_active(&s, &t_old), "a token whose secret was dropped no longer verifies");
    let r = Req::new("POST", "/oauth2/revoke").basic(&id, &secret).form(&[("token", &t_old)]).send(s.public);
    r.expect(200);
    s.stop();
}

/// A consent revocation cut short right after its first commit (the consents deleted, the intent
/// to revoke their grants recorded, no grant revoked yet) is finished at the next start, before
/// anything is served: the refresh token it left alive is dead, the consent stays gone.
#[test]
fn an_interrupted_consent_revocation_is_finished_at_start_up() {
    if embedded_only("a revocation intent written into the embedded store's files") {
        return;
    }
    use crate::browser::*;
    use hydra_storage::Storage;
    let dir = tempfile::tempdir().unwrap();
    let opts = Opts::new("legacy").dir(dir.path());
    let s = opts.start();
    let c = rp(&s, json!({}));
    let done = run_flow(
        &s,
        &c,
        &[],
        &json!({"subject": "iris", "remember": true}),
        &json!({"grant_scope": ["openid", "offline_access"], "remember": true}),
    );
    let t = exchange(&s, &c, &code_of(&done), Some(VERIFIER)).json();
    let rt = t["refresh_token"].as_str().unwrap().to_string();
    assert!(is_active(&s, &rt));
    s.stop();
    // The first commit of `DELETE …/sessions/consent?subject=iris&all=true`, and then a crash.
    {
        let store = hydra_storage::Store::open(dir.path(), &Default::default()).unwrap();
        hydra_storage::block_on(store.begin_consent_revocation("iris", None)).unwrap();
        let listed = hydra_storage::block_on(store.list_consents("iris")).unwrap();
        assert!(listed.is_empty(), "the consent rows were moved");
    }
    let s = opts.start();
    assert!(!is_active(&s, &rt), "the interrupted revocation was finished before serving");
    let listed = Req::get("/admin/oauth2/auth/sessions/consent?subject=iris").send(s.admin).json();
    assert_eq!(listed, json!([]));
    assert!(s.log().contains("finished consent revocations interrupted by a crash"), "{}", s.log());
}

/// Login sessions stored before sessions were indexed by id are indexed once, at the first start
/// of this release, so `DELETE …/sessions/login?sid=` finds them too.
#[test]
fn login_sessions_of_an_earlier_release_can_be_revoked_by_id() {
    if embedded_only("rows of an earlier release of the embedded store") {
        return;
    }
    use hydra_storage::Table;
    let dir = tempfile::tempdir().unwrap();
    let opts = Opts::new("legacy").dir(dir.path());
    {
        // The rows an earlier release wrote: the session under its subject, no id row.
        let store = hydra_storage::Store::open(
            dir.path(),
            &hydra_storage::StoreOptions { partitions: 4, ..Default::default() },
        )
        .unwrap();
        for (sub, sid) in [("jane", "sid-old-1"), ("jane", "sid-old-2"), ("kim", "sid-old-3")] {
            let row = json!({"subject": sub, "auth_time": 1, "expires_at": 4_000_000_000i64});
            let key = [sub.as_bytes(), &[0], sid.as_bytes()].concat();
            store.raw_put(Table::LoginSessions, sub, vec![(key, row.to_string().into_bytes())]).wait().unwrap();
        }
    }
    let s = opts.start();
    assert!(s.log().contains("indexed the login sessions of an earlier release"), "{}", s.log());
    Req::new("DELETE", "/admin/oauth2/auth/sessions/login?sid=sid-old-2").send(s.admin).expect(204);
    s.stop();
    let store = hydra_storage::Store::open(dir.path(), &Default::default()).unwrap();
    let jane = store.raw_scan(Table::LoginSessions, "jane", b"jane\0").unwrap();
    let left: Vec<String> = jane.iter().map(|(k, _)| String::from_utf8_lossy(&k[5..]).into_owned()).collect();
    assert_eq!(left, vec!["sid-old-1".to_string()], "exactly the revoked session is gone");
    assert_eq!(store.raw_scan(Table::LoginSessions, "kim", b"kim\0").unwrap().len(), 1);
}
