//! Where and how the PostgreSQL store connects: the `--db` URL parsed (its password never
//! displayed), the server's trust roots, and the connection pool built from them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::config::{Host, SslMode};

use crate::error::StoreError;

/// Deadline of a new connection (TCP, TLS, authentication), unless the URL sets connect_timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// `--db postgres://...` parsed. The password stays inside `config` and is never displayed.
#[derive(Clone)]
pub struct PostgresTarget {
    config: tokio_postgres::Config,
    /// Extra trust roots for the server's certificate (RDS: its global-bundle.pem).
    pub ca_file: Option<PathBuf>,
    /// Where the password came from, for `check-config`.
    password_source: &'static str,
}

impl std::fmt::Debug for PostgresTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl PostgresTarget {
    /// Parses a `postgres://` or `postgresql://` URL. The error never repeats the URL (it may
    /// hold a password).
    pub fn parse(url: &str) -> Result<PostgresTarget, String> {
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e: tokio_postgres::Error| {
                // The cause names the option, never its value.
                match std::error::Error::source(&e) {
                    Some(cause) => format!("--db is not a valid PostgreSQL URL: {cause}"),
                    None => format!("--db is not a valid PostgreSQL URL: {e}"),
                }
            })?;
        if config.get_hosts().is_empty() {
            return Err(
                "--db names no PostgreSQL host: postgres://USER@HOST[:PORT]/DBNAME".to_string(),
            );
        }
        if config.get_dbname().is_none() {
            return Err("--db names no database: postgres://USER@HOST[:PORT]/DBNAME".to_string());
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.application_name("vpce-collector");
        let password_source = if config.get_password().is_some() {
            "in the URL"
        } else {
            "none"
        };
        Ok(PostgresTarget {
            config,
            ca_file: None,
            password_source,
        })
    }

    /// The password read from a file (`db_password_file`), so that it is in no URL.
    pub fn set_password(&mut self, password: &str) {
        self.config.password(password);
        self.password_source = "from the password file";
    }

    /// Host, port, database, user and TLS mode: what an operator checks. Never the password.
    pub fn describe(&self) -> String {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let ports: Vec<String> = self.config.get_ports().iter().map(u16::to_string).collect();
        let tls = match self.config.get_ssl_mode() {
            SslMode::Disable => "off (sslmode=disable)".to_string(),
            SslMode::Require => "required, certificate verified".to_string(),
            _ => "when the server offers it, certificate verified".to_string(),
        };
        format!(
            "postgres host {} port {} database {} user {} tls {}{} password {}",
            hosts.join(","),
            if ports.is_empty() {
                "5432".to_string()
            } else {
                ports.join(",")
            },
            self.config.get_dbname().unwrap_or("?"),
            self.config.get_user().unwrap_or("(none)"),
            tls,
            self.ca_file
                .as_ref()
                .map(|p| format!(" ca {}", p.display()))
                .unwrap_or_default(),
            self.password_source,
        )
    }
}

impl PostgresTarget {
    /// A pool of up to `size` connections; every wait on it (a connection, its creation, its
    /// recycling) ends after `timeout`.
    pub(super) fn pool(&self, size: usize, timeout: Duration) -> Result<Pool, StoreError> {
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = if self.config.get_ssl_mode() == SslMode::Disable {
            Manager::from_config(self.config.clone(), NoTls, manager_config)
        } else {
            let tls =
                tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(self.ca_file.as_ref())?);
            Manager::from_config(self.config.clone(), tls, manager_config)
        };
        Pool::builder(manager)
            .max_size(size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .build()
            .map_err(|e| StoreError::Postgres(e.to_string()))
    }
}

fn tls_config(ca_file: Option<&PathBuf>) -> Result<rustls::ClientConfig, StoreError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A system root rustls cannot parse is skipped, as the probe's own TLS does.
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| StoreError::Postgres(format!("{}: {e}", path.display())))?;
        for cert in certs {
            let cert =
                cert.map_err(|e| StoreError::Postgres(format!("{}: {e}", path.display())))?;
            roots
                .add(cert)
                .map_err(|e| StoreError::Postgres(format!("{}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Postgres(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
