//! How a hop trace reads as a report record (the trace is the probe's checks/hops.rs).

use super::Check;
use crate::report::*;

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
}
