//! Several collector replicas on one PostgreSQL database, as behind a load balancer: every
//! report stored once whichever replica gets it (the same report to both at once included),
//! the same fleet from both, the silent-agent rule and retention with replicas running, and a
//! database that goes away (503, then stored once it is back).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step stops the test

mod common;

use std::time::Duration;

use common::pg::PgServer;
use common::*;
use serde_json::Value;

const NACL: &str = "NACL_OUTBOUND_BLOCKS";

fn fleet_without_times(v: &Value) -> Value {
    // received_at and silent come from each replica's clock at the time of the request.
    let mut v = v.clone();
    for i in v["instances"].as_array_mut().expect("instances") {
        i.as_object_mut().expect("object").remove("silent");
    }
    v
}

#[test]
fn two_replicas_store_each_report_once_and_show_the_same_fleet() {
    let a_dir = Dir::with(Backend::Postgres);
    let b_dir = Dir::sharing(&a_dir);
    let a = Collector::start(&a_dir, &[]);
    let b = Collector::start(&b_dir, &[]);
    let replicas = [&a, &b];

    // Four instances, three reports each, alternately to one replica and the other; the
    // second report of each has a problem (a verdict change both ways).
    let mut n = 0;
    for minute in 0..3 {
        for inst in 0..4 {
            n += 1;
            let id = format!("eeeeeeee-0000-4000-8000-{n:012}");
            let instance = format!("i-r{inst}");
            let started = format!("2026-11-24T10:0{minute}:00Z");
            let problems: &[(&str, &str)] = if minute == 1 {
                &[(NACL, "s3:app-data")]
            } else {
                &[]
            };
            let r = report(Spec {
                id: &id,
                instance: &instance,
                started_at: &started,
                problems,
                ..Spec::default()
            });
            let resp = replicas[n % 2].post(Some(TOKEN), &r);
            assert_eq!(resp.status, 201, "{}", resp.text());
        }
    }

    // The same report to both replicas at the same instant, 20 times: one 201 and one 200 each.
    for k in 0..20 {
        let id = format!("ffffffff-0000-4000-8000-{k:012}");
        let started = format!("2026-11-24T11:{k:02}:00Z");
        let r = report(Spec {
            id: &id,
            instance: "i-both",
            started_at: &started,
            ..Spec::default()
        });
        let barrier = std::sync::Barrier::new(2);
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let handles: Vec<_> = replicas
                .iter()
                .map(|c| {
                    let (r, barrier) = (&r, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        c.post(Some(TOKEN), r).status
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("post"))
                .collect()
        });
        let mut sorted = statuses.clone();
        sorted.sort();
        assert_eq!(sorted, vec![200, 201], "report {k}: {statuses:?}");
    }

    // Stored once: the database itself says so.
    let db = a_dir
        .db
        .rsplit('/')
        .next()
        .expect("db")
        .split('?')
        .next()
        .expect("db");
    let server = pg::shared();
    assert_eq!(server.psql(db, "SELECT COUNT(*) FROM reports"), "32");
    assert_eq!(
        server.psql(
            db,
            "SELECT COUNT(*) FROM (SELECT report_id FROM reports GROUP BY report_id HAVING COUNT(*) > 1) d"
        ),
        "0"
    );
    // Bodies: per i-r instance the change to problems, the change back (the latest); the
    // first report is a change too. i-both: its first and its latest.
    assert_eq!(server.psql(db, "SELECT COUNT(*) FROM bodies"), "14");

    // Both replicas serve the same fleet, timelines and finding pages.
    let fa = a.get_json("/api/fleet");
    let fb = b.get_json("/api/fleet");
    assert_eq!(fa["instances"].as_array().expect("instances").len(), 5);
    assert_eq!(fleet_without_times(&fa), fleet_without_times(&fb));
    let both = a.get_json("/api/instances/i-both");
    assert_eq!(both["instance"]["reports"], 20);
    assert_eq!(
        both["instance"]["latest"]["report_id"],
        "ffffffff-0000-4000-8000-000000000019"
    );
    let r1a = a.get_json("/api/instances/i-r1");
    let r1b = b.get_json("/api/instances/i-r1");
    assert_eq!(r1a["changes"], r1b["changes"]);
    assert_eq!(r1a["changes"].as_array().expect("changes").len(), 3);
    assert_eq!(r1a["instance"]["interval_ms"], 60_000);
    assert_eq!(
        a.get_json(&format!("/api/findings/{NACL}"))["instances"],
        b.get_json(&format!("/api/findings/{NACL}"))["instances"]
    );
    // A late copy through either replica is still a duplicate.
    let again = report(Spec {
        id: "eeeeeeee-0000-4000-8000-000000000001",
        instance: "i-r0",
        started_at: "2026-11-24T10:00:00Z",
        ..Spec::default()
    });
    assert_eq!(a.post(Some(TOKEN), &again).status, 200);
    assert_eq!(b.post(Some(TOKEN), &again).status, 200);
}

#[test]
fn silence_and_retention_work_with_two_replicas_running() {
    let a_dir = Dir::with(Backend::Postgres);
    let b_dir = Dir::sharing(&a_dir);
    let a = Collector::start(&a_dir, &[]);
    let b = Collector::start(&b_dir, &[]);
    // One agent whose reports (1 s apart) land on either replica.
    for n in 0..4 {
        let id = format!("abababab-0000-4000-8000-{n:012}");
        let started = format!("2026-11-24T10:00:0{n}Z");
        let r = report(Spec {
            id: &id,
            instance: "i-s",
            started_at: &started,
            ..Spec::default()
        });
        let c = if n % 2 == 0 { &a } else { &b };
        assert_eq!(c.post(Some(TOKEN), &r).status, 201);
    }
    // A second instance that reported long ago, and nothing since.
    for n in 0..3 {
        let id = format!("cdcdcdcd-0000-4000-8000-{n:012}");
        let started = format!("2026-10-01T10:0{n}:00Z");
        let r = report(Spec {
            id: &id,
            instance: "i-gone",
            started_at: &started,
            ..Spec::default()
        });
        assert_eq!(b.post(Some(TOKEN), &r).status, 201);
    }
    assert_eq!(
        a.get_json("/api/instances/i-s")["instance"]["silent"],
        false
    );
    for c in [&a, &b] {
        wait_for("i-s to count as silent", Duration::from_secs(10), || {
            c.get_json("/api/instances/i-s")["instance"]["silent"] == true
        });
        assert_eq!(
            keys_of(&c.get_json("/api/fleet?verdict=silent")),
            vec!["i-s"]
        );
        assert!(
            c.get("/metrics")
                .text()
                .contains("vpce_collector_silent_instances 1")
        );
    }

    // Age the data as if 40 days had passed for i-gone, and for i-s's reports but its latest.
    let db = a_dir
        .db
        .rsplit('/')
        .next()
        .expect("db")
        .split('?')
        .next()
        .expect("db");
    let server = pg::shared();
    let old = "(EXTRACT(EPOCH FROM now()) * 1000)::bigint - 40::bigint * 86400000";
    server.psql(
        db,
        &format!(
            "UPDATE reports SET received_at = {old} WHERE instance_key = 'i-gone'
                OR report_id IN ('abababab-0000-4000-8000-000000000000', 'abababab-0000-4000-8000-000000000001');
             UPDATE instances SET last_received = {old} WHERE instance_key = 'i-gone'"
        ),
    );
    // Retention runs at start: two more replicas start together and both run it.
    let c_dir = Dir::sharing(&a_dir);
    let d_dir = Dir::sharing(&a_dir);
    let (c, d) = std::thread::scope(|s| {
        let c = s.spawn(|| Collector::start(&c_dir, &["--retention-days", "30"]));
        let d = s.spawn(|| Collector::start(&d_dir, &["--retention-days", "30"]));
        (c.join().expect("c"), d.join().expect("d"))
    });
    wait_for(
        "retention to delete the old reports",
        Duration::from_secs(15),
        || server.psql(db, "SELECT COUNT(*) FROM reports") == "2",
    );
    let logs = format!("{}\n{}", c.log(), d.log());
    assert!(
        !logs.contains("WARN"),
        "a replica's retention failed:\n{logs}"
    );
    assert_eq!(
        logs.matches("retention: old reports deleted").count(),
        1,
        "exactly one replica deletes:\n{logs}"
    );
    // i-gone is gone; i-s keeps its two recent reports, its latest body and its timeline.
    for r in [&a, &b, &c, &d] {
        assert_eq!(keys_of(&r.get_json("/api/fleet")), vec!["i-s"]);
        let i = r.get_json("/api/instances/i-s");
        assert_eq!(i["reports"].as_array().expect("reports").len(), 2);
        assert_eq!(
            i["instance"]["latest"]["report_id"],
            "abababab-0000-4000-8000-000000000003"
        );
        assert_eq!(r.get("/api/instances/i-gone").status, 404);
    }
    assert_eq!(
        a.get("/reports/abababab-0000-4000-8000-000000000003.json")
            .status,
        200
    );
}

fn keys_of(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .map(|i| i["instance_key"].as_str().expect("key").to_string())
        .collect();
    k.sort();
    k
}

#[test]
fn a_database_that_goes_away_answers_503_then_stores_the_retry() {
    // Its own server: this test stops it.
    let mut server = PgServer::start(false);
    let mut dir = Dir::new();
    server.psql("postgres", "CREATE DATABASE down");
    dir.db = server.url("down");
    let c = Collector::start(&dir, &[]);
    let first = report(Spec {
        id: "12121212-0000-4000-8000-000000000000",
        ..Spec::default()
    });
    assert_eq!(c.post(Some(TOKEN), &first).status, 201);

    server.stop();
    let second = report(Spec {
        id: "12121212-0000-4000-8000-000000000001",
        started_at: "2026-11-24T10:12:12.345Z",
        ..Spec::default()
    });
    let started = std::time::Instant::now();
    let resp = c.post(Some(TOKEN), &second);
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert_eq!(resp.text().trim_end().lines().count(), 1, "{}", resp.text());
    assert!(
        resp.text().contains("cannot be stored now"),
        "{}",
        resp.text()
    );
    // Within the operation deadline, not hung.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(c.get("/healthz").status, 503);
    assert_eq!(c.get("/api/fleet").status, 503);

    // The database is back: the agent's retry is stored, once.
    server.run();
    wait_for(
        "the collector to reach the database again",
        Duration::from_secs(20),
        || c.get("/healthz").status == 200,
    );
    let resp = c.post(Some(TOKEN), &second);
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(c.post(Some(TOKEN), &second).status, 200);
    let i = c.get_json("/api/instances/i-0123456789abcdef0");
    assert_eq!(i["instance"]["reports"], 2);
    assert!(
        c.log().contains("report not stored"),
        "the refusal is logged: {}",
        c.log()
    );
}

/// A CA and a certificate for 127.0.0.1 signed by it, with openssl (scripts/install-deps.sh).
fn make_certs(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (scripts/install-deps.sh)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &["-keyout", "ca.key", "-out", "ca.pem"],
        &["-days", "2", "-subj", "/CN=vpce-collector test CA"],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &["-keyout", "server.key", "-out", "server.csr"],
        &["-subj", "/CN=127.0.0.1"],
    ]
    .concat());
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext",
    ]);
}

#[test]
fn tls_to_postgresql_is_verified() {
    let server = PgServer::start(false);
    let certs = tempfile::tempdir().expect("tempdir");
    make_certs(certs.path());
    // The server's key and certificate, readable by the server's user only.
    let key_dir = server.data_dir();
    std::fs::copy(certs.path().join("server.pem"), key_dir.join("server.crt")).expect("copy");
    std::fs::copy(certs.path().join("server.key"), key_dir.join("server.key")).expect("copy");
    for name in ["server.crt", "server.key"] {
        let path = key_dir.join(name);
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod");
        let _ = std::process::Command::new("chown")
            .arg("postgres:postgres")
            .arg(&path)
            .status();
    }
    server.psql("postgres", "ALTER SYSTEM SET ssl = on");
    server.psql("postgres", "SELECT pg_reload_conf()");
    server.psql("postgres", "CREATE DATABASE tls");
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/tls?sslmode=require",
        server.port
    );
    let ca = certs.path().join("ca.pem").display().to_string();

    // Without the CA: the certificate is refused, the collector does not start.
    let mut dir = Dir::new();
    dir.db = url.clone();
    let out = std::process::Command::new(BIN)
        .args(dir.base_args())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("certificate"), "{err}");

    // With it: stored over TLS, as PostgreSQL itself reports.
    let c = Collector::start(&dir, &["--db-ca-file", &ca]);
    let r = report(Spec {
        id: "13131313-0000-4000-8000-000000000000",
        ..Spec::default()
    });
    assert_eq!(c.post(Some(TOKEN), &r).status, 201);
    assert_eq!(
        server.psql(
            "postgres",
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.application_name = 'vpce-collector'"
        ),
        "t"
    );
}
