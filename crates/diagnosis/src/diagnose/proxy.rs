//! The proxy findings: variables that contradict each other or send IMDS through a proxy,
//! and per name what the SDK, curl and botocore would do with the proxy settings.

use std::net::IpAddr;

use super::{Expectations, Findings};
use crate::catalogue::FindingCode;
use crate::findings::ExpectPath;
use crate::proxy_rules::{self, HttpClientKind};
use crate::reading::Check;
use crate::report::*;
use crate::results::{ProbeResults, TargetSpec};

/// Proxy variables that contradict each other, and IMDS requests that would take the proxy.
pub(super) fn proxy_env_findings(r: &ProbeResults, exp: &Expectations, f: &mut Findings) {
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
            .filter(|d| d.url.contains(crate::reading::proxy::IMDS_TOKEN_PATH) && d.proxy.is_some())
            .collect();
        if !imds_proxied.is_empty() {
            let clients: Vec<&str> = imds_proxied.iter().map(|d| d.client.label()).collect();
            let sdk_proxied = imds_proxied
                .iter()
                .any(|d| d.client == HttpClientKind::AwsSdkRust);
            let imds_failed = r.imds.as_ref().is_some_and(|i| !i.reachable);
            let fix = no_proxy_fix(r, exp, f);
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
                fix,
                vec!["proxy/env".into()],
            );
        }
    }
}

/// The one NO_PROXY value every proxy finding recommends: it makes all three clients
/// bypass the proxy for every target's names, botocore's endpoints and IMDS at once.
fn no_proxy_fix(r: &ProbeResults, exp: &Expectations, f: &Findings) -> String {
    f.no_proxy_fix
        .get_or_init(|| recommended_no_proxy_export(r, exp))
        .clone()
}

fn recommended_no_proxy_export(r: &ProbeResults, exp: &Expectations) -> String {
    let imds = r.proxy_env.as_ref().and_then(|env| {
        env.decisions
            .iter()
            .find(|d| d.url.contains(crate::reading::proxy::IMDS_TOKEN_PATH))
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
            crate::reading::proxy::decision_for(env, *c, url)
                .and_then(|d| d.proxy.as_ref())
                .is_some_and(|p| p.host == proxy.host && p.port == proxy.port)
        })
        .map(HttpClientKind::label)
        .collect()
}

/// Per name: a proxy value some client cannot use, the SDK's proxy (and whether it tunnels),
/// and NO_PROXY entries that do not bypass it.
pub(super) fn proxy_findings(
    r: &ProbeResults,
    exp: &Expectations,
    t: &TargetSpec,
    name: &str,
    f: &mut Findings,
) {
    let Some(env) = &r.proxy_env else { return };
    let url = format!("https://{name}/");
    unusable_proxy_finding(r, exp, env, t, name, &url, f);
    proxy_in_path_findings(r, exp, env, t, name, &url, f);
    no_proxy_ineffective_finding(r, exp, t, name, &url, f);
}

// A value some client cannot use at all (SOCKS for the SDK and botocore, `HTTP://` or
// `ftp://` for botocore, a blank): one finding per value, naming every client it breaks.
fn unusable_proxy_finding(
    r: &ProbeResults,
    exp: &Expectations,
    env: &ProxyEnvEvidence,
    t: &TargetSpec,
    name: &str,
    url: &str,
    f: &mut Findings,
) {
    let failing: Vec<&proxy_rules::ProxyDecision> = HttpClientKind::ALL
        .into_iter()
        .filter_map(|c| crate::reading::proxy::decision_for(env, c, url))
        .filter(|d| d.fails)
        .collect();
    if let Some(first) = failing.first().and_then(|d| d.proxy.as_ref()) {
        let clients: Vec<&str> = failing.iter().map(|d| d.client.label()).collect();
        let fix = no_proxy_fix(r, exp, f);
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
}

/// The SDK sends `name` through a proxy: where the path goes, and whether the proxy tunnels.
#[allow(clippy::too_many_arguments)]
fn proxy_in_path_findings(
    r: &ProbeResults,
    exp: &Expectations,
    env: &ProxyEnvEvidence,
    t: &TargetSpec,
    name: &str,
    url: &str,
    f: &mut Findings,
) {
    let sdk = crate::reading::proxy::decision_for(env, HttpClientKind::AwsSdkRust, url);
    if let Some(d) = sdk
        && let Some(p) = &d.proxy
    {
        let fix = no_proxy_fix(r, exp, f);
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
            .filter(|p| p.name == name && crate::reading::proxy::is_probed(&p.proxy))
        {
            let clients = clients_using(env, url, &probe.proxy).join(", ");
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
}

fn no_proxy_ineffective_finding(
    r: &ProbeResults,
    exp: &Expectations,
    t: &TargetSpec,
    name: &str,
    url: &str,
    f: &mut Findings,
) {
    let resolved: Vec<IpAddr> = r
        .dns
        .iter()
        .filter(|d| d.name == name)
        .flat_map(|d| d.addresses.iter().filter_map(|a| a.ip.parse().ok()))
        .collect();
    if let Ok(parsed) = url::Url::parse(url) {
        let ineffective = proxy_rules::ineffective_entries(&exp.proxy_env, &parsed, &resolved);
        if let Some(first) = ineffective.first() {
            let sdk_hit = ineffective
                .iter()
                .any(|e| e.clients.contains(&HttpClientKind::AwsSdkRust));
            let fix = no_proxy_fix(r, exp, f);
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
