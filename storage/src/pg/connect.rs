//! Opening one connection: resolve, TCP connect with a deadline, TLS per [`TlsMode`], startup.

use crate::pg::tls;
use crate::StoreError;
use monoio::io::IntoPollIo;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// How the connection is secured; libpq's `sslmode` values that never fall back to plain text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    /// Encrypted; the certificate is checked only when a root certificate is given (then as
    /// `VerifyCa`), as libpq does.
    Require,
    /// The chain is checked against the root certificate (or the Mozilla roots); any name.
    VerifyCa,
    /// The chain and the host name are checked.
    VerifyFull,
}

/// What a connection needs (the server maps its parsed DSN onto this).
#[derive(Clone)]
pub struct PgOptions {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
    pub tls: TlsMode,
    /// PEM file of the certificates to trust (`sslrootcert`); the Mozilla roots when `None`.
    pub root_cert: Option<PathBuf>,
    /// TCP connect, TLS handshake and startup together; `None`: no deadline.
    pub connect_timeout: Option<Duration>,
    pub application_name: Option<String>,
    /// A connection older than this is replaced before its next use (`max_conn_lifetime`).
    pub max_lifetime: Option<Duration>,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("dbname", &self.dbname)
            .field("tls", &self.tls)
            .field("root_cert", &self.root_cert)
            .finish_non_exhaustive()
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(format!("PostgreSQL: {what}: {e}"))
}

/// Resolves on a thread of its own: the system resolver blocks, and a worker must not.
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, StoreError> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = futures_channel::oneshot::channel();
    let name = host.to_string();
    std::thread::Builder::new()
        .name("pg-resolve".into())
        .spawn(move || {
            let _ = tx.send((name.as_str(), port).to_socket_addrs().map(|a| a.collect::<Vec<_>>()));
        })
        .map_err(|e| failed("cannot start a resolver thread", e))?;
    match rx.await {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) => Err(failed("cannot resolve the host", host)),
        Ok(Err(e)) => Err(failed(&format!("cannot resolve {host}"), e)),
        Err(_) => Err(failed("cannot resolve the host", "the resolver thread ended")),
    }
}

/// Opens a connection on the calling thread's monoio runtime (which needs its timer enabled when
/// `connect_timeout` is set) and spawns the future that drives it there. The client may be
/// shared by tasks of this thread; statements they issue concurrently are pipelined.
pub async fn connect(o: &PgOptions) -> Result<tokio_postgres::Client, StoreError> {
    let work = open(o);
    match o.connect_timeout {
        Some(d) => monoio::time::timeout(d, work)
            .await
            .unwrap_or_else(|_| Err(failed("connecting timed out", format!("after {} s", d.as_secs_f64())))),
        None => work.await,
    }
}

async fn open(o: &PgOptions) -> Result<tokio_postgres::Client, StoreError> {
    let mut last = failed("cannot connect", "no address");
    for addr in resolve(&o.host, o.port).await? {
        match monoio::net::TcpStream::connect_addr(addr).await {
            Ok(tcp) => return startup(o, tcp).await,
            Err(e) => last = failed(&format!("cannot connect to {addr}"), e),
        }
    }
    Err(last)
}

async fn startup(o: &PgOptions, tcp: monoio::net::TcpStream) -> Result<tokio_postgres::Client, StoreError> {
    tcp.set_nodelay(true).map_err(|e| failed("socket option", e))?;
    let io = tcp.into_poll_io().map_err(|e| failed("socket", e))?;
    let mut cfg = tokio_postgres::Config::new();
    cfg.user(&o.user).dbname(&o.dbname);
    if let Some(p) = &o.password {
        cfg.password(p);
    }
    if let Some(a) = &o.application_name {
        cfg.application_name(a);
    }
    // Every statement is prepared once per connection and its parameters never change the
    // best plan (keys, arrays of rows); left to choose, PostgreSQL plans the CTE statements
    // afresh at every execution (a custom plan): a quarter of its CPU under refresh load
    // (`perf record` of the cluster during `PG=1 loadtest/run.sh`, GetCachedPlan 30.8 %).
    cfg.options("-c plan_cache_mode=force_generic_plan");
    // The driver only asks for TLS or not; which certificates pass is our verifier's job.
    let describe = |e: tokio_postgres::Error| failed("startup", e);
    let client = if o.tls == TlsMode::Disable {
        cfg.ssl_mode(tokio_postgres::config::SslMode::Disable);
        let (client, conn) = cfg.connect_raw(io, tokio_postgres::NoTls).await.map_err(describe)?;
        monoio::spawn(drive(conn));
        client
    } else {
        cfg.ssl_mode(tokio_postgres::config::SslMode::Require);
        let connector = tls::Connector::new(o.tls, o.root_cert.as_deref(), &o.host)?;
        let (client, conn) = cfg.connect_raw(io, connector).await.map_err(describe)?;
        monoio::spawn(drive(conn));
        client
    };
    Ok(client)
}

/// Runs a connection until it closes; its client's calls fail from then on.
async fn drive<F: std::future::Future<Output = Result<(), tokio_postgres::Error>>>(conn: F) {
    // The error reaches every caller of the client; nothing to do with it here.
    let _ = conn.await;
}
