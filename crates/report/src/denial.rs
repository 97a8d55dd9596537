//! What an access-denied message says, as the report carries it (classify.rs reads the messages).

/// The policy type an access-denied message names.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyType {
    Identity,
    /// Bucket, access point or table policies; also role trust policies, which IAM counts
    /// as resource-based.
    Resource,
    VpcEndpoint,
    PermissionsBoundary,
    Session,
    ServiceControl,
    ResourceControl,
}

/// What an access-denied message says about the denial.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Denial {
    /// None: a bare "Access Denied" (or a reason that is not a policy) that names no policy.
    pub policy: Option<PolicyType>,
    /// "with an explicit deny in a ... policy" (true) vs "because no ... policy allows" (false).
    pub explicit: bool,
    /// e.g. "arn:aws:sts::123456789012:assumed-role/r/i-0abc".
    pub principal: Option<String>,
    /// e.g. "s3:GetObject".
    pub action: Option<String>,
    /// e.g. "arn:aws:s3:::b/k" (quotes stripped).
    pub resource: Option<String>,
    /// The optional ": arn:..." after the policy type, naming the denying policy.
    pub policy_arn: Option<String>,
}
