//! The hop check's pure half: how a hop trace reads as a report record. The trace and its
//! moment are the probe's checks/hops.rs, which implements the probe's `Slice` for the same
//! `HopsSlice`. Its reading and finding (PATH_NOT_GATEWAY_ENDPOINT) span checks (the
//! connections, the canary, the control plane, the proxy verdict): they are diagnose/hops.rs.

use super::{Check, SliceRules};
use crate::report::*;

/// The hop check as a slice: its moment is per address (the probe's half); it has no rule of
/// its own, its traces are read by the rules that span checks.
pub struct HopsSlice;

impl SliceRules for HopsSlice {}

impl Check for HopTrace {
    const KIND: CheckKind = CheckKind::Hops;
    fn id(&self) -> String {
        match self.service {
            Some(_) => format!("hops/{}/{}", self.name, self.address),
            None => format!("hops/canary/{}", self.address),
        }
    }
    fn subject(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }
    fn status(&self) -> CheckStatus {
        // Evidence for the path verdict, never a failure by itself: TCP says whether it works.
        match self.outcome {
            TcpOutcome::Error => CheckStatus::Skip,
            _ => CheckStatus::Ok,
        }
    }
    fn summary(&self) -> String {
        let who = match self.service {
            Some(_) => format!("{} ({})", self.address, self.name),
            None => format!("{} (internet canary)", self.address),
        };
        match (self.answered_at, self.outcome) {
            (_, TcpOutcome::Error) => format!(
                "{who}: not measured ({})",
                self.error.as_deref().unwrap_or("no probe sent")
            ),
            _ => format!("{who}: {}", self.compact()),
        }
    }
    fn duration_ms(&self) -> u64 {
        self.duration_ms
    }
    fn evidence(&self) -> Evidence {
        Evidence::Hops(self.clone())
    }
    /// The service addresses' traces by name and address, the canary's last: as the report
    /// listed them before the check was a slice.
    fn record_order(&self) -> Vec<String> {
        let canary = if self.service.is_none() { "1" } else { "0" };
        vec![canary.into(), self.name.clone(), self.address.clone()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(name: &str, service: Option<Service>, address: &str) -> HopTrace {
        HopTrace {
            name: name.into(),
            service,
            address: address.into(),
            port: 443,
            address_class: AddressClass::ServiceRegion,
            answered_at: Some(1),
            outcome: TcpOutcome::Connected,
            hops: Vec::new(),
            max_hops: 8,
            error: None,
            duration_ms: 1,
        }
    }

    #[test]
    fn records_by_name_then_address_and_the_canary_last() {
        let mut m = crate::results::Measurements::default();
        m.push(trace("example.com:443", None, "93.184.216.34"));
        // "a-b" sorts after "a" by name, though its id sorts before "hops/a/...".
        m.push(trace("a-b", Some(Service::S3), "52.0.0.1"));
        m.push(trace("a", Some(Service::S3), "52.0.0.2"));
        m.push(trace("a", Some(Service::S3), "52.0.0.1"));
        let ids: Vec<String> = m.records(&[]).into_iter().map(|r| r.id).collect();
        assert_eq!(
            ids,
            [
                "hops/a/52.0.0.1",
                "hops/a/52.0.0.2",
                "hops/a-b/52.0.0.1",
                "hops/canary/93.184.216.34"
            ]
        );
    }
}
