//! Replays every committed fuzz input (fuzz/corpus/<target>, and fuzz/regressions/<target>: inputs
//! that once failed) through the fuzz checks of `hydra::fuzzing`, then mutates them at random for
//! a bounded time: the stable-toolchain half of fuzzing, run by the test command. The
//! coverage-guided half is `fuzz/run.sh`.
//!
//! `FUZZ_MUTATE_MS` sets the random phase per target (default 1500 ms; 0 skips it); a failing
//! input is written to target/fuzz-failures/<target>/ and named in the panic.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn inputs(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut v: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
        .collect();
    v.sort();
    v
}

/// Runs one input; on a panic, saves it and fails naming the file.
fn check(name: &str, f: fn(&[u8]), input: &[u8], origin: &str) {
    let ok = std::panic::catch_unwind(|| f(input)).is_ok();
    if !ok {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-failures").join(name);
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("failure-{}", std::process::id()));
        let _ = std::fs::write(&path, input);
        panic!("fuzz check {name} failed on {origin}; input saved to {}", path.display());
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A few byte-level mutations of the kinds libFuzzer uses: flips, interesting bytes, inserts,
/// deletes, duplicated runs and splices with another input.
fn mutate(rng: &mut Rng, base: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(7) {
            0 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] = *[0u8, 0xff, b'%', b'&', b'=', b'\r', b'\n', b'"', b'{', b'[', b'.', b'0', b'9']
                    .get(rng.below(13))
                    .unwrap_or(&0);
            }
            2 => v.insert(at, rng.next() as u8),
            3 if at < v.len() => {
                let n = rng.below(v.len() - at).min(16);
                v.drain(at..at + n);
            }
            4 if at < v.len() => {
                let n = rng.below(v.len() - at).min(32);
                let run = v[at..at + n].to_vec();
                let times = 1 + rng.below(8);
                for _ in 0..times {
                    v.splice(at..at, run.iter().copied());
                }
            }
            5 if !other.is_empty() => {
                let from = rng.below(other.len());
                let n = rng.below(other.len() - from).min(64);
                v.splice(at..at, other[from..from + n].iter().copied());
            }
            _ => v.truncate(at),
        }
    }
    v.truncate(16 * 1024);
    v
}

#[test]
fn fuzz_inputs_replay_and_mutate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let budget =
        Duration::from_millis(std::env::var("FUZZ_MUTATE_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(1500));
    let seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
            | 1;
    eprintln!("mutation seed {seed}");
    for (name, f) in hydra::fuzzing::TARGETS {
        let mut corpus = inputs(&root.join("corpus").join(name));
        assert!(!corpus.is_empty(), "no committed corpus for {name}");
        corpus.extend(inputs(&root.join("regressions").join(name)));
        for (path, bytes) in &corpus {
            check(name, f, bytes, &path.display().to_string());
        }
        let mut rng = Rng(seed ^ name.len() as u64);
        let t0 = Instant::now();
        let mut runs = 0u64;
        while t0.elapsed() < budget {
            let base = &corpus[rng.below(corpus.len())].1;
            let other = &corpus[rng.below(corpus.len())].1;
            let input = mutate(&mut rng, base, other);
            check(name, f, &input, "a mutated input");
            runs += 1;
        }
        eprintln!("{name}: {} committed inputs, {runs} mutated runs", corpus.len());
    }
}
