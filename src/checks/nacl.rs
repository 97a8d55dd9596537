//! Network ACL ephemeral ports: NACLs are stateless, so the return traffic to the instance's
//! source port must be allowed inbound. Connect from chosen source ports across 1024-65535
//! and report which ranges fail while others work.
//!
//! A slice (checks/slice.rs): once per regional name, towards its first IPv4 address the
//! applications use (one sweep per service). Its finding rule, NACL_EPHEMERAL_BLOCKED, and its
//! `Check` impl are its pure half, the diagnosis crate's reading/nacl.rs.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::future::join_all;

use super::slice::{NamedMeasuring, NameStage, Slice};
use crate::net::limits::Limits;
use crate::net::{millis, tcp};
use crate::report::{
    AddressOrigin, CheckKind, NaclSweep, PortRange, PortRangeResult, Service, TcpOutcome,
};
use crate::results::Measurements;
/// The sweep's slice: its rules are the diagnosis crate's (`SliceRules`), its moment is here.
pub use vpce_probe_diagnosis::reading::nacl::NaclSweepSlice;

impl Slice for NaclSweepSlice {
    fn kind(&self) -> CheckKind {
        CheckKind::Nacl
    }

    fn per_name<'a>(&'a self, stage: NameStage<'a>) -> Option<NamedMeasuring<'a>> {
        let ip = sweep_address(&stage)?;
        let (service, port) = (stage.service, stage.port);
        let kernel = stage.host.ephemeral_ports;
        let (timeout, limits) = (stage.budget.op(), stage.limits);
        Some(NamedMeasuring {
            id: format!("nacl/{}/{ip}", service.as_str()),
            subject: format!("{ip}:{port}"),
            measuring: Box::pin(async move {
                let mut measured = Measurements::default();
                measured.push(sweep(service, ip, port, timeout, kernel, limits).await);
                measured
            }),
        })
    }
}

/// Where a name's sweep goes: its first IPv4 address the applications use, on a regional name
/// only (every target of a service shares it, so each service is swept once).
fn sweep_address(stage: &NameStage<'_>) -> Option<IpAddr> {
    if !stage.regional {
        return None;
    }
    stage
        .addresses
        .iter()
        .find(|(ip, _, origin)| ip.is_ipv4() && *origin == AddressOrigin::Application)
        .map(|(ip, _, _)| *ip)
}

/// Boundaries chosen where real NACLs and OSes draw lines: 1024-32767 vs 32768+ (Linux's
/// 32768-60999), 49152+ (IANA/Windows), 61000+ (above Linux's default).
pub const PLAN: &[(u16, u16)] = &[
    (1024, 4999),
    (5000, 9999),
    (10000, 19999),
    (20000, 32767),
    (32768, 40959),
    (40960, 49151),
    (49152, 57343),
    (57344, 60999),
    (61000, 65535),
];

/// Ports already in use are skipped by trying another one in the same range.
const TRIES_PER_RANGE: usize = 3;

pub fn planned_ranges() -> Vec<PortRange> {
    PLAN.iter()
        .map(|&(first, last)| PortRange { first, last })
        .collect()
}

/// A random port inside `range` (avoids colliding with a previous run's TIME_WAIT sockets).
pub fn pick_port(range: PortRange, rng: &mut fastrand::Rng) -> u16 {
    rng.u16(range.first..=range.last)
}

pub async fn sweep(
    service: Service,
    ip: IpAddr,
    port: u16,
    timeout: Duration,
    kernel_ephemeral: Option<PortRange>,
    limits: &Limits,
) -> NaclSweep {
    let addr = SocketAddr::new(ip, port);
    let attempts = planned_ranges().into_iter().map(|range| async move {
        let mut rng = fastrand::Rng::new();
        let mut last = None;
        for _ in 0..TRIES_PER_RANGE {
            let source = pick_port(range, &mut rng);
            let c = tcp::connect(limits, addr, Some(source), timeout).await;
            // A port in use fails at bind with EADDRINUSE: try another one.
            let in_use = c.error.as_deref().is_some_and(|e| e.contains("in use"));
            let result = PortRangeResult {
                range,
                source_port: Some(source),
                outcome: c.outcome,
                connect_ms: millis(c.elapsed),
            };
            if !in_use {
                return result;
            }
            last = Some(result);
        }
        last.unwrap_or(PortRangeResult {
            range,
            source_port: None,
            outcome: TcpOutcome::Error,
            connect_ms: 0,
        })
    });
    let ranges = join_all(attempts).await;
    let failing = failing_spans(&ranges);
    NaclSweep {
        service,
        address: ip.to_string(),
        port,
        ranges,
        failing,
        kernel_ephemeral,
    }
}

/// The ranges whose connections timed out or were reset while others connected, merged.
/// When nothing connects, or everything does, no range is singled out.
pub fn failing_spans(results: &[PortRangeResult]) -> Vec<PortRange> {
    let any_ok = results.iter().any(|r| r.outcome == TcpOutcome::Connected);
    let failed = |r: &&PortRangeResult| {
        matches!(
            r.outcome,
            TcpOutcome::Timeout | TcpOutcome::Refused | TcpOutcome::Unreachable
        )
    };
    if !any_ok {
        return Vec::new();
    }
    let mut spans: Vec<PortRange> = Vec::new();
    let mut sorted: Vec<&PortRangeResult> = results.iter().filter(failed).collect();
    sorted.sort_by_key(|r| r.range.first);
    for r in sorted {
        match spans.last_mut() {
            Some(last) if last.last.checked_add(1) == Some(r.range.first) => {
                last.last = r.range.last
            }
            _ => spans.push(r.range),
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Budget;
    use crate::report::{AddressClass, HostFacts};

    #[test]
    fn one_sweep_per_regional_name_to_its_first_ipv4_application_address() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let addresses = [
            (ip("10.9.0.5"), AddressClass::Private, AddressOrigin::VpcResolver),
            (ip("2001:db8::1"), AddressClass::ServiceRegion, AddressOrigin::Application),
            (ip("192.0.2.7"), AddressClass::ServiceRegion, AddressOrigin::Application),
            (ip("192.0.2.8"), AddressClass::ServiceRegion, AddressOrigin::Application),
        ];
        let host = HostFacts {
            ephemeral_ports: Some(PortRange {
                first: 32768,
                last: 60999,
            }),
            ..HostFacts::default()
        };
        let limits = Limits::unbounded();
        let stage = NameStage {
            name: "s3.eu-west-1.amazonaws.com",
            service: Service::S3,
            port: 443,
            addresses: &addresses,
            regional: true,
            host: &host,
            budget: Budget::new(Duration::from_secs(1), Duration::from_secs(1)),
            limits: &limits,
        };
        assert_eq!(sweep_address(&stage), Some(ip("192.0.2.7")));
        let started = NaclSweepSlice.per_name(stage).unwrap();
        // The deadline's record of an unfinished sweep: the id its finished record has.
        assert_eq!(started.id, "nacl/s3/192.0.2.7");
        assert_eq!(started.subject, "192.0.2.7:443");

        let not_regional = NameStage {
            regional: false,
            ..stage
        };
        assert!(NaclSweepSlice.per_name(not_regional).is_none());
        let only_vpc_resolver = NameStage {
            addresses: &addresses[..2],
            ..stage
        };
        assert_eq!(sweep_address(&only_vpc_resolver), None);
    }

    #[test]
    fn plan_covers_1024_to_65535_without_gaps() {
        let ranges = planned_ranges();
        assert_eq!(ranges[0].first, 1024);
        assert_eq!(ranges.last().unwrap().last, 65535);
        for pair in ranges.windows(2) {
            assert_eq!(pair[0].last + 1, pair[1].first);
        }
        let mut rng = fastrand::Rng::with_seed(7);
        for r in &ranges {
            for _ in 0..100 {
                let p = pick_port(*r, &mut rng);
                assert!(p >= r.first && p <= r.last);
            }
        }
    }

    fn result(first: u16, last: u16, outcome: TcpOutcome) -> PortRangeResult {
        PortRangeResult {
            range: PortRange { first, last },
            source_port: Some(first),
            outcome,
            connect_ms: 1,
        }
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn failing_spans_table() {
        use TcpOutcome::*;
        let cases: Vec<(Vec<PortRangeResult>, Vec<(u16, u16)>)> = vec![
            (
                vec![
                    result(1024, 32767, Connected),
                    result(32768, 65535, Connected),
                ],
                vec![],
            ),
            (
                vec![result(1024, 32767, Timeout), result(32768, 65535, Timeout)],
                vec![],
            ),
            (
                vec![
                    result(1024, 32767, Connected),
                    result(32768, 40959, Timeout),
                    result(40960, 65535, Timeout),
                ],
                vec![(32768, 65535)],
            ),
            (
                vec![
                    result(1024, 4999, Timeout),
                    result(5000, 9999, Connected),
                    result(10000, 19999, Timeout),
                ],
                vec![(1024, 4999), (10000, 19999)],
            ),
            // A local error (not a network drop) is not an ACL verdict.
            (
                vec![result(1024, 4999, Error), result(5000, 9999, Connected)],
                vec![],
            ),
        ];
        for (input, want) in cases {
            let got: Vec<(u16, u16)> = failing_spans(&input)
                .iter()
                .map(|r| (r.first, r.last))
                .collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn kernel_range_overlap() {
        let sweep = NaclSweep {
            service: Service::S3,
            address: "192.0.2.1".into(),
            port: 443,
            ranges: vec![],
            failing: vec![PortRange {
                first: 32768,
                last: 65535,
            }],
            kernel_ephemeral: Some(PortRange {
                first: 32768,
                last: 60999,
            }),
        };
        assert!(sweep.hits_kernel_range());
        let narrow = NaclSweep {
            failing: vec![PortRange {
                first: 1024,
                last: 4999,
            }],
            ..sweep
        };
        assert!(!narrow.hits_kernel_range());
    }
}
