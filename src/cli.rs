//! Command-line definitions. Raw arguments are turned into a validated `Config` by config.rs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

// The probe's settings are defined once, for the flags and the agent's file (settings.rs).
use crate::settings::{ProbeSettings, plain_enum_parser};

/// The top-level help's (and the man page's) closing block.
const EXAMPLES: &str = "\
Examples:
  Probe once; text report on stdout, exit code = verdict:
    vpce-probe probe --bucket my-bucket --table my-table
  Also write the full JSON report to a file:
    vpce-probe probe --bucket my-bucket --output /var/tmp/vpce-probe.json
  Ship the JSON report to S3 (or an https collector, or a directory):
    vpce-probe probe --bucket my-bucket --ship s3://my-reports/vpce-probe/
  Validate the agent's configuration before starting the service:
    vpce-probe check-config --config /etc/vpce-probe/config.toml

Exit codes: 0 healthy, 1 a problem was found, 2 bad usage or configuration (nothing probed), 3 the probe itself failed.";

/// `vpce-probe probe --help`'s closing block.
const PROBE_EXAMPLES: &str = "\
Examples:
  vpce-probe probe --bucket my-bucket --table my-table
  vpce-probe probe --bucket my-bucket --format json > report.json
  vpce-probe probe --bucket my-bucket --output /var/tmp/vpce-probe.json
  vpce-probe probe --table my-table --ship s3://my-reports/vpce-probe/
  vpce-probe probe --bucket my-bucket --ship https://collector.example/reports \\
      --ship-token-file /etc/vpce-probe/collector.token

Exit codes: 0 healthy, 1 a problem was found, 2 bad usage (nothing probed), 3 the probe itself failed.";

#[derive(Debug, Parser)]
#[command(
    name = "vpce-probe",
    version,
    about = "Proves from inside an EC2 instance whether Amazon S3 and DynamoDB are reached through the VPC's gateway endpoint, and names what is broken when they are not.",
    after_help = EXAMPLES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Probe once and print a report (the SSM Run Command job).
    #[command(after_help = PROBE_EXAMPLES)]
    Probe(Box<ProbeArgs>),
    /// Validate the agent's configuration file without probing (the checks the agent's start makes first).
    CheckConfig {
        /// The agent's configuration file.
        #[arg(
            long,
            value_name = "FILE",
            default_value = "/etc/vpce-probe/config.toml"
        )]
        config: PathBuf,
    },
    /// Probe on a schedule, serve metrics and ship every report (the systemd service).
    Agent {
        /// The agent's configuration file (docs/agent.md is the reference of its keys).
        #[arg(
            long,
            value_name = "FILE",
            default_value = "/etc/vpce-probe/config.toml"
        )]
        config: PathBuf,
    },
    /// Print the JSON Schema of the report.
    Schema,
    /// List every finding code with its meaning and fix.
    Findings {
        /// `text`: one code a line, tab-separated (code, checklist item, meaning, fix);
        /// `markdown`: the table of docs/findings.md.
        #[arg(long, value_enum, default_value = "text")]
        format: ListFormat,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Text,
    Markdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// `--fail-on`'s values: the plain enum is the diagnosis crate's (its verdict reads it), clap's
/// reading of it is here.
pub use vpce_probe_diagnosis::findings::FailOn;

/// Each `--fail-on` value with its help, in the order `--help` lists them.
const FAIL_ON_VALUES: &[(FailOn, &str)] = &[
    (FailOn::Error, "Exit 1 only for findings of severity error"),
    (FailOn::Warning, "Exit 1 for warnings too"),
];

/// `vpce-probe probe`'s flags: the probe's settings (shared with the agent's `[probe]` section)
/// and where the report goes.
#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    #[command(flatten)]
    pub settings: ProbeSettings,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// What a one-shot run does with its report; the agent's reports go to its sinks.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Output on stdout: a short text report, or the full JSON report.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Also write the full JSON report to FILE (atomically).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Also send the JSON report to URL (repeatable): https://collector/path (POST, gzip), s3://BUCKET/PREFIX/ (PutObject, key PREFIX/YYYY/MM/DD/INSTANCE/REPORT_ID.json) or /absolute/directory. A report that could not be delivered makes the exit code 3.
    #[arg(long = "ship", value_name = "URL")]
    pub ship: Vec<String>,

    /// Bearer token for the http(s) --ship URLs, read from FILE (never from the command line).
    #[arg(long, value_name = "FILE")]
    pub ship_token_file: Option<PathBuf>,

    /// Extra CA certificates (PEM) to trust for the https --ship URLs.
    #[arg(long, value_name = "FILE")]
    pub ship_ca_file: Option<PathBuf>,

    /// Which findings make the exit code 1.
    #[arg(long, value_parser = plain_enum_parser(FAIL_ON_VALUES, FailOn::as_str), default_value_t = FailOn::Error)]
    pub fail_on: FailOn,

    /// Never show the progress spinner (it only appears when stderr is a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

impl OutputArgs {
    /// The agent's runs: the JSON report, to the sinks of its file only, no spinner.
    pub fn agent() -> Self {
        OutputArgs {
            format: Format::Json,
            output: None,
            ship: Vec::new(),
            ship_token_file: None,
            ship_ca_file: None,
            fail_on: FailOn::Error,
            no_progress: true,
        }
    }
}
