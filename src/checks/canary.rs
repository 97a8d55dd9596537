//! Internet canary: a TCP connect to a host that no VPC endpoint serves. If it connects, the
//! instance has an internet path (NAT or internet gateway) that S3/DynamoDB traffic could take
//! instead of the gateway endpoint, so data-plane evidence alone cannot prove the path.
//!
//! In a private subnet its healthy answer is silence, so it is not given the full `--timeout`:
//! `connect_timeout` is the run's `--silence-timeout`, and a canary that connects later (an
//! internet path with a longer round trip) is reported unreachable. The evidence keeps the bound.
//!
//! A slice (checks/slice.rs): once per run, as the run starts, beside everything else, with its
//! own hop trace (kept with the hop check's: what the service addresses' first hops are
//! compared with). Its record comes last in the report. It has no finding rule of its own: the
//! path verdicts and the hop rule read it (the diagnosis crate's diagnose/); its `Check` impl is
//! its pure half, the diagnosis crate's reading/canary.rs.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use hickory_resolver::proto::rr::RecordType;

use super::dns::Resolvers;
use super::hops;
use super::slice::{NamedMeasuring, RecordsAt, RunStage, Slice};
use crate::net::dns::query_in_order;
use crate::net::limits::Limits;
use crate::net::{millis, tcp};
use crate::report::{
    AddressClass, CanaryOutcome, CanaryResult, CheckKind, HopTrace, TcpOutcome,
};
use crate::results::Measurements;
/// The canary's slice: its record is the diagnosis crate's, its moment is here.
pub use vpce_probe_diagnosis::reading::canary::CanarySlice;

impl Slice for CanarySlice {
    fn kind(&self) -> CheckKind {
        CheckKind::Canary
    }

    /// After Reachability Analyzer's, where the report always had it.
    fn records_at(&self) -> RecordsAt {
        RecordsAt::Last
    }

    /// The canary and its hop trace, unless `--internet-canary` is off.
    fn per_run<'a>(&'a self, stage: RunStage<'a>) -> Option<NamedMeasuring<'a>> {
        let (host, port) = stage.internet_canary?;
        // Its healthy answer is silence: the short bound, not the whole timeout, for its hop
        // trace too (in a private subnet nothing on the way answers either).
        let bound = stage.silence_timeout.min(stage.budget.op());
        Some(NamedMeasuring {
            id: "canary".into(),
            subject: format!("{host}:{port}"),
            measuring: Box::pin(async move {
                let (result, trace) = tokio::join!(
                    probe(stage.resolvers, host, port, bound, stage.limits),
                    hop_trace(stage.resolvers, host, port, bound)
                );
                let mut measured = Measurements::default();
                measured.push(result);
                if let Some(trace) = trace {
                    measured.push(trace);
                }
                measured
            }),
        })
    }
}

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

/// The canary's first address (`host` an IP, or resolved through the host's resolver), traced
/// like a service address. None when it does not resolve.
pub async fn hop_trace(
    resolvers: &Resolvers,
    host: &str,
    port: u16,
    budget: Duration,
) -> Option<HopTrace> {
    let ip = match host.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => match &resolvers.system {
            Ok(servers) => *query_in_order(servers, host, RecordType::A)
                .await
                .addresses
                .first()?,
            Err(_) => return None,
        },
    };
    let target = format!("{host}:{port}");
    Some(hops::trace(&target, None, ip, port, AddressClass::Outside, budget).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Budget;

    /// Once per run when a canary is set, none when it is off; its result and its own hop trace
    /// are kept together, its record named for the deadline as its finished one is, and placed
    /// last in the report.
    #[tokio::test]
    async fn the_canary_and_its_trace_once_per_run() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let resolvers = Resolvers::none_asked();
        let limits = Limits::unbounded();
        let stage = RunStage {
            internet_canary: None,
            silence_timeout: Duration::from_secs(2),
            resolvers: &resolvers,
            budget: Budget::new(Duration::from_secs(2), Duration::from_secs(5)),
            limits: &limits,
        };
        assert!(CanarySlice.per_run(stage).is_none());
        assert_eq!(CanarySlice.records_at(), RecordsAt::Last);
        let stage = RunStage {
            internet_canary: Some(("127.0.0.1", port)),
            ..stage
        };
        let started = CanarySlice.per_run(stage).unwrap();
        assert_eq!(started.id, "canary");
        assert_eq!(started.subject, format!("127.0.0.1:{port}"));
        let measured = started.measuring.await;
        let canary = measured.of::<CanaryResult>();
        assert_eq!(canary.len(), 1);
        assert_eq!(canary[0].outcome, CanaryOutcome::Reachable);
        assert_eq!(canary[0].connect_timeout_ms, Some(2000));
        let traces = measured.of::<HopTrace>();
        assert_eq!(traces.len(), 1);
        assert_eq!(traces[0].service, None);
        assert_eq!(traces[0].answered_at, Some(1));
    }
}
