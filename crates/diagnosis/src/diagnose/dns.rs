//! The findings about how one name resolves: for the applications, the host's resolver and the
//! VPC resolver; a hosts-file pin or a stale answer; the names of a target in the report.

use std::collections::BTreeSet;

use super::{Expectations, Findings, app_resolution, ids, tcp_attempts};
use crate::catalogue::FindingCode;
use crate::findings::ExpectPath;
use crate::reading::Check;
use crate::report::*;
use crate::results::{ProbeResults, TargetSpec};

/// Every finding about the resolution of `name`, in report order.
pub(super) fn name_findings(
    r: &ProbeResults,
    exp: &Expectations,
    t: &TargetSpec,
    name: &str,
    f: &mut Findings,
) {
    resolution_failed_findings(r, t, name, f);
    answer_class_findings(r, exp, t, name, f);
    resolvers_disagree_finding(r, t, name, f);
    application_answer_findings(r, t, name, f);
}

/// The lookups of `name` by one resolver.
fn lookups<'a>(r: &'a ProbeResults, name: &str, resolver: ResolverKind) -> Vec<&'a DnsLookup> {
    r.dns
        .iter()
        .filter(|d| d.name == name && d.resolver == resolver)
        .collect()
}

/// Resolution.
fn resolution_failed_findings(r: &ProbeResults, t: &TargetSpec, name: &str, f: &mut Findings) {
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
fn resolvers_disagree_finding(r: &ProbeResults, t: &TargetSpec, name: &str, f: &mut Findings) {
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

/// A hosts-file pin, or an answer of the applications' resolver that does not connect.
fn application_answer_findings(r: &ProbeResults, t: &TargetSpec, name: &str, f: &mut Findings) {
    let app = app_resolution(r, name);
    let all_attempts = tcp_attempts(r, name);
    match app.and_then(|d| d.answered_by.map(|s| (d, s))) {
        Some((app, AppSource::HostsFile)) => hosts_file_finding(r, t, name, app, &all_attempts, f),
        Some((app, AppSource::Dns)) if app.resolved_as.is_some() => {
            search_domain_finding(r, t, name, app, &all_attempts, f)
        }
        Some((app, AppSource::Dns | AppSource::Resolved)) => {
            stale_answer_finding(t, name, app, &all_attempts, f)
        }
        _ => {}
    }
}

pub(super) fn endpoint_names(r: &ProbeResults, t: &TargetSpec) -> Vec<EndpointName> {
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
            let socket = t.name_sockets.get(name).copied().unwrap_or_default();
            EndpointName {
                name: name.clone(),
                settings: t.name_settings.get(name).cloned().unwrap_or_default(),
                addresses,
                port: (socket.port != crate::endpoints::NameSocket::default().port)
                    .then_some(socket.port),
                plain_http: !socket.tls,
            }
        })
        .collect()
}

/// The applications' DNS answer came for the name with a resolv.conf search domain appended:
/// they connect to whatever that name resolves to (often a wildcard record), not the service.
fn search_domain_finding(
    r: &ProbeResults,
    t: &TargetSpec,
    name: &str,
    app: &AppResolution,
    attempts: &[&TcpAttempt],
    f: &mut Findings,
) {
    let Some(full) = app.resolved_as.as_deref() else {
        return;
    };
    let used: Vec<&str> = app.addresses.iter().map(|a| a.ip.as_str()).collect();
    let own: BTreeSet<&str> = lookups(r, name, ResolverKind::System)
        .iter()
        .flat_map(|d| d.addresses.iter().map(|a| a.ip.as_str()))
        .collect();
    let fails = attempts
        .iter()
        .any(|a| a.origin == AddressOrigin::Application && a.outcome != TcpOutcome::Connected);
    let not_service = app.addresses.iter().any(|a| !a.class.fits_service());
    let elsewhere = used.iter().any(|ip| !own.contains(ip));
    let how = app
        .steps
        .iter()
        .find(|s| s.starts_with("dns: resolv.conf's search list"))
        .map(|s| s.trim_start_matches("dns: ").to_string())
        .unwrap_or_else(|| format!("resolv.conf's search list made libc ask {full}"));
    let own_text = if own.is_empty() {
        "no address".to_string()
    } else {
        own.iter().copied().collect::<Vec<_>>().join(", ")
    };
    f.add(
        FindingCode::DNS_SEARCH_DOMAIN_OVERRIDE,
        if fails || not_service || elsewhere {
            Severity::Error
        } else {
            Severity::Warning
        },
        &t.id,
        format!(
            "the applications resolve {name} as {full} ({})",
            used.join(", ")
        ),
        format!(
            "{how}: the applications connect to {}, while {name} itself resolves to {own_text}.",
            used.join(", ")
        ),
        format!(
            "Make libc ask {name} itself first: `options ndots:` at most {} in resolv.conf (or in what writes it, such as a pod's dnsConfig), or remove the record that answers {full} (a wildcard in the search domain).",
            crate::reading::libc_search::dots(name)
        ),
        vec![app.id()],
    );
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
    let not_service = app.addresses.iter().any(|a| !a.class.fits_service());
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

/// A name server listed before the one that answered stays silent: libc waits on it at every
/// lookup (the probe asks every server at once, so it pays one timeout, not libc's).
pub(super) fn silent_server_finding(r: &ProbeResults, f: &mut Findings) {
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
