//! HTTP messenger: each message is POSTed to `base_url` as it is stored (JSON).
//!
//! Blocking `ureq` on tokio's blocking pool, one keep-alive agent per messenger.
//! Classification: 2xx delivered; 408, 429 and 5xx transient (retried with back-off);
//! other 4xx permanent (the server will never accept this payload); no answer in time is
//! a timeout (the server may have it). Redirects are not followed (see
//! [`HttpMessenger::new`]): a 3xx is transient too, its reason names the new location.
//! The receiver can drop duplicates by the `X-Acoupi-Message-Id` header, which carries
//! the outbox id.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};
use ureq::Agent;

use super::config::HttpConfig;
use super::tls::{self, TlsError};
use super::{CheckError, Message, Messenger, Outcome, SendFuture};

/// Longest response text kept in `response.content`.
const MAX_RESPONSE_TEXT: u64 = 4096;

/// Why the HTTP messenger could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The TLS trust anchors could not be loaded.
    #[error("http endpoint {url}: {source}")]
    Tls {
        /// The configured URL.
        url: String,
        /// The TLS problem.
        #[source]
        source: TlsError,
    },
}

/// POSTs messages to an HTTP endpoint.
#[derive(Clone)]
pub struct HttpMessenger {
    agent: Agent,
    url: String,
    content_type: String,
    authorization: Option<String>,
    /// Named in the description of a refused server certificate.
    ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for HttpMessenger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The authorization header holds a secret: never print it.
        f.debug_struct("HttpMessenger")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl HttpMessenger {
    /// Builds the messenger (no connection yet). With an `https` URL the trust anchors
    /// are `ca_file` or the system roots; only loaded when needed.
    ///
    /// Redirects are not followed. ureq (like curl) turns a POST answered with 301, 302
    /// or 303 into a GET without the body, whose 2xx would mark a message delivered that
    /// never arrived; and a redirect from `http://` to `https://` would be checked
    /// against ureq's compiled-in roots, not `ca_file` or the system store.
    pub fn new(cfg: &HttpConfig) -> Result<HttpMessenger, HttpError> {
        let timeout = Duration::from_secs(u64::from(cfg.timeout.max(1)));
        let mut tls_config = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()));
        if cfg.base_url.starts_with("https:") {
            let roots = tls::root_certificates(cfg.ca_file.as_deref()).map_err(|source| {
                HttpError::Tls {
                    url: cfg.base_url.clone(),
                    source,
                }
            })?;
            let roots: Vec<Certificate<'static>> = roots
                .iter()
                .map(|c| Certificate::from_der(c.as_ref()).to_owned())
                .collect();
            tls_config = tls_config.root_certs(RootCerts::Specific(Arc::new(roots)));
        }
        let agent: Agent = Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .tls_config(tls_config.build())
            .build()
            .into();
        let authorization = match (&cfg.bearer_token, &cfg.username) {
            (Some(token), _) => Some(format!("Bearer {}", token.expose())),
            (None, Some(user)) => {
                let password = cfg.password.as_ref().map(|p| p.expose()).unwrap_or("");
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                Some(format!("Basic {encoded}"))
            }
            (None, None) => None,
        };
        Ok(HttpMessenger {
            agent,
            url: cfg.base_url.clone(),
            content_type: cfg.content_type.clone(),
            authorization,
            ca_file: cfg.ca_file.clone(),
        })
    }

    /// POSTs one message and classifies the answer. Blocking.
    pub fn post(&self, message: &Message) -> Outcome {
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", &self.content_type)
            .header("X-Acoupi-Message-Id", message.id.to_string());
        if let Some(auth) = &self.authorization {
            request = request.header("Authorization", auth);
        }
        match request.send(&message.content[..]) {
            Ok(mut response) => {
                let code = response.status().as_u16();
                if let Some(detail) = redirect(&response) {
                    return Outcome::Failed { reason: detail };
                }
                let mut text = String::new();
                // The body is informational only; an unreadable one changes nothing.
                let _ = response
                    .body_mut()
                    .as_reader()
                    .take(MAX_RESPONSE_TEXT)
                    .read_to_string(&mut text);
                classify_status(code, text)
            }
            Err(ureq::Error::Timeout(what)) => Outcome::TimedOut {
                reason: format!("POST {}: no answer in time ({what})", self.url),
            },
            Err(e) => Outcome::Failed {
                reason: format!("POST {}: {}", self.url, self.describe(&e)),
            },
        }
    }

    /// A failed request as the outbox records it. A TLS failure reads as `acoupi check`
    /// words it (which CA store refused the certificate, what to check): ureq's own text,
    /// `io: invalid peer certificate: UnknownIssuer`, names neither, and a deferred
    /// message's recorded reason is what an operator sees first.
    fn describe(&self, error: &ureq::Error) -> String {
        match (
            tls_failure(error, self.ca_file.as_deref()),
            url_host(&self.url),
        ) {
            (Some(detail), Some((host, port))) => CheckError::Tls {
                addr: format!("{host}:{port}"),
                detail,
            }
            .to_string(),
            _ => error.to_string(),
        }
    }
}

/// A redirect, described with where it points (ureq does not follow it, see
/// [`HttpMessenger::new`]); `None` for any other status.
fn redirect(response: &ureq::http::Response<ureq::Body>) -> Option<String> {
    if !response.status().is_redirection() {
        return None;
    }
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("nowhere");
    Some(format!(
        "HTTP {}: redirected to {location}, not followed: set base_url to the final URL",
        response.status().as_u16()
    ))
}

/// The TLS failure in a ureq error, described for a person (see
/// [`tls::describe_tls_failure`]); `None` when the error is not about TLS. ureq reports
/// a refused certificate either as its `Rustls` variant or inside an I/O error.
fn tls_failure(error: &ureq::Error, ca_file: Option<&Path>) -> Option<String> {
    match error {
        ureq::Error::Rustls(tls) => Some(tls::describe_tls_failure(tls, ca_file)),
        ureq::Error::Io(io) => {
            tls::find_rustls_error(io).map(|_| tls::describe_tls_failure(io, ca_file))
        }
        _ => None,
    }
}

fn classify_status(code: u16, text: String) -> Outcome {
    let summary = if text.trim().is_empty() {
        format!("HTTP {code}")
    } else {
        format!("HTTP {code}: {}", text.trim())
    };
    match code {
        200..=299 => Outcome::Delivered { response: text },
        408 | 429 | 500..=599 => Outcome::Failed { reason: summary },
        400..=499 => Outcome::Rejected { reason: summary },
        _ => Outcome::Failed { reason: summary },
    }
}

impl Messenger for HttpMessenger {
    fn target(&self) -> &str {
        "http"
    }

    fn send<'a>(&'a self, batch: &'a [Message]) -> SendFuture<'a> {
        let this = self.clone();
        let owned = batch.to_vec();
        Box::pin(async move {
            let count = owned.len();
            match tokio::task::spawn_blocking(move || owned.iter().map(|m| this.post(m)).collect())
                .await
            {
                Ok(outcomes) => outcomes,
                Err(e) => (0..count)
                    .map(|_| Outcome::Failed {
                        reason: format!("http sender task failed: {e}"),
                    })
                    .collect(),
            }
        })
    }
}

/// Asks `base_url` with `OPTIONS` (as upstream's check does, but with a timeout) and
/// maps each failure to a distinct [`CheckError`]: name resolution, refused connection,
/// TLS, authentication (401/403), URL rejected (404/405, a redirect, or POST not in
/// `Allow`), timeout. Blocking.
pub fn check_http(cfg: &HttpConfig, timeout: Duration) -> Result<(), CheckError> {
    let mut cfg = cfg.clone();
    cfg.timeout = u32::try_from(timeout.as_secs().max(1)).unwrap_or(u32::MAX);
    let url = cfg.base_url.clone();
    let messenger = HttpMessenger::new(&cfg).map_err(|e| CheckError::Config {
        detail: e.to_string(),
    })?;
    let host = url_host(&url).ok_or_else(|| CheckError::Config {
        detail: format!("base_url {url:?} is not an http:// or https:// URL"),
    })?;
    // Resolved here, so that a bad host name reads as such and not as an I/O error.
    if let Err(source) = std::net::ToSocketAddrs::to_socket_addrs(&(host.0.as_str(), host.1)) {
        return Err(CheckError::NameResolution {
            host: host.0,
            source,
        });
    }
    let ca_file = cfg.ca_file.as_deref();
    let mut request = messenger.agent.options(&url);
    if let Some(auth) = &messenger.authorization {
        request = request.header("Authorization", auth);
    }
    let response = request.call().map_err(|e| {
        if let Some(detail) = tls_failure(&e, ca_file) {
            return CheckError::Tls {
                addr: format!("{}:{}", host.0, host.1),
                detail,
            };
        }
        match e {
            ureq::Error::HostNotFound => CheckError::NameResolution {
                host: host.0.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "host not found"),
            },
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                CheckError::ConnectionRefused {
                    addr: format!("{}:{}", host.0, host.1),
                }
            }
            ureq::Error::ConnectionFailed => CheckError::ConnectionRefused {
                addr: format!("{}:{}", host.0, host.1),
            },
            ureq::Error::Timeout(_) => CheckError::Timeout {
                server: url.clone(),
                timeout,
            },
            other => CheckError::Other {
                server: url.clone(),
                detail: other.to_string(),
            },
        }
    })?;
    if let Some(detail) = redirect(&response) {
        return Err(CheckError::Rejected {
            target: url,
            detail,
        });
    }
    let code = response.status().as_u16();
    match code {
        401 | 403 => Err(CheckError::Authentication {
            server: url,
            detail: format!("HTTP {code}"),
        }),
        404 | 405 => Err(CheckError::Rejected {
            target: url,
            detail: format!("HTTP {code}"),
        }),
        200..=299 => {
            let allow = response
                .headers()
                .get("allow")
                .and_then(|v| v.to_str().ok())
                .map(str::to_ascii_uppercase);
            match allow {
                Some(methods) if !methods.split(',').any(|m| m.trim() == "POST") => {
                    Err(CheckError::Rejected {
                        target: url,
                        detail: format!("POST is not allowed (Allow: {methods})"),
                    })
                }
                _ => Ok(()),
            }
        }
        _ => Err(CheckError::Other {
            server: url,
            detail: format!("HTTP {code}"),
        }),
    }
}

/// Host and port of an `http(s)://` URL.
fn url_host(url: &str) -> Option<(String, u16)> {
    let uri: ureq::http::Uri = url.parse().ok()?;
    let default_port = match uri.scheme_str()? {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_owned(), uri.port_u16().unwrap_or(default_port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_are_classified_for_retry() {
        let check = |code, expected: i64| {
            assert_eq!(
                classify_status(code, String::new()).status(),
                expected,
                "{code}"
            )
        };
        check(200, 0);
        check(204, 0);
        check(400, 1);
        check(404, 1);
        check(408, 2);
        check(429, 2);
        check(500, 2);
        check(503, 2);
    }

    #[test]
    fn url_host_reads_host_and_port() {
        assert_eq!(
            url_host("http://127.0.0.1:8080/x"),
            Some(("127.0.0.1".into(), 8080))
        );
        assert_eq!(
            url_host("https://example.org/a?b"),
            Some(("example.org".into(), 443))
        );
        assert_eq!(url_host("http://u:p@h/"), Some(("h".into(), 80)));
        assert_eq!(url_host("ftp://h/"), None);
    }
}
