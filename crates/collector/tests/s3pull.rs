//! Pulling an S3 sink's prefix (`vpce-collector pull`, `serve --pull-s3`) against moto on
//! loopback (installed by scripts/install-deps.sh; $VPCE_PROBE_MOTO names another
//! moto_server): objects in the sink's layout are stored once, a second pull fetches nothing,
//! a new day prefix is picked up, what is not a report is counted and never fetched again, and
//! a report that also came over HTTP is stored once; on both stores (the pull keeps its state
//! in the store's database).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step stops the test

mod common;

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use common::*;
use serde_json::Value;

const REGION: &str = "us-east-1";
const PREFIX: &str = "vpce-probe/";

struct Moto {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    fn start() -> Moto {
        let path = std::env::var_os("VPCE_PROBE_MOTO")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/opt/vpce-probe-test/venv/bin/moto_server"));
        assert!(
            path.exists(),
            "moto is not installed: run sudo bash scripts/install-deps.sh ({} is missing)",
            path.display()
        );
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(&path)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let moto = Moto { child, addr };
        wait_for("moto to answer", Duration::from_secs(20), || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        });
        moto
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn client(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .endpoint_url(self.endpoint())
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    fn run<T>(&self, f: impl AsyncFnOnce(aws_sdk_s3::Client) -> T) -> T {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let client = self.client();
        rt.block_on(f(client))
    }

    fn create_bucket(&self, bucket: &str) {
        self.run(async |c| c.create_bucket().bucket(bucket).send().await.map(|_| ()))
            .expect("create bucket");
    }

    fn put(&self, bucket: &str, key: &str, body: Vec<u8>) {
        self.run(async |c| {
            c.put_object()
                .bucket(bucket)
                .key(key)
                .body(body.into())
                .send()
                .await
                .map(|_| ())
        })
        .expect("put object");
    }
}

/// The collector's environment for moto: its endpoint, fake credentials, no IMDS, no proxy,
/// no shared config of the machine.
fn aws_env(cmd: &mut Command, endpoint: &str, dir: &Dir) {
    // Empty shared files: nothing of this machine's AWS setup reaches the test.
    for f in ["aws-config", "aws-credentials"] {
        std::fs::write(dir.path(f), "").expect("empty AWS file");
    }
    cmd.env("AWS_ENDPOINT_URL_S3", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", dir.path("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.path("no-aws-credentials"),
        )
        .env("VPCE_COLLECTOR_LOG", "info");
    for v in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
    ] {
        cmd.env_remove(v);
    }
}

/// A UTC time `days` from now, as RFC 3339 with milliseconds (the probe's format).
fn started(days: i64, minute: u32) -> String {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let t = (now / 86_400 + days) * 86_400 + i64::from(minute) * 60;
    let text = humantime::format_rfc3339_seconds(
        SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t).expect("after 1970")),
    )
    .to_string();
    format!("{}.000Z", &text[..19])
}

/// The key the agent's S3 sink gives a report (ReportMeta::s3_key in the probe).
fn sink_key(report: &Value) -> String {
    let day = report["started_at"].as_str().expect("started_at")[..10].replace('-', "/");
    let instance = report["instance"]["instance_id"]
        .as_str()
        .expect("instance");
    let id = report["report_id"].as_str().expect("id");
    format!("{PREFIX}{day}/{instance}/{id}.json")
}

/// As the sink writes it: the report on one line.
fn one_line(report: &Value) -> Vec<u8> {
    let mut v = serde_json::to_vec(report).expect("json");
    v.push(b'\n');
    v
}

fn pull(endpoint: &str, dir: &Dir, bucket: &str) -> (Output, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["pull", "--db", &dir.db]).args([
        "--pull-s3",
        &format!("s3://{bucket}/{PREFIX}"),
        "--pull-s3-path-style",
    ]);
    aws_env(&mut cmd, endpoint, dir);
    let out = cmd.output().expect("run vpce-collector pull");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("[pull] {stdout}{}", String::from_utf8_lossy(&out.stderr));
    (out, stdout)
}

/// "stored 3" in the pull's summary line.
fn count(summary: &str, what: &str) -> u64 {
    summary
        .split([':', ','])
        .map(str::trim)
        .find_map(|part| part.strip_prefix(&format!("{what} ")))
        .and_then(|n| n.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no \"{what} N\" in {summary}"))
}

fn stored_ids(c: &Collector) -> Vec<String> {
    let fleet = c.get_json("/api/fleet");
    let mut ids = Vec::new();
    for i in fleet["instances"].as_array().expect("instances") {
        let key = i["instance_key"].as_str().expect("key");
        let detail = c.get_json(&format!("/api/instances/{key}"));
        for r in detail["reports"].as_array().expect("reports") {
            ids.push(r["report_id"].as_str().expect("id").to_string());
        }
    }
    ids.sort();
    ids
}

fn metric(c: &Collector, line_start: &str) -> f64 {
    let text = c.get("/metrics").text();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {line_start} in\n{text}"))
}

both_stores!(
    pull_stores_each_object_once_and_only_fetches_what_is_new,
    serve_pulls_on_an_interval_and_stores_an_http_report_once,
);

fn pull_stores_each_object_once_and_only_fetches_what_is_new(backend: Backend) {
    let moto = Moto::start();
    let bucket = "reports-pull";
    moto.create_bucket(bucket);
    let dir = Dir::with(backend);
    let yesterday_a = report(Spec {
        id: "11111111-1111-4111-8111-000000000001",
        instance: "i-0aaa0000000000001",
        started_at: &started(-1, 600),
        ..Spec::default()
    });
    let today_a = report(Spec {
        id: "11111111-1111-4111-8111-000000000002",
        instance: "i-0aaa0000000000001",
        started_at: &started(0, 0),
        problems: &[("TCP_TIMEOUT", "s3:app-data")],
        ..Spec::default()
    });
    let today_b = report(Spec {
        id: "11111111-1111-4111-8111-000000000003",
        instance: "i-0bbb0000000000002",
        subnet: "subnet-0bbb2222",
        started_at: &started(0, 1),
        ..Spec::default()
    });
    // Older than the first pull's reach (the retention): never listed.
    let ancient = report(Spec {
        id: "11111111-1111-4111-8111-000000000009",
        started_at: &started(-40, 0),
        ..Spec::default()
    });
    for r in [&yesterday_a, &today_a, &today_b, &ancient] {
        moto.put(bucket, &sink_key(r), one_line(r));
    }
    // The older agents' pretty JSON is read too.
    let pretty = report(Spec {
        id: "11111111-1111-4111-8111-000000000004",
        instance: "i-0ccc0000000000003",
        started_at: &started(0, 2),
        ..Spec::default()
    });
    moto.put(
        bucket,
        &sink_key(&pretty),
        serde_json::to_vec_pretty(&pretty).unwrap(),
    );
    // Not reports: refused, counted, never fetched again.
    let today = started(0, 0)[..10].replace('-', "/");
    let corrupt = format!("{PREFIX}{today}/i-0ddd0000000000004/corrupt.json");
    moto.put(bucket, &corrupt, b"{\"report_id\": \"cut sh".to_vec());
    let other = format!("{PREFIX}{today}/i-0ddd0000000000004/other.json");
    moto.put(bucket, &other, b"{\"schema_version\": \"2.0\"}".to_vec());
    // Not a .json object: not even listed as a candidate.
    moto.put(bucket, &format!("{PREFIX}README.txt"), b"hello".to_vec());

    let (out, first) = pull(&moto.endpoint(), &dir, bucket);
    assert_eq!(out.status.code(), Some(0), "{first}");
    assert!(
        first.starts_with(&format!("s3://{bucket}/{PREFIX} from ")),
        "{first}"
    );
    assert_eq!(count(&first, "stored"), 4, "{first}");
    assert_eq!(count(&first, "refused"), 2, "{first}");
    assert_eq!(count(&first, "fetched"), 6, "{first}");
    assert_eq!(count(&first, "errors"), 0, "{first}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let skipped: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("skipped for good"))
        .collect();
    assert_eq!(skipped.len(), 2, "one line per refused object: {stderr}");
    assert!(
        skipped
            .iter()
            .any(|l| l.contains(&corrupt) && l.contains("not JSON")),
        "{stderr}"
    );
    assert!(
        skipped
            .iter()
            .any(|l| l.contains(&other) && l.contains("schema_version 2.0")),
        "{stderr}"
    );

    let (out, second) = pull(&moto.endpoint(), &dir, bucket);
    assert_eq!(out.status.code(), Some(0), "{second}");
    assert_eq!(count(&second, "fetched"), 0, "nothing new: {second}");
    assert_eq!(count(&second, "listed"), 6, "{second}");
    assert_eq!(count(&second, "refused"), 0, "{second}");

    // A day prefix that did not exist at the last pull (an agent whose clock is a day ahead).
    let tomorrow = report(Spec {
        id: "11111111-1111-4111-8111-000000000005",
        instance: "i-0aaa0000000000001",
        started_at: &started(1, 5),
        ..Spec::default()
    });
    moto.put(bucket, &sink_key(&tomorrow), one_line(&tomorrow));
    let (out, third) = pull(&moto.endpoint(), &dir, bucket);
    assert_eq!(out.status.code(), Some(0), "{third}");
    assert_eq!(count(&third, "fetched"), 1, "{third}");
    assert_eq!(count(&third, "stored"), 1, "{third}");

    let c = Collector::start(&dir, &[]);
    assert_eq!(
        stored_ids(&c),
        vec![
            "11111111-1111-4111-8111-000000000001",
            "11111111-1111-4111-8111-000000000002",
            "11111111-1111-4111-8111-000000000003",
            "11111111-1111-4111-8111-000000000004",
            "11111111-1111-4111-8111-000000000005",
        ]
    );
    let fleet = c.get_json("/api/fleet?verdict=problems");
    assert_eq!(
        fleet["instances"].as_array().map(Vec::len),
        Some(0),
        "{fleet}"
    );
    let a = c.get_json("/api/instances/i-0aaa0000000000001");
    assert_eq!(
        a["instance"]["latest"]["token_label"],
        format!("s3://{bucket}/{PREFIX}"),
        "the pulled location is the label"
    );
}

fn serve_pulls_on_an_interval_and_stores_an_http_report_once(backend: Backend) {
    let moto = Moto::start();
    let bucket = "reports-serve";
    moto.create_bucket(bucket);
    let dir = Dir::with(backend);
    let mut args = dir.base_args();
    args.extend(
        [
            "--pull-s3",
            &format!("s3://{bucket}/{PREFIX}"),
            "--pull-s3-interval-secs",
            "1",
            "--pull-s3-path-style",
        ]
        .map(String::from),
    );
    let mut cmd = Command::new(BIN);
    aws_env(&mut cmd, &moto.endpoint(), &dir);
    let c = Collector::start_command(cmd, &args);

    let both = report(Spec {
        id: "22222222-2222-4222-8222-000000000001",
        started_at: &started(0, 0),
        ..Spec::default()
    });
    let posted = c.post(Some(TOKEN), &both);
    assert_eq!(posted.status, 201, "{}", posted.text());
    // The same report in S3 under its own key, and once more under a key that does not name it
    // (the GET finds it stored).
    moto.put(bucket, &sink_key(&both), one_line(&both));
    let renamed = format!(
        "{PREFIX}{}/i-0123456789abcdef0/copy.json",
        started(0, 0)[..10].replace('-', "/")
    );
    moto.put(bucket, &renamed, one_line(&both));
    let s3_only = report(Spec {
        id: "22222222-2222-4222-8222-000000000002",
        started_at: &started(0, 1),
        ..Spec::default()
    });
    moto.put(bucket, &sink_key(&s3_only), one_line(&s3_only));

    let location = format!("location=\"s3://{bucket}/{PREFIX}\"");
    let start = Instant::now();
    wait_for(
        "the pull to store the S3 report",
        Duration::from_secs(30),
        || stored_ids(&c).len() == 2,
    );
    eprintln!("pulled within {:?}", start.elapsed());
    assert_eq!(
        stored_ids(&c),
        vec![
            "22222222-2222-4222-8222-000000000001",
            "22222222-2222-4222-8222-000000000002"
        ]
    );
    wait_for(
        "the renamed copy to be fetched",
        Duration::from_secs(10),
        || {
            c.get("/metrics").text().contains(&format!(
                "vpce_collector_s3_objects_duplicate_total{{{location}}} 1"
            ))
        },
    );
    // A few more passes: nothing is fetched again.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        metric(
            &c,
            &format!("vpce_collector_s3_objects_pulled_total{{{location}}}")
        ),
        1.0
    );
    assert_eq!(
        metric(
            &c,
            &format!("vpce_collector_s3_objects_duplicate_total{{{location}}}")
        ),
        1.0
    );
    assert_eq!(metric(&c, "vpce_collector_reports_accepted_total"), 1.0);
    let last = metric(
        &c,
        &format!("vpce_collector_s3_pull_last_success_timestamp_seconds{{{location}}}"),
    );
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!((now - last).abs() < 10.0, "last pass at {last}, now {now}");
    let lag = metric(
        &c,
        &format!("vpce_collector_s3_pull_lag_seconds{{{location}}}"),
    );
    assert!((0.0..30.0).contains(&lag), "lag {lag}");
}

#[test]
fn a_pull_that_cannot_reach_s3_fails_and_keeps_nothing() {
    let dir = Dir::new();
    // A port nobody listens on: every request fails fast, the pull says so and exits 1.
    let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("free port");
    let (out, summary) = pull(&format!("http://{closed}"), &dir, "reports-nowhere");
    assert_eq!(out.status.code(), Some(1), "{summary}");
    assert!(summary.contains("listing incomplete"), "{summary}");
    assert_eq!(count(&summary, "errors"), 1, "{summary}");
}

#[test]
fn bad_pull_settings_are_refused_with_one_line() {
    let dir = Dir::new();
    let cases: [(&[&str], &str); 4] = [
        (&["pull", "--db", "x.db"], "nothing to pull"),
        (
            &["pull", "--db", "x.db", "--pull-s3", "https://b/p/"],
            "s3://BUCKET/PREFIX/",
        ),
        (
            &["pull", "--db", "x.db", "--pull-s3", "s3://Bad_Bucket/p/"],
            "not an S3 bucket name",
        ),
        (
            &[
                "pull",
                "--db",
                "x.db",
                "--pull-s3",
                "s3://good-bucket/p/",
                "--pull-s3-interval-secs",
                "0",
            ],
            "at least 1",
        ),
    ];
    for (args, want) in cases {
        let out = Command::new(BIN)
            .args(args)
            .current_dir(dir.dir.path())
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
    // The TOML table, seen by check-config.
    std::fs::write(
        dir.path("collector.toml"),
        "db = \"r.db\"\ntokens = \"tokens\"\n[s3_pull]\nlocations = [\"s3://fleet-reports/vpce-probe\"]\nlookback_days = 3\n",
    )
    .expect("config");
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(dir.path("collector.toml"))
        .current_dir(dir.dir.path())
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("pull s3 s3://fleet-reports/vpce-probe/ every 60 s (lookback 3 days"),
        "{stdout}"
    );
    std::fs::write(
        dir.path("bad.toml"),
        "db = \"r.db\"\ntokens = \"tokens\"\n[s3_pull]\nlocation = \"s3://fleet-reports/\"\n",
    )
    .expect("config");
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(dir.path("bad.toml"))
        .current_dir(dir.dir.path())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown field `location`"), "{stderr}");
}
