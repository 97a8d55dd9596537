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
use futures_util::stream::{FuturesOrdered, FuturesUnordered};

use crate::report::DnsOutcome;
// What libc reads besides the servers: parsed here, walked by the diagnosis crate's libc_search.
pub use vpce_probe_diagnosis::reading::libc_search::LibcOptions;

#[derive(Clone)]
pub struct ServerResolver {
    pub server: SocketAddr,
    resolver: TokioResolver,
    timeout: Duration,
}

pub struct Answer {
    pub server: Option<SocketAddr>,
    /// Servers listed before `server` that gave no answer within the timeout (libc waits on
    /// each before it asks the next).
    pub silent_before: Vec<SocketAddr>,
    pub outcome: DnsOutcome,
    pub addresses: Vec<IpAddr>,
    pub error: Option<String>,
    pub elapsed: Duration,
}

/// What resolv.conf tells libc: its name servers in order and how long libc waits for one.
pub struct SystemConf {
    pub servers: Vec<SocketAddr>,
    pub libc: LibcOptions,
}

/// glibc's RES_TIMEOUT and RES_MAXRETRANS (resolv/resolv.h): the default `timeout:` and its cap.
const LIBC_DEFAULT_TIMEOUT_SECS: u32 = 5;
const LIBC_MAX_TIMEOUT_SECS: u32 = 30;
/// glibc's RES_MAXNDOTS: the cap of `ndots:` (its default is 1).
const LIBC_MAX_NDOTS: u32 = 15;

/// The name servers of a resolv.conf file, in order.
pub fn system_servers(resolv_conf: &Path) -> Result<Vec<SocketAddr>, String> {
    system_conf(resolv_conf).map(|c| c.servers)
}

/// The name servers of a resolv.conf file and libc's timeout.
pub fn system_conf(resolv_conf: &Path) -> Result<SystemConf, String> {
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
    Ok(SystemConf {
        servers,
        libc: libc_options(&data),
    })
}

/// glibc's atoi of an option's value: leading digits, 0 when there are none (a number too
/// large for u32 is above every cap it is compared with).
fn leading_number(value: &str) -> u32 {
    let digits: String = value.chars().take_while(|c| c.is_ascii_digit()).collect();
    match digits.parse() {
        Ok(n) => n,
        Err(_) if digits.is_empty() => 0,
        Err(_) => u32::MAX,
    }
}

/// A search domain a DNS query can carry: letters, digits, '-', '_' and dots. Anything else
/// (control characters from a damaged file) would only fail the query, and must not reach the
/// report's text.
fn is_plain_domain(domain: &str) -> bool {
    domain
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `options timeout:N ndots:N` and the `search`/`domain` line as glibc reads them (res_init.c):
/// the last setting wins; timeout is capped at 30 s (an unparsable value counts as 0 there,
/// which glibc then treats as 1 s per try), ndots at 15. The LOCALDOMAIN and RES_OPTIONS
/// variables of an application's own environment are not seen from here.
fn libc_options(data: &[u8]) -> LibcOptions {
    let text = String::from_utf8_lossy(data);
    let mut options = LibcOptions {
        timeout_secs: LIBC_DEFAULT_TIMEOUT_SECS,
        ndots: 1,
        search: Vec::new(),
    };
    for line in text.lines() {
        let mut words = line.split_ascii_whitespace();
        match words.next() {
            Some("options") => {
                for option in words {
                    if let Some(value) = option.strip_prefix("timeout:") {
                        options.timeout_secs =
                            leading_number(value).clamp(1, LIBC_MAX_TIMEOUT_SECS);
                    } else if let Some(value) = option.strip_prefix("ndots:") {
                        options.ndots = leading_number(value).min(LIBC_MAX_NDOTS);
                    }
                }
            }
            // Comments end a search line (res_init.c stops at '#' or ';').
            Some(keyword @ ("search" | "domain")) => {
                let domains = words
                    .take_while(|w| !w.starts_with('#') && !w.starts_with(';'))
                    .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
                    .filter(|d| !d.is_empty() && is_plain_domain(d));
                options.search = if keyword == "domain" {
                    domains.take(1).collect()
                } else {
                    domains.collect()
                };
            }
            _ => {}
        }
    }
    options
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
                silent_before: Vec::new(),
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
                    silent_before: Vec::new(),
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
                    silent_before: Vec::new(),
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
    let mut silent_before = Vec::new();
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
                silent_before,
                ..answer
            };
        }
        // Only silence costs libc a wait: an error answer (SERVFAIL, REFUSED, an ICMP
        // unreachable) sends it to the next server at once.
        if answer.outcome == DnsOutcome::Timeout
            && let Some(server) = answer.server
        {
            silent_before.push(server);
        }
        last = Some(answer);
    }
    match last {
        Some(a) => Answer {
            elapsed: started.elapsed(),
            silent_before: silent_before
                .into_iter()
                .filter(|s| Some(*s) != a.server)
                .collect(),
            ..a
        },
        None => no_server_configured(started.elapsed()),
    }
}

fn no_server_configured(elapsed: Duration) -> Answer {
    Answer {
        server: None,
        silent_before: Vec::new(),
        outcome: DnsOutcome::Error,
        addresses: Vec::new(),
        error: Some("no name server configured".into()),
        elapsed,
    }
}

/// Ask every server at once and take the first answer with addresses, whichever server sends
/// it: what a proof of silence asks (does anything accept a connection there?), not which
/// answer libc would pick, so a silent first server does not delay it by libc's timeout. With no
/// addresses from any server, the last answer (its error).
pub async fn query_first_with_addresses(
    servers: &[ServerResolver],
    name: &str,
    record_type: RecordType,
) -> Answer {
    let started = Instant::now();
    let mut answers: FuturesUnordered<_> = servers
        .iter()
        .map(|server| server.query(name, record_type))
        .collect();
    let mut last = None;
    while let Some(answer) = answers.next().await {
        if !answer.addresses.is_empty() {
            return Answer {
                elapsed: started.elapsed(),
                ..answer
            };
        }
        last = Some(answer);
    }
    let elapsed = started.elapsed();
    match last {
        Some(a) => Answer { elapsed, ..a },
        None => no_server_configured(elapsed),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libc_timeout_follows_glibc_parsing() {
        let t = |text: &str| libc_options(text.as_bytes()).timeout_secs;
        assert_eq!(t("nameserver 10.0.0.2\n"), 5);
        assert_eq!(t("nameserver 10.0.0.2\noptions timeout:2 attempts:1\n"), 2);
        // The last setting wins; values above glibc's cap are cut to 30; garbage is 1 s.
        assert_eq!(t("options timeout:2\noptions rotate timeout:7\n"), 7);
        assert_eq!(t("options timeout:300\n"), 30);
        assert_eq!(t("options timeout:x\n"), 1);
        // Not an options line.
        assert_eq!(t("# options timeout:1\nsearch timeout:1\n"), 5);
    }

    #[test]
    fn search_and_ndots_follow_glibc_parsing() {
        let o = |text: &str| libc_options(text.as_bytes());
        let plain = o("nameserver 10.0.0.2\n");
        assert_eq!((plain.ndots, plain.search.len()), (1, 0));
        let k8s = o(
            "search default.svc.cluster.local svc.cluster.local cluster.local eu-west-1.compute.internal\noptions ndots:5\n",
        );
        assert_eq!(k8s.ndots, 5);
        assert_eq!(
            k8s.search,
            [
                "default.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "eu-west-1.compute.internal"
            ]
        );
        // The last search or domain line wins; domain keeps one domain; a comment ends the line.
        assert_eq!(
            o("search a.example b.example\ndomain c.example d\n").search,
            ["c.example"]
        );
        assert_eq!(
            o("domain c.example\nsearch A.example. # old\n").search,
            ["a.example"]
        );
        assert_eq!(o("options ndots:40\n").ndots, 15);
        assert_eq!(o("options ndots:x\n").ndots, 0);
        assert_eq!(o("options ndots:99999999999\n").ndots, 15);
        assert_eq!(o("options timeout:99999999999\n").timeout_secs, 30);
        // A domain no query could carry is left out, never shown.
        assert_eq!(
            o("search ok.example bad\x1b[31m.example\n").search,
            ["ok.example"]
        );
    }

    /// A server that never answers, before one that does: the answer is the second server's
    /// and the first is named as silent; a server that errors fast is not.
    #[tokio::test]
    async fn servers_skipped_for_silence_are_recorded() {
        let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let silent_addr = silent.local_addr().unwrap();
        // A closed UDP port: the ICMP port unreachable is an immediate error.
        let closed_addr = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap()
        };
        let timeout = Duration::from_millis(300);
        let servers = vec![
            ServerResolver::new(silent_addr, timeout).unwrap(),
            ServerResolver::new(closed_addr, timeout).unwrap(),
        ];
        let answer = query_in_order(&servers, "s3.eu-west-1.amazonaws.com", RecordType::A).await;
        // Nobody answered: the last answer is the closed port's error, the silent one listed.
        assert_ne!(answer.outcome, DnsOutcome::Answered);
        assert_eq!(answer.silent_before, vec![silent_addr]);
        assert!(answer.elapsed >= timeout, "{:?}", answer.elapsed);
    }

    /// Answers every A query on a loopback UDP socket with 192.0.2.7, for as long as the test
    /// runs.
    async fn answering_server() -> SocketAddr {
        use hickory_resolver::proto::op::Message;
        use hickory_resolver::proto::rr::rdata::A;
        use hickory_resolver::proto::rr::{RData, Record};
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                let Ok(req) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
                resp.metadata.recursion_desired = req.metadata.recursion_desired;
                resp.metadata.recursion_available = true;
                resp.add_queries(req.queries.iter().cloned());
                if let Some(q) = req.queries.first() {
                    let a = RData::A(A(std::net::Ipv4Addr::new(192, 0, 2, 7)));
                    resp.add_answer(Record::from_rdata(q.name().clone(), 60, a));
                }
                if let Ok(bytes) = resp.to_vec() {
                    let _ = socket.send_to(&bytes, peer).await;
                }
            }
        });
        addr
    }

    /// A silent server listed first: libc's answer (in order) waits out its timeout, the first
    /// answer with addresses (what a proof of silence needs) does not.
    #[tokio::test]
    async fn the_first_answer_with_addresses_does_not_wait_for_a_silent_first_server() {
        let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let silent_addr = silent.local_addr().unwrap();
        let answering = answering_server().await;
        let timeout = Duration::from_secs(2);
        let servers = vec![
            ServerResolver::new(silent_addr, timeout).unwrap(),
            ServerResolver::new(answering, timeout).unwrap(),
        ];
        let name = "sts.eu-west-1.amazonaws.com";
        let first = query_first_with_addresses(&servers, name, RecordType::A).await;
        assert_eq!(first.addresses, ["192.0.2.7".parse::<IpAddr>().unwrap()]);
        assert_eq!(first.server, Some(answering));
        assert!(first.elapsed < timeout, "{:?}", first.elapsed);
        let in_order = query_in_order(&servers, name, RecordType::A).await;
        assert_eq!(in_order.addresses, first.addresses);
        assert_eq!(in_order.silent_before, vec![silent_addr]);
        assert!(in_order.elapsed >= timeout, "{:?}", in_order.elapsed);
    }
}
