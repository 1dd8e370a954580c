//! Fuzz checks: one function per parser that untrusted bytes reach, each asserting properties
//! that must hold for every input (no panic, bounded output, round trips, nothing forged ever
//! verifies, a redirect only ever goes to a registered URI). The cargo-fuzz targets in `fuzz/`
//! call these, and `tests/fuzz_corpus.rs` replays the committed corpora and a bounded random
//! run through them on the stable toolchain.
//!
//! Invariants: every function is deterministic in its input and takes no I/O; a property that
//! fails panics (that is how a fuzzer reports it).

use crate::http::body::{ChunkedDecoder, ChunkedProgress};
use crate::http::form;
use crate::http::request::{parse_head, BodyKind, Limits};
use crate::oauth2::{authorize, client, flow};
use crate::token::{self, TokenKeys, TokenType};

/// The request head parser, then the body framing it announces.
pub fn http_request(data: &[u8]) {
    let limits = Limits::default();
    let Ok(Some(head)) = parse_head(data, &limits) else { return };
    assert!(head.head_len <= data.len());
    assert!(head.header_count() <= limits.max_headers);
    assert!(head.headers().all(|(n, _)| n.bytes().all(|b| !b.is_ascii_uppercase())));
    let rest = &data[head.head_len..];
    match head.body {
        BodyKind::Chunked => chunked(rest),
        BodyKind::Length(n) => assert!(n < u64::MAX),
        BodyKind::None => {}
    }
    // A head that parses parses the same with every byte of it present and nothing after.
    let again = parse_head(&data[..head.head_len], &limits);
    assert!(matches!(again, Ok(Some(ref h)) if h.head_len == head.head_len && h.path() == head.path()));
}

fn feed_all(input: &[u8], pieces: &[usize]) -> (Result<(usize, bool), crate::http::HttpError>, Vec<u8>) {
    let mut d = ChunkedDecoder::new(4096);
    let mut out = Vec::new();
    let mut at = 0;
    for &end in pieces.iter().chain(std::iter::once(&input.len())) {
        let end = end.clamp(at, input.len());
        match d.feed(&input[at..end], &mut out) {
            Err(e) => return (Err(e), out),
            Ok((n, ChunkedProgress::Done)) => return (Ok((at + n, true)), out),
            Ok((n, ChunkedProgress::NeedMore)) => {
                assert_eq!(n, end - at, "NeedMore consumes everything it was given");
                at = end;
            }
        }
    }
    (Ok((at, false)), out)
}

/// The chunked decoder: bounded output, and the same answer however the bytes are split.
pub fn chunked(data: &[u8]) {
    let (whole, out) = feed_all(data, &[]);
    assert!(out.len() <= 4096, "decoded past the body limit");
    let cuts: Vec<usize> = data.iter().take(4).map(|b| *b as usize % (data.len() + 1)).collect();
    let mut sorted = cuts.clone();
    sorted.sort_unstable();
    let (split, out2) = feed_all(data, &sorted);
    match (&whole, &split) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert_eq!(a.status, b.status),
        _ => panic!("split feeding changed the outcome: {whole:?} vs {split:?}"),
    }
    if whole.is_ok() {
        assert_eq!(out, out2);
    }
}

/// The form decoders: what decodes re-encodes and decodes to the same pairs.
pub fn form(data: &[u8]) {
    let _ = form::decode_multi(data);
    let Ok(f) = form::decode(data) else { return };
    let pairs: Vec<(String, String)> = f.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let encoded: Vec<String> =
        pairs.iter().map(|(k, v)| format!("{}={}", form::form_escaped(k), form::form_escaped(v))).collect();
    let again = form::decode(encoded.join("&").as_bytes()).expect("re-encoded form decodes");
    let pairs2: Vec<(String, String)> = again.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    assert_eq!(pairs, pairs2);
}

fn fuzz_keys() -> TokenKeys {
    TokenKeys::new(&["fuzzing-secret-0123456789".to_string()])
}

/// The opaque token parser: junk never verifies; a minted token verifies to what was minted and
/// stops verifying when any one byte of it changes.
pub fn token(data: &[u8]) {
    let keys = fuzz_keys();
    if let Ok(s) = std::str::from_utf8(data) {
        assert!(token::verify(&keys, s).is_none(), "an unsigned input verified: {s:?}");
    }
    let mut random = [0u8; 32];
    for (i, b) in data.iter().take(32).enumerate() {
        random[i] = *b;
    }
    let seq = data.iter().fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(*b as u64));
    let partition = (seq % 4096) as u16;
    let kinds = [TokenType::AccessToken, TokenType::RefreshToken, TokenType::AuthorizeCode];
    let t = kinds[data.len() % kinds.len()];
    let minted = token::mint(&keys, t, partition, seq, &random);
    let r = token::verify(&keys, &minted.token).expect("a minted token verifies");
    assert_eq!((r.token_type, r.partition, r.seq), (t, partition, seq));
    if let Some(&b) = data.first() {
        let mut bytes = minted.token.clone().into_bytes();
        let at = (b as usize) % bytes.len();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        if let Ok(s) = String::from_utf8(bytes) {
            assert!(s == minted.token || token::verify(&keys, &s).is_none(), "a changed token verified");
        }
    }
}

/// The JSON bodies of the admin API: clients (create, patch, lifespans) and the login and
/// consent app's answers. Whatever they accept serialises again.
pub fn admin_json(data: &[u8]) {
    let policy = client::ClientPolicy::default();
    let rng = ring::rand::SystemRandom::new();
    let now = 1_700_000_000;
    if let Ok(c) = client::prepare_create(data, &policy, &rng, now) {
        let stored = client::StoredClient::new(c.client, None);
        let bytes = stored.to_bytes();
        let back = client::StoredClient::from_bytes(&bytes).expect("a stored client reads back");
        assert_eq!(back.to_bytes(), bytes);
        let _ = client::prepare_patch(&back, data, &policy, &rng, now);
        let _ = client::set_lifespans(&back, data, now);
    }
    let _ = flow::parse_login_accept(data, now);
    let _ = flow::parse_consent_accept(data, now);
    let _ = flow::parse_reject(data);
}

/// Stored records and sealed blobs: decoding never panics, what decodes re-encodes to the same
/// bytes, and no input opens as a sealed flow without the key.
pub fn records(data: &[u8]) {
    if let Ok(rec) = hydra_storage::records::decode_token(data) {
        let again = hydra_storage::records::encode_token(&rec).expect("a decoded record encodes");
        assert_eq!(hydra_storage::records::decode_token(&again).expect("re-decodes"), rec);
    }
    let _ = client::StoredClient::from_bytes(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let keys = flow::keys(&["fuzzing-secret-0123456789".to_string()]);
        let opened = flow::open_json::<serde_json::Value>(&keys, flow::Purpose::LoginChallenge, s);
        assert!(opened.is_err(), "an input opened as a sealed flow");
    }
}

/// The authorization request: whatever parameters arrive, an accepted request redirects only to
/// a registered URI (or its loopback form with another port, RFC 8252).
pub fn authorize(data: &[u8]) {
    let Ok(f) = form::decode_multi(data) else { return };
    let params = f.into_pairs();
    let redirect_uris = vec![
        "https://app.example/cb".to_string(),
        "http://127.0.0.1/cb".to_string(),
        "com.example.app:/cb".to_string(),
    ];
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (response_types, grant_types, audience) =
        (strings(&["code"]), strings(&["authorization_code", "refresh_token"]), strings(&["https://api"]));
    let view = authorize::ClientView {
        client_id: "app",
        redirect_uris: &redirect_uris,
        response_types: &response_types,
        grant_types: &grant_types,
        scope: "openid offline_access profile",
        audience: &audience,
        public: data.first().is_some_and(|b| b & 1 == 1),
    };
    let allowed = |req: &[&str], scope: &str| req.iter().all(|r| scope.split(' ').any(|s| s == *r));
    let policy = authorize::Policy {
        allow_insecure_redirects: data.get(1).is_some_and(|b| b & 1 == 1),
        pkce_enforced: false,
        pkce_enforced_for_public_clients: true,
        scope_allowed: &allowed,
    };
    let Ok(req) = authorize::parse(&params, Some(&view), &policy) else { return };
    let loopback_form = |registered: &str| {
        let Some(rest) = registered.strip_prefix("http://127.0.0.1") else { return false };
        req.redirect_uri
            .strip_prefix("http://127.0.0.1:")
            .and_then(|r| r.split_once('/'))
            .is_some_and(|(port, path)| port.bytes().all(|b| b.is_ascii_digit()) && format!("/{path}") == rest)
    };
    assert!(
        redirect_uris.iter().any(|u| *u == req.redirect_uri || loopback_form(u)),
        "accepted a redirect to an unregistered URI: {:?}",
        req.redirect_uri
    );
    assert!(req.state.is_empty() || req.state.len() >= 8);
    assert!(crate::oauth2::uri::redirect_scheme_allowed(req.redirect_uri.split(':').next().unwrap_or_default()));
    assert!(policy.allow_insecure_redirects || crate::oauth2::uri::is_redirect_uri_secure(&req.redirect_uri));
}

/// A fuzz check: panics when a property fails for the input.
pub type Check = fn(&[u8]);

/// Every check by name, for the replay test and the fuzz driver.
pub const TARGETS: [(&str, Check); 7] = [
    ("http_request", http_request),
    ("chunked", chunked),
    ("form", form),
    ("token", token),
    ("admin_json", admin_json),
    ("records", records),
    ("authorize", authorize),
];
