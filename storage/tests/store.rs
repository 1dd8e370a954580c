//! Integration tests of the store on disk and in memory: durability across reopen, the
//! manifest, client and watermark operations, and group commit under concurrency.

use hydra_storage::*;
use std::sync::Arc;

fn rec(client: &str, n: u64) -> TokenRecord {
    TokenRecord {
        kind: TokenKind::Access,
        signature: [n as u8; 32],
        family: n,
        client_id: client.into(),
        subject: client.into(),
        scope: "read".into(),
        audience: vec![],
        issued_at: 1000 + n as i64,
        expires_at: 5000,
        ext: String::new(),
    }
}

fn opts(partitions: u32) -> StoreOptions {
    StoreOptions { partitions, ..StoreOptions::default() }
}

#[test]
fn tokens_survive_reopen_and_sequences_continue() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), &opts(4)).unwrap();
    let mut issued = vec![];
    for i in 0..20u64 {
        let p = (i % 4) as u32;
        let seq = store.next_seq(p).wait().unwrap();
        store.insert_token(p, seq, &rec("c", i)).wait().unwrap();
        issued.push((p, seq, i));
    }
    store.shutdown();
    drop(store);
    let store = Store::open(dir.path(), &opts(8)).unwrap();
    assert_eq!(store.partition_count(), 4, "the manifest fixes the partition count");
    for (p, seq, i) in &issued {
        assert_eq!(store.get_token(*p, *seq).wait().unwrap(), Some(rec("c", *i)));
    }
    let max_seq = issued.iter().filter(|t| t.0 == 0).map(|t| t.1).max().unwrap();
    assert_eq!(store.next_seq(0).wait().unwrap(), max_seq + 1);
}

#[test]
fn delete_reports_existence() {
    let store = Store::memory(&opts(2)).unwrap();
    let seq = store.next_seq(1).wait().unwrap();
    store.insert_token(1, seq, &rec("c", 1)).wait().unwrap();
    assert!(store.delete_token(1, seq).wait().unwrap());
    assert!(!store.delete_token(1, seq).wait().unwrap());
    assert_eq!(store.get_token(1, seq).wait().unwrap(), None);
    assert!(store.get_token(99, seq).wait().is_err(), "out-of-range partition is an error");
}

#[test]
fn bad_partition_counts_and_manifests_are_refused() {
    assert!(Store::memory(&opts(3)).is_err());
    assert!(Store::memory(&opts(0)).is_err());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("MANIFEST"), "{\"format\":99,\"partitions\":4}").unwrap();
    let err = Store::open(dir.path(), &opts(4)).unwrap_err().to_string();
    assert!(err.contains("format 99"), "{err}");
}

#[test]
fn clients_create_replace_delete_and_watermarks() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), &opts(2)).unwrap();
        assert_eq!(
            store.put_client("a", b"{}".to_vec(), PutMode::Create { marks: vec![] }).wait().unwrap().0,
            PutOutcome::Written
        );
        assert_eq!(
            store.put_client("a", b"{}".to_vec(), PutMode::Create { marks: vec![] }).wait().unwrap().0,
            PutOutcome::Exists
        );
        assert_eq!(
            store.put_client("b", b"{}".to_vec(), PutMode::Replace { expected: b"{}".to_vec() }).wait().unwrap().0,
            PutOutcome::Missing
        );
        assert_eq!(
            store
                .put_client("a", b"{\"x\":1}".to_vec(), PutMode::Replace { expected: b"{}".to_vec() })
                .wait()
                .unwrap()
                .0,
            PutOutcome::Written
        );
        assert_eq!(
            store.put_client("b", b"{}".to_vec(), PutMode::Create { marks: vec![] }).wait().unwrap().0,
            PutOutcome::Written
        );
        assert!(store.delete_client("b", vec![5, 7]).wait().unwrap().0);
        assert!(!store.delete_client("b", vec![9, 9]).wait().unwrap().0);
        store.set_watermarks("a", vec![3, 4]).wait().unwrap();
    }
    let store = Store::open(dir.path(), &opts(2)).unwrap();
    assert_eq!(store.load_clients().wait().unwrap(), vec![("a".to_string(), b"{\"x\":1}".to_vec())]);
    let mut marks = store.load_watermarks().wait().unwrap();
    marks.sort();
    assert_eq!(marks, vec![("a".into(), vec![3, 4]), ("b".into(), vec![5, 7])]);
    store.ping().wait().unwrap();
}

#[test]
fn concurrent_writers_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), &opts(2)).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut mine = vec![];
                for i in 0..100u64 {
                    let p = (t % 2) as u32;
                    let seq = store.next_seq(p).wait().unwrap();
                    store.insert_token(p, seq, &rec(&format!("c{t}"), i)).wait().unwrap();
                    mine.push((p, seq, t, i));
                }
                mine
            })
        })
        .collect();
    let all: Vec<_> = threads.into_iter().flat_map(|h| h.join().unwrap()).collect();
    assert_eq!(all.len(), 800);
    let mut keys: Vec<_> = all.iter().map(|(p, s, _, _)| (*p, *s)).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 800, "no sequence number handed out twice");
    for (p, seq, t, i) in all {
        assert_eq!(store.get_token(p, seq).wait().unwrap(), Some(rec(&format!("c{t}"), i)));
    }
    let stats = store.partition_stats(0).unwrap();
    let jobs = stats.jobs.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(jobs, 400, "every job is counted once");
}

#[test]
fn sequences_resume_above_watermarks_after_deleting_the_newest_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (seq_a, seq_b);
    {
        let store = Store::open(dir.path(), &opts(1)).unwrap();
        seq_a = store.next_seq(0).wait().unwrap();
        store.insert_token(0, seq_a, &rec("c", 1)).wait().unwrap();
        seq_b = store.next_seq(0).wait().unwrap();
        store.insert_token(0, seq_b, &rec("c", 2)).wait().unwrap();
        assert!(store.delete_token(0, seq_b).wait().unwrap());
        store.set_watermarks("c", store.seq_marks().wait().unwrap()).wait().unwrap();
    }
    let store = Store::open(dir.path(), &opts(1)).unwrap();
    let next = store.next_seq(0).wait().unwrap();
    assert!(next > seq_b, "next {next} must be above every watermark ({seq_b})");
    assert!(seq_a < seq_b);
}

#[test]
fn meta_versions_increase_in_commit_order() {
    let store = Store::memory(&opts(1)).unwrap();
    let (_, v1) = store.put_client("a", b"{}".to_vec(), PutMode::Create { marks: vec![] }).wait().unwrap();
    let (_, v2) = store.put_client("a", b"{}".to_vec(), PutMode::Replace { expected: b"{}".to_vec() }).wait().unwrap();
    let (_, v3) = store.delete_client("a", vec![1]).wait().unwrap();
    assert!(v1 < v2 && v2 < v3);
}

#[test]
fn batch_insert_is_one_job_and_all_visible() {
    let store = Store::memory(&opts(2)).unwrap();
    let batch: Vec<_> = (0..10u64).map(|i| (store.next_seq(1).wait().unwrap(), rec("b", i))).collect();
    store.insert_tokens(1, batch.clone()).wait().unwrap();
    for (seq, r) in batch {
        assert_eq!(store.get_token(1, seq).wait().unwrap(), Some(r));
    }
    assert_eq!(store.partition_stats(1).unwrap().jobs.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert!(store.insert_tokens(9, vec![(1, rec("b", 1))]).wait().is_err());
}

#[test]
fn replace_is_compare_and_set() {
    let store = Store::memory(&opts(1)).unwrap();
    store.put_client("a", b"v1".to_vec(), PutMode::Create { marks: vec![] }).wait().unwrap();
    let stale = PutMode::Replace { expected: b"v0".to_vec() };
    assert_eq!(store.put_client("a", b"v2".to_vec(), stale).wait().unwrap().0, PutOutcome::Conflict);
    let fresh = PutMode::Replace { expected: b"v1".to_vec() };
    assert_eq!(store.put_client("a", b"v2".to_vec(), fresh).wait().unwrap().0, PutOutcome::Written);
    assert_eq!(store.load_clients().wait().unwrap(), vec![("a".to_string(), b"v2".to_vec())]);
}

#[test]
fn watermarks_only_rise_on_disk_and_recreation_raises_them() {
    let store = Store::memory(&opts(2)).unwrap();
    store.set_watermarks("c", vec![10, 3]).wait().unwrap();
    store.set_watermarks("c", vec![5, 7]).wait().unwrap();
    assert_eq!(store.load_watermarks().wait().unwrap(), vec![("c".to_string(), vec![10, 7])]);
    // Creating an id that had watermarks raises them; a fresh id gets no row.
    store.put_client("c", b"{}".to_vec(), PutMode::Create { marks: vec![20, 1] }).wait().unwrap();
    store.put_client("d", b"{}".to_vec(), PutMode::Create { marks: vec![20, 1] }).wait().unwrap();
    assert_eq!(store.load_watermarks().wait().unwrap(), vec![("c".to_string(), vec![20, 7])]);
    assert!(store.delete_client("d", vec![4, 4]).wait().unwrap().0);
    let mut marks = store.load_watermarks().wait().unwrap();
    marks.sort();
    assert_eq!(marks, vec![("c".to_string(), vec![20, 7]), ("d".to_string(), vec![4, 4])]);
}

#[test]
fn jobs_queued_during_a_commit_share_the_next_one() {
    // On disk, so that each commit (with its fsync) takes far longer than queueing a job.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &opts(1)).unwrap();
    // Queue 50 jobs without waiting (the embedded store queues a write when it is called); the
    // committer drains what is queued into each commit.
    let seqs: Vec<u64> = (0..50).map(|_| store.next_seq(0).wait().unwrap()).collect();
    let pending: Vec<_> = (0..50u64).map(|i| store.insert_tokens(0, vec![(seqs[i as usize], rec("g", i))])).collect();
    for p in pending {
        p.wait().unwrap();
    }
    let stats = store.partition_stats(0).unwrap();
    let commits = stats.commits.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(stats.jobs.load(std::sync::atomic::Ordering::Relaxed), 50);
    assert!(commits < 50, "50 queued jobs took {commits} commits");
}

#[test]
fn deleting_the_newest_tokens_does_not_recycle_their_numbers_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let newest;
    {
        let store = Store::open(dir.path(), &opts(1)).unwrap();
        let a = store.next_seq(0).wait().unwrap();
        store.insert_token(0, a, &rec("c", 1)).wait().unwrap();
        newest = store.next_seq(0).wait().unwrap();
        store.insert_token(0, newest, &rec("c", 2)).wait().unwrap();
        assert!(store.delete_token(0, newest).wait().unwrap());
    }
    let store = Store::open(dir.path(), &opts(1)).unwrap();
    assert!(store.next_seq(0).wait().unwrap() > newest);
}

#[test]
fn new_data_directories_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    drop(Store::open(&dir, &opts(1)).unwrap());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("meta.redb")), 0o600);
    assert_eq!(mode(&dir.join("p0000.redb")), 0o600);
}

#[test]
fn a_batch_larger_than_the_log_becomes_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let o = StoreOptions { partitions: 1, wal_bytes: 64 << 10, ..StoreOptions::default() };
    let store = Store::open(dir.path(), &o).unwrap();
    let stats = store.partition_stats(0).unwrap();
    let before = stats.checkpoints.load(std::sync::atomic::Ordering::Relaxed);
    // About 120 KiB of records: more than the whole log.
    let records: Vec<(u64, TokenRecord)> =
        (0..1000).map(|i| (store.next_seq(0).wait().unwrap(), rec("c", i))).collect();
    store.insert_tokens(0, records.clone()).wait().unwrap();
    assert!(stats.checkpoints.load(std::sync::atomic::Ordering::Relaxed) > before);
    // A small one afterwards goes through the log again.
    let seq = store.next_seq(0).wait().unwrap();
    store.insert_token(0, seq, &rec("c", 5000)).wait().unwrap();
    drop(store);
    let store = Store::open(dir.path(), &o).unwrap();
    for (seq, r) in records.iter().chain([(seq, rec("c", 5000))].iter()) {
        assert_eq!(store.get_token(0, *seq).wait().unwrap().as_ref(), Some(r));
    }
}

#[test]
fn without_a_log_every_commit_is_durable_and_no_log_file_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let o = StoreOptions { partitions: 1, wal_bytes: 0, ..StoreOptions::default() };
    let store = Store::open(dir.path(), &o).unwrap();
    for i in 0..5 {
        let seq = store.next_seq(0).wait().unwrap();
        store.insert_token(0, seq, &rec("c", i)).wait().unwrap();
    }
    let stats = store.partition_stats(0).unwrap();
    assert_eq!(stats.checkpoints.load(std::sync::atomic::Ordering::Relaxed), 5);
    assert!(!dir.path().join("p0000.wal").exists());
    drop(store);
    // Reopened with the log on: the log file appears, zero-filled to its full size.
    let store = Store::open(dir.path(), &StoreOptions { partitions: 1, ..StoreOptions::default() }).unwrap();
    assert_eq!(std::fs::metadata(dir.path().join("p0000.wal")).unwrap().len(), DEFAULT_WAL_BYTES);
    assert_eq!(store.get_token(0, 4).wait().unwrap(), Some(rec("c", 3)));
}

#[test]
fn key_sets_add_replace_delete_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let row = |set: &str, kid: &str, created: u64| KeyRow {
        set: set.into(),
        kid: kid.into(),
        created,
        sealed: format!("{set}/{kid}").into_bytes(),
    };
    {
        let store = Store::open(dir.path(), &opts(1)).unwrap();
        assert!(store.write_keys("a", KeyWrite::AddIfEmpty(vec![row("a", "k1", 1)])).wait().unwrap().0);
        // The set is no longer empty: a second first-use generation writes nothing.
        assert!(!store.write_keys("a", KeyWrite::AddIfEmpty(vec![row("a", "k9", 9)])).wait().unwrap().0);
        store.write_keys("a", KeyWrite::Add(vec![row("a", "k2", 2)])).wait().unwrap();
        // A set whose name is a prefix of another's is its own set.
        store.write_keys("ab", KeyWrite::Add(vec![row("ab", "x", 3)])).wait().unwrap();
        store.write_keys("b", KeyWrite::Replace(vec![row("b", "old", 4)])).wait().unwrap();
        store.write_keys("b", KeyWrite::Replace(vec![row("b", "new", 5)])).wait().unwrap();
        assert!(store.write_keys("a", KeyWrite::DeleteKey("k1".into())).wait().unwrap().0);
        assert!(!store.write_keys("a", KeyWrite::DeleteKey("k1".into())).wait().unwrap().0);
        assert!(store.write_keys("ab", KeyWrite::DeleteSet).wait().unwrap().0);
        assert!(!store.write_keys("zz", KeyWrite::DeleteSet).wait().unwrap().0);
        assert!(store.write_keys("a", KeyWrite::Add(vec![row("b", "wrong", 6)])).wait().is_err());
    }
    let store = Store::open(dir.path(), &opts(1)).unwrap();
    let mut rows = store.load_keys().wait().unwrap();
    rows.sort_by_key(|r| r.created);
    assert_eq!(rows, vec![row("a", "k2", 2), row("b", "new", 5)]);
}

fn grant_rec(kind: TokenKind, family: u64, sig: u8) -> TokenRecord {
    TokenRecord { kind, signature: [sig; 32], family, ..rec("c", family) }
}

#[test]
fn codes_are_single_use_and_a_replay_revokes_the_grant() {
    let store = Store::memory(&opts(2)).unwrap();
    let code = store.next_seq(1).wait().unwrap();
    assert!(store.issue_code(1, "flow-1", 0, code, grant_rec(TokenKind::Code, code, 1)).wait().unwrap());
    // The same flow cannot produce a second code (consent verifier replay).
    let other = store.next_seq(1).wait().unwrap();
    assert!(!store.issue_code(1, "flow-1", 0, other, grant_rec(TokenKind::Code, other, 2)).wait().unwrap());
    assert_eq!(store.get_token(1, other).wait().unwrap(), None);

    let (at, rt) = (store.next_seq(1).wait().unwrap(), store.next_seq(1).wait().unwrap());
    let tokens = vec![(at, grant_rec(TokenKind::Access, code, 3)), (rt, grant_rec(TokenKind::Refresh, code, 4))];
    assert!(store.redeem_code(1, code, [9; 32], tokens.clone()).wait().unwrap() == Redeem::Missing, "wrong signature");
    match store.redeem_code(1, code, [1; 32], tokens).wait().unwrap() {
        Redeem::Done(r) => assert_eq!(r.kind, TokenKind::Code),
        other => panic!("{other:?}"),
    }
    assert!(store.get_token(1, at).wait().unwrap().is_some() && store.get_token(1, rt).wait().unwrap().is_some());
    // Second exchange: refused, and both tokens of the grant are gone.
    assert_eq!(store.redeem_code(1, code, [1; 32], vec![]).wait().unwrap(), Redeem::Replayed);
    assert_eq!(store.get_token(1, at).wait().unwrap(), None);
    assert_eq!(store.get_token(1, rt).wait().unwrap(), None);
    assert_eq!(store.get_token(1, code).wait().unwrap().map(|r| r.kind), Some(TokenKind::CodeUsed));
}

#[test]
fn refresh_rotation_is_exclusive_and_reuse_revokes_the_family() {
    let store = Arc::new(Store::memory(&opts(1)).unwrap());
    let fam = store.next_seq(0).wait().unwrap();
    let (at0, rt0) = (store.next_seq(0).wait().unwrap(), store.next_seq(0).wait().unwrap());
    store.issue_code(0, "f", 0, fam, grant_rec(TokenKind::Code, fam, 1)).wait().unwrap();
    store
        .redeem_code(
            0,
            fam,
            [1; 32],
            vec![(at0, grant_rec(TokenKind::Access, fam, 2)), (rt0, grant_rec(TokenKind::Refresh, fam, 3))],
        )
        .wait()
        .unwrap();
    // Eight concurrent rotations of the same refresh token: exactly one wins.
    let handles: Vec<_> = (0..8u8)
        .map(|i| {
            let store = store.clone();
            std::thread::spawn(move || {
                let (at, rt) = (store.next_seq(0).wait().unwrap(), store.next_seq(0).wait().unwrap());
                let toks = vec![
                    (at, grant_rec(TokenKind::Access, fam, 10 + i)),
                    (rt, grant_rec(TokenKind::Refresh, fam, 20 + i)),
                ];
                (store.rotate_refresh(0, rt0, [3; 32], toks).wait().unwrap(), at, rt)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let winners: Vec<_> = results.iter().filter(|(r, _, _)| matches!(r, Rotate::Done(_))).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    // The losers were reuses: the first reuse revoked the whole family, winner's tokens included.
    assert!(results.iter().any(|(r, _, _)| *r == Rotate::Reused));
    let (_, at1, rt1) = winners[0];
    assert_eq!(store.get_token(0, *at1).wait().unwrap(), None);
    assert_eq!(store.get_token(0, *rt1).wait().unwrap(), None);
    assert_eq!(store.get_token(0, at0).wait().unwrap(), None, "the old access token goes with the rotation");
}

#[test]
fn rotation_revokes_earlier_access_tokens_and_revoke_family_clears_the_grant() {
    let store = Store::memory(&opts(1)).unwrap();
    let fam = store.next_seq(0).wait().unwrap();
    let (at0, rt0) = (store.next_seq(0).wait().unwrap(), store.next_seq(0).wait().unwrap());
    store.issue_code(0, "g", 0, fam, grant_rec(TokenKind::Code, fam, 1)).wait().unwrap();
    store
        .redeem_code(
            0,
            fam,
            [1; 32],
            vec![(at0, grant_rec(TokenKind::Access, fam, 2)), (rt0, grant_rec(TokenKind::Refresh, fam, 3))],
        )
        .wait()
        .unwrap();
    let (at1, rt1) = (store.next_seq(0).wait().unwrap(), store.next_seq(0).wait().unwrap());
    let toks = vec![(at1, grant_rec(TokenKind::Access, fam, 4)), (rt1, grant_rec(TokenKind::Refresh, fam, 5))];
    assert!(matches!(store.rotate_refresh(0, rt0, [3; 32], toks).wait().unwrap(), Rotate::Done(_)));
    assert_eq!(store.get_token(0, at0).wait().unwrap(), None);
    assert_eq!(store.get_token(0, rt0).wait().unwrap().map(|r| r.kind), Some(TokenKind::RefreshUsed));
    assert!(store.get_token(0, at1).wait().unwrap().is_some());
    assert_eq!(store.revoke_family(0, fam).wait().unwrap(), 2);
    assert_eq!(store.get_token(0, at1).wait().unwrap(), None);
    assert_eq!(store.get_token(0, rt1).wait().unwrap(), None);
    assert_eq!(store.rotate_refresh(0, rt1, [5; 32], vec![]).wait().unwrap(), Rotate::Missing);
}

#[test]
fn flow_step_markers_are_single_use() {
    let store = Store::memory(&StoreOptions { partitions: 2, ..Default::default() }).unwrap();
    assert!(!store.flow_used(1, "f\0login").wait().unwrap());
    assert!(store.mark_flow(1, "f\0login", 100).wait().unwrap());
    assert!(!store.mark_flow(1, "f\0login", 100).wait().unwrap());
    assert!(store.flow_used(1, "f\0login").wait().unwrap());
    assert!(!store.flow_used(1, "f").wait().unwrap(), "a step marker is not the flow's code");
}

/// A request for a partition that does not exist is answered without a commit: it never joins,
/// and so never fails, the batch of a write queued on another committer.
#[test]
fn an_out_of_range_partition_fails_alone() {
    let ids: Vec<String> = (0..64).map(|i| format!("c{i}")).collect();
    let store = Store::memory(&StoreOptions { partitions: 2, ..Default::default() }).unwrap();
    let mut writes = Vec::new();
    let mut refused = Vec::new();
    for id in &ids {
        writes.push(store.put_client(id, b"{}".to_vec(), PutMode::Create { marks: vec![] }));
        refused.push(store.insert_tokens(99, Vec::new()));
    }
    assert!(store.mark_flow(42, "f", 1).wait().is_err());
    assert!(!store.delete_token(42, 1).wait().unwrap());
    for w in writes {
        assert_eq!(w.wait().unwrap().0, PutOutcome::Written, "a meta write failed with a misrouted request");
    }
    for r in refused {
        assert!(r.wait().is_err());
    }
}

/// Staged token rows (see `commit.rs`): acknowledged once logged, read from memory until a bulk
/// commit puts them in the B-tree, deletable while staged, and replayed from the log when the
/// power is cut before they reach the B-tree.
#[test]
fn staged_tokens_are_readable_deletable_and_survive_a_power_cut() {
    let wal_opts = StoreOptions { partitions: 1, wal_bytes: 4 << 20, ..StoreOptions::default() };
    let disk = SimDisk::new();
    let store = Store::open_sim(&disk, &wal_opts).unwrap();
    let mut issued = Vec::new();
    for i in 0..20u64 {
        let batch: Vec<_> = (0..3).map(|j| (store.next_seq(0).wait().unwrap(), rec("s", i * 3 + j))).collect();
        store.insert_tokens(0, batch.clone()).wait().unwrap();
        issued.extend(batch);
    }
    // Below the bulk threshold the rows wait in memory (all 60, unless a checkpoint came due:
    // one runs after 500 ms, which a very slow machine might take).
    assert!(store.staged_rows(0).unwrap() > 0);
    for (seq, r) in &issued {
        assert_eq!(store.get_token(0, *seq).wait().unwrap().as_ref(), Some(r));
    }
    // A delete of a staged token is deferred too (it changes token rows only): the staged
    // rows join the open write transaction, and the removed row is a tombstone readers find
    // before the B-tree.
    let (gone, _) = issued.remove(0);
    assert!(store.delete_token(0, gone).wait().unwrap());
    assert!(store.staged_rows(0).unwrap() > 0, "the delete was committed at once");
    assert_eq!(store.get_token(0, gone).wait().unwrap(), None);
    for (seq, r) in &issued {
        assert_eq!(store.get_token(0, *seq).wait().unwrap().as_ref(), Some(r));
    }
    // More staged rows, then the power goes: only synced bytes survive (no checkpoint ran).
    for i in 100..110u64 {
        let batch = vec![(store.next_seq(0).wait().unwrap(), rec("s", i))];
        store.insert_tokens(0, batch.clone()).wait().unwrap();
        issued.extend(batch);
    }
    assert!(store.staged_rows(0).unwrap() > 0);
    let image = disk.crash(&mut || false);
    drop(store);
    let store = Store::open_sim(&image, &wal_opts).unwrap();
    assert_eq!(store.staged_rows(0), Some(0));
    for (seq, r) in &issued {
        assert_eq!(store.get_token(0, *seq).wait().unwrap().as_ref(), Some(r), "token {seq}");
    }
    assert_eq!(store.get_token(0, gone).wait().unwrap(), None, "the delete survived too");
    let last = issued.iter().map(|(s, _)| *s).max().unwrap();
    assert!(store.next_seq(0).wait().unwrap() > last, "no sequence number is handed out twice");
}

/// Past the bulk threshold the staged rows go into the B-tree without waiting for a checkpoint,
/// so the stage stays bounded under steady issuance.
#[test]
fn staged_rows_are_applied_in_bulk() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions { partitions: 1, ..StoreOptions::default() }).unwrap();
    let mut issued = Vec::new();
    for i in 0..40u64 {
        let batch: Vec<_> = (0..32).map(|j| (store.next_seq(0).wait().unwrap(), rec("b", i * 32 + j))).collect();
        store.insert_tokens(0, batch.clone()).wait().unwrap();
        issued.extend(batch);
        assert!(store.staged_rows(0).unwrap() < 512 + 32, "{} staged", store.staged_rows(0).unwrap());
    }
    let stats = store.partition_stats(0).unwrap();
    assert!(stats.commits.load(std::sync::atomic::Ordering::Relaxed) >= 40);
    for (seq, r) in issued.iter().step_by(97) {
        assert_eq!(store.get_token(0, *seq).wait().unwrap().as_ref(), Some(r));
    }
}

/// An online backup holds every write acknowledged before it began, while writers go on; the
/// copy opens as a store; a destination that exists is refused.
#[test]
fn an_online_backup_holds_every_write_acknowledged_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), &opts(4)).unwrap());
    block_on(store.put_client("c1", b"{}".to_vec(), PutMode::Create { marks: vec![] })).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..4u32)
        .map(|p| {
            let (store, stop, acked) = (store.clone(), stop.clone(), acked.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let seq = block_on(store.next_seq(p)).unwrap();
                    block_on(store.insert_token(p, seq, &rec("c1", seq))).unwrap();
                    acked.lock().unwrap().push((p, seq, std::time::Instant::now()));
                }
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(150));
    let began = std::time::Instant::now();
    let dest = dir.path().join("..").join(format!("backup-{}", std::process::id()));
    let report = block_on(store.backup(&dest)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    assert!(report.files > 2 * 5, "{report:?}");
    assert!(matches!(block_on(store.backup(&dest)), Err(StoreError::Io(_))), "an existing destination is refused");
    let before: Vec<(u32, u64)> =
        acked.lock().unwrap().iter().filter(|(_, _, t)| *t < began).map(|(p, s, _)| (*p, *s)).collect();
    assert!(before.len() > 20, "the writers wrote before the backup: {}", before.len());
    let copy = Store::open(&dest, &opts(4)).unwrap();
    for (p, seq) in &before {
        assert_eq!(block_on(copy.get_token(*p, *seq)).unwrap(), Some(rec("c1", *seq)), "p{p} seq {seq} missing");
    }
    assert!(block_on(copy.get_client("c1")).unwrap().is_some());
    drop(copy);
    std::fs::remove_dir_all(&dest).ok();
    assert!(block_on(Store::memory(&opts(2)).unwrap().backup(&dir.path().join("m"))).is_err());
}

/// Readers share one opened token table until the next commit (`Staged::tokens`): a read that
/// starts after a delete was acknowledged never finds the token, and one after an insert was
/// acknowledged always does, while other threads keep reading (and so keep a snapshot open)
/// and staged rows move into the B-tree underneath them.
#[test]
fn shared_token_snapshots_never_serve_an_older_table() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), &opts(1)).unwrap());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut live: Vec<u64> = Vec::new();
    for i in 0..64u64 {
        let seq = store.next_seq(0).wait().unwrap();
        store.insert_tokens(0, vec![(seq, rec("snap", i))]).wait().unwrap();
        live.push(seq);
    }
    // Background readers hold the shared snapshot open as often as they can.
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, stop, live) = (store.clone(), stop.clone(), live.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for seq in &live {
                        let _ = store.get_token_view(0, *seq).wait().unwrap();
                        reads += 1;
                    }
                }
                reads
            })
        })
        .collect();
    for round in 0..300u64 {
        // Deletes, each followed at once by a read on this thread.
        let seq = live.remove((round as usize * 7) % live.len());
        assert!(store.delete_token(0, seq).wait().unwrap());
        assert!(store.get_token_view(0, seq).wait().unwrap().is_none(), "deleted token {seq} still served");
        // Inserts, in batches big enough that some reach the B-tree in bulk commits.
        let batch: Vec<_> = (0..3).map(|j| (store.next_seq(0).wait().unwrap(), rec("snap", round * 3 + j))).collect();
        store.insert_tokens(0, batch.clone()).wait().unwrap();
        for (seq, r) in &batch {
            let seen = store.get_token_view(0, *seq).wait().unwrap().map(|v| v.to_record().unwrap());
            assert_eq!(seen.as_ref(), Some(r), "new token {seq} not served");
            live.push(*seq);
        }
        for seq in live.iter().step_by(9) {
            assert!(store.get_token_view(0, *seq).wait().unwrap().is_some(), "live token {seq} missing");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads: u64 = readers.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(reads > 0);
}

/// Batches of nothing but new tokens are log records without a redb commit, so they do not
/// count toward the 64 commits that make a checkpoint due: steady issuance checkpoints every
/// 500 ms or when the log is half full, not every 64 batches (`loadtest/runs/…-ckpt-ab.md`).
#[test]
fn staged_batches_alone_do_not_make_checkpoints_due() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &opts(1)).unwrap();
    let before = store.partition_stats(0).unwrap().checkpoints.load(std::sync::atomic::Ordering::Relaxed);
    let started = std::time::Instant::now();
    for i in 0..200u64 {
        let seq = store.next_seq(0).wait().unwrap();
        store.insert_tokens(0, vec![(seq, rec("ckpt", i))]).wait().unwrap();
    }
    let made = store.partition_stats(0).unwrap().checkpoints.load(std::sync::atomic::Ordering::Relaxed) - before;
    // One every 500 ms is allowed for (a slow machine); one every 64 batches would be 3.
    let by_time = (started.elapsed().as_millis() / 500) as u64;
    assert!(made <= by_time, "{made} checkpoints for 200 staged batches in {:?}", started.elapsed());
}

/// One grant's chain of rotations as the test made it, and what each of its rows must read as.
struct Chain {
    family: u64,
    /// Spent refresh tokens (markers), and the code's marker.
    spent: Vec<(u64, TokenKind)>,
    /// Access tokens a later rotation deleted.
    gone: Vec<u64>,
    /// The live access and refresh token and the refresh token's signature byte.
    live: (u64, u64, u8),
}

impl Chain {
    fn start(store: &Store) -> Chain {
        let family = store.next_seq(0).wait().unwrap();
        assert!(store.issue_code(0, "deferred", 0, family, grant_rec(TokenKind::Code, family, 1)).wait().unwrap());
        let (at, rt) = (store.next_seq(0).wait().unwrap(), store.next_seq(0).wait().unwrap());
        let toks = vec![(at, grant_rec(TokenKind::Access, family, 2)), (rt, grant_rec(TokenKind::Refresh, family, 3))];
        assert!(matches!(store.redeem_code(0, family, [1; 32], toks).wait().unwrap(), Redeem::Done(_)));
        Chain { family, spent: vec![(family, TokenKind::CodeUsed)], gone: vec![], live: (at, rt, 3) }
    }

    fn rotate(&mut self, store: &Store) {
        let (at0, rt0, sig0) = self.live;
        let sig = sig0.wrapping_add(2);
        let (at, rt) = (store.next_seq(0).wait().unwrap(), store.next_seq(0).wait().unwrap());
        let toks = vec![
            (at, grant_rec(TokenKind::Access, self.family, sig - 1)),
            (rt, grant_rec(TokenKind::Refresh, self.family, sig)),
        ];
        assert!(matches!(store.rotate_refresh(0, rt0, [sig0; 32], toks).wait().unwrap(), Rotate::Done(_)));
        self.spent.push((rt0, TokenKind::RefreshUsed));
        self.gone.push(at0);
        self.live = (at, rt, sig);
    }

    fn check(&self, store: &Store, when: &str) {
        let kind = |seq| store.get_token(0, seq).wait().unwrap().map(|r| r.kind);
        for (seq, k) in &self.spent {
            assert_eq!(kind(*seq), Some(*k), "{when}: spent token {seq}");
        }
        for seq in &self.gone {
            assert_eq!(kind(*seq), None, "{when}: deleted access token {seq}");
        }
        let (at, rt, sig) = self.live;
        assert_eq!(kind(at), Some(TokenKind::Access), "{when}: live access token");
        let live = store.get_token(0, rt).wait().unwrap().unwrap();
        assert_eq!((live.kind, live.signature), (TokenKind::Refresh, [sig; 32]), "{when}: live refresh token");
    }
}

/// Deferred batches (see `commit.rs`): rotations are acknowledged once logged and stay in the
/// open write transaction, read from memory (removals included); a batch that fails on top of
/// them loses none of them (they are replayed into a new transaction), a commit of another kind
/// takes them into the B-tree, a power cut replays them from the log, and the janitor's walk
/// sees them.
#[test]
fn deferred_rotations_are_read_from_memory_and_survive_a_failed_batch_and_a_power_cut() {
    let wal_opts = StoreOptions { partitions: 1, wal_bytes: 4 << 20, ..StoreOptions::default() };
    let disk = SimDisk::new();
    let store = Store::open_sim(&disk, &wal_opts).unwrap();
    let mut chain = Chain::start(&store);
    for _ in 0..5 {
        chain.rotate(&store);
    }
    // Deferred (unless a checkpoint came due: one runs after 500 ms, which a very slow machine
    // might take).
    assert!(store.staged_rows(0).unwrap() > 0, "the rotations were committed at once");
    chain.check(&store, "deferred");
    // A job that fails (a grant without records) aborts the open transaction under the five
    // rotations; the next rotation needs their grant row, spent markers and removals.
    assert!(store.issue_grant(0, "bad", 0, vec![]).wait().is_err());
    chain.check(&store, "after a failed batch");
    chain.rotate(&store);
    chain.check(&store, "rotated after a failed batch");
    // A write of another kind (a flow row) commits the transaction: nothing is left in memory.
    assert!(store.mark_flow(0, "other", 1).wait().unwrap());
    assert_eq!(store.staged_rows(0), Some(0));
    chain.check(&store, "committed");
    for _ in 0..4 {
        chain.rotate(&store);
    }
    assert!(store.staged_rows(0).unwrap() > 0);
    let image = disk.crash(&mut || false);
    drop(store);
    let store = Store::open_sim(&image, &wal_opts).unwrap();
    chain.check(&store, "after a power cut");
    chain.rotate(&store);
    chain.rotate(&store);
    assert!(store.staged_rows(0).unwrap() > 0);
    // The janitor walks the B-tree, so it first commits what memory holds: every row of the
    // chain is dead at 6000 (they expire at 5000), the deferred ones too; the spent code goes
    // in the next step, once its grant has no token left.
    let rules = SweepRules { before: 6000, ..Default::default() };
    let step = store.sweep_step(0, SweepTarget::Tokens, None, 1000, &rules).wait().unwrap();
    assert_eq!(step.deleted, chain.spent.len() + 1, "the walk missed deferred rows");
    let step = store.sweep_step(0, SweepTarget::Tokens, None, 1000, &rules).wait().unwrap();
    assert_eq!((step.examined, step.deleted), (1, 1));
    assert_eq!(store.revoke_family(0, chain.family).wait().unwrap(), 0, "the grant's row lists nothing");
}
