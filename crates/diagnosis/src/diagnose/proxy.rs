//! The proxy findings that span checks: IMDS requests that would take the proxy (the proxy
//! check's decisions and whether IMDS answered), and NO_PROXY entries that do not bypass it
//! (judged against the addresses DNS gave). The proxy check's own rules are reading/proxy.rs.

use std::net::IpAddr;

use super::{Expectations, Findings};
use crate::catalogue::FindingCode;
use crate::proxy_rules::{self, HttpClientKind};
use crate::reading::proxy;
use crate::report::*;
use crate::results::{ProbeResults, TargetSpec};

/// IMDS requests that would take the proxy: an error when the SDK's would and IMDS did not
/// answer. Spans the proxy check (the decisions) and the IMDS walk (whether it answered).
pub(super) fn imds_via_proxy_finding(r: &ProbeResults, exp: &Expectations, f: &mut Findings) {
    if let Some(env) = &r.proxy_env {
        let imds_proxied: Vec<&proxy_rules::ProxyDecision> = env
            .decisions
            .iter()
            .filter(|d| d.url.contains(proxy::IMDS_TOKEN_PATH) && d.proxy.is_some())
            .collect();
        if !imds_proxied.is_empty() {
            let clients: Vec<&str> = imds_proxied.iter().map(|d| d.client.label()).collect();
            let sdk_proxied = imds_proxied
                .iter()
                .any(|d| d.client == HttpClientKind::AwsSdkRust);
            let imds_failed = r.imds.as_ref().is_some_and(|i| !i.reachable);
            let fix = proxy::no_proxy_fix(r, exp, f);
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

/// NO_PROXY entries that do not bypass the proxy for `name`: its IP and CIDR entries are
/// judged against the addresses DNS gave, so this spans the proxy and DNS checks. (Like the
/// proxy check's own name rule, only when the proxy environment was read.)
pub(super) fn no_proxy_ineffective_finding(
    r: &ProbeResults,
    exp: &Expectations,
    t: &TargetSpec,
    name: &str,
    f: &mut Findings,
) {
    if r.proxy_env.is_none() {
        return;
    }
    let url = format!("https://{name}/");
    let resolved: Vec<IpAddr> = r
        .dns
        .iter()
        .filter(|d| d.name == name)
        .flat_map(|d| d.addresses.iter().filter_map(|a| a.ip.parse().ok()))
        .collect();
    if let Ok(parsed) = url::Url::parse(&url) {
        let ineffective = proxy_rules::ineffective_entries(&exp.proxy_env, &parsed, &resolved);
        if let Some(first) = ineffective.first() {
            let sdk_hit = ineffective
                .iter()
                .any(|e| e.clients.contains(&HttpClientKind::AwsSdkRust));
            let fix = proxy::no_proxy_fix(r, exp, f);
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
