//! Narrow seams over the outside world. Everything that opens a socket goes through here,
//! so tests point the probe at loopback fakes through configuration alone.

pub mod aws;
pub mod aws_error;
pub mod dns;
pub mod handoff;
pub mod hops;
pub mod limits;
pub mod tcp;
pub mod tls;

use std::time::{Duration, Instant};

/// A whole-run deadline: each operation gets its own timeout, capped by what is left.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub per_operation: Duration,
    pub deadline: Instant,
}

impl Budget {
    pub fn new(per_operation: Duration, total: Duration) -> Self {
        Budget {
            per_operation,
            deadline: Instant::now() + total,
        }
    }

    /// Timeout for the next operation: the per-operation timeout or what is left of the run.
    pub fn op(&self) -> Duration {
        self.per_operation
            .min(self.deadline.saturating_duration_since(Instant::now()))
    }

    pub fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }
}

/// A wall-clock time as the report writes it (RFC 3339, UTC, milliseconds).
pub fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

pub fn millis(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}
