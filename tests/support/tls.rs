//! A TLS server that looks like S3 to a client doing one HTTP/1.1 request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

use super::ca::Leaf;
use super::http::{ReadError, read_body, read_head, write_response};
use super::runtime::{Background, READ_TIMEOUT, accept, bind_tcp, log, tokio_listener};

pub struct TlsServer {
    pub addr: SocketAddr,
    handshakes: Arc<AtomicUsize>,
    server_names: Arc<Mutex<Vec<String>>>,
    requests: Arc<Mutex<Vec<String>>>,
    _bg: Background,
}

impl TlsServer {
    /// Completed TLS handshakes so far.
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }

    /// SNI names sent by clients whose handshake completed ("" when a client sent none).
    pub fn server_names(&self) -> Vec<String> {
        self.server_names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Request lines ("METHOD TARGET VERSION") received after handshakes.
    pub fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// TLS on `bind` (e.g. 127.0.80.1:443) presenting `leaf`. After the handshake, reads one
/// HTTP/1.1 request if the client sends one and answers `200 OK` like S3, then closes.
pub fn start_tls(bind: SocketAddr, leaf: &Leaf) -> TlsServer {
    let acceptor = TlsAcceptor::from(leaf.server_config());
    let std_listener = bind_tcp("tls", bind);
    let addr = std_listener.local_addr().expect("local addr");
    let handshakes = Arc::new(AtomicUsize::new(0));
    let server_names = Arc::new(Mutex::new(Vec::new()));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let (h, n, r) = (handshakes.clone(), server_names.clone(), requests.clone());
    let bg = Background::spawn(format!("fake-tls-{addr}"), move || async move {
        let Some(listener) = tokio_listener("tls", addr, std_listener) else {
            return;
        };
        loop {
            match accept(&listener).await {
                Ok((stream, peer)) => {
                    tokio::spawn(conn(
                        addr,
                        peer,
                        stream,
                        acceptor.clone(),
                        h.clone(),
                        n.clone(),
                        r.clone(),
                    ));
                }
                Err(e) => {
                    log("tls", addr, format!("accept error: {e}"));
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    });
    TlsServer {
        addr,
        handshakes,
        server_names,
        requests,
        _bg: bg,
    }
}

async fn conn(
    addr: SocketAddr,
    peer: SocketAddr,
    stream: TcpStream,
    acceptor: TlsAcceptor,
    handshakes: Arc<AtomicUsize>,
    server_names: Arc<Mutex<Vec<String>>>,
    requests: Arc<Mutex<Vec<String>>>,
) {
    let mut tls = match timeout(READ_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            log("tls", addr, format!("handshake with {peer} failed: {e}"));
            return;
        }
        Err(_) => {
            log("tls", addr, format!("handshake with {peer} timed out"));
            return;
        }
    };
    let sni = tls.get_ref().1.server_name().unwrap_or("").to_string();
    server_names
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(sni);
    handshakes.fetch_add(1, Ordering::SeqCst);

    let mut buf = Vec::new();
    let head = match read_head(&mut tls, &mut buf).await {
        Ok(Some(head)) => head,
        // The client only wanted the handshake.
        Ok(None) | Err(ReadError::Closed) => return,
        Err(e) => {
            log("tls", addr, format!("request from {peer}: {e}"));
            return;
        }
    };
    requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(head.request_line());
    match head.content_length() {
        Ok(len) => {
            if let Err(e) = read_body(&mut tls, &mut buf, len).await {
                log("tls", addr, format!("request body from {peer}: {e}"));
                return;
            }
        }
        Err(e) => log("tls", addr, format!("request from {peer}: {e}")),
    }
    let headers = [
        ("Server", "AmazonS3".to_string()),
        ("x-amz-request-id", "TESTREQID".to_string()),
    ];
    if let Err(e) = write_response(&mut tls, 200, &headers, b"", true, true).await {
        log("tls", addr, format!("writing response to {peer}: {e}"));
        return;
    }
    let _ = timeout(READ_TIMEOUT, tls.shutdown()).await;
}
