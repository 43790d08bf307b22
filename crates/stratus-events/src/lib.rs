//! Amazon EventBridge: event buses, rules (event patterns and schedules),
//! targets and PutEvents, behind AWS's json-1.1 API
//! (`X-Amz-Target: AWSEvents.*`, botocore `events` 2015-10-07), durable in
//! the store.
//!
//! * [`pattern`]: the event pattern language, compiled once per rule.
//! * [`matcher`]: many rules against one event, indexed by `source`.
//! * [`transform`]: `Input`, `InputPath` and `InputTransformer`.
//! * [`schedule`]: `rate(...)` and `cron(...)` rules on a clock that
//!   `time_scale` can speed up.
//! * [`model`]: stored records, request helpers and errors.
//! * `service`: the API operations; `delivery`: the retrying delivery
//!   queue to targets.
//!
//! Rules and buses live in memory (read by PutEvents without touching the
//! store) and in the store (written first: a change is acknowledged only
//! once committed). Events that match are turned into pending deliveries,
//! committed before PutEvents answers, and delivered through the
//! [`Targets`] registry; failed deliveries are retried with backoff as
//! AWS's default RetryPolicy does (185 attempts, 24 hours). See
//! docs/eventbridge.md.

pub mod matcher;
pub mod model;
pub mod pattern;
pub mod schedule;
pub mod transform;

mod delivery;
mod service;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use serde_json::Value;
use stratus_core::{AwsResult, Config, Targets};
use stratus_store::Store;
use tokio::sync::Notify;

use crate::matcher::RuleSet;
use crate::model::{BusRec, RuleRec};
use crate::pattern::Pattern;
use crate::schedule::Schedule;
use crate::transform::Transformer;

/// `X-Amz-Target` prefix.
pub const TARGET_PREFIX: &str = "AWSEvents";

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS events_buses (
    region TEXT NOT NULL,
    name   TEXT NOT NULL,
    body   TEXT NOT NULL,
    PRIMARY KEY (region, name)
);
CREATE TABLE IF NOT EXISTS events_rules (
    region TEXT NOT NULL,
    bus    TEXT NOT NULL,
    name   TEXT NOT NULL,
    body   TEXT NOT NULL,
    PRIMARY KEY (region, bus, name)
);
CREATE TABLE IF NOT EXISTS events_deliveries (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    due_ms INTEGER NOT NULL,
    body   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_deliveries_due ON events_deliveries (due_ms);
"#;

/// How a target is fed, compiled from its stored JSON.
#[derive(Debug, Clone)]
pub(crate) enum InputMode {
    Event,
    Constant(String),
    Path(transform::JsonPath),
    Transformer(Box<Transformer>),
}

/// A target ready for delivery.
#[derive(Debug, Clone)]
pub(crate) struct TargetSpec {
    pub id: String,
    pub arn: String,
    pub input: InputMode,
    pub max_retries: u32,
    pub max_age_s: i64,
    pub dead_letter_arn: Option<String>,
    /// `SqsParameters.MessageGroupId`, for FIFO queues.
    pub message_group_id: Option<String>,
}

/// A rule with its pattern, schedule and targets compiled.
#[derive(Debug)]
pub(crate) struct CompiledRule {
    pub rec: RuleRec,
    pub pattern: Option<Pattern>,
    pub schedule: Option<Schedule>,
    pub targets: Vec<TargetSpec>,
}

/// One bus: its record, its rules, and the index of its enabled
/// pattern rules.
#[derive(Debug)]
pub(crate) struct BusState {
    pub rec: BusRec,
    /// Whether `rec` is stored (the default bus is stored once tagged).
    pub stored: bool,
    pub rules: BTreeMap<String, Arc<CompiledRule>>,
    /// The enabled rules with a pattern, in `index` order.
    pub matchable: Vec<Arc<CompiledRule>>,
    pub index: RuleSet,
}

impl BusState {
    pub(crate) fn new(rec: BusRec, stored: bool) -> BusState {
        BusState {
            rec,
            stored,
            rules: BTreeMap::new(),
            matchable: Vec::new(),
            index: RuleSet::default(),
        }
    }

    /// Rebuilds the match index after a rule changed.
    pub(crate) fn reindex(&mut self) {
        let matchable: Vec<Arc<CompiledRule>> = self
            .rules
            .values()
            .filter(|r| r.rec.enabled() && r.pattern.is_some())
            .cloned()
            .collect();
        let patterns = matchable.iter().filter_map(|r| r.pattern.clone()).collect();
        self.index = RuleSet::new(patterns);
        self.matchable = matchable;
    }
}

/// Every region's buses.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub regions: HashMap<String, BTreeMap<String, BusState>>,
}

/// The EventBridge service.
pub struct Events {
    pub(crate) store: Store,
    pub(crate) targets: Targets,
    pub(crate) account: String,
    pub(crate) time_scale: f64,
    pub(crate) state: RwLock<State>,
    /// Serializes changes to buses and rules (store first, then memory).
    pub(crate) ops: tokio::sync::Mutex<()>,
    /// Wakes the delivery worker when deliveries are queued.
    pub(crate) wake: Notify,
    /// Pending deliveries being attempted now (by row id).
    pub(crate) in_flight: Mutex<HashSet<i64>>,
    /// Real ms at start-up: the origin of the scaled schedule clock.
    pub(crate) boot_ms: i64,
    /// Next firing (scaled clock, ms) of scheduled rules by rule ARN.
    pub(crate) next_fire: Mutex<HashMap<String, i64>>,
}

impl Events {
    /// Opens the service's tables in `store` and loads buses and rules.
    ///
    /// Errors: the tables cannot be created or read.
    pub fn new(store: Store, config: &Config, targets: Targets) -> Result<Arc<Events>, String> {
        store.migrate(SCHEMA).map_err(|e| e.to_string())?;
        let time_scale = if config.time_scale.is_finite() && config.time_scale > 0.0 {
            config.time_scale
        } else {
            1.0
        };
        let me = Events {
            store,
            targets,
            account: config.account_id.clone(),
            time_scale,
            state: RwLock::new(State::default()),
            ops: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            in_flight: Mutex::new(HashSet::new()),
            boot_ms: stratus_core::time::now_ms(),
            next_fire: Mutex::new(HashMap::new()),
        };
        me.load()?;
        Ok(Arc::new(me))
    }

    /// Answers one json-protocol operation (`op` is the part of
    /// `X-Amz-Target` after `AWSEvents.`).
    ///
    /// Errors: as each operation documents; `UnknownOperationException`
    /// for operations stratus does not serve.
    pub async fn call(&self, region: &str, op: &str, body: Bytes) -> AwsResult<Value> {
        self.dispatch(region, op, &body).await
    }

    /// Starts background work: the delivery worker (retries included) and
    /// the scheduler of scheduled rules.
    pub fn spawn(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            tokio::spawn(delivery::run(self.clone())),
            tokio::spawn(schedule::run(self.clone())),
        ]
    }

    /// A platform duration (backoff) in real ms under `time_scale`.
    pub(crate) fn scaled_ms(&self, ms: i64) -> i64 {
        ((ms as f64) / self.time_scale).round().max(1.0) as i64
    }

    /// Now on the schedule clock: real time, sped up `time_scale` times
    /// from start-up.
    pub(crate) fn schedule_now(&self) -> i64 {
        let real = stratus_core::time::now_ms();
        self.boot_ms + (((real - self.boot_ms) as f64) * self.time_scale) as i64
    }

    pub(crate) fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl stratus_core::Target for Events {
    /// Puts one event on the bus `arn` (`arn:aws:events:<region>:<account>:event-bus/<name>`):
    /// `source`, `detail_type` and `resources` of the delivery, with its
    /// `body` (a JSON object) as `detail`. Returns the event id.
    ///
    /// Errors: `ResourceNotFoundException` for an unknown bus,
    /// `InvalidParameterValueException` for a delivery without source or
    /// detail type, or whose body is not a JSON object.
    fn deliver<'a>(
        &'a self,
        arn: &'a str,
        delivery: stratus_core::Delivery,
    ) -> stratus_core::targets::BoxFuture<'a, AwsResult<String>> {
        Box::pin(async move { self.deliver_to_bus(arn, delivery).await })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use stratus_core::targets::BoxFuture;
    use stratus_core::{AwsError, Delivery, Target};

    use super::*;

    const QUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:q";
    const DLQ: &str = "arn:aws:sqs:us-east-1:123456789012:dlq";

    /// A queue service that fails (HTTP 500) its first `fail` deliveries
    /// to [`QUEUE`] and records everything it accepts.
    struct Flaky {
        fail: AtomicU32,
        attempts: AtomicU32,
        got: Mutex<Vec<(String, Delivery)>>,
    }

    impl Flaky {
        fn new(fail: u32) -> Arc<Flaky> {
            Arc::new(Flaky {
                fail: AtomicU32::new(fail),
                attempts: AtomicU32::new(0),
                got: Mutex::new(Vec::new()),
            })
        }
        fn got(&self) -> Vec<(String, Delivery)> {
            self.got.lock().unwrap().clone()
        }
    }

    impl Target for Flaky {
        fn deliver<'a>(&'a self, arn: &'a str, d: Delivery) -> BoxFuture<'a, AwsResult<String>> {
            Box::pin(async move {
                if arn == QUEUE {
                    self.attempts.fetch_add(1, Ordering::SeqCst);
                    if self
                        .fail
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        return Err(AwsError::new(500, "ServiceUnavailable", "queue is down"));
                    }
                }
                self.got.lock().unwrap().push((arn.to_string(), d));
                Ok("id".into())
            })
        }
    }

    fn service(store: &Store, flaky: &Arc<Flaky>) -> Arc<Events> {
        let mut config = Config::with_data_dir(store.path().to_path_buf());
        // Backoffs of 1 s, 2 s, ... take 1 ms, 2 ms, ...
        config.time_scale = 1000.0;
        let targets = Targets::new();
        targets.register("sqs", flaky.clone());
        Events::new(store.clone(), &config, targets).unwrap()
    }

    async fn call(ev: &Events, op: &str, body: Value) -> Value {
        ev.call("us-east-1", op, Bytes::from(body.to_string()))
            .await
            .unwrap_or_else(|e| panic!("{op}: {e}"))
    }

    async fn wait_for(mut f: impl FnMut() -> bool) {
        for _ in 0..500 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pending_deliveries_survive_a_restart_and_are_retried() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first = Flaky::new(0);
        let ev = service(&store, &first);
        call(
            &ev,
            "PutRule",
            serde_json::json!({"Name": "r", "EventPattern": "{\"source\": [\"shop\"]}"}),
        )
        .await;
        call(
            &ev,
            "PutTargets",
            serde_json::json!({"Rule": "r", "Targets": [{"Id": "q", "Arn": QUEUE}]}),
        )
        .await;
        let out = call(
            &ev,
            "PutEvents",
            serde_json::json!({"Entries": [
                {"Source": "shop", "DetailType": "Order", "Detail": "{\"n\": 1}"},
                {"Source": "other", "DetailType": "Order", "Detail": "{\"n\": 2}"}
            ]}),
        )
        .await;
        assert_eq!(out["FailedEntryCount"], 0);
        // No worker ran: the matched event waits in the store.
        drop(ev);
        assert!(first.got().is_empty());
        let second = Flaky::new(2);
        let ev = service(&store, &second);
        let _workers = ev.spawn();
        wait_for(|| !second.got().is_empty()).await;
        let got = second.got();
        assert_eq!(got.len(), 1);
        assert_eq!(second.attempts.load(Ordering::SeqCst), 3);
        let body: Value = serde_json::from_str(&got[0].1.body).unwrap();
        assert_eq!(body["source"], "shop");
        assert_eq!(body["detail"], serde_json::json!({"n": 1}));
        assert_eq!(body["version"], "0");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retries_end_at_the_retry_policy_then_the_dead_letter_queue() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let flaky = Flaky::new(u32::MAX);
        let ev = service(&store, &flaky);
        let _workers = ev.spawn();
        call(
            &ev,
            "PutRule",
            serde_json::json!({"Name": "r", "EventPattern": "{\"source\": [\"shop\"]}"}),
        )
        .await;
        call(
            &ev,
            "PutTargets",
            serde_json::json!({"Rule": "r", "Targets": [{
            "Id": "q", "Arn": QUEUE, "Input": "{\"fixed\": 1}",
            "RetryPolicy": {"MaximumRetryAttempts": 2},
            "DeadLetterConfig": {"Arn": DLQ}}]}),
        )
        .await;
        call(
            &ev,
            "PutEvents",
            serde_json::json!({"Entries": [
            {"Source": "shop", "DetailType": "Order", "Detail": "{}"}]}),
        )
        .await;
        wait_for(|| !flaky.got().is_empty()).await;
        // One attempt and two retries, then the DLQ.
        assert_eq!(flaky.attempts.load(Ordering::SeqCst), 3);
        let got = flaky.got();
        assert_eq!(got[0].0, DLQ);
        assert_eq!(got[0].1.body, "{\"fixed\": 1}");
        let attr = |k: &str| got[0].1.attributes[k].string_value.clone().unwrap();
        assert_eq!(
            attr("RULE_ARN"),
            "arn:aws:events:us-east-1:123456789012:rule/r"
        );
        assert_eq!(attr("TARGET_ARN"), QUEUE);
        assert_eq!(attr("ERROR_CODE"), "ServiceUnavailable");
        // The pending delivery is forgotten once the DLQ has it (the row is
        // deleted just after the delivery returns).
        let left = || -> i64 {
            store
                .read(|c| c.query_row("SELECT COUNT(*) FROM events_deliveries", [], |r| r.get(0)))
                .unwrap()
        };
        wait_for(|| left() == 0).await;
        assert_eq!(left(), 0);
    }
}
