//! Credentials, the signed AWS calls, and the canary.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Service;

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct CredentialsEvidence {
    pub found: bool,
    /// The provider of the default chain that supplied them (Environment, Profile, WebIdentityToken, Ec2InstanceMetadata...).
    pub source: Option<String>,
    /// The access key id with all but its last 4 characters masked.
    pub access_key_id: Option<String>,
    pub expires_at: Option<String>,
    pub expired: bool,
    pub error: Option<String>,
    /// STS GetCallerIdentity: who the calls are made as.
    pub identity_arn: Option<String>,
    pub account: Option<String>,
    /// Why GetCallerIdentity failed (often: no STS path from a private subnet; not an S3 failure).
    pub identity_error: Option<String>,
    pub duration_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CallOutcome {
    /// 2xx.
    Ok,
    /// The service (or something speaking for it) answered with an error.
    ServiceError,
    Timeout,
    /// No connection (refused, unreachable, TLS, proxy).
    ConnectionFailed,
    /// Not attempted; `error` says why.
    Skipped,
    Error,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct CallResult {
    pub service: Service,
    /// "s3:bucket", "dynamodb:table", or "host" for STS.
    pub target: String,
    /// e.g. "HeadBucket", "DescribeTable (account endpoint)".
    pub operation: String,
    /// IAM action the call needs, e.g. "s3:ListBucket".
    pub action: String,
    pub endpoint_host: Option<String>,
    /// The address the call was sent to (the name was pinned to it), when not through a proxy.
    pub peer: Option<String>,
    /// The proxy the SDK sent the call through, redacted.
    pub proxy: Option<String>,
    pub status: Option<u16>,
    pub outcome: CallOutcome,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// Response headers that show who answered (request ids, Server, Via, Date...).
    pub headers: std::collections::BTreeMap<String, String>,
    pub finding: Option<crate::catalogue::FindingCode>,
    pub denial: Option<crate::denial::Denial>,
    pub bucket_region: Option<String>,
    /// Server clock minus local clock, from the Date header.
    pub clock_offset_secs: Option<i64>,
    /// A short result, e.g. the bucket's location or the table's status.
    pub detail: Option<String>,
    pub duration_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct CanaryResult {
    pub target: String,
    pub addresses: Vec<String>,
    pub outcome: CanaryOutcome,
    pub error: Option<String>,
    pub connect_ms: u64,
    /// How long each connect was waited for (`--silence-timeout`): a canary that connects
    /// later is reported unreachable. Absent in reports from before the bound existed.
    #[serde(default)]
    pub connect_timeout_ms: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CanaryOutcome {
    /// A TCP connection completed: the instance has a path to the internet.
    Reachable,
    /// No connection: no direct internet path (or the canary host is down).
    Unreachable,
    /// The canary name did not resolve.
    NotResolved,
}
