//! The seam to the AWS SDK: one HTTP client for every signed call, which
//! - trusts the system roots plus AWS_CA_BUNDLE / SSL_CERT_FILE,
//! - takes the proxy from the environment exactly as the SDK's default client does
//!   (a custom client loses that unless it is asked for),
//! - resolves each service name to the address the DNS and TCP checks already proved,
//!   so the report can say which address each call used;
//!
//! and an interceptor that keeps the status and headers of every response.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_http_client::{Builder, Connector};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::dns::{DnsFuture, ResolveDns, ResolveDnsError};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use aws_types::region::Region;
use hickory_resolver::proto::rr::RecordType;

use crate::net::dns::{ServerResolver, query_in_order};
use crate::net::handoff::{Handoff, HandoffConnector};

/// Names pinned to the address the data-plane checks proved; anything else (STS, a proxy's
/// name) goes to the host's resolvers as the SDK's own resolver would.
#[derive(Clone, Debug, Default)]
pub struct PinnedResolver {
    pins: Arc<Mutex<HashMap<String, IpAddr>>>,
    system: Arc<Vec<ServerResolverHandle>>,
}

#[derive(Clone)]
struct ServerResolverHandle(ServerResolver);

impl std::fmt::Debug for ServerResolverHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerResolver({})", self.0.server)
    }
}

impl PinnedResolver {
    pub fn new(system: Vec<ServerResolver>) -> Self {
        PinnedResolver {
            pins: Arc::default(),
            system: Arc::new(system.into_iter().map(ServerResolverHandle).collect()),
        }
    }

    pub fn pin(&self, name: &str, ip: IpAddr) {
        if let Ok(mut p) = self.pins.lock() {
            p.insert(name.to_ascii_lowercase(), ip);
        }
    }

    pub fn pinned(&self, name: &str) -> Option<IpAddr> {
        self.pins
            .lock()
            .ok()
            .and_then(|p| p.get(&name.to_ascii_lowercase()).copied())
    }
}

impl PinnedResolver {
    /// `name`'s addresses from whichever server answers first with some (pinned names and
    /// literals as `resolve_dns`): see `dns::query_first_with_addresses`.
    pub async fn resolve_from_any_server(&self, name: &str) -> Result<Vec<IpAddr>, String> {
        if let Some(ip) = self.known(name) {
            return Ok(vec![ip]);
        }
        let servers = self.servers();
        addresses_of(
            name,
            crate::net::dns::query_first_with_addresses(&servers, name, RecordType::A).await,
        )
    }

    /// A pinned name's address, or the name itself when it is an address.
    fn known(&self, name: &str) -> Option<IpAddr> {
        self.pinned(name).or_else(|| name.parse::<IpAddr>().ok())
    }

    fn servers(&self) -> Vec<ServerResolver> {
        self.system.iter().map(|h| h.0.clone()).collect()
    }
}

/// An answer's addresses, or why it has none.
fn addresses_of(name: &str, answer: crate::net::dns::Answer) -> Result<Vec<IpAddr>, String> {
    if answer.addresses.is_empty() {
        Err(format!(
            "{name} did not resolve: {}",
            answer
                .error
                .unwrap_or_else(|| format!("{:?}", answer.outcome))
        ))
    } else {
        Ok(answer.addresses)
    }
}

impl ResolveDns for PinnedResolver {
    fn resolve_dns<'a>(&'a self, name: &'a str) -> DnsFuture<'a> {
        if let Some(ip) = self.known(name) {
            return DnsFuture::ready(Ok(vec![ip]));
        }
        let servers = self.servers();
        DnsFuture::new(async move {
            addresses_of(name, query_in_order(&servers, name, RecordType::A).await)
                .map_err(ResolveDnsError::new)
        })
    }
}

/// Whether `host:port` accepts a TCP connection within `bound` (up to four addresses at once),
/// the name resolved by the first of the system's name servers to answer with addresses. The proof of silence of the calls whose
/// healthy answer in a private subnet is silence: made on TCP alone, so a slow TLS handshake is
/// never taken for silence. Err holds the first answer that was not silence (a refusal, an
/// unreachable route, the resolution's error), None when nothing answered within `bound`.
pub async fn accepts_connection(
    resolver: &PinnedResolver,
    host: &str,
    port: u16,
    bound: Duration,
) -> Result<(), Option<String>> {
    // The first server's answer with addresses, not libc's pick: a silent first name server
    // would otherwise add libc's timeout to a proof bounded by --silence-timeout.
    let addresses = resolver.resolve_from_any_server(host).await.map_err(Some)?;
    // A handful of connections to one name: outside the run's connection bounds.
    let limits = crate::net::limits::Limits::unbounded();
    let attempts = addresses.iter().take(4).map(|ip| {
        crate::net::tcp::connect(&limits, std::net::SocketAddr::new(*ip, port), None, bound)
    });
    let results = futures_util::future::join_all(attempts).await;
    if results
        .iter()
        .any(|c| c.outcome == crate::report::TcpOutcome::Connected)
    {
        return Ok(());
    }
    if results.is_empty() {
        return Err(Some(format!("{host} has no address")));
    }
    // Silence says nothing the bound did not; only an answer (refused, unreachable) is news.
    Err(results
        .iter()
        .filter(|c| c.outcome != crate::report::TcpOutcome::Timeout)
        .find_map(|c| c.error.clone()))
}

/// The HTTP client of every signed call.
/// `handoff`: the run's TLS-check connections its calls may use (see handoff.rs).
pub fn http_client(
    extra_pem: Vec<Vec<u8>>,
    resolver: PinnedResolver,
    handoff: Option<Arc<Handoff>>,
) -> Result<SharedHttpClient, String> {
    client_with_connectors(extra_pem, resolver, handoff, || {})
}

/// `http_client`, calling `on_connector` whenever it builds a connector (what a test counts).
fn client_with_connectors(
    extra_pem: Vec<Vec<u8>>,
    resolver: PinnedResolver,
    handoff: Option<Arc<Handoff>>,
    on_connector: impl Fn() + Send + Sync + 'static,
) -> Result<SharedHttpClient, String> {
    let mut trust = TrustStore::default();
    for (i, pem) in extra_pem.into_iter().enumerate() {
        // The SDK's connector parses these only when it is first built, inside a request, with
        // `expect`: a broken bundle must be refused here, as an error the report carries.
        crate::net::tls::pem_certificates(&pem).map_err(|e| {
            format!(
                "extra CA bundle {} (AWS_CA_BUNDLE, SSL_CERT_FILE) is not a usable PEM bundle: {e}",
                i + 1
            )
        })?;
        trust = trust.with_pem_certificate(pem);
    }
    let tls_context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| format!("TLS context: {e}"))?;
    let pinned = resolver.clone();
    let client = Builder::new().build_with_connector_fn(move |settings, components| {
        on_connector();
        let mut builder = Connector::builder();
        builder.set_connector_settings(settings.cloned());
        if let Some(c) = components {
            builder.set_sleep_impl(c.sleep_impl());
        }
        builder
            .proxy_config(ProxyConfig::from_env())
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .tls_context(tls_context.clone())
            .build_with_resolver(resolver.clone())
    });
    Ok(SharedHttpClient::new(ValidatedOnce {
        inner: client,
        validated: AtomicBool::new(false),
        handoff: handoff.map(|h| (h, pinned)),
    }))
}

/// The HTTP client, validated once. The SDK validates a client's HTTP client whenever a client
/// is made (`Client::from_conf`), and the hyper client validates by building a whole connector
/// and throwing it away: a TLS configuration with every trust root parsed again. The probe
/// makes an SDK client per bucket and per table call (a client is cheap next to a call), so
/// 50 targets built ~200 connectors for nothing; the connectors the calls use are built once
/// per timeout setting and kept by the hyper client.
#[derive(Debug)]
struct ValidatedOnce {
    inner: SharedHttpClient,
    validated: AtomicBool,
    /// The run's handed-over connections, offered each request first.
    handoff: Option<(Arc<Handoff>, PinnedResolver)>,
}

impl HttpClient for ValidatedOnce {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let sdk = self.inner.http_connector(settings, components);
        match &self.handoff {
            Some((handoff, pinned)) => SharedHttpConnector::new(HandoffConnector {
                handoff: handoff.clone(),
                pinned: pinned.clone(),
                sdk,
                read_timeout: settings.read_timeout(),
            }),
            None => sdk,
        }
    }

    fn validate_base_client_config(
        &self,
        components: &RuntimeComponentsBuilder,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        if self.validated.load(Ordering::Acquire) {
            return Ok(());
        }
        self.inner.validate_base_client_config(components, cfg)?;
        self.validated.store(true, Ordering::Release);
        Ok(())
    }

    fn validate_final_config(
        &self,
        components: &RuntimeComponents,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.inner.validate_final_config(components, cfg)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.inner.connector_metadata()
    }
}

/// The endpoint variants the instance's SDKs are configured with, so the probe's calls go to
/// the same names.
#[derive(Clone, Copy, Debug, Default)]
pub struct EndpointFlags {
    pub fips: bool,
    pub dualstack: bool,
}

/// An SdkConfig for the probe's calls: one attempt each (a retry would hide what happened),
/// the probe's timeouts, the credentials the credentials check already loaded. The SDK's clock
/// skew correction is off: it carries the offset one answer taught to the client's next calls,
/// so which call sees the skew would depend on which answer came first; off, every call shows
/// what a request signed by this instance's clock gets (CLOCK_SKEW reads the Date header).
pub fn sdk_config(
    region: &str,
    http: SharedHttpClient,
    credentials: Option<Credentials>,
    timeout: Duration,
    flags: EndpointFlags,
) -> SdkConfig {
    let mut builder = SdkConfig::builder()
        .use_fips(flags.fips)
        .use_dual_stack(flags.dualstack)
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .http_client(http)
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .disable_clock_skew_correction(true)
        .timeout_config(timeouts(timeout, timeout))
        .sleep_impl(
            aws_smithy_async::rt::sleep::default_async_sleep().unwrap_or_else(|| {
                aws_smithy_async::rt::sleep::SharedAsyncSleep::new(
                    aws_smithy_async::rt::sleep::TokioSleep::new(),
                )
            }),
        )
        .time_source(aws_smithy_async::time::SystemTimeSource::new());
    if let Some(c) = credentials {
        builder = builder.credentials_provider(SharedCredentialsProvider::new(c));
    }
    builder.build()
}

fn timeouts(connect: Duration, timeout: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(connect)
        .read_timeout(timeout)
        .operation_attempt_timeout(timeout.saturating_mul(2))
        .operation_timeout(timeout.saturating_mul(2))
        .build()
}

/// The same configuration with a shorter connect wait, for the calls whose healthy answer in a
/// private subnet is silence (STS and the EC2 API have no endpoint there): a connection that
/// does not come within `connect` counts as silence. Once connected, the read and call
/// timeouts are the probe's own.
pub fn with_connect_timeout(sdk: &SdkConfig, connect: Duration, timeout: Duration) -> SdkConfig {
    sdk.to_builder()
        .timeout_config(timeouts(connect.min(timeout), timeout))
        .build()
}

/// What one response looked like on the wire.
#[derive(Clone, Debug, Default)]
pub struct Captured {
    pub status: u16,
    /// Lowercased names; only the headers that show who answered (never auth material).
    pub headers: BTreeMap<String, String>,
}

/// Headers worth keeping: who answered, through what, and with which clock.
pub const KEPT_HEADERS: &[&str] = &[
    "x-amz-request-id",
    "x-amz-id-2",
    "x-amzn-requestid",
    "x-amz-bucket-region",
    "server",
    "via",
    "x-cache",
    "x-squid-error",
    "proxy-agent",
    "date",
    "content-type",
];

#[derive(Clone, Debug, Default)]
pub struct CaptureResponse(pub Arc<Mutex<Option<Captured>>>);

impl CaptureResponse {
    pub fn take(&self) -> Option<Captured> {
        self.0.lock().ok().and_then(|mut g| g.take())
    }

    fn keep(&self, response: &HttpResponse) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(Captured::of(response));
        }
    }

    /// Runs `call` (an S3 or DynamoDB call of the run's clients) with this capture as its
    /// task's slot, which the clients' [`CaptureInTask`] fills.
    pub async fn around<F: std::future::Future>(&self, call: F) -> F::Output {
        CAPTURE_SLOT.scope(self.clone(), call).await
    }
}

tokio::task_local! {
    /// The capture of the call running in this task (set by [`CaptureResponse::around`]).
    static CAPTURE_SLOT: CaptureResponse;
}

/// The response capture, registered once on a client: it keeps each response in the capture
/// of the call that runs in the task ([`CaptureResponse::around`]). A capture added per call
/// (`customize().interceptor(..)`) made the SDK build a config override layer and runtime
/// plugins for each of a 50-target run's 350 calls.
#[derive(Debug)]
pub struct CaptureInTask;

impl Intercept for CaptureInTask {
    fn name(&self) -> &'static str {
        "vpce-probe-capture-in-task"
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // Outside a capture's call (none today) there is nothing to keep.
        let _ = CAPTURE_SLOT.try_with(|capture| capture.keep(context.response()));
        Ok(())
    }
}

impl Captured {
    /// The status and the kept headers of a response.
    pub fn of(response: &HttpResponse) -> Captured {
        let headers = response
            .headers()
            .iter()
            .filter(|(name, _)| KEPT_HEADERS.contains(&name.to_ascii_lowercase().as_str()))
            .map(|(name, value)| (name.to_ascii_lowercase(), value.to_string()))
            .collect();
        Captured {
            status: response.status().as_u16(),
            headers,
        }
    }
}

/// The credential provider's name. aws-credential-types exposes it only through `Debug`
/// (`provider_name: "..."`), so it is read from there; the secret is redacted by that impl.
pub fn provider_name(credentials: &Credentials) -> String {
    let debug = format!("{credentials:?}");
    debug
        .split("provider_name: \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("unknown")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::client::http::{HttpConnector, HttpConnectorFuture};
    use aws_smithy_runtime_api::client::orchestrator::HttpRequest;

    #[test]
    fn provider_name_is_read_and_secrets_are_not() {
        let c = Credentials::new("AKIDEXAMPLE", "very-secret", None, None, "Environment");
        assert_eq!(provider_name(&c), "Environment");
        assert!(!format!("{c:?}").contains("very-secret"));
    }

    #[test]
    fn clients_made_from_one_config_build_no_connector_each() {
        let built = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = built.clone();
        let http = client_with_connectors(
            Vec::new(),
            PinnedResolver::new(Vec::new()),
            None,
            move || {
                counter.fetch_add(1, Ordering::SeqCst);
            },
        )
        .unwrap();
        let sdk = sdk_config(
            "eu-west-1",
            http,
            None,
            Duration::from_secs(1),
            EndpointFlags::default(),
        );
        // As many clients as 50 targets make: one per bucket, one per table call.
        for _ in 0..50 {
            let _ = aws_sdk_s3::Client::new(&sdk);
            let _ = aws_sdk_dynamodb::Client::new(&sdk);
        }
        assert_eq!(built.load(Ordering::SeqCst), 1, "connectors built");
    }

    /// Answers every request itself, naming the host it was sent to in `x-amz-id-2`.
    #[derive(Debug)]
    struct EchoHost;

    impl HttpConnector for EchoHost {
        fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
            let host = request
                .uri()
                .parse::<http::Uri>()
                .ok()
                .and_then(|u| u.host().map(str::to_string))
                .unwrap_or_default();
            HttpConnectorFuture::ready(Ok(HttpResponse::new(
                200.try_into().unwrap(),
                aws_smithy_types::body::SdkBody::empty(),
            )
            .tap_header("x-amz-id-2", &host)))
        }
    }

    trait TapHeader {
        fn tap_header(self, name: &'static str, value: &str) -> Self;
    }

    impl TapHeader for HttpResponse {
        fn tap_header(mut self, name: &'static str, value: &str) -> Self {
            self.headers_mut().insert(name, value.to_string());
            self
        }
    }

    #[tokio::test]
    async fn each_call_keeps_its_own_response_in_one_task() {
        let http = aws_smithy_runtime_api::client::http::http_client_fn(|_, _| {
            SharedHttpConnector::new(EchoHost)
        });
        let credentials = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let sdk = sdk_config(
            "eu-west-1",
            http,
            Some(credentials),
            Duration::from_secs(1),
            EndpointFlags::default(),
        );
        let conf = aws_sdk_s3::config::Builder::from(&sdk).interceptor(CaptureInTask);
        let client = aws_sdk_s3::Client::from_conf(conf.build());
        let (first, second) = (CaptureResponse::default(), CaptureResponse::default());
        // Two calls polled by one task, as a target's calls are (tokio::join!).
        let (a, b) = tokio::join!(
            first.around(client.head_bucket().bucket("bucket-a").send()),
            second.around(client.head_bucket().bucket("bucket-b").send()),
        );
        assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
        let host =
            |c: &CaptureResponse| c.take().and_then(|c| c.headers.get("x-amz-id-2").cloned());
        assert_eq!(
            host(&first).as_deref(),
            Some("bucket-a.s3.eu-west-1.amazonaws.com")
        );
        assert_eq!(
            host(&second).as_deref(),
            Some("bucket-b.s3.eu-west-1.amazonaws.com")
        );
        // A call outside any capture's scope is answered as usual and kept nowhere.
        assert!(client.head_bucket().bucket("bucket-c").send().await.is_ok());
        assert!(first.take().is_none() && second.take().is_none());
    }

    #[tokio::test]
    async fn pinned_names_resolve_to_their_pin() {
        let r = PinnedResolver::new(Vec::new());
        r.pin("S3.eu-west-1.amazonaws.com", "192.0.2.7".parse().unwrap());
        let got = r.resolve_dns("s3.eu-west-1.amazonaws.com").await.unwrap();
        assert_eq!(got, vec!["192.0.2.7".parse::<IpAddr>().unwrap()]);
        assert!(r.resolve_dns("unpinned.example").await.is_err());
    }
}
