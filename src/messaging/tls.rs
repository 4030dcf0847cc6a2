//! Trust anchors and the rustls client configuration shared by both messengers.
//!
//! Always the `ring` provider (aws-lc-rs needs cmake and a C cross toolchain for the
//! static musl builds). Roots come from a configured PEM file or from the system store
//! (`/etc/ssl/certs` on Raspberry Pi OS); nothing is compiled in.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{CertificateError, ClientConfig, RootCertStore};

/// Why no TLS configuration could be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file could not be read or holds no certificate.
    #[error("reading CA certificates from {path}: {detail}")]
    CaFile {
        /// The configured `ca_file`.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The system store gave no usable certificate.
    #[error("no trusted CA certificates found in the system store: install ca-certificates or set ca_file")]
    NoSystemRoots,
    /// rustls refused the configuration.
    #[error("building the TLS configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// The CA certificates to trust: the PEM file `ca_file`, else the system store.
pub fn root_certificates(ca_file: Option<&Path>) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    match ca_file {
        Some(path) => {
            let certs: Vec<_> = CertificateDer::pem_file_iter(path)
                .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
                .map_err(|e| TlsError::CaFile {
                    path: path.to_path_buf(),
                    detail: e.to_string(),
                })?;
            if certs.is_empty() {
                return Err(TlsError::CaFile {
                    path: path.to_path_buf(),
                    detail: "no PEM certificate in the file".to_owned(),
                });
            }
            Ok(certs)
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                tracing::debug!(%error, "skipping an unreadable system CA certificate");
            }
            if found.certs.is_empty() {
                return Err(TlsError::NoSystemRoots);
            }
            Ok(found.certs)
        }
    }
}

/// A rustls client configuration (ring provider, safe protocol versions) trusting
/// `ca_file` or the system roots.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(root_certificates(ca_file)?);
    if added == 0 {
        return Err(match ca_file {
            Some(path) => TlsError::CaFile {
                path: path.to_path_buf(),
                detail: "no usable CA certificate in the file".to_owned(),
            },
            None => TlsError::NoSystemRoots,
        });
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The rustls error in an error chain, looking inside I/O errors too: TLS streams
/// report a failed handshake as an I/O error wrapping the rustls one.
pub fn find_rustls_error<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                current = Some(inner);
                continue;
            }
        }
        current = e.source();
    }
    None
}

/// The rustls error inside an I/O error chain, described for a person. A refused
/// server certificate says what to check, by why it was refused: the CA (naming the
/// `ca_file` in use, or the system store), the host name, or the clock (a Pi without an
/// RTC or NTP sees every certificate as not yet valid).
pub fn describe_tls_failure(
    error: &(dyn std::error::Error + 'static),
    ca_file: Option<&Path>,
) -> String {
    match find_rustls_error(error) {
        Some(rustls::Error::InvalidCertificate(reason)) => format!(
            "server certificate not accepted ({reason}): {}",
            certificate_advice(reason, ca_file)
        ),
        Some(other) => other.to_string(),
        None => error.to_string(),
    }
}

/// What to do about a refused server certificate.
fn certificate_advice(reason: &CertificateError, ca_file: Option<&Path>) -> String {
    match reason {
        CertificateError::UnknownIssuer | CertificateError::BadSignature => match ca_file {
            Some(path) => format!("no CA in {} signed it, check ca_file", path.display()),
            None => "no CA in the system store signed it, set ca_file to the CA that did".into(),
        },
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "check the host name".into()
        }
        CertificateError::Expired
        | CertificateError::ExpiredContext { .. }
        | CertificateError::NotValidYet
        | CertificateError::NotValidYetContext { .. } => {
            "check the system clock and the certificate's dates".into()
        }
        _ => "check ca_file and the host name".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refused certificate, wrapped in an I/O error as the TLS streams report it.
    fn check(reason: CertificateError, ca_file: Option<&Path>, expected: &str) {
        let error = std::io::Error::other(rustls::Error::InvalidCertificate(reason));
        assert_eq!(describe_tls_failure(&error, ca_file), expected);
    }

    #[test]
    fn refused_certificates_say_what_to_check() {
        let ca = Path::new("/etc/acoupi/ca.pem");
        check(
            CertificateError::UnknownIssuer,
            Some(ca),
            "server certificate not accepted (UnknownIssuer): no CA in /etc/acoupi/ca.pem signed it, check ca_file",
        );
        check(
            CertificateError::UnknownIssuer,
            None,
            "server certificate not accepted (UnknownIssuer): no CA in the system store signed it, set ca_file to the CA that did",
        );
        check(
            CertificateError::NotValidForName,
            Some(ca),
            "server certificate not accepted (NotValidForName): check the host name",
        );
        check(
            CertificateError::NotValidYet,
            None,
            "server certificate not accepted (NotValidYet): check the system clock and the certificate's dates",
        );
        check(
            CertificateError::Revoked,
            Some(ca),
            "server certificate not accepted (Revoked): check ca_file and the host name",
        );
    }

    #[test]
    fn other_errors_keep_their_own_text() {
        let error = std::io::Error::other("connection reset");
        assert_eq!(describe_tls_failure(&error, None), "connection reset");
    }
}
