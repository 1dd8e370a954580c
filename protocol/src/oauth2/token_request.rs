//! The token request (RFC 6749 §4.4.2, §5): parsed once into a closed enum, one variant per
//! grant type this server handles; every handler matches it exhaustively.

use crate::http::form::Form;
use crate::oauth2::error::{ErrorCode, OAuthError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRequest {
    ClientCredentials {
        scope: Option<String>,
        audience: Vec<String>,
    },
    AuthorizationCode {
        code: String,
        redirect_uri: Option<String>,
        code_verifier: Option<String>,
    },
    RefreshToken {
        refresh_token: String,
        scope: Option<String>,
    },
    /// RFC 8628 §3.4.
    DeviceCode {
        device_code: String,
    },
    /// RFC 7523 §2.1.
    JwtBearer {
        assertion: String,
        scope: Option<String>,
        audience: Vec<String>,
    },
}

fn required(form: &Form, name: &str) -> Result<String, OAuthError> {
    match form.get(name) {
        Some(v) if !v.is_empty() => Ok(v.to_string()),
        _ => {
            Err(OAuthError::hint(ErrorCode::InvalidRequest, format!("The request is missing the '{name}' parameter.")))
        }
    }
}

fn optional(form: &Form, name: &str) -> Option<String> {
    form.get(name).filter(|v| !v.is_empty()).map(str::to_string)
}

/// Grant types defined by RFCs that this server does not (yet) implement: answered with
/// `unsupported_grant_type` like any unknown value.
pub fn parse(form: &Form) -> Result<TokenRequest, OAuthError> {
    let grant_type = match form.get("grant_type") {
        Some(g) if !g.is_empty() => g,
        _ => {
            return Err(OAuthError::hint(
                ErrorCode::InvalidRequest,
                "The request is missing the 'grant_type' parameter.",
            ))
        }
    };
    // Space-separated, repeated, or both (Hydra accepts either form).
    let audience =
        || form.get_all("audience").flat_map(|a| a.split(' ')).filter(|s| !s.is_empty()).map(str::to_string).collect();
    match grant_type {
        "client_credentials" => {
            Ok(TokenRequest::ClientCredentials { scope: form.get("scope").map(str::to_string), audience: audience() })
        }
        crate::oauth2::jwt_bearer::GRANT_TYPE => Ok(TokenRequest::JwtBearer {
            assertion: required(form, "assertion")?,
            scope: optional(form, "scope"),
            audience: audience(),
        }),
        crate::oauth2::device::GRANT_TYPE => {
            Ok(TokenRequest::DeviceCode { device_code: required(form, "device_code")? })
        }
        "authorization_code" => Ok(TokenRequest::AuthorizationCode {
            code: required(form, "code")?,
            redirect_uri: optional(form, "redirect_uri"),
            code_verifier: optional(form, "code_verifier"),
        }),
        "refresh_token" => Ok(TokenRequest::RefreshToken {
            refresh_token: required(form, "refresh_token")?,
            scope: optional(form, "scope"),
        }),
        _ => Err(OAuthError::hint(ErrorCode::UnsupportedGrantType, "The grant_type is not supported by this server.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::form::decode;

    #[test]
    fn parses_jwt_bearer() {
        let f = decode(b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b.c&scope=read")
            .unwrap();
        assert_eq!(
            parse(&f).unwrap(),
            TokenRequest::JwtBearer { assertion: "a.b.c".into(), scope: Some("read".into()), audience: vec![] }
        );
        let f = decode(b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer").unwrap();
        assert_eq!(parse(&f).unwrap_err().code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn parses_client_credentials() {
        let f = decode(b"grant_type=client_credentials&scope=a+b&audience=https%3A%2F%2Fx+https%3A%2F%2Fy").unwrap();
        assert_eq!(
            parse(&f).unwrap(),
            TokenRequest::ClientCredentials {
                scope: Some("a b".into()),
                audience: vec!["https://x".into(), "https://y".into()]
            }
        );
    }

    #[test]
    fn repeated_audience_is_collected() {
        let f = crate::http::form::decode_multi(b"grant_type=client_credentials&audience=a+b&audience=c").unwrap();
        assert_eq!(
            parse(&f).unwrap(),
            TokenRequest::ClientCredentials { scope: None, audience: vec!["a".into(), "b".into(), "c".into()] }
        );
    }

    #[test]
    fn missing_and_unknown_grant_types() {
        assert_eq!(parse(&decode(b"").unwrap()).unwrap_err().code, ErrorCode::InvalidRequest);
        assert_eq!(parse(&decode(b"grant_type=").unwrap()).unwrap_err().code, ErrorCode::InvalidRequest);
        assert_eq!(parse(&decode(b"grant_type=password").unwrap()).unwrap_err().code, ErrorCode::UnsupportedGrantType);
        assert_eq!(
            parse(&decode(b"grant_type=CLIENT_CREDENTIALS").unwrap()).unwrap_err().code,
            ErrorCode::UnsupportedGrantType
        );
    }
}
