//! Area 11: the `hydra` management CLI against a real server.

use crate::harness::*;
use serde_json::{json, Value};
use std::process::{Command, Output};

fn hydra(args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("ORY_SDK_URL")
        .env_remove("OAUTH2_CLIENT_ID")
        .env_remove("OAUTH2_CLIENT_SECRET")
        .output()
        .expect("run hydra");
    out
}

#[track_caller]
fn ok_json(args: &[&str]) -> Value {
    let out = hydra(args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {stdout}"))
}

#[test]
fn cli_round_trip() {
    let s = api();
    let admin = format!("http://{}", s.admin);
    let public = format!("http://{}", s.public);
    let c = ok_json(&[
        "create",
        "oauth2-client",
        "--grant-type",
        "client_credentials",
        "--scope",
        "a",
        "--name",
        "cli-client",
        "--format",
        "json",
        "-e",
        &admin,
    ]);
    let id = c["client_id"].as_str().unwrap().to_string();
    let secret = c["client_secret"].as_str().unwrap().to_string();
    assert_eq!(c["scope"], "a");
    assert_eq!(c["client_name"], "cli-client");

    let t = ok_json(&[
        "perform",
        "client-credentials",
        "--client-id",
        &id,
        &format!("--client-secret={secret}"),
        "--scope",
        "a",
        "-e",
        &public,
        "--format",
        "json",
    ]);
    let tok = t["access_token"].as_str().unwrap().to_string();
    assert_eq!(t["token_type"], "bearer");
    assert!(t["expiry"].is_string());

    let i = ok_json(&["introspect", "token", &tok, "-e", &admin, "--format", "json"]);
    assert_eq!(i["active"], true);
    assert_eq!(i["client_id"], Value::String(id.clone()));
    assert_eq!(i["scope"], "a");
    let i = ok_json(&["introspect", "token", &tok, "--scope", "b", "-e", &admin, "--format", "json"]);
    assert_eq!(i, serde_json::json!({"active": false}));

    let out =
        hydra(&["revoke", "token", &tok, "--client-id", &id, &format!("--client-secret={secret}"), "-e", &public]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!is_active(s, &tok));

    // delete access-tokens.
    let t2 = access_token(s, &id, &secret);
    let out = hydra(&["delete", "access-tokens", &id, "-e", &admin, "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap(), Value::String(id.clone()));
    assert!(!is_active(s, &t2));

    let g = ok_json(&["get", "oauth2-client", &id, "-e", &admin, "--format", "json"]);
    assert_eq!(g["client_id"], Value::String(id.clone()));
    assert!(g.get("client_secret").is_none());

    let l = ok_json(&["list", "oauth2-clients", "--page-size", "500", "-e", &admin, "--format", "json"]);
    assert!(l["items"].as_array().unwrap().iter().any(|c| c["client_id"] == Value::String(id.clone())), "{l}");
    assert!(l["is_last_page"].is_boolean());

    let out = hydra(&["delete", "oauth2-client", &id, "-e", &admin, "-q"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), id);
    Req::get(&format!("/admin/clients/{id}")).send(s.admin).expect(404);

    // Errors: non-zero exit, one line on stderr.
    let out = hydra(&["get", "oauth2-client", &id, "-e", &admin, "--format", "json"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let out = hydra(&["perform", "client-credentials", "--client-id", &id, "--client-secret", "x", "-e", &public]);
    assert!(!out.status.success());
}

#[test]
fn cli_jwk_create_get_delete() {
    let s = api();
    let admin = format!("http://{}", s.admin);
    let created = ok_json(&["create", "jwk", "cli-set", "cli-kid", "--alg", "ES256", "-e", &admin, "--format", "json"]);
    assert_eq!(created["set"], "cli-set");
    assert_eq!(created["keys"][0]["kid"], "cli-kid");
    assert_eq!(created["keys"][0]["alg"], "ES256");
    assert!(created["keys"][0]["d"].is_string());
    let public = ok_json(&["get", "jwk", "cli-set", "--public", "-e", &admin, "--format", "json"]);
    assert_eq!(public["keys"][0]["x"], created["keys"][0]["x"]);
    assert!(public["keys"][0].get("d").is_none(), "--public strips the private part");
    let table = hydra(&["get", "jwk", "cli-set", "-e", &admin]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("SET ID"), "{text}");
    assert!(
        text.contains("cli-set") && text.contains("cli-kid") && text.contains("ES256") && text.contains("sig"),
        "{text}"
    );
    let del = hydra(&["delete", "jwk", "cli-set", "-e", &admin]);
    assert!(del.status.success());
    assert!(String::from_utf8_lossy(&del.stdout).contains("cli-set"));
    let gone = hydra(&["get", "jwk", "cli-set", "-e", &admin]);
    assert!(!gone.status.success());
    let bad = hydra(&["create", "jwk", "cli-set", "--alg", "HS256", "-e", &admin]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("Unsupported key algorithm"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Reads lines from a child's stdout until one satisfies `f`.
fn line_matching(r: &mut impl std::io::BufRead, f: impl Fn(&str) -> bool) -> String {
    let mut line = String::new();
    for _ in 0..50 {
        line.clear();
        if r.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if f(&line) {
            return line.trim().to_string();
        }
    }
    panic!("no matching line");
}

/// `hydra example login-consent` on `port` against the admin API `admin`, once it has printed its
/// banner: the process, its output (to drain), and the banner line.
fn example_app(admin: &str, port: u16) -> (std::process::Child, std::io::BufReader<std::process::ChildStdout>, String) {
    let mut app = Command::new(BIN)
        .args(["example", "login-consent", "-p", &port.to_string(), "-e", admin])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(app.stdout.take().unwrap());
    let banner = line_matching(&mut out, |l| l.contains("Login & consent app on"));
    (app, out, banner)
}

#[test]
fn example_login_consent_app_and_perform_authorization_code() {
    use crate::browser::{local, query_param, Jar};
    use std::io::BufRead;
    use std::process::Stdio;
    let app_port = free_port();
    let app = format!("http://127.0.0.1:{app_port}");
    let s = Opts::new("io_uring")
        .env("URLS_LOGIN", &format!("{app}/login"))
        .env("URLS_CONSENT", &format!("{app}/consent"))
        .env("URLS_LOGOUT", &format!("{app}/logout"))
        .start();
    let admin = format!("http://{}", s.admin);
    let public = format!("http://{}", s.public);
    let (mut app_proc, mut app_out, _) = example_app(&admin, app_port);

    let cb_port = free_port();
    let c = ok_json(&[
        "create",
        "oauth2-client",
        "--grant-type",
        "authorization_code,refresh_token",
        "--response-type",
        "code",
        "--scope",
        "openid,offline",
        "--redirect-uri",
        &format!("http://127.0.0.1:{cb_port}/callback"),
        "-e",
        &admin,
        "--format",
        "json",
    ]);
    let mut rp = Command::new(BIN)
        .args([
            "perform",
            "authorization-code",
            "--client-id",
            c["client_id"].as_str().unwrap(),
            &format!("--client-secret={}", c["client_secret"].as_str().unwrap()),
            "-p",
            &cb_port.to_string(),
            "--response-mode",
            "form_post",
            "--prompt",
            "login,consent",
            "-e",
            &public,
            "--format",
            "json",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut rp_out = std::io::BufReader::new(rp.stdout.take().unwrap());
    let url = line_matching(&mut rp_out, |l| l.starts_with("http"));
    assert!(url.contains("response_mode=form_post") && url.contains("prompt=login+consent"), "{url}");

    // The browser.
    let app_addr: std::net::SocketAddr = format!("127.0.0.1:{app_port}").parse().unwrap();
    let mut jar = Jar::default();
    let r = Req::get(&local(&url)).send(s.public);
    jar.take(&r);
    let to_login = r.header("location").unwrap().to_string();
    assert!(to_login.starts_with(&format!("{app}/login?")), "{to_login}");
    let page = Req::get(&local(&to_login)).send(app_addr);
    page.expect(200);
    assert!(page.text().contains("<form") && page.text().contains("password"), "{}", page.text());
    let challenge = query_param(&to_login, "login_challenge").unwrap();
    let r = Req::new("POST", "/login")
        .form(&[
            ("challenge", &challenge),
            ("user", "foo@bar.com"),
            ("password", "foobar"),
            ("remember", "1"),
            ("action", "accept"),
        ])
        .send(app_addr);
    r.expect(302);
    let r = Req::get(&local(r.header("location").unwrap())).header("Cookie", &jar.header()).send(s.public);
    jar.take(&r);
    let to_consent = r.header("location").unwrap().to_string();
    assert!(to_consent.starts_with(&format!("{app}/consent?")), "{to_consent}");
    let page = Req::get(&local(&to_consent)).send(app_addr);
    assert!(page.text().contains("foo@bar.com") && page.text().contains("value=\"openid\""), "{}", page.text());
    let challenge = query_param(&to_consent, "consent_challenge").unwrap();
    let r = Req::new("POST", "/consent")
        .form(&[("challenge", &challenge), ("scope", "openid"), ("scope", "offline"), ("action", "accept")])
        .send(app_addr);
    r.expect(302);
    let r = Req::get(&local(r.header("location").unwrap())).header("Cookie", &jar.header()).send(s.public);
    jar.take(&r);
    // The form post page: its action is the callback, its hidden inputs the answer.
    let page = r.expect(200).text();
    assert!(page.contains(&format!("action=\"http://127.0.0.1:{cb_port}/callback\"")), "{page}");
    let inputs: Vec<(String, String)> = page
        .split("<input type=\"hidden\" name=\"")
        .skip(1)
        .filter_map(|p| {
            let (name, rest) = p.split_once("\" value=\"")?;
            Some((name.to_string(), rest.split_once('"')?.0.replace("&amp;", "&")))
        })
        .collect();
    let pairs: Vec<(&str, &str)> = inputs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert!(pairs.iter().any(|(k, _)| *k == "code"), "{page}");
    let cb_addr: std::net::SocketAddr = format!("127.0.0.1:{cb_port}").parse().unwrap();
    let done = Req::new("POST", "/callback").form(&pairs).send(cb_addr);
    let logout = done.expect(200).text();
    assert!(logout.contains("/oauth2/sessions/logout?id_token_hint="), "{logout}");

    let mut rest = String::new();
    std::io::Read::read_to_string(&mut rp_out, &mut rest).unwrap();
    assert!(rp.wait().unwrap().success());
    // The logout link leads to the example app's logout page, then back to the server's page.
    let link =
        rest.lines().find(|l| l.contains("/oauth2/sessions/logout?id_token_hint=")).unwrap_or_else(|| panic!("{rest}"));
    let r = jar.get(&s, &local(link.trim()));
    jar.take(&r);
    let to_logout = r.header("location").unwrap().to_string();
    assert!(to_logout.starts_with(&format!("{app}/logout?logout_challenge=")), "{to_logout}");
    let page = Req::get(&local(&to_logout)).send(app_addr);
    assert!(page.expect(200).text().contains("Log <b>foo@bar.com</b> out"), "{}", page.text());
    let challenge = query_param(&to_logout, "logout_challenge").unwrap();
    let r = Req::new("POST", "/logout").form(&[("challenge", &challenge), ("action", "accept")]).send(app_addr);
    let r = jar.get(&s, &local(r.header("location").unwrap()));
    assert!(r.header("location").unwrap().ends_with("/oauth2/fallbacks/logout/callback"), "{:?}", r.headers);
    let tok: Value = rest.lines().rev().find_map(|l| serde_json::from_str(l).ok()).unwrap_or_else(|| panic!("{rest}"));
    assert!(tok["access_token"].as_str().unwrap().starts_with("ory_at_"), "{tok}");
    assert!(tok["refresh_token"].as_str().unwrap().starts_with("ory_rt_"), "{tok}");
    assert!(tok["id_token"].as_str().unwrap().split('.').count() == 3, "{tok}");
    let _ = app_proc.kill();
    let _ = app_proc.wait();
    let _ = app_out.read_line(&mut String::new());
}

#[test]
fn migrate_answers_for_the_embedded_store() {
    if embedded_only("the embedded store's data directory format") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dsn = format!("redb://{}/data", dir.path().display());
    let text = |args: &[&str]| {
        let o = hydra(args);
        (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr))
    };
    // Before the first start: pending; `up` leaves the creation to the server.
    let (ok, out) = text(&["migrate", "status", &dsn]);
    assert!(ok && out.contains("Pending"), "{out}");
    let (ok, out) = text(&["migrate", "sql", "up", &dsn, "--yes"]);
    assert!(ok && out.contains("Successfully applied migrations!"), "{out}");
    // After a start: applied, and `up` (also the bare form) has nothing to do.
    let s = Opts::new("legacy").dir(&dir.path().join("data")).start();
    s.stop();
    let (ok, out) = text(&["migrate", "status", &dsn]);
    assert!(ok && out.contains("Applied (4 partitions)"), "{out}");
    let (ok, out) = text(&["migrate", "sql", &dsn]);
    assert!(ok && out.contains("no migrations to apply"), "{out}");
    let (ok, out) = text(&["migrate", "sql", "down", &dsn]);
    assert!(!ok && out.contains("no down migrations"), "{out}");
    let (ok, out) = text(&["migrate", "sql", "status", "memory"]);
    assert!(ok && out.contains("nothing to do"), "{out}");
    let (ok, out) = text(&["migrate", "status"]);
    assert!(!ok && out.contains("--read-from-env"), "{out}");
    // A data directory of another format is refused with a clear message.
    std::fs::write(dir.path().join("data/MANIFEST"), "{\"format\":1,\"partitions\":4}\n").unwrap();
    let (ok, out) = text(&["migrate", "sql", "up", &dsn]);
    assert!(!ok && out.contains("format 1"), "{out}");
}

#[test]
fn migrate_applies_and_rolls_back_the_postgres_schema() {
    let cluster = testpg::Cluster::start(&[]).unwrap();
    let dsn = format!("postgres://postgres:unused-pw@127.0.0.1:{}/postgres?sslmode=disable", cluster.port());
    let with_stdin = |args: &[&str], stdin: &str| {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
        let o = child.wait_with_output().unwrap();
        (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr))
    };
    let tables = || cluster.psql("select count(*) from pg_tables where tablename like 'hydra_rs_%'").unwrap();
    let (ok, out) = with_stdin(&["migrate", "sql", "status", &dsn], "");
    assert!(ok && out.contains("1\tthe storage schema\tPending"), "{out}");
    // Asked, and "n" changes nothing.
    let (ok, out) = with_stdin(&["migrate", "sql", "up", &dsn], "n\n");
    assert!(ok && out.contains("[y/n]") && out.contains("Aborting"), "{out}");
    assert_eq!(tables(), "0");
    let (ok, out) = with_stdin(&["migrate", "sql", "up", &dsn], "y\n");
    assert!(ok && out.contains("Applied version 1") && out.contains("Successfully applied migrations!"), "{out}");
    assert_eq!(tables(), "14", "thirteen tables of the schema and the migration table");
    let o = Command::new(BIN).args(["migrate", "status", "-e"]).env("DSN", &dsn).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && out.contains("\tApplied"), "the DSN from the environment: {out}");
    let (ok, out) = with_stdin(&["migrate", "sql", "up", &dsn, "--yes"], "");
    assert!(ok && out.contains("no migrations to apply"), "{out}");
    let (ok, out) = with_stdin(&["migrate", "sql", "down", &dsn, "--yes", "--steps", "5"], "");
    assert!(ok && out.contains("Rolled back version 1"), "{out}");
    assert_eq!(tables(), "1", "the migration table stays");
    // The password never shows, even when the connection fails.
    let bad = format!("postgres://postgres:hunter2@127.0.0.1:{}/postgres?sslmode=require", cluster.port());
    let (ok, out) = with_stdin(&["migrate", "sql", "status", &bad], "");
    assert!(!ok && !out.contains("hunter2") && out.contains("PostgreSQL"), "{out}");
}

/// The CLI speaks TLS: against the server's own TLS admin and public listeners it verifies the
/// certificate (a test CA through `SSL_CERT_FILE`), refuses an unknown one, and with
/// `--skip-tls-verify` accepts it; `-H` headers reach the server; `--format yaml`, `jsonpath=`
/// and `jsonpointer=` print what they select.
#[test]
fn cli_over_tls_headers_and_formats() {
    let pki = crate::tls::make_pki();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca) = (dir.path().join("c.pem"), dir.path().join("k.pem"), dir.path().join("ca.pem"));
    std::fs::write(&cert, &pki.cert_pem).unwrap();
    std::fs::write(&key, &pki.key_pem).unwrap();
    let ca_pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pki.ca.as_ref())
    );
    std::fs::write(&ca, ca_pem).unwrap();
    let s = Opts::new("legacy")
        .env("SERVE_TLS_CERT_PATH", cert.to_str().unwrap())
        .env("SERVE_TLS_KEY_PATH", key.to_str().unwrap())
        .start();
    let admin = format!("https://localhost:{}", s.admin.port());
    let run = |extra_env: &[(&str, &str)], args: &[&str]| {
        let mut c = Command::new(BIN);
        c.args(args).env_remove("ORY_SDK_URL").env_remove("SSL_CERT_FILE");
        for (k, v) in extra_env {
            c.env(k, v);
        }
        c.output().expect("run hydra")
    };
    let ca_env = [("SSL_CERT_FILE", ca.to_str().unwrap())];
    // Verified against the test CA.
    let out = run(&ca_env, &["create", "client", "--name", "tls-made", "--format", "json", "-e", &admin]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = created["client_id"].as_str().unwrap().to_string();
    // An unknown CA is refused; --skip-tls-verify accepts it.
    let out = run(&[], &["get", "client", &id, "--format", "json", "-e", &admin]);
    assert!(!out.status.success(), "an unverifiable certificate must be refused");
    let out =
        run(&[], &["get", "client", &id, "--skip-tls-verify", "--format", "jsonpath={.client_name}", "-e", &admin]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "tls-made");
    let out = run(&ca_env, &["get", "client", &id, "--format", "jsonpointer=/client_id", "-e", &admin]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), id);
    // A path that selects nothing is an error, not empty output.
    let out = run(&ca_env, &["get", "client", &id, "--format", "jsonpath={.no_such_field}", "-e", &admin]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("matches nothing"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&ca_env, &["get", "client", &id, "--format", "yaml", "-e", &admin]);
    let yaml = String::from_utf8_lossy(&out.stdout);
    assert!(yaml.contains(&format!("client_id: {id}")) && yaml.contains("client_name: tls-made"), "{yaml}");
    // -H reaches the server: a request id given as a header comes back in its log line.
    let out = run(&ca_env, &["get", "client", &id, "-H", "X-Request-Id: cli-header-check", "-q", "-e", &admin]);
    assert!(out.status.success());
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(s.log().contains("request_id=cli-header-check"), "{}", s.log());
    // The public TLS listener too (a client credentials token).
    let out =
        run(&ca_env, &["create", "client", "--grant-type", "client_credentials", "--format", "json", "-e", &admin]);
    let cc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let public = format!("https://localhost:{}", s.public.port());
    let out = run(
        &ca_env,
        &[
            "perform",
            "client-credentials",
            "--client-id",
            cc["client_id"].as_str().unwrap(),
            &format!("--client-secret={}", cc["client_secret"].as_str().unwrap()),
            "--format",
            "jsonpath={.access_token}",
            "-e",
            &public,
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).trim().starts_with("ory_at_"));
}

/// `hydra import oauth2-client` (a JSON array and an object, from files and standard input) and
/// `hydra import jwk` (a JWK, a JWK set, a PEM key with `--alg`).
#[test]
fn cli_import_clients_and_keys() {
    let s = api();
    let admin = format!("http://{}", s.admin);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (uniq("imp-a"), uniq("imp-b"));
    let many = dir.path().join("many.json");
    std::fs::write(&many, serde_json::json!([{"client_id": a, "client_name": "A"}, {"client_id": b}]).to_string())
        .unwrap();
    let out = hydra(&["import", "oauth2-client", many.to_str().unwrap(), "--format", "json", "-e", &admin]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed.as_array().map(Vec::len), Some(2));
    assert!(printed[0]["client_secret"].as_str().is_some_and(|s| !s.is_empty()), "secrets are shown once: {printed}");
    Req::get(&format!("/admin/clients/{a}")).send(s.admin).expect(200);
    // From standard input, one object; a duplicate fails but the rest is imported.
    let c = uniq("imp-c");
    let mut child = Command::new(BIN)
        .args(["import", "client", "-", "-q", "-e", &admin])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(serde_json::json!({"client_id": c}).to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), c);
    let out = hydra(&["import", "client", many.to_str().unwrap(), "-q", "-e", &admin]);
    assert!(!out.status.success(), "existing ids are reported");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&a), "{}", String::from_utf8_lossy(&out.stderr));

    // Keys: an RSA JWK (one the server generated, in a JWK set file) and a PEM P-256 key
    // (`--alg ES256`); the PEM forms of RSA and Ed25519 are covered by `jose::import`'s tests.
    let set = uniq("imported-set");
    let r = Req::new("POST", &format!("/admin/keys/{}", uniq("rsa-src")))
        .json(&serde_json::json!({"alg": "RS256", "use": "sig"}))
        .send(s.admin);
    r.expect(201);
    let jwks = dir.path().join("rsa.json");
    std::fs::write(&jwks, serde_json::json!({"keys": [r.json()["keys"][0].clone()]}).to_string()).unwrap();
    let files = [jwks.to_str().unwrap().to_string()];
    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let ec_pem = dir.path().join("ec.pem");
    std::fs::write(&ec_pem, ec.serialize_pem()).unwrap();
    let out = hydra(&["import", "jwk", &set, &files[0], "--format", "json", "-e", &admin]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out =
        hydra(&["import", "jwk", &set, ec_pem.to_str().unwrap(), "--alg", "ES256", "--format", "json", "-e", &admin]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys = printed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "imported keys are added to the set: {printed}");
    assert!(keys.iter().any(|k| k["kty"] == "EC" && k["alg"] == "ES256" && k["d"].is_string()));
    assert!(keys.iter().all(|k| k["kid"].as_str().is_some_and(|kid| !kid.is_empty())));
    // The wrong algorithm for a PEM key is refused with a clear error, nothing written.
    let out = hydra(&["import", "jwk", &set, ec_pem.to_str().unwrap(), "--alg", "RS256", "-e", &admin]);
    assert!(!out.status.success());
    let set_now = Req::get(&format!("/admin/keys/{set}")).send(s.admin).json();
    assert_eq!(set_now["keys"].as_array().map(Vec::len), Some(2));
}

#[test]
fn example_device_page_and_perform_device_code() {
    use crate::browser::{local, query_param, Jar};
    use std::process::Stdio;
    let app_port = free_port();
    let app = format!("http://127.0.0.1:{app_port}");
    let s = Opts::new("io_uring")
        .env("URLS_LOGIN", &format!("{app}/login"))
        .env("URLS_CONSENT", &format!("{app}/consent"))
        .env("URLS_DEVICE_VERIFICATION", &format!("{app}/device"))
        .env("OAUTH2_DEVICE_AUTHORIZATION_TOKEN_POLLING_INTERVAL", "1s")
        .start();
    let admin = format!("http://{}", s.admin);
    let public = format!("http://{}", s.public);
    let (mut app_proc, _app_out, banner) = example_app(&admin, app_port);
    assert!(banner.contains("urls.device.verification="), "{banner}");
    let c = create_client(
        &s,
        &json!({"grant_types": ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"],
                "scope": "openid offline", "token_endpoint_auth_method": "none"}),
    );
    let id = c["client_id"].as_str().unwrap().to_string();
    let mut dev = Command::new(BIN)
        .args(["perform", "device-code", "--client-id", &id, "-e", &public, "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut dev_err = std::io::BufReader::new(dev.stderr.take().unwrap());
    line_matching(&mut dev_err, |l| l.contains("To login please go to:"));
    let url = line_matching(&mut dev_err, |l| l.trim().starts_with("http")).trim().to_string();
    assert!(url.contains("/oauth2/device/verify?user_code="), "{url}");

    // The browser: the server sends it to the example app's device page with the code filled in.
    let app_addr: std::net::SocketAddr = format!("127.0.0.1:{app_port}").parse().unwrap();
    let mut jar = Jar::default();
    let r = jar.get(&s, &local(&url));
    jar.take(&r);
    let to_device = r.header("location").unwrap().to_string();
    assert!(to_device.starts_with(&format!("{app}/device?")), "{to_device}");
    let code = query_param(&to_device, "user_code").unwrap();
    let page = Req::get(&local(&to_device)).send(app_addr);
    assert!(page.expect(200).text().contains(&format!("value=\"{code}\"")), "{}", page.text());
    let challenge = query_param(&to_device, "device_challenge").unwrap();
    // A wrong code is shown as such; the right one moves on.
    let wrong = Req::new("POST", "/device").form(&[("challenge", &challenge), ("user_code", "nope")]).send(app_addr);
    assert!(wrong.expect(400).text().contains("not accepted"), "{}", wrong.text());
    let r = Req::new("POST", "/device").form(&[("challenge", &challenge), ("user_code", &code)]).send(app_addr);
    r.expect(302);
    let r = jar.get(&s, &local(r.header("location").unwrap()));
    jar.take(&r);
    let to_login = r.header("location").unwrap().to_string();
    assert!(to_login.starts_with(&format!("{app}/login?")), "{to_login}");
    let challenge = query_param(&to_login, "login_challenge").unwrap();
    let r = Req::new("POST", "/login")
        .form(&[("challenge", &challenge), ("user", "foo@bar.com"), ("password", "foobar"), ("action", "accept")])
        .send(app_addr);
    let r = jar.get(&s, &local(r.expect(302).header("location").unwrap()));
    jar.take(&r);
    let to_consent = r.header("location").unwrap().to_string();
    let challenge = query_param(&to_consent, "consent_challenge").unwrap();
    let r = Req::new("POST", "/consent")
        .form(&[("challenge", &challenge), ("scope", "openid"), ("scope", "offline"), ("action", "accept")])
        .send(app_addr);
    let r = jar.get(&s, &local(r.expect(302).header("location").unwrap()));
    assert!(r.header("location").unwrap().contains("/oauth2/fallbacks/device/done?client_id="), "{:?}", r.headers);

    let mut out = String::new();
    std::io::Read::read_to_string(dev.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(dev.wait().unwrap().success(), "{out}");
    let tok: Value = serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("{out}"));
    assert!(tok["access_token"].as_str().unwrap().starts_with("ory_at_"), "{tok}");
    assert!(tok["refresh_token"].as_str().unwrap().starts_with("ory_rt_"), "{tok}");
    assert!(tok["id_token"].as_str().unwrap().split('.').count() == 3, "{tok}");
    let _ = app_proc.kill();
    let _ = app_proc.wait();

    // Without a client id the command says what is missing.
    let out = Command::new(BIN)
        .args(["perform", "device-code", "-e", &public])
        .env_remove("OAUTH2_CLIENT_ID")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--client-id"), "{out:?}");
}
