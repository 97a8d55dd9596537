//! A report collector over HTTPS (hyper behind a test-CA certificate) whose behaviour a test
//! switches at any time: accept, fail with 500, or hang past the client's timeout. It records
//! every accepted POST (decompressed body, headers), so tests can check delivery after dedup.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use tokio_rustls::TlsAcceptor;

use super::ca::Leaf;
use super::runtime::{Background, bind_tcp, tokio_listener};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CollectorMode {
    Accept,
    /// 500 without reading the body.
    Fail,
    /// Reads the request, stores it, then never answers (the client times out; a retry is a
    /// duplicate the collector must drop by report_id).
    StoreThenHang,
    /// Never answers and stores nothing.
    Hang,
    /// Answers the next request with this status and a body whose first line is the reason,
    /// storing nothing, then goes back to Accept (a permanent refusal of one report).
    RefuseOnce(u16, &'static str),
}

#[derive(Clone, Debug)]
pub struct Received {
    pub report_id: String,
    pub json: serde_json::Value,
    pub authorization: Option<String>,
    pub content_encoding: Option<String>,
    pub id_header: Option<String>,
}

pub struct Collector {
    pub addr: SocketAddr,
    mode: Arc<Mutex<CollectorMode>>,
    received: Arc<Mutex<Vec<Received>>>,
    attempts: Arc<Mutex<usize>>,
    refused: Arc<Mutex<Vec<String>>>,
    _bg: Background,
}

impl Collector {
    pub fn set_mode(&self, mode: CollectorMode) {
        *self.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
    }

    /// Every stored POST, duplicates included, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Distinct report_ids stored, sorted.
    pub fn report_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.received().into_iter().map(|r| r.report_id).collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// The report ids (from the X-Vpce-Probe-Report-Id header) refused by `RefuseOnce`.
    pub fn refused(&self) -> Vec<String> {
        self.refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every request that reached the collector, answered or not.
    pub fn attempts(&self) -> usize {
        *self.attempts.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn url(&self, name: &str) -> String {
        format!("https://{name}:{}/reports", self.addr.port())
    }
}

pub fn start_collector(bind: SocketAddr, leaf: &Leaf) -> Collector {
    let listener = bind_tcp("collector", bind);
    let addr = listener.local_addr().expect("collector addr");
    let mode = Arc::new(Mutex::new(CollectorMode::Accept));
    let received = Arc::new(Mutex::new(Vec::new()));
    let attempts = Arc::new(Mutex::new(0usize));
    let refused = Arc::new(Mutex::new(Vec::new()));
    let acceptor = TlsAcceptor::from(leaf.server_config());
    let (m, r, a, f) = (
        mode.clone(),
        received.clone(),
        attempts.clone(),
        refused.clone(),
    );
    let bg = Background::spawn(format!("collector-{addr}"), move || async move {
        let Some(listener) = tokio_listener("collector", addr, listener) else {
            return;
        };
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let (m, r, a, f) = (m.clone(), r.clone(), a.clone(), f.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |req: Request<hyper::body::Incoming>| {
                        let (m, r, a, f) = (m.clone(), r.clone(), a.clone(), f.clone());
                        async move { Ok::<_, std::convert::Infallible>(handle(req, m, r, a, f).await) }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Collector {
        addr,
        mode,
        received,
        attempts,
        refused,
        _bg: bg,
    }
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    mode: Arc<Mutex<CollectorMode>>,
    received: Arc<Mutex<Vec<Received>>>,
    attempts: Arc<Mutex<usize>>,
    refused: Arc<Mutex<Vec<String>>>,
) -> Response<Full<Bytes>> {
    *attempts.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    let mode = {
        let mut guard = mode.lock().unwrap_or_else(|e| e.into_inner());
        let now = *guard;
        if let CollectorMode::RefuseOnce(..) = now {
            *guard = CollectorMode::Accept;
        }
        now
    };
    if let CollectorMode::RefuseOnce(status, reason) = mode {
        let id = req
            .headers()
            .get("x-vpce-probe-report-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        refused.lock().unwrap_or_else(|e| e.into_inner()).push(id);
        let mut r = Response::new(Full::new(Bytes::from(format!("{reason}\nmore detail\n"))));
        *r.status_mut() = StatusCode::from_u16(status).expect("status");
        return r;
    }
    let reply = |status: StatusCode| {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = status;
        r
    };
    match mode {
        CollectorMode::Fail => return reply(StatusCode::INTERNAL_SERVER_ERROR),
        CollectorMode::Hang => {
            tokio::time::sleep(Duration::from_secs(120)).await;
            return reply(StatusCode::GATEWAY_TIMEOUT);
        }
        _ => {}
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let authorization = header("authorization");
    let content_encoding = header("content-encoding");
    let id_header = header("x-vpce-probe-report-id");
    let Ok(body) = req.into_body().collect().await else {
        return reply(StatusCode::BAD_REQUEST);
    };
    let raw = body.to_bytes();
    let mut json_bytes = Vec::new();
    if content_encoding.as_deref() == Some("gzip") {
        if flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut json_bytes)
            .is_err()
        {
            return reply(StatusCode::BAD_REQUEST);
        }
    } else {
        json_bytes = raw.to_vec();
    }
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&json_bytes) else {
        return reply(StatusCode::BAD_REQUEST);
    };
    let Some(report_id) = json["report_id"].as_str().map(str::to_string) else {
        return reply(StatusCode::BAD_REQUEST);
    };
    received
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Received {
            report_id,
            json,
            authorization,
            content_encoding,
            id_header,
        });
    if mode == CollectorMode::StoreThenHang {
        tokio::time::sleep(Duration::from_secs(120)).await;
    }
    reply(StatusCode::OK)
}
