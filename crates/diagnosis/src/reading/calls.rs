//! The signed calls' pure half: their own finding rule (CLOCK_SKEW from an answer's Date
//! header) and how a call's result reads as a report record (the calls are the probe's
//! checks/calls.rs). What a call's answer means for its target (denials, redirects, failures)
//! also reads the connections and the credentials: diagnose.

use super::{Check, SliceRules};
use crate::catalogue::FindingCode;
use crate::findings::{Expectations, Findings, HostRule};
use crate::report::*;
use crate::results::ProbeResults;

/// The signed calls' rules: one about the host.
pub struct CallsSlice;

impl SliceRules for CallsSlice {
    fn host_rules(&self) -> &'static [HostRule] {
        &[date_header_skew_finding]
    }
}

/// Premise of CLOCK_SKEW: a Date header of a service answer beyond the limit.
fn date_header_skew_finding(r: &ProbeResults, _: &Expectations, f: &mut Findings) {
    let skew = r
        .calls
        .iter()
        .filter_map(|c| c.clock_offset_secs.map(|o| (o, c)))
        .max_by_key(|(o, _)| o.abs());
    if let Some((offset, call)) = skew
        && offset.abs() > crate::classify::CLOCK_SKEW_LIMIT_SECS
    {
        f.add(
            FindingCode::CLOCK_SKEW,
            Severity::Error,
            "host",
            format!(
                "the local clock is {} s {} AWS's",
                offset.abs(),
                if offset > 0 { "behind" } else { "ahead of" }
            ),
            format!(
                "The Date header of {} {} differs from the local clock by {offset} s; signatures are rejected beyond {} s.",
                call.operation,
                call.target,
                crate::classify::CLOCK_SKEW_LIMIT_SECS
            ),
            FindingCode::CLOCK_SKEW.general_fix().into(),
            vec![call.id()],
        );
    }
}

impl Check for CallResult {
    const KIND: CheckKind = CheckKind::S3;
    fn id(&self) -> String {
        format!(
            "{}/{}/{}",
            self.service.as_str(),
            self.target.split(':').nth(1).unwrap_or(&self.target),
            self.operation.replace(' ', "-")
        )
    }
    fn subject(&self) -> String {
        self.target.clone()
    }
    fn status(&self) -> CheckStatus {
        match self.outcome {
            CallOutcome::Ok => CheckStatus::Ok,
            CallOutcome::Skipped => CheckStatus::Skip,
            _ => CheckStatus::Fail,
        }
    }
    fn summary(&self) -> String {
        let via = match (&self.proxy, &self.peer) {
            (Some(p), _) => format!(" via proxy {p}"),
            (None, Some(peer)) => format!(" at {peer}"),
            _ => String::new(),
        };
        let request_id = self
            .headers
            .get("x-amz-request-id")
            .or_else(|| self.headers.get("x-amzn-requestid"))
            .map(|id| format!(", request id {id}"))
            .unwrap_or_default();
        let what = match self.outcome {
            CallOutcome::Ok => format!(
                "{} {}",
                self.status.map(|s| s.to_string()).unwrap_or_default(),
                self.detail.as_deref().unwrap_or("ok")
            ),
            CallOutcome::Skipped => {
                format!("skipped: {}", self.error_message.as_deref().unwrap_or(""))
            }
            _ => {
                let mut what = self
                    .status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "no answer".into());
                // No empty code between the status and the message ("200 : ...").
                if let Some(code) = self.error_code.as_deref().filter(|c| !c.is_empty()) {
                    what = format!("{what} {code}");
                }
                match self.error_message.as_deref() {
                    Some(m) => format!("{what}: {m}"),
                    None => what,
                }
            }
        };
        format!(
            "{} {}{via}: {what}{request_id} ({} ms)",
            self.operation, self.target, self.duration_ms
        )
    }
    fn duration_ms(&self) -> u64 {
        self.duration_ms
    }
    fn evidence(&self) -> Evidence {
        Evidence::Call(Box::new(self.clone()))
    }
    fn record(&self) -> crate::report::CheckRecord {
        crate::report::CheckRecord {
            id: self.id(),
            check: match self.service {
                Service::S3 | Service::S3express => CheckKind::S3,
                Service::Dynamodb => CheckKind::Dynamodb,
            },
            subject: self.subject(),
            status: self.status(),
            summary: self.summary(),
            duration_ms: self.duration_ms,
            evidence: self.evidence(),
        }
    }
}
