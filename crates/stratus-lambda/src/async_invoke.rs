//! Asynchronous invocation (`InvocationType: Event`): the event queue, its
//! retries, event age, destinations and dead-letter queues; and the event
//! invoke configuration API that controls them.
//!
//! Rules followed ("Invoking a Lambda function asynchronously", "Error
//! handling and automatic retries", "Capturing records of Lambda
//! asynchronous invocations" in the Lambda Developer Guide):
//!
//! - Invoke answers 202 once the event is committed to the store (it
//!   survives SIGKILL); the 202's request id is the invocation's request id
//!   on every attempt.
//! - A function error (the function returned an error, timed out or its
//!   runtime crashed) is retried `MaximumRetryAttempts` times (0-2, default
//!   2), waiting 1 minute before the first retry and 2 minutes before the
//!   second.
//! - Throttles (429) and system errors (5xx) return the event to the queue
//!   and are retried with a delay growing exponentially from 1 second to 5
//!   minutes, until the event is older than `MaximumEventAgeInSeconds`
//!   (60-21,600, default 6 hours).
//! - The outcome goes to the configured destination (`OnSuccess` /
//!   `OnFailure`: an SQS queue, SNS topic, Lambda function or EventBridge
//!   bus) as an invocation record; failed events also go to the function's
//!   dead-letter queue (`DeadLetterConfig`, SQS or SNS) with the attributes
//!   `RequestID`, `ErrorCode` and `ErrorMessage`.
//!
//! Delays are divided by `--time-scale` (so tests can run the schedule in
//! seconds); function timeouts are not.
//!
//! Delivery is at least once: an event whose invocation finished but whose
//! outcome was not yet recorded when the server was killed runs again after
//! restart, and a destination may receive a record twice if the server was
//! killed between delivering it and forgetting the event.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use stratus_core::{AwsError, AwsResult, Delivery, FunctionRef, MessageAttribute, Targets, arn};
use stratus_store::rusqlite::{self, OptionalExtension, params};
use tokio::sync::Notify;

use crate::invoke::{InvokeRequest, InvokeResponse, InvokeTarget};
use crate::model::{DeadLetterConfig, FunctionRecord};
use crate::service::{Lambda, parse_body};

/// Largest asynchronous invocation payload: 1 MB (1,048,576 bytes; the
/// Invoke API reference: "For asynchronous invocations, the maximum payload
/// size is 1 MB").
pub const MAX_ASYNC_PAYLOAD: usize = 1_048_576;

/// `MaximumRetryAttempts` default (2) and range 0-2.
pub const DEFAULT_MAX_RETRY_ATTEMPTS: u32 = 2;
/// `MaximumEventAgeInSeconds` default: 6 hours (21,600 s); range 60-21,600.
pub const DEFAULT_MAX_EVENT_AGE_S: u32 = 21_600;

/// Delays before the first and second retry of a function error: 1 and 2
/// minutes, in ms.
const FUNCTION_ERROR_DELAYS_MS: [i64; 2] = [60_000, 120_000];
/// Throttle / system error backoff: from 1 s, doubling, to at most 5 minutes.
const BACKOFF_FIRST_MS: i64 = 1_000;
const BACKOFF_MAX_MS: i64 = 300_000;

/// Events of one function running at once. The function's own
/// concurrency limits apply on top (a throttled event waits its backoff);
/// events beyond this wait in memory for a running one to finish, so a
/// burst of thousands of events does not turn into thousands of throttles.
const MAX_IN_FLIGHT_PER_FUNCTION: usize = 32;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS lambda_async_events (
    id            TEXT PRIMARY KEY,
    region        TEXT NOT NULL,
    function_name TEXT NOT NULL,
    qualifier     TEXT,
    payload       BLOB NOT NULL,
    received_ms   INTEGER NOT NULL,
    due_ms        INTEGER NOT NULL,
    function_errors INTEGER NOT NULL DEFAULT 0,
    invocations   INTEGER NOT NULL DEFAULT 0,
    backoffs      INTEGER NOT NULL DEFAULT 0,
    last_response TEXT
);
CREATE TABLE IF NOT EXISTS lambda_async_metrics (
    region        TEXT NOT NULL,
    function_name TEXT NOT NULL,
    minute        INTEGER NOT NULL,
    events_received INTEGER NOT NULL DEFAULT 0,
    events_dropped  INTEGER NOT NULL DEFAULT 0,
    destination_delivery_failures INTEGER NOT NULL DEFAULT 0,
    dead_letter_errors INTEGER NOT NULL DEFAULT 0,
    event_age_sum_ms  INTEGER NOT NULL DEFAULT 0,
    event_age_max_ms  INTEGER NOT NULL DEFAULT 0,
    event_age_count   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (region, function_name, minute)
);
"#;

const KIND_CONFIG: &str = "event-invoke-config";

/// The in-memory side of the queue: which event is due when.
#[derive(Default)]
pub(crate) struct AsyncQueue {
    /// `(due_ms, event id, function key)`, earliest first.
    schedule: Mutex<BTreeSet<(i64, String, String)>>,
    wake: Notify,
    targets: OnceLock<Targets>,
    /// Per function key (`region/name`): events running, events waiting
    /// for one of them to finish.
    running: Mutex<std::collections::HashMap<String, (usize, std::collections::VecDeque<String>)>>,
}

fn function_key(region: &str, name: &str) -> String {
    format!("{region}/{name}")
}

impl AsyncQueue {
    fn push(&self, due_ms: i64, id: String, fkey: String) {
        self.schedule
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((due_ms, id, fkey));
        self.wake.notify_one();
    }
}

/// `FunctionEventInvokeConfig` as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct EventInvokeConfig {
    /// Seconds since the epoch (rest-json `Date`).
    pub last_modified: f64,
    /// The function ARN, qualified when the configuration is for a version
    /// or alias.
    pub function_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_retry_attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_event_age_in_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_config: Option<DestinationConfig>,
}

/// `DestinationConfig`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct DestinationConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_success: Option<Destination>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<Destination>,
}

/// `OnSuccess` / `OnFailure`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Destination {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ConfigInput {
    maximum_retry_attempts: Option<i64>,
    maximum_event_age_in_seconds: Option<i64>,
    destination_config: Option<DestinationConfig>,
}

/// The destination services an asynchronous invocation record can go to.
const DESTINATION_SERVICES: [&str; 4] = ["sqs", "sns", "lambda", "events"];

/// Checks a destination ARN: an SQS queue, SNS topic, Lambda function or
/// EventBridge event bus ARN (the `DestinationArn` shape's pattern, and
/// the destination types "Capturing records of Lambda asynchronous
/// invocations" lists).
fn check_destination(which: &str, arn_str: &str) -> AwsResult<()> {
    if arn_str.is_empty() {
        return Ok(());
    }
    if arn_str.len() > 350 {
        return Err(AwsError::validation_errors(&[format!(
            "Value '{arn_str}' at 'destinationConfig.{which}.destination' failed to satisfy constraint: Member must have length less than or equal to 350"
        )]));
    }
    let parts: Vec<&str> = arn_str.splitn(6, ':').collect();
    let well_formed = parts.len() == 6 && parts[0] == "arn" && parts[1].starts_with("aws");
    if !well_formed {
        return Err(AwsError::validation_errors(&[format!(
            "Value '{arn_str}' at 'destinationConfig.{which}.destination' failed to satisfy constraint: Member must satisfy regular expression pattern: $|kafka://([^.]([a-zA-Z0-9\\-_.]{{0,248}}))|arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\\-])+:([a-z]{{2}}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{{1}})?:(\\d{{12}})?:(.*)"
        )]));
    }
    let service = parts[2];
    let resource = parts[5];
    let ok = match service {
        "sqs" | "sns" => !resource.is_empty() && !resource.contains(':'),
        "lambda" => resource.starts_with("function:") && resource.len() > "function:".len(),
        "events" => resource.starts_with("event-bus/") && resource.len() > "event-bus/".len(),
        _ => false,
    };
    if !ok {
        return Err(AwsError::invalid_parameter(format!(
            "The destination ARN {arn_str} is invalid: an asynchronous invocation destination must be an Amazon SQS queue, Amazon SNS topic, Lambda function or Amazon EventBridge event bus ({}).",
            DESTINATION_SERVICES.join(", ")
        )));
    }
    Ok(())
}

/// Checks and normalises a function's `DeadLetterConfig`: `TargetArn` must
/// be an SQS queue or SNS topic ARN ("Dead-letter queues" in the Lambda
/// Developer Guide); an empty `TargetArn` removes it.
///
/// Errors: `InvalidParameterValueException` (400) for any other ARN.
pub fn dead_letter_config(input: Option<&DeadLetterConfig>) -> AwsResult<Option<DeadLetterConfig>> {
    let Some(arn_str) = input.and_then(|d| d.target_arn.as_deref()) else {
        return Ok(None);
    };
    if arn_str.is_empty() {
        return Ok(None);
    }
    let parts: Vec<&str> = arn_str.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && matches!(parts[2], "sqs" | "sns")
        && !parts[5].is_empty();
    if !ok {
        return Err(AwsError::invalid_parameter(format!(
            "The dead-letter target ARN {arn_str} is invalid: it must be an Amazon SQS queue or Amazon SNS topic ARN."
        )));
    }
    Ok(Some(DeadLetterConfig {
        target_arn: Some(arn_str.to_string()),
    }))
}

fn config_id(name: &str, qualifier: &str) -> String {
    format!("{name}:{qualifier}")
}

/// Adds to the async metrics of a function's current minute.
#[allow(clippy::too_many_arguments)]
fn add_metrics(
    c: &rusqlite::Connection,
    region: &str,
    function_name: &str,
    now_ms: i64,
    received: i64,
    dropped: i64,
    delivery_failures: i64,
    dead_letter_errors: i64,
    age_ms: Option<i64>,
) -> rusqlite::Result<()> {
    let minute = now_ms - now_ms.rem_euclid(60_000);
    let (sum, count) = age_ms.map_or((0, 0), |a| (a, 1));
    c.prepare_cached(
        "INSERT INTO lambda_async_metrics (region, function_name, minute, events_received, events_dropped,
             destination_delivery_failures, dead_letter_errors, event_age_sum_ms, event_age_max_ms, event_age_count)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9)
         ON CONFLICT (region, function_name, minute) DO UPDATE SET
             events_received = events_received + excluded.events_received,
             events_dropped = events_dropped + excluded.events_dropped,
             destination_delivery_failures = destination_delivery_failures + excluded.destination_delivery_failures,
             dead_letter_errors = dead_letter_errors + excluded.dead_letter_errors,
             event_age_sum_ms = event_age_sum_ms + excluded.event_age_sum_ms,
             event_age_max_ms = MAX(event_age_max_ms, excluded.event_age_max_ms),
             event_age_count = event_age_count + excluded.event_age_count",
    )?
    .execute(params![
        region,
        function_name,
        minute,
        received,
        dropped,
        delivery_failures,
        dead_letter_errors,
        sum,
        count
    ])?;
    Ok(())
}

/// One queued event as stored.
struct QueuedEvent {
    id: String,
    region: String,
    function_name: String,
    qualifier: Option<String>,
    payload: Vec<u8>,
    received_ms: i64,
    function_errors: u32,
    invocations: u32,
    backoffs: u32,
    last_response: Option<Value>,
}

/// How an event ended.
enum Outcome {
    Success,
    RetriesExhausted,
    EventAgeExceeded,
}

impl Outcome {
    fn condition(&self) -> &'static str {
        match self {
            Outcome::Success => "Success",
            Outcome::RetriesExhausted => "RetriesExhausted",
            Outcome::EventAgeExceeded => "EventAgeExceeded",
        }
    }
}

impl Lambda {
    /// Creates the queue's tables. Called once when the service opens.
    pub(crate) fn open_async_queue(&self) -> Result<(), String> {
        self.store.migrate(SCHEMA).map_err(|e| e.to_string())
    }

    fn scaled(&self, ms: i64) -> i64 {
        let s = self.config.time_scale;
        if s.is_finite() && s > 0.0 {
            ((ms as f64) / s).round() as i64
        } else {
            ms
        }
    }

    /// Commits an event and answers 202 (Invoke with `InvocationType: Event`).
    pub(crate) async fn enqueue_event(
        self: &Arc<Self>,
        region: &str,
        rec: &FunctionRecord,
        target: &InvokeTarget,
        qualifier: Option<String>,
        payload: Bytes,
    ) -> AwsResult<InvokeResponse> {
        // The qualifier as invoked: from `FunctionName` (an ARN or
        // `name:alias`) or the `Qualifier` parameter.
        let qualifier = target
            .invoked_arn
            .strip_prefix(&format!(
                "{}:",
                arn::function_arn(region, &self.config.account_id, &rec.config.function_name)
            ))
            .map(str::to_string)
            .or(qualifier);
        let id = stratus_core::request_id();
        let now = stratus_core::time::now_ms();
        let (rid, r, name, q, p) = (
            id.clone(),
            region.to_string(),
            rec.config.function_name.clone(),
            qualifier,
            payload.to_vec(),
        );
        self.store
            .write(move |c| {
                c.prepare_cached(
                    "INSERT INTO lambda_async_events (id, region, function_name, qualifier, payload, received_ms, due_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                )?
                .execute(params![rid, r, name, q, p, now])?;
                add_metrics(c, &r, &name, now, 1, 0, 0, 0, None)
            })
            .await?;
        self.async_queue.push(
            now,
            id.clone(),
            function_key(region, &rec.config.function_name),
        );
        Ok(InvokeResponse {
            status: 202,
            request_id: Some(id),
            function_error: None,
            log_result: None,
            executed_version: None,
            payload: Bytes::new(),
        })
    }

    /// Starts the asynchronous event processor. `targets` carries
    /// destination and dead-letter deliveries to the other services. Events
    /// a previous run left in the queue are picked up.
    pub fn spawn_async_processor(
        self: &Arc<Self>,
        targets: Targets,
    ) -> tokio::task::JoinHandle<()> {
        let _ = self.async_queue.targets.set(targets);
        if let Ok(rows) = self.store.read(|c| {
            let mut st =
                c.prepare("SELECT due_ms, id, region, function_name FROM lambda_async_events")?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        function_key(&r.get::<_, String>(2)?, &r.get::<_, String>(3)?),
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        }) {
            let mut s = self
                .async_queue
                .schedule
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            s.extend(rows);
        }
        let me = self.clone();
        tokio::spawn(async move { me.process_queue().await })
    }

    async fn process_queue(self: Arc<Self>) {
        loop {
            let notified = self.async_queue.wake.notified();
            let now = stratus_core::time::now_ms();
            // `Ok(Some)`: due now; `Ok(None)`: queue empty; `Err(ms)`: wait.
            let next: Result<Option<(i64, String, String)>, u64> = {
                let mut s = self
                    .async_queue
                    .schedule
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                match s.first() {
                    Some((due, _, _)) if *due <= now => Ok(s.pop_first()),
                    Some((due, _, _)) => Err((*due - now).max(1) as u64),
                    None => Ok(None),
                }
            };
            match next {
                Ok(Some((_, id, fkey))) => self.dispatch(id, fkey),
                Ok(None) => notified.await,
                Err(wait) => {
                    let _ = tokio::time::timeout(Duration::from_millis(wait), notified).await;
                }
            }
        }
    }

    /// Runs a due event now, or parks it behind the function's running
    /// events when it has [`MAX_IN_FLIGHT_PER_FUNCTION`] of them.
    fn dispatch(self: &Arc<Self>, id: String, fkey: String) {
        {
            let mut running = self
                .async_queue
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let entry = running.entry(fkey.clone()).or_default();
            if entry.0 >= MAX_IN_FLIGHT_PER_FUNCTION {
                entry.1.push_back(id);
                return;
            }
            entry.0 += 1;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let mut id = id;
            loop {
                me.process_event(&id).await;
                // Hand the slot to the next parked event of the function.
                let next = {
                    let mut running = me
                        .async_queue
                        .running
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    match running.get_mut(&fkey) {
                        Some(e) => match e.1.pop_front() {
                            Some(n) => Some(n),
                            None => {
                                e.0 -= 1;
                                if e.0 == 0 {
                                    running.remove(&fkey);
                                }
                                None
                            }
                        },
                        None => None,
                    }
                };
                match next {
                    Some(n) => id = n,
                    None => return,
                }
            }
        });
    }

    fn load_event(&self, id: &str) -> Option<QueuedEvent> {
        let id = id.to_string();
        self.store
            .read(move |c| {
                c.query_row(
                    "SELECT region, function_name, qualifier, payload, received_ms, function_errors, invocations, backoffs, last_response
                     FROM lambda_async_events WHERE id = ?1",
                    params![id],
                    |r| {
                        Ok(QueuedEvent {
                            id: id.clone(),
                            region: r.get(0)?,
                            function_name: r.get(1)?,
                            qualifier: r.get(2)?,
                            payload: r.get(3)?,
                            received_ms: r.get(4)?,
                            function_errors: r.get(5)?,
                            invocations: r.get(6)?,
                            backoffs: r.get(7)?,
                            last_response: r
                                .get::<_, Option<String>>(8)?
                                .and_then(|s| serde_json::from_str(&s).ok()),
                        })
                    },
                )
                .optional()
            })
            .ok()
            .flatten()
    }

    /// The event invoke configuration that applies to an invocation of
    /// `qualifier` (`None` = unqualified, i.e. `$LATEST`).
    fn effective_config(
        &self,
        region: &str,
        name: &str,
        qualifier: Option<&str>,
    ) -> Option<EventInvokeConfig> {
        let q = qualifier.unwrap_or("$LATEST");
        self.store
            .get(KIND_CONFIG, region, &config_id(name, q))
            .ok()
            .flatten()
            .and_then(|s| serde_json::from_str(&s).ok())
    }

    async fn process_event(self: &Arc<Self>, id: &str) {
        let Some(mut ev) = self.load_event(id) else {
            return;
        };
        let cfg = self.effective_config(&ev.region, &ev.function_name, ev.qualifier.as_deref());
        let max_retries = cfg
            .as_ref()
            .and_then(|c| c.maximum_retry_attempts)
            .unwrap_or(DEFAULT_MAX_RETRY_ATTEMPTS);
        let max_age_ms = self.scaled(
            cfg.as_ref()
                .and_then(|c| c.maximum_event_age_in_seconds)
                .unwrap_or(DEFAULT_MAX_EVENT_AGE_S) as i64
                * 1000,
        );
        let now = stratus_core::time::now_ms();
        if now - ev.received_ms > max_age_ms {
            self.finish(&ev, cfg.as_ref(), Outcome::EventAgeExceeded, None)
                .await;
            return;
        }
        let req = InvokeRequest {
            function_name: ev.function_name.clone(),
            qualifier: ev.qualifier.clone(),
            invocation_type: Some("RequestResponse".into()),
            log_type: None,
            client_context: None,
            payload: Bytes::from(ev.payload.clone()),
        };
        let age_ms = now - ev.received_ms;
        let result = self.invoke_as(&ev.region, req, Some(ev.id.clone())).await;
        match result {
            Ok(resp) => {
                ev.invocations += 1;
                let response = json!({
                    "statusCode": 200,
                    "executedVersion": resp.executed_version.clone().unwrap_or_else(|| "$LATEST".into()),
                    "functionError": resp.function_error,
                    "payload": serde_json::from_slice::<Value>(&resp.payload)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&resp.payload).into_owned())),
                });
                if resp.function_error.is_none() {
                    self.finish(
                        &ev,
                        cfg.as_ref(),
                        Outcome::Success,
                        Some((response, age_ms)),
                    )
                    .await;
                } else if ev.function_errors >= max_retries {
                    ev.function_errors += 1;
                    self.finish(
                        &ev,
                        cfg.as_ref(),
                        Outcome::RetriesExhausted,
                        Some((response, age_ms)),
                    )
                    .await;
                } else {
                    let delay = FUNCTION_ERROR_DELAYS_MS[ev.function_errors.min(1) as usize];
                    ev.function_errors += 1;
                    let due = now + self.scaled(delay);
                    if due - ev.received_ms > max_age_ms {
                        // The retry would run after the event's maximum age.
                        self.finish(
                            &ev,
                            cfg.as_ref(),
                            Outcome::EventAgeExceeded,
                            Some((response, age_ms)),
                        )
                        .await;
                    } else {
                        self.reschedule(&ev, due, Some(&response), Some(age_ms))
                            .await;
                    }
                }
            }
            Err(e) if e.status == 429 || e.status == 409 || e.status >= 500 => {
                // Throttled, a system error, or the function is between
                // states (Pending, an update in progress: 409
                // ResourceConflictException): back to the queue.
                let delay = (BACKOFF_FIRST_MS << ev.backoffs.min(16)).min(BACKOFF_MAX_MS);
                ev.backoffs += 1;
                let due = now + self.scaled(delay);
                if due - ev.received_ms > max_age_ms {
                    self.finish(&ev, cfg.as_ref(), Outcome::EventAgeExceeded, None)
                        .await;
                } else {
                    self.reschedule(&ev, due, None, None).await;
                }
            }
            Err(e) => {
                // The function is gone or cannot run (deleted, failed
                // state): the event cannot be processed.
                tracing::warn!(
                    "asynchronous event {} for {} dropped: {}: {}",
                    ev.id,
                    ev.function_name,
                    e.code,
                    e.message
                );
                let response = json!({
                    "statusCode": e.status,
                    "executedVersion": Value::Null,
                    "functionError": Value::Null,
                    "payload": {"errorType": e.code, "errorMessage": e.message},
                });
                self.finish(
                    &ev,
                    cfg.as_ref(),
                    Outcome::RetriesExhausted,
                    Some((response, age_ms)),
                )
                .await;
            }
        }
    }

    async fn reschedule(
        &self,
        ev: &QueuedEvent,
        due: i64,
        response: Option<&Value>,
        age_ms: Option<i64>,
    ) {
        let (id, fe, inv, bo) = (
            ev.id.clone(),
            ev.function_errors,
            ev.invocations,
            ev.backoffs,
        );
        let resp = response.map(Value::to_string);
        let (region, name) = (ev.region.clone(), ev.function_name.clone());
        let now = stratus_core::time::now_ms();
        let written = self
            .store
            .write(move |c| {
                c.prepare_cached(
                    "UPDATE lambda_async_events SET due_ms = ?2, function_errors = ?3, invocations = ?4, backoffs = ?5,
                         last_response = COALESCE(?6, last_response) WHERE id = ?1",
                )?
                .execute(params![id, due, fe, inv, bo, resp])?;
                if age_ms.is_some() {
                    add_metrics(c, &region, &name, now, 0, 0, 0, 0, age_ms)?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = written {
            tracing::warn!("asynchronous event {}: cannot record its retry: {e}", ev.id);
        }
        self.async_queue.push(
            due,
            ev.id.clone(),
            function_key(&ev.region, &ev.function_name),
        );
    }

    /// Sends the outcome to its destination and dead-letter queue, then
    /// forgets the event.
    async fn finish(
        self: &Arc<Self>,
        ev: &QueuedEvent,
        cfg: Option<&EventInvokeConfig>,
        outcome: Outcome,
        last: Option<(Value, i64)>,
    ) {
        let targets = self.async_queue.targets.get().cloned().unwrap_or_default();
        let (response, age_ms) = match last {
            Some((r, a)) => (Some(r), Some(a)),
            None => (ev.last_response.clone(), None),
        };
        let function_arn =
            arn::function_arn(&ev.region, &self.config.account_id, &ev.function_name);
        let qualified = format!(
            "{function_arn}:{}",
            ev.qualifier.as_deref().unwrap_or("$LATEST")
        );
        let request_payload = serde_json::from_slice::<Value>(&ev.payload)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&ev.payload).into_owned()));
        let mut record = json!({
            "version": "1.0",
            "timestamp": stratus_core::time::iso_ms(stratus_core::time::now_ms()),
            "requestContext": {
                "requestId": ev.id,
                "functionArn": qualified,
                "condition": outcome.condition(),
                "approximateInvokeCount": ev.invocations,
            },
            "requestPayload": request_payload,
        });
        if let Some(r) = &response {
            let mut ctx = json!({
                "statusCode": r["statusCode"],
                "executedVersion": r["executedVersion"],
            });
            if let Some(fe) = r["functionError"].as_str() {
                ctx["functionError"] = Value::from(fe);
            }
            record["responseContext"] = ctx;
            record["responsePayload"] = r["payload"].clone();
        }
        let success = matches!(outcome, Outcome::Success);
        let destination = cfg
            .and_then(|c| c.destination_config.as_ref())
            .and_then(|d| {
                if success {
                    d.on_success.as_ref()
                } else {
                    d.on_failure.as_ref()
                }
            })
            .and_then(|d| d.destination.clone())
            .filter(|d| !d.is_empty());
        let mut delivery_failures = 0;
        if let Some(dest) = destination {
            let body = record.to_string();
            let delivery = if Targets::service_of(&dest) == Some("events") {
                Delivery {
                    body,
                    source: Some("lambda".into()),
                    detail_type: Some(if success {
                        "Lambda Function Invocation Result - Success".into()
                    } else {
                        "Lambda Function Invocation Result - Failure".into()
                    }),
                    resources: vec![qualified.clone()],
                    ..Default::default()
                }
            } else {
                Delivery::body(body)
            };
            if let Err(e) = deliver_retrying(&targets, &dest, delivery).await {
                tracing::warn!(
                    "asynchronous event {}: delivery to destination {dest} failed: {}: {}",
                    ev.id,
                    e.code,
                    e.message
                );
                delivery_failures += 1;
            }
        }
        let mut dead_letter_errors = 0;
        if !success {
            let dlq = self
                .load(&ev.region, &ev.function_name)
                .ok()
                .and_then(|r| r.config.dead_letter_config)
                .and_then(|d| d.target_arn);
            if let Some(dlq) = dlq {
                let (code, message) = match &response {
                    Some(r) => (
                        r["statusCode"].as_i64().unwrap_or(200).to_string(),
                        r["payload"]["errorMessage"]
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| r["payload"].to_string()),
                    ),
                    None => (
                        "429".to_string(),
                        "The event was not processed within its maximum event age.".to_string(),
                    ),
                };
                let mut message: String = message;
                if message.len() > 1024 {
                    let mut cut = 1024;
                    while !message.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    message.truncate(cut);
                }
                let mut d = Delivery::body(String::from_utf8_lossy(&ev.payload).into_owned());
                d.attributes
                    .insert("RequestID".into(), MessageAttribute::string(ev.id.clone()));
                d.attributes.insert(
                    "ErrorCode".into(),
                    MessageAttribute {
                        data_type: "Number".into(),
                        string_value: Some(code),
                        binary_value: None,
                    },
                );
                d.attributes
                    .insert("ErrorMessage".into(), MessageAttribute::string(message));
                if let Err(e) = deliver_retrying(&targets, &dlq, d).await {
                    tracing::warn!(
                        "asynchronous event {}: delivery to dead-letter queue {dlq} failed: {}: {}",
                        ev.id,
                        e.code,
                        e.message
                    );
                    dead_letter_errors += 1;
                }
            }
        }
        let dropped = i64::from(!success);
        let (id, region, name) = (ev.id.clone(), ev.region.clone(), ev.function_name.clone());
        let now = stratus_core::time::now_ms();
        let written = self
            .store
            .write(move |c| {
                c.prepare_cached("DELETE FROM lambda_async_events WHERE id = ?1")?
                    .execute(params![id])?;
                add_metrics(
                    c,
                    &region,
                    &name,
                    now,
                    0,
                    dropped,
                    delivery_failures,
                    dead_letter_errors,
                    age_ms,
                )
            })
            .await;
        if let Err(e) = written {
            tracing::warn!("asynchronous event {}: cannot forget it: {e}", ev.id);
        }
    }

    // ------------------------------------------------------------------
    // Event invoke configuration API
    // ------------------------------------------------------------------

    /// Validates the parts of a Put/Update request body.
    fn config_input(body: &[u8]) -> AwsResult<ConfigInput> {
        let input: ConfigInput = parse_body(body)?;
        let mut failures = Vec::new();
        if let Some(n) = input.maximum_retry_attempts {
            if n < 0 {
                failures.push(format!("Value '{n}' at 'maximumRetryAttempts' failed to satisfy constraint: Member must have value greater than or equal to 0"));
            } else if n > 2 {
                failures.push(format!("Value '{n}' at 'maximumRetryAttempts' failed to satisfy constraint: Member must have value less than or equal to 2"));
            }
        }
        if let Some(n) = input.maximum_event_age_in_seconds {
            if n < 60 {
                failures.push(format!("Value '{n}' at 'maximumEventAgeInSeconds' failed to satisfy constraint: Member must have value greater than or equal to 60"));
            } else if n > 21_600 {
                failures.push(format!("Value '{n}' at 'maximumEventAgeInSeconds' failed to satisfy constraint: Member must have value less than or equal to 21600"));
            }
        }
        if !failures.is_empty() {
            return Err(AwsError::validation_errors(&failures));
        }
        if let Some(d) = &input.destination_config {
            if let Some(a) = d.on_success.as_ref().and_then(|x| x.destination.as_deref()) {
                check_destination("onSuccess", a)?;
            }
            if let Some(a) = d.on_failure.as_ref().and_then(|x| x.destination.as_deref()) {
                check_destination("onFailure", a)?;
            }
        }
        Ok(input)
    }

    /// The function name and qualifier a config request addresses, checked
    /// to exist. Errors: `ResourceNotFoundException` (404).
    fn config_target(
        &self,
        region: &str,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> AwsResult<(String, String, String)> {
        let r = FunctionRef::parse(function_name, "functionName")?;
        // Checks the function, version or alias exists, and that a qualifier
        // in the name agrees with the Qualifier parameter.
        self.resolve(region, function_name, qualifier)?;
        let q = r
            .qualifier
            .clone()
            .or_else(|| qualifier.map(str::to_string));
        let base = arn::function_arn(region, &self.config.account_id, &r.name);
        let shown = match &q {
            Some(q) => format!("{base}:{q}"),
            None => base,
        };
        Ok((r.name, q.unwrap_or_else(|| "$LATEST".into()), shown))
    }

    /// PutFunctionEventInvokeConfig: replaces the configuration (fields not
    /// given take their defaults).
    ///
    /// Errors: `ResourceNotFoundException`, `InvalidParameterValueException`,
    /// `ValidationException`.
    pub async fn put_event_invoke_config(
        &self,
        region: &str,
        function_name: &str,
        qualifier: Option<&str>,
        body: &[u8],
    ) -> AwsResult<Value> {
        let input = Self::config_input(body)?;
        let (name, q, shown) = self.config_target(region, function_name, qualifier)?;
        let _g = self.write_lock.lock().await;
        let cfg = EventInvokeConfig {
            last_modified: stratus_core::time::now_ms() as f64 / 1000.0,
            function_arn: shown,
            maximum_retry_attempts: Some(
                input
                    .maximum_retry_attempts
                    .map_or(DEFAULT_MAX_RETRY_ATTEMPTS, |n| n as u32),
            ),
            maximum_event_age_in_seconds: Some(
                input
                    .maximum_event_age_in_seconds
                    .map_or(DEFAULT_MAX_EVENT_AGE_S, |n| n as u32),
            ),
            destination_config: Some(normalize_destinations(
                input.destination_config.unwrap_or_default(),
            )),
        };
        self.store_config(region, &name, &q, &cfg)?;
        Ok(serde_json::to_value(cfg).unwrap_or_default())
    }

    /// UpdateFunctionEventInvokeConfig: changes only the fields given.
    ///
    /// Errors: as Put, and `ResourceNotFoundException` when the function has
    /// no configuration yet.
    pub async fn update_event_invoke_config(
        &self,
        region: &str,
        function_name: &str,
        qualifier: Option<&str>,
        body: &[u8],
    ) -> AwsResult<Value> {
        let input = Self::config_input(body)?;
        let (name, q, shown) = self.config_target(region, function_name, qualifier)?;
        let _g = self.write_lock.lock().await;
        let mut cfg = self.load_config(region, &name, &q, &shown)?;
        cfg.last_modified = stratus_core::time::now_ms() as f64 / 1000.0;
        if let Some(n) = input.maximum_retry_attempts {
            cfg.maximum_retry_attempts = Some(n as u32);
        }
        if let Some(n) = input.maximum_event_age_in_seconds {
            cfg.maximum_event_age_in_seconds = Some(n as u32);
        }
        if let Some(d) = input.destination_config {
            let mut cur = cfg.destination_config.take().unwrap_or_default();
            if d.on_success.is_some() {
                cur.on_success = d.on_success;
            }
            if d.on_failure.is_some() {
                cur.on_failure = d.on_failure;
            }
            cfg.destination_config = Some(normalize_destinations(cur));
        }
        self.store_config(region, &name, &q, &cfg)?;
        Ok(serde_json::to_value(cfg).unwrap_or_default())
    }

    /// GetFunctionEventInvokeConfig.
    ///
    /// Errors: `ResourceNotFoundException` (404) when none is configured.
    pub fn get_event_invoke_config(
        &self,
        region: &str,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> AwsResult<Value> {
        let (name, q, shown) = self.config_target(region, function_name, qualifier)?;
        let cfg = self.load_config(region, &name, &q, &shown)?;
        Ok(serde_json::to_value(cfg).unwrap_or_default())
    }

    /// DeleteFunctionEventInvokeConfig (204).
    ///
    /// Errors: `ResourceNotFoundException` (404) when none is configured.
    pub async fn delete_event_invoke_config(
        &self,
        region: &str,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> AwsResult<()> {
        let (name, q, shown) = self.config_target(region, function_name, qualifier)?;
        let _g = self.write_lock.lock().await;
        if !self
            .store
            .delete(KIND_CONFIG, region, &config_id(&name, &q))?
        {
            return Err(no_config(&shown));
        }
        Ok(())
    }

    /// ListFunctionEventInvokeConfigs: every configuration of a function
    /// (all qualifiers), `MaxItems` 1-50 (default 50), `Marker` paging.
    ///
    /// Errors: `ResourceNotFoundException` for an unknown function;
    /// `ValidationException` for MaxItems out of range.
    pub fn list_event_invoke_configs(
        &self,
        region: &str,
        function_name: &str,
        marker: Option<&str>,
        max_items: Option<&str>,
    ) -> AwsResult<Value> {
        let r = FunctionRef::parse(function_name, "functionName")?;
        self.resolve(region, function_name, None)?;
        let max = match max_items {
            None => 50,
            Some(s) => match s.parse::<i64>() {
                Ok(n) if (1..=50).contains(&n) => n as usize,
                _ => {
                    return Err(AwsError::validation_errors(&[format!(
                        "Value '{s}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 50"
                    )]));
                }
            },
        };
        let prefix = format!("{}:", r.name);
        let mut all: Vec<(String, EventInvokeConfig)> = self
            .store
            .list(KIND_CONFIG, region)?
            .into_iter()
            .filter(|(id, _)| id.starts_with(&prefix))
            .filter_map(|(id, body)| serde_json::from_str(&body).ok().map(|c| (id, c)))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        let start = marker
            .map(|m| {
                all.iter()
                    .position(|(id, _)| id.as_str() > m)
                    .unwrap_or(all.len())
            })
            .unwrap_or(0);
        let page: Vec<_> = all.iter().skip(start).take(max).collect();
        let next = if start + page.len() < all.len() {
            page.last().map(|(id, _)| id.clone())
        } else {
            None
        };
        let mut out = json!({
            "FunctionEventInvokeConfigs": page.iter().map(|(_, c)| serde_json::to_value(c).unwrap_or_default()).collect::<Vec<_>>(),
        });
        if let Some(n) = next {
            out["NextMarker"] = Value::from(n);
        }
        Ok(out)
    }

    fn store_config(
        &self,
        region: &str,
        name: &str,
        q: &str,
        cfg: &EventInvokeConfig,
    ) -> AwsResult<()> {
        let body = serde_json::to_string(cfg).map_err(|e| AwsError::service(e.to_string()))?;
        self.store
            .put(KIND_CONFIG, region, &config_id(name, q), &body)?;
        Ok(())
    }

    fn load_config(
        &self,
        region: &str,
        name: &str,
        q: &str,
        shown: &str,
    ) -> AwsResult<EventInvokeConfig> {
        self.store
            .get(KIND_CONFIG, region, &config_id(name, q))?
            .and_then(|s| serde_json::from_str(&s).ok())
            .ok_or_else(|| no_config(shown))
    }

    /// Forgets the event invoke configurations of a deleted function (or of
    /// one deleted version or alias when `qualifier` is given).
    pub(crate) fn delete_event_invoke_configs(
        &self,
        region: &str,
        name: &str,
        qualifier: Option<&str>,
    ) {
        let ids: Vec<String> = match qualifier {
            Some(q) => vec![config_id(name, q)],
            None => self
                .store
                .list(KIND_CONFIG, region)
                .unwrap_or_default()
                .into_iter()
                .map(|(id, _)| id)
                .filter(|id| id.starts_with(&format!("{name}:")))
                .collect(),
        };
        for id in ids {
            let _ = self.store.delete(KIND_CONFIG, region, &id);
        }
    }
}

/// Delivers to a destination, retrying a failure of the receiving service
/// itself (5xx: its store was busy, it is starting) up to 5 times over about
/// 3 seconds; a refusal (4xx: no such queue, too large) is final.
async fn deliver_retrying(targets: &Targets, arn: &str, delivery: Delivery) -> AwsResult<String> {
    let mut attempt = 0u32;
    loop {
        match targets.deliver(arn, delivery.clone()).await {
            Err(e) if e.status >= 500 && attempt < 5 => {
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                attempt += 1;
            }
            r => return r,
        }
    }
}

fn normalize_destinations(d: DestinationConfig) -> DestinationConfig {
    let keep = |x: Option<Destination>| {
        x.filter(|d| d.destination.as_deref().is_some_and(|s| !s.is_empty()))
    };
    DestinationConfig {
        on_success: keep(d.on_success),
        on_failure: keep(d.on_failure),
    }
}

fn no_config(shown: &str) -> AwsError {
    AwsError::not_found(format!(
        "The function {shown} doesn't have an EventInvokeConfig"
    ))
}

/// The Lambda service as a delivery target: a delivery to a function ARN
/// (an SNS subscription, an EventBridge target, a destination) is an
/// asynchronous invocation of it with the delivery's body as the event.
pub struct AsyncInvokeTarget(pub Arc<Lambda>);

impl stratus_core::Target for AsyncInvokeTarget {
    fn deliver<'a>(
        &'a self,
        target_arn: &'a str,
        delivery: Delivery,
    ) -> stratus_core::targets::BoxFuture<'a, AwsResult<String>> {
        Box::pin(async move {
            let r = FunctionRef::parse(target_arn, "functionName")?;
            let region = r
                .region
                .clone()
                .unwrap_or_else(|| stratus_core::DEFAULT_REGION.to_string());
            let resp = self
                .0
                .invoke(
                    &region,
                    InvokeRequest {
                        function_name: target_arn.to_string(),
                        qualifier: None,
                        invocation_type: Some("Event".into()),
                        log_type: None,
                        client_context: None,
                        payload: Bytes::from(delivery.body),
                    },
                )
                .await?;
            Ok(resp.request_id.unwrap_or_default())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_checked_by_type() {
        assert!(check_destination("onSuccess", "arn:aws:sqs:us-east-1:123456789012:q").is_ok());
        assert!(check_destination("onSuccess", "arn:aws:sns:us-east-1:123456789012:t").is_ok());
        assert!(
            check_destination(
                "onSuccess",
                "arn:aws:lambda:us-east-1:123456789012:function:f"
            )
            .is_ok()
        );
        assert!(
            check_destination(
                "onSuccess",
                "arn:aws:events:us-east-1:123456789012:event-bus/default"
            )
            .is_ok()
        );
        let e = check_destination(
            "onFailure",
            "arn:aws:dynamodb:us-east-1:123456789012:table/t",
        )
        .unwrap_err();
        assert_eq!(e.code, "InvalidParameterValueException");
        let e = check_destination("onFailure", "not-an-arn").unwrap_err();
        assert_eq!(e.code, "ValidationException");
        assert!(
            check_destination("onFailure", "arn:aws:lambda:us-east-1:123456789012:layer:x")
                .is_err()
        );
    }

    #[test]
    fn dead_letter_targets_are_sqs_or_sns() {
        let d = |a: &str| DeadLetterConfig {
            target_arn: Some(a.into()),
        };
        assert!(
            dead_letter_config(Some(&d("arn:aws:sqs:us-east-1:123456789012:dlq")))
                .unwrap()
                .is_some()
        );
        assert!(
            dead_letter_config(Some(&d("arn:aws:sns:us-east-1:123456789012:t")))
                .unwrap()
                .is_some()
        );
        assert!(dead_letter_config(Some(&d(""))).unwrap().is_none());
        assert!(
            dead_letter_config(Some(&d("arn:aws:lambda:us-east-1:123456789012:function:f")))
                .is_err()
        );
    }
}
