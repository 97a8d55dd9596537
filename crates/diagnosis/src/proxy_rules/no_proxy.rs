//! NO_PROXY analysis across the three clients: entries that do not do what they appear
//! meant to do, case conflicts, and the recommended value.

use std::net::IpAddr;

use ipnet::IpNet;
use url::{Host, Url};
use vpce_probe_report::proxy::HttpClientKind;

use super::botocore::{
    botocore_bypass, botocore_endpoint_host, botocore_endpoint_url, botocore_proxies, py_strip,
    python_netloc,
};
use super::curl::{CurlVersion, curl_no_proxy_match, curl_tokens};
use super::sdk::sdk_no_proxy_match;
use super::{ProxyEnv, decide, host_display, join_labels, redact_proxy_url};

// ---------------------------------------------------------------------------
// Ineffective NO_PROXY entries
// ---------------------------------------------------------------------------

/// An entry of NO_PROXY that does not do what it appears meant to do.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct IneffectiveEntry {
    /// As written in NO_PROXY.
    pub entry: String,
    /// "NO_PROXY" or "no_proxy".
    pub variable: String,
    /// The clients for which it does not bypass the target although it appears meant to.
    pub clients: Vec<HttpClientKind>,
    /// Why, per client.
    pub reason: String,
}

/// What an entry appears meant to cover.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Intent {
    Star,
    UrlLike,
    WithPort,
    Wildcard {
        suffix: String,
    },
    /// An IP/CIDR entry containing an address the host name resolves to.
    IpForName {
        resolved: IpAddr,
    },
    /// An IP/CIDR entry containing the literal IP host.
    IpForIp,
    Domain,
}

/// Splits a NO_PROXY value the way a person reads it: on commas and blanks.
pub(super) fn lenient_entries(value: &str) -> Vec<&str> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|e| !e.is_empty())
        .collect()
}

fn strip_port_suffix(e: &str) -> (&str, bool) {
    if e.starts_with('[') {
        if let Some(close) = e.find("]:")
            && e[close + 2..].bytes().all(|c| c.is_ascii_digit())
            && close + 2 < e.len()
        {
            return (&e[..=close], true);
        }
        return (e, false);
    }
    if e.matches(':').count() == 1
        && let Some((head, port)) = e.split_once(':')
        && !port.is_empty()
        && port.bytes().all(|c| c.is_ascii_digit())
    {
        return (head, true);
    }
    (e, false)
}

fn entry_intent(entry: &str, host: &Host<String>, resolved: &[IpAddr]) -> Option<Intent> {
    let mut e = entry.trim();
    if e == "*" {
        return Some(Intent::Star);
    }
    let mut url_like = false;
    if let Some(i) = e.find("://") {
        url_like = true;
        e = &e[i + 3..];
        e = e.split('/').next().unwrap_or(e);
        e = e.rsplit('@').next().unwrap_or(e);
    }
    let mut wildcard = false;
    if e.starts_with('*') {
        wildcard = true;
        e = e.trim_start_matches('*');
    }
    let (e, with_port) = strip_port_suffix(e);
    let bare = e
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(e);
    let net = bare
        .parse::<IpNet>()
        .ok()
        .or_else(|| bare.parse::<IpAddr>().ok().map(IpNet::from));
    let covered = if let Some(net) = net {
        match host {
            Host::Ipv4(a) if net.contains(&IpAddr::V4(*a)) => Some(Intent::IpForIp),
            Host::Ipv6(a) if net.contains(&IpAddr::V6(*a)) => Some(Intent::IpForIp),
            Host::Domain(_) => resolved
                .iter()
                .find(|ip| net.contains(*ip))
                .map(|ip| Intent::IpForName { resolved: *ip }),
            _ => None,
        }
    } else {
        let suffix = e
            .trim_start_matches('.')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        match host {
            Host::Domain(d) if !suffix.is_empty() => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                (d == suffix || d.ends_with(&format!(".{suffix}"))).then_some(Intent::Domain)
            }
            _ => None,
        }
    }?;
    Some(if url_like {
        Intent::UrlLike
    } else if with_port {
        Intent::WithPort
    } else if wildcard {
        Intent::Wildcard {
            suffix: e.trim_start_matches('.').to_owned(),
        }
    } else {
        covered
    })
}

/// Which variable a client takes NO_PROXY from, as (name, value).
fn no_proxy_source(client: HttpClientKind, env: &ProxyEnv) -> Option<(String, String)> {
    match client {
        HttpClientKind::AwsSdkRust => env
            .first_set(&["NO_PROXY", "no_proxy"])
            .map(|(n, v)| (n.to_owned(), v.to_owned())),
        HttpClientKind::Curl => env
            .first_non_empty(&["no_proxy", "NO_PROXY"])
            .map(|(n, v)| (n.to_owned(), v.to_owned())),
        HttpClientKind::Botocore => botocore_proxies(env).get("no").cloned(),
    }
}

/// The reason, with `{clients}` standing for the client list.
fn ineffective_reason(
    client: HttpClientKind,
    env: &ProxyEnv,
    variable: &str,
    entry: &str,
    intent: &Intent,
    target: &Url,
) -> String {
    let host = target.host_str().unwrap_or_default();
    let source = no_proxy_source(client, env);
    let reads_variable = source.as_ref().is_some_and(|(n, _)| n == variable);
    if !reads_variable {
        return match (client, source) {
            (HttpClientKind::AwsSdkRust, Some((name, _))) => format!(
                "{{clients}} reads {name} (set) before {variable}, so {variable} is ignored"
            ),
            (HttpClientKind::Curl, Some((name, _))) => format!(
                "{{clients}} reads {name} (non-empty) before {variable}, so {variable} is ignored"
            ),
            (HttpClientKind::Botocore, Some((name, _))) => {
                format!("{{clients}} prefers {name} over {variable}, so {variable} is ignored")
            }
            (HttpClientKind::Botocore, None) => format!(
                "no_proxy is set but empty, which makes {{clients}} drop {variable} as well"
            ),
            (_, None) => format!("{{clients}} does not read {variable}"),
        };
    }
    let value = env.get(variable).unwrap_or_default();
    if client == HttpClientKind::Curl {
        let (tokens, stopped) = curl_tokens(value, env.curl.blank_separates());
        if stopped && !env.curl.blank_separates() && !tokens.contains(&entry) {
            return format!(
                "{{clients}} ({}) stops reading the list at the first blank that is not followed by a comma, before this entry; separate entries with commas only (curl 7.86–8.8 still accepted blanks, with a deprecation warning)",
                env.curl.describe()
            );
        }
    } else {
        // hyper-util NoProxy::from_string and urllib split on commas only.
        let comma_entries: Vec<&str> = value.split(',').map(py_strip).collect();
        if !comma_entries.contains(&entry)
            && let Some(whole) = comma_entries.iter().find(|c| c.contains(entry))
        {
            return format!(
                "for {{clients}} the list is split on commas only, so '{whole}' is read as one entry"
            );
        }
    }
    if client == HttpClientKind::Botocore {
        let endpoint = botocore_endpoint_url(target, &[]);
        if endpoint.host_str() != target.host_str()
            && botocore_bypass(entry, &python_netloc(target)).is_some()
        {
            return format!(
                "{{clients}} checks NO_PROXY once, for its client's endpoint URL {} (endpoint.py _get_proxies -> utils.py get_environ_proxies), not for {host}; an entry must cover {}",
                redact_proxy_url(endpoint.as_str()),
                endpoint.host_str().unwrap_or_default()
            );
        }
    }
    match intent {
        Intent::Star => match client {
            HttpClientKind::AwsSdkRust => format!(
                "'*' only matches host names for {{clients}} (hyper-util consults only IP and CIDR entries for IP hosts), and {host} is an IP address"
            ),
            _ => "'*' disables the proxy for {clients} only when it is the whole value, not one entry of a list".to_owned(),
        },
        Intent::UrlLike => "for {clients}, entries are host names, not URLs".to_owned(),
        Intent::WithPort => match client {
            HttpClientKind::Botocore => format!(
                "{{clients}} matches a 'host:port' entry only when the URL spells that port out, and {} does not",
                redact_proxy_url(target.as_str())
            ),
            _ => "for {clients}, an entry with a port never matches (host names are compared without ports)".to_owned(),
        },
        Intent::Wildcard { suffix } => format!(
            "'{entry}' is not a wildcard for {{clients}}; write '{suffix}' (or '.{suffix}') to cover the domain and its subdomains"
        ),
        Intent::IpForName { resolved } => match client {
            HttpClientKind::Botocore => format!(
                "{{clients}} has no IP or CIDR matching and compares entries with the host name as text; {host} is a name (it resolves to {resolved})"
            ),
            _ => format!(
                "a CIDR or IP entry only matches URLs whose host is a literal IP address for {{clients}}; {host} is a name (it resolves to {resolved})"
            ),
        },
        Intent::IpForIp => match (client, target.host()) {
            (HttpClientKind::Botocore, _) => "{clients} has no CIDR support (urllib's proxy_bypass_environment compares entries as text)".to_owned(),
            (HttpClientKind::Curl, Some(Host::Ipv6(_))) => "{clients} compares IPv6 hosts as text (url.c strips the brackets before Curl_check_noproxy), so CIDR entries do not match them".to_owned(),
            _ => format!("for {{clients}}, '{entry}' does not match {host}"),
        },
        Intent::Domain => match (client, target.host()) {
            (HttpClientKind::AwsSdkRust, Some(Host::Domain(d))) if d.ends_with('.') => format!(
                "{{clients}} (hyper-util) does not ignore the trailing dot of {host}"
            ),
            _ => format!("for {{clients}}, '{entry}' does not match {host}"),
        },
    }
}

/// Entries of NO_PROXY that look meant to cover `target` but do not for some
/// clients that would otherwise proxy it: a CIDR or IP entry that contains one
/// of `resolved` (the addresses the target's host resolves to) while the host
/// is a name; a `*.suffix` entry whose suffix matches the host; an entry with
/// a port that stops the match; a lone `*` inside a list; an entry in a
/// variable the client does not read; etc. Only entries that would have
/// mattered (the client proxies the target) are reported.
pub fn ineffective_entries(
    env: &ProxyEnv,
    target: &Url,
    resolved: &[IpAddr],
) -> Vec<IneffectiveEntry> {
    let Some(host) = target.host().map(|h| h.to_owned()) else {
        return Vec::new();
    };
    let proxied: Vec<HttpClientKind> = HttpClientKind::ALL
        .into_iter()
        .filter(|c| decide(*c, env, target).proxy.is_some())
        .collect();
    if proxied.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for variable in ["NO_PROXY", "no_proxy"] {
        let Some(value) = env.get(variable) else {
            continue;
        };
        let mut seen: Vec<&str> = Vec::new();
        for entry in lenient_entries(value) {
            if seen.contains(&entry) {
                continue;
            }
            seen.push(entry);
            let Some(intent) = entry_intent(entry, &host, resolved) else {
                continue;
            };
            // Group clients by the reason they share, keeping client order.
            let mut groups: Vec<(String, Vec<HttpClientKind>)> = Vec::new();
            for client in &proxied {
                let reason = ineffective_reason(*client, env, variable, entry, &intent, target);
                match groups.iter_mut().find(|(r, _)| *r == reason) {
                    Some((_, clients)) => clients.push(*client),
                    None => groups.push((reason, vec![*client])),
                }
            }
            let reason = groups
                .iter()
                .map(|(template, clients)| {
                    let labels: Vec<String> =
                        clients.iter().map(|c| c.label().to_owned()).collect();
                    template.replace("{clients}", &join_labels(&labels))
                })
                .collect::<Vec<_>>()
                .join("; ");
            out.push(IneffectiveEntry {
                entry: entry.to_owned(),
                variable: variable.to_owned(),
                clients: proxied.clone(),
                reason,
            });
        }
    }
    out
}

/// Pairs (UPPER, lower) of variables both set to different values (an empty
/// value counts: the AWS SDK for Rust lets an empty uppercase variable hide the
/// lowercase one).
pub fn case_conflicts(env: &ProxyEnv) -> Vec<(String, String)> {
    [
        ("HTTP_PROXY", "http_proxy"),
        ("HTTPS_PROXY", "https_proxy"),
        ("ALL_PROXY", "all_proxy"),
        ("NO_PROXY", "no_proxy"),
    ]
    .into_iter()
    .filter_map(|(upper, lower)| match (env.get(upper), env.get(lower)) {
        (Some(u), Some(l)) if u != l => Some((upper.to_owned(), lower.to_owned())),
        _ => None,
    })
    .collect()
}

/// A host of `recommended_no_proxy`, normalised.
pub(super) fn normalise_host(raw: &str) -> Option<Host<String>> {
    let t = raw.trim();
    let bare = t
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(t);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Some(match ip {
            IpAddr::V4(a) => Host::Ipv4(a),
            IpAddr::V6(a) => Host::Ipv6(a),
        });
    }
    let d = t.trim_end_matches('.').to_ascii_lowercase();
    (!d.is_empty()).then_some(Host::Domain(d))
}

/// True when a NO_PROXY value (set as both NO_PROXY and no_proxy) makes
/// every client bypass `host`.
fn bypassed_by_all(value: &str, host: &Host<String>) -> bool {
    if value.is_empty() {
        return false;
    }
    let netloc = host_display(host);
    sdk_no_proxy_match(value, host).is_some()
        && curl_no_proxy_match(value, host, CurlVersion::default()).is_some()
        && botocore_bypass(value, &netloc).is_some()
}

/// The NO_PROXY value to recommend, to be exported as **both** NO_PROXY and
/// no_proxy: the existing entries (no_proxy's, then NO_PROXY's,
/// deduplicated, order kept) followed by the fewest entries that make every
/// one of `hosts` bypass the proxy under all three clients.
///
/// All three clients treat an entry `x.y` as covering `x.y` and every
/// subdomain (hyper-util `DomainMatcher::contains`, curl's tail match,
/// urllib's `'.' + name` suffix), so a host already covered by another host
/// of the list adds nothing, and no leading-dot form is needed. IPv4 hosts
/// are added as the literal address. IPv6 hosts need two spellings: `::1`
/// for hyper-util (IP entry) and curl (text), and `[::1]` for botocore,
/// which compares the bracketed netloc.
pub fn recommended_no_proxy(env: &ProxyEnv, hosts: &[&str]) -> String {
    let mut entries: Vec<String> = Vec::new();
    for variable in ["no_proxy", "NO_PROXY"] {
        if let Some(value) = env.get(variable) {
            for entry in lenient_entries(value) {
                if !entries.iter().any(|e| e == entry) {
                    entries.push(entry.to_owned());
                }
            }
        }
    }
    let mut wanted: Vec<Host<String>> = Vec::new();
    for raw in hosts {
        let Some(host) = normalise_host(raw) else {
            continue;
        };
        // A name written with a trailing dot (an endpoint URL's) is what the clients compare,
        // and hyper-util and urllib compare it as written: its dotted form is needed too.
        let dotted = match &host {
            Host::Domain(_) => {
                let t = raw.trim().to_ascii_lowercase();
                t.ends_with('.').then_some(Host::Domain(t))
            }
            _ => None,
        };
        // botocore checks its client's endpoint, not the request host.
        let endpoint = match &host {
            Host::Domain(d) => botocore_endpoint_host(d).map(Host::Domain),
            _ => None,
        };
        for h in std::iter::once(host).chain(dotted).chain(endpoint) {
            if !wanted.contains(&h) {
                wanted.push(h);
            }
        }
    }
    // Appending entries can change how the existing ones read (a lone '*'
    // stops being lone for curl and botocore), so repeat until stable.
    for _ in 0..=wanted.len() {
        let value = entries.join(",");
        let needed: Vec<&Host<String>> = wanted
            .iter()
            .filter(|host| !bypassed_by_all(&value, host))
            .collect();
        if needed.is_empty() {
            break;
        }
        for host in &needed {
            let additions: Vec<String> = match host {
                Host::Domain(d) => {
                    let covered_by_other = needed.iter().any(|other| match other {
                        Host::Domain(o) => o != d && d.ends_with(&format!(".{o}")),
                        _ => false,
                    });
                    if covered_by_other {
                        Vec::new()
                    } else {
                        vec![d.clone()]
                    }
                }
                Host::Ipv4(a) => vec![a.to_string()],
                Host::Ipv6(a) => vec![a.to_string(), format!("[{a}]")],
            };
            for addition in additions {
                if !entries.contains(&addition) {
                    entries.push(addition);
                }
            }
        }
    }
    entries.join(",")
}
