//! Scope matching strategies, as Hydra's `strategies.scope`.
//!
//! `exact`: a requested scope must equal an allowed one. `wildcard` (Hydra's default): scopes are
//! dot-separated; a `*` segment in an allowed scope matches exactly one non-empty segment, and a
//! trailing `.*` also matches any deeper name (`foo.*` covers `foo.bar` and `foo.bar.baz`); a plain
//! allowed `foo` does not cover `foo.bar`.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeStrategy {
    Exact,
    Wildcard,
}

impl ScopeStrategy {
    /// Whether `requested` is covered by one of `allowed`.
    pub fn matches<'a>(self, allowed: impl IntoIterator<Item = &'a str>, requested: &str) -> bool {
        allowed.into_iter().any(|a| match self {
            ScopeStrategy::Exact => a == requested,
            ScopeStrategy::Wildcard => wildcard_match(a, requested),
        })
    }
}

fn wildcard_match(allowed: &str, requested: &str) -> bool {
    if allowed == requested {
        return true;
    }
    if !allowed.contains('*') {
        return false;
    }
    let a: Vec<&str> = allowed.split('.').collect();
    let r: Vec<&str> = requested.split('.').collect();
    if r.iter().any(|s| s.is_empty()) {
        return false;
    }
    for (i, seg) in a.iter().enumerate() {
        let last = i + 1 == a.len();
        match r.get(i) {
            None => return false,
            Some(rs) if *seg == "*" => {
                if last {
                    // A trailing wildcard covers this segment and anything deeper.
                    return !rs.is_empty();
                }
            }
            Some(rs) if seg == rs => {}
            Some(_) => return false,
        }
    }
    a.len() == r.len()
}

/// Splits a space-delimited scope parameter (RFC 6749 §3.3), dropping empty entries and
/// duplicates while keeping order.
pub fn split(scope: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
pub fn is_valid_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_table() {
        let cases = [
            ("foo", "foo", true, "equal"),
            ("foo", "foo.bar", false, "plain scope does not cover children"),
            ("foo.*", "foo.bar", true, "trailing wildcard one level"),
            ("foo.*", "foo.bar.baz", true, "trailing wildcard deeper"),
            ("foo.*", "foo", false, "wildcard needs a segment"),
            ("foo.*.baz", "foo.bar.baz", true, "inner wildcard"),
            ("foo.*.baz", "foo.bar.qux", false, "inner wildcard, wrong tail"),
            ("foo.*.baz", "foo.bar.x.baz", false, "inner wildcard is one segment"),
            ("foo.*", "foo.", false, "empty segment"),
            ("*", "anything", true, "bare wildcard"),
            ("bar.*", "foo.bar", false, "prefix mismatch"),
        ];
        for (allowed, requested, want, what) in cases {
            assert_eq!(ScopeStrategy::Wildcard.matches([allowed], requested), want, "{what}");
        }
    }

    #[test]
    fn exact_is_literal() {
        assert!(ScopeStrategy::Exact.matches(["a", "b"], "b"));
        assert!(!ScopeStrategy::Exact.matches(["foo.*"], "foo.bar"));
    }

    #[test]
    fn split_and_validate() {
        assert_eq!(split("  a b  a c "), vec!["a", "b", "c"]);
        assert!(split("").is_empty());
        assert!(is_valid_token("read:all"));
        assert!(!is_valid_token("bad\"quote"));
        assert!(!is_valid_token("back\\slash"));
        assert!(!is_valid_token(""));
    }
}
