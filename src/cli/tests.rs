use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;

use clap::Parser;
use serde_json::{json, Value};

use super::commands::{
    api_error_line, basic_auth, client_columns, create_body, execute, form_body, form_decode, introspect_columns,
    next_page_token, path_escape, token_columns, token_json,
};
use super::httpclient::{self, parse_url};
use super::output::{go_json, multi_table, row_table};
use super::*;
use crate::dates::rfc3339;

fn parse(args: &[&str]) -> Cli {
    Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

// ---------------------------------------------------------------------------
// clap parsing
// ---------------------------------------------------------------------------

#[test]
fn clap_definition_is_consistent() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}

#[test]
fn parses_serve_modes_and_flags() {
    let cli = parse(&["hydra", "serve", "all", "--dev", "-c", "a.yml", "--config", "b.yml,c.yml"]);
    let Command::Serve { which } = cli.command else { panic!("not serve") };
    assert_eq!(which.mode(), ServeMode::All);
    assert!(which.args().dev);
    assert!(!which.args().sqa_opt_out);
    assert_eq!(which.args().config, vec![PathBuf::from("a.yml"), PathBuf::from("b.yml"), PathBuf::from("c.yml")]);
    let cli = parse(&["hydra", "serve", "admin", "--sqa-opt-out"]);
    let Command::Serve { which } = cli.command else { panic!("not serve") };
    assert_eq!(which.mode(), ServeMode::Admin);
    assert!(which.args().sqa_opt_out);
    let Command::Serve { which } = parse(&["hydra", "serve", "public"]).command else { panic!() };
    assert_eq!(which.mode(), ServeMode::Public);
    assert!(Cli::try_parse_from(["hydra", "serve"]).is_err());
    assert!(Cli::try_parse_from(["hydra", "serve", "bogus"]).is_err());
    assert!(matches!(parse(&["hydra", "version"]).command, Command::Version));
}

#[test]
fn parses_create_client_with_alias_repeats_and_commas() {
    for name in ["oauth2-client", "client"] {
        let cli = parse(&[
            "hydra",
            "create",
            name,
            "--redirect-uri",
            "http://a/cb,http://b/cb",
            "--redirect-uri",
            "http://c/cb",
            "--scope",
            "openid,offline",
            "--scope",
            "email",
            "--grant-type",
            "client_credentials",
            "--metadata",
            r#"{"foo":"bar"}"#,
            "--skip-consent",
            "--format",
            "json-pretty",
            "-e",
            "http://localhost:9",
        ]);
        let Command::Create(CreateCmd { what: CreateWhat::OAuth2Client { fields, conn } }) = cli.command else {
            panic!("wrong command")
        };
        assert_eq!(fields.redirect_uri, ["http://a/cb", "http://b/cb", "http://c/cb"]);
        assert_eq!(fields.scope, ["openid", "offline", "email"]);
        assert_eq!(fields.skip_consent, Some(true));
        assert_eq!(fields.skip_logout_consent, None);
        assert_eq!(conn.format, Format::JsonPretty);
        assert_eq!(conn.endpoint.as_deref(), Some("http://localhost:9"));
        let body = create_body(&fields).unwrap();
        assert_eq!(body["scope"], "openid offline email");
        assert_eq!(body["grant_types"], json!(["client_credentials"]));
        assert_eq!(body["response_types"], json!(["code"]));
        assert_eq!(body["token_endpoint_auth_method"], "client_secret_basic");
        assert_eq!(body["metadata"], json!({"foo":"bar"}));
        assert_eq!(body["skip_consent"], true);
    }
}

#[test]
fn create_defaults_and_bad_metadata() {
    let Command::Create(CreateCmd { what: CreateWhat::OAuth2Client { fields, conn } }) =
        parse(&["hydra", "create", "client"]).command
    else {
        panic!()
    };
    assert_eq!(conn.format, Format::Table);
    assert!(!conn.quiet);
    let body = create_body(&fields).unwrap();
    assert_eq!(body["grant_types"], json!(["authorization_code"]));
    assert_eq!(body["response_types"], json!(["code"]));
    assert_eq!(body["subject_type"], "public");
    assert_eq!(body["request_object_signing_alg"], "RS256");
    assert!(body.get("client_secret").is_none());
    assert!(body.get("scope").is_none());
    let bad = ClientFields { metadata: Some("{nope".into()), ..Default::default() };
    assert!(create_body(&bad).unwrap_err().contains("--metadata"));
    assert!(Cli::try_parse_from(["hydra", "create", "client", "--format", "yaml-ish"]).is_err());
}

#[test]
fn parses_get_list_update_delete() {
    let Command::Get(GetCmd { what: GetWhat::OAuth2Client { ids, .. } }) =
        parse(&["hydra", "get", "client", "a", "b"]).command
    else {
        panic!()
    };
    assert_eq!(ids, ["a", "b"]);
    assert!(Cli::try_parse_from(["hydra", "get", "oauth2-client"]).is_err());

    let Command::List(ListCmd { what: ListWhat::OAuth2Clients { page_size, page_token, .. } }) =
        parse(&["hydra", "list", "oauth2-clients"]).command
    else {
        panic!()
    };
    assert_eq!(page_size, 100);
    assert_eq!(page_token, None);
    let Command::List(ListCmd { what: ListWhat::OAuth2Clients { page_size, page_token, conn } }) =
        parse(&["hydra", "list", "clients", "--page-size", "5", "--page-token", "tok", "-q"]).command
    else {
        panic!()
    };
    assert_eq!((page_size, page_token.as_deref(), conn.quiet), (5, Some("tok"), true));

    let Command::Update(UpdateCmd { what: UpdateWhat::OAuth2Client { id_arg, fields, .. } }) =
        parse(&["hydra", "update", "oauth2-client", "cid", "--name", "n", "--skip-consent=false"]).command
    else {
        panic!()
    };
    assert_eq!(id_arg, "cid");
    assert_eq!(fields.name.as_deref(), Some("n"));
    assert_eq!(fields.skip_consent, Some(false));
    assert!(fields.grant_type.is_empty(), "update must not apply create defaults");

    let Command::Delete(DeleteCmd { what: DeleteWhat::OAuth2Client { ids, .. } }) =
        parse(&["hydra", "delete", "oauth2-clients", "x", "y"]).command
    else {
        panic!()
    };
    assert_eq!(ids, ["x", "y"]);
    let Command::Delete(DeleteCmd { what: DeleteWhat::AccessTokens { client_id, .. } }) =
        parse(&["hydra", "delete", "access-tokens", "cid"]).command
    else {
        panic!()
    };
    assert_eq!(client_id, "cid");
}

#[test]
fn parses_perform_introspect_revoke() {
    let Command::Perform(PerformCmd { what: PerformWhat::ClientCredentials { creds, scope, audience, conn } }) =
        parse(&[
            "hydra",
            "perform",
            "client-credentials",
            "--client-id",
            "id",
            "--client-secret",
            "sec",
            "--scope",
            "a,b",
            "--audience",
            "x",
            "--audience",
            "y",
            "--skip-tls-verify",
        ])
        .command
    else {
        panic!()
    };
    assert_eq!(creds.client_id.as_deref(), Some("id"));
    assert_eq!(creds.client_secret.as_deref(), Some("sec"));
    assert_eq!(scope, ["a", "b"]);
    assert_eq!(audience, ["x", "y"]);
    assert!(conn.skip_tls_verify);

    let Command::Introspect(IntrospectCmd { what: IntrospectWhat::Token { token, scope, .. } }) =
        parse(&["hydra", "introspect", "token", "tkn", "--scope", "s1,s2"]).command
    else {
        panic!()
    };
    assert_eq!((token.as_str(), scope), ("tkn", vec!["s1".to_string(), "s2".to_string()]));

    let Command::Revoke(RevokeCmd { what: RevokeWhat::Token { token, creds, conn } }) =
        parse(&["hydra", "revoke", "token", "t", "--client-id", "c", "--client-secret", "s", "-H", "X-A: b"]).command
    else {
        panic!()
    };
    assert_eq!(token, "t");
    assert_eq!(creds.client_id.as_deref(), Some("c"));
    assert_eq!(conn.http_header, ["X-A: b"]);
}

// ---------------------------------------------------------------------------
// Encoding helpers
// ---------------------------------------------------------------------------

#[test]
fn form_encoding() {
    assert_eq!(crate::http::form::form_escaped("aZ09-._~"), "aZ09-._~");
    assert_eq!(crate::http::form::form_escaped("a b"), "a+b");
    assert_eq!(crate::http::form::form_escaped("a+b&c=d/é"), "a%2Bb%26c%3Dd%2F%C3%A9");
    assert_eq!(
        form_body(&[("grant_type", "client_credentials"), ("scope", "a b")]),
        "grant_type=client_credentials&scope=a+b"
    );
    assert_eq!(form_decode("a+b%2Bc%C3%A9%zz"), "a b+cé%zz");
    assert_eq!(path_escape("a b/c"), "a%20b%2Fc");
}

#[test]
fn basic_auth_encodes_special_characters() {
    // "my client:1" / "p:a%s sé" → form-encoded then base64
    let h = basic_auth("my client:1", "p:a%s sé");
    let raw = "my+client%3A1:p%3Aa%25s+s%C3%A9";
    use base64::Engine;
    let expected = base64::engine::general_purpose::STANDARD.encode(raw);
    assert_eq!(h, format!("Basic {expected}"));
    assert_eq!(basic_auth("a", "b"), "Basic YTpi");
}

#[test]
fn link_header_parsing() {
    let link = r#"</admin/clients?page_size=5&page_token=abc>; rel="first",</admin/clients?page_size=5&page_token=n%3D1+x>; rel="next""#;
    assert_eq!(next_page_token(link).as_deref(), Some("n=1 x"));
    let only_first = r#"</admin/clients?page_size=5&page_token=abc>; rel="first""#;
    assert_eq!(next_page_token(only_first), None);
    assert_eq!(next_page_token(r#"<http://h/x?page_token=t2>;rel=next"#).as_deref(), Some("t2"));
    assert_eq!(next_page_token("garbage"), None);
}

#[test]
fn rfc3339_formatting() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    assert_eq!(rfc3339(-62_135_596_800), "0001-01-01T00:00:00Z");
}

#[test]
fn api_error_lines() {
    let b = br#"{"error":"invalid_client","error_description":"Client authentication failed."}"#;
    assert_eq!(api_error_line(401, b), "Error: 401 invalid_client: Client authentication failed.");
    let b = br#"{"error":"Unable to locate the resource","error_description":""}"#;
    assert_eq!(api_error_line(404, b), "Error: 404 Unable to locate the resource");
    let b = br#"{"error":{"code":404,"message":"Not Found","reason":"no route"}}"#;
    assert_eq!(api_error_line(404, b), "Error: 404 Not Found: no route");
    assert_eq!(api_error_line(502, b"bad\ngateway\n"), "Error: 502 bad gateway");
    assert_eq!(api_error_line(500, b""), "Error: 500");
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

#[test]
fn tables_match_go_tabwriter() {
    assert_eq!(row_table(&["ID"], &["abc".into()]), "ID\tabc\t\n");
    let client = json!({
        "client_id": "cid", "client_secret": "sec",
        "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
        "scope": "openid", "audience": ["a1", "a2"], "redirect_uris": ["http://a", "http://b"]
    });
    let cols = client_columns(&client);
    assert_eq!(cols[2], "authorization_code, refresh_token");
    assert_eq!(cols[5], "a1,a2");
    assert_eq!(cols[6], "http://a, http://b");
    let t = row_table(&commands::CLIENT_HEADER, &cols);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 7);
    // width of column 0 = len("RESPONSE TYPES")+1 = 15 → 16; "CLIENT ID" (9) needs 1 tab, "SCOPE" (5) 2 tabs.
    assert_eq!(lines[0], "CLIENT ID\tcid\t\t\t\t\t");
    assert_eq!(lines[4], "SCOPE\t\topenid\t\t\t\t\t");
    assert_eq!(lines[2], "GRANT TYPES\tauthorization_code, refresh_token\t");
    let m = multi_table(&["ID", "NAME"], &[vec!["a".into(), "longer-than-eight".into()]]);
    assert_eq!(m, "ID\tNAME\t\t\t\na\tlonger-than-eight\t\n");
}

#[test]
fn go_style_json() {
    let v = json!({"b": [], "a": {"x": "<&>"}, "c": [1, "s"], "d": {}});
    assert_eq!(go_json(&v, false), "{\"a\":{\"x\":\"\\u003c\\u0026\\u003e\"},\"b\":[],\"c\":[1,\"s\"],\"d\":{}}\n");
    assert_eq!(go_json(&json!({"k": [1], "e": []}), true), "{\n  \"e\": [],\n  \"k\": [\n    1\n  ]\n}\n");
    assert_eq!(go_json(&Value::String("id".into()), false), "\"id\"\n");
}

#[test]
fn token_and_introspection_columns() {
    let tok = json!({"access_token": "at", "token_type": "bearer", "expires_in": 3600, "scope": "a"});
    assert_eq!(token_columns(&tok, 0), ["at", "<empty>", "<empty>", "1970-01-01T01:00:00Z"]);
    let tok2 = json!({"access_token": "at", "refresh_token": "rt", "id_token": "it"});
    assert_eq!(token_columns(&tok2, 0)[1..3], ["rt", "it"]);
    assert_eq!(token_columns(&tok2, 0)[3], "0001-01-01T00:00:00Z");
    assert_eq!(
        token_json(&tok, 0, false),
        "{\"access_token\":\"at\",\"token_type\":\"bearer\",\"expiry\":\"1970-01-01T01:00:00Z\",\"expires_in\":3600}\n"
    );
    let intro =
        json!({"active": true, "sub": "u", "client_id": "c", "scope": "a b", "exp": 60, "token_use": "access_token"});
    assert_eq!(introspect_columns(&intro), ["true", "u", "c", "a b", "1970-01-01T00:01:00Z", "access_token"]);
    assert_eq!(introspect_columns(&json!({"active": false}))[0], "false");
}

#[test]
fn version_text_format() {
    assert_eq!(
        version_text("26.2.0", "abc", "2024-01-01"),
        "Version:    v26.2.0\nGit Hash:   abc\nBuild Time: 2024-01-01\n"
    );
    assert!(version_text("v1.0.0", "h", "t").starts_with("Version:    v1.0.0\n"));
}

// ---------------------------------------------------------------------------
// HTTP client
// ---------------------------------------------------------------------------

/// Serves one connection: reads the full request (head + Content-Length body),
/// sends `reply` and closes. Returns the raw request bytes.
fn serve_once(reply: Vec<u8>) -> (String, thread::JoinHandle<Vec<u8>>) {
    serve_many(vec![reply])
}

fn serve_many(replies: Vec<Vec<u8>>) -> (String, thread::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let h = thread::spawn(move || {
        let mut all = Vec::new();
        for reply in replies {
            let (mut s, _) = listener.accept().unwrap();
            let req = read_request(&mut s);
            all.extend_from_slice(&req);
            s.write_all(&reply).unwrap();
        }
        all
    });
    (format!("http://{addr}"), h)
}

fn read_request(s: &mut std::net::TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let cl = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse::<usize>().unwrap())
                .unwrap_or(0);
            if buf.len() >= end + 4 + cl {
                return buf;
            }
        }
        let n = s.read(&mut tmp).unwrap();
        if n == 0 {
            return buf;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

#[test]
fn http_content_length_response_and_request_bytes() {
    let (base, h) = serve_once(
        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-Multi: 1\r\ncontent-length: 11\r\nConnection: close\r\n\r\n{\"a\":\"bc\"}\n".to_vec(),
    );
    let resp = httpclient::request(
        "POST",
        &format!("{base}/x/y?q=1"),
        &[("Authorization", "Basic abc")],
        Some(("application/json", b"{\"k\":1}")),
    )
    .unwrap();
    assert_eq!(resp.status, 201);
    assert_eq!(resp.body, b"{\"a\":\"bc\"}\n");
    assert_eq!(resp.header("CONTENT-TYPE"), Some("application/json"));
    assert_eq!(resp.header("x-multi"), Some("1"));
    assert_eq!(resp.header("missing"), None);
    let req = String::from_utf8(h.join().unwrap()).unwrap();
    let lower = req.to_ascii_lowercase();
    let port = base.rsplit(':').next().unwrap();
    assert!(req.starts_with("POST /x/y?q=1 HTTP/1.1\r\n"), "{req}");
    assert!(lower.contains(&format!("\r\nhost: 127.0.0.1:{port}\r\n")), "{req}");
    assert!(lower.contains("\r\nauthorization: basic abc\r\n"), "{req}");
    assert!(lower.contains("\r\ncontent-type: application/json\r\n"), "{req}");
    assert!(lower.contains("\r\ncontent-length: 7\r\n"), "{req}");
    assert!(req.ends_with("\r\n\r\n{\"k\":1}"));
}

#[test]
fn http_chunked_response() {
    let (base, h) = serve_once(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\nWiki\r\n6;ext=1\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\n\r\n".to_vec(),
    );
    let resp = httpclient::request("GET", &format!("{base}/"), &[], None).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(String::from_utf8(resp.body).unwrap(), "Wikipedia in \r\n\r\nchunks.");
    let req = String::from_utf8(h.join().unwrap()).unwrap();
    assert!(req.starts_with("GET / HTTP/1.1\r\n"));
    assert!(!req.to_ascii_lowercase().contains("content-length"), "GET without body sends no Content-Length");
}

#[test]
fn http_error_statuses_are_answers_and_redirects_are_not_followed() {
    let (base, h) =
        serve_once(b"HTTP/1.1 404 Not Found\r\nContent-Length: 8\r\nConnection: close\r\n\r\nnot here".to_vec());
    let resp = httpclient::request("DELETE", &format!("{base}/c/1"), &[], None).unwrap();
    assert_eq!(resp.status, 404);
    assert_eq!(resp.body, b"not here");
    assert!(String::from_utf8(h.join().unwrap()).unwrap().starts_with("DELETE /c/1 HTTP/1.1\r\n"));
    let (base, h) = serve_once(
        b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/elsewhere\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
    );
    let resp = httpclient::request("GET", &format!("{base}/"), &[], None).unwrap();
    assert_eq!(resp.status, 302);
    h.join().unwrap();
}

#[test]
fn http_errors() {
    assert!(httpclient::request("GET", "ftp://example.com/", &[], None).unwrap_err().contains("scheme"));
    // Closed port: bind then drop to get a free port.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    assert!(httpclient::request("GET", &format!("http://127.0.0.1:{port}/"), &[], None).is_err());
    let (base, h) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort".to_vec());
    assert!(httpclient::request("GET", &base, &[], None).is_err(), "a truncated body is an error");
    h.join().unwrap();
    let (base, h) = serve_once(b"garbage\r\n\r\n".to_vec());
    assert!(httpclient::request("GET", &base, &[], None).is_err(), "a malformed answer is an error");
    h.join().unwrap();
}

#[test]
fn url_parsing() {
    let u = parse_url("http://[::1]:4445/admin/clients?x=1#frag").unwrap();
    assert_eq!((u.host.as_str(), u.port, u.path_and_query.as_str()), ("[::1]", 4445, "/admin/clients?x=1"));
    let u = parse_url("HTTP://Example.com").unwrap();
    assert_eq!((u.host.as_str(), u.port, u.path_and_query.as_str(), u.https), ("Example.com", 80, "/", false));
    let u = parse_url("https://auth.example.com").unwrap();
    assert_eq!((u.port, u.https, u.explicit_port), (443, true, false));
    assert_eq!(parse_url("http://h?q=1").unwrap().path_and_query, "/?q=1");
    assert!(parse_url("http://h:99999/").is_err());
    assert!(parse_url("ftp://h/").is_err());
    assert!(parse_url("http://[::1/").is_err());
    assert!(parse_url("http://user:pw@h/").is_err());
    assert!(parse_url("no-scheme").is_err());
}

#[test]
fn formats_parse_and_render() {
    use std::str::FromStr;
    assert_eq!(Format::from_str("yaml").unwrap(), Format::Yaml);
    assert_eq!(Format::from_str("jsonpath={.client_id}").unwrap(), Format::JsonPath("{.client_id}".into()));
    assert_eq!(Format::from_str("jsonpointer=/client_id").unwrap(), Format::JsonPointer("/client_id".into()));
    assert_eq!(Format::from_str("default").unwrap(), Format::Table);
    assert!(Format::from_str("xml").is_err());
    let Command::List(ListCmd { what: ListWhat::OAuth2Clients { conn, .. } }) =
        parse(&["hydra", "list", "clients", "--format", "jsonpath={.items[0].client_id}"]).command
    else {
        panic!()
    };
    assert_eq!(conn.format, Format::JsonPath("{.items[0].client_id}".into()));
}

// ---------------------------------------------------------------------------
// End to end: run_management / execute against a fake server
// ---------------------------------------------------------------------------

fn run(args: &[&str]) -> (i32, String, String) {
    let cli = parse(args);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = execute(cli.command, &mut out, &mut err);
    (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

fn http_json(status: &str, body: &str, extra: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn e2e_get_client() {
    let body = r#"{"client_id":"my id/1","client_name":"n","grant_types":["client_credentials"],"response_types":["token"],"scope":"a b","audience":[],"redirect_uris":["http://x/cb"]}"#;
    let (base, h) = serve_once(http_json("200 OK", body, ""));
    let (code, out, err) = run(&["hydra", "get", "oauth2-client", "my id/1", "--endpoint", &base, "--format", "json"]);
    assert_eq!(code, 0, "stderr: {err}");
    let req = String::from_utf8(h.join().unwrap()).unwrap();
    assert!(req.starts_with("GET /admin/clients/my%20id%2F1 HTTP/1.1\r\n"), "{req}");
    assert!(req.to_ascii_lowercase().contains("accept: application/json\r\n"), "{req}");
    let printed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(printed["client_id"], "my id/1");
    assert!(out.ends_with("}\n") && !out.contains("\n  "), "compact json: {out}");

    // Table format.
    let (base, h) = serve_once(http_json("200 OK", body, ""));
    let (code, out, _) = run(&["hydra", "get", "client", "my id/1", "-e", &base]);
    h.join().unwrap();
    assert_eq!(code, 0);
    assert!(out.starts_with("CLIENT ID\tmy id/1\t"), "{out}");
    assert!(out.contains("\nGRANT TYPES\tclient_credentials\t"));

    // Error answer → one stderr line, exit 1.
    let (base, h) = serve_once(http_json(
        "404 Not Found",
        r#"{"error":"Unable to locate the resource","error_description":""}"#,
        "",
    ));
    let (code, out, err) = run(&["hydra", "get", "client", "nope", "-e", &base]);
    h.join().unwrap();
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert_eq!(err, "Error: 404 Unable to locate the resource\n");
}

#[test]
fn e2e_perform_client_credentials() {
    let (base, h) = serve_once(http_json(
        "200 OK",
        r#"{"access_token":"ory_at_x","token_type":"bearer","expires_in":3599,"scope":"a b"}"#,
        "Cache-Control: no-store\r\n",
    ));
    let (code, out, err) = run(&[
        "hydra",
        "perform",
        "client-credentials",
        "--client-id",
        "my:client",
        "--client-secret",
        "s3cr%t é",
        "--scope",
        "a,b",
        "--audience",
        "https://aud",
        "--endpoint",
        &format!("{base}/"),
    ]);
    assert_eq!(code, 0, "stderr: {err}");
    let req = String::from_utf8(h.join().unwrap()).unwrap();
    assert!(req.starts_with("POST /oauth2/token HTTP/1.1\r\n"), "{req}");
    assert!(req.contains(&format!("\r\nauthorization: {}\r\n", basic_auth("my:client", "s3cr%t é"))), "{req}");
    assert!(req.to_ascii_lowercase().contains("content-type: application/x-www-form-urlencoded\r\n"), "{req}");
    let body = req.split("\r\n\r\n").nth(1).unwrap();
    assert_eq!(body, "grant_type=client_credentials&scope=a+b&audience=https%3A%2F%2Faud");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].starts_with("ACCESS TOKEN\tory_at_x"));
    assert!(lines[1].starts_with("REFRESH TOKEN\t<empty>"));
    assert!(lines[3].starts_with("EXPIRY\t\t") && lines[3].contains('T') && lines[3].trim_end().ends_with('Z'));
    assert!(!err.contains("s3cr"), "secret must never reach stderr");

    // Server rejects credentials.
    let (base, h) = serve_once(http_json(
        "401 Unauthorized",
        r#"{"error":"invalid_client","error_description":"Client authentication failed."}"#,
        "",
    ));
    let (code, _, err) = run(&[
        "hydra",
        "perform",
        "client-credentials",
        "--client-id",
        "c",
        "--client-secret",
        "topsecret",
        "-e",
        &base,
    ]);
    h.join().unwrap();
    assert_eq!(code, 1);
    assert_eq!(err, "Error: 401 invalid_client: Client authentication failed.\n");
}

#[test]
fn e2e_missing_credentials_and_connection_failure() {
    let (code, out, err) = run(&["hydra", "revoke", "token", "t", "--client-id", "", "-e", "http://127.0.0.1:1"]);
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert!(err.contains("Please provide a Client ID and Client Secret"));
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let (code, _, err) = run(&["hydra", "introspect", "token", "secret-token", "-e", &url]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&url) && !err.contains("secret-token"), "{err}");
    // run_management itself returns the exit code.
    let cli = parse(&["hydra", "delete", "access-tokens", "c", "-e", &url]);
    assert_eq!(run_management(cli.command), 1);
    assert_eq!(run_management(Command::Version), 1);
}

#[test]
fn e2e_list_with_next_page() {
    let body = r#"[{"client_id":"a","scope":"s"},{"client_id":"b"}]"#;
    let link = "Link: </admin/clients?page_size=2&page_token=abc>; rel=\"first\",</admin/clients?page_size=2&page_token=NEXT>; rel=\"next\"\r\n";
    let (base, h) = serve_many(vec![http_json("200 OK", body, link), http_json("200 OK", "[]", "")]);
    let (code, out, _) = run(&[
        "hydra",
        "list",
        "oauth2-clients",
        "--page-size",
        "2",
        "--page-token",
        "t 1",
        "-e",
        &base,
        "--format",
        "json",
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "{\"items\":[{\"client_id\":\"a\",\"scope\":\"s\"},{\"client_id\":\"b\"}],\"next_page_token\":\"NEXT\",\"is_last_page\":false}\n"
    );
    let (code, out, _) = run(&["hydra", "list", "clients", "-e", &base]);
    assert_eq!(code, 0);
    let req = String::from_utf8(h.join().unwrap()).unwrap();
    assert!(req.starts_with("GET /admin/clients?page_size=2&page_token=t+1 HTTP/1.1\r\n"), "{req}");
    assert!(req.contains("GET /admin/clients?page_size=100 HTTP/1.1\r\n"));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("CLIENT ID\t"));
    assert_eq!(lines[1], "\t\t");
    assert_eq!(lines[2], "NEXT PAGE TOKEN\t\t");
    assert_eq!(lines[3], "IS LAST PAGE\ttrue\t");
}

#[test]
fn e2e_update_and_delete() {
    let current = r#"{"client_id":"c1","client_name":"old","scope":"a","metadata":{}}"#;
    let updated = r#"{"client_id":"c1","client_name":"new","scope":"x y"}"#;
    let (base, h) = serve_many(vec![http_json("200 OK", current, ""), http_json("200 OK", updated, "")]);
    let (code, out, err) =
        run(&["hydra", "update", "client", "c1", "--name", "new", "--scope", "x", "--scope", "y", "-e", &base, "-q"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "c1\n");
    let req = String::from_utf8(h.join().unwrap()).unwrap();
    let put = &req[req.find("PUT /admin/clients/c1 HTTP/1.1").expect("PUT sent")..];
    let sent: Value = serde_json::from_str(put.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(sent, json!({"client_id":"c1","client_name":"new","scope":"x y","metadata":{}}));

    let (base, h) = serve_many(vec![
        b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
        http_json("404 Not Found", r#"{"error":"Unable to locate the resource","error_description":""}"#, ""),
        b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
    ]);
    let (code, out, err) = run(&["hydra", "delete", "client", "a", "missing", "b", "-e", &base, "--format", "json"]);
    h.join().unwrap();
    assert_eq!(code, 1);
    assert_eq!(out, "[\"a\",\"b\"]\n");
    assert_eq!(err, "Error: missing: 404 Unable to locate the resource\n");
}
