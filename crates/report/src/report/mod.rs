//! The report: plain serde data and nothing else. Renderers and sinks take `&Report`.
//! Field names are a contract (design.md): add, never rename.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod calls;
mod control_plane;
mod dns;
mod host;
mod network;

// Every public type of the areas, so a new evidence type needs no line here.
pub use calls::*;
pub use control_plane::*;
pub use dns::*;
pub use host::*;
pub use network::*;

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
    // S3 Express One Zone directory buckets: their own zonal and regional names and their own
    // gateway endpoint service (`com.amazonaws.<region>.s3express`); called with the S3 API.
    // (A plain comment: a doc comment would turn the schema's enum into a oneOf.)
    S3express,
}

impl Service {
    pub fn as_str(self) -> &'static str {
        match self {
            Service::S3 => "s3",
            Service::Dynamodb => "dynamodb",
            Service::S3express => "s3express",
        }
    }
    /// The `service` value in ip-ranges.json.
    pub fn ranges_name(self) -> &'static str {
        match self {
            Service::S3 => "S3",
            Service::Dynamodb => "DYNAMODB",
            // ip-ranges.json lists none: such addresses classify as `unpublished`.
            Service::S3express => "S3EXPRESS",
        }
    }
    /// Whether AWS publishes the service's address ranges in ip-ranges.json (S3 Express One
    /// Zone's are not: only its prefix list or the hop check can place its addresses).
    pub fn has_published_ranges(self) -> bool {
        !matches!(self, Service::S3express)
    }
    /// Whether its calls are S3 API calls (S3 and directory buckets).
    pub fn s3_api(self) -> bool {
        matches!(self, Service::S3 | Service::S3express)
    }
    /// The service as people name it in the text.
    pub fn display_name(self) -> &'static str {
        match self {
            Service::S3 => "S3",
            Service::Dynamodb => "DynamoDB",
            Service::S3express => "S3 Express One Zone",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct TargetReport {
    /// "s3:<bucket>", "s3express:<directory bucket>" or "dynamodb:<table>".
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
    /// The port the clients connect to, when an endpoint URL names one other than 443 (TCP,
    /// the NACL sweep and the proxy CONNECT use it too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// True when an `http://` endpoint URL makes the clients speak plain HTTP (no TLS check).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub plain_http: bool,
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
    /// Proven: by the route table (control-plane evidence) or by the hop check agreeing with the
    /// address ranges (`decided_by` says which).
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
    /// The evidence that decided a confirmed verdict: `control-plane` (the route table) or
    /// `hop-count` (the TCP hop check, with the address ranges). Absent otherwise, and in
    /// reports of versions without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<PathEvidence>,
}

/// Which evidence decided a path verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PathEvidence {
    /// The subnet's route table, read through EC2 Describe* calls.
    ControlPlane,
    /// The TCP hop check: the service answered at the first hop (or something answered first).
    HopCount,
}

impl PathEvidence {
    pub fn as_str(self) -> &'static str {
        match self {
            PathEvidence::ControlPlane => "control-plane",
            PathEvidence::HopCount => "hop-count",
        }
    }
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

/// The registry of check kinds: one line per kind gives the variant and its one name (the
/// JSON value, the metrics' `check` label and the text report's column).
macro_rules! check_kinds {
    ($($kind:ident => $name:literal,)+) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
        pub enum CheckKind {
            $(#[serde(rename = $name)] $kind,)+
        }

        impl CheckKind {
            /// Every kind, in the registry's order.
            pub const ALL: &[CheckKind] = &[$(CheckKind::$kind,)+];

            /// The one name of the check: the JSON value, the metrics label and the text report's column.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(CheckKind::$kind => $name,)+
                }
            }
        }
    };
}

check_kinds! {
    Imds => "imds",
    Host => "host",
    Region => "region",
    Dns => "dns",
    Tcp => "tcp",
    Nacl => "nacl",
    Tls => "tls",
    Proxy => "proxy",
    Canary => "canary",
    Hops => "hops",
    Credentials => "credentials",
    Sts => "sts",
    S3 => "s3",
    Dynamodb => "dynamodb",
    Ec2 => "ec2",
    Reachability => "reachability",
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
    Hops(HopTrace),
    Credentials(CredentialsEvidence),
    Call(Box<CallResult>),
    ControlPlane(Box<ControlPlane>),
    Reachability(ReachabilityEvidence),
    /// A check the run's deadline cut short: nothing measured, nothing concluded from it.
    Unfinished(UnfinishedCheck),
}

/// A check that was scheduled (started, or waiting for what it needs) when the run's deadline
/// ended it. Its record has status `skip`; diagnosis never reads it, so it blames nothing.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct UnfinishedCheck {
    /// Why there is no result: "not finished before the deadline".
    pub reason: String,
    /// When the check was scheduled, in milliseconds from the start of the run.
    pub scheduled_at_ms: u64,
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

#[cfg(test)]
mod check_names {
    use super::CheckKind;

    #[test]
    fn one_name_per_check_everywhere() {
        let mut names: Vec<&str> = CheckKind::ALL.iter().map(|k| k.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CheckKind::ALL.len(), "names are unique");
        for &kind in CheckKind::ALL {
            let json = serde_json::to_value(kind).unwrap_or_default();
            assert_eq!(json.as_str(), Some(kind.as_str()), "{kind:?}");
        }
    }
}
