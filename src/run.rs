//! `run_once`: configuration in, report out. Checks run concurrently; each stage starts as
//! soon as what it needs is known (a name's TCP and TLS start when its DNS answers arrive),
//! so a healthy run costs about its slowest chain, and a black-holed address one timeout.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::join_all;
use hickory_resolver::proto::rr::RecordType;
use ipnet::IpNet;
use tokio::sync::OnceCell;

use crate::checks::app_resolve::{self, HostFiles};
use crate::checks::calls::CallSite;
use crate::checks::dns::{Classifier, Resolvers};
use crate::checks::imds::ImdsResult;
use crate::checks::region::{RegionCheck, override_host};
use crate::checks::{
    Check, canary, dns, dynamodb, host, identity, imds, nacl, proxy, region, s3, tcp, tls,
};
use crate::config::Config;
use crate::diagnose::{self, Diagnosis};
use crate::endpoints::{self, SdkSettings};
use crate::net::aws::{self as net_aws, PinnedResolver};
use crate::net::dns::{ServerResolver, system_servers};
use crate::net::tls::TlsContext;
use crate::net::{Budget, millis, rfc3339};
use crate::proxy_rules::HttpClientKind;
use crate::report::*;

pub use crate::results::{ProbeResults, TargetSpec};

/// Results land here as they complete, so a deadline keeps what was already learned.
#[derive(Default)]
struct Collector(Mutex<ProbeResults>);

impl Collector {
    fn with<R>(&self, f: impl FnOnce(&mut ProbeResults) -> R) -> R {
        match self.0.lock() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

/// How many addresses of one name are connected to (S3 answers up to 8 per query).
const MAX_ADDRESSES_PER_NAME: usize = 8;

pub async fn run_once(cfg: &Config) -> Report {
    let started_wall = SystemTime::now();
    let started = Instant::now();
    let budget = Budget::new(cfg.timeout, cfg.deadline);
    let collector = Arc::new(Collector::default());
    collector.with(|r| r.host = host::collect(rfc3339(started_wall)));

    let work = probe_all(cfg, budget, collector.clone());
    let hit = tokio::time::timeout(cfg.deadline, work).await.is_err();

    let mut results = match Arc::try_unwrap(collector) {
        Ok(c) => c.0.into_inner().unwrap_or_else(|p| p.into_inner()),
        // Tasks still hold the collector only if the deadline cut them off.
        Err(shared) => shared.with(std::mem::take),
    };
    results.deadline_hit = hit;
    mark_vpc_addresses_private(&mut results);
    let diagnosis = diagnose::diagnose(&results, &diagnose::Expectations::from_config(cfg));
    assemble(cfg, results, diagnosis, started_wall, started.elapsed())
}

async fn probe_all(cfg: &Config, budget: Budget, collector: Arc<Collector>) {
    let resolvers = Arc::new(build_resolvers(cfg));
    collector.with(|r| {
        r.system_resolvers = resolvers.system_servers();
        r.vpc_resolver = Some(cfg.vpc_resolver);
        if let Err(e) = &resolvers.system {
            r.setup_errors.push(e.clone());
        }
    });
    // Loading the trust store reads files: off the async threads, while IMDS and DNS start.
    let extra_cas: Vec<_> = [&cfg.env.ca_bundle, &cfg.env.ssl_cert_file]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let tls_loader = TlsLoader::start(extra_cas);
    let host_files = HostFiles::load(cfg.nsswitch_conf.clone(), cfg.hosts_file.clone()).await;
    // systemd-resolved's stub is asked only where nsswitch sends the applications to it.
    let resolved_stub = host_files.uses_resolved().then(|| {
        app_resolve::RESOLVED_STUB
            .parse()
            .map_err(|e| format!("{e}"))
            .and_then(|addr| ServerResolver::new(addr, cfg.timeout))
    });
    let imds_cell: OnceCell<ImdsResult> = OnceCell::new();
    let imds_once = || imds_cell.get_or_init(|| imds::collect(&cfg.env, budget.op()));

    let imds_task = async {
        let r = imds_once().await;
        collector.with(|c| {
            c.imds = Some(r.evidence.clone());
            c.instance = r.facts.clone();
            c.imds_ms = millis(r.duration);
        });
    };

    let canary_task = async {
        if let Some((host, port)) = &cfg.internet_canary {
            let result = canary::probe(&resolvers, host, *port, budget.op()).await;
            collector.with(|c| c.canary = Some(result));
        }
    };

    let main_task = async {
        let sdk = region::sdk_region(&cfg.env, cfg.profile.as_deref()).await;
        // The one-shot probe refused unusable config files before starting (exit 2); the
        // agent, whose files may change between runs, reports them and goes on with defaults.
        let settings = SdkSettings::load(cfg.profile.as_deref())
            .await
            .unwrap_or_else(|e| {
                collector.with(|c| c.setup_errors.push(e.to_string()));
                SdkSettings::default()
            });
        let settings = &settings;
        // The instance's region is only waited for when nothing else names one.
        let imds_region = if cfg.region.is_none() && sdk.is_none() {
            imds_once()
                .await
                .facts
                .as_ref()
                .and_then(|f| f.region.clone())
        } else {
            None
        };
        let provisional = region::evaluate(
            cfg.region.as_deref(),
            sdk.clone(),
            imds_region.as_deref(),
            &cfg.env,
        );
        let Some(probe_region) = provisional.effective.clone() else {
            // Without a region there is nothing region-specific to probe; IMDS_UNAVAILABLE says
            // why, and the proxy rules may say why IMDS did not answer.
            let instance = imds_once().await;
            let facts = region::evaluate(None, sdk, None, &cfg.env);
            let imds_url: Vec<url::Url> = proxy::imds_token_url(&cfg.env).into_iter().collect();
            let proxy_env = proxy::analyze(&cfg.env.proxy, &imds_url);
            collector.with(|c| {
                c.region = facts;
                c.targets = targets(
                    cfg,
                    "",
                    instance.facts.as_ref(),
                    settings,
                    &mut c.setup_errors,
                );
                c.proxy_env = Some(proxy_env);
            });
            return;
        };
        let static_targets =
            collector.with(|c| targets(cfg, &probe_region, None, settings, &mut c.setup_errors));
        let names = unique_names(&static_targets);
        let proxy_urls: Vec<url::Url> = names
            .iter()
            .map(|(n, _)| n.as_str())
            .filter_map(proxy::https_url)
            .chain(proxy::imds_token_url(&cfg.env))
            .collect();
        let proxy_env = proxy::analyze(&cfg.env.proxy, &proxy_urls);
        collector.with(|c| {
            c.targets = static_targets.clone();
            c.proxy_env = Some(proxy_env.clone());
        });
        let ctx = NameCtx {
            cfg,
            budget,
            resolvers: &resolvers,
            region: &probe_region,
            proxy_env: &proxy_env,
            collector: &collector,
            tls: &tls_loader,
            host_files: &host_files,
            resolved_stub: resolved_stub.as_ref(),
            settings,
        };
        let pipelines = join_all(names.iter().map(|(name, service)| {
            let nacl = is_regional_name(name, &static_targets);
            ctx.name_pipeline(name, *service, nacl, Vec::new())
        }));
        // The account-based DynamoDB name needs the account id, which IMDS knows.
        let account_pipeline = async {
            if cfg.tables.is_empty() {
                return;
            }
            let instance = imds_once().await;
            let Some(account) = instance.facts.as_ref().and_then(|f| f.account_id.clone()) else {
                return;
            };
            let Some(named) = account_ddb_endpoint(&probe_region, &account, settings) else {
                return;
            };
            let name = named.host.clone();
            let vpc_cidrs = vpc_cidrs(instance.facts.as_ref());
            collector.with(|c| {
                for t in c
                    .targets
                    .iter_mut()
                    .filter(|t| t.service == Service::Dynamodb)
                {
                    t.endpoint_names.push(name.clone());
                    t.name_settings.insert(name.clone(), named.settings.clone());
                }
            });
            ctx.name_pipeline(&name, Service::Dynamodb, false, vpc_cidrs)
                .await;
        };
        // The signed calls start as soon as the credentials are loaded: STS and the control
        // plane need nothing from the data plane, so a timeout there (STS has no endpoint in a
        // private subnet) overlaps the TCP checks instead of following them. The per-target
        // calls wait for the TCP checks, whose addresses they are pinned to.
        let (data_plane_done, data_plane_wait) = tokio::sync::oneshot::channel::<()>();
        let data_plane = async {
            tokio::join!(pipelines, account_pipeline);
            let _ = data_plane_done.send(());
        };
        let calls = async {
            if !cfg.calls {
                return;
            }
            let (evidence, creds) =
                identity::load(&probe_region, cfg.profile.as_deref(), budget.op()).await;
            let instance = imds_once().await;
            ctx.signed_calls(evidence, creds, instance.facts.as_ref(), data_plane_wait)
                .await;
        };
        tokio::join!(data_plane, calls);
        // Final region facts need the instance's region, which IMDS gives even when not waited for.
        let instance = imds_once().await;
        let instance_region = instance.facts.as_ref().and_then(|f| f.region.clone());
        let facts = region::evaluate(
            cfg.region.as_deref(),
            sdk,
            instance_region.as_deref(),
            &cfg.env,
        );
        collector.with(|c| c.region = facts);
    };

    tokio::join!(imds_task, canary_task, main_task);
}

struct NameCtx<'a> {
    cfg: &'a Config,
    budget: Budget,
    resolvers: &'a Resolvers,
    region: &'a str,
    proxy_env: &'a ProxyEnvEvidence,
    collector: &'a Collector,
    tls: &'a TlsLoader,
    host_files: &'a HostFiles,
    resolved_stub: Option<&'a Result<ServerResolver, String>>,
    settings: &'a SdkSettings,
}

/// The trust store, loaded once in the background and shared by every handshake.
struct TlsLoader {
    cell: OnceCell<Result<TlsContext, String>>,
    pending: Mutex<Option<tokio::task::JoinHandle<Result<TlsContext, String>>>>,
}

impl TlsLoader {
    fn start(extra_pem_files: Vec<std::path::PathBuf>) -> Self {
        let handle = tokio::task::spawn_blocking(move || TlsContext::new(&extra_pem_files));
        TlsLoader {
            cell: OnceCell::new(),
            pending: Mutex::new(Some(handle)),
        }
    }

    async fn get(&self) -> &Result<TlsContext, String> {
        self.cell
            .get_or_init(|| async {
                let handle = self.pending.lock().ok().and_then(|mut g| g.take());
                match handle {
                    Some(h) => h.await.unwrap_or_else(|e| Err(e.to_string())),
                    None => Err("TLS context unavailable".into()),
                }
            })
            .await
    }
}

impl NameCtx<'_> {
    /// DNS → (TCP → TLS per address) ∥ NACL sweep ∥ proxy CONNECT, for one service name.
    async fn name_pipeline(
        &self,
        name: &str,
        service: Service,
        sweep_nacl: bool,
        vpc_cidrs: Vec<IpNet>,
    ) {
        let classifier = Classifier {
            ranges: &self.cfg.ranges,
            region: self.region,
            vpc_cidrs: &vpc_cidrs,
        };
        let lookups = [
            (ResolverKind::System, RecordType::A),
            (ResolverKind::System, RecordType::AAAA),
            (ResolverKind::Vpc, RecordType::A),
            (ResolverKind::Vpc, RecordType::AAAA),
        ];
        let proxy_probe = self.proxy_probe(name, service);
        let dns_then_connect = async {
            let (answers, stub) = tokio::join!(
                join_all(lookups.iter().map(|(kind, rt)| {
                    dns::lookup(self.resolvers, *kind, name, service, *rt, &classifier)
                })),
                self.stub_lookups(name, service, &classifier)
            );
            let of = |kind| -> Vec<&DnsLookup> {
                answers.iter().filter(|l| l.resolver == kind).collect()
            };
            let stub_refs: Vec<&DnsLookup> = stub.iter().collect();
            let app = app_resolve::resolve(
                self.host_files,
                name,
                service,
                &of(ResolverKind::System),
                &stub_refs,
                &classifier,
            );
            let addresses =
                addresses_to_test(&app, &of(ResolverKind::System), &of(ResolverKind::Vpc));
            self.collector.with(|c| {
                c.dns.extend(answers.iter().cloned());
                c.app_dns.push(app);
            });
            let sweep_target = addresses
                .iter()
                .find(|(ip, _, origin)| ip.is_ipv4() && *origin == AddressOrigin::Application)
                .map(|(ip, _, _)| *ip);
            let connects = join_all(addresses.iter().map(|(ip, class, origin)| {
                self.connect_and_handshake(name, service, *ip, *class, *origin)
            }));
            let sweep = async {
                if let (true, Some(ip)) = (sweep_nacl, sweep_target) {
                    let kernel = self.collector.with(|c| c.host.ephemeral_ports);
                    let result =
                        nacl::sweep(service, ip, tcp::HTTPS_PORT, self.budget.op(), kernel).await;
                    self.collector.with(|c| c.nacl.push(result));
                }
            };
            tokio::join!(connects, sweep);
        };
        tokio::join!(dns_then_connect, proxy_probe);
    }

    async fn connect_and_handshake(
        &self,
        name: &str,
        service: Service,
        ip: IpAddr,
        class: AddressClass,
        origin: AddressOrigin,
    ) {
        let (mut attempt, stream) = tcp::attempt(name, service, ip, class, self.budget.op()).await;
        attempt.origin = origin;
        self.collector.with(|c| c.tcp.push(attempt));
        let Some(stream) = stream else { return };
        let handshake = match self.tls.get().await {
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
            Err(e) => TlsHandshake {
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
        };
        self.collector.with(|c| c.tls.push(handshake));
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

    /// The SDK's proxy for a name, redacted, if it would use one.
    fn sdk_proxy(&self, name: &str) -> Option<String> {
        let url = proxy::https_url(name)?;
        crate::proxy_rules::decide(HttpClientKind::AwsSdkRust, &self.cfg.env.proxy, &url)
            .proxy
            .map(|p| p.url_redacted)
    }

    fn call_site(
        &self,
        resolver: &PinnedResolver,
        service: Service,
        target: &str,
        host: &str,
    ) -> CallSite {
        CallSite {
            service,
            target: target.to_string(),
            endpoint_host: Some(host.to_string()),
            peer: resolver.pinned(host).map(|ip| ip.to_string()),
            proxy: self.sdk_proxy(host),
        }
    }

    /// Signed calls with the instance's own credentials, each name pinned to the address
    /// that the TCP check connected to. STS and the control plane start at once; the
    /// per-target calls when `data_plane` says the TCP checks are done.
    async fn signed_calls(
        &self,
        mut evidence: CredentialsEvidence,
        credentials: Option<aws_credential_types::Credentials>,
        instance: Option<&InstanceFacts>,
        data_plane: tokio::sync::oneshot::Receiver<()>,
    ) {
        let cfg = self.cfg;
        let resolver = PinnedResolver::new(self.resolvers.system.clone().unwrap_or_default());
        let extra_pem: Vec<Vec<u8>> = [&cfg.env.ca_bundle, &cfg.env.ssl_cert_file]
            .into_iter()
            .flatten()
            .filter_map(|p| std::fs::read(p).ok())
            .collect();
        let http = match net_aws::http_client(extra_pem, resolver.clone()) {
            Ok(h) => h,
            Err(e) => {
                self.collector.with(|c| c.setup_errors.push(e));
                return;
            }
        };
        let timeout = self.budget.op();
        let sdk = net_aws::sdk_config(
            self.region,
            http,
            credentials.clone(),
            timeout,
            net_aws::EndpointFlags {
                fips: self.settings.fips(),
                dualstack: self.settings.dualstack(),
            },
        );
        let have_credentials = credentials.is_some() && !evidence.expired;
        let account = evidence
            .account
            .clone()
            .or_else(|| instance.and_then(|i| i.account_id.clone()));
        let s3_override = self
            .settings
            .endpoint_url_s3
            .as_ref()
            .map(|s| s.value.clone());
        let ddb_override = self
            .settings
            .endpoint_url_dynamodb
            .as_ref()
            .map(|s| s.value.clone());

        let per_target = async {
            // Sent when the TCP checks are done (an error only if they were cut short).
            let _ = data_plane.await;
            let (tcp, targets) = self.collector.with(|c| (c.tcp.clone(), c.targets.clone()));
            // The calls go where the applications' calls go, never to a VPC-resolver-only address.
            for attempt in tcp.iter().filter(|a| {
                a.outcome == TcpOutcome::Connected && a.origin == AddressOrigin::Application
            }) {
                if resolver.pinned(&attempt.name).is_none()
                    && let Ok(ip) = attempt.address.parse()
                {
                    resolver.pin(&attempt.name, ip);
                }
            }
            let calls = targets.iter().map(|t| {
                let sdk = &sdk;
                let resolver = &resolver;
                let account = account.clone();
                let s3_override = s3_override.clone();
                let ddb_override = ddb_override.clone();
                async move {
                    let Some(host) = t.endpoint_names.first() else {
                        return Vec::new();
                    };
                    let site = self.call_site(resolver, t.service, &t.id, host);
                    let skip_reason = if !have_credentials {
                        Some("no usable credentials (see the credentials check)".to_string())
                    } else if site.proxy.is_none() && site.peer.is_none() {
                        Some(format!("no TCP connection to {host} (see the tcp checks)"))
                    } else {
                        None
                    };
                    match t.service {
                        Service::S3 => {
                            if let Some(why) = skip_reason {
                                return vec![site.skipped("HeadBucket", "s3:ListBucket", why)];
                            }
                            s3::BucketCalls {
                                sdk,
                                endpoint_url: s3_override.as_deref(),
                                bucket: &t.name,
                                key: cfg.key.as_deref(),
                                write_test: cfg.write_test,
                                site,
                                timeout,
                            }
                            .run()
                            .await
                        }
                        Service::Dynamodb => {
                            if let Some(why) = skip_reason {
                                return vec![site.skipped(
                                    "DescribeTable",
                                    "dynamodb:DescribeTable",
                                    why,
                                )];
                            }
                            let regional_url = ddb_override
                                .clone()
                                .unwrap_or_else(|| format!("https://{host}"));
                            let sdk_derives = self.settings.fips() || self.settings.dualstack();
                            let account_site = match (&ddb_override, &account) {
                                // With FIPS or dual-stack on, the SDK derives the name itself
                                // (account-based when the rules allow): the call above is it.
                                (None, Some(_)) if sdk_derives => None,
                                (None, Some(a)) => {
                                    account_ddb_endpoint(self.region, a, self.settings).and_then(
                                        |named| {
                                            let site = self.call_site(
                                                resolver,
                                                Service::Dynamodb,
                                                &t.id,
                                                &named.host,
                                            );
                                            (site.peer.is_some() || site.proxy.is_some())
                                                .then(|| (format!("https://{}", named.host), site))
                                        },
                                    )
                                }
                                _ => None,
                            };
                            dynamodb::TableCalls {
                                sdk,
                                table: &t.name,
                                item_key: cfg.item_key.as_ref(),
                                // The SDKs refuse an explicit URL with FIPS or dual-stack on: they
                                // derive the (same) name themselves then.
                                regional: (
                                    (ddb_override.is_some()
                                        || !(self.settings.fips() || self.settings.dualstack()))
                                    .then_some(regional_url),
                                    site,
                                ),
                                account: account_site,
                                timeout,
                            }
                            .run()
                            .await
                        }
                    }
                }
            });
            join_all(calls).await
        };
        let sts = async {
            if have_credentials {
                identity::caller_identity(&sdk, &mut evidence, timeout).await;
            }
            evidence
        };
        let control_plane = async {
            if !(cfg.control_plane && have_credentials) {
                return None;
            }
            let instance = instance?;
            instance.vpc_id.as_ref()?;
            // The services are known from the configuration; the data plane adds names only.
            let services: BTreeSet<Service> = self
                .collector
                .with(|c| c.targets.iter().map(|t| t.service).collect());
            let services: Vec<Service> = services.into_iter().collect();
            read_control_plane(
                &sdk,
                instance,
                self.region,
                &services,
                timeout,
                cfg.reachability_analyzer.then_some(self.budget.deadline),
            )
            .await
        };
        let (calls, evidence, control_plane) = tokio::join!(per_target, sts, control_plane);
        self.collector.with(|c| {
            c.calls.extend(calls.into_iter().flatten());
            c.credentials = Some(evidence);
            if let Some((cp, reachability)) = control_plane {
                c.control_plane = Some(cp);
                c.reachability = reachability;
            }
        });
    }

    async fn proxy_probe(&self, name: &str, service: Service) {
        let Some(url) = proxy::https_url(name) else {
            return;
        };
        let Some(choice) =
            proxy::decision_for(self.proxy_env, HttpClientKind::AwsSdkRust, url.as_str())
                .and_then(|d| d.proxy.clone())
        else {
            return;
        };
        let probe = proxy::connect_probe(
            &self.cfg.env.proxy,
            self.resolvers,
            &choice,
            HttpClientKind::AwsSdkRust,
            name,
            service,
            self.budget.op(),
        )
        .await;
        self.collector.with(|c| c.proxy_probes.push(probe));
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
fn mark_vpc_addresses_private(results: &mut ProbeResults) {
    let cidrs = vpc_cidrs(results.instance.as_ref());
    let in_vpc = |ip: &str| {
        ip.parse::<IpAddr>()
            .is_ok_and(|ip| cidrs.iter().any(|n| n.contains(&ip)))
    };
    for lookup in &mut results.dns {
        for a in &mut lookup.addresses {
            if a.class == AddressClass::Outside && in_vpc(&a.ip) {
                a.class = AddressClass::Private;
            }
        }
    }
    for app in &mut results.app_dns {
        for a in &mut app.addresses {
            if a.class == AddressClass::Outside && in_vpc(&a.ip) {
                a.class = AddressClass::Private;
            }
        }
    }
    for attempt in &mut results.tcp {
        if attempt.address_class == AddressClass::Outside && in_vpc(&attempt.address) {
            attempt.address_class = AddressClass::Private;
        }
    }
}

/// The VPC's configuration, then (when asked) Reachability Analyzer to each gateway endpoint.
#[cfg(feature = "control-plane")]
async fn read_control_plane(
    sdk: &aws_config::SdkConfig,
    instance: &InstanceFacts,
    region: &str,
    services: &[Service],
    timeout: Duration,
    analyzer_deadline: Option<Instant>,
) -> Option<(ControlPlane, Vec<ReachabilityEvidence>)> {
    let cp = crate::checks::ec2::read(sdk, instance, region, services, timeout).await;
    let mut analyses = Vec::new();
    if let (Some(deadline), Some(eni)) = (analyzer_deadline, &instance.eni_id) {
        let client = aws_sdk_ec2::Client::new(sdk);
        analyses = join_all(cp.endpoints.iter().map(|e| {
            crate::checks::reachability::analyze(&client, e.service, eni, &e.id, deadline)
        }))
        .await;
    }
    Some((cp, analyses))
}

#[cfg(not(feature = "control-plane"))]
async fn read_control_plane(
    _sdk: &aws_config::SdkConfig,
    _instance: &InstanceFacts,
    _region: &str,
    _services: &[Service],
    _timeout: Duration,
    _analyzer_deadline: Option<Instant>,
) -> Option<(ControlPlane, Vec<ReachabilityEvidence>)> {
    None
}

fn build_resolvers(cfg: &Config) -> Resolvers {
    let system = system_servers(&cfg.resolv_conf).and_then(|servers| {
        servers
            .into_iter()
            .map(|s| ServerResolver::new(s, cfg.timeout))
            .collect::<Result<Vec<_>, _>>()
    });
    Resolvers {
        system,
        vpc: ServerResolver::new(cfg.vpc_resolver, cfg.timeout),
    }
}

/// The account-based DynamoDB name the SDKs would call for `account`, if they use one.
fn account_ddb_endpoint(
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
fn is_regional_name(name: &str, targets: &[TargetSpec]) -> bool {
    targets.iter().any(|t| {
        let regional = match t.service {
            Service::S3 => t.endpoint_names.last(),
            Service::Dynamodb => t.endpoint_names.first(),
        };
        regional.is_some_and(|r| r == name)
    })
}

fn vpc_cidrs(instance: Option<&InstanceFacts>) -> Vec<IpNet> {
    instance
        .map(|f| f.vpc_cidrs.iter().filter_map(|c| c.parse().ok()).collect())
        .unwrap_or_default()
}

/// The names the SDKs would use for each target in `region` (empty when no region is known),
/// from the SDKs' endpoint rules; a name the rules refuse is a setup error.
pub fn targets(
    cfg: &Config,
    region: &str,
    instance: Option<&InstanceFacts>,
    settings: &SdkSettings,
    errors: &mut Vec<String>,
) -> Vec<TargetSpec> {
    let override_of =
        |s: &Option<endpoints::Setting<String>>| override_host(s.as_ref().map(|s| &s.value));
    let mut out = Vec::new();
    let mut spec = |id: String, service, name: &String, names: Result<Vec<_>, String>| {
        let named: Vec<endpoints::NamedEndpoint> = if region.is_empty() {
            Vec::new()
        } else {
            names.unwrap_or_else(|e| {
                errors.push(format!("no endpoint for {id}: {e}"));
                Vec::new()
            })
        };
        out.push(TargetSpec {
            id,
            service,
            name: name.clone(),
            endpoint_names: named.iter().map(|n| n.host.clone()).collect(),
            name_settings: named.into_iter().map(|n| (n.host, n.settings)).collect(),
            endpoint_override: match service {
                Service::S3 => override_of(&settings.endpoint_url_s3),
                Service::Dynamodb => override_of(&settings.endpoint_url_dynamodb),
            },
        });
    };
    for bucket in &cfg.buckets {
        spec(
            format!("s3:{bucket}"),
            Service::S3,
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

fn unique_names(targets: &[TargetSpec]) -> Vec<(String, Service)> {
    let mut seen = BTreeSet::new();
    targets
        .iter()
        .flat_map(|t| t.endpoint_names.iter().map(move |n| (n.clone(), t.service)))
        .filter(|(n, _)| seen.insert(n.clone()))
        .collect()
}

fn assemble(
    cfg: &Config,
    results: ProbeResults,
    diagnosis: Diagnosis,
    started_wall: SystemTime,
    elapsed: Duration,
) -> Report {
    let mut checks: Vec<CheckRecord> = Vec::new();
    if let Some(evidence) = &results.imds {
        checks.push(
            ImdsResult {
                evidence: evidence.clone(),
                facts: results.instance.clone(),
                duration: Duration::from_millis(results.imds_ms),
            }
            .record(),
        );
    }
    checks.push(
        RegionCheck {
            facts: results.region.clone(),
        }
        .record(),
    );
    if let Some(env) = &results.proxy_env {
        checks.push(proxy::ProxyEnvCheck(env.clone()).record());
    }
    let mut dns = results.dns.clone();
    dns.sort_by(|a, b| {
        (&a.name, a.resolver, &a.record_type).cmp(&(&b.name, b.resolver, &b.record_type))
    });
    checks.extend(dns.iter().map(Check::record));
    let mut app_dns = results.app_dns.clone();
    app_dns.sort_by(|a, b| a.name.cmp(&b.name));
    checks.extend(app_dns.iter().map(Check::record));
    let mut tcp = results.tcp.clone();
    tcp.sort_by(|a, b| (&a.name, &a.address).cmp(&(&b.name, &b.address)));
    checks.extend(tcp.iter().map(Check::record));
    let mut tls = results.tls.clone();
    tls.sort_by(|a, b| (&a.name, &a.address).cmp(&(&b.name, &b.address)));
    checks.extend(tls.iter().map(Check::record));
    checks.extend(results.nacl.iter().map(Check::record));
    checks.extend(results.proxy_probes.iter().map(Check::record));
    if let Some(c) = &results.credentials {
        checks.push(c.record());
    }
    checks.extend(results.calls.iter().map(Check::record));
    if let Some(cp) = &results.control_plane {
        checks.push(cp.record());
    }
    checks.extend(results.reachability.iter().map(Check::record));
    if let Some(c) = &results.canary {
        checks.push(c.record());
    }
    let finished = started_wall + elapsed;
    Report {
        schema_version: SCHEMA_VERSION.into(),
        report_id: uuid::Uuid::new_v4().to_string(),
        tool: ToolInfo {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        started_at: rfc3339(started_wall),
        finished_at: rfc3339(finished),
        duration_ms: millis(elapsed),
        host: results.host.clone(),
        instance: results.instance.clone(),
        region: results.region.clone(),
        config: cfg.effective(),
        ip_ranges: RangesInfo {
            source: cfg.ranges.source.clone(),
            create_date: cfg.ranges.create_date.clone(),
            prefixes: cfg.ranges.prefixes.len(),
        },
        targets: diagnosis.targets,
        checks,
        findings: diagnosis.findings,
        verdict: diagnosis.verdict,
    }
}
