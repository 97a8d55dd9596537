//! The on-disk spool of reports waiting to be shipped (issue 6, "Nothing lost").
//!
//! A report enters the spool before any sink sees it, and leaves it only when every configured
//! sink acknowledged it, or when a bound (age, then size; oldest first) drops it. Every drop is
//! counted in [`SpoolStats`] and logged at warn. The spool is plain blocking `std::fs` with
//! fsyncs: the daemon calls it from `spawn_blocking` (or a thread of its own), never directly on
//! the runtime's thread.
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
//! - `dead-letter/<sink>/<report_id>.json` and `.why`: reports that sink refused for good
//!   (see `dead_letter.rs`), bounded by `dead_letter_max_age` and `dead_letter_max_bytes`; the
//!   entries' scan leaves the directory alone.
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
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{debug, info, warn};

mod dead_letter;
mod entry;
mod retention;

pub use dead_letter::DEAD_LETTER_DIR;

pub use entry::validate_sink_name;

use entry::{ReportIdOnly, shorten, validate_report_id};

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
    /// Bound on the dead letters' bytes (reports and reasons); the oldest go first, never the newest.
    pub dead_letter_max_bytes: u64,
    /// Dead letters older than this are deleted.
    pub dead_letter_max_age: Duration,
}

/// `[spool] dead_letter_max_bytes` by default: 16 MiB, a few thousand refused reports.
pub const DEFAULT_DEAD_LETTER_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// `[spool] dead_letter_max_age` by default: 30 days, long enough to be noticed and read.
pub const DEFAULT_DEAD_LETTER_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

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
    /// Dead letters deleted since open because they were older than `dead_letter_max_age`.
    pub dead_letters_pruned_age: u64,
    /// Dead letters deleted since open to keep the directory within `dead_letter_max_bytes`.
    pub dead_letters_pruned_size: u64,
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

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    max_age: Duration,
    sinks: Vec<String>,
    dead_letter_max_bytes: u64,
    dead_letter_max_age: Duration,
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
            dead_letter_max_bytes,
            dead_letter_max_age,
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
            dead_letter_max_bytes,
            dead_letter_max_age,
            entries: BTreeMap::new(),
            bytes: 0,
            last_millis: 0,
            counters: SpoolStats::default(),
            _lock: lock,
        };
        spool.recover()?;
        spool.enforce_bounds(SystemTime::now());
        spool.prune_dead_letters(SystemTime::now());
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
        self.prune_dead_letters(now);
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
mod tests;
