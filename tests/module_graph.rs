//! The module layout stays free of import cycles: within `src/server/` (handlers import leaves and
//! `state`, and only `dispatch` imports the handlers) and within the storage crate. A module `a`
//! depends on `b` when its source names `crate::<area>::b` (or `crate::b` in the storage crate);
//! a cycle is reported with its members.
//!
//! `protocol/src/oauth2/` is checked too (registration and the authorization endpoint judge
//! redirect URIs through one leaf module, `uri`), and the protocol crate may depend on no
//! runtime, store or socket crate: that is what makes its sans-IO rule the compiler's.

use std::collections::{BTreeMap, BTreeSet};

/// Each module of `dir` and its source: a file `m.rs`, or a folder `m/` (all its files together).
fn modules(dir: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{dir}: {e}")) {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "rs") {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            out.insert(name, std::fs::read_to_string(&p).unwrap());
        } else if p.is_dir() {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let mut all = String::new();
            for f in std::fs::read_dir(&p).unwrap() {
                let f = f.unwrap().path();
                if f.extension().is_some_and(|x| x == "rs") {
                    all.push_str(&std::fs::read_to_string(&f).unwrap());
                }
            }
            out.insert(name, all);
        }
    }
    out
}

/// Whether `src` names module `m` through `prefix` (`crate::server::` or `crate::`).
fn names(src: &str, prefix: &str, m: &str) -> bool {
    let needle = format!("{prefix}{m}");
    src.match_indices(&needle).any(|(i, _)| {
        let after = src[i + needle.len()..].chars().next();
        !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
    }) || {
        // `use crate::server::{a, b};`
        let open = format!("{prefix}{{");
        src.match_indices(&open).any(|(i, _)| {
            let rest = &src[i + open.len()..];
            let list = &rest[..rest.find('}').unwrap_or(rest.len())];
            list.split(',').any(|item| item.trim().split("::").next() == Some(m))
        })
    }
}

/// Strongly connected components with more than one member (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        for w in t.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low[v];
                t.low.insert(v, lv.min(lw));
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low[v];
                t.low.insert(v, lv.min(iw));
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn graph(dir: &str, prefix: &str, root: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules(dir);
    let mut g = BTreeMap::new();
    for (m, src) in &mods {
        let deps: BTreeSet<String> =
            mods.keys().filter(|o| *o != m && o.as_str() != root && names(src, prefix, o)).cloned().collect();
        g.insert(m.clone(), deps);
    }
    g
}

#[test]
fn the_server_modules_have_no_import_cycle() {
    let g = graph(concat!(env!("CARGO_MANIFEST_DIR"), "/src/server"), "crate::server::", "mod");
    assert!(g.len() > 15, "modules found: {:?}", g.keys());
    assert!(g["dispatch"].contains("token"), "the graph is read: {g:?}");
    assert_eq!(cycles(&g), Vec::<Vec<String>>::new(), "import cycles in src/server");
}

#[test]
fn the_storage_modules_have_no_import_cycle() {
    let g = graph(concat!(env!("CARGO_MANIFEST_DIR"), "/storage/src"), "crate::", "lib");
    assert!(g["store"].contains("commit"), "the graph is read: {g:?}");
    assert_eq!(cycles(&g), Vec::<Vec<String>>::new(), "import cycles in the storage crate");
}

#[test]
fn the_protocol_modules_have_no_import_cycle() {
    let g = graph(concat!(env!("CARGO_MANIFEST_DIR"), "/protocol/src/oauth2"), "crate::oauth2::", "mod");
    assert!(g["authorize"].contains("uri") && g["client"].contains("uri"), "the graph is read: {g:?}");
    assert!(!g["uri"].contains("client") && !g["uri"].contains("authorize"), "uri is a leaf: {g:?}");
    assert_eq!(cycles(&g), Vec::<Vec<String>>::new(), "import cycles in protocol/src/oauth2");
    let g = graph(concat!(env!("CARGO_MANIFEST_DIR"), "/protocol/src"), "crate::", "lib");
    assert!(g["oauth2"].contains("http"), "the graph is read: {g:?}");
    assert_eq!(cycles(&g), Vec::<Vec<String>>::new(), "import cycles in the protocol crate");
}

#[test]
fn the_protocol_crate_depends_on_no_runtime_store_or_socket() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/protocol/Cargo.toml")).unwrap();
    let deps = manifest.split("[dependencies]").nth(1).expect("a [dependencies] table");
    let names: Vec<&str> = deps
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split(['=', ' ']).next())
        .collect();
    assert!(names.contains(&"ring"), "the table is read: {names:?}");
    for forbidden in
        ["monoio", "monoio-rustls", "hydra-storage", "redb", "tokio", "socket2", "libc", "ureq", "rustls", "mio"]
    {
        assert!(!names.contains(&forbidden), "the protocol crate must stay sans-IO, but depends on {forbidden}");
    }
}

#[test]
fn the_checker_finds_a_cycle() {
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    g.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    g.insert("d".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(cycles(&g), vec![vec!["a".to_string(), "b".into(), "c".into()]]);
    assert!(names("use crate::server::{state::Worker, respond};", "crate::server::", "respond"));
    assert!(!names("crate::server::statement", "crate::server::", "state"));
}
