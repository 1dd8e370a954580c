//! Heap allocations per request on the hot paths, counted rather than guessed: the real server
//! (`hydra serve all`, a fresh data directory with durable commits, one worker, log level `info`) runs in this process under a
//! counting global allocator, and clients that allocate nothing in their request loop send
//! issuance and introspection requests over loopback. Every thread of the process is counted
//! (worker, committers, log writer, helper pool), so the number is what a request costs the
//! server in allocations, batching included.
//!
//!   cargo run --release -p hydra-bench --bin allocs [-- N]   # N requests per scenario and connection count
//!   cargo run --release -p hydra-bench --bin allocs -- trace   # where one request of each allocates
//!
//! Prints one Markdown table (allocations and bytes per request, for 1 and 16 connections), or
//! with `trace` the call stack of every allocation made while serving one request of each kind
//! (the server's frames only), to find what to take out.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
/// While set, every allocation records its call stack (`trace` mode).
static TRACING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static TRACES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

thread_local! {
    /// Set while this thread records a trace: the recording allocates too.
    static IN_TRACE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn record(size: usize) {
    if !TRACING.load(Relaxed) || IN_TRACE.with(|t| t.replace(true)) {
        return;
    }
    let bt = std::backtrace::Backtrace::force_capture().to_string();
    // The server's own frames (and the crates it calls directly) say where; the rest is noise.
    let frames: Vec<&str> = bt
        .lines()
        .filter(|l| !l.trim_start().starts_with("at "))
        .map(str::trim)
        .filter(|l| l.contains("hydra") && !l.contains("allocs::") && !l.contains("hydra_bench"))
        .take(4)
        .collect();
    let thread = std::thread::current().name().unwrap_or("?").to_string();
    if let Ok(mut t) = TRACES.lock() {
        t.push(format!("{size:>6} B  [{thread}]  {}", frames.join("  <  ")));
    }
    IN_TRACE.with(|t| t.set(false));
}

// SAFETY: every method forwards to the system allocator with the caller's arguments unchanged;
// the counters are atomics and allocate nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        record(layout.size());
        // SAFETY: forwarded as received (the caller upholds `GlobalAlloc::alloc`'s contract).
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        record(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(new_size as u64, Relaxed);
        record(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Sends one request and reads its whole response into `buf`, allocating nothing; returns the
/// status code.
fn round_trip(s: &mut TcpStream, req: &[u8], buf: &mut [u8]) -> u16 {
    s.write_all(req).expect("write");
    let mut have = 0;
    loop {
        let n = s.read(&mut buf[have..]).expect("read");
        assert!(n > 0, "the server closed the connection");
        have += n;
        let Some(head_end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = &buf[..head_end];
        let len = head
            .split(|b| *b == b'\n')
            .find_map(|line| {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let (name, value) = line.split_at(line.iter().position(|b| *b == b':')?);
                name.eq_ignore_ascii_case(b"content-length").then(|| {
                    value[1..].iter().filter(|b| b.is_ascii_digit()).fold(0usize, |n, d| n * 10 + usize::from(d - b'0'))
                })
            })
            .unwrap_or(0);
        if have >= head_end + 4 + len {
            assert_eq!(have, head_end + 4 + len, "one response per request");
            let status = &buf[9..12];
            return status.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
        }
    }
}

/// A request as bytes (built before the measurement).
fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.push_str(body);
    r.into_bytes()
}

fn send_json(addr: SocketAddr, method: &str, path: &str, body: &str) -> serde_json::Value {
    let mut s = TcpStream::connect(addr).expect("connect");
    let req = request(method, path, &[("Content-Type", "application/json")], body);
    let mut buf = vec![0u8; 1 << 16];
    let status = round_trip(&mut s, &req, &mut buf);
    assert!((200..300).contains(&status), "{method} {path}: {status}");
    let text = String::from_utf8_lossy(&buf);
    let start = text.find("\r\n\r\n").map(|i| i + 4).unwrap_or(0);
    let end = text[start..].find('\0').map(|i| start + i).unwrap_or(text.len());
    serde_json::from_str(&text[start..end]).expect("a JSON answer")
}

/// Runs `per_conn` requests on each of `conns` connections (request `i` of a connection is
/// `reqs[i % reqs.len()]`), all starting together; returns (allocations, bytes) of the whole
/// process during the run and how long it took.
fn measure(addr: SocketAddr, conns: usize, per_conn: usize, reqs: Arc<Vec<Vec<u8>>>) -> (u64, u64, Duration) {
    let barrier = Arc::new(Barrier::new(conns + 1));
    let done = Arc::new(Barrier::new(conns + 1));
    let threads: Vec<_> = (0..conns)
        .map(|c| {
            let (barrier, done, reqs) = (barrier.clone(), done.clone(), reqs.clone());
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).expect("connect");
                s.set_nodelay(true).expect("nodelay");
                let mut buf = vec![0u8; 1 << 16];
                // Warm the connection (and the server's per-connection buffers) before counting.
                for i in 0..50 {
                    round_trip(&mut s, &reqs[(c + i) % reqs.len()], &mut buf);
                }
                barrier.wait();
                for i in 0..per_conn {
                    let status = round_trip(&mut s, &reqs[(c * per_conn + i) % reqs.len()], &mut buf);
                    assert_eq!(status, 200);
                }
                done.wait();
            })
        })
        .collect();
    barrier.wait();
    let (a0, b0, t0) = (ALLOCS.load(Relaxed), BYTES.load(Relaxed), Instant::now());
    done.wait();
    let (a1, b1, took) = (ALLOCS.load(Relaxed), BYTES.load(Relaxed), t0.elapsed());
    for t in threads {
        t.join().expect("client thread");
    }
    (a1 - a0, b1 - b0, took)
}

fn main() {
    let trace = std::env::args().nth(1).as_deref() == Some("trace");
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let (public, admin) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("hydra-allocs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dsn = format!("redb://{}", dir.display());
    for (k, v) in [
        ("DSN", dsn),
        ("SECRETS_SYSTEM", "allocs-bench-system-secret-0123456789".to_string()),
        ("SERVE_PUBLIC_HOST", "127.0.0.1".to_string()),
        ("SERVE_PUBLIC_PORT", public.to_string()),
        ("SERVE_ADMIN_HOST", "127.0.0.1".to_string()),
        ("SERVE_ADMIN_PORT", admin.to_string()),
        ("ENGINE_WORKERS", "1".to_string()),
        ("LOG_LEVEL", std::env::var("LOG_LEVEL").unwrap_or_else(|_| "info".into())),
    ] {
        // SAFETY: set before any other thread of this process exists.
        unsafe { std::env::set_var(k, v) };
    }
    // The server's log goes to stderr; keep this program's table on stdout.
    std::thread::spawn(move || {
        let args = hydra::cli::ServeArgs { dev: false, config: Vec::new(), sqa_opt_out: true };
        std::process::exit(hydra::server::serve(hydra::cli::ServeMode::All, &args));
    });
    let (pub_addr, adm_addr): (SocketAddr, SocketAddr) =
        (format!("127.0.0.1:{public}").parse().unwrap(), format!("127.0.0.1:{admin}").parse().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(pub_addr).is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let client = send_json(
        adm_addr,
        "POST",
        "/admin/clients",
        r#"{"grant_types":["client_credentials"],"scope":"read","token_endpoint_auth_method":"client_secret_basic"}"#,
    );
    let (id, secret) = (client["client_id"].as_str().unwrap(), client["client_secret"].as_str().unwrap());
    let basic = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{id}:{secret}"));
    let auth = format!("Basic {basic}");
    let form = [("Content-Type", "application/x-www-form-urlencoded"), ("Authorization", auth.as_str())];
    let issue = request("POST", "/oauth2/token", &form, "grant_type=client_credentials&scope=read");
    // A pool of tokens to introspect, issued before counting.
    let mut s = TcpStream::connect(pub_addr).expect("connect");
    let mut buf = vec![0u8; 1 << 16];
    let mut introspect = Vec::new();
    for _ in 0..2000 {
        assert_eq!(round_trip(&mut s, &issue, &mut buf), 200);
        let text = String::from_utf8_lossy(&buf);
        let at = text.find("\"access_token\":\"").expect("a token") + 16;
        let token = &text[at..at + text[at..].find('"').expect("token end")];
        let body = format!("token={token}");
        introspect.push(request("POST", "/admin/oauth2/introspect", &[form[0]], &body));
    }
    if trace {
        for (name, addr, req) in [("issuance", pub_addr, &issue), ("introspection", adm_addr, &introspect[0])] {
            let mut s = TcpStream::connect(addr).expect("connect");
            for _ in 0..20 {
                round_trip(&mut s, req, &mut buf);
            }
            TRACES.lock().expect("traces").clear();
            TRACING.store(true, Relaxed);
            round_trip(&mut s, req, &mut buf);
            // Let the committer and the log writer finish with this request.
            std::thread::sleep(Duration::from_millis(50));
            TRACING.store(false, Relaxed);
            let traces = std::mem::take(&mut *TRACES.lock().expect("traces"));
            println!("## {name}: {} allocations\n", traces.len());
            for t in traces {
                println!("- {t}");
            }
            println!();
        }
        let _ = std::fs::remove_dir_all(&dir);
        std::process::exit(0);
    }
    let introspect = Arc::new(introspect);
    let issue = Arc::new(vec![issue]);
    println!("| scenario | connections | requests | allocations per request | bytes per request | req/s (this process, unpinned) |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (name, addr, reqs) in [("issuance", pub_addr, &issue), ("introspection", adm_addr, &introspect)] {
        for conns in [1usize, 16] {
            let per = n / conns;
            let (allocs, bytes, took) = measure(addr, conns, per, reqs.clone());
            let total = (per * conns) as f64;
            println!(
                "| {name} | {conns} | {} | {:.1} | {:.0} | {:.0} |",
                per * conns,
                allocs as f64 / total,
                bytes as f64 / total,
                total / took.as_secs_f64()
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::process::exit(0);
}
