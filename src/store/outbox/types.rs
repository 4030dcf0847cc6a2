//! The outbox's vocabulary: messages, outcomes, states, statistics, retry delays and
//! errors, shared by the store and the messengers.

use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;
use uuid::Uuid;

/// Response status codes, as upstream stores them.
pub mod status {
    /// The messenger delivered the message.
    pub const SUCCESS: i64 = 0;
    /// The receiver rejected the message for good (never retried).
    pub const FAILED: i64 = 1;
    /// A transient error: retried after a back-off.
    pub const ERROR: i64 = 2;
    /// No answer in time: the message may have arrived, and is retried.
    pub const TIMEOUT: i64 = 3;
}

/// Errors of the outbox; each names the database file.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The database could not be opened or its schema created.
    #[error("opening the message outbox {path}: {source}")]
    Open {
        /// The messages.db file.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file is another application's database (see
    /// [`crate::store::db::foreign_tables`]). Nothing was written to it.
    #[error("{} is not an acoupi message outbox: it holds other tables ({}) and none of acoupi's; nothing was written to it; point messaging.messages_db at another file (`acoupi config set messaging.messages_db /path/to/messages.db`) or move this one away", .path.display(), .tables.join(", "))]
    Foreign {
        /// The messages.db file.
        path: PathBuf,
        /// The tables found.
        tables: Vec<String>,
    },
    /// A query failed.
    #[error("{action} in the message outbox {path}: {source}")]
    Query {
        /// What was being done.
        action: &'static str,
        /// The messages.db file.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// A response was recorded for a message the outbox does not hold.
    #[error("message {id} is not in the message outbox {path}: it may have been pruned")]
    UnknownMessage {
        /// The message id.
        id: Uuid,
        /// The messages.db file.
        path: PathBuf,
    },
    /// A stored row could not be read back (corrupt id or timestamp).
    #[error("corrupt row in the message outbox {path}: {detail}")]
    Corrupt {
        /// The messages.db file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
}

/// The order in which unsent messages are handed out (upstream `message_order`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Oldest `created_on` first (upstream default).
    #[default]
    OldestFirst,
    /// Newest first: the latest news gets out first after an outage.
    NewestFirst,
}

/// The result of one delivery attempt to one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered; `response` is what the receiver said (HTTP body, MQTT `PUBACK`).
    Delivered {
        /// Response text stored in `response.content`.
        response: String,
    },
    /// Rejected for good (HTTP 4xx except 408/429): never retried.
    Rejected {
        /// Why, stored in `response.content` and `message_state.permanent_failure`.
        reason: String,
    },
    /// Failed for a passing reason (server error, not connected): retried after a back-off.
    Failed {
        /// Why, stored in `response.content`.
        reason: String,
    },
    /// Sent but unanswered in time: it may have arrived, so a retry may duplicate it.
    TimedOut {
        /// What timed out, stored in `response.content`.
        reason: String,
    },
}

impl Outcome {
    /// The upstream status code of this outcome.
    pub fn status(&self) -> i64 {
        match self {
            Outcome::Delivered { .. } => status::SUCCESS,
            Outcome::Rejected { .. } => status::FAILED,
            Outcome::Failed { .. } => status::ERROR,
            Outcome::TimedOut { .. } => status::TIMEOUT,
        }
    }

    /// Whether this outcome closes the target for this message (no retry).
    pub fn is_final(&self) -> bool {
        matches!(self, Outcome::Delivered { .. } | Outcome::Rejected { .. })
    }

    /// The response row's `content`: the receiver's answer or why the attempt failed.
    pub(super) fn text(&self) -> &str {
        match self {
            Outcome::Delivered { response } => response,
            Outcome::Rejected { reason }
            | Outcome::Failed { reason }
            | Outcome::TimedOut { reason } => reason,
        }
    }
}

/// A message waiting for delivery, as `due` hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The message id (also the idempotency key a receiver can use).
    pub id: Uuid,
    /// What the message is (`heartbeat`, `detection`, `summary`, …).
    pub kind: String,
    /// The payload; JSON text for every message we build.
    pub content: Vec<u8>,
    /// When it was queued.
    pub created_on: Timestamp,
    /// Delivery rounds that already ended in a transient failure.
    pub attempts: u32,
    /// Targets that already delivered or rejected it: not to be sent there again.
    pub done_targets: Vec<String>,
}

/// One message's results from one delivery round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRound {
    /// The message.
    pub message_id: Uuid,
    /// One outcome per target tried in this round.
    pub results: Vec<(String, Outcome)>,
}

/// Delivery bookkeeping of one message (for diagnostics and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageState {
    /// What the message is.
    pub kind: String,
    /// Rounds that ended in a transient failure.
    pub attempts: u32,
    /// Not handed out by `due` before this instant.
    pub next_attempt_at: Timestamp,
    /// When every target delivered or rejected it; `None` while queued.
    pub finished_on: Option<Timestamp>,
    /// Why a target rejected it for good, `target: reason` joined by `; `.
    pub permanent_failure: Option<String>,
}

/// Counts over the whole outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxStats {
    /// Messages still waiting for at least one target.
    pub queued: u64,
    /// Messages every target delivered.
    pub sent: u64,
    /// Messages at least one target rejected for good.
    pub failed_permanent: u64,
    /// (message, target) pairs delivered more than once: a retry after a lost
    /// acknowledgement or a timeout whose first try had arrived after all.
    pub duplicates: u64,
    /// (message, target) pairs delivered after an unanswered attempt: the receiver may
    /// hold two copies (it can drop one by message id).
    pub possible_duplicates: u64,
    /// When the last message was delivered to every target (among those not pruned).
    pub last_sent: Option<Timestamp>,
}

/// Retry delays: `initial` doubling per failed round up to `max`, each drawn with jitter
/// from `[delay/2, delay]` so that many devices back on line do not retry in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failed round.
    pub initial: Duration,
    /// Upper bound of the delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(3600),
        }
    }
}

impl Backoff {
    /// The delay after `attempts` failed rounds (1 = first failure), before jitter.
    pub fn ceiling(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(32);
        self.initial
            .checked_mul(1u32 << doublings.min(31))
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The jittered delay after `attempts` failed rounds: uniform in `[ceiling/2, ceiling]`.
    pub fn delay(&self, attempts: u32) -> Duration {
        let ceiling = self.ceiling(attempts);
        let half = ceiling / 2;
        // Uuid v4 is 122 random bits from the OS generator; enough for jitter.
        let random = (Uuid::new_v4().as_u128() as u64) as f64 / u64::MAX as f64;
        half + half.mul_f64(random)
    }
}
