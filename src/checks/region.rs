//! Region: the instance's (IMDS) vs what the SDKs on this host are configured with vs --region,
//! and the S3 endpoint host the SDK would use.

use aws_config::meta::region::ProvideRegion;
use aws_config::profile::ProfileFileRegionProvider;

use crate::config::Environment;
use crate::report::RegionFacts;
// The region's pure half (its record, the partition's suffix) is the diagnosis crate's.
pub use vpce_probe_diagnosis::reading::region::{RegionCheck, dns_suffix, is_global_s3_host};

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
