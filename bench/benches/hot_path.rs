//! Hot-path micro-benchmarks: HTTP head parse, form decode, token mint and verify, record
//! encode/decode, client authentication (cached digest vs full PBKDF2).

use criterion::{criterion_group, criterion_main, Criterion};
use hydra::http::{form, request};
use hydra::oauth2::introspection::{active, ActiveToken};
use hydra::rng::FastRng;
use hydra::token::{mint, verify, TokenKeys, TokenType};
use hydra_bench::{sample_record, TOKEN_FORM, TOKEN_HEAD};
use hydra_storage::records::{decode_token, encode_token};
use hydra_storage::TokenView;
use std::hint::black_box;

fn parsing(c: &mut Criterion) {
    let limits = request::Limits::default();
    c.bench_function("http_head_parse", |b| b.iter(|| request::parse_head(black_box(TOKEN_HEAD), &limits)));
    c.bench_function("form_decode", |b| b.iter(|| form::decode(black_box(TOKEN_FORM))));
}

fn tokens(c: &mut Criterion) {
    let keys = TokenKeys::new(&["a-system-secret-of-32-characters".to_string()]);
    let mut rng = FastRng::new().unwrap();
    c.bench_function("rng_next32", |b| b.iter(|| rng.next32()));
    let mut seq = 0u64;
    c.bench_function("token_mint", |b| {
        b.iter(|| {
            seq += 1;
            mint(&keys, TokenType::AccessToken, 3, seq, &[9; 32])
        })
    });
    let t = mint(&keys, TokenType::AccessToken, 3, 42, &[9; 32]).token;
    c.bench_function("token_verify", |b| b.iter(|| verify(&keys, black_box(&t))));
    let forged = format!("{}A", &t[..t.len() - 1]);
    c.bench_function("token_verify_forged", |b| b.iter(|| verify(&keys, black_box(&forged))));
}

fn records(c: &mut Criterion) {
    let rec = sample_record();
    c.bench_function("record_encode", |b| b.iter(|| encode_token(black_box(&rec))));
    let bytes = encode_token(&rec).unwrap();
    c.bench_function("record_decode", |b| b.iter(|| decode_token(black_box(&bytes))));
    // The read of introspection: a validated view, fields read in place.
    c.bench_function("record_view", |b| {
        b.iter(|| {
            let v = TokenView::new(black_box(&bytes)).unwrap();
            black_box(v.get().scope.len() + v.get().client_id.len())
        })
    });
    // The whole answer: before (deserialize the record, build a JSON value tree, serialize it)
    // and now (view in place, written straight to bytes).
    let ext_rec = hydra_storage::TokenRecord { ext: r#"{"tier":"gold","org":"acme"}"#.into(), ..rec.clone() };
    let ext_bytes = encode_token(&ext_rec).unwrap();
    c.bench_function("introspect_answer_deserialized", |b| {
        b.iter(|| {
            let r = decode_token(black_box(&ext_bytes)).unwrap();
            let mut v = serde_json::json!({
                "active": true, "client_id": r.client_id, "sub": r.subject, "exp": r.expires_at,
                "iat": r.issued_at, "nbf": r.issued_at, "aud": r.audience, "iss": "https://issuer/",
                "token_type": "Bearer", "token_use": "access_token", "scope": r.scope,
            });
            let ext: serde_json::Value = serde_json::from_str(&r.ext).unwrap();
            v["ext"] = ext;
            serde_json::to_vec(&v).unwrap()
        })
    });
    c.bench_function("introspect_answer_in_place", |b| {
        b.iter(|| {
            let view = TokenView::new(black_box(&ext_bytes)).unwrap();
            let r = view.get();
            let t = ActiveToken {
                refresh: false,
                client_id: r.client_id.as_str(),
                subject: r.subject.as_str(),
                scope: r.scope.as_str(),
                issued_at: r.issued_at.to_native(),
                expires_at: r.expires_at.to_native(),
                ext: r.ext.as_str(),
                obfuscated_subject: None,
            };
            active(&t, r.audience.iter().map(|a| a.as_str()), "https://issuer/")
        })
    });
}

fn client_auth(c: &mut Criterion) {
    use ring::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &[5; 32]);
    let input = b"\x24\x00\x00\x00\x00\x00\x00\x003f2d2a8e-6b1c-4c55-9a57-1f4e8f0c2d11pUKR5gF58yDYwJhPey5HYG-aXn";
    let tag = hmac::sign(&key, input);
    c.bench_function("client_auth_cached_digest", |b| b.iter(|| hmac::verify(&key, black_box(input), tag.as_ref())));
    let hash = hydra::oauth2::hasher::hash_secret(b"pUKR5gF58yDYwJhPey5HYG-aXn", 25_000, &[1; 16]);
    let mut g = c.benchmark_group("client_auth_pbkdf2");
    g.sample_size(10);
    g.bench_function("pbkdf2_25000", |b| {
        b.iter(|| hydra::oauth2::hasher::verify_secret(black_box(&hash), b"pUKR5gF58yDYwJhPey5HYG-aXn"))
    });
    g.finish();
}

criterion_group!(benches, parsing, tokens, records, client_auth);
criterion_main!(benches);
