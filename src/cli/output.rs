//! Output rendering that matches Hydra's CLI (Go `cmdx` printing helpers):
//! tab-aligned tables (Go `text/tabwriter` with tab padding), Go
//! `encoding/json` style JSON, and RFC 3339 timestamps.

use serde_json::Value;

/// Renders rows of cells like Go's `tabwriter.NewWriter(w, 0, 8, 1, '\t', 0)`
/// when every cell is written tab-terminated (`cell\t`), one row per line.
pub(crate) fn tabwrite(rows: &[Vec<String>]) -> String {
    // Each line holds its tab-terminated cells plus the trailing (empty) cell.
    let lines: Vec<Vec<&str>> = rows
        .iter()
        .map(|r| {
            let mut l: Vec<&str> = r.iter().map(String::as_str).collect();
            l.push("");
            l
        })
        .collect();
    let mut out = String::new();
    let mut widths = Vec::new();
    format_block(&lines, 0, lines.len(), &mut widths, &mut out);
    out
}

fn text_width(s: &str) -> usize {
    s.chars().count()
}

fn format_block(lines: &[Vec<&str>], line0: usize, line1: usize, widths: &mut Vec<usize>, out: &mut String) {
    let column = widths.len();
    let mut start = line0;
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(lines, start, this, widths, out);
        start = this;
        let mut width = 0;
        while this < line1 && column + 1 < lines[this].len() {
            width = width.max(text_width(lines[this][column]) + 1);
            this += 1;
        }
        widths.push(width);
        format_block(lines, start, this, widths, out);
        widths.pop();
        start = this;
    }
    write_lines(lines, start, line1, widths, out);
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for line in &lines[from..to] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j < widths.len() {
                let cellw = widths[j].div_ceil(8) * 8;
                let n = cellw - text_width(cell);
                for _ in 0..n.div_ceil(8) {
                    out.push('\t');
                }
            }
        }
        out.push('\n');
    }
}

/// Go `cmdx.PrintRow` table layout: one `HEADER<tab>value` line per column.
pub(crate) fn row_table(header: &[&str], columns: &[String]) -> String {
    let rows: Vec<Vec<String>> = header.iter().zip(columns).map(|(h, c)| vec![h.to_string(), c.clone()]).collect();
    tabwrite(&rows)
}

/// Go `cmdx.PrintTable` layout: a header line followed by one line per row.
pub(crate) fn multi_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut all = Vec::with_capacity(rows.len() + 1);
    all.push(header.iter().map(|h| h.to_string()).collect());
    all.extend(rows.iter().cloned());
    tabwrite(&all)
}

/// Serializes like Go's `json.Encoder` (HTML-safe escaping, map keys sorted,
/// two-space indentation when pretty) and appends a newline.
pub(crate) fn go_json(v: &Value, pretty: bool) -> String {
    let mut out = String::new();
    write_value(&mut out, v, pretty, 0);
    out.push('\n');
    out
}

/// Like [`go_json`] for an object whose keys must keep the given order.
pub(crate) fn go_json_ordered(fields: &[(&str, &Value)], pretty: bool) -> String {
    let mut out = String::new();
    write_object(&mut out, fields.iter().map(|(k, v)| (*k, *v)), fields.is_empty(), pretty, 0);
    out.push('\n');
    out
}

fn newline_indent(out: &mut String, pretty: bool, level: usize) {
    if pretty {
        out.push('\n');
        for _ in 0..level {
            out.push_str("  ");
        }
    }
}

fn write_object<'a>(
    out: &mut String,
    fields: impl Iterator<Item = (&'a str, &'a Value)>,
    empty: bool,
    pretty: bool,
    level: usize,
) {
    if empty {
        out.push_str("{}");
        return;
    }
    out.push('{');
    for (i, (k, v)) in fields.enumerate() {
        if i > 0 {
            out.push(',');
        }
        newline_indent(out, pretty, level + 1);
        write_string(out, k);
        out.push(':');
        if pretty {
            out.push(' ');
        }
        write_value(out, v, pretty, level + 1);
    }
    newline_indent(out, pretty, level);
    out.push('}');
}

fn write_value(out: &mut String, v: &Value, pretty: bool, level: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(out, s),
        Value::Array(a) => {
            if a.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline_indent(out, pretty, level + 1);
                write_value(out, item, pretty, level + 1);
            }
            newline_indent(out, pretty, level);
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            write_object(out, keys.into_iter().map(|k| (k.as_str(), &m[k])), m.is_empty(), pretty, level);
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}
