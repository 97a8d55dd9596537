//! How a TLS handshake reads as a report record, and when it was intercepted (the handshake is
//! the probe's checks/tls.rs).

use super::Check;
use crate::report::*;

/// Whether the outcome shows a middlebox rather than a broken service or host.
pub fn is_interception(h: &TlsHandshake, expect_issuers: &[String]) -> bool {
    match h.outcome {
        TlsOutcome::UnexpectedIssuer | TlsOutcome::WrongName => true,
        // A chain we cannot verify is interception when its issuer is not the service's;
        // with the service's issuer it is a missing root on this host.
        TlsOutcome::UntrustedIssuer => !issuer_expected(&h.chain, expect_issuers),
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

/// Whether any certificate of the presented chain was issued by one of the expected issuers.
pub fn issuer_expected(chain: &[CertificateInfo], expect: &[String]) -> bool {
    chain.iter().any(|c| {
        let issuer = c.issuer.to_ascii_lowercase();
        expect
            .iter()
            .any(|e| !e.is_empty() && issuer.contains(&e.to_ascii_lowercase()))
    })
}
