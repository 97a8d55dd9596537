//! The real binary against loopback fakes: DNS, TLS fronts with a generated CA, an IMDSv2
//! server, a CONNECT proxy. Each test owns 127.<id>.0.0/16. Needs root (see tests/common).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step stops the test

mod common;
mod support;

use common::*;
use support::*;

#[test]
fn healthy_lab_is_gateway_endpoint_confirmed_by_hops_and_exit_0() {
    let lab = Lab::healthy(11);
    let out = lab.probe(&[]);
    out.expect(
        0,
        &[],
        &[
            "TCP_TIMEOUT",
            "DNS_RESOLUTION_FAILED",
            "PATH_NOT_GATEWAY_ENDPOINT",
        ],
    );
    // The loopback services answer at the first hop, inside their ranges: the hop count
    // confirms the path without the control plane.
    assert_eq!(
        out.path("s3:mybucket"),
        ("gateway-endpoint".into(), "confirmed".into())
    );
    assert_eq!(
        out.path("dynamodb:orders"),
        ("gateway-endpoint".into(), "confirmed".into())
    );
    let report = out.report();
    assert_eq!(report["instance"]["instance_id"], "i-0123456789abcdef0");
    assert_eq!(report["region"]["effective"], REGION);
    assert_eq!(report["region"]["effective_source"], "imds");
    assert_eq!(report["ip_ranges"]["create_date"], "2026-11-01-00-00-00");
    // The account-based DynamoDB name was probed once the account was known.
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == "tls" && c["status"] == "ok")
        .filter_map(|c| c["subject"].as_str())
        .collect();
    for want in [bucket_name(), s3_name(), ddb_name(), account_ddb_name()] {
        assert!(
            names.contains(&want.as_str()),
            "no verified TLS to {want}: {names:?}"
        );
    }
    let nacl_ok = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == "nacl")
        .all(|c| c["status"] == "ok");
    assert!(nacl_ok, "{}", out.stdout);
    // Both resolvers were really asked.
    assert!(lab.system_dns.as_ref().unwrap().queries() >= 8);
    assert!(lab.vpc_dns.as_ref().unwrap().queries() >= 8);
    // The text report is the short form with a verdict.
    let text = lab.run(&lab.args());
    assert_eq!(text.code, 0);
    assert!(text.stdout.contains("VERDICT  healthy"), "{}", text.stdout);
    assert!(text.stdout.contains("s3:mybucket"), "{}", text.stdout);
    assert!(
        !text.stdout.contains("\x1b["),
        "no colour when stdout is not a terminal"
    );
}

#[test]
fn json_report_validates_against_the_checked_in_schema() {
    let lab = Lab::healthy(12);
    let mut args = lab.args();
    args.extend(["--format".into(), "json".into()]);
    let out = lab.run(&args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("stdout is JSON");
    let schema_text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/report.schema.json"
    ))
    .expect("schema/report.schema.json");
    let schema: serde_json::Value = serde_json::from_str(&schema_text).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("valid schema");
    let errors: Vec<String> = validator
        .iter_errors(&report)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(report["schema_version"], "1.0");
    assert_eq!(report["verdict"]["exit_code"], 0);
}

#[test]
fn nxdomain_for_the_bucket_name_is_dns_resolution_failed() {
    let mut lab = Lab::bare(13, ImdsFacts::example());
    let records = || {
        DnsRecords::new()
            .add(&s3_name(), Lab::ip(13, 1, 10))
            .add(&ddb_name(), Lab::ip(13, 1, 70))
            .add(&account_ddb_name(), Lab::ip(13, 1, 70))
    };
    lab.start_dns(records(), records());
    lab.start_service(lab.s3_ip(), None);
    lab.start_service(lab.ddb_ip(), None);
    let out = lab.probe(&[]);
    out.expect(1, &["DNS_RESOLUTION_FAILED"], &["TCP_TIMEOUT"]);
    let f = out.finding("DNS_RESOLUTION_FAILED");
    assert_eq!(f["target"], "s3:mybucket");
    assert!(f["detail"].as_str().unwrap().contains("NXDOMAIN"), "{f}");
    assert_eq!(
        out.report()["verdict"]["root_causes"][0]["code"],
        "DNS_RESOLUTION_FAILED"
    );
}

#[test]
fn answers_outside_the_ranges_and_disagreeing_resolvers() {
    let mut lab = Lab::bare(14, ImdsFacts::example());
    let outside = Lab::ip(14, 5, 5);
    let system = DnsRecords::new()
        .add(&bucket_name(), outside)
        .add(&s3_name(), outside)
        .add(&ddb_name(), Lab::ip(14, 1, 70))
        .add(&account_ddb_name(), Lab::ip(14, 1, 70));
    let vpc = lab.records();
    lab.start_dns(system, vpc);
    lab.start_service(outside, None);
    lab.start_service(lab.ddb_ip(), None);
    let out = lab.probe(&["--internet-canary", "none"]);
    out.expect(
        1,
        &["DNS_OUTSIDE_SERVICE_RANGE", "DNS_RESOLVERS_DISAGREE"],
        &["TCP_TIMEOUT", "TCP_REFUSED"],
    );
    assert_eq!(
        out.finding("DNS_OUTSIDE_SERVICE_RANGE")["target"],
        "s3:mybucket"
    );
    // The canary is off, but the hop count proves DynamoDB's path: its address answers at the
    // first hop and is in the service's range.
    assert_eq!(
        out.path("dynamodb:orders"),
        ("gateway-endpoint".into(), "confirmed".into()),
        "canary off: the hop count decides"
    );
}

#[test]
fn a_hosts_file_pin_is_what_the_applications_use_and_the_probe_tests() {
    // DNS answers well everywhere; the hosts file sends the bucket's name to a dead address.
    let lab = Lab::healthy(40);
    let stale = Lab::ip(40, 1, 99);
    std::fs::write(
        &lab.hosts_file,
        format!(
            "127.0.0.1 localhost\n# pinned during an outage\n{stale} {}\n",
            bucket_name()
        ),
    )
    .expect("write hosts");
    let out = lab.probe(&[]);
    out.expect(
        1,
        &["HOSTS_FILE_OVERRIDE", "TCP_REFUSED"],
        &["DNS_RESOLUTION_FAILED"],
    );
    let f = out.finding("HOSTS_FILE_OVERRIDE");
    assert_eq!(f["target"], "s3:mybucket");
    assert_eq!(f["severity"], "error");
    let hosts = lab.hosts_file.display().to_string();
    assert!(
        f["remediation"]
            .as_str()
            .unwrap()
            .contains(&format!("Delete line 3 of {hosts}")),
        "{f}"
    );
    assert_eq!(
        out.report()["verdict"]["root_causes"][0]["code"],
        "HOSTS_FILE_OVERRIDE"
    );
    let checks = out.report()["checks"].as_array().unwrap().clone();
    // The pinned address was tested as the applications' own, the DNS answer as the VPC's.
    let tcp_to = |ip: &str| {
        checks
            .iter()
            .find(|c| c["check"] == "tcp" && c["evidence"]["address"] == ip)
            .map(|c| c["evidence"]["origin"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(tcp_to(&stale.to_string()).as_deref(), Some("application"));
    assert_eq!(
        tcp_to(&lab.s3_ip().to_string()).as_deref(),
        Some("vpc-resolver")
    );
    let app = checks
        .iter()
        .find(|c| c["id"] == format!("dns/application/{}", bucket_name()))
        .expect("application resolution check");
    assert_eq!(app["evidence"]["answered_by"], "hosts-file");
    assert_eq!(app["evidence"]["hosts_file"][0]["line"], 3);
    // The regional name is not pinned: DNS answers it and it stays healthy.
    let regional = checks
        .iter()
        .find(|c| c["id"] == format!("dns/application/{}", s3_name()))
        .expect("application resolution of the regional name");
    assert_eq!(regional["evidence"]["answered_by"], "dns");
    // With the pin removed (nsswitch asks DNS first and DNS answers), the probe is healthy.
    std::fs::write(&lab.nsswitch_conf, "hosts: dns files\n").expect("write nsswitch");
    lab.probe(&[])
        .expect(0, &[], &["HOSTS_FILE_OVERRIDE", "TCP_REFUSED"]);
}

#[test]
fn private_answers_mean_an_interface_endpoint() {
    let mut lab = Lab::bare(15, ImdsFacts::example());
    // Inside the VPC CIDR that IMDS reports (127.15.8.0/24).
    let eni = Lab::ip(15, 8, 5);
    let records = || {
        DnsRecords::new()
            .add(&bucket_name(), eni)
            .add(&s3_name(), eni)
            .add(&ddb_name(), Lab::ip(15, 1, 70))
            .add(&account_ddb_name(), Lab::ip(15, 1, 70))
    };
    lab.start_dns(records(), records());
    lab.start_service(eni, None);
    lab.start_service(lab.ddb_ip(), None);
    let out = lab.probe(&[]);
    out.expect(
        1,
        &["DNS_INTERFACE_ENDPOINT", "PATH_NOT_GATEWAY_ENDPOINT"],
        &["DNS_OUTSIDE_SERVICE_RANGE"],
    );
    assert_eq!(
        out.path("s3:mybucket"),
        ("interface-endpoint".into(), "confirmed".into())
    );
    // The root cause is the DNS answer; the path finding is its consequence.
    let roots = &out.report()["verdict"]["root_causes"];
    assert_eq!(roots[0]["code"], "DNS_INTERFACE_ENDPOINT");
    assert!(
        !roots
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["code"] == "PATH_NOT_GATEWAY_ENDPOINT")
    );
    // Expecting the interface path makes the same network healthy.
    let ok = lab.probe(&["--expect-path", "interface"]);
    let wrong_path: Vec<&str> = ok.report()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "PATH_NOT_GATEWAY_ENDPOINT")
        .filter_map(|f| f["target"].as_str())
        .collect();
    // Now the gateway path of DynamoDB is the unexpected one, and S3 is fine.
    assert_eq!(wrong_path, vec!["dynamodb:orders"], "{}", ok.stdout);
    assert_eq!(ok.finding("DNS_INTERFACE_ENDPOINT")["severity"], "note");
}

#[test]
fn refused_connections_are_tcp_refused() {
    let mut lab = Lab::bare(16, ImdsFacts::example());
    let records = lab.records();
    lab.start_dns(records.clone(), records);
    // No S3 front at all: the kernel answers RST.
    lab.start_service(lab.ddb_ip(), None);
    let out = lab.probe(&[]);
    out.expect(1, &["TCP_REFUSED"], &["TCP_TIMEOUT", "TLS_FAILED"]);
    assert_eq!(out.finding("TCP_REFUSED")["severity"], "error");
    assert_eq!(out.path("dynamodb:orders").0, "gateway-endpoint");
}

#[test]
fn dropped_packets_are_a_timeout_and_the_run_takes_about_one_timeout() {
    let mut lab = Lab::healthy(17);
    let s3 = lab.s3_ip().to_string();
    lab.drop_packets("OUTPUT", &["-d", &s3, "-p", "tcp", "--dport", "443"]);
    let started = std::time::Instant::now();
    let out = lab.probe(&[]);
    let elapsed = started.elapsed();
    out.expect(
        1,
        &["TCP_TIMEOUT"],
        &["TCP_REFUSED", "NACL_EPHEMERAL_BLOCKED"],
    );
    let f = out.finding("TCP_TIMEOUT");
    assert!(
        f["remediation"]
            .as_str()
            .unwrap()
            .contains("describe-route-tables"),
        "{f}"
    );
    assert!(
        f["remediation"].as_str().unwrap().contains("subnet-"),
        "{f}"
    );
    // Not a timing assertion on speed: only that the checks did not run one after another
    // (two names on the dropped address plus the NACL sweep would be 3+ timeouts in sequence).
    assert!(elapsed < std::time::Duration::from_secs(8), "{elapsed:?}");
    assert_eq!(out.path("dynamodb:orders").0, "gateway-endpoint");
}

#[test]
fn narrow_nacl_ephemeral_range_is_named_with_the_failing_ports() {
    let mut lab = Lab::healthy(18);
    let s3 = lab.s3_ip().to_string();
    // The "NACL" lets return traffic in only to ports 1024-32767.
    lab.drop_packets(
        "INPUT",
        &[
            "-s",
            &s3,
            "-p",
            "tcp",
            "--sport",
            "443",
            "--dport",
            "32768:65535",
        ],
    );
    let out = lab.probe(&[]);
    out.expect(1, &["NACL_EPHEMERAL_BLOCKED"], &[]);
    let f = out.finding("NACL_EPHEMERAL_BLOCKED");
    assert!(f["title"].as_str().unwrap().contains("32768-65535"), "{f}");
    let roots = &out.report()["verdict"]["root_causes"];
    assert_eq!(roots[0]["code"], "NACL_EPHEMERAL_BLOCKED", "{}", out.stdout);
}

#[test]
fn a_trusted_interceptor_certificate_is_tls_intercepted() {
    let mut lab = Lab::bare(19, ImdsFacts::example());
    let records = lab.records();
    lab.start_dns(records.clone(), records);
    let interceptor = TestCa::new("Corp Inspection CA");
    // The host trusts both CAs (as with a corporate bundle), but only the lab CA is genuine.
    let bundle = lab.dir.path().join("bundle.pem");
    std::fs::write(
        &bundle,
        format!("{}{}", lab.ca.cert_pem(), interceptor.cert_pem()),
    )
    .unwrap();
    lab.set_env("SSL_CERT_FILE", &bundle.display().to_string());
    lab.start_service(lab.s3_ip(), Some(&interceptor));
    lab.start_service(lab.ddb_ip(), None);
    let out = lab.probe(&[]);
    out.expect(1, &["TLS_INTERCEPTED"], &["TLS_FAILED"]);
    assert!(
        out.finding("TLS_INTERCEPTED")["detail"]
            .as_str()
            .unwrap()
            .contains("Corp Inspection CA")
    );
    assert_eq!(out.path("s3:mybucket").0, "proxy");
    assert_eq!(out.path("dynamodb:orders").0, "gateway-endpoint");
}

#[test]
fn untrusted_interceptor_is_intercepted_but_a_missing_service_root_is_tls_failed() {
    let mut lab = Lab::bare(20, ImdsFacts::example());
    let records = lab.records();
    lab.start_dns(records.clone(), records);
    let interceptor = TestCa::new("Unknown Middlebox CA");
    lab.start_service(lab.s3_ip(), Some(&interceptor));
    lab.start_service(lab.ddb_ip(), None);
    let out = lab.probe(&[]);
    out.expect(1, &["TLS_INTERCEPTED"], &[]);
    assert_eq!(out.finding("TLS_INTERCEPTED")["target"], "s3:mybucket");
    // Without the lab CA in the trust store, the genuine issuer is unknown: a host problem.
    let mut lab2 = Lab::healthy(21);
    let other = TestCa::new("Some other root");
    let path = other.write_pem(lab2.dir.path(), "other.pem");
    lab2.set_env("SSL_CERT_FILE", &path.display().to_string());
    let out = lab2.probe(&[]);
    out.expect(1, &["TLS_FAILED"], &["TLS_INTERCEPTED"]);
}

#[test]
fn proxy_in_path_is_reported_with_the_no_proxy_fix_and_never_the_password() {
    let mut lab = Lab::healthy(22);
    let hosts = vec![
        (s3_name(), lab.s3_ip()),
        (bucket_name(), lab.s3_ip()),
        (ddb_name(), lab.ddb_ip()),
        (account_ddb_name(), lab.ddb_ip()),
    ];
    let proxy = start_connect_proxy(
        "127.22.3.1:3128".parse().unwrap(),
        ProxyMode::Tunnel,
        hosts,
        Some(("probe".into(), "s3cr3t-pw".into())),
    );
    lab.set_env("HTTPS_PROXY", "http://probe:s3cr3t-pw@127.22.3.1:3128");
    lab.set_env("https_proxy", "http://probe:s3cr3t-pw@127.22.3.1:3128");
    let out = lab.probe(&[]);
    out.expect(
        1,
        &["PROXY_IN_PATH", "PATH_NOT_GATEWAY_ENDPOINT"],
        &["PROXY_UNREACHABLE", "PROXY_REFUSED_CONNECT"],
    );
    assert_eq!(out.path("s3:mybucket"), ("proxy".into(), "inferred".into()));
    let fix = out.finding("PROXY_IN_PATH")["remediation"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        fix.contains("NO_PROXY=") && fix.contains(&s3_name()),
        "{fix}"
    );
    assert!(
        proxy
            .connects()
            .iter()
            .any(|c| c == &format!("{}:443", s3_name())),
        "{:?}",
        proxy.connects()
    );
    let json = out.report().to_string();
    assert!(
        !json.contains("s3cr3t-pw")
            && !out.stdout.contains("s3cr3t-pw")
            && !out.stderr.contains("s3cr3t-pw")
    );
    assert!(json.contains("***"));
    // With the recommended NO_PROXY the same host is healthy again.
    let value = fix
        .split("NO_PROXY=")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .to_string();
    lab.set_env("NO_PROXY", &value);
    lab.set_env("no_proxy", &value);
    let out = lab.probe(&[]);
    out.expect(0, &[], &["PROXY_IN_PATH"]);
}

#[test]
fn proxy_unreachable_refusing_and_conflicting() {
    let mut lab = Lab::healthy(23);
    lab.set_env("HTTPS_PROXY", "http://127.23.3.9:3128");
    let out = lab.probe(&[]);
    out.expect(1, &["PROXY_IN_PATH", "PROXY_UNREACHABLE"], &[]);

    let _proxy = start_connect_proxy(
        "127.23.3.1:3128".parse().unwrap(),
        ProxyMode::Forbid,
        vec![],
        None,
    );
    lab.set_env("HTTPS_PROXY", "http://127.23.3.1:3128");
    let out = lab.probe(&[]);
    out.expect(1, &["PROXY_REFUSED_CONNECT"], &["PROXY_UNREACHABLE"]);
    assert!(
        out.finding("PROXY_REFUSED_CONNECT")["detail"]
            .as_str()
            .unwrap()
            .contains("403")
    );

    lab.set_env("https_proxy", "http://127.23.3.2:3128");
    let out = lab.probe(&[]);
    out.expect(1, &["PROXY_ENV_CONFLICT"], &[]);
}

#[test]
fn a_cidr_only_no_proxy_is_ineffective() {
    let mut lab = Lab::healthy(24);
    let _proxy = start_connect_proxy(
        "127.24.3.1:3128".parse().unwrap(),
        ProxyMode::Tunnel,
        vec![
            (s3_name(), lab.s3_ip()),
            (bucket_name(), lab.s3_ip()),
            (ddb_name(), lab.ddb_ip()),
            (account_ddb_name(), lab.ddb_ip()),
        ],
        None,
    );
    lab.set_env("HTTPS_PROXY", "http://127.24.3.1:3128");
    lab.set_env("NO_PROXY", "127.24.1.0/24");
    let out = lab.probe(&[]);
    out.expect(1, &["NO_PROXY_INEFFECTIVE", "PROXY_IN_PATH"], &[]);
    let f = out.finding("NO_PROXY_INEFFECTIVE");
    assert!(
        f["title"].as_str().unwrap().contains("127.24.1.0/24"),
        "{f}"
    );
    let roots = &out.report()["verdict"]["root_causes"];
    assert_eq!(roots[0]["code"], "NO_PROXY_INEFFECTIVE", "{}", out.stdout);
}

#[test]
fn imds_unavailable_with_and_without_region() {
    let mut lab = Lab::healthy(25);
    // A port nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    lab.set_env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &url);
    // The network checks run with --region; the instance role's credentials are gone too.
    let out = lab.probe(&["--region", REGION]);
    out.expect(
        1,
        &["IMDS_UNAVAILABLE", "NO_CREDENTIALS"],
        &["DNS_RESOLUTION_FAILED"],
    );
    assert_eq!(out.finding("IMDS_UNAVAILABLE")["severity"], "warning");
    assert!(out.report()["instance"].is_null());
    let out = lab.probe(&["--region", REGION, "--no-calls"]);
    out.expect(0, &["IMDS_UNAVAILABLE"], &["NO_CREDENTIALS"]);
    let out = lab.probe(&[]);
    out.expect(1, &["IMDS_UNAVAILABLE"], &[]);
    assert_eq!(out.finding("IMDS_UNAVAILABLE")["severity"], "error");
}

#[test]
fn sdk_region_other_than_the_instance_is_the_root_cause() {
    let mut lab = Lab::healthy(26);
    lab.set_env("AWS_REGION", "us-east-1");
    let out = lab.probe(&[]);
    out.expect(1, &["REGION_MISMATCH_SDK"], &[]);
    assert_eq!(out.report()["region"]["effective"], "us-east-1");
    assert_eq!(
        out.report()["verdict"]["root_causes"][0]["code"],
        "REGION_MISMATCH_SDK"
    );
    let fix = out.finding("REGION_MISMATCH_SDK")["remediation"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(fix.contains("AWS_REGION=eu-west-1"), "{fix}");
}

#[test]
fn global_s3_endpoint_override_outside_us_east_1() {
    let mut lab = Lab::healthy(27);
    lab.set_env("AWS_ENDPOINT_URL_S3", "https://s3.amazonaws.com");
    let out = lab.probe(&["--bucket", BUCKET]);
    out.expect(1, &["S3_GLOBAL_ENDPOINT"], &[]);
    let report = out.report();
    assert_eq!(report["region"]["s3_endpoint_host"], "s3.amazonaws.com");
}

#[test]
fn bad_input_exits_2_with_one_line_and_probes_nothing() {
    let lab = Lab::healthy(28);
    let bad_ranges = lab.dir.path().join("bad.json");
    std::fs::write(&bad_ranges, "{\"prefixes\": 5}").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["probe"], "nothing to probe"),
        (vec!["probe", "--bucket", "Bad_Bucket"], "lowercase"),
        (
            vec!["probe", "--bucket", "ok-bucket", "--region", "eu-wst-1"],
            "did you mean eu-west-1?",
        ),
        (vec!["probe", "--table", "a b c"], "only letters"),
        (
            vec!["probe", "--bucket", "ok-bucket", "--timeout", "0"],
            "--timeout",
        ),
        (
            vec![
                "probe",
                "--bucket",
                "ok-bucket",
                "--timeout",
                "5",
                "--deadline",
                "2",
            ],
            "shorter than",
        ),
        (
            vec![
                "probe",
                "--bucket",
                "ok-bucket",
                "--ip-ranges",
                bad_ranges.to_str().unwrap(),
            ],
            "not in AWS's ip-ranges.json format",
        ),
        (
            vec![
                "probe",
                "--bucket",
                "ok-bucket",
                "--internet-canary",
                "nohostport",
            ],
            "HOST:PORT",
        ),
        (
            vec![
                "probe",
                "--bucket",
                "ok-bucket",
                "--output",
                "/nonexistent-dir/r.json",
            ],
            "does not exist",
        ),
        (
            vec![
                "probe",
                "--bucket",
                "ok-bucket",
                "--reachability-analyzer",
                "--no-control-plane",
            ],
            "needs the control plane",
        ),
        (
            vec!["probe", "--bucket", "ok-bucket", "--format", "yaml"],
            "invalid value",
        ),
    ];
    let queries_before = lab.system_dns.as_ref().unwrap().queries();
    for (args, want) in cases {
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        let out = lab.run(&args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(want), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
        if !want.contains("invalid value") {
            assert_eq!(
                out.stderr.trim().lines().count(),
                1,
                "{args:?}: {}",
                out.stderr
            );
        }
    }
    assert_eq!(
        lab.system_dns.as_ref().unwrap().queries(),
        queries_before,
        "nothing probed"
    );
    let mut env = lab.env.clone();
    env.push(("AWS_CA_BUNDLE".into(), "/nonexistent/ca.pem".into()));
    let out = run_probe(
        &["probe".into(), "--bucket".into(), "ok-bucket".into()],
        &env,
        lab.dir.path(),
    );
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("AWS_CA_BUNDLE"), "{}", out.stderr);
}

#[test]
fn output_to_a_device_a_fifo_or_a_symlink_writes_through_it() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let lab = Lab::healthy(91);
    let cheap = ["--no-calls", "--internet-canary", "none"];
    let run = |output: &std::path::Path| {
        let mut args = lab.args();
        args.retain(|a| a != "--internet-canary" && *a != lab.canary_addr());
        args.extend(cheap.iter().map(|s| s.to_string()));
        args.extend(["--output".into(), output.display().to_string()]);
        lab.run(&args)
    };
    // A FIFO first: were it replaced by a regular file, /dev/null below would be too.
    let fifo = lab.dir.path().join("report.fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(status.success());
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = fifo.clone();
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::read_to_string(&reader));
    });
    let out = run(&fifo);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let meta = std::fs::symlink_metadata(&fifo).expect("lstat fifo");
    assert!(meta.file_type().is_fifo(), "{:?}", meta.file_type());
    let text = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the report arrives through the FIFO")
        .expect("read the FIFO");
    let report: serde_json::Value = serde_json::from_str(&text).expect("JSON report");
    assert_eq!(report["schema_version"], "1.0");

    let before = std::fs::metadata("/dev/null").expect("stat /dev/null");
    assert!(before.file_type().is_char_device());
    let out = run(std::path::Path::new("/dev/null"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let after = std::fs::symlink_metadata("/dev/null").expect("lstat /dev/null");
    assert!(
        after.file_type().is_char_device(),
        "{:?}",
        after.file_type()
    );
    assert_eq!((after.rdev(), after.ino()), (before.rdev(), before.ino()));

    // A symlink (relative, as ln -s writes them) stays a symlink; its target gets the report.
    let target = lab.dir.path().join("reports").join("latest.json");
    std::fs::create_dir(target.parent().expect("parent")).expect("mkdir");
    std::fs::write(&target, "old").expect("write");
    let link = lab.dir.path().join("report-link.json");
    std::os::unix::fs::symlink("reports/latest.json", &link).expect("symlink");
    let out = run(&link);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let meta = std::fs::symlink_metadata(&link).expect("lstat link");
    assert!(meta.file_type().is_symlink(), "{:?}", meta.file_type());
    assert_eq!(
        std::fs::read_link(&link).expect("readlink"),
        std::path::Path::new("reports/latest.json")
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&target).expect("read target"))
            .expect("JSON report at the target");
    assert_eq!(report["schema_version"], "1.0");
    // No temporary file left next to the link or the target.
    for dir in [lab.dir.path(), target.parent().expect("parent")] {
        let tmp: Vec<_> = std::fs::read_dir(dir)
            .expect("read_dir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
            .collect();
        assert!(tmp.is_empty(), "{tmp:?}");
    }
}

#[test]
fn a_proxy_token_given_as_the_user_name_is_never_printed() {
    let mut lab = Lab::healthy(92);
    // Port 9 (discard) on loopback: nothing listens, the proxy is unreachable.
    lab.set_env("HTTPS_PROXY", "http://SECRETTOKEN123@127.0.0.1:9/");
    let json = lab.probe(&["--format", "json"]);
    json.expect(1, &["PROXY_IN_PATH", "PROXY_UNREACHABLE"], &[]);
    let text = lab.probe(&[]);
    let report = json.report().to_string();
    for (what, s) in [
        ("json stdout", &json.stdout),
        ("json stderr", &json.stderr),
        ("--output", &report),
        ("text stdout", &text.stdout),
        ("text stderr", &text.stderr),
    ] {
        assert!(!s.contains("SECRETTOKEN123"), "{what}: {s}");
    }
    let stdout: serde_json::Value = serde_json::from_str(&json.stdout).expect("stdout is JSON");
    assert!(!stdout.to_string().contains("SECRETTOKEN123"));
    // Redacted, not dropped: the proxy is still named.
    assert!(report.contains("http://***@127.0.0.1:9/"), "{report}");
}

/// Run the binary with stdout a pipe whose read end is already closed: every write is EPIPE.
fn run_with_closed_stdout(args: &[String], env: &[(String, String)]) -> (Option<i32>, String) {
    let bin = env!("CARGO_BIN_EXE_vpce-probe");
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = std::process::Command::new(bin)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run vpce-probe");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let lab = Lab::healthy(93);
    let config = lab.dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[probe]\nbuckets = [\"{BUCKET}\"]\n[spool]\ndir = \"{}\"\n",
            lab.dir.path().join("spool").display()
        ),
    )
    .expect("config");
    let to_strings = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    let mut json = lab.args();
    json.extend(to_strings(&["--format", "json"]));
    let cases: Vec<(Vec<String>, i32)> = vec![
        (to_strings(&["findings"]), 0),
        (to_strings(&["findings", "--format", "markdown"]), 0),
        (to_strings(&["schema"]), 0),
        (
            to_strings(&[
                "render-text",
                concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples/healthy.json"),
            ]),
            0,
        ),
        (to_strings(&["--help"]), 0),
        (to_strings(&["probe", "--help"]), 0),
        (
            to_strings(&["check-config", "--config", &config.display().to_string()]),
            0,
        ),
        (lab.args(), 0),
        (json, 0),
    ];
    for (args, want) in cases {
        let (code, stderr) = run_with_closed_stdout(&args, &lab.env);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(code, Some(want), "{args:?}: {stderr}");
    }
}

/// resolv.conf lists a silent name server before one that answers: the probe resolves (it asks
/// every server at once) but libc waits `options timeout:` on the silent one at every lookup,
/// so the report warns with libc's wait; a server that answers SERVFAIL costs libc nothing.
#[test]
fn a_silent_first_name_server_is_named_with_libcs_wait() {
    let lab = Lab::healthy(94);
    let silent = std::net::SocketAddr::new(Lab::ip(94, 0, 9), 53);
    let _silent_server = start_dns(silent, DnsRecords::new(), DnsMode::Drop);
    std::fs::write(
        &lab.resolv_conf,
        format!(
            "nameserver {}\nnameserver {}\noptions timeout:3 attempts:2\n",
            silent.ip(),
            lab.system_dns_addr().ip()
        ),
    )
    .unwrap();
    let out = lab.probe(&["--internet-canary", "none"]);
    out.expect(0, &["DNS_SERVER_SILENT"], &["DNS_RESOLUTION_FAILED"]);
    // Healthy, but the one line people read says it is not clean.
    assert_eq!(
        out.report()["verdict"]["summary"],
        "healthy: every probed path works; 1 warning: DNS_SERVER_SILENT (host)"
    );
    let f = out.finding("DNS_SERVER_SILENT");
    assert_eq!(f["target"], "host");
    assert_eq!(f["severity"], "warning");
    let title = f["title"].as_str().unwrap();
    assert!(title.contains(&silent.ip().to_string()), "{title}");
    assert!(title.contains("waits 3 s"), "{title}");
    let lookup = out.report()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == format!("dns/system/{}/A", s3_name()))
        .cloned()
        .unwrap_or_else(|| panic!("no system lookup of {}\n{}", s3_name(), out.stdout));
    assert_eq!(lookup["evidence"]["silent_servers"][0], silent.to_string());
    assert_eq!(lookup["evidence"]["libc_wait_secs"], 3);
    assert_eq!(lookup["status"], "warn", "{lookup}");
    assert_eq!(
        lookup["evidence"]["server"],
        lab.system_dns_addr().to_string()
    );
    // The path is still proven on the addresses the second server gave.
    assert_eq!(
        out.path("s3:mybucket"),
        ("gateway-endpoint".into(), "confirmed".into())
    );

    // SERVFAIL first: libc moves on at once, nothing to warn about.
    let failing = std::net::SocketAddr::new(Lab::ip(94, 0, 10), 53);
    let _failing_server = start_dns(failing, DnsRecords::new(), DnsMode::ServFail);
    std::fs::write(
        &lab.resolv_conf,
        format!(
            "nameserver {}\nnameserver {}\n",
            failing.ip(),
            lab.system_dns_addr().ip()
        ),
    )
    .unwrap();
    let out = lab.probe(&["--internet-canary", "none"]);
    out.expect(0, &[], &["DNS_SERVER_SILENT", "DNS_RESOLUTION_FAILED"]);
}

/// resolv.conf searches a domain with `options ndots:5`, and that domain answers the S3 names
/// (a wildcard): libc asks `<name>.corp.example` first, so the applications connect to its
/// address. The probe tests that address and names the cause; with the default ndots the name
/// itself answers first and nothing changes.
#[test]
fn a_search_domain_that_answers_first_is_what_the_applications_use() {
    let mut lab = Lab::bare(95, ImdsFacts::example());
    let wildcard = Lab::ip(95, 5, 5);
    let mut system = lab.records();
    for name in [bucket_name(), s3_name()] {
        system = system.add(&format!("{name}.corp.example"), wildcard);
    }
    let vpc = lab.records();
    lab.start_dns(system, vpc);
    lab.start_service(lab.s3_ip(), None);
    lab.start_service(lab.ddb_ip(), None);
    let resolv = |options: &str| {
        std::fs::write(
            &lab.resolv_conf,
            format!(
                "search corp.example\nnameserver {}\noptions {options} timeout:1 attempts:1\n",
                lab.system_dns_addr().ip()
            ),
        )
        .unwrap();
    };
    resolv("ndots:5");
    let out = lab.probe(&["--internet-canary", "none"]);
    out.expect(
        1,
        &["DNS_SEARCH_DOMAIN_OVERRIDE"],
        &["DNS_RESOLUTION_FAILED"],
    );
    let f = out.finding("DNS_SEARCH_DOMAIN_OVERRIDE");
    assert_eq!(f["target"], "s3:mybucket");
    assert_eq!(f["severity"], "error");
    assert!(
        f["title"]
            .as_str()
            .unwrap()
            .contains(&format!("as {}.corp.example ({wildcard})", bucket_name())),
        "{f}"
    );
    assert!(f["detail"].as_str().unwrap().contains("ndots:5"), "{f}");
    assert_eq!(
        out.report()["verdict"]["root_causes"][0]["code"],
        "DNS_SEARCH_DOMAIN_OVERRIDE"
    );
    let app = out.report()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == format!("dns/application/{}", bucket_name()))
        .cloned()
        .unwrap_or_else(|| panic!("no application lookup\n{}", out.stdout));
    assert_eq!(
        app["evidence"]["resolved_as"],
        format!("{}.corp.example", bucket_name())
    );
    assert_eq!(app["evidence"]["addresses"][0]["ip"], wildcard.to_string());
    // TCP tested the address the applications use.
    assert!(
        out.stdout.contains(&format!("{wildcard}:443")),
        "{}",
        out.stdout
    );

    // The default ndots: the name itself answers first, the search domain is never asked.
    resolv("ndots:1");
    let out = lab.probe(&["--internet-canary", "none"]);
    out.expect(0, &[], &["DNS_SEARCH_DOMAIN_OVERRIDE", "TCP_TIMEOUT"]);
}
