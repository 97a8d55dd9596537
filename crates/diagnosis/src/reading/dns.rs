//! How a DNS lookup reads as a report record (the lookups are the probe's checks/dns.rs).

use super::Check;
use crate::report::*;

impl Check for DnsLookup {
    const KIND: CheckKind = CheckKind::Dns;
    fn id(&self) -> String {
        format!(
            "dns/{}/{}/{}",
            self.resolver.as_str(),
            self.name,
            self.record_type
        )
    }
    fn subject(&self) -> String {
        self.name.clone()
    }
    fn status(&self) -> CheckStatus {
        match self.outcome {
            DnsOutcome::Answered => {
                // A silent server before the one that answered costs libc its timeout.
                if self.addresses.iter().all(|a| a.class.fits_service())
                    && self.silent_servers.is_empty()
                {
                    CheckStatus::Ok
                } else {
                    CheckStatus::Warn
                }
            }
            // Many service names have no AAAA record; only a missing A record is a failure.
            DnsOutcome::NoData if self.record_type == "AAAA" => CheckStatus::Ok,
            // Some forwarders (dnsmasq) answer NXDOMAIN instead of NODATA for AAAA.
            DnsOutcome::NxDomain if self.record_type == "AAAA" => CheckStatus::Warn,
            _ => CheckStatus::Fail,
        }
    }
    fn summary(&self) -> String {
        let server = self.server.as_deref().unwrap_or("no server");
        let what = match self.outcome {
            DnsOutcome::Answered => self
                .addresses
                .iter()
                .map(|a| format!("{} ({})", a.ip, class_label(a.class)))
                .collect::<Vec<_>>()
                .join(", "),
            DnsOutcome::NoData => "no record of this type".into(),
            DnsOutcome::NxDomain => "NXDOMAIN".into(),
            DnsOutcome::ServFail => "SERVFAIL".into(),
            DnsOutcome::Refused => "REFUSED".into(),
            DnsOutcome::Timeout => "timed out".into(),
            DnsOutcome::Error => self.error.clone().unwrap_or_else(|| "error".into()),
        };
        let after_silence = crate::report::after_silent_servers(&self.silent_servers);
        format!(
            "{} {} via {} resolver {server}: {what} ({} ms{after_silence})",
            self.name,
            self.record_type,
            self.resolver.as_str(),
            self.latency_ms
        )
    }
    fn duration_ms(&self) -> u64 {
        self.latency_ms
    }
    fn evidence(&self) -> Evidence {
        Evidence::Dns(self.clone())
    }
}

pub use crate::report::class_label;
