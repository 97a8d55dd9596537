//! Proves that each loopback fake in tests/support works, using real clients.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step stops the test

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use rustls_pki_types::ServerName;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

fn sa(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)
}

// ---------------------------------------------------------------- DNS

fn dns_query(name: &str, rtype: RecordType) -> (u16, Vec<u8>) {
    let mut msg = Message::query();
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    (msg.metadata.id, msg.to_vec().unwrap())
}

async fn udp_ask(
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
    wait: Duration,
) -> Option<Message> {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (id, bytes) = dns_query(name, rtype);
    sock.send_to(&bytes, server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = timeout(wait, sock.recv_from(&mut buf)).await.ok()?.unwrap();
    let resp = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(resp.metadata.id, id, "id echoed");
    assert_eq!(resp.metadata.message_type, MessageType::Response);
    assert!(resp.metadata.recursion_available, "RA set");
    assert_eq!(resp.queries.len(), 1, "question echoed");
    assert_eq!(resp.queries[0].query_type(), rtype);
    Some(resp)
}

#[tokio::test]
async fn dns_answers_nodata_and_nxdomain_over_udp() {
    let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 80, 9));
    let records = DnsRecords::new().add("Bucket.S3.eu-west-1.amazonaws.com.", ip);
    let dns = start_dns(sa([127, 0, 90, 1], 53), records, DnsMode::Answer);
    let wait = Duration::from_secs(2);

    let a = udp_ask(
        dns.addr,
        "bucket.s3.eu-west-1.amazonaws.com.",
        RecordType::A,
        wait,
    )
    .await
    .expect("A answer");
    assert_eq!(a.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a.answers.len(), 1);
    assert_eq!(a.answers[0].ttl, 60);
    match &a.answers[0].data {
        RData::A(v4) => assert_eq!(IpAddr::V4(v4.0), ip),
        other => panic!("unexpected rdata {other:?}"),
    }

    let aaaa = udp_ask(
        dns.addr,
        "bucket.s3.eu-west-1.amazonaws.com.",
        RecordType::AAAA,
        wait,
    )
    .await
    .expect("AAAA answer");
    assert_eq!(aaaa.metadata.response_code, ResponseCode::NoError);
    assert!(aaaa.answers.is_empty(), "NODATA");

    let nx = udp_ask(dns.addr, "nope.example.", RecordType::A, wait)
        .await
        .expect("NXDOMAIN answer");
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert!(nx.answers.is_empty());

    assert_eq!(dns.queries(), 3);
    assert_eq!(
        dns.asked(),
        vec![
            "bucket.s3.eu-west-1.amazonaws.com",
            "bucket.s3.eu-west-1.amazonaws.com",
            "nope.example"
        ]
    );
}

#[tokio::test]
async fn dns_answers_over_tcp() {
    let ip: IpAddr = "::1".parse().unwrap();
    let records = DnsRecords::new().add("v6.test", ip);
    let dns = start_dns(sa([127, 0, 90, 2], 53), records, DnsMode::Answer);
    let mut s = TcpStream::connect(dns.addr).await.unwrap();
    for _ in 0..2 {
        // two queries on one connection
        let (id, bytes) = dns_query("v6.test.", RecordType::AAAA);
        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        s.write_all(&framed).await.unwrap();
        let mut len = [0u8; 2];
        timeout(Duration::from_secs(2), s.read_exact(&mut len))
            .await
            .unwrap()
            .unwrap();
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut msg).await.unwrap();
        let resp = Message::from_vec(&msg).unwrap();
        assert_eq!(resp.metadata.id, id);
        assert_eq!(resp.answers.len(), 1);
        assert!(matches!(&resp.answers[0].data, RData::AAAA(a) if IpAddr::V6(a.0) == ip));
    }
    assert_eq!(dns.queries(), 2);
}

#[tokio::test]
async fn dns_drop_mode_never_answers_and_servfail_mode_fails() {
    let dropper = start_dns(sa([127, 0, 90, 3], 53), DnsRecords::new(), DnsMode::Drop);
    let r = udp_ask(
        dropper.addr,
        "anything.test.",
        RecordType::A,
        Duration::from_secs(1),
    )
    .await;
    assert!(r.is_none(), "drop mode must not answer");
    assert_eq!(dropper.queries(), 1);

    let records = DnsRecords::new().add("x.test", IpAddr::V4(Ipv4Addr::LOCALHOST));
    let failer = start_dns(sa([127, 0, 90, 4], 53), records, DnsMode::ServFail);
    let r = udp_ask(
        failer.addr,
        "x.test.",
        RecordType::A,
        Duration::from_secs(2),
    )
    .await
    .expect("servfail answer");
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
}

// ---------------------------------------------------------------- TLS

async fn tls_handshake(
    stream: TcpStream,
    ca: &TestCa,
    name: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let connector = TlsConnector::from(ca.client_config());
    let server_name = ServerName::try_from(name.to_string()).unwrap();
    timeout(
        Duration::from_secs(5),
        connector.connect(server_name, stream),
    )
    .await
    .expect("handshake timed out")
}

#[tokio::test]
async fn tls_server_verifies_for_san_names_only_and_answers_like_s3() {
    let ca = TestCa::new("Fake Test CA");
    let leaf = ca.issue(&["s3.eu-west-1.amazonaws.com", "*.s3.eu-west-1.amazonaws.com"]);
    assert_eq!(leaf.cert_chain_pem.matches("BEGIN CERTIFICATE").count(), 2);
    let tls = start_tls(sa([127, 0, 90, 10], 443), &leaf);

    // A SAN name (via the wildcard) verifies; a request gets the S3-like answer.
    let tcp = TcpStream::connect(tls.addr).await.unwrap();
    let mut s = tls_handshake(tcp, &ca, "bucket.s3.eu-west-1.amazonaws.com")
        .await
        .expect("handshake for a SAN name");
    s.write_all(b"HEAD / HTTP/1.1\r\nHost: bucket.s3.eu-west-1.amazonaws.com\r\n\r\n")
        .await
        .unwrap();
    let mut resp = String::new();
    timeout(Duration::from_secs(5), s.read_to_string(&mut resp))
        .await
        .unwrap()
        .unwrap();
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    assert!(resp.contains("Server: AmazonS3\r\n"), "{resp}");
    assert!(resp.contains("x-amz-request-id: TESTREQID\r\n"), "{resp}");
    assert!(resp.contains("Content-Length: 0\r\n"), "{resp}");
    assert!(resp.contains("Connection: close\r\n"), "{resp}");

    // A client that only handshakes and closes is fine too.
    let tcp = TcpStream::connect(tls.addr).await.unwrap();
    let s = tls_handshake(tcp, &ca, "s3.eu-west-1.amazonaws.com")
        .await
        .expect("handshake for the apex name");
    drop(s);

    // A name outside the SANs fails.
    let tcp = TcpStream::connect(tls.addr).await.unwrap();
    let err = tls_handshake(tcp, &ca, "dynamodb.eu-west-1.amazonaws.com")
        .await
        .expect_err("a name outside the SANs must fail");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );

    // Another CA is not trusted.
    let other = TestCa::new("Other CA");
    let tcp = TcpStream::connect(tls.addr).await.unwrap();
    let err = tls_handshake(tcp, &other, "s3.eu-west-1.amazonaws.com")
        .await
        .expect_err("another CA must not be trusted");
    assert!(err.to_string().to_lowercase().contains("issuer"), "{err}");

    assert!(wait_until(Duration::from_secs(2), || tls.handshakes() == 2));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(tls.handshakes(), 2, "failed handshakes are not counted");
    assert_eq!(
        tls.server_names(),
        vec![
            "bucket.s3.eu-west-1.amazonaws.com",
            "s3.eu-west-1.amazonaws.com"
        ]
    );
    assert_eq!(tls.requests(), vec!["HEAD / HTTP/1.1"]);
}

#[test]
fn test_ca_writes_its_pem() {
    let ca = TestCa::new("Writer CA");
    let dir = tempfile::tempdir().unwrap();
    let path = ca.write_pem(dir.path(), "ca.pem");
    assert_eq!(path, dir.path().join("ca.pem"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), ca.cert_pem());
    assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
}

// ---------------------------------------------------------------- TCP sink

#[tokio::test]
async fn tcp_sink_counts_and_holds_connections() {
    let sink = start_tcp_sink(sa([127, 0, 90, 15], 443));
    let a = TcpStream::connect(sink.addr).await.unwrap();
    let b = TcpStream::connect(sink.addr).await.unwrap();
    let ports = vec![
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    ];
    assert!(wait_until(Duration::from_secs(2), || sink.accepted() == 2));
    assert_eq!(sink.source_ports(), ports);
    // Held open: nothing to read, no EOF.
    let mut a = a;
    let mut one = [0u8; 1];
    assert!(
        timeout(Duration::from_millis(300), a.read(&mut one))
            .await
            .is_err()
    );
}

// ---------------------------------------------------------------- proxy

/// Sends a CONNECT and returns the status line; the stream is left at the tunnel's start.
async fn connect_via(proxy: SocketAddr, target: &str, auth: Option<&str>) -> (String, TcpStream) {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(a) = auth {
        req.push_str(&format!("Proxy-Authorization: Basic {a}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    // Read the response head byte by byte so no tunnel bytes are consumed.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = timeout(Duration::from_secs(5), s.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            n,
            1,
            "proxy closed early: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    (head.lines().next().unwrap().to_string(), s)
}

#[tokio::test]
async fn proxy_tunnels_to_a_tls_server_and_refuses_the_rest() {
    let ca = TestCa::new("Proxy Test CA");
    let leaf = ca.issue(&["s3.eu-west-1.amazonaws.com"]);
    let tls = start_tls(sa([127, 0, 90, 20], 443), &leaf);
    let proxy = start_connect_proxy(
        sa([127, 0, 90, 21], 3128),
        ProxyMode::Tunnel,
        vec![("S3.eu-west-1.amazonaws.com".into(), tls.addr.ip())],
        None,
    );

    let (status, stream) = connect_via(proxy.addr, "s3.eu-west-1.amazonaws.com:443", None).await;
    assert_eq!(status, "HTTP/1.1 200 Connection established");
    let mut s = tls_handshake(stream, &ca, "s3.eu-west-1.amazonaws.com")
        .await
        .expect("TLS through the tunnel");
    s.write_all(b"GET / HTTP/1.1\r\nHost: s3.eu-west-1.amazonaws.com\r\n\r\n")
        .await
        .unwrap();
    let mut resp = String::new();
    timeout(Duration::from_secs(5), s.read_to_string(&mut resp))
        .await
        .unwrap()
        .unwrap();
    assert!(resp.contains("Server: AmazonS3"), "{resp}");
    assert!(wait_until(Duration::from_secs(2), || tls.handshakes() == 1));

    // IP-literal loopback target works too.
    let (status, _s) = connect_via(proxy.addr, &tls.addr.to_string(), None).await;
    assert_eq!(status, "HTTP/1.1 200 Connection established");
    // Unknown names and non-loopback addresses are refused without dialling.
    let (status, _) = connect_via(proxy.addr, "dynamodb.eu-west-1.amazonaws.com:443", None).await;
    assert!(status.starts_with("HTTP/1.1 502"), "{status}");
    let (status, _) = connect_via(proxy.addr, "192.0.2.1:443", None).await;
    assert!(status.starts_with("HTTP/1.1 502"), "{status}");

    // Plain requests are recorded (and not forwarded).
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(
        b"GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
    )
    .await
    .unwrap();
    let mut resp = String::new();
    timeout(Duration::from_secs(5), s.read_to_string(&mut resp))
        .await
        .unwrap()
        .unwrap();
    assert!(resp.starts_with("HTTP/1.1 502"), "{resp}");

    assert_eq!(
        proxy.connects(),
        vec![
            "s3.eu-west-1.amazonaws.com:443".to_string(),
            tls.addr.to_string(),
            "dynamodb.eu-west-1.amazonaws.com:443".to_string(),
            "192.0.2.1:443".to_string(),
        ]
    );
    assert_eq!(
        proxy.plain_requests(),
        vec!["GET http://169.254.169.254/latest/meta-data/ HTTP/1.1"]
    );
}

#[tokio::test]
async fn proxy_forbid_mode_answers_403() {
    let proxy = start_connect_proxy(sa([127, 0, 90, 22], 3128), ProxyMode::Forbid, vec![], None);
    let (status, _) = connect_via(proxy.addr, "s3.eu-west-1.amazonaws.com:443", None).await;
    assert_eq!(status, "HTTP/1.1 403 Forbidden");
    assert_eq!(proxy.connects(), vec!["s3.eu-west-1.amazonaws.com:443"]);
}

#[tokio::test]
async fn proxy_auth_needs_basic_credentials() {
    let sink = start_tcp_sink(sa([127, 0, 90, 23], 443));
    let proxy = start_connect_proxy(
        sa([127, 0, 90, 24], 3128),
        ProxyMode::Tunnel,
        vec![("dynamodb.eu-west-1.amazonaws.com".into(), sink.addr.ip())],
        Some(("probe".into(), "s3cret".into())),
    );
    let target = "dynamodb.eu-west-1.amazonaws.com:443";
    let (status, _) = connect_via(proxy.addr, target, None).await;
    assert_eq!(status, "HTTP/1.1 407 Proxy Authentication Required");
    // base64("probe:wrong")
    let (status, _) = connect_via(proxy.addr, target, Some("cHJvYmU6d3Jvbmc=")).await;
    assert_eq!(status, "HTTP/1.1 407 Proxy Authentication Required");
    assert_eq!(sink.accepted(), 0);
    // base64("probe:s3cret")
    let (status, _s) = connect_via(proxy.addr, target, Some("cHJvYmU6czNjcmV0")).await;
    assert_eq!(status, "HTTP/1.1 200 Connection established");
    assert!(wait_until(Duration::from_secs(2), || sink.accepted() == 1));
}

// ---------------------------------------------------------------- IMDS

struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request on a fresh connection (Connection: close), read to EOF.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    timeout(Duration::from_secs(5), s.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .unwrap();
    parse_response(&String::from_utf8(raw).unwrap())
}

fn parse_response(raw: &str) -> HttpResponse {
    let (head, body) = raw.split_once("\r\n\r\n").expect("complete head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_string(),
    }
}

async fn token(addr: SocketAddr) -> String {
    let r = http(
        addr,
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "21600")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("X-aws-ec2-metadata-token-ttl-seconds"),
        Some("21600")
    );
    assert!(!r.body.is_empty());
    r.body
}

#[tokio::test]
async fn imds_token_flow_and_paths() {
    let facts = ImdsFacts::example();
    let imds = start_imds(sa([127, 0, 0, 1], 0), facts.clone(), ImdsMode::Normal);
    assert_eq!(
        imds.endpoint_url(),
        format!("http://127.0.0.1:{}", imds.addr.port())
    );
    let addr = imds.addr;

    // Token PUT validation.
    assert_eq!(
        http(addr, "PUT", "/latest/api/token", &[]).await.status,
        400
    );
    let zero = [("X-aws-ec2-metadata-token-ttl-seconds", "0")];
    assert_eq!(
        http(addr, "PUT", "/latest/api/token", &zero).await.status,
        400
    );
    let big = [("X-aws-ec2-metadata-token-ttl-seconds", "21601")];
    assert_eq!(
        http(addr, "PUT", "/latest/api/token", &big).await.status,
        400
    );

    let region = "/latest/meta-data/placement/region";
    // No token, wrong token → 401.
    assert_eq!(http(addr, "GET", region, &[]).await.status, 401);
    let bad = [("X-aws-ec2-metadata-token", "AQAEAnotatoken")];
    assert_eq!(http(addr, "GET", region, &bad).await.status, 401);

    let t = token(addr).await;
    let auth = [("X-aws-ec2-metadata-token", t.as_str())];
    let get = |path: &'static str| async move { http(addr, "GET", path, &auth).await };
    let r = get(region).await;
    assert_eq!((r.status, r.body.as_str()), (200, "eu-west-1"));
    assert_eq!(
        get("/latest/meta-data/placement/availability-zone")
            .await
            .body,
        "eu-west-1a"
    );
    assert_eq!(
        get("/latest/meta-data/instance-id").await.body,
        facts.instance_id
    );
    assert_eq!(get("/latest/meta-data/mac").await.body, facts.mac);
    assert_eq!(get("/latest/meta-data/local-ipv4").await.body, "10.0.1.23");
    assert_eq!(get("/latest/meta-data/public-ipv4").await.status, 404);
    assert_eq!(get("/latest/meta-data/no/such/path").await.status, 404);
    let mac_base = format!("/latest/meta-data/network/interfaces/macs/{}/", facts.mac);
    let vpc = http(addr, "GET", &format!("{mac_base}vpc-id"), &auth).await;
    assert_eq!(vpc.body, facts.vpc_id);
    let cidrs = http(
        addr,
        "GET",
        &format!("{mac_base}vpc-ipv4-cidr-blocks"),
        &auth,
    )
    .await;
    assert_eq!(cidrs.body, "10.0.0.0/16");
    let sgs = http(addr, "GET", &format!("{mac_base}security-group-ids"), &auth).await;
    assert_eq!(sgs.body, facts.security_group_ids.join("\n"));

    // Role and credentials.
    let role = get("/latest/meta-data/iam/security-credentials/").await;
    assert_eq!((role.status, role.body.as_str()), (200, "probe-role"));
    let creds = get("/latest/meta-data/iam/security-credentials/probe-role").await;
    assert_eq!(creds.status, 200);
    let json: serde_json::Value = serde_json::from_str(&creds.body).unwrap();
    assert_eq!(json["Code"], "Success");
    assert_eq!(json["Type"], "AWS-HMAC");
    assert_eq!(json["Token"], FAKE_SESSION_TOKEN);
    assert_eq!(json["AccessKeyId"], FAKE_ACCESS_KEY_ID);
    assert_eq!(json["Expiration"], facts.credentials_expiration.as_str());
    assert!(json["SecretAccessKey"].is_string() && json["LastUpdated"].is_string());
    let info = get("/latest/meta-data/iam/info").await;
    assert_eq!(info.status, 200);

    let doc = get("/latest/dynamic/instance-identity/document").await;
    let doc: serde_json::Value = serde_json::from_str(&doc.body).unwrap();
    assert_eq!(doc["region"], "eu-west-1");
    assert_eq!(doc["accountId"], "123456789012");
    assert_eq!(doc["instanceId"], facts.instance_id.as_str());

    // Proxied-looking requests are refused like EC2 does.
    let xff = [
        ("X-aws-ec2-metadata-token", t.as_str()),
        ("X-Forwarded-For", "203.0.113.9"),
    ];
    assert_eq!(http(addr, "GET", region, &xff).await.status, 403);

    let reqs = imds.requests();
    assert!(
        reqs.contains(&"PUT /latest/api/token".to_string()),
        "{reqs:?}"
    );
    assert!(reqs.contains(&format!("GET {region}")), "{reqs:?}");
}

#[tokio::test]
async fn imds_keeps_connections_alive() {
    let imds = start_imds(
        sa([127, 0, 0, 1], 0),
        ImdsFacts::example(),
        ImdsMode::Normal,
    );
    let t = token(imds.addr).await;
    let mut s = TcpStream::connect(imds.addr).await.unwrap();
    let req = format!(
        "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token: {t}\r\n\r\n"
    );
    for _ in 0..2 {
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&raw).ends_with("i-0123456789abcdef0") {
            let n = timeout(Duration::from_secs(5), s.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "closed early");
            raw.extend_from_slice(&buf[..n]);
        }
        let r = parse_response(&String::from_utf8(raw).unwrap());
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Connection"), Some("keep-alive"));
    }
}

#[tokio::test]
async fn imds_without_role_and_token_forbidden_mode() {
    let facts = ImdsFacts {
        role: None,
        public_ipv4: Some("198.51.100.7".into()),
        ..ImdsFacts::example()
    };
    let imds = start_imds(sa([127, 0, 0, 1], 0), facts, ImdsMode::Normal);
    let t = token(imds.addr).await;
    let auth = [("X-aws-ec2-metadata-token", t.as_str())];
    let r = http(
        imds.addr,
        "GET",
        "/latest/meta-data/iam/security-credentials/",
        &auth,
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        http(imds.addr, "GET", "/latest/meta-data/iam/info", &auth)
            .await
            .status,
        404
    );
    let r = http(imds.addr, "GET", "/latest/meta-data/public-ipv4", &auth).await;
    assert_eq!((r.status, r.body.as_str()), (200, "198.51.100.7"));

    let forbidden = start_imds(
        sa([127, 0, 0, 1], 0),
        ImdsFacts::example(),
        ImdsMode::TokenForbidden,
    );
    let ttl = [("X-aws-ec2-metadata-token-ttl-seconds", "60")];
    assert_eq!(
        http(forbidden.addr, "PUT", "/latest/api/token", &ttl)
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn imds_unresponsive_mode_times_out() {
    let imds = start_imds(
        sa([127, 0, 0, 1], 0),
        ImdsFacts::example(),
        ImdsMode::Unresponsive,
    );
    let mut s = TcpStream::connect(imds.addr).await.expect("TCP accepted");
    s.write_all(
        b"PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        timeout(Duration::from_secs(1), s.read(&mut buf))
            .await
            .is_err(),
        "no answer (and no close) within 1 s"
    );
    assert!(wait_until(Duration::from_secs(1), || imds.requests()
        == vec!["PUT /latest/api/token"]));
}

#[test]
fn servers_stop_when_dropped() {
    let addr = sa([127, 0, 90, 40], 8443);
    let sink = start_tcp_sink(addr);
    assert!(std::net::TcpStream::connect(addr).is_ok());
    drop(sink);
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "port closed after drop"
    );
    // ... and the address can be bound again at once.
    let again = start_tcp_sink(addr);
    assert!(std::net::TcpStream::connect(again.addr).is_ok());
    assert_eq!(rfc3339(std::time::UNIX_EPOCH), "1970-01-01T00:00:00Z");
}

// ------------------------------------------- the clients the probe itself uses

#[tokio::test]
async fn dns_fake_works_with_hickory_resolver() {
    use hickory_resolver::config::{NameServerConfig, ResolverConfig};
    use hickory_resolver::net::runtime::TokioRuntimeProvider;
    use hickory_resolver::{Resolver, proto::rr::RecordType};

    let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 80, 7));
    let records = DnsRecords::new().add("dynamodb.eu-west-1.amazonaws.com", ip);
    let dns = start_dns(sa([127, 0, 90, 6], 53), records, DnsMode::Answer);
    let config =
        ResolverConfig::from_name_servers(vec![NameServerConfig::udp_and_tcp(dns.addr.ip())]);
    let resolver = Resolver::builder_with_config(config, TokioRuntimeProvider::default())
        .build()
        .unwrap();

    let found = resolver
        .lookup_ip("dynamodb.eu-west-1.amazonaws.com.")
        .await
        .unwrap();
    assert_eq!(found.iter().collect::<Vec<_>>(), vec![ip]);

    let err = resolver
        .lookup("dynamodb.eu-west-1.amazonaws.com.", RecordType::AAAA)
        .await
        .expect_err("NODATA");
    assert!(err.is_no_records_found() && !err.is_nx_domain(), "{err}");

    let err = resolver
        .lookup_ip("nothing.eu-west-1.amazonaws.com.")
        .await
        .expect_err("NXDOMAIN");
    assert!(err.is_nx_domain(), "{err}");
    assert!(
        dns.asked()
            .contains(&"nothing.eu-west-1.amazonaws.com".to_string())
    );
}

#[tokio::test]
async fn imds_fake_works_with_the_aws_sdk_client() {
    let imds = start_imds(
        sa([127, 0, 0, 1], 0),
        ImdsFacts::example(),
        ImdsMode::Normal,
    );
    let client = aws_config::imds::Client::builder()
        .endpoint(imds.endpoint_url())
        .unwrap()
        .build();
    let region = client
        .get("/latest/meta-data/placement/region")
        .await
        .unwrap();
    assert_eq!(region.as_ref(), "eu-west-1");
    let creds = client
        .get("/latest/meta-data/iam/security-credentials/probe-role")
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(creds.as_ref()).unwrap();
    assert_eq!(json["Token"], FAKE_SESSION_TOKEN);
    assert_eq!(imds.requests()[0], "PUT /latest/api/token");
}
