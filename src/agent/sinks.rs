//! Where reports go: an HTTP(S) collector, an S3 prefix, a local directory. A sink delivers one
//! report's JSON bytes and says whether the other side has it; retries, backoff and the spool are
//! the shipper's business (agent/shipper.rs), so `probe --ship` and the daemon share this code.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_credential_types::provider::SharedCredentialsProvider;
use serde::Deserialize;
use tokio::sync::OnceCell;

use crate::config::Config;
use crate::config::{Shipping, Sink};
use crate::net::aws::PinnedResolver;
use crate::net::dns::{ServerResolver, system_servers};

/// What a sink needs to know about a report besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportMeta {
    pub report_id: String,
    /// "YYYY/MM/DD" of the report's start (UTC).
    pub date_path: String,
    /// The instance id, else the host name, else "unknown"; safe as one path segment.
    pub origin: String,
    pub region: Option<String>,
}

#[derive(Deserialize)]
struct MetaFields {
    report_id: String,
    started_at: String,
    #[serde(default)]
    host: Option<HostFields>,
    #[serde(default)]
    instance: Option<InstanceFields>,
    #[serde(default)]
    region: Option<RegionFields>,
}

#[derive(Deserialize)]
struct HostFields {
    hostname: Option<String>,
}

#[derive(Deserialize)]
struct InstanceFields {
    instance_id: Option<String>,
}

#[derive(Deserialize)]
struct RegionFields {
    effective: Option<String>,
}

impl ReportMeta {
    /// Reads the few fields sinks use from a report's JSON (the spool holds bytes, not Reports).
    pub fn from_json(json: &[u8]) -> Result<ReportMeta, String> {
        let f: MetaFields =
            serde_json::from_slice(json).map_err(|e| format!("not a vpce-probe report: {e}"))?;
        let date = f.started_at.get(..10).unwrap_or("");
        let parts: Vec<&str> = date.split('-').collect();
        let date_path = if parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            parts.join("/")
        } else {
            return Err(format!(
                "report {}: started_at \"{}\" is not an RFC 3339 time",
                f.report_id, f.started_at
            ));
        };
        let origin = f
            .instance
            .and_then(|i| i.instance_id)
            .or_else(|| f.host.and_then(|h| h.hostname))
            .map(|s| path_segment(&s))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".into());
        Ok(ReportMeta {
            report_id: path_segment(&f.report_id),
            date_path,
            origin,
            region: f.region.and_then(|r| r.effective),
        })
    }

    /// For an entry whose JSON lacks the fields (the spool only guarantees a report_id).
    pub fn unknown(report_id: &str) -> ReportMeta {
        ReportMeta {
            report_id: path_segment(report_id),
            date_path: "unknown-date".into(),
            origin: "unknown".into(),
            region: None,
        }
    }

    /// `<prefix>YYYY/MM/DD/<instance>/<report_id>.json`
    pub fn s3_key(&self, prefix: &str) -> String {
        format!(
            "{prefix}{}/{}/{}.json",
            self.date_path, self.origin, self.report_id
        )
    }
}

/// The report on one line, for the S3 sink: Athena's JSON SerDes read an object line by line,
/// and a pretty-printed report would be no record at all (packaging/athena/). A JSON string
/// cannot hold a raw line break, so every line break and indentation is between tokens.
fn one_line(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    for line in json.split(|&b| b == b'\n') {
        out.extend_from_slice(line.trim_ascii_start());
    }
    out.push(b'\n');
    out
}

/// Keeps `[A-Za-z0-9._-]`, so that no field of a report can climb out of a directory or a prefix.
fn path_segment(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    cleaned.trim_start_matches('.').to_string()
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The other side has the report.
    Delivered,
    /// Not delivered this time (timeout, connection error, 5xx, 408, 429, 3xx, a local error):
    /// try again after a backoff.
    RetryLater(String),
    /// The collector refused this report for good (a 4xx other than 408 and 429): sending it
    /// again would get the same answer, so it goes to the dead-letter directory instead.
    Refused {
        status: u16,
        /// The collector's own one-line reason (first line of its answer), else the status text.
        reason: String,
    },
}

impl Delivery {
    /// One line for logs and for `probe --ship`'s errors; `None` when delivered.
    pub fn problem(&self) -> Option<String> {
        match self {
            Delivery::Delivered => None,
            Delivery::RetryLater(why) => Some(why.clone()),
            Delivery::Refused { status, reason } => Some(format!(
                "the collector refused the report with {status}: {reason}"
            )),
        }
    }
}

/// How an HTTP status of a collector is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    Delivered,
    Retryable,
    /// Permanent: this report will never be taken, whatever the number of tries.
    Refused,
}

/// 2xx delivered; 4xx refused for good, except 408 (Request Timeout) and 429 (Too Many
/// Requests), which say "later", and 401, 403 and 404, which say the sink's configuration is
/// wrong (a token, a URL): the token file is read at every attempt, so once the operator fixes
/// it the held reports go out, instead of every report landing in dead-letter meanwhile.
/// Everything else (1xx, 3xx, 5xx, unknown codes) is retried.
pub fn classify_status(status: u16) -> StatusClass {
    match status {
        200..=299 => StatusClass::Delivered,
        401 | 403 | 404 | 408 | 429 => StatusClass::Retryable,
        400..=499 => StatusClass::Refused,
        _ => StatusClass::Retryable,
    }
}

/// Longest collector reason kept (bytes of its first line).
const MAX_REASON: usize = 200;

/// The first non-empty line of a collector's answer, control characters escaped and cut to
/// [`MAX_REASON`]; the status's canonical text when the body says nothing.
fn one_line_reason(body: &[u8], status: reqwest::StatusCode) -> String {
    let text = String::from_utf8_lossy(body.get(..4096).unwrap_or(body));
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let mut out = String::new();
    for c in line.chars() {
        if out.len() >= MAX_REASON {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if out.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no reason given")
            .to_string()
    } else {
        out
    }
}

/// A sink ready to deliver.
pub struct Sender {
    pub name: String,
    kind: SenderKind,
    timeout: Duration,
}

enum SenderKind {
    Http {
        client: reqwest::Client,
        url: url::Url,
        bearer_token_file: Option<PathBuf>,
        gzip: bool,
    },
    S3 {
        bucket: String,
        prefix: String,
        client: Arc<OnceCell<aws_sdk_s3::Client>>,
        probe: Arc<Config>,
    },
    Dir {
        path: PathBuf,
    },
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sender({})", self.describe())
    }
}

/// A sink of the configuration that cannot be built: bad input, like the file itself (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum SinkSetupError {
    #[error("sink {sink}: {reason}")]
    TrustRoots { sink: String, reason: String },
    #[error("sink {sink}: HTTP client: {source}")]
    HttpClient {
        sink: String,
        source: reqwest::Error,
    },
}

impl Sender {
    /// `probe` gives the trust roots, resolvers, region and profile the sinks use (the same as the
    /// probe's, so that a sink reaches S3 the way the probe just proved it can).
    pub fn new(
        sink: &Sink,
        probe: Arc<Config>,
        shipping: &Shipping,
    ) -> Result<Sender, SinkSetupError> {
        let kind = match sink {
            Sink::Http {
                url,
                bearer_token_file,
                ca_file,
                gzip,
                ..
            } => {
                let mut pem_files: Vec<PathBuf> = [&probe.env.ca_bundle, &probe.env.ssl_cert_file]
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect();
                pem_files.extend(ca_file.iter().cloned());
                let tls = crate::net::tls::client_config(&pem_files).map_err(|reason| {
                    SinkSetupError::TrustRoots {
                        sink: sink.name().to_string(),
                        reason,
                    }
                })?;
                let client = reqwest::Client::builder()
                    .use_preconfigured_tls(tls)
                    // A redirect could take the report (and the bearer token's audience) to
                    // another host, or from https down to plain http: a 3xx is a failed delivery.
                    .redirect(reqwest::redirect::Policy::none())
                    .connect_timeout(shipping.timeout)
                    .timeout(shipping.timeout)
                    .user_agent(concat!("vpce-probe/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|source| SinkSetupError::HttpClient {
                        sink: sink.name().to_string(),
                        source,
                    })?;
                SenderKind::Http {
                    client,
                    url: url.clone(),
                    bearer_token_file: bearer_token_file.clone(),
                    gzip: *gzip,
                }
            }
            Sink::S3 { bucket, prefix, .. } => SenderKind::S3 {
                bucket: bucket.clone(),
                prefix: prefix.clone(),
                client: Arc::new(OnceCell::new()),
                probe,
            },
            Sink::Dir { path, .. } => SenderKind::Dir { path: path.clone() },
        };
        Ok(Sender {
            name: sink.name().to_string(),
            kind,
            timeout: shipping.timeout,
        })
    }

    /// Where it sends, for logs (never a token).
    pub fn describe(&self) -> String {
        match &self.kind {
            SenderKind::Http { url, .. } => {
                let mut u = url.clone();
                let _ = u.set_password(None);
                let _ = u.set_username("");
                u.set_query(None);
                u.to_string()
            }
            SenderKind::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
            SenderKind::Dir { path } => path.display().to_string(),
        }
    }

    /// One delivery attempt, bounded by the shipping timeout.
    pub async fn send(&self, meta: &ReportMeta, json: &[u8]) -> Delivery {
        match tokio::time::timeout(
            self.timeout.saturating_add(Duration::from_secs(1)),
            self.send_inner(meta, json),
        )
        .await
        {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => Delivery::RetryLater(e),
            Err(_) => Delivery::RetryLater(format!(
                "no answer within {} ms",
                self.timeout.as_millis().saturating_add(1000)
            )),
        }
    }

    /// Err is a local or transport failure (retryable); an answer is classified.
    async fn send_inner(&self, meta: &ReportMeta, json: &[u8]) -> Result<Delivery, String> {
        match &self.kind {
            SenderKind::Http {
                client,
                url,
                bearer_token_file,
                gzip,
            } => {
                let body = if *gzip {
                    let mut enc =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    enc.write_all(json)
                        .and_then(|_| enc.finish())
                        .map_err(|e| format!("gzip: {e}"))?
                } else {
                    json.to_vec()
                };
                let mut request = client
                    .post(url.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header("X-Vpce-Probe-Report-Id", &meta.report_id)
                    .body(body);
                if *gzip {
                    request = request.header(reqwest::header::CONTENT_ENCODING, "gzip");
                }
                if let Some(path) = bearer_token_file {
                    // Read at every attempt: a rotated token is picked up without a reload.
                    let token = read_token(path)?;
                    let mut value =
                        reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                            .map_err(|_| {
                                format!("{}: the token is not a valid header value", path.display())
                            })?;
                    value.set_sensitive(true);
                    request = request.header(reqwest::header::AUTHORIZATION, value);
                }
                let response = request.send().await.map_err(describe_reqwest)?;
                let status = response.status();
                match classify_status(status.as_u16()) {
                    StatusClass::Delivered => Ok(Delivery::Delivered),
                    StatusClass::Refused => {
                        // The reason is a courtesy: a body that does not come is no reason to
                        // retry a refusal.
                        let body = response.bytes().await.unwrap_or_default();
                        Ok(Delivery::Refused {
                            status: status.as_u16(),
                            reason: one_line_reason(&body, status),
                        })
                    }
                    StatusClass::Retryable if status.is_redirection() => {
                        Ok(Delivery::RetryLater(format!(
                            "the collector answered {status} (redirects are not followed: set the sink's url to the final address)"
                        )))
                    }
                    StatusClass::Retryable => Ok(Delivery::RetryLater(format!(
                        "the collector answered {status}"
                    ))),
                }
            }
            SenderKind::S3 {
                bucket,
                prefix,
                client,
                probe,
            } => {
                let client = client
                    .get_or_try_init(|| s3_client(probe, meta.region.as_deref(), self.timeout))
                    .await?;
                let key = meta.s3_key(prefix);
                client
                    .put_object()
                    .bucket(bucket)
                    .key(&key)
                    .content_type("application/json")
                    .body(one_line(json).into())
                    .send()
                    .await
                    .map(|_| Delivery::Delivered)
                    .map_err(|e| {
                        format!(
                            "PutObject s3://{bucket}/{key}: {}",
                            aws_smithy_types::error::display::DisplayErrorContext(&e)
                        )
                    })
            }
            SenderKind::Dir { path } => {
                let dir = path.clone();
                let name = format!("{}.json", meta.report_id);
                let bytes = json.to_vec();
                tokio::task::spawn_blocking(move || write_durably(&dir, &name, &bytes))
                    .await
                    .map_err(|e| format!("write task: {e}"))?
                    .map(|()| Delivery::Delivered)
            }
        }
    }
}

/// `probe --ship`: every sink at once, each tried up to three times (1 s, then 2 s apart).
/// Returns, per sink, where it went or why it did not.
pub async fn ship_once(
    sinks: &[Sink],
    probe: Arc<Config>,
    json: &[u8],
) -> Vec<(String, Result<(), String>)> {
    let shipping = Shipping::default();
    let meta = ReportMeta::from_json(json);
    let attempts = sinks.iter().map(|sink| {
        let probe = probe.clone();
        let meta = meta.clone();
        async move {
            let sender = match Sender::new(sink, probe, &shipping) {
                Ok(s) => s,
                Err(e) => return (sink.name().to_string(), Err(e.to_string())),
            };
            let meta = match meta {
                Ok(m) => m,
                Err(e) => return (sender.describe(), Err(e)),
            };
            let mut last = Delivery::RetryLater(String::new());
            for attempt in 0..3u32 {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
                }
                last = sender.send(&meta, json).await;
                // A refusal is final: the same report gets the same answer.
                if !matches!(last, Delivery::RetryLater(_)) {
                    break;
                }
            }
            (sender.describe(), last.problem().map_or(Ok(()), Err))
        }
    });
    futures_util::future::join_all(attempts).await
}

fn read_token(path: &Path) -> Result<String, String> {
    let raw = crate::fsread::read_string(path, crate::fsread::MAX_SMALL)
        .map_err(|e| format!("bearer token: {e}"))?;
    let token = raw.trim();
    if token.is_empty() {
        return Err(format!(
            "the bearer token file {} is empty",
            crate::escape::shown_path(path)
        ));
    }
    Ok(token.to_string())
}

/// reqwest's Display stops at the outermost error ("error sending request"); the cause is below.
/// The URL is left out: it may carry credentials, and the log line names the sink anyway.
fn describe_reqwest(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Whole or absent, even across a crash: temporary file, fsync, rename, directory fsync.
fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
    let fail = |what: &str, e: std::io::Error| format!("{what} in {}: {e}", dir.display());
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| fail("cannot create a file", e))?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| fail("cannot write", e))?;
    tmp.persist(dir.join(name))
        .map_err(|e| fail("cannot rename", e.error))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| fail("cannot sync", e))
}

/// The S3 client of the sink: the probe's resolvers, trust roots, region and profile; the SDK's
/// credential chain (refreshed as it expires, unlike the probe's one-time load).
async fn s3_client(
    probe: &Config,
    report_region: Option<&str>,
    timeout: Duration,
) -> Result<aws_sdk_s3::Client, String> {
    let region = probe
        .region
        .clone()
        .or_else(|| report_region.map(str::to_string))
        .or_else(|| probe.env.aws_region.clone())
        .ok_or("no region for the S3 sink: set [probe] region")?;
    let servers = system_servers(&probe.resolv_conf)?
        .into_iter()
        .map(|s| ServerResolver::new(s, probe.timeout))
        .collect::<Result<Vec<_>, _>>()?;
    let extra_pem: Vec<Vec<u8>> = [&probe.env.ca_bundle, &probe.env.ssl_cert_file]
        .into_iter()
        .flatten()
        .filter_map(|p| crate::fsread::read(p, crate::fsread::MAX_CA_BUNDLE).ok())
        .collect();
    let http = crate::net::aws::http_client(extra_pem, PinnedResolver::new(servers), None)?;
    let mut chain = aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
        .region(aws_types::region::Region::new(region.clone()));
    if let Some(p) = &probe.profile {
        chain = chain.profile_name(p);
    }
    let credentials = SharedCredentialsProvider::new(chain.build().await);
    let sdk = crate::net::aws::sdk_config(
        &region,
        http,
        None,
        timeout,
        crate::net::aws::EndpointFlags::default(),
    );
    let mut conf = aws_sdk_s3::config::Builder::from(&sdk).credentials_provider(credentials);
    if let Some(url) = probe
        .env
        .endpoint_url_s3
        .as_ref()
        .or(probe.env.endpoint_url.as_ref())
    {
        conf = conf.endpoint_url(url);
    }
    Ok(aws_sdk_s3::Client::from_conf(conf.build()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(instance: Option<&str>, host: Option<&str>) -> Vec<u8> {
        serde_json::json!({
            "report_id": "0b5e6c1e-1111-4222-8333-444455556666",
            "started_at": "2026-11-24T10:11:12.345Z",
            "host": {"hostname": host},
            "instance": instance.map(|i| serde_json::json!({"instance_id": i})),
            "region": {"effective": "eu-west-1"},
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn keys_by_date_instance_and_report_id() {
        let m = ReportMeta::from_json(&report(Some("i-0123"), Some("ip-10-0-1-10"))).expect("meta");
        assert_eq!(
            m.s3_key("vpce-probe/"),
            "vpce-probe/2026/11/24/i-0123/0b5e6c1e-1111-4222-8333-444455556666.json"
        );
        let m = ReportMeta::from_json(&report(None, Some("web/../../etc"))).expect("meta");
        assert_eq!(m.origin, "web_.._.._etc");
        let m = ReportMeta::from_json(&report(None, None)).expect("meta");
        assert_eq!(m.origin, "unknown");
        assert_eq!(m.region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn s3_objects_hold_the_report_on_one_line() {
        let value = serde_json::json!({
            "report_id": "r1",
            "findings": [{"title": "two\nlines", "detail": "  indented  "}],
            "verdict": {"status": "healthy"},
        });
        let pretty = serde_json::to_vec_pretty(&value).expect("json");
        assert!(pretty.iter().filter(|&&b| b == b'\n').count() > 5);
        let line = one_line(&pretty);
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(line.last(), Some(&b'\n'));
        let back: serde_json::Value = serde_json::from_slice(&line).expect("still JSON");
        assert_eq!(back, value);
    }

    #[test]
    fn refuses_what_is_not_a_report() {
        assert!(ReportMeta::from_json(b"[]").is_err());
        let bad_time = br#"{"report_id":"x","started_at":"yesterday"}"#;
        assert!(
            ReportMeta::from_json(bad_time)
                .expect_err("bad time")
                .contains("RFC 3339")
        );
    }

    #[test]
    fn statuses_are_delivered_retried_or_refused_for_good() {
        for ok in [200, 201, 202, 204, 299] {
            assert_eq!(classify_status(ok), StatusClass::Delivered, "{ok}");
        }
        for refused in [400, 405, 410, 413, 415, 422, 451, 499] {
            assert_eq!(classify_status(refused), StatusClass::Refused, "{refused}");
        }
        for retry in [
            100, 301, 302, 307, 308, 401, 403, 404, 408, 429, 500, 502, 503, 504, 599, 600,
        ] {
            assert_eq!(classify_status(retry), StatusClass::Retryable, "{retry}");
        }
    }

    #[test]
    fn a_refusal_reason_is_one_short_line() {
        let s = reqwest::StatusCode::BAD_REQUEST;
        assert_eq!(
            one_line_reason(b"\n  report_id missing  \nsecond line", s),
            "report_id missing"
        );
        assert_eq!(one_line_reason(b"", s), "Bad Request");
        assert_eq!(one_line_reason(b"a\x1b[2Jb", s), "a\\u{1b}[2Jb");
        let long = one_line_reason("x".repeat(10_000).as_bytes(), s);
        assert!(
            long.len() <= MAX_REASON + 3 && long.ends_with("..."),
            "{long}"
        );
        assert_eq!(
            Delivery::Refused {
                status: 413,
                reason: "too big".into()
            }
            .problem()
            .as_deref(),
            Some("the collector refused the report with 413: too big")
        );
        assert_eq!(Delivery::Delivered.problem(), None);
    }

    #[test]
    fn a_dir_write_leaves_only_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_durably(dir.path(), "r.json", b"{}").expect("write");
        write_durably(dir.path(), "r.json", b"{\"again\":1}").expect("rewrite");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read_dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["r.json"]);
        assert_eq!(
            std::fs::read(dir.path().join("r.json")).expect("read"),
            b"{\"again\":1}"
        );
    }
}
