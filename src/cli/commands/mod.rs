//! Execution of the management commands (HTTP calls + output): the dispatcher and what every
//! command shares (context, encoding, rendering); one file per area beside it.

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
pub(crate) use crate::oauth2::uri::path_escape;

mod clients;
mod keys;
mod tokens;

use clients::*;
#[cfg(test)]
pub(crate) use clients::{client_columns, create_body, CLIENT_HEADER};
use keys::*;
use tokens::*;
#[cfg(test)]
pub(crate) use tokens::{introspect_columns, token_columns, token_json};

type Out<'a> = &'a mut dyn Write;

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
        Command::Backup { dir, conn } => backup(&dir, &conn, out),
        Command::Migrate(c) => {
            use super::migrate::{run, Action, Confirm};
            let stdin = std::io::stdin();
            let mut input = stdin.lock();
            match c.what {
                super::MigrateWhat::Status { database_url, read_from_env, .. } => run(
                    Action::Status,
                    database_url.as_deref(),
                    read_from_env,
                    Confirm { yes: true, input: &mut input },
                    out,
                ),
                super::MigrateWhat::Sql { args, read_from_env, yes, steps } => {
                    let confirm = Confirm { yes, input: &mut input };
                    let (action, url) = match args.first().map(String::as_str) {
                        Some("up") => (Some(Action::Up), args.get(1)),
                        Some("down") => (Some(Action::Down(steps)), args.get(1)),
                        Some("status") => (Some(Action::Status), args.get(1)),
                        Some(_) if args.len() == 1 => (Some(Action::Up), args.first()),
                        None => (Some(Action::Up), None),
                        Some(_) => (None, None),
                    };
                    match action {
                        Some(a) => run(a, url.map(String::as_str), read_from_env, confirm, out),
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
            PerformWhat::AuthorizationCode { creds, scope, port, response_mode, prompt, conn } => {
                authorization_code(&creds, &scope, port, response_mode.as_deref(), &prompt, &conn, out)
            }
            PerformWhat::DeviceCode { client_id, client_secret, scope, audience, conn } => {
                let args = DeviceArgs {
                    client_id: client_id.as_deref(),
                    client_secret: client_secret.as_deref(),
                    scope: &scope,
                    audience: &audience,
                };
                device_code(&args, &conn, out, err)
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

/// `hydra backup DIR`: asks the server for an online backup into `DIR` and prints its report.
fn backup(dir: &str, conn: &ConnFlags, out: Out) -> Result<(), String> {
    let ctx = Ctx::new(conn, DEFAULT_ADMIN_ENDPOINT)?;
    let body = serde_json::json!({ "dir": dir }).to_string();
    let resp = ctx.call_ok("POST", "/admin/backup", &[], Some(("application/json", body.as_bytes())))?;
    let v: Value = serde_json::from_slice(&resp.body).map_err(|e| format!("Error: {e}"))?;
    write_out(out, &go_json(&v, false))
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

pub(crate) const JWK_HEADER: [&str; 4] = ["SET ID", "KEY ID", "ALGORITHM", "USE"];

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
