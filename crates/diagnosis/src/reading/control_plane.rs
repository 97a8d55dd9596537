//! The control-plane check's pure half: its own finding rule (the reads the role was refused),
//! its face in the report, and the helpers diagnosis uses; compiled whatever the probe's
//! features (the reads themselves are the probe's checks/ec2.rs). The rules that judge the
//! configuration against the connections and calls span checks: diagnose/control_plane.rs.

use super::region::dns_suffix;
use super::{Check, SliceRules};
use crate::catalogue::FindingCode;
use crate::findings::{Expectations, Findings, HostRule};
use crate::report::{
    CheckKind, CheckStatus, ControlPlane, Evidence, ReadOutcome, Service, Severity,
};
use crate::results::ProbeResults;

/// The control-plane check's rules: one about the host.
pub struct ControlPlaneSlice;

impl SliceRules for ControlPlaneSlice {
    fn host_rules(&self) -> &'static [HostRule] {
        &[denied_reads_finding]
    }
}

/// The reads the role was refused. Premise: EC2 answered a denial to that read (a note only).
fn denied_reads_finding(r: &ProbeResults, _: &Expectations, f: &mut Findings) {
    if let Some(cp) = &r.control_plane {
        let denied = cp.denied_actions();
        if !denied.is_empty() {
            f.add(
            FindingCode::CONTROL_PLANE_DENIED,
            Severity::Note,
            "host",
            format!("the role may not read the VPC configuration ({})", denied.join(", ")),
            "The checks that need these reads are skipped; the path verdict rests on data-plane evidence.".into(),
            format!("To get confirmed verdicts, allow the role: {}", denied.join(", ")),
            vec!["ec2".into()],
        );
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::slice::findings_of;
    use crate::report::ControlPlaneRead;

    fn read(action: &str, outcome: ReadOutcome) -> ControlPlaneRead {
        ControlPlaneRead {
            action: action.into(),
            outcome,
            error: None,
        }
    }

    /// The reads EC2 refused are a note naming them, each once.
    #[test]
    fn refused_reads_are_a_note_that_names_them() {
        let exp = Expectations::default_run();
        let mut r = ProbeResults {
            control_plane: Some(ControlPlane {
                reads: vec![
                    read("ec2:DescribeRouteTables", ReadOutcome::Ok),
                    read("ec2:DescribeVpcEndpoints", ReadOutcome::Denied),
                    read("ec2:DescribeNetworkAcls", ReadOutcome::Denied),
                ],
                ..ControlPlane::default()
            }),
            ..ProbeResults::default()
        };
        let found = findings_of(&ControlPlaneSlice, &r, &exp);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].code, FindingCode::CONTROL_PLANE_DENIED);
        assert_eq!(found[0].severity, Severity::Note);
        assert_eq!(
            found[0].remediation,
            "To get confirmed verdicts, allow the role: ec2:DescribeNetworkAcls, ec2:DescribeVpcEndpoints"
        );

        r.control_plane = Some(ControlPlane {
            reads: vec![read("ec2:DescribeRouteTables", ReadOutcome::Failed)],
            ..ControlPlane::default()
        });
        assert!(findings_of(&ControlPlaneSlice, &r, &exp).is_empty());
    }
}
