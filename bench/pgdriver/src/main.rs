//! Measures what a thread-per-core worker gets from PostgreSQL through tokio-postgres with no tokio
//! runtime: one monoio runtime on this thread, `--conns` connections over monoio's poll-io TCP
//! streams, `--inflight` statements in flight on each (tokio-postgres writes queued requests back
//! to back, so they pipeline), for `--seconds`. Prints one JSON line.
//!
//! Modes (token-shaped rows: bigint key, 32-byte signature, 200-byte record):
//! - `insert1`: one `INSERT` per statement, each its own transaction (a commit per token);
//! - `batch`: one multi-row `INSERT … SELECT FROM unnest(…)` of `--batch` rows per statement (a
//!   commit per batch, what a worker's group commit would send);
//! - `select`: one primary-key `SELECT` per statement over `--rows` preloaded rows.
//!
//! `--client-index` adds an index on the rows' client id (100 distinct ids), to price deleting a
//! client's tokens by row instead of by watermark.
//!
//! Starts a throwaway cluster (crate `testpg`) unless `--url host:port` names one (scripts that
//! also drive it with pgbench start it with `testpg-cluster`).

use futures_util::future::join_all;
use monoio::io::IntoPollIo;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio_postgres::types::ToSql;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned()).unwrap_or_else(|| default.to_string())
}

fn num(name: &str, default: u64) -> u64 {
    arg(name, &default.to_string()).parse().unwrap_or(default)
}

struct Stats {
    latencies: Vec<Duration>,
    rows: u64,
    errors: u64,
    first_error: Option<String>,
}

async fn connect(addr: &str) -> Result<tokio_postgres::Client, String> {
    let tcp = monoio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let io = tcp.into_poll_io().map_err(|e| format!("poll io: {e}"))?;
    let (client, conn) = tokio_postgres::Config::new()
        .user("postgres")
        .dbname("postgres")
        .connect_raw(io, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("startup: {e}"))?;
    monoio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("connection ended: {e}");
        }
    });
    Ok(client)
}

fn main() {
    let mode = arg("--mode", "insert1");
    let conns = num("--conns", 4) as usize;
    let inflight = num("--inflight", 16) as usize;
    let seconds = num("--seconds", 10);
    let batch = num("--batch", 64) as usize;
    let rows = num("--rows", 100_000);
    let cluster = match arg("--url", "").as_str() {
        "" => Some(testpg::Cluster::start(&[]).unwrap_or_else(|e| panic!("cluster: {e}"))),
        _ => None,
    };
    let addr = match &cluster {
        Some(c) => format!("127.0.0.1:{}", c.port()),
        None => arg("--url", ""),
    };
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .enable_timer()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let out = rt.block_on(run(&addr, &mode, conns, inflight, seconds, batch, rows));
    println!("{out}");
    drop(cluster);
}

async fn run(addr: &str, mode: &str, conns: usize, inflight: usize, seconds: u64, batch: usize, rows: u64) -> String {
    let setup = connect(addr).await.unwrap_or_else(|e| panic!("{e}"));
    setup
        .batch_execute(
            "drop table if exists tokens; \
             create table tokens (seq bigint primary key, client_id text not null, sig bytea not null, rec bytea not null)",
        )
        .await
        .unwrap_or_else(|e| panic!("schema: {e}"));
    if std::env::args().any(|a| a == "--client-index") {
        setup
            .batch_execute("create index tokens_client on tokens (client_id)")
            .await
            .unwrap_or_else(|e| panic!("index: {e}"));
    }
    if mode == "select" {
        setup
            .batch_execute(&format!(
                "insert into tokens select g, 'client-' || (g % 100), sha256(g::text::bytea), convert_to(repeat('r', 200), 'UTF8') \
                 from generate_series(1, {rows}) g"
            ))
            .await
            .unwrap_or_else(|e| panic!("preload: {e:?}"));
        // VACUUM cannot run in the implicit transaction of a multi-statement batch.
        setup.batch_execute("vacuum analyze tokens").await.unwrap_or_else(|e| panic!("vacuum: {e:?}"));
    }
    let stats = Rc::new(RefCell::new(Stats { latencies: Vec::new(), rows: 0, errors: 0, first_error: None }));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..conns {
        let client = Rc::new(connect(addr).await.unwrap_or_else(|e| panic!("{e}")));
        let sql = match mode {
            "insert1" => "insert into tokens (seq, client_id, sig, rec) values ($1, $4, $2, $3)",
            "batch" => {
                "insert into tokens (seq, client_id, sig, rec) \
                 select * from unnest($1::bigint[], $4::text[], $2::bytea[], $3::bytea[])"
            }
            _ => "select rec from tokens where seq = $1",
        };
        let stmt = client.prepare(sql).await.unwrap_or_else(|e| panic!("prepare: {e}"));
        for t in 0..inflight {
            let (client, stmt, stats) = (client.clone(), stmt.clone(), stats.clone());
            // Keys unique per task: connection, task, counter.
            let base = ((c * inflight + t) as i64) << 40;
            let mode = mode.to_string();
            tasks.push(monoio::spawn(async move {
                let sig = vec![7u8; 32];
                let rec = vec![b'r'; 200];
                let mut n: i64 = 0;
                let mut x: u64 = base as u64 | 1;
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    let done: Result<u64, tokio_postgres::Error> = match mode.as_str() {
                        "insert1" => {
                            n += 1;
                            let cid = format!("client-{}", n % 100);
                            client.execute(&stmt, &[&(base + n), &sig, &rec, &cid]).await
                        }
                        "batch" => {
                            let keys: Vec<i64> = (0..batch as i64).map(|i| base + n + i).collect();
                            n += batch as i64;
                            let sigs = vec![sig.clone(); batch];
                            let recs = vec![rec.clone(); batch];
                            let cids: Vec<String> = keys.iter().map(|k| format!("client-{}", k % 100)).collect();
                            let params: [&(dyn ToSql + Sync); 4] = [&keys, &sigs, &recs, &cids];
                            client.execute(&stmt, &params).await
                        }
                        _ => {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            let key = (x % rows) as i64 + 1;
                            client.query_one(&stmt, &[&key]).await.map(|_| 1)
                        }
                    };
                    let mut s = stats.borrow_mut();
                    match done {
                        Ok(r) => {
                            s.latencies.push(t0.elapsed());
                            s.rows += r;
                        }
                        Err(e) => {
                            s.errors += 1;
                            s.first_error.get_or_insert_with(|| e.to_string());
                        }
                    }
                }
            }));
        }
    }
    join_all(tasks).await;
    let elapsed = started.elapsed().as_secs_f64();
    let s = stats.borrow();
    let mut l = s.latencies.clone();
    l.sort();
    let pct = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1))).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    format!(
        "{{\"mode\":\"{mode}\",\"conns\":{conns},\"inflight\":{inflight},\"batch\":{},\"statements\":{},\"statements_per_sec\":{:.0},\"rows_per_sec\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"errors\":{},\"first_error\":{:?}}}",
        if mode == "batch" { batch } else { 1 },
        l.len(),
        l.len() as f64 / elapsed,
        s.rows as f64 / elapsed,
        pct(0.5),
        pct(0.99),
        s.errors,
        s.first_error.clone().unwrap_or_default(),
    )
}
