//! OAuth 2.0 protocol rules, sans-IO: no runtime, no store, no sockets. Each function takes
//! typed values and returns typed values or an [`error::OAuthError`].

pub mod at_rest;
pub mod authorization_code;
pub mod authorize;
pub mod client;
pub mod client_assertion;
pub mod client_auth;
pub mod client_credentials;
pub mod device;
pub mod error;
pub mod flow;
pub mod hasher;
pub mod id_token;
pub mod introspection;
pub mod jwt_access_token;
pub mod jwt_bearer;
pub mod logout;
pub mod page_token;
pub mod request_object;
pub mod scope;
pub mod token_hook;
pub mod token_request;
pub mod uri;

/// Appends `s` as a JSON string literal (escaped as serde_json escapes it), for the answers that
/// are written directly instead of through a `serde_json::Value` (token, introspection).
pub(crate) fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail; an error could only truncate the body, never panic.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A token response (RFC 6749 §5.1), written directly: the members Hydra sends, in its order
/// (serde_json's sorted keys), the ID and refresh tokens when issued. Why: building a
/// `serde_json::Value` for it cost six allocations and about 2,900 instructions per issuance
/// (`loadtest/callgrind.sh`, `json_value`).
pub fn token_response(
    access_token: &str,
    expires_in: i64,
    id_token: Option<&str>,
    refresh_token: Option<&str>,
    scope: &str,
) -> Vec<u8> {
    let extra = id_token.map_or(0, |t| t.len() + 16) + refresh_token.map_or(0, |t| t.len() + 20);
    let mut out = Vec::with_capacity(96 + access_token.len() + scope.len() + extra);
    out.extend_from_slice(b"{\"access_token\":");
    push_json_str(&mut out, access_token);
    out.extend_from_slice(b",\"expires_in\":");
    let _ = std::io::Write::write_fmt(&mut out, format_args!("{expires_in}"));
    if let Some(t) = id_token {
        out.extend_from_slice(b",\"id_token\":");
        push_json_str(&mut out, t);
    }
    if let Some(t) = refresh_token {
        out.extend_from_slice(b",\"refresh_token\":");
        push_json_str(&mut out, t);
    }
    out.extend_from_slice(b",\"scope\":");
    push_json_str(&mut out, scope);
    out.extend_from_slice(b",\"token_type\":\"bearer\"}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_response_is_the_json_serde_would_write() {
        for (id, rt) in [(None, None), (Some("eyJ.a.b"), None), (None, Some("ory_rt_x.y")), (Some("i"), Some("r\"q"))] {
            let body = token_response("ory_at_x.y", 3599, id, rt, "openid \"odd\\");
            let mut v = serde_json::json!({"access_token": "ory_at_x.y", "expires_in": 3599,
                "scope": "openid \"odd\\", "token_type": "bearer"});
            if let Some(t) = id {
                v["id_token"] = t.into();
            }
            if let Some(t) = rt {
                v["refresh_token"] = t.into();
            }
            assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).unwrap(), v);
            // Same bytes as serializing the Value (members in the order serde_json sorts them).
            assert_eq!(body, serde_json::to_vec(&v).unwrap());
        }
    }
}
