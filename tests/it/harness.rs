//! Test harness: starts the real `hydra` binary on ephemeral ports and speaks raw HTTP/1.1 to it
//! over `std::net::TcpStream`.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_hydra");
pub const SECRET: &str = "integration-test-system-secret-0123";
pub const DRIVERS: [&str; 2] = ["io_uring", "legacy"];

// ---------------------------------------------------------------------------------------------
// Spawning
// ---------------------------------------------------------------------------------------------

type SpawnReq = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Every server is spawned from one thread that lives as long as the test process, so that
/// `PR_SET_PDEATHSIG` (which fires when the *spawning thread* exits) only kills servers when the
/// test binary itself goes away — including shared servers held in statics, which never drop.
fn spawner() -> &'static Mutex<mpsc::Sender<SpawnReq>> {
    static S: OnceLock<Mutex<mpsc::Sender<SpawnReq>>> = OnceLock::new();
    S.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnReq>();
        std::thread::Builder::new()
            .name("server-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
                loop {
                    std::thread::park();
                }
            })
            .expect("spawner thread");
        Mutex::new(tx)
    })
}

fn spawn(mut cmd: Command) -> Child {
    // SAFETY: prctl is async-signal-safe; the closure only calls it.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let (tx, rx) = mpsc::channel();
    spawner().lock().unwrap().send((cmd, tx)).expect("spawner alive");
    rx.recv().expect("spawner reply").expect("spawn hydra")
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: `IT_BACKEND=postgres` runs every server on a database of one throwaway cluster
// ---------------------------------------------------------------------------------------------

/// Whether this run's servers use PostgreSQL (`IT_BACKEND=postgres`) instead of the embedded
/// store. `./test.sh` runs the suite both ways.
pub fn postgres() -> bool {
    std::env::var("IT_BACKEND").is_ok_and(|v| v == "postgres")
}

/// For tests of what only the embedded store has (its data directory's files, its simulated
/// disk): returns true, after saying so on stderr, when this run is on PostgreSQL.
pub fn embedded_only(what: &str) -> bool {
    if postgres() {
        eprintln!("embedded store only, not run on PostgreSQL: {what}");
    }
    postgres()
}

static CLUSTER: Mutex<Option<testpg::Cluster>> = Mutex::new(None);

extern "C" fn stop_cluster() {
    if let Ok(mut c) = CLUSTER.lock() {
        // Dropping stops the cluster and removes its directory.
        drop(c.take());
    }
}

/// The run's cluster (started on first use, stopped when the test process exits).
pub fn cluster() -> std::sync::MutexGuard<'static, Option<testpg::Cluster>> {
    let mut c = CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    if c.is_none() {
        *c = Some(testpg::Cluster::start(&["max_connections = 400"]).expect("start the PostgreSQL test cluster"));
        // SAFETY: registers a plain extern "C" function; it runs once at exit.
        unsafe { libc::atexit(stop_cluster) };
    }
    c
}

/// A DSN of a migrated database: a fresh one for each in-memory server, one per data
/// directory otherwise (so a restart finds what the server before it wrote).
pub fn pg_database(dir: Option<&Path>) -> String {
    static DATABASES: Mutex<Vec<(PathBuf, String)>> = Mutex::new(Vec::new());
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let guard = cluster();
    let c = guard.as_ref().expect("cluster started");
    if let Some(d) = dir {
        if let Some((_, dsn)) = DATABASES.lock().unwrap().iter().find(|(p, _)| p == d) {
            return dsn.clone();
        }
    }
    let name = format!("it_{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let dsn = create_database(c, &name);
    if let Some(d) = dir {
        DATABASES.lock().unwrap().push((d.to_path_buf(), dsn.clone()));
    }
    dsn
}

/// Creates database `name` in cluster `c`, applies the schema with `hydra migrate sql up`, and
/// returns its DSN.
pub fn create_database(c: &testpg::Cluster, name: &str) -> String {
    c.psql(&format!("CREATE DATABASE {name}")).expect("create a database");
    let dsn = format!("postgres://postgres@127.0.0.1:{}/{name}?sslmode=disable", c.port());
    let out = Command::new(BIN).args(["migrate", "sql", "up", "--yes", &dsn]).output().expect("run hydra migrate");
    assert!(out.status.success(), "migrate: {}", String::from_utf8_lossy(&out.stderr));
    dsn
}

/// How to start a server.
#[derive(Clone, Debug)]
pub struct Opts {
    pub driver: String,
    /// `None` → `DSN=memory`.
    pub dir: Option<PathBuf>,
    pub dev: bool,
    pub secret: Option<String>,
    pub env: Vec<(String, String)>,
    /// Extra arguments after `serve all` (`-c FILE`).
    pub args: Vec<String>,
}

impl Opts {
    pub fn new(driver: &str) -> Opts {
        Opts {
            driver: driver.into(),
            dir: None,
            dev: false,
            secret: Some(SECRET.into()),
            env: Vec::new(),
            args: Vec::new(),
        }
    }
    pub fn dir(mut self, dir: &Path) -> Opts {
        self.dir = Some(dir.to_path_buf());
        self
    }
    pub fn dev(mut self) -> Opts {
        self.dev = true;
        self
    }
    pub fn no_secret(mut self) -> Opts {
        self.secret = None;
        self
    }
    pub fn arg(mut self, a: &str) -> Opts {
        self.args.push(a.into());
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Opts {
        self.env.retain(|(kk, _)| kk != k);
        self.env.push((k.into(), v.into()));
        self
    }

    /// The command line and a clean environment (nothing inherited but PATH).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "all"]);
        cmd.args(&self.args);
        if self.dev {
            cmd.arg("--dev");
        }
        cmd.env_clear();
        if let Some(p) = std::env::var_os("PATH") {
            cmd.env("PATH", p);
        }
        let dsn = match (&self.dir, postgres()) {
            (dir, true) => pg_database(dir.as_deref()),
            (Some(d), false) => format!("redb://{}", d.display()),
            (None, false) => "memory".into(),
        };
        cmd.env("DSN", dsn)
            .env("SERVE_PUBLIC_HOST", "127.0.0.1")
            .env("SERVE_PUBLIC_PORT", "0")
            .env("SERVE_ADMIN_HOST", "127.0.0.1")
            .env("SERVE_ADMIN_PORT", "0")
            .env("ENGINE_WORKERS", "2")
            .env("ENGINE_PARTITIONS", "4")
            .env("ENGINE_DRIVER", &self.driver)
            .env("LOG_LEVEL", "info")
            // Keeps client creation cheap in debug builds; verification reads the count from the hash.
            .env("OAUTH2_HASHERS_PBKDF2_ITERATIONS", "1000");
        if let Some(s) = &self.secret {
            cmd.env("SECRETS_SYSTEM", s);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        cmd
    }

    pub fn start(&self) -> Server {
        Server::start(self.clone())
    }
}

/// A running `hydra serve all`. Killed with SIGKILL on drop.
pub struct Server {
    child: Option<Child>,
    pub public: SocketAddr,
    pub admin: SocketAddr,
    pub stderr: Arc<Mutex<String>>,
}

fn parse_addr(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(" addr=")? + 6..];
    let v = rest.split_whitespace().next()?.trim_matches('"');
    v.parse().ok()
}

impl Server {
    pub fn start(opts: Opts) -> Server {
        let mut child = spawn(opts.command());
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<(bool, SocketAddr)>();
        {
            let pipe = child.stderr.take().expect("stderr piped");
            let log = stderr.clone();
            std::thread::spawn(move || {
                // Keep draining until EOF so the server never blocks on a full pipe.
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if line.contains("msg=\"listening\"") {
                        if let Some(a) = parse_addr(&line) {
                            let _ = tx.send((line.contains("api=public"), a));
                        }
                    }
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let (mut public, mut admin) = (None, None);
        while public.is_none() || admin.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((true, a)) => public = Some(a),
                Ok((false, a)) => admin = Some(a),
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait();
                    std::thread::sleep(Duration::from_millis(100));
                    panic!(
                        "server did not report both listeners within 10 s (status {status:?}); stderr:\n{}",
                        stderr.lock().unwrap()
                    );
                }
            }
        }
        Server { child: Some(child), public: public.unwrap(), admin: admin.unwrap(), stderr }
    }

    /// Starts a server whose stderr is read only until it reports its listeners, then left
    /// full: a server that wrote log lines on its workers would stall. Returns the unread pipe
    /// (keep it: dropping it closes the pipe) and the log read so far.
    pub fn start_undrained(opts: Opts) -> (Server, BufReader<std::process::ChildStderr>) {
        let mut child = spawn(opts.command());
        let mut pipe = BufReader::new(child.stderr.take().expect("stderr piped"));
        let (mut public, mut admin) = (None, None);
        let mut line = String::new();
        let mut log = String::new();
        while public.is_none() || admin.is_none() {
            line.clear();
            if pipe.read_line(&mut line).unwrap_or(0) == 0 {
                let _ = child.kill();
                panic!("server exited before listening:\n{log}");
            }
            if line.contains("msg=\"listening\"") {
                let a = parse_addr(&line);
                if line.contains("api=public") {
                    public = a;
                } else {
                    admin = a;
                }
            }
            log.push_str(&line);
        }
        let stderr = Arc::new(Mutex::new(log));
        (Server { child: Some(child), public: public.unwrap(), admin: admin.unwrap(), stderr }, pipe)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGTERM, then waits (≤ 15 s) and asserts exit code 0. Returns how long the exit took.
    pub fn stop(mut self) -> Duration {
        let t = Instant::now();
        let pid = self.pid();
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let status = self.wait_for_exit(Duration::from_secs(15));
        let log = self.log();
        assert_eq!(status.code(), Some(0), "graceful exit expected; stderr:\n{log}");
        t.elapsed()
    }

    /// SIGKILL and reap.
    pub fn kill(mut self) {
        self.kill_now();
    }

    fn kill_now(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn wait_for_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(s) = child.try_wait().expect("try_wait") {
                self.child = None;
                return s;
            }
            if Instant::now() > deadline {
                self.kill_now();
                panic!("server did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// One server per driver shared by tests that don't interfere with each other (memory DSN,
/// short timeouts so the timeout tests stay fast).
pub fn shared(driver: &str) -> &'static Server {
    static IO_URING: OnceLock<Server> = OnceLock::new();
    static LEGACY: OnceLock<Server> = OnceLock::new();
    let cell = match driver {
        "io_uring" => &IO_URING,
        "legacy" => &LEGACY,
        other => panic!("unknown driver {other}"),
    };
    cell.get_or_init(|| Opts::new(driver).env("ENGINE_HEADER_TIMEOUT", "1s").env("ENGINE_IDLE_TIMEOUT", "2s").start())
}

/// The shared server for API-level tests.
pub fn api() -> &'static Server {
    shared("io_uring")
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP client
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?} (status {})", self.text(), self.status))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// Asserts the status, printing the body on mismatch.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Response {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text());
        self
    }
    /// Asserts an error answer: status and JSON `error` value.
    #[track_caller]
    pub fn expect_error(&self, status: u16, error: &str) -> Value {
        self.expect(status);
        let v = self.json();
        assert_eq!(v["error"], error, "body: {v}");
        v
    }
    /// Asserts a JSON error body with a non-empty string `error`.
    #[track_caller]
    pub fn expect_json_error(&self, status: u16) -> Value {
        self.expect(status);
        assert!(
            self.header("content-type").is_some_and(|c| c.starts_with("application/json")),
            "content-type: {:?}",
            self.header("content-type")
        );
        let v = self.json();
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "no error field: {v}");
        v
    }
    #[track_caller]
    pub fn assert_no_store(&self) {
        assert_eq!(self.header("cache-control"), Some("no-store"), "{:?}", self.headers);
        assert_eq!(self.header("pragma"), Some("no-cache"), "{:?}", self.headers);
    }
}

/// One TCP connection that can carry several requests.
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.set_nodelay(true).unwrap();
        Conn { stream, buf: Vec::new() }
    }

    pub fn from_stream(stream: TcpStream) -> Conn {
        let _ = stream.set_nodelay(true);
        Conn { stream, buf: Vec::new() }
    }

    pub fn set_timeout(&self, d: Duration) {
        self.stream.set_read_timeout(Some(d)).unwrap();
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Writes that may fail because the server already answered and closed.
    pub fn send_lossy(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    fn fill(&mut self) -> std::io::Result<usize> {
        let mut tmp = [0u8; 16384];
        let n = self.stream.read(&mut tmp)?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    /// Reads exactly one response (a 1xx counts as one). Errors on EOF before a full response.
    pub fn read_response(&mut self) -> std::io::Result<Response> {
        self.read_response_inner(false)
    }

    /// Reads the answer to a HEAD request (headers only, whatever Content-Length says).
    #[track_caller]
    pub fn head_response(&mut self) -> Response {
        self.read_response_inner(true).expect("read HEAD response")
    }

    fn read_response_inner(&mut self, head_only: bool) -> std::io::Result<Response> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if self.fill()? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("EOF before a full head; got {:?}", String::from_utf8_lossy(&self.buf)),
                ));
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end - 4]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        assert!(version.starts_with("HTTP/1."), "bad status line {status_line:?}");
        let status: u16 = parts.next().and_then(|s| s.parse().ok()).expect("status code");
        let reason = parts.next().unwrap_or("").to_string();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once(':').expect("header colon");
                (k.to_string(), v.trim().to_string())
            })
            .collect();
        self.buf.drain(..head_end);
        let cl = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse::<usize>().expect("numeric content-length"));
        let body = if head_only || (100..200).contains(&status) || status == 204 || status == 304 {
            Vec::new()
        } else if let Some(n) = cl {
            while self.buf.len() < n {
                if self.fill()? == 0 {
                    return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "EOF in body"));
                }
            }
            self.buf.drain(..n).collect()
        } else {
            while self.fill()? > 0 {}
            std::mem::take(&mut self.buf)
        };
        Ok(Response { status, reason, headers, body })
    }

    #[track_caller]
    pub fn response(&mut self) -> Response {
        self.read_response().expect("read response")
    }

    /// Whether the server closed the connection (EOF or reset) within the read timeout.
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        match self.stream.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        }
    }

    pub fn request(&mut self, req: &Req) -> Response {
        self.send(&req.bytes(false));
        self.response()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A request under construction.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn new(method: &str, path: &str) -> Req {
        Req { method: method.into(), path: path.into(), headers: Vec::new(), body: Vec::new() }
    }
    pub fn get(path: &str) -> Req {
        Req::new("GET", path)
    }
    pub fn header(mut self, k: &str, v: &str) -> Req {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn json(mut self, v: &Value) -> Req {
        self.body = serde_json::to_vec(v).unwrap();
        self.header("Content-Type", "application/json")
    }
    pub fn form(mut self, pairs: &[(&str, &str)]) -> Req {
        self.body = form(pairs).into_bytes();
        self.header("Content-Type", "application/x-www-form-urlencoded")
    }
    /// A raw form body (exact bytes).
    pub fn raw_form(mut self, body: &[u8]) -> Req {
        self.body = body.to_vec();
        self.header("Content-Type", "application/x-www-form-urlencoded")
    }
    pub fn basic(self, id: &str, secret: &str) -> Req {
        let v = basic(id, secret);
        self.header("Authorization", &v)
    }
    /// Serialized with `Content-Length` (when there is a body or the method is not GET/HEAD).
    pub fn bytes(&self, close: bool) -> Vec<u8> {
        let mut s = format!("{} {} HTTP/1.1\r\nHost: localhost\r\n", self.method, self.path);
        for (k, v) in &self.headers {
            s.push_str(&format!("{k}: {v}\r\n"));
        }
        if !self.body.is_empty() || !matches!(self.method.as_str(), "GET" | "HEAD") {
            s.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        if close {
            s.push_str("Connection: close\r\n");
        }
        s.push_str("\r\n");
        let mut b = s.into_bytes();
        b.extend_from_slice(&self.body);
        b
    }
    /// Like `send`, but a refused or cut connection is an `Err`, not a panic (crash tests).
    pub fn try_send(&self, addr: SocketAddr) -> std::io::Result<Response> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut c = Conn::from_stream(stream);
        c.stream.write_all(&self.bytes(true))?;
        c.read_response()
    }

    /// Sends on a fresh connection and reads the answer.
    pub fn send(&self, addr: SocketAddr) -> Response {
        let mut c = Conn::open(addr);
        c.send(&self.bytes(true));
        c.response()
    }
}

/// Sends raw bytes on a fresh connection and reads one response.
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> Response {
    let mut c = Conn::open(addr);
    c.send(bytes);
    c.response()
}

pub fn basic(id: &str, secret: &str) -> String {
    use base64::Engine;
    let enc = |s: &str| form_escape(s);
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(id), enc(secret))))
}

pub fn form_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", form_escape(k), form_escape(v))).collect::<Vec<_>>().join("&")
}

// ---------------------------------------------------------------------------------------------
// API helpers
// ---------------------------------------------------------------------------------------------

/// A unique suffix for ids and names.
pub fn uniq(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{t:x}-{n}", std::process::id())
}

#[track_caller]
pub fn create_client(s: &Server, body: &Value) -> Value {
    let r = Req::new("POST", "/admin/clients").json(body).send(s.admin);
    r.expect(201);
    r.json()
}

/// A confidential client_credentials client: (id, secret).
#[track_caller]
pub fn cc_client(s: &Server, scope: &str) -> (String, String) {
    cc_client_with(s, json!({"scope": scope}))
}

#[track_caller]
pub fn cc_client_with(s: &Server, mut extra: Value) -> (String, String) {
    let id = uniq("cc");
    let m = extra.as_object_mut().expect("object");
    m.insert("client_id".into(), json!(id));
    m.insert("client_secret".into(), json!(format!("secret-{id}")));
    m.entry("grant_types").or_insert(json!(["client_credentials"]));
    let c = create_client(s, &extra);
    (c["client_id"].as_str().unwrap().to_string(), c["client_secret"].as_str().unwrap().to_string())
}

pub fn token_req(id: &str, secret: &str, extra: &[(&str, &str)]) -> Req {
    let mut pairs = vec![("grant_type", "client_credentials")];
    pairs.extend_from_slice(extra);
    Req::new("POST", "/oauth2/token").form(&pairs).basic(id, secret)
}

/// Issues a token with Basic auth; asserts 200.
#[track_caller]
pub fn token(s: &Server, id: &str, secret: &str, extra: &[(&str, &str)]) -> Value {
    let r = token_req(id, secret, extra).send(s.public);
    r.expect(200);
    r.json()
}

#[track_caller]
pub fn access_token(s: &Server, id: &str, secret: &str) -> String {
    token(s, id, secret, &[])["access_token"].as_str().unwrap().to_string()
}

pub fn introspect_req(tok: &str, scope: Option<&str>) -> Req {
    let mut pairs = vec![("token", tok)];
    if let Some(sc) = scope {
        pairs.push(("scope", sc));
    }
    Req::new("POST", "/admin/oauth2/introspect").form(&pairs)
}

#[track_caller]
pub fn introspect(s: &Server, tok: &str) -> Value {
    let r = introspect_req(tok, None).send(s.admin);
    r.expect(200);
    r.json()
}

#[track_caller]
pub fn is_active(s: &Server, tok: &str) -> bool {
    let v = introspect(s, tok);
    match v["active"].as_bool() {
        Some(true) => true,
        Some(false) => {
            assert_eq!(v, json!({"active": false}), "an inactive answer carries nothing else");
            false
        }
        None => panic!("no active field: {v}"),
    }
}

/// Introspects many tokens over one keep-alive connection; returns how many are active.
pub fn count_active(addr: SocketAddr, tokens: &[String]) -> usize {
    let mut c = Conn::open(addr);
    tokens
        .iter()
        .filter(|t| {
            let r = c.request(&introspect_req(t, None));
            r.expect(200);
            r.json()["active"] == json!(true)
        })
        .count()
}

/// Revokes with Basic auth; returns the response.
pub fn revoke(s: &Server, id: &str, secret: &str, tok: &str) -> Response {
    Req::new("POST", "/oauth2/revoke").form(&[("token", tok)]).basic(id, secret).send(s.public)
}

/// Runs a command that should exit by itself; returns (code, stderr).
pub fn run_to_exit(mut cmd: Command) -> (Option<i32>, String) {
    cmd.stdout(Stdio::null()).stderr(Stdio::piped()).stdin(Stdio::null());
    let mut child = cmd.spawn().expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (status.code(), err)
}

/// `GET /admin/metrics/prometheus`, as text.
pub fn scrape(s: &Server) -> String {
    Req::get("/admin/metrics/prometheus").send(s.admin).text()
}

/// The values of every scrape line that starts with `prefix`, in order.
pub fn metric_values(text: &str, prefix: &str) -> Vec<f64> {
    text.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse().ok()).collect()
}

/// The value of the first scrape line that starts with `prefix`.
pub fn metric(text: &str, prefix: &str) -> Option<f64> {
    metric_values(text, prefix).first().copied()
}

/// The sum over every scrape line that starts with `prefix` (a metric over all its labels).
pub fn metric_sum(text: &str, prefix: &str) -> f64 {
    metric_values(text, prefix).iter().sum()
}

/// One test per monoio driver for each named `fn(driver: &str)`: modules `io_uring` and `legacy`.
macro_rules! both_drivers {
    ($($name:ident),* $(,)?) => {
        mod io_uring {
            $( #[test] fn $name() { super::$name("io_uring") } )*
        }
        mod legacy {
            $( #[test] fn $name() { super::$name("legacy") } )*
        }
    };
}
