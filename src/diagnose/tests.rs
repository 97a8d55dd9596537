use super::*;
use crate::proxy_rules::ProxyEnv;

const NAME: &str = "s3.eu-west-1.amazonaws.com";

fn lookup(
    resolver: ResolverKind,
    rt: &str,
    outcome: DnsOutcome,
    ips: &[(&str, AddressClass)],
) -> DnsLookup {
    DnsLookup {
        name: NAME.into(),
        service: Service::S3,
        record_type: rt.into(),
        resolver,
        server: Some("10.0.0.2:53".into()),
        outcome,
        addresses: ips
            .iter()
            .map(|(ip, class)| ClassifiedAddress {
                ip: ip.to_string(),
                class: *class,
                prefix: None,
                prefix_region: None,
            })
            .collect(),
        error: None,
        latency_ms: 1,
    }
}

fn tcp(address: &str, outcome: TcpOutcome) -> TcpAttempt {
    TcpAttempt {
        name: NAME.into(),
        service: Service::S3,
        address: address.into(),
        port: 443,
        address_class: AddressClass::ServiceRegion,
        origin: AddressOrigin::Application,
        local_address: None,
        outcome,
        error: None,
        connect_ms: 1,
    }
}

/// A healthy instance in eu-west-1 probing one bucket through the regional name only.
fn healthy() -> (ProbeResults, Expectations) {
    let in_range = [("52.218.1.1", AddressClass::ServiceRegion)];
    let results = ProbeResults {
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
        canary: Some(CanaryResult {
            target: "checkip.amazonaws.com:443".into(),
            addresses: vec![],
            outcome: CanaryOutcome::Unreachable,
            error: None,
            connect_ms: 1,
            connect_timeout_ms: Some(200),
        }),
        proxy_env: Some(crate::checks::proxy::analyze(&ProxyEnv::default(), &[])),
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
                r.canary.as_mut().unwrap().outcome = CanaryOutcome::Reachable;
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
                r.nacl.push(narrow_ephemeral_sweep());
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
                r.proxy_env = Some(crate::checks::proxy::analyze(&e.proxy_env, &[imds]));
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
    r.nacl.push(narrow_ephemeral_sweep());
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
