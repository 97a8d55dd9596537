//! The findings about what the applications' answer for a name does, which read the
//! connections (and handshakes) to its addresses too, so they span the DNS and TCP checks: a
//! hosts-file pin, a search domain appended, a stale answer; and the names of a target in the
//! report. The DNS check's own rules are reading/dns.rs.

use std::collections::BTreeSet;

use super::{Expectations, Findings};
use crate::catalogue::FindingCode;
use crate::reading::Check;
use crate::reading::app_resolve::app_resolution;
use crate::reading::dns::lookups;
use crate::reading::tcp::tcp_attempts;
use crate::report::*;
use crate::results::{ProbeResults, TargetSpec};

/// A hosts-file pin, a search domain, or an answer of the applications' resolver that does not
/// connect: each judged by what the connections to its addresses did.
pub(super) fn application_answer_findings(
    r: &ProbeResults,
    _: &Expectations,
    t: &TargetSpec,
    name: &str,
    f: &mut Findings,
) {
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
