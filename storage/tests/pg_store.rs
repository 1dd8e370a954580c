//! The PostgreSQL backend as several nodes see it: two `PgStore`s on one database of a throwaway
//! cluster, each standing for a server process. What one node commits is in force on the other
//! at once; single use holds across nodes; numbers never repeat; the change feed tells one node
//! of the other's writes; the janitor's steps delete exactly what is dead.

mod common;

use hydra_storage::pg::PgStore;
use hydra_storage::*;
use std::collections::BTreeSet;
use std::sync::Arc;

fn rec(kind: TokenKind, family: u64, client: &str, sig: u8, issued_at: i64, expires_at: i64) -> TokenRecord {
    TokenRecord {
        kind,
        signature: [sig; 32],
        family,
        client_id: client.into(),
        subject: "alice".into(),
        scope: "openid offline".into(),
        audience: vec!["https://api".into()],
        issued_at,
        expires_at,
        ext: String::new(),
    }
}

fn two_nodes(name: &str) -> (testpg::Cluster, Arc<Backend>, Arc<Backend>) {
    let cluster = testpg::Cluster::start(&[]).unwrap();
    let o = common::fresh_db(&cluster, name);
    let a = Arc::new(Backend::from(common::store(&o, 4)));
    let b = Arc::new(Backend::from(common::store(&o, 4)));
    (cluster, a, b)
}

#[test]
fn what_one_node_commits_is_in_force_on_the_other_at_once() {
    let (_c, a, b) = two_nodes("nodes");
    let s = a.next_seq(1).wait().unwrap();
    a.insert_token(1, s, &rec(TokenKind::Access, s, "app", 1, 0, i64::MAX / 2)).wait().unwrap();
    assert_eq!(b.get_token(1, s).wait().unwrap().map(|r| r.signature), Some([1; 32]));
    // Revoking every token of the client on A: gone on B, and a token written afterwards lives.
    a.set_watermarks("app", a.seq_marks().wait().unwrap()).wait().unwrap();
    assert_eq!(b.get_token(1, s).wait().unwrap(), None);
    assert!(b.get_token_view(1, s).wait().unwrap().is_none());
    let later = b.next_seq(1).wait().unwrap();
    b.insert_token(1, later, &rec(TokenKind::Access, later, "app", 2, 0, i64::MAX / 2)).wait().unwrap();
    assert!(a.get_token(1, later).wait().unwrap().is_some(), "a token issued after the revocation lives");
    // A deleted client's tokens are dead on every node; a new client of that id starts clean.
    a.put_client("app", b"{}".to_vec(), PutMode::Create { marks: vec![] }).wait().unwrap();
    assert!(a.delete_client("app", vec![]).wait().unwrap().0);
    assert_eq!(b.get_token(1, later).wait().unwrap(), None);
    assert_eq!(
        b.put_client("app", b"{}".to_vec(), PutMode::Create { marks: vec![] }).wait().unwrap().0,
        PutOutcome::Written
    );
    assert_eq!(a.get_token(1, later).wait().unwrap(), None, "the new client does not revive the old tokens");
    // A revoked family and a deleted token: gone on the other node.
    let f = a.next_seq(2).wait().unwrap();
    assert!(a.issue_code(2, "flow-x", 0, f, rec(TokenKind::Code, f, "app", 3, 0, i64::MAX / 2)).wait().unwrap());
    assert!(!b.issue_code(2, "flow-x", 0, f + 1, rec(TokenKind::Code, f + 1, "app", 4, 0, 1)).wait().unwrap());
    assert!(b.flow_used(2, "flow-x").wait().unwrap());
    assert_eq!(b.revoke_family(2, f).wait().unwrap(), 1);
    assert_eq!(a.get_token(2, f).wait().unwrap(), None);
}

/// A revocation that waits on the row lock of a rotation in flight still revokes what that
/// rotation commits: the new refresh token, inserted after the revocation's DELETE took its
/// snapshot, is dead once the revocation answered (its family's marker), on every node; the
/// janitor later drops the marker with the family. The rotation is held open in `psql` with the
/// statements' effects (the new token written, the old one spent) and a sleep.
#[test]
fn a_revocation_racing_a_rotation_revokes_its_new_tokens() {
    let (c, a, b) = two_nodes("revoke_race");
    let family = a.next_seq(3).wait().unwrap();
    assert!(a
        .issue_code(3, "flow-r", 0, family, rec(TokenKind::Code, family, "app", 1, 0, i64::MAX / 2))
        .wait()
        .unwrap());
    let (at1, r1) = (a.next_seq(3).wait().unwrap(), a.next_seq(3).wait().unwrap());
    let bought = vec![
        (at1, rec(TokenKind::Access, family, "app", 2, 0, i64::MAX / 2)),
        (r1, rec(TokenKind::Refresh, family, "app", 3, 0, i64::MAX / 2)),
    ];
    assert!(matches!(a.redeem_code(3, family, [1; 32], bought).wait().unwrap(), Redeem::Done(_)));
    let r2 = r1 + 1_000_000;
    let rotation = format!(
        "BEGIN; \
         INSERT INTO hydra_rs_token SELECT part, {r2}, 1, signature, family, client_id, subject, scope, audience, \
           issued_at, expires_at, ext, epoch FROM hydra_rs_token WHERE part = 3 AND seq = {r1}; \
         UPDATE hydra_rs_token SET kind = 4 WHERE part = 3 AND seq = {r1}; \
         DELETE FROM hydra_rs_token WHERE part = 3 AND seq = {at1}; \
         SELECT pg_sleep(2); COMMIT;"
    );
    std::thread::scope(|sc| {
        let held = sc.spawn(|| c.psql_in("revoke_race", &rotation).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(500));
        // Waits on r1's row lock until the rotation commits, then deletes what its snapshot held.
        let t = std::time::Instant::now();
        b.revoke_family(3, family).wait().unwrap();
        assert!(t.elapsed() >= std::time::Duration::from_millis(500), "the revocation waited on the rotation");
        held.join().unwrap();
    });
    for node in [&a, &b] {
        assert_eq!(node.get_token(3, r2).wait().unwrap(), None, "the rotation's new refresh token is revoked");
        assert!(node.get_token_view(3, r2).wait().unwrap().is_none());
    }
    let rotated = vec![(r2 + 1, rec(TokenKind::Access, family, "app", 9, 0, i64::MAX / 2))];
    assert!(matches!(a.rotate_refresh(3, r2, [3; 32], rotated).wait().unwrap(), Rotate::Missing));
    // The janitor sweeps the marked family's rows, and the marker with them an hour on.
    let markers = || c.psql_in("revoke_race", "SELECT count(*) FROM hydra_rs_revoked").unwrap();
    assert_eq!(markers(), "1");
    let walk = |before: i64| {
        let rules = SweepRules { before, ..Default::default() };
        let mut after = None;
        loop {
            let st = a.sweep_step(3, SweepTarget::Tokens, after.take(), 100, &rules).wait().unwrap();
            match st.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    // The spent markers (the code, r1) stay until they expire, as on the embedded store: a replay
    // is still told apart. Once the family is gone, its marker goes an hour later.
    let rows = || c.psql_in("revoke_race", "SELECT count(*) FROM hydra_rs_token WHERE part = 3").unwrap();
    walk(now);
    assert_eq!(rows(), "2", "the spent code and r1");
    assert!(matches!(a.rotate_refresh(3, r1, [3; 32], Vec::new()).wait().unwrap(), Rotate::Reused));
    c.psql_in("revoke_race", "UPDATE hydra_rs_token SET expires_at = 1 WHERE part = 3").unwrap();
    walk(now);
    assert_eq!(rows(), "0");
    assert_eq!(markers(), "1", "kept for an hour after its family is gone");
    walk(now + 3700);
    assert_eq!(markers(), "0");
}

#[test]
fn numbers_never_repeat_across_nodes_and_restarts() {
    let (c, a, b) = two_nodes("numbers");
    let mut seen = BTreeSet::new();
    let take = |n: &Arc<Backend>, k: usize, seen: &mut BTreeSet<u64>| {
        let got: Vec<u64> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    let n = n.clone();
                    sc.spawn(move || (0..k).map(|_| n.next_seq(0).wait().unwrap()).collect::<Vec<_>>())
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        for s in got {
            assert!(seen.insert(s), "number {s} handed out twice");
        }
    };
    take(&a, 700, &mut seen);
    take(&b, 700, &mut seen);
    drop(a);
    let o = common::opts(c.port(), "numbers");
    let again = Arc::new(Backend::from(common::store(&o, 4)));
    take(&again, 300, &mut seen);
    assert_eq!(seen.len(), 2 * 4 * 700 + 4 * 300);
}

/// Many rounds of the same code (or refresh token) presented on both nodes at once: exactly one
/// wins; the other is a replay that revokes the whole grant, the winner's new tokens included.
#[test]
fn single_use_holds_across_nodes() {
    let (_c, a, b) = two_nodes("single_use");
    for round in 0..40u8 {
        let code = a.next_seq(3).wait().unwrap();
        assert!(a
            .issue_code(3, &format!("flow-{round}"), 0, code, rec(TokenKind::Code, code, "app", round, 0, i64::MAX / 2))
            .wait()
            .unwrap());
        let refresh = round % 2 == 1;
        let mut presented = (code, [round; 32]);
        if refresh {
            // Turn the code into a refresh token first, then race its rotation.
            let rt = a.next_seq(3).wait().unwrap();
            let bought = vec![(rt, rec(TokenKind::Refresh, code, "app", 200, 0, i64::MAX / 2))];
            assert!(matches!(a.redeem_code(3, code, [round; 32], bought).wait().unwrap(), Redeem::Done(_)));
            presented = (rt, [200; 32]);
        }
        let attempt = |n: Arc<Backend>, sig: u8| {
            std::thread::spawn(move || {
                let at = n.next_seq(3).wait().unwrap();
                let rt = n.next_seq(3).wait().unwrap();
                let new = vec![
                    (at, rec(TokenKind::Access, code, "app", sig, 0, i64::MAX / 2)),
                    (rt, rec(TokenKind::Refresh, code, "app", sig + 1, 0, i64::MAX / 2)),
                ];
                let won = if refresh {
                    match n.rotate_refresh(3, presented.0, presented.1, new).wait().unwrap() {
                        Rotate::Done(_) => true,
                        Rotate::Reused => false,
                        Rotate::Missing => panic!("round {round}: the token went missing"),
                    }
                } else {
                    match n.redeem_code(3, presented.0, presented.1, new).wait().unwrap() {
                        Redeem::Done(_) => true,
                        Redeem::Replayed => false,
                        Redeem::Missing => panic!("round {round}: the code went missing"),
                    }
                };
                (won, at, rt)
            })
        };
        let (x, y) = (attempt(a.clone(), 100), attempt(b.clone(), 150));
        let (x, y) = (x.join().unwrap(), y.join().unwrap());
        assert!(x.0 ^ y.0, "round {round}: exactly one attempt wins ({x:?} {y:?})");
        let winner = if x.0 { x } else { y };
        for s in [winner.1, winner.2] {
            assert_eq!(
                a.get_token(3, s).wait().unwrap(),
                None,
                "round {round}: the replay revoked the winner's tokens"
            );
        }
    }
}

#[test]
fn the_feed_tells_a_node_of_the_others_writes_in_commit_order() {
    let (_c, a, b) = two_nodes("feed");
    let start = b.changes_since(0).wait().unwrap();
    assert!(!start.resync);
    let (_, v1) = a.put_client("one", b"{\"v\":1}".to_vec(), PutMode::Create { marks: vec![] }).wait().unwrap();
    let (_, v2) = a
        .write_keys(
            "set",
            KeyWrite::Add(vec![KeyRow { set: "set".into(), kid: "k".into(), created: 1, sealed: vec![1] }]),
        )
        .wait()
        .unwrap();
    a.set_watermarks("one", vec![]).wait().unwrap();
    assert!(v2 > v1);
    let got = b.changes_since(start.version).wait().unwrap();
    assert_eq!(
        got.changes,
        vec![Change::Client("one".into()), Change::Keys("set".into()), Change::Watermarks("one".into())]
    );
    assert!(got.version > v2);
    assert_eq!(b.get_client("one").wait().unwrap(), Some(b"{\"v\":1}".to_vec()));
    assert!(b.changes_since(got.version).wait().unwrap().changes.is_empty());
    assert!(b.changes_since(got.version + 5).wait().unwrap().resync, "a version from the future reloads");
    // Concurrent compare-and-set from both nodes: one wins, the other sees a conflict.
    let cur = b"{\"v\":1}".to_vec();
    let x = {
        let (a, cur) = (a.clone(), cur.clone());
        std::thread::spawn(move || {
            a.put_client("one", b"{\"v\":2}".to_vec(), PutMode::Replace { expected: cur }).wait()
        })
    };
    let y = b.put_client("one", b"{\"v\":3}".to_vec(), PutMode::Replace { expected: cur }).wait().unwrap();
    let x = x.join().unwrap().unwrap();
    let outcomes = [x.0, y.0];
    assert!(outcomes.contains(&PutOutcome::Written) && outcomes.contains(&PutOutcome::Conflict), "{outcomes:?}");
}

#[test]
fn janitor_steps_delete_exactly_what_is_dead() {
    let (_c, a, b) = two_nodes("sweep");
    let now = 1_000_000;
    let mut live = Vec::new();
    let mut dead = Vec::new();
    for i in 0..30u64 {
        let s = a.next_seq(0).wait().unwrap();
        let (kind, client, issued, expires) = match i % 5 {
            0 => (TokenKind::Access, "app", now - 10, now - 1),         // expired
            1 => (TokenKind::Access, "app", now - 5000, now + 5000),    // past the access lifespan
            2 => (TokenKind::Refresh, "app", now - 10, now + 5000),     // live
            3 => (TokenKind::Access, "gone", now - 10, now + 5000),     // its client's tokens revoked
            _ => (TokenKind::RefreshUsed, "app", now - 10, now + 5000), // live marker
        };
        a.insert_token(0, s, &rec(kind, s, client, i as u8, issued, expires)).wait().unwrap();
        if matches!(i % 5, 2 | 4) {
            live.push(s)
        } else {
            dead.push(s)
        }
    }
    a.set_watermarks("gone", vec![]).wait().unwrap();
    for (i, f) in ["old-1", "old-2", "new-1"].iter().enumerate() {
        let started = if i < 2 { now - 4000 } else { now - 10 };
        assert!(a.mark_flow(1, f, started).wait().unwrap());
    }
    for (i, sid) in ["s1", "s2", "s3"].iter().enumerate() {
        let expires_at = if i == 1 { now + 100 } else { now - 1 };
        a.put_login_session(LoginSession {
            sid: sid.to_string(),
            subject: format!("u{i}"),
            auth_time: 0,
            expires_at,
            ..Default::default()
        })
        .wait()
        .unwrap();
    }
    let rules = SweepRules {
        before: now,
        access_lifespan: Some(3600),
        refresh_lifespan: None,
        flow_lifespan: 1800,
        ..Default::default()
    };
    let walk = |target, partition| {
        let (mut after, mut examined, mut deleted, mut steps) = (None, 0, 0, 0);
        loop {
            let st = b.sweep_step(partition, target, after.take(), 4, &rules).wait().unwrap();
            examined += st.examined;
            deleted += st.deleted;
            steps += 1;
            match st.next {
                Some(n) => after = Some(n),
                None => break (examined, deleted, steps),
            }
        }
    };
    assert_eq!(walk(SweepTarget::Tokens, 0), (30, 18, 8));
    for s in live {
        assert!(a.get_token(0, s).wait().unwrap().is_some());
    }
    for s in dead {
        assert!(!a.delete_token(0, s).wait().unwrap(), "token {s} was not swept");
    }
    assert_eq!(walk(SweepTarget::Flows, 1), (3, 2, 1));
    assert!(a.flow_used(1, "new-1").wait().unwrap() && !a.flow_used(1, "old-1").wait().unwrap());
    assert_eq!(walk(SweepTarget::LoginSessions, 0), (3, 2, 1));
    assert_eq!(walk(SweepTarget::LoginSessions, 1), (0, 0, 1), "sessions are walked once, from partition 0");
    assert!(a.get_login_session("u1", "s2").wait().unwrap().is_some());
    assert!(a.get_login_session("u0", "s1").wait().unwrap().is_none());
}

/// As the embedded store: an expired device authorization, or an unexchanged code, stays
/// `DEVICE_KEPT_AFTER_EXPIRY` longer (a late poll is told `expired_token`), then goes; other
/// records go at their expiry.
#[test]
fn expired_device_authorizations_stay_a_while() {
    let (_c, a, _b) = two_nodes("device_sweep");
    let now = 1_000_000;
    let put = |kind, expires_at, sig| {
        let seq = a.next_seq(0).wait().unwrap();
        a.insert_token(0, seq, &rec(kind, seq, "app", sig, now - 4000, expires_at)).wait().unwrap();
        seq
    };
    let recent = put(TokenKind::Device, now - 10, 1);
    let old = put(TokenKind::Device, now - DEVICE_KEPT_AFTER_EXPIRY - 1, 2);
    // An unexchanged code (an approved device authorization is one) stays as long.
    let code = put(TokenKind::Code, now - 10, 3);
    let old_code = put(TokenKind::Code, now - DEVICE_KEPT_AFTER_EXPIRY - 1, 4);
    let at = put(TokenKind::Access, now - 10, 5);
    let rules = SweepRules { before: now, ..Default::default() };
    let st = a.sweep_step(0, SweepTarget::Tokens, None, 100, &rules).wait().unwrap();
    assert_eq!((st.examined, st.deleted), (5, 3));
    assert!(a.get_token(0, recent).wait().unwrap().is_some());
    assert!(a.get_token(0, code).wait().unwrap().is_some());
    for s in [old, old_code, at] {
        assert_eq!(a.get_token(0, s).wait().unwrap(), None, "token {s}");
    }
}

/// As the embedded store: a spent code outlives its expiry while its grant has an access or
/// refresh token (userinfo reads the grant's claims from it), and goes once they are gone.
#[test]
fn a_spent_code_stays_while_its_grant_has_tokens() {
    let (_c, a, b) = two_nodes("code_sweep");
    let now = 1_000_000;
    let code = a.next_seq(0).wait().unwrap();
    assert!(a
        .issue_code(0, "flow", now - 100, code, rec(TokenKind::Code, code, "app", 1, now - 100, now - 50))
        .wait()
        .unwrap());
    let (at, rt) = (a.next_seq(0).wait().unwrap(), a.next_seq(0).wait().unwrap());
    let tokens = vec![
        (at, rec(TokenKind::Access, code, "app", 2, now - 90, now - 10)),
        (rt, rec(TokenKind::Refresh, code, "app", 3, now - 90, now + 5000)),
    ];
    assert!(matches!(a.redeem_code(0, code, [1; 32], tokens).wait().unwrap(), Redeem::Done(_)));
    // A code of another grant, spent with nothing bought (a failed PKCE check): it goes.
    let lone = a.next_seq(0).wait().unwrap();
    assert!(a
        .issue_code(0, "other", now - 100, lone, rec(TokenKind::Code, lone, "app", 4, now - 100, now - 50))
        .wait()
        .unwrap());
    assert!(matches!(a.redeem_code(0, lone, [4; 32], vec![]).wait().unwrap(), Redeem::Done(_)));
    let rules = SweepRules { before: now, ..Default::default() };
    let st = b.sweep_step(0, SweepTarget::Tokens, None, 100, &rules).wait().unwrap();
    assert_eq!((st.examined, st.deleted), (4, 2), "the expired access token and the lone spent code");
    assert_eq!(a.get_token(0, code).wait().unwrap().map(|r| r.kind), Some(TokenKind::CodeUsed));
    assert_eq!(a.get_token(0, at).wait().unwrap(), None);
    assert_eq!(a.get_token(0, lone).wait().unwrap(), None);
    assert_eq!(a.revoke_family(0, code).wait().unwrap(), 1);
    let st = b.sweep_step(0, SweepTarget::Tokens, None, 100, &rules).wait().unwrap();
    assert_eq!((st.examined, st.deleted), (1, 1));
    assert_eq!(a.get_token(0, code).wait().unwrap(), None);
}

/// A grant made without a code (implicit) starts from a record born spent: it stays while the
/// grant's access token does, then goes.
#[test]
fn an_implicit_grants_spent_anchor_goes_after_its_access_token() {
    let (_c, a, b) = two_nodes("anchor_sweep");
    let now = 1_000_000;
    let anchor = a.next_seq(0).wait().unwrap();
    let at = a.next_seq(0).wait().unwrap();
    let records = vec![
        (anchor, rec(TokenKind::CodeUsed, anchor, "app", 1, now - 100, now - 10)),
        (at, rec(TokenKind::Access, anchor, "app", 2, now - 100, now - 10)),
    ];
    assert!(a.issue_grant(0, "implicit", now - 100, records).wait().unwrap());
    let rules = SweepRules { before: now, ..Default::default() };
    let st = b.sweep_step(0, SweepTarget::Tokens, None, 100, &rules).wait().unwrap();
    assert_eq!((st.examined, st.deleted), (2, 1), "the access token");
    assert!(a.get_token(0, anchor).wait().unwrap().is_some());
    let st = b.sweep_step(0, SweepTarget::Tokens, None, 100, &rules).wait().unwrap();
    assert_eq!((st.examined, st.deleted), (1, 1), "then the anchor");
    assert_eq!(a.get_token(0, anchor).wait().unwrap(), None);
}

/// Writes arriving together commit as one group: a write that fails fails its whole group, and
/// nothing of a failed write is stored, while every write that was acknowledged is.
#[test]
fn a_failed_write_fails_its_group_and_nothing_acknowledged_is_missing() {
    let (_c, a, _b) = two_nodes("groups");
    let mut acked = Vec::new();
    let mut refused = Vec::new();
    for round in 0..20u8 {
        let outcomes: Vec<(u64, bool, bool)> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..16u8)
                .map(|i| {
                    let a = a.clone();
                    sc.spawn(move || {
                        let s = a.next_seq(0).wait().unwrap();
                        // PostgreSQL's text cannot hold NUL: this one write fails in the database.
                        let poison = i == 7;
                        let mut r = rec(TokenKind::Access, s, "app", round, 0, i64::MAX / 2);
                        if poison {
                            r.ext = "\0".into();
                        }
                        (s, poison, a.insert_token(0, s, &r).wait().is_ok())
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (s, poison, ok) in outcomes {
            assert!(!(poison && ok), "round {round}: the failing write was acknowledged");
            if ok {
                acked.push(s)
            } else {
                refused.push(s)
            }
        }
    }
    for s in &acked {
        assert!(a.get_token(0, *s).wait().unwrap().is_some(), "acknowledged token {s} is missing");
    }
    for s in &refused {
        assert!(a.get_token(0, *s).wait().unwrap().is_none(), "refused token {s} was stored");
    }
    assert!(refused.len() > 20, "some groups held the failing write with others ({} refused)", refused.len());
    let st = match &*a {
        Backend::Postgres(p) => p.stats(),
        _ => unreachable!(),
    };
    let groups = st.transactions.load(std::sync::atomic::Ordering::Relaxed);
    let writes = st.group_writes.load(std::sync::atomic::Ordering::Relaxed);
    assert!(writes > groups, "writes shared commits ({writes} writes, {groups} transactions)");
}

/// Lookups that arrive together are answered by one statement: each caller still gets its own
/// row (duplicates, missing and revoked ones included).
#[test]
fn batched_lookups_answer_each_caller_with_its_own_row() {
    let (_c, a, _b) = two_nodes("lookups");
    let mut stored = Vec::new();
    for i in 0..200u64 {
        let s = a.next_seq(2).wait().unwrap();
        let client = if i % 10 == 0 { "revoked" } else { "app" };
        a.insert_token(2, s, &rec(TokenKind::Access, s, client, (i % 250) as u8, i as i64, i64::MAX / 2))
            .wait()
            .unwrap();
        stored.push(s);
    }
    a.set_watermarks("revoked", vec![]).wait().unwrap();
    let missing = stored.last().unwrap() + 5000;
    std::thread::scope(|sc| {
        for t in 0..8u64 {
            let (a, stored) = (a.clone(), &stored);
            sc.spawn(move || {
                let pending: Vec<_> = (0..300u64)
                    .map(|k| {
                        let i = ((k * 7 + t * 13) % 210) as usize;
                        let seq = stored.get(i).copied().unwrap_or(missing + k);
                        (i, seq, a.get_token(2, seq))
                    })
                    .collect();
                for (i, seq, fut) in pending {
                    let got = fut.wait().unwrap();
                    match stored.get(i) {
                        Some(_) if i % 10 == 0 => assert_eq!(got, None, "revoked token {seq}"),
                        Some(_) => assert_eq!(got.map(|r| r.issued_at), Some(i as i64), "token {seq}"),
                        None => assert_eq!(got, None, "missing token {seq}"),
                    }
                }
            });
        }
    });
    let st = match &*a {
        Backend::Postgres(p) => p.stats(),
        _ => unreachable!(),
    };
    let keys = st.lookup_keys.load(std::sync::atomic::Ordering::Relaxed);
    let statements: u64 = st.lookup_hist.iter().map(|b| b.load(std::sync::atomic::Ordering::Relaxed)).sum();
    assert_eq!(keys, 8 * 300);
    assert!(statements < keys, "lookups shared statements ({keys} lookups, {statements} statements)");
}

/// `max_conn_lifetime`: a connection older than it is replaced before its next use.
#[test]
fn connections_are_replaced_after_their_lifetime() {
    let cluster = testpg::Cluster::start(&[]).unwrap();
    let mut o = common::fresh_db(&cluster, "lifetime");
    o.max_lifetime = Some(std::time::Duration::from_millis(200));
    let store =
        PgStore::open(&hydra_storage::pg::PgStoreOptions { conn: o, lanes: 1, shared: 1, writers: 1, partitions: 1 })
            .unwrap();
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_millis(1100) {
        store.ping().wait().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let opened = store.stats().connects.load(std::sync::atomic::Ordering::Relaxed);
    assert!((4..=8).contains(&opened), "one reader connection per 200 ms over 1.1 s: {opened} opened");
}
