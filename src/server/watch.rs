//! Loads clients, watermarks and keys into the in-memory snapshots, and keeps them in step with
//! writes made by other processes on the same database: a thread polls the store's change feed
//! every [`POLL`] and applies what changed.
//!
//! Invariants: a change is applied with the feed's version, which the feed publishes only after
//! the change is visible, so what is read here is at least as new as that version and never
//! overrides a newer write this process applied; watermarks only rise; a reader that fell behind
//! the feed reloads everything.

use crate::oauth2::client::StoredClient;
use crate::server::state::Shared;
use hydra_storage::{block_on, Backend, Change, Storage};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How often the change feed is read: the bound on how long a write made by another process
/// takes to be in force here (documented in `docs/design.md`).
pub const POLL: Duration = Duration::from_millis(250);

/// Clients as the snapshot holds them (id, decoded, exact bytes), and every watermark.
pub type Loaded = (Vec<(String, StoredClient, Vec<u8>)>, Vec<(String, Vec<u64>)>);

/// Every stored client and watermark, for the start-up snapshot.
pub fn load_clients(store: &Backend) -> Result<Loaded, String> {
    let mut clients = Vec::new();
    for (id, bytes) in block_on(store.load_clients()).map_err(|e| e.to_string())? {
        let stored = StoredClient::from_bytes(&bytes).map_err(|e| format!("client {id:?} is unreadable: {e}"))?;
        clients.push((id, stored, bytes));
    }
    let watermarks = block_on(store.load_watermarks()).map_err(|e| e.to_string())?;
    Ok((clients, watermarks))
}

/// Reads the change feed from `from` on and applies it; returns the version to read from next.
pub async fn catch_up(shared: &Shared, from: u64) -> Result<u64, String> {
    let store = &shared.store;
    let feed = store.changes_since(from).await.map_err(|e| e.to_string())?;
    let v = feed.version;
    let mut clients = BTreeSet::new();
    let mut marks = BTreeSet::new();
    let mut sets = BTreeSet::new();
    if feed.resync {
        clients.extend(shared.clients.load().order.iter().cloned());
        clients.extend(store.load_clients().await.map_err(|e| e.to_string())?.into_iter().map(|(id, _)| id));
        marks.extend(store.load_watermarks().await.map_err(|e| e.to_string())?.into_iter().map(|(id, _)| id));
        sets.extend(shared.keys.load().sets.keys().cloned());
        // Trust relationships live beside the sets, not in them: reloaded whatever is stored,
        // so a relationship deleted while this node was behind is dropped too.
        sets.insert(crate::server::keys::TRUST_SET.to_string());
        sets.extend(store.load_keys().await.map_err(|e| e.to_string())?.into_iter().map(|k| k.set));
    }
    for c in feed.changes {
        match c {
            Change::Client(id) => clients.insert(id),
            Change::Watermarks(id) => marks.insert(id),
            Change::Keys(set) => sets.insert(set),
        };
    }
    for id in clients {
        let stored = match store.get_client(&id).await.map_err(|e| e.to_string())? {
            Some(bytes) => match StoredClient::from_bytes(&bytes) {
                Ok(s) => Some((s, bytes)),
                Err(e) => {
                    crate::error!(
                        "a stored client is unreadable; keeping the previous version",
                        "client" = id,
                        "error" = e
                    );
                    continue;
                }
            },
            None => None,
        };
        shared.apply_client(&id, v, stored);
    }
    for id in marks {
        if let Some(m) = store.get_watermarks(&id).await.map_err(|e| e.to_string())? {
            shared.raise_watermarks(&id, &m);
        }
    }
    for set in sets {
        shared.reload_set(&set, v).await?;
    }
    Ok(v)
}

/// Starts the thread that follows the change feed until shutdown.
pub fn spawn(shared: &Arc<Shared>, from: u64) -> Result<std::thread::JoinHandle<()>, String> {
    let shared = shared.clone();
    std::thread::Builder::new()
        .name("change-feed".into())
        .spawn(move || {
            let mut at = from;
            let mut failing = false;
            while !shared.shutting_down.load(Ordering::Relaxed) {
                match block_on(catch_up(&shared, at)) {
                    Ok(v) => {
                        at = v;
                        failing = false;
                    }
                    Err(e) if !failing => {
                        crate::warn!("cannot read the change feed; retrying", "error" = e);
                        failing = true;
                    }
                    Err(_) => {}
                }
                std::thread::sleep(POLL);
            }
        })
        .map_err(|e| format!("cannot start the change-feed thread: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::jwk::Alg;
    use crate::oauth2::client::Client;
    use crate::server::state::test_shared;
    use hydra_storage::{KeyWrite, PutMode};

    fn client_bytes(id: &str, name: &str) -> Vec<u8> {
        let c = Client { client_id: id.into(), client_name: name.into(), ..Default::default() };
        StoredClient::new(c, None).to_bytes()
    }

    /// What another node does: writes straight to the shared database, never to this node's
    /// snapshots.
    #[test]
    fn writes_made_elsewhere_reach_the_snapshots_through_the_feed() {
        let shared = test_shared();
        let store = &shared.store;
        let at = block_on(catch_up(&shared, 0)).unwrap();
        block_on(store.put_client("app", client_bytes("app", "one"), PutMode::Create { marks: vec![] })).unwrap();
        let jwk = crate::server::keys::generate(Alg::ES256, Some("k1".into()), "sig").unwrap();
        let row = crate::server::keys::seal_row(&shared.key_seal, "custom", &jwk, 1).unwrap();
        block_on(store.write_keys("custom", KeyWrite::Add(vec![row]))).unwrap();
        assert!(!shared.clients.load().clients.contains_key("app"), "nothing applied before the feed is read");
        let at = block_on(catch_up(&shared, at)).unwrap();
        assert_eq!(shared.clients.load().clients["app"].stored.client.client_name, "one");
        assert_eq!(shared.keys.load().sets["custom"][0].jwk.kid, "k1");
        // An update, then a deletion with its watermarks, then the key set removed.
        let raw = shared.clients.load().clients["app"].raw.clone();
        block_on(store.put_client("app", client_bytes("app", "two"), PutMode::Replace { expected: raw })).unwrap();
        let at = block_on(catch_up(&shared, at)).unwrap();
        assert_eq!(shared.clients.load().clients["app"].stored.client.client_name, "two");
        block_on(store.delete_client("app", vec![7, 7, 7, 7])).unwrap();
        block_on(store.write_keys("custom", KeyWrite::DeleteSet)).unwrap();
        let at = block_on(catch_up(&shared, at)).unwrap();
        let snap = shared.clients.load();
        assert!(!snap.clients.contains_key("app") && !snap.order.contains("app"));
        assert!(snap.below_watermark("app", 2, 6), "the deletion's watermarks apply here too");
        assert!(!shared.keys.load().sets.contains_key("custom"));
        // Nothing new: nothing changes, the version stays.
        assert_eq!(block_on(catch_up(&shared, at)).unwrap(), at);
    }

    #[test]
    fn a_reader_the_feed_cannot_serve_reloads_everything() {
        let shared = test_shared();
        let store = &shared.store;
        block_on(store.put_client("kept", client_bytes("kept", "k"), PutMode::Create { marks: vec![] })).unwrap();
        // A client this node loaded (version 0, as at start-up) that the database no longer has.
        let ghost = StoredClient::new(Client { client_id: "ghost".into(), ..Default::default() }, None);
        let raw = ghost.to_bytes();
        shared.apply_client("ghost", 0, Some((ghost, raw)));
        let now = block_on(store.changes_since(0)).unwrap().version;
        let at = block_on(catch_up(&shared, now + 50)).unwrap();
        assert_eq!(at, now);
        let snap = shared.clients.load();
        assert!(snap.clients.contains_key("kept"));
        assert!(!snap.clients.contains_key("ghost"), "a resync drops what the database does not hold");
    }
}
