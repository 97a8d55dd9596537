//! When a name's connections are known: its TCP checks (and TLS handshakes) and its proxy
//! CONNECT probe are done. A target's signed calls wait for the names they call, not for the
//! whole data plane, so a black-holed name costs its own timeout and the healthy targets' calls
//! run meanwhile (the hop traces and the NACL sweep, which the calls do not read, go on beside).

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

#[derive(Default)]
pub(super) struct NameReady {
    names: Mutex<HashMap<String, watch::Sender<bool>>>,
}

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
}
