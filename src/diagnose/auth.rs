//! The findings about credentials, the clock, and the answers to the signed calls (denials
//! with the policy that denies, wrong-region redirects, failures).

use super::Findings;
use crate::catalogue::FindingCode;
use crate::checks::Check;
use crate::report::*;
use crate::results::{ProbeResults, TargetSpec};

pub(super) fn credential_findings(r: &ProbeResults, f: &mut Findings) {
    if let Some(c) = &r.credentials {
        if !c.found {
            let remediation = match r.instance.as_ref().and_then(|i| i.iam_role.as_ref()) {
                Some(role) => format!(
                    "The instance profile names role {role}, but its credentials could not be read: check IMDS (hop limit, IMDS_VIA_PROXY) and the role's trust policy."
                ),
                None => FindingCode::NO_CREDENTIALS.general_fix().into(),
            };
            f.add(
                FindingCode::NO_CREDENTIALS,
                Severity::Error,
                "host",
                "no AWS credentials in the default chain".into(),
                c.error.clone().unwrap_or_default(),
                remediation,
                vec!["credentials".into()],
            );
        } else if c.expired {
            f.add(
                FindingCode::CREDENTIALS_EXPIRED,
                Severity::Error,
                "host",
                format!(
                    "the credentials from {} expired",
                    c.source.as_deref().unwrap_or("the chain")
                ),
                format!(
                    "They expired at {}.",
                    c.expires_at.as_deref().unwrap_or("?")
                ),
                FindingCode::CREDENTIALS_EXPIRED.general_fix().into(),
                vec!["credentials".into()],
            );
        }
    }
    let skew = r
        .calls
        .iter()
        .filter_map(|c| c.clock_offset_secs.map(|o| (o, c)))
        .max_by_key(|(o, _)| o.abs());
    if let Some((offset, call)) = skew
        && offset.abs() > crate::classify::CLOCK_SKEW_LIMIT_SECS
    {
        f.add(
            FindingCode::CLOCK_SKEW,
            Severity::Error,
            "host",
            format!(
                "the local clock is {} s {} AWS's",
                offset.abs(),
                if offset > 0 { "behind" } else { "ahead of" }
            ),
            format!(
                "The Date header of {} {} differs from the local clock by {offset} s; signatures are rejected beyond {} s.",
                call.operation,
                call.target,
                crate::classify::CLOCK_SKEW_LIMIT_SECS
            ),
            FindingCode::CLOCK_SKEW.general_fix().into(),
            vec![call.id()],
        );
    }
}

pub(super) fn call_findings(r: &ProbeResults, t: &TargetSpec, f: &mut Findings) {
    for call in r.calls.iter().filter(|c| c.target == t.id) {
        match call.finding {
            None => call_failure_finding(r, t, call, f),
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
        ),
        vec![call.id()],
    );
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
) -> String {
    let vpc = instance
        .and_then(|i| i.vpc_id.as_deref())
        .unwrap_or("<vpc-id>");
    let region = region.unwrap_or("<region>");
    let role = instance
        .and_then(|i| i.iam_role.as_deref())
        .unwrap_or("<role>");
    let endpoint_policy = format!(
        "aws ec2 describe-vpc-endpoints --filters Name=vpc-id,Values={vpc} Name=service-name,Values=com.amazonaws.{region}.{} --query 'VpcEndpoints[].[VpcEndpointId,PolicyDocument]'",
        t.service.as_str()
    );
    let resource_policy = match t.service {
        Service::S3 => format!("aws s3api get-bucket-policy --bucket {}", t.name),
        Service::Dynamodb => format!(
            "aws dynamodb get-resource-policy --resource-arn <the ARN of table {}>",
            t.name
        ),
    };
    match code {
        FindingCode::ACCESS_DENIED_VPCE_POLICY => format!(
            "Allow {action} on {resource} in the gateway endpoint's policy: {endpoint_policy}; then aws ec2 modify-vpc-endpoint --vpc-endpoint-id <vpce-id> --policy-document file://policy.json"
        ),
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
