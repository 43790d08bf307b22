//! The scaling engine: one [`AutoScaling::tick`] at a time, driven by a
//! background task ([`AutoScaling::spawn_engine`]) or by tests with any
//! clock. Each tick:
//!
//! 1. samples `ProvisionedConcurrencyUtilization` (busy / allocated
//!    provisioned environments) of every target with a scaling policy and
//!    lets [`crate::tracking::evaluate`] decide, once per completed metric
//!    period, whether to scale out or in;
//! 2. runs the scheduled actions that are due: new MinCapacity /
//!    MaxCapacity on the target, then the current capacity clamped into
//!    that range;
//! 3. completes in-progress activities whose provisioned concurrency is
//!    READY (or FAILED, or changed since);
//! 4. now and then, forgets activities older than six weeks.
//!
//! State lives in the store (targets, policies, actions with their next
//! run time, activities); the metric's datapoints and the cooldown clocks
//! are in memory and start afresh after a restart. A scheduled run missed
//! while the server was down happens once at startup.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::model::*;
use crate::service::{AutoScaling, fulfilled, next_run, policy_params};
use crate::tracking::{self, Bounds, PERIOD_MS, Tracker};

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl AutoScaling {
    /// The metric period after `--time-scale`.
    pub fn period_ms(&self) -> i64 {
        self.scaled_ms(PERIOD_MS)
    }

    /// How often the engine ticks: about ten samples per metric period,
    /// at most once a second, at least every 20 ms.
    pub fn tick_interval(&self) -> Duration {
        Duration::from_millis((self.period_ms() / 10).clamp(20, 1000) as u64)
    }

    /// Starts the engine on the Tokio runtime.
    pub fn spawn_engine(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let every = me.tick_interval();
            loop {
                tokio::time::sleep(every).await;
                let now = me.now();
                me.tick(now).await;
            }
        })
    }

    /// One round of the engine at time `now_ms`.
    pub async fn tick(&self, now_ms: i64) {
        self.track(now_ms).await;
        self.run_scheduled(now_ms).await;
        self.complete_pending(now_ms);
        self.prune(now_ms);
    }

    /// Target tracking: sample, evaluate, scale.
    async fn track(&self, now_ms: i64) {
        let Ok(policies) = self.store.list_all(KIND_POLICY) else {
            return;
        };
        let mut by_target: HashMap<(String, String), Vec<PolicyRecord>> = HashMap::new();
        for (region, _, body) in policies {
            if let Ok(p) = serde_json::from_str::<PolicyRecord>(&body) {
                by_target.entry((region, p.key.id())).or_default().push(p);
            }
        }
        lock(&self.trackers).retain(|k, _| by_target.contains_key(k));
        let period = self.period_ms();
        for ((region, tid), pols) in by_target {
            let k = pols[0].key.clone();
            let Some((name, q)) = k.function() else {
                continue;
            };
            let usage = self.lambda.provisioned_usage(&region, name, q);
            tracing::trace!("autoscaling: {} usage {usage:?}", k.resource_id);
            let params: Vec<_> = pols.iter().filter_map(|p| policy_params(p, self)).collect();
            let evaluate_now = {
                let mut trackers = lock(&self.trackers);
                let t = trackers
                    .entry((region.clone(), tid.clone()))
                    .or_insert_with(|| Tracker::new(period));
                if let Some(u) = usage
                    && u.allocated > 0
                {
                    t.observe(now_ms, u.busy as f64 / u.allocated as f64);
                } else {
                    t.roll(now_ms);
                }
                // Only worth reading the target when a period just closed.
                t.has_new_datapoint(now_ms)
            };
            if !evaluate_now {
                continue;
            }
            let Ok(Some(target)) = self.load_target(&region, &k) else {
                continue;
            };
            let Ok(current) = self.current_capacity(&region, &k) else {
                continue;
            };
            let b = Bounds {
                current,
                min: target.min_capacity.clamp(0, u32::MAX as i64) as u32,
                max: target.max_capacity.clamp(0, u32::MAX as i64) as u32,
                scale_out_suspended: target.suspended.dynamic_out,
                scale_in_suspended: target.suspended.dynamic_in,
            };
            let d = {
                let mut trackers = lock(&self.trackers);
                let Some(t) = trackers.get_mut(&(region.clone(), tid.clone())) else {
                    continue;
                };
                tracking::evaluate(t, &params, b, now_ms)
            };
            tracing::debug!(
                "autoscaling: {} evaluated at capacity {current}: {:?}",
                k.resource_id,
                d
            );
            let Some(d) = d else { continue };
            let _g = self.ops.lock().await;
            // The target or its policy may have gone meanwhile.
            if !matches!(self.load_target(&region, &k), Ok(Some(_))) {
                continue;
            }
            tracing::info!(
                "autoscaling: {} {} from {current} to {} (metric {:.3}, policy {})",
                k.resource_id,
                if d.out { "scales out" } else { "scales in" },
                d.desired,
                d.metric,
                d.policy
            );
            self.set_capacity(
                &region,
                &k,
                d.desired,
                format!(
                    "monitor alarm {} in state ALARM triggered policy {}",
                    d.alarm, d.policy
                ),
            )
            .await;
        }
    }

    /// Runs the scheduled actions that are due.
    async fn run_scheduled(&self, now_ms: i64) {
        let Ok(all) = self.store.list_all(KIND_ACTION) else {
            return;
        };
        let due: Vec<(String, ActionRecord)> = all
            .into_iter()
            .filter_map(|(region, _, body)| {
                let a: ActionRecord = serde_json::from_str(&body).ok()?;
                a.next_run_ms
                    .is_some_and(|t| t <= now_ms)
                    .then_some((region, a))
            })
            .collect();
        for (region, a) in due {
            let _g = self.ops.lock().await;
            let id = a.key.child_id(&a.name);
            // Read again: it may have changed or gone since the listing.
            let Ok(Some(body)) = self.store.get(KIND_ACTION, &region, &id) else {
                continue;
            };
            let Ok(mut a) = serde_json::from_str::<ActionRecord>(&body) else {
                continue;
            };
            if a.next_run_ms.is_none_or(|t| t > now_ms) {
                continue;
            }
            a.next_run_ms = next_run(&a, now_ms);
            if let Err(e) = self.put(KIND_ACTION, &region, &id, &a) {
                tracing::error!("autoscaling: cannot save scheduled action {}: {e}", a.name);
                continue;
            }
            let Ok(Some(mut t)) = self.load_target(&region, &a.key) else {
                continue;
            };
            if t.suspended.scheduled {
                continue;
            }
            tracing::info!(
                "autoscaling: scheduled action {} runs on {}",
                a.name,
                a.key.resource_id
            );
            let min = a.min_capacity.unwrap_or(t.min_capacity);
            let max = a.max_capacity.unwrap_or(t.max_capacity);
            let what = match (a.min_capacity, a.max_capacity) {
                (Some(x), Some(y)) => format!("min capacity to {x} and max capacity to {y}"),
                (Some(x), None) => format!("min capacity to {x}"),
                (None, Some(y)) => format!("max capacity to {y}"),
                (None, None) => "no capacity limits".to_string(),
            };
            let cause = format!("scheduled action name {} was triggered", a.name);
            if min > max {
                self.record(
                    &region,
                    &a.key,
                    format!("Setting {what}"),
                    cause,
                    "Failed",
                    format!(
                        "Failed to set {what}. Reason: the minimum capacity {min} would be greater than the maximum capacity {max}."
                    ),
                );
                continue;
            }
            t.min_capacity = min;
            t.max_capacity = max;
            if let Err(e) = self.put(KIND_TARGET, &region, &t.key.id(), &t) {
                self.record(
                    &region,
                    &a.key,
                    format!("Setting {what}"),
                    cause,
                    "Failed",
                    format!("Failed to set {what}. Reason: {}", e.message),
                );
                continue;
            }
            self.record(
                &region,
                &a.key,
                format!("Setting {what}"),
                cause,
                "Successful",
                format!("Successfully set {what}"),
            );
            self.clamp_capacity(&region, &t).await;
        }
    }

    /// Completes activities whose capacity change is fulfilled.
    fn complete_pending(&self, now_ms: i64) {
        let list: Vec<(String, String)> = lock(&self.pending).clone();
        if list.is_empty() {
            return;
        }
        let mut done = Vec::new();
        for (region, sid) in list {
            let Ok(Some(body)) = self.store.get(KIND_ACTIVITY, &region, &sid) else {
                done.push((region, sid));
                continue;
            };
            let Ok(mut a) = serde_json::from_str::<ActivityRecord>(&body) else {
                done.push((region, sid));
                continue;
            };
            let Some(p) = a.pending.clone() else {
                done.push((region, sid));
                continue;
            };
            let finish: Option<(&str, String)> = match self
                .lambda
                .get_provisioned_concurrency_config(&region, &p.function, Some(&p.qualifier))
            {
                Ok(v) if v.requested_provisioned_concurrent_executions != p.desired => Some((
                    "Overridden",
                    format!(
                        "Provisioned concurrency was set to {} before this change was fulfilled.",
                        v.requested_provisioned_concurrent_executions
                    ),
                )),
                Ok(v) if v.status == "READY" => Some(("Successful", fulfilled(p.desired))),
                Ok(v) if v.status == "FAILED" => Some((
                    "Failed",
                    format!(
                        "Failed to set desired concurrency to {}. Reason: {}",
                        p.desired,
                        v.status_reason
                            .unwrap_or_else(|| "allocation failed".into())
                    ),
                )),
                Ok(_) => None,
                Err(e) => Some((
                    "Overridden",
                    format!(
                        "The provisioned concurrency configuration is gone: {}",
                        e.message
                    ),
                )),
            };
            if let Some((status, msg)) = finish {
                a.status = status.into();
                a.status_message = Some(msg);
                a.end_ms = Some(now_ms.max(a.start_ms));
                a.pending = None;
                self.save_activity(&region, &a);
                done.push((region, sid));
            }
        }
        lock(&self.pending).retain(|x| !done.contains(x));
    }

    /// Forgets activities older than six weeks (checked every 10 minutes).
    fn prune(&self, now_ms: i64) {
        {
            let mut last = lock(&self.last_prune_ms);
            if now_ms - *last < 600_000 {
                return;
            }
            *last = now_ms;
        }
        let Ok(all) = self.store.list_all(KIND_ACTIVITY) else {
            return;
        };
        for (region, id, body) in all {
            if let Ok(a) = serde_json::from_str::<ActivityRecord>(&body)
                && a.pending.is_none()
                && a.start_ms < now_ms - ACTIVITY_RETENTION_MS
            {
                let _ = self.store.delete(KIND_ACTIVITY, &region, &id);
            }
        }
    }

    /// Activities left in progress by the previous run of the server.
    pub(crate) fn recover_pending(&self) {
        let Ok(all) = self.store.list_all(KIND_ACTIVITY) else {
            return;
        };
        let mut p = lock(&self.pending);
        for (region, id, body) in all {
            if let Ok(a) = serde_json::from_str::<ActivityRecord>(&body)
                && a.pending.is_some()
            {
                p.push((region, id));
            }
        }
    }
}
