//! The runtime: one monoio worker per core, each with its own SO_REUSEPORT listeners on the
//! public and admin ports; start-up, signals and graceful shutdown.
//!
//! Invariants: a connection lives on the worker that accepted it; workers never block (PBKDF2
//! runs on the helper pool, fsync on the store's committer threads); on SIGINT/SIGTERM workers
//! stop accepting, finish in-flight requests, close idle connections, and the store's committers
//! flush what is queued before the process exits.

pub mod common;
pub mod conn;
pub mod cookies;
pub mod dispatch;
pub mod key_snapshot;
pub mod pool;
pub mod respond;
pub mod router;
pub mod state;

mod auth;
pub mod authorize;
mod batch;
mod clients;
mod code_grant;
mod flows;
mod introspect;
pub mod keys;
pub mod metrics;
mod oidc;
pub mod outbound;
mod revoke;
mod sessions;
pub mod tls;
mod token;
pub mod watch;

use crate::cli::{ServeArgs, ServeMode};
use crate::config::{Config, Driver, Dsn, LogFormat};
use crate::{error, info, warn};
use hydra_storage::{block_on, Storage, Store, StoreOptions};
use router::Api;
use state::{ClientSnapshot, Shared, Worker};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Connections one worker serves at once; more wait in the listen backlog. Bounds memory (each
/// connection holds at least its 8 KiB buffers) under a connection flood.
const MAX_CONNECTIONS_PER_WORKER: usize = 16_384;

pub use dispatch::VERSION;

/// Runs `hydra serve …` until a signal stops it; returns the exit code.
pub fn serve(mode: ServeMode, args: &ServeArgs) -> i32 {
    let config = match Config::load(&args.config, args.dev, &|k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    crate::log::init(config.log_level, config.log_format == LogFormat::Json);
    // Log lines are written by a thread of their own: a worker never blocks in write(2) on a
    // slow or full stderr (measured in loadtest/runs/, issuance at info vs warn).
    if let Err(e) = crate::log::start_writer() {
        eprintln!("cannot start the log writer thread: {e}");
        return 1;
    }
    let code = match start(mode, config) {
        Ok(code) => code,
        Err(e) => {
            error!("the server could not start", "error" = e);
            1
        }
    };
    crate::log::sync();
    code
}

fn start(mode: ServeMode, mut config: Config) -> Result<i32, String> {
    if config.dev {
        warn!("running in --dev mode: cookies are not Secure and http URLs are allowed; never use this in production");
    }
    if mode != ServeMode::All && config.dsn == Dsn::Memory {
        return Err("the in-memory DSN only works with `hydra serve all`: each process would have its own store".into());
    }
    let opts = StoreOptions {
        partitions: config.partitions,
        durability: match config.durability {
            crate::config::Durability::Immediate => hydra_storage::Durability::Immediate,
            crate::config::Durability::None => hydra_storage::Durability::None,
        },
        cache_bytes: config.cache_bytes,
        wal_bytes: config.wal_bytes,
        faults: fault_switch()?,
    };
    let store = match &config.dsn {
        Dsn::Memory => {
            warn!("DSN=memory: every token and client is lost when the process exits");
            Store::memory(&opts)
        }
        Dsn::Redb(dir) => Store::open(dir, &opts),
    }
    .map_err(|e| e.to_string())?;
    if config.durability == crate::config::Durability::None && config.dsn != Dsn::Memory {
        warn!("engine.durability=none: acknowledged writes can be LOST on a crash or power failure; for benchmarks and development only");
    }
    if config.secrets_system.is_empty() {
        config.secrets_system = vec![dev_secret(store.dir())?];
    }
    let store = hydra_storage::Backend::from(store);
    // What a crash cut short (a consent revocation) or an earlier release did not write is
    // finished before anything is served.
    let recovered = block_on(store.recover()).map_err(|e| e.to_string())?;
    if recovered.revocations > 0 {
        info!("finished consent revocations interrupted by a crash", "grants" = recovered.revocations);
    }
    if recovered.upgraded > 0 {
        info!("indexed the login sessions of an earlier release by session id", "sessions" = recovered.upgraded);
    }
    // The feed's version before the load: every change after it is applied again by the
    // change-feed thread, so nothing written meanwhile is missed.
    let feed_from = block_on(store.changes_since(0)).map_err(|e| e.to_string())?.version;
    let (clients, watermarks) = watch::load_clients(&store)?;
    let key_seal = keys::seal_keys(&config.secrets_system);
    let mut key_snapshot = keys::load(&store, &key_seal)?;
    for set in keys::ensure_defaults(&store, &key_seal, &mut key_snapshot)? {
        info!("generated a signing key", "set" = set, "alg" = "RS256");
    }
    let workers = config.workers;
    let cfg = &config;
    let tls = |files: &Option<crate::config::TlsFiles>| -> Result<Option<monoio_rustls::TlsAcceptor>, String> {
        files.as_ref().map(|f| tls::server_config(f).map(monoio_rustls::TlsAcceptor::from)).transpose()
    };
    let mut apis = Vec::new();
    if mode != ServeMode::Admin {
        apis.push((Api::Public, cfg.public.addr(), tls(&cfg.tls_public)?));
    }
    if mode != ServeMode::Public {
        apis.push((Api::Admin, cfg.admin.addr(), tls(&cfg.tls_admin)?));
    }
    // Bind every worker's listeners up front so that port 0 resolves once and every worker
    // shares the resolved port.
    // Installed before the listeners are announced: a SIGTERM that arrives right after
    // "listening" is queued and handled as a graceful stop, not the default kill.
    let mut sig = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let mut bound: Vec<(Api, SocketAddr)> = Vec::new();
    let mut per_worker: Vec<Vec<Listener>> = (0..workers).map(|_| Vec::new()).collect();
    for (api, addr, acceptor) in &apis {
        let mut resolved: Option<SocketAddr> = None;
        for slot in per_worker.iter_mut() {
            let target = match resolved {
                Some(a) => a,
                None => resolve(addr)?,
            };
            let l = bind_reuseport(target).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            if resolved.is_none() {
                resolved = Some(l.local_addr().map_err(|e| e.to_string())?);
            }
            slot.push((*api, l, acceptor.clone()));
        }
        let name = match api {
            Api::Public => "public",
            Api::Admin => "admin",
        };
        if let Some(a) = resolved {
            if acceptor.is_none() && !cfg.dev {
                warn!(
                    "serving plain HTTP: configure serve.tls (or put a TLS-terminating proxy in front)",
                    "api" = name
                );
            }
            info!("listening", "api" = name, "addr" = a, "tls" = acceptor.is_some());
            bound.push((*api, a));
        }
    }
    let find = |want: Api| bound.iter().find(|(api, _)| *api == want).map(|(_, a)| *a);
    config.adopt_bound(find(Api::Public), find(Api::Admin));
    let cache_key = crate::token::derive_key(&config.secrets_system[0], "hydra-rs/secret-cache/v1");
    let shared = Arc::new(Shared {
        token_keys: crate::token::TokenKeys::new(&config.secrets_system),
        secret_cache_key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &cache_key),
        clients: arc_swap::ArcSwap::from_pointee(ClientSnapshot::from_store(clients, watermarks)),
        keys: arc_swap::ArcSwap::from_pointee(key_snapshot),
        key_seal,
        flow_keys: crate::oauth2::flow::keys(&config.secrets_system),
        metrics: (0..workers).map(|_| Default::default()).collect(),
        store: Arc::new(store),
        pool: pool::Pool::new(2).map_err(|e| format!("cannot start helper threads: {e}"))?,
        dummy_hash: {
            use ring::rand::SecureRandom;
            let mut salt = [0u8; 16];
            ring::rand::SystemRandom::new().fill(&mut salt).map_err(|_| "no randomness available".to_string())?;
            Arc::from(crate::oauth2::hasher::hash_secret(&salt, config.pbkdf2_iterations, &salt))
        },
        shutting_down: Default::default(),
        janitor: Default::default(),
        config,
    });
    let signals = {
        let shared = shared.clone();
        let handle = sig.handle();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                if sig.forever().next().is_some() {
                    info!("shutting down: no new connections, finishing in-flight requests");
                    shared.shutting_down.store(true, Ordering::SeqCst);
                }
            })
            .map_err(|e| e.to_string())?;
        handle
    };
    let janitor = spawn_janitor(&shared)?;
    let watcher = watch::spawn(&shared, feed_from)?;
    let cpus = allowed_cpus();
    let mut threads = Vec::new();
    for (index, listeners) in per_worker.into_iter().enumerate() {
        let shared = shared.clone();
        let cpu = cpus.get(index % cpus.len().max(1)).copied();
        let t = std::thread::Builder::new()
            .name(format!("worker-{index}"))
            .spawn(move || run_worker(shared, index, cpu, listeners))
            .map_err(|e| e.to_string())?;
        threads.push(t);
    }
    let mut code = 0;
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                error!("worker failed", "error" = e);
                code = 1;
            }
            Err(_) => code = 1,
        }
    }
    signals.close();
    shared.shutting_down.store(true, Ordering::SeqCst);
    let _ = watcher.join();
    if let Some(j) = janitor {
        let _ = j.join();
    }
    for p in 0..shared.store.partition_count() {
        if let Some(st) = shared.store.embedded().and_then(|s| s.partition_stats(p)) {
            crate::debug!(
                "partition commit stats",
                "partition" = p,
                "commits" = st.commits.load(Ordering::Relaxed),
                "jobs" = st.jobs.load(Ordering::Relaxed)
            );
        }
    }
    // Dropping the last reference to the store joins its committers after a final flush.
    drop(shared);
    info!("shutdown complete");
    Ok(code)
}

/// Environment variable naming a file whose content injects storage faults (`disk_full`,
/// `sync_fails`, anything else: none), read every 20 ms. A test hook for the I/O-error tests,
/// never a configuration key: without it there is no switch on the write path at all.
pub const FAULT_FILE_ENV: &str = "HYDRA_TEST_FAULT_FILE";

fn fault_switch() -> Result<Option<Arc<hydra_storage::Faults>>, String> {
    use hydra_storage::FaultMode;
    let Some(path) = std::env::var_os(FAULT_FILE_ENV) else { return Ok(None) };
    warn!(
        "storage fault injection is on (a test hook); never run production like this",
        "file" = std::path::Path::new(&path).display()
    );
    let faults = Arc::new(hydra_storage::Faults::default());
    let switch = faults.clone();
    std::thread::Builder::new()
        .name("fault-switch".into())
        .spawn(move || loop {
            let mode = match std::fs::read_to_string(&path).as_deref().map(str::trim) {
                Ok("disk_full") => FaultMode::DiskFull,
                Ok("sync_fails") => FaultMode::SyncFails,
                _ => FaultMode::None,
            };
            switch.set(mode);
            std::thread::sleep(Duration::from_millis(20));
        })
        .map_err(|e| e.to_string())?;
    Ok(Some(faults))
}

/// The background janitor: one walk of the store every `engine.janitor.interval`, paced so it
/// takes a small share of a partition's writer; stops with the server.
fn spawn_janitor(shared: &Arc<Shared>) -> Result<Option<std::thread::JoinHandle<()>>, String> {
    let every = shared.config.janitor_interval;
    if every.is_zero() {
        return Ok(None);
    }
    let shared = shared.clone();
    let policy = crate::janitor::Policy {
        tokens: true,
        requests: true,
        keep_secs: 0,
        access_lifespan: None,
        refresh_lifespan: None,
        flow_lifespan: shared.config.ttl_login_consent_request.as_secs() as i64,
        batch: shared.config.janitor_batch,
        limit: None,
        pause: Duration::from_millis(10),
    };
    let t = std::thread::Builder::new()
        .name("janitor".into())
        .spawn(move || {
            let stop = &shared.shutting_down;
            let mut next = std::time::Instant::now() + every;
            while !stop.load(Ordering::Relaxed) {
                if std::time::Instant::now() < next {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                let t0 = std::time::Instant::now();
                match crate::janitor::run(&shared.store, &policy, state::unix_now(), stop) {
                    Ok(r) => {
                        shared.janitor.record(&r);
                        info!(
                            "janitor pass",
                            "examined" = r.examined,
                            "tokens" = r.tokens,
                            "flows" = r.flows,
                            "login_sessions" = r.login_sessions,
                            "ms" = t0.elapsed().as_millis()
                        );
                    }
                    Err(e) => warn!("janitor pass failed; retrying at the next interval", "error" = e),
                }
                next = std::time::Instant::now() + every;
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(Some(t))
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs()
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve {addr}"))
}

fn bind_reuseport(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

/// Generates (once) and stores the system secret used by `--dev` without configuration.
fn dev_secret(dir: Option<&std::path::Path>) -> Result<String, String> {
    use base64::Engine;
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| "no randomness available".to_string())?;
    let fresh = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let Some(dir) = dir else {
        warn!("--dev without secrets.system: generated an ephemeral system secret (memory store)");
        return Ok(fresh);
    };
    let path = dir.join("system-secret");
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 16 => {
            info!("--dev: using the system secret stored in the data directory", "path" = path.display());
            return Ok(s.trim().to_string());
        }
        Ok(_) => return Err(format!("{} holds a secret shorter than 16 characters", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(fresh.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    info!("--dev: generated a system secret and stored it with mode 0600", "path" = path.display());
    Ok(fresh)
}

/// The CPUs this process may run on (respects `taskset` and cgroup cpusets), in order.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `cpu_set_t` is plain data for which all-zero is a valid (empty) value, and
    // `sched_getaffinity` writes at most `size_of::<cpu_set_t>()` bytes into it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is this thread; the size matches the buffer passed.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Vec::new();
    }
    // SAFETY: `CPU_ISSET` only reads the set initialised above, for indices below CPU_SETSIZE.
    (0..libc::CPU_SETSIZE as usize).filter(|c| unsafe { libc::CPU_ISSET(*c, &set) }).collect()
}

/// One bound listener of a worker, with its TLS acceptor when the API serves HTTPS.
type Listener = (Api, std::net::TcpListener, Option<monoio_rustls::TlsAcceptor>);

fn run_worker(shared: Arc<Shared>, index: usize, cpu: Option<usize>, listeners: Vec<Listener>) -> Result<(), String> {
    // One worker per core: pin to the index-th CPU this process is allowed on.
    if let Some(cpu) = cpu {
        if monoio::utils::bind_to_cpu_set([cpu]).is_err() {
            warn!("could not pin worker to its core", "worker" = index, "cpu" = cpu);
        }
    }
    let driver = match shared.config.driver {
        Driver::Auto if monoio::utils::detect_uring() => Driver::IoUring,
        Driver::Auto => Driver::Legacy,
        d => d,
    };
    let w = Rc::new(Worker::new(shared, index)?);
    crate::log::set_batched(true);
    let ran = match driver {
        Driver::IoUring => {
            let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .with_entries(1024)
                .enable_timer()
                .build()
                .map_err(|e| format!("io_uring runtime: {e} (set ENGINE_DRIVER=legacy to use epoll)"))?;
            info!("worker started", "worker" = index, "driver" = "io_uring");
            rt.block_on(worker_main(w, listeners))
        }
        _ => {
            let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .enable_timer()
                .build()
                .map_err(|e| format!("epoll runtime: {e}"))?;
            info!("worker started", "worker" = index, "driver" = "legacy (epoll)");
            rt.block_on(worker_main(w, listeners))
        }
    };
    crate::log::flush_local();
    ran
}

/// How often a worker hands its buffered log lines to the writer thread when they do not fill a
/// buffer first: the longest a request's line waits.
const LOG_FLUSH_EVERY: Duration = Duration::from_millis(10);

async fn worker_main(w: Rc<Worker>, listeners: Vec<Listener>) -> Result<(), String> {
    {
        let w = w.clone();
        monoio::spawn(async move {
            while !w.shared.shutting_down.load(Ordering::Relaxed) {
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
            w.signal_stop();
        });
    }
    monoio::spawn(async {
        loop {
            monoio::time::sleep(LOG_FLUSH_EVERY).await;
            crate::log::flush_local();
        }
    });
    for (api, std_listener, acceptor) in listeners {
        let l = monoio::net::TcpListener::from_std(std_listener).map_err(|e| e.to_string())?;
        let w = w.clone();
        monoio::spawn(async move {
            let mut last_warning: Option<std::time::Instant> = None;
            loop {
                if w.connections.get() >= MAX_CONNECTIONS_PER_WORKER {
                    // Leave further connections in the kernel's backlog until some close.
                    monoio::time::sleep(Duration::from_millis(5)).await;
                    if w.stopping.get() {
                        break;
                    }
                    continue;
                }
                let accepted = monoio::select! {
                    r = l.accept() => Some(r),
                    _ = w.stopped() => None,
                };
                match accepted {
                    None => break,
                    Some(Ok((stream, _peer))) => {
                        let _ = stream.set_nodelay(true);
                        w.connections.set(w.connections.get() + 1);
                        let w = w.clone();
                        let acceptor = acceptor.clone();
                        monoio::spawn(async move {
                            // A bug must cost one connection, never the worker and its listeners.
                            if CatchUnwind(Box::pin(serve_conn(stream, &w, api, acceptor))).await.is_err() {
                                error!("a connection handler panicked; the connection was closed", "worker" = w.index);
                            }
                            w.connections.set(w.connections.get() - 1);
                        });
                    }
                    Some(Err(e)) => {
                        // Out of file descriptors and similar: back off instead of spinning, and
                        // say so at most once a second.
                        let now = std::time::Instant::now();
                        if last_warning.is_none_or(|t: std::time::Instant| now - t >= Duration::from_secs(1)) {
                            warn!("accept failed", "error" = e);
                            last_warning = Some(now);
                        }
                        monoio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        });
    }
    w.stopped().await;
    let grace = std::time::Instant::now() + Duration::from_secs(10);
    while w.connections.get() > 0 && std::time::Instant::now() < grace {
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Serves one accepted connection, after a TLS handshake when the API has TLS. The handshake
/// must finish within the header timeout, so a client that opens a connection and stalls in
/// the handshake holds it no longer than one that stalls in a request head.
async fn serve_conn(stream: monoio::net::TcpStream, w: &Worker, api: Api, tls: Option<monoio_rustls::TlsAcceptor>) {
    let Some(acceptor) = tls else {
        return conn::serve(stream, w, api).await;
    };
    let handshake = monoio::time::timeout(w.config().header_timeout, acceptor.accept(stream));
    let stopped = monoio::select! {
        r = handshake => Some(r),
        _ = w.stopped() => None,
    };
    match stopped {
        Some(Ok(Ok(tls_stream))) => conn::serve(tls_stream, w, api).await,
        // A failed or slow handshake is the client's problem; nothing to answer over TLS.
        Some(Ok(Err(e))) => crate::debug!("TLS handshake failed", "error" = e),
        Some(Err(_)) | None => {}
    }
}

/// Turns a panic inside a future into an error result (monoio does not catch panics in tasks:
/// one would unwind out of the worker's `block_on`).
struct CatchUnwind<F>(std::pin::Pin<Box<F>>);

impl<F: std::future::Future> std::future::Future for CatchUnwind<F> {
    type Output = Result<F::Output, ()>;
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(_) => std::task::Poll::Ready(Err(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_log_size_default_is_the_stores() {
        assert_eq!(crate::config::DEFAULT_WAL_BYTES, hydra_storage::DEFAULT_WAL_BYTES);
    }

    #[test]
    fn catch_unwind_turns_a_panic_into_an_error() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().build().unwrap();
        let r = rt.block_on(CatchUnwind(Box::pin(async {
            let v: Vec<u8> = Vec::new();
            v[usize::from(v.is_empty())]
        })));
        assert!(r.is_err());
        let ok = rt.block_on(CatchUnwind(Box::pin(async { 7 })));
        assert_eq!(ok, Ok(7));
    }
}
