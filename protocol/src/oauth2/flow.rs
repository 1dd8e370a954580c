//! Login and consent flow state, carried in sealed blobs instead of rows (as Hydra): a
//! challenge or verifier is the whole flow, JSON sealed with AES-256-GCM under a key derived from
//! `secrets.system`, with its purpose as associated data, so a login challenge cannot be
//! presented as a consent verifier. Also the admin API's request and answer bodies.
//!
//! Invariants: nothing here is trusted unless it came out of `open`; a blob's age is checked by
//! the caller against `ttl.login_consent_request`; single use is enforced when the flow completes
//! (the store refuses a second code for the same flow id), not here.

use crate::jose::seal;
use crate::oauth2::authorize::AuthRequest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// What a blob may be used as (Hydra's purpose numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    LoginChallenge = 0,
    LoginVerifier = 1,
    ConsentChallenge = 4,
    ConsentVerifier = 5,
    LogoutChallenge = 7,
    LogoutVerifier = 8,
    /// The login session cookie.
    SessionCookie = 9,
    /// Page tokens of the admin list endpoints.
    PageToken = 10,
    /// `device_challenge` of the device authorization grant.
    DeviceChallenge = 11,
    /// `device_verifier`: a user code accepted for a device challenge.
    DeviceVerifier = 12,
}

/// An error a login or consent app sends back (`PUT …/reject`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub error: String,
    pub error_description: String,
    #[serde(default)]
    pub error_hint: String,
    #[serde(default)]
    pub error_debug: String,
    pub status_code: u16,
}

/// What the login app decided (`PUT …/login/accept`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoginResult {
    pub subject: String,
    pub remember: bool,
    pub remember_for: i64,
    pub acr: String,
    pub amr: Vec<String>,
    pub context: Value,
    /// Unix seconds of the authentication.
    pub auth_time: i64,
    pub force_subject_identifier: String,
    /// The identity provider's session behind this login, revoked there at logout
    /// (`urls.identity_provider.url`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub identity_provider_session_id: String,
}

/// What the consent app decided (`PUT …/consent/accept`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentResult {
    pub grant_scope: Vec<String>,
    pub grant_access_token_audience: Vec<String>,
    pub remember: bool,
    pub remember_for: i64,
    pub context: Value,
    /// `session.access_token`: the access token's `ext` claims.
    pub access_token: Map<String, Value>,
    /// `session.id_token`: extra ID-token and userinfo claims.
    pub id_token: Map<String, Value>,
    pub handled_at: i64,
}

/// The outcome of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome<T> {
    Accepted(T),
    Rejected(Rejection),
}

/// One authorization request on its way through login and consent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flow {
    /// Random, 128 bits hex: the consent request id, the single-use key of the flow.
    pub id: String,
    pub request: AuthRequest,
    /// The authorization URL the user agent asked (path and query), to come back to.
    pub request_url: String,
    pub requested_at: i64,
    /// Login session id (`sid` of the ID token).
    pub session_id: String,
    pub login_csrf: String,
    pub login: Option<Outcome<LoginResult>>,
    pub consent_csrf: String,
    pub consent: Option<Outcome<ConsentResult>>,
    /// A remembered login session covers this request: the login app is asked to skip.
    #[serde(default)]
    pub login_skip: bool,
    /// The remembered session's subject and authentication time (when `login_skip`).
    #[serde(default)]
    pub session_subject: String,
    #[serde(default)]
    pub session_auth_time: i64,
    /// A remembered consent (or the client's `skip_consent`) covers this request.
    #[serde(default)]
    pub consent_skip: bool,
    /// The device authorization this flow approves (RFC 8628): the flow returns to
    /// `/oauth2/device/verify`, never to a redirect URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<crate::oauth2::device::DeviceRef>,
}

/// Why a blob was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowError {
    /// Not a blob of this purpose, tampered, or sealed with an unknown secret.
    Invalid,
}

/// The keys that seal flows: one per `secrets.system` entry, the first seals.
pub fn keys(secrets: &[String]) -> Vec<[u8; 32]> {
    secrets.iter().map(|s| crate::token::derive_key(s, "hydra-rs/flow/v1")).collect()
}

pub fn seal_flow(
    keys: &[[u8; 32]],
    purpose: Purpose,
    flow: &Flow,
    rng: &dyn SecureRandom,
) -> Result<String, FlowError> {
    seal_json(keys, purpose, flow, rng)
}

pub fn open_flow(keys: &[[u8; 32]], purpose: Purpose, blob: &str) -> Result<Flow, FlowError> {
    open_json(keys, purpose, blob)
}

/// Seals any value for one purpose (flows, the session cookie).
pub fn seal_json<T: Serialize>(
    keys: &[[u8; 32]],
    purpose: Purpose,
    v: &T,
    rng: &dyn SecureRandom,
) -> Result<String, FlowError> {
    let json = serde_json::to_vec(v).map_err(|_| FlowError::Invalid)?;
    let key = keys.first().ok_or(FlowError::Invalid)?;
    let sealed = seal::seal(key, &[purpose as u8], &json, rng).map_err(|_| FlowError::Invalid)?;
    Ok(URL_SAFE_NO_PAD.encode(sealed))
}

pub fn open_json<T: serde::de::DeserializeOwned>(
    keys: &[[u8; 32]],
    purpose: Purpose,
    blob: &str,
) -> Result<T, FlowError> {
    // Blobs are at most a few KiB; anything far larger is not ours.
    if blob.is_empty() || blob.len() > 16 * 1024 {
        return Err(FlowError::Invalid);
    }
    let sealed = URL_SAFE_NO_PAD.decode(blob).map_err(|_| FlowError::Invalid)?;
    let json = seal::open(keys, &[purpose as u8], &sealed).map_err(|_| FlowError::Invalid)?;
    serde_json::from_slice(&json).map_err(|_| FlowError::Invalid)
}

/// 128 random bits as lowercase hex.
pub fn random_id(rng: &dyn SecureRandom) -> Result<String, FlowError> {
    let mut b = [0u8; 16];
    rng.fill(&mut b).map_err(|_| FlowError::Invalid)?;
    Ok(crate::token::hex(&b))
}

fn obj(body: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("The request body must be a JSON object.".into()),
        Err(e) => Err(format!("The request body is not valid JSON: {e}")),
    }
}

fn string(m: &Map<String, Value>, k: &str) -> Result<String, String> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("Field {k:?} must be a string.")),
    }
}

fn boolean(m: &Map<String, Value>, k: &str) -> Result<bool, String> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("Field {k:?} must be a boolean.")),
    }
}

fn seconds(m: &Map<String, Value>, k: &str) -> Result<i64, String> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => {
            n.as_i64().filter(|v| *v >= 0).ok_or_else(|| format!("Field {k:?} must be a non-negative integer."))
        }
        Some(_) => Err(format!("Field {k:?} must be a number of seconds.")),
    }
}

fn strings(m: &Map<String, Value>, k: &str) -> Result<Vec<String>, String> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(String::from).ok_or_else(|| format!("Field {k:?} must be a list of strings.")))
            .collect(),
        Some(_) => Err(format!("Field {k:?} must be a list of strings.")),
    }
}

fn object(m: &Map<String, Value>, k: &str) -> Result<Map<String, Value>, String> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(o)) => Ok(o.clone()),
        Some(_) => Err(format!("Field {k:?} must be a JSON object.")),
    }
}

/// Parses `acceptOAuth2LoginRequest`. `subject` is required.
pub fn parse_login_accept(body: &[u8], now: i64) -> Result<LoginResult, String> {
    let m = obj(body)?;
    let subject = string(&m, "subject")?;
    if subject.is_empty() {
        return Err("Field 'subject' must not be empty.".into());
    }
    Ok(LoginResult {
        subject,
        remember: boolean(&m, "remember")?,
        remember_for: seconds(&m, "remember_for")?,
        acr: string(&m, "acr")?,
        amr: strings(&m, "amr")?,
        context: Value::Object(object(&m, "context")?),
        auth_time: now,
        force_subject_identifier: string(&m, "force_subject_identifier")?,
        identity_provider_session_id: string(&m, "identity_provider_session_id")?,
    })
}

/// Parses `acceptOAuth2ConsentRequest`.
pub fn parse_consent_accept(body: &[u8], now: i64) -> Result<ConsentResult, String> {
    let m = obj(body)?;
    let session = object(&m, "session")?;
    Ok(ConsentResult {
        grant_scope: strings(&m, "grant_scope")?,
        grant_access_token_audience: strings(&m, "grant_access_token_audience")?,
        remember: boolean(&m, "remember")?,
        remember_for: seconds(&m, "remember_for")?,
        context: Value::Object(object(&m, "context")?),
        access_token: object(&session, "access_token")?,
        id_token: object(&session, "id_token")?,
        handled_at: now,
    })
}

/// Parses `rejectOAuth2Request`, with Hydra's defaults.
pub fn parse_reject(body: &[u8]) -> Result<Rejection, String> {
    let m = if body.iter().all(u8::is_ascii_whitespace) { Map::new() } else { obj(body)? };
    let error = string(&m, "error")?;
    let status = seconds(&m, "status_code")?;
    Ok(Rejection {
        error: if error.is_empty() { "access_denied".into() } else { error },
        error_description: match string(&m, "error_description")? {
            d if d.is_empty() => "The resource owner denied the request".into(),
            d => d,
        },
        error_hint: string(&m, "error_hint")?,
        error_debug: string(&m, "error_debug")?,
        status_code: if (400..600).contains(&status) { status as u16 } else { 400 },
    })
}

fn oidc_context(r: &AuthRequest) -> Value {
    let mut m = Map::new();
    if !r.acr_values.is_empty() {
        m.insert("acr_values".into(), json!(r.acr_values));
    }
    if let Some(d) = &r.display {
        m.insert("display".into(), json!(d));
    }
    if let Some(h) = &r.login_hint {
        m.insert("login_hint".into(), json!(h));
    }
    if !r.ui_locales.is_empty() {
        m.insert("ui_locales".into(), json!(r.ui_locales));
    }
    // Not in Hydra's context: the `claims` parameter (OIDC Core §5.5), for the consent app to
    // put the requested claims into `session.id_token` (userinfo answers the same claims).
    if let Some(c) = r.claims.as_deref().and_then(|c| serde_json::from_str::<Value>(c).ok()) {
        m.insert("claims".into(), c);
    }
    Value::Object(m)
}

/// `GET /admin/oauth2/auth/requests/login`.
pub fn login_request_json(flow: &Flow, challenge: &str, client: Value) -> Value {
    json!({
        "challenge": challenge,
        "client": client,
        "oidc_context": oidc_context(&flow.request),
        "request_url": flow.request_url,
        "requested_access_token_audience": flow.request.audience,
        "requested_scope": flow.request.scope,
        "session_id": flow.session_id,
        "skip": flow.login_skip,
        "subject": if flow.login_skip { flow.session_subject.as_str() } else { "" },
    })
}

/// `GET /admin/oauth2/auth/requests/consent`. Only for a flow whose login was accepted.
pub fn consent_request_json(flow: &Flow, challenge: &str, client: Value) -> Value {
    let login = match &flow.login {
        Some(Outcome::Accepted(l)) => Some(l),
        _ => None,
    };
    json!({
        "acr": login.map(|l| l.acr.as_str()).unwrap_or(""),
        "amr": login.map(|l| l.amr.clone()).unwrap_or_default(),
        "challenge": challenge,
        "client": client,
        "consent_request_id": flow.id,
        "context": login.map(|l| l.context.clone()).unwrap_or_else(|| json!({})),
        "login_challenge": flow.id,
        "login_session_id": flow.session_id,
        "oidc_context": oidc_context(&flow.request),
        "request_url": flow.request_url,
        "requested_access_token_audience": flow.request.audience,
        "requested_scope": flow.request.scope,
        "skip": flow.consent_skip,
        "subject": login.map(|l| l.subject.as_str()).unwrap_or(""),
    })
}

/// Hydra's CSRF cookie suffix: murmur3 (32-bit, seed 0) of the client id, in decimal.
pub fn murmur3_32(data: &[u8]) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h: u32 = 0;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut k: u32 = 0;
        for (i, b) in tail.iter().enumerate() {
            k |= u32::from(*b) << (8 * i);
        }
        h ^= k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// Name of the login or consent CSRF cookie of a client.
/// A login or consent CSRF cookie's name: the configured base name (`ory_hydra_login_csrf`), `_dev`
/// in dev mode, and the client's murmur3 hash (as Hydra).
pub fn csrf_cookie_name(base: &str, dev: bool, client_id: &str) -> String {
    format!("{base}{}_{}", if dev { "_dev" } else { "" }, murmur3_32(client_id.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth2::authorize::ResponseMode;
    use ring::rand::SystemRandom;

    fn flow() -> Flow {
        Flow {
            id: "0123456789abcdef0123456789abcdef".into(),
            request: AuthRequest {
                client_id: "c".into(),
                redirect_uri: "https://rp.example/cb".into(),
                redirect_uri_given: true,
                response_type: "code".into(),
                response_mode: ResponseMode::Query,
                scope: vec!["openid".into()],
                audience: vec![],
                state: "state-123456".into(),
                nonce: Some("n".into()),
                prompt: vec![],
                max_age: None,
                id_token_hint: None,
                login_hint: Some("alice".into()),
                acr_values: vec![],
                ui_locales: vec![],
                display: None,
                code_challenge: None,
                code_challenge_method: None,
                claims: None,
            },
            request_url: "/oauth2/auth?client_id=c".into(),
            requested_at: 1000,
            session_id: "sid".into(),
            login_csrf: "l".into(),
            login: None,
            consent_csrf: "k".into(),
            consent: None,
            login_skip: false,
            session_subject: String::new(),
            session_auth_time: 0,
            consent_skip: false,
            device: None,
        }
    }

    #[test]
    fn blobs_open_only_for_their_purpose_and_keys() {
        let rng = SystemRandom::new();
        let k = keys(&["secret-one-0123456789".into()]);
        let f = flow();
        let blob = seal_flow(&k, Purpose::LoginChallenge, &f, &rng).unwrap();
        assert_eq!(open_flow(&k, Purpose::LoginChallenge, &blob).unwrap(), f);
        // Swapped purpose, tampered byte, other secret, garbage: all invalid.
        assert_eq!(open_flow(&k, Purpose::ConsentVerifier, &blob), Err(FlowError::Invalid));
        let mut bytes = URL_SAFE_NO_PAD.decode(&blob).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(open_flow(&k, Purpose::LoginChallenge, &URL_SAFE_NO_PAD.encode(bytes)), Err(FlowError::Invalid));
        assert_eq!(
            open_flow(&keys(&["another-secret-0123456".into()]), Purpose::LoginChallenge, &blob),
            Err(FlowError::Invalid)
        );
        assert_eq!(open_flow(&k, Purpose::LoginChallenge, "not a blob"), Err(FlowError::Invalid));
        // A rotated secret still opens.
        let rotated = keys(&["secret-two-0123456789".into(), "secret-one-0123456789".into()]);
        assert_eq!(open_flow(&rotated, Purpose::LoginChallenge, &blob).unwrap(), f);
    }

    #[test]
    fn accept_and_reject_bodies() {
        let l = parse_login_accept(
            br#"{"subject":"alice","remember":true,"remember_for":60,"acr":"1","amr":["pwd"],"context":{"a":1}}"#,
            5,
        )
        .unwrap();
        assert_eq!((l.subject.as_str(), l.remember, l.remember_for, l.auth_time), ("alice", true, 60, 5));
        assert_eq!(l.amr, vec!["pwd"]);
        assert!(parse_login_accept(br#"{"subject":""}"#, 0).is_err());
        assert!(parse_login_accept(br#"{"remember":true}"#, 0).is_err());
        assert!(parse_login_accept(br#"{"subject":"a","amr":"pwd"}"#, 0).is_err());
        assert!(parse_login_accept(br#"{"subject":"a","remember_for":-1}"#, 0).is_err());
        assert!(parse_login_accept(b"[]", 0).is_err());
        let c = parse_consent_accept(
            br#"{"grant_scope":["openid"],"session":{"id_token":{"email":"a@b"},"access_token":{"x":1}}}"#,
            9,
        )
        .unwrap();
        assert_eq!(c.grant_scope, vec!["openid"]);
        assert_eq!(c.id_token.get("email"), Some(&json!("a@b")));
        assert_eq!(c.access_token.get("x"), Some(&json!(1)));
        assert!(parse_consent_accept(br#"{"session":{"id_token":[]}}"#, 0).is_err());
        let r = parse_reject(b"").unwrap();
        assert_eq!((r.error.as_str(), r.status_code), ("access_denied", 400));
        let r = parse_reject(br#"{"error":"login_required","error_description":"no","status_code":403}"#).unwrap();
        assert_eq!((r.error.as_str(), r.error_description.as_str(), r.status_code), ("login_required", "no", 403));
    }

    #[test]
    fn murmur3_known_answers() {
        // Reference values of MurmurHash3_x86_32 with seed 0.
        assert_eq!(murmur3_32(b""), 0);
        assert_eq!(murmur3_32(b"hello"), 613_153_351);
        assert_eq!(murmur3_32(b"The quick brown fox jumps over the lazy dog"), 0x2e4f_f723);
        assert!(csrf_cookie_name("ory_hydra_login_csrf", true, "c").starts_with("ory_hydra_login_csrf_dev_"));
    }
}
