//! Each check's pure half, one file per check named like the probe's check file: how its
//! result reads as a report record (`Check`: id, subject, status, summary, evidence), the
//! helpers diagnosis reads it with, and the check's own finding rules (`SliceRules` on a unit
//! struct of its file: `DnsSlice`, `TcpSlice`, ...; those that judge one check's results). Its
//! measurement and its moment stay in the probe.

pub mod app_resolve;
pub mod calls;
pub mod canary;
pub mod control_plane;
pub mod dns;
pub mod hops;
pub mod identity;
pub mod imds;
pub mod libc_search;
pub mod nacl;
pub mod proxy;
pub mod reachability;
pub mod region;
pub mod slice;
pub mod tcp;
pub mod tls;

pub use slice::SliceRules;

use crate::report::{CheckKind, CheckRecord, CheckStatus, Evidence};

/// The common face of every check's result.
pub trait Check {
    const KIND: CheckKind;
    /// Stable id within a report, unique per check instance.
    fn id(&self) -> String;
    /// What the check was about: a name, an address, a URL.
    fn subject(&self) -> String;
    fn status(&self) -> CheckStatus;
    /// One line for the text report.
    fn summary(&self) -> String;
    fn duration_ms(&self) -> u64;
    fn evidence(&self) -> Evidence;
    /// Where its record comes among its check's records when a slice keeps them
    /// (`Measurements::records`): compared element by element, its id unless the check keeps
    /// another order.
    fn record_order(&self) -> Vec<String> {
        vec![self.id()]
    }

    fn record(&self) -> CheckRecord {
        CheckRecord {
            id: self.id(),
            check: Self::KIND,
            subject: self.subject(),
            status: self.status(),
            summary: self.summary(),
            duration_ms: self.duration_ms(),
            evidence: self.evidence(),
        }
    }
}

/// The ids of the records a finding rests on.
pub fn ids<T: Check>(items: &[&T]) -> Vec<String> {
    items.iter().map(|i| i.id()).collect()
}
