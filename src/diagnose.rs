//! Results → findings, path verdicts and root causes. No I/O: a pure function with
//! table-driven tests.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::catalogue::{FindingCode, checklist_rank};
use crate::checks::region::RegionCheck;
use crate::checks::{Check, tls as tls_check};
use crate::cli::{ExpectPath, FailOn};
use crate::config::Config;
use crate::proxy_rules::{self, HttpClientKind};
use crate::report::*;
use crate::results::{ProbeResults, TargetSpec};

pub struct Expectations {
    pub expect_path: ExpectPath,
    pub expect_issuers: Vec<String>,
    pub fail_on: FailOn,
    pub proxy_env: proxy_rules::ProxyEnv,
}

impl Expectations {
    pub fn from_config(cfg: &Config) -> Self {
        Expectations {
            expect_path: cfg.expect_path,
            expect_issuers: cfg.expect_issuers.clone(),
            fail_on: cfg.fail_on,
            proxy_env: cfg.env.proxy.clone(),
        }
    }
}

pub struct Diagnosis {
    pub findings: Vec<Finding>,
    pub targets: Vec<TargetReport>,
    pub verdict: Verdict,
}

struct Findings(Vec<Finding>);

impl Findings {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        code: FindingCode,
        severity: Severity,
        target: &str,
        title: String,
        detail: String,
        remediation: String,
        check_ids: Vec<String>,
    ) {
        // One finding per code and target: the detail of the first one names every address.
        if self.0.iter().any(|f| f.code == code && f.target == target) {
            return;
        }
        self.0.push(Finding {
            code,
            severity,
            target: target.to_string(),
            title,
            detail,
            remediation,
            checklist_item: code.checklist_item().to_string(),
            check_ids,
        });
    }
}

pub fn diagnose(r: &ProbeResults, exp: &Expectations) -> Diagnosis {
    let mut f = Findings(Vec::new());
    let region_check = RegionCheck {
        facts: r.region.clone(),
    };

    // Instance metadata.
    if let Some(imds) = &r.imds
        && !imds.reachable
    {
        let no_region = r.region.effective.is_none();
        f.add(
            FindingCode::IMDS_UNAVAILABLE,
            if no_region { Severity::Error } else { Severity::Warning },
            "host",
            format!("instance metadata (IMDSv2) unavailable at {}", imds.endpoint),
            format!(
                "{}. {}",
                imds.error.as_deref().unwrap_or("no answer"),
                if no_region {
                    "No region is configured either, so no service name could be probed."
                } else {
                    "The probe ran with the configured region; instance facts (VPC, subnet, security groups, account) are missing, and SDKs relying on the instance role will find no credentials."
                }
            ),
            format!(
                "{} If this is not an EC2 instance, pass --region.",
                FindingCode::IMDS_UNAVAILABLE.general_fix()
            ),
            vec!["imds".into()],
        );
    }

    // Region.
    for (source, region) in region_check.mismatches() {
        let instance_region = r.region.instance.clone().unwrap_or_default();
        f.add(
            FindingCode::REGION_MISMATCH_SDK,
            Severity::Error,
            "host",
            format!("{source} says {region}, but the instance is in {instance_region}"),
            format!(
                "Calls would go to the {region} endpoints; the gateway endpoint of this VPC only serves {instance_region}."
            ),
            if source == "--region" {
                format!("Probe the instance's region (--region {instance_region}) unless you mean to test cross-region access.")
            } else {
                format!("export AWS_REGION={instance_region} (or set region = {instance_region} in the profile)")
            },
            vec!["region".into()],
        );
    }
    if region_check.global_endpoint() && r.targets.iter().any(|t| t.service == Service::S3) {
        let host = r.region.s3_endpoint_host.clone().unwrap_or_default();
        f.add(
            FindingCode::S3_GLOBAL_ENDPOINT,
            Severity::Error,
            "host",
            format!("S3 calls would use the global endpoint {host}"),
            format!(
                "{host} is served from us-east-1; the instance is in {}.",
                r.region.instance.as_deref().unwrap_or("another region")
            ),
            FindingCode::S3_GLOBAL_ENDPOINT.general_fix().into(),
            vec!["region".into()],
        );
    }

    // Host resolver vs the VPC resolver.
    let vpc_resolvers = vpc_resolver_ips(r);
    let custom: Vec<String> = r
        .system_resolvers
        .iter()
        .map(|s| s.ip())
        .filter(|ip| !ip.is_loopback() && !vpc_resolvers.contains(ip))
        .map(|ip| ip.to_string())
        .collect();
    if !custom.is_empty() && custom.len() == r.system_resolvers.len() {
        f.add(
            FindingCode::DNS_CUSTOM_RESOLVER,
            Severity::Note,
            "host",
            format!(
                "the host resolves through {}, not the VPC resolver",
                custom.join(", ")
            ),
            format!(
                "resolv.conf lists {}; the Amazon-provided resolver is {}.",
                custom.join(", "),
                vpc_resolvers
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
            FindingCode::DNS_CUSTOM_RESOLVER.general_fix().into(),
            vec![],
        );
    }

    // Proxy variables that contradict each other.
    if let Some(env) = &r.proxy_env {
        for (upper, lower) in &env.conflicts {
            f.add(
                FindingCode::PROXY_ENV_CONFLICT,
                Severity::Warning,
                "host",
                format!("{upper} and {lower} are set to different values"),
                "curl reads the lower-case variable first, botocore lets lower case win, and other tools differ; the same host then takes different paths depending on the client.".into(),
                format!("Set {upper} and {lower} to the same value, or unset one of them."),
                vec!["proxy/env".into()],
            );
        }
        let imds_proxied: Vec<&proxy_rules::ProxyDecision> = env
            .decisions
            .iter()
            .filter(|d| d.url.contains(crate::checks::proxy::IMDS_TOKEN_PATH) && d.proxy.is_some())
            .collect();
        if !imds_proxied.is_empty() {
            let clients: Vec<&str> = imds_proxied.iter().map(|d| d.client.label()).collect();
            let sdk_proxied = imds_proxied
                .iter()
                .any(|d| d.client == HttpClientKind::AwsSdkRust);
            let imds_failed = r.imds.as_ref().is_some_and(|i| !i.reachable);
            f.add(
                FindingCode::IMDS_VIA_PROXY,
                if sdk_proxied && imds_failed {
                    Severity::Error
                } else {
                    Severity::Warning
                },
                "host",
                format!(
                    "instance metadata requests would go through the proxy for {}",
                    clients.join(", ")
                ),
                imds_proxied
                    .iter()
                    .map(|d| d.explanation.clone())
                    .collect::<Vec<_>>()
                    .join(" "),
                no_proxy_fix(r, exp),
                vec!["proxy/env".into()],
            );
        }
    }

    credential_findings(r, &mut f);
    if let Some(cp) = &r.control_plane {
        let denied = cp.denied_actions();
        if !denied.is_empty() {
            f.add(
                FindingCode::CONTROL_PLANE_DENIED,
                Severity::Note,
                "host",
                format!("the role may not read the VPC configuration ({})", denied.join(", ")),
                "The checks that need these reads are skipped; the path verdict rests on data-plane evidence.".into(),
                format!("To get confirmed verdicts, allow the role: {}", denied.join(", ")),
                vec!["ec2".into()],
            );
        }
    }

    // Per target.
    let canary = r.canary.as_ref().map(|c| c.outcome);
    let mut targets = Vec::new();
    for t in &r.targets {
        diagnose_target(r, exp, t, &mut f);
        targets.push(TargetReport {
            id: t.id.clone(),
            service: t.service,
            name: t.name.clone(),
            endpoint_names: t.endpoint_names.clone(),
            endpoint_override: t.endpoint_override.clone(),
            names: endpoint_names(r, t),
            path: path_verdict(r, exp, t, canary),
        });
    }

    // Path expectations.
    for t in &targets {
        let wrong = match exp.expect_path {
            ExpectPath::Any => false,
            ExpectPath::Gateway => matches!(
                t.path.kind,
                PathKind::InterfaceEndpoint | PathKind::Proxy | PathKind::Internet
            ),
            ExpectPath::Interface => matches!(
                t.path.kind,
                PathKind::GatewayEndpoint | PathKind::Proxy | PathKind::Internet
            ),
        };
        if wrong {
            let expected = match exp.expect_path {
                ExpectPath::Gateway => "the gateway endpoint",
                _ => "an interface endpoint",
            };
            f.add(
                FindingCode::PATH_NOT_GATEWAY_ENDPOINT,
                Severity::Error,
                &t.id,
                format!(
                    "traffic to {} goes through {}, not {expected}",
                    t.id,
                    describe_kind(t.path.kind)
                ),
                t.path.evidence.join("; "),
                FindingCode::PATH_NOT_GATEWAY_ENDPOINT.general_fix().into(),
                vec![],
            );
        }
    }

    let mut findings = f.0;
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(checklist_rank(&a.checklist_item).cmp(&checklist_rank(&b.checklist_item)))
            .then(a.target.cmp(&b.target))
    });
    let verdict = verdict(&findings, exp.fail_on, r.deadline_hit);
    Diagnosis {
        findings,
        targets,
        verdict,
    }
}

fn describe_kind(kind: PathKind) -> &'static str {
    match kind {
        PathKind::GatewayEndpoint => "the gateway endpoint",
        PathKind::InterfaceEndpoint => "an interface endpoint",
        PathKind::Proxy => "a proxy",
        PathKind::Internet => "the internet (NAT or internet gateway)",
        PathKind::Unknown => "an unknown path",
    }
}

/// The Amazon-provided resolver addresses: --vpc-resolver, 169.254.169.253, and VPC base + 2.
fn vpc_resolver_ips(r: &ProbeResults) -> BTreeSet<IpAddr> {
    let mut ips: BTreeSet<IpAddr> = BTreeSet::new();
    ips.insert(IpAddr::from([169, 254, 169, 253]));
    if let Some(v) = r.vpc_resolver {
        ips.insert(v.ip());
    }
    if let Some(i) = &r.instance {
        for cidr in &i.vpc_cidrs {
            if let Ok(ipnet::IpNet::V4(net)) = cidr.parse::<ipnet::IpNet>() {
                let base = u32::from(net.network());
                ips.insert(IpAddr::from(std::net::Ipv4Addr::from(base.wrapping_add(2))));
            }
        }
    }
    ips
}

fn ids<T: Check>(items: &[&T]) -> Vec<String> {
    items.iter().map(|i| i.id()).collect()
}

fn diagnose_target(r: &ProbeResults, exp: &Expectations, t: &TargetSpec, f: &mut Findings) {
    let expect_gateway = exp.expect_path == ExpectPath::Gateway;
    for name in &t.endpoint_names {
        let system: Vec<&DnsLookup> = r
            .dns
            .iter()
            .filter(|d| &d.name == name && d.resolver == ResolverKind::System)
            .collect();
        let vpc: Vec<&DnsLookup> = r
            .dns
            .iter()
            .filter(|d| &d.name == name && d.resolver == ResolverKind::Vpc)
            .collect();
        let a = system.iter().find(|d| d.record_type == "A");
        let aaaa = system.iter().find(|d| d.record_type == "AAAA");
        let resolved_any = system.iter().any(|d| d.outcome == DnsOutcome::Answered);
        let app = r.app_dns.iter().find(|d| &d.name == name);
        let app_answered = app.is_some_and(|d| d.answered_by.is_some());

        // Resolution.
        if let Some(app) = app.filter(|d| d.answered_by.is_none() && resolved_any) {
            f.add(
                FindingCode::DNS_RESOLUTION_FAILED,
                Severity::Error,
                &t.id,
                format!("{name} does not resolve for the applications"),
                format!(
                    "The DNS servers answer, but the applications' resolution (hosts: {} from {}) finds no address: {}.",
                    app.nss_sources.join(" "),
                    app.nss_origin,
                    app.steps.join("; ")
                ),
                "Fix the hosts line of nsswitch.conf (or the local resolver it names) so the name reaches DNS.".into(),
                vec![app.id()],
            );
        }
        if !resolved_any && !system.is_empty() && !app_answered {
            let failure = a.or(aaaa).copied();
            let how = failure
                .map(|d| match d.outcome {
                    DnsOutcome::NoData => "no A or AAAA record".to_string(),
                    DnsOutcome::NxDomain => {
                        "NXDOMAIN (the name does not exist for this resolver)".into()
                    }
                    DnsOutcome::Timeout => format!(
                        "no answer from {} within the timeout",
                        d.server.as_deref().unwrap_or("the resolver")
                    ),
                    _ => d
                        .error
                        .clone()
                        .unwrap_or_else(|| format!("{:?}", d.outcome)),
                })
                .unwrap_or_default();
            f.add(
                FindingCode::DNS_RESOLUTION_FAILED,
                Severity::Error,
                &t.id,
                format!("{name} does not resolve"),
                format!("The host's resolver answered {how}."),
                FindingCode::DNS_RESOLUTION_FAILED.general_fix().into(),
                ids(&system),
            );
        }
        // What the applications connect to, when known; else the host's DNS servers' answers.
        let answered: Vec<&ClassifiedAddress> = match app.filter(|d| d.answered_by.is_some()) {
            Some(app) => app.addresses.iter().collect(),
            None => system.iter().flat_map(|d| d.addresses.iter()).collect(),
        };
        let private: Vec<&str> = answered
            .iter()
            .filter(|a| a.class == AddressClass::Private)
            .map(|a| a.ip.as_str())
            .collect();
        if !private.is_empty() {
            f.add(
                FindingCode::DNS_INTERFACE_ENDPOINT,
                if expect_gateway { Severity::Error } else { Severity::Note },
                &t.id,
                format!("{name} resolves to private addresses ({})", private.join(", ")),
                "Private answers for an AWS service name come from an interface endpoint's private DNS (or a private hosted zone); the SDK then connects to that interface endpoint, not through the gateway endpoint.".into(),
                FindingCode::DNS_INTERFACE_ENDPOINT.general_fix().into(),
                ids(&system),
            );
        }
        let outside: Vec<String> = answered
            .iter()
            .filter(|a| {
                matches!(
                    a.class,
                    AddressClass::Outside | AddressClass::ServiceOtherRegion
                )
            })
            .map(|a| match (&a.class, &a.prefix_region) {
                (AddressClass::ServiceOtherRegion, Some(reg)) => format!("{} ({reg})", a.ip),
                _ => a.ip.clone(),
            })
            .collect();
        if !outside.is_empty() {
            f.add(
                FindingCode::DNS_OUTSIDE_SERVICE_RANGE,
                Severity::Error,
                &t.id,
                format!("{name} resolves outside the {} ranges of {}", t.service.ranges_name(), r.region.effective.as_deref().unwrap_or("the region")),
                format!(
                    "Answers {} are not in the published {} prefixes of {}, so the gateway endpoint's prefix-list route does not cover them.",
                    outside.join(", "),
                    t.service.ranges_name(),
                    r.region.effective.as_deref().unwrap_or("the region"),
                ),
                FindingCode::DNS_OUTSIDE_SERVICE_RANGE.general_fix().into(),
                ids(&system),
            );
        }
        // The host's resolver vs the VPC's, compared by kind of answer (S3 rotates addresses).
        if let (Some(sys_a), Some(vpc_a)) = (a, vpc.iter().find(|d| d.record_type == "A")) {
            let kind = |d: &DnsLookup| -> Option<String> {
                match d.outcome {
                    // A resolver that does not answer says nothing about its answers.
                    DnsOutcome::Timeout | DnsOutcome::Error => None,
                    DnsOutcome::Answered => {
                        let classes: BTreeSet<String> = d
                            .addresses
                            .iter()
                            .map(|a| format!("{:?}", a.class))
                            .collect();
                        Some(classes.into_iter().collect::<Vec<_>>().join("+"))
                    }
                    other => Some(format!("{other:?}")),
                }
            };
            if let (Some(ks), Some(kv)) = (kind(sys_a), kind(vpc_a))
                && ks != kv
            {
                f.add(
                    FindingCode::DNS_RESOLVERS_DISAGREE,
                    Severity::Warning,
                    &t.id,
                    format!("the host's resolver and the VPC resolver answer {name} differently"),
                    format!("{} / {}", sys_a.summary(), vpc_a.summary()),
                    FindingCode::DNS_RESOLVERS_DISAGREE.general_fix().into(),
                    vec![sys_a.id(), vpc_a.id()],
                );
            }
        }

        // TCP: only the addresses the applications use decide; the VPC resolver's extra
        // answers are evidence for the hosts-file finding.
        let all_attempts: Vec<&TcpAttempt> = r.tcp.iter().filter(|a| &a.name == name).collect();
        match app.and_then(|d| d.answered_by.map(|s| (d, s))) {
            Some((app, AppSource::HostsFile)) => {
                hosts_file_finding(r, t, name, app, &all_attempts, f)
            }
            Some((app, AppSource::Dns | AppSource::Resolved)) => {
                stale_answer_finding(t, name, app, &all_attempts, f)
            }
            _ => {}
        }
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
            let severity = if connected {
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
                    if connected {
                        "Other addresses of the name connect, so this is partial."
                    } else {
                        "No address of the name connects."
                    },
                    crate::checks::tcp::suspects(outcome)
                ),
                tcp_remediation(outcome, r, t.service),
                ids(&these),
            );
        }

        // TLS.
        let vpc_only: BTreeSet<&str> = all_attempts
            .iter()
            .filter(|a| a.origin == AddressOrigin::VpcResolver)
            .map(|a| a.address.as_str())
            .collect();
        let handshakes: Vec<&TlsHandshake> = r
            .tls
            .iter()
            .filter(|h| &h.name == name && !vpc_only.contains(h.address.as_str()))
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

        // Proxy.
        proxy_findings(r, exp, t, name, f);
    }

    call_findings(r, t, f);
    control_plane_findings(r, t, f);
    reachability_findings(r, t, f);

    // Network ACL ephemeral ports (one sweep per service).
    for sweep in r
        .nacl
        .iter()
        .filter(|s| s.service == t.service && !s.failing.is_empty())
    {
        let failing = sweep
            .failing
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let kernel = sweep
            .kernel_ephemeral
            .map(|k| format!("The kernel picks source ports from {k}, "))
            .unwrap_or_default();
        let hits = sweep.hits_kernel_range();
        f.add(
            FindingCode::NACL_EPHEMERAL_BLOCKED,
            if hits { Severity::Error } else { Severity::Warning },
            &t.id,
            format!("return traffic to source ports {failing} is dropped"),
            format!(
                "Connections to {}:443 from source ports {failing} time out while other ranges connect. {kernel}{}",
                sweep.address,
                if hits { "so ordinary connections fail." } else { "so ordinary connections still work." }
            ),
            format!(
                "In the network ACL of {}, allow inbound TCP 1024-65535 from the {} prefix list CIDRs (aws ec2 create-network-acl-entry --ingress --protocol tcp --port-range From=1024,To=65535 ...).",
                r.instance.as_ref().and_then(|i| i.subnet_id.as_deref()).unwrap_or("the subnet"),
                t.service.ranges_name()
            ),
            vec![sweep.id()],
        );
    }
}

/// The one NO_PROXY value every proxy finding recommends: it makes all three clients
/// bypass the proxy for every target's names, botocore's endpoints and IMDS at once.
fn no_proxy_fix(r: &ProbeResults, exp: &Expectations) -> String {
    let imds = r.proxy_env.as_ref().and_then(|env| {
        env.decisions
            .iter()
            .find(|d| d.url.contains(crate::checks::proxy::IMDS_TOKEN_PATH))
            .and_then(|d| url::Url::parse(&d.url).ok())
            .and_then(|u| u.host_str().map(str::to_string))
    });
    let imds = imds.unwrap_or_else(|| "169.254.169.254".into());
    let hosts: Vec<&str> = r
        .targets
        .iter()
        .flat_map(|t| t.endpoint_names.iter().map(String::as_str))
        .chain(std::iter::once(imds.as_str()))
        .collect();
    format!(
        "export NO_PROXY={} (and no_proxy the same)",
        proxy_rules::recommended_no_proxy(&exp.proxy_env, &hosts)
    )
}

/// The clients whose decision for `url` sends it to this proxy host and port.
fn clients_using(
    env: &ProxyEnvEvidence,
    url: &str,
    proxy: &proxy_rules::ProxyChoice,
) -> Vec<&'static str> {
    HttpClientKind::ALL
        .into_iter()
        .filter(|c| {
            crate::checks::proxy::decision_for(env, *c, url)
                .and_then(|d| d.proxy.as_ref())
                .is_some_and(|p| p.host == proxy.host && p.port == proxy.port)
        })
        .map(HttpClientKind::label)
        .collect()
}

fn proxy_findings(
    r: &ProbeResults,
    exp: &Expectations,
    t: &TargetSpec,
    name: &str,
    f: &mut Findings,
) {
    let Some(env) = &r.proxy_env else { return };
    let url = format!("https://{name}/");
    let sdk = crate::checks::proxy::decision_for(env, HttpClientKind::AwsSdkRust, &url);
    let resolved: Vec<IpAddr> = r
        .dns
        .iter()
        .filter(|d| d.name == name)
        .flat_map(|d| d.addresses.iter().filter_map(|a| a.ip.parse().ok()))
        .collect();
    let fix = no_proxy_fix(r, exp);
    // A value some client cannot use at all (SOCKS for the SDK and botocore, `HTTP://` or
    // `ftp://` for botocore, a blank): one finding per value, naming every client it breaks.
    let failing: Vec<&proxy_rules::ProxyDecision> = HttpClientKind::ALL
        .into_iter()
        .filter_map(|c| crate::checks::proxy::decision_for(env, c, &url))
        .filter(|d| d.fails)
        .collect();
    if let Some(first) = failing.first().and_then(|d| d.proxy.as_ref()) {
        let clients: Vec<&str> = failing.iter().map(|d| d.client.label()).collect();
        f.add(
            FindingCode::PROXY_UNUSABLE,
            if failing.iter().any(|d| d.client == HttpClientKind::AwsSdkRust) {
                Severity::Error
            } else {
                Severity::Warning
            },
            &t.id,
            format!(
                "{}='{}' breaks {} for {name}",
                first.variable,
                first.url_redacted,
                clients.join(", ")
            ),
            failing
                .iter()
                .map(|d| d.explanation.clone())
                .collect::<Vec<_>>()
                .join(" "),
            format!(
                "Write the proxy as http://HOST:PORT (lower-case scheme, no blanks) in every proxy variable, or bypass it: {fix}"
            ),
            vec!["proxy/env".into()],
        );
    }
    if let Some(d) = sdk
        && let Some(p) = &d.proxy
    {
        f.add(
            FindingCode::PROXY_IN_PATH,
            if exp.expect_path == ExpectPath::Any {
                Severity::Note
            } else {
                Severity::Error
            },
            &t.id,
            format!("the SDK sends {name} through the proxy {}", p.url_redacted),
            d.explanation.clone(),
            fix.clone(),
            vec!["proxy/env".into()],
        );
        // A proxy that was not tried (SOCKS) is neither reachable nor unreachable.
        for probe in r
            .proxy_probes
            .iter()
            .filter(|p| p.name == name && crate::checks::proxy::is_probed(&p.proxy))
        {
            let clients = clients_using(env, &url, &probe.proxy).join(", ");
            let (code, title) = match probe.outcome {
                ProxyOutcome::Tunnelled => continue,
                ProxyOutcome::Refused => (
                    FindingCode::PROXY_REFUSED_CONNECT,
                    format!(
                        "the proxy {} refuses CONNECT to {name} (used by {clients})",
                        probe.proxy.url_redacted
                    ),
                ),
                ProxyOutcome::Unreachable | ProxyOutcome::Timeout | ProxyOutcome::Error => (
                    FindingCode::PROXY_UNREACHABLE,
                    format!(
                        "the proxy {} cannot be reached, which breaks {clients} for {name}",
                        probe.proxy.url_redacted
                    ),
                ),
            };
            f.add(
                code,
                Severity::Error,
                &t.id,
                title,
                probe.summary(),
                if probe
                    .status_line
                    .as_deref()
                    .is_some_and(|l| l.contains(" 407"))
                {
                    format!(
                        "The proxy wants credentials: put them in the proxy URL ({}=http://USER:PASSWORD@{}:{}), or bypass it: {fix}",
                        probe.proxy.variable, probe.proxy.host, probe.proxy.port
                    )
                } else {
                    format!("{} Or: {fix}", code.general_fix())
                },
                vec![probe.id()],
            );
        }
    }
    if let Ok(parsed) = url::Url::parse(&url) {
        let ineffective = proxy_rules::ineffective_entries(&exp.proxy_env, &parsed, &resolved);
        if let Some(first) = ineffective.first() {
            let sdk_hit = ineffective
                .iter()
                .any(|e| e.clients.contains(&HttpClientKind::AwsSdkRust));
            f.add(
                FindingCode::NO_PROXY_INEFFECTIVE,
                if sdk_hit {
                    Severity::Error
                } else {
                    Severity::Warning
                },
                &t.id,
                format!(
                    "{}='{}' does not bypass the proxy for {name}",
                    first.variable, first.entry
                ),
                ineffective
                    .iter()
                    .map(|e| {
                        format!(
                            "'{}' ({}): {}",
                            e.entry,
                            e.clients
                                .iter()
                                .map(|c| c.label())
                                .collect::<Vec<_>>()
                                .join(", "),
                            e.reason
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
                fix,
                vec!["proxy/env".into()],
            );
        }
    }
}

fn endpoint_names(r: &ProbeResults, t: &TargetSpec) -> Vec<EndpointName> {
    t.endpoint_names
        .iter()
        .map(|name| {
            let addresses = r
                .app_dns
                .iter()
                .filter(|d| &d.name == name)
                .flat_map(|d| {
                    let source = match (d.answered_by, d.hosts_file.first()) {
                        (_, Some(h)) => format!("{} line {}", h.path, h.line),
                        (Some(s), None) => s.as_str().to_string(),
                        (None, None) => String::new(),
                    };
                    d.addresses
                        .iter()
                        .map(move |a| format!("{} ({source})", a.ip))
                })
                .collect();
            EndpointName {
                name: name.clone(),
                settings: t.name_settings.get(name).cloned().unwrap_or_default(),
                addresses,
            }
        })
        .collect()
}

/// A name the hosts file pins: an error when the pinned address fails or is not the service's.
fn hosts_file_finding(
    r: &ProbeResults,
    t: &TargetSpec,
    name: &str,
    app: &AppResolution,
    attempts: &[&TcpAttempt],
    f: &mut Findings,
) {
    let Some(entry) = app.hosts_file.first() else {
        return;
    };
    let pinned: Vec<&str> = app.addresses.iter().map(|a| a.ip.as_str()).collect();
    let of_origin = |origin: AddressOrigin| -> Vec<&&TcpAttempt> {
        attempts.iter().filter(|a| a.origin == origin).collect()
    };
    let describe = |list: &[&&TcpAttempt]| -> String {
        list.iter()
            .map(|a| {
                let how = match a.outcome {
                    TcpOutcome::Connected => "connects".to_string(),
                    TcpOutcome::Timeout => "times out".to_string(),
                    TcpOutcome::Refused => "is refused".to_string(),
                    TcpOutcome::Unreachable => "is unreachable".to_string(),
                    TcpOutcome::Error => "fails".to_string(),
                };
                format!("{} {how}", a.address)
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let app_attempts = of_origin(AddressOrigin::Application);
    let vpc_attempts = of_origin(AddressOrigin::VpcResolver);
    let app_fails = app_attempts
        .iter()
        .any(|a| a.outcome != TcpOutcome::Connected);
    let tls_fails = r.tls.iter().any(|h| {
        h.name == name
            && pinned.contains(&h.address.as_str())
            && !matches!(h.outcome, TlsOutcome::Verified | TlsOutcome::NotAttempted)
    });
    let not_service = app
        .addresses
        .iter()
        .any(|a| a.class != AddressClass::ServiceRegion);
    let broken = app_fails || tls_fails || not_service;
    let mut detail = format!(
        "The applications resolve names through nsswitch (hosts: {}), so they take {} from {} line {} (`{}`) and never ask DNS.",
        app.nss_sources.join(" "),
        pinned.join(", "),
        entry.path,
        entry.line,
        entry.text
    );
    if !app_attempts.is_empty() {
        detail.push_str(&format!(" TCP 443: {}.", describe(&app_attempts)));
    }
    if tls_fails {
        detail.push_str(" The TLS handshake with the pinned address fails.");
    }
    if !vpc_attempts.is_empty() {
        detail.push_str(&format!(
            " The VPC resolver's answer: {}.",
            describe(&vpc_attempts)
        ));
    }
    f.add(
        FindingCode::HOSTS_FILE_OVERRIDE,
        if broken {
            Severity::Error
        } else {
            Severity::Warning
        },
        &t.id,
        format!(
            "{name} is pinned to {} in {} line {}",
            pinned.join(", "),
            entry.path,
            entry.line
        ),
        detail,
        format!(
            "Delete line {} of {} (`{}`) so {name} resolves through DNS (the VPC resolver); AWS moves service addresses, so a pinned one goes stale.",
            entry.line, entry.path, entry.text
        ),
        vec![app.id()],
    );
}

/// The applications' resolver (a local cache, a corporate server) answers addresses that do not
/// connect while the VPC resolver's do: the answer, not the network, is what is broken.
fn stale_answer_finding(
    t: &TargetSpec,
    name: &str,
    app: &AppResolution,
    attempts: &[&TcpAttempt],
    f: &mut Findings,
) {
    let of = |origin: AddressOrigin| -> Vec<&&TcpAttempt> {
        attempts.iter().filter(|a| a.origin == origin).collect()
    };
    let app_attempts = of(AddressOrigin::Application);
    let vpc_ok: Vec<&str> = of(AddressOrigin::VpcResolver)
        .iter()
        .filter(|a| a.outcome == TcpOutcome::Connected)
        .map(|a| a.address.as_str())
        .collect();
    let app_dead = !app_attempts.is_empty()
        && app_attempts
            .iter()
            .all(|a| a.outcome != TcpOutcome::Connected);
    if !app_dead || vpc_ok.is_empty() {
        return;
    }
    let source = match app.answered_by {
        Some(AppSource::Resolved) => "systemd-resolved (nsswitch `resolve`)".to_string(),
        _ => "the resolv.conf name servers".to_string(),
    };
    let dead: Vec<&str> = app_attempts.iter().map(|a| a.address.as_str()).collect();
    f.add(
        FindingCode::DNS_RESOLVERS_DISAGREE,
        Severity::Error,
        &t.id,
        format!(
            "the applications resolve {name} to {} which does not connect; the VPC resolver's answer does",
            dead.join(", ")
        ),
        format!(
            "The applications resolve through {source} (hosts: {}) and get {}; TCP 443 to it fails. The VPC resolver answers {}, which connects: the applications' resolver holds a stale or rewritten answer.",
            app.nss_sources.join(" "),
            dead.join(", "),
            vpc_ok.join(", ")
        ),
        "Flush the local resolver's cache (resolvectl flush-caches, or restart the caching resolver) and make it forward amazonaws.com to the VPC resolver (169.254.169.253) instead of answering from its own data.".into(),
        vec![app.id()],
    );
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

fn path_verdict(
    r: &ProbeResults,
    exp: &Expectations,
    t: &TargetSpec,
    canary: Option<CanaryOutcome>,
) -> PathVerdict {
    let mut evidence = Vec::new();
    let names = &t.endpoint_names;
    let for_names = |n: &String| names.contains(n);
    let proxied = r.proxy_env.as_ref().and_then(|env| {
        names.iter().find_map(|n| {
            crate::checks::proxy::decision_for(
                env,
                HttpClientKind::AwsSdkRust,
                &format!("https://{n}/"),
            )
            .and_then(|d| d.proxy.as_ref().map(|p| (n, p, d)))
        })
    });
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
    let verdict = |kind, confidence, reachable, evidence: Vec<String>, to_confirm: Option<&str>| {
        PathVerdict {
            kind,
            confidence,
            reachable,
            evidence,
            to_confirm: to_confirm.map(str::to_string),
        }
    };
    let confirm_hint = "let the instance role read the VPC configuration (ec2:DescribeRouteTables, ec2:DescribeVpcEndpoints) or test a bucket policy with aws:SourceVpce";

    if let Some((name, proxy, decision)) = proxied {
        evidence.push(format!(
            "the SDK sends {name} through {} ({})",
            proxy.url_redacted, decision.explanation
        ));
        let tunnelled = r
            .proxy_probes
            .iter()
            .any(|p| for_names(&p.name) && p.outcome == ProxyOutcome::Tunnelled);
        evidence.push(if tunnelled {
            "the proxy opened a CONNECT tunnel".into()
        } else {
            "the proxy did not open a tunnel".into()
        });
        return verdict(
            PathKind::Proxy,
            Confidence::Inferred,
            tunnelled,
            evidence,
            None,
        );
    }
    if let Some(ep) = &t.endpoint_override {
        evidence.push(format!("an endpoint override sends the SDK to {ep}"));
    }
    if classes.contains(&AddressClass::Private) {
        evidence.push(
            "the service name resolves to private addresses (interface endpoint private DNS)"
                .into(),
        );
        return verdict(
            PathKind::InterfaceEndpoint,
            Confidence::Inferred,
            reachable_direct,
            evidence,
            None,
        );
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
    // A Via header on an answer means something relayed it, whatever DNS said.
    let calls: Vec<&CallResult> = r.calls.iter().filter(|c| c.target == t.id).collect();
    if let Some(via) = calls.iter().find_map(|c| c.headers.get("via")) {
        evidence.push(format!("answers carry 'Via: {via}': a proxy relayed them"));
        return verdict(PathKind::Proxy, Confidence::Inferred, true, evidence, None);
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
    if let Some(v) = confirmed_by_route_table(r, t, &connected, &mut evidence) {
        return v;
    }
    let all_in_range =
        !classes.is_empty() && classes.iter().all(|c| *c == AddressClass::ServiceRegion);
    let peers: Vec<&str> = connected
        .iter()
        .map(|a| a.address.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if all_in_range && t.endpoint_override.is_none() {
        evidence.push(format!(
            "connected to {} inside the {} ranges of {}",
            peers.join(", "),
            t.service.ranges_name(),
            r.region.effective.as_deref().unwrap_or("the region")
        ));
        evidence.push("no proxy applies".into());
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

/// Codes that are consequences of another code for the same target.
fn explained_by(code: FindingCode) -> &'static [FindingCode] {
    use FindingCode::*;
    match code {
        TCP_TIMEOUT | TCP_REFUSED | TCP_UNREACHABLE => &[
            HOSTS_FILE_OVERRIDE,
            DNS_RESOLVERS_DISAGREE,
            // Calls to another region's endpoints cannot take this VPC's gateway endpoint.
            REGION_MISMATCH_SDK,
            S3_GLOBAL_ENDPOINT,
            NACL_EPHEMERAL_BLOCKED,
            DNS_OUTSIDE_SERVICE_RANGE,
            DNS_INTERFACE_ENDPOINT,
            NO_GATEWAY_ENDPOINT,
            ROUTE_TABLE_NOT_ASSOCIATED,
            ROUTE_OVERRIDES_ENDPOINT,
            SG_EGRESS_BLOCKS,
            NACL_OUTBOUND_BLOCKS,
            NACL_INBOUND_BLOCKS,
        ],
        NACL_EPHEMERAL_BLOCKED => &[NACL_INBOUND_BLOCKS],
        // A bare 403 (HeadBucket has no body) says nothing another call did not say better.
        ACCESS_DENIED_UNATTRIBUTED => &[
            ENDPOINT_POLICY_DENIES,
            ACCESS_DENIED_VPCE_POLICY,
            ACCESS_DENIED_RESOURCE_POLICY,
            ACCESS_DENIED_IDENTITY_POLICY,
            ACCESS_DENIED_SCP,
            ACCESS_DENIED_RCP,
            ACCESS_DENIED_PERMISSIONS_BOUNDARY,
            ACCESS_DENIED_SESSION_POLICY,
        ],
        ACCESS_DENIED_VPCE_POLICY => &[ENDPOINT_POLICY_DENIES],
        DNS_RESOLUTION_FAILED => &[VPC_DNS_DISABLED, REGION_MISMATCH_SDK],
        DNS_OUTSIDE_SERVICE_RANGE => &[VPC_DNS_DISABLED, REGION_MISMATCH_SDK, HOSTS_FILE_OVERRIDE],
        DNS_INTERFACE_ENDPOINT => &[HOSTS_FILE_OVERRIDE],
        TLS_FAILED => &[
            TCP_TIMEOUT,
            TCP_REFUSED,
            TCP_UNREACHABLE,
            TLS_INTERCEPTED,
            HOSTS_FILE_OVERRIDE,
        ],
        PATH_NOT_GATEWAY_ENDPOINT => &[
            HOSTS_FILE_OVERRIDE,
            NO_GATEWAY_ENDPOINT,
            ROUTE_TABLE_NOT_ASSOCIATED,
            ROUTE_OVERRIDES_ENDPOINT,
            PROXY_IN_PATH,
            DNS_INTERFACE_ENDPOINT,
            DNS_OUTSIDE_SERVICE_RANGE,
            TLS_INTERCEPTED,
            NO_PROXY_INEFFECTIVE,
        ],
        PROXY_IN_PATH => &[NO_PROXY_INEFFECTIVE],
        WRONG_REGION_REDIRECT => &[
            REGION_MISMATCH_BUCKET,
            REGION_MISMATCH_SDK,
            S3_GLOBAL_ENDPOINT,
        ],
        IMDS_UNAVAILABLE => &[IMDS_VIA_PROXY],
        NO_CREDENTIALS => &[IMDS_VIA_PROXY, IMDS_UNAVAILABLE],
        _ => &[],
    }
}

fn verdict(findings: &[Finding], fail_on: FailOn, deadline_hit: bool) -> Verdict {
    let threshold = match fail_on {
        FailOn::Error => Severity::Error,
        FailOn::Warning => Severity::Warning,
    };
    let failing: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.severity >= threshold)
        .collect();
    let mut roots: Vec<&Finding> = failing
        .iter()
        .filter(|f| {
            !explained_by(f.code).iter().any(|cause| {
                findings.iter().any(|o| {
                    o.code == *cause
                        && (o.target == f.target || o.target == "host")
                        // Resolvers that merely disagree (a warning) explain no failure; only
                        // the stale answer that fails while the VPC's works (an error) does.
                        && (o.code != FindingCode::DNS_RESOLVERS_DISAGREE
                            || o.severity == Severity::Error)
                })
            })
        })
        .copied()
        .collect();
    // Every failure explained by something below the threshold: show the failures themselves.
    if roots.is_empty() {
        roots = failing.clone();
    }
    roots.sort_by_key(|f| (checklist_rank(&f.checklist_item), f.target.clone()));
    let root_causes: Vec<RootCause> = roots
        .iter()
        .map(|f| RootCause {
            code: f.code,
            target: f.target.clone(),
            title: f.title.clone(),
        })
        .collect();
    let (status, exit_code, summary) = if !failing.is_empty() {
        let first = root_causes
            .first()
            .map(|r| format!("{} ({}): {}", r.code, r.target, r.title))
            .unwrap_or_default();
        (
            OverallStatus::Problems,
            1,
            format!("problem found: {first}"),
        )
    } else if deadline_hit {
        (
            OverallStatus::Problems,
            3,
            "the deadline ended the run before every check finished; raise --deadline".to_string(),
        )
    } else {
        (
            OverallStatus::Healthy,
            0,
            "healthy: every probed path works".to_string(),
        )
    };
    Verdict {
        status,
        summary,
        root_causes,
        exit_code,
    }
}

fn credential_findings(r: &ProbeResults, f: &mut Findings) {
    if let Some(c) = &r.credentials {
        if !c.found {
            let remediation = match r.instance.as_ref().and_then(|i| i.iam_role.as_ref()) {
                Some(role) => format!(
                    "The instance profile names role {role}, but its credentials could not be read: check IMDS (hop limit, IMDS_VIA_PROXY) and the role's trust policy."
                ),
                None => FindingCode::NO_CREDENTIALS.general_fix().into(),
            };
            f.add(
                FindingCode::NO_CREDENTIALS,
                Severity::Error,
                "host",
                "no AWS credentials in the default chain".into(),
                c.error.clone().unwrap_or_default(),
                remediation,
                vec!["credentials".into()],
            );
        } else if c.expired {
            f.add(
                FindingCode::CREDENTIALS_EXPIRED,
                Severity::Error,
                "host",
                format!(
                    "the credentials from {} expired",
                    c.source.as_deref().unwrap_or("the chain")
                ),
                format!(
                    "They expired at {}.",
                    c.expires_at.as_deref().unwrap_or("?")
                ),
                FindingCode::CREDENTIALS_EXPIRED.general_fix().into(),
                vec!["credentials".into()],
            );
        }
    }
    let skew = r
        .calls
        .iter()
        .filter_map(|c| c.clock_offset_secs.map(|o| (o, c)))
        .max_by_key(|(o, _)| o.abs());
    if let Some((offset, call)) = skew
        && offset.abs() > crate::classify::CLOCK_SKEW_LIMIT_SECS
    {
        f.add(
            FindingCode::CLOCK_SKEW,
            Severity::Error,
            "host",
            format!(
                "the local clock is {} s {} AWS's",
                offset.abs(),
                if offset > 0 { "behind" } else { "ahead of" }
            ),
            format!(
                "The Date header of {} {} differs from the local clock by {offset} s; signatures are rejected beyond {} s.",
                call.operation,
                call.target,
                crate::classify::CLOCK_SKEW_LIMIT_SECS
            ),
            FindingCode::CLOCK_SKEW.general_fix().into(),
            vec![call.id()],
        );
    }
}

fn call_findings(r: &ProbeResults, t: &TargetSpec, f: &mut Findings) {
    let instance = r.instance.as_ref();
    let instance_region = r
        .region
        .instance
        .as_deref()
        .or(r.region.effective.as_deref());
    for call in r.calls.iter().filter(|c| c.target == t.id) {
        let host = call.endpoint_host.as_deref().unwrap_or("the service");
        let Some(code) = call.finding else {
            // Failures that are not answers of the service map to the network findings;
            // through a proxy, the proxy checks already say what failed.
            if call.proxy.is_none()
                && matches!(
                    call.outcome,
                    CallOutcome::Timeout | CallOutcome::ConnectionFailed
                )
            {
                let msg = call.error_message.clone().unwrap_or_default();
                let lower = msg.to_ascii_lowercase();
                let code = if call.outcome == CallOutcome::Timeout {
                    FindingCode::TCP_TIMEOUT
                } else if lower.contains("certificate") || lower.contains("tls") {
                    FindingCode::TLS_FAILED
                } else {
                    FindingCode::TCP_UNREACHABLE
                };
                let connected = r.tcp.iter().any(|a| {
                    Some(&a.address) == call.peer.as_ref() && a.outcome == TcpOutcome::Connected
                });
                let title = if connected && call.outcome == CallOutcome::Timeout {
                    format!(
                        "{host} accepted the connection but did not answer the signed {} call in time",
                        call.operation
                    )
                } else {
                    format!("the signed {} call to {host} failed", call.operation)
                };
                f.add(
                    code,
                    Severity::Error,
                    &t.id,
                    title,
                    msg,
                    code.general_fix().into(),
                    vec![call.id()],
                );
            }
            continue;
        };
        match code {
            FindingCode::WRONG_REGION_REDIRECT => {
                let bucket_region = call.bucket_region.clone();
                let region_hint = bucket_region
                    .as_deref()
                    .map(|b| format!(" ({b}): --region {b} / AWS_REGION={b}"))
                    .unwrap_or_default();
                f.add(
                    code,
                    Severity::Error,
                    &t.id,
                    format!(
                        "{host} answered {} {}: the bucket is in {}",
                        call.status.unwrap_or(0),
                        call.error_code.as_deref().unwrap_or("redirect"),
                        bucket_region.as_deref().unwrap_or("another region")
                    ),
                    call.error_message.clone().unwrap_or_else(|| {
                        format!(
                            "x-amz-bucket-region: {}",
                            bucket_region.as_deref().unwrap_or("?")
                        )
                    }),
                    format!("Send requests for {} to its region{region_hint}.", t.name),
                    vec![call.id()],
                );
                if let (Some(b), Some(i)) = (&bucket_region, instance_region)
                    && b != i
                {
                    f.add(
                        FindingCode::REGION_MISMATCH_BUCKET,
                        Severity::Error,
                        &t.id,
                        format!("bucket {} is in {b}, the instance in {i}", t.name),
                        format!(
                            "A gateway endpoint only serves buckets of its own region ({i}); requests for a bucket in {b} leave through another path or fail."
                        ),
                        FindingCode::REGION_MISMATCH_BUCKET.general_fix().into(),
                        vec![call.id()],
                    );
                }
            }
            c if c.as_str().starts_with("ACCESS_DENIED") => {
                let d = call.denial.as_ref();
                let action = d
                    .and_then(|d| d.action.clone())
                    .unwrap_or_else(|| call.action.clone());
                let resource =
                    d.and_then(|d| d.resource.clone())
                        .unwrap_or_else(|| match t.service {
                            Service::S3 => format!("arn:aws:s3:::{}", t.name),
                            Service::Dynamodb => format!("table/{}", t.name),
                        });
                f.add(
                    code,
                    Severity::Error,
                    &t.id,
                    format!("{action} on {resource} is denied by {}", denier(code)),
                    format!(
                        "{} {host} answered {} {}: {}",
                        call.operation,
                        call.status.unwrap_or(0),
                        call.error_code.as_deref().unwrap_or("AccessDenied"),
                        call.error_message
                            .as_deref()
                            .unwrap_or("(no message: HEAD answers carry no body)")
                    ),
                    denial_remediation(
                        code,
                        &action,
                        &resource,
                        t,
                        instance,
                        r.region.effective.as_deref(),
                    ),
                    vec![call.id()],
                );
            }
            _ => f.add(
                code,
                Severity::Error,
                &t.id,
                format!(
                    "{} {}: {}",
                    call.operation,
                    t.id,
                    call.error_code.as_deref().unwrap_or(code.as_str())
                ),
                call.error_message.clone().unwrap_or_default(),
                code.general_fix().into(),
                vec![call.id()],
            ),
        }
    }
}

fn denier(code: FindingCode) -> &'static str {
    match code {
        FindingCode::ACCESS_DENIED_VPCE_POLICY => "the VPC endpoint policy",
        FindingCode::ACCESS_DENIED_RESOURCE_POLICY => "the resource policy",
        FindingCode::ACCESS_DENIED_IDENTITY_POLICY => "the role's IAM policies",
        FindingCode::ACCESS_DENIED_SCP => "a service control policy",
        FindingCode::ACCESS_DENIED_RCP => "a resource control policy",
        FindingCode::ACCESS_DENIED_PERMISSIONS_BOUNDARY => "the permissions boundary",
        FindingCode::ACCESS_DENIED_SESSION_POLICY => "the session policy",
        _ => "a policy AWS does not name",
    }
}

fn denial_remediation(
    code: FindingCode,
    action: &str,
    resource: &str,
    t: &TargetSpec,
    instance: Option<&InstanceFacts>,
    region: Option<&str>,
) -> String {
    let vpc = instance
        .and_then(|i| i.vpc_id.as_deref())
        .unwrap_or("<vpc-id>");
    let region = region.unwrap_or("<region>");
    let role = instance
        .and_then(|i| i.iam_role.as_deref())
        .unwrap_or("<role>");
    let endpoint_policy = format!(
        "aws ec2 describe-vpc-endpoints --filters Name=vpc-id,Values={vpc} Name=service-name,Values=com.amazonaws.{region}.{} --query 'VpcEndpoints[].[VpcEndpointId,PolicyDocument]'",
        t.service.as_str()
    );
    let resource_policy = match t.service {
        Service::S3 => format!("aws s3api get-bucket-policy --bucket {}", t.name),
        Service::Dynamodb => format!(
            "aws dynamodb get-resource-policy --resource-arn <the ARN of table {}>",
            t.name
        ),
    };
    match code {
        FindingCode::ACCESS_DENIED_VPCE_POLICY => format!(
            "Allow {action} on {resource} in the gateway endpoint's policy: {endpoint_policy}; then aws ec2 modify-vpc-endpoint --vpc-endpoint-id <vpce-id> --policy-document file://policy.json"
        ),
        FindingCode::ACCESS_DENIED_RESOURCE_POLICY => format!(
            "Read the policy ({resource_policy}) and fix the statement that denies {action}: allow this VPC's endpoint with aws:SourceVpce (or aws:SourceVpc {vpc}); aws:SourceIp never matches traffic through a VPC endpoint."
        ),
        FindingCode::ACCESS_DENIED_IDENTITY_POLICY => format!(
            "Grant {action} on {resource} to role {role}: aws iam simulate-principal-policy --policy-source-arn arn:aws:iam::<account>:role/{role} --action-names {action} --resource-arns {resource} shows what is missing."
        ),
        FindingCode::ACCESS_DENIED_PERMISSIONS_BOUNDARY => format!(
            "Allow {action} in the permissions boundary of role {role}: aws iam get-role --role-name {role} --query Role.PermissionsBoundary"
        ),
        FindingCode::ACCESS_DENIED_SESSION_POLICY => {
            format!("Allow {action} in the session policy passed to AssumeRole (or pass none).")
        }
        FindingCode::ACCESS_DENIED_SCP | FindingCode::ACCESS_DENIED_RCP => format!(
            "Ask the organization's administrators to allow {action} on {resource} (aws organizations list-policies-for-target --target-id <account-id> --filter {}).",
            if code == FindingCode::ACCESS_DENIED_SCP {
                "SERVICE_CONTROL_POLICY"
            } else {
                "RESOURCE_CONTROL_POLICY"
            }
        ),
        _ => format!(
            "Check in order: (1) the endpoint policy: {endpoint_policy}; (2) the resource policy: {resource_policy} (aws:SourceVpce / aws:SourceVpc conditions; aws:SourceIp never matches through an endpoint); (3) role {role}'s IAM policies for {action} on {resource}."
        ),
    }
}

/// The VPC's configuration (when read) turns symptoms into causes.
/// The applications connect over a family the endpoint does not serve (IPv6 to an IPv4-only
/// gateway endpoint, or the reverse): that traffic cannot take the endpoint.
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
            t.service.ranges_name(),
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

fn control_plane_findings(r: &ProbeResults, t: &TargetSpec, f: &mut Findings) {
    let Some(cp) = &r.control_plane else { return };
    let region = r.region.effective.as_deref().unwrap_or("<region>");
    let instance = r.instance.as_ref();
    let vpc = instance
        .and_then(|i| i.vpc_id.as_deref())
        .unwrap_or("<vpc-id>");
    let service_name = crate::checks::control_plane::service_name(region, t.service);
    let endpoint = cp.endpoints.iter().find(|e| e.service == t.service);
    let prefix_list = cp.prefix_lists.iter().find(|p| p.service == t.service);
    let peers = service_addresses(r, t, prefix_list);
    let ids = vec!["ec2".to_string()];

    // Without the subnet's route table the VPC is not visible to this role (another account's
    // shared VPC, a wrong id): an empty endpoint list then proves nothing.
    if cp.read_ok("ec2:DescribeVpcEndpoints") && endpoint.is_none() && cp.route_table.is_some() {
        let rtb = cp
            .route_table
            .as_ref()
            .map(|t| t.id.as_str())
            .unwrap_or("<rtb-id>");
        f.add(
            FindingCode::NO_GATEWAY_ENDPOINT,
            Severity::Error,
            &t.id,
            format!("{vpc} has no gateway endpoint for {service_name}"),
            format!("DescribeVpcEndpoints lists no Gateway endpoint of {service_name} in {vpc}."),
            format!(
                "aws ec2 create-vpc-endpoint --vpc-endpoint-type Gateway --vpc-id {vpc} --service-name {service_name} --route-table-ids {rtb}"
            ),
            ids.clone(),
        );
    }
    if let Some(ep) = endpoint {
        address_family_finding(r, t, ep, f);
    }
    if let (Some(ep), Some(table)) = (endpoint, &cp.route_table) {
        let route =
            prefix_list.and_then(|pl| crate::vpc_rules::endpoint_route(table, &pl.id, &ep.id));
        if !ep.route_table_ids.contains(&table.id) || route.is_none() {
            f.add(
                FindingCode::ROUTE_TABLE_NOT_ASSOCIATED,
                Severity::Error,
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
                    "The endpoint serves route tables [{}]; {} ({}) has no route {} -> {}.",
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
            // A more specific route for a service address wins over the prefix-list route.
            for ip in &peers {
                if let Some(winner) =
                    crate::vpc_rules::effective_route(table, *ip, &cp.prefix_lists)
                    && winner.target != ep.id
                {
                    let dest = winner.destination_cidr.clone().unwrap_or_default();
                    f.add(
                        FindingCode::ROUTE_OVERRIDES_ENDPOINT,
                        Severity::Error,
                        &t.id,
                        format!("route {dest} -> {} in {} wins over {} -> {} for {ip}", winner.target, table.id, pl.id, ep.id),
                        format!("Traffic to {ip} follows the more specific route {dest} via {}, not the gateway endpoint.", winner.target),
                        format!("aws ec2 delete-route --route-table-id {} --destination-cidr-block {dest}", table.id),
                        ids.clone(),
                    );
                    break;
                }
            }
        }
    }
    if cp.read_ok("ec2:DescribeSecurityGroups") && !cp.security_groups.is_empty() {
        let pl = prefix_list.map(|p| p.id.as_str());
        let blocked: Vec<IpAddr> = peers
            .iter()
            .copied()
            .filter(|ip| {
                !cp.security_groups.iter().any(|g| {
                    g.egress
                        .iter()
                        .any(|rule| crate::vpc_rules::sg_rule_allows(rule, Some(*ip), pl, 443))
                })
            })
            .collect();
        let no_rule_for_list = peers.is_empty()
            && !cp.security_groups.iter().any(|g| {
                g.egress
                    .iter()
                    .any(|rule| crate::vpc_rules::sg_rule_allows(rule, None, pl, 443))
            });
        if !blocked.is_empty() || no_rule_for_list {
            let groups: Vec<&str> = cp.security_groups.iter().map(|g| g.id.as_str()).collect();
            f.add(
                FindingCode::SG_EGRESS_BLOCKS,
                Severity::Error,
                &t.id,
                format!("no egress rule of {} allows TCP 443 to {}", groups.join(", "), pl.unwrap_or("the service")),
                format!(
                    "Egress rules evaluated for {}: none allows tcp/443 to the prefix list or to a CIDR containing them.",
                    if blocked.is_empty() { "the prefix list".to_string() } else { blocked.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ") }
                ),
                format!(
                    "aws ec2 authorize-security-group-egress --group-id {} --ip-permissions 'IpProtocol=tcp,FromPort=443,ToPort=443,PrefixListIds=[{{PrefixListId={}}}]'",
                    groups.first().copied().unwrap_or("<sg-id>"),
                    pl.unwrap_or("<pl-id>")
                ),
                ids.clone(),
            );
        }
    }
    if let Some(acl) = &cp.network_acl {
        let ephemeral = r.host.ephemeral_ports.unwrap_or(PortRange {
            first: 1024,
            last: 65535,
        });
        for ip in &peers {
            let (rule, allow) = crate::vpc_rules::nacl_decide(&acl.entries, true, *ip, 443);
            if !allow {
                f.add(
                    FindingCode::NACL_OUTBOUND_BLOCKS,
                    Severity::Error,
                    &t.id,
                    format!("{} denies TCP 443 out to {ip} (rule {})", acl.id, rule.map(|n| n.to_string()).unwrap_or_else(|| "*".into())),
                    "Network ACLs are evaluated in rule-number order; the first match decides, and nothing matching is a deny.".into(),
                    format!(
                        "aws ec2 create-network-acl-entry --network-acl-id {} --egress --rule-number {} --protocol tcp --port-range From=443,To=443 --cidr-block {} --rule-action allow",
                        acl.id,
                        free_rule_number(&acl.entries, true, rule),
                        prefix_list.and_then(|p| p.cidrs.first().cloned()).unwrap_or_else(|| format!("{ip}/32"))
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
                        "aws ec2 create-network-acl-entry --network-acl-id {} --ingress --rule-number {} --protocol tcp --port-range From=1024,To=65535 --cidr-block {} --rule-action allow",
                        acl.id,
                        free_rule_number(&acl.entries, false, *rule),
                        prefix_list.and_then(|p| p.cidrs.first().cloned()).unwrap_or_else(|| format!("{ip}/32"))
                    ),
                    ids.clone(),
                );
                break;
            }
        }
    }
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
    if let Some(ep) = endpoint
        && let Some(policy) = &ep.policy
    {
        let principal = r.credentials.as_ref().and_then(|c| c.identity_arn.clone());
        for (action, resource) in probed_requests(r, t) {
            let decision =
                crate::vpc_rules::evaluate_policy(policy, &action, &resource, principal.as_deref());
            let (severity, why) = match &decision {
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

/// Reachability Analyzer's verdict, in the finding of the checklist item it names.
fn reachability_findings(r: &ProbeResults, t: &TargetSpec, f: &mut Findings) {
    for a in r.reachability.iter().filter(|a| a.service == t.service) {
        if a.network_path_found != Some(false) {
            continue;
        }
        for x in &a.explanations {
            let code = match x.code.as_str() {
                c if c.contains("SG") || c.contains("SECURITY_GROUP") => {
                    FindingCode::SG_EGRESS_BLOCKS
                }
                c if c.contains("ACL") => FindingCode::NACL_OUTBOUND_BLOCKS,
                "MORE_SPECIFIC_ROUTE" => FindingCode::ROUTE_OVERRIDES_ENDPOINT,
                c if c.contains("ROUTE") => FindingCode::ROUTE_TABLE_NOT_ASSOCIATED,
                _ => continue,
            };
            f.add(
                code,
                Severity::Error,
                &t.id,
                format!(
                    "Reachability Analyzer finds no path from {} to {}: {}",
                    a.source, a.destination, x.meaning
                ),
                format!(
                    "Analysis {} explanation {}{}{}.",
                    a.analysis_id.as_deref().unwrap_or("?"),
                    x.code,
                    x.component
                        .as_deref()
                        .map(|c| format!(" on {c}"))
                        .unwrap_or_default(),
                    x.direction
                        .as_deref()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                ),
                code.general_fix().into(),
                vec![format!("analyzer/{}", t.service.as_str())],
            );
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
        });
    }
    None
}

#[cfg(test)]
mod tests {
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
                "deadline with nothing found",
                |r, _| {
                    r.deadline_hit = true;
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
}
