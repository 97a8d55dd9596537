//! The full JSON report, and the file write of `--output`.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::report::Report;

pub fn to_string(report: &Report) -> String {
    // Plain data of our own types: serialization cannot fail.
    serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// Write the report to `path` for `--output`. A regular file (or a new path) is replaced
/// atomically; a symlink is resolved so its target is replaced and the link survives; anything
/// else that exists (/dev/null, a FIFO, /dev/stdout on a pipe) is written in place: renaming over it would
/// replace a device node with a regular file, which root is allowed to do.
pub fn write_output(report: &Report, path: &Path) -> std::io::Result<()> {
    let mut bytes = to_string(report).into_bytes();
    bytes.push(b'\n');
    write_bytes(path, &bytes)
}

fn write_bytes(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // metadata() follows links: the type of what a write would reach.
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "is a directory",
        )),
        Ok(m) if !m.is_file() => {
            // No create, no truncate: the file exists and is not a regular file.
            let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
            f.write_all(bytes)?;
            f.flush()
        }
        Ok(_) if std::fs::symlink_metadata(path)?.file_type().is_symlink() => {
            replace_file(&std::fs::canonicalize(path)?, bytes)
        }
        Ok(_) => replace_file(path, bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            replace_file(&dangling_target(path)?, bytes)
        }
        Err(e) => Err(e),
    }
}

/// Where a write through `path` would create the file when nothing exists there: `path`
/// itself, or the end of its chain of symlinks if it is a dangling link.
fn dangling_target(path: &Path) -> std::io::Result<PathBuf> {
    let mut current = path.to_path_buf();
    // The kernel's own limit of links followed in one lookup.
    for _ in 0..40 {
        match std::fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&current)?;
                let dir = current.parent().unwrap_or(Path::new(""));
                current = dir.join(target);
            }
            Ok(_) => return Ok(current),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(current),
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        "too many levels of symbolic links",
    ))
}

/// Write to a temporary file in the same directory, then rename: readers never see half a report.
fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The JSON Schema of the report, generated from the types.
pub fn schema() -> String {
    let schema = schemars::schema_for!(Report);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_new_path_and_a_regular_file_are_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.json");
        write_bytes(&path, b"one").expect("new file");
        write_bytes(&path, b"two").expect("replaced");
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
    }

    #[test]
    fn a_symlink_survives_and_its_target_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("target.json");
        std::fs::write(&target, b"old").expect("write");
        // Relative, and a chain of two links.
        let first = dir.path().join("first");
        let link = dir.path().join("link.json");
        symlink("target.json", &first).expect("symlink");
        symlink("first", &link).expect("symlink");
        write_bytes(&link, b"new").expect("write through the link");
        for l in [&link, &first] {
            let m = std::fs::symlink_metadata(l).expect("lstat");
            assert!(m.file_type().is_symlink(), "{}", l.display());
        }
        assert_eq!(std::fs::read(&target).expect("read"), b"new");
    }

    #[test]
    fn a_dangling_symlink_creates_its_target() {
        let dir = tempfile::tempdir().expect("tempdir");
        let link = dir.path().join("link.json");
        symlink("later.json", &link).expect("symlink");
        write_bytes(&link, b"new").expect("write through the link");
        assert!(
            std::fs::symlink_metadata(&link)
                .expect("lstat")
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            std::fs::read(dir.path().join("later.json")).expect("read"),
            b"new"
        );
    }

    #[test]
    fn a_directory_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).expect("mkdir");
        let e = write_bytes(&sub, b"x").expect_err("a directory");
        assert_eq!(e.kind(), std::io::ErrorKind::IsADirectory);
        assert!(sub.is_dir());
    }

    #[test]
    fn a_symlink_loop_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        symlink("b", &a).expect("symlink");
        symlink("a", &b).expect("symlink");
        assert!(write_bytes(&a, b"x").is_err());
        assert!(
            std::fs::symlink_metadata(&a)
                .expect("lstat")
                .file_type()
                .is_symlink()
        );
    }
}
