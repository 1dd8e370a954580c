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
    /// A device authorization (RFC 8628) waiting for its user: `ext` holds the request (JSON).
    /// Once the user consents, the record at the same key becomes the grant's [`TokenKind::Code`]
    /// (same signature), which the device then exchanges.
    Device = 5,
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

impl TokenRecord {
    /// Whether `new` may take this record's place: only a device authorization becomes its
    /// grant's code (same signature, same client), once. Anything else already stored under a
    /// sequence number stays, so a late or repeated approval never overwrites a spent, revoked
    /// or foreign record.
    pub fn approved_as(&self, new: &TokenRecord) -> bool {
        self.kind == TokenKind::Device
            && new.kind == TokenKind::Code
            && self.signature == new.signature
            && self.client_id == new.client_id
    }

    /// The marker that replaces this record once it is spent as `kind`. A spent refresh token
    /// keeps what recognises its reuse (signature, family, client) and what the janitor judges
    /// (issue and expiry), nothing of the grant: no rotation reads it back, and its claims were
    /// two thirds of the record (489 bytes with 324 of `ext` in `flowload`'s grants), written
    /// once more per rotation to the B-tree and the log. A spent code keeps everything: userinfo
    /// reads the grant from the family's first record.
    pub fn spent_as(&self, kind: TokenKind) -> TokenRecord {
        if kind != TokenKind::RefreshUsed {
            return TokenRecord { kind, ..self.clone() };
        }
        TokenRecord {
            kind,
            signature: self.signature,
            family: self.family,
            client_id: self.client_id.clone(),
            subject: String::new(),
            scope: String::new(),
            audience: Vec::new(),
            issued_at: self.issued_at,
            expires_at: self.expires_at,
            ext: String::new(),
        }
    }
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

/// Records up to this size are read into a buffer inside the view itself (no heap allocation);
/// a client credentials token record is about 200 bytes.
const INLINE: usize = 512;

#[repr(C, align(16))]
struct Inline([u8; INLINE]);

// The inline variant is large on purpose: it keeps the read path free of heap allocation.
#[allow(clippy::large_enum_variant)]
enum ViewBuf {
    Inline(Inline, usize),
    Heap(AlignedVec<16>),
}

/// A stored token record read in place: the archive is copied once into an aligned buffer (redb
/// values carry no alignment promise) and validated once; fields are then read from the archive
/// without deserializing (no `String` or `Vec` per field). Why: introspection reads a record per
/// request; `bench/benches/hot_path.rs` (`record_decode` vs `record_view`) measures the gain.
pub struct TokenView {
    buf: ViewBuf,
}

impl std::fmt::Debug for TokenView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenView").field("kind", &self.get().kind).finish_non_exhaustive()
    }
}

impl TokenView {
    /// Validates a stored record (version byte + archive).
    pub fn new(bytes: &[u8]) -> Result<TokenView, StoreError> {
        let (&version, body) = bytes.split_first().ok_or(StoreError::Corrupt("empty token record"))?;
        if version != TOKEN_RECORD_VERSION {
            return Err(StoreError::Corrupt("unknown token record version"));
        }
        let buf = if body.len() <= INLINE {
            let mut b = Inline([0; INLINE]);
            b.0[..body.len()].copy_from_slice(body);
            ViewBuf::Inline(b, body.len())
        } else {
            let mut v = AlignedVec::<16>::with_capacity(body.len());
            v.extend_from_slice(body);
            ViewBuf::Heap(v)
        };
        let view = TokenView { buf };
        rkyv::access::<ArchivedTokenRecord, rancor::Error>(view.bytes())
            .map_err(|_| StoreError::Corrupt("token record fails validation"))?;
        Ok(view)
    }

    fn bytes(&self) -> &[u8] {
        match &self.buf {
            ViewBuf::Inline(b, len) => &b.0[..*len],
            ViewBuf::Heap(v) => v.as_slice(),
        }
    }

    /// The archived record.
    pub fn get(&self) -> &ArchivedTokenRecord {
        // SAFETY: `new` validated these exact bytes as an `ArchivedTokenRecord` with checked
        // access, the buffer is 16-byte aligned (`Inline` is `align(16)`, `AlignedVec<16>`), and
        // it is never written after construction (no `&mut` access to `buf` exists).
        unsafe { rkyv::access_unchecked::<ArchivedTokenRecord>(self.bytes()) }
    }

    /// The owned record (for the write paths that change it).
    pub fn to_record(&self) -> Result<TokenRecord, StoreError> {
        rkyv::deserialize::<TokenRecord, rancor::Error>(self.get())
            .map_err(|_| StoreError::Corrupt("token record does not deserialize"))
    }
}

impl ArchivedTokenKind {
    /// The kind as a plain value.
    pub fn native(&self) -> TokenKind {
        match self {
            ArchivedTokenKind::Access => TokenKind::Access,
            ArchivedTokenKind::Refresh => TokenKind::Refresh,
            ArchivedTokenKind::Code => TokenKind::Code,
            ArchivedTokenKind::CodeUsed => TokenKind::CodeUsed,
            ArchivedTokenKind::RefreshUsed => TokenKind::RefreshUsed,
            ArchivedTokenKind::Device => TokenKind::Device,
        }
    }
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
    fn a_spent_refresh_token_keeps_what_recognises_a_reuse_and_a_spent_code_keeps_all() {
        let rec = TokenRecord { kind: TokenKind::Refresh, ext: "{\"g\":{}}".into(), ..sample() };
        let spent = rec.spent_as(TokenKind::RefreshUsed);
        assert_eq!(spent.kind, TokenKind::RefreshUsed);
        assert_eq!(
            (spent.signature, spent.family, &spent.client_id, spent.issued_at, spent.expires_at),
            (rec.signature, rec.family, &rec.client_id, rec.issued_at, rec.expires_at)
        );
        assert!(
            spent.subject.is_empty() && spent.scope.is_empty() && spent.audience.is_empty() && spent.ext.is_empty()
        );
        assert!(encode_token(&spent).unwrap().len() < encode_token(&rec).unwrap().len());
        let code = TokenRecord { kind: TokenKind::Code, ..rec.clone() };
        assert_eq!(code.spent_as(TokenKind::CodeUsed), TokenRecord { kind: TokenKind::CodeUsed, ..code.clone() });
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
    fn views_read_in_place_and_refuse_what_decoding_refuses() {
        let bytes = encode_token(&sample()).unwrap();
        let v = TokenView::new(&bytes).unwrap();
        let a = v.get();
        assert_eq!(a.kind.native(), TokenKind::Access);
        assert_eq!(a.client_id.as_str(), "client-1");
        assert_eq!(a.scope.as_str(), "a b");
        assert_eq!(a.audience.iter().map(|s| s.as_str()).collect::<Vec<_>>(), vec!["https://api"]);
        assert_eq!(a.expires_at.to_native(), 1_700_003_600);
        assert_eq!(a.family.to_native(), 42);
        assert_eq!(v.to_record().unwrap(), sample());
        // Unaligned input, and a record too big for the inline buffer.
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&bytes);
        assert_eq!(TokenView::new(&shifted[1..]).unwrap().to_record().unwrap(), sample());
        let big = TokenRecord { ext: "x".repeat(3000), ..sample() };
        let v = TokenView::new(&encode_token(&big).unwrap()).unwrap();
        assert_eq!(v.get().ext.len(), 3000);
        assert_eq!(v.to_record().unwrap(), big);
        let mut bad = bytes.clone();
        bad[0] = 9;
        assert!(TokenView::new(&bad).is_err());
        assert!(TokenView::new(&bytes[..bytes.len() / 2]).is_err());
        assert!(TokenView::new(&[]).is_err());
    }

    #[test]
    fn decodes_from_unaligned_slice() {
        let bytes = encode_token(&sample()).unwrap();
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&bytes);
        assert_eq!(decode_token(&shifted[1..]).unwrap(), sample());
    }
}
