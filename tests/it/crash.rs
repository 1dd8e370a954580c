//! Crash test of the whole server: concurrent writes of every kind (client creation, token
//! issuance, revocation, refresh rotation, remembered consents) against a data directory, `kill -9` at a random
//! moment, restart, and check that every write acknowledged with a 2xx is there and every
//! acknowledged revocation holds. Repeated; the short version runs in the test command, the long
//! one with `CRASH_KILLS=50 cargo test --test it crash:: -- --nocapture`.

use crate::browser::{auth_path, local, query_param, rp, Jar, Rp};
use crate::flow::run_flow;
use crate::harness::*;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Acked {
    clients: Vec<String>,
    tokens: Vec<String>,
    revoked: Vec<String>,
    /// The last acknowledged rotation of each refresh chain: (refresh, access, rotation in flight).
    chains: Vec<(String, String, bool)>,
    /// Remembered consents acknowledged (a code came back), by subject.
    consents: Vec<(String, usize)>,
    /// Grants revoked through their consent: (subject, refresh token, state): 0 granted and
    /// acknowledged, 1 revocation in flight, 2 revocation acknowledged (204).
    consent_revocations: Vec<(String, String, u8)>,
}

/// One browser flow with a remembered consent, without panicking when the server goes away;
/// `Some` once the code came back (the consent session is durable before that redirect).
fn consent_flow(
    public: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    c: &Rp,
    subject: &str,
    scope: &[&str],
) -> Option<String> {
    let mut jar = Jar::default();
    let get = |jar: &Jar, path: &str| {
        let mut req = Req::get(path);
        if !jar.0.is_empty() {
            req = req.header("Cookie", &jar.header());
        }
        req.try_send(public).ok()
    };
    let put = |path: String, body: serde_json::Value| {
        let r = Req::new("PUT", &path).json(&body).try_send(admin).ok().filter(|r| r.status == 200)?;
        r.json()["redirect_to"].as_str().map(local)
    };
    let r = get(&jar, &auth_path(c, &[("code_challenge", ""), ("code_challenge_method", ""), ("prompt", "consent")]))?;
    jar.take(&r);
    let lc = query_param(r.header("location")?, "login_challenge")?;
    let back =
        put(format!("/admin/oauth2/auth/requests/login/accept?login_challenge={lc}"), json!({"subject": subject}))?;
    let r = get(&jar, &back)?;
    jar.take(&r);
    let cc = query_param(r.header("location")?, "consent_challenge")?;
    let back = put(
        format!("/admin/oauth2/auth/requests/consent/accept?consent_challenge={cc}"),
        json!({"grant_scope": scope, "remember": true}),
    )?;
    let r = get(&jar, &back)?;
    query_param(r.header("location")?, "code")
}

/// A grant with a refresh token through a remembered consent of a new subject: (subject,
/// refresh token), once the code exchange was acknowledged.
fn grant(public: std::net::SocketAddr, admin: std::net::SocketAddr, c: &Rp, prefix: &str) -> Option<(String, String)> {
    let subject = uniq(prefix);
    let code = consent_flow(public, admin, c, &subject, &["openid", "offline_access"])?;
    let t = Req::new("POST", "/oauth2/token")
        .basic(&c.id, &c.secret)
        .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", "https://rp.example/cb")])
        .try_send(public)
        .ok()
        .filter(|r| r.status == 200)?;
    let rt = t.json()["refresh_token"].as_str()?.to_string();
    Some((subject, rt))
}

/// A grant revoked through its consent (`DELETE …/sessions/consent?all=true`), then a grant that
/// stays, recording each acknowledged step.
fn grant_and_revoke(
    public: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    c: &Rp,
    shared: &Mutex<Acked>,
) -> Option<()> {
    let (subject, rt) = grant(public, admin, c, "crash-revoke")?;
    let i = {
        let mut a = shared.lock().unwrap();
        a.consent_revocations.push((subject.clone(), rt, 1));
        a.consent_revocations.len() - 1
    };
    Req::new("DELETE", &format!("/admin/oauth2/auth/sessions/consent?subject={subject}&all=true"))
        .try_send(admin)
        .ok()
        .filter(|r| r.status == 204)?;
    shared.lock().unwrap().consent_revocations[i].2 = 2;
    let (subject, rt) = grant(public, admin, c, "crash-keep")?;
    shared.lock().unwrap().consent_revocations.push((subject, rt, 0));
    Some(())
}

/// Consents revoked by subject are all or nothing across a crash: an acknowledged revocation
/// left no consent and no live token; one cut by the kill left either both (nothing happened) or
/// neither, never a live refresh token with no consent left to revoke it; an untouched grant is
/// whole. Resolves interrupted ones to what they became.
fn check_consent_revocations(s: &Server, acked: &mut Acked, when: &str) {
    for (subject, rt, state) in acked.consent_revocations.iter_mut() {
        let listed = Req::get(&format!("/admin/oauth2/auth/sessions/consent?subject={subject}")).send(s.admin);
        listed.expect(200);
        let consents = listed.json().as_array().map_or(0, Vec::len);
        let active = is_active(s, rt);
        match *state {
            0 => assert!(consents > 0 && active, "{when}: an acknowledged grant of {subject} was lost"),
            2 => assert!(consents == 0 && !active, "{when}: an acknowledged consent revocation of {subject} was lost"),
            _ => {
                assert_eq!(
                    consents == 0,
                    !active,
                    "{when}: a revocation cut short left a half (consents {consents}, token active {active})"
                );
                *state = if active { 0 } else { 2 };
            }
        }
    }
}

/// Runs `f` until `stop`, or until it fails (the server was killed under it).
fn until_killed(stop: &AtomicBool, mut f: impl FnMut() -> Option<()>) {
    while !stop.load(Ordering::Relaxed) && f().is_some() {}
}

fn start_chain(s: &Server, c: &Rp) -> (String, String) {
    let done = run_flow(
        s,
        c,
        &[("code_challenge", ""), ("code_challenge_method", "")],
        &json!({"subject": "crash-user"}),
        &json!({"grant_scope": ["openid", "offline_access"]}),
    );
    let code = query_param(&done, "code").unwrap();
    let t = Req::new("POST", "/oauth2/token")
        .basic(&c.id, &c.secret)
        .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", "https://rp.example/cb")])
        .send(s.public)
        .json();
    (t["refresh_token"].as_str().unwrap().to_string(), t["access_token"].as_str().unwrap().to_string())
}

#[test]
fn acknowledged_writes_survive_kill_9_of_the_server() {
    let kills: usize = std::env::var("CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let dir = tempfile::tempdir().unwrap();
    let opts = Opts::new("io_uring").dir(dir.path());
    let mut seed = 0x2545_f491_4f6c_dd1du64 ^ u64::from(std::process::id());
    let mut acked = Acked::default();
    let mut setup: Option<((String, String), Rp)> = None;
    let mut checked = 0usize;
    for round in 0..kills {
        let s = opts.start();
        // Everything acknowledged so far, in every earlier round, is still there.
        for id in &acked.clients {
            Req::get(&format!("/admin/clients/{id}")).send(s.admin).expect(200);
        }
        for t in &acked.tokens {
            assert!(is_active(&s, t), "round {round}: an acknowledged token is gone");
        }
        for t in &acked.revoked {
            assert!(!is_active(&s, t), "round {round}: an acknowledged revocation was lost");
        }
        for (subject, n) in &acked.consents {
            let listed =
                Req::get(&format!("/admin/oauth2/auth/sessions/consent?subject={subject}&page_size=500")).send(s.admin);
            listed.expect(200);
            let found = listed.json().as_array().map_or(0, Vec::len);
            assert!(found >= *n, "round {round}: {n} acknowledged consents of {subject}, {found} stored");
        }
        for (rt, at, in_flight) in &acked.chains {
            if *in_flight {
                // A rotation cut by the kill is all or nothing: the refresh token is spent and its
                // access token revoked in one commit, never one without the other.
                assert_eq!(is_active(&s, rt), is_active(&s, at), "round {round}: a half-written rotation is visible");
            } else {
                assert!(is_active(&s, rt) && is_active(&s, at), "round {round}: an acknowledged rotation was lost");
            }
        }
        check_consent_revocations(&s, &mut acked, &format!("round {round}"));
        checked += acked.consent_revocations.len();
        checked += acked.clients.len()
            + acked.tokens.len()
            + acked.revoked.len()
            + acked.chains.len()
            + acked.consents.iter().map(|c| c.1).sum::<usize>();
        let ((cc_id, cc_secret), web) = setup
            .get_or_insert_with(|| {
                (cc_client(&s, "read"), rp(&s, json!({"client_id": format!("crash-rp-{}", std::process::id())})))
            })
            .clone_parts();
        // Chains whose last rotation was in flight at the kill start over.
        acked.chains.retain(|c| !c.2);
        while acked.chains.len() < 2 {
            let (rt, at) = start_chain(&s, &web);
            acked.chains.push((rt, at, false));
        }

        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Mutex::new(std::mem::take(&mut acked)));
        let (public, admin) = (s.public, s.admin);
        let mut threads = Vec::new();
        {
            let (stop, shared) = (stop.clone(), shared.clone());
            threads.push(std::thread::spawn(move || {
                until_killed(&stop, || {
                    let id = uniq("crash-client");
                    let r = Req::new("POST", "/admin/clients").json(&json!({"client_id": id})).try_send(admin).ok()?;
                    (r.status == 201).then(|| shared.lock().unwrap().clients.push(id))
                })
            }));
        }
        for revoke in [false, true] {
            let (stop, shared, id, secret) = (stop.clone(), shared.clone(), cc_id.clone(), cc_secret.clone());
            threads.push(std::thread::spawn(move || {
                until_killed(&stop, || {
                    let r = token_req(&id, &secret, &[("scope", "read")])
                        .try_send(public)
                        .ok()
                        .filter(|r| r.status == 200)?;
                    let t = r.json()["access_token"].as_str()?.to_string();
                    if !revoke {
                        shared.lock().unwrap().tokens.push(t);
                        return Some(());
                    }
                    let r = Req::new("POST", "/oauth2/revoke")
                        .basic(&id, &secret)
                        .form(&[("token", &t)])
                        .try_send(public)
                        .ok()?;
                    (r.status == 200).then(|| shared.lock().unwrap().revoked.push(t))
                })
            }));
        }
        {
            let (stop, shared) = (stop.clone(), shared.clone());
            let web = Rp { id: web.id.clone(), secret: web.secret.clone() };
            let subject = format!("crash-consent-{round}");
            shared.lock().unwrap().consents.push((subject.clone(), 0));
            threads.push(std::thread::spawn(move || {
                until_killed(&stop, || {
                    consent_flow(public, admin, &web, &subject, &["openid"])?;
                    let mut a = shared.lock().unwrap();
                    if let Some(c) = a.consents.iter_mut().find(|c| c.0 == subject) {
                        c.1 += 1;
                    }
                    Some(())
                })
            }));
        }
        {
            let (stop, shared) = (stop.clone(), shared.clone());
            let web = Rp { id: web.id.clone(), secret: web.secret.clone() };
            threads.push(std::thread::spawn(move || {
                until_killed(&stop, || grant_and_revoke(public, admin, &web, &shared))
            }));
        }
        let chains = shared.lock().unwrap().chains.len();
        for i in 0..chains {
            let (stop, shared, id, secret) = (stop.clone(), shared.clone(), web.id.clone(), web.secret.clone());
            threads.push(std::thread::spawn(move || {
                until_killed(&stop, || {
                    let rt = {
                        let mut a = shared.lock().unwrap();
                        a.chains[i].2 = true;
                        a.chains[i].0.clone()
                    };
                    let r = Req::new("POST", "/oauth2/token")
                        .basic(&id, &secret)
                        .form(&[("grant_type", "refresh_token"), ("refresh_token", &rt)])
                        .try_send(public)
                        .ok()
                        .filter(|r| r.status == 200)?;
                    let v = r.json();
                    let next = (v["refresh_token"].as_str()?.into(), v["access_token"].as_str()?.into(), false);
                    shared.lock().unwrap().chains[i] = next;
                    Some(())
                })
            }));
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(200 + seed % 600));
        s.kill();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            let _ = t.join();
        }
        acked = std::mem::take(&mut *shared.lock().unwrap());
        assert!(!acked.tokens.is_empty() && !acked.clients.is_empty(), "round {round}: nothing was acknowledged");
    }
    // A last start checks the last round's writes.
    let s = opts.start();
    for t in &acked.tokens {
        assert!(is_active(&s, t), "final: an acknowledged token is gone");
    }
    for t in &acked.revoked {
        assert!(!is_active(&s, t), "final: an acknowledged revocation was lost");
    }
    for id in &acked.clients {
        Req::get(&format!("/admin/clients/{id}")).send(s.admin).expect(200);
    }
    for (subject, n) in &acked.consents {
        let listed =
            Req::get(&format!("/admin/oauth2/auth/sessions/consent?subject={subject}&page_size=500")).send(s.admin);
        assert!(listed.json().as_array().map_or(0, Vec::len) >= *n, "final: acknowledged consents of {subject} lost");
    }
    check_consent_revocations(&s, &mut acked, "final");
    let consents: usize = acked.consents.iter().map(|c| c.1).sum();
    checked += acked.clients.len() + acked.tokens.len() + acked.revoked.len() + consents;
    checked += acked.consent_revocations.len();
    eprintln!(
        "{kills} kills; {checked} acknowledged writes checked across restarts ({} clients, {} tokens, {} revocations, {consents} remembered consents, {} refresh chains in the last round, {} consent grants revoked or kept in all)",
        acked.clients.len(),
        acked.tokens.len(),
        acked.revoked.len(),
        acked.chains.len(),
        acked.consent_revocations.len()
    );
}

trait CloneParts {
    fn clone_parts(&self) -> ((String, String), Rp);
}

impl CloneParts for ((String, String), Rp) {
    fn clone_parts(&self) -> ((String, String), Rp) {
        (self.0.clone(), Rp { id: self.1.id.clone(), secret: self.1.secret.clone() })
    }
}
