//! The checks a run has scheduled and not finished. When the deadline ends the run, each of
//! them becomes a record with status `skip` ("not finished before the deadline"), and none of
//! them reaches diagnosis: a check that measured nothing blames nothing.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::net::millis;
use crate::report::{CheckKind, CheckRecord, CheckStatus, Evidence, UnfinishedCheck};

pub(super) const NOT_FINISHED: &str = "not finished before the deadline";

struct Entry {
    kind: CheckKind,
    id: String,
    subject: String,
    scheduled_at_ms: u64,
}

pub(super) struct Pending {
    started: Instant,
    next: AtomicU64,
    open: Mutex<BTreeMap<u64, Entry>>,
}

impl Default for Pending {
    fn default() -> Self {
        Pending {
            started: Instant::now(),
            next: AtomicU64::new(0),
            open: Mutex::new(BTreeMap::new()),
        }
    }
}

/// A scheduled check: it stops being pending when this is dropped (its task finished, or was
/// dropped with the run).
pub(super) struct Scheduled<'a> {
    pending: &'a Pending,
    key: u64,
}

impl Drop for Scheduled<'_> {
    fn drop(&mut self) {
        if let Ok(mut open) = self.pending.open.lock() {
            open.remove(&self.key);
        }
    }
}

impl Pending {
    /// Marks a check as scheduled until the returned guard is dropped.
    pub(super) fn schedule(
        &self,
        kind: CheckKind,
        id: impl Into<String>,
        subject: impl Into<String>,
    ) -> Scheduled<'_> {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        let entry = Entry {
            kind,
            id: id.into(),
            subject: subject.into(),
            scheduled_at_ms: millis(self.started.elapsed()),
        };
        if let Ok(mut open) = self.open.lock() {
            open.insert(key, entry);
        }
        Scheduled { pending: self, key }
    }

    /// A `skip` record for every check still scheduled, in the order they were scheduled.
    pub(super) fn unfinished(&self) -> Vec<CheckRecord> {
        let Ok(open) = self.open.lock() else {
            return Vec::new();
        };
        open.values()
            .map(|e| CheckRecord {
                id: e.id.clone(),
                check: e.kind,
                subject: e.subject.clone(),
                status: CheckStatus::Skip,
                summary: format!(
                    "{}: {NOT_FINISHED} (scheduled {} ms into the run)",
                    e.subject, e.scheduled_at_ms
                ),
                duration_ms: 0,
                evidence: Evidence::Unfinished(UnfinishedCheck {
                    reason: NOT_FINISHED.into(),
                    scheduled_at_ms: e.scheduled_at_ms,
                }),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_is_still_scheduled_is_unfinished() {
        let p = Pending::default();
        let done = p.schedule(CheckKind::Imds, "imds", "http://169.254.169.254");
        let waiting = p.schedule(CheckKind::Tcp, "tcp/s3.x/192.0.2.1", "192.0.2.1:443");
        drop(done);
        let records = p.unfinished();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].id, "tcp/s3.x/192.0.2.1");
        assert_eq!(records[0].status, CheckStatus::Skip);
        assert!(records[0].summary.contains(NOT_FINISHED));
        drop(waiting);
        assert!(p.unfinished().is_empty());
    }
}
