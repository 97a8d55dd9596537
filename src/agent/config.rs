//! The agent's configuration file (TOML). Unknown keys are refused with their name and line; the
//! `[probe]` section goes through exactly the validation of `vpce-probe probe`, so the daemon and
//! the one-shot probe can never disagree about what a setting means.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::cli::{ExpectPath, FailOn, Format, ProbeArgs};
// Where reports go is a setting of both `probe --ship` and this file: it lives in config.
use crate::config::{Config, Environment};
pub use crate::config::{Shipping, Sink};
use crate::durations::{self, MAX_DEADLINE, MAX_RETENTION, MAX_TIMEOUT, MAX_WAIT};
use crate::escape::{shown, shown_path};
use crate::proxy_rules::redact_proxy_url;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    /// Time between probes, e.g. "60s", "5m".
    interval: Option<String>,
    /// Up to this much random delay added to each interval, so a fleet does not probe in step.
    jitter: Option<String>,
    probe: ProbeSection,
    metrics: Option<MetricsSection>,
    spool: Option<SpoolSection>,
    shipping: Option<ShippingSection>,
    #[serde(default)]
    sink: Vec<SinkSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShippingSection {
    retry_initial: Option<String>,
    retry_max: Option<String>,
    timeout: Option<String>,
    unhealthy_after: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProbeSection {
    #[serde(default)]
    buckets: Vec<String>,
    #[serde(default)]
    tables: Vec<String>,
    key: Option<String>,
    item_key: Option<String>,
    region: Option<String>,
    profile: Option<String>,
    timeout: Option<String>,
    deadline: Option<String>,
    ip_ranges: Option<PathBuf>,
    internet_canary: Option<String>,
    expect_path: Option<String>,
    vpc_resolver: Option<String>,
    resolv_conf: Option<PathBuf>,
    hosts_file: Option<PathBuf>,
    nsswitch_conf: Option<PathBuf>,
    #[serde(default)]
    expect_issuers: Vec<String>,
    #[serde(default)]
    write_test: bool,
    #[serde(default)]
    control_plane: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsSection {
    listen: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpoolSection {
    dir: Option<PathBuf>,
    max_bytes: Option<u64>,
    max_age: Option<String>,
    dead_letter_max_bytes: Option<u64>,
    dead_letter_max_age: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, tag = "type", rename_all = "lowercase")]
enum SinkSection {
    Http {
        name: Option<String>,
        url: String,
        bearer_token_file: Option<PathBuf>,
        ca_file: Option<PathBuf>,
        #[serde(default = "default_true")]
        gzip: bool,
    },
    S3 {
        name: Option<String>,
        url: String,
    },
    Dir {
        name: Option<String>,
        path: PathBuf,
    },
}

fn default_true() -> bool {
    true
}

/// A validated agent configuration.
#[derive(Debug)]
pub struct AgentConfig {
    pub interval: Duration,
    pub jitter: Duration,
    pub probe: Config,
    pub metrics_listen: Option<SocketAddr>,
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
    pub spool_max_age: Duration,
    /// Bounds of `<spool dir>/dead-letter/`.
    pub dead_letter_max_bytes: u64,
    pub dead_letter_max_age: Duration,
    pub shipping: Shipping,
    /// `/healthz` answers 503 once a sink has been failing for longer than this.
    pub unhealthy_after: Duration,
    pub sinks: Vec<Sink>,
}

/// `[shipping] unhealthy_after` when the file does not say.
pub const DEFAULT_UNHEALTHY_AFTER: Duration = Duration::from_secs(30 * 60);

pub const DEFAULT_METRICS: &str = "127.0.0.1:9731";
pub const DEFAULT_SPOOL_DIR: &str = "/var/lib/vpce-probe/spool";

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct AgentConfigError {
    pub path: String,
    pub message: String,
}

/// Read, parse and [`check_machine`]: what `check-config` runs, and what the agent runs at start
/// and at every reload, so that the two never disagree about a file.
pub fn load(path: &Path, env: Environment) -> Result<AgentConfig, AgentConfigError> {
    let err = |message: String| AgentConfigError {
        path: shown_path(path),
        message,
    };
    let text = crate::fsread::read_string(path, crate::fsread::MAX_SMALL).map_err(&err)?;
    let config = parse(&text, env).map_err(&err)?;
    check_machine(&config).map_err(err)?;
    Ok(config)
}

/// What the agent's start needs of the machine beyond the file's own rules: a spool directory
/// it can create, directory sinks that are directories, token and CA files it can use, and the
/// sinks' clients built exactly as the start builds them.
pub fn check_machine(config: &AgentConfig) -> Result<(), String> {
    if !config.sinks.is_empty() {
        // The spool is created at start (create_dir_all): the nearest existing ancestor must be
        // a directory, and the spool itself one if it exists.
        let dir = &config.spool_dir;
        if let Some(existing) = dir.ancestors().find(|a| a.exists())
            && !existing.is_dir()
        {
            return Err(format!(
                "spool.dir = \"{}\": {} is not a directory",
                shown_path(dir),
                shown_path(existing)
            ));
        }
    }
    let probe = std::sync::Arc::new(config.probe.clone());
    for sink in &config.sinks {
        let fail = |e: String| format!("sink \"{}\": {e}", sink.name());
        match sink {
            Sink::Dir { path, .. } if !path.is_dir() => {
                return Err(fail(format!(
                    "path = \"{}\" is not a directory",
                    shown_path(path)
                )));
            }
            Sink::Http {
                bearer_token_file,
                ca_file,
                ..
            } => {
                if let Some(f) = bearer_token_file {
                    crate::fsread::read(f, crate::fsread::MAX_SMALL)
                        .map_err(|e| fail(format!("bearer_token_file: {e}")))?;
                }
                if let Some(f) = ca_file {
                    crate::net::tls::pem_bundle(f).map_err(|e| fail(format!("ca_file: {e}")))?;
                }
            }
            _ => {}
        }
        super::sinks::Sender::new(sink, probe.clone(), &config.shipping)?;
    }
    Ok(())
}

/// Parse and validate; the error is one line a person can act on.
pub fn parse(text: &str, env: Environment) -> Result<AgentConfig, String> {
    let file: FileConfig = toml::from_str(text).map_err(|e| one_line(&e, text))?;
    // Every duration through durations::parse, with its maximum (MAX_WAIT: 7 days).
    let duration = |field: &str,
                    raw: &Option<String>,
                    default: Duration,
                    max: Duration|
     -> Result<Duration, String> {
        match raw {
            None => Ok(default),
            Some(s) => durations::parse(field, s, max),
        }
    };
    let interval = duration(
        "interval",
        &file.interval,
        Duration::from_secs(60),
        MAX_WAIT,
    )?;
    if interval < Duration::from_secs(1) {
        return Err(format!(
            "interval = \"{}\": probe at most every second",
            shown(&file.interval.unwrap_or_default())
        ));
    }
    let jitter = duration("jitter", &file.jitter, interval / 10, MAX_WAIT)?;
    if jitter >= interval {
        return Err("jitter must be shorter than interval".into());
    }
    let p = file.probe;
    let seconds = |field: &str, raw: &Option<String>, max| -> Result<Option<f64>, String> {
        raw.as_ref()
            .map(|s| durations::parse(&format!("probe.{field}"), s, max).map(|d| d.as_secs_f64()))
            .transpose()
    };
    let choice =
        |field: &str, raw: &Option<String>, allowed: &[&str]| -> Result<Option<String>, String> {
            match raw {
                Some(v) if !allowed.contains(&v.as_str()) => Err(format!(
                    "probe.{field} = \"{}\": expected one of {}",
                    shown(v),
                    allowed.join(", ")
                )),
                other => Ok(other.clone()),
            }
        };
    let expect_path = match choice(
        "expect_path",
        &p.expect_path,
        &["gateway", "interface", "any"],
    )?
    .as_deref()
    {
        Some("interface") => ExpectPath::Interface,
        Some("any") => ExpectPath::Any,
        _ => ExpectPath::Gateway,
    };
    let args = ProbeArgs {
        buckets: p.buckets,
        tables: p.tables,
        key: p.key,
        item_key: p.item_key,
        write_test: p.write_test,
        no_calls: false,
        no_control_plane: p.control_plane == Some(false),
        reachability_analyzer: false,
        region: p.region,
        profile: p.profile,
        format: Format::Json,
        output: None,
        ship: Vec::new(),
        ship_token_file: None,
        ship_ca_file: None,
        timeout: seconds("timeout", &p.timeout, MAX_TIMEOUT)?.unwrap_or(3.0),
        deadline: seconds("deadline", &p.deadline, MAX_DEADLINE)?,
        ip_ranges: p.ip_ranges,
        internet_canary: p
            .internet_canary
            .unwrap_or_else(|| "checkip.amazonaws.com:443".into()),
        expect_path,
        vpc_resolver: p.vpc_resolver.unwrap_or_else(|| "169.254.169.253".into()),
        resolv_conf: p.resolv_conf.unwrap_or_else(|| "/etc/resolv.conf".into()),
        hosts_file: p.hosts_file.unwrap_or_else(|| "/etc/hosts".into()),
        nsswitch_conf: p
            .nsswitch_conf
            .unwrap_or_else(|| "/etc/nsswitch.conf".into()),
        expect_issuers: p.expect_issuers,
        fail_on: FailOn::Error,
        no_progress: true,
    };
    // The same validation as `vpce-probe probe`, with the messages prefixed by the section.
    let probe = Config::from_args(args, env).map_err(|e| format!("[probe] {e}"))?;
    if probe.deadline >= interval {
        return Err(format!(
            "probe.deadline ({} s) must be shorter than interval ({} s): runs must never overlap",
            probe.deadline.as_secs_f64(),
            interval.as_secs_f64()
        ));
    }
    let metrics_listen = match file.metrics.and_then(|m| m.listen) {
        Some(s) if s == "none" => None,
        Some(s) => Some(s.parse::<SocketAddr>().map_err(|_| {
            format!("metrics.listen = \"{}\": expected IP:PORT (e.g. \"{DEFAULT_METRICS}\") or \"none\"", shown(&s))
        })?),
        None => DEFAULT_METRICS.parse().ok(),
    };
    let spool = file.spool;
    let spool_dir = spool
        .as_ref()
        .and_then(|s| s.dir.clone())
        .unwrap_or_else(|| DEFAULT_SPOOL_DIR.into());
    let spool_max_bytes = spool
        .as_ref()
        .and_then(|s| s.max_bytes)
        .unwrap_or(64 * 1024 * 1024);
    let spool_max_age = duration(
        "spool.max_age",
        &spool.as_ref().and_then(|s| s.max_age.clone()),
        Duration::from_secs(7 * 24 * 3600),
        MAX_RETENTION,
    )?;
    let dead_letter_max_bytes = spool
        .as_ref()
        .and_then(|s| s.dead_letter_max_bytes)
        .unwrap_or(super::spool::DEFAULT_DEAD_LETTER_MAX_BYTES);
    let dead_letter_max_age = duration(
        "spool.dead_letter_max_age",
        &spool.as_ref().and_then(|s| s.dead_letter_max_age.clone()),
        super::spool::DEFAULT_DEAD_LETTER_MAX_AGE,
        MAX_RETENTION,
    )?;
    let defaults = Shipping::default();
    let shipping = file.shipping.as_ref();
    let shipping = Shipping {
        retry_initial: duration(
            "shipping.retry_initial",
            &shipping.and_then(|s| s.retry_initial.clone()),
            defaults.retry_initial,
            MAX_WAIT,
        )?,
        retry_max: duration(
            "shipping.retry_max",
            &shipping.and_then(|s| s.retry_max.clone()),
            defaults.retry_max,
            MAX_WAIT,
        )?,
        timeout: duration(
            "shipping.timeout",
            &shipping.and_then(|s| s.timeout.clone()),
            defaults.timeout,
            MAX_WAIT,
        )?,
    };
    if shipping.retry_initial.is_zero() || shipping.retry_initial > shipping.retry_max {
        return Err("shipping.retry_initial must be above zero and at most retry_max".into());
    }
    if shipping.timeout.is_zero() {
        return Err("shipping.timeout must be above zero".into());
    }
    let unhealthy_after = duration(
        "shipping.unhealthy_after",
        &file
            .shipping
            .as_ref()
            .and_then(|s| s.unhealthy_after.clone()),
        DEFAULT_UNHEALTHY_AFTER,
        MAX_WAIT,
    )?;
    if unhealthy_after.is_zero() {
        return Err("shipping.unhealthy_after must be above zero".into());
    }
    let mut sinks = Vec::new();
    for (i, s) in file.sink.into_iter().enumerate() {
        let default_name = |kind: &str| format!("{kind}-{}", i + 1);
        let sink = match s {
            SinkSection::Http {
                name,
                url,
                bearer_token_file,
                ca_file,
                gzip,
            } => {
                let parsed = url::Url::parse(&url)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                    .ok_or_else(|| {
                        format!(
                            "sink {}: url = \"{}\" is not an http(s) URL",
                            i + 1,
                            shown(&redact_proxy_url(&url))
                        )
                    })?;
                Sink::Http {
                    name: name.unwrap_or_else(|| default_name("http")),
                    url: parsed,
                    bearer_token_file,
                    ca_file,
                    gzip,
                }
            }
            SinkSection::S3 { name, url } => {
                let (bucket, prefix) = crate::config::parse_s3_url(&url)
                    .map_err(|e| format!("sink {}: {e}", i + 1))?;
                Sink::S3 {
                    name: name.unwrap_or_else(|| default_name("s3")),
                    bucket,
                    prefix,
                }
            }
            SinkSection::Dir { name, path } => Sink::Dir {
                name: name.unwrap_or_else(|| default_name("dir")),
                path,
            },
        };
        // The spool's rule (names are parts of its file names), checked here so that
        // check-config refuses what the start would.
        if super::spool::validate_sink_name(sink.name()).is_err() {
            return Err(format!(
                "sink {}: name = \"{}\": use 1 to {} characters among A-Z, a-z, 0-9, '-' and '_'",
                i + 1,
                shown(sink.name()),
                super::spool::MAX_SINK_NAME_LEN
            ));
        }
        if sinks.iter().any(|s: &Sink| s.name() == sink.name()) {
            return Err(format!(
                "sink {}: the name \"{}\" is used twice",
                i + 1,
                sink.name()
            ));
        }
        sinks.push(sink);
    }
    Ok(AgentConfig {
        interval,
        jitter,
        probe,
        metrics_listen,
        spool_dir,
        spool_max_bytes,
        spool_max_age,
        dead_letter_max_bytes,
        dead_letter_max_age,
        shipping,
        unhealthy_after,
        sinks,
    })
}

/// toml's messages span several lines (with a source excerpt); keep the line number and the reason.
fn one_line(e: &toml::de::Error, text: &str) -> String {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    let reason = crate::escape::line(&e.message().replace('\n', " "));
    match line {
        Some(l) => format!("line {l}: {reason}"),
        None => reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
interval = "60s"
jitter = "5s"

[probe]
buckets = ["mybucket"]
tables = ["orders"]
timeout = "2s"
deadline = "20s"
expect_path = "gateway"

[metrics]
listen = "127.0.0.1:9731"

[spool]
dir = "/var/lib/vpce-probe/spool"
max_bytes = 1048576
max_age = "2d"

[[sink]]
type = "dir"
path = "/var/lib/vpce-probe/reports"

[[sink]]
type = "s3"
url = "s3://reports-bucket/vpce-probe/"
"#;

    #[test]
    fn a_good_file() {
        let c = parse(GOOD, Environment::default()).expect("valid");
        assert_eq!(c.interval, Duration::from_secs(60));
        assert_eq!(c.jitter, Duration::from_secs(5));
        assert_eq!(c.probe.buckets, vec!["mybucket"]);
        assert_eq!(c.probe.timeout, Duration::from_secs(2));
        assert_eq!(c.spool_max_bytes, 1_048_576);
        assert_eq!(c.spool_max_age, Duration::from_secs(2 * 86400));
        assert_eq!(c.unhealthy_after, DEFAULT_UNHEALTHY_AFTER);
        assert_eq!(c.dead_letter_max_bytes, 16 * 1024 * 1024);
        assert_eq!(c.dead_letter_max_age, Duration::from_secs(30 * 86400));
        assert_eq!(c.sinks.len(), 2);
        assert_eq!(c.sinks[0].name(), "dir-1");
        assert_eq!(
            c.sinks[1],
            Sink::S3 {
                name: "s3-2".into(),
                bucket: "reports-bucket".into(),
                prefix: "vpce-probe/".into()
            }
        );
    }

    #[test]
    fn dead_letter_bounds_are_read_and_checked() {
        let text = GOOD.replace(
            "max_age = \"2d\"",
            "max_age = \"2d\"\ndead_letter_max_bytes = 4096\ndead_letter_max_age = \"12h\"",
        );
        let c = parse(&text, Environment::default()).expect("valid");
        assert_eq!(c.dead_letter_max_bytes, 4096);
        assert_eq!(c.dead_letter_max_age, Duration::from_secs(12 * 3600));
        let text = GOOD.replace("max_age = \"2d\"", "dead_letter_max_age = \"2000d\"");
        let e = parse(&text, Environment::default()).expect_err("over a year");
        assert!(e.contains("spool.dead_letter_max_age"), "{e}");
        let text = GOOD.replace("max_age = \"2d\"", "dead_letter_max_bytes = -1");
        let e = parse(&text, Environment::default()).expect_err("negative");
        // toml names the line (the key's own), and what it expected.
        assert!(e.starts_with("line ") && e.contains("expected u64"), "{e}");
    }

    #[test]
    fn unhealthy_after_is_a_bounded_duration_above_zero() {
        let with = |v: &str| {
            parse(
                &GOOD.replacen(
                    "[spool]",
                    &format!("[shipping]\nunhealthy_after = \"{v}\"\n[spool]"),
                    1,
                ),
                Environment::default(),
            )
        };
        assert_eq!(
            with("2s").expect("2s").unhealthy_after,
            Duration::from_secs(2)
        );
        assert!(with("0s").expect_err("zero").contains("unhealthy_after"));
        assert!(
            with("8d")
                .expect_err("too long")
                .contains("shipping.unhealthy_after")
        );
    }

    #[test]
    fn bad_files_say_what_and_where() {
        let cases: Vec<(String, &str)> = vec![
            (GOOD.replace("jitter = \"5s\"", "jiter = \"5s\""), "line 3"),
            (GOOD.replace("jitter = \"5s\"", "jiter = \"5s\""), "jiter"),
            (
                GOOD.replace("tables = [\"orders\"]", "tabels = [\"orders\"]"),
                "tabels",
            ),
            (
                GOOD.replace("buckets = [\"mybucket\"]", "buckets = [\"My_Bucket\"]"),
                "[probe] --bucket 'My_Bucket'",
            ),
            (
                GOOD.replace("interval = \"60s\"", "interval = \"sixty\""),
                "interval = \"sixty\"",
            ),
            (
                GOOD.replace("interval = \"60s\"", "interval = \"10s\""),
                "must be shorter than interval",
            ),
            (
                GOOD.replace(
                    "[metrics]",
                    "[shipping]\nretry_initial = \"10m\"\n[metrics]",
                ),
                "retry_initial must be",
            ),
            (
                GOOD.replace("interval = \"60s\"", "interval = \"500ms\""),
                "at most every second",
            ),
            (
                GOOD.replace("interval = \"60s\"", "interval = \"10s\""),
                "must be shorter than interval",
            ),
            (
                GOOD.replace("expect_path = \"gateway\"", "expect_path = \"nat\""),
                "expected one of gateway",
            ),
            (
                GOOD.replace("127.0.0.1:9731", "localhost"),
                "metrics.listen",
            ),
            (
                GOOD.replace("s3://reports-bucket", "http://reports-bucket"),
                "expected s3://",
            ),
            (GOOD.replace("type = \"dir\"", "type = \"ftp\""), "ftp"),
            ("[probe".to_string(), "line 1"),
        ];
        for (text, want) in cases {
            let e = parse(&text, Environment::default()).expect_err(want);
            assert!(e.contains(want), "{want}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }
}
