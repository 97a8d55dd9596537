//! The HTTP side: one hyper connection task per client, a small router, read-token checks.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use crate::config::Settings;
use crate::error::StoreError;
use crate::ingest::{self, Refused};
use crate::metrics::Metrics;
use crate::pages::{self, Ctx};
use crate::store::{FleetFilter, Store, Stored};
use crate::webhook::Webhook;

pub struct App {
    pub settings: Settings,
    pub store: Store,
    pub metrics: Metrics,
    pub webhook: Option<Webhook>,
}

/// At stop, how long requests in progress get to finish (a report being received gets its
/// answer; idle connections close at once).
pub const DRAIN: std::time::Duration = std::time::Duration::from_secs(20);

pub type Answer = Response<Full<Bytes>>;

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Answer {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn text(status: StatusCode, line: impl std::fmt::Display) -> Answer {
    reply(status, "text/plain; charset=utf-8", format!("{line}\n"))
}

fn json(value: &impl serde::Serialize) -> Answer {
    match serde_json::to_vec_pretty(value) {
        Ok(body) => reply(StatusCode::OK, "application/json", body),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("encode: {e}")),
    }
}

/// Accepts connections until `stop` resolves, then lets the requests in progress finish
/// (at most DRAIN) and returns.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    stop: impl std::future::Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and friends: wait a little instead of spinning.
                    warn!(error = %e, "accept");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let timeout = app.settings.read_timeout;
            match app.settings.tls.clone() {
                Some(tls) => {
                    if let Some(stream) = crate::tls::accept(&tls, stream, timeout).await {
                        connection(app, stream, peer, watcher).await;
                    }
                }
                None => connection(app, stream, peer, watcher).await,
            }
        });
    }
    // No new connections; the open ones finish their request and close.
    drop(listener);
    info!("stopping: no new connections");
    let open = graceful.count();
    if open > 0 {
        info!(
            connections = open,
            "stopping: letting requests in progress finish"
        );
    }
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(
            "stopping: requests still in progress after {} s are cut off (a report not acknowledged is sent again by its agent)",
            DRAIN.as_secs()
        );
    }
}

async fn connection<IO>(
    app: Arc<App>,
    stream: IO,
    peer: std::net::SocketAddr,
    watcher: hyper_util::server::graceful::Watcher,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let timeout = app.settings.read_timeout;
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(route(app, req).await) }
    });
    // A client that does not finish its headers in time is cut off here; the body has its
    // own deadline in ingest.
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(timeout)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    if let Err(e) = watcher.watch(conn).await {
        debug!(%peer, error = %e, "connection");
    }
}

async fn route(app: Arc<App>, req: Request<Incoming>) -> Answer {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if method == Method::POST && (path == "/v1/reports" || path == "/") {
        return ingest(&app, req).await;
    }
    if method != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET, or POST /v1/reports");
    }
    if path == "/healthz" {
        return match app.store.ping().await {
            Ok(()) => text(StatusCode::OK, "ok"),
            Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, e),
        };
    }
    let query: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let query_token = query
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.clone());
    if let Some(read) = &app.settings.read_token {
        let presented = ingest::bearer(req.headers())
            .map(<[u8]>::to_vec)
            .or_else(|| query_token.clone().map(String::into_bytes));
        if presented.and_then(|t| read.check(&t)).is_none() {
            let mut r = text(
                StatusCode::UNAUTHORIZED,
                "a read token is needed (Authorization: Bearer, or ?token=)",
            );
            r.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
            return r;
        }
    }
    let ctx = Ctx { token: query_token };
    let result = read_route(&app, &req, &path, &query, &ctx).await;
    match result {
        Ok(answer) => answer,
        Err(e) => {
            warn!(error = %e, %path, "read");
            text(StatusCode::SERVICE_UNAVAILABLE, e)
        }
    }
}

fn param(query: &[(String, String)], name: &str) -> Option<String> {
    query
        .iter()
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.clone())
}

fn segment(path: &str, prefix: &str) -> Option<String> {
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() || rest.contains('/') {
        return None;
    }
    Some(
        percent_encoding::percent_decode_str(rest)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

async fn read_route(
    app: &App,
    req: &Request<Incoming>,
    path: &str,
    query: &[(String, String)],
    ctx: &Ctx,
) -> Result<Answer, StoreError> {
    let now = now_ms();
    if path == "/" || path == "/api/fleet" {
        return fleet_route(app, path == "/", query, ctx, now).await;
    }
    if path == "/metrics" {
        return metrics_route(app, req, now).await;
    }
    let api = path.starts_with("/api/");
    let page = path.strip_prefix("/api").unwrap_or(path);
    if let Some(key) = segment(page, "/instances/") {
        return instance_route(app, key, api, ctx, now).await;
    }
    if let Some(code) = segment(page, "/findings/") {
        let holders = app.store.code_holders(code.clone(), now).await?;
        if api {
            return Ok(json(
                &serde_json::json!({"code": code, "instances": holders}),
            ));
        }
        return Ok(html(pages::finding(ctx, &code, &holders, now)));
    }
    if let Some(id) = segment(page, "/reports/") {
        return report_route(app, id, api, ctx, now).await;
    }
    Ok(text(StatusCode::NOT_FOUND, format!("no page {path}")))
}

/// `/` and `/api/fleet`.
async fn fleet_route(
    app: &App,
    page: bool,
    query: &[(String, String)],
    ctx: &Ctx,
    now: i64,
) -> Result<Answer, StoreError> {
    let filter = FleetFilter {
        account: param(query, "account"),
        region: param(query, "region"),
        vpc: param(query, "vpc"),
        subnet: param(query, "subnet"),
        verdict: param(query, "verdict"),
        code: param(query, "code"),
    };
    let (rows, counts) = app.store.fleet(filter.clone(), now).await?;
    if page {
        return Ok(html(pages::fleet(ctx, &filter, &rows, &counts, now)));
    }
    Ok(json(&serde_json::json!({
        "filter": filter, "counts": counts, "instances": rows,
    })))
}

async fn metrics_route(app: &App, req: &Request<Incoming>, now: i64) -> Result<Answer, StoreError> {
    let counts = app.store.counts(now).await?;
    let openmetrics = req
        .headers()
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    Ok(reply(
        StatusCode::OK,
        content_type,
        app.metrics.encode(&counts, openmetrics),
    ))
}

/// `/instances/ID` and `/api/instances/ID`.
async fn instance_route(
    app: &App,
    key: String,
    api: bool,
    ctx: &Ctx,
    now: i64,
) -> Result<Answer, StoreError> {
    let Some((instance, changes, recent)) = app.store.instance(key.clone(), now).await? else {
        return Ok(text(StatusCode::NOT_FOUND, format!("no instance {key}")));
    };
    if api {
        return Ok(json(&serde_json::json!({
            "instance": instance, "changes": changes, "reports": recent,
        })));
    }
    Ok(html(pages::instance(
        ctx, &instance, &changes, &recent, now,
    )))
}

/// `/reports/ID` (the page), `/reports/ID.json` and `/api/reports/ID` (the stored JSON).
async fn report_route(
    app: &App,
    id: String,
    api: bool,
    ctx: &Ctx,
    now: i64,
) -> Result<Answer, StoreError> {
    let (id, raw) = match id.strip_suffix(".json") {
        Some(stem) => (stem.to_string(), true),
        None => (id, api),
    };
    let Some((row, body, findings)) = app.store.report(id.clone()).await? else {
        return Ok(text(StatusCode::NOT_FOUND, format!("no report {id}")));
    };
    if !raw {
        return Ok(html(pages::report(
            ctx,
            &row,
            body.as_deref(),
            &findings,
            now,
        )));
    }
    let Some(body) = body else {
        return Ok(text(
            StatusCode::GONE,
            "only the summary of this report is kept (same verdict as the report before it)",
        ));
    };
    let mut r = reply(StatusCode::OK, "application/json", body);
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}.json\"",
        row.report_id.replace(['"', '\\'], "_")
    )) {
        r.headers_mut()
            .insert(hyper::header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

fn html(markup: maud::Markup) -> Answer {
    reply(
        StatusCode::OK,
        "text/html; charset=utf-8",
        markup.into_string(),
    )
}

async fn ingest(app: &App, req: Request<Incoming>) -> Answer {
    let started = Instant::now();
    let result = ingest_inner(app, req).await;
    app.metrics
        .ingest_seconds
        .observe(started.elapsed().as_secs_f64());
    match result {
        Ok((Stored::New, id, label, instance_key)) => {
            app.metrics.accepted.inc();
            debug!(report_id = %id, token = %label, "stored");
            if let Some(hook) = &app.webhook {
                hook.report_stored(&app.store, instance_key, id.clone());
            }
            text(StatusCode::CREATED, format!("stored {id}"))
        }
        Ok((Stored::Duplicate, id, _, _)) => {
            app.metrics.duplicates.inc();
            text(StatusCode::OK, format!("already stored {id}"))
        }
        Err(refused) => {
            app.metrics.refused(refused.reason());
            match &refused {
                Refused::Store(e) => warn!(error = %e, "report not stored"),
                Refused::Unauthorized => debug!("report refused: {refused}"),
                _ => info!("report refused: {refused}"),
            }
            let mut r = text(refused.status(), &refused);
            if matches!(refused, Refused::Unauthorized) {
                r.headers_mut().insert(
                    hyper::header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer"),
                );
            }
            r
        }
    }
}

async fn ingest_inner(
    app: &App,
    req: Request<Incoming>,
) -> Result<(Stored, String, String, String), Refused> {
    let label = ingest::authorize(req.headers(), &app.settings.tokens)?;
    let header_id = req
        .headers()
        .get("x-vpce-probe-report-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let json = ingest::read_body(req, app.settings.max_body, app.settings.read_timeout).await?;
    let report = ingest::parse(json, header_id.as_deref(), &label)?;
    let id = report.report_id.clone();
    let instance_key = report.instance_key.clone();
    let stored = app.store.insert(report, now_ms()).await?;
    Ok((stored, id, label, instance_key))
}
