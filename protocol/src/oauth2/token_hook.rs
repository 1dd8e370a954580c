//! Token hooks (`oauth2.token_hook`, `oauth2.refresh_token_hook`), sans-IO: the JSON a hook is
//! sent (Hydra's `TokenHookRequest` and the legacy `RefreshTokenHookRequest`) and what its
//! answer means.
//!
//! Invariants: a hook sees no credential (the form `payload` keeps only `assertion`,
//! `grant_type`, `response_type`, `scope` and `client_id`, as fosite's sanitiser); only a `200`
//! with a JSON object or a `204` lets the grant go on; anything else refuses it with Hydra's
//! error; a `200` replaces the access token's `ext` and the ID token's extra claims with the
//! hook's maps (a missing map empties them), as Hydra.

use crate::oauth2::error::{ErrorCode, OAuthError};
use serde_json::{json, Map, Value};

/// What the grant knows when the hooks run.
#[derive(Clone, Copy)]
pub struct HookRequest<'a> {
    pub client_id: &'a str,
    pub grant_type: &'a str,
    pub requested_scopes: &'a [String],
    /// Empty for the authorization code and device code grants (fosite grants them after the
    /// hooks run).
    pub granted_scopes: &'a [String],
    pub granted_audience: &'a [String],
    /// The token request's form, as `(name, value)` pairs.
    pub form: &'a [(String, String)],
    pub session: Session<'a>,
}

/// The token session as a hook sees it (the parts of Hydra's `oauth2.Session` a hook reads).
#[derive(Clone, Copy)]
pub struct Session<'a> {
    pub issuer: &'a str,
    /// The ID token's subject (pairwise when the client has it); the user for the legacy hook.
    pub subject: &'a str,
    /// The user's subject as the login app gave it.
    pub user: &'a str,
    pub client_id: &'a str,
    pub flow_id: &'a str,
    pub auth_time: i64,
    pub requested_at: i64,
    pub acr: &'a str,
    pub amr: &'a [String],
    /// `session.access_token` (the access token's `ext`).
    pub access_token: &'a Map<String, Value>,
    /// `session.id_token` (extra ID-token claims).
    pub id_token: &'a Map<String, Value>,
}

/// The form parameters a hook may see (fosite's `defaultAllowedParameters` plus `assertion`).
const PAYLOAD: [&str; 5] = ["assertion", "grant_type", "response_type", "scope", "client_id"];

fn rfc3339(t: i64) -> Value {
    if t <= 0 {
        return json!("0001-01-01T00:00:00Z");
    }
    json!(crate::dates::rfc3339(t))
}

fn session_json(s: &Session) -> Value {
    json!({
        "id_token": {
            "id_token_claims": {
                "jti": "",
                "iss": s.issuer,
                "sub": s.subject,
                "aud": [s.client_id],
                "nonce": "",
                "exp": rfc3339(0),
                "iat": rfc3339(0),
                "rat": rfc3339(s.requested_at),
                "auth_time": rfc3339(s.auth_time),
                "at_hash": "",
                "acr": s.acr,
                "amr": s.amr,
                "c_hash": "",
                "ext": s.id_token,
            },
            "headers": {"extra": {}},
            "expires_at": {},
            "username": "",
            "subject": s.user,
        },
        "extra": s.access_token,
        "kid": "",
        "client_id": s.client_id,
        "consent_challenge": s.flow_id,
        "exclude_not_before_claim": false,
        "allowed_top_level_claims": [],
        "mirror_top_level_claims": true,
        "preserve_ext_claims": false,
    })
}

/// The body of a `token_hook` call.
pub fn token_hook_body(r: &HookRequest) -> Vec<u8> {
    let mut payload = Map::new();
    for (k, v) in r.form.iter().filter(|(k, _)| PAYLOAD.contains(&k.as_str())) {
        let entry = payload.entry(k.clone()).or_insert_with(|| json!([]));
        if let Value::Array(a) = entry {
            a.push(json!(v));
        }
    }
    let body = json!({
        "session": session_json(&r.session),
        "request": {
            "client_id": r.client_id,
            "requested_scopes": r.requested_scopes,
            "granted_scopes": r.granted_scopes,
            "granted_audience": r.granted_audience,
            "grant_types": [r.grant_type],
            "payload": payload,
        },
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The body of a `refresh_token_hook` call (Hydra's legacy shape).
pub fn refresh_hook_body(r: &HookRequest) -> Vec<u8> {
    let body = json!({
        "subject": r.session.user,
        "session": session_json(&r.session),
        "requester": {
            "client_id": r.client_id,
            "granted_scopes": r.granted_scopes,
            "granted_audience": r.granted_audience,
            "grant_types": [r.grant_type],
        },
        "client_id": r.client_id,
        "granted_scopes": r.granted_scopes,
        "granted_audience": r.granted_audience,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// What a hook's answer means for the grant.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `204`: the session as it was.
    Keep,
    /// `200`: the access token's `ext` and the ID token's extra claims, replaced.
    Replace { access_token: Map<String, Value>, id_token: Map<String, Value> },
}

const HOOK_FAILED: &str = "The token hook target responded with an error.";

/// Reads a hook's answer: `Ok` lets the grant go on, `Err` is the error the token endpoint
/// answers (Hydra's).
pub fn read_answer(status: u16, body: &[u8]) -> Result<Answer, OAuthError> {
    match status {
        204 => Ok(Answer::Keep),
        200 => {
            let v: Value = serde_json::from_slice(body)
                .map_err(|_| OAuthError::described(ErrorCode::ServerError, HOOK_FAILED))?;
            let Some(session) = v.get("session").and_then(Value::as_object) else {
                return Err(OAuthError::described(ErrorCode::ServerError, HOOK_FAILED));
            };
            let map = |k: &str| -> Result<Map<String, Value>, OAuthError> {
                match session.get(k) {
                    None | Some(Value::Null) => Ok(Map::new()),
                    Some(Value::Object(m)) => Ok(m.clone()),
                    Some(_) => Err(OAuthError::described(ErrorCode::ServerError, HOOK_FAILED)),
                }
            };
            Ok(Answer::Replace { access_token: map("access_token")?, id_token: map("id_token")? })
        }
        403 => Err(OAuthError {
            hint: Some(
                "Make sure that the request you are making is valid. Maybe the credential or request parameters you are using are limited in scope or otherwise restricted."
                    .into(),
            ),
            ..OAuthError::described(ErrorCode::AccessDenied, HOOK_FAILED)
        }),
        _ => Err(OAuthError::described(ErrorCode::ServerError, HOOK_FAILED)),
    }
}

/// The error when the hook could not be reached or did not answer in time.
pub fn unreachable() -> OAuthError {
    OAuthError::described(ErrorCode::ServerError, "An error occurred while executing the token hook.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(
        form: &'a [(String, String)],
        at: &'a Map<String, Value>,
        id: &'a Map<String, Value>,
    ) -> HookRequest<'a> {
        HookRequest {
            client_id: "app",
            grant_type: "client_credentials",
            requested_scopes: &[],
            granted_scopes: &[],
            granted_audience: &[],
            form,
            session: Session {
                issuer: "https://op.example/",
                subject: "alice",
                user: "alice",
                client_id: "app",
                flow_id: "f",
                auth_time: 1_700_000_000,
                requested_at: 0,
                acr: "",
                amr: &[],
                access_token: at,
                id_token: id,
            },
        }
    }

    #[test]
    fn the_payload_never_carries_credentials() {
        let form: Vec<(String, String)> = [
            ("grant_type", "client_credentials"),
            ("scope", "read"),
            ("client_secret", "s3cret"),
            ("code", "ory_ac_x"),
            ("refresh_token", "ory_rt_x"),
            ("code_verifier", "v"),
            ("device_code", "ory_dc_x"),
            ("client_assertion", "eyJ"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let (at, id) = (Map::new(), Map::new());
        let body = token_hook_body(&request(&form, &at, &id));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["request"]["payload"], json!({"grant_type": ["client_credentials"], "scope": ["read"]}));
        let text = String::from_utf8(body).unwrap();
        for secret in ["s3cret", "ory_ac_x", "ory_rt_x", "ory_dc_x", "eyJ"] {
            assert!(!text.contains(secret), "{secret} reached the hook");
        }
        assert_eq!(v["session"]["id_token"]["id_token_claims"]["auth_time"], "2023-11-14T22:13:20Z");
        assert_eq!(v["request"]["grant_types"], json!(["client_credentials"]));
        let legacy: Value = serde_json::from_slice(&refresh_hook_body(&request(&form, &at, &id))).unwrap();
        assert_eq!(legacy["subject"], "alice");
        assert_eq!(legacy["requester"]["client_id"], "app");
    }

    #[test]
    fn answers() {
        assert_eq!(read_answer(204, b"").unwrap(), Answer::Keep);
        let a = read_answer(200, br#"{"session":{"access_token":{"tier":"gold"}}}"#).unwrap();
        let Answer::Replace { access_token, id_token } = a else { panic!() };
        assert_eq!(access_token["tier"], "gold");
        assert!(id_token.is_empty(), "a missing map empties the claims, as Hydra");
        let denied = read_answer(403, b"").unwrap_err();
        assert_eq!(denied.status(), 403);
        assert!(denied.full_description().starts_with("The token hook target responded with an error. Make sure"));
        for (status, body) in [
            (200, &b"garbage"[..]),
            (200, b""),
            (200, b"[]"),
            (200, br#"{"session":{"access_token":[]}}"#),
            (500, b""),
            (302, b""),
            (401, b""),
        ] {
            let e = read_answer(status, body).unwrap_err();
            assert_eq!(e.code, ErrorCode::ServerError, "{status}");
            assert_eq!(e.full_description(), HOOK_FAILED);
        }
        assert_eq!(unreachable().full_description(), "An error occurred while executing the token hook.");
    }
}
