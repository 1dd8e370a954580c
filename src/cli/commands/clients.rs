//! `hydra create|get|list|update|delete|import oauth2-client` and `delete access-tokens`.

use super::*;

pub(crate) const CLIENT_HEADER: [&str; 7] =
    ["CLIENT ID", "CLIENT SECRET", "GRANT TYPES", "RESPONSE TYPES", "SCOPE", "AUDIENCE", "REDIRECT URIS"];

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

pub(super) fn render_client(ctx: &Ctx, client: &Value) -> Result<String, String> {
    render_row(ctx, &CLIENT_HEADER, &client_columns(client), client)
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

pub(super) fn client_path(id: &str) -> String {
    format!("/admin/clients/{}", path_escape(id))
}

pub(super) fn create_client(f: &ClientFields, conn: &ConnFlags, out: Out) -> Result<(), String> {
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

pub(super) fn get_clients(ids: &[String], conn: &ConnFlags, out: Out) -> Result<(), String> {
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

pub(super) fn list_clients(page_size: u32, page_token: Option<&str>, conn: &ConnFlags, out: Out) -> Result<(), String> {
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
pub(super) fn render_client_list(ctx: &Ctx, items: &[Value], next: &str) -> Result<String, String> {
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

pub(super) fn update_client(id: &str, f: &ClientFields, conn: &ConnFlags, out: Out) -> Result<(), String> {
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

pub(super) fn delete_clients(ids: &[String], conn: &ConnFlags, out: Out, err: Out) -> Result<(), String> {
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

pub(super) fn delete_access_tokens(client_id: &str, conn: &ConnFlags, out: Out) -> Result<(), String> {
    let ctx = Ctx::new(conn, DEFAULT_ADMIN_ENDPOINT)?;
    let path = format!("/admin/oauth2/tokens?client_id={}", form_escaped(client_id));
    ctx.call_ok("DELETE", &path, &[], None)?;
    write_out(out, &render_ids(&ctx, &[client_id.to_string()])?)
}

/// `hydra import oauth2-client <file…|->`: every client of every file (a JSON array of clients
/// or one client) is created; the created clients are printed (with their generated secrets).
/// A client that fails is reported and the others are still imported; the exit code is 1 then.
pub(super) fn import_clients(files: &[String], conn: &ConnFlags, out: Out, err: Out) -> Result<(), String> {
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
