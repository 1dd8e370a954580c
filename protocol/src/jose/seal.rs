//! AES-256-GCM sealing of secrets at rest (private JWKs), bound to their row through the AAD.
//! Format: version byte 1 || 12-byte random nonce || ciphertext || 16-byte tag. Opening tries each
//! configured key so the sealing key can be rotated without re-encrypting everything at once.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

use super::JoseError;

const VERSION: u8 = 1;

fn aead_key(key: &[u8; 32]) -> Result<LessSafeKey, JoseError> {
    UnboundKey::new(&AES_256_GCM, key).map(LessSafeKey::new).map_err(|_| JoseError::Crypto)
}

pub fn seal(
    key: &[u8; 32],
    aad: &[u8],
    plaintext: &[u8],
    rng: &dyn ring::rand::SecureRandom,
) -> Result<Vec<u8>, JoseError> {
    let key = aead_key(key)?;
    // Random 96-bit nonces: fine for the small number of keys sealed under one sealing key.
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce).map_err(|_| JoseError::Crypto)?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + AES_256_GCM.tag_len());
    out.push(VERSION);
    out.extend_from_slice(&nonce);
    let mut body = plaintext.to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut body)
        .map_err(|_| JoseError::Crypto)?;
    out.extend_from_slice(&body);
    Ok(out)
}

pub fn open(keys: &[[u8; 32]], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, JoseError> {
    let (&version, rest) = sealed.split_first().ok_or(JoseError::Unseal)?;
    if version != VERSION || rest.len() < NONCE_LEN + AES_256_GCM.tag_len() {
        return Err(JoseError::Unseal);
    }
    let (nonce, body) = rest.split_at(NONCE_LEN);
    for key in keys {
        let key = aead_key(key)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| JoseError::Unseal)?;
        let mut buf = body.to_vec();
        if let Ok(plain) = key.open_in_place(nonce, Aad::from(aad), &mut buf) {
            return Ok(plain.to_vec());
        }
    }
    Err(JoseError::Unseal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    const A: [u8; 32] = [0xa1; 32];
    const B: [u8; 32] = [0xb2; 32];

    fn aad(set: &str, kid: &str) -> Vec<u8> {
        [set.as_bytes(), &[0], kid.as_bytes()].concat()
    }

    #[test]
    fn round_trip_and_layout() {
        let rng = SystemRandom::new();
        let sealed = seal(&A, &aad("hydra.openid.id-token", "k1"), b"secret jwk", &rng).unwrap();
        assert_eq!(sealed[0], 1);
        assert_eq!(sealed.len(), 1 + 12 + 10 + 16);
        assert!(!sealed.windows(10).any(|w| w == b"secret jwk"));
        assert_eq!(open(&[A], &aad("hydra.openid.id-token", "k1"), &sealed).unwrap(), b"secret jwk");
        // Fresh nonce each time.
        assert_ne!(seal(&A, b"", b"x", &rng).unwrap(), seal(&A, b"", b"x", &rng).unwrap());
        assert_eq!(open(&[A], b"", &seal(&A, b"", b"", &rng).unwrap()).unwrap(), b"");
    }

    #[test]
    fn wrong_aad_or_key_fails() {
        let rng = SystemRandom::new();
        let sealed = seal(&A, &aad("set", "k1"), b"secret", &rng).unwrap();
        assert_eq!(open(&[A], &aad("set", "k2"), &sealed), Err(JoseError::Unseal));
        assert_eq!(open(&[A], &aad("se", "tk1"), &sealed), Err(JoseError::Unseal));
        assert_eq!(open(&[B], &aad("set", "k1"), &sealed), Err(JoseError::Unseal));
        assert_eq!(open(&[], &aad("set", "k1"), &sealed), Err(JoseError::Unseal));
    }

    #[test]
    fn rotated_keys_open() {
        let rng = SystemRandom::new();
        let sealed = seal(&B, b"row", b"payload", &rng).unwrap();
        assert_eq!(open(&[A, B], b"row", &sealed).unwrap(), b"payload");
        assert_eq!(open(&[B, A], b"row", &sealed).unwrap(), b"payload");
    }

    #[test]
    fn truncated_tampered_or_wrong_version_fails() {
        let rng = SystemRandom::new();
        let sealed = seal(&A, b"row", b"payload", &rng).unwrap();
        for cut in 0..sealed.len() {
            assert_eq!(open(&[A], b"row", &sealed[..cut]), Err(JoseError::Unseal), "cut {cut}");
        }
        let mut flipped = sealed.clone();
        flipped[14] ^= 1;
        assert_eq!(open(&[A], b"row", &flipped), Err(JoseError::Unseal));
        let mut v2 = sealed;
        v2[0] = 2;
        assert_eq!(open(&[A], b"row", &v2), Err(JoseError::Unseal));
    }
}
