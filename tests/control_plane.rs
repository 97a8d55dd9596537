//! The control-plane checks against a real EC2 API emulator (moto server: VPCs, subnets, route
//! tables, gateway endpoints with their prefix-list routes, security groups, network ACLs)
//! behind the lab's TLS front. moto's AWS-managed prefix lists hold AWS's real CIDRs, so the
//! front answers GetManagedPrefixListEntries with the lab's service addresses, as AWS would
//! for a VPC whose services live there. Needs root and moto (scripts/install-deps.sh).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step stops the test
#![cfg(feature = "control-plane")]

mod common;
mod support;

use common::*;
use support::*;

fn entries_xml(cidr: &str) -> CannedResponse {
    CannedResponse {
        status: 200,
        reason: "OK".into(),
        headers: vec![("Content-Type".into(), "text/xml;charset=UTF-8".into())],
        body: format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<GetManagedPrefixListEntriesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>lab</requestId><entrySet><item><cidr>{cidr}</cidr><description>lab</description></item></entrySet></GetManagedPrefixListEntriesResponse>"
        ),
    }
}

fn ec2_denied(action: &str) -> CannedResponse {
    CannedResponse {
        status: 403,
        reason: "Forbidden".into(),
        headers: vec![("Content-Type".into(), "text/xml;charset=UTF-8".into())],
        body: format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation. User: arn:aws:sts::123456789012:assumed-role/probe-role/i-0123456789abcdef0 is not authorized to perform: ec2:{action} because no identity-based policy allows the ec2:{action} action</Message></Error></Errors><RequestID>lab-denied</RequestID></Response>"
        ),
    }
}

/// A lab whose IMDS describes `vpc` and whose EC2 answers list the lab's service CIDRs.
fn lab(id: u8, vpc: &MotoVpc, extra_body_rules: Vec<(String, CannedResponse)>) -> Lab {
    let mut facts = ImdsFacts::example();
    facts.vpc_id = vpc.vpc_id.clone();
    facts.subnet_id = vpc.subnet_id.clone();
    facts.security_group_ids = vec![vpc.security_group_id.clone()];
    let mut body_rules = extra_body_rules;
    body_rules.push((
        format!("PrefixListId={}", vpc.s3_prefix_list),
        entries_xml(&format!("127.{id}.1.0/26")),
    ));
    body_rules.push((
        format!("PrefixListId={}", vpc.dynamodb_prefix_list),
        entries_xml(&format!("127.{id}.1.64/26")),
    ));
    let front = FrontOptions {
        body_rules,
        ..FrontOptions::default()
    };
    Lab::aws(id, facts, front.clone(), front, true)
}

#[test]
fn route_table_evidence_confirms_the_gateway_path() {
    let vpc = moto().create_vpc(REGION, true, true);
    // A NAT gateway in a public subnet, no route to it: read and kept, changing no verdict.
    let nat: std::sync::Mutex<Option<(String, String, String)>> = std::sync::Mutex::new(None);
    moto().ec2_change(REGION, |ec2| {
        let vpc_id = vpc.vpc_id.clone();
        let nat = &nat;
        async move {
            let public = ec2
                .create_subnet()
                .vpc_id(vpc_id)
                .cidr_block("10.0.0.0/24")
                .send()
                .await
                .expect("public subnet")
                .subnet()
                .and_then(|s| s.subnet_id())
                .expect("subnet id")
                .to_string();
            let eip = ec2
                .allocate_address()
                .domain(aws_sdk_ec2::types::DomainType::Vpc)
                .send()
                .await
                .expect("eip");
            let created = ec2
                .create_nat_gateway()
                .subnet_id(&public)
                .allocation_id(eip.allocation_id().expect("allocation id"))
                .send()
                .await
                .expect("nat gateway");
            let gw = created.nat_gateway().expect("nat gateway");
            let private_ip = gw
                .nat_gateway_addresses()
                .iter()
                .find_map(|a| a.private_ip())
                .expect("private ip")
                .to_string();
            *nat.lock().unwrap() = Some((
                gw.nat_gateway_id().expect("nat id").to_string(),
                public,
                private_ip,
            ));
        }
    });
    let (nat_id, nat_subnet, nat_ip) = nat.into_inner().unwrap().expect("the NAT gateway");
    let lab = lab(61, &vpc, vec![]);
    let out = lab.probe(&[]);
    out.expect(
        0,
        &[],
        &[
            "NO_GATEWAY_ENDPOINT",
            "ROUTE_TABLE_NOT_ASSOCIATED",
            "SG_EGRESS_BLOCKS",
        ],
    );
    assert_eq!(
        out.path("s3:bucket-61"),
        ("gateway-endpoint".into(), "confirmed".into())
    );
    assert_eq!(
        out.path("dynamodb:table-61"),
        ("gateway-endpoint".into(), "confirmed".into())
    );
    let evidence = out.report()["targets"][0]["path"]["evidence"].to_string();
    assert!(
        evidence.contains(&vpc.route_table_id) && evidence.contains(&vpc.s3_prefix_list),
        "{evidence}"
    );
    let ec2 = out.report()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "ec2")
        .expect("ec2 check");
    assert_eq!(ec2["status"], "ok", "{ec2}");
    let nats = ec2["evidence"]["nat_gateways"]
        .as_array()
        .expect("nat_gateways");
    let read = nats
        .iter()
        .find(|n| n["id"] == nat_id.as_str())
        .unwrap_or_else(|| panic!("{nat_id} not among {nats:?}"));
    assert_eq!(read["subnet_id"], nat_subnet.as_str(), "{read}");
    assert_eq!(read["state"], "available", "{read}");
    assert_eq!(read["private_ips"][0], nat_ip.as_str(), "{read}");
    assert_eq!(
        read["public_ips"].as_array().map(Vec::len),
        Some(1),
        "{read}"
    );
    assert!(
        ec2["evidence"]["reads"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["action"] == "ec2:DescribeNatGateways" && r["outcome"] == "ok"),
        "{ec2}"
    );
}

#[test]
fn missing_endpoint_and_unassociated_route_table() {
    let vpc = moto().create_vpc(REGION, true, false);
    // The S3 endpoint serves another route table only.
    let other_rtb = vpc.clone();
    moto().ec2_change(REGION, |ec2| async move {
        let rtb = ec2
            .create_route_table()
            .vpc_id(&other_rtb.vpc_id)
            .send()
            .await
            .expect("rtb")
            .route_table()
            .and_then(|t| t.route_table_id())
            .expect("id")
            .to_string();
        ec2.modify_vpc_endpoint()
            .vpc_endpoint_id(other_rtb.s3_endpoint.clone().expect("endpoint"))
            .add_route_table_ids(rtb)
            .remove_route_table_ids(&other_rtb.route_table_id)
            .send()
            .await
            .expect("modify endpoint");
        // moto keeps the route after RemoveRouteTableIds (AWS removes it): remove it as AWS does.
        let _ = ec2
            .delete_route()
            .route_table_id(&other_rtb.route_table_id)
            .destination_prefix_list_id(&other_rtb.s3_prefix_list)
            .send()
            .await;
    });
    let lab = lab(62, &vpc, vec![]);
    let out = lab.probe(&[]);
    out.expect(
        1,
        &["NO_GATEWAY_ENDPOINT", "ROUTE_TABLE_NOT_ASSOCIATED"],
        &[],
    );
    assert_eq!(
        out.finding("NO_GATEWAY_ENDPOINT")["target"],
        "dynamodb:table-62"
    );
    let fix = out.finding("NO_GATEWAY_ENDPOINT")["remediation"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        fix.contains("create-vpc-endpoint")
            && fix.contains(&vpc.vpc_id)
            && fix.contains(&vpc.route_table_id),
        "{fix}"
    );
    let f = out.finding("ROUTE_TABLE_NOT_ASSOCIATED");
    assert_eq!(f["target"], "s3:bucket-62");
    assert!(
        f["remediation"]
            .as_str()
            .unwrap()
            .contains("--add-route-table-ids"),
        "{f}"
    );
}

#[test]
fn security_group_without_egress_and_a_narrow_network_acl() {
    let vpc = moto().create_vpc(REGION, true, true);
    let v = vpc.clone();
    moto().ec2_change(REGION, |ec2| async move {
        ec2.revoke_security_group_egress()
            .group_id(&v.security_group_id)
            .ip_permissions(
                aws_sdk_ec2::types::IpPermission::builder()
                    .ip_protocol("-1")
                    .ip_ranges(
                        aws_sdk_ec2::types::IpRange::builder()
                            .cidr_ip("0.0.0.0/0")
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("revoke egress");
        let acl = ec2
            .create_network_acl()
            .vpc_id(&v.vpc_id)
            .send()
            .await
            .expect("acl")
            .network_acl()
            .and_then(|a| a.network_acl_id())
            .expect("acl id")
            .to_string();
        let entry = |egress: bool, from: i32, to: i32| {
            ec2.create_network_acl_entry()
                .network_acl_id(&acl)
                .rule_number(100)
                .egress(egress)
                .protocol("6")
                .rule_action(aws_sdk_ec2::types::RuleAction::Allow)
                .cidr_block("0.0.0.0/0")
                .port_range(
                    aws_sdk_ec2::types::PortRange::builder()
                        .from(from)
                        .to(to)
                        .build(),
                )
                .send()
        };
        entry(true, 443, 443).await.expect("egress entry");
        entry(false, 1024, 32767).await.expect("ingress entry");
        let association = ec2
            .describe_network_acls()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("association.subnet-id")
                    .values(&v.subnet_id)
                    .build(),
            )
            .send()
            .await
            .expect("acls")
            .network_acls()
            .iter()
            .flat_map(|a| a.associations())
            .find(|a| a.subnet_id() == Some(v.subnet_id.as_str()))
            .and_then(|a| a.network_acl_association_id())
            .expect("association")
            .to_string();
        ec2.replace_network_acl_association()
            .association_id(association)
            .network_acl_id(&acl)
            .send()
            .await
            .expect("replace association");
    });
    let lab = lab(63, &vpc, vec![]);
    let out = lab.probe(&[]);
    out.expect(
        1,
        &["SG_EGRESS_BLOCKS", "NACL_INBOUND_BLOCKS"],
        &["NACL_OUTBOUND_BLOCKS"],
    );
    let nacl = out.finding("NACL_INBOUND_BLOCKS");
    assert!(
        nacl["title"].as_str().unwrap().contains("32768-60999"),
        "{nacl}"
    );
    // The default deny: AWS lists it as rule 32767 ("*"); moto's new ACLs omit the entry.
    let detail = nacl["detail"].as_str().unwrap();
    assert!(
        detail.contains("rule *") || detail.contains("rule 32767"),
        "{nacl}"
    );
    let sg = out.finding("SG_EGRESS_BLOCKS");
    assert!(
        sg["remediation"]
            .as_str()
            .unwrap()
            .contains(&vpc.security_group_id),
        "{sg}"
    );
}

#[test]
fn a_more_specific_route_overrides_the_endpoint_and_goes_to_the_internet() {
    let vpc = moto().create_vpc(REGION, true, true);
    let v = vpc.clone();
    moto().ec2_change(REGION, |ec2| async move {
        let igw = ec2
            .create_internet_gateway()
            .send()
            .await
            .expect("igw")
            .internet_gateway()
            .and_then(|g| g.internet_gateway_id())
            .expect("igw id")
            .to_string();
        ec2.attach_internet_gateway()
            .internet_gateway_id(&igw)
            .vpc_id(&v.vpc_id)
            .send()
            .await
            .expect("attach");
        ec2.create_route()
            .route_table_id(&v.route_table_id)
            .destination_cidr_block("127.64.1.0/28")
            .gateway_id(igw)
            .send()
            .await
            .expect("route");
    });
    let lab = lab(64, &vpc, vec![]);
    let out = lab.probe(&[]);
    out.expect(
        1,
        &["ROUTE_OVERRIDES_ENDPOINT", "PATH_NOT_GATEWAY_ENDPOINT"],
        &[],
    );
    assert_eq!(
        out.path("s3:bucket-64"),
        ("internet".into(), "confirmed".into())
    );
    assert_eq!(
        out.path("dynamodb:table-64"),
        ("gateway-endpoint".into(), "confirmed".into())
    );
    let f = out.finding("ROUTE_OVERRIDES_ENDPOINT");
    assert!(
        f["remediation"].as_str().unwrap().contains("delete-route")
            && f["remediation"].as_str().unwrap().contains("127.64.1.0/28"),
        "{f}"
    );
}

#[test]
fn endpoint_policy_and_vpc_dns_attribute() {
    let vpc = moto().create_vpc(REGION, true, true);
    let v = vpc.clone();
    moto().ec2_change(REGION, |ec2| async move {
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Sid":"ObjectsOnly","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}]}"#;
        ec2.modify_vpc_endpoint()
            .vpc_endpoint_id(v.s3_endpoint.clone().expect("endpoint"))
            .policy_document(policy)
            .send()
            .await
            .expect("policy");
        ec2.modify_vpc_attribute()
            .vpc_id(&v.vpc_id)
            .enable_dns_support(aws_sdk_ec2::types::AttributeBooleanValue::builder().value(false).build())
            .send()
            .await
            .expect("dns attribute");
    });
    let lab = lab(65, &vpc, vec![]);
    let out = lab.probe(&[]);
    out.expect(1, &["ENDPOINT_POLICY_DENIES", "VPC_DNS_DISABLED"], &[]);
    let f = out.finding("ENDPOINT_POLICY_DENIES");
    assert_eq!(f["target"], "s3:bucket-65");
    assert!(
        f["title"].as_str().unwrap().contains("s3:ListBucket"),
        "{f}"
    );
}

#[test]
fn a_role_that_may_not_describe_falls_back_to_data_plane_evidence() {
    let vpc = moto().create_vpc(REGION, true, true);
    let denied = vec![
        (
            "Action=DescribeRouteTables".to_string(),
            ec2_denied("DescribeRouteTables"),
        ),
        (
            "Action=DescribeVpcEndpoints".to_string(),
            ec2_denied("DescribeVpcEndpoints"),
        ),
        (
            "Action=DescribeSecurityGroups".to_string(),
            ec2_denied("DescribeSecurityGroups"),
        ),
        (
            "Action=DescribeNetworkAcls".to_string(),
            ec2_denied("DescribeNetworkAcls"),
        ),
        (
            "Action=DescribeVpcAttribute".to_string(),
            ec2_denied("DescribeVpcAttribute"),
        ),
        (
            "Action=DescribePrefixLists".to_string(),
            ec2_denied("DescribePrefixLists"),
        ),
        (
            "Action=DescribeNatGateways".to_string(),
            ec2_denied("DescribeNatGateways"),
        ),
    ];
    let lab = lab(66, &vpc, denied);
    let out = lab.probe(&[]);
    out.expect(
        0,
        &["CONTROL_PLANE_DENIED"],
        &["NO_GATEWAY_ENDPOINT", "SG_EGRESS_BLOCKS"],
    );
    let f = out.finding("CONTROL_PLANE_DENIED");
    assert_eq!(f["severity"], "note");
    assert!(
        f["title"]
            .as_str()
            .unwrap()
            .contains("ec2:DescribeRouteTables"),
        "{f}"
    );
    // The data plane decides instead: the hop count.
    assert_eq!(
        out.path("s3:bucket-66"),
        ("gateway-endpoint".into(), "confirmed".into())
    );
    // Off with --no-control-plane: no EC2 request at all.
    let before = lab.fronts[0].requests().len();
    let out = lab.probe(&["--no-control-plane"]);
    out.expect(0, &[], &["CONTROL_PLANE_DENIED"]);
    let ec2_requests = lab.fronts[0].requests()[before..]
        .iter()
        .filter(|r| r.contains(&ec2_name()))
        .count();
    assert_eq!(ec2_requests, 0);
}

fn ec2_xml(operation: &str, inner: &str) -> CannedResponse {
    CannedResponse {
        status: 200,
        reason: "OK".into(),
        headers: vec![("Content-Type".into(), "text/xml;charset=UTF-8".into())],
        body: format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{operation}Response xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>lab</requestId>{inner}</{operation}Response>"
        ),
    }
}

/// moto does not model Network Insights: the front answers the five calls as EC2 does.
fn analyzer_answers(path_found: bool) -> Vec<(String, CannedResponse)> {
    let explanation = if path_found {
        String::new()
    } else {
        "<explanationSet><item><explanationCode>ENI_SG_RULES_MISMATCH</explanationCode><direction>egress</direction><component><id>sg-0lab</id></component></item></explanationSet>".to_string()
    };
    vec![
        (
            "Action=CreateNetworkInsightsPath".into(),
            ec2_xml(
                "CreateNetworkInsightsPath",
                "<networkInsightsPath><networkInsightsPathId>nip-0lab</networkInsightsPathId></networkInsightsPath>",
            ),
        ),
        (
            "Action=StartNetworkInsightsAnalysis".into(),
            ec2_xml(
                "StartNetworkInsightsAnalysis",
                "<networkInsightsAnalysis><networkInsightsAnalysisId>nia-0lab</networkInsightsAnalysisId><status>running</status></networkInsightsAnalysis>",
            ),
        ),
        (
            "Action=DescribeNetworkInsightsAnalyses".into(),
            ec2_xml(
                "DescribeNetworkInsightsAnalyses",
                &format!(
                    "<networkInsightsAnalysisSet><item><networkInsightsAnalysisId>nia-0lab</networkInsightsAnalysisId><networkInsightsPathId>nip-0lab</networkInsightsPathId><status>succeeded</status><networkPathFound>{path_found}</networkPathFound>{explanation}</item></networkInsightsAnalysisSet>"
                ),
            ),
        ),
        (
            "Action=DeleteNetworkInsightsAnalysis".into(),
            ec2_xml(
                "DeleteNetworkInsightsAnalysis",
                "<networkInsightsAnalysisId>nia-0lab</networkInsightsAnalysisId>",
            ),
        ),
        (
            "Action=DeleteNetworkInsightsPath".into(),
            ec2_xml(
                "DeleteNetworkInsightsPath",
                "<networkInsightsPathId>nip-0lab</networkInsightsPathId>",
            ),
        ),
    ]
}

#[test]
fn reachability_analyzer_runs_only_when_asked_and_cleans_up() {
    let vpc = moto().create_vpc(REGION, true, true);
    let lab = lab(67, &vpc, analyzer_answers(false));
    // Not asked: nothing is created.
    let out = lab.probe(&[]);
    out.expect(0, &[], &["SG_EGRESS_BLOCKS"]);
    let created = |lab: &Lab| {
        lab.fronts[0]
            .requests()
            .iter()
            .filter(|r| r.contains("CreateNetworkInsightsPath"))
            .count()
    };
    assert_eq!(created(&lab), 0);
    let out = lab.probe(&["--reachability-analyzer"]);
    out.expect(1, &["SG_EGRESS_BLOCKS"], &[]);
    let sg = out.finding("SG_EGRESS_BLOCKS");
    assert!(
        sg["title"]
            .as_str()
            .unwrap()
            .contains("Reachability Analyzer"),
        "{sg}"
    );
    assert!(
        sg["detail"]
            .as_str()
            .unwrap()
            .contains("ENI_SG_RULES_MISMATCH"),
        "{sg}"
    );
    let analyzer: Vec<&serde_json::Value> = out.report()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == "reachability")
        .collect();
    assert_eq!(analyzer.len(), 2, "one analysis per gateway endpoint");
    for a in &analyzer {
        assert_eq!(a["evidence"]["cleaned_up"], true, "{a}");
        assert!(
            a["evidence"]["source"]
                .as_str()
                .unwrap()
                .starts_with("eni-"),
            "{a}"
        );
    }
    let requests = lab
        .fronts
        .iter()
        .flat_map(|f| f.requests())
        .collect::<Vec<_>>();
    let count = |needle: &str| requests.iter().filter(|r| r.contains(needle)).count();
    assert_eq!(count("CreateNetworkInsightsPath"), 2, "{requests:?}");
    assert_eq!(count("DeleteNetworkInsightsAnalysis"), 2, "{requests:?}");
    assert_eq!(count("DeleteNetworkInsightsPath"), 2, "{requests:?}");
}

/// A directory bucket in a VPC with only the S3 and DynamoDB gateway endpoints: the control
/// plane looks for the s3express one (com.amazonaws.<region>.s3express), finds none, and says
/// so; the S3 endpoint does not count for it.
#[test]
fn a_directory_bucket_needs_its_own_s3express_gateway_endpoint() {
    let vpc = moto().create_vpc(REGION, true, true);
    let mut lab = lab(68, &vpc, vec![]);
    add_directory_bucket(&mut lab, session_granted());
    let bucket = directory_bucket(68);
    let out = probe_alone(&lab, &["--bucket", &bucket]);
    out.expect(1, &["NO_GATEWAY_ENDPOINT"], &["DNS_OUTSIDE_SERVICE_RANGE"]);
    let f = out.finding("NO_GATEWAY_ENDPOINT");
    let target = format!("s3express:{bucket}");
    assert_eq!(f["target"], target.as_str(), "{f}");
    assert!(
        f["title"]
            .as_str()
            .is_some_and(|t| t.contains(&format!("com.amazonaws.{REGION}.s3express"))),
        "{f}"
    );
    assert!(
        f["remediation"]
            .as_str()
            .is_some_and(|r| r.contains("--service-name com.amazonaws.eu-west-1.s3express")),
        "{f}"
    );
    // The route table proves the traffic does not go through a gateway endpoint.
    let (kind, _) = out.path(&target);
    assert_eq!(kind, "unknown");
}

/// The read that names a private first hop no NAT gateway owns: the network interface whose
/// address it is (an appliance's, made here in moto with its description), found by address.
#[test]
fn a_hops_network_interface_is_read_by_its_address() {
    let vpc = moto().create_vpc(REGION, true, true);
    let created: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    moto().ec2_change(REGION, |ec2| {
        let vpc_id = vpc.vpc_id.clone();
        let created = &created;
        async move {
            let subnet = ec2
                .create_subnet()
                .vpc_id(vpc_id)
                .cidr_block("10.0.3.0/24")
                .send()
                .await
                .expect("appliance subnet")
                .subnet()
                .and_then(|s| s.subnet_id())
                .expect("subnet id")
                .to_string();
            let eni = ec2
                .create_network_interface()
                .subnet_id(&subnet)
                .private_ip_address("10.0.3.10")
                .description("inspection appliance")
                .send()
                .await
                .expect("network interface");
            *created.lock().unwrap() = eni
                .network_interface()
                .and_then(|n| n.network_interface_id())
                .map(str::to_string);
        }
    });
    let eni_id = created.into_inner().unwrap().expect("the interface id");
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new("testing", "testing", None, None, "test"),
            ),
        )
        .endpoint_url(moto().endpoint())
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut cp = vpce_probe::report::ControlPlane::default();
    rt.block_on(vpce_probe::checks::ec2::name_hop_interfaces(
        &sdk,
        &mut cp,
        &["10.0.3.10".to_string()],
        std::time::Duration::from_secs(10),
    ));
    assert_eq!(cp.reads.len(), 1, "{:?}", cp.reads);
    assert_eq!(cp.reads[0].action, "ec2:DescribeNetworkInterfaces");
    assert_eq!(
        cp.reads[0].outcome,
        vpce_probe::report::ReadOutcome::Ok,
        "{:?}",
        cp.reads
    );
    let found = cp
        .network_interface_at("10.0.3.10")
        .unwrap_or_else(|| panic!("no interface at 10.0.3.10 in {:?}", cp.network_interfaces));
    assert_eq!(found.id, eni_id);
    assert_eq!(found.description.as_deref(), Some("inspection appliance"));
    // Only the hop's interface, not the VPC's others.
    assert_eq!(
        cp.network_interfaces.len(),
        1,
        "{:?}",
        cp.network_interfaces
    );
}
