//! Measures what one group commit costs on this machine: wall time and CPU time (user + system,
//! from getrusage) per durable commit of a batch of token records, with the write-ahead log
//! (`--wal`, the default: one synchronous log write, a redb commit without fsync, a checkpoint
//! every 64 commits) or without it (`--no-wal`: every commit a durable redb commit).
//!
//! `cargo run --release -p hydra-storage --example commit_cost -- [--wal|--no-wal] [batch] [commits] [dir]`

use hydra_storage::{Storage, Store, StoreOptions, TokenKind, TokenRecord, Wait};
use std::time::Instant;

fn cpu_secs() -> f64 {
    let mut ru = std::mem::MaybeUninit::<libc_rusage>::zeroed();
    // SAFETY: getrusage writes a `struct rusage` into the buffer we own; RUSAGE_SELF = 0.
    unsafe { getrusage(0, ru.as_mut_ptr()) };
    // SAFETY: zero-initialised and then filled by the kernel.
    let ru = unsafe { ru.assume_init() };
    let tv = |t: [i64; 2]| t[0] as f64 + t[1] as f64 / 1e6;
    tv(ru.utime) + tv(ru.stime)
}

#[repr(C)]
struct libc_rusage {
    utime: [i64; 2],
    stime: [i64; 2],
    rest: [i64; 14],
}

extern "C" {
    fn getrusage(who: i32, usage: *mut libc_rusage) -> i32;
}

fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    let wal = !args.iter().any(|a| a == "--no-wal");
    args.retain(|a| !a.starts_with("--"));
    let batch: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(32);
    let commits: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2000);
    let dir = match args.get(3) {
        Some(d) => std::path::PathBuf::from(d),
        None => std::env::temp_dir().join(format!("commit-cost-{}", std::process::id())),
    };
    let mut opts = StoreOptions { partitions: 1, ..Default::default() };
    if !wal {
        opts.wal_bytes = 0;
    }
    let store = Store::open(&dir, &opts).expect("open");
    let rec = |i: u64| TokenRecord {
        kind: TokenKind::Access,
        signature: [i as u8; 32],
        family: i,
        client_id: "3f2d2a8e-6b1c-4c55-9a57-1f4e8f0c2d11".into(),
        subject: "3f2d2a8e-6b1c-4c55-9a57-1f4e8f0c2d11".into(),
        scope: "read".into(),
        audience: vec![],
        issued_at: 1,
        expires_at: 2,
        ext: String::new(),
    };
    let (t0, c0) = (Instant::now(), cpu_secs());
    for _ in 0..commits {
        let records = (0..batch).map(|_| {
            let s = store.next_seq(0).wait().expect("sequence number");
            (s, rec(s))
        });
        store.insert_tokens(0, records.collect()).wait().expect("commit");
    }
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_secs() - c0);
    println!(
        "{} batch {batch}: {:.0} us wall, {:.0} us cpu per commit; {:.0} records/s",
        if wal { "wal" } else { "no-wal" },
        wall / commits as f64 * 1e6,
        cpu / commits as f64 * 1e6,
        (batch * commits) as f64 / wall
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
