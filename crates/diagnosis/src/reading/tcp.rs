//! How a TCP connect reads as a report record, and what a failed one points to (the connect is
//! the probe's checks/tcp.rs).

use super::Check;
use crate::report::*;

/// The checklist items a failed connect points to, for the text and the finding.
pub fn suspects(outcome: TcpOutcome) -> &'static str {
    match outcome {
        TcpOutcome::Timeout => {
            "route table (endpoint route missing), security group egress, or network ACL"
        }
        TcpOutcome::Refused => "a host firewall or a device answering for the address",
        TcpOutcome::Unreachable => "the instance's own routes or host firewall",
        TcpOutcome::Connected | TcpOutcome::Error => "",
    }
}

impl Check for TcpAttempt {
    const KIND: CheckKind = CheckKind::Tcp;
    fn id(&self) -> String {
        format!("tcp/{}/{}", self.name, self.address)
    }
    fn subject(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }
    fn status(&self) -> CheckStatus {
        match self.outcome {
            TcpOutcome::Connected => CheckStatus::Ok,
            _ => CheckStatus::Fail,
        }
    }
    fn summary(&self) -> String {
        let addr = if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        };
        match self.outcome {
            TcpOutcome::Connected => {
                format!("{addr} ({}) connected in {} ms", self.name, self.connect_ms)
            }
            outcome => format!(
                "{addr} ({}) {}: {} (suspect: {})",
                self.name,
                match outcome {
                    TcpOutcome::Timeout => "timed out",
                    TcpOutcome::Refused => "refused",
                    TcpOutcome::Unreachable => "unreachable",
                    _ => "failed",
                },
                self.error.as_deref().unwrap_or(""),
                suspects(outcome),
            ),
        }
    }
    fn duration_ms(&self) -> u64 {
        self.connect_ms
    }
    fn evidence(&self) -> Evidence {
        Evidence::Tcp(self.clone())
    }
}
