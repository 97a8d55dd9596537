//! The path verdict of a target: gateway endpoint, interface endpoint, proxy, internet or
//! unknown, with the evidence and how sure it is.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::Expectations;
use super::hops::{HopReading, hop_reading, hop_verdict, named_hop_lines};
use crate::proxy_rules::HttpClientKind;
use crate::reading::tls as tls_check;
use crate::report::*;
use crate::results::{ProbeResults, TargetSpec};

pub(super) fn verdict(
    kind: PathKind,
    confidence: Confidence,
    reachable: bool,
    evidence: Vec<String>,
    to_confirm: Option<&str>,
) -> PathVerdict {
    PathVerdict {
        kind,
        confidence,
        reachable,
        evidence,
        to_confirm: to_confirm.map(str::to_string),
        decided_by: None,
    }
}

/// The VPC's CIDRs as IMDS gave them.
pub(super) fn vpc_cidrs(r: &ProbeResults) -> Vec<ipnet::IpNet> {
    r.instance
        .as_ref()
        .map(|i| i.vpc_cidrs.iter().filter_map(|c| c.parse().ok()).collect())
        .unwrap_or_default()
}

pub(super) fn path_verdict(
    r: &ProbeResults,
    exp: &Expectations,
    t: &TargetSpec,
    canary: Option<CanaryOutcome>,
) -> PathVerdict {
    let mut evidence = Vec::new();
    let names = &t.endpoint_names;
    let for_names = |n: &String| names.contains(n);
    if let Some(v) = proxy_verdict(r, t) {
        return v;
    }
    // A name the applications resolve (hosts file, stub) is judged by their answer.
    let classes: Vec<AddressClass> = names
        .iter()
        .flat_map(|n| {
            match r
                .app_dns
                .iter()
                .find(|d| &d.name == n && d.answered_by.is_some())
            {
                Some(app) => app.addresses.iter().map(|a| a.class).collect::<Vec<_>>(),
                None => r
                    .dns
                    .iter()
                    .filter(|d| &d.name == n && d.resolver == ResolverKind::System)
                    .flat_map(|d| d.addresses.iter().map(|a| a.class))
                    .collect(),
            }
        })
        .collect();
    let connected: Vec<&TcpAttempt> = r
        .tcp
        .iter()
        .filter(|a| {
            for_names(&a.name)
                && a.outcome == TcpOutcome::Connected
                && a.origin == AddressOrigin::Application
        })
        .collect();
    let intercepted = r
        .tls
        .iter()
        .any(|h| for_names(&h.name) && tls_check::is_interception(h, &exp.expect_issuers));
    let reachable_direct = !connected.is_empty();
    if let Some(ep) = &t.endpoint_override {
        evidence.push(format!("an endpoint override sends the SDK to {ep}"));
    }
    if classes.contains(&AddressClass::Private) {
        evidence.push(
            "the service name resolves to private addresses (interface endpoint private DNS)"
                .into(),
        );
        let mut v = verdict(
            PathKind::InterfaceEndpoint,
            Confidence::Inferred,
            reachable_direct,
            evidence,
            None,
        );
        match hop_reading(r, &connected) {
            Some(HopReading::Direct { lines }) => {
                v.evidence.extend(lines);
                v.evidence.push("the interface endpoint answered at the first hop: nothing forwards the traffic on the way".into());
                v.confidence = Confidence::Confirmed;
                v.decided_by = Some(PathEvidence::HopCount);
            }
            Some(HopReading::Through { line, .. }) => v.evidence.push(line),
            None => {}
        }
        return v;
    }
    if intercepted {
        evidence.push("a TLS-inspecting device answered with its own certificate".into());
        return verdict(
            PathKind::Proxy,
            Confidence::Inferred,
            reachable_direct,
            evidence,
            None,
        );
    }
    if !reachable_direct {
        evidence.push("no TCP connection to the service's addresses".into());
        return verdict(
            PathKind::Unknown,
            Confidence::Unknown,
            false,
            evidence,
            None,
        );
    }
    if let Some(v) = call_evidence(r, t, &mut evidence) {
        return v;
    }
    let reading = hop_reading(r, &connected);
    if let Some(mut v) = confirmed_by_route_table(r, t, &connected, &mut evidence) {
        if v.confidence == Confidence::Confirmed {
            v.decided_by = Some(PathEvidence::ControlPlane);
        }
        match reading {
            Some(HopReading::Direct { lines }) => v.evidence.extend(lines),
            Some(ref through @ HopReading::Through { ref line, .. }) => {
                v.evidence.push(line.clone());
                v.evidence.extend(named_hop_lines(through));
            }
            None => {}
        }
        return v;
    }
    range_verdict(r, t, canary, &classes, &connected, reading, evidence)
}

/// The SDK sends a name of the target through a proxy: the proxy is the path.
pub(super) fn proxy_verdict(r: &ProbeResults, t: &TargetSpec) -> Option<PathVerdict> {
    let mut evidence = Vec::new();
    let names = &t.endpoint_names;
    let for_names = |n: &String| names.contains(n);
    let proxied = r.proxy_env.as_ref().and_then(|env| {
        names.iter().find_map(|n| {
            crate::reading::proxy::decision_for(
                env,
                HttpClientKind::AwsSdkRust,
                &format!("https://{n}/"),
            )
            .and_then(|d| d.proxy.as_ref().map(|p| (n, p, d)))
        })
    });
    let (name, proxy, decision) = proxied?;
    evidence.push(format!(
        "the SDK sends {name} through {} ({})",
        proxy.url_redacted, decision.explanation
    ));
    let tunnelled = r
        .measured
        .of::<ProxyProbe>()
        .iter()
        .any(|p| for_names(&p.name) && p.outcome == ProxyOutcome::Tunnelled);
    evidence.push(if tunnelled {
        "the proxy opened a CONNECT tunnel".into()
    } else {
        "the proxy did not open a tunnel".into()
    });
    Some(verdict(
        PathKind::Proxy,
        Confidence::Inferred,
        tunnelled,
        evidence,
        None,
    ))
}

/// What the signed calls' answers say: a Via header is a proxy's; a request id with the peer
/// is evidence the service answered directly.
fn call_evidence(
    r: &ProbeResults,
    t: &TargetSpec,
    evidence: &mut Vec<String>,
) -> Option<PathVerdict> {
    // A Via header on an answer means something relayed it, whatever DNS said.
    let calls: Vec<&CallResult> = r.calls.iter().filter(|c| c.target == t.id).collect();
    if let Some(via) = calls.iter().find_map(|c| c.headers.get("via")) {
        evidence.push(format!("answers carry 'Via: {via}': a proxy relayed them"));
        return Some(verdict(
            PathKind::Proxy,
            Confidence::Inferred,
            true,
            std::mem::take(evidence),
            None,
        ));
    }
    let answered = calls.iter().find(|c| {
        c.peer.is_some()
            && c.proxy.is_none()
            && matches!(c.outcome, CallOutcome::Ok | CallOutcome::ServiceError)
            && (c.headers.contains_key("x-amz-request-id")
                || c.headers.contains_key("x-amzn-requestid"))
    });
    if let Some(c) = answered {
        let id = c
            .headers
            .get("x-amz-request-id")
            .or_else(|| c.headers.get("x-amzn-requestid"))
            .cloned()
            .unwrap_or_default();
        evidence.push(format!(
            "the signed {} call went to {} and the service answered {} (request id {id}{})",
            c.operation,
            c.peer.as_deref().unwrap_or("?"),
            c.status.unwrap_or(0),
            c.headers
                .get("server")
                .map(|s| format!(", Server {s}"))
                .unwrap_or_default()
        ));
    }
    None
}

/// Without the route table: the connected addresses' ranges and the internet canary decide.
fn range_verdict(
    r: &ProbeResults,
    t: &TargetSpec,
    canary: Option<CanaryOutcome>,
    classes: &[AddressClass],
    connected: &[&TcpAttempt],
    reading: Option<HopReading>,
    mut evidence: Vec<String>,
) -> PathVerdict {
    let confirm_hint = "let the instance role read the VPC configuration (ec2:DescribeRouteTables, ec2:DescribeVpcEndpoints) or test a bucket policy with aws:SourceVpce";
    // A service without published ranges (S3 Express One Zone) has no "outside": its public
    // addresses are left to the hop check and the canary, as those in range are.
    let all_in_range = !classes.is_empty() && classes.iter().all(|c| c.fits_service());
    let unpublished = classes.contains(&AddressClass::Unpublished);
    let peers: Vec<&str> = connected
        .iter()
        .map(|a| a.address.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if all_in_range && t.endpoint_override.is_none() {
        evidence.push(if unpublished {
            format!(
                "connected to {}; {} publishes no address ranges (AWS's ip-ranges.json lists none), so only its prefix list (control plane) or the hop check can place them",
                peers.join(", "),
                t.service.display_name()
            )
        } else {
            format!(
                "connected to {} inside the {} ranges of {}",
                peers.join(", "),
                t.service.ranges_name(),
                r.region.effective.as_deref().unwrap_or("the region")
            )
        });
        evidence.push("no proxy applies".into());
        if let Some(reading) = &reading {
            match canary {
                Some(CanaryOutcome::Reachable) => evidence.push(
                    "the internet canary is reachable: a NAT or internet gateway path exists too"
                        .into(),
                ),
                Some(_) => evidence
                    .push("the internet canary is unreachable: there is no other path".into()),
                None => {}
            }
            return hop_verdict(reading, evidence);
        }
        match canary {
            Some(CanaryOutcome::Unreachable) | Some(CanaryOutcome::NotResolved) => {
                evidence.push("the internet canary is unreachable: there is no other path".into());
                verdict(
                    PathKind::GatewayEndpoint,
                    Confidence::Inferred,
                    true,
                    evidence,
                    Some(
                        "the control-plane check (route table holds the endpoint's prefix-list route) would confirm it",
                    ),
                )
            }
            Some(CanaryOutcome::Reachable) => {
                evidence.push(
                    "the internet canary is reachable: a NAT or internet gateway path exists too"
                        .into(),
                );
                verdict(
                    PathKind::Unknown,
                    Confidence::Unknown,
                    true,
                    evidence,
                    Some(confirm_hint),
                )
            }
            None => {
                evidence.push("the internet canary is off".into());
                verdict(
                    PathKind::Unknown,
                    Confidence::Unknown,
                    true,
                    evidence,
                    Some(confirm_hint),
                )
            }
        }
    } else {
        evidence.push(format!(
            "connected to {} outside the service's regional ranges",
            peers.join(", ")
        ));
        match reading {
            Some(HopReading::Direct { lines }) => evidence.extend(lines),
            Some(ref through @ HopReading::Through { ref line, .. }) => {
                evidence.push(line.clone());
                evidence.extend(named_hop_lines(through));
            }
            None => {}
        }
        if canary == Some(CanaryOutcome::Reachable) {
            evidence.push("the internet canary is reachable".into());
            verdict(
                PathKind::Internet,
                Confidence::Inferred,
                true,
                evidence,
                None,
            )
        } else {
            verdict(
                PathKind::Unknown,
                Confidence::Unknown,
                true,
                evidence,
                Some(confirm_hint),
            )
        }
    }
}

/// With the route table read: the route each peer really takes.
fn confirmed_by_route_table(
    r: &ProbeResults,
    t: &TargetSpec,
    connected: &[&TcpAttempt],
    evidence: &mut Vec<String>,
) -> Option<PathVerdict> {
    let cp = r.control_plane.as_ref()?;
    let table = cp.route_table.as_ref()?;
    let peers: Vec<IpAddr> = connected
        .iter()
        .filter_map(|a| a.address.parse().ok())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if peers.is_empty() {
        return None;
    }
    let routes: Vec<(IpAddr, &RouteFacts)> = peers
        .iter()
        .filter_map(|ip| {
            crate::vpc_rules::effective_route(table, *ip, &cp.prefix_lists).map(|r| (*ip, r))
        })
        .collect();
    let endpoint = cp.endpoints.iter().find(|e| e.service == t.service);
    let pl = cp.prefix_lists.iter().find(|p| p.service == t.service);
    if let (Some(ep), Some(pl)) = (endpoint, pl) {
        let in_list = |ip: &IpAddr| {
            pl.cidrs
                .iter()
                .filter_map(|c| c.parse::<ipnet::IpNet>().ok())
                .any(|n| n.contains(ip))
        };
        if routes.len() == peers.len()
            && routes.iter().all(|(_, r)| r.target == ep.id)
            && peers.iter().all(in_list)
        {
            evidence.push(format!(
                "route table {} sends {} to {} through {}, and every peer is in {}",
                table.id, pl.id, ep.id, pl.name, pl.id
            ));
            return Some(PathVerdict {
                kind: PathKind::GatewayEndpoint,
                confidence: Confidence::Confirmed,
                reachable: true,
                evidence: std::mem::take(evidence),
                to_confirm: None,
                decided_by: None,
            });
        }
    }
    if let Some((ip, route)) = routes
        .iter()
        .find(|(_, r)| r.target.starts_with("igw-") || r.target.starts_with("nat-"))
    {
        evidence.push(format!(
            "route table {} sends {ip} to {} ({}): the traffic leaves through the internet",
            table.id,
            route.target,
            route.destination_cidr.as_deref().unwrap_or("prefix list")
        ));
        return Some(PathVerdict {
            kind: PathKind::Internet,
            confidence: Confidence::Confirmed,
            reachable: true,
            evidence: std::mem::take(evidence),
            to_confirm: None,
            decided_by: None,
        });
    }
    // Whatever carried the traffic, the route table proves it was not the gateway endpoint.
    let has_endpoint_route = match (endpoint, pl) {
        (Some(ep), Some(pl)) => crate::vpc_rules::endpoint_route(table, &pl.id, &ep.id).is_some(),
        _ => false,
    };
    if cp.read_ok("ec2:DescribeVpcEndpoints") && !has_endpoint_route {
        evidence.push(format!(
            "route table {} has no route to a gateway endpoint for {}",
            table.id,
            t.service.as_str()
        ));
        return Some(PathVerdict {
            kind: PathKind::Unknown,
            confidence: Confidence::Unknown,
            reachable: true,
            evidence: std::mem::take(evidence),
            to_confirm: Some(
                "the traffic works but not through a gateway endpoint: look for a NAT, proxy, peering or transit route".into(),
            ),
            decided_by: None,
        });
    }
    None
}
