//! Control plane: the VPC's own configuration through EC2 Describe*, when the instance's role
//! may read it (many may not: a denied read is a note and leaves its checks skipped).

use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_ec2::operation::describe_nat_gateways::DescribeNatGatewaysOutput;
use aws_sdk_ec2::operation::describe_prefix_lists::DescribePrefixListsOutput;
use aws_sdk_ec2::operation::describe_route_tables::DescribeRouteTablesOutput;
use aws_sdk_ec2::operation::describe_vpc_endpoints::DescribeVpcEndpointsOutput;
use aws_sdk_ec2::types::{Filter, NetworkAcl, Route, SecurityGroup, VpcAttributeName};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::control_plane::service_name;
use crate::net::millis;
use crate::report::{
    ControlPlane, ControlPlaneRead, EndpointFacts, InstanceFacts, NaclEntry, NatGatewayFacts,
    NetworkAclFacts, NetworkInterfaceFacts, PrefixListFacts, ReadOutcome, RouteFacts,
    RouteTableFacts, SecurityGroupFacts, Service, SgRule,
};

fn filter(name: &str, values: &[String]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.to_vec()))
        .build()
}

/// Record the outcome of one read; Some(output) when it worked.
fn record<T, E>(
    reads: &mut Vec<ControlPlaneRead>,
    action: &str,
    result: Result<Result<T, SdkError<E, HttpResponse>>, tokio::time::error::Elapsed>,
) -> Option<T>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (outcome, error, value) = match result {
        Err(_) => (
            ReadOutcome::Failed,
            Some("no answer within the timeout".to_string()),
            None,
        ),
        Ok(Ok(v)) => (ReadOutcome::Ok, None, Some(v)),
        Ok(Err(SdkError::ServiceError(se))) => {
            let code = se.err().code().unwrap_or("").to_string();
            let message = se.err().message().unwrap_or("").to_string();
            let denied = matches!(
                code.as_str(),
                "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException"
            ) || se.raw().status().as_u16() == 403;
            (
                if denied {
                    ReadOutcome::Denied
                } else {
                    ReadOutcome::Failed
                },
                Some(format!("{code}: {message}")),
                None,
            )
        }
        Ok(Err(e)) => (
            ReadOutcome::Failed,
            Some(crate::net::aws_error::sdk_error("EC2", &e).text),
            None,
        ),
    };
    reads.push(ControlPlaneRead {
        action: action.to_string(),
        outcome,
        error,
    });
    value
}

/// The reads `read` makes, in the order it records them (the prefix lists' entries follow only
/// when the lists were read).
const READS: [&str; 9] = [
    "ec2:DescribeRouteTables",
    "ec2:DescribeRouteTables (main)",
    "ec2:DescribeVpcEndpoints",
    "ec2:DescribePrefixLists",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeNetworkAcls",
    "ec2:DescribeVpcAttribute",
    "ec2:DescribeVpcAttribute",
    "ec2:DescribeNatGateways",
];

/// The control plane when the EC2 API accepted no connection (as from a private subnet without
/// an EC2 interface endpoint): every read failed, for the reason given.
pub fn unreachable(why: &str) -> ControlPlane {
    ControlPlane {
        reads: READS
            .iter()
            .map(|action| ControlPlaneRead {
                action: action.to_string(),
                outcome: ReadOutcome::Failed,
                error: Some(why.to_string()),
            })
            .collect(),
        ..ControlPlane::default()
    }
}

/// Every Describe* read at once (each within twice the timeout), then what each one says.
pub async fn read(
    sdk: &SdkConfig,
    instance: &InstanceFacts,
    region: &str,
    services: &[Service],
    timeout: Duration,
) -> ControlPlane {
    let started = Instant::now();
    let client = aws_sdk_ec2::Client::new(sdk);
    let limit = timeout * 2;
    let vpc = instance.vpc_id.clone().unwrap_or_default();
    let subnet = instance.subnet_id.clone().unwrap_or_default();
    let names: Vec<String> = services.iter().map(|s| service_name(region, *s)).collect();
    let by_subnet = filter("association.subnet-id", std::slice::from_ref(&subnet));
    let by_vpc = filter("vpc-id", std::slice::from_ref(&vpc));
    use tokio::time::timeout as t;

    let (rtb, main_rtb, endpoints, pls, sgs, acl, dns_support, dns_hostnames, nats) = tokio::join!(
        t(
            limit,
            client
                .describe_route_tables()
                .filters(by_subnet.clone())
                .send()
        ),
        t(
            limit,
            client
                .describe_route_tables()
                .filters(by_vpc.clone())
                .filters(filter("association.main", &["true".to_string()]))
                .send()
        ),
        t(
            limit,
            client
                .describe_vpc_endpoints()
                .filters(by_vpc.clone())
                .filters(filter("service-name", &names))
                .send()
        ),
        t(
            limit,
            client
                .describe_prefix_lists()
                .filters(filter("prefix-list-name", &names))
                .send()
        ),
        t(
            limit,
            client
                .describe_security_groups()
                .set_group_ids(Some(instance.security_group_ids.clone()))
                .send()
        ),
        t(
            limit,
            client
                .describe_network_acls()
                .filters(by_subnet.clone())
                .send()
        ),
        t(
            limit,
            client
                .describe_vpc_attribute()
                .vpc_id(&vpc)
                .attribute(VpcAttributeName::EnableDnsSupport)
                .send()
        ),
        t(
            limit,
            client
                .describe_vpc_attribute()
                .vpc_id(&vpc)
                .attribute(VpcAttributeName::EnableDnsHostnames)
                .send()
        ),
        // The VPC's NAT gateways name a private first hop of the hop check.
        t(
            limit,
            client.describe_nat_gateways().filter(by_vpc.clone()).send()
        ),
    );
    let mut cp = ControlPlane::default();
    let reads = &mut cp.reads;
    // Recorded in this order: the report lists the reads as they are made here.
    let explicit = record(reads, READS[0], rtb);
    let main = record(reads, READS[1], main_rtb);
    cp.route_table = subnet_route_table(explicit, main);
    if let Some(out) = record(reads, READS[2], endpoints) {
        cp.endpoints = gateway_endpoints(&out, services, region);
    }
    if let Some(out) = record(reads, READS[3], pls) {
        let wanted = |name: &str| {
            services
                .iter()
                .copied()
                .find(|s| service_name(region, *s) == name)
        };
        cp.prefix_lists = prefix_lists(&client, &out, wanted, reads, limit).await;
    }
    if let Some(out) = record(reads, READS[4], sgs) {
        cp.security_groups = out.security_groups().iter().map(security_group).collect();
    }
    if let Some(out) = record(reads, READS[5], acl) {
        cp.network_acl = out.network_acls().first().map(network_acl);
    }
    cp.dns_support = record(reads, READS[6], dns_support)
        .and_then(|o| o.enable_dns_support().and_then(|v| v.value()));
    cp.dns_hostnames = record(reads, READS[7], dns_hostnames)
        .and_then(|o| o.enable_dns_hostnames().and_then(|v| v.value()));
    if let Some(out) = record(reads, READS[8], nats) {
        cp.nat_gateways = nat_gateways(&out);
    }
    cp.duration_ms = millis(started.elapsed());
    cp
}

/// The subnet's route table: its explicit association, else the VPC's main table.
fn subnet_route_table(
    explicit: Option<DescribeRouteTablesOutput>,
    main: Option<DescribeRouteTablesOutput>,
) -> Option<RouteTableFacts> {
    let first =
        |o: Option<DescribeRouteTablesOutput>| o.and_then(|o| o.route_tables().first().cloned());
    let (table, main) = first(explicit)
        .map(|t| (t, false))
        .or_else(|| first(main).map(|t| (t, true)))?;
    Some(RouteTableFacts {
        id: table.route_table_id().unwrap_or_default().to_string(),
        main,
        routes: table.routes().iter().map(route).collect(),
    })
}

fn route(r: &Route) -> RouteFacts {
    RouteFacts {
        destination_cidr: r
            .destination_cidr_block()
            .or(r.destination_ipv6_cidr_block())
            .map(str::to_string),
        destination_prefix_list: r.destination_prefix_list_id().map(str::to_string),
        target: r
            .gateway_id()
            .or(r.nat_gateway_id())
            .or(r.vpc_peering_connection_id())
            .or(r.transit_gateway_id())
            .or(r.network_interface_id())
            .or(r.instance_id())
            .or(r.local_gateway_id())
            .or(r.carrier_gateway_id())
            .or(r.egress_only_internet_gateway_id())
            .unwrap_or("unknown")
            .to_string(),
        state: r
            .state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "active".into()),
    }
}

/// The VPC's gateway endpoints of the probed services.
fn gateway_endpoints(
    out: &DescribeVpcEndpointsOutput,
    services: &[Service],
    region: &str,
) -> Vec<EndpointFacts> {
    out.vpc_endpoints()
        .iter()
        .filter(|e| {
            e.vpc_endpoint_type().map(|t| t.as_str()) == Some("Gateway")
                || e.vpc_endpoint_type().is_none()
        })
        .filter_map(|e| {
            let name = e.service_name().unwrap_or_default();
            let service = services
                .iter()
                .find(|s| service_name(region, **s) == name)?;
            Some(EndpointFacts {
                id: e.vpc_endpoint_id().unwrap_or_default().to_string(),
                service: *service,
                service_name: name.to_string(),
                state: e
                    .state()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                route_table_ids: e.route_table_ids().to_vec(),
                policy: e.policy_document().map(str::to_string),
                ip_address_type: e.ip_address_type().map(|t| t.as_str().to_string()),
            })
        })
        .collect()
}

/// The VPC's NAT gateways with their addresses.
fn nat_gateways(out: &DescribeNatGatewaysOutput) -> Vec<NatGatewayFacts> {
    out.nat_gateways()
        .iter()
        .map(|n| {
            let addresses = n.nat_gateway_addresses();
            NatGatewayFacts {
                id: n.nat_gateway_id().unwrap_or_default().to_string(),
                subnet_id: n.subnet_id().map(str::to_string),
                state: n
                    .state()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                connectivity_type: n.connectivity_type().map(|c| c.as_str().to_string()),
                private_ips: addresses
                    .iter()
                    .filter_map(|a| a.private_ip().map(str::to_string))
                    .collect(),
                public_ips: addresses
                    .iter()
                    .filter_map(|a| a.public_ip().map(str::to_string))
                    .collect(),
            }
        })
        .collect()
}

/// The services' prefix lists with their CIDRs. DescribePrefixLists may omit the CIDRs; the
/// managed-list entries are the source (one more read per list, recorded too).
async fn prefix_lists(
    client: &aws_sdk_ec2::Client,
    out: &DescribePrefixListsOutput,
    service_of: impl Fn(&str) -> Option<Service>,
    reads: &mut Vec<ControlPlaneRead>,
    limit: Duration,
) -> Vec<PrefixListFacts> {
    let lists: Vec<(String, String)> = out
        .prefix_lists()
        .iter()
        .filter_map(|p| {
            Some((
                p.prefix_list_id()?.to_string(),
                p.prefix_list_name()?.to_string(),
            ))
        })
        .collect();
    let entries = futures_util::future::join_all(lists.iter().map(|(id, _)| {
        tokio::time::timeout(
            limit,
            client
                .get_managed_prefix_list_entries()
                .prefix_list_id(id)
                .send(),
        )
    }))
    .await;
    let mut facts = Vec::new();
    for ((id, name), result) in lists.into_iter().zip(entries) {
        let cidrs = record(reads, "ec2:GetManagedPrefixListEntries", result)
            .map(|o| {
                o.entries()
                    .iter()
                    .filter_map(|e| e.cidr().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(service) = service_of(&name) {
            facts.push(PrefixListFacts {
                id,
                name,
                service,
                cidrs,
            });
        }
    }
    facts
}

/// A security group's egress rules.
fn security_group(g: &SecurityGroup) -> SecurityGroupFacts {
    SecurityGroupFacts {
        id: g.group_id().unwrap_or_default().to_string(),
        egress: g
            .ip_permissions_egress()
            .iter()
            .map(|p| SgRule {
                protocol: p.ip_protocol().unwrap_or("-1").to_string(),
                from_port: p.from_port(),
                to_port: p.to_port(),
                cidrs: p
                    .ip_ranges()
                    .iter()
                    .filter_map(|r| r.cidr_ip().map(str::to_string))
                    .chain(
                        p.ipv6_ranges()
                            .iter()
                            .filter_map(|r| r.cidr_ipv6().map(str::to_string)),
                    )
                    .collect(),
                prefix_list_ids: p
                    .prefix_list_ids()
                    .iter()
                    .filter_map(|r| r.prefix_list_id().map(str::to_string))
                    .collect(),
            })
            .collect(),
    }
}

/// The subnet's network ACL with its entries.
fn network_acl(a: &NetworkAcl) -> NetworkAclFacts {
    NetworkAclFacts {
        id: a.network_acl_id().unwrap_or_default().to_string(),
        entries: a
            .entries()
            .iter()
            .map(|e| NaclEntry {
                rule_number: e.rule_number().unwrap_or(32767),
                egress: e.egress().unwrap_or(false),
                protocol: e.protocol().unwrap_or("-1").to_string(),
                allow: e.rule_action().map(|a| a.as_str()) == Some("allow"),
                cidr: e.cidr_block().or(e.ipv6_cidr_block()).map(str::to_string),
                from_port: e.port_range().and_then(|p| p.from()),
                to_port: e.port_range().and_then(|p| p.to()),
            })
            .collect(),
    }
}

/// The network interfaces whose private address is one of `addresses` (private first hops that
/// no NAT gateway owns: an appliance, a NAT instance), recorded as one more read of `cp`. Made
/// only after the hop check found such a hop, so a healthy run never waits for it.
pub async fn name_hop_interfaces(
    sdk: &SdkConfig,
    cp: &mut ControlPlane,
    addresses: &[String],
    timeout: Duration,
) {
    if addresses.is_empty() {
        return;
    }
    let client = aws_sdk_ec2::Client::new(sdk);
    let result = tokio::time::timeout(
        timeout,
        client
            .describe_network_interfaces()
            .filters(filter("addresses.private-ip-address", addresses))
            .send(),
    )
    .await;
    if let Some(out) = record(&mut cp.reads, "ec2:DescribeNetworkInterfaces", result) {
        cp.network_interfaces = out
            .network_interfaces()
            .iter()
            .map(|n| NetworkInterfaceFacts {
                id: n.network_interface_id().unwrap_or_default().to_string(),
                interface_type: n.interface_type().map(|t| t.as_str().to_string()),
                description: n
                    .description()
                    .filter(|d| !d.is_empty())
                    .map(str::to_string),
                instance_id: n
                    .attachment()
                    .and_then(|a| a.instance_id())
                    .map(str::to_string),
                subnet_id: n.subnet_id().map(str::to_string),
                private_ips: n
                    .private_ip_addresses()
                    .iter()
                    .filter_map(|a| a.private_ip_address().map(str::to_string))
                    .collect(),
            })
            .collect();
    }
}
