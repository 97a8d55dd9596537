//! Settings from flags and an optional TOML file (flags win). Everything is checked before the
//! collector listens, so `check-config` and `serve` refuse the same mistakes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use crate::error::ConfigError;
use crate::s3pull::{PullFile, PullFlags, PullSettings};
use crate::store::{PostgresTarget, Target};
use crate::tls::Tls;
use crate::tokens::{SecretFile, parse_read_token, parse_tokens};
use crate::webhook::WebhookSettings;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8480";
pub const DEFAULT_MAX_BODY: u64 = 4 * 1024 * 1024;
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
pub const DEFAULT_READ_TIMEOUT_SECS: u64 = 10;
pub const DEFAULT_WEBHOOK_TIMEOUT_SECS: u64 = 5;

#[derive(Parser, Debug)]
#[command(
    name = "vpce-collector",
    version,
    about = "Receives vpce-probe reports, stores them in SQLite or PostgreSQL and shows the fleet"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Listen for reports and serve the fleet pages, the API and /metrics.
    Serve(Flags),
    /// Check the settings (file, tokens, read token) and print them; exit 2 when wrong.
    CheckConfig(Flags),
    /// Pull the S3 locations once (--pull-s3 or [s3_pull]) into the database and exit: 0 when
    /// everything new was handled, 1 when something is left for the next pull.
    Pull(Flags),
}

#[derive(Args, Debug, Default)]
pub struct Flags {
    /// A TOML file with the same settings (listen, db, db_password_file, db_ca_file, tokens,
    /// read_token_file, max_body, retention_days, read_timeout_secs, tls_cert, tls_key,
    /// webhook_url, webhook_token_file, webhook_timeout_secs, an [s3_pull] table); flags given
    /// here win.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8480].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// The SQLite database file (created on first start), or a PostgreSQL URL
    /// (postgres://USER@HOST[:PORT]/DBNAME[?sslmode=require]) that several replicas share.
    #[arg(long, value_name = "PATH|URL")]
    pub db: Option<PathBuf>,
    /// PostgreSQL: a file holding the password, so that it is in no URL, unit or process list.
    #[arg(long, value_name = "FILE")]
    pub db_password_file: Option<PathBuf>,
    /// PostgreSQL: extra CA certificates (PEM) for the server's certificate, e.g. RDS's
    /// global-bundle.pem; the system's roots are trusted too.
    #[arg(long, value_name = "FILE")]
    pub db_ca_file: Option<PathBuf>,
    /// Ingest tokens: one `label token` per line; re-read when the file changes.
    #[arg(long, value_name = "FILE")]
    pub tokens: Option<PathBuf>,
    /// A file holding the token that reading pages, the API and /metrics needs (Bearer or
    /// ?token=). Required when listening on a non-loopback address.
    #[arg(long, value_name = "FILE")]
    pub read_token_file: Option<PathBuf>,
    /// Largest report accepted, in bytes, after gzip decompression [default: 4194304].
    #[arg(long, value_name = "BYTES")]
    pub max_body: Option<u64>,
    /// Reports older than this many days are deleted [default: 30].
    #[arg(long, value_name = "DAYS")]
    pub retention_days: Option<u32>,
    /// A client that has not sent its whole request within this many seconds is cut off
    /// [default: 10].
    #[arg(long, value_name = "SECS")]
    pub read_timeout_secs: Option<u64>,
    #[command(flatten)]
    pub s3: PullFlags,
    /// Serve HTTPS: the certificate chain (PEM, the server's certificate first). Re-read on
    /// SIGHUP and when the file changes. Needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// POST a small JSON document here when an instance's verdict or root causes change.
    #[arg(long, value_name = "URL")]
    pub webhook_url: Option<String>,
    /// A file holding the bearer token the webhook sends (Authorization: Bearer).
    #[arg(long, value_name = "FILE")]
    pub webhook_token_file: Option<PathBuf>,
    /// Each webhook attempt must be answered within this many seconds [default: 5].
    #[arg(long, value_name = "SECS")]
    pub webhook_timeout_secs: Option<u64>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<String>,
    db: Option<PathBuf>,
    db_password_file: Option<PathBuf>,
    db_ca_file: Option<PathBuf>,
    tokens: Option<PathBuf>,
    read_token_file: Option<PathBuf>,
    max_body: Option<u64>,
    retention_days: Option<u32>,
    read_timeout_secs: Option<u64>,
    s3_pull: Option<PullFile>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    webhook_url: Option<String>,
    webhook_token_file: Option<PathBuf>,
    webhook_timeout_secs: Option<u64>,
}

#[derive(Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    pub db: Target,
    pub tokens: SecretFile,
    pub read_token: Option<SecretFile>,
    pub max_body: u64,
    pub retention_days: u32,
    pub read_timeout: Duration,
    pub s3_pull: Option<PullSettings>,
    /// HTTPS on the listener; None: plain HTTP.
    pub tls: Option<std::sync::Arc<Tls>>,
    pub webhook: Option<WebhookSettings>,
}

impl Settings {
    pub fn resolve(flags: Flags) -> Result<Settings, ConfigError> {
        let file = match &flags.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let listen = match (flags.listen, file.listen) {
            (Some(a), _) => a,
            (None, Some(s)) => s.parse().map_err(|_| ConfigError::Invalid {
                path: flags.config.clone().unwrap_or_default(),
                message: format!("listen = \"{s}\" is not an address:port"),
            })?,
            (None, None) => DEFAULT_LISTEN
                .parse()
                .map_err(|_| ConfigError::Usage("bad default listen address".into()))?,
        };
        let db = flags.db.or(file.db).ok_or_else(|| {
            ConfigError::Usage("--db PATH|URL is required (or db in --config)".into())
        })?;
        let db = resolve_db(
            db,
            flags.db_password_file.or(file.db_password_file),
            flags.db_ca_file.or(file.db_ca_file),
        )?;
        let tokens_path = flags.tokens.or(file.tokens).ok_or_else(|| {
            ConfigError::Usage("--tokens FILE is required (or tokens in --config)".into())
        })?;
        let tokens = SecretFile::open(tokens_path, parse_tokens).map_err(|e| match e {
            ConfigError::Read { path, source } if source.kind() == std::io::ErrorKind::NotFound => {
                ConfigError::Usage(format!(
                    "tokens file {}: not found: create it with one `label token` line per account or team (tokens of 16 characters or more)",
                    path.display()
                ))
            }
            other => other,
        })?;
        let read_token = match flags.read_token_file.or(file.read_token_file) {
            Some(p) => Some(SecretFile::open(p, parse_read_token)?),
            None => None,
        };
        // Fleet pages name accounts, subnets and failures: never open to the network unguarded.
        if !listen.ip().is_loopback() && read_token.is_none() {
            return Err(ConfigError::Usage(format!(
                "listening on {listen} (not loopback) needs --read-token-file: the pages and API would be open to anyone"
            )));
        }
        let max_body = flags.max_body.or(file.max_body).unwrap_or(DEFAULT_MAX_BODY);
        if max_body < 1024 {
            return Err(ConfigError::Usage(format!(
                "max_body {max_body}: at least 1024 bytes"
            )));
        }
        let retention_days = flags
            .retention_days
            .or(file.retention_days)
            .unwrap_or(DEFAULT_RETENTION_DAYS);
        if retention_days == 0 {
            return Err(ConfigError::Usage("retention_days: at least 1".into()));
        }
        let read_timeout_secs = flags
            .read_timeout_secs
            .or(file.read_timeout_secs)
            .unwrap_or(DEFAULT_READ_TIMEOUT_SECS);
        if read_timeout_secs == 0 {
            return Err(ConfigError::Usage("read_timeout_secs: at least 1".into()));
        }
        let s3_pull = PullSettings::resolve(flags.s3, file.s3_pull, max_body, retention_days)
            .map_err(ConfigError::Usage)?;
        let tls = match (
            flags.tls_cert.or(file.tls_cert),
            flags.tls_key.or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(std::sync::Arc::new(Tls::open(cert, key)?)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::Usage(
                    "tls_cert is given without tls_key: give both (PEM files) or neither".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::Usage(
                    "tls_key is given without tls_cert: give both (PEM files) or neither".into(),
                ));
            }
        };
        let webhook_timeout_secs = flags
            .webhook_timeout_secs
            .or(file.webhook_timeout_secs)
            .unwrap_or(DEFAULT_WEBHOOK_TIMEOUT_SECS);
        let webhook_token_file = flags.webhook_token_file.or(file.webhook_token_file);
        let webhook = match flags.webhook_url.or(file.webhook_url) {
            Some(url) => Some(WebhookSettings::new(
                &url,
                webhook_token_file,
                webhook_timeout_secs,
            )?),
            None if webhook_token_file.is_some() => {
                return Err(ConfigError::Usage(
                    "webhook_token_file is given without webhook_url".into(),
                ));
            }
            None => None,
        };
        Ok(Settings {
            listen,
            db,
            tokens,
            read_token,
            max_body,
            retention_days,
            read_timeout: Duration::from_secs(read_timeout_secs),
            s3_pull,
            tls,
            webhook,
        })
    }

    /// `pull` needs the database and the S3 settings only (no tokens, no listener).
    pub fn resolve_pull(flags: Flags) -> Result<(Target, PullSettings), ConfigError> {
        let file = match &flags.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let db = flags.db.or(file.db).ok_or_else(|| {
            ConfigError::Usage("--db PATH|URL is required (or db in --config)".into())
        })?;
        let db = resolve_db(
            db,
            flags.db_password_file.or(file.db_password_file),
            flags.db_ca_file.or(file.db_ca_file),
        )?;
        let max_body = flags.max_body.or(file.max_body).unwrap_or(DEFAULT_MAX_BODY);
        let retention_days = flags
            .retention_days
            .or(file.retention_days)
            .unwrap_or(DEFAULT_RETENTION_DAYS);
        let pull = PullSettings::resolve(flags.s3, file.s3_pull, max_body, retention_days)
            .map_err(ConfigError::Usage)?
            .ok_or_else(|| {
                ConfigError::Usage(
                    "nothing to pull: give --pull-s3 s3://BUCKET/PREFIX/ (or [s3_pull] locations in --config)"
                        .into(),
                )
            })?;
        Ok((db, pull))
    }

    /// What `check-config` prints: never a token.
    pub fn describe(&self) -> String {
        format!(
            "listen {} ({})\ndb {}\ntokens {} ({} labels: {})\nread token {}\nmax_body {} bytes\nretention {} days\nread timeout {} s\nwebhook {}\n",
            self.listen,
            self.tls
                .as_ref()
                .map(|t| format!("HTTPS: certificate {}", t.describe()))
                .unwrap_or_else(|| "plain HTTP".into()),
            self.db.describe(),
            self.tokens.path().display(),
            self.tokens.labels().len(),
            self.tokens.labels().join(", "),
            self.read_token
                .as_ref()
                .map(|r| r.path().display().to_string())
                .unwrap_or_else(|| "none (loopback only)".into()),
            self.max_body,
            self.retention_days,
            self.read_timeout.as_secs(),
            self.webhook
                .as_ref()
                .map(WebhookSettings::describe)
                .unwrap_or_else(|| "none".into()),
        ) + &self
            .s3_pull
            .as_ref()
            .map(PullSettings::describe)
            .unwrap_or_default()
    }
}

/// A `postgres://` or `postgresql://` URL is PostgreSQL; anything else is a SQLite file.
fn resolve_db(
    db: PathBuf,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
) -> Result<Target, ConfigError> {
    let text = db.to_string_lossy();
    if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
        if password_file.is_some() || ca_file.is_some() {
            return Err(ConfigError::Usage(
                "db_password_file and db_ca_file are for a PostgreSQL --db (postgres://...)".into(),
            ));
        }
        return Ok(Target::Sqlite(db));
    }
    let mut target = PostgresTarget::parse(&text).map_err(ConfigError::Usage)?;
    if let Some(path) = password_file {
        let password = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let password = password.trim_end_matches(['\n', '\r']);
        if password.is_empty() {
            return Err(ConfigError::Invalid {
                path,
                message: "the password file is empty".into(),
            });
        }
        target.set_password(password);
    }
    if let Some(path) = ca_file {
        std::fs::metadata(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        target.ca_file = Some(path);
    }
    Ok(Target::Postgres(Box::new(target)))
}

fn read_file(path: &Path) -> Result<FileSettings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Invalid {
        path: path.to_path_buf(),
        message: e.message().to_string(),
    })
}
