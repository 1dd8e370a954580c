//! A per-worker CSPRNG: HMAC-SHA256 in counter mode, keyed from the OS and re-keyed regularly.
//!
//! Why: DESIGN.md §4 measured one `getrandom` system call per token as a visible cost on the
//! issuance path; this generator makes one system call per 65,536 outputs. Invariants: the key
//! comes from `ring::rand::SystemRandom`; each output is HMAC(key, counter) with a never-repeating
//! counter under one key; the generator is owned by one thread (no lock, not `Sync`).

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

const RESEED_AFTER: u64 = 1 << 16;

pub struct FastRng {
    key: hmac::Key,
    counter: u64,
    sys: SystemRandom,
}

impl std::fmt::Debug for FastRng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FastRng(..)")
    }
}

impl FastRng {
    /// Seeds from the OS. Fails only when the OS has no randomness to give.
    pub fn new() -> Result<Self, ring::error::Unspecified> {
        let sys = SystemRandom::new();
        let key = Self::fresh_key(&sys)?;
        Ok(FastRng { key, counter: 0, sys })
    }

    fn fresh_key(sys: &SystemRandom) -> Result<hmac::Key, ring::error::Unspecified> {
        let mut seed = [0u8; 32];
        sys.fill(&mut seed)?;
        Ok(hmac::Key::new(hmac::HMAC_SHA256, &seed))
    }

    /// 32 fresh random bytes.
    pub fn next32(&mut self) -> [u8; 32] {
        if self.counter >= RESEED_AFTER {
            // If the OS refuses, keep the current key: the counter still never repeats under it.
            if let Ok(k) = Self::fresh_key(&self.sys) {
                self.key = k;
                self.counter = 0;
            }
        }
        let tag = hmac::sign(&self.key, &self.counter.to_le_bytes());
        self.counter += 1;
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_differ_and_survive_reseed() {
        let mut r = FastRng::new().unwrap();
        let a = r.next32();
        let b = r.next32();
        assert_ne!(a, b);
        r.counter = RESEED_AFTER;
        let c = r.next32();
        assert_eq!(r.counter, 1, "reseeded");
        assert_ne!(c, a);
    }
}
