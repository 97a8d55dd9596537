//! The NACL source-port sweep's pure half: its finding rule (NACL_EPHEMERAL_BLOCKED) and how a
//! sweep reads as a report record. The sweep and its moment are the probe's checks/nacl.rs,
//! which implements the probe's `Slice` for the same `NaclSweepSlice`.

use super::{Check, SliceRules};
use crate::catalogue::FindingCode;
use crate::findings::{Expectations, Findings, TargetRule};
use crate::report::*;
use crate::results::{ProbeResults, TargetSpec};

/// The NACL source-port sweep as a slice: its moment is per name (the probe's half), its rule
/// per target (this half).
pub struct NaclSweepSlice;

impl SliceRules for NaclSweepSlice {
    fn target_rules(&self) -> &'static [TargetRule] {
        &[sweep_findings]
    }
}

/// NACL_EPHEMERAL_BLOCKED: some source-port ranges of the target's service fail while others
/// connect.
fn sweep_findings(r: &ProbeResults, _: &Expectations, t: &TargetSpec, f: &mut Findings) {
    for sweep in r
        .measured
        .of::<NaclSweep>()
        .iter()
        .filter(|s| s.service == t.service && !s.failing.is_empty())
    {
        let failing = sweep
            .failing
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let kernel = sweep
            .kernel_ephemeral
            .map(|k| format!("The kernel picks source ports from {k}, "))
            .unwrap_or_default();
        let hits = sweep.hits_kernel_range();
        f.add(
            FindingCode::NACL_EPHEMERAL_BLOCKED,
            if hits { Severity::Error } else { Severity::Warning },
            &t.id,
            format!("return traffic to source ports {failing} is dropped"),
            format!(
                "Connections to {}:443 from source ports {failing} time out while other ranges connect. {kernel}{}",
                sweep.address,
                if hits { "so ordinary connections fail." } else { "so ordinary connections still work." }
            ),
            format!(
                "In the network ACL of {}, allow inbound TCP 1024-65535 from the {} prefix list CIDRs (aws ec2 create-network-acl-entry --ingress --protocol tcp --port-range From=1024,To=65535 ...).",
                r.instance.as_ref().and_then(|i| i.subnet_id.as_deref()).unwrap_or("the subnet"),
                t.service.ranges_name()
            ),
            vec![sweep.id()],
        );
    }
}

impl Check for NaclSweep {
    const KIND: CheckKind = CheckKind::Nacl;
    fn id(&self) -> String {
        format!("nacl/{}/{}", self.service.as_str(), self.address)
    }
    fn subject(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }
    fn status(&self) -> CheckStatus {
        let connected = self
            .ranges
            .iter()
            .filter(|r| r.outcome == TcpOutcome::Connected)
            .count();
        if connected == 0 {
            CheckStatus::Skip
        } else if self.failing.is_empty() {
            CheckStatus::Ok
        } else {
            CheckStatus::Fail
        }
    }
    fn summary(&self) -> String {
        let ok = self
            .ranges
            .iter()
            .filter(|r| r.outcome == TcpOutcome::Connected)
            .count();
        let head = format!(
            "{} source-port ranges to {}:{}: {ok}/{} connected",
            self.service.as_str(),
            self.address,
            self.port,
            self.ranges.len()
        );
        if ok == 0 {
            format!("{head}; no range connects, so no ephemeral-range verdict")
        } else if self.failing.is_empty() {
            format!("{head}; all ranges 1024-65535 work")
        } else {
            format!(
                "{head}; failing source ports {}",
                self.failing
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    }
    fn duration_ms(&self) -> u64 {
        self.ranges.iter().map(|r| r.connect_ms).max().unwrap_or(0)
    }
    fn evidence(&self) -> Evidence {
        Evidence::Nacl(self.clone())
    }
}
