//! Every file a person names (--ip-ranges, --resolv-conf, the agent's configuration, token and
//! CA files) is read through [`read`]: regular files only, since a FIFO would block the probe
//! forever and a device like /dev/zero never ends; and up to a size cap, so a wrong path cannot
//! fill the memory. The error is one line that names the file.

use std::io::Read;
use std::path::Path;

use crate::escape::shown_path;

const MIB: u64 = 1024 * 1024;
/// AWS's ip-ranges.json is ~2 MB today; room for years of growth.
pub const MAX_IP_RANGES: u64 = 64 * MIB;
/// CA bundles: a distribution's whole bundle is 200-300 KB; room for a large corporate one.
pub const MAX_CA_BUNDLE: u64 = 4 * MIB;
/// Everything else: configuration, resolv.conf, tokens.
pub const MAX_SMALL: u64 = MIB;

/// The bytes of the regular file `path`, if it holds at most `max` bytes.
pub fn read(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let fail = |e: std::io::Error| format!("cannot read {}: {e}", shown_path(path));
    // Checked before opening: opening a FIFO blocks until a writer comes.
    let meta = std::fs::metadata(path).map_err(fail)?;
    check(path, &meta, max)?;
    let file = std::fs::File::open(path).map_err(fail)?;
    // Checked again on what was opened, in case the path was replaced meanwhile.
    check(path, &file.metadata().map_err(fail)?, max)?;
    let mut bytes = Vec::new();
    // One byte more than allowed tells a file that grew (or lied about its size) from one that fits.
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(fail)?;
    if bytes.len() as u64 > max {
        return Err(too_large(path, max));
    }
    Ok(bytes)
}

/// [`read`], as UTF-8 text.
pub fn read_string(path: &Path, max: u64) -> Result<String, String> {
    String::from_utf8(read(path, max)?)
        .map_err(|_| format!("cannot read {}: not UTF-8 text", shown_path(path)))
}

fn check(path: &Path, meta: &std::fs::Metadata, max: u64) -> Result<(), String> {
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            "a FIFO, socket or device"
        };
        return Err(format!(
            "cannot read {}: it is {kind}, not a regular file",
            shown_path(path)
        ));
    }
    if meta.len() > max {
        return Err(too_large(path, max));
    }
    Ok(())
}

fn too_large(path: &Path, max: u64) -> String {
    let mib = if max >= MIB && max.is_multiple_of(MIB) {
        format!(" ({} MiB)", max / MIB)
    } else {
        String::new()
    };
    format!(
        "cannot read {}: larger than the maximum of {max} bytes{mib}",
        shown_path(path)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_within_the_cap_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("f");
        std::fs::write(&f, b"12345").expect("write");
        assert_eq!(read(&f, 5).expect("fits"), b"12345");
        assert!(
            read(&f, 4)
                .expect_err("too large")
                .contains("maximum of 4 bytes")
        );
        assert!(
            read(dir.path(), 5)
                .expect_err("dir")
                .contains("a directory")
        );
        let e = read(Path::new("/dev/zero"), 5).expect_err("device");
        assert!(e.contains("not a regular file"), "{e}");
        assert!(read(&dir.path().join("missing"), 5).is_err());
    }
}
