//! The README's generated blocks (timings, examples) are exactly what scripts/readme_figures.py
//! renders from docs/figures.json and docs/examples/*.json, the examples re-rendered by this
//! build's text renderer: a renderer change that is not regenerated into the README fails here.
//! Needs python3 (3.11+), nothing else; no network.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step stops the test

use std::path::Path;
use std::process::{Command, Output};

fn check(readme: &Path) -> Output {
    Command::new("python3")
        .arg(format!(
            "{}/scripts/readme_figures.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg("check")
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_vpce-probe"))
        .arg("--readme")
        .arg(readme)
        .output()
        .expect("run python3 scripts/readme_figures.py")
}

#[test]
fn readme_generated_blocks_are_up_to_date() {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let out = check(&readme);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_hand_edited_example_or_figure_fails_the_check() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (what, edited) in [
        (
            "a figure",
            readme.replacen(
                "| `scripts/install-deps.sh` with everything present | ",
                "| `scripts/install-deps.sh` with everything present | 0.1 s, ",
                1,
            ),
        ),
        (
            "an example line",
            readme.replacen("VERDICT  healthy", "VERDICT  fine", 1),
        ),
    ] {
        assert_ne!(edited, readme, "{what}: the edit did not apply");
        let copy = dir.path().join("README.md");
        std::fs::write(&copy, &edited).unwrap();
        let out = check(&copy);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{what}: the check passed a stale README\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("+++ rendered"),
            "{what}: no diff shown"
        );
    }
}
