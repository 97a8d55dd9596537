//! TLS with rustls: the host's trust roots plus AWS_CA_BUNDLE / SSL_CERT_FILE, and a verifier
//! that keeps the presented chain even when verification fails, so the report can say who
//! issued the certificate a middlebox presented.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;

use crate::report::{CertificateInfo, TlsOutcome};
use vpce_probe_diagnosis::reading::tls::issuer_expected;

/// System roots plus the extra PEM files; what of the system's could not be loaded, and the
/// first extra file that is not a usable PEM bundle.
fn root_store(
    extra_pem_files: &[std::path::PathBuf],
) -> (RootCertStore, Vec<String>, Option<String>) {
    let mut roots = RootCertStore::empty();
    let mut load_errors = Vec::new();
    let native = rustls_native_certs::load_native_certs();
    for e in native.errors {
        load_errors.push(e.to_string());
    }
    let (_added, _ignored) = roots.add_parsable_certificates(native.certs);
    let mut extra_error = None;
    for path in extra_pem_files {
        match pem_bundle(path) {
            Ok(certs) => {
                roots.add_parsable_certificates(certs);
            }
            Err(e) => {
                load_errors.push(e.clone());
                extra_error.get_or_insert(e);
            }
        }
    }
    (roots, load_errors, extra_error)
}

/// The certificates of a CA bundle a person named (AWS_CA_BUNDLE, SSL_CERT_FILE, a sink's
/// ca_file), read through [`crate::fsread`]; see [`pem_certificates`].
pub fn pem_bundle(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = crate::fsread::read(path, crate::fsread::MAX_CA_BUNDLE)?;
    pem_certificates(&bytes).map_err(|e| {
        format!(
            "{}: not a usable PEM bundle: {e}",
            crate::escape::shown_path(path)
        )
    })
}

/// Every certificate of a PEM bundle, each parsed as a trust anchor; refused whole if any
/// section is broken (a truncated file, bad base64, DER that is no certificate) or there is
/// none. The AWS SDK's HTTP client panics on such a bundle, so it is checked before.
pub fn pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .enumerate()
        .map(|(i, c)| c.map_err(|e| format!("certificate {}: {e}", i + 1)))
        .collect::<Result<Vec<_>, _>>()?;
    if certs.is_empty() {
        return Err("no PEM certificate in it".into());
    }
    for (i, cert) in certs.iter().enumerate() {
        RootCertStore::empty().add(cert.clone()).map_err(|e| {
            format!(
                "certificate {} is not a valid X.509 certificate: {e}",
                i + 1
            )
        })?;
    }
    Ok(certs)
}

/// A verifying client configuration (for the report sinks): system roots plus the extra PEM
/// files; a file that is not a usable bundle is an error here, since the sink would fail on
/// every send.
pub fn client_config(
    extra_pem_files: &[std::path::PathBuf],
) -> Result<rustls::ClientConfig, String> {
    let (roots, _, extra_error) = root_store(extra_pem_files);
    if let Some(e) = extra_error {
        return Err(format!("trust roots: {e}"));
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS: {e}"))
    .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

#[derive(Clone)]
pub struct TlsContext {
    provider: Arc<CryptoProvider>,
    verifier: Arc<WebPkiServerVerifier>,
    pub roots: usize,
    pub load_errors: Vec<String>,
}

impl TlsContext {
    /// System roots plus the extra PEM files (AWS_CA_BUNDLE, SSL_CERT_FILE). A broken extra
    /// file is an error: the applications that read it fail too (the AWS SDK for Rust panics).
    pub fn new(extra_pem_files: &[std::path::PathBuf]) -> Result<Self, String> {
        let provider = Arc::new(sdk_cipher_suites(
            rustls::crypto::aws_lc_rs::default_provider(),
        ));
        let (roots, load_errors, extra_error) = root_store(extra_pem_files);
        if let Some(e) = extra_error {
            return Err(e);
        }
        let count = roots.len();
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("no usable trust roots: {e}"))?;
        Ok(TlsContext {
            provider,
            verifier,
            roots: count,
            load_errors,
        })
    }

    /// Handshake on an established TCP stream; `expect_issuers` are substrings of a genuine issuer.
    pub async fn handshake(
        &self,
        stream: TcpStream,
        name: &str,
        timeout: Duration,
        expect_issuers: &[String],
    ) -> HandshakeResult {
        let started = Instant::now();
        let capture = Arc::new(CapturingVerifier {
            inner: self.verifier.clone(),
            chain: Mutex::new(Vec::new()),
        });
        let config = match rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
        {
            Ok(b) => b
                .dangerous()
                .with_custom_certificate_verifier(capture.clone())
                .with_no_client_auth(),
            Err(e) => {
                return HandshakeResult::failed(
                    TlsOutcome::HandshakeFailed,
                    e.to_string(),
                    started,
                );
            }
        };
        let server_name = match ServerName::try_from(name.to_string()) {
            Ok(n) => n,
            Err(e) => {
                return HandshakeResult::failed(
                    TlsOutcome::HandshakeFailed,
                    e.to_string(),
                    started,
                );
            }
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let result = tokio::time::timeout(timeout, connector.connect(server_name, stream)).await;
        let chain = capture
            .chain
            .lock()
            .map(|c| c.iter().map(|der| describe_certificate(der)).collect())
            .unwrap_or_default();
        let mut out = HandshakeResult {
            outcome: TlsOutcome::Verified,
            error: None,
            protocol: None,
            cipher_suite: None,
            chain,
            elapsed: started.elapsed(),
            stream: None,
        };
        match result {
            Err(_) => {
                out.outcome = TlsOutcome::Timeout;
                out.error = Some(format!("no handshake within {} ms", timeout.as_millis()));
            }
            Ok(Err(e)) => {
                out.outcome = classify_error(&e);
                out.error = Some(e.to_string());
            }
            Ok(Ok(tls)) => {
                let (_, conn) = tls.get_ref();
                out.protocol = conn.protocol_version().map(|v| format!("{v:?}"));
                out.cipher_suite = conn
                    .negotiated_cipher_suite()
                    .map(|s| format!("{:?}", s.suite()));
                if issuer_expected(&out.chain, expect_issuers) {
                    out.stream = Some(tls);
                } else {
                    out.outcome = TlsOutcome::UnexpectedIssuer;
                }
            }
        }
        out
    }
}

pub struct HandshakeResult {
    pub outcome: TlsOutcome,
    pub error: Option<String>,
    pub protocol: Option<String>,
    pub cipher_suite: Option<String>,
    pub chain: Vec<CertificateInfo>,
    pub elapsed: Duration,
    /// The verified connection, for the calls (net/handoff.rs); None unless `Verified`.
    pub stream: Option<tokio_rustls::client::TlsStream<TcpStream>>,
}

impl HandshakeResult {
    fn failed(outcome: TlsOutcome, error: String, started: Instant) -> Self {
        HandshakeResult {
            outcome,
            error: Some(error),
            protocol: None,
            cipher_suite: None,
            chain: Vec::new(),
            elapsed: started.elapsed(),
            stream: None,
        }
    }
}

/// The cipher suites the AWS SDK's HTTP client offers (aws-smithy-http-client restricts
/// rustls's defaults to these): a verified connection is handed to the signed calls, so it
/// must be one the SDK's client could have made itself.
fn sdk_cipher_suites(base: CryptoProvider) -> CryptoProvider {
    use rustls::CipherSuite as S;
    const SDK_SUITES: &[S] = &[
        S::TLS13_AES_256_GCM_SHA384,
        S::TLS13_AES_128_GCM_SHA256,
        S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        S::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ];
    let cipher_suites = SDK_SUITES
        .iter()
        .filter_map(|wanted| {
            base.cipher_suites
                .iter()
                .find(|s| s.suite() == *wanted)
                .copied()
        })
        .collect();
    CryptoProvider {
        cipher_suites,
        ..base
    }
}

fn classify_error(e: &std::io::Error) -> TlsOutcome {
    let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return TlsOutcome::HandshakeFailed;
    };
    match inner {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsOutcome::WrongName
            }
            CertificateError::UnknownIssuer => TlsOutcome::UntrustedIssuer,
            _ => TlsOutcome::InvalidCertificate,
        },
        _ => TlsOutcome::HandshakeFailed,
    }
}

pub fn describe_certificate(der: &CertificateDer<'_>) -> CertificateInfo {
    match x509_parser::parse_x509_certificate(der.as_ref()) {
        Ok((_, cert)) => {
            let dns_names = cert
                .subject_alternative_name()
                .ok()
                .flatten()
                .map(|san| {
                    san.value
                        .general_names
                        .iter()
                        .filter_map(|n| match n {
                            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            CertificateInfo {
                subject: cert.subject().to_string(),
                issuer: cert.issuer().to_string(),
                dns_names,
                not_after: Some(cert.validity().not_after.to_string()),
            }
        }
        Err(e) => CertificateInfo {
            subject: format!("(unparsable certificate: {e})"),
            issuer: String::new(),
            dns_names: Vec::new(),
            not_after: None,
        },
    }
}

#[derive(Debug)]
struct CapturingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    chain: Mutex<Vec<CertificateDer<'static>>>,
}

impl ServerCertVerifier for CapturingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut chain) = self.chain.lock() {
            chain.clear();
            chain.push(end_entity.clone().into_owned());
            chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
