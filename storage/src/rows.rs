//! Token rows and what every path that writes them must keep true together: a grant's tokens
//! are listed in its family index; deleting a token (revocation, rotation, the janitor) takes it
//! out of that index and raises the partition's sequence floor above it, so a restart never
//! hands its number out again; spent codes and refresh tokens stay as markers until they expire.

use crate::records::{decode_token, encode_token, TokenKind, TokenRecord};
use crate::store::{decode_u64, decode_u64_be, token_key, FLOOR_KEY};
use crate::tx::{Table, Tx};
use crate::StoreError;

type Result<T> = std::result::Result<T, StoreError>;

pub(crate) fn family_key(family: u64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&family.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

pub(crate) fn put_family_token(tx: &mut Tx<'_>, seq: u64, rec: &TokenRecord) -> Result<()> {
    tx.insert(Table::Tokens, &token_key(seq), &encode_token(rec)?)?;
    tx.insert(Table::Families, &family_key(rec.family, seq), &[])
}

pub(crate) fn get_record(tx: &mut Tx<'_>, seq: u64) -> Result<Option<TokenRecord>> {
    tx.get(Table::Tokens, &token_key(seq))?.map(|b| decode_token(&b)).transpose()
}

/// Deletes the family's tokens of the given kinds (all live kinds when `None`); spent-code and
/// spent-refresh markers stay, so a later replay is still recognised.
pub(crate) fn delete_family(tx: &mut Tx<'_>, family: u64, only: Option<TokenKind>) -> Result<usize> {
    let mut n = 0;
    for k in tx.keys_with_prefix(Table::Families, &family.to_be_bytes())? {
        let seq = k.get(8..16).map(decode_u64_be).unwrap_or(0);
        let Some(rec) = get_record(tx, seq)? else {
            tx.remove(Table::Families, &k)?;
            continue;
        };
        let live = matches!(rec.kind, TokenKind::Access | TokenKind::Refresh | TokenKind::Code);
        if live && only.is_none_or(|kind| kind == rec.kind) {
            tx.remove(Table::Tokens, &token_key(seq))?;
            tx.remove(Table::Families, &k)?;
            raise_floor(tx, seq)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Keeps the partition's sequence floor above a deleted token, so that deleting the newest
/// tokens never lets a restart hand their numbers out again.
pub(crate) fn raise_floor(tx: &mut Tx<'_>, seq: u64) -> Result<()> {
    let current = tx.get(Table::SeqFloor, FLOOR_KEY)?.map(|v| decode_u64(&v)).unwrap_or(1);
    if seq + 1 > current {
        tx.insert(Table::SeqFloor, FLOOR_KEY, &(seq + 1).to_le_bytes())?;
    }
    Ok(())
}

/// Marks a record spent in place (same key, new kind) and takes it out of the family index: the
/// marker only has to be found by its own key (to recognise a replay), and the index keeps
/// listing live tokens only, so a long rotation chain does not make every rotation slower.
pub(crate) fn spend(tx: &mut Tx<'_>, seq: u64, rec: &TokenRecord, kind: TokenKind) -> Result<()> {
    let spent = TokenRecord { kind, ..rec.clone() };
    tx.insert(Table::Tokens, &token_key(seq), &encode_token(&spent)?)?;
    tx.remove(Table::Families, &family_key(rec.family, seq))?;
    Ok(())
}

/// A [`Table::Flows`] row: the code's sequence number, then when the flow started (both LE).
/// Rows of one day's earlier layout hold the sequence number only.
pub(crate) fn flow_row(seq: u64, started: i64) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&seq.to_le_bytes());
    v[8..].copy_from_slice(&started.to_le_bytes());
    v
}

/// When the flow of a [`Table::Flows`] row started; `None` for rows of the earlier layout, which
/// the janitor leaves alone.
pub(crate) fn flow_started(row: &[u8]) -> Option<i64> {
    row.get(8..16).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(i64::from_le_bytes)
}

/// Deletes a token row the way a revocation does: out of its family index, and the sequence
/// floor raised above it. `key` and `value` are the row as stored.
pub(crate) fn forget_token(tx: &mut Tx<'_>, key: &[u8], value: &[u8]) -> Result<()> {
    let seq = decode_u64_be(key);
    if let Ok(rec) = decode_token(value) {
        tx.remove(Table::Families, &family_key(rec.family, seq))?;
    }
    tx.remove(Table::Tokens, key)?;
    raise_floor(tx, seq)
}

/// Key–value rows as stored.
pub type Rows = Vec<(Vec<u8>, Vec<u8>)>;
