//! The time budget: a run the deadline cuts short says so and blames nothing it did not
//! measure. The real binary against loopback fakes (tests/common); each test owns
//! 127.<id>.0.0/16. Needs root (see tests/common).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step stops the test

mod common;
mod support;

use std::net::SocketAddr;

use common::*;
use support::*;

/// IMDS accepts and never answers, and the S3 front accepts TCP but never speaks TLS: with
/// `--deadline` equal to `--timeout`, the deadline ends the run before either times out. The
/// report must name the deadline, keep the region given with `--region`, list the checks it cut
/// short as skipped, and name no cause (IMDS, credentials, TLS) that was never measured.
#[test]
fn a_run_cut_by_the_deadline_names_it_and_blames_nothing_unmeasured() {
    let mut lab = Lab::bare(211, ImdsFacts::example());
    let records = lab.records();
    lab.start_dns(records.clone(), records);
    lab.start_service(lab.ddb_ip(), None);
    let _s3 = start_tcp_sink(SocketAddr::new(lab.s3_ip(), 443));
    lab.imds = start_imds(
        "127.0.0.1:0".parse().unwrap(),
        ImdsFacts::example(),
        ImdsMode::Unresponsive,
    );
    let endpoint = lab.imds.endpoint_url();
    lab.set_env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &endpoint);

    let out = lab.probe(&["--region", REGION, "--timeout", "2", "--deadline", "2"]);
    let report = out.report();

    // Exit 3 (the run is incomplete) and the verdict and a finding say why.
    assert_eq!(out.code, 3, "{}", out.stdout);
    assert!(
        report["verdict"]["summary"]
            .as_str()
            .unwrap()
            .contains("deadline"),
        "{}",
        report["verdict"]
    );
    assert_eq!(out.codes(), vec!["DEADLINE_EXCEEDED".to_string()]);
    assert_eq!(out.finding("DEADLINE_EXCEEDED")["severity"], "note");
    assert!(out.stdout.contains("DEADLINE_EXCEEDED"), "{}", out.stdout);

    // The region given is the region probed, not "no region ... pass --region".
    assert_eq!(report["region"]["effective"], REGION);
    assert_eq!(report["region"]["effective_source"], "--region");
    assert!(!out.stdout.contains("pass --region"), "{}", out.stdout);

    // What was measured stays; what the deadline cut is skipped with the reason.
    let checks = report["checks"].as_array().unwrap();
    let status_of = |id: &str| {
        checks
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| (c["status"].as_str().unwrap().to_string(), c.clone()))
            .unwrap_or_else(|| panic!("no check {id} in {checks:#?}"))
    };
    let tcp = format!("tcp/{}/{}", bucket_name(), lab.s3_ip());
    assert_eq!(status_of(&tcp).0, "ok");
    for id in [
        "imds".to_string(),
        "credentials".to_string(),
        format!("tls/{}/{}", bucket_name(), lab.s3_ip()),
    ] {
        let (status, check) = status_of(&id);
        assert_eq!(status, "skip", "{check}");
        assert_eq!(check["evidence"]["type"], "unfinished", "{check}");
        assert!(
            check["summary"]
                .as_str()
                .unwrap()
                .contains("not finished before the deadline"),
            "{check}"
        );
    }
    assert!(
        out.stdout.contains("not finished before the deadline"),
        "{}",
        out.stdout
    );
}

/// A table's calls wait for its own names only: the S3 front accepts TCP and never speaks TLS
/// (its handshake waits the whole `--timeout`, 2 s, after DNS and TCP), and the run's
/// `--deadline`, also 2 s, ends it before that. The table's names answer at once, so DescribeTable and GetItem are done
/// well within the deadline, beside the black hole; had they waited for every name's
/// connections they would be cut off, skipped as unfinished.
#[test]
fn a_black_holed_name_does_not_hold_back_the_other_targets_calls() {
    let mut lab = Lab::bare(212, ImdsFacts::example());
    lab.table = "table-212".into();
    let moto = moto();
    moto.create_table(&lab.table, REGION);
    moto.put_item(&lab.table, "id-1", REGION);
    let records = lab.records();
    lab.start_dns(records.clone(), records);
    lab.start_aws_front(lab.ddb_ip(), FrontOptions::default());
    let _s3 = start_tcp_sink(SocketAddr::new(lab.s3_ip(), 443));

    let out = lab.probe(&[
        "--region",
        REGION,
        "--timeout",
        "2",
        "--deadline",
        "2",
        "--item-key",
        r#"{"pk":{"S":"id-1"}}"#,
    ]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    let checks = out.report()["checks"].as_array().unwrap().clone();
    let call = |operation: &str| {
        checks
            .iter()
            .find(|c| c["evidence"]["type"] == "call" && c["evidence"]["operation"] == operation)
            .unwrap_or_else(|| panic!("no {operation} call\n{}", out.stdout))
            .clone()
    };
    for operation in ["DescribeTable", "GetItem"] {
        let c = call(operation);
        assert_eq!(c["status"], "ok", "{operation}: {c}");
        assert_eq!(c["evidence"]["outcome"], "ok", "{operation}: {c}");
    }
    // The bucket's TLS handshake is what the deadline cut.
    let tls = checks
        .iter()
        .find(|c| c["id"] == format!("tls/{}/{}", bucket_name(), lab.s3_ip()))
        .unwrap_or_else(|| panic!("no S3 TLS check\n{}", out.stdout));
    assert_eq!(tls["evidence"]["type"], "unfinished", "{tls}");
}
