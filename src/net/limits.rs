//! Bounds on what a run has in flight: TCP connects and signed calls, each per address and
//! overall (tokio semaphores). Many targets then reach a service as a steady stream instead of
//! one burst of hundreds of connections and calls, which real services throttle.
//!
//! Two rules keep the bounds from turning into waits that look like a broken network:
//! - the wait for a permit is not part of any timeout: the caller starts its clock once the
//!   permit is held (a connect's timeout starts when its connect starts);
//! - an operation that has had no answer for `hold` gives its permits back (and its address is
//!   marked silent: its waiters go at once, until something there answers). Nothing is loaded
//!   by a SYN nobody answers, and queueing behind a black-holed address would cost one
//!   `--timeout` per wave of waiters instead of one for the run.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit, watch};

/// The four bounds, as the settings give them (each at least 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub connections: usize,
    pub connections_per_address: usize,
    pub calls: usize,
    pub calls_per_address: usize,
}

/// Shared by every check of a run; cheap to clone.
#[derive(Clone)]
pub struct Limits(Arc<Inner>);

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Limits({:?})", self.0.bounds)
    }
}

struct Inner {
    bounds: Bounds,
    connections: Gate,
    calls: Gate,
    connections_at: Mutex<HashMap<IpAddr, Arc<Gate>>>,
    calls_at: Mutex<HashMap<String, Arc<Gate>>>,
    connect_hold: Duration,
    call_hold: Duration,
}

/// A semaphore whose waiters stop waiting while what is behind it is silent.
struct Gate {
    permits: Semaphore,
    silent: watch::Sender<bool>,
}

impl Gate {
    fn new(n: usize) -> Self {
        Gate {
            permits: Semaphore::new(n.max(1)),
            silent: watch::Sender::new(false),
        }
    }

    /// A permit, or none when the gate is (or becomes) silent.
    async fn enter(&self) -> Option<SemaphorePermit<'_>> {
        let mut silent = self.silent.subscribe();
        loop {
            if *silent.borrow_and_update() {
                return None;
            }
            tokio::select! {
                permit = self.permits.acquire() => return permit.ok(),
                changed = silent.changed() => if changed.is_err() { return None },
            }
        }
    }

    fn set_silent(&self, silent: bool) {
        self.silent
            .send_if_modified(|s| std::mem::replace(s, silent) != silent);
    }
}

impl Limits {
    /// `timeout` is the run's `--timeout`: a connect without an answer for a twentieth of it,
    /// a call without one for a quarter of it, stops holding its permits.
    pub fn new(bounds: Bounds, timeout: Duration) -> Self {
        Limits(Arc::new(Inner {
            bounds,
            connections: Gate::new(bounds.connections),
            calls: Gate::new(bounds.calls),
            connections_at: Mutex::new(HashMap::new()),
            calls_at: Mutex::new(HashMap::new()),
            connect_hold: timeout / 20,
            call_hold: timeout / 4,
        }))
    }

    /// No bounds at all (tests, tools).
    pub fn unbounded() -> Self {
        let n = Semaphore::MAX_PERMITS;
        Limits::new(
            Bounds {
                connections: n,
                connections_per_address: n,
                calls: n,
                calls_per_address: n,
            },
            Duration::from_secs(1),
        )
    }

    pub fn bounds(&self) -> Bounds {
        self.0.bounds
    }

    /// Run a connect to `ip` within the connection bounds. `answered` tells whether its
    /// outcome came from the address (connected, refused): that ends the address's silence.
    pub async fn connect<F: Future>(
        &self,
        ip: IpAddr,
        work: F,
        answered: impl Fn(&F::Output) -> bool,
    ) -> F::Output {
        let gate = {
            let mut at = self
                .0
                .connections_at
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            at.entry(ip)
                .or_insert_with(|| Arc::new(Gate::new(self.0.bounds.connections_per_address)))
                .clone()
        };
        let inner = &self.0;
        held(
            &gate,
            &inner.connections,
            inner.connect_hold,
            work,
            answered,
        )
        .await
    }

    /// Run a signed call to `peer` (its address, or its proxy) within the call bounds;
    /// `answered` as for [`Limits::connect`].
    pub async fn call<F: Future>(
        &self,
        peer: &str,
        work: F,
        answered: impl Fn(&F::Output) -> bool,
    ) -> F::Output {
        let gate = {
            let mut at = self.0.calls_at.lock().unwrap_or_else(|e| e.into_inner());
            at.entry(peer.to_string())
                .or_insert_with(|| Arc::new(Gate::new(self.0.bounds.calls_per_address)))
                .clone()
        };
        let inner = &self.0;
        held(&gate, &inner.calls, inner.call_hold, work, answered).await
    }
}

/// The per-address permit first (so no overall permit waits in an address's queue), then the
/// overall one; both given back when `work` ends or has had no answer for `hold`.
async fn held<F: Future>(
    address: &Gate,
    overall: &Gate,
    hold: Duration,
    work: F,
    answered: impl Fn(&F::Output) -> bool,
) -> F::Output {
    let at_address = address.enter().await;
    let in_total = overall.enter().await;
    let mut work = std::pin::pin!(work);
    tokio::select! {
        out = &mut work => {
            if answered(&out) {
                address.set_silent(false);
            }
            return out;
        }
        _ = tokio::time::sleep(hold) => {}
    }
    // No answer yet: nothing is loaded by waiting on it, and the others need not wait for it.
    drop((at_address, in_total));
    address.set_silent(true);
    let out = work.await;
    if answered(&out) {
        address.set_silent(false);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn bounds(per_address: usize, overall: usize) -> Bounds {
        Bounds {
            connections: overall,
            connections_per_address: per_address,
            calls: overall,
            calls_per_address: per_address,
        }
    }

    /// Work that answers after `ms`, counting how many run at once.
    async fn answering(now: &AtomicUsize, peak: &AtomicUsize, ms: u64) -> bool {
        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
        peak.fetch_max(n, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        now.fetch_sub(1, Ordering::SeqCst);
        true
    }

    #[tokio::test]
    async fn answering_work_is_bounded_per_address_and_overall() {
        let limits = Limits::new(bounds(2, 3), Duration::from_secs(20));
        let (now, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let work = (0..10).map(|i| {
            let ip = if i % 2 == 0 { a } else { b };
            limits.connect(ip, answering(&now, &peak, 10), |ok| *ok)
        });
        let results = futures_util::future::join_all(work).await;
        assert!(results.iter().all(|ok| *ok));
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        let (now, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let work = (0..10).map(|_| limits.call("192.0.2.1", answering(&now, &peak, 10), |ok| *ok));
        futures_util::future::join_all(work).await;
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_silent_address_does_not_make_its_waiters_wait() {
        // Twenty connects to a black-holed address, two at a time: each waits its whole
        // timeout, but every one has started before the first one times out (none waits for
        // another one's timeout), so together they cost one timeout.
        let timeout = Duration::from_millis(400);
        let limits = Limits::new(bounds(2, 64), timeout);
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let (now, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let silent = || async {
            let n = now.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(n, Ordering::SeqCst);
            tokio::time::sleep(timeout).await;
            now.fetch_sub(1, Ordering::SeqCst);
            false
        };
        let work = (0..20).map(|_| limits.connect(ip, silent(), |answered| *answered));
        futures_util::future::join_all(work).await;
        assert_eq!(peak.load(Ordering::SeqCst), 20);
    }
}
