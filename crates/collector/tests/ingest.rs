//! POST /v1/reports as the probe's HTTP sink sends it: tokens, dedup, every refusal with its
//! status and one-line reason, nothing half-stored, and a kill -9 right after a 2xx.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step stops the test

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

crate::both_stores!(
    stores_once_and_refuses_bad_input_with_a_reason,
    the_benchmarks_large_reports_match_the_schema_and_are_stored,
    a_token_added_to_the_file_works_without_a_restart,
    a_slow_client_is_cut_off,
    an_acknowledged_report_survives_kill_9,
);
// The full-disk test runs on SQLite only: PostgreSQL's disk is its server's, and a PostgreSQL
// that fails is `a_database_that_goes_away_answers_503_then_stores_the_retry` (replicas.rs).
use serde_json::json;

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

fn metric(c: &Collector, name: &str) -> f64 {
    let text = c.get("/metrics").text();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
}

/// A refusal is one line of text that says why.
fn one_line(resp: &Resp) {
    let text = resp.text();
    assert_eq!(text.trim_end().lines().count(), 1, "{text}");
    assert!(text.len() > 10, "{text}");
}

fn stores_once_and_refuses_bad_input_with_a_reason(backend: Backend) {
    let dir = Dir::with(backend);
    let c = Collector::start(&dir, &["--max-body", "65536"]);
    let r1 = report(Spec {
        id: "11111111-1111-4111-8111-111111111111",
        ..Spec::default()
    });

    // Valid: 201, stored under the token's label.
    let resp = c.post(Some(TOKEN), &r1);
    assert_eq!(resp.status, 201, "{}", resp.text());
    // Duplicate: acknowledged (2xx, so the agent stops retrying), stored once.
    let resp = c.post(Some(TOKEN), &r1);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.text().contains("already stored"), "{}", resp.text());
    assert_eq!(stored_ids(&c), vec!["11111111-1111-4111-8111-111111111111"]);
    let i = c.get_json("/api/instances/i-0123456789abcdef0");
    assert_eq!(i["instance"]["latest"]["token_label"], "acct-a");
    assert_eq!(i["instance"]["reports"], 1);

    // Also uncompressed, and at POST / (the README's simple setup).
    let r2 = report(Spec {
        id: "22222222-2222-4222-8222-222222222222",
        started_at: "2026-11-24T10:12:12.345Z",
        ..Spec::default()
    });
    let json = serde_json::to_vec(&r2).expect("json");
    let resp = request(
        c.addr,
        "POST",
        "/",
        &[("Authorization", &format!("Bearer {TOKEN_B}"))],
        &json,
    );
    assert_eq!(resp.status, 201, "{}", resp.text());

    let fresh = |id: &str| {
        report(Spec {
            id,
            started_at: "2026-11-24T10:20:00Z",
            ..Spec::default()
        })
    };
    // Unknown and missing tokens.
    let resp = c.post(
        Some("not-a-token-at-all-xxxx"),
        &fresh("33333333-0000-4000-8000-000000000001"),
    );
    assert_eq!(resp.status, 401, "{}", resp.text());
    one_line(&resp);
    assert_eq!(resp.header("www-authenticate"), Some("Bearer"));
    let resp = c.post(None, &fresh("33333333-0000-4000-8000-000000000002"));
    assert_eq!(resp.status, 401, "{}", resp.text());
    one_line(&resp);
    // A token one character off (same length) is unknown too.
    let off = format!("{}X", &TOKEN[..TOKEN.len() - 1]);
    let resp = c.post(Some(&off), &fresh("33333333-0000-4000-8000-000000000003"));
    assert_eq!(resp.status, 401);
    one_line(&resp);

    // Not JSON, JSON but not a report, wrong schema major.
    let resp = post_raw(c.addr, Some(TOKEN), b"{\"report_id\": ", true, None);
    assert_eq!(resp.status, 400);
    one_line(&resp);
    assert!(
        resp.text().starts_with("the body is not JSON"),
        "{}",
        resp.text()
    );
    let resp = post_raw(
        c.addr,
        Some(TOKEN),
        b"{\"schema_version\":\"1.0\",\"report_id\":\"x\"}",
        true,
        None,
    );
    assert_eq!(resp.status, 400);
    one_line(&resp);
    assert!(
        resp.text().starts_with("not a vpce-probe report"),
        "{}",
        resp.text()
    );
    let mut v2 = fresh("33333333-0000-4000-8000-000000000004");
    v2["schema_version"] = json!("2.0");
    let resp = c.post(Some(TOKEN), &v2);
    assert_eq!(resp.status, 400);
    one_line(&resp);
    assert!(
        resp.text().contains("schema_version 2.0"),
        "{}",
        resp.text()
    );
    // A minor version from a newer probe is read (fields are only ever added).
    let mut v11 = fresh("33333333-0000-4000-8000-000000000005");
    v11["schema_version"] = json!("1.1");
    v11["a_field_from_the_future"] = json!({"x": 1});
    let resp = c.post(Some(TOKEN), &v11);
    assert_eq!(resp.status, 201, "{}", resp.text());
    // A header id that disagrees with the body.
    let json = serde_json::to_vec(&fresh("33333333-0000-4000-8000-000000000006")).expect("json");
    let resp = post_raw(c.addr, Some(TOKEN), &json, true, Some("another-id"));
    assert_eq!(resp.status, 400, "{}", resp.text());
    one_line(&resp);
    // Garbage declared as gzip.
    let resp = request(
        c.addr,
        "POST",
        "/v1/reports",
        &[
            ("Authorization", &format!("Bearer {TOKEN}")),
            ("Content-Encoding", "gzip"),
        ],
        b"definitely not gzip",
    );
    assert_eq!(resp.status, 400);
    one_line(&resp);
    assert!(resp.text().contains("gzip"), "{}", resp.text());

    // Oversized: plain, and a gzip bomb (small on the wire, 8 MB expanded).
    let mut big = fresh("33333333-0000-4000-8000-000000000007");
    big["host"]["os"] = json!("x".repeat(100_000));
    let resp = post_raw(
        c.addr,
        Some(TOKEN),
        &serde_json::to_vec(&big).expect("json"),
        false,
        None,
    );
    assert_eq!(resp.status, 413, "{}", resp.text());
    one_line(&resp);
    let mut bomb = br#"{"schema_version":"1.0","report_id":"bomb","pad":""#.to_vec();
    bomb.extend(std::iter::repeat_n(b'a', 8 << 20));
    bomb.extend_from_slice(b"\"}");
    let zipped = gzip(&bomb);
    assert!(zipped.len() < 65536, "the bomb must pass the wire limit");
    let started = Instant::now();
    let resp = request(
        c.addr,
        "POST",
        "/v1/reports",
        &[
            ("Authorization", &format!("Bearer {TOKEN}")),
            ("Content-Encoding", "gzip"),
        ],
        &zipped,
    );
    assert_eq!(resp.status, 413, "{}", resp.text());
    one_line(&resp);
    assert!(started.elapsed() < Duration::from_secs(5));

    // Nothing refused was stored: only the three accepted reports exist.
    assert_eq!(
        stored_ids(&c),
        vec![
            "11111111-1111-4111-8111-111111111111",
            "22222222-2222-4222-8222-222222222222",
            "33333333-0000-4000-8000-000000000005",
        ]
    );
    assert_eq!(metric(&c, "vpce_collector_reports_accepted_total"), 3.0);
    assert_eq!(metric(&c, "vpce_collector_reports_duplicate_total"), 1.0);
    assert_eq!(
        metric(
            &c,
            "vpce_collector_reports_refused_total{reason=\"unauthorized\"}"
        ),
        3.0
    );
    assert_eq!(
        metric(
            &c,
            "vpce_collector_reports_refused_total{reason=\"too_large\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &c,
            "vpce_collector_reports_refused_total{reason=\"schema_version\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &c,
            "vpce_collector_reports_refused_total{reason=\"not_json\"}"
        ),
        1.0
    );
    assert!(metric(&c, "vpce_collector_ingest_duration_seconds_count") >= 13.0);
}

fn a_token_added_to_the_file_works_without_a_restart(backend: Backend) {
    let dir = Dir::with(backend);
    let c = Collector::start(&dir, &[]);
    let new_token = "rotated-token-abcdefghijkl";
    let r = report(Spec {
        id: "44444444-4444-4444-8444-444444444444",
        ..Spec::default()
    });
    assert_eq!(c.post(Some(new_token), &r).status, 401);
    std::fs::write(
        dir.path("tokens"),
        format!("acct-a {TOKEN}\nacct-c {new_token}\n"),
    )
    .expect("tokens");
    let resp = c.post(Some(new_token), &r);
    assert_eq!(resp.status, 201, "{}", resp.text());
    let i = c.get_json("/api/instances/i-0123456789abcdef0");
    assert_eq!(i["instance"]["latest"]["token_label"], "acct-c");
    // The removed token no longer works.
    std::fs::write(dir.path("tokens"), format!("acct-c {new_token}\n")).expect("tokens");
    let r2 = report(Spec {
        id: "44444444-4444-4444-8444-444444444445",
        started_at: "2026-11-24T10:12:12Z",
        ..Spec::default()
    });
    assert_eq!(c.post(Some(TOKEN), &r2).status, 401);
}

fn a_slow_client_is_cut_off(backend: Backend) {
    let dir = Dir::with(backend);
    let c = Collector::start(&dir, &["--read-timeout-secs", "1"]);
    // Headers, then a body that never comes.
    let mut s = TcpStream::connect(c.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "POST /v1/reports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 5000\r\n\r\n{{\"sch"
    )
    .expect("write");
    let started = Instant::now();
    let resp = read_response(&mut s);
    assert_eq!(resp.status, 408, "{}", resp.text());
    one_line(&resp);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Headers that never end: the connection is closed.
    let mut s = TcpStream::connect(c.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"POST /v1/reports HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut buf);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // And the collector still serves others.
    assert_eq!(c.get("/healthz").status, 200);
}

fn an_acknowledged_report_survives_kill_9(backend: Backend) {
    let dir = Dir::with(backend);
    let c = Collector::start(&dir, &[]);
    let mut ids = Vec::new();
    for n in 0..20 {
        let id = format!("55555555-5555-4555-8555-{n:012}");
        let started = format!("2026-11-24T10:{n:02}:00Z");
        let r = report(Spec {
            id: &id,
            started_at: &started,
            ..Spec::default()
        });
        let resp = c.post(Some(TOKEN), &r);
        assert_eq!(resp.status, 201, "{}", resp.text());
        ids.push(id);
    }
    // Killed the instant the last 2xx arrived: no graceful shutdown, no checkpoint.
    c.kill9();
    let c = Collector::start(&dir, &[]);
    let i = c.get_json("/api/instances/i-0123456789abcdef0");
    assert_eq!(i["instance"]["reports"], 20);
    assert_eq!(i["instance"]["latest"]["report_id"], ids[19].as_str());
    let json = c.get(&format!("/reports/{}.json", ids[19]));
    assert_eq!(json.status, 200);
    let body: serde_json::Value = serde_json::from_slice(&json.body).expect("json");
    assert_eq!(body["report_id"], ids[19].as_str());
    // Resending after the restart is still a duplicate.
    let r = report(Spec {
        id: &ids[19],
        started_at: "2026-11-24T10:19:00Z",
        ..Spec::default()
    });
    assert_eq!(c.post(Some(TOKEN), &r).status, 200);
}

#[test]
fn start_refusals_are_one_line() {
    let dir = Dir::new();
    let run = |args: &[String]| {
        let out = std::process::Command::new(BIN)
            .args(args)
            .output()
            .expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Listening beyond loopback without a read token.
    let mut args = dir.base_args();
    args[2] = "0.0.0.0:0".into();
    let (code, err) = run(&args);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--read-token-file"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // A tokens file with a bad line.
    std::fs::write(dir.path("bad-tokens"), "only-a-label\n").expect("write");
    let mut args = dir.base_args();
    args[6] = dir.path("bad-tokens").display().to_string();
    let (code, err) = run(&args);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("line 1"), "{err}");
    // check-config names what it read and never prints a token.
    let mut args = dir.base_args();
    args[0] = "check-config".into();
    let out = std::process::Command::new(BIN)
        .args(&args)
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("acct-a, team-b"), "{text}");
    assert!(!text.contains(TOKEN), "{text}");
    // The TOML file gives the same settings.
    std::fs::write(
        dir.path("collector.toml"),
        format!(
            "listen = \"127.0.0.1:0\"\ndb = \"{}\"\ntokens = \"{}\"\nretention_days = 7\n",
            dir.path("reports.db").display(),
            dir.path("tokens").display()
        ),
    )
    .expect("write");
    let out = std::process::Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(dir.path("collector.toml"))
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("retention 7 days"));
    std::fs::write(
        dir.path("collector.toml"),
        "listen = \"127.0.0.1:0\"\nbogus = 1\n",
    )
    .expect("write");
    let (code, err) = run(&[
        "check-config".into(),
        "--config".into(),
        dir.path("collector.toml").display().to_string(),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bogus"), "{err}");
}

#[test]
fn check_config_names_the_database_without_its_password() {
    let dir = Dir::new();
    let secret = "s3cr3t-Passw0rd-xyz";
    let check = |db: &str, extra: &[&str]| {
        let mut args = dir.base_args();
        args[0] = "check-config".into();
        args[4] = db.to_string();
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = std::process::Command::new(BIN)
            .args(&args)
            .output()
            .expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // A URL with a password: host, port, database, user and TLS mode, never the password.
    let (code, out, err) = check(
        &format!("postgres://collector:{secret}@db.internal:6543/fleet?sslmode=require"),
        &[],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(
            "db postgres host db.internal port 6543 database fleet user collector tls required"
        ),
        "{out}"
    );
    assert!(out.contains("password in the URL"), "{out}");
    assert!(!out.contains(secret) && !err.contains(secret), "{out}{err}");
    // The password from a file instead.
    std::fs::write(dir.path("db-password"), format!("{secret}\n")).expect("write");
    let pw_file = dir.path("db-password").display().to_string();
    let (code, out, err) = check(
        "postgresql://collector@db.internal/fleet",
        &["--db-password-file", &pw_file],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("port 5432"), "{out}");
    assert!(out.contains("password from the password file"), "{out}");
    assert!(!out.contains(secret), "{out}");
    // Mistakes: one line, exit 2, and the password is not echoed back.
    let (code, _, err) = check(&format!("postgres://u:{secret}@h/db?sslmode=bogus"), &[]);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("sslmode"), "{err}");
    assert!(!err.contains(secret), "{err}");
    let (code, _, err) = check("postgres://u@h", &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("names no database"), "{err}");
    let (code, _, err) = check(
        &dir.path("reports.db").display().to_string(),
        &["--db-password-file", &pw_file],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("PostgreSQL --db"), "{err}");
}

/// The benchmarks' large reports (scripts/collector_reports.py) are real reports: they match
/// the probe's schema, are 20-40 KB, and are stored with every finding.
fn the_benchmarks_large_reports_match_the_schema_and_are_stored(backend: Backend) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/collector_reports.py"
    );
    let generate = |args: &[&str]| -> serde_json::Value {
        let out = std::process::Command::new("python3")
            .arg(script)
            .args(args)
            .output()
            .expect("python3 (scripts/install-deps.sh)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            (20_000..=40_000).contains(&out.stdout.len()),
            "{} bytes",
            out.stdout.len()
        );
        serde_json::from_slice(&out.stdout).expect("JSON")
    };
    let dir = Dir::with(backend);
    let c = Collector::start(&dir, &[]);
    for (n, args) in [&[][..], &["--problems"][..]].into_iter().enumerate() {
        let mut r = generate(args);
        validate(&r);
        let id = format!("77777777-0000-4000-8000-{n:012}");
        r["report_id"] = json!(id);
        r["started_at"] = json!(format!("2026-11-24T10:0{n}:00Z"));
        let resp = c.post(Some(TOKEN), &r);
        assert_eq!(resp.status, 201, "{}", resp.text());
        let stored = c.get(&format!("/api/reports/{id}"));
        assert_eq!(stored.status, 200);
        let back: serde_json::Value = serde_json::from_slice(&stored.body).expect("json");
        assert_eq!(back, r);
    }
    // Every finding is stored: the finding page lists the three broken buckets.
    let f = c.get_json("/api/findings/NACL_OUTBOUND_BLOCKS");
    let holders = f["instances"].as_array().expect("instances");
    assert_eq!(holders.len(), 1);
    let mut targets: Vec<&str> = holders[0]["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .map(|t| t.as_str().expect("target"))
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        vec![
            "s3:app-data-05-eu-west-1-111122223333",
            "s3:app-data-06-eu-west-1-111122223333",
            "s3:app-data-07-eu-west-1-111122223333",
        ]
    );
    let i = c.get_json("/api/instances/i-0123456789abcdef0");
    assert_eq!(i["instance"]["latest"]["status"], "problems");
    assert_eq!(
        i["instance"]["latest"]["path_kinds"]
            .as_array()
            .expect("kinds")
            .len(),
        12
    );
}

/// The collector on SQLite in its own mount namespace, its database on a 1 MiB tmpfs that a
/// filler file half fills; the filler goes when `trigger` appears. As root `unshare -m`, else
/// in a user namespace (`-r`): no privilege needed, nothing mounted outside the collector.
fn start_on_a_small_disk(
    dir: &Dir,
    disk: &std::path::Path,
    trigger: &std::path::Path,
) -> Collector {
    std::fs::create_dir(disk).expect("mount point");
    let mut cmd = std::process::Command::new("unshare");
    if !common::pg::is_root() {
        cmd.arg("-r");
    }
    // The loop that frees the space gives up after a minute, so it never outlives a failed test.
    cmd.args([
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        r#"set -e
mount -t tmpfs -o size=1m vpce-collector-test "$DISK"
head -c 400k /dev/zero > "$DISK/filler"
( i=0; while [ ! -e "$TRIGGER" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; rm -f "$DISK/filler" ) &
exec "$BIN" "$@""#,
        "sh",
    ])
    .env("DISK", disk)
    .env("TRIGGER", trigger)
    .env("BIN", BIN)
    .env("VPCE_COLLECTOR_LOG", "info");
    let mut args = dir.base_args();
    args[4] = disk.join("reports.db").display().to_string();
    Collector::start_command(cmd, &args)
}

#[test]
fn a_full_disk_answers_503_keeps_every_acknowledged_report_and_stores_the_retry() {
    let dir = Dir::new();
    let disk = dir.path("disk");
    let trigger = dir.path("free-the-disk");
    let c = start_on_a_small_disk(&dir, &disk, &trigger);
    // Every report from another instance: each is its instance's latest, so its body is kept.
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for n in 0..5000u32 {
        let id = format!("66666666-6666-4666-8666-{n:012}");
        let instance = format!("i-{n:017x}");
        let r = report(Spec {
            id: &id,
            instance: &instance,
            started_at: "2026-11-24T10:00:00Z",
            ..Spec::default()
        });
        let resp = c.post(Some(TOKEN), &r);
        match resp.status {
            201 => acknowledged.push(id),
            503 => {
                one_line(&resp);
                refused = Some((id, r));
                break;
            }
            other => panic!("report {n}: {other} {}\n{}", resp.text(), c.log()),
        }
    }
    let (id, r) = refused.expect("the 1 MiB disk never filled");
    eprintln!(
        "{} reports acknowledged before the disk was full",
        acknowledged.len()
    );
    assert!(
        !acknowledged.is_empty(),
        "nothing fitted before the disk was full"
    );
    // Full, the collector still answers and still has every report it acknowledged.
    let stored = stored_ids(&c);
    for a in &acknowledged {
        assert!(stored.contains(a), "acknowledged {a} is gone");
    }
    assert!(!stored.contains(&id), "the refused report {id} was stored");
    // Space comes back: the agent's retry of the refused report is stored, once.
    std::fs::write(&trigger, "").expect("trigger");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp = c.post(Some(TOKEN), &r);
        if resp.status == 201 {
            break;
        }
        assert_eq!(resp.status, 503, "{}", resp.text());
        assert!(
            Instant::now() < deadline,
            "the retry was still refused: {}",
            resp.text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let stored = stored_ids(&c);
    assert!(stored.contains(&id), "the retry was not stored");
    assert_eq!(stored.len(), acknowledged.len() + 1);
    assert_eq!(
        c.post(Some(TOKEN), &r).status,
        200,
        "a resend is a duplicate"
    );
}
