//! Internet canary: a TCP connect to a host that no VPC endpoint serves. If it connects, the
//! instance has an internet path (NAT or internet gateway) that S3/DynamoDB traffic could take
//! instead of the gateway endpoint, so data-plane evidence alone cannot prove the path.
//!
//! In a private subnet its healthy answer is silence, so it is not given the full `--timeout`:
//! `connect_timeout` is the run's `--silence-timeout`, and a canary that connects later (an
//! internet path with a longer round trip) is reported unreachable. The evidence keeps the bound.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use hickory_resolver::proto::rr::RecordType;

use super::dns::Resolvers;
use crate::net::dns::query_in_order;
use crate::net::limits::Limits;
use crate::net::{millis, tcp};
use crate::report::{CanaryOutcome, CanaryResult, TcpOutcome};

pub async fn probe(
    resolvers: &Resolvers,
    host: &str,
    port: u16,
    connect_timeout: Duration,
    limits: &Limits,
) -> CanaryResult {
    let started = Instant::now();
    let target = format!("{host}:{port}");
    let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => match &resolvers.system {
            Ok(servers) => query_in_order(servers, host, RecordType::A).await.addresses,
            Err(_) => Vec::new(),
        },
    };
    if addresses.is_empty() {
        return CanaryResult {
            target,
            addresses: Vec::new(),
            outcome: CanaryOutcome::NotResolved,
            error: Some(format!(
                "{host} did not resolve through the host's resolver"
            )),
            connect_ms: millis(started.elapsed()),
            connect_timeout_ms: None,
        };
    }
    let attempts = addresses
        .iter()
        .take(4)
        .map(|ip| tcp::connect(limits, SocketAddr::new(*ip, port), None, connect_timeout));
    let results = join_all(attempts).await;
    let connected = results.iter().any(|c| c.outcome == TcpOutcome::Connected);
    CanaryResult {
        target,
        addresses: addresses.iter().map(|a| a.to_string()).collect(),
        outcome: if connected {
            CanaryOutcome::Reachable
        } else {
            CanaryOutcome::Unreachable
        },
        error: if connected {
            None
        } else {
            results.iter().find_map(|c| c.error.clone())
        },
        connect_ms: millis(started.elapsed()),
        connect_timeout_ms: Some(millis(connect_timeout)),
    }
}
