//! What the hop check says of a target's path: the reading of its traces (with the internet
//! canary's and, when it was read, the control plane's names for a private first hop), the
//! verdict it decides, and PATH_NOT_GATEWAY_ENDPOINT.

use std::net::IpAddr;

use super::path::{proxy_verdict, verdict, vpc_cidrs};
use super::{Expectations, Findings};
use crate::catalogue::FindingCode;
use crate::findings::ExpectPath;
use crate::reading::Check;
use crate::report::*;
use crate::results::{ProbeResults, TargetSpec};

/// What the hop check says of the path to a target's connected addresses.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum HopReading {
    /// Every traced address answered at TTL 1: nothing between the VPC router and the service.
    Direct { lines: Vec<String> },
    /// Something forwards the traffic before the service answers.
    Through {
        /// The address whose trace shows it, and its compact trace.
        address: String,
        line: String,
        /// The first hop that named itself: its TTL and address.
        first: Option<(u8, String)>,
        /// Whether that hop is a private address (or inside the VPC): a NAT gateway, NAT
        /// instance or appliance in the VPC; otherwise an internet router.
        private: bool,
        /// Whether the internet canary's trace has the same first hop: the device that carries
        /// the internet traffic (a NAT).
        canary_same: bool,
        /// The first hop's device when the control plane names it (a private hop only).
        device: Option<Box<HopDevice>>,
        /// The subnet route table's route for the address, when the table was read.
        route: Option<Box<RouteTaken>>,
    },
}

/// The device whose private address a hop is, as the control plane describes it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct HopDevice {
    /// e.g. "NAT gateway nat-0abc (subnet-0def)".
    pub name: String,
    /// What it is, shortly: "NAT gateway nat-0abc", "network interface eni-0abc of instance
    /// i-0def".
    pub label: String,
    /// Its id (nat-..., eni-...), as route targets name it.
    pub id: String,
    /// Where it is and what else the control plane says of it, for a finding's detail: "in
    /// subnet-0def (public 203.0.113.9, state available)".
    pub facts: String,
}

/// The subnet route table's route for an address.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct RouteTaken {
    pub table: String,
    pub address: String,
    pub target: String,
    /// Its destination: a CIDR or a prefix list.
    pub destination: String,
}

impl RouteTaken {
    fn line(&self) -> String {
        format!(
            "route table {} sends {} to {} ({})",
            self.table, self.address, self.target, self.destination
        )
    }
}

/// The NAT gateway whose private address `hop` is, when the VPC's NAT gateways were read; else
/// the network interface (an appliance's, a NAT instance's) when it was read.
pub(super) fn hop_device(r: &ProbeResults, hop: &str) -> Option<HopDevice> {
    let cp = r.control_plane.as_ref()?;
    let Some(nat) = cp.nat_gateway_at(hop) else {
        return cp.network_interface_at(hop).map(interface_device);
    };
    let subnet = nat
        .subnet_id
        .as_deref()
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    let mut facts = Vec::new();
    // The hop is one of its private addresses; the others say it has several.
    if nat.private_ips.len() > 1 {
        facts.push(format!("private {}", nat.private_ips.join(", ")));
    }
    if !nat.public_ips.is_empty() {
        facts.push(format!("public {}", nat.public_ips.join(", ")));
    }
    if let Some(c) = &nat.connectivity_type {
        facts.push(format!("connectivity {c}"));
    }
    facts.push(format!("state {}", nat.state));
    let within = nat
        .subnet_id
        .as_deref()
        .map(|s| format!("in {s} "))
        .unwrap_or_default();
    Some(HopDevice {
        name: format!("NAT gateway {}{subnet}", nat.id),
        label: format!("NAT gateway {}", nat.id),
        id: nat.id.clone(),
        facts: format!("{within}({})", facts.join(", ")),
    })
}

/// "network interface eni-0abc of instance i-0def": what the interface's description, type
/// and attachment say.
fn interface_device(eni: &crate::report::NetworkInterfaceFacts) -> HopDevice {
    let owner = match (&eni.instance_id, eni.interface_type.as_deref()) {
        (Some(instance), _) => format!(" of instance {instance}"),
        (None, Some(kind)) if kind != "interface" => format!(" ({kind})"),
        _ => String::new(),
    };
    let mut facts = Vec::new();
    if let Some(d) = &eni.description {
        facts.push(format!("\"{d}\""));
    }
    if let Some(kind) = &eni.interface_type {
        facts.push(format!("type {kind}"));
    }
    let within = eni
        .subnet_id
        .as_deref()
        .map(|s| format!("in {s} "))
        .unwrap_or_default();
    HopDevice {
        name: format!("network interface {}{owner}", eni.id),
        label: format!("network interface {}{owner}", eni.id),
        id: eni.id.clone(),
        facts: format!("{within}({})", facts.join(", ")),
    }
}

/// The route the subnet's route table (when read) gives `address`.
pub(super) fn route_taken(r: &ProbeResults, address: &str) -> Option<RouteTaken> {
    let cp = r.control_plane.as_ref()?;
    let table = cp.route_table.as_ref()?;
    let ip: IpAddr = address.parse().ok()?;
    let route = crate::vpc_rules::effective_route(table, ip, &cp.prefix_lists)?;
    Some(RouteTaken {
        table: table.id.clone(),
        address: address.to_string(),
        target: route.target.clone(),
        destination: route
            .destination_cidr
            .clone()
            .or_else(|| route.destination_prefix_list.clone())
            .unwrap_or_else(|| "?".into()),
    })
}

/// "hop 2 is 10.0.0.137, NAT gateway nat-0abc (subnet-0def)": a named private first hop, for
/// the verdicts the route table decides (the hop check is then only the trace line).
pub(super) fn named_hop_lines(reading: &HopReading) -> Vec<String> {
    match reading {
        HopReading::Through {
            first: Some((ttl, hop)),
            device: Some(device),
            ..
        } => vec![format!("hop {ttl} is {hop}, {}", device.name)],
        _ => Vec::new(),
    }
}

/// The hop traces of the addresses the target's clients connected to (each address and port
/// once), and the canary's, read together. None when no trace says anything (not run, or
/// nothing answered at any TTL).
pub(super) fn hop_reading(r: &ProbeResults, connected: &[&TcpAttempt]) -> Option<HopReading> {
    let traces: Vec<&HopTrace> = r
        .measured
        .of::<HopTrace>()
        .iter()
        .filter(|h| h.service.is_some())
        .filter(|h| {
            connected
                .iter()
                .any(|a| a.address == h.address && a.port == h.port)
        })
        .filter(|h| h.answered_at.is_some() || h.first_responder().is_some())
        .collect();
    if traces.is_empty() {
        return None;
    }
    let line = |h: &HopTrace| format!("hops {}: {}", h.address, h.compact());
    let through = traces
        .iter()
        .filter(|h| h.answered_at != Some(1))
        // A trace whose hops named themselves says more than one of silent hops.
        .min_by_key(|h| h.first_responder().is_none());
    let Some(h) = through else {
        return Some(HopReading::Direct {
            lines: traces.iter().map(|h| line(h)).collect(),
        });
    };
    let first = h.first_responder().map(|(ttl, a)| (ttl, a.to_string()));
    let vpc = vpc_cidrs(r);
    let private = first
        .as_ref()
        .and_then(|(_, a)| a.parse::<IpAddr>().ok())
        .is_some_and(|ip| crate::ranges::is_private(ip) || vpc.iter().any(|n| n.contains(&ip)));
    let canary_first = r
        .measured
        .of::<HopTrace>()
        .iter()
        .find(|c| c.service.is_none())
        .and_then(|c| c.first_responder().map(|(_, a)| a.to_string()));
    let canary_same = matches!((&first, &canary_first), (Some((_, a)), Some(c)) if a == c);
    let device = first
        .as_ref()
        .filter(|_| private)
        .and_then(|(_, hop)| hop_device(r, hop))
        .map(Box::new);
    Some(HopReading::Through {
        address: h.address.clone(),
        line: line(h),
        first,
        private,
        canary_same,
        device,
        route: route_taken(r, &h.address).map(Box::new),
    })
}

/// With every address in the service's ranges: what the hop check decides, if anything.
pub(super) fn hop_verdict(reading: &HopReading, mut evidence: Vec<String>) -> PathVerdict {
    let decided = |kind, mut evidence: Vec<String>, line: String| {
        evidence.push(line);
        PathVerdict {
            kind,
            confidence: Confidence::Confirmed,
            reachable: true,
            evidence,
            to_confirm: None,
            decided_by: Some(PathEvidence::HopCount),
        }
    };
    match reading {
        HopReading::Direct { lines } => {
            evidence.extend(lines.iter().cloned());
            decided(
                PathKind::GatewayEndpoint,
                evidence,
                "the service answered at the first hop: the VPC router delivered the traffic straight to it, as it does through a gateway endpoint (a NAT gateway or appliance would answer first)".into(),
            )
        }
        HopReading::Through {
            line,
            first: Some((ttl, hop)),
            private: true,
            canary_same: true,
            device,
            route,
            ..
        } => {
            evidence.push(line.clone());
            evidence.extend(route.as_deref().map(RouteTaken::line));
            decided(
                PathKind::Internet,
                evidence,
                match device {
                    Some(d) => format!(
                        "hop {ttl} is {hop}, {}, also the internet canary's first hop: it carries the traffic to the internet, not the gateway endpoint",
                        d.name
                    ),
                    None => format!(
                        "hop {ttl} is {hop}, a private address that is also the internet canary's first hop: a NAT carries the traffic to the internet, not the gateway endpoint"
                    ),
                },
            )
        }
        HopReading::Through {
            line,
            first: Some((ttl, hop)),
            private: false,
            ..
        } => {
            evidence.push(line.clone());
            decided(
                PathKind::Internet,
                evidence,
                format!(
                    "hop {ttl} is {hop}, a public address: the traffic crosses the internet before the service"
                ),
            )
        }
        HopReading::Through {
            line,
            first: Some((ttl, hop)),
            device,
            route,
            ..
        } => {
            evidence.push(line.clone());
            let to_confirm = private_hop_evidence(*ttl, hop, device, route, &mut evidence);
            verdict(
                PathKind::Unknown,
                Confidence::Unknown,
                true,
                evidence,
                Some(to_confirm.as_str()),
            )
        }
        HopReading::Through {
            line, first: None, ..
        } => {
            evidence.push(line.clone());
            evidence.push("the service answered only after hops that sent nothing back (ICMP filtered or rate-limited): something forwards the traffic before it, so it is not delivered straight through a gateway endpoint".into());
            verdict(
                PathKind::Unknown,
                Confidence::Unknown,
                true,
                evidence,
                Some(
                    "the subnet's route table (ec2:DescribeRouteTables) says what carries the traffic",
                ),
            )
        }
    }
}

/// A private first hop that is not the canary's: what it is (named when the control plane
/// says) and the route there; returns what would confirm where it leads.
fn private_hop_evidence(
    ttl: u8,
    hop: &str,
    device: &Option<Box<HopDevice>>,
    route: &Option<Box<RouteTaken>>,
    evidence: &mut Vec<String>,
) -> String {
    match (device, route) {
        (Some(d), route) => {
            evidence.push(format!(
                "hop {ttl} is {hop}, {}: it forwards the traffic before the service",
                d.name
            ));
            match route {
                Some(route) => {
                    evidence.push(route.line());
                    format!(
                        "whether {} leads to the internet (a public NAT gateway does) or to another network",
                        d.id
                    )
                }
                None => format!(
                    "the subnet's route table (ec2:DescribeRouteTables) names the route that sends the traffic to {}",
                    d.id
                ),
            }
        }
        (None, route) => {
            evidence.push(format!("hop {ttl} is {hop}, a private address: a NAT gateway, NAT instance or firewall appliance forwards the traffic before the service"));
            evidence.extend(route.as_deref().map(RouteTaken::line));
            format!(
                "the subnet's route table (ec2:DescribeRouteTables) names the device behind {hop} and whether it leads to the internet"
            )
        }
    }
}

/// PATH_NOT_GATEWAY_ENDPOINT from the hop check: the gateway endpoint is expected, the
/// service's addresses are in its ranges, and something answered before the service. An ICMP
/// sender is proof (an error); silent hops only (a filtered or lost probe) a warning.
pub(super) fn hop_findings(r: &ProbeResults, exp: &Expectations, t: &TargetSpec, f: &mut Findings) {
    if exp.expect_path != ExpectPath::Gateway || proxy_verdict(r, t).is_some() {
        return;
    }
    let connected: Vec<&TcpAttempt> = r
        .tcp
        .iter()
        .filter(|a| {
            t.endpoint_names.contains(&a.name)
                && a.outcome == TcpOutcome::Connected
                && a.origin == AddressOrigin::Application
                && a.address_class.fits_service()
        })
        .collect();
    let Some(HopReading::Through {
        address,
        line,
        first,
        private,
        canary_same,
        device,
        route,
    }) = hop_reading(r, &connected)
    else {
        return;
    };
    let ids: Vec<String> = r
        .measured
        .of::<HopTrace>()
        .iter()
        .filter(|h| h.address == address && h.service.is_some())
        .map(Check::id)
        .collect();
    // The hop's own device when the control plane names it; else the route table's target
    // for the address (nat-…, eni-…) when the table was read.
    let named = match (&device, &route) {
        (Some(d), _) => format!(", {}", d.label),
        (None, Some(route)) => format!(", {}", route.target),
        (None, None) => String::new(),
    };
    let routed = route
        .as_ref()
        .map(|rt| {
            format!(
                " Route table {} sends {} to {} ({}).",
                rt.table, rt.address, rt.target, rt.destination
            )
        })
        .unwrap_or_default();
    let (severity, title, detail) = match &first {
        Some((ttl, hop)) => (
            Severity::Error,
            format!(
                "traffic to {} passes {hop} (hop {ttl}{named}) before the service: not the gateway endpoint",
                t.id
            ),
            format!(
                "The hop check to {address}: {line}. {}{routed} The VPC router is not a hop: through the gateway endpoint the service answers at the first hop.",
                match (private, canary_same, &device) {
                    (true, true, Some(d)) => format!(
                        "{hop} is {} {}, and is also the internet canary's first hop.",
                        d.label, d.facts
                    ),
                    (true, false, Some(d)) => format!("{hop} is {} {}.", d.label, d.facts),
                    (true, true, None) => format!(
                        "{hop} is private and is also the internet canary's first hop: a NAT gateway or NAT instance."
                    ),
                    (true, false, None) => format!(
                        "{hop} is private: a NAT gateway, NAT instance or firewall appliance in the VPC."
                    ),
                    _ => format!("{hop} is public: an internet router."),
                }
            ),
        ),
        None => (
            Severity::Warning,
            format!(
                "traffic to {} answers only after silent hops: not straight through the gateway endpoint",
                t.id
            ),
            format!(
                "The hop check to {address}: {line}. The hops before it sent no ICMP (filtered or rate-limited), or a probe was lost; through the gateway endpoint the service answers at the first hop."
            ),
        ),
    };
    let remediation = match &device {
        Some(d) => format!(
            "{} {}",
            leave_device_fix(r, t, d, route.as_deref()),
            FindingCode::PATH_NOT_GATEWAY_ENDPOINT.general_fix()
        ),
        None => FindingCode::PATH_NOT_GATEWAY_ENDPOINT.general_fix().into(),
    };
    f.add(
        FindingCode::PATH_NOT_GATEWAY_ENDPOINT,
        severity,
        &t.id,
        title,
        detail,
        remediation,
        ids,
    );
}

/// How the target's traffic leaves the named device for the gateway endpoint: the endpoint's
/// prefix-list route in the subnet's route table (more specific than a default route to it).
fn leave_device_fix(
    r: &ProbeResults,
    t: &TargetSpec,
    device: &HopDevice,
    route: Option<&RouteTaken>,
) -> String {
    let cp = r.control_plane.as_ref();
    let endpoint = cp.and_then(|cp| cp.endpoints.iter().find(|e| e.service == t.service));
    // The endpoint's route is there but a more specific one wins: that route is the fix.
    let endpoint_routed = cp.is_some_and(|cp| {
        let list = cp.prefix_lists.iter().find(|p| p.service == t.service);
        match (cp.route_table.as_ref(), endpoint, list) {
            (Some(table), Some(ep), Some(pl)) => {
                crate::vpc_rules::endpoint_route(table, &pl.id, &ep.id).is_some()
            }
            _ => false,
        }
    });
    if let (true, Some(rt)) = (endpoint_routed, route) {
        let default = matches!(rt.destination.as_str(), "0.0.0.0/0" | "::/0");
        return if default {
            format!(
                "The traffic to {} goes through {}: route table {} holds the gateway endpoint's prefix-list route, but its entries (as read) do not hold {}, so the default route sends it to {}; compare the service's addresses with the prefix list.",
                t.id, device.name, rt.table, rt.address, rt.target
            )
        } else {
            format!(
                "The traffic to {} goes through {}: route {} -> {} in route table {} is more specific than the gateway endpoint's prefix-list route; delete it or point it at the endpoint's path.",
                t.id, device.name, rt.destination, rt.target, rt.table
            )
        };
    }
    let table = route.map_or("<rtb>", |rt| rt.table.as_str());
    let how = match endpoint {
        Some(ep) => format!(
            "aws ec2 modify-vpc-endpoint --vpc-endpoint-id {} --add-route-table-ids {table}",
            ep.id
        ),
        None => format!(
            "aws ec2 create-vpc-endpoint --vpc-endpoint-type Gateway --service-name com.amazonaws.{}.{} --vpc-id <vpc> --route-table-ids {table}",
            r.region.effective.as_deref().unwrap_or("<region>"),
            t.service.as_str()
        ),
    };
    let via = match route {
        Some(rt) if rt.target != device.id => format!(
            " (route table {} sends it to {} ({}), which leads to {})",
            rt.table, rt.target, rt.destination, device.id
        ),
        _ => String::new(),
    };
    format!(
        "The traffic to {} goes through {}{via}: give the subnet's route table the gateway endpoint's prefix-list route ({how}); it is more specific than a default route, so the traffic stops taking {}.",
        t.id, device.name, device.id
    )
}
