//! The region's pure half: the partition's DNS suffix, the global S3 names, and how the
//! region facts read as a report record. Reading the SDK's region is the probe's checks/region.rs.

use super::Check;
use crate::report::*;

/// DNS suffix of a region's partition.
pub fn dns_suffix(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else if region.starts_with("eusc-") {
        "amazonaws.eu"
    } else {
        "amazonaws.com"
    }
}

pub fn is_global_s3_host(host: &str) -> bool {
    matches!(
        host,
        "s3.amazonaws.com" | "s3-external-1.amazonaws.com" | "s3-global.amazonaws.com"
    )
}

pub struct RegionCheck {
    pub facts: RegionFacts,
}

impl RegionCheck {
    /// Regions that disagree with the instance's: (source, region).
    pub fn mismatches(&self) -> Vec<(String, String)> {
        let Some(instance) = &self.facts.instance else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Some(sdk) = &self.facts.sdk
            && sdk != instance
        {
            let source = self.facts.sdk_source.clone().unwrap_or_default();
            out.push((source, sdk.clone()));
        }
        if self.facts.effective_source.as_deref() == Some("--region")
            && let Some(eff) = &self.facts.effective
            && eff != instance
        {
            out.push(("--region".into(), eff.clone()));
        }
        out
    }

    pub fn global_endpoint(&self) -> bool {
        let outside_us_east_1 = self
            .facts
            .instance
            .as_deref()
            .or(self.facts.effective.as_deref())
            .is_some_and(|r| r != "us-east-1");
        outside_us_east_1
            && self
                .facts
                .s3_endpoint_host
                .as_deref()
                .is_some_and(is_global_s3_host)
    }
}

impl Check for RegionCheck {
    const KIND: CheckKind = CheckKind::Region;
    fn id(&self) -> String {
        "region".into()
    }
    fn subject(&self) -> String {
        self.facts.effective.clone().unwrap_or_else(|| "?".into())
    }
    fn status(&self) -> CheckStatus {
        if self.facts.effective.is_none() || !self.mismatches().is_empty() || self.global_endpoint()
        {
            CheckStatus::Fail
        } else {
            CheckStatus::Ok
        }
    }
    fn summary(&self) -> String {
        let f = &self.facts;
        match &f.effective {
            None => "no region: IMDS unavailable and none configured (pass --region)".into(),
            Some(eff) => format!(
                "probing {eff} (from {}); instance {}; SDK {}; S3 endpoint {}",
                f.effective_source.as_deref().unwrap_or("?"),
                f.instance.as_deref().unwrap_or("unknown"),
                match (&f.sdk, &f.sdk_source) {
                    (Some(r), Some(s)) => format!("{r} ({s})"),
                    _ => "not set (uses IMDS)".into(),
                },
                f.s3_endpoint_host.as_deref().unwrap_or("?"),
            ),
        }
    }
    fn duration_ms(&self) -> u64 {
        0
    }
    fn evidence(&self) -> Evidence {
        Evidence::Region(self.facts.clone())
    }
}
