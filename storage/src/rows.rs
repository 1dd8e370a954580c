//! Token rows and what every path that writes them must keep true together: a grant's live
//! tokens are listed in its family row; deleting a token (revocation, rotation, the janitor)
//! takes it out of that row and raises the partition's sequence floor above it, so a restart
//! never hands its number out again; spent codes and refresh tokens stay as markers until they
//! expire.

use crate::records::{decode_token, encode_token, TokenKind, TokenRecord, TokenView};
use crate::tx::{decode_u64, decode_u64_be, token_key, Table, Tx, FLOOR_KEY};
use crate::StoreError;

type Result<T> = std::result::Result<T, StoreError>;

/// A grant's row in [`Table::Families`]: key the family (u64 BE), value the sequence numbers of
/// its live tokens (u64 LE each). A job loads it once and saves it once, so a rotation reads
/// and writes one index row where one row per token cost a range scan, two removals and two
/// inserts (`SCENARIO=refresh loadtest/threads.sh`, docs/design.md §7, "Grant families").
pub(crate) struct Family {
    id: u64,
    seqs: Vec<u64>,
    changed: bool,
}

impl Family {
    pub(crate) fn load(tx: &mut Tx<'_>, id: u64) -> Result<Family> {
        let seqs = match tx.get(Table::Families, &id.to_be_bytes())? {
            Some(v) if v.len() % 8 == 0 => v.chunks_exact(8).map(decode_u64).collect(),
            Some(_) => return Err(StoreError::Corrupt("family row")),
            None => Vec::new(),
        };
        Ok(Family { id, seqs, changed: false })
    }

    /// The row of `id` in `slot`: the one there if it is that grant's, else the one there is
    /// saved and `id`'s loaded in its place (rows of one grant come together in every caller).
    fn switch<'a>(tx: &mut Tx<'_>, slot: &'a mut Option<Family>, id: u64) -> Result<&'a mut Family> {
        match slot.take() {
            Some(f) if f.id == id => Ok(slot.insert(f)),
            other => {
                if let Some(f) = other {
                    f.save(tx)?;
                }
                Ok(slot.insert(Family::load(tx, id)?))
            }
        }
    }

    fn add(&mut self, seq: u64) {
        if !self.seqs.contains(&seq) {
            self.seqs.push(seq);
            self.changed = true;
        }
    }

    fn forget(&mut self, seq: u64) {
        let before = self.seqs.len();
        self.seqs.retain(|s| *s != seq);
        self.changed |= self.seqs.len() != before;
    }

    /// Writes the row back if it changed; a grant with no live token left has no row.
    pub(crate) fn save(self, tx: &mut Tx<'_>) -> Result<()> {
        let key = self.id.to_be_bytes();
        match (self.changed, self.seqs.is_empty()) {
            (false, _) => {}
            (true, true) => {
                tx.remove(Table::Families, &key)?;
            }
            (true, false) => {
                let row: Vec<u8> = self.seqs.iter().flat_map(|s| s.to_le_bytes()).collect();
                tx.insert(Table::Families, &key, &row)?;
            }
        }
        Ok(())
    }
}

/// Stores new tokens and lists them in their families' rows; `family` is a row the caller has
/// already loaded (saved here), so a rotation touches its row once.
pub(crate) fn put_tokens(tx: &mut Tx<'_>, mut family: Option<Family>, tokens: &[(u64, TokenRecord)]) -> Result<()> {
    for (seq, rec) in tokens {
        tx.insert(Table::Tokens, &token_key(*seq), &encode_token(rec)?)?;
        Family::switch(tx, &mut family, rec.family)?.add(*seq);
    }
    family.map_or(Ok(()), |f| f.save(tx))
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
/// Each listed token is taken out and put back when it is not one to delete: the row lists
/// live tokens only, and a rotation finds only the access token there (its refresh token left
/// the row when it was spent), so the common case is one B-tree descent per token, not a read
/// and then a removal. The token row, not the family row, says what a token is.
pub(crate) fn delete_family(
    tx: &mut Tx<'_>,
    family: &mut Family,
    only: Option<TokenKind>,
    kept_above: u64,
) -> Result<usize> {
    let mut n = 0;
    for seq in family.seqs.clone() {
        let key = token_key(seq);
        let Some(old) = tx.take(Table::Tokens, &key)? else {
            family.forget(seq);
            continue;
        };
        let kind = TokenView::new(&old)?.get().kind.native();
        let live = matches!(kind, TokenKind::Access | TokenKind::Refresh | TokenKind::Code);
        if live && only.is_none_or(|o| o == kind) {
            family.forget(seq);
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

/// Revokes a whole grant: [`delete_family`] of every live kind, the row saved.
pub(crate) fn revoke_family(tx: &mut Tx<'_>, family: u64) -> Result<usize> {
    let mut row = Family::load(tx, family)?;
    let n = delete_family(tx, &mut row, None, 0)?;
    row.save(tx)?;
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

/// Marks a record spent in place (same key, new kind) and takes it out of its family's row: the
/// marker only has to be found by its own key (to recognise a replay), and the row keeps
/// listing live tokens only, so a long rotation chain does not make every rotation slower.
pub(crate) fn spend(tx: &mut Tx<'_>, family: &mut Family, seq: u64, rec: &TokenRecord, kind: TokenKind) -> Result<()> {
    tx.insert(Table::Tokens, &token_key(seq), &encode_token(&rec.spent_as(kind))?)?;
    family.forget(seq);
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

/// Deletes a token row the way a revocation does: out of its family's row, and the sequence
/// floor raised above it. `key` and `value` are the row as stored.
pub(crate) fn forget_token(tx: &mut Tx<'_>, key: &[u8], value: &[u8]) -> Result<()> {
    let seq = decode_u64_be(key);
    if let Ok(rec) = decode_token(value) {
        let mut row = Family::load(tx, rec.family)?;
        row.forget(seq);
        row.save(tx)?;
    }
    tx.remove(Table::Tokens, key)?;
    raise_floor(tx, seq)
}

/// Whether a token row the janitor found dead must stay a while: a spent code whose grant still
/// has tokens in the table. Userinfo reads the grant's claims from the code's record
/// (`code_grant::userinfo_claims`), so the marker outlives its own expiry until the grant's
/// access and refresh tokens are gone (a late replay of the code still revokes them, too).
/// A grant made without a code (implicit) starts from a record born spent, which its row lists:
/// only the grant's other tokens count.
pub(crate) fn kept_for_its_grant(tx: &mut Tx<'_>, key: &[u8], value: &[u8]) -> Result<bool> {
    let Ok(rec) = decode_token(value) else { return Ok(false) };
    if rec.kind != TokenKind::CodeUsed {
        return Ok(false);
    }
    let own = decode_u64_be(key);
    for seq in Family::load(tx, rec.family)?.seqs.into_iter().filter(|s| *s != own) {
        if tx.get(Table::Tokens, &token_key(seq))?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The one-time upgrade's flag in each partition's [`Table::State`]: its family index is one
/// row per grant.
pub(crate) const FAMILY_ROWS_FLAG: &[u8] = b"flag:family_rows_v1";

/// One step of the one-time upgrade of a partition's family index from one row per token
/// (family ‖ sequence, both BE, 16 bytes → nothing) to one row per grant: folds the earlier
/// rows among up to `limit` keys after `after` into their grants' rows, and returns where to go
/// on, or `None` once the table is done (the flag is then set in the same commit). Each step is
/// one commit and folding is idempotent, so a crash between steps leaves rows the next start
/// folds in.
pub(crate) fn upgrade_families(tx: &mut Tx<'_>, after: Option<&[u8]>, limit: usize) -> Result<Option<Vec<u8>>> {
    let keys = tx.keys_after(Table::Families, after, limit)?;
    let mut row: Option<Family> = None;
    for k in &keys {
        if k.len() != 16 {
            continue;
        }
        let (family, seq) = (decode_u64_be(&k[..8]), decode_u64_be(&k[8..]));
        Family::switch(tx, &mut row, family)?.add(seq);
        tx.remove(Table::Families, k)?;
    }
    if let Some(r) = row {
        r.save(tx)?;
    }
    if keys.len() < limit {
        tx.insert(Table::State, FAMILY_ROWS_FLAG, &[1])?;
        return Ok(None);
    }
    Ok(keys.last().cloned())
}

/// Key–value rows as stored.
pub type Rows = Vec<(Vec<u8>, Vec<u8>)>;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::tx::memory_db as db;

    /// A token of `family` with fixed fields (the store never checks expiry).
    pub(crate) fn token(kind: TokenKind, family: u64) -> TokenRecord {
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

    fn listed(tx: &mut Tx<'_>, family: u64) -> Vec<u64> {
        Family::load(tx, family).unwrap().seqs
    }

    /// Lists `seq` in `family`'s row without a token behind it (a dangling entry).
    fn list(tx: &mut Tx<'_>, family: u64, seq: u64) {
        let mut f = Family::load(tx, family).unwrap();
        f.add(seq);
        f.save(tx).unwrap();
    }

    #[test]
    fn family_deletes_take_what_matches_and_leave_the_rest_as_it_was() {
        let db = db();
        let w = db.begin_write().unwrap();
        let mut tx = Tx::new(&w, true);
        // Family 10: two access tokens, a refresh token, a code, a spent marker still listed (as
        // rows folded in from the earlier layout can be), and an entry whose token is gone.
        let tokens: Vec<_> = [
            (11, TokenKind::Access),
            (12, TokenKind::Refresh),
            (13, TokenKind::Access),
            (14, TokenKind::Code),
            (16, TokenKind::RefreshUsed),
        ]
        .into_iter()
        .map(|(seq, kind)| (seq, token(kind, 10)))
        .collect();
        put_tokens(&mut tx, None, &tokens).unwrap();
        list(&mut tx, 10, 15);
        assert_eq!(listed(&mut tx, 10), [11, 12, 13, 14, 16, 15]);

        // A rotation writing seq 20: the access tokens go, the floor stays (20 is above them).
        let mut f = Family::load(&mut tx, 10).unwrap();
        assert_eq!(delete_family(&mut tx, &mut f, Some(TokenKind::Access), 20).unwrap(), 2);
        f.save(&mut tx).unwrap();
        assert!(get_record(&mut tx, 11).unwrap().is_none() && get_record(&mut tx, 13).unwrap().is_none());
        for (seq, kind) in [(12, TokenKind::Refresh), (14, TokenKind::Code), (16, TokenKind::RefreshUsed)] {
            assert_eq!(get_record(&mut tx, seq).unwrap(), Some(token(kind, 10)), "{seq}");
        }
        assert_eq!(floor(&mut tx), 1);
        // The dangling entry went too; the others stay listed.
        assert_eq!(listed(&mut tx, 10), [12, 14, 16]);

        // Revoking the family: everything live goes and the floor rises above it; the marker stays.
        assert_eq!(revoke_family(&mut tx, 10).unwrap(), 2);
        assert_eq!(get_record(&mut tx, 16).unwrap(), Some(token(TokenKind::RefreshUsed, 10)));
        assert_eq!(listed(&mut tx, 10), [16]);
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
        assert_eq!(listed(&mut tx2, 10), [16]);
    }

    #[test]
    fn a_rotation_reads_and_writes_one_row_and_the_last_token_out_removes_it() {
        let db = db();
        let w = db.begin_write().unwrap();
        let mut tx = Tx::new(&w, false);
        put_tokens(&mut tx, None, &[(2, token(TokenKind::Access, 1)), (3, token(TokenKind::Refresh, 1))]).unwrap();
        // Rotate 3 into 4 and 5, as the store's exchange does.
        let rec = get_record(&mut tx, 3).unwrap().unwrap();
        let mut f = Family::load(&mut tx, 1).unwrap();
        spend(&mut tx, &mut f, 3, &rec, TokenKind::RefreshUsed).unwrap();
        assert_eq!(delete_family(&mut tx, &mut f, Some(TokenKind::Access), 5).unwrap(), 1);
        put_tokens(&mut tx, Some(f), &[(4, token(TokenKind::Access, 1)), (5, token(TokenKind::Refresh, 1))]).unwrap();
        assert_eq!(listed(&mut tx, 1), [4, 5]);
        assert_eq!(get_record(&mut tx, 3).unwrap().map(|r| r.kind), Some(TokenKind::RefreshUsed));
        assert!(get_record(&mut tx, 2).unwrap().is_none());
        // The janitor deleting both tokens leaves no row behind.
        for seq in [4u64, 5] {
            let v = tx.get(Table::Tokens, &token_key(seq)).unwrap().unwrap();
            forget_token(&mut tx, &token_key(seq), &v).unwrap();
        }
        assert!(tx.get(Table::Families, &1u64.to_be_bytes()).unwrap().is_none());
        assert_eq!(floor(&mut tx), 6);
    }

    #[test]
    fn a_corrupt_listed_token_or_family_row_fails_the_delete() {
        let db = db();
        let w = db.begin_write().unwrap();
        let mut tx = Tx::new(&w, false);
        tx.insert(Table::Tokens, &token_key(31), b"\x01garbage").unwrap();
        list(&mut tx, 30, 31);
        assert!(revoke_family(&mut tx, 30).is_err());
        tx.insert(Table::Families, &40u64.to_be_bytes(), &[1, 2, 3]).unwrap();
        assert!(revoke_family(&mut tx, 40).is_err());
    }

    #[test]
    fn a_rotation_raises_the_floor_for_tokens_above_the_new_ones() {
        let db = db();
        let w = db.begin_write().unwrap();
        let mut tx = Tx::new(&w, false);
        put_tokens(&mut tx, None, &[(50, token(TokenKind::Access, 40))]).unwrap();
        let mut f = Family::load(&mut tx, 40).unwrap();
        assert_eq!(delete_family(&mut tx, &mut f, Some(TokenKind::Access), 45).unwrap(), 1);
        assert_eq!(floor(&mut tx), 51);
    }

    /// A row of the earlier layout: family ‖ sequence, both BE.
    fn legacy_key(family: u64, seq: u64) -> Vec<u8> {
        [family.to_be_bytes(), seq.to_be_bytes()].concat()
    }

    #[test]
    fn the_upgrade_folds_rows_per_token_into_rows_per_grant_in_steps() {
        let db = db();
        let w = db.begin_write().unwrap();
        let mut tx = Tx::new(&w, true);
        // Family 7 half folded already (a crash between steps), families 8 and 9 not at all.
        list(&mut tx, 7, 71);
        for (f, s) in [(7, 72), (8, 81), (8, 82), (8, 83), (9, 91)] {
            tx.insert(Table::Families, &legacy_key(f, s), &[]).unwrap();
        }
        for (seq, kind, f) in [(71, TokenKind::Access, 7), (72, TokenKind::Refresh, 7), (81, TokenKind::Access, 8)] {
            tx.insert(Table::Tokens, &token_key(seq), &encode_token(&token(kind, f)).unwrap()).unwrap();
        }
        let mut steps = 0;
        let mut after = None;
        loop {
            steps += 1;
            match upgrade_families(&mut tx, after.as_deref(), 2).unwrap() {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert!(steps >= 3, "{steps}");
        assert_eq!(listed(&mut tx, 7), [71, 72]);
        assert_eq!(listed(&mut tx, 8), [81, 82, 83]);
        assert_eq!(listed(&mut tx, 9), [91]);
        assert!(tx.keys_with_prefix(Table::Families, b"").unwrap().iter().all(|k| k.len() == 8));
        assert!(tx.get(Table::State, FAMILY_ROWS_FLAG).unwrap().is_some());
        // Running it again changes nothing; revoking an upgraded grant finds its tokens.
        assert_eq!(upgrade_families(&mut tx, None, 100).unwrap(), None);
        assert_eq!(listed(&mut tx, 7), [71, 72]);
        assert_eq!(listed(&mut tx, 8), [81, 82, 83]);
        assert_eq!(revoke_family(&mut tx, 7).unwrap(), 2);
        assert_eq!(revoke_family(&mut tx, 8).unwrap(), 1);
        assert!(tx.get(Table::Families, &7u64.to_be_bytes()).unwrap().is_none());
        assert!(tx.get(Table::Families, &8u64.to_be_bytes()).unwrap().is_none());
    }
}
