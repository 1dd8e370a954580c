//! Token rows and what every path that writes them must keep true together: a grant's tokens
//! are listed in its family index; deleting a token (revocation, rotation, the janitor) takes it
//! out of that index and raises the partition's sequence floor above it, so a restart never
//! hands its number out again; spent codes and refresh tokens stay as markers until they expire.

use crate::records::{decode_token, encode_token, TokenKind, TokenRecord, TokenView};
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
/// spent-refresh markers stay, so a later replay is still recognised. `kept_above`: a live
/// token with a higher sequence number is written in the same commit (a rotation's new tokens),
/// so the deleted numbers cannot be handed out again and the floor need not move (0: always
/// raise it).
///
/// Each listed token is taken out and put back when it is not one to delete: the family index
/// lists live tokens, and a rotation finds only the access token there (its refresh token left
/// the index when it was spent), so the common case is one B-tree descent per token, not a read
/// and then a removal.
pub(crate) fn delete_family(tx: &mut Tx<'_>, family: u64, only: Option<TokenKind>, kept_above: u64) -> Result<usize> {
    let mut n = 0;
    for k in tx.keys_with_prefix(Table::Families, &family.to_be_bytes())? {
        let seq = k.get(8..16).map(decode_u64_be).unwrap_or(0);
        let key = token_key(seq);
        let Some(old) = tx.take(Table::Tokens, &key)? else {
            tx.remove(Table::Families, &k)?;
            continue;
        };
        let kind = TokenView::new(&old)?.get().kind.native();
        let live = matches!(kind, TokenKind::Access | TokenKind::Refresh | TokenKind::Code);
        if live && only.is_none_or(|o| o == kind) {
            tx.remove(Table::Families, &k)?;
            if seq >= kept_above {
                raise_floor(tx, seq)?;
            }
            n += 1;
        } else {
            tx.insert(Table::Tokens, &key, &old)?;
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

/// The sequence number of the grant a [`Table::Flows`] row names (0 for a step marker).
pub(crate) fn flow_seq(row: &[u8]) -> u64 {
    row.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map_or(0, u64::from_le_bytes)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tx::memory_db as db;

    fn token(kind: TokenKind, family: u64) -> TokenRecord {
        TokenRecord {
            kind,
            signature: [1; 32],
            family,
            client_id: "c".into(),
            subject: "s".into(),
            scope: "offline".into(),
            audience: vec![],
            issued_at: 1,
            expires_at: 2,
            ext: String::new(),
        }
    }

    fn floor(tx: &mut Tx<'_>) -> u64 {
        tx.get(Table::SeqFloor, FLOOR_KEY).unwrap().map(|v| decode_u64(&v)).unwrap_or(1)
    }

    #[test]
    fn family_deletes_take_what_matches_and_leave_the_rest_as_it_was() {
        let db = db();
        let w = db.begin_write().unwrap();
        let mut tx = Tx::new(&w, true);
        // Family 10: two access tokens, a refresh token, a code, a spent marker still listed (as
        // rows written before spending unlisted them are), and an index row whose token is gone.
        for (seq, kind) in [
            (11, TokenKind::Access),
            (12, TokenKind::Refresh),
            (13, TokenKind::Access),
            (14, TokenKind::Code),
            (16, TokenKind::RefreshUsed),
        ] {
            put_family_token(&mut tx, seq, &token(kind, 10)).unwrap();
        }
        tx.insert(Table::Families, &family_key(10, 15), &[]).unwrap();
        let listed = |tx: &mut Tx<'_>| tx.keys_with_prefix(Table::Families, &10u64.to_be_bytes()).unwrap().len();

        // A rotation writing seq 20: the access tokens go, the floor stays (20 is above them).
        assert_eq!(delete_family(&mut tx, 10, Some(TokenKind::Access), 20).unwrap(), 2);
        assert!(get_record(&mut tx, 11).unwrap().is_none() && get_record(&mut tx, 13).unwrap().is_none());
        for (seq, kind) in [(12, TokenKind::Refresh), (14, TokenKind::Code), (16, TokenKind::RefreshUsed)] {
            assert_eq!(get_record(&mut tx, seq).unwrap(), Some(token(kind, 10)), "{seq}");
        }
        assert_eq!(floor(&mut tx), 1);
        // The dangling index row went too; the others stay listed.
        assert_eq!(listed(&mut tx), 3);

        // Revoking the family: everything live goes and the floor rises above it; the marker stays.
        assert_eq!(delete_family(&mut tx, 10, None, 0).unwrap(), 2);
        assert_eq!(get_record(&mut tx, 16).unwrap(), Some(token(TokenKind::RefreshUsed, 10)));
        assert_eq!(listed(&mut tx), 1);
        assert_eq!(floor(&mut tx), 15);

        // The log replays to the same rows (the taken-and-put-back ones included).
        let log = tx.finish();
        drop(w);
        let again = self::db();
        let w2 = again.begin_write().unwrap();
        let mut tx2 = Tx::new(&w2, false);
        tx2.replay(&log).unwrap();
        for seq in 10..=20 {
            let want = (seq == 16).then_some(TokenKind::RefreshUsed);
            assert_eq!(get_record(&mut tx2, seq).unwrap().map(|r| r.kind), want, "{seq}");
        }
        assert_eq!(floor(&mut tx2), 15);
    }

    #[test]
    fn a_corrupt_listed_token_fails_the_delete() {
        let db = db();
        let w = db.begin_write().unwrap();
        let mut tx = Tx::new(&w, false);
        tx.insert(Table::Tokens, &token_key(31), b"\x01garbage").unwrap();
        tx.insert(Table::Families, &family_key(30, 31), &[]).unwrap();
        assert!(delete_family(&mut tx, 30, None, 0).is_err());
    }

    #[test]
    fn a_rotation_raises_the_floor_for_tokens_above_the_new_ones() {
        let db = db();
        let w = db.begin_write().unwrap();
        let mut tx = Tx::new(&w, false);
        put_family_token(&mut tx, 50, &token(TokenKind::Access, 40)).unwrap();
        assert_eq!(delete_family(&mut tx, 40, Some(TokenKind::Access), 45).unwrap(), 1);
        assert_eq!(floor(&mut tx), 51);
    }
}
