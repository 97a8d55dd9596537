//! Credentials through the SDK's default chain (environment, profile, web identity, IMDS role)
//! and the identity they stand for (STS GetCallerIdentity, which may itself have no path from
//! a private subnet: that is reported, never counted as an S3 failure).

use std::time::{Duration, Instant, SystemTime};

use aws_config::SdkConfig;
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_types::region::Region;

use crate::net::aws::provider_name;
use crate::net::aws_error::{self, FailureKind};
use crate::net::millis;
use crate::report::CredentialsEvidence;

/// The SDK's default chain, in its own order. `imds` is the run's IMDS client: the chain's
/// IMDS provider then reuses the session token the instance facts fetched instead of walking
/// IMDS from scratch (the provider, its paths and its errors are the SDK's own).
pub async fn load(
    region: &str,
    profile: Option<&str>,
    imds: Option<aws_config::imds::Client>,
    timeout: Duration,
) -> (CredentialsEvidence, Option<Credentials>) {
    let started = Instant::now();
    let mut builder = DefaultCredentialsChain::builder().region(Region::new(region.to_string()));
    if let Some(p) = profile {
        builder = builder.profile_name(p);
    }
    if let Some(client) = imds {
        builder = builder.imds_client(client);
    }
    let chain = builder.build().await;
    let mut evidence = CredentialsEvidence::default();
    let result = tokio::time::timeout(timeout * 2, chain.provide_credentials()).await;
    evidence.duration_ms = millis(started.elapsed());
    match result {
        Err(_) => {
            evidence.error = Some(format!(
                "the credential chain gave no answer within {} ms",
                (timeout * 2).as_millis()
            ));
            (evidence, None)
        }
        Ok(Err(e)) => {
            evidence.error = Some(aws_error::credentials_error(&e));
            (evidence, None)
        }
        Ok(Ok(creds)) => {
            evidence.found = true;
            evidence.source = Some(provider_name(&creds));
            evidence.access_key_id = Some(mask(creds.access_key_id()));
            if let Some(expiry) = creds.expiry() {
                evidence.expires_at = Some(crate::net::rfc3339(expiry));
                evidence.expired = expiry <= SystemTime::now();
            }
            if let Some(account) = creds.account_id() {
                evidence.account = Some(account.as_str().to_string());
            }
            (evidence, Some(creds))
        }
    }
}

/// Ask STS who we are; failures are kept as `identity_error`.
pub async fn caller_identity(
    sdk: &SdkConfig,
    evidence: &mut CredentialsEvidence,
    timeout: Duration,
) {
    let client = aws_sdk_sts::Client::new(sdk);
    let call = client.get_caller_identity().send();
    match tokio::time::timeout(timeout * 2, call).await {
        Err(_) => {
            evidence.identity_error = Some(format!(
                "STS did not answer within {} ms",
                (timeout * 2).as_millis()
            ))
        }
        Ok(Err(e)) => {
            let failure = aws_error::sdk_error("STS", &e);
            // From a private subnet STS needs an interface endpoint (or a NAT): the usual
            // reason why it never answers while S3 and DynamoDB work through their gateways.
            evidence.identity_error = Some(match failure.kind {
                FailureKind::ConnectTimeout => {
                    format!("{failure}: no STS endpoint or NAT route in this subnet?")
                }
                _ => failure.text,
            });
        }
        Ok(Ok(out)) => {
            evidence.identity_arn = out.arn().map(str::to_string);
            if let Some(a) = out.account() {
                evidence.account = Some(a.to_string());
            }
        }
    }
}

/// Access key ids are not secret, but there is no reason to print them whole.
fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let hidden = chars.len().saturating_sub(4);
    let tail: String = chars[hidden..].iter().collect();
    format!("{}{tail}", "*".repeat(hidden.min(16)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn access_keys_are_masked() {
        assert_eq!(super::mask("ASIAFAKEIMDSEXAMPLE1"), "****************PLE1");
        assert_eq!(super::mask("ab"), "ab");
        assert_eq!(super::mask("ééééé"), "*éééé");
    }
}
