//! The immutable view of every JSON Web Key set that workers read (swapped whole on change, in
//! commit order; see `keys.rs`).

use crate::jose::jwk::Jwk;
use crate::jose::jws::Signer;
use std::collections::HashMap;
use std::sync::Arc;

/// One key as workers see it.
#[derive(Debug)]
pub struct KeyEntry {
    pub jwk: Jwk,
    pub created: u64,
    /// Present for private signing keys.
    pub signer: Option<Arc<Signer>>,
}

/// The immutable view of every key set; each set newest first.
#[derive(Debug, Clone, Default)]
pub struct KeySnapshot {
    pub sets: HashMap<String, Arc<Vec<Arc<KeyEntry>>>>,
    /// The JWT bearer grant's trust relationships (stored as the rows of the reserved set
    /// `TRUST_SET`, never a key set of the admin API), newest first.
    pub trust: Arc<Vec<Arc<crate::oauth2::jwt_bearer::TrustGrant>>>,
    pub(crate) versions: HashMap<String, u64>,
}

impl KeySnapshot {
    /// The key that signs for `set`: the newest private key meant for signatures.
    pub fn signer(&self, set: &str) -> Option<Arc<Signer>> {
        self.sets
            .get(set)?
            .iter()
            .filter(|k| k.jwk.use_.as_deref().unwrap_or("sig") == "sig")
            // A public key put in front (to publish it) signs nothing: the newest private one does
            // (as Hydra's `FindPrivateKey`).
            .find_map(|k| k.signer.clone())
    }

    /// The newest private signing key of `set` for algorithm `alg`, if there is one.
    pub fn signer_for(&self, set: &str, alg: crate::jose::jwk::Alg) -> Option<Arc<Signer>> {
        self.sets
            .get(set)?
            .iter()
            .filter(|k| k.jwk.use_.as_deref().unwrap_or("sig") == "sig")
            .filter_map(|k| k.signer.clone())
            .find(|s| s.alg() == alg)
    }
}

/// The JWT access tokens one worker verified lately: SHA-256 of the token's exact bytes → the
/// reference to its record (from its `jti`), valid only under the key set they were verified
/// with. A JWT is introspected again and again (every API call that carries it), and its RS256
/// signature check was most of each introspection (28.7k/s against 98.9k/s for opaque tokens,
/// `loadtest/runs/2026-12-07T103156Z-dc5d192.md`); the record is still read and checked on every
/// call, so a hit skips the signature only. Invariants: an entry is used only while its set is
/// the very `Arc` it was verified under (the cache holds a `Weak` of it: the allocation, so its
/// address, cannot be reused, while a replaced set's keys are still freed at once), so a key
/// deleted or added empties it; only verified tokens enter; at [`JwtRefs::MAX`] entries it
/// starts over.
#[derive(Default)]
pub struct JwtRefs {
    set: std::sync::Weak<Vec<Arc<KeyEntry>>>,
    refs: HashMap<[u8; 32], crate::token::TokenRef>,
}

impl JwtRefs {
    pub const MAX: usize = 4096;

    /// The reference verified for `digest` under `set`, if any; forgets everything verified
    /// under another set.
    pub fn get(&mut self, set: &Arc<Vec<Arc<KeyEntry>>>, digest: &[u8; 32]) -> Option<crate::token::TokenRef> {
        if !std::ptr::eq(self.set.as_ptr(), Arc::as_ptr(set)) {
            self.set = Arc::downgrade(set);
            self.refs.clear();
            return None;
        }
        self.refs.get(digest).copied()
    }

    /// Remembers a token verified under `set` (after [`JwtRefs::get`] for the same set).
    pub fn put(&mut self, set: &Arc<Vec<Arc<KeyEntry>>>, digest: [u8; 32], r: crate::token::TokenRef) {
        if !std::ptr::eq(self.set.as_ptr(), Arc::as_ptr(set)) {
            return;
        }
        if self.refs.len() >= Self::MAX {
            self.refs.clear();
        }
        self.refs.insert(digest, r);
    }
}

#[cfg(test)]
mod jwt_refs_tests {
    use super::*;
    use crate::token::{TokenRef, TokenType};

    fn r(seq: u64) -> TokenRef {
        TokenRef { token_type: TokenType::AccessToken, partition: 0, seq, signature: [seq as u8; 32] }
    }

    #[test]
    fn entries_hold_only_under_the_set_they_were_verified_with() {
        let a: Arc<Vec<Arc<KeyEntry>>> = Arc::default();
        let mut c = JwtRefs::default();
        assert_eq!(c.get(&a, &[1; 32]), None);
        c.put(&a, [1; 32], r(1));
        assert_eq!(c.get(&a, &[1; 32]), Some(r(1)));
        assert_eq!(c.get(&a, &[2; 32]), None, "another token");
        // A set with the same contents but another identity (a key added, deleted, replaced).
        let b: Arc<Vec<Arc<KeyEntry>>> = Arc::default();
        assert_eq!(c.get(&b, &[1; 32]), None);
        assert_eq!(c.get(&a, &[1; 32]), None, "switching sets forgot the old entries");
        // Verified under a set that is no longer current: not remembered.
        c.put(&b, [3; 32], r(3));
        assert_eq!(c.get(&a, &[3; 32]), None);
        // The memory holds no strong reference to a set, so a replaced one (and its private keys)
        // is freed with the snapshot that held it.
        drop(b);
        assert_eq!(Arc::strong_count(&a), 1);
    }

    #[test]
    fn it_stays_bounded() {
        let a: Arc<Vec<Arc<KeyEntry>>> = Arc::default();
        let mut c = JwtRefs::default();
        c.get(&a, &[0; 32]);
        for i in 0..(JwtRefs::MAX as u64 + 10) {
            let mut d = [0u8; 32];
            d[..8].copy_from_slice(&i.to_le_bytes());
            c.put(&a, d, r(i));
            assert!(c.refs.len() <= JwtRefs::MAX);
        }
    }
}
