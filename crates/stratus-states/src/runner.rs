//! Running executions: the engine's [`Host`], durable history, replay after
//! a restart, and parking of executions that wait for long.
//!
//! Durability of Standard executions ("durable before acknowledged"):
//!
//! * [`Host::record`] is synchronous, so events are buffered; every step
//!   that is visible outside the execution (a task call, a timer, the end
//!   of the execution) first awaits the group commit of everything recorded
//!   before it ([`ExecHost::flush`]).
//! * The journal (`sfn_journal`) holds, by the engine's replay-stable keys:
//!   task results (`task:<key>`), timer deadlines (`timer:<key>`), random
//!   values (`random:<key>`), task tokens (`token-of:<key>`), dispatched
//!   `.waitForTaskToken` tasks (`dispatched:<key>`) and callback outcomes
//!   (`token:<token>`). After a redrive (see [`crate::redrive`]) task
//!   results, dispatches and tokens also note the run that made them
//!   (`gen:<key>`, the `dispatched:` value, `token-gen:<key>`). A task
//!   result is committed before the engine sees it, so no completed task
//!   runs again.
//! * After a restart every RUNNING execution is resumed by running the
//!   engine from the start against the journal: recorded task results,
//!   timers and random values are answered from it, and events the engine
//!   records again are matched to the stored ones (by type and details)
//!   instead of being written twice.
//! * A Standard execution whose only pending work is a timer more than
//!   [`PARK_AFTER_MS`] away is parked: its engine is dropped, the wake-up
//!   time is stored (`wake_ms`), and the timer loop resumes it by replay
//!   when the timer is due.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use stratus_asl::{BoxFuture, ExecutionInfo, Failure, Host, StateMachine, TaskCall};
use stratus_logs::sfn::ExecutionLogger;
use stratus_store::rusqlite::{self, OptionalExtension, params};

use crate::States;
use crate::integrations::{self, Resource};

/// A Standard execution waiting for a timer further away than this (ms) is
/// parked instead of being kept in memory.
pub const PARK_AFTER_MS: i64 = 5_000;

/// AWS's quota on the history of a Standard execution: 25,000 events. The
/// execution fails with States.Runtime when it would record more; its
/// ExecutionFailed is event 25,000.
pub const MAX_HISTORY_EVENTS: u64 = 25_000;

/// How often the timer loop looks for parked executions that are due (ms).
pub const TIMER_TICK_MS: u64 = 200;

/// Why the host stopped an engine from inside [`Host::record`] (an engine
/// in a loop that never awaits cannot be stopped at an await point). The
/// stop unwinds the engine's stack (`resume_unwind`, which runs no panic
/// hook) up to [`CatchStop`]; it relies on unwinding panics, Cargo's
/// default (a `panic = "abort"` profile would end the process instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The Standard history quota ([`MAX_HISTORY_EVENTS`]) was reached.
    HistoryQuota,
    /// An Express execution ran past its deadline (5 minutes).
    Deadline,
}

/// Runs an engine future, turning a [`Stop`] raised by the host into
/// `Err(stop)`. The engine is not polled again after a stop. Other panics
/// propagate unchanged.
pub struct CatchStop<F: std::future::Future>(std::pin::Pin<Box<F>>);

impl<F: std::future::Future> CatchStop<F> {
    /// Wraps an engine future.
    pub fn new(f: F) -> Self {
        CatchStop(Box::pin(f))
    }
}

impl<F: std::future::Future> std::future::Future for CatchStop<F> {
    type Output = Result<F::Output, Stop>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(payload) => match payload.downcast::<Stop>() {
                Ok(stop) => std::task::Poll::Ready(Err(*stop)),
                Err(other) => std::panic::resume_unwind(other),
            },
        }
    }
}

/// The failure of an execution the host stopped.
pub fn stop_failure(stop: Stop) -> Failure {
    match stop {
        Stop::HistoryQuota => Failure {
            error: "States.Runtime".into(),
            cause: format!(
                "The execution reached the maximum number of history events ({MAX_HISTORY_EVENTS})."
            ),
        },
        Stop::Deadline => Failure {
            error: "States.Timeout".into(),
            cause: "The execution did not finish within the Express workflow limit of 5 minutes."
                .into(),
        },
    }
}

/// An execution whose engine runs in this process.
pub struct RunningHandle {
    pub task: tokio::task::JoinHandle<()>,
    pub host: Arc<ExecHost>,
}

/// A `.waitForTaskToken` task waiting for its callback.
pub struct TokenWaiter {
    pub notify: tokio::sync::Notify,
    /// Last SendTaskHeartbeat (or the start of the wait).
    pub beat: Mutex<std::time::Instant>,
}

/// One history event as stored.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub id: u64,
    pub event_type: String,
    pub previous_id: u64,
    pub timestamp_ms: i64,
    pub details: Value,
}

#[derive(Default)]
struct HostState {
    next_id: u64,
    pending_events: Vec<EventRow>,
    pending_journal: Vec<(String, String)>,
    journal: HashMap<String, String>,
    /// Stored events not yet matched by the replaying engine, by
    /// (type, details text).
    replay: HashMap<(String, String), VecDeque<u64>>,
    /// The final event's type, if the engine recorded one.
    final_event: Option<String>,
    /// The history quota was reached.
    limit_hit: bool,
    /// The id of the last ActivityScheduled event, until the task call
    /// that follows it takes it ([`crate::activities`]).
    activity_scheduled: Option<u64>,
    /// How many times the execution was redriven (0: never); task results
    /// are journaled with it (`gen:<key>`) and replay matches events by
    /// previous event id as well (see [`replay_key`]).
    generation: u32,
    /// When it was last redriven (ms since the epoch).
    redriven_at: Option<i64>,
}

/// The replay map's key of an event: its type and details, and for a
/// redriven execution also its previous event id, so that the events of a
/// rerun state (which follow the earlier run's failure) are never taken
/// for the earlier run's identical events.
fn replay_key(
    generation: u32,
    event_type: &str,
    previous_id: u64,
    details: &Value,
) -> (String, String) {
    if generation == 0 {
        (event_type.to_string(), details.to_string())
    } else {
        (event_type.to_string(), format!("{previous_id} {details}"))
    }
}

/// The engine's host for one execution.
pub struct ExecHost {
    pub(crate) states: Arc<States>,
    pub(crate) arn: String,
    region: String,
    /// Standard executions: events and journal go to the store.
    durable: bool,
    state: Mutex<HostState>,
    flush_lock: tokio::sync::Mutex<()>,
    /// Task calls, short timers and Map Runs in progress.
    busy: Arc<AtomicUsize>,
    /// Long timers in progress: id -> wake-up time (ms).
    long_sleeps: Mutex<HashMap<u64, i64>>,
    sleep_ids: AtomicU64,
    park: tokio::sync::Notify,
    /// Signalled when the history quota is reached.
    limit: tokio::sync::Notify,
    /// Express executions end TIMED_OUT at this time (ms since the epoch).
    deadline_ms: Mutex<Option<i64>>,
    /// TestState's `mock`: every task call answers with it instead of
    /// running the resource.
    mock: Mutex<Option<Result<Value, Failure>>>,
    /// CloudWatch Logs delivery of history events (unset when the state
    /// machine's logging level is OFF).
    logger: std::sync::OnceLock<Arc<ExecutionLogger>>,
}

/// Counts a task call or short timer in progress; when the last one ends
/// while long timers are pending, the runner is told to consider parking.
struct BusyGuard<'a>(&'a ExecHost);
impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        if self.0.busy.fetch_sub(1, Ordering::SeqCst) == 1
            && !self
                .0
                .long_sleeps
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty()
        {
            self.0.park.notify_one();
        }
    }
}
fn busy(h: &ExecHost) -> BusyGuard<'_> {
    h.busy.fetch_add(1, Ordering::SeqCst);
    BusyGuard(h)
}

struct SleepGuard<'a>(&'a ExecHost, u64);
impl Drop for SleepGuard<'_> {
    fn drop(&mut self) {
        self.0
            .long_sleeps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.1);
    }
}

fn final_status(event_type: &str) -> Option<&'static str> {
    match event_type {
        "ExecutionSucceeded" => Some("SUCCEEDED"),
        "ExecutionFailed" => Some("FAILED"),
        "ExecutionTimedOut" => Some("TIMED_OUT"),
        "ExecutionAborted" => Some("ABORTED"),
        _ => None,
    }
}

fn ok_or_err_json(r: &Result<Value, Failure>) -> String {
    match r {
        Ok(v) => json!({"ok": v}).to_string(),
        Err(f) => json!({"error": f.error, "cause": f.cause}).to_string(),
    }
}

pub(crate) fn parse_ok_or_err(s: &str) -> Option<Result<Value, Failure>> {
    let v: Value = serde_json::from_str(s).ok()?;
    if let Some(ok) = v.get("ok") {
        return Some(Ok(ok.clone()));
    }
    Some(Err(Failure {
        error: v.get("error")?.as_str()?.to_string(),
        cause: v
            .get("cause")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    }))
}

/// Encodes a task token: the execution ARN and the task's key, plus a
/// random nonce (so tokens are not guessable), base64url without padding.
pub fn make_token(arn: &str, key: &str) -> String {
    let doc = json!({"e": arn, "k": key, "n": uuid::Uuid::new_v4().simple().to_string()});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(doc.to_string())
}

/// Decodes a task token made by [`make_token`]: `(execution ARN, key)`.
pub fn parse_token(token: &str) -> Option<(String, String)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.as_bytes())
        .ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    Some((
        v.get("e")?.as_str()?.to_string(),
        v.get("k")?.as_str()?.to_string(),
    ))
}

fn random_u64() -> u64 {
    let b = uuid::Uuid::new_v4().into_bytes();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[9], b[10]])
        ^ u64::from_le_bytes([b[11], b[12], b[13], b[14], b[15], b[7], b[8], b[6]]).rotate_left(17)
}

impl ExecHost {
    /// A host for an execution; `next_id` is the id the next new event gets.
    pub(crate) fn new(
        states: Arc<States>,
        arn: &str,
        region: &str,
        durable: bool,
        next_id: u64,
    ) -> Self {
        ExecHost {
            states,
            arn: arn.to_string(),
            region: region.to_string(),
            durable,
            state: Mutex::new(HostState {
                next_id,
                ..Default::default()
            }),
            flush_lock: tokio::sync::Mutex::new(()),
            busy: Arc::new(AtomicUsize::new(0)),
            long_sleeps: Mutex::new(HashMap::new()),
            sleep_ids: AtomicU64::new(0),
            park: tokio::sync::Notify::new(),
            limit: tokio::sync::Notify::new(),
            deadline_ms: Mutex::new(None),
            mock: Mutex::new(None),
            logger: std::sync::OnceLock::new(),
        }
    }

    /// Delivers this execution's history events to CloudWatch Logs: events
    /// of Standard executions once committed, of Express ones as recorded.
    pub(crate) fn set_logger(&self, logger: Arc<ExecutionLogger>) {
        let _ = self.logger.set(logger);
    }

    /// The id the next new history event gets.
    pub(crate) fn next_event_id(&self) -> u64 {
        self.st().next_id
    }

    fn log_rows(&self, rows: &[EventRow]) {
        if let Some(l) = self.logger.get() {
            for e in rows {
                l.log(
                    e.id,
                    &e.event_type,
                    e.previous_id,
                    e.timestamp_ms,
                    &e.details,
                );
            }
        }
    }

    fn st(&self) -> std::sync::MutexGuard<'_, HostState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Loads what a replay needs: stored events (matched instead of written
    /// again) and the journal.
    fn load_replay(&self, events: Vec<EventRow>, journal: HashMap<String, String>) {
        let mut st = self.st();
        let generation = st.generation;
        for e in events {
            st.next_id = st.next_id.max(e.id + 1);
            // The end of an earlier run and its redrive are not the
            // engine's to record again: a new end is a new event.
            if final_status(&e.event_type).is_some() || e.event_type == "ExecutionRedriven" {
                continue;
            }
            st.replay
                .entry(replay_key(
                    generation,
                    &e.event_type,
                    e.previous_id,
                    &e.details,
                ))
                .or_default()
                .push_back(e.id);
        }
        st.journal = journal;
    }

    /// Records a final event without the quota and deadline checks.
    fn record_final(&self, event_type: &str, details: Value) {
        let mut st = self.st();
        st.final_event = Some(event_type.to_string());
        let id = st.next_id;
        st.next_id += 1;
        let row = EventRow {
            id,
            event_type: event_type.to_string(),
            previous_id: id.saturating_sub(1),
            timestamp_ms: stratus_core::time::now_ms(),
            details,
        };
        if self.durable {
            st.pending_events.push(row);
        } else {
            drop(st);
            self.log_rows(std::slice::from_ref(&row));
        }
    }

    /// A redriven execution: `count` redrives so far, the last at
    /// `redriven_at_ms`. Set before [`ExecHost::load_replay`].
    pub(crate) fn set_redrive(&self, count: u32, redriven_at_ms: i64) {
        let mut st = self.st();
        st.generation = count;
        st.redriven_at = Some(redriven_at_ms);
    }

    /// How many times the execution was redriven (0: never), as set by
    /// [`ExecHost::set_redrive`].
    pub(crate) fn generation(&self) -> u32 {
        self.st().generation
    }

    /// TestState: task calls answer with `mock` instead of running.
    pub(crate) fn set_mock(&self, mock: Result<Value, Failure>) {
        *self.mock.lock().unwrap_or_else(|p| p.into_inner()) = Some(mock);
    }

    /// Express executions: the time (ms) at which the execution times out.
    pub(crate) fn set_deadline(&self, ms: i64) {
        *self.deadline_ms.lock().unwrap_or_else(|p| p.into_inner()) = Some(ms);
    }

    /// The type of the final event (ExecutionSucceeded, ExecutionFailed,
    /// ExecutionTimedOut, ExecutionAborted) if the engine recorded one.
    pub(crate) fn recorded_final(&self) -> Option<String> {
        self.st().final_event.clone()
    }

    pub(crate) fn journal_get(&self, key: &str) -> Option<String> {
        self.st().journal.get(key).cloned()
    }

    pub(crate) fn journal_put(&self, key: String, value: String) {
        let mut st = self.st();
        st.journal.insert(key.clone(), value.clone());
        if self.durable {
            st.pending_journal.push((key, value));
        }
    }

    /// Commits every event and journal entry buffered so far; returns once
    /// they are durable (Standard executions; a no-op for Express ones).
    pub(crate) async fn flush(&self) {
        if !self.durable {
            return;
        }
        let _g = self.flush_lock.lock().await;
        let (events, journal) = {
            let mut st = self.st();
            (
                std::mem::take(&mut st.pending_events),
                std::mem::take(&mut st.pending_journal),
            )
        };
        if events.is_empty() && journal.is_empty() {
            return;
        }
        let arn = self.arn.clone();
        let logged = self.logger.get().map(|_| events.clone());
        let r = self
            .states
            .store
            .write(move |c| write_rows(c, &arn, &events, &journal))
            .await;
        match r {
            Err(e) => tracing::error!(execution = %self.arn, "cannot store execution history: {e}"),
            Ok(()) => self.log_rows(logged.as_deref().unwrap_or_default()),
        }
    }

    /// Takes the buffered rows (for a final write done by the caller).
    pub(crate) fn take_pending_rows(&self) -> (Vec<EventRow>, Vec<(String, String)>) {
        self.take_pending()
    }

    fn take_pending(&self) -> (Vec<EventRow>, Vec<(String, String)>) {
        let mut st = self.st();
        (
            std::mem::take(&mut st.pending_events),
            std::mem::take(&mut st.pending_journal),
        )
    }

    /// Whether the engine is blocked only on long timers: the earliest
    /// wake-up time if so.
    fn parkable(&self) -> Option<i64> {
        if !self.durable || self.busy.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let sleeps = self.long_sleeps.lock().unwrap_or_else(|p| p.into_inner());
        sleeps.values().min().copied()
    }

    async fn run_task(&self, call: &TaskCall, scheduled: Option<u64>) -> Result<Value, Failure> {
        let Some(resource) = integrations::classify(&call.resource) else {
            return Err(Failure {
                error: "States.Runtime".into(),
                cause: integrations::unsupported_message(&call.resource),
            });
        };
        if let integrations::Integration::Activity(arn) = &resource.integration {
            return self.run_activity_task(call, arn, scheduled).await;
        }
        // TimeoutSeconds is enforced by the engine (it races the call
        // against a timer); HeartbeatSeconds by the callback wait below.
        if resource.wait_for_token {
            self.run_callback_task(call, &resource).await
        } else {
            self.dispatch(call, &resource).await
        }
    }

    /// Runs a task's integration; nested executions learn which execution
    /// and task start them.
    async fn dispatch(&self, call: &TaskCall, resource: &Resource) -> Result<Value, Failure> {
        if let integrations::Integration::StartExecution(mode) = resource.integration {
            // A redrive runs the task again: it starts a new child (its own
            // derived name and record) rather than finding the child that
            // failed or was stopped in the earlier run.
            let key = match self.generation() {
                0 => call.key.clone(),
                g => format!("{}@{g}", call.key),
            };
            let parent = crate::nested::Parent {
                arn: &self.arn,
                key: &key,
            };
            return self
                .states
                .run_nested(mode, &call.input, Some(parent))
                .await;
        }
        self.states
            .run_integration(&self.region, resource, &call.input)
            .await
    }

    /// A `.waitForTaskToken` task: dispatches the integration once (the
    /// dispatch is journaled), then waits for SendTaskSuccess /
    /// SendTaskFailure, failing with States.HeartbeatTimeout when
    /// HeartbeatSeconds pass without SendTaskHeartbeat.
    async fn run_callback_task(
        &self,
        call: &TaskCall,
        resource: &Resource,
    ) -> Result<Value, Failure> {
        let token = call.task_token.clone().unwrap_or_default();
        let waiter = Arc::new(TokenWaiter {
            notify: tokio::sync::Notify::new(),
            beat: Mutex::new(std::time::Instant::now()),
        });
        self.states
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.clone(), waiter.clone());
        struct Unregister<'a>(&'a States, String);
        impl Drop for Unregister<'_> {
            fn drop(&mut self) {
                self.0
                    .waiters
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&self.1);
            }
        }
        let _unregister = Unregister(&self.states, token.clone());
        let dispatched_key = format!("dispatched:{}", call.key);
        // The value is the run that dispatched it ("true": the original
        // run); a redrive dispatches again what an earlier run dispatched
        // and never saw answered (with the new task token).
        let generation = self.st().generation;
        let dispatched_in = self
            .journal_get(&dispatched_key)
            .map(|v| v.parse::<u32>().unwrap_or(0));
        if dispatched_in.is_none_or(|g| g < generation) {
            self.dispatch(call, resource).await?;
            self.journal_put(dispatched_key, generation.to_string());
            self.flush().await;
        }
        loop {
            let notified = waiter.notify.notified();
            if let Some(outcome) = self.states.callback_outcome(&self.arn, &token)
                && let Some(r) = parse_ok_or_err(&outcome)
            {
                return r;
            }
            match call.heartbeat_seconds {
                Some(hb) if hb > 0 => {
                    let last = *waiter.beat.lock().unwrap_or_else(|p| p.into_inner());
                    let deadline = last + Duration::from_secs(hb);
                    if tokio::time::Instant::now().into_std() >= deadline {
                        return Err(Failure {
                            error: "States.HeartbeatTimeout".into(),
                            cause: format!(
                                "No heartbeat was received within HeartbeatSeconds ({hb} s)."
                            ),
                        });
                    }
                    let _ = tokio::time::timeout_at(deadline.into(), notified).await;
                }
                _ => notified.await,
            }
        }
    }
}

pub(crate) fn write_rows(
    c: &rusqlite::Connection,
    arn: &str,
    events: &[EventRow],
    journal: &[(String, String)],
) -> rusqlite::Result<()> {
    {
        let mut st = c.prepare_cached(
            "INSERT OR REPLACE INTO sfn_history (execution_arn, id, type, previous_id, timestamp_ms, details)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for e in events {
            st.execute(params![
                arn,
                e.id as i64,
                e.event_type,
                e.previous_id as i64,
                e.timestamp_ms,
                e.details.to_string()
            ])?;
        }
    }
    let mut st = c.prepare_cached(
        "INSERT OR REPLACE INTO sfn_journal (execution_arn, key, value) VALUES (?1, ?2, ?3)",
    )?;
    for (k, v) in journal {
        st.execute(params![arn, k, v])?;
    }
    Ok(())
}

impl Host for ExecHost {
    fn call_task<'a>(&'a self, call: TaskCall) -> BoxFuture<'a, Result<Value, Failure>> {
        Box::pin(async move {
            if let Some(mock) = self.mock.lock().unwrap_or_else(|p| p.into_inner()).clone() {
                return mock;
            }
            let key = format!("task:{}", call.key);
            if let Some(stored) = self.journal_get(&key)
                && let Some(r) = parse_ok_or_err(&stored)
            {
                return r;
            }
            let scheduled = self.st().activity_scheduled.take();
            let _busy = busy(self);
            self.flush().await;
            let r = self.run_task(&call, scheduled).await;
            let generation = self.st().generation;
            if generation > 0 {
                self.journal_put(format!("gen:{}", call.key), generation.to_string());
            }
            self.journal_put(key, ok_or_err_json(&r));
            self.flush().await;
            r
        })
    }

    fn now_ms(&self) -> i64 {
        stratus_core::time::now_ms()
    }

    fn sleep_until<'a>(&'a self, key: &'a str, until_ms: i64) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let jkey = format!("timer:{key}");
            let until = match self.journal_get(&jkey).and_then(|v| v.parse::<i64>().ok()) {
                Some(t) => t,
                None => {
                    self.journal_put(jkey, until_ms.to_string());
                    until_ms
                }
            };
            let long = self.durable && until - stratus_core::time::now_ms() > PARK_AFTER_MS;
            let _busy;
            let _sleep;
            if long {
                let id = self.sleep_ids.fetch_add(1, Ordering::SeqCst);
                self.long_sleeps
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id, until);
                _sleep = SleepGuard(self, id);
            } else {
                _busy = busy(self);
            }
            self.flush().await;
            if long {
                self.park.notify_one();
            }
            loop {
                let left = until - stratus_core::time::now_ms();
                if left <= 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(left as u64)).await;
            }
        })
    }

    fn random_u64(&self, key: &str) -> u64 {
        let jkey = format!("random:{key}");
        if let Some(v) = self.journal_get(&jkey).and_then(|v| v.parse::<u64>().ok()) {
            return v;
        }
        let v = random_u64();
        self.journal_put(jkey, v.to_string());
        v
    }

    fn task_generation(&self, key: &str) -> Option<u32> {
        let st = self.st();
        st.journal.get(&format!("task:{key}"))?;
        Some(
            st.journal
                .get(&format!("gen:{key}"))
                .and_then(|g| g.parse().ok())
                .unwrap_or(0),
        )
    }

    fn activity_schedule_failure(&self, key: &str, resource: &str) -> Option<Failure> {
        let jkey = format!("schedule:{key}");
        if let Some(stored) = self.journal_get(&jkey) {
            return parse_ok_or_err(&stored).and_then(Result::err);
        }
        let r = if self.states.activity_exists(resource) {
            Ok(Value::Null)
        } else {
            Err(Failure {
                error: "States.Runtime".into(),
                cause: format!("Activity Does Not Exist: '{resource}'"),
            })
        };
        self.journal_put(jkey, ok_or_err_json(&r));
        r.err()
    }

    fn redriven_at_ms(&self) -> Option<i64> {
        self.st().redriven_at
    }

    fn task_token(&self, key: &str) -> String {
        let jkey = format!("token-of:{key}");
        let generation = self.st().generation;
        if let Some(v) = self.journal_get(&jkey) {
            // A callback task an earlier run left waiting (the execution
            // was stopped or timed out) gets a new token when a redrive
            // schedules it again; the old token no longer answers.
            let issued_in = self
                .journal_get(&format!("token-gen:{key}"))
                .and_then(|g| g.parse::<u32>().ok())
                .unwrap_or(0);
            let unanswered = self.journal_get(&format!("task:{key}")).is_none();
            if !(unanswered && issued_in < generation) {
                return v;
            }
        }
        let t = make_token(&self.arn, key);
        self.journal_put(jkey, t.clone());
        if generation > 0 {
            self.journal_put(format!("token-gen:{key}"), generation.to_string());
        }
        t
    }

    fn map_run<'a>(
        &'a self,
        spec: &'a stratus_asl::MapRunSpec,
    ) -> BoxFuture<'a, Option<Arc<dyn stratus_asl::MapRunHost>>> {
        Box::pin(async move {
            // TestState runs a Distributed Map's children inline.
            if self
                .mock
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some()
            {
                return None;
            }
            self.flush().await;
            crate::map_runs::open(
                &self.states,
                &self.arn,
                &self.region,
                spec,
                self.busy.clone(),
                self.generation(),
            )
            .await
        })
    }

    fn record(&self, event_type: &str, previous_event_id: u64, details: Value) -> u64 {
        let id = self.record_event(event_type, previous_event_id, details);
        if event_type == "ActivityScheduled" {
            self.st().activity_scheduled = Some(id);
        }
        id
    }
}

impl ExecHost {
    fn record_event(&self, event_type: &str, previous_event_id: u64, details: Value) -> u64 {
        let mut st = self.st();
        if final_status(event_type).is_some() {
            st.final_event = Some(event_type.to_string());
        }
        if !st.replay.is_empty() {
            // Stored first events point at ExecutionStarted (id 1).
            let prev = if previous_event_id == 0 && self.durable {
                1
            } else {
                previous_event_id
            };
            let k = replay_key(st.generation, event_type, prev, &details);
            if let Some(q) = st.replay.get_mut(&k)
                && let Some(id) = q.pop_front()
            {
                if q.is_empty() {
                    st.replay.remove(&k);
                }
                return id;
            }
        }
        if self.durable
            && (st.limit_hit
                || (st.next_id >= MAX_HISTORY_EVENTS && final_status(event_type).is_none()))
        {
            // Nothing more is recorded. The engine may be in a loop that
            // never awaits (Pass / Choice states only), so it is stopped
            // here, and the runner ends the execution.
            st.limit_hit = true;
            st.final_event = None;
            drop(st);
            self.limit.notify_one();
            std::panic::resume_unwind(Box::new(Stop::HistoryQuota));
        }
        if !self.durable
            && final_status(event_type).is_none()
            && self
                .deadline_ms
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some_and(|d| stratus_core::time::now_ms() >= d)
        {
            drop(st);
            std::panic::resume_unwind(Box::new(Stop::Deadline));
        }
        let id = st.next_id;
        st.next_id += 1;
        // The service records ExecutionStarted (id 1 of Standard
        // executions); the engine's first events follow it.
        let logged = self.logger.get();
        let previous_event_id = if previous_event_id == 0 && (self.durable || logged.is_some()) {
            1
        } else {
            previous_event_id
        };
        if self.durable {
            st.pending_events.push(EventRow {
                id,
                event_type: event_type.to_string(),
                previous_id: previous_event_id,
                timestamp_ms: stratus_core::time::now_ms(),
                details,
            });
        } else if let Some(l) = logged {
            drop(st);
            l.log(
                id,
                event_type,
                previous_event_id,
                stratus_core::time::now_ms(),
                &details,
            );
        }
        id
    }
}

/// What an execution runs: its definition and context facts, as stored in
/// the `machine` column of `sfn_executions` at StartExecution.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineSnapshot {
    pub state_machine_arn: String,
    pub name: String,
    pub definition: String,
    pub role_arn: String,
    #[serde(rename = "type")]
    pub machine_type: String,
    pub update_ms: i64,
    pub revision_id: String,
    pub logging_configuration: Value,
    pub tracing_configuration: Value,
    /// The version the execution runs, when it was started by version ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_arn: Option<String>,
    /// The alias the execution was started through, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias_arn: Option<String>,
}

/// How an execution ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// SUCCEEDED, FAILED, TIMED_OUT or ABORTED.
    pub status: &'static str,
    pub output: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub stop_ms: i64,
}

/// Runs the engine for `host`'s execution to its end or until it parks,
/// then records the end (final event unless the engine recorded it,
/// status, output) in one commit. Returns the outcome, `None` when parked
/// or stopped.
pub(crate) async fn drive(
    host: Arc<ExecHost>,
    machine: Arc<StateMachine>,
    input: Value,
    info: ExecutionInfo,
) -> Option<Outcome> {
    let deadline = *host.deadline_ms.lock().unwrap_or_else(|p| p.into_inner());
    let mut fut = CatchStop::new(stratus_asl::execute(&machine, input, &info, &*host));
    let until_deadline = async {
        match deadline {
            Some(d) => {
                let left = (d - stratus_core::time::now_ms()).max(0) as u64;
                tokio::time::sleep(Duration::from_millis(left)).await
            }
            None => std::future::pending().await,
        }
    };
    tokio::pin!(until_deadline);
    enum End {
        Done(Result<Value, Failure>),
        Stopped(Stop),
        Park(i64),
    }
    let end = loop {
        tokio::select! {
            biased;
            r = &mut fut => break match r {
                Ok(r) => End::Done(r),
                Err(stop) => End::Stopped(stop),
            },
            _ = host.limit.notified() => break End::Stopped(Stop::HistoryQuota),
            _ = &mut until_deadline => break End::Stopped(Stop::Deadline),
            _ = host.park.notified() => {
                if let Some(wake) = host.parkable() {
                    break End::Park(wake);
                }
            }
        }
    };
    // The engine goes first: whatever it holds (a flush in progress) is
    // released before the final or parking flush.
    drop(fut);
    match end {
        End::Done(r) => Some(finish(&host, r).await),
        End::Stopped(stop) => {
            if stop == Stop::Deadline {
                let f = stop_failure(stop);
                host.record_final(
                    "ExecutionTimedOut",
                    json!({"error": f.error, "cause": f.cause}),
                );
            }
            Some(finish(&host, Err(stop_failure(stop))).await)
        }
        End::Park(wake) => {
            park(&host, wake).await;
            None
        }
    }
}

async fn park(host: &ExecHost, wake_ms: i64) {
    host.flush().await;
    let arn = host.arn.clone();
    let r = host
        .states
        .store
        .write(move |c| {
            c.execute(
                "UPDATE sfn_executions SET wake_ms = ?1 WHERE arn = ?2 AND status = 'RUNNING'",
                params![wake_ms, arn],
            )
        })
        .await;
    if let Err(e) = r {
        tracing::error!(execution = %host.arn, "cannot park the execution: {e}");
    }
    host.states.forget_running(&host.arn);
}

async fn finish(host: &ExecHost, result: Result<Value, Failure>) -> Outcome {
    let stop_ms = stratus_core::time::now_ms();
    let (recorded, limit) = {
        let mut st = host.st();
        let limit = st.limit_hit;
        if limit {
            // The engine's own end (if any) was not recorded: the quota's
            // failure is the end, as event MAX_HISTORY_EVENTS.
            st.limit_hit = false;
            st.final_event = None;
            st.next_id = st.next_id.min(MAX_HISTORY_EVENTS);
        }
        (st.final_event.clone(), limit)
    };
    let result = if limit {
        Err(stop_failure(Stop::HistoryQuota))
    } else {
        result
    };
    let outcome = match (&result, recorded.as_deref().and_then(final_status)) {
        (Ok(v), _) => Outcome {
            status: "SUCCEEDED",
            output: Some(v.to_string()),
            error: None,
            cause: None,
            stop_ms,
        },
        (Err(f), status) => Outcome {
            status: match status {
                Some("TIMED_OUT") => "TIMED_OUT",
                Some("ABORTED") => "ABORTED",
                _ => "FAILED",
            },
            output: None,
            error: Some(f.error.clone()),
            cause: Some(f.cause.clone()),
            stop_ms,
        },
    };
    if recorded.is_none() {
        match &result {
            Ok(v) => host.record(
                "ExecutionSucceeded",
                0,
                json!({"output": v.to_string(), "outputDetails": {"truncated": false}}),
            ),
            Err(f) => host.record(
                "ExecutionFailed",
                0,
                json!({"error": f.error, "cause": f.cause}),
            ),
        };
    }
    if host.durable {
        let _g = host.flush_lock.lock().await;
        let (events, journal) = host.take_pending();
        let arn = host.arn.clone();
        let o = outcome.clone();
        let logged = host.logger.get().map(|_| events.clone());
        let r = host
            .states
            .store
            .write(move |c| {
                // A write comes first: the round's transaction takes the
                // write lock before it reads anything.
                let changed = c.execute(
                    "UPDATE sfn_executions SET status = ?1, stop_ms = ?2, output = ?3, error = ?4, cause = ?5, wake_ms = NULL
                     WHERE arn = ?6 AND status = 'RUNNING'",
                    params![o.status, o.stop_ms, o.output, o.error, o.cause, arn],
                )?;
                if changed == 0 {
                    // Stopped meanwhile: its ExecutionAborted is the end.
                    return Ok(false);
                }
                write_rows(c, &arn, &events, &journal).map(|()| true)
            })
            .await;
        match r {
            Err(e) => {
                tracing::error!(execution = %host.arn, "cannot store the end of the execution: {e}")
            }
            Ok(true) => host.log_rows(logged.as_deref().unwrap_or_default()),
            Ok(false) => {}
        }
    } else {
        let arn = host.arn.clone();
        let o = outcome.clone();
        let _ = host
            .states
            .store
            .write(move |c| {
                c.execute(
                    "UPDATE sfn_executions SET status = ?1, stop_ms = ?2, output = ?3, error = ?4, cause = ?5
                     WHERE arn = ?6 AND status = 'RUNNING'",
                    params![o.status, o.stop_ms, o.output, o.error, o.cause, arn],
                )
            })
            .await;
    }
    host.states.forget_running(&host.arn);
    host.states.execution_ended(&host.arn, outcome.status);
    outcome
}

/// A stored execution row, as far as running it needs.
pub(crate) struct ExecRow {
    pub arn: String,
    pub region: String,
    pub name: String,
    pub machine_type: String,
    pub start_ms: i64,
    pub input: String,
    pub machine: MachineSnapshot,
}

impl States {
    pub(crate) fn forget_running(&self, arn: &str) {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(arn);
    }

    pub(crate) fn is_running_here(&self, arn: &str) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(arn)
    }

    /// The stored outcome of a callback task (`token:<token>`), if any.
    pub(crate) fn callback_outcome(&self, arn: &str, token: &str) -> Option<String> {
        let key = format!("token:{token}");
        let arn = arn.to_string();
        self.store
            .read(|c| {
                c.query_row(
                    "SELECT value FROM sfn_journal WHERE execution_arn = ?1 AND key = ?2",
                    params![arn, key],
                    |r| r.get(0),
                )
                .optional()
            })
            .ok()
            .flatten()
    }

    /// Starts the engine of an execution in the background (a new one, or a
    /// replay of a stored one with `replay` = its stored events and journal).
    pub(crate) fn launch(
        self: &Arc<Self>,
        row: &ExecRow,
        machine: Arc<StateMachine>,
        replay: Option<(Vec<EventRow>, HashMap<String, String>)>,
        next_id: u64,
    ) {
        let durable = row.machine_type == "STANDARD";
        let host = Arc::new(ExecHost::new(
            self.clone(),
            &row.arn,
            &row.region,
            durable,
            next_id,
        ));
        if !durable {
            host.set_deadline(row.start_ms + crate::executions::EXPRESS_MAX_MS as i64);
        }
        // Only a stored execution can have been redriven.
        let redrive = if durable && replay.is_some() {
            self.redrive_of(&row.arn)
        } else {
            None
        };
        if let Some(r) = &redrive {
            host.set_redrive(r.count, r.redrive_ms);
        }
        if let Some(logger) = ExecutionLogger::for_execution(
            &self.store,
            &row.machine.logging_configuration,
            &row.machine.name,
            &row.arn,
            row.start_ms,
        ) {
            if replay.is_none() {
                logger.log(
                    1,
                    "ExecutionStarted",
                    0,
                    row.start_ms,
                    &started_details(&row.input, &row.machine),
                );
            }
            logger.set_redrive_count(redrive.as_ref().map_or(0, |r| r.count));
            host.set_logger(logger);
        }
        if let Some((events, journal)) = replay {
            host.load_replay(events, journal);
        }
        let input: Value = serde_json::from_str(&row.input).unwrap_or(Value::Null);
        let mut info = execution_info(row);
        info.redrive_count = redrive.map_or(0, |r| r.count);
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.contains_key(&row.arn) {
            return;
        }
        let h = host.clone();
        let task = tokio::spawn(async move {
            drive(h, machine, input, info).await;
        });
        running.insert(row.arn.clone(), RunningHandle { task, host });
    }

    /// Resumes a stored RUNNING execution by replaying it: the engine runs
    /// from the start against the stored events and journal.
    pub(crate) fn resume(self: &Arc<Self>, arn: &str) {
        if self.is_running_here(arn) {
            return;
        }
        let loaded = (|| -> stratus_store::StoreResult<Option<_>> {
            let Some(row) = self.load_exec_row(arn)? else {
                return Ok(None);
            };
            let events = if row.machine_type == "STANDARD" {
                self.load_events(arn)?
            } else {
                Vec::new()
            };
            let journal = if row.machine_type == "STANDARD" {
                self.load_journal(arn)?
            } else {
                HashMap::new()
            };
            Ok(Some((row, events, journal)))
        })();
        let (row, events, journal) = match loaded {
            Ok(Some(x)) => x,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(execution = %arn, "cannot resume: {e}");
                return;
            }
        };
        let machine = match StateMachine::parse(&row.machine.definition) {
            Ok(m) => Arc::new(m),
            Err(_) => {
                tracing::error!(execution = %arn, "cannot resume: its definition no longer parses");
                return;
            }
        };
        let next_id = events.iter().map(|e| e.id + 1).max().unwrap_or(1);
        tracing::info!(execution = %arn, "resuming execution");
        self.launch(&row, machine, Some((events, journal)), next_id);
    }
}

/// The details of an execution's ExecutionStarted event.
pub(crate) fn started_details(input: &str, m: &MachineSnapshot) -> Value {
    let mut d = json!({
        "input": input,
        "inputDetails": {"truncated": false},
        "roleArn": m.role_arn,
    });
    if let Some(v) = &m.version_arn {
        d["stateMachineVersionArn"] = Value::from(v.clone());
    }
    if let Some(a) = &m.alias_arn {
        d["stateMachineAliasArn"] = Value::from(a.clone());
    }
    d
}

fn execution_info(row: &ExecRow) -> ExecutionInfo {
    ExecutionInfo {
        execution_arn: row.arn.clone(),
        name: row.name.clone(),
        start_time: stratus_core::time::iso_ms(row.start_ms),
        role_arn: row.machine.role_arn.clone(),
        state_machine_arn: row.machine.state_machine_arn.clone(),
        state_machine_name: row.machine.name.clone(),
        redrive_count: 0,
    }
}

/// Resumes what was running when the server stopped, then wakes parked
/// executions when their timers are due.
pub(crate) fn spawn_recovery(states: Arc<States>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let now = stratus_core::time::now_ms();
        match states.running_rows() {
            Ok(rows) => {
                for (arn, wake) in rows {
                    if wake.is_none_or(|w| w <= now) {
                        states.resume(&arn);
                    }
                }
            }
            Err(e) => tracing::error!("cannot list running executions: {e}"),
        }
        loop {
            tokio::time::sleep(Duration::from_millis(TIMER_TICK_MS)).await;
            let now = stratus_core::time::now_ms();
            match states.due_rows(now) {
                Ok(arns) => {
                    for arn in arns {
                        states.resume(&arn);
                    }
                }
                Err(e) => tracing::error!("cannot list parked executions: {e}"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{call, service};

    async fn start(states: &States, definition: Value) -> String {
        let sm = call(
            states,
            "CreateStateMachine",
            json!({"name": "m", "definition": definition.to_string(),
                   "roleArn": "arn:aws:iam::123456789012:role/r"}),
        )
        .await;
        let ex = call(
            states,
            "StartExecution",
            json!({"stateMachineArn": sm["stateMachineArn"], "input": "{\"n\": 1}"}),
        )
        .await;
        ex["executionArn"].as_str().unwrap_or_default().to_string()
    }

    fn status(states: &States, arn: &str) -> String {
        states
            .load_full_row(arn)
            .ok()
            .flatten()
            .map(|r| r.status)
            .unwrap_or_default()
    }

    fn event_types(states: &States, arn: &str) -> Vec<String> {
        states
            .load_events(arn)
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.event_type)
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn long_waits_park_and_wake_by_replay() {
        let (_dir, states) = service();
        let arn = start(
            &states,
            json!({"StartAt": "W", "States": {
                "W": {"Type": "Wait", "Seconds": 6, "Next": "P"},
                "P": {"Type": "Pass", "Result": "woke", "End": true}}}),
        )
        .await;
        // The execution leaves memory with its wake-up time stored.
        crate::test_support::until(
            || !states.is_running_here(&arn),
            3_000,
            "the execution to park",
        )
        .await;
        let wake: Option<i64> = states
            .store
            .read(|c| {
                c.query_row(
                    "SELECT wake_ms FROM sfn_executions WHERE arn = ?1",
                    params![arn],
                    |r| r.get(0),
                )
            })
            .expect("row");
        assert!(wake.is_some(), "a parked execution stores its wake-up time");
        assert_eq!(status(&states, &arn), "RUNNING");
        let timers = spawn_recovery(states.clone());
        crate::test_support::until(
            || status(&states, &arn) == "SUCCEEDED",
            12_000,
            "the timer to wake it",
        )
        .await;
        timers.abort();
        assert_eq!(
            event_types(&states, &arn),
            [
                "ExecutionStarted",
                "WaitStateEntered",
                "WaitStateExited",
                "PassStateEntered",
                "PassStateExited",
                "ExecutionSucceeded"
            ]
        );
        let row = states.load_full_row(&arn).ok().flatten().expect("row");
        assert_eq!(row.output.as_deref(), Some("\"woke\""));
        assert!(row.stop_ms.unwrap_or(0) - row.start_ms >= 6_000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replay_after_a_crash_reuses_random_values_and_events() {
        let (_dir, states) = service();
        let arn = start(
            &states,
            json!({"StartAt": "Id", "States": {
                "Id": {"Type": "Pass", "Parameters": {"id.$": "States.UUID()"}, "ResultPath": "$.id", "Next": "W"},
                "W": {"Type": "Wait", "Seconds": 2, "Next": "Done"},
                "Done": {"Type": "Pass", "End": true}}}),
        )
        .await;
        crate::test_support::until(
            || event_types(&states, &arn).contains(&"WaitStateEntered".to_string()),
            3_000,
            "the Wait state",
        )
        .await;
        let stored_id = states.load_events(&arn).expect("events")[2].details["output"].clone();
        // A crash: the engine is gone, the store keeps what was committed.
        states.shutdown();
        assert!(!states.is_running_here(&arn));
        states.resume(&arn);
        crate::test_support::until(
            || status(&states, &arn) == "SUCCEEDED",
            6_000,
            "the replay to finish",
        )
        .await;
        let events = states.load_events(&arn).expect("events");
        let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "ExecutionStarted",
                "PassStateEntered",
                "PassStateExited",
                "WaitStateEntered",
                "WaitStateExited",
                "PassStateEntered",
                "PassStateExited",
                "ExecutionSucceeded"
            ]
        );
        assert_eq!(
            events.iter().map(|e| e.id).collect::<Vec<_>>(),
            (1..=8).collect::<Vec<u64>>()
        );
        let out: Value = serde_json::from_str(
            states
                .load_full_row(&arn)
                .ok()
                .flatten()
                .and_then(|r| r.output)
                .as_deref()
                .unwrap_or("null"),
        )
        .expect("json");
        let stored: Value =
            serde_json::from_str(stored_id.as_str().unwrap_or("null")).expect("json");
        assert_eq!(out["id"], stored["id"], "the replay reused the stored UUID");
        assert_eq!(events[1].previous_id, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parallel_long_waits_park_together() {
        let (_dir, states) = service();
        let arn = start(
            &states,
            json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
                {"StartAt": "A", "States": {"A": {"Type": "Wait", "Seconds": 6, "Next": "A2"},
                                             "A2": {"Type": "Pass", "Result": "a", "End": true}}},
                {"StartAt": "B", "States": {"B": {"Type": "Wait", "Seconds": 7, "Next": "B2"},
                                             "B2": {"Type": "Pass", "Result": "b", "End": true}}}
            ]}}}),
        )
        .await;
        crate::test_support::until(
            || !states.is_running_here(&arn),
            3_000,
            "both branches to park",
        )
        .await;
        let timers = spawn_recovery(states.clone());
        crate::test_support::until(
            || status(&states, &arn) == "SUCCEEDED",
            15_000,
            "the execution to finish",
        )
        .await;
        timers.abort();
        let row = states.load_full_row(&arn).ok().flatten().expect("row");
        assert_eq!(row.output.as_deref(), Some(r#"["a","b"]"#));
        let kinds = event_types(&states, &arn);
        assert_eq!(kinds.iter().filter(|k| *k == "WaitStateEntered").count(), 2);
        assert_eq!(
            kinds
                .iter()
                .filter(|k| *k == "ParallelStateEntered")
                .count(),
            1
        );
        assert_eq!(kinds.last().map(String::as_str), Some("ExecutionSucceeded"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_runaway_loop_fails_at_the_history_quota() {
        let (_dir, states) = service();
        let arn = start(
            &states,
            json!({"StartAt": "Spin", "States": {
                "Spin": {"Type": "Pass", "Next": "Again"},
                "Again": {"Type": "Choice", "Choices": [
                    {"Variable": "$.n", "NumericEquals": 1, "Next": "Spin"}], "Default": "Done"},
                "Done": {"Type": "Succeed"}}}),
        )
        .await;
        crate::test_support::until(
            || status(&states, &arn) != "RUNNING",
            60_000,
            "the loop to be ended",
        )
        .await;
        let row = states.load_full_row(&arn).ok().flatten().expect("row");
        assert_eq!(row.status, "FAILED");
        assert_eq!(row.error.as_deref(), Some("States.Runtime"));
        assert!(row.cause.unwrap_or_default().contains("25000"));
        let events = states.load_events(&arn).expect("events");
        assert_eq!(events.len() as u64, MAX_HISTORY_EVENTS);
        let last = events.last().expect("events");
        assert_eq!(last.id, MAX_HISTORY_EVENTS);
        assert_eq!(last.event_type, "ExecutionFailed");
    }

    #[tokio::test]
    async fn an_express_loop_stops_at_its_deadline() {
        let (_dir, states) = service();
        let machine = StateMachine::parse(
            &json!({"StartAt": "Spin", "States": {
                "Spin": {"Type": "Pass", "Next": "Again"},
                "Again": {"Type": "Choice", "Choices": [
                    {"Variable": "$.n", "IsPresent": false, "Next": "Spin"}], "Default": "Done"},
                "Done": {"Type": "Succeed"}}})
            .to_string(),
        )
        .expect("valid");
        let host = ExecHost::new(
            states.clone(),
            "arn:aws:states:us-east-1:123456789012:express:m:e:1",
            "us-east-1",
            false,
            1,
        );
        host.set_deadline(stratus_core::time::now_ms() + 200);
        let info = ExecutionInfo::default();
        let r = CatchStop::new(stratus_asl::execute(&machine, json!({}), &info, &host)).await;
        assert_eq!(r.err(), Some(Stop::Deadline));
        assert_eq!(stop_failure(Stop::Deadline).error, "States.Timeout");
    }

    #[test]
    fn tokens_round_trip() {
        let t = make_token("arn:aws:states:us-east-1:123456789012:execution:m:e", "A#1");
        assert_eq!(
            parse_token(&t),
            Some((
                "arn:aws:states:us-east-1:123456789012:execution:m:e".to_string(),
                "A#1".to_string()
            ))
        );
        assert_eq!(parse_token("garbage!"), None);
    }
}
