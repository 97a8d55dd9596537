//! Where and how to pull: `--pull-s3` flags, the `[s3_pull]` table, their checks.

use std::fmt;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

pub const DEFAULT_INTERVAL_SECS: u64 = 60;
/// The agent's spool keeps a report up to 7 days by default (`[spool] max_age`), plus a day of
/// UTC boundary.
pub const DEFAULT_LOOKBACK_DAYS: u32 = 8;
pub const DEFAULT_CONCURRENCY: usize = 8;
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// `s3://bucket/prefix/`: the prefix is empty or ends with `/`, like the sink's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub bucket: String,
    pub prefix: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

impl Location {
    pub fn parse(s: &str) -> Result<Location, String> {
        let rest = s.strip_prefix("s3://").ok_or_else(|| {
            format!("pull location \"{s}\": write it s3://BUCKET/PREFIX/ (the S3 sink's url)")
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && bucket
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric())
            && bucket
                .bytes()
                .last()
                .is_some_and(|b| b.is_ascii_alphanumeric());
        if !valid_bucket {
            return Err(format!(
                "pull location \"{s}\": \"{bucket}\" is not an S3 bucket name (3-63 characters: a-z, 0-9, '.', '-')"
            ));
        }
        let mut prefix = prefix.trim_start_matches('/').to_string();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(Location {
            bucket: bucket.to_string(),
            prefix,
        })
    }
}

/// Flags shared by `serve`, `check-config` and `pull`.
#[derive(Args, Debug, Default)]
pub struct PullFlags {
    /// Pull the reports an S3 sink writes under s3://BUCKET/PREFIX/ (repeatable; replaces
    /// `[s3_pull] locations`). Credentials and region come from the AWS SDK's usual chain;
    /// AWS_ENDPOINT_URL_S3 is honoured.
    #[arg(long = "pull-s3", value_name = "S3_URL")]
    pub pull_s3: Vec<String>,
    /// Seconds between two pulls in `serve` [default: 60].
    #[arg(long, value_name = "SECS")]
    pub pull_s3_interval_secs: Option<u64>,
    /// The buckets' region when the SDK's chain (AWS_REGION, profile, IMDS) is not the one.
    #[arg(long, value_name = "REGION")]
    pub pull_s3_region: Option<String>,
    /// Path-style requests (http://host/bucket/key), for S3-compatible endpoints.
    #[arg(long)]
    pub pull_s3_path_style: bool,
}

/// The `[s3_pull]` table of the configuration file.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct PullFile {
    #[serde(default)]
    locations: Vec<String>,
    interval_secs: Option<u64>,
    lookback_days: Option<u32>,
    region: Option<String>,
    path_style: Option<bool>,
    concurrency: Option<usize>,
    timeout_secs: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct PullSettings {
    pub locations: Vec<Location>,
    pub interval: Duration,
    pub lookback_days: u32,
    /// How far back the very first pull of a location lists: the retention, since older
    /// reports would be deleted at once.
    pub first_pull_days: u32,
    pub region: Option<String>,
    pub path_style: bool,
    pub concurrency: usize,
    pub timeout: Duration,
    pub max_body: u64,
}

impl PullSettings {
    /// `None` when no location is configured. Flags win over the file.
    pub fn resolve(
        flags: PullFlags,
        file: Option<PullFile>,
        max_body: u64,
        retention_days: u32,
    ) -> Result<Option<PullSettings>, String> {
        let file = file.unwrap_or_default();
        let raw = if flags.pull_s3.is_empty() {
            file.locations
        } else {
            flags.pull_s3
        };
        let mut locations = Vec::new();
        for s in &raw {
            let l = Location::parse(s)?;
            if !locations.contains(&l) {
                locations.push(l);
            }
        }
        if locations.is_empty() {
            return Ok(None);
        }
        let interval_secs = flags
            .pull_s3_interval_secs
            .or(file.interval_secs)
            .unwrap_or(DEFAULT_INTERVAL_SECS);
        if interval_secs == 0 {
            return Err("pull_s3 interval_secs: at least 1".into());
        }
        let lookback_days = file.lookback_days.unwrap_or(DEFAULT_LOOKBACK_DAYS);
        if !(1..=366).contains(&lookback_days) {
            return Err(format!(
                "[s3_pull] lookback_days = {lookback_days}: 1 to 366"
            ));
        }
        let concurrency = file.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
        if !(1..=64).contains(&concurrency) {
            return Err(format!("[s3_pull] concurrency = {concurrency}: 1 to 64"));
        }
        let timeout_secs = file.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS);
        if !(1..=600).contains(&timeout_secs) {
            return Err(format!("[s3_pull] timeout_secs = {timeout_secs}: 1 to 600"));
        }
        let region = flags.pull_s3_region.or(file.region);
        if let Some(r) = &region
            && (r.is_empty() || !r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return Err(format!(
                "pull_s3 region \"{r}\" is not a region name (like eu-west-1)"
            ));
        }
        Ok(Some(PullSettings {
            locations,
            interval: Duration::from_secs(interval_secs),
            lookback_days,
            first_pull_days: retention_days,
            region,
            path_style: flags.pull_s3_path_style || file.path_style.unwrap_or(false),
            concurrency,
            timeout: Duration::from_secs(timeout_secs),
            max_body,
        }))
    }

    pub fn describe(&self) -> String {
        let list: Vec<String> = self.locations.iter().map(|l| l.to_string()).collect();
        format!(
            "pull s3 {} every {} s (lookback {} days, region {}, {}concurrency {}, timeout {} s)\n",
            list.join(" "),
            self.interval.as_secs(),
            self.lookback_days,
            self.region.as_deref().unwrap_or("from the SDK chain"),
            if self.path_style { "path-style, " } else { "" },
            self.concurrency,
            self.timeout.as_secs(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_the_sinks_urls() {
        let l = Location::parse("s3://reports-bucket/vpce-probe").expect("valid");
        assert_eq!(l.prefix, "vpce-probe/");
        assert_eq!(l.to_string(), "s3://reports-bucket/vpce-probe/");
        assert_eq!(Location::parse("s3://b.c-d").expect("valid").prefix, "");
        for bad in [
            "https://b/p/",
            "s3://Bad_Bucket/p/",
            "s3://ab/",
            "s3://-abc/",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
    }
}
