//! The message store: SQL run inside the store's group-commit writer.
//!
//! Messages live in `sqs_messages`, one row each, indexed by
//! `(queue_id, visible_at, seq)` so a receive is an index range scan. A
//! message is *visible* when `visible_at <= now`; a message never received
//! whose `visible_at` is in the future is *delayed*; a received one is *in
//! flight*. `seq` (the row id) orders messages and is the FIFO
//! `SequenceNumber`.

use std::collections::{BTreeMap, HashSet};

use stratus_store::rusqlite::{self, Connection, OptionalExtension, params};

/// The tables (run once at start-up).
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS sqs_queues (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    region TEXT NOT NULL,
    name   TEXT NOT NULL,
    body   TEXT NOT NULL,
    UNIQUE (region, name)
);
CREATE TABLE IF NOT EXISTS sqs_messages (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    queue_id         INTEGER NOT NULL,
    message_id       TEXT NOT NULL,
    body             TEXT NOT NULL,
    md5_body         TEXT NOT NULL,
    attrs            TEXT,
    sys_attrs        TEXT,
    sent_ms          INTEGER NOT NULL,
    visible_at       INTEGER NOT NULL,
    receive_count    INTEGER NOT NULL DEFAULT 0,
    first_receive_ms INTEGER,
    receipt          TEXT,
    group_id         TEXT,
    dedup_id         TEXT,
    sender_id        TEXT NOT NULL,
    dlq_source       TEXT
);
CREATE INDEX IF NOT EXISTS sqs_messages_visible ON sqs_messages (queue_id, visible_at, seq);
CREATE TABLE IF NOT EXISTS sqs_dedup (
    queue_id   INTEGER NOT NULL,
    dedup_key  TEXT NOT NULL,
    message_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (queue_id, dedup_key)
);
"#;

/// FIFO deduplication interval: 5 minutes, in ms.
pub const DEDUP_WINDOW_MS: i64 = 5 * 60 * 1000;

/// A message ready to insert.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// `MessageId` (UUID v4).
    pub message_id: String,
    /// The message body.
    pub body: String,
    /// `MD5OfMessageBody` (lowercase hex).
    pub md5_body: String,
    /// json-protocol `MessageAttributes` document, if any.
    pub attrs: Option<String>,
    /// json `MessageSystemAttributes` document (`AWSTraceHeader`), if any.
    pub sys_attrs: Option<String>,
    /// `SentTimestamp`, ms since the epoch.
    pub sent_ms: i64,
    /// When the message may first be received (sent time plus delay), ms.
    pub visible_at: i64,
    /// `MessageGroupId`.
    pub group_id: Option<String>,
    /// FIFO `MessageDeduplicationId`, given or computed from the body.
    pub dedup_id: Option<String>,
    /// Key in `sqs_dedup` (FIFO), including the group when deduplication
    /// is per message group.
    pub dedup_key: Option<String>,
    /// `SenderId` (the account id).
    pub sender_id: String,
}

/// What an insert did: the message id and sequence number of the message
/// now in the queue (an earlier one when deduplicated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inserted {
    /// The message id of the message in the queue.
    pub message_id: String,
    /// Its sequence number (row id).
    pub seq: i64,
    /// True when the send was a duplicate within the deduplication window.
    pub duplicate: bool,
}

/// Inserts `m` into queue `queue_id`, unless (FIFO) a message with the same
/// deduplication key was accepted in the last 5 minutes.
pub fn insert(conn: &Connection, queue_id: i64, m: &NewMessage) -> rusqlite::Result<Inserted> {
    if let Some(key) = &m.dedup_key {
        let prior: Option<(String, i64)> = conn
            .query_row(
                "SELECT message_id, seq FROM sqs_dedup WHERE queue_id = ?1 AND dedup_key = ?2 AND expires_ms > ?3",
                params![queue_id, key, m.sent_ms],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((message_id, seq)) = prior {
            return Ok(Inserted {
                message_id,
                seq,
                duplicate: true,
            });
        }
    }
    let mut st = conn.prepare_cached(
        "INSERT INTO sqs_messages (queue_id, message_id, body, md5_body, attrs, sys_attrs, sent_ms, visible_at, group_id, dedup_id, sender_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    st.execute(params![
        queue_id,
        m.message_id,
        m.body,
        m.md5_body,
        m.attrs,
        m.sys_attrs,
        m.sent_ms,
        m.visible_at,
        m.group_id,
        m.dedup_id,
        m.sender_id
    ])?;
    let seq = conn.last_insert_rowid();
    if let Some(key) = &m.dedup_key {
        conn.execute(
            "INSERT INTO sqs_dedup (queue_id, dedup_key, message_id, seq, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (queue_id, dedup_key) DO UPDATE SET message_id = excluded.message_id, seq = excluded.seq, expires_ms = excluded.expires_ms",
            params![queue_id, key, m.message_id, seq, m.sent_ms + DEDUP_WINDOW_MS],
        )?;
    }
    Ok(Inserted {
        message_id: m.message_id.clone(),
        seq,
        duplicate: false,
    })
}

/// One received message, as stored after the receive.
#[derive(Debug, Clone)]
pub struct Received {
    /// Sequence number (row id).
    pub seq: i64,
    /// `MessageId`.
    pub message_id: String,
    /// The receipt nonce of this receive.
    pub receipt: String,
    /// The message body.
    pub body: String,
    /// `MD5OfBody`.
    pub md5_body: String,
    /// json-protocol `MessageAttributes` document, if any.
    pub attrs: Option<String>,
    /// json `MessageSystemAttributes` document, if any.
    pub sys_attrs: Option<String>,
    /// `SentTimestamp`, ms since the epoch.
    pub sent_ms: i64,
    /// `ApproximateReceiveCount`, this receive included.
    pub receive_count: i64,
    /// `ApproximateFirstReceiveTimestamp`, ms since the epoch.
    pub first_receive_ms: i64,
    /// `MessageGroupId`.
    pub group_id: Option<String>,
    /// `MessageDeduplicationId` (FIFO).
    pub dedup_id: Option<String>,
    /// `SenderId`.
    pub sender_id: String,
    /// `DeadLetterQueueSourceArn` when the message was moved here.
    pub dlq_source: Option<String>,
}

/// How to receive from one queue.
#[derive(Debug, Clone)]
pub struct ReceiveSpec {
    /// The queue's row id.
    pub queue_id: i64,
    /// Whether the queue is FIFO (group ordering and blocking).
    pub fifo: bool,
    /// Most messages to return (1-10).
    pub max: usize,
    /// Visibility timeout of received messages, ms.
    pub visibility_ms: i64,
    /// `MessageRetentionPeriod`, ms.
    pub retention_ms: i64,
    /// The queue's redrive policy, resolved.
    pub redrive: Option<RedriveTarget>,
    /// The current time, ms since the epoch.
    pub now: i64,
}

/// Where messages received too often go.
#[derive(Debug, Clone)]
pub struct RedriveTarget {
    /// The dead-letter queue's row id.
    pub dlq_id: i64,
    /// Whether the dead-letter queue is FIFO (resets the enqueue time).
    pub dlq_fifo: bool,
    /// `maxReceiveCount` (1-1,000).
    pub max_receive_count: i64,
    /// The source queue's ARN (`DeadLetterQueueSourceArn`).
    pub source_arn: String,
}

/// The outcome of one receive round.
#[derive(Debug, Default)]
pub struct ReceiveOutcome {
    /// The messages received, in order.
    pub messages: Vec<Received>,
    /// Messages moved to the dead-letter queue during this round.
    pub moved: usize,
    /// When the next message becomes visible (ms), if one is waiting.
    pub next_visible: Option<i64>,
}

struct Candidate {
    seq: i64,
    sent_ms: i64,
    receive_count: i64,
    /// Read for FIFO group blocking.
    group_id: Option<String>,
}

/// Receives up to `spec.max` visible messages: marks them in flight for
/// the visibility timeout with a fresh receipt, deletes expired ones, and
/// moves those past `maxReceiveCount` to the dead-letter queue. FIFO
/// queues return messages in sequence order and skip message groups that
/// have a message in flight or delayed.
pub fn receive(conn: &Connection, spec: &ReceiveSpec) -> rusqlite::Result<ReceiveOutcome> {
    let mut out = ReceiveOutcome::default();
    let mut rounds = 0;
    while out.messages.len() < spec.max && rounds < 50 {
        rounds += 1;
        let candidates = if spec.fifo {
            fifo_candidates(conn, spec)?
        } else {
            let mut st = conn.prepare_cached(
                "SELECT seq, sent_ms, receive_count, group_id FROM sqs_messages
                 WHERE queue_id = ?1 AND visible_at <= ?2 ORDER BY visible_at, seq LIMIT ?3",
            )?;
            st.query_map(
                params![
                    spec.queue_id,
                    spec.now,
                    (spec.max - out.messages.len()) as i64
                ],
                |r| {
                    Ok(Candidate {
                        seq: r.get(0)?,
                        sent_ms: r.get(1)?,
                        receive_count: r.get(2)?,
                        group_id: r.get(3)?,
                    })
                },
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?
        };
        if candidates.is_empty() {
            break;
        }
        let mut progressed = false;
        for c in candidates {
            if out.messages.len() >= spec.max {
                break;
            }
            // With a visibility timeout of 0 a message just received is
            // visible again: one receive returns it once.
            if out.messages.iter().any(|m| m.seq == c.seq) {
                continue;
            }
            progressed = true;
            if c.sent_ms + spec.retention_ms <= spec.now {
                conn.execute("DELETE FROM sqs_messages WHERE seq = ?1", params![c.seq])?;
                continue;
            }
            if let Some(r) = &spec.redrive
                && c.receive_count >= r.max_receive_count
            {
                move_to_dlq(conn, c.seq, r, spec.now)?;
                out.moved += 1;
                continue;
            }
            let nonce = uuid::Uuid::new_v4().simple().to_string();
            let mut st = conn.prepare_cached(
                "UPDATE sqs_messages SET receive_count = receive_count + 1,
                     first_receive_ms = COALESCE(first_receive_ms, ?2), visible_at = ?3, receipt = ?4
                 WHERE seq = ?1
                 RETURNING message_id, body, md5_body, attrs, sys_attrs, sent_ms, receive_count,
                           first_receive_ms, group_id, dedup_id, sender_id, dlq_source",
            )?;
            let m = st.query_row(
                params![c.seq, spec.now, spec.now + spec.visibility_ms, nonce],
                |r| {
                    Ok(Received {
                        seq: c.seq,
                        message_id: r.get(0)?,
                        receipt: nonce.clone(),
                        body: r.get(1)?,
                        md5_body: r.get(2)?,
                        attrs: r.get(3)?,
                        sys_attrs: r.get(4)?,
                        sent_ms: r.get(5)?,
                        receive_count: r.get(6)?,
                        first_receive_ms: r.get(7)?,
                        group_id: r.get(8)?,
                        dedup_id: r.get(9)?,
                        sender_id: r.get(10)?,
                        dlq_source: r.get(11)?,
                    })
                },
            )?;
            out.messages.push(m);
        }
        if !progressed {
            break;
        }
    }
    out.next_visible = conn.query_row(
        "SELECT MIN(visible_at) FROM sqs_messages WHERE queue_id = ?1 AND visible_at > ?2",
        params![spec.queue_id, spec.now],
        |r| r.get(0),
    )?;
    Ok(out)
}

/// FIFO: visible messages whose group has nothing in flight or delayed
/// ahead of them, in sequence order.
fn fifo_candidates(conn: &Connection, spec: &ReceiveSpec) -> rusqlite::Result<Vec<Candidate>> {
    let mut st = conn.prepare_cached(
        "SELECT seq, sent_ms, receive_count, group_id, visible_at FROM sqs_messages
         WHERE queue_id = ?1 ORDER BY seq LIMIT 20000",
    )?;
    let rows = st
        .query_map(params![spec.queue_id], |r| {
            Ok((
                Candidate {
                    seq: r.get(0)?,
                    sent_ms: r.get(1)?,
                    receive_count: r.get(2)?,
                    group_id: r.get(3)?,
                },
                r.get::<_, i64>(4)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut blocked: HashSet<Option<String>> = HashSet::new();
    let mut out = Vec::new();
    for (c, visible_at) in rows {
        if blocked.contains(&c.group_id) {
            continue;
        }
        if visible_at > spec.now {
            blocked.insert(c.group_id.clone());
            continue;
        }
        out.push(c);
        if out.len() >= spec.max {
            break;
        }
    }
    Ok(out)
}

fn move_to_dlq(conn: &Connection, seq: i64, r: &RedriveTarget, now: i64) -> rusqlite::Result<()> {
    // A standard dead-letter queue keeps the original enqueue time (the
    // retention period counts from it); a FIFO one resets it.
    conn.execute(
        "INSERT INTO sqs_messages (queue_id, message_id, body, md5_body, attrs, sys_attrs, sent_ms, visible_at, group_id, dedup_id, sender_id, dlq_source)
         SELECT ?1, message_id, body, md5_body, attrs, sys_attrs,
                CASE WHEN ?2 THEN ?3 ELSE sent_ms END, ?3, group_id, dedup_id, sender_id, ?4
         FROM sqs_messages WHERE seq = ?5",
        params![r.dlq_id, r.dlq_fifo, now, r.source_arn, seq],
    )?;
    conn.execute("DELETE FROM sqs_messages WHERE seq = ?1", params![seq])?;
    Ok(())
}

/// Deletes the message `seq` of `queue_id` if `receipt` is its latest
/// receipt. Returns whether a message was deleted (a stale receipt or an
/// already deleted message deletes nothing, and SQS still answers success).
pub fn delete(conn: &Connection, queue_id: i64, seq: i64, receipt: &str) -> rusqlite::Result<bool> {
    let mut st = conn.prepare_cached(
        "DELETE FROM sqs_messages WHERE seq = ?1 AND queue_id = ?2 AND receipt = ?3",
    )?;
    Ok(st.execute(params![seq, queue_id, receipt])? > 0)
}

/// Sets the visibility of an in-flight message to `now + timeout_ms`.
/// Returns false when the message is not in flight under this receipt.
pub fn change_visibility(
    conn: &Connection,
    queue_id: i64,
    seq: i64,
    receipt: &str,
    now: i64,
    timeout_ms: i64,
) -> rusqlite::Result<bool> {
    let mut st = conn.prepare_cached(
        "UPDATE sqs_messages SET visible_at = ?5 + ?6
         WHERE seq = ?1 AND queue_id = ?2 AND receipt = ?3 AND receive_count > 0 AND visible_at > ?4",
    )?;
    Ok(st.execute(params![seq, queue_id, receipt, now, now, timeout_ms])? > 0)
}

/// `(visible, in flight, delayed)` message counts.
pub fn counts(conn: &Connection, queue_id: i64, now: i64) -> rusqlite::Result<(i64, i64, i64)> {
    conn.query_row(
        "SELECT
            COALESCE(SUM(visible_at <= ?2), 0),
            COALESCE(SUM(visible_at > ?2 AND receive_count > 0), 0),
            COALESCE(SUM(visible_at > ?2 AND receive_count = 0), 0)
         FROM sqs_messages WHERE queue_id = ?1",
        params![queue_id, now],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

/// Deletes every message of a queue (PurgeQueue, DeleteQueue).
pub fn purge(conn: &Connection, queue_id: i64) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM sqs_dedup WHERE queue_id = ?1",
        params![queue_id],
    )?;
    conn.execute(
        "DELETE FROM sqs_messages WHERE queue_id = ?1",
        params![queue_id],
    )
}

/// Deletes messages older than their queue's retention period and
/// deduplication entries past their window.
pub fn sweep(
    conn: &Connection,
    retention: &BTreeMap<i64, i64>,
    now: i64,
) -> rusqlite::Result<usize> {
    let mut n = 0;
    for (queue_id, retention_ms) in retention {
        n += conn.execute(
            "DELETE FROM sqs_messages WHERE queue_id = ?1 AND sent_ms <= ?2",
            params![queue_id, now - retention_ms],
        )?;
    }
    conn.execute("DELETE FROM sqs_dedup WHERE expires_ms <= ?1", params![now])?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(SCHEMA).unwrap();
        c
    }

    fn msg(body: &str, now: i64, group: Option<&str>, dedup: Option<&str>) -> NewMessage {
        NewMessage {
            message_id: uuid::Uuid::new_v4().to_string(),
            body: body.into(),
            md5_body: crate::attrs::md5_hex(body.as_bytes()),
            attrs: None,
            sys_attrs: None,
            sent_ms: now,
            visible_at: now,
            group_id: group.map(str::to_string),
            dedup_id: dedup.map(str::to_string),
            dedup_key: dedup.map(str::to_string),
            sender_id: "123456789012".into(),
        }
    }

    fn spec(queue_id: i64, fifo: bool, max: usize, now: i64) -> ReceiveSpec {
        ReceiveSpec {
            queue_id,
            fifo,
            max,
            visibility_ms: 30_000,
            retention_ms: 345_600_000,
            redrive: None,
            now,
        }
    }

    #[test]
    fn fifo_deduplicates_within_five_minutes() {
        let c = db();
        let a = insert(&c, 1, &msg("a", 1_000, Some("g"), Some("d1"))).unwrap();
        let b = insert(&c, 1, &msg("b", 2_000, Some("g"), Some("d1"))).unwrap();
        assert!(!a.duplicate);
        assert!(b.duplicate);
        assert_eq!(a.message_id, b.message_id);
        assert_eq!(a.seq, b.seq);
        // After the 5-minute window the same id is a new message.
        let c3 = insert(
            &c,
            1,
            &msg("c", 1_000 + DEDUP_WINDOW_MS, Some("g"), Some("d1")),
        )
        .unwrap();
        assert!(!c3.duplicate);
        assert_ne!(c3.message_id, a.message_id);
        // Other queues have their own window.
        assert!(
            !insert(&c, 2, &msg("a", 1_000, Some("g"), Some("d1")))
                .unwrap()
                .duplicate
        );
    }

    #[test]
    fn visibility_timeout_hides_then_returns_a_message() {
        let c = db();
        insert(&c, 1, &msg("m", 0, None, None)).unwrap();
        let first = receive(&c, &spec(1, false, 10, 10)).unwrap();
        assert_eq!(first.messages.len(), 1);
        assert_eq!(first.messages[0].receive_count, 1);
        assert_eq!(first.next_visible, Some(30_010));
        assert!(
            receive(&c, &spec(1, false, 10, 20_000))
                .unwrap()
                .messages
                .is_empty()
        );
        assert_eq!(counts(&c, 1, 20_000).unwrap(), (0, 1, 0));
        let again = receive(&c, &spec(1, false, 10, 30_010)).unwrap();
        assert_eq!(again.messages.len(), 1);
        assert_eq!(again.messages[0].receive_count, 2);
        assert_eq!(again.messages[0].first_receive_ms, 10);
        assert_ne!(again.messages[0].receipt, first.messages[0].receipt);
        // The older receipt no longer deletes; the newest does.
        let seq = again.messages[0].seq;
        assert!(!delete(&c, 1, seq, &first.messages[0].receipt).unwrap());
        assert!(!change_visibility(&c, 1, seq, &first.messages[0].receipt, 30_020, 0).unwrap());
        assert!(change_visibility(&c, 1, seq, &again.messages[0].receipt, 30_020, 0).unwrap());
        assert_eq!(counts(&c, 1, 30_020).unwrap(), (1, 0, 0));
        let third = receive(&c, &spec(1, false, 10, 30_020)).unwrap();
        assert!(delete(&c, 1, seq, &third.messages[0].receipt).unwrap());
        assert_eq!(counts(&c, 1, 30_020).unwrap(), (0, 0, 0));
    }

    #[test]
    fn fifo_blocks_a_group_while_a_message_is_in_flight() {
        let c = db();
        for (body, group) in [("a1", "a"), ("b1", "b"), ("a2", "a"), ("b2", "b")] {
            let mut m = msg(body, 0, Some(group), None);
            m.dedup_key = None;
            insert(&c, 1, &m).unwrap();
        }
        let got = receive(&c, &spec(1, true, 1, 1)).unwrap();
        assert_eq!(got.messages[0].body, "a1");
        // Group a is blocked: the next receive gets b's head only.
        let got = receive(&c, &spec(1, true, 10, 2)).unwrap();
        let bodies: Vec<_> = got.messages.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(bodies, ["b1", "b2"]);
        assert!(
            receive(&c, &spec(1, true, 10, 3))
                .unwrap()
                .messages
                .is_empty()
        );
    }

    #[test]
    fn redrive_moves_after_max_receive_count() {
        let c = db();
        insert(&c, 1, &msg("m", 0, None, None)).unwrap();
        let mut s = spec(1, false, 10, 0);
        s.visibility_ms = 0;
        s.redrive = Some(RedriveTarget {
            dlq_id: 2,
            dlq_fifo: false,
            max_receive_count: 2,
            source_arn: "arn:aws:sqs:us-east-1:123456789012:src".into(),
        });
        for now in [1, 2] {
            s.now = now;
            assert_eq!(receive(&c, &s).unwrap().messages.len(), 1);
        }
        s.now = 3;
        let third = receive(&c, &s).unwrap();
        assert!(third.messages.is_empty());
        assert_eq!(third.moved, 1);
        let dlq = receive(&c, &spec(2, false, 10, 4)).unwrap();
        assert_eq!(dlq.messages.len(), 1);
        assert_eq!(dlq.messages[0].body, "m");
        assert_eq!(dlq.messages[0].receive_count, 1);
        assert_eq!(dlq.messages[0].sent_ms, 0);
    }

    #[test]
    fn retention_drops_old_messages() {
        let c = db();
        insert(&c, 1, &msg("old", 0, None, None)).unwrap();
        let mut s = spec(1, false, 10, 61_000);
        s.retention_ms = 60_000;
        assert!(receive(&c, &s).unwrap().messages.is_empty());
        assert_eq!(counts(&c, 1, 61_000).unwrap(), (0, 0, 0));
    }
}
