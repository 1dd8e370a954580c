//! Minimal structured logging to stderr in Hydra's `text` or `json` formats.
//!
//! Invariants: callers pass only server-side facts (paths, statuses, durations, ids); tokens,
//! secrets and request bodies are never arguments here. Level and format are set once at start.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
}

impl Level {
    /// Hydra's (logrus) level names; `fatal` and `panic` map to error.
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "trace" => Level::Trace,
            "debug" => Level::Debug,
            "info" => Level::Info,
            "warn" | "warning" => Level::Warn,
            "error" | "fatal" | "panic" => Level::Error,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warning",
            Level::Error => "error",
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
static JSON: AtomicBool = AtomicBool::new(false);

pub fn init(level: Level, json: bool) {
    LEVEL.store(level as u8, Ordering::Relaxed);
    JSON.store(json, Ordering::Relaxed);
}

pub fn enabled(level: Level) -> bool {
    level as u8 >= LEVEL.load(Ordering::Relaxed)
}

/// Writes one line: message plus key/value fields.
pub fn emit(level: Level, msg: &str, fields: &[(&str, &dyn std::fmt::Display)]) {
    if !enabled(level) {
        return;
    }
    let line = render(level, msg, fields, JSON.load(Ordering::Relaxed), now_rfc3339());
    eprintln!("{line}");
}

fn render(level: Level, msg: &str, fields: &[(&str, &dyn std::fmt::Display)], json: bool, time: String) -> String {
    if json {
        let mut m = serde_json::Map::new();
        m.insert("time".into(), time.into());
        m.insert("level".into(), level.name().into());
        m.insert("msg".into(), msg.into());
        for (k, v) in fields {
            m.insert((*k).into(), v.to_string().into());
        }
        serde_json::Value::Object(m).to_string()
    } else {
        let mut s = format!("time={time} level={} msg={:?}", level.name(), msg);
        for (k, v) in fields {
            let v = v.to_string();
            if v.contains([' ', '"', '=']) || v.is_empty() {
                let _ = write!(s, " {k}={v:?}");
            } else {
                let _ = write!(s, " {k}={v}");
            }
        }
        s
    }
}

/// RFC 3339 UTC timestamp of now, second precision.
pub fn now_rfc3339() -> String {
    let secs =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    rfc3339(secs)
}

/// RFC 3339 UTC timestamp (`2006-01-02T15:04:05Z`) for unix seconds.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[macro_export]
macro_rules! log_at {
    ($lvl:expr, $msg:expr $(, $k:literal = $v:expr)* $(,)?) => {
        if $crate::log::enabled($lvl) {
            $crate::log::emit($lvl, $msg, &[$(($k, &$v as &dyn std::fmt::Display)),*]);
        }
    };
}

#[macro_export]
macro_rules! info {
    ($($t:tt)*) => { $crate::log_at!($crate::log::Level::Info, $($t)*) };
}

#[macro_export]
macro_rules! warn {
    ($($t:tt)*) => { $crate::log_at!($crate::log::Level::Warn, $($t)*) };
}

#[macro_export]
macro_rules! error {
    ($($t:tt)*) => { $crate::log_at!($crate::log::Level::Error, $($t)*) };
}

#[macro_export]
macro_rules! debug {
    ($($t:tt)*) => { $crate::log_at!($crate::log::Level::Debug, $($t)*) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_lines() {
        let t = render(Level::Info, "started", &[("port", &4444), ("path", &"/a b")], false, "T".into());
        assert_eq!(t, "time=T level=info msg=\"started\" port=4444 path=\"/a b\"");
        let j = render(Level::Warn, "x", &[("k", &"v")], true, "T".into());
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["level"], "warning");
        assert_eq!(v["k"], "v");
    }

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn levels_parse() {
        assert_eq!(Level::parse("WARN"), Some(Level::Warn));
        assert_eq!(Level::parse("fatal"), Some(Level::Error));
        assert_eq!(Level::parse("verbose"), None);
    }
}
