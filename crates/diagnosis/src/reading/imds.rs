//! How the instance metadata walk reads as a report record (the walk is the probe's
//! checks/imds.rs).

use std::time::Duration;

use super::Check;
use crate::report::*;

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
