//! moto (`moto_server`, installed by scripts/install-deps.sh): S3, DynamoDB, STS, IAM and
//! EC2 on one plain-HTTP port, routed by the Host header (or by the SigV4 credential scope
//! when the Host is an address). One per test binary, started on first use.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use aws_smithy_types::error::display::DisplayErrorContext;

/// Where scripts/install-deps.sh puts moto.
pub const MOTO_DEFAULT_PATH: &str = "/opt/vpce-probe-test/venv/bin/moto_server";
/// The account moto answers for (STS GetCallerIdentity, ARNs).
pub const MOTO_ACCOUNT_ID: &str = "123456789012";

const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

pub struct MotoServer {
    /// 127.0.0.1:<free port>
    pub addr: SocketAddr,
}

static MOTO: OnceLock<Result<MotoServer, String>> = OnceLock::new();

/// The moto of this test binary, started on first use from $VPCE_PROBE_MOTO or
/// /opt/vpce-probe-test/venv/bin/moto_server on 127.0.0.1:<free port>. A watchdog kills it
/// when the test process is gone. Its output is discarded unless VPCE_PROBE_MOTO_LOG is set
/// ("1" or "stderr": inherited; anything else: a file path to append to).
/// Panics (in every caller) if it cannot be started.
pub fn moto() -> &'static MotoServer {
    match MOTO.get_or_init(start_moto) {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    }
}

fn moto_path() -> PathBuf {
    match std::env::var_os("VPCE_PROBE_MOTO") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(MOTO_DEFAULT_PATH),
    }
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

fn output() -> (Stdio, Stdio) {
    match std::env::var("VPCE_PROBE_MOTO_LOG") {
        Ok(v) if v == "1" || v.eq_ignore_ascii_case("stderr") => {
            (Stdio::inherit(), Stdio::inherit())
        }
        Ok(v) if !v.is_empty() => {
            let open = || {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&v)
            };
            match (open(), open()) {
                (Ok(a), Ok(b)) => (Stdio::from(a), Stdio::from(b)),
                _ => {
                    eprintln!("[moto] cannot open VPCE_PROBE_MOTO_LOG={v}; inheriting stderr");
                    (Stdio::inherit(), Stdio::inherit())
                }
            }
        }
        _ => (Stdio::null(), Stdio::null()),
    }
}

/// Whether moto answers HTTP on `addr`.
fn answers(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    if s.write_all(
        b"GET /moto-api/data.json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .is_err()
    {
        return false;
    }
    let mut first = [0u8; 12];
    let mut got = 0;
    while got < first.len() {
        match s.read(&mut first[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    first[..got].starts_with(b"HTTP/1.") && got >= 12 && &first[9..12] == b"200"
}

fn start_moto() -> Result<MotoServer, String> {
    let path = moto_path();
    if !path.exists() {
        return Err(format!(
            "moto is not installed: run sudo bash scripts/install-deps.sh ({} does not exist; \
             set VPCE_PROBE_MOTO to use another moto_server)",
            path.display()
        ));
    }
    let mut last_error = String::new();
    // A fresh port per attempt: another process may take the free port before moto binds it.
    for _attempt in 0..3 {
        let port = free_port()?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let (out, err) = output();
        let mut child = Command::new(&path)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| {
                format!(
                    "moto is not installed: run sudo bash scripts/install-deps.sh \
                     (cannot run {}: {e})",
                    path.display()
                )
            })?;
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let ready = loop {
            if answers(addr) {
                break Ok(());
            }
            match child.try_wait() {
                Ok(Some(status)) => break Err(format!("moto exited during startup: {status}")),
                Ok(None) => {}
                Err(e) => break Err(format!("cannot watch moto: {e}")),
            }
            if Instant::now() >= deadline {
                break Err(format!(
                    "moto did not answer on {addr} within {STARTUP_TIMEOUT:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        match ready {
            Ok(()) => {
                spawn_watchdog(&child, port)?;
                // Never waited on: the watchdog ends it, and the kernel reaps it with us.
                std::mem::forget(child);
                return Ok(MotoServer { addr });
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                last_error = e;
            }
        }
    }
    Err(format!(
        "moto could not be started from {} ({last_error}); if moto is not installed: run sudo \
         bash scripts/install-deps.sh; set VPCE_PROBE_MOTO_LOG=1 to see moto's output",
        path.display()
    ))
}

/// A `sh` loop that kills moto once this test process is gone (checked every 0.5 s): statics
/// are never dropped, and the process may end by panic or signal. It only kills a process
/// that still looks like this moto (its `-p PORT`), so a recycled pid is never hit.
fn spawn_watchdog(child: &Child, port: u16) -> Result<(), String> {
    const SCRIPT: &str = r#"
parent=$1 moto=$2 port=$3
is_moto() { { tr '\0' ' ' <"/proc/$moto/cmdline"; } 2>/dev/null | grep -q -- "-p $port "; }
while kill -0 "$parent" 2>/dev/null; do sleep 0.5; done
if is_moto; then
  kill "$moto" 2>/dev/null
  sleep 2
  is_moto && kill -9 "$moto" 2>/dev/null
fi
exit 0
"#;
    Command::new("sh")
        .args([
            "-c",
            SCRIPT,
            "vpce-probe-moto-watchdog",
            &std::process::id().to_string(),
            &child.id().to_string(),
            &port.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(|_| ())
        .map_err(|e| format!("cannot start the moto watchdog (sh): {e}"))
}

/// Runs `f`'s future to completion on a fresh current-thread runtime on its own thread, so
/// that it works from plain #[test] fns and from inside a tokio runtime alike.
fn block_on<F, Fut, T>(f: F) -> T
where
    F: FnOnce() -> Fut + Send,
    Fut: std::future::Future<Output = T>,
    T: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("moto seeding: build runtime");
            rt.block_on(f())
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

fn credentials() -> Credentials {
    Credentials::new("testing", "testing", None, None, "moto-seed")
}

impl MotoServer {
    /// "http://127.0.0.1:PORT"
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .credentials_provider(credentials())
            .endpoint_url(self.endpoint())
            .force_path_style(true)
            // Plain HTTP, no proxy from the environment.
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    fn dynamodb(&self, region: &str) -> aws_sdk_dynamodb::Client {
        let conf = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new(region.to_string()))
            .credentials_provider(credentials())
            .endpoint_url(self.endpoint())
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        aws_sdk_dynamodb::Client::from_conf(conf)
    }

    /// Creates `name` in `region` (LocationConstraint unless us-east-1); fine if it exists.
    pub fn create_bucket(&self, name: &str, region: &str) {
        let client = self.s3(region);
        block_on(|| async move {
            let mut req = client.create_bucket().bucket(name);
            if region != "us-east-1" {
                req = req.create_bucket_configuration(
                    CreateBucketConfiguration::builder()
                        .location_constraint(BucketLocationConstraint::from(region))
                        .build(),
                );
            }
            match req.send().await {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.code(),
                        Some("BucketAlreadyOwnedByYou") | Some("BucketAlreadyExists")
                    ) => {}
                Err(e) => panic!(
                    "moto: create bucket {name} in {region}: {}",
                    DisplayErrorContext(&e)
                ),
            }
        })
    }

    pub fn put_object(&self, bucket: &str, key: &str, body: &[u8], region: &str) {
        let client = self.s3(region);
        let body = body.to_vec();
        block_on(|| async move {
            if let Err(e) = client
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(ByteStream::from(body))
                .send()
                .await
            {
                panic!("moto: put s3://{bucket}/{key}: {}", DisplayErrorContext(&e));
            }
        })
    }

    /// The body of s3://bucket/key; panics when it is missing.
    pub fn get_object(&self, bucket: &str, key: &str, region: &str) -> Vec<u8> {
        let client = self.s3(region);
        block_on(|| async move {
            match client.get_object().bucket(bucket).key(key).send().await {
                Ok(o) => o
                    .body
                    .collect()
                    .await
                    .map(|b| b.into_bytes().to_vec())
                    .unwrap_or_else(|e| panic!("moto: read s3://{bucket}/{key}: {e}")),
                Err(e) => panic!("moto: get s3://{bucket}/{key}: {}", DisplayErrorContext(&e)),
            }
        })
    }

    /// Creates table `name` (hash key "pk", S; PAY_PER_REQUEST); fine if it exists.
    pub fn create_table(&self, name: &str, region: &str) {
        let client = self.dynamodb(region);
        block_on(|| async move {
            let res = client
                .create_table()
                .table_name(name)
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name("pk")
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .expect("attribute definition"),
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name("pk")
                        .key_type(KeyType::Hash)
                        .build()
                        .expect("key schema"),
                )
                .billing_mode(BillingMode::PayPerRequest)
                .send()
                .await;
            match res {
                Ok(_) => {}
                Err(e) if e.code() == Some("ResourceInUseException") => {}
                Err(e) => panic!(
                    "moto: create table {name} in {region}: {}",
                    DisplayErrorContext(&e)
                ),
            }
        })
    }

    pub fn put_item(&self, table: &str, pk: &str, region: &str) {
        let client = self.dynamodb(region);
        block_on(|| async move {
            if let Err(e) = client
                .put_item()
                .table_name(table)
                .item("pk", AttributeValue::S(pk.to_string()))
                .send()
                .await
            {
                panic!(
                    "moto: put item {pk} in {table} ({region}): {}",
                    DisplayErrorContext(&e)
                );
            }
        })
    }
}

/// A VPC built in moto for the control-plane tests, with the ids the instance's IMDS serves.
#[cfg(feature = "control-plane")]
#[derive(Clone, Debug)]
pub struct MotoVpc {
    pub vpc_id: String,
    pub subnet_id: String,
    pub route_table_id: String,
    pub security_group_id: String,
    pub s3_prefix_list: String,
    pub dynamodb_prefix_list: String,
    pub s3_endpoint: Option<String>,
    pub dynamodb_endpoint: Option<String>,
}

#[cfg(feature = "control-plane")]
impl MotoServer {
    pub fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        let conf = aws_sdk_ec2::Config::builder()
            .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
            .region(aws_sdk_ec2::config::Region::new(region.to_string()))
            .credentials_provider(credentials())
            .endpoint_url(self.endpoint())
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        aws_sdk_ec2::Client::from_conf(conf)
    }

    /// VPC 10.0.0.0/16, subnet 10.0.1.0/24 with its own route table, a security group (egress
    /// open), and gateway endpoints for S3 / DynamoDB on that route table when asked.
    pub fn create_vpc(&self, region: &str, s3_endpoint: bool, dynamodb_endpoint: bool) -> MotoVpc {
        let ec2 = self.ec2(region);
        let region = region.to_string();
        block_on(|| async move {
            let vpc = ec2
                .create_vpc()
                .cidr_block("10.0.0.0/16")
                .send()
                .await
                .expect("create_vpc");
            let vpc_id = vpc
                .vpc()
                .and_then(|v| v.vpc_id())
                .expect("vpc id")
                .to_string();
            let subnet = ec2
                .create_subnet()
                .vpc_id(&vpc_id)
                .cidr_block("10.0.1.0/24")
                .send()
                .await
                .expect("create_subnet");
            let subnet_id = subnet
                .subnet()
                .and_then(|s| s.subnet_id())
                .expect("subnet id")
                .to_string();
            let rtb = ec2
                .create_route_table()
                .vpc_id(&vpc_id)
                .send()
                .await
                .expect("create_route_table");
            let route_table_id = rtb
                .route_table()
                .and_then(|t| t.route_table_id())
                .expect("rtb id")
                .to_string();
            ec2.associate_route_table()
                .route_table_id(&route_table_id)
                .subnet_id(&subnet_id)
                .send()
                .await
                .expect("associate_route_table");
            let sg = ec2
                .create_security_group()
                .vpc_id(&vpc_id)
                .group_name(format!("probe-{vpc_id}"))
                .description("vpce-probe test")
                .send()
                .await
                .expect("create_security_group");
            let security_group_id = sg.group_id().expect("sg id").to_string();
            let lists = ec2
                .describe_prefix_lists()
                .send()
                .await
                .expect("describe_prefix_lists");
            let pl = |svc: &str| {
                lists
                    .prefix_lists()
                    .iter()
                    .find(|p| {
                        p.prefix_list_name() == Some(&format!("com.amazonaws.{region}.{svc}"))
                    })
                    .and_then(|p| p.prefix_list_id())
                    .expect("prefix list")
                    .to_string()
            };
            let endpoint = |svc: &'static str| {
                let ec2 = ec2.clone();
                let vpc_id = vpc_id.clone();
                let rtb = route_table_id.clone();
                let region = region.clone();
                async move {
                    ec2.create_vpc_endpoint()
                        .vpc_id(vpc_id)
                        .vpc_endpoint_type(aws_sdk_ec2::types::VpcEndpointType::Gateway)
                        .service_name(format!("com.amazonaws.{region}.{svc}"))
                        .route_table_ids(rtb)
                        .send()
                        .await
                        .expect("create_vpc_endpoint")
                        .vpc_endpoint()
                        .and_then(|e| e.vpc_endpoint_id())
                        .map(str::to_string)
                }
            };
            let s3_endpoint = if s3_endpoint {
                endpoint("s3").await
            } else {
                None
            };
            let dynamodb_endpoint = if dynamodb_endpoint {
                endpoint("dynamodb").await
            } else {
                None
            };
            MotoVpc {
                s3_prefix_list: pl("s3"),
                dynamodb_prefix_list: pl("dynamodb"),
                vpc_id,
                subnet_id,
                route_table_id,
                security_group_id,
                s3_endpoint,
                dynamodb_endpoint,
            }
        })
    }

    /// Run any EC2 change against moto (e.g. to break one thing).
    pub fn ec2_change<F, Fut>(&self, region: &str, change: F)
    where
        F: FnOnce(aws_sdk_ec2::Client) -> Fut + Send,
        Fut: std::future::Future<Output = ()>,
    {
        let ec2 = self.ec2(region);
        block_on(|| change(ec2))
    }
}
