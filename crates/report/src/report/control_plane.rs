//! What the EC2 control plane says: route tables, endpoints, prefix lists, security groups,
//! network ACLs and reachability.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Service;

/// The VPC's configuration as read with EC2 Describe* (when the role may).
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct ControlPlane {
    /// Every read: which API, and whether it worked, was denied or failed.
    pub reads: Vec<ControlPlaneRead>,
    /// The subnet's route table (explicit association, else the VPC's main table).
    pub route_table: Option<RouteTableFacts>,
    /// Gateway endpoints of the VPC for the probed services.
    pub endpoints: Vec<EndpointFacts>,
    /// The services' managed prefix lists with their CIDRs.
    pub prefix_lists: Vec<PrefixListFacts>,
    /// The security groups of the instance's ENI.
    pub security_groups: Vec<SecurityGroupFacts>,
    /// The subnet's network ACL.
    pub network_acl: Option<NetworkAclFacts>,
    pub dns_support: Option<bool>,
    pub dns_hostnames: Option<bool>,
    pub duration_ms: u64,
    /// The VPC's NAT gateways: a private first hop is named by the one whose address it is.
    #[serde(default)]
    pub nat_gateways: Vec<NatGatewayFacts>,
    /// The network interfaces whose private address is a private first hop that no NAT gateway
    /// owns (a firewall appliance, a NAT instance), read after the hop check found it.
    #[serde(default)]
    pub network_interfaces: Vec<NetworkInterfaceFacts>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NetworkInterfaceFacts {
    /// eni-...
    pub id: String,
    /// "interface" (an instance's), "nat_gateway", "gateway_load_balancer_endpoint", ...
    pub interface_type: Option<String>,
    pub description: Option<String>,
    /// The instance it is attached to (an appliance or NAT instance), if any.
    pub instance_id: Option<String>,
    pub subnet_id: Option<String>,
    pub private_ips: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ControlPlaneRead {
    /// e.g. "ec2:DescribeRouteTables".
    pub action: String,
    pub outcome: ReadOutcome,
    pub error: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ReadOutcome {
    Ok,
    Denied,
    Failed,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct RouteTableFacts {
    pub id: String,
    /// True when the subnet has no explicit association and uses the VPC's main table.
    pub main: bool,
    pub routes: Vec<RouteFacts>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RouteFacts {
    pub destination_cidr: Option<String>,
    pub destination_prefix_list: Option<String>,
    /// vpce-, igw-, nat-, eni-, pcx-, tgw-, "local"...
    pub target: String,
    pub state: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct EndpointFacts {
    pub id: String,
    pub service: Service,
    pub service_name: String,
    pub state: String,
    pub route_table_ids: Vec<String>,
    pub policy: Option<String>,
    pub ip_address_type: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NatGatewayFacts {
    /// nat-...
    pub id: String,
    /// The subnet it lives in (a public subnet for a public NAT gateway).
    pub subnet_id: Option<String>,
    /// pending, available, deleting, deleted or failed.
    pub state: String,
    /// "public" or "private".
    pub connectivity_type: Option<String>,
    /// The private addresses of its network interfaces: the address a hop trace sees.
    pub private_ips: Vec<String>,
    /// The Elastic IP addresses it translates to (none for a private NAT gateway).
    pub public_ips: Vec<String>,
}

impl NatGatewayFacts {
    /// Whether it still forwards traffic (a deleted or failed one stays listed for a while,
    /// and its address may belong to something else by then).
    pub fn forwards(&self) -> bool {
        !matches!(self.state.as_str(), "deleted" | "failed")
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct PrefixListFacts {
    pub id: String,
    pub name: String,
    pub service: Service,
    pub cidrs: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct SecurityGroupFacts {
    pub id: String,
    pub egress: Vec<SgRule>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SgRule {
    /// "-1" (all), "tcp", "6", ...
    pub protocol: String,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    pub cidrs: Vec<String>,
    pub prefix_list_ids: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct NetworkAclFacts {
    pub id: String,
    pub entries: Vec<NaclEntry>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NaclEntry {
    pub rule_number: i32,
    pub egress: bool,
    /// "-1" (all) or a protocol number ("6" is TCP).
    pub protocol: String,
    pub allow: bool,
    pub cidr: Option<String>,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
}

/// One Reachability Analyzer run (opt-in: AWS charges per analysis).
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct ReachabilityEvidence {
    pub service: Service,
    /// The instance's ENI.
    pub source: String,
    /// The gateway endpoint.
    pub destination: String,
    pub path_id: Option<String>,
    pub analysis_id: Option<String>,
    /// succeeded, failed, running (the deadline came first), interrupted, error.
    pub status: String,
    pub network_path_found: Option<bool>,
    pub explanations: Vec<ReachabilityExplanation>,
    /// Whether the path and analysis it created were deleted again.
    pub cleaned_up: bool,
    pub error: Option<String>,
    pub duration_ms: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct ReachabilityExplanation {
    pub code: String,
    /// The code in plain words.
    pub meaning: String,
    pub component: Option<String>,
    pub direction: Option<String>,
}

impl ControlPlane {
    /// The EC2 permissions whose reads were denied, without repeats.
    pub fn denied_actions(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .reads
            .iter()
            .filter(|r| r.outcome == ReadOutcome::Denied)
            .map(|r| r.action.split(' ').next().unwrap_or("").to_string())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The NAT gateway (still forwarding) whose private address `ip` is.
    pub fn nat_gateway_at(&self, ip: &str) -> Option<&NatGatewayFacts> {
        self.nat_gateways
            .iter()
            .find(|n| n.forwards() && n.private_ips.iter().any(|p| p == ip))
    }

    /// The network interface whose private address `ip` is, when it was read.
    pub fn network_interface_at(&self, ip: &str) -> Option<&NetworkInterfaceFacts> {
        self.network_interfaces
            .iter()
            .find(|n| n.private_ips.iter().any(|p| p == ip))
    }

    pub fn read_ok(&self, action: &str) -> bool {
        self.reads
            .iter()
            .any(|r| r.action == action && r.outcome == ReadOutcome::Ok)
    }
}
