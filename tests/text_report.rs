//! The text report is what people read (SSM Run Command output): errors from the AWS SDK must
//! reach it as sentences, never as Rust debug dumps. Runs the real binary against the loopback
//! fakes of tests/common in healthy and failing scenarios and checks every line of the text.
//! Needs root and moto (see tests/common and tests/signed_calls.rs).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step stops the test

mod common;
mod support;

use common::*;
use support::*;

/// Longest line allowed in the text report, findings' "fix:" lines aside. Measured in these
/// scenarios: 337 characters (the DNS line of a name answered by the applications and both
/// resolvers); a debug dump of one SDK error was 1.3 KB on one line.
const MAX_LINE: usize = 400;
/// Longest "fix:" line: remediation carries whole commands. Measured: 492 characters (the
/// three-step check of ACCESS_DENIED_UNATTRIBUTED, naming the VPC, bucket and role twice);
/// names at their longest (63-character bucket, 64-character role) add about 200.
const MAX_FIX_LINE: usize = 800;

/// What Rust's Debug formatting of the SDK's errors and options looks like.
const DEBUG_MARKERS: &[&str] = &[
    "{ ",
    "Some(",
    "DispatchFailure",
    "ConnectorError",
    "source:",
];

/// Every line of the text report is free of debug formatting and of bounded length.
fn assert_readable(scenario: &str, out: &Outcome) {
    assert!(
        !out.stdout.is_empty(),
        "{scenario}: no text\n{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("VERDICT"),
        "{scenario}: not a text report\n{}",
        out.stdout
    );
    for line in out.stdout.lines() {
        for marker in DEBUG_MARKERS {
            assert!(
                !line.contains(marker),
                "{scenario}: {marker:?} in the text report:\n{line}\n--- whole report\n{}",
                out.stdout
            );
        }
        let max = if line.trim_start().starts_with("fix: ") {
            MAX_FIX_LINE
        } else {
            MAX_LINE
        };
        assert!(
            line.chars().count() <= max,
            "{scenario}: a line of {} characters (max {max}):\n{line}",
            line.chars().count()
        );
    }
}

/// The CHECKS line of the credentials check.
fn creds_line(out: &Outcome) -> String {
    out.stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("credentials"))
        .unwrap_or_else(|| panic!("no creds line\n{}", out.stdout))
        .to_string()
}

#[test]
fn healthy_run_where_sts_answers_nonsense() {
    // The lab's STS name leads to a TLS server that answers every request with an empty 200.
    let lab = Lab::healthy(141);
    let out = lab.probe(&[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_readable("healthy", &out);
    let line = creds_line(&out);
    assert!(
        line.contains("identity unknown (STS answered HTTP 200 but the answer could not be read"),
        "{line}"
    );
}

#[test]
fn sts_unreachable_is_a_sentence() {
    let id = 142;
    let mut lab = Lab::bare(id, ImdsFacts::example());
    // STS has an address of its own, and every packet to it is dropped.
    let sts_ip = Lab::ip(id, 1, 30);
    let records = || {
        DnsRecords::new()
            .add(&bucket_name(), Lab::ip(id, 1, 10))
            .add(&s3_name(), Lab::ip(id, 1, 10))
            .add(&ddb_name(), Lab::ip(id, 1, 70))
            .add(&account_ddb_name(), Lab::ip(id, 1, 70))
            .add(&sts_name(), sts_ip)
    };
    lab.start_dns(records(), records());
    lab.start_service(lab.s3_ip(), None);
    lab.start_service(lab.ddb_ip(), None);
    let sts = sts_ip.to_string();
    lab.drop_packets("OUTPUT", &["-d", &sts, "-p", "tcp", "--dport", "443"]);
    let out = lab.probe(&[]);
    assert_readable("sts unreachable", &out);
    let line = creds_line(&out);
    assert!(line.contains("STS did not accept a connection"), "{line}");
    assert!(line.contains("--silence-timeout"), "{line}");
}

#[test]
fn no_credentials_off_ec2_with_region() {
    let mut lab = Lab::healthy(143);
    // A port nothing listens on: no IMDS, so no instance role either.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", dead.local_addr().expect("local addr"));
    drop(dead);
    lab.set_env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &url);
    let out = lab.probe(&["--region", REGION]);
    out.expect(1, &["IMDS_UNAVAILABLE", "NO_CREDENTIALS"], &[]);
    assert_readable("no credentials", &out);
    let line = creds_line(&out);
    assert!(line.contains("no credentials"), "{line}");
    // Each provider of the chain is named with why it had nothing.
    for provider in ["environment", "profile", "web identity", "IMDS"] {
        assert!(line.contains(provider), "{provider}: {line}");
    }
    let detail = out.finding("NO_CREDENTIALS")["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(detail.contains("IMDS"), "{detail}");
    assert!(detail.chars().count() <= 300, "{detail}");
}

#[test]
fn refused_connections_a_dead_proxy_and_an_unknown_issuer() {
    // No S3 front: the kernel refuses; then every call goes to a proxy that is not there.
    let id = 144;
    let mut lab = Lab::bare(id, ImdsFacts::example());
    let records = lab.records();
    lab.start_dns(records.clone(), records);
    lab.start_service(lab.ddb_ip(), None);
    let out = lab.probe(&[]);
    out.expect(1, &["TCP_REFUSED"], &[]);
    assert_readable("refused", &out);
    lab.set_env("HTTPS_PROXY", &format!("http://{}:3128", Lab::ip(id, 3, 9)));
    let out = lab.probe(&[]);
    out.expect(1, &["PROXY_UNREACHABLE"], &[]);
    assert_readable("dead proxy", &out);
    // The host trusts another root: every TLS handshake, the SDK's included, fails.
    let mut lab = Lab::healthy(147);
    let other = TestCa::new("Some other root");
    let path = other.write_pem(lab.dir.path(), "other.pem");
    lab.set_env("SSL_CERT_FILE", &path.display().to_string());
    let out = lab.probe(&[]);
    out.expect(1, &["TLS_FAILED"], &[]);
    assert_readable("unknown issuer", &out);
}

/// STS's Query-protocol error document.
fn sts_error(status: u16, code: &str, message: &str) -> CannedResponse {
    CannedResponse {
        status,
        reason: "Forbidden".into(),
        headers: vec![
            ("Content-Type".into(), "text/xml".into()),
            (
                "x-amzn-RequestId".into(),
                "c6104cbe-af31-11e0-8154-cbc7ccf896c7".into(),
            ),
        ],
        body: format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>"
        ),
    }
}

fn sts_rule(response: CannedResponse) -> FrontRule {
    FrontRule {
        host: Some(sts_name()),
        ..FrontRule::any(response)
    }
}

#[test]
fn signed_calls_denied_and_sts_errors() {
    let id = 145;
    // STS refuses the token; S3 denies GetObject; DynamoDB answers garbage.
    let mut s3 = FrontOptions::default();
    s3.rules.push(sts_rule(sts_error(
        403,
        "InvalidClientTokenId",
        "The security token included in the request is invalid.",
    )));
    s3.rules.push(FrontRule {
        host: Some(format!("bucket-{id}.s3.{REGION}.amazonaws.com")),
        method: Some("GET".into()),
        path_prefix: Some("/probe/".into()),
        amz_target_contains: None,
        body_contains: None,
        response: CannedResponse::s3_error(403, "AccessDenied", "Access Denied"),
    });
    let ddb = FrontOptions {
        rules: vec![FrontRule::any(CannedResponse {
            status: 200,
            reason: "OK".into(),
            headers: vec![("Content-Type".into(), "application/x-amz-json-1.0".into())],
            body: "this is not JSON".into(),
        })],
        ..FrontOptions::default()
    };
    let lab = Lab::aws(id, ImdsFacts::example(), s3, ddb, true);
    let out = lab.probe(&["--key", "probe/object.txt"]);
    assert_readable("denied", &out);
    let line = creds_line(&out);
    assert!(line.contains("InvalidClientTokenId"), "{line}");
    // STS's answer to an unreadable request body: a response the SDK cannot parse.
    let mut s3 = FrontOptions::default();
    s3.rules.push(sts_rule(CannedResponse {
        status: 200,
        reason: "OK".into(),
        headers: vec![("Content-Type".into(), "text/xml".into())],
        body: "<not-sts".into(),
    }));
    let lab = Lab::aws(146, ImdsFacts::example(), s3, FrontOptions::default(), true);
    let out = lab.probe(&[]);
    assert_readable("unparseable STS answer", &out);
    let line = creds_line(&out);
    assert!(line.contains("could not be read"), "{line}");
}
