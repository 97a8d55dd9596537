//! The on-disk spool of reports waiting to be shipped (issue 6, "Nothing lost").
//!
//! A report enters the spool before any sink sees it, and leaves it only when every configured
//! sink acknowledged it, or when a bound (age, then size; oldest first) drops it. Every drop is
//! counted in [`SpoolStats`] and logged at warn. The spool is plain blocking `std::fs` with
//! fsyncs: the daemon calls it from `spawn_blocking` (or a thread of its own), never directly on
//! the runtime's worker threads.
//!
//! # On-disk layout (one flat directory, e.g. systemd's StateDirectory)
//!
//! - `<millis>-<report_id>.json`: one entry, the report's JSON bytes exactly as pushed. The
//!   stem is the [`EntryId`]: the creation time in Unix milliseconds, zero-padded to 16 digits
//!   so that name order is age order, then the report_id (validated `[A-Za-z0-9-]`, the only
//!   part of any name that comes from a report). It is written to a temporary name, fsynced,
//!   renamed into place (never over an existing file) and the directory is fsynced: after a
//!   crash the entry is either whole or absent.
//! - `<millis>-<report_id>.ack.<sink>`: an empty marker, the durable acknowledgement of one
//!   sink, created and fsynced (file and directory) before `ack` returns. The acknowledgement
//!   that completes the set writes no marker: it removes the entry directly.
//! - `.tmp-*`: a write in progress; one that `open` finds is the leftover of a crash: deleted.
//! - `.lock`: held with an exclusive `flock` for the life of the [`Spool`], so that two agents
//!   never share one directory (the kernel releases it when the process dies, even by kill -9).
//!
//! Markers rather than a per-entry state file rewritten on each ack: creating a name is atomic
//! on its own, so an acknowledgement is one create and two fsyncs, never a read-modify-write,
//! and sinks acknowledging the same entry never touch the same file. Removal deletes the entry
//! first and its markers after it: a crash in between leaves orphan markers, which `open`
//! deletes; an entry whose markers cover every configured sink (a sink left the configuration)
//! is removed by `open`.
//!
//! Anything else in the directory (a foreign file, a subdirectory, a symlink, an entry whose
//! content is not a JSON object carrying the report_id of its name) is skipped, logged at warn,
//! counted in [`SpoolStats::skipped_files`] and left where it is (outside the bounds): the
//! spool deletes only names it writes itself, and no file's name or content can make it panic
//! or fail to open.
//!
//! # Decisions
//!
//! - **A report bigger than `max_bytes` on its own is kept**, until every sink acknowledged it,
//!   until a newer report arrives (it is then the oldest and the size bound drops it), or until
//!   it is older than `max_age`. The size bound never drops the newest entry, so the spool holds
//!   at most `max(max_bytes, size of the newest entry)` bytes: the overshoot is one report,
//!   logged at warn and visible in [`SpoolStats::bytes`]. Dropping it instead would mean that
//!   once reports outgrow a too-small bound, every report is lost without ever being sent,
//!   which is the one thing this spool exists to prevent.
//! - `push` of a report_id that is still spooled returns the existing entry: a retried push
//!   never makes a duplicate entry.
//! - `push` checks that the bytes are a JSON object whose `report_id` is the one given: the
//!   collector deduplicates on the report_id inside the JSON, the spool names files by the one
//!   it is given; they must be the same.
//! - Ages are wall-clock time, the only clock that survives a reboot. New ids are strictly
//!   increasing even when the clock steps back, so "oldest first" stays the order of pushes.
//! - `max_bytes` counts the entries' JSON bytes, not markers or filesystem blocks.
//! - The counters of [`SpoolStats`] (spooled, acknowledged, dropped_*, recovered,
//!   skipped_files) count since `open`, like Prometheus counters; `entries` and `bytes` are the
//!   current content.
//! - Sinks are named (`[A-Za-z0-9_-]`, 1 to 64 characters). A sink added to the configuration
//!   is sent every entry still spooled; the markers of a sink that left it are ignored (and
//!   deleted with their entry).
//! - `ack` of an entry that is no longer spooled (acknowledged or dropped meanwhile) succeeds:
//!   a shipper racing a bound has nothing to undo.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use tracing::{debug, error, info, warn};

/// Prefix of the temporary files of `push`; `open` deletes the ones a crash left.
const TMP_PREFIX: &str = ".tmp-";
/// The lock file, held for the life of a `Spool`.
const LOCK_NAME: &str = ".lock";
/// Digits of the zero-padded millisecond timestamp that starts every entry id.
const MILLIS_DIGITS: usize = 16;
/// The largest timestamp that fits in `MILLIS_DIGITS` (year 318857).
const MAX_MILLIS: u64 = 9_999_999_999_999_999;
/// Longest report_id accepted (a UUID is 36): keeps every file name well under 255 bytes.
pub const MAX_REPORT_ID_LEN: usize = 128;
/// Longest sink name accepted.
pub const MAX_SINK_NAME_LEN: usize = 64;

#[derive(Debug, Clone)]
pub struct SpoolConfig {
    /// The spool directory; created if missing. The spool must be its only writer.
    pub dir: PathBuf,
    /// Bound on the entries' JSON bytes; the oldest entries are dropped first, never the newest.
    pub max_bytes: u64,
    /// Entries older than this are dropped, acknowledged or not.
    pub max_age: Duration,
    /// The sinks that must each acknowledge an entry before it leaves the spool.
    pub sinks: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool: cannot {op} {}: {source}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "spool directory {} is in use by another process (it holds {}/.lock)",
        .dir.display(), .dir.display()
    )]
    Locked { dir: PathBuf },
    #[error("spool configuration: {0}")]
    Config(String),
    #[error(
        "invalid report_id {0:?}: it must be 1 to {MAX_REPORT_ID_LEN} characters among A-Z, a-z, 0-9 and '-'"
    )]
    InvalidReportId(String),
    #[error(
        "invalid sink name {0:?}: it must be 1 to {MAX_SINK_NAME_LEN} characters among A-Z, a-z, 0-9, '-' and '_'"
    )]
    InvalidSinkName(String),
    #[error("report {report_id} not spooled: {reason}")]
    InvalidReport { report_id: String, reason: String },
    #[error("unknown sink {sink:?} (the spool's sinks: {known})")]
    UnknownSink { sink: String, known: String },
    #[error("no entry {0} in the spool (acknowledged by every sink, or dropped by a bound)")]
    UnknownEntry(EntryId),
}

/// An entry's id and the stem of its file name: `<unix-millis, 16 digits>-<report_id>`.
/// Ids sort oldest first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId(String);

impl EntryId {
    fn new(millis: u64, report_id: &str) -> EntryId {
        EntryId(format!(
            "{millis:0width$}-{report_id}",
            width = MILLIS_DIGITS
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An entry a sink still has to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub id: EntryId,
    pub report_id: String,
    /// The entry's file (the report's JSON); [`Spool::read`] reads it.
    pub path: PathBuf,
    pub bytes: u64,
    pub created: SystemTime,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SpoolStats {
    /// Reports pushed since open.
    pub spooled: u64,
    /// Entries removed since open because every sink acknowledged them.
    pub acknowledged: u64,
    /// Entries dropped since open by the size bound before every sink acknowledged them.
    pub dropped_size: u64,
    /// Entries dropped since open by the age bound before every sink acknowledged them.
    pub dropped_age: u64,
    /// Entries found on disk by open (left by the previous run, to be resent).
    pub recovered: u64,
    /// Files in the directory that open skipped: foreign, unreadable or corrupt (left in place).
    pub skipped_files: u64,
    /// Entries in the spool now.
    pub entries: u64,
    /// JSON bytes in the spool now.
    pub bytes: u64,
}

#[derive(Debug)]
struct Entry {
    report_id: String,
    bytes: u64,
    millis: u64,
    /// Sinks with a durable acknowledgement; may include sinks no longer configured, whose
    /// markers are deleted with the entry.
    acked: BTreeSet<String>,
}

/// The part of a report the spool checks: a JSON object with a string `report_id`; the other
/// values are skipped without being kept. Hand-written because a derived `Deserialize` would
/// also accept an array (`["r1"]`) as the struct's fields in order.
struct ReportIdOnly {
    report_id: String,
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

#[derive(Debug, Clone, Copy)]
enum DropReason {
    Age,
    Size,
}

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    max_age: Duration,
    sinks: Vec<String>,
    /// Ordered by id, so oldest first.
    entries: BTreeMap<EntryId, Entry>,
    bytes: u64,
    /// Millis of the newest id handed out or found: new ids are strictly greater.
    last_millis: u64,
    /// The counters; `entries` and `bytes` are filled in by `stats`.
    counters: SpoolStats,
    /// Holds the directory's flock until the spool is dropped.
    _lock: File,
}

impl Spool {
    /// Open (create) the directory and recover it: delete the temporary files a crash left,
    /// rebuild the index from the entries and markers on disk (skipping, logging and leaving
    /// anything else), delete orphan markers, finish removals a crash interrupted, then enforce
    /// the bounds. Fails if another process holds the directory.
    pub fn open(config: SpoolConfig) -> Result<Spool, SpoolError> {
        let SpoolConfig {
            dir,
            max_bytes,
            max_age,
            sinks,
        } = config;
        if sinks.is_empty() {
            return Err(SpoolError::Config(
                "at least one sink is required (an entry leaves the spool when every sink acknowledged it)"
                    .into(),
            ));
        }
        let mut seen = HashSet::new();
        for sink in &sinks {
            validate_sink_name(sink)?;
            if !seen.insert(sink.as_str()) {
                return Err(SpoolError::Config(format!("sink {sink:?} is listed twice")));
            }
        }

        fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        let lock_path = dir.join(LOCK_NAME);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io_err("open lock file", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(SpoolError::Locked { dir }),
            Err(TryLockError::Error(e)) => {
                return Err(SpoolError::Io {
                    op: "lock",
                    path: lock_path,
                    source: e,
                });
            }
        }

        let mut spool = Spool {
            dir,
            max_bytes,
            max_age,
            sinks,
            entries: BTreeMap::new(),
            bytes: 0,
            last_millis: 0,
            counters: SpoolStats::default(),
            _lock: lock,
        };
        spool.recover()?;
        spool.enforce_bounds(SystemTime::now());
        info!(
            dir = %spool.dir.display(),
            entries = spool.entries.len(),
            bytes = spool.bytes,
            skipped_files = spool.counters.skipped_files,
            "spool: opened"
        );
        Ok(spool)
    }

    /// Write the report (its JSON bytes) durably, then enforce the bounds: older entries may be
    /// dropped, never this one (see the module's decisions for a report bigger than
    /// `max_bytes`). Returns the entry's id; if the report_id is still spooled, the existing
    /// entry's id and nothing is written. Rejects a report_id outside `[A-Za-z0-9-]` and bytes
    /// that are not a JSON object with that report_id.
    pub fn push(&mut self, report_id: &str, json: &[u8]) -> Result<EntryId, SpoolError> {
        self.push_at(report_id, json, SystemTime::now())
    }

    /// `push` with an injected clock (tests).
    fn push_at(
        &mut self,
        report_id: &str,
        json: &[u8],
        now: SystemTime,
    ) -> Result<EntryId, SpoolError> {
        validate_report_id(report_id)?;
        match serde_json::from_slice::<ReportIdOnly>(json) {
            Ok(parsed) if parsed.report_id == report_id => {}
            Ok(parsed) => {
                return Err(SpoolError::InvalidReport {
                    report_id: report_id.to_owned(),
                    reason: format!(
                        "the JSON's report_id is {:?}, not the one given",
                        shorten(&parsed.report_id)
                    ),
                });
            }
            Err(e) => {
                return Err(SpoolError::InvalidReport {
                    report_id: report_id.to_owned(),
                    reason: format!("not a JSON object with a string report_id: {e}"),
                });
            }
        }
        if let Some((id, _)) = self.entries.iter().find(|(_, e)| e.report_id == report_id) {
            debug!(entry = %id, "spool: report already spooled; push is a no-op");
            return Ok(id.clone());
        }

        let millis = millis_of(now)
            .max(self.last_millis.saturating_add(1))
            .min(MAX_MILLIS);
        let id = EntryId::new(millis, report_id);
        let path = self.entry_path(&id);
        let mut tmp = tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempfile_in(&self.dir)
            .map_err(io_err("create a temporary file in", &self.dir))?;
        let tmp_path = tmp.path().to_path_buf();
        // On any error below the temporary file is deleted when `tmp` drops.
        tmp.write_all(json).map_err(io_err("write", &tmp_path))?;
        tmp.as_file()
            .sync_all()
            .map_err(io_err("fsync", &tmp_path))?;
        tmp.persist_noclobber(&path).map_err(|e| SpoolError::Io {
            op: "rename a temporary file to",
            path: path.clone(),
            source: e.error,
        })?;
        if let Err(e) = sync_dir(&self.dir) {
            // Not known to be durable: undo, so that the caller's retry starts clean.
            let _ = fs::remove_file(&path);
            return Err(e);
        }

        let bytes = json.len() as u64;
        self.entries.insert(
            id.clone(),
            Entry {
                report_id: report_id.to_owned(),
                bytes,
                millis,
                acked: BTreeSet::new(),
            },
        );
        self.bytes += bytes;
        self.last_millis = millis;
        self.counters.spooled += 1;
        if bytes > self.max_bytes {
            warn!(
                entry = %id,
                bytes,
                max_bytes = self.max_bytes,
                "spool: a report larger than max_bytes on its own; kept as the newest entry \
                 (it leaves when acknowledged, or as the oldest when the next report arrives)"
            );
        }
        self.enforce_bounds(now);
        Ok(id)
    }

    /// Entries the sink still has to send, oldest first (those it acknowledged are left out).
    /// An unknown sink has nothing pending.
    pub fn pending_for(&self, sink: &str) -> Vec<Pending> {
        if !self.is_sink(sink) {
            debug!(sink, "spool: pending_for an unknown sink");
            return Vec::new();
        }
        self.entries
            .iter()
            .filter(|(_, e)| !e.acked.contains(sink))
            .map(|(id, e)| Pending {
                id: id.clone(),
                report_id: e.report_id.clone(),
                path: self.entry_path(id),
                bytes: e.bytes,
                created: time_of(e.millis),
            })
            .collect()
    }

    /// The sink acknowledged this entry. The acknowledgement is durable when this returns Ok:
    /// after a crash the entry is not resent to this sink. When every sink has acknowledged the
    /// entry, its file is removed. Acknowledging twice, or an entry no longer spooled, is Ok.
    pub fn ack(&mut self, id: &EntryId, sink: &str) -> Result<(), SpoolError> {
        if !self.is_sink(sink) {
            return Err(SpoolError::UnknownSink {
                sink: shorten(sink),
                known: self.sinks.join(", "),
            });
        }
        let Some(entry) = self.entries.get(id) else {
            debug!(entry = %id, sink, "spool: ack of an entry no longer spooled");
            return Ok(());
        };
        if entry.acked.contains(sink) {
            return Ok(());
        }
        let completes = self
            .sinks
            .iter()
            .all(|s| s == sink || entry.acked.contains(s));
        if completes {
            // No marker: removing the entry file is the durable acknowledgement.
            self.remove_files(id, &entry.acked)?;
            if let Err(e) = sync_dir(&self.dir) {
                warn!(
                    entry = %id,
                    error = %e,
                    "spool: removal not fsynced; after a power loss the report may be sent \
                     again (collectors drop duplicates by report_id)"
                );
            }
            if let Some(entry) = self.entries.remove(id) {
                self.bytes -= entry.bytes;
            }
            self.counters.acknowledged += 1;
            debug!(entry = %id, "spool: acknowledged by every sink; removed");
            return Ok(());
        }

        let marker = self.marker_path(id, sink);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&marker)
            .map_err(io_err("create acknowledgement marker", &marker))?;
        file.sync_all().map_err(io_err("fsync", &marker))?;
        sync_dir(&self.dir)?;
        if let Some(entry) = self.entries.get_mut(id) {
            entry.acked.insert(sink.to_owned());
        }
        debug!(entry = %id, sink, "spool: acknowledged");
        Ok(())
    }

    /// The entry's bytes, as pushed.
    pub fn read(&self, id: &EntryId) -> Result<Vec<u8>, SpoolError> {
        if !self.entries.contains_key(id) {
            return Err(SpoolError::UnknownEntry(id.clone()));
        }
        let path = self.entry_path(id);
        fs::read(&path).map_err(io_err("read", &path))
    }

    /// Enforce the bounds as of `now` (push and open call it too): first drop every entry older
    /// than `max_age`, then the oldest entries while the spool holds more than `max_bytes`,
    /// never the newest. Each drop is counted and logged at warn. Returns how many were dropped.
    pub fn enforce_bounds(&mut self, now: SystemTime) -> usize {
        let mut dropped = 0;
        // Ids sort by creation time: the oldest entry is always the first.
        while let Some((id, entry)) = self.entries.first_key_value() {
            let age = now
                .duration_since(time_of(entry.millis))
                .unwrap_or(Duration::ZERO);
            if age <= self.max_age {
                break;
            }
            let id = id.clone();
            self.drop_entry(&id, DropReason::Age, now);
            dropped += 1;
        }
        while self.bytes > self.max_bytes && self.entries.len() > 1 {
            let Some(id) = self.entries.keys().next().cloned() else {
                break;
            };
            self.drop_entry(&id, DropReason::Size, now);
            dropped += 1;
        }
        if dropped > 0
            && let Err(e) = sync_dir(&self.dir)
        {
            warn!(error = %e, "spool: drops not fsynced; dropped reports may come back after a power loss");
        }
        dropped
    }

    pub fn stats(&self) -> SpoolStats {
        SpoolStats {
            entries: self.entries.len() as u64,
            bytes: self.bytes,
            ..self.counters.clone()
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn sinks(&self) -> &[String] {
        &self.sinks
    }

    fn is_sink(&self, sink: &str) -> bool {
        self.sinks.iter().any(|s| s == sink)
    }

    fn entry_path(&self, id: &EntryId) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn marker_path(&self, id: &EntryId, sink: &str) -> PathBuf {
        self.dir.join(format!("{id}.ack.{sink}"))
    }

    /// Delete an entry's file, then its markers. The entry file decides: its error is returned
    /// (nothing changed); a marker that cannot be deleted is logged, and `open` deletes it as
    /// an orphan. Does not fsync the directory.
    fn remove_files(&self, id: &EntryId, acked: &BTreeSet<String>) -> Result<(), SpoolError> {
        let path = self.entry_path(id);
        remove_if_exists(&path).map_err(io_err("remove", &path))?;
        for sink in acked {
            let marker = self.marker_path(id, sink);
            if let Err(e) = remove_if_exists(&marker) {
                warn!(path = %marker.display(), error = %e, "spool: cannot remove an acknowledgement marker");
            }
        }
        Ok(())
    }

    fn drop_entry(&mut self, id: &EntryId, reason: DropReason, now: SystemTime) {
        let Some(entry) = self.entries.remove(id) else {
            return;
        };
        self.bytes -= entry.bytes;
        match reason {
            DropReason::Age => self.counters.dropped_age += 1,
            DropReason::Size => self.counters.dropped_size += 1,
        }
        let not_acknowledged_by: Vec<&str> = self
            .sinks
            .iter()
            .filter(|s| !entry.acked.contains(*s))
            .map(String::as_str)
            .collect();
        let age_secs = now
            .duration_since(time_of(entry.millis))
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let bound = match reason {
            DropReason::Age => "max_age",
            DropReason::Size => "max_bytes",
        };
        warn!(
            entry = %id,
            report_id = %entry.report_id,
            bytes = entry.bytes,
            age_secs,
            bound,
            max_bytes = self.max_bytes,
            max_age_secs = self.max_age.as_secs(),
            not_acknowledged_by = ?not_acknowledged_by,
            "spool: dropped a report before every sink acknowledged it"
        );
        if let Err(e) = self.remove_files(id, &entry.acked) {
            error!(
                entry = %id,
                error = %e,
                "spool: cannot delete a dropped entry; it stays on disk and is resent after the next start"
            );
        }
    }

    /// Rebuild the index from the directory (see `open`).
    fn recover(&mut self) -> Result<(), SpoolError> {
        let mut changed = false;
        // Stems of every entry-named regular file, loaded or skipped as corrupt: markers of a
        // skipped entry are left with it, not deleted as orphans.
        let mut entry_stems = HashSet::new();
        let mut markers: Vec<(String, String)> = Vec::new();

        let listing = fs::read_dir(&self.dir).map_err(io_err("list directory", &self.dir))?;
        for item in listing {
            let item = match item {
                Ok(item) => item,
                Err(e) => {
                    warn!(dir = %self.dir.display(), error = %e, "spool: cannot read a directory entry; skipped");
                    self.counters.skipped_files += 1;
                    continue;
                }
            };
            let path = item.path();
            let Ok(name) = item.file_name().into_string() else {
                warn!(path = %path.display(), "spool: skipped a file that is not the spool's (left in place)");
                self.counters.skipped_files += 1;
                continue;
            };
            if name == LOCK_NAME {
                continue;
            }
            if name.starts_with(TMP_PREFIX) {
                match remove_if_exists(&path) {
                    Ok(()) => {
                        info!(path = %path.display(), "spool: deleted the temporary file of a write a crash interrupted");
                        changed = true;
                    }
                    Err(e) => {
                        warn!(path = %path.display(), error = %e, "spool: cannot delete a leftover temporary file");
                    }
                }
                continue;
            }
            // Without following symlinks: a symlink is not the spool's.
            let is_file = item.file_type().map(|t| t.is_file()).unwrap_or(false);
            match parse_name(&name) {
                Some(Name::Entry {
                    stem,
                    millis,
                    report_id,
                }) if is_file => {
                    entry_stems.insert(stem.to_owned());
                    match check_entry_file(&path, report_id) {
                        Ok(bytes) => {
                            self.entries.insert(
                                EntryId(stem.to_owned()),
                                Entry {
                                    report_id: report_id.to_owned(),
                                    bytes,
                                    millis,
                                    acked: BTreeSet::new(),
                                },
                            );
                        }
                        Err(reason) => {
                            warn!(path = %path.display(), reason, "spool: skipped a corrupt entry (left in place)");
                            self.counters.skipped_files += 1;
                        }
                    }
                }
                Some(Name::Marker { stem, sink }) if is_file => {
                    markers.push((stem.to_owned(), sink.to_owned()));
                }
                _ => {
                    warn!(path = %path.display(), "spool: skipped a file that is not the spool's (left in place)");
                    self.counters.skipped_files += 1;
                }
            }
        }

        for (stem, sink) in markers {
            let id = EntryId(stem);
            if let Some(entry) = self.entries.get_mut(&id) {
                entry.acked.insert(sink);
            } else if !entry_stems.contains(id.as_str()) {
                // The entry was removed and a crash came before its markers were.
                let marker = self.marker_path(&id, &sink);
                match remove_if_exists(&marker) {
                    Ok(()) => {
                        debug!(path = %marker.display(), "spool: deleted an orphan acknowledgement marker");
                        changed = true;
                    }
                    Err(e) => {
                        warn!(path = %marker.display(), error = %e, "spool: cannot delete an orphan acknowledgement marker");
                    }
                }
            }
        }

        // Entries every configured sink acknowledged (a sink left the configuration, or a
        // removal was interrupted): finish the removal.
        let complete: Vec<EntryId> = self
            .entries
            .iter()
            .filter(|(_, e)| self.sinks.iter().all(|s| e.acked.contains(s)))
            .map(|(id, _)| id.clone())
            .collect();
        for id in complete {
            let Some(entry) = self.entries.get(&id) else {
                continue;
            };
            match self.remove_files(&id, &entry.acked) {
                Ok(()) => {
                    info!(entry = %id, "spool: removed an entry every sink had acknowledged");
                    self.entries.remove(&id);
                    changed = true;
                }
                Err(e) => {
                    // Kept in the index, but with nothing left to send.
                    warn!(entry = %id, error = %e, "spool: cannot remove an acknowledged entry");
                }
            }
        }
        if changed {
            sync_dir(&self.dir)?;
        }

        self.bytes = self.entries.values().map(|e| e.bytes).sum();
        self.last_millis = self.entries.values().map(|e| e.millis).max().unwrap_or(0);
        self.counters.recovered = self.entries.len() as u64;
        Ok(())
    }
}

enum Name<'a> {
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
fn parse_name(name: &str) -> Option<Name<'_>> {
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
fn check_entry_file(path: &Path, report_id: &str) -> Result<u64, String> {
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

fn validate_report_id(report_id: &str) -> Result<(), SpoolError> {
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
fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let mut short: String = s.chars().take(MAX).collect();
        short.push('…');
        short
    }
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SpoolError {
    let path = path.to_path_buf();
    move |source| SpoolError::Io { op, path, source }
}

/// fsync a directory, so that the names created, renamed or deleted in it are durable.
fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn millis_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(MAX_MILLIS))
        .unwrap_or(0)
        .min(MAX_MILLIS)
}

fn time_of(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn config(dir: &Path, sinks: &[&str]) -> SpoolConfig {
        SpoolConfig {
            dir: dir.to_path_buf(),
            max_bytes: 1 << 20,
            max_age: HOUR,
            sinks: sinks.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn report(report_id: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "schema_version": "1.0",
            "report_id": report_id,
            "verdict": {"status": "healthy"},
        }))
        .unwrap()
    }

    /// A report of exactly `size` bytes.
    fn report_of_size(report_id: &str, size: usize) -> Vec<u8> {
        let base = serde_json::to_vec(&serde_json::json!({"report_id": report_id, "pad": ""}))
            .unwrap()
            .len();
        assert!(size >= base, "size {size} below the minimum {base}");
        let json = serde_json::to_vec(
            &serde_json::json!({"report_id": report_id, "pad": "x".repeat(size - base)}),
        )
        .unwrap();
        assert_eq!(json.len(), size);
        json
    }

    /// The file names in the directory, sorted, without the lock file.
    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != LOCK_NAME)
            .collect();
        names.sort();
        names
    }

    fn report_ids(pending: &[Pending]) -> Vec<&str> {
        pending.iter().map(|p| p.report_id.as_str()).collect()
    }

    #[test]
    fn push_pending_ack_with_two_sinks() {
        let tmp = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(config(tmp.path(), &["http", "s3"])).unwrap();
        let a = spool.push("r-a", &report("r-a")).unwrap();
        let b = spool.push("r-b", &report("r-b")).unwrap();
        assert!(a < b);
        assert_eq!(
            names(tmp.path()),
            vec![format!("{a}.json"), format!("{b}.json")]
        );
        assert_eq!(spool.read(&a).unwrap(), report("r-a"));
        assert_eq!(report_ids(&spool.pending_for("http")), ["r-a", "r-b"]);
        assert_eq!(report_ids(&spool.pending_for("s3")), ["r-a", "r-b"]);
        let p = &spool.pending_for("http")[0];
        assert_eq!(p.path, tmp.path().join(format!("{a}.json")));
        assert_eq!(p.bytes, report("r-a").len() as u64);

        spool.ack(&a, "http").unwrap();
        assert_eq!(report_ids(&spool.pending_for("http")), ["r-b"]);
        assert_eq!(report_ids(&spool.pending_for("s3")), ["r-a", "r-b"]);
        assert!(tmp.path().join(format!("{a}.json")).exists());
        assert!(tmp.path().join(format!("{a}.ack.http")).exists());
        // Acknowledging twice changes nothing.
        spool.ack(&a, "http").unwrap();
        assert_eq!(spool.stats().acknowledged, 0);

        spool.ack(&a, "s3").unwrap();
        assert_eq!(report_ids(&spool.pending_for("s3")), ["r-b"]);
        // The entry and its marker are gone; the other entry is untouched.
        assert_eq!(names(tmp.path()), vec![format!("{b}.json")]);
        assert!(matches!(spool.read(&a), Err(SpoolError::UnknownEntry(_))));
        // An ack of an entry no longer spooled is not an error.
        spool.ack(&a, "http").unwrap();

        let stats = spool.stats();
        assert_eq!(
            stats,
            SpoolStats {
                spooled: 2,
                acknowledged: 1,
                entries: 1,
                bytes: report("r-b").len() as u64,
                ..SpoolStats::default()
            }
        );
    }

    #[test]
    fn reopen_recovers_unacknowledged_entries_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let id = uuid::Uuid::new_v4().to_string();
        let (e1, e2, e3);
        {
            let mut spool = Spool::open(config(tmp.path(), &["http", "s3"])).unwrap();
            e1 = spool.push("r1", &report("r1")).unwrap();
            e2 = spool.push("r2", &report("r2")).unwrap();
            e3 = spool.push(&id, &report(&id)).unwrap();
            spool.ack(&e1, "http").unwrap();
            spool.ack(&e2, "http").unwrap();
            spool.ack(&e2, "s3").unwrap();
            // Dropped without any shutdown step, as kill -9 would leave it.
        }
        let spool = Spool::open(config(tmp.path(), &["http", "s3"])).unwrap();
        assert_eq!(report_ids(&spool.pending_for("http")), [id.as_str()]);
        assert_eq!(report_ids(&spool.pending_for("s3")), ["r1", id.as_str()]);
        let ids: Vec<EntryId> = spool.pending_for("s3").into_iter().map(|p| p.id).collect();
        assert_eq!(ids, [e1.clone(), e3.clone()]);
        assert_eq!(spool.read(&e1).unwrap(), report("r1"));
        assert_eq!(spool.read(&e3).unwrap(), report(&id));
        let stats = spool.stats();
        assert_eq!(stats.recovered, 2);
        assert_eq!(stats.entries, 2);
        assert_eq!(stats.bytes, (report("r1").len() + report(&id).len()) as u64);
        assert_eq!(stats.spooled, 0);

        // A new push after reopening sorts after the recovered entries.
        let mut spool = spool;
        let e4 = spool.push("r4", &report("r4")).unwrap();
        assert!(e4 > e3);
        assert_eq!(
            report_ids(&spool.pending_for("s3")),
            ["r1", id.as_str(), "r4"]
        );
    }

    #[test]
    fn second_open_of_a_held_directory_fails() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(config(tmp.path(), &["http"])).unwrap();
        let err = Spool::open(config(tmp.path(), &["http"])).unwrap_err();
        assert!(matches!(err, SpoolError::Locked { .. }), "{err}");
        drop(spool);
        Spool::open(config(tmp.path(), &["http"])).unwrap();
    }

    #[test]
    fn open_deletes_leftover_temp_files_and_orphan_markers() {
        let tmp = tempfile::tempdir().unwrap();
        let kept;
        {
            let mut spool = Spool::open(config(tmp.path(), &["http", "s3"])).unwrap();
            kept = spool.push("r1", &report("r1")).unwrap();
        }
        // A write a crash interrupted before its rename, and the marker of an entry whose
        // removal a crash interrupted after deleting the entry file.
        fs::write(tmp.path().join(".tmp-Ab3xYz"), b"{\"report_id\": \"r").unwrap();
        fs::write(tmp.path().join("0001700000000000-gone.ack.http"), b"").unwrap();

        let spool = Spool::open(config(tmp.path(), &["http", "s3"])).unwrap();
        assert_eq!(names(tmp.path()), vec![format!("{kept}.json")]);
        assert_eq!(report_ids(&spool.pending_for("http")), ["r1"]);
        assert_eq!(spool.stats().skipped_files, 0);
    }

    #[test]
    fn open_finishes_removal_of_an_entry_every_sink_acknowledged() {
        let tmp = tempfile::tempdir().unwrap();
        let (e1, e2);
        {
            let mut spool = Spool::open(config(tmp.path(), &["http", "s3"])).unwrap();
            e1 = spool.push("r1", &report("r1")).unwrap();
            e2 = spool.push("r2", &report("r2")).unwrap();
            spool.ack(&e1, "http").unwrap();
        }
        // As if the last acknowledgement had been written but the entry not yet removed.
        fs::write(tmp.path().join(format!("{e1}.ack.s3")), b"").unwrap();
        let spool = Spool::open(config(tmp.path(), &["http", "s3"])).unwrap();
        assert_eq!(names(tmp.path()), vec![format!("{e2}.json")]);
        assert_eq!(spool.stats().entries, 1);
    }

    #[test]
    fn sinks_joining_and_leaving_the_configuration() {
        let tmp = tempfile::tempdir().unwrap();
        let (e1, e2);
        {
            let mut spool = Spool::open(config(tmp.path(), &["http", "s3"])).unwrap();
            e1 = spool.push("r1", &report("r1")).unwrap();
            e2 = spool.push("r2", &report("r2")).unwrap();
            spool.ack(&e1, "http").unwrap();
            spool.ack(&e2, "s3").unwrap();
        }
        {
            // A new sink is sent everything still spooled.
            let spool = Spool::open(config(tmp.path(), &["http", "s3", "dir"])).unwrap();
            assert_eq!(report_ids(&spool.pending_for("dir")), ["r1", "r2"]);
            assert_eq!(report_ids(&spool.pending_for("http")), ["r2"]);
        }
        // s3 left: r1, which http acknowledged, is done; r2 still waits for http, and the s3
        // marker goes with it when it leaves.
        let mut spool = Spool::open(config(tmp.path(), &["http"])).unwrap();
        assert_eq!(report_ids(&spool.pending_for("http")), ["r2"]);
        assert_eq!(
            names(tmp.path()),
            vec![format!("{e2}.ack.s3"), format!("{e2}.json")]
        );
        spool.ack(&e2, "http").unwrap();
        assert!(names(tmp.path()).is_empty());
    }

    #[test]
    fn garbage_in_the_directory_is_skipped_and_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let good;
        {
            let mut spool = Spool::open(config(tmp.path(), &["http"])).unwrap();
            good = spool.push("r1", &report("r1")).unwrap();
        }
        let dir = tmp.path();
        fs::write(dir.join("notes.txt"), b"operator's notes").unwrap();
        fs::write(dir.join("123-short.json"), report("short")).unwrap();
        fs::write(dir.join("0001700000000000-bad_id.json"), report("bad_id")).unwrap();
        // Entry names with corrupt content: not JSON, empty, another report_id, an array.
        fs::write(
            dir.join("0001700000000001-torn.json"),
            b"{\"report_id\":\"torn\",",
        )
        .unwrap();
        fs::write(dir.join("0001700000000002-empty.json"), b"").unwrap();
        fs::write(dir.join("0001700000000003-mine.json"), report("theirs")).unwrap();
        fs::write(dir.join("0001700000000004-arr.json"), b"[\"arr\"]").unwrap();
        fs::write(dir.join("0001700000000005-bin.json"), [0xff, 0xfe, 0x00]).unwrap();
        // Its marker stays with it rather than being deleted as an orphan.
        fs::write(dir.join("0001700000000001-torn.ack.http"), b"").unwrap();
        // A marker with a bad sink name, a subdirectory and a symlink with an entry's name.
        fs::write(dir.join(format!("{good}.ack.a b")), b"").unwrap();
        fs::create_dir(dir.join("0001700000000006-subdir.json")).unwrap();
        std::os::unix::fs::symlink(
            dir.join(format!("{good}.json")),
            dir.join("0001700000000007-link.json"),
        )
        .unwrap();
        let before = names(dir);

        let mut spool = Spool::open(config(dir, &["http"])).unwrap();
        assert_eq!(report_ids(&spool.pending_for("http")), ["r1"]);
        let stats = spool.stats();
        assert_eq!(stats.entries, 1);
        assert_eq!(stats.bytes, report("r1").len() as u64);
        assert_eq!(stats.skipped_files, 11);
        assert_eq!(names(dir), before, "nothing foreign is deleted");

        // The spool works normally around them.
        let e2 = spool.push("r2", &report("r2")).unwrap();
        spool.ack(&good, "http").unwrap();
        assert_eq!(report_ids(&spool.pending_for("http")), ["r2"]);
        assert_eq!(spool.read(&e2).unwrap(), report("r2"));
    }

    #[test]
    fn size_bound_drops_the_oldest_first_and_counts() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = config(tmp.path(), &["http", "s3"]);
        cfg.max_bytes = 300;
        let mut spool = Spool::open(cfg).unwrap();
        let e1 = spool.push("r1", &report_of_size("r1", 100)).unwrap();
        spool.ack(&e1, "http").unwrap();
        spool.push("r2", &report_of_size("r2", 100)).unwrap();
        spool.push("r3", &report_of_size("r3", 100)).unwrap();
        assert_eq!(spool.stats().dropped_size, 0);
        assert_eq!(spool.stats().bytes, 300);

        let e4 = spool.push("r4", &report_of_size("r4", 100)).unwrap();
        assert_eq!(report_ids(&spool.pending_for("s3")), ["r2", "r3", "r4"]);
        assert_eq!(report_ids(&spool.pending_for("http")), ["r2", "r3", "r4"]);
        let stats = spool.stats();
        assert_eq!((stats.dropped_size, stats.dropped_age), (1, 0));
        assert_eq!((stats.entries, stats.bytes), (3, 300));
        // The dropped entry's file and marker are gone.
        assert!(!names(tmp.path()).iter().any(|n| n.starts_with(e1.as_str())));

        // One bigger report pushes out as many of the oldest as needed.
        spool.push("r5", &report_of_size("r5", 250)).unwrap();
        assert_eq!(report_ids(&spool.pending_for("s3")), ["r5"]);
        assert_eq!(spool.stats().dropped_size, 4);
        assert!(matches!(spool.read(&e4), Err(SpoolError::UnknownEntry(_))));
        assert_eq!(names(tmp.path()).len(), 1);
    }

    #[test]
    fn age_bound_drops_old_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = config(tmp.path(), &["http"]);
        cfg.max_age = Duration::from_secs(30 * 60);
        let mut spool = Spool::open(cfg).unwrap();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let min = Duration::from_secs(60);
        let e1 = spool.push_at("r1", &report("r1"), t0).unwrap();
        spool.push_at("r2", &report("r2"), t0 + 10 * min).unwrap();
        spool.push_at("r3", &report("r3"), t0 + 20 * min).unwrap();
        assert_eq!(spool.pending_for("http")[0].created, t0);

        // Exactly max_age old is still kept.
        assert_eq!(spool.enforce_bounds(t0 + 30 * min), 0);
        assert_eq!(spool.enforce_bounds(t0 + 35 * min), 1);
        assert_eq!(report_ids(&spool.pending_for("http")), ["r2", "r3"]);
        assert!(!tmp.path().join(format!("{e1}.json")).exists());
        // The age bound applies to the newest entry too.
        assert_eq!(spool.enforce_bounds(t0 + 51 * min), 2);
        let stats = spool.stats();
        assert_eq!((stats.dropped_age, stats.dropped_size), (3, 0));
        assert_eq!((stats.entries, stats.bytes), (0, 0));
        assert!(names(tmp.path()).is_empty());
    }

    #[test]
    fn ids_follow_push_order_even_when_the_clock_steps_back() {
        let tmp = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(config(tmp.path(), &["http"])).unwrap();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let a = spool.push_at("zz", &report("zz"), t0).unwrap();
        let b = spool.push_at("aa", &report("aa"), t0).unwrap();
        let c = spool.push_at("mm", &report("mm"), t0 - HOUR).unwrap();
        assert!(a < b && b < c);
        assert_eq!(a.as_str(), "0001800000000000-zz");
        assert_eq!(report_ids(&spool.pending_for("http")), ["zz", "aa", "mm"]);
    }

    #[test]
    fn pushing_a_spooled_report_id_again_is_a_no_op() {
        let tmp = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(config(tmp.path(), &["http"])).unwrap();
        let a = spool.push("r1", &report("r1")).unwrap();
        assert_eq!(spool.push("r1", &report("r1")).unwrap(), a);
        assert_eq!(names(tmp.path()).len(), 1);
        assert_eq!(spool.stats().spooled, 1);
    }

    #[test]
    fn invalid_report_ids_and_reports_are_rejected() {
        let tmp = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(config(tmp.path(), &["http"])).unwrap();
        let long = "a".repeat(MAX_REPORT_ID_LEN + 1);
        for bad in [
            "",
            "../etc/passwd",
            "a/b",
            "a.json",
            "a b",
            "a_b",
            "ü",
            "a\0b",
            ".tmp-x",
            long.as_str(),
        ] {
            let json = serde_json::to_vec(&serde_json::json!({ "report_id": bad })).unwrap();
            let err = spool.push(bad, &json).unwrap_err();
            assert!(
                matches!(err, SpoolError::InvalidReportId(_)),
                "{bad:?}: {err}"
            );
        }
        spool
            .push(
                &"a".repeat(MAX_REPORT_ID_LEN),
                &report(&"a".repeat(MAX_REPORT_ID_LEN)),
            )
            .unwrap();

        for json in [
            report("other").as_slice(),
            b"not json",
            b"[\"r1\"]",
            b"{\"report_id\": 1}",
            b"{\"schema_version\": \"1.0\"}",
            b"{\"report_id\": \"r1\"} trailing",
        ] {
            let err = spool.push("r1", json).unwrap_err();
            assert!(matches!(err, SpoolError::InvalidReport { .. }), "{err}");
        }
        assert_eq!(
            names(tmp.path()).len(),
            1,
            "only the valid push wrote a file"
        );
        assert_eq!(spool.stats().spooled, 1);
    }

    #[test]
    fn invalid_configurations_and_unknown_sinks() {
        let tmp = tempfile::tempdir().unwrap();
        for sinks in [&[][..], &["a/b"], &[""], &["a.b"], &["http", "http"]] {
            let err = Spool::open(config(tmp.path(), sinks)).unwrap_err();
            assert!(
                matches!(err, SpoolError::Config(_) | SpoolError::InvalidSinkName(_)),
                "{sinks:?}: {err}"
            );
        }
        let mut spool = Spool::open(config(tmp.path(), &["http", "local_dir"])).unwrap();
        let a = spool.push("r1", &report("r1")).unwrap();
        assert!(spool.pending_for("nope").is_empty());
        let err = spool.ack(&a, "nope").unwrap_err();
        assert!(matches!(err, SpoolError::UnknownSink { .. }), "{err}");
        assert_eq!(report_ids(&spool.pending_for("local_dir")), ["r1"]);
    }

    #[test]
    fn a_report_bigger_than_max_bytes_is_kept_until_acknowledged_or_displaced() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = config(tmp.path(), &["http", "s3"]);
        cfg.max_bytes = 100;
        let mut spool = Spool::open(cfg.clone()).unwrap();
        spool.push("small1", &report_of_size("small1", 60)).unwrap();

        // Older entries go; the oversized newest stays, over the bound by itself.
        let big = spool.push("big1", &report_of_size("big1", 500)).unwrap();
        assert_eq!(report_ids(&spool.pending_for("http")), ["big1"]);
        let stats = spool.stats();
        assert_eq!(
            (stats.entries, stats.bytes, stats.dropped_size),
            (1, 500, 1)
        );
        assert_eq!(spool.enforce_bounds(SystemTime::now()), 0);

        // It survives a restart too.
        drop(spool);
        let mut spool = Spool::open(cfg).unwrap();
        assert_eq!(report_ids(&spool.pending_for("s3")), ["big1"]);
        assert_eq!(spool.stats().bytes, 500);

        // It leaves when every sink acknowledged it...
        spool.ack(&big, "http").unwrap();
        assert_eq!(spool.read(&big).unwrap(), report_of_size("big1", 500));
        spool.ack(&big, "s3").unwrap();
        assert_eq!(spool.stats().entries, 0);
        assert_eq!(spool.stats().dropped_size, 0);

        // ... or, as the oldest, when the next report arrives.
        spool.push("big2", &report_of_size("big2", 500)).unwrap();
        spool.push("small2", &report_of_size("small2", 60)).unwrap();
        assert_eq!(report_ids(&spool.pending_for("http")), ["small2"]);
        assert_eq!(spool.stats().dropped_size, 1);
        assert_eq!(spool.stats().bytes, 60);
        assert_eq!(names(tmp.path()).len(), 1);
    }
}
