//! Property tests of every parser of outside data: the agent's TOML, ip-ranges JSON, the proxy
//! variables, AWS error bodies and denial texts, resolv.conf, hosts and nsswitch.conf,
//! durations, bucket/table/region names, --item-key, the shared AWS config files and --ship URLs.
//!
//! Each target has a structure-aware generator (valid-looking documents and lines, then random
//! edits) besides plain random text. What must hold for every input:
//! - nothing panics;
//! - a refusal is one line, with control characters escaped and long values cut
//!   ([`assert_refusal`]);
//! - a valid generated input parses back to what was generated, where that can be checked.
//!
//! Budget: a fixed number of cases per target and a fixed seed, so CI runs the same cases every
//! time (docs/testing.md has the figures). `VPCE_FUZZ_CASES=N` runs N cases per target and
//! `VPCE_FUZZ_SEED=random` (or a number) other cases; failures found are kept in
//! tests/fuzz_parsers.proptest-regressions and replayed first.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step stops the test

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, RngSeed};

use vpce_probe::agent::config as agent_config;
use vpce_probe::checks::app_resolve::{self, NssAction, NssStatus};
use vpce_probe::checks::dynamodb::{ItemKeyValue, parse_item_key};
use vpce_probe::classify::{self, ErrorInfo, PolicyType};
use vpce_probe::config::{
    Environment, Sink, validate_bucket_name, validate_region, validate_table_name,
};
use vpce_probe::durations;
use vpce_probe::escape;
use vpce_probe::proxy_rules::{self, HttpClientKind, ProxyEnv};
use vpce_probe::ranges::IpRanges;
use vpce_probe::report::Service;

// ---------------------------------------------------------------------------------------------
// Budget and invariants shared by every target
// ---------------------------------------------------------------------------------------------

/// The seed of CI's runs: the same cases every time, so a red run is reproducible.
const CI_SEED: u64 = 0x7670_6365_2d66_757a; // "vpce-fuz"

/// `default_cases` cases (or VPCE_FUZZ_CASES), CI's seed (or VPCE_FUZZ_SEED), failures kept.
fn budget(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("VPCE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    let rng_seed = match std::env::var("VPCE_FUZZ_SEED").ok().as_deref() {
        Some("random") => RngSeed::Random,
        Some(n) => RngSeed::Fixed(n.parse().unwrap_or(CI_SEED)),
        None => RngSeed::Fixed(CI_SEED),
    };
    ProptestConfig {
        cases,
        rng_seed,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        // A failing case is shrunk for at most this long (a bound for CI, not a test of speed).
        max_shrink_time: 60_000,
        ..ProptestConfig::default()
    }
}

/// The longest refusal accepted: a sentence quoting a few values, each cut to
/// [`escape::MAX_SHOWN`] characters.
const MAX_REFUSAL_CHARS: usize = escape::MAX_LINE + escape::MAX_SHOWN;

/// What every error message a person reads must be: one line, no control character or
/// bidirectional override left unescaped, values cut.
#[track_caller]
fn assert_refusal(what: &str, message: &str) {
    let bad = message
        .chars()
        .find(|c| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'));
    assert!(
        bad.is_none(),
        "{what}: refusal holds the control character {bad:?}: {message:?}"
    );
    let chars = message.chars().count();
    assert!(
        chars <= MAX_REFUSAL_CHARS,
        "{what}: refusal of {chars} characters: {message:?}"
    );
    assert!(!message.trim().is_empty(), "{what}: empty refusal");
}

/// One line, whatever else it holds (texts of the report that are not refusals).
#[track_caller]
fn assert_one_line(what: &str, text: &str) {
    assert!(
        !text.contains(['\n', '\r']),
        "{what}: not one line: {text:?}"
    );
}

/// Whether `text` shows the generated password ("pw-secret...") as the userinfo of a URL (a
/// token with "://" before it and '@' after it). An edit may have left no URL around it: then
/// it is no password to any parser, and no message needs to hide it.
fn shows_password(text: &str) -> bool {
    let token_end = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`');
    text.match_indices("pw-secret").any(|(i, _)| {
        let start = text[..i].rfind(token_end).map_or(0, |s| s + 1);
        let after = &text[i..];
        text[start..i].contains("://")
            && after
                .find('@')
                .is_some_and(|at| !after[..at].contains(token_end))
    })
}

/// Characters that break parsers and terminals, inserted by the mutations.
const NASTY: &[char] = &[
    '\n', '\r', '\t', '\0', '\x1b', '\x7f', '\u{9b}', '\u{202e}', '\u{2066}', '"', '\'', '\\', '[',
    ']', '{', '}', '=', '#', ';', ',', ' ', ':', '/', '@', '%', '.', '*', '-', 'é', '✓',
    '\u{feff}',
];

fn nasty_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::sample::select(NASTY),
        1 => any::<char>(),
    ]
}

/// One random edit of a text, at a position taken modulo its length.
#[derive(Clone, Debug)]
enum Edit {
    Insert(usize, char),
    Delete(usize),
    Replace(usize, char),
    /// Repeat a slice of the text (a line twice, a value 300 times).
    Repeat(usize, usize, usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<usize>(), nasty_char()).prop_map(|(p, c)| Edit::Insert(p, c)),
        2 => any::<usize>().prop_map(Edit::Delete),
        2 => (any::<usize>(), nasty_char()).prop_map(|(p, c)| Edit::Replace(p, c)),
        1 => (any::<usize>(), 1usize..40, prop_oneof![Just(2usize), Just(300usize)])
            .prop_map(|(p, l, n)| Edit::Repeat(p, l, n)),
        1 => any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(edit(), 1..5)
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        let n = chars.len();
        match *e {
            Edit::Insert(p, c) => chars.insert(p % (n + 1), c),
            Edit::Delete(p) if n > 0 => {
                chars.remove(p % n);
            }
            Edit::Replace(p, c) if n > 0 => chars[p % n] = c,
            Edit::Repeat(p, len, times) if n > 0 => {
                let start = p % n;
                let end = (start + len).min(n);
                let piece: Vec<char> = chars[start..end].to_vec();
                for _ in 1..times {
                    chars.splice(end..end, piece.iter().copied());
                }
            }
            Edit::Truncate(p) => chars.truncate(p % (n + 1)),
            _ => {}
        }
    }
    chars.into_iter().collect()
}

/// Text that is valid-looking (`valid`), edited, or anything at all.
fn variants(valid: BoxedStrategy<String>) -> impl Strategy<Value = String> {
    prop_oneof![
        2 => valid.clone(),
        5 => (valid, edits()).prop_map(|(t, e)| apply(&t, &e)),
        1 => any::<String>(),
    ]
}

/// Values a person might write anywhere: plausible words, escapes, huge ones.
fn odd_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9.-]{0,12}",
        "\\PC{0,20}",
        any::<String>(),
        Just("\u{1b}[2J\u{1b}[31mred".to_string()),
        Just("line1\nline2\r\nline3".to_string()),
        Just("\u{202e}txt.exe".to_string()),
        Just("x".repeat(5000)),
        Just("\u{9b}31m".to_string()),
    ]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

// ---------------------------------------------------------------------------------------------
// Durations
// ---------------------------------------------------------------------------------------------

fn duration_text() -> BoxedStrategy<String> {
    let unit = prop::sample::select(
        &[
            "ns", "us", "ms", "s", "sec", "m", "min", "h", "hours", "d", "days", "w", "M", "y",
        ][..],
    );
    prop::collection::vec((0u64..100_000, unit), 1..4)
        .prop_map(|parts| {
            parts
                .iter()
                .map(|(n, u)| format!("{n}{u}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .boxed()
}

proptest! {
    #![proptest_config(budget(400))]

    #[test]
    fn durations_are_bounded_or_refused_in_one_line(raw in variants(duration_text())) {
        for max in [durations::MAX_WAIT, durations::MAX_RETENTION] {
            match durations::parse("shipping.timeout", &raw, max) {
                Ok(d) => prop_assert!(d <= max),
                Err(e) => {
                    assert_refusal("duration", &e);
                    prop_assert!(e.starts_with("shipping.timeout = \""), "{}", e);
                }
            }
        }
    }

    #[test]
    fn durations_round_trip(secs in 0u64..=durations::MAX_WAIT.as_secs(), nanos in 0u32..1_000_000_000) {
        let d = Duration::new(secs, nanos).min(durations::MAX_WAIT);
        let text = humantime::format_duration(d).to_string();
        prop_assert_eq!(durations::parse("interval", &text, durations::MAX_WAIT), Ok(d));
    }

    #[test]
    fn seconds_flags_never_panic(value in prop_oneof![
        any::<f64>(),
        Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(-0.0),
        0.0f64..400.0,
    ]) {
        match durations::seconds("--timeout", value, durations::MIN_TIMEOUT, durations::MAX_TIMEOUT) {
            Ok(d) => {
                prop_assert!(d >= durations::MIN_TIMEOUT && d <= durations::MAX_TIMEOUT);
                prop_assert!((d.as_secs_f64() - value).abs() < 1e-6);
            }
            Err(e) => assert_refusal("seconds", &e),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Bucket, table and region names
// ---------------------------------------------------------------------------------------------

/// A bucket name that follows every naming rule (it starts with 'b', so no reserved prefix,
/// no IP address).
fn valid_bucket() -> impl Strategy<Value = String> {
    (
        "[a-z0-9]{2,20}",
        prop::option::of(("[.-]", "[a-z0-9]{1,20}")),
    )
        .prop_map(|(a, tail)| match tail {
            Some((sep, b)) => format!("b{a}{sep}{b}"),
            None => format!("b{a}"),
        })
}

fn valid_table() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.-]{3,60}"
}

proptest! {
    #![proptest_config(budget(500))]

    #[test]
    fn bucket_names(valid in valid_bucket(), other in variants(valid_bucket().boxed())) {
        prop_assert!(validate_bucket_name(&valid).is_ok(), "{}", valid);
        match validate_bucket_name(&other) {
            Ok(()) => prop_assert!(
                other.starts_with("arn:") || (
                    (3..=63).contains(&other.len())
                    && other.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
                ),
                "accepted {:?}", other
            ),
            Err(e) => {
                let e = e.to_string();
                assert_refusal("bucket", &e);
                prop_assert!(e.starts_with("--bucket '"), "{}", e);
            }
        }
    }

    #[test]
    fn table_names(valid in valid_table(), other in variants(valid_table().boxed())) {
        prop_assert!(validate_table_name(&valid).is_ok(), "{}", valid);
        match validate_table_name(&other) {
            Ok(()) => prop_assert!((3..=255).contains(&other.len()) && other.is_ascii()),
            Err(e) => assert_refusal("table", &e.to_string()),
        }
    }

    #[test]
    fn region_names(raw in variants("[a-z]{2}-[a-z]{4,9}-[1-4]".boxed())) {
        let ranges = embedded();
        match validate_region(&raw, ranges) {
            Ok(()) => prop_assert!(ranges.regions().contains(&raw.as_str())),
            Err(e) => assert_refusal("region", &e.to_string()),
        }
    }
}

fn embedded() -> &'static IpRanges {
    static RANGES: std::sync::OnceLock<IpRanges> = std::sync::OnceLock::new();
    RANGES.get_or_init(IpRanges::embedded)
}

#[test]
fn every_embedded_region_is_accepted() {
    let ranges = embedded();
    let regions = ranges.regions();
    assert!(regions.len() > 10, "{regions:?}");
    for r in regions {
        validate_region(r, ranges).expect(r);
    }
}

// ---------------------------------------------------------------------------------------------
// ip-ranges JSON
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct RangeEntry {
    prefix: String,
    region: String,
    service: String,
}

fn v4_net() -> impl Strategy<Value = String> {
    (any::<[u8; 4]>(), 0u8..=32).prop_map(|(o, l)| format!("{}/{l}", Ipv4Addr::from(o)))
}

fn v6_net() -> impl Strategy<Value = String> {
    (any::<[u16; 8]>(), 0u8..=128).prop_map(|(s, l)| format!("{}/{l}", Ipv6Addr::from(s)))
}

fn range_entry(net: BoxedStrategy<String>) -> impl Strategy<Value = RangeEntry> {
    let prefix = prop_oneof![8 => net, 1 => odd_value()];
    let region = prop_oneof![
        6 => prop::sample::select(&["eu-west-1", "us-east-1", "GLOBAL", "ap-south-2"][..]).prop_map(str::to_string),
        1 => odd_value(),
    ];
    let service = prop_oneof![
        3 => Just("S3".to_string()),
        3 => Just("DYNAMODB".to_string()),
        2 => Just("EC2".to_string()),
        1 => odd_value(),
    ];
    (prefix, region, service).prop_map(|(prefix, region, service)| RangeEntry {
        prefix,
        region,
        service,
    })
}

fn ranges_doc() -> impl Strategy<Value = (String, Vec<RangeEntry>, Vec<RangeEntry>)> {
    (
        prop_oneof![Just("2026-11-20-17-23-15".to_string()), odd_value()],
        prop::collection::vec(range_entry(v4_net().boxed()), 0..6),
        prop::collection::vec(range_entry(v6_net().boxed()), 0..4),
    )
}

fn ranges_json(date: &str, v4: &[RangeEntry], v6: &[RangeEntry]) -> String {
    let v4: Vec<_> = v4
        .iter()
        .map(|e| serde_json::json!({"ip_prefix": e.prefix, "region": e.region, "service": e.service, "network_border_group": e.region}))
        .collect();
    let v6: Vec<_> = v6
        .iter()
        .map(|e| serde_json::json!({"ipv6_prefix": e.prefix, "region": e.region, "service": e.service}))
        .collect();
    serde_json::json!({"syncToken": "1", "createDate": date, "prefixes": v4, "ipv6_prefixes": v6})
        .to_string()
}

proptest! {
    #![proptest_config(budget(300))]

    #[test]
    fn ip_ranges_round_trip((date, v4, v6) in ranges_doc(), region in odd_value()) {
        let text = ranges_json(&date, &v4, &v6);
        let wanted: Vec<&RangeEntry> = v4
            .iter()
            .chain(&v6)
            .filter(|e| e.service == "S3" || e.service == "DYNAMODB")
            .collect();
        let all_parse = wanted.iter().all(|e| e.prefix.parse::<ipnet::IpNet>().is_ok());
        match IpRanges::parse(&text, "fuzz.json") {
            Ok(r) => {
                prop_assert!(all_parse && !wanted.is_empty());
                prop_assert_eq!(&r.create_date, &date);
                prop_assert_eq!(r.prefixes.len(), wanted.len());
                for (got, want) in r.prefixes.iter().zip(&wanted) {
                    prop_assert_eq!(got.net, want.prefix.parse::<ipnet::IpNet>().unwrap());
                    prop_assert_eq!(&got.region, &want.region);
                    let service = if want.service == "S3" { Service::S3 } else { Service::Dynamodb };
                    prop_assert_eq!(got.service, service);
                }
                // Region names come from the file: the refusal quoting them stays one line.
                if let Err(e) = validate_region(&region, &r) {
                    assert_refusal("region against a generated file", &e.to_string());
                }
                for known in r.regions() {
                    let near = format!("{known}x");
                    if let Err(e) = validate_region(&near, &r) {
                        assert_refusal("region near a generated one", &e.to_string());
                    }
                }
            }
            Err(e) => {
                prop_assert!(!all_parse || wanted.is_empty(), "{}", e);
                assert_refusal("ip-ranges", &e.to_string());
            }
        }
    }

    #[test]
    fn ip_ranges_edited((date, v4, v6) in ranges_doc(), edits in edits()) {
        let text = apply(&ranges_json(&date, &v4, &v6), &edits);
        if let Err(e) = IpRanges::parse(&text, "fuzz.json") {
            assert_refusal("edited ip-ranges", &e.to_string());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// --item-key (DynamoDB JSON)
// ---------------------------------------------------------------------------------------------

fn item_key_value() -> impl Strategy<Value = ItemKeyValue> {
    prop_oneof![
        "\\PC{0,20}".prop_map(ItemKeyValue::S),
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| f.to_string()),
        ]
        .prop_map(ItemKeyValue::N),
        prop::collection::vec(any::<u8>(), 0..20).prop_map(ItemKeyValue::B),
    ]
}

fn item_key_json(key: &[(String, ItemKeyValue)]) -> String {
    use base64::Engine;
    let map: serde_json::Map<String, serde_json::Value> = key
        .iter()
        .map(|(name, v)| {
            let typed = match v {
                ItemKeyValue::S(s) => serde_json::json!({"S": s}),
                ItemKeyValue::N(n) => serde_json::json!({"N": n}),
                ItemKeyValue::B(b) => serde_json::json!({
                    "B": base64::engine::general_purpose::STANDARD.encode(b)
                }),
            };
            (name.clone(), typed)
        })
        .collect();
    serde_json::Value::Object(map).to_string()
}

proptest! {
    #![proptest_config(budget(400))]

    #[test]
    fn item_keys_round_trip(
        key in prop::collection::vec(("[a-z_]{1,8}|\\PC{1,8}", item_key_value()), 1..=2)
            .prop_filter("distinct names", |k| k.len() < 2 || k[0].0 != k[1].0),
        edits in edits(),
    ) {
        let text = item_key_json(&key);
        let parsed = parse_item_key(&text).expect(&text);
        let want: HashMap<String, ItemKeyValue> = key.into_iter().collect();
        prop_assert_eq!(parsed, want);
        if let Err(e) = parse_item_key(&apply(&text, &edits)) {
            assert_refusal("item key", &e);
        }
    }

    #[test]
    fn item_keys_from_anything(raw in any::<String>()) {
        if let Err(e) = parse_item_key(&raw) {
            assert_refusal("item key", &e);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The agent's TOML
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum SinkSpec {
    Dir {
        name: Option<String>,
        path: String,
    },
    S3 {
        name: Option<String>,
        bucket: String,
        prefix: String,
    },
    Http {
        name: Option<String>,
        host: String,
        port: u16,
        gzip: bool,
    },
}

#[derive(Clone, Debug)]
struct AgentDoc {
    interval: Duration,
    jitter: Duration,
    timeout: Duration,
    deadline: Duration,
    buckets: Vec<String>,
    tables: Vec<String>,
    max_bytes: Option<u64>,
    metrics: Option<String>,
    sinks: Vec<SinkSpec>,
}

fn sink_spec() -> impl Strategy<Value = SinkSpec> {
    let name = prop::option::of("[A-Za-z][A-Za-z0-9_-]{0,15}");
    prop_oneof![
        (name.clone(), "[a-z]{1,8}(/[a-z0-9]{1,8}){0,2}").prop_map(|(name, p)| SinkSpec::Dir {
            name,
            path: format!("/var/lib/{p}")
        }),
        (name.clone(), valid_bucket(), "([a-z0-9-]{1,8}/){0,2}").prop_map(
            |(name, bucket, prefix)| SinkSpec::S3 {
                name,
                bucket,
                prefix
            }
        ),
        (
            name,
            "[a-z]{1,10}(\\.[a-z]{2,6}){0,2}",
            1u16..,
            any::<bool>()
        )
            .prop_map(|(name, host, port, gzip)| SinkSpec::Http {
                name,
                host,
                port,
                gzip
            }),
    ]
}

fn agent_doc() -> impl Strategy<Value = AgentDoc> {
    (
        2u64..=86_400,
        prop::collection::vec(valid_bucket(), 0..3),
        prop::collection::vec(valid_table(), 0..3),
        prop::option::of(any::<u64>()),
        prop::option::of(prop_oneof![
            Just("none".to_string()),
            (any::<[u8; 4]>(), any::<u16>())
                .prop_map(|(ip, p)| format!("{}:{p}", Ipv4Addr::from(ip))),
        ]),
        prop::collection::vec(sink_spec(), 0..4),
        (any::<u64>(), any::<u64>(), any::<u64>()),
    )
        .prop_filter("something to probe", |d| !d.1.is_empty() || !d.2.is_empty())
        .prop_map(
            |(interval_s, buckets, tables, max_bytes, metrics, sinks, (a, b, c))| {
                let interval = Duration::from_secs(interval_s);
                let millis =
                    |n: u64, lo: u64, hi: u64| Duration::from_millis(lo + n % (hi - lo + 1));
                let deadline = millis(a, 100, (interval_s * 1000 - 1).min(3_600_000));
                let timeout = millis(b, 50, (deadline.as_millis() as u64).min(300_000));
                let jitter = Duration::from_secs(c % interval_s);
                AgentDoc {
                    interval,
                    jitter,
                    timeout,
                    deadline,
                    buckets,
                    tables,
                    max_bytes,
                    metrics,
                    sinks,
                }
            },
        )
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

fn resolv_conf_file() -> &'static str {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| scratch_file("resolv.conf", "nameserver 127.0.0.1\n"))
        .to_str()
        .expect("utf-8 path")
}

fn agent_toml(d: &AgentDoc) -> String {
    let human = |d: Duration| humantime::format_duration(d).to_string();
    let mut t = format!(
        "# generated\ninterval = \"{}\"\njitter = \"{}\"\n\n[probe]\nbuckets = {}\ntables = {}\ntimeout = \"{}\"\ndeadline = \"{}\"\nresolv_conf = \"{}\"\n",
        human(d.interval),
        human(d.jitter),
        toml_list(&d.buckets),
        toml_list(&d.tables),
        human(d.timeout),
        human(d.deadline),
        resolv_conf_file(),
    );
    if let Some(m) = &d.metrics {
        t.push_str(&format!("\n[metrics]\nlisten = \"{m}\"\n"));
    }
    if let Some(b) = d.max_bytes {
        t.push_str(&format!("\n[spool]\nmax_bytes = {}\n", b >> 1));
    }
    for s in &d.sinks {
        t.push_str("\n[[sink]]\n");
        let name = match s {
            SinkSpec::Dir { name, path } => {
                t.push_str(&format!("type = \"dir\"\npath = \"{path}\"\n"));
                name
            }
            SinkSpec::S3 {
                name,
                bucket,
                prefix,
            } => {
                t.push_str(&format!(
                    "type = \"s3\"\nurl = \"s3://{bucket}/{prefix}\"\n"
                ));
                name
            }
            SinkSpec::Http {
                name,
                host,
                port,
                gzip,
            } => {
                t.push_str(&format!(
                    "type = \"http\"\nurl = \"https://{host}:{port}/v1/reports\"\ngzip = {gzip}\n"
                ));
                name
            }
        };
        if let Some(n) = name {
            t.push_str(&format!("name = \"{n}\"\n"));
        }
    }
    t
}

/// Lines of any key the file may hold (and some it may not), with odd values in TOML's own
/// escapes, so control characters and huge values reach the validation behind the parser.
fn agent_lines() -> impl Strategy<Value = String> {
    let key = prop::sample::select(
        &[
            "interval",
            "jitter",
            "probe.buckets",
            "probe.tables",
            "probe.region",
            "probe.profile",
            "probe.timeout",
            "probe.deadline",
            "probe.key",
            "probe.item_key",
            "probe.expect_path",
            "probe.vpc_resolver",
            "probe.internet_canary",
            "probe.ip_ranges",
            "probe.expect_issuers",
            "metrics.listen",
            "spool.dir",
            "spool.max_age",
            "spool.max_bytes",
            "shipping.retry_initial",
            "shipping.retry_max",
            "shipping.timeout",
            "shipping.unhealthy_after",
            "sink.type",
            "sink.url",
            "sink.name",
            "sink.path",
            "sink.gzip",
            "probe.bucket",
            "intervall",
            "probe.control_plane",
        ][..],
    );
    let value = prop_oneof![
        odd_value().prop_map(|v| format!("{v:?}")),
        odd_value().prop_map(|v| format!("[{v:?}]")),
        duration_text().prop_map(|v| format!("\"{v}\"")),
        any::<i64>().prop_map(|n| n.to_string()),
        Just("true".to_string()),
        Just("\"s3://b-x/p\"".to_string()),
        Just("\"https://u:pw-secret@host:1/x\"".to_string()),
        Just("\"[2001:db8::1]:53\"".to_string()),
        Just("'{\"pk\":{\"N\":\"\\u001b[2J\"}}'".to_string()),
    ];
    prop::collection::vec((key, value), 1..12).prop_map(|kvs| {
        let mut sections: Vec<(String, Vec<String>)> = vec![(String::new(), Vec::new())];
        for (k, v) in kvs {
            let (section, key) = k.split_once('.').unwrap_or(("", k));
            let line = format!("{key} = {v}");
            match sections.iter_mut().find(|(s, _)| s == section) {
                Some((_, lines)) => lines.push(line),
                None => sections.push((section.to_string(), vec![line])),
            }
        }
        let mut t = String::new();
        for (section, lines) in sections {
            match section.as_str() {
                "" => {}
                "sink" => t.push_str("[[sink]]\n"),
                s => t.push_str(&format!("[{s}]\n")),
            }
            for l in lines {
                t.push_str(&l);
                t.push('\n');
            }
        }
        t
    })
}

proptest! {
    #![proptest_config(budget(150))]

    #[test]
    fn agent_config_round_trip(doc in agent_doc()) {
        let text = agent_toml(&doc);
        let c = agent_config::parse(&text, Environment::default())
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        prop_assert_eq!(c.interval, doc.interval);
        prop_assert_eq!(c.jitter, doc.jitter);
        prop_assert_eq!(c.probe.timeout, doc.timeout);
        prop_assert_eq!(c.probe.deadline, doc.deadline);
        let mut buckets = doc.buckets.clone();
        let mut seen = std::collections::HashSet::new();
        buckets.retain(|b| seen.insert(b.clone()));
        prop_assert_eq!(&c.probe.buckets, &buckets);
        prop_assert_eq!(c.spool_max_bytes, doc.max_bytes.map_or(64 * 1024 * 1024, |b| b >> 1));
        match doc.metrics.as_deref() {
            Some("none") => prop_assert_eq!(c.metrics_listen, None),
            Some(m) => prop_assert_eq!(c.metrics_listen, Some(m.parse().unwrap())),
            None => prop_assert_eq!(c.metrics_listen, Some(agent_config::DEFAULT_METRICS.parse().unwrap())),
        }
        prop_assert_eq!(c.sinks.len(), doc.sinks.len());
        for (i, (got, want)) in c.sinks.iter().zip(&doc.sinks).enumerate() {
            let default_name = |kind: &str| format!("{kind}-{}", i + 1);
            match (got, want) {
                (Sink::Dir { name, path }, SinkSpec::Dir { name: n, path: p }) => {
                    prop_assert_eq!(name, &n.clone().unwrap_or_else(|| default_name("dir")));
                    prop_assert_eq!(path, &PathBuf::from(p));
                }
                (Sink::S3 { name, bucket, prefix }, SinkSpec::S3 { name: n, bucket: b, prefix: p }) => {
                    prop_assert_eq!(name, &n.clone().unwrap_or_else(|| default_name("s3")));
                    prop_assert_eq!((bucket, prefix), (b, p));
                }
                (Sink::Http { name, url, gzip, .. }, SinkSpec::Http { name: n, host, port, gzip: g }) => {
                    prop_assert_eq!(name, &n.clone().unwrap_or_else(|| default_name("http")));
                    prop_assert_eq!(url.host_str(), Some(host.as_str()));
                    prop_assert_eq!(url.port_or_known_default(), Some(*port));
                    prop_assert_eq!(gzip, g);
                }
                other => prop_assert!(false, "sink {} of another kind: {:?}", i, other),
            }
        }
    }

    #[test]
    fn agent_config_edited(doc in agent_doc(), edits in edits()) {
        let text = apply(&agent_toml(&doc), &edits);
        if let Err(e) = agent_config::parse(&text, Environment::default()) {
            assert_refusal("edited agent file", &e);
            prop_assert!(!shows_password(&e), "{}", e);
        }
    }

    #[test]
    fn agent_config_any_keys(text in agent_lines(), edits in prop::option::of(edits())) {
        let text = match edits { Some(e) => apply(&text, &e), None => text };
        if let Err(e) = agent_config::parse(&text, Environment::default()) {
            assert_refusal("agent file", &e);
            prop_assert!(!shows_password(&e), "{}", e);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// --ship URLs
// ---------------------------------------------------------------------------------------------

fn ship_url() -> impl Strategy<Value = String> {
    prop_oneof![
        (valid_bucket(), "([a-z0-9-]{1,8}/){0,2}").prop_map(|(b, p)| format!("s3://{b}/{p}")),
        (
            "[a-z]{1,10}(\\.[a-z]{2,6}){0,2}",
            prop::option::of(1u16..),
            "(/[a-z0-9]{1,8}){0,2}"
        )
            .prop_map(|(h, port, path)| match port {
                Some(p) => format!("https://{h}:{p}{path}"),
                None => format!("http://{h}{path}"),
            }),
        ("[a-z]{1,6}", "[a-zA-Z0-9]{1,10}", "[a-z]{1,10}")
            .prop_map(|(user, pw, h)| format!("https://{user}:pw-secret{pw}@{h}.example/x")),
        Just(std::env::temp_dir().display().to_string()),
        Just(format!("file://{}", std::env::temp_dir().display())),
    ]
}

proptest! {
    #![proptest_config(budget(400))]

    #[test]
    fn ship_urls(url in variants(ship_url().boxed())) {
        match Sink::from_ship_url(&url) {
            Ok(Sink::S3 { bucket, prefix, .. }) => {
                let whole = format!("s3://{bucket}/{prefix}");
                prop_assert!(url == whole || (prefix.is_empty() && url == format!("s3://{bucket}")), "{} -> {}", url, whole);
                prop_assert!(validate_bucket_name(&bucket).is_ok());
            }
            Ok(Sink::Http { url: parsed, .. }) => {
                prop_assert!(parsed.host().is_some());
                prop_assert!(matches!(parsed.scheme(), "http" | "https"));
            }
            Ok(Sink::Dir { path, .. }) => prop_assert!(path.is_absolute() && path.is_dir()),
            Err(e) => {
                assert_refusal("--ship", &e);
                prop_assert!(!shows_password(&e), "{}", e);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Proxy variables: proxy URLs and NO_PROXY lists, as three clients read them
// ---------------------------------------------------------------------------------------------

/// A proxy value; the password of a well-formed one holds "pw-secret", which no decision,
/// explanation or redacted URL may show.
fn proxy_value() -> impl Strategy<Value = String> {
    let scheme = prop::sample::select(
        &[
            "",
            "http://",
            "https://",
            "HTTP://",
            "socks5://",
            "socks5h://",
            "ftp://",
            "Https://",
        ][..],
    );
    let userinfo = prop::option::of((
        "[a-z]{1,6}",
        "[A-Za-z0-9]{0,8}",
        prop::sample::select(&["", "/", "@", "?", "#", ":"][..]),
    ))
    .prop_map(|u| match u {
        Some((user, pw, odd)) => format!("{user}:pw-secret{odd}{pw}@"),
        None => String::new(),
    });
    let host = prop_oneof![
        "[a-z]{1,8}(\\.[a-z]{2,6}){0,2}",
        any::<[u8; 4]>().prop_map(|o| Ipv4Addr::from(o).to_string()),
        any::<[u16; 8]>().prop_map(|s| format!("[{}]", Ipv6Addr::from(s))),
    ];
    let port = prop::option::of(prop_oneof![
        any::<u16>().prop_map(|p| p.to_string()),
        "[0-9]{5,7}",
        Just(String::new())
    ])
    .prop_map(|p| p.map(|p| format!(":{p}")).unwrap_or_default());
    let path = prop::sample::select(&["", "/", "/path", "/x?y#z"][..]);
    prop_oneof![
        6 => (scheme, userinfo, host, port, path).prop_map(|(s, u, h, p, path)| format!("{s}{u}{h}{p}{path}")),
        1 => odd_value(),
        1 => Just(String::new()),
    ]
}

fn no_proxy_value() -> impl Strategy<Value = String> {
    let entry = prop_oneof![
        prop::sample::select(
            &[
                "*",
                ".amazonaws.com",
                "amazonaws.com",
                "*.amazonaws.com",
                "s3.eu-west-1.amazonaws.com",
                "169.254.169.254",
                "169.254.0.0/16",
                "10.0.0.0/8",
                "::1",
                "[::1]",
                "fd00::/8",
                "localhost",
                "s3.amazonaws.com:443",
                "http://s3.amazonaws.com",
                ".",
                "*.",
                "[",
                "]:1",
                "2001:db8::/32",
                "[2001:db8::1]:443",
                "0.0.0.0/0",
                "::/0",
            ][..]
        )
        .prop_map(str::to_string),
        "[a-z0-9.*-]{0,12}",
        odd_value(),
    ];
    let sep = prop::sample::select(&[",", ", ", " ", ",,", " ,", "\t"][..]);
    (prop::collection::vec(entry, 0..5), sep).prop_map(|(entries, sep)| entries.join(sep))
}

const PROXY_NAMES: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "Https_Proxy",
    "hTTp_pRoxy",
];

fn proxy_env() -> impl Strategy<Value = Vec<(String, String)>> {
    let proxy =
        (prop::sample::select(PROXY_NAMES), proxy_value()).prop_map(|(n, v)| (n.to_string(), v));
    let no_proxy = (
        prop::sample::select(&["NO_PROXY", "no_proxy", "No_Proxy"][..]),
        no_proxy_value(),
    )
        .prop_map(|(n, v)| (n.to_string(), v));
    let cgi = Just(("REQUEST_METHOD".to_string(), "GET".to_string()));
    prop::collection::vec(prop_oneof![4 => proxy, 3 => no_proxy, 1 => cgi], 0..7)
}

fn target_url() -> impl Strategy<Value = url::Url> {
    let fixed = prop::sample::select(
        &[
            "https://mybucket.s3.eu-west-1.amazonaws.com/",
            "https://s3.eu-west-1.amazonaws.com/mybucket",
            "https://s3.amazonaws.com/",
            "https://mybucket.s3.amazonaws.com/key",
            "https://dynamodb.eu-west-1.amazonaws.com/",
            "https://123456789012.ddb.eu-west-1.amazonaws.com/",
            "http://169.254.169.254/latest/api/token",
            "http://[fd00:ec2::254]/latest/api/token",
            "https://[2001:db8::1]:8443/",
            "https://sts.eu-west-1.amazonaws.com/",
            "https://localhost/",
        ][..],
    )
    .prop_map(|u| url::Url::parse(u).expect("fixed URL"));
    let generated = (
        "[a-z0-9-]{1,10}(\\.[a-z0-9-]{1,10}){0,3}\\.?",
        any::<u16>(),
        any::<bool>(),
    )
        .prop_filter_map("a URL", |(host, port, tls)| {
            let scheme = if tls { "https" } else { "http" };
            url::Url::parse(&format!("{scheme}://{host}:{port}/")).ok()
        });
    prop_oneof![3 => fixed, 1 => generated]
}

proptest! {
    #![proptest_config(budget(400))]

    #[test]
    fn proxy_decisions_never_show_a_password(
        pairs in proxy_env(),
        target in target_url(),
        known in prop::collection::vec(target_url(), 0..3),
    ) {
        let env = ProxyEnv::from_pairs(pairs.clone());
        for client in HttpClientKind::ALL {
            let d = proxy_rules::decide_among(client, &env, &target, &known, &[]);
            let json = serde_json::to_string(&d).expect("serialize");
            prop_assert!(!json.contains("pw-secret"), "{:?} shows a password: {}", client, json);
            if env.is_empty() {
                prop_assert!(d.proxy.is_none(), "{:?}: no proxy variable, yet {:?}", client, d);
            }
            if d.bypass_entry.is_some() {
                prop_assert!(d.proxy.is_none());
            }
        }
        let resolved = [IpAddr::V4(Ipv4Addr::new(52, 218, 1, 2)), IpAddr::V6(Ipv6Addr::LOCALHOST)];
        for entry in proxy_rules::ineffective_entries(&env, &target, &resolved) {
            let json = serde_json::to_string(&entry).expect("serialize");
            prop_assert!(!json.contains("pw-secret"), "{}", json);
            prop_assert!(!entry.clients.is_empty());
        }
        let _ = proxy_rules::case_conflicts(&env);
        for (_, value) in pairs {
            prop_assert!(!proxy_rules::redact_proxy_url(&value).contains("pw-secret"), "{}", value);
        }
    }

    #[test]
    fn recommended_no_proxy_makes_every_client_go_direct(
        pairs in proxy_env(),
        targets in prop::collection::vec(target_url(), 1..4),
    ) {
        let env = ProxyEnv::from_pairs(pairs.clone());
        let hosts: Vec<String> = targets.iter().filter_map(|t| t.host_str().map(str::to_string)).collect();
        let host_refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
        let value = proxy_rules::recommended_no_proxy(&env, &host_refs);
        // Exported as both spellings, as the finding's remediation says.
        let fixed = ProxyEnv::from_pairs(
            pairs.into_iter().chain([("NO_PROXY".to_string(), value.clone()), ("no_proxy".to_string(), value.clone())]),
        );
        for target in &targets {
            for client in HttpClientKind::ALL {
                let d = proxy_rules::decide_among(client, &fixed, target, &targets, &[]);
                prop_assert!(
                    d.proxy.is_none(),
                    "{:?} still proxies {} with NO_PROXY={:?}: {}", client, target, value, d.explanation
                );
            }
        }
    }

    #[test]
    fn redaction_hides_every_userinfo(
        scheme in "[a-z][a-z0-9+.-]{0,8}",
        user in "[^@]{0,10}",
        secret in "[A-Za-z0-9/?#:@]{1,12}",
        rest in "[a-z0-9.]{1,12}(:[0-9]{1,5})?(/[^@]{0,10})?",
    ) {
        let raw = format!("{scheme}://{user}:pw-secret{secret}@{rest}");
        let shown = proxy_rules::redact_proxy_url(&raw);
        prop_assert!(!shown.contains("pw-secret"), "{} -> {}", raw, shown);
        prop_assert!(shown.ends_with(&rest), "{} -> {}", raw, shown);
    }

    #[test]
    fn redaction_of_anything(raw in any::<String>()) {
        let shown = proxy_rules::redact_proxy_url(&raw);
        prop_assert!(shown.len() <= raw.len() + 3);
    }
}

// ---------------------------------------------------------------------------------------------
// AWS answers: denial texts, error codes and headers, Date headers, SDK error chains
// ---------------------------------------------------------------------------------------------

const PHRASES: &[(&str, PolicyType)] = &[
    ("identity-based policy", PolicyType::Identity),
    ("Identity based policy", PolicyType::Identity),
    ("resource-based policy", PolicyType::Resource),
    ("VPC endpoint policy", PolicyType::VpcEndpoint),
    ("VPC endpoint", PolicyType::VpcEndpoint),
    ("permissions boundary", PolicyType::PermissionsBoundary),
    (
        "permissions boundary policy",
        PolicyType::PermissionsBoundary,
    ),
    ("session policy", PolicyType::Session),
    ("service control policy", PolicyType::ServiceControl),
    ("resource control policy", PolicyType::ResourceControl),
    ("role trust policy", PolicyType::Resource),
];

#[derive(Clone, Debug)]
struct DenialSpec {
    prefix: &'static str,
    principal: String,
    action: String,
    resource: Option<(String, bool)>,
    /// (phrase, type, explicit, policy ARN)
    reason: Option<(&'static str, PolicyType, bool, Option<String>)>,
    period: bool,
}

fn denial_spec() -> impl Strategy<Value = DenialSpec> {
    let prefix = prop::sample::select(
        &[
            "",
            "An error occurred (AccessDenied) when calling the GetObject operation: ",
        ][..],
    );
    let principal = "arn:aws:sts::[0-9]{12}:assumed-role/[A-Za-z0-9+=,@_-]{1,20}/i-[0-9a-f]{8,17}";
    let action = "(s3|dynamodb|sts|kms):[A-Z][A-Za-z]{2,20}";
    let resource = prop::option::of(prop_oneof![
        "arn:aws:s3:::[a-z0-9.-]{3,20}(/[A-Za-z0-9/_-]{1,20}( [A-Za-z0-9]{1,5})?)?"
            .prop_map(|r| (r, true)),
        "arn:aws:dynamodb:[a-z]{2}-[a-z]{4,9}-[1-4]:[0-9]{12}:table/[A-Za-z0-9_-]{3,20}"
            .prop_map(|r| (r, false)),
    ]);
    let reason = prop::option::of((
        prop::sample::select(PHRASES),
        any::<bool>(),
        prop::option::of("arn:aws:iam::[0-9]{12}:policy/[A-Za-z0-9_-]{1,20}"),
    ))
    .prop_map(|r| {
        r.map(|((phrase, t), explicit, arn)| (phrase, t, explicit, arn.filter(|_| explicit)))
    });
    (prefix, principal, action, resource, reason, any::<bool>()).prop_map(
        |(prefix, principal, action, resource, reason, period)| DenialSpec {
            prefix,
            principal,
            action,
            resource,
            reason,
            period,
        },
    )
}

fn denial_text(d: &DenialSpec) -> String {
    let mut t = format!(
        "{}User: {} is not authorized to perform: {}",
        d.prefix, d.principal, d.action
    );
    if let Some((r, quoted)) = &d.resource {
        if *quoted {
            t.push_str(&format!(" on resource: \"{r}\""));
        } else {
            t.push_str(&format!(" on resource: {r}"));
        }
    }
    match &d.reason {
        Some((phrase, _, true, arn)) => {
            let article = if phrase.starts_with(['a', 'e', 'i', 'o', 'u', 'A', 'E', 'I', 'O', 'U'])
            {
                "an"
            } else {
                "a"
            };
            t.push_str(&format!(" with an explicit deny in {article} {phrase}"));
            if let Some(arn) = arn {
                t.push_str(&format!(": {arn}"));
            }
        }
        Some((phrase, _, false, _)) => {
            t.push_str(&format!(
                " because no {phrase} allows the {} action",
                d.action
            ));
        }
        None => {}
    }
    if d.period {
        t.push('.');
    }
    t
}

/// The same words wrapped over lines and spaced out, as logs and documentation show them.
fn rewrap(text: &str, gaps: &[u8]) -> String {
    let mut out = String::new();
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push_str(
                match gaps.get(i % gaps.len().max(1)).copied().unwrap_or(0) % 4 {
                    0 => " ",
                    1 => "\n",
                    2 => "  \r\n   ",
                    _ => "\t",
                },
            );
        }
        out.push_str(word);
    }
    out
}

fn error_info() -> impl Strategy<Value = (Service, ErrorInfo)> {
    let code = prop::option::of(prop_oneof![
        prop::sample::select(
            &[
                "AccessDenied",
                "AccessDeniedException",
                "NoSuchBucket",
                "ResourceNotFoundException",
                "PermanentRedirect",
                "RequestTimeTooSkewed",
                "ExpiredToken",
                "SlowDown",
                "InternalError",
                "AuthorizationHeaderMalformed",
                "IllegalLocationConstraintException",
                "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
            ][..]
        )
        .prop_map(str::to_string),
        odd_value(),
    ]);
    let message = prop::option::of(prop_oneof![
        denial_spec().prop_map(|d| denial_text(&d)),
        Just("The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'".to_string()),
        Just("expecting '".to_string()),
        odd_value(),
    ]);
    let header = prop_oneof![
        (Just("x-amz-bucket-region".to_string()), odd_value()),
        (Just("x-amzn-errortype".to_string()), odd_value()),
        (Just("date".to_string()), odd_value()),
    ];
    (
        prop::sample::select(&[Service::S3, Service::Dynamodb][..]),
        prop_oneof![
            any::<u16>(),
            prop::sample::select(&[200u16, 301, 307, 400, 403, 404, 429, 500, 503][..])
        ],
        code,
        message,
        prop::collection::vec(header, 0..3).prop_map(|h| h.into_iter().collect()),
    )
        .prop_map(|(service, status, code, message, headers)| {
            (
                service,
                ErrorInfo {
                    status,
                    code,
                    message,
                    headers,
                },
            )
        })
}

proptest! {
    #![proptest_config(budget(500))]

    #[test]
    fn denials_round_trip(spec in denial_spec(), gaps in prop::collection::vec(any::<u8>(), 1..8)) {
        let text = rewrap(&denial_text(&spec), &gaps);
        let d = classify::parse_denial(&text).expect("a denial");
        prop_assert_eq!(d.principal.as_deref(), Some(spec.principal.as_str()), "{}", text);
        prop_assert_eq!(d.action.as_deref(), Some(spec.action.as_str()), "{}", text);
        prop_assert_eq!(d.resource.as_deref(), spec.resource.as_ref().map(|(r, _)| r.as_str()), "{}", text);
        prop_assert_eq!(d.policy, spec.reason.as_ref().map(|r| r.1), "{}", text);
        prop_assert_eq!(d.explicit, spec.reason.as_ref().is_some_and(|r| r.2), "{}", text);
        prop_assert_eq!(d.policy_arn.clone(), spec.reason.as_ref().and_then(|r| r.3.clone()), "{}", text);
        // What an AccessDenied answer with this message classifies as.
        let info = ErrorInfo { status: 403, code: Some("AccessDenied".into()), message: Some(text.clone()), headers: Default::default() };
        let c = classify::classify(Service::S3, &info);
        prop_assert_eq!(classify::finding_code(&c), Some(classify::denial_code(&d)));
    }

    #[test]
    fn denial_texts_edited(spec in denial_spec(), edits in edits()) {
        let text = apply(&denial_text(&spec), &edits);
        if let Some(d) = classify::parse_denial(&text) {
            for field in [&d.principal, &d.action, &d.resource, &d.policy_arn].into_iter().flatten() {
                assert_one_line("denial field", field);
            }
        }
    }

    #[test]
    fn any_answer_classifies((service, info) in error_info()) {
        let c = classify::classify(service, &info);
        match &c {
            classify::Classified::WrongRegion { bucket_region: Some(r) } => {
                prop_assert!(!r.is_empty() && r.len() <= 64, "{:?}", r);
            }
            classify::Classified::AccessDenied(d) => {
                for field in [&d.principal, &d.action, &d.resource, &d.policy_arn].into_iter().flatten() {
                    assert_one_line("denial field", field);
                }
            }
            _ => {}
        }
        let code = classify::finding_code(&c);
        prop_assert_eq!(code.is_some(), matches!(c,
            classify::Classified::AccessDenied(_) | classify::Classified::WrongRegion { .. }
            | classify::Classified::BucketNotFound | classify::Classified::TableNotFound
            | classify::Classified::ClockSkew | classify::Classified::ExpiredCredentials));
    }

    #[test]
    // Dates from 1970-04 on: HTTP dates have no year before 1970.
    fn date_headers_round_trip(local in 10_000_000u64..4_000_000_000, offset in -10_000_000i64..10_000_000, raw in odd_value()) {
        let local = std::time::UNIX_EPOCH + Duration::from_secs(local);
        let server = if offset >= 0 {
            local + Duration::from_secs(offset as u64)
        } else {
            local - Duration::from_secs(offset.unsigned_abs())
        };
        let header = httpdate::fmt_http_date(server);
        prop_assert_eq!(classify::clock_offset_secs(&header, local), Some(offset));
        let _ = classify::clock_offset_secs(&raw, local);
    }
}

/// An error whose sources are further messages, like the SDK's chains.
#[derive(Debug)]
struct Chain(String, Option<Box<Chain>>);

impl std::fmt::Display for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Chain {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.1
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

proptest! {
    #![proptest_config(budget(300))]

    #[test]
    fn sdk_error_chains_become_one_line(messages in prop::collection::vec(prop_oneof![
        odd_value(),
        Just("dispatch failure".to_string()),
        Just("error response from IMDS (code: 500). Response { status: StatusCode(500), body: \"x\n y\" }".to_string()),
        Just("HTTP connect timeout occurred after 1s".to_string()),
        Just("Some(\n".to_string()),
    ], 0..6)) {
        let mut chain: Option<Box<Chain>> = None;
        for m in messages.iter().rev() {
            chain = Some(Box::new(Chain(m.clone(), chain)));
        }
        let out = vpce_probe::net::aws_error::messages(chain.as_deref().map(|e| e as &(dyn std::error::Error + 'static)));
        prop_assert!(out.len() <= messages.len());
        for m in &out {
            prop_assert!(!m.is_empty());
            assert_one_line("SDK message", m);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// resolv.conf, hosts and nsswitch.conf
// ---------------------------------------------------------------------------------------------

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        any::<[u16; 8]>().prop_map(|s| IpAddr::V6(Ipv6Addr::from(s))),
    ]
}

/// Files the tests write, under cargo's scratch directory for tests (emptied at each run).
fn scratch_dir() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz_parsers");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    })
}

/// A file of this test run's scratch directory, unique per call.
fn scratch_file(name: &str, contents: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = scratch_dir().join(format!("{name}-{n}"));
    std::fs::write(&path, contents).expect("write scratch file");
    path
}

/// Lines of resolv.conf(5) that are not `nameserver`: some valid, some not, some that glibc
/// ignores but a strict parser might choke on (labels over 63 characters).
fn resolv_other_line() -> impl Strategy<Value = String> {
    prop_oneof![
        "search( [a-z0-9-]{1,12}(\\.[a-z0-9-]{1,12}){0,3}){1,3}",
        "search [a-z]{64,80}\\.example",
        "search \\PC{1,20}",
        "domain [a-z0-9.-]{1,20}",
        "options( (ndots|timeout|attempts):[0-9]{1,3}| rotate| edns0| trust-ad| single-request){1,4}",
        "options ndots:x timeout:",
        "sortlist 10\\.0\\.0\\.0/255\\.0\\.0\\.0",
        "[#;] \\PC{0,30}",
        Just(String::new()),
        "[a-z]{1,10} \\PC{0,20}",
    ]
}

proptest! {
    #![proptest_config(budget(200))]

    #[test]
    fn resolv_conf_round_trip(
        lines in prop::collection::vec(prop_oneof![
            2 => ip().prop_map(Ok),
            3 => resolv_other_line().prop_map(Err),
        ], 0..10),
        indent in prop::sample::select(&["", " ", "\t"][..]),
    ) {
        let mut text = String::new();
        let mut servers = Vec::new();
        for l in &lines {
            match l {
                Ok(ip) => {
                    text.push_str(&format!("{indent}nameserver {ip}\n"));
                    servers.push(std::net::SocketAddr::new(*ip, 53));
                }
                Err(other) => {
                    text.push_str(other);
                    text.push('\n');
                }
            }
        }
        let path = scratch_file("resolv.conf", &text);
        match vpce_probe::net::dns::system_servers(&path) {
            Ok(got) => prop_assert_eq!(got, servers, "{}", text),
            Err(e) => {
                prop_assert!(servers.is_empty(), "{} servers listed, yet: {}\n{}", servers.len(), e, text);
                assert_refusal("resolv.conf", &e);
            }
        }
    }

    #[test]
    fn resolv_conf_edited(lines in prop::collection::vec(prop_oneof![
            ip().prop_map(|ip| format!("nameserver {ip}")),
            resolv_other_line(),
        ], 0..8), edits in edits()) {
        let path = scratch_file("resolv.conf", &apply(&lines.join("\n"), &edits));
        if let Err(e) = vpce_probe::net::dns::system_servers(&path) {
            assert_refusal("edited resolv.conf", &e);
        }
    }
}

#[derive(Clone, Debug)]
enum HostsLineSpec {
    Entry {
        ip: IpAddr,
        zone: Option<String>,
        names: Vec<String>,
        comment: Option<String>,
    },
    Other(String),
}

fn hosts_line() -> impl Strategy<Value = HostsLineSpec> {
    let name = "[A-Za-z0-9][A-Za-z0-9.-]{0,20}";
    prop_oneof![
        4 => (ip(), prop::option::of("[a-z]{1,5}[0-9]"), prop::collection::vec(name, 1..4), prop::option::of("\\PC{0,20}"))
            .prop_map(|(ip, zone, names, comment)| HostsLineSpec::Entry { ip, zone, names, comment }),
        1 => prop_oneof![
            "#\\PC{0,30}",
            Just(String::new()),
            "[ \t]{1,3}",
            // An address with no name, or no address: ignored, as libc does.
            ip().prop_map(|ip| ip.to_string()),
            "[a-z]{1,10}( [a-z]{1,10}){0,2}",
        ].prop_map(HostsLineSpec::Other),
    ]
}

proptest! {
    #![proptest_config(budget(300))]

    #[test]
    fn hosts_files_round_trip(
        lines in prop::collection::vec(hosts_line(), 0..12),
        gap in prop::sample::select(&[" ", "\t", "  \t "][..]),
    ) {
        let mut text = String::new();
        let mut want = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            match l {
                HostsLineSpec::Entry { ip, zone, names, comment } => {
                    let zone = match (ip, zone) {
                        (IpAddr::V6(_), Some(z)) => format!("%{z}"),
                        _ => String::new(),
                    };
                    text.push_str(&format!("{ip}{zone}{gap}{}", names.join(gap)));
                    if let Some(c) = comment {
                        text.push_str(&format!("{gap}#{c}"));
                    }
                    want.push((i + 1, *ip, names.clone()));
                }
                HostsLineSpec::Other(o) => text.push_str(o),
            }
            text.push('\n');
        }
        let got: Vec<(usize, IpAddr, Vec<String>)> = app_resolve::parse_hosts(&text)
            .into_iter()
            .map(|l| (l.line, l.ip, l.names))
            .collect();
        prop_assert_eq!(got, want, "{}", text);
    }

    #[test]
    fn hosts_files_edited(lines in prop::collection::vec(hosts_line(), 0..8), edits in edits()) {
        let text: Vec<String> = lines.iter().map(|l| match l {
            HostsLineSpec::Entry { ip, names, .. } => format!("{ip} {}", names.join(" ")),
            HostsLineSpec::Other(o) => o.clone(),
        }).collect();
        for l in app_resolve::parse_hosts(&apply(&text.join("\n"), &edits)) {
            prop_assert!(!l.names.is_empty());
            for n in &l.names {
                prop_assert!(!n.is_empty() && !n.contains(char::is_whitespace) && !n.contains('#'), "{:?}", n);
            }
            assert_one_line("hosts line", &l.text);
        }
    }
}

const NSS_STATUSES: &[(&str, NssStatus)] = &[
    ("SUCCESS", NssStatus::Success),
    ("NOTFOUND", NssStatus::NotFound),
    ("UNAVAIL", NssStatus::Unavail),
    ("TRYAGAIN", NssStatus::TryAgain),
];

#[derive(Clone, Debug)]
struct NssSpec {
    name: String,
    /// (status, negated, return?)
    actions: Vec<(usize, bool, bool)>,
}

fn nss_line() -> impl Strategy<Value = Vec<NssSpec>> {
    let source = (
        prop_oneof![
            prop::sample::select(
                &[
                    "files",
                    "dns",
                    "resolve",
                    "myhostname",
                    "mdns4_minimal",
                    "mymachines",
                    "Files"
                ][..]
            )
            .prop_map(str::to_string),
            "[a-z0-9_]{1,12}",
        ],
        prop::collection::vec((0..NSS_STATUSES.len(), any::<bool>(), any::<bool>()), 0..3),
    )
        .prop_map(|(name, actions)| NssSpec { name, actions });
    prop::collection::vec(source, 0..6)
}

fn nss_text(sources: &[NssSpec]) -> String {
    let mut t = String::new();
    for s in sources {
        t.push_str(&s.name);
        if !s.actions.is_empty() {
            let items: Vec<String> = s
                .actions
                .iter()
                .map(|(st, neg, ret)| {
                    format!(
                        "{}{}={}",
                        if *neg { "!" } else { "" },
                        NSS_STATUSES[*st].0,
                        if *ret { "return" } else { "continue" }
                    )
                })
                .collect();
            t.push_str(&format!(" [{}]", items.join(" ")));
        }
        t.push(' ');
    }
    t
}

/// What nsswitch.conf(5) says each status leads to, items applied in order.
fn nss_expected(s: &NssSpec, status: NssStatus) -> NssAction {
    let mut action = if status == NssStatus::Success {
        NssAction::Return
    } else {
        NssAction::Continue
    };
    for (st, neg, ret) in &s.actions {
        if (NSS_STATUSES[*st].1 == status) != *neg {
            action = if *ret {
                NssAction::Return
            } else {
                NssAction::Continue
            };
        }
    }
    action
}

proptest! {
    #![proptest_config(budget(150))]

    #[test]
    fn nsswitch_hosts_lines_round_trip(sources in nss_line()) {
        let line = nss_text(&sources);
        let got = app_resolve::parse_nss_hosts(&line);
        prop_assert_eq!(got.len(), sources.len(), "{}", line);
        for (g, s) in got.iter().zip(&sources) {
            prop_assert_eq!(&g.name, &s.name.to_ascii_lowercase());
            for (_, status) in NSS_STATUSES {
                prop_assert_eq!(g.action(*status), nss_expected(s, *status), "{} {:?}", line, status);
            }
        }
    }

    #[test]
    fn nsswitch_files_are_read_like_glibc(
        sources in nss_line(),
        before in prop::collection::vec(prop_oneof![
            "(passwd|group|shadow|networks|protocols):( [a-z]{1,8}){1,3}",
            "#\\PC{0,20}",
            Just(String::new()),
        ], 0..4),
        edits in prop::option::of(edits()),
        hosts in prop::collection::vec(hosts_line(), 0..4),
    ) {
        let mut text = before.join("\n");
        let line = nss_text(&sources);
        text.push_str(&format!("\nhosts:     {line}  # comment\nnetgroup: nis\n"));
        if let Some(e) = &edits {
            text = apply(&text, e);
        }
        let nss = scratch_file("nsswitch.conf", &text);
        let hosts_text: Vec<String> = hosts.iter().map(|l| match l {
            HostsLineSpec::Entry { ip, names, .. } => format!("{ip} {}", names.join(" ")),
            HostsLineSpec::Other(o) => o.clone(),
        }).collect();
        let hosts_path = scratch_file("hosts", &hosts_text.join("\n"));
        let files = runtime().block_on(app_resolve::HostFiles::load(nss.clone(), hosts_path));
        if edits.is_none() {
            let names: Vec<String> = files.sources.iter().map(|s| s.name.clone()).collect();
            let want: Vec<String> = if sources.is_empty() {
                // An empty hosts line is a line with no source.
                Vec::new()
            } else {
                sources.iter().map(|s| s.name.to_ascii_lowercase()).collect()
            };
            prop_assert_eq!(names, want, "{}", text);
            prop_assert!(files.hosts.is_ok());
        }
        for s in &files.sources {
            prop_assert!(!s.name.is_empty() && !s.name.contains(char::is_whitespace), "{:?}", s.name);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The shared AWS config files, as the probe reads them
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct ProfileSpec {
    name: String,
    fips: Option<bool>,
    endpoint_url: Option<String>,
    path_style: Option<bool>,
    region: Option<String>,
}

fn profile_spec() -> impl Strategy<Value = ProfileSpec> {
    (
        prop_oneof![Just("default".to_string()), "[a-z][a-z0-9_-]{0,10}"],
        prop::option::of(any::<bool>()),
        prop::option::of("https://[a-z]{1,8}\\.example(:[0-9]{2,4})?"),
        prop::option::of(any::<bool>()),
        prop::option::of("[a-z]{2}-[a-z]{4,9}-[1-4]"),
    )
        .prop_map(
            |(name, fips, endpoint_url, path_style, region)| ProfileSpec {
                name,
                fips,
                endpoint_url,
                path_style,
                region,
            },
        )
}

fn aws_config_text(profiles: &[ProfileSpec]) -> String {
    let mut t = String::from("# generated\n");
    for p in profiles {
        if p.name == "default" {
            t.push_str("[default]\n");
        } else {
            t.push_str(&format!("[profile {}]\n", p.name));
        }
        if let Some(r) = &p.region {
            t.push_str(&format!("region = {r}\n"));
        }
        if let Some(f) = p.fips {
            t.push_str(&format!("use_fips_endpoint = {f}\n"));
        }
        if let Some(u) = &p.endpoint_url {
            t.push_str(&format!("endpoint_url = {u}\n"));
        }
        if let Some(s) = p.path_style {
            t.push_str(&format!(
                "s3 =\n  addressing_style = {}\n",
                if s { "path" } else { "virtual" }
            ));
        }
        t.push('\n');
    }
    t
}

fn load_settings(
    config: &str,
    profile_flag: Option<&str>,
    aws_profile: Option<&str>,
) -> Result<vpce_probe::endpoints::SdkSettings, vpce_probe::endpoints::SettingsError> {
    let config_path = scratch_file("aws-config", config);
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("AWS_CONFIG_FILE".into(), config_path.display().to_string());
    vars.insert(
        "AWS_SHARED_CREDENTIALS_FILE".into(),
        scratch_dir().join("no-credentials").display().to_string(),
    );
    if let Some(p) = aws_profile {
        vars.insert("AWS_PROFILE".into(), p.to_string());
    }
    let env = aws_types::os_shim_internal::Env::from(vars);
    runtime().block_on(vpce_probe::endpoints::SdkSettings::load_from(
        profile_flag,
        &env,
    ))
}

proptest! {
    #![proptest_config(budget(200))]

    #[test]
    fn aws_config_files_round_trip(
        profiles in prop::collection::vec(profile_spec(), 1..4)
            .prop_filter("distinct profiles", |ps| {
                let mut names: Vec<&str> = ps.iter().map(|p| p.name.as_str()).collect();
                names.sort_unstable();
                names.windows(2).all(|w| w[0] != w[1])
            }),
        pick in any::<prop::sample::Index>(),
        by_flag in any::<bool>(),
    ) {
        let text = aws_config_text(&profiles);
        let chosen = pick.get(&profiles);
        let (flag, var) = if by_flag { (Some(chosen.name.as_str()), None) } else { (None, Some(chosen.name.as_str())) };
        let s = load_settings(&text, flag, var).unwrap_or_else(|e| panic!("{e}\n{text}"));
        prop_assert_eq!(&s.profile, &chosen.name);
        prop_assert_eq!(s.use_fips.map(|f| f.value), chosen.fips, "{}", text);
        prop_assert_eq!(s.endpoint_url_s3.map(|u| u.value), chosen.endpoint_url.clone(), "{}", text);
        prop_assert_eq!(s.s3_path_style.map(|p| p.value), chosen.path_style, "{}", text);
    }

    #[test]
    fn aws_config_files_edited(
        profiles in prop::collection::vec(profile_spec(), 0..3),
        edits in edits(),
        profile in prop::option::of(prop_oneof!["[a-z]{1,8}", odd_value()]),
    ) {
        let text = apply(&aws_config_text(&profiles), &edits);
        if let Err(e) = load_settings(&text, profile.as_deref(), None) {
            assert_refusal("shared config", &e.to_string());
        }
        if let Err(e) = load_settings(&text, None, profile.as_deref()) {
            assert_refusal("shared config (AWS_PROFILE)", &e.to_string());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// AWS error bodies, through the real SDK clients (a canned HTTP answer, no network)
// ---------------------------------------------------------------------------------------------

mod canned {
    use std::sync::{Arc, Mutex};

    use aws_smithy_runtime_api::client::http::{
        HttpConnector, HttpConnectorFuture, SharedHttpClient, SharedHttpConnector, http_client_fn,
    };
    use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
    use aws_smithy_types::body::SdkBody;

    /// (status, headers, body) of the next answer.
    pub type Answer = (u16, Vec<(String, String)>, Vec<u8>);

    /// Answers every request with the answer set last.
    #[derive(Clone, Debug, Default)]
    pub struct Canned(Arc<Mutex<Option<Answer>>>);

    impl Canned {
        pub fn set(&self, answer: Answer) {
            *self.0.lock().unwrap() = Some(answer);
        }

        pub fn client(&self) -> SharedHttpClient {
            let me = self.clone();
            http_client_fn(move |_, _| SharedHttpConnector::new(me.clone()))
        }
    }

    impl HttpConnector for Canned {
        fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
            let (status, headers, body) = self.0.lock().unwrap().clone().unwrap_or_default();
            let mut resp = HttpResponse::new(
                status.try_into().expect("status in 100..1000"),
                SdkBody::from(body),
            );
            for (k, v) in headers {
                let _ = resp.headers_mut().try_insert(k, v);
            }
            HttpConnectorFuture::ready(Ok(resp))
        }
    }
}

struct Clients {
    canned: canned::Canned,
    s3: aws_sdk_s3::Client,
    ddb: aws_sdk_dynamodb::Client,
    rt: tokio::runtime::Runtime,
}

fn clients() -> &'static Clients {
    static CLIENTS: std::sync::OnceLock<Clients> = std::sync::OnceLock::new();
    CLIENTS.get_or_init(|| {
        let canned = canned::Canned::default();
        let creds =
            aws_credential_types::Credentials::new("AKIDFUZZ", "fuzz-secret", None, None, "fuzz");
        let s3 = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("eu-west-1"))
            .credentials_provider(creds.clone())
            .http_client(canned.client())
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .build();
        let ddb = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("eu-west-1"))
            .credentials_provider(creds)
            .http_client(canned.client())
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .build();
        Clients {
            canned,
            s3: aws_sdk_s3::Client::from_conf(s3),
            ddb: aws_sdk_dynamodb::Client::from_conf(ddb),
            rt: runtime(),
        }
    })
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[derive(Clone, Debug)]
struct AwsAnswer {
    status: u16,
    code: String,
    message: String,
    /// The text of the denial the message was made from, if it was.
    denial: Option<String>,
    bucket_region: Option<String>,
}

fn aws_answer() -> impl Strategy<Value = AwsAnswer> {
    let code = prop_oneof![
        prop::sample::select(
            &[
                "AccessDenied",
                "AccessDeniedException",
                "NoSuchBucket",
                "ResourceNotFoundException",
                "PermanentRedirect",
                "RequestTimeTooSkewed",
                "ExpiredToken",
                "SlowDown",
                "InternalError",
                "InvalidAccessKeyId",
                "ThrottlingException",
            ][..]
        )
        .prop_map(str::to_string),
        "[A-Z][A-Za-z]{1,30}",
    ];
    let message = prop_oneof![
        denial_spec().prop_map(|d| {
            let t = denial_text(&d);
            (t.clone(), Some(t))
        }),
        "\\PC{0,300}".prop_map(|m| (m, None)),
        odd_value().prop_map(|m| (m, None)),
    ];
    (
        400u16..600,
        code,
        message,
        prop::option::of("[a-z]{2}-[a-z]{4,9}-[1-4]"),
    )
        .prop_map(
            |(status, code, (message, denial), bucket_region)| AwsAnswer {
                status,
                code,
                message,
                denial,
                bucket_region,
            },
        )
}

fn s3_body(a: &AwsAnswer) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><RequestId>R</RequestId><HostId>H</HostId></Error>",
        xml_escape(&a.code),
        xml_escape(&a.message)
    )
    .into_bytes()
}

fn ddb_body(a: &AwsAnswer) -> Vec<u8> {
    serde_json::json!({
        "__type": format!("com.amazonaws.dynamodb.v20120810#{}", a.code),
        "message": a.message,
    })
    .to_string()
    .into_bytes()
}

/// The SDK's error for this answer as the probe words it, and what classify makes of it.
fn through_sdk(
    service: Service,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> (
    vpce_probe::net::aws_error::SdkFailure,
    Option<String>,
    Option<String>,
    classify::Classified,
) {
    use aws_smithy_types::error::metadata::ProvideErrorMetadata;
    // One canned answer for every test thread: one call at a time.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let c = clients();
    c.canned.set((status, headers.clone(), body));
    let header_map = headers
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let (failure, code, message) = match service {
        Service::S3 | Service::S3express => {
            let r = c.rt.block_on(
                c.s3.list_objects_v2()
                    .bucket("fuzz-bucket")
                    .max_keys(1)
                    .send(),
            );
            let e = r.expect_err("an error status");
            let f = vpce_probe::net::aws_error::sdk_error("S3", &e);
            let (code, message) = match e.as_service_error() {
                Some(se) => (
                    se.code().map(str::to_string),
                    se.message().map(str::to_string),
                ),
                None => (None, None),
            };
            (f, code, message)
        }
        Service::Dynamodb => {
            let r =
                c.rt.block_on(c.ddb.describe_table().table_name("fuzz-table").send());
            let e = r.expect_err("an error status");
            let f = vpce_probe::net::aws_error::sdk_error("DynamoDB", &e);
            let (code, message) = match e.as_service_error() {
                Some(se) => (
                    se.code().map(str::to_string),
                    se.message().map(str::to_string),
                ),
                None => (None, None),
            };
            (f, code, message)
        }
    };
    let info = ErrorInfo {
        status,
        code: code.clone(),
        message: message.clone(),
        headers: header_map,
    };
    (failure, code, message, classify::classify(service, &info))
}

proptest! {
    #![proptest_config(budget(200))]

    #[test]
    fn aws_error_bodies_round_trip(a in aws_answer(), dynamodb in any::<bool>()) {
        // XML 1.0 has no control characters but tab and line ends: an S3 body cannot carry them.
        let mut a = a;
        if !dynamodb {
            a.message.retain(|c| matches!(c, '\t' | '\n' | '\r') || !(c.is_control() && (c as u32) < 0x20));
            a.message.retain(|c| !matches!(c, '\u{fffe}' | '\u{ffff}'));
        }
        let (service, body, name) = if dynamodb {
            (Service::Dynamodb, ddb_body(&a), "DynamoDB")
        } else {
            (Service::S3, s3_body(&a), "S3")
        };
        let mut headers = vec![("x-amz-request-id".to_string(), "R".to_string())];
        if let Some(r) = &a.bucket_region {
            headers.push(("x-amz-bucket-region".into(), r.clone()));
        }
        let (failure, code, message, classified) = through_sdk(service, a.status, headers, body);
        prop_assert_eq!(code.as_deref(), Some(a.code.as_str()));
        // XML's whitespace may come back normalised; the words come back as sent.
        let words = |m: &str| m.split_whitespace().collect::<Vec<_>>().join(" ");
        prop_assert_eq!(words(message.as_deref().unwrap_or("")), words(&a.message));
        assert_refusal("SDK error", &failure.text);
        prop_assert!(failure.text.chars().count() <= vpce_probe::net::aws_error::MAX_CHARS);
        let lead = format!("{name} answered HTTP {} {}", a.status, a.code);
        prop_assert!(failure.text.starts_with(&lead), "{} / {}", failure.text, lead);
        if let Some(text) = &a.denial
            && matches!(a.code.as_str(), "AccessDenied" | "AccessDeniedException")
        {
            let d = classify::parse_denial(text).expect("a denial");
            prop_assert_eq!(classify::finding_code(&classified), Some(classify::denial_code(&d)));
        }
    }

    #[test]
    fn aws_error_bodies_edited(
        a in aws_answer(),
        dynamodb in any::<bool>(),
        edits in edits(),
        status in prop_oneof![300u16..600, 100u16..1000],
        headers in prop::collection::vec((
            prop::sample::select(&["x-amz-bucket-region", "x-amzn-errortype", "content-type", "date", "content-length"][..]),
            odd_value(),
        ), 0..3),
    ) {
        let service = if dynamodb { Service::Dynamodb } else { Service::S3 };
        let body = apply(&String::from_utf8(if dynamodb { ddb_body(&a) } else { s3_body(&a) }).unwrap(), &edits);
        let headers = headers.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        if (200..300).contains(&status) {
            // A success status is not an error for the SDK: nothing of ours to check.
            return Ok(());
        }
        let (failure, _, _, _) = through_sdk(service, status, headers, body.into_bytes());
        assert_refusal("SDK error", &failure.text);
        prop_assert!(failure.text.chars().count() <= vpce_probe::net::aws_error::MAX_CHARS);
    }
}

// ---------------------------------------------------------------------------------------------
// Regressions: refusals that quoted outside values raw (newlines, escape sequences, megabytes)
// and a resolv.conf whose servers were lost for one search domain
// ---------------------------------------------------------------------------------------------

#[test]
fn regression_item_key_refusals_escape_the_value() {
    for raw in [
        "{\"pk\":{\"N\":\"1\\n2\"}}",
        "{\"p\\u001b[2Jk\":{\"X\":\"a\"}}",
        "{\"pk\":{\"\\u001b]0;x\":\"a\"}}",
        "not json\n\u{1b}[31m",
        &format!("{{\"pk\":{{\"N\":\"{}\"}}}}", "9x".repeat(3000)),
    ] {
        let e = parse_item_key(raw).expect_err(raw);
        assert_refusal("item key", &e);
    }
}

#[test]
fn regression_ip_ranges_refusals_escape_the_file_values() {
    let text = ranges_json(
        "2026-01-01",
        &[RangeEntry {
            prefix: "10.0.0.0/8\n\u{1b}[2J".into(),
            region: "eu-west-1".into(),
            service: "S3".into(),
        }],
        &[],
    );
    assert_refusal(
        "ip-ranges prefix",
        &IpRanges::parse(&text, "f.json")
            .expect_err("bad prefix")
            .to_string(),
    );
    let text = ranges_json(
        "2026-01-01",
        &[RangeEntry {
            prefix: "10.0.0.0/8".into(),
            region: "eu-west-1\u{1b}".into(),
            service: "S3".into(),
        }],
        &[],
    );
    let ranges = IpRanges::parse(&text, "f.json").expect("valid");
    let e = validate_region("eu-west-1", &ranges).expect_err("not a region of the file");
    assert!(
        e.to_string().contains("did you mean eu-west-1\\x1b?"),
        "{e}"
    );
    assert_refusal("region suggestion", &e.to_string());
}

#[test]
fn regression_duration_refusals_cut_the_value() {
    let raw = format!("1{}", "x".repeat(5000));
    let e = durations::parse("interval", &raw, durations::MAX_WAIT).expect_err("unknown unit");
    assert_refusal("duration", &e);
}

#[test]
fn regression_resolv_conf_servers_survive_a_bad_search_domain() {
    let path = scratch_file(
        "resolv.conf",
        &format!(
            "search {}.example corp.example\nnameserver 10.0.0.2\noptions ndots:2\n",
            "a".repeat(70)
        ),
    );
    let servers = vpce_probe::net::dns::system_servers(&path).expect("servers");
    assert_eq!(servers, vec!["10.0.0.2:53".parse().unwrap()]);
}

#[test]
fn regression_unknown_profiles_are_escaped() {
    let config = "[profile prod]\nregion = eu-west-1\n";
    let e = load_settings(config, Some("pr\u{1b}[31mod\nx"), None).expect_err("unknown profile");
    assert!(e.to_string().contains("prod"), "{e}");
    assert_refusal("unknown profile", &e.to_string());
}

#[test]
fn regression_a_password_in_the_wrong_key_is_hidden() {
    for text in [
        "[probe]\nbuckets = \"https://u:pw-secret@host:1/x\"\n",
        "interval = \"https://u:pw-secret@host:1/x\"\n[probe]\nbuckets = [\"b-x\"]\n",
    ] {
        let e = agent_config::parse(text, Environment::default()).expect_err(text);
        assert!(e.contains("https://***@host:1/x"), "{e}");
        assert!(!shows_password(&e), "{e}");
    }
}

#[test]
fn regression_sdk_errors_escape_what_the_answer_says() {
    let a = AwsAnswer {
        status: 400,
        code: "AccessDenied".into(),
        message: "\u{9b}31m red".into(),
        denial: None,
        bucket_region: None,
    };
    let (failure, _, _, _) = through_sdk(Service::S3, 400, Vec::new(), s3_body(&a));
    assert_eq!(
        failure.text,
        "S3 answered HTTP 400 AccessDenied: \\u{9b}31m red"
    );
    // An edited body whose code the SDK reads across a line end.
    let body = b"<Error><Code>Bad\nCode\x1b</Code><Message>m</Message></Error>".to_vec();
    let (failure, _, _, _) = through_sdk(Service::S3, 400, Vec::new(), body);
    assert_refusal("SDK error", &failure.text);
}

#[test]
fn regression_recommended_no_proxy_covers_names_with_a_trailing_dot() {
    let env = ProxyEnv::from_pairs([("HTTPS_PROXY", "http://proxy:3128")]);
    let target = url::Url::parse("https://s3.eu-west-1.amazonaws.com./").unwrap();
    let host = target.host_str().unwrap().to_string();
    let value = proxy_rules::recommended_no_proxy(&env, &[&host]);
    let fixed = ProxyEnv::from_pairs([
        ("HTTPS_PROXY", "http://proxy:3128"),
        ("NO_PROXY", value.as_str()),
        ("no_proxy", value.as_str()),
    ]);
    for client in HttpClientKind::ALL {
        let d = proxy_rules::decide(client, &fixed, &target);
        assert!(
            d.proxy.is_none(),
            "{client:?} with NO_PROXY={value}: {}",
            d.explanation
        );
    }
}
