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
    let codes = binary(&["findings"]);
    assert!(codes.lines().count() >= 45, "catalogue too short:\n{codes}");
    let docs = repo_file("docs/findings.md");
    let generated = binary(&["findings", "--format", "markdown"]);
    let begin = "<!-- generated: vpce-probe findings --format markdown";
    let end = "<!-- end of generated table -->";
    let start = docs
        .find(begin)
        .expect("docs/findings.md: the table's opening marker");
    let table_start = start + docs[start..].find('\n').expect("marker line") + 1;
    let table_end = table_start + docs[table_start..].find(end).expect("the closing marker");
    let checked_in = &docs[table_start..table_end];
    if checked_in != generated {
        let differing: Vec<String> = checked_in
            .lines()
            .zip(generated.lines())
            .filter(|(a, b)| a != b)
            .map(|(a, b)| format!("docs:      {a}\ngenerated: {b}"))
            .take(3)
            .collect();
        panic!(
            "docs/findings.md's table is not `vpce-probe findings --format markdown` ({} lines vs {}): \
             replace the lines between its markers with that command's output\n{}",
            checked_in.lines().count(),
            generated.lines().count(),
            differing.join("\n")
        );
    }
    for line in codes.lines() {
        let code = line.split('\t').next().unwrap_or_default();
        assert!(
            generated.contains(&format!("| `{code}` |")),
            "the markdown table lacks {code}"
        );
    }
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

/// lab/README.md names every scenario file with its count and every fault `lab.sh faults`
/// lists, and marks a scenario as a known bug exactly when its file carries `known_bug`.
#[test]
fn lab_readme_lists_every_scenario_and_fault() {
    let readme = repo_file("lab/README.md");
    let dir = format!("{}/lab/scenarios", env!("CARGO_MANIFEST_DIR"));
    let mut scenarios: Vec<(String, bool)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| {
            let known_bug = std::fs::read_to_string(&p)
                .unwrap()
                .lines()
                .any(|l| l.trim_start().starts_with("known_bug"));
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                known_bug,
            )
        })
        .collect();
    scenarios.sort();
    assert!(scenarios.len() >= 50, "{scenarios:?}");
    assert!(
        readme.contains(&format!("{} scenarios, one file each", scenarios.len())),
        "lab/README.md does not say \"{} scenarios, one file each\"",
        scenarios.len()
    );
    for (name, known_bug) in &scenarios {
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}` |")) && l.matches(" | ").count() == 2)
            .unwrap_or_else(|| panic!("lab/README.md's scenario table has no row for {name}"));
        assert_eq!(
            row.contains("known bug"),
            *known_bug,
            "lab/README.md: {name}'s row and its file disagree on known_bug:\n{row}"
        );
    }
    let faults = Command::new("bash")
        .args([
            &format!("{}/lab/lab.sh", env!("CARGO_MANIFEST_DIR")),
            "faults",
        ])
        .output()
        .expect("bash lab/lab.sh faults");
    assert!(faults.status.success());
    let faults = String::from_utf8_lossy(&faults.stdout);
    assert!(faults.lines().count() >= 30, "{faults}");
    for fault in faults.lines().filter_map(|l| l.split_whitespace().next()) {
        assert!(
            readme.contains(&format!("| `{fault}` | ")),
            "lab/README.md's fault table has no row for {fault}"
        );
    }
}

/// The first ten minutes: `--help` and `probe --help` end with examples to copy.
#[test]
fn help_ends_with_examples() {
    for args in [&["--help"][..], &["probe", "--help"][..]] {
        let help = binary(args);
        let examples = help
            .find("Examples:")
            .unwrap_or_else(|| panic!("{args:?}: no examples\n{help}"));
        assert!(
            help[examples..]
                .matches("vpce-probe probe --bucket")
                .count()
                >= 2,
            "{args:?}: {help}"
        );
    }
}

/// `render-text` (hidden; the README's examples go through it) refuses a file that is not a
/// report with exit 2 and one line saying what to give it.
#[test]
fn render_text_refuses_what_is_not_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_report = dir.path().join("config.toml");
    std::fs::write(&not_a_report, "[probe]\n").unwrap();
    for file in [not_a_report, dir.path().join("missing.json")] {
        let out = Command::new(env!("CARGO_BIN_EXE_vpce-probe"))
            .arg("render-text")
            .arg(&file)
            .env_clear()
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("vpce-probe: "), "{stderr}");
        assert!(out.stdout.is_empty());
    }
}
