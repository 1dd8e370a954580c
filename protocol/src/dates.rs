//! Every date format of the server in one place: RFC 3339 (client timestamps, consent sessions,
//! CLI output, log lines) through the `time` crate, and the HTTP date of the `Date` header
//! through `httpdate`.
//!
//! Invariant: every function is total: a time outside what a format can show (years 1 to 9999)
//! is clamped to the nearest one it can.

use ::time::format_description::well_known::Rfc3339;
use ::time::OffsetDateTime;

/// 0001-01-01T00:00:00Z, Go's zero time.
const MIN: i64 = -62_135_596_800;
/// 9999-12-31T23:59:59Z.
const MAX: i64 = 253_402_300_799;

/// Unix seconds as RFC 3339 in UTC with whole seconds (`2006-01-02T15:04:05Z`).
pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix.clamp(MIN, MAX))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// An RFC 3339 date-time (any offset, fractions truncated) as unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    OffsetDateTime::parse(s, &Rfc3339).ok().map(OffsetDateTime::unix_timestamp)
}

/// The IMF-fixdate of RFC 9110 §5.6.7 (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn http_date(unix: u64) -> String {
    let secs = unix.min(MAX as u64);
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_values_and_round_trip() {
        for (unix, s) in [
            (0, "1970-01-01T00:00:00Z"),
            (1_700_000_000, "2023-11-14T22:13:20Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (MIN, "0001-01-01T00:00:00Z"),
            (MAX, "9999-12-31T23:59:59Z"),
        ] {
            assert_eq!(rfc3339(unix), s);
            assert_eq!(parse_rfc3339(s), Some(unix));
        }
        assert_eq!(rfc3339(i64::MIN), "0001-01-01T00:00:00Z", "clamped");
        assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59Z", "clamped");
        assert_eq!(parse_rfc3339("2023-11-14T23:13:20.123+01:00"), Some(1_700_000_000));
        for bad in ["", "2023-11-14", "2023-13-14T00:00:00Z", "2023-11-14T00:00:00", "2023-11-14T00:00:00+0100"] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn http_dates() {
        for (secs, want) in [
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (951_868_800, "Wed, 01 Mar 2000 00:00:00 GMT"),
            (946_684_799, "Fri, 31 Dec 1999 23:59:59 GMT"),
            (1_709_164_800, "Thu, 29 Feb 2024 00:00:00 GMT"),
            (4_107_542_400, "Mon, 01 Mar 2100 00:00:00 GMT"),
            (4_107_542_399, "Sun, 28 Feb 2100 23:59:59 GMT"),
            (2_147_483_647, "Tue, 19 Jan 2038 03:14:07 GMT"),
            (253_402_300_799, "Fri, 31 Dec 9999 23:59:59 GMT"),
        ] {
            assert_eq!(http_date(secs), want, "{secs}");
        }
        assert_eq!(http_date(u64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT", "clamped, never a panic");
    }
}
