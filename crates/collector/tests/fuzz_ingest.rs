//! Property tests of the collector's input: POST /v1/reports (Content-Encoding, gzip, JSON,
//! the report's validation) and the tokens file, through the real binary on loopback.
//!
//! What must hold for every input: the collector answers (no crash, no 5xx); a refusal is a
//! 4xx whose body is one line with control characters escaped and long values cut; a valid
//! report with generated values is stored once and read back with those values.
//!
//! Budget: a fixed number of cases and a fixed seed (docs/testing.md); `VPCE_FUZZ_CASES=N`
//! and `VPCE_FUZZ_SEED=random|N` run more or other cases by hand. Failures found are kept in
//! tests/fuzz_ingest.proptest-regressions and replayed first.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step stops the test

mod common;

use std::process::Command;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngSeed, TestRunner};
use serde_json::{Value, json};

const CI_SEED: u64 = 0x7670_6365_2d66_757a; // "vpce-fuz"

/// `default_cases` cases (or VPCE_FUZZ_CASES), CI's seed (or VPCE_FUZZ_SEED), failures kept.
fn budget(default_cases: u32) -> Config {
    let cases = std::env::var("VPCE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    let rng_seed = match std::env::var("VPCE_FUZZ_SEED").ok().as_deref() {
        Some("random") => RngSeed::Random,
        Some(n) => RngSeed::Fixed(n.parse().unwrap_or(CI_SEED)),
        None => RngSeed::Fixed(CI_SEED),
    };
    Config {
        cases,
        rng_seed,
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        max_shrink_time: 60_000,
        ..Config::default()
    }
}

/// One line, no control character left unescaped, values cut.
#[track_caller]
fn assert_refusal(what: &str, message: &str) {
    let bad = message
        .chars()
        .find(|c| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'));
    assert!(
        bad.is_none(),
        "{what}: refusal holds the control character {bad:?}: {message:?}"
    );
    assert!(
        message.chars().count() <= 1200,
        "{what}: refusal of {} characters: {message:?}",
        message.chars().count()
    );
    assert!(!message.trim().is_empty(), "{what}: empty refusal");
}

const NASTY: &[char] = &[
    '\n', '\r', '\t', '\0', '\x1b', '\x7f', '\u{9b}', '\u{202e}', '"', '\\', '[', ']', '{', '}',
    ',', ':', ' ', 'é', '\u{feff}',
];

fn odd_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        "\\PC{0,20}".prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        Just(Value::from("\u{1b}[2J\u{1b}[31mred\nsecond line")),
        Just(Value::from("x".repeat(3000))),
        Just(Value::from("2026-13-45T99:99:99Z")),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        Just(json!([])),
        Just(json!({"a": "\u{1b}"})),
    ]
}

/// Every path to a value in `v` (object keys and array indexes).
fn paths(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                prefix.push(k.clone());
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                prefix.push(i.to_string());
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn fixture_paths() -> &'static Vec<Vec<String>> {
    static PATHS: std::sync::OnceLock<Vec<Vec<String>>> = std::sync::OnceLock::new();
    PATHS.get_or_init(|| {
        let mut out = Vec::new();
        paths(&healthy_fixture(), &mut Vec::new(), &mut out);
        out
    })
}

fn pointer(path: &[String]) -> String {
    path.iter()
        .map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1")))
        .collect()
}

#[derive(Clone, Debug)]
enum Change {
    Set(Vec<String>, Value),
    Remove(Vec<String>),
}

fn change() -> impl Strategy<Value = Change> {
    let path = prop_oneof![
        3 => prop::sample::select(fixture_paths().clone()),
        2 => prop::sample::select(
            ["report_id", "schema_version", "started_at"]
                .iter()
                .map(|k| vec![k.to_string()])
                .collect::<Vec<_>>(),
        ),
    ];
    prop_oneof![
        4 => (path.clone(), odd_value()).prop_map(|(p, v)| Change::Set(p, v)),
        1 => path.prop_map(Change::Remove),
    ]
}

fn changed_report(changes: &[Change]) -> Value {
    let mut r = healthy_fixture();
    for c in changes {
        match c {
            Change::Set(p, v) => {
                if let Some(slot) = r.pointer_mut(&pointer(p)) {
                    *slot = v.clone();
                }
            }
            Change::Remove(p) => {
                let (last, parent) = p.split_last().expect("non-empty path");
                match r.pointer_mut(&pointer(parent)) {
                    Some(Value::Object(m)) => {
                        m.remove(last);
                    }
                    Some(Value::Array(a)) => {
                        if let Ok(i) = last.parse::<usize>()
                            && i < a.len()
                        {
                            a.remove(i);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    r
}

#[derive(Clone, Debug)]
enum ByteEdit {
    Insert(usize, char),
    Delete(usize),
    Truncate(usize),
}

fn byte_edits() -> impl Strategy<Value = Vec<ByteEdit>> {
    let c = prop_oneof![3 => prop::sample::select(NASTY), 1 => any::<char>()];
    prop::collection::vec(
        prop_oneof![
            (any::<usize>(), c).prop_map(|(p, c)| ByteEdit::Insert(p, c)),
            any::<usize>().prop_map(ByteEdit::Delete),
            any::<usize>().prop_map(ByteEdit::Truncate),
        ],
        1..4,
    )
}

fn apply(bytes: &[u8], edits: &[ByteEdit]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for e in edits {
        let n = b.len();
        match *e {
            ByteEdit::Insert(p, c) => {
                let mut buf = [0u8; 4];
                let at = p % (n + 1);
                b.splice(at..at, c.encode_utf8(&mut buf).bytes());
            }
            ByteEdit::Delete(p) if n > 0 => {
                b.remove(p % n);
            }
            ByteEdit::Truncate(p) => b.truncate(p % (n + 1)),
            _ => {}
        }
    }
    b
}

#[derive(Clone, Debug)]
struct Post {
    body: Vec<u8>,
    gzip: bool,
    /// A Content-Encoding that does not match what the body is.
    encoding: Option<&'static str>,
    /// Edits of the compressed bytes.
    gzip_edits: Option<Vec<ByteEdit>>,
    header_id: Option<String>,
}

fn post_case() -> impl Strategy<Value = Post> {
    let body = prop_oneof![
        4 => prop::collection::vec(change(), 1..4).prop_map(|c| serde_json::to_vec(&changed_report(&c)).expect("json")),
        3 => (prop::collection::vec(change(), 0..2), byte_edits())
            .prop_map(|(c, e)| apply(&serde_json::to_vec(&changed_report(&c)).expect("json"), &e)),
        1 => prop::collection::vec(any::<u8>(), 0..200),
        1 => Just(b"{\"schema_version\":\"1.0\"}".to_vec()),
    ];
    (
        body,
        any::<bool>(),
        prop::option::of(prop::sample::select(
            &["gzip", "identity", "br", "x-gzip", "GZIP", ""][..],
        )),
        prop::option::of(byte_edits()),
        prop::option::of(prop_oneof![
            "[a-f0-9-]{1,40}",
            Just("00000000-0000-4000-8000-000000000000".to_string())
        ]),
    )
        .prop_map(|(body, gzip, encoding, gzip_edits, header_id)| Post {
            body,
            gzip,
            encoding,
            gzip_edits: gzip_edits.filter(|_| gzip),
            header_id,
        })
}

fn send(c: &Collector, p: &Post) -> Resp {
    let mut body = if p.gzip {
        gzip(&p.body)
    } else {
        p.body.clone()
    };
    if let Some(e) = &p.gzip_edits {
        body = apply(&body, e);
    }
    let auth = format!("Bearer {TOKEN}");
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
    ];
    let encoding = p
        .encoding
        .unwrap_or(if p.gzip { "gzip" } else { "identity" });
    headers.push(("Content-Encoding", encoding));
    if let Some(id) = &p.header_id {
        headers.push(("X-Vpce-Probe-Report-Id", id));
    }
    request(c.addr, "POST", "/v1/reports", &headers, &body)
}

#[test]
fn every_post_is_stored_or_refused_in_one_line() {
    let dir = Dir::new();
    let c = Collector::start(&dir, &["--max-body", "65536"]);
    let mut runner = TestRunner::new(budget(300));
    let stored = std::sync::atomic::AtomicUsize::new(0);
    let result = runner.run(&post_case(), |p| {
        let resp = send(&c, &p);
        let text = resp.text();
        let line = text.trim_end_matches('\n');
        match resp.status {
            200 | 201 => {
                let body: Value = serde_json::from_slice(&p.body).expect("stored, so JSON");
                let id = body["report_id"].as_str().expect("stored, so an id");
                prop_assert!(
                    id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
                    "stored the report_id {:?}",
                    id
                );
                let want = if resp.status == 201 {
                    format!("stored {id}")
                } else {
                    format!("already stored {id}")
                };
                prop_assert_eq!(line, want.as_str());
                if resp.status == 201 {
                    stored.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            400 | 413 | 415 => assert_refusal("ingest", line),
            other => prop_assert!(false, "status {} for {:?}: {}", other, p, text),
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\ncollector log:\n{}", c.log());
    }
    // The collector is still up and counts what it stored.
    let fleet = c.get_json("/api/fleet");
    assert!(fleet["instances"].is_array(), "{fleet}");
    eprintln!("{} generated reports stored", stored.into_inner());
}

#[derive(Clone, Debug)]
struct ValidReport {
    id: String,
    instance: String,
    hostname: String,
    summary: String,
    started_at: String,
}

fn valid_report() -> impl Strategy<Value = ValidReport> {
    (
        "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        "i-[0-9a-f]{17}",
        "\\PC{1,30}",
        "\\PC{0,80}",
        (
            2000u32..2100,
            1u32..=12,
            1u32..=28,
            0u32..24,
            0u32..60,
            0u32..60,
            0u32..1000,
        ),
    )
        .prop_map(
            |(id, instance, hostname, summary, (y, mo, d, h, mi, s, ms))| ValidReport {
                id,
                instance,
                hostname,
                summary,
                started_at: format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z"),
            },
        )
}

#[test]
fn valid_reports_are_stored_once_and_read_back() {
    let dir = Dir::new();
    let c = Collector::start(&dir, &[]);
    let mut runner = TestRunner::new(budget(60));
    let result = runner.run(&valid_report(), |v| {
        let mut r = report(Spec {
            id: &v.id,
            instance: &v.instance,
            started_at: &v.started_at,
            ..Spec::default()
        });
        r["host"]["hostname"] = json!(v.hostname);
        r["verdict"]["summary"] = json!(v.summary);
        let first = c.post(Some(TOKEN), &r);
        // The same id may come twice from the generator: then it is a duplicate already.
        prop_assert!(matches!(first.status, 200 | 201), "{}", first.text());
        let again = c.post(Some(TOKEN), &r);
        prop_assert_eq!(again.status, 200, "{}", again.text());
        let detail = c.get_json(&format!("/api/instances/{}", v.instance));
        let reports = detail["reports"].as_array().expect("reports");
        let mine: Vec<&Value> = reports
            .iter()
            .filter(|x| x["report_id"] == json!(v.id))
            .collect();
        prop_assert_eq!(mine.len(), 1, "{}", detail);
        let body = c.get_json(&format!("/api/reports/{}", v.id));
        prop_assert_eq!(&body["host"]["hostname"], &json!(v.hostname));
        prop_assert_eq!(&body["verdict"]["summary"], &json!(v.summary));
        prop_assert_eq!(&body["started_at"], &json!(v.started_at));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\ncollector log:\n{}", c.log());
    }
}

// ---------------------------------------------------------------------------------------------
// The tokens file
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum TokenLine {
    Entry(String, String),
    Comment(String),
    Blank,
    Other(String),
}

fn token_lines() -> impl Strategy<Value = Vec<TokenLine>> {
    prop::collection::vec(
        prop_oneof![
            5 => ("[a-z][a-z0-9_-]{0,12}", "[A-Za-z0-9._~+/-]{16,40}").prop_map(|(l, t)| TokenLine::Entry(l, t)),
            1 => "\\PC{0,20}".prop_map(TokenLine::Comment),
            1 => Just(TokenLine::Blank),
            1 => prop_oneof![
                "[a-z]{1,8}",
                "[a-z]{1,8} [a-z]{1,8} [a-z]{1,8}",
                "[a-z]{1,8} [a-z]{1,15}",
                "\\PC{1,30}",
                any::<String>(),
                Just("lab\u{1b}[2J short".to_string()),
                Just("\u{1b}]0;title\u{7} aaaaaaaaaaaaaaaaaaaaaaa\u{1b}".to_string()),
            ].prop_map(TokenLine::Other),
        ],
        0..6,
    )
}

fn tokens_text(lines: &[TokenLine]) -> String {
    lines
        .iter()
        .map(|l| match l {
            TokenLine::Entry(label, token) => format!("{label} {token}"),
            TokenLine::Comment(c) => format!("# {c}"),
            TokenLine::Blank => String::new(),
            TokenLine::Other(o) => o.clone(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn tokens_files_are_read_or_refused_in_one_line() {
    let dir = Dir::new();
    let mut runner = TestRunner::new(budget(120));
    let result = runner.run(&token_lines(), |lines| {
        let path = dir.path("tokens-fuzz");
        std::fs::write(&path, tokens_text(&lines)).expect("tokens");
        let out = Command::new(BIN)
            .args(["check-config", "--listen", "127.0.0.1:0", "--db"])
            .arg(dir.path("check.db"))
            .arg("--tokens")
            .arg(&path)
            .output()
            .expect("run check-config");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let entries: Vec<(&String, &String)> = lines
            .iter()
            .filter_map(|l| match l {
                TokenLine::Entry(label, token) => Some((label, token)),
                _ => None,
            })
            .collect();
        let clean = lines.iter().all(|l| !matches!(l, TokenLine::Other(_)));
        let distinct = {
            let mut t: Vec<&String> = entries.iter().map(|(_, t)| *t).collect();
            t.sort_unstable();
            t.windows(2).all(|w| w[0] != w[1])
        };
        match out.status.code() {
            Some(0) => {
                // Read back: every label, in order (broken lines may happen to be good ones).
                if clean {
                    let labels: Vec<&str> = entries.iter().map(|(l, _)| l.as_str()).collect();
                    let want = format!("({} labels: {})", labels.len(), labels.join(", "));
                    prop_assert!(stdout.contains(&want), "{} not in {}", want, stdout);
                }
                prop_assert!(
                    !stdout.contains(|c: char| c.is_control() && c != '\n'),
                    "control characters printed: {:?}",
                    stdout
                );
                for (_, token) in &entries {
                    prop_assert!(
                        !stdout.contains(token.as_str()),
                        "a token is printed: {}",
                        stdout
                    );
                }
            }
            Some(2) => {
                prop_assert!(
                    !(clean && distinct && !entries.is_empty()),
                    "refused a good file: {}",
                    stderr
                );
                let line = stderr.trim_end_matches('\n');
                assert_refusal("tokens file", line);
                for (_, token) in &entries {
                    prop_assert!(
                        !stderr.contains(token.as_str()),
                        "a token is printed: {}",
                        stderr
                    );
                }
            }
            other => prop_assert!(false, "check-config exited {:?}: {}", other, stderr),
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
