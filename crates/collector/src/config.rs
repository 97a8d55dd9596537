//! Settings from flags and an optional TOML file (flags win). Everything is checked before the
//! collector listens, so `check-config` and `serve` refuse the same mistakes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use crate::error::ConfigError;
use crate::store::{PostgresTarget, Target};
use crate::tokens::{SecretFile, parse_read_token, parse_tokens};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8480";
pub const DEFAULT_MAX_BODY: u64 = 4 * 1024 * 1024;
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
pub const DEFAULT_READ_TIMEOUT_SECS: u64 = 10;

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
}

#[derive(Args, Debug, Default)]
pub struct Flags {
    /// A TOML file with the same settings (listen, db, db_password_file, db_ca_file, tokens,
    /// read_token_file, max_body, retention_days, read_timeout_secs); flags given here win.
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
        let tokens = SecretFile::open(tokens_path, parse_tokens)?;
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
        Ok(Settings {
            listen,
            db,
            tokens,
            read_token,
            max_body,
            retention_days,
            read_timeout: Duration::from_secs(read_timeout_secs),
        })
    }

    /// What `check-config` prints: never a token.
    pub fn describe(&self) -> String {
        format!(
            "listen {}\ndb {}\ntokens {} ({} labels: {})\nread token {}\nmax_body {} bytes\nretention {} days\nread timeout {} s\n",
            self.listen,
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
        )
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
