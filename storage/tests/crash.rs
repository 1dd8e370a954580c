//! Process-crash tests of the write-ahead log: a child process writes through the store and
//! prints every write the store acknowledged; the parent SIGKILLs it at a random moment,
//! reopens the data directory and checks that every acknowledged write is there (and every
//! acknowledged delete holds). A small log makes the child go through many checkpoints, epoch
//! resets and full-log fallbacks before it dies.
//!
//! The child is this test binary re-run with `HYDRA_CRASH_CHILD` set.

use hydra_storage::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "HYDRA_CRASH_CHILD";

fn rec(n: u64) -> TokenRecord {
    TokenRecord {
        kind: TokenKind::Access,
        signature: [n as u8; 32],
        family: n,
        client_id: format!("client-{}", n % 7),
        subject: "s".repeat((n % 300) as usize),
        scope: "read".into(),
        audience: vec![],
        issued_at: n as i64,
        expires_at: 5000,
        ext: String::new(),
    }
}

/// A token of a grant: its signature names its sequence number, `family` its grant.
fn grant_rec(kind: TokenKind, seq: u64, family: u64) -> TokenRecord {
    TokenRecord {
        kind,
        signature: sig(seq),
        family,
        client_id: "grants".into(),
        subject: "s".into(),
        scope: "offline".into(),
        audience: vec![],
        issued_at: seq as i64,
        expires_at: 5000,
        ext: String::new(),
    }
}

fn sig(seq: u64) -> [u8; 32] {
    let mut s = [0u8; 32];
    for c in s.chunks_exact_mut(8) {
        c.copy_from_slice(&seq.to_le_bytes());
    }
    s
}

/// Grants issued and rotated in chains from a fifth thread, printing each acknowledged grant
/// (`G p family`) and rotation (`R p family spent access refresh`). A rotation is announced
/// first (`A …`): one that lands but is not acknowledged before the kill may leave the grant
/// either way.
fn rotate_forever(store: &Store, out: &std::sync::Mutex<std::io::Stdout>) {
    let salt = std::process::id();
    for g in 0u64.. {
        let p = (g % 2) as u32;
        let family = store.next_seq(p).wait().unwrap();
        let first = vec![(family, grant_rec(TokenKind::Refresh, family, family))];
        assert!(store.issue_grant(p, &format!("flow-{salt}-{g}"), 0, first).wait().expect("grant"));
        writeln!(out.lock().expect("stdout"), "G {p} {family}").ok();
        let mut refresh = family;
        for _ in 0..1 + g % 5 {
            let (a, r) = (store.next_seq(p).wait().unwrap(), store.next_seq(p).wait().unwrap());
            let line = format!("{p} {family} {refresh} {a} {r}");
            {
                let mut o = out.lock().expect("stdout");
                writeln!(o, "A {line}").ok();
                o.flush().ok();
            }
            let new = vec![(a, grant_rec(TokenKind::Access, a, family)), (r, grant_rec(TokenKind::Refresh, r, family))];
            let done = store.rotate_refresh(p, refresh, sig(refresh), new).wait().expect("rotate");
            assert!(matches!(done, Rotate::Done(_)), "rotation of {refresh} refused");
            writeln!(out.lock().expect("stdout"), "R {line}").ok();
            refresh = r;
        }
    }
}

fn opts() -> StoreOptions {
    // 128 KiB: a batch of a few hundred records fills half of it, so checkpoints by size, by
    // count and the full-log fallback all happen within the child's lifetime.
    StoreOptions { partitions: 2, wal_bytes: 128 << 10, ..StoreOptions::default() }
}

/// Writes from four threads, and rotates grants from a fifth, printing each acknowledged write,
/// until it is killed (or 20 s have passed).
fn child(dir: &str) -> ! {
    // The parent kills it within a second; should the parent fail first, it must not write on
    // as an orphan.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(20));
        std::process::exit(4)
    });
    let store = std::sync::Arc::new(Store::open(std::path::Path::new(dir), &opts()).expect("open"));
    let out = std::sync::Arc::new(std::sync::Mutex::new(std::io::stdout()));
    // The test harness leaves its "test … " line open; the first acknowledgement starts a line
    // of its own.
    writeln!(out.lock().expect("stdout")).ok();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let (store, out) = (store.clone(), out.clone());
            std::thread::spawn(move || {
                let mut n = t;
                loop {
                    n += 4;
                    let p = (n % 2) as u32;
                    // Batches of 1 to 200 records, so some exceed what is left of the log.
                    let size = if n % 50 == 0 { 200 } else { 1 + n % 3 };
                    let records: Vec<(u64, TokenRecord)> =
                        (0..size).map(|i| (store.next_seq(p).wait().unwrap(), rec(n + i))).collect();
                    let seqs: Vec<String> = records.iter().map(|(s, r)| format!("{s}:{}", r.family)).collect();
                    store.insert_tokens(p, records).wait().expect("insert");
                    let mut o = out.lock().expect("stdout");
                    writeln!(o, "T {p} {}", seqs.join(",")).ok();
                    if n % 5 == 0 {
                        let first: u64 = seqs[0].split(':').next().and_then(|s| s.parse().ok()).expect("seq");
                        // Announced first: a delete that lands but is not acknowledged before
                        // the kill may leave the token either way.
                        writeln!(o, "d {p} {first}").ok();
                        o.flush().ok();
                        drop(o);
                        assert!(store.delete_token(p, first).wait().expect("delete"));
                        o = out.lock().expect("stdout");
                        writeln!(o, "D {p} {first}").ok();
                    }
                    if n % 9 == 0 {
                        let id = format!("client-{n}");
                        drop(o);
                        let (outcome, _) = store
                            .put_client(&id, format!("{{\"n\":{n}}}").into_bytes(), PutMode::Create { marks: vec![] })
                            .wait()
                            .expect("client");
                        assert_eq!(outcome, PutOutcome::Written);
                        o = out.lock().expect("stdout");
                        writeln!(o, "C {id} {n}").ok();
                    }
                    o.flush().ok();
                }
            })
        })
        .collect();
    let (s, o) = (store.clone(), out.clone());
    let rotating = std::thread::spawn(move || rotate_forever(&s, &o));
    for t in threads {
        let _ = t.join();
    }
    let _ = rotating.join();
    std::process::exit(3)
}

#[derive(Default)]
struct Acked {
    tokens: Vec<(u32, u64, u64)>,
    deleted: Vec<(u32, u64)>,
    deleting: Vec<(u32, u64)>,
    clients: Vec<(String, u64)>,
    grants: std::collections::BTreeMap<(u32, u64), Grant>,
}

/// What was acknowledged of one grant: its rotations in order, and one announced after them.
#[derive(Default)]
struct Grant {
    rotations: Vec<[u64; 3]>,
    announced: Option<[u64; 3]>,
}

impl Grant {
    /// Checks the grant's tokens in a reopened store; returns its live tokens.
    fn check(&self, store: &Store, p: u32, family: u64, round: u32) -> Vec<u64> {
        let kind = |seq: u64| store.get_token(p, seq).wait().unwrap().map(|r| r.kind);
        let mut done = self.rotations.clone();
        if let Some(a @ [spent, ..]) = self.announced {
            // Landed or not: the refresh token it spent says which.
            match kind(spent) {
                Some(TokenKind::RefreshUsed) => done.push(a),
                k => assert_eq!(k, Some(TokenKind::Refresh), "round {round}: {p}/{family} pending {spent}"),
            }
        }
        let live = match done.last() {
            Some([_, a, r]) => vec![*a, *r],
            None => vec![family],
        };
        for (i, [spent, access, _]) in done.iter().enumerate() {
            assert_eq!(kind(*spent), Some(TokenKind::RefreshUsed), "round {round}: {p}/{family} spent {spent}");
            if i + 1 < done.len() {
                assert_eq!(kind(*access), None, "round {round}: {p}/{family} rotated-out access {access}");
            }
        }
        let want =
            if done.is_empty() { [TokenKind::Refresh].as_slice() } else { &[TokenKind::Access, TokenKind::Refresh] };
        for (seq, k) in live.iter().zip(want) {
            assert_eq!(kind(*seq), Some(*k), "round {round}: {p}/{family} live {seq}");
        }
        live
    }

    /// The sequence numbers of its acknowledged tokens (an announced rotation's may never
    /// have been stored, and may be handed out again).
    fn seqs(&self, family: u64) -> impl Iterator<Item = u64> + '_ {
        std::iter::once(family).chain(self.rotations.iter().flat_map(|r| [r[1], r[2]]))
    }
}

fn parse_line(line: &str, acked: &mut Acked) {
    let parts: Vec<&str> = line.split(' ').collect();
    match parts.as_slice() {
        ["T", p, list] => {
            for item in list.split(',') {
                let (s, n) = item.split_once(':').expect("seq:n");
                acked.tokens.push((p.parse().unwrap(), s.parse().unwrap(), n.parse().unwrap()));
            }
        }
        ["D", p, s] => acked.deleted.push((p.parse().unwrap(), s.parse().unwrap())),
        ["d", p, s] => acked.deleting.push((p.parse().unwrap(), s.parse().unwrap())),
        ["C", id, n] => acked.clients.push((id.to_string(), n.parse().unwrap())),
        ["G", p, f] => {
            acked.grants.insert((p.parse().unwrap(), f.parse().unwrap()), Grant::default());
        }
        [op @ ("A" | "R"), p, f, rest @ ..] => {
            let g = acked
                .grants
                .get_mut(&(p.parse().unwrap(), f.parse().unwrap()))
                .unwrap_or_else(|| panic!("a rotation of no grant: {line:?}"));
            let r: Vec<u64> = rest.iter().map(|v| v.parse().unwrap()).collect();
            let r = [r[0], r[1], r[2]];
            if *op == "A" {
                g.announced = Some(r);
            } else {
                g.rotations.push(r);
                g.announced = None;
            }
        }
        _ => panic!("unexpected line {line:?}"),
    }
}

#[test]
fn acknowledged_writes_survive_sigkill_through_the_log() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked = Acked::default();
    let mut replayed = 0;
    let mut seed = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let kills = 6;
    for round in 0..kills {
        let mut child = Command::new(&exe)
            .args(["--exact", "acknowledged_writes_survive_sigkill_through_the_log", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let life = Duration::from_millis(150 + seed % 500);
        // Kill from another thread while this one keeps reading acknowledgements, so the kill
        // lands in the middle of writes.
        let pid = child.id();
        let killer = std::thread::spawn(move || {
            std::thread::sleep(life);
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        });
        let started = Instant::now();
        let mut lines = 0;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // A line cut by the kill has no newline and is not returned complete; a partial
            // one would fail to parse, so only whole lines count.
            if line.starts_with(['T', 'D', 'd', 'C', 'G', 'A', 'R']) {
                parse_line(&line, &mut acked);
                lines += 1;
            }
        }
        killer.join().unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "round {round}: the child must die by the kill, not exit ({status:?})");
        assert!(lines > 0, "round {round}: the child acknowledged nothing in {:?}", started.elapsed());

        // Reopen and check everything acknowledged so far, including earlier rounds. Odd rounds
        // reopen without the log (`Durability::None`): a log left behind is replayed all the same.
        let reopen = if round % 2 == 1 { StoreOptions { durability: Durability::None, ..opts() } } else { opts() };
        let store = Store::open(dir.path(), &reopen).unwrap();
        replayed += (0..2)
            .map(|p| store.partition_stats(p).unwrap().replayed.load(std::sync::atomic::Ordering::Relaxed))
            .sum::<u64>();
        let deleted: std::collections::HashSet<(u32, u64)> = acked.deleted.iter().copied().collect();
        let deleting: std::collections::HashSet<(u32, u64)> = acked.deleting.iter().copied().collect();
        for (p, seq, n) in &acked.tokens {
            let got = store.get_token(*p, *seq).wait().unwrap();
            if deleted.contains(&(*p, *seq)) {
                assert_eq!(got, None, "round {round}: acknowledged delete of {p}/{seq} lost");
            } else if deleting.contains(&(*p, *seq)) && got.is_none() {
                // Deleted, not yet acknowledged when the kill came.
            } else {
                assert_eq!(got, Some(rec(*n)), "round {round}: acknowledged token {p}/{seq} lost or wrong");
            }
        }
        let clients: std::collections::HashMap<String, Vec<u8>> =
            store.load_clients().wait().unwrap().into_iter().collect();
        for (id, n) in &acked.clients {
            assert_eq!(
                clients.get(id).map(Vec::as_slice),
                Some(format!("{{\"n\":{n}}}").as_bytes()),
                "round {round}: client {id}"
            );
        }
        for ((p, family), g) in &acked.grants {
            let live = g.check(&store, *p, *family, round);
            if round + 1 == kills {
                // The family row lists exactly the live tokens: revoking the grant finds them all.
                assert_eq!(store.revoke_family(*p, *family).wait().unwrap(), live.len(), "{p}/{family}");
                assert!(live.iter().all(|s| store.get_token(*p, *s).wait().unwrap().is_none()), "{p}/{family}");
            }
        }
        // No sequence number handed out again: the next one is above every acknowledged token.
        for p in 0..2u32 {
            let grants = acked.grants.iter().filter(|g| g.0 .0 == p).flat_map(|((_, f), g)| g.seqs(*f));
            let max = acked.tokens.iter().filter(|t| t.0 == p).map(|t| t.1).chain(grants).max().unwrap_or(0);
            assert!(
                store.next_seq(p).wait().unwrap() > max,
                "round {round}: partition {p} would reuse a sequence number"
            );
        }
    }
    let rotations: usize = acked.grants.values().map(|g| g.rotations.len()).sum();
    eprintln!(
        "{kills} kills, {} tokens, {} deletes, {} clients, {} grants and {rotations} rotations checked; {replayed} log records replayed",
        acked.tokens.len(),
        acked.deleted.len(),
        acked.clients.len(),
        acked.grants.len()
    );
    assert!(rotations > 0, "no rotation was acknowledged: the test did not exercise the family rows");
    assert!(replayed > 0, "no kill left anything in the log: the test did not exercise replay");
}
