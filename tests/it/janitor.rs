//! The janitor: the server's background pass deletes expired tokens and leaves live ones, and
//! `hydra janitor` cleans a stopped server's data directory, compacts it, and answers sensibly
//! while a server holds the directory.

use crate::harness::*;
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

pub fn janitor_cli(args: &[&str]) -> (bool, String) {
    let o = Command::new(BIN).arg("janitor").args(args).env_remove("DSN").output().expect("run hydra janitor");
    (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr))
}

fn scraped(s: &Server, line_start: &str) -> u64 {
    metric(&scrape(s), line_start).unwrap_or(0.0) as u64
}

#[test]
fn background_janitor_deletes_expired_tokens_and_keeps_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let s = Opts::new("legacy")
        .dir(dir.path())
        .env("TTL_ACCESS_TOKEN", "1s")
        .env("ENGINE_JANITOR_INTERVAL", "1s")
        .env("ENGINE_JANITOR_BATCH_SIZE", "7")
        .start();
    let (short_id, short_secret) = cc_client(&s, "");
    let (long_id, long_secret) = cc_client(&s, "");
    Req::new("PUT", &format!("/admin/clients/{long_id}/lifespans"))
        .json(&json!({"client_credentials_grant_access_token_lifespan": "1h"}))
        .send(s.admin)
        .expect(200);
    // Long-lived tokens of a client whose tokens are then revoked in bulk (a watermark): dead
    // before their expiry, so swept too.
    let (gone_id, gone_secret) = cc_client(&s, "");
    Req::new("PUT", &format!("/admin/clients/{gone_id}/lifespans"))
        .json(&json!({"client_credentials_grant_access_token_lifespan": "1h"}))
        .send(s.admin)
        .expect(200);
    let short: Vec<String> = (0..40).map(|_| access_token(&s, &short_id, &short_secret)).collect();
    let long: Vec<String> = (0..10).map(|_| access_token(&s, &long_id, &long_secret)).collect();
    let gone: Vec<String> = (0..15).map(|_| access_token(&s, &gone_id, &gone_secret)).collect();
    Req::new("DELETE", &format!("/admin/oauth2/tokens?client_id={gone_id}")).send(s.admin).expect(204);
    let deadline = Instant::now() + Duration::from_secs(20);
    while scraped(&s, "hydra_janitor_deleted_total{kind=\"tokens\"}") < 55 {
        assert!(Instant::now() < deadline, "the janitor did not delete the dead tokens:\n{}", s.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(scraped(&s, "hydra_janitor_deleted_total{kind=\"tokens\"}"), 55, "only the expired and revoked ones");
    for t in &gone {
        assert!(!is_active(&s, t));
    }
    for t in &long {
        assert!(is_active(&s, t), "a live token was swept");
    }
    for t in &short {
        assert!(!is_active(&s, t));
    }
    assert!(scraped(&s, "hydra_janitor_passes_total") >= 1);
    assert!(s.log().contains("janitor pass"), "{}", s.log());
    s.stop();
}

#[test]
fn janitor_command_cleans_a_stopped_server_and_compacts_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // On PostgreSQL the command cleans the database the server used (and compacts nothing).
    let dsn = if postgres() { pg_database(Some(&data)) } else { format!("redb://{}", data.display()) };
    let s = Opts::new("legacy").dir(&data).env("TTL_ACCESS_TOKEN", "1s").env("ENGINE_JANITOR_INTERVAL", "0s").start();
    let (id, secret) = cc_client(&s, "");
    let keep_id = {
        let (k, ks) = cc_client(&s, "");
        Req::new("PUT", &format!("/admin/clients/{k}/lifespans"))
            .json(&json!({"client_credentials_grant_access_token_lifespan": "1h"}))
            .send(s.admin)
            .expect(200);
        (k, ks)
    };
    for _ in 0..300 {
        token(&s, &id, &secret, &[]);
    }
    let kept = access_token(&s, &keep_id.0, &keep_id.1);
    // While the server runs it holds the directory: the command says so and succeeds. A
    // database is shared: the command works while servers run (here keeping every token that
    // expired within the hour, so the counts below stay exact whatever the machine's speed).
    if postgres() {
        let (ok, out) = janitor_cli(&[&dsn, "--tokens", "--keep-if-younger", "1h"]);
        assert!(
            ok && out.contains("Examined") && out.contains("deleted 0 tokens") && !out.contains("compaction"),
            "{out}"
        );
    } else {
        let (ok, out) = janitor_cli(&[&dsn, "--tokens"]);
        assert!(ok && out.contains("in use by a running server"), "{out}");
    }
    std::thread::sleep(Duration::from_millis(1500));
    s.stop();

    let (ok, out) = janitor_cli(&[&dsn]);
    assert!(!ok && out.contains("at least one of --tokens, --requests or --grants"), "{out}");
    let (ok, out) = janitor_cli(&[&dsn, "--tokens", "--batch-size", "500", "--limit", "100"]);
    assert!(!ok && out.contains("--batch-size"), "{out}");
    let (ok, out) = janitor_cli(&[&dsn, "--tokens", "--keep-if-younger", "soon"]);
    assert!(!ok && out.contains("--keep-if-younger"), "{out}");
    // Kept: everything expired less than an hour ago.
    let (ok, out) = janitor_cli(&[&dsn, "--tokens", "--keep-if-younger", "1h"]);
    assert!(ok && out.contains("deleted 0 tokens"), "{out}");
    // --limit bounds one run (steps of --batch-size).
    let (ok, out) = janitor_cli(&[&dsn, "--tokens", "--requests", "--limit", "100", "--batch-size", "50"]);
    assert!(ok && out.contains("deleted 100 tokens"), "{out}");
    let (ok, out) = janitor_cli(&[&dsn, "--tokens", "--requests", "--grants"]);
    assert!(ok && out.contains("deleted 200 tokens") && out.contains("and 0 trust relationships"), "{out}");
    let (ok, out) = janitor_cli(&[&dsn, "--tokens"]);
    assert!(ok && out.contains("deleted 0 tokens"), "{out}");

    // The directory still serves: the live token survived, and the server starts on it.
    let s = Opts::new("legacy").dir(&data).start();
    assert!(is_active(&s, &kept));
    s.stop();
    let (ok, out) = janitor_cli(&["memory", "--tokens"]);
    assert!(ok && out.contains("nothing to clean"), "{out}");
}
