//! The janitor's storage side: walks a table of one partition in bounded steps and deletes the
//! rows a caller-given rule calls dead (expired tokens and spent markers, finished flows, expired
//! sessions).
//!
//! Invariants: a step reads at most `limit` rows in a read transaction (never blocking writers),
//! then deletes the dead ones in one commit that asks the rule again on the stored value, so a
//! row rewritten between the read and the commit is judged on what it is now; deleting a token
//! also removes it from its family index and raises the partition's sequence floor, exactly as a
//! revocation does; a step returns a cursor (the last key read) so a walk is resumable and never
//! holds a transaction open between steps.

use crate::api::Step;
use crate::store::{Partition, Store};
use crate::tx::Table;
use crate::StoreError;
use std::ops::Bound;
use std::sync::Arc;

/// Decides from a row's key and value whether the janitor may delete it.
pub(crate) type DeadRule = Arc<dyn Fn(&[u8], &[u8]) -> bool + Send + Sync>;

/// Tables the janitor may delete from. Clients, keys, watermarks, the floor and consent
/// sessions (which the admin API lists and which revoke their tokens) are never swept.
fn sweepable(t: Table) -> Result<Table, StoreError> {
    match t {
        Table::Tokens | Table::Flows | Table::LoginSessions | Table::SessionIds => Ok(t),
        _ => Err(StoreError::Corrupt("table is not sweepable")),
    }
}

impl Store {
    /// One step of a walk over `table` in `partition`, after the key `after` (from the start
    /// when `None`); resolves once the deletions are durable.
    pub(crate) async fn sweep_table(
        &self,
        partition: u32,
        table: Table,
        after: Option<&[u8]>,
        limit: usize,
        dead: &DeadRule,
    ) -> Result<Step, StoreError> {
        let table = sweepable(table)?;
        let part: &Partition = self.part(partition)?;
        if table == Table::Tokens && !part.committer.staged().is_empty() {
            // Staged rows are not in the B-tree this step reads: one commit puts them there
            // (every commit applies the stage first), so the walk sees every token.
            part.committer.submit(|_| Ok(())).await?;
        }
        let mut step = Step::default();
        let mut doomed = Vec::new();
        {
            let rtx = part.read()?;
            let t = rtx.open_table(table.def())?;
            let lower = match after {
                Some(k) => Bound::Excluded(k),
                None => Bound::Unbounded,
            };
            for row in t.range::<&[u8]>((lower, Bound::Unbounded))? {
                if step.examined >= limit.max(1) {
                    break;
                }
                let (k, v) = row?;
                step.examined += 1;
                step.next = Some(k.value().to_vec());
                if dead(k.value(), v.value()) {
                    doomed.push(k.value().to_vec());
                }
            }
        }
        if step.examined < limit.max(1) {
            step.next = None;
        }
        if doomed.is_empty() {
            return Ok(step);
        }
        let rule = dead.clone();
        step.deleted = part
            .committer
            .submit(move |tx| {
                let mut n = 0;
                for k in &doomed {
                    let Some(v) = tx.get(table, k)? else { continue };
                    if !rule(k, &v) || (table == Table::Tokens && crate::rows::kept_for_its_grant(tx, k, &v)?) {
                        continue;
                    }
                    if table == Table::Tokens {
                        crate::rows::forget_token(tx, k, &v)?;
                    } else {
                        tx.remove(table, k)?;
                    }
                    n += 1;
                }
                Ok(n)
            })
            .await?;
        Ok(step)
    }
}
