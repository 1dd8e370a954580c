//! `hydra perform client-credentials|authorization-code`, `introspect token`, `revoke token`,
//! and how tokens are printed.

use super::*;

pub(crate) const TOKEN_HEADER: [&str; 4] = ["ACCESS TOKEN", "REFRESH TOKEN", "ID TOKEN", "EXPIRY"];

pub(crate) const INTROSPECT_HEADER: [&str; 6] = ["ACTIVE", "SUBJECT", "CLIENT ID", "SCOPE", "EXPIRY", "TOKEN USE"];

pub(super) const MISSING_CREDENTIALS: &str = "Please provide a Client ID and Client Secret using flags --client-id and --client-secret, or environment variables OAUTH2_CLIENT_ID and OAUTH2_CLIENT_SECRET";

pub(super) fn require_creds(creds: &ClientAuth) -> Result<(&str, &str), String> {
    match (creds.client_id.as_deref(), creds.client_secret.as_deref()) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => Ok((id, secret)),
        _ => Err(MISSING_CREDENTIALS.to_string()),
    }
}

pub(super) fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Go's zero `time.Time` in RFC 3339, used when the server sent no `expires_in`.
pub(super) const ZERO_TIME: i64 = -62_135_596_800;

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

pub(super) fn token_expiry(tok: &Value, now: i64) -> i64 {
    match tok.get("expires_in").and_then(|v| {
        v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)).or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    }) {
        Some(n) if n > 0 => now + n,
        _ => ZERO_TIME,
    }
}

/// JSON printed for a token (shape of Go's `oauth2.Token`).
/// A token answer in the chosen format (the JSON forms keep Go's field order).
pub(super) fn render_token(format: &Format, tok: &Value, now: i64) -> Result<String, String> {
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

pub(super) fn client_credentials(
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

/// What `hydra perform device-code` was given.
pub(super) struct DeviceArgs<'a> {
    pub client_id: Option<&'a str>,
    pub client_secret: Option<&'a str>,
    pub scope: &'a [String],
    pub audience: &'a [String],
}

/// `hydra perform device-code`: asks for a device authorization, tells the user (on stderr, as
/// Hydra) where to enter the code, and polls at the server's interval (5 s more after each
/// `slow_down`) until tokens come or the user refuses or the code expires.
pub(super) fn device_code(a: &DeviceArgs, conn: &ConnFlags, out: Out, err: Out) -> Result<(), String> {
    let Some(id) = a.client_id.filter(|i| !i.is_empty()) else {
        return Err(
            "Please provide a Client ID using --client-id flag, or OAUTH2_CLIENT_ID environment variable.".into()
        );
    };
    let ctx = Ctx::new(conn, DEFAULT_PUBLIC_ENDPOINT)?;
    let scope = a.scope.join(" ");
    let audience = a.audience.join(" ");
    let secret = a.client_secret.filter(|s| !s.is_empty());
    let with_client = |mut pairs: Vec<(&'static str, String)>| {
        pairs.push(("client_id", id.to_string()));
        if let Some(s) = secret {
            pairs.push(("client_secret", s.to_string()));
        }
        pairs
    };
    let mut ask = vec![("scope", scope)];
    if !audience.is_empty() {
        ask.push(("audience", audience));
    }
    let form = |pairs: &[(&str, String)]| form_body(&pairs.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>());
    let body = form(&with_client(ask));
    let resp = ctx
        .call_ok("POST", "/oauth2/device/auth", &[], Some(("application/x-www-form-urlencoded", body.as_bytes())))
        .map_err(|e| format!("Failed to perform the device authorization request: {e}"))?;
    let dev = parse_json(&resp)?;
    let (device_code, uri) = (str_field(&dev, "device_code"), str_field(&dev, "verification_uri_complete"));
    if device_code.is_empty() || uri.is_empty() {
        return Err("Failed to perform the device authorization request: the answer has no device_code".into());
    }
    let _ = writeln!(err, "To login please go to:\n\t {uri}");
    let _ = err.flush();
    let mut interval = dev.get("interval").and_then(Value::as_u64).unwrap_or(5).max(1);
    let deadline = now_unix() + dev.get("expires_in").and_then(Value::as_i64).unwrap_or(600);
    let poll = form(&with_client(vec![
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code".into()),
        ("device_code", device_code),
    ]));
    loop {
        std::thread::sleep(std::time::Duration::from_secs(interval));
        let resp =
            ctx.call("POST", "/oauth2/token", &[], Some(("application/x-www-form-urlencoded", poll.as_bytes())))?;
        if resp.status == 200 {
            let tok = parse_json(&resp)?;
            let _ = writeln!(err, "Successfully signed in!");
            let text = render_token(&ctx.format, &tok, now_unix())?;
            return write_out(out, &text);
        }
        let error =
            serde_json::from_slice::<Value>(&resp.body).ok().map(|v| str_field(&v, "error")).unwrap_or_default();
        match error.as_str() {
            "authorization_pending" if now_unix() < deadline => {}
            "slow_down" if now_unix() < deadline => interval += 5,
            _ => {
                return Err(format!(
                    "Failed to perform the device token request: {}",
                    api_error_line(resp.status, &resp.body)
                ))
            }
        }
    }
}

pub(super) fn authorization_code(
    creds: &ClientAuth,
    scope: &[String],
    port: u16,
    response_mode: Option<&str>,
    prompt: &[String],
    conn: &ConnFlags,
    out: Out,
) -> Result<(), String> {
    let (id, secret) = require_creds(creds)?;
    let form_post = match response_mode {
        None | Some("query") => false,
        Some("form_post") => true,
        Some(m) => return Err(format!("Error: --response-mode must be query or form_post, not {m:?}")),
    };
    let ctx = Ctx::new(conn, DEFAULT_PUBLIC_ENDPOINT)?;
    let args = super::super::example::AuthCodeArgs {
        public_url: &ctx.base,
        client_id: id,
        client_secret: secret,
        scope: &scope.join(" "),
        port,
        form_post,
        prompt: &prompt.join(" "),
    };
    let tok = super::super::example::perform_authorization_code(&args, out).map_err(|e| format!("Error: {e}"))?;
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

pub(super) fn introspect(token: &str, scope: &[String], conn: &ConnFlags, out: Out) -> Result<(), String> {
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

pub(super) fn revoke(token: &str, creds: &ClientAuth, conn: &ConnFlags, out: Out) -> Result<(), String> {
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
