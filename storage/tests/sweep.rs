//! The janitor's storage side, through the storage interface: bounded steps delete exactly what
//! the rules call dead, keep the family index and sequence floor right, resume from a cursor,
//! never touch consents, and compaction shrinks a data directory after a mass deletion.

use hydra_storage::*;

fn rec(kind: TokenKind, family: u64, expires_at: i64) -> TokenRecord {
    TokenRecord {
        kind,
        signature: [7; 32],
        family,
        client_id: "c".into(),
        subject: "s".into(),
        scope: "read".into(),
        audience: vec![],
        issued_at: 100,
        expires_at,
        ext: String::new(),
    }
}

fn expired_before(t: i64) -> SweepRules {
    SweepRules { before: t, ..Default::default() }
}

fn walk(store: &Store, p: u32, target: SweepTarget, batch: usize, rules: &SweepRules) -> (usize, usize, usize) {
    let (mut examined, mut deleted, mut steps) = (0, 0, 0);
    let mut after: Option<Vec<u8>> = None;
    loop {
        let s = store.sweep_step(p, target, after.take(), batch, rules).wait().unwrap();
        examined += s.examined;
        deleted += s.deleted;
        steps += 1;
        match s.next {
            Some(k) => after = Some(k),
            None => return (examined, deleted, steps),
        }
    }
}

#[test]
fn steps_delete_expired_tokens_only_and_resume_from_their_cursor() {
    let store = Store::memory(&StoreOptions { partitions: 2, ..Default::default() }).unwrap();
    let mut live = vec![];
    let mut dead = vec![];
    for i in 0..250u64 {
        let seq = store.next_seq(1).wait().unwrap();
        let expires = if i % 3 == 0 { 500 } else { 5000 };
        store.insert_token(1, seq, &rec(TokenKind::Access, seq, expires)).wait().unwrap();
        if expires == 500 {
            dead.push(seq)
        } else {
            live.push(seq)
        }
    }
    let (examined, deleted, steps) = walk(&store, 1, SweepTarget::Tokens, 40, &expired_before(1000));
    assert_eq!(examined, 250);
    assert_eq!(deleted, dead.len());
    assert_eq!(steps, 7, "250 rows in steps of 40");
    for s in &dead {
        assert_eq!(store.get_token(1, *s).wait().unwrap(), None);
    }
    for s in &live {
        assert!(store.get_token(1, *s).wait().unwrap().is_some());
    }
    // A second walk finds nothing more to delete.
    assert_eq!(walk(&store, 1, SweepTarget::Tokens, 1000, &expired_before(1000)).1, 0);
    // The other partition was not touched and is empty.
    assert_eq!(walk(&store, 0, SweepTarget::Tokens, 10, &expired_before(1000)), (0, 0, 1));
}

#[test]
fn sweeping_a_grant_keeps_its_index_and_revocation_right() {
    let store = Store::memory(&StoreOptions { partitions: 1, ..Default::default() }).unwrap();
    let code = store.next_seq(0).wait().unwrap();
    assert!(store.issue_code(0, "flow", 100, code, rec(TokenKind::Code, code, 600)).wait().unwrap());
    let (at, rt) = (store.next_seq(0).wait().unwrap(), store.next_seq(0).wait().unwrap());
    let tokens = vec![(at, rec(TokenKind::Access, code, 900)), (rt, rec(TokenKind::Refresh, code, 9000))];
    assert!(matches!(store.redeem_code(0, code, [7; 32], tokens).wait().unwrap(), Redeem::Done(_)));
    // At t=1000 the access token is dead; the spent code has expired too, but stays while its
    // grant has a token (userinfo reads the grant's claims from it); the refresh token lives.
    assert_eq!(walk(&store, 0, SweepTarget::Tokens, 10, &expired_before(1000)).1, 1);
    assert_eq!(store.get_token(0, code).wait().unwrap().map(|r| r.kind), Some(TokenKind::CodeUsed));
    assert_eq!(store.get_token(0, at).wait().unwrap(), None);
    // Revoking the grant still finds its refresh token through the family index...
    assert_eq!(store.revoke_family(0, code).wait().unwrap(), 1);
    assert_eq!(store.get_token(0, rt).wait().unwrap(), None);
    // ...and then the spent code goes too.
    assert_eq!(walk(&store, 0, SweepTarget::Tokens, 10, &expired_before(1000)).1, 1);
    assert_eq!(store.get_token(0, code).wait().unwrap(), None);
    // ...and the flow's marker stays until the flow rule says otherwise.
    assert!(store.flow_used(0, "flow").wait().unwrap());
    let flows = SweepRules { before: 2000, flow_lifespan: 1800, ..Default::default() };
    assert_eq!(walk(&store, 0, SweepTarget::Flows, 10, &flows).1, 1);
    assert!(!store.flow_used(0, "flow").wait().unwrap());
}

/// A grant made at the authorization endpoint without a code (implicit) starts from a record
/// born spent, listed in its own grant's row: it stays while the grant's access token does, and
/// then goes (it does not keep itself).
#[test]
fn an_implicit_grants_spent_anchor_goes_after_its_access_token() {
    let store = Store::memory(&StoreOptions { partitions: 1, ..Default::default() }).unwrap();
    let anchor = store.next_seq(0).wait().unwrap();
    let at = store.next_seq(0).wait().unwrap();
    let records = vec![(anchor, rec(TokenKind::CodeUsed, anchor, 900)), (at, rec(TokenKind::Access, anchor, 900))];
    assert!(store.issue_grant(0, "implicit", 100, records).wait().unwrap());
    assert_eq!(walk(&store, 0, SweepTarget::Tokens, 10, &expired_before(1000)).1, 1, "the access token");
    assert!(store.get_token(0, anchor).wait().unwrap().is_some());
    assert_eq!(walk(&store, 0, SweepTarget::Tokens, 10, &expired_before(1000)).1, 1, "then the anchor");
    assert_eq!(store.get_token(0, anchor).wait().unwrap(), None);
}

#[test]
fn deleted_newest_tokens_never_give_their_numbers_out_again() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions { partitions: 1, ..Default::default() };
    let mut store = Store::open(dir.path(), &opts).unwrap();
    let mut last = 0;
    for _ in 0..10 {
        last = store.next_seq(0).wait().unwrap();
        store.insert_token(0, last, &rec(TokenKind::Access, last, 500)).wait().unwrap();
    }
    assert_eq!(walk(&store, 0, SweepTarget::Tokens, 3, &expired_before(1000)).1, 10);
    store.shutdown();
    drop(store);
    let store = Store::open(dir.path(), &opts).unwrap();
    assert!(store.next_seq(0).wait().unwrap() > last, "a restart must not reuse the numbers of swept tokens");
}

#[test]
fn tokens_below_their_clients_watermark_are_swept() {
    let store = Store::memory(&StoreOptions { partitions: 2, ..Default::default() }).unwrap();
    let seqs: Vec<u64> = (0..6).map(|_| store.next_seq(1).wait().unwrap()).collect();
    for s in &seqs {
        store.insert_token(1, *s, &rec(TokenKind::Access, *s, 9000)).wait().unwrap();
    }
    // Client "c" revoked everything below seqs[3] in partition 1 (nothing in partition 0).
    let rules =
        SweepRules { before: 1000, watermarks: [("c".to_string(), vec![0, seqs[3]])].into(), ..Default::default() };
    assert_eq!(walk(&store, 1, SweepTarget::Tokens, 100, &rules).1, 3);
    for (i, s) in seqs.iter().enumerate() {
        assert_eq!(store.get_token(1, *s).wait().unwrap().is_some(), i >= 3, "seq {s}");
    }
}

#[test]
fn expired_login_sessions_go_with_their_id_rows_and_consents_stay() {
    let store = Store::memory(&StoreOptions { partitions: 4, ..Default::default() }).unwrap();
    for (sid, expires_at) in [("old-1", 500), ("old-2", 900), ("new", 5000)] {
        let s =
            LoginSession { sid: sid.into(), subject: "jane".into(), auth_time: 1, expires_at, ..Default::default() };
        store.put_login_session(s).wait().unwrap();
    }
    let consent = Consent {
        client_id: "app".into(),
        subject: "jane".into(),
        flow_id: "flow-1".into(),
        login_session_id: "old-1".into(),
        requested_scope: vec![],
        requested_audience: vec![],
        grant_scope: vec![],
        grant_audience: vec![],
        remember: true,
        remember_for: 0,
        handled_at: 1,
        context: serde_json::Value::Null,
        access_token: Default::default(),
        id_token: Default::default(),
        grant_partition: 0,
        grant_family: 1,
        skipped: false,
    };
    store.put_consent(consent.clone()).wait().unwrap();
    // Rules that call everything dead: only what a target names may go.
    let all = SweepRules { before: i64::MAX, ..Default::default() };
    let mut deleted = 0;
    for p in 0..4 {
        deleted += walk(&store, p, SweepTarget::LoginSessions, 1, &all).1;
        walk(&store, p, SweepTarget::Tokens, 10, &all);
        walk(&store, p, SweepTarget::Flows, 10, &all);
    }
    assert_eq!(deleted, 6, "three sessions and their three id rows");
    assert_eq!(store.get_login_session("jane", "new").wait().unwrap(), None);
    assert!(!store.delete_login_session("old-1").wait().unwrap(), "the id row went with the session");
    assert_eq!(store.list_consents("jane").wait().unwrap(), vec![consent.clone()], "consents are never swept");
    assert_eq!(store.latest_consent("jane", "app").wait().unwrap(), Some(consent));
    // Expired by the rules' time only: the live session stays.
    let s = LoginSession {
        sid: "live".into(),
        subject: "kim".into(),
        auth_time: 1,
        expires_at: 5000,
        ..Default::default()
    };
    store.put_login_session(s.clone()).wait().unwrap();
    for p in 0..4 {
        walk(&store, p, SweepTarget::LoginSessions, 10, &expired_before(1000));
    }
    assert_eq!(store.get_login_session("kim", "live").wait().unwrap(), Some(s));
}

#[test]
fn compaction_shrinks_a_directory_after_mass_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions { partitions: 1, ..Default::default() };
    let mut store = Store::open(dir.path(), &opts).unwrap();
    for chunk in 0..20 {
        let batch: Vec<_> = (0..1000)
            .map(|_| {
                let s = store.next_seq(0).wait().unwrap();
                (s, rec(TokenKind::Access, s, if chunk < 19 { 500 } else { 5000 }))
            })
            .collect();
        store.insert_tokens(0, batch).wait().unwrap();
    }
    assert_eq!(walk(&store, 0, SweepTarget::Tokens, 5000, &expired_before(1000)).1, 19_000);
    store.shutdown();
    drop(store);
    let (before, after) = compact_dir(dir.path()).unwrap();
    eprintln!("data files: {before} bytes before compaction, {after} after");
    assert!(after < before / 2, "{before} -> {after}");
    let store = Store::open(dir.path(), &opts).unwrap();
    assert_eq!(walk(&store, 0, SweepTarget::Tokens, 5000, &expired_before(1000)), (1000, 0, 1));
}

#[test]
fn compaction_refuses_a_directory_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions { partitions: 1, ..Default::default() }).unwrap();
    assert!(matches!(compact_dir(dir.path()), Err(StoreError::InUse)));
    assert!(matches!(Store::open(dir.path(), &StoreOptions::default()), Err(StoreError::InUse)));
    drop(store);
}

/// An expired device authorization, or an unexchanged code (an approved device authorization is
/// one), stays `DEVICE_KEPT_AFTER_EXPIRY` longer, so a late poll is told `expired_token`; then it
/// goes. Access tokens go at their expiry.
#[test]
fn expired_device_authorizations_stay_a_while() {
    let store = Store::memory(&StoreOptions { partitions: 1, ..Default::default() }).unwrap();
    let now = 1_000_000;
    let put = |kind, expires_at| {
        let seq = store.next_seq(0).wait().unwrap();
        store.insert_token(0, seq, &rec(kind, seq, expires_at)).wait().unwrap();
        seq
    };
    let recent = put(TokenKind::Device, now - 10);
    let old = put(TokenKind::Device, now - DEVICE_KEPT_AFTER_EXPIRY - 1);
    // An unexchanged code (an approved device authorization is one) stays as long.
    let code = put(TokenKind::Code, now - 10);
    let old_code = put(TokenKind::Code, now - DEVICE_KEPT_AFTER_EXPIRY - 1);
    let at = put(TokenKind::Access, now - 10);
    assert_eq!(walk(&store, 0, SweepTarget::Tokens, 10, &expired_before(now)), (5, 3, 1));
    for s in [recent, code] {
        assert!(store.get_token(0, s).wait().unwrap().is_some(), "token {s}");
    }
    for s in [old, old_code, at] {
        assert_eq!(store.get_token(0, s).wait().unwrap(), None, "token {s}");
    }
}
