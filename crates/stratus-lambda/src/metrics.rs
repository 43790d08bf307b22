//! Lambda's invocation and concurrency metrics
//! (<https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html>)
//! at one-minute resolution, and the usage `stratus cost` prices
//! ([`crate::cost`]).
//!
//! Per function, per executed version (`$LATEST` included) and per alias:
//! Invocations, Errors, Throttles, Duration (sum / count / max),
//! ConcurrentExecutions (the most running at once in the minute),
//! ProvisionedConcurrentExecutions, ProvisionedConcurrencyUtilization (that
//! over the provisioned environments allocated),
//! ProvisionedConcurrencyInvocations and
//! ProvisionedConcurrencySpilloverInvocations; plus billed GB-seconds by
//! architecture (on-demand, executed on provisioned environments, and
//! provisioned environments allocated over time).
//!
//! The invoke path only updates an in-memory aggregator (one mutex, a few
//! map updates); [`Lambda::metrics_tick`] (every second, from the reaper)
//! samples the provisioned environments and every few seconds adds what
//! accumulated to the store's `lambda_metrics` table; shutdown flushes the
//! rest.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use stratus_store::{MetricRow, Store};

use crate::model::FunctionRecord;
use crate::service::Lambda;
use crate::versions::is_version_number;

/// Seconds between two flushes of the aggregator to the store.
pub const FLUSH_EVERY_SECS: u64 = 5;

/// The three series an invocation counts in.
pub const DIM_FUNCTION: &str = "function";
pub const DIM_VERSION: &str = "version";
pub const DIM_ALIAS: &str = "alias";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Series {
    region: String,
    function: String,
    dim: &'static str,
    qualifier: String,
}

/// One minute of one series, not yet in the store.
#[derive(Debug, Default, Clone)]
struct Bucket {
    invocations: u64,
    errors: u64,
    throttles: u64,
    concurrent: u64,
    provisioned_concurrent: u64,
    provisioned_allocated: u64,
    provisioned_invocations: u64,
    spillover: u64,
    duration_sum_ms: f64,
    duration_count: u64,
    duration_max_ms: f64,
    billed_ms: u64,
    gb_s: [f64; 2],
    provisioned_gb_s: [f64; 2],
    allocated_gb_s: [f64; 2],
}

/// What runs now in a series.
#[derive(Debug, Default, Clone, Copy)]
struct Live {
    in_flight: u64,
    provisioned_in_flight: u64,
}

#[derive(Default)]
struct State {
    buckets: HashMap<(Series, i64), Bucket>,
    live: HashMap<Series, Live>,
}

/// The metrics aggregator.
pub struct Metrics {
    state: Mutex<State>,
    last_sample: Mutex<Option<Instant>>,
    ticks: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn minute_of(ms: i64) -> i64 {
    ms - ms.rem_euclid(60_000)
}

/// Index of an architecture in the GB-seconds arrays: 0 x86_64, 1 arm64.
fn arch_index(rec: &FunctionRecord) -> usize {
    usize::from(rec.config.architectures.first().map(String::as_str) == Some("arm64"))
}

/// The alias of an invoked ARN (`...:function:name:alias`), if it names one.
fn alias_of(invoked_arn: &str) -> Option<&str> {
    let mut parts = invoked_arn.splitn(8, ':');
    let q = parts.nth(7)?;
    (q != "$LATEST" && !is_version_number(q)).then_some(q)
}

/// Billed duration of an invocation as its REPORT line states it: the
/// duration rounded up to the next ms, at least 1 ms.
pub fn billed_ms(duration_ms: f64) -> u64 {
    duration_ms.ceil().max(1.0) as u64
}

/// GB-seconds of `billed_ms` at `memory_mb`.
pub fn gb_seconds(billed_ms: u64, memory_mb: u32) -> f64 {
    (memory_mb as f64 / 1024.0) * (billed_ms as f64 / 1000.0)
}

fn series_of(region: &str, rec: &FunctionRecord, invoked_arn: &str) -> Vec<Series> {
    let function = rec.config.function_name.clone();
    let mut v = vec![
        Series {
            region: region.to_string(),
            function: function.clone(),
            dim: DIM_FUNCTION,
            qualifier: String::new(),
        },
        Series {
            region: region.to_string(),
            function: function.clone(),
            dim: DIM_VERSION,
            qualifier: rec.config.version.clone(),
        },
    ];
    if let Some(a) = alias_of(invoked_arn) {
        v.push(Series {
            region: region.to_string(),
            function,
            dim: DIM_ALIAS,
            qualifier: a.to_string(),
        });
    }
    v
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            state: Mutex::default(),
            last_sample: Mutex::new(None),
            ticks: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one throttled invocation of `rec` (429).
    pub fn throttle(&self, region: &str, rec: &FunctionRecord, invoked_arn: &str) {
        let minute = minute_of(stratus_core::time::now_ms());
        let series = series_of(region, rec, invoked_arn);
        let mut s = self.lock();
        for k in series {
            s.buckets.entry((k, minute)).or_default().throttles += 1;
        }
    }

    /// An invocation starts running (on a provisioned environment or not;
    /// `spillover` when its version has provisioned environments but none
    /// was free). Finish it with [`InvokeMetrics::finish`].
    pub fn begin(
        &self,
        region: &str,
        rec: &FunctionRecord,
        invoked_arn: &str,
        provisioned: bool,
        spillover: bool,
    ) -> InvokeMetrics<'_> {
        let minute = minute_of(stratus_core::time::now_ms());
        let series = series_of(region, rec, invoked_arn);
        let mut guard = self.lock();
        let s = &mut *guard;
        for k in &series {
            let live = s.live.entry(k.clone()).or_default();
            live.in_flight += 1;
            if provisioned {
                live.provisioned_in_flight += 1;
            }
            let live = *live;
            let b = s.buckets.entry((k.clone(), minute)).or_default();
            b.concurrent = b.concurrent.max(live.in_flight);
            b.provisioned_concurrent = b.provisioned_concurrent.max(live.provisioned_in_flight);
        }
        drop(guard);
        InvokeMetrics {
            metrics: self,
            series,
            provisioned,
            spillover,
            memory_mb: rec.config.memory_size,
            arch: arch_index(rec),
        }
    }

    /// Adds provisioned allocation seen by a sample: `allocated`
    /// environments of `memory_mb` for `secs` seconds.
    fn allocation(
        s: &mut State,
        series: Series,
        minute: i64,
        allocated: u64,
        memory_mb: u32,
        arch: usize,
        secs: f64,
    ) {
        let b = s.buckets.entry((series, minute)).or_default();
        b.provisioned_allocated = b.provisioned_allocated.max(allocated);
        b.allocated_gb_s[arch] += allocated as f64 * memory_mb as f64 / 1024.0 * secs;
    }

    /// Takes every accumulated bucket as store rows (and forgets them).
    fn drain(&self) -> Vec<MetricRow> {
        let mut s = self.lock();
        // Invocations still running count in the minute being drained.
        let minute = minute_of(stratus_core::time::now_ms());
        let live: Vec<(Series, Live)> = s
            .live
            .iter()
            .filter(|(_, l)| l.in_flight > 0)
            .map(|(k, l)| (k.clone(), *l))
            .collect();
        s.live.retain(|_, l| l.in_flight > 0);
        for (k, l) in live {
            let b = s.buckets.entry((k, minute)).or_default();
            b.concurrent = b.concurrent.max(l.in_flight);
            b.provisioned_concurrent = b.provisioned_concurrent.max(l.provisioned_in_flight);
        }
        s.buckets
            .drain()
            .map(|((k, minute), b)| MetricRow {
                region: k.region,
                function_name: k.function,
                dimension: k.dim.to_string(),
                qualifier: k.qualifier,
                minute,
                invocations: b.invocations,
                errors: b.errors,
                throttles: b.throttles,
                concurrent_executions: b.concurrent,
                provisioned_concurrent_executions: b.provisioned_concurrent,
                provisioned_allocated: b.provisioned_allocated,
                provisioned_invocations: b.provisioned_invocations,
                spillover_invocations: b.spillover,
                duration_sum_ms: b.duration_sum_ms,
                duration_count: b.duration_count,
                duration_max_ms: b.duration_max_ms,
                billed_ms: b.billed_ms,
                gb_seconds_x86_64: b.gb_s[0],
                gb_seconds_arm64: b.gb_s[1],
                provisioned_gb_seconds_x86_64: b.provisioned_gb_s[0],
                provisioned_gb_seconds_arm64: b.provisioned_gb_s[1],
                allocated_gb_seconds_x86_64: b.allocated_gb_s[0],
                allocated_gb_seconds_arm64: b.allocated_gb_s[1],
            })
            .collect()
    }

    /// Writes everything accumulated to the store.
    pub fn flush(&self, store: &Store) {
        let rows = self.drain();
        if let Err(e) = store.add_metrics(&rows) {
            tracing::error!("writing {} metric rows: {e}", rows.len());
        }
    }
}

/// One running invocation's metrics.
pub struct InvokeMetrics<'a> {
    metrics: &'a Metrics,
    series: Vec<Series>,
    provisioned: bool,
    spillover: bool,
    memory_mb: u32,
    arch: usize,
}

impl InvokeMetrics<'_> {
    /// The invocation ran for `duration_ms` (its REPORT Duration); `error`
    /// when it failed (function error, timeout, crash, init failure).
    pub fn finish(self, duration_ms: f64, error: bool) {
        let minute = minute_of(stratus_core::time::now_ms());
        let billed = billed_ms(duration_ms);
        let gbs = gb_seconds(billed, self.memory_mb);
        let mut s = self.metrics.lock();
        for k in &self.series {
            let b = s.buckets.entry((k.clone(), minute)).or_default();
            b.invocations += 1;
            b.errors += u64::from(error);
            b.duration_sum_ms += duration_ms;
            b.duration_count += 1;
            b.duration_max_ms = b.duration_max_ms.max(duration_ms);
            b.billed_ms += billed;
            if self.provisioned {
                b.provisioned_invocations += 1;
                b.provisioned_gb_s[self.arch] += gbs;
            } else {
                b.gb_s[self.arch] += gbs;
                b.spillover += u64::from(self.spillover);
            }
        }
    }

    /// The invocation was throttled before it ran (scaling rate).
    pub fn throttled(self) {
        let minute = minute_of(stratus_core::time::now_ms());
        let mut s = self.metrics.lock();
        for k in &self.series {
            s.buckets.entry((k.clone(), minute)).or_default().throttles += 1;
        }
    }
}

impl Drop for InvokeMetrics<'_> {
    fn drop(&mut self) {
        let mut s = self.metrics.lock();
        for k in &self.series {
            if let Some(l) = s.live.get_mut(k) {
                l.in_flight = l.in_flight.saturating_sub(1);
                if self.provisioned {
                    l.provisioned_in_flight = l.provisioned_in_flight.saturating_sub(1);
                }
            }
        }
    }
}

impl Lambda {
    /// Every second (with the reaper): samples the provisioned environments
    /// allocated (ProvisionedConcurrencyUtilization's denominator and the
    /// GB-seconds they bill) and every [`FLUSH_EVERY_SECS`] writes the
    /// aggregator to the store.
    pub fn metrics_tick(&self) {
        self.sample_provisioned();
        let n = self.metrics.ticks.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_multiple_of(FLUSH_EVERY_SECS) {
            self.metrics.flush(&self.store);
        }
    }

    /// Writes every metric accumulated so far to the store (shutdown, tests).
    pub fn flush_metrics(&self) {
        self.sample_provisioned();
        self.metrics.flush(&self.store);
    }

    fn sample_provisioned(&self) {
        let now = Instant::now();
        let secs = {
            let mut last = self
                .metrics
                .last_sample
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let secs = last.map_or(0.0, |t| now.duration_since(t).as_secs_f64());
            *last = Some(now);
            secs
        };
        let minute = minute_of(stratus_core::time::now_ms());
        let pools = self.provisioned_snapshot();
        // Allocation by version (and per function); aliases from their configs.
        // (region, function) -> (environments, [(environments, memory, arch)]).
        type PerFunction = HashMap<(String, String), (u64, Vec<(u64, u32, usize)>)>;
        let mut per_function: PerFunction = HashMap::new();
        let mut rows = Vec::new();
        for (region, function, version, ready) in pools {
            let Ok(rec) = self.load_version(&region, &function, &version) else {
                continue;
            };
            let (mem, arch) = (rec.config.memory_size, arch_index(&rec));
            let f = per_function
                .entry((region.clone(), function.clone()))
                .or_default();
            f.0 += ready as u64;
            f.1.push((ready as u64, mem, arch));
            rows.push((
                Series {
                    region,
                    function,
                    dim: DIM_VERSION,
                    qualifier: version,
                },
                ready as u64,
                mem,
                arch,
            ));
        }
        let mut aliases = Vec::new();
        if let Ok(all) = self.store.list_all(crate::provisioned::KIND_PROVISIONED) {
            for (region, _, body) in all {
                if let Ok(c) =
                    serde_json::from_str::<crate::provisioned::ProvisionedConfigRecord>(&body)
                    && !is_version_number(&c.qualifier)
                    && let Some(u) = self.provisioned_usage(&region, &c.function_name, &c.qualifier)
                {
                    aliases.push((region, c.function_name, c.qualifier, u.allocated));
                }
            }
        }
        let mut s = self.metrics.lock();
        for (series, ready, mem, arch) in rows {
            Metrics::allocation(&mut s, series, minute, ready, mem, arch, secs);
        }
        for ((region, function), (total, parts)) in per_function {
            let series = Series {
                region,
                function,
                dim: DIM_FUNCTION,
                qualifier: String::new(),
            };
            let b = s.buckets.entry((series, minute)).or_default();
            b.provisioned_allocated = b.provisioned_allocated.max(total);
            for (ready, mem, arch) in parts {
                b.allocated_gb_s[arch] += ready as f64 * mem as f64 / 1024.0 * secs;
            }
        }
        for (region, function, alias, allocated) in aliases {
            let series = Series {
                region,
                function,
                dim: DIM_ALIAS,
                qualifier: alias,
            };
            let b = s.buckets.entry((series, minute)).or_default();
            b.provisioned_allocated = b.provisioned_allocated.max(allocated as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_in_arns() {
        assert_eq!(
            alias_of("arn:aws:lambda:us-east-1:000000000000:function:f:live"),
            Some("live")
        );
        assert_eq!(
            alias_of("arn:aws:lambda:us-east-1:000000000000:function:f:3"),
            None
        );
        assert_eq!(
            alias_of("arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST"),
            None
        );
        assert_eq!(
            alias_of("arn:aws:lambda:us-east-1:000000000000:function:f"),
            None
        );
    }

    #[test]
    fn billing_units() {
        assert_eq!(billed_ms(0.2), 1);
        assert_eq!(billed_ms(200.0), 200);
        assert_eq!(billed_ms(200.01), 201);
        assert!((gb_seconds(200, 1024) - 0.2).abs() < 1e-12);
        assert!((gb_seconds(1000, 128) - 0.125).abs() < 1e-12);
    }

    #[test]
    fn minutes() {
        assert_eq!(minute_of(119_999), 60_000);
        assert_eq!(minute_of(120_000), 120_000);
    }
}
