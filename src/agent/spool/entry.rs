//! What the spool writes and reads back: the names of entries and acknowledgement markers,
//! the check that an entry file is a JSON object carrying the report_id of its name, and the
//! rules for report_ids and sink names.

use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use serde::Deserialize;

use super::{MAX_REPORT_ID_LEN, MAX_SINK_NAME_LEN, MILLIS_DIGITS, SpoolError};

/// The part of a report the spool checks: a JSON object with a string `report_id`; the other
/// values are skipped without being kept. Hand-written because a derived `Deserialize` would
/// also accept an array (`["r1"]`) as the struct's fields in order.
pub(super) struct ReportIdOnly {
    pub(super) report_id: String,
}

impl<'de> Deserialize<'de> for ReportIdOnly {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;

        impl<'de> serde::de::Visitor<'de> for ObjectVisitor {
            type Value = ReportIdOnly;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object with a string report_id")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ReportIdOnly, A::Error> {
                let mut report_id: Option<String> = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "report_id" {
                        if report_id.is_some() {
                            return Err(serde::de::Error::duplicate_field("report_id"));
                        }
                        report_id = Some(map.next_value()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                report_id
                    .map(|report_id| ReportIdOnly { report_id })
                    .ok_or_else(|| serde::de::Error::missing_field("report_id"))
            }
        }

        deserializer.deserialize_map(ObjectVisitor)
    }
}

pub(super) enum Name<'a> {
    Entry {
        stem: &'a str,
        millis: u64,
        report_id: &'a str,
    },
    Marker {
        stem: &'a str,
        sink: &'a str,
    },
}

/// Recognise the names the spool writes; anything else is None.
pub(super) fn parse_name(name: &str) -> Option<Name<'_>> {
    let (stem, rest) = name.split_once('.')?;
    let (digits, report_id) = stem.split_once('-')?;
    if digits.len() != MILLIS_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let millis = digits.parse().ok()?;
    validate_report_id(report_id).ok()?;
    if rest == "json" {
        return Some(Name::Entry {
            stem,
            millis,
            report_id,
        });
    }
    let sink = rest.strip_prefix("ack.")?;
    validate_sink_name(sink).ok()?;
    Some(Name::Marker { stem, sink })
}

/// An entry file is whole when it is a JSON object with the report_id of its name. Streams
/// the file (a huge foreign file with an entry's name costs no memory). Returns its size.
pub(super) fn check_entry_file(path: &Path, report_id: &str) -> Result<u64, String> {
    let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let bytes = file
        .metadata()
        .map_err(|e| format!("cannot stat: {e}"))?
        .len();
    let parsed: ReportIdOnly = serde_json::from_reader(BufReader::new(file))
        .map_err(|e| format!("not a JSON object with a string report_id: {e}"))?;
    if parsed.report_id != report_id {
        return Err(format!(
            "its report_id {:?} is not the one in its name",
            shorten(&parsed.report_id)
        ));
    }
    Ok(bytes)
}

pub(super) fn validate_report_id(report_id: &str) -> Result<(), SpoolError> {
    let ok = !report_id.is_empty()
        && report_id.len() <= MAX_REPORT_ID_LEN
        && report_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(SpoolError::InvalidReportId(shorten(report_id)))
    }
}

/// Sink names become parts of file names: `[A-Za-z0-9_-]{1,64}`.
pub fn validate_sink_name(sink: &str) -> Result<(), SpoolError> {
    let ok = !sink.is_empty()
        && sink.len() <= MAX_SINK_NAME_LEN
        && sink
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(SpoolError::InvalidSinkName(shorten(sink)))
    }
}

/// At most 80 characters of a string from outside, for messages.
pub(super) fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let mut short: String = s.chars().take(MAX).collect();
        short.push('…');
        short
    }
}
