//! On-disk records: a leading format-version byte followed by an rkyv archive.
//!
//! Invariants: the archive format is pinned (little-endian, 32-bit relative pointers, aligned) in
//! Cargo.toml, so files move between machines; every decode validates the archive (bytecheck)
//! before use; an unknown version byte is an error, never a guess.

use crate::StoreError;
use rkyv::rancor;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};

/// Version of [`TokenRecord`]'s archive layout.
pub const TOKEN_RECORD_VERSION: u8 = 1;

/// What a stored token is.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug))]
#[repr(u8)]
pub enum TokenKind {
    Access = 0,
    Refresh = 1,
    /// An authorization code not yet exchanged; `ext` holds the grant (JSON).
    Code = 2,
    /// An exchanged code, kept until it expires so a replay is recognised (and revokes the family).
    CodeUsed = 3,
    /// A rotated refresh token, kept until it expires so a reuse is recognised.
    RefreshUsed = 4,
}

/// One issued token. Only the token's signature is kept, so a copy of the database holds no
/// usable token.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct TokenRecord {
    pub kind: TokenKind,
    /// HMAC signature of the token's key part (the part after the `.`).
    pub signature: [u8; 32],
    /// Sequence number of the first token of the grant family (itself for client credentials).
    pub family: u64,
    pub client_id: String,
    pub subject: String,
    /// Granted scopes, space separated.
    pub scope: String,
    pub audience: Vec<String>,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// JSON object of extra claims (`ext` in introspection), empty when none.
    pub ext: String,
}

/// Encodes a token record: version byte + archive.
pub fn encode_token(rec: &TokenRecord) -> Result<Vec<u8>, StoreError> {
    let archive =
        rkyv::to_bytes::<rancor::Error>(rec).map_err(|_| StoreError::Corrupt("token record does not serialize"))?;
    let mut out = Vec::with_capacity(archive.len() + 1);
    out.push(TOKEN_RECORD_VERSION);
    out.extend_from_slice(&archive);
    Ok(out)
}

/// Decodes and validates a token record.
pub fn decode_token(bytes: &[u8]) -> Result<TokenRecord, StoreError> {
    let (&version, body) = bytes.split_first().ok_or(StoreError::Corrupt("empty token record"))?;
    if version != TOKEN_RECORD_VERSION {
        return Err(StoreError::Corrupt("unknown token record version"));
    }
    // redb values carry no alignment promise; rkyv's checked access needs the archive aligned,
    // so copy into an aligned buffer (records are ~200 bytes).
    let mut aligned = AlignedVec::<16>::with_capacity(body.len());
    aligned.extend_from_slice(body);
    rkyv::from_bytes::<TokenRecord, rancor::Error>(&aligned)
        .map_err(|_| StoreError::Corrupt("token record fails validation"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TokenRecord {
        TokenRecord {
            kind: TokenKind::Access,
            signature: [7; 32],
            family: 42,
            client_id: "client-1".into(),
            subject: "client-1".into(),
            scope: "a b".into(),
            audience: vec!["https://api".into()],
            issued_at: 1_700_000_000,
            expires_at: 1_700_003_600,
            ext: String::new(),
        }
    }

    #[test]
    fn size_of_a_client_credentials_record() {
        // Printed for capacity planning; asserted loosely so a layout change is noticed.
        let n = encode_token(&sample()).unwrap().len();
        eprintln!("client credentials token record: {n} bytes");
        assert!(n < 256, "{n}");
    }

    #[test]
    fn round_trip() {
        let bytes = encode_token(&sample()).unwrap();
        assert_eq!(bytes[0], TOKEN_RECORD_VERSION);
        assert_eq!(decode_token(&bytes).unwrap(), sample());
    }

    #[test]
    fn rejects_unknown_version_truncation_and_garbage() {
        let mut bytes = encode_token(&sample()).unwrap();
        assert!(decode_token(&[]).is_err());
        assert!(decode_token(&bytes[..bytes.len() / 2]).is_err());
        bytes[0] = 99;
        assert!(decode_token(&bytes).is_err());
        let garbage: Vec<u8> =
            std::iter::once(TOKEN_RECORD_VERSION).chain((0..200u32).map(|i| (i * 37 % 251) as u8)).collect();
        assert!(decode_token(&garbage).is_err());
    }

    #[test]
    fn decodes_from_unaligned_slice() {
        let bytes = encode_token(&sample()).unwrap();
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&bytes);
        assert_eq!(decode_token(&shifted[1..]).unwrap(), sample());
    }
}
