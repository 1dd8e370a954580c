//! Shared by the PostgreSQL tests: a fresh, migrated database in a throwaway cluster.

#![allow(dead_code)]

use hydra_storage::pg::{connect, migrate, PgOptions, PgStore, PgStoreOptions, TlsMode};

pub fn rt() -> monoio::Runtime<monoio::time::TimeDriver<monoio::IoUringDriver>> {
    monoio::RuntimeBuilder::<monoio::IoUringDriver>::new().enable_timer().build().unwrap()
}

pub fn opts(port: u16, dbname: &str) -> PgOptions {
    PgOptions {
        host: "127.0.0.1".into(),
        port,
        user: "postgres".into(),
        password: None,
        dbname: dbname.into(),
        tls: TlsMode::Disable,
        root_cert: None,
        connect_timeout: Some(std::time::Duration::from_secs(10)),
        application_name: Some("hydra-rs-test".into()),
        max_lifetime: None,
    }
}

/// Creates database `name` in the cluster and applies every migration to it.
pub fn fresh_db(cluster: &testpg::Cluster, name: &str) -> PgOptions {
    cluster.psql(&format!("CREATE DATABASE {name}")).unwrap();
    let o = opts(cluster.port(), name);
    rt().block_on(async {
        let mut c = connect(&o).await.unwrap();
        migrate::up(&mut c).await.unwrap();
    });
    o
}

pub fn store(o: &PgOptions, partitions: u32) -> PgStore {
    PgStore::open(&PgStoreOptions { conn: o.clone(), lanes: 2, shared: 2, writers: 2, partitions }).unwrap()
}
