//! Validated configuration of a run: everything checked before a single packet is sent,
//! with messages that say what is wrong and how to fix it (exit 2).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{FailOn, Format, ProbeArgs};
use crate::durations;
use crate::escape::{shown, shown_path};
use crate::findings::Expectations;
use crate::fsread;
use crate::net::limits::Bounds;
use crate::proxy_rules::{ProxyEnv, redact_proxy_url};
use crate::ranges::IpRanges;
use crate::report::{EffectiveConfig, EnvVar};
use crate::settings::{ExpectPath, ProbeSettings};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// The environment variables the probe reads, captured once so a run is a function of its inputs.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    pub aws_region: Option<String>,
    pub imds_endpoint: Option<String>,
    pub imds_disabled: bool,
    pub endpoint_url: Option<String>,
    pub endpoint_url_s3: Option<String>,
    pub endpoint_url_dynamodb: Option<String>,
    pub s3_us_east_1_regional_endpoint: Option<String>,
    pub ca_bundle: Option<PathBuf>,
    pub ssl_cert_file: Option<PathBuf>,
    pub no_color: bool,
    pub proxy: ProxyEnv,
}

impl Environment {
    pub fn from_process() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Environment {
            aws_region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
            imds_endpoint: var("AWS_EC2_METADATA_SERVICE_ENDPOINT"),
            imds_disabled: var("AWS_EC2_METADATA_DISABLED")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            endpoint_url: var("AWS_ENDPOINT_URL"),
            endpoint_url_s3: var("AWS_ENDPOINT_URL_S3"),
            endpoint_url_dynamodb: var("AWS_ENDPOINT_URL_DYNAMODB"),
            s3_us_east_1_regional_endpoint: var("AWS_S3_US_EAST_1_REGIONAL_ENDPOINT"),
            ca_bundle: var("AWS_CA_BUNDLE").map(PathBuf::from),
            ssl_cert_file: var("SSL_CERT_FILE").map(PathBuf::from),
            // https://no-color.org: any non-empty value.
            no_color: var("NO_COLOR").is_some(),
            proxy: crate::proxy_env::from_process(),
        }
    }

    pub fn imds_endpoint_or_default(&self) -> String {
        self.imds_endpoint
            .clone()
            .unwrap_or_else(|| "http://169.254.169.254".to_string())
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub buckets: Vec<String>,
    pub tables: Vec<String>,
    pub key: Option<String>,
    pub item_key: Option<std::collections::HashMap<String, crate::checks::dynamodb::ItemKeyValue>>,
    pub write_test: bool,
    pub calls: bool,
    /// Read the VPC's configuration (needs the signed calls' credentials and the feature).
    pub control_plane: bool,
    pub reachability_analyzer: bool,
    pub region: Option<String>,
    pub profile: Option<String>,
    pub format: Format,
    pub output: Option<PathBuf>,
    /// `--ship` destinations of the one-shot probe (the agent's sinks come from its file).
    pub ship: Vec<Sink>,
    pub timeout: Duration,
    /// The connect wait of the checks whose healthy answer is silence (canary, STS, EC2 API):
    /// `--silence-timeout`, at most `timeout`.
    pub silence_timeout: Duration,
    pub deadline: Duration,
    pub ranges: IpRanges,
    pub internet_canary: Option<(String, u16)>,
    pub expect_path: ExpectPath,
    pub vpc_resolver: SocketAddr,
    pub resolv_conf: PathBuf,
    pub hosts_file: PathBuf,
    pub nsswitch_conf: PathBuf,
    pub expect_issuers: Vec<String>,
    /// What a run may have in flight (connects and signed calls, per address and overall).
    pub bounds: Bounds,
    pub fail_on: FailOn,
    pub progress: bool,
    pub env: Environment,
}

impl Config {
    /// What diagnosis judges the run's results against: the plain values it reads of the
    /// configuration.
    pub fn expectations(&self) -> Expectations {
        Expectations {
            expect_path: self.expect_path,
            expect_issuers: self.expect_issuers.clone(),
            fail_on: self.fail_on,
            proxy_env: self.env.proxy.clone(),
        }
    }

    /// Validate the flags of `vpce-probe probe` (or the agent's `[probe]` section with the
    /// agent's output) into a run's configuration; the error is the exit-2 line.
    pub fn from_args(args: ProbeArgs, env: Environment) -> Result<Config, ConfigError> {
        let ProbeArgs { settings, output } = args;
        validate_targets(&settings)?;
        let item_key = match &settings.item_key {
            Some(raw) => Some(crate::checks::dynamodb::parse_item_key(raw).map_err(ConfigError)?),
            None => None,
        };
        if item_key.is_some() && settings.tables.is_empty() {
            return err("--item-key needs a --table to read the item from");
        }
        if settings.key.is_some() && settings.buckets.is_empty() {
            return err("--key needs a --bucket to read the object from");
        }
        let (timeout, deadline) = timeout_and_deadline(&settings)?;
        let silence_timeout = durations::seconds(
            "--silence-timeout",
            settings.silence_timeout.as_secs_f64(),
            durations::MIN_TIMEOUT,
            durations::MAX_TIMEOUT,
        )
        .map_err(ConfigError)?
        .min(timeout);
        if settings.reachability_analyzer
            && (!settings.control_plane || settings.no_calls || !cfg!(feature = "control-plane"))
        {
            return err(
                "--reachability-analyzer needs the control plane: drop --no-control-plane / --no-calls (and build with the control-plane feature)",
            );
        }
        let ranges = match &settings.ip_ranges {
            Some(path) => IpRanges::from_file(path).map_err(|e| ConfigError(e.to_string()))?,
            None => IpRanges::embedded(),
        };
        if let Some(region) = &settings.region {
            validate_region(region, &ranges)?;
        }
        check_resolv_conf(&settings.resolv_conf)?;
        let internet_canary = parse_canary(&settings.internet_canary)?;
        let vpc_resolver = parse_resolver(&settings.vpc_resolver)?;
        if let Some(path) = &output.output {
            check_output_directory(path)?;
        }
        let ship = parse_ship(&output.ship, &output.ship_token_file, &output.ship_ca_file)?;
        check_environment(&env)?;
        let expect_issuers = settings.expect_issuers_or_default();
        let bounds = bounds(&settings)?;
        Ok(Config {
            buckets: dedup(settings.buckets),
            tables: dedup(settings.tables),
            key: settings.key,
            item_key,
            write_test: settings.write_test,
            calls: !settings.no_calls,
            control_plane: settings.control_plane
                && !settings.no_calls
                && cfg!(feature = "control-plane"),
            reachability_analyzer: settings.reachability_analyzer,
            region: settings.region,
            profile: settings.profile,
            format: output.format,
            output: output.output,
            ship,
            timeout,
            silence_timeout,
            deadline,
            ranges,
            internet_canary,
            expect_path: settings.expect_path,
            vpc_resolver,
            resolv_conf: settings.resolv_conf,
            hosts_file: settings.hosts_file,
            nsswitch_conf: settings.nsswitch_conf,
            expect_issuers,
            bounds,
            fail_on: output.fail_on,
            progress: !output.no_progress,
            env,
        })
    }

    /// What the report shows of the configuration: no secrets.
    pub fn effective(&self) -> EffectiveConfig {
        let overrides = [
            ("AWS_ENDPOINT_URL", &self.env.endpoint_url),
            ("AWS_ENDPOINT_URL_S3", &self.env.endpoint_url_s3),
            ("AWS_ENDPOINT_URL_DYNAMODB", &self.env.endpoint_url_dynamodb),
        ];
        EffectiveConfig {
            buckets: self.buckets.clone(),
            tables: self.tables.clone(),
            key: self.key.clone(),
            item_key: self.item_key.is_some(),
            write_test: self.write_test,
            calls: self.calls,
            control_plane: self.control_plane,
            reachability_analyzer: self.reachability_analyzer,
            region: self.region.clone(),
            profile: self.profile.clone(),
            timeout_ms: self.timeout.as_millis() as u64,
            silence_timeout_ms: self.silence_timeout.as_millis() as u64,
            deadline_ms: self.deadline.as_millis() as u64,
            ip_ranges: self.ranges.source.clone(),
            internet_canary: self
                .internet_canary
                .as_ref()
                .map(|(h, p)| format!("{h}:{p}")),
            expect_path: format!("{:?}", self.expect_path).to_lowercase(),
            vpc_resolver: self.vpc_resolver.to_string(),
            resolv_conf: self.resolv_conf.display().to_string(),
            hosts_file: self.hosts_file.display().to_string(),
            nsswitch_conf: self.nsswitch_conf.display().to_string(),
            expect_issuers: self.expect_issuers.clone(),
            imds_endpoint: self.env.imds_endpoint.clone(),
            endpoint_overrides: overrides
                .into_iter()
                .filter_map(|(name, v)| {
                    v.as_ref().map(|v| EnvVar {
                        name: name.into(),
                        value: redact_proxy_url(v),
                    })
                })
                .collect(),
            proxy_env: self
                .env
                .proxy
                .vars()
                .iter()
                .map(|(name, value)| EnvVar {
                    name: name.clone(),
                    value: redact_proxy_url(value),
                })
                .collect(),
            max_connections: self.bounds.connections as u32,
            max_connections_per_address: self.bounds.connections_per_address as u32,
            max_calls: self.bounds.calls as u32,
            max_calls_per_address: self.bounds.calls_per_address as u32,
            extra_ca_files: [&self.env.ca_bundle, &self.env.ssl_cert_file]
                .into_iter()
                .flatten()
                .map(|p| p.display().to_string())
                .collect(),
        }
    }
}

/// At least one target, every name by its service's naming rules.
fn validate_targets(settings: &ProbeSettings) -> Result<(), ConfigError> {
    if settings.buckets.is_empty() && settings.tables.is_empty() {
        return err(
            "nothing to probe: give at least one --bucket NAME or --table NAME (see vpce-probe probe --help)",
        );
    }
    for bucket in &settings.buckets {
        validate_bucket_name(bucket)?;
    }
    for table in &settings.tables {
        validate_table_name(table)?;
    }
    Ok(())
}

/// The bounds on connects and calls in flight: each at least 1.
fn bounds(settings: &ProbeSettings) -> Result<Bounds, ConfigError> {
    let at_least_one = |flag: &str, n: u32| {
        if n == 0 {
            err(format!(
                "--{flag} 0: at least 1 (it bounds what is in flight at once)"
            ))
        } else {
            Ok(n as usize)
        }
    };
    Ok(Bounds {
        connections: at_least_one("max-connections", settings.max_connections)?,
        connections_per_address: at_least_one(
            "max-connections-per-address",
            settings.max_connections_per_address,
        )?,
        calls: at_least_one("max-calls", settings.max_calls)?,
        calls_per_address: at_least_one("max-calls-per-address", settings.max_calls_per_address)?,
    })
}

/// `--timeout` and `--deadline` within their bounds, and the run no shorter than one operation.
fn timeout_and_deadline(settings: &ProbeSettings) -> Result<(Duration, Duration), ConfigError> {
    let timeout = durations::seconds(
        "--timeout",
        settings.timeout.as_secs_f64(),
        durations::MIN_TIMEOUT,
        durations::MAX_TIMEOUT,
    )
    .map_err(ConfigError)?;
    let deadline_secs = settings.deadline_or_default();
    let deadline = durations::seconds(
        "--deadline",
        deadline_secs.as_secs_f64(),
        durations::MIN_DEADLINE,
        durations::MAX_DEADLINE,
    )
    .map_err(ConfigError)?;
    if deadline < timeout {
        return err(format!(
            "--deadline {deadline_secs} is shorter than --timeout {}: the whole run cannot be shorter than one network operation",
            settings.timeout
        ));
    }
    Ok((timeout, deadline))
}

/// Read now, not when the run starts: a missing file is a usage error (exit 2), and a FIFO or a
/// device is refused instead of hanging the run. The host's own /etc/resolv.conf missing (a
/// dangling systemd-resolved link) is what the probe is there to report: the DNS checks say so,
/// the run goes on.
fn check_resolv_conf(path: &std::path::Path) -> Result<(), ConfigError> {
    let host_default_missing =
        path == std::path::Path::new(crate::settings::defaults::RESOLV_CONF) && !path.exists();
    if !host_default_missing {
        fsread::read(path, fsread::MAX_SMALL)
            .map_err(|e| ConfigError(format!("--resolv-conf: {e}")))?;
    }
    Ok(())
}

/// `--output FILE` is written at the end of the run: its directory must exist now.
fn check_output_directory(output: &std::path::Path) -> Result<(), ConfigError> {
    let parent = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if !parent.is_dir() {
        return err(format!(
            "--output {}: directory {} does not exist",
            shown_path(output),
            shown_path(parent)
        ));
    }
    Ok(())
}

/// The variables the applications read too: extra trust roots that are files of sane size
/// (whether they are good PEM is the TLS checks' finding), endpoint overrides that are URLs.
fn check_environment(env: &Environment) -> Result<(), ConfigError> {
    for (var, path) in [
        ("AWS_CA_BUNDLE", &env.ca_bundle),
        ("SSL_CERT_FILE", &env.ssl_cert_file),
    ] {
        if let Some(path) = path
            && let Err(e) = fsread::read(path, fsread::MAX_CA_BUNDLE)
        {
            return err(format!("{var}: {e}; point it at a PEM bundle or unset it"));
        }
    }
    for url in [
        &env.endpoint_url,
        &env.endpoint_url_s3,
        &env.endpoint_url_dynamodb,
    ]
    .into_iter()
    .flatten()
    {
        if url::Url::parse(url)
            .map(|u| u.host().is_none())
            .unwrap_or(true)
        {
            return err(format!(
                "endpoint override '{}' is not a URL with a host (AWS_ENDPOINT_URL*)",
                shown(&redact_proxy_url(url))
            ));
        }
    }
    Ok(())
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    v.retain(|x| seen.insert(x.clone()));
    v
}

/// `--ship URL...` with the token and CA files that apply to its http(s) URLs.
fn parse_ship(
    urls: &[String],
    token_file: &Option<PathBuf>,
    ca_file: &Option<PathBuf>,
) -> Result<Vec<Sink>, ConfigError> {
    for (flag, file) in [
        ("--ship-token-file", token_file),
        ("--ship-ca-file", ca_file),
    ] {
        if let Some(f) = file {
            let usable = if flag == "--ship-ca-file" {
                crate::net::tls::pem_bundle(f).map(|_| ())
            } else {
                fsread::read(f, fsread::MAX_SMALL).map(|_| ())
            };
            if let Err(e) = usable {
                return err(format!("{flag}: {e}"));
            }
            if !urls.iter().any(|u| u.starts_with("http")) {
                return err(format!(
                    "{flag} applies to http(s) --ship URLs, and none is given"
                ));
            }
        }
    }
    let mut sinks = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let mut sink = Sink::from_ship_url(url).map_err(ConfigError)?;
        match &mut sink {
            Sink::Http {
                name,
                bearer_token_file,
                ca_file: ca,
                ..
            } => {
                *bearer_token_file = token_file.clone();
                *ca = ca_file.clone();
                *name = format!("ship-{}", i + 1);
            }
            Sink::S3 { name, .. } | Sink::Dir { name, .. } => *name = format!("ship-{}", i + 1),
        }
        sinks.push(sink);
    }
    Ok(sinks)
}

/// An S3 access point ARN (`arn:PARTITION:s3:REGION:ACCOUNT:accesspoint/NAME`): the SDKs
/// call its own host name, which the endpoint rules derive (src/endpoints.rs).
fn is_access_point_arn(name: &str) -> bool {
    let parts: Vec<&str> = name.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts.as_slice() else {
        return false;
    };
    let ap_name = resource.strip_prefix("accesspoint/").unwrap_or("");
    *arn == "arn"
        && partition.starts_with("aws")
        && *service == "s3"
        && !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && (3..=50).contains(&ap_name.len())
        && ap_name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// S3 general purpose bucket naming rules:
/// https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
pub fn validate_bucket_name(name: &str) -> Result<(), ConfigError> {
    if is_access_point_arn(name) {
        return Ok(());
    }
    let bad = |why: &str| {
        err(format!(
            "--bucket '{}': {why} (S3 bucket naming rules)",
            shown(name)
        ))
    };
    if !(3..=63).contains(&name.len()) {
        return bad("bucket names are 3 to 63 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return bad("bucket names use only lowercase letters, digits, dots and hyphens");
    }
    let first = name.as_bytes()[0];
    let last = name.as_bytes()[name.len() - 1];
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return bad("bucket names begin and end with a letter or digit");
    }
    if name.contains("..") {
        return bad("bucket names have no two adjacent dots");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return bad("bucket names are not formatted as IP addresses");
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(prefix) {
            return bad(&format!("bucket names do not start with '{prefix}'"));
        }
    }
    if name.ends_with("--x-s3") {
        // An S3 Express One Zone directory bucket: `<base>--<zone-id>--x-s3`, no dots.
        return match crate::endpoints::directory_bucket_zone(name) {
            Ok(_) => Ok(()),
            Err(why) => err(format!(
                "--bucket '{}': {why} (S3 directory bucket naming rules: <base-name>--<zone-id>--x-s3, e.g. logs--usw2-az1--x-s3)",
                shown(name)
            )),
        };
    }
    // "-s3alias" is an access point alias, which the SDKs call like a bucket: allowed.
    for suffix in ["--ol-s3", ".mrap", "--table-s3"] {
        if name.ends_with(suffix) {
            return bad(&format!("bucket names do not end with '{suffix}'"));
        }
    }
    Ok(())
}

/// How sinks retry: exponential backoff from `retry_initial` to `retry_max`, with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shipping {
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Bound on one delivery attempt (connect, send, answer).
    pub timeout: Duration,
}

impl Default for Shipping {
    fn default() -> Self {
        Shipping {
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    Http {
        name: String,
        url: url::Url,
        bearer_token_file: Option<PathBuf>,
        ca_file: Option<PathBuf>,
        gzip: bool,
    },
    S3 {
        name: String,
        bucket: String,
        prefix: String,
    },
    Dir {
        name: String,
        path: PathBuf,
    },
}

impl Sink {
    pub fn name(&self) -> &str {
        match self {
            Sink::Http { name, .. } | Sink::S3 { name, .. } | Sink::Dir { name, .. } => name,
        }
    }
}

/// `s3://BUCKET/PREFIX/` → (bucket, prefix); the prefix may be empty.
pub fn parse_s3_url(url: &str) -> Result<(String, String), String> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| {
        format!(
            "url = \"{}\": expected s3://BUCKET/PREFIX/",
            shown(&redact_proxy_url(url))
        )
    })?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    validate_bucket_name(bucket).map_err(|e| e.to_string())?;
    Ok((bucket.to_string(), prefix.to_string()))
}

impl Sink {
    /// The sink of `probe --ship URL`: http(s)://… posts, s3://BUCKET/PREFIX/ puts, and an
    /// absolute path (or file:///path) writes into that directory.
    pub fn from_ship_url(url: &str) -> Result<Sink, String> {
        let fail = |why: &str| {
            format!(
                "--ship '{}': {why} (expected https://collector/path, s3://BUCKET/PREFIX/ or /absolute/dir)",
                shown(&redact_proxy_url(url))
            )
        };
        if url.starts_with("s3://") {
            let (bucket, prefix) = parse_s3_url(url).map_err(|e| fail(&e))?;
            return Ok(Sink::S3 {
                name: "ship-s3".into(),
                bucket,
                prefix,
            });
        }
        if url.starts_with("http://") || url.starts_with("https://") {
            let parsed = url::Url::parse(url)
                .ok()
                .filter(|u| u.host().is_some())
                .ok_or_else(|| fail("not a valid URL"))?;
            return Ok(Sink::Http {
                name: "ship-http".into(),
                url: parsed,
                bearer_token_file: None,
                ca_file: None,
                gzip: true,
            });
        }
        let path = url.strip_prefix("file://").unwrap_or(url);
        let path = PathBuf::from(path);
        if !path.is_absolute() {
            return Err(fail("not a URL nor an absolute directory"));
        }
        if !path.is_dir() {
            return Err(fail("no such directory"));
        }
        Ok(Sink::Dir {
            name: "ship-dir".into(),
            path,
        })
    }
}

/// DynamoDB table naming rules:
/// https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html
pub fn validate_table_name(name: &str) -> Result<(), ConfigError> {
    if !(3..=255).contains(&name.len()) {
        return err(format!(
            "--table '{}': table names are 3 to 255 characters long (DynamoDB naming rules)",
            shown(name)
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return err(format!(
            "--table '{}': table names use only letters, digits, '_', '-' and '.' (DynamoDB naming rules)",
            shown(name)
        ));
    }
    Ok(())
}

pub fn validate_region(region: &str, ranges: &IpRanges) -> Result<(), ConfigError> {
    if ranges.knows_region(region) && region != "GLOBAL" {
        return Ok(());
    }
    // Region names are short: a longer value is no typo of one, and the edit distance of two
    // long strings (a hostile --ip-ranges file) costs the product of their lengths.
    const LONGEST_REGION: usize = 64;
    let suggestion = ranges
        .regions()
        .into_iter()
        .filter(|r| region.len() <= LONGEST_REGION && r.len() <= LONGEST_REGION)
        .map(|r| (strsim::levenshtein(region, r), r))
        .min()
        .filter(|(d, _)| *d <= 3)
        .map(|(_, r)| format!("; did you mean {}?", shown(r)))
        .unwrap_or_default();
    err(format!(
        "--region '{}': not a region with S3 or DynamoDB addresses in the ip-ranges data ({}, {}){suggestion} (a region newer than the data needs a fresh --ip-ranges file)",
        shown(region),
        ranges.source,
        shown(&ranges.create_date)
    ))
}

fn parse_canary(raw: &str) -> Result<Option<(String, u16)>, ConfigError> {
    if raw.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let bad = || {
        err(format!(
            "--internet-canary '{}': expected HOST:PORT (for example checkip.amazonaws.com:443) or none",
            shown(raw)
        ))
    };
    let Some((host, port)) = raw.rsplit_once(':') else {
        return bad();
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let Ok(port) = port.parse::<u16>() else {
        return bad();
    };
    if host.is_empty() || port == 0 {
        return bad();
    }
    Ok(Some((host.to_string(), port)))
}

fn parse_resolver(raw: &str) -> Result<SocketAddr, ConfigError> {
    if let Ok(ip) = raw.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    raw.parse::<SocketAddr>().or_else(|_| {
        err(format!(
            "--vpc-resolver '{}': expected an IP address, optionally with :PORT (for example 169.254.169.253)",
            shown(raw)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `effective_config` is the report's own type (the report crate has no clap), so it is held
    /// to the settings here: every setting shows in it, under its name or its resolved form.
    #[test]
    fn every_setting_shows_in_the_effective_config() {
        use clap::Args;
        let shown = serde_json::to_value(EffectiveConfig::default()).expect("json");
        let keys = shown.as_object().expect("an object");
        let settings = ProbeSettings::augment_args(clap::Command::new("probe"));
        let mut missing = Vec::new();
        for arg in settings.get_arguments() {
            let name = match arg.get_id().as_str() {
                "timeout" => "timeout_ms",
                "silence_timeout" => "silence_timeout_ms",
                "deadline" => "deadline_ms",
                "no_calls" => "calls",
                other => other,
            };
            if !keys.contains_key(name) {
                missing.push(name.to_string());
            }
        }
        assert!(missing.is_empty(), "not in effective_config: {missing:?}");
    }

    #[test]
    fn bucket_names() {
        // Access point aliases and ARNs are what the SDKs accept as a bucket (the endpoint
        // rules name their hosts).
        let ok = [
            "abc",
            "my-bucket.logs",
            "a1b2c3",
            &"a".repeat(63),
            "myap-abcdefgh1234567890123456-s3alias",
            "arn:aws:s3:eu-west-1:123456789012:accesspoint/myap",
            // S3 Express One Zone directory buckets, in an Availability Zone and a Local Zone.
            "logs--usw2-az1--x-s3",
            "a--euw1-az3--x-s3",
            "b1-x--usw2-lax1-az1--x-s3",
        ];
        for name in ok {
            assert!(validate_bucket_name(name).is_ok(), "{name}");
        }
        let bad = [
            ("ab", "3 to 63"),
            ("My_Bucket", "lowercase"),
            ("-abc", "begin and end"),
            ("abc-", "begin and end"),
            ("a..b", "adjacent dots"),
            ("192.168.5.4", "IP addresses"),
            ("xn--abc", "xn--"),
            ("data--x-s3", "no zone id"),
            ("my.data--usw2-az1--x-s3", "no dots"),
            ("data--usw2--x-s3", "zone id"),
            ("data--USW2-az1--x-s3", "lowercase"),
            ("-data--usw2-az1--x-s3", "begin"),
            ("abc--ol-s3", "--ol-s3"),
            // Not an access point ARN (short account): judged as a bucket name.
            ("arn:aws:s3:eu-west-1:123:accesspoint/x", "lowercase"),
        ];
        for (name, want) in bad {
            let e = validate_bucket_name(name).expect_err(name).to_string();
            assert!(e.contains(want) && e.contains(name), "{e}");
        }
    }

    #[test]
    fn table_names() {
        assert!(validate_table_name("Orders_2024.v1-a").is_ok());
        assert!(validate_table_name("ab").is_err());
        assert!(
            validate_table_name("orders table")
                .unwrap_err()
                .to_string()
                .contains("only letters")
        );
    }

    #[test]
    fn regions_are_checked_against_the_ranges_with_a_suggestion() {
        let ranges = IpRanges::embedded();
        assert!(validate_region("eu-west-1", &ranges).is_ok());
        let e = validate_region("eu-wst-1", &ranges)
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean eu-west-1?"), "{e}");
        assert!(validate_region("GLOBAL", &ranges).is_err());
    }

    #[test]
    fn canary_and_resolver_parsing() {
        assert_eq!(parse_canary("none").unwrap(), None);
        assert_eq!(
            parse_canary("example.com:443").unwrap(),
            Some(("example.com".into(), 443))
        );
        assert_eq!(
            parse_canary("[2001:db8::1]:443").unwrap(),
            Some(("2001:db8::1".into(), 443))
        );
        assert!(parse_canary("example.com").is_err());
        assert!(parse_canary("example.com:0").is_err());
        assert_eq!(
            parse_resolver("169.254.169.253").unwrap(),
            "169.254.169.253:53".parse().unwrap()
        );
        assert_eq!(
            parse_resolver("127.0.0.1:5353").unwrap(),
            "127.0.0.1:5353".parse().unwrap()
        );
        assert!(parse_resolver("resolver.local").is_err());
    }
}
