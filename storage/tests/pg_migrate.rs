//! The PostgreSQL schema's migrations (`hydra_storage::pg::migrate`) against a throwaway cluster:
//! up, status, down, two nodes migrating at once, and a database that does not match.

use hydra_storage::pg::migrate::{self, State, MIGRATIONS};
use hydra_storage::pg::{connect, PgOptions, TlsMode};

fn rt() -> monoio::Runtime<monoio::time::TimeDriver<monoio::IoUringDriver>> {
    monoio::RuntimeBuilder::<monoio::IoUringDriver>::new().enable_timer().build().unwrap()
}

fn opts(port: u16) -> PgOptions {
    PgOptions {
        host: "127.0.0.1".into(),
        port,
        user: "postgres".into(),
        password: None,
        dbname: "postgres".into(),
        tls: TlsMode::Disable,
        root_cert: None,
        connect_timeout: Some(std::time::Duration::from_secs(10)),
        application_name: None,
        max_lifetime: None,
    }
}

async fn exists(c: &tokio_postgres::Client, table: &str) -> bool {
    c.query_one("SELECT to_regclass($1) IS NOT NULL", &[&table]).await.unwrap().get(0)
}

#[test]
fn up_status_down_and_two_nodes_at_once() {
    let cluster = testpg::Cluster::start(&[]).unwrap();
    let o = opts(cluster.port());
    rt().block_on(async {
        let mut a = connect(&o).await.unwrap();
        let mut b = connect(&o).await.unwrap();
        let all: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert!(migrate::status(&a).await.unwrap().iter().all(|(_, s)| *s == State::Pending));
        assert!(migrate::behind(&a).await.unwrap());

        // Two nodes at once: the advisory lock lets one apply each migration, the other skips it.
        let (ra, rb) = join(migrate::up(&mut a), migrate::up(&mut b)).await;
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let mut both = [ra.clone(), rb.clone()].concat();
        both.sort();
        assert_eq!(both, all, "each applied exactly once: {ra:?} {rb:?}");
        assert!(exists(&a, "hydra_rs_token").await && exists(&a, "hydra_rs_seq").await);
        assert!(!migrate::behind(&a).await.unwrap());
        assert!(migrate::status(&b).await.unwrap().iter().all(|(_, s)| *s == State::Applied));
        assert!(migrate::up(&mut a).await.unwrap().is_empty(), "nothing left to apply");

        // Down one step at a time, back to nothing; more steps than applied stop at nothing.
        let newest = *all.last().unwrap();
        assert_eq!(migrate::down(&mut a, 1).await.unwrap(), vec![newest]);
        assert!(migrate::behind(&a).await.unwrap());
        let rest = migrate::down(&mut a, 99).await.unwrap();
        assert_eq!(rest.len(), all.len() - 1);
        assert!(!exists(&a, "hydra_rs_token").await);
        assert_eq!(migrate::up(&mut a).await.unwrap(), all, "and up again");
    });
}

#[test]
fn a_database_that_does_not_match_stops_the_run() {
    let cluster = testpg::Cluster::start(&[]).unwrap();
    let o = opts(cluster.port());
    rt().block_on(async {
        let mut c = connect(&o).await.unwrap();
        migrate::up(&mut c).await.unwrap();
        // An applied migration whose text differs from this binary's.
        c.execute("UPDATE hydra_rs_migrations SET checksum = 'edited' WHERE version = 1", &[]).await.unwrap();
        let e = migrate::status(&c).await.unwrap_err().to_string();
        assert!(e.contains("differs") && e.contains("version 1"), "{e}");
        assert!(migrate::up(&mut c).await.is_err());
        let sum = migrate::checksum(MIGRATIONS[0].up);
        c.execute("UPDATE hydra_rs_migrations SET checksum = $1 WHERE version = 1", &[&sum]).await.unwrap();
        // A newer release migrated this database.
        c.execute("INSERT INTO hydra_rs_migrations (version, name, checksum) VALUES (999, 'future', 'x')", &[])
            .await
            .unwrap();
        let e = migrate::status(&c).await.unwrap_err().to_string();
        assert!(e.contains("newer schema") && e.contains("999"), "{e}");
        assert!(migrate::down(&mut c, 1).await.is_err(), "nothing is rolled back on an unknown schema");
    });
}

/// Polls two futures together on this thread (both make progress while either waits).
async fn join<A: std::future::Future, B: std::future::Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (std::pin::pin!(a), std::pin::pin!(b));
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(|cx| {
        if ra.is_none() {
            if let std::task::Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let std::task::Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if ra.is_some() && rb.is_some() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    (ra.take().unwrap(), rb.take().unwrap())
}
