//! Client-secret hashing in Hydra's formats: PBKDF2 `$pbkdf2-sha256$i=<iter>,l=<len>$<salt>$<key>`
//! (base64 std, no padding) and bcrypt (`$2a$<cost>$…`, as Go's `x/crypto/bcrypt` writes it), the
//! one `oauth2.hashers.algorithm` names writing new hashes, both verifying, so clients keep their
//! secrets when the setting changes. Invariants: verification is constant-time (`ring::pbkdf2::verify`,
//! the bcrypt crate's comparison), never panics, and rejects malformed or abusive (iteration count
//! above `MAX_ITERATIONS`, bcrypt cost above 31) hashes.

use std::num::NonZeroU32;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use ring::pbkdf2;

/// Hydra's default `oauth2.hashers.pbkdf2.iterations` (see spec/config.json).
pub const DEFAULT_ITERATIONS: u32 = 25_000;

/// Upper bound on iterations accepted from stored hashes: a tampered or imported hash with a huge
/// count would otherwise let one login attempt burn minutes of CPU.
pub const MAX_ITERATIONS: u32 = 10_000_000;

/// Derived key length Hydra writes (`l=32`).
const KEY_LEN: usize = 32;

/// Hydra's hasher may be configured with sha512; verifying such hashes costs nothing extra, so we
/// accept both digests while always writing sha256.
fn algorithm(name: &str) -> Option<pbkdf2::Algorithm> {
    match name {
        "sha256" => Some(pbkdf2::PBKDF2_HMAC_SHA256),
        "sha512" => Some(pbkdf2::PBKDF2_HMAC_SHA512),
        _ => None,
    }
}

/// The hasher that writes new secrets (`oauth2.hashers.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hasher {
    Pbkdf2 {
        iterations: u32,
    },
    /// `cost` between 4 and 31 (Hydra's bounds; the config refuses others).
    Bcrypt {
        cost: u32,
    },
}

impl Hasher {
    /// Hashes `secret` with a fresh `salt`. bcrypt reads at most 72 bytes of the secret (as Go's
    /// and every bcrypt does); generated secrets are far shorter.
    pub fn hash(self, secret: &[u8], salt: &[u8; 16]) -> String {
        match self {
            Hasher::Pbkdf2 { iterations } => hash_secret(secret, iterations, salt),
            Hasher::Bcrypt { cost } => match bcrypt::hash_with_salt(secret, cost.clamp(4, 31), *salt) {
                Ok(parts) => parts.format_for_version(bcrypt::Version::TwoA),
                // Only an out-of-range cost fails, and it is clamped above.
                Err(_) => hash_secret(secret, DEFAULT_ITERATIONS, salt),
            },
        }
    }
}

/// Hashes `secret` with PBKDF2-HMAC-SHA256. An `iterations` of 0 is treated as 1 (PBKDF2 needs at
/// least one round) so the function stays total.
pub fn hash_secret(secret: &[u8], iterations: u32, salt: &[u8; 16]) -> String {
    let rounds = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
    let mut key = [0u8; KEY_LEN];
    pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, rounds, salt, secret, &mut key);
    format!(
        "$pbkdf2-sha256$i={},l={}${}${}",
        rounds,
        KEY_LEN,
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(key)
    )
}

/// Parses a strictly decimal, non-empty, sign-less number (Go's Sscanf would accept more, but every
/// hash Hydra writes fits this form).
fn parse_decimal(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Checks `secret` against an encoded hash of either kind. Returns false for anything malformed.
pub fn verify_secret(encoded: &str, secret: &[u8]) -> bool {
    if encoded.starts_with("$2") {
        return verify_bcrypt(encoded, secret);
    }
    verify_pbkdf2(encoded, secret)
}

/// A bcrypt hash: `$2a$`, `$2b$`, `$2x$` or `$2y$`, a two-digit cost from 4 to 31, 53 characters
/// of salt and hash (60 in all).
fn verify_bcrypt(encoded: &str, secret: &[u8]) -> bool {
    let b = encoded.as_bytes();
    let well_formed = b.len() == 60
        && matches!(&b[..4], b"$2a$" | b"$2b$" | b"$2x$" | b"$2y$")
        && b[6] == b'$'
        && std::str::from_utf8(&b[4..6]).ok().and_then(parse_decimal).is_some_and(|c| (4..=31).contains(&c));
    well_formed && bcrypt::verify(secret, encoded).unwrap_or(false)
}

fn verify_pbkdf2(encoded: &str, secret: &[u8]) -> bool {
    let mut parts = encoded.split('$');
    // A leading '$' yields an empty first part.
    let (Some(""), Some(kind), Some(params), Some(salt_b64), Some(key_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Some(alg) = kind.strip_prefix("pbkdf2-").and_then(algorithm) else {
        return false;
    };
    let Some((iter_part, len_part)) = params.split_once(',') else {
        return false;
    };
    let Some(iterations) = iter_part.strip_prefix("i=").and_then(parse_decimal) else {
        return false;
    };
    let Some(declared_len) = len_part.strip_prefix("l=").and_then(parse_decimal) else {
        return false;
    };
    if iterations > MAX_ITERATIONS {
        return false;
    }
    let Some(rounds) = NonZeroU32::new(iterations) else {
        return false;
    };
    let (Ok(salt), Ok(key)) = (STANDARD_NO_PAD.decode(salt_b64), STANDARD_NO_PAD.decode(key_b64)) else {
        return false;
    };
    // An empty key would make verification vacuous; the declared length must match what is stored;
    // and a bound on the length keeps the derivation cost proportional to `iterations`.
    if key.is_empty() || key.len() > 128 || usize::try_from(declared_len).ok() != Some(key.len()) {
        return false;
    }
    pbkdf2::verify(alg, rounds, &salt, secret, &key).is_ok()
}

/// A valid hash (at `DEFAULT_ITERATIONS`) of a constant nobody can send, for spending the same
/// time on unknown client ids as on known ones (prevents client-id enumeration by timing).
pub fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        const SALT: [u8; 16] = *b"hydra-rs-dummy!!";
        hash_secret(b"\x00dummy secret that no client can have\x00", DEFAULT_ITERATIONS, &SALT)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALT: [u8; 16] = [7u8; 16];

    #[test]
    fn round_trip() {
        let h = hash_secret(b"averylongsecret", 1000, &SALT);
        assert!(h.starts_with("$pbkdf2-sha256$i=1000,l=32$"));
        assert!(verify_secret(&h, b"averylongsecret"));
        assert!(!verify_secret(&h, b"averylongsecreT"));
        assert!(!verify_secret(&h, b""));
    }

    #[test]
    fn default_iterations_and_format() {
        let h = hash_secret(b"secret", DEFAULT_ITERATIONS, &SALT);
        let parts: Vec<&str> = h.split('$').collect();
        assert_eq!(parts[1], "pbkdf2-sha256");
        assert_eq!(parts[2], "i=25000,l=32");
        assert_eq!(parts[3], STANDARD_NO_PAD.encode(SALT));
        assert_eq!(STANDARD_NO_PAD.decode(parts[4]).unwrap().len(), 32);
        assert!(!parts[3].contains('=') && !parts[4].contains('='));
        assert!(verify_secret(&h, b"secret"));
    }

    #[test]
    fn different_iteration_counts_differ() {
        let a = hash_secret(b"secret", 1, &SALT);
        let b = hash_secret(b"secret", 2, &SALT);
        assert_ne!(a.rsplit('$').next(), b.rsplit('$').next());
        assert!(verify_secret(&a, b"secret"));
        assert!(verify_secret(&b, b"secret"));
        // Changing the declared count must break verification.
        let tampered = a.replace("i=1,", "i=2,");
        assert!(!verify_secret(&tampered, b"secret"));
        // Zero iterations are clamped to one when hashing.
        assert_eq!(hash_secret(b"secret", 0, &SALT), a);
    }

    #[test]
    fn verifies_known_vector() {
        // PBKDF2-HMAC-SHA256("password", "salt", 1, 32) from RFC 7914 §11 test vectors.
        let key = [
            0x12, 0x0f, 0xb6, 0xcf, 0xfc, 0xf8, 0xb3, 0x2c, 0x43, 0xe7, 0x22, 0x52, 0x56, 0xc4, 0xf8, 0x37, 0xa8, 0x65,
            0x48, 0xc9, 0x2c, 0xcc, 0x35, 0x48, 0x08, 0x05, 0x98, 0x7c, 0xb7, 0x0b, 0xe1, 0x7b,
        ];
        let enc =
            format!("$pbkdf2-sha256$i=1,l=32${}${}", STANDARD_NO_PAD.encode(b"salt"), STANDARD_NO_PAD.encode(key));
        assert!(verify_secret(&enc, b"password"));
        assert!(!verify_secret(&enc, b"passwore"));
    }

    #[test]
    fn malformed_inputs_are_rejected() {
        let good = hash_secret(b"secret", 10, &SALT);
        let salt = STANDARD_NO_PAD.encode(SALT);
        let key = good.rsplit('$').next().unwrap().to_owned();
        let cases = [
            String::new(),
            "$".into(),
            "plain".into(),
            "$2a$10$abcdefghijklmnopqrstuv".into(),
            // bcrypt: a cost out of range, a cut hash, an unknown variant.
            "$2a$03$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW".into(),
            "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOe".into(),
            "$2c$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW".into(),
            format!("pbkdf2-sha256$i=10,l=32${salt}${key}"),
            format!("$pbkdf2-md5$i=10,l=32${salt}${key}"),
            format!("$pbkdf2$i=10,l=32${salt}${key}"),
            format!("$pbkdf2-sha256$i=0,l=32${salt}${key}"),
            format!("$pbkdf2-sha256$i=-1,l=32${salt}${key}"),
            format!("$pbkdf2-sha256$i=,l=32${salt}${key}"),
            format!("$pbkdf2-sha256$i=10${salt}${key}"),
            format!("$pbkdf2-sha256$i=10,l=31${salt}${key}"),
            format!("$pbkdf2-sha256$i=99999999999,l=32${salt}${key}"),
            format!("$pbkdf2-sha256$i=10000001,l=32${salt}${key}"),
            format!("$pbkdf2-sha256$i=10,l=32$!!!${key}"),
            format!("$pbkdf2-sha256$i=10,l=32${salt}$"),
            format!("$pbkdf2-sha256$i=10,l=32${salt}${key}="),
            format!("$pbkdf2-sha256$i=10,l=32${salt}${key}$extra"),
        ];
        for c in &cases {
            assert!(!verify_secret(c, b"secret"), "accepted {c:?}");
        }
        assert!(verify_secret(&good, b"secret"));
    }

    #[test]
    fn bcrypt_known_answers_and_round_trip() {
        // OpenBSD's bcrypt test vectors (as in Go's x/crypto/bcrypt tests).
        assert!(verify_secret("$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", b"U*U"));
        assert!(!verify_secret("$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", b"U*V"));
        assert!(verify_secret("$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK", b"U*U*"));
        let h = Hasher::Bcrypt { cost: 4 }.hash(b"client-secret", &SALT);
        assert!(h.starts_with("$2a$04$") && h.len() == 60, "{h}");
        assert!(verify_secret(&h, b"client-secret"));
        assert!(!verify_secret(&h, b"client-secreT"));
        // The PBKDF2 side of the same dispatcher, and the configured default writes PBKDF2.
        let p = Hasher::Pbkdf2 { iterations: 10 }.hash(b"client-secret", &SALT);
        assert!(p.starts_with("$pbkdf2-sha256$") && verify_secret(&p, b"client-secret"));
    }

    #[test]
    fn dummy_hash_is_valid_and_stable() {
        let h = dummy_hash();
        assert!(h.starts_with("$pbkdf2-sha256$i=25000,l=32$"));
        assert_eq!(h, dummy_hash());
        assert!(!verify_secret(h, b"secret"));
        assert!(verify_secret(h, b"\x00dummy secret that no client can have\x00"));
    }
}
