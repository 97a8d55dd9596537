//! What leaves the spool without every sink's acknowledgement (the age and size bounds), the
//! removal of an entry's files, and the recovery of the index from the directory at `open`.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::time::{Duration, SystemTime};

use tracing::{debug, error, info, warn};

use super::entry::{Name, check_entry_file, parse_name};
use super::{
    DEAD_LETTER_DIR, Entry, EntryId, LOCK_NAME, Spool, SpoolError, TMP_PREFIX, io_err,
    remove_if_exists, sync_dir, time_of,
};

#[derive(Debug, Clone, Copy)]
enum DropReason {
    Age,
    Size,
}

/// What `recover` finds in the directory before it matches markers to entries.
struct DirScan {
    /// A leftover temporary file was deleted.
    changed: bool,
    /// Stems of every entry-named regular file, loaded or skipped as corrupt: markers of a
    /// skipped entry are left with it, not deleted as orphans.
    entry_stems: HashSet<String>,
    markers: Vec<(String, String)>,
}

impl Spool {
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

    /// Delete an entry's file, then its markers. The entry file decides: its error is returned
    /// (nothing changed); a marker that cannot be deleted is logged, and `open` deletes it as
    /// an orphan. Does not fsync the directory.
    pub(super) fn remove_files(
        &self,
        id: &EntryId,
        acked: &BTreeSet<String>,
    ) -> Result<(), SpoolError> {
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
    pub(super) fn recover(&mut self) -> Result<(), SpoolError> {
        let scan = self.scan_directory()?;
        let mut changed = scan.changed;
        changed |= self.attach_markers(scan.markers, &scan.entry_stems);
        changed |= self.finish_complete_removals();
        if changed {
            sync_dir(&self.dir)?;
        }

        self.bytes = self.entries.values().map(|e| e.bytes).sum();
        self.last_millis = self.entries.values().map(|e| e.millis).max().unwrap_or(0);
        self.counters.recovered = self.entries.len() as u64;
        Ok(())
    }

    /// Load every entry and collect the markers the directory holds; delete the temporary
    /// files a crash left. Anything else is skipped, counted and left in place.
    fn scan_directory(&mut self) -> Result<DirScan, SpoolError> {
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
            if name == LOCK_NAME || name == DEAD_LETTER_DIR {
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
        Ok(DirScan {
            changed,
            entry_stems,
            markers,
        })
    }

    /// Attach the markers to their entries; delete the orphans (their entry was removed and a
    /// crash came before they were). Returns whether the directory changed.
    fn attach_markers(
        &mut self,
        markers: Vec<(String, String)>,
        entry_stems: &HashSet<String>,
    ) -> bool {
        let mut changed = false;
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
        changed
    }

    /// Finish the removal of the entries every configured sink acknowledged. Returns whether
    /// the directory changed.
    fn finish_complete_removals(&mut self) -> bool {
        let mut changed = false;
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
        changed
    }
}
