//! What the S3 pull remembers between passes: per location, the day the last complete listing
//! reached; per key, objects refused for good or stored under another report id. It lives in
//! the store's own database: the SQLite file (on a connection of its own) or the PostgreSQL
//! database that every replica shares, so that replicas pulling the same prefix skip what any
//! of them handled (a report they both fetch is still stored once: the store's insert decides).

use std::sync::Arc;

use rusqlite::{OptionalExtension, params};

use crate::error::StoreError;
use crate::store::Store;

const SQLITE_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS s3_pull_state (
    location       TEXT PRIMARY KEY,  -- s3://bucket/prefix/
    listed_through TEXT NOT NULL,     -- YYYY-MM-DD (UTC) the last complete listing reached
    last_key       TEXT,              -- the greatest key of that listing
    deep_at        INTEGER NOT NULL,  -- Unix ms of the last listing of the whole lookback window
    updated_at     INTEGER NOT NULL
);
-- Keys that the report id in their name does not find in `reports`: objects refused (never
-- fetched again) and reports whose body's report_id differs from the name.
CREATE TABLE IF NOT EXISTS s3_pull_keys (
    location   TEXT NOT NULL,
    key        TEXT NOT NULL,
    outcome    TEXT NOT NULL,         -- "refused <reason>" or "stored <report_id>"
    handled_at INTEGER NOT NULL,
    PRIMARY KEY (location, key)
);
"#;

/// The same tables in PostgreSQL (BIGINT for the Unix milliseconds).
const POSTGRES_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS s3_pull_state (
    location       TEXT PRIMARY KEY,
    listed_through TEXT NOT NULL,
    last_key       TEXT,
    deep_at        BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS s3_pull_keys (
    location   TEXT NOT NULL,
    key        TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    handled_at BIGINT NOT NULL,
    PRIMARY KEY (location, key)
);
"#;

/// Advisory lock taken while the tables are created, so replicas that start together do not
/// race on `CREATE TABLE IF NOT EXISTS` (the store's own schema lock is another key).
const POSTGRES_SCHEMA_LOCK: i64 = 0x7670_6365_0003;

#[derive(Clone)]
pub enum PullState {
    Sqlite(Arc<std::sync::Mutex<rusqlite::Connection>>),
    Postgres(deadpool_postgres::Pool),
}

/// A location's row: the day (YYYY-MM-DD) the last complete listing reached, and when the
/// whole lookback window was last listed (Unix ms).
pub struct Saved {
    pub listed_through: String,
    pub deep_at_ms: i64,
}

fn pg(e: tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

impl PullState {
    /// Opens the state beside the store's reports and creates its tables when missing.
    pub async fn open(store: &Store) -> Result<PullState, String> {
        if let Some(pool) = store.postgres_pool() {
            let mut client = pool.get().await.map_err(|e| e.to_string())?;
            let tx = client.transaction().await.map_err(pg)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&POSTGRES_SCHEMA_LOCK])
                .await
                .map_err(pg)?;
            tx.batch_execute(POSTGRES_SCHEMA).await.map_err(pg)?;
            tx.commit().await.map_err(pg)?;
            return Ok(PullState::Postgres(pool.clone()));
        }
        let sqlite = store
            .sqlite()
            .ok_or("the S3 pull needs the store's database (SQLite or PostgreSQL)")?;
        let conn = sqlite
            .connect()
            .map_err(|e| format!("cannot open {}: {e}", sqlite.path().display()))?;
        conn.execute_batch(SQLITE_SCHEMA)
            .map_err(|e| format!("cannot prepare the S3 pull tables: {e}"))?;
        Ok(PullState::Sqlite(Arc::new(std::sync::Mutex::new(conn))))
    }

    /// Runs `f` on a blocking thread with the SQLite connection.
    async fn sqlite<T, F>(
        conn: &Arc<std::sync::Mutex<rusqlite::Connection>>,
        f: F,
    ) -> Result<T, String>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        let conn = conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()).to_string())?
        .map_err(|e| StoreError::from(e).to_string())
    }

    async fn pg_client(
        pool: &deadpool_postgres::Pool,
    ) -> Result<deadpool_postgres::Client, String> {
        pool.get().await.map_err(|e| e.to_string())
    }

    pub async fn load(&self, location: &str) -> Result<Option<Saved>, String> {
        let loc = location.to_string();
        let row = match self {
            PullState::Sqlite(conn) => {
                Self::sqlite(conn, move |c| {
                    c.query_row(
                        "SELECT listed_through, deep_at FROM s3_pull_state WHERE location = ?1",
                        [&loc],
                        |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)),
                    )
                    .optional()
                })
                .await?
            }
            PullState::Postgres(pool) => {
                let client = Self::pg_client(pool).await?;
                match client
                    .query_opt(
                        "SELECT listed_through, deep_at FROM s3_pull_state WHERE location = $1",
                        &[&loc],
                    )
                    .await
                    .map_err(pg)?
                {
                    Some(row) => Some((
                        row.try_get::<_, String>(0).map_err(pg)?,
                        row.try_get::<_, i64>(1).map_err(pg)?,
                    )),
                    None => None,
                }
            }
        };
        Ok(row.map(|(listed_through, deep_at_ms)| Saved {
            listed_through,
            deep_at_ms,
        }))
    }

    /// After a complete listing: the day it reached, and the remembered keys handled before
    /// `forget_before` (Unix ms: the listing can no longer reach them) forgotten.
    pub async fn save(
        &self,
        location: &str,
        through: String,
        last_key: Option<String>,
        deep_at: i64,
        forget_before: i64,
        now_ms: i64,
    ) -> Result<(), String> {
        let loc = location.to_string();
        match self {
            PullState::Sqlite(conn) => Self::sqlite(conn, move |c| {
                c.execute(
                    "DELETE FROM s3_pull_keys WHERE location = ?1 AND handled_at < ?2",
                    params![loc, forget_before],
                )?;
                c.execute(
                    "INSERT INTO s3_pull_state (location, listed_through, last_key, deep_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(location) DO UPDATE SET listed_through = excluded.listed_through,
                        last_key = COALESCE(excluded.last_key, s3_pull_state.last_key),
                        deep_at = excluded.deep_at, updated_at = excluded.updated_at",
                    params![loc, through, last_key, deep_at, now_ms],
                )
            })
            .await
            .map(|_| ()),
            PullState::Postgres(pool) => {
                let mut client = Self::pg_client(pool).await?;
                let tx = client.transaction().await.map_err(pg)?;
                tx.execute(
                    "DELETE FROM s3_pull_keys WHERE location = $1 AND handled_at < $2",
                    &[&loc, &forget_before],
                )
                .await
                .map_err(pg)?;
                tx.execute(
                    "INSERT INTO s3_pull_state (location, listed_through, last_key, deep_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (location) DO UPDATE SET listed_through = excluded.listed_through,
                        last_key = COALESCE(excluded.last_key, s3_pull_state.last_key),
                        deep_at = excluded.deep_at, updated_at = excluded.updated_at",
                    &[&loc, &through, &last_key, &deep_at, &now_ms],
                )
                .await
                .map_err(pg)?;
                tx.commit().await.map_err(pg)
            }
        }
    }

    /// Which of `keys` need no GET: their report id (`report_id_of`) is stored, or the key was
    /// refused or stored under another id before. Returns one flag per key, in order.
    pub async fn known(
        &self,
        location: &str,
        keys: Vec<(String, Option<String>)>,
    ) -> Result<Vec<bool>, String> {
        let loc = location.to_string();
        match self {
            PullState::Sqlite(conn) => {
                Self::sqlite(conn, move |c| {
                    let mut known_report =
                        c.prepare_cached("SELECT 1 FROM reports WHERE report_id = ?1")?;
                    let mut known_key = c.prepare_cached(
                        "SELECT 1 FROM s3_pull_keys WHERE location = ?1 AND key = ?2",
                    )?;
                    let mut out = Vec::with_capacity(keys.len());
                    for (key, report_id) in keys {
                        let stored = match &report_id {
                            Some(id) => known_report.exists([id])?,
                            None => false,
                        };
                        out.push(stored || known_key.exists(params![loc, key])?);
                    }
                    Ok(out)
                })
                .await
            }
            PullState::Postgres(pool) => {
                // One round trip for the whole listing, however long.
                let client = Self::pg_client(pool).await?;
                let (names, ids): (Vec<String>, Vec<Option<String>>) = keys.into_iter().unzip();
                let rows = client
                    .query(
                        "SELECT k.ord::int8,
                            EXISTS (SELECT 1 FROM reports r WHERE r.report_id = k.report_id)
                            OR EXISTS (SELECT 1 FROM s3_pull_keys p
                                       WHERE p.location = $1 AND p.key = k.key)
                         FROM UNNEST($2::text[], $3::text[]) WITH ORDINALITY AS k(key, report_id, ord)
                         ORDER BY k.ord",
                        &[&loc, &names, &ids],
                    )
                    .await
                    .map_err(pg)?;
                rows.iter()
                    .map(|row| row.try_get::<_, bool>(1).map_err(pg))
                    .collect()
            }
        }
    }

    /// Remembers a key that the report id in its name will not find: refused, or stored under
    /// another id.
    pub async fn remember(
        &self,
        location: String,
        key: String,
        outcome: String,
        now_ms: i64,
    ) -> Result<(), String> {
        match self {
            PullState::Sqlite(conn) => Self::sqlite(conn, move |c| {
                c.execute(
                    "INSERT OR REPLACE INTO s3_pull_keys (location, key, outcome, handled_at)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![location, key, outcome, now_ms],
                )
            })
            .await
            .map(|_| ()),
            PullState::Postgres(pool) => {
                let client = Self::pg_client(pool).await?;
                client
                    .execute(
                        "INSERT INTO s3_pull_keys (location, key, outcome, handled_at)
                         VALUES ($1, $2, $3, $4)
                         ON CONFLICT (location, key) DO UPDATE SET outcome = excluded.outcome,
                            handled_at = excluded.handled_at",
                        &[&location, &key, &outcome, &now_ms],
                    )
                    .await
                    .map(|_| ())
                    .map_err(pg)
            }
        }
    }
}
