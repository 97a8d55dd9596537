//! Thin: parse, dispatch, map errors to exit codes (0 healthy, 1 problem, 2 usage, 3 probe failure).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches};
use vpce_probe::catalogue::FindingCode;
use vpce_probe::cli::{Cli, Command, Format, ListFormat};
use vpce_probe::config::{Config, Environment};
use vpce_probe::escape::shown_path;
use vpce_probe::render;

const EXIT_USAGE: u8 = 2;
const EXIT_PROBE_FAILED: u8 = 3;

fn main() -> ExitCode {
    let cli = match parse_command_line() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let env = Environment::from_process();
    hide_broken_cert_file(&env);
    // The one-shot probe's output is its report; the agent's is its log (journald reads stderr).
    let default_filter = match cli.command {
        Command::Agent { .. } => "warn,vpce_probe=info",
        _ => "off",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VPCE_PROBE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .init();
    match cli.command {
        Command::Schema => listing(render::json::schema() + "\n", ExitCode::SUCCESS),
        Command::CheckConfig { config } => match vpce_probe::agent::config::load(&config, env) {
            Ok(c) => listing(
                format!(
                    "{}: ok: probe every {} s (jitter {} s), {} target(s), {} sink(s), spool {}\n",
                    shown_path(&config),
                    c.interval.as_secs(),
                    c.jitter.as_secs(),
                    c.probe.buckets.len() + c.probe.tables.len(),
                    c.sinks.len(),
                    shown_path(&c.spool_dir)
                ),
                ExitCode::SUCCESS,
            ),
            Err(e) => {
                error_line(&e);
                ExitCode::from(EXIT_USAGE)
            }
        },
        Command::Agent { config } => agent(config, env),
        Command::Findings {
            format: ListFormat::Markdown,
        } => listing(vpce_probe::catalogue::markdown_table(), ExitCode::SUCCESS),
        Command::Findings {
            format: ListFormat::Text,
        } => {
            let text: String = FindingCode::ALL
                .iter()
                .map(|code| {
                    format!(
                        "{code}\t{}\t{}\t{}\n",
                        code.checklist_item(),
                        code.meaning(),
                        code.general_fix()
                    )
                })
                .collect();
            listing(text, ExitCode::SUCCESS)
        }
        Command::Probe(args) => {
            let cfg = match Config::from_args(*args, env) {
                Ok(c) => c,
                Err(e) => {
                    error_line(&e);
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            probe(cfg)
        }
    }
}

/// The command line of `Cli`, plus three hidden commands. Two for packagers, both generated from
/// the clap definitions themselves so that they never drift from `--help`:
/// `vpce-probe manpage DIR` writes one man page per command (vpce-probe.1, vpce-probe-probe.1,
/// ...) into DIR and `vpce-probe completions SHELL` prints a completion script
/// (packaging/generate-assets.sh runs both). And `vpce-probe render-text FILE`, which prints a
/// saved JSON report as the text report of today's renderer (scripts/readme_figures.py renders
/// the README's examples with it). Err is the exit code of a hidden command.
fn parse_command_line() -> Result<Cli, ExitCode> {
    let mut cmd = Cli::command()
        .subcommand(
            clap::Command::new("manpage")
                .hide(true)
                .about("Write the man pages (one per command) into DIR")
                .arg(
                    clap::Arg::new("dir")
                        .value_name("DIR")
                        .required(true)
                        .value_parser(clap::value_parser!(std::path::PathBuf)),
                ),
        )
        .subcommand(
            clap::Command::new("completions")
                .hide(true)
                .about("Print the completion script for SHELL")
                .arg(
                    clap::Arg::new("shell")
                        .value_name("SHELL")
                        .required(true)
                        .value_parser(clap::value_parser!(clap_complete::Shell)),
                ),
        )
        .subcommand(
            clap::Command::new("render-text")
                .hide(true)
                .about("Print a saved JSON report (--format json, --output) as the text report")
                .arg(
                    clap::Arg::new("file")
                        .value_name("FILE")
                        .required(true)
                        .value_parser(clap::value_parser!(std::path::PathBuf)),
                ),
        );
    let matches = cmd.clone().get_matches();
    match matches.subcommand() {
        Some(("manpage", m)) => Err(match m.get_one::<std::path::PathBuf>("dir") {
            Some(dir) => write_manpages(dir),
            None => ExitCode::from(EXIT_USAGE),
        }),
        Some(("completions", m)) => Err(match m.get_one::<clap_complete::Shell>("shell") {
            Some(shell) => {
                let mut script = Vec::new();
                clap_complete::generate(*shell, &mut Cli::command(), "vpce-probe", &mut script);
                let mut script = String::from_utf8_lossy(&script).into_owned();
                if *shell == clap_complete::Shell::Bash {
                    // clap_complete's bash script (4.6.12) spells the state of a subcommand
                    // `vpce__probe__subcmd__probe` but its case arm `vpce__subcmd__probe__subcmd__probe`
                    // for a bin name with a hyphen, so no subcommand's flags ever complete
                    // (clap-rs/clap#6421). Spell the arms like the state; a no-op once fixed.
                    script =
                        script.replace("vpce__subcmd__probe__subcmd__", "vpce__probe__subcmd__");
                }
                listing(script, ExitCode::SUCCESS)
            }
            None => ExitCode::from(EXIT_USAGE),
        }),
        Some(("render-text", m)) => Err(match m.get_one::<std::path::PathBuf>("file") {
            Some(file) => render_saved_report(file),
            None => ExitCode::from(EXIT_USAGE),
        }),
        _ => Ok(Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut cmd).exit())),
    }
}

/// A JSON report read back and rendered as text, coloured like the probe's own output.
fn render_saved_report(file: &std::path::Path) -> ExitCode {
    let report = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", shown_path(file)))
        .and_then(|json| {
            serde_json::from_str::<vpce_probe::report::Report>(&json).map_err(|e| {
                format!(
                    "{} is not a vpce-probe JSON report ({e}): give the file that --output or --format json wrote",
                    shown_path(file)
                )
            })
        });
    match report {
        Ok(report) => listing(
            render::text::render(&report, &text_style(Environment::from_process().no_color)),
            ExitCode::SUCCESS,
        ),
        Err(e) => {
            error_line(&e);
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Colours only for a person at a terminal, and never when NO_COLOR is set (https://no-color.org).
fn text_style(no_color: bool) -> render::text::Style {
    render::text::Style {
        color: std::io::stdout().is_terminal() && !no_color,
    }
}

fn write_manpages(dir: &std::path::Path) -> ExitCode {
    match std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(Cli::command(), dir))
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error_line(&format!(
                "cannot write the man pages to {}: {e}",
                shown_path(dir)
            ));
            ExitCode::from(EXIT_PROBE_FAILED)
        }
    }
}

/// The AWS SDK's own HTTP clients (credentials, region) load their roots from SSL_CERT_FILE
/// through rustls-native-certs and assert that they found some: a broken bundle there is a panic
/// in debug builds and no roots at all in release ones. `env` holds the variable already, so the
/// probe's TLS checks still report the bundle; the SDK's clients fall back to the system's roots.
fn hide_broken_cert_file(env: &Environment) {
    if let Some(path) = &env.ssl_cert_file
        && vpce_probe::net::tls::pem_bundle(path).is_err()
    {
        // SAFETY: called before the logger and the runtime start, while this is the only thread,
        // so nothing reads the environment concurrently.
        unsafe { std::env::remove_var("SSL_CERT_FILE") };
    }
}

/// One line on stderr: escaped and cut (values in it may come from anywhere; see escape.rs).
fn error_line(e: &dyn std::fmt::Display) {
    eprintln!("vpce-probe: {}", vpce_probe::escape::line(&e.to_string()));
}

/// All of `text` to stdout. println! would panic (exit 101) when the reader has gone away.
fn write_stdout(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

/// Print a command's output and exit with `code`. A closed stdout (`| head -1`, `| true`) is a
/// quiet exit with the same code, not 141 as if killed by SIGPIPE: the reader took what it
/// wanted, and for check-config the verdict on the file is what the caller asked for.
/// Any other write error (a full disk) is one line on stderr and exit 3.
fn listing(text: String, code: ExitCode) -> ExitCode {
    match write_stdout(&text) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("vpce-probe: cannot write to stdout: {e}");
            ExitCode::from(EXIT_PROBE_FAILED)
        }
        _ => code,
    }
}

/// One thread runs the probe's futures (blocking work still goes to tokio's blocking pool).
/// A run's futures are joined, not spawned, so they were polled on the thread that awaits them
/// whatever the flavour; two workers only drove hyper's connections and hickory's exchanges,
/// and handing every I/O event across threads cost CPU. Measured (benches/findings.md): the
/// agent's CPU per cycle 15-30% lower, a 50-target run 15% less CPU for the same wall time;
/// spreading the run over worker threads made it slower.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("vpce-probe: cannot start the async runtime: {e}");
            ExitCode::from(EXIT_PROBE_FAILED)
        })
}

fn agent(config: std::path::PathBuf, env: Environment) -> ExitCode {
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(vpce_probe::agent::daemon::run(config, env)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "the agent cannot start");
            error_line(&e);
            ExitCode::from(if e.is_bad_configuration() {
                EXIT_USAGE
            } else {
                EXIT_PROBE_FAILED
            })
        }
    }
}

fn probe(cfg: Config) -> ExitCode {
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let code = probe_on(&runtime, cfg);
    // The report is out: a blocking task the run left behind (a lookup the deadline abandoned)
    // must not hold the process past it, as dropping the runtime would.
    runtime.shutdown_background();
    code
}

fn probe_on(runtime: &tokio::runtime::Runtime, cfg: Config) -> ExitCode {
    // A malformed shared config file or an unknown profile is bad input: nothing is probed.
    // What was read is what the run uses.
    let sdk_settings = match runtime.block_on(vpce_probe::endpoints::SdkSettings::load(
        cfg.profile.as_deref(),
    )) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("vpce-probe: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let spinner = (cfg.progress && std::io::stderr().is_terminal()).then(|| {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.set_message("probing DNS, TCP, TLS, proxy and IMDS...");
        pb.enable_steady_tick(Duration::from_millis(100));
        pb
    });
    let report = runtime.block_on(vpce_probe::run::run_once_with_sdk_settings(
        &cfg,
        &sdk_settings,
    ));
    if let Some(pb) = spinner {
        pb.finish_and_clear();
    }
    if let Some(path) = &cfg.output
        && let Err(e) = render::json::write_output(&report, path)
    {
        error_line(&format!(
            "cannot write the report to {}: {e}",
            shown_path(path)
        ));
        return ExitCode::from(EXIT_PROBE_FAILED);
    }
    let text = match cfg.format {
        Format::Json => render::json::to_string(&report) + "\n",
        Format::Text => render::text::render(&report, &text_style(cfg.env.no_color)),
    };
    // A closed pipe (| head) is not a probe failure: the exit code stays the verdict's and the
    // report is still shipped. Other write errors are said, without changing the exit code.
    if let Err(e) = write_stdout(&text)
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("vpce-probe: cannot write the report to stdout: {e}");
    }
    let mut shipped_all = true;
    if !cfg.ship.is_empty() {
        let json = render::json::to_string(&report).into_bytes();
        let sinks = cfg.ship.clone();
        let results = runtime.block_on(vpce_probe::agent::sinks::ship_once(
            &sinks,
            std::sync::Arc::new(cfg),
            &json,
        ));
        for (target, result) in results {
            if let Err(e) = result {
                error_line(&format!("the report was not shipped to {target}: {e}"));
                shipped_all = false;
            }
        }
    }
    if !shipped_all {
        return ExitCode::from(EXIT_PROBE_FAILED);
    }
    ExitCode::from(u8::try_from(report.verdict.exit_code).unwrap_or(EXIT_PROBE_FAILED))
}
