use std::path::PathBuf;

/// Start-up and configuration errors: one line each, printed before exit 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{0}")]
    Usage(String),
}

/// Storage errors. Any of them answers 503 to an agent, which retries later.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database: the commit failed: {0}")]
    Commit(String),
    /// PostgreSQL's own message (never the connection settings, which hold the password).
    #[error("database: {0}")]
    Postgres(String),
    #[error("database: no answer within {0} s")]
    Timeout(u64),
    #[error("database task: {0}")]
    Task(String),
}
