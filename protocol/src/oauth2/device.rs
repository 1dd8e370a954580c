//! The device authorization grant (RFC 8628), sans-IO: user codes (Hydra's presets and custom
//! sets), the key a user code is stored under, the device challenge and verifier blobs, and the
//! two in-memory gates (polling faster than the interval, guessing user codes).
//!
//! Invariants: a user code is stored only as an HMAC under a key derived from `secrets.system`, so
//! a copy of the database does not let anyone enter a pending code; a user code is compared in
//! its canonical form (separators dropped, upper-cased when the alphabet has no lower case); the
//! gates never grow without bound (expired entries go first, then the oldest).

use ring::hmac;
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Hydra's default alphabet: no `0 O o 1 l I 2 Z 5 S 8 B`, which read alike.
pub const DEFAULT_ALPHABET: &str = "abcdefghijkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXY34679";

/// How user codes are made (`oauth2.device_authorization.user_code.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCodePolicy {
    pub length: usize,
    pub alphabet: Vec<u8>,
}

impl Default for UserCodePolicy {
    fn default() -> Self {
        UserCodePolicy::preset("high").unwrap_or(UserCodePolicy { length: 8, alphabet: DEFAULT_ALPHABET.into() })
    }
}

impl UserCodePolicy {
    /// Hydra's `entropy_preset`: `high` (8 of the default alphabet), `medium` (8 of A–Z), `low`
    /// (9 digits).
    pub fn preset(name: &str) -> Option<UserCodePolicy> {
        let (length, alphabet) = match name {
            "high" => (8, DEFAULT_ALPHABET),
            "medium" => (8, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
            "low" => (9, "0123456789"),
            _ => return None,
        };
        Some(UserCodePolicy { length, alphabet: alphabet.as_bytes().to_vec() })
    }

    /// A custom `length` and `character_set`: at least 6 characters from at least 8 distinct
    /// printable ASCII characters, none of them a separator the canonical form drops.
    pub fn custom(length: usize, alphabet: &str) -> Result<UserCodePolicy, String> {
        let mut set: Vec<u8> = alphabet.bytes().collect();
        set.sort_unstable();
        set.dedup();
        if !(6..=64).contains(&length) {
            return Err(format!("length must be between 6 and 64, got {length}"));
        }
        if set.len() < 8 || set.len() != alphabet.len() {
            return Err("character_set must hold at least 8 distinct characters".into());
        }
        if set.iter().any(|b| !b.is_ascii_graphic() || *b == b'-') {
            return Err("character_set may hold printable ASCII characters other than '-' only".into());
        }
        Ok(UserCodePolicy { length, alphabet: alphabet.as_bytes().to_vec() })
    }

    fn case_insensitive(&self) -> bool {
        !self.alphabet.iter().any(u8::is_ascii_lowercase)
    }

    /// A fresh user code, each character uniform over the alphabet (rejection sampling).
    pub fn generate(&self, rng: &dyn SecureRandom) -> Result<String, ring::error::Unspecified> {
        let n = self.alphabet.len();
        let limit = 256 - 256 % n;
        let mut out = String::with_capacity(self.length);
        let mut buf = [0u8; 64];
        while out.len() < self.length {
            rng.fill(&mut buf)?;
            for b in buf {
                if (b as usize) < limit && out.len() < self.length {
                    out.push(self.alphabet[b as usize % n] as char);
                }
            }
        }
        Ok(out)
    }

    /// The form a typed code is compared in: spaces and dashes dropped, upper case when the
    /// alphabet has no lower case (so `abcd-efgh` finds `ABCDEFGH` of the `medium` preset).
    pub fn canonical(&self, typed: &str) -> String {
        let kept = typed.chars().filter(|c| !c.is_whitespace() && *c != '-');
        if self.case_insensitive() {
            kept.map(|c| c.to_ascii_uppercase()).collect()
        } else {
            kept.collect()
        }
    }
}

/// The key of a user code's row: an HMAC of its canonical form, hex, with a prefix no flow id
/// has (flow ids are hex).
pub fn user_code_key(key: &hmac::Key, canonical: &str) -> String {
    let tag = hmac::sign(key, canonical.as_bytes());
    format!("uc:{}", crate::token::hex(tag.as_ref()))
}

/// The HMAC key for user codes, from the first `secrets.system` entry. Codes live minutes, so
/// a rotation only turns away the codes pending at that moment.
pub fn user_code_hmac(secret: &str) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, &crate::token::derive_key(secret, "hydra-rs/user-code/v1"))
}

/// The marker that the user code of a device authorization was entered (single use).
pub fn used_key(user_code_key: &str) -> String {
    format!("{user_code_key}\0used")
}

/// The marker that the user (or the login or consent app) refused a device authorization.
pub fn denied_key(partition: u32, seq: u64) -> String {
    format!("device:{partition}:{seq}\0denied")
}

/// The browser's visit to `/oauth2/device/verify` before it names a user code: sealed as the
/// `device_challenge` the verification page gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceChallenge {
    /// Random, 128 bits hex: what the guessing gate counts by.
    pub id: String,
    /// Compared with the device CSRF cookie when the verifier comes back.
    pub csrf: String,
    pub requested_at: i64,
}

/// A user code accepted for a challenge: sealed as the `device_verifier`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceVerifier {
    pub challenge: DeviceChallenge,
    pub client_id: String,
    pub partition: u32,
    pub seq: u64,
    pub user_code_key: String,
}

/// A device authorization a login and consent flow is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRef {
    pub partition: u32,
    pub seq: u64,
}

/// What the polling gate says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// The device waited long enough.
    Ok,
    /// Too soon (RFC 8628 §3.5): the interval grows by 5 seconds for this device from now on.
    SlowDown,
}

/// Per device authorization: when it last polled and the interval it must keep, in memory
/// (a node's own view; several nodes each enforce it for the polls they see).
#[derive(Debug, Default)]
pub struct PollGate {
    seen: HashMap<(u32, u64), Polled>,
}

#[derive(Debug, Clone, Copy)]
struct Polled {
    last_ms: u64,
    interval_ms: u64,
    /// Unix seconds after which the entry is useless (the device code expired).
    until: i64,
}

/// Entries kept at most by each gate; above it, expired ones go, then the oldest half.
pub const GATE_CAP: usize = 100_000;

impl PollGate {
    /// Records a poll at `now_ms` (a monotonic clock) of the device `key`, which expires at
    /// `until` (unix seconds, `now` in the same clock).
    pub fn poll(&mut self, key: (u32, u64), now_ms: u64, now: i64, interval_ms: u64, until: i64) -> Poll {
        if self.seen.len() >= GATE_CAP && !self.seen.contains_key(&key) {
            self.seen.retain(|_, p| p.until > now);
            if self.seen.len() >= GATE_CAP {
                let mut lasts: Vec<u64> = self.seen.values().map(|p| p.last_ms).collect();
                lasts.sort_unstable();
                let median = lasts[lasts.len() / 2];
                self.seen.retain(|_, p| p.last_ms > median);
            }
        }
        match self.seen.get_mut(&key) {
            None => {
                self.seen.insert(key, Polled { last_ms: now_ms, interval_ms, until });
                Poll::Ok
            }
            Some(p) => {
                // Polls bunch up on the network: one arriving up to a fifth of the interval (at
                // most a second) early still counts as on time.
                let slack = (p.interval_ms / 5).min(1_000);
                let early = now_ms.saturating_sub(p.last_ms) + slack < p.interval_ms;
                p.last_ms = now_ms;
                if early {
                    p.interval_ms += 5_000;
                    Poll::SlowDown
                } else {
                    Poll::Ok
                }
            }
        }
    }

    /// Forgets a device (it was exchanged).
    pub fn forget(&mut self, key: (u32, u64)) {
        self.seen.remove(&key);
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// Wrong user codes a device challenge may be answered with before it is refused for good.
pub const MAX_GUESSES: u32 = 5;

/// What [`GuessGate::reserve`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guess {
    /// Try the code; [`GuessGate::refund`] if it was right.
    Go,
    /// This challenge has had its [`MAX_GUESSES`] wrong codes.
    ChallengeSpent,
    /// The node has had its budget of wrong codes this minute (new challenges are free to make,
    /// so the per-challenge count alone does not bound guessing).
    Busy,
}

/// Counts user-code attempts per device challenge (by its id) and per node and minute, in
/// memory. An attempt is counted before the code is looked up (so parallel attempts cannot
/// exceed the limits) and given back when the code was right.
#[derive(Debug, Default)]
pub struct GuessGate {
    wrong: HashMap<String, (u32, i64)>,
    window_start_ms: u64,
    window_count: u32,
}

impl GuessGate {
    /// Reserves an attempt for challenge `id` (valid until `until`, unix seconds) at `now`
    /// (unix seconds) and `now_ms` (a monotonic clock), with `per_minute` wrong codes allowed
    /// per node and minute.
    pub fn reserve(&mut self, id: &str, now: i64, until: i64, now_ms: u64, per_minute: u32) -> Guess {
        if self.wrong.get(id).is_some_and(|(n, _)| *n >= MAX_GUESSES) {
            return Guess::ChallengeSpent;
        }
        if now_ms.saturating_sub(self.window_start_ms) >= 60_000 {
            self.window_start_ms = now_ms;
            self.window_count = 0;
        }
        if self.window_count >= per_minute {
            return Guess::Busy;
        }
        if self.wrong.len() >= GATE_CAP && !self.wrong.contains_key(id) {
            self.wrong.retain(|_, (_, u)| *u > now);
            if self.wrong.len() >= GATE_CAP {
                // Full of live challenges: nothing is forgotten (a spent challenge must stay
                // spent); new ones wait.
                return Guess::Busy;
            }
        }
        self.window_count += 1;
        self.wrong.entry(id.to_string()).or_insert((0, until)).0 += 1;
        Guess::Go
    }

    /// The attempt reserved for `id` found its device: it counts neither for the challenge nor
    /// for the node.
    pub fn refund(&mut self, id: &str) {
        if let Some(e) = self.wrong.get_mut(id) {
            e.0 = e.0.saturating_sub(1);
        }
        self.window_count = self.window_count.saturating_sub(1);
    }
}

/// Checks a device authorization request (RFC 8628 §3.1) of an authenticated client, as Hydra:
/// `client_id` must be in the form and name that client, the client must have the grant, and
/// each scope and audience must be the client's. Resolves to the scope (space separated) and
/// audience asked for.
pub fn check_request(
    client: &crate::oauth2::client::Client,
    form_client_id: Option<&str>,
    scope: Option<&str>,
    audience: &[String],
    policy: &crate::oauth2::client_credentials::Policy,
) -> Result<(String, Vec<String>), crate::oauth2::error::OAuthError> {
    use crate::oauth2::error::{ErrorCode, OAuthError};
    if form_client_id != Some(client.client_id.as_str()) {
        return Err(OAuthError::hint(ErrorCode::InvalidRequest, "Provided client_id mismatch."));
    }
    if !client.has_grant(GRANT_TYPE) {
        return Err(OAuthError::hint(
            ErrorCode::InvalidGrant,
            format!("The requested OAuth 2.0 Client does not have the '{GRANT_TYPE}' grant."),
        ));
    }
    crate::oauth2::client_credentials::scope_and_audience(client, scope, audience, policy, false)
}

/// The server's device-flow state outside the store: the user-code key and both gates.
pub struct Gates {
    pub user_code_key: hmac::Key,
    pub polls: std::sync::Mutex<PollGate>,
    pub guesses: std::sync::Mutex<GuessGate>,
}

impl Gates {
    pub fn new(first_secret: &str) -> Gates {
        Gates { user_code_key: user_code_hmac(first_secret), polls: Default::default(), guesses: Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    #[test]
    fn presets_make_codes_of_their_alphabet_and_length() {
        let rng = SystemRandom::new();
        for (name, len) in [("high", 8), ("medium", 8), ("low", 9)] {
            let p = UserCodePolicy::preset(name).unwrap();
            for _ in 0..50 {
                let c = p.generate(&rng).unwrap();
                assert_eq!(c.len(), len, "{name}");
                assert!(c.bytes().all(|b| p.alphabet.contains(&b)), "{name}: {c}");
            }
        }
        assert_eq!(UserCodePolicy::preset("extreme"), None);
        assert_eq!(UserCodePolicy::default().alphabet, DEFAULT_ALPHABET.as_bytes());
    }

    #[test]
    fn generated_codes_use_the_whole_alphabet() {
        let p = UserCodePolicy::custom(6, "ABCDEFGH").unwrap();
        let rng = SystemRandom::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            seen.extend(p.generate(&rng).unwrap().chars());
        }
        assert_eq!(seen.len(), 8);
    }

    #[test]
    fn custom_policies_are_checked() {
        assert!(UserCodePolicy::custom(5, "ABCDEFGH").is_err());
        assert!(UserCodePolicy::custom(6, "ABCDEFG").is_err());
        assert!(UserCodePolicy::custom(6, "AABCDEFGH").is_err());
        assert!(UserCodePolicy::custom(6, "ABCDEFG-").is_err());
        assert!(UserCodePolicy::custom(6, "ABCDEFG ").is_err());
        assert!(UserCodePolicy::custom(8, "0123456789").is_ok());
    }

    #[test]
    fn canonical_forms() {
        let medium = UserCodePolicy::preset("medium").unwrap();
        assert_eq!(medium.canonical("abcd-efgh"), "ABCDEFGH");
        assert_eq!(medium.canonical(" ABCD EFGH "), "ABCDEFGH");
        let high = UserCodePolicy::default();
        assert_eq!(high.canonical("abCD-efGH"), "abCDefGH", "the default alphabet has both cases");
    }

    #[test]
    fn user_code_keys_depend_on_the_secret_and_the_code() {
        let a = user_code_hmac("a-secret-of-16-chars");
        let b = user_code_hmac("another-secret-16-chars");
        let k = user_code_key(&a, "ABCDEFGH");
        assert!(k.starts_with("uc:") && k.len() == 3 + 64);
        assert_eq!(k, user_code_key(&a, "ABCDEFGH"));
        assert_ne!(k, user_code_key(&a, "ABCDEFGI"));
        assert_ne!(k, user_code_key(&b, "ABCDEFGH"));
        assert_ne!(used_key(&k), k);
        assert_ne!(denied_key(1, 2), denied_key(2, 1));
    }

    #[test]
    fn polling_too_fast_slows_the_device_down_by_five_seconds_each_time() {
        let mut g = PollGate::default();
        let k = (0, 7);
        assert_eq!(g.poll(k, 1_000, 0, 5_000, 600), Poll::Ok);
        assert_eq!(g.poll(k, 4_000, 0, 5_000, 600), Poll::SlowDown);
        // The interval is now 10 s from the last poll (less a second of slack).
        assert_eq!(g.poll(k, 12_000, 0, 5_000, 600), Poll::SlowDown);
        assert_eq!(g.poll(k, 26_000, 0, 5_000, 600), Poll::Ok);
        // Up to a second early (a fifth of the interval at most) is on time.
        let j = (0, 9);
        assert_eq!(g.poll(j, 0, 0, 5_000, 600), Poll::Ok);
        assert_eq!(g.poll(j, 4_000, 0, 5_000, 600), Poll::Ok);
        assert_eq!(g.poll(j, 7_999, 0, 5_000, 600), Poll::SlowDown);
        assert_eq!(g.poll((0, 8), 44_000, 0, 5_000, 600), Poll::Ok, "another device has its own clock");
        g.forget(k);
        assert_eq!(g.poll(k, 26_001, 0, 5_000, 600), Poll::Ok);
    }

    #[test]
    fn the_poll_gate_stays_bounded() {
        let mut g = PollGate::default();
        for i in 0..(GATE_CAP as u64 + 10) {
            g.poll((0, i), i, 10, 5_000, if i < 50 { 5 } else { 600 });
        }
        assert!(g.len() <= GATE_CAP, "{}", g.len());
        assert!(!g.is_empty());
    }

    #[test]
    fn a_challenge_gets_a_bounded_number_of_wrong_guesses() {
        let mut g = GuessGate::default();
        for _ in 0..MAX_GUESSES {
            assert_eq!(g.reserve("c1", 0, 100, 0, 1000), Guess::Go);
        }
        assert_eq!(g.reserve("c1", 0, 100, 0, 1000), Guess::ChallengeSpent);
        // A right code gives its attempt back.
        assert_eq!(g.reserve("c2", 0, 100, 0, 1000), Guess::Go);
        g.refund("c2");
        for _ in 0..MAX_GUESSES {
            assert_eq!(g.reserve("c2", 0, 100, 0, 1000), Guess::Go);
        }
        assert_eq!(g.reserve("c2", 0, 100, 0, 1000), Guess::ChallengeSpent);
    }

    #[test]
    fn fresh_challenges_do_not_escape_the_nodes_budget() {
        let mut g = GuessGate::default();
        for i in 0..10 {
            assert_eq!(g.reserve(&format!("c{i}"), 0, 100, 1_000, 10), Guess::Go);
        }
        assert_eq!(g.reserve("another", 0, 100, 30_000, 10), Guess::Busy);
        // A minute later the budget is back; spent challenges stay spent.
        assert_eq!(g.reserve("another", 0, 100, 61_000, 10), Guess::Go);
        let mut full = GuessGate::default();
        for i in 0..GATE_CAP {
            full.wrong.insert(format!("x{i}"), (MAX_GUESSES, 1_000));
        }
        assert_eq!(full.reserve("new", 10, 1_000, 0, u32::MAX), Guess::Busy, "live entries are never evicted");
        assert_eq!(full.reserve("x1", 10, 1_000, 0, u32::MAX), Guess::ChallengeSpent);
        assert_eq!(full.reserve("new", 2_000, 3_000, 0, u32::MAX), Guess::Go, "expired entries make room");
    }
}
