//! The agent's Prometheus metrics (prometheus-client does the exposition format) and the
//! loopback HTTP endpoint that serves them (`/metrics`, `/healthz`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::{debug, warn};

use super::spool::SpoolStats;
use crate::report::{CheckStatus, Evidence, OverallStatus, Report};

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// The agent's version and the features it was built with.
fn register_build_info(registry: &mut Registry) {
    let features = if cfg!(feature = "control-plane") {
        "control-plane"
    } else {
        ""
    };
    registry.register(
        "build",
        "The agent's version and features",
        Info::new(labels(&[
            ("version", env!("CARGO_PKG_VERSION")),
            ("features", features),
        ])),
    );
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Every metric the agent exports. Cloning shares the values (they are Arc inside).
pub struct Metrics {
    registry: Registry,
    check_success: Family<Labels, Gauge>,
    phase_seconds: Family<Labels, FloatGauge>,
    findings: Family<Labels, Gauge>,
    path: Family<Labels, Gauge>,
    target_reachable: Family<Labels, Gauge>,
    hop_count: Family<Labels, Gauge>,
    healthy: Gauge,
    exit_code: Gauge,
    last_run_timestamp: FloatGauge,
    last_run_duration: FloatGauge,
    runs: Family<Labels, Counter>,
    shipped: Family<Labels, Counter>,
    ship_failures: Family<Labels, Counter>,
    spooled: Counter,
    dropped: Family<Labels, Counter>,
    dead_lettered: Family<Labels, Counter>,
    dead_letters_pruned: Family<Labels, Counter>,
    spool_skipped: Counter,
    spool_entries: Gauge,
    spool_bytes: Gauge,
    reloads: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("vpce_probe");
        let m = Metrics {
            registry: Registry::default(),
            check_success: Family::default(),
            phase_seconds: Family::default(),
            findings: Family::default(),
            path: Family::default(),
            target_reachable: Family::default(),
            hop_count: Family::default(),
            healthy: Gauge::default(),
            exit_code: Gauge::default(),
            last_run_timestamp: FloatGauge::default(),
            last_run_duration: FloatGauge::default(),
            runs: Family::default(),
            shipped: Family::default(),
            ship_failures: Family::default(),
            spooled: Counter::default(),
            dropped: Family::default(),
            dead_lettered: Family::default(),
            dead_letters_pruned: Family::default(),
            spool_skipped: Counter::default(),
            spool_entries: Gauge::default(),
            spool_bytes: Gauge::default(),
            reloads: Family::default(),
        };
        m.register_run_results(&mut registry);
        m.register_agent_operation(&mut registry);
        register_build_info(&mut registry);
        Metrics { registry, ..m }
    }

    /// What the last run found, and how the runs went.
    fn register_run_results(&self, registry: &mut Registry) {
        let m = self;
        registry.register(
            "check_success",
            "Whether the checks of one kind passed for a target in the last run (1) or failed (0); target \"host\" for instance-wide checks",
            m.check_success.clone(),
        );
        registry.register(
            "phase_duration_seconds",
            "Duration of a phase (dns, connect, tls, request) for a target in the last run; the slowest attempt that worked, else the slowest",
            m.phase_seconds.clone(),
        );
        registry.register(
            "findings",
            "Findings of the last run by code and severity",
            m.findings.clone(),
        );
        registry.register(
            "path",
            "The path each target's traffic takes (kind: gateway-endpoint, interface-endpoint, proxy, internet, unknown), 1 for the current one",
            m.path.clone(),
        );
        registry.register(
            "target_reachable",
            "Whether the target's service answered on TCP 443 in the last run",
            m.target_reachable.clone(),
        );
        registry.register(
            "hop_count",
            "The TTL at which a service address answered the hop check in the last run (1: nothing between the VPC router and the service), per target and address; target \"canary\" for the internet canary",
            m.hop_count.clone(),
        );
        registry.register(
            "healthy",
            "1 when the last run found no problem, else 0",
            m.healthy.clone(),
        );
        registry.register(
            "last_exit_code",
            "The exit code `vpce-probe probe` would have had for the last run (0 healthy, 1 problems, 3 failed)",
            m.exit_code.clone(),
        );
        registry.register(
            "last_run_timestamp_seconds",
            "When the last run finished (Unix time)",
            m.last_run_timestamp.clone(),
        );
        registry.register(
            "last_run_duration_seconds",
            "How long the last run took",
            m.last_run_duration.clone(),
        );
        registry.register(
            "runs",
            "Probe runs by result (healthy, problems, abandoned)",
            m.runs.clone(),
        );
    }

    /// The agent's own work: the sinks and the spool (what was kept, shipped, refused and
    /// dropped) and the configuration reloads.
    fn register_agent_operation(&self, registry: &mut Registry) {
        let m = self;
        registry.register(
            "reports_shipped",
            "Reports a sink acknowledged",
            m.shipped.clone(),
        );
        registry.register(
            "ship_failures",
            "Failed delivery attempts by sink (each is retried)",
            m.ship_failures.clone(),
        );
        registry.register(
            "reports_spooled",
            "Reports written to the spool",
            m.spooled.clone(),
        );
        registry.register(
            "reports_dropped",
            "Reports dropped from the spool before every sink had them, by reason (size, age, spool_error)",
            m.dropped.clone(),
        );
        registry.register(
            "reports_dead_lettered",
            "Reports a sink refused for good (a 4xx other than 401, 403, 404, 408 and 429), moved to the spool's dead-letter directory, by sink",
            m.dead_lettered.clone(),
        );
        registry.register(
            "dead_letters_pruned",
            "Dead letters deleted by the dead-letter directory's bounds, by reason (age, size)",
            m.dead_letters_pruned.clone(),
        );
        registry.register(
            "spool_skipped_files",
            "Files the spool skipped when opened: corrupt entries and files that are not the spool's (left in place)",
            m.spool_skipped.clone(),
        );
        registry.register(
            "spool_entries",
            "Reports in the spool now",
            m.spool_entries.clone(),
        );
        registry.register(
            "spool_bytes",
            "Bytes of the reports in the spool now",
            m.spool_bytes.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration reloads (SIGHUP) by result (ok, error)",
            m.reloads.clone(),
        );
    }

    /// Replaces the per-run metrics with those of `report`.
    pub fn record_run(&self, report: &Report) {
        self.check_success.clear();
        self.phase_seconds.clear();
        self.findings.clear();
        self.path.clear();
        self.target_reachable.clear();
        self.hop_count.clear();
        for ((target, address), hops) in hop_counts(report) {
            self.hop_count
                .get_or_create(&labels(&[("target", &target), ("address", &address)]))
                .set(i64::from(hops));
        }
        for t in &report.targets {
            self.path
                .get_or_create(&labels(&[
                    ("target", &t.id),
                    ("kind", t.path.kind.as_str()),
                    ("confidence", t.path.confidence.as_str()),
                ]))
                .set(1);
            self.target_reachable
                .get_or_create(&labels(&[("target", &t.id)]))
                .set(i64::from(t.path.reachable));
        }
        for ((target, check), statuses) in group_checks(report) {
            let passed = statuses.iter().all(|s| *s != CheckStatus::Fail);
            if statuses.iter().all(|s| *s == CheckStatus::Skip) {
                continue;
            }
            self.check_success
                .get_or_create(&labels(&[("target", &target), ("check", check)]))
                .set(i64::from(passed));
        }
        for ((target, phase), seconds) in phases(report) {
            self.phase_seconds
                .get_or_create(&labels(&[("target", &target), ("phase", phase)]))
                .set(seconds);
        }
        let mut counts: BTreeMap<(String, String), i64> = BTreeMap::new();
        for f in &report.findings {
            let severity = serde_json::to_value(f.severity)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            *counts.entry((f.code.to_string(), severity)).or_default() += 1;
        }
        for ((code, severity), n) in counts {
            self.findings
                .get_or_create(&labels(&[("code", &code), ("severity", &severity)]))
                .set(n);
        }
        let healthy = report.verdict.status == OverallStatus::Healthy;
        self.healthy.set(i64::from(healthy));
        self.exit_code.set(i64::from(report.verdict.exit_code));
        self.last_run_timestamp.set(unix_now());
        self.last_run_duration
            .set(report.duration_ms as f64 / 1000.0);
        let result = if healthy { "healthy" } else { "problems" };
        self.runs
            .get_or_create(&labels(&[("result", result)]))
            .inc();
    }

    pub fn run_abandoned(&self) {
        self.runs
            .get_or_create(&labels(&[("result", "abandoned")]))
            .inc();
    }

    pub fn shipped(&self, sink: &str) {
        self.shipped.get_or_create(&labels(&[("sink", sink)])).inc();
    }

    pub fn ship_failed(&self, sink: &str) {
        self.ship_failures
            .get_or_create(&labels(&[("sink", sink)]))
            .inc();
    }

    pub fn spooled(&self) {
        self.spooled.inc();
    }

    pub fn dropped(&self, reason: &str, n: u64) {
        if n > 0 {
            self.dropped
                .get_or_create(&labels(&[("reason", reason)]))
                .inc_by(n);
        }
    }

    pub fn dead_lettered(&self, sink: &str) {
        self.dead_lettered
            .get_or_create(&labels(&[("sink", sink)]))
            .inc();
    }

    /// What the spool's bounds deleted between two of its stats (of one open): reports dropped
    /// before every sink had them, and dead letters.
    pub fn spool_bounds(&self, before: &SpoolStats, after: &SpoolStats) {
        self.dropped("age", after.dropped_age.saturating_sub(before.dropped_age));
        self.dropped(
            "size",
            after.dropped_size.saturating_sub(before.dropped_size),
        );
        for (reason, n) in [
            (
                "age",
                after
                    .dead_letters_pruned_age
                    .saturating_sub(before.dead_letters_pruned_age),
            ),
            (
                "size",
                after
                    .dead_letters_pruned_size
                    .saturating_sub(before.dead_letters_pruned_size),
            ),
        ] {
            if n > 0 {
                self.dead_letters_pruned
                    .get_or_create(&labels(&[("reason", reason)]))
                    .inc_by(n);
            }
        }
    }

    /// Files an open of the spool skipped (each open counts its own).
    pub fn spool_skipped(&self, n: u64) {
        if n > 0 {
            self.spool_skipped.inc_by(n);
        }
    }

    pub fn spool_content(&self, entries: u64, bytes: u64) {
        self.spool_entries
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
        self.spool_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    pub fn reloaded(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.reloads
            .get_or_create(&labels(&[("result", result)]))
            .inc();
    }

    /// The Prometheus text format (0.0.4), or OpenMetrics when asked for it.
    pub fn encode(&self, openmetrics: bool) -> String {
        let mut out = String::new();
        let written = if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &self.registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        };
        if let Err(e) = written {
            warn!(error = %e, "cannot encode the metrics");
        }
        out
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The targets a check is about: by host name for the network checks, by target id for the
/// signed calls, "host" for everything instance-wide.
fn targets_of(report: &Report, evidence: &Evidence) -> Vec<String> {
    let by_name = |name: &str| -> Vec<String> {
        report
            .targets
            .iter()
            .filter(|t| {
                t.endpoint_names
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(name))
            })
            .map(|t| t.id.clone())
            .collect()
    };
    let found = match evidence {
        Evidence::Dns(d) => by_name(&d.name),
        Evidence::Tcp(t) => by_name(&t.name),
        Evidence::Tls(t) => by_name(&t.name),
        Evidence::Proxy(p) => by_name(&p.name),
        Evidence::Hops(h) if h.service.is_some() => by_name(&h.name),
        Evidence::Nacl(n) => report
            .targets
            .iter()
            .filter(|t| t.service == n.service)
            .map(|t| t.id.clone())
            .collect(),
        Evidence::Call(c) => report
            .targets
            .iter()
            .filter(|t| t.id == c.target || t.name == c.target)
            .map(|t| t.id.clone())
            .collect(),
        _ => Vec::new(),
    };
    if found.is_empty() {
        vec!["host".to_string()]
    } else {
        found
    }
}

fn group_checks(report: &Report) -> BTreeMap<(String, &'static str), Vec<CheckStatus>> {
    let mut groups: BTreeMap<(String, &'static str), Vec<CheckStatus>> = BTreeMap::new();
    for c in &report.checks {
        for target in targets_of(report, &c.evidence) {
            groups
                .entry((target, c.check.as_str()))
                .or_default()
                .push(c.status);
        }
    }
    groups
}

/// Per target and address: the TTL at which the address answered the hop check. An address
/// belongs to every target one of whose names connected to it (the trace ran once, for the
/// first name); the canary's is target "canary". Addresses that never answered are left out.
fn hop_counts(report: &Report) -> BTreeMap<(String, String), u8> {
    let mut out = BTreeMap::new();
    for c in &report.checks {
        let Evidence::Hops(h) = &c.evidence else {
            continue;
        };
        let Some(at) = h.answered_at else { continue };
        let targets: Vec<String> = match h.service {
            None => vec!["canary".to_string()],
            Some(_) => report
                .checks
                .iter()
                .filter_map(|o| match &o.evidence {
                    Evidence::Tcp(t) if t.address == h.address && t.port == h.port => {
                        Some(targets_of(report, &o.evidence))
                    }
                    _ => None,
                })
                .flatten()
                .collect(),
        };
        for target in targets {
            out.insert((target, h.address.clone()), at);
        }
    }
    out
}

/// Per target and phase: the slowest attempt that worked (what a client waits for), else the
/// slowest that did not (how long failing took).
fn phases(report: &Report) -> BTreeMap<(String, &'static str), f64> {
    let mut samples: BTreeMap<(String, &'static str), (Option<u64>, u64)> = BTreeMap::new();
    for c in &report.checks {
        let (phase, ms) = match &c.evidence {
            Evidence::Dns(d) if d.resolver == crate::report::ResolverKind::System => {
                ("dns", d.latency_ms)
            }
            Evidence::Tcp(t) => ("connect", t.connect_ms),
            Evidence::Tls(t) => ("tls", t.handshake_ms),
            Evidence::Call(call) => ("request", call.duration_ms),
            _ => continue,
        };
        let ok = c.status != CheckStatus::Fail;
        for target in targets_of(report, &c.evidence) {
            let entry = samples.entry((target, phase)).or_insert((None, 0));
            if ok {
                entry.0 = Some(entry.0.unwrap_or(0).max(ms));
            }
            entry.1 = entry.1.max(ms);
        }
    }
    samples
        .into_iter()
        .map(|(k, (ok, all))| (k, ok.unwrap_or(all) as f64 / 1000.0))
        .collect()
}

/// Liveness as `/healthz` and the watchdog see it: the schedule loop must come back by a time
/// it announces before each wait or run.
#[derive(Debug)]
pub struct Liveness {
    due_by: std::sync::Mutex<Instant>,
}

impl Liveness {
    pub fn new(first_due: Duration) -> Liveness {
        Liveness {
            due_by: std::sync::Mutex::new(crate::durations::after(Instant::now(), first_due)),
        }
    }

    /// The loop promises to be back within `within`.
    pub fn promise(&self, within: Duration) {
        if let Ok(mut d) = self.due_by.lock() {
            *d = crate::durations::after(Instant::now(), within);
        }
    }

    pub fn alive(&self) -> bool {
        self.due_by
            .lock()
            .map(|d| Instant::now() <= *d)
            .unwrap_or(false)
    }
}

/// What `/healthz` knows besides the schedule: since when each sink has been failing (and
/// why), and whether the last write to the spool failed.
#[derive(Debug)]
pub struct Health {
    unhealthy_after: std::sync::Mutex<Duration>,
    /// Sink name -> (failing since, last error).
    failing: std::sync::Mutex<BTreeMap<String, (Instant, String)>>,
    spool_error: std::sync::Mutex<Option<String>>,
}

impl Health {
    pub fn new(unhealthy_after: Duration) -> Health {
        Health {
            unhealthy_after: std::sync::Mutex::new(unhealthy_after),
            failing: std::sync::Mutex::new(BTreeMap::new()),
            spool_error: std::sync::Mutex::new(None),
        }
    }

    /// A reload: the new threshold, and only the sinks still configured.
    pub fn reconfigure(&self, unhealthy_after: Duration, sinks: &[String]) {
        if let Ok(mut u) = self.unhealthy_after.lock() {
            *u = unhealthy_after;
        }
        if let Ok(mut f) = self.failing.lock() {
            f.retain(|name, _| sinks.contains(name));
        }
    }

    /// A delivery attempt to `sink` failed (retryable); the first failure starts the clock.
    pub fn sink_failed(&self, sink: &str, error: &str) {
        if let Ok(mut f) = self.failing.lock() {
            let entry = f
                .entry(sink.to_string())
                .or_insert_with(|| (Instant::now(), String::new()));
            entry.1 = error.to_string();
        }
    }

    /// The sink answered (delivered, or refused one report for good): it works.
    pub fn sink_answered(&self, sink: &str) {
        if let Ok(mut f) = self.failing.lock() {
            f.remove(sink);
        }
    }

    /// The result of the last write to the spool.
    pub fn spool_written(&self, result: Result<(), &str>) {
        if let Ok(mut e) = self.spool_error.lock() {
            *e = result.err().map(str::to_string);
        }
    }

    /// Why the agent is unhealthy, in one line; `None` when it is not.
    pub fn problem(&self, now: Instant) -> Option<String> {
        if let Some(e) = self.spool_error.lock().ok().and_then(|e| e.clone()) {
            return Some(format!("the last spool write failed: {}", one_line(&e)));
        }
        let limit = self.unhealthy_after.lock().map(|u| *u).ok()?;
        let failing = self.failing.lock().ok()?;
        failing.iter().find_map(|(sink, (since, error))| {
            let for_how_long = now.saturating_duration_since(*since);
            (for_how_long > limit).then(|| {
                format!(
                    "sink {sink} has been failing for {} s (unhealthy_after {} s): {}",
                    for_how_long.as_secs(),
                    limit.as_secs_f64(),
                    one_line(error)
                )
            })
        })
    }
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Serves `/metrics` and `/healthz` until the task is dropped. Binding is done by the caller
/// (so that a taken port is a startup error, not a log line).
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    liveness: Arc<Liveness>,
    health: Arc<Health>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "metrics listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        let liveness = liveness.clone();
        let health = health.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let response = answer(&req, &metrics, &liveness, &health);
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            // A scrape never takes long; a client that holds the connection open is cut off.
            match tokio::time::timeout(Duration::from_secs(30), conn).await {
                Ok(Err(e)) => debug!(%peer, error = %e, "metrics connection"),
                Err(_) => debug!(%peer, "metrics connection timed out"),
                Ok(Ok(())) => {}
            }
        });
    }
}

fn answer(
    req: &Request<hyper::body::Incoming>,
    metrics: &Metrics,
    liveness: &Liveness,
    health: &Health,
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &str, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        r
    };
    if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        );
    }
    match req.uri().path() {
        "/metrics" => {
            let openmetrics = req
                .headers()
                .get(hyper::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("application/openmetrics-text"));
            let content_type = if openmetrics {
                "application/openmetrics-text; version=1.0.0; charset=utf-8"
            } else {
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE
            };
            reply(StatusCode::OK, content_type, metrics.encode(openmetrics))
        }
        "/healthz" => {
            if !liveness.alive() {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "the probe schedule is stuck\n".into(),
                )
            } else if let Some(why) = health.problem(Instant::now()) {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("{why}\n"),
                )
            } else {
                reply(StatusCode::OK, "text/plain", "ok\n".into())
            }
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "try /metrics or /healthz\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/agent.md's metrics table names exactly the registry's metrics with their types
    /// (its meanings say more than the HELP texts, so only names and types are compared).
    #[test]
    fn docs_metrics_table_names_every_registered_metric_with_its_type() {
        // A family without series is not encoded: give each one an (empty) series.
        let m = Metrics::new();
        for family in [
            &m.check_success,
            &m.findings,
            &m.path,
            &m.target_reachable,
            &m.hop_count,
        ] {
            let _ = family.get_or_create(&Labels::new());
        }
        let _ = m.phase_seconds.get_or_create(&Labels::new());
        for family in [
            &m.runs,
            &m.shipped,
            &m.ship_failures,
            &m.dropped,
            &m.dead_lettered,
            &m.dead_letters_pruned,
            &m.reloads,
        ] {
            let _ = family.get_or_create(&Labels::new());
        }
        let text = m.encode(false);
        let mut registered: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| {
                let (name, kind) = l.split_once(' ').expect("# TYPE name kind");
                // The samples' names: counters end in _total, info metrics in _info.
                let suffixed = |suffix: &str| {
                    if name.ends_with(suffix) {
                        name.to_string()
                    } else {
                        format!("{name}{suffix}")
                    }
                };
                match kind {
                    "counter" => (suffixed("_total"), kind.to_string()),
                    "info" => (suffixed("_info"), "gauge".to_string()),
                    _ => (name.to_string(), kind.to_string()),
                }
            })
            .collect();
        registered.sort();
        let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/agent.md"))
            .expect("docs/agent.md");
        let mut documented: Vec<(String, String)> = Vec::new();
        for row in docs.lines().filter(|l| l.starts_with("| `vpce_probe_")) {
            let cells: Vec<&str> = row.split(" | ").collect();
            for name in cells[0].split('`').filter(|n| n.starts_with("vpce_probe_")) {
                documented.push((name.to_string(), cells[1].trim().to_string()));
            }
        }
        documented.sort();
        let registrations = include_str!("metrics.rs")
            .matches(concat!("registry", ".register("))
            .count();
        assert_eq!(
            registered.len(),
            registrations,
            "a registered metric is missing from the encoding (a family this test does not fill?):\n{text}"
        );
        assert_eq!(
            documented, registered,
            "docs/agent.md's metrics table (left) differs from the registry (right)"
        );
    }

    #[test]
    fn health_turns_bad_after_the_threshold_and_good_on_an_answer() {
        let h = Health::new(Duration::from_secs(30));
        let now = Instant::now();
        assert_eq!(h.problem(now), None);
        h.sink_failed("collector", "the collector answered 500");
        assert_eq!(h.problem(now), None, "not yet past unhealthy_after");
        let later = now + Duration::from_secs(31);
        let why = h.problem(later).expect("unhealthy");
        assert!(
            why.contains("sink collector") && why.contains("500"),
            "{why}"
        );
        // A second failure does not restart the clock.
        h.sink_failed("collector", "no answer\nwithin 1000 ms");
        let why = h.problem(later).expect("still unhealthy");
        assert!(!why.contains('\n'), "one line: {why}");
        h.sink_answered("collector");
        assert_eq!(h.problem(later), None);
        h.sink_failed("gone", "x");
        h.reconfigure(Duration::from_secs(1), &["collector".to_string()]);
        assert_eq!(h.problem(later), None, "a sink that left is forgotten");
        h.spool_written(Err("disk full"));
        assert!(h.problem(now).expect("spool").contains("disk full"));
        h.spool_written(Ok(()));
        assert_eq!(h.problem(now), None);
    }
}
