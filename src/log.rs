//! Structured logging in Hydra's `text` or `json` formats, written off the worker threads.
//!
//! Invariants: callers pass only server-side facts (paths, statuses, durations, ids); tokens,
//! secrets and request bodies are never arguments here. Level and format are set once at start.
//! Once [`start_writer`] ran, no thread but the writer calls `write(2)` for a log line: a worker
//! (marked with [`set_batched`]) appends lines to a buffer of its own and hands full buffers (or,
//! from a timer, partial ones) to the writer thread; other threads hand each line over at once.
//! The queue is bounded: when the writer falls behind, a buffer is dropped and its lines are
//! counted ([`dropped`], `hydra_log_lines_dropped_total`), and the writer says so in a line of
//! its own, so a line is never lost silently. Before the writer runs (and in tests), lines go
//! straight to stderr.

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::OnceLock;

pub use crate::config::Level;

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
static JSON: AtomicBool = AtomicBool::new(false);

pub fn init(level: Level, json: bool) {
    LEVEL.store(level as u8, Ordering::Relaxed);
    JSON.store(json, Ordering::Relaxed);
}

pub fn enabled(level: Level) -> bool {
    level as u8 >= LEVEL.load(Ordering::Relaxed)
}

/// A worker's buffer is handed over once it holds this much (or when its timer flushes it).
const FLUSH_BYTES: usize = 16 << 10;
/// Buffers queued for the writer at most (each at most about `FLUSH_BYTES`, so about 1 MiB in
/// all): beyond this the writer is not keeping up, and a buffer is dropped and counted rather
/// than blocking a worker.
const QUEUE: usize = 64;

enum Msg {
    Lines(Vec<u8>),
    /// Everything sent before this is written once the reply arrives.
    Sync(crossbeam_channel::Sender<()>),
}

struct Writer {
    tx: crossbeam_channel::Sender<Msg>,
    /// Emptied buffers coming back for reuse, so a steady stream of lines allocates nothing.
    spare: crossbeam_channel::Receiver<Vec<u8>>,
}

static WRITER: OnceLock<Writer> = OnceLock::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);
static WRITTEN: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static LOCAL: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static BATCHED: Cell<bool> = const { Cell::new(false) };
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
    /// The last second formatted, and its text.
    static CLOCK: RefCell<(i64, String)> = const { RefCell::new((0, String::new())) };
}

/// Lines dropped because the writer could not keep up (`hydra_log_lines_dropped_total`).
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Lines the writer thread wrote (`hydra_log_lines_total`).
pub fn written() -> u64 {
    WRITTEN.load(Ordering::Relaxed)
}

/// Starts the writer thread; from now on no other thread writes log lines itself. Idempotent.
pub fn start_writer() -> std::io::Result<()> {
    if WRITER.get().is_some() {
        return Ok(());
    }
    let (tx, rx) = crossbeam_channel::bounded::<Msg>(QUEUE);
    let (spare_tx, spare) = crossbeam_channel::bounded::<Vec<u8>>(QUEUE);
    std::thread::Builder::new().name("log-writer".into()).spawn(move || {
        let mut reported = 0u64;
        let mut err = std::io::stderr();
        for msg in rx {
            match msg {
                Msg::Lines(mut buf) => {
                    let lines = buf.iter().filter(|b| **b == b'\n').count() as u64;
                    // A closed or full stderr loses the line; nothing else can be done with it.
                    let _ = err.write_all(&buf);
                    WRITTEN.fetch_add(lines, Ordering::Relaxed);
                    buf.clear();
                    let _ = spare_tx.try_send(buf);
                }
                Msg::Sync(reply) => {
                    let _ = reply.send(());
                }
            }
            let dropped = DROPPED.load(Ordering::Relaxed);
            if dropped > reported {
                let line = render(
                    Level::Warn,
                    "log lines were dropped: the log writer could not keep up",
                    &[("dropped", &(dropped - reported)), ("dropped_total", &dropped)],
                    JSON.load(Ordering::Relaxed),
                    now_rfc3339(),
                );
                let _ = writeln!(err, "{line}");
                reported = dropped;
            }
        }
    })?;
    let _ = WRITER.set(Writer { tx, spare });
    Ok(())
}

/// Marks this thread as a worker: its lines are buffered and handed over in batches.
pub fn set_batched(on: bool) {
    BATCHED.with(|b| b.set(on));
}

/// Hands this thread's buffered lines to the writer (a worker's timer calls it).
pub fn flush_local() {
    LOCAL.with(|l| {
        let mut l = l.borrow_mut();
        if !l.is_empty() {
            hand_over(&mut l);
        }
    });
}

/// Hands `buf` to the writer (or, without one, writes it here) and leaves `buf` empty, reusing a
/// spare allocation when one came back.
fn hand_over(buf: &mut Vec<u8>) {
    hand_over_to(WRITER.get(), buf);
}

fn hand_over_to(w: Option<&Writer>, buf: &mut Vec<u8>) {
    let Some(w) = w else {
        let _ = std::io::stderr().write_all(buf);
        buf.clear();
        return;
    };
    let next = w.spare.try_recv().unwrap_or_else(|_| Vec::with_capacity(FLUSH_BYTES + 1024));
    let full = std::mem::replace(buf, next);
    if let Err(e) = w.tx.try_send(Msg::Lines(full)) {
        let lost = match e.into_inner() {
            Msg::Lines(b) => b.iter().filter(|c| **c == b'\n').count() as u64,
            Msg::Sync(_) => 0,
        };
        DROPPED.fetch_add(lost, Ordering::Relaxed);
    }
}

/// Waits (at most a second) until every line handed over so far is written: before the process
/// exits, so its last lines are not lost.
pub fn sync() {
    flush_local();
    if let Some(w) = WRITER.get() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        if w.tx.send_timeout(Msg::Sync(tx), std::time::Duration::from_secs(1)).is_ok() {
            let _ = rx.recv_timeout(std::time::Duration::from_secs(1));
        }
    }
}

/// Writes one line: message plus key/value fields.
pub fn emit(level: Level, msg: &str, fields: &[(&str, &dyn std::fmt::Display)]) {
    if !enabled(level) {
        return;
    }
    let json = JSON.load(Ordering::Relaxed);
    LOCAL.with(|l| {
        let Ok(mut buf) = l.try_borrow_mut() else {
            // Logging while formatting a line of this thread (a Display that logs): write it
            // directly rather than lose it.
            let _ = writeln!(std::io::stderr(), "{}", render(level, msg, fields, json, now_rfc3339()));
            return;
        };
        with_time(|time| render_into(&mut buf, level, msg, fields, json, time));
        buf.push(b'\n');
        if !BATCHED.with(Cell::get) || buf.len() >= FLUSH_BYTES {
            hand_over(&mut buf);
        }
    });
}

/// Milliseconds with three decimals from microseconds (`1.234`), formatted with integer
/// arithmetic (float formatting with a precision is the slow path of `core::fmt`).
#[derive(Debug, Clone, Copy)]
pub struct Millis(pub u64);

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}

/// One answered request (`msg="request"`), the line every request writes at the default level.
/// Text lines are written straight into the worker's buffer without `Display` dispatch or float
/// formatting: `loadtest/callgrind.sh` counted the request line at about 5,400 instructions per
/// introspection through [`emit`] (warn/info = 0.88 of the instructions per request).
/// Query parameters whose values are credentials or single-use proofs: never written, even with
/// `log.leak_sensitive_values` on.
const SECRET_PARAMS: [&str; 17] = [
    "code",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "id_token_hint",
    "client_secret",
    "client_assertion",
    "assertion",
    "device_code",
    "user_code",
    "password",
    "request",
    "code_verifier",
    "registration_access_token",
    "logout_token",
    "request_uri",
];

/// A query string for the request log (`log.leak_sensitive_values`): every parameter, the values
/// of credentials, challenges and verifiers replaced by `redaction`.
pub fn redacted_query(query: &str, redaction: &str) -> String {
    let mut out = String::with_capacity(query.len());
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        // Judged by the name as the endpoint reads it: `co%64e` is `code`.
        let name =
            crate::http::form::percent_decode(k.as_bytes()).unwrap_or_else(|_| k.to_string()).to_ascii_lowercase();
        let secret =
            SECRET_PARAMS.contains(&name.as_str()) || name.ends_with("_challenge") || name.ends_with("_verifier");
        out.push_str(k);
        if !v.is_empty() || pair.contains('=') {
            out.push('=');
            out.push_str(if secret { redaction } else { v });
        }
    }
    out
}

pub fn request(api: &str, method: &str, path: &str, status: u16, micros: u64, request_id: &str) {
    if !enabled(Level::Info) {
        return;
    }
    let generic = || {
        let fields: [(&str, &dyn std::fmt::Display); 6] = [
            ("api", &api),
            ("method", &method),
            ("path", &path),
            ("status", &status),
            ("duration_ms", &Millis(micros)),
            ("request_id", &request_id),
        ];
        emit(Level::Info, "request", &fields);
    };
    if JSON.load(Ordering::Relaxed) {
        return generic();
    }
    LOCAL.with(|l| {
        let Ok(mut buf) = l.try_borrow_mut() else { return generic() };
        with_time(|time| request_line(&mut buf, time, api, method, path, status, micros, request_id));
        buf.push(b'\n');
        if !BATCHED.with(Cell::get) || buf.len() >= FLUSH_BYTES {
            hand_over(&mut buf);
        }
    });
}

/// The text of [`request`]'s line, the same bytes [`render_into`] writes for those fields.
#[allow(clippy::too_many_arguments)]
fn request_line(
    out: &mut Vec<u8>,
    time: &str,
    api: &str,
    method: &str,
    path: &str,
    status: u16,
    micros: u64,
    request_id: &str,
) {
    out.extend_from_slice(b"time=");
    out.extend_from_slice(time.as_bytes());
    out.extend_from_slice(b" level=info msg=\"request\"");
    field(out, "api", api);
    field(out, "method", method);
    field(out, "path", path);
    out.extend_from_slice(b" status=");
    push_decimal(out, u64::from(status));
    out.extend_from_slice(b" duration_ms=");
    push_decimal(out, micros / 1000);
    let frac = micros % 1000;
    out.extend_from_slice(&[b'.', b'0' + (frac / 100) as u8, b'0' + (frac / 10 % 10) as u8, b'0' + (frac % 10) as u8]);
    field(out, "request_id", request_id);
}

fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

fn render(level: Level, msg: &str, fields: &[(&str, &dyn std::fmt::Display)], json: bool, time: String) -> String {
    let mut out = Vec::new();
    render_into(&mut out, level, msg, fields, json, &time);
    String::from_utf8(out).unwrap_or_default()
}

fn render_into(
    out: &mut Vec<u8>,
    level: Level,
    msg: &str,
    fields: &[(&str, &dyn std::fmt::Display)],
    json: bool,
    time: &str,
) {
    if json {
        let mut m = serde_json::Map::new();
        m.insert("time".into(), time.into());
        m.insert("level".into(), level.name().into());
        m.insert("msg".into(), msg.into());
        for (k, v) in fields {
            m.insert((*k).into(), v.to_string().into());
        }
        let _ = serde_json::to_writer(&mut *out, &serde_json::Value::Object(m));
        return;
    }
    // Written straight into the line buffer: a request line costs no allocation of its own
    // (each value is formatted into one scratch string per thread, reused).
    out.extend_from_slice(b"time=");
    out.extend_from_slice(time.as_bytes());
    out.extend_from_slice(b" level=");
    out.extend_from_slice(level.name().as_bytes());
    out.extend_from_slice(b" msg=");
    quoted(out, msg);
    SCRATCH.with(|scratch| {
        let Ok(mut v) = scratch.try_borrow_mut() else {
            // A Display that logs while being formatted: format this field the slow way.
            for (k, val) in fields {
                let text = val.to_string();
                field(out, k, &text);
            }
            return;
        };
        for (k, val) in fields {
            v.clear();
            let _ = write!(v, "{val}");
            field(out, k, &v);
        }
    });
}

/// ` key=value`, the value quoted (Go's `%q`-like escaping) when it is empty or holds a space, a
/// quote or `=`, so a value can never forge another field.
fn field(out: &mut Vec<u8>, k: &str, v: &str) {
    out.push(b' ');
    out.extend_from_slice(k.as_bytes());
    out.push(b'=');
    // A byte scan: `str::contains` with a char set decodes and matches char by char, which was
    // the larger part of a request line's cost (callgrind, `loadtest/callgrind.sh`).
    if v.is_empty() || v.bytes().any(|b| matches!(b, b' ' | b'"' | b'=')) {
        quoted(out, v);
    } else {
        out.extend_from_slice(v.as_bytes());
    }
}

/// A quoted string; plain printable ASCII is copied, anything else escaped as `{:?}` does.
fn quoted(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = write!(out, "{s:?}");
    }
}

/// RFC 3339 UTC timestamp of now, second precision.
fn now_rfc3339() -> String {
    crate::dates::rfc3339(crate::dates::now())
}

/// Calls `f` with the RFC 3339 time of now, formatted at most once per second per thread.
fn with_time<R>(f: impl FnOnce(&str) -> R) -> R {
    let now = crate::dates::now();
    CLOCK.with(|c| match c.try_borrow_mut() {
        Ok(mut c) => {
            if c.0 != now || c.1.is_empty() {
                *c = (now, crate::dates::rfc3339(now));
            }
            f(&c.1)
        }
        Err(_) => f(&crate::dates::rfc3339(now)),
    })
}

#[macro_export]
macro_rules! log_at {
    ($lvl:expr, $msg:expr $(, $k:literal = $v:expr)* $(,)?) => {
        if $crate::log::enabled($lvl) {
            $crate::log::emit($lvl, $msg, &[$(($k, &$v as &dyn std::fmt::Display)),*]);
        }
    };
}

#[macro_export]
macro_rules! info {
    ($($t:tt)*) => { $crate::log_at!($crate::log::Level::Info, $($t)*) };
}

#[macro_export]
macro_rules! warn {
    ($($t:tt)*) => { $crate::log_at!($crate::log::Level::Warn, $($t)*) };
}

#[macro_export]
macro_rules! error {
    ($($t:tt)*) => { $crate::log_at!($crate::log::Level::Error, $($t)*) };
}

#[macro_export]
macro_rules! debug {
    ($($t:tt)*) => { $crate::log_at!($crate::log::Level::Debug, $($t)*) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_lines() {
        let t = render(Level::Info, "started", &[("port", &4444), ("path", &"/a b")], false, "T".into());
        assert_eq!(t, "time=T level=info msg=\"started\" port=4444 path=\"/a b\"");
        let j = render(Level::Warn, "x", &[("k", &"v")], true, "T".into());
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["level"], "warning");
        assert_eq!(v["k"], "v");
    }

    #[test]
    fn the_request_line_is_the_generic_line_written_faster() {
        for (path, micros, id) in [("/oauth2/token", 1_234, "abc"), ("/a b\"=", 0, "x:y"), ("/", 98_765_432, "")] {
            let mut fast = Vec::new();
            request_line(&mut fast, "T", "public", "POST", path, 200, micros, id);
            let fields: [(&str, &dyn std::fmt::Display); 6] = [
                ("api", &"public"),
                ("method", &"POST"),
                ("path", &path),
                ("status", &200),
                ("duration_ms", &format_args!("{:.3}", micros as f64 / 1000.0)),
                ("request_id", &id),
            ];
            assert_eq!(String::from_utf8(fast).unwrap(), render(Level::Info, "request", &fields, false, "T".into()));
        }
        assert_eq!(Millis(5).to_string(), "0.005");
        assert_eq!(Millis(12_345).to_string(), "12.345");
    }

    #[test]
    fn levels_parse() {
        assert_eq!(Level::parse("WARN"), Some(Level::Warn));
        assert_eq!(Level::parse("fatal"), Some(Level::Error));
        assert_eq!(Level::parse("verbose"), None);
    }

    #[test]
    fn a_batched_thread_buffers_until_flushed() {
        std::thread::spawn(|| {
            set_batched(true);
            emit(Level::Error, "a line held back until its worker flushes", &[]);
            assert!(LOCAL.with(|l| l.borrow().len()) > 0, "a worker's line waits in its own buffer");
            flush_local();
            assert_eq!(LOCAL.with(|l| l.borrow().len()), 0, "flushed");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_full_queue_drops_whole_buffers_and_counts_their_lines() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let (_spare_tx, spare) = crossbeam_channel::bounded(1);
        let w = Writer { tx, spare };
        let before = dropped();
        let mut buf = b"one\ntwo\n".to_vec();
        hand_over_to(Some(&w), &mut buf);
        assert!(buf.is_empty());
        assert_eq!(dropped(), before, "queued, not dropped");
        let mut buf = b"three\nfour\nfive\n".to_vec();
        hand_over_to(Some(&w), &mut buf);
        assert!(dropped() >= before + 3, "three lines counted as dropped");
        match rx.try_recv() {
            Ok(Msg::Lines(b)) => assert_eq!(b, b"one\ntwo\n"),
            _ => panic!("the first buffer is queued"),
        }
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::redacted_query;

    #[test]
    fn credentials_challenges_and_verifiers_are_redacted() {
        let q = "client_id=app&code=ory_ac_x&login_verifier=v1&consent_challenge=c1&state=s&scope=openid&flag&empty=";
        assert_eq!(
            redacted_query(q, "[redacted]"),
            "client_id=app&code=[redacted]&login_verifier=[redacted]&consent_challenge=[redacted]&state=s&scope=openid&flag&empty=[redacted]"
                .replace("empty=[redacted]", "empty=")
        );
        assert!(!redacted_query("device_code=ory_dc_1&user_code=ABCD&client_secret=s3", "x").contains("ory_dc_1"));
        let sneaky = redacted_query("co%64e=SECRET1&ID_TOKEN_HINT=SECRET2&login%5Fverifier=SECRET3", "x");
        assert!(!sneaky.contains("SECRET"), "{sneaky}");
    }
}
