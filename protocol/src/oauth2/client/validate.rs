//! Validation of a client object against Hydra's rules; sets canonical defaults as it goes.

use super::*;
use crate::oauth2::uri::{redirect_scheme_allowed, valid_host, Uri};
// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

pub(super) const AUTH_METHODS: [&str; 5] =
    ["client_secret_basic", "client_secret_post", "private_key_jwt", "client_secret_jwt", "none"];
/// Hydra's list without ES512, which nothing here can verify (ring has no P-521).
pub(super) const AUTH_SIGNING_ALGS: [&str; 8] =
    ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"];
pub(super) const GRANT_TYPES: [&str; 6] = [
    "authorization_code",
    "implicit",
    "refresh_token",
    "client_credentials",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
    "urn:ietf:params:oauth:grant-type:device_code",
];

pub(super) fn valid_response_type(rt: &str) -> bool {
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
pub(super) fn normalize_lifespans(c: &mut Client) -> Result<(), ClientError> {
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
                "Only RS256, RS384, RS512, PS256, PS384, PS512, ES256 and ES384 are supported as algorithms for private key authentication.",
            ));
        }
    }
    if c.token_endpoint_auth_method == "client_secret_jwt" {
        // Not in Hydra (RFC 7523 §2.2, OIDC Core §9): an HMAC over the client secret, which must be
        // at least as long as the hash (RFC 7518 §3.2).
        let alg = c.auth_signing_alg();
        let Some(min) = crate::oauth2::client_assertion::hmac_min_secret(alg) else {
            return Err(ClientError::invalid_client_metadata(
                "Only HS256, HS384 and HS512 are supported as algorithms for client_secret_jwt authentication.",
            ));
        };
        if secret.is_some_and(|s| !s.is_empty() && s.len() < min) {
            return Err(ClientError::invalid_client_metadata(&format!(
                "Field client_secret must be at least {min} bytes long for client_secret_jwt with {alg} (RFC 7518 §3.2)."
            )));
        }
    }
    // Hydra stores unknown methods and fails at the token endpoint; rejecting early is kinder.
    if !AUTH_METHODS.contains(&c.token_endpoint_auth_method.as_str()) {
        return Err(ClientError::invalid_client_metadata(&format!(
            "Field token_endpoint_auth_method must be one of client_secret_basic, client_secret_post, private_key_jwt, client_secret_jwt, none but got {}.",
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
        let u = Uri::parse_go_request(uri)
            .map_err(|_| ClientError::invalid_client_metadata(&format!("Field {field} must be a valid URI.")))?;
        if !u.scheme_is("https") && !u.scheme_is("http") {
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
        let u = Uri::parse_go(origin).map_err(|e| {
            ClientError::invalid_client_metadata(&format!(
                "Origin URL {origin} from allowed_cors_origins could not be parsed: parse \"{origin}\": {e}"
            ))
        })?;
        if !u.scheme_is("https") && !u.scheme_is("http") {
            return Err(ClientError::invalid_client_metadata(&format!(
                "Origin URL {origin} must use https:// or http:// as HTTP scheme."
            )));
        }
        if u.userinfo().is_some_and(|ui| !ui.is_empty()) {
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
        let port = if u.port().is_empty() { String::new() } else { format!(":{}", u.port()) };
        *origin = format!("{}://{}{}", u.scheme.to_ascii_lowercase(), u.host(), port);
        // A wildcard names one leading label of a domain (`https://*.example.com`); a wider
        // pattern would be skipped when matching, so it is refused here instead.
        if let Err(why) = crate::http::cors::OriginPattern::parse(origin) {
            return Err(ClientError::invalid_client_metadata(&format!("Origin URL {origin} is not allowed: {why}.")));
        }
    }

    c.client_secret_expires_at = 0;

    if !c.sector_identifier_uri.is_empty() {
        match Uri::parse_go(&c.sector_identifier_uri) {
            Err(e) => {
                return Err(ClientError::invalid_client_metadata(&format!(
                    "Value of sector_identifier_uri could not be parsed because {e}."
                )));
            }
            // Hydra attaches this reason only as debug text, so the body has no hint.
            Ok(u) if !u.scheme_is("https") => return Err(ClientError::invalid_client_metadata("")),
            Ok(_) => {}
        }
    }

    let roa = c.request_object_signing_alg.as_str();
    if !roa.is_empty() && roa != "none" && crate::jose::jwk::Alg::parse(roa).is_none() {
        return Err(ClientError::invalid_client_metadata(
            "Field request_object_signing_alg must be none or one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA.",
        ));
    }
    for r in &c.request_uris {
        // The server fetches these (over TLS only): an absolute https URL with a host.
        let ok = Uri::parse_go_request(r).is_ok_and(|u| u.scheme_is("https") && !u.host().is_empty());
        if !ok {
            return Err(ClientError::invalid_client_metadata(&format!(
                "Field request_uris must hold absolute https URLs, got {r}."
            )));
        }
    }
    if !c.id_token_signed_response_alg.is_empty()
        && crate::jose::jwk::Alg::parse(&c.id_token_signed_response_alg).is_none()
    {
        // `none` too: an unsigned ID token is never issued.
        return Err(ClientError::invalid_client_metadata(
            "Field id_token_signed_response_alg must be one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA.",
        ));
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
        match Uri::parse_go_request(r) {
            Ok(u) if !redirect_scheme_allowed(u.scheme) => {
                return Err(ClientError::invalid_redirect_uri(&format!(
                    "The {} scheme cannot receive an authorization response: {r}",
                    u.scheme.to_ascii_lowercase()
                )));
            }
            Ok(u)
                if (u.authority.is_some() || u.scheme_is("http") || u.scheme_is("https"))
                    && !valid_host(u.hostname()) =>
            {
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
        let u = Uri::parse_go_request(l).map_err(|_| {
            ClientError::invalid_client_metadata(&format!("Unable to parse post_logout_redirect_uri: {l}"))
        })?;
        let matches =
            redirects.iter().any(|r| r.scheme_is(u.scheme) && r.hostname() == u.hostname() && r.port() == u.port());
        if !matches {
            return Err(ClientError::invalid_client_metadata(&format!(
                "post_logout_redirect_uri \"{l}\" must match the domain, port, scheme of at least one of the registered redirect URIs but did not"
            )));
        }
    }

    // Checks Hydra does not make: the server requests these URLs (back-channel) or has the
    // browser load them (front-channel), so they must be absolute web URLs without a fragment
    // (Front-Channel Logout §2, Back-Channel Logout §2.2).
    for (field, v) in
        [("frontchannel_logout_uri", &c.frontchannel_logout_uri), ("backchannel_logout_uri", &c.backchannel_logout_uri)]
    {
        if v.is_empty() {
            continue;
        }
        match Uri::parse_go_request(v) {
            Ok(u) if (u.scheme_is("https") || u.scheme_is("http")) && valid_host(u.hostname()) && !v.contains('#') => {}
            _ => {
                return Err(ClientError::invalid_client_metadata(&format!(
                    "Field {field} must be an absolute http or https URL without a fragment: {v}"
                )))
            }
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
    if c.access_token_strategy == "jwt" && c.subject_type == "pairwise" {
        // Stricter than Hydra: the JWT would carry the subject that pairwise identifiers hide.
        return Err(ClientError::invalid_client_metadata(
            "access_token_strategy jwt cannot be combined with subject_type pairwise: the token would reveal the subject.",
        ));
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
