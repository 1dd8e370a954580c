//! The server's background threads besides the workers: the janitor's paced walks, and the
//! storage fault switch of the I/O-error tests (installed only when its environment variable is
//! set, so production has no switch on the write path).

use crate::server::state::{self, Shared};
use crate::{info, warn};
use hydra_storage::{block_on, Storage};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Environment variable naming a file whose content injects storage faults (`disk_full`,
/// `sync_fails`, anything else: none), read every 20 ms. A test hook for the I/O-error tests,
/// never a configuration key: without it there is no switch on the write path at all.
pub const FAULT_FILE_ENV: &str = "HYDRA_TEST_FAULT_FILE";

pub(super) fn fault_switch() -> Result<Option<Arc<hydra_storage::Faults>>, String> {
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
pub(super) fn spawn_janitor(shared: &Arc<Shared>) -> Result<Option<std::thread::JoinHandle<()>>, String> {
    let every = shared.config.engine.janitor_interval;
    if every.is_zero() {
        return Ok(None);
    }
    let shared = shared.clone();
    let policy = crate::janitor::Policy {
        tokens: true,
        requests: true,
        grants: true,
        keep_secs: 0,
        access_lifespan: None,
        refresh_lifespan: None,
        flow_lifespan: shared.config.ttl.login_consent_request.as_secs() as i64,
        batch: shared.config.engine.janitor_batch,
        limit: None,
        pause: Duration::from_millis(10),
    };
    // Several processes may share one database: a pass runs only on the node holding the
    // janitor's lease. The holder renews it every pass; it lapses two intervals (at least two
    // seconds) after the holder's last pass, and another node takes over.
    let holder = {
        use ring::rand::SecureRandom;
        let mut id = [0u8; 8];
        ring::rand::SystemRandom::new().fill(&mut id).map_err(|_| "no randomness available".to_string())?;
        format!("{:016x}-{}", u64::from_le_bytes(id), std::process::id())
    };
    let lease_secs = (2 * every.as_secs()).max(2) as i64;
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
                next = std::time::Instant::now() + every;
                match block_on(shared.store.janitor_lease(&holder, lease_secs)) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        warn!("janitor lease unavailable; retrying at the next interval", "error" = e);
                        continue;
                    }
                }
                let t0 = std::time::Instant::now();
                match crate::janitor::run(&shared.store, &policy, state::unix_now(), stop) {
                    Ok(r) => {
                        if let Some(v) = r.trust_version {
                            if let Err(e) = block_on(shared.reload_set(crate::server::keys::TRUST_SET, v)) {
                                warn!("trust relationships could not be reloaded", "error" = e);
                            }
                        }
                        shared.janitor.record(&r);
                        info!(
                            "janitor pass",
                            "examined" = r.examined,
                            "tokens" = r.tokens,
                            "flows" = r.flows,
                            "login_sessions" = r.login_sessions,
                            "grants" = r.grants,
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
