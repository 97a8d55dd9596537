//! The servers of the VPC lab (lab/lab.sh): the test fakes of tests/support started on the
//! addresses of one lab namespace, from a JSON config file, until SIGTERM or SIGINT.
//!
//! Run inside the namespace that owns the addresses:
//!
//! ```sh
//! ip netns exec vpl-aws target/debug/examples/lab_servers /run/vpce-lab/aws.json & echo $!
//! ```
//!
//! The config (every section optional; unknown fields are refused):
//!
//! ```json
//! {
//!   "ready_file": "/run/vpce-lab/aws.ready",
//!   "cas": [{"id": "lab", "name": "vpce-probe lab CA",
//!            "cert": "/run/vpce-lab/ca/lab.pem", "key": "/run/vpce-lab/ca/lab.key"}],
//!   "dns": [{"bind": "169.254.169.253:53", "mode": "answer",
//!            "records": {"s3.eu-west-1.amazonaws.com": ["198.51.100.10"], "nodata.example": []}}],
//!   "imds": [{"bind": "169.254.169.254:80", "mode": "normal", "facts": {"region": "eu-west-1", ...}}],
//!   "fronts": [{"bind": "198.51.100.10:443", "ca": "lab", "names": ["s3.eu-west-1.amazonaws.com"],
//!               "upstream": "127.0.0.1:5000",
//!               "rules": [{"host": "b.s3.eu-west-1.amazonaws.com", "method": "GET",
//!                          "response": {"s3_error": {"status": 403, "code": "AccessDenied",
//!                                                    "message": "Access Denied"}}}],
//!               "host_rewrites": [["ddb.eu-west-1.amazonaws.com", "dynamodb.eu-west-1.amazonaws.com"]],
//!               "date_offset_secs": 0, "extra_headers": [["Via", "1.1 proxy"]],
//!               "body_rules": [["PrefixListId=pl-1", {"raw": {"status": 200, "body": "..."}}]],
//!               "max_request_skew_secs": 900,
//!               "canned_targets": {"bucket_prefix": "lab-canned-bucket-",
//!                                  "table_prefix": "lab-canned-table-", "region": "eu-west-1"}}],
//!   "tls": [{"bind": "10.0.1.60:443", "ca": "lab", "names": ["s3.eu-west-1.amazonaws.com"]}],
//!   "tcp_sinks": [{"bind": "203.0.113.10:443"}],
//!   "proxies": [{"bind": "127.0.0.1:3128", "mode": "tunnel", "hosts": {"x.example": "127.0.0.1"}}]
//! }
//! ```
//!
//! A CA whose `cert` and `key` files exist is loaded from them, otherwise it is made and saved
//! there (key mode 0600), so restarting the servers with another config keeps the CA the
//! instance trusts. The ready file (our pid) is written once every server is bound.
//! Canned responses: `s3_error`, `dynamodb_error`, `s3_wrong_region` (the constructors of
//! `CannedResponse`) or `raw` (`status`, `reason`, `headers`, `body`). A rule's `host` and
//! `path_prefix` may hold a `*` (a run of characters without `.`, `/` or `?`); `body_contains`
//! matches a text of the request body. `canned_targets` adds the rules
//! of `healthy_target_rules` after the front's own: buckets and tables the front answers
//! itself as healthy ones (`lab.sh seed --canned`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use support::*;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    ready_file: Option<PathBuf>,
    #[serde(default)]
    cas: Vec<CaConfig>,
    #[serde(default)]
    dns: Vec<DnsConfig>,
    #[serde(default)]
    imds: Vec<ImdsConfig>,
    #[serde(default)]
    fronts: Vec<FrontConfig>,
    #[serde(default)]
    tls: Vec<TlsConfig>,
    #[serde(default)]
    tcp_sinks: Vec<SinkConfig>,
    #[serde(default)]
    proxies: Vec<ProxyConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaConfig {
    id: String,
    name: String,
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DnsConfig {
    bind: SocketAddr,
    #[serde(default = "answer")]
    mode: String,
    #[serde(default)]
    records: BTreeMap<String, Vec<IpAddr>>,
}

fn answer() -> String {
    "answer".into()
}

fn normal() -> String {
    "normal".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImdsConfig {
    bind: SocketAddr,
    #[serde(default = "normal")]
    mode: String,
    facts: FactsConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FactsConfig {
    region: String,
    az: String,
    instance_id: String,
    account_id: String,
    mac: String,
    vpc_id: String,
    subnet_id: String,
    security_group_ids: Vec<String>,
    vpc_cidrs: Vec<String>,
    local_ipv4: String,
    public_ipv4: Option<String>,
    role: Option<String>,
    /// Seconds from now until the role's credentials expire (default 6 h; negative: expired).
    #[serde(default = "six_hours")]
    credentials_expire_in_secs: i64,
}

fn six_hours() -> i64 {
    6 * 3600
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontConfig {
    bind: SocketAddr,
    ca: String,
    names: Vec<String>,
    upstream: SocketAddr,
    #[serde(default)]
    rules: Vec<RuleConfig>,
    #[serde(default)]
    host_rewrites: Vec<(String, String)>,
    #[serde(default)]
    date_offset_secs: i64,
    #[serde(default)]
    extra_headers: Vec<(String, String)>,
    /// Answers chosen by a text the request body contains (EC2's Query protocol names the
    /// operation and its parameters there): `[["PrefixListId=pl-1", {"raw": ...}]]`.
    #[serde(default)]
    body_rules: Vec<(String, ResponseConfig)>,
    /// Refuse requests signed more than this many seconds from the front's clock, as AWS does.
    #[serde(default)]
    max_request_skew_secs: Option<i64>,
    /// Buckets and tables the front answers itself as healthy ones (after `rules`), for
    /// measuring many targets without the emulator behind the front.
    canned_targets: Option<CannedTargetsConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CannedTargetsConfig {
    bucket_prefix: String,
    table_prefix: String,
    region: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleConfig {
    host: Option<String>,
    method: Option<String>,
    path_prefix: Option<String>,
    amz_target_contains: Option<String>,
    body_contains: Option<String>,
    response: ResponseConfig,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum ResponseConfig {
    S3Error {
        status: u16,
        code: String,
        message: String,
    },
    DynamodbError {
        status: u16,
        #[serde(rename = "type")]
        type_name: String,
        message: String,
    },
    S3WrongRegion {
        bucket: String,
        region: String,
    },
    Raw {
        status: u16,
        #[serde(default)]
        reason: String,
        #[serde(default)]
        headers: Vec<(String, String)>,
        #[serde(default)]
        body: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsConfig {
    bind: SocketAddr,
    ca: String,
    names: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SinkConfig {
    bind: SocketAddr,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProxyConfig {
    bind: SocketAddr,
    #[serde(default = "tunnel")]
    mode: String,
    #[serde(default)]
    hosts: BTreeMap<String, IpAddr>,
    auth: Option<(String, String)>,
}

fn tunnel() -> String {
    "tunnel".into()
}

/// Everything started; dropping it stops every server.
#[derive(Default)]
struct Running {
    dns: Vec<DnsServer>,
    imds: Vec<ImdsServer>,
    fronts: Vec<FrontServer>,
    tls: Vec<TlsServer>,
    sinks: Vec<TcpSink>,
    proxies: Vec<ProxyServer>,
}

impl Running {
    fn count(&self) -> usize {
        self.dns.len()
            + self.imds.len()
            + self.fronts.len()
            + self.tls.len()
            + self.sinks.len()
            + self.proxies.len()
    }
}

fn write_atomic(path: &Path, contents: &str, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, contents).map_err(|e| format!("write {}: {e}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("rename to {}: {e}", path.display()))
}

fn load_or_make_ca(c: &CaConfig) -> Result<TestCa, String> {
    if c.cert.exists() && c.key.exists() {
        let cert = std::fs::read_to_string(&c.cert)
            .map_err(|e| format!("read {}: {e}", c.cert.display()))?;
        let key = std::fs::read_to_string(&c.key)
            .map_err(|e| format!("read {}: {e}", c.key.display()))?;
        return TestCa::from_pem(&c.name, &cert, &key)
            .map_err(|e| format!("CA {} from {}: {e}", c.id, c.cert.display()));
    }
    let ca = TestCa::new(&c.name);
    for p in [&c.cert, &c.key] {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        }
    }
    write_atomic(&c.key, &ca.key_pem(), 0o600)?;
    write_atomic(&c.cert, &ca.cert_pem(), 0o644)?;
    Ok(ca)
}

fn canned(r: &ResponseConfig) -> CannedResponse {
    match r {
        ResponseConfig::S3Error {
            status,
            code,
            message,
        } => CannedResponse::s3_error(*status, code, message),
        ResponseConfig::DynamodbError {
            status,
            type_name,
            message,
        } => CannedResponse::dynamodb_error(*status, type_name, message),
        ResponseConfig::S3WrongRegion { bucket, region } => {
            CannedResponse::s3_wrong_region(bucket, region)
        }
        ResponseConfig::Raw {
            status,
            reason,
            headers,
            body,
        } => CannedResponse {
            status: *status,
            reason: reason.clone(),
            headers: headers.clone(),
            body: body.clone(),
        },
    }
}

fn facts(f: &FactsConfig) -> ImdsFacts {
    let now = SystemTime::now();
    let offset = Duration::from_secs(f.credentials_expire_in_secs.unsigned_abs());
    let expiration = if f.credentials_expire_in_secs >= 0 {
        now + offset
    } else {
        now - offset
    };
    ImdsFacts {
        region: f.region.clone(),
        az: f.az.clone(),
        instance_id: f.instance_id.clone(),
        account_id: f.account_id.clone(),
        mac: f.mac.clone(),
        vpc_id: f.vpc_id.clone(),
        subnet_id: f.subnet_id.clone(),
        security_group_ids: f.security_group_ids.clone(),
        vpc_cidrs: f.vpc_cidrs.clone(),
        local_ipv4: f.local_ipv4.clone(),
        public_ipv4: f.public_ipv4.clone(),
        role: f.role.clone(),
        credentials_expiration: rfc3339(expiration),
    }
}

fn start(config: &Config) -> Result<Running, String> {
    let mut cas: BTreeMap<&str, TestCa> = BTreeMap::new();
    for c in &config.cas {
        cas.insert(c.id.as_str(), load_or_make_ca(c)?);
    }
    let leaf = |ca: &str, names: &[String]| -> Result<Leaf, String> {
        let ca = cas
            .get(ca)
            .ok_or_else(|| format!("no CA with id {ca:?} in \"cas\""))?;
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        Ok(ca.issue(&names))
    };
    let mut run = Running::default();
    for d in &config.dns {
        let mut records = DnsRecords::new();
        for (name, ips) in &d.records {
            if ips.is_empty() {
                records = records.add_empty(name);
            }
            for ip in ips {
                records = records.add(name, *ip);
            }
        }
        let mode = match d.mode.as_str() {
            "answer" => DnsMode::Answer,
            "drop" => DnsMode::Drop,
            "servfail" => DnsMode::ServFail,
            other => return Err(format!("dns {}: unknown mode {other:?}", d.bind)),
        };
        run.dns.push(start_dns(d.bind, records, mode));
    }
    for i in &config.imds {
        let mode = match i.mode.as_str() {
            "normal" => ImdsMode::Normal,
            "unresponsive" => ImdsMode::Unresponsive,
            "token_forbidden" => ImdsMode::TokenForbidden,
            other => return Err(format!("imds {}: unknown mode {other:?}", i.bind)),
        };
        run.imds.push(start_imds(i.bind, facts(&i.facts), mode));
    }
    for f in &config.fronts {
        let options = FrontOptions {
            body_rules: f
                .body_rules
                .iter()
                .map(|(needle, r)| (needle.clone(), canned(r)))
                .collect(),
            max_request_skew_secs: f.max_request_skew_secs,
            rules: f
                .rules
                .iter()
                .map(|r| FrontRule {
                    host: r.host.clone(),
                    method: r.method.clone(),
                    path_prefix: r.path_prefix.clone(),
                    amz_target_contains: r.amz_target_contains.clone(),
                    body_contains: r.body_contains.clone(),
                    response: canned(&r.response),
                })
                .chain(f.canned_targets.iter().flat_map(|t| {
                    healthy_target_rules(&t.bucket_prefix, &t.table_prefix, &t.region)
                }))
                .collect(),
            host_rewrites: f.host_rewrites.clone(),
            date_offset_secs: f.date_offset_secs,
            extra_headers: f.extra_headers.clone(),
            // The lab makes silence with its firewall; the option is the loopback tests'.
            silent_after_handshake: false,
        };
        let leaf = leaf(&f.ca, &f.names)?;
        run.fronts
            .push(start_front(f.bind, &leaf, f.upstream, options));
    }
    for t in &config.tls {
        let leaf = leaf(&t.ca, &t.names)?;
        run.tls.push(start_tls(t.bind, &leaf));
    }
    for s in &config.tcp_sinks {
        run.sinks.push(start_tcp_sink(s.bind));
    }
    for p in &config.proxies {
        let mode = match p.mode.as_str() {
            "tunnel" => ProxyMode::Tunnel,
            "forbid" => ProxyMode::Forbid,
            other => return Err(format!("proxy {}: unknown mode {other:?}", p.bind)),
        };
        let hosts = p.hosts.iter().map(|(h, ip)| (h.clone(), *ip)).collect();
        run.proxies
            .push(start_connect_proxy(p.bind, mode, hosts, p.auth.clone()));
    }
    Ok(run)
}

fn wait_for_signal() -> Result<&'static str, String> {
    use tokio::signal::unix::{SignalKind, signal};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async {
        let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM: {e}"))?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT: {e}"))?;
        let mut hup = signal(SignalKind::hangup()).map_err(|e| format!("SIGHUP: {e}"))?;
        Ok(tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            _ = hup.recv() => "SIGHUP",
        })
    })
}

fn main() {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: lab_servers CONFIG.json");
        std::process::exit(2);
    };
    let path = PathBuf::from(path);
    let config: Config = match std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lab_servers: {}: {e}", path.display());
            std::process::exit(2);
        }
    };
    let running = match start(&config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lab_servers: {e}");
            std::process::exit(1);
        }
    };
    if let Some(ready) = &config.ready_file
        && let Err(e) = write_atomic(ready, &format!("{}\n", std::process::id()), 0o644)
    {
        eprintln!("lab_servers: {e}");
        std::process::exit(1);
    }
    eprintln!(
        "lab_servers: {} server(s) up from {} (pid {})",
        running.count(),
        path.display(),
        std::process::id()
    );
    match wait_for_signal() {
        Ok(sig) => eprintln!("lab_servers: {sig}: stopping"),
        Err(e) => eprintln!("lab_servers: cannot wait for signals ({e}): stopping"),
    }
    drop(running);
}
