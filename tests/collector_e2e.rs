//! `vpce-probe probe --ship` delivering into the real collector (crates/collector): the probe
//! runs against the loopback fakes of tests/common, the collector listens on 127.0.0.1. The
//! collector binary must be built first (`cargo build --workspace`, as scripts/test.sh does):
//! it is looked up next to this test's own target directory. Needs root (see tests/common).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step stops the test

mod common;
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use support::TestCa;

const TOKEN: &str = "e2e-account-token-0123456789";

/// target/<profile>/vpce-collector, beside target/<profile>/deps/<this test>.
fn collector_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let bin = profile_dir.join("vpce-collector");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build --workspace` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

struct Collector {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_collector(dir: &std::path::Path) -> Collector {
    start_collector_with(dir, Command::new(collector_binary()), &[])
}

/// `cmd` (the collector binary with the environment a test chose) serving with `extra` flags.
fn start_collector_with(dir: &std::path::Path, mut cmd: Command, extra: &[&str]) -> Collector {
    std::fs::write(dir.join("tokens"), format!("acct-e2e {TOKEN}\n")).expect("tokens");
    let mut child = cmd
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.join("reports.db"))
        .arg("--tokens")
        .arg(dir.join("tokens"))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vpce-collector");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            eprintln!("[collector] {line}");
            if let Some(a) = line.strip_prefix("listening on ") {
                let _ = tx.send(a.to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the collector says where it listens")
        .parse()
        .expect("address");
    Collector { child, addr }
}

fn get_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP answer");
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "GET {path}: {head}\n{body}"
    );
    serde_json::from_str(body).expect("JSON")
}

#[test]
fn probe_ship_delivers_into_the_collector() {
    let lab = Lab::healthy(61);
    let collector = start_collector(lab.dir.path());
    let token = lab.dir.path().join("ship-token");
    std::fs::write(&token, format!("{TOKEN}\n")).expect("token");
    let url = format!("http://{}/v1/reports", collector.addr);
    let token_arg = token.display().to_string();

    let first = lab.probe(&["--ship", &url, "--ship-token-file", &token_arg]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let second = lab.probe(&["--ship", &url, "--ship-token-file", &token_arg]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    let ids: Vec<String> = [&first, &second]
        .iter()
        .map(|o| o.report()["report_id"].as_str().expect("id").to_string())
        .collect();

    let fleet = get_json(collector.addr, "/api/fleet");
    let instances = fleet["instances"].as_array().expect("instances");
    assert_eq!(instances.len(), 1, "{fleet}");
    let key = instances[0]["instance_key"].as_str().expect("key");
    assert_eq!(
        Some(key),
        first.report()["instance"]["instance_id"].as_str(),
        "keyed by the instance id from IMDS"
    );
    assert_eq!(instances[0]["latest"]["report_id"], ids[1].as_str());
    assert_eq!(instances[0]["latest"]["token_label"], "acct-e2e");
    assert_eq!(instances[0]["latest"]["status"], "healthy");
    let detail = get_json(collector.addr, &format!("/api/instances/{key}"));
    let mut stored: Vec<String> = detail["reports"]
        .as_array()
        .expect("reports")
        .iter()
        .map(|r| r["report_id"].as_str().expect("id").to_string())
        .collect();
    stored.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(stored, want);
    // The latest report's body is the probe's JSON, byte for byte as parsed.
    let body = get_json(collector.addr, &format!("/reports/{}.json", ids[1]));
    assert_eq!(&body, second.report());
}

/// The S3 sink's objects pulled by the collector: `vpce-probe probe --ship s3://...` puts the
/// report into moto (through the lab's TLS front), one run also posts it to the collector over
/// HTTP, and `serve --pull-s3` stores every report once. Each object is one line, as Athena's
/// JSON SerDe reads it (packaging/athena/).
#[test]
fn probe_ship_to_s3_is_pulled_by_the_collector_once() {
    let lab = Lab::aws(
        62,
        support::ImdsFacts::example(),
        support::FrontOptions::default(),
        support::FrontOptions::default(),
        true,
    );
    let s3_url = format!("s3://{}/fleet/", lab.bucket);
    let token = lab.dir.path().join("ship-token");
    std::fs::write(&token, format!("{TOKEN}\n")).expect("token");
    let token_arg = token.display().to_string();

    // The collector first, pulling every second from moto itself (plain HTTP, path-style).
    let mut cmd = Command::new(collector_binary());
    cmd.env("AWS_ENDPOINT_URL_S3", support::moto().endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", lab.dir.path().join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            lab.dir.path().join("no-aws-credentials"),
        );
    for v in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "AWS_PROFILE",
    ] {
        cmd.env_remove(v);
    }
    let collector = start_collector_with(
        lab.dir.path(),
        cmd,
        &[
            "--pull-s3",
            &s3_url,
            "--pull-s3-interval-secs",
            "1",
            "--pull-s3-path-style",
        ],
    );
    let http_url = format!("http://{}/v1/reports", collector.addr);

    let both = lab.probe(&[
        "--ship",
        &s3_url,
        "--ship",
        &http_url,
        "--ship-token-file",
        &token_arg,
    ]);
    assert_eq!(both.code, 0, "{}", both.stderr);
    let s3_only = lab.probe(&["--ship", &s3_url]);
    assert_eq!(s3_only.code, 0, "{}", s3_only.stderr);
    let mut want: Vec<String> = [&both, &s3_only]
        .iter()
        .map(|o| o.report()["report_id"].as_str().expect("id").to_string())
        .collect();
    want.sort();

    let report = s3_only.report();
    let key = format!(
        "fleet/{}/{}/{}.json",
        report["started_at"].as_str().expect("started_at")[..10].replace('-', "/"),
        report["instance"]["instance_id"]
            .as_str()
            .expect("instance id"),
        want.iter()
            .find(|id| report["report_id"] == id.as_str())
            .expect("id"),
    );
    let object = support::moto().get_object(&lab.bucket, &key, REGION);
    assert_eq!(
        object.iter().filter(|&&b| b == b'\n').count(),
        1,
        "one line, newline-terminated"
    );
    let parsed: serde_json::Value = serde_json::from_slice(&object).expect("JSON");
    assert_eq!(&parsed, report, "the object is the report");

    let instance = report["instance"]["instance_id"]
        .as_str()
        .expect("instance id");
    let stored = || -> Vec<String> {
        let detail = get_json(collector.addr, &format!("/api/instances/{instance}"));
        let mut ids: Vec<String> = detail["reports"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| r["report_id"].as_str().expect("id").to_string())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while stored().len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(stored(), want, "both reports, each once");
    // More passes store nothing more.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(stored(), want);
}

/// The same delivery over HTTPS, the collector serving TLS itself (`--tls-cert`, `--tls-key`)
/// with a certificate of a private CA that the probe trusts through `--ship-ca-file`; a plain
/// `http://` URL to that port is refused with a clear answer and the probe exits 3.
#[test]
fn probe_ship_delivers_over_https_to_the_collector() {
    let lab = Lab::healthy(63);
    let dir = lab.dir.path();
    let ca = TestCa::new("vpce-collector e2e CA");
    let leaf = ca.issue(&["localhost", "127.0.0.1"]);
    std::fs::write(dir.join("collector.crt"), &leaf.cert_chain_pem).expect("cert");
    std::fs::write(dir.join("collector.key"), &leaf.key_pem).expect("key");
    let ca_file = ca.write_pem(dir, "collector-ca.pem");
    let (cert, key) = (
        dir.join("collector.crt").display().to_string(),
        dir.join("collector.key").display().to_string(),
    );
    let tls_args = ["--tls-cert", cert.as_str(), "--tls-key", key.as_str()];
    let collector = start_collector_with(dir, Command::new(collector_binary()), &tls_args);
    let token = dir.join("ship-token");
    std::fs::write(&token, format!("{TOKEN}\n")).expect("token");
    let token_arg = token.display().to_string();
    let ca_arg = ca_file.display().to_string();

    let url = format!("https://127.0.0.1:{}/v1/reports", collector.addr.port());
    let shipped = lab.probe(&[
        "--ship",
        &url,
        "--ship-token-file",
        &token_arg,
        "--ship-ca-file",
        &ca_arg,
    ]);
    assert_eq!(shipped.code, 0, "{}", shipped.stderr);
    let id = shipped.report()["report_id"]
        .as_str()
        .expect("id")
        .to_string();

    // Without the CA the certificate is not trusted: nothing is delivered.
    let untrusted = lab.probe(&["--ship", &url, "--ship-token-file", &token_arg]);
    assert_eq!(untrusted.code, 3, "{}", untrusted.stderr);
    // Plain HTTP to the TLS port: a clear 400, exit 3.
    let plain_url = format!("http://127.0.0.1:{}/v1/reports", collector.addr.port());
    let plain = lab.probe(&["--ship", &plain_url, "--ship-token-file", &token_arg]);
    assert_eq!(plain.code, 3, "{}", plain.stderr);
    assert!(
        plain.stderr.contains("400") && plain.stderr.contains("speaks HTTPS"),
        "{}",
        plain.stderr
    );

    // The same database behind a plain listener holds exactly the report delivered over TLS.
    drop(collector);
    let reader = start_collector(dir);
    let fleet = get_json(reader.addr, "/api/fleet");
    let instances = fleet["instances"].as_array().expect("instances");
    assert_eq!(instances.len(), 1, "{fleet}");
    assert_eq!(instances[0]["latest"]["report_id"], id.as_str());
    assert_eq!(instances[0]["reports"], 1, "{fleet}");
}
