//! `run_once`: configuration in, report out. Checks run concurrently; each stage starts as
//! soon as what it needs is known (a name's TCP and TLS start when its DNS answers arrive),
//! so a healthy run costs about its slowest chain, and a black-holed address one timeout.
//!
//! `names` holds one name's pipeline (DNS → TCP → TLS, the slices: proxy CONNECT, NACL sweep,
//! hop check), `calls` the signed calls and the control-plane reads (with Reachability
//! Analyzer), `targets` what the configuration asks to probe. The slices measured once per run
//! (the internet canary) start here, with the run, beside IMDS and the names' pipelines.

mod calls;
mod names;
mod pending;
mod ready;
mod side;
mod targets;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::join_all;
use tokio::sync::OnceCell;

use crate::checks::app_resolve::{self, HostFiles};
use crate::checks::dns::Resolvers;
use crate::checks::imds::ImdsResult;
use crate::checks::region::RegionCheck;
use crate::checks::slice::{Measuring, NamedMeasuring, RecordsAt, RunClaims, RunStage, Slice};
use crate::checks::{Check, SLICES, host, identity, imds, proxy, region};
use crate::config::Config;
use crate::diagnose::{self, Diagnosis};
use crate::endpoints::SdkSettings;
use crate::net::dns::ServerResolver;
use crate::net::handoff::Handoff;
use crate::net::limits::Limits;
use crate::net::tls::TlsContext;
use crate::net::{Budget, millis, rfc3339};
use crate::report::*;

pub use crate::results::{ProbeResults, TargetSpec};
pub use targets::targets;

use names::mark_vpc_addresses_private;
use targets::{account_ddb_endpoint, build_resolvers, is_regional_name, unique_names, vpc_cidrs};

/// Results land here as they complete, so a deadline keeps what was already learned; the
/// checks scheduled and not yet finished are in `pending`, so a deadline can name them.
#[derive(Default)]
struct Collector {
    results: Mutex<ProbeResults>,
    pending: pending::Pending,
    /// What the slices measure once per run (checks/slice.rs `RunClaims`).
    claims: RunClaims,
}

impl Collector {
    fn with<R>(&self, f: impl FnOnce(&mut ProbeResults) -> R) -> R {
        match self.results.lock() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Marks a check as scheduled until the guard is dropped (see pending.rs).
    fn schedule(
        &self,
        kind: CheckKind,
        id: impl Into<String>,
        subject: impl Into<String>,
    ) -> pending::Scheduled<'_> {
        self.pending.schedule(kind, id, subject)
    }

    /// One slice's measurement: named by the deadline while it runs (as a check of `kind`;
    /// None: not named), kept when it finishes.
    async fn keep_measured(
        &self,
        kind: Option<CheckKind>,
        id: String,
        subject: String,
        measuring: Measuring<'_>,
    ) {
        let _scheduled = kind.map(|kind| self.schedule(kind, id, subject));
        let measured = measuring.await;
        self.with(|c| c.measured.extend(measured));
    }

    /// Every registered slice's measurement at one stage of the run (`start` starts a slice's,
    /// or None when the stage is not its business), each kept when it finishes and named by
    /// the deadline if it does not (`Slice::named_by_deadline`).
    async fn keep_slices<'a>(
        &self,
        start: impl Fn(&'static dyn Slice) -> Option<NamedMeasuring<'a>>,
    ) {
        join_all(SLICES.iter().filter_map(|slice| {
            let started = start(*slice)?;
            let kind = slice.named_by_deadline().then_some(slice.kind());
            Some(self.keep_measured(kind, started.id, started.subject, started.measuring))
        }))
        .await;
    }
}

/// One run: the shared AWS config files are read as part of it (the agent's way: its files may
/// change between runs, and a bad one is reported, not fatal).
pub async fn run_once(cfg: &Config) -> Report {
    run(cfg, None).await
}

/// One run with the shared AWS config files already read: the one-shot probe reads them before
/// anything is probed (a bad file is exit 2), and the run uses what it read.
pub async fn run_once_with_sdk_settings(cfg: &Config, sdk_settings: &SdkSettings) -> Report {
    run(cfg, Some(sdk_settings)).await
}

async fn run(cfg: &Config, sdk_settings: Option<&SdkSettings>) -> Report {
    let started_wall = SystemTime::now();
    let started = Instant::now();
    let budget = Budget::new(cfg.timeout, cfg.deadline);
    let limits = Limits::new(cfg.bounds, cfg.timeout);
    let collector = Arc::new(Collector::default());
    collector.with(|r| r.host = host::collect(rfc3339(started_wall)));

    let mut work = Box::pin(probe_all(
        cfg,
        budget,
        &limits,
        collector.clone(),
        sdk_settings,
    ));
    // The deadline wins a tie: a result that lands with it was not measured before it.
    let hit = tokio::select! {
        biased;
        _ = tokio::time::sleep_until(budget.deadline.into()) => true,
        _ = &mut work => false,
    };
    // What the deadline cut short, named before the work (and its guards) is dropped.
    let unfinished = if hit {
        collector.pending.unfinished()
    } else {
        Vec::new()
    };
    drop(work);

    let mut results = match Arc::try_unwrap(collector) {
        Ok(c) => c.results.into_inner().unwrap_or_else(|p| p.into_inner()),
        // Tasks still hold the collector only if the deadline cut them off.
        Err(shared) => shared.with(std::mem::take),
    };
    results.deadline_hit = hit;
    mark_vpc_addresses_private(&mut results);
    let diagnosis = diagnose::diagnose(&results, &cfg.expectations(), crate::checks::SLICE_RULES);
    let mut report = assemble(cfg, results, diagnosis, started_wall, started.elapsed());
    report.checks.extend(unfinished);
    report
}

/// IMDS is asked once, by whichever task needs it first; the others wait for that answer.
/// One session (one client, one token) serves the instance facts, the region and the SDK's
/// credential chain.
struct ImdsOnce {
    cell: OnceCell<ImdsResult>,
    session: imds::ImdsSession,
}

impl ImdsOnce {
    async fn get(&self) -> &ImdsResult {
        self.cell.get_or_init(|| imds::collect(&self.session)).await
    }

    /// The instance's region alone: what the data plane waits for when nothing else names one.
    async fn region(&self) -> Option<String> {
        self.session.region().await.clone().ok().flatten()
    }
}

/// What the region-specific work shares with the tasks that run beside it.
struct Setup<'a> {
    cfg: &'a Config,
    budget: Budget,
    limits: &'a Limits,
    collector: &'a Collector,
    resolvers: &'a Resolvers,
    tls: &'a TlsLoader,
    host_files: &'a HostFiles,
    resolved_stub: Option<&'a Result<ServerResolver, String>>,
    imds: &'a ImdsOnce,
    /// The shared config files, when the caller read them already.
    sdk_settings: Option<&'a SdkSettings>,
}

async fn probe_all(
    cfg: &Config,
    budget: Budget,
    limits: &Limits,
    collector: Arc<Collector>,
    sdk_settings: Option<&SdkSettings>,
) {
    let resolvers = Arc::new(build_resolvers(cfg));
    collector.with(|r| {
        r.system_resolvers = resolvers.system_servers();
        r.vpc_resolver = Some(cfg.vpc_resolver);
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
    let imds_once = ImdsOnce {
        cell: OnceCell::new(),
        session: imds::ImdsSession::new(&cfg.env, budget.op()),
    };

    let imds_task = async {
        let endpoint = cfg.env.imds_endpoint_or_default();
        let _scheduled = collector.schedule(CheckKind::Imds, "imds", endpoint);
        let r = imds_once.get().await;
        collector.with(|c| {
            c.imds = Some(r.evidence.clone());
            c.instance = r.facts.clone();
            c.imds_ms = millis(r.duration);
        });
    };

    // The slices measured once per run (the internet canary), beside everything else.
    let stage = RunStage {
        internet_canary: cfg.internet_canary.as_ref().map(|(h, p)| (h.as_str(), *p)),
        silence_timeout: cfg.silence_timeout,
        resolvers: &resolvers,
        budget,
        limits,
    };
    let per_run = collector.keep_slices(|slice| slice.per_run(stage));
    let setup = Setup {
        cfg,
        budget,
        limits,
        collector: &collector,
        resolvers: &resolvers,
        tls: &tls_loader,
        host_files: &host_files,
        resolved_stub: resolved_stub.as_ref(),
        imds: &imds_once,
        sdk_settings,
    };
    tokio::join!(imds_task, per_run, probe_services(&setup));
}

/// The SDK's region and settings, then (with a region) every name's pipeline and the signed
/// calls, then the final region facts.
async fn probe_services(s: &Setup<'_>) {
    let (cfg, collector) = (s.cfg, s.collector);
    let sdk = region::sdk_region(&cfg.env, cfg.profile.as_deref()).await;
    // The one-shot probe read the config files before starting (and refused unusable ones,
    // exit 2); the agent, whose files may change between runs, reads them at every run,
    // reports unusable ones and goes on with defaults.
    let loaded;
    let settings = match s.sdk_settings {
        Some(given) => given,
        None => {
            loaded = SdkSettings::load(cfg.profile.as_deref())
                .await
                .unwrap_or_else(|e| {
                    collector.with(|c| c.setup_errors.push(e.to_string()));
                    SdkSettings::default()
                });
            &loaded
        }
    };
    // The instance's region is only waited for when nothing else names one.
    let imds_region = if cfg.region.is_none() && sdk.is_none() {
        s.imds.region().await
    } else {
        None
    };
    let provisional = region::evaluate(
        cfg.region.as_deref(),
        sdk.clone(),
        imds_region.as_deref(),
        &cfg.env,
    );
    // Kept at once: a run the deadline cuts short still says which region it probed.
    collector.with(|c| c.region = provisional.clone());
    let Some(probe_region) = provisional.effective.clone() else {
        // Without a region there is nothing region-specific to probe; IMDS_UNAVAILABLE says
        // why, and the proxy rules may say why IMDS did not answer.
        let instance = s.imds.get().await;
        let facts = region::evaluate(None, sdk, None, &cfg.env);
        let imds_url: Vec<url::Url> = proxy::imds_token_url(&cfg.env).into_iter().collect();
        let proxy_env = proxy::analyze(&cfg.env.proxy, &imds_url, &[]);
        collector.with(|c| {
            c.region = facts;
            c.targets = targets(cfg, "", instance.facts.as_ref(), settings);
            c.proxy_env = Some(proxy_env);
        });
        return;
    };
    probe_names(s, &probe_region, settings).await;
    // Final region facts need the instance's region, which IMDS gives even when not waited for.
    let instance = s.imds.get().await;
    let instance_region = instance.facts.as_ref().and_then(|f| f.region.clone());
    let facts = region::evaluate(
        cfg.region.as_deref(),
        sdk,
        instance_region.as_deref(),
        &cfg.env,
    );
    collector.with(|c| c.region = facts);
}

/// Every name's pipeline, and the signed calls beside them.
async fn probe_names(s: &Setup<'_>, probe_region: &str, settings: &SdkSettings) {
    let (cfg, collector) = (s.cfg, s.collector);
    let static_targets = targets(cfg, probe_region, None, settings);
    let names = unique_names(&static_targets);
    let proxy_urls: Vec<url::Url> = names
        .iter()
        .filter_map(|(n, _, socket)| socket.url(n))
        .chain(proxy::imds_token_url(&cfg.env))
        .collect();
    let proxy_env = proxy::analyze(
        &cfg.env.proxy,
        &proxy_urls,
        &settings.configured_endpoint_urls(),
    );
    collector.with(|c| {
        c.targets = static_targets.clone();
        c.proxy_env = Some(proxy_env.clone());
    });
    let ready = ready::NameReady::default();
    // The regional names' lookups; the account-based name is the tables' own wait.
    ready.expect_lookups(names.len());
    let ctx = NameCtx {
        cfg,
        budget: s.budget,
        limits: s.limits,
        resolvers: s.resolvers,
        region: probe_region,
        proxy_env: &proxy_env,
        collector,
        tls: s.tls,
        host_files: s.host_files,
        resolved_stub: s.resolved_stub,
        settings,
        ready: &ready,
        handoff: Arc::default(),
    };
    let pipelines = join_all(names.iter().map(|(name, service, socket)| {
        let regional = is_regional_name(name, &static_targets);
        ctx.name_pipeline(name, *service, *socket, regional, Vec::new(), true)
    }));
    let account_pipeline = account_pipeline(&ctx, s.imds);
    // The signed calls start as soon as the credentials are loaded: STS and the control
    // plane need nothing from the data plane, so a timeout there (STS has no endpoint in a
    // private subnet) overlaps the TCP checks instead of following them. A target's calls
    // wait for the TCP checks of the names they call (ready.rs), whose addresses they are
    // pinned to.
    let data_plane = async {
        tokio::join!(pipelines, account_pipeline);
        ctx.ready.done(DATA_PLANE_DONE);
    };
    let calls = async {
        if !cfg.calls {
            return;
        }
        let _scheduled = collector.schedule(CheckKind::Credentials, "credentials", "default chain");
        // When the region came from IMDS, the session holds a token and the chain's IMDS
        // provider reuses it (one IMDS walk per run); else the chain starts at once with its
        // own client, as before.
        let imds = s.imds.session.client_with_token();
        // STS and the EC2 API are proved silent (or not) from now on: that needs no credentials.
        let silence = ctx.silence_proofs();
        let (evidence, creds) =
            identity::load(probe_region, cfg.profile.as_deref(), imds, s.budget.op()).await;
        let instance = s.imds.get().await;
        ctx.signed_calls(evidence, creds, instance.facts.as_ref(), silence)
            .await;
    };
    tokio::join!(data_plane, calls);
}

/// The account-based DynamoDB name needs the account id, which IMDS knows. Whatever it finds,
/// the tables' calls are told when it is done (`ACCOUNT_NAME_READY`).
async fn account_pipeline(ctx: &NameCtx<'_>, imds: &ImdsOnce) {
    account_name(ctx, imds).await;
    ctx.ready.done(ACCOUNT_NAME_READY);
}

/// Every name's checks are done (the hop traces included): what the control plane's read of
/// the hops' network interfaces waits for.
pub(super) const DATA_PLANE_DONE: &str = "(every name's checks)";

/// What the tables' calls wait for besides their regional name: the account-based name's
/// pipeline, or the knowledge that there is none.
pub(super) const ACCOUNT_NAME_READY: &str = "(the account-based DynamoDB name)";

async fn account_name(ctx: &NameCtx<'_>, imds: &ImdsOnce) {
    if ctx.cfg.tables.is_empty() {
        return;
    }
    let instance = imds.get().await;
    let Some(account) = instance.facts.as_ref().and_then(|f| f.account_id.clone()) else {
        return;
    };
    let Some(named) = account_ddb_endpoint(ctx.region, &account, ctx.settings) else {
        return;
    };
    let name = named.host.clone();
    let vpc_cidrs = vpc_cidrs(instance.facts.as_ref());
    ctx.collector.with(|c| {
        for t in c
            .targets
            .iter_mut()
            .filter(|t| t.service == Service::Dynamodb)
        {
            t.endpoint_names.push(name.clone());
            t.name_settings.insert(name.clone(), named.settings.clone());
            t.name_sockets.insert(name.clone(), named.socket);
        }
    });
    ctx.name_pipeline(
        &name,
        Service::Dynamodb,
        named.socket,
        false,
        vpc_cidrs,
        false,
    )
    .await;
}

struct NameCtx<'a> {
    cfg: &'a Config,
    budget: Budget,
    limits: &'a Limits,
    resolvers: &'a Resolvers,
    region: &'a str,
    proxy_env: &'a ProxyEnvEvidence,
    collector: &'a Collector,
    tls: &'a TlsLoader,
    host_files: &'a HostFiles,
    resolved_stub: Option<&'a Result<ServerResolver, String>>,
    settings: &'a SdkSettings,
    ready: &'a ready::NameReady,
    /// The TLS checks' connections the signed calls use (net/handoff.rs).
    handoff: Arc<Handoff>,
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
    // The slices' checks placed with the connections (the hop checks, the NACL sweeps, the
    // proxy CONNECT probes): where their records have always been in the report.
    checks.extend(slice_records(&results, RecordsAt::AfterConnections));
    if let Some(c) = &results.credentials {
        checks.push(c.record());
    }
    checks.extend(results.calls.iter().map(Check::record));
    if let Some(cp) = &results.control_plane {
        checks.push(cp.record());
    }
    checks.extend(results.reachability.iter().map(Check::record));
    // The slices' checks placed last (the internet canary).
    checks.extend(slice_records(&results, RecordsAt::Last));
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

/// The records of the slices' checks placed `at` (checks/slice.rs `Slice::records_at`), in the
/// slices' registration order, each check's in its record order. A kind no slice declares
/// (none today) comes with the connections, the default place.
fn slice_records(results: &ProbeResults, at: RecordsAt) -> Vec<CheckRecord> {
    let order: Vec<CheckKind> = SLICES.iter().map(|s| s.kind()).collect();
    let place = |kind: CheckKind| {
        SLICES
            .iter()
            .find(|s| s.kind() == kind)
            .map_or(RecordsAt::AfterConnections, |s| s.records_at())
    };
    results
        .measured
        .records_where(&order, |kind| place(kind) == at)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The canary's record comes last, not with the slices placed after the TLS checks; its
    /// hop trace comes with the hop check's.
    #[test]
    fn slices_records_come_in_their_places() {
        let mut results = ProbeResults::default();
        results.measured.push(CanaryResult {
            target: "example.com:443".into(),
            addresses: Vec::new(),
            outcome: CanaryOutcome::Unreachable,
            error: None,
            connect_ms: 1,
            connect_timeout_ms: None,
        });
        results.measured.push(HopTrace {
            name: "example.com:443".into(),
            service: None,
            address: "192.0.2.1".into(),
            port: 443,
            address_class: AddressClass::Outside,
            answered_at: None,
            outcome: TcpOutcome::Timeout,
            hops: Vec::new(),
            max_hops: 8,
            error: None,
            duration_ms: 1,
        });
        let ids = |at| -> Vec<String> {
            slice_records(&results, at)
                .into_iter()
                .map(|r| r.id)
                .collect()
        };
        assert_eq!(ids(RecordsAt::AfterConnections), ["hops/canary/192.0.2.1"]);
        assert_eq!(ids(RecordsAt::Last), ["canary"]);
    }
}
