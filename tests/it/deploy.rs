//! The bare-metal kit (`deploy/`): readiness through `sd_notify`, the workers on the CPUs
//! `engine.cpus` names, the example configuration starting as written, and the systemd unit
//! passing `systemd-analyze verify` where that tool exists.

use crate::harness::*;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

fn received(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("a notification within the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn readiness_and_stopping_are_told_to_systemd() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let s = Opts::new("io_uring").env("NOTIFY_SOCKET", path.to_str().unwrap()).start();
    let ready = received(&sock);
    assert!(ready.starts_with("READY=1\n") && ready.contains(&format!("MAINPID={}", s.pid())), "{ready}");
    // Ready means serving.
    Req::get("/health/alive").send(s.public).expect(200);
    s.stop();
    assert_eq!(received(&sock), "STOPPING=1");

    // An abstract socket, as some systemd versions hand out.
    let name = format!("hydra-rs-test-{}", std::process::id());
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let sock = UnixDatagram::bind_addr(&addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _s = Opts::new("io_uring").env("NOTIFY_SOCKET", &format!("@{name}")).start();
    assert!(received(&sock).starts_with("READY=1"));
}

/// The CPUs a thread of `pid` named `name` may run on, from /proc.
fn thread_cpus(pid: i32, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            if let Some(l) = status.lines().find(|l| l.starts_with("Cpus_allowed_list:")) {
                out.push(l.split(':').nth(1).unwrap_or("").trim().to_string());
            }
        }
    }
    out
}

#[test]
fn workers_take_the_cpus_engine_cpus_names() {
    let allowed: Vec<usize> = {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let list = status
            .lines()
            .find(|l| l.starts_with("Cpus_allowed_list:"))
            .unwrap()
            .split(':')
            .nth(1)
            .unwrap()
            .trim()
            .to_string();
        hydra::config::parse_cpu_list(&list).unwrap()
    };
    let cpu = *allowed.last().unwrap();
    let s = Opts::new("io_uring").env("ENGINE_CPUS", &cpu.to_string()).env("ENGINE_WORKERS", "0").start();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(thread_cpus(s.pid(), "worker-0"), vec![cpu.to_string()]);
    assert!(thread_cpus(s.pid(), "worker-1").is_empty(), "one worker per listed CPU");
    Req::get("/health/alive").send(s.public).expect(200);
    // A CPU this process may not use stops the start.
    let out = Opts::new("io_uring").env("ENGINE_CPUS", "4095").command().output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("engine.cpus"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_example_configuration_starts_as_written() {
    // Overridden only where a test machine differs: the data directory, the ports, and text
    // logs (the harness reads the bound ports from them).
    let dir = tempfile::tempdir().unwrap();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/config.yaml");
    let s = Opts::new("io_uring").arg("-c").arg(config).dir(dir.path()).env("LOG_FORMAT", "text").start();
    Req::get("/health/ready").send(s.admin).expect(200);
    let d = Req::get("/.well-known/openid-configuration").send(s.public).json();
    assert_eq!(d["issuer"], "https://auth.example.com/");
}

#[test]
fn the_systemd_unit_verifies() {
    let Ok(out) = std::process::Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed: the unit is not verified here");
        return;
    };
    if !out.status.success() {
        eprintln!("systemd-analyze does not run here: the unit is not verified");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/hydra-rs.service")).unwrap();
    // verify checks that the ExecStart binary exists: point it at this build.
    let unit = unit.replace("/usr/local/bin/hydra ", &format!("{BIN} "));
    let path = dir.path().join("hydra-rs.service");
    std::fs::write(&path, unit).unwrap();
    let out = std::process::Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("hydra-rs.service:"), "{err}");
}
