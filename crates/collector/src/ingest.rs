//! POST /v1/reports: the HTTP sink's request as it sends it (agent/sinks.rs in the probe):
//! `Authorization: Bearer <token>`, `Content-Encoding: gzip` (optional), the report's JSON,
//! `X-Vpce-Probe-Report-Id`. Everything is checked before the store sees it, so a refused
//! request leaves nothing behind.

use std::io::Read;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Bytes, Incoming};
use hyper::{HeaderMap, Request, StatusCode};

use crate::error::StoreError;
use crate::model::{OverallStatus, Report, SCHEMA_VERSION, escaped_line, shown};
use crate::store::NewReport;
use crate::tokens::SecretFile;

#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("missing or unknown bearer token")]
    Unauthorized,
    #[error("the body is larger than {0} bytes")]
    TooLarge(u64),
    #[error("the body did not arrive within {0} s")]
    Timeout(u64),
    #[error("cannot read the body: {0}")]
    Read(String),
    #[error("Content-Encoding {0} is not supported (gzip or none)")]
    Encoding(String),
    #[error("the body is not valid gzip: {0}")]
    BadGzip(String),
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("not a vpce-probe report: {0}")]
    NotReport(String),
    #[error("schema_version {0}: this collector reads schema {major}.x", major = schema_major(SCHEMA_VERSION))]
    SchemaVersion(String),
    #[error("the report cannot be stored now: {0}")]
    Store(#[from] StoreError),
}

impl Refused {
    pub fn status(&self) -> StatusCode {
        match self {
            Refused::Unauthorized => StatusCode::UNAUTHORIZED,
            Refused::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Refused::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Refused::Encoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Refused::Read(_)
            | Refused::BadGzip(_)
            | Refused::NotJson(_)
            | Refused::NotReport(_)
            | Refused::SchemaVersion(_) => StatusCode::BAD_REQUEST,
            Refused::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `reason` label of the refused-reports counter.
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::Unauthorized => "unauthorized",
            Refused::TooLarge(_) => "too_large",
            Refused::Timeout(_) => "timeout",
            Refused::Read(_) => "read_error",
            Refused::Encoding(_) => "encoding",
            Refused::BadGzip(_) => "bad_gzip",
            Refused::NotJson(_) => "not_json",
            Refused::NotReport(_) => "not_report",
            Refused::SchemaVersion(_) => "schema_version",
            Refused::Store(_) => "store_error",
        }
    }
}

fn schema_major(v: &str) -> &str {
    v.split('.').next().unwrap_or(v)
}

/// The label of the token in `Authorization: Bearer <token>`.
pub fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(hyper::header::AUTHORIZATION)?.as_bytes();
    let rest = value.strip_prefix(b"Bearer ")?;
    Some(rest.trim_ascii())
}

pub fn authorize(headers: &HeaderMap, tokens: &SecretFile) -> Result<String, Refused> {
    bearer(headers)
        .and_then(|t| tokens.check(t))
        .ok_or(Refused::Unauthorized)
}

/// The decoded body, at most `max` bytes before and after decompression.
pub async fn read_body(
    req: Request<Incoming>,
    max: u64,
    timeout: Duration,
) -> Result<Vec<u8>, Refused> {
    let headers = req.headers().clone();
    let declared = headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(Refused::TooLarge(max));
    }
    let gzip = match headers
        .get(hyper::header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("identity") | Some("") => false,
        Some("gzip") | Some("x-gzip") => true,
        Some(other) => return Err(Refused::Encoding(shown(other))),
    };
    let mut body = req.into_body();
    let mut raw: Vec<u8> = Vec::new();
    let collect = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Refused::Read(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                if raw.len() as u64 + data.len() as u64 > max {
                    return Err(Refused::TooLarge(max));
                }
                raw.extend_from_slice(&data);
            }
        }
        Ok(())
    };
    // A client that trickles its body ties up a connection: the whole body has one deadline.
    tokio::time::timeout(timeout, collect)
        .await
        .map_err(|_| Refused::Timeout(timeout.as_secs()))??;
    if !gzip {
        return Ok(raw);
    }
    gunzip(Bytes::from(raw), max)
}

/// Decompresses at most `max` bytes: a small gzip bomb is refused, not expanded.
pub fn gunzip(raw: Bytes, max: u64) -> Result<Vec<u8>, Refused> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(raw.as_ref())
        .take(max.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| Refused::BadGzip(escaped_line(&e.to_string())))?;
    if out.len() as u64 > max {
        return Err(Refused::TooLarge(max));
    }
    Ok(out)
}

/// The one field read before the whole report; every other field is skipped (not built).
#[derive(serde::Deserialize)]
struct VersionOnly<'a> {
    #[serde(borrow, default)]
    schema_version: Option<std::borrow::Cow<'a, str>>,
}

/// Checks the JSON and extracts the columns the store keeps.
pub fn parse(
    json: Vec<u8>,
    header_id: Option<&str>,
    token_label: &str,
) -> Result<NewReport, Refused> {
    // Two passes over the bytes, none through serde_json::Value (which costs as much as both):
    // the version alone first, so that a report of another major version is refused as such
    // rather than as a report that does not parse. serde's messages quote the offending value
    // ("unknown variant `...`"): escaped and cut.
    let head: VersionOnly<'_> = serde_json::from_slice(&json).map_err(|e| {
        // A wrong type may come before a syntax error: only JSON that parses is "not a report".
        match serde_json::from_slice::<serde::de::IgnoredAny>(&json) {
            Ok(_) => Refused::NotReport(escaped_line(&e.to_string())),
            Err(syntax) => Refused::NotJson(escaped_line(&syntax.to_string())),
        }
    })?;
    let version = head
        .schema_version
        .ok_or_else(|| Refused::NotReport("no schema_version".into()))?;
    if schema_major(&version) != schema_major(SCHEMA_VERSION) {
        return Err(Refused::SchemaVersion(shown(&version)));
    }
    let report: Report = serde_json::from_slice(&json)
        .map_err(|e| Refused::NotReport(escaped_line(&e.to_string())))?;
    // The agent's spool takes no other report_id (src/agent/spool): one that comes with a
    // newline or an escape sequence was not sent by a probe, and would be echoed in answers.
    let id = &report.report_id;
    if id.is_empty()
        || id.len() > 128
        || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(Refused::NotReport(format!(
            "report_id \"{}\": use 1 to 128 characters among A-Z, a-z, 0-9 and '-'",
            shown(id)
        )));
    }
    if let Some(h) = header_id
        && h != report.report_id
    {
        return Err(Refused::NotReport(format!(
            "X-Vpce-Probe-Report-Id {} differs from the body's report_id {}",
            shown(h),
            report.report_id
        )));
    }
    let started = humantime::parse_rfc3339_weak(&report.started_at).map_err(|_| {
        Refused::NotReport(format!(
            "started_at \"{}\" is not an RFC 3339 UTC time",
            shown(&report.started_at)
        ))
    })?;
    let started_at_ms = started
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let body =
        String::from_utf8(json).map_err(|e| Refused::NotJson(escaped_line(&e.to_string())))?;
    Ok(extract(report, started_at_ms, token_label, body))
}

fn extract(report: Report, started_at_ms: i64, token_label: &str, body: String) -> NewReport {
    let inst = report.instance.clone().unwrap_or_default();
    let hostname = report.host.hostname.clone();
    let instance_key = match (&inst.instance_id, &hostname) {
        (Some(id), _) if !id.is_empty() => id.clone(),
        (_, Some(h)) if !h.is_empty() => format!("host:{h}"),
        _ => "host:unknown".to_string(),
    };
    let status = match report.verdict.status {
        OverallStatus::Healthy => "healthy",
        OverallStatus::Problems => "problems",
    };
    NewReport {
        report_id: report.report_id.clone(),
        started_at_ms,
        instance_key,
        instance_id: inst.instance_id,
        hostname,
        account: inst.account_id,
        region: inst.region.or(report.region.effective.clone()),
        vpc_id: inst.vpc_id,
        subnet_id: inst.subnet_id,
        az: inst.availability_zone,
        status: status.to_string(),
        exit_code: i64::from(report.verdict.exit_code),
        summary: report.verdict.summary.clone(),
        root_causes: report
            .verdict
            .root_causes
            .iter()
            .map(|r| format!("{} {}", r.code, r.target))
            .collect(),
        path_kinds: report
            .targets
            .iter()
            .map(|t| format!("{}={}", t.id, t.path.kind.as_str()))
            .collect(),
        token_label: token_label.to_string(),
        tool_version: report.tool.version.clone(),
        findings: report
            .findings
            .iter()
            .map(|f| {
                (
                    f.code.to_string(),
                    f.target.clone(),
                    f.severity.as_str().to_string(),
                )
            })
            .collect(),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gunzip_caps_the_expanded_size() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![b' '; 1 << 20]).expect("write");
        let bomb = enc.finish().expect("finish");
        assert!(bomb.len() < 4096);
        assert!(matches!(
            gunzip(Bytes::from(bomb.clone()), 64 * 1024),
            Err(Refused::TooLarge(_))
        ));
        assert_eq!(
            gunzip(Bytes::from(bomb), 2 << 20).expect("fits").len(),
            1 << 20
        );
        assert!(matches!(
            gunzip(Bytes::from_static(b"not gzip"), 1024),
            Err(Refused::BadGzip(_))
        ));
    }

    #[test]
    fn refuses_other_majors_and_non_reports() {
        assert!(matches!(
            parse(b"{\"schema_version\":\"2.0\"}".to_vec(), None, "t"),
            Err(Refused::SchemaVersion(_))
        ));
        assert!(matches!(
            parse(b"{\"schema_version\":\"1.0\"}".to_vec(), None, "t"),
            Err(Refused::NotReport(_))
        ));
        assert!(matches!(
            parse(b"[1,2".to_vec(), None, "t"),
            Err(Refused::NotJson(_))
        ));
        assert!(matches!(
            parse(b"[1,2]".to_vec(), None, "t"),
            Err(Refused::NotReport(_))
        ));
        assert!(matches!(
            parse(b"{\"schema_version\":2}".to_vec(), None, "t"),
            Err(Refused::NotReport(_))
        ));
    }
}
