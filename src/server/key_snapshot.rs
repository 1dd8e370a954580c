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
            .find(|k| k.jwk.use_.as_deref().unwrap_or("sig") == "sig")
            .and_then(|k| k.signer.clone())
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
