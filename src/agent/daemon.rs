//! `vpce-probe agent`: a schedule around [`crate::run_once`]. One run at a time; every report
//! goes to the spool and from there to the sinks; metrics on loopback; systemd's notify protocol
//! (READY, WATCHDOG, RELOADING, STOPPING); SIGHUP reloads, SIGTERM stops within a bound.

use std::path::PathBuf;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use super::config::{self, AgentConfig};
use super::metrics::{self, Health, Liveness, Metrics};
use super::shipper::{self, Observers, SharedSpool, Signals, with_spool};
use super::sinks::{Sender, SinkSetupError};
use super::spool::{Spool, SpoolConfig, SpoolStats};
use crate::config::Environment;
use crate::durations::after;
use crate::report::{OverallStatus, Report};

/// How long SIGTERM lets a run in progress finish before abandoning it.
pub const RUN_GRACE: Duration = Duration::from_secs(5);
/// How long SIGTERM lets the shippers empty the spool (what is left is sent at the next start).
pub const FLUSH_GRACE: Duration = Duration::from_secs(5);
/// Slack on top of every promise the loop makes to the watchdog and /healthz.
const LIVENESS_SLACK: Duration = Duration::from_secs(30);

/// Why the agent did not start. The first two are bad input (exit 2, like every usage error),
/// the others something on the machine (exit 3).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A bad configuration file.
    #[error(transparent)]
    Config(#[from] config::AgentConfigError),
    /// A sink the file describes that cannot be built (its CA file, its HTTP client).
    #[error(transparent)]
    Sink(#[from] SinkSetupError),
    #[error(
        "cannot listen on {addr} for metrics: {source} (set [metrics] listen to a free address, or \"none\")"
    )]
    MetricsListen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot handle {signal}: {source}")]
    Signal {
        signal: &'static str,
        source: std::io::Error,
    },
    /// The spool directory cannot be opened (permissions, a full disk, another agent's lock).
    #[error("{0}")]
    Spool(String),
}

impl StartError {
    /// Whether the configuration is at fault (exit 2) rather than the machine (exit 3).
    pub fn is_bad_configuration(&self) -> bool {
        matches!(self, StartError::Config(_) | StartError::Sink(_))
    }
}

enum Control {
    Reload,
    Shutdown(&'static str),
}

/// The running shippers, one per sink.
struct Shippers {
    handles: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl Shippers {
    /// Tells them to stop and waits at most until `deadline` for each.
    async fn stop(&mut self, deadline: Instant) {
        let _ = self.stop.send(true);
        for h in self.handles.drain(..) {
            if tokio::time::timeout_at(deadline.into(), h).await.is_err() {
                warn!("a sink did not stop in time; its report stays in the spool");
            }
        }
    }
}

struct Agent {
    path: PathBuf,
    env: Environment,
    metrics: Arc<Metrics>,
    liveness: Arc<Liveness>,
    health: Arc<Health>,
    spool: SharedSpool,
    pushed: watch::Sender<u64>,
    config: AgentConfig,
    shippers: Shippers,
}

/// Runs until SIGTERM or SIGINT. Ok after a clean stop.
pub async fn run(path: PathBuf, env: Environment) -> Result<(), StartError> {
    let config = config::load(&path, env.clone())?;
    let metrics = Arc::new(Metrics::new());
    // Saturating throughout: durations are bounded by the config (durations::MAX_WAIT), and
    // the arithmetic on them must not panic even if a bound is ever raised.
    let liveness = Arc::new(Liveness::new(
        config
            .probe
            .deadline
            .saturating_add(RUN_GRACE)
            .saturating_add(LIVENESS_SLACK),
    ));
    let listener = match config.metrics_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::MetricsListen { addr, source })?,
        ),
        None => None,
    };
    // Signal handlers before anything that takes time: a SIGTERM from now on is ours to handle.
    let (control_tx, mut control) = mpsc::channel(8);
    spawn_signal_listener(control_tx)?;

    let health = Arc::new(Health::new(config.unhealthy_after));
    let spool: SharedSpool = Arc::new(Mutex::new(None));
    open_spool(&spool, &config, &metrics)
        .await
        .map_err(StartError::Spool)?;
    let senders = build_senders(&config)?;
    let (pushed, _) = watch::channel(0u64);
    let observers = Observers {
        metrics: metrics.clone(),
        health: health.clone(),
    };
    let shippers = start_shippers(&config, senders, &spool, &observers, &pushed);
    let mut agent = Agent {
        path,
        env,
        metrics,
        liveness,
        health,
        spool,
        pushed,
        config,
        shippers,
    };
    agent.publish_spool_content().await;

    let metrics_server = listener.map(|l| {
        let addr = l.local_addr().ok();
        info!(listen = ?addr, "metrics at /metrics, liveness at /healthz");
        tokio::spawn(metrics::serve(
            l,
            agent.metrics.clone(),
            agent.liveness.clone(),
            agent.health.clone(),
        ))
    });
    let watchdog = spawn_watchdog(agent.liveness.clone());
    notify(&[
        NotifyState::Ready,
        NotifyState::Status("probing on schedule"),
    ]);
    info!(
        config = %agent.path.display(),
        interval_s = agent.config.interval.as_secs_f64(),
        targets = agent.config.probe.buckets.len() + agent.config.probe.tables.len(),
        sinks = agent.config.sinks.len(),
        "agent started"
    );

    let reason = agent.schedule(&mut control).await;
    notify(&[NotifyState::Stopping]);
    info!(reason, "stopping");
    agent.flush_and_stop().await;
    if let Some(w) = watchdog {
        w.abort();
    }
    if let Some(m) = metrics_server {
        m.abort();
    }
    info!("agent stopped");
    Ok(())
}

impl Agent {
    /// The schedule: a run at start, then one every interval (plus jitter); returns why it
    /// stopped.
    async fn schedule(&mut self, control: &mut mpsc::Receiver<Control>) -> &'static str {
        let mut last_status: Option<OverallStatus> = None;
        let mut next_run = Instant::now();
        loop {
            let wait = next_run.saturating_duration_since(Instant::now());
            self.liveness.promise(wait.saturating_add(LIVENESS_SLACK));
            tokio::select! {
                _ = tokio::time::sleep_until(next_run.into()) => {}
                c = control.recv() => match c {
                    Some(Control::Reload) => { self.reload().await; continue; }
                    Some(Control::Shutdown(why)) => return why,
                    None => return "signal listener gone",
                },
            }
            let started = Instant::now();
            let probe = self.config.probe.clone();
            self.liveness.promise(
                probe
                    .deadline
                    .saturating_add(RUN_GRACE)
                    .saturating_add(LIVENESS_SLACK),
            );
            let mut run = pin!(crate::run_once(&probe));
            let mut reload_after = false;
            let mut stop: Option<&'static str> = None;
            let report: Option<Report> = loop {
                tokio::select! {
                    r = &mut run => break Some(r),
                    c = control.recv() => match c {
                        Some(Control::Reload) => reload_after = true,
                        Some(Control::Shutdown(why)) => {
                            stop = Some(why);
                            info!(grace_ms = RUN_GRACE.as_millis() as u64, "a run is in progress; letting it finish");
                            match tokio::time::timeout(RUN_GRACE, &mut run).await {
                                Ok(r) => break Some(r),
                                Err(_) => {
                                    warn!("abandoned the run in progress to stop in time");
                                    self.metrics.run_abandoned();
                                    break None;
                                }
                            }
                        }
                        None => { stop = Some("signal listener gone"); break None; }
                    },
                }
            };
            if let Some(report) = report {
                self.record(&report, &mut last_status).await;
            }
            if let Some(why) = stop {
                return why;
            }
            if reload_after {
                self.reload().await;
            }
            let config = &self.config;
            let jitter = config.jitter.mul_f64(fastrand::f64());
            next_run = after(started, config.interval.saturating_add(jitter)).max(Instant::now());
        }
    }

    async fn record(&mut self, report: &Report, last_status: &mut Option<OverallStatus>) {
        self.metrics.record_run(report);
        let status = report.verdict.status;
        let causes: Vec<String> = report
            .verdict
            .root_causes
            .iter()
            .map(|c| format!("{} {}: {}", c.code, c.target, c.title))
            .collect();
        match (*last_status, status) {
            (prev, OverallStatus::Problems) if prev != Some(OverallStatus::Problems) => warn!(
                report_id = %report.report_id,
                summary = %report.verdict.summary,
                root_causes = %causes.join("; "),
                "status changed: problems"
            ),
            (Some(OverallStatus::Problems), OverallStatus::Healthy) => warn!(
                report_id = %report.report_id,
                summary = %report.verdict.summary,
                "status changed: healthy again"
            ),
            _ => info!(
                report_id = %report.report_id,
                status = ?status,
                duration_ms = report.duration_ms,
                findings = report.findings.len(),
                "run finished"
            ),
        }
        *last_status = Some(status);
        if self.config.sinks.is_empty() {
            return;
        }
        let json = crate::render::json::to_string(report).into_bytes();
        let report_id = report.report_id.clone();
        let metrics = self.metrics.clone();
        let pushed = with_spool(&self.spool, move |s| {
            let before = s.stats();
            let result = s.push(&report_id, &json).map_err(|e| e.to_string());
            // Counted before what the push's bounds dropped: a scrape never sees more
            // reports dropped than spooled.
            if result.is_ok() {
                metrics.spooled();
            }
            metrics.spool_bounds(&before, &s.stats());
            result
        })
        .await;
        self.health
            .spool_written(pushed.as_ref().map(|_| ()).map_err(String::as_str));
        match pushed {
            Ok(_) => {
                self.pushed.send_modify(|n| *n += 1);
            }
            Err(e) => {
                self.metrics.dropped("spool_error", 1);
                error!(report_id = %report.report_id, error = %e, "cannot spool the report; it is lost");
            }
        }
        self.publish_spool_content().await;
    }

    async fn publish_spool_content(&self) {
        if let Ok(stats) = with_spool(&self.spool, |s| Ok(s.stats())).await {
            self.metrics.spool_content(stats.entries, stats.bytes);
        }
    }

    /// SIGHUP: read the file again; a bad file changes nothing and says why.
    async fn reload(&mut self) {
        notify(&[NotifyState::Reloading, monotonic_now()]);
        match self.try_reload().await {
            Ok(()) => {
                self.metrics.reloaded(true);
                info!(config = %self.path.display(), "configuration reloaded");
                notify(&[
                    NotifyState::Ready,
                    NotifyState::Status("probing on schedule"),
                ]);
            }
            Err(e) => {
                self.metrics.reloaded(false);
                error!(config = %self.path.display(), error = %e, "reload refused; the previous configuration stays");
                let status = format!("reload refused: {e}");
                notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
            }
        }
    }

    async fn try_reload(&mut self) -> Result<(), String> {
        let mut new = config::load(&self.path, self.env.clone()).map_err(|e| e.to_string())?;
        let old = &self.config;
        if new.metrics_listen != old.metrics_listen {
            warn!("metrics.listen changed: it takes effect at the next restart");
            new.metrics_listen = old.metrics_listen;
        }
        let senders = build_senders(&new).map_err(|e| e.to_string())?;
        let spool_changed = new.spool_dir != old.spool_dir
            || new.spool_max_bytes != old.spool_max_bytes
            || new.spool_max_age != old.spool_max_age
            || new.dead_letter_max_bytes != old.dead_letter_max_bytes
            || new.dead_letter_max_age != old.dead_letter_max_age
            || new.sinks != old.sinks;
        // Shippers are rebuilt on every reload (a CA or token file may have changed); a
        // delivery in flight is waited for, so that its acknowledgement is not lost.
        self.shippers
            .stop(after(
                Instant::now(),
                new.shipping.timeout.saturating_add(Duration::from_secs(2)),
            ))
            .await;
        if spool_changed && let Err(e) = open_spool(&self.spool, &new, &self.metrics).await {
            // Back to the old spool and sinks.
            if let Err(e2) = open_spool(&self.spool, &self.config, &self.metrics).await {
                error!(error = %e2, "cannot reopen the previous spool either; reports are not spooled until the next good reload or a restart");
            }
            let old_senders = build_senders(&self.config).unwrap_or_default();
            self.shippers = start_shippers(
                &self.config,
                old_senders,
                &self.spool,
                &self.observers(),
                &self.pushed,
            );
            return Err(e);
        }
        self.shippers = start_shippers(&new, senders, &self.spool, &self.observers(), &self.pushed);
        let names: Vec<String> = new.sinks.iter().map(|s| s.name().to_string()).collect();
        self.health.reconfigure(new.unhealthy_after, &names);
        self.config = new;
        self.publish_spool_content().await;
        Ok(())
    }

    fn observers(&self) -> Observers {
        Observers {
            metrics: self.metrics.clone(),
            health: self.health.clone(),
        }
    }

    /// SIGTERM: give the shippers a bounded moment to empty the spool, then stop them. What is
    /// left stays on disk and goes at the next start.
    async fn flush_and_stop(&mut self) {
        let until = Instant::now() + FLUSH_GRACE;
        let sinks: Vec<String> = self
            .config
            .sinks
            .iter()
            .map(|s| s.name().to_string())
            .collect();
        while Instant::now() < until && !sinks.is_empty() {
            let names = sinks.clone();
            let left = with_spool(&self.spool, move |s| {
                Ok(names.iter().map(|n| s.pending_for(n).len()).sum::<usize>())
            })
            .await
            .unwrap_or(0);
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.shippers
            .stop(until.max(Instant::now() + Duration::from_millis(500)))
            .await;
        if let Ok(stats) = with_spool(&self.spool, |s| Ok(s.stats())).await
            && stats.entries > 0
        {
            info!(
                entries = stats.entries,
                "reports left in the spool are sent at the next start"
            );
        }
    }
}

fn build_senders(config: &AgentConfig) -> Result<Vec<Sender>, SinkSetupError> {
    let probe = Arc::new(config.probe.clone());
    config
        .sinks
        .iter()
        .map(|s| Sender::new(s, probe.clone(), &config.shipping))
        .collect()
}

fn start_shippers(
    config: &AgentConfig,
    senders: Vec<Sender>,
    spool: &SharedSpool,
    observers: &Observers,
    pushed: &watch::Sender<u64>,
) -> Shippers {
    let (stop_tx, stop) = watch::channel(false);
    let handles = senders
        .into_iter()
        .map(|sender| {
            shipper::spawn(
                sender,
                spool.clone(),
                config.shipping,
                observers.clone(),
                Signals {
                    pushed: pushed.subscribe(),
                    stop: stop.clone(),
                },
            )
        })
        .collect();
    Shippers {
        handles,
        stop: stop_tx,
    }
}

/// (Re)opens the spool for `config`: the old one is closed first (it holds the directory's lock).
/// The files the open skipped (corrupt entries, strangers) are counted in the metrics.
async fn open_spool(
    spool: &SharedSpool,
    config: &AgentConfig,
    metrics: &Arc<Metrics>,
) -> Result<(), String> {
    let metrics = metrics.clone();
    let spool = spool.clone();
    let sinks: Vec<String> = config.sinks.iter().map(|s| s.name().to_string()).collect();
    let spool_config = SpoolConfig {
        dir: config.spool_dir.clone(),
        max_bytes: config.spool_max_bytes,
        max_age: config.spool_max_age,
        sinks,
        dead_letter_max_bytes: config.dead_letter_max_bytes,
        dead_letter_max_age: config.dead_letter_max_age,
    };
    tokio::task::spawn_blocking(move || {
        let mut guard = spool
            .lock()
            .map_err(|_| "the spool lock is poisoned".to_string())?;
        *guard = None;
        if spool_config.sinks.is_empty() {
            return Ok(());
        }
        let opened = Spool::open(spool_config).map_err(|e| e.to_string())?;
        let stats = opened.stats();
        metrics.spool_skipped(stats.skipped_files);
        // What the open's bounds deleted: every counter of a fresh open starts at zero.
        metrics.spool_bounds(&SpoolStats::default(), &stats);
        if stats.entries > 0 {
            info!(
                entries = stats.entries,
                "reports found in the spool; sending them"
            );
        }
        *guard = Some(opened);
        Ok(())
    })
    .await
    .map_err(|e| format!("spool task: {e}"))?
}

fn spawn_signal_listener(tx: mpsc::Sender<Control>) -> Result<(), StartError> {
    use tokio::signal::unix::{SignalKind, signal};
    let listen = |kind: SignalKind, name: &'static str| {
        signal(kind).map_err(|source| StartError::Signal {
            signal: name,
            source,
        })
    };
    let mut term = listen(SignalKind::terminate(), "SIGTERM")?;
    let mut int = listen(SignalKind::interrupt(), "SIGINT")?;
    let mut hup = listen(SignalKind::hangup(), "SIGHUP")?;
    tokio::spawn(async move {
        loop {
            let c = tokio::select! {
                _ = term.recv() => Control::Shutdown("SIGTERM"),
                _ = int.recv() => Control::Shutdown("SIGINT"),
                _ = hup.recv() => Control::Reload,
            };
            if tx.send(c).await.is_err() {
                return;
            }
        }
    });
    Ok(())
}

/// Pings systemd's watchdog at half its period while the schedule keeps its promises; a stuck
/// loop stops the pings and systemd restarts the service.
fn spawn_watchdog(liveness: Arc<Liveness>) -> Option<JoinHandle<()>> {
    let period = sd_notify::watchdog_enabled()?;
    info!(
        period_ms = period.as_millis() as u64,
        "systemd watchdog enabled"
    );
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(period / 2);
        loop {
            tick.tick().await;
            if liveness.alive() {
                notify(&[NotifyState::Watchdog]);
            } else {
                error!("the probe schedule missed its deadline; no watchdog ping");
            }
        }
    }))
}

fn monotonic_now() -> NotifyState<'static> {
    NotifyState::monotonic_usec_now().unwrap_or(NotifyState::MonotonicUsec(0))
}

/// Sends to systemd from a thread of its own: the notify socket is a blocking datagram socket,
/// and a manager that stops reading must never stall the schedule. Messages that find the queue
/// full are dropped (the next WATCHDOG or READY supersedes them). Without NOTIFY_SOCKET (not
/// under systemd) this does nothing.
fn notify(states: &[NotifyState]) {
    static NOTIFIER: std::sync::OnceLock<Option<std::sync::mpsc::SyncSender<String>>> =
        std::sync::OnceLock::new();
    let sender = NOTIFIER.get_or_init(|| {
        std::env::var_os("NOTIFY_SOCKET")?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<String>(16);
        std::thread::Builder::new()
            .name("sd-notify".into())
            .spawn(move || {
                for message in rx {
                    if let Err(e) = sd_notify::notify(&[NotifyState::Custom(&message)]) {
                        warn!(error = %e, "cannot notify systemd");
                    }
                }
            })
            .ok()?;
        Some(tx)
    });
    if let Some(tx) = sender {
        let message: Vec<String> = states.iter().map(ToString::to_string).collect();
        let _ = tx.try_send(message.join("\n"));
    }
}
