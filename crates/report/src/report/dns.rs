//! Name resolution: the resolver, how applications resolve, and each lookup's addresses.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Service;

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
    /// The name libc resolved when a resolv.conf search domain answered (the name with the
    /// domain appended: `options ndots:` above the name's dots, or the name itself failing);
    /// absent when the name itself answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_as: Option<String>,
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
    /// A public address of a service whose ranges AWS does not publish (S3 Express One Zone):
    /// neither inside nor outside; the prefix list (control plane) or the hop check places it.
    Unpublished,
}

impl AddressClass {
    /// Whether the address may be the service's own as far as the published ranges can
    /// tell: inside the region's ranges, or a service that publishes none.
    pub fn fits_service(self) -> bool {
        matches!(
            self,
            AddressClass::ServiceRegion | AddressClass::Unpublished
        )
    }
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
    /// Name servers listed before `server` in resolv.conf that gave no answer within the
    /// timeout (system resolver only; absent when none): libc asks them first, every lookup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub silent_servers: Vec<String>,
    /// How long libc waits on `silent_servers` before it asks `server`: resolv.conf's
    /// `options timeout:` (5 s unless set) per silent server. Absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub libc_wait_secs: Option<u32>,
}

/// How a lookup's silent servers read after its answer in the text report ("" when none).
pub fn after_silent_servers(servers: &[String]) -> String {
    if servers.is_empty() {
        String::new()
    } else {
        format!(", after {} gave no answer", servers.join(", "))
    }
}

/// How an address class reads in the text report.
pub fn class_label(class: AddressClass) -> &'static str {
    match class {
        AddressClass::ServiceRegion => "in range",
        AddressClass::ServiceOtherRegion => "other region",
        AddressClass::Private => "private",
        AddressClass::Outside => "outside ranges",
        AddressClass::Unpublished => "no published ranges",
    }
}
