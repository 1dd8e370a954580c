//! OpenID Connect logout as Hydra runs it (RP-Initiated Logout 1.0, Front-Channel Logout 1.0,
//! Back-Channel Logout 1.0), sans-IO: the parameters of `/oauth2/sessions/logout`, the
//! `id_token_hint` check, where the browser may be sent afterwards, the logout request sealed
//! into its challenge and verifier, the admin API's body, the logout token's claims and the
//! front-channel page.
//!
//! Invariants: the browser is only ever sent to a `post_logout_redirect_uri` that the hint's
//! client registered, byte for byte (`state` appended), or to the operator's
//! `urls.post_logout_redirect`; a hint counts only if it verifies against our ID-token keys and
//! names our issuer and a session (expiry does not matter, RP-Initiated Logout §2); anything
//! else is an error page, never a redirect. Logout tokens never carry `nonce`.

use crate::jose::jwk::Jwk;
use crate::oauth2::authorize::{html_escape, redirect_url};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The back-channel logout event (Back-Channel Logout §2.4).
pub const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// The parameters of `/oauth2/sessions/logout`; empty values count as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogoutParams {
    pub id_token_hint: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
    pub client_id: Option<String>,
    pub logout_verifier: Option<String>,
}

impl LogoutParams {
    /// From decoded pairs (the form decoder has already refused duplicated names).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> LogoutParams {
        let mut p = LogoutParams::default();
        for (k, v) in pairs {
            if v.is_empty() {
                continue;
            }
            match k.as_str() {
                "id_token_hint" => p.id_token_hint = Some(v),
                "post_logout_redirect_uri" => p.post_logout_redirect_uri = Some(v),
                "state" => p.state = Some(v),
                "client_id" => p.client_id = Some(v),
                "logout_verifier" => p.logout_verifier = Some(v),
                _ => {}
            }
        }
        p
    }
}

/// What a verified `id_token_hint` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    pub sid: String,
    pub audience: Vec<String>,
}

/// Checks an `id_token_hint`: our signature (so `alg:none` and foreign keys fail), our issuer,
/// a session id, issued no later than now (a minute of clock skew between nodes allowed).
pub fn verify_hint(hint: &str, keys: &[Jwk], issuer: &str, now: i64) -> Result<Hint, &'static str> {
    let v =
        crate::jose::jws::verify(hint, keys).map_err(|_| "its signature does not verify with this server's keys")?;
    if !crate::jose::jws::typed_as_jwt(&v.header) {
        return Err("it is not an ID token (its typ names another kind of token)");
    }
    let claims: Value = serde_json::from_slice(&v.payload).map_err(|_| "its payload is not JSON")?;
    if claims["iss"].as_str() != Some(issuer) {
        return Err("it was issued by another issuer");
    }
    let audience: Vec<String> = match &claims["aud"] {
        Value::String(a) => vec![a.clone()],
        Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(String::from)).collect(),
        _ => Vec::new(),
    };
    if audience.is_empty() {
        return Err("it names no audience");
    }
    if crate::jose::jws::numeric_date(claims.get("iat")).ok().flatten().is_none_or(|iat| iat > now + 60) {
        return Err("its iat is missing or in the future");
    }
    let sid = claims["sid"].as_str().filter(|s| !s.is_empty()).ok_or("it names no session (sid)")?;
    Ok(Hint { sid: sid.to_string(), audience })
}

/// What a request to `/oauth2/sessions/logout` (without a verifier) leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// An error page; the browser is not redirected anywhere.
    Refuse(String),
    /// OP-initiated: the browser's own session (if any) is logged out, then `redirect`.
    Op { redirect: String },
    /// RP-initiated: the hint's session is logged out, then `redirect`.
    Rp { client_id: String, sid: String, redirect: String },
}

/// Decides what a logout request means. `hint` is the outcome of [`verify_hint`] when one was
/// sent; `registered` gives the `post_logout_redirect_uris` of a client that exists.
pub fn start(
    p: &LogoutParams,
    hint: Option<Result<Hint, &str>>,
    registered: &dyn Fn(&str) -> Option<Vec<String>>,
    default_redirect: &str,
) -> Start {
    let hint = match hint {
        None => {
            // Without a hint nothing proves which client is asking, so no RP URI is trusted
            // (RP-Initiated Logout §3). A lone `state` has nowhere to go and is dropped.
            if p.post_logout_redirect_uri.is_some() {
                return Start::Refuse("A post_logout_redirect_uri is only honoured with an id_token_hint.".into());
            }
            return Start::Op { redirect: default_redirect.to_string() };
        }
        Some(Err(why)) => return Start::Refuse(format!("The id_token_hint is not accepted: {why}.")),
        Some(Ok(h)) => h,
    };
    if let Some(c) = &p.client_id {
        if !hint.audience.contains(c) {
            return Start::Refuse("The client_id is not an audience of the id_token_hint.".into());
        }
    }
    // The first audience that is still a client (Hydra), or the named one.
    let found = hint
        .audience
        .iter()
        .filter(|a| p.client_id.as_ref().is_none_or(|c| c == *a))
        .find_map(|a| registered(a).map(|uris| (a.clone(), uris)));
    let Some((client_id, uris)) = found else {
        return Start::Refuse("The client of the id_token_hint does not exist.".into());
    };
    let redirect = match &p.post_logout_redirect_uri {
        None => default_redirect.to_string(),
        Some(u) if uris.iter().any(|r| r == u) => match &p.state {
            Some(s) => redirect_url(u, &[("state", s)]),
            None => u.clone(),
        },
        Some(_) => {
            return Start::Refuse(
                "The post_logout_redirect_uri is not one of the client's registered post_logout_redirect_uris.".into(),
            )
        }
    };
    Start::Rp { client_id, sid: hint.sid, redirect }
}

/// A logout on its way through the logout app, sealed into the challenge and the verifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutRequest {
    /// Random, 128 bits hex: the single-use key of this logout.
    pub id: String,
    pub subject: String,
    pub sid: String,
    pub request_url: String,
    pub rp_initiated: bool,
    /// The hint's client; empty when OP-initiated.
    pub client_id: String,
    pub requested_at: i64,
    /// Where the browser goes once logged out (already validated).
    pub redirect: String,
    /// The value of the browser's logout CSRF cookie.
    pub csrf: String,
}

/// `GET /admin/oauth2/auth/requests/logout`.
pub fn logout_request_json(r: &LogoutRequest, challenge: &str, client: Option<Value>, ttl_secs: i64) -> Value {
    json!({
        "challenge": challenge,
        "client": client,
        "expires_at": crate::dates::rfc3339(r.requested_at.saturating_add(ttl_secs)),
        "request_url": r.request_url,
        "requested_at": crate::dates::rfc3339(r.requested_at),
        "rp_initiated": r.rp_initiated,
        "sid": r.sid,
        "subject": r.subject,
    })
}

/// The claims of a logout token (Back-Channel Logout §2.4): `sid` always (every session here has
/// one), no `sub` (as Hydra: the client's subject may be pairwise), never `nonce`.
pub fn logout_token_claims(issuer: &str, client_id: &str, sid: &str, jti: &str, now: i64) -> Value {
    json!({
        "iss": issuer,
        "aud": [client_id],
        "iat": now,
        "exp": now + 120,
        "jti": jti,
        "sid": sid,
        "events": {BACKCHANNEL_EVENT: {}},
    })
}

/// A client's front-channel logout URL: `iss` and `sid` added when it registered
/// `frontchannel_logout_session_required` (Front-Channel Logout §2).
pub fn frontchannel_url(uri: &str, session_required: bool, issuer: &str, sid: &str) -> String {
    if session_required {
        redirect_url(uri, &[("iss", issuer), ("sid", sid)])
    } else {
        uri.to_string()
    }
}

/// The page that loads every front-channel URL in an invisible iframe and then sends the browser
/// on: once all have loaded, or after 7 s whatever happened (as Hydra), or by hand without script.
pub fn frontchannel_page(urls: &[String], redirect: &str) -> String {
    let next = html_escape(redirect);
    let mut frames = String::new();
    for u in urls {
        frames.push_str(&format!(
            "<iframe src=\"{}\" onload=\"loaded()\" style=\"display:none\" title=\"logout\"></iframe>\n",
            html_escape(u)
        ));
    }
    format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"referrer\" content=\"no-referrer\">\n\
         <meta http-equiv=\"refresh\" content=\"7;url={next}\">\n<title>Logging out</title>\n</head>\n\
         <body data-next=\"{next}\">\n<p>Logging out&hellip; <a href=\"{next}\">Continue</a></p>\n\
         <script>\nvar left = {n}, gone = false;\n\
         function go() {{ if (!gone) {{ gone = true; window.location.replace(document.body.getAttribute(\"data-next\")); }} }}\n\
         function loaded() {{ if (--left <= 0) go(); }}\nsetTimeout(go, 7000);\n</script>\n{frames}</body>\n</html>\n",
        n = urls.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::jwk::Alg;
    use crate::jose::jws::Signer;

    fn key(kid: &str) -> Jwk {
        Jwk::generate(Alg::ES256, kid, "sig").unwrap()
    }

    fn token(k: &Jwk, claims: Value) -> String {
        Signer::from_jwk(k).unwrap().sign(claims.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn hints_must_be_ours_and_name_a_session() {
        let ours = key("a");
        let theirs = key("a");
        let keys = [ours.public()];
        let good = json!({"iss": "https://op", "aud": ["c1", "c2"], "iat": 100, "exp": 50, "sid": "s1", "sub": "u"});
        let h = verify_hint(&token(&ours, good.clone()), &keys, "https://op", 1000).unwrap();
        assert_eq!(h, Hint { sid: "s1".into(), audience: vec!["c1".into(), "c2".into()] });
        // Expired is fine; a foreign key, another issuer, no sid, a future iat are not.
        assert!(verify_hint(&token(&theirs, good.clone()), &keys, "https://op", 1000).is_err());
        assert!(verify_hint(&token(&ours, good.clone()), &keys, "https://other", 1000).is_err());
        let mut no_sid = good.clone();
        no_sid.as_object_mut().unwrap().remove("sid");
        assert!(verify_hint(&token(&ours, no_sid), &keys, "https://op", 1000).is_err());
        assert!(verify_hint(&token(&ours, good.clone()), &keys, "https://op", 10).is_err());
        // A logout token, signed with the same key and naming the session, is no ID token.
        let logout = Signer::from_jwk(&ours).unwrap().sign_typed(good.to_string().as_bytes(), "logout+jwt").unwrap();
        assert!(verify_hint(&logout, &keys, "https://op", 1000).is_err());
        // alg:none with our payload, and a payload changed under our signature.
        let real = token(&ours, good.clone());
        let parts: Vec<&str> = real.split('.').collect();
        let b64 = |v: &Value| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let none = format!("{}.{}.", b64(&json!({"alg": "none"})), parts[1]);
        assert!(verify_hint(&none, &keys, "https://op", 1000).is_err());
        let mut changed = good;
        changed["sid"] = json!("s2");
        let modified = format!("{}.{}.{}", parts[0], b64(&changed), parts[2]);
        assert!(verify_hint(&modified, &keys, "https://op", 1000).is_err());
    }

    fn registered(id: &str) -> Option<Vec<String>> {
        (id == "c2").then(|| vec!["https://rp/bye".to_string(), "https://rp/bye?x=1".to_string()])
    }

    fn hint() -> Option<Result<Hint, &'static str>> {
        Some(Ok(Hint { sid: "s1".into(), audience: vec!["gone".into(), "c2".into()] }))
    }

    #[test]
    fn only_registered_uris_of_the_hinted_client_are_redirected_to() {
        let p = |uri: Option<&str>, state: Option<&str>| LogoutParams {
            post_logout_redirect_uri: uri.map(String::from),
            state: state.map(String::from),
            ..Default::default()
        };
        let rp = |r: &str| Start::Rp { client_id: "c2".into(), sid: "s1".into(), redirect: r.into() };
        assert_eq!(
            start(&p(Some("https://rp/bye"), Some("a b")), hint(), &registered, "/cb"),
            rp("https://rp/bye?state=a+b")
        );
        assert_eq!(start(&p(Some("https://rp/bye?x=1"), None), hint(), &registered, "/cb"), rp("https://rp/bye?x=1"));
        assert_eq!(start(&p(None, Some("s")), hint(), &registered, "/cb"), rp("/cb"));
        for bad in ["https://rp/bye?foo=bar", "https://rp/bye/", "https://RP/bye", "https://rp/bye#f"] {
            assert!(matches!(start(&p(Some(bad), None), hint(), &registered, "/cb"), Start::Refuse(_)), "{bad}");
        }
        // Without a hint: no RP URI at all; a lone state is dropped.
        assert!(matches!(start(&p(Some("https://rp/bye"), None), None, &registered, "/cb"), Start::Refuse(_)));
        assert_eq!(start(&p(None, Some("s")), None, &registered, "/cb"), Start::Op { redirect: "/cb".into() });
        assert!(matches!(start(&p(None, None), Some(Err("bad")), &registered, "/cb"), Start::Refuse(_)));
        // A client_id must be an audience of the hint, and is the client used.
        let mut q = p(Some("https://rp/bye"), None);
        q.client_id = Some("other".into());
        assert!(matches!(start(&q, hint(), &registered, "/cb"), Start::Refuse(_)));
        q.client_id = Some("gone".into());
        assert!(matches!(start(&q, hint(), &registered, "/cb"), Start::Refuse(_)));
        let none_left = Some(Ok(Hint { sid: "s".into(), audience: vec!["gone".into()] }));
        assert!(matches!(start(&p(None, None), none_left, &registered, "/cb"), Start::Refuse(_)));
    }

    #[test]
    fn logout_tokens_and_pages() {
        let c = logout_token_claims("https://op", "c", "s", "j", 10);
        assert_eq!(c["events"], json!({BACKCHANNEL_EVENT: {}}));
        assert_eq!((c["aud"].clone(), c["sid"].clone(), c.get("nonce")), (json!(["c"]), json!("s"), None));
        assert_eq!(
            frontchannel_url("https://rp/fc?a=1", true, "https://op", "s"),
            "https://rp/fc?a=1&iss=https%3A%2F%2Fop&sid=s"
        );
        assert_eq!(frontchannel_url("https://rp/fc", false, "https://op", "s"), "https://rp/fc");
        let page = frontchannel_page(&["https://rp/fc?a=1&b=\"2".into()], "https://rp/bye?state=<x>");
        assert!(page.contains("src=\"https://rp/fc?a=1&amp;b=&quot;2\""), "{page}");
        assert!(page.contains("data-next=\"https://rp/bye?state=&lt;x&gt;\""), "{page}");
        assert!(!page.contains("<x>"));
    }
}
