//! DNS: every service name, A and AAAA, through the host's resolver configuration and through
//! the VPC resolver; each answer classified against the service's ranges for the region.

use std::net::SocketAddr;

use hickory_resolver::proto::rr::RecordType;
use ipnet::IpNet;

use crate::net::dns::{Answer, LibcOptions, ServerResolver, query_in_order};
use crate::net::millis;
use crate::ranges::IpRanges;
pub use crate::report::class_label;
use crate::report::{DnsLookup, DnsOutcome, ResolverKind, Service};

/// The resolvers a run asks; building them can fail (no resolv.conf), which is itself evidence.
pub struct Resolvers {
    pub system: Result<Vec<ServerResolver>, String>,
    pub vpc: Result<ServerResolver, String>,
    /// What libc reads from resolv.conf besides `system` (its timeout, ndots and search
    /// domains); none for a resolver libc does not walk (systemd-resolved's stub).
    pub libc: Option<LibcOptions>,
}

impl Resolvers {
    /// No resolver at all: what a test of a check that asks none is given.
    #[cfg(test)]
    pub fn none_asked() -> Self {
        Resolvers {
            system: Err("not asked".into()),
            vpc: Err("not asked".into()),
            libc: None,
        }
    }

    pub fn system_servers(&self) -> Vec<SocketAddr> {
        match &self.system {
            Ok(v) => v.iter().map(|r| r.server).collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// What the classification needs to know about the run.
pub struct Classifier<'a> {
    pub ranges: &'a IpRanges,
    pub region: &'a str,
    pub vpc_cidrs: &'a [IpNet],
}

pub async fn lookup(
    resolvers: &Resolvers,
    kind: ResolverKind,
    name: &str,
    service: Service,
    record_type: RecordType,
    classifier: &Classifier<'_>,
) -> DnsLookup {
    let answer = match (kind, &resolvers.system, &resolvers.vpc) {
        (ResolverKind::System, Ok(servers), _) => query_in_order(servers, name, record_type).await,
        (ResolverKind::Vpc, _, Ok(server)) => server.query(name, record_type).await,
        (ResolverKind::System, Err(e), _) | (ResolverKind::Vpc, _, Err(e)) => Answer {
            server: None,
            silent_before: Vec::new(),
            outcome: DnsOutcome::Error,
            addresses: Vec::new(),
            error: Some(e.clone()),
            elapsed: std::time::Duration::ZERO,
        },
        // The applications' path is walked by app_resolve, from these lookups.
        (ResolverKind::Application, _, _) => Answer {
            server: None,
            silent_before: Vec::new(),
            outcome: DnsOutcome::Error,
            addresses: Vec::new(),
            error: Some("not a DNS server lookup".into()),
            elapsed: std::time::Duration::ZERO,
        },
    };
    DnsLookup {
        name: name.to_string(),
        service,
        record_type: record_type.to_string(),
        resolver: kind,
        server: answer.server.map(|s| s.to_string()),
        outcome: answer.outcome,
        addresses: answer
            .addresses
            .iter()
            .map(|ip| {
                classifier
                    .ranges
                    .classify(*ip, service, classifier.region, classifier.vpc_cidrs)
            })
            .collect(),
        error: answer.error,
        latency_ms: millis(answer.elapsed),
        libc_wait_secs: match (kind, &resolvers.libc) {
            (ResolverKind::System, Some(libc)) if !answer.silent_before.is_empty() => Some(
                libc.timeout_secs
                    .saturating_mul(answer.silent_before.len() as u32),
            ),
            _ => None,
        },
        silent_servers: answer.silent_before.iter().map(|s| s.to_string()).collect(),
    }
}
