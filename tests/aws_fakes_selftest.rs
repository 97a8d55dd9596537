//! Proves that moto behind the TLS front speaks AWS to the real AWS SDK for Rust (the
//! probe's own client): pass-through calls, canned AWS errors, redirects, clock skew,
//! account-based DynamoDB endpoints. Needs moto (sudo bash scripts/install-deps.sh).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step stops the test

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::dns::{DnsFuture, ResolveDns};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use aws_types::region::Region;
use rustls_pki_types::ServerName;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const REGION: &str = "eu-west-1";

fn front_ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 95, last))
}

/// Sends every name the SDK looks up to the front.
#[derive(Clone, Debug)]
struct ToFront(IpAddr);

impl ResolveDns for ToFront {
    fn resolve_dns<'a>(&'a self, _name: &'a str) -> DnsFuture<'a> {
        DnsFuture::ready(Ok(vec![self.0]))
    }
}

/// The SDK's own hyper/rustls client, trusting only the test CA and resolving every name to
/// `ip`.
fn sdk_http_client(ca: &TestCa, ip: IpAddr) -> SharedHttpClient {
    let trust = TrustStore::empty().with_pem_certificate(ca.cert_pem().into_bytes());
    let tls_context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("TLS context");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(tls_context)
        .build_with_resolver(ToFront(ip))
}

fn sdk_config(http: SharedHttpClient, credentials: Credentials) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(http)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(20))
                .build(),
        )
        .build()
}

fn static_credentials() -> Credentials {
    Credentials::new("testing", "testing", None, None, "selftest")
}

struct Fixture {
    ca: TestCa,
    front: FrontServer,
    config: SdkConfig,
}

fn fixture(last: u8, options: FrontOptions) -> Fixture {
    fixture_with(last, options, static_credentials())
}

fn fixture_with(last: u8, options: FrontOptions, credentials: Credentials) -> Fixture {
    let ca = TestCa::new("vpce-probe fake AWS CA");
    let leaf = ca.issue(&[
        "*.s3.eu-west-1.amazonaws.com",
        "s3.eu-west-1.amazonaws.com",
        "dynamodb.eu-west-1.amazonaws.com",
        "*.ddb.eu-west-1.amazonaws.com",
        "sts.eu-west-1.amazonaws.com",
        "sts.amazonaws.com",
    ]);
    let ip = front_ip(last);
    let front = start_front(SocketAddr::new(ip, 443), &leaf, moto().addr, options);
    let config = sdk_config(sdk_http_client(&ca, ip), credentials);
    Fixture { ca, front, config }
}

fn rule(
    host: Option<&str>,
    method: Option<&str>,
    path_prefix: Option<&str>,
    response: CannedResponse,
) -> FrontRule {
    FrontRule {
        host: host.map(str::to_string),
        method: method.map(str::to_string),
        path_prefix: path_prefix.map(str::to_string),
        amz_target_contains: None,
        body_contains: None,
        response,
    }
}

fn has_request(front: &FrontServer, prefix: &str) -> bool {
    front.requests().iter().any(|r| r.starts_with(prefix))
}

/// Keeps the headers of the last response the SDK received.
#[derive(Clone, Debug, Default)]
struct LastHeaders(Arc<Mutex<Vec<(String, String)>>>);

impl LastHeaders {
    fn get(&self, name: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }
}

impl Intercept for LastHeaders {
    fn name(&self) -> &'static str {
        "selftest-last-headers"
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let headers = context
            .response()
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        *self.0.lock().unwrap() = headers;
        Ok(())
    }
}

// ---------------------------------------------------------------- pass-through

#[tokio::test]
async fn s3_head_list_get_pass_through_to_moto() {
    let m = moto();
    m.create_bucket("selftest-pass", REGION);
    m.put_object("selftest-pass", "hello.txt", b"hello from moto", REGION);
    let f = fixture(1, FrontOptions::default());
    let s3 = aws_sdk_s3::Client::new(&f.config);

    s3.head_bucket()
        .bucket("selftest-pass")
        .send()
        .await
        .expect("HeadBucket");
    let list = s3
        .list_objects_v2()
        .bucket("selftest-pass")
        .send()
        .await
        .expect("ListObjectsV2");
    let keys: Vec<&str> = list.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["hello.txt"]);
    let got = s3
        .get_object()
        .bucket("selftest-pass")
        .key("hello.txt")
        .send()
        .await
        .expect("GetObject");
    let body = got.body.collect().await.expect("GetObject body");
    assert_eq!(body.into_bytes().as_ref(), b"hello from moto");

    let requests = f.front.requests();
    assert!(
        requests[0]
            .starts_with("HEAD selftest-pass.s3.eu-west-1.amazonaws.com / -> 200 (upstream)"),
        "{requests:?}"
    );
    assert!(
        requests[1].starts_with("GET selftest-pass.s3.eu-west-1.amazonaws.com /?list-type=2")
            && requests[1].ends_with("-> 200 (upstream)"),
        "{requests:?}"
    );
    assert!(
        requests[2].starts_with("GET selftest-pass.s3.eu-west-1.amazonaws.com /hello.txt")
            && requests[2].ends_with("-> 200 (upstream)"),
        "{requests:?}"
    );
    assert_eq!(f.front.connections(), 1, "keep-alive: one TLS connection");
}

#[tokio::test]
async fn s3_put_object_through_the_front_reaches_moto() {
    let m = moto();
    m.create_bucket("selftest-put", REGION);
    let f = fixture(12, FrontOptions::default());
    let s3 = aws_sdk_s3::Client::new(&f.config);
    s3.put_object()
        .bucket("selftest-put")
        .key("canary.txt")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(
            b"canary body",
        ))
        .send()
        .await
        .expect("PutObject");
    let got = s3
        .get_object()
        .bucket("selftest-put")
        .key("canary.txt")
        .send()
        .await
        .expect("GetObject");
    let body = got.body.collect().await.expect("body").into_bytes();
    assert_eq!(body.as_ref(), b"canary body");
    assert!(
        has_request(
            &f.front,
            "PUT selftest-put.s3.eu-west-1.amazonaws.com /canary.txt"
        ),
        "{:?}",
        f.front.requests()
    );
}

#[tokio::test]
async fn dynamodb_describe_table_passes_through() {
    let m = moto();
    m.create_table("selftest_table", REGION);
    m.put_item("selftest_table", "canary", REGION);
    let f = fixture(2, FrontOptions::default());
    let ddb = aws_sdk_dynamodb::Client::new(&f.config);
    let out = ddb
        .describe_table()
        .table_name("selftest_table")
        .send()
        .await
        .expect("DescribeTable");
    let table = out.table().expect("table description");
    assert_eq!(table.table_name(), Some("selftest_table"));
    assert_eq!(
        table.table_status(),
        Some(&aws_sdk_dynamodb::types::TableStatus::Active)
    );
    let item = ddb
        .get_item()
        .table_name("selftest_table")
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("canary".into()),
        )
        .send()
        .await
        .expect("GetItem");
    assert!(item.item().is_some(), "seeded item found");
    assert!(
        has_request(
            &f.front,
            "POST dynamodb.eu-west-1.amazonaws.com / -> 200 (upstream)"
        ),
        "{:?}",
        f.front.requests()
    );
}

#[tokio::test]
async fn sts_get_caller_identity_passes_through() {
    let f = fixture(3, FrontOptions::default());
    let sts = aws_sdk_sts::Client::new(&f.config);
    let who = sts
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity");
    assert_eq!(who.account(), Some(MOTO_ACCOUNT_ID));
    assert!(
        has_request(
            &f.front,
            "POST sts.eu-west-1.amazonaws.com / -> 200 (upstream)"
        ),
        "{:?}",
        f.front.requests()
    );
}

// ---------------------------------------------------------------- canned answers

#[tokio::test]
async fn canned_s3_access_denied_on_head_is_a_bodiless_403() {
    moto().create_bucket("selftest-deny", REGION);
    let options = FrontOptions {
        rules: vec![rule(
            Some("selftest-deny.s3.eu-west-1.amazonaws.com"),
            Some("HEAD"),
            None,
            CannedResponse::s3_error(403, "AccessDenied", "Access Denied"),
        )],
        ..FrontOptions::default()
    };
    let f = fixture(4, options);
    let s3 = aws_sdk_s3::Client::new(&f.config);

    let err = s3
        .head_bucket()
        .bucket("selftest-deny")
        .send()
        .await
        .expect_err("HeadBucket must be denied");
    let raw = err.raw_response().expect("a service error with a response");
    assert_eq!(raw.status().as_u16(), 403);
    assert_eq!(
        raw.body().bytes(),
        Some(&b""[..]),
        "HEAD answers carry no body"
    );
    assert_eq!(raw.headers().get("server"), Some("AmazonS3"));
    assert!(raw.headers().get("x-amz-request-id").is_some());
    assert!(raw.headers().get("x-amz-id-2").is_some());
    assert!(raw.headers().get("date").is_some());
    assert!(err.as_service_error().is_some(), "a service error: {err:?}");

    // The same kept-alive connection still frames the next exchange right.
    let list = s3
        .list_objects_v2()
        .bucket("selftest-deny")
        .send()
        .await
        .expect("ListObjectsV2 after the canned HEAD");
    assert_eq!(list.key_count(), Some(0));
    let requests = f.front.requests();
    assert_eq!(
        requests[0],
        "HEAD selftest-deny.s3.eu-west-1.amazonaws.com / -> 403 (canned)"
    );
    assert!(requests[1].ends_with("-> 200 (upstream)"), "{requests:?}");
    assert_eq!(f.front.connections(), 1);
}

#[tokio::test]
async fn canned_s3_access_denied_on_get_carries_the_message() {
    let message = "User: arn:aws:sts::123456789012:assumed-role/app/i-0abc is not authorized to \
                   perform: s3:GetObject on resource: \"arn:aws:s3:::selftest-secret/secret.txt\" \
                   because no VPC endpoint policy allows the s3:GetObject action";
    let options = FrontOptions {
        rules: vec![rule(
            None,
            Some("GET"),
            Some("/secret.txt"),
            CannedResponse::s3_error(403, "AccessDenied", message),
        )],
        ..FrontOptions::default()
    };
    let f = fixture(5, options);
    let s3 = aws_sdk_s3::Client::new(&f.config);
    let err = s3
        .get_object()
        .bucket("selftest-secret")
        .key("secret.txt")
        .send()
        .await
        .expect_err("GetObject must be denied");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    let service = err.into_service_error();
    assert_eq!(service.code(), Some("AccessDenied"));
    assert_eq!(service.message(), Some(message));
}

#[tokio::test]
async fn canned_dynamodb_access_denied_is_parsed_by_the_sdk() {
    moto().create_table("selftest_denied", REGION);
    let message = "User: arn:aws:sts::123456789012:assumed-role/app/i-0abc is not authorized to \
                   perform: dynamodb:DescribeTable on resource: \
                   arn:aws:dynamodb:eu-west-1:123456789012:table/selftest_denied because no VPC \
                   endpoint policy allows the dynamodb:DescribeTable action";
    let options = FrontOptions {
        rules: vec![FrontRule {
            amz_target_contains: Some("DescribeTable".into()),
            ..FrontRule::any(CannedResponse::dynamodb_error(
                400,
                "AccessDeniedException",
                message,
            ))
        }],
        ..FrontOptions::default()
    };
    let f = fixture(6, options);
    let ddb = aws_sdk_dynamodb::Client::new(&f.config);
    let err = ddb
        .describe_table()
        .table_name("selftest_denied")
        .send()
        .await
        .expect_err("DescribeTable must be denied");
    let raw = err.raw_response().expect("raw response");
    assert_eq!(raw.status().as_u16(), 400);
    assert!(raw.headers().get("x-amzn-requestid").is_some());
    let service = err.into_service_error();
    assert_eq!(service.code(), Some("AccessDeniedException"));
    assert_eq!(service.message(), Some(message));

    // Other operations still reach moto.
    ddb.list_tables().send().await.expect("ListTables");
    let requests = f.front.requests();
    assert_eq!(
        requests,
        [
            "POST dynamodb.eu-west-1.amazonaws.com / -> 400 (canned)",
            "POST dynamodb.eu-west-1.amazonaws.com / -> 200 (upstream)",
        ]
    );
}

#[tokio::test]
async fn wrong_region_301_exposes_the_bucket_region() {
    let options = FrontOptions {
        rules: vec![rule(
            Some("selftest-elsewhere.s3.eu-west-1.amazonaws.com"),
            None,
            None,
            CannedResponse::s3_wrong_region("selftest-elsewhere", "eu-central-1"),
        )],
        ..FrontOptions::default()
    };
    let f = fixture(7, options);
    let s3 = aws_sdk_s3::Client::new(&f.config);

    let err = s3
        .head_bucket()
        .bucket("selftest-elsewhere")
        .send()
        .await
        .expect_err("HeadBucket must be redirected");
    let raw = err.raw_response().expect("raw response");
    assert_eq!(raw.status().as_u16(), 301);
    assert_eq!(
        raw.headers().get("x-amz-bucket-region"),
        Some("eu-central-1")
    );
    assert_eq!(raw.body().bytes(), Some(&b""[..]));

    let err = s3
        .list_objects_v2()
        .bucket("selftest-elsewhere")
        .send()
        .await
        .expect_err("ListObjectsV2 must be redirected");
    let raw = err.raw_response().expect("raw response");
    assert_eq!(raw.status().as_u16(), 301);
    assert_eq!(
        raw.headers().get("x-amz-bucket-region"),
        Some("eu-central-1")
    );
    let body = String::from_utf8_lossy(raw.body().bytes().unwrap_or_default()).into_owned();
    assert!(
        body.contains("<Endpoint>selftest-elsewhere.s3.eu-central-1.amazonaws.com</Endpoint>"),
        "{body}"
    );
    assert_eq!(err.into_service_error().code(), Some("PermanentRedirect"));
}

#[tokio::test]
async fn date_offset_shifts_every_date_and_extra_headers_are_added() {
    moto().create_bucket("selftest-skew", REGION);
    const OFFSET: i64 = -1800;
    let options = FrontOptions {
        rules: vec![rule(
            None,
            Some("GET"),
            Some("/denied"),
            CannedResponse::s3_error(403, "AccessDenied", "Access Denied"),
        )],
        date_offset_secs: OFFSET,
        extra_headers: vec![("Via".into(), "1.1 squid".into())],
        ..FrontOptions::default()
    };
    let f = fixture(8, options);
    let headers = LastHeaders::default();
    let conf = aws_sdk_s3::config::Builder::from(&f.config)
        .interceptor(headers.clone())
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(conf);

    let skew_of = |date: &str| -> i64 {
        let t = httpdate::parse_http_date(date).expect("HTTP date");
        let now = SystemTime::now();
        match t.duration_since(now) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        }
    };

    s3.head_bucket()
        .bucket("selftest-skew")
        .send()
        .await
        .expect("HeadBucket (upstream)");
    let date = headers.get("date").expect("Date from upstream");
    assert!(
        (skew_of(&date) - OFFSET).abs() <= 10,
        "upstream Date {date}"
    );
    assert_eq!(headers.get("via").as_deref(), Some("1.1 squid"));

    let err = s3
        .get_object()
        .bucket("selftest-skew")
        .key("denied")
        .send()
        .await
        .expect_err("canned");
    let raw = err.raw_response().expect("raw");
    let date = raw
        .headers()
        .get("date")
        .expect("Date from canned")
        .to_string();
    assert!((skew_of(&date) - OFFSET).abs() <= 10, "canned Date {date}");
    assert_eq!(raw.headers().get("via"), Some("1.1 squid"));
}

#[tokio::test]
async fn host_rewrite_serves_the_account_based_dynamodb_endpoint() {
    moto().create_table("selftest_account", REGION);
    let options = FrontOptions {
        host_rewrites: vec![(
            "ddb.eu-west-1.amazonaws.com".into(),
            "dynamodb.eu-west-1.amazonaws.com".into(),
        )],
        ..FrontOptions::default()
    };
    let credentials = Credentials::builder()
        .access_key_id("testing")
        .secret_access_key("testing")
        .account_id(MOTO_ACCOUNT_ID)
        .provider_name("selftest")
        .build();
    let f = fixture_with(9, options, credentials);
    let conf = aws_sdk_dynamodb::config::Builder::from(&f.config)
        .account_id_endpoint_mode(aws_types::endpoint_config::AccountIdEndpointMode::Required)
        .build();
    let ddb = aws_sdk_dynamodb::Client::from_conf(conf);
    let out = ddb
        .describe_table()
        .table_name("selftest_account")
        .send()
        .await
        .expect("DescribeTable on the account-based endpoint");
    assert_eq!(
        out.table().and_then(|t| t.table_name()),
        Some("selftest_account")
    );
    assert_eq!(
        f.front.requests(),
        ["POST 123456789012.ddb.eu-west-1.amazonaws.com / -> 200 (upstream)"]
    );
}

#[tokio::test]
async fn healthy_target_rules_answer_the_probes_calls_and_nothing_else() {
    moto().create_table("selftest_other_table", REGION);
    let options = FrontOptions {
        rules: healthy_target_rules("selftest-canned-", "selftest-canned-", REGION),
        host_rewrites: vec![(
            "ddb.eu-west-1.amazonaws.com".into(),
            "dynamodb.eu-west-1.amazonaws.com".into(),
        )],
        ..FrontOptions::default()
    };
    let f = fixture(13, options);
    let s3 = aws_sdk_s3::Client::new(&f.config);
    let bucket = "selftest-canned-07";

    let head = s3
        .head_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("HeadBucket");
    assert_eq!(head.bucket_region(), Some(REGION));
    let location = s3
        .get_bucket_location()
        .bucket(bucket)
        .send()
        .await
        .expect("GetBucketLocation");
    assert_eq!(
        location.location_constraint().map(|c| c.as_str()),
        Some(REGION)
    );
    // botocore sends GetBucketLocation path-style whatever its addressing style.
    let path_style = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&f.config)
            .force_path_style(true)
            .build(),
    );
    let location = path_style
        .get_bucket_location()
        .bucket(bucket)
        .send()
        .await
        .expect("GetBucketLocation, path-style");
    assert_eq!(
        location.location_constraint().map(|c| c.as_str()),
        Some(REGION)
    );
    let list = s3
        .list_objects_v2()
        .bucket(bucket)
        .max_keys(1)
        .send()
        .await
        .expect("ListObjectsV2");
    assert_eq!(list.key_count(), Some(1));
    let got = s3
        .get_object()
        .bucket(bucket)
        .key(CANNED_OBJECT_KEY)
        .range("bytes=0-15")
        .send()
        .await
        .expect("GetObject");
    assert_eq!(got.content_length(), Some(16));
    let body = got.body.collect().await.expect("body").into_bytes();
    assert_eq!(body.as_ref(), b"hello from the l");

    let ddb = aws_sdk_dynamodb::Client::new(&f.config);
    let account = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&f.config)
            .endpoint_url("https://123456789012.ddb.eu-west-1.amazonaws.com")
            .build(),
    );
    for client in [&ddb, &account] {
        let out = client
            .describe_table()
            .table_name("selftest-canned-table")
            .send()
            .await
            .expect("DescribeTable");
        assert_eq!(
            out.table().and_then(|t| t.table_status()),
            Some(&aws_sdk_dynamodb::types::TableStatus::Active)
        );
    }
    let item = ddb
        .get_item()
        .table_name("selftest-canned-table")
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("id-1".into()),
        )
        .send()
        .await
        .expect("GetItem");
    assert!(item.item().is_some());

    // Other buckets, other keys and other tables are the emulator's.
    let err = s3
        .head_bucket()
        .bucket("selftest-uncanned")
        .send()
        .await
        .expect_err("an unknown bucket");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
    let err = s3
        .get_object()
        .bucket(bucket)
        .key("other.txt")
        .send()
        .await
        .expect_err("a key the rules do not answer");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
    ddb.describe_table()
        .table_name("selftest_other_table")
        .send()
        .await
        .expect("DescribeTable of moto's table");

    let requests = f.front.requests();
    let canned = requests.iter().filter(|r| r.ends_with("(canned)")).count();
    let upstream = requests
        .iter()
        .filter(|r| r.ends_with("(upstream)"))
        .count();
    assert_eq!((canned, upstream), (8, 3), "{requests:?}");
    assert!(
        requests.contains(
            &"GET s3.eu-west-1.amazonaws.com /selftest-canned-07/?location -> 200 (canned)"
                .to_string()
        ),
        "{requests:?}"
    );
    assert!(
        requests[0] == "HEAD selftest-canned-07.s3.eu-west-1.amazonaws.com / -> 200 (canned)",
        "{requests:?}"
    );
}

// ---------------------------------------------------------------- raw HTTP through the front

async fn raw_client(
    f: &Fixture,
    last: u8,
    sni: &str,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(SocketAddr::new(front_ip(last), 443))
        .await
        .expect("connect to front");
    TlsConnector::from(f.ca.client_config())
        .connect(ServerName::try_from(sni.to_string()).unwrap(), tcp)
        .await
        .expect("TLS handshake with front")
}

/// Reads one response (Content-Length framed, or none for HEAD); returns (head, body).
async fn raw_response<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
    is_head: bool,
) -> (String, Vec<u8>) {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .expect("response in time")
            .expect("read");
        assert!(
            n > 0,
            "front closed early: {:?}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end);
    let len = if is_head {
        0
    } else {
        head.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().unwrap())
            })
            .expect("Content-Length")
    };
    while buf.len() < len {
        let mut chunk = [0u8; 8192];
        let n = s.read(&mut chunk).await.expect("read body");
        assert!(n > 0, "front closed mid-body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf.drain(..len).collect();
    (head, body)
}

#[tokio::test]
async fn chunked_request_bodies_and_keep_alive_pass_through() {
    moto().create_bucket("selftest-raw", REGION);
    let f = fixture(10, FrontOptions::default());
    let host = "selftest-raw.s3.eu-west-1.amazonaws.com";
    // moto does not check signatures, but answers 403 to anonymous reads of private objects
    // as S3 does; this header makes it see the caller "testing".
    const AUTH: &str = "Authorization: AWS4-HMAC-SHA256 \
        Credential=testing/20260101/eu-west-1/s3/aws4_request, SignedHeaders=host, \
        Signature=0000\r\n";
    let mut s = raw_client(&f, 10, host).await;
    let mut buf = Vec::new();

    let put = format!(
        "PUT /chunked.txt HTTP/1.1\r\nHost: {host}\r\n{AUTH}Transfer-Encoding: chunked\r\n\r\n\
         6\r\nhello \r\n7\r\nchunked\r\n0\r\n\r\n"
    );
    s.write_all(put.as_bytes()).await.unwrap();
    let (head, _) = raw_response(&mut s, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("Connection: keep-alive"), "{head}");

    s.write_all(format!("GET /chunked.txt HTTP/1.1\r\nHost: {host}\r\n{AUTH}\r\n").as_bytes())
        .await
        .unwrap();
    let (head, body) = raw_response(&mut s, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"hello chunked");

    s.write_all(
        format!("HEAD /chunked.txt HTTP/1.1\r\nHost: {host}\r\n{AUTH}Connection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let (head, _) = raw_response(&mut s, &mut buf, true).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("Content-Length: 13"), "{head}");
    assert!(head.contains("Connection: close"), "{head}");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert!(
        rest.is_empty() && buf.is_empty(),
        "nothing after a HEAD answer"
    );

    assert_eq!(
        f.front.requests(),
        [
            format!("PUT {host} /chunked.txt -> 200 (upstream)"),
            format!("GET {host} /chunked.txt -> 200 (upstream)"),
            format!("HEAD {host} /chunked.txt -> 200 (upstream)"),
        ]
    );
    assert_eq!(f.front.connections(), 1);
}

#[tokio::test]
async fn bad_requests_and_a_dead_upstream_get_errors_not_panics() {
    // A port nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let ca = TestCa::new("vpce-probe fake AWS CA");
    let leaf = ca.issue(&["*.s3.eu-west-1.amazonaws.com"]);
    let ip = front_ip(11);
    let front = start_front(
        SocketAddr::new(ip, 443),
        &leaf,
        dead,
        FrontOptions::default(),
    );
    let f = Fixture {
        config: sdk_config(sdk_http_client(&ca, ip), static_credentials()),
        ca,
        front,
    };
    let host = "selftest-dead.s3.eu-west-1.amazonaws.com";

    let mut s = raw_client(&f, 11, host).await;
    let mut buf = Vec::new();
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (head, _) = raw_response(&mut s, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    assert_eq!(f.front.requests(), [format!("GET {host} / -> 502 (error)")]);

    let mut s = raw_client(&f, 11, host).await;
    let mut buf = Vec::new();
    s.write_all(b"NONSENSE\r\n\r\n").await.unwrap();
    let (head, _) = raw_response(&mut s, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");

    let mut s = raw_client(&f, 11, host).await;
    let mut buf = Vec::new();
    s.write_all(
        format!("PUT /x HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let (head, _) = raw_response(&mut s, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");

    // The front still serves after all that.
    let s3 = aws_sdk_s3::Client::new(&f.config);
    let err = s3
        .head_bucket()
        .bucket("selftest-dead")
        .send()
        .await
        .expect_err("dead upstream");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(502));
}
