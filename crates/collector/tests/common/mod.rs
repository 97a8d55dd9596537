//! Shared by the collector's integration tests: the real binary on a loopback port, a plain
//! HTTP/1.1 client (so a test can also be a slow or broken client), and report fixtures built
//! from tests/fixtures/healthy.json and checked against the probe's JSON Schema.
//!
//! Every store test runs twice, on SQLite and on PostgreSQL (`both_stores!`): the same test,
//! only the `--db` differs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step stops the test
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub mod pg;

/// The store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// `both_stores!(test_fn)`: a module `test_fn` with the tests `sqlite` and `postgres`, each
/// calling `test_fn(Backend)`.
#[macro_export]
macro_rules! both_stores {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name($crate::common::Backend::Sqlite)
            }
            #[test]
            fn postgres() {
                super::$name($crate::common::Backend::Postgres)
            }
        }
    )+};
}

pub const BIN: &str = env!("CARGO_BIN_EXE_vpce-collector");
pub const TOKEN: &str = "acct-a-token-0123456789";
pub const TOKEN_B: &str = "team-b-token-9876543210";

/// A running collector; SIGKILLed when dropped.
pub struct Collector {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
}

pub struct Dir {
    pub dir: tempfile::TempDir,
    /// What --db says: the SQLite file in the directory, or a new PostgreSQL database.
    pub db: String,
}

impl Dir {
    /// A directory with a tokens file (labels acct-a and team-b), on SQLite.
    pub fn new() -> Dir {
        Dir::with(Backend::Sqlite)
    }

    /// The same, with its store on `backend` (PostgreSQL: a new database of the shared server).
    pub fn with(backend: Backend) -> Dir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("tokens"),
            format!("# label token\nacct-a {TOKEN}\nteam-b {TOKEN_B}\n"),
        )
        .expect("tokens");
        let db = match backend {
            Backend::Sqlite => dir.path().join("reports.db").display().to_string(),
            Backend::Postgres => pg::shared().new_database(),
        };
        Dir { dir, db }
    }

    /// A directory sharing `other`'s database (a second replica).
    pub fn sharing(other: &Dir) -> Dir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::copy(other.path("tokens"), dir.path().join("tokens")).expect("tokens");
        Dir {
            dir,
            db: other.db.clone(),
        }
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    pub fn base_args(&self) -> Vec<String> {
        vec![
            "serve".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--db".into(),
            self.db.clone(),
            "--tokens".into(),
            self.path("tokens").display().to_string(),
        ]
    }
}

impl Collector {
    pub fn start(dir: &Dir, extra: &[&str]) -> Collector {
        let mut args = dir.base_args();
        args.extend(extra.iter().map(|s| s.to_string()));
        Collector::start_args(&args)
    }

    pub fn start_args(args: &[String]) -> Collector {
        let mut cmd = Command::new(BIN);
        cmd.env("VPCE_COLLECTOR_LOG", "info");
        Collector::start_command(cmd, args)
    }

    /// `cmd` (the binary, with the environment a test chose) run with `args`.
    pub fn start_command(mut cmd: Command, args: &[String]) -> Collector {
        let mut child = cmd
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vpce-collector");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[collector] {line}");
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.to_string());
                }
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => a.parse().expect("address"),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "the collector did not start: {:?}",
                    log.lock().unwrap_or_else(|e| e.into_inner())
                );
            }
        };
        Collector { child, addr, log }
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    pub fn get(&self, path: &str) -> Resp {
        request(self.addr, "GET", path, &[], b"")
    }

    pub fn get_json(&self, path: &str) -> Value {
        let r = self.get(path);
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        serde_json::from_slice(&r.body).expect("JSON answer")
    }

    pub fn post(&self, token: Option<&str>, report: &Value) -> Resp {
        let json = serde_json::to_vec(report).expect("json");
        post_raw(self.addr, token, &json, true, report["report_id"].as_str())
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

/// The request exactly as the probe's HTTP sink sends it.
pub fn post_raw(
    addr: SocketAddr,
    token: Option<&str>,
    json: &[u8],
    compress: bool,
    report_id: Option<&str>,
) -> Resp {
    let body = if compress { gzip(json) } else { json.to_vec() };
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if compress {
        headers.push(("Content-Encoding", "gzip"));
    }
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    if let Some(id) = report_id {
        headers.push(("X-Vpce-Probe-Report-Id", id));
    }
    request(addr, "POST", "/v1/reports", &headers, &body)
}

pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("write head");
    // The server may answer (401, 413) and close before the body is all sent.
    let _ = s.write_all(body);
    read_response(&mut s)
}

pub fn read_response(s: &mut TcpStream) -> Resp {
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

fn fixture_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
}

/// Fixtures are checked against the probe's schema, so they cannot drift from real reports.
pub fn validate(report: &Value) {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    let v = VALIDATOR.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../schema/report.schema.json"
        );
        let schema: Value =
            serde_json::from_slice(&std::fs::read(path).expect("schema")).expect("schema JSON");
        jsonschema::validator_for(&schema).expect("valid schema")
    });
    let errors: Vec<String> = v.iter_errors(report).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "fixture does not match the schema: {errors:?}"
    );
}

pub fn healthy_fixture() -> Value {
    serde_json::from_slice(&std::fs::read(fixture_dir().join("healthy.json")).expect("fixture"))
        .expect("fixture JSON")
}

/// What a test says about a report; the rest comes from the healthy fixture.
pub struct Spec<'a> {
    pub id: &'a str,
    pub instance: &'a str,
    pub account: &'a str,
    pub subnet: &'a str,
    pub started_at: &'a str,
    /// (code, target) root causes; empty means healthy.
    pub problems: &'a [(&'a str, &'a str)],
}

impl Default for Spec<'_> {
    fn default() -> Self {
        Spec {
            id: "00000000-0000-4000-8000-000000000000",
            instance: "i-0123456789abcdef0",
            account: "111122223333",
            subnet: "subnet-0aaa1111",
            started_at: "2026-11-24T10:11:12.345Z",
            problems: &[],
        }
    }
}

pub fn report(spec: Spec<'_>) -> Value {
    let mut r = healthy_fixture();
    r["report_id"] = json!(spec.id);
    r["started_at"] = json!(spec.started_at);
    r["instance"]["instance_id"] = json!(spec.instance);
    r["instance"]["account_id"] = json!(spec.account);
    r["instance"]["subnet_id"] = json!(spec.subnet);
    r["host"]["hostname"] = json!(format!("host-{}", spec.instance));
    if !spec.problems.is_empty() {
        let findings: Vec<Value> = spec
            .problems
            .iter()
            .map(|(code, target)| {
                json!({"code": code, "severity": "error", "target": target,
                       "title": format!("{code} on {target}"), "detail": "detail",
                       "remediation": "fix it", "checklist_item": "network-acl", "check_ids": []})
            })
            .collect();
        let causes: Vec<Value> = spec
            .problems
            .iter()
            .map(|(code, target)| json!({"code": code, "target": target, "title": format!("{code} on {target}")}))
            .collect();
        r["findings"] = json!(findings);
        r["verdict"] = json!({"status": "problems", "summary": "S3 is not reached through the gateway endpoint",
                              "root_causes": causes, "exit_code": 1});
        r["targets"][0]["path"]["reachable"] = json!(false);
        r["targets"][0]["path"]["kind"] = json!("unknown");
    }
    validate(&r);
    r
}

pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}
