//! The control-plane check's face in the report, and the helpers diagnosis uses; compiled
//! whatever the probe's features (the reads themselves are the probe's checks/ec2.rs).

use super::Check;
use super::region::dns_suffix;
use crate::report::{CheckKind, CheckStatus, ControlPlane, Evidence, ReadOutcome, Service};

/// The endpoint service name, e.g. com.amazonaws.eu-west-1.s3.
pub fn service_name(region: &str, service: Service) -> String {
    let prefix = if dns_suffix(region) == "amazonaws.com.cn" {
        "cn.com.amazonaws"
    } else {
        "com.amazonaws"
    };
    format!("{prefix}.{region}.{}", service.as_str())
}

impl Check for ControlPlane {
    const KIND: CheckKind = CheckKind::Ec2;
    fn id(&self) -> String {
        "ec2".into()
    }
    fn subject(&self) -> String {
        self.route_table
            .as_ref()
            .map(|t| t.id.clone())
            .unwrap_or_else(|| "VPC configuration".into())
    }
    fn status(&self) -> CheckStatus {
        if self.reads.iter().all(|r| r.outcome != ReadOutcome::Ok) {
            CheckStatus::Skip
        } else if self.reads.iter().any(|r| r.outcome != ReadOutcome::Ok) {
            CheckStatus::Warn
        } else {
            CheckStatus::Ok
        }
    }
    fn summary(&self) -> String {
        let denied = self.denied_actions();
        if self.reads.iter().all(|r| r.outcome != ReadOutcome::Ok) {
            return format!(
                "VPC configuration not readable ({})",
                if denied.is_empty() {
                    "EC2 API unreachable".to_string()
                } else {
                    format!("denied: {}", denied.join(", "))
                }
            );
        }
        format!(
            "route table {}{}, {} gateway endpoint(s) {}, {} prefix list(s), {} security group(s), NACL {}{}",
            self.route_table
                .as_ref()
                .map(|t| t.id.as_str())
                .unwrap_or("?"),
            if self.route_table.as_ref().is_some_and(|t| t.main) {
                " (main)"
            } else {
                ""
            },
            self.endpoints.len(),
            self.endpoints
                .iter()
                .map(|e| e.id.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            self.prefix_lists.len(),
            self.security_groups.len(),
            self.network_acl
                .as_ref()
                .map(|a| a.id.as_str())
                .unwrap_or("?"),
            if denied.is_empty() {
                String::new()
            } else {
                format!("; denied: {}", denied.join(", "))
            }
        )
    }
    fn duration_ms(&self) -> u64 {
        self.duration_ms
    }
    fn evidence(&self) -> Evidence {
        Evidence::ControlPlane(Box::new(self.clone()))
    }
}

impl Check for crate::report::ReachabilityEvidence {
    const KIND: CheckKind = CheckKind::Reachability;
    fn id(&self) -> String {
        format!("analyzer/{}", self.service.as_str())
    }
    fn subject(&self) -> String {
        format!("{} -> {}", self.source, self.destination)
    }
    fn status(&self) -> CheckStatus {
        match (self.network_path_found, self.cleaned_up) {
            (Some(true), true) => CheckStatus::Ok,
            (Some(true), false) => CheckStatus::Warn,
            (Some(false), _) => CheckStatus::Fail,
            (None, _) => CheckStatus::Warn,
        }
    }
    fn summary(&self) -> String {
        let found = match self.network_path_found {
            Some(true) => "NetworkPathFound: true".to_string(),
            Some(false) => format!(
                "NetworkPathFound: false ({})",
                self.explanations
                    .iter()
                    .map(|e| format!("{}: {}", e.code, e.meaning))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            None => format!(
                "no result ({}: {})",
                self.status,
                self.error.as_deref().unwrap_or("unknown")
            ),
        };
        format!(
            "Reachability Analyzer {} -> {} tcp/443: {found}; {}",
            self.source,
            self.destination,
            if self.cleaned_up {
                "path and analysis deleted"
            } else {
                "COULD NOT DELETE the path/analysis it created (see the ids in the JSON report)"
            }
        )
    }
    fn duration_ms(&self) -> u64 {
        self.duration_ms
    }
    fn evidence(&self) -> Evidence {
        Evidence::Reachability(self.clone())
    }
}
