//! The connected program inside the daemons: delivery, summaries and heartbeat messages.
//!
//! `acoupi run` starts a [`MessagingService`] when `program` is `connected`: a thread of
//! its own with its own current-thread tokio runtime (the MQTT client needs one), so a
//! slow broker, a hanging HTTP server or an fsync of messages.db never delays the default
//! worker, and the capture thread is separate anyway. The service delivers due messages
//! every `message_send_interval` (first queueing a detection message for each model
//! output that found something, [`detections`]), queues a recording summary every `summary_interval`
//! (from metadata.db, through a connection of its own, and the daemon's [`ErrorTally`]),
//! prunes delivered messages daily,
//! and on shutdown queues the summary of the unfinished interval, makes one last delivery
//! attempt bounded by [`FINAL_DEADLINE`] and closes the MQTT session (retained `offline`)
//! within [`CLOSE_DEADLINE`], so a stop ends within 2 s whatever the servers do; a
//! delivery run in progress at the stop is cut (the outbox keeps what it did not send).
//!
//! `acoupi beat` uses [`HeartbeatSender`] to queue the heartbeat it already collects every
//! `messaging.heartbeat_interval`. Every message goes through the outbox first, so an
//! outage loses nothing. Secrets never reach the log: only hosts, URLs and counts do.

mod detections;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use jiff::Timestamp;
use tokio::sync::oneshot;

use crate::config::schema::{Config, Program};
use crate::daemon::errors::{counted_since, ErrorCounts, ErrorTally};
use crate::messaging::config::MessagingConfig;
use crate::messaging::heartbeat::{
    heartbeat_message, summary_payload, HeartbeatPayload, SummaryInput,
};
use crate::messaging::http::HttpMessenger;
use crate::messaging::mqtt::MqttMessenger;
use crate::messaging::{deliver_due, Messenger};
use crate::store::metadata::{MetadataStore, RecordingState};
use crate::store::outbox::Outbox;
use crate::store::{Check, Durability};
use crate::system::layout::{Layout, StoragePaths};

/// How long the last delivery attempt at shutdown may take. Short: a stop must end
/// within 2 s however the servers behave, and what is not delivered stays in the outbox
/// for the next start.
pub const FINAL_DEADLINE: Duration = Duration::from_secs(1);
/// How long the MQTT close (retained `offline`, DISCONNECT) may take once connected.
const CLOSE_DEADLINE: Duration = Duration::from_millis(500);
/// How often delivered messages older than `prune_after_days` are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(24 * 3600);

/// The messaging section when the connected program is configured, else `None`.
fn connected(config: &Config) -> Option<&MessagingConfig> {
    match config.program {
        Program::Connected => config.messaging.as_ref(),
        Program::Default => None,
    }
}

/// Opens the outbox of `config` (messages.db, WAL, `synchronous=FULL`).
pub fn open_outbox(
    layout: &Layout,
    paths: &StoragePaths,
    messaging: &MessagingConfig,
) -> anyhow::Result<Outbox> {
    let path = layout.messages_db(paths, messaging.messages_db.as_deref());
    // Every OutboxError names the file already.
    Ok(Outbox::open(&path)?)
}

/// The running delivery thread of `acoupi run`.
pub struct MessagingService {
    /// What it was started with, to tell whether a reload changes anything.
    config: MessagingConfig,
    stop: Option<oneshot::Sender<()>>,
    /// Where the next summary interval starts once the loop has ended (see [`serve`]).
    done: oneshot::Receiver<Option<SummaryStart>>,
    thread: std::thread::JoinHandle<()>,
}

/// Everything the service thread owns.
struct Worker {
    messaging: MessagingConfig,
    outbox: Outbox,
    metadata: MetadataStore,
    device_id: String,
    errors: Arc<ErrorTally>,
}

/// Where the next summary starts: its first instant and the error totals already
/// reported. A stopped service hands it to its replacement (see [`reload`]).
#[derive(Debug)]
pub struct SummaryStart {
    at: Timestamp,
    errors: ErrorCounts,
}

impl MessagingService {
    /// Starts the service when `config` runs the connected program (`None` otherwise).
    /// Opening the outbox and metadata.db happens here, so a broken database is a
    /// start-up error; an unreachable server is not (messages wait in the outbox).
    /// Summaries report the errors `errors` counts from now on.
    pub fn start(
        layout: &Layout,
        config: &Config,
        paths: &StoragePaths,
        device_id: &str,
        errors: &Arc<ErrorTally>,
    ) -> anyhow::Result<Option<MessagingService>> {
        MessagingService::start_from(layout, config, paths, device_id, errors, None)
    }

    /// [`MessagingService::start`] with the first summary interval starting at
    /// `summaries_from` (now when `None`).
    fn start_from(
        layout: &Layout,
        config: &Config,
        paths: &StoragePaths,
        device_id: &str,
        errors: &Arc<ErrorTally>,
        summaries_from: Option<SummaryStart>,
    ) -> anyhow::Result<Option<MessagingService>> {
        let Some(messaging) = connected(config) else {
            return Ok(None);
        };
        let outbox = open_outbox(layout, paths, messaging)?;
        // A reader of its own: the default worker keeps its connection to itself.
        let metadata = MetadataStore::open_with(&paths.db_metadata, Durability::Full, Check::Quick)
            .context("opening metadata.db for recording summaries")?;
        let ctx = Worker {
            messaging: messaging.clone(),
            outbox,
            metadata,
            device_id: device_id.to_owned(),
            errors: Arc::clone(errors),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the messaging runtime")?;
        let (stop_tx, stop_rx) = oneshot::channel();
        let (done_tx, done) = oneshot::channel();
        // Taken here, not on the thread: errors counted before the thread gets to run
        // (a microphone missing at start) would otherwise be in neither summary.
        let first = summaries_from.unwrap_or_else(|| SummaryStart {
            at: Timestamp::now(),
            errors: errors.snapshot(),
        });
        let thread = std::thread::Builder::new()
            .name("acoupi-messaging".into())
            .spawn(move || {
                let next = runtime.block_on(serve(ctx, first, stop_rx));
                // An HTTP post a stop cut short goes on in the blocking pool until its
                // timeout; dropping the runtime would wait for it, so the thread (and
                // the stop joining it) is not held up: nothing of ours is in it.
                runtime.shutdown_background();
                let _ = done_tx.send(next);
            })
            .context("starting the messaging thread")?;
        tracing::info!(
            mqtt = ?messaging.mqtt.as_ref().map(|m| format!("{}:{}", m.host, m.port)),
            http = ?messaging.http.as_ref().map(|h| h.base_url.as_str()),
            "messaging started"
        );
        Ok(Some(MessagingService {
            config: messaging.clone(),
            stop: Some(stop_tx),
            done,
            thread,
        }))
    }

    /// Stops the service: last summary, one delivery attempt of at most
    /// [`FINAL_DEADLINE`], MQTT close. Waits a bounded time; a thread stuck past it is
    /// left behind (the process is exiting or replacing it). Returns where the next
    /// summary interval starts, when the service queued summaries and stopped in time.
    pub async fn shutdown(mut self) -> Option<SummaryStart> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // The thread's own deadlines plus a margin: a thread left behind would keep its
        // connections to messages.db and metadata.db open past the exit.
        let grace = FINAL_DEADLINE + CLOSE_DEADLINE + Duration::from_millis(300);
        match tokio::time::timeout(grace, &mut self.done).await {
            Ok(next) => {
                let thread = self.thread;
                let _ = tokio::task::spawn_blocking(move || thread.join()).await;
                next.ok().flatten()
            }
            Err(_) => {
                tracing::warn!(
                    waited = ?grace,
                    "messaging did not stop in time; undelivered messages stay in the outbox"
                );
                None
            }
        }
    }
}

/// After a reload: keeps `current` when the messaging configuration did not change,
/// otherwise stops it and starts what `config` asks for. Failures are logged: a reload
/// never stops recording.
///
/// The new service's first summary interval starts where the old service's last one
/// ended, not when the new one starts: between the two lie the old service's last
/// delivery attempt and MQTT close (up to [`FINAL_DEADLINE`] and [`CLOSE_DEADLINE`]),
/// and recordings made then would be in no summary.
pub async fn reload(
    current: Option<MessagingService>,
    layout: &Layout,
    config: &Config,
    paths: &StoragePaths,
    device_id: &str,
    errors: &Arc<ErrorTally>,
) -> Option<MessagingService> {
    if current.as_ref().map(|s| &s.config) == connected(config) {
        return current;
    }
    let summaries_from = match current {
        Some(service) => service.shutdown().await,
        None => None,
    };
    match MessagingService::start_from(layout, config, paths, device_id, errors, summaries_from) {
        Ok(service) => service,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "messaging not started after reload; messages wait in the outbox");
            None
        }
    }
}

/// The service loop, on the messaging thread's runtime, its first summary interval
/// starting at `summary_start`. Returns where the next summary interval starts (`None`
/// when summaries are off).
async fn serve(
    ctx: Worker,
    mut summary_start: SummaryStart,
    mut stop: oneshot::Receiver<()>,
) -> Option<SummaryStart> {
    let m = &ctx.messaging;
    let mqtt = m
        .mqtt
        .as_ref()
        .and_then(|cfg| match MqttMessenger::start(cfg, &ctx.device_id) {
            Ok(messenger) => Some(messenger),
            Err(e) => {
                tracing::error!(error = %e, "mqtt messenger not started; messages wait in the outbox");
                None
            }
        });
    let http = m
        .http
        .as_ref()
        .and_then(|cfg| match HttpMessenger::new(cfg) {
            Ok(messenger) => Some(messenger),
            Err(e) => {
                tracing::error!(error = %e, "http messenger not started; messages wait in the outbox");
                None
            }
        });
    let mut messengers: Vec<&dyn Messenger> = Vec::new();
    if let Some(q) = &mqtt {
        messengers.push(q);
    }
    if let Some(h) = &http {
        messengers.push(h);
    }
    let send_every = Duration::from_secs(u64::from(m.message_send_interval.max(1)));
    let mut send = tokio::time::interval(send_every);
    send.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let summary_every = m
        .summary_interval
        .map(|s| Duration::from_secs(u64::from(s.max(1))));
    // Far in the future when summaries are off: the branch then never fires.
    let mut summary = tokio::time::interval_at(
        tokio::time::Instant::now() + summary_every.unwrap_or(PRUNE_EVERY * 365),
        summary_every.unwrap_or(PRUNE_EVERY * 365),
    );
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = send.tick() => {
                queue_detections(&ctx);
                // A stop does not wait for a delivery run in progress (up to the MQTT
                // timeout while the broker is down). Cutting it is safe: the outbox
                // writes are synchronous, so a message is either recorded as sent or
                // still due, and at-least-once delivery allows the resend.
                tokio::select! {
                    _ = deliver(&ctx, &messengers) => {}
                    _ = &mut stop => break,
                }
            }
            _ = summary.tick(), if summary_every.is_some() => {
                queue_summary(&ctx, &mut summary_start, Timestamp::now());
            }
            _ = prune.tick() => prune_sent(&ctx),
        }
    }
    if summary_every.is_some() {
        queue_summary(&ctx, &mut summary_start, Timestamp::now());
    }
    queue_detections(&ctx);
    if tokio::time::timeout(FINAL_DEADLINE, deliver(&ctx, &messengers))
        .await
        .is_err()
    {
        tracing::warn!(deadline = ?FINAL_DEADLINE, "last delivery attempt cut short; the rest waits in the outbox");
    }
    drop(messengers);
    if let Some(q) = mqtt {
        q.close(CLOSE_DEADLINE).await;
    }
    tracing::info!("messaging stopped");
    summary_every.map(|_| summary_start)
}

async fn deliver(ctx: &Worker, messengers: &[&dyn Messenger]) {
    let m = &ctx.messaging;
    let result = deliver_due(
        &ctx.outbox,
        messengers,
        m.max_messages,
        m.message_order,
        Timestamp::now(),
    )
    .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "message delivery failed");
    }
}

/// Queues the detection messages stored since the last call; a failure is logged and
/// the next call picks the same outputs up.
fn queue_detections(ctx: &Worker) {
    match detections::queue_detections(&ctx.metadata, &ctx.outbox) {
        Ok(0) => {}
        Ok(n) => tracing::debug!(messages = n, "detection messages queued"),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "queueing detection messages failed; the next delivery run tries again")
        }
    }
}

fn prune_sent(ctx: &Worker) {
    let Some(days) = ctx.messaging.prune_after_days else {
        return;
    };
    let cutoff = Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_hours(i64::from(days) * 24))
        .unwrap_or(Timestamp::MIN);
    match ctx.outbox.prune_sent(cutoff) {
        Ok(0) => {}
        Ok(n) => tracing::info!(pruned = n, days, "pruned delivered messages"),
        Err(e) => tracing::error!(error = %e, "pruning delivered messages failed"),
    }
}

/// Queues the summary of `[start, end)` and moves `start` to `end`. When nothing could
/// be queued `start` stays, so the next summary covers this interval too.
fn queue_summary(ctx: &Worker, start: &mut SummaryStart, end: Timestamp) {
    let errors = ctx.errors.snapshot();
    match summary(ctx, start, end, &errors).and_then(|input| {
        Ok(ctx
            .outbox
            .enqueue("summary", &summary_payload(&input), end)?)
    }) {
        Ok(id) => {
            tracing::debug!(message = %id, "summary queued");
            *start = SummaryStart { at: end, errors };
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "queueing a summary failed; the next one covers this interval too");
        }
    }
}

fn summary(
    ctx: &Worker,
    from: &SummaryStart,
    end: Timestamp,
    errors: &ErrorCounts,
) -> anyhow::Result<SummaryInput> {
    let start = from.at;
    let mut input = SummaryInput {
        device_id: ctx.device_id.clone(),
        start,
        end,
        errors: counted_since(&from.errors, errors),
        ..SummaryInput::default()
    };
    for r in ctx.metadata.recordings_since(start)? {
        if r.datetime >= end {
            continue;
        }
        input.recordings += 1;
        input.recorded_seconds += r.duration_s;
        match r.state {
            Some(RecordingState::Kept) => input.kept += 1,
            Some(RecordingState::Tmp) => input.pending += 1,
            None => {}
        }
    }
    input.detections = ctx.metadata.tag_scores_between(start, end)?;
    for g in ctx.metadata.gaps_since(start)? {
        if g.ended_on >= end {
            continue;
        }
        input.gap_seconds += g.ended_on.duration_since(g.started_on).as_secs_f64();
        match input
            .gaps
            .iter_mut()
            .find(|(reason, _)| *reason == g.reason)
        {
            Some((_, n)) => *n += 1,
            None => input.gaps.push((g.reason, 1)),
        }
    }
    Ok(input)
}

/// Queues the beat's heartbeat in the outbox every `messaging.heartbeat_interval`
/// (used by `acoupi beat` for the connected program).
pub struct HeartbeatSender {
    outbox: Outbox,
    every: Duration,
    slack: Duration,
    last: Option<Instant>,
    device_id: String,
}

impl HeartbeatSender {
    /// The sender when `config` runs the connected program, else `None`. `beat_every` is
    /// the beat daemon's own interval: a heartbeat message goes with the first beat at
    /// or after `heartbeat_interval` (less half a beat, so the cadence does not slip).
    pub fn open(
        layout: &Layout,
        config: &Config,
        paths: &StoragePaths,
        beat_every: Duration,
        device_id: &str,
    ) -> anyhow::Result<Option<HeartbeatSender>> {
        let Some(messaging) = connected(config) else {
            return Ok(None);
        };
        Ok(Some(HeartbeatSender {
            outbox: open_outbox(layout, paths, messaging)?,
            every: Duration::from_secs(u64::from(messaging.heartbeat_interval)),
            slack: beat_every / 2,
            last: None,
            device_id: device_id.to_owned(),
        }))
    }

    /// Queues `payload` as a heartbeat message when one is due.
    pub fn offer(&mut self, payload: &HeartbeatPayload) {
        let due = self
            .last
            .is_none_or(|t| t.elapsed() + self.slack >= self.every);
        if !due {
            return;
        }
        let now = Timestamp::now();
        let stats = self
            .outbox
            .stats()
            .map_err(|e| tracing::warn!(error = %e, "counting the outbox for the heartbeat failed"))
            .ok();
        let message = heartbeat_message(payload, &self.device_id, now, stats.as_ref());
        match self.outbox.enqueue("heartbeat", &message, now) {
            Ok(_) => self.last = Some(Instant::now()),
            Err(e) => tracing::error!(error = %e, "queueing a heartbeat message failed"),
        }
    }
}
