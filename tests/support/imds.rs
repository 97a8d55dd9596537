//! An IMDSv2 server that behaves like EC2's for the paths the probe reads.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::net::TcpStream;

use super::http::{Head, ReadError, read_body, read_head, write_response};
use super::runtime::{Background, accept, bind_tcp, hold, log, tokio_listener};
use super::timefmt::rfc3339;

/// The AccessKeyId served for the instance role.
pub const FAKE_ACCESS_KEY_ID: &str = "ASIAFAKEIMDSEXAMPLE1";
/// The SecretAccessKey served for the instance role.
pub const FAKE_SECRET_ACCESS_KEY: &str = "fakeImdsSecretKey/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// The session Token served for the instance role.
pub const FAKE_SESSION_TOKEN: &str =
    "IQoJb3JpZ2luX2VjEFAKEIMDSSESSIONTOKENEXAMPLE//////////wEaCWV1LXdlc3QtMQ==";

const TOKEN_PATH: &str = "/latest/api/token";
const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
const MD: &str = "/latest/meta-data/";

#[derive(Clone, Debug)]
pub struct ImdsFacts {
    pub region: String,
    pub az: String,
    pub instance_id: String,
    pub account_id: String,
    pub mac: String,
    pub vpc_id: String,
    pub subnet_id: String,
    pub security_group_ids: Vec<String>,
    pub vpc_cidrs: Vec<String>,
    pub local_ipv4: String,
    pub public_ipv4: Option<String>,
    pub role: Option<String>,
    /// RFC 3339, e.g. "2030-01-01T00:00:00Z".
    pub credentials_expiration: String,
}

impl ImdsFacts {
    /// An instance in eu-west-1a with role "probe-role" whose credentials expire in 6 h.
    pub fn example() -> Self {
        ImdsFacts {
            region: "eu-west-1".into(),
            az: "eu-west-1a".into(),
            instance_id: "i-0123456789abcdef0".into(),
            account_id: "123456789012".into(),
            mac: "0e:49:61:0f:c3:11".into(),
            vpc_id: "vpc-0aaaaaaaaaaaaaaaa".into(),
            subnet_id: "subnet-0bbbbbbbbbbbbbbbb".into(),
            security_group_ids: vec!["sg-0cccccccccccccccc".into()],
            vpc_cidrs: vec!["10.0.0.0/16".into()],
            local_ipv4: "10.0.1.23".into(),
            public_ipv4: None,
            role: Some("probe-role".into()),
            credentials_expiration: rfc3339(SystemTime::now() + Duration::from_secs(6 * 3600)),
        }
    }
}

pub enum ImdsMode {
    Normal,
    /// Accepts TCP (and reads requests) but never answers.
    Unresponsive,
    /// Answers 403 to the token PUT (IMDS disabled / hop limit exceeded style).
    TokenForbidden,
}

pub struct ImdsServer {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    _bg: Background,
}

impl ImdsServer {
    /// "http://IP:PORT", for AWS_EC2_METADATA_SERVICE_ENDPOINT or the probe's own option.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received, as "METHOD PATH" (query string dropped).
    pub fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

struct State {
    addr: SocketAddr,
    facts: ImdsFacts,
    mode: ImdsMode,
    started: SystemTime,
    tokens: Mutex<HashMap<String, Instant>>,
    requests: Arc<Mutex<Vec<String>>>,
}

struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Reply {
    fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    fn error(status: u16) -> Reply {
        let reason = super::http::reason(status);
        Reply::text(
            status,
            format!(
                "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n<html><head><title>{status} - {reason}</title></head>\n<body><h1>{status} - {reason}</h1></body></html>\n"
            ),
        )
    }
}

/// IMDSv2 on `bind` (e.g. 127.0.0.1:0 → read `.addr`), behaving like EC2's:
/// `PUT /latest/api/token` needs `X-aws-ec2-metadata-token-ttl-seconds` in 1..=21600 (else 400)
/// and answers a random token plus that header; any other request without a valid
/// `X-aws-ec2-metadata-token` gets 401; `X-Forwarded-For` gets 403; unknown paths 404.
/// Served under /latest/meta-data/: placement/{region,availability-zone}, instance-id,
/// instance-type, ami-id, mac, local-ipv4, public-ipv4 (404 when None),
/// network/interfaces/macs/<mac>/{vpc-id,subnet-id,security-group-ids,vpc-ipv4-cidr-block(s),
/// local-ipv4s,owner-id,mac,device-number}, iam/info and iam/security-credentials/[<role>]
/// (404 when no role); plus /latest/dynamic/instance-identity/document. Connections are kept
/// alive unless the client sends `Connection: close`.
pub fn start_imds(bind: SocketAddr, facts: ImdsFacts, mode: ImdsMode) -> ImdsServer {
    let std_listener = bind_tcp("imds", bind);
    let addr = std_listener.local_addr().expect("local addr");
    let requests = Arc::new(Mutex::new(Vec::new()));
    let state = Arc::new(State {
        addr,
        facts,
        mode,
        started: SystemTime::now(),
        tokens: Mutex::new(HashMap::new()),
        requests: requests.clone(),
    });
    let bg = Background::spawn(format!("fake-imds-{addr}"), move || async move {
        let Some(listener) = tokio_listener("imds", addr, std_listener) else {
            return;
        };
        loop {
            match accept(&listener).await {
                Ok((stream, peer)) => {
                    tokio::spawn(conn(state.clone(), stream, peer));
                }
                Err(e) => {
                    log("imds", addr, format!("accept error: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    });
    ImdsServer {
        addr,
        requests,
        _bg: bg,
    }
}

async fn conn(state: Arc<State>, mut stream: TcpStream, peer: SocketAddr) {
    let mut buf = Vec::new();
    loop {
        let head = match read_head(&mut stream, &mut buf).await {
            Ok(Some(head)) => head,
            Ok(None) | Err(ReadError::Closed) | Err(ReadError::Timeout) => return,
            Err(e) => {
                log("imds", state.addr, format!("request from {peer}: {e}"));
                let r = Reply::error(400);
                let _ = write_response(&mut stream, 400, &[], r.body.as_bytes(), true, true).await;
                return;
            }
        };
        let path = head
            .target
            .split(['?', '#'])
            .next()
            .unwrap_or("")
            .to_string();
        state
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{} {}", head.method, path));
        if matches!(state.mode, ImdsMode::Unresponsive) {
            hold(&mut stream).await;
            return;
        }
        let body_ok = match head.content_length() {
            Ok(len) => read_body(&mut stream, &mut buf, len).await.is_ok(),
            Err(_) => false,
        };
        let close = head.wants_close() || !body_ok;
        let reply = if body_ok {
            state.respond(&head, &path)
        } else {
            Reply::error(400)
        };
        let mut headers = reply.headers;
        headers.push(("Server", "EC2ws".to_string()));
        headers.push(("Content-Type", "text/plain".to_string()));
        let send_body = !head.method.eq_ignore_ascii_case("HEAD");
        if let Err(e) = write_response(
            &mut stream,
            reply.status,
            &headers,
            reply.body.as_bytes(),
            send_body,
            close,
        )
        .await
        {
            log("imds", state.addr, format!("writing to {peer}: {e}"));
            return;
        }
        if close {
            return;
        }
    }
}

fn random_hex() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = String::new();
    for _ in 0..3 {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

impl State {
    fn respond(&self, head: &Head, path: &str) -> Reply {
        let method = head.method.to_ascii_uppercase();
        // EC2 refuses anything that looks proxied.
        if head.header("x-forwarded-for").is_some() {
            return Reply::error(403);
        }
        if path == TOKEN_PATH {
            if method != "PUT" {
                return Reply::error(405);
            }
            if matches!(self.mode, ImdsMode::TokenForbidden) {
                return Reply::error(403);
            }
            let ttl = match head
                .header(TTL_HEADER)
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                Some(ttl) if (1..=21_600).contains(&ttl) => ttl,
                _ => return Reply::error(400),
            };
            let token = format!("AQAEA{}==", random_hex());
            let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            tokens.retain(|_, exp| *exp > now);
            tokens.insert(token.clone(), now + Duration::from_secs(ttl));
            return Reply {
                status: 200,
                headers: vec![("X-aws-ec2-metadata-token-ttl-seconds", ttl.to_string())],
                body: token,
            };
        }
        if method != "GET" && method != "HEAD" {
            return Reply::error(405);
        }
        let valid = head.header(TOKEN_HEADER).is_some_and(|t| {
            self.tokens
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(t.trim())
                .is_some_and(|exp| *exp > Instant::now())
        });
        if !valid {
            return Reply::error(401);
        }
        match self.lookup(path) {
            Some(body) => Reply::text(200, body),
            None => Reply::error(404),
        }
    }

    fn lookup(&self, path: &str) -> Option<String> {
        let f = &self.facts;
        if path == "/latest/dynamic/instance-identity/document" {
            return Some(self.identity_document());
        }
        let rest = path.strip_prefix(MD)?;
        let role_path = "iam/security-credentials/";
        Some(match rest {
            "" => [
                "ami-id",
                "iam/",
                "instance-id",
                "instance-type",
                "local-ipv4",
                "mac",
                "network/",
                "placement/",
            ]
            .join("\n"),
            "placement" | "placement/" => "availability-zone\nregion".to_string(),
            "placement/region" => f.region.clone(),
            "placement/availability-zone" => f.az.clone(),
            "instance-id" => f.instance_id.clone(),
            "instance-type" => "t3.micro".to_string(),
            "ami-id" => "ami-0123456789abcdef0".to_string(),
            "mac" => f.mac.clone(),
            "local-ipv4" => f.local_ipv4.clone(),
            "public-ipv4" => f.public_ipv4.clone()?,
            "iam" | "iam/" => {
                f.role.as_ref()?;
                "info\nsecurity-credentials/".to_string()
            }
            "iam/info" => self.iam_info()?,
            "iam/security-credentials" | "iam/security-credentials/" => f.role.clone()?,
            "network/interfaces/macs" | "network/interfaces/macs/" => format!("{}/", f.mac),
            _ => {
                if let Some(role) = rest.strip_prefix(role_path) {
                    let role = role.trim_end_matches('/');
                    return (f.role.as_deref() == Some(role)).then(|| self.credentials());
                }
                let per_mac = rest.strip_prefix("network/interfaces/macs/")?;
                let (mac, item) = per_mac.split_once('/').unwrap_or((per_mac, ""));
                if !mac.eq_ignore_ascii_case(&f.mac) {
                    return None;
                }
                match item {
                    "" => [
                        "device-number",
                        "interface-id",
                        "local-ipv4s",
                        "mac",
                        "owner-id",
                        "security-group-ids",
                        "subnet-id",
                        "vpc-id",
                        "vpc-ipv4-cidr-block",
                        "vpc-ipv4-cidr-blocks",
                    ]
                    .join("\n"),
                    "device-number" => "0".to_string(),
                    // EC2 serves the ENI id here; the fake derives a stable one from the MAC.
                    "interface-id" => format!("eni-0{}", f.mac.replace(':', "")),
                    "mac" => f.mac.clone(),
                    "owner-id" => f.account_id.clone(),
                    "vpc-id" => f.vpc_id.clone(),
                    "subnet-id" => f.subnet_id.clone(),
                    "security-group-ids" => f.security_group_ids.join("\n"),
                    "vpc-ipv4-cidr-block" => f.vpc_cidrs.first()?.clone(),
                    "vpc-ipv4-cidr-blocks" => f.vpc_cidrs.join("\n"),
                    "local-ipv4s" => f.local_ipv4.clone(),
                    _ => return None,
                }
            }
        })
    }

    fn credentials(&self) -> String {
        let doc = serde_json::json!({
            "Code": "Success",
            "LastUpdated": rfc3339(self.started),
            "Type": "AWS-HMAC",
            "AccessKeyId": FAKE_ACCESS_KEY_ID,
            "SecretAccessKey": FAKE_SECRET_ACCESS_KEY,
            "Token": FAKE_SESSION_TOKEN,
            "Expiration": self.facts.credentials_expiration,
        });
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    }

    fn iam_info(&self) -> Option<String> {
        let role = self.facts.role.as_ref()?;
        let doc = serde_json::json!({
            "Code": "Success",
            "LastUpdated": rfc3339(self.started),
            "InstanceProfileArn": format!("arn:aws:iam::{}:instance-profile/{role}", self.facts.account_id),
            "InstanceProfileId": "AIPAFAKEINSTANCEPROFILE",
        });
        serde_json::to_string_pretty(&doc).ok()
    }

    fn identity_document(&self) -> String {
        let f = &self.facts;
        let doc = serde_json::json!({
            "accountId": f.account_id,
            "architecture": "x86_64",
            "availabilityZone": f.az,
            "billingProducts": null,
            "devpayProductCodes": null,
            "marketplaceProductCodes": null,
            "imageId": "ami-0123456789abcdef0",
            "instanceId": f.instance_id,
            "instanceType": "t3.micro",
            "kernelId": null,
            "pendingTime": rfc3339(self.started - Duration::from_secs(3600)),
            "privateIp": f.local_ipv4,
            "ramdiskId": null,
            "region": f.region,
            "version": "2017-09-30",
        });
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    }
}
