//! `vpce-probe agent` as systemd runs it: the real binary against the loopback fakes of
//! tests/common, a report collector that fails, hangs and recovers, kill -9 and restart, the
//! spool bound, SIGHUP with good and bad files, systemd's notify socket, and the metrics text
//! read by the Prometheus project's own Python parser. Needs root (see tests/common).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step stops the test

mod common;
mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_vpce-probe");

/// The `[probe]` section that points every path of the probe at the lab (as `Lab::args` does).
fn probe_section(lab: &Lab, timeout: &str, deadline: &str) -> String {
    format!(
        r#"[probe]
buckets = ["{bucket}"]
tables = ["{table}"]
ip_ranges = "{ranges}"
resolv_conf = "{resolv}"
hosts_file = "{hosts}"
nsswitch_conf = "{nsswitch}"
vpc_resolver = "{vpc}"
internet_canary = "{canary}"
expect_issuers = ["{issuer}"]
timeout = "{timeout}"
deadline = "{deadline}"
"#,
        bucket = lab.bucket,
        table = lab.table,
        ranges = lab.ranges_file.display(),
        resolv = lab.resolv_conf.display(),
        hosts = lab.hosts_file.display(),
        nsswitch = lab.nsswitch_conf.display(),
        vpc = lab.vpc_dns_addr().ip(),
        canary = lab.canary_addr(),
        issuer = LAB_CA_NAME,
    )
}

/// An agent file with one directory sink: the shape most tests need.
fn dir_sink_config(
    lab: &Lab,
    interval: &str,
    (timeout, deadline): (&str, &str),
    metrics_listen: &str,
    archive: &Path,
) -> String {
    format!(
        r#"interval = "{interval}"
jitter = "0s"
{probe}
[metrics]
listen = "{metrics_listen}"

[spool]
dir = "{spool}"

[[sink]]
type = "dir"
path = "{archive}"
"#,
        probe = probe_section(lab, timeout, deadline),
        spool = lab.dir.path().join("spool").display(),
        archive = archive.display(),
    )
}

/// A running agent; killed (SIGKILL) when dropped. Its stderr is collected line by line.
struct Agent {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    fn start(lab: &Lab, config: &Path, extra_env: &[(&str, String)]) -> Agent {
        let mut cmd = Command::new(BIN);
        cmd.args(["agent", "--config"])
            .arg(config)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", lab.dir.path())
            .env("AWS_CONFIG_FILE", lab.dir.path().join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                lab.dir.path().join("no-aws-credentials"),
            )
            .env("VPCE_PROBE_LOG", "warn,vpce_probe=info,vpce_probe::agent::shipper=debug,aws_runtime::env_config=error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in &lab.env {
            cmd.env(k, v);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start vpce-probe agent");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[agent] {line}");
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        Agent { child, log }
    }

    fn log(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name}");
    }

    /// SIGTERM, then the exit status and how long the agent took to go.
    fn terminate(mut self) -> (std::process::ExitStatus, Duration) {
        let asked = Instant::now();
        self.signal("TERM");
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return (status, asked.elapsed());
            }
            assert!(
                asked.elapsed() < Duration::from_secs(60),
                "the agent ignored SIGTERM for a minute:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Report ids found as `<id>.json` in a directory sink.
fn dir_report_ids(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(".json"))
                        .filter(|n| !n.starts_with('.'))
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Entries (`*.json`) left in a spool directory.
fn spool_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.ends_with(".json") && !n.starts_with('.'))
                })
                .count()
        })
        .unwrap_or(0)
}

fn wait_for(what: &str, timeout: Duration, agent: &Agent, cond: impl FnMut() -> bool) {
    assert!(
        wait_until(timeout, cond),
        "timed out waiting for {what}; agent log:\n{}",
        agent.log()
    );
}

/// One HTTP GET on loopback; (status, body).
fn http_get(addr: SocketAddr, path: &str, accept: &str) -> (u16, String) {
    try_http_get(addr, path, accept).expect("connect to the metrics listener")
}

/// None while nothing listens yet.
fn try_http_get(addr: SocketAddr, path: &str, accept: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .expect("write request");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    Some((status, body.to_string()))
}

fn metric_value(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn every_report_reaches_the_collector_once_after_dedup_through_failures_hangs_and_kill_9() {
    let lab = Lab::healthy(31);
    let collector_ip = Lab::ip(31, 3, 1);
    let leaf = lab.ca.issue(&[&collector_ip.to_string()]);
    let collector = start_collector(SocketAddr::new(collector_ip, 0), &leaf);
    let token = lab.dir.path().join("token");
    std::fs::write(&token, "s3cr3t-collector-token\n").expect("token");
    let spool = lab.dir.path().join("spool");
    let archive = lab.dir.path().join("archive");
    std::fs::create_dir(&archive).expect("archive dir");
    let config = lab.dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"interval = "1s"
jitter = "0s"
{probe}
[metrics]
listen = "none"

[spool]
dir = "{spool}"

[shipping]
retry_initial = "100ms"
retry_max = "800ms"
timeout = "1s"

[[sink]]
type = "http"
name = "collector"
url = "https://{ip}:{port}/reports"
bearer_token_file = "{token}"
ca_file = "{ca}"

[[sink]]
type = "dir"
name = "archive"
path = "{archive}"
"#,
            probe = probe_section(&lab, "500ms", "900ms"),
            spool = spool.display(),
            ip = collector_ip,
            port = collector.addr.port(),
            token = token.display(),
            ca = lab.ca_file.display(),
            archive = archive.display(),
        ),
    )
    .expect("config");

    let agent = Agent::start(&lab, &config, &[]);
    wait_for(
        "two reports at the collector",
        Duration::from_secs(30),
        &agent,
        || collector.report_ids().len() >= 2,
    );
    // Failing: reports pile up in the spool, the archive keeps getting them.
    collector.set_mode(CollectorMode::Fail);
    let before = dir_report_ids(&archive).len();
    // Until a 500 is logged too: on a loaded machine one attempt can time out first.
    wait_for(
        "two reports while the collector fails, and its 500 logged",
        Duration::from_secs(30),
        &agent,
        || {
            dir_report_ids(&archive).len() >= before + 2
                && agent.log().contains("the collector answered 500")
        },
    );
    // Storing without answering: the agent times out and sends the same report again.
    collector.set_mode(CollectorMode::StoreThenHang);
    let stored = collector.received().len();
    wait_for(
        "a duplicate delivery",
        Duration::from_secs(30),
        &agent,
        || collector.received().len() >= stored + 2,
    );
    collector.set_mode(CollectorMode::Hang);
    let before = dir_report_ids(&archive).len();
    wait_for(
        "a report while the collector hangs",
        Duration::from_secs(30),
        &agent,
        || dir_report_ids(&archive).len() > before,
    );
    assert!(spool_entries(&spool) > 0, "undelivered reports are spooled");
    let log = agent.log();
    assert!(
        log.contains("cannot ship a report") && log.contains("500"),
        "failures are logged:\n{log}"
    );
    assert!(
        !log.contains("s3cr3t-collector-token"),
        "the token never reaches the log"
    );
    agent.kill9();

    // Restarted: what the spool holds goes out first.
    collector.set_mode(CollectorMode::Accept);
    let agent = Agent::start(&lab, &config, &[]);
    wait_for(
        "every archived report at the collector",
        Duration::from_secs(60),
        &agent,
        || {
            let archived = dir_report_ids(&archive);
            let at_collector: BTreeSet<String> = collector.report_ids().into_iter().collect();
            !archived.is_empty() && archived.is_subset(&at_collector)
        },
    );
    let (status, took) = agent.terminate();
    assert!(status.success(), "clean stop: {status:?}");
    assert!(
        took < Duration::from_secs(15),
        "stopped within the bound: {took:?}"
    );

    let archived = dir_report_ids(&archive);
    let at_collector: BTreeSet<String> = collector.report_ids().into_iter().collect();
    // Exactly once after dedup: the same set, none missing, none invented.
    assert_eq!(archived, at_collector);
    let received = collector.received();
    assert!(
        received.len() > at_collector.len(),
        "the hang produced duplicates for the collector to drop ({} deliveries, {} reports)",
        received.len(),
        at_collector.len()
    );
    for r in &received {
        assert_eq!(
            r.authorization.as_deref(),
            Some("Bearer s3cr3t-collector-token")
        );
        assert_eq!(r.content_encoding.as_deref(), Some("gzip"));
        assert_eq!(r.id_header.as_deref(), Some(r.report_id.as_str()));
        assert_eq!(r.json["tool"]["name"], "vpce-probe");
    }
    assert!(
        collector.attempts() > received.len(),
        "failed attempts were retried"
    );
    assert_eq!(
        spool_entries(&spool),
        0,
        "the spool is empty once both sinks have everything"
    );
}

#[test]
fn the_spool_bound_drops_the_oldest_reports_and_counts_them() {
    let lab = Lab::healthy(32);
    let collector_ip = Lab::ip(32, 3, 1);
    let leaf = lab.ca.issue(&[&collector_ip.to_string()]);
    let collector = start_collector(SocketAddr::new(collector_ip, 0), &leaf);
    collector.set_mode(CollectorMode::Fail);
    let spool = lab.dir.path().join("spool");
    let metrics_addr = SocketAddr::new(Lab::ip(32, 4, 1), 9731);
    let config = lab.dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"interval = "1s"
jitter = "0s"
{probe}
[metrics]
listen = "{metrics_addr}"

[spool]
dir = "{spool}"
max_bytes = 1

[shipping]
retry_initial = "100ms"
retry_max = "200ms"

[[sink]]
type = "http"
url = "https://{ip}:{port}/reports"
ca_file = "{ca}"
"#,
            probe = probe_section(&lab, "500ms", "900ms"),
            spool = spool.display(),
            ip = collector_ip,
            port = collector.addr.port(),
            ca = lab.ca_file.display(),
        ),
    )
    .expect("config");
    let agent = Agent::start(&lab, &config, &[]);
    let dropped = || {
        try_http_get(metrics_addr, "/metrics", "text/plain")
            .and_then(|(_, text)| {
                metric_value(&text, "vpce_probe_reports_dropped_total{reason=\"size\"}")
            })
            .unwrap_or(0.0)
    };
    wait_for(
        "three reports dropped by the size bound",
        Duration::from_secs(30),
        &agent,
        || dropped() >= 3.0,
    );
    // max_bytes = 1: only the newest report is kept (the bound never drops the newest).
    assert_eq!(spool_entries(&spool), 1);
    assert!(
        agent.log().contains("drop"),
        "drops are logged:\n{}",
        agent.log()
    );
    let (_, text) = http_get(metrics_addr, "/metrics", "text/plain");
    assert_eq!(metric_value(&text, "vpce_probe_spool_entries"), Some(1.0));
    let spooled = metric_value(&text, "vpce_probe_reports_spooled_total").unwrap_or(0.0);
    assert!(spooled >= 4.0, "{text}");
    assert!(
        metric_value(&text, "vpce_probe_ship_failures_total{sink=\"http-1\"}").unwrap_or(0.0) > 0.0,
        "{text}"
    );
    collector.set_mode(CollectorMode::Accept);
    wait_for(
        "the survivor delivered",
        Duration::from_secs(30),
        &agent,
        || !collector.report_ids().is_empty(),
    );
    let (status, _) = agent.terminate();
    assert!(status.success());
    // Dropped reports never arrive: fewer delivered than spooled.
    assert!((collector.report_ids().len() as f64) < spooled);
}

#[test]
fn sighup_applies_a_good_file_and_keeps_the_old_one_when_the_new_is_bad() {
    let lab = Lab::healthy(33);
    let first = lab.dir.path().join("first");
    let second = lab.dir.path().join("second");
    std::fs::create_dir(&first).expect("dir");
    std::fs::create_dir(&second).expect("dir");
    let metrics_addr = SocketAddr::new(Lab::ip(33, 4, 1), 9731);
    let config = lab.dir.path().join("agent.toml");
    let write = |archive: &Path, extra: &str| {
        let body = dir_sink_config(
            &lab,
            "1s",
            ("500ms", "900ms"),
            &metrics_addr.to_string(),
            archive,
        );
        std::fs::write(&config, format!("{extra}\n{body}")).expect("config");
    };
    write(&first, "");
    let notify_path = lab.dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("notify socket");
    let agent = Agent::start(
        &lab,
        &config,
        &[
            ("NOTIFY_SOCKET", notify_path.display().to_string()),
            ("WATCHDOG_USEC", "400000".into()),
        ],
    );
    // Read like systemd does, all along (a full socket would block the sender).
    let notified = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = notified.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = notify.recv(&mut buf) {
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    let count = |what: &str| {
        notified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|m| m.contains(what))
            .count()
    };
    // systemd's protocol: READY once started, then WATCHDOG pings while the schedule is alive.
    wait_for(
        "READY=1 and two WATCHDOG=1",
        Duration::from_secs(20),
        &agent,
        || count("READY=1") >= 1 && count("WATCHDOG=1") >= 2,
    );
    wait_for(
        "a report in the first directory",
        Duration::from_secs(30),
        &agent,
        || !dir_report_ids(&first).is_empty(),
    );

    // A bad file: refused with the reason, the old configuration keeps working.
    write(&second, "intervall = \"2s\"");
    agent.signal("HUP");
    wait_for(
        "the refusal in the log",
        Duration::from_secs(20),
        &agent,
        || agent.log().contains("reload refused"),
    );
    let log = agent.log();
    assert!(log.contains("intervall"), "the bad key is named:\n{log}");
    let before = dir_report_ids(&first).len();
    wait_for(
        "reports still in the first directory",
        Duration::from_secs(30),
        &agent,
        || dir_report_ids(&first).len() >= before + 2,
    );
    assert!(dir_report_ids(&second).is_empty());
    let (_, text) = http_get(metrics_addr, "/metrics", "text/plain");
    assert_eq!(
        metric_value(&text, "vpce_probe_config_reloads_total{result=\"error\"}"),
        Some(1.0)
    );

    // A good file: the new sink takes over.
    write(&second, "");
    agent.signal("HUP");
    wait_for(
        "reports in the second directory",
        Duration::from_secs(30),
        &agent,
        || dir_report_ids(&second).len() >= 2,
    );
    let (_, text) = http_get(metrics_addr, "/metrics", "text/plain");
    assert_eq!(
        metric_value(&text, "vpce_probe_config_reloads_total{result=\"ok\"}"),
        Some(1.0)
    );
    assert_eq!(
        count("RELOADING=1"),
        2,
        "both reloads are announced to systemd"
    );
    assert!(count("READY=1") >= 3, "and their end");
    let (status, took) = agent.terminate();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");
}

/// The exposition text as the Prometheus Python client's parsers read it: "name{labels} value"
/// per sample, sorted; the parser raises on anything malformed.
fn parse_with_prometheus_client(text: &str, openmetrics: bool) -> Vec<String> {
    let moto = std::env::var("VPCE_PROBE_MOTO").unwrap_or_else(|_| MOTO_DEFAULT_PATH.into());
    let python = Path::new(&moto).with_file_name("python");
    let parser = if openmetrics {
        "from prometheus_client.openmetrics.parser import text_string_to_metric_families"
    } else {
        "from prometheus_client.parser import text_string_to_metric_families"
    };
    let script = format!(
        r#"import sys
{parser}
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f'{{k}}="{{v}}"' for k, v in sorted(s.labels.items()))
        out.append(f"{{s.name}}{{{{{{labels}}}}}} {{s.value}} {{family.type}}")
print("\n".join(sorted(out)))
"#
    );
    let mut child = Command::new(&python)
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (scripts/install-deps.sh installs it)",
                python.display()
            )
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write metrics");
    let out = child.wait_with_output().expect("parser");
    assert!(
        out.status.success(),
        "the Prometheus parser refused the text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn metrics_parse_with_the_prometheus_parser_and_describe_the_last_run() {
    let lab = Lab::healthy(34);
    let metrics_addr = SocketAddr::new(Lab::ip(34, 4, 1), 9731);
    let archive = lab.dir.path().join("archive");
    std::fs::create_dir(&archive).expect("dir");
    let config = lab.dir.path().join("agent.toml");
    std::fs::write(
        &config,
        dir_sink_config(
            &lab,
            "3s",
            ("1s", "2s"),
            &metrics_addr.to_string(),
            &archive,
        ),
    )
    .expect("config");
    let agent = Agent::start(&lab, &config, &[]);
    wait_for("a shipped report", Duration::from_secs(30), &agent, || {
        try_http_get(metrics_addr, "/metrics", "text/plain")
            .and_then(|(_, text)| {
                metric_value(&text, "vpce_probe_reports_shipped_total{sink=\"dir-1\"}")
            })
            .is_some_and(|v| v >= 1.0)
    });
    let (status, text) = http_get(metrics_addr, "/metrics", "text/plain");
    assert_eq!(status, 200);
    let samples = parse_with_prometheus_client(&text, false);
    let has = |prefix: &str| samples.iter().any(|s| s.starts_with(prefix));
    let value = |prefix: &str| -> f64 {
        samples
            .iter()
            .find(|s| s.starts_with(prefix))
            .and_then(|s| s.split(' ').nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no sample {prefix} in {samples:#?}"))
    };
    let s3 = format!("s3:{BUCKET}");
    let ddb = format!("dynamodb:{TABLE}");
    for target in [&s3, &ddb] {
        for check in ["dns", "tcp", "tls"] {
            assert_eq!(
                value(&format!(
                    "vpce_probe_check_success{{check=\"{check}\",target=\"{target}\"}}"
                )),
                1.0,
                "{check} {target}"
            );
        }
        for phase in ["dns", "connect", "tls"] {
            let seconds = value(&format!(
                "vpce_probe_phase_duration_seconds{{phase=\"{phase}\",target=\"{target}\"}}"
            ));
            assert!((0.0..2.0).contains(&seconds), "{phase} {target}: {seconds}");
        }
        assert_eq!(
            value(&format!(
                "vpce_probe_path{{confidence=\"confirmed\",kind=\"gateway-endpoint\",target=\"{target}\"}}"
            )),
            1.0
        );
        assert_eq!(
            value(&format!(
                "vpce_probe_target_reachable{{target=\"{target}\"}}"
            )),
            1.0
        );
    }
    assert_eq!(value("vpce_probe_healthy{} "), 1.0);
    assert_eq!(value("vpce_probe_last_exit_code{} "), 0.0);
    assert!(value("vpce_probe_runs_total{result=\"healthy\"}") >= 1.0);
    assert!(value("vpce_probe_last_run_timestamp_seconds{} ") > 1.7e9);
    assert!(value("vpce_probe_reports_spooled_total{} ") >= 1.0);
    assert!(has("vpce_probe_build_info{features="), "{samples:#?}");
    let build = format!(
        "vpce_probe_build_info{{features=\"{}\",version=\"{}\"}} 1",
        if cfg!(feature = "control-plane") {
            "control-plane"
        } else {
            ""
        },
        env!("CARGO_PKG_VERSION")
    );
    assert!(has(&build), "{build} in {samples:#?}");
    // The OpenMetrics flavour, for scrapers that ask for it, is valid too.
    let (status, om) = http_get(metrics_addr, "/metrics", "application/openmetrics-text");
    assert_eq!(status, 200);
    assert!(om.trim_end().ends_with("# EOF"));
    let om_samples = parse_with_prometheus_client(&om, true);
    assert!(
        om_samples
            .iter()
            .any(|s| s.starts_with("vpce_probe_check_success"))
    );

    assert_eq!(http_get(metrics_addr, "/healthz", "*/*").0, 200);
    assert_eq!(http_get(metrics_addr, "/nope", "*/*").0, 404);
    let (status, _) = agent.terminate();
    assert!(status.success());
}

#[test]
fn a_bad_config_or_a_taken_port_stops_the_agent_at_start_with_one_line() {
    let lab = Lab::healthy(35);
    let config = lab.dir.path().join("agent.toml");
    std::fs::write(&config, "interval = \"1s\"\n[probe]\nbukets = [\"b\"]\n").expect("config");
    let out = Command::new(BIN)
        .args(["agent", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("bukets") && last.contains("line 3"),
        "{stderr}"
    );

    let taken = std::net::TcpListener::bind(SocketAddr::new(Lab::ip(35, 4, 1), 0)).expect("bind");
    std::fs::write(
        &config,
        format!(
            "{probe}\n[metrics]\nlisten = \"{addr}\"\n",
            probe = probe_section(&lab, "1s", "2s"),
            addr = taken.local_addr().expect("addr"),
        ),
    )
    .expect("config");
    let out = Command::new(BIN)
        .args(["agent", "--config"])
        .arg(&config)
        .env("VPCE_PROBE_LOG", "off")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot listen on"), "{stderr}");
}

#[test]
fn probe_ship_sends_the_report_to_a_directory_and_a_collector_and_fails_loudly() {
    let lab = Lab::healthy(36);
    let collector_ip = Lab::ip(36, 3, 1);
    let leaf = lab.ca.issue(&[&collector_ip.to_string()]);
    let collector = start_collector(SocketAddr::new(collector_ip, 0), &leaf);
    let archive = lab.dir.path().join("archive");
    std::fs::create_dir(&archive).expect("dir");
    let token = lab.dir.path().join("token");
    std::fs::write(&token, "tok-36").expect("token");
    let url = format!("https://{collector_ip}:{}/in", collector.addr.port());
    let archive_arg = archive.display().to_string();
    let token_arg = token.display().to_string();
    let ca_arg = lab.ca_file.display().to_string();
    let out = lab.probe(&[
        "--ship",
        &url,
        "--ship",
        &archive_arg,
        "--ship-token-file",
        &token_arg,
        "--ship-ca-file",
        &ca_arg,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let id = out.report()["report_id"]
        .as_str()
        .expect("report_id")
        .to_string();
    assert_eq!(dir_report_ids(&archive), BTreeSet::from([id.clone()]));
    assert_eq!(collector.report_ids(), vec![id]);
    assert_eq!(
        collector.received()[0].authorization.as_deref(),
        Some("Bearer tok-36")
    );

    // A collector that keeps failing: the report is printed, the exit code says it did not go.
    collector.set_mode(CollectorMode::Fail);
    let out = lab.probe(&["--ship", &url, "--ship-ca-file", &ca_arg]);
    assert_eq!(out.code, 3, "{}", out.stdout);
    assert!(out.stderr.contains("was not shipped"), "{}", out.stderr);
    assert!(out.stderr.contains("500"), "{}", out.stderr);
    assert!(out.report.is_some(), "the report is still written");

    // Bad destinations are usage errors, before anything is probed.
    for (args, want) in [
        (vec!["--ship", "ftp://x/y"], "--ship 'ftp://x/y'"),
        (vec!["--ship", "relative/dir"], "absolute"),
        (vec!["--ship", "s3://Bad_Bucket/p/"], "Bad_Bucket"),
        (vec!["--ship", "/nonexistent-dir-36"], "no such directory"),
        (
            vec!["--ship-token-file", "/nonexistent-token"],
            "--ship-token-file",
        ),
    ] {
        let mut full = lab.args();
        full.extend(args.iter().map(|s| s.to_string()));
        let out = lab.run(&full);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(want), "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    }
}

/// The S3 sink against moto (behind the lab's TLS fronts): one object per report, keyed by
/// date, instance and report_id.
#[test]
fn probe_ship_to_s3_puts_one_object_keyed_by_date_instance_and_report_id() {
    let lab = Lab::aws(
        37,
        ImdsFacts::example(),
        FrontOptions::default(),
        FrontOptions::default(),
        true,
    );
    let reports_bucket = lab.bucket.clone();
    let out = lab.probe(&["--ship", &format!("s3://{reports_bucket}/vpce-probe/")]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    let report = out.report();
    let id = report["report_id"].as_str().expect("report_id");
    let date = &report["started_at"].as_str().expect("started_at")[..10];
    let instance = report["instance"]["instance_id"]
        .as_str()
        .expect("instance id");
    let key = format!("vpce-probe/{}/{instance}/{id}.json", date.replace('-', "/"));
    let body = moto().get_object(&reports_bucket, &key, REGION);
    let shipped: serde_json::Value = serde_json::from_slice(&body).expect("JSON object");
    assert_eq!(shipped["report_id"], id);
}

#[test]
fn sigterm_abandons_a_run_that_would_outlast_the_grace_and_still_exits_cleanly() {
    let mut lab = Lab::healthy(38);
    let s3 = lab.s3_ip().to_string();
    // S3 black-holed with a long timeout: the run waits far longer than the stop grace.
    lab.drop_packets("OUTPUT", &["-d", &s3, "-p", "tcp", "--dport", "443"]);
    let archive = lab.dir.path().join("archive");
    std::fs::create_dir(&archive).expect("dir");
    let config = lab.dir.path().join("agent.toml");
    std::fs::write(
        &config,
        dir_sink_config(&lab, "60s", ("30s", "40s"), "none", &archive),
    )
    .expect("config");
    let agent = Agent::start(&lab, &config, &[]);
    wait_for(
        "the agent to start",
        Duration::from_secs(20),
        &agent,
        || agent.log().contains("agent started"),
    );
    std::thread::sleep(Duration::from_millis(500));
    let log_before = agent.log();
    let log = agent.log.clone();
    let (status, took) = agent.terminate();
    assert!(status.success(), "{status:?}");
    // 5 s of run grace, then the spool flush (nothing to flush): well under the 30 s timeout.
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(15),
        "stopped after {took:?}"
    );
    assert!(
        !log_before.contains("run finished"),
        "the run was still going"
    );
    let log = log.lock().unwrap_or_else(|e| e.into_inner()).join("\n");
    assert!(log.contains("abandoned the run in progress"), "{log}");
    assert!(
        dir_report_ids(&archive).is_empty(),
        "an abandoned run ships nothing"
    );
}

/// An agent file with one HTTP sink named "collector" and the metrics listener.
fn http_sink_config(
    lab: &Lab,
    collector: &Collector,
    collector_ip: std::net::IpAddr,
    metrics_addr: SocketAddr,
    extra_shipping: &str,
) -> String {
    format!(
        r#"interval = "1s"
jitter = "0s"
{probe}
[metrics]
listen = "{metrics_addr}"

[spool]
dir = "{spool}"

[shipping]
retry_initial = "100ms"
retry_max = "500ms"
timeout = "1s"
{extra_shipping}

[[sink]]
type = "http"
name = "collector"
url = "https://{collector_ip}:{port}/reports"
ca_file = "{ca}"
"#,
        probe = probe_section(lab, "500ms", "900ms"),
        spool = lab.dir.path().join("spool").display(),
        port = collector.addr.port(),
        ca = lab.ca_file.display(),
    )
}

#[test]
fn a_refused_report_goes_to_dead_letter_and_the_next_one_is_delivered() {
    let lab = Lab::healthy(37);
    let collector_ip = Lab::ip(37, 3, 1);
    let leaf = lab.ca.issue(&[&collector_ip.to_string()]);
    let collector = start_collector(SocketAddr::new(collector_ip, 0), &leaf);
    collector.set_mode(CollectorMode::RefuseOnce(
        422,
        "schema_version 0.9 is not supported",
    ));
    let metrics_addr = SocketAddr::new(Lab::ip(37, 4, 1), 9731);
    let config = lab.dir.path().join("agent.toml");
    std::fs::write(
        &config,
        http_sink_config(&lab, &collector, collector_ip, metrics_addr, ""),
    )
    .expect("config");
    let spool = lab.dir.path().join("spool");
    let agent = Agent::start(&lab, &config, &[]);
    wait_for(
        "a report delivered after the refused one",
        Duration::from_secs(60),
        &agent,
        || !collector.report_ids().is_empty(),
    );
    let refused = collector.refused();
    assert_eq!(refused.len(), 1, "one refusal: {refused:?}");
    let refused_id = &refused[0];
    assert!(!refused_id.is_empty());
    // Not retried: the refused report never reaches the collector again.
    assert!(
        !collector.report_ids().contains(refused_id),
        "the refused report was not sent again"
    );
    let dead = spool.join("dead-letter").join("collector");
    let copy: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dead.join(format!("{refused_id}.json"))).expect("dead-letter copy"),
    )
    .expect("JSON");
    assert_eq!(copy["report_id"], refused_id.as_str());
    let why = std::fs::read_to_string(dead.join(format!("{refused_id}.why"))).expect(".why");
    assert_eq!(why, "422 schema_version 0.9 is not supported\n");

    wait_for(
        "the dead-letter counter",
        Duration::from_secs(30),
        &agent,
        || {
            try_http_get(metrics_addr, "/metrics", "text/plain")
                .and_then(|(_, text)| {
                    metric_value(
                        &text,
                        "vpce_probe_reports_dead_lettered_total{sink=\"collector\"}",
                    )
                })
                .is_some_and(|v| v == 1.0)
        },
    );
    let (status, body) = http_get(metrics_addr, "/healthz", "text/plain");
    assert_eq!(
        (status, body.as_str()),
        (200, "ok\n"),
        "a refusal is no outage"
    );
    let log = agent.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("refused a report for good"))
        .collect();
    assert_eq!(warnings.len(), 1, "logged once:\n{log}");
    assert!(
        warnings[0].contains("WARN") && warnings[0].contains("422"),
        "{}",
        warnings[0]
    );
    let (status, _) = agent.terminate();
    assert!(status.success(), "clean stop: {status:?}");
    // Reopened by the next agent: the dead-letter directory is not counted as a stray file.
    let agent = Agent::start(&lab, &config, &[]);
    wait_for(
        "metrics after a restart",
        Duration::from_secs(30),
        &agent,
        || {
            try_http_get(metrics_addr, "/metrics", "text/plain")
                .is_some_and(|(_, t)| t.contains("vpce_probe_spool_skipped_files_total 0"))
        },
    );
}

#[test]
fn the_dead_letter_directory_keeps_its_size_bound_and_counts_what_it_prunes() {
    let lab = Lab::healthy(49);
    let collector_ip = Lab::ip(49, 3, 1);
    let leaf = lab.ca.issue(&[&collector_ip.to_string()]);
    let collector = start_collector(SocketAddr::new(collector_ip, 0), &leaf);
    let metrics_addr = SocketAddr::new(Lab::ip(49, 4, 1), 9731);
    let config = lab.dir.path().join("agent.toml");
    // A bound of one byte: every new dead letter pushes the previous one out.
    let text = http_sink_config(&lab, &collector, collector_ip, metrics_addr, "")
        .replace("[shipping]", "dead_letter_max_bytes = 1\n\n[shipping]");
    std::fs::write(&config, text).expect("config");
    let dead = lab
        .dir
        .path()
        .join("spool")
        .join("dead-letter")
        .join("collector");
    let agent = Agent::start(&lab, &config, &[]);
    for n in 1..=3 {
        collector.set_mode(CollectorMode::RefuseOnce(400, "report_id missing"));
        wait_for("one more refusal", Duration::from_secs(60), &agent, || {
            collector.refused().len() == n
        });
    }
    let refused = collector.refused();
    let last = refused.last().expect("three refusals");
    wait_for(
        "the pruned dead letters in the metrics",
        Duration::from_secs(30),
        &agent,
        || {
            try_http_get(metrics_addr, "/metrics", "text/plain")
                .and_then(|(_, text)| {
                    metric_value(
                        &text,
                        "vpce_probe_dead_letters_pruned_total{reason=\"size\"}",
                    )
                })
                .is_some_and(|v| v == 2.0)
        },
    );
    let mut left: Vec<String> = std::fs::read_dir(&dead)
        .expect("dead-letter directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [format!("{last}.json"), format!("{last}.why")],
        "only the newest dead letter is left"
    );
    let log = agent.log();
    assert_eq!(
        log.matches("spool: deleted a dead letter").count(),
        2,
        "each deletion logged:\n{log}"
    );
    let (status, _) = agent.terminate();
    assert!(status.success(), "clean stop: {status:?}");
}

#[test]
fn healthz_turns_503_while_a_sink_fails_past_unhealthy_after_and_200_when_it_recovers() {
    let lab = Lab::healthy(39);
    let collector_ip = Lab::ip(39, 3, 1);
    let leaf = lab.ca.issue(&[&collector_ip.to_string()]);
    let collector = start_collector(SocketAddr::new(collector_ip, 0), &leaf);
    collector.set_mode(CollectorMode::Fail);
    let metrics_addr = SocketAddr::new(Lab::ip(39, 4, 1), 9731);
    let config = lab.dir.path().join("agent.toml");
    std::fs::write(
        &config,
        http_sink_config(
            &lab,
            &collector,
            collector_ip,
            metrics_addr,
            "unhealthy_after = \"2s\"",
        ),
    )
    .expect("config");
    let agent = Agent::start(&lab, &config, &[]);
    let healthz = || try_http_get(metrics_addr, "/healthz", "text/plain");
    wait_for(
        "a 503 from /healthz",
        Duration::from_secs(60),
        &agent,
        || healthz().is_some_and(|(s, _)| s == 503),
    );
    let (status, body) = http_get(metrics_addr, "/healthz", "text/plain");
    assert_eq!(status, 503);
    assert!(
        body.contains("sink collector")
            && body.contains("500")
            && body.trim_end().lines().count() == 1,
        "one line saying why: {body:?}"
    );
    collector.set_mode(CollectorMode::Accept);
    wait_for(
        "a 200 from /healthz",
        Duration::from_secs(60),
        &agent,
        || healthz().is_some_and(|(s, b)| s == 200 && b == "ok\n"),
    );
    assert!(
        !collector.report_ids().is_empty(),
        "delivered after recovery"
    );
}
