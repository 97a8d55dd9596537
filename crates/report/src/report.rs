//! The report: plain serde data and nothing else. Renderers and sinks take `&Report`.
//! Field names are a contract (design.md): add, never rename.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::proxy::{HttpClientKind, ProxyChoice};

pub const SCHEMA_VERSION: &str = "1.0";

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Report {
    pub schema_version: String,
    /// Unique per run; collectors use it to drop duplicates.
    pub report_id: String,
    pub tool: ToolInfo,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: u64,
    pub host: HostFacts,
    /// None when IMDS could not be read (off EC2, blocked, or disabled).
    pub instance: Option<InstanceFacts>,
    pub region: RegionFacts,
    pub config: EffectiveConfig,
    pub ip_ranges: RangesInfo,
    pub targets: Vec<TargetReport>,
    pub checks: Vec<CheckRecord>,
    pub findings: Vec<Finding>,
    pub verdict: Verdict,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ToolInfo {
    pub name: String,
    pub version: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct HostFacts {
    pub hostname: Option<String>,
    pub os: Option<String>,
    pub kernel: Option<String>,
    pub uptime_secs: u64,
    /// The local wall clock when the run started (RFC 3339, UTC).
    pub clock_utc: String,
    /// The kernel's ephemeral source-port range (net.ipv4.ip_local_port_range).
    pub ephemeral_ports: Option<PortRange>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn overlaps(&self, other: &PortRange) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InstanceFacts {
    pub region: Option<String>,
    pub availability_zone: Option<String>,
    pub instance_id: Option<String>,
    pub account_id: Option<String>,
    pub mac: Option<String>,
    /// The primary network interface (eni-...).
    pub eni_id: Option<String>,
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    pub private_ipv4: Option<String>,
    pub public_ipv4: Option<String>,
    pub security_group_ids: Vec<String>,
    pub vpc_cidrs: Vec<String>,
    /// The role of the instance profile (its name only; credentials are never read here).
    pub iam_role: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct RegionFacts {
    /// The region the probe used for service names and ranges.
    pub effective: Option<String>,
    /// Where `effective` came from: "--region", "AWS_REGION", "profile", "imds".
    pub effective_source: Option<String>,
    pub instance: Option<String>,
    /// What the AWS SDKs on this host would use (environment, then profile), if anything.
    pub sdk: Option<String>,
    pub sdk_source: Option<String>,
    /// The S3 endpoint host the SDK would use for this region and environment.
    pub s3_endpoint_host: Option<String>,
}

/// The configuration the run used, with secrets redacted.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct EffectiveConfig {
    pub buckets: Vec<String>,
    pub tables: Vec<String>,
    pub key: Option<String>,
    /// Whether --item-key was given (its value is data, not shown).
    pub item_key: bool,
    pub write_test: bool,
    /// Whether the signed calls ran (off with --no-calls).
    pub calls: bool,
    /// Whether the VPC's configuration was read (off with --no-control-plane or without the feature).
    pub control_plane: bool,
    /// Whether Reachability Analyzer ran (--reachability-analyzer).
    pub reachability_analyzer: bool,
    pub region: Option<String>,
    pub profile: Option<String>,
    pub timeout_ms: u64,
    pub deadline_ms: u64,
    pub ip_ranges: String,
    pub internet_canary: Option<String>,
    pub expect_path: String,
    pub vpc_resolver: String,
    pub resolv_conf: String,
    #[serde(default)]
    pub hosts_file: String,
    #[serde(default)]
    pub nsswitch_conf: String,
    pub expect_issuers: Vec<String>,
    pub imds_endpoint: Option<String>,
    pub endpoint_overrides: Vec<EnvVar>,
    /// Proxy variables as set, passwords replaced by `***`.
    pub proxy_env: Vec<EnvVar>,
    pub extra_ca_files: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct RangesInfo {
    /// "embedded" or the file path given with --ip-ranges.
    pub source: String,
    /// The `createDate` of the ip-ranges document.
    pub create_date: String,
    pub prefixes: usize,
}

#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    #[default]
    S3,
    Dynamodb,
}

impl Service {
    pub fn as_str(self) -> &'static str {
        match self {
            Service::S3 => "s3",
            Service::Dynamodb => "dynamodb",
        }
    }
    /// The `service` value in ip-ranges.json.
    pub fn ranges_name(self) -> &'static str {
        match self {
            Service::S3 => "S3",
            Service::Dynamodb => "DYNAMODB",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct TargetReport {
    /// "s3:<bucket>" or "dynamodb:<table>".
    pub id: String,
    pub service: Service,
    pub name: String,
    /// The host names the SDKs use for this target.
    pub endpoint_names: Vec<String>,
    /// Set when AWS_ENDPOINT_URL_S3 / _DYNAMODB / AWS_ENDPOINT_URL redirects the SDK.
    pub endpoint_override: Option<String>,
    /// Per name: the settings that produced it and the addresses the applications use.
    #[serde(default)]
    pub names: Vec<EndpointName>,
    pub path: PathVerdict,
}

/// One host name a target's clients call, and where both the name and its addresses came from.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct EndpointName {
    pub name: String,
    /// Each setting that produced the name, with its source (variable, profile, rules).
    pub settings: Vec<String>,
    /// The addresses the applications connect to, each with its source, e.g.
    /// "198.51.100.10 (dns)" or "198.51.100.12 (/etc/hosts line 3)".
    pub addresses: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PathKind {
    GatewayEndpoint,
    InterfaceEndpoint,
    Proxy,
    Internet,
    Unknown,
}

impl PathKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PathKind::GatewayEndpoint => "gateway-endpoint",
            PathKind::InterfaceEndpoint => "interface-endpoint",
            PathKind::Proxy => "proxy",
            PathKind::Internet => "internet",
            PathKind::Unknown => "unknown",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// The route table proves it (control-plane evidence).
    Confirmed,
    /// The only path left by the data-plane evidence.
    Inferred,
    Unknown,
}

impl Confidence {
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Confirmed => "confirmed",
            Confidence::Inferred => "inferred",
            Confidence::Unknown => "unknown",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct PathVerdict {
    pub kind: PathKind,
    pub confidence: Confidence,
    /// Whether the service answered on TCP 443 through this path at all.
    pub reachable: bool,
    pub evidence: Vec<String>,
    /// What would turn this verdict into a confirmed one, when it is not.
    pub to_confirm: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Ok,
    Warn,
    Fail,
    Skip,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Ok => "ok",
            CheckStatus::Warn => "warn",
            CheckStatus::Fail => "fail",
            CheckStatus::Skip => "skip",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    Imds,
    Host,
    Region,
    Dns,
    Tcp,
    Nacl,
    Tls,
    Proxy,
    Canary,
    Credentials,
    Sts,
    S3,
    Dynamodb,
    Ec2,
    Reachability,
}

impl CheckKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Imds => "imds",
            CheckKind::Host => "host",
            CheckKind::Region => "region",
            CheckKind::Dns => "dns",
            CheckKind::Tcp => "tcp",
            CheckKind::Nacl => "nacl",
            CheckKind::Tls => "tls",
            CheckKind::Proxy => "proxy",
            CheckKind::Canary => "canary",
            CheckKind::Credentials => "creds",
            CheckKind::Sts => "sts",
            CheckKind::S3 => "s3",
            CheckKind::Dynamodb => "dynamodb",
            CheckKind::Ec2 => "ec2",
            CheckKind::Reachability => "analyzer",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct CheckRecord {
    /// Stable within a report, e.g. "dns/system/s3.eu-west-1.amazonaws.com/A".
    pub id: String,
    pub check: CheckKind,
    /// The host name, address or target the check is about.
    pub subject: String,
    pub status: CheckStatus,
    pub summary: String,
    pub duration_ms: u64,
    pub evidence: Evidence,
}

/// Typed evidence of each check, exactly what diagnosis read.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Evidence {
    Imds(ImdsEvidence),
    Region(RegionFacts),
    Dns(DnsLookup),
    AppResolution(AppResolution),
    Tcp(TcpAttempt),
    Nacl(NaclSweep),
    Tls(TlsHandshake),
    Proxy(ProxyProbe),
    ProxyEnv(ProxyEnvEvidence),
    Canary(CanaryResult),
    Credentials(CredentialsEvidence),
    Call(Box<CallResult>),
    ControlPlane(Box<ControlPlane>),
    Reachability(ReachabilityEvidence),
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct CredentialsEvidence {
    pub found: bool,
    /// The provider of the default chain that supplied them (Environment, Profile, WebIdentityToken, Ec2InstanceMetadata...).
    pub source: Option<String>,
    /// The access key id with all but its last 4 characters masked.
    pub access_key_id: Option<String>,
    pub expires_at: Option<String>,
    pub expired: bool,
    pub error: Option<String>,
    /// STS GetCallerIdentity: who the calls are made as.
    pub identity_arn: Option<String>,
    pub account: Option<String>,
    /// Why GetCallerIdentity failed (often: no STS path from a private subnet; not an S3 failure).
    pub identity_error: Option<String>,
    pub duration_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CallOutcome {
    /// 2xx.
    Ok,
    /// The service (or something speaking for it) answered with an error.
    ServiceError,
    Timeout,
    /// No connection (refused, unreachable, TLS, proxy).
    ConnectionFailed,
    /// Not attempted; `error` says why.
    Skipped,
    Error,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct CallResult {
    pub service: Service,
    /// "s3:bucket", "dynamodb:table", or "host" for STS.
    pub target: String,
    /// e.g. "HeadBucket", "DescribeTable (account endpoint)".
    pub operation: String,
    /// IAM action the call needs, e.g. "s3:ListBucket".
    pub action: String,
    pub endpoint_host: Option<String>,
    /// The address the call was sent to (the name was pinned to it), when not through a proxy.
    pub peer: Option<String>,
    /// The proxy the SDK sent the call through, redacted.
    pub proxy: Option<String>,
    pub status: Option<u16>,
    pub outcome: CallOutcome,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// Response headers that show who answered (request ids, Server, Via, Date...).
    pub headers: std::collections::BTreeMap<String, String>,
    pub finding: Option<crate::catalogue::FindingCode>,
    pub denial: Option<crate::denial::Denial>,
    pub bucket_region: Option<String>,
    /// Server clock minus local clock, from the Date header.
    pub clock_offset_secs: Option<i64>,
    /// A short result, e.g. the bucket's location or the table's status.
    pub detail: Option<String>,
    pub duration_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ImdsEvidence {
    pub endpoint: String,
    pub reachable: bool,
    pub error: Option<String>,
    /// Paths that could not be read (404 is normal for some, e.g. public-ipv4).
    pub missing: Vec<String>,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ResolverKind {
    /// The host's own configuration (resolv.conf), as the SDKs resolve.
    System,
    /// The Amazon-provided VPC resolver.
    Vpc,
    /// The applications' own path (getaddrinfo: nsswitch order, hosts file, DNS, local stub).
    Application,
}

impl ResolverKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResolverKind::System => "system",
            ResolverKind::Vpc => "vpc",
            ResolverKind::Application => "application",
        }
    }
}

/// The nsswitch source that answered a name for the applications.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AppSource {
    /// The hosts file (`files`).
    HostsFile,
    /// The DNS servers of resolv.conf (`dns`).
    Dns,
    /// systemd-resolved (`resolve`), asked at its stub listener.
    Resolved,
    /// A source the probe does not evaluate (mdns, nis, ...).
    Other,
}

impl AppSource {
    pub fn as_str(self) -> &'static str {
        match self {
            AppSource::HostsFile => "hosts file",
            AppSource::Dns => "dns",
            AppSource::Resolved => "systemd-resolved",
            AppSource::Other => "another nsswitch source",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HostsFileEntry {
    pub path: String,
    /// 1-based line number.
    pub line: usize,
    /// The line without its comment.
    pub text: String,
}

/// A name resolved the way the instance's applications resolve it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct AppResolution {
    pub name: String,
    pub service: Service,
    /// The `hosts:` sources of nsswitch.conf, in order.
    pub nss_sources: Vec<String>,
    /// Where the sources came from (the file, or glibc's default).
    pub nss_origin: String,
    /// What each source asked gave, in order.
    pub steps: Vec<String>,
    /// The source whose answer the applications use; none when no source answered.
    pub answered_by: Option<AppSource>,
    /// The hosts-file lines that answered, when the hosts file did.
    pub hosts_file: Vec<HostsFileEntry>,
    /// The addresses the applications connect to, classified.
    pub addresses: Vec<ClassifiedAddress>,
    pub latency_ms: u64,
}

/// Where a tested address came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AddressOrigin {
    /// The applications' resolution (hosts file, DNS or the local stub): what they connect to.
    #[default]
    Application,
    /// Only the VPC resolver's answer, tested because it differs from what the applications use.
    VpcResolver,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DnsOutcome {
    Answered,
    /// The name exists but has no record of this type (normal for AAAA in many regions).
    NoData,
    NxDomain,
    ServFail,
    Refused,
    Timeout,
    Error,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AddressClass {
    /// Inside the service's published ranges for the probed region.
    ServiceRegion,
    /// Inside the service's ranges, but for another region.
    ServiceOtherRegion,
    /// A private (RFC 1918 / VPC / ULA) address: an interface endpoint or a private DNS zone.
    Private,
    /// Anywhere else.
    Outside,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ClassifiedAddress {
    pub ip: String,
    pub class: AddressClass,
    /// The ip-ranges prefix that matched, if any.
    pub prefix: Option<String>,
    pub prefix_region: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct DnsLookup {
    pub name: String,
    pub service: Service,
    pub record_type: String,
    pub resolver: ResolverKind,
    /// The server that answered (or the last one tried).
    pub server: Option<String>,
    pub outcome: DnsOutcome,
    pub addresses: Vec<ClassifiedAddress>,
    pub error: Option<String>,
    pub latency_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TcpOutcome {
    Connected,
    Timeout,
    Refused,
    Unreachable,
    Error,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct TcpAttempt {
    pub name: String,
    pub service: Service,
    pub address: String,
    pub port: u16,
    pub address_class: AddressClass,
    /// Whether the applications connect to this address or only the VPC resolver names it.
    #[serde(default)]
    pub origin: AddressOrigin,
    pub local_address: Option<String>,
    pub outcome: TcpOutcome,
    /// errno and its text when the kernel gave one.
    pub error: Option<String>,
    pub connect_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct NaclSweep {
    pub service: Service,
    pub address: String,
    pub port: u16,
    pub ranges: Vec<PortRangeResult>,
    /// Merged spans of source ports whose connections did not complete while others did.
    pub failing: Vec<PortRange>,
    pub kernel_ephemeral: Option<PortRange>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct PortRangeResult {
    pub range: PortRange,
    pub source_port: Option<u16>,
    pub outcome: TcpOutcome,
    pub connect_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TlsOutcome {
    /// Verified, for the right name, from an expected issuer.
    Verified,
    /// Verified by a trusted root, but the issuer is not the service's: a TLS-inspecting middlebox.
    UnexpectedIssuer,
    /// The certificate does not cover the service name.
    WrongName,
    /// Chain does not lead to a trusted root.
    UntrustedIssuer,
    /// Any other verification error (expired, bad signature...).
    InvalidCertificate,
    Timeout,
    HandshakeFailed,
    /// Not attempted because TCP did not connect.
    NotAttempted,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct CertificateInfo {
    pub subject: String,
    pub issuer: String,
    pub dns_names: Vec<String>,
    pub not_after: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct TlsHandshake {
    pub name: String,
    pub service: Service,
    pub address: String,
    pub outcome: TlsOutcome,
    pub error: Option<String>,
    pub protocol: Option<String>,
    pub cipher_suite: Option<String>,
    /// The chain as the server presented it, leaf first.
    pub chain: Vec<CertificateInfo>,
    pub handshake_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ProxyEnvEvidence {
    /// Variables as set in the probe's environment, passwords redacted.
    pub variables: Vec<EnvVar>,
    /// Pairs of UPPER/lower variables set to different values.
    pub conflicts: Vec<(String, String)>,
    /// Per URL and client: proxied or direct, and why.
    pub decisions: Vec<crate::proxy::ProxyDecision>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyOutcome {
    /// CONNECT answered 2xx.
    Tunnelled,
    /// The proxy answered CONNECT with a non-2xx status.
    Refused,
    /// Could not reach the proxy (DNS, TCP).
    Unreachable,
    Timeout,
    Error,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ProxyProbe {
    pub name: String,
    pub service: Service,
    pub client: HttpClientKind,
    pub proxy: ProxyChoice,
    pub outcome: ProxyOutcome,
    pub status_line: Option<String>,
    pub error: Option<String>,
    pub connect_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct CanaryResult {
    pub target: String,
    pub addresses: Vec<String>,
    pub outcome: CanaryOutcome,
    pub error: Option<String>,
    pub connect_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CanaryOutcome {
    /// A TCP connection completed: the instance has a path to the internet.
    Reachable,
    /// No connection: no direct internet path (or the canary host is down).
    Unreachable,
    /// The canary name did not resolve.
    NotResolved,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Context only.
    Note,
    /// Works now but is fragile or wasteful.
    Warning,
    /// Traffic fails or does not take the expected path.
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    pub code: crate::catalogue::FindingCode,
    pub severity: Severity,
    /// The target ("s3:bucket") or "host" when it applies to the whole instance.
    pub target: String,
    pub title: String,
    pub detail: String,
    pub remediation: String,
    /// The checklist item: region, dns, route-table, security-group, network-acl, tls, proxy, ...
    pub checklist_item: String,
    /// Ids of the checks whose evidence led here.
    pub check_ids: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OverallStatus {
    Healthy,
    Problems,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Verdict {
    pub status: OverallStatus,
    /// One line for people.
    pub summary: String,
    /// The findings that explain the rest, most fundamental first.
    pub root_causes: Vec<RootCause>,
    pub exit_code: i32,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct RootCause {
    pub code: crate::catalogue::FindingCode,
    pub target: String,
    pub title: String,
}

/// The VPC's configuration as read with EC2 Describe* (when the role may).
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct ControlPlane {
    /// Every read: which API, and whether it worked, was denied or failed.
    pub reads: Vec<ControlPlaneRead>,
    /// The subnet's route table (explicit association, else the VPC's main table).
    pub route_table: Option<RouteTableFacts>,
    /// Gateway endpoints of the VPC for the probed services.
    pub endpoints: Vec<EndpointFacts>,
    /// The services' managed prefix lists with their CIDRs.
    pub prefix_lists: Vec<PrefixListFacts>,
    /// The security groups of the instance's ENI.
    pub security_groups: Vec<SecurityGroupFacts>,
    /// The subnet's network ACL.
    pub network_acl: Option<NetworkAclFacts>,
    pub dns_support: Option<bool>,
    pub dns_hostnames: Option<bool>,
    pub duration_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ControlPlaneRead {
    /// e.g. "ec2:DescribeRouteTables".
    pub action: String,
    pub outcome: ReadOutcome,
    pub error: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ReadOutcome {
    Ok,
    Denied,
    Failed,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct RouteTableFacts {
    pub id: String,
    /// True when the subnet has no explicit association and uses the VPC's main table.
    pub main: bool,
    pub routes: Vec<RouteFacts>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RouteFacts {
    pub destination_cidr: Option<String>,
    pub destination_prefix_list: Option<String>,
    /// vpce-, igw-, nat-, eni-, pcx-, tgw-, "local"...
    pub target: String,
    pub state: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct EndpointFacts {
    pub id: String,
    pub service: Service,
    pub service_name: String,
    pub state: String,
    pub route_table_ids: Vec<String>,
    pub policy: Option<String>,
    pub ip_address_type: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct PrefixListFacts {
    pub id: String,
    pub name: String,
    pub service: Service,
    pub cidrs: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct SecurityGroupFacts {
    pub id: String,
    pub egress: Vec<SgRule>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SgRule {
    /// "-1" (all), "tcp", "6", ...
    pub protocol: String,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    pub cidrs: Vec<String>,
    pub prefix_list_ids: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct NetworkAclFacts {
    pub id: String,
    pub entries: Vec<NaclEntry>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NaclEntry {
    pub rule_number: i32,
    pub egress: bool,
    /// "-1" (all) or a protocol number ("6" is TCP).
    pub protocol: String,
    pub allow: bool,
    pub cidr: Option<String>,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
}

/// One Reachability Analyzer run (opt-in: AWS charges per analysis).
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct ReachabilityEvidence {
    pub service: Service,
    /// The instance's ENI.
    pub source: String,
    /// The gateway endpoint.
    pub destination: String,
    pub path_id: Option<String>,
    pub analysis_id: Option<String>,
    /// succeeded, failed, running (the deadline came first), interrupted, error.
    pub status: String,
    pub network_path_found: Option<bool>,
    pub explanations: Vec<ReachabilityExplanation>,
    /// Whether the path and analysis it created were deleted again.
    pub cleaned_up: bool,
    pub error: Option<String>,
    pub duration_ms: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct ReachabilityExplanation {
    pub code: String,
    /// The code in plain words.
    pub meaning: String,
    pub component: Option<String>,
    pub direction: Option<String>,
}

/// How an address class reads in the text report.
pub fn class_label(class: AddressClass) -> &'static str {
    match class {
        AddressClass::ServiceRegion => "in range",
        AddressClass::ServiceOtherRegion => "other region",
        AddressClass::Private => "private",
        AddressClass::Outside => "outside ranges",
    }
}

impl ControlPlane {
    /// The EC2 permissions whose reads were denied, without repeats.
    pub fn denied_actions(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .reads
            .iter()
            .filter(|r| r.outcome == ReadOutcome::Denied)
            .map(|r| r.action.split(' ').next().unwrap_or("").to_string())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    pub fn read_ok(&self, action: &str) -> bool {
        self.reads
            .iter()
            .any(|r| r.action == action && r.outcome == ReadOutcome::Ok)
    }
}

impl NaclSweep {
    /// Whether the kernel's own ephemeral range falls into a failing span, i.e. real traffic suffers.
    pub fn hits_kernel_range(&self) -> bool {
        match self.kernel_ephemeral {
            Some(k) => self.failing.iter().any(|f| f.overlaps(&k)),
            None => !self.failing.is_empty(),
        }
    }
}
