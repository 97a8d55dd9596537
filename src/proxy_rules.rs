//! How three HTTP clients choose a proxy for a URL from the proxy environment
//! variables, modelled as pure functions (the only I/O is
//! [`ProxyEnv::from_process`], which reads the environment).
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
//!   ([`CurlVersion::detect`], `curl --version`; ≥ 8.9 when there is no curl),
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
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
pub use vpce_probe_report::proxy::{HttpClientKind, ProxyChoice, ProxyDecision};

use ipnet::IpNet;
use url::{Host, Url};

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
    /// Reads the current process environment in its own order
    /// (`std::env::vars_os` walks `environ`), and the installed curl's
    /// version ([`CurlVersion::detect`]). Values that are not UTF-8 are
    /// skipped, as hyper-util's `std::env::var` does. For REQUEST_METHOD only
    /// its presence matters, so it is kept (lossily converted). A name that
    /// appears twice keeps its first value, as `getenv` and CPython's
    /// `os.environ` do.
    pub fn from_process() -> Self {
        let mut vars: Vec<(String, String)> = Vec::new();
        for (name, value) in std::env::vars_os() {
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
        ProxyEnv {
            vars,
            curl: CurlVersion::detect(),
        }
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
}

/// The first release that ends the NO_PROXY list at a blank.
const CURL_COMMA_ONLY: (u32, u32, u32) = (8, 9, 0);

impl CurlVersion {
    /// A known version, e.g. `CurlVersion::installed(7, 88, 1)`.
    pub fn installed(major: u32, minor: u32, patch: u32) -> Self {
        CurlVersion {
            installed: Some((major, minor, patch)),
        }
    }

    /// Runs `curl --version` once (2 s at most; no network) and reads
    /// libcurl's version from its first line. No curl, a timeout or an
    /// unreadable answer give [`CurlVersion::default`].
    pub fn detect() -> Self {
        CurlVersion {
            installed: curl_version_line(std::time::Duration::from_secs(2))
                .and_then(|line| parse_curl_version(&line)),
        }
    }

    /// The version, if curl answered.
    pub fn version(&self) -> Option<(u32, u32, u32)> {
        self.installed
    }

    /// True for curl 7.86 to 8.8, which also split NO_PROXY on blanks.
    fn blank_separates(&self) -> bool {
        self.installed.is_some_and(|v| v < CURL_COMMA_ONLY)
    }

    /// Which curl a decision is for, e.g. "curl 7.88.1".
    pub fn describe(&self) -> String {
        match self.installed {
            Some((a, b, c)) => format!("curl {a}.{b}.{c}"),
            None => "curl (rules of ≥ 8.9 assumed: no curl --version answered)".to_owned(),
        }
    }
}

/// The first line of `curl --version`, or `None` if curl is missing, fails
/// or takes longer than `timeout` (then it is killed).
fn curl_version_line(timeout: std::time::Duration) -> Option<String> {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut child = Command::new("curl")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Ok(Some(_)) => return None,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut out = Vec::new();
    child.stdout.take()?.take(4096).read_to_end(&mut out).ok()?;
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .map(str::to_owned)
}

/// `curl 7.88.1 (x86_64-pc-linux-gnu) libcurl/7.88.1 ...`: libcurl's version
/// (which holds the proxy rules), else the tool's.
fn parse_curl_version(line: &str) -> Option<(u32, u32, u32)> {
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

/// Decides whether `client` sends `target` through a proxy under `env`.
///
/// botocore checks NO_PROXY for its client's endpoint URL, not the request
/// URL: [`botocore_endpoint_url`] derives it from `target` (the regional
/// name of a virtual-hosted S3 or account-based DynamoDB name).
pub fn decide(client: HttpClientKind, env: &ProxyEnv, target: &Url) -> ProxyDecision {
    decide_among(client, env, target, &[])
}

/// [`decide`], where `known` are the other URLs of the same clients: a URL
/// whose host `target`'s host is a subdomain of is taken as botocore's
/// endpoint (a virtual-hosted name under a custom endpoint URL).
pub fn decide_among(
    client: HttpClientKind,
    env: &ProxyEnv,
    target: &Url,
    known: &[Url],
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
            if endpoint != *target {
                checked_url = Some(redact_proxy_url(endpoint.as_str()));
            }
            decide_botocore(env, target, &endpoint)
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
    let Some(Host::Domain(host)) = request.host() else {
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
        return request.clone();
    };
    let mut endpoint = request.clone();
    if endpoint.set_host(Some(&endpoint_host)).is_err() {
        return request.clone();
    }
    endpoint.set_path("/");
    endpoint.set_query(None);
    endpoint.set_fragment(None);
    endpoint
}

/// The service endpoint for a request host with one label (bucket, access
/// point, account) in front of an S3 or DynamoDB service label.
fn botocore_endpoint_host(host: &str) -> Option<String> {
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
fn sdk_no_proxy_match(list: &str, host: &Host<String>) -> Option<String> {
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

fn decide_sdk(env: &ProxyEnv, target: &Url) -> Outcome {
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
fn curl_tokens(list: &str, blank_separates: bool) -> (Vec<&str>, bool) {
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
fn curl_no_proxy_match(list: &str, host: &Host<String>, curl: CurlVersion) -> Option<String> {
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

fn decide_curl(env: &ProxyEnv, target: &Url) -> Outcome {
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

// ---------------------------------------------------------------------------
// botocore: botocore/utils.py + urllib.request + botocore/httpsession.py
// ---------------------------------------------------------------------------

/// `urllib.request.getproxies_environment`: scheme → (variable, value).
fn botocore_proxies(env: &ProxyEnv) -> BTreeMap<String, (String, String)> {
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
fn py_strip(s: &str) -> &str {
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
fn python_netloc(target: &Url) -> String {
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

/// `urllib.request.proxy_bypass_environment(netloc)`: the matching entry.
fn botocore_bypass(no_proxy: &str, netloc: &str) -> Option<String> {
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

/// `target` is the request URL (its scheme picks the proxy); `endpoint` is
/// the client's endpoint URL, the one NO_PROXY is checked for.
fn decide_botocore(env: &ProxyEnv, target: &Url, endpoint: &Url) -> Outcome {
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
        let mut notes = Vec::new();
        if scheme == "http"
            && env.is_set(REQUEST_METHOD)
            && env.vars().iter().any(|(n, v)| {
                n.eq_ignore_ascii_case("http_proxy") && !n.ends_with("_proxy") && !v.is_empty()
            })
        {
            notes.push(
                "REQUEST_METHOD is set, so urllib drops the uppercase HTTP_PROXY (CGI rule)"
                    .to_owned(),
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
        return Outcome::direct(format!(
            "{label} connects directly because urllib's getproxies_environment has no '{scheme}' proxy: neither {specific} nor {} is set to a non-empty value{notes_text}.",
            specific.to_ascii_uppercase()
        ));
    };
    let netloc = python_netloc(endpoint);
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
        && let Some(entry) = botocore_bypass(no_value, &netloc)
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
fn lenient_entries(value: &str) -> Vec<&str> {
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
fn normalise_host(raw: &str) -> Option<Host<String>> {
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
        // botocore checks its client's endpoint, not the request host.
        let endpoint = match &host {
            Host::Domain(d) => botocore_endpoint_host(d).map(Host::Domain),
            _ => None,
        };
        for h in std::iter::once(host).chain(endpoint) {
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
mod tests {
    use super::*;
    use HttpClientKind::{AwsSdkRust as Sdk, Botocore as Boto, Curl};

    fn env(pairs: &[(&str, &str)]) -> ProxyEnv {
        ProxyEnv::from_pairs(pairs.iter().copied())
    }

    fn url(s: &str) -> Url {
        Url::parse(s).expect("test URL")
    }

    const S3: &str = "https://s3.eu-west-1.amazonaws.com/";
    const BUCKET: &str = "https://mybucket.s3.eu-west-1.amazonaws.com/key";
    const IMDS: &str = "http://169.254.169.254/latest/api/token";

    /// Expected result per client: `None` direct, `Some(var)` through the proxy from `var`.
    struct Case {
        name: &'static str,
        env: &'static [(&'static str, &'static str)],
        url: &'static str,
        sdk: Option<&'static str>,
        curl: Option<&'static str>,
        boto: Option<&'static str>,
    }

    const P: &str = "http://proxy.corp:3128";

    const CASES: &[Case] = &[
        Case {
            name: "no vars",
            env: &[],
            url: S3,
            sdk: None,
            curl: None,
            boto: None,
        },
        Case {
            name: "https_proxy vs HTTPS_PROXY",
            env: &[
                ("https_proxy", "http://lower:1"),
                ("HTTPS_PROXY", "http://upper:2"),
            ],
            url: S3,
            sdk: Some("HTTPS_PROXY"),
            curl: Some("https_proxy"),
            boto: Some("https_proxy"),
        },
        Case {
            name: "only HTTPS_PROXY",
            env: &[("HTTPS_PROXY", P)],
            url: S3,
            sdk: Some("HTTPS_PROXY"),
            curl: Some("HTTPS_PROXY"),
            boto: Some("HTTPS_PROXY"),
        },
        Case {
            name: "only https_proxy",
            env: &[("https_proxy", P)],
            url: S3,
            sdk: Some("https_proxy"),
            curl: Some("https_proxy"),
            boto: Some("https_proxy"),
        },
        Case {
            name: "HTTP_PROXY for http URL",
            env: &[("HTTP_PROXY", P)],
            url: IMDS,
            sdk: Some("HTTP_PROXY"),
            curl: None,
            boto: Some("HTTP_PROXY"),
        },
        Case {
            name: "http_proxy for http URL",
            env: &[("http_proxy", P)],
            url: IMDS,
            sdk: Some("http_proxy"),
            curl: Some("http_proxy"),
            boto: Some("http_proxy"),
        },
        Case {
            name: "HTTP_PROXY under CGI",
            env: &[("HTTP_PROXY", P), ("REQUEST_METHOD", "GET")],
            url: IMDS,
            sdk: None,
            curl: None,
            boto: None,
        },
        Case {
            name: "http_proxy under CGI",
            env: &[("http_proxy", P), ("REQUEST_METHOD", "GET")],
            url: IMDS,
            sdk: None,
            curl: Some("http_proxy"),
            boto: Some("http_proxy"),
        },
        Case {
            name: "HTTPS_PROXY under CGI",
            env: &[("HTTPS_PROXY", P), ("REQUEST_METHOD", "")],
            url: S3,
            sdk: None,
            curl: Some("HTTPS_PROXY"),
            boto: Some("HTTPS_PROXY"),
        },
        Case {
            name: "ALL_PROXY fallback",
            env: &[("ALL_PROXY", P)],
            url: S3,
            sdk: Some("ALL_PROXY"),
            curl: Some("ALL_PROXY"),
            boto: None,
        },
        Case {
            name: "all_proxy fallback",
            env: &[("all_proxy", P)],
            url: IMDS,
            sdk: Some("all_proxy"),
            curl: Some("all_proxy"),
            boto: None,
        },
        Case {
            name: "specific beats ALL_PROXY",
            env: &[("ALL_PROXY", "http://all:1"), ("https_proxy", P)],
            url: S3,
            sdk: Some("https_proxy"),
            curl: Some("https_proxy"),
            boto: Some("https_proxy"),
        },
        Case {
            name: "invalid HTTPS_PROXY falls back to ALL_PROXY for the SDK",
            env: &[("HTTPS_PROXY", "ftp://nope:21"), ("ALL_PROXY", P)],
            url: S3,
            sdk: Some("ALL_PROXY"),
            curl: Some("HTTPS_PROXY"),
            boto: Some("HTTPS_PROXY"),
        },
        Case {
            name: "NO_PROXY *",
            env: &[("HTTPS_PROXY", P), ("NO_PROXY", "*")],
            url: S3,
            sdk: None,
            curl: None,
            boto: None,
        },
        Case {
            name: "no_proxy * for IMDS",
            env: &[("http_proxy", P), ("no_proxy", "*")],
            url: IMDS,
            sdk: Some("http_proxy"),
            curl: None,
            boto: None,
        },
        Case {
            name: "* inside a list",
            env: &[("HTTPS_PROXY", P), ("NO_PROXY", "localhost,*")],
            url: S3,
            sdk: None,
            curl: Some("HTTPS_PROXY"),
            boto: Some("HTTPS_PROXY"),
        },
        Case {
            name: "exact host",
            env: &[
                ("HTTPS_PROXY", P),
                ("NO_PROXY", "s3.eu-west-1.amazonaws.com"),
            ],
            url: S3,
            sdk: None,
            curl: None,
            boto: None,
        },
        Case {
            name: ".suffix",
            env: &[("HTTPS_PROXY", P), ("NO_PROXY", ".amazonaws.com")],
            url: BUCKET,
            sdk: None,
            curl: None,
            boto: None,
        },
        Case {
            name: "suffix",
            env: &[("HTTPS_PROXY", P), ("NO_PROXY", "amazonaws.com")],
            url: BUCKET,
            sdk: None,
            curl: None,
            boto: None,
        },
        Case {
            name: ".suffix equals host",
            env: &[
                ("HTTPS_PROXY", P),
                ("NO_PROXY", ".s3.eu-west-1.amazonaws.com"),
            ],
            url: S3,
            sdk: None,
            curl: None,
            boto: None,
        },
        Case {
            name: "suffix is not a substring",
            env: &[("HTTPS_PROXY", P), ("NO_PROXY", "zonaws.com")],
            url: S3,
            sdk: Some("HTTPS_PROXY"),
            curl: Some("HTTPS_PROXY"),
            boto: Some("HTTPS_PROXY"),
        },
        Case {
            name: "*.amazonaws.com",
            env: &[("HTTPS_PROXY", P), ("NO_PROXY", "*.amazonaws.com")],
            url: S3,
            sdk: Some("HTTPS_PROXY"),
            curl: Some("HTTPS_PROXY"),
            boto: Some("HTTPS_PROXY"),
        },
        Case {
            name: "CIDR vs IP URL",
            env: &[("http_proxy", P), ("no_proxy", "10.0.0.0/8")],
            url: "http://10.1.2.3/",
            sdk: None,
            curl: None,
            boto: Some("http_proxy"),
        },
        Case {
            name: "CIDR vs name",
            env: &[("HTTPS_PROXY", P), ("NO_PROXY", "10.0.0.0/8")],
            url: "https://s3.internal.example/",
            sdk: Some("HTTPS_PROXY"),
            curl: Some("HTTPS_PROXY"),
            boto: Some("HTTPS_PROXY"),
        },
        Case {
            name: "IMDS address",
            env: &[("http_proxy", P), ("no_proxy", "169.254.169.254")],
            url: IMDS,
            sdk: None,
            curl: None,
            boto: None,
        },
        Case {
            name: "IMDS with HTTP_PROXY/NO_PROXY",
            env: &[("HTTP_PROXY", P), ("NO_PROXY", "localhost,169.254.169.254")],
            url: IMDS,
            sdk: None,
            curl: None,
            boto: None,
        },
        Case {
            name: "IMDS not listed",
            env: &[("http_proxy", P), ("no_proxy", "localhost")],
            url: IMDS,
            sdk: Some("http_proxy"),
            curl: Some("http_proxy"),
            boto: Some("http_proxy"),
        },
        Case {
            name: "IMDS CIDR",
            env: &[("http_proxy", P), ("no_proxy", "169.254.0.0/16")],
            url: IMDS,
            sdk: None,
            curl: None,
            boto: Some("http_proxy"),
        },
        Case {
            name: "entry with port",
            env: &[
                ("HTTPS_PROXY", P),
                ("NO_PROXY", "s3.eu-west-1.amazonaws.com:443"),
            ],
            url: S3,
            sdk: Some("HTTPS_PROXY"),
            curl: Some("HTTPS_PROXY"),
            boto: Some("HTTPS_PROXY"),
        },
        Case {
            name: "entry with port, URL spells it",
            env: &[
                ("HTTPS_PROXY", P),
                ("NO_PROXY", "s3.eu-west-1.amazonaws.com:8443"),
            ],
            url: "https://s3.eu-west-1.amazonaws.com:8443/",
            sdk: Some("HTTPS_PROXY"),
            curl: Some("HTTPS_PROXY"),
            boto: None,
        },
        Case {
            name: "empty HTTPS_PROXY",
            env: &[("HTTPS_PROXY", "")],
            url: S3,
            sdk: None,
            curl: None,
            boto: None,
        },
        Case {
            name: "empty HTTPS_PROXY hides https_proxy for the SDK",
            env: &[("HTTPS_PROXY", ""), ("https_proxy", P)],
            url: S3,
            sdk: None,
            curl: Some("https_proxy"),
            boto: Some("https_proxy"),
        },
        Case {
            name: "empty https_proxy cancels HTTPS_PROXY for botocore",
            env: &[("HTTPS_PROXY", P), ("https_proxy", "")],
            url: S3,
            sdk: Some("HTTPS_PROXY"),
            curl: Some("HTTPS_PROXY"),
            boto: None,
        },
        Case {
            name: "empty NO_PROXY hides no_proxy for the SDK",
            env: &[
                ("HTTPS_PROXY", P),
                ("NO_PROXY", ""),
                ("no_proxy", "amazonaws.com"),
            ],
            url: S3,
            sdk: Some("HTTPS_PROXY"),
            curl: None,
            boto: None,
        },
        Case {
            name: "spaces around entries",
            env: &[
                ("HTTPS_PROXY", P),
                ("NO_PROXY", " localhost , .amazonaws.com "),
            ],
            url: S3,
            sdk: None,
            curl: None,
            boto: None,
        },
        Case {
            name: "space-separated entries stop curl",
            env: &[("HTTPS_PROXY", P), ("NO_PROXY", "localhost .amazonaws.com")],
            url: S3,
            sdk: Some("HTTPS_PROXY"),
            curl: Some("HTTPS_PROXY"),
            boto: Some("HTTPS_PROXY"),
        },
        Case {
            name: "uppercase host and entry",
            env: &[
                ("HTTPS_PROXY", P),
                ("NO_PROXY", "S3.EU-WEST-1.AMAZONAWS.COM"),
            ],
            url: "https://S3.EU-WEST-1.AMAZONAWS.COM/",
            sdk: None,
            curl: None,
            boto: None,
        },
        Case {
            name: "NO_PROXY vs no_proxy precedence",
            env: &[
                ("HTTPS_PROXY", P),
                ("NO_PROXY", "amazonaws.com"),
                ("no_proxy", "localhost"),
            ],
            url: S3,
            sdk: None,
            curl: Some("HTTPS_PROXY"),
            boto: Some("HTTPS_PROXY"),
        },
        // botocore checks NO_PROXY for its client's endpoint URL, not the bucket's name.
        Case {
            name: "bucket name listed: botocore still proxies",
            env: &[
                ("HTTPS_PROXY", P),
                ("NO_PROXY", "mybucket.s3.eu-west-1.amazonaws.com"),
            ],
            url: BUCKET,
            sdk: None,
            curl: None,
            boto: Some("HTTPS_PROXY"),
        },
        Case {
            name: "regional name listed: botocore direct for the bucket too",
            env: &[
                ("HTTPS_PROXY", P),
                ("NO_PROXY", "s3.eu-west-1.amazonaws.com"),
            ],
            url: BUCKET,
            sdk: None,
            curl: None,
            boto: None,
        },
        Case {
            name: "access point name listed: botocore checks s3.<region>",
            env: &[
                ("HTTPS_PROXY", P),
                ("NO_PROXY", "s3-accesspoint.eu-west-1.amazonaws.com"),
            ],
            url: "https://myap-123456789012.s3-accesspoint.eu-west-1.amazonaws.com/",
            sdk: None,
            curl: None,
            boto: Some("HTTPS_PROXY"),
        },
        Case {
            name: "account-based DynamoDB name listed: botocore checks dynamodb.<region>",
            env: &[
                ("HTTPS_PROXY", P),
                ("NO_PROXY", "ddb.eu-west-1.amazonaws.com"),
            ],
            url: "https://123456789012.ddb.eu-west-1.amazonaws.com/",
            sdk: None,
            curl: None,
            boto: Some("HTTPS_PROXY"),
        },
        // urllib walks os.environ in order: among names it treats alike, the later wins.
        Case {
            name: "HTTPS_PROXY then Https_Proxy: botocore takes the later",
            env: &[("HTTPS_PROXY", "http://a:1"), ("Https_Proxy", "http://b:1")],
            url: S3,
            sdk: Some("HTTPS_PROXY"),
            curl: Some("HTTPS_PROXY"),
            boto: Some("Https_Proxy"),
        },
        Case {
            name: "Https_Proxy then HTTPS_PROXY: botocore takes the later",
            env: &[("Https_Proxy", "http://b:1"), ("HTTPS_PROXY", "http://a:1")],
            url: S3,
            sdk: Some("HTTPS_PROXY"),
            curl: Some("HTTPS_PROXY"),
            boto: Some("HTTPS_PROXY"),
        },
        Case {
            name: "https_proxy then HTTPS_proxy: lower-case suffixes, the later wins",
            env: &[("https_proxy", "http://a:1"), ("HTTPS_proxy", "http://b:1")],
            url: S3,
            sdk: Some("https_proxy"),
            curl: Some("https_proxy"),
            boto: Some("HTTPS_proxy"),
        },
        Case {
            name: "HTTPS_proxy then https_proxy",
            env: &[("HTTPS_proxy", "http://b:1"), ("https_proxy", "http://a:1")],
            url: S3,
            sdk: Some("https_proxy"),
            curl: Some("https_proxy"),
            boto: Some("https_proxy"),
        },
        Case {
            name: "https_proxy before HTTPS_PROXY: lower case wins whatever the order",
            env: &[("https_proxy", "http://a:1"), ("HTTPS_PROXY", "http://b:1")],
            url: S3,
            sdk: Some("HTTPS_PROXY"),
            curl: Some("https_proxy"),
            boto: Some("https_proxy"),
        },
        Case {
            name: "NO_PROXY then No_Proxy: botocore reads the later",
            env: &[
                ("HTTPS_PROXY", P),
                ("NO_PROXY", "amazonaws.com"),
                ("No_Proxy", "localhost"),
            ],
            url: S3,
            sdk: None,
            curl: None,
            boto: Some("HTTPS_PROXY"),
        },
        Case {
            name: "scheme-less proxy",
            env: &[("https_proxy", "proxy.corp:3128")],
            url: S3,
            sdk: Some("https_proxy"),
            curl: Some("https_proxy"),
            boto: Some("https_proxy"),
        },
    ];

    #[test]
    fn decision_table() {
        for case in CASES {
            let e = env(case.env);
            let u = url(case.url);
            for (client, want) in [(Sdk, case.sdk), (Curl, case.curl), (Boto, case.boto)] {
                let d = decide(client, &e, &u);
                assert_eq!(
                    d.proxy.as_ref().map(|p| p.variable.as_str()),
                    want,
                    "case '{}', client {:?}: {}",
                    case.name,
                    client,
                    d.explanation
                );
                assert!(!d.explanation.is_empty());
                if d.proxy.is_some() {
                    assert!(d.bypass_entry.is_none());
                }
            }
        }
    }

    #[test]
    fn bypass_entry_is_reported_as_written() {
        let e = env(&[
            ("HTTPS_PROXY", P),
            ("NO_PROXY", "localhost, .Amazonaws.com "),
        ]);
        for client in HttpClientKind::ALL {
            let d = decide(client, &e, &url(S3));
            assert_eq!(
                d.bypass_entry.as_deref(),
                Some(".Amazonaws.com"),
                "{client:?}"
            );
        }
        let e = env(&[("https_proxy", P), ("no_proxy", "*")]);
        for client in HttpClientKind::ALL {
            assert_eq!(
                decide(client, &e, &url(S3)).bypass_entry.as_deref(),
                Some("*")
            );
        }
        // No proxy configured: direct without a bypass entry.
        let e = env(&[("NO_PROXY", "amazonaws.com")]);
        for client in HttpClientKind::ALL {
            let d = decide(client, &e, &url(S3));
            assert!(d.proxy.is_none() && d.bypass_entry.is_none());
        }
    }

    #[test]
    fn proxy_choice_fields_and_ports() {
        let u = url(S3);
        let e = env(&[("HTTPS_PROXY", "http://proxy.corp")]);
        let port = |c| decide(c, &e, &u).proxy.map(|p| (p.scheme, p.host, p.port));
        assert_eq!(port(Sdk), Some(("http".into(), "proxy.corp".into(), 80)));
        assert_eq!(port(Curl), Some(("http".into(), "proxy.corp".into(), 1080)));
        assert_eq!(port(Boto), Some(("http".into(), "proxy.corp".into(), 80)));

        let e = env(&[("HTTPS_PROXY", "https://proxy.corp")]);
        let port = |c| decide(c, &e, &u).proxy.map(|p| p.port);
        assert_eq!(
            (port(Sdk), port(Curl), port(Boto)),
            (Some(443), Some(443), Some(443))
        );

        let e = env(&[("HTTPS_PROXY", "proxy.corp:3128")]);
        for c in HttpClientKind::ALL {
            let p = decide(c, &e, &u).proxy.expect("proxied");
            assert_eq!(
                (p.scheme.as_str(), p.host.as_str(), p.port),
                ("http", "proxy.corp", 3128),
                "{c:?}"
            );
        }

        let e = env(&[("ALL_PROXY", "socks5://10.0.0.9")]);
        let sdk = decide(Sdk, &e, &u);
        assert_eq!(
            sdk.proxy.as_ref().map(|p| (p.scheme.as_str(), p.port)),
            Some(("socks5", 1080))
        );
        assert!(sdk.explanation.contains("unsupported scheme"));
        let curl = decide(Curl, &e, &u).proxy.expect("curl uses socks");
        assert_eq!((curl.scheme.as_str(), curl.port), ("socks5", 1080));

        // botocore turns a socks URL into http://socks5://...: host "socks5", port 80.
        let e = env(&[("https_proxy", "socks5://10.0.0.9:1080")]);
        let boto = decide(Boto, &e, &u).proxy.expect("botocore proxies");
        assert_eq!(
            (boto.host.as_str(), boto.port, boto.scheme.as_str()),
            ("socks5", 80, "http")
        );

        // The SDK refuses a scheme-less value with a path, then goes direct.
        let e = env(&[("https_proxy", "proxy.corp:3128/")]);
        assert!(decide(Sdk, &e, &u).proxy.is_none());
        // curl refuses an unknown scheme and fails rather than going direct.
        let e = env(&[("https_proxy", "ftp://proxy.corp:21")]);
        let curl = decide(Curl, &e, &u);
        assert!(curl.proxy.is_some() && curl.explanation.contains("fails"));
    }

    #[test]
    fn ipv6_hosts() {
        let u = url("http://[fd00::1]/");
        let e = env(&[("http_proxy", P), ("no_proxy", "fd00::/8")]);
        assert!(decide(Sdk, &e, &u).proxy.is_none());
        assert!(decide(Curl, &e, &u).proxy.is_some());
        assert!(decide(Boto, &e, &u).proxy.is_some());
        let e = env(&[("http_proxy", P), ("no_proxy", "fd00::1,[fd00::1]")]);
        for c in HttpClientKind::ALL {
            assert!(decide(c, &e, &u).proxy.is_none(), "{c:?}");
        }
    }

    #[test]
    fn mixed_case_names_reach_botocore_only() {
        let e = env(&[("Https_Proxy", P)]);
        assert!(decide(Sdk, &e, &url(S3)).proxy.is_none());
        assert!(decide(Curl, &e, &url(S3)).proxy.is_none());
        assert_eq!(
            decide(Boto, &e, &url(S3)).proxy.map(|p| p.variable),
            Some("Https_Proxy".into())
        );
        assert!(
            ProxyEnv::from_pairs([("PATH", "/bin"), ("HOME", "/root")])
                .vars()
                .is_empty()
        );
    }

    #[test]
    fn env_accessors() {
        let e = env(&[
            ("HTTPS_PROXY", ""),
            ("REQUEST_METHOD", "GET"),
            ("PATH", "/bin"),
        ]);
        assert_eq!(e.get("HTTPS_PROXY"), Some(""));
        assert_eq!(e.get("PATH"), None);
        assert!(e.is_empty());
        assert_eq!(e.vars().len(), 2);
        assert!(!env(&[("no_proxy", "x")]).is_empty());
        assert!(ProxyEnv::default().is_empty());
        let _ = ProxyEnv::from_process();
    }

    #[test]
    fn ineffective_cidr_for_a_name() {
        let e = env(&[("HTTPS_PROXY", P), ("NO_PROXY", "localhost,10.0.0.0/8")]);
        let u = url("https://vpce.internal.example/");
        let found = ineffective_entries(&e, &u, &["10.1.2.3".parse().expect("ip")]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].entry, "10.0.0.0/8");
        assert_eq!(found[0].variable, "NO_PROXY");
        assert_eq!(found[0].clients, vec![Sdk, Curl, Boto]);
        assert!(
            found[0].reason.contains("literal IP"),
            "{}",
            found[0].reason
        );
        assert!(found[0].reason.contains("10.1.2.3"));
        // Not resolved into the range: nothing to report.
        assert!(ineffective_entries(&e, &u, &["192.168.0.1".parse().expect("ip")]).is_empty());
    }

    #[test]
    fn ineffective_only_for_clients_that_proxy() {
        // CIDR against an IP URL works for the SDK and curl, not for botocore.
        let e = env(&[("http_proxy", P), ("no_proxy", "169.254.0.0/16")]);
        let found = ineffective_entries(&e, &url(IMDS), &[]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].clients, vec![Boto]);
        assert!(found[0].reason.contains("CIDR"));

        let e = env(&[("HTTPS_PROXY", P), ("NO_PROXY", "*.amazonaws.com")]);
        let found = ineffective_entries(&e, &url(S3), &[]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].clients, vec![Sdk, Curl, Boto]);
        assert!(
            found[0].reason.contains("not a wildcard"),
            "{}",
            found[0].reason
        );

        let e = env(&[
            ("HTTPS_PROXY", P),
            ("NO_PROXY", "s3.eu-west-1.amazonaws.com:443,localhost"),
        ]);
        let found = ineffective_entries(&e, &url(S3), &[]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].entry, "s3.eu-west-1.amazonaws.com:443");

        // Nothing proxies: nothing to report.
        let e = env(&[("NO_PROXY", "*.amazonaws.com")]);
        assert!(ineffective_entries(&e, &url(S3), &[]).is_empty());

        // An entry in a variable curl does not read.
        let e = env(&[
            ("HTTPS_PROXY", P),
            ("NO_PROXY", "amazonaws.com"),
            ("no_proxy", "localhost"),
        ]);
        let found = ineffective_entries(&e, &url(S3), &[]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].clients, vec![Curl, Boto]);
        assert!(found[0].reason.contains("no_proxy"));

        // curl stops at a blank.
        let e = env(&[("HTTPS_PROXY", P), ("NO_PROXY", "localhost .amazonaws.com")]);
        let found = ineffective_entries(&e, &url(S3), &[]);
        assert_eq!(found.len(), 1);
        assert!(found[0].reason.contains("blank"), "{}", found[0].reason);
    }

    #[test]
    fn case_conflict_pairs() {
        let e = env(&[
            ("HTTPS_PROXY", "http://a:1"),
            ("https_proxy", "http://b:1"),
            ("HTTP_PROXY", P),
            ("http_proxy", P),
            ("NO_PROXY", ""),
            ("no_proxy", "x"),
            ("ALL_PROXY", "y"),
        ]);
        assert_eq!(
            case_conflicts(&e),
            vec![
                ("HTTPS_PROXY".to_owned(), "https_proxy".to_owned()),
                ("NO_PROXY".to_owned(), "no_proxy".to_owned())
            ]
        );
        assert!(case_conflicts(&ProxyEnv::default()).is_empty());
    }

    #[test]
    fn recommended_value_examples() {
        let e = env(&[
            ("no_proxy", "localhost,127.0.0.1"),
            ("NO_PROXY", "localhost, .internal"),
        ]);
        let rec = recommended_no_proxy(
            &e,
            &[
                "mybucket.s3.eu-west-1.amazonaws.com",
                "s3.eu-west-1.amazonaws.com",
                "169.254.169.254",
            ],
        );
        assert_eq!(
            rec,
            "localhost,127.0.0.1,.internal,s3.eu-west-1.amazonaws.com,169.254.169.254"
        );
        // Already covered by an existing entry under all three clients.
        let e = env(&[("NO_PROXY", ".amazonaws.com")]);
        assert_eq!(
            recommended_no_proxy(&e, &["s3.eu-west-1.amazonaws.com"]),
            ".amazonaws.com"
        );
        // '*.amazonaws.com' covers nothing, so the host is added.
        let e = env(&[("NO_PROXY", "*.amazonaws.com")]);
        assert_eq!(
            recommended_no_proxy(&e, &["dynamodb.eu-west-1.amazonaws.com"]),
            "*.amazonaws.com,dynamodb.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            recommended_no_proxy(&ProxyEnv::default(), &["::1"]),
            "::1,[::1]"
        );
    }

    #[test]
    fn recommended_value_makes_every_client_direct() {
        let host_sets: &[&[&str]] = &[
            &[
                "mybucket.s3.eu-west-1.amazonaws.com",
                "s3.eu-west-1.amazonaws.com",
            ],
            &[
                "s3.eu-west-1.amazonaws.com",
                "dynamodb.eu-west-1.amazonaws.com",
                "169.254.169.254",
            ],
            &[
                "S3.US-EAST-1.AMAZONAWS.COM.",
                "bucket.s3.us-east-1.amazonaws.com",
                "fd00:ec2::254",
            ],
            &["169.254.169.254", "10.0.0.5"],
        ];
        let starts: &[&[(&str, &str)]] = &[
            &[],
            &[("NO_PROXY", "*")],
            &[
                ("no_proxy", "localhost 10.0.0.0/8"),
                ("NO_PROXY", "*.amazonaws.com"),
            ],
            &[("NO_PROXY", "s3.eu-west-1.amazonaws.com:443,169.254.0.0/16")],
        ];
        for hosts in host_sets {
            for start in starts {
                let rec = recommended_no_proxy(&env(start), hosts);
                let e = env(&[
                    ("HTTP_PROXY", P),
                    ("http_proxy", P),
                    ("HTTPS_PROXY", P),
                    ("https_proxy", P),
                    ("NO_PROXY", rec.as_str()),
                    ("no_proxy", rec.as_str()),
                ]);
                for host in *hosts {
                    let h = normalise_host(host).expect("host");
                    for scheme in ["http", "https"] {
                        let u = url(&format!("{scheme}://{}/", host_display(&h)));
                        for client in HttpClientKind::ALL {
                            let d = decide(client, &e, &u);
                            assert!(
                                d.proxy.is_none(),
                                "{rec} / {u} / {client:?}: {}",
                                d.explanation
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn redaction() {
        let cases = [
            (
                "http://user:s3cr3t@proxy.corp:3128",
                "http://***@proxy.corp:3128",
            ),
            ("http://proxy.corp:3128", "http://proxy.corp:3128"),
            ("http://proxy.corp:3128/", "http://proxy.corp:3128/"),
            ("user:s3cr3t@proxy.corp:3128", "***@proxy.corp:3128"),
            // A token as the user alone, with an empty password, and without a scheme.
            (
                "http://TOKEN@proxy.corp:3128/",
                "http://***@proxy.corp:3128/",
            ),
            (
                "http://TOKEN:@proxy.corp:3128",
                "http://***@proxy.corp:3128",
            ),
            ("TOKEN@proxy.corp:3128", "***@proxy.corp:3128"),
            ("http://:s3cr3t@proxy.corp", "http://***@proxy.corp"),
            ("http://@proxy.corp", "http://***@proxy.corp"),
            ("http://us:p@ss/w0rd@proxy.corp", "http://***@proxy.corp"),
            (
                "socks5h://u:p%40ss@10.0.0.1:1080/",
                "socks5h://***@10.0.0.1:1080/",
            ),
            // "://" later in the value is not a scheme separator.
            (
                "TOKEN@proxy.corp:3128/?next=http://x",
                "***@proxy.corp:3128/?next=http://x",
            ),
            ("u:a://b@proxy.corp", "***@proxy.corp"),
            ("http://u:a://b@proxy.corp", "http://***@proxy.corp"),
            ("://TOKEN@proxy.corp", "***@proxy.corp"),
            ("", ""),
            ("::@", "***@"),
            ("localhost,169.254.169.254", "localhost,169.254.169.254"),
        ];
        for (raw, want) in cases {
            assert_eq!(redact_proxy_url(raw), want, "{raw}");
        }
    }

    #[test]
    fn password_never_leaks() {
        let secret = "Sup3rS3cret";
        let values = [
            format!("http://alice:{secret}@proxy.corp:3128"),
            format!("alice:{secret}@proxy.corp:3128"),
            format!("https://alice:{secret}@proxy.corp"),
            format!("socks5://alice:{secret}@proxy.corp"),
            format!("http://alice:{secret}/x@proxy.corp"),
            format!("ftp://alice:{secret}@proxy.corp"),
            // The secret as the user name: a token with no password, or an empty one.
            format!("http://{secret}@proxy.corp:3128/"),
            format!("http://{secret}:@proxy.corp:3128"),
            format!("{secret}@proxy.corp:3128"),
            format!("https://{secret}@proxy.corp"),
            format!("socks5h://{secret}@proxy.corp"),
            format!("http://{secret}@[::1]:3128"),
            format!("http://{secret}/x@proxy.corp"),
        ];
        for value in &values {
            for var in [
                "HTTPS_PROXY",
                "https_proxy",
                "ALL_PROXY",
                "http_proxy",
                "HTTP_PROXY",
            ] {
                let e = env(&[(var, value.as_str())]);
                for u in [url(S3), url(IMDS)] {
                    for client in HttpClientKind::ALL {
                        let d = decide(client, &e, &u);
                        let text = format!("{d:?}");
                        assert!(!text.contains(secret), "{value} via {var}: {text}");
                    }
                }
            }
        }
        let u = url(&format!("https://bob:{secret}@s3.eu-west-1.amazonaws.com/"));
        let d = decide(Boto, &env(&[("HTTPS_PROXY", P)]), &u);
        assert!(!format!("{d:?}").contains(secret));
    }

    #[test]
    fn never_panics_on_odd_values() {
        let odd = [
            "",
            " ",
            "*",
            "/",
            "//",
            ":",
            "@",
            "[",
            "]",
            "[::1",
            "http://",
            "http://@",
            "http://:",
            "http://[::1]:99999",
            "h\u{e9}llo:1",
            "\u{1F600}://x",
            ".",
            "..",
            ",,,",
            "*.",
            "10.0.0.0/99",
            "10.0.0.0/-1",
            "::/0",
            "a b",
            "\t",
            "socks5h://",
            "HTTP://P:1",
            "http:proxy",
            "x:y:z",
            "%zz@host",
            "[@]",
        ];
        let urls = [
            url(S3),
            url(IMDS),
            url("http://[::1]:8080/"),
            url("https://a./"),
            url("file:///etc/passwd"),
            url("data:text/plain,x"),
        ];
        for a in odd {
            for b in odd {
                let e = env(&[
                    ("HTTPS_PROXY", a),
                    ("http_proxy", a),
                    ("NO_PROXY", b),
                    ("no_proxy", b),
                    ("ALL_PROXY", b),
                ]);
                for u in &urls {
                    for client in HttpClientKind::ALL {
                        let _ = decide(client, &e, u);
                    }
                    let _ = ineffective_entries(&e, u, &["10.0.0.1".parse().expect("ip")]);
                }
                let _ = recommended_no_proxy(&e, &[a, b]);
                let _ = case_conflicts(&e);
                let _ = redact_proxy_url(a);
            }
        }
    }

    #[test]
    fn curl_blank_separated_lists() {
        let e = env(&[("http_proxy", P), ("no_proxy", "localhost 169.254.169.254")]);
        let d = decide(Curl, &e, &url(IMDS));
        assert!(d.proxy.is_some());
        assert!(
            d.explanation
                .contains("7.86–8.8 would match '169.254.169.254'"),
            "{}",
            d.explanation
        );
        let e = env(&[
            ("http_proxy", P),
            ("no_proxy", "localhost , 169.254.169.254"),
        ]);
        assert!(decide(Curl, &e, &url(IMDS)).proxy.is_none());
    }

    #[test]
    fn unusable_values_name_each_client_they_break() {
        // (value, SDK fails, curl fails, botocore fails); the SDK ignores values it cannot
        // parse and connects directly, which is not a failure.
        let cases = [
            ("socks5://127.0.0.1:1080", true, false, true),
            ("socks5h://127.0.0.1:1080", true, false, true),
            ("HTTP://127.0.0.1:3128", false, false, true),
            ("ftp://127.0.0.1:21", false, true, true),
            ("http://127.0.0.1:3128 ", false, true, true),
            ("http://127.0.0.1:3128", false, false, false),
            ("127.0.0.1:3128", false, false, false),
        ];
        for (value, sdk, curl, boto) in cases {
            let e = env(&[("HTTPS_PROXY", value)]);
            let got = |c| decide(c, &e, &url(S3)).fails;
            assert_eq!(
                (got(Sdk), got(Curl), got(Boto)),
                (sdk, curl, boto),
                "{value:?}"
            );
        }
        let d = decide(
            Boto,
            &env(&[("HTTPS_PROXY", "HTTP://127.0.0.1:3128")]),
            &url(S3),
        );
        assert!(
            d.explanation.contains("host named 'http'"),
            "{}",
            d.explanation
        );
    }

    #[test]
    fn curl_rules_follow_the_installed_version() {
        let e = env(&[("http_proxy", P), ("no_proxy", "localhost 169.254.169.254")]);
        let old = e.clone().with_curl(CurlVersion::installed(7, 88, 1));
        let d = decide(Curl, &old, &url(IMDS));
        assert!(d.proxy.is_none(), "{}", d.explanation);
        assert_eq!(d.client_version.as_deref(), Some("curl 7.88.1"));
        assert!(
            d.explanation.starts_with("curl 7.88.1 "),
            "{}",
            d.explanation
        );
        assert!(d.explanation.contains("curl ≥ 8.9 stops at the blank"));
        let new = e.clone().with_curl(CurlVersion::installed(8, 9, 0));
        assert!(decide(Curl, &new, &url(IMDS)).proxy.is_some());
        // Unknown curl: the current rules, and the decision says they were assumed.
        let d = decide(Curl, &e, &url(IMDS));
        assert!(d.proxy.is_some());
        assert!(
            d.client_version
                .as_deref()
                .is_some_and(|v| v.contains("assumed"))
        );
        // The blank-separated entry is not "ineffective" for a curl that reads it.
        let e = env(&[("HTTPS_PROXY", P), ("NO_PROXY", "localhost .amazonaws.com")])
            .with_curl(CurlVersion::installed(7, 88, 1));
        let found = ineffective_entries(&e, &url(S3), &[]);
        assert!(
            found.iter().all(|f| !f.reason.contains("blank")),
            "{found:?}"
        );
        assert_eq!(
            decide(Sdk, &e, &url(BUCKET)).client_version,
            None,
            "only curl's rules depend on a version"
        );
    }

    #[test]
    fn curl_version_line() {
        assert_eq!(
            parse_curl_version(
                "curl 7.88.1 (x86_64-pc-linux-gnu) libcurl/7.88.1 OpenSSL/3.0.19 zlib/1.2.13"
            ),
            Some((7, 88, 1))
        );
        assert_eq!(
            parse_curl_version("curl 8.10.0-DEV (x) libcurl/8.9.1-DEV"),
            Some((8, 9, 1))
        );
        assert_eq!(parse_curl_version("curl 8.5"), Some((8, 5, 0)));
        assert_eq!(parse_curl_version("wget 1.21"), None);
        assert_eq!(parse_curl_version(""), None);
        assert_eq!(parse_curl_version("curl x.y"), None);
        let _ = CurlVersion::detect();
    }

    #[test]
    fn botocore_endpoints() {
        let ep = |u: &str, known: &[&str]| {
            let known: Vec<Url> = known.iter().map(|k| url(k)).collect();
            botocore_endpoint_url(&url(u), &known).to_string()
        };
        assert_eq!(ep(BUCKET, &[]), "https://s3.eu-west-1.amazonaws.com/");
        assert_eq!(
            ep("https://b.s3-fips.dualstack.us-east-1.amazonaws.com/k", &[]),
            "https://s3-fips.dualstack.us-east-1.amazonaws.com/"
        );
        assert_eq!(
            ep(
                "https://b--use1-az4--x-s3.s3express-use1-az4.us-east-1.amazonaws.com/",
                &[]
            ),
            "https://s3.us-east-1.amazonaws.com/"
        );
        assert_eq!(
            ep("https://123456789012.ddb.eu-west-1.amazonaws.com/", &[]),
            "https://dynamodb.eu-west-1.amazonaws.com/"
        );
        // Not an account id: left alone.
        assert_eq!(
            ep("https://shop.ddb.example.com/", &[]),
            "https://shop.ddb.example.com/"
        );
        // An interface endpoint name under a custom endpoint URL: found among the known URLs.
        let vpce = "https://bucket.vpce-1a2b.s3.eu-west-1.vpce.amazonaws.com/";
        assert_eq!(ep(vpce, &[]), vpce);
        assert_eq!(
            ep(
                vpce,
                &["https://vpce-1a2b.s3.eu-west-1.vpce.amazonaws.com/", S3]
            ),
            "https://vpce-1a2b.s3.eu-west-1.vpce.amazonaws.com/"
        );
        assert_eq!(ep(S3, &[]), S3);
        assert_eq!(ep(IMDS, &[]), IMDS);
        let d = decide(Boto, &env(&[("HTTPS_PROXY", P)]), &url(BUCKET));
        assert_eq!(
            d.checked_url.as_deref(),
            Some("https://s3.eu-west-1.amazonaws.com/")
        );
        assert!(decide(Boto, &env(&[]), &url(S3)).checked_url.is_none());
        // The recommended value covers botocore's endpoint as well as the request name.
        let rec = recommended_no_proxy(
            &ProxyEnv::default(),
            &["myap-123456789012.s3-accesspoint.eu-west-1.amazonaws.com"],
        );
        assert_eq!(
            rec,
            "myap-123456789012.s3-accesspoint.eu-west-1.amazonaws.com,s3.eu-west-1.amazonaws.com"
        );
    }

    #[test]
    fn process_environment_keeps_its_order() {
        let e = ProxyEnv::from_pairs([
            ("https_proxy", "a"),
            ("PATH", "/bin"),
            ("HTTPS_PROXY", "b"),
            ("https_proxy", "c"),
        ]);
        let names: Vec<&str> = e.vars().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["https_proxy", "HTTPS_PROXY"]);
        assert_eq!(e.get("https_proxy"), Some("c"));
    }

    #[test]
    fn serde_names() {
        assert_eq!(HttpClientKind::AwsSdkRust.label(), "AWS SDK for Rust");
        assert_eq!(HttpClientKind::Curl.label(), "curl");
        assert_eq!(
            HttpClientKind::Botocore.label(),
            "botocore (AWS CLI, boto3)"
        );
        assert_eq!(HttpClientKind::ALL.len(), 3);
    }
}
