//! One worker: a monoio runtime pinned to its CPU, accepting on its own listeners and serving
//! each connection in a task of its own.
//!
//! Invariants: a panic in a connection's task closes that connection only (monoio does not catch
//! panics: one would otherwise end the worker); a worker serves at most
//! [`MAX_CONNECTIONS_PER_WORKER`] connections, more wait in the listen backlog.

/// Connections one worker serves at once; more wait in the listen backlog. Bounds memory (each
/// connection holds at least its 8 KiB buffers) under a connection flood.
use crate::config::Driver;
use crate::server::conn;
use crate::server::router::Api;
use crate::server::state::{Shared, Worker};
use crate::{error, info, warn};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

const MAX_CONNECTIONS_PER_WORKER: usize = 16_384;

/// The CPUs this process may run on (respects `taskset` and cgroup cpusets), in order.
pub(super) fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `cpu_set_t` is plain data for which all-zero is a valid (empty) value, and
    // `sched_getaffinity` writes at most `size_of::<cpu_set_t>()` bytes into it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is this thread; the size matches the buffer passed.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Vec::new();
    }
    // SAFETY: `CPU_ISSET` only reads the set initialised above, for indices below CPU_SETSIZE.
    (0..libc::CPU_SETSIZE as usize).filter(|c| unsafe { libc::CPU_ISSET(*c, &set) }).collect()
}

/// One bound listener of a worker, with its TLS acceptor when the API serves HTTPS.
pub(super) type Listener = (Api, std::net::TcpListener, Option<monoio_rustls::TlsAcceptor>);

pub(super) fn run_worker(
    shared: Arc<Shared>,
    index: usize,
    cpu: Option<usize>,
    listeners: Vec<Listener>,
    ready: std::sync::mpsc::Sender<bool>,
) -> Result<(), String> {
    // One worker per core: pin to the index-th CPU this process is allowed on.
    if let Some(cpu) = cpu {
        if monoio::utils::bind_to_cpu_set([cpu]).is_err() {
            warn!("could not pin worker to its core", "worker" = index, "cpu" = cpu);
        }
    }
    let driver = match shared.config.engine.driver {
        Driver::Auto if monoio::utils::detect_uring() => Driver::IoUring,
        Driver::Auto => Driver::Legacy,
        d => d,
    };
    // The worker counts as started (systemd's READY=1) once its runtime is built.
    let built = |ok: bool| {
        let _ = ready.send(ok);
    };
    let w = match Worker::new(shared, index) {
        Ok(w) => Rc::new(w),
        Err(e) => {
            built(false);
            return Err(e);
        }
    };
    crate::log::set_batched(true);
    let ran = match driver {
        Driver::IoUring => {
            let (mut rt, taskrun) = uring_runtime()
                .map_err(|e| format!("io_uring runtime: {e} (set ENGINE_DRIVER=legacy to use epoll)"))
                .inspect_err(|_| built(false))?;
            built(true);
            info!("worker started", "worker" = index, "driver" = "io_uring", "task_run" = taskrun);
            rt.block_on(worker_main(w, listeners))
        }
        _ => {
            let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .enable_timer()
                .build()
                .map_err(|e| format!("epoll runtime: {e}"))
                .inspect_err(|_| built(false))?;
            built(true);
            info!("worker started", "worker" = index, "driver" = "legacy (epoll)");
            rt.block_on(worker_main(w, listeners))
        }
    };
    crate::log::flush_local();
    ran
}

type UringRuntime = monoio::Runtime<monoio::time::TimeDriver<monoio::IoUringDriver>>;

/// The worker's io_uring runtime, with cooperative task running where the kernel has it (5.19 and
/// later), else the kernel's default; also says which it got.
///
/// Why: by default the kernel runs io_uring's completion work by interrupting the worker with an
/// inter-processor interrupt whenever a socket served on another core completes one of its
/// receives; cooperatively it waits for the worker's next entry into the kernel, which a busy
/// worker makes many times a millisecond. Measured (`docs/design.md` §3, io_uring setup):
/// reschedule IPIs 457 → 36–39 per 1,000 issuances; `loadtest/ab.sh` against the build without
/// it: ceiling 1.28×, issuance 1.22×, introspection 1.34×. Deferred task running is not used:
/// monoio would reap completions only when it parks.
fn uring_runtime() -> std::io::Result<(UringRuntime, &'static str)> {
    let build = |coop: bool| {
        let mut urb = io_uring::IoUring::builder();
        if coop {
            urb.setup_coop_taskrun().setup_taskrun_flag();
        }
        monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .uring_builder(urb)
            .with_entries(1024)
            .enable_timer()
            .build()
    };
    match build(true) {
        Ok(rt) => Ok((rt, "cooperative")),
        // Older kernels refuse the flags (EINVAL): the default still works there.
        Err(_) => build(false).map(|rt| (rt, "interrupting")),
    }
}

/// How often a worker hands its buffered log lines to the writer thread when they do not fill a
/// buffer first: the longest a request's line waits.
const LOG_FLUSH_EVERY: Duration = Duration::from_millis(10);

async fn worker_main(w: Rc<Worker>, listeners: Vec<Listener>) -> Result<(), String> {
    {
        let w = w.clone();
        monoio::spawn(async move {
            while !w.shared.shutting_down.load(Ordering::Relaxed) {
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
            w.signal_stop();
        });
    }
    monoio::spawn(async {
        loop {
            monoio::time::sleep(LOG_FLUSH_EVERY).await;
            crate::log::flush_local();
        }
    });
    for (api, std_listener, acceptor) in listeners {
        let l = monoio::net::TcpListener::from_std(std_listener).map_err(|e| e.to_string())?;
        let w = w.clone();
        monoio::spawn(async move {
            let mut last_warning: Option<std::time::Instant> = None;
            loop {
                if w.connections.get() >= MAX_CONNECTIONS_PER_WORKER {
                    // Leave further connections in the kernel's backlog until some close.
                    monoio::time::sleep(Duration::from_millis(5)).await;
                    if w.stopping.get() {
                        break;
                    }
                    continue;
                }
                let accepted = monoio::select! {
                    r = l.accept() => Some(r),
                    _ = w.stopped() => None,
                };
                match accepted {
                    None => break,
                    Some(Ok((stream, _peer))) => {
                        let _ = stream.set_nodelay(true);
                        // A client that stops reading (its window stays shut) or vanishes is cut
                        // off by the kernel after the idle timeout: a blocked write then fails and
                        // the connection closes. No timer per write on the request path (callgrind:
                        // a deadline on every flush cost 615 instructions per ceiling request).
                        let _ = super::listen::set_user_timeout(&stream, w.config().engine.idle_timeout);
                        w.connections.set(w.connections.get() + 1);
                        let w = w.clone();
                        let acceptor = acceptor.clone();
                        monoio::spawn(async move {
                            // A bug must cost one connection, never the worker and its listeners.
                            if CatchUnwind(Box::pin(serve_conn(stream, &w, api, acceptor))).await.is_err() {
                                error!("a connection handler panicked; the connection was closed", "worker" = w.index);
                            }
                            w.connections.set(w.connections.get() - 1);
                        });
                    }
                    Some(Err(e)) => {
                        // Out of file descriptors and similar: back off instead of spinning, and
                        // say so at most once a second.
                        let now = std::time::Instant::now();
                        if last_warning.is_none_or(|t: std::time::Instant| now - t >= Duration::from_secs(1)) {
                            warn!("accept failed", "error" = e);
                            last_warning = Some(now);
                        }
                        monoio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        });
    }
    w.stopped().await;
    let grace = std::time::Instant::now() + Duration::from_secs(10);
    while w.connections.get() > 0 && std::time::Instant::now() < grace {
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Serves one accepted connection, after a TLS handshake when the API has TLS. The handshake
/// must finish within the header timeout, so a client that opens a connection and stalls in
/// the handshake holds it no longer than one that stalls in a request head.
async fn serve_conn(stream: monoio::net::TcpStream, w: &Worker, api: Api, tls: Option<monoio_rustls::TlsAcceptor>) {
    let Some(acceptor) = tls else {
        return conn::serve(stream, w, api).await;
    };
    let handshake = monoio::time::timeout(w.config().engine.header_timeout, acceptor.accept(stream));
    let stopped = monoio::select! {
        r = handshake => Some(r),
        _ = w.stopped() => None,
    };
    match stopped {
        Some(Ok(Ok(tls_stream))) => conn::serve(tls_stream, w, api).await,
        // A failed or slow handshake is the client's problem; nothing to answer over TLS.
        Some(Ok(Err(e))) => crate::debug!("TLS handshake failed", "error" = e),
        Some(Err(_)) | None => {}
    }
}

/// Turns a panic inside a future into an error result (monoio does not catch panics in tasks:
/// one would unwind out of the worker's `block_on`).
struct CatchUnwind<F>(std::pin::Pin<Box<F>>);

impl<F: std::future::Future> std::future::Future for CatchUnwind<F> {
    type Output = Result<F::Output, ()>;
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(_) => std::task::Poll::Ready(Err(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catch_unwind_turns_a_panic_into_an_error() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().build().unwrap();
        let r = rt.block_on(CatchUnwind(Box::pin(async {
            let v: Vec<u8> = Vec::new();
            v[usize::from(v.is_empty())]
        })));
        assert!(r.is_err());
        let ok = rt.block_on(CatchUnwind(Box::pin(async { 7 })));
        assert_eq!(ok, Ok(7));
    }

    /// Kernel release as (major, minor), from `uname -r`'s field in /proc.
    fn kernel() -> Option<(u32, u32)> {
        let r = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
        let mut it = r.trim().split(|c: char| !c.is_ascii_digit()).map(|p| p.parse::<u32>().ok());
        Some((it.next()??, it.next()??))
    }

    /// With cooperative task running, completions that another thread's socket produces are
    /// still delivered: a worker-side read of bytes written by a plain thread finishes, and
    /// the answer reaches that thread. On kernels with the flag the runtime must use it.
    #[test]
    fn the_uring_runtime_runs_cooperatively_and_still_hears_other_threads() {
        if !monoio::utils::detect_uring() {
            eprintln!("no io_uring here: nothing to check");
            return;
        }
        let (mut rt, task_run) = uring_runtime().expect("an io_uring runtime");
        if kernel().is_some_and(|k| k >= (5, 19)) {
            assert_eq!(task_run, "cooperative");
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut got = Vec::new();
            for round in 0..50u8 {
                // Pause so the worker is waiting in the kernel when the bytes arrive.
                std::thread::sleep(Duration::from_millis(2));
                s.write_all(&[round; 64]).unwrap();
                let mut back = [0u8; 64];
                s.read_exact(&mut back).unwrap();
                got.push(back);
            }
            got
        });
        let echoed = rt.block_on(async move {
            use monoio::io::{AsyncReadRentExt, AsyncWriteRentExt};
            let listener = monoio::net::TcpListener::from_std(listener).unwrap();
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut n = 0;
            for _ in 0..50 {
                let (r, buf) = conn.read_exact(vec![0u8; 64]).await;
                r.unwrap();
                let (w, _) = conn.write_all(buf).await;
                w.unwrap();
                n += 1;
            }
            n
        });
        assert_eq!(echoed, 50);
        let got = client.join().unwrap();
        assert!(got.iter().enumerate().all(|(i, b)| b.iter().all(|x| usize::from(*x) == i)));
    }
}
