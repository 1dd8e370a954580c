//! Go `time.Duration` text format (parse + `String()`), sans-IO. Invariants: parsing never panics and
//! rejects negative, empty, unit-less (except "0") and overflowing (> i64::MAX ns, like Go) inputs;
//! formatting is byte-identical to Go's `Duration.String()` for every value Go can represent.

use std::time::Duration;

/// Go stores durations as i64 nanoseconds; anything above this overflows in Go, so we reject it too
/// to keep the set of accepted strings identical.
const MAX_NANOS: u128 = i64::MAX as u128;

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        // Go accepts the micro sign (U+00B5) and the Greek mu (U+03BC).
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        _ => return None,
    })
}

/// Parses the subset of Go's `time.ParseDuration` that makes sense for lifespans: `"1h30m"`,
/// `"1.5h"`, `"300ms"`, `"0"`. Negative values return `None` (callers treat `"-1"` specially).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    // Go allows one leading sign; "-" is rejected here by contract, "+" is accepted like Go.
    let s = match s.as_bytes().first() {
        Some(b'-') => return None,
        Some(b'+') => &s[1..],
        _ => s,
    };
    if s == "0" {
        return Some(Duration::ZERO);
    }
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        // Integer part.
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, after_int) = rest.split_at(int_len);
        // Optional fraction; Go requires at least one digit on either side of the dot.
        let (frac_digits, after_num) = match after_int.strip_prefix('.') {
            Some(f) => {
                let n = f.bytes().take_while(u8::is_ascii_digit).count();
                f.split_at(n)
            }
            None => ("", after_int),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return None;
        }
        // Unit: everything up to the next digit or dot; Go rejects a missing unit.
        let unit_len =
            after_num.char_indices().find(|&(_, c)| c == '.' || c.is_ascii_digit()).map_or(after_num.len(), |(i, _)| i);
        let (unit, next) = after_num.split_at(unit_len);
        let unit = unit_nanos(unit)?;

        let mut int_val: u128 = 0;
        for b in int_digits.bytes() {
            int_val = int_val.checked_mul(10)?.checked_add(u128::from(b - b'0'))?;
            if int_val > MAX_NANOS {
                return None;
            }
        }
        let mut value = int_val.checked_mul(unit)?;
        // Fraction: integer arithmetic (Go uses float64 here; it can differ by at most 1ns on
        // pathological inputs, never on the values Hydra emits). Digits beyond 1ns precision are dropped.
        let mut frac: u128 = 0;
        let mut scale: u128 = 1;
        for b in frac_digits.bytes() {
            if scale > 1_000_000_000_000_000_000 {
                break;
            }
            frac = frac * 10 + u128::from(b - b'0');
            scale *= 10;
        }
        value = value.checked_add(frac * unit / scale)?;
        total = total.checked_add(value)?;
        if total > MAX_NANOS {
            return None;
        }
        rest = next;
    }
    let secs = u64::try_from(total / 1_000_000_000).ok()?;
    // Remainder is < 1e9, so it always fits in u32.
    let nanos = u32::try_from(total % 1_000_000_000).ok()?;
    Some(Duration::new(secs, nanos))
}

/// Appends `value / 10^prec` with a trailing-zero-trimmed fraction, as Go's `fmtFrac`/`fmtInt` do.
fn push_decimal(out: &mut String, value: u128, prec: u32) {
    let div = 10u128.pow(prec);
    out.push_str(&(value / div).to_string());
    let frac = value % div;
    if frac != 0 {
        let mut digits = format!("{:0width$}", frac, width = prec as usize);
        while digits.ends_with('0') {
            digits.pop();
        }
        out.push('.');
        out.push_str(&digits);
    }
}

/// Formats like Go's `Duration.String()`: `"1h0m0s"`, `"30m0s"`, `"1.5s"`, `"100ms"`, `"0s"`.
pub fn format_go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    let mut out = String::new();
    if ns == 0 {
        return "0s".to_owned();
    }
    if ns < 1_000_000_000 {
        // Sub-second values use the largest unit that keeps the integer part non-zero.
        let (prec, unit) = if ns < 1_000 {
            (0, "ns")
        } else if ns < 1_000_000 {
            (3, "\u{b5}s")
        } else {
            (6, "ms")
        };
        push_decimal(&mut out, ns, prec);
        out.push_str(unit);
        return out;
    }
    let secs = ns / 1_000_000_000;
    let sub = ns % 1_000_000_000;
    let hours = secs / 3600;
    let minutes = (secs % 3600) / 60;
    let seconds = secs % 60;
    // Go prints minutes whenever hours are present ("1h0m0s"), and hours only when non-zero.
    if hours > 0 {
        out.push_str(&format!("{hours}h{minutes}m"));
    } else if minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    push_decimal(&mut out, seconds * 1_000_000_000 + sub, 9);
    out.push('s');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(secs: u64, nanos: u32) -> Duration {
        Duration::new(secs, nanos)
    }

    #[test]
    fn parses_valid_inputs() {
        let cases: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("+5s", d(5, 0)),
            ("1h", d(3600, 0)),
            ("1.5h", d(5400, 0)),
            ("1h30m", d(5400, 0)),
            ("1h0m0s", d(3600, 0)),
            ("30m0s", d(1800, 0)),
            ("100ms", d(0, 100_000_000)),
            ("1.5s", d(1, 500_000_000)),
            (".5s", d(0, 500_000_000)),
            ("1.s", d(1, 0)),
            ("10us", d(0, 10_000)),
            ("10\u{b5}s", d(0, 10_000)),
            ("10\u{3bc}s", d(0, 10_000)),
            ("7ns", d(0, 7)),
            ("1h1m1s1ms1us1ns", d(3661, 1_001_001)),
            ("720h", d(720 * 3600, 0)),
            ("2562047h", d(2_562_047 * 3600, 0)),
        ];
        for (input, want) in cases {
            assert_eq!(parse_go_duration(input), Some(*want), "input {input:?}");
        }
    }

    #[test]
    fn rejects_invalid_inputs() {
        for input in [
            "",
            "-1",
            "-1h",
            "-0",
            "1",
            "h",
            ".",
            ".s",
            "1x",
            "1hh",
            "1h 30m",
            " 1h",
            "1.5",
            "+",
            "1e3s",
            "9999999999999999999h",
            "2562048h",
            "1d",
        ] {
            assert_eq!(parse_go_duration(input), None, "input {input:?}");
        }
    }

    #[test]
    fn formats_like_go() {
        let cases: &[(Duration, &str)] = &[
            (Duration::ZERO, "0s"),
            (d(1, 0), "1s"),
            (d(1, 500_000_000), "1.5s"),
            (d(3600, 0), "1h0m0s"),
            (d(1800, 0), "30m0s"),
            (d(90, 0), "1m30s"),
            (d(0, 100_000_000), "100ms"),
            (d(0, 1_500_000), "1.5ms"),
            (d(0, 1_500), "1.5\u{b5}s"),
            (d(0, 7), "7ns"),
            (d(31 * 3600, 0), "31h0m0s"),
            (d(3661, 1), "1h1m1.000000001s"),
        ];
        for (input, want) in cases {
            assert_eq!(format_go_duration(*input), *want, "input {input:?}");
        }
    }

    #[test]
    fn round_trips() {
        for s in ["1h0m0s", "30m0s", "1.5s", "100ms", "47h0m0s", "1m30s", "2.25\u{b5}s"] {
            let parsed = parse_go_duration(s).expect("valid");
            assert_eq!(format_go_duration(parsed), s);
        }
    }
}
