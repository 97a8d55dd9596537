//! Input that is hostile or just wrong: durations near u64::MAX, files that never end or never
//! open, broken CA bundles, values with terminal escapes or megabytes long, a collector that
//! redirects, and files `check-config` must refuse exactly as the agent's start does. Through
//! the real binary, every run bounded by a timeout of the harness. Needs root (see tests/common).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step stops the test

mod common;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_vpce-probe");
/// Far above what any of these runs takes; a run still going then has hung.
const LIMIT: Duration = Duration::from_secs(60);

/// Runs the binary with a clean environment; kills it and fails the test after `LIMIT`.
fn run_bounded(args: &[&str], env: &[(String, String)], home: &Path) -> Outcome {
    let mut child = Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_CONFIG_FILE", home.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            home.join("no-aws-credentials"),
        )
        .env("VPCE_PROBE_LOG", "off")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vpce-probe");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = r.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} still running after {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Outcome {
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().expect("stdout thread"),
        stderr: stderr.join().expect("stderr thread"),
        report: None,
    }
}

/// Exit 2 with exactly one line on stderr, which contains every one of `want`.
fn refused(out: &Outcome, what: &str, want: &[&str]) {
    assert_eq!(out.code, 2, "{what}: {}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{what}: {}", out.stderr);
    for w in want {
        assert!(
            out.stderr.contains(w),
            "{what}: want {w:?} in {}",
            out.stderr
        );
    }
}

/// An agent file whose `[probe]` section is valid on its own (the host's resolv.conf is not
/// read); `top` goes before it, `rest` after it.
fn agent_file(dir: &Path, name: &str, top: &str, rest: &str) -> PathBuf {
    let resolv = dir.join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.1\n").expect("resolv.conf");
    let text = format!(
        "{top}\n[probe]\nbuckets = [\"mybucket\"]\nresolv_conf = \"{}\"\n\n[metrics]\nlisten = \"none\"\n{rest}\n",
        resolv.display()
    );
    let path = dir.join(name);
    std::fs::write(&path, text).expect("config");
    path
}

#[test]
fn durations_above_the_maximum_are_refused_with_the_key_the_value_and_the_maximum() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path();
    let cases = [
        (
            "interval = \"300000000000y\"",
            "",
            "interval",
            "300000000000y",
        ),
        ("jitter = \"8d\"", "", "jitter", "8d"),
        (
            "",
            "[shipping]\ntimeout = \"18446744073709551615s\"",
            "shipping.timeout",
            "18446744073709551615s",
        ),
        (
            "",
            "[shipping]\nretry_max = \"500000000000y\"",
            "shipping.retry_max",
            "500000000000y",
        ),
        (
            "",
            "[shipping]\nretry_initial = \"10000000000000000000s\"",
            "shipping.retry_initial",
            "10000000000000000000s",
        ),
        ("", "[spool]\nmax_age = \"5000y\"", "spool.max_age", "5000y"),
    ];
    for (i, (top, rest, key, value)) in cases.into_iter().enumerate() {
        let config = agent_file(home, &format!("d{i}.toml"), top, rest);
        let config = config.to_str().expect("utf-8 path");
        let out = run_bounded(&["check-config", "--config", config], &[], home);
        refused(&out, key, &[key, value, "maximum"]);
        // The agent refuses the same file at start, the same way.
        let agent = run_bounded(&["agent", "--config", config], &[], home);
        assert_eq!(agent.code, 2, "{key}: {}", agent.stderr);
        assert_eq!(agent.stderr, out.stderr, "{key}");
        assert!(!agent.stderr.contains("panicked"), "{}", agent.stderr);
    }
    // At the maximum is fine.
    let config = agent_file(
        home,
        "max.toml",
        "interval = \"7d\"",
        "[shipping]\ntimeout = \"7d\"\nretry_max = \"7d\"",
    );
    let out = run_bounded(
        &["check-config", "--config", config.to_str().expect("path")],
        &[],
        home,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);

    // The flags go through the same path.
    for (flag, value, max) in [
        ("--timeout", "1e300", "300"),
        ("--deadline", "1e30", "3600"),
    ] {
        let out = run_bounded(&["probe", "--bucket", "mybucket", flag, value], &[], home);
        refused(&out, flag, &[flag, max]);
    }
}

#[test]
fn check_config_refuses_what_the_agent_start_refuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path();
    let archive = home.join("archive");
    std::fs::create_dir(&archive).expect("archive");
    let spool = home.join("spool");
    let a_file = home.join("a-file");
    std::fs::write(&a_file, "not a directory\n").expect("file");
    let not_pem = home.join("ca.txt");
    std::fs::write(&not_pem, "this is not a certificate\n").expect("ca");
    let dir_sink = |name: &str, path: &Path| {
        format!(
            "[[sink]]\ntype = \"dir\"\nname = \"{name}\"\npath = \"{}\"\n",
            path.display()
        )
    };
    let spool_at = |p: &Path| format!("[spool]\ndir = \"{}\"\n", p.display());
    let cases = [
        (
            "a sink name with a blank",
            format!("{}{}", spool_at(&spool), dir_sink("my archive", &archive)),
            vec!["name = \"my archive\""],
        ),
        (
            "a ca_file that is not PEM",
            format!(
                "{}[[sink]]\ntype = \"http\"\nurl = \"https://127.0.0.1:9/in\"\nca_file = \"{}\"\n",
                spool_at(&spool),
                not_pem.display()
            ),
            vec!["ca_file", "ca.txt", "PEM"],
        ),
        (
            "a spool dir that is a file",
            format!("{}{}", spool_at(&a_file), dir_sink("archive", &archive)),
            vec!["spool.dir", "not a directory"],
        ),
        (
            "a dir sink that is a file",
            format!("{}{}", spool_at(&spool), dir_sink("archive", &a_file)),
            vec!["sink \"archive\"", "a-file", "not a directory"],
        ),
    ];
    for (i, (what, rest, want)) in cases.into_iter().enumerate() {
        let config = agent_file(home, &format!("c{i}.toml"), "", &rest);
        let config = config.to_str().expect("utf-8 path");
        let out = run_bounded(&["check-config", "--config", config], &[], home);
        refused(&out, what, &want);
        let agent = run_bounded(&["agent", "--config", config], &[], home);
        assert_eq!(agent.code, 2, "{what}: {}", agent.stderr);
        assert_eq!(agent.stderr, out.stderr, "{what}");
    }
    // And the same sinks, well formed, pass.
    let config = agent_file(
        home,
        "good.toml",
        "",
        &format!("{}{}", spool_at(&spool), dir_sink("archive", &archive)),
    );
    let out = run_bounded(
        &["check-config", "--config", config.to_str().expect("path")],
        &[],
        home,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn a_truncated_ca_bundle_is_reported_not_a_panic() {
    let mut lab = Lab::healthy(150);
    let pem = std::fs::read_to_string(&lab.ca_file).expect("ca");
    let half = &pem[..pem.len() / 2];
    // Only a broken certificate; and a good one followed by a broken one (which the SDK's
    // native roots skip, and its extra-PEM path would `expect`).
    for (name, content) in [
        ("truncated.pem", half.to_string()),
        ("good-then-truncated.pem", format!("{pem}{half}")),
    ] {
        let bundle = lab.dir.path().join(name);
        std::fs::write(&bundle, content).expect("bundle");
        lab.set_env("SSL_CERT_FILE", &bundle.display().to_string());
        let out = lab.probe(&[]);
        assert!(!out.stderr.contains("panicked"), "{name}: {}", out.stderr);
        assert!(
            ![101, 134, -1].contains(&out.code) && out.code <= 3,
            "{name}: exit {}: {}",
            out.code,
            out.stderr
        );
        let report = out.report().to_string();
        assert!(
            report.contains(&format!("{name}: not a usable PEM bundle")),
            "the report names the file: {report}"
        );
    }
}

#[test]
fn files_that_never_end_never_open_or_do_not_exist_are_refused_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path();
    let cheap = [
        "probe",
        "--bucket",
        "mybucket",
        "--no-calls",
        "--internet-canary",
        "none",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        cheap.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_bounded(&args, &[], home)
    };

    let out = run(with(&["--ip-ranges", "/dev/zero"]));
    refused(
        &out,
        "/dev/zero",
        &["--ip-ranges", "/dev/zero", "not a regular file"],
    );

    let fifo = home.join("resolv.fifo");
    let status = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(status.success());
    let fifo = fifo.display().to_string();
    let out = run(with(&["--resolv-conf", &fifo]));
    refused(
        &out,
        "a FIFO",
        &["--resolv-conf", &fifo, "not a regular file"],
    );

    let out = run(with(&["--resolv-conf", "/nonexistent/resolv.conf"]));
    refused(
        &out,
        "missing",
        &["--resolv-conf", "/nonexistent/resolv.conf"],
    );

    // The agent's own file, too.
    let out = run_bounded(&["check-config", "--config", "/dev/zero"], &[], home);
    refused(
        &out,
        "config /dev/zero",
        &["/dev/zero", "not a regular file"],
    );
}

#[test]
fn echoed_values_are_escaped_and_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path();
    let out = run_bounded(&["probe", "--bucket", "bad\x1b[31mname\nnext"], &[], home);
    refused(&out, "escapes", &["--bucket 'bad\\x1b[31mname\\nnext'"]);
    assert!(!out.stderr.contains('\x1b'), "{:?}", out.stderr);

    let long = "a".repeat(100_000);
    let out = run_bounded(&["probe", "--bucket", &long], &[], home);
    refused(&out, "100 KB", &["--bucket 'aaaa", "…"]);
    assert!(out.stderr.len() < 1024, "{} bytes", out.stderr.len());

    // 1 MB does not fit one argument (Linux caps each at 128 KiB): through the agent's file.
    let config = agent_file(home, "long.toml", "", "");
    let text = std::fs::read_to_string(&config)
        .expect("config")
        .replace("mybucket", &"b".repeat(1_000_000));
    std::fs::write(&config, text).expect("config");
    let out = run_bounded(
        &["check-config", "--config", config.to_str().expect("path")],
        &[],
        home,
    );
    refused(&out, "1 MB", &["--bucket 'bbbb", "…"]);
    assert!(out.stderr.len() < 1024, "{} bytes", out.stderr.len());

    let config = agent_file(home, "esc.toml", "interval = \"\\u001b[2J\\nsixty\"", "");
    let out = run_bounded(
        &["check-config", "--config", config.to_str().expect("path")],
        &[],
        home,
    );
    refused(&out, "toml escapes", &["interval = \"\\x1b[2J\\nsixty\""]);
    assert!(!out.stderr.contains('\x1b'), "{:?}", out.stderr);
}

/// Answers every request with 307 to `location`, counting them.
fn start_redirector(bind: SocketAddr, location: String) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind(bind).expect("bind redirector");
    let addr = listener.local_addr().expect("addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut reader = BufReader::new(stream);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            counter.fetch_add(1, Ordering::SeqCst);
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (addr, hits)
}

#[test]
fn the_http_sink_never_follows_a_redirect() {
    let lab = Lab::healthy(151);
    // Where the redirect points: never accepted, so a connection would wait in its backlog.
    let elsewhere = TcpListener::bind(SocketAddr::new(Lab::ip(151, 3, 2), 0)).expect("bind");
    elsewhere.set_nonblocking(true).expect("nonblocking");
    let location = format!("http://{}/stolen", elsewhere.local_addr().expect("addr"));
    let (collector, hits) = start_redirector(SocketAddr::new(Lab::ip(151, 3, 1), 0), location);
    let url = format!("http://{collector}/in");
    let out = lab.probe(&["--no-calls", "--ship", &url]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("was not shipped"), "{}", out.stderr);
    assert!(out.stderr.contains("307"), "{}", out.stderr);
    assert!(hits.load(Ordering::SeqCst) >= 1, "the collector was asked");
    match elsewhere.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the redirect target was contacted: {other:?}"),
    }
}
