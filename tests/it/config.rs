//! Area 10: configuration errors and `--dev` secret handling.

use crate::harness::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn bad_port_names_the_key() {
    let opts = Opts::new("legacy").env("SERVE_PUBLIC_PORT", "abc");
    let (code, err) = run_to_exit(opts.command());
    assert_eq!(code, Some(1), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("serve.public.port")).collect();
    assert_eq!(lines.len(), 1, "one line naming the key: {err:?}");
    assert!(lines[0].contains("invalid configuration"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn other_bad_values_name_their_keys() {
    for (k, v, key) in [
        ("SERVE_ADMIN_PORT", "70000", "serve.admin.port"),
        ("ENGINE_PARTITIONS", "3", "engine.partitions"),
        ("DSN", "postgres://x", "dsn"),
        ("TTL_ACCESS_TOKEN", "1 hour", "ttl.access_token"),
        ("SECRETS_SYSTEM", "short", "secrets.system"),
    ] {
        let (code, err) = run_to_exit(Opts::new("legacy").env(k, v).command());
        assert_eq!(code, Some(1), "{k}={v}: {err}");
        assert!(err.lines().any(|l| l.contains(key)), "{k}={v}: {err}");
    }
}

#[test]
fn postgres_dsns_start_only_on_a_reachable_migrated_database_with_a_shared_secret() {
    // Unreachable: the start says why it stops, without the password.
    let (code, err) = run_to_exit(
        Opts::new("legacy")
            .env("DSN", "postgres://hydra:hunter2@127.0.0.1:1/hydra?sslmode=disable&connect_timeout=2")
            .command(),
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot connect"), "{err}");
    assert!(!err.contains("hunter2") && !err.contains("panicked"), "{err}");
    // A database whose schema is behind: refused with what to run, as Hydra does.
    let port = {
        let c = cluster();
        let c = c.as_ref().unwrap();
        c.psql("CREATE DATABASE unmigrated").unwrap();
        c.port()
    };
    let dsn = format!("postgres://postgres@127.0.0.1:{port}/unmigrated?sslmode=disable");
    let (code, err) = run_to_exit(Opts::new("legacy").env("DSN", &dsn).command());
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("run `hydra migrate sql up`"), "{err}");
    // Every node must share the system secret: none generated for PostgreSQL, even with --dev.
    let (code, err) = run_to_exit(Opts::new("legacy").dev().no_secret().env("DSN", &pg_database(None)).command());
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("secrets.system is required with PostgreSQL"), "{err}");
    // Hydra's other schemes are named as unsupported; a bad option is named.
    for (dsn, says) in [
        ("mysql://root:hunter2@tcp(127.0.0.1:3306)/mysql", "mysql DSNs are not supported"),
        ("postgres://hydra:hunter2@h/d?max_conns=many", "max_conns must be a whole number"),
    ] {
        let (code, err) = run_to_exit(Opts::new("legacy").env("DSN", dsn).command());
        assert_eq!(code, Some(1), "{dsn}: {err}");
        assert!(err.contains(says) && !err.contains("hunter2"), "{dsn}: {err}");
    }
}

#[test]
fn missing_secret_without_dev() {
    let (code, err) = run_to_exit(Opts::new("legacy").no_secret().command());
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.lines().filter(|l| l.contains("secrets.system")).count(), 1, "{err}");
}

#[test]
fn dev_generates_and_reuses_system_secret() {
    if embedded_only("the system secret kept in the data directory") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let opts = Opts::new("io_uring").dir(dir.path()).no_secret().dev();
    let s = opts.start();
    let path = dir.path().join("system-secret");
    let meta = std::fs::metadata(&path).expect("system-secret created");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let secret = std::fs::read_to_string(&path).unwrap();
    assert!(secret.trim().len() >= 16);
    let (id, sec) = cc_client(&s, "a");
    let tok = access_token(&s, &id, &sec);
    assert!(is_active(&s, &tok));
    s.stop();

    let s = opts.start();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), secret, "secret file unchanged");
    assert!(is_active(&s, &tok), "token from run 1 verifies in run 2");
    s.stop();
}

#[test]
fn health_lines_can_be_quieted_and_leaked_queries_keep_secrets_out() {
    let s = Opts::new("io_uring")
        .env("SERVE_PUBLIC_REQUEST_LOG_DISABLE_FOR_HEALTH", "true")
        .env("LOG_LEAK_SENSITIVE_VALUES", "true")
        .start();
    Req::get("/health/alive").send(s.public).expect(200);
    Req::get("/health/ready").send(s.admin).expect(200);
    Req::get("/oauth2/auth?client_id=visible-client&login_verifier=SECRET-VERIFIER&code=SECRET-CODE").send(s.public);
    Req::get("/oauth2/fallbacks/error?error=shown").send(s.public).expect(200);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log = s.log();
    assert!(!log.lines().any(|l| l.contains("api=public") && l.contains("path=/health/alive")), "{log}");
    assert!(log.lines().any(|l| l.contains("api=admin") && l.contains("/health/ready")), "{log}");
    assert!(log.contains("client_id=visible-client"), "{log}");
    assert!(log.contains("error=shown"), "{log}");
    assert!(!log.contains("SECRET-VERIFIER") && !log.contains("SECRET-CODE"), "{log}");
    // Off (the default): the path only.
    let d = api();
    Req::get("/oauth2/fallbacks/error?error=hidden-by-default").send(d.public).expect(200);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!d.log().contains("hidden-by-default"));
}

/// A port another server already listens on is refused at start, as Hydra's Go listener does:
/// `SO_REUSEPORT` must not let a second server (another database, other secrets) join the first
/// one's port and take part of its traffic.
#[test]
fn a_port_in_use_is_refused() {
    let first = Opts::new("legacy").start();
    for (key, port) in [("SERVE_PUBLIC_PORT", first.public.port()), ("SERVE_ADMIN_PORT", first.admin.port())] {
        let (code, err) = run_to_exit(Opts::new("legacy").env(key, &port.to_string()).command());
        assert_eq!(code, Some(1), "{key}: {err}");
        assert!(err.contains("cannot listen on") && err.contains("in use"), "{key}: {err}");
    }
    let r = Req::get("/health/alive").send(first.public);
    r.expect(200);
}
