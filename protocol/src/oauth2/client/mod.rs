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
    /// (see [`crate::oauth2::uri::is_redirect_uri_secure`]).
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
    /// OIDC Registration §2 (not in Hydra's client object; shown only when set): the algorithm
    /// this client's ID tokens are signed with; empty means the newest key of
    /// `hydra.openid.id-token`, whatever its algorithm.
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "null_default")]
    pub id_token_signed_response_alg: String,
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

    pub fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::dates::rfc3339(*v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(0),
            Some(s) => crate::dates::parse_rfc3339(&s)
                .ok_or_else(|| serde::de::Error::custom(format!("invalid RFC 3339 time {s:?}"))),
        }
    }
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

/// The grants that issue user tokens, each with its own client lifespans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssuedBy {
    AuthorizationCode,
    RefreshToken,
    DeviceCode,
    /// The authorization endpoint (implicit and hybrid response types): no refresh token.
    Implicit,
}

impl IssuedBy {
    /// The client fields of its access, ID and refresh token lifespans.
    fn fields(self) -> [Option<Lifespan>; 3] {
        use Lifespan::*;
        match self {
            IssuedBy::AuthorizationCode => [
                Some(AuthorizationCodeAccessToken),
                Some(AuthorizationCodeIdToken),
                Some(AuthorizationCodeRefreshToken),
            ],
            IssuedBy::RefreshToken => {
                [Some(RefreshTokenAccessToken), Some(RefreshTokenIdToken), Some(RefreshTokenRefreshToken)]
            }
            IssuedBy::DeviceCode => [
                Some(DeviceAuthorizationAccessToken),
                Some(DeviceAuthorizationIdToken),
                Some(DeviceAuthorizationRefreshToken),
            ],
            IssuedBy::Implicit => [Some(ImplicitAccessToken), Some(ImplicitIdToken), None],
        }
    }
}

/// Access, ID and refresh token lifespans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenLifespans {
    pub access: Duration,
    pub id: Duration,
    pub refresh: Duration,
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

    /// The `sub` this client's tokens name for `subject` (pairwise or public, OIDC Core §8).
    pub fn subject_for(&self, subject: &str, pairwise_salt: &str) -> Option<String> {
        crate::oauth2::id_token::subject_for(&self.subject_type, subject, self.sector_uris(), pairwise_salt)
    }

    /// Per-client override for a token lifespan; `None` means "use the global TTL".
    pub fn lifespan(&self, field: Lifespan) -> Option<Duration> {
        self.lifespan_slot(field).as_deref().and_then(parse_go_duration)
    }

    /// The lifespans of the tokens a grant issues to this client: its own where set, else the
    /// global TTLs given (fosite's `GetEffectiveLifespan`).
    pub fn token_lifespans(&self, by: IssuedBy, global: TokenLifespans) -> TokenLifespans {
        let [access, id, refresh] = by.fields();
        let pick = |f: Option<Lifespan>, d: Duration| f.and_then(|f| self.lifespan(f)).unwrap_or(d);
        TokenLifespans {
            access: pick(access, global.access),
            id: pick(id, global.id),
            refresh: pick(refresh, global.refresh),
        }
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
        // As `effective_grant_types`, without building the list (the token endpoint asks per request).
        match self.grant_types.as_deref() {
            Some(list) if !list.is_empty() => list.iter().any(|x| x == g),
            _ => g == "authorization_code",
        }
    }

    /// Space-separated `scope`, split like Go's `strings.Fields`.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split_whitespace()
    }

    /// Whether this client's access tokens are JWTs: its own `access_token_strategy`, else the
    /// server's `strategies.access_token`. A pairwise client always gets opaque tokens: a JWT
    /// would show it the subject that pairwise identifiers exist to hide.
    pub fn jwt_access_tokens(&self, server_jwt: bool) -> bool {
        if self.subject_type == "pairwise" {
            return false;
        }
        match self.access_token_strategy.as_str() {
            "jwt" => true,
            "opaque" => false,
            _ => server_jwt,
        }
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

    /// Effective `token_endpoint_auth_signing_alg` (when unset: HS256 for `client_secret_jwt`,
    /// RS256 otherwise).
    pub fn auth_signing_alg(&self) -> &str {
        if self.token_endpoint_auth_signing_alg.is_empty() {
            if self.token_endpoint_auth_method == "client_secret_jwt" {
                return "HS256";
            }
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
    /// `client_secret_jwt` clients only: the current secret sealed (AES-256-GCM under the
    /// key-sealing key, bound to the client id), base64url; an HMAC assertion needs the secret
    /// itself, a hash cannot check one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_secret: Option<String>,
    /// SHA-256 (hex) of the current registration access token (RFC 7592), if one was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_token_hash: Option<String>,
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
            sealed_secret: None,
            registration_token_hash: None,
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
            .field("sealed_secret", &self.sealed_secret.as_ref().map(|_| "<sealed>"))
            .field("registration_token_hash", &self.registration_token_hash.as_ref().map(|_| "<hash>"))
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
    generate_secret_len(rng, GENERATED_SECRET_LEN)
}

/// The secret generated for `client`: 64 characters for `client_secret_jwt` (an HS512 key must
/// have at least 64 bytes, RFC 7518 §3.2), Hydra's 26 otherwise.
pub fn generate_secret_for(client: &Client, rng: &dyn SecureRandom) -> Result<String, ClientError> {
    let len = if client.auth_method() == "client_secret_jwt" { 64 } else { GENERATED_SECRET_LEN };
    generate_secret_len(rng, len)
}

fn generate_secret_len(rng: &dyn SecureRandom, len: usize) -> Result<String, ClientError> {
    const LIMIT: u8 = (256 / SECRET_ALPHABET.len() * SECRET_ALPHABET.len()) as u8;
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let buf: [u8; 32] = random_bytes(rng)?;
        for &b in buf.iter().filter(|&&b| b < LIMIT) {
            if out.len() == len {
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

mod endpoints;
mod uri;
mod validate;

pub use endpoints::*;
pub use uri::*;
pub use validate::*;

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
            (json!({"token_endpoint_auth_method": "client_secret_jwt"}), None),
            (json!({"token_endpoint_auth_method": "client_secret_jwt", "token_endpoint_auth_signing_alg": "HS512", "client_secret": "x".repeat(64)}), None),
            (json!({"token_endpoint_auth_method": "client_secret_jwt", "client_secret": "x".repeat(31)}), Some((meta, "at least 32 bytes long for client_secret_jwt with HS256"))),
            (json!({"token_endpoint_auth_method": "client_secret_jwt", "token_endpoint_auth_signing_alg": "HS384", "client_secret": "x".repeat(40)}), Some((meta, "at least 48 bytes"))),
            (json!({"token_endpoint_auth_method": "client_secret_jwt", "token_endpoint_auth_signing_alg": "RS256"}), Some((meta, "Only HS256, HS384 and HS512"))),
            (json!({"token_endpoint_auth_method": "client_secret_jwt", "token_endpoint_auth_signing_alg": "none"}), Some((meta, "Only HS256, HS384 and HS512"))),
            (json!({"token_endpoint_auth_method": "tls_client_auth"}), Some((meta, "token_endpoint_auth_method must be one of"))),
            (json!({"token_endpoint_auth_method": "private_key_jwt"}), Some((meta, "When token_endpoint_auth_method is 'private_key_jwt', either jwks or jwks_uri must be set."))),
            (json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": {}}), Some((meta, "either jwks or jwks_uri must be set"))),
            (json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://a.example/jwks"}), None),
            (json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [{"kty": "RSA", "n": "x", "e": "AQAB"}]}}), None),
            (json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://a/j", "token_endpoint_auth_signing_alg": "HS256"}), Some((meta, "Only RS256, RS384, RS512, PS256, PS384, PS512, ES256 and ES384 are supported"))),
            (json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://a/j", "token_endpoint_auth_signing_alg": "ES512"}), Some((meta, "ES256 and ES384 are supported"))),
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
            (json!({"allowed_cors_origins": ["https://*.com"]}), Some((meta, "wildcard"))),
            (json!({"allowed_cors_origins": ["https://*foo.example.com"]}), Some((meta, "wildcard"))),
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
            (json!({"frontchannel_logout_uri": "https://a.example/fc?x=1", "backchannel_logout_uri": "http://127.0.0.1:9/bc"}), None),
            (json!({"frontchannel_logout_uri": "/fc"}), Some((meta, "Field frontchannel_logout_uri must be an absolute http or https URL"))),
            (json!({"frontchannel_logout_uri": "https://a.example/fc#x"}), Some((meta, "without a fragment"))),
            (json!({"backchannel_logout_uri": "javascript:alert(1)"}), Some((meta, "Field backchannel_logout_uri must be"))),
            (json!({"backchannel_logout_uri": "https://*.example/bc"}), Some((meta, "Field backchannel_logout_uri must be"))),
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
    fn access_token_strategy_per_client() {
        let p = ClientPolicy {
            subject_types_supported: vec!["pairwise".into(), "public".into()],
            ..ClientPolicy::default()
        };
        let err = prepare_create(br#"{"subject_type":"pairwise","access_token_strategy":"jwt"}"#, &p, &rng(), NOW);
        assert!(err.is_err(), "a JWT would reveal the subject pairwise hides");
        let pairwise = prepare_create(br#"{"subject_type":"pairwise"}"#, &p, &rng(), NOW).unwrap().client;
        assert!(!pairwise.jwt_access_tokens(true), "pairwise clients keep opaque tokens under a global jwt strategy");
        let jwt = prepare_create(br#"{"access_token_strategy":"jwt"}"#, &p, &rng(), NOW).unwrap().client;
        assert!(jwt.jwt_access_tokens(false));
        let opaque = prepare_create(br#"{"access_token_strategy":"opaque"}"#, &p, &rng(), NOW).unwrap().client;
        assert!(!opaque.jwt_access_tokens(true));
        let unset = prepare_create(b"{}", &p, &rng(), NOW).unwrap().client;
        assert!(unset.jwt_access_tokens(true) && !unset.jwt_access_tokens(false));
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
            assert_eq!(crate::oauth2::uri::is_redirect_uri_secure(u), ok, "{u}");
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
            assert_eq!(crate::dates::rfc3339(unix), s);
            assert_eq!(crate::dates::parse_rfc3339(s), Some(unix));
        }
        assert_eq!(crate::dates::parse_rfc3339("2023-11-14T23:13:20.123+01:00"), Some(NOW));
        for bad in ["", "2023-11-14", "2023-13-14T00:00:00Z", "2023-11-14T00:00:00", "2023-11-14T00:00:00+0100"] {
            assert_eq!(crate::dates::parse_rfc3339(bad), None, "{bad}");
        }
    }
}
