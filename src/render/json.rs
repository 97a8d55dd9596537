//! The full JSON report, and the atomic file write of `--output`.

use std::io::Write;
use std::path::Path;

use crate::report::Report;

pub fn to_string(report: &Report) -> String {
    // Plain data of our own types: serialization cannot fail.
    serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// Write to a temporary file in the same directory, then rename: readers never see half a report.
pub fn write_atomic(report: &Report, path: &Path) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(to_string(report).as_bytes())?;
    tmp.write_all(b"\n")?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The JSON Schema of the report, generated from the types.
pub fn schema() -> String {
    let schema = schemars::schema_for!(Report);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}
