//! The findings about the answers to the signed calls (denials with the policy that denies and
//! the endpoint the call went through, a bare 403 the measured clock skew explains, wrong-region
//! redirects, failures). They read the connections (which address a call reached) and the
//! credentials check (STS's answer) too, so they span checks; the credentials check's own rule
//! is reading/identity.rs, the Date-header clock skew the calls' own (reading/calls.rs).

use super::Findings;
use crate::catalogue::FindingCode;
use crate::reading::Check;
use crate::report::*;
use crate::results::{ProbeResults, TargetSpec};

/// The clock skew this run measured, in words: an answer that says the request time is off
/// (S3's RequestTimeTooSkewed, DynamoDB's and STS's "Signature expired"), or a Date header
/// beyond the limit.
fn measured_skew(r: &ProbeResults) -> Option<String> {
    if let Some(call) = r
        .calls
        .iter()
        .find(|c| c.finding == Some(FindingCode::CLOCK_SKEW))
    {
        return Some(format!(
            "{} {} answered {}",
            call.operation,
            call.target,
            call.error_code
                .as_deref()
                .unwrap_or("that the request time is off")
        ));
    }
    if let Some(e) = r
        .credentials
        .as_ref()
        .and_then(|c| c.identity_error.as_deref())
        .filter(|e| crate::classify::says_clock_skew(e))
    {
        return Some(format!("STS GetCallerIdentity answered: {e}"));
    }
    r.calls
        .iter()
        .filter_map(|c| c.clock_offset_secs.map(|o| (o, c)))
        .filter(|(o, _)| o.abs() > crate::classify::CLOCK_SKEW_LIMIT_SECS)
        .max_by_key(|(o, _)| o.abs())
        .map(|(o, c)| {
            format!(
                "the Date header of {} {} is {} s from the local clock",
                c.operation,
                c.target,
                o.abs()
            )
        })
}

/// A 403 without a body (HEAD answers carry none) names no cause. On a run whose clock skew
/// is measured, it is S3's answer to a request signed at the wrong time, not a denial:
/// S3 checks the request time before any policy.
fn bare_403_is_skew(r: &ProbeResults, t: &TargetSpec, call: &CallResult, f: &mut Findings) -> bool {
    // HEAD answers have no body, whatever code the SDK derives from the status.
    let bodiless = call.error_code.is_none() || call.operation.starts_with("Head");
    let names_nothing = call
        .denial
        .as_ref()
        .is_none_or(|d| d.action.is_none() && d.policy.is_none());
    if call.status != Some(403) || !bodiless || !names_nothing {
        return false;
    }
    let Some(evidence) = measured_skew(r) else {
        return false;
    };
    let host = call.endpoint_host.as_deref().unwrap_or("the service");
    f.add(
        FindingCode::CLOCK_SKEW,
        Severity::Error,
        &t.id,
        format!(
            "{} {host} answered a bare 403: the request time is off",
            call.operation
        ),
        format!(
            "HEAD answers carry no error code; on this run {evidence}, so the 403 is the clock, not a policy."
        ),
        FindingCode::CLOCK_SKEW.general_fix().into(),
        vec![call.id()],
    );
    true
}

/// Premises: each answer's finding comes from the answer itself (`classify`: the service's
/// error code, its message, then the status and S3's x-amz-bucket-region header); a bare 403
/// is a denial only when no measured clock skew explains it (`bare_403_is_skew`); transport
/// failures count only for calls not sent through a proxy (the proxy checks say those).
pub(super) fn call_findings(r: &ProbeResults, t: &TargetSpec, f: &mut Findings) {
    for call in r.calls.iter().filter(|c| c.target == t.id) {
        match call.finding {
            None => call_failure_finding(r, t, call, f),
            Some(FindingCode::ACCESS_DENIED_UNATTRIBUTED) if bare_403_is_skew(r, t, call, f) => {}
            Some(FindingCode::WRONG_REGION_REDIRECT) => redirect_findings(r, t, call, f),
            Some(code) if code.as_str().starts_with("ACCESS_DENIED") => {
                denial_finding(r, t, call, code, f)
            }
            Some(code) => f.add(
                code,
                Severity::Error,
                &t.id,
                format!(
                    "{} {}: {}",
                    call.operation,
                    t.id,
                    call.error_code.as_deref().unwrap_or(code.as_str())
                ),
                call.error_message.clone().unwrap_or_default(),
                code.general_fix().into(),
                vec![call.id()],
            ),
        }
    }
}

/// Failures that are not answers of the service map to the network findings;
/// through a proxy, the proxy checks already say what failed.
fn call_failure_finding(r: &ProbeResults, t: &TargetSpec, call: &CallResult, f: &mut Findings) {
    let host = call.endpoint_host.as_deref().unwrap_or("the service");
    if call.proxy.is_none()
        && matches!(
            call.outcome,
            CallOutcome::Timeout | CallOutcome::ConnectionFailed
        )
    {
        let msg = call.error_message.clone().unwrap_or_default();
        let lower = msg.to_ascii_lowercase();
        let code = if call.outcome == CallOutcome::Timeout {
            FindingCode::TCP_TIMEOUT
        } else if lower.contains("certificate") || lower.contains("tls") {
            FindingCode::TLS_FAILED
        } else {
            FindingCode::TCP_UNREACHABLE
        };
        let connected = r
            .tcp
            .iter()
            .any(|a| Some(&a.address) == call.peer.as_ref() && a.outcome == TcpOutcome::Connected);
        let title = if connected && call.outcome == CallOutcome::Timeout {
            format!(
                "{host} accepted the connection but did not answer the signed {} call in time",
                call.operation
            )
        } else {
            format!("the signed {} call to {host} failed", call.operation)
        };
        f.add(
            code,
            Severity::Error,
            &t.id,
            title,
            msg,
            code.general_fix().into(),
            vec![call.id()],
        );
    }
}

/// A redirect to the bucket's region, and the bucket in another region than the instance.
/// Premises: the answer was S3's redirect (classify: 301/307, a redirect code, or a 400 with
/// x-amz-bucket-region); REGION_MISMATCH_BUCKET only when the bucket's region is known from
/// the answer and differs from the instance's.
fn redirect_findings(r: &ProbeResults, t: &TargetSpec, call: &CallResult, f: &mut Findings) {
    let code = FindingCode::WRONG_REGION_REDIRECT;
    let host = call.endpoint_host.as_deref().unwrap_or("the service");
    let instance_region = r
        .region
        .instance
        .as_deref()
        .or(r.region.effective.as_deref());
    let bucket_region = call.bucket_region.clone();
    let region_hint = bucket_region
        .as_deref()
        .map(|b| format!(" ({b}): --region {b} / AWS_REGION={b}"))
        .unwrap_or_default();
    f.add(
        code,
        Severity::Error,
        &t.id,
        format!(
            "{host} answered {} {}: the bucket is in {}",
            call.status.unwrap_or(0),
            call.error_code.as_deref().unwrap_or("redirect"),
            bucket_region.as_deref().unwrap_or("another region")
        ),
        call.error_message.clone().unwrap_or_else(|| {
            format!(
                "x-amz-bucket-region: {}",
                bucket_region.as_deref().unwrap_or("?")
            )
        }),
        format!("Send requests for {} to its region{region_hint}.", t.name),
        vec![call.id()],
    );
    if let (Some(b), Some(i)) = (&bucket_region, instance_region)
        && b != i
    {
        f.add(
                FindingCode::REGION_MISMATCH_BUCKET,
                Severity::Error,
                &t.id,
                format!("bucket {} is in {b}, the instance in {i}", t.name),
                format!(
                    "A gateway endpoint only serves buckets of its own region ({i}); requests for a bucket in {b} leave through another path or fail."
                ),
                FindingCode::REGION_MISMATCH_BUCKET.general_fix().into(),
                vec![call.id()],
            );
    }
}

/// Premise: the service answered a denial; the policy type is the one its message names
/// (none named: ACCESS_DENIED_UNATTRIBUTED). For a VPC endpoint policy, the fix names the
/// endpoint the call really went through (`vpce_path`).
fn denial_finding(
    r: &ProbeResults,
    t: &TargetSpec,
    call: &CallResult,
    code: FindingCode,
    f: &mut Findings,
) {
    let instance = r.instance.as_ref();
    let host = call.endpoint_host.as_deref().unwrap_or("the service");
    let d = call.denial.as_ref();
    let action = d
        .and_then(|d| d.action.clone())
        .unwrap_or_else(|| call.action.clone());
    let resource = d
        .and_then(|d| d.resource.clone())
        .unwrap_or_else(|| match t.service {
            Service::S3 => format!("arn:aws:s3:::{}", t.name),
            Service::S3express => directory_bucket_arn(r, &t.name),
            Service::Dynamodb => format!("table/{}", t.name),
        });
    f.add(
        code,
        Severity::Error,
        &t.id,
        format!("{action} on {resource} is denied by {}", denier(code)),
        format!(
            "{} {host} answered {} {}: {}",
            call.operation,
            call.status.unwrap_or(0),
            call.error_code.as_deref().unwrap_or("AccessDenied"),
            call.error_message
                .as_deref()
                .unwrap_or("(no message: HEAD answers carry no body)")
        ),
        denial_remediation(
            code,
            &action,
            &resource,
            t,
            instance,
            r.region.effective.as_deref(),
            vpce_path(r, call),
        ),
        vec![call.id()],
    );
}

/// Which VPC endpoint a call went through, for the fix of an endpoint-policy denial: the
/// gateway endpoint only carries direct traffic to the service's public addresses.
enum VpcePath {
    Gateway,
    /// The call went to a private address: an interface endpoint answered.
    Interface(String),
    /// Sent through a proxy: the endpoint is on the proxy's path, not this VPC's.
    Proxy(String),
}

fn vpce_path(r: &ProbeResults, call: &CallResult) -> VpcePath {
    if let Some(p) = &call.proxy {
        return VpcePath::Proxy(p.clone());
    }
    let private = call.peer.as_ref().is_some_and(|peer| {
        r.tcp
            .iter()
            .any(|a| &a.address == peer && a.address_class == AddressClass::Private)
    });
    match (&call.peer, private) {
        (Some(peer), true) => VpcePath::Interface(peer.clone()),
        _ => VpcePath::Gateway,
    }
}

fn denier(code: FindingCode) -> &'static str {
    match code {
        FindingCode::ACCESS_DENIED_VPCE_POLICY => "the VPC endpoint policy",
        FindingCode::ACCESS_DENIED_RESOURCE_POLICY => "the resource policy",
        FindingCode::ACCESS_DENIED_IDENTITY_POLICY => "the role's IAM policies",
        FindingCode::ACCESS_DENIED_SCP => "a service control policy",
        FindingCode::ACCESS_DENIED_RCP => "a resource control policy",
        FindingCode::ACCESS_DENIED_PERMISSIONS_BOUNDARY => "the permissions boundary",
        FindingCode::ACCESS_DENIED_SESSION_POLICY => "the session policy",
        _ => "a policy AWS does not name",
    }
}

fn denial_remediation(
    code: FindingCode,
    action: &str,
    resource: &str,
    t: &TargetSpec,
    instance: Option<&InstanceFacts>,
    region: Option<&str>,
    path: VpcePath,
) -> String {
    let vpc = instance
        .and_then(|i| i.vpc_id.as_deref())
        .unwrap_or("<vpc-id>");
    let region = region.unwrap_or("<region>");
    let role = instance
        .and_then(|i| i.iam_role.as_deref())
        .unwrap_or("<role>");
    let endpoints_of = |kind: &str| {
        format!(
            "aws ec2 describe-vpc-endpoints --filters Name=vpc-id,Values={vpc} Name=service-name,Values=com.amazonaws.{region}.{} Name=vpc-endpoint-type,Values={kind} --query 'VpcEndpoints[].[VpcEndpointId,PolicyDocument]'",
            t.service.as_str()
        )
    };
    let endpoint_policy = format!(
        "aws ec2 describe-vpc-endpoints --filters Name=vpc-id,Values={vpc} Name=service-name,Values=com.amazonaws.{region}.{} --query 'VpcEndpoints[].[VpcEndpointId,PolicyDocument]'",
        t.service.as_str()
    );
    let resource_policy = match t.service {
        Service::S3 | Service::S3express => {
            format!("aws s3api get-bucket-policy --bucket {}", t.name)
        }
        Service::Dynamodb => format!(
            "aws dynamodb get-resource-policy --resource-arn <the ARN of table {}>",
            t.name
        ),
    };
    match code {
        FindingCode::ACCESS_DENIED_VPCE_POLICY => match path {
            VpcePath::Gateway => format!(
                "Allow {action} on {resource} in the gateway endpoint's policy: {endpoint_policy}; then aws ec2 modify-vpc-endpoint --vpc-endpoint-id <vpce-id> --policy-document file://policy.json"
            ),
            VpcePath::Interface(peer) => format!(
                "The call went to {peer}, a private address: the interface endpoint's policy denies it, not the gateway endpoint's. Allow {action} on {resource} in it: {}; then aws ec2 modify-vpc-endpoint --vpc-endpoint-id <vpce-id> --policy-document file://policy.json",
                endpoints_of("Interface")
            ),
            VpcePath::Proxy(proxy) => format!(
                "The call went through the proxy {proxy}: the endpoint whose policy denies it is the one on the proxy's path (this VPC's gateway endpoint only if the proxy sends from this VPC). Ask the proxy's owners to allow {action} on {resource}, or bypass the proxy for the service (NO_PROXY) so that the gateway endpoint carries it."
            ),
        },
        FindingCode::ACCESS_DENIED_RESOURCE_POLICY => format!(
            "Read the policy ({resource_policy}) and fix the statement that denies {action}: allow this VPC's endpoint with aws:SourceVpce (or aws:SourceVpc {vpc}); aws:SourceIp never matches traffic through a VPC endpoint."
        ),
        FindingCode::ACCESS_DENIED_IDENTITY_POLICY => format!(
            "Grant {action} on {resource} to role {role}: aws iam simulate-principal-policy --policy-source-arn arn:aws:iam::<account>:role/{role} --action-names {action} --resource-arns {resource} shows what is missing."
        ),
        FindingCode::ACCESS_DENIED_PERMISSIONS_BOUNDARY => format!(
            "Allow {action} in the permissions boundary of role {role}: aws iam get-role --role-name {role} --query Role.PermissionsBoundary"
        ),
        FindingCode::ACCESS_DENIED_SESSION_POLICY => {
            format!("Allow {action} in the session policy passed to AssumeRole (or pass none).")
        }
        FindingCode::ACCESS_DENIED_SCP | FindingCode::ACCESS_DENIED_RCP => format!(
            "Ask the organization's administrators to allow {action} on {resource} (aws organizations list-policies-for-target --target-id <account-id> --filter {}).",
            if code == FindingCode::ACCESS_DENIED_SCP {
                "SERVICE_CONTROL_POLICY"
            } else {
                "RESOURCE_CONTROL_POLICY"
            }
        ),
        _ => format!(
            "Check in order: (1) the endpoint policy: {endpoint_policy}; (2) the resource policy: {resource_policy} (aws:SourceVpce / aws:SourceVpc conditions; aws:SourceIp never matches through an endpoint); (3) role {role}'s IAM policies for {action} on {resource}."
        ),
    }
}

/// A directory bucket's ARN (`arn:aws:s3express:<region>:<account>:bucket/<name>`), with `*`
/// for what the run does not know.
pub(super) fn directory_bucket_arn(r: &ProbeResults, bucket: &str) -> String {
    format!(
        "arn:aws:s3express:{}:{}:bucket/{bucket}",
        r.region.effective.as_deref().unwrap_or("*"),
        r.instance
            .as_ref()
            .and_then(|i| i.account_id.as_deref())
            .unwrap_or("*"),
    )
}
