//! `--format jsonpath=…` and `--format jsonpointer=…`: the subset of kubectl's JSONPath
//! templates Hydra's CLI users write (`{.client_id}`, `{.items[0].client_id}`,
//! `{.items[*].client_id}`, literal text around expressions), and RFC 6901 pointers.
//!
//! Invariant: a path that matches nothing is an error naming the path, never an empty success.

use serde_json::Value;

/// Renders a template: literal text, and `{expr}` replaced by what the expression selects
/// (strings as they are, anything else as compact JSON, several values separated by spaces).
pub fn render(template: &str, v: &Value) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    if !rest.contains('{') {
        // `jsonpath=.client_id` without braces, as a convenience.
        return render(&format!("{{{template}}}"), v);
    }
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').ok_or_else(|| format!("unclosed {{ in jsonpath {template:?}"))? + open;
        let expr = &rest[open + 1..close];
        let found = select(expr, v)?;
        if found.is_empty() {
            return Err(format!("jsonpath {expr:?} matches nothing"));
        }
        let parts: Vec<String> = found
            .iter()
            .map(|x| match x {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        out.push_str(&parts.join(" "));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The values an expression selects: `.a.b`, `$.a`, `[N]`, `[*]`, `['key']`.
fn select<'v>(expr: &str, v: &'v Value) -> Result<Vec<&'v Value>, String> {
    let bad = || format!("unsupported jsonpath expression {expr:?}");
    let mut cur: Vec<&Value> = vec![v];
    let e = expr.trim();
    let mut s = e.strip_prefix('$').unwrap_or(e);
    while !s.is_empty() {
        if let Some(r) = s.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let name = &r[..end];
            if !name.is_empty() {
                cur = cur.into_iter().filter_map(|x| x.get(name)).collect();
            }
            s = &r[end..];
        } else if let Some(r) = s.strip_prefix('[') {
            let end = r.find(']').ok_or_else(bad)?;
            let inner = r[..end].trim();
            cur = if inner == "*" {
                cur.into_iter()
                    .flat_map(|x| match x {
                        Value::Array(a) => a.iter().collect::<Vec<_>>(),
                        Value::Object(m) => m.values().collect(),
                        _ => Vec::new(),
                    })
                    .collect()
            } else if let Ok(i) = inner.parse::<i64>() {
                cur.into_iter()
                    .filter_map(|x| {
                        let a = x.as_array()?;
                        let idx = if i < 0 { a.len().checked_sub(i.unsigned_abs() as usize)? } else { i as usize };
                        a.get(idx)
                    })
                    .collect()
            } else {
                let key = inner.trim_matches(|c| c == '\'' || c == '"');
                cur.into_iter().filter_map(|x| x.get(key)).collect()
            };
            s = &r[end + 1..];
        } else {
            return Err(bad());
        }
    }
    Ok(cur)
}

/// The value at an RFC 6901 pointer, as compact JSON (a string without quotes).
pub fn pointer(p: &str, v: &Value) -> Result<String, String> {
    match v.pointer(p) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(x) => Ok(x.to_string()),
        None => Err(format!("jsonpointer {p:?} matches nothing")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_and_pointers() {
        let v =
            json!({"client_id": "c1", "items": [{"client_id": "a"}, {"client_id": "b"}], "n": 3, "m": {"k": [1, 2]}});
        assert_eq!(render("{.client_id}", &v).unwrap(), "c1");
        assert_eq!(render("$.client_id", &v).unwrap(), "c1");
        assert_eq!(render(".client_id", &v).unwrap(), "c1");
        assert_eq!(render("id={.client_id} n={.n}", &v).unwrap(), "id=c1 n=3");
        assert_eq!(render("{.items[1].client_id}", &v).unwrap(), "b");
        assert_eq!(render("{.items[-1].client_id}", &v).unwrap(), "b");
        assert_eq!(render("{.items[*].client_id}", &v).unwrap(), "a b");
        assert_eq!(render("{.m}", &v).unwrap(), r#"{"k":[1,2]}"#);
        assert_eq!(render("{['client_id']}", &v).unwrap(), "c1");
        assert!(render("{.nope}", &v).unwrap_err().contains("matches nothing"));
        assert!(render("{.client_id", &v).is_err());
        assert!(render("{client_id}", &v).is_err());
        assert_eq!(pointer("/items/0/client_id", &v).unwrap(), "a");
        assert_eq!(pointer("/m/k", &v).unwrap(), "[1,2]");
        assert!(pointer("/x", &v).is_err());
    }
}
