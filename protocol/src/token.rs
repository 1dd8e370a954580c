//! Opaque token format (sans-IO): `ory_at_` / `ory_rt_` / `ory_ac_` / `ory_dc_` + `<key part>.<signature>`,
//! base64url without padding.
//!
//! Key part (43 bytes): format version (1) ‖ partition (u16 BE) ‖ record sequence (u64 BE) ‖
//! 32 random bytes. Signature: HMAC-SHA256 over a type tag ‖ key part with a key derived from the
//! system secret. Invariants: a token is only ever looked up after its MAC verified (constant
//! time, `ring::hmac::verify`), so a forged token costs one HMAC per configured secret and no
//! storage access; the type tag is signed, so a token of one kind cannot pose as another; only the
//! signature is stored, so the database alone yields no usable token; base64 decoding is strict
//! (no padding, no trailing bits), so one token has exactly one spelling.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::{digest, hmac};

const FORMAT: u8 = 1;
const KEY_PART_LEN: usize = 1 + 2 + 8 + 32;
const SIG_LEN: usize = 32;

/// The kind of an opaque token, from its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    AccessToken,
    RefreshToken,
    AuthorizeCode,
    /// RFC 8628's `device_code`.
    DeviceCode,
}

impl TokenType {
    pub fn prefix(self) -> &'static str {
        match self {
            TokenType::AccessToken => "ory_at_",
            TokenType::RefreshToken => "ory_rt_",
            TokenType::AuthorizeCode => "ory_ac_",
            TokenType::DeviceCode => "ory_dc_",
        }
    }

    fn tag(self) -> u8 {
        match self {
            TokenType::AccessToken => b'a',
            TokenType::RefreshToken => b'r',
            TokenType::AuthorizeCode => b'c',
            TokenType::DeviceCode => b'd',
        }
    }

    fn from_token(token: &str) -> Option<(TokenType, &str)> {
        [TokenType::AccessToken, TokenType::RefreshToken, TokenType::AuthorizeCode, TokenType::DeviceCode]
            .into_iter()
            .find_map(|t| token.strip_prefix(t.prefix()).map(|rest| (t, rest)))
    }
}

/// HMAC keys derived from `secrets.system`: the first signs, all verify (rotation).
pub struct TokenKeys {
    keys: Vec<hmac::Key>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenKeys({} keys)", self.keys.len())
    }
}

/// Derives a purpose-bound 32-byte key from a system secret, so the token MAC key, the client
/// secret cache key and future cookie keys never coincide.
pub fn derive_key(secret: &str, purpose: &str) -> [u8; 32] {
    let root = digest::digest(&digest::SHA256, secret.as_bytes());
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, root.as_ref()), purpose.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

impl TokenKeys {
    /// Builds keys from the secrets list; at least one secret is required (config validates).
    pub fn new(secrets: &[String]) -> Self {
        let keys = secrets
            .iter()
            .map(|s| hmac::Key::new(hmac::HMAC_SHA256, &derive_key(s, "hydra-rs/token-hmac/v1")))
            .collect();
        TokenKeys { keys }
    }
}

/// Where a token's record lives, and the signature to compare with the stored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRef {
    pub token_type: TokenType,
    pub partition: u16,
    pub seq: u64,
    pub signature: [u8; SIG_LEN],
}

/// A freshly minted token.
pub struct Minted {
    pub token: String,
    pub signature: [u8; SIG_LEN],
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Minted(..)")
    }
}

fn message(t: TokenType, key_part: &[u8; KEY_PART_LEN]) -> [u8; KEY_PART_LEN + 1] {
    let mut m = [0u8; KEY_PART_LEN + 1];
    m[0] = t.tag();
    m[1..].copy_from_slice(key_part);
    m
}

/// Mints a token for record `seq` of `partition` with 256 bits of fresh randomness.
pub fn mint(keys: &TokenKeys, t: TokenType, partition: u16, seq: u64, random: &[u8; 32]) -> Minted {
    let mut key_part = [0u8; KEY_PART_LEN];
    key_part[0] = FORMAT;
    key_part[1..3].copy_from_slice(&partition.to_be_bytes());
    key_part[3..11].copy_from_slice(&seq.to_be_bytes());
    key_part[11..].copy_from_slice(random);
    // Config guarantees at least one secret; an empty key list would mint unverifiable tokens.
    let tag = match keys.keys.first() {
        Some(k) => hmac::sign(k, &message(t, &key_part)),
        None => hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[]), &message(t, &key_part)),
    };
    let mut signature = [0u8; SIG_LEN];
    signature.copy_from_slice(tag.as_ref());
    let mut token = String::with_capacity(7 + 58 + 1 + 43);
    token.push_str(t.prefix());
    URL_SAFE_NO_PAD.encode_string(key_part, &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    Minted { token, signature }
}

/// Parses and verifies a token. `None` for anything malformed, of an unknown format or with a bad
/// MAC under every configured key.
pub fn verify(keys: &TokenKeys, token: &str) -> Option<TokenRef> {
    let (t, rest) = TokenType::from_token(token)?;
    let (kp, sig) = rest.split_once('.')?;
    // Exact encoded lengths first: cheap rejection of junk before any decoding.
    if kp.len() != 58 || sig.len() != 43 {
        return None;
    }
    let mut key_part = [0u8; KEY_PART_LEN];
    let mut signature = [0u8; SIG_LEN];
    if URL_SAFE_NO_PAD.decode_slice(kp, &mut key_part).ok()? != KEY_PART_LEN
        || URL_SAFE_NO_PAD.decode_slice(sig, &mut signature).ok()? != SIG_LEN
        || key_part[0] != FORMAT
    {
        return None;
    }
    let msg = message(t, &key_part);
    if !keys.keys.iter().any(|k| hmac::verify(k, &msg, &signature).is_ok()) {
        return None;
    }
    let partition = u16::from_be_bytes([key_part[1], key_part[2]]);
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&key_part[3..11]);
    Some(TokenRef { token_type: t, partition, seq: u64::from_be_bytes(seq), signature })
}

/// The `jti` of a JWT access token names its record: the key part of an opaque token (format,
/// partition, sequence, 32 random bytes), base64url. The record stores SHA-256 over a tag and that
/// key part. No MAC is needed: the JWT's signature already vouches for its `jti`, and a `jti` alone
/// (as resource servers log it) is not a credential, because a token is looked up only after its
/// JWT signature verified. `Minted::token` is the `jti` text.
pub fn mint_jti(partition: u16, seq: u64, random: &[u8; 32]) -> Minted {
    let mut key_part = [0u8; KEY_PART_LEN];
    key_part[0] = FORMAT;
    key_part[1..3].copy_from_slice(&partition.to_be_bytes());
    key_part[3..11].copy_from_slice(&seq.to_be_bytes());
    key_part[11..].copy_from_slice(random);
    Minted { token: URL_SAFE_NO_PAD.encode(key_part), signature: jti_digest(&key_part) }
}

fn jti_digest(key_part: &[u8; KEY_PART_LEN]) -> [u8; SIG_LEN] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"j");
    ctx.update(key_part);
    let mut out = [0u8; SIG_LEN];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Where the record of a (signature-verified) JWT access token's `jti` lives; `None` for a `jti`
/// this server did not mint.
pub fn jti_ref(jti: &str) -> Option<TokenRef> {
    if jti.len() != 58 {
        return None;
    }
    let mut key_part = [0u8; KEY_PART_LEN];
    if URL_SAFE_NO_PAD.decode_slice(jti, &mut key_part).ok()? != KEY_PART_LEN || key_part[0] != FORMAT {
        return None;
    }
    let partition = u16::from_be_bytes([key_part[1], key_part[2]]);
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&key_part[3..11]);
    Some(TokenRef {
        token_type: TokenType::AccessToken,
        partition,
        seq: u64::from_be_bytes(seq),
        signature: jti_digest(&key_part),
    })
}

/// Lowercase hex, one allocation (request ids, flow ids, pairwise subjects).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// Constant-time equality of two 32-byte MACs (a stored signature and a presented one, or a
/// cached secret digest and a fresh one): every byte is compared, whatever differs first.
pub fn same_signature(a: &[u8; SIG_LEN], b: &[u8; SIG_LEN]) -> bool {
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(s: &[&str]) -> TokenKeys {
        TokenKeys::new(&s.iter().map(|x| x.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn mint_then_verify() {
        let k = keys(&["a-very-long-system-secret"]);
        let m = mint(&k, TokenType::AccessToken, 5, 123_456, &[9; 32]);
        assert!(m.token.starts_with("ory_at_"));
        assert_eq!(m.token.len(), 7 + 58 + 1 + 43);
        let r = verify(&k, &m.token).unwrap();
        assert_eq!((r.token_type, r.partition, r.seq), (TokenType::AccessToken, 5, 123_456));
        assert_eq!(r.signature, m.signature);
    }

    #[test]
    fn rotation_old_secret_still_verifies_new_signs() {
        let old = keys(&["old-secret-0123456789"]);
        let m = mint(&old, TokenType::AccessToken, 0, 1, &[1; 32]);
        let rotated = keys(&["new-secret-0123456789", "old-secret-0123456789"]);
        assert!(verify(&rotated, &m.token).is_some());
        let fresh = mint(&rotated, TokenType::AccessToken, 0, 2, &[2; 32]);
        assert!(verify(&old, &fresh.token).is_none(), "new tokens are signed with the first secret");
        let dropped = keys(&["new-secret-0123456789"]);
        assert!(verify(&dropped, &m.token).is_none());
    }

    #[test]
    fn rejects_tampering_type_confusion_and_junk() {
        let k = keys(&["a-very-long-system-secret"]);
        let m = mint(&k, TokenType::AccessToken, 1, 7, &[3; 32]);
        let as_refresh = m.token.replacen("ory_at_", "ory_rt_", 1);
        assert!(verify(&k, &as_refresh).is_none(), "type tag is signed");
        // Flip one character of the key part (changes the seq/random bytes).
        let mut bytes = m.token.clone().into_bytes();
        bytes[20] = if bytes[20] == b'A' { b'B' } else { b'A' };
        assert!(verify(&k, std::str::from_utf8(&bytes).unwrap()).is_none());
        for junk in ["", "ory_at_", "ory_at_.", "ory_at_abc.def", "bearer xyz", "ory_xx_a.b"] {
            assert!(verify(&k, junk).is_none(), "{junk:?}");
        }
        // Non-canonical base64 (trailing bits set in the last char of the signature).
        let mut t = m.token.clone();
        let last = t.pop().unwrap();
        let alt = if last == 'A' { 'B' } else { 'A' };
        t.push(alt);
        assert!(verify(&k, &t).is_none());
    }

    #[test]
    fn jti_names_its_record_and_nothing_else() {
        let m = mint_jti(3, 99, &[7; 32]);
        let r = jti_ref(&m.token).unwrap();
        assert_eq!((r.token_type, r.partition, r.seq, r.signature), (TokenType::AccessToken, 3, 99, m.signature));
        let other = mint_jti(3, 99, &[8; 32]);
        assert_ne!(other.signature, m.signature, "the random part is bound into the stored digest");
        let k = keys(&["a-very-long-system-secret"]);
        let opaque = mint(&k, TokenType::AccessToken, 3, 99, &[7; 32]);
        assert_ne!(opaque.signature, m.signature, "an opaque spelling never matches a JWT's record");
        for junk in ["", "abc", &m.token[1..], &format!("{}A", m.token)] {
            assert!(jti_ref(junk).is_none(), "{junk:?}");
        }
    }

    #[test]
    fn same_signature_compares_all_bytes() {
        let a = [1u8; 32];
        let mut b = a;
        assert!(same_signature(&a, &b));
        b[31] = 2;
        assert!(!same_signature(&a, &b));
    }
}
