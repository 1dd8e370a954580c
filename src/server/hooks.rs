//! Token hooks (`oauth2.token_hook`, `oauth2.refresh_token_hook`): the calls run on a pool of
//! `token-hook` threads, each keeping its connection to the hook alive between calls, never on a
//! worker; a worker hands a call over and awaits the answer.
//!
//! Invariants: the outbound rules hold (private, loopback and reserved addresses refused unless
//! `clients.http.disallow_private_ip_ranges` is off or the hook's URL is in
//! `clients.http.private_ip_exception_urls`; 5 s per connect, read or write and 10 s per call;
//! redirects not followed; at most `HOOK_MAX_BYTES` of answer read); a full queue refuses the
//! grant at once instead of queueing without bound; nothing sent to or received from a hook is
//! logged; a hook that answered anything but `200` or `204`, or nothing in time, refuses the
//! grant with Hydra's error before anything is written.

use crate::oauth2::error::OAuthError;
use crate::oauth2::token_hook::{self, Answer, HookRequest};
use crate::server::state::Worker;
use serde_json::{Map, Value};

/// The session claims the hooks decided on, when a hook changed them: the access token's `ext`
/// and the ID token's extra claims.
pub type Changed = Option<(Map<String, Value>, Map<String, Value>)>;

/// Runs the hooks for a grant about to be issued: `refresh_token_hook` first for a refresh (with
/// the legacy body), then `token_hook`, each seeing the session as the one before left it. `Err`
/// refuses the grant.
pub async fn run(w: &Worker, r: &HookRequest<'_>, refresh: bool) -> Result<Changed, OAuthError> {
    let Some(pool) = w.shared.hooks.as_ref() else { return Ok(None) };
    let mut changed: Changed = None;
    let legacy = if refresh { pool.refresh.as_ref() } else { None };
    for (hook, is_legacy) in [(legacy, true), (pool.token.as_ref(), false)] {
        let Some(hook) = hook else { continue };
        let build =
            |r: &HookRequest| if is_legacy { token_hook::refresh_hook_body(r) } else { token_hook::token_hook_body(r) };
        let body = match &changed {
            Some((at, id)) => {
                let mut seen = *r;
                seen.session.access_token = at;
                seen.session.id_token = id;
                build(&seen)
            }
            None => build(r),
        };
        let allow_private = w.config().clients_http.allows_private(&hook.url);
        let (status, answer) = match pool.call(hook, body, allow_private).await {
            Ok(x) => x,
            Err(e) => {
                crate::warn!("a token hook could not be called", "url" = bare(&hook.url), "error" = e);
                return Err(token_hook::unreachable());
            }
        };
        match token_hook::read_answer(status, &answer) {
            Ok(Answer::Keep) => {}
            Ok(Answer::Replace { access_token, id_token }) => changed = Some((access_token, id_token)),
            Err(e) => {
                crate::warn!("a token hook refused or failed a grant", "url" = bare(&hook.url), "status" = status);
                return Err(e);
            }
        }
    }
    Ok(changed)
}

/// A hook URL for the log: without its query, which may carry a key.
fn bare(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// Whether any hook is configured (callers skip building the request otherwise).
pub fn configured(w: &Worker) -> bool {
    w.shared.hooks.is_some()
}

// ---- Per grant -----------------------------------------------------------------------------

fn words(s: &str) -> Vec<String> {
    s.split(' ').filter(|w| !w.is_empty()).map(String::from).collect()
}

/// A grant without a user (client credentials, JWT bearer), as its hooks see it.
pub struct Lone<'a> {
    pub client_id: &'a str,
    pub grant_type: &'a str,
    pub subject: &'a str,
    /// The `scope` parameter as sent.
    pub requested: Option<&'a str>,
    /// The scope granted, space separated.
    pub granted: &'a str,
    pub audience: &'a [String],
}

/// The hooks of a grant without a user: resolves to the access token's `ext` as JSON text (""
/// when no hook changed it).
pub async fn lone(w: &Worker, g: &Lone<'_>, form: &[(String, String)]) -> Result<String, OAuthError> {
    if !configured(w) {
        return Ok(String::new());
    }
    let (requested, granted) = (words(g.requested.unwrap_or("")), words(g.granted));
    let empty = Map::new();
    let r = HookRequest {
        client_id: g.client_id,
        grant_type: g.grant_type,
        requested_scopes: &requested,
        granted_scopes: &granted,
        granted_audience: g.audience,
        form,
        session: token_hook::Session {
            issuer: &w.config().urls.issuer,
            subject: g.subject,
            user: g.subject,
            client_id: g.client_id,
            flow_id: "",
            auth_time: 0,
            requested_at: 0,
            acr: "",
            amr: &[],
            access_token: &empty,
            id_token: &empty,
        },
    };
    Ok(match run(w, &r, false).await? {
        Some((at, _)) if !at.is_empty() => serde_json::to_string(&at).unwrap_or_default(),
        _ => String::new(),
    })
}

/// The hooks of a grant with a user (authorization code, device code, refresh), whose access
/// token gets `scope` (a refresh may narrow it): the grant's
/// `ext` is changed in place when a hook answered `200`: the access token's claims replaced by
/// the hook's; the ID token's extra claims replaced too, except that for a code or device code
/// the claims the consent app gave stay (Hydra reads them back from the stored session after
/// the hook). Resolves to whether anything changed.
pub async fn with_user(
    w: &Worker,
    rec: &hydra_storage::TokenRecord,
    grant_type: &str,
    scope: &[String],
    ext: &mut crate::oauth2::authorization_code::GrantExt,
    form: &[(String, String)],
) -> Result<bool, OAuthError> {
    if !configured(w) {
        return Ok(false);
    }
    let refresh = grant_type == "refresh_token";
    let g = &ext.g;
    let r = HookRequest {
        client_id: &rec.client_id,
        grant_type,
        requested_scopes: scope,
        granted_scopes: scope,
        granted_audience: &rec.audience,
        form,
        session: token_hook::Session {
            issuer: &w.config().urls.issuer,
            subject: &g.client_subject,
            user: &rec.subject,
            client_id: &rec.client_id,
            flow_id: &g.flow,
            auth_time: g.auth_time,
            requested_at: g.requested_at,
            acr: &g.acr,
            amr: &g.amr,
            access_token: &ext.at,
            id_token: &g.id_token,
        },
    };
    let Some((at, mut id)) = run(w, &r, refresh).await? else { return Ok(false) };
    if !refresh {
        for (k, v) in &ext.g.id_token {
            id.insert(k.clone(), v.clone());
        }
    }
    ext.at = at;
    ext.g.id_token = id;
    Ok(true)
}
