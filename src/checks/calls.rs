//! What the signed-call checks share: turning an SDK result plus the captured response into a
//! `CallResult`, classified into a finding with the rules of classify.rs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use aws_config::SdkConfig;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::classify::{self, Classified, ErrorInfo};
use crate::net::aws::{CaptureInTask, CaptureResponse, Captured};
use crate::net::aws_error;
use crate::net::limits::Limits;
use crate::net::millis;
use crate::report::{CallOutcome, CallResult, Service};

/// The run's S3 and DynamoDB clients, one per service and endpoint URL, made on first use.
/// A client per bucket and per table call (200 for 50 of each) built the SDK's config layers
/// and runtime plugins 200 times: one per endpoint URL took a 50-target run's user CPU from
/// 74-77 to 62-66 ms (benches/findings.md). The clients of one run share the run's settings,
/// so one per endpoint URL makes the same calls.
pub struct SdkClients {
    sdk: SdkConfig,
    s3: Mutex<HashMap<Option<String>, aws_sdk_s3::Client>>,
    dynamodb: Mutex<HashMap<Option<String>, aws_sdk_dynamodb::Client>>,
}

impl SdkClients {
    pub fn new(sdk: SdkConfig) -> Self {
        SdkClients {
            sdk,
            s3: Mutex::default(),
            dynamodb: Mutex::default(),
        }
    }

    /// The S3 client for `endpoint_url` (None: the SDK's own endpoint rules).
    pub fn s3(&self, endpoint_url: Option<&str>) -> aws_sdk_s3::Client {
        cached(&self.s3, endpoint_url, || {
            let mut conf = aws_sdk_s3::config::Builder::from(&self.sdk).interceptor(CaptureInTask);
            if let Some(url) = endpoint_url {
                conf = conf.endpoint_url(url);
            }
            aws_sdk_s3::Client::from_conf(conf.build())
        })
    }

    /// The DynamoDB client for `endpoint_url` (None: the SDK's own endpoint rules).
    pub fn dynamodb(&self, endpoint_url: Option<&str>) -> aws_sdk_dynamodb::Client {
        cached(&self.dynamodb, endpoint_url, || {
            let mut conf =
                aws_sdk_dynamodb::config::Builder::from(&self.sdk).interceptor(CaptureInTask);
            if let Some(url) = endpoint_url {
                conf = conf.endpoint_url(url);
            }
            aws_sdk_dynamodb::Client::from_conf(conf.build())
        })
    }
}

/// A client is a handle (its clones share one client), so the cache hands out clones.
fn cached<C: Clone>(
    clients: &Mutex<HashMap<Option<String>, C>>,
    endpoint_url: Option<&str>,
    make: impl FnOnce() -> C,
) -> C {
    let mut clients = match clients.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    clients
        .entry(endpoint_url.map(str::to_string))
        .or_insert_with(make)
        .clone()
}

/// Where a call went: filled in by the caller, the rest comes from the answer.
#[derive(Clone, Debug)]
pub struct CallSite {
    pub service: Service,
    pub target: String,
    pub endpoint_host: Option<String>,
    pub peer: Option<String>,
    pub proxy: Option<String>,
    /// The run's bound on calls in flight (per peer or proxy, and overall).
    pub limits: Limits,
}

impl CallSite {
    pub fn skipped(&self, operation: &str, action: &str, why: String) -> CallResult {
        let mut r = self.blank(operation, action);
        r.outcome = CallOutcome::Skipped;
        r.error_message = Some(why);
        r
    }

    fn blank(&self, operation: &str, action: &str) -> CallResult {
        CallResult {
            service: self.service,
            target: self.target.clone(),
            operation: operation.into(),
            action: action.into(),
            endpoint_host: self.endpoint_host.clone(),
            peer: self.peer.clone(),
            proxy: self.proxy.clone(),
            status: None,
            outcome: CallOutcome::Error,
            error_code: None,
            error_message: None,
            headers: Default::default(),
            finding: None,
            denial: None,
            bucket_region: None,
            clock_offset_secs: None,
            detail: None,
            duration_ms: 0,
        }
    }

    /// Run one SDK call with a response capture and turn it into a `CallResult`.
    pub async fn run<T, E, F, Fut>(
        &self,
        operation: &str,
        action: &str,
        call: F,
        detail: impl FnOnce(&T) -> Option<String>,
    ) -> CallResult
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let capture = CaptureResponse::default();
        let started = Instant::now();
        // The SDK's send future is tens of KB; boxed here, it takes memory only while the call
        // is in flight (after its permit), not in every waiting target's future: unboxed, 50
        // targets held ~95 KB each from the start, and copying and first touching them was
        // ~10% of the run's CPU (benches/findings.md).
        let result = capture.around(Box::pin(call())).await;
        let elapsed = started.elapsed();
        let captured = capture.take();
        let mut r = self.blank(operation, action);
        r.duration_ms = millis(elapsed);
        if let Some(c) = &captured {
            r.status = Some(c.status);
            r.headers = c.headers.clone();
            r.bucket_region = c.headers.get("x-amz-bucket-region").cloned();
            r.clock_offset_secs = c
                .headers
                .get("date")
                .and_then(|d| classify::clock_offset_secs(d, SystemTime::now()));
        }
        let service = self.service.display_name();
        let failure = result
            .as_ref()
            .err()
            .map(|e| aws_error::sdk_error(service, e).text);
        // A directory bucket's call that failed in the SDK's own CreateSession (before it was
        // sent): the session's answer is the service's, classified like any other.
        if let Err(e) = &result
            && let Some(session) = create_session_failure(e)
        {
            self.session_failure(&mut r, session, failure);
            return r;
        }
        match result {
            Ok(output) => {
                r.outcome = CallOutcome::Ok;
                r.detail = detail(&output);
            }
            Err(SdkError::ServiceError(se)) => {
                r.outcome = CallOutcome::ServiceError;
                r.error_code = se.err().code().map(str::to_string);
                r.error_message = se.err().message().map(str::to_string);
                // A success status with an answer the SDK could not read has neither code
                // nor message: say that much (classify treats it as an answer, not an error).
                let status = se.raw().status().as_u16();
                if r.error_code.is_none() && r.error_message.is_none() && status < 300 {
                    r.error_message = failure;
                }
                if r.status.is_none() {
                    r.status = Some(se.raw().status().as_u16());
                }
                self.classify(&mut r, captured.as_ref());
            }
            Err(SdkError::TimeoutError(_)) => {
                r.outcome = CallOutcome::Timeout;
                r.error_message = failure;
            }
            Err(SdkError::DispatchFailure(d)) => {
                r.outcome = if d.is_timeout() {
                    CallOutcome::Timeout
                } else {
                    CallOutcome::ConnectionFailed
                };
                r.error_message = failure;
            }
            Err(SdkError::ResponseError(_)) => {
                r.outcome = CallOutcome::ServiceError;
                r.error_message = failure;
                self.classify(&mut r, captured.as_ref());
            }
            Err(_) => {
                r.outcome = CallOutcome::Error;
                r.error_message = failure;
            }
        }
        r
    }

    fn session_failure(
        &self,
        r: &mut CallResult,
        session: &CreateSessionFailure,
        failure: Option<String>,
    ) {
        match session {
            SdkError::ServiceError(se) => {
                let answer = Captured::of(se.raw());
                r.outcome = CallOutcome::ServiceError;
                r.status = Some(answer.status);
                r.error_code = se.err().code().map(str::to_string);
                r.error_message = Some(format!(
                    "CreateSession (the SDK's session for the directory bucket): {}",
                    se.err().message().unwrap_or("no message")
                ));
                r.bucket_region = answer.headers.get("x-amz-bucket-region").cloned();
                r.headers = answer.headers.clone();
                self.classify(r, Some(&answer));
            }
            SdkError::TimeoutError(_) => {
                r.outcome = CallOutcome::Timeout;
                r.error_message = failure;
            }
            SdkError::DispatchFailure(d) => {
                r.outcome = if d.is_timeout() {
                    CallOutcome::Timeout
                } else {
                    CallOutcome::ConnectionFailed
                };
                r.error_message = failure;
            }
            _ => {
                r.outcome = CallOutcome::Error;
                r.error_message = failure;
            }
        }
    }

    fn classify(&self, r: &mut CallResult, captured: Option<&Captured>) {
        let info = ErrorInfo {
            status: r.status.unwrap_or(0),
            code: r.error_code.clone(),
            message: r.error_message.clone(),
            headers: captured.map(|c| c.headers.clone()).unwrap_or_default(),
        };
        let classified = classify::classify(self.service, &info);
        r.finding = classify::finding_code(&classified);
        match classified {
            Classified::AccessDenied(d) => r.denial = Some(d),
            Classified::WrongRegion { bucket_region } if r.bucket_region.is_none() => {
                r.bucket_region = bucket_region;
            }
            _ => {}
        }
    }
}

type CreateSessionFailure =
    SdkError<aws_sdk_s3::operation::create_session::CreateSessionError, HttpResponse>;

/// The SDK's own CreateSession failure behind a directory bucket call's error (the S3 Express
/// identity resolver's error is in the call error's source chain), if that is what failed.
fn create_session_failure<E>(err: &SdkError<E, HttpResponse>) -> Option<&CreateSessionFailure>
where
    E: std::error::Error + 'static,
{
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(found) = e.downcast_ref::<CreateSessionFailure>() {
            return Some(found);
        }
        cur = e.source();
    }
    None
}

/// Bound a whole call (the SDK's own timeouts cover the exchange; this covers everything else),
/// once the run's call bounds let it start: the wait for a slot is no part of its timeout (the
/// call, its clock and the SDK's own timeouts start only when it does).
pub async fn bounded(
    timeout: Duration,
    r: impl std::future::Future<Output = CallResult>,
    site: &CallSite,
    op: &str,
    action: &str,
) -> CallResult {
    let call = async {
        match tokio::time::timeout(timeout, r).await {
            Ok(r) => r,
            Err(_) => {
                let mut r = site.blank(op, action);
                r.outcome = CallOutcome::Timeout;
                r.error_message = Some(format!("no result within {} ms", timeout.as_millis()));
                r
            }
        }
    };
    // Calls through a proxy load the proxy; the others the address they are pinned to.
    let peer = site
        .proxy
        .as_deref()
        .or(site.peer.as_deref())
        .or(site.endpoint_host.as_deref())
        .unwrap_or("");
    site.limits
        .call(peer, call, |r| r.outcome != CallOutcome::Timeout)
        .await
}
