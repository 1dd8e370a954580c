//! Power-loss and I/O-error tests of the storage crate on a simulated disk that keeps synced
//! bytes apart from written ones.
//!
//! Power loss: four threads write (token batches, deletes, clients, code exchanges), the power
//! is cut at a random moment, and the crash image keeps every synced byte plus a random subset
//! of unsynced 512-byte sectors (a device may persist any of them, in any order). The store
//! reopened on the image must hold every acknowledged write and delete, show each code
//! exchange whole or not at all, and never hand out a sequence number again. Rounds alternate
//! the write-ahead log on and off and accumulate on the same disk.
//!
//! I/O errors: a full disk or failing syncs make writes fail (never acknowledge), and once the
//! fault clears the partition reopens itself and every acknowledged write is still there.
//!
//! `POWER_ROUNDS` sets the number of power cuts (default 12).

use hydra_storage::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn rec(kind: TokenKind, n: u64, family: u64) -> TokenRecord {
    TokenRecord {
        kind,
        signature: [(n % 251) as u8; 32],
        family,
        client_id: format!("c{}", n % 5),
        subject: "s".repeat((n % 200) as usize),
        scope: "read".into(),
        audience: vec![],
        issued_at: n as i64,
        expires_at: 9_999_999_999,
        ext: String::new(),
    }
}

/// What the writers saw acknowledged.
#[derive(Default)]
struct Acks {
    /// (partition, seq) → signature byte.
    tokens: BTreeMap<(u32, u64), u8>,
    deleted: BTreeSet<(u32, u64)>,
    clients: BTreeSet<String>,
    /// Exchanges: (partition, code seq, access seq, refresh seq, acknowledged).
    exchanges: Vec<(u32, u64, u64, u64, bool)>,
}

fn opts(wal: bool) -> StoreOptions {
    StoreOptions {
        partitions: 2,
        wal_bytes: if wal { 128 << 10 } else { 0 },
        cache_bytes: 4 << 20,
        ..StoreOptions::default()
    }
}

/// Writes from four threads until `stop`, recording what was acknowledged.
fn write_until(store: &Arc<Store>, stop: &Arc<AtomicBool>, acks: &Arc<Mutex<Acks>>, round: u64) {
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let (store, stop, acks) = (store.clone(), stop.clone(), acks.clone());
            std::thread::spawn(move || {
                let mut n = round * 1_000_000 + t * 100_000;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let p = (n % 2) as u32;
                    let seq = |_: &Mutex<Acks>| store.next_seq(p).wait().unwrap();
                    match t {
                        0 => {
                            let size = 1 + n % 40;
                            let batch: Vec<(u64, TokenRecord)> =
                                (0..size).map(|i| (seq(&acks), rec(TokenKind::Access, n + i, 0))).collect();
                            let keys: Vec<(u32, u64, u8)> =
                                batch.iter().map(|(s, r)| (p, *s, r.signature[0])).collect();
                            if store.insert_tokens(p, batch).wait().is_err() {
                                return;
                            }
                            let mut a = acks.lock().unwrap();
                            for (p, s, sig) in keys {
                                a.tokens.insert((p, s), sig);
                            }
                        }
                        1 => {
                            let victim = {
                                let a = acks.lock().unwrap();
                                a.tokens
                                    .keys()
                                    .filter(|k| k.0 == p && !a.deleted.contains(k))
                                    .nth((n % 7) as usize)
                                    .copied()
                            };
                            let Some(v) = victim else { continue };
                            if store.delete_token(v.0, v.1).wait().is_err() {
                                return;
                            }
                            acks.lock().unwrap().deleted.insert(v);
                        }
                        2 => {
                            let id = format!("client-{n}");
                            let put = store.put_client(
                                &id,
                                vec![b'x'; (n % 3000) as usize],
                                PutMode::Create { marks: vec![] },
                            );
                            if put.wait().is_err() {
                                return;
                            }
                            acks.lock().unwrap().clients.insert(id);
                        }
                        _ => {
                            let code = seq(&acks);
                            let flow = format!("flow-{n}");
                            match store.issue_code(p, &flow, 0, code, rec(TokenKind::Code, code, code)).wait() {
                                Ok(true) => {}
                                _ => return,
                            }
                            let (at, rt) = (seq(&acks), seq(&acks));
                            let tokens =
                                vec![(at, rec(TokenKind::Access, at, code)), (rt, rec(TokenKind::Refresh, rt, code))];
                            let sig = rec(TokenKind::Code, code, code).signature;
                            let done = matches!(store.redeem_code(p, code, sig, tokens).wait(), Ok(Redeem::Done(_)));
                            acks.lock().unwrap().exchanges.push((p, code, at, rt, done));
                            if !done {
                                return;
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Checks the reopened store against the acknowledgements; returns how many facts it checked.
fn verify(store: &Store, acks: &Acks, round: u64) -> usize {
    let mut checked = 0;
    for (&(p, s), &sig) in &acks.tokens {
        let got = store.get_token(p, s).wait().unwrap();
        if acks.deleted.contains(&(p, s)) {
            assert!(got.is_none(), "round {round}: acknowledged delete of {p}/{s} lost");
        } else {
            let got = got.unwrap_or_else(|| panic!("round {round}: acknowledged token {p}/{s} lost"));
            assert_eq!(got.signature[0], sig, "round {round}: token {p}/{s} changed");
        }
        checked += 1;
    }
    let stored: BTreeSet<String> = store.load_clients().wait().unwrap().into_iter().map(|(c, _)| c).collect();
    for id in &acks.clients {
        assert!(stored.contains(id), "round {round}: client {id} lost");
        checked += 1;
    }
    for &(p, code, at, rt, done) in &acks.exchanges {
        let kind = store.get_token(p, code).wait().unwrap().map(|r| r.kind);
        // An exchange that was never acknowledged may have had its numbers reused since: only
        // records of this grant count.
        let ours =
            |s: u64, k: TokenKind| store.get_token(p, s).wait().unwrap().filter(|r| r.family == code && r.kind == k);
        let (a, r) = (ours(at, TokenKind::Access), ours(rt, TokenKind::Refresh));
        let whole = kind == Some(TokenKind::CodeUsed) && a.is_some() && r.is_some();
        let none = kind == Some(TokenKind::Code) && a.is_none() && r.is_none();
        if done {
            assert!(whole, "round {round}: acknowledged exchange of code {p}/{code} not whole: {kind:?}");
        } else {
            assert!(whole || none, "round {round}: half an exchange of code {p}/{code}: {kind:?} {a:?} {r:?}");
        }
        checked += 1;
    }
    // Numbers of acknowledged writes (live or deleted since) are never handed out again; a
    // number handed out for a write that was never acknowledged may be.
    let acked =
        acks.tokens.keys().copied().chain(acks.exchanges.iter().filter(|e| e.4).flat_map(|e| [(e.0, e.1), (e.0, e.3)]));
    let mut max: BTreeMap<u32, u64> = BTreeMap::new();
    for (p, s) in acked {
        let m = max.entry(p).or_default();
        *m = (*m).max(s);
    }
    for (p, m) in max {
        assert!(
            store.next_seq(p).wait().unwrap() > m,
            "round {round}: partition {p} would reuse acknowledged sequence number {m}"
        );
    }
    checked
}

#[test]
fn power_loss_keeps_every_acknowledged_write() {
    let rounds: u64 = std::env::var("POWER_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(12);
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("power-loss seed {seed}");
    let mut rng = Rng(seed);
    let mut disk = SimDisk::new();
    let acks = Arc::new(Mutex::new(Acks::default()));
    let mut total = 0;
    for round in 0..rounds {
        let wal = round % 3 != 2;
        let store = Arc::new(Store::open_sim(&disk, &opts(wal)).unwrap_or_else(|e| panic!("round {round}: {e}")));
        total += verify(&store, &acks.lock().unwrap(), round);
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (store, stop, acks) = (store.clone(), stop.clone(), acks.clone());
            std::thread::spawn(move || write_until(&store, &stop, &acks, round))
        };
        std::thread::sleep(Duration::from_millis(20 + rng.next() % 200));
        // Some rounds keep nothing unsynced, some everything, most a random half.
        let mode = rng.next() % 4;
        let mut coin = || match mode {
            0 => false,
            1 => true,
            _ => rng.next().is_multiple_of(2),
        };
        let next = disk.crash(&mut coin);
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        drop(store);
        disk = next;
        let a = acks.lock().unwrap();
        eprintln!(
            "round {round}: wal {wal}, {} tokens, {} deletes, {} clients, {} exchanges acknowledged so far",
            a.tokens.len(),
            a.deleted.len(),
            a.clients.len(),
            a.exchanges.len()
        );
    }
    let store = Store::open_sim(&disk, &opts(true)).unwrap();
    total += verify(&store, &acks.lock().unwrap(), rounds);
    eprintln!("{rounds} power cuts, {total} acknowledged facts checked across reopens");
    assert!(acks.lock().unwrap().tokens.len() > 100, "the writers hardly wrote anything");
}

/// Retries a token insert into partition 0 until the partition has reopened (at most 10 s);
/// returns the acknowledged sequence number.
fn insert_once_recovered(store: &Store, n: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = store.next_seq(0).wait().unwrap();
        match store.insert_token(0, s, &rec(TokenKind::Access, n, 0)).wait() {
            Ok(()) => return s,
            Err(e) => assert!(Instant::now() < deadline, "no recovery: {e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn io_error_then_recovery(mode: FaultMode, wal: bool) {
    let disk = SimDisk::new();
    let store = Store::open_sim(&disk, &opts(wal)).unwrap();
    let mut acked = Vec::new();
    for i in 0..50 {
        let s = store.next_seq(0).wait().unwrap();
        store.insert_token(0, s, &rec(TokenKind::Access, i, 0)).wait().unwrap();
        acked.push(s);
    }
    disk.faults.set(mode);
    let mut refused = 0;
    for i in 0..20 {
        let s = store.next_seq(0).wait().unwrap();
        match store.insert_token(0, s, &rec(TokenKind::Access, 100 + i, 0)).wait() {
            Ok(()) => panic!("{mode:?}: a write was acknowledged while the disk fails"),
            Err(_) => refused += 1,
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(refused, 20);
    assert!(
        store.partition_stats(0).unwrap().failed.load(Ordering::Relaxed),
        "{mode:?}: the partition should be marked failed"
    );
    assert!(store.ping().wait().is_err(), "{mode:?}: not ready while failed");
    // The other partition did not see the error and still works.
    let s = store.next_seq(1).wait().unwrap();
    disk.faults.set(FaultMode::None);
    store.insert_token(1, s, &rec(TokenKind::Access, 7, 0)).wait().unwrap();
    // The failed partition reopens itself once the fault clears.
    acked.push(insert_once_recovered(&store, 999));
    assert!(store.partition_stats(0).unwrap().reopens.load(Ordering::Relaxed) >= 1);
    assert!(store.ping().wait().is_ok());
    for s in &acked {
        assert!(store.get_token(0, *s).wait().unwrap().is_some(), "{mode:?}: acknowledged token {s} lost");
    }
    drop(store);
    // And after a power cut that keeps nothing unsynced.
    let image = disk.crash(&mut || false);
    let store = Store::open_sim(&image, &opts(wal)).unwrap();
    for s in &acked {
        assert!(
            store.get_token(0, *s).wait().unwrap().is_some(),
            "{mode:?}: acknowledged token {s} lost after a crash"
        );
    }
}

#[test]
fn a_full_disk_refuses_writes_and_recovers_with_the_log() {
    io_error_then_recovery(FaultMode::DiskFull, true);
}

#[test]
fn a_full_disk_refuses_writes_and_recovers_without_the_log() {
    io_error_then_recovery(FaultMode::DiskFull, false);
}

#[test]
fn failing_syncs_refuse_writes_and_recover_with_the_log() {
    io_error_then_recovery(FaultMode::SyncFails, true);
}

#[test]
fn failing_syncs_refuse_writes_and_recover_without_the_log() {
    io_error_then_recovery(FaultMode::SyncFails, false);
}

#[test]
fn real_files_behind_the_fault_switch_recover_too() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let o = StoreOptions { partitions: 1, faults: Some(faults.clone()), ..StoreOptions::default() };
    let store = Store::open(dir.path(), &o).unwrap();
    let first = store.next_seq(0).wait().unwrap();
    store.insert_token(0, first, &rec(TokenKind::Access, 1, 0)).wait().unwrap();
    faults.set(FaultMode::DiskFull);
    let s = store.next_seq(0).wait().unwrap();
    assert!(store.insert_token(0, s, &rec(TokenKind::Access, 2, 0)).wait().is_err());
    faults.set(FaultMode::None);
    let second = insert_once_recovered(&store, 3);
    drop(store);
    let store = Store::open(dir.path(), &StoreOptions { partitions: 1, ..StoreOptions::default() }).unwrap();
    assert!(store.get_token(0, first).wait().unwrap().is_some());
    assert!(store.get_token(0, second).wait().unwrap().is_some());
}
