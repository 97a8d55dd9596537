//! An HTTP CONNECT proxy that only ever connects to loopback addresses.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::http::{Head, base64, read_head, write_all, write_response};
use super::runtime::{Background, READ_TIMEOUT, accept, bind_tcp, log, tokio_listener};

pub enum ProxyMode {
    /// CONNECT → `200 Connection established`, then bytes spliced both ways to the target
    /// (an IP literal, or a name from the `hosts` map; loopback only, else 502).
    Tunnel,
    /// CONNECT → `403 Forbidden`.
    Forbid,
}

pub struct ProxyServer {
    pub addr: SocketAddr,
    connects: Arc<Mutex<Vec<String>>>,
    plain: Arc<Mutex<Vec<String>>>,
    _bg: Background,
}

impl ProxyServer {
    /// Every CONNECT target ("host:port") received, in order (also those refused).
    pub fn connects(&self) -> Vec<String> {
        self.connects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every plain (non-CONNECT) request line received, e.g. "GET http://x/ HTTP/1.1".
    pub fn plain_requests(&self) -> Vec<String> {
        self.plain.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

struct State {
    addr: SocketAddr,
    mode: ProxyMode,
    hosts: HashMap<String, IpAddr>,
    /// Expected `Proxy-Authorization` credentials (base64 of "user:pass").
    auth: Option<String>,
    connects: Arc<Mutex<Vec<String>>>,
    plain: Arc<Mutex<Vec<String>>>,
}

/// An HTTP CONNECT proxy on `bind`. `hosts` maps CONNECT host names to loopback IPs; names
/// are never resolved any other way and only loopback targets are dialled (else 502).
/// With `required_auth = Some((user, pass))`, requests without matching Basic
/// `Proxy-Authorization` get 407. Plain (non-CONNECT) requests are recorded and answered
/// 502 (403 in Forbid mode): this fake does not forward plain HTTP.
pub fn start_connect_proxy(
    bind: SocketAddr,
    mode: ProxyMode,
    hosts: Vec<(String, IpAddr)>,
    required_auth: Option<(String, String)>,
) -> ProxyServer {
    let std_listener = bind_tcp("proxy", bind);
    let addr = std_listener.local_addr().expect("local addr");
    let connects = Arc::new(Mutex::new(Vec::new()));
    let plain = Arc::new(Mutex::new(Vec::new()));
    let state = Arc::new(State {
        addr,
        mode,
        hosts: hosts
            .into_iter()
            .map(|(h, ip)| (h.trim_end_matches('.').to_ascii_lowercase(), ip))
            .collect(),
        auth: required_auth.map(|(u, p)| base64(format!("{u}:{p}").as_bytes())),
        connects: connects.clone(),
        plain: plain.clone(),
    });
    let bg = Background::spawn(format!("fake-proxy-{addr}"), move || async move {
        let Some(listener) = tokio_listener("proxy", addr, std_listener) else {
            return;
        };
        loop {
            match accept(&listener).await {
                Ok((stream, peer)) => {
                    tokio::spawn(conn(state.clone(), stream, peer));
                }
                Err(e) => {
                    log("proxy", addr, format!("accept error: {e}"));
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    });
    ProxyServer {
        addr,
        connects,
        plain,
        _bg: bg,
    }
}

async fn reply(state: &State, stream: &mut TcpStream, status: u16, why: &str) {
    let mut headers = vec![("Server", "fake-proxy".to_string())];
    if status == 407 {
        headers.push((
            "Proxy-Authenticate",
            "Basic realm=\"fake-proxy\"".to_string(),
        ));
    }
    let body = format!("{why}\n");
    if let Err(e) = write_response(stream, status, &headers, body.as_bytes(), true, true).await {
        log("proxy", state.addr, format!("writing {status}: {e}"));
    }
    let _ = timeout(READ_TIMEOUT, stream.shutdown()).await;
}

fn authorized(state: &State, head: &Head) -> bool {
    let Some(expected) = &state.auth else {
        return true;
    };
    let Some(value) = head.header("proxy-authorization") else {
        return false;
    };
    let mut parts = value.split_whitespace();
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(scheme), Some(creds), None)
            if scheme.eq_ignore_ascii_case("basic") && creds == expected
    )
}

/// "host:port" / "[v6]:port" → (host, port).
fn split_target(target: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = target.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':')?)
    } else {
        target.rsplit_once(':')?
    };
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), port.parse().ok()?))
}

async fn conn(state: Arc<State>, mut stream: TcpStream, peer: SocketAddr) {
    let mut buf = Vec::new();
    let head = match read_head(&mut stream, &mut buf).await {
        Ok(Some(head)) => head,
        Ok(None) => return,
        Err(e) => {
            log("proxy", state.addr, format!("request from {peer}: {e}"));
            reply(&state, &mut stream, 400, "bad request").await;
            return;
        }
    };
    let is_connect = head.method.eq_ignore_ascii_case("CONNECT");
    if is_connect {
        state
            .connects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(head.target.clone());
    } else {
        state
            .plain
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(head.request_line());
    }
    if !authorized(&state, &head) {
        reply(&state, &mut stream, 407, "proxy authentication required").await;
        return;
    }
    if matches!(state.mode, ProxyMode::Forbid) {
        reply(&state, &mut stream, 403, "forbidden by fake proxy").await;
        return;
    }
    if !is_connect {
        reply(
            &state,
            &mut stream,
            502,
            "fake proxy does not forward plain HTTP",
        )
        .await;
        return;
    }

    let Some((host, port)) = split_target(&head.target) else {
        reply(&state, &mut stream, 400, "CONNECT target must be host:port").await;
        return;
    };
    let ip = match host.parse::<IpAddr>() {
        Ok(ip) => Some(ip),
        Err(_) => state
            .hosts
            .get(&host.trim_end_matches('.').to_ascii_lowercase())
            .copied(),
    };
    let Some(ip) = ip else {
        log("proxy", state.addr, format!("no mapping for {host}: 502"));
        reply(&state, &mut stream, 502, "unknown host").await;
        return;
    };
    if !ip.is_loopback() {
        log(
            "proxy",
            state.addr,
            format!("refusing non-loopback target {ip}:{port}"),
        );
        reply(&state, &mut stream, 502, "fake proxy only dials loopback").await;
        return;
    }
    let target = SocketAddr::new(ip, port);
    let mut upstream = match timeout(READ_TIMEOUT, TcpStream::connect(target)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            log("proxy", state.addr, format!("connect {target}: {e}"));
            reply(&state, &mut stream, 502, "upstream connect failed").await;
            return;
        }
        Err(_) => {
            log("proxy", state.addr, format!("connect {target} timed out"));
            reply(&state, &mut stream, 502, "upstream connect timed out").await;
            return;
        }
    };
    if write_all(&mut stream, b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    if !buf.is_empty() && write_all(&mut upstream, &buf).await.is_err() {
        return;
    }
    splice(stream, upstream).await;
}

/// Copies bytes both ways until both sides have closed, an error occurs, or the tunnel has been
/// idle in both directions for READ_TIMEOUT.
async fn splice(mut client: TcpStream, mut upstream: TcpStream) {
    let (mut cr, mut cw) = client.split();
    let (mut ur, mut uw) = upstream.split();
    let mut cbuf = vec![0u8; 16 * 1024];
    let mut ubuf = vec![0u8; 16 * 1024];
    let (mut client_open, mut upstream_open) = (true, true);
    while client_open || upstream_open {
        tokio::select! {
            r = cr.read(&mut cbuf), if client_open => match r {
                Ok(0) | Err(_) => {
                    client_open = false;
                    let _ = timeout(READ_TIMEOUT, uw.shutdown()).await;
                }
                Ok(n) => {
                    if write_all(&mut uw, &cbuf[..n]).await.is_err() {
                        return;
                    }
                }
            },
            r = ur.read(&mut ubuf), if upstream_open => match r {
                Ok(0) | Err(_) => {
                    upstream_open = false;
                    let _ = timeout(READ_TIMEOUT, cw.shutdown()).await;
                }
                Ok(n) => {
                    if write_all(&mut cw, &ubuf[..n]).await.is_err() {
                        return;
                    }
                }
            },
            _ = tokio::time::sleep(READ_TIMEOUT) => return,
        }
    }
}
