//! The internet canary's pure half: how its result reads as a report record, and how diagnosis
//! reads it. The canary and its moment (once per run, with its own hop trace) are the probe's
//! checks/canary.rs, which implements the probe's `Slice` for the same `CanarySlice`. Its
//! reading spans checks: the path verdicts (diagnose/path.rs) and the hop rule
//! (diagnose/hops.rs, through its trace) read it; it has no finding rule of its own.

use super::{Check, SliceRules};
use crate::report::*;
use crate::results::ProbeResults;

/// The internet canary as a slice: its moment is once per run (the probe's half); it has no
/// rule of its own.
pub struct CanarySlice;

impl SliceRules for CanarySlice {}

/// What the canary found, if the run had one (none when it is turned off or the deadline cut it).
pub fn canary_outcome(r: &ProbeResults) -> Option<CanaryOutcome> {
    r.measured.of::<CanaryResult>().first().map(|c| c.outcome)
}

impl Check for CanaryResult {
    const KIND: CheckKind = CheckKind::Canary;
    fn id(&self) -> String {
        "canary".into()
    }
    fn subject(&self) -> String {
        self.target.clone()
    }
    fn status(&self) -> CheckStatus {
        // Either answer is information, not a failure: it decides how sure the path verdict is.
        CheckStatus::Ok
    }
    fn summary(&self) -> String {
        match self.outcome {
            CanaryOutcome::Reachable => format!(
                "internet canary {} reachable: the instance has an internet path too",
                self.target
            ),
            CanaryOutcome::Unreachable => format!(
                "internet canary {} unreachable ({}{}): no internet path",
                self.target,
                self.error.as_deref().unwrap_or("no connection"),
                match self.connect_timeout_ms {
                    Some(ms) => format!(", --silence-timeout {ms} ms"),
                    None => String::new(),
                }
            ),
            CanaryOutcome::NotResolved => format!(
                "internet canary {} did not resolve: no internet path seen",
                self.target
            ),
        }
    }
    fn duration_ms(&self) -> u64 {
        self.connect_ms
    }
    fn evidence(&self) -> Evidence {
        Evidence::Canary(self.clone())
    }
}
