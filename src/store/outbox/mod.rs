//! The outbox: messages.db, where every message waits until each messenger has it.
//!
//! The `message` and `response` tables keep upstream acoupi 0.8's names, column types,
//! index names and `user_version` (UUID as a 16-byte BLOB, timestamps as
//! `YYYY-MM-DD HH:MM:SS.ffffff+00:00` text with a space separator, `message_type`,
//! response status SUCCESS=0, FAILED=1, ERROR=2, TIMEOUT=3) so upstream's message store
//! reads and writes the file without migrating it, and a SUCCESS response it writes
//! counts as sent here too (`schema`). What upstream lacks lives in additions: a nullable
//! `response.target` column (which messenger answered) and a `message_state` table
//! (kind, attempts, next attempt, finish time, permanent failure reason). Upstream
//! retries failed messages forever on every run; here transient failures back off
//! exponentially with jitter and permanent rejections stop retries.
//!
//! Durability: WAL with `synchronous=FULL`, so a message that `enqueue` accepted survives
//! a power cut. This module knows nothing about MQTT or HTTP: messengers are only
//! target names and outcomes here.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{params, Connection, OptionalExtension};
use uuid::Uuid;

mod schema;
mod types;

pub use types::{
    status, AttemptRound, Backoff, Message, MessageState, Order, OutboxError, OutboxStats, Outcome,
};

/// A message made from a row elsewhere, for [`Outbox::enqueue_from_source`].
#[derive(Debug, Clone, PartialEq)]
pub struct SourcedMessage {
    /// The id it is queued under (the row's own).
    pub id: Uuid,
    /// The JSON content.
    pub content: String,
    /// When it was created (the row's time).
    pub created_on: Timestamp,
}

/// Writes one message and its state row in `tx`; an id already queued is left as it is.
/// Returns 1 when the message was new, else 0.
fn insert_message(
    tx: &rusqlite::Transaction<'_>,
    id: Uuid,
    kind: &str,
    content: &str,
    created_on: Timestamp,
) -> rusqlite::Result<usize> {
    let created = format_timestamp(created_on);
    // Upstream reads `message_type` into an enum: only its own values go there.
    let message_type = schema::UPSTREAM_MESSAGE_TYPES
        .contains(&kind)
        .then_some(kind);
    let new = tx.execute(
        "INSERT OR IGNORE INTO message (id, content, created_on, message_type)
         VALUES (?1, ?2, ?3, ?4)",
        params![
            id.as_bytes().as_slice(),
            content.as_bytes(),
            created,
            message_type
        ],
    )?;
    if new == 1 {
        tx.execute(
            "INSERT INTO message_state (message_id, kind, created_on, next_attempt_at)
             VALUES (?1, ?2, ?3, ?3)",
            params![id.as_bytes().as_slice(), kind, created],
        )?;
    }
    Ok(new)
}

/// The outbox over one messages.db file. Cheap to share: one connection behind a std
/// `Mutex` (never held across `.await`; every method is a short blocking SQLite call).
#[derive(Debug)]
pub struct Outbox {
    path: PathBuf,
    conn: Mutex<Connection>,
    backoff: Backoff,
}

/// Formats a timestamp as messages.db stores it: space separator, always six fraction
/// digits, so text order is time order.
pub fn format_timestamp(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string()
}

fn parse_timestamp(path: &Path, text: &str) -> Result<Timestamp, OutboxError> {
    // Upstream writes naive values too; those are UTC.
    text.parse::<Timestamp>()
        .or_else(|_| {
            text.parse::<jiff::civil::DateTime>()
                .and_then(|dt| jiff::tz::TimeZone::UTC.to_timestamp(dt))
        })
        .map_err(|e| OutboxError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("timestamp {text:?}: {e}"),
        })
}

fn parse_id(path: &Path, bytes: &[u8]) -> Result<Uuid, OutboxError> {
    Uuid::from_slice(bytes).map_err(|e| OutboxError::Corrupt {
        path: path.to_path_buf(),
        detail: format!("message id of {} bytes: {e}", bytes.len()),
    })
}

impl Outbox {
    /// Opens (creating if needed) the outbox at `path` with the default back-off.
    /// An upstream messages.db is upgraded in place: its tables are kept as they are.
    /// Another application's database is refused ([`OutboxError::Foreign`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Outbox, OutboxError> {
        Outbox::open_with_backoff(path, Backoff::default())
    }

    /// Opens the outbox with a custom back-off.
    pub fn open_with_backoff(
        path: impl AsRef<Path>,
        backoff: Backoff,
    ) -> Result<Outbox, OutboxError> {
        let path = path.as_ref().to_path_buf();
        let open_err = |source| OutboxError::Open {
            path: path.clone(),
            source,
        };
        let mut conn = Connection::open(&path).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(open_err)?;
        // Before anything writes to the file (WAL mode changes its header).
        match crate::store::db::foreign_tables(&conn, schema::TABLES) {
            Ok(None) => {}
            Ok(Some(tables)) => return Err(OutboxError::Foreign { path, tables }),
            Err(e) => return Err(open_err(e)),
        }
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        // FULL: a WAL commit is fsynced, so an accepted message survives a power cut.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        schema::migrate(&mut conn).map_err(open_err)?;
        Ok(Outbox {
            path,
            conn: Mutex::new(conn),
            backoff,
        })
    }

    /// The messages.db file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions
        // roll back on drop), so a poisoned lock is still safe to use.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn query_err(&self, action: &'static str) -> impl Fn(rusqlite::Error) -> OutboxError + '_ {
        move |source| OutboxError::Query {
            action,
            path: self.path.clone(),
            source,
        }
    }

    /// Queues a message of `kind` (e.g. `heartbeat`) with JSON `content`, created `now`.
    /// Once this returns, the message is on disk.
    pub fn enqueue(&self, kind: &str, content: &str, now: Timestamp) -> Result<Uuid, OutboxError> {
        let id = Uuid::new_v4();
        let err = self.query_err("queueing a message");
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(&err)?;
        insert_message(&tx, id, kind, content, now).map_err(&err)?;
        tx.commit().map_err(&err)?;
        Ok(id)
    }

    /// Where the source `name` was last left by [`Outbox::enqueue_from_source`].
    pub fn source_position(&self, name: &str) -> Result<Option<String>, OutboxError> {
        self.conn()
            .query_row(
                "SELECT position FROM message_source WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.query_err("reading a message source's position"))
    }

    /// Queues `messages` of `kind`, each under its own id (a message taken from a row
    /// elsewhere keeps that row's id, so a receiver can match the two), and moves source
    /// `name` to `position`, in one transaction: a crash queues all of them and moves
    /// the source, or neither. A message whose id is already queued is not queued again.
    /// Returns how many were queued.
    pub fn enqueue_from_source(
        &self,
        name: &str,
        position: &str,
        kind: &str,
        messages: &[SourcedMessage],
    ) -> Result<usize, OutboxError> {
        let err = self.query_err("queueing messages from a source");
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(&err)?;
        let mut queued = 0;
        for m in messages {
            queued += insert_message(&tx, m.id, kind, &m.content, m.created_on).map_err(&err)?;
        }
        tx.execute(
            "INSERT INTO message_source (name, position) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET position = excluded.position",
            [name, position],
        )
        .map_err(&err)?;
        tx.commit().map_err(&err)?;
        Ok(queued)
    }

    /// Up to `limit` messages that are unfinished, not permanently failed and due at
    /// `now`, in `order` (ties by id). Memory is bounded by `limit`, whatever the queue length.
    pub fn due(
        &self,
        limit: usize,
        order: Order,
        now: Timestamp,
    ) -> Result<Vec<Message>, OutboxError> {
        let sql = match order {
            Order::OldestFirst => DUE_OLDEST,
            Order::NewestFirst => DUE_NEWEST,
        };
        let err = self.query_err("listing due messages");
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(sql).map_err(&err)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows = stmt
            .query(params![format_timestamp(now), limit])
            .map_err(&err)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(&err)? {
            let id: Vec<u8> = row.get(0).map_err(&err)?;
            let created: String = row.get(3).map_err(&err)?;
            let done: Option<String> = row.get(5).map_err(&err)?;
            out.push(Message {
                id: parse_id(&self.path, &id)?,
                kind: row.get(1).map_err(&err)?,
                content: row.get(2).map_err(&err)?,
                created_on: parse_timestamp(&self.path, &created)?,
                attempts: row.get(4).map_err(&err)?,
                done_targets: done
                    .map(|d| d.split(',').map(str::to_owned).collect())
                    .unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// Records one attempt of one target (see [`Outbox::record_attempts`]).
    pub fn record_attempt(
        &self,
        id: Uuid,
        target: &str,
        outcome: Outcome,
        now: Timestamp,
    ) -> Result<(), OutboxError> {
        let round = AttemptRound {
            message_id: id,
            results: vec![(target.to_owned(), outcome)],
        };
        self.record_attempts(&[round], &[target], now)
    }

    /// Records delivery rounds in one transaction: one `response` row per result (as
    /// upstream, one per attempt). A message is finished once every name in `targets`
    /// has delivered or rejected it; otherwise, if a result of this round was transient,
    /// its next attempt is pushed back by the back-off. A response for a message the
    /// outbox does not hold is an error and nothing of the batch is written.
    pub fn record_attempts(
        &self,
        rounds: &[AttemptRound],
        targets: &[&str],
        now: Timestamp,
    ) -> Result<(), OutboxError> {
        let at = format_timestamp(now);
        let err = self.query_err("recording delivery attempts");
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(&err)?;
        for round in rounds {
            let id = round.message_id.as_bytes().as_slice();
            let state: Option<u32> = tx
                .query_row(
                    "SELECT attempts FROM message_state WHERE message_id = ?1",
                    [id],
                    |row| row.get(0),
                )
                .optional()
                .map_err(&err)?;
            let Some(attempts) = state else {
                return Err(OutboxError::UnknownMessage {
                    id: round.message_id,
                    path: self.path.clone(),
                });
            };
            for (target, outcome) in &round.results {
                tx.prepare_cached(
                    "INSERT INTO response (content, message_id, status, received_on, target)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .and_then(|mut s| {
                    s.execute(params![outcome.text(), id, outcome.status(), at, target])
                })
                .map_err(&err)?;
            }
            let done: Vec<String> = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT DISTINCT target FROM response
                         WHERE message_id = ?1 AND status IN (0, 1) AND target IS NOT NULL",
                    )
                    .map_err(&err)?;
                let rows = stmt.query_map([id], |row| row.get(0)).map_err(&err)?;
                rows.collect::<Result<_, _>>().map_err(&err)?
            };
            if targets.iter().all(|t| done.iter().any(|d| d == t)) {
                tx.execute(
                    "UPDATE message_state SET finished_on = ?2,
                       permanent_failure = (SELECT group_concat(target || ': ' || content, '; ')
                                            FROM response WHERE message_id = ?1 AND status = 1)
                     WHERE message_id = ?1 AND finished_on IS NULL",
                    params![id, at],
                )
                .map_err(&err)?;
            } else if round.results.iter().any(|(_, o)| !o.is_final()) {
                let attempts = attempts.saturating_add(1);
                let delay = self.backoff.delay(attempts);
                let next = now
                    .checked_add(
                        jiff::SignedDuration::try_from(delay).unwrap_or(jiff::SignedDuration::MAX),
                    )
                    .unwrap_or(Timestamp::MAX);
                tx.execute(
                    "UPDATE message_state SET attempts = ?2, next_attempt_at = ?3 WHERE message_id = ?1",
                    params![id, attempts, format_timestamp(next)],
                )
                .map_err(&err)?;
            }
        }
        tx.commit().map_err(&err)
    }

    /// Deletes finished messages (delivered or rejected) that finished before
    /// `older_than`, with their responses. Returns how many messages went.
    pub fn prune_sent(&self, older_than: Timestamp) -> Result<usize, OutboxError> {
        let cutoff = format_timestamp(older_than);
        let err = self.query_err("pruning finished messages");
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(&err)?;
        tx.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS prune (id BLOB PRIMARY KEY); DELETE FROM prune;",
        )
        .map_err(&err)?;
        let n = tx
            .execute(
                "INSERT INTO prune SELECT message_id FROM message_state
                 WHERE finished_on IS NOT NULL AND finished_on < ?1",
                [cutoff],
            )
            .map_err(&err)?;
        tx.execute_batch(
            "DELETE FROM response WHERE message_id IN (SELECT id FROM prune);
             DELETE FROM message_state WHERE message_id IN (SELECT id FROM prune);
             DELETE FROM message WHERE id IN (SELECT id FROM prune);
             DELETE FROM prune;",
        )
        .map_err(&err)?;
        tx.commit().map_err(&err)?;
        Ok(n)
    }

    /// Counts of queued, sent, permanently failed and duplicated messages.
    pub fn stats(&self) -> Result<OutboxStats, OutboxError> {
        let err = self.query_err("counting messages");
        let conn = self.conn();
        conn.query_row(
            "SELECT
               (SELECT count(*) FROM message_state WHERE finished_on IS NULL),
               (SELECT count(*) FROM message_state WHERE finished_on IS NOT NULL AND permanent_failure IS NULL),
               (SELECT count(*) FROM message_state WHERE permanent_failure IS NOT NULL),
               (SELECT count(*) FROM (SELECT 1 FROM response WHERE status = 0
                                      GROUP BY message_id, target HAVING count(*) > 1)),
               (SELECT count(*) FROM (SELECT 1 FROM response WHERE status IN (0, 3)
                                      GROUP BY message_id, target
                                      HAVING min(status) = 0 AND max(status) = 3)),
               (SELECT max(finished_on) FROM message_state
                 WHERE finished_on IS NOT NULL AND permanent_failure IS NULL)",
            [],
            |row| {
                let stats = OutboxStats {
                    queued: row.get::<_, i64>(0)?.unsigned_abs(),
                    sent: row.get::<_, i64>(1)?.unsigned_abs(),
                    failed_permanent: row.get::<_, i64>(2)?.unsigned_abs(),
                    duplicates: row.get::<_, i64>(3)?.unsigned_abs(),
                    possible_duplicates: row.get::<_, i64>(4)?.unsigned_abs(),
                    last_sent: None,
                };
                Ok((stats, row.get::<_, Option<String>>(5)?))
            },
        )
        .map_err(err)
        .and_then(|(stats, last)| {
            Ok(OutboxStats {
                last_sent: last
                    .map(|t| parse_timestamp(&self.path, &t))
                    .transpose()?,
                ..stats
            })
        })
    }

    /// Whether `target` already delivered message `id` (a SUCCESS response exists).
    pub fn delivered_to(&self, id: Uuid, target: &str) -> Result<bool, OutboxError> {
        let err = self.query_err("reading responses");
        let conn = self.conn();
        conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM response
                            WHERE message_id = ?1 AND target = ?2 AND status = 0)",
            params![id.as_bytes().as_slice(), target],
            |row| row.get(0),
        )
        .map_err(err)
    }

    /// The delivery bookkeeping of one message, `None` if the outbox does not hold it.
    pub fn state(&self, id: Uuid) -> Result<Option<MessageState>, OutboxError> {
        let err = self.query_err("reading a message state");
        let conn = self.conn();
        let row = conn
            .query_row(
                "SELECT kind, attempts, next_attempt_at, finished_on, permanent_failure
                 FROM message_state WHERE message_id = ?1",
                [id.as_bytes().as_slice()],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, u32>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, Option<String>>(3)?,
                        row.get::<_, Option<String>>(4)?,
                    ))
                },
            )
            .optional()
            .map_err(err)?;
        let Some((kind, attempts, next, finished, permanent_failure)) = row else {
            return Ok(None);
        };
        Ok(Some(MessageState {
            kind,
            attempts,
            next_attempt_at: parse_timestamp(&self.path, &next)?,
            finished_on: finished
                .map(|f| parse_timestamp(&self.path, &f))
                .transpose()?,
            permanent_failure,
        }))
    }
}

// The partial indexes hold only unfinished messages, so `due` walks the queue in order
// and stops after `limit` rows; nothing is sorted or materialised. `INDEXED BY` takes a
// name, not a parameter: one query text per order, written once.
macro_rules! due_query {
    ($index:literal, $direction:literal) => {
        concat!(
            "SELECT m.id, s.kind, m.content, m.created_on, s.attempts,
       (SELECT group_concat(DISTINCT r.target) FROM response r
        WHERE r.message_id = s.message_id AND r.status IN (0, 1) AND r.target IS NOT NULL)
FROM message_state s INDEXED BY ",
            $index,
            "
JOIN message m ON m.id = s.message_id
WHERE s.finished_on IS NULL AND s.next_attempt_at <= ?1
ORDER BY s.created_on ",
            $direction,
            ", s.message_id ASC
LIMIT ?2"
        )
    };
}

const DUE_OLDEST: &str = due_query!("idx_message_state__pending_oldest", "ASC");
const DUE_NEWEST: &str = due_query!("idx_message_state__pending_newest", "DESC");

#[cfg(test)]
mod tests;
