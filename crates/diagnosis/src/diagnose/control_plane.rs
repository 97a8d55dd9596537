//! The VPC's configuration (when the role may read it) turns symptoms into causes: the
//! gateway endpoint, its route, security groups, network ACLs, DNS support, the endpoint
//! policy. These rules judge the configuration against the addresses the target's
//! connections and signed calls used, so they span checks; the control-plane check's own rule
//! (the reads it was refused) is reading/control_plane.rs, Reachability Analyzer's
//! reading/reachability.rs.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::{Expectations, Findings};
use crate::catalogue::FindingCode;
use crate::findings::ExpectPath;
use crate::report::*;
use crate::results::{ProbeResults, TargetSpec};

/// The applications connect over a family the endpoint does not serve (IPv6 to an IPv4-only
/// gateway endpoint, or the reverse): that traffic cannot take the endpoint. Premise: the
/// endpoint's IP address type was read, and only the addresses the applications use count.
fn address_family_finding(r: &ProbeResults, t: &TargetSpec, ep: &EndpointFacts, f: &mut Findings) {
    let Some(kind) = ep.ip_address_type.as_deref() else {
        return;
    };
    let serves_v4 = !kind.eq_ignore_ascii_case("ipv6");
    let serves_v6 = kind.eq_ignore_ascii_case("dualstack") || kind.eq_ignore_ascii_case("ipv6");
    let used: Vec<&TcpAttempt> = r
        .tcp
        .iter()
        .filter(|a| t.endpoint_names.contains(&a.name) && a.origin == AddressOrigin::Application)
        .collect();
    let unserved: Vec<&&TcpAttempt> = used
        .iter()
        .filter(|a| {
            let v6 = a.address.contains(':');
            (v6 && !serves_v6) || (!v6 && !serves_v4)
        })
        .collect();
    if unserved.is_empty() {
        return;
    }
    let family = if unserved[0].address.contains(':') {
        "IPv6"
    } else {
        "IPv4"
    };
    let connected: Vec<&str> = unserved
        .iter()
        .filter(|a| a.outcome == TcpOutcome::Connected)
        .map(|a| a.address.as_str())
        .collect();
    let addrs: Vec<&str> = unserved.iter().map(|a| a.address.as_str()).collect();
    // Connected: that traffic leaves another way (internet or egress-only gateway), a leak.
    // Not connected: clients fall back to the other family after a delay, if they do at all.
    let severity = if connected.is_empty() {
        Severity::Warning
    } else {
        Severity::Error
    };
    f.add(
        FindingCode::ENDPOINT_ADDRESS_FAMILY,
        severity,
        &t.id,
        format!(
            "the applications reach {} over {family}, which the {kind} gateway endpoint {} does not serve",
            t.service.display_name(),
            ep.id
        ),
        format!(
            "The applications' addresses include {} ({family}); the endpoint's IP address type is {kind}. {}",
            addrs.join(", "),
            if connected.is_empty() {
                "Those connections fail, so clients wait before trying the other family.".to_string()
            } else {
                format!("{} connected anyway: that traffic leaves by another path, not through the endpoint.", connected.join(", "))
            }
        ),
        format!(
            "aws ec2 modify-vpc-endpoint --vpc-endpoint-id {} --ip-address-type dualstack (the subnet needs an IPv6 CIDR), or turn dual-stack off in the clients (AWS_USE_DUALSTACK_ENDPOINT / use_dualstack_endpoint).",
            ep.id
        ),
        vec!["ec2".to_string()],
    );
}

/// What every control-plane finding of one target looks at.
struct Vpc<'a> {
    r: &'a ProbeResults,
    t: &'a TargetSpec,
    cp: &'a ControlPlane,
    instance: Option<&'a InstanceFacts>,
    vpc: &'a str,
    endpoint: Option<&'a EndpointFacts>,
    prefix_list: Option<&'a PrefixListFacts>,
    peers: Vec<IpAddr>,
    ids: Vec<String>,
    /// `--expect-path gateway`: the gateway endpoint is what the user expects to carry this
    /// target's traffic, whatever the names resolve to.
    expect_gateway: bool,
}

/// Why the gateway endpoint's route concerns an address.
enum Coverage {
    /// The CIDR of the endpoint's prefix list (EC2's entries) that holds the address.
    List(String),
    /// The list's entries were not read; the address is in the service's published ranges of
    /// the region (ip-ranges), which the list mirrors.
    Published,
}

impl Coverage {
    fn said(&self, ip: IpAddr, pl: &PrefixListFacts, c: &Vpc) -> String {
        match self {
            Coverage::List(cidr) => format!("{ip} is in {} ({cidr})", pl.id),
            Coverage::Published => format!(
                "{}'s entries were not read; {ip} is in the published {} ranges of {} (ip-ranges), which the list mirrors",
                pl.id,
                c.t.service.ranges_name(),
                c.r.region.effective.as_deref().unwrap_or("the region")
            ),
        }
    }
}

impl Vpc<'_> {
    /// Premise of every rule about the gateway endpoint's route: it only ever applies to the
    /// addresses its prefix list holds. From the list's entries (EC2), else from the
    /// published ranges the probe classified the address into. None: the endpoint's route
    /// never applied to `ip` (an answer outside the ranges, a private interface-endpoint
    /// address), so no route can "win over" it there.
    fn coverage(&self, ip: IpAddr) -> Option<Coverage> {
        let pl = self.prefix_list?;
        if !pl.cidrs.is_empty() {
            return crate::vpc_rules::cidr_containing(&pl.cidrs, ip)
                .map(|c| Coverage::List(c.to_string()));
        }
        self.r
            .tcp
            .iter()
            .filter(|a| a.service == self.t.service)
            .any(|a| {
                a.address.parse::<IpAddr>() == Ok(ip)
                    && a.address_class == AddressClass::ServiceRegion
            })
            .then_some(Coverage::Published)
    }

    /// Whether the gateway endpoint is the item this target's traffic depends on: the user
    /// expects the gateway path, or an address the applications use for it lies in the
    /// endpoint's ranges and did not connect (no other path carries it). Otherwise (the names
    /// resolve to an interface endpoint or elsewhere, and another path is accepted) a missing
    /// or unassociated gateway endpoint is a note, not the cause of anything.
    fn endpoint_needed(&self) -> bool {
        self.expect_gateway
            || self.r.tcp.iter().any(|a| {
                self.t.endpoint_names.contains(&a.name)
                    && a.origin == AddressOrigin::Application
                    && a.outcome != TcpOutcome::Connected
                    && a.address
                        .parse::<IpAddr>()
                        .is_ok_and(|ip| self.published_or_listed(ip))
            })
    }

    /// In the endpoint's prefix list, or (no list read at all) in the published ranges.
    fn published_or_listed(&self, ip: IpAddr) -> bool {
        match self.prefix_list {
            Some(_) => self.coverage(ip).is_some(),
            // A service without published ranges: its names' public addresses are its own.
            None => self.r.tcp.iter().any(|a| {
                a.service == self.t.service
                    && a.address.parse::<IpAddr>() == Ok(ip)
                    && a.address_class.fits_service()
            }),
        }
    }

    /// The severity of a finding about the gateway endpoint's existence or association, and
    /// what to add to its detail when it is only a note.
    fn endpoint_severity(&self) -> (Severity, &'static str) {
        if self.endpoint_needed() {
            (Severity::Error, "")
        } else {
            (
                Severity::Note,
                " Not an error here: another path than the gateway endpoint is expected (--expect-path), and no address the applications use is one a gateway endpoint would carry that failed to connect.",
            )
        }
    }
}

pub(super) fn control_plane_findings(
    r: &ProbeResults,
    exp: &Expectations,
    t: &TargetSpec,
    f: &mut Findings,
) {
    let Some(cp) = &r.control_plane else { return };
    let instance = r.instance.as_ref();
    let prefix_list = cp.prefix_lists.iter().find(|p| p.service == t.service);
    let c = Vpc {
        r,
        t,
        cp,
        instance,
        vpc: instance
            .and_then(|i| i.vpc_id.as_deref())
            .unwrap_or("<vpc-id>"),
        endpoint: cp.endpoints.iter().find(|e| e.service == t.service),
        prefix_list,
        peers: service_addresses(r, t, prefix_list),
        ids: vec!["ec2".to_string()],
        expect_gateway: exp.expect_path == ExpectPath::Gateway,
    };
    no_gateway_endpoint_finding(&c, f);
    if let Some(ep) = c.endpoint {
        address_family_finding(r, t, ep, f);
    }
    route_findings(&c, f);
    security_group_finding(&c, f);
    network_acl_findings(&c, f);
    dns_support_finding(&c, f);
    endpoint_policy_finding(&c, f);
}

/// Premise: the subnet's route table was read (the VPC is visible to this role), and the
/// gateway endpoint is what this target's traffic needs (`Vpc::endpoint_needed`); else a note.
fn no_gateway_endpoint_finding(c: &Vpc, f: &mut Findings) {
    let (t, cp, vpc, endpoint, ids) = (c.t, c.cp, c.vpc, c.endpoint, &c.ids);
    let region = c.r.region.effective.as_deref().unwrap_or("<region>");
    let service_name = crate::reading::control_plane::service_name(region, t.service);

    // Without the subnet's route table the VPC is not visible to this role (another account's
    // shared VPC, a wrong id): an empty endpoint list then proves nothing.
    if cp.read_ok("ec2:DescribeVpcEndpoints") && endpoint.is_none() && cp.route_table.is_some() {
        let rtb = cp
            .route_table
            .as_ref()
            .map(|t| t.id.as_str())
            .unwrap_or("<rtb-id>");
        let (severity, why) = c.endpoint_severity();
        f.add(
            FindingCode::NO_GATEWAY_ENDPOINT,
            severity,
            &t.id,
            format!("{vpc} has no gateway endpoint for {service_name}"),
            format!("DescribeVpcEndpoints lists no Gateway endpoint of {service_name} in {vpc}.{why}"),
            format!(
                "aws ec2 create-vpc-endpoint --vpc-endpoint-type Gateway --vpc-id {vpc} --service-name {service_name} --route-table-ids {rtb}"
            ),
            ids.clone(),
        );
    }
}

/// The endpoint on the subnet's route table, and no more specific route winning over it.
/// Premises: ROUTE_TABLE_NOT_ASSOCIATED, the endpoint is needed (as NO_GATEWAY_ENDPOINT);
/// ROUTE_OVERRIDES_ENDPOINT, only for addresses the endpoint's prefix list holds
/// (`Vpc::coverage`).
fn route_findings(c: &Vpc, f: &mut Findings) {
    let (t, cp, instance, endpoint, prefix_list, peers, ids) = (
        c.t,
        c.cp,
        c.instance,
        c.endpoint,
        c.prefix_list,
        &c.peers,
        &c.ids,
    );
    if let (Some(ep), Some(table)) = (endpoint, &cp.route_table) {
        let route =
            prefix_list.and_then(|pl| crate::vpc_rules::endpoint_route(table, &pl.id, &ep.id));
        if !ep.route_table_ids.contains(&table.id) || route.is_none() {
            // Premise: as NO_GATEWAY_ENDPOINT's, the endpoint is what this traffic needs.
            let (severity, why) = c.endpoint_severity();
            f.add(
                FindingCode::ROUTE_TABLE_NOT_ASSOCIATED,
                severity,
                &t.id,
                format!(
                    "{} is not on {}'s route table {}",
                    ep.id,
                    instance
                        .and_then(|i| i.subnet_id.as_deref())
                        .unwrap_or("the subnet"),
                    table.id
                ),
                format!(
                    "The endpoint serves route tables [{}]; {} ({}) has no route {} -> {}.{why}",
                    ep.route_table_ids.join(", "),
                    table.id,
                    if table.main {
                        "the VPC's main table"
                    } else {
                        "explicitly associated"
                    },
                    prefix_list.map(|p| p.id.as_str()).unwrap_or("<pl-id>"),
                    ep.id
                ),
                format!(
                    "aws ec2 modify-vpc-endpoint --vpc-endpoint-id {} --add-route-table-ids {}",
                    ep.id, table.id
                ),
                ids.clone(),
            );
        } else if let Some(pl) = prefix_list {
            // A more specific route wins over the prefix-list route only for an address the
            // list holds: for any other address (an answer outside the ranges, a private
            // interface-endpoint address) the endpoint's route never applied.
            for (ip, coverage) in peers
                .iter()
                .filter_map(|ip| c.coverage(*ip).map(|cov| (*ip, cov)))
            {
                if let Some(winner) = crate::vpc_rules::effective_route(table, ip, &cp.prefix_lists)
                    && winner.target != ep.id
                {
                    let dest = winner.destination_cidr.clone().unwrap_or_default();
                    f.add(
                        FindingCode::ROUTE_OVERRIDES_ENDPOINT,
                        Severity::Error,
                        &t.id,
                        format!("route {dest} -> {} in {} wins over {} -> {} for {ip}", winner.target, table.id, pl.id, ep.id),
                        format!(
                            "Traffic to {ip} follows the more specific route {dest} via {}, not the gateway endpoint ({}).",
                            winner.target,
                            coverage.said(ip, pl, c)
                        ),
                        format!("aws ec2 delete-route --route-table-id {} --destination-cidr-block {dest}", table.id),
                        ids.clone(),
                    );
                    break;
                }
            }
        }
    }
}

/// Premise: the groups' egress rules are evaluated for each address itself (a rule covers an
/// address only if its CIDR or its prefix list's entries contain it), and the groups apply
/// to every packet the instance sends, whatever path it takes.
fn security_group_finding(c: &Vpc, f: &mut Findings) {
    let (t, cp, prefix_list, peers, ids) = (c.t, c.cp, c.prefix_list, &c.peers, &c.ids);
    if cp.read_ok("ec2:DescribeSecurityGroups") && !cp.security_groups.is_empty() {
        let pl = prefix_list.map(|p| p.id.as_str());
        let allowed = |ip: Option<IpAddr>| {
            cp.security_groups.iter().any(|g| {
                g.egress
                    .iter()
                    .any(|rule| crate::vpc_rules::sg_rule_allows(rule, ip, prefix_list, 443))
            })
        };
        let blocked: Vec<IpAddr> = peers
            .iter()
            .copied()
            .filter(|ip| !allowed(Some(*ip)))
            .collect();
        let no_rule_for_list = peers.is_empty() && !allowed(None);
        if !blocked.is_empty() || no_rule_for_list {
            let groups: Vec<&str> = cp.security_groups.iter().map(|g| g.id.as_str()).collect();
            let group = groups.first().copied().unwrap_or("<sg-id>");
            // Addresses the prefix list does not hold (IPv6 to a list of IPv4 CIDRs): a rule
            // for the list cannot let them out, so the fix names them.
            let outside_list: Vec<IpAddr> = prefix_list
                .filter(|p| !p.cidrs.is_empty())
                .map(|p| {
                    blocked
                        .iter()
                        .copied()
                        .filter(|ip| crate::vpc_rules::cidr_containing(&p.cidrs, *ip).is_none())
                        .collect()
                })
                .unwrap_or_default();
            let mut detail = format!(
                "Egress rules evaluated for {}: none allows tcp/443 to the prefix list or to a CIDR containing them.",
                if blocked.is_empty() {
                    "the prefix list".to_string()
                } else {
                    joined(&blocked)
                }
            );
            if let (Some(pl), false) = (pl, outside_list.is_empty()) {
                detail.push_str(&format!(
                    " {pl} holds no CIDR containing {}{}, so a rule that references it does not cover {}.",
                    joined(&outside_list),
                    if outside_list.iter().all(IpAddr::is_ipv6) { " (IPv6; the list's entries are IPv4)" } else { "" },
                    if outside_list.len() == 1 { "it" } else { "them" }
                ));
            }
            let remediation = if outside_list.is_empty() {
                format!(
                    "aws ec2 authorize-security-group-egress --group-id {group} --ip-permissions 'IpProtocol=tcp,FromPort=443,ToPort=443,PrefixListIds=[{{PrefixListId={}}}]'",
                    pl.unwrap_or("<pl-id>")
                )
            } else {
                let (v4, v6): (Vec<IpAddr>, Vec<IpAddr>) =
                    outside_list.iter().partition(|ip| ip.is_ipv4());
                let mut ranges = Vec::new();
                if !v4.is_empty() {
                    let cidrs: Vec<String> =
                        v4.iter().map(|ip| format!("{{CidrIp={ip}/32}}")).collect();
                    ranges.push(format!("IpRanges=[{}]", cidrs.join(",")));
                }
                if !v6.is_empty() {
                    let cidrs: Vec<String> = v6
                        .iter()
                        .map(|ip| format!("{{CidrIpv6={ip}/128}}"))
                        .collect();
                    ranges.push(format!("Ipv6Ranges=[{}]", cidrs.join(",")));
                }
                format!(
                    "aws ec2 authorize-security-group-egress --group-id {group} --ip-permissions 'IpProtocol=tcp,FromPort=443,ToPort=443,{}' (or make the clients use the addresses the endpoint serves{})",
                    ranges.join(","),
                    if v6.is_empty() {
                        ""
                    } else {
                        ": without dual-stack, AWS_USE_DUALSTACK_ENDPOINT / use_dualstack_endpoint off"
                    }
                )
            };
            f.add(
                FindingCode::SG_EGRESS_BLOCKS,
                Severity::Error,
                &t.id,
                format!(
                    "no egress rule of {} allows TCP 443 to {}",
                    groups.join(", "),
                    pl.unwrap_or("the service")
                ),
                detail,
                remediation,
                ids.clone(),
            );
        }
    }
}

fn joined(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `create-network-acl-entry` destination for `ip`: the prefix list's CIDR that holds it,
/// else the address itself, with the option of its family (`--ipv6-cidr-block` for IPv6).
fn nacl_cidr_option(prefix_list: Option<&PrefixListFacts>, ip: IpAddr) -> String {
    let cidr = prefix_list
        .and_then(|p| crate::vpc_rules::cidr_containing(&p.cidrs, ip))
        .map(str::to_string)
        .unwrap_or_else(|| match ip {
            IpAddr::V4(_) => format!("{ip}/32"),
            IpAddr::V6(_) => format!("{ip}/128"),
        });
    if ip.is_ipv6() {
        format!("--ipv6-cidr-block {cidr}")
    } else {
        format!("--cidr-block {cidr}")
    }
}

/// Premise: each address is evaluated itself (an entry decides only if its CIDR contains the
/// address), the stateless return traffic on the kernel's own ephemeral ports.
fn network_acl_findings(c: &Vpc, f: &mut Findings) {
    let (r, t, cp, prefix_list, peers, ids) = (c.r, c.t, c.cp, c.prefix_list, &c.peers, &c.ids);
    if let Some(acl) = &cp.network_acl {
        let ephemeral = r.host.ephemeral_ports.unwrap_or(PortRange {
            first: 1024,
            last: 65535,
        });
        for ip in peers {
            let (rule, allow) = crate::vpc_rules::nacl_decide(&acl.entries, true, *ip, 443);
            if !allow {
                f.add(
                    FindingCode::NACL_OUTBOUND_BLOCKS,
                    Severity::Error,
                    &t.id,
                    format!("{} denies TCP 443 out to {ip} (rule {})", acl.id, rule.map(|n| n.to_string()).unwrap_or_else(|| "*".into())),
                    "Network ACLs are evaluated in rule-number order; the first match decides, and nothing matching is a deny.".into(),
                    format!(
                        "aws ec2 create-network-acl-entry --network-acl-id {} --egress --rule-number {} --protocol tcp --port-range From=443,To=443 {} --rule-action allow",
                        acl.id,
                        free_rule_number(&acl.entries, true, rule),
                        nacl_cidr_option(prefix_list, *ip)
                    ),
                    ids.clone(),
                );
                break;
            }
            let denied = crate::vpc_rules::nacl_denied_ports(&acl.entries, *ip, ephemeral);
            if let Some((span, rule)) = denied.first() {
                let spans: Vec<String> = denied.iter().map(|(p, _)| p.to_string()).collect();
                f.add(
                    FindingCode::NACL_INBOUND_BLOCKS,
                    Severity::Error,
                    &t.id,
                    format!("{} denies return traffic from {ip} to ports {}", acl.id, spans.join(", ")),
                    format!(
                        "The kernel's ephemeral ports are {ephemeral}; rule {} denies {span} inbound from {ip}.",
                        rule.map(|n| n.to_string()).unwrap_or_else(|| "*".into())
                    ),
                    format!(
                        "aws ec2 create-network-acl-entry --network-acl-id {} --ingress --rule-number {} --protocol tcp --port-range From=1024,To=65535 {} --rule-action allow",
                        acl.id,
                        free_rule_number(&acl.entries, false, *rule),
                        nacl_cidr_option(prefix_list, *ip)
                    ),
                    ids.clone(),
                );
                break;
            }
        }
    }
}

/// Premise: DescribeVpcAttribute said enableDnsSupport is false for the instance's VPC.
fn dns_support_finding(c: &Vpc, f: &mut Findings) {
    let (cp, vpc, ids) = (c.cp, c.vpc, &c.ids);
    if cp.dns_support == Some(false) {
        f.add(
            FindingCode::VPC_DNS_DISABLED,
            Severity::Error,
            "host",
            format!("{vpc} has enableDnsSupport off"),
            "The Amazon-provided resolver does not answer in this VPC.".into(),
            format!("aws ec2 modify-vpc-attribute --vpc-id {vpc} --enable-dns-support '{{\"Value\":true}}'"),
            ids.clone(),
        );
    }
}

/// Premise of ENDPOINT_POLICY_DENIES: an endpoint policy decides only the requests that go
/// through the endpoint. The addresses this target's signed calls went to (else the
/// applications' addresses): Some(false) when they are known and none of them is carried by
/// the endpoint (in its prefix list, with the endpoint as the route that wins); None when no
/// address is known (through a proxy, or nothing connected).
fn through_endpoint(c: &Vpc, ep: &EndpointFacts) -> Option<(bool, Vec<IpAddr>)> {
    let mut addrs: BTreeSet<IpAddr> =
        c.r.calls
            .iter()
            .filter(|call| call.target == c.t.id && call.proxy.is_none())
            .filter_map(|call| call.peer.as_deref()?.parse().ok())
            .collect();
    if addrs.is_empty() {
        addrs =
            c.r.tcp
                .iter()
                .filter(|a| c.t.endpoint_names.contains(&a.name))
                .filter(|a| a.origin == AddressOrigin::Application)
                .filter_map(|a| a.address.parse().ok())
                .collect();
    }
    if addrs.is_empty() {
        return None;
    }
    let carried = |ip: &IpAddr| match (c.coverage(*ip), &c.cp.route_table) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(Coverage::List(_)), Some(table)) => {
            crate::vpc_rules::effective_route(table, *ip, &c.cp.prefix_lists)
                .is_some_and(|r| r.target == ep.id)
        }
        // The list's entries were not read: the endpoint's route is on the table.
        (Some(Coverage::Published), Some(table)) => c
            .prefix_list
            .is_some_and(|pl| crate::vpc_rules::endpoint_route(table, &pl.id, &ep.id).is_some()),
    };
    let any = addrs.iter().any(carried);
    Some((any, addrs.into_iter().collect()))
}

fn endpoint_policy_finding(c: &Vpc, f: &mut Findings) {
    let (r, t, endpoint, ids) = (c.r, c.t, c.endpoint, &c.ids);
    if let Some(ep) = endpoint
        && let Some(policy) = &ep.policy
    {
        let elsewhere = match through_endpoint(c, ep) {
            Some((false, addrs)) => Some(format!(
                " The probe's requests went to {}, which {} does not carry: this policy did not decide them (it will, once they go through the endpoint).",
                joined(&addrs),
                ep.id
            )),
            _ => None,
        };
        let principal = r.credentials.as_ref().and_then(|c| c.identity_arn.clone());
        for (action, resource) in probed_requests(r, t) {
            let decision =
                crate::vpc_rules::evaluate_policy(policy, &action, &resource, principal.as_deref());
            let (severity, mut why) = match &decision {
                crate::vpc_rules::PolicyDecision::Allowed { .. } => continue,
                crate::vpc_rules::PolicyDecision::ExplicitDeny { statement } => (
                    Severity::Error,
                    format!("statement {statement} denies it explicitly"),
                ),
                crate::vpc_rules::PolicyDecision::ImplicitDeny => {
                    (Severity::Error, "no statement allows it".to_string())
                }
                crate::vpc_rules::PolicyDecision::Undetermined { statement, reason } => (
                    Severity::Note,
                    format!("not evaluated: {statement}: {reason}"),
                ),
            };
            let severity = match &elsewhere {
                Some(text) => {
                    why.push('.');
                    why.push_str(text);
                    Severity::Note
                }
                None => severity,
            };
            f.add(
                FindingCode::ENDPOINT_POLICY_DENIES,
                severity,
                &t.id,
                format!("the policy of {} does not allow {action} on {resource}", ep.id),
                why,
                format!("aws ec2 modify-vpc-endpoint --vpc-endpoint-id {} --policy-document file://policy.json (add an Allow for {action} on {resource})", ep.id),
                ids.clone(),
            );
            break;
        }
    }
}

/// The service addresses whose treatment matters: what the probe connected to, else the prefix list's first addresses.
fn service_addresses(
    r: &ProbeResults,
    t: &TargetSpec,
    pl: Option<&PrefixListFacts>,
) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = r
        .tcp
        .iter()
        .filter(|a| t.endpoint_names.contains(&a.name))
        .filter_map(|a| a.address.parse().ok())
        .collect::<BTreeSet<IpAddr>>()
        .into_iter()
        .collect();
    if out.is_empty()
        && let Some(pl) = pl
    {
        out.extend(
            pl.cidrs
                .iter()
                .filter_map(|c| c.parse::<ipnet::IpNet>().ok())
                .filter_map(|n| n.hosts().next()),
        );
    }
    out
}

/// (IAM action, resource ARN) of what the probe asks the service for this target.
fn probed_requests(r: &ProbeResults, t: &TargetSpec) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = r
        .calls
        .iter()
        .filter(|c| c.target == t.id && c.outcome != CallOutcome::Skipped)
        .map(|c| {
            let resource = match t.service {
                Service::S3
                    if c.action == "s3:GetObject"
                        || c.action == "s3:PutObject"
                        || c.action == "s3:DeleteObject" =>
                {
                    format!("arn:aws:s3:::{}/*", t.name)
                }
                Service::S3 => format!("arn:aws:s3:::{}", t.name),
                Service::S3express => super::auth::directory_bucket_arn(r, &t.name),
                Service::Dynamodb => format!(
                    "arn:aws:dynamodb:{}:{}:table/{}",
                    r.region.effective.as_deref().unwrap_or("*"),
                    r.instance
                        .as_ref()
                        .and_then(|i| i.account_id.as_deref())
                        .unwrap_or("*"),
                    t.name
                ),
            };
            (c.action.clone(), resource)
        })
        .collect();
    out.dedup();
    out
}

/// A rule number just below the deciding rule, free in this direction.
fn free_rule_number(entries: &[NaclEntry], egress: bool, deciding: Option<i32>) -> i32 {
    let mut n = deciding.unwrap_or(100).min(32766) - 1;
    while n > 1
        && entries
            .iter()
            .any(|e| e.egress == egress && e.rule_number == n)
    {
        n -= 1;
    }
    n.max(1)
}
