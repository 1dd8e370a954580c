//! Validates OAuth 2.0 / OIDC authorization requests (code, implicit and hybrid response types) without I/O;
//! invariants: an error is only ever `Redirect`ed to a redirect URI that matched the client's registration,
//! everything before that point is `Fatal`; a response that carries a token or an ID token is never put in the
//! query (OAuth 2.0 Multiple Response Types §3), and its errors go where its tokens would have.

use crate::oauth2::request_object::RequestObject;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What the module needs to know about the client (the caller builds it from its client object).
#[derive(Debug, Clone, Copy)]
pub struct ClientView<'a> {
    pub client_id: &'a str,
    pub redirect_uris: &'a [String],
    /// As registered; empty means Hydra's default, `code` (OIDC Registration §2).
    pub response_types: &'a [String],
    /// As registered; empty means Hydra's default, `authorization_code`.
    pub grant_types: &'a [String],
    /// Space-separated scopes the client may request.
    pub scope: &'a str,
    /// Audiences the client may request.
    pub audience: &'a [String],
    /// token_endpoint_auth_method == "none".
    pub public: bool,
}

pub struct Policy<'a> {
    /// `--dev`: plain `http` redirect URIs to any host are allowed.
    pub allow_insecure_redirects: bool,
    pub pkce_enforced: bool,
    pub pkce_enforced_for_public_clients: bool,
    /// Whether `requested` scope is covered by the client's allowed scope list (strategy is the caller's).
    pub scope_allowed: &'a dyn Fn(&[&str], &str) -> bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    Query,
    Fragment,
    FormPost,
}

impl ResponseMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseMode::Query => "query",
            ResponseMode::Fragment => "fragment",
            ResponseMode::FormPost => "form_post",
        }
    }
}

/// A `response_type`: a set of `code`, `id_token` and `token` (OAuth 2.0 Multiple Response
/// Types §3; the order of the words does not matter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResponseType {
    pub code: bool,
    pub id_token: bool,
    pub token: bool,
}

impl ResponseType {
    /// Parses a space-separated set; unknown or repeated words, or none at all, are `None`.
    pub fn parse(s: &str) -> Option<ResponseType> {
        let mut rt = ResponseType::default();
        for word in s.split(' ') {
            let slot = match word {
                "code" => &mut rt.code,
                "id_token" => &mut rt.id_token,
                "token" => &mut rt.token,
                _ => return None,
            };
            if *slot {
                return None;
            }
            *slot = true;
        }
        Some(rt)
    }

    /// The canonical spelling: `code`, `id_token`, `token` in that order.
    pub fn as_str(self) -> &'static str {
        match (self.code, self.id_token, self.token) {
            (true, false, false) => "code",
            (false, true, false) => "id_token",
            (false, false, true) => "token",
            (true, true, false) => "code id_token",
            (true, false, true) => "code token",
            (false, true, true) => "id_token token",
            (true, true, true) => "code id_token token",
            (false, false, false) => "",
        }
    }

    /// Whether the authorization response itself carries a token or an ID token.
    pub fn front_channel_tokens(self) -> bool {
        self.id_token || self.token
    }
}

/// Every response type this server answers, as discovery lists them.
pub const RESPONSE_TYPES: [&str; 7] =
    ["code", "id_token", "token", "code id_token", "code token", "id_token token", "code id_token token"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: String,
    /// The exact string to redirect to: the registered URI, or for a loopback match the requested one (its port).
    pub redirect_uri: String,
    /// Whether the request carried redirect_uri (the token request must then repeat it).
    pub redirect_uri_given: bool,
    /// Canonical ([`ResponseType::as_str`]).
    pub response_type: String,
    pub response_mode: ResponseMode,
    pub scope: Vec<String>,
    pub audience: Vec<String>,
    pub state: String,
    pub nonce: Option<String>,
    pub prompt: Vec<String>,
    pub max_age: Option<u64>,
    pub id_token_hint: Option<String>,
    pub login_hint: Option<String>,
    pub acr_values: Vec<String>,
    pub ui_locales: Vec<String>,
    pub display: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    /// The `claims` parameter (OIDC Core §5.5) as JSON text, checked to be well formed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<String>,
}

impl AuthRequest {
    /// The response type; a request sealed before response types were recorded asked for `code`.
    pub fn response(&self) -> ResponseType {
        ResponseType::parse(&self.response_type).unwrap_or(ResponseType { code: true, ..Default::default() })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// Must NOT be redirected to the client (unknown client, missing/unregistered/invalid redirect_uri): the caller
    /// shows an error page.
    Fatal { error: &'static str, description: String },
    /// The redirect URI is validated: the caller redirects to it with these parameters.
    Redirect {
        redirect_uri: String,
        response_mode: ResponseMode,
        error: &'static str,
        description: String,
        state: Option<String>,
    },
}

impl AuthError {
    pub fn error(&self) -> &'static str {
        match self {
            AuthError::Fatal { error, .. } | AuthError::Redirect { error, .. } => error,
        }
    }

    pub fn description(&self) -> &str {
        match self {
            AuthError::Fatal { description, .. } | AuthError::Redirect { description, .. } => description,
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error(), self.description())
    }
}

impl std::error::Error for AuthError {}

const STATE_MIN_LEN: usize = 8;
const NONCE_MAX_LEN: usize = 512;
const NONCE_MIN_LEN: usize = 8;
const PROMPTS: [&str; 4] = ["none", "login", "consent", "select_account"];
const DISPLAYS: [&str; 4] = ["page", "popup", "touch", "wap"];

fn fatal(error: &'static str, description: impl Into<String>) -> AuthError {
    AuthError::Fatal { error, description: description.into() }
}

/// RFC 6749 §3.1: parameters sent without a value are treated as omitted.
fn param<'p>(params: &'p [(String, String)], name: &str) -> Option<&'p str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

/// Splits on single spaces, drops empty items (repeated spaces) and duplicates, keeping the first occurrence's order.
fn space_list(value: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in value.unwrap_or("").split(' ').filter(|s| !s.is_empty()) {
        if !out.iter().any(|o| o == item) {
            out.push(item.to_string());
        }
    }
    out
}

/// Everything after the redirect URI is known good fails the same way, so the context is collected once.
struct RedirectCtx {
    redirect_uri: String,
    response_mode: ResponseMode,
    state: Option<String>,
}

impl RedirectCtx {
    fn err(&self, error: &'static str, description: impl Into<String>) -> AuthError {
        AuthError::Redirect {
            redirect_uri: self.redirect_uri.clone(),
            response_mode: self.response_mode,
            error,
            description: description.into(),
            state: self.state.clone(),
        }
    }
}

/// [`parse_with`] for a request the caller found no request object in.
pub fn parse(
    params: &[(String, String)],
    client: Option<&ClientView>,
    policy: &Policy,
) -> Result<AuthRequest, AuthError> {
    parse_with(params, &RequestObject::Absent, client, policy)
}

/// Validates an authorization request whose request object (if any) the caller resolved and
/// verified: a verified object's members are merged in first (they win, OIDC Core §6.3.3), a
/// refused one is answered as an error once the redirect URI is validated from the plain
/// parameters.
pub fn parse_with(
    params: &[(String, String)],
    object: &RequestObject,
    client: Option<&ClientView>,
    policy: &Policy,
) -> Result<AuthRequest, AuthError> {
    let merged;
    let mut object_error: Option<(&'static str, String)> = None;
    let params = match object {
        RequestObject::Absent => params,
        RequestObject::Refused { error, description } => {
            object_error = Some((error, description.clone()));
            params
        }
        RequestObject::Verified(members) => match crate::oauth2::request_object::merge(params, members) {
            Ok(m) => {
                merged = m;
                &merged[..]
            }
            Err(e) => {
                object_error = Some(e);
                params
            }
        },
    };
    let client_id = param(params, "client_id").ok_or_else(|| fatal("invalid_client", "The client_id is missing."))?;
    let client = match client {
        // A caller that looked up the wrong client must not lead us into trusting its redirect URIs.
        Some(c) if c.client_id == client_id => c,
        _ => return Err(fatal("invalid_client", "The requested OAuth 2.0 client does not exist.")),
    };

    let given = param(params, "redirect_uri");
    let redirect_uri = match given {
        None => match client.redirect_uris {
            [only] => only.clone(),
            _ => {
                return Err(fatal(
                    "invalid_request",
                    "The redirect_uri parameter is required because the client does not have exactly one registered redirect URI.",
                ))
            }
        },
        Some(uri) => match_redirect_uri(uri, client.redirect_uris)?,
    };
    check_redirect_target(&redirect_uri, policy.allow_insecure_redirects)?;

    let mut ctx = RedirectCtx {
        redirect_uri,
        response_mode: ResponseMode::Query,
        state: param(params, "state").map(str::to_string).or_else(|| from_request_object(params, "state")),
    };

    // The response type decides where answers go (its default response mode), so it is read
    // first; whether it is allowed is judged once that mode is known.
    let requested = param(params, "response_type").map(|r| (r, ResponseType::parse(r)));
    let rt = requested.and_then(|(_, rt)| rt);
    let tokens_in_response = rt.is_some_and(ResponseType::front_channel_tokens);
    let default_mode = if tokens_in_response { ResponseMode::Fragment } else { ResponseMode::Query };
    ctx.response_mode = default_mode;
    let response_mode =
        param(params, "response_mode").map(str::to_string).or_else(|| from_request_object(params, "response_mode"));
    ctx.response_mode = match response_mode.as_deref() {
        None => default_mode,
        Some("query") if tokens_in_response => {
            return Err(ctx.err(
                "invalid_request",
                "The response_mode query is not allowed when the response carries a token or an ID token.",
            ))
        }
        Some("query") => ResponseMode::Query,
        Some("fragment") => ResponseMode::Fragment,
        Some("form_post") => ResponseMode::FormPost,
        Some(_) => return Err(ctx.err("invalid_request", "The response_mode is not supported.")),
    };

    // Before any other parameter: with a request object the other parameters may live inside
    // it (OIDC Core §6.1), so judging them first would give the wrong error.
    if let Some((error, description)) = object_error {
        return Err(ctx.err(error, description));
    }
    if *object == RequestObject::Absent {
        // A caller that did not resolve the object: never act as if it were not there.
        if param(params, "request").is_some() {
            return Err(ctx.err("request_not_supported", "The request parameter is not supported."));
        }
        if param(params, "request_uri").is_some() {
            return Err(ctx.err("request_uri_not_supported", "The request_uri parameter is not supported."));
        }
    }

    let rt = match (requested, rt) {
        (_, Some(rt)) => rt,
        (None, _) => return Err(ctx.err("unsupported_response_type", "The response_type is missing.")),
        (Some(_), None) => {
            return Err(ctx.err(
                "unsupported_response_type",
                "The response_type must be a combination of code, id_token and token, each at most once.",
            ))
        }
    };
    // Registered as a set: `id_token token` also allows `token id_token`.
    let code_only = ResponseType { code: true, id_token: false, token: false };
    let default_rt = client.response_types.is_empty() && rt == code_only;
    if !default_rt && !client.response_types.iter().any(|r| ResponseType::parse(r) == Some(rt)) {
        return Err(
            ctx.err("unauthorized_client", format!("The client is not allowed to use response_type {}.", rt.as_str()))
        );
    }
    if rt.code && !client.grant_types.is_empty() && !client.grant_types.iter().any(|g| g == "authorization_code") {
        return Err(ctx.err("unauthorized_client", "The client is not allowed to use grant_type authorization_code."));
    }
    if tokens_in_response && !client.grant_types.iter().any(|g| g == "implicit") {
        return Err(ctx.err("unauthorized_client", "The client is not allowed to use grant_type implicit."));
    }

    let state = match &ctx.state {
        Some(s) if s.chars().count() >= STATE_MIN_LEN => s.clone(),
        _ => {
            return Err(ctx.err(
                "invalid_state",
                "The state is missing or does not have enough characters and is therefore considered too weak.",
            ))
        }
    };

    let scope = space_list(param(params, "scope"));
    let allowed: Vec<&str> = client.scope.split_whitespace().collect();
    for s in &scope {
        if !s.bytes().all(is_nqchar) {
            return Err(ctx.err("invalid_scope", "A requested scope contains characters that are not allowed."));
        }
        if !(policy.scope_allowed)(&allowed, s) {
            return Err(ctx.err("invalid_scope", format!("The client is not allowed to request scope '{s}'.")));
        }
    }

    let audience = space_list(param(params, "audience"));
    for a in &audience {
        if !client.audience.iter().any(|ca| ca == a) {
            return Err(ctx.err("invalid_request", format!("The client is not allowed to request audience '{a}'.")));
        }
    }

    let prompt = space_list(param(params, "prompt"));
    if let Some(p) = prompt.iter().find(|p| !PROMPTS.contains(&p.as_str())) {
        return Err(ctx.err("invalid_request", format!("The prompt value '{p}' is not supported.")));
    }
    if prompt.len() > 1 && prompt.iter().any(|p| p == "none") {
        return Err(ctx.err("invalid_request", "The prompt value none must not be combined with other values."));
    }

    let max_age = match param(params, "max_age") {
        None => None,
        // u64::from_str accepts a leading '+', which is not a valid non-negative integer literal here.
        Some(v) if v.bytes().all(|b| b.is_ascii_digit()) => match v.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => return Err(ctx.err("invalid_request", "The max_age is out of range.")),
        },
        Some(_) => return Err(ctx.err("invalid_request", "The max_age must be a non-negative integer.")),
    };

    let display = param(params, "display").map(str::to_string);
    if let Some(d) = &display {
        if !DISPLAYS.contains(&d.as_str()) {
            return Err(ctx.err("invalid_request", "The display value is not supported."));
        }
    }

    let code_challenge = param(params, "code_challenge").map(str::to_string);
    let code_challenge_method = param(params, "code_challenge_method");
    match (&code_challenge, code_challenge_method) {
        (None, Some(_)) => {
            return Err(ctx.err("invalid_request", "The code_challenge_method was given without a code_challenge."))
        }
        (Some(_), None | Some("plain")) => {
            return Err(ctx.err(
                "invalid_request",
                "The code_challenge_method must be S256; plain (the default when absent) is not allowed.",
            ))
        }
        (Some(_), Some(m)) if m != "S256" => {
            return Err(ctx.err("invalid_request", "The code_challenge_method must be S256."))
        }
        (Some(c), Some(_)) if !is_s256_challenge(c) => {
            return Err(ctx.err(
                "invalid_request",
                "The code_challenge must be the 43-character base64url encoding of a SHA-256 hash.",
            ))
        }
        // PKCE protects a code; a response without one has nothing to bind it to.
        (None, None)
            if rt.code && (policy.pkce_enforced || (policy.pkce_enforced_for_public_clients && client.public)) =>
        {
            return Err(ctx.err("invalid_request", "PKCE is required: the code_challenge is missing."))
        }
        _ => {}
    }
    let code_challenge_method = code_challenge.as_ref().map(|_| "S256".to_string());

    let nonce = param(params, "nonce").map(str::to_string);
    if nonce.as_ref().is_some_and(|n| n.chars().count() > NONCE_MAX_LEN) {
        return Err(ctx.err("invalid_request", "The nonce is too long."));
    }
    // fosite's minimum parameter entropy: a nonce of fewer than 8 characters cannot be unique
    // enough to bind an ID token to its request (OIDC Core §15.5.2).
    if nonce.as_ref().is_some_and(|n| n.chars().count() < NONCE_MIN_LEN) {
        return Err(ctx.err(
            "insufficient_entropy",
            "The nonce must be at least 8 characters long to ensure sufficient entropy.",
        ));
    }
    // An ID token from the authorization endpoint is bound to its request only by the nonce
    // (OIDC Core §3.2.2.1, §3.3.2.11).
    if rt.id_token && nonce.is_none() {
        return Err(ctx.err(
            "invalid_request",
            "The nonce is required when an ID token is returned from the authorization endpoint.",
        ));
    }
    if rt.id_token && !scope.iter().any(|s| s == "openid") {
        return Err(ctx.err("invalid_scope", "The response_type id_token requires the openid scope."));
    }
    let claims = match param(params, "claims").map(crate::oauth2::request_object::check_claims_parameter) {
        None => None,
        Some(Ok(v)) => Some(v.to_string()),
        Some(Err(why)) => return Err(ctx.err("invalid_request", why)),
    };

    Ok(AuthRequest {
        client_id: client_id.to_string(),
        redirect_uri: ctx.redirect_uri,
        redirect_uri_given: given.is_some(),
        response_type: rt.as_str().to_string(),
        response_mode: ctx.response_mode,
        scope,
        audience,
        state,
        nonce,
        prompt,
        max_age,
        id_token_hint: param(params, "id_token_hint").map(str::to_string),
        login_hint: param(params, "login_hint").map(str::to_string),
        acr_values: space_list(param(params, "acr_values")),
        ui_locales: space_list(param(params, "ui_locales")),
        display,
        code_challenge,
        code_challenge_method,
        claims,
    })
}

/// A string member of the payload of a `request` object, read without verifying it: request
/// objects are refused (`request_not_supported`), but the refusal must reach the client where
/// it asked for answers (`response_mode`, `state` may live only in the object, OIDC Core §6.1).
/// Only how an error is delivered depends on this, never where: the redirect URI was validated
/// from the plain parameters.
fn from_request_object(params: &[(String, String)], name: &str) -> Option<String> {
    let v = crate::jose::jws::peek(param(params, "request")?, 1)?;
    v.get(name)?.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

/// RFC 6749 Appendix A.4 scope-token characters.
fn is_nqchar(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)
}

/// Requiring a canonical 32-byte decode rules out challenges no S256 verifier could ever produce.
fn is_s256_challenge(c: &str) -> bool {
    c.len() == 43 && URL_SAFE_NO_PAD.decode(c).is_ok_and(|d| d.len() == 32)
}

use crate::http::form::form_escape;
use crate::oauth2::uri::{is_redirect_uri_secure, loopback_matches, redirect_scheme_allowed, Uri};

/// Even a registered redirect URI must be a safe target: never a script scheme, and plain
/// `http` only to loopback or `*.localhost` hosts outside `--dev` (RFC 6749 §3.1.2.1, RFC 9700
/// §2.1; Hydra's `IsRedirectURISecure`).
fn check_redirect_target(uri: &str, allow_insecure: bool) -> Result<(), AuthError> {
    let scheme = uri.split(':').next().unwrap_or_default();
    if !redirect_scheme_allowed(scheme) {
        return Err(fatal(
            "invalid_request",
            "The redirect_uri uses a scheme that cannot receive an authorization response.",
        ));
    }
    if !allow_insecure && !is_redirect_uri_secure(uri) {
        return Err(fatal(
            "invalid_request",
            "The redirect_uri uses an insecure protocol: http is only allowed for loopback and *.localhost hosts.",
        ));
    }
    Ok(())
}

fn match_redirect_uri(given: &str, registered: &[String]) -> Result<String, AuthError> {
    let uri = Uri::parse_absolute(given)
        .ok_or_else(|| fatal("invalid_request", "The redirect_uri is not a valid absolute URI."))?;
    if uri.fragment.is_some() {
        return Err(fatal("invalid_request", "The redirect_uri must not contain a fragment."));
    }
    if uri.userinfo().is_some() {
        return Err(fatal("invalid_request", "The redirect_uri must not contain user information."));
    }
    if registered.iter().any(|r| r == given) {
        return Ok(given.to_string());
    }
    if registered.iter().filter_map(|r| Uri::parse_absolute(r)).any(|r| loopback_matches(&r, &uri)) {
        // The native app listens on the port it chose at run time, so that is where it must be sent.
        return Ok(given.to_string());
    }
    Err(fatal("invalid_request", "The redirect_uri does not match any of the client's registered redirect URIs."))
}

/// RFC 7636 §4.1 verifier syntax, then an S256 comparison that does not leak the position of the first mismatch.
pub fn verify_pkce(challenge: &str, verifier: &str) -> bool {
    let ok_syntax = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !ok_syntax {
        return false;
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    let computed = URL_SAFE_NO_PAD.encode(digest.as_ref());
    constant_time_eq(computed.as_bytes(), challenge.as_bytes())
}

/// ring's `verify_slices_are_equal` is deprecated in 0.17.14, so the comparison lives here.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Lengths are not secret (a challenge is always 43 characters), only the contents are.
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Appends `params` to the query of `redirect_uri`, keeping any registered query (RFC 6749 §3.1.2).
pub fn redirect_url(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    // A validated redirect URI has no fragment; if one slips through, the query must still precede it.
    let (base, fragment) = match redirect_uri.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (redirect_uri, None),
    };
    let len = params.iter().map(|(k, v)| k.len() + v.len() + 2).sum::<usize>();
    let mut out = String::with_capacity(base.len() + len + 16);
    out.push_str(base);
    let mut need_sep = match base.find('?') {
        None => {
            if !params.is_empty() {
                out.push('?');
            }
            false
        }
        Some(i) => !(base.ends_with('?') || base.ends_with('&') || i + 1 == base.len()),
    };
    for (k, v) in params {
        if need_sep {
            out.push('&');
        }
        form_escape(k, &mut out);
        out.push('=');
        form_escape(v, &mut out);
        need_sep = true;
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// Puts `params` in the fragment of `redirect_uri` (form-encoded, OAuth 2.0 Multiple Response
/// Types §2.1); a validated redirect URI has no fragment of its own, and one that slipped through
/// is replaced, never merged.
pub fn fragment_url(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    let base = redirect_uri.split_once('#').map_or(redirect_uri, |(b, _)| b);
    let mut out = String::with_capacity(base.len() + 256);
    out.push_str(base);
    out.push('#');
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        form_escape(k, &mut out);
        out.push('=');
        form_escape(v, &mut out);
    }
    out
}

/// HTML-escapes `s` (`& < > " '`): every value a page interpolates goes through here.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    html_escape_into(s, &mut out);
    out
}

fn html_escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
}

/// OAuth 2.0 Form Post Response Mode page; every interpolated value is escaped because all of them are
/// attacker-influenced (state, error_description) or client-registered.
pub fn form_post_html(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"referrer\" content=\"no-referrer\">\n\
         <title>Submit This Form</title>\n</head>\n<body>\n<form method=\"post\" action=\"",
    );
    html_escape_into(redirect_uri, &mut out);
    out.push_str("\">\n");
    for (k, v) in params {
        out.push_str("<input type=\"hidden\" name=\"");
        html_escape_into(k, &mut out);
        out.push_str("\" value=\"");
        html_escape_into(v, &mut out);
        out.push_str("\">\n");
    }
    out.push_str(
        "<noscript><button type=\"submit\">Continue</button></noscript>\n</form>\n\
         <script>window.addEventListener(\"load\", function () { document.forms[0].submit(); });</script>\n\
         </body>\n</html>\n",
    );
    out
}

/// Error response parameters (RFC 6749 §4.1.2.1) plus `iss` (RFC 9207).
pub fn error_params<'a>(
    error: &'a str,
    description: &'a str,
    state: Option<&'a str>,
    iss: &'a str,
) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![("error", error), ("error_description", description)];
    if let Some(s) = state {
        v.push(("state", s));
    }
    v.push(("iss", iss));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const STATE: &str = "state-12345";

    struct Fixture {
        redirect_uris: Vec<String>,
        response_types: Vec<String>,
        grant_types: Vec<String>,
        audience: Vec<String>,
        scope: String,
        public: bool,
    }

    impl Fixture {
        fn new(uris: &[&str]) -> Self {
            Fixture {
                redirect_uris: uris.iter().map(|s| s.to_string()).collect(),
                response_types: vec!["code".into()],
                grant_types: vec!["authorization_code".into(), "refresh_token".into()],
                audience: vec!["https://api.example".into(), "https://other.example".into()],
                scope: "openid offline profile".into(),
                public: false,
            }
        }
        fn view(&self) -> ClientView<'_> {
            ClientView {
                client_id: "app",
                redirect_uris: &self.redirect_uris,
                response_types: &self.response_types,
                grant_types: &self.grant_types,
                scope: &self.scope,
                audience: &self.audience,
                public: self.public,
            }
        }
    }

    fn exact_scope(allowed: &[&str], s: &str) -> bool {
        allowed.contains(&s)
    }

    fn policy(pkce: bool, pkce_public: bool) -> Policy<'static> {
        Policy {
            allow_insecure_redirects: false,
            pkce_enforced: pkce,
            pkce_enforced_for_public_clients: pkce_public,
            scope_allowed: &exact_scope,
        }
    }

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("client_id", "app"),
            ("response_type", "code"),
            ("state", STATE),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ]
    }

    /// Base request with `overrides` replacing or adding parameters; a value of "\0" removes the parameter.
    fn with(overrides: &[(&'static str, &'static str)]) -> Vec<(String, String)> {
        let mut v = base();
        for (k, val) in overrides {
            v.retain(|(bk, _)| bk != k);
            if *val != "\0" {
                v.push((k, val));
            }
        }
        p(&v)
    }

    fn run(params: &[(String, String)], fx: &Fixture, pol: &Policy) -> Result<AuthRequest, AuthError> {
        parse(params, Some(&fx.view()), pol)
    }

    fn one() -> Fixture {
        Fixture::new(&["https://good.example/cb"])
    }

    fn expect_redirect(params: &[(String, String)], fx: &Fixture, pol: &Policy, want: &str) -> AuthError {
        let err = run(params, fx, pol).unwrap_err();
        match &err {
            AuthError::Redirect { error, state, redirect_uri, .. } => {
                assert_eq!(*error, want, "{err:?}");
                let given = params.iter().find(|(k, _)| k == "state").map(|(_, v)| v.clone());
                assert_eq!(*state, given);
                assert_eq!(redirect_uri, "https://good.example/cb");
            }
            other => panic!("expected Redirect {want}, got {other:?}"),
        }
        err
    }

    #[test]
    fn full_valid_request() {
        let fx = Fixture::new(&["https://good.example/cb", "https://good.example/cb2"]);
        let params = p(&[
            ("client_id", "app"),
            ("redirect_uri", "https://good.example/cb2"),
            ("response_type", "code"),
            ("response_mode", "form_post"),
            ("scope", "openid profile openid"),
            ("audience", "https://api.example"),
            ("state", STATE),
            ("nonce", "n-0S6_WzA2Mj"),
            ("prompt", "login consent"),
            ("max_age", "3600"),
            ("id_token_hint", "eyJ.hint"),
            ("login_hint", "alice@example.com"),
            ("acr_values", "urn:a urn:b"),
            ("ui_locales", "de en"),
            ("display", "popup"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
            ("unknown_param", "ignored"),
        ]);
        let got = run(&params, &fx, &policy(true, true)).unwrap();
        let want = AuthRequest {
            client_id: "app".into(),
            redirect_uri: "https://good.example/cb2".into(),
            redirect_uri_given: true,
            response_type: "code".into(),
            response_mode: ResponseMode::FormPost,
            scope: vec!["openid".into(), "profile".into()],
            audience: vec!["https://api.example".into()],
            state: STATE.into(),
            nonce: Some("n-0S6_WzA2Mj".into()),
            prompt: vec!["login".into(), "consent".into()],
            max_age: Some(3600),
            id_token_hint: Some("eyJ.hint".into()),
            login_hint: Some("alice@example.com".into()),
            acr_values: vec!["urn:a".into(), "urn:b".into()],
            ui_locales: vec!["de".into(), "en".into()],
            display: Some("popup".into()),
            code_challenge: Some(CHALLENGE.into()),
            code_challenge_method: Some("S256".into()),
            claims: None,
        };
        assert_eq!(got, want);
        let json = serde_json::to_string(&got).unwrap();
        assert!(json.contains("\"form_post\""));
        assert_eq!(serde_json::from_str::<AuthRequest>(&json).unwrap(), want);
    }

    #[test]
    fn single_registered_uri_is_default() {
        let got = run(&with(&[]), &one(), &policy(false, false)).unwrap();
        assert_eq!(got.redirect_uri, "https://good.example/cb");
        assert!(!got.redirect_uri_given);
        assert_eq!(got.response_mode, ResponseMode::Query);
        assert!(got.scope.is_empty());
    }

    fn assert_fatal(fx: &Fixture, uri: &'static str) {
        let params = with(&[("redirect_uri", uri)]);
        match run(&params, fx, &policy(false, false)) {
            Err(AuthError::Fatal { error, .. }) => assert_eq!(error, "invalid_request", "{uri}"),
            other => panic!("{uri} should be Fatal, got {other:?}"),
        }
    }

    #[test]
    fn redirect_uri_tricks_are_fatal() {
        let fx = Fixture::new(&["https://good.example/cb", "https://good.example/q?a=1"]);
        for uri in [
            "https://good.example/c",
            "https://good.example/cb/x",
            "https://good.example/cbx",
            "https://good.example/cb/",
            "https://GOOD.example/cb",
            "https://good.example/CB",
            "HTTPS://good.example/cb",
            "https://good.example/cb?x=1",
            "https://good.example/q?a=1&b=2",
            "https://good.example/q",
            "https://good.example/cb#frag",
            "https://good.example/cb#",
            "https://good.example@evil.example/cb",
            "https://user@good.example/cb",
            "https://good.example.evil.example/cb",
            "https://good.example:443/cb",
            "/cb",
            "//good.example/cb",
            "good.example/cb",
            "https://good.example/cb ",
            "https://good.example/%zz",
            "https://evil.example/cb",
        ] {
            assert_fatal(&fx, uri);
        }
    }

    #[test]
    fn registered_query_is_matched_exactly() {
        let fx = Fixture::new(&["https://good.example/cb", "https://good.example/q?a=1"]);
        let got = run(&with(&[("redirect_uri", "https://good.example/q?a=1")]), &fx, &policy(false, false)).unwrap();
        assert_eq!(got.redirect_uri, "https://good.example/q?a=1");
    }

    #[test]
    fn missing_redirect_uri_with_two_registered_is_fatal() {
        let fx = Fixture::new(&["https://good.example/cb", "https://good.example/cb2"]);
        let err = run(&with(&[]), &fx, &policy(false, false)).unwrap_err();
        assert!(matches!(err, AuthError::Fatal { error: "invalid_request", .. }), "{err:?}");
        let none = Fixture::new(&[]);
        let err = run(&with(&[]), &none, &policy(false, false)).unwrap_err();
        assert!(matches!(err, AuthError::Fatal { error: "invalid_request", .. }), "{err:?}");
    }

    #[test]
    fn loopback_port_may_vary() {
        let fx = Fixture::new(&["http://127.0.0.1:8080/cb", "http://[::1]/cb", "http://localhost:8080/cb"]);
        let ok = |uri: &'static str| run(&with(&[("redirect_uri", uri)]), &fx, &policy(false, false));
        assert_eq!(ok("http://127.0.0.1:9999/cb").unwrap().redirect_uri, "http://127.0.0.1:9999/cb");
        assert_eq!(ok("http://127.0.0.1/cb").unwrap().redirect_uri, "http://127.0.0.1/cb");
        assert_eq!(ok("http://[::1]:51234/cb").unwrap().redirect_uri, "http://[::1]:51234/cb");
        assert_eq!(ok("http://localhost:8080/cb").unwrap().redirect_uri, "http://localhost:8080/cb");
        for uri in [
            "http://127.0.0.1:9999/cb2",
            "http://127.0.0.1:9999/cb?x=1",
            "http://localhost:9999/cb",
            "https://127.0.0.1:9999/cb",
            "http://127.0.0.1:0/cb",
            "http://127.0.0.1:70000/cb",
            "http://127.0.0.1:/cb",
            "http://x@127.0.0.1:9999/cb",
            "http://127.0.0.2:8080/cb",
            "http://[::1]:9999/cb/",
        ] {
            assert_fatal(&fx, uri);
        }
    }

    #[test]
    fn unknown_client_is_fatal() {
        let fx = one();
        let params = with(&[("redirect_uri", "https://good.example/cb")]);
        for err in [
            parse(&params, None, &policy(false, false)).unwrap_err(),
            parse(&with(&[("client_id", "\0")]), Some(&fx.view()), &policy(false, false)).unwrap_err(),
            parse(&with(&[("client_id", "other")]), Some(&fx.view()), &policy(false, false)).unwrap_err(),
        ] {
            assert!(matches!(err, AuthError::Fatal { error: "invalid_client", .. }), "{err:?}");
        }
    }

    #[test]
    fn redirect_errors_carry_state() {
        let fx = one();
        let pol = policy(false, false);
        let err = expect_redirect(&with(&[("state", "\0")]), &fx, &pol, "invalid_state");
        assert_eq!(
            err.description(),
            "The state is missing or does not have enough characters and is therefore considered too weak."
        );
        expect_redirect(&with(&[("state", "short")]), &fx, &pol, "invalid_state");
        expect_redirect(&with(&[("nonce", "abc")]), &fx, &pol, "insufficient_entropy");
        expect_redirect(&with(&[("nonce", "1234567")]), &fx, &pol, "insufficient_entropy");
        assert!(parse(&with(&[("nonce", "12345678")]), Some(&fx.view()), &pol).is_ok());
        expect_redirect(&with(&[("response_type", "token")]), &fx, &pol, "unauthorized_client");
        expect_redirect(&with(&[("response_type", "code id_token")]), &fx, &pol, "unauthorized_client");
        expect_redirect(&with(&[("response_type", "code code")]), &fx, &pol, "unsupported_response_type");
        expect_redirect(&with(&[("response_type", "code  token")]), &fx, &pol, "unsupported_response_type");
        expect_redirect(&with(&[("response_type", "\0")]), &fx, &pol, "unsupported_response_type");
        expect_redirect(&with(&[("response_type", "device_code")]), &fx, &pol, "unsupported_response_type");
        expect_redirect(&with(&[("response_mode", "web_message")]), &fx, &pol, "invalid_request");
        expect_redirect(&with(&[("prompt", "login bogus")]), &fx, &pol, "invalid_request");
        expect_redirect(&with(&[("prompt", "none login")]), &fx, &pol, "invalid_request");
        expect_redirect(&with(&[("max_age", "-1")]), &fx, &pol, "invalid_request");
        expect_redirect(&with(&[("max_age", "abc")]), &fx, &pol, "invalid_request");
        expect_redirect(&with(&[("max_age", "+5")]), &fx, &pol, "invalid_request");
        expect_redirect(&with(&[("max_age", "99999999999999999999999")]), &fx, &pol, "invalid_request");
        expect_redirect(&with(&[("display", "tv")]), &fx, &pol, "invalid_request");
        let err = expect_redirect(&with(&[("code_challenge_method", "plain")]), &fx, &pol, "invalid_request");
        assert!(err.description().contains("plain"));
        expect_redirect(&with(&[("code_challenge_method", "\0")]), &fx, &pol, "invalid_request");
        expect_redirect(&with(&[("code_challenge_method", "s256")]), &fx, &pol, "invalid_request");
        expect_redirect(&with(&[("code_challenge", "\0")]), &fx, &pol, "invalid_request");
        expect_redirect(&with(&[("code_challenge", "abc")]), &fx, &pol, "invalid_request");
        expect_redirect(
            &with(&[("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM")]),
            &fx,
            &pol,
            "invalid_request",
        );
        expect_redirect(&with(&[("scope", "openid admin")]), &fx, &pol, "invalid_scope");
        expect_redirect(&with(&[("scope", "openid \"x")]), &fx, &pol, "invalid_scope");
        expect_redirect(&with(&[("audience", "https://evil.example")]), &fx, &pol, "invalid_request");
        expect_redirect(&with(&[("audience", "https://api.example/")]), &fx, &pol, "invalid_request");
        expect_redirect(&with(&[("request", "eyJhbGciOiJub25lIn0.e30.")]), &fx, &pol, "request_not_supported");
        // The refusal goes where the object asked for answers ({"response_mode":"form_post","state":"inside-1"}).
        let obj = format!(
            "eyJhbGciOiJub25lIn0.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"response_mode":"form_post","state":"inside-1"}"#)
        );
        let obj: &'static str = obj.leak();
        match run(&with(&[("request", obj), ("state", "\0")]), &fx, &pol).unwrap_err() {
            AuthError::Redirect {
                error: "request_not_supported",
                response_mode: ResponseMode::FormPost,
                state,
                ..
            } => {
                assert_eq!(state.as_deref(), Some("inside-1"))
            }
            other => panic!("{other:?}"),
        }
        expect_redirect(&with(&[("request_uri", "https://x.example/r")]), &fx, &pol, "request_uri_not_supported");
        let long: &'static str = "n".repeat(513).leak();
        expect_redirect(&with(&[("nonce", long)]), &fx, &pol, "invalid_request");
    }

    #[test]
    fn error_without_state_has_none_and_keeps_valid_response_mode() {
        let fx = one();
        let err = run(&with(&[("state", "\0"), ("response_mode", "form_post")]), &fx, &policy(false, false));
        match err.unwrap_err() {
            AuthError::Redirect { state, response_mode, .. } => {
                assert_eq!(state, None);
                assert_eq!(response_mode, ResponseMode::FormPost);
            }
            other => panic!("{other:?}"),
        }
        let err = run(&with(&[("response_mode", "web_message")]), &fx, &policy(false, false));
        assert!(matches!(err, Err(AuthError::Redirect { response_mode: ResponseMode::Query, .. })));
        // A code may be sent in the fragment if asked (Multiple Response Types §2.1).
        let got = run(&with(&[("response_mode", "fragment")]), &fx, &policy(false, false)).unwrap();
        assert_eq!(got.response_mode, ResponseMode::Fragment);
    }

    #[test]
    fn implicit_and_hybrid_response_types() {
        let mut fx = one();
        fx.response_types = vec![
            "id_token".into(),
            "token id_token".into(),
            "code id_token".into(),
            "code token".into(),
            "token".into(),
        ];
        fx.grant_types = vec!["authorization_code".into(), "implicit".into()];
        let pol = policy(true, true);
        let no_pkce =
            [("code_challenge", "\0"), ("code_challenge_method", "\0"), ("nonce", "nonce-123456"), ("scope", "openid")];
        let run_with = |fx: &Fixture, extra: &[(&'static str, &'static str)]| {
            let mut e = no_pkce.to_vec();
            e.extend_from_slice(extra);
            run(&with(&e), fx, &pol)
        };
        let go = |extra: &[(&'static str, &'static str)]| run_with(&fx, extra);
        // Registered as a set; canonical spelling; fragment by default; no PKCE without a code.
        let got = go(&[("response_type", "id_token token")]).unwrap();
        assert_eq!((got.response_type.as_str(), got.response_mode), ("id_token token", ResponseMode::Fragment));
        assert_eq!(got.response(), ResponseType { code: false, id_token: true, token: true });
        let got = go(&[("response_type", "token"), ("response_mode", "form_post")]).unwrap();
        assert_eq!(got.response_mode, ResponseMode::FormPost);
        // A code still needs PKCE when it is enforced.
        let err = go(&[("response_type", "id_token code")]).unwrap_err();
        assert_eq!(
            (err.error(), err.description()),
            ("invalid_request", "PKCE is required: the code_challenge is missing.")
        );
        // Tokens never go to the query: refused, and the refusal itself goes to the fragment.
        match go(&[("response_type", "id_token"), ("response_mode", "query")]).unwrap_err() {
            AuthError::Redirect { error: "invalid_request", response_mode: ResponseMode::Fragment, .. } => {}
            other => panic!("{other:?}"),
        }
        // An ID token from the authorization endpoint needs a nonce and openid; code token does not need a nonce.
        match go(&[("response_type", "id_token"), ("nonce", "\0")]).unwrap_err() {
            AuthError::Redirect { error: "invalid_request", response_mode: ResponseMode::Fragment, .. } => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(go(&[("response_type", "id_token"), ("scope", "offline")]).unwrap_err().error(), "invalid_scope");
        let with_code = [
            ("response_type", "code token"),
            ("nonce", "\0"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ];
        assert!(run(&with(&with_code), &fx, &pol).is_ok());
        // Not registered (as a set), or without the implicit grant: unauthorized_client.
        assert_eq!(go(&[("response_type", "code id_token token")]).unwrap_err().error(), "unauthorized_client");
        // Errors before the response type is known use the mode it implies.
        let err = go(&[("response_type", "id_token"), ("state", "\0")]).unwrap_err();
        assert!(matches!(err, AuthError::Redirect { response_mode: ResponseMode::Fragment, .. }), "{err:?}");
        assert_eq!(fragment_url("https://rp/cb", &[("a", "1 2"), ("b", "&")]), "https://rp/cb#a=1+2&b=%26");
        let mut code_only = one();
        code_only.response_types = fx.response_types.clone();
        assert_eq!(run_with(&code_only, &[("response_type", "id_token")]).unwrap_err().error(), "unauthorized_client");
    }

    #[test]
    fn client_must_be_allowed_code_flow() {
        let mut fx = one();
        fx.grant_types = vec!["client_credentials".into()];
        expect_redirect(&with(&[]), &fx, &policy(false, false), "unauthorized_client");
        let mut fx = one();
        fx.response_types = vec!["token".into()];
        expect_redirect(&with(&[]), &fx, &policy(false, false), "unauthorized_client");
        // Registered without either list: Hydra's defaults, `code` and `authorization_code`.
        let mut fx = one();
        (fx.response_types, fx.grant_types) = (Vec::new(), Vec::new());
        assert!(run(&with(&[]), &fx, &policy(false, false)).is_ok());
        expect_redirect(
            &with(&[("response_type", "code id_token")]),
            &fx,
            &policy(false, false),
            "unauthorized_client",
        );
    }

    #[test]
    fn pkce_enforcement() {
        let no_pkce = with(&[("code_challenge", "\0"), ("code_challenge_method", "\0")]);
        let mut fx = one();
        expect_redirect(&no_pkce, &fx, &policy(true, false), "invalid_request");
        // Only public clients are forced: the confidential one passes.
        let got = run(&no_pkce, &fx, &policy(false, true)).unwrap();
        assert_eq!((got.code_challenge, got.code_challenge_method), (None, None));
        fx.public = true;
        expect_redirect(&no_pkce, &fx, &policy(false, true), "invalid_request");
        assert!(run(&no_pkce, &fx, &policy(false, false)).is_ok());
        assert!(run(&with(&[]), &fx, &policy(true, true)).is_ok());
    }

    #[test]
    fn pkce_verification() {
        assert!(verify_pkce(CHALLENGE, VERIFIER));
        assert!(!verify_pkce(CHALLENGE, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK"));
        assert!(!verify_pkce("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN", VERIFIER));
        assert!(!verify_pkce(CHALLENGE, &VERIFIER[..42]));
        let v42 = "a".repeat(42);
        let v43 = "a".repeat(43);
        let v128 = "a".repeat(128);
        let v129 = "a".repeat(129);
        assert!(!verify_pkce(&challenge_of(&v42), &v42));
        assert!(verify_pkce(&challenge_of(&v43), &v43));
        assert!(verify_pkce(&challenge_of(&v128), &v128));
        assert!(!verify_pkce(&challenge_of(&v129), &v129));
        let bad = format!("{}+", "a".repeat(42));
        assert!(!verify_pkce(&challenge_of(&bad), &bad));
        let bad = format!("{} ", "a".repeat(42));
        assert!(!verify_pkce(&challenge_of(&bad), &bad));
        assert!(!verify_pkce("", VERIFIER));
    }

    fn challenge_of(v: &str) -> String {
        URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, v.as_bytes()).as_ref())
    }

    #[test]
    fn redirect_url_encoding() {
        let url = redirect_url("https://c.example/cb?keep=1", &[("code", "a b&c=d"), ("state", "ü~._-*")]);
        assert_eq!(url, "https://c.example/cb?keep=1&code=a+b%26c%3Dd&state=%C3%BC~._-%2A");
        assert_eq!(redirect_url("https://c.example/cb", &[("a", "1"), ("b", "2")]), "https://c.example/cb?a=1&b=2");
        assert_eq!(redirect_url("https://c.example/cb?", &[("a", "1")]), "https://c.example/cb?a=1");
        assert_eq!(redirect_url("https://c.example/cb?x=1&", &[("a", "1")]), "https://c.example/cb?x=1&a=1");
        assert_eq!(redirect_url("https://c.example/cb", &[]), "https://c.example/cb");
    }

    #[test]
    fn form_post_escapes_everything() {
        let html =
            form_post_html("https://c.example/cb?a=1&b=\"><script>", &[("state", "\"><script>alert('x')</script>")]);
        assert!(!html.contains("\"><script>"));
        assert!(!html.contains("alert('x')"));
        assert!(html.contains("action=\"https://c.example/cb?a=1&amp;b=&quot;&gt;&lt;script&gt;\""));
        assert!(html.contains("name=\"state\" value=\"&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;\""));
        assert!(html.contains("<form method=\"post\""));
        assert!(html.contains("<noscript>"));
        assert!(html.contains("document.forms[0].submit()"));
        assert_eq!(html.matches("<script>").count(), 1);
    }

    #[test]
    fn error_params_shape() {
        assert_eq!(
            error_params("invalid_request", "bad", Some("st"), "https://issuer"),
            vec![
                ("error", "invalid_request"),
                ("error_description", "bad"),
                ("state", "st"),
                ("iss", "https://issuer")
            ]
        );
        assert_eq!(error_params("e", "d", None, "i").len(), 3);
    }

    #[test]
    fn malformed_input_never_panics() {
        let fx = Fixture::new(&["http://[::1", "https://good.example/cb", "x:"]);
        for uri in ["http://[::1", "http://[::1]x/cb", "a:", ":", "%", "http://é.example/cb", "h://a:b:c/", "x:"] {
            let err = run(&with(&[("redirect_uri", uri)]), &fx, &policy(false, false)).unwrap_err();
            assert!(matches!(err, AuthError::Fatal { .. }), "{uri}: {err:?}");
        }
        for v in ["é", "\u{0}", "%", " ", "  x  "] {
            for k in ["scope", "prompt", "max_age", "audience", "state", "code_challenge", "nonce", "display"] {
                let params = p(&[("client_id", "app"), ("redirect_uri", "https://good.example/cb"), (k, v)]);
                let err = run(&params, &fx, &policy(true, true)).unwrap_err();
                assert!(matches!(err, AuthError::Redirect { .. }), "{k}={v:?}: {err:?}");
            }
        }
    }
}
