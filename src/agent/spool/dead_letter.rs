//! Reports a sink refused for good (a collector's 4xx other than 401, 403, 404, 408 and 429)
//! leave that sink's queue for `<spool>/dead-letter/<sink>/<report_id>.json`, with
//! `<report_id>.why` beside it (the status and the collector's one-line reason). The copy is
//! durable before the entry is acknowledged for the sink, so a crash in between sends the report
//! again (and it is refused again), never loses it. The other sinks keep the entry as usual.
//!
//! The directory is bounded like the spool: a dead letter (the `.json` and its `.why`) older
//! than `dead_letter_max_age` is deleted, then the oldest ones while all of them together weigh
//! more than `dead_letter_max_bytes`; never the newest, so the last refusal can always be read.
//! Each deletion is logged and counted ([`super::SpoolStats::dead_letters_pruned_age`], `_size`).
//! The bounds are enforced when the spool opens, after every push (once per run, so age works
//! without new refusals) and after every new dead letter. The directory is scanned each time
//! rather than indexed: people read and delete dead letters by hand, and the scan sees that.
//! Only names the spool writes are deleted; anything else there is left alone and not counted.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tracing::{debug, info, warn};

use super::entry::{validate_report_id, validate_sink_name};
use super::{EntryId, Spool, SpoolError, TMP_PREFIX, io_err, remove_if_exists, shorten, sync_dir};

/// The subdirectory of the spool that holds refused reports; the spool's scan leaves it alone.
pub const DEAD_LETTER_DIR: &str = "dead-letter";

impl Spool {
    /// Moves the entry aside for `sink`: copy (and `.why`) under `dead-letter/<sink>/`, then the
    /// sink's acknowledgement. Returns the copy's path. An entry no longer spooled is Ok (its
    /// path is returned, nothing is written).
    pub fn dead_letter(
        &mut self,
        id: &EntryId,
        sink: &str,
        why: &str,
    ) -> Result<PathBuf, SpoolError> {
        if !self.is_sink(sink) {
            return Err(SpoolError::UnknownSink {
                sink: shorten(sink),
                known: self.sinks.join(", "),
            });
        }
        let Some(entry) = self.entries.get(id) else {
            return Ok(self.dead_letter_dir(sink).join(format!("{id}.json")));
        };
        let report_id = entry.report_id.clone();
        let json = self.read(id)?;
        let root = self.dir.join(DEAD_LETTER_DIR);
        let dir = root.join(sink);
        fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        let path = dir.join(format!("{report_id}.json"));
        write_durably(
            &dir,
            &format!("{report_id}.why"),
            format!("{why}\n").as_bytes(),
        )?;
        write_durably(&dir, &format!("{report_id}.json"), &json)?;
        sync_dir(&root)?;
        self.ack(id, sink)?;
        self.prune_dead_letters_keeping(SystemTime::now(), Some((sink, &report_id)));
        Ok(path)
    }

    /// Enforce the dead-letter bounds as of `now`: delete the dead letters older than
    /// `dead_letter_max_age`, then the oldest while they weigh more than `dead_letter_max_bytes`,
    /// never the newest. Returns how many were deleted. A directory that cannot be read is
    /// logged and left as it is (the bounds are tried again at the next push).
    pub fn prune_dead_letters(&mut self, now: SystemTime) -> usize {
        self.prune_dead_letters_keeping(now, None)
    }

    /// `prune_dead_letters`, never deleting the dead letter `keep` (sink, report_id): the one
    /// just written, even if the clock says another is newer.
    fn prune_dead_letters_keeping(&mut self, now: SystemTime, keep: Option<(&str, &str)>) -> usize {
        let root = self.dir.join(DEAD_LETTER_DIR);
        let mut letters = match scan_dead_letters(&root) {
            Ok(letters) => letters,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return 0,
            Err(e) => {
                warn!(dir = %root.display(), error = %e, "spool: cannot read the dead-letter directory; its bounds are not enforced this time");
                return 0;
            }
        };
        // Oldest first; the newest (or the one to keep) is never deleted.
        letters
            .sort_by(|a, b| (a.time, &a.sink, &a.report_id).cmp(&(b.time, &b.sink, &b.report_id)));
        if let Some(pos) = keep.and_then(|(sink, id)| {
            letters
                .iter()
                .position(|l| l.sink == sink && l.report_id == id)
        }) {
            let kept = letters.remove(pos);
            letters.push(kept);
        }
        let mut total: u64 = letters.iter().map(|l| l.bytes).sum();
        let mut pruned = 0;
        let mut changed_dirs = Vec::new();
        let last = letters.len().saturating_sub(1);
        for (i, letter) in letters.iter().enumerate() {
            if i == last {
                break;
            }
            let age = now.duration_since(letter.time).unwrap_or(Duration::ZERO);
            let reason = if age > self.dead_letter_max_age {
                PruneReason::Age
            } else if total > self.dead_letter_max_bytes {
                PruneReason::Size
            } else {
                // Younger than the bound, and the rest fits: so does everything after it.
                break;
            };
            if let Err(e) = letter.remove() {
                warn!(sink = %letter.sink, report_id = %letter.report_id, error = %e, "spool: cannot delete a dead letter");
                continue;
            }
            total -= letter.bytes;
            pruned += 1;
            match reason {
                PruneReason::Age => self.counters.dead_letters_pruned_age += 1,
                PruneReason::Size => self.counters.dead_letters_pruned_size += 1,
            }
            info!(
                sink = %letter.sink,
                report_id = %letter.report_id,
                bytes = letter.bytes,
                age_secs = age.as_secs(),
                bound = reason.bound(),
                max_bytes = self.dead_letter_max_bytes,
                max_age_secs = self.dead_letter_max_age.as_secs(),
                "spool: deleted a dead letter"
            );
            if !changed_dirs.contains(&letter.dir) {
                changed_dirs.push(letter.dir.clone());
            }
        }
        for dir in changed_dirs {
            if let Err(e) = sync_dir(&dir) {
                warn!(error = %e, "spool: dead-letter deletions not fsynced; they may come back after a power loss");
            }
        }
        pruned
    }

    fn dead_letter_dir(&self, sink: &str) -> PathBuf {
        self.dir.join(DEAD_LETTER_DIR).join(sink)
    }
}

/// Temporary file, fsync, rename (over a previous copy of the same report), directory fsync.
fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), SpoolError> {
    let mut tmp = tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .tempfile_in(dir)
        .map_err(io_err("create a temporary file in", dir))?;
    let tmp_path = tmp.path().to_path_buf();
    tmp.write_all(bytes).map_err(io_err("write", &tmp_path))?;
    tmp.as_file()
        .sync_all()
        .map_err(io_err("fsync", &tmp_path))?;
    let path = dir.join(name);
    tmp.persist(&path).map_err(|e| SpoolError::Io {
        op: "rename a temporary file to",
        path,
        source: e.error,
    })?;
    sync_dir(dir)
}

#[derive(Debug, Clone, Copy)]
enum PruneReason {
    Age,
    Size,
}

impl PruneReason {
    fn bound(self) -> &'static str {
        match self {
            PruneReason::Age => "dead_letter_max_age",
            PruneReason::Size => "dead_letter_max_bytes",
        }
    }
}

/// One dead letter on disk: `<report_id>.json` and/or `<report_id>.why` in `dir`.
#[derive(Debug)]
struct DeadLetter {
    dir: PathBuf,
    sink: String,
    report_id: String,
    /// Both files' sizes.
    bytes: u64,
    /// When it was written: the newest modification time of its files.
    time: SystemTime,
    files: Vec<PathBuf>,
}

impl DeadLetter {
    /// The report first, its reason after: a failure in between leaves a `.why` alone, which
    /// the next scan finds and deletes in turn.
    fn remove(&self) -> io::Result<()> {
        for file in &self.files {
            remove_if_exists(file)?;
        }
        Ok(())
    }
}

/// The dead letters under `root`, in every sink directory (also of sinks no longer configured:
/// theirs age out too). Leftover temporary files of an interrupted write are deleted (the
/// caller holds the spool, its only writer); names the spool does not write are left alone.
fn scan_dead_letters(root: &Path) -> io::Result<Vec<DeadLetter>> {
    let mut letters: BTreeMap<(String, String), DeadLetter> = BTreeMap::new();
    for sink_dir in fs::read_dir(root)? {
        let sink_dir = sink_dir?;
        let is_dir = sink_dir.file_type().map(|t| t.is_dir()).unwrap_or(false);
        let Ok(sink) = sink_dir.file_name().into_string() else {
            continue;
        };
        if !is_dir || validate_sink_name(&sink).is_err() {
            debug!(path = %sink_dir.path().display(), "spool: not a dead-letter directory; left alone");
            continue;
        }
        let dir = sink_dir.path();
        let listing = match fs::read_dir(&dir) {
            Ok(listing) => listing,
            Err(e) => {
                warn!(dir = %dir.display(), error = %e, "spool: cannot list a dead-letter directory; skipped");
                continue;
            }
        };
        for item in listing.flatten() {
            let path = item.path();
            let Ok(name) = item.file_name().into_string() else {
                continue;
            };
            // Without following symlinks: a symlink is not the spool's.
            let meta = match item.metadata() {
                Ok(meta) if meta.is_file() => meta,
                _ => continue,
            };
            if name.starts_with(TMP_PREFIX) {
                if let Err(e) = remove_if_exists(&path) {
                    warn!(path = %path.display(), error = %e, "spool: cannot delete a leftover temporary file");
                }
                continue;
            }
            let Some(report_id) = name
                .strip_suffix(".json")
                .or_else(|| name.strip_suffix(".why"))
                .filter(|id| validate_report_id(id).is_ok())
            else {
                continue;
            };
            let time = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            let letter = letters
                .entry((sink.clone(), report_id.to_owned()))
                .or_insert_with(|| DeadLetter {
                    dir: dir.clone(),
                    sink: sink.clone(),
                    report_id: report_id.to_owned(),
                    bytes: 0,
                    time,
                    files: Vec::new(),
                });
            letter.bytes += meta.len();
            letter.time = letter.time.max(time);
            letter.files.push(path);
        }
    }
    let mut letters: Vec<DeadLetter> = letters.into_values().collect();
    // The report before its reason (see DeadLetter::remove).
    for letter in &mut letters {
        letter
            .files
            .sort_by_key(|f| f.extension().is_some_and(|e| e == "why"));
    }
    Ok(letters)
}
