//! How an application-resolution result reads as a report record (the resolution itself is the
//! probe's checks/app_resolve.rs).

use super::Check;
use crate::report::*;
use crate::results::ProbeResults;

/// What the applications' own resolution (nsswitch: hosts file, DNS, stub) found for `name`.
pub fn app_resolution<'a>(r: &'a ProbeResults, name: &str) -> Option<&'a AppResolution> {
    r.app_dns.iter().find(|d| d.name == name)
}

impl Check for AppResolution {
    const KIND: CheckKind = CheckKind::Dns;
    fn id(&self) -> String {
        format!("dns/{}/{}", ResolverKind::Application.as_str(), self.name)
    }
    fn subject(&self) -> String {
        self.name.clone()
    }
    fn status(&self) -> CheckStatus {
        match self.answered_by {
            None => CheckStatus::Fail,
            // A pinned address goes stale silently: always worth a look.
            Some(AppSource::HostsFile) => CheckStatus::Warn,
            Some(_) if self.addresses.iter().all(|a| a.class.fits_service()) => CheckStatus::Ok,
            Some(_) => CheckStatus::Warn,
        }
    }
    fn summary(&self) -> String {
        let what = match (&self.answered_by, self.hosts_file.first()) {
            (None, _) => format!("no source answered ({})", self.steps.join("; ")),
            (Some(AppSource::HostsFile), Some(h)) => format!(
                "{} from {} line {}",
                addresses_text(&self.addresses),
                h.path,
                h.line
            ),
            (Some(source), _) => {
                format!(
                    "{} from {}",
                    addresses_text(&self.addresses),
                    source.as_str()
                )
            }
        };
        format!(
            "{} as applications resolve it (hosts: {}): {what}",
            self.name,
            self.nss_sources.join(" ")
        )
    }
    fn duration_ms(&self) -> u64 {
        self.latency_ms
    }
    fn evidence(&self) -> Evidence {
        Evidence::AppResolution(self.clone())
    }
}

fn addresses_text(addresses: &[ClassifiedAddress]) -> String {
    addresses
        .iter()
        .map(|a| format!("{} ({})", a.ip, class_label(a.class)))
        .collect::<Vec<_>>()
        .join(", ")
}
