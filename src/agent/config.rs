//! The agent's configuration file (TOML). Unknown keys are refused with their name and line; the
//! `[probe]` section goes through exactly the validation of `vpce-probe probe`, so the daemon and
//! the one-shot probe can never disagree about what a setting means.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::cli::{OutputArgs, ProbeArgs};
// Where reports go is a setting of both `probe --ship` and this file: it lives in config.
use crate::config::{Config, Environment};
pub use crate::config::{Shipping, Sink};
use crate::durations::{self, MAX_RETENTION, MAX_WAIT};
use crate::escape::{shown, shown_path};
use crate::proxy_rules::redact_proxy_url;
use crate::settings::ProbeSettings;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    /// Time between probes, e.g. "60s", "5m".
    interval: Option<String>,
    /// Up to this much random delay added to each interval, so a fleet does not probe in step.
    jitter: Option<String>,
    /// The settings of `vpce-probe probe`, by the same definition (settings.rs).
    probe: ProbeSettings,
    metrics: Option<MetricsSection>,
    spool: Option<SpoolSection>,
    shipping: Option<ShippingSection>,
    #[serde(default)]
    sink: Vec<SinkSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShippingSection {
    retry_initial: Option<String>,
    retry_max: Option<String>,
    timeout: Option<String>,
    unhealthy_after: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsSection {
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
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

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
pub const DEFAULT_METRICS: &str = "127.0.0.1:9731";
pub const DEFAULT_SPOOL_DIR: &str = "/var/lib/vpce-probe/spool";
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 64 * 1024 * 1024;
pub const DEFAULT_SPOOL_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

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
        super::sinks::Sender::new(sink, probe.clone(), &config.shipping)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Parse and validate; the error is one line a person can act on.
pub fn parse(text: &str, env: Environment) -> Result<AgentConfig, String> {
    let file: FileConfig = toml::from_str(text).map_err(|e| one_line(&e, text))?;
    let (interval, jitter) = schedule(&file.interval, &file.jitter)?;
    let args = ProbeArgs {
        settings: file.probe,
        output: OutputArgs::agent(),
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
    let metrics_listen = metrics_listen(file.metrics)?;
    let spool = file.spool.unwrap_or_default();
    let spool_max_age = duration(
        "spool.max_age",
        &spool.max_age,
        DEFAULT_SPOOL_MAX_AGE,
        MAX_RETENTION,
    )?;
    let dead_letter_max_age = duration(
        "spool.dead_letter_max_age",
        &spool.dead_letter_max_age,
        super::spool::DEFAULT_DEAD_LETTER_MAX_AGE,
        MAX_RETENTION,
    )?;
    let (shipping, unhealthy_after) = shipping(file.shipping.unwrap_or_default())?;
    Ok(AgentConfig {
        interval,
        jitter,
        probe,
        metrics_listen,
        spool_dir: spool.dir.unwrap_or_else(|| DEFAULT_SPOOL_DIR.into()),
        spool_max_bytes: spool.max_bytes.unwrap_or(DEFAULT_SPOOL_MAX_BYTES),
        spool_max_age,
        dead_letter_max_bytes: spool
            .dead_letter_max_bytes
            .unwrap_or(super::spool::DEFAULT_DEAD_LETTER_MAX_BYTES),
        dead_letter_max_age,
        shipping,
        unhealthy_after,
        sinks: sinks(file.sink)?,
    })
}

/// A duration of the file (`durations::parse`, with its maximum), or its default.
fn duration(
    key: &str,
    raw: &Option<String>,
    default: Duration,
    max: Duration,
) -> Result<Duration, String> {
    match raw {
        None => Ok(default),
        Some(s) => durations::parse(key, s, max),
    }
}

/// `interval` (at least a second) and `jitter` (shorter than the interval).
fn schedule(
    interval: &Option<String>,
    jitter: &Option<String>,
) -> Result<(Duration, Duration), String> {
    let interval_value = duration("interval", interval, DEFAULT_INTERVAL, MAX_WAIT)?;
    if interval_value < Duration::from_secs(1) {
        return Err(format!(
            "interval = \"{}\": probe at most every second",
            shown(interval.as_deref().unwrap_or_default())
        ));
    }
    let jitter = duration("jitter", jitter, interval_value / 10, MAX_WAIT)?;
    if jitter >= interval_value {
        return Err("jitter must be shorter than interval".into());
    }
    Ok((interval_value, jitter))
}

/// `[metrics] listen`: an address, or "none" for no listener.
fn metrics_listen(metrics: Option<MetricsSection>) -> Result<Option<SocketAddr>, String> {
    match metrics.and_then(|m| m.listen) {
        Some(s) if s == "none" => Ok(None),
        Some(s) => s.parse::<SocketAddr>().map(Some).map_err(|_| {
            format!(
                "metrics.listen = \"{}\": expected IP:PORT (e.g. \"{DEFAULT_METRICS}\") or \"none\"",
                shown(&s)
            )
        }),
        None => Ok(DEFAULT_METRICS.parse().ok()),
    }
}

/// `[shipping]`: the sinks' backoff and timeout, and when a failing sink makes /healthz fail.
fn shipping(section: ShippingSection) -> Result<(Shipping, Duration), String> {
    let defaults = Shipping::default();
    let shipping = Shipping {
        retry_initial: duration(
            "shipping.retry_initial",
            &section.retry_initial,
            defaults.retry_initial,
            MAX_WAIT,
        )?,
        retry_max: duration(
            "shipping.retry_max",
            &section.retry_max,
            defaults.retry_max,
            MAX_WAIT,
        )?,
        timeout: duration(
            "shipping.timeout",
            &section.timeout,
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
        &section.unhealthy_after,
        DEFAULT_UNHEALTHY_AFTER,
        MAX_WAIT,
    )?;
    if unhealthy_after.is_zero() {
        return Err("shipping.unhealthy_after must be above zero".into());
    }
    Ok((shipping, unhealthy_after))
}

/// The `[[sink]]` tables, named after their position unless named, each name once.
fn sinks(sections: Vec<SinkSection>) -> Result<Vec<Sink>, String> {
    let mut sinks: Vec<Sink> = Vec::new();
    for (i, section) in sections.into_iter().enumerate() {
        let position = i + 1;
        let sink = sink(section, position)?;
        // The spool's rule (names are parts of its file names), checked here so that
        // check-config refuses what the start would.
        if super::spool::validate_sink_name(sink.name()).is_err() {
            return Err(format!(
                "sink {position}: name = \"{}\": use 1 to {} characters among A-Z, a-z, 0-9, '-' and '_'",
                shown(sink.name()),
                super::spool::MAX_SINK_NAME_LEN
            ));
        }
        if sinks.iter().any(|s| s.name() == sink.name()) {
            return Err(format!(
                "sink {position}: the name \"{}\" is used twice",
                sink.name()
            ));
        }
        sinks.push(sink);
    }
    Ok(sinks)
}

/// One `[[sink]]` table, the `position`-th of the file.
fn sink(section: SinkSection, position: usize) -> Result<Sink, String> {
    let default_name = |kind: &str| format!("{kind}-{position}");
    Ok(match section {
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
                        "sink {position}: url = \"{}\" is not an http(s) URL",
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
            let (bucket, prefix) =
                crate::config::parse_s3_url(&url).map_err(|e| format!("sink {position}: {e}"))?;
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
    })
}

/// toml's messages span several lines (with a source excerpt); keep the line number and the reason.
fn one_line(e: &toml::de::Error, text: &str) -> String {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    // toml quotes the value it refused, which may be a URL with a password: line() hides it.
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

    /// packaging/config.toml shows every setting as a commented example, with its default
    /// unless it says there is none: each example, uncommented into a minimal file, must give
    /// exactly the configuration of the file without it.
    #[test]
    fn the_packaged_file_shows_the_defaults() {
        const PACKAGED: &str = include_str!("../../packaging/config.toml");
        // Shown with an example value: what to probe, and what has no default.
        const NO_DEFAULT: &[&str] = &[
            "buckets",
            "tables",
            "key",
            "item_key",
            "region",
            "profile",
            "ip_ranges",
        ];
        const BASELINE_TARGETS: &str =
            "buckets = [\"baseline-bucket\"]\ntables = [\"baseline-table\"]\n";
        let file = |section: &str, line: &str| {
            let top = if section.is_empty() { line } else { "" };
            let probe = if section == "probe" { line } else { "" };
            let rest = if section.is_empty() || section == "probe" {
                String::new()
            } else {
                format!("[{section}]\n{line}\n")
            };
            format!("{top}\n[probe]\n{BASELINE_TARGETS}{probe}\n{rest}")
        };
        let shown = |text: &str| format!("{:?}", parse(text, Environment::default()));
        let baseline = shown(&file("", ""));
        assert!(baseline.starts_with("Ok("), "{baseline}");
        let mut section = String::new();
        let mut checked = Vec::new();
        for line in PACKAGED.lines() {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_string();
                continue;
            }
            // The sinks' examples are whole tables, with no defaults to show but gzip's.
            if line.contains("[[sink]]") {
                break;
            }
            let Some(example) = line.strip_prefix('#') else {
                continue;
            };
            let Some((key, _)) = example.split_once(" = ") else {
                continue;
            };
            if !key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                continue;
            }
            checked.push(format!("{section}.{key}"));
            if NO_DEFAULT.contains(&key) {
                continue;
            }
            // Compared whole (the Debug form of the parsed file), reported short.
            assert!(
                shown(&file(&section, example)) == baseline,
                "packaging/config.toml: [{section}] {example} is not the default"
            );
        }
        // Every key of the [probe] section is shown (those the file refuses excepted).
        let probe_keys = <crate::settings::ProbeSettings as clap::Args>::augment_args(
            clap::Command::new("probe"),
        );
        for arg in probe_keys.get_arguments() {
            let key = arg.get_id().as_str();
            let refused = toml::from_str::<crate::settings::ProbeSettings>(&format!("{key} = 0"))
                .is_err_and(|e| e.message().contains("unknown field"));
            if !refused {
                assert!(
                    checked.contains(&format!("probe.{key}")),
                    "packaging/config.toml does not show [probe] {key}"
                );
            }
        }
        assert!(checked.len() > 25, "{checked:?}");
    }

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
