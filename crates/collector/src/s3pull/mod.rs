//! Pulling reports from an S3 sink's prefix (`--pull-s3 s3://BUCKET/PREFIX/`, the `[s3_pull]`
//! table, `vpce-collector pull`). The agent's S3 sink writes
//! `PREFIX/YYYY/MM/DD/<instance>/<report_id>.json`; every object goes through the same checks
//! and the same store insert as `POST /v1/reports`, so a report that also arrived over HTTP is
//! stored once.
//!
//! Incremental: keys inside a day are ordered by instance and random report id, not by time,
//! so no key can serve as a cursor. What is remembered per location is the day the last
//! complete listing reached; a pass lists from that day with `StartAfter = PREFIX/YYYY/MM/DD`
//! (never the older history) and skips, without a GET, the keys whose report id is
//! already stored or that were refused before. Once an hour (and at the first pass of a
//! process) the listing reaches `lookback_days` back, for reports an agent's spool delivered
//! late into an older day prefix.

mod metrics;
mod settings;
mod state;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::error::DisplayErrorContext;
use prometheus_client::registry::Registry;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::ingest::{self, Refused};
use crate::store::{Store, Stored};
pub use metrics::PullMetrics;
use metrics::{label, label2};
pub use settings::{Location, PullFile, PullFlags, PullSettings};
use state::PullState;

/// How often a pass lists the whole lookback window instead of the current day.
const DEEP_EVERY: Duration = Duration::from_secs(3600);
/// A GET that fails this many passes in a row (not a refusal: a timeout, AccessDenied) is
/// given up, counted as refused `unreadable`, and never tried again.
const MAX_GET_ATTEMPTS: u32 = 5;

/// What one pass of one location did.
#[derive(Debug, Default, Clone)]
pub struct PassSummary {
    /// Keys listed (the `.json` objects of the window).
    pub listed: u64,
    /// GETs done.
    pub fetched: u64,
    pub stored: u64,
    pub duplicate: u64,
    pub refused: u64,
    pub errors: u64,
    /// The day (YYYY-MM-DD) the listing started at.
    pub from_day: String,
    /// Whether the whole window was listed (a failed listing leaves the state as it was).
    pub complete: bool,
}

impl fmt::Display for PassSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "from {}: listed {}, fetched {}, stored {}, duplicate {}, refused {}, errors {}{}",
            self.from_day,
            self.listed,
            self.fetched,
            self.stored,
            self.duplicate,
            self.refused,
            self.errors,
            if self.complete {
                ""
            } else {
                " (listing incomplete)"
            }
        )
    }
}

pub struct Puller {
    client: aws_sdk_s3::Client,
    store: Store,
    /// The pull's own tables (what was listed and handled), in the store's database; reports
    /// go through the store's insert.
    state: PullState,
    settings: PullSettings,
    metrics: PullMetrics,
    /// Failed GETs per key, in a row; forgotten when the key is handled.
    failures: tokio::sync::Mutex<HashMap<String, u32>>,
    /// The first pass of this process lists the whole lookback window.
    deep_done: std::sync::atomic::AtomicBool,
}

/// The SDK's chain (environment, profile, SSO, IMDS) with our timeouts; AWS_ENDPOINT_URL_S3
/// and AWS_ENDPOINT_URL are read by aws-config.
async fn client(settings: &PullSettings) -> Result<aws_sdk_s3::Client, String> {
    let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5).min(settings.timeout))
        .read_timeout(settings.timeout)
        .operation_attempt_timeout(settings.timeout)
        .operation_timeout(settings.timeout * 3)
        .build();
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(timeouts);
    if let Some(r) = &settings.region {
        loader = loader.region(aws_sdk_s3::config::Region::new(r.clone()));
    }
    let sdk = tokio::time::timeout(settings.timeout, loader.load())
        .await
        .map_err(|_| "loading the AWS configuration timed out".to_string())?;
    if sdk.region().is_none() {
        return Err(
            "no region for the S3 pull: set AWS_REGION, a profile region, or --pull-s3-region"
                .into(),
        );
    }
    let conf = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(settings.path_style)
        .build();
    Ok(aws_sdk_s3::Client::from_conf(conf))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Days since 1970-01-01 (UTC).
fn day_number(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

/// `YYYY-MM-DD` of a day number.
fn day_text(day: i64) -> String {
    let secs = u64::try_from(day.max(0)).unwrap_or(0) * 86_400;
    let t = UNIX_EPOCH + Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(t).to_string()[..10].to_string()
}

fn parse_day(text: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339(&format!("{text}T00:00:00Z")).ok()?;
    let secs = t.duration_since(UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs / 86_400).ok()
}

/// The first day a pass lists, and whether it is a deep pass (the whole lookback window).
/// `first_pass` is the first pass of this process.
fn window(
    state: Option<&State>,
    now_ms: i64,
    first_pass: bool,
    first_pull_days: u32,
    lookback_days: u32,
) -> (i64, bool) {
    let today = day_number(now_ms);
    let Some(s) = state else {
        return (today - i64::from(first_pull_days), true);
    };
    let deep = first_pass || now_ms.saturating_sub(s.deep_at_ms) >= DEEP_EVERY.as_millis() as i64;
    // The day the last complete listing reached, so the first pass after midnight still lists
    // yesterday; a later upload into an older day waits for a deep pass.
    let recent = s.listed_through.min(today);
    if deep {
        (recent.min(today - i64::from(lookback_days)), true)
    } else {
        (recent, false)
    }
}

/// The report id a key names: `.../<report_id>.json`.
fn key_report_id(key: &str) -> Option<&str> {
    key.rsplit('/').next()?.strip_suffix(".json")
}

struct State {
    listed_through: i64,
    deep_at_ms: i64,
}

/// One listed object to consider.
struct Listed {
    key: String,
    size: i64,
    last_modified_ms: Option<i64>,
}

enum Outcome {
    Stored {
        lag_secs: Option<f64>,
    },
    Duplicate,
    Refused(&'static str, String),
    /// Retried at the next pass.
    Failed(&'static str, String),
    /// Deleted between the listing and the GET: nothing to do.
    Gone,
}

impl Puller {
    pub async fn new(
        settings: PullSettings,
        store: Store,
        metrics: PullMetrics,
    ) -> Result<Puller, String> {
        let state = PullState::open(&store).await?;
        let client = client(&settings).await?;
        Ok(Puller {
            client,
            store,
            state,
            settings,
            metrics,
            failures: tokio::sync::Mutex::new(HashMap::new()),
            deep_done: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// One pass over every location, one log line each.
    pub async fn pass(self: &Arc<Self>) -> Vec<(String, PassSummary)> {
        let mut out = Vec::new();
        for location in self.settings.locations.clone() {
            let summary = self.pass_location(&location).await;
            let name = location.to_string();
            if summary.errors > 0 || !summary.complete {
                warn!(location = %name, "S3 pull: {summary}");
            } else if summary.fetched > 0 {
                info!(location = %name, "S3 pull: {summary}");
            }
            out.push((name, summary));
        }
        self.deep_done.store(true, Ordering::Relaxed);
        out
    }

    /// Runs a pass every interval, forever.
    pub async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.settings.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.pass().await;
        }
    }

    async fn load_state(&self, location: &str) -> Result<Option<State>, String> {
        Ok(self.state.load(location).await?.and_then(|saved| {
            parse_day(&saved.listed_through).map(|listed_through| State {
                listed_through,
                deep_at_ms: saved.deep_at_ms,
            })
        }))
    }

    async fn pass_location(self: &Arc<Self>, location: &Location) -> PassSummary {
        let name = location.to_string();
        let started_ms = now_ms();
        let today = day_number(started_ms);
        let mut summary = PassSummary::default();
        let state = match self.load_state(&name).await {
            Ok(s) => s,
            Err(e) => {
                warn!(location = %name, error = %e, "S3 pull: cannot read the pull state");
                self.metrics
                    .errors
                    .get_or_create(&label2(&name, "operation", "store"))
                    .inc();
                summary.errors += 1;
                return summary;
            }
        };
        let (from, deep) = window(
            state.as_ref(),
            started_ms,
            !self.deep_done.load(Ordering::Relaxed),
            self.settings.first_pull_days,
            self.settings.lookback_days,
        );
        summary.from_day = day_text(from);
        // Every key of day D sorts after "PREFIX/YYYY/MM/DD", every key of an earlier day before it.
        let start_after = format!("{}{}", location.prefix, summary.from_day.replace('-', "/"));
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&location.bucket)
            .prefix(&location.prefix)
            .start_after(start_after)
            .into_paginator()
            .send();
        let mut last_key: Option<String> = None;
        let mut lag: Option<f64> = None;
        summary.complete = true;
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    warn!(location = %name, "S3 pull: ListObjectsV2: {}", DisplayErrorContext(&e));
                    self.metrics
                        .errors
                        .get_or_create(&label2(&name, "operation", "list"))
                        .inc();
                    summary.errors += 1;
                    summary.complete = false;
                    break;
                }
            };
            let listed: Vec<Listed> = page
                .contents()
                .iter()
                .filter_map(|o| {
                    let key = o.key()?;
                    key.ends_with(".json").then(|| Listed {
                        key: key.to_string(),
                        size: o.size().unwrap_or(0),
                        last_modified_ms: o.last_modified().and_then(|t| t.to_millis().ok()),
                    })
                })
                .collect();
            summary.listed += listed.len() as u64;
            if let Some(k) = listed.last() {
                last_key = Some(k.key.clone());
            }
            let new = match self.not_yet_handled(&name, listed).await {
                Ok(n) => n,
                Err(e) => {
                    warn!(location = %name, error = %e, "S3 pull: database");
                    self.metrics
                        .errors
                        .get_or_create(&label2(&name, "operation", "store"))
                        .inc();
                    summary.errors += 1;
                    summary.complete = false;
                    break;
                }
            };
            let outcomes = self.fetch_all(location, new).await;
            for (key, fetched, outcome) in outcomes {
                if fetched {
                    summary.fetched += 1;
                }
                self.account(&name, &key, outcome, &mut summary, &mut lag)
                    .await;
            }
        }
        if let Some(l) = lag {
            self.metrics.lag.get_or_create(&label(&name)).set(l);
        }
        if summary.complete {
            let deep_at = if deep {
                started_ms
            } else {
                state.as_ref().map_or(started_ms, |s| s.deep_at_ms)
            };
            match self
                .save_state(&name, day_text(today), last_key, deep_at, started_ms)
                .await
            {
                Ok(()) => {
                    self.metrics
                        .last_success
                        .get_or_create(&label(&name))
                        .set(started_ms as f64 / 1000.0);
                }
                Err(e) => {
                    warn!(location = %name, error = %e, "S3 pull: cannot save the pull state");
                    summary.errors += 1;
                    summary.complete = false;
                }
            }
        }
        summary
    }

    /// After a complete listing: the day it reached, and the remembered keys it can no longer
    /// reach forgotten.
    async fn save_state(
        &self,
        location: &str,
        through: String,
        last_key: Option<String>,
        deep_at: i64,
        started_ms: i64,
    ) -> Result<(), String> {
        let forget_before = started_ms.saturating_sub(
            (i64::from(self.settings.first_pull_days) + 1).saturating_mul(86_400_000),
        );
        self.state
            .save(
                location,
                through,
                last_key,
                deep_at,
                forget_before,
                now_ms(),
            )
            .await
    }

    /// The listed keys that are neither stored (by the report id in their name) nor refused
    /// or stored under another id before.
    async fn not_yet_handled(
        &self,
        location: &str,
        listed: Vec<Listed>,
    ) -> Result<Vec<Listed>, String> {
        let keys = listed
            .iter()
            .map(|l| (l.key.clone(), key_report_id(&l.key).map(str::to_string)))
            .collect();
        let known = self.state.known(location, keys).await?;
        Ok(listed
            .into_iter()
            .zip(known)
            .filter(|(_, known)| !known)
            .map(|(l, _)| l)
            .collect())
    }

    /// GETs and stores `new` with at most `concurrency` requests at once.
    async fn fetch_all(
        self: &Arc<Self>,
        location: &Location,
        new: Vec<Listed>,
    ) -> Vec<(String, bool, Outcome)> {
        let permits = Arc::new(Semaphore::new(self.settings.concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        let mut out = Vec::new();
        for l in new {
            if u64::try_from(l.size).unwrap_or(0) > self.settings.max_body {
                let why = format!("{} bytes, more than max_body", l.size);
                out.push((l.key, false, Outcome::Refused("too_large", why)));
                continue;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let me = self.clone();
            let location = location.clone();
            tasks.spawn(async move {
                let outcome = me.fetch_one(&location, &l).await;
                drop(permit);
                (l.key, true, outcome)
            });
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(r) => out.push(r),
                Err(e) => warn!(error = %e, "S3 pull: a fetch task failed"),
            }
        }
        out
    }

    async fn fetch_one(&self, location: &Location, listed: &Listed) -> Outcome {
        let max = self.settings.max_body;
        let got = self
            .client
            .get_object()
            .bucket(&location.bucket)
            .key(&listed.key)
            .send()
            .await;
        let object = match got {
            Ok(o) => o,
            Err(e) => {
                if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                    return Outcome::Gone;
                }
                return Outcome::Failed("get", format!("GetObject: {}", DisplayErrorContext(&e)));
            }
        };
        if object
            .content_length()
            .is_some_and(|n| u64::try_from(n).unwrap_or(0) > max)
        {
            return Outcome::Refused("too_large", format!("larger than max_body {max} bytes"));
        }
        // The whole body within the operation's time (the SDK's timeouts end with the headers).
        let body = match tokio::time::timeout(self.settings.timeout, object.body.collect()).await {
            Ok(Ok(b)) => b.into_bytes(),
            Ok(Err(e)) => return Outcome::Failed("get", format!("reading the body: {e}")),
            Err(_) => {
                return Outcome::Failed(
                    "get",
                    format!(
                        "the body did not arrive within {} s",
                        self.settings.timeout.as_secs()
                    ),
                );
            }
        };
        if body.len() as u64 > max {
            return Outcome::Refused("too_large", format!("larger than max_body {max} bytes"));
        }
        // The sink writes plain JSON; a gzip object (another writer) is read as HTTP ingest would.
        let json = if body.starts_with(&[0x1f, 0x8b]) {
            match ingest::gunzip(body, max) {
                Ok(j) => j,
                Err(r) => return Outcome::Refused(r.reason(), r.to_string()),
            }
        } else {
            body.to_vec()
        };
        let label = location.to_string();
        let report = match ingest::parse(json, None, &label) {
            Ok(r) => r,
            Err(r) => return Outcome::Refused(r.reason(), r.to_string()),
        };
        let id = report.report_id.clone();
        let lag_secs = listed
            .last_modified_ms
            .map(|m| (now_ms().saturating_sub(m)).max(0) as f64 / 1000.0);
        match self.store.insert(report, now_ms()).await {
            Ok(stored) => {
                // A body whose report_id is not the one in its name: remember the key, or the
                // name would never find it stored.
                if key_report_id(&listed.key) != Some(id.as_str()) {
                    let (loc, key) = (label.clone(), listed.key.clone());
                    let outcome = format!("stored {id}");
                    if let Err(e) = self.remember(loc, key, outcome).await {
                        warn!(error = %e, "S3 pull: cannot remember a key");
                    }
                }
                match stored {
                    Stored::New => Outcome::Stored { lag_secs },
                    Stored::Duplicate => Outcome::Duplicate,
                }
            }
            Err(e) => Outcome::Failed("store", Refused::from(e).to_string()),
        }
    }

    async fn remember(&self, location: String, key: String, outcome: String) -> Result<(), String> {
        self.state.remember(location, key, outcome, now_ms()).await
    }

    async fn account(
        &self,
        location: &str,
        key: &str,
        outcome: Outcome,
        summary: &mut PassSummary,
        lag: &mut Option<f64>,
    ) {
        let object = format!("s3://{}/{key}", location_bucket(location));
        match outcome {
            Outcome::Stored { lag_secs } => {
                summary.stored += 1;
                self.metrics.pulled.get_or_create(&label(location)).inc();
                if let Some(l) = lag_secs {
                    *lag = Some(lag.map_or(l, |x: f64| x.max(l)));
                }
                self.failures.lock().await.remove(key);
            }
            Outcome::Duplicate => {
                summary.duplicate += 1;
                self.metrics.duplicate.get_or_create(&label(location)).inc();
                self.failures.lock().await.remove(key);
            }
            Outcome::Gone => {
                self.failures.lock().await.remove(key);
            }
            Outcome::Refused(reason, why) => {
                self.refuse(location, key, &object, reason, &why, summary)
                    .await;
            }
            Outcome::Failed(operation, why) => {
                summary.errors += 1;
                self.metrics
                    .errors
                    .get_or_create(&label2(location, "operation", operation))
                    .inc();
                let attempts = {
                    let mut failures = self.failures.lock().await;
                    let n = failures.entry(key.to_string()).or_insert(0);
                    *n += 1;
                    *n
                };
                if operation == "get" && attempts >= MAX_GET_ATTEMPTS {
                    let why = format!("{why} ({attempts} passes in a row)");
                    self.refuse(location, key, &object, "unreadable", &why, summary)
                        .await;
                } else {
                    warn!("S3 pull: {object}: {why} (retried at the next pass)");
                }
            }
        }
    }

    async fn refuse(
        &self,
        location: &str,
        key: &str,
        object: &str,
        reason: &'static str,
        why: &str,
        summary: &mut PassSummary,
    ) {
        summary.refused += 1;
        self.metrics
            .refused
            .get_or_create(&label2(location, "reason", reason))
            .inc();
        self.failures.lock().await.remove(key);
        // One line per object: it is remembered and never fetched again.
        warn!("S3 pull: {object} skipped for good: {why}");
        if let Err(e) = self
            .remember(
                location.to_string(),
                key.to_string(),
                format!("refused {reason}"),
            )
            .await
        {
            warn!(error = %e, "S3 pull: cannot remember a refused key");
        }
    }
}

fn location_bucket(location: &str) -> &str {
    location
        .strip_prefix("s3://")
        .and_then(|r| r.split('/').next())
        .unwrap_or(location)
}

/// `vpce-collector pull`: one pass, a line per location on stdout. Exit 0 when every location
/// was listed and every new object handled, 1 when something is left for the next pull.
pub async fn pull_once(settings: PullSettings, store: Store) -> Result<bool, String> {
    let mut registry = Registry::default();
    let metrics = PullMetrics::register(&mut registry);
    let started = Instant::now();
    let puller = Arc::new(Puller::new(settings, store, metrics).await?);
    let mut clean = true;
    for (location, summary) in puller.pass().await {
        clean &= summary.complete && summary.errors == 0;
        println!("{location} {summary}");
    }
    info!(
        took_ms = started.elapsed().as_millis() as u64,
        "S3 pull done"
    );
    Ok(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_starts_where_the_last_listing_reached() {
        let day = |t: &str| parse_day(t).expect("day");
        let at = |t: &str, hour: i64| day(t) * 86_400_000 + hour * 3_600_000;
        let state = |through: &str, deep_at: i64| State {
            listed_through: day(through),
            deep_at_ms: deep_at,
        };
        let minutes = |m: i64| m * 60_000;
        let ten_to_midnight = at("2026-12-03", 0) - minutes(10);
        // (state, now, first pass of the process) -> (first day listed, deep)
        let cases = [
            // Never pulled: back to the retention.
            (None, at("2026-12-02", 10), false, ("2026-11-02", true)),
            // A process's first pass: the lookback window.
            (
                Some(state("2026-12-02", at("2026-12-02", 10) - minutes(10))),
                at("2026-12-02", 10),
                true,
                ("2026-11-24", true),
            ),
            // Later passes of the day: today only.
            (
                Some(state("2026-12-02", at("2026-12-02", 10) - minutes(10))),
                at("2026-12-02", 10),
                false,
                ("2026-12-02", false),
            ),
            // The first pass after midnight still lists yesterday.
            (
                Some(state("2026-12-02", ten_to_midnight)),
                at("2026-12-03", 0),
                false,
                ("2026-12-02", false),
            ),
            // After a week down: from where the last listing reached, older than the lookback.
            (
                Some(state("2026-11-01", at("2026-11-01", 0))),
                at("2026-12-02", 10),
                false,
                ("2026-11-01", true),
            ),
            // An hour after the last deep pass: the lookback window again.
            (
                Some(state("2026-12-02", at("2026-12-02", 9))),
                at("2026-12-02", 10),
                false,
                ("2026-11-24", true),
            ),
        ];
        for (state, now, first_pass, (want_day, want_deep)) in cases {
            let (from, deep) = window(state.as_ref(), now, first_pass, 30, 8);
            assert_eq!(
                (day_text(from).as_str(), deep),
                (want_day, want_deep),
                "now {now}"
            );
        }
    }

    #[test]
    fn days_and_report_ids_come_from_the_layout() {
        let d = parse_day("2026-12-02").expect("day");
        assert_eq!(day_text(d), "2026-12-02");
        assert_eq!(day_text(d - 2), "2026-11-30");
        assert_eq!(
            day_number(1_764_633_600_000),
            parse_day("2025-12-02").expect("day")
        );
        assert_eq!(
            key_report_id("p/2026/12/02/i-1/5d0c8f52-6a4e.json"),
            Some("5d0c8f52-6a4e")
        );
        assert_eq!(key_report_id("p/2026/12/02/i-1/README"), None);
        // The listing's StartAfter sits between the day before and the day itself.
        let start_after = "p/2026/12/01";
        assert!("p/2026/11/30/i-9/z.json" < start_after);
        assert!("p/2026/12/01/i-0/0.json" > start_after);
    }
}
