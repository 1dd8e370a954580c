//! Dynamic client registration (RFC 7591 and 7592, as Hydra): off by default; when enabled, a
//! registering party gets a generated id and secret and a registration access token, may not set
//! admin-only fields or its own secret, and manages only its own client with its current token,
//! which a PUT rotates.

use crate::browser::{field, still_serves};
use crate::harness::*;
use serde_json::{json, Value};
use std::sync::OnceLock;

fn dcr() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| Opts::new("io_uring").env("OIDC_DYNAMIC_CLIENT_REGISTRATION_ENABLED", "true").start())
}

fn register(s: &Server, body: &Value) -> Response {
    Req::new("POST", "/oauth2/register").json(body).send(s.public)
}

fn managed(s: &Server, method: &str, id: &str, token: Option<&str>, body: Option<&Value>) -> Response {
    let mut r = Req::new(method, &format!("/oauth2/register/{id}"));
    if let Some(t) = token {
        r = r.header("Authorization", &format!("Bearer {t}"));
    }
    if let Some(b) = body {
        r = r.json(b);
    }
    r.send(s.public)
}

#[track_caller]
fn refused_401(r: &Response) {
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"error": "The request could not be authorized", "error_description": "The requested OAuth 2.0 client does not exist or you provided incorrect credentials."})
    );
}

#[test]
fn off_by_default() {
    let s = api();
    assert_eq!(register(s, &json!({})).status, 404);
    assert_eq!(managed(s, "GET", "x", Some("ory_at_x"), None).status, 404);
    let d = Req::get("/.well-known/openid-configuration").send(s.public).json();
    assert!(d.get("registration_endpoint").is_none());
}

#[test]
fn register_use_read_update_and_delete() {
    let s = dcr();
    let d = Req::get("/.well-known/openid-configuration").send(s.public).json();
    assert_eq!(d["registration_endpoint"], json!(format!("http://{}/oauth2/register", s.public)));

    let r = register(
        s,
        &json!({"client_id": "mine", "grant_types": ["client_credentials"], "client_name": "app", "redirect_uris": ["https://app.example/cb"]}),
    );
    r.expect(201);
    let c = r.json();
    let id = field(&c, "client_id");
    assert_ne!(id, "mine", "the id is always generated");
    assert_eq!(id.len(), 36);
    let secret = field(&c, "client_secret");
    assert_eq!(secret.len(), 26);
    let token = field(&c, "registration_access_token");
    assert!(token.starts_with("ory_at_"));
    assert_eq!(c["registration_client_uri"], json!(format!("http://{}/oauth2/register/{id}", s.public)));
    assert_eq!(c["scope"], "offline_access offline openid", "oidc.dynamic_client_registration.default_scope");
    // The client works at once.
    let at = token_req(&id, &secret, &[]).send(s.public);
    at.expect(200);
    let at = field(&at.json(), "access_token");

    // Read: only with its own current token; never the secret or the admin's metadata.
    Req::new("PATCH", &format!("/admin/clients/{id}"))
        .json(&json!([{"op": "add", "path": "/metadata", "value": {"tier": "internal"}}]))
        .send(s.admin)
        .expect(200);
    let got = managed(s, "GET", &id, Some(&token), None);
    got.expect(200);
    let got = got.json();
    assert_eq!(got["client_id"], json!(id));
    assert_eq!(got["client_name"], "app");
    assert!(got.get("client_secret").is_none() && got.get("registration_access_token").is_none(), "{got}");
    assert_eq!(got["metadata"], json!({}));
    let other = register(s, &json!({})).json();
    let other_token = field(&other, "registration_access_token");
    refused_401(&managed(s, "GET", &id, None, None));
    refused_401(&managed(s, "GET", &id, Some("ory_at_wrong"), None));
    refused_401(&managed(s, "GET", &id, Some(&other_token), None));
    refused_401(&managed(s, "GET", "no-such-client", Some(&token), None));
    let basic = Req::get(&format!("/oauth2/register/{id}")).basic(&id, &secret).send(s.public);
    refused_401(&basic);

    // Update: a full replacement that rotates the token and keeps the secret and admin fields.
    let mut body = got.clone();
    body["client_name"] = json!("app v2");
    body.as_object_mut().unwrap().remove("metadata");
    let put = managed(s, "PUT", &id, Some(&token), Some(&body));
    put.expect(200);
    let put = put.json();
    assert_eq!(put["client_name"], "app v2");
    let token2 = field(&put, "registration_access_token");
    assert_ne!(token2, token);
    refused_401(&managed(s, "GET", &id, Some(&token), None));
    managed(s, "GET", &id, Some(&token2), None).expect(200);
    token_req(&id, &secret, &[]).send(s.public).expect(200);
    let admin = Req::get(&format!("/admin/clients/{id}")).send(s.admin).json();
    assert_eq!(admin["metadata"], json!({"tier": "internal"}), "admin-only fields survive a dynamic update");
    // A secret in an update is forbidden (403), admin-only fields refused; the token still stands.
    let mut with_secret = body.clone();
    with_secret["client_secret"] = json!("chosen-secret-0123456789");
    let r = managed(s, "PUT", &id, Some(&token2), Some(&with_secret));
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error_description"], "It is not allowed to choose your own OAuth2 Client secret.");
    let mut with_skip = body.clone();
    with_skip["skip_consent"] = json!(true);
    managed(s, "PUT", &id, Some(&token2), Some(&with_skip)).expect_error(400, "invalid_request");
    managed(s, "GET", &id, Some(&token2), None).expect(200);

    // Delete: the client and its tokens are gone.
    refused_401(&managed(s, "DELETE", &id, Some(&other_token), None));
    managed(s, "DELETE", &id, Some(&token2), None).expect(204);
    Req::get(&format!("/admin/clients/{id}")).send(s.admin).expect(404);
    assert!(!is_active(s, &at));
    refused_401(&managed(s, "GET", &id, Some(&token2), None));
}

#[test]
fn what_a_registering_party_may_not_set() {
    let s = dcr();
    let r = register(s, &json!({"client_secret": "chosen-secret-0123456789"}));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"error": "The request was malformed or contained invalid parameters", "error_description": "It is not allowed to choose your own OAuth2 Client secret."})
    );
    let r = register(s, &json!({"metadata": {"a": 1}}));
    let e = r.expect_error(400, "invalid_client_metadata");
    assert!(e["error_description"]
        .as_str()
        .unwrap()
        .ends_with("'metadata' cannot be set for dynamic client registration"));
    for (k, v) in
        [("skip_consent", json!(true)), ("skip_logout_consent", json!(true)), ("access_token_strategy", json!("jwt"))]
    {
        let e = register(s, &json!({ k: v })).expect_error(400, "invalid_request");
        assert_eq!(e["error_description"], json!(format!("'{k}' cannot be set for dynamic client registration")));
    }
    // What the server refuses for any client.
    register(s, &json!({"redirect_uris": ["https://app.example/cb#frag"]})).expect_error(400, "invalid_redirect_uri");
    register(s, &json!({"grant_types": ["password"]})).expect_error(400, "invalid_client_metadata");
    register(s, &json!({"token_endpoint_auth_method": "tls_client_auth"})).expect_error(400, "invalid_client_metadata");
    register(s, &json!({"response_types": ["code"], "grant_types": ["client_credentials"], "redirect_uris": ["javascript:alert(1)"]}))
        .expect_error(400, "invalid_redirect_uri");
    let mut bad = Req::new("POST", "/oauth2/register").header("Content-Type", "application/json");
    bad.body = b"{not json".to_vec();
    assert_eq!(bad.send(s.public).status, 400);
    // A public client gets no secret.
    let c = register(s, &json!({"token_endpoint_auth_method": "none"})).json();
    assert!(c.get("client_secret").is_none() || c["client_secret"] == "", "{c}");
    still_serves(s);
}

#[test]
fn admin_created_clients_get_a_registration_token_too() {
    let s = dcr();
    let c = create_client(s, &json!({"grant_types": ["client_credentials"], "metadata": {"k": "v"}}));
    let id = field(&c, "client_id");
    let token = field(&c, "registration_access_token");
    assert_eq!(c["registration_client_uri"], json!(format!("http://{}/oauth2/register/{id}", s.public)));
    let got = managed(s, "GET", &id, Some(&token), None);
    got.expect(200);
    assert_eq!(got.json()["metadata"], json!({}));
    // Admin reads never show the token again.
    let admin = Req::get(&format!("/admin/clients/{id}")).send(s.admin).json();
    assert!(admin.get("registration_access_token").is_none());
}
