//! The host the probe ran on: tool, host and instance facts, region, effective
//! configuration, IP ranges and IMDS.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
    /// How long the canary, STS and the EC2 API were waited for a connection
    /// (`--silence-timeout`, at most the timeout); 0 in reports from before it existed.
    #[serde(default)]
    pub silence_timeout_ms: u64,
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
    /// Most TCP connects in flight at once (--max-connections; 0 in reports from before the bound).
    #[serde(default)]
    pub max_connections: u32,
    /// Most TCP connects in flight to one address (--max-connections-per-address).
    #[serde(default)]
    pub max_connections_per_address: u32,
    /// Most signed calls in flight at once (--max-calls).
    #[serde(default)]
    pub max_calls: u32,
    /// Most signed calls in flight to one address or proxy (--max-calls-per-address).
    #[serde(default)]
    pub max_calls_per_address: u32,
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

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ImdsEvidence {
    pub endpoint: String,
    pub reachable: bool,
    pub error: Option<String>,
    /// Paths that could not be read (404 is normal for some, e.g. public-ipv4).
    pub missing: Vec<String>,
}
