//! Connections to PostgreSQL from a monoio runtime (`hydra_storage::pg::connect`) against
//! throwaway clusters: plain and pipelined, TLS per sslmode (encrypt only, chain, chain and
//! name), a server that refuses plain text, a server that never answers.

use hydra_storage::pg::{connect, PgOptions, TlsMode};
use std::rc::Rc;
use std::time::{Duration, Instant};

fn rt() -> monoio::Runtime<monoio::time::TimeDriver<monoio::IoUringDriver>> {
    monoio::RuntimeBuilder::<monoio::IoUringDriver>::new().enable_timer().build().unwrap()
}

fn opts(host: &str, port: u16, tls: TlsMode) -> PgOptions {
    PgOptions {
        host: host.into(),
        port,
        user: "postgres".into(),
        password: Some("not-shown-anywhere".into()),
        dbname: "postgres".into(),
        tls,
        root_cert: None,
        connect_timeout: Some(Duration::from_secs(10)),
        application_name: Some("hydra-rs-test".into()),
        max_lifetime: None,
    }
}

#[test]
fn plain_connections_pipeline_statements_from_many_tasks() {
    let c = testpg::Cluster::start(&[]).unwrap();
    rt().block_on(async {
        let client = Rc::new(connect(&opts("127.0.0.1", c.port(), TlsMode::Disable)).await.unwrap());
        let row = client.query_one("select current_setting('application_name')", &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), "hydra-rs-test");
        let stmt = client.prepare("select $1::bigint * 2").await.unwrap();
        let tasks: Vec<_> = (0..500i64)
            .map(|i| {
                let (client, stmt) = (client.clone(), stmt.clone());
                monoio::spawn(async move { client.query_one(&stmt, &[&i]).await.map(|r| r.get::<_, i64>(0)) })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap(), 2 * i as i64);
        }
    });
    let o = opts("127.0.0.1", c.port(), TlsMode::Disable);
    assert!(!format!("{o:?}").contains("not-shown-anywhere"));
}

struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

/// A CA and a server certificate it signed for `localhost` only.
fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "hydra-rs test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    Pki { ca_pem: ca.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() }
}

#[test]
fn tls_follows_sslmode() {
    let server = pki();
    let other = pki();
    let hba = "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n";
    let c = testpg::Cluster::start_with(
        &["ssl = on", "ssl_cert_file = 'server.crt'", "ssl_key_file = 'server.key'"],
        &[
            ("server.crt", server.cert_pem.as_bytes()),
            ("server.key", server.key_pem.as_bytes()),
            ("pg_hba.conf", hba.as_bytes()),
        ],
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let right = dir.path().join("ca.pem");
    let wrong = dir.path().join("other-ca.pem");
    std::fs::write(&right, &server.ca_pem).unwrap();
    std::fs::write(&wrong, &other.ca_pem).unwrap();
    let port = c.port();
    let with = |host: &str, tls: TlsMode, root: Option<&std::path::Path>| PgOptions {
        root_cert: root.map(|p| p.to_path_buf()),
        ..opts(host, port, tls)
    };
    rt().block_on(async {
        // Encrypted (pg_stat_ssl says so) in every mode that should connect.
        for (o, why) in [
            (with("127.0.0.1", TlsMode::Require, None), "require: encrypted, not checked"),
            (with("127.0.0.1", TlsMode::VerifyCa, Some(&right)), "verify-ca: the chain, any name"),
            (with("localhost", TlsMode::VerifyFull, Some(&right)), "verify-full: chain and name"),
        ] {
            let client = connect(&o).await.unwrap_or_else(|e| panic!("{why}: {e}"));
            let row = client.query_one("select ssl from pg_stat_ssl where pid = pg_backend_pid()", &[]).await.unwrap();
            assert!(row.get::<_, bool>(0), "{why}");
        }
        for (o, why) in [
            (with("127.0.0.1", TlsMode::VerifyFull, Some(&right)), "verify-full: the name is localhost only"),
            (with("127.0.0.1", TlsMode::VerifyCa, Some(&wrong)), "verify-ca: another CA"),
            (with("localhost", TlsMode::VerifyFull, Some(&wrong)), "verify-full: another CA"),
            (with("127.0.0.1", TlsMode::Require, Some(&wrong)), "require with a root certificate checks the chain"),
            (with("localhost", TlsMode::VerifyFull, None), "verify-full: not a public CA"),
            (with("127.0.0.1", TlsMode::Disable, None), "the server only takes TLS"),
        ] {
            let e = connect(&o).await.err().unwrap_or_else(|| panic!("connected: {why}"));
            assert!(!e.to_string().contains("not-shown-anywhere"), "{e}");
        }
        let missing = with("127.0.0.1", TlsMode::VerifyCa, Some(&dir.path().join("absent.pem")));
        let e = connect(&missing).await.err().unwrap();
        assert!(e.to_string().contains("sslrootcert"), "{e}");
    });
}

#[test]
fn a_server_that_never_answers_times_out() {
    // Accepts the connection (the kernel does) and never speaks.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let o =
        PgOptions { connect_timeout: Some(Duration::from_millis(300)), ..opts("127.0.0.1", port, TlsMode::Disable) };
    let t0 = Instant::now();
    let e = rt().block_on(async { connect(&o).await.err().unwrap() });
    assert!(e.to_string().contains("timed out"), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    // Nothing listens: refused at once, with the address in the message.
    drop(silent);
    let e = rt().block_on(async { connect(&o).await.err().unwrap() });
    assert!(e.to_string().contains("127.0.0.1"), "{e}");
}
