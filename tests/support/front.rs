//! A TLS-terminating HTTP/1.1 reverse proxy in front of moto (or any plain-HTTP loopback
//! server) that can answer chosen requests itself, the way AWS would, for what moto does
//! not model: endpoint policies, bucket policies with aws:SourceVpce, wrong-region
//! redirects, clock skew, a proxy in the path.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

use super::ca::Leaf;
use super::http::{
    Head, ReadError, ResponseHead, is_chunked, read_chunked_raw, read_exact_limited, read_head,
    read_response_head, read_to_close, write_all,
};
use super::runtime::{Background, READ_TIMEOUT, accept, bind_tcp, log, tokio_listener};

/// Largest request or response body the front relays.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// A response the front sends itself instead of forwarding.
#[derive(Clone, Debug)]
pub struct CannedResponse {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

fn request_id() -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..16)
        .map(|_| ALNUM[fastrand::usize(..ALNUM.len())] as char)
        .collect()
}

fn host_id() -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s: String = (0..76)
        .map(|_| B64[fastrand::usize(..B64.len())] as char)
        .collect();
    s.push('=');
    s
}

fn ddb_request_id() -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..52)
        .map(|_| ALNUM[fastrand::usize(..ALNUM.len())] as char)
        .collect()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The reason phrase AWS sends with a status.
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        416 => "Requested Range Not Satisfiable",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

impl CannedResponse {
    /// An S3 XML error as S3 sends it: `<Error><Code>…</Code><Message>…</Message>
    /// <RequestId>…</RequestId><HostId>…</HostId></Error>`, Content-Type application/xml,
    /// x-amz-request-id, x-amz-id-2, Server: AmazonS3. (HEAD requests get the headers only.)
    pub fn s3_error(status: u16, code: &str, message: &str) -> Self {
        let (rid, hid) = (request_id(), host_id());
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><RequestId>{rid}</RequestId><HostId>{hid}</HostId></Error>",
            xml_escape(code),
            xml_escape(message)
        );
        CannedResponse {
            status,
            reason: reason_phrase(status).to_string(),
            headers: vec![
                ("x-amz-request-id".into(), rid),
                ("x-amz-id-2".into(), hid),
                ("Content-Type".into(), "application/xml".into()),
                ("Server".into(), "AmazonS3".into()),
            ],
            body,
        }
    }

    /// A DynamoDB JSON error: `{"__type":"com.amazonaws.dynamodb.v20120810#<type>","message":"…"}`
    /// (a `type_name` holding '#' is used as is), Content-Type application/x-amz-json-1.0,
    /// x-amzn-RequestId.
    pub fn dynamodb_error(status: u16, type_name: &str, message: &str) -> Self {
        let full_type = if type_name.contains('#') {
            type_name.to_string()
        } else {
            format!("com.amazonaws.dynamodb.v20120810#{type_name}")
        };
        let body = serde_json::json!({ "__type": full_type, "message": message }).to_string();
        CannedResponse {
            status,
            reason: reason_phrase(status).to_string(),
            headers: vec![
                ("Server".into(), "Server".into()),
                ("x-amzn-RequestId".into(), ddb_request_id()),
                ("Content-Type".into(), "application/x-amz-json-1.0".into()),
            ],
            body,
        }
    }

    /// S3's answer for a bucket addressed through another region's endpoint: 301
    /// PermanentRedirect with x-amz-bucket-region (and, for non-HEAD requests, the XML body
    /// naming the Endpoint and Bucket).
    pub fn s3_wrong_region(bucket: &str, bucket_region: &str) -> Self {
        let (rid, hid) = (request_id(), host_id());
        let endpoint = if bucket_region == "us-east-1" {
            format!("{bucket}.s3.amazonaws.com")
        } else {
            format!("{bucket}.s3.{bucket_region}.amazonaws.com")
        };
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be addressed using the specified endpoint. Please send all future requests to this endpoint.</Message><Endpoint>{}</Endpoint><Bucket>{}</Bucket><RequestId>{rid}</RequestId><HostId>{hid}</HostId></Error>",
            xml_escape(&endpoint),
            xml_escape(bucket)
        );
        CannedResponse {
            status: 301,
            reason: reason_phrase(301).to_string(),
            headers: vec![
                ("x-amz-bucket-region".into(), bucket_region.to_string()),
                ("x-amz-request-id".into(), rid),
                ("x-amz-id-2".into(), hid),
                ("Content-Type".into(), "application/xml".into()),
                ("Server".into(), "AmazonS3".into()),
            ],
            body,
        }
    }
}

/// Which requests get a canned answer. Every `Some` field must match; rules are tried in order.
#[derive(Clone, Debug)]
pub struct FrontRule {
    /// Host header match without port (case-insensitive); a `*` stands for one label or part
    /// of one (`lab-canned-bucket-*.s3.eu-west-1.amazonaws.com`); None = any.
    pub host: Option<String>,
    /// e.g. "HEAD" (case-insensitive); None = any.
    pub method: Option<String>,
    /// Prefix of the request target (path and query); a `*` stands for a run of characters
    /// without `.`, `/` or `?` (`/lab-canned-bucket-*?location`); None = any.
    pub path_prefix: Option<String>,
    /// Substring of the X-Amz-Target header (DynamoDB operations, e.g. "DescribeTable");
    /// None = any (a rule with Some never matches a request without the header).
    pub amz_target_contains: Option<String>,
    /// Text the request body contains (DynamoDB's JSON names the table there:
    /// `"TableName":"lab-canned-table-`); None = any.
    pub body_contains: Option<String>,
    pub response: CannedResponse,
}

impl FrontRule {
    /// A rule matching every request; narrow it with the fields.
    pub fn any(response: CannedResponse) -> Self {
        FrontRule {
            host: None,
            method: None,
            path_prefix: None,
            amz_target_contains: None,
            body_contains: None,
            response,
        }
    }

    fn matches(&self, head: &Head, host: &str, body: &str) -> bool {
        if let Some(h) = &self.host
            && !host_matches(h, host)
        {
            return false;
        }
        if let Some(m) = &self.method
            && !m.eq_ignore_ascii_case(&head.method)
        {
            return false;
        }
        if let Some(p) = &self.path_prefix
            && pattern_prefix(p, &head.target).is_none()
        {
            return false;
        }
        if let Some(t) = &self.amz_target_contains
            && !head
                .header("x-amz-target")
                .is_some_and(|v| v.contains(t.as_str()))
        {
            return false;
        }
        if let Some(b) = &self.body_contains
            && !body.contains(b.as_str())
        {
            return false;
        }
        true
    }
}

/// The object every healthy canned bucket holds (`--key probe/object.txt` in the lab) and the
/// bytes of it a ranged GetObject of the first 16 bytes returns.
pub const CANNED_OBJECT_KEY: &str = "probe/object.txt";
const CANNED_OBJECT: &str = "hello from the lab";

/// Rules that answer, as healthy S3 buckets and DynamoDB tables would, every call the probe
/// makes for buckets and tables whose names start with `bucket_prefix` and `table_prefix`
/// followed by a number or word, so that many targets cost the front and not the emulator
/// behind it: HeadBucket (200, x-amz-bucket-region), GetBucketLocation (also path-style, as
/// botocore sends it), ListObjectsV2 (one key), GetObject of CANNED_OBJECT_KEY (206, the
/// first 16 bytes, which is what the probe asks for), DescribeTable (ACTIVE; on any DynamoDB
/// name the front serves) and GetItem (one item). The answers name no bucket or table (one
/// answer serves them all); anything else about those names goes on upstream, where they do
/// not exist.
pub fn healthy_target_rules(
    bucket_prefix: &str,
    table_prefix: &str,
    region: &str,
) -> Vec<FrontRule> {
    let bucket_host = format!("{bucket_prefix}*.s3.{region}.amazonaws.com");
    let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    let ns = "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"";
    let s3 = |status: u16, headers: &[(&str, &str)], body: String| CannedResponse {
        status,
        reason: reason_phrase(status).to_string(),
        headers: [("x-amz-id-2", "lab-canned-host-id"), ("Server", "AmazonS3")]
            .iter()
            .chain(headers)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body,
    };
    let rule = |method: &str, path_prefix: Option<&str>, response| FrontRule {
        host: Some(bucket_host.clone()),
        method: Some(method.to_string()),
        path_prefix: path_prefix.map(str::to_string),
        ..FrontRule::any(response)
    };
    // S3 answers a region's LocationConstraint by name, except us-east-1's, which is empty.
    let location = match region {
        "us-east-1" => format!("{xml}<LocationConstraint {ns}/>"),
        r => format!("{xml}<LocationConstraint {ns}>{r}</LocationConstraint>"),
    };
    let list = format!(
        "{xml}<ListBucketResult {ns}><Prefix></Prefix><KeyCount>1</KeyCount><MaxKeys>1</MaxKeys>\
         <IsTruncated>false</IsTruncated><Contents><Key>{CANNED_OBJECT_KEY}</Key>\
         <LastModified>2026-12-01T00:00:00.000Z</LastModified><ETag>&quot;lab&quot;</ETag>\
         <Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents></ListBucketResult>",
        CANNED_OBJECT.len()
    );
    let first = &CANNED_OBJECT[..16];
    let range = format!("bytes 0-15/{}", CANNED_OBJECT.len());
    let xml_type = ("Content-Type", "application/xml");
    let ddb = |operation: &str, body: &str| FrontRule {
        amz_target_contains: Some(format!("DynamoDB_20120810.{operation}")),
        body_contains: Some(format!("\"{table_prefix}")),
        ..FrontRule::any(CannedResponse {
            status: 200,
            reason: "OK".into(),
            headers: vec![
                ("Server".into(), "Server".into()),
                ("x-amzn-RequestId".into(), ddb_request_id()),
                ("Content-Type".into(), "application/x-amz-json-1.0".into()),
            ],
            body: body.to_string(),
        })
    };
    vec![
        rule(
            "HEAD",
            None,
            s3(200, &[("x-amz-bucket-region", region)], String::new()),
        ),
        rule(
            "GET",
            Some("/?location"),
            s3(200, &[xml_type], location.clone()),
        ),
        FrontRule {
            host: Some(format!("s3.{region}.amazonaws.com")),
            method: Some("GET".into()),
            path_prefix: Some(format!("/{bucket_prefix}*?location")),
            ..FrontRule::any(s3(200, &[xml_type], location.clone()))
        },
        // The SDK for Rust's path-style form.
        FrontRule {
            host: Some(format!("s3.{region}.amazonaws.com")),
            method: Some("GET".into()),
            path_prefix: Some(format!("/{bucket_prefix}*/?location")),
            ..FrontRule::any(s3(200, &[xml_type], location))
        },
        rule("GET", Some("/?list-type=2"), s3(200, &[xml_type], list)),
        rule(
            "GET",
            Some(&format!("/{CANNED_OBJECT_KEY}")),
            s3(
                206,
                &[("Content-Type", "text/plain"), ("Content-Range", &range)],
                first.to_string(),
            ),
        ),
        ddb(
            "DescribeTable",
            r#"{"Table":{"AttributeDefinitions":[{"AttributeName":"pk","AttributeType":"S"}],"KeySchema":[{"AttributeName":"pk","KeyType":"HASH"}],"TableStatus":"ACTIVE","ItemCount":1,"BillingModeSummary":{"BillingMode":"PAY_PER_REQUEST"}}}"#,
        ),
        ddb(
            "GetItem",
            r#"{"Item":{"pk":{"S":"id-1"},"note":{"S":"answered by the lab's front"}}}"#,
        ),
    ]
}

/// How much of `text` a rule's pattern matches from its start: the pattern's characters
/// themselves, and a `*` a run of at least one character that is not `.`, `/` or `?` (a DNS
/// label's or a path segment's worth: `lab-canned-bucket-*.s3.eu-west-1.amazonaws.com`,
/// `/lab-canned-bucket-*?location`). None when it does not match.
fn pattern_prefix(pattern: &str, text: &str) -> Option<usize> {
    let Some((before, after)) = pattern.split_once('*') else {
        return text.starts_with(pattern).then_some(pattern.len());
    };
    let rest = text.strip_prefix(before)?;
    let run = rest.find(['.', '/', '?']).unwrap_or(rest.len());
    if run == 0 {
        return None;
    }
    let matched = before.len() + run;
    let after_len = pattern_prefix(after, &text[matched..])?;
    Some(matched + after_len)
}

/// A rule's host pattern against a request's Host (both without port, case-insensitive).
fn host_matches(pattern: &str, host: &str) -> bool {
    let (pattern, host) = (pattern.to_ascii_lowercase(), host.to_ascii_lowercase());
    pattern_prefix(&pattern, &host) == Some(host.len())
}

#[derive(Clone, Debug, Default)]
pub struct FrontOptions {
    pub rules: Vec<FrontRule>,
    /// Rewrite the Host header sent upstream: (host suffix, replacement host), matched
    /// case-insensitively against the Host without port; first match wins. E.g.
    /// ("ddb.eu-west-1.amazonaws.com", "dynamodb.eu-west-1.amazonaws.com") so that moto
    /// serves DynamoDB's account-based endpoint.
    pub host_rewrites: Vec<(String, String)>,
    /// Shift the Date header of every response (upstream and canned) by this many seconds.
    pub date_offset_secs: i64,
    /// Extra headers added to every response (e.g. ("Via", "1.1 squid")).
    pub extra_headers: Vec<(String, String)>,
    /// Canned answers chosen by the request body, checked after `rules`: (text the body
    /// contains, answer). For Query-protocol APIs such as EC2, whose operation is in the body
    /// (`Action=GetManagedPrefixListEntries`).
    pub body_rules: Vec<(String, CannedResponse)>,
    /// Refuse, as AWS does, a signed request whose signing time (X-Amz-Date) is more than this
    /// many seconds from the front's clock (shifted by `date_offset_secs`), before any rule:
    /// S3 answers 403 RequestTimeTooSkewed (a HEAD gets the status and headers only, as S3's
    /// HEAD answers carry no body), DynamoDB (requests with X-Amz-Target) 400
    /// InvalidSignatureException "Signature expired" / "Signature not yet current".
    pub max_request_skew_secs: Option<i64>,
    /// Complete every TLS handshake, then read and answer nothing: a service whose connections
    /// open and whose calls get no answer.
    pub silent_after_handshake: bool,
}

pub struct FrontServer {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    served_on: Arc<Mutex<Vec<usize>>>,
    connections: Arc<AtomicUsize>,
    _bg: Background,
}

impl FrontServer {
    /// Every request answered so far, in order, as
    /// "METHOD host path-and-query -> status (canned|upstream)"; the host is the one the client
    /// sent (before any rewrite), without port. A request the upstream could not answer is
    /// recorded as "-> 502 (error)".
    pub fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `requests()`, each with the number of the client connection it came on (0 for the
    /// first whose TLS handshake completed): which calls shared a connection.
    pub fn requests_by_connection(&self) -> Vec<(usize, String)> {
        let served_on = self.served_on.lock().unwrap_or_else(|e| e.into_inner());
        served_on.iter().copied().zip(self.requests()).collect()
    }

    /// Client connections whose TLS handshake completed (shows keep-alive at work).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

struct Shared {
    addr: SocketAddr,
    upstream: SocketAddr,
    options: FrontOptions,
    requests: Arc<Mutex<Vec<String>>>,
    served_on: Arc<Mutex<Vec<usize>>>,
}

impl Shared {
    fn record(&self, connection: usize, line: String) {
        // Both under the requests' lock, so the two lists stay in step.
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        requests.push(line);
        self.served_on
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(connection);
    }
}

/// TLS on `bind` presenting `leaf`; each request is answered by the first matching rule's
/// canned response, or else forwarded over plain HTTP to `upstream` (a loopback address) and
/// the answer relayed back. Keep-alive on the client side; one upstream connection per client
/// connection, re-opened whenever the upstream closed it.
pub fn start_front(
    bind: SocketAddr,
    leaf: &Leaf,
    upstream: SocketAddr,
    options: FrontOptions,
) -> FrontServer {
    assert!(
        upstream.ip().is_loopback(),
        "fake front: upstream {upstream} is not a loopback address"
    );
    let acceptor = TlsAcceptor::from(leaf.server_config());
    let std_listener = bind_tcp("front", bind);
    let addr = std_listener.local_addr().expect("local addr");
    let requests = Arc::new(Mutex::new(Vec::new()));
    let served_on = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let shared = Arc::new(Shared {
        addr,
        upstream,
        options,
        requests: requests.clone(),
        served_on: served_on.clone(),
    });
    let conns = connections.clone();
    let bg = Background::spawn(format!("fake-front-{addr}"), move || async move {
        let Some(listener) = tokio_listener("front", addr, std_listener) else {
            return;
        };
        loop {
            match accept(&listener).await {
                Ok((stream, peer)) => {
                    tokio::spawn(conn(
                        shared.clone(),
                        peer,
                        stream,
                        acceptor.clone(),
                        conns.clone(),
                    ));
                }
                Err(e) => {
                    log("front", addr, format!("accept error: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    });
    FrontServer {
        addr,
        requests,
        served_on,
        connections,
        _bg: bg,
    }
}

/// The Host header without port (IPv6 literals keep their brackets).
fn host_without_port(host: &str) -> String {
    let host = host.trim();
    if host.starts_with('[') {
        return match host.find(']') {
            Some(i) => host[..=i].to_string(),
            None => host.to_string(),
        };
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h.to_string(),
        _ => host.to_string(),
    }
}

/// Seconds since the epoch of a SigV4 time stamp (`20261202T183000Z`); None if malformed.
fn amz_date_secs(v: &str) -> Option<i64> {
    let v = v.trim();
    if v.len() != 16 || !v.is_ascii() || &v[8..9] != "T" || &v[15..] != "Z" {
        return None;
    }
    let num = |r: std::ops::Range<usize>| v[r].parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

fn amz_date(secs: i64) -> String {
    let t = shift(SystemTime::UNIX_EPOCH, secs);
    // RFC 3339 ("2026-12-02T18:30:00Z") without the separators.
    super::timefmt::rfc3339(t).replace(['-', ':'], "")
}

/// AWS's answer to a request signed too far from the front's clock, if this one is.
fn skewed_answer(head: &Head, options: &FrontOptions) -> Option<CannedResponse> {
    let limit = options.max_request_skew_secs?;
    let signed = amz_date_secs(head.header("x-amz-date")?)?;
    let now = shifted_now(options.date_offset_secs)
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())?;
    if (signed - now).abs() <= limit {
        return None;
    }
    if head.header("x-amz-target").is_some() {
        let message = if signed < now {
            format!(
                "Signature expired: {} is now earlier than {} ({} - {} min.)",
                amz_date(signed),
                amz_date(now - limit),
                amz_date(now),
                limit / 60
            )
        } else {
            format!(
                "Signature not yet current: {} is still later than {} ({} + {} min.)",
                amz_date(signed),
                amz_date(now + limit),
                amz_date(now),
                limit / 60
            )
        };
        return Some(CannedResponse::dynamodb_error(
            400,
            "InvalidSignatureException",
            &message,
        ));
    }
    let mut answer = CannedResponse::s3_error(
        403,
        "RequestTimeTooSkewed",
        "The difference between the request time and the current time is too large.",
    );
    // S3 also names both times and its limit.
    let extra = format!(
        "<RequestTime>{}</RequestTime><ServerTime>{}</ServerTime><MaxAllowedSkewMilliseconds>{}</MaxAllowedSkewMilliseconds><RequestId>",
        amz_date(signed),
        super::timefmt::rfc3339(shift(SystemTime::UNIX_EPOCH, now)),
        limit * 1000
    );
    answer.body = answer.body.replacen("<RequestId>", &extra, 1);
    Some(answer)
}

fn shifted_now(offset: i64) -> SystemTime {
    shift(SystemTime::now(), offset)
}

fn shift(t: SystemTime, offset: i64) -> SystemTime {
    let d = Duration::from_secs(offset.unsigned_abs());
    if offset >= 0 {
        t.checked_add(d).unwrap_or(t)
    } else {
        t.checked_sub(d).unwrap_or(t)
    }
}

fn is_hop_by_hop(name: &str) -> bool {
    ["connection", "keep-alive", "proxy-connection"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

async fn conn(
    shared: Arc<Shared>,
    peer: SocketAddr,
    stream: TcpStream,
    acceptor: TlsAcceptor,
    connections: Arc<AtomicUsize>,
) {
    let addr = shared.addr;
    let mut tls = match timeout(READ_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            log("front", addr, format!("handshake with {peer} failed: {e}"));
            return;
        }
        Err(_) => {
            log("front", addr, format!("handshake with {peer} timed out"));
            return;
        }
    };
    let connection = connections.fetch_add(1, Ordering::SeqCst);
    if shared.options.silent_after_handshake {
        // Held open, unanswered, until the client gives up (or the idle limit).
        let mut byte = [0u8; 1];
        let _ = timeout(READ_TIMEOUT, async {
            while let Ok(n) = tokio::io::AsyncReadExt::read(&mut tls, &mut byte).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        return;
    }
    let mut buf = Vec::new();
    let mut upstream: Option<Upstream> = None;
    loop {
        let head = match read_head(&mut tls, &mut buf).await {
            Ok(Some(head)) => head,
            // Closed, or idle past READ_TIMEOUT between requests.
            Ok(None) | Err(ReadError::Closed) | Err(ReadError::Timeout) => break,
            Err(e) => {
                log("front", addr, format!("request from {peer}: {e}"));
                let _ = write_plain_error(&mut tls, 400, "malformed request").await;
                break;
            }
        };
        let chunked = is_chunked(head.header("transfer-encoding"));
        let length = if chunked {
            None
        } else {
            match head.content_length() {
                Ok(n) => Some(n),
                Err(e) => {
                    log("front", addr, format!("request from {peer}: {e}"));
                    let _ = write_plain_error(&mut tls, 400, "bad Content-Length").await;
                    break;
                }
            }
        };
        let expects_continue = head
            .header("expect")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"));
        if expects_continue
            && (chunked || length.unwrap_or(0) > 0)
            && write_all(&mut tls, b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .is_err()
        {
            break;
        }
        let body = match (chunked, length) {
            (true, _) => read_chunked_raw(&mut tls, &mut buf, MAX_BODY).await,
            (false, Some(n)) => read_exact_limited(&mut tls, &mut buf, n, MAX_BODY).await,
            (false, None) => Ok(Vec::new()),
        };
        let body = match body {
            Ok(b) => b,
            Err(e) => {
                log("front", addr, format!("request body from {peer}: {e}"));
                match e {
                    ReadError::TooLarge => {
                        let _ = write_plain_error(&mut tls, 413, "request body too large").await;
                    }
                    ReadError::Bad(_) => {
                        let _ = write_plain_error(&mut tls, 400, "malformed body").await;
                    }
                    _ => {}
                }
                break;
            }
        };
        let host = host_without_port(head.header("host").unwrap_or(""));
        let close = head.wants_close();
        let is_head = head.method.eq_ignore_ascii_case("HEAD");
        let body_text = String::from_utf8_lossy(&body);
        // Body rules are logged with their needle ("canned: Action=..."), so tests can tell
        // which Query-protocol operations were answered.
        let body_match = shared
            .options
            .body_rules
            .iter()
            .find(|(needle, _)| body_text.contains(needle.as_str()));
        let header_rule = shared
            .options
            .rules
            .iter()
            .find(|r| r.matches(&head, &host, &body_text))
            .cloned();
        let skewed = skewed_answer(&head, &shared.options).map(FrontRule::any);
        let (rule, canned_label) = match (skewed.or(header_rule), body_match) {
            (Some(r), _) => (Some(r), "canned".to_string()),
            (None, Some((needle, response))) => (
                Some(FrontRule::any(response.clone())),
                format!("canned: {needle}"),
            ),
            (None, None) => (None, "canned".to_string()),
        };
        // Each request is recorded before its answer is written, so a client that has its
        // answer always finds it in `requests()`.
        let record = |status: u16, source: &str| {
            shared.record(
                connection,
                format!(
                    "{} {} {} -> {} ({})",
                    head.method, host, head.target, status, source
                ),
            );
        };
        let (source, result) = if let Some(rule) = rule {
            record(rule.response.status, &canned_label);
            let r = write_canned(&mut tls, &shared.options, &rule.response, is_head, close).await;
            ("canned", r)
        } else {
            match forward(&shared, &mut upstream, &head, &host, &body).await {
                Ok(resp) => {
                    record(resp.head.status, "upstream");
                    let r = write_relayed(&mut tls, &shared.options, resp, close).await;
                    ("upstream", r)
                }
                Err(e) => {
                    log(
                        "front",
                        addr,
                        format!("{} {host}{}: upstream: {e}", head.method, head.target),
                    );
                    upstream = None;
                    record(502, "error");
                    let r = write_plain_error(&mut tls, 502, &format!("upstream: {e}")).await;
                    ("error", r.map(|_| ()))
                }
            }
        };
        if let Err(e) = result {
            log("front", addr, format!("writing response to {peer}: {e}"));
            break;
        }
        if close || source == "error" {
            break;
        }
    }
    let _ = timeout(READ_TIMEOUT, tls.shutdown()).await;
}

/// A plain-text error from the front itself; always closes the connection.
async fn write_plain_error<W: AsyncWrite + Unpin>(
    w: &mut W,
    status: u16,
    msg: &str,
) -> std::io::Result<bool> {
    let body = format!("fake front: {msg}\n");
    let out = format!(
        "HTTP/1.1 {status} {}\r\nDate: {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        reason_phrase(status),
        httpdate::fmt_http_date(SystemTime::now()),
        body.len()
    );
    write_all(w, out.as_bytes()).await.map(|_| true)
}

fn connection_header(close: bool) -> &'static str {
    if close {
        "Connection: close\r\n"
    } else {
        "Connection: keep-alive\r\n"
    }
}

async fn write_canned<W: AsyncWrite + Unpin>(
    w: &mut W,
    options: &FrontOptions,
    resp: &CannedResponse,
    is_head: bool,
    close: bool,
) -> std::io::Result<()> {
    let has = |name: &str| {
        resp.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    };
    let reason = if resp.reason.is_empty() {
        reason_phrase(resp.status)
    } else {
        resp.reason.as_str()
    };
    let mut out = format!("HTTP/1.1 {} {reason}\r\n", resp.status);
    if !has("date") {
        out.push_str(&format!(
            "Date: {}\r\n",
            httpdate::fmt_http_date(shifted_now(options.date_offset_secs))
        ));
    }
    if !has("x-amz-request-id") && !has("x-amzn-requestid") {
        out.push_str(&format!("x-amz-request-id: {}\r\n", request_id()));
    }
    for (k, v) in resp.headers.iter().chain(options.extra_headers.iter()) {
        if k.eq_ignore_ascii_case("content-length") || is_hop_by_hop(k) {
            continue;
        }
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    out.push_str(connection_header(close));
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !is_head && resp.status != 204 && resp.status != 304 {
        bytes.extend_from_slice(resp.body.as_bytes());
    }
    write_all(w, &bytes).await
}

struct Upstream {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Whether this connection already carried an exchange (so a close is not an error).
    reused: bool,
}

enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    None,
    Length,
    /// Relayed still chunked.
    Chunked,
    /// The upstream delimited the body by closing; the front sends a Content-Length.
    UntilClose,
}

struct Relayed {
    head: ResponseHead,
    body: Vec<u8>,
    framing: Framing,
}

async fn connect_upstream(to: SocketAddr) -> Result<Upstream, String> {
    match timeout(READ_TIMEOUT, TcpStream::connect(to)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok(Upstream {
                stream,
                buf: Vec::new(),
                reused: false,
            })
        }
        Ok(Err(e)) => Err(format!("connect {to}: {e}")),
        Err(_) => Err(format!("connect {to}: timed out")),
    }
}

/// The request as sent upstream: same method, target, headers and body, with the Host
/// rewritten when a rule says so and hop-by-hop headers replaced.
fn upstream_request(options: &FrontOptions, head: &Head, host: &str, body: &[u8]) -> Vec<u8> {
    let rewritten = options
        .host_rewrites
        .iter()
        .find(|(suffix, _)| {
            host.to_ascii_lowercase()
                .ends_with(&suffix.to_ascii_lowercase())
        })
        .map(|(_, to)| to.clone());
    let mut out = format!("{} {} HTTP/1.1\r\n", head.method, head.target);
    for (k, v) in &head.headers {
        if is_hop_by_hop(k) || k.eq_ignore_ascii_case("expect") {
            continue;
        }
        if k.eq_ignore_ascii_case("host")
            && let Some(to) = &rewritten
        {
            out.push_str(&format!("{k}: {to}\r\n"));
            continue;
        }
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("Connection: keep-alive\r\n\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

async fn forward(
    shared: &Shared,
    slot: &mut Option<Upstream>,
    head: &Head,
    host: &str,
    body: &[u8],
) -> Result<Relayed, String> {
    let request = upstream_request(&shared.options, head, host, body);
    let is_head = head.method.eq_ignore_ascii_case("HEAD");
    // A second attempt only when a kept-alive upstream connection turned out to be closed
    // before it sent any byte of a response.
    for _attempt in 0..2 {
        let mut up = match slot.take() {
            Some(up) => up,
            None => connect_upstream(shared.upstream).await?,
        };
        if let Err(e) = write_all(&mut up.stream, &request).await {
            if up.reused {
                continue;
            }
            return Err(format!("writing request: {e}"));
        }
        let mut resp_head = match read_response_head(&mut up.stream, &mut up.buf).await {
            Ok(Some(h)) => h,
            Ok(None) | Err(ReadError::Closed) if up.reused => continue,
            Ok(None) | Err(ReadError::Closed) => {
                return Err("closed before answering".into());
            }
            Err(e) => return Err(format!("response: {e}")),
        };
        // Skip interim responses (the front already answered any Expect itself).
        while (100..200).contains(&resp_head.status) && resp_head.status != 101 {
            resp_head = match read_response_head(&mut up.stream, &mut up.buf).await {
                Ok(Some(h)) => h,
                Ok(None) => return Err("closed after an interim response".into()),
                Err(e) => return Err(format!("response: {e}")),
            };
        }
        let (framing, body) = if is_head
            || resp_head.status == 204
            || resp_head.status == 304
            || resp_head.status < 200
        {
            (Framing::None, Ok(Vec::new()))
        } else if is_chunked(resp_head.header("transfer-encoding")) {
            (
                Framing::Chunked,
                read_chunked_raw(&mut up.stream, &mut up.buf, MAX_BODY).await,
            )
        } else if let Some(len) = resp_head.header("content-length") {
            match len.trim().parse::<usize>() {
                Ok(n) => (
                    Framing::Length,
                    read_exact_limited(&mut up.stream, &mut up.buf, n, MAX_BODY).await,
                ),
                Err(_) => return Err(format!("bad Content-Length {len:?}")),
            }
        } else {
            (
                Framing::UntilClose,
                read_to_close(&mut up.stream, &mut up.buf, MAX_BODY).await,
            )
        };
        let body = body.map_err(|e| format!("response body: {e}"))?;
        let upstream_closes = matches!(framing, Framing::UntilClose)
            || resp_head
                .header("connection")
                .is_some_and(|v| v.to_ascii_lowercase().contains("close"))
            || (resp_head.version.eq_ignore_ascii_case("HTTP/1.0")
                && !resp_head
                    .header("connection")
                    .is_some_and(|v| v.to_ascii_lowercase().contains("keep-alive")));
        if !upstream_closes {
            up.reused = true;
            *slot = Some(up);
        }
        return Ok(Relayed {
            head: resp_head,
            body,
            framing,
        });
    }
    Err("upstream closed the connection twice".into())
}

async fn write_relayed<W: AsyncWrite + Unpin>(
    w: &mut W,
    options: &FrontOptions,
    resp: Relayed,
    close: bool,
) -> std::io::Result<()> {
    let reason = if resp.head.reason.is_empty() {
        reason_phrase(resp.head.status)
    } else {
        resp.head.reason.as_str()
    };
    let mut out = format!("HTTP/1.1 {} {reason}\r\n", resp.head.status);
    let mut saw_date = false;
    for (k, v) in &resp.head.headers {
        if is_hop_by_hop(k) {
            continue;
        }
        if matches!(resp.framing, Framing::UntilClose) && k.eq_ignore_ascii_case("content-length") {
            continue;
        }
        if k.eq_ignore_ascii_case("date") {
            saw_date = true;
            let shifted = match httpdate::parse_http_date(v) {
                Ok(t) if options.date_offset_secs != 0 => {
                    httpdate::fmt_http_date(shift(t, options.date_offset_secs))
                }
                _ => v.clone(),
            };
            out.push_str(&format!("{k}: {shifted}\r\n"));
            continue;
        }
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if !saw_date {
        out.push_str(&format!(
            "Date: {}\r\n",
            httpdate::fmt_http_date(shifted_now(options.date_offset_secs))
        ));
    }
    for (k, v) in &options.extra_headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if matches!(resp.framing, Framing::UntilClose) {
        out.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    }
    out.push_str(connection_header(close));
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&resp.body);
    write_all(w, &bytes).await
}
