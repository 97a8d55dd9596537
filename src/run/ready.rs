//! When a name's connections are known: its TCP checks (and TLS handshakes) and its proxy
//! CONNECT probe are done. A target's signed calls wait for the names they call, not for the
//! whole data plane, so a black-holed name costs its own timeout and the healthy targets' calls
//! run meanwhile (the hop traces and the NACL sweep, which the calls do not read, go on beside).
//! They also wait until every name's DNS answers are in: with many targets, signing and TLS of
//! early calls beside the other names' lookups (which take milliseconds) could delay those past
//! their timeout on a small instance, and a healthy resolver would look broken.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

#[derive(Default)]
pub(super) struct NameReady {
    names: Mutex<HashMap<String, watch::Sender<bool>>>,
    lookups_left: std::sync::atomic::AtomicUsize,
}

/// What every call waits for first: the DNS lookups of every name (`expect_lookups`).
pub(super) const ALL_LOOKUPS: &str = "(every name's DNS lookups)";

impl NameReady {
    fn sender(&self, name: &str) -> watch::Sender<bool> {
        let mut names = match self.names.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        names
            .entry(name.to_string())
            .or_insert_with(|| watch::Sender::new(false))
            .clone()
    }

    /// `n` names will look up their addresses; `ALL_LOOKUPS` is done when each said so
    /// (at once when there are none).
    pub(super) fn expect_lookups(&self, n: usize) {
        self.lookups_left
            .store(n, std::sync::atomic::Ordering::Release);
        if n == 0 {
            self.done(ALL_LOOKUPS);
        }
    }

    /// One name's DNS lookups are done.
    pub(super) fn lookups_done(&self) {
        let before = self
            .lookups_left
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        if before == 1 {
            self.done(ALL_LOOKUPS);
        }
    }

    /// `name`'s connections are known.
    pub(super) fn done(&self, name: &str) {
        self.sender(name).send_replace(true);
    }

    /// Returns once `name` is done (at once if it already is).
    pub(super) async fn wait(&self, name: &str) {
        let mut rx = self.sender(name).subscribe();
        // The sender lives in the map for the whole run: an error cannot happen, and would
        // only mean there is nothing left to wait for.
        let _ = rx.wait_for(|done| *done).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_waiter_returns_when_its_name_is_done_and_not_before() {
        let ready = NameReady::default();
        ready.done("a.example");
        // Already done: at once.
        tokio::time::timeout(Duration::from_secs(1), ready.wait("a.example"))
            .await
            .expect("done before the wait");
        // Another name done does not release it.
        let waiting = ready.wait("b.example");
        tokio::pin!(waiting);
        ready.done("c.example");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut waiting)
                .await
                .is_err()
        );
        ready.done("b.example");
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("released by its own name");
    }

    #[tokio::test]
    async fn every_lookup_must_be_done_before_all_lookups_is() {
        let ready = NameReady::default();
        ready.expect_lookups(2);
        let waiting = ready.wait(ALL_LOOKUPS);
        tokio::pin!(waiting);
        ready.lookups_done();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut waiting)
                .await
                .is_err()
        );
        ready.lookups_done();
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("both names looked up");
        let none = NameReady::default();
        none.expect_lookups(0);
        tokio::time::timeout(Duration::from_secs(1), none.wait(ALL_LOOKUPS))
            .await
            .expect("nothing to look up");
    }
}
