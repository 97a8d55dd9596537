//! TLS on the listener (`--tls-cert`, `--tls-key`): the certificate chain and its key from PEM
//! files, checked whole at start and by `check-config` (missing file, no PEM, a key that does
//! not match the certificate). The files are looked at again at each new connection (two stats)
//! and on SIGHUP: a renewed pair is taken at once, a broken or half-written one keeps the pair
//! read before and says so in the log once per change.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, info, warn};

use crate::error::ConfigError;

type Stamp = Option<(SystemTime, u64)>;

pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    state: Mutex<State>,
}

struct State {
    stamps: (Stamp, Stamp),
    acceptor: TlsAcceptor,
    /// What `check-config` prints about the certificate (never the key).
    subject: String,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Tls {
    pub fn open(cert: PathBuf, key: PathBuf) -> Result<Tls, ConfigError> {
        let stamps = (stamp(&cert), stamp(&key));
        let (config, subject) = load(&cert, &key)?;
        Ok(Tls {
            cert,
            key,
            state: Mutex::new(State {
                stamps,
                acceptor: TlsAcceptor::from(Arc::new(config)),
                subject,
            }),
        })
    }

    pub fn describe(&self) -> String {
        format!(
            "{} ({}), key {}",
            self.cert.display(),
            self.lock().subject,
            self.key.display()
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The acceptor for a new connection, re-read first when either file changed.
    pub fn acceptor(&self) -> TlsAcceptor {
        let stamps = (stamp(&self.cert), stamp(&self.key));
        if self.lock().stamps != stamps {
            self.reload(stamps, "the files changed");
        }
        self.lock().acceptor.clone()
    }

    /// SIGHUP: read both files again whatever their stamps say.
    pub fn reload_now(&self) {
        self.reload((stamp(&self.cert), stamp(&self.key)), "SIGHUP");
    }

    fn reload(&self, stamps: (Stamp, Stamp), why: &str) {
        match load(&self.cert, &self.key) {
            Ok((config, subject)) => {
                let mut state = self.lock();
                state.acceptor = TlsAcceptor::from(Arc::new(config));
                state.stamps = stamps;
                info!(cert = %self.cert.display(), %subject, reason = why, "TLS certificate loaded");
                state.subject = subject;
            }
            Err(e) => {
                // Remember the stamps so a bad pair is reported once per change, not per
                // connection; the next change (the second file of a renewal) tries again.
                self.lock().stamps = stamps;
                warn!(error = %e, reason = why, "TLS certificate not reloaded; keeping the one read before");
            }
        }
    }
}

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn read(path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn invalid(path: &Path, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Reads and checks the pair: the server configuration and a one-line description.
pub fn load(cert_path: &Path, key_path: &Path) -> Result<(ServerConfig, String), ConfigError> {
    let cert_pem = read(cert_path)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(cert_path, format!("not a PEM certificate file: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(invalid(
            cert_path,
            "no PEM certificate in the file (-----BEGIN CERTIFICATE-----): give the certificate chain, the server's certificate first",
        ));
    };
    let subject = describe_leaf(leaf);
    let key_pem = read(key_path)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        invalid(
            key_path,
            format!(
                "no PEM private key in the file (PKCS#8, PKCS#1 or SEC1: -----BEGIN PRIVATE KEY-----): {e}"
            ),
        )
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(cert_path, format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => invalid(
                key_path,
                format!(
                    "this key does not match the certificate in {} (give the key the certificate was issued for)",
                    cert_path.display()
                ),
            ),
            other => invalid(key_path, format!("unusable key: {other}")),
        })?;
    Ok((config, subject))
}

/// "CN=collector.example.com, valid until 2027-01-01 00:00:00 +00:00", from the leaf's DER.
fn describe_leaf(leaf: &CertificateDer<'_>) -> String {
    match x509_parser::parse_x509_certificate(leaf.as_ref()) {
        Ok((_, cert)) => format!(
            "{}, valid until {}",
            cert.subject(),
            cert.validity().not_after
        ),
        Err(_) => format!("{} bytes of DER", leaf.as_ref().len()),
    }
}

/// A TLS handshake, or a clear answer to a client that spoke plain HTTP to the TLS port.
pub async fn accept(
    tls: &Tls,
    stream: TcpStream,
    timeout: Duration,
) -> Option<TlsStream<TcpStream>> {
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout(timeout, stream.peek(&mut first)).await;
    if !matches!(peeked, Ok(Ok(1))) {
        return None;
    }
    // Every TLS connection starts with a handshake record (content type 22).
    if first[0] != 0x16 {
        plain_http_answer(stream).await;
        return None;
    }
    match tokio::time::timeout(timeout, tls.acceptor().accept(stream)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            debug!(error = %e, "TLS handshake");
            None
        }
        Err(_) => {
            debug!("TLS handshake timed out");
            None
        }
    }
}

async fn plain_http_answer(mut stream: TcpStream) {
    let body = "this port speaks HTTPS: use an https:// URL\n";
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let write = async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), write).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params =
            rcgen::CertificateParams::new(vec!["collector.test".to_string()]).expect("params");
        let cert = params.self_signed(&key).expect("cert");
        let c = dir.join(format!("{name}.crt"));
        let k = dir.join(format!("{name}.key"));
        std::fs::write(&c, cert.pem()).expect("write");
        std::fs::write(&k, key.serialize_pem()).expect("write");
        (c, k)
    }

    #[test]
    fn checks_the_pair_with_one_line_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (c1, k1) = pair(dir.path(), "one");
        let (_c2, k2) = pair(dir.path(), "two");
        let (_, subject) = load(&c1, &k1).expect("a matching pair loads");
        assert!(
            subject.starts_with("CN=rcgen self signed cert, valid until "),
            "{subject}"
        );

        let missing = load(&dir.path().join("nope.crt"), &k1).expect_err("missing");
        assert!(
            missing.to_string().contains("nope.crt: No such file"),
            "{missing}"
        );

        let not_pem = dir.path().join("garbage.crt");
        std::fs::write(&not_pem, "hello\n").expect("write");
        let e = load(&not_pem, &k1).expect_err("not PEM");
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        let e = load(&c1, &not_pem).expect_err("key not PEM");
        assert!(e.to_string().contains("no PEM private key"), "{e}");
        // The certificate file given as the key, and the key as the certificate.
        let e = load(&c1, &c1).expect_err("certificate as key");
        assert!(e.to_string().contains("no PEM private key"), "{e}");
        let e = load(&k1, &k1).expect_err("key as certificate");
        assert!(e.to_string().contains("no PEM certificate"), "{e}");

        let e = load(&c1, &k2).expect_err("another key");
        assert!(
            e.to_string().contains("does not match the certificate"),
            "{e}"
        );
        for err in [missing, e] {
            assert!(!err.to_string().contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn a_changed_pair_is_taken_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (c, k) = pair(dir.path(), "live");
        let tls = Tls::open(c.clone(), k.clone()).expect("open");
        let before = tls.describe();
        // A key that no longer matches: the old pair stays.
        let (_, other_key) = pair(dir.path(), "other");
        std::fs::copy(&other_key, &k).expect("copy");
        let _ = tls.acceptor();
        assert_eq!(tls.describe(), before);
        // A whole new pair with another name is taken at the next connection.
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec!["renewed.test".into()]).expect("p");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "renewed.test");
        let cert = params.self_signed(&key).expect("cert");
        std::fs::write(&c, cert.pem()).expect("write");
        std::fs::write(&k, key.serialize_pem()).expect("write");
        let _ = tls.acceptor();
        assert!(
            tls.describe().contains("CN=renewed.test"),
            "{}",
            tls.describe()
        );
    }
}
