//! Proxy: which service URLs each client would send through a proxy (rules in proxy_rules.rs),
//! and, for those the SDK would proxy, whether the proxy can be reached and opens a CONNECT
//! tunnel to the service.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use base64::Engine;
use hickory_resolver::proto::rr::RecordType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

use super::Check;
use super::dns::Resolvers;
use crate::net::dns::query_in_order;
use crate::net::limits::Limits;
use crate::net::{millis, tcp};
use crate::proxy_rules::{self, HttpClientKind, ProxyChoice, ProxyDecision, ProxyEnv};
use crate::report::{
    CheckKind, CheckStatus, EnvVar, Evidence, ProxyEnvEvidence, ProxyOutcome, ProxyProbe, Service,
    TcpOutcome,
};

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

/// The URL whose proxy decision says whether IMDS requests go through a proxy.
pub fn imds_token_url(env: &crate::config::Environment) -> Option<Url> {
    Url::parse(&format!(
        "{}{IMDS_TOKEN_PATH}",
        env.imds_endpoint_or_default()
    ))
    .ok()
}

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

/// CONNECT through `proxy` to `name:443`, the way the SDK would open its tunnel. The
/// destination is `(name, port, service)`.
pub async fn connect_probe(
    env: &ProxyEnv,
    resolvers: &Resolvers,
    proxy: &ProxyChoice,
    client: HttpClientKind,
    (name, port, service): (&str, u16, Service),
    timeout: Duration,
    limits: &Limits,
) -> ProxyProbe {
    let started = Instant::now();
    let mut probe = ProxyProbe {
        name: name.to_string(),
        service,
        client,
        proxy: proxy.clone(),
        outcome: ProxyOutcome::Error,
        status_line: None,
        error: None,
        connect_ms: 0,
    };
    let finish = |mut p: ProxyProbe, outcome, error: Option<String>| {
        p.outcome = outcome;
        p.error = error;
        p.connect_ms = millis(started.elapsed());
        p
    };
    if !is_probed(proxy) {
        return finish(
            probe,
            ProxyOutcome::Error,
            Some(format!(
                "not tried: {} proxies are not tested (the AWS SDK for Rust cannot use them)",
                proxy.scheme
            )),
        );
    }
    let host = proxy.host.trim_start_matches('[').trim_end_matches(']');
    let ip = match host.parse::<IpAddr>() {
        Ok(ip) => Some(ip),
        Err(_) => match &resolvers.system {
            Ok(servers) => query_in_order(servers, host, RecordType::A)
                .await
                .addresses
                .first()
                .copied(),
            Err(_) => None,
        },
    };
    let Some(ip) = ip else {
        return finish(
            probe,
            ProxyOutcome::Unreachable,
            Some(format!("proxy host {host} does not resolve")),
        );
    };
    let c = tcp::connect(limits, SocketAddr::new(ip, proxy.port), None, timeout).await;
    let Some(mut stream) = c.stream else {
        let outcome = if c.outcome == TcpOutcome::Timeout {
            ProxyOutcome::Timeout
        } else {
            ProxyOutcome::Unreachable
        };
        return finish(probe, outcome, c.error);
    };
    let mut request = format!("CONNECT {name}:{port} HTTP/1.1\r\nHost: {name}:{port}\r\n");
    if let Some(auth) = basic_auth(env, &proxy.variable) {
        request.push_str(&format!("Proxy-Authorization: Basic {auth}\r\n"));
    }
    request.push_str("\r\n");
    let exchange = async {
        stream.write_all(request.as_bytes()).await?;
        let mut buf = vec![0u8; 1024];
        let mut read = 0;
        // The status line is all we need; stop at the first line break.
        while read < buf.len() {
            let n = stream.read(&mut buf[read..]).await?;
            if n == 0 {
                break;
            }
            read += n;
            if buf[..read].contains(&b'\n') {
                break;
            }
        }
        Ok::<String, std::io::Error>(String::from_utf8_lossy(&buf[..read]).to_string())
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => finish(
            probe,
            ProxyOutcome::Timeout,
            Some("the proxy did not answer CONNECT".into()),
        ),
        Ok(Err(e)) => finish(probe, ProxyOutcome::Error, Some(e.to_string())),
        Ok(Ok(answer)) => {
            let line = answer.lines().next().unwrap_or("").trim().to_string();
            let code = line
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse::<u16>().ok());
            probe.status_line = Some(line.clone());
            match code {
                Some(200..=299) => finish(probe, ProxyOutcome::Tunnelled, None),
                Some(_) => finish(probe, ProxyOutcome::Refused, Some(line)),
                None => finish(
                    probe,
                    ProxyOutcome::Error,
                    Some("the proxy's answer is not HTTP".into()),
                ),
            }
        }
    }
}

/// Basic credentials from the proxy URL in `variable`, as the client would send them.
fn basic_auth(env: &ProxyEnv, variable: &str) -> Option<String> {
    let raw = env.get(variable)?;
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("http://{raw}")
    };
    let url = Url::parse(&with_scheme).ok()?;
    if url.username().is_empty() {
        return None;
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .to_string()
    };
    let pair = format!(
        "{}:{}",
        decode(url.username()),
        decode(url.password().unwrap_or(""))
    );
    Some(base64::engine::general_purpose::STANDARD.encode(pair))
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
