//! Micro-benchmarks of the pieces on the token and introspection hot paths live in
//! `benches/hot_path.rs`; run them with `cargo bench -p hydra-bench`. This library only holds
//! shared fixtures.

use hydra_storage::{TokenKind, TokenRecord};

/// A token record shaped like a client-credentials access token.
pub fn sample_record() -> TokenRecord {
    TokenRecord {
        kind: TokenKind::Access,
        signature: [7; 32],
        family: 123_456,
        client_id: "3f2d2a8e-6b1c-4c55-9a57-1f4e8f0c2d11".into(),
        subject: "3f2d2a8e-6b1c-4c55-9a57-1f4e8f0c2d11".into(),
        scope: "read write".into(),
        audience: vec!["https://api.example.com".into()],
        issued_at: 1_795_693_310,
        expires_at: 1_795_696_910,
        ext: String::new(),
    }
}

/// A realistic token request body.
pub const TOKEN_FORM: &[u8] = b"grant_type=client_credentials&scope=read+write&audience=https%3A%2F%2Fapi.example.com";

/// A realistic token request head.
pub const TOKEN_HEAD: &[u8] = b"POST /oauth2/token HTTP/1.1\r\nHost: localhost:4444\r\nUser-Agent: oha/1.4\r\nAccept: */*\r\nAuthorization: Basic M2YyZDJhOGUtNmIxYy00YzU1LTlhNTctMWY0ZThmMGMyZDExOnBVS1I1Z0Y1OHlEWXdKaFBleTVIWUctYVhu\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 85\r\n\r\n";
