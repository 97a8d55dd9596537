//! AWS SDK errors as short sentences for the reports. The SDK's `Debug` output, and its
//! `DisplayErrorContext` (which appends that `Debug` output), dump the whole error tree, the
//! raw response included, on one line: people reading the text report over SSM need what it
//! means instead. Nothing here formats an SDK error with `{:?}`.

use std::error::Error;
use std::fmt;

use aws_config::meta::ProviderChainError;
use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Longest sentence kept: enough for a service's message, short enough for one report line.
pub const MAX_CHARS: usize = 200;
/// Longest reason kept per credential provider, so that all five fit in one sentence.
const MAX_PROVIDER_CHARS: usize = 80;

/// What kind of failure an SDK call ended in, for callers that add their own hint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// No TCP/TLS connection within the connect timeout.
    ConnectTimeout,
    /// Connected, but no answer within the read timeout.
    ReadTimeout,
    /// Any other timeout (the whole call or one attempt).
    Timeout,
    /// The connection failed (refused, reset, DNS, TLS).
    Connect,
    /// An answer came that could not be read.
    Unreadable,
    /// The service answered with an error.
    Service,
    /// The request was never sent.
    NotSent,
}

/// One SDK failure in words.
#[derive(Clone, Debug)]
pub struct SdkFailure {
    pub kind: FailureKind,
    pub text: String,
}

impl fmt::Display for SdkFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What a failed call to `service` ("STS", "S3", "DynamoDB", "EC2") means, in one sentence.
pub fn sdk_error<E>(service: &str, err: &SdkError<E, HttpResponse>) -> SdkFailure
where
    E: ProvideErrorMetadata + Error + 'static,
{
    let (kind, text) = match err {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let e = se.err();
            match (e.code(), e.message()) {
                (Some(code), Some(message)) => (
                    FailureKind::Service,
                    format!(
                        "{service} answered HTTP {status} {}: {}",
                        squash(code),
                        squash(message)
                    ),
                ),
                (Some(code), None) => (
                    FailureKind::Service,
                    format!("{service} answered HTTP {status} {}", squash(code)),
                ),
                (None, Some(message)) => (
                    FailureKind::Service,
                    format!("{service} answered HTTP {status}: {}", squash(message)),
                ),
                (None, None) => (
                    FailureKind::Unreadable,
                    unreadable(service, status, e.source()),
                ),
            }
        }
        SdkError::ResponseError(re) => (
            FailureKind::Unreadable,
            unreadable(service, re.raw().status().as_u16(), err.source()),
        ),
        SdkError::DispatchFailure(d) => {
            let source = d.as_connector_error().and_then(|c| c.source());
            let parts = messages(source);
            if d.is_timeout() {
                timed_out(service, &parts)
            } else if d.is_io() {
                (
                    FailureKind::Connect,
                    with_parts(format!("could not connect to {service}"), &parts),
                )
            } else if d.is_user() {
                (
                    FailureKind::NotSent,
                    with_parts(format!("the {service} request was not sent"), &parts),
                )
            } else {
                (
                    FailureKind::Connect,
                    with_parts(format!("the {service} request failed"), &parts),
                )
            }
        }
        SdkError::TimeoutError(_) => timed_out(service, &messages(err.source())),
        SdkError::ConstructionFailure(_) => (
            FailureKind::NotSent,
            with_parts(
                format!("the {service} request could not be built"),
                &messages(err.source()),
            ),
        ),
        _ => (
            FailureKind::Connect,
            with_parts(
                format!("the {service} request failed"),
                &messages(err.source()),
            ),
        ),
    };
    SdkFailure {
        kind,
        text: cap(&text, MAX_CHARS),
    }
}

/// Why the credential chain gave no credentials, in one sentence.
pub fn credentials_error(err: &CredentialsError) -> String {
    let chain = err
        .source()
        .and_then(|s| s.downcast_ref::<ProviderChainError<CredentialsError>>());
    let text = match (err, chain) {
        (CredentialsError::CredentialsNotLoaded(_), Some(chain)) => chain_text(chain),
        (CredentialsError::CredentialsNotLoaded(_), None) => with_parts(
            "no credential provider had credentials".into(),
            &messages(err.source()),
        ),
        (CredentialsError::ProviderTimedOut(t), _) => format!(
            "the credential provider did not answer within {} s",
            t.timeout_duration().as_secs()
        ),
        (CredentialsError::InvalidConfiguration(_), _) => with_parts(
            "the credentials configuration is invalid".into(),
            &messages(err.source()),
        ),
        (CredentialsError::ProviderError(_), _) => with_parts(
            "loading the credentials failed".into(),
            &messages(err.source()),
        ),
        _ => with_parts(
            "unexpected answer while loading the credentials".into(),
            &messages(err.source()),
        ),
    };
    cap(&text, MAX_CHARS)
}

/// "the default chain found none (environment, profile: not configured; IMDS: <reason>)":
/// the providers with nothing configured in one group, each real failure with its reason.
fn chain_text(chain: &ProviderChainError<CredentialsError>) -> String {
    let mut absent = Vec::new();
    let mut failed = Vec::new();
    for attempt in chain.attempts() {
        let name = provider_label(attempt.name());
        let error = attempt.error();
        let parts = messages(error.source());
        // The innermost message is the most specific one ("Connection refused").
        match parts.last().map(|m| provider_reason(m)) {
            None => absent.push(name),
            Some(None) => absent.push(name),
            Some(Some(reason)) => {
                failed.push(format!("{name}: {}", cap(&reason, MAX_PROVIDER_CHARS)))
            }
        }
    }
    let mut groups = Vec::new();
    if !absent.is_empty() {
        groups.push(format!("{}: not configured", absent.join(", ")));
    }
    groups.extend(failed);
    if groups.is_empty() {
        "the default chain has no providers".into()
    } else {
        format!("the default chain found none ({})", groups.join("; "))
    }
}

fn provider_label(name: &str) -> String {
    match name {
        "Environment" => "environment",
        "Profile" => "profile",
        "WebIdentityToken" => "web identity",
        "EcsContainer" => "ECS",
        "Ec2InstanceMetadata" => "IMDS",
        other => other,
    }
    .to_string()
}

/// None when the message only says the provider has nothing configured.
fn provider_reason(message: &str) -> Option<String> {
    let lower = message.to_ascii_lowercase();
    if lower.contains("not set")
        || lower.contains("not configured")
        || lower.contains("must be set")
    {
        return None;
    }
    if lower.contains("received 404 from imds") {
        return Some("no instance role (404)".into());
    }
    Some(message.to_string())
}

/// "STS did not answer within 1 s (connect timeout)" from the timeout's own message.
fn timed_out(service: &str, parts: &[String]) -> (FailureKind, String) {
    for p in parts {
        let Some((what, after)) = p.split_once(" occurred after ") else {
            continue;
        };
        let what = what.trim().trim_start_matches("HTTP ").to_ascii_lowercase();
        let within = duration_words(after.trim());
        return match what.as_str() {
            "connect timeout" => (
                FailureKind::ConnectTimeout,
                format!("{service} did not answer within {within} (connect timeout)"),
            ),
            "read timeout" => (
                FailureKind::ReadTimeout,
                format!(
                    "{service} accepted the connection but did not answer within {within} (read timeout)"
                ),
            ),
            // "operation timeout (all attempts including retries)", "operation attempt timeout"
            w if w.starts_with("operation attempt") => (
                FailureKind::Timeout,
                format!("{service} did not answer within {within} (attempt timeout)"),
            ),
            w if w.starts_with("operation") => (
                FailureKind::Timeout,
                format!("{service} did not answer within {within} (call timeout)"),
            ),
            _ => (
                FailureKind::Timeout,
                format!("{service} did not answer within {within} ({what})"),
            ),
        };
    }
    (
        FailureKind::Timeout,
        with_parts(format!("{service} did not answer in time"), parts),
    )
}

/// "1s" -> "1 s", "500ms" -> "500 ms" (Duration's Debug form, as the SDK's messages carry it).
fn duration_words(d: &str) -> String {
    match d.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) if i > 0 => format!("{} {}", &d[..i], &d[i..]),
        _ => d.to_string(),
    }
}

fn unreadable(service: &str, status: u16, source: Option<&(dyn Error + 'static)>) -> String {
    with_parts(
        format!("{service} answered HTTP {status} but the answer could not be read"),
        &messages(source),
    )
}

fn with_parts(lead: String, parts: &[String]) -> String {
    if parts.is_empty() {
        lead
    } else {
        format!(
            "{lead}: {}",
            join_capped(parts, MAX_CHARS.saturating_sub(lead.len()))
        )
    }
}

/// The distinct, meaningful messages of an error and its sources, outermost first.
pub fn messages(first: Option<&(dyn Error + 'static)>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut next = first;
    // Source chains are short; the bound only guards against a cycle.
    for _ in 0..16 {
        let Some(e) = next else { break };
        next = e.source();
        let m = clean(&e.to_string());
        if m.is_empty() || is_generic(&m) || out.iter().any(|k| k.contains(&m)) {
            continue;
        }
        // Many errors repeat their source's text in their own: keep the longer one.
        if let Some(last) = out.last_mut()
            && m.contains(last.as_str())
        {
            *last = m;
            continue;
        }
        out.push(m);
    }
    out
}

/// The SDK's wrapper words, which say nothing about what happened.
fn is_generic(m: &str) -> bool {
    const GENERIC: &[&str] = &[
        "dispatch failure",
        "io error",
        "timeout",
        "timed out",
        "other",
        "user error",
        "service error",
        "response error",
        "unhandled error",
        "failed to construct request",
        "the credential provider was not enabled",
        "the credentials provider was not properly configured",
        "an error occurred while loading credentials",
        "unexpected credentials error",
    ];
    let lower = m.to_ascii_lowercase();
    GENERIC.contains(&lower.as_str()) || lower.starts_with("client error (")
}

/// One line, and without the `Debug` dump some SDK messages end in
/// ("error response from IMDS (code: 500). Response { status: … }").
fn clean(m: &str) -> String {
    let m = squash(m);
    let cut = ["{ ", "Some(", "source:"]
        .iter()
        .filter_map(|marker| m.find(marker))
        .min();
    let Some(at) = cut else { return m };
    // Drop the type name in front of the dump too, then the punctuation before it.
    let head = m[..at].trim_end();
    let head = match head.rfind(' ') {
        Some(i) => &head[..i],
        None => "",
    };
    head.trim_end_matches(|c: char| c == '.' || c == ':' || c == ',' || c.is_whitespace())
        .to_string()
}

/// Whitespace (newlines included) as single spaces, other control characters escaped: the
/// text comes from the network (or from something on the path pretending to be AWS).
fn squash(m: &str) -> String {
    crate::escape::line(&m.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Join with ": "; when too long, drop middle messages first, since the first says what
/// failed and the last is the most specific (and may hold words the findings look for, such
/// as "certificate").
fn join_capped(parts: &[String], max: usize) -> String {
    let mut kept: Vec<&str> = parts.iter().map(String::as_str).collect();
    while kept.len() > 2 && kept.join(": ").chars().count() > max {
        kept.remove(1);
    }
    cap(&kept.join(": "), max.max(40))
}

/// At most `max` characters, with an ellipsis when cut.
fn cap(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.truncate(out.trim_end().len());
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct E(&'static str, Option<Box<E>>);
    impl fmt::Display for E {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }
    impl Error for E {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|e| e as &(dyn Error + 'static))
        }
    }
    fn chain(msgs: &[&'static str]) -> E {
        let mut e: Option<Box<E>> = None;
        for m in msgs.iter().rev() {
            e = Some(Box::new(E(m, e)));
        }
        match e {
            Some(e) => *e,
            None => E("", None),
        }
    }

    #[test]
    fn messages_drop_wrappers_repeats_and_debug_dumps() {
        let e = chain(&[
            "dispatch failure",
            "io error",
            "client error (Connect)",
            "tcp connect error",
            "Connection refused (os error 111)",
        ]);
        assert_eq!(
            messages(Some(&e)),
            vec!["tcp connect error", "Connection refused (os error 111)"]
        );
        let e = chain(&["could not read x: denied", "denied"]);
        assert_eq!(messages(Some(&e)), vec!["could not read x: denied"]);
        let e = chain(&[
            "error response from IMDS (code: 500). Response { status: StatusCode(500) }",
            "Error { code: None, message: None }",
        ]);
        assert_eq!(
            messages(Some(&e)),
            vec!["error response from IMDS (code: 500)"]
        );
        let e = chain(&["no credentials found in chain. Attempted:\n  Environment: not set"]);
        assert_eq!(
            messages(Some(&e)),
            vec!["no credentials found in chain. Attempted: Environment: not set"]
        );
    }

    #[test]
    fn timeouts_name_their_kind_and_duration() {
        let parts = vec!["HTTP connect timeout occurred after 1s".to_string()];
        assert_eq!(
            timed_out("STS", &parts),
            (
                FailureKind::ConnectTimeout,
                "STS did not answer within 1 s (connect timeout)".into()
            )
        );
        let parts = vec!["HTTP read timeout occurred after 1.5s".to_string()];
        assert_eq!(timed_out("S3", &parts).0, FailureKind::ReadTimeout);
        assert!(timed_out("S3", &parts).1.contains("1.5 s"));
        let parts =
            vec!["operation timeout (all attempts including retries) occurred after 2s".into()];
        assert_eq!(
            timed_out("EC2", &parts).1,
            "EC2 did not answer within 2 s (call timeout)"
        );
        assert_eq!(
            timed_out("S3", &[]).1,
            "S3 did not answer in time".to_string()
        );
    }

    #[test]
    fn long_texts_keep_the_first_and_innermost_messages() {
        let parts: Vec<String> = vec![
            "a".repeat(30),
            "b".repeat(300),
            "invalid peer certificate: UnknownIssuer".into(),
        ];
        let joined = join_capped(&parts, 100);
        assert!(
            joined.starts_with("aaa") && joined.ends_with("UnknownIssuer"),
            "{joined}"
        );
        let long = "x".repeat(500);
        let c = cap(&long, MAX_CHARS);
        assert_eq!(c.chars().count(), MAX_CHARS);
        assert!(c.ends_with('…'));
        assert_eq!(cap("ééé", 2), "é…");
    }

    #[test]
    fn credential_errors_without_a_chain() {
        let e = CredentialsError::provider_timed_out(std::time::Duration::from_secs(5));
        assert_eq!(
            credentials_error(&e),
            "the credential provider did not answer within 5 s"
        );
        let e = CredentialsError::provider_error(chain(&["could not read profile", "EACCES"]));
        assert_eq!(
            credentials_error(&e),
            "loading the credentials failed: could not read profile: EACCES"
        );
        let e = CredentialsError::not_loaded_no_source();
        assert_eq!(
            credentials_error(&e),
            "no credential provider had credentials"
        );
    }
}
