//! TLS settings of the listeners (`serve.tls`, `serve.public.tls`, `serve.admin.tls`):
//! certificate and key from a file or inline base64.

use super::{err, ConfigError, Raw};
use std::path::PathBuf;

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
pub(super) fn tls_for(raw: &Raw, api: &str) -> Result<Option<TlsFiles>, ConfigError> {
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
