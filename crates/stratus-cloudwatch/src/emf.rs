//! Embedded Metric Format: log lines a function writes as
//! `{"_aws": {"Timestamp": <ms>, "CloudWatchMetrics": [...]}, ...}` become
//! custom metrics, as CloudWatch Logs extracts them ("Specification:
//! Embedded metric format").
//!
//! Each directive of `CloudWatchMetrics` names a `Namespace`, its
//! `Dimensions` (a list of dimension sets, each a list of member names
//! whose string values are at the root of the object; `[[]]` is one set
//! without dimensions) and its `Metrics` (`Name`, optional `Unit` and
//! `StorageResolution`), whose values are the root member of the same name:
//! a number or a list of up to 100 numbers. One datum is stored per
//! dimension set and metric. A line that breaks the specification yields
//! no metric (the log event stays as it is).
//!
//! The same scan reads each invocation's duration from its REPORT line
//! (table `cw_lambda_durations`), which gives Lambda's Duration metric its
//! Minimum and percentiles (see [`crate::sources`]).
//!
//! A background task ([`CloudWatch::spawn_emf`]) reads the log events in
//! order of their sequence number; the last one read is kept in
//! `cw_emf_cursor`, committed with the metrics it produced, so after a
//! restart no line is counted twice or skipped.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use stratus_store::StoreResult;
use stratus_store::rusqlite::{OptionalExtension, params};

use crate::CloudWatch;
use crate::ops::{DatumRow, datum};

/// The cursor of the log scan, and the invocation durations read from
/// REPORT lines.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS cw_emf_cursor (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS cw_lambda_durations (
    region        TEXT NOT NULL,
    function_name TEXT NOT NULL,
    version       TEXT NOT NULL,
    ts_ms         INTEGER NOT NULL,
    duration_ms   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS cw_lambda_durations_time ON cw_lambda_durations (region, ts_ms);
"#;

/// How long invocation durations are kept (ms): the 15 days CloudWatch
/// keeps one-minute data.
pub const DURATIONS_KEPT_MS: i64 = 15 * 24 * 3_600_000;

/// One invocation's duration from its REPORT line (`REPORT RequestId: ...
/// Duration: 12.34 ms ...`) in log group `/aws/lambda/<function>`, stream
/// `YYYY/MM/DD/[<version>]<id>`: `(function, version, duration ms)`.
pub(crate) fn report_duration<'a>(
    group: &'a str,
    stream: &'a str,
    message: &str,
) -> Option<(&'a str, &'a str, f64)> {
    let function = group.strip_prefix("/aws/lambda/")?;
    let rest = message.strip_prefix("REPORT RequestId: ")?;
    let after = rest.split("\tDuration: ").nth(1)?;
    let ms: f64 = after.split(" ms").next()?.trim().parse().ok()?;
    let open = stream.find('[')?;
    let close = open + stream[open..].find(']')?;
    Some((function, &stream[open + 1..close], ms))
}

/// Log events read per scan.
const BATCH: i64 = 1_000;
/// Most metrics in one directive, values in one metric (the specification's limits).
const MAX_METRICS: usize = 100;

/// The datums of one log line, or why it is not EMF (`None`: not an EMF
/// object at all).
pub(crate) fn extract(message: &str, now_ms: i64) -> Option<Result<Vec<DatumRow>, String>> {
    let text = message.trim();
    if !text.starts_with('{') || !text.contains("\"_aws\"") {
        return None;
    }
    let Ok(Value::Object(root)) = serde_json::from_str::<Value>(text) else {
        return None;
    };
    let aws = root.get("_aws")?.as_object()?;
    Some(directives(&root, aws, now_ms))
}

fn directives(
    root: &Map<String, Value>,
    aws: &Map<String, Value>,
    now_ms: i64,
) -> Result<Vec<DatumRow>, String> {
    let ts = aws
        .get("Timestamp")
        .and_then(Value::as_f64)
        .ok_or("_aws.Timestamp must be a number of ms since the epoch")?;
    let dirs = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .ok_or("_aws.CloudWatchMetrics must be a list")?;
    let mut out = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        let d = d
            .as_object()
            .ok_or(format!("CloudWatchMetrics[{i}] must be an object"))?;
        let ns = d
            .get("Namespace")
            .and_then(Value::as_str)
            .ok_or(format!("CloudWatchMetrics[{i}].Namespace must be a string"))?;
        if ns.starts_with("AWS/") {
            return Err(format!("namespace {ns} is reserved for AWS services"));
        }
        crate::input::check_namespace(ns, "Namespace").map_err(|e| e.message)?;
        let sets = d
            .get("Dimensions")
            .and_then(Value::as_array)
            .ok_or(format!(
                "CloudWatchMetrics[{i}].Dimensions must be a list of dimension sets"
            ))?;
        let metrics = d
            .get("Metrics")
            .and_then(Value::as_array)
            .ok_or(format!("CloudWatchMetrics[{i}].Metrics must be a list"))?;
        if metrics.len() > MAX_METRICS {
            return Err(format!(
                "CloudWatchMetrics[{i}] has more than {MAX_METRICS} metrics"
            ));
        }
        let mut dim_sets: Vec<Vec<Value>> = Vec::new();
        for set in sets {
            let names = set
                .as_array()
                .ok_or("a dimension set must be a list of names")?;
            let mut dims = Vec::new();
            for n in names {
                let n = n.as_str().ok_or("a dimension name must be a string")?;
                let v = root
                    .get(n)
                    .and_then(Value::as_str)
                    .ok_or(format!("dimension {n} has no string value at the root"))?;
                dims.push(json!({"Name": n, "Value": v}));
            }
            dim_sets.push(dims);
        }
        if dim_sets.is_empty() {
            dim_sets.push(Vec::new());
        }
        for m in metrics {
            let m = m
                .as_object()
                .ok_or("a metric definition must be an object")?;
            let name = m
                .get("Name")
                .and_then(Value::as_str)
                .ok_or("a metric needs a Name")?;
            let values: Vec<Value> = match root.get(name) {
                Some(Value::Number(n)) => vec![Value::Number(n.clone())],
                Some(Value::Array(a))
                    if !a.is_empty()
                        && a.len() <= MAX_METRICS
                        && a.iter().all(Value::is_number) =>
                {
                    a.clone()
                }
                _ => {
                    return Err(format!(
                        "metric {name} has no numeric value (or list of up to 100) at the root"
                    ));
                }
            };
            for dims in &dim_sets {
                let mut dat = json!({
                    "MetricName": name,
                    "Dimensions": dims,
                    "Timestamp": ts / 1000.0,
                    "Values": values,
                });
                if let Some(u) = m.get("Unit") {
                    dat["Unit"] = u.clone();
                }
                if let Some(r) = m.get("StorageResolution") {
                    dat["StorageResolution"] = r.clone();
                }
                out.push(datum(ns, &dat, "EMF", now_ms).map_err(|e| e.message)?);
            }
        }
    }
    Ok(out)
}

impl CloudWatch {
    /// Reads the next log events after the cursor, stores the metrics of
    /// their EMF lines and moves the cursor, in one transaction. Returns
    /// how many log events it read.
    ///
    /// Errors: the store fails.
    pub async fn scan_emf(&self) -> StoreResult<usize> {
        let after: i64 = self
            .store
            .read(|c| {
                c.query_row("SELECT seq FROM cw_emf_cursor WHERE id = 1", [], |r| {
                    r.get(0)
                })
                .optional()
            })?
            .unwrap_or(0);
        type Event = (i64, String, String, String, String, i64);
        let events: Vec<Event> = self.store.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT seq, region, log_group, log_stream, message, timestamp FROM log_events
                 WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = st.query_map(params![after, BATCH], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?;
            rows.collect()
        })?;
        let Some(last) = events.last().map(|e| e.0) else {
            return Ok(0);
        };
        let now = stratus_core::time::now_ms();
        let mut rows = Vec::new();
        let mut durations = Vec::new();
        for (seq, region, group, stream, message, ts) in &events {
            if let Some((function, version, ms)) = report_duration(group, stream, message) {
                durations.push((
                    region.clone(),
                    function.to_string(),
                    version.to_string(),
                    *ts,
                    ms,
                ));
                continue;
            }
            match extract(message, now) {
                None => {}
                Some(Ok(datums)) => rows.extend(datums.into_iter().map(|d| (region.clone(), d))),
                Some(Err(why)) => {
                    tracing::info!(log_group = %group, seq, "log line is not valid Embedded Metric Format: {why}");
                }
            }
        }
        let n = events.len();
        self.store
            .write(move |c| {
                let mut st = c.prepare_cached(
                    "INSERT INTO cw_datums (region, namespace, metric_name, dims, unit, ts_ms, count, sum, min, max, samples)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?;
                for (region, r) in &rows {
                    st.execute(params![
                        region, r.namespace, r.name, r.dims, r.unit, r.ts_ms, r.agg.count, r.agg.sum,
                        r.agg.min.unwrap_or(0.0), r.agg.max.unwrap_or(0.0), r.samples
                    ])?;
                }
                let mut st = c.prepare_cached(
                    "INSERT INTO cw_lambda_durations (region, function_name, version, ts_ms, duration_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for (region, function, version, ts, ms) in &durations {
                    st.execute(params![region, function, version, ts, ms])?;
                }
                if last / 10_000 != after / 10_000 {
                    // Now and then (every 10,000 log events): forget old durations.
                    c.prepare_cached("DELETE FROM cw_lambda_durations WHERE ts_ms < ?1")?
                        .execute(params![now - DURATIONS_KEPT_MS])?;
                }
                c.execute(
                    "INSERT INTO cw_emf_cursor (id, seq) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq",
                    params![last],
                )?;
                Ok(())
            })
            .await?;
        Ok(n)
    }

    /// Scans the log for EMF lines every `every` (and at once again while
    /// a scan finds a full batch).
    pub fn spawn_emf(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let cw = self.clone();
        tokio::spawn(async move {
            loop {
                match cw.scan_emf().await {
                    Ok(n) if n as i64 >= BATCH => continue,
                    Ok(_) => {}
                    Err(e) => tracing::error!("scanning the log for embedded metrics: {e}"),
                }
                tokio::time::sleep(every).await;
            }
        })
    }
}
