//! botocore (botocore/utils.py + urllib.request + botocore/httpsession.py): the client's
//! endpoint URL, the proxies in environment order, NO_PROXY bypass and the decision.

use std::collections::BTreeMap;

use url::{Host, Url};
use vpce_probe_report::proxy::HttpClientKind;

use super::{
    Outcome, ParsedProxy, ProxyEnv, REQUEST_METHOD, choice, redact_proxy_url, split_host_port,
};

/// The endpoint URL of the botocore client that sends requests to
/// `request`: botocore decides NO_PROXY once, when it builds the client
/// (`endpoint.py` `EndpointCreator.create_endpoint` →
/// `_get_proxies(endpoint_url)` → `utils.py` `get_environ_proxies` →
/// `should_bypass_proxies(url)`), and every request then uses the proxies
/// chosen for that URL (`httpsession.py`
/// `ProxyConfiguration.proxy_url_for`). With botocore 1.44 the endpoint of
/// an S3 client is `s3.<region>.<suffix>` (`s3-fips.`, `s3.dualstack.`) while
/// requests go to `bucket.s3.<region>...`, `ap-acct.s3-accesspoint.<region>...`
/// or `bucket--az--x-s3.s3express-<az>.<region>...`; a DynamoDB client's is
/// `dynamodb.<region>...` while account-based requests go to
/// `<account>.ddb.<region>...`. Under a custom endpoint URL the endpoint is
/// that URL, whose host is found among `known`.
pub fn botocore_endpoint_url(request: &Url, known: &[Url]) -> Url {
    // The endpoint URL has no request path: a path-style request (`/bucket`, what botocore
    // sends under a custom endpoint URL) is checked as its endpoint's root.
    let root = || {
        let mut endpoint = request.clone();
        endpoint.set_path("/");
        endpoint.set_query(None);
        endpoint.set_fragment(None);
        endpoint
    };
    let Some(Host::Domain(host)) = request.host() else {
        // An address (IMDS): not an AWS service endpoint, decided as the request.
        return request.clone();
    };
    let host = host.to_ascii_lowercase();
    let from_known = known
        .iter()
        .filter_map(|k| k.host_str().map(str::to_ascii_lowercase))
        .filter(|k| !k.is_empty() && host.ends_with(&format!(".{k}")))
        // The one-label prefix: `bucket.` + the endpoint.
        .find(|k| !host[..host.len() - k.len() - 1].contains('.'));
    let Some(endpoint_host) = from_known.or_else(|| botocore_endpoint_host(&host)) else {
        return root();
    };
    let mut endpoint = root();
    if endpoint.set_host(Some(&endpoint_host)).is_err() {
        return root();
    }
    endpoint
}

/// The service endpoint for a request host with one label (bucket, access
/// point, account) in front of an S3 or DynamoDB service label.
pub(super) fn botocore_endpoint_host(host: &str) -> Option<String> {
    let (first, rest) = host.split_once('.')?;
    let (service, tail) = rest.split_once('.')?;
    if first.is_empty() || !tail.contains('.') {
        return None;
    }
    let endpoint_service = match service {
        "s3" | "s3-accesspoint" => "s3",
        "s3-fips" | "s3-accesspoint-fips" => "s3-fips",
        s if s.starts_with("s3express-") && !s.starts_with("s3express-control") => {
            if s.starts_with("s3express-fips-") {
                "s3-fips"
            } else {
                "s3"
            }
        }
        "ddb" if first.len() == 12 && first.bytes().all(|b| b.is_ascii_digit()) => "dynamodb",
        "ddb-fips" if first.len() == 12 && first.bytes().all(|b| b.is_ascii_digit()) => {
            "dynamodb-fips"
        }
        _ => return None,
    };
    Some(format!("{endpoint_service}.{tail}"))
}

// ---------------------------------------------------------------------------
// botocore: botocore/utils.py + urllib.request + botocore/httpsession.py
// ---------------------------------------------------------------------------

/// `urllib.request.getproxies_environment`: scheme → (variable, value).
pub(super) fn botocore_proxies(env: &ProxyEnv) -> BTreeMap<String, (String, String)> {
    let mut proxies = BTreeMap::new();
    // Pass 1: any capitalisation, non-empty values only.
    for (name, value) in env.vars() {
        if name == REQUEST_METHOD {
            continue;
        }
        let lower = name.to_ascii_lowercase();
        if !value.is_empty()
            && let Some(key) = lower.strip_suffix("_proxy")
        {
            proxies.insert(key.to_owned(), (name.clone(), value.clone()));
        }
    }
    // CVE-2016-1000110: drop a (non-lowercase) HTTP_PROXY under CGI.
    if env.is_set(REQUEST_METHOD) {
        proxies.remove("http");
    }
    // Pass 2: names ending in a lowercase "_proxy" win, and empty ones remove.
    for (name, value) in env.vars() {
        if name.ends_with("_proxy") {
            let lower = name.to_ascii_lowercase();
            if let Some(key) = lower.strip_suffix("_proxy") {
                if value.is_empty() {
                    proxies.remove(key);
                } else {
                    proxies.insert(key.to_owned(), (name.clone(), value.clone()));
                }
            }
        }
    }
    proxies
}

/// Python `str.strip()` with no argument.
pub(super) fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c))
}

/// `urllib.parse._splitport`.
fn py_splitport(host: &str) -> (&str, Option<&str>) {
    match host.rfind(':') {
        Some(colon) if host[colon + 1..].bytes().all(|c| c.is_ascii_digit()) => {
            let port = &host[colon + 1..];
            (
                &host[..colon],
                if port.is_empty() { None } else { Some(port) },
            )
        }
        _ => (host, None),
    }
}

/// `urlparse(url).netloc`, rebuilt from the parsed URL (url::Url drops a
/// port equal to the scheme's default, which Python would keep).
pub(super) fn python_netloc(target: &Url) -> String {
    let mut netloc = String::new();
    if !target.username().is_empty() || target.password().is_some() {
        netloc.push_str(target.username());
        if let Some(password) = target.password() {
            netloc.push(':');
            netloc.push_str(password);
        }
        netloc.push('@');
    }
    netloc.push_str(target.host_str().unwrap_or_default());
    if let Some(port) = target.port() {
        netloc.push(':');
        netloc.push_str(&port.to_string());
    }
    netloc
}

/// `urlparse(url).netloc` of the endpoint URL as it was configured, when `endpoint` is one of
/// `configured` (an `endpoint_url` setting): botocore keeps a port written there even when it
/// is the scheme's default (`https://host:443`), which url::Url forgets, and NO_PROXY is then
/// checked against `host:443`.
pub(super) fn configured_netloc(endpoint: &Url, configured: &[String]) -> Option<String> {
    configured.iter().find_map(|raw| {
        let parsed = Url::parse(raw).ok()?;
        let same = parsed.scheme() == endpoint.scheme()
            && parsed.host_str() == endpoint.host_str()
            && parsed.port_or_known_default() == endpoint.port_or_known_default();
        if !same {
            return None;
        }
        let rest = raw.split_once("://")?.1;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        // urlparse keeps the netloc's case; NO_PROXY matching lowercases it.
        Some(rest[..end].to_owned())
    })
}

/// `urllib.request.proxy_bypass_environment(netloc)`: the matching entry.
pub(super) fn botocore_bypass(no_proxy: &str, netloc: &str) -> Option<String> {
    if no_proxy == "*" {
        return Some("*".to_owned());
    }
    let host = netloc.to_lowercase();
    let (host_only, _) = py_splitport(&host);
    for raw in no_proxy.split(',') {
        let entry = py_strip(raw);
        if entry.is_empty() {
            continue;
        }
        let name = entry.trim_start_matches('.').to_lowercase();
        if host_only == name || host == name {
            return Some(entry.to_owned());
        }
        let dotted = format!(".{name}");
        if host_only.ends_with(&dotted) || host.ends_with(&dotted) {
            return Some(entry.to_owned());
        }
    }
    None
}

/// `ProxyConfiguration._fix_proxy_url`.
fn botocore_fix_proxy_url(value: &str) -> String {
    if value.starts_with("http:") || value.starts_with("https:") {
        value.to_owned()
    } else if value.starts_with("//") {
        format!("http:{value}")
    } else {
        format!("http://{value}")
    }
}

/// urllib3 `parse_url` + `ProxyManager` on the fixed proxy URL.
fn botocore_parse_proxy(fixed: &str) -> (ParsedProxy, Option<String>) {
    let (scheme, rest) = match fixed.split_once(':') {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => ("http".to_owned(), fixed),
    };
    let default_port = if scheme == "https" { 443 } else { 80 };
    let Some(after) = rest.strip_prefix("//") else {
        return (
            ParsedProxy {
                scheme,
                host: String::new(),
                port: default_port,
            },
            Some("urllib3 finds no host in the proxy URL".to_owned()),
        );
    };
    let end = after.find(['/', '\\', '?', '#']).unwrap_or(after.len());
    let authority = &after[..end];
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port_text) = split_host_port(host_port);
    let mut failure = None;
    let port = match port_text {
        None | Some("") => None,
        Some(p) => match p.parse::<u16>() {
            Ok(port) if p.bytes().all(|c| c.is_ascii_digit()) => Some(port),
            _ => {
                failure = Some("urllib3 cannot parse the proxy port".to_owned());
                None
            }
        },
    };
    if host.is_empty() {
        failure = Some("urllib3 finds no host in the proxy URL".to_owned());
    } else if host.bytes().any(|c| c <= b' ' || c == 0x7f) {
        // urllib3 parse_url: "Host '...' contains invalid character".
        failure = Some("urllib3 refuses the proxy URL (a blank or control character)".to_owned());
    }
    (
        ParsedProxy {
            scheme,
            host: host.to_lowercase(),
            port: port.unwrap_or(default_port),
        },
        failure,
    )
}

/// The variables urllib reads for `key` ("https", "no"), in environment
/// order, non-empty only.
fn botocore_spellings<'a>(env: &'a ProxyEnv, key: &str) -> Vec<&'a str> {
    env.vars()
        .iter()
        .filter(|(n, v)| {
            !v.is_empty()
                && n.to_ascii_lowercase().strip_suffix("_proxy") == Some(key)
                && n.as_str() != REQUEST_METHOD
        })
        .map(|(n, _)| n.as_str())
        .collect()
}

/// How urllib chose among several spellings, or "" when there was one.
fn botocore_order_note(env: &ProxyEnv, key: &str, chosen: &str) -> String {
    let names = botocore_spellings(env, key);
    if names.len() < 2 {
        return String::new();
    }
    format!(
        " (getproxies_environment walks the environment in order, {}: a name ending in lower-case '_proxy' wins over the others, and among those alike the later one, so {chosen})",
        names.join(", ")
    )
}

/// The direct connection when urllib has no proxy for `scheme`, with the reasons a
/// variable that looks set does not count.
fn botocore_no_scheme_proxy(env: &ProxyEnv, scheme: &str, label: &str) -> Outcome {
    let mut notes = Vec::new();
    if scheme == "http"
        && env.is_set(REQUEST_METHOD)
        && env.vars().iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("http_proxy") && !n.ends_with("_proxy") && !v.is_empty()
        })
    {
        notes.push(
            "REQUEST_METHOD is set, so urllib drops the uppercase HTTP_PROXY (CGI rule)".to_owned(),
        );
    }
    let specific = format!("{scheme}_proxy");
    if env.get(&specific) == Some("")
        && env.vars().iter().any(|(n, v)| {
            n.eq_ignore_ascii_case(&specific) && n.as_str() != specific && !v.is_empty()
        })
    {
        notes.push(format!(
            "{specific} is set but empty, which also cancels the uppercase variable"
        ));
    }
    if env
        .vars()
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("all_proxy") && !v.is_empty())
    {
        notes.push("botocore ignores ALL_PROXY/all_proxy".to_owned());
    }
    let notes_text = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    };
    Outcome::direct(format!(
        "{label} connects directly because urllib's getproxies_environment has no '{scheme}' proxy: neither {specific} nor {} is set to a non-empty value{notes_text}.",
        specific.to_ascii_uppercase()
    ))
}

/// `target` is the request URL (its scheme picks the proxy); `endpoint` is
/// the client's endpoint URL, the one NO_PROXY is checked for, whose netloc is
/// `netloc` (as configured, see [`configured_netloc`]).
pub(super) fn decide_botocore(
    env: &ProxyEnv,
    target: &Url,
    endpoint: &Url,
    netloc: &str,
) -> Outcome {
    let label = HttpClientKind::Botocore.label();
    if target.host().is_none() {
        return Outcome::direct(format!(
            "{label} has no host in this URL and uses no proxy."
        ));
    }
    let scheme = target.scheme();
    if scheme != "http" && scheme != "https" {
        return Outcome::direct(format!(
            "{label} only looks up proxies for http and https URLs, and this URL is {scheme}."
        ));
    }
    let proxies = botocore_proxies(env);
    let Some((variable, raw)) = proxies.get(scheme).cloned() else {
        return botocore_no_scheme_proxy(env, scheme, label);
    };
    let host_text = endpoint.host_str().unwrap_or_default().to_owned();
    // The request host only differs for a bucket, access point or account name.
    let checked_note = if endpoint.host_str() != target.host_str() {
        format!(
            " (botocore checks NO_PROXY once, for its client's endpoint URL {}, not for {}: endpoint.py _get_proxies -> utils.py get_environ_proxies)",
            redact_proxy_url(endpoint.as_str()),
            target.host_str().unwrap_or_default()
        )
    } else {
        String::new()
    };
    let no = proxies.get("no").cloned();
    if let Some((no_name, no_value)) = &no
        && let Some(entry) = botocore_bypass(no_value, netloc)
    {
        let rule = if no_value == "*" {
            "is exactly '*'".to_owned()
        } else {
            format!(
                "entry '{entry}' matches {host_text} (urllib proxy_bypass_environment: equal or a '.'-suffix, as text)"
            )
        };
        return Outcome::bypassed(
            entry,
            format!(
                "{label} connects directly because {no_name} {rule}{}{checked_note}, overriding {variable}.",
                botocore_order_note(env, "no", no_name)
            ),
        );
    }
    let no_text = match &no {
        Some((no_name, _)) => format!(
            "no {no_name} entry matches {host_text}{}{checked_note}",
            botocore_order_note(env, "no", no_name)
        ),
        None => "neither no_proxy nor NO_PROXY is set".to_owned(),
    };
    let fixed = botocore_fix_proxy_url(&raw);
    let (parsed, failure) = botocore_parse_proxy(&fixed);
    let fixed_note = if fixed != raw {
        format!(" (read as {})", redact_proxy_url(&fixed))
    } else {
        String::new()
    };
    // _fix_proxy_url only knows "http:"/"https:" (case sensitive): any other
    // scheme becomes the host name, e.g. http://socks5://p:1080 -> host "socks5".
    let misread = fixed != raw
        && raw
            .find("://")
            .is_some_and(|i| i > 0 && !raw[..i].contains(['/', '@']));
    let failure = failure.or_else(|| {
        misread.then(|| {
            format!(
                "botocore only recognises a lower-case http:// or https:// prefix, so it connects to a host named '{}' on port {}",
                parsed.host, parsed.port
            )
        })
    });
    let fails = failure.is_some();
    let failure_text = failure
        .map(|f| format!(", but {f}, so requests fail"))
        .unwrap_or_default();
    let explanation = format!(
        "{label} sends {scheme} requests to {}{fixed_note} from {variable} because urllib's getproxies_environment takes {scheme}_proxy, or {} when the lowercase one is unset{}, and {no_text}{failure_text}.",
        redact_proxy_url(&raw),
        scheme.to_ascii_uppercase() + "_PROXY",
        botocore_order_note(env, scheme, &variable)
    );
    Outcome {
        proxy: Some(choice(&variable, &raw, parsed)),
        bypass_entry: None,
        fails,
        explanation,
    }
}
