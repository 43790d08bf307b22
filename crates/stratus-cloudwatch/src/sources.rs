//! Where metric data comes from, as one list of points.
//!
//! - Custom metrics: `cw_datums`, written by PutMetricData (and by
//!   Embedded Metric Format log lines, see [`crate::emf`]).
//! - `AWS/Lambda`: the store's `lambda_metrics` (one row per minute per
//!   function, executed version and alias) and `lambda_async_metrics`.
//! - `AWS/States`: `sfn_metrics` (see [`crate::states`]).
//!
//! Lambda's dimension sets follow "Types of metrics for Lambda functions":
//! no dimension (every function of the region), `FunctionName`, and
//! `FunctionName` + `Resource` (`name:alias` or `name:version`). Lambda
//! counts each invocation as a value of 1 in Invocations and a value of 0
//! or 1 in Errors (so Errors' Average is the error rate), each throttled
//! request as 1 in Throttles; Duration's values are the invocations'
//! durations in ms (their minimum and percentiles come from the REPORT
//! lines, see [`duration_samples`]).

use std::collections::{BTreeMap, BTreeSet};

use stratus_store::rusqlite::{self, Connection, params};
use stratus_store::{MetricQuery, MetricRow, Store, StoreResult};

use crate::stats::Agg;

/// A metric: namespace, name and dimensions (sorted by name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MetricKey {
    /// `AWS/Lambda`, `AWS/States` or a custom namespace.
    pub namespace: String,
    /// The metric name, e.g. `Invocations`.
    pub name: String,
    /// `(name, value)` pairs, sorted by name.
    pub dims: Vec<(String, String)>,
}

/// Values of one metric at one time (ms since the epoch; a minute's start
/// for minute data), in one unit.
#[derive(Debug, Clone)]
pub struct Point {
    /// The metric.
    pub key: MetricKey,
    /// When, ms since the epoch.
    pub ts_ms: i64,
    /// A `StandardUnit` (`None` when the data named none).
    pub unit: String,
    /// The values.
    pub agg: Agg,
}

/// What to read: a region, optionally one namespace and metric name, and
/// times in `[since_ms, until_ms)`.
#[derive(Debug, Clone, Copy)]
pub struct Filter<'a> {
    /// The request's region.
    pub region: &'a str,
    /// Only this namespace, when given.
    pub namespace: Option<&'a str>,
    /// Only this metric name, when given.
    pub name: Option<&'a str>,
    /// From this time (ms since the epoch, inclusive).
    pub since_ms: i64,
    /// Until this time (ms since the epoch, exclusive).
    pub until_ms: i64,
    /// Exactly these dimensions (sorted by name), when given.
    pub dims: Option<&'a [(String, String)]>,
}

impl Filter<'_> {
    fn wants(&self, namespace: &str) -> bool {
        self.namespace.is_none_or(|n| n == namespace)
    }
}

/// The custom metric datums table.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS cw_datums (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    region      TEXT NOT NULL,
    namespace   TEXT NOT NULL,
    metric_name TEXT NOT NULL,
    dims        TEXT NOT NULL,
    unit        TEXT NOT NULL,
    ts_ms       INTEGER NOT NULL,
    count       REAL NOT NULL,
    sum         REAL NOT NULL,
    min         REAL NOT NULL,
    max         REAL NOT NULL,
    samples     TEXT
);
CREATE INDEX IF NOT EXISTS cw_datums_metric ON cw_datums (region, namespace, metric_name, ts_ms);
"#;

fn table_exists(c: &Connection, name: &str) -> rusqlite::Result<bool> {
    c.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
        params![name],
        |r| r.get(0),
    )
}

/// Every point matching `f`, from every source.
///
/// Errors: the store fails.
pub fn points(store: &Store, f: &Filter<'_>) -> StoreResult<Vec<Point>> {
    let mut out = collect(store, f, false)?;
    out.retain(|p| p.ts_ms >= f.since_ms && p.ts_ms < f.until_ms);
    Ok(out)
}

/// The metrics with data matching `f` (ListMetrics): each source's rows
/// summed per series in SQL, so the answer does not read every minute.
///
/// Errors: the store fails.
pub fn metric_keys(store: &Store, f: &Filter<'_>) -> StoreResult<BTreeSet<MetricKey>> {
    Ok(collect(store, f, true)?
        .into_iter()
        .map(|p| p.key)
        .collect())
}

/// Points of every source; `grouped`: one point per series over the whole
/// range (timestamp 0) instead of one per minute or datum.
fn collect(store: &Store, f: &Filter<'_>, grouped: bool) -> StoreResult<Vec<Point>> {
    let mut out = Vec::new();
    if f.namespace.is_none_or(|n| !n.starts_with("AWS/")) {
        custom_points(store, f, grouped, &mut out)?;
    }
    if f.wants("AWS/Lambda") {
        let rows = if grouped {
            lambda_series(store, f)?
        } else {
            store.read_metrics(&MetricQuery {
                region: Some(f.region),
                since_ms: Some(f.since_ms),
                until_ms: Some(f.until_ms),
                ..Default::default()
            })?
        };
        lambda_points(&rows, f, &mut out);
        if !grouped {
            duration_samples(store, f, &mut out)?;
        }
        async_points(store, f, grouped, &mut out)?;
    }
    if f.wants("AWS/States") {
        states_points(store, f, grouped, &mut out)?;
    }
    if let Some(n) = f.name {
        out.retain(|p| p.key.name == n);
    }
    Ok(out)
}

/// `lambda_metrics` summed per series over the range (minute 0).
fn lambda_series(store: &Store, f: &Filter<'_>) -> StoreResult<Vec<MetricRow>> {
    store.read(|c| {
        let mut st = c.prepare_cached(
            "SELECT function_name, dimension, qualifier, SUM(invocations), SUM(errors), SUM(throttles),
                    MAX(concurrent_executions), MAX(provisioned_concurrent_executions), MAX(provisioned_allocated),
                    SUM(provisioned_invocations), SUM(spillover_invocations), SUM(duration_count)
             FROM lambda_metrics WHERE region = ?1 AND minute >= ?2 AND minute < ?3
             GROUP BY function_name, dimension, qualifier",
        )?;
        let rows = st.query_map(params![f.region, f.since_ms, f.until_ms], |r| {
            let u = |i: usize| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
            Ok(MetricRow {
                region: f.region.to_string(),
                function_name: r.get(0)?,
                dimension: r.get(1)?,
                qualifier: r.get(2)?,
                invocations: u(3)?,
                errors: u(4)?,
                throttles: u(5)?,
                concurrent_executions: u(6)?,
                provisioned_concurrent_executions: u(7)?,
                provisioned_allocated: u(8)?,
                provisioned_invocations: u(9)?,
                spillover_invocations: u(10)?,
                duration_count: u(11)?,
                ..Default::default()
            })
        })?;
        rows.collect()
    })
}

fn custom_points(
    store: &Store,
    f: &Filter<'_>,
    grouped: bool,
    out: &mut Vec<Point>,
) -> StoreResult<()> {
    // `cw_datums.dims` holds the sorted dimensions as json, as PutMetricData writes them.
    let dims_text = f.dims.map(|d| serde_json::to_string(d).unwrap_or_default());
    store.read(|c| {
        let mut st = c.prepare_cached(if grouped {
            "SELECT namespace, metric_name, dims, unit, 0, SUM(count), SUM(sum), MIN(min), MAX(max), NULL FROM cw_datums
             WHERE region = ?1 AND (?2 IS NULL OR namespace = ?2) AND (?3 IS NULL OR metric_name = ?3)
               AND ts_ms >= ?4 AND ts_ms < ?5 AND (?6 IS NULL OR dims = ?6)
             GROUP BY namespace, metric_name, dims, unit"
        } else {
            "SELECT namespace, metric_name, dims, unit, ts_ms, count, sum, min, max, samples FROM cw_datums
             WHERE region = ?1 AND (?2 IS NULL OR namespace = ?2) AND (?3 IS NULL OR metric_name = ?3)
               AND ts_ms >= ?4 AND ts_ms < ?5 AND (?6 IS NULL OR dims = ?6)"
        })?;
        let rows = st.query_map(
            params![f.region, f.namespace, f.name, f.since_ms, f.until_ms, dims_text],
            |r| {
                let dims: String = r.get(2)?;
                let samples: Option<String> = r.get(9)?;
                Ok(Point {
                    key: MetricKey {
                        namespace: r.get(0)?,
                        name: r.get(1)?,
                        dims: serde_json::from_str(&dims).unwrap_or_default(),
                    },
                    unit: r.get(3)?,
                    ts_ms: r.get(4)?,
                    agg: Agg {
                        count: r.get(5)?,
                        sum: r.get(6)?,
                        min: Some(r.get(7)?),
                        max: Some(r.get(8)?),
                        samples: samples.and_then(|s| serde_json::from_str(&s).ok()),
                    },
                })
            },
        )?;
        for p in rows {
            out.push(p?);
        }
        Ok(())
    })
}

fn key(namespace: &str, name: &str, dims: &[(&str, &str)]) -> MetricKey {
    let mut dims: Vec<(String, String)> = dims
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    dims.sort();
    MetricKey {
        namespace: namespace.to_string(),
        name: name.to_string(),
        dims,
    }
}

/// The metrics of one `lambda_metrics` row (one minute of one series).
fn row_metrics(r: &MetricRow) -> Vec<(&'static str, &'static str, Agg)> {
    let mut v = Vec::new();
    let n = r.invocations as f64;
    if r.invocations > 0 {
        v.push(("Invocations", "Count", Agg::repeated(1.0, n)));
        let e = r.errors.min(r.invocations) as f64;
        let mut samples = Vec::new();
        if n - e > 0.0 {
            samples.push((0.0, n - e));
        }
        if e > 0.0 {
            samples.push((1.0, e));
        }
        v.push((
            "Errors",
            "Count",
            Agg {
                count: n,
                sum: e,
                min: Some(if e == n { 1.0 } else { 0.0 }),
                max: Some(if e > 0.0 { 1.0 } else { 0.0 }),
                samples: Some(samples),
            },
        ));
    }
    if r.throttles > 0 {
        v.push(("Throttles", "Count", Agg::repeated(1.0, r.throttles as f64)));
    }
    if r.duration_count > 0 {
        // The minimum and the individual durations are not kept; with one
        // invocation in the minute they are its duration.
        let single = r.duration_count == 1;
        v.push((
            "Duration",
            "Milliseconds",
            Agg {
                count: r.duration_count as f64,
                sum: r.duration_sum_ms,
                min: single.then_some(r.duration_sum_ms),
                max: Some(r.duration_max_ms),
                samples: single.then(|| vec![(r.duration_sum_ms, 1.0)]),
            },
        ));
    }
    if r.concurrent_executions > 0 {
        v.push((
            "ConcurrentExecutions",
            "Count",
            Agg::repeated(r.concurrent_executions as f64, 1.0),
        ));
    }
    if r.provisioned_allocated > 0 || r.provisioned_concurrent_executions > 0 {
        v.push((
            "ProvisionedConcurrentExecutions",
            "Count",
            Agg::repeated(r.provisioned_concurrent_executions as f64, 1.0),
        ));
    }
    if r.provisioned_allocated > 0 {
        v.push((
            "ProvisionedConcurrencyUtilization",
            "None",
            Agg::repeated(r.provisioned_utilization(), 1.0),
        ));
    }
    if r.provisioned_invocations > 0 {
        v.push((
            "ProvisionedConcurrencyInvocations",
            "Count",
            Agg::repeated(1.0, r.provisioned_invocations as f64),
        ));
    }
    if r.spillover_invocations > 0 {
        v.push((
            "ProvisionedConcurrencySpilloverInvocations",
            "Count",
            Agg::repeated(1.0, r.spillover_invocations as f64),
        ));
    }
    v
}

/// Metrics of the no-dimension (whole region) set: those whose values add
/// up exactly across functions.
const REGION_WIDE: &[&str] = &["Invocations", "Errors", "Throttles", "Duration"];

fn lambda_points(rows: &[MetricRow], f: &Filter<'_>, out: &mut Vec<Point>) {
    let mut region_wide: BTreeMap<(&str, i64), (&str, Agg)> = BTreeMap::new();
    for r in rows {
        let resource;
        let dims: Vec<(&str, &str)> = match r.dimension.as_str() {
            "function" => vec![("FunctionName", r.function_name.as_str())],
            "alias" | "version" => {
                if r.dimension == "version" && !r.qualifier.bytes().all(|b| b.is_ascii_digit()) {
                    // `$LATEST` runs are the unqualified function's.
                    continue;
                }
                resource = format!("{}:{}", r.function_name, r.qualifier);
                vec![
                    ("FunctionName", r.function_name.as_str()),
                    ("Resource", resource.as_str()),
                ]
            }
            _ => continue,
        };
        for (name, unit, agg) in row_metrics(r) {
            if r.dimension == "function" && REGION_WIDE.contains(&name) {
                region_wide
                    .entry((name, r.minute))
                    .and_modify(|(_, a)| a.merge(&agg))
                    .or_insert((unit, agg.clone()));
            }
            if f.name.is_some_and(|n| n != name) {
                continue;
            }
            out.push(Point {
                key: key("AWS/Lambda", name, &dims),
                ts_ms: r.minute,
                unit: unit.to_string(),
                agg,
            });
        }
    }
    for ((name, minute), (unit, agg)) in region_wide {
        out.push(Point {
            key: key("AWS/Lambda", name, &[]),
            ts_ms: minute,
            unit: unit.to_string(),
            agg,
        });
    }
}

/// Gives Duration points their Minimum and values from the REPORT lines
/// (`cw_lambda_durations`, see [`crate::emf`]) when the lines of the minute
/// are exactly the invocations the point counts (the same number); a point
/// of an alias, or whose lines are not all there, keeps what it has.
fn duration_samples(store: &Store, f: &Filter<'_>, out: &mut [Point]) -> StoreResult<()> {
    if !out.iter().any(|p| {
        p.key.namespace == "AWS/Lambda" && p.key.name == "Duration" && p.agg.samples.is_none()
    }) {
        return Ok(());
    }
    // (function or "" for every function, version or "" for every version, minute) -> durations.
    let mut by: BTreeMap<(String, String, i64), Vec<f64>> = BTreeMap::new();
    store.read(|c| {
        if !table_exists(c, "cw_lambda_durations")? {
            return Ok(());
        }
        let mut st = c.prepare_cached(
            "SELECT function_name, version, ts_ms, duration_ms FROM cw_lambda_durations
             WHERE region = ?1 AND ts_ms >= ?2 AND ts_ms < ?3",
        )?;
        let rows = st.query_map(params![f.region, f.since_ms, f.until_ms], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, f64>(3)?,
            ))
        })?;
        for row in rows {
            let (function, version, ts, ms) = row?;
            let minute = ts - ts.rem_euclid(60_000);
            by.entry((function.clone(), String::new(), minute))
                .or_default()
                .push(ms);
            by.entry((function, version, minute)).or_default().push(ms);
            by.entry((String::new(), String::new(), minute))
                .or_default()
                .push(ms);
        }
        Ok(())
    })?;
    for p in out.iter_mut() {
        if p.key.namespace != "AWS/Lambda" || p.key.name != "Duration" || p.agg.samples.is_some() {
            continue;
        }
        let dim = |n: &str| {
            p.key
                .dims
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        let series = match (dim("FunctionName"), dim("Resource")) {
            (None, None) if p.key.dims.is_empty() => (String::new(), String::new()),
            (Some(f), None) => (f.to_string(), String::new()),
            (Some(f), Some(r)) => match r.strip_prefix(f).and_then(|q| q.strip_prefix(':')) {
                Some(v) if v.bytes().all(|b| b.is_ascii_digit()) => (f.to_string(), v.to_string()),
                _ => continue,
            },
            _ => continue,
        };
        let Some(v) = by.get(&(series.0, series.1, p.ts_ms)) else {
            continue;
        };
        if v.len() as f64 == p.agg.count {
            p.agg.min = v.iter().copied().reduce(f64::min);
            p.agg.samples = Some(v.iter().map(|d| (*d, 1.0)).collect());
        }
    }
    Ok(())
}

fn async_points(
    store: &Store,
    f: &Filter<'_>,
    grouped: bool,
    out: &mut Vec<Point>,
) -> StoreResult<()> {
    store.read(|c| {
        if !table_exists(c, "lambda_async_metrics")? {
            return Ok(());
        }
        let mut st = c.prepare_cached(if grouped {
            "SELECT function_name, 0, SUM(events_received), SUM(events_dropped), SUM(destination_delivery_failures),
                    SUM(dead_letter_errors), SUM(event_age_sum_ms), MAX(event_age_max_ms), SUM(event_age_count)
             FROM lambda_async_metrics WHERE region = ?1 AND minute >= ?2 AND minute < ?3 GROUP BY function_name"
        } else {
            "SELECT function_name, minute, events_received, events_dropped, destination_delivery_failures,
                    dead_letter_errors, event_age_sum_ms, event_age_max_ms, event_age_count
             FROM lambda_async_metrics WHERE region = ?1 AND minute >= ?2 AND minute < ?3"
        })?;
        let rows = st.query_map(
            params![f.region, f.since_ms, f.until_ms],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    [r.get::<_, i64>(2)?, r.get(3)?, r.get(4)?, r.get(5)?],
                    (r.get::<_, i64>(6)?, r.get::<_, i64>(7)?, r.get::<_, i64>(8)?),
                ))
            },
        )?;
        for row in rows {
            let (function, minute, counts, (age_sum, age_max, age_count)) = row?;
            let dims = [("FunctionName", function.as_str())];
            let names = [
                "AsyncEventsReceived",
                "AsyncEventsDropped",
                "DestinationDeliveryFailures",
                "DeadLetterErrors",
            ];
            for (name, n) in names.into_iter().zip(counts) {
                if n > 0 {
                    out.push(Point {
                        key: key("AWS/Lambda", name, &dims),
                        ts_ms: minute,
                        unit: "Count".into(),
                        agg: Agg::repeated(1.0, n as f64),
                    });
                }
            }
            if age_count > 0 {
                out.push(Point {
                    key: key("AWS/Lambda", "AsyncEventAge", &dims),
                    ts_ms: minute,
                    unit: "Milliseconds".into(),
                    agg: Agg {
                        count: age_count as f64,
                        sum: age_sum as f64,
                        min: (age_count == 1).then_some(age_sum as f64),
                        max: Some(age_max as f64),
                        samples: (age_count == 1).then(|| vec![(age_sum as f64, 1.0)]),
                    },
                });
            }
        }
        Ok(())
    })
}

fn states_points(
    store: &Store,
    f: &Filter<'_>,
    grouped: bool,
    out: &mut Vec<Point>,
) -> StoreResult<()> {
    store.read(|c| {
        if !table_exists(c, "sfn_metrics")? {
            return Ok(());
        }
        let mut st = c.prepare_cached(if grouped {
            "SELECT state_machine_arn, 0, SUM(started), SUM(succeeded), SUM(failed), SUM(aborted), SUM(timed_out),
                    SUM(throttled), SUM(time_count), SUM(time_sum_ms), MIN(time_min_ms), MAX(time_max_ms)
             FROM sfn_metrics WHERE region = ?1 AND minute >= ?2 AND minute < ?3 GROUP BY state_machine_arn"
        } else {
            "SELECT state_machine_arn, minute, started, succeeded, failed, aborted, timed_out, throttled,
                    time_count, time_sum_ms, time_min_ms, time_max_ms
             FROM sfn_metrics WHERE region = ?1 AND minute >= ?2 AND minute < ?3"
        })?;
        let rows = st.query_map(
            params![f.region, f.since_ms, f.until_ms],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    [r.get::<_, i64>(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?],
                    (
                        r.get::<_, i64>(8)?,
                        r.get::<_, f64>(9)?,
                        r.get::<_, Option<f64>>(10)?,
                        r.get::<_, Option<f64>>(11)?,
                    ),
                ))
            },
        )?;
        let names = [
            "ExecutionsStarted",
            "ExecutionsSucceeded",
            "ExecutionsFailed",
            "ExecutionsAborted",
            "ExecutionsTimedOut",
            "ExecutionThrottled",
        ];
        for row in rows {
            let (sm, minute, counts, (t_count, t_sum, t_min, t_max)) = row?;
            let dims = [("StateMachineArn", sm.as_str())];
            for (name, n) in names.into_iter().zip(counts) {
                if n > 0 {
                    out.push(Point {
                        key: key("AWS/States", name, &dims),
                        ts_ms: minute,
                        unit: "Count".into(),
                        agg: Agg::repeated(1.0, n as f64),
                    });
                }
            }
            if t_count > 0 {
                out.push(Point {
                    key: key("AWS/States", "ExecutionTime", &dims),
                    ts_ms: minute,
                    unit: "Milliseconds".into(),
                    agg: Agg {
                        count: t_count as f64,
                        sum: t_sum,
                        min: t_min,
                        max: t_max,
                        samples: (t_count == 1).then(|| vec![(t_sum, 1.0)]),
                    },
                });
            }
        }
        Ok(())
    })
}
