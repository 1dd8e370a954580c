//! Rules for the requests this server makes to URLs that clients register (the
//! `sector_identifier_uri` document fetched at client registration, back-channel logout
//! notices): which addresses may be
//! reached, how long a request may take, and how much of an answer is read.
//!
//! Invariants (sans-IO): unless `clients.http.disallow_private_ip_ranges` is off (it is off by
//! default only with `--dev`), an address that is not globally routable is refused: loopback,
//! private, shared (CGNAT), link-local (cloud metadata services live there), unspecified,
//! multicast, broadcast, documentation, benchmarking and reserved ranges, IPv6 unique-local and
//! link-local, and IPv4 addresses embedded in IPv6 (mapped, compatible, NAT64, 6to4) by the
//! IPv4 rules; a host name is judged by every address it resolves to, and the connection goes to
//! an address that was judged (no second lookup, so DNS rebinding cannot slip past).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// Connect, TLS handshake and each read or write of one outbound request.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// The whole request, however slowly the peer trickles.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// The most of an answer that is read (head and body).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

fn v4_forbidden(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (RFC 6598)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking (RFC 2544)
        || a >= 240 // reserved
}

fn v6_forbidden(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_forbidden(v4);
    }
    // IPv4-compatible (::a.b.c.d, deprecated), NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an
    // IPv4 address that the packet ends up at.
    let embedded = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if s[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified() {
        return v4_forbidden(embedded(s[6], s[7]));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return v4_forbidden(embedded(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return v4_forbidden(embedded(s[1], s[2]));
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x2001 && s[1] < 0x0200) // IETF protocol assignments (Teredo, ORCHID, ...)
        || s[0] == 0x0100 && s[1..4] == [0, 0, 0] // discard-only
}

/// Whether an outbound request may go to `ip` while private ranges are disallowed.
pub fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_forbidden(v4),
        IpAddr::V6(v6) => v6_forbidden(v6),
    }
}

/// The address to connect to among those a host resolved to: refused outright when any of them
/// is forbidden (a name that also points inside is not trusted with the other answers).
pub fn pick(addrs: &[std::net::SocketAddr], allow_private: bool) -> Result<std::net::SocketAddr, String> {
    let first = *addrs.first().ok_or("the host name did not resolve")?;
    if !allow_private {
        // The answer names no address: where an internal host name resolves is itself
        // information an outside caller must not learn (an SSRF oracle).
        if addrs.iter().any(|a| forbidden(a.ip())) {
            return Err("the URL is not allowed: its host is private, loopback or reserved (clients.http.disallow_private_ip_ranges)".into());
        }
    }
    Ok(first)
}

/// An `https` URL split for a request: host (brackets removed), port, and the request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `https` (false only for plain `http`, which callers allow in `--dev` alone).
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub path_and_query: String,
}

/// Parses an absolute `https` URL without user information or fragment.
pub fn https_target(url: &str) -> Result<Target, String> {
    web_target(url, false)
}

/// As [`https_target`], and plain `http` too when `allow_http`.
pub fn web_target(url: &str, allow_http: bool) -> Result<Target, String> {
    let (tls, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(r), _) => (true, r),
        (None, Some(r)) if allow_http => (false, r),
        _ => return Err("the URL must use https".into()),
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.contains('@') || url.contains('#') {
        return Err("the URL must not carry user information or a fragment".into());
    }
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err("the URL holds control characters or spaces".into());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or("unbalanced brackets in the host")?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None | Some("") if tls => 443,
        None | Some("") => 80,
        Some(p) => p.parse().map_err(|_| "the port is not a number".to_string())?,
    };
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b)) {
        return Err("the host is not a valid host name or address".into());
    }
    let path_and_query = if path.starts_with('?') { format!("/{path}") } else { path.to_string() };
    Ok(Target { tls, host: host.to_ascii_lowercase(), port, path_and_query })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_and_reserved_addresses_are_forbidden() {
        for a in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2001:db8::1",
        ] {
            assert!(forbidden(a.parse().unwrap()), "{a} must be forbidden");
        }
        for a in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(!forbidden(a.parse().unwrap()), "{a} must be allowed");
        }
    }

    #[test]
    fn a_name_with_any_inside_answer_is_refused() {
        let outside: std::net::SocketAddr = "93.184.216.34:443".parse().unwrap();
        let inside: std::net::SocketAddr = "10.0.0.5:443".parse().unwrap();
        assert_eq!(pick(&[outside], false), Ok(outside));
        let refused = pick(&[outside, inside], false).unwrap_err();
        assert!(!refused.contains("10.0.0.5"), "the resolved address is not told: {refused}");
        assert_eq!(pick(&[inside], true), Ok(inside));
        assert!(pick(&[], true).is_err());
    }

    #[test]
    fn https_targets_parse_strictly() {
        let t = https_target("https://Example.COM/s.json?x=1").unwrap();
        assert_eq!(
            t,
            Target { tls: true, host: "example.com".into(), port: 443, path_and_query: "/s.json?x=1".into() }
        );
        assert!(https_target("http://a.example/").is_err());
        let plain = web_target("http://127.0.0.1/bc?x=1", true).unwrap();
        assert_eq!((plain.tls, plain.port, plain.path_and_query.as_str()), (false, 80, "/bc?x=1"));
        assert!(web_target("ftp://a.example/", true).is_err());
        assert_eq!(https_target("https://[::1]:8443").unwrap().port, 8443);
        assert_eq!(https_target("https://[::1]:8443").unwrap().host, "::1");
        assert_eq!(https_target("https://a.example?q").unwrap().path_and_query, "/?q");
        for bad in [
            "http://a.example/",
            "https://user@a.example/",
            "https://a.example/#f",
            "https:///x",
            "https://a.example:99999/",
            "https://a b/",
            "https://a.example/\r\nHost: evil",
        ] {
            assert!(https_target(bad).is_err(), "{bad}");
        }
    }
}
