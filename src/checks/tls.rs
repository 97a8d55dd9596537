//! TLS handshake with each service name on the stream the TCP check opened.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::net::millis;
use crate::net::tls::TlsContext;
use crate::report::{Service, TlsHandshake};

/// The check, and its connection when the certificate verified (for the calls).
pub async fn handshake(
    ctx: &TlsContext,
    stream: TcpStream,
    name: &str,
    service: Service,
    address: &str,
    timeout: Duration,
    expect_issuers: &[String],
) -> (TlsHandshake, Option<TlsStream<TcpStream>>) {
    let r = ctx.handshake(stream, name, timeout, expect_issuers).await;
    let check = TlsHandshake {
        name: name.to_string(),
        service,
        address: address.to_string(),
        outcome: r.outcome,
        error: r.error,
        protocol: r.protocol,
        cipher_suite: r.cipher_suite,
        chain: r.chain,
        handshake_ms: millis(r.elapsed),
    };
    (check, r.stream)
}
