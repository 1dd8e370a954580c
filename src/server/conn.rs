//! The per-connection loop: read into an owned buffer, parse requests (sans-IO), dispatch, and
//! write responses; HTTP/1.1 keep-alive and pipelining.
//!
//! Invariants: every malformed or oversized request gets a JSON error with its status and the
//! connection is then closed (its framing can no longer be trusted); a head must arrive within
//! the header timeout from its first byte; an idle connection is closed after the idle timeout;
//! responses to pipelined requests are written in order and flushed before blocking on a read;
//! nothing here panics on input bytes.

use crate::http::body::{ChunkedDecoder, ChunkedProgress};
use crate::http::request::{parse_head, BodyKind, Limits, Method, RequestHead};
use crate::http::response::{http_date, ResponseWriter};
use crate::http::HttpError;
use crate::server::respond::Response;
use crate::server::router::Api;
use crate::server::state::Worker;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use std::time::{Duration, Instant};

/// A parsed request with its whole body.
#[derive(Debug)]
pub struct Request {
    pub head: RequestHead,
    pub body: Vec<u8>,
}

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
        let (res, mut out) = self.stream.write_all(out).await;
        out.clear();
        self.out = out;
        res.is_ok()
    }

    /// Writes an HTTP-level error and flushes; the caller closes the connection.
    async fn fail(&mut self, e: HttpError) {
        let r =
            Response::json_value(e.status, &serde_json::json!({"error": e.error, "error_description": e.description}));
        write_response(&mut self.out, &r, false, false);
        let _ = self.flush().await;
    }
}

/// Serves one connection until it closes.
pub async fn serve<S: AsyncReadRent + AsyncWriteRent>(stream: S, w: &Worker, api: Api) {
    let cfg = w.config();
    let limits = Limits::default();
    let max_body = match api {
        Api::Public => cfg.max_body_oauth,
        Api::Admin => cfg.max_body_admin,
    };
    let mut c = Conn { stream, buf: Vec::with_capacity(8192), out: Vec::with_capacity(8192) };
    loop {
        // Head.
        let mut head_deadline: Option<Instant> = None;
        let head = loop {
            match parse_head(&c.buf, &limits) {
                Ok(Some(h)) => break h,
                Ok(None) => {}
                Err(e) => return c.fail(e).await,
            }
            if !c.flush().await {
                return;
            }
            if w.stopping.get() && c.buf.is_empty() {
                return;
            }
            let idle = c.buf.is_empty();
            let deadline = if idle {
                Instant::now() + cfg.idle_timeout
            } else {
                *head_deadline.get_or_insert_with(|| Instant::now() + cfg.header_timeout)
            };
            match c.read_more(deadline, w, idle).await {
                ReadOutcome::Data => {
                    if head_deadline.is_none() {
                        head_deadline = Some(Instant::now() + cfg.header_timeout);
                    }
                }
                ReadOutcome::TimedOut if !idle => return c.fail(HttpError::REQUEST_TIMEOUT).await,
                _ => return,
            }
        };
        // Body.
        let body_deadline = Instant::now() + cfg.header_timeout.max(Duration::from_secs(1)) * 3;
        let (body, consumed) = match head.body {
            BodyKind::None => (Vec::new(), head.head_len),
            BodyKind::Length(n) => {
                if n > max_body as u64 {
                    return c.fail(HttpError::PAYLOAD_TOO_LARGE).await;
                }
                let need = head.head_len + n as usize;
                if c.buf.len() < need && head.expect_continue {
                    c.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                    if !c.flush().await {
                        return;
                    }
                }
                while c.buf.len() < need {
                    match c.read_more(body_deadline, w, false).await {
                        ReadOutcome::Data => {}
                        ReadOutcome::TimedOut => return c.fail(HttpError::REQUEST_TIMEOUT).await,
                        _ => return,
                    }
                }
                (c.buf[head.head_len..need].to_vec(), need)
            }
            BodyKind::Chunked => {
                let mut dec = ChunkedDecoder::new(max_body);
                let mut body = Vec::new();
                let mut pos = head.head_len;
                let mut continued = false;
                loop {
                    match dec.feed(c.buf.get(pos..).unwrap_or(&[]), &mut body) {
                        Ok((used, ChunkedProgress::Done)) => {
                            pos += used;
                            break;
                        }
                        Ok((used, ChunkedProgress::NeedMore)) => pos += used,
                        Err(e) => return c.fail(e).await,
                    }
                    if head.expect_continue && !continued {
                        continued = true;
                        c.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                        if !c.flush().await {
                            return;
                        }
                    }
                    match c.read_more(body_deadline, w, false).await {
                        ReadOutcome::Data => {}
                        ReadOutcome::TimedOut => return c.fail(HttpError::REQUEST_TIMEOUT).await,
                        _ => return,
                    }
                }
                (body, pos)
            }
        };
        c.buf.drain(..consumed);
        let is_head = head.method == Method::Head;
        let keep_alive = head.keep_alive;
        let req = Request { head, body };
        let resp = crate::server::handlers::dispatch(w, api, &req).await;
        let keep = keep_alive && !resp.close && !w.stopping.get();
        write_response(&mut c.out, &resp, keep, is_head);
        if !keep {
            let _ = c.flush().await;
            return;
        }
    }
}

thread_local! {
    static DATE: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((0, String::new())) };
}

/// The `Date` header value, formatted at most once per second per thread.
fn cached_date() -> String {
    let now = crate::server::state::unix_now().max(0) as u64;
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != now || d.1.is_empty() {
            *d = (now, http_date(now));
        }
        d.1.clone()
    })
}

/// Serializes a response into `out`.
pub fn write_response(out: &mut Vec<u8>, r: &Response, keep_alive: bool, head_only: bool) {
    let date = cached_date();
    let mut w = ResponseWriter::new(out, r.status);
    w.header("Date", &date);
    for (k, v) in &r.headers {
        w.header(k, v);
    }
    if head_only {
        w.finish_head(&r.body, keep_alive);
    } else {
        w.finish(&r.body, keep_alive);
    }
}
