//! vpce-collector: receives the reports of vpce-probe agents, stores them in SQLite or PostgreSQL and shows
//! the fleet (pages, JSON API, Prometheus metrics). docs/collector.md describes it.

mod config;
mod error;
mod ingest;
mod metrics;
mod model;
mod pages;
mod server;
mod store;
mod tokens;

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
        .init();
    let (flags, serve) = match cli.command {
        Command::Serve(f) => (f, true),
        Command::CheckConfig(f) => (f, false),
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
    let app = Arc::new(App {
        settings,
        store: store.clone(),
        metrics: metrics::Metrics::new(),
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
    // Tests and scripts wait for this line to know the port (with --listen 127.0.0.1:0).
    info!(listen = %local, "vpce-collector listening");
    eprintln!("listening on {local}");
    tokio::select! {
        _ = server::serve(listener, app) => ExitCode::SUCCESS,
        _ = shutdown() => {
            info!("stopping");
            ExitCode::SUCCESS
        }
    }
}

/// SIGTERM or SIGINT. Every acknowledged report is already committed, so stopping mid-request
/// loses nothing an agent believes delivered.
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
