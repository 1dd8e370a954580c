//! `POST /oauth2/token`: parse, authenticate, check the grant (sans-IO), mint, store durably,
//! answer. Every answer carries `Cache-Control: no-store` and `Pragma: no-cache`.

use crate::http::form;
use crate::http::Request;
use crate::oauth2::client_auth;
use crate::oauth2::client_credentials::{self, Policy};
use crate::oauth2::error::{ErrorCode, OAuthError};
use crate::oauth2::token_request::{self, TokenRequest};
use crate::server::access_token::{self, Grant};
use crate::server::auth::authenticate;
use crate::server::code_grant;
use crate::server::common::form_body;
use crate::server::respond::Response;
use crate::server::respond::StoreResult;
use crate::server::state::{unix_now, Worker};
use hydra_storage::{Storage, TokenKind, TokenRecord};

pub async fn handle(w: &Worker, req: &Request) -> Response {
    match run(w, req).await {
        Ok(r) => r,
        Err(e) => Response::oauth_error(&e),
    }
    .no_store()
}

/// Decodes a token or revocation request body, refusing credentials in the query string
/// (RFC 6749 §2.3.1: client credentials "MUST NOT be included in the request URI"). `audience`
/// may repeat: it is not an RFC 6749 parameter and Hydra documents it as repeatable.
pub fn read_form(req: &Request) -> Result<form::Form, OAuthError> {
    if let Some(q) = req.head.query() {
        let query = form::decode_multi(q.as_bytes())
            .map_err(|e| OAuthError::hint(ErrorCode::InvalidRequest, e.description()))?;
        if query.iter().any(|(k, _)| k == "client_secret" || k == "token" || k == "code" || k == "refresh_token") {
            return Err(OAuthError::hint(
                ErrorCode::InvalidRequest,
                "Credentials and tokens must be sent in the request body, not in the URL.",
            ));
        }
    }
    form_body(req, &["audience"])
}

async fn run(w: &Worker, req: &Request) -> Result<Response, OAuthError> {
    let form = read_form(req)?;
    let presented =
        client_auth::extract(client_auth::single_authorization(req.head.header_all("authorization"))?, &form)?;
    let client = authenticate(w, &presented).await?;
    let request = token_request::parse(&form)?;
    let cfg = w.config();
    match request {
        TokenRequest::ClientCredentials { scope, audience } => {
            let policy = Policy {
                strategy: cfg.strategies.scope,
                default_grant_allowed_scope: cfg.oauth2.cc_default_grant_allowed_scope,
                access_token_ttl: cfg.ttl.access_token,
            };
            let plan = client_credentials::check(&client.stored.client, scope.as_deref(), &audience, &policy)
                .map_err(|e| e.with_basic(presented.is_basic()))?;
            let store = &w.shared.store;
            let partition = w.next_partition();
            let seq = store.next_seq(partition).await.oauth()?;
            // The client may have been deleted, or deleted and re-created, while this request
            // waited for authentication. Deletion and re-creation raise the id's watermarks from
            // the sequence counters; a number taken after that must not become a token of the
            // old client, so the client must still be the one that authenticated.
            if !crate::server::auth::still_registered(w, &client) {
                return Err(OAuthError::new(ErrorCode::InvalidClient).with_basic(presented.is_basic()));
            }
            let now = unix_now();
            let lifespan = plan.lifespan.as_secs().min(i64::MAX as u64 / 2) as i64;
            let c = &client.stored.client;
            let grant = Grant {
                subject: &c.client_id,
                scope: &plan.scope,
                audience: &plan.audience,
                issued_at: now,
                expires_at: now.saturating_add(lifespan),
                ext: "",
            };
            let minted = access_token::mint(w, c, partition, seq, &grant).await?;
            let body = client_credentials::response_body(&minted.token, lifespan, &plan.scope);
            let record = TokenRecord {
                kind: TokenKind::Access,
                signature: minted.signature,
                family: seq,
                client_id: client.stored.client.client_id.clone(),
                subject: client.stored.client.client_id.clone(),
                scope: plan.scope,
                audience: plan.audience,
                issued_at: now,
                expires_at: now.saturating_add(lifespan),
                ext: String::new(),
            };
            // Acknowledge only after the record is durable.
            w.batcher.insert(store, partition, seq, record).await.oauth()?;
            w.metrics.tokens_issued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(Response::json(200, body))
        }
        TokenRequest::AuthorizationCode { code, redirect_uri, code_verifier } => {
            let c = &client.stored.client;
            code_grant::exchange_code(w, c, &code, redirect_uri.as_deref(), code_verifier.as_deref())
                .await
                .map(|body| Response::json(200, body))
                .map_err(|e| e.with_basic(presented.is_basic()))
        }
        TokenRequest::JwtBearer { assertion, scope, audience } => {
            crate::server::jwt_bearer::exchange(w, &client, &assertion, scope.as_deref(), &audience)
                .await
                .map(|body| Response::json(200, body))
                .map_err(|e| e.with_basic(presented.is_basic()))
        }
        TokenRequest::RefreshToken { refresh_token, scope } => {
            code_grant::refresh(w, &client.stored.client, &refresh_token, scope.as_deref())
                .await
                .map(|body| Response::json(200, body))
                .map_err(|e| e.with_basic(presented.is_basic()))
        }
    }
}
