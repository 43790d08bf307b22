//! PutLogEvents, with AWS's batch rules (PutLogEvents API reference):
//!
//! * at most 10,000 events, and at most 1,048,576 bytes counted as the
//!   UTF-8 bytes of every message plus 26 bytes per event;
//! * events in chronological order, spanning at most 24 hours;
//! * events more than 2 hours in the future, older than 14 days, or older
//!   than the group's retention period are not stored but reported in
//!   `rejectedLogEventsInfo` (`tooNewLogEventStartIndex`,
//!   `tooOldLogEventEndIndex`, `expiredLogEventEndIndex`).
//!
//! `sequenceToken` is ignored, as AWS now ignores it.

use serde_json::{Value, json};
use stratus_core::AwsResult;
use stratus_store::LogEvent;
use stratus_store::rusqlite::{OptionalExtension, params};

use crate::input::{Input, check_group_name, check_stream_name, serialization};
use crate::{DAY_MS, Logs, group_not_found, invalid, store_err, stream_not_found};

/// Most events in one PutLogEvents call.
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// Most bytes in one PutLogEvents call (messages plus 26 per event).
pub const MAX_BATCH_BYTES: usize = 1_048_576;
/// Bytes counted per event on top of its message.
pub const EVENT_OVERHEAD_BYTES: usize = 26;
/// Events further ahead than this (ms) are too new.
pub const MAX_FUTURE_MS: i64 = 2 * 3_600_000;
/// Events older than this (ms) are too old.
pub const MAX_AGE_MS: i64 = 14 * DAY_MS;
/// The most time (ms) one batch may span.
pub const MAX_SPAN_MS: i64 = DAY_MS;

/// A sequence token in AWS's shape (a string of digits).
pub(crate) fn sequence_token(n: i64) -> String {
    format!("{n:056}")
}

/// Where each event of a checked batch goes.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// Indexes of the events to store.
    pub accepted: Vec<usize>,
    pub too_new_start: Option<usize>,
    pub too_old_end: Option<usize>,
    pub expired_end: Option<usize>,
}

/// Applies the batch rules to `(timestamp, message)` pairs at `now`.
///
/// Errors: `InvalidParameterException` for a batch that breaks a rule of
/// the whole call (count, size, order, span, an empty message).
pub(crate) fn check_batch(
    events: &[(i64, &str)],
    now: i64,
    retention_days: Option<i64>,
) -> AwsResult<Verdict> {
    if events.is_empty() {
        return Err(invalid(
            "1 validation error detected: Value '[]' at 'logEvents' failed to satisfy constraint: Member must have length greater than or equal to 1",
        ));
    }
    if events.len() > MAX_BATCH_EVENTS {
        return Err(invalid(format!(
            "1 validation error detected: Value at 'logEvents' failed to satisfy constraint: Member must have length less than or equal to {MAX_BATCH_EVENTS} (the batch has {} events)",
            events.len()
        )));
    }
    let bytes: usize = events
        .iter()
        .map(|(_, m)| m.len() + EVENT_OVERHEAD_BYTES)
        .sum();
    if bytes > MAX_BATCH_BYTES {
        return Err(invalid(format!(
            "Upload too large: {bytes} bytes exceeds limit of {MAX_BATCH_BYTES}"
        )));
    }
    for (i, (ts, m)) in events.iter().enumerate() {
        if m.is_empty() {
            return Err(invalid(format!(
                "1 validation error detected: Value '' at 'logEvents.{}.member.message' failed to satisfy constraint: Member must have length greater than or equal to 1",
                i + 1
            )));
        }
        if *ts < 0 {
            return Err(invalid(format!(
                "The timestamp of log event {i} is negative."
            )));
        }
    }
    if events.windows(2).any(|w| w[1].0 < w[0].0) {
        return Err(invalid(
            "Log events in a single PutLogEvents request must be in chronological order.",
        ));
    }
    // The span rule covers the valid events only (from 14 days ago to 2
    // hours ahead): too old and too new events are rejected by index, not
    // by failing the call (PutLogEvents API reference).
    let valid = || {
        events
            .iter()
            .map(|(ts, _)| *ts)
            .filter(|ts| *ts >= now - MAX_AGE_MS && *ts <= now + MAX_FUTURE_MS)
    };
    if let (Some(first), Some(last)) = (valid().min(), valid().max())
        && last - first > MAX_SPAN_MS
    {
        return Err(invalid(
            "Log events in a single PutLogEvents request cannot span more than 24 hours.",
        ));
    }
    let mut v = Verdict::default();
    let expiry = retention_days.map(|d| now - d * DAY_MS);
    for (i, (ts, _)) in events.iter().enumerate() {
        if *ts > now + MAX_FUTURE_MS {
            // Events are in order: every later one is too new as well.
            v.too_new_start = Some(i);
            break;
        }
        if *ts < now - MAX_AGE_MS {
            v.too_old_end = Some(i);
        } else if expiry.is_some_and(|e| *ts < e) {
            v.expired_end = Some(i);
        } else {
            v.accepted.push(i);
        }
    }
    Ok(v)
}

impl Logs {
    /// PutLogEvents: stores the accepted events of the batch in the
    /// stream, durably, before answering `{"nextSequenceToken",
    /// "rejectedLogEventsInfo"?}`.
    ///
    /// Errors: `ResourceNotFoundException` (group or stream),
    /// `InvalidParameterException` (batch rules, see the module doc; an
    /// event without its timestamp or message), `SerializationException`
    /// (an event or member of the wrong JSON type).
    pub(crate) async fn put_log_events(&self, region: &str, req: &Input) -> AwsResult<Value> {
        let group = req.req_str("logGroupName")?.to_string();
        check_group_name(&group, "logGroupName")?;
        let stream = req.req_str("logStreamName")?.to_string();
        check_stream_name(&stream, "logStreamName")?;
        let raw = req
            .opt_list("logEvents")?
            .ok_or_else(|| invalid("Missing required parameter logEvents."))?;
        let mut events = Vec::with_capacity(raw.len());
        for (i, e) in raw.iter().enumerate() {
            // As the json protocol answers: a member of the wrong type is
            // SerializationException, a missing one InvalidParameterException.
            let n = i + 1;
            let Some(e) = e.as_object() else {
                return Err(serialization(format!(
                    "logEvents.{n} must be an object with a timestamp and a message."
                )));
            };
            let member = |name: &str| {
                e.get(name).filter(|v| !v.is_null()).ok_or_else(|| {
                    invalid(format!(
                        "1 validation error detected: Value null at 'logEvents.{n}.member.{name}' failed to satisfy constraint: Member must not be null"
                    ))
                })
            };
            let ts = member("timestamp")?.as_i64().ok_or_else(|| {
                serialization(format!(
                    "logEvents.{n}.timestamp must be an integer (ms since the epoch)."
                ))
            })?;
            let msg = member("message")?
                .as_str()
                .ok_or_else(|| serialization(format!("logEvents.{n}.message must be a string.")))?;
            events.push((ts, msg));
        }
        let g = self
            .load_group(region, &group)?
            .ok_or_else(group_not_found)?;
        if !self.stream_exists(region, &group, &stream)? {
            return Err(stream_not_found());
        }
        let now = stratus_core::time::now_ms();
        let verdict = check_batch(&events, now, g.retention_days)?;
        let batch: Vec<LogEvent> = verdict
            .accepted
            .iter()
            .map(|&i| LogEvent {
                region: region.to_string(),
                log_group: group.clone(),
                log_stream: stream.clone(),
                timestamp: events[i].0,
                message: events[i].1.to_string(),
            })
            .collect();
        let (r, gname, sname) = (region.to_string(), group.clone(), stream.clone());
        let upload = self
            .store
            .write(move |c| {
                // The stream may have been deleted since it was looked up:
                // nothing is written then (a write would create it again).
                let exists = c
                    .query_row(
                        "SELECT 1 FROM log_streams WHERE region = ?1 AND log_group = ?2 AND name = ?3",
                        params![r, gname, sname],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some();
                if !exists {
                    return Ok(None);
                }
                if !batch.is_empty() {
                    stratus_store::insert_log_events(c, &batch, now)?;
                } else {
                    c.execute(
                        "UPDATE log_streams SET upload_seq = upload_seq + 1
                         WHERE region = ?1 AND log_group = ?2 AND name = ?3",
                        params![r, gname, sname],
                    )?;
                }
                c.query_row(
                    "SELECT upload_seq FROM log_streams WHERE region = ?1 AND log_group = ?2 AND name = ?3",
                    params![r, gname, sname],
                    |row| row.get::<_, i64>(0),
                )
                .map(Some)
            })
            .await
            .map_err(store_err)?
            .ok_or_else(stream_not_found)?;
        let mut out = json!({"nextSequenceToken": sequence_token(upload)});
        let mut rejected = serde_json::Map::new();
        if let Some(i) = verdict.too_new_start {
            rejected.insert("tooNewLogEventStartIndex".into(), Value::from(i));
        }
        if let Some(i) = verdict.too_old_end {
            rejected.insert("tooOldLogEventEndIndex".into(), Value::from(i));
        }
        if let Some(i) = verdict.expired_end {
            rejected.insert("expiredLogEventEndIndex".into(), Value::from(i));
        }
        if !rejected.is_empty() {
            out["rejectedLogEventsInfo"] = Value::Object(rejected);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn batches_must_be_in_order_and_within_limits() {
        assert!(check_batch(&[(NOW, "b"), (NOW - 1, "a")], NOW, None).is_err());
        assert!(check_batch(&[], NOW, None).is_err());
        assert!(check_batch(&[(NOW - DAY_MS - 1, "a"), (NOW, "b")], NOW, None).is_err());
        let many: Vec<(i64, &str)> = (0..10_001).map(|_| (NOW, "x")).collect();
        assert!(check_batch(&many, NOW, None).is_err());
        // 1,048,576 bytes exactly is allowed: 26 + message bytes per event.
        let big = "x".repeat(MAX_BATCH_BYTES - EVENT_OVERHEAD_BYTES);
        assert!(check_batch(&[(NOW, big.as_str())], NOW, None).is_ok());
        let bigger = "x".repeat(MAX_BATCH_BYTES - EVENT_OVERHEAD_BYTES + 1);
        assert!(check_batch(&[(NOW, bigger.as_str())], NOW, None).is_err());
    }

    #[test]
    fn old_and_new_events_are_rejected_by_index() {
        // Valid events spanning more than 24 hours fail the whole call.
        let ev = [(NOW - DAY_MS - 1, "valid"), (NOW, "valid too")];
        assert!(check_batch(&ev, NOW, None).is_err());
        // The span counts valid events only: a too old event before them
        // is rejected by index and the others are stored.
        let ev = [(NOW - 15 * DAY_MS, "too old"), (NOW, "fine")];
        let v = check_batch(&ev, NOW, None).unwrap();
        assert_eq!(v.too_old_end, Some(0));
        assert_eq!(v.accepted, vec![1]);
        // Likewise a too new event after them.
        let ev = [
            (NOW - 20 * 3_600_000, "fine"),
            (NOW + 5 * 3_600_000, "too new"),
        ];
        let v = check_batch(&ev, NOW, None).unwrap();
        assert_eq!(v.accepted, vec![0]);
        assert_eq!(v.too_new_start, Some(1));
        let ev = [
            (NOW - DAY_MS - 10, "expired with 1 day retention"),
            (NOW - 2 * 3_600_000, "fine"),
        ];
        let v = check_batch(&ev, NOW, Some(1)).unwrap();
        assert_eq!(v.expired_end, Some(0));
        assert_eq!(v.accepted, vec![1]);
        let ev = [
            (NOW, "fine"),
            (NOW + 2 * 3_600_000 + 1, "too new"),
            (NOW + 2 * 3_600_000 + 2, "too new as well"),
        ];
        let v = check_batch(&ev, NOW, None).unwrap();
        assert_eq!(v.accepted, vec![0]);
        assert_eq!(v.too_new_start, Some(1));
        let ev = [
            (NOW - 14 * DAY_MS - 1, "too old"),
            (NOW - 14 * DAY_MS + 10, "ok"),
        ];
        let v = check_batch(&ev, NOW, None).unwrap();
        assert_eq!(v.too_old_end, Some(0));
        assert_eq!(v.accepted, vec![1]);
    }
}
