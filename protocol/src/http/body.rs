//! Incremental decoder for the `chunked` transfer coding (RFC 9112 §7.1), sans-IO.
//!
//! Invariants: input may be split at any byte boundary and the result is identical; the
//! decoder never consumes a byte past the final CRLF (so a pipelined request that follows
//! stays in the caller's buffer); decoded output never exceeds `max_body`; every line it
//! has to remember is bounded, so memory use doesn't depend on the peer.

use super::HttpError;

/// The chunk-size line, extensions included: generous for real clients, small enough
/// that extensions can't be used to make us spin on an endless line.
const MAX_SIZE_LINE: usize = 1024;
/// Trailers are discarded, but they still cost reads; cap them like a small header block.
const MAX_TRAILER_BYTES: usize = 8 * 1024;

const MALFORMED: HttpError = HttpError::bad_request("The chunked request body is malformed.");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkedProgress {
    /// All input was consumed and the body is not finished yet.
    NeedMore,
    /// The terminating chunk and trailer section have been read.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of the chunk size.
    SizeDigits,
    /// Whitespace after the digits, before `;` or CR.
    SizeWs,
    /// Inside chunk extensions, which are ignored.
    SizeExt,
    /// Saw CR ending the size line.
    SizeLf,
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// Inside a trailer line; `len` is its length so far.
    Trailer {
        len: usize,
    },
    /// Saw CR ending a trailer line; `empty` means it ended the trailer section.
    TrailerLf {
        empty: bool,
    },
    Done,
    Failed(HttpError),
}

#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    max_body: usize,
    decoded: u64,
    size: u64,
    size_digits: usize,
    size_line: usize,
    trailer_bytes: usize,
}

impl ChunkedDecoder {
    pub fn new(max_body: usize) -> Self {
        ChunkedDecoder {
            state: State::SizeDigits,
            max_body,
            decoded: 0,
            size: 0,
            size_digits: 0,
            size_line: 0,
            trailer_bytes: 0,
        }
    }

    /// Payload bytes produced so far.
    pub fn decoded_len(&self) -> u64 {
        self.decoded
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes bytes from `input`, appends decoded payload to `out`. Returns (bytes consumed, progress).
    ///
    /// On `NeedMore` all of `input` was consumed. On `Done` the bytes after the returned
    /// count belong to the next request. After an error the decoder stays failed: the
    /// framing is lost, so the connection must be closed.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(usize, ChunkedProgress), HttpError> {
        let mut pos = 0;
        while pos < input.len() {
            match self.state {
                State::Done => return Ok((pos, ChunkedProgress::Done)),
                State::Failed(e) => return Err(e),
                State::Data { remaining } => {
                    let available = input.len() - pos;
                    let take = usize::try_from(remaining).map_or(available, |r| r.min(available));
                    let chunk = input.get(pos..pos + take).unwrap_or_default();
                    out.extend_from_slice(chunk);
                    pos += take;
                    let left = remaining - take as u64;
                    self.state = if left == 0 { State::DataCr } else { State::Data { remaining: left } };
                }
                _ => {
                    let byte = input.get(pos).copied().unwrap_or_default();
                    pos += 1;
                    if let Err(e) = self.step(byte) {
                        self.state = State::Failed(e);
                        return Err(e);
                    }
                }
            }
        }
        match self.state {
            State::Done => Ok((pos, ChunkedProgress::Done)),
            State::Failed(e) => Err(e),
            _ => Ok((pos, ChunkedProgress::NeedMore)),
        }
    }

    /// Advances the framing state machine by one byte outside chunk data.
    fn step(&mut self, b: u8) -> Result<(), HttpError> {
        match self.state {
            State::SizeDigits | State::SizeWs | State::SizeExt | State::SizeLf => {
                self.size_line += 1;
                if self.size_line > MAX_SIZE_LINE {
                    return Err(MALFORMED);
                }
            }
            State::Trailer { .. } | State::TrailerLf { .. } => {
                self.trailer_bytes += 1;
                if self.trailer_bytes > MAX_TRAILER_BYTES {
                    return Err(HttpError::HEADERS_TOO_LARGE);
                }
            }
            _ => {}
        }
        self.state = match (self.state, b) {
            (State::SizeDigits, _) if b.is_ascii_hexdigit() => {
                let digit = hex_value(b);
                self.size = self.size.checked_mul(16).and_then(|s| s.checked_add(digit)).ok_or(MALFORMED)?;
                self.size_digits += 1;
                State::SizeDigits
            }
            (State::SizeDigits, b' ' | b'\t' | b';' | b'\r') => {
                if self.size_digits == 0 {
                    return Err(MALFORMED);
                }
                // The size is final here; refuse before buffering any of it.
                let total = self.decoded.checked_add(self.size);
                if total.is_none_or(|t| t > self.max_body as u64) {
                    return Err(HttpError::PAYLOAD_TOO_LARGE);
                }
                match b {
                    b';' => State::SizeExt,
                    b'\r' => State::SizeLf,
                    _ => State::SizeWs,
                }
            }
            (State::SizeWs, b' ' | b'\t') => State::SizeWs,
            (State::SizeWs, b';') => State::SizeExt,
            (State::SizeWs, b'\r') => State::SizeLf,
            (State::SizeExt, b'\r') => State::SizeLf,
            // Extensions are opaque to us, but control bytes (bare LF above all) inside them
            // are how line-ending disagreements between hops get exploited.
            (State::SizeExt, _) if b == b'\t' || (b >= 0x20 && b != 0x7f) => State::SizeExt,
            (State::SizeLf, b'\n') => {
                let size = self.size;
                self.size = 0;
                self.size_digits = 0;
                self.size_line = 0;
                if size == 0 {
                    State::Trailer { len: 0 }
                } else {
                    self.decoded += size;
                    State::Data { remaining: size }
                }
            }
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => State::SizeDigits,
            (State::Trailer { len }, b'\r') => State::TrailerLf { empty: len == 0 },
            (State::Trailer { .. }, b'\n' | 0) => return Err(MALFORMED),
            (State::Trailer { len }, _) => State::Trailer { len: len + 1 },
            (State::TrailerLf { empty: true }, b'\n') => State::Done,
            (State::TrailerLf { empty: false }, b'\n') => State::Trailer { len: 0 },
            _ => return Err(MALFORMED),
        };
        Ok(())
    }
}

fn hex_value(b: u8) -> u64 {
    let v = match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    };
    u64::from(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in the given piece sizes, as a socket would deliver it.
    fn feed_pieces(
        max: usize,
        input: &[u8],
        pieces: impl IntoIterator<Item = usize>,
    ) -> Result<(usize, Vec<u8>), HttpError> {
        let mut dec = ChunkedDecoder::new(max);
        let mut out = Vec::new();
        let mut pos = 0;
        let mut pieces = pieces.into_iter();
        while pos < input.len() {
            let n = pieces.next().unwrap_or(input.len()).max(1);
            let end = (pos + n).min(input.len());
            let (used, progress) = dec.feed(&input[pos..end], &mut out)?;
            pos += used;
            match progress {
                ChunkedProgress::Done => return Ok((pos, out)),
                ChunkedProgress::NeedMore => assert_eq!(pos, end, "NeedMore must consume all"),
            }
        }
        Err(HttpError::REQUEST_TIMEOUT) // stands in for "ran out of input"
    }

    fn decode_all(max: usize, input: &[u8]) -> Result<(usize, Vec<u8>), HttpError> {
        feed_pieces(max, input, std::iter::empty())
    }

    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    const VALID: &[(&[u8], &[u8])] = &[
        (b"0\r\n\r\n", b""),
        (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
        (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"),
        (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
        (b"a\r\n0123456789\r\n0000\r\n\r\n", b"0123456789"),
        (b"003\r\nabc\r\n0\r\n\r\n", b"abc"),
        (b"3;name=value\r\nabc\r\n0;x\r\n\r\n", b"abc"),
        (b"3 ; name=\"quoted;value\"\r\nabc\r\n0\r\n\r\n", b"abc"),
        (b"3\t\r\nabc\r\n0\r\n\r\n", b"abc"),
        (b"3\r\na\r\n\r\n0\r\n\r\n", b"a\r\n"),
        (b"4\r\ndata\r\n0\r\nExpires: never\r\nX-Checksum: abc\r\n\r\n", b"data"),
    ];

    #[test]
    fn valid_bodies() {
        for (input, want) in VALID {
            let (used, out) = decode_all(1024, input).unwrap();
            assert_eq!(out, *want, "{:?}", String::from_utf8_lossy(input));
            assert_eq!(used, input.len());
        }
    }

    #[test]
    fn split_every_byte() {
        for (input, want) in VALID {
            let (used, out) = feed_pieces(1024, input, std::iter::repeat(1)).unwrap();
            assert_eq!(out, *want, "{:?}", String::from_utf8_lossy(input));
            assert_eq!(used, input.len());
        }
    }

    #[test]
    fn random_splits() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut payload = Vec::new();
        let mut body = Vec::new();
        for i in 0..40u8 {
            let len = (rng.next() % 300) as usize + 1;
            let chunk: Vec<u8> = (0..len).map(|j| i.wrapping_mul(31).wrapping_add(j as u8)).collect();
            body.extend_from_slice(format!("{len:x};i={i}\r\n").as_bytes());
            body.extend_from_slice(&chunk);
            body.extend_from_slice(b"\r\n");
            payload.extend_from_slice(&chunk);
        }
        body.extend_from_slice(b"0\r\nTrailer: yes\r\n\r\n");
        for _ in 0..200 {
            let sizes: Vec<usize> = (0..body.len()).map(|_| (rng.next() % 17) as usize + 1).collect();
            let (used, out) = feed_pieces(1 << 20, &body, sizes).unwrap();
            assert_eq!(used, body.len());
            assert_eq!(out, payload);
        }
    }

    #[test]
    fn stops_at_end_of_body_for_pipelining() {
        let input = b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        let mut dec = ChunkedDecoder::new(100);
        let mut out = Vec::new();
        let (used, progress) = dec.feed(input, &mut out).unwrap();
        assert_eq!(progress, ChunkedProgress::Done);
        assert_eq!(&input[used..], b"GET / HTTP/1.1\r\n\r\n");
        assert!(dec.is_done());
        assert_eq!(dec.decoded_len(), 3);
        // Once done, further input is left untouched.
        assert_eq!(dec.feed(b"more", &mut out).unwrap(), (0, ChunkedProgress::Done));
        assert_eq!(out, b"abc");
    }

    #[test]
    fn need_more_consumes_everything() {
        let mut dec = ChunkedDecoder::new(100);
        let mut out = Vec::new();
        assert_eq!(dec.feed(b"5\r\nhel", &mut out).unwrap(), (6, ChunkedProgress::NeedMore));
        assert_eq!(out, b"hel");
        assert_eq!(dec.feed(b"", &mut out).unwrap(), (0, ChunkedProgress::NeedMore));
        assert_eq!(dec.feed(b"lo\r\n0\r\n\r\n", &mut out).unwrap(), (9, ChunkedProgress::Done));
        assert_eq!(out, b"hello");
    }

    #[test]
    fn malformed_framing_is_400() {
        let table: &[&[u8]] = &[
            b"g\r\n",
            b"\r\n",
            b";ext\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"-5\r\n",
            b"+5\r\n",
            b"0x5\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\rhello",
            b"5\r\nhelloX\r\n",
            b"5\r\nhello\rX",
            b"5\r\nhello\n0\r\n\r\n",
            b"5 x\r\n",
            b"5;a\nb\r\n",
            b"5;a\0\r\n",
            b"0\r\nX: y\n\r\n",
            b"0\r\nX: \0\r\n\r\n",
            b"0\r\n\rX",
            b"ffffffffffffffffff\r\n",
            b"10000000000000000\r\n",
        ];
        for input in table {
            let err = decode_all(usize::MAX, input).unwrap_err();
            assert_eq!(err.status, 400, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn largest_chunk_size_is_not_overflow() {
        // 16 f's fit in u64; only the body limit can refuse it.
        let err = decode_all(1 << 20, b"ffffffffffffffff\r\n").unwrap_err();
        assert_eq!(err.status, 413);
    }

    #[test]
    fn overflow_with_leading_zeros_is_fine() {
        let (_, out) = decode_all(10, b"00000000000000000000001\r\nx\r\n0\r\n\r\n").unwrap();
        assert_eq!(out, b"x");
    }

    #[test]
    fn size_line_limit() {
        let mut ok = b"1;".to_vec();
        ok.resize(MAX_SIZE_LINE - 2, b'x');
        ok.extend_from_slice(b"\r\nz\r\n0\r\n\r\n");
        assert_eq!(decode_all(10, &ok).unwrap().1, b"z");

        let mut long = b"1;".to_vec();
        long.resize(MAX_SIZE_LINE - 1, b'x');
        long.extend_from_slice(b"\r\nz\r\n0\r\n\r\n");
        assert_eq!(decode_all(10, &long).unwrap_err().status, 400);

        // A never-ending extension fails as soon as the cap is crossed, without waiting for CR.
        let endless = vec![b'x'; 4096];
        let mut dec = ChunkedDecoder::new(10);
        let mut out = Vec::new();
        assert!(dec.feed(b"1;", &mut out).is_ok());
        assert_eq!(dec.feed(&endless, &mut out).unwrap_err().status, 400);
    }

    #[test]
    fn body_limit_is_413() {
        assert_eq!(decode_all(5, b"5\r\nhello\r\n0\r\n\r\n").unwrap().1, b"hello");
        let err = decode_all(4, b"5\r\nhello\r\n0\r\n\r\n").unwrap_err();
        assert_eq!(err, HttpError::PAYLOAD_TOO_LARGE);
        // The sum across chunks counts, and it is refused before the data arrives.
        let mut dec = ChunkedDecoder::new(8);
        let mut out = Vec::new();
        dec.feed(b"5\r\nhello\r\n", &mut out).unwrap();
        assert_eq!(dec.feed(b"4\r\n", &mut out).unwrap_err().status, 413);
        assert_eq!(out, b"hello");
    }

    #[test]
    fn trailer_limit_is_431() {
        let mut ok = b"0\r\nX: ".to_vec();
        ok.resize(3 + MAX_TRAILER_BYTES - 4, b'a');
        ok.extend_from_slice(b"\r\n\r\n");
        assert!(decode_all(10, &ok).is_ok());

        let mut big = b"0\r\nX: ".to_vec();
        big.resize(3 + MAX_TRAILER_BYTES - 3, b'a');
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(decode_all(10, &big).unwrap_err().status, 431);

        // Many small trailer lines add up too.
        let mut many = b"0\r\n".to_vec();
        for _ in 0..2000 {
            many.extend_from_slice(b"A: b\r\n");
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(decode_all(10, &many).unwrap_err().status, 431);
    }

    #[test]
    fn failure_is_sticky() {
        let mut dec = ChunkedDecoder::new(10);
        let mut out = Vec::new();
        assert_eq!(dec.feed(b"z", &mut out).unwrap_err().status, 400);
        assert_eq!(dec.feed(b"0\r\n\r\n", &mut out).unwrap_err().status, 400);
        assert!(!dec.is_done());
    }
}
