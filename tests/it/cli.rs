//! Area 11: the `hydra` management CLI against a real server.

use crate::harness::*;
use serde_json::Value;
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
        "--client-secret",
        &secret,
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

    let out = hydra(&["revoke", "token", &tok, "--client-id", &id, "--client-secret", &secret, "-e", &public]);
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
