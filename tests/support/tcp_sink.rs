//! A TCP listener that accepts, counts and holds connections.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::runtime::{Background, bind_tcp, hold, log, tokio_listener};

pub struct TcpSink {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    ports: Arc<Mutex<Vec<u16>>>,
    _bg: Background,
}

impl TcpSink {
    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Source ports of the accepted connections, in order.
    pub fn source_ports(&self) -> Vec<u16> {
        self.ports.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Accepts connections on `bind` and keeps each open, discarding what the peer sends, until
/// the peer closes, the sink is dropped, or 120 s pass.
pub fn start_tcp_sink(bind: SocketAddr) -> TcpSink {
    let std_listener = bind_tcp("tcp-sink", bind);
    let addr = std_listener.local_addr().expect("local addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let ports = Arc::new(Mutex::new(Vec::new()));
    let (a, p) = (accepted.clone(), ports.clone());
    let bg = Background::spawn(format!("fake-tcp-sink-{addr}"), move || async move {
        let Some(listener) = tokio_listener("tcp-sink", addr, std_listener) else {
            return;
        };
        loop {
            match listener.accept().await {
                Ok((mut stream, peer)) => {
                    p.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(peer.port());
                    a.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(async move { hold(&mut stream).await });
                }
                Err(e) => {
                    log("tcp-sink", addr, format!("accept error: {e}"));
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    });
    TcpSink {
        addr,
        accepted,
        ports,
        _bg: bg,
    }
}
