//! Session claims at rest (`oauth2.session.encrypt_at_rest`, on by default as in Hydra): a token
//! record's `ext` (the grant's claims on codes and refresh tokens, the access token's session
//! on access tokens) sealed with AES-256-GCM under a key derived from `secrets.system`, so a
//! copied database or write-ahead log holds no user's claims.
//!
//! Invariants:
//! - A sealed value starts with [`PREFIX`], which JSON (and the empty value) never does, so a
//!   value written before encryption, or with it off, reads as it is; an empty value is never
//!   sealed.
//! - Every value has its own AES key, derived by HMAC-SHA256 from the secret's at-rest key and
//!   128 random bits stored with the value; so one key never seals twice and its all-zero nonce
//!   is never reused, however many values are sealed and whatever numbers a restored backup
//!   hands out again (random 96-bit nonces under one key would pass NIST's 2^32 bound after
//!   about 40 hours of refresh rotation at this server's rate).
//! - The associated data is the record's partition and grant family: a value copied into another
//!   grant's record does not open, while the records of one grant may share it.
//! - The first secret seals; every secret opens (rotation).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hmac;
use std::borrow::Cow;

/// What a sealed value starts with (version 1).
pub const PREFIX: &str = "~1.";
/// Random bytes per value that its key is derived from.
pub const SALT_LEN: usize = 16;

/// A stored value that does not open: tampered, moved to another grant, or sealed under a
/// secret no longer configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsealable;

/// The at-rest keys: one per `secrets.system` entry.
pub struct AtRest {
    keys: Vec<hmac::Key>,
    seal: bool,
}

impl std::fmt::Debug for AtRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AtRest({} keys, sealing {})", self.keys.len(), self.seal)
    }
}

impl AtRest {
    /// `seal` is `oauth2.session.encrypt_at_rest`; values sealed earlier open either way.
    pub fn new(secrets: &[String], seal: bool) -> Self {
        let keys = secrets
            .iter()
            .map(|s| hmac::Key::new(hmac::HMAC_SHA256, &crate::token::derive_key(s, "hydra-rs/ext-at-rest/v1")))
            .collect();
        AtRest { keys, seal }
    }

    /// The value to store for `plain` in a record of `family` in `partition`: `plain` itself
    /// when it is empty or sealing is off.
    pub fn seal(&self, partition: u32, family: u64, plain: String, salt: [u8; SALT_LEN]) -> Result<String, Unsealable> {
        let Some(key) = self.keys.first().filter(|_| self.seal && !plain.is_empty()) else { return Ok(plain) };
        let mut buf = plain.into_bytes();
        let nonce = Nonce::assume_unique_for_key([0; NONCE_LEN]);
        value_key(key, &salt)?
            .seal_in_place_append_tag(nonce, aad(partition, family), &mut buf)
            .map_err(|_| Unsealable)?;
        let mut out = String::with_capacity(PREFIX.len() + (SALT_LEN + buf.len()).div_ceil(3) * 4);
        out.push_str(PREFIX);
        let mut raw = Vec::with_capacity(SALT_LEN + buf.len());
        raw.extend_from_slice(&salt);
        raw.extend_from_slice(&buf);
        URL_SAFE_NO_PAD.encode_string(&raw, &mut out);
        Ok(out)
    }

    /// The plain value of a stored one of `family` in `partition`.
    pub fn open<'a>(&self, partition: u32, family: u64, stored: &'a str) -> Result<Cow<'a, str>, Unsealable> {
        self.open_keeping(partition, family, stored).map(|(plain, _)| plain)
    }

    /// [`AtRest::open`], and whether the stored value may be stored again as it is in another
    /// record of the grant: only a value sealed under the first secret while sealing is on. A
    /// value copied from record to record would otherwise keep the secret it was first sealed
    /// under for as long as the grant lives, and removing that secret from the list would break
    /// grants whose tokens all verify under the new one.
    pub fn open_keeping<'a>(
        &self,
        partition: u32,
        family: u64,
        stored: &'a str,
    ) -> Result<(Cow<'a, str>, bool), Unsealable> {
        let Some(body) = stored.strip_prefix(PREFIX) else { return Ok((Cow::Borrowed(stored), false)) };
        let raw = URL_SAFE_NO_PAD.decode(body).map_err(|_| Unsealable)?;
        if raw.len() < SALT_LEN + AES_256_GCM.tag_len() {
            return Err(Unsealable);
        }
        let (salt, sealed) = raw.split_at(SALT_LEN);
        let salt: [u8; SALT_LEN] = salt.try_into().map_err(|_| Unsealable)?;
        for (i, key) in self.keys.iter().enumerate() {
            let mut buf = sealed.to_vec();
            let nonce = Nonce::assume_unique_for_key([0; NONCE_LEN]);
            if let Ok(plain) = value_key(key, &salt)?.open_in_place(nonce, aad(partition, family), &mut buf) {
                let n = plain.len();
                buf.truncate(n);
                let plain = String::from_utf8(buf).map_err(|_| Unsealable)?;
                return Ok((Cow::Owned(plain), self.seal && i == 0));
            }
        }
        Err(Unsealable)
    }
}

fn value_key(key: &hmac::Key, salt: &[u8; SALT_LEN]) -> Result<LessSafeKey, Unsealable> {
    let tag = hmac::sign(key, salt);
    Ok(LessSafeKey::new(UnboundKey::new(&AES_256_GCM, tag.as_ref()).map_err(|_| Unsealable)?))
}

fn aad(partition: u32, family: u64) -> Aad<[u8; 12]> {
    let mut a = [0u8; 12];
    a[..4].copy_from_slice(&partition.to_le_bytes());
    a[4..].copy_from_slice(&family.to_le_bytes());
    Aad::from(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    const CLAIMS: &str = r#"{"g":{"id_token":{"email":"alice@example.com"}}}"#;

    #[test]
    fn sealed_values_open_only_in_their_grant_and_hide_the_claims() {
        let k = AtRest::new(&secrets(&["first-secret-0123456789"]), true);
        let sealed = k.seal(3, 77, CLAIMS.into(), [9; SALT_LEN]).unwrap();
        assert!(sealed.starts_with(PREFIX), "{sealed}");
        assert!(!sealed.contains("alice"), "{sealed}");
        assert_eq!(k.open(3, 77, &sealed).unwrap(), CLAIMS);
        assert_eq!(k.open(3, 78, &sealed), Err(Unsealable), "another family");
        assert_eq!(k.open(4, 77, &sealed), Err(Unsealable), "another partition");
        // Each value its own salt, so its own key: the same claims seal differently.
        let other = k.seal(3, 77, CLAIMS.into(), [8; SALT_LEN]).unwrap();
        assert_ne!(other, sealed);
        assert_eq!(k.open(3, 77, &other).unwrap(), CLAIMS);
    }

    #[test]
    fn tampered_truncated_and_foreign_values_do_not_open() {
        let k = AtRest::new(&secrets(&["first-secret-0123456789"]), true);
        let sealed = k.seal(0, 1, CLAIMS.into(), [1; SALT_LEN]).unwrap();
        let mut bytes = sealed.clone().into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(k.open(0, 1, std::str::from_utf8(&bytes).unwrap()), Err(Unsealable));
        assert_eq!(k.open(0, 1, &sealed[..PREFIX.len() + 20]), Err(Unsealable));
        assert_eq!(k.open(0, 1, "~1.!!not-base64"), Err(Unsealable));
        assert_eq!(k.open(0, 1, PREFIX), Err(Unsealable));
        let stranger = AtRest::new(&secrets(&["another-secret-0123456789"]), true);
        assert_eq!(stranger.open(0, 1, &sealed), Err(Unsealable));
    }

    #[test]
    fn plain_and_empty_values_pass_through_and_sealing_can_be_off() {
        let k = AtRest::new(&secrets(&["first-secret-0123456789"]), true);
        assert_eq!(k.seal(0, 1, String::new(), [1; SALT_LEN]).unwrap(), "");
        assert_eq!(k.open(0, 1, CLAIMS).unwrap(), CLAIMS, "written before encryption");
        assert!(matches!(k.open(0, 1, CLAIMS).unwrap(), Cow::Borrowed(_)));
        let off = AtRest::new(&secrets(&["first-secret-0123456789"]), false);
        assert_eq!(off.seal(0, 1, CLAIMS.into(), [1; SALT_LEN]).unwrap(), CLAIMS);
        // Turning it off keeps what was sealed readable.
        let sealed = k.seal(0, 1, CLAIMS.into(), [1; SALT_LEN]).unwrap();
        assert_eq!(off.open(0, 1, &sealed).unwrap(), CLAIMS);
    }

    #[test]
    fn rotated_secrets_open_what_older_ones_sealed() {
        let old = AtRest::new(&secrets(&["old-secret-0123456789"]), true);
        let sealed = old.seal(2, 5, CLAIMS.into(), [4; SALT_LEN]).unwrap();
        let rotated = AtRest::new(&secrets(&["new-secret-0123456789", "old-secret-0123456789"]), true);
        assert_eq!(rotated.open(2, 5, &sealed).unwrap(), CLAIMS);
        let fresh = rotated.seal(2, 5, CLAIMS.into(), [4; SALT_LEN]).unwrap();
        assert_eq!(old.open(2, 5, &fresh), Err(Unsealable), "the first secret seals");
        // Only a value sealed under the first secret, with sealing on, may be stored again as it is.
        assert!(rotated.open_keeping(2, 5, &fresh).unwrap().1);
        assert!(!rotated.open_keeping(2, 5, &sealed).unwrap().1, "sealed under a rotated secret");
        assert!(!rotated.open_keeping(2, 5, CLAIMS).unwrap().1, "not sealed");
        let off = AtRest::new(&secrets(&["new-secret-0123456789"]), false);
        assert!(!off.open_keeping(2, 5, &fresh).unwrap().1, "sealing is off");
    }
}
