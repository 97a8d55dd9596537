//! One task per sink moves reports from the spool to the sink: oldest first, acknowledged in the
//! spool only after the sink confirmed, exponential backoff with jitter after a failure. The
//! probe schedule never waits for a shipper: it pushes into the spool and bumps a counter.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::metrics::{Health, Metrics};
use super::sinks::{Delivery, ReportMeta, Sender};
use super::spool::{EntryId, Pending, Spool};
use crate::config::Shipping;

/// The spool, shared by the schedule and the shippers; `None` only while a reload reopens it.
pub type SharedSpool = Arc<Mutex<Option<Spool>>>;

/// Runs `f` on the spool on a blocking thread (the spool fsyncs).
pub async fn with_spool<T, F>(spool: &SharedSpool, f: F) -> Result<T, String>
where
    F: FnOnce(&mut Spool) -> Result<T, String> + Send + 'static,
    T: Send + 'static,
{
    let spool = spool.clone();
    tokio::task::spawn_blocking(move || {
        let mut guard = spool
            .lock()
            .map_err(|_| "the spool lock is poisoned".to_string())?;
        match guard.as_mut() {
            Some(s) => f(s),
            None => Err("the spool is being reopened".into()),
        }
    })
    .await
    .map_err(|e| format!("spool task: {e}"))?
}

/// Signals from the schedule to the shippers.
#[derive(Clone)]
pub struct Signals {
    /// Bumped after every push: "look at the spool again".
    pub pushed: watch::Receiver<u64>,
    /// true: finish the current attempt and stop.
    pub stop: watch::Receiver<bool>,
}

/// What a shipper reports to: the metrics and `/healthz`.
#[derive(Clone)]
pub struct Observers {
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
}

pub fn spawn(
    sender: Sender,
    spool: SharedSpool,
    shipping: Shipping,
    observers: Observers,
    signals: Signals,
) -> JoinHandle<()> {
    tokio::spawn(ship_loop(sender, spool, shipping, observers, signals))
}

/// The sink's task: wait for pending reports, send them oldest first, back off after a failure.
async fn ship_loop(
    sender: Sender,
    spool: SharedSpool,
    shipping: Shipping,
    observers: Observers,
    mut signals: Signals,
) {
    let Observers { metrics, health } = observers;
    let mut shipper = Shipper {
        name: sender.name.clone(),
        sender,
        spool,
        shipping,
        metrics,
        health,
        backoff: shipping.retry_initial,
    };
    loop {
        if *signals.stop.borrow() {
            return;
        }
        // Mark the pushes seen before looking, so that a push racing this look wakes us again.
        signals.pushed.borrow_and_update();
        let sink = shipper.name.clone();
        let pending: Vec<Pending> =
            match with_spool(&shipper.spool, move |s| Ok(s.pending_for(&sink))).await {
                Ok(p) => p,
                Err(e) => {
                    debug!(sink = %shipper.name, error = %e, "spool not available; retrying");
                    if wait_or_stop(&mut signals, shipping.retry_initial).await {
                        return;
                    }
                    continue;
                }
            };
        if pending.is_empty() {
            tokio::select! {
                _ = signals.pushed.changed() => {}
                _ = signals.stop.changed() => {}
            }
            continue;
        }
        let mut failed = false;
        for entry in pending {
            if *signals.stop.borrow() {
                return;
            }
            if let Shipped::RetryIn(wait) = shipper.ship(&entry).await {
                failed = true;
                if wait_or_stop(&mut signals, wait).await {
                    return;
                }
                break;
            }
        }
        if !failed {
            shipper.backoff = shipping.retry_initial;
        }
    }
}

/// What became of one pending report.
enum Shipped {
    /// Delivered, moved to the dead letters, or gone from the spool: on to the next one.
    Next,
    /// Still pending: wait this long, then look at the spool again.
    RetryIn(Duration),
}

/// One sink's sending state.
struct Shipper {
    name: String,
    sender: Sender,
    spool: SharedSpool,
    shipping: Shipping,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    /// The wait after the next failure.
    backoff: Duration,
}

impl Shipper {
    /// Send one report and record the outcome (spool, metrics, health, log).
    async fn ship(&mut self, entry: &Pending) -> Shipped {
        let name = &self.name;
        let id = entry.id.clone();
        let bytes =
            match with_spool(&self.spool, move |s| s.read(&id).map_err(|e| e.to_string())).await {
                Ok(b) => b,
                // Dropped by a bound, or acknowledged meanwhile: nothing to send.
                Err(e) => {
                    debug!(sink = %name, report_id = %entry.report_id, error = %e, "entry gone");
                    return Shipped::Next;
                }
            };
        let meta =
            ReportMeta::from_json(&bytes).unwrap_or_else(|_| ReportMeta::unknown(&entry.report_id));
        match self.sender.send(&meta, &bytes).await {
            Delivery::Delivered => {
                self.health.sink_answered(name);
                ack(&self.spool, &entry.id, name, &self.metrics, &self.health).await;
                self.metrics.shipped(name);
                if self.backoff != self.shipping.retry_initial {
                    info!(sink = %name, target = %self.sender.describe(), "sink recovered");
                }
                self.backoff = self.shipping.retry_initial;
                debug!(sink = %name, report_id = %entry.report_id, "shipped");
                Shipped::Next
            }
            Delivery::Refused { status, reason } => {
                // The collector works; it will never take this report. Moved aside, so
                // that the sink goes on with the next one.
                self.health.sink_answered(name);
                self.dead_letter(entry, status, &reason).await
            }
            Delivery::RetryLater(e) => {
                self.metrics.ship_failed(name);
                self.health.sink_failed(name, &e);
                let wait = jittered(self.backoff);
                warn!(
                    sink = %name,
                    target = %self.sender.describe(),
                    report_id = %entry.report_id,
                    error = %e,
                    retry_in_ms = wait.as_millis() as u64,
                    "cannot ship a report; it stays in the spool"
                );
                self.backoff = next_backoff(self.backoff, self.shipping.retry_max);
                Shipped::RetryIn(wait)
            }
        }
    }

    /// A report the collector refused for good goes to the dead-letter directory; if it cannot
    /// be moved there, it stays in the spool and is retried like a failed delivery.
    async fn dead_letter(&mut self, entry: &Pending, status: u16, reason: &str) -> Shipped {
        let name = &self.name;
        let why = format!("{status} {reason}");
        let (id, sink) = (entry.id.clone(), name.clone());
        // Moving a report aside may prune older dead letters (their bounds): counted.
        let bounds = self.metrics.clone();
        match with_spool(&self.spool, move |s| {
            let before = s.stats();
            let path = s.dead_letter(&id, &sink, &why).map_err(|e| e.to_string())?;
            let after = s.stats();
            bounds.spool_bounds(&before, &after);
            Ok((path, after))
        })
        .await
        {
            Ok((path, stats)) => {
                self.health.spool_written(Ok(()));
                self.metrics.dead_lettered(name);
                self.metrics.spool_content(stats.entries, stats.bytes);
                warn!(
                    sink = %name,
                    target = %self.sender.describe(),
                    report_id = %entry.report_id,
                    status,
                    reason = %reason,
                    dead_letter = %path.display(),
                    "the collector refused a report for good; moved to the dead-letter directory"
                );
                self.backoff = self.shipping.retry_initial;
                Shipped::Next
            }
            Err(e) => {
                self.health.spool_written(Err(&e));
                self.metrics.ship_failed(name);
                let wait = jittered(self.backoff);
                warn!(
                    sink = %name,
                    report_id = %entry.report_id,
                    status,
                    reason = %reason,
                    error = %e,
                    retry_in_ms = wait.as_millis() as u64,
                    "the collector refused a report for good, and it cannot be moved to the dead-letter directory; it stays in the spool"
                );
                self.backoff = next_backoff(self.backoff, self.shipping.retry_max);
                Shipped::RetryIn(wait)
            }
        }
    }
}

async fn ack(spool: &SharedSpool, id: &EntryId, sink: &str, metrics: &Metrics, health: &Health) {
    let (id, sink) = (id.clone(), sink.to_string());
    match with_spool(spool, move |s| {
        s.ack(&id, &sink).map_err(|e| e.to_string())?;
        Ok(s.stats())
    })
    .await
    {
        Ok(stats) => {
            health.spool_written(Ok(()));
            metrics.spool_content(stats.entries, stats.bytes)
        }
        // The report was delivered; without the mark it is sent again (the collector dedups).
        Err(e) => {
            health.spool_written(Err(&e));
            warn!(error = %e, "cannot record a delivery in the spool; the report may be sent twice")
        }
    }
}

/// Sleeps `d`; true when told to stop meanwhile.
async fn wait_or_stop(signals: &mut Signals, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *signals.stop.borrow(),
        _ = signals.stop.changed() => true,
    }
}

/// Double, up to `max`; saturating, so no setting can make the doubling panic.
fn next_backoff(current: Duration, max: Duration) -> Duration {
    current.saturating_mul(2).min(max)
}

/// Between half and all of `d` ("equal jitter"): agents that lost the same collector at the same
/// moment do not come back in step.
fn jittered(d: Duration) -> Duration {
    let half = d / 2;
    half.saturating_add(half.mul_f64(fastrand::f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum_without_overflow() {
        let s = Duration::from_secs;
        assert_eq!(next_backoff(s(1), s(300)), s(2));
        assert_eq!(next_backoff(s(200), s(300)), s(300));
        assert_eq!(next_backoff(Duration::MAX, Duration::MAX), Duration::MAX);
        assert!(jittered(Duration::MAX) <= Duration::MAX);
    }

    #[test]
    fn jitter_stays_between_half_and_whole() {
        for _ in 0..1000 {
            let j = jittered(Duration::from_secs(8));
            assert!(
                j >= Duration::from_secs(4) && j <= Duration::from_secs(8),
                "{j:?}"
            );
        }
    }
}
