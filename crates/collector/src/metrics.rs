//! /metrics: ingest counters and latency (updated as requests come), fleet gauges (computed
//! from the store at each scrape, so they never drift from what the pages show).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::store::FleetCounts;

type Labels = Vec<(String, String)>;

pub struct Metrics {
    registry: Registry,
    pub accepted: Counter,
    pub duplicates: Counter,
    refused: Family<Labels, Counter>,
    pub ingest_seconds: Histogram,
    instances: Family<Labels, Gauge>,
    with_finding: Family<Labels, Gauge>,
    silent: Gauge,
    /// Webhook events by result: delivered, failed (after the retries), dropped (queue full).
    pub webhook_events: Family<Labels, Counter>,
    /// Two scrapes at once would clear and refill the same families into each other.
    scrape: std::sync::Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("vpce_collector");
        let accepted = Counter::default();
        let duplicates = Counter::default();
        let refused = Family::<Labels, Counter>::default();
        // 1 ms to 5 s: a commit with synchronous=FULL is a few ms on a local disk.
        let ingest_seconds = Histogram::new([
            0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
        ]);
        let instances = Family::<Labels, Gauge>::default();
        let with_finding = Family::<Labels, Gauge>::default();
        let silent = Gauge::default();
        let webhook_events = Family::<Labels, Counter>::default();
        registry.register(
            "reports_accepted",
            "Reports stored (acknowledged after the commit)",
            accepted.clone(),
        );
        registry.register(
            "reports_duplicate",
            "Reports acknowledged again without storing: their report_id was already stored",
            duplicates.clone(),
        );
        registry.register(
            "reports_refused",
            "Requests refused, by reason",
            refused.clone(),
        );
        registry.register(
            "ingest_duration_seconds",
            "Time from the request's headers to the answer of POST /v1/reports",
            ingest_seconds.clone(),
        );
        registry.register(
            "instances",
            "Instances by the verdict of their latest report",
            instances.clone(),
        );
        registry.register(
            "instances_with_finding",
            "Instances whose latest report has the finding code",
            with_finding.clone(),
        );
        registry.register(
            "silent_instances",
            "Instances without a report for more than 3 times their usual interval",
            silent.clone(),
        );
        registry.register(
            "webhook_events",
            "Webhook events about verdict changes, by result: delivered, failed (after the retries), dropped (queue full)",
            webhook_events.clone(),
        );
        Metrics {
            registry,
            accepted,
            duplicates,
            refused,
            ingest_seconds,
            instances,
            with_finding,
            silent,
            webhook_events,
            scrape: std::sync::Mutex::new(()),
        }
    }

    /// For metrics that live with their feature (the S3 pull's), registered before serving.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    pub fn refused(&self, reason: &str) {
        self.refused
            .get_or_create(&vec![("reason".to_string(), reason.to_string())])
            .inc();
    }

    pub fn encode(&self, fleet: &FleetCounts, openmetrics: bool) -> String {
        let _one_at_a_time = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        self.instances.clear();
        for status in ["healthy", "problems"] {
            let n = fleet
                .by_status
                .iter()
                .find(|(s, _)| s == status)
                .map_or(0, |(_, n)| *n);
            self.instances
                .get_or_create(&vec![("verdict".to_string(), status.to_string())])
                .set(n);
        }
        // Codes that went away disappear from the exposition, as in the agent's metrics.
        self.with_finding.clear();
        for (code, n) in &fleet.by_code {
            self.with_finding
                .get_or_create(&vec![("code".to_string(), code.clone())])
                .set(*n);
        }
        self.silent.set(fleet.silent);
        let mut out = String::new();
        let written = if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &self.registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        };
        if let Err(e) = written {
            tracing::warn!(error = %e, "cannot encode the metrics");
        }
        out
    }
}
