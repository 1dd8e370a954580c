//! `POST /oauth2/revoke` (RFC 7009) with Hydra's answers: `200` with an empty body for an unknown,
//! invalid or already revoked token (§2.2); `400 unauthorized_client` for a token issued to
//! another client (§2.1: "the request is refused and the client is informed of the error", as
//! current fosite does); `invalid_request` / `invalid_client` for bad requests. A revocation is
//! acknowledged after its delete is durable.

use crate::http::Request;
use crate::oauth2::client_auth;
use crate::oauth2::error::{ErrorCode, OAuthError};
use crate::server::auth::authenticate;
use crate::server::common::read_form;
use crate::server::common::{find_token, required_token};
use crate::server::respond::Response;
use crate::server::respond::StoreResult;
use crate::server::state::Worker;
use hydra_storage::Storage;

pub async fn handle(w: &Worker, req: &Request) -> Response {
    match run(w, req).await {
        Ok(()) => Response::empty(200),
        Err(e) => Response::oauth_error(&e),
    }
    .no_store()
}

async fn run(w: &Worker, req: &Request) -> Result<(), OAuthError> {
    let form = read_form(req)?;
    let presented =
        client_auth::extract(client_auth::single_authorization(req.head.header_all("authorization"))?, &form)?;
    let client = authenticate(w, &presented).await?;
    let token = required_token(&form)?;
    // RFC 7009 §2.2: an invalid token is not an error for the client.
    let Some((r, view)) = find_token(w, token).await? else { return Ok(()) };
    let rec = view.get();
    if rec.client_id.as_str() != client.stored.client.client_id {
        // RFC 7009 §2.1: the token must have been issued to the client making the request.
        return Err(OAuthError::hint(
            ErrorCode::UnauthorizedClient,
            "The OAuth 2.0 Client is not allowed to revoke a token issued to another client.",
        )
        .with_basic(presented.is_basic()));
    }
    let partition = u32::from(r.partition);
    let family = rec.family.to_native();
    if family != r.seq {
        // A token of an authorization-code grant: revoking it revokes the grant (every access
        // and refresh token of it), as Hydra.
        w.shared.store.revoke_family(partition, family).await.oauth()?;
    } else {
        w.shared.store.delete_token(partition, r.seq).await.oauth()?;
    }
    Ok(())
}
