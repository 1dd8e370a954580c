//! Client authentication at the token and revocation endpoints (RFC 6749 §2.3): which
//! credentials were presented, and whether the method matches the client's registration.
//!
//! Invariants: exactly one method per request (§2.3: "MUST NOT use more than one authentication
//! method in each request"); an assertion is never ignored (that would turn it into `none`);
//! Basic credentials are form-url-decoded after base64 (§2.3.1);
//! the registered `token_endpoint_auth_method` must match the presented method exactly, as
//! Hydra requires; secret values never appear in errors or Debug output.

use crate::http::form::{form_unescape, Form};
use crate::oauth2::error::{ErrorCode, OAuthError};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// How the client presented itself.
#[derive(PartialEq, Eq)]
pub enum Presented {
    Basic {
        id: String,
        secret: String,
    },
    Post {
        id: String,
        secret: String,
    },
    /// A public client: `client_id` in the body, no secret.
    None {
        id: String,
    },
    /// `private_key_jwt` or (`hmac`: its header names an HS algorithm) `client_secret_jwt`: a
    /// signed assertion (RFC 7523 §2.2); `id` is the body's `client_id` or the assertion's claimed
    /// `sub`, checked against the verified claims later.
    Assertion {
        id: String,
        assertion: String,
        hmac: bool,
    },
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Presented::Basic { id, .. } => write!(f, "Basic({id:?}, ..)"),
            Presented::Post { id, .. } => write!(f, "Post({id:?}, ..)"),
            Presented::None { id } => write!(f, "None({id:?})"),
            Presented::Assertion { id, .. } => write!(f, "Assertion({id:?}, ..)"),
        }
    }
}

impl Presented {
    pub fn id(&self) -> &str {
        match self {
            Presented::Basic { id, .. }
            | Presented::Post { id, .. }
            | Presented::None { id }
            | Presented::Assertion { id, .. } => id,
        }
    }

    pub fn method(&self) -> &'static str {
        match self {
            Presented::Basic { .. } => "client_secret_basic",
            Presented::Post { .. } => "client_secret_post",
            Presented::None { .. } => "none",
            Presented::Assertion { hmac: false, .. } => "private_key_jwt",
            Presented::Assertion { hmac: true, .. } => "client_secret_jwt",
        }
    }

    pub fn is_basic(&self) -> bool {
        matches!(self, Presented::Basic { .. })
    }

    pub fn secret(&self) -> Option<&str> {
        match self {
            Presented::Basic { secret, .. } | Presented::Post { secret, .. } => Some(secret),
            Presented::None { .. } | Presented::Assertion { .. } => None,
        }
    }
}

fn malformed_basic() -> OAuthError {
    OAuthError::hint(
        ErrorCode::InvalidRequest,
        "The client credentials in the HTTP authorization header could not be decoded.",
    )
}

/// The request's one `Authorization` header, if any. Two or more are refused: the field is not a
/// list (RFC 9110 §11.6.2), and two credentials in one request are `invalid_request`
/// (RFC 6749 §5.2). Hydra takes the first; we are stricter (docs/compat.md).
pub fn single_authorization<'a>(mut values: impl Iterator<Item = &'a str>) -> Result<Option<&'a str>, OAuthError> {
    let first = values.next();
    if values.next().is_some() {
        return Err(OAuthError::hint(
            ErrorCode::InvalidRequest,
            "The request carries more than one Authorization header; send exactly one.",
        ));
    }
    Ok(first)
}

/// RFC 7521 §4.2 client assertion parameters: another authentication method.
fn has_assertion(form: &Form) -> bool {
    form.get("client_assertion").is_some() || form.get("client_assertion_type").is_some()
}

fn two_methods() -> OAuthError {
    OAuthError::hint(
        ErrorCode::InvalidRequest,
        "The request presents more than one client authentication method (RFC 6749 §2.3); use exactly one.",
    )
}

/// Extracts the presented credentials from the `Authorization` header and the form body.
pub fn extract(authorization: Option<&str>, form: &Form) -> Result<Presented, OAuthError> {
    let basic = match authorization {
        // `get` rather than indexing: the header may hold multi-byte UTF-8 at any offset.
        Some(h) => match (h.get(..6), h.get(6..)) {
            (Some(scheme), Some(rest)) if scheme.eq_ignore_ascii_case("basic ") => Some(rest.trim()),
            _ => None,
        },
        None => None,
    };
    if let Some(encoded) = basic {
        let raw = STANDARD.decode(encoded).map_err(|_| malformed_basic())?;
        let colon = raw.iter().position(|b| *b == b':').ok_or_else(malformed_basic)?;
        let id = form_unescape(&raw[..colon]).map_err(|_| malformed_basic())?;
        let secret = form_unescape(&raw[colon + 1..]).map_err(|_| malformed_basic())?;
        if id.is_empty() {
            return Err(malformed_basic());
        }
        if form.get("client_secret").is_some() || has_assertion(form) {
            return Err(two_methods());
        }
        if form.get("client_id").is_some_and(|b| b != id) {
            return Err(OAuthError::hint(
                ErrorCode::InvalidRequest,
                "The client_id in the request body does not match the HTTP authorization header.",
            ));
        }
        // An empty password is no secret: a public client sent its id the way OAuth libraries
        // in header mode do (fosite treats it as `none` too).
        if secret.is_empty() {
            return Ok(Presented::None { id });
        }
        return Ok(Presented::Basic { id, secret });
    }
    if has_assertion(form) {
        if form.get("client_secret").is_some() {
            return Err(two_methods());
        }
        if form.get("client_assertion_type") != Some(crate::oauth2::client_assertion::ASSERTION_TYPE) {
            return Err(OAuthError::hint(
                ErrorCode::InvalidClient,
                "The client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
            ));
        }
        let Some(assertion) = form.get("client_assertion").filter(|a| !a.is_empty()) else {
            return Err(OAuthError::hint(ErrorCode::InvalidClient, "The client_assertion is missing."));
        };
        let claimed = crate::oauth2::client_assertion::claimed_client(assertion);
        let id = match (form.get("client_id").filter(|i| !i.is_empty()), claimed) {
            (Some(id), Some(sub)) if id != sub => {
                return Err(OAuthError::hint(
                    ErrorCode::InvalidClient,
                    "The client_id does not match the subject of the client_assertion.",
                ))
            }
            (Some(id), _) => id.to_string(),
            (None, Some(sub)) => sub,
            (None, None) => {
                return Err(OAuthError::hint(ErrorCode::InvalidClient, "The client_assertion names no client (sub)."))
            }
        };
        // Which method the assertion is (checked against the registered one before anything else):
        // so an HMAC assertion never reaches the public-key check, nor a signed one the secret's.
        let hmac = crate::jose::jws::peek(assertion, 0)
            .and_then(|h| h.get("alg")?.as_str().map(|a| a.starts_with("HS")))
            .unwrap_or(false);
        return Ok(Presented::Assertion { id, assertion: assertion.to_string(), hmac });
    }
    // An empty client_secret is no secret (as fosite): the client authenticates as `none`.
    match (form.get("client_id"), form.get("client_secret").filter(|s| !s.is_empty())) {
        (Some(id), Some(secret)) if !id.is_empty() => Ok(Presented::Post { id: id.into(), secret: secret.into() }),
        (Some(id), None) if !id.is_empty() => Ok(Presented::None { id: id.into() }),
        _ => Err(OAuthError::hint(
            ErrorCode::InvalidClient,
            "Client credentials missing or malformed in both HTTP Authorization header and HTTP POST body.",
        )),
    }
}

/// Hydra: the presented method must be exactly the registered one.
pub fn check_method(registered: &str, presented: &Presented) -> Result<(), OAuthError> {
    if registered == presented.method() {
        return Ok(());
    }
    Err(OAuthError::hint(
        ErrorCode::InvalidClient,
        format!(
            "The OAuth 2.0 Client supports client authentication method '{registered}', but method '{}' was requested. You must configure the OAuth 2.0 client's 'token_endpoint_auth_method' value to accept '{}'.",
            presented.method(),
            presented.method()
        ),
    )
    .with_basic(presented.is_basic()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::form::decode;

    fn basic(id: &str, secret: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
    }

    #[test]
    fn basic_is_form_decoded() {
        let f = decode(b"grant_type=client_credentials").unwrap();
        let p = extract(Some(&basic("my%20client", "s%3Acret+x")), &f).unwrap();
        assert_eq!(p, Presented::Basic { id: "my client".into(), secret: "s:cret x".into() });
        assert_eq!(p.method(), "client_secret_basic");
    }

    #[test]
    fn post_and_none() {
        let f = decode(b"client_id=a&client_secret=b").unwrap();
        assert_eq!(extract(None, &f).unwrap(), Presented::Post { id: "a".into(), secret: "b".into() });
        let f = decode(b"client_id=a").unwrap();
        assert_eq!(extract(None, &f).unwrap(), Presented::None { id: "a".into() });
        let f = decode(b"client_id=a").unwrap();
        assert_eq!(
            extract(Some("Bearer xyz"), &f).unwrap(),
            Presented::None { id: "a".into() },
            "non-Basic schemes are not client authentication"
        );
        // An empty secret, in the body or as the Basic password, is no secret (as fosite).
        let f = decode(b"client_id=a&client_secret=").unwrap();
        assert_eq!(extract(None, &f).unwrap(), Presented::None { id: "a".into() });
        let f = decode(b"").unwrap();
        assert_eq!(extract(Some(&basic("a", "")), &f).unwrap(), Presented::None { id: "a".into() });
    }

    #[test]
    fn errors() {
        let empty = decode(b"").unwrap();
        let cases: Vec<(Option<String>, &[u8], ErrorCode, &str)> = vec![
            (None, b"", ErrorCode::InvalidClient, "nothing presented"),
            (None, b"client_secret=x", ErrorCode::InvalidClient, "secret without id"),
            (Some("Basic !!!".into()), b"", ErrorCode::InvalidRequest, "bad base64"),
            (Some(format!("Basic {}", STANDARD.encode("nocolon"))), b"", ErrorCode::InvalidRequest, "no colon"),
            (Some(basic("", "x")), b"", ErrorCode::InvalidRequest, "empty id"),
            (Some(basic("a%zz", "x")), b"", ErrorCode::InvalidRequest, "bad escape"),
            (Some(basic("a", "b")), b"client_secret=b", ErrorCode::InvalidRequest, "two methods"),
            (Some(basic("a", "b")), b"client_id=other", ErrorCode::InvalidRequest, "id mismatch"),
            (Some(basic("a", "b")), b"client_assertion=x.y.z", ErrorCode::InvalidRequest, "basic and assertion"),
            (
                Some(basic("a", "b")),
                b"client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer",
                ErrorCode::InvalidRequest,
                "basic and assertion type",
            ),
            (None, b"client_id=a&client_secret=b&client_assertion=x", ErrorCode::InvalidRequest, "post and assertion"),
            (None, b"client_id=a&client_assertion=x", ErrorCode::InvalidClient, "assertion without its type"),
            (
                None,
                b"client_id=a&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Asaml2-bearer&client_assertion=x",
                ErrorCode::InvalidClient,
                "another assertion type",
            ),
            (
                None,
                b"client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=x.y.z",
                ErrorCode::InvalidClient,
                "no client named",
            ),
        ];
        for (auth, body, code, what) in cases {
            let f = if body.is_empty() { empty.clone() } else { decode(body).unwrap() };
            assert_eq!(extract(auth.as_deref(), &f).unwrap_err().code, code, "{what}");
        }
        let f = decode(b"client_id=a").unwrap();
        assert!(extract(Some(&basic("a", "b")), &f).is_ok(), "same id in body and header is fine");
        let f = decode(b"client_id=a&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=h.p.s").unwrap();
        let p = extract(None, &f).unwrap();
        assert_eq!((p.id(), p.method(), p.secret()), ("a", "private_key_jwt", None));
        // Multi-byte UTF-8 around the scheme boundary must not panic.
        for h in ["Basicé", "Basé", "éééé", "Basic é", "Basic"] {
            let _ = extract(Some(h), &f);
        }
        assert_eq!(extract(Some("Basic é"), &empty).unwrap_err().code, ErrorCode::InvalidRequest);
        assert_eq!(single_authorization(["Basic a"].into_iter()).unwrap(), Some("Basic a"));
        assert_eq!(single_authorization(std::iter::empty()).unwrap(), None);
        let two = single_authorization(["Basic a", "Basic b"].into_iter()).unwrap_err();
        assert_eq!(two.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn method_must_match() {
        let p = Presented::Post { id: "a".into(), secret: "b".into() };
        assert!(check_method("client_secret_post", &p).is_ok());
        let e = check_method("client_secret_basic", &p).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidClient);
        assert!(!e.basic_auth);
        let b = Presented::Basic { id: "a".into(), secret: "b".into() };
        assert!(check_method("client_secret_post", &b).unwrap_err().basic_auth);
        assert!(format!("{b:?}").find('b').is_none() || !format!("{b:?}").contains("\"b\""), "secret not in Debug");
    }
}
