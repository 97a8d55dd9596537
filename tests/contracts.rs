//! Output contracts pinned by tests: the checked-in JSON Schema matches the types, and the
//! docs document every finding code and every flag.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step stops the test

use std::process::Command;

fn binary(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vpce-probe"))
        .args(args)
        .env_clear()
        .output()
        .expect("run vpce-probe");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn checked_in_schema_matches_the_report_types() {
    let generated = binary(&["schema"]);
    let checked_in = repo_file("schema/report.schema.json");
    assert!(
        generated.trim() == checked_in.trim(),
        "schema/report.schema.json is stale: run `cargo run -- schema > schema/report.schema.json`"
    );
}

#[test]
fn docs_document_every_finding_code() {
    let readme = repo_file("docs/findings.md");
    let codes = binary(&["findings"]);
    let mut missing = Vec::new();
    for line in codes.lines() {
        let code = line.split('\t').next().unwrap_or_default();
        if !readme.contains(&format!("`{code}`")) {
            missing.push(code.to_string());
        }
    }
    assert!(codes.lines().count() >= 45, "catalogue too short:\n{codes}");
    assert!(
        missing.is_empty(),
        "docs/findings.md does not document {missing:?}"
    );
}

#[test]
fn docs_document_every_probe_flag() {
    let readme = repo_file("docs/probe.md");
    let help = binary(&["probe", "--help"]);
    let flags: Vec<&str> = help
        .split_whitespace()
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()))
        .filter(|w| *w != "--help")
        .collect();
    assert!(flags.len() >= 15, "{help}");
    let missing: Vec<&&str> = flags.iter().filter(|f| !readme.contains(**f)).collect();
    assert!(
        missing.is_empty(),
        "docs/probe.md does not document {missing:?}"
    );
}

#[test]
fn check_config_accepts_a_good_file_and_names_the_bad_key_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "interval = \"60s\"\n[probe]\nbuckets = [\"mybucket\"]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vpce-probe"))
        .args(["check-config", "--config", good.to_str().unwrap()])
        .env_clear()
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok: probe every 60 s"));
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "interval = \"60s\"\n[probe]\nbucket = [\"mybucket\"]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vpce-probe"))
        .args(["check-config", "--config", bad.to_str().unwrap()])
        .env_clear()
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3") && err.contains("bucket"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn docs_show_the_default_of_every_probe_flag() {
    use clap::CommandFactory;
    let docs = repo_file("docs/probe.md");
    let cli = vpce_probe::cli::Cli::command();
    let probe = cli.find_subcommand("probe").expect("probe command");
    let mut checked = 0;
    for arg in probe.get_arguments() {
        let (Some(long), [default, ..]) = (arg.get_long(), arg.get_default_values()) else {
            continue;
        };
        // A switch's "default" is its state when absent, not a value to document.
        if !arg.get_action().takes_values() {
            continue;
        }
        let row = docs
            .lines()
            .find(|l| l.starts_with(&format!("| `--{long}")))
            .unwrap_or_else(|| panic!("docs/probe.md has no row for --{long}"));
        let default = default.to_string_lossy();
        assert!(
            row.contains(&format!("| `{default}`")),
            "docs/probe.md: the row of --{long} does not show its default `{default}`: {row}"
        );
        checked += 1;
    }
    assert!(checked >= 9, "only {checked} flags with a default");
}
