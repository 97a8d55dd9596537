//! What a run found: the checks' typed results, the input of diagnosis. Between the
//! scheduler (run.rs), which fills it, and diagnosis, which reads it, so neither imports the other.

use std::net::SocketAddr;

use crate::report::*;

/// A target as the run sees it: which names the SDKs would use for it.
#[derive(Clone, Debug)]
pub struct TargetSpec {
    pub id: String,
    pub service: Service,
    pub name: String,
    pub endpoint_names: Vec<String>,
    /// Per name, the settings that produced it and their sources.
    pub name_settings: std::collections::BTreeMap<String, Vec<String>>,
    /// Per name, where its calls connect (absent: 443 with TLS).
    pub name_sockets: std::collections::BTreeMap<String, crate::endpoints::NameSocket>,
    pub endpoint_override: Option<String>,
    /// Why the SDKs' endpoint rules give this target no name (its calls fail before any packet).
    pub endpoint_error: Option<String>,
}

/// Everything the checks found: the input of diagnosis.
#[derive(Default)]
pub struct ProbeResults {
    pub host: HostFacts,
    pub imds: Option<ImdsEvidence>,
    pub instance: Option<InstanceFacts>,
    pub imds_ms: u64,
    pub region: RegionFacts,
    pub targets: Vec<TargetSpec>,
    pub dns: Vec<DnsLookup>,
    /// Each name as the applications resolve it (nsswitch, hosts file, DNS, local stub).
    pub app_dns: Vec<AppResolution>,
    pub tcp: Vec<TcpAttempt>,
    pub tls: Vec<TlsHandshake>,
    pub nacl: Vec<NaclSweep>,
    pub proxy_env: Option<ProxyEnvEvidence>,
    pub proxy_probes: Vec<ProxyProbe>,
    pub canary: Option<CanaryResult>,
    /// The hop check of each service address (once per address and port, whichever name
    /// resolved it first) and of the internet canary.
    pub hops: Vec<HopTrace>,
    /// The addresses whose hop check has started: each is traced once.
    pub hops_claimed: std::collections::BTreeSet<SocketAddr>,
    pub credentials: Option<CredentialsEvidence>,
    pub calls: Vec<CallResult>,
    pub control_plane: Option<ControlPlane>,
    pub reachability: Vec<ReachabilityEvidence>,
    pub system_resolvers: Vec<SocketAddr>,
    pub vpc_resolver: Option<SocketAddr>,
    /// What kept checks from running and no check records (the shared config files the
    /// agent could not read, an HTTP client that could not be built): diagnosis says so in the
    /// verdict, a run with one is never healthy.
    pub setup_errors: Vec<String>,
    pub deadline_hit: bool,
}
