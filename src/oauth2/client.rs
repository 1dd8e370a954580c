//! Hydra's OAuth 2.0 client object: wire JSON shape, defaults, validation, PUT/PATCH/lifespan
//! semantics, sans-IO. Invariants: `Client` never holds a plaintext secret or a hash (secrets live
//! in `NewClient`/`StoredClient`, whose `Debug` redacts them); every `prepare_*` result has passed
//! `validate`, so stored clients always carry canonical defaults (auth method, subject type,
//! userinfo alg, scope, `{}` jwks/metadata, canonical Go-duration lifespans).

use std::fmt;
use std::time::Duration;

use ring::rand::SecureRandom;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::duration::{format_go_duration, parse_go_duration};

/// Server configuration the client rules depend on.
#[derive(Clone, Debug)]
pub struct ClientPolicy {
    /// `oidc.dynamic_client_registration.default_scope` joined by spaces; applied when `scope` is empty.
    pub default_scope: String,
    /// `oidc.subject_identifiers.supported_types`.
    pub subject_types_supported: Vec<String>,
    /// `--dev`. Not consulted by registration: Hydra accepts any absolute redirect URI at
    /// registration and only checks https-or-loopback at the authorize endpoint
    /// (see [`is_redirect_uri_secure`]).
    pub dev: bool,
    /// Public base URL, used by [`registration_client_uri`].
    pub public_url: String,
}

impl Default for ClientPolicy {
    fn default() -> Self {
        ClientPolicy {
            default_scope: "offline_access offline openid".to_owned(),
            subject_types_supported: vec!["public".to_owned()],
            dev: false,
            public_url: "http://localhost:4444/".to_owned(),
        }
    }
}

/// Go decodes JSON `null` into a non-pointer field as "leave the zero value"; mirror that so a body
/// Hydra accepts is accepted here too.
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Hydra's `oAuth2Client` wire object. Field order and omission rules mirror Go's struct tags:
/// fields without `omitempty` are always emitted (nil slices as `null`, which is why the create/PUT
/// echo shows `"grant_types": null` while a stored client shows `[]`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Client {
    #[serde(deserialize_with = "null_default")]
    pub client_id: String,
    #[serde(deserialize_with = "null_default")]
    pub client_name: String,
    pub redirect_uris: Option<Vec<String>>,
    pub grant_types: Option<Vec<String>>,
    pub response_types: Option<Vec<String>>,
    #[serde(deserialize_with = "null_default")]
    pub scope: String,
    /// Hydra's BeforeSave turns nil into `[]`, so it is never `null` on the wire.
    #[serde(deserialize_with = "null_default")]
    pub audience: Vec<String>,
    #[serde(deserialize_with = "null_default")]
    pub owner: String,
    #[serde(deserialize_with = "null_default")]
    pub policy_uri: String,
    /// Never `null` on the wire (BeforeSave), normalized to `scheme://host[:port]` by validation.
    #[serde(deserialize_with = "null_default")]
    pub allowed_cors_origins: Vec<String>,
    #[serde(deserialize_with = "null_default")]
    pub tos_uri: String,
    #[serde(deserialize_with = "null_default")]
    pub client_uri: String,
    #[serde(deserialize_with = "null_default")]
    pub logo_uri: String,
    pub contacts: Option<Vec<String>>,
    /// Always forced to 0 (not supported by Hydra).
    #[serde(deserialize_with = "null_default")]
    pub client_secret_expires_at: i64,
    #[serde(deserialize_with = "null_default")]
    pub subject_type: String,
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "null_default")]
    pub sector_identifier_uri: String,
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "null_default")]
    pub jwks_uri: String,
    /// JWK set; `Null` on input means "not set" and is stored as `{}`. A set counts as present
    /// only if it has a `keys` member (Go leaves its embedded key-set pointer nil for `{}`).
    pub jwks: Value,
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "null_default")]
    pub token_endpoint_auth_method: String,
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "null_default")]
    pub token_endpoint_auth_signing_alg: String,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_default")]
    pub request_uris: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "null_default")]
    pub request_object_signing_alg: String,
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "null_default")]
    pub userinfo_signed_response_alg: String,
    /// Unix seconds; RFC 3339 UTC on the wire (Go always emits it, `omitempty` has no effect on
    /// `time.Time`).
    #[serde(with = "rfc3339")]
    pub created_at: i64,
    #[serde(with = "rfc3339")]
    pub updated_at: i64,
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "null_default")]
    pub frontchannel_logout_uri: String,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_default")]
    pub frontchannel_logout_session_required: bool,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_default")]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "null_default")]
    pub backchannel_logout_uri: String,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_default")]
    pub backchannel_logout_session_required: bool,
    /// Free-form JSON object; `Null` is stored as `{}`.
    pub metadata: Value,
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "null_default")]
    pub access_token_strategy: String,
    #[serde(deserialize_with = "null_default")]
    pub skip_consent: bool,
    pub skip_logout_consent: Option<bool>,
    pub authorization_code_grant_access_token_lifespan: Option<String>,
    pub authorization_code_grant_id_token_lifespan: Option<String>,
    pub authorization_code_grant_refresh_token_lifespan: Option<String>,
    pub client_credentials_grant_access_token_lifespan: Option<String>,
    pub implicit_grant_access_token_lifespan: Option<String>,
    pub implicit_grant_id_token_lifespan: Option<String>,
    pub jwt_bearer_grant_access_token_lifespan: Option<String>,
    pub refresh_token_grant_id_token_lifespan: Option<String>,
    pub refresh_token_grant_access_token_lifespan: Option<String>,
    pub refresh_token_grant_refresh_token_lifespan: Option<String>,
    pub device_authorization_grant_id_token_lifespan: Option<String>,
    pub device_authorization_grant_access_token_lifespan: Option<String>,
    pub device_authorization_grant_refresh_token_lifespan: Option<String>,
}

/// RFC 3339 (UTC, whole seconds) <-> unix seconds for the client's timestamps.
mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn format(unix: i64) -> String {
        crate::dates::rfc3339(unix)
    }

    pub fn parse(s: &str) -> Option<i64> {
        crate::dates::parse_rfc3339(s)
    }

    pub fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(0),
            Some(s) => parse(&s).ok_or_else(|| serde::de::Error::custom(format!("invalid RFC 3339 time {s:?}"))),
        }
    }
}

/// Formats unix seconds as Hydra does for `created_at`/`updated_at`.
pub fn format_rfc3339(unix: i64) -> String {
    rfc3339::format(unix)
}

/// The 13 per-client token lifespans Hydra exposes (the two password-grant ones are DB-only and
/// not part of the JSON API).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lifespan {
    AuthorizationCodeAccessToken,
    AuthorizationCodeIdToken,
    AuthorizationCodeRefreshToken,
    ClientCredentialsAccessToken,
    ImplicitAccessToken,
    ImplicitIdToken,
    JwtBearerAccessToken,
    RefreshTokenIdToken,
    RefreshTokenAccessToken,
    RefreshTokenRefreshToken,
    DeviceAuthorizationIdToken,
    DeviceAuthorizationAccessToken,
    DeviceAuthorizationRefreshToken,
}

impl Lifespan {
    pub const ALL: [Lifespan; 13] = [
        Lifespan::AuthorizationCodeAccessToken,
        Lifespan::AuthorizationCodeIdToken,
        Lifespan::AuthorizationCodeRefreshToken,
        Lifespan::ClientCredentialsAccessToken,
        Lifespan::ImplicitAccessToken,
        Lifespan::ImplicitIdToken,
        Lifespan::JwtBearerAccessToken,
        Lifespan::RefreshTokenIdToken,
        Lifespan::RefreshTokenAccessToken,
        Lifespan::RefreshTokenRefreshToken,
        Lifespan::DeviceAuthorizationIdToken,
        Lifespan::DeviceAuthorizationAccessToken,
        Lifespan::DeviceAuthorizationRefreshToken,
    ];

    /// The JSON field name.
    pub fn field_name(self) -> &'static str {
        match self {
            Lifespan::AuthorizationCodeAccessToken => "authorization_code_grant_access_token_lifespan",
            Lifespan::AuthorizationCodeIdToken => "authorization_code_grant_id_token_lifespan",
            Lifespan::AuthorizationCodeRefreshToken => "authorization_code_grant_refresh_token_lifespan",
            Lifespan::ClientCredentialsAccessToken => "client_credentials_grant_access_token_lifespan",
            Lifespan::ImplicitAccessToken => "implicit_grant_access_token_lifespan",
            Lifespan::ImplicitIdToken => "implicit_grant_id_token_lifespan",
            Lifespan::JwtBearerAccessToken => "jwt_bearer_grant_access_token_lifespan",
            Lifespan::RefreshTokenIdToken => "refresh_token_grant_id_token_lifespan",
            Lifespan::RefreshTokenAccessToken => "refresh_token_grant_access_token_lifespan",
            Lifespan::RefreshTokenRefreshToken => "refresh_token_grant_refresh_token_lifespan",
            Lifespan::DeviceAuthorizationIdToken => "device_authorization_grant_id_token_lifespan",
            Lifespan::DeviceAuthorizationAccessToken => "device_authorization_grant_access_token_lifespan",
            Lifespan::DeviceAuthorizationRefreshToken => "device_authorization_grant_refresh_token_lifespan",
        }
    }
}

impl Client {
    /// What names the client's sector for pairwise subjects (OIDC Core §8.1): its
    /// `sector_identifier_uri` when set, otherwise its redirect URIs (which must then share one host).
    pub fn sector_uris(&self) -> &[String] {
        if self.sector_identifier_uri.is_empty() {
            self.redirect_uris.as_deref().unwrap_or(&[])
        } else {
            std::slice::from_ref(&self.sector_identifier_uri)
        }
    }

    fn lifespan_slot(&self, l: Lifespan) -> &Option<String> {
        match l {
            Lifespan::AuthorizationCodeAccessToken => &self.authorization_code_grant_access_token_lifespan,
            Lifespan::AuthorizationCodeIdToken => &self.authorization_code_grant_id_token_lifespan,
            Lifespan::AuthorizationCodeRefreshToken => &self.authorization_code_grant_refresh_token_lifespan,
            Lifespan::ClientCredentialsAccessToken => &self.client_credentials_grant_access_token_lifespan,
            Lifespan::ImplicitAccessToken => &self.implicit_grant_access_token_lifespan,
            Lifespan::ImplicitIdToken => &self.implicit_grant_id_token_lifespan,
            Lifespan::JwtBearerAccessToken => &self.jwt_bearer_grant_access_token_lifespan,
            Lifespan::RefreshTokenIdToken => &self.refresh_token_grant_id_token_lifespan,
            Lifespan::RefreshTokenAccessToken => &self.refresh_token_grant_access_token_lifespan,
            Lifespan::RefreshTokenRefreshToken => &self.refresh_token_grant_refresh_token_lifespan,
            Lifespan::DeviceAuthorizationIdToken => &self.device_authorization_grant_id_token_lifespan,
            Lifespan::DeviceAuthorizationAccessToken => &self.device_authorization_grant_access_token_lifespan,
            Lifespan::DeviceAuthorizationRefreshToken => &self.device_authorization_grant_refresh_token_lifespan,
        }
    }

    fn lifespan_slot_mut(&mut self, l: Lifespan) -> &mut Option<String> {
        match l {
            Lifespan::AuthorizationCodeAccessToken => &mut self.authorization_code_grant_access_token_lifespan,
            Lifespan::AuthorizationCodeIdToken => &mut self.authorization_code_grant_id_token_lifespan,
            Lifespan::AuthorizationCodeRefreshToken => &mut self.authorization_code_grant_refresh_token_lifespan,
            Lifespan::ClientCredentialsAccessToken => &mut self.client_credentials_grant_access_token_lifespan,
            Lifespan::ImplicitAccessToken => &mut self.implicit_grant_access_token_lifespan,
            Lifespan::ImplicitIdToken => &mut self.implicit_grant_id_token_lifespan,
            Lifespan::JwtBearerAccessToken => &mut self.jwt_bearer_grant_access_token_lifespan,
            Lifespan::RefreshTokenIdToken => &mut self.refresh_token_grant_id_token_lifespan,
            Lifespan::RefreshTokenAccessToken => &mut self.refresh_token_grant_access_token_lifespan,
            Lifespan::RefreshTokenRefreshToken => &mut self.refresh_token_grant_refresh_token_lifespan,
            Lifespan::DeviceAuthorizationIdToken => &mut self.device_authorization_grant_id_token_lifespan,
            Lifespan::DeviceAuthorizationAccessToken => &mut self.device_authorization_grant_access_token_lifespan,
            Lifespan::DeviceAuthorizationRefreshToken => &mut self.device_authorization_grant_refresh_token_lifespan,
        }
    }

    /// Per-client override for a token lifespan; `None` means "use the global TTL".
    pub fn lifespan(&self, field: Lifespan) -> Option<Duration> {
        self.lifespan_slot(field).as_deref().and_then(parse_go_duration)
    }

    /// Wire JSON. `plaintext_secret` is only passed by the endpoints that reveal a secret once
    /// (create, rotate, and PUT/PATCH that set one).
    pub fn to_json(&self, plaintext_secret: Option<&str>) -> Value {
        // Serializing a struct of strings/numbers/Values into a Value cannot fail; the fallback only
        // exists so this function stays panic-free.
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let (Some(secret), Value::Object(map)) = (plaintext_secret, &mut v) {
            map.insert("client_secret".to_owned(), Value::String(secret.to_owned()));
        }
        v
    }

    /// Grant types with Hydra's default: empty means `authorization_code` only (OIDC Registration §2).
    pub fn effective_grant_types(&self) -> Vec<&str> {
        match self.grant_types.as_deref() {
            Some(g) if !g.is_empty() => g.iter().map(String::as_str).collect(),
            _ => vec!["authorization_code"],
        }
    }

    /// Response types with Hydra's default: empty means `code` only.
    pub fn effective_response_types(&self) -> Vec<&str> {
        match self.response_types.as_deref() {
            Some(r) if !r.is_empty() => r.iter().map(String::as_str).collect(),
            _ => vec!["code"],
        }
    }

    pub fn has_grant(&self, g: &str) -> bool {
        self.effective_grant_types().contains(&g)
    }

    /// Space-separated `scope`, split like Go's `strings.Fields`.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split_whitespace()
    }

    /// Public clients (`token_endpoint_auth_method=none`) have no usable secret.
    pub fn is_public(&self) -> bool {
        self.token_endpoint_auth_method == "none"
    }

    /// Effective auth method (`client_secret_basic` when unset, as Hydra's getter does).
    pub fn auth_method(&self) -> &str {
        if self.token_endpoint_auth_method.is_empty() {
            "client_secret_basic"
        } else {
            &self.token_endpoint_auth_method
        }
    }

    /// Effective `token_endpoint_auth_signing_alg` (RS256 when unset).
    pub fn auth_signing_alg(&self) -> &str {
        if self.token_endpoint_auth_signing_alg.is_empty() {
            "RS256"
        } else {
            &self.token_endpoint_auth_signing_alg
        }
    }

    /// Whether a JWK set was registered (see field docs on `jwks`).
    pub fn has_jwks(&self) -> bool {
        self.jwks.as_object().is_some_and(|m| m.contains_key("keys"))
    }

    /// What a database round trip does in Hydra: nil slices become `[]`, nil jwks/metadata `{}`.
    /// This is why a GET shows `"grant_types": []` where the create response showed `null`.
    pub fn normalized_for_storage(mut self) -> Client {
        for s in [&mut self.redirect_uris, &mut self.grant_types, &mut self.response_types, &mut self.contacts] {
            if s.is_none() {
                *s = Some(Vec::new());
            }
        }
        if !self.jwks.is_object() {
            self.jwks = Value::Object(Map::new());
        }
        if !self.metadata.is_object() {
            self.metadata = Value::Object(Map::new());
        }
        self
    }
}

/// Storage format version written into `StoredClient` (`"v"`).
pub const STORED_CLIENT_VERSION: u32 = 1;

fn stored_version() -> u32 {
    STORED_CLIENT_VERSION
}

/// A client as persisted: the public object plus secret hashes. Our own JSON format (not Hydra's).
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredClient {
    #[serde(default = "stored_version")]
    pub v: u32,
    pub client: Client,
    /// PBKDF2 hash of the current secret (`None` for public clients).
    pub secret_hash: Option<String>,
    /// Previous secrets still accepted after rotation, newest first, at most `MAX_ROTATED_SECRETS`.
    #[serde(default)]
    pub rotated_secret_hashes: Vec<String>,
}

/// Hydra keeps the five most recent rotated secrets.
pub const MAX_ROTATED_SECRETS: usize = 5;

impl StoredClient {
    /// Builds the storage record, applying Hydra's DB round-trip normalization.
    pub fn new(client: Client, secret_hash: Option<String>) -> StoredClient {
        StoredClient {
            v: STORED_CLIENT_VERSION,
            client: client.normalized_for_storage(),
            secret_hash,
            rotated_secret_hashes: Vec::new(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Same reasoning as `Client::to_json`: serialization of this type cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes a stored record; unknown versions are refused rather than misread.
    pub fn from_bytes(bytes: &[u8]) -> Result<StoredClient, String> {
        let mut s: StoredClient = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if s.v != STORED_CLIENT_VERSION {
            return Err(format!("unsupported stored client version {}", s.v));
        }
        s.client = s.client.normalized_for_storage();
        Ok(s)
    }

    /// Secret rotation (`POST /admin/clients/{id}/secrets/rotate`): current hash moves to the front
    /// of the rotated list (trimmed to five), `new_hash` becomes current, `updated_at` = now.
    /// Callers must first check [`rotation_allowed`].
    pub fn rotate_secret(&mut self, new_hash: String, now_unix: i64) {
        if let Some(old) = self.secret_hash.take() {
            self.rotated_secret_hashes.insert(0, old);
            self.rotated_secret_hashes.truncate(MAX_ROTATED_SECRETS);
        }
        self.secret_hash = Some(new_hash);
        self.client.updated_at = now_unix;
    }

    /// `DELETE .../secrets/rotate`.
    pub fn clear_rotated_secrets(&mut self, now_unix: i64) {
        self.rotated_secret_hashes.clear();
        self.client.updated_at = now_unix;
    }
}

impl fmt::Debug for StoredClient {
    // Hashes are secret-equivalent for offline guessing; never print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredClient")
            .field("v", &self.v)
            .field("client", &self.client)
            .field("secret_hash", &self.secret_hash.as_ref().map(|_| "<redacted>"))
            .field("rotated_secret_hashes", &self.rotated_secret_hashes.len())
            .finish()
    }
}

/// Result of create/update/patch: the validated client plus the secret to hash (and to show once).
#[derive(Clone)]
pub struct NewClient {
    pub client: Client,
    /// `Some` when a new secret must be hashed and stored (and the rotated list cleared);
    /// `None` keeps the existing hash (update) or means "no secret" (public client on create).
    pub plaintext_secret: Option<String>,
}

impl fmt::Debug for NewClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewClient")
            .field("client", &self.client)
            .field("plaintext_secret", &self.plaintext_secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// An error in Hydra's body shape `{"error": .., "error_description": ..}` plus HTTP status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientError {
    pub status: u16,
    pub error: String,
    pub description: String,
}

const INVALID_CLIENT_METADATA_DESC: &str = "The value of one of the Client Metadata fields is invalid and the server has rejected this request. Note that an Authorization Server MAY choose to substitute a valid value for any requested parameter of a Client's Metadata.";
const INVALID_REDIRECT_URI_DESC: &str = "The value of one or more redirect_uris is invalid.";

impl ClientError {
    /// Hydra renders double quotes in descriptions as single quotes.
    fn new(status: u16, error: &str, description: String) -> ClientError {
        ClientError { status, error: error.to_owned(), description: description.replace('"', "'") }
    }

    /// fosite `invalid_client_metadata` with a hint (hint appended after a space).
    pub fn invalid_client_metadata(hint: &str) -> ClientError {
        let desc = if hint.is_empty() {
            INVALID_CLIENT_METADATA_DESC.to_owned()
        } else {
            format!("{INVALID_CLIENT_METADATA_DESC} {hint}")
        };
        ClientError::new(400, "invalid_client_metadata", desc)
    }

    pub fn invalid_redirect_uri(hint: &str) -> ClientError {
        ClientError::new(400, "invalid_redirect_uri", format!("{INVALID_REDIRECT_URI_DESC} {hint}"))
    }

    /// herodot `ErrBadRequest` converted by Hydra's error enhancer: prose in `error`.
    pub fn bad_request(reason: &str) -> ClientError {
        ClientError::new(400, "The request was malformed or contained invalid parameters", reason.to_owned())
    }

    /// The body-decoding failure Hydra reports for every client endpoint.
    pub fn decode(detail: &str) -> ClientError {
        ClientError::bad_request(&format!("Unable to decode the request body: {detail}"))
    }

    /// Internal failure (e.g. RNG) in herodot's 500 shape.
    pub fn internal(reason: &str) -> ClientError {
        ClientError::new(
            500,
            "An internal server error occurred, please contact the system administrator",
            reason.to_owned(),
        )
    }

    /// The response body.
    pub fn to_json(&self) -> Value {
        serde_json::json!({"error": self.error, "error_description": self.description})
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.error, self.status, self.description)
    }
}

impl std::error::Error for ClientError {}

/// `POST .../secrets/rotate` and its DELETE only apply to secret-based auth methods; this is
/// Hydra's exact 400 otherwise.
pub fn rotation_allowed(client: &Client) -> Result<(), ClientError> {
    let m = client.auth_method();
    if m == "client_secret_basic" || m == "client_secret_post" {
        Ok(())
    } else {
        Err(ClientError::bad_request(&format!(
            "The client is configured to use the \"{m}\" authentication method, which does not support client secret rotation."
        )))
    }
}

// ---------------------------------------------------------------------------------------------
// Random values
// ---------------------------------------------------------------------------------------------

/// Hydra's secret alphabet (x.GenerateSecret): 66 characters.
const SECRET_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ1234567890_-.~";
/// Length of generated secrets.
pub const GENERATED_SECRET_LEN: usize = 26;

fn random_bytes<const N: usize>(rng: &dyn SecureRandom) -> Result<[u8; N], ClientError> {
    let mut b = [0u8; N];
    rng.fill(&mut b).map_err(|_| ClientError::internal("Unable to generate random bytes."))?;
    Ok(b)
}

/// A 26-character secret, uniformly distributed over the alphabet: bytes >= 198 (= 3 * 66) are
/// rejected so `b % 66` has no modulo bias.
pub fn generate_secret(rng: &dyn SecureRandom) -> Result<String, ClientError> {
    const LIMIT: u8 = (256 / SECRET_ALPHABET.len() * SECRET_ALPHABET.len()) as u8;
    let mut out = String::with_capacity(GENERATED_SECRET_LEN);
    while out.len() < GENERATED_SECRET_LEN {
        let buf: [u8; 32] = random_bytes(rng)?;
        for &b in buf.iter().filter(|&&b| b < LIMIT) {
            if out.len() == GENERATED_SECRET_LEN {
                break;
            }
            out.push(char::from(SECRET_ALPHABET[usize::from(b) % SECRET_ALPHABET.len()]));
        }
    }
    Ok(out)
}

/// Random UUIDv4 in canonical lowercase form.
pub fn generate_uuid_v4(rng: &dyn SecureRandom) -> Result<String, ClientError> {
    let mut b: [u8; 16] = random_bytes(rng)?;
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex = crate::token::hex(&b);
    Ok(format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32]))
}

// ---------------------------------------------------------------------------------------------
// Minimal URI parsing (enough for Go's url.Parse / url.ParseRequestURI checks Hydra performs)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default, PartialEq)]
struct Uri<'a> {
    /// Lowercased like Go does.
    scheme: String,
    has_authority: bool,
    userinfo: Option<&'a str>,
    /// Host as written, including brackets for IPv6.
    host: &'a str,
    port: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

impl Uri<'_> {
    /// Host without IPv6 brackets (Go's `Hostname()`).
    fn hostname(&self) -> &str {
        self.host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(self.host)
    }
}

fn valid_percent_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let ok = b.len() > i + 2 && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit();
            if !ok {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// Parses a URI reference the way Go's `url.Parse` does for the cases that matter here.
fn parse_uri(s: &str) -> Result<Uri<'_>, String> {
    if s.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("net/url: invalid control character in URL".to_owned());
    }
    let (rest, fragment) = match s.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (s, None),
    };
    let mut uri = Uri { fragment, ..Uri::default() };
    // Scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" — only if it appears before any '/'.
    let mut rest = rest;
    if let Some(colon) = rest.find(':') {
        let cand = &rest[..colon];
        let mut chars = cand.chars();
        let first_alpha = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
        if first_alpha && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
            uri.scheme = cand.to_ascii_lowercase();
            rest = &rest[colon + 1..];
        } else if colon == 0 {
            return Err("missing protocol scheme".to_owned());
        } else if !cand.contains('/') {
            return Err("first path segment in URL cannot contain colon".to_owned());
        }
    }
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    uri.query = query;
    if let Some(after) = rest.strip_prefix("//") {
        uri.has_authority = true;
        let end = after.find('/').unwrap_or(after.len());
        let (authority, path) = after.split_at(end);
        uri.path = path;
        let host_port = match authority.rsplit_once('@') {
            Some((ui, hp)) => {
                uri.userinfo = Some(ui);
                hp
            }
            None => authority,
        };
        let (host, port) = if host_port.starts_with('[') {
            let close = host_port.find(']').ok_or("missing ']' in host")?;
            let (h, p) = host_port.split_at(close + 1);
            match p {
                "" => (h, ""),
                _ => (h, p.strip_prefix(':').ok_or("invalid port after host")?),
            }
        } else {
            match host_port.rsplit_once(':') {
                Some((h, p)) => (h, p),
                None => (host_port, ""),
            }
        };
        if !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("invalid port \":{port}\" after host"));
        }
        let host_ok = host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%:[]".contains(&b));
        if !host_ok {
            return Err(format!("invalid character in host name {host:?}"));
        }
        uri.host = host;
        uri.port = port;
    } else {
        uri.path = rest;
    }
    if !valid_percent_escapes(uri.host) || !valid_percent_escapes(uri.path) {
        return Err("invalid URL escape".to_owned());
    }
    Ok(uri)
}

/// Go's `url.ParseRequestURI`: like `parse_uri` but `#` is not special and the URL must be
/// absolute or an absolute path.
fn parse_request_uri(s: &str) -> Result<Uri<'_>, String> {
    if s.is_empty() {
        return Err("empty url".to_owned());
    }
    let u = parse_uri(s)?;
    if u.scheme.is_empty() && !s.starts_with('/') {
        return Err("invalid URI for request".to_owned());
    }
    Ok(u)
}

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

/// fosite's `IsRedirectURISecure`, for the authorize endpoint: plain `http` only for localhost /
/// `*.localhost` / loopback IPs; https and custom (native-app) schemes pass.
pub fn is_redirect_uri_secure(uri: &str) -> bool {
    match parse_uri(uri) {
        Ok(u) => u.scheme != "http" || is_localhost(u.hostname()),
        Err(_) => false,
    }
}

fn is_localhost(hostname: &str) -> bool {
    hostname == "localhost"
        || hostname.ends_with(".localhost")
        || hostname.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A host a redirect can go to: an IP literal, or a DNS name whose labels are non-empty and made
/// of letters, digits, `-` and `_`. No wildcard (`*.example.com` is a pattern, not a host), no
/// percent-escapes, nothing empty (`https://` has no host).
fn valid_host(hostname: &str) -> bool {
    if hostname.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let name = hostname.strip_suffix('.').unwrap_or(hostname);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// `registration_client_uri` as Hydra builds it: `<public>/oauth2/register/<PathEscape(id)>`.
pub fn registration_client_uri(policy: &ClientPolicy, client_id: &str) -> String {
    format!("{}/oauth2/register/{}", policy.public_url.trim_end_matches('/'), path_escape(client_id))
}

/// `Location` header of the admin create response: `/admin/clients/<PathEscape(id)>`.
pub fn admin_location(client_id: &str) -> String {
    format!("/admin/clients/{}", path_escape(client_id))
}

/// Go's `url.PathEscape`: keeps unreserved characters and the sub-delims allowed in a segment.
pub fn path_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~$&+,;=:@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

const AUTH_METHODS: [&str; 4] = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"];
const AUTH_SIGNING_ALGS: [&str; 9] = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"];
const GRANT_TYPES: [&str; 6] = [
    "authorization_code",
    "implicit",
    "refresh_token",
    "client_credentials",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
    "urn:ietf:params:oauth:grant-type:device_code",
];

fn valid_response_type(rt: &str) -> bool {
    let mut seen: Vec<&str> = Vec::new();
    for part in rt.split_whitespace() {
        if !matches!(part, "code" | "token" | "id_token") || seen.contains(&part) {
            return false;
        }
        seen.push(part);
    }
    !seen.is_empty()
}

/// Canonicalizes every lifespan to Go's `Duration.String()` form (Hydra stores nanoseconds and
/// prints them back, so `"31h"` comes back as `"31h0m0s"`). Bad values are body-decoding errors
/// in Hydra, hence the herodot shape.
fn normalize_lifespans(c: &mut Client) -> Result<(), ClientError> {
    for l in Lifespan::ALL {
        let slot = c.lifespan_slot_mut(l);
        if let Some(s) = slot.as_deref() {
            let d =
                parse_go_duration(s).ok_or_else(|| ClientError::decode(&format!("time: invalid duration \"{s}\"")))?;
            *slot = Some(format_go_duration(d));
        }
    }
    Ok(())
}

/// Hydra's `Validator.Validate` (same order, same hints) plus the checks the brief adds (known
/// auth methods, grant/response types, metadata shape). Mutates `c` to apply defaults.
pub fn validate(c: &mut Client, secret: Option<&str>, policy: &ClientPolicy) -> Result<(), ClientError> {
    normalize_lifespans(c)?;

    if c.token_endpoint_auth_method.is_empty() {
        c.token_endpoint_auth_method = "client_secret_basic".to_owned();
    } else if c.token_endpoint_auth_method == "private_key_jwt" {
        if c.jwks_uri.is_empty() && !c.has_jwks() {
            return Err(ClientError::invalid_client_metadata(
                "When token_endpoint_auth_method is 'private_key_jwt', either jwks or jwks_uri must be set.",
            ));
        }
        if !c.token_endpoint_auth_signing_alg.is_empty()
            && !AUTH_SIGNING_ALGS.contains(&c.token_endpoint_auth_signing_alg.as_str())
        {
            return Err(ClientError::invalid_client_metadata(
                "Only RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 and ES512 are supported as algorithms for private key authentication.",
            ));
        }
    }
    // Hydra stores unknown methods and fails at the token endpoint; rejecting early is kinder.
    if !AUTH_METHODS.contains(&c.token_endpoint_auth_method.as_str()) {
        return Err(ClientError::invalid_client_metadata(&format!(
            "Field token_endpoint_auth_method must be one of client_secret_basic, client_secret_post, private_key_jwt, none but got {}.",
            c.token_endpoint_auth_method
        )));
    }

    match &c.jwks {
        Value::Null => {}
        Value::Object(m) => {
            if let Some(keys) = m.get("keys") {
                let valid = match keys {
                    Value::Null => true,
                    Value::Array(ks) => {
                        ks.iter().all(|k| k.get("kty").and_then(Value::as_str).is_some_and(|s| !s.is_empty()))
                    }
                    _ => false,
                };
                if !valid {
                    return Err(ClientError::invalid_client_metadata("Invalid JSON web key in set."));
                }
            }
        }
        // Go fails to decode a non-object into the key set.
        _ => return Err(ClientError::decode("jwks must be a JSON object")),
    }
    if !c.jwks_uri.is_empty() && c.has_jwks() {
        return Err(ClientError::invalid_client_metadata(
            "Fields jwks and jwks_uri can not both be set, you must choose one.",
        ));
    }

    for (field, uri) in [
        ("tos_uri", &c.tos_uri),
        ("policy_uri", &c.policy_uri),
        ("logo_uri", &c.logo_uri),
        ("client_uri", &c.client_uri),
    ] {
        if uri.is_empty() {
            continue;
        }
        let u = parse_request_uri(uri)
            .map_err(|_| ClientError::invalid_client_metadata(&format!("Field {field} must be a valid URI.")))?;
        if u.scheme != "https" && u.scheme != "http" {
            return Err(ClientError::invalid_client_metadata(&format!(
                "{uri} must use https:// or http:// as HTTP scheme for field {field}."
            )));
        }
    }

    if let Some(s) = secret {
        // Hydra counts bytes (Go len), not characters.
        if !s.is_empty() && s.len() < 6 {
            return Err(ClientError::invalid_client_metadata(
                "Field client_secret must contain a secret that is at least 6 characters long.",
            ));
        }
    }

    if c.scope.is_empty() {
        c.scope = policy.default_scope.clone();
    }

    for origin in &mut c.allowed_cors_origins {
        let u = parse_uri(origin).map_err(|e| {
            ClientError::invalid_client_metadata(&format!(
                "Origin URL {origin} from allowed_cors_origins could not be parsed: parse \"{origin}\": {e}"
            ))
        })?;
        if u.scheme != "https" && u.scheme != "http" {
            return Err(ClientError::invalid_client_metadata(&format!(
                "Origin URL {origin} must use https:// or http:// as HTTP scheme."
            )));
        }
        if u.userinfo.is_some_and(|ui| !ui.is_empty()) {
            return Err(ClientError::invalid_client_metadata(&format!(
                "Origin URL {origin} has HTTP user and/or password set which is not allowed."
            )));
        }
        let path = u.path.trim_end_matches('/');
        if !path.is_empty() || u.query.is_some_and(|q| !q.is_empty()) || u.fragment.is_some_and(|f| !f.is_empty()) {
            return Err(ClientError::invalid_client_metadata(&format!(
                "Origin URL {origin} must have an empty path, query, and fragment but one of the parts is not empty."
            )));
        }
        let port = if u.port.is_empty() { String::new() } else { format!(":{}", u.port) };
        *origin = format!("{}://{}{}", u.scheme, u.host, port);
    }

    c.client_secret_expires_at = 0;

    if !c.sector_identifier_uri.is_empty() {
        match parse_uri(&c.sector_identifier_uri) {
            Err(e) => {
                return Err(ClientError::invalid_client_metadata(&format!(
                    "Value of sector_identifier_uri could not be parsed because {e}."
                )));
            }
            // Hydra attaches this reason only as debug text, so the body has no hint.
            Ok(u) if u.scheme != "https" => return Err(ClientError::invalid_client_metadata("")),
            Ok(_) => {}
        }
    }

    if c.userinfo_signed_response_alg.is_empty() {
        c.userinfo_signed_response_alg = "none".to_owned();
    }
    if c.userinfo_signed_response_alg != "none" && c.userinfo_signed_response_alg != "RS256" {
        return Err(ClientError::invalid_client_metadata(
            "Field userinfo_signed_response_alg can either be 'none' or 'RS256'.",
        ));
    }

    let mut redirects = Vec::new();
    for r in c.redirect_uris.iter().flatten() {
        if r.contains('#') {
            return Err(ClientError::invalid_redirect_uri("Redirect URIs must not contain fragments (#)."));
        }
        // Stricter than Go's ParseRequestURI, which would also take a bare "/path": a redirect
        // target must be absolute to be matched safely.
        match parse_request_uri(r) {
            Ok(u) if !crate::oauth2::authorize::redirect_scheme_allowed(&u.scheme) => {
                return Err(ClientError::invalid_redirect_uri(&format!(
                    "The {} scheme cannot receive an authorization response: {r}",
                    u.scheme
                )));
            }
            Ok(u) if (u.has_authority || u.scheme == "http" || u.scheme == "https") && !valid_host(u.hostname()) => {
                return Err(ClientError::invalid_redirect_uri(&format!(
                    "A redirect URI needs a valid host name or IP address, without wildcards: {r}"
                )));
            }
            Ok(u) if !u.scheme.is_empty() => redirects.push(u),
            _ => {
                return Err(ClientError::invalid_redirect_uri(&format!("Unable to parse redirect URL: {r}")));
            }
        }
    }

    if !c.subject_type.is_empty() {
        if !policy.subject_types_supported.contains(&c.subject_type) {
            return Err(ClientError::invalid_client_metadata(&format!(
                "Subject type {} is not supported by server, only [{}] are allowed.",
                c.subject_type,
                policy.subject_types_supported.join(" ")
            )));
        }
    } else if policy.subject_types_supported.iter().any(|s| s == "public") || policy.subject_types_supported.is_empty()
    {
        c.subject_type = "public".to_owned();
    } else if let Some(first) = policy.subject_types_supported.first() {
        c.subject_type = first.clone();
    }

    for l in &c.post_logout_redirect_uris {
        let u = parse_request_uri(l).map_err(|_| {
            ClientError::invalid_client_metadata(&format!("Unable to parse post_logout_redirect_uri: {l}"))
        })?;
        let matches =
            redirects.iter().any(|r| r.scheme == u.scheme && r.hostname() == u.hostname() && r.port == u.port);
        if !matches {
            return Err(ClientError::invalid_client_metadata(&format!(
                "post_logout_redirect_uri \"{l}\" must match the domain, port, scheme of at least one of the registered redirect URIs but did not"
            )));
        }
    }

    if !c.access_token_strategy.is_empty() {
        let canonical = c.access_token_strategy.to_ascii_lowercase();
        if canonical != "jwt" && canonical != "opaque" {
            return Err(ClientError::invalid_client_metadata(&format!(
                "invalid access token strategy: expected one of [jwt, opaque] but got {}",
                c.access_token_strategy
            )));
        }
        c.access_token_strategy = canonical;
    }

    // Checks Hydra itself does not make (it stores anything and fails later at runtime).
    for g in c.grant_types.iter().flatten() {
        if !GRANT_TYPES.contains(&g.as_str()) {
            return Err(ClientError::invalid_client_metadata(&format!("Grant type {g} is not supported.")));
        }
    }
    for rt in c.response_types.iter().flatten() {
        if !valid_response_type(rt) {
            return Err(ClientError::invalid_client_metadata(&format!("Response type {rt} is not supported.")));
        }
    }
    match &c.metadata {
        Value::Object(_) => {}
        Value::Null => c.metadata = Value::Object(Map::new()),
        _ => {
            return Err(ClientError::invalid_client_metadata("Field metadata must be a JSON object."));
        }
    }
    // BeforeSave defaults, so the create/PUT echo already shows `{}`.
    if c.jwks.is_null() {
        c.jwks = Value::Object(Map::new());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Endpoint logic
// ---------------------------------------------------------------------------------------------

/// Server-managed or response-only fields that a body must not influence.
const IGNORED_INPUT_FIELDS: [&str; 4] =
    ["created_at", "updated_at", "registration_access_token", "registration_client_uri"];

/// Decodes a client body: JSON object → (client, non-empty secret).
fn decode_client_value(mut v: Value) -> Result<(Client, Option<String>), ClientError> {
    let Value::Object(map) = &mut v else {
        return Err(ClientError::decode("json: cannot unmarshal non-object into Go value of type client.Client"));
    };
    let secret = match map.remove("client_secret") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            return Err(ClientError::decode(
                "json: cannot unmarshal into Go struct field Client.client_secret of type string",
            ));
        }
    };
    for f in IGNORED_INPUT_FIELDS {
        map.remove(f);
    }
    let client: Client = serde_json::from_value(v).map_err(|e| ClientError::decode(&e.to_string()))?;
    Ok((client, secret))
}

fn parse_body(body: &[u8]) -> Result<Value, ClientError> {
    serde_json::from_slice(body).map_err(|e| ClientError::decode(&e.to_string()))
}

/// `POST /admin/clients`. The caller hashes `plaintext_secret` (if any), stores
/// `StoredClient::new(client, hash)`, and answers 201 with
/// `client.to_json(plaintext_secret)` + `registration_access_token` + `registration_client_uri`.
pub fn prepare_create(
    body: &[u8],
    policy: &ClientPolicy,
    rng: &dyn SecureRandom,
    now_unix: i64,
) -> Result<NewClient, ClientError> {
    let (mut client, secret) = decode_client_value(parse_body(body)?)?;
    if client.client_id.is_empty() {
        client.client_id = generate_uuid_v4(rng)?;
    }
    validate(&mut client, secret.as_deref(), policy)?;
    // Public clients never authenticate with a secret and Hydra never reveals one for them, so we
    // neither generate nor keep one.
    let plaintext_secret = if client.is_public() {
        None
    } else {
        match secret {
            Some(s) => Some(s),
            None => Some(generate_secret(rng)?),
        }
    };
    client.created_at = now_unix;
    client.updated_at = now_unix;
    Ok(NewClient { client, plaintext_secret })
}

fn finish_update(
    existing: &StoredClient,
    mut client: Client,
    secret: Option<String>,
    policy: &ClientPolicy,
    now_unix: i64,
) -> Result<NewClient, ClientError> {
    // The id is immutable: always the stored one.
    client.client_id = existing.client.client_id.clone();
    validate(&mut client, secret.as_deref(), policy)?;
    client.created_at = existing.client.created_at;
    client.updated_at = now_unix;
    Ok(NewClient { client, plaintext_secret: secret })
}

/// `PUT /admin/clients/{id}`: full replacement. `path_id` must name `existing` (the caller looked it
/// up); an empty/missing secret keeps the stored hash (and rotated hashes), a new one is returned
/// in `plaintext_secret` for hashing (the caller then clears rotated hashes and echoes it).
pub fn prepare_update(
    existing: &StoredClient,
    path_id: &str,
    body: &[u8],
    policy: &ClientPolicy,
    _rng: &dyn SecureRandom,
    now_unix: i64,
) -> Result<NewClient, ClientError> {
    let (mut client, secret) = decode_client_value(parse_body(body)?)?;
    client.client_id = path_id.to_owned();
    finish_update(existing, client, secret, policy, now_unix)
}

fn bad_patch(reason: &str) -> ClientError {
    ClientError::bad_request(reason)
}

fn unescape_pointer_token(t: &str) -> String {
    t.replace("~1", "/").replace("~0", "~")
}

/// Creates missing parent objects for an `add` (Hydra enables json-patch's EnsurePathExistsOnAdd).
fn ensure_parents(doc: &mut Value, path: &str) {
    let tokens: Vec<String> = path.split('/').skip(1).map(unescape_pointer_token).collect();
    let mut cur = doc;
    for tok in tokens.iter().take(tokens.len().saturating_sub(1)) {
        let next = match cur {
            Value::Object(m) => {
                let entry = m.entry(tok.clone()).or_insert(Value::Null);
                if entry.is_null() {
                    *entry = Value::Object(Map::new());
                }
                entry
            }
            Value::Array(a) => match tok.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(v) => v,
                None => return,
            },
            _ => return,
        };
        cur = next;
    }
}

/// Last segment is `-` or an index: Hydra keeps `replace` semantics only for element access.
fn is_element_access(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or("");
    !path.is_empty() && (last == "-" || last.parse::<i64>().is_ok())
}

/// `PATCH /admin/clients/{id}`: RFC 6902 over the wire JSON of the stored client (which carries
/// the stored hash as `client_secret`, as Hydra's does). Only add/remove/replace; `replace` of a
/// missing member acts like `add`. A changed `client_secret` comes back as `plaintext_secret`.
pub fn prepare_patch(
    existing: &StoredClient,
    patch_body: &[u8],
    policy: &ClientPolicy,
    _rng: &dyn SecureRandom,
    now_unix: i64,
) -> Result<NewClient, ClientError> {
    let ops = match parse_body(patch_body)? {
        Value::Array(ops) => ops,
        _ => return Err(bad_patch("The JSON Patch document must be an array of operations.")),
    };
    let old_hash = existing.secret_hash.clone().unwrap_or_default();
    let mut doc = existing.client.to_json(Some(&old_hash).filter(|h| !h.is_empty()).map(String::as_str));

    for mut op in ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or("").to_owned();
        let Some(path) = op.get("path").and_then(Value::as_str).map(str::to_owned) else {
            return Err(bad_patch("error parsing patch operations: missing path"));
        };
        if !matches!(kind.as_str(), "add" | "remove" | "replace") {
            return Err(bad_patch(&format!("unsupported operation: {kind}")));
        }
        let lower = path.to_ascii_lowercase();
        let denied = ["/client_id", "/id", "/rotated_secrets"]
            .iter()
            .any(|d| lower == *d || lower.starts_with(&format!("{d}/")));
        if denied {
            return Err(bad_patch(&format!("patch includes denied path: {path}")));
        }
        if kind == "replace" && !is_element_access(&path) {
            if let Some(m) = op.as_object_mut() {
                m.insert("op".to_owned(), Value::String("add".to_owned()));
            }
        }
        if op.get("op").and_then(Value::as_str) == Some("add") {
            ensure_parents(&mut doc, &path);
        }
        let parsed: json_patch::PatchOperation =
            serde_json::from_value(op).map_err(|e| bad_patch(&format!("error parsing patch operations: {e}")))?;
        json_patch::patch(&mut doc, &[parsed]).map_err(|e| bad_patch(&e.to_string()))?;
    }

    let (client, secret) = decode_client_value(doc)?;
    // Unchanged (still the hash) or removed both mean "keep the stored secret".
    let secret = secret.filter(|s| *s != old_hash);
    finish_update(existing, client, secret, policy, now_unix)
}

/// `PUT /admin/clients/{id}/lifespans`: replaces all 13 lifespans (missing → null) and re-validates.
/// The secret is untouched; the response never contains one.
pub fn set_lifespans(existing: &StoredClient, body: &[u8], now_unix: i64) -> Result<Client, ClientError> {
    let v = parse_body(body)?;
    let Value::Object(map) = v else {
        return Err(ClientError::decode("json: cannot unmarshal non-object into Go value of type client.Lifespans"));
    };
    let mut client = existing.client.clone();
    for l in Lifespan::ALL {
        let value = match map.get(l.field_name()) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(ClientError::decode(&format!(
                    "json: cannot unmarshal into Go struct field Lifespans.{} of type string",
                    l.field_name()
                )));
            }
        };
        *client.lifespan_slot_mut(l) = value;
    }
    normalize_lifespans(&mut client)?;
    client.updated_at = now_unix;
    Ok(client)
}

#[cfg(test)]
mod tests {
    #![allow(deprecated)] // ring exposes its deterministic test RNGs only through a deprecated path.

    use super::*;
    use ring::rand::SystemRandom;
    use ring::test::rand::FixedByteRandom;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;
    const SNAPSHOT: &str = r#"{
  "client_name": "", "client_secret": "averylongsecret",
  "redirect_uris": ["http://localhost:3000/cb"], "grant_types": null, "response_types": null,
  "scope": "offline_access offline openid", "audience": [], "owner": "", "policy_uri": "",
  "allowed_cors_origins": [], "tos_uri": "", "client_uri": "", "logo_uri": "", "contacts": null,
  "client_secret_expires_at": 0, "subject_type": "public", "jwks": {},
  "token_endpoint_auth_method": "client_secret_basic", "userinfo_signed_response_alg": "none",
  "metadata": {"foo": "bar"}, "skip_consent": false, "skip_logout_consent": null,
  "authorization_code_grant_access_token_lifespan": null,
  "authorization_code_grant_id_token_lifespan": null,
  "authorization_code_grant_refresh_token_lifespan": null,
  "client_credentials_grant_access_token_lifespan": null,
  "implicit_grant_access_token_lifespan": null, "implicit_grant_id_token_lifespan": null,
  "jwt_bearer_grant_access_token_lifespan": null, "refresh_token_grant_id_token_lifespan": null,
  "refresh_token_grant_access_token_lifespan": null,
  "refresh_token_grant_refresh_token_lifespan": null,
  "device_authorization_grant_id_token_lifespan": null,
  "device_authorization_grant_access_token_lifespan": null,
  "device_authorization_grant_refresh_token_lifespan": null
}"#;

    fn policy() -> ClientPolicy {
        ClientPolicy::default()
    }

    fn rng() -> FixedByteRandom {
        FixedByteRandom { byte: 0x41 }
    }

    fn create(body: Value) -> Result<NewClient, ClientError> {
        prepare_create(body.to_string().as_bytes(), &policy(), &rng(), NOW)
    }

    fn stored(body: Value) -> StoredClient {
        let n = create(body).expect("valid client");
        let hash = n.plaintext_secret.map(|s| format!("hash-of-{s}"));
        StoredClient::new(n.client, hash)
    }

    fn base() -> Value {
        json!({"redirect_uris": ["http://localhost:3000/cb"]})
    }

    fn with(mut v: Value, key: &str, val: Value) -> Value {
        v.as_object_mut().unwrap().insert(key.to_owned(), val);
        v
    }

    #[test]
    fn minimal_admin_client_matches_hydra_snapshot() {
        let n = create(json!({
            "client_secret": "averylongsecret",
            "redirect_uris": ["http://localhost:3000/cb"],
            "metadata": {"foo": "bar"}
        }))
        .unwrap();
        let mut got = n.client.to_json(n.plaintext_secret.as_deref());
        let want: Value = serde_json::from_str(SNAPSHOT).unwrap();
        // Hydra's snapshot test strips the random/time-dependent fields; check them separately.
        let obj = got.as_object_mut().unwrap();
        let id = obj.remove("client_id").unwrap();
        assert_eq!(id.as_str().unwrap().len(), 36);
        assert_eq!(obj.remove("created_at").unwrap(), json!("2023-11-14T22:13:20Z"));
        assert_eq!(obj.remove("updated_at").unwrap(), json!("2023-11-14T22:13:20Z"));
        assert_eq!(got, want);
    }

    #[test]
    fn stored_client_matches_fetch_snapshot_shape() {
        // GET after create: nil slices became [] (snapshot fetching_existing_client-endpoint=admin).
        let s = stored(base());
        let v = s.client.to_json(None);
        assert_eq!(v["grant_types"], json!([]));
        assert_eq!(v["response_types"], json!([]));
        assert_eq!(v["contacts"], json!([]));
        assert_eq!(v["metadata"], json!({}));
        assert_eq!(v["jwks"], json!({}));
        assert!(v.get("client_secret").is_none());
        let back = StoredClient::from_bytes(&s.to_bytes()).unwrap();
        assert_eq!(back.client, s.client);
        assert_eq!(back.secret_hash, s.secret_hash);
        assert!(String::from_utf8(s.to_bytes()).unwrap().contains("\"v\":1"));
    }

    #[test]
    fn stored_client_version_is_checked() {
        let s = stored(base());
        let mut v: Value = serde_json::from_slice(&s.to_bytes()).unwrap();
        v["v"] = json!(2);
        assert!(StoredClient::from_bytes(v.to_string().as_bytes()).is_err());
        assert!(StoredClient::from_bytes(b"{").is_err());
    }

    #[test]
    fn defaults_applied_on_create() {
        let n = create(json!({})).unwrap();
        let c = &n.client;
        assert_eq!(c.token_endpoint_auth_method, "client_secret_basic");
        assert_eq!(c.subject_type, "public");
        assert_eq!(c.userinfo_signed_response_alg, "none");
        assert_eq!(c.scope, "offline_access offline openid");
        assert_eq!(c.client_secret_expires_at, 0);
        assert_eq!((c.created_at, c.updated_at), (NOW, NOW));
        assert_eq!(c.redirect_uris, None);
        assert_eq!(c.effective_grant_types(), vec!["authorization_code"]);
        assert_eq!(c.effective_response_types(), vec!["code"]);
        assert!(c.has_grant("authorization_code"));
        assert!(!c.has_grant("client_credentials"));
        assert_eq!(c.client_id, "41414141-4141-4141-8141-414141414141");
        let secret = n.plaintext_secret.unwrap();
        assert_eq!(secret.len(), GENERATED_SECRET_LEN);
    }

    #[test]
    fn explicit_values_kept() {
        let n = create(json!({
            "client_id": "not-a-uuid", "scope": "a b", "grant_types": [], "contacts": ["x@y"],
            "client_secret_expires_at": 99, "audience": null, "client_name": null,
            "skip_consent": true, "skip_logout_consent": true, "access_token_strategy": "JWT",
            "grant_types_unknown_field": 1
        }))
        .unwrap();
        let c = n.client;
        assert_eq!(c.client_id, "not-a-uuid");
        assert_eq!(c.scopes().collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(c.grant_types, Some(vec![]));
        assert_eq!(c.client_secret_expires_at, 0);
        assert_eq!(c.audience, Vec::<String>::new());
        assert!(c.skip_consent);
        assert_eq!(c.skip_logout_consent, Some(true));
        assert_eq!(c.access_token_strategy, "jwt");
        let v = c.to_json(None);
        assert_eq!(v["grant_types"], json!([]));
        assert_eq!(v["skip_logout_consent"], json!(true));
        assert_eq!(v["access_token_strategy"], json!("jwt"));
    }

    #[test]
    fn omitempty_fields() {
        let c = create(json!({})).unwrap().client;
        let v = c.to_json(None);
        for k in [
            "sector_identifier_uri",
            "jwks_uri",
            "token_endpoint_auth_signing_alg",
            "request_uris",
            "request_object_signing_alg",
            "frontchannel_logout_uri",
            "frontchannel_logout_session_required",
            "post_logout_redirect_uris",
            "backchannel_logout_uri",
            "backchannel_logout_session_required",
            "access_token_strategy",
            "client_secret",
            "registration_access_token",
        ] {
            assert!(v.get(k).is_none(), "{k} should be omitted");
        }
        let c = create(json!({
            "redirect_uris": ["https://a.example/cb"],
            "post_logout_redirect_uris": ["https://a.example/bye"],
            "frontchannel_logout_uri": "https://a.example/fc",
            "frontchannel_logout_session_required": true,
            "backchannel_logout_uri": "https://a.example/bc",
            "backchannel_logout_session_required": true,
            "request_uris": ["https://a.example/r"], "request_object_signing_alg": "RS256",
            "token_endpoint_auth_signing_alg": "RS256"
        }))
        .unwrap()
        .client;
        let v = c.to_json(Some("s3cret!"));
        for k in [
            "post_logout_redirect_uris",
            "frontchannel_logout_uri",
            "frontchannel_logout_session_required",
            "backchannel_logout_uri",
            "backchannel_logout_session_required",
            "request_uris",
            "request_object_signing_alg",
            "token_endpoint_auth_signing_alg",
        ] {
            assert!(v.get(k).is_some(), "{k} should be present");
        }
        assert_eq!(v["client_secret"], json!("s3cret!"));
    }

    #[test]
    fn secret_rules() {
        // Supplied secret kept.
        let n = create(with(base(), "client_secret", json!("not too short"))).unwrap();
        assert_eq!(n.plaintext_secret.as_deref(), Some("not too short"));
        // Short secret: exact Hydra body.
        let e = create(with(base(), "client_secret", json!("short"))).unwrap_err();
        assert_eq!(
            e.to_json(),
            json!({"error": "invalid_client_metadata", "error_description": "The value of one of the Client Metadata fields is invalid and the server has rejected this request. Note that an Authorization Server MAY choose to substitute a valid value for any requested parameter of a Client's Metadata. Field client_secret must contain a secret that is at least 6 characters long."})
        );
        assert_eq!(e.status, 400);
        // Empty string means "generate".
        let n = create(with(base(), "client_secret", json!(""))).unwrap();
        assert_eq!(n.plaintext_secret.unwrap().len(), 26);
        // Public clients get no secret.
        let n = create(with(base(), "token_endpoint_auth_method", json!("none"))).unwrap();
        assert!(n.client.is_public());
        assert_eq!(n.plaintext_secret, None);
        // Non-string secret is a decode error.
        let e = create(with(base(), "client_secret", json!(5))).unwrap_err();
        assert_eq!(e.error, "The request was malformed or contained invalid parameters");
    }

    #[test]
    fn malformed_json_is_herodot_bad_request() {
        for body in [&b"{"[..], b"", b"[]", b"\"x\"", b"{\"client_name\": 5}", b"{\"redirect_uris\": \"x\"}"] {
            let e = prepare_create(body, &policy(), &rng(), NOW).unwrap_err();
            assert_eq!(e.status, 400);
            assert_eq!(e.error, "The request was malformed or contained invalid parameters");
            assert!(e.description.starts_with("Unable to decode the request body: "), "{e}");
            assert!(!e.description.contains('"'));
        }
    }

    #[test]
    fn validation_table() {
        let meta = "invalid_client_metadata";
        let redir = "invalid_redirect_uri";
        let bad = "The request was malformed or contained invalid parameters";
        let cases: Vec<(Value, Option<(&str, &str)>)> = vec![
            // redirect URIs
            (json!({"redirect_uris": ["https://a.example/cb#frag"]}), Some((redir, "Redirect URIs must not contain fragments (#)."))),
            (json!({"redirect_uris": ["cb"]}), Some((redir, "Unable to parse redirect URL: cb"))),
            (json!({"redirect_uris": ["/cb"]}), Some((redir, "Unable to parse redirect URL: /cb"))),
            (json!({"redirect_uris": ["http://a b/cb"]}), Some((redir, "Unable to parse redirect URL"))),
            (json!({"redirect_uris": ["http://a.example:x/cb"]}), Some((redir, "Unable to parse redirect URL"))),
            (json!({"redirect_uris": ["http://a.example/%zz"]}), Some((redir, "Unable to parse redirect URL"))),
            (json!({"redirect_uris": ["https://*.example.com/cb"]}), Some((redir, "without wildcards"))),
            (json!({"redirect_uris": ["https://"]}), Some((redir, "without wildcards"))),
            (json!({"redirect_uris": ["https:///cb"]}), Some((redir, "without wildcards"))),
            (json!({"redirect_uris": ["https:cb"]}), Some((redir, "without wildcards"))),
            (json!({"redirect_uris": ["https://a..example/cb"]}), Some((redir, "without wildcards"))),
            (json!({"redirect_uris": ["https://a%41.example/cb"]}), Some((redir, "without wildcards"))),
            (json!({"redirect_uris": ["myapp://*/cb"]}), Some((redir, "without wildcards"))),
            (json!({"redirect_uris": ["https://a-b_c.example.com./cb"]}), None),
            (json!({"redirect_uris": ["http://example.com/cb"]}), None),
            (json!({"redirect_uris": ["https://example.com/cb?x=1"]}), None),
            (json!({"redirect_uris": ["com.example.app:/oauth"]}), None),
            (json!({"redirect_uris": ["http://[::1]:8080/cb", "http://127.0.0.1/cb"]}), None),
            // auth method / jwks
            (json!({"token_endpoint_auth_method": "client_secret_post"}), None),
            (json!({"token_endpoint_auth_method": "client_secret_jwt"}), Some((meta, "token_endpoint_auth_method must be one of"))),
            (json!({"token_endpoint_auth_method": "private_key_jwt"}), Some((meta, "When token_endpoint_auth_method is 'private_key_jwt', either jwks or jwks_uri must be set."))),
            (json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": {}}), Some((meta, "either jwks or jwks_uri must be set"))),
            (json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://a.example/jwks"}), None),
            (json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [{"kty": "RSA", "n": "x", "e": "AQAB"}]}}), None),
            (json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://a/j", "token_endpoint_auth_signing_alg": "HS256"}), Some((meta, "Only RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 and ES512 are supported"))),
            (json!({"jwks": {"keys": []}, "jwks_uri": "https://a/j"}), Some((meta, "Fields jwks and jwks_uri can not both be set, you must choose one."))),
            (json!({"jwks": {}, "jwks_uri": "https://a/j"}), None),
            (json!({"jwks": {"keys": [{"n": "x"}]}}), Some((meta, "Invalid JSON web key in set."))),
            (json!({"jwks": {"keys": 5}}), Some((meta, "Invalid JSON web key in set."))),
            (json!({"jwks": [1]}), Some((bad, "Unable to decode the request body"))),
            // informational URIs
            (json!({"policy_uri": "ftp://a.example/p"}), Some((meta, "ftp://a.example/p must use https:// or http:// as HTTP scheme for field policy_uri."))),
            (json!({"tos_uri": "relative"}), Some((meta, "Field tos_uri must be a valid URI."))),
            (json!({"logo_uri": "/logo.png"}), Some((meta, "/logo.png must use https:// or http:// as HTTP scheme for field logo_uri."))),
            (json!({"client_uri": "HTTPS://a.example", "logo_uri": "http://a.example/l.png"}), None),
            // CORS
            (json!({"allowed_cors_origins": ["https://a.example"]}), None),
            (json!({"allowed_cors_origins": ["https://*.example.com"]}), None),
            (json!({"allowed_cors_origins": ["*"]}), Some((meta, "Origin URL * must use https:// or http:// as HTTP scheme."))),
            (json!({"allowed_cors_origins": ["https://a.example/path"]}), Some((meta, "must have an empty path, query, and fragment"))),
            (json!({"allowed_cors_origins": ["https://a.example?x"]}), Some((meta, "must have an empty path, query, and fragment"))),
            (json!({"allowed_cors_origins": ["https://u:p@a.example"]}), Some((meta, "has HTTP user and/or password set"))),
            (json!({"allowed_cors_origins": [":bad"]}), Some((meta, "from allowed_cors_origins could not be parsed"))),
            // sector identifier
            (json!({"sector_identifier_uri": "http://a.example/s"}), Some((meta, "rejected this request. Note that an Authorization Server MAY choose to substitute a valid value for any requested parameter of a Client's Metadata."))),
            (json!({"sector_identifier_uri": "https://a.example/s"}), None),
            // userinfo alg
            (json!({"userinfo_signed_response_alg": "RS256"}), None),
            (json!({"userinfo_signed_response_alg": "HS256"}), Some((meta, "Field userinfo_signed_response_alg can either be 'none' or 'RS256'."))),
            // subject type
            (json!({"subject_type": "pairwise"}), Some((meta, "Subject type pairwise is not supported by server, only [public] are allowed."))),
            // post-logout redirect URIs
            (json!({"redirect_uris": ["https://a.example:8443/cb"], "post_logout_redirect_uris": ["https://a.example:8443/logout"]}), None),
            (json!({"redirect_uris": ["https://a.example/cb"], "post_logout_redirect_uris": ["https://a.example:8443/logout"]}), Some((meta, "post_logout_redirect_uri 'https://a.example:8443/logout' must match the domain, port, scheme of at least one of the registered redirect URIs but did not"))),
            (json!({"redirect_uris": ["https://a.example/cb"], "post_logout_redirect_uris": ["http://a.example/logout"]}), Some((meta, "must match the domain"))),
            (json!({"post_logout_redirect_uris": ["nope"]}), Some((meta, "Unable to parse post_logout_redirect_uri: nope"))),
            // access token strategy
            (json!({"access_token_strategy": "opaque"}), None),
            (json!({"access_token_strategy": "paseto"}), Some((meta, "invalid access token strategy"))),
            // grant / response types
            (json!({"grant_types": ["authorization_code", "refresh_token", "client_credentials", "implicit", "urn:ietf:params:oauth:grant-type:jwt-bearer", "urn:ietf:params:oauth:grant-type:device_code"]}), None),
            (json!({"grant_types": ["password"]}), Some((meta, "Grant type password is not supported."))),
            (json!({"response_types": ["code", "token", "id_token", "code id_token", "token id_token code"]}), None),
            (json!({"response_types": ["code code"]}), Some((meta, "Response type code code is not supported."))),
            (json!({"response_types": ["none"]}), Some((meta, "Response type none is not supported."))),
            (json!({"response_types": [""]}), Some((meta, "Response type  is not supported."))),
            // metadata
            (json!({"metadata": null}), None),
            (json!({"metadata": [1]}), Some((meta, "Field metadata must be a JSON object."))),
            (json!({"metadata": "x"}), Some((meta, "Field metadata must be a JSON object."))),
            // lifespans
            (json!({"client_credentials_grant_access_token_lifespan": "1h"}), None),
            (json!({"client_credentials_grant_access_token_lifespan": "1 hour"}), Some((bad, "Unable to decode the request body: time: invalid duration '1 hour'"))),
            (json!({"refresh_token_grant_refresh_token_lifespan": "-1h"}), Some((bad, "invalid duration"))),
            (json!({"implicit_grant_id_token_lifespan": 5}), Some((bad, "Unable to decode the request body"))),
        ];
        for (body, want) in cases {
            let res = create(body.clone());
            match (res, want) {
                (Ok(_), None) => {}
                (Err(e), Some((error, needle))) => {
                    assert_eq!(e.status, 400, "{body}");
                    assert_eq!(e.error, error, "{body}: {e}");
                    assert!(e.description.contains(needle), "{body}: {e}");
                }
                (Ok(_), Some(w)) => panic!("{body} unexpectedly accepted, wanted {w:?}"),
                (Err(e), None) => panic!("{body} unexpectedly rejected: {e}"),
            }
        }
    }

    #[test]
    fn normalizations() {
        let c = create(json!({
            "allowed_cors_origins": ["HTTPS://a.example:8443/", "http://b.example"],
            "client_credentials_grant_access_token_lifespan": "90m",
            "authorization_code_grant_id_token_lifespan": "0",
        }))
        .unwrap()
        .client;
        assert_eq!(c.allowed_cors_origins, vec!["https://a.example:8443", "http://b.example"]);
        assert_eq!(c.client_credentials_grant_access_token_lifespan.as_deref(), Some("1h30m0s"));
        assert_eq!(c.authorization_code_grant_id_token_lifespan.as_deref(), Some("0s"));
        assert_eq!(c.lifespan(Lifespan::ClientCredentialsAccessToken), Some(Duration::from_secs(5400)));
        assert_eq!(c.lifespan(Lifespan::ImplicitAccessToken), None);
    }

    #[test]
    fn subject_type_defaults_follow_policy() {
        let p = ClientPolicy { subject_types_supported: vec!["pairwise".into()], ..ClientPolicy::default() };
        let n = prepare_create(b"{}", &p, &rng(), NOW).unwrap();
        assert_eq!(n.client.subject_type, "pairwise");
        let p = ClientPolicy {
            subject_types_supported: vec!["pairwise".into(), "public".into()],
            default_scope: "openid".into(),
            ..ClientPolicy::default()
        };
        let n = prepare_create(br#"{"subject_type":"pairwise"}"#, &p, &rng(), NOW).unwrap();
        assert_eq!(n.client.subject_type, "pairwise");
        assert_eq!(n.client.scope, "openid");
        let n = prepare_create(b"{}", &p, &rng(), NOW).unwrap();
        assert_eq!(n.client.subject_type, "public");
    }

    #[test]
    fn put_replaces_and_keeps_identity() {
        let mut old = stored(json!({"client_id": "c1", "client_name": "old", "audience": ["x"],
            "metadata": {"a": 1}}));
        old.rotated_secret_hashes = vec!["r1".into()];
        let body = json!({"client_id": "ignored", "client_name": "new",
            "redirect_uris": ["http://localhost:3000/cb", "https://foobar.com"],
            "created_at": "2000-01-01T00:00:00Z"});
        let n = prepare_update(&old, "c1", body.to_string().as_bytes(), &policy(), &rng(), NOW + 10).unwrap();
        assert_eq!(n.client.client_id, "c1");
        assert_eq!(n.client.client_name, "new");
        assert_eq!(n.client.audience, Vec::<String>::new()); // full replace
        assert_eq!(n.client.metadata, json!({}));
        assert_eq!(n.client.created_at, NOW);
        assert_eq!(n.client.updated_at, NOW + 10);
        assert_eq!(n.plaintext_secret, None); // keep old hash
                                              // Echo shape: unsent slices are null like Hydra's PUT response.
        assert_eq!(n.client.to_json(None)["grant_types"], Value::Null);

        let body = json!({"client_secret": "averylongsecret"});
        let n = prepare_update(&old, "c1", body.to_string().as_bytes(), &policy(), &rng(), NOW).unwrap();
        assert_eq!(n.plaintext_secret.as_deref(), Some("averylongsecret"));

        let body = json!({"client_secret": "short"});
        let e = prepare_update(&old, "c1", body.to_string().as_bytes(), &policy(), &rng(), NOW).unwrap_err();
        assert_eq!(e.error, "invalid_client_metadata");
        let e = prepare_update(&old, "c1", b"nope", &policy(), &rng(), NOW).unwrap_err();
        assert_eq!(e.status, 400);
    }

    fn patch(old: &StoredClient, ops: Value) -> Result<NewClient, ClientError> {
        prepare_patch(old, ops.to_string().as_bytes(), &policy(), &rng(), NOW + 5)
    }

    #[test]
    fn sector_documents_must_list_every_redirect_uri() {
        let uris = vec!["https://a.example/cb".to_string(), "https://b.example/cb".to_string()];
        assert!(
            check_sector_document(br#"["https://a.example/cb","https://b.example/cb","https://c/x"]"#, &uris).is_ok()
        );
        let e = check_sector_document(br#"["https://a.example/cb"]"#, &uris).unwrap_err();
        assert!(e.to_json().to_string().contains("https://b.example/cb"), "{}", e.to_json());
        for bad in [&b"{}"[..], b"[1]", b"not json", b""] {
            assert!(check_sector_document(bad, &uris).is_err());
        }
    }

    #[test]
    fn patch_semantics() {
        let old = stored(json!({"client_id": "c1", "client_secret": "averylongsecret",
            "redirect_uris": ["https://a.example/cb"], "metadata": {"k": "v"}}));
        assert_eq!(old.secret_hash.as_deref(), Some("hash-of-averylongsecret"));

        // replace of a scalar, add to an array, nested add with missing parents.
        let n = patch(
            &old,
            json!([
                {"op": "replace", "path": "/client_name", "value": "patched"},
                {"op": "add", "path": "/redirect_uris/-", "value": "https://b.example/cb"},
                {"op": "add", "path": "/metadata/deep/er", "value": 1},
                {"op": "replace", "path": "/owner", "value": "me"},
                {"op": "remove", "path": "/metadata/k"}
            ]),
        )
        .unwrap();
        assert_eq!(n.client.client_name, "patched");
        assert_eq!(n.client.owner, "me");
        assert_eq!(n.client.redirect_uris.as_ref().unwrap().len(), 2);
        assert_eq!(n.client.metadata, json!({"deep": {"er": 1}}));
        assert_eq!(n.plaintext_secret, None);
        assert_eq!(n.client.client_id, "c1");
        assert_eq!(n.client.created_at, NOW);
        assert_eq!(n.client.updated_at, NOW + 5);
        // Stored (normalized) slices stay [] in the PATCH response, like Hydra.
        assert_eq!(n.client.to_json(None)["grant_types"], json!([]));

        // replace of a member that does not exist acts as add (Hydra's tolerance).
        let n = patch(&old, json!([{"op": "replace", "path": "/jwks_uri", "value": "https://a/j"}])).unwrap();
        assert_eq!(n.client.jwks_uri, "https://a/j");

        // Secret changes.
        let n = patch(&old, json!([{"op": "replace", "path": "/client_secret", "value": "newsecret"}])).unwrap();
        assert_eq!(n.plaintext_secret.as_deref(), Some("newsecret"));
        let n = patch(&old, json!([{"op": "remove", "path": "/client_secret"}])).unwrap();
        assert_eq!(n.plaintext_secret, None);
        let e = patch(&old, json!([{"op": "replace", "path": "/client_secret", "value": "abc"}])).unwrap_err();
        assert_eq!(e.error, "invalid_client_metadata");

        // Denied paths, unsupported ops, malformed documents.
        for ops in [
            json!([{"op": "replace", "path": "/client_id", "value": "other"}]),
            json!([{"op": "add", "path": "/Client_ID", "value": "other"}]),
            json!([{"op": "remove", "path": "/client_id"}]),
            json!([{"op": "add", "path": "/rotated_secrets", "value": []}]),
            json!([{"op": "move", "from": "/owner", "path": "/client_name"}]),
            json!([{"op": "test", "path": "/owner", "value": ""}]),
            json!([{"op": "copy", "from": "/owner", "path": "/client_name"}]),
            json!([{"op": "add", "value": 1}]),
            json!([{"op": "remove", "path": "/nonexistent"}]),
            json!([{"op": "add", "path": "/redirect_uris/7", "value": "x"}]),
            json!({"op": "add"}),
            json!([{"op": "add", "path": "/client_name", "value": 5}]),
        ] {
            let e = patch(&old, ops.clone()).unwrap_err();
            assert_eq!(e.status, 400, "{ops}");
        }
        let e = patch(&old, json!([{"op": "add", "path": "/redirect_uris/-", "value": "https://x#y"}])).unwrap_err();
        assert_eq!(e.error, "invalid_redirect_uri");
    }

    #[test]
    fn lifespans_endpoint() {
        let old = stored(json!({"client_name": "update-existing-client-lifespans",
            "implicit_grant_access_token_lifespan": "5m"}));
        let mut body = Map::new();
        for (i, l) in Lifespan::ALL.iter().enumerate() {
            body.insert(l.field_name().to_owned(), json!(format!("{}h", 31 + i)));
        }
        body.remove("implicit_grant_id_token_lifespan");
        let c = set_lifespans(&old, Value::Object(body).to_string().as_bytes(), NOW + 1).unwrap();
        assert_eq!(c.authorization_code_grant_access_token_lifespan.as_deref(), Some("31h0m0s"));
        assert_eq!(c.device_authorization_grant_refresh_token_lifespan.as_deref(), Some("43h0m0s"));
        assert_eq!(c.implicit_grant_id_token_lifespan, None);
        assert_eq!(c.lifespan(Lifespan::RefreshTokenRefreshToken), Some(Duration::from_secs(40 * 3600)));
        assert_eq!(c.updated_at, NOW + 1);
        assert_eq!(c.client_name, "update-existing-client-lifespans");

        // Missing fields reset to null.
        let c = set_lifespans(&old, b"{}", NOW).unwrap();
        assert!(Lifespan::ALL.iter().all(|l| c.lifespan(*l).is_none()));
        for bad in [
            &b"{\"jwt_bearer_grant_access_token_lifespan\": \"soon\"}"[..],
            b"[]",
            b"{",
            b"{\"jwt_bearer_grant_access_token_lifespan\": 1}",
        ] {
            let e = set_lifespans(&old, bad, NOW).unwrap_err();
            assert_eq!(e.status, 400);
            assert_eq!(e.error, "The request was malformed or contained invalid parameters");
        }
    }

    #[test]
    fn lifespan_field_names_match_schema() {
        let c = Client::default();
        let v = c.to_json(None);
        let names: Vec<&str> = Lifespan::ALL.iter().map(|l| l.field_name()).collect();
        let json_names: Vec<&str> =
            v.as_object().unwrap().keys().filter(|k| k.ends_with("_lifespan")).map(String::as_str).collect();
        assert_eq!(names.len(), 13);
        let mut a = names.clone();
        a.sort_unstable();
        assert_eq!(a, json_names);
    }

    #[test]
    fn rotation() {
        let mut s = stored(json!({"client_secret": "averylongsecret"}));
        assert!(rotation_allowed(&s.client).is_ok());
        for i in 0..7 {
            s.rotate_secret(format!("h{i}"), NOW + i);
        }
        assert_eq!(s.secret_hash.as_deref(), Some("h6"));
        assert_eq!(s.rotated_secret_hashes, vec!["h5", "h4", "h3", "h2", "h1"]);
        s.clear_rotated_secrets(NOW + 100);
        assert!(s.rotated_secret_hashes.is_empty());
        assert_eq!(s.client.updated_at, NOW + 100);
        let p = stored(json!({"token_endpoint_auth_method": "none"}));
        let e = rotation_allowed(&p.client).unwrap_err();
        assert_eq!(e.description, "The client is configured to use the 'none' authentication method, which does not support client secret rotation.");
    }

    #[test]
    fn secrets_never_in_debug() {
        let n = create(with(base(), "client_secret", json!("supersecretvalue"))).unwrap();
        assert!(!format!("{n:?}").contains("supersecretvalue"));
        let s = StoredClient::new(n.client, Some("$pbkdf2-sha256$i=1,l=32$abc$def".into()));
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("pbkdf2") && dbg.contains("<redacted>"));
    }

    #[test]
    fn generated_values() {
        let sys = SystemRandom::new();
        let a = generate_secret(&sys).unwrap();
        let b = generate_secret(&sys).unwrap();
        assert_ne!(a, b);
        for s in [&a, &b] {
            assert_eq!(s.len(), 26);
            assert!(s.bytes().all(|c| SECRET_ALPHABET.contains(&c)));
        }
        // Bytes >= 198 are rejected: an all-0xFF RNG would loop forever, 197 maps to the last char.
        assert_eq!(generate_secret(&FixedByteRandom { byte: 197 }).unwrap(), "~".repeat(26));
        assert_eq!(generate_secret(&FixedByteRandom { byte: 0 }).unwrap(), "a".repeat(26));
        let id = generate_uuid_v4(&sys).unwrap();
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), vec![8, 4, 4, 4, 12]);
        assert!(parts[2].starts_with('4'));
        assert!(matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
        assert_eq!(generate_uuid_v4(&FixedByteRandom { byte: 0 }).unwrap(), "00000000-0000-4000-8000-000000000000");
    }

    #[test]
    fn uri_helpers() {
        let p = policy();
        assert_eq!(registration_client_uri(&p, "not-a-uuid"), "http://localhost:4444/oauth2/register/not-a-uuid");
        assert_eq!(registration_client_uri(&p, "a b/c"), "http://localhost:4444/oauth2/register/a%20b%2Fc");
        assert_eq!(admin_location("x?y"), "/admin/clients/x%3Fy");
        for (u, ok) in [
            ("https://a.example/cb", true),
            ("http://localhost:3000/cb", true),
            ("http://127.0.0.1/cb", true),
            ("http://[::1]:80/cb", true),
            ("http://app.localhost/cb", true),
            ("com.example:/cb", true),
            ("http://example.com/cb", false),
            ("http://127.example/cb", false),
            ("::", false),
        ] {
            assert_eq!(is_redirect_uri_secure(u), ok, "{u}");
        }
    }

    #[test]
    fn rfc3339_round_trip() {
        for (unix, s) in [
            (0, "1970-01-01T00:00:00Z"),
            (NOW, "2023-11-14T22:13:20Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (-62_135_596_800, "0001-01-01T00:00:00Z"),
        ] {
            assert_eq!(format_rfc3339(unix), s);
            assert_eq!(rfc3339::parse(s), Some(unix));
        }
        assert_eq!(rfc3339::parse("2023-11-14T23:13:20.123+01:00"), Some(NOW));
        for bad in ["", "2023-11-14", "2023-13-14T00:00:00Z", "2023-11-14T00:00:00", "2023-11-14T00:00:00+0100"] {
            assert_eq!(rfc3339::parse(bad), None, "{bad}");
        }
    }
}
