//! What a run found: the checks' typed results, the input of diagnosis. Between the
//! scheduler (run/), which fills it, and diagnosis, which reads it, so neither imports the other.
//!
//! The checks of the run's spine have a field each; a slice's results (the hop check's, the
//! NACL sweep's, the proxy CONNECT probe's, the internet canary's, and any new check's) go to
//! `measured`, a collection keyed by their type and read by it (`measured.of::<NaclSweep>()`),
//! so a new check adds no field here and no line to the report's assembly.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::net::SocketAddr;

use crate::reading::Check;
use crate::report::*;

/// A target as the run sees it: which names the SDKs would use for it.
#[derive(Clone, Debug)]
pub struct TargetSpec {
    pub id: String,
    pub service: Service,
    pub name: String,
    pub endpoint_names: Vec<String>,
    /// Per name, the settings that produced it and their sources.
    pub name_settings: std::collections::BTreeMap<String, Vec<String>>,
    /// Per name, where its calls connect (absent: 443 with TLS).
    pub name_sockets: std::collections::BTreeMap<String, crate::endpoints::NameSocket>,
    pub endpoint_override: Option<String>,
    /// Why the SDKs' endpoint rules give this target no name (its calls fail before any packet).
    pub endpoint_error: Option<String>,
}

/// Everything the checks found: the input of diagnosis.
#[derive(Default)]
pub struct ProbeResults {
    pub host: HostFacts,
    pub imds: Option<ImdsEvidence>,
    pub instance: Option<InstanceFacts>,
    pub imds_ms: u64,
    pub region: RegionFacts,
    pub targets: Vec<TargetSpec>,
    pub dns: Vec<DnsLookup>,
    /// Each name as the applications resolve it (nsswitch, hosts file, DNS, local stub).
    pub app_dns: Vec<AppResolution>,
    pub tcp: Vec<TcpAttempt>,
    pub tls: Vec<TlsHandshake>,
    pub proxy_env: Option<ProxyEnvEvidence>,
    pub credentials: Option<CredentialsEvidence>,
    pub calls: Vec<CallResult>,
    pub control_plane: Option<ControlPlane>,
    pub reachability: Vec<ReachabilityEvidence>,
    pub system_resolvers: Vec<SocketAddr>,
    pub vpc_resolver: Option<SocketAddr>,
    /// What kept checks from running and no check records (the shared config files the
    /// agent could not read, an HTTP client that could not be built): diagnosis says so in the
    /// verdict, a run with one is never healthy.
    pub setup_errors: Vec<String>,
    pub deadline_hit: bool,
    /// The results of the checks that are slices (the probe's checks/slice.rs), each kept by
    /// its type: the hop check's traces (`HopTrace`, each service address once, whichever name
    /// resolved it first, and the internet canary's), the NACL sweeps (`NaclSweep`), the proxy
    /// CONNECT probes (`ProxyProbe`), the internet canary (`CanaryResult`, once per run).
    pub measured: Measurements,
}

/// A check's result that a slice keeps in `ProbeResults::measured`.
pub trait Measured: Check + Send + 'static {}
impl<T: Check + Send + 'static> Measured for T {}

/// The results of the slices' checks, each type in its own list: a slice reads its own with
/// `of`, and the report's assembly turns them all into check records with `records`.
#[derive(Default)]
pub struct Measurements {
    by_type: HashMap<TypeId, Box<dyn Kept>>,
}

/// One type's list, with its type erased.
trait Kept: Send {
    fn kind(&self) -> CheckKind;
    fn type_name(&self) -> &'static str;
    /// Its records, in its check's record order (`Check::record_order`).
    fn records(&self) -> Vec<CheckRecord>;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// Appends this list to `into`, which holds the same type.
    fn append_to(self: Box<Self>, into: &mut dyn Kept);
}

impl<T: Measured> Kept for Vec<T> {
    fn kind(&self) -> CheckKind {
        T::KIND
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }
    fn records(&self) -> Vec<CheckRecord> {
        let mut ordered: Vec<(Vec<String>, &T)> =
            self.iter().map(|r| (r.record_order(), r)).collect();
        ordered.sort_by(|a, b| a.0.cmp(&b.0));
        ordered.into_iter().map(|(_, r)| r.record()).collect()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn append_to(self: Box<Self>, into: &mut dyn Kept) {
        if let Some(list) = into.as_any_mut().downcast_mut::<Vec<T>>() {
            list.extend(*self);
        }
    }
}

impl Measurements {
    pub fn push<T: Measured>(&mut self, result: T) {
        let kept = self
            .by_type
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(Vec::<T>::new()));
        if let Some(list) = kept.as_any_mut().downcast_mut::<Vec<T>>() {
            list.push(result);
        }
    }

    /// Every result of type `T`, in the order they were kept.
    pub fn of<T: Measured>(&self) -> &[T] {
        self.by_type
            .get(&TypeId::of::<T>())
            .and_then(|kept| kept.as_any().downcast_ref::<Vec<T>>())
            .map_or(&[], Vec::as_slice)
    }

    /// Every result of type `T`, to correct in place (the run reclassifies addresses once the
    /// VPC's CIDRs are known).
    pub fn of_mut<T: Measured>(&mut self) -> &mut [T] {
        self.by_type
            .get_mut(&TypeId::of::<T>())
            .and_then(|kept| kept.as_any_mut().downcast_mut::<Vec<T>>())
            .map_or(&mut [], Vec::as_mut_slice)
    }

    /// Replaces the results of type `T` by `results`.
    pub fn set<T: Measured>(&mut self, results: Vec<T>) {
        self.by_type.insert(TypeId::of::<T>(), Box::new(results));
    }

    /// Moves every result of `other` here.
    pub fn extend(&mut self, other: Measurements) {
        for (id, list) in other.by_type {
            match self.by_type.get_mut(&id) {
                Some(existing) => list.append_to(existing.as_mut()),
                None => {
                    self.by_type.insert(id, list);
                }
            }
        }
    }

    /// Every result as a check record, in an order that does not depend on which finished
    /// first: by check kind, the kinds in `order` first (the probe passes its slices'
    /// registration order) and any other by the kinds' registry, then by type, then in each
    /// check's record order (`Check::record_order`: its id unless the check says otherwise).
    pub fn records(&self, order: &[CheckKind]) -> Vec<CheckRecord> {
        self.records_where(order, |_| true)
    }

    /// The records of the kinds `placed_here` accepts, in the order of `records`: the report's
    /// assembly places each slice's records where the slice says (checks/slice.rs
    /// `Slice::records_at`), one call per place.
    pub fn records_where(
        &self,
        order: &[CheckKind],
        placed_here: impl Fn(CheckKind) -> bool,
    ) -> Vec<CheckRecord> {
        let rank = |kind: CheckKind| {
            let given = order.iter().position(|k| *k == kind);
            (
                given.is_none(),
                given,
                CheckKind::ALL.iter().position(|k| *k == kind),
            )
        };
        let mut lists: Vec<&dyn Kept> = self
            .by_type
            .values()
            .map(|k| k.as_ref())
            .filter(|k| placed_here(k.kind()))
            .collect();
        lists.sort_by_key(|k| (rank(k.kind()), k.type_name()));
        lists.into_iter().flat_map(|list| list.records()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slice's result for the tests: its kind and id are all that matter here.
    #[derive(Debug, PartialEq)]
    struct Probe<const KIND_IS_DNS: bool>(&'static str);

    impl<const KIND_IS_DNS: bool> Check for Probe<KIND_IS_DNS> {
        const KIND: CheckKind = if KIND_IS_DNS {
            CheckKind::Dns
        } else {
            CheckKind::Canary
        };
        fn id(&self) -> String {
            self.0.into()
        }
        fn subject(&self) -> String {
            String::new()
        }
        fn status(&self) -> CheckStatus {
            CheckStatus::Ok
        }
        fn summary(&self) -> String {
            String::new()
        }
        fn duration_ms(&self) -> u64 {
            0
        }
        fn evidence(&self) -> Evidence {
            Evidence::Unfinished(UnfinishedCheck::default())
        }
    }

    type DnsProbe = Probe<true>;
    type CanaryProbe = Probe<false>;

    #[test]
    fn each_type_reads_back_its_own_results() {
        let mut m = Measurements::default();
        assert!(m.of::<DnsProbe>().is_empty());
        m.push(DnsProbe::new("b"));
        m.push(CanaryProbe::new("x"));
        m.push(DnsProbe::new("a"));
        assert_eq!(
            m.of::<DnsProbe>(),
            &[DnsProbe::new("b"), DnsProbe::new("a")]
        );
        assert_eq!(m.of::<CanaryProbe>(), &[CanaryProbe::new("x")]);
    }

    #[test]
    fn extend_appends_to_the_same_type_and_adds_new_ones() {
        let mut m = Measurements::default();
        m.push(DnsProbe::new("a"));
        let mut more = Measurements::default();
        more.push(DnsProbe::new("b"));
        more.push(CanaryProbe::new("x"));
        m.extend(more);
        assert_eq!(
            m.of::<DnsProbe>(),
            &[DnsProbe::new("a"), DnsProbe::new("b")]
        );
        assert_eq!(m.of::<CanaryProbe>(), &[CanaryProbe::new("x")]);
    }

    /// A canary record and two DNS records, pushed in neither kind nor id order.
    fn canary_and_two_lookups() -> Measurements {
        let mut m = Measurements::default();
        m.push(CanaryProbe::new("canary/1"));
        m.push(DnsProbe::new("dns/z"));
        m.push(DnsProbe::new("dns/a"));
        m
    }

    #[test]
    fn records_come_by_kind_then_id_whatever_finished_first() {
        let m = canary_and_two_lookups();
        let records: Vec<(CheckKind, String)> = m
            .records(&[])
            .into_iter()
            .map(|r| (r.check, r.id))
            .collect();
        // Dns comes before Canary in the kinds' registry.
        assert_eq!(
            records,
            vec![
                (CheckKind::Dns, "dns/a".to_string()),
                (CheckKind::Dns, "dns/z".to_string()),
                (CheckKind::Canary, "canary/1".to_string()),
            ]
        );
        // The order the probe gives (its slices' registration) comes before the registry's.
        let kinds: Vec<CheckKind> = m
            .records(&[CheckKind::Canary])
            .into_iter()
            .map(|r| r.check)
            .collect();
        assert_eq!(kinds, [CheckKind::Canary, CheckKind::Dns, CheckKind::Dns]);
    }

    #[test]
    fn records_where_keeps_the_kinds_placed_there_in_the_same_order() {
        let m = canary_and_two_lookups();
        let ids = |placed: fn(CheckKind) -> bool| -> Vec<String> {
            m.records_where(&[CheckKind::Canary], placed)
                .into_iter()
                .map(|r| r.id)
                .collect()
        };
        assert_eq!(ids(|k| k != CheckKind::Canary), ["dns/a", "dns/z"]);
        assert_eq!(ids(|k| k == CheckKind::Canary), ["canary/1"]);
        assert_eq!(ids(|_| true), ["canary/1", "dns/a", "dns/z"]);
    }

    #[test]
    fn of_mut_corrects_in_place_and_set_replaces() {
        let mut m = Measurements::default();
        assert!(m.of_mut::<DnsProbe>().is_empty());
        m.push(DnsProbe::new("a"));
        m.of_mut::<DnsProbe>()[0] = DnsProbe::new("b");
        assert_eq!(m.of::<DnsProbe>(), &[DnsProbe::new("b")]);
        m.set(vec![DnsProbe::new("c"), DnsProbe::new("d")]);
        assert_eq!(
            m.of::<DnsProbe>(),
            &[DnsProbe::new("c"), DnsProbe::new("d")]
        );
    }

    impl<const KIND_IS_DNS: bool> Probe<KIND_IS_DNS> {
        fn new(id: &'static str) -> Self {
            Probe(id)
        }
    }
}
