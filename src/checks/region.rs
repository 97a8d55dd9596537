//! Region: the instance's (IMDS) vs what the SDKs on this host are configured with vs --region,
//! and the S3 endpoint host the SDK would use.

use aws_config::meta::region::ProvideRegion;
use aws_config::profile::ProfileFileRegionProvider;

use super::Check;
use crate::config::Environment;
use crate::report::{CheckKind, CheckStatus, Evidence, RegionFacts};

/// The region the SDKs would take from the environment, then the shared config profile.
pub async fn sdk_region(env: &Environment, profile: Option<&str>) -> Option<(String, String)> {
    if let Some(r) = &env.aws_region {
        return Some((r.clone(), "AWS_REGION / AWS_DEFAULT_REGION".into()));
    }
    let mut builder = ProfileFileRegionProvider::builder();
    if let Some(p) = profile {
        builder = builder.profile_name(p);
    }
    let region = builder.build().region().await?;
    Some((
        region.to_string(),
        format!("profile {}", profile.unwrap_or("(AWS_PROFILE or default)")),
    ))
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

/// The S3 host the SDKs would call for `region`, given endpoint overrides.
pub fn s3_endpoint_host(region: &str, env: &Environment) -> String {
    if let Some(host) = override_host(env.endpoint_url_s3.as_ref().or(env.endpoint_url.as_ref())) {
        return host;
    }
    let legacy = env
        .s3_us_east_1_regional_endpoint
        .as_deref()
        .is_some_and(|v| v.eq_ignore_ascii_case("legacy"));
    // botocore (AWS CLI v1, boto3) sends us-east-1 to the global name when this is "legacy";
    // "aws-global" is the pseudo-region of the global endpoint in every SDK.
    if region == "aws-global" || (region == "us-east-1" && legacy) {
        return "s3.amazonaws.com".into();
    }
    format!("s3.{region}.{}", dns_suffix(region))
}

pub fn override_host(url: Option<&String>) -> Option<String> {
    url.and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_string))
}

pub fn is_global_s3_host(host: &str) -> bool {
    matches!(
        host,
        "s3.amazonaws.com" | "s3-external-1.amazonaws.com" | "s3-global.amazonaws.com"
    )
}

/// Combine the sources: --region wins, then the SDK's own configuration, then IMDS.
pub fn evaluate(
    cli: Option<&str>,
    sdk: Option<(String, String)>,
    instance: Option<&str>,
    env: &Environment,
) -> RegionFacts {
    let (effective, effective_source) = match (cli, &sdk, instance) {
        (Some(r), _, _) => (Some(r.to_string()), Some("--region".to_string())),
        (None, Some((r, source)), _) => (Some(r.clone()), Some(source.clone())),
        (None, None, Some(r)) => (Some(r.to_string()), Some("imds".to_string())),
        (None, None, None) => (None, None),
    };
    // The SDK's effective region: its own configuration, else (default chain) IMDS.
    let sdk_effective = sdk
        .as_ref()
        .map(|(r, _)| r.as_str())
        .or(instance)
        .or(effective.as_deref());
    RegionFacts {
        s3_endpoint_host: sdk_effective.map(|r| s3_endpoint_host(r, env)),
        effective,
        effective_source,
        instance: instance.map(str::to_string),
        sdk_source: sdk.as_ref().map(|(_, s)| s.clone()),
        sdk: sdk.map(|(r, _)| r),
    }
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

    fn env() -> Environment {
        Environment::default()
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn region_sources_and_mismatches() {
        let cases: Vec<(Option<&str>, Option<&str>, Option<&str>, &str, usize)> = vec![
            // cli, sdk, instance, effective, mismatches
            (None, None, Some("eu-west-1"), "eu-west-1", 0),
            (None, Some("eu-west-1"), Some("eu-west-1"), "eu-west-1", 0),
            (None, Some("us-east-1"), Some("eu-west-1"), "us-east-1", 1),
            (
                Some("eu-west-2"),
                Some("us-east-1"),
                Some("eu-west-1"),
                "eu-west-2",
                2,
            ),
            (Some("eu-west-1"), None, None, "eu-west-1", 0),
        ];
        for (cli, sdk, instance, want, n) in cases {
            let facts = evaluate(
                cli,
                sdk.map(|r| (r.to_string(), "AWS_REGION".to_string())),
                instance,
                &env(),
            );
            assert_eq!(facts.effective.as_deref(), Some(want));
            let check = RegionCheck { facts };
            assert_eq!(check.mismatches().len(), n, "{cli:?} {sdk:?} {instance:?}");
        }
    }

    #[test]
    fn s3_hosts() {
        let mut e = env();
        assert_eq!(
            s3_endpoint_host("eu-west-1", &e),
            "s3.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            s3_endpoint_host("cn-north-1", &e),
            "s3.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(
            s3_endpoint_host("us-east-1", &e),
            "s3.us-east-1.amazonaws.com"
        );
        e.s3_us_east_1_regional_endpoint = Some("legacy".into());
        assert_eq!(s3_endpoint_host("us-east-1", &e), "s3.amazonaws.com");
        e.endpoint_url_s3 = Some("https://s3.amazonaws.com".into());
        assert_eq!(s3_endpoint_host("eu-west-1", &e), "s3.amazonaws.com");
    }

    #[test]
    fn global_endpoint_outside_us_east_1() {
        let mut e = env();
        e.endpoint_url_s3 = Some("https://s3.amazonaws.com".into());
        let check = RegionCheck {
            facts: evaluate(None, None, Some("eu-west-1"), &e),
        };
        assert!(check.global_endpoint());
        let check = RegionCheck {
            facts: evaluate(None, None, Some("us-east-1"), &e),
        };
        assert!(!check.global_endpoint());
    }
}
