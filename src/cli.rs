//! Command-line definitions. Raw arguments are turned into a validated `Config` by config.rs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Validate the agent's configuration file without probing (used by the systemd unit's ExecStartPre).
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExpectPath {
    /// Traffic must go through the VPC's gateway endpoint.
    Gateway,
    /// Traffic must go through an interface endpoint (private addresses).
    Interface,
    /// Any working path is fine.
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// Exit 1 only for findings of severity error.
    Error,
    /// Exit 1 for warnings too.
    Warning,
}

#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
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
    pub no_calls: bool,

    /// Do not read the VPC's configuration with EC2 Describe* (on by default when built with the control-plane feature).
    #[arg(long)]
    pub no_control_plane: bool,

    /// Also run AWS Reachability Analyzer from the instance's ENI to each gateway endpoint on TCP 443 (AWS charges per analysis; what it creates is deleted again).
    #[arg(long)]
    pub reachability_analyzer: bool,

    /// Region to probe; default: the SDK chain (AWS_REGION, AWS_DEFAULT_REGION, profile), else the instance's region from IMDS.
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// Named profile of the shared AWS config files (default: AWS_PROFILE, else "default").
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,

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

    /// Timeout of each network operation, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    pub timeout: f64,

    /// Deadline of the whole run, in seconds (default 20, or 180 with --reachability-analyzer); the report keeps what finished by then and says the deadline cut it short.
    #[arg(long, value_name = "SECS")]
    pub deadline: Option<f64>,

    /// AWS ip-ranges.json file to classify addresses with (default: the embedded snapshot of S3 and DYNAMODB prefixes).
    #[arg(long, value_name = "FILE")]
    pub ip_ranges: Option<PathBuf>,

    /// A host outside S3/DynamoDB whose TCP reachability tells whether the instance has an internet path; "none" turns it off.
    #[arg(
        long,
        value_name = "HOST:PORT",
        default_value = "checkip.amazonaws.com:443"
    )]
    pub internet_canary: String,

    /// The path the traffic is expected to take.
    #[arg(long, value_enum, default_value_t = ExpectPath::Gateway)]
    pub expect_path: ExpectPath,

    /// Address of the Amazon-provided VPC resolver to compare the host's answers with.
    #[arg(long, value_name = "IP[:PORT]", default_value = "169.254.169.253")]
    pub vpc_resolver: String,

    /// The resolver configuration the host uses.
    #[arg(long, value_name = "FILE", default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,

    /// The hosts file the applications' resolution reads (nsswitch `files`).
    #[arg(long, value_name = "FILE", default_value = "/etc/hosts")]
    pub hosts_file: PathBuf,

    /// The name-service switch configuration whose `hosts:` line orders the applications' resolution.
    #[arg(long, value_name = "FILE", default_value = "/etc/nsswitch.conf")]
    pub nsswitch_conf: PathBuf,

    /// Text that the issuer of a genuine service certificate contains (repeatable; default "Amazon"). Anything else is reported as TLS interception.
    #[arg(long = "expect-issuer", value_name = "TEXT")]
    pub expect_issuers: Vec<String>,

    /// Which findings make the exit code 1.
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    pub fail_on: FailOn,

    /// Never show the progress spinner (it only appears when stderr is a terminal).
    #[arg(long)]
    pub no_progress: bool,
}
