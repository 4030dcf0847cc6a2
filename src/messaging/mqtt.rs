//! MQTT messenger: one persistent connection, QoS 1 publishes matched to their `PUBACK`s.
//!
//! A driver task owns rumqttc's event loop; it reconnects with back-off (1 s doubling to
//! 60 s), publishes a retained `online` to `<topic>/status` after every connect, and the
//! broker publishes the retained last will `offline` there when the device vanishes.
//! Client id = device id. Sessions are clean: after a reconnect nothing is resent by
//! rumqttc; retries belong to the outbox, which knows what was acknowledged.
//!
//! Matching acknowledgements: rumqttc reports `Outgoing::Publish(pkid)` in the order it
//! takes requests, so publishes are queued (FIFO) under the same lock that hands them to
//! rumqttc, and each outgoing event pops the head of the queue. A publish whose `PUBACK`
//! comes after `send` gave up is a late acknowledgement ([`Messenger::take_late_acks`]).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, Incoming, LastWill,
    MqttOptions, Outgoing, QoS, TlsConfiguration, Transport,
};
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use super::config::MqttConfig;
use super::tls::{self, TlsError};
use super::{CheckError, Message, Messenger, Outcome, SendFuture};

/// Most publishes handed to rumqttc at once (its request channel capacity).
const CHANNEL_CAPACITY: usize = 1024;
/// Longest pause between reconnection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(60);

/// Why the MQTT messenger could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// The TLS configuration could not be built.
    #[error("mqtt broker {host}: {source}")]
    Tls {
        /// The broker host.
        host: String,
        /// The TLS problem.
        #[source]
        source: TlsError,
    },
}

/// How a publish ended, as the driver reports it.
enum Ack {
    /// `PUBACK` received.
    Acked,
    /// The connection dropped first; `written` tells whether the broker may have it.
    Lost { written: bool, reason: String },
}

struct Waiter {
    id: Option<Uuid>,
    written: Arc<AtomicBool>,
    tx: oneshot::Sender<Ack>,
}

#[derive(Default)]
struct Shared {
    connected: bool,
    last_error: Option<String>,
    queued: VecDeque<Waiter>,
    inflight: HashMap<u16, Waiter>,
    collided: Option<(u16, Waiter)>,
    late_acks: Vec<Uuid>,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // The driver and senders only move waiters in and out; a panic elsewhere leaves
    // nothing half-written that matters, so a poisoned lock is still usable.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// Publishes messages to an MQTT broker over one persistent connection.
pub struct MqttMessenger {
    client: AsyncClient,
    shared: Arc<Mutex<Shared>>,
    connected: watch::Receiver<bool>,
    topic: String,
    per_kind_subtopics: bool,
    timeout: Duration,
    server: String,
    driver: tokio::task::JoinHandle<()>,
}

fn status_topic(topic: &str) -> String {
    format!("{topic}/status")
}

fn options(cfg: &MqttConfig, client_id: &str) -> Result<MqttOptions, MqttError> {
    let mut opts = MqttOptions::new(client_id, cfg.host.clone(), cfg.port);
    opts.set_keep_alive(Duration::from_secs(u64::from(cfg.keep_alive.max(5))))
        .set_clean_session(true)
        .set_request_channel_capacity(CHANNEL_CAPACITY);
    if let Some(user) = &cfg.username {
        let password = cfg.password.as_ref().map(|p| p.expose()).unwrap_or("");
        opts.set_credentials(user.clone(), password);
    }
    if cfg.use_tls {
        let config =
            tls::client_config(cfg.ca_file.as_deref()).map_err(|source| MqttError::Tls {
                host: cfg.host.clone(),
                source,
            })?;
        opts.set_transport(Transport::Tls(TlsConfiguration::Rustls(config)));
    }
    Ok(opts)
}

fn event_loop(opts: MqttOptions, timeout: Duration) -> (AsyncClient, EventLoop) {
    let (client, mut eventloop) = AsyncClient::new(opts, CHANNEL_CAPACITY);
    let mut network = eventloop.network_options();
    network.set_connection_timeout(timeout.as_secs().max(1));
    eventloop.set_network_options(network);
    (client, eventloop)
}

impl MqttMessenger {
    /// Starts the connection to the broker in a task on the current tokio runtime and
    /// returns at once; sends wait up to `timeout` for the connection. `device_id` is the
    /// MQTT client id. Must be called inside a tokio runtime.
    pub fn start(cfg: &MqttConfig, device_id: &str) -> Result<MqttMessenger, MqttError> {
        let mut opts = options(cfg, device_id)?;
        let status = status_topic(&cfg.topic);
        opts.set_last_will(LastWill::new(
            status.clone(),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
        let timeout = Duration::from_secs(u64::from(cfg.timeout.max(1)));
        let (client, eventloop) = event_loop(opts, timeout);
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (connected_tx, connected) = watch::channel(false);
        let driver = tokio::spawn(drive(
            eventloop,
            client.clone(),
            Arc::clone(&shared),
            connected_tx,
            status,
            cfg.ca_file.clone(),
        ));
        Ok(MqttMessenger {
            client,
            shared,
            connected,
            topic: cfg.topic.clone(),
            per_kind_subtopics: cfg.per_kind_subtopics,
            timeout,
            server: format!("{}:{}", cfg.host, cfg.port),
            driver,
        })
    }

    /// Whether the connection is up now.
    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Publishes a retained `offline`, disconnects cleanly and stops the driver, waiting
    /// at most `deadline` (and not at all while not connected: nothing can be sent, and
    /// the driver would only retry until the deadline). Without this (a crash, a power
    /// cut) the broker publishes the last will.
    pub async fn close(self, deadline: Duration) {
        if !self.is_connected() {
            // Dropping aborts the driver's reconnect loop.
            return;
        }
        let status = status_topic(&self.topic);
        let _ = self
            .client
            .try_publish(status, QoS::AtLeastOnce, true, "offline");
        let _ = self.client.try_disconnect();
        let mut this = self;
        // Dropping `this` afterwards aborts the driver if it has not ended by then.
        let _ = tokio::time::timeout(deadline.min(this.timeout), &mut this.driver).await;
    }

    fn topic_for(&self, message: &Message) -> String {
        if self.per_kind_subtopics {
            format!("{}/{}", self.topic, message.kind)
        } else {
            self.topic.clone()
        }
    }

    async fn send_batch(&self, batch: &[Message]) -> Vec<Outcome> {
        let mut connected = self.connected.clone();
        let up = tokio::time::timeout(self.timeout, connected.wait_for(|c| *c))
            .await
            .is_ok_and(|r| r.is_ok());
        if !up {
            let why = lock(&self.shared)
                .last_error
                .clone()
                .unwrap_or_else(|| "not connected yet".to_owned());
            let reason = format!("mqtt broker {} not connected: {why}", self.server);
            return batch
                .iter()
                .map(|_| Outcome::Failed {
                    reason: reason.clone(),
                })
                .collect();
        }
        let mut pending = Vec::with_capacity(batch.len());
        {
            let mut shared = lock(&self.shared);
            for message in batch {
                if !shared.connected {
                    pending.push(Err("connection lost before publishing".to_owned()));
                    continue;
                }
                let topic = self.topic_for(message);
                match self.client.try_publish(
                    topic,
                    QoS::AtLeastOnce,
                    false,
                    message.content.clone(),
                ) {
                    Ok(()) => {
                        let (tx, rx) = oneshot::channel();
                        let written = Arc::new(AtomicBool::new(false));
                        shared.queued.push_back(Waiter {
                            id: Some(message.id),
                            written: Arc::clone(&written),
                            tx,
                        });
                        pending.push(Ok((rx, written)));
                    }
                    Err(e) => pending.push(Err(format!("publish not queued: {e}"))),
                }
            }
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut outcomes = Vec::with_capacity(pending.len());
        for entry in pending {
            let outcome = match entry {
                Err(reason) => Outcome::Failed { reason },
                Ok((rx, written)) => match tokio::time::timeout_at(deadline, rx).await {
                    Ok(Ok(Ack::Acked)) => Outcome::Delivered {
                        response: "PUBACK".to_owned(),
                    },
                    Ok(Ok(Ack::Lost {
                        written: true,
                        reason,
                    })) => Outcome::TimedOut { reason },
                    Ok(Ok(Ack::Lost {
                        written: false,
                        reason,
                    })) => Outcome::Failed { reason },
                    Ok(Err(_)) => Outcome::Failed {
                        reason: "mqtt connection task ended".to_owned(),
                    },
                    Err(_) if written.load(Ordering::Acquire) => Outcome::TimedOut {
                        reason: format!("no PUBACK within {:?}", self.timeout),
                    },
                    Err(_) => Outcome::Failed {
                        reason: format!("not published within {:?}", self.timeout),
                    },
                },
            };
            outcomes.push(outcome);
        }
        outcomes
    }
}

impl Drop for MqttMessenger {
    fn drop(&mut self) {
        // Dropping without `close` ends the connection uncleanly: the broker then
        // publishes the last will, which is the truth (we are gone).
        self.driver.abort();
    }
}

impl Messenger for MqttMessenger {
    fn target(&self) -> &str {
        "mqtt"
    }

    fn send<'a>(&'a self, batch: &'a [Message]) -> SendFuture<'a> {
        Box::pin(self.send_batch(batch))
    }

    fn take_late_acks(&self) -> Vec<Uuid> {
        std::mem::take(&mut lock(&self.shared).late_acks)
    }
}

/// Owns the event loop: matches publishes to acknowledgements and reconnects.
async fn drive(
    mut eventloop: EventLoop,
    client: AsyncClient,
    shared: Arc<Mutex<Shared>>,
    connected: watch::Sender<bool>,
    status: String,
    ca_file: Option<PathBuf>,
) {
    let mut delay = Duration::from_secs(1);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                let mut s = lock(&shared);
                // The status publish is matched like any other; nobody waits for it.
                if client
                    .try_publish(status.clone(), QoS::AtLeastOnce, true, "online")
                    .is_ok()
                {
                    let (tx, _) = oneshot::channel();
                    s.queued.push_back(Waiter {
                        id: None,
                        written: Arc::new(AtomicBool::new(false)),
                        tx,
                    });
                }
                s.connected = true;
                s.last_error = None;
                drop(s);
                connected.send_replace(true);
                delay = Duration::from_secs(1);
                tracing::info!(topic = %status, "mqtt connected");
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                let mut s = lock(&shared);
                let waiter = match s.collided.take() {
                    Some((id, w)) if id == pkid && !s.inflight.contains_key(&pkid) => Some(w),
                    other => {
                        s.collided = other;
                        s.queued.pop_front()
                    }
                };
                if let Some(w) = waiter {
                    w.written.store(true, Ordering::Release);
                    s.inflight.insert(pkid, w);
                }
            }
            Ok(Event::Outgoing(Outgoing::AwaitAck(pkid))) => {
                let mut s = lock(&shared);
                if let Some(w) = s.queued.pop_front() {
                    s.collided = Some((pkid, w));
                }
            }
            Ok(Event::Incoming(Incoming::PubAck(ack))) => {
                let mut s = lock(&shared);
                if let Some(w) = s.inflight.remove(&ack.pkid) {
                    if w.tx.send(Ack::Acked).is_err() {
                        if let Some(id) = w.id {
                            s.late_acks.push(id);
                        }
                    }
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                lock(&shared).connected = false;
                connected.send_replace(false);
                return;
            }
            Ok(_) => {}
            Err(ConnectionError::RequestsDone) => return,
            Err(error) => {
                let reason = describe_connection_error(&error, ca_file.as_deref());
                {
                    let mut s = lock(&shared);
                    s.connected = false;
                    // Requests handed over after rumqttc's own cleanup would be sent
                    // on the next connection without a waiter: drop them all here,
                    // under the lock senders publish with.
                    eventloop.clean();
                    eventloop.pending.clear();
                    let lost = |written| Ack::Lost {
                        written,
                        reason: format!("connection lost: {reason}"),
                    };
                    for (_, w) in s.inflight.drain() {
                        let _ = w.tx.send(lost(true));
                    }
                    if let Some((_, w)) = s.collided.take() {
                        let _ = w.tx.send(lost(false));
                    }
                    for w in s.queued.drain(..) {
                        let _ = w.tx.send(lost(false));
                    }
                    s.last_error = Some(reason.clone());
                }
                connected.send_replace(false);
                tracing::warn!(error = %reason, retry_in = ?delay, "mqtt connection failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RECONNECT_DELAY);
            }
        }
    }
}

fn describe_connection_error(error: &ConnectionError, ca_file: Option<&Path>) -> String {
    match error {
        ConnectionError::ConnectionRefused(code) => connack_text(*code).to_owned(),
        ConnectionError::Tls(e) => tls::describe_tls_failure(e, ca_file),
        ConnectionError::Io(e) => e.to_string(),
        ConnectionError::NetworkTimeout => "timed out".to_owned(),
        other => other.to_string(),
    }
}

fn connack_text(code: ConnectReturnCode) -> &'static str {
    match code {
        ConnectReturnCode::BadUserNamePassword => "bad user name or password",
        ConnectReturnCode::NotAuthorized => "not authorized",
        ConnectReturnCode::BadClientId => "client id rejected",
        ConnectReturnCode::RefusedProtocolVersion => "protocol version refused",
        ConnectReturnCode::ServiceUnavailable => "service unavailable",
        ConnectReturnCode::Success => "accepted",
    }
}

/// Connects once to the broker (client id `<device_id>-check`, so the daemon's session
/// is not taken over), waits for the `CONNACK` and disconnects. Each failure maps to a
/// distinct [`CheckError`]: name resolution, refused connection, TLS, authentication,
/// timeout.
pub async fn check_mqtt(
    cfg: &MqttConfig,
    device_id: &str,
    timeout: Duration,
) -> Result<(), CheckError> {
    let server = format!("{}:{}", cfg.host, cfg.port);
    let attempt = async {
        if let Err(source) = tokio::net::lookup_host((cfg.host.as_str(), cfg.port)).await {
            return Err(CheckError::NameResolution {
                host: cfg.host.clone(),
                source,
            });
        }
        let opts = options(cfg, &format!("{device_id}-check")).map_err(|e| CheckError::Config {
            detail: e.to_string(),
        })?;
        let (client, mut eventloop) = event_loop(opts, timeout);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    let _ = client.try_disconnect();
                    // Flush the DISCONNECT; the outcome no longer matters.
                    let _ =
                        tokio::time::timeout(Duration::from_millis(500), eventloop.poll()).await;
                    return Ok(());
                }
                Ok(_) => {}
                Err(e) => return Err(classify(&server, cfg, e, timeout)),
            }
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(CheckError::Timeout { server, timeout }),
    }
}

/// [`check_mqtt`] for callers outside a tokio runtime (the CLI).
pub fn check_mqtt_blocking(
    cfg: &MqttConfig,
    device_id: &str,
    timeout: Duration,
) -> Result<(), CheckError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CheckError::Other {
            server: format!("{}:{}", cfg.host, cfg.port),
            detail: format!("starting the async runtime: {e}"),
        })?;
    runtime.block_on(check_mqtt(cfg, device_id, timeout))
}

fn classify(
    server: &str,
    cfg: &MqttConfig,
    error: ConnectionError,
    timeout: Duration,
) -> CheckError {
    let ca_file = cfg.ca_file.as_deref();
    match error {
        ConnectionError::ConnectionRefused(
            code @ (ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized),
        ) => CheckError::Authentication {
            server: server.to_owned(),
            detail: connack_text(code).to_owned(),
        },
        ConnectionError::Io(e) | ConnectionError::Tls(rumqttc::TlsError::Io(e))
            if e.kind() == std::io::ErrorKind::ConnectionRefused =>
        {
            CheckError::ConnectionRefused {
                addr: server.to_owned(),
            }
        }
        ConnectionError::Tls(e) => CheckError::Tls {
            addr: server.to_owned(),
            detail: tls::describe_tls_failure(&e, ca_file),
        },
        ConnectionError::Io(e)
            if cfg.use_tls && tls::describe_tls_failure(&e, ca_file) != e.to_string() =>
        {
            CheckError::Tls {
                addr: server.to_owned(),
                detail: tls::describe_tls_failure(&e, ca_file),
            }
        }
        ConnectionError::NetworkTimeout | ConnectionError::FlushTimeout => CheckError::Timeout {
            server: server.to_owned(),
            timeout,
        },
        other => CheckError::Other {
            server: server.to_owned(),
            detail: describe_connection_error(&other, ca_file),
        },
    }
}
