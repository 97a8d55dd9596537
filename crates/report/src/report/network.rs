//! The network path: TCP attempts, the NACL port sweep, TLS handshakes and the proxy.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::proxy::{HttpClientKind, ProxyChoice};

use super::Service;
use super::dns::{AddressClass, AddressOrigin};
use super::host::{EnvVar, PortRange};

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

impl NaclSweep {
    /// Whether the kernel's own ephemeral range falls into a failing span, i.e. real traffic suffers.
    pub fn hits_kernel_range(&self) -> bool {
        match self.kernel_ephemeral {
            Some(k) => self.failing.iter().any(|f| f.overlaps(&k)),
            None => !self.failing.is_empty(),
        }
    }
}

/// What came back for one TTL (IPv6: hop limit) of the hop check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum HopReply {
    /// ICMP time exceeded: a router, NAT or appliance on the way (`from`) dropped the SYN.
    TimeExceeded,
    /// ICMP destination unreachable (or a local routing error when `from` is absent): the
    /// path ends there.
    Unreachable,
    /// Nothing within the wait (`*`): the hop sends no ICMP (filtered or rate-limited).
    Silent,
}

/// One TTL of the hop check below the one at which the address answered.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Hop {
    pub ttl: u8,
    pub reply: HopReply,
    /// The ICMP sender's address, when one answered.
    pub from: Option<String>,
}

/// The TCP hop count to one address: SYNs to its port with TTL (IPv6: hop limit) 1, 2, ... up
/// to `max_hops`, sent together; the lowest TTL at which the address itself answered (connected,
/// or refused: the host answered) and who answered before it. The VPC router is not a hop: a
/// gateway endpoint (or an interface endpoint) answers at TTL 1, a NAT gateway, NAT instance,
/// firewall appliance or the internet answers first otherwise.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct HopTrace {
    /// The service name the address was traced for (the first that resolved to it), or the
    /// internet canary's `host:port`.
    pub name: String,
    /// Absent for the internet canary.
    pub service: Option<Service>,
    pub address: String,
    pub port: u16,
    pub address_class: AddressClass,
    /// The lowest TTL at which the address answered; absent when it did not within
    /// `max_hops` and the time budget.
    pub answered_at: Option<u8>,
    /// `connected` or `refused` at `answered_at`; `timeout` when nothing answered at any TTL,
    /// `unreachable` when a router said so, `error` when no probe could be sent.
    pub outcome: TcpOutcome,
    /// Each TTL below `answered_at` (every TTL up to `max_hops` when the address never
    /// answered), in order.
    pub hops: Vec<Hop>,
    pub max_hops: u8,
    pub error: Option<String>,
    pub duration_ms: u64,
}

impl HopTrace {
    /// The first hop that named itself (an ICMP sender), with its TTL.
    pub fn first_responder(&self) -> Option<(u8, &str)> {
        self.hops
            .iter()
            .find_map(|h| h.from.as_deref().map(|f| (h.ttl, f)))
    }

    /// The compact form: `1 (direct)`, `10.0.1.1 → * → 198.51.100.10 at 3`, `no answer at any
    /// TTL up to 8`.
    pub fn compact(&self) -> String {
        let hop = |h: &Hop| match (&h.from, h.reply) {
            (Some(f), HopReply::Unreachable) => format!("{f} (unreachable)"),
            (Some(f), _) => f.clone(),
            (None, HopReply::Unreachable) => "unreachable".to_string(),
            (None, _) => "*".to_string(),
        };
        let before: Vec<String> = self.hops.iter().map(hop).collect();
        match self.answered_at {
            Some(1) => "1 (direct)".to_string(),
            Some(n) => {
                let mut parts = before;
                parts.push(format!("{} at {n}", self.address));
                parts.join(" → ")
            }
            None if self.hops.iter().all(|h| h.reply == HopReply::Silent) => {
                format!("no answer at any TTL up to {}", self.max_hops)
            }
            None if self
                .hops
                .last()
                .is_some_and(|h| h.reply == HopReply::Unreachable) =>
            {
                before.join(" → ")
            }
            None => format!(
                "{} (no answer within {} hops)",
                before.join(" → "),
                self.max_hops
            ),
        }
    }
}
