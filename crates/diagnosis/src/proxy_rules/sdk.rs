//! AWS SDK for Rust (aws-smithy-http-client 1.5.2 + hyper-util 0.1.21): proxy URL parsing,
//! NO_PROXY matching and the decision.

use std::net::IpAddr;

use ipnet::IpNet;
use url::{Host, Url};
use vpce_probe_report::proxy::HttpClientKind;

use super::{
    Outcome, ParsedProxy, ProxyEnv, REQUEST_METHOD, choice, host_display, redact_proxy_url,
    split_host_port,
};

// ---------------------------------------------------------------------------
// AWS SDK for Rust: aws-smithy-http-client 1.5.2 + hyper-util 0.1.21
// ---------------------------------------------------------------------------

/// Bytes the `http` crate accepts in a URI (`http/src/uri/mod.rs::URI_CHARS`).
fn http_uri_char(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'&' | b'\'' | b'('..=b';' | b'=' | b'?' | b'@'
        | b'A'..=b'Z' | b'[' | b']' | b'_' | b'a'..=b'z' | b'~')
}

/// Port of `http/src/uri/authority.rs::validate_authority_bytes`: the end of
/// the authority, or `None` if it is invalid.
fn http_validate_authority(s: &[u8]) -> Option<usize> {
    if s.is_empty() {
        return None;
    }
    let mut colons = 0u32;
    let mut start_bracket = false;
    let mut end_bracket = false;
    let mut has_percent = false;
    let mut end = s.len();
    let mut at_sign = s.len();
    for (i, &b) in s.iter().enumerate() {
        if matches!(b, b'/' | b'?' | b'#') {
            end = i;
            break;
        }
        if !http_uri_char(b) {
            if b == b'%' {
                has_percent = true;
            } else {
                return None;
            }
        } else if b == b':' {
            if colons >= 8 {
                return None;
            }
            colons += 1;
        } else if b == b'[' {
            if has_percent || start_bracket {
                return None;
            }
            start_bracket = true;
        } else if b == b']' {
            if !start_bracket || end_bracket {
                return None;
            }
            end_bracket = true;
            colons = 0;
            has_percent = false;
        } else if b == b'@' {
            at_sign = i;
            colons = 0;
            has_percent = false;
        }
    }
    if start_bracket != end_bracket || colons > 1 || has_percent {
        return None;
    }
    if end > 0 && at_sign == end - 1 {
        return None;
    }
    Some(end)
}

/// Models `hyper_util::client::proxy::matcher::parse_env_uri` (value →
/// `http::Uri` → scheme filter → authority without userinfo) plus the port the
/// connector then uses (hyper `HttpConnector`: 80 for http, 443 for https).
fn sdk_parse_proxy(value: &str) -> Option<ParsedProxy> {
    let b = value.as_bytes();
    // http::Uri::from_shared: empty, too long, "/" or "*" alone, or a path
    // ("/...") are not usable (no authority).
    if b.is_empty() || b.len() > usize::from(u16::MAX - 1) || b[0] == b'/' || value == "*" {
        return None;
    }
    // http/src/uri/scheme.rs::Scheme2::parse.
    let (scheme, rest): (Option<&str>, &str) =
        if b.len() >= 7 && b[..7].eq_ignore_ascii_case(b"http://") {
            (Some("http"), &value[7..])
        } else if b.len() >= 8 && b[..8].eq_ignore_ascii_case(b"https://") {
            (Some("https"), &value[8..])
        } else {
            let mut found = None;
            if b.len() > 3 {
                for (i, &c) in b.iter().enumerate() {
                    if c == b':' {
                        if b.len() < i + 3 || &b[i + 1..i + 3] != b"//" {
                            break;
                        }
                        if i > 64 {
                            return None;
                        }
                        found = Some(i);
                        break;
                    }
                    if !(c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.' | b'~')) {
                        break;
                    }
                }
            }
            match found {
                Some(i) => (Some(&value[..i]), &value[i + 3..]),
                None => (None, value),
            }
        };
    // http/src/uri/mod.rs::parse_full.
    let end = http_validate_authority(rest.as_bytes())?;
    match scheme {
        None if end != rest.len() => return None,
        Some(_) if end == 0 => return None,
        // PathAndQuery::from_shared: approximated as "no blanks or controls".
        Some(_) if rest[end..].bytes().any(|c| c <= b' ' || c == 0x7f) => return None,
        _ => {}
    }
    let scheme = match scheme {
        None => "http",
        Some("http") => "http",
        Some("https") => "https",
        Some(s @ ("socks4" | "socks4a" | "socks5" | "socks5h")) => s,
        Some(_) => return None,
    };
    let authority = &rest[..end];
    // parse_env_uri splits userinfo at the first '@'; the rest must be a
    // complete authority for `Uri::builder().authority(..)`.
    let host_port = authority.split_once('@').map_or(authority, |(_, hp)| hp);
    if http_validate_authority(host_port.as_bytes())? != host_port.len() {
        return None;
    }
    // http::uri::Authority::host / port: host after the last '@', port after the last ':'.
    let host_part = host_port.rsplit('@').next().unwrap_or(host_port);
    let (host, _) = split_host_port(host_part);
    let port = host_port
        .rfind(':')
        .and_then(|i| host_port[i + 1..].parse::<u16>().ok());
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        _ => 1080,
    };
    Some(ParsedProxy {
        scheme: scheme.to_owned(),
        host: host.to_owned(),
        port: port.unwrap_or(default_port),
    })
}

/// Port of hyper-util `DomainMatcher::contains` for one entry.
fn sdk_domain_entry_matches(d: &str, domain: &str) -> bool {
    let domain_len = domain.len();
    if d.eq_ignore_ascii_case(domain)
        || d.strip_prefix('.')
            .is_some_and(|s| s.eq_ignore_ascii_case(domain))
    {
        return true;
    }
    if let Some(tail) = domain.get(domain_len.saturating_sub(d.len())..)
        && tail.eq_ignore_ascii_case(d)
    {
        if d.starts_with('.') {
            return true;
        }
        return domain_len
            .checked_sub(d.len() + 1)
            .and_then(|i| domain.as_bytes().get(i))
            == Some(&b'.');
    }
    d == "*"
}

/// Port of hyper-util `NoProxy::from_string` + `NoProxy::contains`; returns
/// the matching entry (trimmed, as hyper-util stores it).
pub(super) fn sdk_no_proxy_match(list: &str, host: &Host<String>) -> Option<String> {
    let ip = match host {
        Host::Domain(d) => {
            // `NoProxy::contains` parses the host as an IP first; a domain
            // that is an IP literal cannot come out of url::Url, but be safe.
            d.parse::<IpAddr>().ok()
        }
        Host::Ipv4(a) => Some(IpAddr::V4(*a)),
        Host::Ipv6(a) => Some(IpAddr::V6(*a)),
    };
    for part in list.split(',').map(str::trim) {
        let as_ip = if let Ok(net) = part.parse::<IpNet>() {
            Some(SdkIpRule::Net(net))
        } else if let Ok(addr) = part.parse::<IpAddr>() {
            Some(SdkIpRule::Addr(addr))
        } else {
            None
        };
        match (ip, as_ip) {
            (Some(ip), Some(SdkIpRule::Net(net))) if net.contains(&ip) => {
                return Some(part.to_owned());
            }
            (Some(ip), Some(SdkIpRule::Addr(addr))) if addr == ip => return Some(part.to_owned()),
            (None, None) if !part.is_empty() => {
                if let Host::Domain(d) = host
                    && sdk_domain_entry_matches(part, d)
                {
                    return Some(part.to_owned());
                }
            }
            _ => {}
        }
    }
    None
}

enum SdkIpRule {
    Net(IpNet),
    Addr(IpAddr),
}

const SDK_SOCKS_NOTE: &str = ", but aws-smithy-http-client reaches the proxy through hyper-rustls, which refuses non-HTTP schemes, so every request fails with 'unsupported scheme'";

pub(super) fn decide_sdk(env: &ProxyEnv, target: &Url) -> Outcome {
    let label = HttpClientKind::AwsSdkRust.label();
    let Some(host) = target.host().map(|h| h.to_owned()) else {
        return Outcome::direct(format!(
            "The {label} has no host to match in this URL, so hyper-util's Matcher::intercept returns no proxy."
        ));
    };
    let scheme = target.scheme();
    if scheme != "http" && scheme != "https" {
        return Outcome::direct(format!(
            "The {label} only proxies http and https URLs (hyper-util Matcher::intercept), and this URL is {scheme}."
        ));
    }
    if env.is_set(REQUEST_METHOD) {
        return Outcome::direct(format!(
            "The {label} connects directly because REQUEST_METHOD is set, and hyper-util's Matcher::from_env then ignores every proxy variable (CGI protection)."
        ));
    }
    let host_text = host_display(&host);
    let (upper, lower) = if scheme == "http" {
        ("HTTP_PROXY", "http_proxy")
    } else {
        ("HTTPS_PROXY", "https_proxy")
    };
    let mut notes: Vec<String> = Vec::new();
    let mut pick = |names: [&'static str; 2]| -> Option<(&'static str, String, ParsedProxy)> {
        let (name, value) = env.first_set(&names)?;
        if name == names[0]
            && let Some(other) = env.get(names[1])
            && other != value
        {
            notes.push(format!("{} differs and is ignored", names[1]));
        }
        match sdk_parse_proxy(value) {
            Some(parsed) => Some((name, value.to_owned(), parsed)),
            None => {
                if value.is_empty() {
                    notes.push(format!("{name} is set but empty"));
                } else {
                    notes.push(format!("{name} is not a proxy URL hyper-util accepts"));
                }
                None
            }
        }
    };
    let chosen = pick([upper, lower]).or_else(|| pick(["ALL_PROXY", "all_proxy"]));
    let notes_text = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    };
    let Some((variable, raw, parsed)) = chosen else {
        return Outcome::direct(format!(
            "The {label} connects directly because none of {upper}, {lower}, ALL_PROXY, all_proxy holds a usable proxy URL{notes_text}; hyper-util reads the uppercase name first."
        ));
    };
    let no = env.first_set(&["NO_PROXY", "no_proxy"]);
    if let Some((no_name, no_value)) = no
        && let Some(entry) = sdk_no_proxy_match(no_value, &host)
    {
        return Outcome::bypassed(
            entry.clone(),
            format!(
                "The {label} connects directly because {no_name} entry '{entry}' matches {host_text} (hyper-util NoProxy: CIDR/IP entries for IP hosts, the name and its subdomains for names), overriding {variable}."
            ),
        );
    }
    let no_text = match no {
        Some((no_name, _)) => format!("no {no_name} entry matches {host_text}"),
        None => "neither NO_PROXY nor no_proxy is set".to_owned(),
    };
    let fails = parsed.scheme.starts_with("socks");
    let socks = if fails { SDK_SOCKS_NOTE } else { "" };
    let explanation = format!(
        "The {label} sends {scheme} requests to {} from {variable}{notes_text} because hyper-util reads {upper} before {lower}, then ALL_PROXY/all_proxy, and {no_text}{socks}.",
        redact_proxy_url(&raw)
    );
    Outcome {
        proxy: Some(choice(variable, &raw, parsed)),
        bypass_entry: None,
        fails,
        explanation,
    }
}
