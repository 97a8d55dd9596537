//! The finding catalogue of design.md: one code per thing that can be wrong, with the
//! checklist item it belongs to, what it means and the general fix. Findings carry a
//! specific detail and remediation; these texts are docs/findings.md's catalogue (a test keeps
//! the two in sync). Codes are a contract: add, never rename.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

macro_rules! catalogue {
    ($( $code:ident => ($item:literal, $meaning:literal, $fix:literal), )*) => {
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        pub enum FindingCode { $( $code, )* }

        impl FindingCode {
            pub const ALL: &'static [FindingCode] = &[ $( FindingCode::$code, )* ];
            pub fn as_str(self) -> &'static str {
                match self { $( FindingCode::$code => stringify!($code), )* }
            }
            /// The checklist item this code belongs to.
            pub fn checklist_item(self) -> &'static str {
                match self { $( FindingCode::$code => $item, )* }
            }
            pub fn meaning(self) -> &'static str {
                match self { $( FindingCode::$code => $meaning, )* }
            }
            pub fn general_fix(self) -> &'static str {
                match self { $( FindingCode::$code => $fix, )* }
            }
        }
    };
}

catalogue! {
    // region
    REGION_MISMATCH_BUCKET => ("region", "The bucket lives in another region than the instance; a gateway endpoint only serves its own region.", "Use a bucket in the instance's region, or reach the other region through a NAT gateway, a proxy, or an interface endpoint in that region with peering."),
    REGION_MISMATCH_SDK => ("region", "The region the SDKs are configured with (AWS_REGION, AWS_DEFAULT_REGION, profile, or --region) differs from the instance's region, so calls go to another region's endpoint, which the gateway endpoint does not serve.", "Set AWS_REGION (or the profile's region) to the instance's region."),
    S3_GLOBAL_ENDPOINT => ("region", "The effective S3 endpoint is the legacy global one (s3.amazonaws.com), which resolves to us-east-1, while the instance is in another region.", "Configure the SDK with the instance's region and do not pin s3.amazonaws.com; unset AWS_S3_US_EAST_1_REGIONAL_ENDPOINT=legacy or an AWS_ENDPOINT_URL_S3 pointing at the global name."),
    ENDPOINT_RULES_REFUSED => ("region", "The SDKs' endpoint rules refuse this target's settings (a malformed endpoint_url in the profile, FIPS or dual-stack with a custom endpoint, a region the rules do not know), so the SDKs' calls fail before any packet is sent.", "Correct the setting the detail names (environment variable or shared config profile); `aws configure list` shows where each comes from."),
    WRONG_REGION_REDIRECT => ("region", "S3 answered with a redirect (301, 307, or 400 with x-amz-bucket-region) because the request went to the wrong region.", "Send requests to the bucket's region."),
    // dns
    DNS_RESOLUTION_FAILED => ("dns", "A service name did not resolve (NXDOMAIN, SERVFAIL, timeout) through the resolver the SDKs use.", "Check /etc/resolv.conf points at the VPC resolver (169.254.169.253 or VPC base + 2), that the VPC has enableDnsSupport, and that no Route 53 private hosted zone or resolver rule shadows amazonaws.com."),
    DNS_OUTSIDE_SERVICE_RANGE => ("dns", "A service name resolved to an address outside the service's published ranges for the region, so the gateway endpoint's prefix-list route will not carry the traffic.", "Remove the override (a private hosted zone, /etc/hosts, a forwarding rule) that answers for the service name, or refresh the ranges with --ip-ranges if AWS added new ones."),
    DNS_INTERFACE_ENDPOINT => ("dns", "A service name resolved to private addresses: an interface endpoint with private DNS (or a private zone) answers for it, so traffic goes to that interface endpoint and not through the gateway endpoint.", "If the gateway endpoint is meant to carry the traffic, disable private DNS on the interface endpoint (or its private-DNS-only-for-inbound-resolver option); otherwise run with --expect-path interface."),
    DNS_CUSTOM_RESOLVER => ("dns", "The host resolves through a resolver other than the Amazon-provided VPC resolver; its answers may differ from the VPC's.", "Make sure the custom resolver forwards amazonaws.com to the VPC resolver, or point resolv.conf at 169.254.169.253."),
    HOSTS_FILE_OVERRIDE => ("dns", "A service name is pinned in the hosts file: the applications connect to that address without asking DNS, so they break when the pinned address stops serving and bypass what the VPC resolver answers.", "Remove the service name's line from the hosts file so the name resolves through DNS."),
    DNS_RESOLVERS_DISAGREE => ("dns", "The host's resolver and the VPC resolver give answers of different kinds for the same name (for example public vs private, or one fails).", "Find which resolver rule, forwarder or private zone changes the answer and align it with the VPC resolver."),
    DNS_SEARCH_DOMAIN_OVERRIDE => ("dns", "The applications resolve a service name with a resolv.conf search domain appended (the name has fewer dots than `options ndots:`, or did not resolve as it is) and that name answers, often through a wildcard record: they connect to that address, not the service's, while every resolver asked for the service name itself answers well.", "Set `options ndots:` at or below the service names' dots (the default, 1, asks the name itself first), or remove the record that answers in the search domain."),
    DNS_SERVER_SILENT => ("dns", "A name server that resolv.conf lists before the one that answered gives no answer: libc asks the servers in order and waits its timeout (resolv.conf's `options timeout:`, 5 s by default) on the silent one at every lookup, so the applications resolve each service name seconds late, and clients whose connect timeout includes name resolution (Go, curl's --connect-timeout) fail.", "Remove the silent name server from resolv.conf (or from what writes it: the DHCP options set, netplan, NetworkManager), or make it answer; the VPC resolver is 169.254.169.253."),
    // network
    TCP_TIMEOUT => ("route-table", "TCP connections to the service on 443 time out: packets are dropped by a missing route (no gateway endpoint route and no other path), a security group egress rule, or a network ACL.", "Check, in order: the subnet's route table has the endpoint's prefix-list route (pl-... -> vpce-...), the security group allows egress TCP 443 to the prefix list, and the network ACL allows 443 out and ephemeral ports 1024-65535 in."),
    TCP_REFUSED => ("route-table", "TCP connections to the service are actively refused (RST): something on the path (a firewall or a host answering for the address) rejects them; AWS's service front ends do not refuse 443.", "Look for a host firewall (iptables/nftables REJECT) or an appliance that answers for the address."),
    TCP_UNREACHABLE => ("route-table", "The kernel reports the service address unreachable (no route, an unreachable/prohibit/blackhole route, or ICMP unreachable).", "Check the instance's own routing table (ip route) and host firewall; in the VPC, check the subnet's route table."),
    NACL_EPHEMERAL_BLOCKED => ("network-acl", "Connections from some source-port ranges fail while others work: the network ACL's inbound rule for return traffic allows too narrow an ephemeral range.", "Allow inbound TCP 1024-65535 from the service's prefix list CIDRs in the subnet's network ACL (at least the kernel's ephemeral range)."),
    TLS_FAILED => ("tls", "The TLS handshake with the service name failed (timeout, reset, no shared protocol, expired or unverifiable certificate).", "Check the host's CA bundle (ca-certificates), its clock, and any middlebox on the path."),
    TLS_INTERCEPTED => ("tls", "The certificate presented for the service name is for another name or comes from an unexpected issuer: a TLS-inspecting proxy or firewall sits in the path.", "Exempt the AWS service names from TLS inspection (or bypass the proxy for them); with a gateway endpoint, traffic should reach AWS directly."),
    // proxy
    PROXY_IN_PATH => ("proxy", "The SDK would send the service's traffic through an HTTP proxy, so it leaves from the proxy, not through this subnet's gateway endpoint.", "Add the service names to NO_PROXY (the finding gives the exact value)."),
    PROXY_UNREACHABLE => ("proxy", "A proxy is configured for the service URL but cannot be reached.", "Fix or remove the proxy variables, or add the service names to NO_PROXY."),
    PROXY_REFUSED_CONNECT => ("proxy", "The proxy refused to open a CONNECT tunnel to the service (for example 403 by its ACL).", "Allow CONNECT to the service names on 443 in the proxy, or bypass it with NO_PROXY."),
    PROXY_UNUSABLE => ("proxy", "A proxy variable holds a value some clients cannot use, so their requests fail: a SOCKS proxy for the AWS SDK for Rust and botocore, an upper-case or non-HTTP scheme for botocore, a value curl refuses, a blank.", "Write the proxy as http://HOST:PORT in every proxy variable, or bypass it with NO_PROXY (the finding gives the exact value)."),
    NO_PROXY_INEFFECTIVE => ("proxy", "A NO_PROXY entry looks meant to bypass the proxy for the service but does not for some clients (a CIDR entry only matches literal IP URLs; '*.domain' is not a wildcard for curl and botocore).", "Use domain-suffix entries such as s3.<region>.amazonaws.com (the finding gives the exact value)."),
    PROXY_ENV_CONFLICT => ("proxy", "Upper- and lower-case proxy variables are both set to different values; clients disagree about which one wins.", "Set both cases to the same value, or unset one."),
    IMDS_VIA_PROXY => ("proxy", "Requests to the instance metadata service (169.254.169.254) would go through the proxy for some clients, which breaks or leaks instance credentials.", "Add 169.254.169.254 to NO_PROXY."),
    // auth
    NO_CREDENTIALS => ("iam-policy", "No AWS credentials were found in the default chain (environment, profile, web identity, instance role).", "Attach an instance profile with a role, or configure credentials."),
    CREDENTIALS_EXPIRED => ("iam-policy", "The credentials found have expired.", "Refresh the credentials; for instance roles check the IMDS reachability and the clock."),
    CLOCK_SKEW => ("iam-policy", "The local clock differs from AWS's by more than signatures allow (5 minutes for S3 and DynamoDB).", "Synchronise the clock (chrony with the Amazon Time Sync Service at 169.254.169.123)."),
    ACCESS_DENIED_VPCE_POLICY => ("endpoint-policy", "The VPC endpoint policy does not allow the action (or denies it explicitly).", "Add an Allow for the action and resource to the gateway endpoint's policy."),
    ACCESS_DENIED_RESOURCE_POLICY => ("bucket-policy", "The bucket (or table) resource policy denies the action, often through an aws:SourceVpce / aws:SourceVpc condition.", "Fix the resource policy: allow this endpoint (aws:SourceVpce) or VPC; aws:SourceIp never matches through an endpoint."),
    ACCESS_DENIED_IDENTITY_POLICY => ("iam-policy", "The caller's identity-based IAM policy does not allow the action.", "Grant the action on the resource to the instance's role."),
    ACCESS_DENIED_SCP => ("iam-policy", "A service control policy of the organization denies the action.", "Ask the organization's administrators to allow the action in the SCP."),
    ACCESS_DENIED_RCP => ("bucket-policy", "A resource control policy of the organization denies the action.", "Ask the organization's administrators to allow the action in the RCP."),
    ACCESS_DENIED_PERMISSIONS_BOUNDARY => ("iam-policy", "The role's permissions boundary does not allow the action.", "Allow the action in the permissions boundary."),
    ACCESS_DENIED_SESSION_POLICY => ("iam-policy", "The session policy of the assumed-role session does not allow the action.", "Allow the action in the session policy passed to AssumeRole."),
    ACCESS_DENIED_UNATTRIBUTED => ("bucket-policy", "Access Denied without the policy type (cross-account or a resource policy that gives no detail).", "Check, in order: the endpoint policy, the bucket policy (aws:SourceVpce / aws:SourceVpc; aws:SourceIp never matches through an endpoint), the IAM policy."),
    BUCKET_NOT_FOUND => ("region", "The bucket does not exist.", "Check the bucket name."),
    TABLE_NOT_FOUND => ("region", "The table does not exist in this region and account.", "Check the table name and the region."),
    // path
    PATH_NOT_GATEWAY_ENDPOINT => ("traffic-path", "The traffic does not take the expected path (by default the gateway endpoint): it goes through a proxy, an interface endpoint or the internet.", "Fix the item the evidence names (proxy, DNS, route table), or set --expect-path to the path you intend."),
    IMDS_UNAVAILABLE => ("instance", "The instance metadata service (IMDSv2) could not be read: not on EC2, hop limit too low, IMDS disabled, or blocked.", "On EC2, check the instance's metadata options (http-endpoint enabled, http-put-response-hop-limit >= 2 in containers); pass --region when IMDS is off on purpose."),
    // control plane
    NO_GATEWAY_ENDPOINT => ("route-table", "The VPC has no gateway endpoint for the service.", "Create one: aws ec2 create-vpc-endpoint --vpc-endpoint-type Gateway --service-name com.amazonaws.<region>.<service> --vpc-id <vpc> --route-table-ids <rtb>."),
    ROUTE_TABLE_NOT_ASSOCIATED => ("route-table", "The gateway endpoint exists, but the subnet's route table is not one of its route tables.", "aws ec2 modify-vpc-endpoint --vpc-endpoint-id <vpce> --add-route-table-ids <rtb>."),
    ROUTE_OVERRIDES_ENDPOINT => ("route-table", "A more specific route to a service CIDR wins over the endpoint's prefix-list route.", "Delete the more specific route, or point it at the endpoint path."),
    SG_EGRESS_BLOCKS => ("security-group", "No egress rule of the instance's security groups allows TCP 443 to the service's prefix list or addresses.", "aws ec2 authorize-security-group-egress --group-id <sg> --ip-permissions IpProtocol=tcp,FromPort=443,ToPort=443,PrefixListIds=[{PrefixListId=<pl>}]."),
    NACL_OUTBOUND_BLOCKS => ("network-acl", "The subnet's network ACL denies TCP 443 out to the service's CIDRs.", "Add an outbound allow rule for TCP 443 to the service CIDRs before any deny."),
    NACL_INBOUND_BLOCKS => ("network-acl", "The subnet's network ACL denies the return traffic (ephemeral ports) from the service's CIDRs.", "Add an inbound allow rule for TCP 1024-65535 from the service CIDRs before any deny."),
    VPC_DNS_DISABLED => ("dns", "The VPC's enableDnsSupport attribute is off, so the VPC resolver does not answer.", "aws ec2 modify-vpc-attribute --vpc-id <vpc> --enable-dns-support."),
    ENDPOINT_POLICY_DENIES => ("endpoint-policy", "The gateway endpoint's policy does not allow the probed action on the resource.", "aws ec2 modify-vpc-endpoint --vpc-endpoint-id <vpce> --policy-document file://policy.json with an Allow for the action."),
    ENDPOINT_ADDRESS_FAMILY => ("traffic-path", "The applications connect to the service over an address family (IPv6 or IPv4) that the gateway endpoint's IP address type does not serve, so that traffic cannot go through the endpoint.", "Set the endpoint's IP address type to dualstack (aws ec2 modify-vpc-endpoint --ip-address-type dualstack), or stop the clients from using dual-stack names."),
    CONTROL_PLANE_DENIED => ("control-plane", "The instance's role may not call the EC2 Describe APIs, so the VPC's configuration was not read (a note, not a failure).", "Grant the read-only permissions listed in the documentation (docs/checks.md, \"Control plane\") if you want confirmed verdicts."),
    // the run itself
    DEADLINE_EXCEEDED => ("probe", "The run's deadline (--deadline) ended it before every check finished: the checks it cut short are reported as skipped and nothing is concluded from them (a note; the verdict says the run is incomplete).", "Raise --deadline (or the agent's probe.deadline), or find the check that waits: its record says when it was scheduled."),
}

impl std::fmt::Display for FindingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checklist order, most fundamental first: root causes are ranked by it.
pub const CHECKLIST_ORDER: &[&str] = &[
    "instance",
    "region",
    "dns",
    "proxy",
    "route-table",
    "security-group",
    "network-acl",
    "tls",
    "endpoint-policy",
    "bucket-policy",
    "iam-policy",
    "traffic-path",
    "control-plane",
    "probe",
];

pub fn checklist_rank(item: &str) -> usize {
    CHECKLIST_ORDER
        .iter()
        .position(|i| *i == item)
        .unwrap_or(CHECKLIST_ORDER.len())
}

/// The catalogue as docs/findings.md's table (`vpce-probe findings --format markdown`), one row
/// per code in catalogue order; a test keeps the checked-in table equal to it.
pub fn markdown_table() -> String {
    let mut table =
        String::from("| code | checklist item | what it means | how to fix |\n|---|---|---|---|\n");
    for code in FindingCode::ALL {
        table.push_str(&format!(
            "| `{code}` | {} | {} | {} |\n",
            code.checklist_item(),
            markdown_cell(code.meaning()),
            markdown_cell(code.general_fix())
        ));
    }
    table
}

/// A pipe would end the cell early.
fn markdown_cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_serializes_to_its_name_and_has_a_known_checklist_item() {
        for code in FindingCode::ALL {
            let json = serde_json::to_string(code).expect("serialize");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert!(
                CHECKLIST_ORDER.contains(&code.checklist_item()),
                "{code} has unknown item {}",
                code.checklist_item()
            );
            assert!(!code.meaning().is_empty() && !code.general_fix().is_empty());
        }
    }

    #[test]
    fn markdown_table_has_one_row_per_code_and_escapes_pipes() {
        let table = markdown_table();
        assert_eq!(table.lines().count(), FindingCode::ALL.len() + 2);
        assert!(table.contains("| `TCP_TIMEOUT` | route-table | TCP connections"));
        assert_eq!(markdown_cell("a|b"), "a\\|b");
    }
}
