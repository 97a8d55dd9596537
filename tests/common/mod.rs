//! A loopback "VPC" for one test: the probe's resolvers, the services, IMDS and a proxy all on
//! addresses of 127.<id>.0.0/16, so tests run in parallel and never leave loopback.
//! Needs root (DNS on port 53 and TLS on 443 of loopback aliases; iptables for drops).

// The test harness: a set-up that fails should stop the test at once, so unwrap/expect are
// the right tool here (the crate denies them in production code).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;

use crate::support::*;

pub const REGION: &str = "eu-west-1";
pub const BUCKET: &str = "mybucket";
pub const TABLE: &str = "orders";
pub const ACCOUNT: &str = "123456789012";
pub const LAB_CA_NAME: &str = "vpce-probe test CA";

pub fn s3_name() -> String {
    format!("s3.{REGION}.amazonaws.com")
}
pub fn bucket_name() -> String {
    format!("{BUCKET}.s3.{REGION}.amazonaws.com")
}
pub fn ddb_name() -> String {
    format!("dynamodb.{REGION}.amazonaws.com")
}
pub fn account_ddb_name() -> String {
    format!("{ACCOUNT}.ddb.{REGION}.amazonaws.com")
}
pub fn sts_name() -> String {
    format!("sts.{REGION}.amazonaws.com")
}
pub fn ec2_name() -> String {
    format!("ec2.{REGION}.amazonaws.com")
}

/// Every name the lab's certificates cover.
pub fn service_names() -> Vec<String> {
    vec![
        s3_name(),
        format!("*.s3.{REGION}.amazonaws.com"),
        ddb_name(),
        format!("*.ddb.{REGION}.amazonaws.com"),
        sts_name(),
        ec2_name(),
    ]
}

/// One set of loopback fakes (DNS, IMDS, TLS fronts on 127.<id>.x.x) and the probe arguments
/// that point at them. Not the VPC lab of lab/ (network namespaces): the docs call this one
/// "the loopback fakes".
pub struct Lab {
    pub id: u8,
    /// --timeout of the standard args: moto (one Python process for all tests) needs more
    /// than the loopback fakes when the suite runs in parallel.
    pub timeout: String,
    pub bucket: String,
    pub table: String,
    pub fronts: Vec<FrontServer>,
    pub dir: tempfile::TempDir,
    pub ca: TestCa,
    pub ca_file: PathBuf,
    pub ranges_file: PathBuf,
    pub resolv_conf: PathBuf,
    /// The instance's hosts file and nsswitch.conf (`hosts: files dns`), never the machine's.
    pub hosts_file: PathBuf,
    pub nsswitch_conf: PathBuf,
    pub imds: ImdsServer,
    pub system_dns: Option<DnsServer>,
    pub vpc_dns: Option<DnsServer>,
    pub services: Vec<TlsServer>,
    pub env: Vec<(String, String)>,
    pub firewall: Vec<Vec<String>>,
}

impl Lab {
    pub fn ip(id: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, id, c, d))
    }
    /// The S3 front of the lab.
    pub fn s3_ip(&self) -> IpAddr {
        Self::ip(self.id, 1, 10)
    }
    pub fn ddb_ip(&self) -> IpAddr {
        Self::ip(self.id, 1, 70)
    }
    pub fn system_dns_addr(&self) -> SocketAddr {
        SocketAddr::new(Self::ip(self.id, 0, 1), 53)
    }
    pub fn vpc_dns_addr(&self) -> SocketAddr {
        SocketAddr::new(Self::ip(self.id, 0, 2), 53)
    }
    pub fn canary_addr(&self) -> String {
        format!("{}:443", Self::ip(self.id, 2, 1))
    }

    /// The standard healthy lab: both resolvers answer in range, both fronts up.
    pub fn healthy(id: u8) -> Lab {
        let mut lab = Lab::bare(id, ImdsFacts::example());
        let records = lab.records();
        lab.start_dns(records.clone(), records);
        lab.start_service(lab.s3_ip(), None);
        lab.start_service(lab.ddb_ip(), None);
        lab
    }

    /// Files, CA and IMDS; no DNS and no services yet.
    pub fn bare(id: u8, mut facts: ImdsFacts) -> Lab {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = TestCa::new(LAB_CA_NAME);
        let ca_file = ca.write_pem(dir.path(), "ca.pem");
        let ranges_file = dir.path().join("ip-ranges.json");
        let ranges = serde_json::json!({
            "syncToken": "1",
            "createDate": "2026-11-01-00-00-00",
            "prefixes": [
                {"ip_prefix": format!("127.{id}.1.0/26"), "region": REGION, "service": "S3", "network_border_group": REGION},
                {"ip_prefix": format!("127.{id}.1.64/26"), "region": REGION, "service": "DYNAMODB", "network_border_group": REGION},
                {"ip_prefix": format!("127.{id}.9.0/24"), "region": "us-east-1", "service": "S3", "network_border_group": "us-east-1"},
                {"ip_prefix": "198.51.100.0/24", "region": "us-east-1", "service": "S3", "network_border_group": "us-east-1"}
            ],
            "ipv6_prefixes": []
        });
        std::fs::write(&ranges_file, ranges.to_string()).expect("write ranges");
        let resolv_conf = dir.path().join("resolv.conf");
        std::fs::write(
            &resolv_conf,
            format!("nameserver 127.{id}.0.1\noptions timeout:1 attempts:1\n"),
        )
        .expect("write resolv.conf");
        let hosts_file = dir.path().join("hosts");
        std::fs::write(&hosts_file, "127.0.0.1 localhost\n").expect("write hosts");
        let nsswitch_conf = dir.path().join("nsswitch.conf");
        std::fs::write(&nsswitch_conf, "hosts: files dns\n").expect("write nsswitch.conf");
        facts.region = REGION.into();
        facts.account_id = ACCOUNT.into();
        facts.vpc_cidrs = vec![format!("127.{id}.8.0/24")];
        let imds = start_imds("127.0.0.1:0".parse().unwrap(), facts, ImdsMode::Normal);
        let env = vec![
            (
                "AWS_EC2_METADATA_SERVICE_ENDPOINT".into(),
                imds.endpoint_url(),
            ),
            ("SSL_CERT_FILE".into(), ca_file.display().to_string()),
        ];
        Lab {
            id,
            timeout: "1".into(),
            bucket: BUCKET.into(),
            table: TABLE.into(),
            fronts: Vec::new(),
            dir,
            ca,
            ca_file,
            ranges_file,
            resolv_conf,
            hosts_file,
            nsswitch_conf,
            imds,
            system_dns: None,
            vpc_dns: None,
            services: Vec::new(),
            env,
            firewall: Vec::new(),
        }
    }

    /// The lab's answers: every service name in range, and the names of the lab's directory
    /// bucket (served only after `add_directory_bucket`).
    pub fn records(&self) -> DnsRecords {
        let express = Self::ip(self.id, 1, 40);
        DnsRecords::new()
            .add(&zonal_host(self.id), express)
            .add(
                &format!("s3express-control.{REGION}.amazonaws.com"),
                express,
            )
            .add(
                &format!("{}.s3.{REGION}.amazonaws.com", self.bucket),
                self.s3_ip(),
            )
            .add(&sts_name(), self.s3_ip())
            .add(&ec2_name(), self.s3_ip())
            .add(&s3_name(), self.s3_ip())
            .add(&ddb_name(), self.ddb_ip())
            .add(&account_ddb_name(), self.ddb_ip())
    }

    pub fn start_dns(&mut self, system: DnsRecords, vpc: DnsRecords) {
        self.system_dns = Some(start_dns(self.system_dns_addr(), system, DnsMode::Answer));
        self.vpc_dns = Some(start_dns(self.vpc_dns_addr(), vpc, DnsMode::Answer));
    }

    /// A TLS front at `ip`:443 with a certificate for every service name, from `ca` (the lab CA by default).
    pub fn start_service(&mut self, ip: IpAddr, ca: Option<&TestCa>) {
        let names = service_names();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let leaf = ca.unwrap_or(&self.ca).issue(&names);
        self.services
            .push(start_tls(SocketAddr::new(ip, 443), &leaf));
    }

    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.into(), value.into()));
    }

    /// Drop packets with iptables; the rule is removed when the lab is dropped.
    pub fn drop_packets(&mut self, chain: &str, rule: &[&str]) {
        let mut args: Vec<String> = vec!["-w".into(), "-I".into(), chain.into()];
        args.extend(rule.iter().map(|s| s.to_string()));
        args.extend(["-j".into(), "DROP".into()]);
        let status = Command::new("iptables")
            .args(&args)
            .status()
            .expect("iptables must be installed (CI installs it; run the tests as root)");
        assert!(status.success(), "iptables {args:?} failed");
        args[1] = "-D".into();
        self.firewall.push(args);
    }

    /// A lab whose S3, DynamoDB and STS names are served by TLS fronts to the shared moto
    /// server, with per-lab bucket and table names (seeded in moto unless `seed` is false).
    pub fn aws(id: u8, facts: ImdsFacts, s3: FrontOptions, ddb: FrontOptions, seed: bool) -> Lab {
        let mut lab = Lab::bare(id, facts);
        lab.timeout = "5".into();
        lab.bucket = format!("bucket-{id}");
        lab.table = format!("table-{id}");
        let moto = moto();
        if seed {
            moto.create_bucket(&lab.bucket, REGION);
            moto.put_object(&lab.bucket, "probe/object.txt", b"hello from moto", REGION);
            moto.create_table(&lab.table, REGION);
            moto.put_item(&lab.table, "id-1", REGION);
        }
        let records = lab.records();
        lab.start_dns(records.clone(), records);
        lab.start_aws_front(lab.s3_ip(), s3);
        lab.start_aws_front(lab.ddb_ip(), ddb);
        lab
    }

    /// A front to moto at `ip`:443 with a certificate for every service name (the lab CA).
    pub fn start_aws_front(&mut self, ip: IpAddr, options: FrontOptions) {
        let names = service_names();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let leaf = self.ca.issue(&names);
        self.fronts.push(start_front(
            SocketAddr::new(ip, 443),
            &leaf,
            moto().addr,
            options,
        ));
    }

    /// The standard arguments: every network path pinned to the lab.
    pub fn args(&self) -> Vec<String> {
        vec![
            "probe".into(),
            "--bucket".into(),
            self.bucket.clone(),
            "--table".into(),
            self.table.clone(),
            "--ip-ranges".into(),
            self.ranges_file.display().to_string(),
            "--resolv-conf".into(),
            self.resolv_conf.display().to_string(),
            "--hosts-file".into(),
            self.hosts_file.display().to_string(),
            "--nsswitch-conf".into(),
            self.nsswitch_conf.display().to_string(),
            "--vpc-resolver".into(),
            self.vpc_dns_addr().ip().to_string(),
            "--internet-canary".into(),
            self.canary_addr(),
            "--expect-issuer".into(),
            LAB_CA_NAME.into(),
            "--timeout".into(),
            self.timeout.clone(),
            "--deadline".into(),
            "30".into(),
        ]
    }

    pub fn run(&self, args: &[String]) -> Outcome {
        run_probe(args, &self.env, self.dir.path())
    }

    /// Run with the standard arguments plus `extra`, and the JSON report written to a file.
    pub fn probe(&self, extra: &[&str]) -> Outcome {
        let mut args = self.args();
        // A single-valued flag given by the test replaces the standard one.
        for flag in [
            "--internet-canary",
            "--timeout",
            "--deadline",
            "--expect-issuer",
            "--vpc-resolver",
            "--hosts-file",
            "--nsswitch-conf",
        ] {
            if extra.contains(&flag)
                && let Some(i) = args.iter().position(|a| a == flag)
            {
                args.drain(i..i + 2);
            }
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = self.dir.path().join("report.json");
        args.push("--output".into());
        args.push(out.display().to_string());
        let mut outcome = self.run(&args);
        outcome.report = std::fs::read_to_string(&out)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let _ = std::fs::remove_file(&out);
        outcome
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for args in &self.firewall {
            let _ = Command::new("iptables").args(args).status();
        }
    }
}

// ---- S3 Express One Zone: a directory bucket served by its own front

pub const EXPRESS_ZONE: &str = "euw1-az1";

pub fn directory_bucket(id: u8) -> String {
    format!("dir-{id}--{EXPRESS_ZONE}--x-s3")
}

pub fn zonal_host(id: u8) -> String {
    format!(
        "{}.s3express-{EXPRESS_ZONE}.{REGION}.amazonaws.com",
        directory_bucket(id)
    )
}

pub fn s3_answer(status: u16, headers: &[(&str, &str)], body: &str) -> CannedResponse {
    let mut headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    headers.push(("x-amz-id-2".into(), "test-s3express-host-id".into()));
    headers.push(("Server".into(), "AmazonS3".into()));
    CannedResponse {
        status,
        reason: String::new(),
        headers,
        body: body.into(),
    }
}

/// The loopback lab plus a directory bucket: its zonal and control names resolve to their own
/// front, whose zonal answers are S3 Express One Zone's (moto knows no directory buckets):
/// `create_session` for the SDK's CreateSession, then HeadBucket, ListObjectsV2, GetObject.
pub fn express_lab(id: u8, create_session: CannedResponse) -> Lab {
    // Nothing seeded: the directory bucket is probed alone (`probe_alone`).
    let mut lab = Lab::aws(
        id,
        ImdsFacts::example(),
        FrontOptions::default(),
        FrontOptions::default(),
        false,
    );
    add_directory_bucket(&mut lab, create_session);
    lab
}

/// Adds the front of the directory bucket `directory_bucket(lab.id)` to a lab (`lab.fronts`'
/// last), at 127.<id>.1.40, where `Lab::records` resolves its zonal and control names.
pub fn add_directory_bucket(lab: &mut Lab, create_session: CannedResponse) {
    let id = lab.id;
    let ip = Lab::ip(id, 1, 40);
    let (zonal, control) = (
        zonal_host(id),
        format!("s3express-control.{REGION}.amazonaws.com"),
    );
    let wildcard = format!("*.s3express-{EXPRESS_ZONE}.{REGION}.amazonaws.com");
    let leaf = lab.ca.issue(&[wildcard.as_str(), control.as_str()]);
    let rule = |method: &str, path: Option<&str>, response| FrontRule {
        host: Some(zonal.clone()),
        method: Some(method.into()),
        path_prefix: path.map(str::to_string),
        amz_target_contains: None,
        body_contains: None,
        response,
    };
    let list = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>{}</Name><KeyCount>1</KeyCount><MaxKeys>1</MaxKeys><IsTruncated>false</IsTruncated><Contents><Key>probe/object.txt</Key><Size>15</Size></Contents></ListBucketResult>",
        directory_bucket(id)
    );
    let rules = vec![
        rule("GET", Some("/?session"), create_session),
        rule(
            "HEAD",
            None,
            s3_answer(200, &[("x-amz-bucket-region", REGION)], ""),
        ),
        rule(
            "GET",
            Some("/?list-type=2"),
            s3_answer(200, &[("Content-Type", "application/xml")], &list),
        ),
        rule(
            "GET",
            Some("/probe/object.txt"),
            s3_answer(
                206,
                &[("Content-Range", "bytes 0-15/15")],
                "hello from s3x!",
            ),
        ),
    ];
    lab.fronts.push(start_front(
        SocketAddr::new(ip, 443),
        &leaf,
        moto().addr,
        FrontOptions {
            rules,
            ..FrontOptions::default()
        },
    ));
}

/// The standard arguments without the lab's bucket and table, plus `extra`: only the
/// directory bucket's own front answers, so the shared moto's load cannot decide the verdict.
pub fn probe_alone(lab: &Lab, extra: &[&str]) -> Outcome {
    let mut args = lab.args();
    for flag in ["--bucket", "--table"] {
        if let Some(i) = args.iter().position(|a| a == flag) {
            args.drain(i..i + 2);
        }
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = lab.dir.path().join("report.json");
    args.push("--output".into());
    args.push(out.display().to_string());
    let mut outcome = lab.run(&args);
    outcome.report = std::fs::read_to_string(&out)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    outcome
}

pub fn session_granted() -> CannedResponse {
    s3_answer(
        200,
        &[("Content-Type", "application/xml")],
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><CreateSessionResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Credentials><SessionToken>test-session-token</SessionToken><SecretAccessKey>test-session-secret</SecretAccessKey><AccessKeyId>ASIATESTS3EXPRESS001</AccessKeyId><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials></CreateSessionResult>",
    )
}

pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub report: Option<serde_json::Value>,
}

impl Outcome {
    pub fn report(&self) -> &serde_json::Value {
        self.report.as_ref().unwrap_or_else(|| {
            panic!(
                "no JSON report; stdout:\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    pub fn codes(&self) -> Vec<String> {
        self.report()["findings"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f["code"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn finding(&self, code: &str) -> &serde_json::Value {
        self.report()["findings"]
            .as_array()
            .and_then(|a| a.iter().find(|f| f["code"] == code))
            .unwrap_or_else(|| panic!("no finding {code}; got {:?}\n{}", self.codes(), self.stdout))
    }

    pub fn path(&self, target: &str) -> (String, String) {
        let t = self.report()["targets"]
            .as_array()
            .and_then(|a| a.iter().find(|t| t["id"] == target))
            .unwrap_or_else(|| panic!("no target {target}\n{}", self.stdout));
        (
            t["path"]["kind"].as_str().unwrap_or("").to_string(),
            t["path"]["confidence"].as_str().unwrap_or("").to_string(),
        )
    }

    /// Assert the exit code and which codes must and must not appear; print the report if not.
    pub fn expect(&self, code: i32, present: &[&str], absent: &[&str]) {
        let codes = self.codes();
        let missing: Vec<&&str> = present
            .iter()
            .filter(|c| !codes.iter().any(|x| x == **c))
            .collect();
        let unwanted: Vec<&&str> = absent
            .iter()
            .filter(|c| codes.iter().any(|x| x == **c))
            .collect();
        assert!(
            self.code == code && missing.is_empty() && unwanted.is_empty(),
            "exit {} (want {code}); missing {missing:?}; unwanted {unwanted:?}; got {codes:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
    }
}

/// Run the binary with a clean environment: only what the test sets, never the machine's AWS settings.
pub fn run_probe(args: &[String], env: &[(String, String)], home: &std::path::Path) -> Outcome {
    // Tests get the binary from cargo; the timing example passes VPCE_PROBE_BIN.
    let bin = option_env!("CARGO_BIN_EXE_vpce-probe")
        .map(str::to_string)
        .or_else(|| std::env::var("VPCE_PROBE_BIN").ok())
        .expect("CARGO_BIN_EXE_vpce-probe or VPCE_PROBE_BIN");
    let mut cmd = Command::new(bin);
    cmd.args(args).env_clear();
    cmd.env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd.env("HOME", home);
    cmd.env("AWS_CONFIG_FILE", home.join("no-aws-config"));
    cmd.env(
        "AWS_SHARED_CREDENTIALS_FILE",
        home.join("no-aws-credentials"),
    );
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run vpce-probe");
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        report: None,
    }
}
