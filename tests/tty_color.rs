//! Colours in the text report: on a terminal, never when NO_COLOR is set to anything non-empty
//! (https://no-color.org), never into a pipe or a file. Runs the real binary under a
//! pseudo-terminal made by util-linux `script` (bsdutils, essential on Debian) against the
//! loopback fakes of tests/common. Needs root (the fakes bind port 53 and 443 on 127.x).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step stops the test

mod common;
mod support;

use std::process::Command;

use common::*;

/// An SGR escape sequence (colour, bold, dim): ESC [ digits and semicolons, then `m`.
fn has_sgr(text: &str) -> bool {
    text.split('\x1b').skip(1).any(|rest| {
        rest.strip_prefix('[').is_some_and(|params| {
            let end = params
                .find(|c: char| !(c.is_ascii_digit() || c == ';'))
                .unwrap_or(params.len());
            params[end..].starts_with('m')
        })
    })
}

fn shell_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// Run the probe with the lab's arguments under a pseudo-terminal (stdout only: stderr goes to
/// a file, so the progress spinner cannot bring escape codes of its own) and return what the
/// terminal received.
fn probe_on_a_tty(lab: &Lab, no_color: Option<&str>) -> String {
    let mut args = lab.args();
    args.extend(["--no-calls".into(), "--no-progress".into()]);
    let command = std::iter::once(env!("CARGO_BIN_EXE_vpce-probe").to_string())
        .chain(args)
        .map(|a| shell_quote(&a))
        .collect::<Vec<_>>()
        .join(" ");
    let stderr = lab.dir.path().join("stderr.txt");
    let mut script = Command::new("script");
    script
        .args(["-qec"])
        .arg(format!(
            "{command} 2>{}",
            shell_quote(&stderr.display().to_string())
        ))
        .arg("/dev/null")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", lab.dir.path())
        .env("TERM", "xterm")
        .env("AWS_CONFIG_FILE", lab.dir.path().join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            lab.dir.path().join("no-aws-credentials"),
        );
    for (k, v) in &lab.env {
        script.env(k, v);
    }
    if let Some(value) = no_color {
        script.env("NO_COLOR", value);
    }
    let out = script
        .output()
        .expect("run util-linux script (bsdutils): scripts/install-deps.sh installs it");
    let terminal = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        terminal.contains("VERDICT"),
        "no text report on the terminal (script exit {:?}):\n{terminal}\n--- stderr\n{}",
        out.status.code(),
        std::fs::read_to_string(&stderr).unwrap_or_default()
    );
    terminal
}

#[test]
fn colours_on_a_terminal_and_not_with_no_color_or_into_a_pipe() {
    let lab = Lab::healthy(171);

    let tty = probe_on_a_tty(&lab, None);
    assert!(
        tty.contains("\x1b[32mok  \x1b[0m"),
        "no green `ok` on a terminal:\n{tty:?}"
    );

    // An empty NO_COLOR is unset (no-color.org); any other value turns colours off.
    let empty = probe_on_a_tty(&lab, Some(""));
    assert!(has_sgr(&empty), "NO_COLOR= (empty) turned colours off");
    for value in ["1", "0", "false"] {
        let plain = probe_on_a_tty(&lab, Some(value));
        assert!(
            !has_sgr(&plain),
            "colours with NO_COLOR={value} on a terminal:\n{plain:?}"
        );
    }

    let mut args = lab.args();
    args.extend(["--no-calls".into(), "--no-progress".into()]);
    let piped = lab.run(&args);
    assert!(piped.stdout.contains("VERDICT"), "{}", piped.stderr);
    assert!(
        !has_sgr(&piped.stdout),
        "colours into a pipe:\n{:?}",
        piped.stdout
    );
}

#[test]
fn a_saved_report_renders_in_colour_only_on_a_terminal() {
    let report = format!("{}/docs/examples/healthy.json", env!("CARGO_MANIFEST_DIR"));
    let bin = env!("CARGO_BIN_EXE_vpce-probe");
    let tty = Command::new("script")
        .args(["-qec", &format!("{bin} render-text {report}"), "/dev/null"])
        .env_remove("NO_COLOR")
        .output()
        .expect("run util-linux script");
    let tty = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.contains("VERDICT") && has_sgr(&tty), "{tty:?}");
    let piped = Command::new(bin)
        .args(["render-text", &report])
        .output()
        .expect("run vpce-probe");
    let piped = String::from_utf8_lossy(&piped.stdout);
    assert!(piped.contains("VERDICT") && !has_sgr(&piped), "{piped:?}");
}

#[test]
fn the_sgr_detector_finds_colours_and_nothing_else() {
    assert!(has_sgr("a \x1b[31;1mfail\x1b[0m"));
    assert!(has_sgr("\x1b[m"));
    assert!(!has_sgr("plain text"));
    assert!(!has_sgr("\x1b[2K\rspinner cleared"));
}
