//! The PostgreSQL store, for several collector replicas on one database (RDS, Aurora). The
//! tables, columns, indexes and rules are the SQLite store's (sqlite.rs); what differs is how
//! replicas stay correct together:
//! - an insert takes a transaction-scoped advisory lock on its instance, so two replicas
//!   storing reports of the same instance (or the same report twice) take turns: the second
//!   sees the first's committed row and answers Duplicate; `ON CONFLICT DO NOTHING` on
//!   report_id backs that up;
//! - retention runs on whichever replica gets a transaction-scoped advisory lock first; the
//!   others skip that round instead of deleting the same rows twice;
//! - the schema is created under an advisory lock, so replicas that start together do not
//!   race on `CREATE TABLE IF NOT EXISTS`.
//!
//! PostgreSQL's own group commit covers concurrent inserts from the pool's connections.
//! Every operation (taking a connection included) has a deadline; past it the agent gets 503.

use std::time::Duration;

use deadpool_postgres::{Pool, Transaction};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::postgres_target::PostgresTarget;
use super::{
    CHANGES_SHOWN, CodeHolder, FleetCounts, FleetFilter, InstanceDetail, InstanceRow, NewReport,
    RECENT_SHOWN, ReportDetail, ReportRow, SILENT_FACTOR, Stored, is_silent, lines,
};
use crate::error::StoreError;

const SCHEMA: &str = include_str!("postgres.sql");
/// Advisory lock keys (any two constants that nothing else on the database uses).
const SCHEMA_LOCK: i64 = 0x7670_6365_0001;
const RETENTION_LOCK: i64 = 0x7670_6365_0002;

/// Connections per replica: enough for PostgreSQL's group commit to gather many inserts.
pub const POOL_SIZE: usize = 16;
/// Deadline of one store operation, waiting for a connection included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
}

type Client = deadpool_postgres::Client;

fn pg_error(e: tokio_postgres::Error) -> StoreError {
    // The server's message (code and text) when there is one; else the driver's, with its cause.
    if let Some(db) = e.as_db_error() {
        return StoreError::Postgres(format!("{} ({})", db.message(), db.code().code()));
    }
    match std::error::Error::source(&e) {
        Some(cause) => StoreError::Postgres(format!("{e}: {cause}")),
        None => StoreError::Postgres(e.to_string()),
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg_error(e),
        other => StoreError::Postgres(other.to_string()),
    }
}

impl PostgresStore {
    pub async fn open(target: &PostgresTarget) -> Result<PostgresStore, StoreError> {
        let pool = target.pool(POOL_SIZE, OPERATION_TIMEOUT)?;
        let store = PostgresStore { pool };
        store.create_schema().await?;
        Ok(store)
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    async fn client(&self) -> Result<Client, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Runs one store operation under OPERATION_TIMEOUT.
    async fn timed<T>(
        &self,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(OPERATION_TIMEOUT, op)
            .await
            .map_err(|_| StoreError::Timeout(OPERATION_TIMEOUT.as_secs()))?
    }

    async fn create_schema(&self) -> Result<(), StoreError> {
        self.timed(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(pg_error)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
                .await
                .map_err(pg_error)?;
            tx.batch_execute(SCHEMA).await.map_err(pg_error)?;
            tx.commit().await.map_err(pg_error)
        })
        .await
    }

    pub async fn insert(&self, report: NewReport, now_ms: i64) -> Result<Stored, StoreError> {
        self.timed(async {
            let mut client = self.client().await?;
            insert(&mut client, &report, now_ms).await.map_err(pg_error)
        })
        .await
    }

    pub async fn apply_retention(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        self.timed(async {
            let mut client = self.client().await?;
            apply_retention(&mut client, cutoff_ms)
                .await
                .map_err(pg_error)
        })
        .await
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.timed(async {
            let client = self.client().await?;
            client.simple_query("SELECT 1").await.map_err(pg_error)?;
            Ok(())
        })
        .await
    }

    pub async fn fleet(
        &self,
        filter: FleetFilter,
        now_ms: i64,
    ) -> Result<(Vec<InstanceRow>, FleetCounts), StoreError> {
        self.timed(async {
            let client = self.client().await?;
            let rows = fleet(&client, &filter, now_ms).await.map_err(pg_error)?;
            let counts = counts(&client, now_ms).await.map_err(pg_error)?;
            Ok((rows, counts))
        })
        .await
    }

    pub async fn counts(&self, now_ms: i64) -> Result<FleetCounts, StoreError> {
        self.timed(async {
            let client = self.client().await?;
            counts(&client, now_ms).await.map_err(pg_error)
        })
        .await
    }

    pub async fn timeline(
        &self,
        key: String,
        only_changes: bool,
        limit: i64,
    ) -> Result<Vec<ReportRow>, StoreError> {
        self.timed(async {
            let client = self.client().await?;
            timeline(&client, &key, only_changes, limit)
                .await
                .map_err(pg_error)
        })
        .await
    }

    pub async fn instance(
        &self,
        key: String,
        now_ms: i64,
    ) -> Result<Option<InstanceDetail>, StoreError> {
        self.timed(async {
            let client = self.client().await?;
            let Some(i) = instance(&client, &key, now_ms).await.map_err(pg_error)? else {
                return Ok(None);
            };
            let changes = timeline(&client, &key, true, CHANGES_SHOWN)
                .await
                .map_err(pg_error)?;
            let recent = timeline(&client, &key, false, RECENT_SHOWN)
                .await
                .map_err(pg_error)?;
            Ok(Some((i, changes, recent)))
        })
        .await
    }

    pub async fn code_holders(
        &self,
        code: String,
        now_ms: i64,
    ) -> Result<Vec<CodeHolder>, StoreError> {
        self.timed(async {
            let client = self.client().await?;
            code_holders(&client, &code, now_ms).await.map_err(pg_error)
        })
        .await
    }

    pub async fn report(&self, id: String) -> Result<Option<ReportDetail>, StoreError> {
        self.timed(async {
            let client = self.client().await?;
            let Some((row, body)) = report(&client, &id).await.map_err(pg_error)? else {
                return Ok(None);
            };
            let findings = findings_of(&client, &id).await.map_err(pg_error)?;
            Ok(Some((row, body, findings)))
        })
        .await
    }
}

type PgResult<T> = Result<T, tokio_postgres::Error>;

/// One transaction: the report, its findings, the instance, and the previous body dropped.
async fn insert(client: &mut Client, r: &NewReport, now_ms: i64) -> PgResult<Stored> {
    let tx = client.transaction().await?;
    // Reports of one instance are stored one at a time across replicas: "previous" and
    // "latest" below then read what the other replicas committed.
    let lock = tx
        .prepare_cached("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .await?;
    tx.execute(&lock, &[&r.instance_key]).await?;
    let exists = tx
        .prepare_cached("SELECT 1 FROM reports WHERE report_id = $1")
        .await?;
    if tx.query_opt(&exists, &[&r.report_id]).await?.is_some() {
        tx.rollback().await?;
        return Ok(Stored::Duplicate);
    }
    let root_causes = r.root_causes.join("\n");
    let prev = previous_report(&tx, r).await?;
    let is_latest = is_latest(&tx, r).await?;
    let changed = prev
        .as_ref()
        .is_none_or(|p| p.status != r.status || p.root_causes != root_causes);
    if add_report_row(&tx, r, now_ms, &root_causes, changed).await? == 0 {
        // The same report_id with another instance key, stored meanwhile: still a duplicate.
        tx.rollback().await?;
        return Ok(Stored::Duplicate);
    }
    if changed || is_latest {
        let add_body = tx
            .prepare_cached("INSERT INTO bodies (report_id, json) VALUES ($1, $2)")
            .await?;
        tx.execute(&add_body, &[&r.report_id, &r.body]).await?;
    }
    add_findings(&tx, r).await?;
    if is_latest {
        make_latest(&tx, r, prev.as_ref(), now_ms).await?;
    } else {
        let count = tx
            .prepare_cached(
                "UPDATE instances SET reports = reports + 1,
                    last_received = GREATEST(last_received, $2)
                 WHERE instance_key = $1",
            )
            .await?;
        tx.execute(&count, &[&r.instance_key, &now_ms]).await?;
    }
    tx.commit().await?;
    Ok(Stored::New)
}

/// The report just before a new one on its instance's own timeline (normally its latest).
struct PreviousReport {
    report_id: String,
    status: String,
    root_causes: String,
    changed: bool,
    started_at_ms: i64,
}

async fn previous_report(tx: &Transaction<'_>, r: &NewReport) -> PgResult<Option<PreviousReport>> {
    let stmt = tx
        .prepare_cached(
            "SELECT report_id, status, root_causes, changed, started_at FROM reports
             WHERE instance_key = $1 AND started_at <= $2
             ORDER BY started_at DESC, received_at DESC LIMIT 1",
        )
        .await?;
    let Some(row) = tx
        .query_opt(&stmt, &[&r.instance_key, &r.started_at_ms])
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(PreviousReport {
        report_id: row.try_get(0)?,
        status: row.try_get(1)?,
        root_causes: row.try_get(2)?,
        changed: row.try_get(3)?,
        started_at_ms: row.try_get(4)?,
    }))
}

/// Whether no stored report of the instance started after this one (reports may arrive late).
async fn is_latest(tx: &Transaction<'_>, r: &NewReport) -> PgResult<bool> {
    let stmt = tx
        .prepare_cached("SELECT 1 FROM reports WHERE instance_key = $1 AND started_at > $2 LIMIT 1")
        .await?;
    Ok(tx
        .query_opt(&stmt, &[&r.instance_key, &r.started_at_ms])
        .await?
        .is_none())
}

/// The report's row; 0 when its report_id is already stored.
async fn add_report_row(
    tx: &Transaction<'_>,
    r: &NewReport,
    now_ms: i64,
    root_causes: &str,
    changed: bool,
) -> PgResult<u64> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO reports (report_id, received_at, started_at, instance_key, instance_id,
                hostname, account, region, vpc_id, subnet_id, az, status, exit_code, summary,
                root_causes, path_kinds, token_label, tool_version, changed)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
             ON CONFLICT (report_id) DO NOTHING",
        )
        .await?;
    let path_kinds = r.path_kinds.join("\n");
    tx.execute(
        &stmt,
        &[
            &r.report_id,
            &now_ms,
            &r.started_at_ms,
            &r.instance_key,
            &r.instance_id,
            &r.hostname,
            &r.account,
            &r.region,
            &r.vpc_id,
            &r.subnet_id,
            &r.az,
            &r.status,
            &r.exit_code,
            &r.summary,
            &root_causes,
            &path_kinds,
            &r.token_label,
            &r.tool_version,
            &changed,
        ],
    )
    .await
}

async fn add_findings(tx: &Transaction<'_>, r: &NewReport) -> PgResult<()> {
    if r.findings.is_empty() {
        return Ok(());
    }
    // One statement for all the findings, whatever their number.
    let stmt = tx
        .prepare_cached(
            "INSERT INTO findings (report_id, ord, code, target, severity)
             SELECT $1, f.ord, f.code, f.target, f.severity
             FROM UNNEST($2::int4[], $3::text[], $4::text[], $5::text[])
                AS f(ord, code, target, severity)",
        )
        .await?;
    let ords: Vec<i32> = (0..r.findings.len())
        .map(|n| i32::try_from(n).unwrap_or(i32::MAX))
        .collect();
    let codes: Vec<&str> = r.findings.iter().map(|f| f.0.as_str()).collect();
    let targets: Vec<&str> = r.findings.iter().map(|f| f.1.as_str()).collect();
    let severities: Vec<&str> = r.findings.iter().map(|f| f.2.as_str()).collect();
    tx.execute(&stmt, &[&r.report_id, &ords, &codes, &targets, &severities])
        .await?;
    Ok(())
}

/// Makes the report its instance's latest: the previous latest keeps its body only if it
/// changed something, and the instance row counts the report and learns the interval.
async fn make_latest(
    tx: &Transaction<'_>,
    r: &NewReport,
    prev: Option<&PreviousReport>,
    now_ms: i64,
) -> PgResult<()> {
    if let Some(p) = prev.filter(|p| !p.changed) {
        let drop_body = tx
            .prepare_cached("DELETE FROM bodies WHERE report_id = $1")
            .await?;
        tx.execute(&drop_body, &[&p.report_id]).await?;
    }
    let gap = prev
        .map(|p| r.started_at_ms - p.started_at_ms)
        .filter(|g| *g > 0);
    let upsert = tx
        .prepare_cached(
            "INSERT INTO instances (instance_key, latest_report, latest_started,
                first_received, last_received, interval_ms, reports)
             VALUES ($1, $2, $3, $4, $4, $5, 1)
             ON CONFLICT (instance_key) DO UPDATE SET
                latest_report = excluded.latest_report,
                latest_started = excluded.latest_started,
                last_received = excluded.last_received,
                -- a quarter of each new gap: one late report does not flag or unflag at once
                interval_ms = CASE
                    WHEN excluded.interval_ms IS NULL THEN instances.interval_ms
                    WHEN instances.interval_ms IS NULL THEN excluded.interval_ms
                    ELSE (3 * instances.interval_ms + excluded.interval_ms) / 4 END,
                reports = instances.reports + 1",
        )
        .await?;
    tx.execute(
        &upsert,
        &[
            &r.instance_key,
            &r.report_id,
            &r.started_at_ms,
            &now_ms,
            &gap,
        ],
    )
    .await?;
    Ok(())
}

/// Deletes reports received before `cutoff_ms`, and instances silent since then, on one
/// replica at a time (the others find the lock taken and skip this round).
async fn apply_retention(client: &mut Client, cutoff_ms: i64) -> PgResult<u64> {
    let tx = client.transaction().await?;
    let got: bool = tx
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&RETENTION_LOCK])
        .await?
        .try_get(0)?;
    if !got {
        tx.rollback().await?;
        return Ok(0);
    }
    tx.execute(
        "DELETE FROM instances WHERE last_received < $1",
        &[&cutoff_ms],
    )
    .await?;
    // The latest report of an instance still listed stays, however old.
    let n = tx
        .execute(
            "DELETE FROM reports WHERE received_at < $1
               AND report_id NOT IN (SELECT latest_report FROM instances)",
            &[&cutoff_ms],
        )
        .await?;
    tx.commit().await?;
    Ok(n)
}

const REPORT_COLUMNS: &str = "r.report_id, r.received_at, r.started_at, r.instance_key, r.instance_id, r.hostname, r.account, r.region, r.vpc_id, r.subnet_id, r.az, r.status, r.exit_code, r.summary, r.root_causes, r.path_kinds, r.token_label, r.tool_version, r.changed, EXISTS (SELECT 1 FROM bodies b WHERE b.report_id = r.report_id)";

const INSTANCE_SELECT: &str = "i.first_received, i.last_received, i.interval_ms, i.reports, i.instance_key FROM instances i JOIN reports r ON r.report_id = i.latest_report";

fn report_row(row: &Row) -> PgResult<ReportRow> {
    Ok(ReportRow {
        report_id: row.try_get(0)?,
        received_at_ms: row.try_get(1)?,
        started_at_ms: row.try_get(2)?,
        instance_key: row.try_get(3)?,
        instance_id: row.try_get(4)?,
        hostname: row.try_get(5)?,
        account: row.try_get(6)?,
        region: row.try_get(7)?,
        vpc_id: row.try_get(8)?,
        subnet_id: row.try_get(9)?,
        az: row.try_get(10)?,
        status: row.try_get(11)?,
        exit_code: row.try_get(12)?,
        summary: row.try_get(13)?,
        root_causes: lines(row.try_get(14)?),
        path_kinds: lines(row.try_get(15)?),
        token_label: row.try_get(16)?,
        tool_version: row.try_get(17)?,
        changed: row.try_get(18)?,
        body_kept: row.try_get(19)?,
    })
}

fn instance_row(row: &Row, now_ms: i64) -> PgResult<InstanceRow> {
    let latest = report_row(row)?;
    let last_received_ms: i64 = row.try_get(21)?;
    let interval_ms: Option<i64> = row.try_get(22)?;
    Ok(InstanceRow {
        instance_key: row.try_get(24)?,
        first_received_ms: row.try_get(20)?,
        last_received_ms,
        interval_ms,
        reports: row.try_get(23)?,
        silent: is_silent(interval_ms, last_received_ms, now_ms),
        latest,
    })
}

async fn fleet(client: &Client, filter: &FleetFilter, now_ms: i64) -> PgResult<Vec<InstanceRow>> {
    let mut sql = format!("SELECT {REPORT_COLUMNS}, {INSTANCE_SELECT} WHERE 1=1");
    let mut args: Vec<String> = Vec::new();
    for (column, value) in filter.columns() {
        args.push(value.to_string());
        sql.push_str(&format!(" AND {column} = ${}", args.len()));
    }
    if let Some(code) = &filter.code {
        args.push(code.clone());
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM findings f WHERE f.report_id = r.report_id AND f.code = ${})",
            args.len()
        ));
    }
    if let Some(status) = filter.status() {
        args.push(status.to_string());
        sql.push_str(&format!(" AND r.status = ${}", args.len()));
    }
    // NULLs sort first, as in SQLite, so both stores list the groups in the same order.
    sql.push_str(
        " ORDER BY r.account NULLS FIRST, r.region NULLS FIRST, r.vpc_id NULLS FIRST,
           r.subnet_id NULLS FIRST, r.status DESC, i.instance_key",
    );
    let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
    let stmt = client.prepare_cached(&sql).await?;
    let mut out = Vec::new();
    for row in client.query(&stmt, &params).await? {
        let row = instance_row(&row, now_ms)?;
        if filter.verdict.as_deref() == Some("silent") && !row.silent {
            continue;
        }
        out.push(row);
    }
    Ok(out)
}

async fn instance(client: &Client, key: &str, now_ms: i64) -> PgResult<Option<InstanceRow>> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {REPORT_COLUMNS}, {INSTANCE_SELECT} WHERE i.instance_key = $1"
        ))
        .await?;
    match client.query_opt(&stmt, &[&key]).await? {
        Some(row) => Ok(Some(instance_row(&row, now_ms)?)),
        None => Ok(None),
    }
}

/// The instance's reports, newest first; `only_changes` keeps the verdict changes.
async fn timeline(
    client: &Client,
    key: &str,
    only_changes: bool,
    limit: i64,
) -> PgResult<Vec<ReportRow>> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {REPORT_COLUMNS} FROM reports r
             WHERE r.instance_key = $1 AND (NOT $2::boolean OR r.changed)
             ORDER BY r.started_at DESC, r.received_at DESC LIMIT $3"
        ))
        .await?;
    client
        .query(&stmt, &[&key, &only_changes, &limit])
        .await?
        .iter()
        .map(report_row)
        .collect()
}

async fn report(client: &Client, id: &str) -> PgResult<Option<(ReportRow, Option<String>)>> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {REPORT_COLUMNS}, b.json FROM reports r
             LEFT JOIN bodies b ON b.report_id = r.report_id WHERE r.report_id = $1"
        ))
        .await?;
    match client.query_opt(&stmt, &[&id]).await? {
        Some(row) => Ok(Some((report_row(&row)?, row.try_get(20)?))),
        None => Ok(None),
    }
}

/// (code, target, severity) of a report, in the report's order.
async fn findings_of(client: &Client, id: &str) -> PgResult<Vec<(String, String, String)>> {
    let stmt = client
        .prepare_cached(
            "SELECT code, target, severity FROM findings WHERE report_id = $1 ORDER BY ord",
        )
        .await?;
    client
        .query(&stmt, &[&id])
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
        .collect()
}

async fn code_holders(client: &Client, code: &str, now_ms: i64) -> PgResult<Vec<CodeHolder>> {
    let filter = FleetFilter {
        code: Some(code.to_string()),
        ..FleetFilter::default()
    };
    let since_stmt = client
        .prepare_cached(
            "SELECT MIN(r.started_at) FROM reports r
             WHERE r.instance_key = $1 AND r.started_at > COALESCE((
                SELECT MAX(r2.started_at) FROM reports r2
                WHERE r2.instance_key = $1 AND NOT EXISTS (
                    SELECT 1 FROM findings f WHERE f.report_id = r2.report_id AND f.code = $2)), -1)",
        )
        .await?;
    let mut out = Vec::new();
    for instance in fleet(client, &filter, now_ms).await? {
        let mut targets = Vec::new();
        let mut severity = String::new();
        for (c, target, sev) in findings_of(client, &instance.latest.report_id).await? {
            if c == code {
                targets.push(target);
                severity = sev;
            }
        }
        // The first report after the last one without the code.
        let since_ms: i64 = client
            .query_one(&since_stmt, &[&instance.instance_key, &code])
            .await?
            .try_get::<_, Option<i64>>(0)?
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

async fn counts(client: &Client, now_ms: i64) -> PgResult<FleetCounts> {
    let by_status_stmt = client
        .prepare_cached(
            "SELECT r.status, COUNT(*) FROM instances i
             JOIN reports r ON r.report_id = i.latest_report GROUP BY r.status ORDER BY r.status",
        )
        .await?;
    let by_status = client
        .query(&by_status_stmt, &[])
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<PgResult<Vec<_>>>()?;
    let by_code_stmt = client
        .prepare_cached(
            // LATERAL: one index lookup per instance rather than a pass over every finding of
            // the whole history.
            "SELECT f.code, COUNT(DISTINCT i.instance_key) FROM instances i
             CROSS JOIN LATERAL (SELECT code FROM findings WHERE report_id = i.latest_report) f
             GROUP BY f.code ORDER BY f.code",
        )
        .await?;
    let by_code = client
        .query(&by_code_stmt, &[])
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<PgResult<Vec<_>>>()?;
    let silent_stmt = client
        .prepare_cached(
            "SELECT COUNT(*) FROM instances
             WHERE interval_ms IS NOT NULL AND $1::bigint - last_received > interval_ms * $2::bigint",
        )
        .await?;
    let silent: i64 = client
        .query_one(&silent_stmt, &[&now_ms, &SILENT_FACTOR])
        .await?
        .try_get(0)?;
    Ok(FleetCounts {
        by_status,
        by_code,
        silent,
    })
}
