//! Sealed page tokens of the admin list endpoints (`/admin/clients`, consent sessions).
//!
//! Invariants: a page token is an AEAD blob (the flow keys, its own purpose byte) that names the
//! endpoint and the filters it was issued for and the position to resume from; a token that was
//! tampered with, forged, or is presented to another endpoint or with other filters opens to
//! nothing, and the caller answers 400 instead of silently serving another page.

use crate::oauth2::flow::{open_json, seal_json, Purpose};
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Page {
    /// Endpoint.
    e: String,
    /// Filters, in the caller's order.
    f: Vec<(String, String)>,
    /// Where the next page starts (opaque to this module).
    c: String,
}

/// Seals a position for one endpoint and set of filters.
pub fn seal(
    keys: &[[u8; 32]],
    endpoint: &str,
    filters: &[(&str, &str)],
    cursor: &str,
    rng: &dyn SecureRandom,
) -> Option<String> {
    let page = Page {
        e: endpoint.to_string(),
        f: filters.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        c: cursor.to_string(),
    };
    seal_json(keys, Purpose::PageToken, &page, rng).ok()
}

/// Opens a page token presented to `endpoint` with `filters`; `None` when it is not a token this
/// server issued for exactly that endpoint and those filters.
pub fn open(keys: &[[u8; 32]], endpoint: &str, filters: &[(&str, &str)], token: &str) -> Option<String> {
    let page: Page = open_json(keys, Purpose::PageToken, token).ok()?;
    let same_filters =
        page.f.len() == filters.len() && page.f.iter().zip(filters).all(|((a, b), (c, d))| a == c && b == d);
    (page.e == endpoint && same_filters).then_some(page.c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    #[test]
    fn bound_to_endpoint_and_filters_and_tamper_evident() {
        let keys = [[3u8; 32]];
        let rng = SystemRandom::new();
        let t = seal(&keys, "clients", &[("owner", "a")], "client-9", &rng).unwrap();
        assert_eq!(open(&keys, "clients", &[("owner", "a")], &t).as_deref(), Some("client-9"));
        assert_eq!(open(&keys, "consent", &[("owner", "a")], &t), None, "moved to another endpoint");
        assert_eq!(open(&keys, "clients", &[("owner", "b")], &t), None, "other filters");
        assert_eq!(open(&keys, "clients", &[], &t), None, "filters dropped");
        let mut bytes = t.clone().into_bytes();
        bytes[10] = if bytes[10] == b'A' { b'B' } else { b'A' };
        assert_eq!(open(&keys, "clients", &[("owner", "a")], &String::from_utf8(bytes).unwrap()), None);
        assert_eq!(open(&[[4u8; 32]], "clients", &[("owner", "a")], &t), None, "another secret");
        // The old format (base64 of an id) is not a page token.
        assert_eq!(open(&keys, "clients", &[], "Y2xpZW50LTk"), None);
    }
}
