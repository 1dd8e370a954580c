//! `application/x-www-form-urlencoded` decoding and encoding for OAuth endpoints and
//! query strings.
//!
//! Invariants: decoding is strict (malformed escapes, invalid UTF-8 and NUL bytes are
//! errors, never silently repaired), so two components can't read different values out of
//! the same bytes; error descriptions are static text and never echo parameter data.

use std::fmt;

/// Most pairs accepted in one form or query string; OAuth requests need a few dozen at most.
pub const MAX_PARAMS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormError {
    MalformedEscape,
    InvalidUtf8,
    NulByte,
    DuplicateParameter,
    TooManyParameters,
    EmptyName,
}

impl FormError {
    pub fn description(&self) -> &'static str {
        match self {
            FormError::MalformedEscape => "The request contains a malformed percent-encoding.",
            FormError::InvalidUtf8 => "The request contains a parameter that is not valid UTF-8.",
            FormError::NulByte => "The request contains a parameter with a NUL byte.",
            FormError::DuplicateParameter => "The request contains a duplicated parameter.",
            FormError::TooManyParameters => "The request contains too many parameters.",
            FormError::EmptyName => "The request contains a parameter with an empty name.",
        }
    }
}

impl fmt::Display for FormError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for FormError {}

/// Decoded name/value pairs in their original order. The decoded text lives in one buffer,
/// addressed by spans.
///
/// Why: with a `String` per name and value, decoding a token request's form made 7 of its
/// heap allocations (`bench --bin allocs -- trace`); now it makes two.
#[derive(Debug, Default, Clone)]
pub struct Form {
    text: String,
    /// Where each pair's name starts, its value starts (the name's end) and its value ends, in
    /// `text`.
    spans: Vec<[u32; 3]>,
}

impl PartialEq for Form {
    fn eq(&self, other: &Form) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Form {}

impl Form {
    fn pair(&self, s: &[u32; 3]) -> (&str, &str) {
        let [name, value, end] = s.map(|i| i as usize);
        (self.text.get(name..value).unwrap_or_default(), self.text.get(value..end).unwrap_or_default())
    }

    /// First value for `name`; with [`decode`] it is also the only one.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Every value for `name`, in order (meaningful for [`decode_multi`]).
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.iter().filter(move |(n, _)| *n == name).map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.spans.iter().map(|s| self.pair(s))
    }

    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.iter().map(|(n, v)| (n.to_owned(), v.to_owned())).collect()
    }
}

/// Strict decoding: '+' is space; %XX must be two hex digits; decoded bytes must be UTF-8
/// (names and values); NUL (raw or %00) rejected; a name appearing twice rejected (RFC 6749
/// §3.1: "Request and response parameters MUST NOT be included more than once"); more than
/// MAX_PARAMS pairs rejected; empty segments are skipped; a pair without '=' is a name with
/// an empty value; an empty name with '=' is `EmptyName`.
pub fn decode(input: &[u8]) -> Result<Form, FormError> {
    decode_with(input, false)
}

/// Like [`decode`] but a repeated name is allowed and all values kept (for admin list filters).
pub fn decode_multi(input: &[u8]) -> Result<Form, FormError> {
    decode_with(input, true)
}

fn decode_with(input: &[u8], allow_repeats: bool) -> Result<Form, FormError> {
    // Decoding only ever shrinks, so the input's length bounds the text.
    let mut text: Vec<u8> = Vec::with_capacity(input.len());
    let mut spans: Vec<[u32; 3]> = Vec::new();
    for segment in input.split(|&b| b == b'&') {
        if segment.is_empty() {
            continue;
        }
        if spans.len() == MAX_PARAMS {
            return Err(FormError::TooManyParameters);
        }
        let (raw_name, raw_value) = match segment.iter().position(|&b| b == b'=') {
            Some(i) => (segment.get(..i).unwrap_or_default(), segment.get(i + 1..).unwrap_or_default()),
            None => (segment, &b""[..]),
        };
        if raw_name.is_empty() {
            return Err(FormError::EmptyName);
        }
        let name_start = text.len();
        unescape_into(raw_name, true, &mut text)?;
        let value_start = text.len();
        unescape_into(raw_value, true, &mut text)?;
        let name = text.get(name_start..value_start).unwrap_or_default();
        if !allow_repeats && spans.iter().any(|&[a, b, _]| text.get(a as usize..b as usize) == Some(name)) {
            return Err(FormError::DuplicateParameter);
        }
        spans.push([name_start, value_start, text.len()].map(|i| i as u32));
    }
    // Every span was checked to be UTF-8 as it was decoded, so this cannot fail.
    let text = String::from_utf8(text).map_err(|_| FormError::InvalidUtf8)?;
    Ok(Form { text, spans })
}

/// Percent-decoding without '+' handling (a '+' stays a '+'), same strictness as [`decode`].
pub fn percent_decode(input: &[u8]) -> Result<String, FormError> {
    unescape(input, false)
}

/// Form-value unescaping ('+' is space): for HTTP Basic credentials, which RFC 6749 §2.3.1
/// says are form-encoded before being base64-encoded.
pub fn form_unescape(input: &[u8]) -> Result<String, FormError> {
    unescape(input, true)
}

fn unescape(input: &[u8], plus_is_space: bool) -> Result<String, FormError> {
    let mut out = Vec::with_capacity(input.len());
    unescape_into(input, plus_is_space, &mut out)?;
    String::from_utf8(out).map_err(|_| FormError::InvalidUtf8)
}

/// Appends the decoded bytes of `input` to `out`; on success they are valid UTF-8 on their own.
/// Runs without an escape are copied whole (a challenge or verifier is 1–2 kB without one).
fn unescape_into(input: &[u8], plus_is_space: bool, out: &mut Vec<u8>) -> Result<(), FormError> {
    let start = out.len();
    out.reserve(input.len());
    let mut rest = input;
    loop {
        let plain = plain_len(rest, plus_is_space);
        out.extend_from_slice(rest.get(..plain).unwrap_or_default());
        rest = rest.get(plain..).unwrap_or_default();
        let decoded = match rest {
            [] => break,
            [b'%', h, l, tail @ ..] => match (hex_digit(*h), hex_digit(*l)) {
                (Some(hi), Some(lo)) => {
                    rest = tail;
                    hi << 4 | lo
                }
                _ => return Err(FormError::MalformedEscape),
            },
            [b'%', ..] => return Err(FormError::MalformedEscape),
            [b'+', tail @ ..] => {
                rest = tail;
                b' '
            }
            // A NUL (the only other byte `plain_len` stops at).
            _ => return Err(FormError::NulByte),
        };
        if decoded == 0 {
            return Err(FormError::NulByte);
        }
        out.push(decoded);
    }
    match out.get(start..).map(std::str::from_utf8) {
        Some(Ok(_)) => Ok(()),
        _ => Err(FormError::InvalidUtf8),
    }
}

/// How many leading bytes of `input` decode to themselves: up to the first `%`, NUL or (when it
/// means a space) `+`. Branch-free over 32-byte blocks, so it vectorises.
fn plain_len(input: &[u8], plus_is_space: bool) -> usize {
    let plain = |b: u8| (b != b'%') & (b != 0) & !(plus_is_space & (b == b'+'));
    let mut at = 0;
    for block in input.chunks_exact(32) {
        if !block.iter().fold(true, |all, &b| all & plain(b)) {
            break;
        }
        at += 32;
    }
    at + input.get(at..).unwrap_or_default().iter().position(|&b| !plain(b)).unwrap_or(input.len() - at)
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Appends `s` form-encoded: unreserved characters (A-Z a-z 0-9 - . _ ~) kept, space as
/// '+', every other byte of the UTF-8 encoding as uppercase %XX. Runs of unreserved bytes are
/// found 32 bytes at a time and copied whole. Why: a login or consent challenge is a sealed flow
/// of 1–2 kB of base64url; pushing it a character at a time was 9.6 % of the server's CPU in
/// browser flows with an ES256 ID token, now 0.5 % (`perf record` of the server under
/// `SCENARIO=flow-es256 loadtest/threads.sh`'s load, self time), and with the same change to
/// `unescape_into` (3.7 % → 0.9 %) a flow costs 0.83× the CPU it did
/// (`loadtest/runs/…-threads-flow-es256-ab.md`).
pub fn form_escape(s: &str, out: &mut String) {
    out.reserve(s.len());
    let bytes = s.as_bytes();
    let mut run = 0;
    loop {
        let i = run + first_reserved(bytes.get(run..).unwrap_or_default());
        push_run(s, run, i, out);
        let Some(&b) = bytes.get(i) else { break };
        if b == b' ' {
            out.push('+');
        } else {
            out.push('%');
            out.push(hex_upper(b >> 4));
            out.push(hex_upper(b));
        }
        run = i + 1;
    }
}

/// Whether a byte stays as it is in form encoding (A-Z a-z 0-9 - . _ ~). Branch-free, so that
/// [`first_reserved`] vectorises.
fn unreserved(b: u8) -> bool {
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    letter | digit | (b == b'-') | (b == b'.') | (b == b'_') | (b == b'~')
}

/// The index of the first byte that must be escaped (the length when there is none), 32 bytes
/// at a time while whole blocks are clean: a challenge is 1–2 kB of base64url.
fn first_reserved(bytes: &[u8]) -> usize {
    let mut blocks = bytes.chunks_exact(32);
    let mut at = 0;
    for block in blocks.by_ref() {
        if !block.iter().fold(true, |all, &b| all & unreserved(b)) {
            break;
        }
        at += 32;
    }
    at + bytes.get(at..).unwrap_or_default().iter().position(|&b| !unreserved(b)).unwrap_or(bytes.len() - at)
}

/// Appends `s[from..to]`, a run of unreserved (ASCII) bytes. Both ends are character
/// boundaries: the run is ASCII and ends at the string's end or before a byte that follows an
/// ASCII byte, which cannot be a continuation byte.
fn push_run(s: &str, from: usize, to: usize, out: &mut String) {
    if from < to {
        match s.get(from..to) {
            Some(t) => out.push_str(t),
            None => out.extend(s.bytes().skip(from).take(to - from).map(char::from)),
        }
    }
}

/// `form_escape` into a new string.
pub fn form_escaped(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    form_escape(s, &mut out);
    out
}

/// Uppercase hex digit for the low nibble of `n`.
fn hex_upper(n: u8) -> char {
    let n = n & 0x0f;
    char::from(if n < 10 { b'0' + n } else { b'A' + n - 10 })
}

/// Why a `Content-Type` is not an acceptable form body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentTypeError {
    /// Not `application/x-www-form-urlencoded`.
    NotForm,
    /// A `charset` other than UTF-8: decoding it as UTF-8 would change what the client sent.
    Charset,
}

/// Checks a `Content-Type` header for `application/x-www-form-urlencoded`; parameters are allowed
/// except a `charset` other than `utf-8` (case-insensitive, optionally quoted).
pub fn form_content_type(value: &str) -> Result<(), ContentTypeError> {
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(ContentTypeError::NotForm);
    }
    for p in parts {
        let Some((name, v)) = p.split_once('=') else { continue };
        if name.trim().eq_ignore_ascii_case("charset") {
            let v = v.trim();
            let v = v.strip_prefix('"').and_then(|x| x.strip_suffix('"')).unwrap_or(v);
            if !v.eq_ignore_ascii_case("utf-8") && !v.eq_ignore_ascii_case("utf8") {
                return Err(ContentTypeError::Charset);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(form: &Form) -> Vec<(&str, &str)> {
        form.iter().collect()
    }

    #[test]
    fn decodes_typical_token_request() {
        let f =
            decode(b"grant_type=authorization_code&code=abc%2Fdef&redirect_uri=https%3A%2F%2Fapp.example%2Fcb%3Fx%3D1")
                .unwrap();
        assert_eq!(f.len(), 3);
        assert!(!f.is_empty());
        assert_eq!(f.get("grant_type"), Some("authorization_code"));
        assert_eq!(f.get("code"), Some("abc/def"));
        assert_eq!(f.get("redirect_uri"), Some("https://app.example/cb?x=1"));
        assert_eq!(f.get("scope"), None);
    }

    #[test]
    fn valid_inputs() {
        type Case = (&'static [u8], &'static [(&'static str, &'static str)]);
        let table: &[Case] = &[
            (b"", &[]),
            (b"&&&", &[]),
            (b"a=1", &[("a", "1")]),
            (b"a=1&&b=2", &[("a", "1"), ("b", "2")]),
            (b"&a=1&b=2&", &[("a", "1"), ("b", "2")]),
            (b"a", &[("a", "")]),
            (b"a=", &[("a", "")]),
            (b"a=&b", &[("a", ""), ("b", "")]),
            (b"a=b=c", &[("a", "b=c")]),
            (b"scope=openid+offline", &[("scope", "openid offline")]),
            (b"x=a%20b+c", &[("x", "a b c")]),
            (b"x=%2B", &[("x", "+")]),
            (b"x=%2b%2F", &[("x", "+/")]),
            (b"my+name=v", &[("my name", "v")]),
            (b"n=%C3%A9t%C3%A9", &[("n", "été")]),
            (b"n=%E2%82%AC%F0%9F%98%80", &[("n", "€😀")]),
            ("n=日本".as_bytes(), &[("n", "日本")]),
            (b"%C3%A9=1", &[("é", "1")]),
            (b"b=2&a=1", &[("b", "2"), ("a", "1")]),
        ];
        for (input, want) in table {
            let f = decode(input).unwrap();
            assert_eq!(pairs(&f), *want, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn invalid_inputs() {
        let table: &[(&[u8], FormError)] = &[
            (b"a=%", FormError::MalformedEscape),
            (b"a=%4", FormError::MalformedEscape),
            (b"a=%4g", FormError::MalformedEscape),
            (b"a=%g4", FormError::MalformedEscape),
            (b"a=%%41", FormError::MalformedEscape),
            (b"a%=1", FormError::MalformedEscape),
            (b"a=% 1", FormError::MalformedEscape),
            (b"a=%C3", FormError::InvalidUtf8),
            (b"a=%FF", FormError::InvalidUtf8),
            (b"a=%C0%AF", FormError::InvalidUtf8),
            (b"a=\xff", FormError::InvalidUtf8),
            (b"%FF=1", FormError::InvalidUtf8),
            (b"a=%00", FormError::NulByte),
            (b"a=x\0y", FormError::NulByte),
            (b"a%00=1", FormError::NulByte),
            (b"a=1&a=2", FormError::DuplicateParameter),
            (b"a=1&a=1", FormError::DuplicateParameter),
            (b"a&a", FormError::DuplicateParameter),
            (b"a=1&%61=2", FormError::DuplicateParameter),
            (b"a+b=1&a%20b=2", FormError::DuplicateParameter),
            (b"=x", FormError::EmptyName),
            (b"=", FormError::EmptyName),
            (b"a=1&=", FormError::EmptyName),
        ];
        for (input, want) in table {
            assert_eq!(decode(input).unwrap_err(), *want, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn parameter_count_limit() {
        let build = |n: usize| (0..n).map(|i| format!("p{i}=v")).collect::<Vec<_>>().join("&");
        assert_eq!(decode(build(MAX_PARAMS).as_bytes()).unwrap().len(), 100);
        assert_eq!(decode(build(MAX_PARAMS + 1).as_bytes()).unwrap_err(), FormError::TooManyParameters);
        // Empty segments don't count towards the limit.
        let padded = format!("{}&&&&", build(MAX_PARAMS));
        assert_eq!(decode(padded.as_bytes()).unwrap().len(), 100);
        let repeated = vec!["a=1"; MAX_PARAMS + 1].join("&");
        assert_eq!(decode_multi(repeated.as_bytes()).unwrap_err(), FormError::TooManyParameters);
    }

    #[test]
    fn decode_multi_keeps_repeats() {
        let f = decode_multi(b"owner=a&x=1&owner=b&owner=").unwrap();
        assert_eq!(f.len(), 4);
        assert_eq!(f.get("owner"), Some("a"));
        assert_eq!(f.get_all("owner").collect::<Vec<_>>(), ["a", "b", ""]);
        assert_eq!(f.get_all("nope").count(), 0);
        assert_eq!(pairs(&f), [("owner", "a"), ("x", "1"), ("owner", "b"), ("owner", "")]);
        // Everything else is as strict as decode.
        assert_eq!(decode_multi(b"a=%zz").unwrap_err(), FormError::MalformedEscape);
        assert_eq!(decode_multi(b"=1").unwrap_err(), FormError::EmptyName);
        assert_eq!(decode_multi(b"a=%00").unwrap_err(), FormError::NulByte);
    }

    #[test]
    fn percent_decode_keeps_plus() {
        assert_eq!(percent_decode(b"a+b%20c").unwrap(), "a+b c");
        assert_eq!(percent_decode(b"%7E%2b").unwrap(), "~+");
        assert_eq!(percent_decode(b"").unwrap(), "");
        assert_eq!(percent_decode(b"%").unwrap_err(), FormError::MalformedEscape);
        assert_eq!(percent_decode(b"%00").unwrap_err(), FormError::NulByte);
        assert_eq!(percent_decode(b"%E2%82").unwrap_err(), FormError::InvalidUtf8);
    }

    #[test]
    fn form_unescape_maps_plus_to_space() {
        assert_eq!(form_unescape(b"my+client%3Aid").unwrap(), "my client:id");
        assert_eq!(form_unescape(b"s%2Bcret").unwrap(), "s+cret");
        // '&' and '=' have no structure here: credentials are single values.
        assert_eq!(form_unescape(b"a&b=c").unwrap(), "a&b=c");
        assert_eq!(form_unescape(b"%x1").unwrap_err(), FormError::MalformedEscape);
    }

    #[test]
    fn escape_output() {
        let table = [
            ("", ""),
            ("abcXYZ019-._~", "abcXYZ019-._~"),
            ("a b", "a+b"),
            ("a+b", "a%2Bb"),
            ("https://x.example/cb?a=1&b=2", "https%3A%2F%2Fx.example%2Fcb%3Fa%3D1%26b%3D2"),
            ("é€", "%C3%A9%E2%82%AC"),
            ("%", "%25"),
            ("*'()!", "%2A%27%28%29%21"),
            ("aé b~", "a%C3%A9+b~"),
            ("éa", "%C3%A9a"),
            ("ab€", "ab%E2%82%AC"),
        ];
        for (input, want) in table {
            let mut out = String::from("prefix=");
            form_escape(input, &mut out);
            assert_eq!(out, format!("prefix={want}"), "{input:?}");
        }
    }

    #[test]
    fn escape_copies_runs_as_escaping_byte_by_byte_would() {
        fn by_byte(s: &str) -> String {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
                    b' ' => "+".into(),
                    _ => format!("%{b:02X}"),
                })
                .collect()
        }
        let alphabet = ['a', 'Z', '9', '-', '~', ' ', '+', '%', '&', 'é', '€', '😀', '\u{7f}', '\0'];
        let mut x: u32 = 12345;
        for len in 0..40 {
            for _ in 0..25 {
                let s: String = (0..len)
                    .map(|_| {
                        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                        alphabet[(x >> 16) as usize % alphabet.len()]
                    })
                    .collect();
                let mut out = String::new();
                form_escape(&s, &mut out);
                assert_eq!(out, by_byte(&s), "{s:?}");
            }
        }
    }

    #[test]
    fn unescape_copies_runs_as_decoding_byte_by_byte_would() {
        // The decoder as it was before runs were copied whole: the reference.
        fn by_byte(input: &[u8], plus_is_space: bool) -> Result<String, FormError> {
            let mut out = Vec::new();
            let mut i = 0;
            while let Some(&b) = input.get(i) {
                let d = match b {
                    b'%' => match (
                        input.get(i + 1).and_then(|&h| hex_digit(h)),
                        input.get(i + 2).and_then(|&l| hex_digit(l)),
                    ) {
                        (Some(hi), Some(lo)) => {
                            i += 3;
                            hi << 4 | lo
                        }
                        _ => return Err(FormError::MalformedEscape),
                    },
                    b'+' if plus_is_space => {
                        i += 1;
                        b' '
                    }
                    _ => {
                        i += 1;
                        b
                    }
                };
                if d == 0 {
                    return Err(FormError::NulByte);
                }
                out.push(d);
            }
            String::from_utf8(out).map_err(|_| FormError::InvalidUtf8)
        }
        let pieces: [&[u8]; 14] = [
            b"a",
            b"Z9",
            b"%41",
            b"%e2%82%ac",
            b"%C3",
            b"+",
            b"%",
            b"%4",
            b"%zz",
            b"\0",
            b"%00",
            "\u{e9}".as_bytes(),
            b"\xff",
            b"~-_.",
        ];
        let mut x: u32 = 99;
        for len in 0..48 {
            for _ in 0..40 {
                let mut input = Vec::new();
                for _ in 0..len {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    input.extend_from_slice(pieces[(x >> 16) as usize % pieces.len()]);
                }
                for plus in [true, false] {
                    assert_eq!(unescape(&input, plus), by_byte(&input, plus), "{input:?} {plus}");
                }
            }
        }
    }

    #[test]
    fn escape_round_trip() {
        let samples = [
            "plain",
            "with space and + plus",
            "redirect=https://a.example/cb?x=1&y=2#frag",
            "ünïcødé 日本語 😀",
            "\t\r\n control",
            "%41 not an escape",
        ];
        for s in samples {
            let mut encoded = String::new();
            form_escape(s, &mut encoded);
            assert_eq!(form_unescape(encoded.as_bytes()).unwrap(), s);
            let mut query = String::from("k=");
            query.push_str(&encoded);
            assert_eq!(decode(query.as_bytes()).unwrap().get("k"), Some(s));
        }
    }

    #[test]
    fn descriptions_are_distinct_and_static() {
        let all = [
            FormError::MalformedEscape,
            FormError::InvalidUtf8,
            FormError::NulByte,
            FormError::DuplicateParameter,
            FormError::TooManyParameters,
            FormError::EmptyName,
        ];
        for (i, a) in all.iter().enumerate() {
            assert!(a.description().starts_with("The request"));
            assert_eq!(a.to_string(), a.description());
            for b in &all[i + 1..] {
                assert_ne!(a.description(), b.description());
            }
        }
        assert_eq!(FormError::DuplicateParameter.description(), "The request contains a duplicated parameter.");
    }

    #[test]
    fn into_pairs_preserves_order() {
        let f = decode(b"z=1&a=2").unwrap();
        assert_eq!(f.into_pairs(), vec![("z".to_owned(), "1".to_owned()), ("a".to_owned(), "2".to_owned())]);
    }

    #[test]
    fn content_type_charset_must_be_utf8() {
        assert_eq!(form_content_type("application/x-www-form-urlencoded"), Ok(()));
        assert_eq!(form_content_type("Application/X-WWW-Form-Urlencoded; charset=UTF-8"), Ok(()));
        assert_eq!(form_content_type("application/x-www-form-urlencoded;charset=\"utf-8\""), Ok(()));
        assert_eq!(
            form_content_type("application/x-www-form-urlencoded; charset=iso-8859-1"),
            Err(ContentTypeError::Charset)
        );
        assert_eq!(
            form_content_type("application/x-www-form-urlencoded; charset=\"\""),
            Err(ContentTypeError::Charset)
        );
        assert_eq!(form_content_type("application/json"), Err(ContentTypeError::NotForm));
        assert_eq!(form_content_type("application/x-www-form-urlencodedx"), Err(ContentTypeError::NotForm));
    }
}
