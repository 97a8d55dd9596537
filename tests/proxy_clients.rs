//! The proxy decision model (src/proxy_rules.rs) against the real clients: the installed curl,
//! run with crafted environments against a loopback proxy and a loopback target, and botocore,
//! whose client is built and stopped before it sends anything. Only loopback addresses are used.
//!
//! Both clients must be installed (scripts/install-deps.sh installs curl and the test venv's
//! boto3): a missing client fails the test rather than skipping it. botocore's Python is
//! $VPCE_PROBE_PYTHON, the test venv's python next to $VPCE_PROBE_MOTO, or python3.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step stops the test

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use url::Url;
use vpce_probe::proxy_rules::{self, HttpClientKind, ProxyEnv};

/// A loopback listener that counts connections and closes each at once.
struct Counter {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Counter {
    fn start() -> Counter {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                h.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Counter { addr, hits }
    }
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Seen {
    Proxy,
    Direct,
    /// Neither listener was contacted: the client refused the value.
    Failed,
}

/// Runs the installed curl with exactly `vars` (in this order) and reports where it connected.
fn run_curl(vars: &[(String, String)], url: &Url, proxy: &Counter, target: &Counter) -> Seen {
    let (p0, t0) = (proxy.hits(), target.hits());
    let host = url.host_str().expect("host");
    let port = url.port().expect("explicit port");
    let mut cmd = Command::new("env");
    cmd.arg("-i").arg(format!(
        "PATH={}",
        std::env::var("PATH").unwrap_or_default()
    ));
    for (k, v) in vars {
        cmd.arg(format!("{k}={v}"));
    }
    // -q: no ~/.curlrc. --resolve: the target name is the loopback listener.
    cmd.args(["curl", "-q", "-s", "-o", "/dev/null", "--max-time", "3"])
        .arg("--resolve")
        .arg(format!("{host}:{port}:127.0.0.1"))
        .arg(url.as_str())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _ = cmd.status().expect("run curl");
    // The listener thread may count a moment after curl exits.
    let deadline = Instant::now() + Duration::from_millis(300);
    loop {
        let (p, t) = (proxy.hits() - p0, target.hits() - t0);
        if p > 0 {
            return Seen::Proxy;
        }
        if t > 0 {
            return Seen::Direct;
        }
        if Instant::now() > deadline {
            return Seen::Failed;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn pairs(vars: &[(&str, String)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

#[test]
fn the_installed_curl_agrees_with_the_model() {
    let curl = vpce_probe::proxy_env::installed_curl();
    assert!(
        curl.version().is_some(),
        "no curl --version answered: install curl (scripts/install-deps.sh)"
    );
    let proxy = Counter::start();
    let target = Counter::start();
    let p = format!("http://{}", proxy.addr);
    let pp = proxy.addr.port();
    let t = target.addr.port();
    let s3 = format!("https://s3.eu-west-1.amazonaws.com:{t}/");
    let s3_http = format!("http://s3.eu-west-1.amazonaws.com:{t}/");
    let ip = format!("http://127.0.0.1:{t}/");
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![("https_proxy", p.clone())], &s3),
        (vec![("HTTPS_PROXY", p.clone())], &s3),
        (vec![("HTTP_PROXY", p.clone())], &s3_http),
        (vec![("http_proxy", p.clone())], &s3_http),
        (vec![("ALL_PROXY", p.clone())], &s3),
        (
            vec![("https_proxy", p.clone()), ("https_proxy", String::new())],
            &s3,
        ),
        (
            vec![
                ("https_proxy", p.clone()),
                ("no_proxy", "localhost .amazonaws.com".into()),
            ],
            &s3,
        ),
        (
            vec![
                ("https_proxy", p.clone()),
                ("no_proxy", "localhost , amazonaws.com".into()),
            ],
            &s3,
        ),
        (
            vec![
                ("https_proxy", p.clone()),
                ("no_proxy", "*.amazonaws.com".into()),
            ],
            &s3,
        ),
        (
            vec![
                ("https_proxy", p.clone()),
                ("no_proxy", "localhost,*".into()),
            ],
            &s3,
        ),
        (
            vec![("https_proxy", p.clone()), ("no_proxy", "*".into())],
            &s3,
        ),
        (
            vec![
                ("https_proxy", p.clone()),
                ("NO_PROXY", "amazonaws.com".into()),
                ("no_proxy", "localhost".into()),
            ],
            &s3,
        ),
        (
            vec![
                ("https_proxy", p.clone()),
                ("NO_PROXY", "amazonaws.com".into()),
                ("no_proxy", String::new()),
            ],
            &s3,
        ),
        (
            vec![
                ("https_proxy", p.clone()),
                ("no_proxy", "s3.eu-west-1.amazonaws.com:443".into()),
            ],
            &s3,
        ),
        (
            vec![
                ("http_proxy", p.clone()),
                ("no_proxy", "127.0.0.0/8".into()),
            ],
            &ip,
        ),
        (
            vec![("http_proxy", p.clone()), ("no_proxy", "127.0.0.2".into())],
            &ip,
        ),
        (
            vec![("https_proxy", p.clone()), ("REQUEST_METHOD", "GET".into())],
            &s3,
        ),
        (vec![("https_proxy", format!("HTTP://127.0.0.1:{pp}"))], &s3),
        (vec![("https_proxy", format!("127.0.0.1:{pp}"))], &s3),
        (
            vec![("https_proxy", format!("socks5://127.0.0.1:{pp}"))],
            &s3,
        ),
        (vec![("https_proxy", format!("ftp://127.0.0.1:{pp}"))], &s3),
        (vec![("https_proxy", format!("{p} "))], &s3),
    ];
    let mut failures = Vec::new();
    for (vars, u) in &cases {
        let vars = pairs(vars);
        let url = Url::parse(u).expect("url");
        let env = ProxyEnv::from_pairs(vars.clone()).with_curl(curl);
        let d = proxy_rules::decide(HttpClientKind::Curl, &env, &url);
        let want = match (&d.proxy, d.fails) {
            (None, _) => Seen::Direct,
            (Some(_), false) => Seen::Proxy,
            (Some(_), true) => Seen::Failed,
        };
        let got = run_curl(&vars, &url, &proxy, &target);
        if got != want {
            failures.push(format!(
                "{vars:?} {u}: curl {got:?}, model {want:?}: {}",
                d.explanation
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} (of {} cases):\n{}",
        curl.describe(),
        cases.len(),
        failures.join("\n")
    );
}

/// A Python that can import boto3, or None.
fn botocore_python() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(p) = std::env::var("VPCE_PROBE_PYTHON") {
        candidates.push(p.into());
    }
    let moto = std::env::var("VPCE_PROBE_MOTO")
        .unwrap_or_else(|_| "/opt/vpce-probe-test/venv/bin/moto_server".into());
    candidates.push(Path::new(&moto).with_file_name("python"));
    candidates.push("python3".into());
    candidates.into_iter().find(|python| {
        Command::new(python)
            .args(["-c", "import boto3"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Builds the botocore client in an environment of exactly `vars` (in this order) and stops it
/// before it sends: its endpoint, the request URL and the proxy it would use.
const BOTOCORE_SCRIPT: &str = r#"
import json, sys, boto3
service, region, bucket = sys.argv[1:4]
client = boto3.client(service, region_name=region)
seen = {}
def stop(request, **kwargs):
    seen["url"] = request.url
    raise KeyboardInterrupt
client.meta.events.register("before-send", stop)
try:
    if service == "s3":
        client.head_bucket(Bucket=bucket)
    else:
        client.describe_table(TableName=bucket)
except KeyboardInterrupt:
    pass
config = client._endpoint.http_session._proxy_config
print(json.dumps({
    "endpoint": client._endpoint.host,
    "url": seen.get("url"),
    "proxy": config.proxy_url_for(seen.get("url") or client._endpoint.host),
}))
"#;

#[test]
fn botocore_agrees_with_the_model() {
    let python = botocore_python()
        .expect("no Python with boto3: run scripts/install-deps.sh (the test venv has boto3)");
    let p = "http://127.0.0.1:9".to_owned();
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("s3", vec![("HTTPS_PROXY", p.clone())]),
        (
            "s3",
            vec![
                ("HTTPS_PROXY", p.clone()),
                ("NO_PROXY", "mybucket.s3.eu-west-1.amazonaws.com".into()),
            ],
        ),
        (
            "s3",
            vec![
                ("HTTPS_PROXY", p.clone()),
                ("NO_PROXY", "s3.eu-west-1.amazonaws.com".into()),
            ],
        ),
        (
            "s3",
            vec![
                ("HTTPS_PROXY", "http://127.0.0.1:1".into()),
                ("Https_Proxy", "http://127.0.0.1:2".into()),
            ],
        ),
        (
            "s3",
            vec![
                ("Https_Proxy", "http://127.0.0.1:2".into()),
                ("HTTPS_PROXY", "http://127.0.0.1:1".into()),
            ],
        ),
        (
            "s3",
            vec![
                ("https_proxy", "http://127.0.0.1:1".into()),
                ("HTTPS_proxy", "http://127.0.0.1:2".into()),
            ],
        ),
        (
            "s3",
            vec![
                ("HTTPS_proxy", "http://127.0.0.1:2".into()),
                ("https_proxy", "http://127.0.0.1:1".into()),
            ],
        ),
        (
            "s3",
            vec![("HTTPS_PROXY", p.clone()), ("https_proxy", String::new())],
        ),
        (
            "s3",
            vec![
                ("HTTPS_PROXY", p.clone()),
                ("NO_PROXY", "amazonaws.com".into()),
                ("No_Proxy", "localhost".into()),
            ],
        ),
        (
            "s3",
            vec![
                ("HTTPS_PROXY", p.clone()),
                ("No_Proxy", "localhost".into()),
                ("NO_PROXY", "amazonaws.com".into()),
            ],
        ),
        ("s3", vec![("ALL_PROXY", p.clone())]),
        (
            "s3",
            vec![("HTTPS_PROXY", "socks5://127.0.0.1:1080".into())],
        ),
        ("s3", vec![("HTTPS_PROXY", "HTTP://127.0.0.1:3128".into())]),
        ("s3", vec![("HTTPS_PROXY", "127.0.0.1:3128".into())]),
        (
            "s3",
            vec![
                ("HTTPS_PROXY", p.clone()),
                ("NO_PROXY", "10.0.0.0/8,*.amazonaws.com".into()),
            ],
        ),
        (
            "dynamodb",
            vec![
                ("HTTPS_PROXY", p.clone()),
                ("NO_PROXY", "dynamodb.eu-west-1.amazonaws.com".into()),
            ],
        ),
        ("dynamodb", vec![("https_proxy", p.clone())]),
        // A custom endpoint URL with a port: botocore checks NO_PROXY against host:port, and
        // an entry with another port does not match.
        (
            "s3",
            vec![
                ("HTTPS_PROXY", p.clone()),
                ("AWS_ENDPOINT_URL_S3", "https://s3.example.com:8443".into()),
                ("NO_PROXY", "s3.example.com:8443".into()),
            ],
        ),
        (
            "s3",
            vec![
                ("HTTPS_PROXY", p.clone()),
                ("AWS_ENDPOINT_URL_S3", "https://s3.example.com:8443".into()),
                ("NO_PROXY", "s3.example.com:443".into()),
            ],
        ),
        (
            "s3",
            vec![
                ("HTTPS_PROXY", p.clone()),
                ("AWS_ENDPOINT_URL_S3", "https://s3.example.com:8443".into()),
                ("NO_PROXY", ".example.com".into()),
            ],
        ),
        (
            "dynamodb",
            vec![
                ("HTTPS_PROXY", p.clone()),
                (
                    "AWS_ENDPOINT_URL_DYNAMODB",
                    "https://ddb.example.com:8000".into(),
                ),
                ("NO_PROXY", "ddb.example.com:8000".into()),
            ],
        ),
        // The scheme's own port written in the endpoint URL: botocore keeps it in the netloc
        // it checks, so `host:443` matches, and a plain `host` entry matches too.
        (
            "s3",
            vec![
                ("HTTPS_PROXY", p.clone()),
                ("AWS_ENDPOINT_URL_S3", "https://s3.example.com:443".into()),
                ("NO_PROXY", "s3.example.com:443".into()),
            ],
        ),
        (
            "s3",
            vec![
                ("HTTPS_PROXY", p.clone()),
                ("AWS_ENDPOINT_URL_S3", "https://s3.example.com:443".into()),
                ("NO_PROXY", "s3.example.com".into()),
            ],
        ),
        (
            "dynamodb",
            vec![
                ("HTTPS_PROXY", p.clone()),
                (
                    "AWS_ENDPOINT_URL_DYNAMODB",
                    "https://ddb.example.com:443".into(),
                ),
                ("NO_PROXY", "ddb.example.com:443".into()),
            ],
        ),
        // Not written, the port is not in the netloc: `host:443` does not match.
        (
            "s3",
            vec![
                ("HTTPS_PROXY", p.clone()),
                ("AWS_ENDPOINT_URL_S3", "https://s3.example.com".into()),
                ("NO_PROXY", "s3.example.com:443".into()),
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (service, vars) in &cases {
        let vars = pairs(vars);
        let mut cmd = Command::new("env");
        cmd.arg("-i");
        for fixed in [
            "AWS_ACCESS_KEY_ID=AKIDEXAMPLE",
            "AWS_SECRET_ACCESS_KEY=secret",
            "AWS_CONFIG_FILE=/nonexistent",
            "AWS_SHARED_CREDENTIALS_FILE=/nonexistent",
            "AWS_EC2_METADATA_DISABLED=true",
        ] {
            cmd.arg(fixed);
        }
        for (k, v) in &vars {
            cmd.arg(format!("{k}={v}"));
        }
        let out = cmd
            .arg(&python)
            .args(["-c", BOTOCORE_SCRIPT, service, "eu-west-1", "mybucket"])
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let real: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("botocore script output");
        let request = real["url"].as_str().expect("request url");
        let env = ProxyEnv::from_pairs(vars.clone());
        // The endpoint URLs as configured, which the probe passes as its settings read them.
        let configured: Vec<String> = vars
            .iter()
            .filter(|(k, _)| k.starts_with("AWS_ENDPOINT_URL"))
            .map(|(_, v)| v.clone())
            .collect();
        let d = proxy_rules::decide_among(
            HttpClientKind::Botocore,
            &env,
            &Url::parse(request).expect("url"),
            &[],
            &configured,
        );
        // Where the NO_PROXY check was made.
        let checked = d.checked_url.clone().unwrap_or_else(|| d.url.clone());
        let real_endpoint = format!("{}/", real["endpoint"].as_str().unwrap_or_default());
        // The proxy value botocore uses (it prefixes http:// when the value lacks http:/https:).
        let model_proxy = d
            .proxy
            .as_ref()
            .and_then(|p| env.get(&p.variable))
            .map(|raw| {
                if raw.starts_with("http:") || raw.starts_with("https:") {
                    raw.to_owned()
                } else {
                    format!("http://{raw}")
                }
            });
        let real_proxy = real["proxy"].as_str().map(str::to_owned);
        if checked != real_endpoint || model_proxy != real_proxy {
            failures.push(format!(
                "{service} {vars:?}: botocore checked {real_endpoint} and uses {real_proxy:?}; model checked {checked} and uses {model_proxy:?}: {}",
                d.explanation
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
