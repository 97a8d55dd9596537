//! The network findings of a target: TCP to each address of a name and the TLS handshakes.
//! (The network ACL sweep of ephemeral ports holds its own rule: reading/nacl.rs.)

use std::collections::BTreeSet;

use super::{Expectations, Findings, ids, tcp_attempts};
use crate::catalogue::FindingCode;
use crate::reading::tls as tls_check;
use crate::report::*;
use crate::results::{ProbeResults, TargetSpec};

/// TCP: only the addresses the applications use decide; the VPC resolver's extra
/// answers are evidence for the hosts-file finding.
pub(super) fn tcp_findings(r: &ProbeResults, t: &TargetSpec, name: &str, f: &mut Findings) {
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
                crate::reading::tcp::suspects(outcome)
            ),
            tcp_remediation(outcome, r, t.service),
            ids(&these),
        );
    }
}

/// TLS.
pub(super) fn tls_findings(
    r: &ProbeResults,
    exp: &Expectations,
    t: &TargetSpec,
    name: &str,
    f: &mut Findings,
) {
    let all_attempts = tcp_attempts(r, name);
    let vpc_only: BTreeSet<&str> = all_attempts
        .iter()
        .filter(|a| a.origin == AddressOrigin::VpcResolver)
        .map(|a| a.address.as_str())
        .collect();
    let handshakes: Vec<&TlsHandshake> = r
        .tls
        .iter()
        .filter(|h| h.name == name && !vpc_only.contains(h.address.as_str()))
        .collect();
    let verified = handshakes.iter().any(|h| h.outcome == TlsOutcome::Verified);
    let intercepted: Vec<&TlsHandshake> = handshakes
        .iter()
        .filter(|h| tls_check::is_interception(h, &exp.expect_issuers))
        .copied()
        .collect();
    if let Some(h) = intercepted.first() {
        let leaf = h.chain.first();
        f.add(
            FindingCode::TLS_INTERCEPTED,
            Severity::Error,
            &t.id,
            format!("the certificate for {name} does not come from the service"),
            format!(
                "{} presented a certificate for [{}] issued by '{}' ({}); genuine service certificates are issued by {}.",
                h.address,
                leaf.map(|c| c.dns_names.join(", ")).unwrap_or_default(),
                leaf.map(|c| c.issuer.as_str()).unwrap_or("?"),
                h.error.as_deref().unwrap_or("trusted by this host"),
                exp.expect_issuers.join(" or ")
            ),
            FindingCode::TLS_INTERCEPTED.general_fix().into(),
            ids(&intercepted),
        );
    }
    let tls_failed: Vec<&TlsHandshake> = handshakes
        .iter()
        .filter(|h| !matches!(h.outcome, TlsOutcome::Verified | TlsOutcome::NotAttempted))
        .filter(|h| !tls_check::is_interception(h, &exp.expect_issuers))
        .copied()
        .collect();
    if let Some(h) = tls_failed.first() {
        f.add(
            FindingCode::TLS_FAILED,
            if verified {
                Severity::Warning
            } else {
                Severity::Error
            },
            &t.id,
            format!("TLS handshake with {name} fails at {}", h.address),
            h.error
                .clone()
                .unwrap_or_else(|| format!("{:?}", h.outcome)),
            FindingCode::TLS_FAILED.general_fix().into(),
            ids(&tls_failed),
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
