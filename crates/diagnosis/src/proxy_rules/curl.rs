//! curl (lib/url.c, lib/noproxy.c): the installed version, NO_PROXY tokens, `parse_proxy`
//! and the decision.

use std::net::Ipv4Addr;

use url::{Host, Url};

use super::no_proxy::lenient_entries;
use super::{
    Outcome, ParsedProxy, ProxyEnv, choice, host_display, redact_proxy_url, split_host_port,
};

/// The libcurl whose NO_PROXY rules are applied. Its rules changed in 8.9.0
/// (PR #13789, "noproxy: patterns need to be comma separated"): before, a
/// blank separated two entries like a comma (7.88 added a "space-separated
/// NOPROXY patterns are deprecated" verbose warning); since, a blank that is
/// not followed by a comma ends the list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CurlVersion {
    /// `None`: no curl answered `curl --version`, and the current rules
    /// (≥ 8.9) are assumed, since a curl installed later will be recent.
    installed: Option<(u32, u32, u32)>,
    /// True when `curl --version` was not run because no proxy variable is set: curl then
    /// connects directly whatever its version, and running it costs time (on an instance
    /// whose DNS does not answer, curl's start waits for a lookup of the host's own name).
    not_read: bool,
}

/// The first release that ends the NO_PROXY list at a blank.
const CURL_COMMA_ONLY: (u32, u32, u32) = (8, 9, 0);

impl CurlVersion {
    /// A known version, e.g. `CurlVersion::installed(7, 88, 1)`.
    pub fn installed(major: u32, minor: u32, patch: u32) -> Self {
        CurlVersion {
            installed: Some((major, minor, patch)),
            not_read: false,
        }
    }

    /// Not read: no proxy variable is set, so no rule of curl's depends on its version.
    pub fn not_needed() -> Self {
        CurlVersion {
            installed: None,
            not_read: true,
        }
    }

    /// The libcurl of a `curl --version` first line (the probe runs it: its proxy_env.rs); a
    /// line it cannot read gives the rules of [`CurlVersion::default`].
    pub fn from_version_line(line: &str) -> Self {
        CurlVersion {
            installed: parse_curl_version(line),
            not_read: false,
        }
    }

    /// The version, if curl answered.
    pub fn version(&self) -> Option<(u32, u32, u32)> {
        self.installed
    }

    /// True for curl 7.86 to 8.8, which also split NO_PROXY on blanks.
    pub(super) fn blank_separates(&self) -> bool {
        self.installed.is_some_and(|v| v < CURL_COMMA_ONLY)
    }

    /// Which curl a decision is for, e.g. "curl 7.88.1".
    pub fn describe(&self) -> String {
        match self.installed {
            Some((a, b, c)) => format!("curl {a}.{b}.{c}"),
            None if self.not_read => "curl (version not read: no proxy variable is set)".to_owned(),
            None => "curl (rules of ≥ 8.9 assumed: no curl --version answered)".to_owned(),
        }
    }
}

/// `curl 7.88.1 (x86_64-pc-linux-gnu) libcurl/7.88.1 ...`: libcurl's version
/// (which holds the proxy rules), else the tool's.
pub(super) fn parse_curl_version(line: &str) -> Option<(u32, u32, u32)> {
    let mut words = line.split_whitespace();
    if words.next() != Some("curl") {
        return None;
    }
    let tool = words.next();
    let lib = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("libcurl/"));
    let text = lib.or(tool)?;
    let mut parts = text.split(['.', '-']).map(|p| {
        p.bytes()
            .take_while(u8::is_ascii_digit)
            .fold(None::<u32>, |acc, d| {
                Some(acc.unwrap_or(0).saturating_mul(10) + u32::from(d - b'0'))
            })
    });
    let major = parts.next()??;
    let minor = parts.next()??;
    let patch = parts.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

// ---------------------------------------------------------------------------
// curl: lib/url.c + lib/noproxy.c
// ---------------------------------------------------------------------------

fn is_c_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// The tokens `Curl_check_noproxy` reads, and whether a blank not followed
/// by a comma was met: curl ≥ 8.9 stops there ("if not a comma, this ends
/// the loop"); with `blank_separates` (7.86–8.8) the next token is read, as
/// after a comma (7.88 only sets `spacesep` for the deprecation warning).
pub(super) fn curl_tokens(list: &str, blank_separates: bool) -> (Vec<&str>, bool) {
    let mut blank_sep = false;
    let b = list.as_bytes();
    let mut p = 0;
    let mut tokens = Vec::new();
    while p < b.len() {
        while p < b.len() && is_c_blank(b[p]) {
            p += 1;
        }
        let start = p;
        while p < b.len() && !is_c_blank(b[p]) && b[p] != b',' {
            p += 1;
        }
        if p > start {
            tokens.push(&list[start..p]);
        }
        while p < b.len() && is_c_blank(b[p]) {
            p += 1;
        }
        if p >= b.len() {
            break;
        }
        if b[p] != b',' {
            if !blank_separates {
                return (tokens, true);
            }
            blank_sep = true;
            continue;
        }
        while p < b.len() && b[p] == b',' {
            p += 1;
        }
    }
    (tokens, blank_sep)
}

/// C `atoi`, then cast to `unsigned int` as noproxy.c does.
fn c_atoi_unsigned(s: &str) -> u32 {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut value: i64 = 0;
    for c in digits.bytes() {
        if !c.is_ascii_digit() {
            break;
        }
        value = (value * 10 + i64::from(c - b'0')).min(i64::from(i32::MAX));
    }
    if negative {
        // (unsigned int) of a negative int is huge, which the CIDR check rejects.
        if value == 0 { 0 } else { u32::MAX }
    } else {
        u32::try_from(value).unwrap_or(u32::MAX)
    }
}

/// `Curl_cidr4_match` for one token.
fn curl_ipv4_token_matches(token: &str, addr: Ipv4Addr) -> bool {
    if token.len() >= 128 {
        return false;
    }
    let (network, bits) = match token.split_once('/') {
        Some((network, bits)) => (network, c_atoi_unsigned(bits)),
        None => (token, 0),
    };
    if bits > 32 {
        return false;
    }
    let Ok(check) = network.parse::<Ipv4Addr>() else {
        return false;
    };
    if bits != 0 && bits != 32 {
        let mask = u32::MAX << (32 - bits);
        (u32::from(addr) ^ u32::from(check)) & mask == 0
    } else {
        addr == check
    }
}

/// The TYPE_HOST branch of `Curl_check_noproxy` for one token; `name` has
/// already lost its trailing dot.
fn curl_host_token_matches(token: &str, name: &str) -> bool {
    let mut t = token.as_bytes();
    if let Some((b'.', rest)) = t.split_last() {
        t = rest;
    }
    if let Some((b'.', rest)) = t.split_first() {
        t = rest;
    }
    let n = name.as_bytes();
    if t.len() == n.len() {
        t.eq_ignore_ascii_case(n)
    } else if t.len() < n.len() {
        let cut = n.len() - t.len();
        n[cut - 1] == b'.' && n[cut..].eq_ignore_ascii_case(t)
    } else {
        false
    }
}

/// `Curl_check_noproxy(conn->host.name, no_proxy)`: the matching token.
pub(super) fn curl_no_proxy_match(
    list: &str,
    host: &Host<String>,
    curl: CurlVersion,
) -> Option<String> {
    if list.is_empty() {
        return None;
    }
    if list == "*" {
        return Some("*".to_owned());
    }
    let (tokens, _) = curl_tokens(list, curl.blank_separates());
    match host {
        Host::Ipv4(addr) => tokens
            .into_iter()
            .find(|t| curl_ipv4_token_matches(t, *addr))
            .map(str::to_owned),
        Host::Domain(_) | Host::Ipv6(_) => {
            // url.c cuts the brackets off IPv6 literals before the call, so
            // they take the TYPE_HOST path and compare as text.
            let full = match host {
                Host::Ipv6(a) => a.to_string(),
                Host::Domain(d) => d.clone(),
                Host::Ipv4(a) => a.to_string(),
            };
            if full.is_empty() {
                return None;
            }
            let name = full.strip_suffix('.').unwrap_or(&full);
            tokens
                .into_iter()
                .find(|t| curl_host_token_matches(t, name))
                .map(str::to_owned)
        }
    }
}

/// `parse_proxy` (via `curl_url_set(.., CURLU_GUESS_SCHEME |
/// CURLU_NON_SUPPORT_SCHEME)`): what curl connects to, and why the transfer
/// fails if it cannot use the value.
fn curl_parse_proxy(value: &str) -> (ParsedProxy, Option<String>) {
    let b = value.as_bytes();
    // urlapi.c Curl_is_absolute_url with guess_scheme: letters, digits, "+-."
    // then ':' followed by '/'.
    let mut i = 0;
    if b.first().is_some_and(u8::is_ascii_alphabetic) {
        while i < b.len()
            && i < 40
            && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'+' | b'-' | b'.'))
        {
            i += 1;
        }
    }
    let explicit = i > 0 && b.get(i) == Some(&b':') && b.get(i + 1) == Some(&b'/');
    let (scheme, rest, guessed) = if explicit {
        let rest = &value[i + 1..];
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        (value[..i].to_ascii_lowercase(), rest, false)
    } else {
        (String::new(), value, true)
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port_text) = split_host_port(host_port);
    let scheme = if guessed {
        // urlapi.c guess_scheme: by host name prefix.
        let lower = host.to_ascii_lowercase();
        ["ftp", "dict", "ldap", "imap", "smtp", "pop3"]
            .into_iter()
            .find(|p| lower.starts_with(&format!("{p}.")))
            .unwrap_or("http")
            .to_owned()
    } else {
        scheme
    };
    let mut failure = None;
    let port = match port_text {
        None | Some("") => None,
        Some(p) => match p.parse::<u16>() {
            Ok(port) if p.bytes().all(|c| c.is_ascii_digit()) => Some(port),
            _ => {
                // The port text is not echoed: a password holding '/' ends up here.
                failure = Some("curl refuses the proxy value (bad port number)".to_owned());
                None
            }
        },
    };
    if host.is_empty()
        || host
            .bytes()
            .any(|c| c <= b' ' || c == 0x7f || b"\"<>\\^`{|}".contains(&c))
    {
        failure = Some("curl refuses the proxy value (\"Unsupported proxy syntax\")".to_owned());
    }
    let is_https = scheme == "https";
    match scheme.as_str() {
        "http" | "https" | "socks" | "socks4" | "socks4a" | "socks5" | "socks5h" => {}
        other => {
            failure = Some(format!(
                "curl refuses the proxy scheme '{other}' (\"Unsupported proxy scheme\"){}",
                if guessed {
                    ", guessed from the host name prefix"
                } else {
                    ""
                }
            ));
        }
    }
    let default_port = if is_https { 443 } else { 1080 };
    (
        ParsedProxy {
            scheme,
            host: host.to_owned(),
            port: port.unwrap_or(default_port),
        },
        failure,
    )
}

pub(super) fn decide_curl(env: &ProxyEnv, target: &Url) -> Outcome {
    // Rules differ by version: every sentence names the curl it is about.
    let who = env.curl.describe();
    let Some(host) = target.host().map(|h| h.to_owned()) else {
        return Outcome::direct(format!(
            "{who} has no host name to check in this URL, so it uses no proxy."
        ));
    };
    let scheme = target.scheme();
    if scheme != "http" && scheme != "https" {
        return Outcome::direct(format!(
            "This model covers {who} for http and https URLs only, and this URL is {scheme}."
        ));
    }
    let host_text = host_display(&host);
    let proxy_names: &[&'static str] = if scheme == "http" {
        &["http_proxy", "all_proxy", "ALL_PROXY"]
    } else {
        &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
    };
    let http_upper_note =
        if scheme == "http" && env.get("HTTP_PROXY").is_some_and(|v| !v.is_empty()) {
            " (curl never reads the uppercase HTTP_PROXY)"
        } else {
            ""
        };
    let Some((variable, raw)) = env.first_non_empty(proxy_names) else {
        return Outcome::direct(format!(
            "{who} connects directly because none of {} is set to a non-empty value{http_upper_note}.",
            proxy_names.join(", ")
        ));
    };
    let no = env.first_non_empty(&["no_proxy", "NO_PROXY"]);
    if let Some((no_name, no_value)) = no
        && let Some(entry) = curl_no_proxy_match(no_value, &host, env.curl)
    {
        let rule = if entry == "*" && no_value == "*" {
            "a value of exactly '*' disables the proxy".to_owned()
        } else {
            format!("entry '{entry}' matches {host_text}")
        };
        // Reached only across a blank: works here, not after an upgrade to 8.9.
        let upgrade = if env.curl.blank_separates()
            && !curl_tokens(no_value, false).0.contains(&entry.as_str())
        {
            format!(
                " ({who} still splits {no_name} on blanks, with a 'space-separated NOPROXY patterns are deprecated' warning; curl ≥ 8.9 stops at the blank and would use the proxy)"
            )
        } else {
            String::new()
        };
        return Outcome::bypassed(
            entry,
            format!(
                "{who} connects directly because {no_name} ({}) {rule} in Curl_check_noproxy, overriding {variable}{upgrade}.",
                if no_name == "no_proxy" {
                    "read before NO_PROXY"
                } else {
                    "no_proxy is unset or empty"
                }
            ),
        );
    }
    let no_text = match no {
        Some((no_name, no_value)) => {
            // curl 7.86–8.8 split on blanks too; say so when that would match.
            let older = if curl_tokens(no_value, env.curl.blank_separates()).1
                && !env.curl.blank_separates()
            {
                lenient_entries(no_value)
                    .into_iter()
                    .find(|t| match &host {
                        Host::Ipv4(a) => curl_ipv4_token_matches(t, *a),
                        Host::Ipv6(a) => curl_host_token_matches(t, &a.to_string()),
                        Host::Domain(d) => curl_host_token_matches(t, d.strip_suffix('.').unwrap_or(d)),
                    })
                    .map(|t| format!(" (curl ≥ 8.9 stops reading {no_name} at a blank not followed by a comma; curl 7.86–8.8 would match '{t}' and connect directly)"))
                    .unwrap_or_default()
            } else {
                String::new()
            };
            format!("no {no_name} entry matches {host_text}{older}")
        }
        None => "neither no_proxy nor NO_PROXY is set".to_owned(),
    };
    let (parsed, failure) = curl_parse_proxy(raw);
    let order = proxy_names.join(", then ");
    let fails = failure.is_some();
    let failure_text = failure
        .map(|f| format!(", but {f}, so the transfer fails"))
        .unwrap_or_default();
    let explanation = format!(
        "{who} sends {scheme} requests to {} from {variable} because it reads {order}{http_upper_note}, and {no_text}{failure_text}.",
        redact_proxy_url(raw)
    );
    Outcome {
        proxy: Some(choice(variable, raw, parsed)),
        bypass_entry: None,
        fails,
        explanation,
    }
}
