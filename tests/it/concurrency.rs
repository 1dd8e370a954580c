//! Area 8: concurrent token issuance on keep-alive connections (redb, durability immediate).

use crate::harness::*;
use std::collections::HashSet;

#[test]
fn parallel_issuance_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Opts::new("io_uring").dir(dir.path()).env("ENGINE_DURABILITY", "immediate").start();
    let clients: Vec<(String, String)> = (0..4).map(|_| cc_client(&s, "a")).collect();
    const THREADS: usize = 32;
    const PER: usize = 50;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (id, secret) = clients[t % clients.len()].clone();
            let addr = s.public;
            std::thread::spawn(move || {
                let mut c = Conn::open(addr);
                let mut out = Vec::with_capacity(PER);
                for _ in 0..PER {
                    let r = c.request(&token_req(&id, &secret, &[("scope", "a")]));
                    assert_eq!(r.status, 200, "{}", r.text());
                    out.push(r.json()["access_token"].as_str().unwrap().to_string());
                }
                out
            })
        })
        .collect();
    let all: Vec<String> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    assert_eq!(all.len(), THREADS * PER);
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "duplicated tokens");
    // Introspect everything on 8 connections in parallel.
    let chunks: Vec<Vec<String>> = all.chunks(all.len() / 8).map(|c| c.to_vec()).collect();
    let admin = s.admin;
    let active: usize = chunks
        .into_iter()
        .map(|c| std::thread::spawn(move || count_active(admin, &c)))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .sum();
    assert_eq!(active, all.len(), "every issued token introspects active");
    s.stop();
}
