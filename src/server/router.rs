//! Routing (sans-IO): (listener, method, path) → a closed set of endpoints.
//!
//! Invariants: the admin listener accepts every path with or without the `/admin` prefix (as
//! Hydra); the public listener never serves an admin route; an unknown path is 404 and a known
//! path with the wrong method is 405 with `Allow`.

use crate::http::request::Method;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Public,
    Admin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    HealthAlive,
    HealthReady,
    Version,
    Token,
    Revoke,
    Introspect,
    DeleteTokens,
    ListClients,
    CreateClient,
    GetClient(String),
    PutClient(String),
    PatchClient(String),
    DeleteClient(String),
    ClientLifespans(String),
    RotateSecret(String),
    DeleteRotatedSecrets(String),
    /// `/admin/keys/{set}`
    GetKeySet(String),
    CreateKey(String),
    PutKeySet(String),
    DeleteKeySet(String),
    /// `/admin/keys/{set}/{kid}`
    GetKey(String, String),
    PutKey(String, String),
    DeleteKey(String, String),
    WellKnownJwks,
    /// `/oauth2/auth` (GET and POST).
    Authorize,
    Fallback(&'static str),
    Discovery,
    Userinfo,
    /// `/oauth2/auth/requests/{login,consent}[/accept|/reject]`: (consent?, None = GET, Some(accept?)).
    FlowRequest(bool, Option<bool>),
    /// `/oauth2/sessions/logout` (GET and POST).
    Logout,
    /// `/oauth2/fallbacks/logout` (GET asks, POST answers).
    LogoutFallback,
    /// `/oauth2/auth/requests/logout[/accept|/reject]`: None = GET, Some(accept?).
    LogoutRequest(Option<bool>),
    ListConsentSessions,
    RevokeConsentSessions,
    RevokeLoginSessions,
    /// `POST /oauth2/register` (dynamic client registration).
    Register,
    /// `/oauth2/register/{id}`: GET, PUT, DELETE with the registration access token.
    GetRegistered(String),
    PutRegistered(String),
    DeleteRegistered(String),
    /// `/admin/trust/grants/jwt-bearer/issuers` (GET lists, POST creates).
    ListTrust,
    CreateTrust,
    /// `/admin/trust/grants/jwt-bearer/issuers/{id}`.
    GetTrust(String),
    DeleteTrust(String),
    /// `POST /credentials`: verifiable credentials (OpenID4VCI draft 00), refused.
    Credentials,
    /// `POST /oauth2/device/auth` (RFC 8628 §3.1).
    DeviceAuth,
    /// `GET /oauth2/device/verify`: the browser's side of the device flow.
    DeviceVerify,
    /// `PUT /admin/oauth2/auth/requests/device/accept`: the verification page accepts a user code.
    DeviceAccept,
    /// `POST /admin/backup`: an online backup of the embedded store (this project's).
    Backup,
    /// `GET /admin/metrics/prometheus`
    Metrics,
    NotFound,
    MethodNotAllowed(&'static str),
}

/// Maps a request to its endpoint. `path` is the raw (still percent-encoded) path.
pub fn route(api: Api, method: Method, path: &str) -> Route {
    // HEAD is served as GET without a body.
    let m = if method == Method::Head { Method::Get } else { method };
    match api {
        Api::Public => public(m, path),
        Api::Admin => {
            let p = path.strip_prefix("/admin").filter(|r| r.is_empty() || r.starts_with('/')).unwrap_or(path);
            admin(m, p)
        }
    }
}

fn only(m: Method, want: Method, allow: &'static str, r: Route) -> Route {
    if m == want {
        r
    } else {
        Route::MethodNotAllowed(allow)
    }
}

fn health(m: Method, path: &str) -> Option<Route> {
    match path {
        "/health/alive" => Some(only(m, Method::Get, "GET, HEAD", Route::HealthAlive)),
        "/health/ready" => Some(only(m, Method::Get, "GET, HEAD", Route::HealthReady)),
        _ => None,
    }
}

fn public(m: Method, path: &str) -> Route {
    if let Some(r) = health(m, path) {
        return r;
    }
    match path {
        "/oauth2/token" => only(m, Method::Post, "POST", Route::Token),
        "/oauth2/revoke" => only(m, Method::Post, "POST", Route::Revoke),
        "/.well-known/jwks.json" => only(m, Method::Get, "GET, HEAD", Route::WellKnownJwks),
        "/.well-known/openid-configuration" | "/.well-known/oauth-authorization-server" => {
            only(m, Method::Get, "GET, HEAD", Route::Discovery)
        }
        "/oauth2/auth" | "/userinfo" => match m {
            Method::Get | Method::Post if path == "/userinfo" => Route::Userinfo,
            Method::Get | Method::Post => Route::Authorize,
            _ => Route::MethodNotAllowed("GET, HEAD, POST"),
        },
        "/oauth2/fallbacks/login" => only(m, Method::Get, "GET, HEAD", Route::Fallback("login")),
        "/oauth2/fallbacks/consent" => only(m, Method::Get, "GET, HEAD", Route::Fallback("consent")),
        "/oauth2/fallbacks/logout" => match m {
            Method::Get | Method::Post => Route::LogoutFallback,
            _ => Route::MethodNotAllowed("GET, HEAD, POST"),
        },
        "/oauth2/fallbacks/logout/callback" => only(m, Method::Get, "GET, HEAD", Route::Fallback("logout")),
        "/oauth2/sessions/logout" => match m {
            Method::Get | Method::Post => Route::Logout,
            _ => Route::MethodNotAllowed("GET, HEAD, POST"),
        },
        "/oauth2/fallbacks/error" => only(m, Method::Get, "GET, HEAD", Route::Fallback("error")),
        "/oauth2/fallbacks/device" => only(m, Method::Get, "GET, HEAD", Route::Fallback("device")),
        "/oauth2/fallbacks/device/done" => only(m, Method::Get, "GET, HEAD", Route::Fallback("device/done")),
        "/oauth2/device/auth" => only(m, Method::Post, "POST", Route::DeviceAuth),
        "/credentials" => only(m, Method::Post, "POST", Route::Credentials),
        "/oauth2/device/verify" => only(m, Method::Get, "GET, HEAD", Route::DeviceVerify),
        "/oauth2/register" => only(m, Method::Post, "POST", Route::Register),
        _ => {
            match path.strip_prefix("/oauth2/register/").map(|raw| crate::http::form::percent_decode(raw.as_bytes())) {
                Some(Ok(id)) if !id.is_empty() && !id.contains('/') => match m {
                    Method::Get => Route::GetRegistered(id),
                    Method::Put => Route::PutRegistered(id),
                    Method::Delete => Route::DeleteRegistered(id),
                    _ => Route::MethodNotAllowed("GET, HEAD, PUT, DELETE"),
                },
                _ => Route::NotFound,
            }
        }
    }
}

fn admin(m: Method, path: &str) -> Route {
    if let Some(r) = health(m, path) {
        return r;
    }
    match path {
        "/version" => return only(m, Method::Get, "GET, HEAD", Route::Version),
        "/metrics/prometheus" => return only(m, Method::Get, "GET, HEAD", Route::Metrics),
        "/backup" => return only(m, Method::Post, "POST", Route::Backup),
        "/oauth2/introspect" => return only(m, Method::Post, "POST", Route::Introspect),
        "/oauth2/tokens" => return only(m, Method::Delete, "DELETE", Route::DeleteTokens),
        "/oauth2/auth/sessions/consent" => {
            return match m {
                Method::Get => Route::ListConsentSessions,
                Method::Delete => Route::RevokeConsentSessions,
                _ => Route::MethodNotAllowed("GET, HEAD, DELETE"),
            }
        }
        "/oauth2/auth/sessions/login" => return only(m, Method::Delete, "DELETE", Route::RevokeLoginSessions),
        "/oauth2/auth/requests/login" => return only(m, Method::Get, "GET, HEAD", Route::FlowRequest(false, None)),
        "/oauth2/auth/requests/consent" => return only(m, Method::Get, "GET, HEAD", Route::FlowRequest(true, None)),
        "/oauth2/auth/requests/logout" => return only(m, Method::Get, "GET, HEAD", Route::LogoutRequest(None)),
        "/oauth2/auth/requests/device/accept" => return only(m, Method::Put, "PUT", Route::DeviceAccept),
        "/oauth2/auth/requests/logout/accept" => return only(m, Method::Put, "PUT", Route::LogoutRequest(Some(true))),
        "/oauth2/auth/requests/logout/reject" => return only(m, Method::Put, "PUT", Route::LogoutRequest(Some(false))),
        "/oauth2/auth/requests/login/accept" => {
            return only(m, Method::Put, "PUT", Route::FlowRequest(false, Some(true)))
        }
        "/oauth2/auth/requests/login/reject" => {
            return only(m, Method::Put, "PUT", Route::FlowRequest(false, Some(false)))
        }
        "/oauth2/auth/requests/consent/accept" => {
            return only(m, Method::Put, "PUT", Route::FlowRequest(true, Some(true)))
        }
        "/oauth2/auth/requests/consent/reject" => {
            return only(m, Method::Put, "PUT", Route::FlowRequest(true, Some(false)))
        }
        "/clients" => {
            return match m {
                Method::Get => Route::ListClients,
                Method::Post => Route::CreateClient,
                _ => Route::MethodNotAllowed("GET, HEAD, POST"),
            }
        }
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("/keys/") {
        return keys(m, rest);
    }
    if let Some(rest) = path.strip_prefix("/trust/grants/jwt-bearer/issuers") {
        return trust(m, rest);
    }
    let Some(rest) = path.strip_prefix("/clients/") else { return Route::NotFound };
    let mut parts = rest.splitn(2, '/');
    let raw_id = parts.next().unwrap_or("");
    let Ok(id) = crate::http::form::percent_decode(raw_id.as_bytes()) else { return Route::NotFound };
    if id.is_empty() {
        return Route::NotFound;
    }
    match parts.next() {
        None => match m {
            Method::Get => Route::GetClient(id),
            Method::Put => Route::PutClient(id),
            Method::Patch => Route::PatchClient(id),
            Method::Delete => Route::DeleteClient(id),
            _ => Route::MethodNotAllowed("GET, HEAD, PUT, PATCH, DELETE"),
        },
        Some("lifespans") => only(m, Method::Put, "PUT", Route::ClientLifespans(id)),
        Some("secrets/rotate") => match m {
            Method::Post => Route::RotateSecret(id),
            Method::Delete => Route::DeleteRotatedSecrets(id),
            _ => Route::MethodNotAllowed("POST, DELETE"),
        },
        Some(_) => Route::NotFound,
    }
}

/// `/trust/grants/jwt-bearer/issuers[/{id}]`.
fn trust(m: Method, rest: &str) -> Route {
    if rest.is_empty() {
        return match m {
            Method::Get => Route::ListTrust,
            Method::Post => Route::CreateTrust,
            _ => Route::MethodNotAllowed("GET, HEAD, POST"),
        };
    }
    let Some(raw) = rest.strip_prefix('/') else { return Route::NotFound };
    match crate::http::form::percent_decode(raw.as_bytes()) {
        Ok(id) if !id.is_empty() && !id.contains('/') => match m {
            Method::Get => Route::GetTrust(id),
            Method::Delete => Route::DeleteTrust(id),
            _ => Route::MethodNotAllowed("GET, HEAD, DELETE"),
        },
        _ => Route::NotFound,
    }
}

/// `/keys/{set}` and `/keys/{set}/{kid}`, each segment percent-decoded and non-empty.
fn keys(m: Method, rest: &str) -> Route {
    let decode = |raw: &str| crate::http::form::percent_decode(raw.as_bytes()).ok().filter(|s| !s.is_empty());
    let mut parts = rest.split('/');
    let (Some(set), kid, None) = (parts.next().and_then(decode), parts.next(), parts.next()) else {
        return Route::NotFound;
    };
    match kid {
        None => match m {
            Method::Get => Route::GetKeySet(set),
            Method::Post => Route::CreateKey(set),
            Method::Put => Route::PutKeySet(set),
            Method::Delete => Route::DeleteKeySet(set),
            _ => Route::MethodNotAllowed("GET, HEAD, POST, PUT, DELETE"),
        },
        Some(raw) => {
            let Some(kid) = decode(raw) else { return Route::NotFound };
            match m {
                Method::Get => Route::GetKey(set, kid),
                Method::Put => Route::PutKey(set, kid),
                Method::Delete => Route::DeleteKey(set, kid),
                _ => Route::MethodNotAllowed("GET, HEAD, PUT, DELETE"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Method::*;

    #[test]
    fn table() {
        let cases = [
            (Api::Public, Post, "/oauth2/token", Route::Token),
            (Api::Public, Get, "/oauth2/token", Route::MethodNotAllowed("POST")),
            (Api::Public, Get, "/health/alive", Route::HealthAlive),
            (Api::Public, Head, "/health/ready", Route::HealthReady),
            (Api::Public, Get, "/admin/clients", Route::NotFound),
            (Api::Public, Post, "/oauth2/introspect", Route::NotFound),
            (Api::Admin, Get, "/admin/clients", Route::ListClients),
            (Api::Admin, Post, "/clients", Route::CreateClient),
            (Api::Admin, Get, "/admin/clients/a%20b", Route::GetClient("a b".into())),
            (Api::Admin, Put, "/clients/x/lifespans", Route::ClientLifespans("x".into())),
            (Api::Admin, Post, "/admin/clients/x/secrets/rotate", Route::RotateSecret("x".into())),
            (Api::Admin, Delete, "/clients/x/secrets/rotate", Route::DeleteRotatedSecrets("x".into())),
            (Api::Admin, Post, "/admin/oauth2/introspect", Route::Introspect),
            (Api::Admin, Delete, "/oauth2/tokens", Route::DeleteTokens),
            (Api::Admin, Get, "/admin/version", Route::Version),
            (Api::Admin, Get, "/admin/metrics/prometheus", Route::Metrics),
            (Api::Public, Get, "/admin/metrics/prometheus", Route::NotFound),
            (Api::Admin, Get, "/admin/keys/hydra.openid.id-token", Route::GetKeySet("hydra.openid.id-token".into())),
            (Api::Admin, Post, "/keys/a%2Fb", Route::CreateKey("a/b".into())),
            (Api::Admin, Put, "/admin/keys/s", Route::PutKeySet("s".into())),
            (Api::Admin, Delete, "/keys/s", Route::DeleteKeySet("s".into())),
            (Api::Admin, Get, "/keys/s/k%201", Route::GetKey("s".into(), "k 1".into())),
            (Api::Admin, Put, "/admin/keys/s/k", Route::PutKey("s".into(), "k".into())),
            (Api::Admin, Delete, "/keys/s/k", Route::DeleteKey("s".into(), "k".into())),
            (Api::Admin, Post, "/keys/s/k", Route::MethodNotAllowed("GET, HEAD, PUT, DELETE")),
            (Api::Admin, Get, "/keys/s/k/x", Route::NotFound),
            (Api::Admin, Get, "/keys/", Route::NotFound),
            (Api::Admin, Get, "/keys/s/", Route::NotFound),
            (Api::Public, Get, "/.well-known/jwks.json", Route::WellKnownJwks),
            (Api::Public, Get, "/.well-known/openid-configuration", Route::Discovery),
            (Api::Public, Post, "/oauth2/auth", Route::Authorize),
            (Api::Public, Delete, "/oauth2/auth", Route::MethodNotAllowed("GET, HEAD, POST")),
            (Api::Public, Post, "/userinfo", Route::Userinfo),
            (Api::Public, Get, "/oauth2/fallbacks/error", Route::Fallback("error")),
            (Api::Admin, Get, "/admin/oauth2/auth/requests/login", Route::FlowRequest(false, None)),
            (Api::Admin, Put, "/oauth2/auth/requests/consent/reject", Route::FlowRequest(true, Some(false))),
            (Api::Admin, Post, "/oauth2/auth/requests/login/accept", Route::MethodNotAllowed("PUT")),
            (Api::Admin, Get, "/oauth2/auth", Route::NotFound),
            (Api::Public, Get, "/admin/keys/s", Route::NotFound),
            (Api::Admin, Get, "/.well-known/jwks.json", Route::NotFound),
            (Api::Admin, Get, "/administrator", Route::NotFound),
            (Api::Admin, Options, "/clients/x", Route::MethodNotAllowed("GET, HEAD, PUT, PATCH, DELETE")),
            (Api::Admin, Get, "/clients/%zz", Route::NotFound),
            (Api::Admin, Get, "/clients/x/other", Route::NotFound),
            (Api::Admin, Post, "/oauth2/token", Route::NotFound),
            (Api::Public, Post, "/oauth2/device/auth", Route::DeviceAuth),
            (Api::Public, Post, "/credentials", Route::Credentials),
            (Api::Admin, Post, "/admin/backup", Route::Backup),
            (Api::Public, Post, "/admin/backup", Route::NotFound),
            (Api::Public, Get, "/oauth2/device/auth", Route::MethodNotAllowed("POST")),
            (Api::Public, Get, "/oauth2/device/verify", Route::DeviceVerify),
            (Api::Public, Post, "/oauth2/device/verify", Route::MethodNotAllowed("GET, HEAD")),
            (Api::Public, Get, "/oauth2/fallbacks/device/done", Route::Fallback("device/done")),
            (Api::Admin, Put, "/admin/oauth2/auth/requests/device/accept", Route::DeviceAccept),
            (Api::Admin, Put, "/oauth2/auth/requests/device/accept", Route::DeviceAccept),
            (Api::Public, Put, "/admin/oauth2/auth/requests/device/accept", Route::NotFound),
            (Api::Admin, Post, "/oauth2/device/auth", Route::NotFound),
        ];
        for (api, m, path, want) in cases {
            assert_eq!(route(api, m, path), want, "{api:?} {m:?} {path}");
        }
    }
}
