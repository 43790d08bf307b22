//! Events on their way to targets: AWS's event envelope, the input each
//! target receives, and the durable retrying queue.
//!
//! A matched event becomes one [`PendingDelivery`] per target, committed
//! to `events_deliveries` before PutEvents answers. The worker delivers
//! due rows through the [`stratus_core::Targets`] registry; a failure is
//! retried with exponential backoff (1 s doubling to 8 min, scaled by
//! `time_scale`) until the target's RetryPolicy is spent (AWS's default:
//! 185 retries or 24 hours of event age). Client errors other than
//! throttling (the target does not exist) are not retried. An event that fails for good
//! goes to the target's DeadLetterConfig queue, with the message
//! attributes AWS documents (`RULE_ARN`, `TARGET_ARN`, `ERROR_CODE`,
//! `ERROR_MESSAGE`;
//! <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html>),
//! or is dropped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use stratus_core::{AwsError, AwsResult, Delivery, MessageAttribute};
use stratus_store::rusqlite::{self, params};

use crate::model::{PendingDelivery, event_time, internal};
use crate::transform::Context;
use crate::{CompiledRule, Events, InputMode};

/// Deliveries attempted at once.
const PARALLEL: usize = 64;

/// Longest backoff between attempts, ms (before scaling).
const MAX_BACKOFF_MS: i64 = 480_000;

/// One event in AWS's envelope: `version` "0", `id`, `detail-type`,
/// `source`, `account`, `time`, `region`, `resources`, `detail`.
#[derive(Debug, Clone)]
pub(crate) struct Envelope {
    pub id: String,
    pub source: String,
    pub detail_type: String,
    pub resources: Vec<String>,
    /// The detail as the sender wrote it (a JSON object).
    pub detail_raw: String,
    /// The envelope as JSON text, fields in AWS's order.
    pub text: String,
    /// The envelope as a value, for matching and paths.
    pub value: Value,
    /// ISO 8601 time the event was received.
    pub ingestion_time: String,
}

impl Envelope {
    /// Builds an event; `detail_raw` must be a JSON object, `detail` is
    /// its parsed value when the caller has it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        account: &str,
        region: &str,
        source: &str,
        detail_type: &str,
        resources: Vec<String>,
        detail_raw: String,
        detail: Option<Value>,
        time_ms: i64,
    ) -> Envelope {
        let id = uuid::Uuid::new_v4().to_string();
        let time = event_time(time_ms);
        let detail =
            detail.unwrap_or_else(|| serde_json::from_str(&detail_raw).unwrap_or(Value::Null));
        let s = |x: &str| Value::from(x).to_string();
        let text = format!(
            "{{\"version\":\"0\",\"id\":{},\"detail-type\":{},\"source\":{},\"account\":{},\"time\":{},\"region\":{},\"resources\":{},\"detail\":{}}}",
            s(&id),
            s(detail_type),
            s(source),
            s(account),
            s(&time),
            s(region),
            Value::from(resources.clone()),
            detail_raw.trim()
        );
        let value = serde_json::json!({
            "version": "0",
            "id": id,
            "detail-type": detail_type,
            "source": source,
            "account": account,
            "time": time,
            "region": region,
            "resources": resources,
            "detail": detail,
        });
        Envelope {
            id,
            source: source.to_string(),
            detail_type: detail_type.to_string(),
            resources,
            detail_raw,
            text,
            value,
            ingestion_time: event_time(stratus_core::time::now_ms()),
        }
    }
}

/// The deliveries one matched rule makes of one event.
pub(crate) fn plan(region: &str, rule: &CompiledRule, env: &Envelope) -> Vec<PendingDelivery> {
    let now = stratus_core::time::now_ms();
    rule.targets
        .iter()
        .map(|t| {
            let payload = match &t.input {
                InputMode::Event => env.text.clone(),
                InputMode::Constant(c) => c.clone(),
                InputMode::Path(p) => p
                    .select(&env.value)
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "null".to_string()),
                InputMode::Transformer(tr) => tr.render(
                    &env.value,
                    &Context {
                        rule_arn: &rule.rec.arn,
                        rule_name: &rule.rec.name,
                        ingestion_time: &env.ingestion_time,
                    },
                ),
            };
            PendingDelivery {
                target_arn: t.arn.clone(),
                target_id: t.id.clone(),
                rule_arn: rule.rec.arn.clone(),
                payload,
                source: env.source.clone(),
                detail_type: env.detail_type.clone(),
                resources: env.resources.clone(),
                detail: env.detail_raw.clone(),
                attempts: 0,
                first_ms: now,
                max_retries: t.max_retries,
                max_age_s: t.max_age_s,
                dead_letter_arn: t.dead_letter_arn.clone(),
                message_group_id: t.message_group_id.clone(),
                event_id: env.id.clone(),
                whole_event: matches!(t.input, InputMode::Event),
                region: region.to_string(),
            }
        })
        .collect()
}

impl Events {
    /// Commits deliveries (one transaction) and wakes the worker. Resolves
    /// once they are durable.
    ///
    /// Errors: `InternalException` when the store fails.
    pub(crate) async fn enqueue(&self, ds: Vec<PendingDelivery>) -> AwsResult<()> {
        if ds.is_empty() {
            return Ok(());
        }
        let now = stratus_core::time::now_ms();
        let rows: Vec<String> = ds
            .iter()
            .map(|d| serde_json::to_string(d).unwrap_or_default())
            .collect();
        self.store
            .write(move |c| {
                let mut st = c.prepare_cached(
                    "INSERT INTO events_deliveries (due_ms, body) VALUES (?1, ?2)",
                )?;
                for r in &rows {
                    st.execute(params![now, r])?;
                }
                Ok(())
            })
            .await
            .map_err(internal)?;
        self.wake.notify_one();
        Ok(())
    }

    /// Puts one event on the bus named by `arn` (the [`stratus_core::Target`]
    /// side of EventBridge).
    pub(crate) async fn deliver_to_bus(&self, arn: &str, d: Delivery) -> AwsResult<String> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let (region, bus) = match parts.as_slice() {
            [_, _, "events", region, _, res] => match res.strip_prefix("event-bus/") {
                Some(bus) if !bus.is_empty() => (*region, bus),
                _ => {
                    return Err(AwsError::invalid_parameter(format!(
                        "'{arn}' is not an event bus ARN."
                    )));
                }
            },
            _ => {
                return Err(AwsError::invalid_parameter(format!(
                    "'{arn}' is not an event bus ARN."
                )));
            }
        };
        let (Some(source), Some(detail_type)) = (d.source.as_deref(), d.detail_type.as_deref())
        else {
            return Err(AwsError::invalid_parameter(
                "An event for an event bus needs a source and a detail type.",
            ));
        };
        let detail = match serde_json::from_str::<Value>(&d.body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return Err(AwsError::invalid_parameter(
                    "The detail of an event must be a JSON object.",
                ));
            }
        };
        let env = Envelope::new(
            &self.account,
            region,
            source,
            detail_type,
            d.resources.clone(),
            d.body.clone(),
            Some(detail),
            stratus_core::time::now_ms(),
        );
        let ds = self
            .route(region, bus, &env)
            .ok_or_else(|| crate::model::not_found(format!("Event bus {bus} does not exist.")))?;
        self.enqueue(ds).await?;
        Ok(env.id)
    }

    /// The deliveries `env` makes on bus `bus` of `region`, or `None` when
    /// the bus does not exist.
    pub(crate) fn route(
        &self,
        region: &str,
        bus: &str,
        env: &Envelope,
    ) -> Option<Vec<PendingDelivery>> {
        let st = self.read_state();
        let b = match st.regions.get(region).and_then(|r| r.get(bus)) {
            Some(b) => b,
            None if bus == crate::model::DEFAULT_BUS => return Some(Vec::new()),
            None => return None,
        };
        let mut out = Vec::new();
        for i in b.index.matching(&env.value) {
            if let Some(rule) = b.matchable.get(i) {
                out.extend(plan(region, rule, env));
            }
        }
        Some(out)
    }
}

/// Whether a target's error is retried: server errors (5xx) and throttling
/// (429) are; other client errors (the target does not exist, a bad
/// request, no permission) are not, and go to the dead-letter queue at once
/// (<https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html>).
fn retryable(e: &AwsError) -> bool {
    e.status >= 500
        || e.status == 429
        || e.code.contains("Throttl")
        || e.code == "TooManyRequestsException"
}

/// The worker: delivers due rows, at most [`PARALLEL`] at once.
pub(crate) async fn run(me: Arc<Events>) {
    let permits = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    loop {
        let now = stratus_core::time::now_ms();
        let due: Vec<(i64, String)> = me
            .store
            .read(|c| {
                let mut st = c.prepare_cached(
                    "SELECT id, body FROM events_deliveries WHERE due_ms <= ?1 ORDER BY due_ms, id LIMIT 512",
                )?;
                let rows = st.query_map(params![now], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .unwrap_or_default();
        for (id, body) in due {
            if !me
                .in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id)
            {
                continue;
            }
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                me.in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                break;
            };
            let me2 = me.clone();
            tokio::spawn(async move {
                attempt(&me2, id, &body).await;
                me2.in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                drop(permit);
                me2.wake.notify_one();
            });
        }
        let next: Option<i64> = me
            .store
            .read(|c| {
                c.query_row(
                    "SELECT MIN(due_ms) FROM events_deliveries WHERE due_ms > ?1",
                    params![now],
                    |r| r.get(0),
                )
            })
            .ok()
            .flatten();
        let wait = next.map_or(1000, |n| (n - now).clamp(5, 1000));
        tokio::select! {
            _ = me.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
        }
    }
}

async fn attempt(me: &Events, id: i64, body: &str) {
    let Ok(mut d) = serde_json::from_str::<PendingDelivery>(body) else {
        tracing::warn!(id, "dropping an unreadable pending EventBridge delivery");
        let _ = me
            .store
            .write(move |c| c.execute("DELETE FROM events_deliveries WHERE id = ?1", params![id]))
            .await;
        return;
    };
    let to_bus = stratus_core::Targets::service_of(&d.target_arn) == Some("events");
    let delivery = Delivery {
        // A bus receives the event itself: its detail, unless the target
        // transforms it.
        body: if to_bus && d.whole_event {
            d.detail.clone()
        } else {
            d.payload.clone()
        },
        source: Some(d.source.clone()),
        detail_type: Some(d.detail_type.clone()),
        resources: d.resources.clone(),
        // FIFO queues: the target's message group, deduplicated by event id.
        message_group_id: d.message_group_id.clone(),
        deduplication_id: d
            .message_group_id
            .as_ref()
            .map(|_| d.event_id.clone())
            .filter(|id| !id.is_empty()),
        ..Default::default()
    };
    let result = me.targets.deliver(&d.target_arn, delivery).await;
    let err = match result {
        Ok(_) => {
            let _ = me
                .store
                .write(move |c| {
                    c.execute("DELETE FROM events_deliveries WHERE id = ?1", params![id])
                })
                .await;
            return;
        }
        Err(e) => e,
    };
    d.attempts += 1;
    let now = stratus_core::time::now_ms();
    let age_s = (((now - d.first_ms) as f64) * me.time_scale / 1000.0) as i64;
    let exhausted = d.attempts > d.max_retries || age_s >= d.max_age_s;
    if !retryable(&err) || exhausted {
        tracing::info!(
            target = %d.target_arn, rule = %d.rule_arn, attempts = d.attempts,
            error = %err, "EventBridge gives up delivering an event"
        );
        if let Some(dlq) = d.dead_letter_arn.clone() {
            let attrs = BTreeMap::from([
                (
                    "RULE_ARN".to_string(),
                    MessageAttribute::string(&d.rule_arn),
                ),
                (
                    "TARGET_ARN".to_string(),
                    MessageAttribute::string(&d.target_arn),
                ),
                (
                    "ERROR_CODE".to_string(),
                    MessageAttribute::string(&err.code),
                ),
                (
                    "ERROR_MESSAGE".to_string(),
                    MessageAttribute::string(&err.message),
                ),
            ]);
            let dl = Delivery {
                body: d.payload.clone(),
                attributes: attrs,
                ..Default::default()
            };
            if let Err(e) = me.targets.deliver(&dlq, dl).await {
                tracing::warn!(dlq = %dlq, error = %e, "the dead-letter queue refused an event");
            }
        }
        let _ = me
            .store
            .write(move |c| c.execute("DELETE FROM events_deliveries WHERE id = ?1", params![id]))
            .await;
        return;
    }
    let shift = (d.attempts - 1).min(20);
    let backoff = (1000i64 << shift).min(MAX_BACKOFF_MS);
    let due = now + me.scaled_ms(backoff);
    let body = serde_json::to_string(&d).unwrap_or_default();
    let _ = me
        .store
        .write(move |c| {
            c.execute(
                "UPDATE events_deliveries SET due_ms = ?1, body = ?2 WHERE id = ?3",
                params![due, body, id],
            )
        })
        .await;
}
