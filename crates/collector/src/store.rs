//! The store behind ingest and the pages: one interface, two implementations with the same
//! schema, summary columns, indexes and rules. SQLite (one file, the default) for a single
//! collector; PostgreSQL for several replicas behind a load balancer (RDS, Aurora).
//!
//! Rules both keep:
//! - a report is stored once per `report_id`: a second copy is a `Duplicate`, whichever replica
//!   stored the first;
//! - `insert` returns only after the commit (the agent's 2xx means the report is durable);
//! - bodies are bounded: the full JSON is kept for the latest report of each instance and for
//!   every report whose verdict or root causes differ from the instance's previous report; other
//!   reports keep only their summary row and findings;
//! - retention deletes reports received before the cutoff, except the latest of an instance
//!   still listed, and instances silent since the cutoff.

mod postgres;
mod postgres_target;
mod sqlite;

use serde::Serialize;

use crate::error::StoreError;

pub use postgres_target::PostgresTarget;

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

fn is_silent(interval_ms: Option<i64>, last_received_ms: i64, now_ms: i64) -> bool {
    interval_ms
        .is_some_and(|i| now_ms.saturating_sub(last_received_ms) > i.saturating_mul(SILENT_FACTOR))
}

fn lines(s: String) -> Vec<String> {
    s.lines().map(str::to_string).collect()
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

impl FleetFilter {
    /// (column, value) of the exact-match filters that are set, in a fixed order.
    fn columns(&self) -> Vec<(&'static str, &str)> {
        [
            ("r.account", &self.account),
            ("r.region", &self.region),
            ("r.vpc_id", &self.vpc),
            ("r.subnet_id", &self.subnet),
        ]
        .into_iter()
        .filter_map(|(c, v)| v.as_deref().map(|v| (c, v)))
        .collect()
    }

    /// The status a `verdict` filter selects in SQL (silent is decided after the query).
    fn status(&self) -> Option<&str> {
        match self.verdict.as_deref() {
            Some(v @ ("healthy" | "problems")) => Some(v),
            _ => None,
        }
    }
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

/// An instance's page: the instance, its verdict changes and its last reports, newest first.
pub type InstanceDetail = (InstanceRow, Vec<ReportRow>, Vec<ReportRow>);

/// A report's page: its row, its JSON when kept, and its (code, target, severity) findings.
pub type ReportDetail = (ReportRow, Option<String>, Vec<(String, String, String)>);

/// How many verdict changes and recent reports an instance's page shows.
pub const CHANGES_SHOWN: i64 = 50;
pub const RECENT_SHOWN: i64 = 30;

/// Where the reports live, as `--db` names it.
#[derive(Debug, Clone)]
pub enum Target {
    /// A SQLite file.
    Sqlite(std::path::PathBuf),
    Postgres(Box<PostgresTarget>),
}

impl Target {
    /// For logs and `check-config`: never the password.
    pub fn describe(&self) -> String {
        match self {
            Target::Sqlite(path) => format!("sqlite {}", path.display()),
            Target::Postgres(pg) => pg.describe(),
        }
    }
}

#[derive(Clone)]
pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PostgresStore),
}

impl Store {
    /// Opens the store and creates its tables and indexes when they are missing.
    pub async fn open(target: &Target) -> Result<Store, StoreError> {
        Ok(match target {
            Target::Sqlite(path) => Store::Sqlite(sqlite::SqliteStore::open(path)?),
            Target::Postgres(pg) => Store::Postgres(postgres::PostgresStore::open(pg).await?),
        })
    }

    /// Stores a report in one transaction and returns once it is committed.
    pub async fn insert(&self, report: NewReport, now_ms: i64) -> Result<Stored, StoreError> {
        match self {
            Store::Sqlite(s) => s.insert(report, now_ms).await,
            Store::Postgres(s) => s.insert(report, now_ms).await,
        }
    }

    /// Deletes reports received before `cutoff_ms` (and instances silent since then). Returns
    /// the number of reports deleted.
    pub async fn apply_retention(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.apply_retention(cutoff_ms).await,
            Store::Postgres(s) => s.apply_retention(cutoff_ms).await,
        }
    }

    /// The newest `limit` reports of an instance (only verdict changes with `only_changes`).
    pub async fn timeline(
        &self,
        key: String,
        only_changes: bool,
        limit: i64,
    ) -> Result<Vec<ReportRow>, StoreError> {
        match self {
            Store::Sqlite(s) => s.timeline(key, only_changes, limit).await,
            Store::Postgres(s) => s.timeline(key, only_changes, limit).await,
        }
    }

    /// The SQLite store, for what keeps its own tables in the same file (the S3 pull).
    pub fn sqlite(&self) -> Option<&sqlite::SqliteStore> {
        match self {
            Store::Sqlite(s) => Some(s),
            Store::Postgres(_) => None,
        }
    }

    /// The PostgreSQL store's pool, for what keeps its own tables in the same database.
    pub fn postgres_pool(&self) -> Option<&deadpool_postgres::Pool> {
        match self {
            Store::Sqlite(_) => None,
            Store::Postgres(s) => Some(s.pool()),
        }
    }

    /// The database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.ping().await,
            Store::Postgres(s) => s.ping().await,
        }
    }

    /// The instances the filter selects, and the fleet's counts.
    pub async fn fleet(
        &self,
        filter: FleetFilter,
        now_ms: i64,
    ) -> Result<(Vec<InstanceRow>, FleetCounts), StoreError> {
        match self {
            Store::Sqlite(s) => s.fleet(filter, now_ms).await,
            Store::Postgres(s) => s.fleet(filter, now_ms).await,
        }
    }

    pub async fn counts(&self, now_ms: i64) -> Result<FleetCounts, StoreError> {
        match self {
            Store::Sqlite(s) => s.counts(now_ms).await,
            Store::Postgres(s) => s.counts(now_ms).await,
        }
    }

    pub async fn instance(
        &self,
        key: String,
        now_ms: i64,
    ) -> Result<Option<InstanceDetail>, StoreError> {
        match self {
            Store::Sqlite(s) => s.instance(key, now_ms).await,
            Store::Postgres(s) => s.instance(key, now_ms).await,
        }
    }

    pub async fn code_holders(
        &self,
        code: String,
        now_ms: i64,
    ) -> Result<Vec<CodeHolder>, StoreError> {
        match self {
            Store::Sqlite(s) => s.code_holders(code, now_ms).await,
            Store::Postgres(s) => s.code_holders(code, now_ms).await,
        }
    }

    pub async fn report(&self, id: String) -> Result<Option<ReportDetail>, StoreError> {
        match self {
            Store::Sqlite(s) => s.report(id).await,
            Store::Postgres(s) => s.report(id).await,
        }
    }
}
