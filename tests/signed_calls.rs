//! The real binary's signed calls against a real S3/DynamoDB/STS API (moto server) behind TLS
//! fronts with the test CA. Where moto does not behave like AWS (endpoint and bucket policies,
//! wrong-region redirects, clock skew), the front answers with AWS's own status codes, headers
//! and message texts. Needs root and moto (scripts/install-deps.sh).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step stops the test

mod common;
mod support;

use common::*;
use support::*;

const PRINCIPAL: &str = "arn:aws:sts::123456789012:assumed-role/probe-role/i-0123456789abcdef0";

fn bucket_host(lab_id: u8) -> String {
    format!("bucket-{lab_id}.s3.{REGION}.amazonaws.com")
}

fn deny_on(
    host: String,
    method: &str,
    path_prefix: &str,
    response: CannedResponse,
) -> FrontOptions {
    FrontOptions {
        rules: vec![FrontRule {
            host: Some(host),
            method: Some(method.into()),
            path_prefix: Some(path_prefix.into()),
            amz_target_contains: None,
            body_contains: None,
            response,
        }],
        ..FrontOptions::default()
    }
}

fn call<'a>(out: &'a Outcome, operation: &str) -> &'a serde_json::Value {
    out.report()["checks"]
        .as_array()
        .and_then(|a| {
            a.iter().find(|c| {
                c["evidence"]["type"] == "call" && c["evidence"]["operation"] == operation
            })
        })
        .map(|c| &c["evidence"])
        .unwrap_or_else(|| panic!("no {operation} call\n{}", out.stdout))
}

#[test]
fn healthy_calls_prove_the_path_and_write_nothing_without_write_test() {
    let lab = Lab::aws(
        41,
        ImdsFacts::example(),
        FrontOptions::default(),
        FrontOptions::default(),
        true,
    );
    let out = lab.probe(&[
        "--key",
        "probe/object.txt",
        "--item-key",
        r#"{"pk":{"S":"id-1"}}"#,
    ]);
    out.expect(0, &[], &["NO_CREDENTIALS", "ACCESS_DENIED_UNATTRIBUTED"]);
    for op in [
        "HeadBucket",
        "GetBucketLocation",
        "ListObjectsV2",
        "GetObject",
        "DescribeTable",
        "GetItem",
    ] {
        let c = call(&out, op);
        assert_eq!(c["outcome"], "ok", "{op}: {c}");
        assert!(
            c["peer"]
                .as_str()
                .is_some_and(|p| p.starts_with("127.41.1.")),
            "{op} peer: {c}"
        );
    }
    assert_eq!(
        call(&out, "GetObject")["detail"],
        "15 byte(s) of probe/object.txt read"
    );
    assert_eq!(
        call(&out, "GetBucketLocation")["detail"],
        format!("location {REGION}")
    );
    assert_eq!(call(&out, "GetItem")["detail"], "item found");
    // The account-based endpoint was called too, at its own name.
    let account = call(&out, "DescribeTable (account endpoint)");
    assert_eq!(account["outcome"], "ok", "{account}");
    assert_eq!(account["endpoint_host"], account_ddb_name());
    // Credentials came from the instance role over IMDS; STS said who we are.
    let creds = out.report()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "credentials")
        .expect("credentials check");
    assert_eq!(creds["status"], "ok", "{creds}");
    assert!(
        creds["evidence"]["identity_arn"].as_str().is_some(),
        "{creds}"
    );
    // One IMDS session: the SDK's credential chain found the role through the client of the
    // instance facts, so IMDS handed out one session token for the whole run.
    assert_eq!(creds["evidence"]["source"], "IMDSv2", "{creds}");
    let imds_requests = lab.imds.requests();
    let tokens = imds_requests
        .iter()
        .filter(|r| r.as_str() == "PUT /latest/api/token")
        .count();
    assert_eq!(tokens, 1, "{imds_requests:?}");
    assert!(
        imds_requests
            .iter()
            .any(|r| r.starts_with("GET /latest/meta-data/iam/security-credentials/probe-role")),
        "{imds_requests:?}"
    );
    assert!(!out.report().to_string().contains(FAKE_SECRET_ACCESS_KEY));
    assert!(!out.report().to_string().contains(FAKE_ACCESS_KEY_ID));
    let (kind, confidence) = out.path(&format!("s3:{}", lab.bucket));
    assert_eq!(
        (kind.as_str(), confidence.as_str()),
        ("gateway-endpoint", "confirmed")
    );
    let evidence = out.report()["targets"][0]["path"]["evidence"].to_string();
    assert!(evidence.contains("signed"), "{evidence}");
    // Nothing was written.
    let requests = lab.fronts[0].requests();
    assert!(
        !requests
            .iter()
            .any(|r| r.starts_with("PUT") || r.starts_with("DELETE")),
        "{requests:?}"
    );
}

#[test]
fn write_test_puts_then_deletes_under_its_prefix() {
    let lab = Lab::aws(
        42,
        ImdsFacts::example(),
        FrontOptions::default(),
        FrontOptions::default(),
        true,
    );
    let out = lab.probe(&["--write-test"]);
    out.expect(0, &[], &[]);
    assert_eq!(call(&out, "PutObject")["outcome"], "ok");
    assert_eq!(call(&out, "DeleteObject")["outcome"], "ok");
    let requests = lab.fronts[0].requests();
    let put = requests
        .iter()
        .find(|r| r.starts_with("PUT"))
        .expect("a PUT");
    assert!(put.contains("/vpce-probe-write-test/"), "{put}");
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("DELETE") && r.contains("/vpce-probe-write-test/"))
    );
}

#[test]
fn endpoint_policy_denial_names_the_policy_action_and_resource() {
    let id = 43;
    let message = format!(
        "User: {PRINCIPAL} is not authorized to perform: s3:GetObject on resource: \"arn:aws:s3:::bucket-{id}/probe/object.txt\" because no VPC endpoint policy allows the s3:GetObject action"
    );
    let s3 = deny_on(
        bucket_host(id),
        "GET",
        "/probe/",
        CannedResponse::s3_error(403, "AccessDenied", &message),
    );
    let lab = Lab::aws(id, ImdsFacts::example(), s3, FrontOptions::default(), true);
    let out = lab.probe(&["--key", "probe/object.txt"]);
    out.expect(
        1,
        &["ACCESS_DENIED_VPCE_POLICY"],
        &["ACCESS_DENIED_UNATTRIBUTED"],
    );
    let f = out.finding("ACCESS_DENIED_VPCE_POLICY");
    let title = f["title"].as_str().unwrap();
    assert!(
        title.contains("s3:GetObject") && title.contains("arn:aws:s3:::bucket-43/probe/object.txt"),
        "{title}"
    );
    assert!(
        f["remediation"]
            .as_str()
            .unwrap()
            .contains("describe-vpc-endpoints"),
        "{f}"
    );
    assert!(
        f["remediation"].as_str().unwrap().contains("vpc-0aaa"),
        "{f}"
    );
    // The other calls still worked.
    assert_eq!(call(&out, "HeadBucket")["outcome"], "ok");
}

#[test]
fn bucket_policy_explicit_deny_and_bare_head_denial() {
    let id = 44;
    let message = format!(
        "User: {PRINCIPAL} is not authorized to perform: s3:ListBucket on resource: \"arn:aws:s3:::bucket-{id}\" with an explicit deny in a resource-based policy"
    );
    let mut s3 = deny_on(
        bucket_host(id),
        "GET",
        "/?list-type",
        CannedResponse::s3_error(403, "AccessDenied", &message),
    );
    s3.rules.push(FrontRule {
        host: Some(bucket_host(id)),
        method: Some("HEAD".into()),
        path_prefix: None,
        amz_target_contains: None,
        body_contains: None,
        response: CannedResponse::s3_error(403, "AccessDenied", "Access Denied"),
    });
    let lab = Lab::aws(id, ImdsFacts::example(), s3, FrontOptions::default(), true);
    let out = lab.probe(&[]);
    out.expect(
        1,
        &[
            "ACCESS_DENIED_RESOURCE_POLICY",
            "ACCESS_DENIED_UNATTRIBUTED",
        ],
        &[],
    );
    let f = out.finding("ACCESS_DENIED_RESOURCE_POLICY");
    assert!(
        f["remediation"]
            .as_str()
            .unwrap()
            .contains("aws:SourceVpce"),
        "{f}"
    );
    let bare = out.finding("ACCESS_DENIED_UNATTRIBUTED");
    let fix = bare["remediation"].as_str().unwrap();
    // In order: endpoint policy, bucket policy, IAM.
    let (e, b, i) = (
        fix.find("endpoint policy").unwrap(),
        fix.find("get-bucket-policy").unwrap(),
        fix.find("IAM").unwrap(),
    );
    assert!(e < b && b < i, "{fix}");
}

#[test]
fn dynamodb_identity_policy_denial() {
    let id = 45;
    let message = format!(
        "User: {PRINCIPAL} is not authorized to perform: dynamodb:DescribeTable on resource: arn:aws:dynamodb:{REGION}:123456789012:table/table-{id} because no identity-based policy allows the dynamodb:DescribeTable action"
    );
    let ddb = FrontOptions {
        rules: vec![FrontRule {
            host: None,
            method: None,
            path_prefix: None,
            amz_target_contains: Some("DescribeTable".into()),
            body_contains: None,
            response: CannedResponse::dynamodb_error(400, "AccessDeniedException", &message),
        }],
        ..FrontOptions::default()
    };
    let lab = Lab::aws(id, ImdsFacts::example(), FrontOptions::default(), ddb, true);
    let out = lab.probe(&[]);
    out.expect(1, &["ACCESS_DENIED_IDENTITY_POLICY"], &["TABLE_NOT_FOUND"]);
    let f = out.finding("ACCESS_DENIED_IDENTITY_POLICY");
    assert_eq!(f["target"], format!("dynamodb:table-{id}"));
    assert!(
        f["remediation"]
            .as_str()
            .unwrap()
            .contains("simulate-principal-policy"),
        "{f}"
    );
}

#[test]
fn bucket_in_another_region_is_a_region_mismatch() {
    let id = 46;
    let s3 = FrontOptions {
        rules: vec![FrontRule {
            host: Some(bucket_host(id)),
            method: None,
            path_prefix: None,
            amz_target_contains: None,
            body_contains: None,
            response: CannedResponse::s3_wrong_region(&format!("bucket-{id}"), "us-west-2"),
        }],
        ..FrontOptions::default()
    };
    let lab = Lab::aws(id, ImdsFacts::example(), s3, FrontOptions::default(), true);
    let out = lab.probe(&[]);
    out.expect(1, &["WRONG_REGION_REDIRECT", "REGION_MISMATCH_BUCKET"], &[]);
    assert_eq!(call(&out, "HeadBucket")["bucket_region"], "us-west-2");
    let roots = &out.report()["verdict"]["root_causes"];
    assert_eq!(roots[0]["code"], "REGION_MISMATCH_BUCKET", "{}", out.stdout);
}

#[test]
fn missing_bucket_and_table() {
    let lab = Lab::aws(
        47,
        ImdsFacts::example(),
        FrontOptions::default(),
        FrontOptions::default(),
        false,
    );
    let out = lab.probe(&[]);
    out.expect(
        1,
        &["BUCKET_NOT_FOUND", "TABLE_NOT_FOUND"],
        &["ACCESS_DENIED_UNATTRIBUTED"],
    );
}

#[test]
fn server_clock_far_from_ours_is_clock_skew() {
    let skewed = || FrontOptions {
        date_offset_secs: 1800,
        ..FrontOptions::default()
    };
    let lab = Lab::aws(48, ImdsFacts::example(), skewed(), skewed(), true);
    let out = lab.probe(&[]);
    out.expect(1, &["CLOCK_SKEW"], &[]);
    let f = out.finding("CLOCK_SKEW");
    assert!(f["title"].as_str().unwrap().contains("behind"), "{f}");
    let offset = call(&out, "HeadBucket")["clock_offset_secs"]
        .as_i64()
        .unwrap();
    assert!((1790..=1810).contains(&offset), "{offset}");
}

/// The services refuse requests signed 30 minutes off their clock, as AWS does: S3 answers
/// HeadBucket with a bare 403 (a HEAD answer has no body, so no error code) and the other calls
/// with RequestTimeTooSkewed, DynamoDB with "Signature expired". The bare 403 is the clock,
/// not "a policy AWS does not name".
#[test]
fn a_bare_head_403_on_a_skewed_clock_is_clock_skew() {
    let skewed = || FrontOptions {
        date_offset_secs: 1800,
        max_request_skew_secs: Some(300),
        ..FrontOptions::default()
    };
    let lab = Lab::aws(52, ImdsFacts::example(), skewed(), skewed(), true);
    let out = lab.probe(&[]);
    out.expect(1, &["CLOCK_SKEW"], &["ACCESS_DENIED_UNATTRIBUTED"]);
    let head = call(&out, "HeadBucket");
    assert_eq!(head["status"], 403, "{head}");
    assert!(
        head["error_code"].is_null() || head["error_code"] == "Forbidden",
        "{head}"
    );
    assert_eq!(
        call(&out, "GetBucketLocation")["error_code"],
        "RequestTimeTooSkewed"
    );
    // Every call is signed by the instance's clock: none is corrected by the offset an earlier
    // answer taught the SDK, so none succeeds whatever order the answers came in.
    let calls: Vec<&serde_json::Value> = out.report()["checks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|c| c["evidence"]["type"] == "call")
                .collect()
        })
        .unwrap_or_default();
    assert!(calls.len() >= 4, "{}", out.stdout);
    for c in calls {
        let status = c["evidence"]["status"].as_u64().unwrap_or(0);
        assert!(status >= 400, "a call succeeded on a skewed clock: {c}");
    }
    let roots = out.report()["verdict"]["root_causes"].to_string();
    assert!(!roots.contains("ACCESS_DENIED"), "{roots}");
    let s3 = out.report()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "CLOCK_SKEW" && f["target"] == "s3:bucket-52")
        .cloned()
        .unwrap_or_else(|| panic!("no CLOCK_SKEW for the bucket\n{}", out.stdout));
    assert!(
        s3.to_string().contains("RequestTimeTooSkewed") || s3.to_string().contains("bare 403"),
        "{s3}"
    );
}

/// STS and the internet canary are silent (dropped), as from a private subnet: they are given
/// the short bound of `--silence-timeout`, and the evidence says so; the S3 and DynamoDB calls
/// are signed with the credentials all the same.
#[test]
fn silent_sts_and_canary_get_the_silence_bound() {
    let id = 57;
    let mut lab = Lab::aws(
        id,
        ImdsFacts::example(),
        FrontOptions::default(),
        FrontOptions::default(),
        true,
    );
    // STS (and EC2) answer at an address that drops everything, like the canary's: the
    // lab's resolvers are replaced by ones that say so.
    lab.system_dns = None;
    lab.vpc_dns = None;
    let silent = Lab::ip(id, 3, 1);
    let records = DnsRecords::new()
        .add(&bucket_host(id), lab.s3_ip())
        .add(&sts_name(), silent)
        .add(&ec2_name(), silent)
        .add(&s3_name(), lab.s3_ip())
        .add(&ddb_name(), lab.ddb_ip())
        .add(&account_ddb_name(), lab.ddb_ip());
    lab.start_dns(records.clone(), records);
    let silent_ip = silent.to_string();
    lab.drop_packets("OUTPUT", &["-d", &silent_ip, "-p", "tcp"]);
    let canary = Lab::ip(id, 2, 1).to_string();
    lab.drop_packets("OUTPUT", &["-d", &canary, "-p", "tcp"]);
    let out = lab.probe(&["--silence-timeout", "300ms"]);
    out.expect(0, &[], &["NO_CREDENTIALS", "TCP_TIMEOUT"]);
    let report = out.report();
    assert_eq!(report["config"]["silence_timeout_ms"], 300, "{report}");
    let check = |kind: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == kind)
            .unwrap_or_else(|| panic!("no {kind} check"))
            .clone()
    };
    let canary = check("canary");
    assert_eq!(canary["evidence"]["outcome"], "unreachable", "{canary}");
    assert_eq!(canary["evidence"]["connect_timeout_ms"], 300, "{canary}");
    let summary = canary["summary"].as_str().unwrap();
    assert!(
        summary.contains("300 ms") && summary.contains("--silence-timeout"),
        "{summary}"
    );
    let creds = check("credentials");
    assert_eq!(creds["status"], "warn", "{creds}");
    let identity_error = creds["evidence"]["identity_error"].as_str().unwrap();
    assert!(
        identity_error.contains("STS did not accept a connection")
            && identity_error.contains("within 300 ms, the --silence-timeout bound"),
        "{identity_error}"
    );
    // The bound is said once: silence adds nothing to it.
    assert_eq!(
        identity_error.matches("300 ms").count(),
        1,
        "{identity_error}"
    );
    assert!(!identity_error.contains("no answer"), "{identity_error}");
    // The EC2 API's reads were not made: the same bound said it is silent.
    let ec2 = check("ec2");
    let reads = ec2["evidence"]["reads"].as_array().unwrap();
    assert!(!reads.is_empty(), "{ec2}");
    for read in reads {
        assert_eq!(read["outcome"], "failed", "{ec2}");
        let error = read["error"].as_str().unwrap();
        assert!(
            error.contains("EC2 did not accept a connection")
                && error.contains("--silence-timeout"),
            "{error}"
        );
    }
    // The calls were signed with the credentials all the same.
    for op in ["HeadBucket", "DescribeTable"] {
        assert_eq!(call(&out, op)["outcome"], "ok", "{op}");
    }
}

#[test]
fn no_role_means_no_credentials_and_no_calls() {
    let mut facts = ImdsFacts::example();
    facts.role = None;
    let lab = Lab::aws(
        49,
        facts,
        FrontOptions::default(),
        FrontOptions::default(),
        true,
    );
    let out = lab.probe(&[]);
    out.expect(1, &["NO_CREDENTIALS"], &["ACCESS_DENIED_UNATTRIBUTED"]);
    assert_eq!(call(&out, "HeadBucket")["outcome"], "skipped");
    assert!(
        lab.fronts[0]
            .requests()
            .iter()
            .all(|r| !r.contains("bucket-49"))
    );
}

#[test]
fn a_via_header_shows_a_relay_in_the_path() {
    let relayed = || FrontOptions {
        extra_headers: vec![("Via".into(), "1.1 corp-proxy (squid/5.7)".into())],
        ..FrontOptions::default()
    };
    let lab = Lab::aws(
        50,
        ImdsFacts::example(),
        relayed(),
        FrontOptions::default(),
        true,
    );
    let out = lab.probe(&[]);
    out.expect(1, &["PATH_NOT_GATEWAY_ENDPOINT"], &[]);
    assert_eq!(out.path("s3:bucket-50").0, "proxy");
    assert_eq!(out.path("dynamodb:table-50").0, "gateway-endpoint");
}

#[test]
fn calls_take_the_proxy_exactly_when_the_sdk_would() {
    let mut lab = Lab::aws(
        51,
        ImdsFacts::example(),
        FrontOptions::default(),
        FrontOptions::default(),
        true,
    );
    let hosts = vec![
        (bucket_host(51), lab.s3_ip()),
        (s3_name(), lab.s3_ip()),
        (sts_name(), lab.s3_ip()),
        (ddb_name(), lab.ddb_ip()),
        (account_ddb_name(), lab.ddb_ip()),
    ];
    let proxy = start_connect_proxy(
        "127.51.3.1:3128".parse().unwrap(),
        ProxyMode::Tunnel,
        hosts,
        None,
    );
    lab.set_env("HTTPS_PROXY", "http://127.51.3.1:3128");
    // DynamoDB is exempted the way all three clients understand.
    lab.set_env(
        "NO_PROXY",
        &format!("{},ddb.{REGION}.amazonaws.com", ddb_name()),
    );
    let out = lab.probe(&["--expect-path", "any"]);
    out.expect(0, &["PROXY_IN_PATH"], &["PROXY_UNREACHABLE"]);
    let head = call(&out, "HeadBucket");
    assert_eq!(head["outcome"], "ok", "{head}");
    assert_eq!(head["proxy"], "http://127.51.3.1:3128");
    let connects = proxy.connects();
    assert!(
        connects.contains(&format!("{}:443", bucket_host(51))),
        "{connects:?}"
    );
    assert!(
        !connects
            .iter()
            .any(|c| c.contains("dynamodb") || c.contains(".ddb.")),
        "{connects:?}"
    );
    assert_eq!(call(&out, "DescribeTable")["outcome"], "ok");
    assert!(call(&out, "DescribeTable")["proxy"].is_null());
    assert_eq!(out.path("s3:bucket-51").0, "proxy");
    assert_eq!(out.path("dynamodb:table-51").0, "gateway-endpoint");
}

fn target_call<'a>(
    out: &'a Outcome,
    target: &str,
    operation: &str,
) -> Option<&'a serde_json::Value> {
    out.report()["checks"].as_array().and_then(|a| {
        a.iter()
            .map(|c| &c["evidence"])
            .find(|e| e["type"] == "call" && e["target"] == target && e["operation"] == operation)
    })
}

/// A directory bucket: the SDK's own CreateSession on the zonal name comes first, then the
/// zonal calls (no GetBucketLocation, which directory buckets do not have); the path is judged
/// without published ranges, by the hop check.
#[test]
fn a_directory_bucket_is_called_through_the_sdks_session() {
    let id = 58;
    let lab = express_lab(id, session_granted());
    let bucket = directory_bucket(id);
    let out = probe_alone(&lab, &["--bucket", &bucket, "--key", "probe/object.txt"]);
    out.expect(
        0,
        &[],
        &[
            "DNS_OUTSIDE_SERVICE_RANGE",
            "ACCESS_DENIED_UNATTRIBUTED",
            "ENDPOINT_RULES_REFUSED",
        ],
    );
    let target = format!("s3express:{bucket}");
    for op in ["HeadBucket", "ListObjectsV2", "GetObject"] {
        let c = target_call(&out, &target, op).unwrap_or_else(|| panic!("{op}\n{}", out.stdout));
        assert_eq!(c["outcome"], "ok", "{op}: {c}");
        assert_eq!(c["action"], "s3express:CreateSession", "{op}: {c}");
        assert_eq!(c["endpoint_host"], zonal_host(id), "{op}: {c}");
    }
    assert!(target_call(&out, &target, "GetBucketLocation").is_none());
    let requests = lab.fronts[2].requests();
    assert!(
        !requests.iter().any(|r| r.contains("?location")),
        "{requests:?}"
    );
    let session = requests
        .iter()
        .position(|r| r.starts_with(&format!("GET {} /?session", zonal_host(id))));
    let head = requests
        .iter()
        .position(|r| r.starts_with(&format!("HEAD {} /", zonal_host(id))));
    assert!(
        matches!((session, head), (Some(s), Some(h)) if s < h),
        "{requests:?}"
    );
    let t = out.report()["targets"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["id"] == target.as_str()))
        .expect("the directory bucket's target");
    assert_eq!(t["service"], "s3express", "{t}");
    assert_eq!(
        t["endpoint_names"],
        serde_json::json!([
            zonal_host(id),
            format!("s3express-control.{REGION}.amazonaws.com")
        ])
    );
    assert_eq!(t["path"]["kind"], "gateway-endpoint", "{t}");
}

/// CreateSession refused by the endpoint policy: the SDK's HeadBucket fails before it is sent,
/// and the session's answer is classified like any S3 denial, with its action.
#[test]
fn a_refused_create_session_is_classified_like_an_s3_denial() {
    let id = 59;
    let bucket = directory_bucket(id);
    let message = format!(
        "User: {PRINCIPAL} is not authorized to perform: s3express:CreateSession on resource: \"arn:aws:s3express:{REGION}:123456789012:bucket/{bucket}\" because no VPC endpoint policy allows the s3express:CreateSession action"
    );
    let lab = express_lab(id, CannedResponse::s3_error(403, "AccessDenied", &message));
    let out = probe_alone(&lab, &["--bucket", &bucket]);
    out.expect(
        1,
        &["ACCESS_DENIED_VPCE_POLICY"],
        &["ACCESS_DENIED_UNATTRIBUTED"],
    );
    let target = format!("s3express:{bucket}");
    let head = target_call(&out, &target, "HeadBucket").expect("HeadBucket");
    assert_eq!(head["outcome"], "service-error", "{head}");
    assert_eq!(head["status"], 403, "{head}");
    assert_eq!(head["error_code"], "AccessDenied", "{head}");
    let f = out.finding("ACCESS_DENIED_VPCE_POLICY");
    assert_eq!(f["target"], target.as_str(), "{f}");
    assert!(
        f["title"]
            .as_str()
            .is_some_and(|t| t.contains("s3express:CreateSession")),
        "{f}"
    );
}

/// Each canned bucket's calls, as (bucket, the front's connection numbers they came on).
fn connections_per_bucket(out: &Outcome, front: &FrontServer) -> Vec<(String, Vec<usize>)> {
    let mut by_bucket: std::collections::BTreeMap<String, std::collections::BTreeSet<usize>> =
        Default::default();
    for (connection, line) in front.requests_by_connection() {
        let host = line.split(' ').nth(1).unwrap_or_default();
        if let Some(bucket) = host.strip_suffix(&format!(".s3.{REGION}.amazonaws.com"))
            && bucket.starts_with("inturn-bucket-")
        {
            by_bucket
                .entry(bucket.to_string())
                .or_default()
                .insert(connection);
        }
    }
    assert_eq!(by_bucket.len(), 3, "{:?}\n{}", front.requests(), out.stdout);
    by_bucket
        .into_iter()
        .map(|(b, c)| (b, c.into_iter().collect()))
        .collect()
}

/// The probe's arguments for the other two buckets of `three_canned_buckets` (the lab's own
/// target is the first) and the key they hold.
const OTHER_TWO_BUCKETS: &[&str] = &[
    "--bucket",
    "inturn-bucket-2",
    "--bucket",
    "inturn-bucket-3",
    "--key",
    CANNED_OBJECT_KEY,
];

/// A lab whose fronts answer three buckets (`inturn-bucket-1..3`) and a table themselves; the
/// S3 front completes handshakes and answers nothing when `s3_silent`.
fn three_canned_buckets(id: u8, s3_silent: bool) -> Lab {
    let mut lab = Lab::bare(id, ImdsFacts::example());
    lab.bucket = "inturn-bucket-1".into();
    lab.table = "inturn-table-1".into();
    let mut records = lab.records();
    for b in ["inturn-bucket-2", "inturn-bucket-3"] {
        records = records.add(&format!("{b}.s3.{REGION}.amazonaws.com"), lab.s3_ip());
    }
    lab.start_dns(records.clone(), records);
    let canned = |silent_after_handshake| FrontOptions {
        rules: healthy_target_rules("inturn-bucket-", "inturn-table-", REGION),
        silent_after_handshake,
        ..FrontOptions::default()
    };
    lab.start_aws_front(lab.s3_ip(), canned(s3_silent));
    lab.start_aws_front(lab.ddb_ip(), canned(false));
    lab
}

#[test]
fn in_turn_a_bucket_whose_head_gets_no_answer_skips_its_other_calls() {
    // Three buckets (calls in turn) at a front that completes handshakes and answers nothing:
    // each bucket's HeadBucket times out and its other calls are not made, each saying why,
    // instead of waiting a timeout each one after another.
    let lab = three_canned_buckets(97, true);
    let out = lab.probe(OTHER_TWO_BUCKETS);
    let calls: Vec<&serde_json::Value> = out.report()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == "s3")
        .map(|c| &c["evidence"])
        .collect();
    for bucket in ["inturn-bucket-1", "inturn-bucket-2", "inturn-bucket-3"] {
        let of = |op: &str| {
            calls
                .iter()
                .find(|c| c["target"] == format!("s3:{bucket}") && c["operation"] == op)
                .unwrap_or_else(|| panic!("{bucket} {op}\n{}", out.stdout))
        };
        assert_eq!(
            of("HeadBucket")["outcome"],
            "timeout",
            "{}",
            of("HeadBucket")
        );
        for op in ["GetBucketLocation", "ListObjectsV2", "GetObject"] {
            let c = of(op);
            assert_eq!(c["outcome"], "skipped", "{c}");
            assert!(
                c["error_message"]
                    .as_str()
                    .is_some_and(|m| m.contains("HeadBucket had no answer")),
                "{c}"
            );
        }
    }
}

#[test]
fn more_bucket_calls_than_an_address_takes_at_once_go_in_turn_on_one_connection() {
    // Three buckets answered by the front itself: 12 calls for one address, over the default
    // bound of 8 in flight, so each bucket's calls go in turn over one connection; with the
    // bound raised above them, at once (one connection per call).
    let run = |bound: &str| {
        let mut lab = three_canned_buckets(96, false);
        lab.timeout = "5".into();
        let out = lab.probe(&[OTHER_TWO_BUCKETS, &["--max-calls-per-address", bound]].concat());
        out.expect(0, &[], &["ACCESS_DENIED_UNATTRIBUTED"]);
        for c in out.report()["checks"].as_array().unwrap() {
            if c["check"] == "s3" {
                assert_eq!(c["status"], "ok", "{c}");
            }
        }
        connections_per_bucket(&out, &lab.fronts[0])
    };
    for (bucket, connections) in run("8") {
        assert_eq!(
            connections.len(),
            1,
            "{bucket}: calls on connections {connections:?}"
        );
    }
    let at_once = run("64");
    assert!(
        at_once.iter().any(|(_, c)| c.len() > 1),
        "with the bound above the calls, a bucket's calls go at once: {at_once:?}"
    );
}

#[test]
fn the_calls_go_over_the_connections_the_tls_checks_verified() {
    // Three buckets in turn at one front: each bucket name's TLS check verified a connection,
    // and its calls use it instead of opening and handshaking another: the front sees no
    // connection beyond the checks' and those of the calls to names no check precedes.
    let mut lab = three_canned_buckets(95, false);
    lab.timeout = "5".into();
    let out = lab.probe(OTHER_TWO_BUCKETS);
    out.expect(0, &[], &["ACCESS_DENIED_UNATTRIBUTED"]);
    let front = &lab.fronts[0];
    let checks = out.report()["checks"].as_array().unwrap().clone();
    let verified_here = checks
        .iter()
        .filter(|c| {
            c["check"] == "tls"
                && c["status"] == "ok"
                && c["evidence"]["address"] == lab.s3_ip().to_string()
        })
        .count();
    assert!(verified_here >= 3, "{}", out.stdout);
    for (bucket, connections) in connections_per_bucket(&out, front) {
        assert_eq!(connections.len(), 1, "{bucket}: {connections:?}");
    }
    for c in checks.iter().filter(|c| c["check"] == "s3") {
        assert_eq!(c["status"], "ok", "{c}");
    }
    // The front also answers the control plane and STS, which no TLS check precedes.
    let others: std::collections::BTreeSet<usize> = front
        .requests_by_connection()
        .into_iter()
        .filter(|(_, line)| !line.contains("inturn-bucket-"))
        .map(|(connection, _)| connection)
        .collect();
    assert_eq!(
        front.connections(),
        verified_here + others.len(),
        "the bucket calls opened connections of their own: {:?}",
        front.requests_by_connection()
    );
}
