//! How the internet canary's result reads as a report record (the canary itself is the probe's
//! checks/canary.rs).

use super::Check;
use crate::report::*;

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
