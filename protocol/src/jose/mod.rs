//! JOSE primitives for the OAuth2/OIDC server: JWKs, compact JWS signing and verification, and
//! at-rest sealing of private keys. Sans-IO and panic-free on untrusted input; every failure is a
//! `JoseError` whose message is a fixed string, so no key material or token text can leak through it.

pub mod import;
pub mod jwk;
pub mod jws;
pub mod seal;

pub use jwk::{Alg, Jwk};
pub use jws::{half_hash, verify, Signer, Verified};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Every error this module can produce. The payloads are `&'static str` on purpose: a message
/// built at runtime could end up quoting a token or a key member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoseError {
    /// A base64url value was padded, used the wrong alphabet or was otherwise not canonical.
    Base64,
    /// A JSON document (header, payload or key) could not be parsed or had the wrong shape.
    Json,
    /// A compact token was structurally wrong (segment count, header members).
    Malformed(&'static str),
    /// The algorithm is not one this server accepts (including `none` and HMAC).
    UnsupportedAlg,
    /// A key is unusable or inconsistent; the reason names the rule, never the value.
    InvalidKey(&'static str),
    /// No key in the set has the requested `kid` or fits the token's algorithm.
    KeyNotFound,
    /// A key exists but is bound to a different algorithm than the token claims.
    AlgMismatch,
    /// The signature did not verify with any candidate key.
    BadSignature,
    /// The platform random generator or a crypto primitive failed.
    Crypto,
    /// Sealed data could not be opened (bad version, truncated, wrong key or AAD).
    Unseal,
}

impl std::fmt::Display for JoseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JoseError::Base64 => f.write_str("invalid base64url encoding"),
            JoseError::Json => f.write_str("invalid JSON"),
            JoseError::Malformed(why) => write!(f, "malformed token: {why}"),
            JoseError::UnsupportedAlg => f.write_str("unsupported algorithm"),
            JoseError::InvalidKey(why) => write!(f, "invalid key: {why}"),
            JoseError::KeyNotFound => f.write_str("no matching key"),
            JoseError::AlgMismatch => f.write_str("key algorithm does not match token algorithm"),
            JoseError::BadSignature => f.write_str("signature verification failed"),
            JoseError::Crypto => f.write_str("cryptographic operation failed"),
            JoseError::Unseal => f.write_str("sealed data could not be opened"),
        }
    }
}

impl std::error::Error for JoseError {}

/// Base64url without padding, as JOSE requires everywhere.
pub fn b64url_encode(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Strict base64url decoding: the no-pad engine rejects `=`, `+`, `/` and non-zero trailing bits,
/// so each byte string has exactly one accepted encoding.
pub fn b64url_decode(text: &str) -> Result<Vec<u8>, JoseError> {
    URL_SAFE_NO_PAD.decode(text).map_err(|_| JoseError::Base64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_is_strict() {
        assert_eq!(b64url_encode(&[0xfb, 0xff]), "-_8");
        assert_eq!(b64url_decode("-_8").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(b64url_decode("AQAB").unwrap(), vec![1, 0, 1]);
        assert_eq!(b64url_decode("AQ=="), Err(JoseError::Base64));
        assert_eq!(b64url_decode("+/8"), Err(JoseError::Base64));
        assert_eq!(b64url_decode("A"), Err(JoseError::Base64));
        // "AR" carries non-zero trailing bits: a second spelling of 0x01 must not be accepted.
        assert_eq!(b64url_decode("AR"), Err(JoseError::Base64));
    }

    #[test]
    fn error_messages_are_fixed_text() {
        let e = JoseError::InvalidKey("modulus too small");
        assert_eq!(e.to_string(), "invalid key: modulus too small");
        let boxed: Box<dyn std::error::Error> = Box::new(JoseError::BadSignature);
        assert_eq!(boxed.to_string(), "signature verification failed");
    }
}
