//! The per-connection loop: read into an owned buffer, parse requests (sans-IO), dispatch, and
//! write responses; HTTP/1.1 keep-alive and pipelining.
//!
//! Invariants: every malformed or oversized request gets a JSON error with its status and the
//! connection is then closed (its framing can no longer be trusted); a head must arrive within
//! the header timeout from its first byte; an idle connection is closed after the idle timeout;
//! responses to pipelined requests are written in order and flushed before blocking on a read;
//! nothing here panics on input bytes.

use crate::dates::http_date;
use crate::http::body::{ChunkedDecoder, ChunkedProgress};
use crate::http::request::{parse_head, BodyKind, Limits, Method};
use crate::http::response::ResponseWriter;
use crate::http::{HttpError, Request};
use crate::server::respond::Response;
use crate::server::router::Api;
use crate::server::state::Worker;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use std::time::{Duration, Instant};

enum ReadOutcome {
    Data,
    Eof,
    TimedOut,
    Stopped,
    Failed,
}

struct Conn<S> {
    stream: S,
    buf: Vec<u8>,
    out: Vec<u8>,
}

/// Queued pipelined answers are written once they reach this size, before the next request is
/// parsed: a client that pipelines and never reads holds at most this much of ours, not one
/// answer per request it managed to send.
const PIPELINE_FLUSH_AT: usize = 64 << 10;

/// Buffers grown past this by one large request or answer go back to their usual size, so an
/// idle keep-alive connection does not keep them.
const SHRINK_ABOVE: usize = 64 << 10;
const USUAL_BUF: usize = 8192;

impl<S: AsyncReadRent + AsyncWriteRent> Conn<S> {
    /// Reads more bytes, giving up at `deadline`, or when the worker stops if `stoppable`.
    async fn read_more(&mut self, deadline: Instant, w: &Worker, stoppable: bool) -> ReadOutcome {
        if self.buf.capacity() - self.buf.len() < 2048 {
            self.buf.reserve(8192);
        }
        let len = self.buf.len();
        let cap = self.buf.capacity();
        let buf = std::mem::take(&mut self.buf);
        let read = self.stream.read(buf.slice_mut(len..cap));
        let timed = monoio::time::timeout_at(deadline.into(), read);
        let result = if stoppable {
            monoio::select! {
                r = timed => Some(r),
                _ = w.stopped() => None,
            }
        } else {
            Some(timed.await)
        };
        match result {
            None => ReadOutcome::Stopped,
            Some(Err(_)) => ReadOutcome::TimedOut,
            Some(Ok((res, slice))) => {
                self.buf = slice.into_inner();
                match res {
                    Ok(0) => ReadOutcome::Eof,
                    Ok(_) => ReadOutcome::Data,
                    Err(_) => ReadOutcome::Failed,
                }
            }
        }
    }

    async fn flush(&mut self) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let out = std::mem::take(&mut self.out);
        // A client that stops reading does not hold this write for ever: the socket's
        // TCP_USER_TIMEOUT (`worker.rs`) fails it after the idle timeout.
        let (res, mut out) = self.stream.write_all(out).await;
        out.clear();
        if out.capacity() > SHRINK_ABOVE {
            out = Vec::with_capacity(USUAL_BUF);
        }
        self.out = out;
        res.is_ok()
    }

    /// Writes an HTTP-level error, then closes gracefully: shut down our sending side and drain
    /// what the client is still sending (bounded), so that unread request bytes do not make the
    /// kernel answer with a reset that destroys the error response before the client reads it.
    async fn fail(&mut self, e: HttpError) {
        let r =
            Response::json_value(e.status, &serde_json::json!({"error": e.error, "error_description": e.description}));
        write_response(&mut self.out, &r, false, false, false);
        if !self.flush().await {
            return;
        }
        let _ = self.stream.shutdown().await;
        let deadline = Instant::now() + LINGER;
        let mut drained = 0usize;
        while drained < LINGER_BYTES {
            self.buf.clear();
            let buf = std::mem::take(&mut self.buf);
            let cap = buf.capacity().max(4096);
            let mut buf = buf;
            buf.reserve(cap);
            let read = self.stream.read(buf);
            match monoio::time::timeout_at(deadline.into(), read).await {
                Ok((Ok(n), b)) if n > 0 => {
                    drained += n;
                    self.buf = b;
                }
                _ => break,
            }
        }
    }

    /// Reads a body that is not fully buffered yet: flushes queued responses first (pipelining
    /// must not wait on a slow body), then reads until `deadline`.
    async fn read_body(&mut self, deadline: Instant, w: &Worker) -> Result<(), Option<HttpError>> {
        if !self.flush().await {
            return Err(None);
        }
        match self.read_more(deadline, w, false).await {
            ReadOutcome::Data => Ok(()),
            ReadOutcome::TimedOut => Err(Some(HttpError::REQUEST_TIMEOUT)),
            _ => Err(None),
        }
    }
}

/// How long, and how many bytes, a connection is drained after an error answer.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 256 << 10;

/// Whether `buf` may hold a complete head, or is already past a limit: parsing is skipped until
/// then, so a head trickling in byte by byte is not re-parsed from the start on every read.
/// `from` is where the previous check stopped.
fn head_worth_parsing(buf: &[u8], from: usize, limits: &Limits) -> bool {
    // The first look at new bytes goes straight to the parser: a whole request usually arrives
    // in one read, and scanning for the blank line first would only repeat the parser's work
    // (measured: the scan cost more than `parse_head` in the issuance profile).
    if from == 0 || buf.len() > limits.max_head_bytes {
        return true;
    }
    let start = from.saturating_sub(3);
    let tail = buf.get(start..).unwrap_or(&[]);
    // httparse also accepts bare LF line ends, before a CRLF empty line too (`\n\r\n`).
    if tail.windows(2).any(|w| w == b"\n\n") || tail.windows(3).any(|w| w == b"\n\r\n") {
        return true;
    }
    // A request line longer than the URL limit is answered (414) without waiting for more.
    !buf.contains(&b'\n') && buf.len() > limits.max_url_bytes + 16
}

/// Serves one connection until it closes.
pub async fn serve<S: AsyncReadRent + AsyncWriteRent>(stream: S, w: &Worker, api: Api) {
    let cfg = w.config();
    let limits = Limits::default();
    let max_body = match api {
        Api::Public => cfg.engine.max_body_oauth,
        Api::Admin => cfg.engine.max_body_admin,
    };
    // Chunk framing may add overhead, but not without bound: a body arriving as one-byte chunks
    // with long extensions would otherwise hold a thousand times its size in memory.
    let max_wire = max_body.saturating_mul(2).saturating_add(16 << 10);
    let mut c = Conn { stream, buf: Vec::with_capacity(USUAL_BUF), out: Vec::with_capacity(USUAL_BUF) };
    loop {
        // Head.
        let mut head_deadline: Option<Instant> = None;
        let mut scanned = 0;
        if c.out.len() >= PIPELINE_FLUSH_AT && !c.flush().await {
            return;
        }
        let head = loop {
            if head_worth_parsing(&c.buf, scanned, &limits) {
                match parse_head(&c.buf, &limits) {
                    Ok(Some(h)) => break h,
                    Ok(None) => {}
                    Err(e) => return c.fail(e).await,
                }
            }
            scanned = c.buf.len();
            if !c.flush().await {
                return;
            }
            if w.stopping.get() && c.buf.is_empty() {
                return;
            }
            let idle = c.buf.is_empty();
            let deadline = if idle {
                Instant::now() + cfg.engine.idle_timeout
            } else {
                *head_deadline.get_or_insert_with(|| Instant::now() + cfg.engine.header_timeout)
            };
            match c.read_more(deadline, w, idle).await {
                ReadOutcome::Data => {
                    if head_deadline.is_none() {
                        head_deadline = Some(Instant::now() + cfg.engine.header_timeout);
                    }
                }
                ReadOutcome::TimedOut if !idle => return c.fail(HttpError::REQUEST_TIMEOUT).await,
                _ => return,
            }
        };
        if let Err(e) = crate::http::request::check_host(&head) {
            return c.fail(e).await;
        }
        // The head is parsed into owned values; from here the buffer starts at the body.
        c.buf.drain(..head.head_len);
        let body_deadline = Instant::now() + cfg.engine.header_timeout.max(Duration::from_secs(1)) * 3;
        let body = match head.body {
            BodyKind::None => Vec::new(),
            BodyKind::Length(n) => {
                if n > max_body as u64 {
                    return c.fail(HttpError::PAYLOAD_TOO_LARGE).await;
                }
                let need = n as usize;
                if c.buf.len() < need && head.expect_continue {
                    c.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                }
                while c.buf.len() < need {
                    match c.read_body(body_deadline, w).await {
                        Ok(()) => {}
                        Err(Some(e)) => return c.fail(e).await,
                        Err(None) => return,
                    }
                }
                c.buf.drain(..need).collect()
            }
            BodyKind::Chunked => {
                let mut dec = ChunkedDecoder::new(max_body);
                let mut body = Vec::new();
                let mut wire = 0usize;
                if head.expect_continue {
                    c.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                }
                loop {
                    match dec.feed(&c.buf, &mut body) {
                        Ok((used, progress)) => {
                            // Decoded bytes are kept once, in `body`; the framing is dropped.
                            c.buf.drain(..used.min(c.buf.len()));
                            wire = wire.saturating_add(used);
                            if progress == ChunkedProgress::Done {
                                break;
                            }
                        }
                        Err(e) => return c.fail(e).await,
                    }
                    if wire > max_wire || c.buf.len() > max_wire {
                        return c.fail(HttpError::PAYLOAD_TOO_LARGE).await;
                    }
                    match c.read_body(body_deadline, w).await {
                        Ok(()) => {}
                        Err(Some(e)) => return c.fail(e).await,
                        Err(None) => return,
                    }
                }
                body
            }
        };
        let is_head = head.method == Method::Head;
        let (keep_alive, http10) = (head.keep_alive, head.http10);
        let req = Request { head, body };
        let resp = crate::server::dispatch::dispatch(w, api, &req).await;
        let keep = keep_alive && !resp.close && !w.stopping.get();
        write_response(&mut c.out, &resp, keep, keep && http10, is_head);
        if c.buf.capacity() > SHRINK_ABOVE && c.buf.len() <= USUAL_BUF {
            c.buf.shrink_to(USUAL_BUF);
        }
        if !keep {
            let _ = c.flush().await;
            return;
        }
    }
}

thread_local! {
    static DATE: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((0, String::new())) };
}

/// Calls `f` with the `Date` header value, formatted at most once per second per thread (and not
/// copied per response).
fn with_date<R>(f: impl FnOnce(&str) -> R) -> R {
    let now = crate::server::state::unix_now().max(0) as u64;
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != now || d.1.is_empty() {
            *d = (now, http_date(now));
        }
        f(&d.1)
    })
}

/// Serializes a response into `out`; `announce` says the connection stays open (an HTTP/1.0
/// client's keep-alive, which persists only when the answer says so).
pub fn write_response(out: &mut Vec<u8>, r: &Response, keep_alive: bool, announce: bool, head_only: bool) {
    let mut w = ResponseWriter::new(out, r.status);
    with_date(|date| w.header("Date", date));
    for (k, v) in &r.headers {
        w.header(k, v);
    }
    if announce {
        w.header("Connection", "keep-alive");
    }
    if head_only {
        w.finish_head(&r.body, keep_alive);
    } else {
        w.finish(&r.body, keep_alive);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_is_parsed_only_once_it_can_be_complete_or_too_big() {
        let l = Limits::default();
        assert!(head_worth_parsing(b"GET / HTTP/1.1\r\nHost: x\r\n", 0, &l), "first look always parses");
        assert!(!head_worth_parsing(b"GET / HTTP/1.1\r\nHost: x\r\n", 5, &l));
        assert!(head_worth_parsing(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 5, &l));
        assert!(head_worth_parsing(b"GET / HTTP/1.1\nHost: x\n\n", 5, &l), "bare LF heads");
        assert!(head_worth_parsing(b"GET / HTTP/1.1\nHost: x\n\r\n", 5, &l), "a bare LF, then CRLF");
        // The terminator split across two reads is still found.
        let full = b"GET / HTTP/1.1\r\n\r\n";
        assert!(head_worth_parsing(full, full.len() - 2, &l));
        let long_line = vec![b'a'; l.max_url_bytes + 17];
        assert!(head_worth_parsing(&long_line, 10, &l), "an over-long request line is answered at once");
        let mut big = b"GET / HTTP/1.1\r\n".to_vec();
        big.resize(l.max_head_bytes + 1, b'x');
        assert!(head_worth_parsing(&big, big.len() - 1, &l));
    }
}
