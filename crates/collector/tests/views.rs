//! The fleet as the pages and the API show it: a subnet where every instance fails the same
//! way, a finding page with "since when", an instance's timeline of verdict changes with the
//! bodies that are kept and dropped, silent agents, metrics, and the read token.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step stops the test

mod common;

use std::time::Duration;

use common::*;

crate::both_stores!(
    a_broken_subnet_is_one_group_and_a_finding_page_says_since_when,
    an_instance_timeline_keeps_the_bodies_of_changes_and_the_latest,
    an_agent_silent_for_three_intervals_is_flagged,
    pages_need_the_read_token_when_one_is_set,
);
use serde_json::Value;

const NACL: &str = "NACL_OUTBOUND_BLOCKS";
const SG: &str = "SG_EGRESS_BLOCKS";

fn post_ok(c: &Collector, spec: Spec<'_>) -> String {
    let id = spec.id.to_string();
    let r = report(spec);
    let resp = c.post(Some(TOKEN), &r);
    assert_eq!(resp.status, 201, "{}", resp.text());
    id
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .map(|i| {
            i["instance_key"]
                .as_str()
                .or_else(|| i["instance"]["instance_key"].as_str())
                .expect("key")
                .to_string()
        })
        .collect();
    k.sort();
    k
}

/// A fleet of seven instances in three subnets and two accounts.
fn seed(c: &Collector) {
    let nacl: &[(&str, &str)] = &[(NACL, "s3:app-data")];
    let mut n = 0;
    let mut id = || {
        n += 1;
        format!("aaaaaaaa-0000-4000-8000-{n:012}")
    };
    // i-b1 was healthy, then broke at 09:30: "since" is 09:30.
    post_ok(
        c,
        Spec {
            id: &id(),
            instance: "i-b1",
            subnet: "subnet-bad",
            started_at: "2026-11-24T09:00:00Z",
            ..Spec::default()
        },
    );
    post_ok(
        c,
        Spec {
            id: &id(),
            instance: "i-b1",
            subnet: "subnet-bad",
            started_at: "2026-11-24T09:30:00Z",
            problems: nacl,
            ..Spec::default()
        },
    );
    post_ok(
        c,
        Spec {
            id: &id(),
            instance: "i-b1",
            subnet: "subnet-bad",
            started_at: "2026-11-24T10:00:00Z",
            problems: nacl,
            ..Spec::default()
        },
    );
    for inst in ["i-b2", "i-b3"] {
        post_ok(
            c,
            Spec {
                id: &id(),
                instance: inst,
                subnet: "subnet-bad",
                started_at: "2026-11-24T10:00:00Z",
                problems: nacl,
                ..Spec::default()
            },
        );
    }
    for inst in ["i-g1", "i-g2"] {
        post_ok(
            c,
            Spec {
                id: &id(),
                instance: inst,
                subnet: "subnet-good",
                started_at: "2026-11-24T10:00:00Z",
                ..Spec::default()
            },
        );
    }
    post_ok(
        c,
        Spec {
            id: &id(),
            instance: "i-x1",
            account: "444455556666",
            subnet: "subnet-x",
            started_at: "2026-11-24T10:00:00Z",
            problems: &[(SG, "dynamodb:orders")],
        },
    );
}

fn a_broken_subnet_is_one_group_and_a_finding_page_says_since_when(backend: Backend) {
    let dir = Dir::with(backend);
    let c = Collector::start(&dir, &[]);
    seed(&c);

    // The API: filters by subnet, verdict, code, account.
    let bad = c.get_json("/api/fleet?subnet=subnet-bad");
    assert_eq!(keys(&bad), vec!["i-b1", "i-b2", "i-b3"]);
    for i in bad["instances"].as_array().expect("instances") {
        assert_eq!(i["latest"]["status"], "problems");
        assert_eq!(i["latest"]["root_causes"][0], format!("{NACL} s3:app-data"));
    }
    assert_eq!(
        keys(&c.get_json("/api/fleet?verdict=healthy")),
        vec!["i-g1", "i-g2"]
    );
    assert_eq!(
        keys(&c.get_json(&format!("/api/fleet?code={SG}"))),
        vec!["i-x1"]
    );
    assert_eq!(
        keys(&c.get_json("/api/fleet?account=444455556666")),
        vec!["i-x1"]
    );
    let all = c.get_json("/api/fleet");
    assert_eq!(keys(&all).len(), 6);
    assert_eq!(
        all["counts"]["by_status"],
        serde_json::json!([["healthy", 2], ["problems", 4]])
    );

    // The page: one group per subnet, the broken one summarised as one line.
    let page = c.get("/");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = page.text();
    let group_start = html.find("subnet-bad</a>").expect("the bad subnet's group");
    let group = &html[group_start..];
    let group = &group[..group.find("class=\"group").unwrap_or(group.len())];
    assert!(
        group.contains("3 instances, 3 with problems, 0 silent"),
        "{group}"
    );
    assert!(group.contains(&format!("{NACL}</code></a> ×3")), "{group}");
    for inst in ["i-b1", "i-b2", "i-b3"] {
        assert!(group.contains(&format!(">{inst}</a>")), "{inst} in {group}");
    }
    assert!(!group.contains("i-g1"), "{group}");
    assert!(
        html.contains("2 instances, 0 with problems"),
        "the good subnet"
    );
    // The filtered page shows only that subnet.
    let filtered = c.get("/?subnet=subnet-good").text();
    assert!(
        filtered.contains("i-g2") && !filtered.contains("i-b1"),
        "{filtered}"
    );

    // The finding page: who has it, on which target, since when.
    let f = c.get_json(&format!("/api/findings/{NACL}"));
    assert_eq!(keys(&f), vec!["i-b1", "i-b2", "i-b3"]);
    let b1 = f["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .find(|h| h["instance"]["instance_key"] == "i-b1")
        .expect("i-b1");
    let since = humantime::parse_rfc3339("2026-11-24T09:30:00Z").expect("time");
    let since_ms = since
        .duration_since(std::time::UNIX_EPOCH)
        .expect("epoch")
        .as_millis() as i64;
    assert_eq!(b1["since_ms"], since_ms);
    assert_eq!(b1["targets"], serde_json::json!(["s3:app-data"]));
    let html = c.get(&format!("/findings/{NACL}")).text();
    assert!(html.contains("3 instances have"), "{html}");
    assert!(html.contains("2026-11-24T09:30:00Z"), "{html}");
    assert!(!html.contains("i-x1"), "{html}");

    // Metrics: fleet gauges from the store.
    let m = c.get("/metrics").text();
    assert!(
        m.contains("vpce_collector_instances{verdict=\"problems\"} 4"),
        "{m}"
    );
    assert!(
        m.contains("vpce_collector_instances{verdict=\"healthy\"} 2"),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "vpce_collector_instances_with_finding{{code=\"{NACL}\"}} 3"
        )),
        "{m}"
    );
    assert!(m.contains("vpce_collector_silent_instances 0"), "{m}");
}

fn an_instance_timeline_keeps_the_bodies_of_changes_and_the_latest(backend: Backend) {
    let dir = Dir::with(backend);
    let c = Collector::start(&dir, &[]);
    let nacl: &[(&str, &str)] = &[(NACL, "s3:app-data")];
    // healthy ×3, problems ×2, healthy ×1
    let plan: [(&str, &[(&str, &str)]); 6] = [
        ("10:00", &[]),
        ("10:01", &[]),
        ("10:02", &[]),
        ("10:03", nacl),
        ("10:04", nacl),
        ("10:05", &[]),
    ];
    let mut ids = Vec::new();
    for (n, (t, problems)) in plan.iter().enumerate() {
        let id = format!("bbbbbbbb-0000-4000-8000-{n:012}");
        let started = format!("2026-11-24T{t}:00Z");
        post_ok(
            &c,
            Spec {
                id: &id,
                instance: "i-t",
                started_at: &started,
                problems,
                ..Spec::default()
            },
        );
        ids.push(id);
    }
    let t = c.get_json("/api/instances/i-t");
    let changes: Vec<&str> = t["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|r| r["report_id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        changes,
        vec![ids[5].as_str(), ids[3].as_str(), ids[0].as_str()]
    );
    assert_eq!(t["reports"].as_array().expect("reports").len(), 6);
    assert_eq!(t["instance"]["reports"], 6);
    assert_eq!(t["instance"]["interval_ms"], 60_000);
    // Bodies: the changes and the latest; the repeats keep only their summary.
    for (n, id) in ids.iter().enumerate() {
        let kept = matches!(n, 0 | 3 | 5);
        let r = c.get(&format!("/reports/{id}.json"));
        assert_eq!(
            r.status,
            if kept { 200 } else { 410 },
            "report {n}: {}",
            r.text()
        );
        let page = c.get(&format!("/reports/{id}")).text();
        if kept {
            // The CLI's text rendering.
            assert!(page.contains("PATHS"), "{page}");
            assert!(page.contains("VERDICT  "), "{page}");
            assert!(
                page.contains(&format!("href=\"/reports/{id}.json\"")),
                "{page}"
            );
        } else {
            assert!(page.contains("Only the summary"), "{page}");
        }
    }
    let problem_page = c.get(&format!("/reports/{}", ids[3])).text();
    assert!(
        problem_page.contains(&format!("{NACL} [s3:app-data]")),
        "{problem_page}"
    );
    let repeat_page = c.get(&format!("/reports/{}", ids[4])).text();
    assert!(
        repeat_page.contains(&format!(">{NACL}</code>")),
        "findings stay: {repeat_page}"
    );
    // The HTML timeline.
    let html = c.get("/instances/i-t").text();
    assert!(html.contains("6 reports since"), "{html}");
    assert!(html.contains("Verdict changes"), "{html}");
    assert!(c.get("/instances/i-nope").status == 404);
    // A late copy of an old report is still a duplicate.
    let again = report(Spec {
        id: &ids[1],
        instance: "i-t",
        started_at: "2026-11-24T10:01:00Z",
        ..Spec::default()
    });
    assert_eq!(c.post(Some(TOKEN), &again).status, 200);
}

fn an_agent_silent_for_three_intervals_is_flagged(backend: Backend) {
    let dir = Dir::with(backend);
    let c = Collector::start(&dir, &[]);
    // Reports 1 s apart (by their started_at): the usual interval is 1 s.
    for n in 0..3 {
        let id = format!("cccccccc-0000-4000-8000-{n:012}");
        let started = format!("2026-11-24T10:00:0{n}Z");
        post_ok(
            &c,
            Spec {
                id: &id,
                instance: "i-s",
                started_at: &started,
                ..Spec::default()
            },
        );
    }
    let i = c.get_json("/api/instances/i-s");
    assert_eq!(i["instance"]["silent"], false);
    wait_for(
        "the agent to count as silent",
        Duration::from_secs(10),
        || c.get_json("/api/instances/i-s")["instance"]["silent"] == true,
    );
    assert_eq!(keys(&c.get_json("/api/fleet?verdict=silent")), vec!["i-s"]);
    assert!(
        c.get("/metrics")
            .text()
            .contains("vpce_collector_silent_instances 1")
    );
    assert!(c.get("/").text().contains("silent (usual interval 1s)"));
}

fn pages_need_the_read_token_when_one_is_set(backend: Backend) {
    let dir = Dir::with(backend);
    let read = "read-token-abcdefghijklmnop";
    std::fs::write(dir.path("read-token"), format!("{read}\n")).expect("write");
    let c = Collector::start(
        &dir,
        &[
            "--read-token-file",
            &dir.path("read-token").display().to_string(),
        ],
    );
    post_ok(
        &c,
        Spec {
            id: "dddddddd-0000-4000-8000-000000000000",
            ..Spec::default()
        },
    );
    for path in [
        "/",
        "/api/fleet",
        "/metrics",
        "/instances/i-0123456789abcdef0",
    ] {
        assert_eq!(c.get(path).status, 401, "{path}");
        // An ingest token does not open the pages.
        let r = request(
            c.addr,
            "GET",
            path,
            &[("Authorization", &format!("Bearer {TOKEN}"))],
            b"",
        );
        assert_eq!(r.status, 401, "{path}");
        let r = request(
            c.addr,
            "GET",
            path,
            &[("Authorization", &format!("Bearer {read}"))],
            b"",
        );
        assert_eq!(r.status, 200, "{path}");
    }
    let page = c.get(&format!("/?token={read}")).text();
    // Links carry the token on, so a browser can follow them.
    assert!(
        page.contains(&format!("/instances/i-0123456789abcdef0?token={read}")),
        "{page}"
    );
    assert_eq!(c.get("/healthz").status, 200);
}
