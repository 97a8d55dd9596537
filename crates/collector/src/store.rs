//! SQLite storage. One writer connection (ingest and retention) and one reader connection
//! (pages, API, metrics); WAL lets them work at the same time. synchronous=FULL: an agent is
//! acknowledged only once its report would survive a power cut, not just a crash.
//!
//! Bodies are bounded: the full JSON is kept for the latest report of each instance and for
//! every report whose verdict or root causes differ from the instance's previous report; other
//! reports keep only their summary row and findings.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::error::StoreError;

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

/// What ingest extracted from a report: the columns, the findings and the body.
#[derive(Debug, Clone)]
pub struct NewReport {
    pub report_id: String,
    pub started_at_ms: i64,
    pub instance_key: String,
    pub instance_id: Option<String>,
    pub hostname: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    pub az: Option<String>,
    pub status: String,
    pub exit_code: i64,
    pub summary: String,
    pub root_causes: Vec<String>,
    pub path_kinds: Vec<String>,
    pub token_label: String,
    pub tool_version: String,
    /// (code, target, severity)
    pub findings: Vec<(String, String, String)>,
    pub body: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    New,
    Duplicate,
}

#[derive(Clone)]
pub struct Store {
    writer: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
}

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

/// Rows of a report as the pages show them.
#[derive(Debug, Clone, Serialize)]
pub struct ReportRow {
    pub report_id: String,
    pub received_at_ms: i64,
    pub started_at_ms: i64,
    pub instance_key: String,
    pub instance_id: Option<String>,
    pub hostname: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    pub az: Option<String>,
    pub status: String,
    pub exit_code: i64,
    pub summary: String,
    pub root_causes: Vec<String>,
    pub path_kinds: Vec<String>,
    pub token_label: String,
    pub tool_version: String,
    pub changed: bool,
    pub body_kept: bool,
}

const REPORT_COLUMNS: &str = "r.report_id, r.received_at, r.started_at, r.instance_key, r.instance_id, r.hostname, r.account, r.region, r.vpc_id, r.subnet_id, r.az, r.status, r.exit_code, r.summary, r.root_causes, r.path_kinds, r.token_label, r.tool_version, r.changed, EXISTS (SELECT 1 FROM bodies b WHERE b.report_id = r.report_id)";

fn lines(s: String) -> Vec<String> {
    s.lines().map(str::to_string).collect()
}

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

/// An instance with its latest report.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceRow {
    pub instance_key: String,
    pub first_received_ms: i64,
    pub last_received_ms: i64,
    pub interval_ms: Option<i64>,
    pub reports: i64,
    pub silent: bool,
    pub latest: ReportRow,
}

/// Silent: no report for more than this many usual intervals.
pub const SILENT_FACTOR: i64 = 3;

fn instance_row(row: &rusqlite::Row<'_>, now_ms: i64) -> rusqlite::Result<InstanceRow> {
    let latest = report_row(row)?;
    let first_received_ms: i64 = row.get(20)?;
    let last_received_ms: i64 = row.get(21)?;
    let interval_ms: Option<i64> = row.get(22)?;
    let reports: i64 = row.get(23)?;
    let instance_key: String = row.get(24)?;
    let silent = interval_ms
        .is_some_and(|i| now_ms.saturating_sub(last_received_ms) > i.saturating_mul(SILENT_FACTOR));
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

/// Which instances the fleet view shows; every field is an exact match when set.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FleetFilter {
    pub account: Option<String>,
    pub region: Option<String>,
    pub vpc: Option<String>,
    pub subnet: Option<String>,
    /// healthy | problems | silent
    pub verdict: Option<String>,
    /// A finding code in the latest report.
    pub code: Option<String>,
}

/// An instance that has a finding code in its latest report, and since when it has had it.
#[derive(Debug, Clone, Serialize)]
pub struct CodeHolder {
    pub instance: InstanceRow,
    pub targets: Vec<String>,
    pub severity: String,
    /// started_at of the first report of the current unbroken run of reports with the code.
    pub since_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FleetCounts {
    pub by_status: Vec<(String, i64)>,
    pub by_code: Vec<(String, i64)>,
    pub silent: i64,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let writer = open(path)?;
        writer.execute_batch(SCHEMA)?;
        let reader = open(path)?;
        Ok(Store {
            writer: Arc::new(Mutex::new(writer)),
            reader: Arc::new(Mutex::new(reader)),
        })
    }

    /// Runs `f` on a blocking thread with the writer or reader connection.
    pub async fn with<T, F>(&self, write: bool, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        let conn = if write {
            self.writer.clone()
        } else {
            self.reader.clone()
        };
        tokio::task::spawn_blocking(move || f(&mut lock(&conn)))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
            .map_err(StoreError::from)
    }

    pub async fn insert(&self, report: NewReport, now_ms: i64) -> Result<Stored, StoreError> {
        self.with(true, move |c| insert(c, &report, now_ms)).await
    }
}

/// One transaction: the report, its findings, the instance, and the previous body dropped.
pub fn insert(conn: &mut Connection, r: &NewReport, now_ms: i64) -> rusqlite::Result<Stored> {
    let tx = conn.transaction()?;
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
    tx.commit()?;
    Ok(Stored::New)
}

/// Deletes reports received before `cutoff_ms`, and instances silent since then. Returns the
/// number of reports deleted.
pub fn apply_retention(conn: &mut Connection, cutoff_ms: i64) -> rusqlite::Result<usize> {
    let tx = conn.transaction()?;
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
    tx.commit()?;
    Ok(n)
}

const INSTANCE_SELECT: &str = "i.first_received, i.last_received, i.interval_ms, i.reports, i.instance_key FROM instances i JOIN reports r ON r.report_id = i.latest_report";

pub fn fleet(
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
    if let Some(code) = &filter.code {
        args.push(code.clone());
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM findings f WHERE f.report_id = r.report_id AND f.code = ?{})",
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

pub fn instance(
    conn: &Connection,
    key: &str,
    now_ms: i64,
) -> rusqlite::Result<Option<InstanceRow>> {
    conn.query_row(
        &format!("SELECT {REPORT_COLUMNS}, {INSTANCE_SELECT} WHERE i.instance_key = ?1"),
        [key],
        |row| instance_row(row, now_ms),
    )
    .optional()
}

/// The instance's reports, newest first; `only_changes` keeps the verdict changes.
pub fn timeline(
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

pub fn report(
    conn: &Connection,
    id: &str,
) -> rusqlite::Result<Option<(ReportRow, Option<String>)>> {
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
pub fn findings_of(conn: &Connection, id: &str) -> rusqlite::Result<Vec<(String, String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT code, target, severity FROM findings WHERE report_id = ?1 ORDER BY rowid",
    )?;
    let rows = stmt.query_map([id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
    rows.collect()
}

pub fn code_holders(
    conn: &Connection,
    code: &str,
    now_ms: i64,
) -> rusqlite::Result<Vec<CodeHolder>> {
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
                    SELECT 1 FROM findings f WHERE f.report_id = r2.report_id AND f.code = ?2)), -1)",
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

pub fn counts(conn: &Connection, now_ms: i64) -> rusqlite::Result<FleetCounts> {
    let mut by_status = Vec::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT r.status, COUNT(*) FROM instances i JOIN reports r ON r.report_id = i.latest_report GROUP BY r.status",
        )?;
        for row in stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))? {
            by_status.push(row?);
        }
    }
    let mut by_code = Vec::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT f.code, COUNT(DISTINCT i.instance_key) FROM instances i
             JOIN findings f ON f.report_id = i.latest_report GROUP BY f.code ORDER BY f.code",
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
