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

mod access_token;
mod auth;
pub mod authorize;
mod backchannel;
mod background;
mod backup;
mod batch;
mod client_keys;
mod clients;
mod code_grant;
mod cors;
mod device;
mod flows;
mod hook_pool;
mod hooks;
mod idp;
mod introspect;
mod jwt_bearer;
pub mod keys;
mod listen;
mod logout;
pub mod metrics;
mod notify;
mod oidc;
pub mod outbound;
mod registration;
mod request_object;
mod revoke;
mod sessions;
pub mod tls;
mod token;
mod trust;
pub mod watch;
mod worker;

use crate::cli::{ServeArgs, ServeMode};
use crate::config::{Config, Dsn, LogFormat};
use crate::{error, info, warn};
use hydra_storage::{block_on, Storage, Store, StoreOptions};
use router::Api;
use state::{ClientSnapshot, Shared};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

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
    crate::log::init(config.log.level, config.log.format == LogFormat::Json);
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
        partitions: config.engine.partitions,
        durability: match config.engine.durability {
            crate::config::Durability::Immediate => hydra_storage::Durability::Immediate,
            crate::config::Durability::None => hydra_storage::Durability::None,
        },
        cache_bytes: config.engine.cache_bytes,
        wal_bytes: config.engine.wal_bytes,
        faults: background::fault_switch()?,
    };
    let store: hydra_storage::Backend = match &config.dsn {
        Dsn::Memory => {
            warn!("DSN=memory: every token and client is lost when the process exits");
            Store::memory(&opts).map(Into::into)
        }
        Dsn::Redb(dir) => Store::open(dir, &opts).map(Into::into),
        Dsn::Postgres(d) => {
            if config.secrets.system.is_empty() {
                // A secret generated here would differ on every node and every start.
                return Err("secrets.system is required with PostgreSQL: every node must share it".into());
            }
            let pg = crate::pg::open(d, config.engine.partitions)?;
            info!(
                "using PostgreSQL",
                "host" = d.host,
                "database" = d.dbname,
                "lanes" = crate::pg::layout(d).0,
                "connections" = {
                    let (lanes, readers, writers) = crate::pg::layout(d);
                    lanes * (readers + writers + 1)
                },
                "partitions" = pg.partition_count()
            );
            Ok(pg.into())
        }
    }
    .map_err(|e| e.to_string())?;
    if config.engine.durability == crate::config::Durability::None && matches!(config.dsn, Dsn::Redb(_)) {
        warn!("engine.durability=none: acknowledged writes can be LOST on a crash or power failure; for benchmarks and development only");
    }
    if config.secrets.system.is_empty() {
        config.secrets.system = vec![dev_secret(store.embedded().and_then(|s| s.dir()))?];
    }
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
    let (mut clients, watermarks) = watch::load_clients(&store)?;
    let key_seal = keys::seal_keys(&config.secrets.system);
    let resealed = clients::reseal_secrets(&store, &key_seal, &mut clients)?;
    if resealed > 0 {
        info!("sealed client_secret_jwt secrets again with the first system secret", "clients" = resealed);
    }
    let mut key_snapshot = keys::load(&store, &key_seal)?;
    for set in keys::ensure_defaults(&store, &key_seal, &mut key_snapshot)? {
        info!("generated a signing key", "set" = set, "alg" = "RS256");
    }
    let workers = config.engine.workers;
    let cfg = &config;
    let tls = |files: &Option<crate::config::TlsFiles>| -> Result<Option<monoio_rustls::TlsAcceptor>, String> {
        files.as_ref().map(|f| tls::server_config(f).map(monoio_rustls::TlsAcceptor::from)).transpose()
    };
    let mut apis = Vec::new();
    if mode != ServeMode::Admin {
        apis.push((Api::Public, cfg.serve.public.addr(), tls(&cfg.serve.tls_public)?));
    }
    if mode != ServeMode::Public {
        apis.push((Api::Admin, cfg.serve.admin.addr(), tls(&cfg.serve.tls_admin)?));
    }
    // Bind every worker's listeners up front so that port 0 resolves once and every worker
    // shares the resolved port.
    // Installed before the listeners are announced: a SIGTERM that arrives right after
    // "listening" is queued and handled as a graceful stop, not the default kill.
    let mut sig = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let mut bound: Vec<(Api, SocketAddr)> = Vec::new();
    let mut per_worker: Vec<Vec<worker::Listener>> = (0..workers).map(|_| Vec::new()).collect();
    for (api, addr, acceptor) in &apis {
        let mut resolved: Option<SocketAddr> = None;
        for slot in per_worker.iter_mut() {
            let target = match resolved {
                Some(a) => a,
                None => {
                    let a = listen::resolve(addr)?;
                    listen::ensure_free(a).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
                    a
                }
            };
            let l = listen::bind_reuseport(target, cfg.engine.listen_backlog)
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
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
    let cache_key = crate::token::derive_key(&config.secrets.system[0], "hydra-rs/secret-cache/v1");
    let shared = Arc::new(Shared {
        token_keys: crate::token::TokenKeys::new(&config.secrets.system),
        at_rest: crate::oauth2::at_rest::AtRest::new(&config.secrets.system, config.oauth2.encrypt_at_rest),
        secret_cache_key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &cache_key),
        clients: arc_swap::ArcSwap::from_pointee(ClientSnapshot::from_store(clients, watermarks)),
        keys: arc_swap::ArcSwap::from_pointee(key_snapshot),
        key_seal,
        flow_keys: crate::oauth2::flow::keys(&config.secrets.system),
        cookie_keys: crate::oauth2::flow::keys(if config.secrets.cookie.is_empty() {
            &config.secrets.system
        } else {
            &config.secrets.cookie
        }),
        device: crate::oauth2::device::Gates::new(&config.secrets.system[0]),
        hooks: hook_pool::HookPool::start(config.oauth2.token_hook.clone(), config.oauth2.refresh_token_hook.clone())
            .map_err(|e| format!("cannot start the token hook threads: {e}"))?,
        metrics: (0..workers).map(|_| Default::default()).collect(),
        store: Arc::new(store),
        pool: pool::Pool::new(2).map_err(|e| format!("cannot start helper threads: {e}"))?,
        dummy_hash: {
            use ring::rand::SecureRandom;
            let mut salt = [0u8; 16];
            ring::rand::SystemRandom::new().fill(&mut salt).map_err(|_| "no randomness available".to_string())?;
            // With the configured hasher, so an unknown client costs what a known one does.
            Arc::from(config.oauth2.hasher.hash(&salt, &salt))
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
                    notify::notify("STOPPING=1");
                    info!("shutting down: no new connections, finishing in-flight requests");
                    shared.shutting_down.store(true, Ordering::SeqCst);
                }
            })
            .map_err(|e| e.to_string())?;
        handle
    };
    let janitor = background::spawn_janitor(&shared)?;
    let watcher = watch::spawn(&shared, feed_from)?;
    let allowed = worker::allowed_cpus();
    let cpus = match &shared.config.engine.cpus {
        None => allowed,
        Some(chosen) => {
            if let Some(c) = chosen.iter().find(|c| !allowed.is_empty() && !allowed.contains(c)) {
                return Err(format!("engine.cpus: CPU {c} is not one this process may run on (allowed: {allowed:?})"));
            }
            chosen.clone()
        }
    };
    let mut threads = Vec::new();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<bool>();
    for (index, listeners) in per_worker.into_iter().enumerate() {
        let shared = shared.clone();
        let cpu = cpus.get(index % cpus.len().max(1)).copied();
        let ready = ready_tx.clone();
        let t = std::thread::Builder::new()
            .name(format!("worker-{index}"))
            .spawn(move || worker::run_worker(shared, index, cpu, listeners, ready))
            .map_err(|e| e.to_string())?;
        threads.push(t);
    }
    drop(ready_tx);
    // Ready for systemd once every worker has built its runtime (a worker that cannot, for
    // example without io_uring, fails the start instead).
    let started = (0..threads.len()).all(|_| ready_rx.recv_timeout(Duration::from_secs(30)) == Ok(true));
    if started {
        notify::notify(&format!("READY=1\nMAINPID={}\nSTATUS=serving", std::process::id()));
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_configured_log_size_default_is_the_stores() {
        assert_eq!(crate::config::DEFAULT_WAL_BYTES, hydra_storage::DEFAULT_WAL_BYTES);
    }
}
