//! Online backup of the embedded store (`POST /admin/backup`, `hydra backup`): taken while
//! tokens are issued without a single failed request, and every token acknowledged before it
//! began is active on a server started on the copy.

use crate::browser::still_serves;
use crate::harness::*;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn an_online_backup_under_load_restores_every_acknowledged_token() {
    if postgres() {
        // PostgreSQL is backed up with its own tools: said plainly.
        let r = Req::new("POST", "/admin/backup").json(&json!({"dir": "/tmp/hydra-backup-pg"})).send(api().admin);
        r.expect_error(501, "unsupported_request");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Opts::new("io_uring").dir(&data).start();
    let (id, secret) = cc_client(&s, "read");
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(Mutex::new(Vec::<(String, Instant)>::new()));
    let addr = s.public;
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (stop, failed, acked, id, secret) =
                (stop.clone(), failed.clone(), acked.clone(), id.clone(), secret.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let r = token_req(&id, &secret, &[]).send(addr);
                    if r.status == 200 {
                        let t = r.json()["access_token"].as_str().unwrap_or("").to_string();
                        acked.lock().unwrap().push((t, Instant::now()));
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    let copy = dir.path().join("copy");
    let began = Instant::now();
    let out = std::process::Command::new(BIN)
        .args(["backup", copy.to_str().unwrap(), "-e", &format!("http://{}", s.admin)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["files"].as_u64().unwrap() >= 5, "{report}");
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.join().unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "requests failed during the backup");
    // The destination must be new, absolute and without '..'.
    for bad in [copy.to_str().unwrap().to_string(), "relative/dir".into(), format!("{}/../x", dir.path().display())] {
        let r = Req::new("POST", "/admin/backup").json(&json!({ "dir": bad })).send(s.admin);
        assert!(r.status == 409 || r.status == 400, "{bad}: {}", r.status);
    }
    still_serves(&s);
    drop(s);

    let before: Vec<String> =
        acked.lock().unwrap().iter().filter(|(_, t)| *t < began).map(|(tok, _)| tok.clone()).collect();
    assert!(before.len() > 50, "load ran before the backup: {}", before.len());
    let restored = Opts::new("io_uring").dir(&copy).start();
    assert_eq!(
        count_active(restored.admin, &before),
        before.len(),
        "tokens acknowledged before the backup are missing"
    );
    // And it takes writes like any store.
    assert!(is_active(&restored, &access_token(&restored, &id, &secret)));
}
