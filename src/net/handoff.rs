//! The TLS checks' connections handed to the signed calls. Every service name gets a TLS
//! handshake of its own (the TLS check); the calls to that name then opened another connection
//! and made a second full handshake to the same address. With 50 targets those doubled
//! handshakes were the largest share of a run's CPU (benches/findings.md). Here a verified
//! check's connection is parked, and a call to the same name and address sends its request
//! over it (HTTP/1.1), then leaves it for the name's next call.
//!
//! Written by hand because the SDK's HTTP client takes a trust store but neither a TLS
//! configuration nor an open connection, and its connector wrapper is crate-private; every
//! request this module cannot send itself goes to the SDK's own connector unchanged, so
//! failures (connect, TLS, proxy) are the SDK's own and read as before.
//!
//! Only connections the SDK's client could have made itself are parked: the certificate
//! verified against the same trust roots, a cipher suite the SDK's client accepts, no proxy in
//! the SDK's way for the name (callers decide), the address the calls are pinned to.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::http::Response as SmithyResponse;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Connections parked at most at once: a run with many names (up to 8 addresses each) must
/// not hold hundreds of idle sockets while its calls wait.
const MAX_PARKED: usize = 128;

type Stream = TlsStream<TcpStream>;

/// One run's handed-over connections: the checks' (not yet used) and the calls' (idle
/// between two calls of a name). Dropped with the run, which closes what is left.
#[derive(Default)]
pub struct Handoff {
    inner: Mutex<Parked>,
}

#[derive(Default)]
struct Parked {
    /// name (lowercase) and port -> the checks' verified connections, one per address.
    fresh: HashMap<(String, u16), Vec<(IpAddr, Stream)>>,
    /// name (lowercase), address and port -> HTTP/1.1 senders between two calls.
    idle: HashMap<(String, IpAddr, u16), Vec<SendRequest<SdkBody>>>,
    count: usize,
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handoff")
    }
}

impl Handoff {
    fn lock(&self) -> std::sync::MutexGuard<'_, Parked> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Keeps a TLS check's verified connection to `name` at `ip`:`port` for the calls.
    /// Returns false (and drops it) when the run already parks as many as it may.
    pub fn park(&self, name: &str, ip: IpAddr, port: u16, stream: Stream) -> bool {
        let mut parked = self.lock();
        if parked.count >= MAX_PARKED {
            return false;
        }
        parked.count += 1;
        parked
            .fresh
            .entry((name.to_ascii_lowercase(), port))
            .or_default()
            .push((ip, stream));
        true
    }

    /// An idle sender for the name at `ip`, else a parked connection made ready for HTTP/1.1.
    /// A name's first call takes its connection to `ip` and closes the others: the calls are
    /// pinned to one address.
    async fn take(&self, name: &str, ip: IpAddr, port: u16) -> Option<SendRequest<SdkBody>> {
        let fresh = {
            let mut parked = self.lock();
            let key = (name.to_string(), ip, port);
            if let Some(senders) = parked.idle.get_mut(&key) {
                // A sender still busy (its response body being read by a call beside this one)
                // or closed by the server is no use to this call.
                senders.retain(|s| !s.is_closed());
                if let Some(i) = senders.iter().position(|s| s.is_ready()) {
                    return Some(senders.swap_remove(i));
                }
            }
            let streams = parked.fresh.remove(&(name.to_string(), port))?;
            parked.count -= streams.len();
            streams
                .into_iter()
                .find_map(|(at, stream)| (at == ip).then_some(stream))?
        };
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(fresh))
            .await
            .ok()?;
        // The connection's driver; it ends when the server closes or every sender is dropped.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Some(sender)
    }

    fn give_back(&self, name: &str, ip: IpAddr, port: u16, sender: SendRequest<SdkBody>) {
        if sender.is_closed() {
            return;
        }
        self.lock()
            .idle
            .entry((name.to_string(), ip, port))
            .or_default()
            .push(sender);
    }
}

/// The SDK's connector, with each request first offered to the run's handed-over connections.
#[derive(Debug)]
pub struct HandoffConnector {
    pub handoff: Arc<Handoff>,
    pub pinned: super::aws::PinnedResolver,
    pub sdk: SharedHttpConnector,
    pub read_timeout: Option<Duration>,
}

/// Where a request goes when it may use a handed-over connection.
struct Destination {
    name: String,
    ip: IpAddr,
    port: u16,
}

impl HandoffConnector {
    fn destination(&self, request: &HttpRequest) -> Option<Destination> {
        let uri: http::Uri = request.uri().parse().ok()?;
        if uri.scheme_str() != Some("https") {
            return None;
        }
        let name = uri.host()?.to_ascii_lowercase();
        let ip = self.pinned.pinned(&name)?;
        Some(Destination {
            name,
            ip,
            port: uri.port_u16().unwrap_or(443),
        })
    }
}

impl HttpConnector for HandoffConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let Some(to) = self.destination(&request) else {
            return self.sdk.call(request);
        };
        let handoff = self.handoff.clone();
        let sdk = self.sdk.clone();
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let Some(mut sender) = handoff.take(&to.name, to.ip, to.port).await else {
                return sdk.call(request).await;
            };
            // What the SDK's connector does with a request it cannot convert.
            let mut http_request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::user(e.into()))?;
            let absolute = http_request.uri().clone();
            let added_host = to_origin_form(&mut http_request);
            let sending = sender.try_send_request(http_request);
            let answer = match read_timeout {
                Some(limit) => match tokio::time::timeout(limit, sending).await {
                    Ok(answer) => answer,
                    // Dropping the send closes the connection: it is not given back.
                    Err(_) => return Err(ConnectorError::timeout(Box::new(ReadTimeout(limit)))),
                },
                None => sending.await,
            };
            match answer {
                Ok(response) => {
                    handoff.give_back(&to.name, to.ip, to.port, sender);
                    SmithyResponse::try_from(response.map(SdkBody::from_body_1_x))
                        .map_err(|e| ConnectorError::other(e.into(), None))
                }
                Err(mut failed) => match failed.take_message() {
                    // Never written (the server closed the connection meanwhile): the SDK's
                    // connector sends it, as it came, on a connection of its own.
                    Some(mut unsent) => {
                        *unsent.uri_mut() = absolute;
                        if added_host {
                            unsent.headers_mut().remove(http::header::HOST);
                        }
                        let request = HttpRequest::try_from(unsent)
                            .map_err(|e| ConnectorError::user(e.into()))?;
                        sdk.call(request).await
                    }
                    None => Err(connector_error(failed.into_error())),
                },
            }
        })
    }
}

/// The request as the SDK's client writes it on an HTTP/1.1 connection: the path in the
/// request line, the authority in Host (with the port only when it is not 443). Returns
/// whether Host was added.
fn to_origin_form(request: &mut http::Request<SdkBody>) -> bool {
    let uri = request.uri().clone();
    let mut added_host = false;
    if let Some(host) = uri.host()
        && !request.headers().contains_key(http::header::HOST)
    {
        let authority = match uri.port_u16() {
            Some(port) if port != 443 => format!("{host}:{port}"),
            _ => host.to_string(),
        };
        if let Ok(value) = http::HeaderValue::from_str(&authority) {
            request.headers_mut().insert(http::header::HOST, value);
            added_host = true;
        }
    }
    let path = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    *request.uri_mut() = http::Uri::from(path);
    added_host
}

/// What the SDK's connector makes of the same hyper errors, so the reports read them alike.
fn connector_error(error: hyper::Error) -> ConnectorError {
    if error.is_timeout() {
        ConnectorError::timeout(error.into())
    } else if error.is_user() {
        ConnectorError::user(error.into())
    } else if error.is_closed() || error.is_canceled() || io_error_in(&error) {
        ConnectorError::io(error.into())
    } else if error.is_incomplete_message() {
        ConnectorError::other(error.into(), Some(ErrorKind::TransientError))
    } else {
        ConnectorError::other(error.into(), None)
    }
}

fn io_error_in(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<std::io::Error>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// The SDK connector's read timeout, worded as it words it ("HTTP read timeout occurred after
/// 1s"), which `aws_error` turns into "accepted the connection but did not answer".
#[derive(Debug)]
struct ReadTimeout(Duration);

impl std::fmt::Display for ReadTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP read timeout occurred after {:?}", self.0)
    }
}

impl std::error::Error for ReadTimeout {}
