//! The pure parts of vpce-probe: the checks' results (`results`), how each reads as a report
//! record and each check's own finding rules (`reading`), the rules they are written with
//! (`classify`, `vpc_rules`, `proxy_rules`, `findings`) and the diagnosis (`diagnose`: the rules
//! that span checks, results → findings, path verdicts, root causes).
//! No I/O and no async runtime, no network or AWS crate: it builds and tests on its own in
//! seconds. The probe measures, fills `ProbeResults` and calls `diagnose` with its registered
//! slices' rules.

pub mod classify;
pub mod diagnose;
pub mod endpoints;
pub mod findings;
#[cfg(test)]
mod fixtures;
pub mod proxy_rules;
pub mod ranges;
pub mod reading;
pub mod results;
pub mod vpc_rules;

// The report contract, under the paths the moved code always used.
use vpce_probe_report::{catalogue, escape, report};
