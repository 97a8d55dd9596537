//! The proxy check's pure half: which client sends which URL through a proxy (the rules are
//! proxy_rules), and how the proxy evidence and a CONNECT probe read as report records. The
//! CONNECT probe itself is the probe's checks/proxy.rs.

use url::Url;

use super::Check;
use crate::proxy_rules::{self, HttpClientKind, ProxyChoice, ProxyDecision, ProxyEnv};
use crate::report::*;

/// Decide, for every URL and client, whether a proxy applies. The URLs are
/// those of the same clients, so botocore's endpoint for a virtual-hosted name
/// is found among them (it checks NO_PROXY for its endpoint URL only); `configured` are the
/// endpoint URLs as the settings wrote them.
pub fn analyze(env: &ProxyEnv, urls: &[Url], configured: &[String]) -> ProxyEnvEvidence {
    let decisions = urls
        .iter()
        .flat_map(|u| {
            HttpClientKind::ALL
                .iter()
                .map(move |c| proxy_rules::decide_among(*c, env, u, urls, configured))
        })
        .collect();
    ProxyEnvEvidence {
        variables: env
            .vars()
            .iter()
            .map(|(name, value)| EnvVar {
                name: name.clone(),
                value: proxy_rules::redact_proxy_url(value),
            })
            .collect(),
        conflicts: proxy_rules::case_conflicts(env),
        decisions,
    }
}

/// The path of the IMDSv2 token request: the first request every IMDS client makes.
pub const IMDS_TOKEN_PATH: &str = "/latest/api/token";

/// The decision of `client` for `url`, if it was analysed.
pub fn decision_for<'a>(
    evidence: &'a ProxyEnvEvidence,
    client: HttpClientKind,
    url: &str,
) -> Option<&'a ProxyDecision> {
    evidence
        .decisions
        .iter()
        .find(|d| d.client == client && d.url == url)
}

/// Whether [`connect_probe`] talks to this proxy: only HTTP(S) proxies are tried, so a
/// SOCKS proxy's probe says nothing about whether it can be reached.
pub fn is_probed(proxy: &ProxyChoice) -> bool {
    proxy.scheme == "http" || proxy.scheme == "https"
}

pub struct ProxyEnvCheck(pub ProxyEnvEvidence);

impl Check for ProxyEnvCheck {
    const KIND: CheckKind = CheckKind::Proxy;
    fn id(&self) -> String {
        "proxy/env".into()
    }
    fn subject(&self) -> String {
        "proxy environment".into()
    }
    fn status(&self) -> CheckStatus {
        let sdk_proxies = self
            .0
            .decisions
            .iter()
            .any(|d| d.client == HttpClientKind::AwsSdkRust && d.proxy.is_some());
        if !self.0.conflicts.is_empty() || sdk_proxies {
            CheckStatus::Warn
        } else {
            CheckStatus::Ok
        }
    }
    fn summary(&self) -> String {
        if self.0.variables.is_empty() {
            return "no proxy variables set: every client connects directly".into();
        }
        let proxied: Vec<String> = self
            .0
            .decisions
            .iter()
            .filter(|d| d.client == HttpClientKind::AwsSdkRust && d.proxy.is_some())
            .map(|d| d.url.clone())
            .collect();
        let vars = self
            .0
            .variables
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        if proxied.is_empty() {
            format!("{vars} set; the SDK connects directly to every probed URL")
        } else {
            format!("{vars} set; the SDK would proxy {}", proxied.join(", "))
        }
    }
    fn duration_ms(&self) -> u64 {
        0
    }
    fn evidence(&self) -> Evidence {
        Evidence::ProxyEnv(self.0.clone())
    }
}

impl Check for ProxyProbe {
    const KIND: CheckKind = CheckKind::Proxy;
    fn id(&self) -> String {
        format!("proxy/{}/{}", self.proxy.host, self.name)
    }
    fn subject(&self) -> String {
        format!("{}:{}", self.proxy.host, self.proxy.port)
    }
    fn status(&self) -> CheckStatus {
        if !is_probed(&self.proxy) {
            return CheckStatus::Skip;
        }
        match self.outcome {
            // Working, but the traffic leaves through the proxy: a warning at most.
            ProxyOutcome::Tunnelled => CheckStatus::Warn,
            _ => CheckStatus::Fail,
        }
    }
    fn summary(&self) -> String {
        let via = format!(
            "CONNECT {}:443 via {} ({})",
            self.name, self.proxy.url_redacted, self.proxy.variable
        );
        match self.outcome {
            ProxyOutcome::Tunnelled => format!("{via}: tunnel opened ({} ms)", self.connect_ms),
            ProxyOutcome::Refused => format!(
                "{via}: refused: {}",
                self.status_line.as_deref().unwrap_or("")
            ),
            _ => format!("{via}: {}", self.error.as_deref().unwrap_or("failed")),
        }
    }
    fn duration_ms(&self) -> u64 {
        self.connect_ms
    }
    fn evidence(&self) -> Evidence {
        Evidence::Proxy(self.clone())
    }
}
