//! Throwaway PostgreSQL clusters for tests and load tests: `initdb` into a fresh directory, the
//! server on a free loopback port, stopped and removed when the [`Cluster`] is dropped.
//!
//! Invariants: never touches a shared or system cluster (its own data directory, its own socket
//! directory, its own port); as root, the cluster runs as the `postgres` user (PostgreSQL refuses
//! to run as root) and its directory is handed to that user; the binaries are Debian's
//! (`/usr/lib/postgresql/<major>/bin`, the newest present) or whatever `PG_BIN` names.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A running throwaway cluster.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

/// Why a cluster could not be started.
#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn fail(what: impl Into<String>) -> Error {
    Error(what.into())
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`.
pub fn bin_dir() -> Result<PathBuf, Error> {
    if let Some(b) = std::env::var_os("PG_BIN") {
        return Ok(PathBuf::from(b));
    }
    let root = Path::new("/usr/lib/postgresql");
    let mut majors: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .map_err(|_| fail("PostgreSQL is not installed (apt-get install -y postgresql, or set PG_BIN)"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok().map(|m| (m, e.path().join("bin"))))
        .filter(|(_, p)| p.join("initdb").exists())
        .collect();
    majors.sort();
    majors.pop().map(|(_, p)| p).ok_or_else(|| fail("no initdb under /usr/lib/postgresql/*/bin"))
}

fn is_root() -> bool {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() == 0 }
}

/// A directory name no other cluster of this or another process uses.
fn fresh_dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir().join(format!("testpg-{}-{n}-{nanos}", std::process::id()))
}

/// A port nobody listens on right now (the kernel's pick, released before the server binds it).
fn free_port() -> Result<u16, Error> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| fail(format!("no free port: {e}")))?;
    l.local_addr().map(|a| a.port()).map_err(|e| fail(e.to_string()))
}

impl Cluster {
    /// Starts a cluster with `synchronous_commit` on and default `fsync`, extra `postgresql.conf`
    /// lines appended. Waits until it accepts connections (up to 30 s).
    pub fn start(extra_conf: &[&str]) -> Result<Cluster, Error> {
        Cluster::start_with(extra_conf, &[])
    }

    /// As [`Cluster::start`], with files written into the data directory first (owned by the
    /// cluster's user, mode 0600): TLS keys and certificates named in `extra_conf`, or a
    /// `pg_hba.conf` that replaces the generated one.
    pub fn start_with(extra_conf: &[&str], files: &[(&str, &[u8])]) -> Result<Cluster, Error> {
        let bin = bin_dir()?;
        let as_postgres = is_root();
        let dir = fresh_dir();
        std::fs::create_dir_all(&dir).map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
        let mut cluster = Cluster { dir, bin, port: 0, as_postgres };
        if as_postgres {
            cluster.run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&cluster.dir), "chown")?;
        }
        let data = cluster.data();
        cluster.run(
            cluster.pg("initdb").args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "-D"]).arg(&data),
            "initdb",
        )?;
        let mut conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nsynchronous_commit = on\n\
             max_connections = 200\nshared_buffers = 128MB\n",
            cluster.dir.display()
        );
        for line in extra_conf {
            conf.push_str(line);
            conf.push('\n');
        }
        let conf_path = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).map_err(|e| fail(format!("postgresql.conf: {e}")))?;
        text.push_str(&conf);
        std::fs::write(&conf_path, text).map_err(|e| fail(format!("postgresql.conf: {e}")))?;
        for (name, bytes) in files {
            use std::os::unix::fs::PermissionsExt;
            let path = data.join(name);
            std::fs::write(&path, bytes).map_err(|e| fail(format!("{name}: {e}")))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| fail(format!("{name}: {e}")))?;
            if cluster.as_postgres {
                cluster.run(Command::new("chown").arg("postgres:postgres").arg(&path), "chown")?;
            }
        }
        // A port can be taken between choosing it and binding it: try a few.
        let mut last = String::new();
        for _ in 0..5 {
            cluster.port = free_port()?;
            match cluster.pg_start() {
                Ok(()) => return Ok(cluster),
                Err(e) => last = e.0,
            }
        }
        Err(fail(last))
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for the `postgres` superuser and database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable", self.port)
    }

    /// Its directory (data directory, socket, server log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of one of its binaries (`psql`, `pgbench` are in the same directory).
    pub fn binary(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// A command running a PostgreSQL binary as the cluster's owner.
    pub fn pg(&self, name: &str) -> Command {
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(name));
            c
        } else {
            Command::new(self.bin.join(name))
        }
    }

    /// Runs SQL through `psql` against the cluster and returns its output (unaligned, tuples only).
    pub fn psql(&self, sql: &str) -> Result<String, Error> {
        self.psql_in("postgres", sql)
    }

    /// [`Cluster::psql`] in database `database`.
    pub fn psql_in(&self, database: &str, sql: &str) -> Result<String, Error> {
        let out = self
            .pg("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .args(["-d", database, "-c", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| fail(format!("psql: {e}")))?;
        if !out.status.success() {
            return Err(fail(format!("psql: {}", String::from_utf8_lossy(&out.stderr))));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn run(&self, cmd: &mut Command, what: &str) -> Result<(), Error> {
        let out = cmd.stdin(Stdio::null()).output().map_err(|e| fail(format!("{what}: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            Err(fail(format!(
                "{what} failed: {}{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                log.lines().rev().take(10).collect::<Vec<_>>().join("\n")
            )))
        }
    }

    /// Stops the server at once (`immediate`: what a crash looks like) and starts it again on the
    /// same port; for fault tests.
    pub fn restart_immediate(&self) -> Result<(), Error> {
        self.stop_immediate()?;
        self.pg_start()
    }

    /// Stops the server at once, as a crash would (no shutdown checkpoint; every connection
    /// cut); [`Cluster::start_again`] brings it back on the same port.
    pub fn stop_immediate(&self) -> Result<(), Error> {
        let data = self.data();
        self.run(self.pg("pg_ctl").args(["-w", "-D"]).arg(&data).args(["-m", "immediate", "stop"]), "pg_ctl stop")
    }

    /// Kills the postmaster with SIGKILL (its backends exit when they notice);
    /// [`Cluster::start_again`] brings it back once they are gone.
    pub fn kill_9(&self) -> Result<(), Error> {
        let pid_file = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .map_err(|e| fail(format!("postmaster.pid: {e}")))?;
        let pid: i32 =
            pid_file.lines().next().and_then(|l| l.trim().parse().ok()).ok_or_else(|| fail("postmaster.pid"))?;
        // SAFETY: kill(2) on the cluster's own postmaster, read from its pid file.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        Ok(())
    }

    /// Starts a stopped cluster again on the same port. After [`Cluster::kill_9`] PostgreSQL
    /// refuses to start while orphaned backends still hold its shared memory: retried for up to
    /// 30 s.
    pub fn start_again(&self) -> Result<(), Error> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match self.pg_start() {
                Ok(()) => return Ok(()),
                Err(e) if std::time::Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(200)),
            }
        }
    }

    /// Starts the server on `self.port` and waits until it accepts connections (up to 30 s).
    fn pg_start(&self) -> Result<(), Error> {
        let log = self.dir.join("server.log");
        self.run(
            self.pg("pg_ctl")
                .args(["-w", "-t", "30", "-D"])
                .arg(self.data())
                .arg("-l")
                .arg(&log)
                .args(["-o", &format!("-p {}", self.port)])
                .arg("start"),
            "pg_ctl start",
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .pg("pg_ctl")
            .args(["-w", "-D"])
            .arg(&data)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_starts_answers_survives_a_crash_and_is_removed() {
        let c = Cluster::start(&[]).expect("cluster");
        let dir = c.dir().to_path_buf();
        assert_eq!(c.psql("select 1 + 1").unwrap(), "2");
        assert_eq!(c.psql("show synchronous_commit").unwrap(), "on");
        assert_eq!(c.psql("show fsync").unwrap(), "on");
        c.psql("create table t (k int primary key); insert into t values (7)").unwrap();
        c.restart_immediate().unwrap();
        assert_eq!(c.psql("select k from t").unwrap(), "7");
        assert!(c.psql("select nope").is_err());
        drop(c);
        assert!(!dir.exists());
    }
}
