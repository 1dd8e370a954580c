//! This project's PostgreSQL schema as versioned migrations, and `up`, `down` and `status`.
//!
//! Invariants: each migration runs in its own transaction together with its row in
//! `hydra_rs_migrations`, so it is applied entirely or not at all; a transaction-scoped advisory
//! lock serialises nodes migrating at once; the checksum of every applied migration's `up` is
//! compared with this binary's, so an edited migration stops the run instead of drifting;
//! migrations are only ever appended (a version never changes meaning once released).
//!
//! Version 1 is the whole schema of the backend (`super::store`), keyed for the lookups and
//! multi-row writes it makes: a token by partition and number, a grant's live tokens by family,
//! everything else by the ids the interface names.

use crate::StoreError;

/// One schema change.
#[derive(Debug)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub up: &'static str,
    pub down: &'static str,
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "the storage schema",
        up: "
        -- Identifiers are bytea: PostgreSQL's text cannot hold every string the API accepts
        -- (NUL), and bytea orders bytewise, as the embedded store does. JSON columns are text.
        -- Tokens: a grant's tokens share a partition and a family (the first token's number).
        -- Only the signature of a token is stored. `epoch` is the client's epoch when the row
        -- was written: a row below its client's current epoch is revoked.
        CREATE TABLE hydra_rs_token (
            part        integer  NOT NULL,
            seq         bigint   NOT NULL,
            kind        smallint NOT NULL,
            signature   bytea    NOT NULL,
            family      bigint   NOT NULL,
            client_id   bytea    NOT NULL,
            subject     bytea    NOT NULL,
            scope       bytea    NOT NULL,
            audience    text     NOT NULL,
            issued_at   bigint   NOT NULL,
            expires_at  bigint   NOT NULL,
            ext         text     NOT NULL,
            epoch       bigint   NOT NULL,
            PRIMARY KEY (part, seq)
        );
        -- A grant's tokens by kind, for rotation (its access tokens) and revocation (its live
        -- tokens). Not partial: a generic plan cannot prove a partial index's predicate from a
        -- parameter, and with the kind in the key a rotation skips the chain's spent markers.
        CREATE INDEX hydra_rs_token_family ON hydra_rs_token (part, family, kind);
        -- Token numbers are handed out in blocks: a node takes the next block of a partition in
        -- one statement and numbers from it in memory, so numbers never repeat across nodes.
        CREATE TABLE hydra_rs_seq (
            part integer PRIMARY KEY,
            next bigint  NOT NULL
        );
        -- Revoking every token of a client raises its epoch (no row: epoch 0).
        CREATE TABLE hydra_rs_epoch (
            client_id bytea  PRIMARY KEY,
            epoch     bigint NOT NULL
        );
        -- Single-use markers of browser flows (a flow's code, a handled verifier).
        CREATE TABLE hydra_rs_flow (
            part    integer NOT NULL,
            key     bytea NOT NULL,
            started bigint  NOT NULL,
            PRIMARY KEY (part, key)
        );
        CREATE TABLE hydra_rs_login (
            subject    bytea NOT NULL,
            sid        bytea NOT NULL,
            auth_time  bigint NOT NULL,
            expires_at bigint NOT NULL,
            PRIMARY KEY (subject, sid)
        );
        CREATE INDEX hydra_rs_login_sid ON hydra_rs_login (sid);
        -- Consent decisions (the JSON of the admin API in `body`), and the latest remembered
        -- one per subject and client.
        CREATE TABLE hydra_rs_consent (
            subject      bytea NOT NULL,
            client_id    bytea NOT NULL,
            flow_id      bytea NOT NULL,
            grant_part   integer NOT NULL,
            grant_family bigint  NOT NULL,
            body         bytea   NOT NULL,
            PRIMARY KEY (subject, client_id, flow_id)
        );
        CREATE TABLE hydra_rs_consent_latest (
            subject      bytea NOT NULL,
            client_id    bytea NOT NULL,
            flow_id      bytea NOT NULL,
            grant_part   integer NOT NULL,
            grant_family bigint  NOT NULL,
            body         bytea   NOT NULL,
            PRIMARY KEY (subject, client_id)
        );
        CREATE TABLE hydra_rs_client (
            id   bytea PRIMARY KEY,
            body bytea NOT NULL
        );
        CREATE TABLE hydra_rs_key (
            set_name bytea NOT NULL,
            kid      bytea NOT NULL,
            created  bigint NOT NULL,
            sealed   bytea  NOT NULL,
            PRIMARY KEY (set_name, kid)
        );
        -- The change feed: every client, epoch and key write appends its changes under the
        -- next version. Every such write updates the `version` counter row first, which
        -- serialises them, so versions are in commit order.
        CREATE TABLE hydra_rs_change (
            version bigint   NOT NULL,
            n       smallint NOT NULL,
            kind    smallint NOT NULL,
            name    bytea    NOT NULL
        );
        CREATE INDEX hydra_rs_change_version ON hydra_rs_change (version);
        CREATE TABLE hydra_rs_counter (
            name  text   PRIMARY KEY,
            value bigint NOT NULL
        );
        -- `pruned`: the feed no longer holds the changes up to this version.
        INSERT INTO hydra_rs_counter VALUES ('version', 0), ('pruned', 0);
        -- Leases: the background janitor runs on the node that holds `janitor`.
        CREATE TABLE hydra_rs_lease (
            name   text   PRIMARY KEY,
            holder bytea  NOT NULL,
            until  bigint NOT NULL
        );
    ",
        down: "
        DROP TABLE hydra_rs_lease;
        DROP TABLE hydra_rs_counter;
        DROP TABLE hydra_rs_change;
        DROP TABLE hydra_rs_key;
        DROP TABLE hydra_rs_client;
        DROP TABLE hydra_rs_consent_latest;
        DROP TABLE hydra_rs_consent;
        DROP TABLE hydra_rs_login;
        DROP TABLE hydra_rs_flow;
        DROP TABLE hydra_rs_epoch;
        DROP TABLE hydra_rs_seq;
        DROP TABLE hydra_rs_token;
    ",
    },
    Migration {
        version: 2,
        name: "flows name the grant they stored",
        // A device authorization is found by its user code: the flow row keyed by the user code
        // names the authorization's token row (0 for rows written before, and for step markers).
        up: "ALTER TABLE hydra_rs_flow ADD COLUMN seq bigint NOT NULL DEFAULT 0;",
        down: "ALTER TABLE hydra_rs_flow DROP COLUMN seq;",
    },
    Migration {
        version: 3,
        name: "login sessions name the identity provider's session",
        // Revoked at the identity provider (urls.identity_provider.url) when the login ends.
        up: "ALTER TABLE hydra_rs_login ADD COLUMN idp_session bytea NOT NULL DEFAULT ''::bytea;",
        down: "ALTER TABLE hydra_rs_login DROP COLUMN idp_session;",
    },
    Migration {
        version: 4,
        name: "revoked grant families",
        // A revoked family: its access and refresh tokens read as gone, those a rotation or code
        // exchange running at the same time commits after the revocation too (the revocation's
        // DELETE sees only the rows of its own snapshot). `at`: when (database clock, seconds);
        // the janitor drops a marker an hour after its family has no rows left.
        up: "
        CREATE TABLE hydra_rs_revoked (
            part   integer NOT NULL,
            family bigint  NOT NULL,
            at     bigint  NOT NULL,
            PRIMARY KEY (part, family)
        );",
        down: "DROP TABLE hydra_rs_revoked;",
    },
];

/// Where a migration stands in a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Applied,
    Pending,
}

const TABLE: &str = "
    CREATE TABLE IF NOT EXISTS hydra_rs_migrations (
        version    bigint PRIMARY KEY,
        name       text   NOT NULL,
        checksum   text   NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
    )";

/// Any fixed number: the advisory lock every migrating node takes.
const LOCK: i64 = 0x6879_6472_615f_7273;

fn failed(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(format!("PostgreSQL migration: {what}: {e}"))
}

/// FNV-1a of a migration's `up` text, as hex: enough to notice an edited migration.
pub fn checksum(sql: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in sql.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The applied versions and their checksums (none when the table does not exist yet).
async fn applied(client: &tokio_postgres::Client) -> Result<Vec<(i64, String)>, StoreError> {
    let exists = client
        .query_one("SELECT to_regclass('hydra_rs_migrations') IS NOT NULL", &[])
        .await
        .map_err(|e| failed("reading the migration table", e))?;
    if !exists.get::<_, bool>(0) {
        return Ok(Vec::new());
    }
    let rows = client
        .query("SELECT version, checksum FROM hydra_rs_migrations ORDER BY version", &[])
        .await
        .map_err(|e| failed("reading the migration table", e))?;
    Ok(rows.iter().map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1))).collect())
}

/// Checks what the database has applied against this binary's migrations.
fn check(applied: &[(i64, String)]) -> Result<(), StoreError> {
    for (version, sum) in applied {
        match MIGRATIONS.iter().find(|m| m.version == *version) {
            None => {
                return Err(failed(
                    "the database has a newer schema than this binary knows",
                    format!("version {version}; run a newer release"),
                ))
            }
            Some(m) if checksum(m.up) != *sum => {
                return Err(failed("an applied migration differs from this binary's", format!("version {version}")))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Every migration with its state.
pub async fn status(client: &tokio_postgres::Client) -> Result<Vec<(&'static Migration, State)>, StoreError> {
    let done = applied(client).await?;
    check(&done)?;
    Ok(MIGRATIONS
        .iter()
        .map(|m| (m, if done.iter().any(|(v, _)| *v == m.version) { State::Applied } else { State::Pending }))
        .collect())
}

/// Whether migrations are pending (the server refuses to start on such a database).
pub async fn behind(client: &tokio_postgres::Client) -> Result<bool, StoreError> {
    Ok(status(client).await?.iter().any(|(_, s)| *s == State::Pending))
}

/// Takes the migration lock in `tx` (held until it ends), creates the migration table when
/// missing, and returns what is applied, checked against this binary's migrations.
async fn locked(tx: &tokio_postgres::Transaction<'_>) -> Result<Vec<(i64, String)>, StoreError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK]).await.map_err(|e| failed("lock", e))?;
    tx.batch_execute(TABLE).await.map_err(|e| failed("creating the migration table", e))?;
    let have = tx
        .query("SELECT version, checksum FROM hydra_rs_migrations ORDER BY version", &[])
        .await
        .map_err(|e| failed("reading the migration table", e))?;
    let have: Vec<(i64, String)> = have.iter().map(|r| (r.get(0), r.get(1))).collect();
    check(&have)?;
    Ok(have)
}

/// Applies every pending migration, each in its own transaction; returns the versions applied.
pub async fn up(client: &mut tokio_postgres::Client) -> Result<Vec<i64>, StoreError> {
    let mut done = Vec::new();
    for m in MIGRATIONS {
        let tx = client.transaction().await.map_err(|e| failed("begin", e))?;
        // Read under the lock: another node may have applied it meanwhile.
        let have = locked(&tx).await?;
        if have.iter().any(|(v, _)| *v == m.version) {
            tx.rollback().await.map_err(|e| failed("rollback", e))?;
            continue;
        }
        tx.batch_execute(m.up).await.map_err(|e| failed(&format!("version {} ({})", m.version, m.name), e))?;
        tx.execute(
            "INSERT INTO hydra_rs_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &checksum(m.up)],
        )
        .await
        .map_err(|e| failed("recording the migration", e))?;
        tx.commit().await.map_err(|e| failed(&format!("committing version {}", m.version), e))?;
        done.push(m.version);
    }
    Ok(done)
}

/// Rolls back the newest `steps` applied migrations, each in its own transaction; returns the
/// versions rolled back.
pub async fn down(client: &mut tokio_postgres::Client, steps: usize) -> Result<Vec<i64>, StoreError> {
    let mut done = Vec::new();
    for _ in 0..steps {
        let tx = client.transaction().await.map_err(|e| failed("begin", e))?;
        let have = locked(&tx).await?;
        let Some((version, _)) = have.last() else {
            tx.rollback().await.map_err(|e| failed("rollback", e))?;
            break;
        };
        let m = MIGRATIONS.iter().find(|m| m.version == *version).ok_or_else(|| failed("unknown version", version))?;
        tx.batch_execute(m.down).await.map_err(|e| failed(&format!("rolling back version {}", m.version), e))?;
        tx.execute("DELETE FROM hydra_rs_migrations WHERE version = $1", &[&m.version])
            .await
            .map_err(|e| failed("recording the rollback", e))?;
        tx.commit().await.map_err(|e| failed(&format!("committing the rollback of {}", m.version), e))?;
        done.push(m.version);
    }
    Ok(done)
}
