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
