//! TLS served directly: the certificate chain and key from `tls_cert` / `tls_key` (PEM), with
//! rustls on the aws-lc-rs provider.
//!
//! Invariants:
//! - A certificate is installed only after it parsed, its key loaded and the key matched the
//!   certificate; a failed [`TlsReloader::reload`] keeps serving the old one and says why.
//! - The reload swaps what the resolver hands to *new* handshakes; established connections keep
//!   theirs. Nothing about the key is ever logged.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why a certificate could not be loaded (paths, never key material).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate chain {path}: {why}")]
    Certificate { path: PathBuf, why: String },
    #[error("cannot read the TLS private key {path}: {why}")]
    Key { path: PathBuf, why: String },
    #[error("the TLS private key {key} does not belong to the certificate {cert}")]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

/// The provider every TLS object of the server uses (chosen explicitly: other crates in the
/// build enable ring too, so there is no unambiguous process default).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Loads and checks a certificate chain and its key.
fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Certificate {
            path: cert.to_owned(),
            why: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Certificate {
            path: cert.to_owned(),
            why: "no CERTIFICATE block in the file".into(),
        });
    }
    // The parser's error never quotes the file, so it cannot leak key material.
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_owned(),
        why: e.to_string(),
    })?;
    CertifiedKey::from_der(chain, der, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::Mismatch {
            cert: cert.to_owned(),
            key: key.to_owned(),
        },
        other => TlsError::Key {
            path: key.to_owned(),
            why: other.to_string(),
        },
    })
}

/// Hands the current certificate to every handshake.
#[derive(Debug)]
struct CurrentCert(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// Reloads the certificate from its files (on SIGHUP, or when a test asks).
#[derive(Clone)]
pub struct TlsReloader {
    cert: PathBuf,
    key: PathBuf,
    current: Arc<CurrentCert>,
    provider: Arc<CryptoProvider>,
}

impl TlsReloader {
    /// Reads the files again; installs the new certificate only if it loads and matches.
    pub fn reload(&self) -> Result<(), TlsError> {
        match load(&self.cert, &self.key, &self.provider) {
            Ok(k) => {
                *self.current.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(k);
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate not reloaded; still serving the previous one");
                Err(e)
            }
        }
    }
}

/// The TLS side of a listener: the acceptor for connections and the reloader for SIGHUP.
pub struct Tls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub reloader: TlsReloader,
}

impl Tls {
    /// Loads `cert` and `key` and builds the server configuration (TLS 1.2 and 1.3, ALPN h2
    /// and http/1.1).
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let provider = provider();
        let first = load(cert, key, &provider)?;
        let current = Arc::new(CurrentCert(RwLock::new(Arc::new(first))));
        let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            reloader: TlsReloader {
                cert: cert.to_owned(),
                key: key.to_owned(),
                current,
                provider,
            },
        })
    }
}
