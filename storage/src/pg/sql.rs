//! The statements of the PostgreSQL backend (schema: `migrate.rs`, versions 1 to 4).
//!
//! Invariants: every operation the interface calls one transaction is one statement here, or a
//! transaction on the exclusive connection (meta writes); a token row below its client's epoch
//! is never returned (`LIVE`), so a revocation by client is in force for every node the moment
//! it commits; token writes read the client's epoch in the same statement, so a token written
//! concurrently with a revocation is revoked too (its statement read the old epoch or it was
//! issued after the revocation committed); likewise a revoked grant family is a marker row
//! (`hydra_rs_revoked`) that every read checks, so tokens a rotation or code exchange commits
//! after the revocation are revoked as well, which a `DELETE` alone (it sees only the rows of its
//! snapshot) would miss.

/// The condition that a token row `t` is not revoked, by its client's epoch or (an access or
/// refresh token: what a rotation or code exchange racing the revocation writes) its family's
/// marker; spent markers and codes stay as on the embedded store, so a replay is still told apart.
macro_rules! live {
    () => {
        concat!(
            "t.epoch >= coalesce((SELECT e.epoch FROM hydra_rs_epoch e WHERE e.client_id = t.client_id), 0) ",
            "AND (t.kind NOT IN (0, 1) OR NOT EXISTS (SELECT 1 FROM hydra_rs_revoked r ",
            "WHERE r.part = t.part AND r.family = t.family))"
        )
    };
}

/// The record columns of a token row `t`, in [`crate::pg::store`]'s decoding order.
macro_rules! record_columns {
    () => {
        "t.kind, t.signature, t.family, t.client_id, t.subject, t.scope, t.audience, t.issued_at, t.expires_at, t.ext"
    };
}

/// Whether the stored row `t` may be replaced by the row `$new` (an alias): only a live device
/// authorization (kind 5) becomes its grant's code (kind 2), same signature and client, as
/// [`crate::TokenRecord::approved_as`] says; so no write revives a row its client's epoch revoked.
macro_rules! replaceable {
    ($new:literal) => {
        concat!(
            "t.kind = 5 AND ",
            $new,
            ".kind = 2 AND t.signature = ",
            $new,
            ".signature AND t.client_id = ",
            $new,
            ".client_id AND ",
            live!()
        )
    };
}

/// Inserts (or replaces) the token rows given as twelve arrays, `$1` … `$12`, optionally only
/// `WHERE` a condition; each row takes its client's current epoch. With `replaceable`, a row
/// already stored is replaced only where [`replaceable`] allows it.
macro_rules! insert_tokens {
    ($cond:literal, replaceable) => {
        concat!(insert_tokens!($cond), " WHERE ", replaceable!("excluded"))
    };
    ($cond:literal) => {
        concat!(
            "INSERT INTO hydra_rs_token AS t (part, seq, kind, signature, family, client_id, subject, scope, ",
            "audience, issued_at, expires_at, ext, epoch) ",
            "SELECT u.part, u.seq, u.kind, u.signature, u.family, u.client_id, u.subject, u.scope, u.audience, ",
            "u.issued_at, u.expires_at, u.ext, ",
            "coalesce((SELECT e.epoch FROM hydra_rs_epoch e WHERE e.client_id = u.client_id), 0) ",
            "FROM unnest($1::integer[], $2::bigint[], $3::smallint[], $4::bytea[], $5::bigint[], $6::bytea[], ",
            "$7::bytea[], $8::bytea[], $9::text[], $10::bigint[], $11::bigint[], $12::text[]) ",
            "AS u(part, seq, kind, signature, family, client_id, subject, scope, audience, issued_at, expires_at, ext) ",
            $cond,
            " ON CONFLICT (part, seq) DO UPDATE SET kind = excluded.kind, signature = excluded.signature, ",
            "family = excluded.family, client_id = excluded.client_id, subject = excluded.subject, ",
            "scope = excluded.scope, audience = excluded.audience, issued_at = excluded.issued_at, ",
            "expires_at = excluded.expires_at, ext = excluded.ext, epoch = excluded.epoch"
        )
    };
}

/// Spends the live token `$13`/`$14` with signature `$15` (kind `$16` becomes `$17`) and, only if
/// it did, inserts the new tokens; returns the spent row's family, if it was spent.
macro_rules! exchange {
    ($extra:literal) => {
        concat!(
            "WITH s AS (UPDATE hydra_rs_token t SET kind = $17 ",
            "WHERE t.part = $13 AND t.seq = $14 AND t.signature = $15 AND t.kind = $16 AND ",
            live!(),
            " RETURNING ",
            record_columns!(),
            "), ",
            $extra,
            "i AS (",
            insert_tokens!("WHERE EXISTS (SELECT 1 FROM s)"),
            " RETURNING 1) SELECT * FROM s"
        )
    };
}

pub(crate) const INSERT_TOKENS: &str = insert_tokens!("");

/// Many tokens at once, `($1[i], $2[i])`: each row found comes with its position `i` (from 1).
pub(crate) const GET_TOKENS: &str = concat!(
    "SELECT u.i, ",
    record_columns!(),
    " FROM unnest($1::integer[], $2::bigint[]) WITH ORDINALITY AS u(part, seq, i) ",
    "JOIN hydra_rs_token t ON t.part = u.part AND t.seq = u.seq WHERE ",
    live!()
);

pub(crate) const DELETE_TOKEN: &str = "DELETE FROM hydra_rs_token WHERE part = $1 AND seq = $2";

/// Takes the next block of `$2` numbers of partition `$1`; returns its first number.
pub(crate) const SEQ_BLOCK: &str = "INSERT INTO hydra_rs_seq AS s (part, next) VALUES ($1, 1 + $2::bigint) \
     ON CONFLICT (part) DO UPDATE SET next = s.next + $2 RETURNING s.next - $2";

/// Records flow `$14` of partition `$13` (started `$15`, naming record `$16`) and, only if it was
/// new, its code; neither when a row already stored under one of the numbers may not be
/// replaced (see [`replaceable`]).
pub(crate) const ISSUE_CODE: &str = concat!(
    "WITH f AS (INSERT INTO hydra_rs_flow (part, key, started, seq) SELECT $13, $14, $15, $16 ",
    "WHERE NOT EXISTS (SELECT 1 FROM unnest($1::integer[], $2::bigint[], $3::smallint[], $4::bytea[], ",
    "$6::bytea[]) AS u(part, seq, kind, signature, client_id) ",
    "JOIN hydra_rs_token t ON t.part = u.part AND t.seq = u.seq WHERE NOT (",
    replaceable!("u"),
    ")) ON CONFLICT DO NOTHING RETURNING 1) ",
    insert_tokens!("WHERE EXISTS (SELECT 1 FROM f)", replaceable)
);

pub(crate) const REDEEM: &str = exchange!("");

/// As [`REDEEM`], and deletes the family's access tokens when the refresh token was spent.
pub(crate) const ROTATE: &str = exchange!(
    // The family as a scalar subquery, so the family index answers (a join with `s` let the
    // planner scan the whole partition by its primary key when its statistics were young).
    "d AS (DELETE FROM hydra_rs_token x WHERE x.part = $13 AND x.family = (SELECT family FROM s) AND x.kind = 0), "
);

/// A token that was not spent: its kind and family, if it exists (and is not revoked).
pub(crate) const PRESENTED: &str = concat!(
    "SELECT t.kind, t.family FROM hydra_rs_token t WHERE t.part = $1 AND t.seq = $2 AND t.signature = $3 AND ",
    live!()
);

/// Revokes family `$2` of partition `$1`: its marker (so what a concurrent rotation commits later
/// is revoked too), and its live rows deleted.
pub(crate) const REVOKE_FAMILY: &str = "WITH m AS (INSERT INTO hydra_rs_revoked (part, family, at) \
     VALUES ($1, $2, extract(epoch FROM now())::bigint) ON CONFLICT DO NOTHING) \
     DELETE FROM hydra_rs_token WHERE part = $1 AND family = $2 AND kind IN (0, 1, 2)";

/// The janitor's step over the family markers of partition `$1`: drops those older than `$2`
/// whose family has no rows left (an hour's margin is far beyond any transaction in flight).
pub(crate) const SWEEP_REVOKED: &str = "DELETE FROM hydra_rs_revoked r WHERE r.part = $1 AND r.at < $2 \
     AND NOT EXISTS (SELECT 1 FROM hydra_rs_token t WHERE t.part = r.part AND t.family = r.family)";

pub(crate) const FLOW_USED: &str = "SELECT 1 FROM hydra_rs_flow WHERE part = $1 AND key = $2";

pub(crate) const FLOW_GRANT: &str = "SELECT seq FROM hydra_rs_flow WHERE part = $1 AND key = $2";

pub(crate) const MARK_FLOW: &str =
    "INSERT INTO hydra_rs_flow (part, key, started) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";

pub(crate) const PUT_LOGIN: &str = "INSERT INTO hydra_rs_login (subject, sid, auth_time, expires_at, idp_session) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (subject, sid) DO UPDATE \
     SET auth_time = excluded.auth_time, expires_at = excluded.expires_at, idp_session = excluded.idp_session";

pub(crate) const GET_LOGIN: &str =
    "SELECT auth_time, expires_at, idp_session FROM hydra_rs_login WHERE subject = $1 AND sid = $2";

/// Session ids are 128 random bits: at most one row in practice; the newest if not.
pub(crate) const FIND_LOGIN: &str =
    "SELECT subject, auth_time, expires_at, idp_session FROM hydra_rs_login WHERE sid = $1 ORDER BY expires_at DESC LIMIT 1";

pub(crate) const DELETE_LOGIN: &str = "DELETE FROM hydra_rs_login WHERE sid = $1";

pub(crate) const DELETE_LOGINS: &str = "DELETE FROM hydra_rs_login WHERE subject = $1";

/// A consent decision `$1`–`$6`; also the pair's latest when `$7` (remembered).
pub(crate) const PUT_CONSENT: &str = "WITH c AS (INSERT INTO hydra_rs_consent \
     (subject, client_id, flow_id, grant_part, grant_family, body) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (subject, client_id, flow_id) DO UPDATE SET grant_part = excluded.grant_part, \
     grant_family = excluded.grant_family, body = excluded.body) \
     INSERT INTO hydra_rs_consent_latest (subject, client_id, flow_id, grant_part, grant_family, body) \
     SELECT $1, $2, $3, $4, $5, $6 WHERE $7 \
     ON CONFLICT (subject, client_id) DO UPDATE SET flow_id = excluded.flow_id, \
     grant_part = excluded.grant_part, grant_family = excluded.grant_family, body = excluded.body";

pub(crate) const LATEST_CONSENT: &str =
    "SELECT body FROM hydra_rs_consent_latest WHERE subject = $1 AND client_id = $2";

pub(crate) const LIST_CONSENTS: &str =
    "SELECT body FROM hydra_rs_consent WHERE subject = $1 ORDER BY client_id, flow_id";

/// Forgets the consents of subject `$1` (for client `$2`, or all) and deletes their grants'
/// live tokens, in one statement; returns how many grants (distinct flows).
pub(crate) const REVOKE_CONSENTS: &str = "WITH \
     c AS (DELETE FROM hydra_rs_consent WHERE subject = $1 AND ($2::bytea IS NULL OR client_id = $2) \
           RETURNING flow_id, grant_part, grant_family), \
     l AS (DELETE FROM hydra_rs_consent_latest WHERE subject = $1 AND ($2::bytea IS NULL OR client_id = $2) \
           RETURNING flow_id, grant_part, grant_family), \
     g AS (SELECT DISTINCT ON (flow_id) flow_id, grant_part, grant_family \
           FROM (SELECT * FROM c UNION ALL SELECT * FROM l) x), \
     m AS (INSERT INTO hydra_rs_revoked (part, family, at) \
           SELECT DISTINCT grant_part, grant_family, extract(epoch FROM now())::bigint FROM g ON CONFLICT DO NOTHING), \
     d AS (DELETE FROM hydra_rs_token t WHERE (t.part, t.family) IN (SELECT grant_part, grant_family FROM g) \
           AND t.kind IN (0, 1, 2)) \
     SELECT count(*) FROM g";

pub(crate) const LOAD_CLIENTS: &str = "SELECT id, body FROM hydra_rs_client ORDER BY id";

pub(crate) const GET_CLIENT: &str = "SELECT body FROM hydra_rs_client WHERE id = $1";

/// First statement of every meta write: takes the next feed version. The row lock it takes is
/// held until commit, so meta writes commit in version order.
pub(crate) const NEXT_VERSION: &str =
    "UPDATE hydra_rs_counter SET value = value + 1 WHERE name = 'version' RETURNING value";

pub(crate) const CLIENT_FOR_UPDATE: &str = "SELECT body FROM hydra_rs_client WHERE id = $1 FOR UPDATE";

pub(crate) const PUT_CLIENT: &str =
    "INSERT INTO hydra_rs_client (id, body) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET body = excluded.body";

pub(crate) const DELETE_CLIENT: &str = "DELETE FROM hydra_rs_client WHERE id = $1";

/// Revokes every token of client `$1` written until now.
pub(crate) const BUMP_EPOCH: &str = "INSERT INTO hydra_rs_epoch AS e (client_id, epoch) VALUES ($1, 1) \
     ON CONFLICT (client_id) DO UPDATE SET epoch = e.epoch + 1";

/// Appends change `$2` of kind `$3` (n-th `$4` of its version) under version `$1`.
pub(crate) const APPEND_CHANGE: &str = "INSERT INTO hydra_rs_change (version, n, kind, name) VALUES ($1, $2, $3, $4)";

/// Forgets the changes up to version `$1` (the feed keeps the newest ones).
pub(crate) const PRUNE_CHANGES: &str = "WITH d AS (DELETE FROM hydra_rs_change WHERE version <= $1) \
     UPDATE hydra_rs_counter SET value = greatest(value, $1) WHERE name = 'pruned'";

/// The feed after version `$1`: the newest version and the pruned one on every row, then each
/// change (none: one row of NULL changes).
pub(crate) const CHANGES: &str = "SELECT v.value, p.value, c.version, c.kind, c.name \
     FROM (SELECT value FROM hydra_rs_counter WHERE name = 'version') v \
     CROSS JOIN (SELECT value FROM hydra_rs_counter WHERE name = 'pruned') p \
     LEFT JOIN hydra_rs_change c ON c.version > $1 AND c.version <= v.value \
     ORDER BY c.version, c.n";

pub(crate) const LOAD_KEYS: &str = "SELECT set_name, kid, created, sealed FROM hydra_rs_key ORDER BY set_name, kid";

pub(crate) const KEY_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM hydra_rs_key WHERE set_name = $1 AND kid = $2)";

pub(crate) const SET_HAS_KEYS: &str = "SELECT EXISTS (SELECT 1 FROM hydra_rs_key WHERE set_name = $1)";

pub(crate) const PUT_KEY: &str = "INSERT INTO hydra_rs_key (set_name, kid, created, sealed) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (set_name, kid) DO UPDATE SET created = excluded.created, sealed = excluded.sealed";

pub(crate) const DELETE_SET: &str = "DELETE FROM hydra_rs_key WHERE set_name = $1";

pub(crate) const DELETE_KEY: &str = "DELETE FROM hydra_rs_key WHERE set_name = $1 AND kid = $2";

/// The recorded partition count, recorded as `$1` by the first node: one row always, also for a
/// node that raced the first (an upsert waits for the other insert and then returns its row,
/// where `DO NOTHING` and a read in the same snapshot returned none).
pub(crate) const PARTITIONS: &str = "INSERT INTO hydra_rs_counter (name, value) VALUES ('partitions', $1) \
     ON CONFLICT (name) DO UPDATE SET value = hydra_rs_counter.value RETURNING value";

/// One janitor step over the tokens of partition `$1` after number `$2`, at most `$3` rows:
/// deletes those that ended before `$4` (access tokens at most `$5` seconds after issue,
/// refresh tokens and their spent markers `$6`, when given; device authorizations and unexchanged
/// codes `$7` seconds after expiry; spent codes only once their grant has no access or refresh token left) or that
/// their client's epoch revoked. Returns rows examined, rows deleted, the last number examined.
pub(crate) const SWEEP_TOKENS: &str = concat!(
    "WITH w AS (SELECT seq FROM hydra_rs_token WHERE part = $1 AND seq > $2 ORDER BY seq LIMIT $3), ",
    "d AS (DELETE FROM hydra_rs_token t USING w WHERE t.part = $1 AND t.seq = w.seq AND (",
    "((CASE WHEN t.kind = 0 AND $5::bigint IS NOT NULL THEN least(t.expires_at, t.issued_at + $5) ",
    "WHEN t.kind IN (1, 4) AND $6::bigint IS NOT NULL THEN least(t.expires_at, t.issued_at + $6) ",
    "WHEN t.kind IN (2, 5) THEN t.expires_at + $7::bigint ",
    "ELSE t.expires_at END) <= $4 ",
    // A spent code stays while its grant has access or refresh tokens: userinfo reads the
    // grant's claims from it (as `rows::kept_for_its_grant` on the embedded store).
    "AND NOT (t.kind = 3 AND EXISTS (SELECT 1 FROM hydra_rs_token g ",
    "WHERE g.part = t.part AND g.family = t.family AND g.kind IN (0, 1)))) OR NOT (",
    live!(),
    ")) RETURNING 1) ",
    "SELECT (SELECT count(*) FROM w), (SELECT count(*) FROM d), (SELECT max(seq) FROM w)"
);

/// One janitor step over the flow markers of partition `$1` after key `$2`, at most `$3`:
/// deletes those of flows started before `$4`.
pub(crate) const SWEEP_FLOWS: &str = "WITH \
     w AS (SELECT key FROM hydra_rs_flow WHERE part = $1 AND ($2::bytea IS NULL OR key > $2) ORDER BY key LIMIT $3), \
     d AS (DELETE FROM hydra_rs_flow f USING w WHERE f.part = $1 AND f.key = w.key AND f.started < $4 RETURNING 1) \
     SELECT (SELECT count(*) FROM w), (SELECT count(*) FROM d), (SELECT key FROM w ORDER BY key DESC LIMIT 1)";

/// One janitor step over login sessions after (subject, sid) `($1, $2)`, at most `$3`: deletes
/// those that expired at or before `$4`.
pub(crate) const SWEEP_LOGINS: &str = "WITH \
     w AS (SELECT subject, sid FROM hydra_rs_login WHERE ($1::bytea IS NULL OR (subject, sid) > ($1, $2)) \
           ORDER BY subject, sid LIMIT $3), \
     d AS (DELETE FROM hydra_rs_login l USING w WHERE l.subject = w.subject AND l.sid = w.sid \
           AND l.expires_at <= $4 RETURNING 1), \
     k AS (SELECT subject, sid FROM w ORDER BY subject DESC, sid DESC LIMIT 1) \
     SELECT (SELECT count(*) FROM w), (SELECT count(*) FROM d), (SELECT subject FROM k), (SELECT sid FROM k)";

pub(crate) const PING: &str = "SELECT 1";

/// Takes or renews lease `$1` for holder `$2` for `$3` seconds unless another holder's lease
/// has not run out; a row comes back when `$2` holds it. Times are the database's clock, so
/// the nodes' clocks do not matter.
pub(crate) const LEASE: &str = "INSERT INTO hydra_rs_lease AS l (name, holder, until) \
     VALUES ($1, $2, extract(epoch FROM clock_timestamp())::bigint + $3) \
     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
     WHERE l.holder = excluded.holder OR l.until <= extract(epoch FROM clock_timestamp())::bigint RETURNING 1";
