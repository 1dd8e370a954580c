//! Execution of the management commands (HTTP calls + output).

use std::io::{Read, Write};

use base64::Engine;
use serde_json::{Map, Value};

use super::httpclient::{self, Response};
use super::output::{go_json, go_json_ordered, multi_table, row_table};
use super::{
    ClientAuth, ClientFields, Command, ConnFlags, CreateWhat, DeleteWhat, Format, GetWhat, ImportWhat, IntrospectWhat,
    KeyFlags, ListWhat, PerformWhat, RevokeWhat, UpdateWhat, DEFAULT_ADMIN_ENDPOINT, DEFAULT_PUBLIC_ENDPOINT,
};
use crate::dates::rfc3339;
use crate::http::form::form_escaped;

type Out<'a> = &'a mut dyn Write;

pub(crate) const CLIENT_HEADER: [&str; 7] =
    ["CLIENT ID", "CLIENT SECRET", "GRANT TYPES", "RESPONSE TYPES", "SCOPE", "AUDIENCE", "REDIRECT URIS"];
pub(crate) const TOKEN_HEADER: [&str; 4] = ["ACCESS TOKEN", "REFRESH TOKEN", "ID TOKEN", "EXPIRY"];
pub(crate) const INTROSPECT_HEADER: [&str; 6] = ["ACTIVE", "SUBJECT", "CLIENT ID", "SCOPE", "EXPIRY", "TOKEN USE"];
const MISSING_CREDENTIALS: &str = "Please provide a Client ID and Client Secret using flags --client-id and --client-secret, or environment variables OAUTH2_CLIENT_ID and OAUTH2_CLIENT_SECRET";

/// Runs one management command, writing results to `out` and errors to `err`.
pub(crate) fn execute(cmd: Command, out: Out, err: Out) -> i32 {
    let result = match cmd {
        Command::Serve { .. } | Command::Version => {
            Err("Error: `serve` and `version` are not management commands".to_string())
        }
        Command::Create(c) => match c.what {
            CreateWhat::OAuth2Client { fields, conn } => create_client(&fields, &conn, out),
            CreateWhat::Jwk { set, kid, key, conn } => create_jwk(&set, kid.as_deref(), &key, &conn, out),
        },
        Command::Get(c) => match c.what {
            GetWhat::OAuth2Client { ids, conn } => get_clients(&ids, &conn, out),
            GetWhat::Jwk { sets, public, conn } => get_jwks(&sets, public, &conn, out),
        },
        Command::List(c) => match c.what {
            ListWhat::OAuth2Clients { page_size, page_token, conn } => {
                list_clients(page_size, page_token.as_deref(), &conn, out)
            }
        },
        Command::Update(c) => match c.what {
            UpdateWhat::OAuth2Client { id_arg, fields, conn } => update_client(&id_arg, &fields, &conn, out),
        },
        Command::Delete(c) => match c.what {
            DeleteWhat::OAuth2Client { ids, conn } => delete_clients(&ids, &conn, out, err),
            DeleteWhat::AccessTokens { client_id, conn } => delete_access_tokens(&client_id, &conn, out),
            DeleteWhat::Jwk { sets, conn } => delete_jwks(&sets, &conn, out),
        },
        Command::Import(c) => match c.what {
            ImportWhat::OAuth2Client { files, conn } => import_clients(&files, &conn, out, err),
            ImportWhat::Jwk { set, files, key, conn } => import_jwks(&set, &files, &key, &conn, out),
        },
        Command::Janitor(c) => super::janitor::janitor(&c, out),
        Command::Migrate(c) => {
            use super::migrate::{run, Action};
            match c.what {
                super::MigrateWhat::Status { database_url, read_from_env, .. } => {
                    run(Action::Status, database_url.as_deref(), read_from_env, out)
                }
                super::MigrateWhat::Sql { args, read_from_env, .. } => {
                    let (action, url) = match args.first().map(String::as_str) {
                        Some("up") => (Some(Action::Up), args.get(1)),
                        Some("down") => (Some(Action::Down), args.get(1)),
                        Some("status") => (Some(Action::Status), args.get(1)),
                        Some(_) if args.len() == 1 => (Some(Action::Up), args.first()),
                        None => (Some(Action::Up), None),
                        Some(_) => (None, None),
                    };
                    match action {
                        Some(a) => run(a, url.map(String::as_str), read_from_env, out),
                        None => Err("Error: usage: hydra migrate sql [up|down|status] [database_url]".into()),
                    }
                }
            }
        }
        Command::Example(c) => match c.what {
            super::ExampleWhat::LoginConsent { port, conn } => Ctx::new(&conn, DEFAULT_ADMIN_ENDPOINT)
                .and_then(|ctx| super::example::login_consent(&ctx.base, port, out)),
        },
        Command::Perform(c) => match c.what {
            PerformWhat::AuthorizationCode { creds, scope, port, conn } => {
                authorization_code(&creds, &scope, port, &conn, out)
            }
            PerformWhat::ClientCredentials { creds, scope, audience, conn } => {
                client_credentials(&creds, &scope, &audience, &conn, out)
            }
        },
        Command::Introspect(c) => match c.what {
            IntrospectWhat::Token { token, scope, conn } => introspect(&token, &scope, &conn, out),
        },
        Command::Revoke(c) => match c.what {
            RevokeWhat::Token { token, creds, conn } => revoke(&token, &creds, &conn, out),
        },
    };
    match result {
        Ok(()) => 0,
        Err(msg) => {
            if !msg.is_empty() {
                let _ = writeln!(err, "{}", one_line(&msg));
            }
            1
        }
    }
}

// ---------------------------------------------------------------------------
// Encoding helpers
// ---------------------------------------------------------------------------

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Percent-encodes one path segment (everything except unreserved characters).
pub(crate) fn path_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if is_unreserved(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes a form/query component (`+` is a space).
pub(crate) fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Builds a form body from key/value pairs.
pub(crate) fn form_body(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", form_escaped(k), form_escaped(v))).collect::<Vec<_>>().join("&")
}

/// `Authorization` header value for `client_secret_basic` (RFC 6749 §2.3.1:
/// id and secret are form-encoded before base64).
pub(crate) fn basic_auth(id: &str, secret: &str) -> String {
    let raw = format!("{}:{}", form_escaped(id), form_escaped(secret));
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw.as_bytes()))
}

/// Extracts the `page_token` of the `rel="next"` link of a `Link` header.
pub(crate) fn next_page_token(link: &str) -> Option<String> {
    let mut rest = link;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let close = after.find('>')?;
        let url = &after[..close];
        let params_all = &after[close + 1..];
        let params = &params_all[..params_all.find('<').unwrap_or(params_all.len())];
        let is_next = params.split(';').any(|p| {
            let p = p.trim().trim_end_matches(',').trim();
            match p.split_once('=') {
                Some((k, v)) if k.trim().eq_ignore_ascii_case("rel") => {
                    v.trim().trim_matches('"').split_whitespace().any(|r| r.eq_ignore_ascii_case("next"))
                }
                _ => false,
            }
        });
        if is_next {
            let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
            let query = query.split('#').next().unwrap_or("");
            return query.split('&').find_map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (form_decode(k) == "page_token").then(|| form_decode(v))
            });
        }
        rest = &after[close + 1..];
    }
    None
}

fn one_line(s: &str) -> String {
    s.split(['\r', '\n']).map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

/// One-line error for a non-2xx answer.
pub(crate) fn api_error_line(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut msg = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => match m.get("error") {
            Some(Value::String(e)) => {
                let d = m.get("error_description").and_then(Value::as_str).unwrap_or("");
                join_err(e, d)
            }
            Some(Value::Object(e)) => {
                let msg = e.get("message").and_then(Value::as_str).unwrap_or("error");
                let d = e.get("reason").and_then(Value::as_str).unwrap_or("");
                join_err(msg, d)
            }
            _ => text.trim().to_string(),
        },
        _ => text.trim().to_string(),
    };
    msg = one_line(&msg);
    if msg.chars().count() > 500 {
        msg = msg.chars().take(500).collect::<String>() + "...";
    }
    if msg.is_empty() {
        format!("Error: {status}")
    } else {
        format!("Error: {status} {msg}")
    }
}

fn join_err(e: &str, d: &str) -> String {
    if d.is_empty() {
        e.to_string()
    } else {
        format!("{e}: {d}")
    }
}

// ---------------------------------------------------------------------------
// HTTP context
// ---------------------------------------------------------------------------

struct Ctx {
    base: String,
    headers: Vec<(String, String)>,
    format: Format,
    quiet: bool,
    tls: httpclient::Options,
}

impl Ctx {
    fn new(conn: &ConnFlags, default: &str) -> Result<Ctx, String> {
        let base = conn
            .endpoint
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .unwrap_or(default)
            .trim_end_matches('/')
            .to_string();
        httpclient::parse_url(&base).map_err(|e| format!("Error: invalid endpoint: {e}"))?;
        let mut headers = Vec::new();
        for h in &conn.http_header {
            let (k, v) = h
                .split_once(':')
                .ok_or_else(|| "Error: HTTP headers must be given as `Name: value` (-H/--http-header)".to_string())?;
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        let tls = httpclient::Options { skip_tls_verify: conn.skip_tls_verify };
        Ok(Ctx { base, headers, format: conn.format.clone(), quiet: conn.quiet, tls })
    }

    /// Performs a request; transport failures become a one-line error naming the URL.
    fn call(
        &self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Result<Response, String> {
        let url = format!("{}{}", self.base, path);
        let mut headers: Vec<(&str, &str)> = vec![("Accept", "application/json")];
        headers.extend(extra.iter().copied());
        headers.extend(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        httpclient::request_with(self.tls, method, &url, &headers, body)
            .map_err(|e| format!("Error: request to {url} failed: {e}"))
    }

    /// Like [`Ctx::call`] but turns non-2xx answers into an error line.
    fn call_ok(
        &self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Result<Response, String> {
        let resp = self.call(method, path, extra, body)?;
        if (200..300).contains(&resp.status) {
            Ok(resp)
        } else {
            Err(api_error_line(resp.status, &resp.body))
        }
    }
}

fn parse_json(resp: &Response) -> Result<Value, String> {
    serde_json::from_slice(&resp.body).map_err(|e| format!("Error: the server answered with invalid JSON: {e}"))
}

fn write_out(out: Out, s: &str) -> Result<(), String> {
    out.write_all(s.as_bytes()).map_err(|e| format!("Error: cannot write output: {e}"))
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

fn str_field(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn join_field(v: &Value, key: &str, sep: &str) -> String {
    match v.get(key) {
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string()))
            .collect::<Vec<_>>()
            .join(sep),
        _ => String::new(),
    }
}

/// Table columns of an OAuth 2.0 client (Hydra joins audience with "," and
/// the other lists with ", ").
pub(crate) fn client_columns(c: &Value) -> Vec<String> {
    vec![
        str_field(c, "client_id"),
        str_field(c, "client_secret"),
        join_field(c, "grant_types", ", "),
        join_field(c, "response_types", ", "),
        str_field(c, "scope"),
        join_field(c, "audience", ","),
        join_field(c, "redirect_uris", ", "),
    ]
}

/// Single item output (Go `cmdx.PrintRow`).
fn render_row(ctx: &Ctx, header: &[&str], columns: &[String], json: &Value) -> Result<String, String> {
    if ctx.quiet {
        return Ok(format!("{}\n", columns.first().map(String::as_str).unwrap_or("")));
    }
    render(&ctx.format, json, || row_table(header, columns))
}

/// One output in the chosen format: `table` for tables, every other format from the JSON.
/// A jsonpath or jsonpointer that selects nothing is an error (exit code 1), not empty output.
fn render(format: &Format, json: &Value, table: impl FnOnce() -> String) -> Result<String, String> {
    let line = |s: String| if s.ends_with('\n') { s } else { s + "\n" };
    Ok(match format {
        Format::Table => table(),
        Format::Json => go_json(json, false),
        Format::JsonPretty => go_json(json, true),
        Format::Yaml => serde_yaml_ng::to_string(json).map_err(|e| format!("Error: {e}"))?,
        Format::JsonPath(t) => line(super::jsonpath::render(t, json).map_err(|e| format!("Error: {e}"))?),
        Format::JsonPointer(p) => line(super::jsonpath::pointer(p, json).map_err(|e| format!("Error: {e}"))?),
    })
}

/// Collection output (Go `cmdx.PrintTable`).
fn render_table(ctx: &Ctx, header: &[&str], rows: &[Vec<String>], json: &Value) -> Result<String, String> {
    if ctx.quiet {
        if rows.is_empty() {
            return Ok("\n".to_string());
        }
        return Ok(rows.iter().map(|r| format!("{}\n", r.first().map(String::as_str).unwrap_or(""))).collect());
    }
    render(&ctx.format, json, || multi_table(header, rows))
}

fn render_client(ctx: &Ctx, client: &Value) -> Result<String, String> {
    render_row(ctx, &CLIENT_HEADER, &client_columns(client), client)
}

fn render_ids(ctx: &Ctx, ids: &[String]) -> Result<String, String> {
    match ids {
        [] => Ok(String::new()),
        [one] => render_row(ctx, &["ID"], std::slice::from_ref(one), &Value::String(one.clone())),
        many => {
            let rows: Vec<Vec<String>> = many.iter().map(|i| vec![i.clone()]).collect();
            let json = Value::Array(many.iter().cloned().map(Value::String).collect());
            render_table(ctx, &["ID"], &rows, &json)
        }
    }
}

// ---------------------------------------------------------------------------
// Client body construction
// ---------------------------------------------------------------------------

fn read_file_arg(path: &str) -> Result<Value, String> {
    let mut data = Vec::new();
    if path == "-" {
        std::io::stdin().read_to_end(&mut data).map_err(|e| format!("Error: cannot read stdin: {e}"))?;
    } else {
        data = std::fs::read(path).map_err(|e| format!("Error: cannot read {path}: {e}"))?;
    }
    serde_json::from_slice(&data).map_err(|e| format!("Error: {path} does not contain valid JSON: {e}"))
}

fn str_list(v: &[String]) -> Value {
    Value::Array(v.iter().cloned().map(Value::String).collect())
}

/// Applies the flags that were given to a client JSON object.
pub(crate) fn apply_client_fields(
    obj: &mut Map<String, Value>,
    f: &ClientFields,
    include_id: bool,
) -> Result<(), String> {
    let mut set_str = |key: &str, v: &Option<String>| {
        if let Some(v) = v {
            obj.insert(key.to_string(), Value::String(v.clone()));
        }
    };
    if include_id {
        set_str("client_id", &f.id);
    }
    set_str("client_name", &f.name);
    set_str("client_secret", &f.secret);
    set_str("token_endpoint_auth_method", &f.token_endpoint_auth_method);
    set_str("jwks_uri", &f.jwks_uri);
    set_str("owner", &f.owner);
    set_str("policy_uri", &f.policy_uri);
    set_str("tos_uri", &f.tos_uri);
    set_str("client_uri", &f.client_uri);
    set_str("logo_uri", &f.logo_uri);
    set_str("subject_type", &f.subject_type);
    set_str("frontchannel_logout_uri", &f.frontchannel_logout_callback);
    set_str("backchannel_logout_uri", &f.backchannel_logout_callback);
    set_str("request_object_signing_alg", &f.request_object_signing_alg);
    set_str("sector_identifier_uri", &f.sector_identifier_uri);
    set_str("access_token_strategy", &f.access_token_strategy);

    let lists: [(&str, &Vec<String>); 8] = [
        ("redirect_uris", &f.redirect_uri),
        ("grant_types", &f.grant_type),
        ("response_types", &f.response_type),
        ("audience", &f.audience),
        ("allowed_cors_origins", &f.allowed_cors_origin),
        ("post_logout_redirect_uris", &f.post_logout_callback),
        ("contacts", &f.contact),
        ("request_uris", &f.request_uri),
    ];
    for (key, v) in lists {
        if !v.is_empty() {
            obj.insert(key.to_string(), str_list(v));
        }
    }
    if !f.scope.is_empty() {
        obj.insert("scope".to_string(), Value::String(f.scope.join(" ")));
    }
    let bools = [
        ("frontchannel_logout_session_required", f.frontchannel_logout_session_required),
        ("backchannel_logout_session_required", f.backchannel_logout_session_required),
        ("skip_consent", f.skip_consent),
        ("skip_logout_consent", f.skip_logout_consent),
    ];
    for (key, v) in bools {
        if let Some(b) = v {
            obj.insert(key.to_string(), Value::Bool(b));
        }
    }
    if let Some(m) = &f.metadata {
        let v: Value = serde_json::from_str(m).map_err(|e| format!("Error: --metadata is not valid JSON: {e}"))?;
        obj.insert("metadata".to_string(), v);
    }
    Ok(())
}

/// JSON body for `create oauth2-client` from flags, with Hydra's CLI defaults.
pub(crate) fn create_body(f: &ClientFields) -> Result<Value, String> {
    let mut obj = Map::new();
    obj.insert("grant_types".into(), str_list(&["authorization_code".into()]));
    obj.insert("response_types".into(), str_list(&["code".into()]));
    obj.insert("token_endpoint_auth_method".into(), Value::String("client_secret_basic".into()));
    obj.insert("subject_type".into(), Value::String("public".into()));
    obj.insert("request_object_signing_alg".into(), Value::String("RS256".into()));
    obj.insert("metadata".into(), Value::Object(Map::new()));
    apply_client_fields(&mut obj, f, true)?;
    Ok(Value::Object(obj))
}

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

fn client_path(id: &str) -> String {
    format!("/admin/clients/{}", path_escape(id))
}

fn create_client(f: &ClientFields, conn: &ConnFlags, out: Out) -> Result<(), String> {
    let ctx = Ctx::new(conn, DEFAULT_ADMIN_ENDPOINT)?;
    let body = match &f.file {
        Some(path) => read_file_arg(path)?,
        None => create_body(f)?,
    };
    let bytes = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
    let resp = ctx.call_ok("POST", "/admin/clients", &[], Some(("application/json", &bytes)))?;
    let client = parse_json(&resp)?;
    write_out(out, &render_client(&ctx, &client)?)
}

fn get_clients(ids: &[String], conn: &ConnFlags, out: Out) -> Result<(), String> {
    let ctx = Ctx::new(conn, DEFAULT_ADMIN_ENDPOINT)?;
    let mut clients = Vec::with_capacity(ids.len());
    for id in ids {
        let resp = ctx.call_ok("GET", &client_path(id), &[], None)?;
        clients.push(parse_json(&resp)?);
    }
    let text = match clients.as_slice() {
        [one] => render_client(&ctx, one)?,
        many => {
            let rows: Vec<Vec<String>> = many.iter().map(client_columns).collect();
            render_table(&ctx, &CLIENT_HEADER, &rows, &Value::Array(many.to_vec()))?
        }
    };
    write_out(out, &text)
}

fn list_clients(page_size: u32, page_token: Option<&str>, conn: &ConnFlags, out: Out) -> Result<(), String> {
    let ctx = Ctx::new(conn, DEFAULT_ADMIN_ENDPOINT)?;
    let mut path = format!("/admin/clients?page_size={page_size}");
    if let Some(t) = page_token.filter(|t| !t.is_empty()) {
        path.push_str("&page_token=");
        path.push_str(&form_escaped(t));
    }
    let resp = ctx.call_ok("GET", &path, &[], None)?;
    let items = match parse_json(&resp)? {
        Value::Array(a) => a,
        Value::Null => Vec::new(),
        _ => return Err("Error: the server did not answer with a JSON array".to_string()),
    };
    let next = resp.header_all("link").iter().find_map(|l| next_page_token(l)).unwrap_or_default();
    write_out(out, &render_client_list(&ctx, &items, &next)?)
}

/// Output of `list oauth2-clients` (Go `cmdx.PaginatedList`).
fn render_client_list(ctx: &Ctx, items: &[Value], next: &str) -> Result<String, String> {
    let is_last = next.is_empty();
    if ctx.quiet {
        return Ok(items.iter().map(|c| format!("{}\n", str_field(c, "client_id"))).collect());
    }
    let items = Value::Array(items.to_vec());
    let next_v = Value::String(next.to_string());
    let last = Value::Bool(is_last);
    let fields = [("items", &items), ("next_page_token", &next_v), ("is_last_page", &last)];
    match ctx.format {
        Format::Table => {
            let mut rows: Vec<Vec<String>> = items.as_array().into_iter().flatten().map(client_columns).collect();
            rows.push(vec![String::new()]);
            rows.push(vec!["NEXT PAGE TOKEN".into(), next.to_string()]);
            rows.push(vec!["IS LAST PAGE".into(), is_last.to_string()]);
            Ok(multi_table(&CLIENT_HEADER, &rows))
        }
        // Go's field order for the JSON forms.
        Format::Json | Format::JsonPretty => Ok(go_json_ordered(&fields, ctx.format == Format::JsonPretty)),
        _ => {
            let obj: serde_json::Map<String, Value> =
                fields.iter().map(|(k, v)| (k.to_string(), (*v).clone())).collect();
            render(&ctx.format, &Value::Object(obj), String::new)
        }
    }
}

fn update_client(id: &str, f: &ClientFields, conn: &ConnFlags, out: Out) -> Result<(), String> {
    let ctx = Ctx::new(conn, DEFAULT_ADMIN_ENDPOINT)?;
    let body = match &f.file {
        Some(path) => read_file_arg(path)?,
        None => {
            let resp = ctx.call_ok("GET", &client_path(id), &[], None)?;
            let mut obj = match parse_json(&resp)? {
                Value::Object(m) => m,
                _ => return Err("Error: the server did not answer with a JSON object".into()),
            };
            apply_client_fields(&mut obj, f, false)?;
            Value::Object(obj)
        }
    };
    let bytes = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
    let resp = ctx.call_ok("PUT", &client_path(id), &[], Some(("application/json", &bytes)))?;
    let client = parse_json(&resp)?;
    write_out(out, &render_client(&ctx, &client)?)
}

fn delete_clients(ids: &[String], conn: &ConnFlags, out: Out, err: Out) -> Result<(), String> {
    let ctx = Ctx::new(conn, DEFAULT_ADMIN_ENDPOINT)?;
    let mut deleted = Vec::new();
    let mut failures = Vec::new();
    for id in ids {
        let res = ctx.call_ok("DELETE", &client_path(id), &[], None);
        match res {
            Ok(_) => deleted.push(id.clone()),
            Err(e) => failures.push(format!("Error: {}: {}", id, e.strip_prefix("Error: ").unwrap_or(&e))),
        }
    }
    write_out(out, &render_ids(&ctx, &deleted)?)?;
    if failures.is_empty() {
        return Ok(());
    }
    for f in &failures {
        let _ = writeln!(err, "{}", one_line(f));
    }
    Err(String::new())
}

fn delete_access_tokens(client_id: &str, conn: &ConnFlags, out: Out) -> Result<(), String> {
    let ctx = Ctx::new(conn, DEFAULT_ADMIN_ENDPOINT)?;
    let path = format!("/admin/oauth2/tokens?client_id={}", form_escaped(client_id));
    ctx.call_ok("DELETE", &path, &[], None)?;
    write_out(out, &render_ids(&ctx, &[client_id.to_string()])?)
}

pub(crate) const JWK_HEADER: [&str; 4] = ["SET ID", "KEY ID", "ALGORITHM", "USE"];

fn keys_path(set: &str) -> String {
    format!("/admin/keys/{}", path_escape(set))
}

/// A key without its private members (`--public`).
fn public_jwk(key: &Value) -> Value {
    let mut k = key.clone();
    if let Some(o) = k.as_object_mut() {
        for m in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            o.remove(m);
        }
    }
    k
}

/// Prints key sets as Hydra's CLI does: a table row per key, or `{"set","keys"}` per set.
fn render_jwks(ctx: &Ctx, sets: &[(String, Vec<Value>)], public: bool) -> Result<String, String> {
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for (set, keys) in sets {
        let keys: Vec<Value> = keys.iter().map(|k| if public { public_jwk(k) } else { k.clone() }).collect();
        for k in &keys {
            rows.push(vec![set.clone(), str_field(k, "kid"), str_field(k, "alg"), str_field(k, "use")]);
        }
        json.push(serde_json::json!({"set": set, "keys": keys}));
    }
    let json = match json.len() {
        1 => json.remove(0),
        _ => Value::Array(json),
    };
    render_table(ctx, &JWK_HEADER, &rows, &json)
}

fn keys_of(resp: &Response) -> Result<Vec<Value>, String> {
    match parse_json(resp)?.get("keys") {
        Some(Value::Array(a)) => Ok(a.clone()),
        _ => Err("Error: the server did not answer with a JSON Web Key Set".to_string()),
    }
}

fn create_jwk(set: &str, kid: Option<&str>, key: &KeyFlags, conn: &ConnFlags, out: Out) -> Result<(), String> {
    let ctx = Ctx::new(conn, DEFAULT_ADMIN_ENDPOINT)?;
    let body = serde_json::json!({"alg": key.alg, "kid": kid.unwrap_or(""), "use": key.use_}).to_string();
    let resp = ctx.call_ok("POST", &keys_path(set), &[], Some(("application/json", body.as_bytes())))?;
    write_out(out, &render_jwks(&ctx, &[(set.to_string(), keys_of(&resp)?)], key.public)?)
}

fn get_jwks(sets: &[String], public: bool, conn: &ConnFlags, out: Out) -> Result<(), String> {
    let ctx = Ctx::new(conn, DEFAULT_ADMIN_ENDPOINT)?;
    let mut found = Vec::with_capacity(sets.len());
    for set in sets {
        let resp = ctx.call_ok("GET", &keys_path(set), &[], None)?;
        found.push((set.clone(), keys_of(&resp)?));
    }
    write_out(out, &render_jwks(&ctx, &found, public)?)
}

fn delete_jwks(sets: &[String], conn: &ConnFlags, out: Out) -> Result<(), String> {
    let ctx = Ctx::new(conn, DEFAULT_ADMIN_ENDPOINT)?;
    for set in sets {
        ctx.call_ok("DELETE", &keys_path(set), &[], None)?;
    }
    write_out(out, &render_ids(&ctx, sets)?)
}

/// The contents of each named file, standard input for `-` or when none is named.
fn read_inputs(files: &[String]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let stdin = |name: &str| {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map_err(|e| format!("Error: reading standard input: {e}"))?;
        Ok((name.to_string(), buf))
    };
    if files.is_empty() {
        return Ok(vec![stdin("<stdin>")?]);
    }
    files
        .iter()
        .map(|f| {
            if f == "-" {
                stdin("<stdin>")
            } else {
                std::fs::read(f).map(|b| (f.clone(), b)).map_err(|e| format!("Error: reading {f}: {e}"))
            }
        })
        .collect()
}

/// `hydra import oauth2-client <file…|->`: every client of every file (a JSON array of clients
/// or one client) is created; the created clients are printed (with their generated secrets).
/// A client that fails is reported and the others are still imported; the exit code is 1 then.
fn import_clients(files: &[String], conn: &ConnFlags, out: Out, err: Out) -> Result<(), String> {
    let ctx = Ctx::new(conn, DEFAULT_ADMIN_ENDPOINT)?;
    let mut bodies = Vec::new();
    for (name, bytes) in read_inputs(files)? {
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Array(items)) => bodies.extend(items.into_iter().map(|c| (name.clone(), c))),
            Ok(c @ Value::Object(_)) => bodies.push((name, c)),
            Ok(_) => return Err(format!("Error: {name}: expected a JSON array of clients or one client object")),
            Err(e) => return Err(format!("Error: {name}: {e}")),
        }
    }
    let mut created = Vec::new();
    let mut failed = false;
    for (name, c) in bodies {
        let body = c.to_string();
        match ctx.call_ok("POST", "/admin/clients", &[], Some(("application/json", body.as_bytes()))) {
            Ok(resp) => created.push(parse_json(&resp)?),
            Err(e) => {
                failed = true;
                let id = str_field(&c, "client_id");
                let what = if id.is_empty() { name } else { format!("{name}: client {id}") };
                let _ = writeln!(
                    err,
                    "{}",
                    one_line(&format!("Error: {what}: {}", e.strip_prefix("Error: ").unwrap_or(&e)))
                );
            }
        }
    }
    let rows: Vec<Vec<String>> = created.iter().map(client_columns).collect();
    let json = if created.len() == 1 { created[0].clone() } else { Value::Array(created) };
    write_out(out, &render_table(&ctx, &CLIENT_HEADER, &rows, &json)?)?;
    if failed {
        Err(String::new())
    } else {
        Ok(())
    }
}

/// `hydra import jwk <set> <file…>`: each file holds a JSON Web Key, a JSON Web Key Set, or a
/// PEM / DER key (`--alg`, `--use`; a key id is generated). Each key is added to the set (the
/// set is created when missing; a key with the same id is replaced), then the set is printed.
fn import_jwks(set: &str, files: &[String], key: &KeyFlags, conn: &ConnFlags, out: Out) -> Result<(), String> {
    let (alg, use_, public) = (key.alg.as_str(), key.use_.as_str(), key.public);
    use crate::jose::jwk::{Alg, Jwk};
    let ctx = Ctx::new(conn, DEFAULT_ADMIN_ENDPOINT)?;
    let mut keys: Vec<Value> = Vec::new();
    let new_kid = || {
        crate::oauth2::client::generate_uuid_v4(&ring::rand::SystemRandom::new())
            .map_err(|_| "Error: no randomness available".to_string())
    };
    for (name, bytes) in read_inputs(files)? {
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(o)) if o.get("keys").is_some_and(Value::is_array) => {
                keys.extend(o.get("keys").and_then(Value::as_array).into_iter().flatten().cloned())
            }
            Ok(v @ Value::Object(_)) => keys.push(v),
            Ok(_) => return Err(format!("Error: {name}: expected a JSON Web Key or a JSON Web Key Set")),
            Err(_) => {
                let a =
                    Alg::parse(alg).ok_or_else(|| format!("Error: --alg {alg:?} is not one of RS256, ES256, EdDSA"))?;
                let jwk = crate::jose::import::jwk_from_document(&bytes, a, &new_kid()?, use_)
                    .map_err(|e| format!("Error: {name}: {e}"))?;
                keys.push(serde_json::to_value(&jwk).map_err(|e| format!("Error: {e}"))?);
            }
        }
    }
    for k in &mut keys {
        if str_field(k, "kid").is_empty() {
            if let Some(o) = k.as_object_mut() {
                o.insert("kid".into(), Value::String(new_kid()?));
            }
        }
        // Refused before sending: a clear local error beats the server's.
        serde_json::from_value::<Jwk>(k.clone()).map_err(|e| format!("Error: not a JSON Web Key: {e}"))?;
        let path = format!("{}/{}", keys_path(set), path_escape(&str_field(k, "kid")));
        let body = k.to_string();
        ctx.call_ok("PUT", &path, &[], Some(("application/json", body.as_bytes())))?;
    }
    let resp = ctx.call_ok("GET", &keys_path(set), &[], None)?;
    write_out(out, &render_jwks(&ctx, &[(set.to_string(), keys_of(&resp)?)], public)?)
}

fn require_creds(creds: &ClientAuth) -> Result<(&str, &str), String> {
    match (creds.client_id.as_deref(), creds.client_secret.as_deref()) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => Ok((id, secret)),
        _ => Err(MISSING_CREDENTIALS.to_string()),
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Go's zero `time.Time` in RFC 3339, used when the server sent no `expires_in`.
const ZERO_TIME: i64 = -62_135_596_800;

/// Table columns for a token response; `now` is the current Unix time.
pub(crate) fn token_columns(tok: &Value, now: i64) -> Vec<String> {
    let or_empty = |k: &str| {
        let s = str_field(tok, k);
        if s.is_empty() {
            "<empty>".to_string()
        } else {
            s
        }
    };
    vec![
        str_field(tok, "access_token"),
        or_empty("refresh_token"),
        or_empty("id_token"),
        rfc3339(token_expiry(tok, now)),
    ]
}

fn token_expiry(tok: &Value, now: i64) -> i64 {
    match tok.get("expires_in").and_then(|v| {
        v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)).or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    }) {
        Some(n) if n > 0 => now + n,
        _ => ZERO_TIME,
    }
}

/// JSON printed for a token (shape of Go's `oauth2.Token`).
/// A token answer in the chosen format (the JSON forms keep Go's field order).
fn render_token(format: &Format, tok: &Value, now: i64) -> Result<String, String> {
    match format {
        Format::Table => Ok(row_table(&TOKEN_HEADER, &token_columns(tok, now))),
        Format::Json => Ok(token_json(tok, now, false)),
        Format::JsonPretty => Ok(token_json(tok, now, true)),
        other => match serde_json::from_str::<Value>(&token_json(tok, now, false)) {
            Ok(v) => render(other, &v, String::new),
            Err(e) => Err(format!("Error: {e}")),
        },
    }
}

pub(crate) fn token_json(tok: &Value, now: i64, pretty: bool) -> String {
    let access = Value::String(str_field(tok, "access_token"));
    let token_type = Value::String(str_field(tok, "token_type"));
    let refresh = Value::String(str_field(tok, "refresh_token"));
    let expiry = Value::String(rfc3339(token_expiry(tok, now)));
    let expires_in = tok.get("expires_in").cloned().unwrap_or(Value::Null);
    let mut fields: Vec<(&str, &Value)> = vec![("access_token", &access)];
    if !str_field(tok, "token_type").is_empty() {
        fields.push(("token_type", &token_type));
    }
    if !str_field(tok, "refresh_token").is_empty() {
        fields.push(("refresh_token", &refresh));
    }
    fields.push(("expiry", &expiry));
    if expires_in.as_i64().is_some_and(|n| n != 0) {
        fields.push(("expires_in", &expires_in));
    }
    // Only the authorization code flow returns one (client credentials never do).
    let id_token = Value::String(str_field(tok, "id_token"));
    if !str_field(tok, "id_token").is_empty() {
        fields.push(("id_token", &id_token));
    }
    go_json_ordered(&fields, pretty)
}

fn client_credentials(
    creds: &ClientAuth,
    scope: &[String],
    audience: &[String],
    conn: &ConnFlags,
    out: Out,
) -> Result<(), String> {
    let (id, secret) = require_creds(creds)?;
    let ctx = Ctx::new(conn, DEFAULT_PUBLIC_ENDPOINT)?;
    let scope = scope.join(" ");
    let audience = audience.join(" ");
    let mut pairs = vec![("grant_type", "client_credentials")];
    if !scope.is_empty() {
        pairs.push(("scope", &scope));
    }
    if !audience.is_empty() {
        pairs.push(("audience", &audience));
    }
    let body = form_body(&pairs);
    let auth = basic_auth(id, secret);
    let resp = ctx.call_ok(
        "POST",
        "/oauth2/token",
        &[("Authorization", &auth)],
        Some(("application/x-www-form-urlencoded", body.as_bytes())),
    )?;
    let tok = parse_json(&resp)?;
    if str_field(&tok, "access_token").is_empty() {
        return Err("Error: the token response contains no access_token".to_string());
    }
    let now = now_unix();
    let text = if ctx.quiet {
        format!("{}\n", str_field(&tok, "access_token"))
    } else {
        render_token(&ctx.format, &tok, now)?
    };
    write_out(out, &text)
}

fn authorization_code(
    creds: &ClientAuth,
    scope: &[String],
    port: u16,
    conn: &ConnFlags,
    out: Out,
) -> Result<(), String> {
    let (id, secret) = require_creds(creds)?;
    let ctx = Ctx::new(conn, DEFAULT_PUBLIC_ENDPOINT)?;
    let args = super::example::AuthCodeArgs {
        public_url: &ctx.base,
        client_id: id,
        client_secret: secret,
        scope: &scope.join(" "),
        port,
    };
    let tok = super::example::perform_authorization_code(&args, out).map_err(|e| format!("Error: {e}"))?;
    let now = now_unix();
    let text = render_token(&ctx.format, &tok, now)?;
    write_out(out, &text)
}

/// Table columns for an introspection response.
pub(crate) fn introspect_columns(v: &Value) -> Vec<String> {
    let active = v.get("active").and_then(Value::as_bool).unwrap_or(false);
    let exp = v.get("exp").and_then(Value::as_i64).unwrap_or(0);
    vec![
        active.to_string(),
        str_field(v, "sub"),
        str_field(v, "client_id"),
        str_field(v, "scope"),
        rfc3339(exp),
        str_field(v, "token_use"),
    ]
}

fn introspect(token: &str, scope: &[String], conn: &ConnFlags, out: Out) -> Result<(), String> {
    let ctx = Ctx::new(conn, DEFAULT_ADMIN_ENDPOINT)?;
    let scope = scope.join(" ");
    let mut pairs = vec![("token", token)];
    if !scope.is_empty() {
        pairs.push(("scope", &scope));
    }
    let body = form_body(&pairs);
    let resp = ctx.call_ok(
        "POST",
        "/admin/oauth2/introspect",
        &[],
        Some(("application/x-www-form-urlencoded", body.as_bytes())),
    )?;
    let v = parse_json(&resp)?;
    write_out(out, &render_row(&ctx, &INTROSPECT_HEADER, &introspect_columns(&v), &v)?)
}

fn revoke(token: &str, creds: &ClientAuth, conn: &ConnFlags, out: Out) -> Result<(), String> {
    let (id, secret) = require_creds(creds)?;
    let ctx = Ctx::new(conn, DEFAULT_PUBLIC_ENDPOINT)?;
    let body = form_body(&[("token", token)]);
    let auth = basic_auth(id, secret);
    ctx.call_ok(
        "POST",
        "/oauth2/revoke",
        &[("Authorization", &auth)],
        Some(("application/x-www-form-urlencoded", body.as_bytes())),
    )?;
    write_out(out, &render_ids(&ctx, &[token.to_string()])?)
}
