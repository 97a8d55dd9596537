//! The hop check: TCP SYNs to a service address with TTL (IPv6: hop limit) 1 to `MAX_HOPS`,
//! all sent at once, unprivileged (net/hops.rs). The lowest TTL at which the address answers is
//! its hop count; who answered the lower TTLs (ICMP time exceeded, or `*`) is what lies in
//! between. The VPC router does not count as a hop, so a gateway endpoint answers at TTL 1,
//! while a NAT gateway, NAT instance, firewall appliance or internet path answers first.
//!
//! A slice (checks/slice.rs): per address the applications connect to, each address and port
//! traced once per run, for whichever name resolved it first; the internet canary's trace is
//! made by the canary's slice (checks/canary.rs) and kept with these. Its record is its pure
//! half, the diagnosis crate's reading/hops.rs; its reading and finding span checks
//! (diagnose/hops.rs).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use super::slice::{AddressStage, Measuring, Slice};
use crate::net::hops::{self, Answer};
use crate::net::millis;
use crate::report::{
    AddressClass, AddressOrigin, CheckKind, Hop, HopReply, HopTrace, Service, TcpOutcome,
};
use crate::results::Measurements;
/// The hop check's slice: its record is the diagnosis crate's, its moment is here.
pub use vpce_probe_diagnosis::reading::hops::HopsSlice;

impl Slice for HopsSlice {
    fn kind(&self) -> CheckKind {
        CheckKind::Hops
    }

    fn named_by_deadline(&self) -> bool {
        false
    }

    /// An address the applications connect to, the first time a name reaches it in the run.
    fn per_address<'a>(&'a self, stage: AddressStage<'a>) -> Option<Measuring<'a>> {
        let addr = SocketAddr::new(stage.ip, stage.port);
        if stage.origin != AddressOrigin::Application || !stage.claims.claim(self.kind(), addr) {
            return None;
        }
        Some(Box::pin(async move {
            let traced = trace(
                stage.name,
                Some(stage.service),
                stage.ip,
                stage.port,
                stage.class,
                stage.budget.op(),
            )
            .await;
            let mut measured = Measurements::default();
            measured.push(traced);
            measured
        }))
    }
}

/// TTLs probed: a gateway endpoint answers at 1, a NAT at 2; the internet is further, and its
/// first hops already say it is the internet.
pub const MAX_HOPS: u8 = 8;

/// After the address answered at some TTL, how long the lower TTLs may still take to say who
/// they are: twice the time the answer took, at least this (an ICMP error from a near hop comes
/// back sooner than the service's answer through it).
const MIN_GRACE: Duration = Duration::from_millis(200);

/// Traces `ip:port` within `budget` (the whole check, every TTL together).
pub async fn trace(
    name: &str,
    service: Option<Service>,
    ip: IpAddr,
    port: u16,
    class: AddressClass,
    budget: Duration,
) -> HopTrace {
    let started = Instant::now();
    let addr = SocketAddr::new(ip, port);
    let answers = probe_all(addr, MAX_HOPS, budget).await;
    let mut trace = summarize(&answers, MAX_HOPS);
    trace.name = name.to_string();
    trace.service = service;
    trace.address = ip.to_string();
    trace.port = port;
    trace.address_class = class;
    trace.duration_ms = millis(started.elapsed());
    trace
}

/// Every TTL at once; returns when the lowest TTL that reached the address is known and every
/// TTL below it has answered (or had its grace), or when the budget is spent.
async fn probe_all(addr: SocketAddr, max_hops: u8, budget: Duration) -> BTreeMap<u8, Answer> {
    let started = Instant::now();
    let mut pending: FuturesUnordered<_> = (1..=max_hops)
        .map(|ttl| async move { (ttl, hops::probe(addr, ttl, budget).await.0) })
        .collect();
    let mut answers: BTreeMap<u8, Answer> = BTreeMap::new();
    let mut reached: Option<u8> = None;
    let mut cutoff = started + budget;
    loop {
        let done = match reached {
            Some(k) => (1..k).all(|t| answers.contains_key(&t)),
            None => answers.len() == usize::from(max_hops),
        };
        if done {
            break;
        }
        match tokio::time::timeout_at(cutoff.into(), pending.next()).await {
            Ok(Some((ttl, answer))) => {
                if answer.reached() && reached.is_none_or(|k| ttl < k) {
                    if reached.is_none() {
                        let grace = (started.elapsed() * 2).max(MIN_GRACE);
                        cutoff = cutoff.min(Instant::now() + grace);
                    }
                    reached = Some(ttl);
                }
                answers.insert(ttl, answer);
            }
            Ok(None) | Err(_) => break,
        }
    }
    answers
}

/// The trace from the answers by TTL (absent: no answer in time, `*`).
fn summarize(answers: &BTreeMap<u8, Answer>, max_hops: u8) -> HopTrace {
    let reached = answers
        .iter()
        .find(|(_, a)| a.reached())
        .map(|(ttl, a)| (*ttl, a.clone()));
    let last = reached.as_ref().map_or(max_hops, |(k, _)| k - 1);
    let mut hops = Vec::new();
    let mut stopped: Option<String> = None;
    let mut error = None;
    for ttl in 1..=last {
        let (reply, from) = match answers.get(&ttl) {
            Some(Answer::TimeExceeded { from }) => (HopReply::TimeExceeded, Some(from.to_string())),
            Some(Answer::Unreachable { from, error }) => {
                stopped.get_or_insert_with(|| error.clone());
                (HopReply::Unreachable, from.map(|f| f.to_string()))
            }
            Some(Answer::Error(e)) => {
                error.get_or_insert_with(|| e.clone());
                (HopReply::Silent, None)
            }
            Some(Answer::Silent) | Some(Answer::Reached { .. }) | None => (HopReply::Silent, None),
        };
        hops.push(Hop { ttl, reply, from });
        // Past an unreachable, every higher TTL says the same: the path ends there.
        if reply == HopReply::Unreachable && reached.is_none() {
            break;
        }
    }
    let outcome = match &reached {
        Some((_, Answer::Reached { refused: true })) => TcpOutcome::Refused,
        Some(_) => TcpOutcome::Connected,
        None if stopped.is_some() => TcpOutcome::Unreachable,
        None if error.is_some() && hops.iter().all(|h| h.reply == HopReply::Silent) => {
            TcpOutcome::Error
        }
        None => TcpOutcome::Timeout,
    };
    HopTrace {
        name: String::new(),
        service: None,
        address: String::new(),
        port: 0,
        address_class: AddressClass::Outside,
        answered_at: reached.map(|(k, _)| k),
        outcome,
        hops,
        max_hops,
        error: error.or(stopped),
        duration_ms: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Check;

    fn te(ip: &str) -> Answer {
        Answer::TimeExceeded {
            from: ip.parse().unwrap(),
        }
    }

    /// (answers by TTL, the TTL that reached, the outcome, the summary expected)
    type SummaryCase = (Vec<(u8, Answer)>, Option<u8>, TcpOutcome, &'static str);

    #[test]
    fn summaries_of_answers() {
        let reach = Answer::Reached { refused: false };
        let cases: Vec<SummaryCase> = vec![
            (
                vec![(1, reach.clone())],
                Some(1),
                TcpOutcome::Connected,
                "1 (direct)",
            ),
            (
                vec![(1, te("10.0.1.1")), (2, reach.clone()), (3, reach.clone())],
                Some(2),
                TcpOutcome::Connected,
                "10.0.1.1 → 198.51.100.10 at 2",
            ),
            (
                vec![(1, te("10.0.1.1")), (3, Answer::Reached { refused: true })],
                Some(3),
                TcpOutcome::Refused,
                "10.0.1.1 → * → 198.51.100.10 at 3",
            ),
            (
                vec![(
                    1,
                    Answer::Unreachable {
                        from: Some("10.0.1.1".parse().unwrap()),
                        error: "No route to host".into(),
                    },
                )],
                None,
                TcpOutcome::Unreachable,
                "10.0.1.1 (unreachable)",
            ),
            (
                vec![],
                None,
                TcpOutcome::Timeout,
                "no answer at any TTL up to 3",
            ),
        ];
        for (answers, at, outcome, compact) in cases {
            let map: BTreeMap<u8, Answer> = answers.into_iter().collect();
            let mut t = summarize(&map, 3);
            t.address = "198.51.100.10".into();
            assert_eq!(t.answered_at, at, "{compact}");
            assert_eq!(t.outcome, outcome, "{compact}");
            assert_eq!(t.compact(), compact);
        }
    }

    #[test]
    fn each_application_address_is_traced_once_per_run() {
        let limits = crate::net::limits::Limits::unbounded();
        let claims = crate::checks::slice::RunClaims::default();
        let stage = AddressStage {
            name: "s3.eu-west-1.amazonaws.com",
            service: Service::S3,
            ip: "192.0.2.7".parse().unwrap(),
            port: 443,
            class: AddressClass::ServiceRegion,
            origin: AddressOrigin::Application,
            budget: crate::net::Budget::new(Duration::from_secs(1), Duration::from_secs(1)),
            limits: &limits,
            claims: &claims,
        };
        // The VPC resolver's second opinion is not traced, and claims nothing.
        let vpc = AddressStage {
            origin: AddressOrigin::VpcResolver,
            ..stage
        };
        assert!(HopsSlice.per_address(vpc).is_none());
        assert!(HopsSlice.per_address(stage).is_some());
        // Another name resolving to the same address and port: already traced.
        let bucket = AddressStage {
            name: "b.s3.eu-west-1.amazonaws.com",
            ..stage
        };
        assert!(HopsSlice.per_address(bucket).is_none());
        let other_port = AddressStage {
            port: 8443,
            ..bucket
        };
        assert!(HopsSlice.per_address(other_port).is_some());
        assert!(!HopsSlice.named_by_deadline());
    }

    #[tokio::test]
    async fn loopback_answers_at_the_first_hop() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let t = trace(
            "localhost",
            Some(Service::S3),
            "127.0.0.1".parse().unwrap(),
            port,
            AddressClass::Private,
            Duration::from_secs(2),
        )
        .await;
        assert_eq!(t.answered_at, Some(1));
        assert_eq!(t.outcome, TcpOutcome::Connected);
        assert!(t.hops.is_empty());
        assert_eq!(t.summary(), "127.0.0.1 (localhost): 1 (direct)");
    }
}
