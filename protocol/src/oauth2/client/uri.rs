//! URLs built from a client id, and the sector identifier document check. Parsing and judging
//! URIs is `crate::oauth2::uri`'s.

use super::*;
use crate::oauth2::uri::path_escape;

/// OpenID Connect Registration §5: the document at `sector_identifier_uri` is a JSON array of
/// URIs that must include every redirect URI of the client.
pub fn check_sector_document(body: &[u8], redirect_uris: &[String]) -> Result<(), ClientError> {
    let listed: Vec<String> = serde_json::from_slice(body).map_err(|_| {
        ClientError::invalid_client_metadata(
            "Unable to read sector_identifier_uri: it must serve a JSON array of URIs.",
        )
    })?;
    match redirect_uris.iter().find(|r| !listed.contains(r)) {
        Some(r) => Err(ClientError::invalid_client_metadata(&format!(
            "Redirect URL \"{r}\" does not match values from sector_identifier_uri."
        ))),
        None => Ok(()),
    }
}

/// `registration_client_uri` as Hydra builds it: `<public>/oauth2/register/<PathEscape(id)>`.
pub fn registration_client_uri(policy: &ClientPolicy, client_id: &str) -> String {
    format!("{}/oauth2/register/{}", policy.public_url.trim_end_matches('/'), path_escape(client_id))
}

/// `Location` header of the admin create response: `/admin/clients/<PathEscape(id)>`.
pub fn admin_location(client_id: &str) -> String {
    format!("/admin/clients/{}", path_escape(client_id))
}
