//! Reports a sink refused for good (a collector's 4xx other than 408 and 429) leave that sink's
//! queue for `<spool>/dead-letter/<sink>/<report_id>.json`, with `<report_id>.why` beside it
//! (the status and the collector's one-line reason). The copy is durable before the entry is
//! acknowledged for the sink, so a crash in between sends the report again (and it is refused
//! again), never loses it. The other sinks keep the entry as usual.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{EntryId, Spool, SpoolError, TMP_PREFIX, io_err, shorten, sync_dir};

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
        Ok(path)
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
