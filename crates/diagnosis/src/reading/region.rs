//! The region's pure half: the partition's DNS suffix, the global S3 names, its finding rules
//! (REGION_MISMATCH_SDK, S3_GLOBAL_ENDPOINT) and how the region facts read as a report record.
//! Reading the SDK's region is the probe's checks/region.rs.

use super::{Check, SliceRules};
use crate::catalogue::FindingCode;
use crate::findings::{Expectations, Findings, HostRule};
use crate::report::*;
use crate::results::ProbeResults;

/// The region check's rules: one about the host.
pub struct RegionSlice;

impl SliceRules for RegionSlice {
    fn host_rules(&self) -> &'static [HostRule] {
        &[region_findings]
    }
}

/// The region the SDKs would use vs the instance's.
fn region_findings(r: &ProbeResults, _: &Expectations, f: &mut Findings) {
    let region_check = RegionCheck {
        facts: r.region.clone(),
    };
    // Region.
    for (source, region) in region_check.mismatches() {
        let instance_region = r.region.instance.clone().unwrap_or_default();
        f.add(
            FindingCode::REGION_MISMATCH_SDK,
            Severity::Error,
            "host",
            format!("{source} says {region}, but the instance is in {instance_region}"),
            format!(
                "Calls would go to the {region} endpoints; the gateway endpoint of this VPC only serves {instance_region}."
            ),
            if source == "--region" {
                format!("Probe the instance's region (--region {instance_region}) unless you mean to test cross-region access.")
            } else {
                format!("export AWS_REGION={instance_region} (or set region = {instance_region} in the profile)")
            },
            vec!["region".into()],
        );
    }
    if region_check.global_endpoint() && r.targets.iter().any(|t| t.service == Service::S3) {
        let host = r.region.s3_endpoint_host.clone().unwrap_or_default();
        f.add(
            FindingCode::S3_GLOBAL_ENDPOINT,
            Severity::Error,
            "host",
            format!("S3 calls would use the global endpoint {host}"),
            format!(
                "{host} is served from us-east-1; the instance is in {}.",
                r.region.instance.as_deref().unwrap_or("another region")
            ),
            FindingCode::S3_GLOBAL_ENDPOINT.general_fix().into(),
            vec!["region".into()],
        );
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::slice::{findings_of, s3_target};

    fn in_eu_west_1() -> ProbeResults {
        ProbeResults {
            region: RegionFacts {
                effective: Some("eu-west-1".into()),
                effective_source: Some("imds".into()),
                instance: Some("eu-west-1".into()),
                s3_endpoint_host: Some("s3.eu-west-1.amazonaws.com".into()),
                ..RegionFacts::default()
            },
            targets: vec![s3_target("s3.eu-west-1.amazonaws.com")],
            ..ProbeResults::default()
        }
    }

    /// The SDK's region against the instance's, and S3's global endpoint outside us-east-1
    /// (only when an S3 target would use it).
    #[test]
    fn the_sdks_region_and_the_global_endpoint_against_the_instances_region() {
        let exp = Expectations::default_run();
        let mut r = in_eu_west_1();
        assert!(findings_of(&RegionSlice, &r, &exp).is_empty());

        r.region.sdk = Some("us-east-1".into());
        r.region.sdk_source = Some("AWS_REGION".into());
        r.region.s3_endpoint_host = Some("s3.amazonaws.com".into());
        let found = findings_of(&RegionSlice, &r, &exp);
        let codes: Vec<FindingCode> = found.iter().map(|f| f.code).collect();
        assert_eq!(
            codes,
            vec![
                FindingCode::REGION_MISMATCH_SDK,
                FindingCode::S3_GLOBAL_ENDPOINT
            ]
        );
        assert_eq!(
            found[0].title,
            "AWS_REGION says us-east-1, but the instance is in eu-west-1"
        );
        assert_eq!(
            found[0].remediation,
            "export AWS_REGION=eu-west-1 (or set region = eu-west-1 in the profile)"
        );

        r.targets[0].service = Service::Dynamodb;
        let found = findings_of(&RegionSlice, &r, &exp);
        assert!(
            found
                .iter()
                .all(|f| f.code != FindingCode::S3_GLOBAL_ENDPOINT)
        );
    }
}
