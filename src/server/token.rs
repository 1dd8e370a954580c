//! `POST /oauth2/token`: parse, authenticate, check the grant (sans-IO), mint, store durably,
//! answer. Every answer carries `Cache-Control: no-store` and `Pragma: no-cache`.

use crate::http::Request;
use crate::oauth2::client_auth;
use crate::oauth2::client_credentials::{self, Policy};
use crate::oauth2::error::OAuthError;
use crate::oauth2::token_request::{self, TokenRequest};
use crate::server::access_token;
use crate::server::auth::authenticate;
use crate::server::code_grant;
use crate::server::common::read_form;
use crate::server::respond::Response;
use crate::server::state::Worker;

pub async fn handle(w: &Worker, req: &Request) -> Response {
    match run(w, req).await {
        Ok(r) => r,
        Err(e) => Response::oauth_error(&e),
    }
    .no_store()
}

async fn run(w: &Worker, req: &Request) -> Result<Response, OAuthError> {
    let form = read_form(req)?;
    let presented =
        client_auth::extract(client_auth::single_authorization(req.head.header_all("authorization"))?, &form)?;
    let client = authenticate(w, &presented).await?;
    let request = token_request::parse(&form)?;
    let cfg = w.config();
    // What a token hook sees of the request (nothing is copied without a hook).
    let hook_form: Vec<(String, String)> = if crate::server::hooks::configured(w) {
        form.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    } else {
        Vec::new()
    };
    match request {
        TokenRequest::ClientCredentials { scope, audience } => {
            let policy = Policy {
                strategy: cfg.strategies.scope,
                default_grant_allowed_scope: cfg.oauth2.cc_default_grant_allowed_scope,
                access_token_ttl: cfg.ttl.access_token,
            };
            let plan = client_credentials::check(&client.stored.client, scope.as_deref(), &audience, &policy)
                .map_err(|e| e.with_basic(presented.is_basic()))?;
            // The client is its own subject.
            let id = &client.stored.client.client_id;
            let lone = crate::server::hooks::Lone {
                client_id: id,
                grant_type: "client_credentials",
                subject: id,
                requested: scope.as_deref(),
                granted: &plan.scope,
                audience: &plan.audience,
            };
            let ext = crate::server::hooks::lone(w, &lone, &hook_form)
                .await
                .map_err(|e| e.with_basic(presented.is_basic()))?;
            access_token::issue_lone(w, &client, id, plan, &ext)
                .await
                .map(|body| Response::json(200, body))
                .map_err(|e| e.with_basic(presented.is_basic()))
        }
        TokenRequest::AuthorizationCode { code, redirect_uri, code_verifier } => {
            let c = &client.stored.client;
            code_grant::exchange_code(w, c, &code, redirect_uri.as_deref(), code_verifier.as_deref(), &hook_form)
                .await
                .map(|body| Response::json(200, body))
                .map_err(|e| e.with_basic(presented.is_basic()))
        }
        TokenRequest::JwtBearer { assertion, scope, audience } => {
            crate::server::jwt_bearer::exchange(w, &client, &assertion, scope.as_deref(), &audience, &hook_form)
                .await
                .map(|body| Response::json(200, body))
                .map_err(|e| e.with_basic(presented.is_basic()))
        }
        TokenRequest::DeviceCode { device_code } => {
            crate::server::device::exchange(w, &client.stored.client, &device_code, &hook_form)
                .await
                .map(|body| Response::json(200, body))
                .map_err(|e| e.with_basic(presented.is_basic()))
        }
        TokenRequest::RefreshToken { refresh_token, scope } => {
            code_grant::refresh(w, &client.stored.client, &refresh_token, scope.as_deref(), &hook_form)
                .await
                .map(|body| Response::json(200, body))
                .map_err(|e| e.with_basic(presented.is_basic()))
        }
    }
}
