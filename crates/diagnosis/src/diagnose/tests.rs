use super::*;
use crate::proxy_rules::ProxyEnv;
use crate::reading::nacl::NaclSweepSlice;
use crate::reading::{Check, ids};

/// The slices the probe registers (its `checks::SLICE_RULES`): their rules are part of the
/// diagnosis these tests judge.
const REGISTERED_SLICES: &[&dyn SliceRules] = &[&NaclSweepSlice];

fn diagnose(r: &ProbeResults, exp: &Expectations) -> Diagnosis {
    super::diagnose(r, exp, REGISTERED_SLICES)
}

const NAME: &str = "s3.eu-west-1.amazonaws.com";

fn lookup(
    resolver: ResolverKind,
    rt: &str,
    outcome: DnsOutcome,
    ips: &[(&str, AddressClass)],
) -> DnsLookup {
    crate::fixtures::dns_lookup(NAME, resolver, rt, outcome, ips)
}

fn tcp(address: &str, outcome: TcpOutcome) -> TcpAttempt {
    crate::fixtures::tcp_attempt(NAME, address, outcome)
}

/// A healthy instance in eu-west-1 probing one bucket through the regional name only.
fn healthy() -> (ProbeResults, Expectations) {
    let in_range = [("52.218.1.1", AddressClass::ServiceRegion)];
    let mut results = ProbeResults {
        instance: Some(InstanceFacts {
            region: Some("eu-west-1".into()),
            vpc_cidrs: vec!["10.0.0.0/16".into()],
            subnet_id: Some("subnet-1".into()),
            ..InstanceFacts::default()
        }),
        imds: Some(ImdsEvidence {
            endpoint: "http://169.254.169.254".into(),
            reachable: true,
            error: None,
            missing: vec![],
        }),
        region: RegionFacts {
            effective: Some("eu-west-1".into()),
            effective_source: Some("imds".into()),
            instance: Some("eu-west-1".into()),
            s3_endpoint_host: Some(NAME.into()),
            ..RegionFacts::default()
        },
        targets: vec![TargetSpec {
            id: "s3:b".into(),
            service: Service::S3,
            name: "b".into(),
            endpoint_names: vec![NAME.into()],
            name_settings: Default::default(),
            name_sockets: Default::default(),
            endpoint_error: None,
            endpoint_override: None,
        }],
        dns: vec![
            lookup(ResolverKind::System, "A", DnsOutcome::Answered, &in_range),
            lookup(ResolverKind::System, "AAAA", DnsOutcome::NoData, &[]),
            lookup(ResolverKind::Vpc, "A", DnsOutcome::Answered, &in_range),
            lookup(ResolverKind::Vpc, "AAAA", DnsOutcome::NoData, &[]),
        ],
        tcp: vec![tcp("52.218.1.1", TcpOutcome::Connected)],
        proxy_env: Some(crate::reading::proxy::analyze(
            &ProxyEnv::default(),
            &[],
            &[],
        )),
        system_resolvers: vec!["10.0.0.2:53".parse().unwrap()],
        vpc_resolver: Some("169.254.169.253:53".parse().unwrap()),
        host: HostFacts {
            ephemeral_ports: Some(PortRange {
                first: 32768,
                last: 60999,
            }),
            ..HostFacts::default()
        },
        ..ProbeResults::default()
    };
    results.measured.push(CanaryResult {
        target: "checkip.amazonaws.com:443".into(),
        addresses: vec![],
        outcome: CanaryOutcome::Unreachable,
        error: None,
        connect_ms: 1,
        connect_timeout_ms: Some(200),
    });
    let exp = Expectations {
        expect_path: ExpectPath::Gateway,
        expect_issuers: vec!["Amazon".into()],
        fail_on: FailOn::Error,
        proxy_env: ProxyEnv::default(),
    };
    (results, exp)
}

/// Return traffic to 32768-65535 dropped while the kernel uses 32768-60999.
fn narrow_ephemeral_sweep() -> NaclSweep {
    NaclSweep {
        service: Service::S3,
        address: "52.218.1.1".into(),
        port: 443,
        ranges: vec![],
        failing: vec![PortRange {
            first: 32768,
            last: 65535,
        }],
        kernel_ephemeral: Some(PortRange {
            first: 32768,
            last: 60999,
        }),
    }
}

type Mutate = fn(&mut ProbeResults, &mut Expectations);
/// name, change to the healthy case, exit code, codes present, codes absent, path kind.
type Case = (
    &'static str,
    Mutate,
    i32,
    &'static [&'static str],
    &'static [&'static str],
    PathKind,
);

#[test]
fn diagnosis_table() {
    let cases: Vec<Case> = vec![
        (
            "healthy",
            |_, _| {},
            0,
            &[],
            &["TCP_TIMEOUT"],
            PathKind::GatewayEndpoint,
        ),
        (
            "canary reachable: cannot tell",
            |r, _| {
                r.measured.of_mut::<CanaryResult>()[0].outcome = CanaryOutcome::Reachable;
            },
            0,
            &[],
            &[],
            PathKind::Unknown,
        ),
        (
            "nxdomain",
            |r, _| {
                r.dns[0] = lookup(ResolverKind::System, "A", DnsOutcome::NxDomain, &[]);
                r.dns[1] = lookup(ResolverKind::System, "AAAA", DnsOutcome::NxDomain, &[]);
                r.tcp.clear();
            },
            1,
            &["DNS_RESOLUTION_FAILED"],
            &["DNS_OUTSIDE_SERVICE_RANGE"],
            PathKind::Unknown,
        ),
        (
            "resolvers disagree",
            |r, _| {
                r.dns[2] = lookup(
                    ResolverKind::Vpc,
                    "A",
                    DnsOutcome::Answered,
                    &[("10.0.5.5", AddressClass::Private)],
                );
            },
            0,
            &["DNS_RESOLVERS_DISAGREE"],
            &["DNS_INTERFACE_ENDPOINT"],
            PathKind::GatewayEndpoint,
        ),
        (
            "fail on warning",
            |r, e| {
                r.dns[2] = lookup(
                    ResolverKind::Vpc,
                    "A",
                    DnsOutcome::Answered,
                    &[("10.0.5.5", AddressClass::Private)],
                );
                e.fail_on = FailOn::Warning;
            },
            1,
            &["DNS_RESOLVERS_DISAGREE"],
            &[],
            PathKind::GatewayEndpoint,
        ),
        (
            "custom resolver is a note",
            |r, _| {
                r.system_resolvers = vec!["192.168.7.7:53".parse().unwrap()];
            },
            0,
            &["DNS_CUSTOM_RESOLVER"],
            &[],
            PathKind::GatewayEndpoint,
        ),
        (
            "VPC base + 2 is the VPC resolver",
            |r, _| {
                r.system_resolvers = vec!["10.0.0.2:53".parse().unwrap()];
            },
            0,
            &[],
            &["DNS_CUSTOM_RESOLVER"],
            PathKind::GatewayEndpoint,
        ),
        (
            "unreachable",
            |r, _| {
                r.tcp = vec![tcp("52.218.1.1", TcpOutcome::Unreachable)];
            },
            1,
            &["TCP_UNREACHABLE"],
            &["TCP_TIMEOUT"],
            PathKind::Unknown,
        ),
        (
            "IPv6 without a route is fine when IPv4 works",
            |r, _| {
                r.tcp.push(tcp("2600:1fa0::1", TcpOutcome::Unreachable));
            },
            0,
            &[],
            &["TCP_UNREACHABLE"],
            PathKind::GatewayEndpoint,
        ),
        (
            "narrow ephemeral range explains the timeout",
            |r, _| {
                r.tcp = vec![tcp("52.218.1.1", TcpOutcome::Timeout)];
                r.measured.push(narrow_ephemeral_sweep());
            },
            1,
            &["NACL_EPHEMERAL_BLOCKED", "TCP_TIMEOUT"],
            &[],
            PathKind::Unknown,
        ),
        (
            "interface endpoint answers",
            |r, _| {
                r.dns[0] = lookup(
                    ResolverKind::System,
                    "A",
                    DnsOutcome::Answered,
                    &[("10.0.9.9", AddressClass::Private)],
                );
            },
            1,
            &["DNS_INTERFACE_ENDPOINT", "PATH_NOT_GATEWAY_ENDPOINT"],
            &[],
            PathKind::InterfaceEndpoint,
        ),
        (
            "interface endpoint, any path expected",
            |r, e| {
                r.dns[0] = lookup(
                    ResolverKind::System,
                    "A",
                    DnsOutcome::Answered,
                    &[("10.0.9.9", AddressClass::Private)],
                );
                e.expect_path = ExpectPath::Any;
            },
            0,
            &["DNS_INTERFACE_ENDPOINT"],
            &["PATH_NOT_GATEWAY_ENDPOINT"],
            PathKind::InterfaceEndpoint,
        ),
        (
            "SDK region differs",
            |r, _| {
                r.region.sdk = Some("us-east-1".into());
                r.region.sdk_source = Some("AWS_REGION".into());
            },
            1,
            &["REGION_MISMATCH_SDK"],
            &[],
            PathKind::GatewayEndpoint,
        ),
        (
            "IMDS through the proxy",
            |r, e| {
                e.proxy_env = ProxyEnv::from_pairs([("HTTP_PROXY", "http://proxy.corp:3128")]);
                let imds = url::Url::parse("http://169.254.169.254/latest/api/token").unwrap();
                r.proxy_env = Some(crate::reading::proxy::analyze(&e.proxy_env, &[imds], &[]));
            },
            0,
            &["IMDS_VIA_PROXY"],
            &[],
            PathKind::GatewayEndpoint,
        ),
        (
            "expired credentials",
            |r, _| {
                r.credentials = Some(CredentialsEvidence {
                    found: true,
                    expired: true,
                    ..Default::default()
                });
            },
            1,
            &["CREDENTIALS_EXPIRED"],
            &["NO_CREDENTIALS"],
            PathKind::GatewayEndpoint,
        ),
        (
            "VPC not visible: no endpoint verdict",
            |r, _| {
                r.control_plane = Some(ControlPlane {
                    reads: vec![ControlPlaneRead {
                        action: "ec2:DescribeVpcEndpoints".into(),
                        outcome: ReadOutcome::Ok,
                        error: None,
                    }],
                    ..ControlPlane::default()
                });
            },
            0,
            &[],
            &["NO_GATEWAY_ENDPOINT"],
            PathKind::GatewayEndpoint,
        ),
        (
            "VPC visible without an endpoint",
            |r, _| {
                r.control_plane = Some(ControlPlane {
                    reads: vec![ControlPlaneRead {
                        action: "ec2:DescribeVpcEndpoints".into(),
                        outcome: ReadOutcome::Ok,
                        error: None,
                    }],
                    route_table: Some(RouteTableFacts {
                        id: "rtb-1".into(),
                        main: true,
                        routes: vec![],
                    }),
                    ..ControlPlane::default()
                });
            },
            1,
            &["NO_GATEWAY_ENDPOINT"],
            &[],
            PathKind::Unknown,
        ),
        (
            "IPv6 connects to an IPv4-only endpoint: the v6 traffic leaks",
            |r, _| {
                let mut v6 = tcp("2600:1fa0::1", TcpOutcome::Connected);
                v6.address_class = AddressClass::ServiceRegion;
                r.tcp.push(v6);
                r.control_plane = Some(ControlPlane {
                    endpoints: vec![EndpointFacts {
                        id: "vpce-1".into(),
                        service: Service::S3,
                        ip_address_type: Some("ipv4".into()),
                        ..EndpointFacts::default()
                    }],
                    ..ControlPlane::default()
                });
            },
            1,
            &["ENDPOINT_ADDRESS_FAMILY"],
            &[],
            PathKind::GatewayEndpoint,
        ),
        (
            "IPv6 to a dual-stack endpoint is fine",
            |r, _| {
                r.tcp.push(tcp("2600:1fa0::1", TcpOutcome::Connected));
                r.control_plane = Some(ControlPlane {
                    endpoints: vec![EndpointFacts {
                        id: "vpce-1".into(),
                        service: Service::S3,
                        ip_address_type: Some("dualstack".into()),
                        ..EndpointFacts::default()
                    }],
                    ..ControlPlane::default()
                });
            },
            0,
            &[],
            &["ENDPOINT_ADDRESS_FAMILY"],
            PathKind::GatewayEndpoint,
        ),
        (
            "the endpoint rules refuse the target: nothing probed is not healthy",
            |r, _| {
                r.targets[0].endpoint_names.clear();
                r.targets[0].endpoint_error =
                    Some("Custom endpoint `not a url` was not a valid URI".into());
                r.dns.clear();
                r.tcp.clear();
                r.tls.clear();
                r.calls.clear();
            },
            1,
            &["ENDPOINT_RULES_REFUSED"],
            &[],
            PathKind::Unknown,
        ),
        (
            "deadline with nothing found",
            |r, _| {
                r.deadline_hit = true;
            },
            3,
            &[],
            &[],
            PathKind::GatewayEndpoint,
        ),
        (
            "a setup error with nothing found is not healthy",
            |r, _| {
                r.setup_errors.push("cannot build the HTTP client".into());
            },
            3,
            &[],
            &[],
            PathKind::GatewayEndpoint,
        ),
    ];
    for (name, mutate, exit, present, absent, kind) in cases {
        let (mut r, mut e) = healthy();
        mutate(&mut r, &mut e);
        let d = diagnose(&r, &e);
        let codes: Vec<&str> = d.findings.iter().map(|f| f.code.as_str()).collect();
        assert_eq!(d.verdict.exit_code, exit, "{name}: {codes:?}");
        for c in present {
            assert!(codes.contains(c), "{name}: {c} missing from {codes:?}");
        }
        for c in absent {
            assert!(!codes.contains(c), "{name}: {c} unexpected in {codes:?}");
        }
        assert_eq!(
            d.targets[0].path.kind, kind,
            "{name}: {:?}",
            d.targets[0].path
        );
    }
}

#[test]
fn consequences_are_not_root_causes() {
    let (mut r, e) = healthy();
    r.tcp = vec![tcp("52.218.1.1", TcpOutcome::Timeout)];
    r.measured.push(narrow_ephemeral_sweep());
    let d = diagnose(&r, &e);
    let roots: Vec<FindingCode> = d.verdict.root_causes.iter().map(|c| c.code).collect();
    assert_eq!(roots, vec![FindingCode::NACL_EPHEMERAL_BLOCKED]);
}

#[test]
fn setup_errors_are_said_in_the_verdict() {
    let (mut r, e) = healthy();
    r.setup_errors = vec![
        "the shared config file is not valid\nat line 3".into(),
        "cannot build the HTTP client".into(),
    ];
    let d = diagnose(&r, &e);
    assert_eq!(d.verdict.exit_code, 3);
    assert_eq!(d.verdict.status, OverallStatus::Problems);
    assert_eq!(
        d.verdict.summary,
        "the probe could not run every check: the shared config file is not valid\\nat line 3 (and 1 more)"
    );
    // Beside a problem found, the problem stays first and the setup error is still said.
    r.tcp = vec![tcp("52.218.1.1", TcpOutcome::Timeout)];
    let d = diagnose(&r, &e);
    assert_eq!(d.verdict.exit_code, 1);
    assert!(
        d.verdict.summary.starts_with("problem found: ")
            && d.verdict
                .summary
                .contains("; the probe could not run every check: "),
        "{}",
        d.verdict.summary
    );
}

/// A dual-stack client reaches S3 over IPv6 while the VPC's rules only know IPv4: the security
/// group's prefix-list rule (the list holds IPv4 CIDRs) and a NACL without IPv6 entries block
/// it, and each fix names the IPv6 address with the IPv6 form of the command.
#[test]
fn ipv6_traffic_against_ipv4_only_rules() {
    let (mut r, e) = healthy();
    let v6 = "2600:1fa0:80cb::1";
    let mut attempt = tcp(v6, TcpOutcome::Timeout);
    attempt.address_class = AddressClass::ServiceRegion;
    r.tcp = vec![tcp("52.218.1.1", TcpOutcome::Connected), attempt];
    let ok = |action: &str| ControlPlaneRead {
        action: action.into(),
        outcome: ReadOutcome::Ok,
        error: None,
    };
    let allow_all_v4 = |n: i32, egress: bool| NaclEntry {
        rule_number: n,
        egress,
        protocol: "-1".into(),
        allow: true,
        cidr: Some("0.0.0.0/0".into()),
        from_port: None,
        to_port: None,
    };
    r.control_plane = Some(ControlPlane {
        reads: vec![
            ok("ec2:DescribeSecurityGroups"),
            ok("ec2:DescribeNetworkAcls"),
        ],
        prefix_lists: vec![PrefixListFacts {
            id: "pl-6ea54007".into(),
            name: "com.amazonaws.eu-west-1.s3".into(),
            service: Service::S3,
            cidrs: vec!["52.218.0.0/17".into()],
        }],
        security_groups: vec![SecurityGroupFacts {
            id: "sg-1".into(),
            egress: vec![SgRule {
                protocol: "tcp".into(),
                from_port: Some(443),
                to_port: Some(443),
                cidrs: vec![],
                prefix_list_ids: vec!["pl-6ea54007".into()],
            }],
        }],
        network_acl: Some(NetworkAclFacts {
            id: "acl-1".into(),
            entries: vec![allow_all_v4(100, true), allow_all_v4(100, false)],
        }),
        ..ControlPlane::default()
    });
    let d = diagnose(&r, &e);
    let finding = |code: &str| {
        d.findings
            .iter()
            .find(|f| f.code.as_str() == code)
            .unwrap_or_else(|| panic!("{code} missing: {:?}", d.findings))
    };
    let sg = finding("SG_EGRESS_BLOCKS");
    assert!(sg.detail.contains(v6), "{}", sg.detail);
    assert!(sg.detail.contains("IPv6"), "{}", sg.detail);
    assert!(
        !sg.detail.contains("52.218.1.1"),
        "the IPv4 address is allowed: {}",
        sg.detail
    );
    assert!(
        sg.remediation
            .contains(&format!("Ipv6Ranges=[{{CidrIpv6={v6}/128}}]")),
        "{}",
        sg.remediation
    );
    let acl = finding("NACL_OUTBOUND_BLOCKS");
    assert!(acl.title.contains(v6), "{}", acl.title);
    assert!(
        acl.remediation
            .contains(&format!("--ipv6-cidr-block {v6}/128")),
        "{}",
        acl.remediation
    );
    assert!(
        !acl.remediation.contains("--cidr-block 52.218"),
        "{}",
        acl.remediation
    );
    assert_eq!(d.verdict.exit_code, 1);
}

// ---- premises: a rule concludes only about the addresses and answers it concerns ----------

fn ok_read(action: &str) -> ControlPlaneRead {
    ControlPlaneRead {
        action: action.into(),
        outcome: ReadOutcome::Ok,
        error: None,
    }
}

fn route(cidr: Option<&str>, pl: Option<&str>, target: &str) -> RouteFacts {
    RouteFacts {
        destination_cidr: cidr.map(str::to_string),
        destination_prefix_list: pl.map(str::to_string),
        target: target.into(),
        state: "active".into(),
    }
}

/// The subnet's route table as the EC2 reads give it: `local`, a NAT default route, the S3
/// gateway endpoint's prefix-list route (and `extra` routes); the endpoint, its list with
/// `cidrs` (empty: the entries were not read), an open security group and network ACL.
fn vpc_with_nat(cidrs: &[&str], extra: Vec<RouteFacts>) -> ControlPlane {
    let mut routes = vec![
        route(Some("10.0.0.0/16"), None, "local"),
        route(Some("0.0.0.0/0"), None, "nat-0a1b"),
        route(None, Some("pl-6da54004"), "vpce-0s3"),
    ];
    routes.extend(extra);
    let open = |egress: bool| NaclEntry {
        rule_number: 100,
        egress,
        protocol: "-1".into(),
        allow: true,
        cidr: Some("0.0.0.0/0".into()),
        from_port: None,
        to_port: None,
    };
    ControlPlane {
        reads: [
            "ec2:DescribeRouteTables",
            "ec2:DescribeVpcEndpoints",
            "ec2:DescribePrefixLists",
            "ec2:DescribeSecurityGroups",
            "ec2:DescribeNetworkAcls",
        ]
        .into_iter()
        .map(ok_read)
        .collect(),
        route_table: Some(RouteTableFacts {
            id: "rtb-1".into(),
            main: false,
            routes,
        }),
        endpoints: vec![EndpointFacts {
            id: "vpce-0s3".into(),
            service: Service::S3,
            service_name: "com.amazonaws.eu-west-1.s3".into(),
            state: "available".into(),
            route_table_ids: vec!["rtb-1".into()],
            policy: None,
            ip_address_type: None,
        }],
        prefix_lists: vec![PrefixListFacts {
            id: "pl-6da54004".into(),
            name: "com.amazonaws.eu-west-1.s3".into(),
            service: Service::S3,
            cidrs: cidrs.iter().map(|c| c.to_string()).collect(),
        }],
        security_groups: vec![SecurityGroupFacts {
            id: "sg-1".into(),
            egress: vec![SgRule {
                protocol: "-1".into(),
                from_port: None,
                to_port: None,
                cidrs: vec!["0.0.0.0/0".into()],
                prefix_list_ids: vec![],
            }],
        }],
        network_acl: Some(NetworkAclFacts {
            id: "acl-1".into(),
            entries: vec![open(true), open(false)],
        }),
        ..ControlPlane::default()
    }
}

/// Every resolver answers `ip` (of `class`) for the S3 name, and TCP to it connects.
fn answers(r: &mut ProbeResults, ip: &str, class: AddressClass) {
    r.dns = vec![
        lookup(
            ResolverKind::System,
            "A",
            DnsOutcome::Answered,
            &[(ip, class)],
        ),
        lookup(ResolverKind::System, "AAAA", DnsOutcome::NoData, &[]),
        lookup(ResolverKind::Vpc, "A", DnsOutcome::Answered, &[(ip, class)]),
        lookup(ResolverKind::Vpc, "AAAA", DnsOutcome::NoData, &[]),
    ];
    let mut attempt = tcp(ip, TcpOutcome::Connected);
    attempt.address_class = class;
    r.tcp = vec![attempt];
}

fn codes(d: &Diagnosis) -> Vec<&'static str> {
    d.findings.iter().map(|f| f.code.as_str()).collect()
}

fn roots(d: &Diagnosis) -> Vec<FindingCode> {
    d.verdict.root_causes.iter().map(|c| c.code).collect()
}

/// The issue's first case: a resolver answers the S3 name outside the S3 ranges, the subnet
/// has a NAT default route, the control plane is readable. 0.0.0.0/0 -> nat "wins" over the
/// prefix-list route only in the sense that the prefix list never held the address: the cause
/// is the DNS answer alone. With the list's entries read and without them (the published
/// ranges decide then).
#[test]
fn no_route_overrides_the_endpoint_for_an_answer_outside_its_list() {
    for cidrs in [&["52.218.0.0/17"][..], &[]] {
        let (mut r, e) = healthy();
        answers(&mut r, "198.51.100.99", AddressClass::Outside);
        r.control_plane = Some(vpc_with_nat(cidrs, vec![]));
        let d = diagnose(&r, &e);
        let codes = codes(&d);
        assert!(
            !codes.contains(&"ROUTE_OVERRIDES_ENDPOINT"),
            "{cidrs:?}: {codes:?}"
        );
        assert!(codes.contains(&"DNS_OUTSIDE_SERVICE_RANGE"), "{codes:?}");
        assert_eq!(
            roots(&d),
            vec![FindingCode::DNS_OUTSIDE_SERVICE_RANGE],
            "{cidrs:?}"
        );
        // The route table itself still says where that traffic goes.
        assert_eq!(d.targets[0].path.kind, PathKind::Internet);
    }
}

/// An interface endpoint with private DNS: 10.0.1.200 follows `local`, which is no override
/// of the gateway endpoint; with any path accepted the run is healthy.
#[test]
fn no_route_overrides_the_endpoint_for_an_interface_endpoint_address() {
    let (mut r, mut e) = healthy();
    answers(&mut r, "10.0.1.200", AddressClass::Private);
    r.control_plane = Some(vpc_with_nat(&["52.218.0.0/17"], vec![]));
    let d = diagnose(&r, &e);
    assert!(
        !codes(&d).contains(&"ROUTE_OVERRIDES_ENDPOINT"),
        "{:?}",
        codes(&d)
    );
    assert_eq!(roots(&d), vec![FindingCode::DNS_INTERFACE_ENDPOINT]);
    e.expect_path = ExpectPath::Any;
    let d = diagnose(&r, &e);
    assert_eq!(d.verdict.exit_code, 0, "{:?}", d.findings);
}

/// The interface-endpoint-expected case with the control plane readable and no gateway
/// endpoint at all: the missing gateway endpoint concerns no traffic of the applications, so
/// it is a note; expecting the gateway path it is an error again.
#[test]
fn a_missing_gateway_endpoint_is_a_note_when_another_path_is_expected() {
    let (mut r, mut e) = healthy();
    answers(&mut r, "10.0.1.200", AddressClass::Private);
    let mut cp = vpc_with_nat(&["52.218.0.0/17"], vec![]);
    cp.endpoints.clear();
    r.control_plane = Some(cp);
    e.expect_path = ExpectPath::Any;
    let d = diagnose(&r, &e);
    let f = d
        .findings
        .iter()
        .find(|f| f.code == FindingCode::NO_GATEWAY_ENDPOINT)
        .expect("NO_GATEWAY_ENDPOINT");
    assert_eq!(f.severity, Severity::Note, "{f:?}");
    assert_eq!(d.verdict.exit_code, 0);
    e.expect_path = ExpectPath::Gateway;
    let d = diagnose(&r, &e);
    assert!(roots(&d).contains(&FindingCode::NO_GATEWAY_ENDPOINT));
    // In the endpoint's ranges and not connecting, the missing endpoint is the cause whatever
    // path is accepted.
    e.expect_path = ExpectPath::Any;
    answers(&mut r, "52.218.1.1", AddressClass::ServiceRegion);
    r.tcp[0].outcome = TcpOutcome::Timeout;
    let d = diagnose(&r, &e);
    assert!(
        roots(&d).contains(&FindingCode::NO_GATEWAY_ENDPOINT),
        "{d:?}",
        d = d.findings
    );
}

/// The rule still finds what it is for: a more specific route for an address the list holds,
/// from the list's entries or, without them, from the published ranges (and says which).
#[test]
fn a_more_specific_route_for_a_listed_address_still_overrides() {
    let cases = [
        (&["52.218.0.0/17"][..], "is in pl-6da54004 (52.218.0.0/17)"),
        (&[][..], "entries were not read"),
    ];
    for (cidrs, said) in cases {
        let (mut r, e) = healthy();
        answers(&mut r, "52.218.1.1", AddressClass::ServiceRegion);
        r.control_plane = Some(vpc_with_nat(
            cidrs,
            vec![route(Some("52.218.1.0/24"), None, "pcx-1")],
        ));
        let d = diagnose(&r, &e);
        let f = d
            .findings
            .iter()
            .find(|f| f.code == FindingCode::ROUTE_OVERRIDES_ENDPOINT)
            .unwrap_or_else(|| panic!("{cidrs:?}: {:?}", codes(&d)));
        assert!(f.title.contains("52.218.1.0/24 -> pcx-1"), "{}", f.title);
        assert!(f.detail.contains(said), "{}", f.detail);
    }
}

fn call(operation: &str, action: &str, status: u16, code: Option<&str>) -> CallResult {
    CallResult {
        service: Service::S3,
        target: "s3:b".into(),
        operation: operation.into(),
        action: action.into(),
        endpoint_host: Some("b.s3.eu-west-1.amazonaws.com".into()),
        peer: Some("52.218.1.1".into()),
        proxy: None,
        status: Some(status),
        outcome: CallOutcome::ServiceError,
        error_code: code.map(str::to_string),
        error_message: None,
        headers: Default::default(),
        finding: None,
        denial: None,
        bucket_region: None,
        clock_offset_secs: None,
        detail: None,
        duration_ms: 1,
    }
}

/// S3's answer to a GetBucketLocation signed 30 minutes ahead of its clock.
fn skewed_location() -> CallResult {
    let mut c = call(
        "GetBucketLocation",
        "s3:GetBucketLocation",
        403,
        Some("RequestTimeTooSkewed"),
    );
    c.error_message =
        Some("The difference between the request time and the current time is too large.".into());
    c.finding = Some(FindingCode::CLOCK_SKEW);
    c.clock_offset_secs = Some(-1800);
    c
}

/// The issue's second case: the clock 30 minutes fast. HeadBucket gets S3's bodiless 403,
/// GetBucketLocation says RequestTimeTooSkewed, the Date headers show the offset: the bare
/// 403 is the skew, not "a policy AWS does not name". Each kind of skew evidence alone is
/// enough; without any, the bare 403 stays unattributed.
#[test]
fn a_bare_403_on_a_run_with_measured_skew_is_the_clock() {
    let head = || {
        let mut c = call("HeadBucket", "s3:ListBucket", 403, None);
        c.finding = Some(FindingCode::ACCESS_DENIED_UNATTRIBUTED);
        c.denial = Some(crate::classify::Denial::default());
        c
    };
    type Evidence = fn(&mut ProbeResults);
    let cases: Vec<(&str, Evidence)> = vec![
        ("every sign", |r| {
            r.calls[0].clock_offset_secs = Some(-1800);
            r.calls.push(skewed_location());
        }),
        ("GetBucketLocation's answer alone", |r| {
            let mut c = skewed_location();
            c.clock_offset_secs = None;
            r.calls.push(c);
        }),
        ("the Date header alone", |r| {
            r.calls[0].clock_offset_secs = Some(-1800)
        }),
        ("STS alone", |r| {
            r.credentials = Some(CredentialsEvidence {
                found: true,
                identity_error: Some("STS: SignatureDoesNotMatch: Signature expired: 20261202T180000Z is now earlier than 20261202T182500Z (20261202T183000Z - 5 min.)".into()),
                ..Default::default()
            })
        }),
    ];
    for (name, evidence) in cases {
        let (mut r, e) = healthy();
        r.calls = vec![head()];
        evidence(&mut r);
        let d = diagnose(&r, &e);
        let codes = codes(&d);
        assert!(
            !codes.contains(&"ACCESS_DENIED_UNATTRIBUTED"),
            "{name}: {codes:?}"
        );
        assert!(codes.contains(&"CLOCK_SKEW"), "{name}: {codes:?}");
        assert!(
            roots(&d).iter().all(|c| *c == FindingCode::CLOCK_SKEW),
            "{name}: {:?}",
            roots(&d)
        );
    }
    let (mut r, e) = healthy();
    r.calls = vec![head()];
    let d = diagnose(&r, &e);
    assert_eq!(roots(&d), vec![FindingCode::ACCESS_DENIED_UNATTRIBUTED]);
}

/// An endpoint policy decides only the requests that go through the endpoint: the calls went
/// to an address outside its list, so its denial is a note; through the endpoint, an error.
#[test]
fn an_endpoint_policy_decides_only_traffic_through_the_endpoint() {
    let deny = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*"}]}"#;
    for (ip, class, severity) in [
        ("198.51.100.99", AddressClass::Outside, Severity::Note),
        ("52.218.1.1", AddressClass::ServiceRegion, Severity::Error),
    ] {
        let (mut r, e) = healthy();
        answers(&mut r, ip, class);
        let mut cp = vpc_with_nat(&["52.218.0.0/17"], vec![]);
        cp.endpoints[0].policy = Some(deny.into());
        r.control_plane = Some(cp);
        let mut c = call("HeadBucket", "s3:ListBucket", 200, None);
        c.outcome = CallOutcome::Ok;
        c.peer = Some(ip.into());
        r.calls = vec![c];
        let d = diagnose(&r, &e);
        let f = d
            .findings
            .iter()
            .find(|f| f.code == FindingCode::ENDPOINT_POLICY_DENIES)
            .unwrap_or_else(|| panic!("{ip}: {:?}", codes(&d)));
        assert_eq!(f.severity, severity, "{ip}: {f:?}");
    }
}

/// S3 names a VPC endpoint policy; the call went to a private address, so the policy is the
/// interface endpoint's and the fix says so (not "the gateway endpoint's").
#[test]
fn an_endpoint_policy_denial_names_the_endpoint_the_call_went_through() {
    let (mut r, e) = healthy();
    answers(&mut r, "10.0.1.200", AddressClass::Private);
    let mut c = call("GetObject", "s3:GetObject", 403, Some("AccessDenied"));
    c.peer = Some("10.0.1.200".into());
    c.finding = Some(FindingCode::ACCESS_DENIED_VPCE_POLICY);
    r.calls = vec![c];
    let d = diagnose(&r, &e);
    let f = d
        .findings
        .iter()
        .find(|f| f.code == FindingCode::ACCESS_DENIED_VPCE_POLICY)
        .expect("ACCESS_DENIED_VPCE_POLICY");
    assert!(
        f.remediation.contains("interface endpoint")
            && f.remediation.contains("vpc-endpoint-type,Values=Interface")
            && !f.remediation.contains("gateway endpoint's policy"),
        "{}",
        f.remediation
    );
}

fn trace(address: &str, answered_at: Option<u8>, before: &[Option<&str>]) -> HopTrace {
    HopTrace {
        name: NAME.into(),
        service: Some(Service::S3),
        address: address.into(),
        port: 443,
        address_class: AddressClass::ServiceRegion,
        answered_at,
        outcome: if answered_at.is_some() {
            TcpOutcome::Connected
        } else {
            TcpOutcome::Timeout
        },
        hops: before
            .iter()
            .enumerate()
            .map(|(i, from)| Hop {
                ttl: i as u8 + 1,
                reply: if from.is_some() {
                    HopReply::TimeExceeded
                } else {
                    HopReply::Silent
                },
                from: from.map(str::to_string),
            })
            .collect(),
        max_hops: 8,
        error: None,
        duration_ms: 1,
    }
}

fn canary_trace(answered_at: Option<u8>, before: &[Option<&str>]) -> HopTrace {
    HopTrace {
        name: "203.0.113.10:443".into(),
        service: None,
        address_class: AddressClass::Outside,
        ..trace("203.0.113.10", answered_at, before)
    }
}

/// The hop check in the path verdict: what each trace (with the canary's) decides, and the
/// finding it gives when the gateway endpoint is expected.
#[test]
fn hop_evidence_table() {
    type HopCase = (
        &'static str,
        fn(&mut ProbeResults),
        PathKind,
        Confidence,
        Option<PathEvidence>,
        Option<Severity>,
    );
    let cases: Vec<HopCase> = vec![
        (
            "no hop evidence: inferred from the ranges and the silent canary",
            |_| {},
            PathKind::GatewayEndpoint,
            Confidence::Inferred,
            None,
            None,
        ),
        (
            "hop 1: confirmed by the hop count",
            |r| r.measured.set(vec![trace("52.218.1.1", Some(1), &[])]),
            PathKind::GatewayEndpoint,
            Confidence::Confirmed,
            Some(PathEvidence::HopCount),
            None,
        ),
        (
            "hop 1 with a NAT for the internet: still the endpoint",
            |r| {
                r.measured.of_mut::<CanaryResult>()[0].outcome = CanaryOutcome::Reachable;
                r.measured.set(vec![
                    trace("52.218.1.1", Some(1), &[]),
                    canary_trace(Some(2), &[Some("10.0.0.77")]),
                ]);
            },
            PathKind::GatewayEndpoint,
            Confidence::Confirmed,
            Some(PathEvidence::HopCount),
            None,
        ),
        (
            "first hop the NAT that the canary takes too: internet",
            |r| {
                r.measured.of_mut::<CanaryResult>()[0].outcome = CanaryOutcome::Reachable;
                r.measured.set(vec![
                    trace("52.218.1.1", Some(2), &[Some("10.0.0.77")]),
                    canary_trace(Some(5), &[Some("10.0.0.77"), None, Some("52.93.1.1")]),
                ]);
            },
            PathKind::Internet,
            Confidence::Confirmed,
            Some(PathEvidence::HopCount),
            Some(Severity::Error),
        ),
        (
            "first hop a private appliance, no internet path: not direct, device named",
            |r| {
                r.measured
                    .set(vec![trace("52.218.1.1", Some(2), &[Some("10.0.3.10")])])
            },
            PathKind::Unknown,
            Confidence::Unknown,
            None,
            Some(Severity::Error),
        ),
        (
            "public hops: internet",
            |r| {
                r.measured.set(vec![trace(
                    "52.218.1.1",
                    None,
                    &[Some("52.93.9.9"), Some("52.93.9.10")],
                )])
            },
            PathKind::Internet,
            Confidence::Confirmed,
            Some(PathEvidence::HopCount),
            Some(Severity::Error),
        ),
        (
            "ICMP filtered: answered at 3 after silence, never called direct",
            |r| {
                r.measured
                    .set(vec![trace("52.218.1.1", Some(3), &[None, None])])
            },
            PathKind::Unknown,
            Confidence::Unknown,
            None,
            Some(Severity::Warning),
        ),
        (
            "nothing answered at any TTL: no hop evidence",
            |r| {
                r.measured
                    .set(vec![trace("52.218.1.1", None, &[None, None, None])])
            },
            PathKind::GatewayEndpoint,
            Confidence::Inferred,
            None,
            None,
        ),
        (
            "a trace of another address says nothing of this one",
            |r| {
                r.measured
                    .set(vec![trace("52.218.9.9", Some(2), &[Some("10.0.3.10")])])
            },
            PathKind::GatewayEndpoint,
            Confidence::Inferred,
            None,
            None,
        ),
    ];
    for (name, mutate, kind, confidence, decided_by, severity) in cases {
        let (mut r, e) = healthy();
        mutate(&mut r);
        let d = diagnose(&r, &e);
        let path = &d.targets[0].path;
        assert_eq!(path.kind, kind, "{name}: {path:?}");
        assert_eq!(path.confidence, confidence, "{name}: {path:?}");
        assert_eq!(path.decided_by, decided_by, "{name}: {path:?}");
        let finding = d
            .findings
            .iter()
            .find(|f| f.code == FindingCode::PATH_NOT_GATEWAY_ENDPOINT);
        assert_eq!(finding.map(|f| f.severity), severity, "{name}: {finding:?}");
        if let Some(f) = finding {
            assert!(!f.check_ids.is_empty(), "{name}: {f:?}");
        }
    }
}

/// An interface endpoint's address answering at the first hop is confirmed; the route table,
/// when read, decides before the hop check and says so.
#[test]
fn hop_count_confirms_an_interface_endpoint() {
    let (mut r, e) = healthy();
    let private = [("10.0.1.50", AddressClass::Private)];
    r.dns[0] = lookup(ResolverKind::System, "A", DnsOutcome::Answered, &private);
    r.dns[2] = lookup(ResolverKind::Vpc, "A", DnsOutcome::Answered, &private);
    let mut attempt = tcp("10.0.1.50", TcpOutcome::Connected);
    attempt.address_class = AddressClass::Private;
    r.tcp = vec![attempt];
    let mut t = trace("10.0.1.50", Some(1), &[]);
    t.address_class = AddressClass::Private;
    r.measured.set(vec![t]);
    let d = diagnose(&r, &e);
    let path = &d.targets[0].path;
    assert_eq!(path.kind, PathKind::InterfaceEndpoint);
    assert_eq!(path.confidence, Confidence::Confirmed);
    assert_eq!(path.decided_by, Some(PathEvidence::HopCount));
    assert!(
        path.evidence
            .iter()
            .any(|l| l == "hops 10.0.1.50: 1 (direct)"),
        "{:?}",
        path.evidence
    );
}

const ZONAL: &str = "b--euw1-az1--x-s3.s3express-euw1-az1.eu-west-1.amazonaws.com";

/// The healthy case for a directory bucket: its zonal name answers 192.0.2.10, an address of
/// a service without published ranges, and connects.
fn healthy_directory_bucket() -> (ProbeResults, Expectations) {
    let (mut r, e) = healthy();
    r.targets = vec![TargetSpec {
        id: "s3express:b--euw1-az1--x-s3".into(),
        service: Service::S3express,
        name: "b--euw1-az1--x-s3".into(),
        endpoint_names: vec![ZONAL.into()],
        name_settings: Default::default(),
        name_sockets: Default::default(),
        endpoint_error: None,
        endpoint_override: None,
    }];
    answers(&mut r, "192.0.2.10", AddressClass::Unpublished);
    for d in &mut r.dns {
        d.name = ZONAL.into();
        d.service = Service::S3express;
    }
    for a in &mut r.tcp {
        a.name = ZONAL.into();
        a.service = Service::S3express;
    }
    (r, e)
}

fn express_trace(answered_at: Option<u8>, before: &[Option<&str>]) -> HopTrace {
    HopTrace {
        name: ZONAL.into(),
        service: Some(Service::S3express),
        address_class: AddressClass::Unpublished,
        ..trace("192.0.2.10", answered_at, before)
    }
}

/// No published ranges: never "outside" them; the hop check decides the path, and a NAT in
/// the way is still found.
#[test]
fn a_directory_bucket_is_judged_by_its_hops_not_by_ranges_it_has_none_of() {
    let (mut r, e) = healthy_directory_bucket();
    let d = diagnose(&r, &e);
    assert!(
        !codes(&d).contains(&"DNS_OUTSIDE_SERVICE_RANGE"),
        "{:?}",
        codes(&d)
    );
    // Without hop evidence: only inferred (the canary is silent), and said why.
    assert_eq!(d.targets[0].path.kind, PathKind::GatewayEndpoint);
    assert_eq!(d.targets[0].path.confidence, Confidence::Inferred);
    assert!(
        d.targets[0]
            .path
            .evidence
            .iter()
            .any(|l| l.contains("publishes no address ranges")),
        "{:?}",
        d.targets[0].path.evidence
    );
    r.measured.set(vec![express_trace(Some(1), &[])]);
    let d = diagnose(&r, &e);
    assert_eq!(d.verdict.exit_code, 0, "{:?}", d.findings);
    assert_eq!(d.targets[0].path.kind, PathKind::GatewayEndpoint);
    assert_eq!(d.targets[0].path.confidence, Confidence::Confirmed);
    assert_eq!(d.targets[0].path.decided_by, Some(PathEvidence::HopCount));
    // A NAT gateway (the canary's first hop too) before the service: the internet.
    r.measured.of_mut::<CanaryResult>()[0].outcome = CanaryOutcome::Reachable;
    r.measured.set(vec![
        express_trace(Some(2), &[Some("10.0.0.77")]),
        canary_trace(Some(5), &[Some("10.0.0.77"), None, Some("52.93.1.1")]),
    ]);
    let d = diagnose(&r, &e);
    assert_eq!(d.targets[0].path.kind, PathKind::Internet);
    assert!(
        codes(&d).contains(&"PATH_NOT_GATEWAY_ENDPOINT"),
        "{:?}",
        codes(&d)
    );
    assert_eq!(d.verdict.exit_code, 1);
}

/// The control plane names the s3express endpoint: missing, it is NO_GATEWAY_ENDPOINT of
/// com.amazonaws.<region>.s3express even though the S3 one exists.
#[test]
fn a_directory_bucket_needs_the_s3express_gateway_endpoint() {
    let (mut r, e) = healthy_directory_bucket();
    r.tcp[0].outcome = TcpOutcome::Timeout;
    r.control_plane = Some(vpc_with_nat(&["52.218.0.0/17"], vec![]));
    let d = diagnose(&r, &e);
    let missing = d
        .findings
        .iter()
        .find(|f| f.code.as_str() == "NO_GATEWAY_ENDPOINT")
        .unwrap_or_else(|| panic!("{:?}", codes(&d)));
    assert!(
        missing.title.contains("com.amazonaws.eu-west-1.s3express"),
        "{}",
        missing.title
    );
    assert_eq!(missing.severity, Severity::Error);
    assert_eq!(d.verdict.exit_code, 1);
}

/// The VPC's NAT gateway at 10.0.0.137 in the public subnet, as DescribeNatGateways gives it.
fn nat_gateway() -> NatGatewayFacts {
    NatGatewayFacts {
        id: "nat-0a1b".into(),
        subnet_id: Some("subnet-0pub".into()),
        state: "available".into(),
        connectivity_type: Some("public".into()),
        private_ips: vec!["10.0.0.137".into()],
        public_ips: vec!["203.0.113.99".into()],
    }
}

/// The service's and the canary's traces both pass the private 10.0.0.137 first.
fn through_private_nat(r: &mut ProbeResults) {
    r.measured.of_mut::<CanaryResult>()[0].outcome = CanaryOutcome::Reachable;
    r.measured.set(vec![
        trace("52.218.1.1", Some(2), &[Some("10.0.0.137")]),
        canary_trace(Some(4), &[Some("10.0.0.137"), None, Some("52.93.1.1")]),
    ]);
}

fn path_finding(d: &Diagnosis) -> &Finding {
    d.findings
        .iter()
        .find(|f| f.code == FindingCode::PATH_NOT_GATEWAY_ENDPOINT)
        .expect("PATH_NOT_GATEWAY_ENDPOINT")
}

/// A private first hop that is a NAT gateway's address is named by it, with the route that
/// sends the service there; the verdict the route table decides says the same.
#[test]
fn a_private_first_hop_is_named_by_the_nat_gateway_it_belongs_to() {
    let (mut r, e) = healthy();
    through_private_nat(&mut r);
    // The endpoint exists, but the subnet's table lost its prefix-list route.
    let mut cp = vpc_with_nat(&[], vec![]);
    if let Some(table) = cp.route_table.as_mut() {
        table.routes.retain(|r| r.destination_prefix_list.is_none());
    }
    cp.reads.push(ok_read("ec2:DescribeNatGateways"));
    cp.nat_gateways = vec![nat_gateway()];
    r.control_plane = Some(cp);
    let d = diagnose(&r, &e);
    let path = &d.targets[0].path;
    assert_eq!(path.kind, PathKind::Internet, "{path:?}");
    assert_eq!(
        path.decided_by,
        Some(PathEvidence::ControlPlane),
        "{path:?}"
    );
    assert!(
        path.evidence
            .iter()
            .any(|l| l == "hop 1 is 10.0.0.137, NAT gateway nat-0a1b (subnet-0pub)"),
        "{:?}",
        path.evidence
    );
    let f = path_finding(&d);
    assert_eq!(
        f.title,
        "traffic to s3:b passes 10.0.0.137 (hop 1, NAT gateway nat-0a1b) before the service: not the gateway endpoint"
    );
    assert!(
        f.detail.contains("10.0.0.137 is NAT gateway nat-0a1b in subnet-0pub (public 203.0.113.99, connectivity public, state available), and is also the internet canary's first hop.")
            && f.detail.contains("Route table rtb-1 sends 52.218.1.1 to nat-0a1b (0.0.0.0/0)."),
        "{}",
        f.detail
    );
    // The fix is the endpoint's route in this table, named with both ids.
    assert!(
        f.remediation
            .starts_with("The traffic to s3:b goes through NAT gateway nat-0a1b (subnet-0pub): ")
            && f.remediation.contains(
                "aws ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-0s3 --add-route-table-ids rtb-1"
            ),
        "{}",
        f.remediation
    );
}

/// Without the route table (denied) but with the NAT gateways read, the hop check still
/// names the device, and says which read would name the route.
#[test]
fn a_named_nat_gateway_without_the_route_table() {
    let (mut r, e) = healthy();
    through_private_nat(&mut r);
    r.measured.of_mut::<CanaryResult>()[0].outcome = CanaryOutcome::Unreachable;
    let first_trace = r.measured.of::<HopTrace>()[..1].to_vec();
    r.measured.set(first_trace);
    r.control_plane = Some(ControlPlane {
        reads: vec![ok_read("ec2:DescribeNatGateways")],
        nat_gateways: vec![nat_gateway()],
        ..ControlPlane::default()
    });
    let d = diagnose(&r, &e);
    let path = &d.targets[0].path;
    assert_eq!(path.kind, PathKind::Unknown, "{path:?}");
    assert!(
        path.evidence.iter().any(|l| l
            == "hop 1 is 10.0.0.137, NAT gateway nat-0a1b (subnet-0pub): it forwards the traffic before the service"),
        "{:?}",
        path.evidence
    );
    assert!(
        path.to_confirm
            .as_deref()
            .is_some_and(|c| c.contains("route that sends the traffic to nat-0a1b")),
        "{path:?}"
    );
    let f = path_finding(&d);
    assert!(
        f.title.contains("(hop 1, NAT gateway nat-0a1b)"),
        "{}",
        f.title
    );
    assert!(
        f.remediation.contains("create-vpc-endpoint")
            && f.remediation.contains("com.amazonaws.eu-west-1.s3"),
        "{}",
        f.remediation
    );
}

/// Without the control plane, and with a NAT gateway that is gone (deleted: its address may
/// be another device's now), the private hop keeps today's unnamed wording.
#[test]
fn an_unnamed_private_first_hop_keeps_the_general_wording() {
    for control_plane in [
        None,
        Some(ControlPlane {
            reads: vec![ok_read("ec2:DescribeNatGateways")],
            nat_gateways: vec![NatGatewayFacts {
                state: "deleted".into(),
                ..nat_gateway()
            }],
            ..ControlPlane::default()
        }),
    ] {
        let (mut r, e) = healthy();
        through_private_nat(&mut r);
        r.control_plane = control_plane;
        let d = diagnose(&r, &e);
        let path = &d.targets[0].path;
        assert_eq!(path.kind, PathKind::Internet, "{path:?}");
        assert_eq!(path.decided_by, Some(PathEvidence::HopCount), "{path:?}");
        assert!(
            path.evidence.iter().any(|l| l
                == "hop 1 is 10.0.0.137, a private address that is also the internet canary's first hop: a NAT carries the traffic to the internet, not the gateway endpoint"),
            "{:?}",
            path.evidence
        );
        assert!(
            !path.evidence.iter().any(|l| l.contains("nat-0a1b")),
            "{path:?}"
        );
        let f = path_finding(&d);
        assert_eq!(
            f.title,
            "traffic to s3:b passes 10.0.0.137 (hop 1) before the service: not the gateway endpoint"
        );
        assert!(
            f.detail.contains("10.0.0.137 is private and is also the internet canary's first hop: a NAT gateway or NAT instance."),
            "{}",
            f.detail
        );
        assert_eq!(
            f.remediation,
            FindingCode::PATH_NOT_GATEWAY_ENDPOINT.general_fix()
        );
    }
}

/// The NO_PROXY fix is made once per diagnosis (it lists every target's names): each proxy
/// finding of each target recommends that same value, with every target's names and IMDS.
#[test]
fn every_proxy_finding_recommends_one_no_proxy_value_for_all_targets() {
    let (mut r, mut e) = healthy();
    e.proxy_env = ProxyEnv::from_pairs([("HTTPS_PROXY", "http://proxy.corp:3128")]);
    // Names no other one covers (a NO_PROXY entry covers its subdomains).
    let names = ["one.example.net", "two.example.org", "three.example.com"];
    r.targets = names
        .iter()
        .enumerate()
        .map(|(i, name)| TargetSpec {
            id: format!("s3:bucket-{i}"),
            endpoint_names: vec![name.to_string()],
            ..r.targets[0].clone()
        })
        .collect();
    let urls: Vec<url::Url> = names
        .iter()
        .map(|n| url::Url::parse(&format!("https://{n}/")).unwrap())
        .chain([url::Url::parse("http://169.254.169.254/latest/api/token").unwrap()])
        .collect();
    r.proxy_env = Some(crate::reading::proxy::analyze(&e.proxy_env, &urls, &[]));
    let d = diagnose(&r, &e);
    let fixes: Vec<&str> = d
        .findings
        .iter()
        .filter(|f| f.code == FindingCode::PROXY_IN_PATH)
        .map(|f| f.remediation.as_str())
        .collect();
    assert_eq!(fixes.len(), names.len(), "{:?}", codes(&d));
    assert!(fixes.iter().all(|f| *f == fixes[0]), "{fixes:?}");
    for wanted in names.iter().chain(&["169.254.169.254"]) {
        assert!(fixes[0].contains(wanted), "{wanted} missing: {}", fixes[0]);
    }
}

/// A private first hop that no NAT gateway owns is named by its network interface when the
/// hop's interface was read (an appliance at 10.0.3.10 on instance i-0fw): the finding's
/// title, detail and fix say which; unread, the hop stays an address.
#[test]
fn a_private_first_hop_no_nat_gateway_owns_is_named_by_its_network_interface() {
    let (mut r, e) = healthy();
    r.measured
        .set(vec![trace("52.218.1.1", Some(2), &[Some("10.0.3.10")])]);
    let mut cp = vpc_with_nat(&[], vec![]);
    if let Some(table) = cp.route_table.as_mut() {
        table.routes.retain(|r| r.destination_prefix_list.is_none());
    }
    cp.reads.push(ok_read("ec2:DescribeNatGateways"));
    cp.nat_gateways = vec![nat_gateway()];
    r.control_plane = Some(cp.clone());
    // Not read: the address only.
    let unnamed = diagnose(&r, &e);
    let f = path_finding(&unnamed);
    assert!(!f.title.contains("network interface"), "{}", f.title);
    // Read: named.
    cp.reads.push(ok_read("ec2:DescribeNetworkInterfaces"));
    cp.network_interfaces = vec![NetworkInterfaceFacts {
        id: "eni-0fw".into(),
        interface_type: Some("interface".into()),
        description: Some("inspection appliance".into()),
        instance_id: Some("i-0fw".into()),
        subnet_id: Some("subnet-0fw".into()),
        private_ips: vec!["10.0.3.10".into()],
    }];
    r.control_plane = Some(cp);
    let d = diagnose(&r, &e);
    let f = path_finding(&d);
    assert_eq!(
        f.title,
        "traffic to s3:b passes 10.0.3.10 (hop 1, network interface eni-0fw of instance i-0fw) before the service: not the gateway endpoint"
    );
    assert!(
        f.detail.contains(
            "10.0.3.10 is network interface eni-0fw of instance i-0fw in subnet-0fw (\"inspection appliance\", type interface)."
        ),
        "{}",
        f.detail
    );
    assert!(
        f.remediation.starts_with(
            "The traffic to s3:b goes through network interface eni-0fw of instance i-0fw "
        ) && f.remediation.contains("--add-route-table-ids rtb-1"),
        "{}",
        f.remediation
    );
}

/// A slice's measurement for the tests below: one name's answer, good or not.
#[derive(Clone)]
struct SliceProbe {
    name: String,
    ok: bool,
}

impl Check for SliceProbe {
    const KIND: CheckKind = CheckKind::Tcp;
    fn id(&self) -> String {
        format!("slice-probe/{}", self.name)
    }
    fn subject(&self) -> String {
        self.name.clone()
    }
    fn status(&self) -> CheckStatus {
        if self.ok {
            CheckStatus::Ok
        } else {
            CheckStatus::Fail
        }
    }
    fn summary(&self) -> String {
        String::new()
    }
    fn duration_ms(&self) -> u64 {
        0
    }
    fn evidence(&self) -> Evidence {
        Evidence::Unfinished(UnfinishedCheck::default())
    }
}

/// A slice whose rules judge only its own measurements, one rule of each kind.
struct ProbeSlice;

impl SliceRules for ProbeSlice {
    fn host_rules(&self) -> &'static [HostRule] {
        &[|r, _, f| {
            if !r.measured.of::<SliceProbe>().is_empty() {
                let note = FindingCode::DNS_CUSTOM_RESOLVER;
                f.add(
                    note,
                    Severity::Note,
                    "host",
                    "probed".into(),
                    String::new(),
                    String::new(),
                    vec![],
                );
            }
        }]
    }
    fn name_rules(&self) -> &'static [NameRule] {
        &[|r, _, t, name, f| {
            let failed: Vec<&SliceProbe> = r
                .measured
                .of::<SliceProbe>()
                .iter()
                .filter(|p| p.name == name && !p.ok)
                .collect();
            if !failed.is_empty() {
                let code = FindingCode::TCP_TIMEOUT;
                f.add(
                    code,
                    Severity::Error,
                    &t.id,
                    name.into(),
                    String::new(),
                    String::new(),
                    ids(&failed),
                );
            }
        }]
    }
    fn target_rules(&self) -> &'static [TargetRule] {
        &[|_, _, t, f| {
            let code = FindingCode::ENDPOINT_ADDRESS_FAMILY;
            f.add(
                code,
                Severity::Warning,
                &t.id,
                "target".into(),
                String::new(),
                String::new(),
                vec![],
            );
        }]
    }
}

#[test]
fn a_slices_rules_run_after_diagnosis_own_and_judge_its_measurements() {
    let (mut r, exp) = healthy();
    r.measured.push(SliceProbe {
        name: NAME.into(),
        ok: false,
    });
    let codes = |d: &Diagnosis| -> Vec<(String, String)> {
        d.findings
            .iter()
            .map(|f| (f.code.to_string(), f.target.clone()))
            .collect()
    };

    // Without the slice registered, nothing judges its measurement.
    let without = super::diagnose(&r, &exp, &[]);
    assert_eq!(without.verdict.exit_code, 0, "{:?}", codes(&without));
    assert!(without.findings.is_empty(), "{:?}", codes(&without));

    let with = super::diagnose(&r, &exp, &[&ProbeSlice]);
    assert_eq!(with.verdict.exit_code, 1);
    let target = r.targets[0].id.clone();
    assert_eq!(
        codes(&with),
        vec![
            ("TCP_TIMEOUT".to_string(), target.clone()),
            ("ENDPOINT_ADDRESS_FAMILY".to_string(), target),
            ("DNS_CUSTOM_RESOLVER".to_string(), "host".to_string()),
        ]
    );
    let timeout = &with.findings[0];
    assert_eq!(
        timeout.title, NAME,
        "the name rule ran for the target's name"
    );
    assert_eq!(timeout.check_ids, vec![format!("slice-probe/{NAME}")]);

    // A good measurement: only the unconditional rules speak.
    r.measured = Default::default();
    r.measured.push(SliceProbe {
        name: NAME.into(),
        ok: true,
    });
    let good = super::diagnose(&r, &exp, &[&ProbeSlice]);
    assert_eq!(good.verdict.exit_code, 0, "{:?}", codes(&good));
    assert!(!codes(&good).iter().any(|(c, _)| c == "TCP_TIMEOUT"));
}

/// A silent name server before the one that answered: a warning the healthy verdict names,
/// unless the name never reaches resolv.conf (the hosts file answers it).
#[test]
fn a_silent_name_server_warns_only_where_the_applications_ask_dns() {
    let (mut r, e) = healthy();
    r.dns[0].silent_servers = vec!["10.0.0.9:53".into()];
    r.dns[0].libc_wait_secs = Some(5);
    let d = diagnose(&r, &e);
    assert!(codes(&d).contains(&"DNS_SERVER_SILENT"), "{:?}", codes(&d));
    let f = d
        .findings
        .iter()
        .find(|f| f.code == FindingCode::DNS_SERVER_SILENT)
        .unwrap();
    assert_eq!(f.severity, Severity::Warning);
    assert!(
        f.title.contains("waits 5 s before 10.0.0.2:53"),
        "{}",
        f.title
    );
    assert_eq!(d.verdict.exit_code, 0);
    assert_eq!(
        d.verdict.summary,
        "healthy: every probed path works; 1 warning: DNS_SERVER_SILENT (host)"
    );

    r.app_dns = vec![AppResolution {
        name: NAME.into(),
        service: Service::S3,
        nss_sources: vec!["files".into(), "dns".into()],
        nss_origin: "/etc/nsswitch.conf".into(),
        steps: vec![],
        answered_by: Some(AppSource::HostsFile),
        hosts_file: vec![],
        addresses: vec![],
        latency_ms: 0,
        resolved_as: None,
    }];
    let d = diagnose(&r, &e);
    assert!(!codes(&d).contains(&"DNS_SERVER_SILENT"), "{:?}", codes(&d));
}

/// The older checks' slices, each once: the stages' steps must run every rule of theirs.
const OLDER_CHECKS: &[&dyn SliceRules] = &[
    &crate::reading::imds::ImdsSlice,
    &crate::reading::region::RegionSlice,
    &crate::reading::dns::DnsSlice,
    &crate::reading::tcp::TcpSlice,
    &crate::reading::proxy::ProxySlice,
    &crate::reading::identity::CredentialsSlice,
    &crate::reading::calls::CallsSlice,
    &crate::reading::control_plane::ControlPlaneSlice,
    &crate::reading::reachability::ReachabilitySlice,
];

/// How many rules of a stage the slices have, and how many the stage's steps run of theirs.
fn stage_counts<R>(steps: &[Step<R>], of: fn(&dyn SliceRules) -> &'static [R]) -> (usize, usize) {
    let listed: usize = OLDER_CHECKS.iter().map(|s| of(*s).len()).sum();
    let run: usize = steps
        .iter()
        .filter(|s| matches!(s, Step::Check(_)))
        .map(|s| s.rules(of).len())
        .sum();
    (listed, run)
}

/// A slice with rules of a stage is among that stage's steps, once: a rule added to a slice
/// runs without a line in diagnose, and none runs twice.
#[test]
fn every_older_checks_rules_run_once_in_their_stage() {
    let host = stage_counts(HOST_STEPS, |s| s.host_rules());
    let name = stage_counts(NAME_STEPS, |s| s.name_rules());
    let target = stage_counts(TARGET_STEPS, |s| s.target_rules());
    assert_eq!(host.0, host.1, "host rules: slices' vs run");
    assert_eq!(name.0, name.1, "name rules: slices' vs run");
    assert_eq!(target.0, target.1, "target rules: slices' vs run");
    // Every slice of an older check has rules of its own, or it would not be listed.
    for slice in OLDER_CHECKS {
        let rules =
            slice.host_rules().len() + slice.name_rules().len() + slice.target_rules().len();
        assert!(rules > 0);
    }
    // The counts compare something: 8 host, 5 name and 1 target rules are the checks' own.
    assert_eq!((host.0, name.0, target.0), (8, 5, 1));
}
