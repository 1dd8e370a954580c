//! Configuration with Hydra's keys and conventions: schema defaults, then config files
//! (`-c`, YAML or JSON), then environment variables named after the key path (upper-cased,
//! `.` → `_`, lists comma-separated).
//!
//! Invariant: every value is validated here, once; a bad value is a [`ConfigError`] naming the
//! key, and the rest of the server only sees typed, checked settings. Project-specific keys live
//! under `engine.*` (env `ENGINE_*`).

mod hydra_keys;

use crate::duration::parse_go_duration;
use crate::oauth2::scope::ScopeStrategy;
use serde_json::Value;
use std::path::{Path, PathBuf};
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

/// Validated settings.
#[derive(Clone)]
pub struct Config {
    pub dev: bool,
    pub dsn: Dsn,
    /// `secrets.system`; empty only in `--dev` before the server generates one.
    pub secrets_system: Vec<String>,
    /// `urls.self.issuer` exactly as configured (relying parties compare it byte for byte).
    pub issuer: String,
    /// Public base URL without a trailing slash.
    pub public_url: String,
    /// Admin base URL without a trailing slash.
    pub admin_url: String,
    /// Which of issuer / public / admin URLs were derived from the listeners (not configured),
    /// so the server can correct them once port 0 has resolved.
    pub derived_urls: (bool, bool, bool),
    pub public: Listen,
    pub admin: Listen,
    pub ttl_access_token: Duration,
    pub ttl_refresh_token: Duration,
    pub ttl_id_token: Duration,
    pub ttl_auth_code: Duration,
    pub ttl_login_consent_request: Duration,
    /// `urls.login`, `urls.consent`, `urls.error`: absolute, or paths on the public URL.
    pub url_login: String,
    pub url_consent: String,
    pub url_error: String,
    pub pkce_enforced: bool,
    pub pkce_enforced_for_public_clients: bool,
    /// `oidc.subject_identifiers.pairwise.salt`.
    pub pairwise_salt: String,
    /// `webfinger.oidc_discovery.supported_scope` and `.supported_claims`: added to discovery.
    pub discovery_scopes: Vec<String>,
    pub discovery_claims: Vec<String>,
    pub scope_strategy: ScopeStrategy,
    pub pbkdf2_iterations: u32,
    pub cc_default_grant_allowed_scope: bool,
    pub expose_internal_errors: bool,
    pub default_client_scope: String,
    pub subject_types: Vec<String>,
    pub log_level: Level,
    pub log_format: LogFormat,
    pub leak_sensitive_values: bool,
    pub workers: usize,
    pub partitions: u32,
    pub durability: Durability,
    pub driver: Driver,
    pub cache_bytes: usize,
    /// Write-ahead log size per database; 0 turns the log off.
    pub wal_bytes: u64,
    /// Per-connection limits.
    pub max_body_oauth: usize,
    pub max_body_admin: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// Outbound requests (sector identifier documents) refuse private, loopback and reserved
    /// addresses (`clients.http.disallow_private_ip_ranges`; default on, off with `--dev`).
    pub disallow_private_ip_ranges: bool,
    /// How often the background janitor walks the store (`engine.janitor.interval`; zero: never).
    pub janitor_interval: Duration,
    /// Rows the janitor reads per step (`engine.janitor.batch_size`); it pauses between steps.
    pub janitor_batch: usize,
    /// TLS of the public listener (`serve.public.tls` over `serve.tls`); `None`: plain HTTP.
    pub tls_public: Option<TlsFiles>,
    /// TLS of the admin listener (`serve.admin.tls` over `serve.tls`).
    pub tls_admin: Option<TlsFiles>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach a log line.
        f.debug_struct("Config")
            .field("dev", &self.dev)
            .field("dsn", &self.dsn)
            .field("issuer", &self.issuer)
            .field("public", &self.public)
            .field("admin", &self.admin)
            .field("workers", &self.workers)
            .field("partitions", &self.partitions)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
    List,
}

/// Every key read from files and the environment, with how an environment value is parsed.
const KEYS: &[(&str, Kind)] = &[
    ("dsn", Kind::Str),
    ("dev", Kind::Bool),
    ("secrets.system", Kind::List),
    ("urls.self.issuer", Kind::Str),
    ("urls.self.public", Kind::Str),
    ("urls.self.admin", Kind::Str),
    ("serve.public.host", Kind::Str),
    ("serve.public.port", Kind::Int),
    ("serve.admin.host", Kind::Str),
    ("serve.admin.port", Kind::Int),
    ("ttl.access_token", Kind::Str),
    ("ttl.refresh_token", Kind::Str),
    ("ttl.id_token", Kind::Str),
    ("ttl.auth_code", Kind::Str),
    ("ttl.login_consent_request", Kind::Str),
    ("urls.login", Kind::Str),
    ("urls.consent", Kind::Str),
    ("urls.error", Kind::Str),
    ("oauth2.pkce.enforced", Kind::Bool),
    ("oauth2.pkce.enforced_for_public_clients", Kind::Bool),
    ("oidc.subject_identifiers.pairwise.salt", Kind::Str),
    ("webfinger.oidc_discovery.supported_scope", Kind::List),
    ("webfinger.oidc_discovery.supported_claims", Kind::List),
    ("strategies.scope", Kind::Str),
    ("strategies.access_token", Kind::Str),
    ("oauth2.hashers.algorithm", Kind::Str),
    ("oauth2.hashers.pbkdf2.iterations", Kind::Int),
    ("oauth2.client_credentials.default_grant_allowed_scope", Kind::Bool),
    ("oauth2.expose_internal_errors", Kind::Bool),
    ("oidc.dynamic_client_registration.default_scope", Kind::List),
    ("oidc.subject_identifiers.supported_types", Kind::List),
    ("log.level", Kind::Str),
    ("log.format", Kind::Str),
    ("log.leak_sensitive_values", Kind::Bool),
    ("engine.workers", Kind::Int),
    ("engine.partitions", Kind::Int),
    ("engine.durability", Kind::Str),
    ("engine.driver", Kind::Str),
    ("engine.cache_size_mb", Kind::Int),
    ("engine.wal_size_mb", Kind::Int),
    ("engine.header_timeout", Kind::Str),
    ("engine.idle_timeout", Kind::Str),
    ("clients.http.disallow_private_ip_ranges", Kind::Bool),
    ("engine.janitor.interval", Kind::Str),
    ("engine.janitor.batch_size", Kind::Int),
    ("serve.tls.enabled", Kind::Bool),
    ("serve.tls.cert.path", Kind::Str),
    ("serve.tls.cert.base64", Kind::Str),
    ("serve.tls.key.path", Kind::Str),
    ("serve.tls.key.base64", Kind::Str),
    ("serve.public.tls.enabled", Kind::Bool),
    ("serve.public.tls.cert.path", Kind::Str),
    ("serve.public.tls.cert.base64", Kind::Str),
    ("serve.public.tls.key.path", Kind::Str),
    ("serve.public.tls.key.base64", Kind::Str),
    ("serve.admin.tls.enabled", Kind::Bool),
    ("serve.admin.tls.cert.path", Kind::Str),
    ("serve.admin.tls.cert.base64", Kind::Str),
    ("serve.admin.tls.key.path", Kind::Str),
    ("serve.admin.tls.key.base64", Kind::Str),
];

fn implemented(key: &str) -> bool {
    KEYS.iter().any(|(k, _)| *k == key)
}

fn hydra_default(key: &str) -> Option<Option<&'static str>> {
    hydra_keys::HYDRA_KEYS.iter().find(|(k, _)| *k == key).map(|(_, d)| *d)
}

/// Whether any known key lies below `path` (so an object there is walked, not judged whole).
fn has_children(path: &str) -> bool {
    let below = |k: &str| k.len() > path.len() && k.starts_with(path) && k.as_bytes()[path.len()] == b'.';
    KEYS.iter().any(|(k, _)| below(k)) || hydra_keys::HYDRA_KEYS.iter().any(|(k, _)| below(k))
}

/// Whether a value equals Hydra's default (a value from the environment is a string: compared
/// with the default's text, lists comma-separated).
fn is_default(value: &Value, default: &str) -> bool {
    let Ok(d) = serde_json::from_str::<Value>(default) else { return false };
    if *value == d {
        return true;
    }
    match (value, &d) {
        (Value::String(s), Value::String(ds)) => s.trim() == ds,
        (Value::String(s), Value::Array(items)) => {
            let given: Vec<&str> = s.split(',').map(str::trim).filter(|x| !x.is_empty()).collect();
            given.len() == items.len() && given.iter().zip(items).all(|(g, i)| i.as_str() == Some(g))
        }
        (Value::String(s), Value::Bool(_) | Value::Number(_)) => s.trim().eq_ignore_ascii_case(&d.to_string()),
        _ => false,
    }
}

/// Refuses, with one line naming the key, a key neither Hydra nor this server knows (Hydra's
/// schema has `additionalProperties: false`), and a key Hydra knows that this server does not
/// implement yet unless it holds Hydra's default.
fn check_keys(node: &Value, path: &str) -> Result<(), ConfigError> {
    if node.is_null() || (!path.is_empty() && implemented(path)) || path == "version" {
        return Ok(());
    }
    if let Value::Object(map) = node {
        if path.is_empty() || has_children(path) {
            for (k, v) in map {
                let child = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                check_keys(v, &child)?;
            }
            return Ok(());
        }
    }
    // Open maps of Hydra's (`sqa.*`: telemetry, which this server never sends; `feature_flags.*`).
    let open = hydra_keys::HYDRA_KEYS
        .iter()
        .any(|(k, _)| k.strip_suffix(".*").is_some_and(|p| path.starts_with(p) && path[p.len()..].starts_with('.')));
    if open {
        return Ok(());
    }
    match hydra_default(path) {
        Some(Some(d)) if is_default(node, d) => Ok(()),
        Some(_) => Err(err(path, "is not supported yet by this server (only Hydra's default value is accepted)")),
        None => Err(err(path, "is not a configuration key (unknown key)")),
    }
}

/// Where a PEM document comes from (Hydra's `path` or `base64` source).
#[derive(Clone, PartialEq, Eq)]
pub enum PemSource {
    Path(PathBuf),
    /// The base64 of the PEM text, as configured.
    Base64(String),
}

impl std::fmt::Debug for PemSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PemSource::Path(p) => write!(f, "Path({})", p.display()),
            // The key may be inline: never print it.
            PemSource::Base64(_) => f.write_str("Base64(..)"),
        }
    }
}

/// A listener's certificate chain and private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PemSource,
    pub key: PemSource,
}

/// One listener's TLS settings: its own `serve.<api>.tls` block, each part falling back to the
/// shared `serve.tls`. TLS is on when `enabled` says so, or, unset, when a certificate and key
/// are given; on without both is an error.
fn tls_for(raw: &Raw, api: &str) -> Result<Option<TlsFiles>, ConfigError> {
    let own = format!("serve.{api}.tls");
    let pick = |part: &str| -> Result<Option<(String, PemSource)>, ConfigError> {
        for base in [own.as_str(), "serve.tls"] {
            let path = raw.str(&format!("{base}.{part}.path"))?;
            let b64 = raw.str(&format!("{base}.{part}.base64"))?;
            match (path, b64) {
                (Some(_), Some(_)) => {
                    return Err(err(&format!("{base}.{part}"), "give either path or base64, not both"))
                }
                (Some(p), None) => return Ok(Some((base.to_string(), PemSource::Path(PathBuf::from(p))))),
                (None, Some(b)) => return Ok(Some((base.to_string(), PemSource::Base64(b)))),
                (None, None) => {}
            }
        }
        Ok(None)
    };
    let enabled = match raw.bool(&format!("{own}.enabled"))? {
        Some(b) => Some(b),
        None => raw.bool("serve.tls.enabled")?,
    };
    let (cert, key) = (pick("cert")?, pick("key")?);
    match (enabled, cert, key) {
        (Some(false), _, _) | (None, None, None) => Ok(None),
        (_, Some((_, cert)), Some((_, key))) => Ok(Some(TlsFiles { cert, key })),
        (_, Some((base, _)), None) => Err(err(&format!("{base}.key"), "a certificate needs its private key")),
        (_, None, Some((base, _))) => Err(err(&format!("{base}.cert"), "a private key needs its certificate")),
        (Some(true), None, None) => Err(err(&format!("{own}.enabled"), "TLS is enabled but no certificate is set")),
    }
}

/// The environment variable for a key path: `serve.public.port` → `SERVE_PUBLIC_PORT`.
pub fn env_name(key: &str) -> String {
    key.to_ascii_uppercase().replace('.', "_")
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

/// The raw tree: files merged, then environment overrides.
struct Raw {
    tree: Value,
}

impl Raw {
    fn get(&self, key: &str) -> Option<&Value> {
        let mut v = &self.tree;
        for part in key.split('.') {
            v = v.get(part)?;
        }
        if v.is_null() {
            None
        } else {
            Some(v)
        }
    }

    fn set(&mut self, key: &str, value: Value) {
        let mut v = &mut self.tree;
        for part in key.split('.') {
            if !v.is_object() {
                *v = Value::Object(Default::default());
            }
            let Value::Object(map) = v else { return };
            v = map.entry(part.to_string()).or_insert(Value::Null);
        }
        *v = value;
    }

    fn str(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(err(key, "must be a string")),
        }
    }

    fn int(&self, key: &str) -> Result<Option<i64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| err(key, "must be an integer")),
            Some(Value::String(s)) => {
                s.trim().parse().map(Some).map_err(|_| err(key, format!("must be an integer, got {s:?}")))
            }
            Some(_) => Err(err(key, "must be an integer")),
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(Some(true)),
                "false" | "0" | "no" | "" => Ok(Some(false)),
                _ => Err(err(key, format!("must be true or false, got {s:?}"))),
            },
            Some(_) => Err(err(key, "must be a boolean")),
        }
    }

    fn list(&self, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or_else(|| err(key, "must be a list of strings")))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(Value::String(s)) => {
                Ok(Some(s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect()))
            }
            Some(_) => Err(err(key, "must be a list of strings")),
        }
    }

    fn duration(&self, key: &str, default: Duration) -> Result<Duration, ConfigError> {
        match self.str(key)? {
            None => Ok(default),
            Some(s) => parse_go_duration(s.trim())
                .ok_or_else(|| err(key, format!("must be a duration such as 1h or 30m, got {s:?}"))),
        }
    }
}

fn read_file(path: &Path) -> Result<Value, ConfigError> {
    let key = format!("--config {}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| err(&key, e.to_string()))?;
    let is_json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let v: Value = if is_json {
        serde_json::from_str(&text).map_err(|e| err(&key, e.to_string()))?
    } else {
        serde_yaml_ng::from_str(&text).map_err(|e| err(&key, e.to_string()))?
    };
    match v {
        Value::Object(_) => Ok(v),
        Value::Null => Ok(Value::Object(Default::default())),
        _ => Err(err(&key, "the file must hold a mapping of keys")),
    }
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
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
        match raw.str("strategies.access_token")?.as_deref() {
            None | Some("opaque") => {}
            Some("jwt") => {
                return Err(err("strategies.access_token", "jwt access tokens are not supported yet; use opaque"))
            }
            Some(s) => return Err(err("strategies.access_token", format!("must be opaque or jwt, got {s:?}"))),
        }
        match raw.str("oauth2.hashers.algorithm")?.as_deref() {
            None | Some("pbkdf2") => {}
            Some("bcrypt") => return Err(err("oauth2.hashers.algorithm", "bcrypt is not supported yet; use pbkdf2")),
            Some(s) => return Err(err("oauth2.hashers.algorithm", format!("must be pbkdf2 or bcrypt, got {s:?}"))),
        }
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
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
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
        Ok(Config {
            dev,
            dsn,
            secrets_system,
            issuer,
            public_url,
            derived_urls,
            admin_url,
            public,
            admin,
            ttl_access_token: ttl("ttl.access_token", Duration::from_secs(3600))?,
            ttl_refresh_token: ttl("ttl.refresh_token", Duration::from_secs(720 * 3600))?,
            ttl_id_token: ttl("ttl.id_token", Duration::from_secs(3600))?,
            ttl_auth_code: ttl("ttl.auth_code", Duration::from_secs(600))?,
            ttl_login_consent_request: ttl("ttl.login_consent_request", Duration::from_secs(1800))?,
            url_login: flow_url(raw, "urls.login", "/oauth2/fallbacks/login", dev)?,
            url_consent: flow_url(raw, "urls.consent", "/oauth2/fallbacks/consent", dev)?,
            url_error: flow_url(raw, "urls.error", "/oauth2/fallbacks/error", dev)?,
            pkce_enforced: raw.bool("oauth2.pkce.enforced")?.unwrap_or(false),
            pkce_enforced_for_public_clients: raw.bool("oauth2.pkce.enforced_for_public_clients")?.unwrap_or(false),
            pairwise_salt: match raw.str("oidc.subject_identifiers.pairwise.salt")? {
                Some(s) if s.len() < 8 => {
                    return Err(err("oidc.subject_identifiers.pairwise.salt", "must be at least 8 characters"))
                }
                Some(s) => s,
                None => String::new(),
            },
            discovery_scopes: raw.list("webfinger.oidc_discovery.supported_scope")?.unwrap_or_default(),
            discovery_claims: raw.list("webfinger.oidc_discovery.supported_claims")?.unwrap_or_default(),
            scope_strategy,
            pbkdf2_iterations,
            cc_default_grant_allowed_scope: raw
                .bool("oauth2.client_credentials.default_grant_allowed_scope")?
                .unwrap_or(false),
            expose_internal_errors: raw.bool("oauth2.expose_internal_errors")?.unwrap_or(false),
            default_client_scope: default_scope,
            subject_types,
            log_level,
            log_format,
            leak_sensitive_values: raw.bool("log.leak_sensitive_values")?.unwrap_or(false),
            workers,
            partitions,
            durability,
            driver,
            cache_bytes,
            wal_bytes,
            max_body_oauth: 64 << 10,
            max_body_admin: 1 << 20,
            header_timeout: raw.duration("engine.header_timeout", Duration::from_secs(10))?,
            idle_timeout: raw.duration("engine.idle_timeout", Duration::from_secs(120))?,
            disallow_private_ip_ranges: raw.bool("clients.http.disallow_private_ip_ranges")?.unwrap_or(!dev),
            janitor_interval: raw.duration("engine.janitor.interval", Duration::from_secs(600))?,
            janitor_batch: match raw.int("engine.janitor.batch_size")? {
                None => 1000,
                Some(n) if (1..=1_000_000).contains(&n) => n as usize,
                Some(n) => {
                    return Err(err("engine.janitor.batch_size", format!("must be between 1 and 1000000, got {n}")))
                }
            },
            tls_public,
            tls_admin,
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
        let (issuer, public_url, admin_url) = self.derived_urls;
        if let Some(p) = public {
            if issuer {
                let scheme = if self.tls_public.is_some() { "https" } else { "http" };
                self.issuer = format!("{scheme}://{}/", show(p));
                if public_url {
                    self.public_url = strip_slash(&self.issuer);
                }
            }
        }
        if let (Some(a), true) = (admin, admin_url) {
            let scheme = if self.tls_admin.is_some() { "https" } else { "http" };
            self.admin_url = format!("{scheme}://{}", show(a));
        }
    }
}

/// A DSN: empty → the default data directory, `memory`, or `redb:///absolute/dir`.
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
        Some(s) => {
            let scheme = s.split("://").next().unwrap_or(s);
            return Err(err("dsn", format!("unsupported DSN scheme {scheme:?}: use memory or redb:///absolute/dir")));
        }
    })
}

/// `urls.login` and friends: an absolute http(s) URL, or a path (kept as is and resolved against
/// the public URL when used, so it follows a port bound at start-up).
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
    fn defaults() {
        let c = load(&[SECRET], false).unwrap();
        assert_eq!(c.public.port, 4444);
        assert_eq!(c.admin.port, 4445);
        assert_eq!(c.ttl_access_token, Duration::from_secs(3600));
        assert_eq!(c.scope_strategy, ScopeStrategy::Wildcard);
        assert_eq!(c.durability, Durability::Immediate);
        assert_eq!(c.wal_bytes, DEFAULT_WAL_BYTES);
        assert!(matches!(c.dsn, Dsn::Redb(_)));
        assert_eq!(c.default_client_scope, "offline_access offline openid");
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
        assert_eq!(c.secrets_system, vec!["new-secret-0123456789", "old-secret-0123456789"]);
        assert_eq!(c.dsn, Dsn::Memory);
        assert_eq!(c.public.port, 9000);
        assert_eq!(c.ttl_access_token, Duration::from_secs(1800));
        assert_eq!(c.scope_strategy, ScopeStrategy::Exact);
        assert_eq!(c.issuer, "https://auth.example.com/");
        assert_eq!(c.public_url, "https://auth.example.com");
        assert!(c.cc_default_grant_allowed_scope);
        assert_eq!(c.workers, 3);
        assert_eq!(c.durability, Durability::None);
        assert_eq!(c.wal_bytes, 0);
        assert_eq!(c.log_format, LogFormat::Json);
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
        assert_eq!(c.issuer, "http://localhost:41234/");
        assert_eq!(c.public_url, "http://localhost:41234");
        assert_eq!(c.admin_url, "http://127.0.0.1:41235");
        let mut c = load(&[SECRET, ("URLS_SELF_ISSUER", "https://auth.example.com/")], false).unwrap();
        c.adopt_bound(Some(public), Some(admin));
        assert_eq!(c.issuer, "https://auth.example.com/", "a configured issuer is kept byte for byte");
        assert_eq!(c.public_url, "https://auth.example.com");
    }

    #[test]
    fn dev_allows_missing_secret_and_http_issuer() {
        let c = load(&[("URLS_SELF_ISSUER", "http://auth.example.com")], true).unwrap();
        assert!(c.secrets_system.is_empty());
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
        assert_eq!(c.public.port, 6666, "env wins over file");
        assert_eq!(c.ttl_access_token, Duration::from_secs(7200));
        assert_eq!(c.secrets_system, vec!["file-secret-0123456789"]);
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
            ("urls:\n  logout: https://app.example/logout\n", "urls.logout"),
            ("oauth2:\n  token_hook: https://hook.example/\n", "oauth2.token_hook"),
            ("serve:\n  public:\n    cors:\n      enabled: true\n", "serve.public.cors.enabled"),
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
        let e = load_file("", &[("OAUTH2_TOKEN_HOOK", "https://hook.example/")]).unwrap_err();
        assert_eq!(e.key, "oauth2.token_hook");
        assert!(load_file("", &[("SERVE_PUBLIC_CORS_ENABLED", "false")]).is_ok());
        assert!(load_file("", &[("WEBFINGER_JWKS_BROADCAST_KEYS", "hydra.openid.id-token")]).is_ok());
        assert!(load_file("", &[("SERVE_PUBLIC_CORS_ENABLED", "true")]).is_err());
    }
}
