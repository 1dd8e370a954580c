//! `postgres://` and `postgresql://` DSNs as Hydra reads them: libpq's URL form (user, password,
//! host, port, database) with the pool options Hydra strips before the driver sees the rest
//! (`max_conns`, `max_idle_conns`, `max_conn_lifetime`, `max_conn_idle_time`) and the connection
//! options of its driver (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`, `connect_timeout`,
//! `application_name`).
//!
//! Invariants: the password never appears in `Debug` output or in an error message; an option
//! this server does not know is an error naming it, never ignored; `sslmode` defaults to
//! `require`, as Hydra documents (libpq's own default, `prefer`, would fall back to plain text).

use std::path::PathBuf;
use std::time::Duration;

/// How the connection to PostgreSQL is secured (`sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS, the certificate not checked (libpq's `require` without a root certificate).
    Require,
    /// TLS, the certificate checked against `sslrootcert` or the system roots, any host name.
    VerifyCa,
    /// TLS, the certificate checked and its name matched against the host.
    VerifyFull,
}

/// A parsed PostgreSQL DSN.
#[derive(Clone, PartialEq, Eq)]
pub struct PgDsn {
    pub user: String,
    pub password: Option<String>,
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub sslmode: SslMode,
    pub sslrootcert: Option<PathBuf>,
    pub sslcert: Option<PathBuf>,
    pub sslkey: Option<PathBuf>,
    pub connect_timeout: Option<Duration>,
    pub application_name: Option<String>,
    /// Connections per process (`max_conns`); `None`: Hydra's default, twice the CPUs.
    pub max_conns: Option<u32>,
    pub max_idle_conns: Option<u32>,
    pub max_conn_lifetime: Option<Duration>,
    pub max_conn_idle_time: Option<Duration>,
}

impl std::fmt::Debug for PgDsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgDsn")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("dbname", &self.dbname)
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_conns", &self.max_conns)
            .finish_non_exhaustive()
    }
}

/// Schemes Hydra accepts that this server does not implement.
const OTHER_SCHEMES: [&str; 6] = ["mysql", "cockroach", "cockroachdb", "sqlite", "sqlite3", "file"];

/// Whether `scheme` is one of Hydra's DSN schemes this server refuses (with a clear message).
pub fn is_unsupported_hydra_scheme(scheme: &str) -> bool {
    OTHER_SCHEMES.contains(&scheme)
}

fn percent_decoded(s: &str, what: &str) -> Result<String, String> {
    crate::http::form::percent_decode(s.as_bytes())
        .map_err(|e| format!("the DSN's {what} is not valid: {}", e.description()))
}

fn duration(key: &str, v: &str) -> Result<Duration, String> {
    crate::duration::parse_go_duration(v)
        .ok_or_else(|| format!("{key} must be a duration such as 30s or 1h, not {v:?}"))
}

fn count(key: &str, v: &str) -> Result<u32, String> {
    v.parse::<u32>().map_err(|_| format!("{key} must be a whole number, not {v:?}"))
}

/// Parses `postgres://user:password@host:port/db?options` (`postgresql://` too). The error names
/// what is wrong and never repeats the password.
pub fn parse(dsn: &str) -> Result<PgDsn, String> {
    let rest = dsn
        .strip_prefix("postgres://")
        .or_else(|| dsn.strip_prefix("postgresql://"))
        .ok_or("a PostgreSQL DSN starts with postgres:// or postgresql://")?;
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    if rest.contains('#') || query.is_some_and(|q| q.contains('#')) {
        return Err("a PostgreSQL DSN has no fragment (#)".into());
    }
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, p),
        None => (rest, ""),
    };
    // The password may contain '@' only percent-encoded; the last '@' ends the user part.
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        None => (String::new(), None),
        Some(u) => match u.split_once(':') {
            Some((name, pw)) => (percent_decoded(name, "user")?, Some(percent_decoded(pw, "password")?)),
            None => (percent_decoded(u, "user")?, None),
        },
    };
    if user.is_empty() {
        return Err("the DSN names no user: postgres://user:password@host:5432/database".into());
    }
    let (host, port) = split_host_port(hostport)?;
    let dbname = if path.is_empty() { user.clone() } else { percent_decoded(path, "database name")? };
    if dbname.contains('/') {
        return Err("the DSN's database name contains '/'".into());
    }
    let mut out = PgDsn {
        user,
        password,
        host,
        port,
        dbname,
        sslmode: SslMode::Require,
        sslrootcert: None,
        sslcert: None,
        sslkey: None,
        connect_timeout: None,
        application_name: None,
        max_conns: None,
        max_idle_conns: None,
        max_conn_lifetime: None,
        max_conn_idle_time: None,
    };
    let mut seen: Vec<String> = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decoded(k, "option name")?;
        let v = percent_decoded(v, &format!("option {key}"))?;
        if seen.contains(&key) {
            return Err(format!("the DSN gives {key} twice"));
        }
        match key.as_str() {
            "sslmode" => {
                out.sslmode = match v.as_str() {
                    "disable" => SslMode::Disable,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    "allow" | "prefer" => {
                        return Err(format!(
                            "sslmode={v} would fall back to plain text; use disable, require, verify-ca or verify-full"
                        ))
                    }
                    _ => return Err(format!("sslmode must be disable, require, verify-ca or verify-full, not {v:?}")),
                }
            }
            "sslrootcert" => out.sslrootcert = Some(PathBuf::from(v)),
            "sslcert" => out.sslcert = Some(PathBuf::from(v)),
            "sslkey" => out.sslkey = Some(PathBuf::from(v)),
            // Seconds, as libpq; 0 means wait forever.
            "connect_timeout" => {
                let secs = v.parse::<u64>().map_err(|_| format!("connect_timeout must be whole seconds, not {v:?}"))?;
                out.connect_timeout = (secs > 0).then(|| Duration::from_secs(secs));
            }
            "application_name" | "fallback_application_name" => out.application_name = Some(v),
            "max_conns" => {
                let n = count(&key, &v)?;
                if n == 0 {
                    return Err("max_conns must be at least 1".into());
                }
                out.max_conns = Some(n);
            }
            "max_idle_conns" => out.max_idle_conns = Some(count(&key, &v)?),
            "max_conn_lifetime" => out.max_conn_lifetime = Some(duration(&key, &v)?),
            "max_conn_idle_time" => out.max_conn_idle_time = Some(duration(&key, &v)?),
            other => return Err(format!("the DSN option {other:?} is not supported")),
        }
        seen.push(key);
    }
    if (out.sslcert.is_some()) != (out.sslkey.is_some()) {
        return Err("sslcert and sslkey go together".into());
    }
    if out.sslmode == SslMode::Disable && (out.sslrootcert.is_some() || out.sslcert.is_some()) {
        return Err("sslmode=disable with TLS files: choose require, verify-ca or verify-full".into());
    }
    Ok(out)
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; the port defaults to 5432.
fn split_host_port(s: &str) -> Result<(String, u16), String> {
    let port = |p: &str| {
        p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| format!("the DSN's port {p:?} is not a port"))
    };
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or("the DSN's IPv6 host lacks its ']'")?;
        match after {
            "" => (h.to_string(), 5432),
            p => (h.to_string(), port(p.strip_prefix(':').ok_or("the DSN's host is followed by junk")?)?),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (percent_decoded(h, "host")?, port(p)?),
            None => (percent_decoded(s, "host")?, 5432),
        }
    };
    if host.is_empty() {
        return Err("the DSN names no host (Unix sockets are not supported): postgres://user@host:5432/db".into());
    }
    if host.contains(',') {
        return Err("the DSN names several hosts; give one".into());
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hydra_style_dsns_parse() {
        let d = parse(
            "postgres://hydra:s%40cret%3A1@db.example:6432/hydra_db?sslmode=verify-full&sslrootcert=/etc/ca.pem\
             &max_conns=20&max_idle_conns=4&max_conn_lifetime=1h&max_conn_idle_time=30s&connect_timeout=5",
        )
        .unwrap();
        assert_eq!((d.user.as_str(), d.password.as_deref()), ("hydra", Some("s@cret:1")));
        assert_eq!((d.host.as_str(), d.port, d.dbname.as_str()), ("db.example", 6432, "hydra_db"));
        assert_eq!(d.sslmode, SslMode::VerifyFull);
        assert_eq!(d.sslrootcert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!((d.max_conns, d.max_idle_conns), (Some(20), Some(4)));
        assert_eq!(d.max_conn_lifetime, Some(Duration::from_secs(3600)));
        assert_eq!(d.max_conn_idle_time, Some(Duration::from_secs(30)));
        assert_eq!(d.connect_timeout, Some(Duration::from_secs(5)));

        let d = parse("postgresql://u@[::1]/").unwrap();
        assert_eq!((d.host.as_str(), d.port, d.dbname.as_str()), ("::1", 5432, "u"));
        assert_eq!(d.sslmode, SslMode::Require, "Hydra's documented default");
        assert_eq!(parse("postgres://u@h?sslmode=disable&connect_timeout=0").unwrap().connect_timeout, None);
        assert_eq!(parse("postgres://u@[::1]:5433/d").unwrap().port, 5433);
    }

    #[test]
    fn the_password_never_shows() {
        let d = parse("postgres://u:hunter2@h/d").unwrap();
        assert!(!format!("{d:?}").contains("hunter2"));
        for bad in ["postgres://u:hunter2@h/d?nope=1", "postgres://u:hunter2@h:99999/d", "postgres://u:hunter2@/d"] {
            let e = parse(bad).unwrap_err();
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn what_is_refused_and_why() {
        for (dsn, says) in [
            ("mysql://u@h/d", "postgres://"),
            ("postgres://h/d", "no user"),
            ("postgres://u@/d", "no host"),
            ("postgres://u@h:0/d", "not a port"),
            ("postgres://u@h:x/d", "not a port"),
            ("postgres://u@a,b/d", "several hosts"),
            ("postgres://u@h/d?sslmode=prefer", "plain text"),
            ("postgres://u@h/d?sslmode=bogus", "sslmode must be"),
            ("postgres://u@h/d?max_conns=0", "at least 1"),
            ("postgres://u@h/d?max_conns=lots", "whole number"),
            ("postgres://u@h/d?max_conn_lifetime=forever", "duration"),
            ("postgres://u@h/d?connect_timeout=1.5", "whole seconds"),
            ("postgres://u@h/d?search_path=x", "\"search_path\" is not supported"),
            ("postgres://u@h/d?sslmode=disable&sslmode=require", "twice"),
            ("postgres://u@h/d?sslcert=/c.pem", "go together"),
            ("postgres://u@h/d?sslmode=disable&sslrootcert=/ca.pem", "sslmode=disable"),
            ("postgres://u@h/d#x", "fragment"),
            ("postgres://u@[::1/d", "']'"),
            ("postgres://u%zz@h/d", "user is not valid"),
        ] {
            let e = parse(dsn).unwrap_err();
            assert!(e.contains(says), "{dsn}: {e}");
        }
        assert!(is_unsupported_hydra_scheme("cockroach") && is_unsupported_hydra_scheme("sqlite"));
        assert!(!is_unsupported_hydra_scheme("postgres"));
    }
}
