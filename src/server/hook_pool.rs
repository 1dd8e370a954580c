//! The token hooks' threads (`token-hook-N`) and their queue: each thread keeps its connection
//! to a hook alive between calls and answers a worker through a oneshot.
//!
//! Invariants: see `hooks`, which runs the hooks for a grant; this module never touches worker
//! state, so the shared state can hold the pool.

use crate::config::Hook;
use crate::outbound::{web_target, DEADLINE};
use crate::server::outbound::Bounded;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The most of a hook's answer that is read (head and body).
pub const HOOK_MAX_BYTES: usize = 1 << 20;
/// Threads that call hooks, and calls that may wait for one.
const THREADS: usize = 8;
const QUEUE: usize = 1024;

struct Job {
    hook: Arc<Hook>,
    body: Vec<u8>,
    allow_private: bool,
    reply: futures_channel::oneshot::Sender<Result<(u16, Vec<u8>), String>>,
}

/// The hook threads and their queue.
pub struct HookPool {
    tx: SyncSender<Job>,
    pub(crate) token: Option<Arc<Hook>>,
    pub(crate) refresh: Option<Arc<Hook>>,
}

impl HookPool {
    /// Starts the threads when a hook is configured; `None` otherwise (no thread, no cost).
    pub fn start(token: Option<Hook>, refresh: Option<Hook>) -> std::io::Result<Option<HookPool>> {
        if token.is_none() && refresh.is_none() {
            return Ok(None);
        }
        let (tx, rx) = sync_channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..THREADS {
            let rx = rx.clone();
            std::thread::Builder::new().name(format!("token-hook-{i}")).spawn(move || serve(&rx))?;
        }
        Ok(Some(HookPool { tx, token: token.map(Arc::new), refresh: refresh.map(Arc::new) }))
    }

    pub(crate) async fn call(
        &self,
        hook: &Arc<Hook>,
        body: Vec<u8>,
        allow_private: bool,
    ) -> Result<(u16, Vec<u8>), String> {
        let (reply, rx) = futures_channel::oneshot::channel();
        match self.tx.try_send(Job { hook: hook.clone(), body, allow_private, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err("the token hook queue is full".into()),
            Err(TrySendError::Disconnected(_)) => return Err("the token hook threads stopped".into()),
        }
        rx.await.unwrap_or_else(|_| Err("the token hook call was lost".into()))
    }
}

// ---- The hook threads --------------------------------------------------------------------------

enum Conn {
    Plain(Bounded),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, Bounded>>),
}

impl Conn {
    /// Each read or write of this call, a TLS handshake's included, waits at most the outbound
    /// timeout, and never past the call's deadline (`Bounded`: past it, a read or write fails
    /// as timed out).
    fn set_deadline(&mut self, deadline: Instant) {
        match self {
            Conn::Plain(s) => s.deadline = deadline,
            Conn::Tls(s) => s.sock.deadline = deadline,
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

fn serve(rx: &Mutex<Receiver<Job>>) {
    // One kept-alive connection per hook URL (there are at most two hooks).
    let mut conns: HashMap<String, Conn> = HashMap::new();
    loop {
        let job = match rx.lock() {
            Ok(r) => match r.recv() {
                Ok(j) => j,
                Err(_) => return,
            },
            Err(_) => return,
        };
        let answer = call_once(&mut conns, &job);
        let _ = job.reply.send(answer);
    }
}

fn connect(hook: &Hook, allow_private: bool, deadline: Instant) -> Result<Conn, String> {
    let t = web_target(&hook.url, true)?;
    let sock = crate::server::outbound::connect(&t, allow_private)?;
    let _ = sock.set_nodelay(true);
    let sock = Bounded { sock, deadline };
    if !t.tls {
        return Ok(Conn::Plain(sock));
    }
    let conn = crate::server::outbound::tls_client(&t.host)?;
    Ok(Conn::Tls(Box::new(rustls::StreamOwned::new(conn, sock))))
}

fn request_bytes(hook: &Hook, body: &[u8]) -> Result<Vec<u8>, String> {
    let t = web_target(&hook.url, true)?;
    let host = crate::server::outbound::host_header(&t);
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: hydra-rs\r\nAccept: application/json\r\nContent-Type: application/json; charset=UTF-8\r\nContent-Length: {}\r\n",
        t.path_and_query,
        body.len()
    );
    if let Some(k) = &hook.api_key {
        if k.in_header {
            head.push_str(&format!("{}: {}\r\n", k.name, k.value));
        } else {
            head.push_str(&format!("Cookie: {}={}\r\n", k.name, k.value));
        }
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    Ok(out)
}

/// One call, on a kept-alive connection when there is one: a connection the peer closed while
/// idle fails before any answer byte, and the call is then made once more on a new one.
fn call_once(conns: &mut HashMap<String, Conn>, job: &Job) -> Result<(u16, Vec<u8>), String> {
    let req = request_bytes(&job.hook, &job.body)?;
    let deadline = Instant::now() + DEADLINE;
    let key = job.hook.url.clone();
    if let Some(mut conn) = conns.remove(&key) {
        match exchange(&mut conn, &req, deadline) {
            Ok((status, body, keep)) => {
                if keep {
                    conns.insert(key, conn);
                }
                return Ok((status, body));
            }
            Err(Failure::Stale) => {}
            Err(Failure::Other(e)) => return Err(e),
        }
    }
    let mut conn = connect(&job.hook, job.allow_private, deadline)?;
    match exchange(&mut conn, &req, deadline) {
        Ok((status, body, keep)) => {
            if keep {
                conns.insert(key, conn);
            }
            Ok((status, body))
        }
        Err(Failure::Stale) => Err("the token hook closed the connection without answering".into()),
        Err(Failure::Other(e)) => Err(e),
    }
}

enum Failure {
    /// Nothing came back at all (a kept-alive connection the peer had closed).
    Stale,
    Other(String),
}

/// Whether an I/O error means the peer had closed the connection (it was idle and kept), as
/// opposed to a slow or failing peer: only then may the request be sent once more.
fn closed(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    matches!(e.kind(), BrokenPipe | ConnectionAborted | ConnectionReset | UnexpectedEof)
}

fn slow(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
}

/// Sends a request and reads one answer: status, body, and whether the connection may be used
/// again (only when the answer's framing is unambiguous and nothing follows it).
fn exchange(conn: &mut Conn, req: &[u8], deadline: Instant) -> Result<(u16, Vec<u8>, bool), Failure> {
    let late = || Failure::Other("the token hook took too long to answer".into());
    let io = |e: std::io::Error| Failure::Other(format!("talking to the token hook failed: {e}"));
    conn.set_deadline(deadline);
    if let Err(e) = conn.write_all(req).and_then(|()| conn.flush()) {
        return Err(if closed(&e) {
            Failure::Stale
        } else if slow(&e) {
            late()
        } else {
            io(e)
        });
    }
    let mut raw = Vec::with_capacity(1024);
    let mut buf = [0u8; 8192];
    // The head.
    let (status, head_len, framing, keep) = loop {
        let n = match conn.read(&mut buf) {
            Ok(0) if raw.is_empty() => return Err(Failure::Stale),
            Ok(0) => return Err(Failure::Other("the token hook closed the connection mid-answer".into())),
            Ok(n) => n,
            Err(e) if raw.is_empty() && closed(&e) => return Err(Failure::Stale),
            Err(e) if slow(&e) => return Err(late()),
            Err(e) => return Err(io(e)),
        };
        raw.extend_from_slice(&buf[..n]);
        if raw.len() > HOOK_MAX_BYTES {
            return Err(Failure::Other("the token hook's answer is too large".into()));
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&raw) {
            Ok(httparse::Status::Complete(len)) => {
                let status = resp.code.unwrap_or(0);
                let all = |name: &str| -> Vec<Vec<u8>> {
                    resp.headers
                        .iter()
                        .filter(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| h.value.to_ascii_lowercase())
                        .collect()
                };
                let tokens = |name: &str| -> Vec<String> {
                    all(name)
                        .iter()
                        .flat_map(|v| {
                            String::from_utf8_lossy(v).split(',').map(|t| t.trim().to_string()).collect::<Vec<_>>()
                        })
                        .collect()
                };
                if (100..200).contains(&status) {
                    // Nothing here asks for an interim answer (no `Expect`).
                    return Err(Failure::Other("the token hook sent an interim answer".into()));
                }
                let connection = tokens("connection");
                let http11 = resp.version == Some(1);
                let reusable = if http11 {
                    !connection.iter().any(|t| t == "close")
                } else {
                    connection.iter().any(|t| t == "keep-alive")
                };
                let te = tokens("transfer-encoding");
                let lengths = all("content-length");
                let framing = if status == 204 || status == 304 {
                    Framing::Length(0)
                } else if !te.is_empty() {
                    // RFC 9112 §6.3: chunked last means chunked; with a Content-Length too, or
                    // any other coding, the framing is not trusted for another answer.
                    if !lengths.is_empty() {
                        return Err(Failure::Other("the token hook's answer has both framings".into()));
                    }
                    if te.last().is_some_and(|t| t == "chunked") {
                        Framing::Chunked
                    } else {
                        Framing::UntilClose
                    }
                } else {
                    let mut sizes = lengths
                        .iter()
                        .map(|v| std::str::from_utf8(v).ok().and_then(|s| s.trim().parse::<usize>().ok()));
                    match (sizes.next(), sizes.all(|x| x.is_some()) && lengths.windows(2).all(|w| w[0] == w[1])) {
                        (None, _) => Framing::UntilClose,
                        (Some(Some(n)), true) if n <= HOOK_MAX_BYTES => Framing::Length(n),
                        (Some(Some(_)), true) => {
                            return Err(Failure::Other("the token hook's answer is too large".into()))
                        }
                        _ => return Err(Failure::Other("the token hook's answer is not valid HTTP".into())),
                    }
                };
                break (status, len, framing, reusable);
            }
            Ok(httparse::Status::Partial) => continue,
            Err(_) => return Err(Failure::Other("the token hook's answer is not valid HTTP".into())),
        }
    };
    let mut rest = raw.split_off(head_len);
    // Reads more of the body; `false` at the end of the stream (a TLS peer that closes without
    // close_notify ends it too).
    let mut more = |conn: &mut Conn, rest: &mut Vec<u8>| -> Result<bool, Failure> {
        match conn.read(&mut buf) {
            Ok(0) => Ok(false),
            Ok(n) => {
                rest.extend_from_slice(&buf[..n]);
                if rest.len() > HOOK_MAX_BYTES {
                    return Err(Failure::Other("the token hook's answer is too large".into()));
                }
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) if slow(&e) => Err(late()),
            Err(e) => Err(io(e)),
        }
    };
    match framing {
        Framing::Length(n) => {
            while rest.len() < n {
                if !more(conn, &mut rest)? {
                    return Err(Failure::Other("the token hook's answer was cut short".into()));
                }
            }
            // Bytes past the answer would be read as the next call's answer: not kept then.
            let trailing = rest.len() > n;
            rest.truncate(n);
            Ok((status, rest, keep && !trailing))
        }
        Framing::Chunked => {
            let mut d = crate::http::body::ChunkedDecoder::new(HOOK_MAX_BYTES);
            let mut out = Vec::new();
            let mut fed = 0;
            loop {
                match d.feed(&rest[fed..], &mut out) {
                    Ok((used, crate::http::body::ChunkedProgress::Done)) => {
                        let trailing = fed + used < rest.len();
                        return Ok((status, out, keep && !trailing));
                    }
                    Ok((used, crate::http::body::ChunkedProgress::NeedMore)) => fed += used,
                    Err(_) => return Err(Failure::Other("the token hook's chunked answer is malformed".into())),
                }
                if !more(conn, &mut rest)? {
                    return Err(Failure::Other("the token hook's answer was cut short".into()));
                }
            }
        }
        Framing::UntilClose => {
            while more(conn, &mut rest)? {}
            Ok((status, rest, false))
        }
    }
}

enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}
