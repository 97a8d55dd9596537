//! DNS through hickory: one resolver per name server, asked in resolv.conf order the way
//! libc does, so the report can say which server answered.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;

use crate::report::DnsOutcome;

#[derive(Clone)]
pub struct ServerResolver {
    pub server: SocketAddr,
    resolver: TokioResolver,
    timeout: Duration,
}

pub struct Answer {
    pub server: Option<SocketAddr>,
    pub outcome: DnsOutcome,
    pub addresses: Vec<IpAddr>,
    pub error: Option<String>,
    pub elapsed: Duration,
}

/// The name servers of a resolv.conf file, in order.
pub fn system_servers(resolv_conf: &Path) -> Result<Vec<SocketAddr>, String> {
    let data = crate::fsread::read(resolv_conf, crate::fsread::MAX_SMALL)?;
    let (config, _opts) = hickory_resolver::system_conf::parse_resolv_conf(nameserver_lines(&data))
        .map_err(|e| {
            format!(
                "cannot parse {}: {}",
                crate::escape::shown_path(resolv_conf),
                crate::escape::shown(&e.to_string())
            )
        })?;
    let servers: Vec<SocketAddr> = config
        .name_servers()
        .iter()
        .map(|ns| SocketAddr::new(ns.ip, 53))
        .collect();
    if servers.is_empty() {
        return Err(format!(
            "{} lists no nameserver",
            crate::escape::shown_path(resolv_conf)
        ));
    }
    Ok(servers)
}

/// The lines of resolv.conf that name servers. hickory refuses the whole file for one search
/// domain it cannot parse (a label over 63 characters) while glibc still asks the servers:
/// only the servers matter here, so only their lines are handed over.
fn nameserver_lines(data: &[u8]) -> Vec<u8> {
    data.split(|b| *b == b'\n')
        .filter(|line| line.trim_ascii_start().starts_with(b"nameserver"))
        .flat_map(|line| line.iter().copied().chain([b'\n']))
        .collect()
}

impl ServerResolver {
    pub fn new(server: SocketAddr, timeout: Duration) -> Result<Self, String> {
        // UDP only: a TCP retry after a UDP timeout would double the cost of a silent
        // resolver, and service answers (at most 8 addresses) never need TCP.
        let mut udp = ConnectionConfig::udp();
        udp.port = server.port();
        let mut ns = NameServerConfig::udp(server.ip());
        ns.connections = vec![udp];
        let config = ResolverConfig::from_name_servers(vec![ns]);
        let mut opts = ResolverOpts::default();
        opts.timeout = timeout;
        opts.attempts = 1;
        opts.cache_size = 0;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.edns0 = true;
        opts.try_tcp_on_error = false;
        let resolver = Resolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .map_err(|e| format!("resolver for {server}: {e}"))?;
        Ok(ServerResolver {
            server,
            resolver,
            timeout,
        })
    }

    pub async fn query(&self, name: &str, record_type: RecordType) -> Answer {
        let started = Instant::now();
        // A trailing dot keeps the search list out of it: the SDKs ask for the full name.
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        // One timeout per query, whatever the resolver's own retries: a silent server costs one
        // `--timeout`, as resolv.conf's `timeout:` promises (measured: hickory took two).
        let lookup = self.resolver.lookup(fqdn.as_str(), record_type);
        let Ok(result) = tokio::time::timeout(self.timeout, lookup).await else {
            return Answer {
                server: Some(self.server),
                outcome: DnsOutcome::Timeout,
                addresses: Vec::new(),
                error: Some(format!("no answer within {} ms", self.timeout.as_millis())),
                elapsed: started.elapsed(),
            };
        };
        let elapsed = started.elapsed();
        match result {
            Ok(lookup) => {
                let addresses: Vec<IpAddr> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::A(a) => Some(IpAddr::V4(a.0)),
                        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                        _ => None,
                    })
                    .collect();
                Answer {
                    server: Some(self.server),
                    outcome: if addresses.is_empty() {
                        DnsOutcome::NoData
                    } else {
                        DnsOutcome::Answered
                    },
                    addresses,
                    error: None,
                    elapsed,
                }
            }
            Err(e) => {
                let outcome = classify(&e);
                Answer {
                    server: Some(self.server),
                    outcome,
                    addresses: Vec::new(),
                    error: match outcome {
                        DnsOutcome::NoData => None,
                        _ => Some(e.to_string()),
                    },
                    elapsed,
                }
            }
        }
    }
}

/// Ask the servers in order; the first that answers (anything but a timeout, SERVFAIL or REFUSED, as libc) wins.
/// Every server is asked at once and the answers are taken in order, so the one that wins is
/// libc's, but a silent first server costs one timeout for the lookup, not one per server.
pub async fn query_in_order(
    servers: &[ServerResolver],
    name: &str,
    record_type: RecordType,
) -> Answer {
    let started = Instant::now();
    let mut last = None;
    let mut answers: FuturesOrdered<_> = servers
        .iter()
        .map(|server| server.query(name, record_type))
        .collect();
    while let Some(answer) = answers.next().await {
        let try_next = matches!(
            answer.outcome,
            DnsOutcome::Timeout | DnsOutcome::ServFail | DnsOutcome::Refused | DnsOutcome::Error
        );
        if !try_next {
            return Answer {
                elapsed: started.elapsed(),
                ..answer
            };
        }
        last = Some(answer);
    }
    match last {
        Some(a) => Answer {
            elapsed: started.elapsed(),
            ..a
        },
        None => Answer {
            server: None,
            outcome: DnsOutcome::Error,
            addresses: Vec::new(),
            error: Some("no name server configured".into()),
            elapsed: started.elapsed(),
        },
    }
}

fn classify(e: &NetError) -> DnsOutcome {
    match e {
        NetError::Timeout => DnsOutcome::Timeout,
        NetError::Dns(DnsError::NoRecordsFound(nr)) => match nr.response_code {
            ResponseCode::NXDomain => DnsOutcome::NxDomain,
            _ => DnsOutcome::NoData,
        },
        NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)) => DnsOutcome::ServFail,
        NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)) => DnsOutcome::Refused,
        NetError::Dns(DnsError::ResponseCode(ResponseCode::NXDomain)) => DnsOutcome::NxDomain,
        NetError::Dns(DnsError::ResponseCode(_)) => DnsOutcome::ServFail,
        other if other.to_string().contains("timed out") => DnsOutcome::Timeout,
        _ => DnsOutcome::Error,
    }
}
