//! What the configuration asks to probe: the targets with the names the SDKs would use, and
//! the resolvers to ask.

use std::collections::BTreeSet;

use ipnet::IpNet;

use super::TargetSpec;
use crate::checks::dns::Resolvers;
use crate::checks::region::override_host;
use crate::config::Config;
use crate::endpoints::{self, NameSocket, SdkSettings};
use crate::net::dns::{ServerResolver, system_conf};
use crate::report::*;

pub(super) fn build_resolvers(cfg: &Config) -> Resolvers {
    let conf = system_conf(&cfg.resolv_conf);
    let libc = conf.as_ref().ok().map(|c| c.libc.clone());
    let system = conf.and_then(|conf| {
        conf.servers
            .into_iter()
            .map(|s| ServerResolver::new(s, cfg.timeout))
            .collect::<Result<Vec<_>, _>>()
    });
    Resolvers {
        system,
        vpc: ServerResolver::new(cfg.vpc_resolver, cfg.timeout),
        libc,
    }
}

/// The account-based DynamoDB name the SDKs would call for `account`, if they use one.
pub(super) fn account_ddb_endpoint(
    region: &str,
    account: &str,
    settings: &SdkSettings,
) -> Option<endpoints::NamedEndpoint> {
    endpoints::dynamodb_names(region, Some(account), settings)
        .ok()?
        .into_iter()
        .nth(1)
}

/// The regional name of a target (S3: the path-style name, listed last; DynamoDB: first),
/// where the NACL sweep runs.
pub(super) fn is_regional_name(name: &str, targets: &[TargetSpec]) -> bool {
    targets.iter().any(|t| {
        let regional = match t.service {
            Service::S3 | Service::S3express => t.endpoint_names.last(),
            Service::Dynamodb => t.endpoint_names.first(),
        };
        regional.is_some_and(|r| r == name)
    })
}

pub(super) fn vpc_cidrs(instance: Option<&InstanceFacts>) -> Vec<IpNet> {
    instance
        .map(|f| f.vpc_cidrs.iter().filter_map(|c| c.parse().ok()).collect())
        .unwrap_or_default()
}

/// The names the SDKs would use for each target in `region` (empty when no region is known),
/// from the SDKs' endpoint rules; what the rules refuse is the target's `endpoint_error` (a
/// finding of its own).
pub fn targets(
    cfg: &Config,
    region: &str,
    instance: Option<&InstanceFacts>,
    settings: &SdkSettings,
) -> Vec<TargetSpec> {
    let override_of =
        |s: &Option<endpoints::Setting<String>>| override_host(s.as_ref().map(|s| &s.value));
    let mut out = Vec::new();
    let mut spec = |id: String, service, name: &String, names: Result<Vec<_>, String>| {
        let (named, endpoint_error): (Vec<endpoints::NamedEndpoint>, _) = match names {
            _ if region.is_empty() => (Vec::new(), None),
            Ok(named) => (named, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        out.push(TargetSpec {
            id,
            service,
            name: name.clone(),
            endpoint_names: named.iter().map(|n| n.host.clone()).collect(),
            name_sockets: named.iter().map(|n| (n.host.clone(), n.socket)).collect(),
            name_settings: named.into_iter().map(|n| (n.host, n.settings)).collect(),
            endpoint_override: match service {
                Service::S3 | Service::S3express => override_of(&settings.endpoint_url_s3),
                Service::Dynamodb => override_of(&settings.endpoint_url_dynamodb),
            },
            endpoint_error,
        });
    };
    for bucket in &cfg.buckets {
        // A directory bucket is reached through its own gateway endpoint service (s3express).
        let service = if endpoints::is_directory_bucket(bucket) {
            Service::S3express
        } else {
            Service::S3
        };
        spec(
            format!("{}:{bucket}", service.as_str()),
            service,
            bucket,
            endpoints::s3_names(bucket, region, settings),
        );
    }
    let account = instance.and_then(|i| i.account_id.as_deref());
    for table in &cfg.tables {
        spec(
            format!("dynamodb:{table}"),
            Service::Dynamodb,
            table,
            endpoints::dynamodb_names(region, account, settings),
        );
    }
    out
}

pub(super) fn unique_names(targets: &[TargetSpec]) -> Vec<(String, Service, NameSocket)> {
    let mut seen = BTreeSet::new();
    targets
        .iter()
        .flat_map(|t| {
            t.endpoint_names.iter().map(move |n| {
                let socket = t.name_sockets.get(n).copied().unwrap_or_default();
                (n.clone(), t.service, socket)
            })
        })
        .filter(|(n, _, _)| seen.insert(n.clone()))
        .collect()
}
