//! Background thread + current-thread runtime shared by every fake.

use std::future::Future;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;

/// Timeout applied to every read a fake performs.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest time a fake keeps a silent connection open on purpose
/// (TCP sink, unresponsive IMDS, DNS in drop mode).
pub(crate) const HOLD_MAX: Duration = Duration::from_secs(120);

/// Polls `cond` every 10 ms until it holds or `timeout` passes; returns whether it held.
/// Handy for counters that a server updates just after the client sees its side finish.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub(crate) fn log(tag: &str, addr: SocketAddr, msg: impl std::fmt::Display) {
    eprintln!("[fake-{tag} {addr}] {msg}");
}

/// A server's background thread; dropping it stops the server and waits for the thread.
pub(crate) struct Background {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    /// Runs `make()` (called on the new thread, inside its runtime) until the handle is dropped.
    /// Dropping the runtime afterwards cancels every task the server spawned.
    pub(crate) fn spawn<F, Fut>(name: String, make: F) -> Background
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let (tx, rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        eprintln!("[fake] cannot build runtime: {e}");
                        return;
                    }
                };
                rt.block_on(async move {
                    let server = make();
                    tokio::select! {
                        _ = server => {}
                        _ = rx => {}
                    }
                });
                drop(rt);
            })
            .expect("spawn fake server thread");
        Background {
            stop: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Binds a std TCP listener (so that binding happens synchronously in `start_*`).
pub(crate) fn bind_tcp(tag: &str, bind: SocketAddr) -> std::net::TcpListener {
    let l = std::net::TcpListener::bind(bind)
        .unwrap_or_else(|e| panic!("fake {tag}: cannot bind TCP {bind}: {e}"));
    l.set_nonblocking(true)
        .unwrap_or_else(|e| panic!("fake {tag}: set_nonblocking: {e}"));
    l
}

/// Converts a std listener inside the server's runtime.
pub(crate) fn tokio_listener(
    tag: &str,
    addr: SocketAddr,
    l: std::net::TcpListener,
) -> Option<tokio::net::TcpListener> {
    match tokio::net::TcpListener::from_std(l) {
        Ok(l) => Some(l),
        Err(e) => {
            log(tag, addr, format!("cannot register listener: {e}"));
            None
        }
    }
}

/// The next connection, with Nagle's algorithm off, as real service fronts (and the SDKs)
/// have it: with it on, a response written right after the TLS server's session tickets
/// waited for the client's delayed ACK of them, a 40 ms stall in about one run in three.
pub(crate) async fn accept(
    listener: &tokio::net::TcpListener,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    let (stream, peer) = listener.accept().await?;
    // Only a latency setting: a socket that refuses it still serves.
    let _ = stream.set_nodelay(true);
    Ok((stream, peer))
}

/// Keeps a connection open without answering: reads and discards whatever the peer
/// sends (each read bounded by READ_TIMEOUT) until it closes or HOLD_MAX passes.
pub(crate) async fn hold<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < HOLD_MAX {
        match tokio::time::timeout(READ_TIMEOUT, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) | Err(_) => continue,
        }
    }
}
