//! TLS handshake with each service name on the stream the TCP check opened.

use std::time::Duration;

use tokio::net::TcpStream;

use super::Check;
use crate::net::millis;
use crate::net::tls::TlsContext;
use crate::report::{CheckKind, CheckStatus, Evidence, Service, TlsHandshake, TlsOutcome};

pub async fn handshake(
    ctx: &TlsContext,
    stream: TcpStream,
    name: &str,
    service: Service,
    address: &str,
    timeout: Duration,
    expect_issuers: &[String],
) -> TlsHandshake {
    let r = ctx.handshake(stream, name, timeout, expect_issuers).await;
    TlsHandshake {
        name: name.to_string(),
        service,
        address: address.to_string(),
        outcome: r.outcome,
        error: r.error,
        protocol: r.protocol,
        cipher_suite: r.cipher_suite,
        chain: r.chain,
        handshake_ms: millis(r.elapsed),
    }
}

/// Whether the outcome shows a middlebox rather than a broken service or host.
pub fn is_interception(h: &TlsHandshake, expect_issuers: &[String]) -> bool {
    match h.outcome {
        TlsOutcome::UnexpectedIssuer | TlsOutcome::WrongName => true,
        // A chain we cannot verify is interception when its issuer is not the service's;
        // with the service's issuer it is a missing root on this host.
        TlsOutcome::UntrustedIssuer => !crate::net::tls::issuer_expected(&h.chain, expect_issuers),
        _ => false,
    }
}

impl Check for TlsHandshake {
    const KIND: CheckKind = CheckKind::Tls;
    fn id(&self) -> String {
        format!("tls/{}/{}", self.name, self.address)
    }
    fn subject(&self) -> String {
        self.name.clone()
    }
    fn status(&self) -> CheckStatus {
        match self.outcome {
            TlsOutcome::Verified => CheckStatus::Ok,
            TlsOutcome::NotAttempted => CheckStatus::Skip,
            _ => CheckStatus::Fail,
        }
    }
    fn summary(&self) -> String {
        let issuer = self
            .chain
            .first()
            .map(|c| c.issuer.as_str())
            .unwrap_or("no certificate");
        let head = format!("{} at {}", self.name, self.address);
        match self.outcome {
            TlsOutcome::Verified => format!(
                "{head}: {} verified, issuer {issuer} ({} ms)",
                self.protocol.as_deref().unwrap_or("TLS"),
                self.handshake_ms
            ),
            TlsOutcome::UnexpectedIssuer => {
                format!("{head}: certificate from unexpected issuer {issuer}")
            }
            TlsOutcome::WrongName => format!(
                "{head}: certificate is for {} (issuer {issuer})",
                self.chain
                    .first()
                    .map(|c| c.dns_names.join(", "))
                    .unwrap_or_default()
            ),
            TlsOutcome::NotAttempted => format!("{head}: not attempted (no TCP connection)"),
            _ => format!(
                "{head}: {} (issuer {issuer})",
                self.error.as_deref().unwrap_or("handshake failed")
            ),
        }
    }
    fn duration_ms(&self) -> u64 {
        self.handshake_ms
    }
    fn evidence(&self) -> Evidence {
        Evidence::Tls(self.clone())
    }
}
