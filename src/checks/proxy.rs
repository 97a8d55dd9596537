//! Proxy: which service URLs each client would send through a proxy (rules in proxy_rules.rs),
//! and, for those the SDK would proxy, whether the proxy can be reached and opens a CONNECT
//! tunnel to the service.
//!
//! The CONNECT probe is a slice (checks/slice.rs): once per name the SDK would send through a
//! proxy, as soon as the name is known (`Slice::per_name_start`), beside its DNS lookups. Its
//! rules and records are its pure half, the diagnosis crate's reading/proxy.rs; they stay steps
//! of diagnosis's stages (checks/mod.rs registers it so).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use base64::Engine;
use hickory_resolver::proto::rr::RecordType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

use super::dns::Resolvers;
use super::slice::{NamedMeasuring, NameStartStage, Slice};
use crate::net::dns::query_in_order;
use crate::net::limits::Limits;
use crate::net::{millis, tcp};
use crate::proxy_rules::{HttpClientKind, ProxyChoice, ProxyEnv};
use crate::report::{CheckKind, ProxyOutcome, ProxyProbe, Service, TcpOutcome};
use crate::results::Measurements;
// The proxy check's pure half (the decisions, its records, its rules) is the diagnosis crate's.
pub use vpce_probe_diagnosis::reading::proxy::{
    IMDS_TOKEN_PATH, ProxyEnvCheck, ProxySlice, analyze, decision_for, is_probed,
};

impl Slice for ProxySlice {
    fn kind(&self) -> CheckKind {
        CheckKind::Proxy
    }

    /// A name whose URL the SDK sends through a proxy: CONNECT through it to the name.
    fn per_name_start<'a>(&'a self, stage: NameStartStage<'a>) -> Option<NamedMeasuring<'a>> {
        let url = stage.socket.url(stage.name)?;
        let choice = decision_for(stage.proxy_env, HttpClientKind::AwsSdkRust, url.as_str())
            .and_then(|d| d.proxy.clone())?;
        let (name, port, service) = (stage.name, stage.socket.port, stage.service);
        Some(NamedMeasuring {
            id: format!("proxy/{}/{name}", choice.host),
            subject: format!("{}:{}", choice.host, choice.port),
            measuring: Box::pin(async move {
                let probe = connect_probe(
                    stage.proxy_vars,
                    stage.resolvers,
                    &choice,
                    HttpClientKind::AwsSdkRust,
                    (name, port, service),
                    stage.budget.op(),
                    stage.limits,
                )
                .await;
                let mut measured = Measurements::default();
                measured.push(probe);
                measured
            }),
        })
    }
}

/// The URL whose proxy decision says whether IMDS requests go through a proxy.
pub fn imds_token_url(env: &crate::config::Environment) -> Option<Url> {
    Url::parse(&format!(
        "{}{IMDS_TOKEN_PATH}",
        env.imds_endpoint_or_default()
    ))
    .ok()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::NameSocket;
    use crate::net::Budget;

    const NAME: &str = "s3.eu-west-1.amazonaws.com";

    /// A probe per name the SDK sends through a proxy, named for the deadline as its finished
    /// record is; none for a name NO_PROXY exempts.
    #[test]
    fn one_probe_per_name_the_sdk_proxies() {
        let url = |name: &str| Url::parse(&format!("https://{name}/")).unwrap();
        let vars = ProxyEnv::from_pairs([
            ("HTTPS_PROXY", "http://10.0.2.10:3128"),
            ("NO_PROXY", "dynamodb.eu-west-1.amazonaws.com"),
        ]);
        let exempt = "dynamodb.eu-west-1.amazonaws.com";
        let proxy_env = analyze(&vars, &[url(NAME), url(exempt)], &[]);
        let resolvers = Resolvers::none_asked();
        let limits = Limits::unbounded();
        let stage = NameStartStage {
            name: NAME,
            service: Service::S3,
            socket: NameSocket::default(),
            proxy_vars: &vars,
            proxy_env: &proxy_env,
            resolvers: &resolvers,
            budget: Budget::new(Duration::from_secs(1), Duration::from_secs(1)),
            limits: &limits,
        };
        let started = ProxySlice.per_name_start(stage).unwrap();
        assert_eq!(started.id, format!("proxy/10.0.2.10/{NAME}"));
        assert_eq!(started.subject, "10.0.2.10:3128");
        let not_proxied = NameStartStage {
            name: exempt,
            service: Service::Dynamodb,
            ..stage
        };
        assert!(ProxySlice.per_name_start(not_proxied).is_none());
    }
}
