//! The instance metadata walk's pure half: its finding rule (IMDS_UNAVAILABLE) and how the walk
//! reads as a report record (the walk is the probe's checks/imds.rs).

use std::time::Duration;

use super::{Check, SliceRules};
use crate::catalogue::FindingCode;
use crate::findings::{Expectations, Findings, HostRule};
use crate::report::*;
use crate::results::ProbeResults;

/// The instance metadata walk's rules: one about the host.
pub struct ImdsSlice;

impl SliceRules for ImdsSlice {
    fn host_rules(&self) -> &'static [HostRule] {
        &[imds_finding]
    }
}

/// Instance metadata unavailable: an error when no region is configured either (the region
/// the run probes is its input, not the region check's verdict).
fn imds_finding(r: &ProbeResults, _: &Expectations, f: &mut Findings) {
    // Instance metadata.
    if let Some(imds) = &r.imds
        && !imds.reachable
    {
        let no_region = r.region.effective.is_none();
        f.add(
            FindingCode::IMDS_UNAVAILABLE,
            if no_region { Severity::Error } else { Severity::Warning },
            "host",
            format!("instance metadata (IMDSv2) unavailable at {}", imds.endpoint),
            format!(
                "{}. {}",
                imds.error.as_deref().unwrap_or("no answer"),
                if no_region {
                    "No region is configured either, so no service name could be probed."
                } else {
                    "The probe ran with the configured region; instance facts (VPC, subnet, security groups, account) are missing, and SDKs relying on the instance role will find no credentials."
                }
            ),
            format!(
                "{} If this is not an EC2 instance, pass --region.",
                FindingCode::IMDS_UNAVAILABLE.general_fix()
            ),
            vec!["imds".into()],
        );
    }
}

/// The instance metadata walk's result: its evidence, the instance facts when IMDS answered,
/// and how long it took.
pub struct ImdsResult {
    pub evidence: ImdsEvidence,
    pub facts: Option<InstanceFacts>,
    pub duration: Duration,
}

impl Check for ImdsResult {
    const KIND: CheckKind = CheckKind::Imds;
    fn id(&self) -> String {
        "imds".into()
    }
    fn subject(&self) -> String {
        self.evidence.endpoint.clone()
    }
    fn status(&self) -> CheckStatus {
        match (&self.facts, self.evidence.missing.is_empty()) {
            (None, _) => CheckStatus::Fail,
            (Some(_), true) => CheckStatus::Ok,
            (Some(_), false) => CheckStatus::Warn,
        }
    }
    fn summary(&self) -> String {
        match &self.facts {
            None => format!(
                "IMDSv2 unavailable at {}: {}",
                self.evidence.endpoint,
                self.evidence.error.as_deref().unwrap_or("unknown error")
            ),
            Some(f) => format!(
                "{} in {} ({}, {})",
                f.instance_id.as_deref().unwrap_or("instance"),
                f.availability_zone
                    .as_deref()
                    .or(f.region.as_deref())
                    .unwrap_or("?"),
                f.vpc_id.as_deref().unwrap_or("vpc ?"),
                f.subnet_id.as_deref().unwrap_or("subnet ?"),
            ),
        }
    }
    fn duration_ms(&self) -> u64 {
        u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX)
    }
    fn evidence(&self) -> Evidence {
        Evidence::Imds(self.evidence.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::slice::findings_of;

    /// IMDS unavailable: an error when no region is configured either (nothing could be
    /// probed), a warning when the run had one; nothing when IMDS answered.
    #[test]
    fn imds_unavailable_is_an_error_only_without_a_region() {
        let exp = Expectations::default_run();
        let mut r = ProbeResults {
            imds: Some(ImdsEvidence {
                endpoint: "http://169.254.169.254".into(),
                reachable: false,
                error: Some("connect timed out".into()),
                missing: vec![],
            }),
            ..ProbeResults::default()
        };
        let found = findings_of(&ImdsSlice, &r, &exp);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].code, FindingCode::IMDS_UNAVAILABLE);
        assert_eq!(found[0].severity, Severity::Error);
        assert_eq!(found[0].target, "host");
        assert!(
            found[0].detail.starts_with("connect timed out. No region"),
            "{}",
            found[0].detail
        );

        r.region.effective = Some("eu-west-1".into());
        let found = findings_of(&ImdsSlice, &r, &exp);
        assert_eq!(found[0].severity, Severity::Warning);

        if let Some(imds) = r.imds.as_mut() {
            imds.reachable = true;
        }
        assert!(findings_of(&ImdsSlice, &r, &exp).is_empty());
    }
}
