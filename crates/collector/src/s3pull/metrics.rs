//! The pull's metrics, in the collector's registry, labelled by location.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// The pull's metrics, registered in the collector's registry.
#[derive(Clone, Default)]
pub struct PullMetrics {
    pub(super) pulled: Family<Labels, Counter>,
    pub(super) duplicate: Family<Labels, Counter>,
    pub(super) refused: Family<Labels, Counter>,
    pub(super) errors: Family<Labels, Counter>,
    pub(super) lag: Family<Labels, Gauge<f64, AtomicU64>>,
    pub(super) last_success: Family<Labels, Gauge<f64, AtomicU64>>,
}

impl PullMetrics {
    pub fn register(registry: &mut Registry) -> PullMetrics {
        let m = PullMetrics::default();
        registry.register(
            "s3_objects_pulled",
            "Reports fetched from an S3 sink's prefix and stored",
            m.pulled.clone(),
        );
        registry.register(
            "s3_objects_duplicate",
            "Objects fetched whose report was already stored (over HTTP, or under another key)",
            m.duplicate.clone(),
        );
        registry.register(
            "s3_objects_refused",
            "Objects that are not valid reports, skipped for good, by reason",
            m.refused.clone(),
        );
        registry.register(
            "s3_errors",
            "Failed S3 or database operations of the pull (retried at the next pass), by operation",
            m.errors.clone(),
        );
        registry.register(
            "s3_pull_lag_seconds",
            "For the objects stored by the last pass that stored any: the longest time between an object's LastModified and its storing",
            m.lag.clone(),
        );
        registry.register(
            "s3_pull_last_success_timestamp_seconds",
            "Unix time of the last pass that listed the location completely",
            m.last_success.clone(),
        );
        m
    }
}

pub(super) fn label(location: &str) -> Labels {
    vec![("location".to_string(), location.to_string())]
}

pub(super) fn label2(location: &str, key: &str, value: &str) -> Labels {
    vec![
        ("location".to_string(), location.to_string()),
        (key.to_string(), value.to_string()),
    ]
}
