//! Starts a throwaway cluster for scripts: prints `port <n> bin <dir>` and keeps the cluster
//! until standard input closes, then stops and removes it. Extra `postgresql.conf` lines come
//! from `PG_CONF`, separated by `;`.

fn main() {
    let conf = std::env::var("PG_CONF").unwrap_or_default();
    let lines: Vec<&str> = conf.split(';').map(str::trim).filter(|l| !l.is_empty()).collect();
    let c = match testpg::Cluster::start(&lines) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("testpg-cluster: {e}");
            std::process::exit(1);
        }
    };
    println!("port {} bin {}", c.port(), c.binary("").display());
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
}
