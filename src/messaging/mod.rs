//! Messengers (MQTT, HTTP), delivery from the outbox, connection checks and the
//! payloads (heartbeat, summary, detection).
//!
//! Delivery is at least once: a message leaves the outbox only when every configured
//! messenger delivered it (or rejected it for good); an unanswered send is retried, so a
//! receiver may see a message twice and can use the message id to drop the copy. The
//! delivery loop ([`deliver_due`]) runs in a tokio task of the daemon; scheduling it and
//! filling the heartbeat from the system belong to the caller. This module never opens
//! SQLite itself: the outbox ([`crate::store::outbox`]) does.

pub mod config;
pub mod deliver;
pub mod detection;
pub mod heartbeat;
pub mod http;
pub mod mqtt;
pub mod tls;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use uuid::Uuid;

pub use crate::store::outbox::{Message, Outcome};
pub use deliver::{deliver_due, DeliveryReport};

/// What a messenger's `send` returns: one outcome per message, in order.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Vec<Outcome>> + Send + 'a>>;

/// A way out for messages. Each implementation classifies its failures: permanent
/// ([`Outcome::Rejected`]), transient ([`Outcome::Failed`]) or unanswered
/// ([`Outcome::TimedOut`], possibly delivered).
pub trait Messenger: Send + Sync {
    /// The target name stored with each response (`mqtt`, `http`); stable across restarts,
    /// because the outbox remembers per target which messages it already has.
    fn target(&self) -> &str;

    /// Sends a batch; the result has exactly one outcome per message, in order.
    fn send<'a>(&'a self, batch: &'a [Message]) -> SendFuture<'a>;

    /// Messages acknowledged after `send` had given up on them (they did arrive). The
    /// delivery loop records them as delivered and counts resent ones as duplicates.
    fn take_late_acks(&self) -> Vec<Uuid> {
        Vec::new()
    }
}

/// Why a connection check failed. Each variant is a distinct, actionable message.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The host name does not resolve.
    #[error("name resolution failed for {host}: check the host name and the DNS settings")]
    NameResolution {
        /// The configured host.
        host: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// Nothing listens on host:port.
    #[error("connection refused by {addr}: check that the server runs and the port is right")]
    ConnectionRefused {
        /// `host:port`.
        addr: String,
    },
    /// The TLS handshake failed.
    #[error("tls handshake with {addr} failed: {detail}")]
    Tls {
        /// `host:port`.
        addr: String,
        /// The certificate or protocol problem.
        detail: String,
    },
    /// The server refused the credentials.
    #[error("authentication rejected by {server}: {detail}")]
    Authentication {
        /// The broker `host:port` or the URL.
        server: String,
        /// What the server said (`bad user name or password`, `not authorized`, `HTTP 401`).
        detail: String,
    },
    /// The server does not accept messages at this URL or topic.
    #[error("{target} rejected by the server: {detail}")]
    Rejected {
        /// The URL or topic.
        target: String,
        /// What the server said (`HTTP 404`, `HTTP 405`).
        detail: String,
    },
    /// No answer in time.
    #[error("no answer from {server} within {timeout:?}: check the network and firewall")]
    Timeout {
        /// The broker `host:port` or the URL.
        server: String,
        /// The configured timeout.
        timeout: Duration,
    },
    /// The configuration cannot work (bad URL, unreadable CA file).
    #[error("invalid messaging configuration: {detail}")]
    Config {
        /// What is wrong.
        detail: String,
    },
    /// Any other failure, with the underlying description.
    #[error("connecting to {server} failed: {detail}")]
    Other {
        /// The broker `host:port` or the URL.
        server: String,
        /// The underlying description.
        detail: String,
    },
}
