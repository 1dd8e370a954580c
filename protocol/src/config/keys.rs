//! Which configuration keys exist: the keys this server reads (with how an environment value
//! is parsed), Hydra's whole schema (`hydra_keys.rs`), and the check that refuses an unknown key,
//! or a key Hydra knows that this server does not implement unless it holds Hydra's default.

use super::{err, hydra_keys, ConfigError};
use serde_json::Value;

#[derive(Clone, Copy)]
pub(super) enum Kind {
    Str,
    Int,
    Bool,
    List,
}

/// Every key read from files and the environment, with how an environment value is parsed.
pub(super) const KEYS: &[(&str, Kind)] = &[
    ("dsn", Kind::Str),
    ("dev", Kind::Bool),
    ("secrets.system", Kind::List),
    ("secrets.cookie", Kind::List),
    ("serve.cookies.same_site_mode", Kind::Str),
    ("serve.cookies.same_site_legacy_workaround", Kind::Bool),
    ("serve.cookies.domain", Kind::Str),
    ("serve.cookies.secure", Kind::Bool),
    ("serve.cookies.paths.session", Kind::Str),
    ("serve.cookies.names.login_csrf", Kind::Str),
    ("serve.cookies.names.consent_csrf", Kind::Str),
    ("serve.cookies.names.device_csrf", Kind::Str),
    ("serve.cookies.names.session", Kind::Str),
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
    ("urls.logout", Kind::Str),
    ("urls.post_logout_redirect", Kind::Str),
    ("urls.device.verification", Kind::Str),
    ("urls.identity_provider.url", Kind::Str),
    ("urls.identity_provider.publicUrl", Kind::Str),
    ("urls.identity_provider.headers", Kind::Str),
    ("urls.device.success", Kind::Str),
    ("ttl.device_user_code", Kind::Str),
    ("oauth2.device_authorization.token_polling_interval", Kind::Str),
    ("oauth2.device_authorization.user_code.entropy_preset", Kind::Str),
    ("oauth2.device_authorization.user_code.length", Kind::Int),
    ("oauth2.device_authorization.user_code.character_set", Kind::Str),
    ("oauth2.pkce.enforced", Kind::Bool),
    ("oauth2.pkce.enforced_for_public_clients", Kind::Bool),
    ("oidc.subject_identifiers.pairwise.salt", Kind::Str),
    ("webfinger.oidc_discovery.supported_scope", Kind::List),
    ("webfinger.oidc_discovery.supported_claims", Kind::List),
    ("strategies.scope", Kind::Str),
    ("strategies.access_token", Kind::Str),
    ("strategies.jwt.scope_claim", Kind::Str),
    ("oauth2.exclude_not_before_claim", Kind::Bool),
    ("oauth2.session.encrypt_at_rest", Kind::Bool),
    ("oauth2.allowed_top_level_claims", Kind::List),
    ("oauth2.mirror_top_level_claims", Kind::Bool),
    ("oauth2.preserve_ext_claims", Kind::Bool),
    ("oauth2.hashers.algorithm", Kind::Str),
    ("oauth2.hashers.pbkdf2.iterations", Kind::Int),
    ("oauth2.hashers.bcrypt.cost", Kind::Int),
    ("oauth2.client_credentials.default_grant_allowed_scope", Kind::Bool),
    ("oauth2.expose_internal_errors", Kind::Bool),
    ("oauth2.grant.jwt.iat_optional", Kind::Bool),
    ("oauth2.grant.jwt.jti_optional", Kind::Bool),
    ("oauth2.grant.jwt.max_ttl", Kind::Str),
    ("oidc.dynamic_client_registration.default_scope", Kind::List),
    ("oidc.dynamic_client_registration.enabled", Kind::Bool),
    ("oidc.subject_identifiers.supported_types", Kind::List),
    ("log.level", Kind::Str),
    ("log.format", Kind::Str),
    ("log.leak_sensitive_values", Kind::Bool),
    ("log.redaction_text", Kind::Str),
    ("serve.public.request_log.disable_for_health", Kind::Bool),
    ("serve.admin.request_log.disable_for_health", Kind::Bool),
    ("engine.workers", Kind::Int),
    ("engine.cpus", Kind::Str),
    ("engine.listen_backlog", Kind::Int),
    ("engine.partitions", Kind::Int),
    ("engine.durability", Kind::Str),
    ("engine.driver", Kind::Str),
    ("engine.cache_size_mb", Kind::Int),
    ("engine.wal_size_mb", Kind::Int),
    ("engine.header_timeout", Kind::Str),
    ("engine.idle_timeout", Kind::Str),
    ("clients.http.disallow_private_ip_ranges", Kind::Bool),
    ("clients.http.private_ip_exception_urls", Kind::List),
    ("oauth2.token_hook", Kind::Str),
    ("oauth2.token_hook.url", Kind::Str),
    ("oauth2.token_hook.auth.type", Kind::Str),
    ("oauth2.token_hook.auth.config.in", Kind::Str),
    ("oauth2.token_hook.auth.config.name", Kind::Str),
    ("oauth2.token_hook.auth.config.value", Kind::Str),
    ("oauth2.refresh_token_hook", Kind::Str),
    ("oauth2.refresh_token_hook.url", Kind::Str),
    ("oauth2.refresh_token_hook.auth.type", Kind::Str),
    ("oauth2.refresh_token_hook.auth.config.in", Kind::Str),
    ("oauth2.refresh_token_hook.auth.config.name", Kind::Str),
    ("oauth2.refresh_token_hook.auth.config.value", Kind::Str),
    ("engine.janitor.interval", Kind::Str),
    ("engine.device_user_code_failures_per_minute", Kind::Int),
    ("engine.janitor.batch_size", Kind::Int),
    ("serve.public.cors.enabled", Kind::Bool),
    ("serve.public.cors.allowed_origins", Kind::List),
    ("serve.public.cors.allowed_methods", Kind::List),
    ("serve.public.cors.allowed_headers", Kind::List),
    ("serve.public.cors.exposed_headers", Kind::List),
    ("serve.public.cors.allow_credentials", Kind::Bool),
    ("serve.public.cors.max_age", Kind::Int),
    ("serve.public.cors.debug", Kind::Bool),
    ("serve.admin.cors.enabled", Kind::Bool),
    ("serve.admin.cors.allowed_origins", Kind::List),
    ("serve.admin.cors.allowed_methods", Kind::List),
    ("serve.admin.cors.allowed_headers", Kind::List),
    ("serve.admin.cors.exposed_headers", Kind::List),
    ("serve.admin.cors.allow_credentials", Kind::Bool),
    ("serve.admin.cors.max_age", Kind::Int),
    ("serve.admin.cors.debug", Kind::Bool),
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

pub(super) fn implemented(key: &str) -> bool {
    KEYS.iter().any(|(k, _)| *k == key)
}

pub(super) fn hydra_default(key: &str) -> Option<Option<&'static str>> {
    hydra_keys::HYDRA_KEYS.iter().find(|(k, _)| *k == key).map(|(_, d)| *d)
}

/// Whether any known key lies below `path` (so an object there is walked, not judged whole).
pub(super) fn has_children(path: &str) -> bool {
    let below = |k: &str| k.len() > path.len() && k.starts_with(path) && k.as_bytes()[path.len()] == b'.';
    KEYS.iter().any(|(k, _)| below(k)) || hydra_keys::HYDRA_KEYS.iter().any(|(k, _)| below(k))
}

/// Whether a value equals Hydra's default (a value from the environment is a string: compared
/// with the default's text, lists comma-separated).
pub(super) fn is_default(value: &Value, default: &str) -> bool {
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
pub(super) fn check_keys(node: &Value, path: &str) -> Result<(), ConfigError> {
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

/// The environment variable for a key path: `serve.public.port` → `SERVE_PUBLIC_PORT`.
pub fn env_name(key: &str) -> String {
    key.to_ascii_uppercase().replace('.', "_")
}
