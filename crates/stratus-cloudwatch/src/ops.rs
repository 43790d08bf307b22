//! The four operations. Rules and error codes follow the CloudWatch API
//! Reference (GetMetricStatistics, GetMetricData, ListMetrics,
//! PutMetricData) and botocore's `cloudwatch/2010-08-01` model.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};
use stratus_core::AwsResult;

use crate::CloudWatch;
use crate::errors::{
    invalid_combination, invalid_token, invalid_value, missing, store_err, validation,
};
use crate::input::{
    Obj, as_obj, check_metric_name, check_namespace, check_unit, dimensions, list, opt_bool,
    opt_int, opt_num, opt_obj, opt_str, opt_time, req_str, req_time,
};
use crate::sources::{Filter, MetricKey, Point, metric_keys, points};
use crate::stats::{Agg, Stat};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// Most datapoints one GetMetricStatistics call returns.
pub const MAX_STATISTICS_DATAPOINTS: i64 = 1_440;
/// GetMetricData's default (and largest) MaxDatapoints.
pub const MAX_DATA_DATAPOINTS: i64 = 100_800;
/// Most queries in one GetMetricData call.
pub const MAX_QUERIES: usize = 500;
/// Most datums in one PutMetricData call.
pub const MAX_DATUMS: usize = 1_000;
/// Most values in one datum's `Values` array.
pub const MAX_VALUES: usize = 150;
/// ListMetrics page size.
pub const LIST_PAGE: usize = 500;
/// How far back PutMetricData accepts a timestamp (two weeks) and ahead
/// (two hours), ms.
pub const PUT_PAST_MS: i64 = 14 * DAY;
pub const PUT_FUTURE_MS: i64 = 2 * HOUR;

/// Checks a period (seconds): 1, 5, 10, 20, 30, or a multiple of 60
/// (MetricStat / GetMetricStatistics `Period`).
fn check_period(p: i64, path: &str) -> AwsResult<()> {
    if p >= 1 && (matches!(p, 1 | 5 | 10 | 20 | 30) || p % 60 == 0) {
        Ok(())
    } else {
        Err(invalid_value(format!(
            "The parameter {path} must be 1, 5, 10, 20, 30 or a multiple of 60 seconds (it is {p})."
        )))
    }
}

/// Where the first period starts and whether the period suits the age of
/// the data ("If the StartTime parameter specifies a time stamp that is
/// greater than 3 hours ago, you must specify the period as follows or no
/// data points in that time range is returned"): start times up to 15
/// days old are rounded down to the minute (to the period below a minute),
/// up to 63 days to 5 minutes, older to the hour.
fn align(start_ms: i64, period_s: i64, now_ms: i64) -> (i64, bool) {
    let age = now_ms - start_ms;
    let (round, multiple) = if age > 63 * DAY {
        (HOUR, 3600)
    } else if age > 15 * DAY {
        (5 * MINUTE, 300)
    } else if age > 3 * HOUR {
        (MINUTE, 60)
    } else if period_s < 60 {
        (period_s * 1000, 1)
    } else {
        (MINUTE, 1)
    };
    (
        start_ms - start_ms.rem_euclid(round),
        period_s % multiple == 0,
    )
}

/// Seconds since the epoch, as the json protocol sends timestamps.
fn epoch(ms: i64) -> Value {
    if ms % 1000 == 0 {
        Value::from(ms / 1000)
    } else {
        Value::from(ms as f64 / 1000.0)
    }
}

/// A metric's datapoints over `[from, until)` by period: `(period start,
/// unit) -> values`.
fn buckets(
    pts: Vec<Point>,
    key: &MetricKey,
    unit: Option<&str>,
    from: i64,
    period_ms: i64,
) -> BTreeMap<(i64, String), Agg> {
    let mut out: BTreeMap<(i64, String), Agg> = BTreeMap::new();
    for p in pts {
        if p.key != *key || unit.is_some_and(|u| u != p.unit) {
            continue;
        }
        let b = from + (p.ts_ms - from).div_euclid(period_ms) * period_ms;
        match out.get_mut(&(b, p.unit.clone())) {
            Some(a) => a.merge(&p.agg),
            None => {
                out.insert((b, p.unit), p.agg);
            }
        }
    }
    out
}

fn metric_key(o: &Obj, path: &str) -> AwsResult<MetricKey> {
    let ns = req_str(o, "Namespace", &format!("{path}Namespace"))?;
    check_namespace(ns, &format!("{path}Namespace"))?;
    let name = req_str(o, "MetricName", &format!("{path}MetricName"))?;
    check_metric_name(name, &format!("{path}MetricName"))?;
    Ok(MetricKey {
        namespace: ns.to_string(),
        name: name.to_string(),
        dims: dimensions(o, "Dimensions", &format!("{path}Dimensions"))?,
    })
}

fn opt_unit<'a>(o: &'a Obj, path: &str) -> AwsResult<Option<&'a str>> {
    let u = opt_str(o, "Unit", path)?;
    if let Some(u) = u {
        check_unit(u, path)?;
    }
    Ok(u)
}

fn strings<'a>(o: &'a Obj, key: &str) -> AwsResult<Vec<&'a str>> {
    list(o, key, key)?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str().ok_or_else(|| {
                invalid_value(format!(
                    "The parameter {key}.member.{} must be a string.",
                    i + 1
                ))
            })
        })
        .collect()
}

fn dims_json(dims: &[(String, String)]) -> Value {
    Value::Array(
        dims.iter()
            .map(|(n, v)| json!({"Name": n, "Value": v}))
            .collect(),
    )
}

impl CloudWatch {
    /// GetMetricStatistics: the statistics of one metric (exact dimensions)
    /// per `Period` over `[StartTime, EndTime)`.
    ///
    /// Errors: `MissingParameter`; `InvalidParameterValue` (bad period,
    /// statistic, unit, namespace, dimensions, StartTime not before
    /// EndTime); `InvalidParameterCombination` (neither or both of
    /// Statistics and ExtendedStatistics; more than 1,440 datapoints).
    pub(crate) fn get_metric_statistics(&self, region: &str, o: &Obj) -> AwsResult<Value> {
        let key = metric_key(o, "")?;
        let start = req_time(o, "StartTime", "StartTime")?;
        let end = req_time(o, "EndTime", "EndTime")?;
        let period = opt_int(o, "Period", "Period")?.ok_or_else(|| missing("Period"))?;
        check_period(period, "Period")?;
        let stats = strings(o, "Statistics")?;
        let ext = strings(o, "ExtendedStatistics")?;
        let unit = opt_unit(o, "Unit")?;
        if stats.len() > 5 {
            return Err(invalid_value(
                "The collection Statistics must not have more than 5 members.",
            ));
        }
        if ext.len() > 10 {
            return Err(invalid_value(
                "The collection ExtendedStatistics must not have more than 10 members.",
            ));
        }
        let mut basic = Vec::new();
        for (i, s) in stats.iter().enumerate() {
            basic.push(Stat::basic(s).ok_or_else(|| {
                invalid_value(format!(
                    "The value {s} for parameter Statistics.member.{} is not one of SampleCount, Average, Sum, Minimum, Maximum.",
                    i + 1
                ))
            })?);
        }
        let mut pcts = Vec::new();
        for (i, s) in ext.iter().enumerate() {
            pcts.push((
                *s,
                Stat::percentile(s).ok_or_else(|| {
                    invalid_value(format!(
                        "The value {s} for parameter ExtendedStatistics.member.{} is not a percentile (p0.0 to p100, at most two decimals).",
                        i + 1
                    ))
                })?,
            ));
        }
        match (basic.is_empty(), pcts.is_empty()) {
            (true, true) => {
                return Err(invalid_combination(
                    "Must specify either Statistics or ExtendedStatistics.",
                ));
            }
            (false, false) => {
                return Err(invalid_combination(
                    "The parameters Statistics and ExtendedStatistics are mutually exclusive; specify one of them.",
                ));
            }
            _ => {}
        }
        if start >= end {
            return Err(invalid_value(
                "The parameter StartTime must be less than the parameter EndTime.",
            ));
        }
        let now = stratus_core::time::now_ms();
        let (from, period_fits) = align(start, period, now);
        let period_ms = period * 1000;
        let n = (end - from + period_ms - 1) / period_ms;
        if n > MAX_STATISTICS_DATAPOINTS {
            return Err(invalid_combination(format!(
                "You have requested up to {n} datapoints, which exceeds the limit of {MAX_STATISTICS_DATAPOINTS}. \
                 You may reduce the datapoints requested by increasing Period, or decreasing the time range."
            )));
        }
        let mut datapoints = Vec::new();
        if period_fits {
            let pts = points(
                &self.store,
                &Filter {
                    region,
                    namespace: Some(&key.namespace),
                    name: Some(&key.name),
                    since_ms: from,
                    until_ms: end,
                    dims: Some(&key.dims),
                },
            )
            .map_err(store_err)?;
            for ((ts, unit), agg) in buckets(pts, &key, unit, from, period_ms) {
                let mut d = Map::new();
                d.insert("Timestamp".into(), epoch(ts));
                for s in &basic {
                    let name = match s {
                        Stat::SampleCount => "SampleCount",
                        Stat::Average => "Average",
                        Stat::Sum => "Sum",
                        Stat::Minimum => "Minimum",
                        Stat::Maximum => "Maximum",
                        Stat::Percentile(_) => continue,
                    };
                    if let Some(v) = agg.stat(*s) {
                        d.insert(name.into(), Value::from(v));
                    }
                }
                if !pcts.is_empty() {
                    let mut m = Map::new();
                    for (name, s) in &pcts {
                        if let Some(v) = agg.stat(*s) {
                            m.insert(name.to_string(), Value::from(v));
                        }
                    }
                    d.insert("ExtendedStatistics".into(), Value::Object(m));
                }
                d.insert("Unit".into(), Value::from(unit));
                datapoints.push(Value::Object(d));
            }
        }
        Ok(json!({"Label": key.name, "Datapoints": datapoints}))
    }

    /// GetMetricData: one series of values per MetricStat query, paged by
    /// MaxDatapoints over all queries.
    ///
    /// Errors: `ValidationError` (no or more than 500 queries, bad or
    /// duplicate Id, neither or both of MetricStat and Expression, a metric
    /// math Expression, bad period or stat, StartTime not before EndTime,
    /// bad ScanBy or MaxDatapoints); `InvalidNextToken`.
    pub(crate) fn get_metric_data(&self, region: &str, o: &Obj) -> AwsResult<Value> {
        let qs = list(o, "MetricDataQueries", "MetricDataQueries")?;
        if qs.is_empty() {
            return Err(missing("MetricDataQueries"));
        }
        if qs.len() > MAX_QUERIES {
            return Err(validation(format!(
                "The collection MetricDataQueries must not have more than {MAX_QUERIES} members (it has {}).",
                qs.len()
            )));
        }
        let start = req_time(o, "StartTime", "StartTime")?;
        let end = req_time(o, "EndTime", "EndTime")?;
        if start >= end {
            return Err(validation(
                "The parameter StartTime must be less than the parameter EndTime.",
            ));
        }
        let descending = match opt_str(o, "ScanBy", "ScanBy")? {
            None | Some("TimestampDescending") => true,
            Some("TimestampAscending") => false,
            Some(s) => {
                return Err(validation(format!(
                    "The value {s} for parameter ScanBy must be TimestampDescending or TimestampAscending."
                )));
            }
        };
        let max = opt_int(o, "MaxDatapoints", "MaxDatapoints")?.unwrap_or(MAX_DATA_DATAPOINTS);
        if max < 1 {
            return Err(validation(
                "The parameter MaxDatapoints must be at least 1.",
            ));
        }
        let offset = match opt_str(o, "NextToken", "NextToken")? {
            None => 0usize,
            Some(t) => t
                .strip_prefix("gmd-")
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| invalid_token(t))?,
        };
        struct Q {
            id: String,
            label: String,
            ret: bool,
            values: Vec<(i64, f64)>,
        }
        let mut ids = BTreeSet::new();
        let mut parsed = Vec::new();
        let now = stratus_core::time::now_ms();
        for (i, q) in qs.iter().enumerate() {
            let p = format!("MetricDataQueries.member.{}", i + 1);
            let q = as_obj(q, &p)?;
            let id = req_str(q, "Id", &format!("{p}.Id"))?;
            let id_ok = id.len() <= 255
                && id.starts_with(|c: char| c.is_ascii_lowercase())
                && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !id_ok {
                return Err(validation(format!(
                    "The value {id} for parameter {p}.Id is invalid: an Id starts with a lowercase letter and has only letters, digits and underscores."
                )));
            }
            if !ids.insert(id.to_string()) {
                return Err(validation(format!(
                    "The value {id} for parameter {p}.Id is used by more than one query."
                )));
            }
            let ret = opt_bool(q, "ReturnData", &format!("{p}.ReturnData"))?.unwrap_or(true);
            let label = opt_str(q, "Label", &format!("{p}.Label"))?;
            let stat = opt_obj(q, "MetricStat", &format!("{p}.MetricStat"))?;
            let expr = opt_str(q, "Expression", &format!("{p}.Expression"))?;
            let ms = match (stat, expr) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(validation(format!(
                        "Exactly one of {p}.MetricStat and {p}.Expression must be specified."
                    )));
                }
                (None, Some(e)) => {
                    return Err(validation(format!(
                        "The expression '{e}' of {p} is metric math, which stratus does not evaluate; query metrics with MetricStat."
                    )));
                }
                (Some(ms), None) => ms,
            };
            let metric = opt_obj(ms, "Metric", &format!("{p}.MetricStat.Metric"))?
                .ok_or_else(|| missing(&format!("{p}.MetricStat.Metric")))?;
            let key = metric_key(metric, &format!("{p}.MetricStat.Metric."))?;
            let period = opt_int(ms, "Period", &format!("{p}.MetricStat.Period"))?
                .ok_or_else(|| missing(&format!("{p}.MetricStat.Period")))?;
            check_period(period, &format!("{p}.MetricStat.Period"))?;
            let stat_name = req_str(ms, "Stat", &format!("{p}.MetricStat.Stat"))?;
            let stat = Stat::parse(stat_name, &format!("{p}.MetricStat.Stat"))?;
            let unit = opt_unit(ms, &format!("{p}.MetricStat.Unit"))?;
            let (from, fits) = align(start, period, now);
            let mut values = Vec::new();
            if fits && ret {
                let pts = points(
                    &self.store,
                    &Filter {
                        region,
                        namespace: Some(&key.namespace),
                        name: Some(&key.name),
                        since_ms: from,
                        until_ms: end,
                        dims: Some(&key.dims),
                    },
                )
                .map_err(store_err)?;
                // Several units in one period: one value per period, the
                // units' values merged (a GetMetricData series has no unit).
                let mut per: BTreeMap<i64, Agg> = BTreeMap::new();
                for ((ts, _), a) in buckets(pts, &key, unit, from, period * 1000) {
                    match per.get_mut(&ts) {
                        Some(x) => x.merge(&a),
                        None => {
                            per.insert(ts, a);
                        }
                    }
                }
                values = per
                    .into_iter()
                    .filter_map(|(ts, a)| a.stat(stat).map(|v| (ts, v)))
                    .collect();
                if descending {
                    values.reverse();
                }
            }
            parsed.push(Q {
                id: id.to_string(),
                label: label.unwrap_or(&key.name).to_string(),
                ret,
                values,
            });
        }
        let total: usize = parsed
            .iter()
            .filter(|q| q.ret)
            .map(|q| q.values.len())
            .sum();
        if offset > total {
            return Err(invalid_token(&format!("gmd-{offset}")));
        }
        let page_end = offset.saturating_add(max as usize).min(total);
        let mut results = Vec::new();
        let mut seen = 0usize;
        for q in parsed.into_iter().filter(|q| q.ret) {
            let (lo, hi) = (seen, seen + q.values.len());
            seen = hi;
            let from = offset.clamp(lo, hi) - lo;
            let to = page_end.clamp(lo, hi) - lo;
            let slice = &q.values[from..to];
            let status = if to < q.values.len() {
                "PartialData"
            } else {
                "Complete"
            };
            results.push(json!({
                "Id": q.id,
                "Label": q.label,
                "Timestamps": slice.iter().map(|(t, _)| epoch(*t)).collect::<Vec<_>>(),
                "Values": slice.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
                "StatusCode": status,
            }));
        }
        let mut out = json!({"MetricDataResults": results, "Messages": []});
        if page_end < total {
            out["NextToken"] = Value::from(format!("gmd-{page_end}"));
        }
        Ok(out)
    }

    /// ListMetrics: the metrics with data in the last two weeks (or three
    /// hours with `RecentlyActive=PT3H`), filtered by namespace, name and
    /// dimensions (a filter without Value matches any value), 500 a page.
    ///
    /// Errors: `InvalidParameterValue` (bad namespace, more than 10
    /// dimension filters, bad RecentlyActive, bad NextToken).
    pub(crate) fn list_metrics(&self, region: &str, o: &Obj) -> AwsResult<Value> {
        let ns = opt_str(o, "Namespace", "Namespace")?;
        if let Some(ns) = ns {
            check_namespace(ns, "Namespace")?;
        }
        let name = opt_str(o, "MetricName", "MetricName")?;
        let filters = list(o, "Dimensions", "Dimensions")?;
        if filters.len() > 10 {
            return Err(invalid_value(format!(
                "The collection Dimensions must not have more than 10 members (it has {}).",
                filters.len()
            )));
        }
        let mut wanted = Vec::new();
        for (i, f) in filters.iter().enumerate() {
            let p = format!("Dimensions.member.{}", i + 1);
            let f = as_obj(f, &p)?;
            let n = req_str(f, "Name", &format!("{p}.Name"))?;
            let v = opt_str(f, "Value", &format!("{p}.Value"))?;
            wanted.push((n.to_string(), v.map(str::to_string)));
        }
        let now = stratus_core::time::now_ms();
        let since = match opt_str(o, "RecentlyActive", "RecentlyActive")? {
            None => now - 14 * DAY,
            Some("PT3H") => now - 3 * HOUR,
            Some(s) => {
                return Err(invalid_value(format!(
                    "The value {s} for parameter RecentlyActive is invalid; the only value is PT3H."
                )));
            }
        };
        let offset = match opt_str(o, "NextToken", "NextToken")? {
            None => 0,
            Some(t) => t
                .strip_prefix("lm-")
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| invalid_token(t))?,
        };
        let all = metric_keys(
            &self.store,
            &Filter {
                region,
                namespace: ns,
                name,
                since_ms: since,
                until_ms: now + PUT_FUTURE_MS + MINUTE,
                dims: None,
            },
        )
        .map_err(store_err)?;
        let keys: Vec<MetricKey> = all
            .into_iter()
            .filter(|k| {
                wanted.iter().all(|(n, v)| {
                    k.dims
                        .iter()
                        .any(|(dn, dv)| dn == n && v.as_ref().is_none_or(|v| v == dv))
                })
            })
            .collect();
        if offset > keys.len() {
            return Err(invalid_token(&format!("lm-{offset}")));
        }
        let page: Vec<Value> = keys
            .iter()
            .skip(offset)
            .take(LIST_PAGE)
            .map(|k| json!({"Namespace": k.namespace, "MetricName": k.name, "Dimensions": dims_json(&k.dims)}))
            .collect();
        let mut out = json!({ "Metrics": page });
        if offset + LIST_PAGE < keys.len() {
            out["NextToken"] = Value::from(format!("lm-{}", offset + LIST_PAGE));
        }
        Ok(out)
    }

    /// PutMetricData: stores up to 1,000 datums of a custom namespace, all
    /// or none.
    ///
    /// Errors: `MissingParameter` (Namespace, MetricData, a datum's
    /// MetricName); `InvalidParameterValue` (namespace starting with `AWS/`,
    /// bad names, units, dimensions, values out of range, more than 150
    /// Values, Values and Counts of different sizes, timestamps more than
    /// two weeks old or two hours ahead, StorageResolution not 1 or 60, a
    /// StatisticSet that does not add up); `InvalidParameterCombination`
    /// (Value with StatisticValues or Values, or none of them).
    pub(crate) async fn put_metric_data(&self, region: &str, o: &Obj) -> AwsResult<Value> {
        let ns = req_str(o, "Namespace", "Namespace")?;
        check_namespace(ns, "Namespace")?;
        if ns.starts_with("AWS/") {
            return Err(invalid_value(format!(
                "The value {ns} for parameter Namespace is invalid: namespaces starting with AWS/ are reserved for AWS services."
            )));
        }
        let mut datums: Vec<(&Value, String)> = list(o, "MetricData", "MetricData")?
            .iter()
            .enumerate()
            .map(|(i, d)| (d, format!("MetricData.member.{}", i + 1)))
            .collect();
        for (i, e) in list(o, "EntityMetricData", "EntityMetricData")?
            .iter()
            .enumerate()
        {
            let p = format!("EntityMetricData.member.{}", i + 1);
            let e = as_obj(e, &p)?;
            for (j, d) in list(e, "MetricData", &format!("{p}.MetricData"))?
                .iter()
                .enumerate()
            {
                datums.push((d, format!("{p}.MetricData.member.{}", j + 1)));
            }
        }
        if datums.is_empty() {
            return Err(missing("MetricData"));
        }
        if datums.len() > MAX_DATUMS {
            return Err(invalid_value(format!(
                "The collection MetricData must not have more than {MAX_DATUMS} members (it has {}).",
                datums.len()
            )));
        }
        let now = stratus_core::time::now_ms();
        let mut rows = Vec::with_capacity(datums.len());
        for (d, p) in datums {
            rows.push(datum(ns, d, &p, now)?);
        }
        let region = region.to_string();
        self.store
            .write(move |c| {
                let mut st = c.prepare_cached(
                    "INSERT INTO cw_datums (region, namespace, metric_name, dims, unit, ts_ms, count, sum, min, max, samples)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?;
                for r in &rows {
                    st.execute(stratus_store::rusqlite::params![
                        region, r.namespace, r.name, r.dims, r.unit, r.ts_ms, r.agg.count, r.agg.sum,
                        r.agg.min.unwrap_or(0.0), r.agg.max.unwrap_or(0.0), r.samples
                    ])?;
                }
                Ok(())
            })
            .await
            .map_err(store_err)?;
        Ok(json!({}))
    }
}

/// One datum ready for `cw_datums`.
pub(crate) struct DatumRow {
    pub namespace: String,
    pub name: String,
    /// Dimensions as json `[[name, value], ...]`, sorted.
    pub dims: String,
    pub unit: String,
    pub ts_ms: i64,
    pub agg: Agg,
    /// `[[value, count], ...]` when the values are known.
    pub samples: Option<String>,
}

/// Checks a value CloudWatch stores: finite, and 0 or of magnitude within
/// 2^-360 .. 2^360 (MetricDatum `Value`).
fn check_value(v: f64, path: &str) -> AwsResult<()> {
    let (lo, hi) = (2f64.powi(-360), 2f64.powi(360));
    if v.is_finite() && (v == 0.0 || (lo..=hi).contains(&v.abs())) {
        Ok(())
    } else {
        Err(invalid_value(format!(
            "The value {v} for parameter {path} is out of range: CloudWatch stores values of magnitude 2^-360 to 2^360 (or 0)."
        )))
    }
}

/// Reads and checks one MetricDatum (see [`CloudWatch::put_metric_data`]).
pub(crate) fn datum(ns: &str, d: &Value, p: &str, now: i64) -> AwsResult<DatumRow> {
    let d = as_obj(d, p)?;
    let name = req_str(d, "MetricName", &format!("{p}.MetricName"))?;
    check_metric_name(name, &format!("{p}.MetricName"))?;
    let dims = dimensions(d, "Dimensions", &format!("{p}.Dimensions"))?;
    let unit = opt_unit(d, &format!("{p}.Unit"))?.unwrap_or("None");
    let res = opt_int(d, "StorageResolution", &format!("{p}.StorageResolution"))?.unwrap_or(60);
    if res != 1 && res != 60 {
        return Err(invalid_value(format!(
            "The parameter {p}.StorageResolution must be 1 (high resolution) or 60 (it is {res})."
        )));
    }
    let ts = opt_time(d, "Timestamp", &format!("{p}.Timestamp"))?.unwrap_or(now);
    if ts < now - PUT_PAST_MS || ts > now + PUT_FUTURE_MS {
        return Err(invalid_value(format!(
            "The parameter {p}.Timestamp must specify a time no more than two weeks in the past and no more than two hours in the future."
        )));
    }
    let ts = ts - ts.rem_euclid(res * 1000);
    let value = opt_num(d, "Value", &format!("{p}.Value"))?;
    let set = opt_obj(d, "StatisticValues", &format!("{p}.StatisticValues"))?;
    let values = list(d, "Values", &format!("{p}.Values"))?;
    let counts = list(d, "Counts", &format!("{p}.Counts"))?;
    let given = [value.is_some(), set.is_some(), !values.is_empty()];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(invalid_combination(format!(
            "The parameters {p}.Value, {p}.StatisticValues and {p}.Values are mutually exclusive and more than one was specified."
        )));
    }
    if !counts.is_empty() && values.is_empty() {
        return Err(invalid_combination(format!(
            "The parameter {p}.Counts requires {p}.Values."
        )));
    }
    let (agg, samples) = if let Some(v) = value {
        check_value(v, &format!("{p}.Value"))?;
        (Agg::repeated(v, 1.0), Some(vec![(v, 1.0)]))
    } else if let Some(s) = set {
        let sp = format!("{p}.StatisticValues");
        let get = |k: &str| -> AwsResult<f64> {
            let v = opt_num(s, k, &format!("{sp}.{k}"))?
                .ok_or_else(|| missing(&format!("{sp}.{k}")))?;
            check_value(v, &format!("{sp}.{k}"))?;
            Ok(v)
        };
        let (count, sum, min, max) = (
            get("SampleCount")?,
            get("Sum")?,
            get("Minimum")?,
            get("Maximum")?,
        );
        if count <= 0.0 {
            return Err(invalid_value(format!(
                "The parameter {sp}.SampleCount must be greater than 0."
            )));
        }
        if min > max {
            return Err(invalid_value(format!(
                "The parameter {sp}.Minimum must not be greater than {sp}.Maximum."
            )));
        }
        (
            Agg {
                count,
                sum,
                min: Some(min),
                max: Some(max),
                samples: None,
            },
            None,
        )
    } else if !values.is_empty() {
        if values.len() > MAX_VALUES {
            return Err(invalid_value(format!(
                "The collection {p}.Values must not have more than {MAX_VALUES} members (it has {}).",
                values.len()
            )));
        }
        if !counts.is_empty() && counts.len() != values.len() {
            return Err(invalid_value(format!(
                "The parameters {p}.Values and {p}.Counts must be of the same size ({} and {}).",
                values.len(),
                counts.len()
            )));
        }
        let num = |v: &Value, path: String| -> AwsResult<f64> {
            let o: Map<String, Value> = [("v".to_string(), v.clone())].into_iter().collect();
            opt_num(&o, "v", &path)?
                .ok_or_else(|| invalid_value(format!("The parameter {path} must be a number.")))
        };
        let mut samples = Vec::with_capacity(values.len());
        for (i, v) in values.iter().enumerate() {
            let v = num(v, format!("{p}.Values.member.{}", i + 1))?;
            check_value(v, &format!("{p}.Values.member.{}", i + 1))?;
            let c = match counts.get(i) {
                Some(c) => num(c, format!("{p}.Counts.member.{}", i + 1))?,
                None => 1.0,
            };
            if !c.is_finite() || c < 0.0 {
                return Err(invalid_value(format!(
                    "The parameter {p}.Counts.member.{} must be a count of 0 or more.",
                    i + 1
                )));
            }
            if c > 0.0 {
                samples.push((v, c));
            }
        }
        if samples.is_empty() {
            return Err(invalid_value(format!(
                "The parameter {p}.Counts gives every value a count of 0: the datum has no values."
            )));
        }
        let agg = Agg {
            count: samples.iter().map(|(_, c)| c).sum(),
            sum: samples.iter().map(|(v, c)| v * c).sum(),
            min: samples.iter().map(|(v, _)| *v).reduce(f64::min),
            max: samples.iter().map(|(v, _)| *v).reduce(f64::max),
            samples: None,
        };
        (agg, Some(samples))
    } else {
        return Err(invalid_combination(format!(
            "One of {p}.Value, {p}.StatisticValues or {p}.Values must be specified."
        )));
    };
    Ok(DatumRow {
        namespace: ns.to_string(),
        name: name.to_string(),
        dims: serde_json::to_string(&dims).unwrap_or_else(|_| "[]".into()),
        unit: unit.to_string(),
        ts_ms: ts,
        agg,
        samples: samples.map(|s| serde_json::to_string(&s).unwrap_or_else(|_| "[]".into())),
    })
}
