//! Endpoint names as the SDKs produce them: the endpoint rules compiled into aws-sdk-s3 and
//! aws-sdk-dynamodb (`config::endpoint::DefaultResolver`), fed with every setting the SDKs
//! and the AWS CLI read from the environment and from the shared config files of the selected
//! profile. Each name carries the settings that produced it and where each setting came from.

use std::borrow::Cow;

use aws_config::profile::ProfileSet;
use aws_runtime::env_config::file::EnvConfigFiles;
use aws_sdk_dynamodb::config::endpoint::ResolveEndpoint as _;
use aws_sdk_s3::config::endpoint::ResolveEndpoint as _;
use aws_types::os_shim_internal::{Env, Fs};
// Where a name's calls connect: made here, read by the diagnosis crate too.
pub use vpce_probe_diagnosis::endpoints::NameSocket;

/// One setting's value and where it came from ("AWS_USE_FIPS_ENDPOINT", "profile prod").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting<T> {
    pub value: T,
    pub source: String,
}

impl<T: std::fmt::Display> Setting<T> {
    fn describe(&self, key: &str) -> String {
        format!("{key} = {} ({})", self.value, self.source)
    }
}

/// Everything besides the region that changes which host names the SDKs call.
#[derive(Clone, Debug, Default)]
pub struct SdkSettings {
    /// The profile the SDKs select (AWS_PROFILE, --profile, else "default").
    pub profile: String,
    pub use_fips: Option<Setting<bool>>,
    pub use_dualstack: Option<Setting<bool>>,
    pub endpoint_url_s3: Option<Setting<String>>,
    pub endpoint_url_dynamodb: Option<Setting<String>>,
    /// `s3 = addressing_style = path` of the profile: the AWS CLI and boto3 use path style.
    pub s3_path_style: Option<Setting<bool>>,
    /// `legacy` sends us-east-1 to s3.amazonaws.com in botocore-based clients.
    pub s3_us_east_1_regional: Option<Setting<String>>,
    pub account_id_endpoint_mode: Option<Setting<String>>,
    /// Directory buckets: sign with the role's credentials instead of CreateSession's.
    pub s3_disable_express_session_auth: Option<Setting<bool>>,
}

/// Reading the settings: what makes the shared config unusable is a usage error (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read the shared AWS config files: {0}")]
    Files(String),
    #[error(
        "profile '{profile}' (from {from}) is not in the shared AWS config files; profiles there: {known}. Set AWS_PROFILE or --profile to one of them."
    )]
    UnknownProfile {
        profile: String,
        from: String,
        known: String,
    },
}

fn truthy(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// A profile key that holds sub-properties ("s3 =\n  addressing_style = path").
fn sub_property(raw: &str, key: &str) -> Option<String> {
    raw.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(key)
            .then(|| v.trim().to_string())
    })
}

impl SdkSettings {
    /// From the process environment and the shared config files (AWS_CONFIG_FILE,
    /// AWS_SHARED_CREDENTIALS_FILE), as the SDKs read them.
    pub async fn load(profile_flag: Option<&str>) -> Result<SdkSettings, SettingsError> {
        Self::load_from(profile_flag, &Env::real()).await
    }

    /// [`SdkSettings::load`] with the variables of `env` instead of the process's (the files
    /// they name are still read from disk), so tests can point AWS_CONFIG_FILE at a file.
    pub async fn load_from(
        profile_flag: Option<&str>,
        env: &Env,
    ) -> Result<SdkSettings, SettingsError> {
        let var = |name: &str| env.get(name).ok().filter(|v| !v.trim().is_empty());
        let (profile, profile_from) = match (profile_flag, var("AWS_PROFILE")) {
            (Some(p), _) => (p.to_string(), Some("--profile")),
            (None, Some(p)) => (p, Some("AWS_PROFILE")),
            (None, None) => ("default".to_string(), None),
        };
        let set = aws_config::profile::load(
            &Fs::real(),
            env,
            &EnvConfigFiles::default(),
            Some(Cow::Owned(profile.clone())),
        )
        .await
        // The parser's messages name the file and line, never a value (keys stay secret).
        .map_err(|e| SettingsError::Files(crate::escape::line(&one_line(&e.to_string()))))?;
        if let Some(from) = profile_from
            && !set.is_empty()
            && set.get_profile(&profile).is_none()
        {
            let mut known: Vec<&str> = set.profiles().collect();
            known.sort_unstable();
            // Both come from outside (a flag, AWS_PROFILE, the files' section names).
            return Err(SettingsError::UnknownProfile {
                profile: crate::escape::shown(&profile),
                from: from.to_string(),
                known: crate::escape::shown(&known.join(", ")),
            });
        }
        Ok(Self::from_sources(&var, &set, &profile))
    }

    fn from_sources(
        var: &dyn Fn(&str) -> Option<String>,
        set: &ProfileSet,
        profile: &str,
    ) -> SdkSettings {
        let in_profile = format!("profile {profile}");
        let prof = set.get_profile(profile);
        let key = |k: &str| prof.and_then(|p| p.get(k)).map(str::to_string);
        // Environment first, then the profile: the order of every SDK and the CLI.
        let flag = |env_name: &str, profile_key: &str| -> Option<Setting<bool>> {
            if let Some(v) = var(env_name).and_then(|v| truthy(&v)) {
                return Some(Setting {
                    value: v,
                    source: env_name.to_string(),
                });
            }
            key(profile_key)
                .and_then(|v| truthy(&v))
                .map(|value| Setting {
                    value,
                    source: in_profile.clone(),
                })
        };
        let text = |env_name: &str, profile_key: &str| -> Option<Setting<String>> {
            if let Some(v) = var(env_name) {
                return Some(Setting {
                    value: v,
                    source: env_name.to_string(),
                });
            }
            key(profile_key).map(|value| Setting {
                value,
                source: in_profile.clone(),
            })
        };
        let ignore_urls = flag(
            "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
            "ignore_configured_endpoint_urls",
        )
        .is_some_and(|s| s.value);
        let services_section = key("services");
        let service_url = |env_name: &str, service_key: &str| -> Option<Setting<String>> {
            if ignore_urls {
                return None;
            }
            if let Some(v) = var(env_name) {
                return Some(Setting {
                    value: v,
                    source: env_name.to_string(),
                });
            }
            // [services NAME] with "s3 =\n  endpoint_url = ..." (the SDKs' service-specific URLs).
            let from_services = services_section.as_deref().and_then(|section| {
                let props = set.other_sections();
                let k = aws_runtime::env_config::property::PropertiesKey::builder()
                    .section_key("services")
                    .section_name(section)
                    .property_name(service_key)
                    .sub_property_name("endpoint_url")
                    .build()
                    .ok()?;
                props.get(&k).map(|v| Setting {
                    value: v.to_string(),
                    source: format!("services {section} of {in_profile}"),
                })
            });
            from_services.or_else(|| text("AWS_ENDPOINT_URL", "endpoint_url"))
        };
        let s3_section = key("s3");
        SdkSettings {
            profile: profile.to_string(),
            use_fips: flag("AWS_USE_FIPS_ENDPOINT", "use_fips_endpoint"),
            use_dualstack: flag("AWS_USE_DUALSTACK_ENDPOINT", "use_dualstack_endpoint").or_else(
                || {
                    s3_section
                        .as_deref()
                        .and_then(|s| sub_property(s, "use_dualstack_endpoint"))
                        .and_then(|v| truthy(&v))
                        .map(|value| Setting {
                            value,
                            source: format!("s3.use_dualstack_endpoint of {in_profile}"),
                        })
                },
            ),
            endpoint_url_s3: service_url("AWS_ENDPOINT_URL_S3", "s3"),
            endpoint_url_dynamodb: service_url("AWS_ENDPOINT_URL_DYNAMODB", "dynamodb"),
            s3_path_style: s3_section
                .as_deref()
                .and_then(|s| sub_property(s, "addressing_style"))
                .map(|style| Setting {
                    value: style.eq_ignore_ascii_case("path"),
                    source: format!("s3.addressing_style = {style} of {in_profile}"),
                }),
            s3_us_east_1_regional: text(
                "AWS_S3_US_EAST_1_REGIONAL_ENDPOINT",
                "s3_us_east_1_regional_endpoint",
            ),
            account_id_endpoint_mode: text(
                "AWS_ACCOUNT_ID_ENDPOINT_MODE",
                "account_id_endpoint_mode",
            ),
            s3_disable_express_session_auth: flag(
                "AWS_S3_DISABLE_EXPRESS_SESSION_AUTH",
                "s3_disable_express_session_auth",
            ),
        }
    }

    pub fn fips(&self) -> bool {
        self.use_fips.as_ref().is_some_and(|s| s.value)
    }

    pub fn dualstack(&self) -> bool {
        self.use_dualstack.as_ref().is_some_and(|s| s.value)
    }

    /// The endpoint URLs as written in the settings (a port the scheme implies stays written:
    /// botocore checks NO_PROXY against it).
    pub fn configured_endpoint_urls(&self) -> Vec<String> {
        [&self.endpoint_url_s3, &self.endpoint_url_dynamodb]
            .into_iter()
            .flatten()
            .map(|s| s.value.trim().to_string())
            .collect()
    }

    /// The settings that apply to every name of a service, described with their sources.
    fn common(&self, override_url: Option<&Setting<String>>) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(s) = &self.use_fips {
            out.push(s.describe("use_fips_endpoint"));
        }
        if let Some(s) = &self.use_dualstack {
            out.push(s.describe("use_dualstack_endpoint"));
        }
        if let Some(s) = override_url {
            out.push(format!(
                "endpoint_url = {} ({})",
                crate::proxy_rules::redact_proxy_url(&s.value),
                s.source
            ));
        }
        out
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A host name a target's calls use, where they connect, and the settings that produced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedEndpoint {
    pub host: String,
    pub socket: NameSocket,
    pub settings: Vec<String>,
}

/// A resolved endpoint URL: its host and where the calls connect.
struct Located {
    host: String,
    socket: NameSocket,
}

fn locate(url: &str) -> Result<Located, String> {
    let parsed = url::Url::parse(url).ok();
    let host = parsed
        .as_ref()
        .and_then(|u| u.host_str().map(str::to_string));
    let (Some(parsed), Some(host)) = (parsed.as_ref(), host) else {
        return Err(format!(
            "the endpoint rules gave '{url}', which has no host"
        ));
    };
    let tls = parsed.scheme() != "http";
    Ok(Located {
        host,
        socket: NameSocket {
            port: parsed
                .port_or_known_default()
                .unwrap_or(if tls { 443 } else { 80 }),
            tls,
        },
    })
}

fn resolve_s3(params: &aws_sdk_s3::config::endpoint::Params) -> Result<Located, String> {
    let resolver = aws_sdk_s3::config::endpoint::DefaultResolver::new();
    // The rules are pure: the future is ready at once, no I/O.
    let endpoint = futures_util::FutureExt::now_or_never(resolver.resolve_endpoint(params))
        .ok_or("the S3 endpoint rules did not answer at once")?
        .map_err(|e| one_line(&e.to_string()))?;
    locate(endpoint.url())
}

fn resolve_ddb(params: &aws_sdk_dynamodb::config::endpoint::Params) -> Result<Located, String> {
    let resolver = aws_sdk_dynamodb::config::endpoint::DefaultResolver::new();
    let endpoint = futures_util::FutureExt::now_or_never(resolver.resolve_endpoint(params))
        .ok_or("the DynamoDB endpoint rules did not answer at once")?
        .map_err(|e| one_line(&e.to_string()))?;
    locate(endpoint.url())
}

/// Where the SDK sends STS calls in `region` with these settings (its own endpoint rules): the
/// host and its socket; None when the rules refuse (the call then says why).
pub fn sts_endpoint(region: &str, settings: &SdkSettings) -> Option<(String, NameSocket)> {
    use aws_sdk_sts::config::endpoint::{DefaultResolver, Params, ResolveEndpoint as _};
    let params = Params::builder()
        .region(region)
        .use_fips(settings.fips())
        .use_dual_stack(settings.dualstack())
        .use_global_endpoint(false)
        .build()
        .ok()?;
    let endpoint =
        futures_util::FutureExt::now_or_never(DefaultResolver::new().resolve_endpoint(&params))?
            .ok()?;
    locate(endpoint.url()).ok().map(|l| (l.host, l.socket))
}

/// Where the SDK sends EC2 calls in `region` with these settings; None without the control
/// plane or when the rules refuse.
pub fn ec2_endpoint(region: &str, settings: &SdkSettings) -> Option<(String, NameSocket)> {
    #[cfg(feature = "control-plane")]
    {
        use aws_sdk_ec2::config::endpoint::{DefaultResolver, Params, ResolveEndpoint as _};
        let params = Params::builder()
            .region(region)
            .use_fips(settings.fips())
            .use_dual_stack(settings.dualstack())
            .build()
            .ok()?;
        let endpoint = futures_util::FutureExt::now_or_never(
            DefaultResolver::new().resolve_endpoint(&params),
        )?
        .ok()?;
        locate(endpoint.url()).ok().map(|l| (l.host, l.socket))
    }
    #[cfg(not(feature = "control-plane"))]
    {
        let _ = (region, settings);
        None
    }
}

/// The zone id of an S3 Express One Zone directory bucket name (`<base>--<zone-id>--x-s3`,
/// e.g. `logs--usw2-az1--x-s3` in Availability Zone usw2-az1, or `logs--usw2-lax1-az1--x-s3`
/// in a Local Zone); Err with the reason for a name that ends in `--x-s3` but is malformed.
/// Not a directory bucket at all: Err too (the caller asks only for `--x-s3` names).
pub fn directory_bucket_zone(name: &str) -> Result<&str, String> {
    let Some(rest) = name.strip_suffix("--x-s3") else {
        return Err("a directory bucket name ends with --x-s3".into());
    };
    let Some((base, zone)) = rest.rsplit_once("--") else {
        return Err("there is no zone id before --x-s3".into());
    };
    if base.is_empty() {
        return Err("the base name before --<zone-id>--x-s3 is empty".into());
    }
    if base.contains('.') {
        return Err("directory bucket names have no dots".into());
    }
    let parts: Vec<&str> = zone.split('-').collect();
    let well_formed = parts.len() >= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts.last().is_some_and(|az| {
            az.strip_prefix("az")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        });
    if !well_formed {
        return Err(format!(
            "'{}' is not a zone id (like usw2-az1 or usw2-lax1-az1)",
            crate::escape::shown(zone)
        ));
    }
    Ok(zone)
}

/// Whether `bucket` names an S3 Express One Zone directory bucket (well formed or not).
pub fn is_directory_bucket(bucket: &str) -> bool {
    bucket.ends_with("--x-s3")
}

/// The S3 names for `bucket` (a bucket name, an access point ARN or alias, a directory
/// bucket): the one the SDKs call, and the regional name (path style, the CLI with
/// `addressing_style = path`, dotted bucket names).
pub fn s3_names(
    bucket: &str,
    region: &str,
    settings: &SdkSettings,
) -> Result<Vec<NamedEndpoint>, String> {
    let legacy_global = settings
        .s3_us_east_1_regional
        .as_ref()
        .filter(|s| s.value.eq_ignore_ascii_case("legacy"));
    let build_with = |bucket: Option<&str>, path_style: bool, global: bool| {
        aws_sdk_s3::config::endpoint::Params::builder()
            .region(region)
            .set_bucket(bucket.map(str::to_string))
            .use_fips(settings.fips())
            .use_dual_stack(settings.dualstack())
            .force_path_style(path_style)
            .accelerate(false)
            // botocore's "legacy": us-east-1 on the global name; "aws-global" is the SDKs' own.
            .use_global_endpoint(global || legacy_global.is_some() || region == "aws-global")
            .set_endpoint(settings.endpoint_url_s3.as_ref().map(|s| s.value.clone()))
            .build()
            .map_err(|e| one_line(&e.to_string()))
    };
    let common = settings.common(settings.endpoint_url_s3.as_ref());
    let with = |extra: &str| {
        let mut s = common.clone();
        if let Some(l) = legacy_global {
            s.push(l.describe("s3_us_east_1_regional_endpoint"));
        }
        s.push(extra.to_string());
        s
    };
    let build = |bucket: Option<&str>, path_style: bool| build_with(bucket, path_style, false);
    if is_directory_bucket(bucket) {
        // us-east-1's legacy global names never apply to directory buckets.
        let with_common = |extra: &str| [common.clone(), vec![extra.to_string()]].concat();
        return directory_bucket_names(bucket, region, settings, &with_common);
    }
    let sdk = resolve_s3(&build(Some(bucket), false)?)?;
    // The rules also take ARNs and directory buckets; a path-style request of the same
    // bucket shows the service's regional name.
    let regional =
        resolve_s3(&build(Some(bucket), true)?).or_else(|_| resolve_s3(&build(None, false)?));
    let mut out = vec![NamedEndpoint {
        host: sdk.host.clone(),
        socket: sdk.socket,
        settings: with(&format!(
            "the SDKs' S3 endpoint rules for '{bucket}' in {region}"
        )),
    }];
    if let Ok(regional) = regional
        && regional.host != sdk.host
    {
        let why = match &settings.s3_path_style {
            Some(p) if p.value => format!("path style: {}", p.source),
            // Defaults begin "the SDKs' ": the text report prints only what a setting shaped.
            _ => "the SDKs' path-style name (the regional name; what clients use for dotted bucket names)"
                .to_string(),
        };
        out.push(NamedEndpoint {
            host: regional.host,
            socket: regional.socket,
            settings: with(&why),
        });
    } else if let Some(p) = settings.s3_path_style.as_ref().filter(|p| p.value) {
        out[0].settings.push(format!("path style: {}", p.source));
    }
    // botocore (the AWS CLI, boto3) still sends us-east-1 to the global names unless told
    // "regional" (measured: botocore 1.44 calls mybucket.s3.amazonaws.com): those are names
    // the instance's applications use too. They go before the regional name, which stays last.
    let explicit = settings.s3_us_east_1_regional.is_some();
    if region == "us-east-1" && !explicit && settings.endpoint_url_s3.is_none() {
        let why = "botocore (AWS CLI, boto3) default in us-east-1: the global endpoint (s3_us_east_1_regional_endpoint not set)";
        for global in [
            resolve_s3(&build_with(Some(bucket), false, true)?),
            resolve_s3(&build_with(None, false, true)?),
        ]
        .into_iter()
        .flatten()
        {
            if out.iter().all(|n| n.host != global.host) {
                let at = out.len().saturating_sub(1).max(1);
                out.insert(
                    at,
                    NamedEndpoint {
                        host: global.host,
                        socket: global.socket,
                        settings: with(why),
                    },
                );
            }
        }
    }
    Ok(out)
}

/// An S3 Express One Zone directory bucket's names, from the same rules: the zonal name its
/// object calls (and CreateSession, HeadBucket) go to, then the regional control name of its
/// bucket-level calls (CreateBucket, bucket policy), the rules' `UseS3ExpressControlEndpoint`.
/// No path-style or global names: the SDKs use neither for directory buckets.
fn directory_bucket_names(
    bucket: &str,
    region: &str,
    settings: &SdkSettings,
    with: &dyn Fn(&str) -> Vec<String>,
) -> Result<Vec<NamedEndpoint>, String> {
    let build = |control: bool| {
        aws_sdk_s3::config::endpoint::Params::builder()
            .region(region)
            .bucket(bucket)
            .use_fips(settings.fips())
            .use_dual_stack(settings.dualstack())
            .force_path_style(false)
            .accelerate(false)
            .use_global_endpoint(false)
            .use_s3_express_control_endpoint(control)
            .set_disable_s3_express_session_auth(
                settings
                    .s3_disable_express_session_auth
                    .as_ref()
                    .map(|s| s.value),
            )
            .set_endpoint(settings.endpoint_url_s3.as_ref().map(|s| s.value.clone()))
            .build()
            .map_err(|e| one_line(&e.to_string()))
    };
    let zonal = resolve_s3(&build(false)?)?;
    let mut zonal_settings = with(&format!(
        "the SDKs' S3 endpoint rules for directory bucket '{bucket}' in {region} (zonal endpoint)"
    ));
    if let Some(s) = &settings.s3_disable_express_session_auth {
        zonal_settings.insert(0, s.describe("s3_disable_express_session_auth"));
    }
    let mut out = vec![NamedEndpoint {
        host: zonal.host.clone(),
        socket: zonal.socket,
        settings: zonal_settings,
    }];
    if let Ok(control) = resolve_s3(&build(true)?)
        && control.host != zonal.host
    {
        out.push(NamedEndpoint {
            host: control.host,
            socket: control.socket,
            settings: with(
                "the SDKs' regional endpoint for directory buckets' bucket-level calls (UseS3ExpressControlEndpoint)",
            ),
        });
    }
    Ok(out)
}

/// The DynamoDB names: the regional one and, once the account is known, the account-based
/// one the SDKs prefer (`account_id_endpoint_mode`, default preferred).
pub fn dynamodb_names(
    region: &str,
    account: Option<&str>,
    settings: &SdkSettings,
) -> Result<Vec<NamedEndpoint>, String> {
    let mode = settings
        .account_id_endpoint_mode
        .as_ref()
        .map(|s| s.value.clone())
        .unwrap_or_else(|| "preferred".into());
    let build = |account: Option<&str>| {
        aws_sdk_dynamodb::config::endpoint::Params::builder()
            .region(region)
            .use_fips(settings.fips())
            .use_dual_stack(settings.dualstack())
            .set_endpoint(
                settings
                    .endpoint_url_dynamodb
                    .as_ref()
                    .map(|s| s.value.clone()),
            )
            .set_account_id(account.map(str::to_string))
            .account_id_endpoint_mode(mode.clone())
            .build()
            .map_err(|e| one_line(&e.to_string()))
    };
    let common = settings.common(settings.endpoint_url_dynamodb.as_ref());
    let regional = resolve_ddb(&build(None)?)?;
    let mut out = vec![NamedEndpoint {
        host: regional.host.clone(),
        socket: regional.socket,
        settings: [
            common.clone(),
            vec![format!("the SDKs' DynamoDB endpoint rules in {region}")],
        ]
        .concat(),
    }];
    if let Some(account) = account
        && let Ok(based) = resolve_ddb(&build(Some(account))?)
        && based.host != regional.host
    {
        let mut s = common;
        if let Some(m) = &settings.account_id_endpoint_mode {
            s.push(m.describe("account_id_endpoint_mode"));
        }
        s.push(format!(
            "the SDKs' account-based endpoint for account {account} (account_id_endpoint_mode {mode})"
        ));
        out.push(NamedEndpoint {
            host: based.host,
            socket: based.socket,
            settings: s,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SdkSettings {
        SdkSettings {
            profile: "default".into(),
            ..SdkSettings::default()
        }
    }

    fn on(source: &str) -> Option<Setting<bool>> {
        Some(Setting {
            value: true,
            source: source.into(),
        })
    }

    fn hosts(v: Result<Vec<NamedEndpoint>, String>) -> Vec<String> {
        v.expect("names").into_iter().map(|n| n.host).collect()
    }

    #[test]
    fn classic_names() {
        let s = settings();
        assert_eq!(
            hosts(s3_names("mybucket", "eu-west-1", &s)),
            [
                "mybucket.s3.eu-west-1.amazonaws.com",
                "s3.eu-west-1.amazonaws.com"
            ]
        );
        // Dots cannot be virtual-hosted over TLS: path style on the regional name only.
        // So cannot names shorter than 3 characters (the rules send them path style too).
        assert_eq!(
            hosts(s3_names("b", "eu-west-1", &s)),
            ["s3.eu-west-1.amazonaws.com"]
        );
        assert_eq!(
            hosts(s3_names("my.bucket", "eu-west-1", &s)),
            ["s3.eu-west-1.amazonaws.com"]
        );
        assert_eq!(
            hosts(dynamodb_names("eu-west-1", Some("123456789012"), &s)),
            [
                "dynamodb.eu-west-1.amazonaws.com",
                "123456789012.ddb.eu-west-1.amazonaws.com"
            ]
        );
        assert_eq!(
            hosts(s3_names("mybucket", "cn-north-1", &s)),
            [
                "mybucket.s3.cn-north-1.amazonaws.com.cn",
                "s3.cn-north-1.amazonaws.com.cn"
            ]
        );
    }

    #[test]
    fn us_east_1_adds_botocores_global_names() {
        let s = settings();
        assert_eq!(
            hosts(s3_names("mybucket", "us-east-1", &s)),
            [
                "mybucket.s3.us-east-1.amazonaws.com",
                "mybucket.s3.amazonaws.com",
                "s3.amazonaws.com",
                "s3.us-east-1.amazonaws.com"
            ]
        );
        let mut regional = settings();
        regional.s3_us_east_1_regional = Some(Setting {
            value: "regional".into(),
            source: "AWS_S3_US_EAST_1_REGIONAL_ENDPOINT".into(),
        });
        assert_eq!(
            hosts(s3_names("mybucket", "us-east-1", &regional)),
            [
                "mybucket.s3.us-east-1.amazonaws.com",
                "s3.us-east-1.amazonaws.com"
            ]
        );
    }

    #[test]
    fn fips_and_dualstack() {
        let mut s = settings();
        s.use_fips = on("AWS_USE_FIPS_ENDPOINT");
        let names = s3_names("mybucket", "us-east-1", &s).expect("names");
        assert_eq!(names[0].host, "mybucket.s3-fips.us-east-1.amazonaws.com");
        assert!(
            names[0]
                .settings
                .contains(&"use_fips_endpoint = true (AWS_USE_FIPS_ENDPOINT)".to_string()),
            "{:?}",
            names[0].settings
        );
        assert_eq!(
            hosts(dynamodb_names("us-east-1", Some("123456789012"), &s)),
            ["dynamodb-fips.us-east-1.amazonaws.com"]
        );
        let mut s = settings();
        s.use_dualstack = on("profile prod");
        assert_eq!(
            hosts(s3_names("mybucket", "eu-west-1", &s)),
            [
                "mybucket.s3.dualstack.eu-west-1.amazonaws.com",
                "s3.dualstack.eu-west-1.amazonaws.com"
            ]
        );
        assert_eq!(
            hosts(dynamodb_names("eu-west-1", None, &s)),
            ["dynamodb.eu-west-1.api.aws"]
        );
    }

    #[test]
    fn access_points_directory_buckets_and_overrides() {
        let s = settings();
        let ap = hosts(s3_names(
            "arn:aws:s3:eu-west-1:123456789012:accesspoint/myap",
            "eu-west-1",
            &s,
        ));
        assert_eq!(
            ap[0],
            "myap-123456789012.s3-accesspoint.eu-west-1.amazonaws.com"
        );
        let express = hosts(s3_names("mybucket--euw1-az1--x-s3", "eu-west-1", &s));
        assert_eq!(
            express,
            [
                "mybucket--euw1-az1--x-s3.s3express-euw1-az1.eu-west-1.amazonaws.com",
                "s3express-control.eu-west-1.amazonaws.com"
            ]
        );
        let mut s = settings();
        s.endpoint_url_s3 = Some(Setting {
            value: "https://127.0.0.1:8443".into(),
            source: "AWS_ENDPOINT_URL_S3".into(),
        });
        assert_eq!(hosts(s3_names("mybucket", "eu-west-1", &s)), ["127.0.0.1"]);
        // The endpoint URL's port and scheme are where the calls connect.
        let named = s3_names("mybucket", "eu-west-1", &s).expect("names");
        assert_eq!(
            named[0].socket,
            NameSocket {
                port: 8443,
                tls: true
            }
        );
        s.endpoint_url_s3 = Some(Setting {
            value: "http://s3.example.internal:9000".into(),
            source: "AWS_ENDPOINT_URL_S3".into(),
        });
        let named = s3_names("mybucket", "eu-west-1", &s).expect("names");
        assert!(named.iter().all(|n| n.socket
            == NameSocket {
                port: 9000,
                tls: false
            }));
        assert_eq!(
            named[0]
                .socket
                .url(&named[0].host)
                .map(String::from)
                .as_deref(),
            Some("http://mybucket.s3.example.internal:9000/")
        );
        s.endpoint_url_s3 = Some(Setting {
            value: "https://s3.example.internal:443".into(),
            source: "AWS_ENDPOINT_URL_S3".into(),
        });
        let named = s3_names("mybucket", "eu-west-1", &s).expect("names");
        assert!(named.iter().all(|n| n.socket == NameSocket::default()));
        // Without an endpoint URL: 443 and TLS.
        let named = s3_names("mybucket", "eu-west-1", &settings()).expect("names");
        assert!(named.iter().all(|n| n.socket == NameSocket::default()));
        let mut s = settings();
        s.s3_us_east_1_regional = Some(Setting {
            value: "legacy".into(),
            source: "AWS_S3_US_EAST_1_REGIONAL_ENDPOINT".into(),
        });
        assert_eq!(
            hosts(s3_names("mybucket", "us-east-1", &s)),
            ["mybucket.s3.amazonaws.com", "s3.amazonaws.com"]
        );
    }

    #[test]
    fn directory_buckets_take_their_zonal_and_control_names_from_the_rules() {
        let s = settings();
        // No global or path-style names, in us-east-1 too; a Local Zone's id is the zone.
        assert_eq!(
            hosts(s3_names("logs--use1-az4--x-s3", "us-east-1", &s)),
            [
                "logs--use1-az4--x-s3.s3express-use1-az4.us-east-1.amazonaws.com",
                "s3express-control.us-east-1.amazonaws.com"
            ]
        );
        assert_eq!(
            hosts(s3_names("logs--usw2-lax1-az1--x-s3", "us-west-2", &s))[0],
            "logs--usw2-lax1-az1--x-s3.s3express-usw2-lax1-az1.us-west-2.amazonaws.com"
        );
        let named = s3_names("logs--usw2-az1--x-s3", "us-west-2", &s).expect("names");
        assert!(
            named[0].settings[0].contains("directory bucket 'logs--usw2-az1--x-s3'"),
            "{:?}",
            named[0].settings
        );
        assert!(named.iter().all(|n| n.socket == NameSocket::default()));
        let mut fips = settings();
        fips.use_fips = on("AWS_USE_FIPS_ENDPOINT");
        assert_eq!(
            hosts(s3_names("logs--usw2-az1--x-s3", "us-west-2", &fips))[0],
            "logs--usw2-az1--x-s3.s3express-fips-usw2-az1.us-west-2.amazonaws.com"
        );
        let mut no_session = settings();
        no_session.s3_disable_express_session_auth = on("AWS_S3_DISABLE_EXPRESS_SESSION_AUTH");
        let named = s3_names("logs--usw2-az1--x-s3", "us-west-2", &no_session).expect("names");
        assert_eq!(
            named[0].host,
            "logs--usw2-az1--x-s3.s3express-usw2-az1.us-west-2.amazonaws.com"
        );
        assert!(
            named[0].settings.contains(
                &"s3_disable_express_session_auth = true (AWS_S3_DISABLE_EXPRESS_SESSION_AUTH)"
                    .to_string()
            ),
            "{:?}",
            named[0].settings
        );
    }

    #[test]
    fn directory_bucket_names_are_parsed_or_refused_with_the_reason() {
        assert_eq!(
            directory_bucket_zone("logs--usw2-az1--x-s3"),
            Ok("usw2-az1")
        );
        assert_eq!(
            directory_bucket_zone("a--b--usw2-lax1-az1--x-s3"),
            Ok("usw2-lax1-az1")
        );
        for (name, why) in [
            ("logs--x-s3", "no zone id"),
            ("--usw2-az1--x-s3", "base name"),
            ("lo.gs--usw2-az1--x-s3", "no dots"),
            ("logs--usw2--x-s3", "not a zone id"),
            ("logs--usw2-az--x-s3", "not a zone id"),
            ("logs--usw2-azx--x-s3", "not a zone id"),
            ("logs--usw2--az1--x-s3", "not a zone id"),
            ("logs", "ends with --x-s3"),
        ] {
            let e = directory_bucket_zone(name).expect_err(name);
            assert!(e.contains(why), "{name}: {e}");
        }
    }

    #[test]
    fn sub_properties_of_a_profile_key() {
        assert_eq!(
            sub_property(
                "\naddressing_style = path\n use_dualstack_endpoint=true",
                "addressing_style"
            ),
            Some("path".into())
        );
        assert_eq!(sub_property("\nfoo = bar", "addressing_style"), None);
    }
}
