//! Process-wide state shared by all workers, and the per-worker context.
//!
//! Invariants: clients and token watermarks are read from an immutable snapshot swapped
//! atomically on change (`ArcSwap`), so the request path takes no lock to read a client; a
//! snapshot change is applied only after its write is durable, in the store's commit order
//! (versions), so the view never goes back in time; per-worker state (RNG, secret-digest cache,
//! partition cursor) lives in `Worker` and is never shared across threads.

use crate::config::Config;
use crate::oauth2::client::StoredClient;
use crate::rng::FastRng;
use crate::server::pool::Pool;
use crate::token::TokenKeys;
use arc_swap::ArcSwap;
use hydra_storage::{Backend, Storage};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// One client as the request path sees it.
#[derive(Debug)]
pub struct ClientEntry {
    pub stored: StoredClient,
    /// The exact stored bytes, the compare-and-set token of read-modify-write admin calls.
    pub raw: Vec<u8>,
    /// Commit-ordered version of the write that produced this entry; secret-digest caches are
    /// keyed by it, so a secret change invalidates them.
    pub version: u64,
}

/// The immutable view of clients and token watermarks. Persistent maps (structural sharing):
/// a write copies O(log n) nodes instead of the whole view, and listing walks the ordered ids
/// from the page's start instead of sorting every client (measured with 100,000 clients in
/// `loadtest/clients.sh`).
#[derive(Debug, Clone, Default)]
pub struct ClientSnapshot {
    pub clients: imbl::HashMap<String, Arc<ClientEntry>>,
    /// Every client id, in order: the admin list's pages.
    pub order: imbl::OrdSet<String>,
    /// Last applied version per id, including deleted ids, to order concurrent writes.
    versions: imbl::HashMap<String, u64>,
    /// Per-client token watermarks (one sequence number per partition).
    pub watermarks: imbl::HashMap<String, Arc<Vec<u64>>>,
    /// Every client's `allowed_cors_origins` pattern (its key), with how many clients list it:
    /// a CORS preflight asks whether some client allows an origin with two lookups.
    cors: imbl::HashMap<String, u32>,
}

impl ClientSnapshot {
    /// Builds the start-up view from stored clients (id, decoded, exact bytes) and watermarks.
    pub fn from_store(
        clients: Vec<(String, StoredClient, Vec<u8>)>,
        watermarks: Vec<(String, Vec<u64>)>,
    ) -> ClientSnapshot {
        let mut cors = imbl::HashMap::new();
        for (_, stored, _) in &clients {
            count_origins(&mut cors, &stored.client, true);
        }
        ClientSnapshot {
            cors,
            order: clients.iter().map(|(id, _, _)| id.clone()).collect(),
            clients: clients
                .into_iter()
                .map(|(id, stored, raw)| (id, Arc::new(ClientEntry { stored, raw, version: 0 })))
                .collect(),
            versions: imbl::HashMap::new(),
            watermarks: watermarks.into_iter().map(|(id, m)| (id, Arc::new(m))).collect(),
        }
    }

    /// Whether some client's `allowed_cors_origins` allows `origin`.
    pub fn cors_allows(&self, origin: &str) -> bool {
        crate::http::cors::candidate_keys(origin).iter().any(|k| self.cors.get(k).is_some_and(|n| *n > 0))
    }

    /// Up to `limit` clients after the id `after` (from the first when `None`), in id order, that
    /// pass `keep`; and whether more follow.
    pub fn page(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: impl Fn(&ClientEntry) -> bool,
    ) -> (Vec<Arc<ClientEntry>>, bool) {
        use std::ops::Bound;
        let lower = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.to_string()));
        let mut out = Vec::with_capacity(limit.min(64));
        for id in self.order.range((lower, Bound::Unbounded)) {
            let Some(e) = self.clients.get(id.as_str()) else { continue };
            if keep(e) {
                if out.len() == limit {
                    return (out, true);
                }
                out.push(e.clone());
            }
        }
        (out, false)
    }

    /// Whether a token of `client_id` with sequence `seq` in `partition` was revoked by a
    /// watermark (`DELETE /admin/oauth2/tokens` or client deletion).
    pub fn below_watermark(&self, client_id: &str, partition: u16, seq: u64) -> bool {
        self.watermarks.get(client_id).and_then(|m| m.get(partition as usize).copied()).is_some_and(|mark| seq < mark)
    }
}

pub struct Shared {
    pub config: Config,
    pub store: Arc<Backend>,
    pub clients: ArcSwap<ClientSnapshot>,
    /// JSON Web Key sets (ID-token and access-token signing keys, admin-managed sets).
    pub keys: ArcSwap<crate::server::key_snapshot::KeySnapshot>,
    /// Keys that seal stored JWKs, one per `secrets.system` entry.
    pub key_seal: Vec<[u8; 32]>,
    /// Keys that seal login and consent challenges and verifiers.
    pub flow_keys: Vec<[u8; 32]>,
    /// Keys that seal the login session cookie: from `secrets.cookie`, else `secrets.system`.
    pub cookie_keys: Vec<[u8; 32]>,
    /// The device flow's user-code key and its polling and guessing gates.
    pub device: crate::oauth2::device::Gates,
    /// The token hooks' threads, when a hook is configured.
    pub hooks: Option<crate::server::hook_pool::HookPool>,
    /// One block of counters per worker, summed on scrape.
    pub metrics: Vec<Arc<crate::server::metrics::WorkerMetrics>>,
    pub token_keys: TokenKeys,
    /// Seals and opens the session claims of token records (`oauth2.session.encrypt_at_rest`).
    pub at_rest: crate::oauth2::at_rest::AtRest,
    /// Key of the per-worker client-secret digest caches.
    pub secret_cache_key: ring::hmac::Key,
    pub pool: Pool,
    /// A PBKDF2 hash with the configured parameters, verified when a client id is unknown.
    pub dummy_hash: Arc<str>,
    pub shutting_down: AtomicBool,
    /// The background janitor's counters.
    pub janitor: crate::server::metrics::JanitorStats,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Shared {
    /// Applies a durable client write (`Some`) or deletion (`None`) to the snapshot, unless a
    /// later write of the same id was applied already.
    pub fn apply_client(&self, id: &str, version: u64, stored: Option<(StoredClient, Vec<u8>)>) {
        let entry = stored.map(|(s, raw)| Arc::new(ClientEntry { stored: s, raw, version }));
        self.clients.rcu(|old| {
            let mut next = ClientSnapshot::clone(old);
            if next.versions.get(id).is_some_and(|v| *v >= version) {
                return next;
            }
            next.versions.insert(id.to_string(), version);
            if let Some(old) = next.clients.get(id).cloned() {
                count_origins(&mut next.cors, &old.stored.client, false);
            }
            if let Some(e) = &entry {
                count_origins(&mut next.cors, &e.stored.client, true);
            }
            match &entry {
                Some(e) => {
                    next.clients.insert(id.to_string(), e.clone());
                    next.order.insert(id.to_string());
                }
                None => {
                    next.clients.remove(id);
                    next.order.remove(id);
                }
            };
            next
        });
    }

    /// Raises a client's watermarks (element-wise maximum, so concurrent raises commute).
    pub fn raise_watermarks(&self, id: &str, marks: &[u64]) {
        self.clients.rcu(|old| {
            let mut next = ClientSnapshot::clone(old);
            let merged: Vec<u64> = match next.watermarks.get(id) {
                Some(cur) => (0..marks.len().max(cur.len()))
                    .map(|i| marks.get(i).copied().unwrap_or(0).max(cur.get(i).copied().unwrap_or(0)))
                    .collect(),
                None => marks.to_vec(),
            };
            next.watermarks.insert(id.to_string(), Arc::new(merged));
            next
        });
    }
}

/// Adds (or removes) a client's CORS origin patterns to (from) the index.
fn count_origins(index: &mut imbl::HashMap<String, u32>, client: &crate::oauth2::client::Client, add: bool) {
    for o in &client.allowed_cors_origins {
        let Ok(p) = crate::http::cors::OriginPattern::parse(o) else { continue };
        let key = p.key();
        let n = index.get(&key).copied().unwrap_or(0);
        let n = if add { n + 1 } else { n.saturating_sub(1) };
        if n == 0 {
            index.remove(&key);
        } else {
            index.insert(key, n);
        }
    }
}

/// Per-worker context: owned by one thread.
pub struct Worker {
    pub shared: Arc<Shared>,
    pub index: usize,
    /// The partition this worker creates new grant families in.
    home: u32,
    pub rng: RefCell<FastRng>,
    /// This worker's counters (`shared.metrics[index]`, or a private block if the index is out
    /// of range).
    pub metrics: Arc<crate::server::metrics::WorkerMetrics>,
    /// Group commit of this worker's token inserts.
    pub batcher: std::rc::Rc<crate::server::batch::Batcher>,
    /// client id → (client version, HMAC of the last secret that verified).
    pub secret_cache: RefCell<HashMap<String, (u64, [u8; 32])>>,
    /// JWT access tokens this worker verified lately (`key_snapshot::JwtRefs`).
    pub jwt_refs: RefCell<crate::server::key_snapshot::JwtRefs>,
    /// Live connections, for graceful shutdown.
    pub connections: Cell<usize>,
    /// Set once this worker has seen the shutdown flag.
    pub stopping: Cell<bool>,
    /// Tasks waiting for shutdown (idle reads, accept loops), by waiter id; an entry lives only
    /// while its `StopWait` does, so the map stays as small as the number of waiting tasks.
    stop_wakers: RefCell<HashMap<u64, std::task::Waker>>,
    next_waiter: Cell<u64>,
    /// Request ids this worker generates: a random prefix of its own and a counter (see
    /// [`Worker::next_request_id`]).
    request_ids: RequestIds,
}

/// Unique request ids without a cryptographic generator: a request id correlates log lines and
/// is echoed to the caller, it guards nothing. An id is a random 32-bit prefix drawn once per
/// worker, then a bijective mix (splitmix64's finaliser) of a per-worker counter, so ids never
/// repeat within a worker and workers' ids differ by prefix. `loadtest/callgrind.sh` counted the
/// previous id (12 bytes of the worker's HMAC-based CSPRNG) at 5,400 instructions, 13 % of an
/// introspection.
struct RequestIds {
    prefix: u32,
    key: u64,
    next: Cell<u64>,
}

impl RequestIds {
    fn next(&self) -> [u8; 12] {
        let n = self.next.get();
        self.next.set(n.wrapping_add(1));
        let mut z = n ^ self.key;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let mut id = [0u8; 12];
        id[..4].copy_from_slice(&self.prefix.to_be_bytes());
        id[4..].copy_from_slice(&z.to_be_bytes());
        id
    }
}

impl Worker {
    /// A token record's `ext` as it is stored (`oauth2.session.encrypt_at_rest`): sealed to its
    /// partition and grant family under a key of its own, or as it is when empty or off.
    pub fn seal_ext(
        &self,
        partition: u32,
        family: u64,
        plain: String,
    ) -> Result<String, crate::oauth2::error::OAuthError> {
        if plain.is_empty() {
            return Ok(plain);
        }
        let random = self.rng.borrow_mut().next32();
        let mut salt = [0u8; crate::oauth2::at_rest::SALT_LEN];
        salt.copy_from_slice(&random[..crate::oauth2::at_rest::SALT_LEN]);
        self.shared.at_rest.seal(partition, family, plain, salt).map_err(|_| ext_unusable())
    }

    /// [`Worker::open_ext`], and whether the stored value may go into another record of the
    /// grant as it is ([`crate::oauth2::at_rest::AtRest::open_keeping`]).
    pub fn open_ext_keeping<'a>(
        &self,
        partition: u32,
        family: u64,
        stored: &'a str,
    ) -> Result<(std::borrow::Cow<'a, str>, bool), crate::oauth2::error::OAuthError> {
        self.shared.at_rest.open_keeping(partition, family, stored).map_err(|_| ext_unusable())
    }

    /// A stored `ext` in the clear (one written before sealing, or with it off, as it is).
    pub fn open_ext<'a>(
        &self,
        partition: u32,
        family: u64,
        stored: &'a str,
    ) -> Result<std::borrow::Cow<'a, str>, crate::oauth2::error::OAuthError> {
        self.shared.at_rest.open(partition, family, stored).map_err(|_| ext_unusable())
    }

    pub fn new(shared: Arc<Shared>, index: usize) -> Result<Worker, String> {
        let partitions = shared.store.partition_count().max(1);
        // With more workers than partitions, workers share a partition: its committer stays the
        // single writer and each worker's batch is one job of the shared commit.
        let home = (index % partitions as usize) as u32;
        let mut rng = FastRng::new().map_err(|_| "the operating system has no randomness to give".to_string())?;
        let seed = rng.next32();
        let word = |i: usize| seed.get(i..i + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes).unwrap_or(0);
        let request_ids = RequestIds { prefix: word(0) as u32, key: word(8), next: Cell::new(word(16)) };
        let metrics = shared.metrics.get(index).cloned().unwrap_or_default();
        Ok(Worker {
            metrics,
            shared,
            index,
            home,
            rng: RefCell::new(rng),
            batcher: Default::default(),
            secret_cache: RefCell::new(HashMap::new()),
            jwt_refs: RefCell::default(),
            connections: Cell::new(0),
            stopping: Cell::new(false),
            stop_wakers: RefCell::new(HashMap::new()),
            next_waiter: Cell::new(0),
            request_ids,
        })
    }

    /// The partition for a new grant family: always this worker's home partition. Measured
    /// (loadtest/run.sh, issuance, 1 worker, 64 connections): one partition per worker 35.4k
    /// req/s, four 25.8k, sixteen 10.6k; every extra partition splits the batch and adds a commit
    /// (an fsync costs ~300 µs of CPU on this class of machine, `storage/examples/commit_cost`).
    pub fn next_partition(&self) -> u32 {
        self.home
    }

    /// The partition that owns everything keyed by `key` (a flow id, a subject): fixed by the
    /// key alone (FNV-1a), so every request about it meets the same committer.
    pub fn partition_for(&self, key: &str) -> u32 {
        hydra_storage::partition_of(self.shared.store.partition_count(), key)
    }

    /// A fresh request id (12 bytes).
    pub fn next_request_id(&self) -> [u8; 12] {
        self.request_ids.next()
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Resolves when this worker starts shutting down.
    pub fn stopped(&self) -> StopWait<'_> {
        let id = self.next_waiter.get();
        self.next_waiter.set(id.wrapping_add(1));
        StopWait { w: self, id }
    }

    pub fn signal_stop(&self) {
        self.stopping.set(true);
        let wakers: Vec<_> = self.stop_wakers.borrow_mut().drain().map(|(_, w)| w).collect();
        for w in wakers {
            w.wake();
        }
    }
}

pub struct StopWait<'a> {
    w: &'a Worker,
    id: u64,
}

impl std::future::Future for StopWait<'_> {
    type Output = ();
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.w.stopping.get() {
            std::task::Poll::Ready(())
        } else {
            let mut map = self.w.stop_wakers.borrow_mut();
            match map.get_mut(&self.id) {
                Some(w) if w.will_wake(cx.waker()) => {}
                Some(w) => w.clone_from(cx.waker()),
                None => {
                    map.insert(self.id, cx.waker().clone());
                }
            }
            std::task::Poll::Pending
        }
    }
}

impl Drop for StopWait<'_> {
    fn drop(&mut self) {
        if let Ok(mut map) = self.w.stop_wakers.try_borrow_mut() {
            map.remove(&self.id);
        }
    }
}

/// A stored session that does not open (its secret was removed from `secrets.system`, or the
/// row was altered): the server's fault, never the client's.
fn ext_unusable() -> crate::oauth2::error::OAuthError {
    crate::oauth2::error::OAuthError::hint(
        crate::oauth2::error::ErrorCode::ServerError,
        "The stored session of this grant could not be decrypted.",
    )
}

/// Milliseconds since the process's first call, on a monotonic clock (the device flow's gates).
pub fn monotonic_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_millis() as u64
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A `Shared` on an in-memory store with four partitions, for unit tests.
#[cfg(test)]
pub(crate) fn test_shared() -> Arc<Shared> {
    let config = Config::load(&[], false, &|k| match k {
        "SECRETS_SYSTEM" => Some("test-secret-0123456789".into()),
        "DSN" => Some("memory".into()),
        _ => None,
    })
    .unwrap();
    let store = Backend::from(
        hydra_storage::Store::memory(&hydra_storage::StoreOptions { partitions: 4, ..Default::default() }).unwrap(),
    );
    Arc::new(Shared {
        token_keys: TokenKeys::new(&config.secrets.system),
        at_rest: crate::oauth2::at_rest::AtRest::new(&config.secrets.system, config.oauth2.encrypt_at_rest),
        secret_cache_key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[1; 32]),
        clients: ArcSwap::from_pointee(ClientSnapshot::default()),
        keys: ArcSwap::from_pointee(crate::server::key_snapshot::KeySnapshot::default()),
        key_seal: vec![[7; 32]],
        flow_keys: vec![[8; 32]],
        cookie_keys: vec![[8; 32]],
        device: crate::oauth2::device::Gates::new("a-test-secret-of-16"),
        hooks: None,
        metrics: vec![Default::default()],
        store: Arc::new(store),
        pool: Pool::new(1).unwrap(),
        dummy_hash: Arc::from(crate::oauth2::hasher::dummy_hash()),
        shutting_down: AtomicBool::new(false),
        janitor: Default::default(),
        config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    fn shared() -> Arc<Shared> {
        test_shared()
    }

    #[test]
    fn stop_waiters_do_not_accumulate_and_all_wake() {
        let w = Worker::new(shared(), 0).unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..1000 {
            let mut f = std::pin::pin!(w.stopped());
            assert_eq!(f.as_mut().poll(&mut cx), Poll::Pending);
            assert_eq!(f.as_mut().poll(&mut cx), Poll::Pending);
        }
        assert_eq!(w.stop_wakers.borrow().len(), 0, "dropped waiters leave no waker behind");
        let mut held = Box::pin(w.stopped());
        assert_eq!(held.as_mut().poll(&mut cx), Poll::Pending);
        assert_eq!(w.stop_wakers.borrow().len(), 1);
        w.signal_stop();
        assert_eq!(held.as_mut().poll(&mut cx), Poll::Ready(()));
        assert_eq!(Box::pin(w.stopped()).as_mut().poll(&mut cx), Poll::Ready(()));
    }

    #[test]
    fn each_worker_writes_to_its_home_partition() {
        let s = shared();
        let a = Worker::new(s.clone(), 0).unwrap();
        let b = Worker::new(s, 1).unwrap();
        assert_eq!((a.next_partition(), a.next_partition()), (0, 0));
        assert_eq!((b.next_partition(), b.next_partition()), (1, 1));
        let c = Worker::new(a.shared.clone(), 5).unwrap();
        assert_eq!(c.next_partition(), 1, "more workers than partitions share them");
    }

    #[test]
    fn request_ids_never_repeat_within_a_worker_and_differ_between_workers() {
        let s = shared();
        let (a, b) = (Worker::new(s.clone(), 0).unwrap(), Worker::new(s, 1).unwrap());
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100_000 {
            assert!(seen.insert(a.next_request_id()), "a repeated id");
        }
        let (x, y) = (a.next_request_id(), b.next_request_id());
        assert_ne!(x[..4], y[..4], "each worker draws its own prefix");
        assert!(seen.iter().all(|id| id[..4] == x[..4]), "one worker, one prefix");
    }

    #[test]
    fn pages_walk_ids_in_order_from_the_cursor() {
        let s = shared();
        for (i, id) in ["d", "a", "c", "b", "e"].iter().enumerate() {
            let c = crate::oauth2::client::Client {
                client_id: id.to_string(),
                owner: if i % 2 == 0 { "even".into() } else { "odd".into() },
                ..Default::default()
            };
            let st = StoredClient::new(c, None);
            let raw = st.to_bytes();
            s.apply_client(id, i as u64 + 1, Some((st, raw)));
        }
        let snap = s.clients.load();
        let ids = |v: &[Arc<ClientEntry>]| v.iter().map(|e| e.stored.client.client_id.clone()).collect::<Vec<_>>();
        let (p, more) = snap.page(None, 2, |_| true);
        assert_eq!((ids(&p), more), (vec!["a".to_string(), "b".into()], true));
        let (p, more) = snap.page(Some("b"), 2, |_| true);
        assert_eq!((ids(&p), more), (vec!["c".to_string(), "d".into()], true));
        let (p, more) = snap.page(Some("d"), 2, |_| true);
        assert_eq!((ids(&p), more), (vec!["e".to_string()], false));
        let (p, more) = snap.page(None, 5, |e| e.stored.client.owner == "even");
        assert_eq!((ids(&p), more), (vec!["c".to_string(), "d".into(), "e".into()], false));
        s.apply_client("c", 99, None);
        let (p, _) = s.clients.load().page(Some("b"), 1, |_| true);
        assert_eq!(ids(&p), vec!["d".to_string()], "a deleted id leaves the order");
    }

    #[test]
    fn snapshot_applies_writes_in_version_order_and_watermarks_only_rise() {
        let s = shared();
        let mk = |name: &str| {
            let c =
                crate::oauth2::client::Client { client_id: "a".into(), client_name: name.into(), ..Default::default() };
            let st = StoredClient::new(c, None);
            let raw = st.to_bytes();
            (st, raw)
        };
        s.apply_client("a", 2, Some(mk("second")));
        s.apply_client("a", 1, Some(mk("first")));
        assert_eq!(s.clients.load().clients["a"].stored.client.client_name, "second");
        s.apply_client("a", 3, None);
        assert!(!s.clients.load().clients.contains_key("a"));
        s.apply_client("a", 2, Some(mk("stale")));
        assert!(!s.clients.load().clients.contains_key("a"), "a stale write cannot resurrect a deleted client");
        s.raise_watermarks("a", &[5, 1]);
        s.raise_watermarks("a", &[3, 7]);
        let snap = s.clients.load();
        assert!(snap.below_watermark("a", 0, 4));
        assert!(!snap.below_watermark("a", 0, 5));
        assert!(snap.below_watermark("a", 1, 6));
        assert!(!snap.below_watermark("b", 1, 0));
    }
}
