//! vpce-collector: receives the reports of vpce-probe agents, stores them in SQLite or PostgreSQL and shows
//! the fleet (pages, JSON API, Prometheus metrics). docs/collector.md describes it.

mod config;
mod error;
mod ingest;
mod metrics;
mod model;
mod pages;
mod s3pull;
mod server;
mod store;
mod tls;
mod tokens;
mod webhook;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tracing::{info, warn};

use crate::config::{Cli, Command, Settings};
use crate::server::{App, now_ms};
use crate::store::Store;

/// How often retention runs (and once at start).
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VPCE_COLLECTOR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: the journal and log files get plain text.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .init();
    let (flags, serve) = match cli.command {
        Command::Serve(f) => (f, true),
        Command::CheckConfig(f) => (f, false),
        Command::Pull(f) => return pull(f),
    };
    let settings = match Settings::resolve(flags) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vpce-collector: {e}");
            return ExitCode::from(2);
        }
    };
    if !serve {
        print!("{}", settings.describe());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vpce-collector: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(settings))
}

async fn run(settings: Settings) -> ExitCode {
    let store = match Store::open(&settings.db).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vpce-collector: {}: {e}", settings.db.describe());
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(settings.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("vpce-collector: cannot listen on {}: {e}", settings.listen);
            return ExitCode::FAILURE;
        }
    };
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let retention_days = settings.retention_days;
    let mut metrics = metrics::Metrics::new();
    if let Some(pull) = settings.s3_pull.clone() {
        let pull_metrics = s3pull::PullMetrics::register(metrics.registry_mut());
        match s3pull::Puller::new(pull, store.clone(), pull_metrics).await {
            Ok(puller) => {
                tokio::spawn(Arc::new(puller).run());
            }
            Err(e) => {
                eprintln!("vpce-collector: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let webhook = match settings.webhook.clone() {
        Some(hook) => {
            info!(webhook = %hook.describe(), "webhook on verdict changes");
            match webhook::Webhook::start(hook, metrics.webhook_events.clone()) {
                Ok(w) => Some(w),
                Err(e) => {
                    eprintln!("vpce-collector: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        None => None,
    };
    let tls = settings.tls.clone();
    let app = Arc::new(App {
        settings,
        store: store.clone(),
        metrics,
        webhook,
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RETENTION_EVERY);
        loop {
            tick.tick().await;
            let cutoff = now_ms() - i64::from(retention_days) * 86_400_000;
            match store.apply_retention(cutoff).await {
                Ok(0) => {}
                Ok(n) => info!(deleted = n, "retention: old reports deleted"),
                Err(e) => warn!(error = %e, "retention"),
            }
        }
    });
    // SIGHUP re-reads the TLS pair (the token files are re-read when they change anyway).
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(mut hup) => {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    info!("SIGHUP: reloading");
                    if let Some(tls) = &tls {
                        tls.reload_now();
                    }
                }
            });
        }
        Err(e) => warn!(error = %e, "cannot handle SIGHUP"),
    }
    // Tests and scripts wait for this line to know the port (with --listen 127.0.0.1:0).
    info!(listen = %local, https = app.settings.tls.is_some(), "vpce-collector listening");
    eprintln!("listening on {local}");
    server::serve(listener, app.clone(), shutdown()).await;
    if let Some(hook) = &app.webhook {
        hook.drain(WEBHOOK_DRAIN).await;
    }
    info!("stopped");
    ExitCode::SUCCESS
}

/// `vpce-collector pull`: one pass over the S3 locations.
fn pull(flags: config::Flags) -> ExitCode {
    let (db, settings) = match Settings::resolve_pull(flags) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vpce-collector: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vpce-collector: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let store = match Store::open(&db).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("vpce-collector: {}: {e}", db.describe());
                return ExitCode::FAILURE;
            }
        };
        match s3pull::pull_once(settings, store).await {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("vpce-collector: {e}");
                ExitCode::from(2)
            }
        }
    })
}

/// At stop, how long queued webhook events get to go out.
const WEBHOOK_DRAIN: Duration = Duration::from_secs(3);

/// SIGTERM or SIGINT. Every acknowledged report was committed before its answer, and requests
/// in progress get to finish (server::DRAIN), so stopping loses nothing an agent believes
/// delivered.
async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
