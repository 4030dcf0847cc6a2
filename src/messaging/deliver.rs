//! One delivery run: due messages from the outbox to every messenger, outcomes back.
//!
//! Pages of at most [`PAGE`] messages keep memory flat whatever the queue length; each
//! page's outcomes are recorded in one transaction (one fsync per page, not per message).
//! A page's messages are either finished or pushed back by the back-off afterwards, so
//! the run ends even when every send fails; and when a messenger fails a whole page the
//! run stops there, so an unreachable broker costs one timeout per run, not one per page.

use jiff::Timestamp;

use super::Messenger;
use crate::store::outbox::{AttemptRound, Order, Outbox, OutboxError, Outcome};

/// Messages fetched and sent per page.
pub const PAGE: usize = 200;

/// What one run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeliveryReport {
    /// Messages finished in this run with every target delivered.
    pub sent: u64,
    /// Messages finished in this run with at least one permanent rejection.
    pub failed: u64,
    /// Messages left for a later run after a transient failure or timeout.
    pub deferred: u64,
    /// Messages a target acknowledged late although they had been resent meanwhile:
    /// known duplicates at the receiver.
    pub duplicates: u64,
    /// Late acknowledgements recorded (each would otherwise have been resent).
    pub late_acks: u64,
}

/// Sends up to `max_messages` due messages (all when `None`) in `order` through every
/// messenger and records each outcome. A message already delivered to or rejected by a
/// target is not sent there again. Blocking SQLite calls happen between awaits; they are
/// short (one page at a time).
pub async fn deliver_due(
    outbox: &Outbox,
    messengers: &[&dyn Messenger],
    max_messages: Option<u32>,
    order: Order,
    now: Timestamp,
) -> Result<DeliveryReport, OutboxError> {
    let mut report = DeliveryReport::default();
    if messengers.is_empty() {
        return Ok(report);
    }
    let targets: Vec<&str> = messengers.iter().map(|m| m.target()).collect();
    record_late_acks(outbox, messengers, &targets, now, &mut report)?;

    let mut remaining = max_messages.map(u64::from);
    loop {
        let page = remaining.map_or(PAGE, |r| PAGE.min(usize::try_from(r).unwrap_or(PAGE)));
        if page == 0 {
            break;
        }
        let due = outbox.due(page, order, now)?;
        if due.is_empty() {
            break;
        }
        let mut rounds: Vec<AttemptRound> = due
            .iter()
            .map(|m| AttemptRound {
                message_id: m.id,
                results: Vec::new(),
            })
            .collect();
        // A messenger that failed a whole page is down (broker unreachable, server
        // failing): the run ends after this page instead of waiting out its timeout on
        // every remaining page; the rest waits for the next run.
        let mut unavailable = false;
        for messenger in messengers {
            let target = messenger.target();
            let (indices, batch): (Vec<usize>, Vec<_>) = due
                .iter()
                .enumerate()
                .filter(|(_, m)| !m.done_targets.iter().any(|d| d == target))
                .map(|(i, m)| (i, m.clone()))
                .unzip();
            if batch.is_empty() {
                continue;
            }
            let outcomes = messenger.send(&batch).await;
            if outcomes.iter().all(|o| !o.is_final()) {
                unavailable = true;
            }
            for (slot, index) in indices.into_iter().enumerate() {
                let outcome = outcomes
                    .get(slot)
                    .cloned()
                    .unwrap_or_else(|| Outcome::Failed {
                        reason: format!("{target} messenger returned no outcome"),
                    });
                rounds[index].results.push((target.to_owned(), outcome));
            }
        }
        outbox.record_attempts(&rounds, &targets, now)?;
        for (message, round) in due.iter().zip(&rounds) {
            let all_final = round.results.iter().all(|(_, o)| o.is_final());
            if !all_final {
                report.deferred += 1;
            } else if round
                .results
                .iter()
                .any(|(_, o)| matches!(o, Outcome::Rejected { .. }))
            {
                report.failed += 1;
            } else {
                report.sent += 1;
            }
            for (target, outcome) in &round.results {
                match outcome {
                    Outcome::Delivered { .. } => {}
                    Outcome::Rejected { reason } => {
                        tracing::warn!(message = %message.id, %target, %reason, "message rejected for good")
                    }
                    Outcome::Failed { reason } | Outcome::TimedOut { reason } => {
                        tracing::debug!(message = %message.id, %target, %reason, "message deferred")
                    }
                }
            }
        }
        if let Some(r) = remaining.as_mut() {
            *r = r.saturating_sub(due.len() as u64);
        }
        if unavailable {
            break;
        }
    }
    tracing::info!(
        sent = report.sent,
        failed = report.failed,
        deferred = report.deferred,
        duplicates = report.duplicates,
        "delivery run finished"
    );
    Ok(report)
}

fn record_late_acks(
    outbox: &Outbox,
    messengers: &[&dyn Messenger],
    targets: &[&str],
    now: Timestamp,
    report: &mut DeliveryReport,
) -> Result<(), OutboxError> {
    for messenger in messengers {
        for id in messenger.take_late_acks() {
            let target = messenger.target();
            let already = outbox.delivered_to(id, target)?;
            let round = AttemptRound {
                message_id: id,
                results: vec![(
                    target.to_owned(),
                    Outcome::Delivered {
                        response: "late acknowledgement".to_owned(),
                    },
                )],
            };
            match outbox.record_attempts(&[round], targets, now) {
                Ok(()) => {}
                // Pruned meanwhile: nothing left to mark.
                Err(OutboxError::UnknownMessage { .. }) => continue,
                Err(e) => return Err(e),
            }
            report.late_acks += 1;
            if already {
                report.duplicates += 1;
            }
        }
    }
    Ok(())
}
