//! The TCP check's pure half: its finding rule (TCP_TIMEOUT, TCP_REFUSED, TCP_UNREACHABLE for
//! the addresses the applications use), how a connect reads as a report record, and what a
//! failed one points to (the connect is the probe's checks/tcp.rs).

use super::{Check, SliceRules, ids};
use crate::catalogue::FindingCode;
use crate::findings::{Expectations, Findings, NameRule};
use crate::report::*;
use crate::results::{ProbeResults, TargetSpec};

/// The TCP check's rules: one about each name of a target.
pub struct TcpSlice;

impl SliceRules for TcpSlice {
    fn name_rules(&self) -> &'static [NameRule] {
        &[tcp_findings]
    }
}

/// Every TCP attempt to an address of `name`, whoever answered it.
pub fn tcp_attempts<'a>(r: &'a ProbeResults, name: &str) -> Vec<&'a TcpAttempt> {
    r.tcp.iter().filter(|a| a.name == name).collect()
}

/// TCP: only the addresses the applications use decide; the VPC resolver's extra
/// answers are evidence for the hosts-file finding.
fn tcp_findings(r: &ProbeResults, _: &Expectations, t: &TargetSpec, name: &str, f: &mut Findings) {
    let all_attempts = tcp_attempts(r, name);
    let attempts: Vec<&TcpAttempt> = all_attempts
        .iter()
        .filter(|a| a.origin == AddressOrigin::Application)
        .copied()
        .collect();
    let connected = attempts.iter().any(|a| a.outcome == TcpOutcome::Connected);
    let v4_ok = attempts
        .iter()
        .any(|a| a.outcome == TcpOutcome::Connected && !a.address.contains(':'));
    // An IPv6 address without an IPv6 route is normal on IPv4-only subnets when IPv4 works.
    let failed: Vec<&&TcpAttempt> = attempts
        .iter()
        .filter(|a| a.outcome != TcpOutcome::Connected)
        .filter(|a| !(v4_ok && a.address.contains(':') && a.outcome == TcpOutcome::Unreachable))
        .collect();
    for (outcome, code) in [
        (TcpOutcome::Timeout, FindingCode::TCP_TIMEOUT),
        (TcpOutcome::Refused, FindingCode::TCP_REFUSED),
        (TcpOutcome::Unreachable, FindingCode::TCP_UNREACHABLE),
    ] {
        let these: Vec<&TcpAttempt> = failed
            .iter()
            .filter(|a| a.outcome == outcome)
            .map(|a| **a)
            .collect();
        if these.is_empty() {
            continue;
        }
        let addrs: Vec<&str> = these.iter().map(|a| a.address.as_str()).collect();
        // IPv6 answers dropped silently while IPv4 connects: clients that try IPv6 first
        // without Happy Eyeballs (botocore, measured in the lab) wait their whole connect
        // timeout on every new connection before IPv4, so this is not "partial".
        let v6_stall = connected
            && v4_ok
            && outcome == TcpOutcome::Timeout
            && these.iter().any(|a| a.address.contains(':'));
        let severity = if connected && !v6_stall {
            Severity::Warning
        } else {
            Severity::Error
        };
        f.add(
            code,
            severity,
            &t.id,
            format!(
                "TCP 443 to {name} {} ({})",
                match outcome {
                    TcpOutcome::Timeout => "times out",
                    TcpOutcome::Refused => "is refused",
                    _ => "is unreachable",
                },
                addrs.join(", ")
            ),
            format!(
                "{}{} Suspects: {}.",
                these[0]
                    .error
                    .as_deref()
                    .map(|e| format!("{e}. "))
                    .unwrap_or_default(),
                if v6_stall {
                    "IPv4 connects, but clients that try the IPv6 answer first (botocore, the AWS CLI) wait their whole connect timeout (60 s by default) on every new connection before falling back; curl falls back after 200 ms."
                } else if connected {
                    "Other addresses of the name connect, so this is partial."
                } else {
                    "No address of the name connects."
                },
                suspects(outcome)
            ),
            tcp_remediation(outcome, r, t.service),
            ids(&these),
        );
    }
}

fn tcp_remediation(outcome: TcpOutcome, r: &ProbeResults, service: Service) -> String {
    let i = r.instance.as_ref();
    let subnet = i
        .and_then(|i| i.subnet_id.as_deref())
        .unwrap_or("<subnet-id>");
    let sgs = i
        .map(|i| i.security_group_ids.join(" "))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "<sg-id>".into());
    let region = r.region.effective.as_deref().unwrap_or("<region>");
    match outcome {
        TcpOutcome::Timeout => format!(
            "Check in order: (1) the route table of {subnet} has a route to the com.amazonaws.{region}.{svc} prefix list via the gateway endpoint: aws ec2 describe-route-tables --filters Name=association.subnet-id,Values={subnet}; (2) the security groups {sgs} allow egress TCP 443 to that prefix list: aws ec2 describe-security-groups --group-ids {sgs}; (3) the network ACL of {subnet} allows TCP 443 out and 1024-65535 in: aws ec2 describe-network-acls --filters Name=association.subnet-id,Values={subnet}.",
            svc = service.as_str()
        ),
        TcpOutcome::Refused => "Look for a REJECT rule in the host firewall (iptables -S; nft list ruleset) or an appliance answering for the service address.".into(),
        _ => "Check the instance's routes (ip route get <address>) and host firewall; a blackhole, unreachable or prohibit route gives this error.".into(),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::slice::{findings_of, s3_target};

    const NAME: &str = "s3.eu-west-1.amazonaws.com";

    fn attempt(address: &str, outcome: TcpOutcome) -> TcpAttempt {
        crate::fixtures::tcp_attempt(NAME, address, outcome)
    }

    fn found(tcp: Vec<TcpAttempt>) -> Vec<(FindingCode, Severity)> {
        let r = ProbeResults {
            targets: vec![s3_target(NAME)],
            tcp,
            ..ProbeResults::default()
        };
        findings_of(&TcpSlice, &r, &Expectations::default_run())
            .iter()
            .map(|f| (f.code, f.severity))
            .collect()
    }

    /// With IPv4 connecting: an IPv6 address without a route is normal, one that times out
    /// stalls the clients that try IPv6 first (an error), a second IPv4 address that times out
    /// is partial (a warning); with nothing connecting, an error. Only the applications'
    /// addresses count.
    #[test]
    fn what_a_failed_connect_weighs_beside_the_others() {
        let v4 = attempt("52.218.1.1", TcpOutcome::Connected);
        assert_eq!(
            found(vec![
                v4.clone(),
                attempt("2600:1f18::1", TcpOutcome::Unreachable)
            ]),
            vec![]
        );
        assert_eq!(
            found(vec![
                v4.clone(),
                attempt("2600:1f18::1", TcpOutcome::Timeout)
            ]),
            vec![(FindingCode::TCP_TIMEOUT, Severity::Error)]
        );
        assert_eq!(
            found(vec![v4.clone(), attempt("52.218.1.2", TcpOutcome::Timeout)]),
            vec![(FindingCode::TCP_TIMEOUT, Severity::Warning)]
        );
        assert_eq!(
            found(vec![attempt("52.218.1.1", TcpOutcome::Refused)]),
            vec![(FindingCode::TCP_REFUSED, Severity::Error)]
        );
        let mut other = attempt("52.218.9.9", TcpOutcome::Timeout);
        other.origin = AddressOrigin::VpcResolver;
        assert_eq!(found(vec![v4, other]), vec![]);
    }
}
