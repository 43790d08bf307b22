//! GetLogEvents and FilterLogEvents.
//!
//! Events of a stream are ordered by timestamp (ties by arrival). A
//! position in that order is a key `(timestamp, sequence)`, written in
//! tokens and event ids as 56 digits, as AWS's are: GetLogEvents answers
//! `nextForwardToken` `f/<key of its last event>` and `nextBackwardToken`
//! `b/<key of its first event>`; at the end of the stream the forward token
//! comes back unchanged, which is how clients know to stop.
//!
//! Events older than the group's retention period are never returned.

use serde_json::{Value, json};
use stratus_core::AwsResult;
use stratus_store::rusqlite::{self, params_from_iter, types::Value as Sql};

use crate::filter::Pattern;
use crate::input::{Input, check_stream_name};
use crate::{DAY_MS, Logs, invalid, store_err, stream_not_found};

/// Most events in one GetLogEvents / FilterLogEvents answer (and the
/// default `limit`).
pub const MAX_EVENTS: usize = 10_000;
/// Most bytes of events in one answer (messages plus 26 per event).
pub const MAX_RESPONSE_BYTES: usize = 1_048_576;
/// Events FilterLogEvents examines per call before it answers with what it
/// found and a `nextToken` to continue.
pub const MAX_SCAN: usize = 100_000;
const CHUNK: usize = 1_000;

type Key = (i64, i64);

/// The 56-digit form of a key.
pub(crate) fn key_digits(k: Key) -> String {
    format!("{:019}{:020}{:017}", k.0.max(0), k.1.max(0), 0)
}

fn parse_key(digits: &str) -> Option<Key> {
    if digits.len() != 56 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits[..19].parse().ok()?, digits[19..39].parse().ok()?))
}

fn bad_token() -> stratus_core::AwsError {
    invalid("The specified nextToken is invalid.")
}

struct Row {
    key: Key,
    stream: String,
    ingestion: i64,
    message: String,
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        key: (r.get(0)?, r.get(1)?),
        stream: r.get(2)?,
        ingestion: r.get(3)?,
        message: r.get(4)?,
    })
}

/// The time window of a read: `startTime` (inclusive) raised to the
/// retention cutoff, `endTime` (exclusive).
fn window(req: &Input, retention_days: Option<i64>) -> AwsResult<(i64, i64)> {
    let start = req.opt_i64("startTime")?.unwrap_or(0);
    let end = req.opt_i64("endTime")?.unwrap_or(i64::MAX);
    if start < 0 || end < 0 {
        return Err(invalid("startTime and endTime must not be negative."));
    }
    let cutoff = retention_days
        .map(|d| stratus_core::time::now_ms() - d * DAY_MS)
        .unwrap_or(0);
    Ok((start.max(cutoff), end))
}

impl Logs {
    /// GetLogEvents: events of one stream, `limit` (1-10,000, default
    /// 10,000, at most 1 MB) at a time; without a token, the newest events
    /// (or the oldest with `startFromHead`); `startTime` inclusive,
    /// `endTime` exclusive (ms).
    ///
    /// Errors: `ResourceNotFoundException` (group or stream),
    /// `InvalidParameterException` (a bad token, limit or name).
    pub(crate) fn get_log_events(&self, region: &str, req: &Input) -> AwsResult<Value> {
        let group = req.group()?;
        let stream = req.req_str("logStreamName")?;
        check_stream_name(stream, "logStreamName")?;
        let limit = req
            .limit("limit", 1, MAX_EVENTS as i64)?
            .unwrap_or(MAX_EVENTS);
        let from_head = req.opt_bool("startFromHead")?.unwrap_or(false);
        enum Dir {
            Fwd(Key),
            Bwd(Key),
        }
        let dir = match req.opt_str("nextToken")? {
            Some(t) => {
                if let Some(d) = t.strip_prefix("f/") {
                    Dir::Fwd(parse_key(d).ok_or_else(bad_token)?)
                } else if let Some(d) = t.strip_prefix("b/") {
                    Dir::Bwd(parse_key(d).ok_or_else(bad_token)?)
                } else {
                    return Err(bad_token());
                }
            }
            None if from_head => Dir::Fwd((-1, -1)),
            None => Dir::Bwd((i64::MAX, i64::MAX)),
        };
        let g = self.group(region, &group)?;
        if !self.stream_exists(region, &group, stream)? {
            return Err(stream_not_found());
        }
        let (lo, hi) = window(req, g.retention_days)?;
        let (forward, key) = match dir {
            Dir::Fwd(k) => (true, k),
            Dir::Bwd(k) => (false, k),
        };
        // The key narrows the timestamp range itself (so the index seeks
        // to it); ties on the key's timestamp are broken by sequence.
        let (lo, hi) = if forward {
            (lo.max(key.0), hi)
        } else {
            (lo, hi.min(key.0.saturating_add(1)))
        };
        let sql = if forward {
            "SELECT timestamp, seq, log_stream, ingestion, message FROM log_events
             WHERE region = ?1 AND log_group = ?2 AND log_stream = ?3 AND timestamp >= ?4 AND timestamp < ?5
               AND (timestamp > ?6 OR seq > ?7)
             ORDER BY timestamp, seq LIMIT ?8"
        } else {
            "SELECT timestamp, seq, log_stream, ingestion, message FROM log_events
             WHERE region = ?1 AND log_group = ?2 AND log_stream = ?3 AND timestamp >= ?4 AND timestamp < ?5
               AND (timestamp < ?6 OR seq < ?7)
             ORDER BY timestamp DESC, seq DESC LIMIT ?8"
        };
        let mut rows: Vec<Row> = self
            .store
            .read(|c| {
                let mut st = c.prepare_cached(sql)?;
                let rows = st.query_map(
                    rusqlite::params![region, group, stream, lo, hi, key.0, key.1, limit as i64],
                    row,
                )?;
                rows.collect()
            })
            .map_err(store_err)?;
        // The 1 MB cap, counted from where the page starts.
        let mut bytes = 0;
        let mut keep = 0;
        for r in &rows {
            bytes += r.message.len() + 26;
            if bytes > MAX_RESPONSE_BYTES && keep > 0 {
                break;
            }
            keep += 1;
        }
        rows.truncate(keep);
        if !forward {
            rows.reverse();
        }
        let (next_fwd, next_bwd) = match (rows.first(), rows.last()) {
            (Some(first), Some(last)) => (last.key, first.key),
            _ if forward => (key, key),
            // Nothing before the key: going forward starts there again.
            _ if key.0 == i64::MAX => ((0, 0), (0, 0)),
            _ => ((key.0, key.1 - 1), key),
        };
        let events: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "timestamp": r.key.0,
                    "message": r.message,
                    "ingestionTime": r.ingestion,
                })
            })
            .collect();
        Ok(json!({
            "events": events,
            "nextForwardToken": format!("f/{}", key_digits(next_fwd)),
            "nextBackwardToken": format!("b/{}", key_digits(next_bwd)),
        }))
    }

    /// FilterLogEvents: events of a group, across its streams (all, those
    /// named in `logStreamNames`, or those starting with
    /// `logStreamNamePrefix`), in timestamp order, that match
    /// `filterPattern` (see [`crate::filter`]); `startTime` and `endTime`
    /// both inclusive (ms), as the model documents them; `limit` 1-10,000 (default 10,000, at most
    /// 1 MB). A call examines at most 100,000 events: `nextToken` is
    /// present whenever more events remain.
    ///
    /// Errors: `ResourceNotFoundException`, `InvalidParameterException`
    /// (both stream selectors, a bad pattern, token or limit).
    pub(crate) fn filter_log_events(&self, region: &str, req: &Input) -> AwsResult<Value> {
        let group = req.group()?;
        let names = req.opt_str_list("logStreamNames")?;
        let prefix = req.opt_str("logStreamNamePrefix")?;
        if names.is_some() && prefix.is_some() {
            return Err(invalid(
                "logStreamNames and logStreamNamePrefix are mutually exclusive parameters.",
            ));
        }
        if let Some(n) = &names {
            if n.is_empty() || n.len() > 100 {
                return Err(invalid(
                    "1 validation error detected: Value at 'logStreamNames' failed to satisfy constraint: Member must have length between 1 and 100",
                ));
            }
            for s in n {
                check_stream_name(s, "logStreamNames")?;
            }
        }
        if let Some(p) = prefix {
            check_stream_name(p, "logStreamNamePrefix")?;
        }
        let pattern_text = req.opt_str("filterPattern")?.unwrap_or("");
        if pattern_text.chars().count() > 1024 {
            return Err(invalid(
                "1 validation error detected: Value at 'filterPattern' failed to satisfy constraint: Member must have length less than or equal to 1024",
            ));
        }
        let pattern = Pattern::parse(pattern_text)?;
        let limit = req
            .limit("limit", 1, MAX_EVENTS as i64)?
            .unwrap_or(MAX_EVENTS);
        let mut key = match req.opt_str("nextToken")? {
            Some(t) => parse_key(t).ok_or_else(bad_token)?,
            None => (-1, -1),
        };
        let g = self.group(region, &group)?;
        let (lo, end) = window(req, g.retention_days)?;
        // FilterLogEvents' `endTime` is inclusive ("events with a timestamp
        // later than this time are not returned"), unlike GetLogEvents'.
        let hi = end.saturating_add(1);
        let mut sql = String::from(
            "SELECT timestamp, seq, log_stream, ingestion, message FROM log_events
             WHERE region = ? AND log_group = ? AND timestamp >= max(?, ?) AND timestamp < ?
               AND (timestamp > ? OR seq > ?)",
        );
        let mut fixed: Vec<Sql> = vec![
            Sql::Text(region.to_string()),
            Sql::Text(group.clone()),
            Sql::Integer(lo),
        ];
        let mut tail: Vec<Sql> = Vec::new();
        if let Some(n) = &names {
            sql.push_str(" AND log_stream IN (");
            sql.push_str(&vec!["?"; n.len()].join(", "));
            sql.push(')');
            tail.extend(n.iter().map(|s| Sql::Text(s.to_string())));
        }
        if let Some(p) = prefix {
            sql.push_str(" AND substr(log_stream, 1, length(?)) = ?");
            tail.push(Sql::Text(p.to_string()));
            tail.push(Sql::Text(p.to_string()));
        }
        sql.push_str(" ORDER BY timestamp, seq LIMIT ?");
        let mut found = Vec::new();
        let mut bytes = 0;
        let mut scanned = 0;
        let mut more = false;
        'scan: loop {
            let mut params = fixed.clone();
            params.push(Sql::Integer(key.0));
            params.push(Sql::Integer(hi));
            params.push(Sql::Integer(key.0));
            params.push(Sql::Integer(key.1));
            params.extend(tail.iter().cloned());
            params.push(Sql::Integer(CHUNK as i64));
            let rows: Vec<Row> = self
                .store
                .read(|c| {
                    let mut st = c.prepare_cached(&sql)?;
                    let rows = st.query_map(params_from_iter(params), row)?;
                    rows.collect()
                })
                .map_err(store_err)?;
            let n = rows.len();
            for r in rows {
                if pattern.matches(&r.message) {
                    let size = r.message.len() + 26;
                    // A page holds at most 1 MB of events (but always at
                    // least one): an event that does not fit opens the
                    // next page, so the token stays before it.
                    if !found.is_empty() && bytes + size > MAX_RESPONSE_BYTES {
                        more = true;
                        break 'scan;
                    }
                    key = r.key;
                    scanned += 1;
                    bytes += size;
                    found.push(r);
                    if found.len() >= limit {
                        more = true;
                        break 'scan;
                    }
                } else {
                    key = r.key;
                    scanned += 1;
                }
                if scanned >= MAX_SCAN {
                    more = true;
                    break 'scan;
                }
            }
            if n < CHUNK {
                break;
            }
        }
        fixed.clear();
        let events: Vec<Value> = found
            .iter()
            .map(|r| {
                json!({
                    "logStreamName": r.stream,
                    "timestamp": r.key.0,
                    "message": r.message,
                    "ingestionTime": r.ingestion,
                    "eventId": key_digits(r.key),
                })
            })
            .collect();
        let mut out = json!({"events": events, "searchedLogStreams": []});
        if more {
            out["nextToken"] = Value::from(key_digits(key));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_in_56_digits() {
        let k = (1_700_000_000_123, 42);
        let d = key_digits(k);
        assert_eq!(d.len(), 56);
        assert_eq!(parse_key(&d), Some(k));
        assert_eq!(parse_key("12"), None);
        assert_eq!(parse_key(&"x".repeat(56)), None);
    }
}
