//! Running the collector as a service: HTTPS on the listener (a renewed certificate taken
//! without a restart, SIGHUP, a plain HTTP client answered cleanly, check-config's one-line
//! errors), the webhook on verdict changes (a loopback receiver: retries, bearer token, no
//! secret in the log, a full queue dropping and counting instead of slowing ingest), and a
//! stop that lets a report being received finish and keeps it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step stops the test

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

// ---------------------------------------------------------------------------------------------
// TLS

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("CA");
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// (chain PEM, key PEM) of a leaf for 127.0.0.1 and localhost.
    fn leaf(&self, cn: &str) -> (String, String) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        (format!("{}{}", cert.pem(), self.pem), key.serialize_pem())
    }

    fn write_leaf(&self, cn: &str, cert: &Path, key: &Path) {
        let (c, k) = self.leaf(cn);
        std::fs::write(cert, c).expect("cert");
        std::fs::write(key, k).expect("key");
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// An HTTPS client that trusts only `ca_pem`.
fn https_client(ca_pem: &str) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

use rustls_pki_types::pem::PemObject;

/// POSTs a report over HTTPS as the HTTP sink does; Err is a transport (TLS) failure.
fn https_post(
    client: &reqwest::Client,
    addr: SocketAddr,
    report: &serde_json::Value,
) -> Result<(u16, String), String> {
    let body = gzip(&serde_json::to_vec(report).expect("json"));
    let id = report["report_id"].as_str().expect("id").to_string();
    runtime().block_on(async {
        let r = client
            .post(format!("https://localhost:{}/v1/reports", addr.port()))
            .header("Content-Type", "application/json")
            .header("Content-Encoding", "gzip")
            .header("Authorization", format!("Bearer {TOKEN}"))
            .header("X-Vpce-Probe-Report-Id", id)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        let status = r.status().as_u16();
        Ok((status, r.text().await.unwrap_or_default()))
    })
}

fn https_get(client: &reqwest::Client, addr: SocketAddr, path: &str) -> Result<u16, String> {
    runtime().block_on(async {
        client
            .get(format!("https://127.0.0.1:{}{path}", addr.port()))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| format!("{e:?}"))
    })
}

fn signal(c: &Collector, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &c.child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig}");
}

#[test]
fn https_ingest_renewal_sighup_and_a_plain_http_client() {
    let dir = Dir::new();
    let ca = Ca::new("collector test CA");
    let (cert, key) = (dir.path("collector.crt"), dir.path("collector.key"));
    ca.write_leaf("first.collector.test", &cert, &key);
    let c = Collector::start(
        &dir,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let client = https_client(&ca.pem);
    let first = report(Spec {
        id: "bbbbbbbb-0000-4000-8000-000000000001",
        ..Spec::default()
    });
    let (status, text) = https_post(&client, c.addr, &first).expect("HTTPS delivery");
    assert_eq!(status, 201, "{text}");

    // A plain HTTP client gets one clear answer, and nothing is stored.
    let plain = request(c.addr, "GET", "/healthz", &[], b"");
    assert_eq!(plain.status, 400);
    assert!(plain.text().contains("speaks HTTPS"), "{}", plain.text());
    let plain_post = post_raw(c.addr, Some(TOKEN), b"{}", false, None);
    assert_eq!(plain_post.status, 400);
    // Garbage that is neither HTTP nor TLS is closed without an answer or a crash.
    let mut s = TcpStream::connect(c.addr).expect("connect");
    s.write_all(b"\x16\x03\x01\x00\x05hello").expect("write");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert_eq!(https_get(&client, c.addr, "/healthz"), Ok(200));

    // A renewed pair from another CA is taken at the next connection, without a restart.
    let ca2 = Ca::new("renewed CA");
    ca2.write_leaf("second.collector.test", &cert, &key);
    let client2 = https_client(&ca2.pem);
    wait_for("the renewed certificate", Duration::from_secs(10), || {
        https_get(&client2, c.addr, "/healthz") == Ok(200)
    });
    assert!(
        https_get(&client, c.addr, "/healthz").is_err(),
        "the old CA no longer verifies"
    );
    assert!(c.log().contains("TLS certificate loaded"), "{}", c.log());

    // A key that does not match keeps the working pair; SIGHUP says why and does not stop it.
    let (_, other_key) = ca2.leaf("mismatch");
    std::fs::write(&key, other_key).expect("key");
    signal(&c, "-HUP");
    wait_for("the refused reload", Duration::from_secs(10), || {
        c.log().contains("TLS certificate not reloaded")
    });
    assert!(c.log().contains("SIGHUP: reloading"), "{}", c.log());
    assert!(
        c.log().contains("does not match the certificate"),
        "{}",
        c.log()
    );
    let second = report(Spec {
        id: "bbbbbbbb-0000-4000-8000-000000000002",
        started_at: "2026-11-24T10:12:12.345Z",
        ..Spec::default()
    });
    let (status, text) = https_post(&client2, c.addr, &second).expect("still served");
    assert_eq!(status, 201, "{text}");
    let stored = runtime().block_on(async {
        client2
            .get(format!("https://localhost:{}/api/fleet", c.addr.port()))
            .send()
            .await
            .expect("fleet")
            .bytes()
            .await
            .expect("body")
    });
    let stored: serde_json::Value = serde_json::from_slice(&stored).expect("json");
    assert_eq!(stored["instances"][0]["reports"], 2, "{stored}");
}

fn check_config(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("check-config")
        .args(args)
        .output()
        .expect("run check-config");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

#[test]
fn check_config_names_what_is_wrong_with_the_tls_files() {
    let dir = Dir::new();
    let ca = Ca::new("check CA");
    let (cert, key) = (dir.path("c.crt"), dir.path("c.key"));
    ca.write_leaf("check.collector.test", &cert, &key);
    let (_, other_key) = ca.leaf("other");
    std::fs::write(dir.path("other.key"), other_key).expect("key");
    std::fs::write(dir.path("notes.txt"), "not a certificate\n").expect("txt");
    let db = dir.path("reports.db");
    let tokens = dir.path("tokens");
    let base = [
        "--db",
        db.to_str().unwrap(),
        "--tokens",
        tokens.to_str().unwrap(),
    ];
    let with = |c: &Path, k: &Path| {
        let mut a: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        a.extend([
            "--tls-cert".into(),
            c.display().to_string(),
            "--tls-key".into(),
            k.display().to_string(),
        ]);
        a
    };
    let run = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        check_config(&refs)
    };

    let (code, out, err) = run(with(&cert, &key));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("HTTPS: certificate") && out.contains("CN=check.collector.test"),
        "{out}"
    );
    assert!(!out.contains("PRIVATE KEY"), "{out}");

    let cases: [(PathBuf, PathBuf, &str); 4] = [
        (
            dir.path("missing.crt"),
            key.clone(),
            "missing.crt: No such file",
        ),
        (dir.path("notes.txt"), key.clone(), "no PEM certificate"),
        (cert.clone(), dir.path("notes.txt"), "no PEM private key"),
        (
            cert.clone(),
            dir.path("other.key"),
            "does not match the certificate",
        ),
    ];
    for (c, k, want) in cases {
        let (code, out, err) = run(with(&c, &k));
        assert_eq!(code, 2, "{c:?} {k:?}: {err}");
        assert!(out.is_empty(), "{out}");
        assert!(err.contains(want), "want {want:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
    // One of the pair alone, from the flags and from the file.
    let (code, _, err) = check_config(&[
        "--db",
        db.to_str().unwrap(),
        "--tokens",
        tokens.to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--tls-key"), "{err}");
    let file = dir.path("collector.toml");
    std::fs::write(
        &file,
        format!(
            "db = {:?}\ntokens = {:?}\ntls_key = {:?}\n",
            db.display().to_string(),
            tokens.display().to_string(),
            key.display().to_string()
        ),
    )
    .expect("toml");
    let (code, _, err) = check_config(&["--config", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("tls_key is given without tls_cert"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Webhook

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Hooked {
    path: String,
    authorization: Option<String>,
    content_type: Option<String>,
    body: serde_json::Value,
}

/// A loopback webhook receiver: answers the statuses of `script` in turn (then 200), or never
/// answers when `hang`.
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Hooked>>>,
}

impl Receiver {
    fn start(script: Vec<u16>, hang: bool) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        std::thread::spawn(move || {
            let mut script = script.into_iter();
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if hang {
                    held.push(stream); // never answered, never closed
                    continue;
                }
                if let Some(h) = read_request(&stream) {
                    sink.lock().unwrap().push(h);
                    let status = script.next().unwrap_or(200);
                    let mut s = stream;
                    let _ = write!(
                        s,
                        "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                }
            }
        });
        Receiver { addr, got }
    }

    fn got(&self) -> Vec<Hooked> {
        self.got.lock().unwrap().clone()
    }
}

fn read_request(stream: &TcpStream) -> Option<Hooked> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end().to_string();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let len: usize = header("content-length")?.parse().ok()?;
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Hooked {
        path,
        authorization: header("authorization"),
        content_type: header("content-type"),
        body: serde_json::from_slice(&body).ok()?,
    })
}

/// (code, target) root causes of a report; empty means healthy.
type Problems<'a> = &'a [(&'a str, &'a str)];

const HOOK_TOKEN: &str = "hook-secret-token-4242";
const HOOK_PATH: &str = "/services/T000/B000/url-secret-part";

fn metric(c: &Collector, line_prefix: &str) -> Option<f64> {
    c.get("/metrics")
        .text()
        .lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn post_ok(c: &Collector, spec: Spec<'_>) {
    let r = c.post(Some(TOKEN), &report(spec));
    assert_eq!(r.status, 201, "{}", r.text());
}

#[test]
fn webhook_on_verdict_changes_with_retries_and_no_secret_in_the_log() {
    // The first attempt of the first event gets a 503: it is retried.
    let receiver = Receiver::start(vec![503], false);
    let dir = Dir::new();
    std::fs::write(dir.path("hook-token"), format!("{HOOK_TOKEN}\n")).expect("token");
    let url = format!("http://{}{HOOK_PATH}", receiver.addr);
    let c = Collector::start(
        &dir,
        &[
            "--webhook-url",
            &url,
            "--webhook-token-file",
            dir.path("hook-token").to_str().unwrap(),
            "--webhook-timeout-secs",
            "2",
        ],
    );
    let nacl: &[(&str, &str)] = &[("NACL_OUTBOUND_BLOCKS", "s3:app-data")];
    let steps: [(&str, &str, Problems); 5] = [
        (
            "cccccccc-0000-4000-8000-000000000001",
            "2026-11-24T09:00:00Z",
            &[],
        ),
        (
            "cccccccc-0000-4000-8000-000000000002",
            "2026-11-24T09:01:00Z",
            nacl,
        ),
        (
            "cccccccc-0000-4000-8000-000000000003",
            "2026-11-24T09:02:00Z",
            nacl,
        ),
        (
            "cccccccc-0000-4000-8000-000000000004",
            "2026-11-24T09:03:00Z",
            &[],
        ),
        (
            "cccccccc-0000-4000-8000-000000000005",
            "2026-11-24T09:04:00Z",
            &[],
        ),
    ];
    for (id, at, problems) in steps {
        post_ok(
            &c,
            Spec {
                id,
                instance: "i-hook",
                subnet: "subnet-hook",
                started_at: at,
                problems,
                ..Spec::default()
            },
        );
        // One at a time: each report is the instance's newest when its change is looked at.
        std::thread::sleep(Duration::from_millis(200));
    }
    // A new instance that starts broken is an event too; one that starts healthy is not.
    post_ok(
        &c,
        Spec {
            id: "cccccccc-0000-4000-8000-000000000006",
            instance: "i-new-broken",
            subnet: "subnet-hook",
            started_at: "2026-11-24T09:05:00Z",
            problems: nacl,
            ..Spec::default()
        },
    );
    post_ok(
        &c,
        Spec {
            id: "cccccccc-0000-4000-8000-000000000007",
            instance: "i-new-healthy",
            subnet: "subnet-hook",
            started_at: "2026-11-24T09:05:00Z",
            ..Spec::default()
        },
    );
    wait_for("three events delivered", Duration::from_secs(20), || {
        metric(
            &c,
            "vpce_collector_webhook_events_total{result=\"delivered\"}",
        ) == Some(3.0)
    });
    std::thread::sleep(Duration::from_millis(1500)); // nothing more comes
    let got = receiver.got();
    // 4 requests: the first event twice (503, then 200), then two more.
    assert_eq!(got.len(), 4, "{got:#?}");
    assert_eq!(got[0].body, got[1].body, "a retry sends the same event");
    let events: Vec<&serde_json::Value> = got[1..].iter().map(|h| &h.body).collect();
    for h in &got {
        assert_eq!(h.path, HOOK_PATH);
        assert_eq!(
            h.authorization.as_deref(),
            Some(&*format!("Bearer {HOOK_TOKEN}"))
        );
        assert_eq!(h.content_type.as_deref(), Some("application/json"));
    }
    // healthy -> problems
    assert_eq!(events[0]["event"], "verdict_changed");
    assert_eq!(events[0]["instance"], "i-hook");
    assert_eq!(events[0]["subnet_id"], "subnet-hook");
    assert_eq!(events[0]["previous"]["status"], "healthy");
    assert_eq!(events[0]["current"]["status"], "problems");
    assert_eq!(
        events[0]["current"]["root_causes"][0]["code"],
        "NACL_OUTBOUND_BLOCKS"
    );
    assert_eq!(
        events[0]["current"]["root_causes"][0]["target"],
        "s3:app-data"
    );
    assert_eq!(
        events[0]["report_path"],
        "/reports/cccccccc-0000-4000-8000-000000000002"
    );
    // problems -> healthy (the repeated problems report and the second healthy one send nothing)
    assert_eq!(events[1]["previous"]["status"], "problems");
    assert_eq!(
        events[1]["previous"]["report_id"],
        "cccccccc-0000-4000-8000-000000000003"
    );
    assert_eq!(events[1]["current"]["status"], "healthy");
    // the new broken instance
    assert_eq!(events[2]["instance"], "i-new-broken");
    assert!(events[2]["previous"].is_null());
    let log = c.log();
    assert!(log.contains("webhook attempt failed"), "{log}");
    assert!(
        !log.contains(HOOK_TOKEN),
        "the token is never logged: {log}"
    );
    assert!(
        !log.contains("url-secret-part"),
        "the URL's path is never logged: {log}"
    );
    let described = Command::new(BIN)
        .args([
            "check-config",
            "--webhook-url",
            &url,
            "--webhook-token-file",
        ])
        .arg(dir.path("hook-token"))
        .args(dir.base_args().iter().skip(3))
        .output()
        .expect("check-config");
    let described = String::from_utf8_lossy(&described.stdout);
    assert!(
        described.contains(&format!("webhook http://{}/…", receiver.addr)),
        "{described}"
    );
    assert!(!described.contains("url-secret-part") && !described.contains(HOOK_TOKEN));
}

#[test]
fn a_stuck_webhook_never_slows_ingest_and_drops_are_counted() {
    let receiver = Receiver::start(vec![], true);
    let dir = Dir::new();
    let url = format!("http://{}/hook", receiver.addr);
    let c = Collector::start(
        &dir,
        &["--webhook-url", &url, "--webhook-timeout-secs", "5"],
    );
    // 300 new instances, each starting broken: 300 events for a receiver that never answers.
    // The worker holds the first, the queue 256 more, and the other 43 are dropped.
    let nacl: &[(&str, &str)] = &[("NACL_OUTBOUND_BLOCKS", "s3:app-data")];
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for n in 0..300 {
        let id = format!("dddddddd-0000-4000-8000-{n:012}");
        let instance = format!("i-stuck-{n:03}");
        let t = Instant::now();
        post_ok(
            &c,
            Spec {
                id: &id,
                instance: &instance,
                problems: nacl,
                ..Spec::default()
            },
        );
        slowest = slowest.max(t.elapsed());
    }
    eprintln!(
        "300 reports stored in {:?} (slowest {:?}) with the webhook stuck",
        started.elapsed(),
        slowest
    );
    let dropped = "vpce_collector_webhook_events_total{result=\"dropped\"}";
    wait_for("43 dropped events", Duration::from_secs(20), || {
        metric(&c, dropped) == Some(43.0)
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(metric(&c, dropped), Some(43.0));
    assert!(c.log().contains("webhook event dropped"), "{}", c.log());
    assert_eq!(
        c.get_json("/api/fleet")["instances"]
            .as_array()
            .map(Vec::len),
        Some(300)
    );
}

// ---------------------------------------------------------------------------------------------
// Stop

#[test]
fn sigterm_lets_a_report_in_progress_finish_and_keeps_it() {
    let dir = Dir::new();
    let c = Collector::start(&dir, &[]);
    let r = report(Spec {
        id: "eeeeeeee-0000-4000-8000-000000000001",
        ..Spec::default()
    });
    let body = serde_json::to_vec(&r).expect("json");
    let mut s = TcpStream::connect(c.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        s,
        "POST /v1/reports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .expect("head");
    let (first, rest) = body.split_at(body.len() / 2);
    s.write_all(first).expect("first half");
    std::thread::sleep(Duration::from_millis(300));
    signal(&c, "-TERM");
    wait_for("the stop to begin", Duration::from_secs(10), || {
        c.log().contains("stopping: no new connections")
    });
    // The listener is closed: a new client is refused.
    assert!(
        TcpStream::connect(c.addr).is_err(),
        "new connections refused"
    );
    s.write_all(rest).expect("second half");
    let answer = read_response(&mut s);
    assert_eq!(answer.status, 201, "{}", answer.text());
    let mut c = c;
    let status = c.child.wait().expect("exit");
    assert_eq!(status.code(), Some(0));
    assert!(
        c.log().contains("letting requests in progress finish"),
        "{}",
        c.log()
    );
    drop(c);
    let again = Collector::start(&dir, &[]);
    let stored = again.get("/api/reports/eeeeeeee-0000-4000-8000-000000000001");
    assert_eq!(stored.status, 200, "{}", stored.text());
}
