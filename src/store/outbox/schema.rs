//! messages.db's schema: upstream acoupi 0.8's tables, index names and `user_version`,
//! plus our additions, brought up to date in one transaction whenever the outbox opens.
//!
//! Upstream 0.8's message store may open the same file (a tool run by hand, an upstream
//! program pointed at our storages). It creates `message`, `response` and the indexes
//! `idx_response_message_id`, `idx_response_status` if they do not exist and, below
//! `PRAGMA user_version` 2, adds `message.message_type`. This schema already holds all
//! of that under upstream's names, so upstream's open changes nothing; ours used to
//! lack the column and name the indexes `idx_response__*`, which this migration fixes.
//!
//! **Sent-state is read from the `response` table.** Upstream calls a message sent when
//! a SUCCESS (`status = 0`) response row exists, and writes its rows without our
//! `target` column. So a SUCCESS row without a target is a delivery to every messenger,
//! whoever wrote it: the trigger `acoupi_response_success` finishes the message in
//! `message_state` as the row is written (in upstream's process too, since the trigger
//! lives in the file), and [`migrate`] does the same for rows written before the trigger
//! existed. Our own rows name their target, and a message is finished once every
//! configured messenger has it. The one state the two programs read differently is a
//! message one of two messengers has delivered: upstream, which has one messenger,
//! calls it sent; we still owe it to the other.
//!
//! Messages upstream queues get a `message_state` row (kind = their `message_type`) the
//! next time the outbox opens, and are delivered too. That is done at open rather than
//! by a trigger on `message`, which would collide with an older acoupi's own insert.
//! Opening a file that is already current writes nothing (`deployment status` takes no
//! write lock, issue 14).

use rusqlite::{Connection, TransactionBehavior};

/// The `user_version` upstream acoupi 0.8's message store writes and expects.
pub const UPSTREAM_USER_VERSION: i64 = 2;

/// Upstream 0.8's `message.message_type` values: the kinds we write there. Another
/// kind is stored as NULL, since upstream refuses to read a value outside its enum.
pub const UPSTREAM_MESSAGE_TYPES: &[&str] = &[
    "deployment",
    "heartbeat",
    "recording",
    "summary",
    "detection",
];

/// Every table messages.db may hold: upstream's and ours.
pub const TABLES: &[&str] = &["message", "response", "message_state", "message_source"];

/// Upstream acoupi 0.8's tables, as its message store creates them.
const UPSTREAM_TABLES: &str = "
CREATE TABLE IF NOT EXISTS message (
    id BLOB PRIMARY KEY,
    content BLOB NOT NULL,
    created_on TEXT NOT NULL,
    message_type TEXT
);
CREATE TABLE IF NOT EXISTS response (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    content TEXT,
    message_id BLOB NOT NULL,
    status INTEGER NOT NULL,
    received_on TEXT NOT NULL,
    FOREIGN KEY (message_id) REFERENCES message(id)
);
";

/// Upstream's index names; ours had a double underscore, which made upstream add a
/// second copy of each index.
const UPSTREAM_INDEXES: &str = "
DROP INDEX IF EXISTS idx_response__message_id;
DROP INDEX IF EXISTS idx_response__status;
CREATE INDEX IF NOT EXISTS idx_response_message_id ON response(message_id);
CREATE INDEX IF NOT EXISTS idx_response_status ON response(status);
";

/// Our additions: delivery bookkeeping per message, the position of each message
/// source, and the trigger that keeps delivery in step with the SUCCESS rows other
/// programs write.
const ACOUPI_TABLES: &str = "
CREATE TABLE IF NOT EXISTS message_state (
    message_id BLOB NOT NULL PRIMARY KEY REFERENCES message (id),
    kind TEXT NOT NULL,
    created_on TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    finished_on TEXT,
    permanent_failure TEXT
);
-- created_on is copied from message so that these partial indexes over the pending
-- messages alone give `due` its order without sorting the whole queue.
CREATE INDEX IF NOT EXISTS idx_message_state__pending_oldest
    ON message_state (created_on ASC, message_id ASC) WHERE finished_on IS NULL;
CREATE INDEX IF NOT EXISTS idx_message_state__pending_newest
    ON message_state (created_on DESC, message_id ASC) WHERE finished_on IS NULL;
-- How far each source of messages (e.g. metadata.db's model outputs) has been queued:
-- moved in the transaction that queues its messages, so none is queued twice or missed.
CREATE TABLE IF NOT EXISTS message_source (
    name TEXT NOT NULL PRIMARY KEY,
    position TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS acoupi_response_success AFTER INSERT ON response
WHEN NEW.status = 0 AND NEW.target IS NULL
BEGIN
    UPDATE message_state SET finished_on = NEW.received_on
    WHERE message_id = NEW.message_id AND finished_on IS NULL;
END;
";

/// Messages written while no trigger existed (by upstream, or before `message_state`)
/// get a state row, and those a target-less SUCCESS row answers are finished.
const RECONCILE: &str = "
INSERT INTO message_state (message_id, kind, created_on, next_attempt_at)
SELECT m.id, coalesce(m.message_type, 'message'), m.created_on, m.created_on
FROM message m
WHERE NOT EXISTS (SELECT 1 FROM message_state s WHERE s.message_id = m.id);
UPDATE message_state SET finished_on = (
    SELECT min(r.received_on) FROM response r
    WHERE r.message_id = message_state.message_id AND r.status = 0 AND r.target IS NULL)
WHERE finished_on IS NULL AND EXISTS (
    SELECT 1 FROM response r
    WHERE r.message_id = message_state.message_id AND r.status = 0 AND r.target IS NULL);
";

/// Whether `table` has `column`.
fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
        [table, column],
        |row| row.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// Whether the file is at this schema with nothing to reconcile: read-only checks.
fn is_current(conn: &Connection) -> rusqlite::Result<bool> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let named = |kind: &str, name: &str| -> rusqlite::Result<bool> {
        conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = ?1 AND name = ?2",
            [kind, name],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
    };
    if version < UPSTREAM_USER_VERSION
        || !named("table", "message_state")?
        || !named("table", "message_source")?
        || !named("trigger", "acoupi_response_success")?
        || !named("index", "idx_response_message_id")?
        || !named("index", "idx_response_status")?
        || named("index", "idx_response__message_id")?
        || !has_column(conn, "message", "message_type")?
        || !has_column(conn, "response", "target")?
    {
        return Ok(false);
    }
    let stateless: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM message m
                        WHERE NOT EXISTS (SELECT 1 FROM message_state s WHERE s.message_id = m.id))",
        [],
        |r| r.get(0),
    )?;
    Ok(!stateless)
}

/// Brings messages.db to upstream 0.8's schema plus ours, in one `BEGIN IMMEDIATE`
/// transaction (two processes opening a new file at once apply it once). Every step
/// is idempotent: a file at any earlier state, ours or upstream's, ends the same. A
/// file already current is only read.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    if is_current(conn)? {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(UPSTREAM_TABLES)?;
    if !has_column(&tx, "message", "message_type")? {
        tx.execute_batch("ALTER TABLE message ADD COLUMN message_type TEXT;")?;
    }
    tx.execute_batch(UPSTREAM_INDEXES)?;
    if !has_column(&tx, "response", "target")? {
        tx.execute_batch("ALTER TABLE response ADD COLUMN target TEXT;")?;
    }
    tx.execute_batch(ACOUPI_TABLES)?;
    tx.execute_batch(RECONCILE)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < UPSTREAM_USER_VERSION {
        tx.pragma_update(None, "user_version", UPSTREAM_USER_VERSION)?;
    } else if version > UPSTREAM_USER_VERSION {
        // A newer upstream: its tables are a superset of what we read and write, and
        // refusing would stop every heartbeat. Its version is left as it is.
        tracing::warn!(
            version,
            known = UPSTREAM_USER_VERSION,
            "messages.db has a newer upstream schema version; using the columns this acoupi knows"
        );
    }
    tx.commit()
}
