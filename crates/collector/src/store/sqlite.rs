//! The SQLite store: one file, one writer thread (ingest and retention) and one reader
//! connection (pages, API, metrics); WAL lets them work at the same time. synchronous=FULL: an
//! agent is acknowledged only once its report would survive a power cut, not just a crash.
//!
//! Group commit: the writer takes every insert that is waiting (up to MAX_BATCH), runs each in
//! its own savepoint inside one transaction, commits once, then answers them all. One fsync
//! then covers many reports, which is what lets a single file keep up with thousands of agents;
//! a report that fails rolls back only its savepoint.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::oneshot;

use super::{
    CHANGES_SHOWN, CodeHolder, FleetCounts, FleetFilter, InstanceDetail, InstanceRow, NewReport,
    RECENT_SHOWN, ReportDetail, ReportRow, SILENT_FACTOR, Stored, is_silent, lines,
};
use crate::error::StoreError;

/// Most inserts one commit covers: bounds the time the first of them waits for the others.
const MAX_BATCH: usize = 256;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS reports (
    report_id     TEXT PRIMARY KEY,
    received_at   INTEGER NOT NULL,  -- Unix ms, the collector's clock
    started_at    INTEGER NOT NULL,  -- Unix ms, the agent's clock
    instance_key  TEXT NOT NULL,     -- instance id, else "host:<hostname>"
    instance_id   TEXT,
    hostname      TEXT,
    account       TEXT,
    region        TEXT,
    vpc_id        TEXT,
    subnet_id     TEXT,
    az            TEXT,
    status        TEXT NOT NULL,     -- healthy | problems
    exit_code     INTEGER NOT NULL,
    summary       TEXT NOT NULL,
    root_causes   TEXT NOT NULL,     -- "CODE target" per root cause, one per line
    path_kinds    TEXT NOT NULL,     -- "target=kind" per target, one per line
    token_label   TEXT NOT NULL,
    tool_version  TEXT NOT NULL,
    changed       INTEGER NOT NULL   -- verdict or root causes differ from the previous report
);
CREATE INDEX IF NOT EXISTS reports_by_instance ON reports(instance_key, started_at);
CREATE INDEX IF NOT EXISTS reports_by_received ON reports(received_at);
-- The JSON bodies, in a table of their own: deleting a row frees its pages for the next body,
-- where setting a column of the (small) report row to NULL left the page mostly empty.
CREATE TABLE IF NOT EXISTS bodies (
    report_id TEXT PRIMARY KEY REFERENCES reports(report_id) ON DELETE CASCADE,
    json      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS findings (
    report_id TEXT NOT NULL REFERENCES reports(report_id) ON DELETE CASCADE,
    code      TEXT NOT NULL,
    target    TEXT NOT NULL,
    severity  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS findings_by_report ON findings(report_id);
CREATE INDEX IF NOT EXISTS findings_by_code ON findings(code);
CREATE TABLE IF NOT EXISTS instances (
    instance_key     TEXT PRIMARY KEY,
    latest_report    TEXT NOT NULL,
    latest_started   INTEGER NOT NULL,
    first_received   INTEGER NOT NULL,
    last_received    INTEGER NOT NULL,
    interval_ms      INTEGER,          -- smoothed gap between started_at of successive reports
    reports          INTEGER NOT NULL
);
"#;

fn open(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

enum Job {
    Insert(
        Box<NewReport>,
        i64,
        oneshot::Sender<Result<Stored, StoreError>>,
    ),
    Retention(i64, oneshot::Sender<Result<u64, StoreError>>),
}

enum Done {
    Inserted(Stored),
    Deleted(u64),
}

#[derive(Clone)]
pub struct SqliteStore {
    writer: mpsc::Sender<Job>,
    reader: Arc<Mutex<Connection>>,
    path: std::path::PathBuf,
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let mut writer = open(path)?;
        writer.execute_batch(SCHEMA)?;
        let reader = open(path)?;
        // The fleet views read one latest report per instance, scattered over the file: map it
        // and cache more than SQLite's default 2 MB so that they are memory reads.
        reader.pragma_update(None, "mmap_size", 1i64 << 30)?;
        reader.pragma_update(None, "cache_size", -65536i64)?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(&mut writer, &rx))
            .map_err(|e| StoreError::Task(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            writer: tx,
            reader: Arc::new(Mutex::new(reader)),
            path: path.to_path_buf(),
        })
    }

    /// The database file: the S3 pull keeps its own tables in it, on a connection of its own.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An extra connection to the file, set up as the store's (WAL, busy timeout).
    pub fn connect(&self) -> Result<Connection, StoreError> {
        Ok(open(&self.path)?)
    }

    pub async fn timeline(
        &self,
        key: String,
        only_changes: bool,
        limit: i64,
    ) -> Result<Vec<ReportRow>, StoreError> {
        self.read(move |c| timeline(c, &key, only_changes, limit))
            .await
    }

    /// Runs `f` on a blocking thread with the reader connection.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        let conn = self.reader.clone();
        tokio::task::spawn_blocking(move || f(&lock(&conn)))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
            .map_err(StoreError::from)
    }

    pub async fn insert(&self, report: NewReport, now_ms: i64) -> Result<Stored, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(Job::Insert(Box::new(report), now_ms, tx))
            .map_err(|_| writer_gone())?;
        rx.await.map_err(|_| writer_gone())?
    }

    pub async fn apply_retention(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(Job::Retention(cutoff_ms, tx))
            .map_err(|_| writer_gone())?;
        rx.await.map_err(|_| writer_gone())?
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(()))).await
    }

    pub async fn fleet(
        &self,
        filter: FleetFilter,
        now_ms: i64,
    ) -> Result<(Vec<InstanceRow>, FleetCounts), StoreError> {
        self.read(move |c| Ok((fleet(c, &filter, now_ms)?, counts(c, now_ms)?)))
            .await
    }

    pub async fn counts(&self, now_ms: i64) -> Result<FleetCounts, StoreError> {
        self.read(move |c| counts(c, now_ms)).await
    }

    pub async fn instance(
        &self,
        key: String,
        now_ms: i64,
    ) -> Result<Option<InstanceDetail>, StoreError> {
        self.read(move |c| {
            let Some(i) = instance(c, &key, now_ms)? else {
                return Ok(None);
            };
            let changes = timeline(c, &key, true, CHANGES_SHOWN)?;
            let recent = timeline(c, &key, false, RECENT_SHOWN)?;
            Ok(Some((i, changes, recent)))
        })
        .await
    }

    pub async fn code_holders(
        &self,
        code: String,
        now_ms: i64,
    ) -> Result<Vec<CodeHolder>, StoreError> {
        self.read(move |c| code_holders(c, &code, now_ms)).await
    }

    pub async fn report(&self, id: String) -> Result<Option<ReportDetail>, StoreError> {
        self.read(move |c| {
            let Some((row, body)) = report(c, &id)? else {
                return Ok(None);
            };
            Ok(Some((row, body, findings_of(c, &id)?)))
        })
        .await
    }
}

fn writer_gone() -> StoreError {
    StoreError::Task("the SQLite writer thread stopped".into())
}

/// The writer thread: waits for a job, takes every job queued behind it, runs them in one
/// transaction and answers each once the commit is done.
fn write_loop(conn: &mut Connection, jobs: &mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let outcomes = run_batch(conn, &batch);
        for (job, outcome) in batch.into_iter().zip(outcomes) {
            match (job, outcome) {
                (Job::Insert(_, _, reply), Ok(Done::Inserted(s))) => {
                    let _ = reply.send(Ok(s));
                }
                (Job::Retention(_, reply), Ok(Done::Deleted(n))) => {
                    let _ = reply.send(Ok(n));
                }
                (Job::Insert(_, _, reply), Err(e)) => {
                    let _ = reply.send(Err(e));
                }
                (Job::Retention(_, reply), Err(e)) => {
                    let _ = reply.send(Err(e));
                }
                (Job::Insert(_, _, reply), Ok(Done::Deleted(_))) => {
                    let _ = reply.send(Err(StoreError::Task("mixed-up batch".into())));
                }
                (Job::Retention(_, reply), Ok(Done::Inserted(_))) => {
                    let _ = reply.send(Err(StoreError::Task("mixed-up batch".into())));
                }
            }
        }
    }
}

/// One outcome per job, in order. A job that fails rolls back its own savepoint only; a failed
/// commit fails them all (nothing of the batch is stored).
fn run_batch(conn: &mut Connection, batch: &[Job]) -> Vec<Result<Done, StoreError>> {
    let mut outcomes: Vec<Result<Done, StoreError>> = Vec::with_capacity(batch.len());
    let committed = (|| -> rusqlite::Result<()> {
        // IMMEDIATE takes the write lock up front, waiting (busy timeout) for the S3 pull's
        // connection to finish. A deferred transaction reads first, and when it then upgrades
        // to write after the other connection committed, SQLite answers "database is locked"
        // at once, without waiting: a report refused under an ordinary concurrent pull.
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for job in batch {
            let sp = tx.savepoint()?;
            let done = match job {
                Job::Insert(r, now_ms, _) => insert_in(&sp, r, *now_ms).map(Done::Inserted),
                Job::Retention(cutoff_ms, _) => {
                    retention_in(&sp, *cutoff_ms).map(|n| Done::Deleted(n as u64))
                }
            };
            match done {
                Ok(d) => {
                    sp.commit()?;
                    outcomes.push(Ok(d));
                }
                // Dropping the savepoint rolls it back.
                Err(e) => outcomes.push(Err(StoreError::from(e))),
            }
        }
        tx.commit()
    })();
    match committed {
        Ok(()) => outcomes,
        Err(e) => batch
            .iter()
            .map(|_| Err(StoreError::Commit(e.to_string())))
            .collect(),
    }
}

const REPORT_COLUMNS: &str = "r.report_id, r.received_at, r.started_at, r.instance_key, r.instance_id, r.hostname, r.account, r.region, r.vpc_id, r.subnet_id, r.az, r.status, r.exit_code, r.summary, r.root_causes, r.path_kinds, r.token_label, r.tool_version, r.changed, EXISTS (SELECT 1 FROM bodies b WHERE b.report_id = r.report_id)";

fn report_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ReportRow> {
    Ok(ReportRow {
        report_id: row.get(0)?,
        received_at_ms: row.get(1)?,
        started_at_ms: row.get(2)?,
        instance_key: row.get(3)?,
        instance_id: row.get(4)?,
        hostname: row.get(5)?,
        account: row.get(6)?,
        region: row.get(7)?,
        vpc_id: row.get(8)?,
        subnet_id: row.get(9)?,
        az: row.get(10)?,
        status: row.get(11)?,
        exit_code: row.get(12)?,
        summary: row.get(13)?,
        root_causes: lines(row.get(14)?),
        path_kinds: lines(row.get(15)?),
        token_label: row.get(16)?,
        tool_version: row.get(17)?,
        changed: row.get(18)?,
        body_kept: row.get(19)?,
    })
}

fn instance_row(row: &rusqlite::Row<'_>, now_ms: i64) -> rusqlite::Result<InstanceRow> {
    let latest = report_row(row)?;
    let first_received_ms: i64 = row.get(20)?;
    let last_received_ms: i64 = row.get(21)?;
    let interval_ms: Option<i64> = row.get(22)?;
    let reports: i64 = row.get(23)?;
    let instance_key: String = row.get(24)?;
    let silent = is_silent(interval_ms, last_received_ms, now_ms);
    Ok(InstanceRow {
        instance_key,
        first_received_ms,
        last_received_ms,
        interval_ms,
        reports,
        silent,
        latest,
    })
}

/// Inside the batch's transaction: the report, its findings, the instance, and the previous
/// body dropped.
fn insert_in(tx: &Connection, r: &NewReport, now_ms: i64) -> rusqlite::Result<Stored> {
    let exists: Option<i64> = tx
        .query_row(
            "SELECT 1 FROM reports WHERE report_id = ?1",
            [&r.report_id],
            |row| row.get(0),
        )
        .optional()?;
    if exists.is_some() {
        return Ok(Stored::Duplicate);
    }
    let root_causes = r.root_causes.join("\n");
    // The report just before this one on the instance's own timeline (normally its latest).
    let prev: Option<(String, String, String, bool, i64)> = tx
        .query_row(
            "SELECT report_id, status, root_causes, changed, started_at FROM reports
             WHERE instance_key = ?1 AND started_at <= ?2
             ORDER BY started_at DESC, received_at DESC LIMIT 1",
            params![r.instance_key, r.started_at_ms],
            |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ))
            },
        )
        .optional()?;
    let later: Option<i64> = tx
        .query_row(
            "SELECT 1 FROM reports WHERE instance_key = ?1 AND started_at > ?2 LIMIT 1",
            params![r.instance_key, r.started_at_ms],
            |row| row.get(0),
        )
        .optional()?;
    let is_latest = later.is_none();
    let changed = prev
        .as_ref()
        .is_none_or(|(_, status, causes, _, _)| *status != r.status || *causes != root_causes);
    let keep_body = changed || is_latest;
    tx.execute(
        "INSERT INTO reports (report_id, received_at, started_at, instance_key, instance_id,
            hostname, account, region, vpc_id, subnet_id, az, status, exit_code, summary,
            root_causes, path_kinds, token_label, tool_version, changed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
        params![
            r.report_id,
            now_ms,
            r.started_at_ms,
            r.instance_key,
            r.instance_id,
            r.hostname,
            r.account,
            r.region,
            r.vpc_id,
            r.subnet_id,
            r.az,
            r.status,
            r.exit_code,
            r.summary,
            root_causes,
            r.path_kinds.join("\n"),
            r.token_label,
            r.tool_version,
            changed,
        ],
    )?;
    if keep_body {
        tx.execute(
            "INSERT INTO bodies (report_id, json) VALUES (?1, ?2)",
            params![r.report_id, r.body],
        )?;
    }
    {
        let mut add = tx.prepare_cached(
            "INSERT INTO findings (report_id, code, target, severity) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (code, target, severity) in &r.findings {
            add.execute(params![r.report_id, code, target, severity])?;
        }
    }
    if is_latest {
        if let Some((prev_id, _, _, false, _)) = &prev {
            tx.execute("DELETE FROM bodies WHERE report_id = ?1", [prev_id])?;
        }
        let gap = prev
            .as_ref()
            .map(|p| r.started_at_ms - p.4)
            .filter(|g| *g > 0);
        tx.execute(
            "INSERT INTO instances (instance_key, latest_report, latest_started, first_received,
                last_received, interval_ms, reports)
             VALUES (?1, ?2, ?3, ?4, ?4, ?5, 1)
             ON CONFLICT(instance_key) DO UPDATE SET
                latest_report = excluded.latest_report,
                latest_started = excluded.latest_started,
                last_received = excluded.last_received,
                -- a quarter of each new gap: one late report does not flag or unflag at once
                interval_ms = CASE
                    WHEN excluded.interval_ms IS NULL THEN instances.interval_ms
                    WHEN instances.interval_ms IS NULL THEN excluded.interval_ms
                    ELSE (3 * instances.interval_ms + excluded.interval_ms) / 4 END,
                reports = instances.reports + 1",
            params![r.instance_key, r.report_id, r.started_at_ms, now_ms, gap],
        )?;
    } else {
        tx.execute(
            "UPDATE instances SET reports = reports + 1, last_received = MAX(last_received, ?2)
             WHERE instance_key = ?1",
            params![r.instance_key, now_ms],
        )?;
    }
    Ok(Stored::New)
}

/// Deletes reports received before `cutoff_ms`, and instances silent since then. Returns the
/// number of reports deleted.
fn retention_in(tx: &Connection, cutoff_ms: i64) -> rusqlite::Result<usize> {
    tx.execute(
        "DELETE FROM instances WHERE last_received < ?1",
        [cutoff_ms],
    )?;
    // The latest report of an instance still listed stays, however old.
    let n = tx.execute(
        "DELETE FROM reports WHERE received_at < ?1
           AND report_id NOT IN (SELECT latest_report FROM instances)",
        [cutoff_ms],
    )?;
    Ok(n)
}

// CROSS JOIN: SQLite takes the instances as the outer loop, one primary-key lookup each, rather
// than whatever its planner prefers on a large history (a scan of every report).
const INSTANCE_SELECT: &str = "i.first_received, i.last_received, i.interval_ms, i.reports, i.instance_key FROM instances i CROSS JOIN reports r ON r.report_id = i.latest_report";

fn fleet(
    conn: &Connection,
    filter: &FleetFilter,
    now_ms: i64,
) -> rusqlite::Result<Vec<InstanceRow>> {
    let mut sql = format!("SELECT {REPORT_COLUMNS}, {INSTANCE_SELECT} WHERE 1=1");
    let mut args: Vec<String> = Vec::new();
    for (column, value) in [
        ("r.account", &filter.account),
        ("r.region", &filter.region),
        ("r.vpc_id", &filter.vpc),
        ("r.subnet_id", &filter.subnet),
    ] {
        if let Some(v) = value {
            args.push(v.clone());
            sql.push_str(&format!(" AND {column} = ?{}", args.len()));
        }
    }
    // `+f.code`: look the report's few findings up by report_id; an index on code would make
    // SQLite walk every finding with that code in the history for each instance (minutes on a
    // large fleet). Same in code_holders.
    if let Some(code) = &filter.code {
        args.push(code.clone());
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM findings f WHERE f.report_id = r.report_id AND +f.code = ?{})",
            args.len()
        ));
    }
    if let Some(v @ ("healthy" | "problems")) = filter.verdict.as_deref() {
        args.push(v.to_string());
        sql.push_str(&format!(" AND r.status = ?{}", args.len()));
    }
    sql.push_str(
        " ORDER BY r.account, r.region, r.vpc_id, r.subnet_id, r.status DESC, i.instance_key",
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |row| {
        instance_row(row, now_ms)
    })?;
    let mut out = Vec::new();
    for row in rows {
        let row = row?;
        if filter.verdict.as_deref() == Some("silent") && !row.silent {
            continue;
        }
        out.push(row);
    }
    Ok(out)
}

fn instance(conn: &Connection, key: &str, now_ms: i64) -> rusqlite::Result<Option<InstanceRow>> {
    conn.query_row(
        &format!("SELECT {REPORT_COLUMNS}, {INSTANCE_SELECT} WHERE i.instance_key = ?1"),
        [key],
        |row| instance_row(row, now_ms),
    )
    .optional()
}

/// The instance's reports, newest first; `only_changes` keeps the verdict changes.
fn timeline(
    conn: &Connection,
    key: &str,
    only_changes: bool,
    limit: i64,
) -> rusqlite::Result<Vec<ReportRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {REPORT_COLUMNS} FROM reports r WHERE r.instance_key = ?1 AND (?2 = 0 OR r.changed = 1)
         ORDER BY r.started_at DESC, r.received_at DESC LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![key, only_changes, limit], report_row)?;
    rows.collect()
}

fn report(conn: &Connection, id: &str) -> rusqlite::Result<Option<(ReportRow, Option<String>)>> {
    conn.query_row(
        &format!(
            "SELECT {REPORT_COLUMNS}, b.json FROM reports r
             LEFT JOIN bodies b ON b.report_id = r.report_id WHERE r.report_id = ?1"
        ),
        [id],
        |row| Ok((report_row(row)?, row.get(20)?)),
    )
    .optional()
}

/// (code, target, severity) of a report.
fn findings_of(conn: &Connection, id: &str) -> rusqlite::Result<Vec<(String, String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT code, target, severity FROM findings WHERE report_id = ?1 ORDER BY rowid",
    )?;
    let rows = stmt.query_map([id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
    rows.collect()
}

fn code_holders(conn: &Connection, code: &str, now_ms: i64) -> rusqlite::Result<Vec<CodeHolder>> {
    let filter = FleetFilter {
        code: Some(code.to_string()),
        ..FleetFilter::default()
    };
    let mut out = Vec::new();
    for instance in fleet(conn, &filter, now_ms)? {
        let mut targets = Vec::new();
        let mut severity = String::new();
        for (c, target, sev) in findings_of(conn, &instance.latest.report_id)? {
            if c == code {
                targets.push(target);
                severity = sev;
            }
        }
        // The first report after the last one without the code.
        let since_ms: i64 = conn.query_row(
            "SELECT MIN(r.started_at) FROM reports r
             WHERE r.instance_key = ?1 AND r.started_at > COALESCE((
                SELECT MAX(r2.started_at) FROM reports r2
                WHERE r2.instance_key = ?1 AND NOT EXISTS (
                    SELECT 1 FROM findings f WHERE f.report_id = r2.report_id AND +f.code = ?2)), -1)",
            params![instance.instance_key, code],
            |row| row.get::<_, Option<i64>>(0),
        )?
        .unwrap_or(instance.latest.started_at_ms);
        out.push(CodeHolder {
            instance,
            targets,
            severity,
            since_ms,
        });
    }
    Ok(out)
}

fn counts(conn: &Connection, now_ms: i64) -> rusqlite::Result<FleetCounts> {
    let mut by_status = Vec::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT r.status, COUNT(*) FROM instances i CROSS JOIN reports r ON r.report_id = i.latest_report GROUP BY r.status ORDER BY r.status",
        )?;
        for row in stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))? {
            by_status.push(row?);
        }
    }
    let mut by_code = Vec::new();
    {
        let mut stmt = conn.prepare_cached(
            // CROSS JOIN keeps instances as the outer loop: one index lookup per instance, where
            // the planner's own choice scanned every finding of the whole history.
            "SELECT f.code, COUNT(DISTINCT i.instance_key) FROM instances i
             CROSS JOIN findings f ON f.report_id = i.latest_report GROUP BY f.code ORDER BY f.code",
        )?;
        for row in stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))? {
            by_code.push(row?);
        }
    }
    let silent: i64 = conn.query_row(
        "SELECT COUNT(*) FROM instances WHERE interval_ms IS NOT NULL AND ?1 - last_received > interval_ms * ?2",
        params![now_ms, SILENT_FACTOR],
        |row| row.get(0),
    )?;
    Ok(FleetCounts {
        by_status,
        by_code,
        silent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str) -> NewReport {
        NewReport {
            report_id: id.into(),
            started_at_ms: 1_000,
            instance_key: "i-0123456789abcdef0".into(),
            instance_id: Some("i-0123456789abcdef0".into()),
            hostname: None,
            account: None,
            region: None,
            vpc_id: None,
            subnet_id: None,
            az: None,
            status: "healthy".into(),
            exit_code: 0,
            summary: "ok".into(),
            root_causes: Vec::new(),
            path_kinds: Vec::new(),
            token_label: "test".into(),
            tool_version: "0".into(),
            findings: Vec::new(),
            body: "{}".into(),
        }
    }

    /// The S3 pull writes on a connection of its own. A report that arrives while that
    /// connection holds the write lock, which it then commits, waits and is stored; a deferred
    /// transaction read first and was refused with "database is locked".
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_insert_waits_for_another_connections_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("c.db")).expect("open");
        let other = store.connect().expect("connect");
        other
            .execute_batch("CREATE TABLE other_writer (n INTEGER)")
            .expect("table");
        other
            .execute_batch("BEGIN IMMEDIATE; INSERT INTO other_writer VALUES (1)")
            .expect("write lock");
        let inserting = {
            let store = store.clone();
            tokio::spawn(async move { store.insert(report("r-1"), 2_000).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        other.execute_batch("COMMIT").expect("commit");
        let stored = inserting.await.expect("join");
        assert!(
            matches!(stored, Ok(Stored::New)),
            "the insert must wait for the other writer: {stored:?}"
        );
        let counted: i64 = other
            .query_row("SELECT count(*) FROM reports", [], |r| r.get(0))
            .expect("count");
        assert_eq!(counted, 1);
    }
}
