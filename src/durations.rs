//! The one path from a duration a person wrote (the agent's TOML, `--timeout`, `--deadline`) to a
//! `Duration`, with a maximum, and the checked `Instant` arithmetic the agent's loops use.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::escape::shown;

/// The longest interval, jitter, timeout or retry backoff accepted: 7 days. Waiting longer than
/// a week between probes or deliveries is no monitoring at all, and the bound keeps every
/// deadline the agent computes (`now + interval + jitter`, `now + timeout`, a doubled backoff)
/// far inside what `Instant` and tokio's timer represent, where u64::MAX seconds would panic.
pub const MAX_WAIT: Duration = Duration::from_secs(7 * 24 * 3600);
/// The longest a spooled report may be kept (`[spool] max_age`): a year.
pub const MAX_RETENTION: Duration = Duration::from_secs(366 * 24 * 3600);
/// Bounds of the probe's `--timeout` (each network operation) and `--deadline` (the whole run).
pub const MIN_TIMEOUT: Duration = Duration::from_millis(50);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);
pub const MIN_DEADLINE: Duration = Duration::from_millis(100);
pub const MAX_DEADLINE: Duration = Duration::from_secs(3600);

/// A humantime duration ("90s", "5m", "1h 30m") of the TOML key `key`, at most `max`.
pub fn parse(key: &str, raw: &str, max: Duration) -> Result<Duration, String> {
    let what = format!("{key} = \"{}\"", shown(raw));
    // humantime's message quotes the unit it did not know, which may be the whole value.
    let d = humantime::parse_duration(raw).map_err(|e| {
        format!(
            "{what}: {} (write e.g. \"60s\" or \"5m\")",
            shown(&e.to_string())
        )
    })?;
    within(&what, d, Duration::ZERO, max)
}

/// Seconds given as a number (`--timeout 2.5`), between `min` and `max`.
pub fn seconds(flag: &str, value: f64, min: Duration, max: Duration) -> Result<Duration, String> {
    let what = format!("{flag} {}", shown(&value.to_string()));
    // Checked as f64 first: from_secs_f64 panics on NaN, negative or huge values.
    if !value.is_finite() || value < min.as_secs_f64() || value > max.as_secs_f64() {
        return Err(between(&what, min, max));
    }
    within(&what, Duration::from_secs_f64(value), min, max)
}

fn within(what: &str, d: Duration, min: Duration, max: Duration) -> Result<Duration, String> {
    if d > max {
        return Err(format!("{what}: above the maximum of {}", show(max)));
    }
    if d < min {
        return Err(between(what, min, max));
    }
    Ok(d)
}

fn between(what: &str, min: Duration, max: Duration) -> String {
    format!(
        "{what}: must be between {} and {} seconds",
        min.as_secs_f64(),
        max.as_secs_f64()
    )
}

/// "300 s", or "7days (604800 s)".
fn show(d: Duration) -> String {
    if d < Duration::from_secs(3600) {
        format!("{} s", d.as_secs_f64())
    } else {
        format!("{} ({} s)", humantime::format_duration(d), d.as_secs())
    }
}

/// A duration of the probe's settings as a person wrote it: seconds as on the command line
/// (`--timeout 3`, `2.5`) or a duration with its unit as in the agent's file (`"3s"`, `"500ms"`),
/// both accepted in both places. Parsing never judges the size: the setting's bounds are checked
/// with its name by [`seconds`], so an out-of-range value is one line naming the setting and its
/// bounds, not a parse error.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Seconds(f64);

impl Seconds {
    pub const fn from_secs(secs: u32) -> Self {
        Seconds(secs as f64)
    }

    pub const fn from_millis(millis: u32) -> Self {
        Seconds(millis as f64 / 1000.0)
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0
    }
}

impl FromStr for Seconds {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let text = raw.trim();
        if let Ok(secs) = text.parse::<f64>() {
            return Ok(Seconds(secs));
        }
        humantime::parse_duration(text)
            .map(|d| Seconds(d.as_secs_f64()))
            .map_err(|e| {
                format!(
                    "'{}': {e} (write seconds, 3 or 2.5, or a duration with its unit, \"3s\" or \"500ms\")",
                    shown(raw)
                )
            })
    }
}

/// Seconds as a number, as `--timeout` takes them (the help's and the error lines' form).
impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The agent's file writes durations as strings (`timeout = "3s"`), parsed as on the command line.
impl<'de> serde::Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

/// `t + d`, or as far as `Instant` goes (never a panic).
pub fn after(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(MAX_WAIT))
        .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_maximum_is_named_with_the_key_and_the_value() {
        assert_eq!(
            parse("interval", "5m", MAX_WAIT).expect("5m"),
            Duration::from_secs(300)
        );
        let e = parse("interval", "300000000000y", MAX_WAIT).expect_err("too long");
        assert_eq!(
            e,
            "interval = \"300000000000y\": above the maximum of 7days (604800 s)"
        );
        let e = parse("shipping.timeout", "18446744073709551615s", MAX_WAIT).expect_err("max");
        assert!(
            e.starts_with("shipping.timeout = \"18446744073709551615s\""),
            "{e}"
        );
        let e = parse("interval", "sixty\x1b[2J", MAX_WAIT).expect_err("bad");
        assert!(e.contains("sixty\\x1b[2J") && !e.contains('\x1b'), "{e}");
    }

    #[test]
    fn seconds_never_panic() {
        for v in [f64::NAN, f64::INFINITY, -1.0, 1e300, 0.0, 301.0] {
            let e = seconds("--timeout", v, MIN_TIMEOUT, MAX_TIMEOUT).expect_err("refused");
            assert!(e.contains("between 0.05 and 300 seconds"), "{e}");
        }
        assert_eq!(
            seconds("--timeout", 2.5, MIN_TIMEOUT, MAX_TIMEOUT).expect("ok"),
            Duration::from_millis(2500)
        );
    }

    #[test]
    fn seconds_are_read_as_numbers_or_with_their_unit() {
        let secs = |raw: &str| raw.parse::<Seconds>().map(Seconds::as_secs_f64);
        assert_eq!(secs("3"), Ok(3.0));
        assert_eq!(secs("2.5"), Ok(2.5));
        assert_eq!(secs("3s"), Ok(3.0));
        assert_eq!(secs("500ms"), Ok(0.5));
        assert_eq!(secs("1m 30s"), Ok(90.0));
        // Out of range is the setting's judgement, not the parser's.
        assert_eq!(secs("1e300"), Ok(1e300));
        let e = secs("sixty").expect_err("not a duration");
        assert!(e.contains("'sixty'") && e.contains("500ms"), "{e}");
        assert_eq!(Seconds::from_secs(3).to_string(), "3");
    }

    #[test]
    fn instants_saturate() {
        let now = Instant::now();
        assert!(after(now, Duration::MAX) >= now);
        assert_eq!(
            after(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
    }
}
