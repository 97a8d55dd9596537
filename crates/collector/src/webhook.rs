//! The webhook (`--webhook-url`): a small JSON POST when an instance's verdict or root causes
//! change (healthy → problems, problems → healthy, other root causes), and when a new
//! instance's first report has problems. Ingest never waits for it: a stored report's
//! transition is checked in a task of its own and queued (bounded; a full queue drops the event
//! and counts it); one worker delivers the queue in order, each attempt with a timeout, retried
//! with backoff. The bearer token is read from its file at each attempt and never logged; the
//! log names the URL's scheme and host only (webhook URLs often carry a secret in their path).

use std::path::PathBuf;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::Serialize;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::error::ConfigError;
use crate::store::{ReportRow, Store};

/// Events waiting for the worker; beyond this they are dropped (and counted).
pub const QUEUE: usize = 256;
/// Attempts per event, with 1 s, 2 s, 4 s between them.
pub const ATTEMPTS: u32 = 4;

#[derive(Clone)]
pub struct WebhookSettings {
    pub url: url::Url,
    pub token_file: Option<PathBuf>,
    pub timeout: Duration,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL's path and query may be a secret.
        f.write_str(&self.describe())
    }
}

impl WebhookSettings {
    pub fn new(
        url: &str,
        token_file: Option<PathBuf>,
        timeout_secs: u64,
    ) -> Result<WebhookSettings, ConfigError> {
        // The URL itself may be a secret: errors describe it without repeating it.
        let parsed = url::Url::parse(url).map_err(|e| {
            ConfigError::Usage(format!(
                "webhook_url is not a URL ({e}): give http://HOST/PATH or https://HOST/PATH"
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(ConfigError::Usage(format!(
                "webhook_url has scheme {}: give http://HOST/PATH or https://HOST/PATH",
                parsed.scheme()
            )));
        }
        if !(1..=60).contains(&timeout_secs) {
            return Err(ConfigError::Usage(format!(
                "webhook_timeout_secs {timeout_secs}: from 1 to 60"
            )));
        }
        if let Some(path) = &token_file {
            read_token(path)?;
        }
        Ok(WebhookSettings {
            url: parsed,
            token_file,
            timeout: Duration::from_secs(timeout_secs),
        })
    }

    /// scheme://host[:port]/…: what logs and `check-config` show of the URL.
    pub fn redacted_url(&self) -> String {
        let mut out = format!(
            "{}://{}",
            self.url.scheme(),
            self.url.host_str().unwrap_or("?")
        );
        if let Some(port) = self.url.port() {
            out.push_str(&format!(":{port}"));
        }
        if self.url.path() != "/" || self.url.query().is_some() {
            out.push_str("/…");
        }
        out
    }

    pub fn describe(&self) -> String {
        format!(
            "{} (bearer token {}, timeout {} s, {ATTEMPTS} attempts, queue {QUEUE})",
            self.redacted_url(),
            self.token_file
                .as_ref()
                .map(|p| format!("from {}", p.display()))
                .unwrap_or_else(|| "none".into()),
            self.timeout.as_secs()
        )
    }
}

/// The whole file, trimmed; refused when empty or holding white space.
fn read_token(path: &std::path::Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            message: "the webhook token file must hold one token (no white space inside)".into(),
        });
    }
    Ok(token.to_string())
}

/// What the webhook receives.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    /// Always "verdict_changed".
    pub event: &'static str,
    pub instance: String,
    pub instance_id: Option<String>,
    pub hostname: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    pub az: Option<String>,
    /// The instance's report before this one; null for a new instance.
    pub previous: Option<Verdict>,
    pub current: Verdict,
    /// The collector's page of the report that changed the verdict.
    pub report_path: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verdict {
    pub report_id: String,
    pub status: String,
    pub root_causes: Vec<RootCause>,
    pub summary: String,
    pub started_at: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RootCause {
    pub code: String,
    pub target: String,
}

fn verdict(row: &ReportRow) -> Verdict {
    let started = std::time::UNIX_EPOCH
        + Duration::from_millis(u64::try_from(row.started_at_ms).unwrap_or(0));
    Verdict {
        report_id: row.report_id.clone(),
        status: row.status.clone(),
        root_causes: row
            .root_causes
            .iter()
            .map(|rc| {
                let (code, target) = rc.split_once(' ').unwrap_or((rc.as_str(), ""));
                RootCause {
                    code: code.to_string(),
                    target: target.to_string(),
                }
            })
            .collect(),
        summary: row.summary.clone(),
        started_at: humantime::format_rfc3339_millis(started).to_string(),
    }
}

/// The event a newly stored report causes, if any. `newest` are the instance's two newest
/// reports (newest first). A report that arrived late (not the newest) changes nothing the
/// fleet shows, so it sends nothing; neither does a first report that is healthy.
pub fn transition(newest: &[ReportRow], report_id: &str) -> Option<Event> {
    let current = newest.first()?;
    if current.report_id != report_id {
        return None;
    }
    let previous = newest.get(1);
    let changed = match previous {
        Some(p) => p.status != current.status || p.root_causes != current.root_causes,
        None => current.status != "healthy",
    };
    if !changed {
        return None;
    }
    Some(Event {
        event: "verdict_changed",
        instance: current.instance_key.clone(),
        instance_id: current.instance_id.clone(),
        hostname: current.hostname.clone(),
        account: current.account.clone(),
        region: current.region.clone(),
        vpc_id: current.vpc_id.clone(),
        subnet_id: current.subnet_id.clone(),
        az: current.az.clone(),
        previous: previous.map(verdict),
        current: verdict(current),
        report_path: format!(
            "/reports/{}",
            percent_encoding::utf8_percent_encode(&current.report_id, PATH_SEGMENT)
        ),
    })
}

/// Characters kept as they are in the report's path segment (as the pages link it).
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.');

pub type Outcomes = Family<Vec<(String, String)>, Counter>;

fn count(outcomes: &Outcomes, result: &str) {
    outcomes
        .get_or_create(&vec![("result".to_string(), result.to_string())])
        .inc();
}

/// The sending side, held by the server.
pub struct Webhook {
    queue: mpsc::Sender<Event>,
    outcomes: Outcomes,
}

impl Webhook {
    /// Starts the worker. `outcomes` counts delivered, failed and dropped events.
    pub fn start(settings: WebhookSettings, outcomes: Outcomes) -> Result<Webhook, ConfigError> {
        let client = reqwest::Client::builder()
            // A redirect could carry the token elsewhere: a 3xx is a failed attempt.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.timeout)
            .timeout(settings.timeout)
            .user_agent(concat!("vpce-collector/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::Usage(format!("webhook HTTP client: {e}")))?;
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(deliver_all(settings, client, rx, outcomes.clone()));
        Ok(Webhook { queue, outcomes })
    }

    /// After a report is stored: find out in the background whether it changed the
    /// instance's verdict, and queue the event. Returns at once.
    pub fn report_stored(&self, store: &Store, instance_key: String, report_id: String) {
        let store = store.clone();
        let queue = self.queue.clone();
        let outcomes = self.outcomes.clone();
        tokio::spawn(async move {
            let key = instance_key.clone();
            let newest = match store.timeline(key, false, 2).await {
                Ok(rows) => rows,
                Err(e) => {
                    warn!(error = %e, instance = %instance_key, "webhook: cannot read the instance's reports");
                    return;
                }
            };
            let Some(event) = transition(&newest, &report_id) else {
                return;
            };
            if let Err(e) = queue.try_send(event) {
                count(&outcomes, "dropped");
                warn!(instance = %instance_key, reason = %e, "webhook event dropped (queue full: the receiver is slow or down)");
            }
        });
    }

    /// At stop: give the queue up to `limit` to empty.
    pub async fn drain(&self, limit: Duration) {
        let start = std::time::Instant::now();
        while self.queue.capacity() < self.queue.max_capacity() && start.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn deliver_all(
    settings: WebhookSettings,
    client: reqwest::Client,
    mut rx: mpsc::Receiver<Event>,
    outcomes: Outcomes,
) {
    let target = settings.redacted_url();
    while let Some(event) = rx.recv().await {
        let body = match serde_json::to_vec(&event) {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "webhook: cannot encode the event");
                count(&outcomes, "failed");
                continue;
            }
        };
        let mut delay = Duration::from_secs(1);
        for attempt in 1..=ATTEMPTS {
            match attempt_once(&settings, &client, &body).await {
                Ok(()) => {
                    debug!(%target, instance = %event.instance, "webhook delivered");
                    count(&outcomes, "delivered");
                    break;
                }
                Err(Failure::Permanent(why)) => {
                    warn!(%target, instance = %event.instance, %why, "webhook refused the event; not retried");
                    count(&outcomes, "failed");
                    break;
                }
                Err(Failure::Retry(why)) if attempt < ATTEMPTS => {
                    warn!(%target, instance = %event.instance, %why, attempt, retry_in_s = delay.as_secs(), "webhook attempt failed");
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                }
                Err(Failure::Retry(why)) => {
                    warn!(%target, instance = %event.instance, %why, attempts = ATTEMPTS, "webhook event given up");
                    count(&outcomes, "failed");
                }
            }
        }
    }
}

enum Failure {
    Retry(String),
    Permanent(String),
}

async fn attempt_once(
    settings: &WebhookSettings,
    client: &reqwest::Client,
    body: &[u8],
) -> Result<(), Failure> {
    let mut request = client
        .post(settings.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_vec());
    if let Some(path) = &settings.token_file {
        // Read at each attempt, so a rotated token is used without a restart.
        let token = read_token(path).map_err(|e| Failure::Retry(e.to_string()))?;
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| Failure::Retry("the token is not a valid header value".into()))?;
        value.set_sensitive(true);
        request = request.header(reqwest::header::AUTHORIZATION, value);
    }
    // The attempt has its own deadline on top of the client's, as every network call here.
    let answer = tokio::time::timeout(
        settings.timeout.saturating_add(Duration::from_secs(1)),
        request.send(),
    )
    .await
    .map_err(|_| Failure::Retry(format!("no answer within {} s", settings.timeout.as_secs())))?
    // Without the URL: reqwest's errors name it, and it may hold a secret.
    .map_err(|e| Failure::Retry(e.without_url().to_string()))?;
    let status = answer.status();
    if status.is_success() {
        return Ok(());
    }
    let why = format!("HTTP {status}");
    if status.is_server_error()
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
    {
        Err(Failure::Retry(why))
    } else {
        Err(Failure::Permanent(why))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, status: &str, causes: &[&str]) -> ReportRow {
        ReportRow {
            report_id: id.into(),
            received_at_ms: 0,
            started_at_ms: 1_764_000_000_000,
            instance_key: "i-1".into(),
            instance_id: Some("i-1".into()),
            hostname: None,
            account: Some("111122223333".into()),
            region: None,
            vpc_id: None,
            subnet_id: Some("subnet-1".into()),
            az: None,
            status: status.into(),
            exit_code: i64::from(status != "healthy"),
            summary: "s".into(),
            root_causes: causes.iter().map(|c| c.to_string()).collect(),
            path_kinds: vec![],
            token_label: "t".into(),
            tool_version: "0.1.0".into(),
            changed: true,
            body_kept: true,
        }
    }

    #[test]
    fn only_changes_of_the_newest_report_are_events() {
        let nacl = &["NACL_OUTBOUND_BLOCKS s3:b"];
        let sg = &["SG_EGRESS_BLOCKS s3:b"];
        // healthy -> problems, and back
        let e = transition(&[row("b", "problems", nacl), row("a", "healthy", &[])], "b")
            .expect("broke");
        assert_eq!(
            e.previous.as_ref().map(|p| p.status.as_str()),
            Some("healthy")
        );
        assert_eq!(e.current.root_causes[0].code, "NACL_OUTBOUND_BLOCKS");
        assert_eq!(e.current.root_causes[0].target, "s3:b");
        assert_eq!(e.report_path, "/reports/b");
        assert!(transition(&[row("c", "healthy", &[]), row("b", "problems", nacl)], "c").is_some());
        // other root causes, same verdict
        assert!(transition(&[row("c", "problems", sg), row("b", "problems", nacl)], "c").is_some());
        // the same verdict again
        assert!(
            transition(
                &[row("c", "problems", nacl), row("b", "problems", nacl)],
                "c"
            )
            .is_none()
        );
        // a late report (not the newest)
        assert!(transition(&[row("c", "healthy", &[]), row("b", "problems", nacl)], "b").is_none());
        // a new instance: only when it starts with problems
        assert!(transition(&[row("a", "healthy", &[])], "a").is_none());
        let first = transition(&[row("a", "problems", nacl)], "a").expect("new and broken");
        assert!(first.previous.is_none());
        assert!(transition(&[], "a").is_none());
    }

    #[test]
    fn settings_refuse_bad_urls_without_repeating_them() {
        let e =
            WebhookSettings::new("ftp://hooks.example/secret-path", None, 5).expect_err("scheme");
        assert!(e.to_string().contains("scheme ftp"), "{e}");
        assert!(!e.to_string().contains("secret-path"), "{e}");
        let e = WebhookSettings::new("not a url secret", None, 5).expect_err("url");
        assert!(!e.to_string().contains("secret"), "{e}");
        assert!(WebhookSettings::new("https://h.example/x", None, 0).is_err());
        let s = WebhookSettings::new("https://hooks.example:8443/services/T0/B0/secret", None, 5)
            .expect("valid");
        assert_eq!(s.redacted_url(), "https://hooks.example:8443/…");
        assert!(!s.describe().contains("secret"));
    }
}
