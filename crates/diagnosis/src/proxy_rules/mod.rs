//! How three HTTP clients choose a proxy for a URL from the proxy environment
//! variables, modelled as pure functions: the probe reads the environment and
//! the installed curl's version, [`ProxyEnv::from_environment`] keeps what
//! the rules need.
//!
//! Each rule below was read from the client's source; the function that holds
//! it is named next to the code that models it.
//!
//! # AWS SDK for Rust (aws-smithy-http-client 1.5.2, hyper-util 0.1.21)
//!
//! * **Does the default client use the proxy variables?** Yes, with the
//!   behaviour version this crate selects. `aws-smithy-runtime` 1.16.2
//!   `client/http.rs::default_https_client` builds the default client with
//!   `ConnectorBuilder::set_proxy_config(Some(ProxyConfig::from_env()))` when
//!   the behaviour version is at least `v2025_08_07`, and with
//!   `ProxyConfig::disabled()` before that. `BehaviorVersion::latest()` is
//!   `v2026_01_12` (`aws-smithy-runtime-api` 1.20.0), and `aws-config` is built
//!   with `behavior-version-latest`, so env proxies are on. A client built by
//!   hand (`aws_smithy_http_client::Builder`/`ConnectorBuilder` or
//!   `pool::builder`) leaves proxies off unless `proxy_config` is set:
//!   `ConnectorBuilder::default` has `proxy_config: None`, which
//!   `build_https` turns into `ProxyConfig::disabled()`, and
//!   `pool/builder.rs` starts from `ProxyConfig::disabled()`.
//! * **IMDS**: `aws-config` 1.13.0 `imds/client.rs` uses the `ProviderConfig`'s
//!   HTTP client if one was given. Otherwise the operation's default plugins
//!   (`aws-smithy-runtime` `client/defaults.rs::default_plugins` →
//!   `default_http_client_plugin_v2`) build the same default client with the
//!   same behaviour version. So `http://169.254.169.254/...` goes through
//!   `HTTP_PROXY`/`http_proxy` unless NO_PROXY covers it.
//! * `ProxyConfig::from_env` → `hyper_util::client::proxy::matcher::Matcher::from_env`
//!   (`matcher.rs`, `Builder::from_env` and `Builder::build`):
//!   - `get_first_env(["HTTP_PROXY", "http_proxy"])` and the same for HTTPS,
//!     ALL and NO: **UPPERCASE wins**, and a variable that is set but empty
//!     still counts (`std::env::var` returns `Ok("")`). An empty
//!     `HTTPS_PROXY` therefore hides `https_proxy`, and an empty `NO_PROXY`
//!     hides `no_proxy`.
//!   - If `REQUEST_METHOD` is set (any value), `build` returns a matcher with
//!     no proxies at all (CGI protection), for http **and** https.
//!   - `http` = parsed HTTP var, else parsed ALL var; `https` likewise
//!     (`parse_env_uri(..).or(all)`): a value that does not parse falls back
//!     to ALL_PROXY.
//!   - `parse_env_uri`: the value must parse as an `http::Uri`. With no
//!     scheme, `http` is assumed, but then the whole value must be an
//!     authority (`proxy.corp:3128` works, `proxy.corp:3128/` does not).
//!     Accepted schemes are `http`, `https` (either case) and `socks4`,
//!     `socks4a`, `socks5`, `socks5h` (exact case). Anything else is dropped.
//!     Userinfo is split at the first `@`.
//!   - `Matcher::intercept`: NO_PROXY is checked first, then `http` URLs
//!     use the HTTP proxy and `https` URLs the HTTPS proxy.
//!   - `NoProxy::from_string`: split on `,`, trim each entry. Entries that
//!     parse as `IpNet` (CIDR) or `IpAddr` are IP rules, and everything else
//!     is a domain rule. `NoProxy::contains`: if the host is an IP literal,
//!     **only** the IP rules are consulted (so `*` and names never match
//!     IP hosts); otherwise `DomainMatcher::contains`: equal (ASCII case
//!     insensitive, optional leading dot), or the host ends with the entry
//!     and the entry starts with `.` or the host has a `.` before it, or
//!     the entry is `*` (a `*` anywhere in the list). `*.domain` is not a
//!     glob. An entry with a port never matches.
//!   - The connector (`client/tls/rustls_provider.rs::RustTlsConnector::call`)
//!     sends http requests to the proxy in absolute form and tunnels https
//!     with CONNECT. It reaches the proxy through `hyper_rustls::HttpsConnector`,
//!     which rejects schemes other than http/https (`unsupported scheme`), so a
//!     SOCKS proxy is selected and then every request fails. A proxy URL
//!     without a port uses 80 (http) or 443 (https), from hyper's `HttpConnector`.
//!
//! # curl (lib/url.c `detect_proxy`, `create_conn_helper_init_proxy`, `parse_proxy`; lib/noproxy.c `Curl_check_noproxy`; curl ≥ 7.86)
//!
//! * `curl_getenv` returns NULL for empty values, so **empty counts as unset**.
//! * NO_PROXY: `no_proxy`, then `NO_PROXY`. It is checked before any
//!   proxy variable.
//! * http URLs: `http_proxy` only. The uppercase `HTTP_PROXY` is never read
//!   (the httpoxy note in `detect_proxy`). https URLs: `https_proxy`, then
//!   `HTTPS_PROXY`. Then `all_proxy`, then `ALL_PROXY`.
//! * `Curl_check_noproxy`: if the whole value is exactly `*`, everything
//!   bypasses. Otherwise tokens are separated by commas, with blanks
//!   allowed around them. Since curl 8.9.0 (PR #13789, "noproxy: patterns
//!   need to be comma separated"), a blank that is not followed by a comma
//!   ends the list. curl 7.86 to 8.8 also split on blanks, and 7.88 added a
//!   "space-separated NOPROXY patterns are deprecated" verbose warning
//!   (PR #10215). The installed curl's rules are applied
//!   (`curl --version`, read by the probe; ≥ 8.9 when there is no curl),
//!   and each decision names the version. Checked against curl 7.88.1 by
//!   tests/proxy_clients.rs. For a name host, one trailing dot is dropped from host and token and one leading dot
//!   from the token, and the host matches if it equals the token or ends
//!   with `.` + token (ASCII case insensitive). `*.domain` is therefore not a
//!   glob, and an entry with a port never matches. IPv4 hosts only match
//!   IPv4 tokens, exactly or by CIDR (`Curl_cidr4_match`). IPv6 hosts reach
//!   `Curl_check_noproxy` without brackets (`parseurlandfillconn` cuts them
//!   off), so they take the name path and are compared as text.
//! * `parse_proxy`: no scheme means a guessed one (`CURLU_GUESS_SCHEME`):
//!   `http`, or `ftp`/`dict`/`ldap`/`imap`/`smtp`/`pop3` for hosts with that
//!   prefix, which are then refused. Accepted: `http`, `https`, `socks4`,
//!   `socks`, `socks4a`, `socks5`, `socks5h`. Any other scheme, or a value that
//!   does not parse, fails the transfer (curl does **not** fall back to a
//!   direct connection). Default port `CURL_DEFAULT_PROXY_PORT` 1080 (also for
//!   http proxies), or `CURL_DEFAULT_HTTPS_PROXY_PORT` 443 for https proxies.
//!
//! # botocore (AWS CLI, boto3)
//!
//! * `botocore/endpoint.py::EndpointCreator.create_endpoint` →
//!   `_get_proxies(endpoint_url)` → `botocore/utils.py::get_environ_proxies`:
//!   `{}` if `should_bypass_proxies(url)`, else `urllib.request.getproxies()`.
//!   The NO_PROXY decision is made once per client, for the client's
//!   **endpoint URL**, not for each request URL ([`botocore_endpoint_url`];
//!   checked against botocore 1.44.8 by tests/proxy_clients.rs). For S3 virtual-hosted
//!   requests (`bucket.s3.<region>.amazonaws.com`), the endpoint is
//!   `s3.<region>.amazonaws.com`. `IMDSFetcher` does the same for
//!   `http://169.254.169.254/`.
//! * `should_bypass_proxies` → `proxy_bypass(netloc)`, which on Linux is
//!   `urllib.request.proxy_bypass_environment`.
//! * `getproxies_environment` (CPython 3.11 `urllib/request.py`) walks
//!   `os.environ` in environment order, twice: pass 1 takes every variable
//!   whose lowercased name ends in `_proxy` and whose value is non-empty
//!   (the later of two spellings wins).
//!   If `REQUEST_METHOD` is set (any value), it then drops the `http` entry
//!   (CGI rule, CVE-2016-1000110). Pass 2 takes the variables whose name ends
//!   in a lowercase `_proxy`: a non-empty value wins over the uppercase one,
//!   and an **empty** value removes the entry, even one set by the uppercase
//!   variable.
//! * `httpsession.py::ProxyConfiguration.proxy_url_for` uses
//!   `proxies[url.scheme]`, so only `http`/`https` are used. **ALL_PROXY is
//!   ignored.** `_fix_proxy_url` prefixes `http://` unless the value starts with
//!   `http:`/`https:` (case sensitive), so `socks5://p:1080` becomes a
//!   request to host `socks5` port 80. urllib3 `ProxyManager` defaults the
//!   port to 80/443.
//! * `proxy_bypass_environment`: a value of exactly `*` bypasses everything.
//!   Otherwise the host (netloc, lowercased) and the host without a port are
//!   compared with each entry (split on `,`, stripped, leading dots removed,
//!   lowercased). A match is equality or ending in `.` + entry. There is no
//!   IP or CIDR logic, `*.domain` is not a glob, and `host:port` entries
//!   match only URLs that spell out that port.

// The decisions' data types are part of the report; their rules live here.
pub use vpce_probe_report::proxy::{HttpClientKind, ProxyChoice, ProxyDecision};

use url::{Host, Url};

mod botocore;
mod curl;
mod no_proxy;
mod sdk;

pub use botocore::botocore_endpoint_url;
pub use curl::CurlVersion;
pub use no_proxy::{IneffectiveEntry, case_conflicts, ineffective_entries, recommended_no_proxy};

use botocore::decide_botocore;
use curl::decide_curl;
use sdk::decide_sdk;

const REQUEST_METHOD: &str = "REQUEST_METHOD";
const BASE_NAMES: [&str; 4] = ["http_proxy", "https_proxy", "all_proxy", "no_proxy"];

/// Names kept by [`ProxyEnv`]: `REQUEST_METHOD` and any capitalisation of the
/// four proxy variables (mixed case such as `Https_Proxy` matters to botocore
/// only, which lowercases names in `getproxies_environment`).
fn is_recorded_name(name: &str) -> bool {
    name == REQUEST_METHOD || BASE_NAMES.iter().any(|b| name.eq_ignore_ascii_case(b))
}

/// The proxy variables of a process: HTTP_PROXY http_proxy HTTPS_PROXY
/// https_proxy ALL_PROXY all_proxy NO_PROXY no_proxy (any capitalisation) and
/// REQUEST_METHOD, for the CGI rule, **in the order of the process
/// environment**, plus the version of the installed curl.
///
/// Values are stored as they are, **including empty ones**, because the
/// clients do not agree on what an empty value means:
/// * curl: empty counts as unset (`curl_getenv`).
/// * botocore: an empty uppercase variable counts as unset, while an empty
///   lowercase one removes that scheme's proxy even if the uppercase
///   variable is set (`getproxies_environment`, pass 2).
/// * AWS SDK for Rust: an empty variable is *set* (`get_first_env` in
///   hyper-util), so an empty `HTTPS_PROXY` hides `https_proxy` and an empty
///   `NO_PROXY` hides `no_proxy`.
///
/// The order matters to botocore only: urllib's `getproxies_environment`
/// walks `os.environ` (the C `environ` array, in order), so among spellings
/// of one name that it treats alike (`HTTPS_PROXY` and `Https_Proxy`, or
/// `https_proxy` and `HTTPS_proxy`) the last one in the environment wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyEnv {
    vars: Vec<(String, String)>,
    curl: CurlVersion,
}

impl ProxyEnv {
    /// The proxy variables of a process environment given in its own order
    /// (the probe passes `std::env::vars_os`, which walks `environ`), with the
    /// installed curl's version from `installed_curl`, asked only when a proxy
    /// variable is set (the probe runs `curl --version`). Values that are not UTF-8 are
    /// skipped, as hyper-util's `std::env::var` does. For REQUEST_METHOD only
    /// its presence matters, so it is kept (lossily converted). A name that
    /// appears twice keeps its first value, as `getenv` and CPython's
    /// `os.environ` do.
    pub fn from_environment<I>(environment: I, installed_curl: impl FnOnce() -> CurlVersion) -> Self
    where
        I: IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    {
        let mut vars: Vec<(String, String)> = Vec::new();
        for (name, value) in environment {
            let Some(name) = name.to_str() else {
                continue;
            };
            if !is_recorded_name(name) || vars.iter().any(|(n, _)| n == name) {
                continue;
            }
            match value.into_string() {
                Ok(value) => vars.push((name.to_owned(), value)),
                Err(raw) => {
                    if name == REQUEST_METHOD {
                        vars.push((name.to_owned(), raw.to_string_lossy().into_owned()));
                    }
                }
            }
        }
        // Only a proxy variable makes curl's (version-dependent) rules matter.
        let curl = if vars.iter().any(|(name, _)| name != REQUEST_METHOD) {
            installed_curl()
        } else {
            CurlVersion::not_needed()
        };
        ProxyEnv { vars, curl }
    }

    /// Builds an environment from name/value pairs in environment order,
    /// keeping only proxy variables and REQUEST_METHOD. A later pair replaces
    /// the value of an earlier one with the same name, in its place. curl is
    /// [`CurlVersion::default`] (not installed: the current rules).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut vars: Vec<(String, String)> = Vec::new();
        for (name, value) in pairs {
            let name = name.into();
            if !is_recorded_name(&name) {
                continue;
            }
            let value = value.into();
            match vars.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = value,
                None => vars.push((name, value)),
            }
        }
        ProxyEnv {
            vars,
            curl: CurlVersion::default(),
        }
    }

    /// The same variables, with the rules of another curl version.
    pub fn with_curl(mut self, curl: CurlVersion) -> Self {
        self.curl = curl;
        self
    }

    /// The curl whose rules the decisions follow.
    pub fn curl(&self) -> CurlVersion {
        self.curl
    }

    /// The raw value of a variable (`Some("")` when set but empty).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every recorded variable, in environment order.
    pub fn vars(&self) -> &[(String, String)] {
        &self.vars
    }

    /// True when no proxy variable has a non-empty value, so no client can
    /// use a proxy. REQUEST_METHOD does not count.
    pub fn is_empty(&self) -> bool {
        self.vars
            .iter()
            .all(|(name, value)| name == REQUEST_METHOD || value.is_empty())
    }

    fn is_set(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// hyper-util `get_first_env`: the first variable that is set, even if empty.
    fn first_set<'a>(&'a self, names: &[&'static str]) -> Option<(&'static str, &'a str)> {
        names
            .iter()
            .find_map(|name| self.get(name).map(|value| (*name, value)))
    }

    /// curl `curl_getenv` chain: the first variable with a non-empty value.
    fn first_non_empty<'a>(&'a self, names: &[&'static str]) -> Option<(&'static str, &'a str)> {
        names.iter().find_map(|name| {
            self.get(name)
                .filter(|value| !value.is_empty())
                .map(|value| (*name, value))
        })
    }
}

/// Decides whether `client` sends `target` through a proxy under `env`.
///
/// botocore checks NO_PROXY for its client's endpoint URL, not the request
/// URL: [`botocore_endpoint_url`] derives it from `target` (the regional
/// name of a virtual-hosted S3 or account-based DynamoDB name).
pub fn decide(client: HttpClientKind, env: &ProxyEnv, target: &Url) -> ProxyDecision {
    decide_among(client, env, target, &[], &[])
}

/// [`decide`], where `known` are the other URLs of the same clients: a URL
/// whose host `target`'s host is a subdomain of is taken as botocore's
/// endpoint (a virtual-hosted name under a custom endpoint URL); `configured` are the
/// endpoint URLs as the settings wrote them (`endpoint_url`, `AWS_ENDPOINT_URL_*`), whose
/// netloc botocore checks NO_PROXY against, port and all.
pub fn decide_among(
    client: HttpClientKind,
    env: &ProxyEnv,
    target: &Url,
    known: &[Url],
    configured: &[String],
) -> ProxyDecision {
    let mut checked_url = None;
    let mut client_version = None;
    let outcome = match client {
        HttpClientKind::AwsSdkRust => decide_sdk(env, target),
        HttpClientKind::Curl => {
            client_version = Some(env.curl.describe());
            decide_curl(env, target)
        }
        HttpClientKind::Botocore => {
            let endpoint = botocore_endpoint_url(target, known);
            let written = botocore::configured_netloc(&endpoint, configured);
            let netloc = written
                .clone()
                .unwrap_or_else(|| botocore::python_netloc(&endpoint));
            if let Some(netloc) = written.filter(|n| endpoint.host_str() != Some(n.as_str())) {
                // The URL as botocore holds it: its port written, as configured.
                checked_url = Some(redact_proxy_url(&format!(
                    "{}://{netloc}{}",
                    endpoint.scheme(),
                    endpoint.path()
                )));
            } else if endpoint != *target {
                checked_url = Some(redact_proxy_url(endpoint.as_str()));
            }
            decide_botocore(env, target, &endpoint, &netloc)
        }
    };
    ProxyDecision {
        client,
        url: redact_proxy_url(target.as_str()),
        proxy: outcome.proxy,
        bypass_entry: outcome.bypass_entry,
        fails: outcome.fails,
        checked_url,
        client_version,
        explanation: outcome.explanation,
    }
}

struct Outcome {
    proxy: Option<ProxyChoice>,
    bypass_entry: Option<String>,
    fails: bool,
    explanation: String,
}

impl Outcome {
    fn direct(explanation: String) -> Self {
        Outcome {
            proxy: None,
            bypass_entry: None,
            fails: false,
            explanation,
        }
    }

    fn bypassed(entry: String, explanation: String) -> Self {
        Outcome {
            proxy: None,
            bypass_entry: Some(entry),
            fails: false,
            explanation,
        }
    }
}

/// A parsed proxy URL: what the client would connect to.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ParsedProxy {
    scheme: String,
    host: String,
    port: u16,
}

fn choice(variable: &str, raw: &str, parsed: ParsedProxy) -> ProxyChoice {
    let url_redacted = redact_proxy_url(raw);
    // In a value like http://TOKEN/x@proxy the clients read the token as the host: never show
    // a host that the redaction hid (the CONNECT check then finds "***" unreachable).
    let host = if url_redacted
        .to_ascii_lowercase()
        .contains(&parsed.host.to_ascii_lowercase())
    {
        parsed.host
    } else {
        "***".to_owned()
    };
    ProxyChoice {
        variable: variable.to_owned(),
        url_redacted,
        host,
        port: parsed.port,
        scheme: parsed.scheme,
    }
}

fn host_display(host: &Host<String>) -> String {
    match host {
        Host::Domain(d) => d.clone(),
        Host::Ipv4(a) => a.to_string(),
        Host::Ipv6(a) => format!("[{a}]"),
    }
}

fn join_labels(labels: &[String]) -> String {
    match labels {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {}", init.join(", "), last),
    }
}

// ---------------------------------------------------------------------------
// Shared URL splitting
// ---------------------------------------------------------------------------

/// Splits `host[:port]` (or `[v6][:port]`) into the host without brackets and
/// the text after the port colon, if any.
fn split_host_port(host_port: &str) -> (&str, Option<&str>) {
    if let Some(inner) = host_port.strip_prefix('[') {
        match inner.find(']') {
            Some(close) => {
                let host = &inner[..close];
                let after = &inner[close + 1..];
                (host, after.strip_prefix(':'))
            }
            None => (host_port, None),
        }
    } else {
        match host_port.rfind(':') {
            Some(colon) => {
                let host = host_port.split(':').next().unwrap_or_default();
                (host, Some(&host_port[colon + 1..]))
            }
            None => (host_port, None),
        }
    }
}

/// A URL with its whole userinfo replaced by "***": the password, and the user too, since a
/// proxy token is often given as the user alone (`http://TOKEN@proxy:3128`).
/// Works on text that does not parse as well: everything from after "://" (or from the start
/// when what precedes "://" is not a scheme) to the last '@' is replaced, so a userinfo holding
/// '/', '?', '#' or '@' is covered too (at the cost of over-redacting a path with an '@').
pub fn redact_proxy_url(raw: &str) -> String {
    let start = match raw.find("://") {
        Some(i)
            if i > 0
                && raw[..i]
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.')) =>
        {
            i + 3
        }
        _ => 0,
    };
    match raw[start..].rfind('@') {
        Some(at) => format!("{}***{}", &raw[..start], &raw[start + at..]),
        None => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests;
