//! Results as the tests of the rules and of the diagnosis build them: one place for the
//! fields a test does not care about.

use crate::report::{
    AddressClass, AddressOrigin, ClassifiedAddress, DnsLookup, DnsOutcome, ResolverKind, Service,
    TcpAttempt, TcpOutcome,
};
use crate::results::TargetSpec;

/// An S3 name's lookup from the resolver at 10.0.0.2, answering `ips` in 1 ms.
pub(crate) fn dns_lookup(
    name: &str,
    resolver: ResolverKind,
    record_type: &str,
    outcome: DnsOutcome,
    ips: &[(&str, AddressClass)],
) -> DnsLookup {
    DnsLookup {
        name: name.into(),
        service: Service::S3,
        record_type: record_type.into(),
        resolver,
        server: Some("10.0.0.2:53".into()),
        outcome,
        addresses: ips
            .iter()
            .map(|(ip, class)| ClassifiedAddress {
                ip: ip.to_string(),
                class: *class,
                prefix: None,
                prefix_region: None,
            })
            .collect(),
        error: None,
        latency_ms: 1,
        silent_servers: Vec::new(),
        libc_wait_secs: None,
    }
}

/// A TCP connect to port 443 of an S3 address the applications use, in the region's ranges.
pub(crate) fn tcp_attempt(name: &str, address: &str, outcome: TcpOutcome) -> TcpAttempt {
    TcpAttempt {
        name: name.into(),
        service: Service::S3,
        address: address.into(),
        port: 443,
        address_class: AddressClass::ServiceRegion,
        origin: AddressOrigin::Application,
        local_address: None,
        outcome,
        error: None,
        connect_ms: 1,
    }
}

/// Bucket `b` reached through `name` only.
pub(crate) fn s3_target(name: &str) -> TargetSpec {
    TargetSpec {
        id: "s3:b".into(),
        service: Service::S3,
        name: "b".into(),
        endpoint_names: vec![name.into()],
        name_settings: Default::default(),
        name_sockets: Default::default(),
        endpoint_override: None,
        endpoint_error: None,
    }
}
