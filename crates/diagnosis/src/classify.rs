//! Turns what AWS answered to one signed call into a finding: pure functions, no I/O.
//!
//! Everything here reads text that came from the network (or from something on the path
//! pretending to be AWS), so nothing may panic, whatever the input: slicing only happens at
//! offsets of ASCII matches in an ASCII-lowercased copy, which keeps byte offsets and char
//! boundaries identical to the original.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::catalogue::FindingCode;
use crate::report::Service;

/// What came back from one call: the HTTP status, the service's error code and message if
/// any, and the response headers (names lowercased).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorInfo {
    pub status: u16,
    pub code: Option<String>,
    pub message: Option<String>,
    pub headers: BTreeMap<String, String>,
}

pub use vpce_probe_report::denial::{Denial, PolicyType};

/// What one response means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Classified {
    Ok,
    AccessDenied(Denial),
    /// S3 301 PermanentRedirect, 307 TemporaryRedirect, IllegalLocationConstraintException,
    /// a 400 carrying x-amz-bucket-region, or a 400 whose message says the region is wrong.
    WrongRegion {
        bucket_region: Option<String>,
    },
    BucketNotFound,
    TableNotFound,
    ClockSkew,
    ExpiredCredentials,
    InvalidCredentials,
    Throttled,
    ServerError,
    Other,
}

/// AWS rejects signatures more than 5 minutes off (S3 and DynamoDB; 15 minutes for some
/// services): the threshold to report CLOCK_SKEW from the Date header alone.
pub const CLOCK_SKEW_LIMIT_SECS: i64 = 300;

/// Policy-type phrases as they appear after "with an explicit deny in a/an/the" or
/// "because no", lowercased. Longest first where one is a prefix of another.
const POLICY_PHRASES: &[(&str, PolicyType)] = &[
    ("identity-based policy", PolicyType::Identity),
    ("identity based policy", PolicyType::Identity),
    ("resource-based policy", PolicyType::Resource),
    ("resource based policy", PolicyType::Resource),
    ("vpc endpoint policy", PolicyType::VpcEndpoint),
    ("vpc endpoint", PolicyType::VpcEndpoint),
    ("permissions boundary", PolicyType::PermissionsBoundary),
    ("permission boundary", PolicyType::PermissionsBoundary),
    // The IAM guide's own example reads "with an explicit deny in a sessions policy".
    ("sessions policy", PolicyType::Session),
    ("session policy", PolicyType::Session),
    ("service control policy", PolicyType::ServiceControl),
    ("resource control policy", PolicyType::ResourceControl),
    // IAM: "a role trust policy is a resource-based policy".
    ("role trust policy", PolicyType::Resource),
    ("trust policy", PolicyType::Resource),
];

/// Parse an AWS access-denied message; None when the message is not an access denial.
///
/// Understands the enhanced form
/// `User: <principal> is not authorized to perform: <action> [on resource: <resource>]
/// (because no <type> policy allows the <action> action | with an explicit deny in a <type>
/// policy[: <arn>])`, with the resource quoted (S3) or not (DynamoDB, IAM), with or without
/// a trailing period, wrapped over several lines, behind an SDK prefix such as
/// "An error occurred (AccessDenied) when calling the GetObject operation: ", and the older
/// forms without a reason. A bare "Access Denied" (any case) gives a denial naming nothing.
pub fn parse_denial(message: &str) -> Option<Denial> {
    // A message that went through a Debug formatter (an SDK error's context chain) has its
    // quotes escaped; no service message contains a literal backslash-quote.
    let text = normalize_space(&message.replace("\\\"", "\""));
    let lower = text.to_ascii_lowercase();

    const PERFORM: &str = "is not authorized to perform";
    if let Some(at) = lower.find(PERFORM) {
        let mut d = Denial {
            principal: principal_before(&text, &lower, at),
            ..Denial::default()
        };
        // What follows "perform", without the colon.
        let mut pos = at + PERFORM.len();
        pos = skip_prefix(&lower, pos, ":");
        pos = skip_spaces(&lower, pos);

        let (token, end) = token_at(&text, pos);
        if is_action(token) {
            d.action = Some(trim_token(token).to_string());
            pos = skip_spaces(&lower, end);
        }

        const ON_RESOURCE: &str = "on resource";
        if lower[pos..].starts_with(ON_RESOURCE) {
            let mut rpos = pos + ON_RESOURCE.len();
            rpos = skip_prefix(&lower, rpos, "(s)");
            rpos = skip_prefix(&lower, rpos, ":");
            rpos = skip_spaces(&lower, rpos);
            let (resource, end) = resource_at(&text, rpos);
            d.resource = resource;
            pos = end;
        }

        read_reason(&text, &lower, pos, &mut d);
        return Some(d);
    }

    // Older and shorter forms that still say "denied".
    const BARE: &[&str] = &[
        "access denied",
        "accessdenied",
        "access is denied",
        "not authorized to perform",
    ];
    if BARE.iter().any(|p| lower.contains(p)) {
        return Some(Denial::default());
    }
    None
}

/// The finding code of a denial.
pub fn denial_code(d: &Denial) -> FindingCode {
    match d.policy {
        Some(PolicyType::Identity) => FindingCode::ACCESS_DENIED_IDENTITY_POLICY,
        Some(PolicyType::Resource) => FindingCode::ACCESS_DENIED_RESOURCE_POLICY,
        Some(PolicyType::VpcEndpoint) => FindingCode::ACCESS_DENIED_VPCE_POLICY,
        Some(PolicyType::PermissionsBoundary) => FindingCode::ACCESS_DENIED_PERMISSIONS_BOUNDARY,
        Some(PolicyType::Session) => FindingCode::ACCESS_DENIED_SESSION_POLICY,
        Some(PolicyType::ServiceControl) => FindingCode::ACCESS_DENIED_SCP,
        Some(PolicyType::ResourceControl) => FindingCode::ACCESS_DENIED_RCP,
        None => FindingCode::ACCESS_DENIED_UNATTRIBUTED,
    }
}

/// Classify a response.
///
/// Order matters: clock skew and expired tokens come first because S3 answers them with 403
/// like a denial but they need other fixes; then the wrong region (before invalid
/// credentials, as AuthorizationHeaderMalformed is either), invalid credentials, not-found,
/// denial, throttling and server errors; last, an unknown code whose message is still a
/// policy denial. IllegalLocationConstraintException counts as the wrong region even
/// without x-amz-bucket-region: S3 documents it as "accessing a bucket from a different
/// Region than where the bucket exists". Bodiless answers (HeadBucket) are read from the status and headers: 301 or
/// 307 is a redirect to the bucket's region, 400 with x-amz-bucket-region too, 403 a denial
/// that names nothing, 404 a missing bucket (callers of object-level HEADs, whose bodiless
/// 404 means a missing key, must not bring those here).
pub fn classify(service: Service, info: &ErrorInfo) -> Classified {
    let code = error_code(info);
    let code = code.as_deref();
    let is = |names: &[&str]| code_is(code, names);
    let message = info.message.as_deref().unwrap_or("");
    let lower = normalize_space(message).to_ascii_lowercase();
    let header_region = info
        .headers
        .get("x-amz-bucket-region")
        .map(|r| r.trim())
        .filter(|r| !r.is_empty() && r.len() <= 64)
        .map(str::to_string);

    if code.is_none() && (200..300).contains(&info.status) {
        return Classified::Ok;
    }

    if let Some(c) = out_of_time(code, &lower) {
        return c;
    }

    // Region. S3 names the bucket's region in x-amz-bucket-region; an
    // AuthorizationHeaderMalformed names it in the message.
    let message_region = expected_region(message);
    if info.status == 400 && lower.contains("is wrong; expecting") {
        return Classified::WrongRegion {
            bucket_region: header_region.or(message_region),
        };
    }
    if service.s3_api()
        && (matches!(info.status, 301 | 307)
            || is(&[
                "PermanentRedirect",
                "TemporaryRedirect",
                "IllegalLocationConstraintException",
            ])
            || (info.status == 400 && header_region.is_some()))
    {
        return Classified::WrongRegion {
            bucket_region: header_region.or(message_region),
        };
    }

    if is(&[
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "IncompleteSignature",
        "IncompleteSignatureException",
        "AuthorizationHeaderMalformed",
        "InvalidToken",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
    ]) {
        return Classified::InvalidCredentials;
    }

    if is(&["NoSuchBucket"]) {
        return Classified::BucketNotFound;
    }
    if is(&["ResourceNotFoundException"]) {
        return Classified::TableNotFound;
    }
    if service.s3_api() && code.is_none() && info.status == 404 {
        return Classified::BucketNotFound;
    }

    if is(&["AccessDenied", "AccessDeniedException", "AllAccessDisabled"])
        || (code.is_none() && info.status == 403)
    {
        return Classified::AccessDenied(parse_denial(message).unwrap_or_default());
    }

    if let Some(c) = transient(code, info.status) {
        return c;
    }

    // An unexpected code whose message is still a policy denial.
    if let Some(d) = parse_denial(message).filter(|d| d.action.is_some() || d.policy.is_some()) {
        return Classified::AccessDenied(d);
    }
    Classified::Other
}

fn code_is(code: Option<&str>, names: &[&str]) -> bool {
    code.is_some_and(|c| names.iter().any(|n| c.eq_ignore_ascii_case(n)))
}

/// A signature the clock made invalid, or expired credentials: S3 answers both with 403 like
/// a denial, but they need other fixes. S3 says RequestTimeTooSkewed; DynamoDB's
/// InvalidSignatureException and STS's SignatureDoesNotMatch both say "Signature expired" /
/// "Signature not yet current".
fn out_of_time(code: Option<&str>, lower_message: &str) -> Option<Classified> {
    let says = |texts: &[&str]| texts.iter().any(|t| lower_message.contains(t));
    if code_is(code, &["RequestTimeTooSkewed", "RequestExpired"]) || says(SKEW_TEXTS) {
        return Some(Classified::ClockSkew);
    }
    if code_is(code, &["ExpiredToken", "ExpiredTokenException"])
        || says(&[
            "security token included in the request is expired",
            "security token included in the request has expired",
            "provided token has expired",
        ])
    {
        return Some(Classified::ExpiredCredentials);
    }
    None
}

/// What AWS's answers say when the request time is off (lowercase): DynamoDB's and STS's
/// "Signature expired" / "Signature not yet current", S3's RequestTimeTooSkewed message.
const SKEW_TEXTS: &[&str] = &[
    "signature expired",
    "signature not yet current",
    "difference between the request time and the current time",
    "requesttimetooskewed",
];

/// Whether an error text (an SDK failure's, e.g. STS's SignatureDoesNotMatch) says that the
/// request time was off.
pub fn says_clock_skew(text: &str) -> bool {
    let lower = normalize_space(text).to_ascii_lowercase();
    SKEW_TEXTS.iter().any(|t| lower.contains(t))
}

/// Throttling and server errors: worth a retry, and no finding of their own.
fn transient(code: Option<&str>, status: u16) -> Option<Classified> {
    if code_is(
        code,
        &[
            "SlowDown",
            "Throttling",
            "ThrottlingException",
            "ThrottledException",
            "ProvisionedThroughputExceededException",
            "RequestLimitExceeded",
            "RequestThrottled",
            "RequestThrottledException",
            "TooManyRequestsException",
            "LimitExceededException",
        ],
    ) || matches!(status, 429 | 503)
    {
        return Some(Classified::Throttled);
    }
    if code_is(
        code,
        &[
            "InternalError",
            "InternalFailure",
            "InternalServerError",
            "InternalServerException",
            "ServiceUnavailable",
        ],
    ) || (500..600).contains(&status)
    {
        return Some(Classified::ServerError);
    }
    None
}

/// The finding code for a Classified. None for Ok, Throttled, ServerError and Other, and for
/// InvalidCredentials (a credential the service does not recognise has no catalogue code;
/// NO_CREDENTIALS is a client-side failure and is never produced here).
pub fn finding_code(c: &Classified) -> Option<FindingCode> {
    match c {
        Classified::AccessDenied(d) => Some(denial_code(d)),
        Classified::WrongRegion { .. } => Some(FindingCode::WRONG_REGION_REDIRECT),
        Classified::BucketNotFound => Some(FindingCode::BUCKET_NOT_FOUND),
        Classified::TableNotFound => Some(FindingCode::TABLE_NOT_FOUND),
        Classified::ClockSkew => Some(FindingCode::CLOCK_SKEW),
        Classified::ExpiredCredentials => Some(FindingCode::CREDENTIALS_EXPIRED),
        Classified::Ok
        | Classified::InvalidCredentials
        | Classified::Throttled
        | Classified::ServerError
        | Classified::Other => None,
    }
}

/// Seconds the server's clock is ahead (+) or behind (-) the local clock, from an HTTP Date
/// header (IMF-fixdate, RFC 850 or asctime). None if unparsable.
pub fn clock_offset_secs(date_header: &str, local: SystemTime) -> Option<i64> {
    let server = httpdate::parse_http_date(date_header.trim()).ok()?;
    match server.duration_since(local) {
        Ok(ahead) => i64::try_from(ahead.as_secs()).ok(),
        Err(behind) => i64::try_from(behind.duration().as_secs()).ok().map(|s| -s),
    }
}

// ---- helpers ---------------------------------------------------------------------------

/// Collapse every run of whitespace (newlines from wrapped docs and logs included) to one
/// space and trim the ends.
fn normalize_space(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// The error code, from the parsed body or, failing that, DynamoDB's x-amzn-errortype
/// header; "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException" and
/// "AccessDeniedException:http://internal.amazon.com/..." both reduce to the bare name.
fn error_code(info: &ErrorInfo) -> Option<String> {
    let raw = info
        .code
        .as_deref()
        .or_else(|| info.headers.get("x-amzn-errortype").map(String::as_str))?;
    let after_hash = raw.rsplit('#').next().unwrap_or(raw);
    let name = after_hash.split(':').next().unwrap_or(after_hash).trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// The region in "...; expecting 'eu-west-1'".
fn expected_region(message: &str) -> Option<String> {
    let lower = message.to_ascii_lowercase();
    const KEY: &str = "expecting '";
    let start = lower.find(KEY)? + KEY.len();
    let len = message[start..].find('\'')?;
    let region = message[start..start + len].trim();
    let plausible = !region.is_empty()
        && region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    plausible.then(|| region.to_string())
}

fn skip_spaces(lower: &str, mut pos: usize) -> usize {
    while lower.as_bytes().get(pos) == Some(&b' ') {
        pos += 1;
    }
    pos
}

fn skip_prefix(lower: &str, pos: usize, prefix: &str) -> usize {
    if lower[pos..].starts_with(prefix) {
        pos + prefix.len()
    } else {
        pos
    }
}

/// The space-delimited token at `pos` and the offset just past it.
fn token_at(text: &str, pos: usize) -> (&str, usize) {
    let len = text[pos..].find(' ').unwrap_or(text.len() - pos);
    (&text[pos..pos + len], pos + len)
}

/// Strip quotes and sentence punctuation around a token.
fn trim_token(token: &str) -> &str {
    token
        .trim_matches(|c| matches!(c, '"' | '\'' | '`' | '\u{201c}' | '\u{201d}'))
        .trim_end_matches(['.', ',', ';'])
        .trim_matches(|c| matches!(c, '"' | '\'' | '`' | '\u{201c}' | '\u{201d}'))
}

/// "s3:GetObject", "SNS:Publish", "dynamodb:DescribeTable": service prefix, colon, name.
fn is_action(token: &str) -> bool {
    let t = trim_token(token);
    match t.split_once(':') {
        Some((svc, name)) => {
            !svc.is_empty()
                && !name.is_empty()
                && !t.starts_with("arn:")
                && svc
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }
        None => false,
    }
}

/// The resource after "on resource:", quoted (S3, may hold spaces) or a single token.
fn resource_at(text: &str, pos: usize) -> (Option<String>, usize) {
    let rest = &text[pos..];
    for (open, close) in [('"', '"'), ('\u{201c}', '\u{201d}')] {
        if let Some(inner) = rest.strip_prefix(open)
            && let Some(len) = inner.find(close)
        {
            let value = inner[..len].trim();
            let end = pos + open.len_utf8() + len + close.len_utf8();
            return ((!value.is_empty()).then(|| value.to_string()), end);
        }
    }
    let (token, end) = token_at(text, pos);
    let value = trim_token(token);
    let is_reason_word = matches!(
        value.to_ascii_lowercase().as_str(),
        "because" | "with" | "" | "due"
    );
    if is_reason_word {
        (None, pos)
    } else {
        (Some(value.to_string()), end)
    }
}

/// The principal between "User:" and "is not authorized"; None for "User is not authorized".
fn principal_before(text: &str, lower: &str, at: usize) -> Option<String> {
    let head = &lower[..at];
    let start = if let Some(i) = head.rfind("user:") {
        i + "user:".len()
    } else {
        // "User <arn> is not authorized" without the colon (S3's format description).
        let i = head.rfind("user ")?;
        let word_start = i == 0 || head.as_bytes().get(i - 1) == Some(&b' ');
        if !word_start {
            return None;
        }
        i + "user ".len()
    };
    // Only quotes: a role session name may end with a period, and no sentence ends here.
    let principal = text[start..at]
        .trim()
        .trim_matches(|c| matches!(c, '"' | '\'' | '`' | '\u{201c}' | '\u{201d}'));
    (!principal.is_empty()).then(|| principal.to_string())
}

/// Read the reason clause at or after `pos`: "with an explicit deny in a <type>[: <arn>]",
/// "because no <type> allows the <action> action", and an optional
/// "transitively through a <type>", which names the policy that really denied.
fn read_reason(text: &str, lower: &str, pos: usize, d: &mut Denial) {
    let tail = &lower[pos..];
    const EXPLICIT: &str = "with an explicit deny in ";
    const IMPLICIT: &str = "because no ";
    let explicit_at = tail.find(EXPLICIT);
    let implicit_at = tail.find(IMPLICIT);
    let (clause_at, explicit) = match (explicit_at, implicit_at) {
        (Some(e), Some(i)) if i < e => (pos + i + IMPLICIT.len(), false),
        (Some(e), _) => (pos + e + EXPLICIT.len(), true),
        (None, Some(i)) => (pos + i + IMPLICIT.len(), false),
        (None, None) => return,
    };
    d.explicit = explicit;
    let Some((policy, after)) = policy_phrase_at(lower, clause_at) else {
        return;
    };
    d.policy = Some(policy);
    d.policy_arn = policy_arn_at(text, lower, after);

    if !explicit && d.action.is_none() {
        // "because no ... allows the codecommit:ListRepositories action"
        let mut p = skip_spaces(lower, after);
        p = skip_prefix(lower, p, "allows the ");
        let (token, _) = token_at(text, p);
        if is_action(token) {
            d.action = Some(trim_token(token).to_string());
        }
    }

    const THROUGH: &str = "transitively through ";
    if let Some(i) = lower[after..].find(THROUGH)
        && let Some((through, after_through)) = policy_phrase_at(lower, after + i + THROUGH.len())
    {
        d.policy = Some(through);
        d.policy_arn = policy_arn_at(text, lower, after_through);
    }
}

/// The policy type named at `pos` (after an optional article) and the offset past its phrase.
fn policy_phrase_at(lower: &str, pos: usize) -> Option<(PolicyType, usize)> {
    let mut p = pos;
    for article in ["a ", "an ", "the "] {
        if lower[p..].starts_with(article) {
            p += article.len();
            break;
        }
    }
    let (phrase, policy) = POLICY_PHRASES
        .iter()
        .find(|(phrase, _)| lower[p..].starts_with(phrase))?;
    let mut end = p + phrase.len();
    // "permissions boundary policy", "VPC endpoint policy" already consumed.
    end = skip_prefix(lower, end, " policy");
    Some((*policy, end))
}

/// ": arn:aws:iam::aws:policy/Name" right after the policy phrase.
fn policy_arn_at(text: &str, lower: &str, pos: usize) -> Option<String> {
    let rest = lower.get(pos..)?;
    if !rest.starts_with(':') {
        return None;
    }
    let p = skip_spaces(lower, pos + 1);
    let (token, _) = token_at(text, p);
    let arn = trim_token(token).trim_end_matches(')');
    arn.get(..4)
        .is_some_and(|a| a.eq_ignore_ascii_case("arn:"))
        .then(|| arn.to_string())
}

#[cfg(test)]
mod tests {
    //! Messages are quoted verbatim from the sources named above each group, line breaks
    //! included where the source wraps them (the parser must not care). Sources:
    //! - [IAM] IAM User Guide, "Troubleshoot access denied error messages", section
    //!   "Access denied error message examples"
    //!   (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html,
    //!   formerly access_denied_error_messages.html).
    //! - [IAM-AUTHZ] IAM User Guide, "Troubleshoot access denied error messages with
    //!   authorization ID (Preview)"
    //!   (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied-authorization-id.html).
    //! - [S3-403] Amazon S3 User Guide, "Troubleshoot access denied (403 Forbidden) errors in
    //!   Amazon S3", section "Access denied message examples and how to troubleshoot them"
    //!   (https://docs.aws.amazon.com/AmazonS3/latest/userguide/troubleshoot-403-errors.html).
    //! - [S3-IAM] Amazon S3 User Guide, "Troubleshooting Amazon S3 identity and access"
    //!   (https://docs.aws.amazon.com/AmazonS3/latest/userguide/security_iam_troubleshoot.html).
    //! - [WILD] Real service answers as pasted into public GitHub repositories (troubleshooting
    //!   notes, CTF write-ups, issue logs), found with the code search; each is marked.
    //! - [S3-ERR] Amazon S3 API Reference, "Error responses" list of codes and descriptions
    //!   (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html).
    //! - [DDB-ERR] DynamoDB Developer Guide, "Error handling with DynamoDB"
    //!   (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html).

    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    use PolicyType::*;

    const S3_OBJECT: &str = "arn:aws:s3:::amzn-s3-demo-bucket1/object-name";
    const DEPLOYMENT_GROUP: &str = "arn:aws:codedeploy:us-east-1:123456789012:deploymentgroup:*";
    const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:*";
    const JOHN_123: &str = "arn:aws:iam::123456789012:user/John";
    const JOHN_777: &str = "arn:aws:iam::777788889999:user/John";
    const MARY_123: &str = "arn:aws:iam::123456789012:user/MaryMajor";
    const MARY_777: &str = "arn:aws:iam::777788889999:user/MaryMajor";
    const HR: &str = "arn:aws:iam::123456789012:role/HR";

    /// One expected parse: (policy, explicit, principal, action, resource, policy_arn).
    type Want = (
        Option<PolicyType>,
        bool,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
    );

    fn want(w: Want) -> Denial {
        let s = |v: Option<&str>| v.map(str::to_string);
        Denial {
            policy: w.0,
            explicit: w.1,
            principal: s(w.2),
            action: s(w.3),
            resource: s(w.4),
            policy_arn: s(w.5),
        }
    }

    /// Every policy type, implicit and explicit, from the two AWS guides.
    fn documented() -> Vec<(&'static str, &'static str, Want)> {
        vec![
            // ---- [IAM] -------------------------------------------------------------------
            (
                "IAM: SCP, implicit (the guide's own typo in the because-clause action)",
                "User: arn:aws:iam::777788889999:user/John is not authorized to perform:\ncodecommit:ListRepositories because no service control policy allows the codecommit:ListRespositories action",
                (
                    Some(ServiceControl),
                    false,
                    Some(JOHN_777),
                    Some("codecommit:ListRepositories"),
                    None,
                    None,
                ),
            ),
            (
                "IAM: SCP, explicit",
                "User: arn:aws:iam::777788889999:user/John is not authorized to perform:\ncodecommit:ListRepositories with an explicit deny in a service control policy",
                (
                    Some(ServiceControl),
                    true,
                    Some(JOHN_777),
                    Some("codecommit:ListRepositories"),
                    None,
                    None,
                ),
            ),
            (
                "IAM: RCP, explicit",
                "User: arn:aws:iam::123456789012:user/John is not authorized to perform:\nsecretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:us-east-1:123456789012:secret:* with an explicit deny in a resource control policy",
                (
                    Some(ResourceControl),
                    true,
                    Some(JOHN_123),
                    Some("secretsmanager:GetSecretValue"),
                    Some(SECRET),
                    None,
                ),
            ),
            (
                "IAM: VPC endpoint, implicit",
                "User: arn:aws:iam::123456789012:user/John is not authorized to perform:\ncodecommit:ListRepositories because no VPC endpoint policy allows the codecommit:ListRepositories action",
                (
                    Some(VpcEndpoint),
                    false,
                    Some(JOHN_123),
                    Some("codecommit:ListRepositories"),
                    None,
                    None,
                ),
            ),
            (
                "IAM: VPC endpoint, explicit",
                "User: arn:aws:iam::123456789012:user/John is not authorized to perform:\ncodedeploy:ListDeployments on resource: arn:aws:codedeploy:us-east-1:123456789012:deploymentgroup:* with an explicit deny in a VPC endpoint policy",
                (
                    Some(VpcEndpoint),
                    true,
                    Some(JOHN_123),
                    Some("codedeploy:ListDeployments"),
                    Some(DEPLOYMENT_GROUP),
                    None,
                ),
            ),
            (
                "IAM: permissions boundary, implicit",
                "User: arn:aws:iam::123456789012:user/John is not authorized to perform:\ncodedeploy:ListDeployments on resource: arn:aws:codedeploy:us-east-1:123456789012:deploymentgroup:* because no permissions boundary allows the codedeploy:ListDeployments action",
                (
                    Some(PermissionsBoundary),
                    false,
                    Some(JOHN_123),
                    Some("codedeploy:ListDeployments"),
                    Some(DEPLOYMENT_GROUP),
                    None,
                ),
            ),
            (
                "IAM: permissions boundary, explicit",
                "User: arn:aws:iam::777788889999:user/John is not authorized to perform:\nsagemaker:ListModels with an explicit deny in a permissions boundary",
                (
                    Some(PermissionsBoundary),
                    true,
                    Some(JOHN_777),
                    Some("sagemaker:ListModels"),
                    None,
                    None,
                ),
            ),
            (
                "IAM: session policy, implicit",
                "User: arn:aws:iam::123456789012:user/John is not authorized to perform:\ncodecommit:ListRepositories because no session policy allows the codecommit:ListRepositories action",
                (
                    Some(Session),
                    false,
                    Some(JOHN_123),
                    Some("codecommit:ListRepositories"),
                    None,
                    None,
                ),
            ),
            (
                "IAM: session policy, explicit (the guide writes 'sessions policy')",
                "User: arn:aws:iam::123456789012:user/John is not authorized to perform:\ncodedeploy:ListDeployments on resource: arn:aws:codedeploy:us-east-1:123456789012:deploymentgroup:* with an explicit deny in a sessions policy",
                (
                    Some(Session),
                    true,
                    Some(JOHN_123),
                    Some("codedeploy:ListDeployments"),
                    Some(DEPLOYMENT_GROUP),
                    None,
                ),
            ),
            (
                "IAM: resource-based, implicit",
                "User: arn:aws:iam::123456789012:user/John is not authorized to perform:\nsecretsmanager:GetSecretValue because no resource-based policy allows the secretsmanager:GetSecretValue action",
                (
                    Some(Resource),
                    false,
                    Some(JOHN_123),
                    Some("secretsmanager:GetSecretValue"),
                    None,
                    None,
                ),
            ),
            (
                "IAM: resource-based, explicit",
                "User: arn:aws:iam::123456789012:user/John is not authorized to perform:\nsecretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:us-east-1:123456789012:secret:* with an explicit deny in a resource-based policy",
                (
                    Some(Resource),
                    true,
                    Some(JOHN_123),
                    Some("secretsmanager:GetSecretValue"),
                    Some(SECRET),
                    None,
                ),
            ),
            (
                "IAM: role trust policy (STS), implicit; a trust policy is resource-based",
                "User: arn:aws:iam::123456789012:user/John is not authorized to perform:\nsts:AssumeRole because no role trust policy allows the sts:AssumeRole action",
                (
                    Some(Resource),
                    false,
                    Some(JOHN_123),
                    Some("sts:AssumeRole"),
                    None,
                    None,
                ),
            ),
            (
                "IAM: role trust policy (STS), explicit, 'in the'",
                "User: arn:aws:iam::777788889999:user/John is not authorized to perform:\nsts:AssumeRole with an explicit deny in the role trust policy",
                (
                    Some(Resource),
                    true,
                    Some(JOHN_777),
                    Some("sts:AssumeRole"),
                    None,
                    None,
                ),
            ),
            (
                "IAM: identity-based, implicit",
                "User: arn:aws:iam::123456789012:role/HR is not authorized to perform:\ncodecommit:ListRepositories because no identity-based policy allows the codecommit:ListRepositories action",
                (
                    Some(Identity),
                    false,
                    Some(HR),
                    Some("codecommit:ListRepositories"),
                    None,
                    None,
                ),
            ),
            (
                "IAM: identity-based, explicit, 'in an'",
                "User: arn:aws:iam::123456789012:role/HR is not authorized to perform:\ncodedeploy:ListDeployments on resource: arn:aws:codedeploy:us-east-1:123456789012:deploymentgroup:* with an explicit deny in an identity-based policy",
                (
                    Some(Identity),
                    true,
                    Some(HR),
                    Some("codedeploy:ListDeployments"),
                    Some(DEPLOYMENT_GROUP),
                    None,
                ),
            ),
            (
                "IAM: denied through a VPC endpoint 'transitively through' an SCP: the SCP is what to fix",
                "User: arn:aws:sts::111122223333:assumed-role/role-name/role-session-name is not authorized to perform:\nSNS:Publish on resource: arn:aws:sns:us-east-1:444455556666:role-name-2\nwith an explicit deny in a VPC endpoint policy transitively through a service control policy",
                (
                    Some(ServiceControl),
                    true,
                    Some("arn:aws:sts::111122223333:assumed-role/role-name/role-session-name"),
                    Some("SNS:Publish"),
                    Some("arn:aws:sns:us-east-1:444455556666:role-name-2"),
                    None,
                ),
            ),
            // ---- [IAM-AUTHZ]: the ": <policy arn>" suffix, then more sentences ---------------
            (
                "IAM-AUTHZ: identity-based, explicit, with the policy ARN and a console link",
                "User: arn:aws:iam::123456789012:user/janedoe is not authorized to perform: iam:CreateInstanceProfile\non resource: arn:aws:iam::123456789012:instance-profile/my-instance-profile\nwith an explicit deny in an identity-based policy: arn:aws:iam::123456789012:policy/ExampleDenyPolicy.\nGo to https://us-east-1.console.aws.amazon.com/iam/home?region=us-east-1#/authorization-details/EXAMPLE1a2b3c4d5e6f7g8h9i0j for complete details,\nor call the GetRequestAuthorizationDetails API with the following authorization id: EXAMPLE1a2b3c4d5e6f7g8h9i0j",
                (
                    Some(Identity),
                    true,
                    Some("arn:aws:iam::123456789012:user/janedoe"),
                    Some("iam:CreateInstanceProfile"),
                    Some("arn:aws:iam::123456789012:instance-profile/my-instance-profile"),
                    Some("arn:aws:iam::123456789012:policy/ExampleDenyPolicy"),
                ),
            ),
            // ---- [S3-403]: quoted resources ------------------------------------------------
            (
                "S3-403: RCP, explicit, behind the AWS CLI's prefix",
                "An error occurred (AccessDenied) when calling the GetObject operation:\nUser: arn:aws:iam::777788889999:user/MaryMajor is not authorized to perform:\ns3:GetObject on resource: \"arn:aws:s3:::amzn-s3-demo-bucket1/object-name\"\nwith an explicit deny in a resource control policy",
                (
                    Some(ResourceControl),
                    true,
                    Some(MARY_777),
                    Some("s3:GetObject"),
                    Some(S3_OBJECT),
                    None,
                ),
            ),
            (
                "S3-403: SCP, implicit",
                "User: arn:aws:iam::777788889999:user/MaryMajor is not authorized to perform:\ns3:GetObject because no service control policy allows the s3:GetObject action",
                (
                    Some(ServiceControl),
                    false,
                    Some(MARY_777),
                    Some("s3:GetObject"),
                    None,
                    None,
                ),
            ),
            (
                "S3-403: SCP, explicit",
                "User: arn:aws:iam::777788889999:user/MaryMajor is not authorized to perform:\ns3:GetObject with an explicit deny in a service control policy",
                (
                    Some(ServiceControl),
                    true,
                    Some(MARY_777),
                    Some("s3:GetObject"),
                    None,
                    None,
                ),
            ),
            (
                "S3-403: VPC endpoint, implicit",
                "User: arn:aws:iam::123456789012:user/MaryMajor is not authorized to perform:\ns3:GetObject because no VPC endpoint policy allows the s3:GetObject action",
                (
                    Some(VpcEndpoint),
                    false,
                    Some(MARY_123),
                    Some("s3:GetObject"),
                    None,
                    None,
                ),
            ),
            (
                "S3-403: VPC endpoint, explicit (wrapped inside 'with\\nan explicit deny')",
                "User: arn:aws:iam::123456789012:user/MaryMajor is not authorized to perform:\ns3:GetObject on resource: \"arn:aws:s3:::amzn-s3-demo-bucket1/object-name\" with\nan explicit deny in a VPC endpoint policy",
                (
                    Some(VpcEndpoint),
                    true,
                    Some(MARY_123),
                    Some("s3:GetObject"),
                    Some(S3_OBJECT),
                    None,
                ),
            ),
            (
                "S3-403: permissions boundary, implicit",
                "User: arn:aws:iam::123456789012:user/MaryMajor is not authorized to perform:\ns3:GetObject on resource: \"arn:aws:s3:::amzn-s3-demo-bucket1/object-name\"\nbecause no permissions boundary allows the s3:GetObject action",
                (
                    Some(PermissionsBoundary),
                    false,
                    Some(MARY_123),
                    Some("s3:GetObject"),
                    Some(S3_OBJECT),
                    None,
                ),
            ),
            (
                "S3-403: permissions boundary, explicit",
                "User: arn:aws:iam::777788889999:user/MaryMajor is not authorized to perform:\ns3:GetObject with an explicit deny in a permissions boundary",
                (
                    Some(PermissionsBoundary),
                    true,
                    Some(MARY_777),
                    Some("s3:GetObject"),
                    None,
                    None,
                ),
            ),
            (
                "S3-403: session policy, implicit",
                "User: arn:aws:iam::123456789012:user/MaryMajor is not authorized to perform:\ns3:GetObject because no session policy allows the s3:GetObject action",
                (
                    Some(Session),
                    false,
                    Some(MARY_123),
                    Some("s3:GetObject"),
                    None,
                    None,
                ),
            ),
            (
                "S3-403: session policy, explicit",
                "User: arn:aws:iam::123456789012:user/MaryMajor is not authorized to perform:\ns3:GetObject on resource: \"arn:aws:s3:::amzn-s3-demo-bucket1/object-name\" with\nan explicit deny in a session policy",
                (
                    Some(Session),
                    true,
                    Some(MARY_123),
                    Some("s3:GetObject"),
                    Some(S3_OBJECT),
                    None,
                ),
            ),
            (
                "S3-403: resource-based (bucket policy, or IgnorePublicAcls), implicit",
                "User: arn:aws:iam::123456789012:user/MaryMajor is not authorized to perform:\ns3:GetObject because no resource-based policy allows the s3:GetObject action",
                (
                    Some(Resource),
                    false,
                    Some(MARY_123),
                    Some("s3:GetObject"),
                    None,
                    None,
                ),
            ),
            (
                "S3-403: resource-based (bucket policy, or RestrictPublicBuckets), explicit",
                "User: arn:aws:iam::123456789012:user/MaryMajor is not authorized to perform:\ns3:GetObject on resource: \"arn:aws:s3:::amzn-s3-demo-bucket1/object-name\" with\nan explicit deny in a resource-based policy",
                (
                    Some(Resource),
                    true,
                    Some(MARY_123),
                    Some("s3:GetObject"),
                    Some(S3_OBJECT),
                    None,
                ),
            ),
            (
                "S3-403: identity-based, implicit",
                "User: arn:aws:iam::123456789012:user/MaryMajor is not authorized to perform:\ns3:GetObject because no identity-based policy allows the s3:GetObject action",
                (
                    Some(Identity),
                    false,
                    Some(MARY_123),
                    Some("s3:GetObject"),
                    None,
                    None,
                ),
            ),
            (
                "S3-403: identity-based, explicit",
                "User: arn:aws:iam::123456789012:user/MaryMajor is not authorized to perform:\ns3:GetObject on resource: \"arn:aws:s3:::amzn-s3-demo-bucket1/object-name\" with\nan explicit deny in an identity-based policy",
                (
                    Some(Identity),
                    true,
                    Some(MARY_123),
                    Some("s3:GetObject"),
                    Some(S3_OBJECT),
                    None,
                ),
            ),
            (
                "S3-403: BlockPublicAcls, a reason that is not a policy type",
                "An error occurred (AccessDenied) when calling the CopyObject operation:\nUser: arn:aws:sts::123456789012:user/MaryMajor is not authorized to\nperform: s3:CopyObject on resource: \"arn:aws:s3:::amzn-s3-demo-bucket1/object-name\"\nbecause public ACLs are prevented by the BlockPublicAcls setting in S3 Block Public Access.",
                (
                    None,
                    false,
                    Some("arn:aws:sts::123456789012:user/MaryMajor"),
                    Some("s3:CopyObject"),
                    Some(S3_OBJECT),
                    None,
                ),
            ),
            (
                "S3-403: blocked SSE-C, with a doubled space and the resource on its own line",
                "An error occurred (AccessDenied) when calling the PutObject operation:\nUser: arn:aws:iam::123456789012:user/MaryMajor  is not\nauthorized to perform: s3:PutObject on resource:\n\"arn:aws:s3:::amzn-s3-demo-bucket1/object-name\" because this\nbucket has blocked upload requests that specify\nServer Side Encryption with Customer provided keys (SSE-C).\nPlease specify a different server-side encryption type",
                (
                    None,
                    false,
                    Some(MARY_123),
                    Some("s3:PutObject"),
                    Some(S3_OBJECT),
                    None,
                ),
            ),
            // ---- [S3-IAM]: the older form without a reason ---------------------------------
            (
                "S3-IAM: no reason, unquoted resource that is not an ARN",
                "User: arn:aws:iam::123456789012:user/mateojackson is not authorized to perform: s3:GetWidget on resource: my-example-widget",
                (
                    None,
                    false,
                    Some("arn:aws:iam::123456789012:user/mateojackson"),
                    Some("s3:GetWidget"),
                    Some("my-example-widget"),
                    None,
                ),
            ),
        ]
    }

    /// Real answers to S3, DynamoDB and STS calls (see [WILD]).
    fn observed() -> Vec<(&'static str, &'static str, Want)> {
        vec![
            (
                "WILD (CTF write-up, boto3): DynamoDB from an EC2 instance role, identity-based implicit",
                "An error occurred (AccessDeniedException) when calling the DescribeTable operation: User: arn:aws:sts::739930428441:assumed-role/vulnerable-machine/i-0bea8b4dfc85974ad is not authorized to perform: dynamodb:DescribeTable on resource: arn:aws:dynamodb:us-east-1:739930428441:table/complimentary-GuestWellnessProfiles because no identity-based policy allows the dynamodb:DescribeTable action",
                (
                    Some(Identity),
                    false,
                    Some(
                        "arn:aws:sts::739930428441:assumed-role/vulnerable-machine/i-0bea8b4dfc85974ad",
                    ),
                    Some("dynamodb:DescribeTable"),
                    Some(
                        "arn:aws:dynamodb:us-east-1:739930428441:table/complimentary-GuestWellnessProfiles",
                    ),
                    None,
                ),
            ),
            (
                "WILD (pasted CLI output): DynamoDB through a gateway endpoint whose policy lacks the action",
                "An error occurred (AccessDeniedException) when calling the Query operation: User: arn:aws:iam::533266998695:user/helios is not authorized to perform: dynamodb:Query on resource: arn:aws:dynamodb:us-west-1:533266998695:table/tables_streams because no VPC endpoint policy allows the dynamodb:Query action",
                (
                    Some(VpcEndpoint),
                    false,
                    Some("arn:aws:iam::533266998695:user/helios"),
                    Some("dynamodb:Query"),
                    Some("arn:aws:dynamodb:us-west-1:533266998695:table/tables_streams"),
                    None,
                ),
            ),
            (
                "WILD (Java SDK v1, pastebin): DynamoDB before policy types were named, with the SDK's suffix",
                "User: arn:aws:sts::514352313549:assumed-role/iti-digital-withdrawal-eks-role/aws-sdk-java-1582218343986 is not authorized to perform: dynamodb:Query on resource: arn:aws:dynamodb:sa-east-1:514352313549:table/DigitalWithdrawal/index/SkDataIndex (Service: AmazonDynamoDBv2; Status Code: 400; Error Code: AccessDeniedException; Request ID: BPCMSSL944K4IBRQ5EB09G2FB7VV4KQNSO5AEMVJF66Q9ASUAAJG)",
                (
                    None,
                    false,
                    Some(
                        "arn:aws:sts::514352313549:assumed-role/iti-digital-withdrawal-eks-role/aws-sdk-java-1582218343986",
                    ),
                    Some("dynamodb:Query"),
                    Some(
                        "arn:aws:dynamodb:sa-east-1:514352313549:table/DigitalWithdrawal/index/SkDataIndex",
                    ),
                    None,
                ),
            ),
            (
                "WILD (ECR layer pull fix note): S3 through a gateway endpoint, wrapped, quoted resource",
                "User: arn:aws:sts::812812325446:assumed-role/storage-access-role-prod-us-west-2/...\nis not authorized to perform: s3:GetObject on resource: \n\"arn:aws:s3:::prod-us-west-2-starport-layer-bucket/...\" \nbecause no VPC endpoint policy allows the s3:GetObject action",
                (
                    Some(VpcEndpoint),
                    false,
                    Some(
                        "arn:aws:sts::812812325446:assumed-role/storage-access-role-prod-us-west-2/...",
                    ),
                    Some("s3:GetObject"),
                    Some("arn:aws:s3:::prod-us-west-2-starport-layer-bucket/..."),
                    None,
                ),
            ),
            (
                "WILD (Java SDK v2 stack trace): S3 explicit deny naming the AWS-managed quarantine policy",
                "S3Exception: User: arn:aws:iam::943598056698:user/kronos_render is not authorized to perform:\ns3:GetObject on resource: \"arn:aws:s3:::kronos-docs-payslip-prod/company/d2d06fe5-.../Paulo.pdf\"\nwith an explicit deny in an identity-based policy: arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV3\n(Service: S3, Status Code: 403, Request ID: NM0S425JDCAGFGE9)",
                (
                    Some(Identity),
                    true,
                    Some("arn:aws:iam::943598056698:user/kronos_render"),
                    Some("s3:GetObject"),
                    Some("arn:aws:s3:::kronos-docs-payslip-prod/company/d2d06fe5-.../Paulo.pdf"),
                    Some("arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV3"),
                ),
            ),
            (
                "WILD (HackTricks): STS AssumeRole denied, no reason given",
                "An error occurred (AccessDenied) when calling the AssumeRole operation: User: arn:aws:iam::012345678901:user/MyUser is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::111111111111:role/aws-service-role/rds.amazonaws.com/AWSServiceRoleForRDS",
                (
                    None,
                    false,
                    Some("arn:aws:iam::012345678901:user/MyUser"),
                    Some("sts:AssumeRole"),
                    Some(
                        "arn:aws:iam::111111111111:role/aws-service-role/rds.amazonaws.com/AWSServiceRoleForRDS",
                    ),
                    None,
                ),
            ),
        ]
    }

    #[test]
    fn every_documented_and_observed_denial_parses() {
        for (why, message, w) in documented().into_iter().chain(observed()) {
            assert_eq!(parse_denial(message), Some(want(w)), "{why}\n{message}");
        }
    }

    #[test]
    fn the_documented_examples_cover_every_policy_type_both_ways() {
        let all = [
            Identity,
            Resource,
            VpcEndpoint,
            PermissionsBoundary,
            Session,
            ServiceControl,
            ResourceControl,
        ];
        let cases = documented();
        for policy in all {
            for explicit in [false, true] {
                // RCPs only ever deny explicitly: they have no implicit form.
                if policy == ResourceControl && !explicit {
                    continue;
                }
                assert!(
                    cases
                        .iter()
                        .any(|(_, _, w)| w.0 == Some(policy) && w.1 == explicit),
                    "no documented example of {policy:?} explicit={explicit}"
                );
            }
        }
    }

    /// The documented ": <policy arn>" suffix ([IAM-AUTHZ]) appended to every explicit
    /// example: the ARN is read and nothing else changes, with or without the final period.
    #[test]
    fn a_policy_arn_suffix_is_read_for_every_policy_type() {
        let arn = "arn:aws:organizations::111122223333:policy/o-exampleorgid/service_control_policy/p-examplepolicyid";
        for (why, message, w) in documented() {
            if !w.1 || w.4.is_some_and(|r| r.contains("role-name-2")) {
                continue;
            }
            if w.0.is_none() || w.5.is_some() {
                continue;
            }
            for tail in [
                "",
                ".",
                ". Go to https://console.aws.amazon.com/ for details",
            ] {
                let with_arn = format!("{message}: {arn}{tail}");
                let mut expected = want(w);
                expected.policy_arn = Some(arn.to_string());
                assert_eq!(parse_denial(&with_arn), Some(expected), "{why}\n{with_arn}");
            }
            // And a trailing period without an ARN changes nothing.
            assert_eq!(parse_denial(&format!("{message}.")), Some(want(w)), "{why}");
        }
    }

    #[test]
    fn quoted_and_unquoted_resources_read_the_same() {
        // [S3-403] quotes the resource; [IAM] does not. Same denial either way.
        let quoted = "User: arn:aws:iam::123456789012:user/MaryMajor is not authorized to perform:\ns3:GetObject on resource: \"arn:aws:s3:::amzn-s3-demo-bucket1/object-name\" with\nan explicit deny in a VPC endpoint policy";
        let unquoted = quoted.replace('"', "");
        assert_eq!(parse_denial(quoted), parse_denial(&unquoted));
        assert_eq!(
            parse_denial(&unquoted).and_then(|d| d.resource).as_deref(),
            Some(S3_OBJECT)
        );
        // S3 quotes because keys may hold spaces (synthetic key, documented quoting).
        let spaced = "User: arn:aws:iam::123456789012:user/MaryMajor is not authorized to perform: s3:GetObject on resource: \"arn:aws:s3:::amzn-s3-demo-bucket1/my report.pdf\" because no VPC endpoint policy allows the s3:GetObject action";
        let d = parse_denial(spaced).expect("denial");
        assert_eq!(
            d.resource.as_deref(),
            Some("arn:aws:s3:::amzn-s3-demo-bucket1/my report.pdf")
        );
        assert_eq!(d.policy, Some(VpcEndpoint));
    }

    #[test]
    fn a_message_seen_through_debug_formatting_still_parses() {
        // The [S3-403] VPC endpoint example as an SDK error chain prints it, quotes escaped.
        let debugged = r#"service error: unhandled error (AccessDenied): Error { code: "AccessDenied", message: "User: arn:aws:iam::123456789012:user/MaryMajor is not authorized to perform: s3:GetObject on resource: \"arn:aws:s3:::amzn-s3-demo-bucket1/object-name\" with an explicit deny in a VPC endpoint policy", aws_request_id: "X" }"#;
        let d = parse_denial(debugged).expect("denial");
        assert_eq!(d.resource.as_deref(), Some(S3_OBJECT));
        assert_eq!(d.principal.as_deref(), Some(MARY_123));
        assert_eq!((d.policy, d.explicit), (Some(VpcEndpoint), true));
    }

    #[test]
    fn bare_denials_name_no_policy() {
        for message in [
            // [S3-403]: "Cross-account requests outside of the same organization return a
            // generic `Access Denied` message."
            "Access Denied",
            // [WILD] AWS CLI, cross-account ListObjectsV2.
            "An error occurred (AccessDenied) when calling the ListObjectsV2 operation: Access Denied",
            "Access denied",
            "access denied.",
            "ACCESS DENIED",
            // [WILD] EC2's wording, which also comes back for some signed calls.
            "You are not authorized to perform this operation.",
        ] {
            assert_eq!(parse_denial(message), Some(Denial::default()), "{message}");
        }
        // "User is not authorized ..." names nobody.
        let d = parse_denial("User is not authorized to perform: dynamodb:DescribeTable")
            .expect("denial");
        assert_eq!(d.principal, None);
        assert_eq!(d.action.as_deref(), Some("dynamodb:DescribeTable"));
    }

    #[test]
    fn other_messages_are_not_denials() {
        for message in [
            "",
            "   ",
            // [S3-ERR]
            "The specified bucket does not exist",
            "Please reduce your request rate.",
            "The difference between the request time and the current time is too large.",
            "The AWS Access Key Id you provided does not exist in our records.",
            "The provided token has expired.",
            "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
            "The bucket you are attempting to access must be addressed using the specified endpoint. Please send all future requests to this endpoint.",
            // [WILD] S3 wrong-region answer.
            "The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'",
            // [DDB-ERR]
            "Requested resource not found: Table: Music not found",
            "Rate of requests exceeds the allowed throughput.",
            "The security token included in the request is invalid.",
            "The security token included in the request is expired",
        ] {
            assert_eq!(parse_denial(message), None, "{message:?}");
        }
    }

    #[test]
    fn denial_codes_follow_the_policy_type() {
        let cases = [
            (Some(Identity), FindingCode::ACCESS_DENIED_IDENTITY_POLICY),
            (Some(Resource), FindingCode::ACCESS_DENIED_RESOURCE_POLICY),
            (Some(VpcEndpoint), FindingCode::ACCESS_DENIED_VPCE_POLICY),
            (
                Some(PermissionsBoundary),
                FindingCode::ACCESS_DENIED_PERMISSIONS_BOUNDARY,
            ),
            (Some(Session), FindingCode::ACCESS_DENIED_SESSION_POLICY),
            (Some(ServiceControl), FindingCode::ACCESS_DENIED_SCP),
            (Some(ResourceControl), FindingCode::ACCESS_DENIED_RCP),
            (None, FindingCode::ACCESS_DENIED_UNATTRIBUTED),
        ];
        for (policy, code) in cases {
            for explicit in [false, true] {
                let d = Denial {
                    policy,
                    explicit,
                    ..Denial::default()
                };
                assert_eq!(denial_code(&d), code);
                assert_eq!(finding_code(&Classified::AccessDenied(d)), Some(code));
            }
        }
    }

    #[test]
    fn denials_serialize_with_kebab_case_policy_types() {
        let d = parse_denial(documented()[4].1).expect("denial");
        let json = serde_json::to_value(&d).expect("serialize");
        assert_eq!(json["policy"], "vpc-endpoint");
        assert_eq!(json["explicit"], true);
        let back: Denial = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, d);
        for (p, s) in [
            (Identity, "identity"),
            (PermissionsBoundary, "permissions-boundary"),
            (ServiceControl, "service-control"),
            (ResourceControl, "resource-control"),
        ] {
            assert_eq!(serde_json::to_value(p).expect("serialize"), s);
        }
    }

    // ---- classify ------------------------------------------------------------------------

    fn info(
        status: u16,
        code: Option<&str>,
        message: Option<&str>,
        headers: &[(&str, &str)],
    ) -> ErrorInfo {
        ErrorInfo {
            status,
            code: code.map(str::to_string),
            message: message.map(str::to_string),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn region(r: Option<&str>) -> Classified {
        Classified::WrongRegion {
            bucket_region: r.map(str::to_string),
        }
    }

    #[test]
    fn responses_classify() {
        use Classified as C;
        use Service::{Dynamodb, S3};
        const PERMANENT_REDIRECT: &str = "The bucket you are attempting to access must be addressed using the specified endpoint. Please send all future requests to this endpoint.";
        const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your key and signing method.";
        const S3_VPCE: &str = "User: arn:aws:iam::123456789012:user/MaryMajor is not authorized to perform:\ns3:GetObject because no VPC endpoint policy allows the s3:GetObject action";
        const DDB_IDENTITY: &str = "User: arn:aws:sts::739930428441:assumed-role/vulnerable-machine/i-0bea8b4dfc85974ad is not authorized to perform: dynamodb:DescribeTable on resource: arn:aws:dynamodb:us-east-1:739930428441:table/complimentary-GuestWellnessProfiles because no identity-based policy allows the dynamodb:DescribeTable action";

        let vpce = C::AccessDenied(parse_denial(S3_VPCE).expect("denial"));
        let ddb_identity = C::AccessDenied(parse_denial(DDB_IDENTITY).expect("denial"));
        let bare = C::AccessDenied(Denial::default());

        let cases: Vec<(&str, Service, ErrorInfo, Classified)> = vec![
            (
                "S3 success",
                S3,
                info(200, None, None, &[("x-amz-bucket-region", "eu-west-1")]),
                C::Ok,
            ),
            (
                "DynamoDB success",
                Dynamodb,
                info(200, None, None, &[]),
                C::Ok,
            ),
            ("S3 204", S3, info(204, None, None, &[]), C::Ok),
            // Region.
            (
                "HeadBucket to the wrong region: 301, no body, the region in the header",
                S3,
                info(301, None, None, &[("x-amz-bucket-region", "us-west-2")]),
                region(Some("us-west-2")),
            ),
            (
                "GetObject to the wrong region: 301 PermanentRedirect [S3-ERR]",
                S3,
                info(
                    301,
                    Some("PermanentRedirect"),
                    Some(PERMANENT_REDIRECT),
                    &[("x-amz-bucket-region", "eu-west-1")],
                ),
                region(Some("eu-west-1")),
            ),
            (
                "307 TemporaryRedirect without the header",
                S3,
                info(
                    307,
                    Some("TemporaryRedirect"),
                    Some(
                        "Please re-send this request to the specified temporary endpoint. Continue to use the original request endpoint for future requests.",
                    ),
                    &[],
                ),
                region(None),
            ),
            (
                "400 AuthorizationHeaderMalformed names the region in its message [WILD]",
                S3,
                info(
                    400,
                    Some("AuthorizationHeaderMalformed"),
                    Some(
                        "The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'",
                    ),
                    &[],
                ),
                region(Some("eu-west-1")),
            ),
            (
                "the header wins over the message",
                S3,
                info(
                    400,
                    Some("AuthorizationHeaderMalformed"),
                    Some(
                        "The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'",
                    ),
                    &[("x-amz-bucket-region", "eu-west-1")],
                ),
                region(Some("eu-west-1")),
            ),
            (
                "HeadBucket signed for the wrong region: 400, no body, the header",
                S3,
                info(
                    400,
                    None,
                    None,
                    &[("x-amz-bucket-region", "ap-southeast-2")],
                ),
                region(Some("ap-southeast-2")),
            ),
            (
                "IllegalLocationConstraintException [S3-ERR]",
                S3,
                info(
                    400,
                    Some("IllegalLocationConstraintException"),
                    Some(
                        "The unspecified location constraint is incompatible for the region specific endpoint this request was sent to.",
                    ),
                    &[],
                ),
                region(None),
            ),
            (
                "AuthorizationHeaderMalformed that is not about the region is a credential problem",
                S3,
                info(
                    400,
                    Some("AuthorizationHeaderMalformed"),
                    Some(
                        "The authorization header is malformed; a non-empty Access Key (AKID) must be provided in the credential.",
                    ),
                    &[],
                ),
                C::InvalidCredentials,
            ),
            // Denials.
            (
                "HeadBucket denied: 403, no body (the header is there and right)",
                S3,
                info(403, None, None, &[("x-amz-bucket-region", "eu-west-1")]),
                bare.clone(),
            ),
            (
                "S3 cross-account: 'Access Denied' [S3-403]",
                S3,
                info(403, Some("AccessDenied"), Some("Access Denied"), &[]),
                bare.clone(),
            ),
            (
                "S3 same-account through an endpoint [S3-403]",
                S3,
                info(403, Some("AccessDenied"), Some(S3_VPCE), &[]),
                vpce.clone(),
            ),
            (
                "DynamoDB AccessDeniedException is a 400",
                Dynamodb,
                info(400, Some("AccessDeniedException"), Some(DDB_IDENTITY), &[]),
                ddb_identity.clone(),
            ),
            (
                "DynamoDB code from the x-amzn-errortype header",
                Dynamodb,
                info(
                    400,
                    None,
                    Some(DDB_IDENTITY),
                    &[(
                        "x-amzn-errortype",
                        "AccessDeniedException:http://internal.amazon.com/coral/com.amazon.coral.service/",
                    )],
                ),
                ddb_identity.clone(),
            ),
            (
                "DynamoDB code with the JSON __type namespace",
                Dynamodb,
                info(
                    400,
                    Some("com.amazon.coral.service#AccessDeniedException"),
                    Some(DDB_IDENTITY),
                    &[],
                ),
                ddb_identity,
            ),
            (
                "AccessDenied whose message is not a denial still is one",
                S3,
                info(
                    403,
                    Some("AccessDenied"),
                    Some("There were headers present in the request which were not signed"),
                    &[],
                ),
                bare.clone(),
            ),
            (
                "S3 AllAccessDisabled",
                S3,
                info(
                    403,
                    Some("AllAccessDisabled"),
                    Some("All access to this object has been disabled"),
                    &[],
                ),
                bare,
            ),
            // Not found.
            (
                "NoSuchBucket [S3-ERR]",
                S3,
                info(
                    404,
                    Some("NoSuchBucket"),
                    Some("The specified bucket does not exist"),
                    &[],
                ),
                C::BucketNotFound,
            ),
            (
                "HeadBucket 404 has no body",
                S3,
                info(404, None, None, &[]),
                C::BucketNotFound,
            ),
            (
                "ResourceNotFoundException [DDB-ERR]",
                Dynamodb,
                info(
                    400,
                    Some("ResourceNotFoundException"),
                    Some("Requested resource not found: Table: Music not found"),
                    &[],
                ),
                C::TableNotFound,
            ),
            (
                "ResourceNotFoundException with the JSON __type namespace [WILD]",
                Dynamodb,
                info(
                    400,
                    Some("com.amazonaws.dynamodb.v20120810#ResourceNotFoundException"),
                    Some("Requested resource not found"),
                    &[],
                ),
                C::TableNotFound,
            ),
            (
                "DynamoDB 404 without a code is not a bucket",
                Dynamodb,
                info(404, None, None, &[]),
                C::Other,
            ),
            // Clock.
            (
                "RequestTimeTooSkewed is a 403 [S3-ERR]",
                S3,
                info(
                    403,
                    Some("RequestTimeTooSkewed"),
                    Some(
                        "The difference between the request time and the current time is too large.",
                    ),
                    &[],
                ),
                C::ClockSkew,
            ),
            (
                "DynamoDB: InvalidSignatureException 'Signature expired' [WILD]",
                Dynamodb,
                info(
                    400,
                    Some("InvalidSignatureException"),
                    Some(
                        "Signature expired: 20150216T072522Z is now earlier than 20150216T072522Z (20150216T074022Z - 15 min.)",
                    ),
                    &[],
                ),
                C::ClockSkew,
            ),
            (
                "STS-style: SignatureDoesNotMatch 'Signature expired' [WILD, aws sts get-caller-identity]",
                Dynamodb,
                info(
                    403,
                    Some("SignatureDoesNotMatch"),
                    Some(
                        "Signature expired: 20230822T072529Z is now earlier than 20230822T193257Z (20230822T194757Z - 15 min.)",
                    ),
                    &[],
                ),
                C::ClockSkew,
            ),
            (
                "'Signature not yet current' [WILD, eb deploy]",
                Dynamodb,
                info(
                    400,
                    Some("InvalidSignatureException"),
                    Some(
                        "Signature not yet current: 20170424T013926Z is still later than 20170424T013832Z (20170424T013332Z + 5 min.)",
                    ),
                    &[],
                ),
                C::ClockSkew,
            ),
            // Credentials.
            (
                "ExpiredToken [S3-ERR]",
                S3,
                info(
                    400,
                    Some("ExpiredToken"),
                    Some("The provided token has expired."),
                    &[],
                ),
                C::ExpiredCredentials,
            ),
            (
                "ExpiredTokenException [WILD]",
                Dynamodb,
                info(
                    400,
                    Some("ExpiredTokenException"),
                    Some("The security token included in the request is expired"),
                    &[],
                ),
                C::ExpiredCredentials,
            ),
            (
                "InvalidAccessKeyId [S3-ERR]",
                S3,
                info(
                    403,
                    Some("InvalidAccessKeyId"),
                    Some("The AWS Access Key Id you provided does not exist in our records."),
                    &[],
                ),
                C::InvalidCredentials,
            ),
            (
                "SignatureDoesNotMatch [S3-ERR]",
                S3,
                info(
                    403,
                    Some("SignatureDoesNotMatch"),
                    Some(SIGNATURE_MISMATCH),
                    &[],
                ),
                C::InvalidCredentials,
            ),
            (
                "UnrecognizedClientException [WILD]",
                Dynamodb,
                info(
                    400,
                    Some("UnrecognizedClientException"),
                    Some("The security token included in the request is invalid."),
                    &[],
                ),
                C::InvalidCredentials,
            ),
            (
                "InvalidClientTokenId (STS's name for it)",
                Dynamodb,
                info(
                    403,
                    Some("InvalidClientTokenId"),
                    Some("The security token included in the request is invalid."),
                    &[],
                ),
                C::InvalidCredentials,
            ),
            (
                "IncompleteSignatureException [WILD]",
                Dynamodb,
                info(
                    400,
                    Some("IncompleteSignatureException"),
                    Some(
                        "Date must be in ISO-8601 'basic format'. Got '201'. See http://en.wikipedia.org/wiki/ISO_8601",
                    ),
                    &[],
                ),
                C::InvalidCredentials,
            ),
            (
                "InvalidSignatureException that is not about time",
                Dynamodb,
                info(
                    400,
                    Some("InvalidSignatureException"),
                    Some(
                        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
                    ),
                    &[],
                ),
                C::InvalidCredentials,
            ),
            // Throttling and server errors.
            (
                "SlowDown [S3-ERR]",
                S3,
                info(
                    503,
                    Some("SlowDown"),
                    Some("Please reduce your request rate."),
                    &[],
                ),
                C::Throttled,
            ),
            (
                "S3 503 without a body",
                S3,
                info(503, None, None, &[]),
                C::Throttled,
            ),
            (
                "ThrottlingException [DDB-ERR]",
                Dynamodb,
                info(
                    400,
                    Some("ThrottlingException"),
                    Some("Rate of requests exceeds the allowed throughput."),
                    &[],
                ),
                C::Throttled,
            ),
            (
                "ProvisionedThroughputExceededException [DDB-ERR]",
                Dynamodb,
                info(
                    400,
                    Some("ProvisionedThroughputExceededException"),
                    Some(
                        "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.",
                    ),
                    &[],
                ),
                C::Throttled,
            ),
            (
                "RequestLimitExceeded [DDB-ERR]",
                Dynamodb,
                info(
                    400,
                    Some("RequestLimitExceeded"),
                    Some(
                        "Throughput exceeds the current throughput limit for your account. Please contact AWS Support at https://aws.amazon.com/support request a limit increase",
                    ),
                    &[],
                ),
                C::Throttled,
            ),
            (
                "429 without a code",
                Dynamodb,
                info(429, None, None, &[]),
                C::Throttled,
            ),
            (
                "InternalError [S3-ERR]",
                S3,
                info(
                    500,
                    Some("InternalError"),
                    Some("We encountered an internal error. Please try again."),
                    &[],
                ),
                C::ServerError,
            ),
            (
                "DynamoDB InternalServerError [DDB-ERR]",
                Dynamodb,
                info(
                    500,
                    Some("InternalServerError"),
                    Some("Internal server error"),
                    &[],
                ),
                C::ServerError,
            ),
            (
                "502 from something on the path",
                S3,
                info(502, None, Some("<html>Bad Gateway</html>"), &[]),
                C::ServerError,
            ),
            // Other.
            (
                "S3 InvalidArgument",
                S3,
                info(400, Some("InvalidArgument"), Some("Invalid argument."), &[]),
                C::Other,
            ),
            (
                "HeadBucket 400 without the header",
                S3,
                info(400, None, None, &[]),
                C::Other,
            ),
            (
                "DynamoDB ValidationException",
                Dynamodb,
                info(
                    400,
                    Some("ValidationException"),
                    Some("1 validation error detected"),
                    &[],
                ),
                C::Other,
            ),
            (
                "a redirect from DynamoDB is not a bucket redirect",
                Dynamodb,
                info(301, None, None, &[]),
                C::Other,
            ),
            (
                "an unexpected code whose message is a policy denial",
                S3,
                info(403, Some("UnauthorizedOperation"), Some(S3_VPCE), &[]),
                vpce,
            ),
        ];
        for (why, service, response, expected) in cases {
            assert_eq!(
                classify(service, &response),
                expected,
                "{why}: {response:?}"
            );
        }
    }

    #[test]
    fn finding_codes_per_classification() {
        use Classified as C;
        let cases = [
            (C::Ok, None),
            (
                C::AccessDenied(Denial::default()),
                Some(FindingCode::ACCESS_DENIED_UNATTRIBUTED),
            ),
            (
                region(Some("eu-west-1")),
                Some(FindingCode::WRONG_REGION_REDIRECT),
            ),
            (region(None), Some(FindingCode::WRONG_REGION_REDIRECT)),
            (C::BucketNotFound, Some(FindingCode::BUCKET_NOT_FOUND)),
            (C::TableNotFound, Some(FindingCode::TABLE_NOT_FOUND)),
            (C::ClockSkew, Some(FindingCode::CLOCK_SKEW)),
            (
                C::ExpiredCredentials,
                Some(FindingCode::CREDENTIALS_EXPIRED),
            ),
            (C::InvalidCredentials, None),
            (C::Throttled, None),
            (C::ServerError, None),
            (C::Other, None),
        ];
        for (c, code) in cases {
            assert_eq!(finding_code(&c), code, "{c:?}");
            assert_ne!(finding_code(&c), Some(FindingCode::NO_CREDENTIALS));
        }
    }

    /// Messages come from the network: every prefix of every real message, odd Unicode and
    /// pseudo-random bytes must parse and classify without panicking.
    #[test]
    fn nothing_panics() {
        let mut inputs: Vec<String> = Vec::new();
        for (_, message, _) in documented().into_iter().chain(observed()) {
            for (i, _) in message.char_indices() {
                inputs.push(message[..i].to_string());
                inputs.push(message[i..].to_string());
            }
        }
        inputs.extend(
            [
                "User:",
                "User: is not authorized to perform",
                "is not authorized to perform:",
                "is not authorized to perform: on resource: \"",
                "is not authorized to perform: s3:GetObject on resource: \"unterminated",
                "is not authorized to perform: s3: on resource: because no",
                "with an explicit deny in a",
                "with an explicit deny in a service control policy:",
                "with an explicit deny in a service control policy: ",
                "because no",
                "transitively through a",
                "expecting '",
                "expecting 'eu-west-1",
                "User: \u{1F600} is not authorized to perform: s3:GetObject on resource: \u{201c}arn:aws:s3:::é/ü\u{201d} with an explicit deny in a résource policy",
                "USER: ÅRN İS NOT AUTHORIZED TO PERFORM: S3:GETOBJECT",
                "\u{2028}User:\u{00a0}x\u{3000}is not authorized to perform:\u{2003}s3:GetObject",
            ]
            .map(str::to_string),
        );
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..500 {
            let bytes: Vec<u8> = (0..64)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed & 0xff) as u8
                })
                .collect();
            inputs.push(String::from_utf8_lossy(&bytes).into_owned());
        }
        for input in &inputs {
            let _ = parse_denial(input);
            for status in [0, 200, 301, 400, 403, 404, 503, 599, u16::MAX] {
                for service in [Service::S3, Service::Dynamodb] {
                    let response = ErrorInfo {
                        status,
                        code: Some(input.clone()),
                        message: Some(input.clone()),
                        headers: [
                            ("x-amz-bucket-region".to_string(), input.clone()),
                            ("x-amzn-errortype".to_string(), input.clone()),
                        ]
                        .into(),
                    };
                    let _ = finding_code(&classify(service, &response));
                }
            }
            let _ = clock_offset_secs(input, SystemTime::now());
        }
    }

    // ---- clock ---------------------------------------------------------------------------

    /// 1_700_000_000 is Tue, 14 Nov 2023 22:13:20 GMT.
    fn local() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    #[test]
    fn clock_offset_has_the_servers_sign() {
        let cases = [
            ("Tue, 14 Nov 2023 22:13:20 GMT", Some(0)),
            ("Tue, 14 Nov 2023 22:18:21 GMT", Some(301)),
            ("Tue, 14 Nov 2023 22:08:19 GMT", Some(-301)),
            ("Wed, 15 Nov 2023 00:13:20 GMT", Some(7200)),
            ("  Tue, 14 Nov 2023 22:13:50 GMT\r\n", Some(30)),
            // RFC 850 and asctime, which HTTP/1.1 recipients must accept.
            ("Tuesday, 14-Nov-23 22:13:20 GMT", Some(0)),
            ("Tue Nov 14 22:13:20 2023", Some(0)),
            // Unparsable.
            ("", None),
            ("yesterday", None),
            ("Tue, 14 Nov 2023 25:13:20 GMT", None),
            ("2023-11-14T22:13:20Z", None),
            ("Tue, 14 Nov 2023 22:13:20", None),
        ];
        for (header, expected) in cases {
            assert_eq!(clock_offset_secs(header, local()), expected, "{header:?}");
        }
    }

    #[test]
    fn the_skew_limit_is_five_minutes() {
        assert_eq!(CLOCK_SKEW_LIMIT_SECS, 5 * 60);
        let ahead = clock_offset_secs("Tue, 14 Nov 2023 22:18:21 GMT", local()).expect("date");
        let behind = clock_offset_secs("Tue, 14 Nov 2023 22:08:19 GMT", local()).expect("date");
        let fine = clock_offset_secs("Tue, 14 Nov 2023 22:17:20 GMT", local()).expect("date");
        assert!(ahead.abs() > CLOCK_SKEW_LIMIT_SECS);
        assert!(behind.abs() > CLOCK_SKEW_LIMIT_SECS);
        assert!(fine.abs() <= CLOCK_SKEW_LIMIT_SECS);
    }
}
