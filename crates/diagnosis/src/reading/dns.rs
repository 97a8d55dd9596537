//! The DNS check's pure half: its finding rules (the host's resolvers, a silent name server,
//! and per name: a failed resolution, answers outside the service's ranges or private, resolvers
//! that disagree) and how a lookup reads as a report record (the lookups are the probe's
//! checks/dns.rs). The check's records are the resolvers' lookups and the applications' own
//! resolution (app_resolve.rs), both of kind `dns`: its rules read both. What needs the
//! connections too (a hosts-file pin, a search domain, a stale answer) spans checks: diagnose.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::app_resolve::app_resolution;
use super::{Check, SliceRules, ids};
use crate::catalogue::FindingCode;
use crate::findings::{ExpectPath, Expectations, Findings, HostRule, NameRule};
use crate::report::*;
use crate::results::{ProbeResults, TargetSpec};

/// The DNS check's rules, about the host and about each name of a target.
pub struct DnsSlice;

impl SliceRules for DnsSlice {
    fn host_rules(&self) -> &'static [HostRule] {
        &[resolver_finding, silent_server_finding]
    }
    fn name_rules(&self) -> &'static [NameRule] {
        &[
            resolution_failed_findings,
            answer_class_findings,
            resolvers_disagree_finding,
        ]
    }
}

/// The lookups of `name` by one resolver.
pub fn lookups<'a>(r: &'a ProbeResults, name: &str, resolver: ResolverKind) -> Vec<&'a DnsLookup> {
    r.dns
        .iter()
        .filter(|d| d.name == name && d.resolver == resolver)
        .collect()
}

/// DNS_RESOLUTION_FAILED: the name servers answer but the applications' own resolution finds
/// no address, or the host's resolver answers none (and the applications found none elsewhere).
fn resolution_failed_findings(
    r: &ProbeResults,
    _: &Expectations,
    t: &TargetSpec,
    name: &str,
    f: &mut Findings,
) {
    let system = lookups(r, name, ResolverKind::System);
    let a = system.iter().find(|d| d.record_type == "A");
    let aaaa = system.iter().find(|d| d.record_type == "AAAA");
    let resolved_any = system.iter().any(|d| d.outcome == DnsOutcome::Answered);
    let app = app_resolution(r, name);
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
}

/// What the applications connect to, when known; else the host's DNS servers' answers.
fn answer_class_findings(
    r: &ProbeResults,
    exp: &Expectations,
    t: &TargetSpec,
    name: &str,
    f: &mut Findings,
) {
    let expect_gateway = exp.expect_path == ExpectPath::Gateway;
    let system = lookups(r, name, ResolverKind::System);
    let app = app_resolution(r, name);
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
}

/// The host's resolver vs the VPC's, compared by kind of answer (S3 rotates addresses).
fn resolvers_disagree_finding(
    r: &ProbeResults,
    _: &Expectations,
    t: &TargetSpec,
    name: &str,
    f: &mut Findings,
) {
    let system = lookups(r, name, ResolverKind::System);
    let vpc = lookups(r, name, ResolverKind::Vpc);
    let a = system.iter().find(|d| d.record_type == "A");
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
}

/// The host resolver vs the VPC resolver.
fn resolver_finding(r: &ProbeResults, _: &Expectations, f: &mut Findings) {
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

/// A name server listed before the one that answered stays silent: libc waits on it at every
/// lookup (the probe asks every server at once, so it pays one timeout, not libc's).
fn silent_server_finding(r: &ProbeResults, _: &Expectations, f: &mut Findings) {
    let waited: Vec<&DnsLookup> = r
        .dns
        .iter()
        .filter(|d| {
            d.resolver == ResolverKind::System
                && !d.silent_servers.is_empty()
                && matches!(
                    d.outcome,
                    DnsOutcome::Answered | DnsOutcome::NoData | DnsOutcome::NxDomain
                )
                // A name the hosts file or systemd-resolved answers never waits on resolv.conf.
                && app_resolution(r, &d.name).is_none_or(|a| {
                    matches!(a.answered_by, Some(AppSource::Dns) | None)
                })
        })
        .collect();
    let Some(first) = waited.first() else {
        return;
    };
    let silent: BTreeSet<&str> = waited
        .iter()
        .flat_map(|d| d.silent_servers.iter().map(String::as_str))
        .collect();
    let answering: BTreeSet<&str> = waited.iter().filter_map(|d| d.server.as_deref()).collect();
    let names: BTreeSet<&str> = waited.iter().map(|d| d.name.as_str()).collect();
    let silent = silent.into_iter().collect::<Vec<_>>().join(", ");
    let answering = answering.into_iter().collect::<Vec<_>>().join(", ");
    let wait = first
        .libc_wait_secs
        .map(|s| format!("{s} s"))
        .unwrap_or_else(|| "libc's timeout".into());
    f.add(
        FindingCode::DNS_SERVER_SILENT,
        Severity::Warning,
        "host",
        format!("name server {silent} does not answer: every lookup waits {wait} before {answering} answers"),
        format!(
            "resolv.conf lists {silent} before {answering}; it gave no answer within --timeout for {} ({} lookups), while {answering} answered. libc asks the servers in order and waits resolv.conf's `options timeout:` on a silent one before it asks the next: {wait} per lookup of {}.",
            names.iter().copied().collect::<Vec<_>>().join(", "),
            waited.len(),
            if waited.iter().all(|d| d.libc_wait_secs == first.libc_wait_secs) {
                "each service name"
            } else {
                "each service name (longer where more servers are silent)"
            },
        ),
        format!(
            "Remove {silent} from resolv.conf (or from what writes it: the DHCP options set, netplan, NetworkManager), or make it answer."
        ),
        ids(&waited),
    );
}

impl Check for DnsLookup {
    const KIND: CheckKind = CheckKind::Dns;
    fn id(&self) -> String {
        format!(
            "dns/{}/{}/{}",
            self.resolver.as_str(),
            self.name,
            self.record_type
        )
    }
    fn subject(&self) -> String {
        self.name.clone()
    }
    fn status(&self) -> CheckStatus {
        match self.outcome {
            DnsOutcome::Answered => {
                // A silent server before the one that answered costs libc its timeout.
                if self.addresses.iter().all(|a| a.class.fits_service())
                    && self.silent_servers.is_empty()
                {
                    CheckStatus::Ok
                } else {
                    CheckStatus::Warn
                }
            }
            // Many service names have no AAAA record; only a missing A record is a failure.
            DnsOutcome::NoData if self.record_type == "AAAA" => CheckStatus::Ok,
            // Some forwarders (dnsmasq) answer NXDOMAIN instead of NODATA for AAAA.
            DnsOutcome::NxDomain if self.record_type == "AAAA" => CheckStatus::Warn,
            _ => CheckStatus::Fail,
        }
    }
    fn summary(&self) -> String {
        let server = self.server.as_deref().unwrap_or("no server");
        let what = match self.outcome {
            DnsOutcome::Answered => self
                .addresses
                .iter()
                .map(|a| format!("{} ({})", a.ip, class_label(a.class)))
                .collect::<Vec<_>>()
                .join(", "),
            DnsOutcome::NoData => "no record of this type".into(),
            DnsOutcome::NxDomain => "NXDOMAIN".into(),
            DnsOutcome::ServFail => "SERVFAIL".into(),
            DnsOutcome::Refused => "REFUSED".into(),
            DnsOutcome::Timeout => "timed out".into(),
            DnsOutcome::Error => self.error.clone().unwrap_or_else(|| "error".into()),
        };
        let after_silence = crate::report::after_silent_servers(&self.silent_servers);
        format!(
            "{} {} via {} resolver {server}: {what} ({} ms{after_silence})",
            self.name,
            self.record_type,
            self.resolver.as_str(),
            self.latency_ms
        )
    }
    fn duration_ms(&self) -> u64 {
        self.latency_ms
    }
    fn evidence(&self) -> Evidence {
        Evidence::Dns(self.clone())
    }
}

pub use crate::report::class_label;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::slice::{findings_of, s3_target};

    const NAME: &str = "s3.eu-west-1.amazonaws.com";

    fn lookup(
        resolver: ResolverKind,
        outcome: DnsOutcome,
        ip: Option<(&str, AddressClass)>,
    ) -> DnsLookup {
        crate::fixtures::dns_lookup(NAME, resolver, "A", outcome, ip.as_slice())
    }

    fn codes(found: &[Finding]) -> Vec<FindingCode> {
        found.iter().map(|f| f.code).collect()
    }

    /// The host's resolver answers a private address where the VPC resolver answers the
    /// service's: an interface endpoint's answer (an error when the gateway is expected), and
    /// resolvers that disagree (a warning).
    #[test]
    fn a_private_answer_the_vpc_resolver_does_not_give() {
        let mut exp = Expectations::default_run();
        let r = ProbeResults {
            targets: vec![s3_target(NAME)],
            dns: vec![
                lookup(
                    ResolverKind::System,
                    DnsOutcome::Answered,
                    Some(("10.0.5.5", AddressClass::Private)),
                ),
                lookup(
                    ResolverKind::Vpc,
                    DnsOutcome::Answered,
                    Some(("52.218.1.1", AddressClass::ServiceRegion)),
                ),
            ],
            ..ProbeResults::default()
        };
        let found = findings_of(&DnsSlice, &r, &exp);
        assert_eq!(
            codes(&found),
            vec![
                FindingCode::DNS_INTERFACE_ENDPOINT,
                FindingCode::DNS_RESOLVERS_DISAGREE
            ]
        );
        assert_eq!(found[0].severity, Severity::Error);
        assert_eq!(found[1].severity, Severity::Warning);
        assert_eq!(
            found[1].check_ids,
            vec![format!("dns/system/{NAME}/A"), format!("dns/vpc/{NAME}/A")]
        );

        exp.expect_path = ExpectPath::Any;
        assert_eq!(findings_of(&DnsSlice, &r, &exp)[0].severity, Severity::Note);
    }

    /// A name the host's resolver cannot resolve (and the applications found no other way).
    #[test]
    fn nxdomain_is_a_failed_resolution() {
        let r = ProbeResults {
            targets: vec![s3_target(NAME)],
            dns: vec![lookup(ResolverKind::System, DnsOutcome::NxDomain, None)],
            ..ProbeResults::default()
        };
        let found = findings_of(&DnsSlice, &r, &Expectations::default_run());
        assert_eq!(codes(&found), vec![FindingCode::DNS_RESOLUTION_FAILED]);
        assert_eq!(
            found[0].detail,
            "The host's resolver answered NXDOMAIN (the name does not exist for this resolver)."
        );
    }

    /// resolv.conf naming only servers that are not the VPC's resolver (VPC base + 2, or
    /// 169.254.169.253) is a note.
    #[test]
    fn a_resolver_outside_the_vpc_is_a_note() {
        let exp = Expectations::default_run();
        let mut r = ProbeResults {
            instance: Some(InstanceFacts {
                vpc_cidrs: vec!["10.0.0.0/16".into()],
                ..InstanceFacts::default()
            }),
            system_resolvers: vec!["10.0.0.2:53".parse().unwrap()],
            ..ProbeResults::default()
        };
        assert!(findings_of(&DnsSlice, &r, &exp).is_empty());

        r.system_resolvers = vec!["192.0.2.53:53".parse().unwrap()];
        let found = findings_of(&DnsSlice, &r, &exp);
        assert_eq!(codes(&found), vec![FindingCode::DNS_CUSTOM_RESOLVER]);
        assert_eq!(found[0].severity, Severity::Note);
        assert_eq!(
            found[0].detail,
            "resolv.conf lists 192.0.2.53; the Amazon-provided resolver is 10.0.0.2 or 169.254.169.253."
        );
    }
}
