//! Configuration with Hydra's keys and conventions: schema defaults, then config files
//! (`-c`, YAML or JSON), then environment variables named after the key path (upper-cased,
//! `.` → `_`, lists comma-separated).
//!
//! Invariant: every value is validated here, once; a bad value is a [`ConfigError`] naming the
//! key, and the rest of the server only sees typed, checked settings. Project-specific keys live
//! under `engine.*` (env `ENGINE_*`).

mod hydra_keys;
mod keys;
pub mod pg_dsn;
mod raw;
mod tls;

pub use keys::env_name;
use keys::{check_keys, implemented, Kind, KEYS};
use raw::{merge, read_file, Raw};
use tls::tls_for;
pub use tls::{PemSource, TlsFiles};

use crate::oauth2::scope::ScopeStrategy;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// A configuration problem, printed as one line naming the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid configuration: {}: {}", self.key, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError { key: key.to_string(), message: message.into() }
}

/// Where state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dsn {
    Memory,
    Redb(PathBuf),
    /// `postgres://` or `postgresql://` (the backend is not built yet; the server refuses it at
    /// start-up with a message saying so).
    Postgres(Box<pg_dsn::PgDsn>),
}

/// `engine.wal_size_mb`'s default: 16 MiB of write-ahead log per database.
pub const DEFAULT_WAL_BYTES: u64 = 16 << 20;

/// `engine.durability`: whether a write is acknowledged only once it is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every acknowledged write is durable (the default).
    Immediate,
    /// Writes are synced every 250 ms at most: benchmarks and development only.
    None,
}

/// Which monoio driver the workers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// io_uring when the kernel allows it, else epoll.
    Auto,
    IoUring,
    Legacy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// One listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub host: String,
    pub port: u16,
}

impl Listen {
    /// `host:port` for binding; IPv6 literals get brackets.
    pub fn addr(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Validated settings, nested as Hydra's configuration keys are (`ttl.access_token` is
/// `config.ttl.access_token`).
#[derive(Clone)]
pub struct Config {
    pub dev: bool,
    pub dsn: Dsn,
    pub secrets: Secrets,
    pub urls: Urls,
    pub serve: Serve,
    pub ttl: Ttl,
    pub strategies: Strategies,
    pub oauth2: OAuth2,
    pub oidc: Oidc,
    pub log: Log,
    pub clients_http: ClientsHttp,
    /// This server's own settings (`engine.*`, not in Hydra).
    pub engine: Engine,
}

/// `secrets.*`.
#[derive(Clone)]
pub struct Secrets {
    /// `secrets.system`; empty only in `--dev` before the server generates one.
    pub system: Vec<String>,
    /// `secrets.cookie`: what seals the login session cookie (the first seals, all open); empty
    /// means `secrets.system`, as Hydra.
    pub cookie: Vec<String>,
}

/// `SameSite` of the flow's cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

/// `serve.cookies.*`, resolved: `secure` is what cookies carry (always outside `--dev`), and
/// `same_site` is already lowered from `None` to `Lax` where a browser would refuse `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookies {
    pub same_site: SameSite,
    /// `same_site_legacy_workaround`: with `None`, a second cookie `<name>_legacy` without
    /// `SameSite`, for browsers that reject `None`.
    pub legacy_workaround: bool,
    pub domain: Option<String>,
    pub secure: bool,
    /// `paths.session`.
    pub session_path: String,
    /// `names.*`, as configured (the `_dev` suffix and the client suffix are added where used).
    pub login_csrf: String,
    pub consent_csrf: String,
    pub device_csrf: String,
    pub session: String,
}

/// `urls.*`.
#[derive(Debug, Clone)]
pub struct Urls {
    /// `urls.self.issuer` exactly as configured (relying parties compare it byte for byte).
    pub issuer: String,
    /// `urls.self.public` without a trailing slash.
    pub public: String,
    /// `urls.self.admin` without a trailing slash.
    pub admin: String,
    /// Which of issuer / public / admin URLs were derived from the listeners (not configured),
    /// so the server can correct them once port 0 has resolved.
    pub derived: (bool, bool, bool),
    /// `urls.login`, `urls.consent`, `urls.error`, `urls.logout`, `urls.post_logout_redirect`:
    /// absolute, or paths on the public URL.
    pub login: String,
    pub consent: String,
    pub error: String,
    pub logout: String,
    pub post_logout_redirect: String,
    /// `urls.device.verification`: where a browser enters its user code (RFC 8628).
    pub device_verification: String,
    /// `urls.device.success`: where a browser lands once a device is authorized.
    pub device_success: String,
    /// `urls.identity_provider.url`: the identity provider's (Ory Kratos') admin API, where a
    /// login's `identity_provider_session_id` is revoked when the login session ends.
    pub identity_provider: Option<String>,
    /// `urls.identity_provider.headers`: sent with each revocation (an API key, usually).
    pub identity_provider_headers: Vec<(String, String)>,
}

/// `serve.*`.
#[derive(Debug, Clone)]
pub struct Serve {
    pub public: Listen,
    pub admin: Listen,
    /// TLS of the public listener (`serve.public.tls` over `serve.tls`); `None`: plain HTTP.
    pub tls_public: Option<TlsFiles>,
    /// TLS of the admin listener (`serve.admin.tls` over `serve.tls`).
    pub tls_admin: Option<TlsFiles>,
    /// `serve.cookies.*`.
    pub cookies: Cookies,
    /// `serve.{public,admin}.request_log.disable_for_health`: no request line for `/health/*`.
    pub quiet_health: (bool, bool),
    /// `serve.public.cors.*` when enabled.
    pub cors_public: Option<crate::http::cors::Cors>,
    /// `serve.admin.cors.*` when enabled.
    pub cors_admin: Option<crate::http::cors::Cors>,
}

/// `ttl.*`.
#[derive(Debug, Clone)]
pub struct Ttl {
    pub access_token: Duration,
    pub refresh_token: Duration,
    pub id_token: Duration,
    pub auth_code: Duration,
    pub login_consent_request: Duration,
    /// `ttl.device_user_code`: how long a device code and its user code live.
    pub device_user_code: Duration,
}

/// `strategies.*`.
#[derive(Debug, Clone)]
pub struct Strategies {
    pub scope: ScopeStrategy,
    /// `strategies.access_token: jwt` (a client's `access_token_strategy` overrides it).
    pub jwt_access_tokens: bool,
    /// How JWT access tokens are shaped (`strategies.jwt.scope_claim` and the `oauth2.*` claim keys).
    pub jwt: crate::oauth2::jwt_access_token::Shaping,
}

/// `oauth2.*`.
#[derive(Debug, Clone)]
pub struct OAuth2 {
    /// `oauth2.pkce.enforced`.
    pub pkce_enforced: bool,
    /// `oauth2.pkce.enforced_for_public_clients`.
    pub pkce_enforced_for_public_clients: bool,
    /// `oauth2.hashers.pbkdf2.iterations`.
    pub pbkdf2_iterations: u32,
    /// `oauth2.hashers.algorithm` with its parameter: what hashes new client secrets.
    pub hasher: crate::oauth2::hasher::Hasher,
    /// `oauth2.client_credentials.default_grant_allowed_scope`.
    pub cc_default_grant_allowed_scope: bool,
    pub expose_internal_errors: bool,
    /// `oauth2.grant.jwt.iat_optional`, `.jti_optional`, `.max_ttl`.
    pub jwt_grant: crate::oauth2::jwt_bearer::Policy,
    /// `oauth2.device_authorization.token_polling_interval`.
    pub device_polling_interval: Duration,
    /// `oauth2.device_authorization.user_code.*`.
    pub user_code: crate::oauth2::device::UserCodePolicy,
    /// `oauth2.token_hook`: called before tokens are issued, for every grant.
    pub token_hook: Option<Hook>,
    /// `oauth2.refresh_token_hook`: called before `token_hook` for the refresh grant.
    pub refresh_token_hook: Option<Hook>,
    /// `oauth2.session.encrypt_at_rest`: seal the session claims of token records
    /// ([`crate::oauth2::at_rest`]).
    pub encrypt_at_rest: bool,
}

/// `oidc.*` and `webfinger.oidc_discovery.*`.
#[derive(Debug, Clone)]
pub struct Oidc {
    /// `oidc.subject_identifiers.pairwise.salt`.
    pub pairwise_salt: String,
    /// `oidc.subject_identifiers.supported_types`.
    pub subject_types: Vec<String>,
    /// `oidc.dynamic_client_registration.default_scope`, space separated.
    pub default_client_scope: String,
    /// `oidc.dynamic_client_registration.enabled`: serve `/oauth2/register` (RFC 7591/7592).
    pub dynamic_registration: bool,
    /// `webfinger.oidc_discovery.supported_scope` and `.supported_claims`: added to discovery.
    pub discovery_scopes: Vec<String>,
    pub discovery_claims: Vec<String>,
}

/// `log.*`.
#[derive(Debug, Clone)]
pub struct Log {
    pub level: Level,
    pub format: LogFormat,
    /// `log.leak_sensitive_values`: request lines carry the query string, with the values of
    /// parameters that are credentials still replaced by `redaction_text`.
    pub leak_sensitive_values: bool,
    /// `log.redaction_text`.
    pub redaction_text: String,
}

/// `clients.http.*`.
#[derive(Debug, Clone)]
pub struct ClientsHttp {
    /// Outbound requests (sector identifier documents) refuse private, loopback and reserved
    /// addresses (`clients.http.disallow_private_ip_ranges`; default on, off with `--dev`).
    pub disallow_private_ip_ranges: bool,
    /// `clients.http.private_ip_exception_urls`: URLs (query and fragment ignored) that may reach
    /// private addresses all the same; `*` matches within one host label or path segment, `**`
    /// across them (Hydra's globs).
    pub private_ip_exception_urls: Vec<String>,
}

impl ClientsHttp {
    /// Whether an outbound request to `url` may reach a private, loopback or reserved address.
    pub fn allows_private(&self, url: &str) -> bool {
        if !self.disallow_private_ip_ranges {
            return true;
        }
        let bare = url.split(['?', '#']).next().unwrap_or(url);
        self.private_ip_exception_urls.iter().any(|p| glob_match(p.as_bytes(), bare.as_bytes()))
    }
}

/// `*` matches any run without `.` or `/`, `**` any run at all; everything else literally.
fn glob_match(p: &[u8], s: &[u8]) -> bool {
    match p {
        [] => s.is_empty(),
        [b'*', b'*', rest @ ..] => (0..=s.len()).any(|i| glob_match(rest, &s[i..])),
        [b'*', rest @ ..] => {
            let run = s.iter().position(|b| *b == b'.' || *b == b'/').unwrap_or(s.len());
            (0..=run).any(|i| glob_match(rest, &s[i..]))
        }
        [c, rest @ ..] => s.first() == Some(c) && glob_match(rest, &s[1..]),
    }
}

/// A token hook (`oauth2.token_hook`, `oauth2.refresh_token_hook`): a URL, and optionally an API
/// key sent as a header or a cookie.
#[derive(Clone, PartialEq, Eq)]
pub struct Hook {
    pub url: String,
    pub api_key: Option<HookKey>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct HookKey {
    /// `in: header` (else `cookie`).
    pub in_header: bool,
    pub name: String,
    pub value: String,
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The API key is a secret.
        f.debug_struct("Hook").field("url", &self.url).field("api_key", &self.api_key.is_some()).finish()
    }
}

/// `engine.*`: the runtime and the embedded store.
#[derive(Debug, Clone)]
pub struct Engine {
    pub workers: usize,
    /// `engine.cpus`: the CPUs the workers are pinned to, in order (worker `i` on the `i`-th,
    /// round robin); `None`: the CPUs this process may run on.
    pub cpus: Option<Vec<usize>>,
    /// `engine.listen_backlog`: each listener's accept queue (the kernel caps it at
    /// `net.core.somaxconn`).
    pub listen_backlog: u32,
    pub partitions: u32,
    pub durability: Durability,
    pub driver: Driver,
    pub cache_bytes: usize,
    /// Write-ahead log size per database; 0 turns the log off.
    pub wal_bytes: u64,
    /// Per-request body limits.
    pub max_body_oauth: usize,
    pub max_body_admin: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// How often the background janitor walks the store (`engine.janitor.interval`; zero: never).
    pub janitor_interval: Duration,
    /// Rows the janitor reads per step (`engine.janitor.batch_size`); it pauses between steps.
    pub janitor_batch: usize,
    /// Wrong device user codes a node accepts per minute, over all challenges
    /// (`engine.device_user_code_failures_per_minute`).
    pub device_guesses_per_minute: u32,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach a log line.
        f.debug_struct("Config")
            .field("dev", &self.dev)
            .field("dsn", &self.dsn)
            .field("urls", &self.urls)
            .field("serve", &self.serve)
            .field("ttl", &self.ttl)
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

/// The default data directory for the embedded store.
pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("hydra-rs");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join(".local/share/hydra-rs");
    }
    PathBuf::from("hydra-data")
}

/// A CPU list as `taskset` and the kernel write them: `0-3,8,10-11` (each CPU once, below 4096).
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        let num = |x: &str| x.trim().parse::<usize>().ok().filter(|n| *n < 4096);
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (num(a), num(b)),
            None => (num(part), num(part)),
        };
        let (Some(a), Some(b)) = (a, b) else { return Err(format!("{part:?} is not a CPU or a range of CPUs")) };
        if a > b {
            return Err(format!("{part:?} is an empty range"));
        }
        for c in a..=b {
            if out.contains(&c) {
                return Err(format!("CPU {c} is listed twice"));
            }
            out.push(c);
        }
    }
    Ok(out)
}

/// `serve.cookies.*`. Outside `--dev` every cookie is `Secure` whatever `secure` says (as Hydra);
/// `SameSite=None` becomes `Lax` when the issuer is not https (as Hydra), since a browser refuses
/// `None` without `Secure` and a plain-http issuer cannot set `Secure` cookies that stick.
fn cookies(raw: &Raw, dev: bool, issuer: &str) -> Result<Cookies, ConfigError> {
    let mode = raw.str("serve.cookies.same_site_mode")?;
    let mut same_site = match mode.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("none") => SameSite::None,
        Some("lax") => SameSite::Lax,
        Some("strict") => SameSite::Strict,
        Some(_) => {
            return Err(err(
                "serve.cookies.same_site_mode",
                format!("must be Strict, Lax or None, got {:?}", mode.unwrap_or_default()),
            ))
        }
    };
    let secure = !dev || raw.bool("serve.cookies.secure")?.unwrap_or(false);
    if same_site == SameSite::None && (!secure || !issuer.starts_with("https://")) {
        same_site = SameSite::Lax;
    }
    let name = |k: &str, default: &str| -> Result<String, ConfigError> {
        let key = format!("serve.cookies.names.{k}");
        match raw.str(&key)? {
            None => Ok(default.to_string()),
            Some(v) if crate::http::is_token(&v) => Ok(v),
            Some(v) => Err(err(&key, format!("{v:?} is not a cookie name"))),
        }
    };
    let domain = match raw.str("serve.cookies.domain")?.filter(|d| !d.is_empty()) {
        None => None,
        Some(d) if d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') && !d.starts_with("..") => {
            Some(d)
        }
        Some(d) => return Err(err("serve.cookies.domain", format!("{d:?} is not a domain"))),
    };
    let session_path = match raw.str("serve.cookies.paths.session")? {
        None => "/".to_string(),
        Some(p) if p.starts_with('/') && !p.bytes().any(|b| b <= b' ' || b == b';' || b == 0x7f) => p,
        Some(p) => return Err(err("serve.cookies.paths.session", format!("{p:?} is not a cookie path"))),
    };
    Ok(Cookies {
        same_site,
        legacy_workaround: raw.bool("serve.cookies.same_site_legacy_workaround")?.unwrap_or(false),
        domain,
        secure,
        session_path,
        login_csrf: name("login_csrf", "ory_hydra_login_csrf")?,
        consent_csrf: name("consent_csrf", "ory_hydra_consent_csrf")?,
        device_csrf: name("device_csrf", "ory_hydra_device_csrf")?,
        session: name("session", "ory_hydra_session")?,
    })
}

/// `urls.identity_provider.headers`: an object of header names and values (from the
/// environment, that object as JSON).
fn idp_headers(raw: &Raw) -> Result<Vec<(String, String)>, ConfigError> {
    const K: &str = "urls.identity_provider.headers";
    let map = match raw.get(K) {
        None => return Ok(Vec::new()),
        Some(Value::Object(m)) => m.clone(),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => m,
            _ => return Err(err(K, "must be an object of header names and values")),
        },
        Some(_) => return Err(err(K, "must be an object of header names and values")),
    };
    let mut out = Vec::new();
    for (k, v) in map {
        let Value::String(v) = v else { return Err(err(K, format!("the value of {k:?} must be a string"))) };
        if !crate::http::is_token(&k) || v.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(err(K, format!("{k:?} is not a header with a printable value")));
        }
        out.push((k, v));
    }
    Ok(out)
}

/// A hook: a URL string, or `{url, auth: {type: api_key, config: {in, name, value}}}`.
fn hook(raw: &Raw, key: &str) -> Result<Option<Hook>, ConfigError> {
    let (url, auth) = match raw.get(key) {
        None => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => (s.trim().to_string(), None),
        Some(Value::Object(_)) => {
            let url = raw.str(&format!("{key}.url"))?.unwrap_or_default();
            (url.trim().to_string(), raw.get(&format!("{key}.auth")).map(|_| ()))
        }
        Some(_) => return Err(err(key, "must be a URL or an object with url and auth")),
    };
    // Operator-configured, often on the same host: plain http is allowed.
    let url = check_url(&format!("{key}.url"), &url, true)?;
    let api_key = match auth {
        None => None,
        Some(()) => {
            let k = |s: &str| format!("{key}.auth.{s}");
            match raw.str(&k("type"))?.as_deref() {
                Some("api_key") => {}
                other => return Err(err(&k("type"), format!("must be api_key, got {other:?}"))),
            }
            let in_header = match raw.str(&k("config.in"))?.as_deref() {
                Some("header") => true,
                Some("cookie") => false,
                other => return Err(err(&k("config.in"), format!("must be header or cookie, got {other:?}"))),
            };
            let name = raw.str(&k("config.name"))?.unwrap_or_default();
            if !crate::http::is_token(&name) {
                return Err(err(&k("config.name"), "must be a header or cookie name"));
            }
            let value = raw.str(&k("config.value"))?.unwrap_or_default();
            if value.is_empty() || value.bytes().any(|b| b < 0x20 || b == 0x7f || (!in_header && b";, \"".contains(&b)))
            {
                return Err(err(&k("config.value"), "must be a non-empty value without control characters"));
            }
            Some(HookKey { in_header, name, value })
        }
    };
    Ok(Some(Hook { url, api_key }))
}

/// `serve.<api>.cors.*`: `None` unless enabled.
fn cors_for(raw: &Raw, api: &str) -> Result<Option<crate::http::cors::Cors>, ConfigError> {
    let key = |k: &str| format!("serve.{api}.cors.{k}");
    if !raw.bool(&key("enabled"))?.unwrap_or(false) {
        return Ok(None);
    }
    let settings = crate::http::cors::Settings {
        allowed_origins: raw.list(&key("allowed_origins"))?.unwrap_or_default(),
        allowed_methods: raw.list(&key("allowed_methods"))?,
        allowed_headers: raw.list(&key("allowed_headers"))?,
        exposed_headers: raw.list(&key("exposed_headers"))?,
        allow_credentials: raw.bool(&key("allow_credentials"))?.unwrap_or(true),
        max_age: raw.int(&key("max_age"))?.unwrap_or(0),
        debug: raw.bool(&key("debug"))?.unwrap_or(false),
    };
    crate::http::cors::Cors::new(&settings).map(Some).map_err(|m| err(&format!("serve.{api}.cors"), m))
}

/// `oauth2.device_authorization.user_code`: a preset, or a length and an alphabet (Hydra's
/// schema allows one or the other).
fn user_code_policy(raw: &Raw) -> Result<crate::oauth2::device::UserCodePolicy, ConfigError> {
    use crate::oauth2::device::UserCodePolicy;
    const K: &str = "oauth2.device_authorization.user_code";
    let preset = raw.str(&format!("{K}.entropy_preset"))?;
    let length = raw.int(&format!("{K}.length"))?;
    let set = raw.str(&format!("{K}.character_set"))?;
    match (preset, length, set) {
        (None, None, None) => Ok(UserCodePolicy::default()),
        (Some(p), None, None) => UserCodePolicy::preset(&p)
            .ok_or_else(|| err(&format!("{K}.entropy_preset"), format!("must be high, medium or low, got {p:?}"))),
        (None, Some(n), Some(s)) => UserCodePolicy::custom(usize::try_from(n).unwrap_or(0), &s).map_err(|m| err(K, m)),
        (Some(_), _, _) => Err(err(K, "takes entropy_preset or length and character_set, not both")),
        _ => Err(err(K, "length and character_set go together")),
    }
}

fn strip_slash(s: &str) -> String {
    s.trim_end_matches('/').to_string()
}

impl Config {
    /// Loads files in order, then the environment (through `env`, injectable for tests).
    pub fn load(
        files: &[PathBuf],
        dev_flag: bool,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut raw = Raw { tree: Value::Object(Default::default()) };
        for f in files {
            merge(&mut raw.tree, read_file(f)?);
        }
        for (key, kind) in KEYS {
            if let Some(v) = env(&env_name(key)) {
                let value = match kind {
                    Kind::Str | Kind::Int | Kind::Bool | Kind::List => Value::String(v),
                };
                raw.set(key, value);
            }
        }
        // Hydra reads every key of its schema from the environment: one this server does not
        // implement must not be ignored silently either.
        for (key, _) in hydra_keys::HYDRA_KEYS {
            if key.ends_with(".*") || *key == "version" || implemented(key) {
                continue;
            }
            if let Some(v) = env(&env_name(key)) {
                raw.set(key, Value::String(v));
            }
        }
        check_keys(&raw.tree, "")?;
        Self::from_raw(&raw, dev_flag)
    }

    fn from_raw(raw: &Raw, dev_flag: bool) -> Result<Config, ConfigError> {
        let dev = dev_flag || raw.bool("dev")?.unwrap_or(false);
        let dsn = parse_dsn(raw.str("dsn")?.as_deref())?;
        let secrets_system = raw.list("secrets.system")?.unwrap_or_default();
        for (i, s) in secrets_system.iter().enumerate() {
            if s.len() < 16 {
                return Err(err("secrets.system", format!("entry {i} is shorter than 16 characters")));
            }
        }
        let secrets_cookie = raw.list("secrets.cookie")?.unwrap_or_default();
        for (i, s) in secrets_cookie.iter().enumerate() {
            if s.len() < 16 {
                return Err(err("secrets.cookie", format!("entry {i} is shorter than 16 characters")));
            }
        }
        if secrets_system.is_empty() && !dev {
            return Err(err(
                "secrets.system",
                "is required (at least 16 characters); set SECRETS_SYSTEM or run with --dev",
            ));
        }
        let port = |key: &str, default: u16| -> Result<u16, ConfigError> {
            match raw.int(key)? {
                None => Ok(default),
                Some(p) if (0..=65535).contains(&p) => Ok(p as u16),
                Some(p) => Err(err(key, format!("must be a port between 0 and 65535, got {p}"))),
            }
        };
        let default_host = if dev { "127.0.0.1" } else { "0.0.0.0" };
        let public = Listen {
            host: raw.str("serve.public.host")?.filter(|h| !h.is_empty()).unwrap_or_else(|| default_host.into()),
            port: port("serve.public.port", 4444)?,
        };
        let admin = Listen {
            host: raw.str("serve.admin.host")?.filter(|h| !h.is_empty()).unwrap_or_else(|| default_host.into()),
            port: port("serve.admin.port", 4445)?,
        };
        let loopback = |l: &Listen| {
            if l.host == "0.0.0.0" || l.host == "::" {
                format!("localhost:{}", l.port)
            } else {
                l.addr()
            }
        };
        let tls_public = tls_for(raw, "public")?;
        let tls_admin = tls_for(raw, "admin")?;
        let scheme = |tls: &Option<TlsFiles>| if tls.is_some() { "https" } else { "http" };
        let derived_urls = (
            raw.str("urls.self.issuer")?.is_none(),
            raw.str("urls.self.public")?.is_none(),
            raw.str("urls.self.admin")?.is_none(),
        );
        let issuer = match raw.str("urls.self.issuer")? {
            Some(s) => check_url("urls.self.issuer", &s, dev)?,
            None => format!("{}://{}/", scheme(&tls_public), loopback(&public)),
        };
        let public_url = match raw.str("urls.self.public")? {
            Some(s) => strip_slash(&check_url("urls.self.public", &s, dev)?),
            None => strip_slash(&issuer),
        };
        let admin_url = match raw.str("urls.self.admin")? {
            Some(s) => strip_slash(&check_url("urls.self.admin", &s, true)?),
            None => format!("{}://{}", scheme(&tls_admin), loopback(&admin)),
        };
        let scope_strategy = match raw.str("strategies.scope")?.as_deref() {
            None | Some("wildcard") => ScopeStrategy::Wildcard,
            Some("exact") => ScopeStrategy::Exact,
            Some(s) => return Err(err("strategies.scope", format!("must be wildcard or exact, got {s:?}"))),
        };
        let jwt_access_tokens = match raw.str("strategies.access_token")?.as_deref() {
            None | Some("opaque") => false,
            Some("jwt") => true,
            Some(s) => return Err(err("strategies.access_token", format!("must be opaque or jwt, got {s:?}"))),
        };
        let jwt_shaping = {
            use crate::oauth2::jwt_access_token::{ScopeClaim, Shaping};
            let scope_claim = match raw.str("strategies.jwt.scope_claim")? {
                None => ScopeClaim::List,
                Some(s) => ScopeClaim::parse(&s).ok_or_else(|| {
                    err("strategies.jwt.scope_claim", format!("must be list, string or both, got {s:?}"))
                })?,
            };
            Shaping {
                scope_claim,
                exclude_not_before: raw.bool("oauth2.exclude_not_before_claim")?.unwrap_or(false),
                allowed_top_level: raw.list("oauth2.allowed_top_level_claims")?.unwrap_or_default(),
                mirror_top_level: raw.bool("oauth2.mirror_top_level_claims")?.unwrap_or(true),
                preserve_ext: raw.bool("oauth2.preserve_ext_claims")?.unwrap_or(false),
            }
        };
        let bcrypt = match raw.str("oauth2.hashers.algorithm")?.as_deref() {
            None | Some("pbkdf2") => false,
            Some("bcrypt") => true,
            Some(s) => return Err(err("oauth2.hashers.algorithm", format!("must be pbkdf2 or bcrypt, got {s:?}"))),
        };
        let bcrypt_cost = match raw.int("oauth2.hashers.bcrypt.cost")? {
            None => 10,
            Some(n) if (4..=31).contains(&n) => n as u32,
            Some(n) => return Err(err("oauth2.hashers.bcrypt.cost", format!("must be between 4 and 31, got {n}"))),
        };
        let pbkdf2_iterations = match raw.int("oauth2.hashers.pbkdf2.iterations")? {
            None => crate::oauth2::hasher::DEFAULT_ITERATIONS,
            Some(n) if (1..=10_000_000).contains(&n) => n as u32,
            Some(n) => {
                return Err(err("oauth2.hashers.pbkdf2.iterations", format!("must be between 1 and 10000000, got {n}")))
            }
        };
        let ttl = |key: &str, d: Duration| raw.duration(key, d);
        let log_level = match raw.str("log.level")? {
            None => Level::Info,
            Some(s) => Level::parse(&s).ok_or_else(|| {
                err("log.level", format!("must be one of trace, debug, info, warn, error, fatal, panic; got {s:?}"))
            })?,
        };
        let log_format = match raw.str("log.format")?.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") | Some("json_pretty") => LogFormat::Json,
            Some(s) => return Err(err("log.format", format!("must be text or json, got {s:?}"))),
        };
        let cpus = match raw.str("engine.cpus")? {
            None => None,
            Some(s) if s.trim().is_empty() => None,
            Some(s) => Some(parse_cpu_list(&s).map_err(|m| err("engine.cpus", m))?),
        };
        let cores = match &cpus {
            Some(c) => c.len(),
            None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        };
        let workers = match raw.int("engine.workers")? {
            None | Some(0) => cores,
            Some(n) if (1..=1024).contains(&n) => n as usize,
            Some(n) => return Err(err("engine.workers", format!("must be between 1 and 1024, got {n}"))),
        };
        let partitions = match raw.int("engine.partitions")? {
            // One partition per worker is the fastest layout measured (see Worker::next_partition).
            None => (workers as u32).next_power_of_two().min(4096),
            Some(n) if n > 0 && n <= 4096 && (n as u64).is_power_of_two() => n as u32,
            Some(n) => {
                return Err(err("engine.partitions", format!("must be a power of two between 1 and 4096, got {n}")))
            }
        };
        let durability = match raw.str("engine.durability")?.as_deref() {
            None | Some("immediate") => Durability::Immediate,
            Some("none") => Durability::None,
            Some(s) => return Err(err("engine.durability", format!("must be immediate or none, got {s:?}"))),
        };
        let driver = match raw.str("engine.driver")?.as_deref() {
            None | Some("auto") => Driver::Auto,
            Some("io_uring") | Some("iouring") => Driver::IoUring,
            Some("legacy") | Some("epoll") => Driver::Legacy,
            Some(s) => return Err(err("engine.driver", format!("must be auto, io_uring or legacy, got {s:?}"))),
        };
        let cache_bytes = match raw.int("engine.cache_size_mb")? {
            None => 32 << 20,
            Some(n) if (1..=65536).contains(&n) => (n as usize) << 20,
            Some(n) => return Err(err("engine.cache_size_mb", format!("must be between 1 and 65536, got {n}"))),
        };
        let wal_bytes = match raw.int("engine.wal_size_mb")? {
            None => DEFAULT_WAL_BYTES,
            Some(n) if (0..=4096).contains(&n) => (n as u64) << 20,
            Some(n) => return Err(err("engine.wal_size_mb", format!("must be between 0 and 4096, got {n}"))),
        };
        let cookie_settings = cookies(raw, dev, &issuer)?;
        let default_scope = raw
            .list("oidc.dynamic_client_registration.default_scope")?
            .map(|v| v.join(" "))
            .unwrap_or_else(|| "offline_access offline openid".into());
        let subject_types =
            raw.list("oidc.subject_identifiers.supported_types")?.unwrap_or_else(|| vec!["public".into()]);
        for t in &subject_types {
            if t != "public" && t != "pairwise" {
                return Err(err("oidc.subject_identifiers.supported_types", format!("unknown subject type {t:?}")));
            }
        }
        // Pairwise subjects without a salt would be plain hashes anyone can recompute (Hydra's
        // schema requires the salt with `pairwise`).
        if subject_types.iter().any(|t| t == "pairwise")
            && raw.str("oidc.subject_identifiers.pairwise.salt")?.is_none_or(|s| s.is_empty())
        {
            return Err(err(
                "oidc.subject_identifiers.pairwise.salt",
                "is required when oidc.subject_identifiers.supported_types lists pairwise",
            ));
        }
        Ok(Config {
            dev,
            dsn,
            secrets: Secrets { system: secrets_system, cookie: secrets_cookie },
            urls: Urls {
                issuer,
                public: public_url,
                admin: admin_url,
                derived: derived_urls,
                login: flow_url(raw, "urls.login", "/oauth2/fallbacks/login", dev)?,
                consent: flow_url(raw, "urls.consent", "/oauth2/fallbacks/consent", dev)?,
                error: flow_url(raw, "urls.error", "/oauth2/fallbacks/error", dev)?,
                logout: flow_url(raw, "urls.logout", FALLBACK_LOGOUT, dev)?,
                post_logout_redirect: flow_url(
                    raw,
                    "urls.post_logout_redirect",
                    "/oauth2/fallbacks/logout/callback",
                    dev,
                )?,
                device_verification: flow_url(raw, "urls.device.verification", "/oauth2/fallbacks/device", dev)?,
                device_success: flow_url(raw, "urls.device.success", "/oauth2/fallbacks/device/done", dev)?,
                identity_provider: match raw.str("urls.identity_provider.url")?.filter(|u| !u.trim().is_empty()) {
                    // Operator-configured, often in-cluster: plain http is allowed.
                    Some(u) => Some(strip_slash(&check_url("urls.identity_provider.url", &u, true)?)),
                    None => None,
                },
                identity_provider_headers: idp_headers(raw)?,
            },
            serve: Serve {
                public,
                admin,
                tls_public,
                tls_admin,
                cookies: cookie_settings,
                quiet_health: (
                    raw.bool("serve.public.request_log.disable_for_health")?.unwrap_or(false),
                    raw.bool("serve.admin.request_log.disable_for_health")?.unwrap_or(false),
                ),
                cors_public: cors_for(raw, "public")?,
                cors_admin: cors_for(raw, "admin")?,
            },
            ttl: Ttl {
                access_token: ttl("ttl.access_token", Duration::from_secs(3600))?,
                refresh_token: ttl("ttl.refresh_token", Duration::from_secs(720 * 3600))?,
                id_token: ttl("ttl.id_token", Duration::from_secs(3600))?,
                auth_code: ttl("ttl.auth_code", Duration::from_secs(600))?,
                login_consent_request: ttl("ttl.login_consent_request", Duration::from_secs(1800))?,
                device_user_code: ttl("ttl.device_user_code", Duration::from_secs(600))?,
            },
            strategies: Strategies { scope: scope_strategy, jwt_access_tokens, jwt: jwt_shaping },
            oauth2: OAuth2 {
                pkce_enforced: raw.bool("oauth2.pkce.enforced")?.unwrap_or(false),
                pkce_enforced_for_public_clients: raw.bool("oauth2.pkce.enforced_for_public_clients")?.unwrap_or(false),
                pbkdf2_iterations,
                hasher: if bcrypt {
                    crate::oauth2::hasher::Hasher::Bcrypt { cost: bcrypt_cost }
                } else {
                    crate::oauth2::hasher::Hasher::Pbkdf2 { iterations: pbkdf2_iterations }
                },
                cc_default_grant_allowed_scope: raw
                    .bool("oauth2.client_credentials.default_grant_allowed_scope")?
                    .unwrap_or(false),
                expose_internal_errors: raw.bool("oauth2.expose_internal_errors")?.unwrap_or(false),
                jwt_grant: crate::oauth2::jwt_bearer::Policy {
                    iat_optional: raw.bool("oauth2.grant.jwt.iat_optional")?.unwrap_or(false),
                    jti_optional: raw.bool("oauth2.grant.jwt.jti_optional")?.unwrap_or(false),
                    max_ttl_secs: ttl("oauth2.grant.jwt.max_ttl", Duration::from_secs(720 * 3600))?.as_secs() as i64,
                },
                device_polling_interval: ttl(
                    "oauth2.device_authorization.token_polling_interval",
                    Duration::from_secs(5),
                )?,
                user_code: user_code_policy(raw)?,
                token_hook: hook(raw, "oauth2.token_hook")?,
                refresh_token_hook: hook(raw, "oauth2.refresh_token_hook")?,
                encrypt_at_rest: raw.bool("oauth2.session.encrypt_at_rest")?.unwrap_or(true),
            },
            oidc: Oidc {
                pairwise_salt: match raw.str("oidc.subject_identifiers.pairwise.salt")? {
                    Some(s) if s.len() < 8 => {
                        return Err(err("oidc.subject_identifiers.pairwise.salt", "must be at least 8 characters"))
                    }
                    Some(s) => s,
                    None => String::new(),
                },
                subject_types,
                default_client_scope: default_scope,
                dynamic_registration: raw.bool("oidc.dynamic_client_registration.enabled")?.unwrap_or(false),
                discovery_scopes: raw.list("webfinger.oidc_discovery.supported_scope")?.unwrap_or_default(),
                discovery_claims: raw.list("webfinger.oidc_discovery.supported_claims")?.unwrap_or_default(),
            },
            log: Log {
                level: log_level,
                format: log_format,
                leak_sensitive_values: raw.bool("log.leak_sensitive_values")?.unwrap_or(false),
                redaction_text: raw.str("log.redaction_text")?.unwrap_or_else(|| "[redacted]".into()),
            },
            clients_http: ClientsHttp {
                disallow_private_ip_ranges: raw.bool("clients.http.disallow_private_ip_ranges")?.unwrap_or(!dev),
                private_ip_exception_urls: raw.list("clients.http.private_ip_exception_urls")?.unwrap_or_default(),
            },
            engine: Engine {
                workers,
                cpus,
                listen_backlog: match raw.int("engine.listen_backlog")? {
                    None => 1024,
                    Some(n) if (1..=65535).contains(&n) => n as u32,
                    Some(n) => {
                        return Err(err("engine.listen_backlog", format!("must be between 1 and 65535, got {n}")))
                    }
                },
                partitions,
                durability,
                driver,
                cache_bytes,
                wal_bytes,
                max_body_oauth: 64 << 10,
                max_body_admin: 1 << 20,
                header_timeout: raw.duration("engine.header_timeout", Duration::from_secs(10))?,
                idle_timeout: raw.duration("engine.idle_timeout", Duration::from_secs(120))?,
                janitor_interval: raw.duration("engine.janitor.interval", Duration::from_secs(600))?,
                device_guesses_per_minute: match raw.int("engine.device_user_code_failures_per_minute")? {
                    None => 600,
                    Some(n) if (1..=1_000_000).contains(&n) => n as u32,
                    Some(n) => {
                        return Err(err(
                            "engine.device_user_code_failures_per_minute",
                            format!("must be between 1 and 1000000, got {n}"),
                        ))
                    }
                },
                janitor_batch: match raw.int("engine.janitor.batch_size")? {
                    None => 1000,
                    Some(n) if (1..=1_000_000).contains(&n) => n as usize,
                    Some(n) => {
                        return Err(err("engine.janitor.batch_size", format!("must be between 1 and 1000000, got {n}")))
                    }
                },
            },
        })
    }
}

impl Config {
    /// Replaces the URLs that were derived from the listeners with the addresses actually bound
    /// (port 0 resolves at bind time).
    pub fn adopt_bound(&mut self, public: Option<std::net::SocketAddr>, admin: Option<std::net::SocketAddr>) {
        let show = |a: std::net::SocketAddr| {
            if a.ip().is_unspecified() {
                format!("localhost:{}", a.port())
            } else {
                a.to_string()
            }
        };
        let (issuer, public_url, admin_url) = self.urls.derived;
        if let Some(p) = public {
            if issuer {
                let scheme = if self.serve.tls_public.is_some() { "https" } else { "http" };
                self.urls.issuer = format!("{scheme}://{}/", show(p));
                if public_url {
                    self.urls.public = strip_slash(&self.urls.issuer);
                }
            }
        }
        if let (Some(a), true) = (admin, admin_url) {
            let scheme = if self.serve.tls_admin.is_some() { "https" } else { "http" };
            self.urls.admin = format!("{scheme}://{}", show(a));
        }
    }
}

/// A DSN: empty → the default data directory, `memory`, `redb:///absolute/dir`, or
/// `postgres://…` ([`pg_dsn::parse`]). Hydra's other schemes are refused by name.
pub fn parse_dsn(s: Option<&str>) -> Result<Dsn, ConfigError> {
    Ok(match s.map(str::trim) {
        None | Some("") => Dsn::Redb(default_data_dir()),
        Some("memory") => Dsn::Memory,
        Some(s) if s.starts_with("redb://") => {
            let path = &s["redb://".len()..];
            if !path.starts_with('/') {
                return Err(err("dsn", "redb DSNs take an absolute directory: redb:///absolute/dir"));
            }
            Dsn::Redb(PathBuf::from(path))
        }
        Some(s) if s.starts_with("postgres://") || s.starts_with("postgresql://") => {
            Dsn::Postgres(Box::new(pg_dsn::parse(s).map_err(|e| err("dsn", e))?))
        }
        Some(s) => {
            let scheme = s.split("://").next().unwrap_or(s);
            if pg_dsn::is_unsupported_hydra_scheme(scheme) {
                return Err(err(
                    "dsn",
                    format!("{scheme} DSNs are not supported by this server: use postgres://, redb:///absolute/dir or memory"),
                ));
            }
            return Err(err(
                "dsn",
                format!("unsupported DSN scheme {scheme:?}: use postgres://, redb:///absolute/dir or memory"),
            ));
        }
    })
}

/// `urls.login` and friends: an absolute http(s) URL, or a path (kept as is and resolved against
/// the public URL when used, so it follows a port bound at start-up).
/// The built-in logout page (`urls.logout` unset): it asks the user and accepts by itself.
pub const FALLBACK_LOGOUT: &str = "/oauth2/fallbacks/logout";

fn flow_url(raw: &Raw, key: &str, default: &str, dev: bool) -> Result<String, ConfigError> {
    match raw.str(key)? {
        None => Ok(default.to_string()),
        Some(s) if s.starts_with('/') && !s.starts_with("//") => Ok(s),
        Some(s) => check_url(key, &s, dev),
    }
}

/// An absolute http(s) URL; plain http only in dev mode or on loopback. Returned trimmed.
fn check_url(key: &str, s: &str, allow_http: bool) -> Result<String, ConfigError> {
    let s = s.trim();
    let rest = if let Some(r) = s.strip_prefix("https://") {
        r
    } else if let Some(r) = s.strip_prefix("http://") {
        let host = if r.starts_with('[') {
            r.split_inclusive(']').next().unwrap_or("")
        } else {
            r.split(['/', ':', '?', '#']).next().unwrap_or("")
        };
        if !allow_http && !matches!(host, "localhost" | "127.0.0.1" | "[::1]") {
            return Err(err(key, "must use https outside --dev"));
        }
        r
    } else {
        return Err(err(key, format!("must be an absolute http(s) URL, got {s:?}")));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(err(key, format!("has no host: {s:?}")));
    }
    Ok(s.to_string())
}

/// A log level (`log.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
}

impl Level {
    /// Hydra's (logrus) level names; `fatal` and `panic` map to error.
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "trace" => Level::Trace,
            "debug" => Level::Debug,
            "info" => Level::Info,
            "warn" | "warning" => Level::Warn,
            "error" | "fatal" | "panic" => Level::Error,
            _ => return None,
        })
    }

    /// The name a log line carries.
    pub fn name(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warning",
            Level::Error => "error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(env: &[(&str, &str)], dev: bool) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::load(&[], dev, &move |k| map.get(k).cloned())
    }

    const SECRET: (&str, &str) = ("SECRETS_SYSTEM", "0123456789abcdef0123");

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,8, 10-11").unwrap(), vec![0, 1, 2, 3, 8, 10, 11]);
        for bad in ["", "a", "3-1", "1,1", "0-5000", "-1"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad}");
        }
        let c = load(&[SECRET, ("ENGINE_CPUS", "1,3")], false).unwrap();
        assert_eq!(c.engine.cpus, Some(vec![1, 3]));
        assert_eq!(c.engine.workers, 2, "one worker per chosen CPU unless engine.workers says");
        let c = load(&[SECRET, ("ENGINE_CPUS", "0"), ("ENGINE_WORKERS", "3")], false).unwrap();
        assert_eq!(c.engine.workers, 3);
        assert_eq!(load(&[SECRET, ("ENGINE_CPUS", "x")], false).unwrap_err().key, "engine.cpus");
        assert_eq!(load(&[SECRET, ("ENGINE_LISTEN_BACKLOG", "0")], false).unwrap_err().key, "engine.listen_backlog");
        assert_eq!(load(&[SECRET], false).unwrap().engine.listen_backlog, 1024);
    }

    #[test]
    fn device_settings() {
        let c = load(&[SECRET], false).unwrap();
        assert_eq!(c.ttl.device_user_code, Duration::from_secs(600));
        assert_eq!(c.oauth2.device_polling_interval, Duration::from_secs(5));
        assert_eq!(c.oauth2.user_code, crate::oauth2::device::UserCodePolicy::default());
        assert!(c.urls.device_verification.ends_with("/oauth2/fallbacks/device"));
        assert!(c.urls.device_success.ends_with("/oauth2/fallbacks/device/done"));
        let k = "OAUTH2_DEVICE_AUTHORIZATION_USER_CODE_";
        let low = load(&[SECRET, (&format!("{k}ENTROPY_PRESET"), "low")], false).unwrap();
        assert_eq!(low.oauth2.user_code.length, 9);
        let custom =
            load(&[SECRET, (&format!("{k}LENGTH"), "10"), (&format!("{k}CHARACTER_SET"), "ABCDEFGHJK")], false)
                .unwrap();
        assert_eq!(custom.oauth2.user_code.length, 10);
        for bad in [
            vec![(format!("{k}ENTROPY_PRESET"), "extreme")],
            vec![(format!("{k}LENGTH"), "10")],
            vec![(format!("{k}CHARACTER_SET"), "ABCDEFGHJK")],
            vec![(format!("{k}LENGTH"), "4"), (format!("{k}CHARACTER_SET"), "ABCDEFGHJK")],
            vec![(format!("{k}LENGTH"), "8"), (format!("{k}CHARACTER_SET"), "ABC")],
            vec![(format!("{k}ENTROPY_PRESET"), "low"), (format!("{k}LENGTH"), "8")],
        ] {
            let mut env: Vec<(&str, &str)> = bad.iter().map(|(a, b)| (a.as_str(), *b)).collect();
            env.push(SECRET);
            let e = load(&env, false).err().unwrap_or_else(|| panic!("{bad:?} was accepted"));
            assert!(e.key.starts_with("oauth2.device_authorization.user_code"), "{e}");
        }
        let e = load(&[SECRET, ("URLS_DEVICE_VERIFICATION", "ftp://x")], false).err().unwrap();
        assert_eq!(e.key, "urls.device.verification");
        let e = load(&[SECRET, ("OIDC_SUBJECT_IDENTIFIERS_SUPPORTED_TYPES", "public,pairwise")], false).err().unwrap();
        assert_eq!(e.key, "oidc.subject_identifiers.pairwise.salt");
    }

    #[test]
    fn session_claims_are_sealed_at_rest_unless_turned_off() {
        assert!(load(&[SECRET], false).unwrap().oauth2.encrypt_at_rest, "Hydra's default");
        let off = load(&[SECRET, ("OAUTH2_SESSION_ENCRYPT_AT_REST", "false")], false).unwrap();
        assert!(!off.oauth2.encrypt_at_rest);
        let e = load(&[SECRET, ("OAUTH2_SESSION_ENCRYPT_AT_REST", "sometimes")], false).err().unwrap();
        assert_eq!(e.key, "oauth2.session.encrypt_at_rest");
    }

    #[test]
    fn defaults() {
        let c = load(&[SECRET], false).unwrap();
        assert_eq!(c.serve.public.port, 4444);
        assert_eq!(c.serve.admin.port, 4445);
        assert_eq!(c.ttl.access_token, Duration::from_secs(3600));
        assert_eq!(c.strategies.scope, ScopeStrategy::Wildcard);
        assert_eq!(c.engine.durability, Durability::Immediate);
        assert_eq!(c.engine.wal_bytes, DEFAULT_WAL_BYTES);
        assert!(matches!(c.dsn, Dsn::Redb(_)));
        assert_eq!(c.oidc.default_client_scope, "offline_access offline openid");
        assert_eq!(
            (c.urls.logout.as_str(), c.urls.post_logout_redirect.as_str()),
            (FALLBACK_LOGOUT, "/oauth2/fallbacks/logout/callback")
        );
        let c = load(
            &[SECRET, ("URLS_LOGOUT", "https://app.example/logout"), ("URLS_POST_LOGOUT_REDIRECT", "/bye")],
            false,
        )
        .unwrap();
        assert_eq!(
            (c.urls.logout.as_str(), c.urls.post_logout_redirect.as_str()),
            ("https://app.example/logout", "/bye")
        );
        assert!(load(&[SECRET, ("URLS_LOGOUT", "http://app.example/logout")], false).is_err(), "https outside --dev");
        // The secret hasher.
        use crate::oauth2::hasher::Hasher;
        assert_eq!(load(&[SECRET], false).unwrap().oauth2.hasher, Hasher::Pbkdf2 { iterations: 25_000 });
        let c = load(&[SECRET, ("OAUTH2_HASHERS_ALGORITHM", "bcrypt")], false).unwrap();
        assert_eq!(c.oauth2.hasher, Hasher::Bcrypt { cost: 10 });
        let c = load(&[SECRET, ("OAUTH2_HASHERS_ALGORITHM", "bcrypt"), ("OAUTH2_HASHERS_BCRYPT_COST", "12")], false);
        assert_eq!(c.unwrap().oauth2.hasher, Hasher::Bcrypt { cost: 12 });
        for (k, v) in [
            ("OAUTH2_HASHERS_BCRYPT_COST", "3"),
            ("OAUTH2_HASHERS_BCRYPT_COST", "32"),
            ("OAUTH2_HASHERS_ALGORITHM", "md5"),
        ] {
            assert!(load(&[SECRET, (k, v)], false).is_err(), "{k}={v}");
        }
    }

    #[test]
    fn env_overrides_and_lists() {
        let c = load(
            &[
                ("SECRETS_SYSTEM", "new-secret-0123456789, old-secret-0123456789"),
                ("DSN", "memory"),
                ("SERVE_PUBLIC_PORT", "9000"),
                ("TTL_ACCESS_TOKEN", "30m"),
                ("STRATEGIES_SCOPE", "exact"),
                ("URLS_SELF_ISSUER", "https://auth.example.com/"),
                ("OAUTH2_CLIENT_CREDENTIALS_DEFAULT_GRANT_ALLOWED_SCOPE", "true"),
                ("ENGINE_WORKERS", "3"),
                ("ENGINE_DURABILITY", "none"),
                ("ENGINE_WAL_SIZE_MB", "0"),
                ("LOG_FORMAT", "json"),
            ],
            false,
        )
        .unwrap();
        assert_eq!(c.secrets.system, vec!["new-secret-0123456789", "old-secret-0123456789"]);
        assert_eq!(c.dsn, Dsn::Memory);
        assert_eq!(c.serve.public.port, 9000);
        assert_eq!(c.ttl.access_token, Duration::from_secs(1800));
        assert_eq!(c.strategies.scope, ScopeStrategy::Exact);
        assert_eq!(c.urls.issuer, "https://auth.example.com/");
        assert_eq!(c.urls.public, "https://auth.example.com");
        assert!(c.oauth2.cc_default_grant_allowed_scope);
        assert_eq!(c.engine.workers, 3);
        assert_eq!(c.engine.durability, Durability::None);
        assert_eq!(c.engine.wal_bytes, 0);
        assert_eq!(c.log.format, LogFormat::Json);
    }

    #[test]
    fn postgres_dsns_parse_into_their_options() {
        let Dsn::Postgres(d) =
            parse_dsn(Some(" postgres://hydra:secret@db:5432/hydra?sslmode=disable&max_conns=8 ")).unwrap()
        else {
            panic!("not a PostgreSQL DSN")
        };
        assert_eq!((d.host.as_str(), d.port, d.max_conns), ("db", 5432, Some(8)));
        assert_eq!(d.sslmode, pg_dsn::SslMode::Disable);
        let e = parse_dsn(Some("cockroach://u@h/d")).unwrap_err();
        assert!(e.to_string().contains("cockroach DSNs are not supported"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "secrets.system"),
            (&[("SECRETS_SYSTEM", "short")], "secrets.system"),
            (&[SECRET, ("SERVE_PUBLIC_PORT", "70000")], "serve.public.port"),
            (&[SECRET, ("SERVE_ADMIN_PORT", "abc")], "serve.admin.port"),
            (&[SECRET, ("TTL_ACCESS_TOKEN", "1 hour")], "ttl.access_token"),
            (&[SECRET, ("STRATEGIES_SCOPE", "fuzzy")], "strategies.scope"),
            (&[SECRET, ("DSN", "postgres://x")], "dsn"),
            (&[SECRET, ("DSN", "mysql://u@h/d")], "dsn"),
            (&[SECRET, ("DSN", "postgres://u@h/d?sslmode=prefer")], "dsn"),
            (&[SECRET, ("DSN", "redb://relative")], "dsn"),
            (&[SECRET, ("ENGINE_PARTITIONS", "3")], "engine.partitions"),
            (&[SECRET, ("ENGINE_WAL_SIZE_MB", "-1")], "engine.wal_size_mb"),
            (&[SECRET, ("LOG_LEVEL", "loud")], "log.level"),
            (&[SECRET, ("URLS_SELF_ISSUER", "http://auth.example.com")], "urls.self.issuer"),
        ];
        for (env, key) in cases {
            let e = load(env, false).err().unwrap_or_else(|| panic!("{key} should fail"));
            assert_eq!(&e.key, key, "{e}");
            assert!(e.to_string().starts_with("invalid configuration: "));
        }
    }

    #[test]
    fn derived_urls_follow_the_bound_ports_but_configured_ones_stay() {
        let mut c = load(&[SECRET, ("SERVE_PUBLIC_PORT", "0"), ("SERVE_ADMIN_PORT", "0")], false).unwrap();
        let public: std::net::SocketAddr = "0.0.0.0:41234".parse().unwrap();
        let admin: std::net::SocketAddr = "127.0.0.1:41235".parse().unwrap();
        c.adopt_bound(Some(public), Some(admin));
        assert_eq!(c.urls.issuer, "http://localhost:41234/");
        assert_eq!(c.urls.public, "http://localhost:41234");
        assert_eq!(c.urls.admin, "http://127.0.0.1:41235");
        let mut c = load(&[SECRET, ("URLS_SELF_ISSUER", "https://auth.example.com/")], false).unwrap();
        c.adopt_bound(Some(public), Some(admin));
        assert_eq!(c.urls.issuer, "https://auth.example.com/", "a configured issuer is kept byte for byte");
        assert_eq!(c.urls.public, "https://auth.example.com");
    }

    #[test]
    fn dev_allows_missing_secret_and_http_issuer() {
        let c = load(&[("URLS_SELF_ISSUER", "http://auth.example.com")], true).unwrap();
        assert!(c.secrets.system.is_empty());
        assert!(c.dev);
    }

    #[test]
    fn yaml_file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.yml");
        std::fs::write(
            &p,
            "dsn: memory\nsecrets:\n  system:\n    - file-secret-0123456789\nserve:\n  public:\n    port: 5555\nttl:\n  access_token: 2h\n",
        )
        .unwrap();
        let c = Config::load(std::slice::from_ref(&p), false, &|k| (k == "SERVE_PUBLIC_PORT").then(|| "6666".into()))
            .unwrap();
        assert_eq!(c.serve.public.port, 6666, "env wins over file");
        assert_eq!(c.ttl.access_token, Duration::from_secs(7200));
        assert_eq!(c.secrets.system, vec!["file-secret-0123456789"]);
        std::fs::write(&p, "serve: [1, 2]\nsecrets: {system: [file-secret-0123456789]}\n").unwrap();
        assert_eq!(Config::load(std::slice::from_ref(&p), false, &|_| None).unwrap_err().key, "serve");
        let j = dir.path().join("c.json");
        std::fs::write(&j, "{\"dsn\": \"memory\", \"secrets\": {\"system\": [\"json-secret-0123456789\"]}}").unwrap();
        assert_eq!(Config::load(&[j], false, &|_| None).unwrap().dsn, Dsn::Memory);
    }

    #[test]
    fn unknown_and_unimplemented_keys_stop_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.yml");
        let load_file = |text: &str, env: &[(&str, &str)]| {
            std::fs::write(&p, format!("secrets: {{system: [file-secret-0123456789]}}\n{text}")).unwrap();
            let map: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            Config::load(std::slice::from_ref(&p), false, &move |k| map.get(k).cloned())
        };
        // A typo, a key of nobody's, a key under a known section.
        for (text, key) in [
            ("serve:\n  public:\n    prot: 4444\n", "serve.public.prot"),
            ("colour: blue\n", "colour"),
            ("ttl:\n  acess_token: 1h\n", "ttl.acess_token"),
            ("engine:\n  wokers: 2\n", "engine.wokers"),
        ] {
            let e = load_file(text, &[]).unwrap_err();
            assert_eq!(e.key, key, "{e}");
            assert!(e.to_string().contains("unknown key"), "{e}");
        }
        // Hydra keys not built here: refused unless at Hydra's default.
        for (text, key) in [
            ("urls:\n  registration: https://app.example/signup\n", "urls.registration"),
            ("hsm:\n  enabled: true\n", "hsm.enabled"),
            (
                "serve:\n  public:\n    cors:\n      options_passthrough: true\n",
                "serve.public.cors.options_passthrough",
            ),
            ("ttl:\n  authentication_session: 1h\n", "ttl.authentication_session"),
        ] {
            let e = load_file(text, &[]).unwrap_err();
            assert_eq!(e.key, key, "{e}");
            assert!(e.to_string().contains("not supported yet"), "{e}");
        }
        for text in [
            "serve:\n  public:\n    cors:\n      enabled: false\n",
            "ttl:\n  authentication_session: 720h\n",
            "webfinger:\n  jwks:\n    broadcast_keys: [hydra.openid.id-token]\n",
            "sqa:\n  opt_out: true\n",
            "version: v26.2.0\n",
            "serve:\n  public:\n    port: 4444\n    tls:\n      enabled: false\n",
        ] {
            assert!(load_file(text, &[]).is_ok(), "{text}");
        }
        // The environment counts as Hydra reads it.
        let e = load_file("", &[("HSM_ENABLED", "true")]).unwrap_err();
        assert_eq!(e.key, "hsm.enabled");
        assert!(load_file("", &[("SERVE_PUBLIC_CORS_ENABLED", "false")]).is_ok());
        assert!(load_file("", &[("WEBFINGER_JWKS_BROADCAST_KEYS", "hydra.openid.id-token")]).is_ok());
        assert!(load_file("", &[("SERVE_PUBLIC_CORS_OPTIONS_PASSTHROUGH", "true")]).is_err());
    }

    #[test]
    fn every_key_of_hydras_schema_has_a_row_in_compat_md() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/compat.md")).unwrap();
        let start = doc.find("## Every key of Hydra's configuration").expect("the key table in docs/compat.md");
        let table = &doc[start..];
        let missing: Vec<&str> =
            hydra_keys::HYDRA_KEYS.iter().map(|(k, _)| *k).filter(|k| !table.contains(&format!("| `{k}` |"))).collect();
        assert!(missing.is_empty(), "keys without a row in docs/compat.md: {missing:?}");
        // A key this server reads is never listed as refused.
        for (k, _) in KEYS {
            let row = table.lines().find(|l| l.starts_with(&format!("| `{k}` |")));
            if let Some(row) = row {
                assert!(!row.contains("refused at start-up unless"), "{k} is implemented but listed as refused: {row}");
            }
        }
    }

    #[test]
    fn hook_settings() {
        let c = load(&[SECRET, ("OAUTH2_TOKEN_HOOK", "https://hook.example/token")], false).unwrap();
        let h = c.oauth2.token_hook.unwrap();
        assert_eq!(h.url, "https://hook.example/token");
        assert!(h.api_key.is_none() && c.oauth2.refresh_token_hook.is_none());
        assert!(!format!("{h:?}").contains("secret"));
        let file = "oauth2:\n  refresh_token_hook:\n    url: http://10.0.0.5/hook\n    auth:\n      type: api_key\n      config:\n        in: cookie\n        name: k\n        value: s3cret\n";
        let path = std::env::temp_dir().join(format!("hook-{}.yaml", std::process::id()));
        std::fs::write(&path, file).unwrap();
        let c = Config::load(std::slice::from_ref(&path), false, &|k| {
            (k == "SECRETS_SYSTEM").then(|| SECRET.1.to_string())
        })
        .unwrap();
        std::fs::remove_file(&path).ok();
        let h = c.oauth2.refresh_token_hook.unwrap();
        assert_eq!(h.url, "http://10.0.0.5/hook", "plain http is allowed for an operator's hook");
        let k = h.api_key.unwrap();
        assert!(!k.in_header && k.name == "k" && k.value == "s3cret");
        assert!(!format!("{:?}", c.oauth2.token_hook).contains("s3cret"));
        let e = load(&[SECRET, ("OAUTH2_TOKEN_HOOK", "not a url")], false).unwrap_err();
        assert_eq!(e.key, "oauth2.token_hook.url");
        // Exceptions to the private-address rule, Hydra's globs.
        let c = load(
            &[SECRET, ("CLIENTS_HTTP_PRIVATE_IP_EXCEPTION_URLS", "http://10.0.0.5/*,https://*.internal/**")],
            false,
        )
        .unwrap();
        let h = &c.clients_http;
        assert!(h.allows_private("http://10.0.0.5/hook?x=1"));
        assert!(!h.allows_private("http://10.0.0.5/hook/deeper"));
        assert!(h.allows_private("https://a.internal/x/y"));
        assert!(!h.allows_private("https://a.b.internal/x"));
        assert!(!h.allows_private("http://10.0.0.6/hook"));
        assert!(load(&[SECRET], true).unwrap().clients_http.allows_private("http://anything/"));
    }

    #[test]
    fn cors_settings() {
        let c = load(&[SECRET], false).unwrap();
        assert!(c.serve.cors_public.is_none() && c.serve.cors_admin.is_none());
        let c = load(
            &[
                SECRET,
                ("SERVE_PUBLIC_CORS_ENABLED", "true"),
                ("SERVE_PUBLIC_CORS_ALLOWED_ORIGINS", "https://app.example,https://*.example.org"),
                ("SERVE_PUBLIC_CORS_MAX_AGE", "60"),
                ("SERVE_ADMIN_CORS_ENABLED", "true"),
            ],
            false,
        )
        .unwrap();
        let p = c.serve.cors_public.unwrap();
        assert_eq!(p.origins.len(), 2);
        assert!(!p.any_origin && p.allow_credentials && p.max_age == 60);
        assert!(c.serve.cors_admin.unwrap().any_origin, "no origins listed: every origin, as Hydra");
        for (k, v) in [
            ("SERVE_PUBLIC_CORS_ALLOWED_ORIGINS", "https://*.com"),
            ("SERVE_PUBLIC_CORS_ALLOWED_METHODS", "GET,FETCH"),
            ("SERVE_PUBLIC_CORS_MAX_AGE", "-5"),
        ] {
            let e = load(&[SECRET, ("SERVE_PUBLIC_CORS_ENABLED", "true"), (k, v)], false).unwrap_err();
            assert_eq!(e.key, "serve.public.cors", "{e}");
        }
    }
}
