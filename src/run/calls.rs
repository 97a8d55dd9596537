//! The signed calls with the instance's own credentials (STS, then per target S3 or
//! DynamoDB, pinned to the addresses the TCP checks proved), and the control-plane reads.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::NameCtx;
use super::targets::account_ddb_endpoint;
use crate::checks::calls::{CallSite, SdkClients};
use crate::checks::{dynamodb, identity, s3};
use crate::endpoints::NameSocket;
use crate::net::aws::{self as net_aws, PinnedResolver};
use crate::proxy_rules::HttpClientKind;
use crate::report::*;
use crate::results::TargetSpec;

impl NameCtx<'_> {
    /// The SDK's proxy for a name, redacted, if it would use one.
    fn sdk_proxy(&self, name: &str, socket: NameSocket) -> Option<String> {
        let url = socket.url(name)?;
        crate::proxy_rules::decide(HttpClientKind::AwsSdkRust, &self.cfg.env.proxy, &url)
            .proxy
            .map(|p| p.url_redacted)
    }

    /// Whether the SDK's client connects to `name` itself (no proxy in its way).
    pub(super) fn sdk_connects_directly(&self, name: &str, socket: NameSocket) -> bool {
        socket.url(name).is_some_and(|url| {
            crate::proxy_rules::decide(HttpClientKind::AwsSdkRust, &self.cfg.env.proxy, &url)
                .proxy
                .is_none()
        })
    }

    fn call_site(
        &self,
        resolver: &PinnedResolver,
        service: Service,
        target: &str,
        host: &str,
        socket: NameSocket,
    ) -> CallSite {
        CallSite {
            service,
            target: target.to_string(),
            endpoint_host: Some(host.to_string()),
            peer: resolver.pinned(host).map(|ip| ip.to_string()),
            proxy: self.sdk_proxy(host, socket),
            limits: self.limits.clone(),
        }
    }

    /// Signed calls with the instance's own credentials, each name pinned to the address
    /// that the TCP check connected to. STS and the control plane start at once; each
    /// target's calls when the TCP checks of the names it calls are done.
    pub(super) async fn signed_calls(
        &self,
        mut evidence: CredentialsEvidence,
        credentials: Option<aws_credential_types::Credentials>,
        instance: Option<&InstanceFacts>,
        silence: SilenceProofs,
    ) {
        let cfg = self.cfg;
        let resolver = PinnedResolver::new(self.resolvers.system.clone().unwrap_or_default());
        let extra_pem: Vec<Vec<u8>> = [&cfg.env.ca_bundle, &cfg.env.ssl_cert_file]
            .into_iter()
            .flatten()
            .filter_map(|p| std::fs::read(p).ok())
            .collect();
        let http =
            match net_aws::http_client(extra_pem, resolver.clone(), Some(self.handoff.clone())) {
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
        let proxied = net_aws::with_connect_timeout(&sdk, cfg.silence_timeout, timeout);
        let SilenceProofs { sts, ec2 } = silence;
        let have_credentials = credentials.is_some() && !evidence.expired;
        let env = CallEnv {
            clients: Arc::new(SdkClients::new(sdk.clone())),
            resolver: &resolver,
            have_credentials,
            account: evidence
                .account
                .clone()
                .or_else(|| instance.and_then(|i| i.account_id.clone())),
            s3_override: self
                .settings
                .endpoint_url_s3
                .as_ref()
                .map(|s| s.value.clone()),
            ddb_override: self
                .settings
                .endpoint_url_dynamodb
                .as_ref()
                .map(|s| s.value.clone()),
            timeout,
            buckets_in_turn: self.buckets_queue_at_once(),
        };

        let per_target = self.per_target_calls(&env);
        let sts = async {
            if have_credentials {
                match sts.sdk(&sdk, &proxied).await {
                    Ok(sdk) => identity::caller_identity(sdk, &mut evidence, timeout).await,
                    Err(why) => {
                        evidence.identity_error = Some(format!(
                            "{why}: no STS endpoint or NAT route in this subnet?"
                        ))
                    }
                }
            }
            evidence
        };
        let control_plane = async {
            let (read, reachable_sdk) = match ec2.sdk(&sdk, &proxied).await {
                Ok(sdk) => (
                    self.control_plane_reads(sdk, instance, have_credentials, timeout)
                        .await,
                    Some(sdk),
                ),
                Err(why) => (
                    self.control_plane_wanted(instance, have_credentials)
                        .then(|| (unreachable_control_plane(&why), Vec::new())),
                    None,
                ),
            };
            let readable = read
                .as_ref()
                .is_some_and(|(cp, _)| cp.reads.iter().any(|r| r.outcome == ReadOutcome::Ok));
            // Kept at once: a deadline during the interface read below keeps the rest.
            if let Some((cp, reachability)) = read {
                self.collector.with(|c| {
                    c.control_plane = Some(cp);
                    c.reachability = reachability;
                });
            }
            if let (true, Some(sdk)) = (readable, reachable_sdk) {
                self.name_hop_interfaces(sdk, timeout).await;
            }
        };
        let ((), evidence, ()) = tokio::join!(per_target, sts, control_plane);
        self.collector.with(|c| c.credentials = Some(evidence));
    }

    /// Whether the buckets' calls, all at once, would be more than one address lets through
    /// (`--max-calls-per-address`): then they queue anyway, and each bucket's calls go in turn.
    fn buckets_queue_at_once(&self) -> bool {
        let buckets = self.collector.with(|c| {
            c.targets
                .iter()
                .filter(|t| matches!(t.service, Service::S3 | Service::S3express))
                .count()
        });
        let per_bucket = if self.cfg.write_test { 6 } else { 4 };
        buckets * per_bucket > self.limits.bounds().calls_per_address
    }

    /// Every target's calls, each once the TCP checks of the names it calls are done (a
    /// black-holed name delays only its own targets); each target's results are kept as soon
    /// as they are in (a deadline keeps them).
    async fn per_target_calls(&self, env: &CallEnv<'_>) {
        let targets = self.collector.with(|c| c.targets.clone());
        let scheduled: Vec<_> = targets
            .iter()
            .map(|t| {
                let kind = match t.service {
                    // Directory buckets are called with the S3 API.
                    Service::S3 | Service::S3express => CheckKind::S3,
                    Service::Dynamodb => CheckKind::Dynamodb,
                };
                let id = format!("{}/{}/calls", t.service.as_str(), t.name);
                self.collector.schedule(kind, id, t.id.clone())
            })
            .collect();
        join_all(
            targets
                .iter()
                .zip(scheduled)
                .map(|(t, scheduled)| async move {
                    // Every name's addresses first (see ready.rs), then the names this
                    // target calls: its first name and, for a table, the account-based name
                    // the account pipeline may add.
                    self.ready.wait(super::ready::ALL_LOOKUPS).await;
                    if let Some(host) = t.endpoint_names.first() {
                        self.ready.wait(host).await;
                    }
                    if t.service == Service::Dynamodb {
                        self.ready.wait(super::ACCOUNT_NAME_READY).await;
                    }
                    // Read again: the account pipeline adds its name to the targets.
                    let t = self
                        .collector
                        .with(|c| c.targets.iter().find(|x| x.id == t.id).cloned())
                        .unwrap_or_else(|| t.clone());
                    self.pin_connected(env.resolver, &t.endpoint_names);
                    let results = self.target_calls(env, &t).await;
                    self.collector.with(|c| c.calls.extend(results));
                    drop(scheduled);
                }),
        )
        .await;
    }

    /// Pins each of `names` to the address its TCP check connected to. The calls go where the
    /// applications' calls go, never to a VPC-resolver-only address; an IPv6 address first
    /// when one connected, as getaddrinfo orders them (RFC 6724) for a host that can reach it,
    /// so dual-stack names are called over IPv6 like the clients do.
    fn pin_connected(&self, resolver: &PinnedResolver, names: &[String]) {
        // Only this target's names' attempts are copied out (each target runs this).
        let mut usable: Vec<(String, String)> = self.collector.with(|c| {
            c.tcp
                .iter()
                .filter(|a| {
                    a.outcome == TcpOutcome::Connected
                        && a.origin == AddressOrigin::Application
                        && names.contains(&a.name)
                })
                .map(|a| (a.name.clone(), a.address.clone()))
                .collect()
        });
        usable.sort_by_key(|(_, address)| !address.contains(':'));
        for (name, address) in usable {
            if resolver.pinned(&name).is_none()
                && let Ok(ip) = address.parse()
            {
                resolver.pin(&name, ip);
            }
        }
    }

    /// One target's calls, or the call that was skipped and why.
    async fn target_calls(&self, env: &CallEnv<'_>, t: &TargetSpec) -> Vec<CallResult> {
        let cfg = self.cfg;
        let Some(host) = t.endpoint_names.first() else {
            return Vec::new();
        };
        let socket = t.name_sockets.get(host).copied().unwrap_or_default();
        let site = self.call_site(env.resolver, t.service, &t.id, host, socket);
        // A proxy the CONNECT probe could not reach at all would cost every call through it a
        // timeout, after the probe's own: the probe's answer is the measurement.
        let proxy_silent = site.proxy.is_some()
            && self.collector.with(|c| {
                c.measured.of::<ProxyProbe>().iter().any(|p| {
                    p.name == *host
                        && matches!(p.outcome, ProxyOutcome::Unreachable | ProxyOutcome::Timeout)
                })
            });
        let skip_reason = if !env.have_credentials {
            Some("no usable credentials (see the credentials check)".to_string())
        } else if proxy_silent {
            Some(format!(
                "the proxy could not be reached for {host} (see the proxy checks)"
            ))
        } else if site.proxy.is_none() && site.peer.is_none() {
            Some(format!("no TCP connection to {host} (see the tcp checks)"))
        } else {
            None
        };
        match t.service {
            Service::S3 | Service::S3express => {
                if let Some(why) = skip_reason {
                    let action = match t.service {
                        Service::S3express => "s3express:CreateSession",
                        _ => "s3:ListBucket",
                    };
                    return vec![site.skipped("HeadBucket", action, why)];
                }
                s3::BucketCalls {
                    clients: &env.clients,
                    endpoint_url: env.s3_override.as_deref(),
                    directory: t.service == Service::S3express,
                    bucket: &t.name,
                    key: cfg.key.as_deref(),
                    write_test: cfg.write_test,
                    site,
                    timeout: env.timeout,
                    in_turn: env.buckets_in_turn,
                }
                .run()
                .await
            }
            Service::Dynamodb => {
                if let Some(why) = skip_reason {
                    return vec![site.skipped("DescribeTable", "dynamodb:DescribeTable", why)];
                }
                self.table_calls(env, t, host, site).await
            }
        }
    }

    /// DescribeTable (and the item calls) on the regional name and, when the SDKs use one,
    /// the account-based name.
    async fn table_calls(
        &self,
        env: &CallEnv<'_>,
        t: &TargetSpec,
        host: &str,
        site: CallSite,
    ) -> Vec<CallResult> {
        let ddb_override = &env.ddb_override;
        let regional_url = ddb_override
            .clone()
            .unwrap_or_else(|| format!("https://{host}"));
        let sdk_derives = self.settings.fips() || self.settings.dualstack();
        let account_site = match (ddb_override, &env.account) {
            // With FIPS or dual-stack on, the SDK derives the name itself
            // (account-based when the rules allow): the call above is it.
            (None, Some(_)) if sdk_derives => None,
            (None, Some(a)) => {
                account_ddb_endpoint(self.region, a, self.settings).and_then(|named| {
                    let site = self.call_site(
                        env.resolver,
                        Service::Dynamodb,
                        &t.id,
                        &named.host,
                        named.socket,
                    );
                    (site.peer.is_some() || site.proxy.is_some())
                        .then(|| (format!("https://{}", named.host), site))
                })
            }
            _ => None,
        };
        // The SDKs refuse an explicit URL with FIPS or dual-stack on: they derive the (same)
        // name themselves then.
        let regional = (
            (ddb_override.is_some() || !(self.settings.fips() || self.settings.dualstack()))
                .then_some(regional_url),
            site,
        );
        // On the side thread (side.rs): the tables' connections are made and used there.
        let clients = env.clients.clone();
        let (table, item_key, timeout) = (t.name.clone(), self.cfg.item_key.clone(), env.timeout);
        super::side::run(async move {
            dynamodb::TableCalls {
                clients: &clients,
                table: &table,
                item_key: item_key.as_ref(),
                regional,
                account: account_site,
                timeout,
            }
            .run()
            .await
        })
        .await
        .unwrap_or_default()
    }

    /// STS and the EC2 API have no path from a private subnet with only gateway endpoints:
    /// their healthy answer there is silence. Each is proved silent (or not) by a TCP
    /// connection to the name the SDK would call, within `--silence-timeout`, started at once
    /// (it needs no credentials) in its own task. Through a proxy, where the connection is the
    /// proxy's, the SDK's connect wait is the bound instead (see `Proof::sdk`).
    pub(super) fn silence_proofs(&self) -> SilenceProofs {
        let bound = self.cfg.silence_timeout.min(self.budget.op());
        let resolver = PinnedResolver::new(self.resolvers.system.clone().unwrap_or_default());
        let start = |service: &'static str, endpoint: Option<(String, NameSocket)>| {
            let Some((host, socket)) = endpoint else {
                return Proof::ConnectWait;
            };
            if self.sdk_proxy(&host, socket).is_some() {
                return Proof::ConnectWait;
            }
            let resolver = resolver.clone();
            let task = tokio::spawn(async move {
                net_aws::accepts_connection(&resolver, &host, socket.port, bound)
                    .await
                    .map_err(|answer| {
                        // The bound is said once; only an answer other than silence is added.
                        let answer = answer.map(|e| format!(" ({e})")).unwrap_or_default();
                        format!(
                            "{service} did not accept a connection at {host}:{} within {} ms, the --silence-timeout bound{answer}",
                            socket.port,
                            bound.as_millis()
                        )
                    })
            });
            Proof::Connect(task)
        };
        SilenceProofs {
            sts: start(
                "STS",
                crate::endpoints::sts_endpoint(self.region, self.settings),
            ),
            ec2: if self.cfg.control_plane {
                start(
                    "EC2",
                    crate::endpoints::ec2_endpoint(self.region, self.settings),
                )
            } else {
                Proof::ConnectWait
            },
        }
    }

    /// Whether the control plane is read at all: asked for, credentials, a VPC.
    fn control_plane_wanted(
        &self,
        instance: Option<&InstanceFacts>,
        have_credentials: bool,
    ) -> bool {
        self.cfg.control_plane && have_credentials && instance.is_some_and(|i| i.vpc_id.is_some())
    }

    /// The VPC's configuration, when asked for and the instance has credentials and a VPC.
    async fn control_plane_reads(
        &self,
        sdk: &aws_config::SdkConfig,
        instance: Option<&InstanceFacts>,
        have_credentials: bool,
        timeout: Duration,
    ) -> Option<(ControlPlane, Vec<ReachabilityEvidence>)> {
        let cfg = self.cfg;
        if !(cfg.control_plane && have_credentials) {
            return None;
        }
        let instance = instance?;
        instance.vpc_id.as_ref()?;
        let _scheduled = self
            .collector
            .schedule(CheckKind::Ec2, "ec2", "VPC configuration");
        // The services are known from the configuration; the data plane adds names only.
        let services: BTreeSet<Service> = self
            .collector
            .with(|c| c.targets.iter().map(|t| t.service).collect());
        let services: Vec<Service> = services.into_iter().collect();
        let (sdk, instance, region) = (sdk.clone(), instance.clone(), self.region.to_string());
        let analyzer_deadline = cfg.reachability_analyzer.then_some(self.budget.deadline);
        // Its own thread (side.rs): the reads need nothing from the data plane.
        super::side::run(async move {
            read_control_plane(
                &sdk,
                &instance,
                &region,
                &services,
                timeout,
                analyzer_deadline,
            )
            .await
        })
        .await
        .flatten()
    }
}

/// The proofs of silence of STS and the EC2 API (`NameCtx::silence_proofs`).
pub(super) struct SilenceProofs {
    sts: Proof,
    ec2: Proof,
}

enum Proof {
    /// A TCP connection to the service's name within the bound, in its own task.
    Connect(tokio::task::JoinHandle<Result<(), String>>),
    /// Through a proxy (or no name from the endpoint rules): the SDK's connect wait, which
    /// counts the tunnel and the TLS handshake, is the bound.
    ConnectWait,
}

impl Proof {
    /// The SDK configuration to call the service with, or why it is silent (not called then):
    /// `sdk` once it accepted a connection (the call gets the whole timeout), `proxied` (whose
    /// connect wait is the bound) through a proxy.
    async fn sdk<'c>(
        self,
        sdk: &'c aws_config::SdkConfig,
        proxied: &'c aws_config::SdkConfig,
    ) -> Result<&'c aws_config::SdkConfig, String> {
        match self {
            Proof::ConnectWait => Ok(proxied),
            Proof::Connect(task) => match task.await {
                Ok(Ok(())) => Ok(sdk),
                Ok(Err(why)) => Err(why),
                Err(e) => Err(format!("the connection check did not finish: {e}")),
            },
        }
    }
}

/// What every target's calls share.
struct CallEnv<'a> {
    /// Shared with the side thread, which makes the tables' calls (side.rs).
    clients: Arc<SdkClients>,
    resolver: &'a PinnedResolver,
    have_credentials: bool,
    account: Option<String>,
    s3_override: Option<String>,
    ddb_override: Option<String>,
    timeout: Duration,
    /// Each bucket's calls in turn (see `s3::BucketCalls::in_turn`).
    buckets_in_turn: bool,
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

impl NameCtx<'_> {
    /// Once the hop checks are done: the network interfaces of the private first hops that no
    /// NAT gateway owns (an appliance, a NAT instance), added to the control plane. Nothing is
    /// read when there is none, as on a healthy path.
    #[cfg(feature = "control-plane")]
    async fn name_hop_interfaces(&self, sdk: &aws_config::SdkConfig, timeout: Duration) {
        self.ready.wait(super::DATA_PLANE_DONE).await;
        let addresses: Vec<String> = self.collector.with(|c| {
            let cp = c.control_plane.as_ref();
            let mut found: Vec<String> = c
                .measured
                .of::<HopTrace>()
                .iter()
                .filter(|h| h.service.is_some())
                .filter_map(|h| h.first_responder().map(|(_, a)| a.to_string()))
                .filter(|a| {
                    a.parse::<std::net::IpAddr>()
                        .is_ok_and(crate::ranges::is_private)
                })
                .filter(|a| cp.is_none_or(|cp| cp.nat_gateway_at(a).is_none()))
                .collect();
            found.sort();
            found.dedup();
            found
        });
        if addresses.is_empty() {
            return;
        }
        let mut read = ControlPlane::default();
        crate::checks::ec2::name_hop_interfaces(sdk, &mut read, &addresses, timeout).await;
        self.collector.with(|c| {
            if let Some(cp) = c.control_plane.as_mut() {
                cp.reads.extend(read.reads);
                cp.network_interfaces = read.network_interfaces;
            }
        });
    }

    #[cfg(not(feature = "control-plane"))]
    async fn name_hop_interfaces(&self, _sdk: &aws_config::SdkConfig, _timeout: Duration) {}
}

/// The control plane when the EC2 API accepted no connection: every read failed, and why.
#[cfg(feature = "control-plane")]
fn unreachable_control_plane(why: &str) -> ControlPlane {
    crate::checks::ec2::unreachable(why)
}

#[cfg(not(feature = "control-plane"))]
fn unreachable_control_plane(_why: &str) -> ControlPlane {
    ControlPlane::default()
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
