//! The probe's settings, defined once: the flags of `vpce-probe probe` (clap) and the keys of the
//! agent's `[probe]` section (serde) are the same fields, with the same defaults. A flag is the
//! key with `-` for `_` (but `--bucket`, `--table`, `--expect-issuer`, which repeat, and
//! `--no-control-plane`, the command line's way to say `control_plane = false`). Settings that only
//! make sense for a one-shot run are `#[serde(skip)]`, so the file refuses them as unknown keys.
//! What a run's output looks like (`--format`, `--output`, `--ship`...) is not a probe setting: it
//! lives in cli.rs. Validation of the values, with the messages of exit 2, is config.rs.

use std::path::PathBuf;

use clap::Args;
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use serde::{Deserialize, Deserializer};

use crate::durations::Seconds;
use crate::escape::shown;

/// The defaults of the settings: the one place the flags (their `--help`), the agent's file,
/// packaging/config.toml's comments and the docs take them from (the last two are checked by tests).
pub mod defaults {
    use std::path::PathBuf;

    use super::ExpectPath;
    use crate::durations::Seconds;

    pub const TIMEOUT: Seconds = Seconds::from_secs(3);
    /// The connect wait of the checks whose healthy answer in a private subnet is silence.
    pub const SILENCE_TIMEOUT: Seconds = Seconds::from_millis(200);
    pub const DEADLINE: Seconds = Seconds::from_secs(20);
    /// Reachability Analyzer's analyses take minutes.
    pub const DEADLINE_WITH_REACHABILITY_ANALYZER: Seconds = Seconds::from_secs(180);
    pub const INTERNET_CANARY: &str = "checkip.amazonaws.com:443";
    pub const EXPECT_PATH: ExpectPath = ExpectPath::Gateway;
    pub const VPC_RESOLVER: &str = "169.254.169.253";
    pub const RESOLV_CONF: &str = "/etc/resolv.conf";
    pub const HOSTS_FILE: &str = "/etc/hosts";
    pub const NSSWITCH_CONF: &str = "/etc/nsswitch.conf";
    /// What a genuine service certificate's issuer contains when no `--expect-issuer` is given.
    pub const EXPECT_ISSUER: &str = "Amazon";
    pub const CONTROL_PLANE: bool = true;
    // The bounds on what a run has in flight (src/net/limits.rs). Measured in the VPC lab with 50
    // buckets and 50 tables (BENCHMARKS.md, section 5: 350 signed calls and ~500 connects when
    // nothing bounds them): one connect costs the probe a socket and the service a SYN, so 64
    // overall and 8 per address keep a burst far below a listen backlog (128 by default on
    // Linux, and the service's own) while one target's checks (about 20 connects, 4 of them
    // to one address) never wait; signed calls are the service's real work (a signature to
    // check, a policy to evaluate): 32 overall and 8 per address keep one target's 7 calls
    // unqueued and send 50 targets' calls as a steady stream rather than one burst of 350
    // that a front end throttles (503 SlowDown) and the lab's single API server overflows on.
    pub const MAX_CONNECTIONS: u32 = 64;
    pub const MAX_CONNECTIONS_PER_ADDRESS: u32 = 8;
    pub const MAX_CALLS: u32 = 32;
    pub const MAX_CALLS_PER_ADDRESS: u32 = 8;

    pub fn deadline(reachability_analyzer: bool) -> Seconds {
        if reachability_analyzer {
            DEADLINE_WITH_REACHABILITY_ANALYZER
        } else {
            DEADLINE
        }
    }

    pub(super) fn path(p: &str) -> PathBuf {
        PathBuf::from(p)
    }
}

/// `--expect-path`'s values: the plain enum is the diagnosis crate's (its rules read it), clap's
/// and serde's reading of it are here.
pub use vpce_probe_diagnosis::findings::ExpectPath;

/// Each `--expect-path` value with its help, in the order `--help` lists them.
const EXPECT_PATH_VALUES: &[(ExpectPath, &str)] = &[
    (
        ExpectPath::Gateway,
        "Traffic must go through the VPC's gateway endpoint",
    ),
    (
        ExpectPath::Interface,
        "Traffic must go through an interface endpoint (private addresses)",
    ),
    (ExpectPath::Any, "Any working path is fine"),
];

/// A flag whose values are a plain enum of the diagnosis crate (no clap there): its names
/// (`as_str`) with their help, parsed as clap's `ValueEnum` derive would.
pub(crate) fn plain_enum_parser<T>(
    values: &'static [(T, &'static str)],
    name: fn(T) -> &'static str,
) -> impl TypedValueParser<Value = T>
where
    T: Copy + Send + Sync + 'static,
{
    PossibleValuesParser::new(
        values
            .iter()
            .map(|(value, help)| PossibleValue::new(name(*value)).help(*help)),
    )
    .try_map(move |given: String| {
        values
            .iter()
            .map(|(value, _)| *value)
            .find(|value| name(*value) == given)
            .ok_or("not one of the possible values")
    })
}

/// The file's `expect_path = "gateway"`: the names of the flag's values, with the flag's message.
fn expect_path_by_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ExpectPath, D::Error> {
    let raw = String::deserialize(deserializer)?;
    ExpectPath::ALL
        .into_iter()
        .find(|path| path.as_str() == raw)
        .ok_or_else(|| {
            let names: Vec<&str> = EXPECT_PATH_VALUES.iter().map(|(p, _)| p.as_str()).collect();
            serde::de::Error::custom(format!(
                "probe.expect_path = \"{}\": expected one of {}",
                shown(&raw),
                names.join(", ")
            ))
        })
}

#[derive(Debug, Clone, PartialEq, Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProbeSettings {
    /// S3 bucket to probe (repeatable).
    #[arg(long = "bucket", value_name = "NAME")]
    pub buckets: Vec<String>,

    /// DynamoDB table to probe (repeatable).
    #[arg(long = "table", value_name = "NAME")]
    pub tables: Vec<String>,

    /// An object to GET (only its first bytes) in the signed-call checks.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,

    /// A DynamoDB key to GetItem, as DynamoDB JSON, e.g. '{"pk":{"S":"id-1"}}'.
    #[arg(long, value_name = "JSON")]
    pub item_key: Option<String>,

    /// Also PutObject then DeleteObject a small object under vpce-probe-write-test/ (the probe never writes otherwise).
    #[arg(long)]
    pub write_test: bool,

    /// Skip the signed calls (credentials, STS, S3, DynamoDB): network checks only.
    #[arg(long)]
    #[serde(skip)]
    pub no_calls: bool,

    /// Do not read the VPC's configuration with EC2 Describe* (on by default when built with the control-plane feature).
    #[arg(long = "no-control-plane", action = clap::ArgAction::SetFalse)]
    pub control_plane: bool,

    /// Also run AWS Reachability Analyzer from the instance's ENI to each gateway endpoint on TCP 443 (AWS charges per analysis; what it creates is deleted again).
    // Never from the agent's file: it costs money per analysis, at every run.
    #[arg(long)]
    #[serde(skip)]
    pub reachability_analyzer: bool,

    /// Region to probe; default: the SDK chain (AWS_REGION, AWS_DEFAULT_REGION, profile), else the instance's region from IMDS.
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// Named profile of the shared AWS config files (default: AWS_PROFILE, else "default").
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,

    /// Timeout of each network operation, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = defaults::TIMEOUT)]
    pub timeout: Seconds,

    /// How long the checks whose healthy answer in a private subnet is silence (the internet canary, STS, the EC2 API) wait for a TCP connection, in seconds (at most --timeout); one that connects later is reported as silent.
    #[arg(long, value_name = "SECS", default_value_t = defaults::SILENCE_TIMEOUT)]
    pub silence_timeout: Seconds,

    /// Deadline of the whole run, in seconds (default 20, or 180 with --reachability-analyzer); the report keeps what finished by then and says the deadline cut it short.
    #[arg(long, value_name = "SECS")]
    pub deadline: Option<Seconds>,

    /// AWS ip-ranges.json file to classify addresses with (default: the embedded snapshot of S3 and DYNAMODB prefixes).
    #[arg(long, value_name = "FILE")]
    pub ip_ranges: Option<PathBuf>,

    /// A host outside S3/DynamoDB whose TCP reachability tells whether the instance has an internet path; "none" turns it off.
    #[arg(long, value_name = "HOST:PORT", default_value = defaults::INTERNET_CANARY)]
    pub internet_canary: String,

    /// The path the traffic is expected to take.
    #[arg(long, value_parser = plain_enum_parser(EXPECT_PATH_VALUES, ExpectPath::as_str), default_value_t = defaults::EXPECT_PATH)]
    #[serde(deserialize_with = "expect_path_by_name")]
    pub expect_path: ExpectPath,

    /// Address of the Amazon-provided VPC resolver to compare the host's answers with.
    #[arg(long, value_name = "IP[:PORT]", default_value = defaults::VPC_RESOLVER)]
    pub vpc_resolver: String,

    /// The resolver configuration the host uses.
    #[arg(long, value_name = "FILE", default_value = defaults::RESOLV_CONF)]
    pub resolv_conf: PathBuf,

    /// The hosts file the applications' resolution reads (nsswitch `files`).
    #[arg(long, value_name = "FILE", default_value = defaults::HOSTS_FILE)]
    pub hosts_file: PathBuf,

    /// The name-service switch configuration whose `hosts:` line orders the applications' resolution.
    #[arg(long, value_name = "FILE", default_value = defaults::NSSWITCH_CONF)]
    pub nsswitch_conf: PathBuf,

    /// Most TCP connects in flight at once (the checks' connects; a connect with no answer yet stops counting after a twentieth of --timeout). Waiting for one is not part of any timeout.
    #[arg(long, value_name = "N", default_value_t = defaults::MAX_CONNECTIONS)]
    pub max_connections: u32,

    /// Most TCP connects in flight to one address.
    #[arg(long, value_name = "N", default_value_t = defaults::MAX_CONNECTIONS_PER_ADDRESS)]
    pub max_connections_per_address: u32,

    /// Most signed calls in flight at once (a call with no answer yet stops counting after a quarter of --timeout). Waiting for one is not part of any timeout.
    #[arg(long, value_name = "N", default_value_t = defaults::MAX_CALLS)]
    pub max_calls: u32,

    /// Most signed calls in flight to one address (or one proxy).
    #[arg(long, value_name = "N", default_value_t = defaults::MAX_CALLS_PER_ADDRESS)]
    pub max_calls_per_address: u32,

    /// Text that the issuer of a genuine service certificate contains (repeatable; default "Amazon"). Anything else is reported as TLS interception.
    // No clap default: an empty list (also `expect_issuers = []` in the file) means the default.
    #[arg(long = "expect-issuer", value_name = "TEXT")]
    pub expect_issuers: Vec<String>,
}

/// The defaults of [`defaults`]: what an empty `[probe]` section and a command line without
/// flags both mean (a unit test holds the two to it).
impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            buckets: Vec::new(),
            tables: Vec::new(),
            key: None,
            item_key: None,
            write_test: false,
            no_calls: false,
            control_plane: defaults::CONTROL_PLANE,
            reachability_analyzer: false,
            region: None,
            profile: None,
            timeout: defaults::TIMEOUT,
            silence_timeout: defaults::SILENCE_TIMEOUT,
            deadline: None,
            ip_ranges: None,
            internet_canary: defaults::INTERNET_CANARY.to_string(),
            expect_path: defaults::EXPECT_PATH,
            vpc_resolver: defaults::VPC_RESOLVER.to_string(),
            resolv_conf: defaults::path(defaults::RESOLV_CONF),
            hosts_file: defaults::path(defaults::HOSTS_FILE),
            nsswitch_conf: defaults::path(defaults::NSSWITCH_CONF),
            expect_issuers: Vec::new(),
            max_connections: defaults::MAX_CONNECTIONS,
            max_connections_per_address: defaults::MAX_CONNECTIONS_PER_ADDRESS,
            max_calls: defaults::MAX_CALLS,
            max_calls_per_address: defaults::MAX_CALLS_PER_ADDRESS,
        }
    }
}

impl ProbeSettings {
    /// The deadline given, else the default for this run.
    pub fn deadline_or_default(&self) -> Seconds {
        self.deadline
            .unwrap_or_else(|| defaults::deadline(self.reachability_analyzer))
    }

    /// The issuers given, else the default one.
    pub fn expect_issuers_or_default(&self) -> Vec<String> {
        if self.expect_issuers.is_empty() {
            vec![defaults::EXPECT_ISSUER.to_string()]
        } else {
            self.expect_issuers.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{FromArgMatches, Parser};

    #[derive(Parser)]
    struct OnlySettings {
        #[command(flatten)]
        settings: ProbeSettings,
    }

    fn from_flags(flags: &[&str]) -> ProbeSettings {
        let argv = std::iter::once("probe").chain(flags.iter().copied());
        OnlySettings::try_parse_from(argv).expect("flags").settings
    }

    fn from_file(section: &str) -> Result<ProbeSettings, String> {
        toml::from_str(section).map_err(|e| e.message().to_string())
    }

    #[test]
    fn no_flags_and_an_empty_section_mean_the_same_defaults() {
        assert_eq!(from_flags(&[]), ProbeSettings::default());
        assert_eq!(from_file(""), Ok(ProbeSettings::default()));
        let d = ProbeSettings::default();
        assert!(d.control_plane);
        assert_eq!(d.timeout.as_secs_f64(), 3.0);
        assert_eq!(d.silence_timeout.as_secs_f64(), 0.2);
        assert_eq!(d.deadline_or_default().as_secs_f64(), 20.0);
        assert_eq!(d.expect_issuers_or_default(), vec!["Amazon"]);
        // The matches of an empty command line, read back, are the defaults too.
        let matches = OnlySettings::augment_args(clap::Command::new("probe"))
            .try_get_matches_from(["probe"])
            .expect("matches");
        assert_eq!(
            ProbeSettings::from_arg_matches(&matches).expect("settings"),
            ProbeSettings::default()
        );
    }

    #[test]
    fn a_flag_and_its_key_set_the_same_field() {
        let cases: [(&[&str], &str); 11] = [
            (
                &["--bucket", "b1", "--bucket", "b2"],
                "buckets = [\"b1\", \"b2\"]",
            ),
            (&["--no-control-plane"], "control_plane = false"),
            (&["--timeout", "2.5"], "timeout = \"2500ms\""),
            (&["--timeout", "2s"], "timeout = \"2\""),
            (&["--silence-timeout", "1"], "silence_timeout = \"1s\""),
            (&["--deadline", "30"], "deadline = \"30s\""),
            (&["--expect-path", "any"], "expect_path = \"any\""),
            (&["--expect-issuer", "Corp"], "expect_issuers = [\"Corp\"]"),
            (&["--hosts-file", "/h"], "hosts_file = \"/h\""),
            (&["--max-calls", "4"], "max_calls = 4"),
            (
                &["--max-connections-per-address", "2"],
                "max_connections_per_address = 2",
            ),
        ];
        for (flags, key) in cases {
            let file = from_file(key).expect(key);
            assert_eq!(from_flags(flags), file, "{flags:?} vs {key}");
            assert_ne!(file, ProbeSettings::default(), "{key} changes something");
        }
    }

    #[test]
    fn the_file_refuses_what_only_a_one_shot_run_may_ask_for() {
        for key in [
            "no_calls = true",
            "reachability_analyzer = true",
            "format = \"json\"",
            "no_control_plane = true",
        ] {
            let e = from_file(key).expect_err(key);
            assert!(e.contains("unknown field"), "{key}: {e}");
        }
        let e = from_file("expect_path = \"nat\"").expect_err("nat");
        assert_eq!(
            e,
            "probe.expect_path = \"nat\": expected one of gateway, interface, any"
        );
    }
}
