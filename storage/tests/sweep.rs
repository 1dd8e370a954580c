//! The janitor's storage side: bounded steps delete exactly what the rule calls dead, keep the
//! family index and sequence floor right, resume from a cursor, never touch unsweepable tables,
//! and compaction shrinks a data directory after a mass deletion.

use hydra_storage::records::decode_token;
use hydra_storage::*;
use std::sync::Arc;

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

fn expired_before(t: i64) -> DeadRule {
    Arc::new(move |_, v| decode_token(v).is_ok_and(|r| r.expires_at <= t))
}

fn walk(store: &Store, p: u32, table: Table, batch: usize, dead: &DeadRule) -> (usize, usize, usize) {
    let (mut examined, mut deleted, mut steps) = (0, 0, 0);
    let mut after: Option<Vec<u8>> = None;
    loop {
        let s = store.sweep_step(p, table, after.as_deref(), batch, dead).unwrap();
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
        let seq = store.next_seq(1);
        let expires = if i % 3 == 0 { 500 } else { 5000 };
        store.insert_token(1, seq, &rec(TokenKind::Access, seq, expires)).wait().unwrap();
        if expires == 500 {
            dead.push(seq)
        } else {
            live.push(seq)
        }
    }
    let (examined, deleted, steps) = walk(&store, 1, Table::Tokens, 40, &expired_before(1000));
    assert_eq!(examined, 250);
    assert_eq!(deleted, dead.len());
    assert_eq!(steps, 7, "250 rows in steps of 40");
    for s in &dead {
        assert_eq!(store.get_token(1, *s).unwrap(), None);
    }
    for s in &live {
        assert!(store.get_token(1, *s).unwrap().is_some());
    }
    // A second walk finds nothing more to delete.
    assert_eq!(walk(&store, 1, Table::Tokens, 1000, &expired_before(1000)).1, 0);
    // The other partition was not touched and is empty.
    assert_eq!(walk(&store, 0, Table::Tokens, 10, &expired_before(1000)), (0, 0, 1));
}

#[test]
fn sweeping_a_grant_keeps_its_index_and_revocation_right() {
    let store = Store::memory(&StoreOptions { partitions: 1, ..Default::default() }).unwrap();
    let code = store.next_seq(0);
    assert!(store.issue_code(0, "flow", 100, code, rec(TokenKind::Code, code, 600)).wait().unwrap());
    let (at, rt) = (store.next_seq(0), store.next_seq(0));
    let tokens = vec![(at, rec(TokenKind::Access, code, 900)), (rt, rec(TokenKind::Refresh, code, 9000))];
    assert!(matches!(store.redeem_code(0, code, [7; 32], tokens).wait().unwrap(), Redeem::Done(_)));
    // At t=1000 the spent code marker and the access token are dead; the refresh token lives.
    assert_eq!(walk(&store, 0, Table::Tokens, 10, &expired_before(1000)).1, 2);
    assert_eq!(store.get_token(0, code).unwrap(), None);
    assert_eq!(store.get_token(0, at).unwrap(), None);
    // Revoking the grant still finds its refresh token through the family index...
    assert_eq!(store.revoke_family(0, code).wait().unwrap(), 1);
    assert_eq!(store.get_token(0, rt).unwrap(), None);
    // ...and the flow's marker stays until the flow rule says otherwise.
    assert!(store.flow_used(0, "flow").unwrap());
    let flows: DeadRule = Arc::new(|_, v| flow_started(v).is_some_and(|t| t + 1800 < 2000));
    assert_eq!(walk(&store, 0, Table::Flows, 10, &flows).1, 1);
    assert!(!store.flow_used(0, "flow").unwrap());
}

#[test]
fn deleted_newest_tokens_never_give_their_numbers_out_again() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions { partitions: 1, ..Default::default() };
    let mut store = Store::open(dir.path(), &opts).unwrap();
    let mut last = 0;
    for _ in 0..10 {
        last = store.next_seq(0);
        store.insert_token(0, last, &rec(TokenKind::Access, last, 500)).wait().unwrap();
    }
    assert_eq!(walk(&store, 0, Table::Tokens, 3, &expired_before(1000)).1, 10);
    store.shutdown();
    drop(store);
    let store = Store::open(dir.path(), &opts).unwrap();
    assert!(store.next_seq(0) > last, "a restart must not reuse the numbers of swept tokens");
}

#[test]
fn the_commit_judges_the_stored_row_again() {
    let store = Store::memory(&StoreOptions { partitions: 1, ..Default::default() }).unwrap();
    store.doc_put(0, Table::LoginSessions, vec![(b"s\0a".to_vec(), b"dead".to_vec())]).wait().unwrap();
    // Dead when read, alive by the time the commit looks (as if a writer had extended it in
    // between): the row must stay.
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = calls.clone();
    let rule: DeadRule = Arc::new(move |_, _| seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0);
    let step = store.sweep_step(0, Table::LoginSessions, None, 10, &rule).unwrap();
    assert_eq!((step.examined, step.deleted), (1, 0));
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2, "read once, judged again in the commit");
    assert_eq!(store.doc_scan(0, Table::LoginSessions, b"s\0").unwrap().len(), 1);
    // Dead both times: deleted.
    let dead: DeadRule = Arc::new(|_, v| v == b"dead");
    assert_eq!(store.sweep_step(0, Table::LoginSessions, None, 10, &dead).unwrap().deleted, 1);
    assert!(store.doc_scan(0, Table::LoginSessions, b"s\0").unwrap().is_empty());
}

#[test]
fn clients_keys_and_consents_are_never_swept() {
    let store = Store::memory(&StoreOptions { partitions: 1, ..Default::default() }).unwrap();
    let all: DeadRule = Arc::new(|_, _| true);
    for t in [Table::Clients, Table::Jwks, Table::ConsentSessions, Table::Watermarks, Table::SeqFloor, Table::State] {
        assert!(store.sweep_step(0, t, None, 10, &all).is_err(), "{t:?}");
    }
}

#[test]
fn compaction_shrinks_a_directory_after_mass_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions { partitions: 1, ..Default::default() };
    let mut store = Store::open(dir.path(), &opts).unwrap();
    for chunk in 0..20 {
        let batch: Vec<_> = (0..1000)
            .map(|_| {
                let s = store.next_seq(0);
                (s, rec(TokenKind::Access, s, if chunk < 19 { 500 } else { 5000 }))
            })
            .collect();
        store.insert_tokens(0, batch).wait().unwrap();
    }
    assert_eq!(walk(&store, 0, Table::Tokens, 5000, &expired_before(1000)).1, 19_000);
    store.shutdown();
    drop(store);
    let (before, after) = compact_dir(dir.path()).unwrap();
    eprintln!("data files: {before} bytes before compaction, {after} after");
    assert!(after < before / 2, "{before} -> {after}");
    let store = Store::open(dir.path(), &opts).unwrap();
    assert_eq!(walk(&store, 0, Table::Tokens, 5000, &expired_before(1000)), (1000, 0, 1));
}

#[test]
fn compaction_refuses_a_directory_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions { partitions: 1, ..Default::default() }).unwrap();
    assert!(matches!(compact_dir(dir.path()), Err(StoreError::InUse)));
    assert!(matches!(Store::open(dir.path(), &StoreOptions::default()), Err(StoreError::InUse)));
    drop(store);
}
