//! One service name's pipeline: DNS (the host's resolver, the VPC resolver, the applications'
//! own resolution) → TCP → TLS per address, beside the slices' measurements: at the name's
//! start (the proxy CONNECT probe), per name (the NACL sweep) and per address (the hop check).

use std::collections::BTreeSet;
use std::net::IpAddr;

use futures_util::future::join_all;
use hickory_resolver::proto::rr::RecordType;
use ipnet::IpNet;

use super::targets::vpc_cidrs;
use super::{NameCtx, ProbeResults};
use crate::checks::dns::{Classifier, Resolvers};
use crate::checks::slice::{AddressStage, NameStage, NameStartStage, NamedMeasuring};
use crate::checks::{app_resolve, libc_search};
use crate::checks::{dns, tcp, tls};
use crate::endpoints::NameSocket;
use crate::report::*;

/// How many addresses of one name are connected to (S3 answers up to 8 per query).
const MAX_ADDRESSES_PER_NAME: usize = 8;

impl NameCtx<'_> {
    /// DNS → (TCP → TLS per address ∥ slices per name and address: NACL sweep, hop check) ∥
    /// slices at the name's start (proxy CONNECT), for one service name. `regional`: a
    /// target's regional name (checks/slice.rs `NameStage`). `counts_in_lookups`: a name known
    /// at the start, counted in `ALL_LOOKUPS` (the account-based name, found later from IMDS,
    /// is not: its tables wait for it by name).
    pub(super) async fn name_pipeline(
        &self,
        name: &str,
        service: Service,
        socket: NameSocket,
        regional: bool,
        vpc_cidrs: Vec<IpNet>,
        counts_in_lookups: bool,
    ) {
        let classifier = Classifier {
            ranges: &self.cfg.ranges,
            region: self.region,
            vpc_cidrs: &vpc_cidrs,
        };
        // The name is ready for its calls when its connections and the measurements that
        // start with it (the proxy CONNECT probe) are done.
        let parts_left = std::sync::atomic::AtomicU8::new(2);
        let part_done = || {
            if parts_left.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
                self.ready.done(name);
            }
        };
        let at_start = async {
            self.slices_at_name_start(name, service, socket).await;
            part_done();
        };
        let dns_then_connect = async {
            let dns_scheduled =
                self.collector
                    .schedule(CheckKind::Dns, format!("dns/{name}"), name);
            let addresses = self.resolve_name(name, service, &classifier).await;
            drop(dns_scheduled);
            if counts_in_lookups {
                self.ready.lookups_done();
            }
            let connects = async {
                join_all(addresses.iter().map(|(ip, class, origin)| {
                    self.connect_and_handshake(name, service, socket, *ip, *class, *origin)
                }))
                .await;
                part_done();
            };
            let named = self.slices_at_name(name, service, socket.port, &addresses, regional);
            let sliced = join_all(addresses.iter().map(|(ip, class, origin)| {
                self.slices_at_address(name, service, socket, *ip, *class, *origin)
            }));
            // Polled in this order, they are scheduled in it: a run the deadline ends lists its
            // unfinished TCP, then per-name (NACL), then per-address records (the hop check's
            // are not listed: `Slice::named_by_deadline`).
            tokio::join!(connects, named, sliced);
        };
        tokio::join!(dns_then_connect, at_start);
    }

    /// The name's lookups (the host's servers, the VPC resolver, systemd-resolved's stub and
    /// libc's search domains), kept in the report, and the addresses to test: what the
    /// applications connect to, and the VPC resolver's answer where it differs.
    async fn resolve_name(
        &self,
        name: &str,
        service: Service,
        classifier: &Classifier<'_>,
    ) -> Vec<(IpAddr, AddressClass, AddressOrigin)> {
        let lookups = [
            (ResolverKind::System, RecordType::A),
            (ResolverKind::System, RecordType::AAAA),
            (ResolverKind::Vpc, RecordType::A),
            (ResolverKind::Vpc, RecordType::AAAA),
        ];
        let libc = self.resolvers.libc.as_ref();
        let search_first = libc.is_some_and(|l| libc_search::search_first(name, l));
        let (answers, stub, searched_first) = tokio::join!(
            join_all(lookups.iter().map(|(kind, rt)| {
                dns::lookup(self.resolvers, *kind, name, service, *rt, classifier)
            })),
            self.stub_lookups(name, service, classifier),
            self.search_lookups(search_first, name, service, classifier)
        );
        let of =
            |kind| -> Vec<&DnsLookup> { answers.iter().filter(|l| l.resolver == kind).collect() };
        // libc asks the search domains after the name itself only when it gave no address.
        let searched = if search_first {
            searched_first
        } else {
            let after =
                libc.is_some_and(|l| libc_search::search_after(name, l, &of(ResolverKind::System)));
            self.search_lookups(after, name, service, classifier).await
        };
        let libc_answer = libc_search::walk(name, libc, of(ResolverKind::System), &searched);
        let stub_refs: Vec<&DnsLookup> = stub.iter().collect();
        let mut app = app_resolve::resolve(
            self.host_files,
            name,
            service,
            &libc_answer.lookups,
            &stub_refs,
            classifier,
        );
        // The search domain's lookups are evidence only when the applications use them.
        let searched_used: Vec<DnsLookup> = match &libc_answer.resolved_as {
            Some(full) if app.answered_by == Some(AppSource::Dns) => {
                if let Some(libc) = libc {
                    app.steps.push(format!(
                        "dns: resolv.conf's search list ({}) with ndots:{} made libc ask {full} {}, and it answered",
                        libc.search.join(" "),
                        libc.ndots,
                        if search_first {
                            "before the name itself (fewer dots than ndots)"
                        } else {
                            "after the name itself gave no address"
                        }
                    ));
                }
                app.resolved_as = Some(full.clone());
                libc_answer.lookups.iter().map(|l| (*l).clone()).collect()
            }
            _ => Vec::new(),
        };
        let addresses = addresses_to_test(&app, &of(ResolverKind::System), &of(ResolverKind::Vpc));
        self.collector.with(|c| {
            c.dns.extend(answers.iter().cloned());
            c.dns.extend(searched_used);
            c.app_dns.push(app);
        });
        addresses
    }

    /// Every registered slice's measurement of one name (checks/slice.rs), each kept when it
    /// finishes and named by the deadline if it does not.
    async fn slices_at_name(
        &self,
        name: &str,
        service: Service,
        port: u16,
        addresses: &[(IpAddr, AddressClass, AddressOrigin)],
        regional: bool,
    ) {
        // The host facts were collected before any name's pipeline started.
        let host = self.collector.with(|c| c.host.clone());
        let stage = NameStage {
            name,
            service,
            port,
            addresses,
            regional,
            host: &host,
            budget: self.budget,
            limits: self.limits,
        };
        self.collector
            .keep_slices(|slice| slice.per_name(stage))
            .await;
    }

    /// Every registered slice's measurement of one address (checks/slice.rs), each kept when
    /// it finishes and named by the deadline if it does not.
    async fn slices_at_address(
        &self,
        name: &str,
        service: Service,
        socket: NameSocket,
        ip: IpAddr,
        class: AddressClass,
        origin: AddressOrigin,
    ) {
        let stage = AddressStage {
            name,
            service,
            ip,
            port: socket.port,
            class,
            origin,
            budget: self.budget,
            limits: self.limits,
            claims: &self.collector.claims,
        };
        // A per-address measurement is named by its kind and address.
        self.collector
            .keep_slices(|slice| {
                let measuring = slice.per_address(stage)?;
                Some(NamedMeasuring {
                    id: format!("{}/{name}/{ip}", slice.kind().as_str()),
                    subject: format!("{ip}:{}", socket.port),
                    measuring,
                })
            })
            .await;
    }

    async fn connect_and_handshake(
        &self,
        name: &str,
        service: Service,
        socket: NameSocket,
        ip: IpAddr,
        class: AddressClass,
        origin: AddressOrigin,
    ) {
        let tcp_scheduled = self.collector.schedule(
            CheckKind::Tcp,
            format!("tcp/{name}/{ip}"),
            format!("{ip}:{}", socket.port),
        );
        let (mut attempt, stream) = tcp::attempt(
            name,
            service,
            ip,
            socket.port,
            class,
            self.budget.op(),
            self.limits,
        )
        .await;
        attempt.origin = origin;
        self.collector.with(|c| c.tcp.push(attempt));
        drop(tcp_scheduled);
        let Some(stream) = stream else { return };
        // An http:// endpoint URL: the clients speak no TLS there, so neither does the probe.
        if !socket.tls {
            return;
        }
        let _scheduled = self
            .collector
            .schedule(CheckKind::Tls, format!("tls/{name}/{ip}"), name);
        let (handshake, verified) = match self.tls.get().await {
            Ok(ctx) => {
                tls::handshake(
                    ctx,
                    stream,
                    name,
                    service,
                    &ip.to_string(),
                    self.budget.op(),
                    &self.cfg.expect_issuers,
                )
                .await
            }
            Err(e) => (
                TlsHandshake {
                    name: name.into(),
                    service,
                    address: ip.to_string(),
                    outcome: TlsOutcome::HandshakeFailed,
                    error: Some(format!("no trust roots: {e}")),
                    protocol: None,
                    cipher_suite: None,
                    chain: Vec::new(),
                    handshake_ms: 0,
                },
                None,
            ),
        };
        // The calls go to the applications' addresses, straight unless the SDK's client
        // takes a proxy for this name: only such a connection is one the calls would open.
        // The tables' calls run on the side thread over connections of their own (calls.rs).
        if let Some(stream) = verified
            && origin == AddressOrigin::Application
            && service != Service::Dynamodb
            && self.sdk_connects_directly(name, socket)
        {
            self.handoff.park(name, ip, socket.port, stream);
        }
        self.collector.with(|c| c.tls.push(handshake));
    }

    /// A and AAAA of `name` in each resolv.conf search domain, through the host's servers, when
    /// `asked` (libc's walk needs them: see libc_search).
    async fn search_lookups(
        &self,
        asked: bool,
        name: &str,
        service: Service,
        classifier: &Classifier<'_>,
    ) -> Vec<DnsLookup> {
        let Some(libc) = self.resolvers.libc.as_ref().filter(|_| asked) else {
            return Vec::new();
        };
        let full_names: Vec<String> = libc
            .search
            .iter()
            .map(|domain| libc_search::in_domain(name, domain))
            .collect();
        join_all(full_names.iter().flat_map(|full| {
            [RecordType::A, RecordType::AAAA].map(|rt| {
                dns::lookup(
                    self.resolvers,
                    ResolverKind::System,
                    full,
                    service,
                    rt,
                    classifier,
                )
            })
        }))
        .await
    }

    /// A and AAAA from systemd-resolved's stub, when nsswitch lists `resolve`.
    async fn stub_lookups(
        &self,
        name: &str,
        service: Service,
        classifier: &Classifier<'_>,
    ) -> Vec<DnsLookup> {
        let Some(stub) = self.resolved_stub else {
            return Vec::new();
        };
        let resolvers = Resolvers {
            system: stub.clone().map(|s| vec![s]),
            vpc: Err("not asked".into()),
            libc: None,
        };
        let (a, aaaa) = tokio::join!(
            dns::lookup(
                &resolvers,
                ResolverKind::System,
                name,
                service,
                RecordType::A,
                classifier
            ),
            dns::lookup(
                &resolvers,
                ResolverKind::System,
                name,
                service,
                RecordType::AAAA,
                classifier
            )
        );
        vec![a, aaaa]
    }

    /// Every registered slice's measurement of one name as soon as it is known
    /// (checks/slice.rs), beside its DNS lookups: the proxy CONNECT probe.
    async fn slices_at_name_start(&self, name: &str, service: Service, socket: NameSocket) {
        let stage = NameStartStage {
            name,
            service,
            socket,
            proxy_vars: &self.cfg.env.proxy,
            proxy_env: self.proxy_env,
            resolvers: self.resolvers,
            budget: self.budget,
            limits: self.limits,
        };
        self.collector
            .keep_slices(|slice| slice.per_name_start(stage))
            .await;
    }
}

/// The addresses a name's checks connect to: the applications' own (hosts file, DNS, stub),
/// else the host's DNS servers', else the VPC resolver's so the route is still tested; plus
/// the VPC resolver's answers when they differ in kind from the applications' (a hosts-file
/// pin, a resolver that rewrites the answer), or other addresses from another server (a local
/// cache or a corporate resolver that may hold stale ones), so the report can say which works.
fn addresses_to_test(
    app: &AppResolution,
    system: &[&DnsLookup],
    vpc: &[&DnsLookup],
) -> Vec<(IpAddr, AddressClass, AddressOrigin)> {
    let flatten = |lookups: &[&DnsLookup]| -> Vec<(IpAddr, AddressClass)> {
        lookups
            .iter()
            .flat_map(|l| l.addresses.iter())
            .filter_map(|a| Some((a.ip.parse::<IpAddr>().ok()?, a.class)))
            .collect()
    };
    let parse = |addrs: &[ClassifiedAddress]| -> Vec<(IpAddr, AddressClass)> {
        addrs
            .iter()
            .filter_map(|a| Some((a.ip.parse::<IpAddr>().ok()?, a.class)))
            .collect()
    };
    let application = if app.answered_by.is_some() {
        parse(&app.addresses)
    } else {
        let from_system = flatten(system);
        if from_system.is_empty() {
            flatten(vpc)
        } else {
            from_system
        }
    };
    let vpc_answers = flatten(vpc);
    let kinds = |v: &[(IpAddr, AddressClass)]| -> BTreeSet<String> {
        v.iter().map(|(_, c)| format!("{c:?}")).collect()
    };
    let ips = |v: &[(IpAddr, AddressClass)]| -> BTreeSet<IpAddr> {
        v.iter().map(|(ip, _)| *ip).collect()
    };
    // The same server asked twice may rotate its answers (S3 does): no second opinion there.
    let vpc_server = vpc.iter().find_map(|l| l.server.clone());
    let app_server = match app.answered_by {
        Some(AppSource::Dns) | None => system.iter().find_map(|l| l.server.clone()),
        _ => None,
    };
    let other_server = app_server.is_none() || app_server != vpc_server;
    let differs = app.answered_by == Some(AppSource::HostsFile)
        || (!application.is_empty() && kinds(&application) != kinds(&vpc_answers))
        || (other_server
            && !application.is_empty()
            && ips(&application).is_disjoint(&ips(&vpc_answers)));
    let mut seen = BTreeSet::new();
    let mut out: Vec<(IpAddr, AddressClass, AddressOrigin)> = application
        .into_iter()
        .filter(|(ip, _)| seen.insert(*ip))
        .take(MAX_ADDRESSES_PER_NAME)
        .map(|(ip, class)| (ip, class, AddressOrigin::Application))
        .collect();
    if differs {
        // One address of the VPC resolver's answer per family is enough to compare the paths.
        let mut families = BTreeSet::new();
        out.extend(
            vpc_answers
                .into_iter()
                .filter(|(ip, _)| !seen.contains(ip) && families.insert(ip.is_ipv4()))
                .map(|(ip, class)| (ip, class, AddressOrigin::VpcResolver)),
        );
    }
    out
}

/// Names were classified before IMDS told the VPC's CIDRs; an answer inside the VPC is an
/// interface endpoint's address whatever its range.
pub(super) fn mark_vpc_addresses_private(results: &mut ProbeResults) {
    let cidrs = vpc_cidrs(results.instance.as_ref());
    let in_vpc = |ip: &str| {
        ip.parse::<IpAddr>()
            .is_ok_and(|ip| cidrs.iter().any(|n| n.contains(&ip)))
    };
    for lookup in &mut results.dns {
        for a in &mut lookup.addresses {
            if matches!(a.class, AddressClass::Outside | AddressClass::Unpublished) && in_vpc(&a.ip)
            {
                a.class = AddressClass::Private;
            }
        }
    }
    for app in &mut results.app_dns {
        for a in &mut app.addresses {
            if matches!(a.class, AddressClass::Outside | AddressClass::Unpublished) && in_vpc(&a.ip)
            {
                a.class = AddressClass::Private;
            }
        }
    }
    for attempt in &mut results.tcp {
        if matches!(
            attempt.address_class,
            AddressClass::Outside | AddressClass::Unpublished
        ) && in_vpc(&attempt.address)
        {
            attempt.address_class = AddressClass::Private;
        }
    }
    let traces = results.measured.of_mut::<HopTrace>();
    for trace in traces.iter_mut().filter(|t| t.service.is_some()) {
        if matches!(
            trace.address_class,
            AddressClass::Outside | AddressClass::Unpublished
        ) && in_vpc(&trace.address)
        {
            trace.address_class = AddressClass::Private;
        }
    }
}
