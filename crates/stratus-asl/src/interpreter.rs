//! The interpreter: runs a [`StateMachine`] to its end, calling out through
//! [`Host`] for everything outside the engine (task integrations, time,
//! randomness, history).
//!
//! Determinism: the interpreter reads the clock and randomness only through
//! the host, and every host call carries a key derived from the state's
//! place in the execution (state path, Parallel branch index, Map item
//! index, visit count of the state within its branch, attempt number), so a
//! replay from the start with recorded task results makes the same calls
//! with the same keys in every branch, whatever the scheduling order. Keys
//! look like `Process@2/Map[3]/Charge#1` (`@n`: the n-th visit of a state
//! in its branch, shown from the second visit; `#n`: the attempt).
//!
//! History: the engine records every event from the first state's
//! `*StateEntered` to the final `ExecutionSucceeded` / `ExecutionFailed` /
//! `ExecutionTimedOut`; the service records `ExecutionStarted` (and maps
//! `previous_event_id` 0 to it), `ExecutionAborted`, and `ActivityStarted`
//! (when a worker takes an activity task).
//!
//! Map states: inline Maps run their iterations here, as concurrent
//! branches of this execution (at most MaxConcurrency at a time). A
//! Distributed Map (ProcessorConfig Mode DISTRIBUTED) asks its host for a
//! Map Run ([`Host::map_run`]); the host runs each child as an execution of
//! its own while the engine reads and batches the items, keeps at most the
//! run's current MaxConcurrency children going, decides on tolerated
//! failures and writes the results. A host without child executions
//! answers `None` and the children run here like inline iterations, without
//! the outer scopes' variables. ItemReader and ResultWriter are task calls
//! to the host.
//!
//! Rules: the Amazon States Language specification, and the Step Functions
//! Developer Guide chapters "Processing input and output", "Handling errors
//! in Step Functions workflows", "Passing data between states with
//! variables", "Transforming data with JSONata" and "Map state".

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use serde_json::{Map, Value, json};

use crate::BoxFuture;
use crate::definition::{
    Assign, Catcher, ChoiceCond, CredentialsSpec, Diagnostic, Graph, IoPath, IoResource, Kind,
    MapState, Num, QueryLanguage, State, StateMachine, Text, Wait,
};
use crate::path::{EvalError, Lazy, Path, Root, Scope, insert_result};

/// The most a state's input or output may weigh, in bytes of JSON (UTF-8):
/// 256 KiB (Step Functions quotas, "Maximum input or output size for a
/// task, state, or execution").
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// Everything outside the engine: task calls, time, randomness, history.
pub trait Host: Send + Sync {
    /// Runs a Task state's resource with its effective input (after
    /// InputPath/Parameters or Arguments). Ok = the task's result; Err = a
    /// failure with AWS's error name (e.g. "States.Timeout",
    /// "Lambda.ServiceException", or a function's errorType). The host
    /// enforces `heartbeat_seconds` (returning "States.HeartbeatTimeout");
    /// the engine enforces `timeout_seconds` itself through
    /// [`Host::sleep_until`] as well.
    fn call_task<'a>(&'a self, call: TaskCall) -> BoxFuture<'a, Result<Value, Failure>>;
    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// Completes at `until_ms` (Wait states, Retry intervals, timeouts).
    /// `key` is stable across replays of the same execution.
    fn sleep_until<'a>(&'a self, key: &'a str, until_ms: i64) -> BoxFuture<'a, ()>;
    /// A random 64-bit value (States.MathRandom, States.UUID, `$random()`,
    /// `$uuid()`, retry jitter); `key` stable across replays.
    fn random_u64(&self, key: &str) -> u64;
    /// The task token for a `.waitForTaskToken` task (`$$.Task.Token`),
    /// `key` stable across replays.
    fn task_token(&self, key: &str) -> String;
    /// Records one history event; returns its id. `event_type` as
    /// GetExecutionHistory names it ("PassStateEntered", "TaskScheduled",
    /// ...), `previous_event_id` the id of the event before it on the same
    /// branch (0 for the first), `details` the event's `*EventDetails`
    /// object as AWS returns it.
    fn record(&self, event_type: &str, previous_event_id: u64, details: Value) -> u64;
    /// Starts the Map Run of a Distributed Map (or finds it again when the
    /// execution is replayed: `spec.map_run_arn` is stable across replays).
    /// `Some`: every child runs through the returned [`MapRunHost`] as an
    /// execution of its own. `None` (the default): the children run inside
    /// this execution, as branches of the engine (TestState and hosts
    /// without child executions).
    fn map_run<'a>(&'a self, spec: &'a MapRunSpec) -> BoxFuture<'a, Option<Arc<dyn MapRunHost>>> {
        let _ = spec;
        Box::pin(async { None })
    }
    /// Redrive: the run of the execution in which the result of the task
    /// call `key` was recorded (0: the original run, n: the n-th redrive),
    /// or None when no result is recorded for it. The engine reruns a Task
    /// state whose unhandled failure was recorded by an earlier run than
    /// the current one ([`ExecutionInfo::redrive_count`]). Hosts that do
    /// not redrive keep the default (None: nothing is rerun).
    fn task_generation(&self, _key: &str) -> Option<u32> {
        None
    }
    /// Redrive: when the execution was last redriven (ms since the Unix
    /// epoch). A redrive resets the state machine's TimeoutSeconds, which
    /// then counts from this time ("Redriving executions", Developer
    /// Guide). Default: None (never redriven).
    fn redriven_at_ms(&self) -> Option<i64> {
        None
    }
    /// Activities: `Some(failure)` when the activity of the task call `key`
    /// (`resource`, an activity ARN) cannot be scheduled, for example
    /// because it does not exist; the engine then records
    /// `ActivityScheduleFailed` instead of `ActivityScheduled` and the state
    /// fails with the failure (Retry / Catch apply). The answer must be the
    /// same on every replay. Default: None (always scheduled).
    fn activity_schedule_failure(&self, key: &str, resource: &str) -> Option<Failure> {
        let _ = (key, resource);
        None
    }
}

/// What a Distributed Map tells its host when its Map Run starts.
#[derive(Clone, Debug, PartialEq)]
pub struct MapRunSpec {
    /// `arn:<partition>:states:<region>:<account>:mapRun:<machine>/<label>:<id>`.
    pub map_run_arn: String,
    /// The Map's Label, or its state name when it has none.
    pub label: String,
    pub state_name: String,
    /// The Map state's replay key (e.g. "Process#1").
    pub key: String,
    /// The children's state machine: the ItemProcessor's `StartAt` and
    /// `States` with the Map's `QueryLanguage`, as JSON text.
    pub definition: String,
    /// ProcessorConfig.ExecutionType: "STANDARD" or "EXPRESS".
    pub execution_type: String,
    /// MaxConcurrency as evaluated (0 = no limit of the definition's own).
    pub max_concurrency: usize,
    /// ToleratedFailurePercentage (0-100), if the definition sets one.
    pub tolerated_failure_percentage: Option<f64>,
    /// ToleratedFailureCount, if the definition sets one.
    pub tolerated_failure_count: Option<f64>,
    /// Items read (before batching).
    pub item_count: usize,
    /// Child executions the run will start (one per item, or per batch).
    pub child_count: usize,
}

/// How a Map Run ended, as the engine tells its [`MapRunHost`].
#[derive(Clone, Debug, PartialEq)]
pub enum MapRunEnd {
    /// Every child ran (failures within the tolerated thresholds);
    /// `results_written`: the ResultWriter stored the children's results.
    Succeeded { results_written: bool },
    /// The run failed (a child failure beyond the thresholds, or the
    /// ResultWriter): children still running are to be stopped.
    Failed(Failure),
}

/// A Map Run as the engine drives it: the host runs each child execution
/// and owns the settings UpdateMapRun changes while the run goes on; the
/// engine reads items, starts children (never more at once than
/// [`MapRunHost::max_concurrency`]), decides on tolerated failures and
/// writes results.
pub trait MapRunHost: Send + Sync {
    /// Runs child `index` (0-based) with `input` to its end: Ok(output) or
    /// the child's failure. `items`: how many items the child processes
    /// (the batch size, or 1). Calling it again for an index whose child
    /// already ran (a replay) answers with that child's outcome.
    fn run_child<'a>(
        &'a self,
        index: usize,
        input: Value,
        items: usize,
    ) -> BoxFuture<'a, Result<Value, Failure>>;
    /// The current MaxConcurrency (0 = as many as AWS allows, 10,000).
    fn max_concurrency(&self) -> usize;
    /// The current tolerated thresholds: (percentage 0-100, count); `None`
    /// for a threshold that was never set (a failure then fails the run).
    fn tolerated_failures(&self) -> (Option<f64>, Option<f64>);
    /// A counter that changes whenever the settings change.
    fn settings_version(&self) -> u64;
    /// Completes once [`MapRunHost::settings_version`] differs from `seen`.
    fn settings_changed<'a>(&'a self, seen: u64) -> BoxFuture<'a, ()>;
    /// Records the end of the run.
    fn finish<'a>(&'a self, end: MapRunEnd) -> BoxFuture<'a, ()>;
}

/// The most child executions a Distributed Map runs at once: AWS's limit of
/// 10,000 parallel child workflow executions (MaxConcurrency 0 or above).
pub const MAX_DISTRIBUTED_CONCURRENCY: usize = 10_000;

/// One call of a Task state's resource.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskCall {
    /// Stable across replays and unique within the execution, e.g.
    /// "Process/Map[3]/Charge#2" (state path + attempt).
    pub key: String,
    pub state_name: String,
    /// e.g. "arn:aws:states:::lambda:invoke" or a function ARN.
    pub resource: String,
    /// The effective parameters.
    pub input: Value,
    /// TimeoutSeconds (default: none for integrations; AWS's default for
    /// activities and legacy Lambda ARNs is 99999999).
    pub timeout_seconds: Option<u64>,
    pub heartbeat_seconds: Option<u64>,
    /// The evaluated Credentials field (`{"RoleArn": ...}`).
    pub credentials: Option<Value>,
    /// Set for `.waitForTaskToken` resources.
    pub task_token: Option<String>,
}

/// A failure: AWS's error name and cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The error name ("States.Timeout", "Lambda.ServiceException", a
    /// function's errorType, a Fail state's Error).
    pub error: String,
    /// The cause, free text (often JSON from the task).
    pub cause: String,
}

impl Failure {
    /// A failure with this error and cause.
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Failure {
        Failure {
            error: error.into(),
            cause: cause.into(),
        }
    }
}

impl From<EvalError> for Failure {
    fn from(e: EvalError) -> Failure {
        Failure {
            error: e.error,
            cause: e.cause,
        }
    }
}

/// Facts for the context object `$$` (Execution.Id/Name/StartTime/RoleArn/
/// Input/RedriveCount, StateMachine.Id/Name).
#[derive(Clone, Debug, Default)]
pub struct ExecutionInfo {
    pub execution_arn: String,
    pub name: String,
    /// ISO 8601 with milliseconds, UTC ("2024-01-01T00:00:00.000Z").
    pub start_time: String,
    pub role_arn: String,
    pub state_machine_arn: String,
    pub state_machine_name: String,
    pub redrive_count: u32,
}

/// TestState's inspectionLevel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InspectionLevel {
    Info,
    Debug,
    Trace,
}

/// TestState's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct TestStateResult {
    /// "SUCCEEDED" | "FAILED" | "RETRIABLE" | "CAUGHT_ERROR".
    pub status: String,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub next_state: Option<String>,
    /// {"input","afterInputPath","afterParameters","result",
    /// "afterResultSelector","afterResultPath","variables"} (JSONPath) or
    /// {"input","afterArguments","result","variables"} (JSONata), each a
    /// string of JSON; empty at INFO level.
    pub inspection_data: Value,
}

// ---------------------------------------------------------------------------
// Time.

/// Parses an RFC 3339 timestamp (`2016-03-14T01:59:00Z`, with optional
/// fraction and offset) to milliseconds since the epoch.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d, h, mi, sec) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60
    {
        return None;
    }
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = &s[start..i.min(start + 3)];
        ms = frac.parse::<i64>().ok()? * 10i64.pow(3 - frac.len() as u32);
    }
    let offset_min = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(c @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let sign = if *c == b'+' { 1 } else { -1 };
            sign * (oh * 60 + om)
        }
        _ => return None,
    };
    let days = stratus_jsonata::calendar::days_from_civil(y, mo, d);
    Some(((days * 86400 + h * 3600 + mi * 60 + sec) - offset_min * 60) * 1000 + ms)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Formats milliseconds since the epoch as `2024-01-01T00:00:00.000Z`.
pub fn format_timestamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, m, d) = stratus_jsonata::calendar::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

// ---------------------------------------------------------------------------
// Variables.

/// The variables a state sees: read-only copies of the outer scopes plus
/// the ones assigned in this scope (Parallel branch, Map iteration or the
/// machine's top level).
#[derive(Clone, Debug, Default)]
pub(crate) struct Vars {
    outer: Arc<HashMap<String, Value>>,
    local: HashMap<String, Value>,
    /// Redrive only: the error handling of the Parallel / Map attempts
    /// this scope runs in, innermost last (see [`Guard`]).
    guards: Arc<Vec<Guard>>,
}

/// What an enclosing Parallel or Map attempt does with a failure that
/// reaches it: a redriven execution reruns a failed Task state only when
/// no enclosing state retries or catches its error (otherwise the
/// original run's handling of that failure stands).
#[derive(Clone, Debug, Default)]
struct Guard {
    /// Each retrier's ErrorEquals and whether it has attempts left.
    retriers: Vec<(Vec<String>, bool)>,
    /// Each catcher's ErrorEquals.
    catchers: Vec<Vec<String>>,
}

impl Guard {
    /// Whether this attempt's Retry (the first retrier matching, if it has
    /// attempts left) or Catch handles `error`.
    fn handles(&self, error: &str) -> bool {
        if let Some((_, left)) = self.retriers.iter().find(|(e, _)| error_matches(e, error))
            && *left
        {
            return true;
        }
        self.catchers.iter().any(|e| error_matches(e, error))
    }
}

impl Vars {
    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        self.local.get(name).or_else(|| self.outer.get(name))
    }

    /// The scope of a Parallel branch or Map iteration started here.
    fn child(&self) -> Vars {
        if self.local.is_empty() {
            return Vars {
                outer: self.outer.clone(),
                local: HashMap::new(),
                guards: self.guards.clone(),
            };
        }
        let mut all = (*self.outer).clone();
        all.extend(self.local.iter().map(|(k, v)| (k.clone(), v.clone())));
        Vars {
            outer: Arc::new(all),
            local: HashMap::new(),
            guards: self.guards.clone(),
        }
    }

    fn all(&self) -> Map<String, Value> {
        let mut m: Map<String, Value> = self
            .outer
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        m.extend(self.local.iter().map(|(k, v)| (k.clone(), v.clone())));
        m
    }

    /// Applies an Assign result. Err: an assignment to a variable of an
    /// outer scope (inner scopes read outer variables but cannot assign
    /// them).
    fn assign(&mut self, values: Map<String, Value>) -> Result<(), String> {
        for k in values.keys() {
            if self.outer.contains_key(k) && !self.local.contains_key(k) {
                return Err(format!(
                    "The variable '{k}' is defined in an outer scope and cannot be assigned in this scope"
                ));
            }
        }
        self.local.extend(values);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Entropy through the host.

struct HostEntropy<'a> {
    host: &'a dyn Host,
    key: &'a str,
    n: u32,
}

impl crate::Entropy for HostEntropy<'_> {
    fn next_u64(&mut self) -> u64 {
        self.n += 1;
        self.host
            .random_u64(&format!("{}/random{}", self.key, self.n))
    }
}

// ---------------------------------------------------------------------------
// The run.

struct Exec<'a> {
    host: &'a dyn Host,
    info: &'a ExecutionInfo,
    input: &'a Value,
    region: String,
    /// TestState inspection capture.
    inspect: Option<&'a Mutex<Map<String, Value>>>,
    /// The execution's TimeoutSeconds deadline (ms since the epoch).
    deadline: Option<i64>,
    /// Set once the execution has timed out: nothing retries or catches
    /// after that.
    timed_out: std::sync::atomic::AtomicBool,
}

/// Where a branch is: key prefix, variables, previous event id, visits.
struct Frame {
    prefix: String,
    vars: Vars,
    prev: u64,
    /// Visits per state index of the branch's graph.
    visits: Vec<u32>,
}

/// What one state does with its input.
struct Step {
    output: Value,
    next: Option<usize>,
    assigned: Option<Map<String, Value>>,
}

/// Per-visit facts for the context object and error causes.
struct Visit<'s> {
    state: &'s State,
    key: String,
    entered_id: u64,
    entered_ms: i64,
    retry_count: u32,
    token: Option<String>,
}

/// The replay key of the execution's TimeoutSeconds timer (after the n-th
/// redrive, whose deadline is new, `$execution/timeout~<n>`).
fn execution_timeout_key(redrive_count: u32) -> String {
    match redrive_count {
        0 => "$execution/timeout".to_string(),
        n => format!("$execution/timeout~{n}"),
    }
}

fn execution_timeout() -> Failure {
    Failure::new(
        "States.Timeout",
        "The execution timed out: it ran longer than the state machine's TimeoutSeconds",
    )
}

impl Exec<'_> {
    /// Sleeps until `until` (ms), or fails with States.Timeout at the
    /// execution's deadline if that comes first.
    async fn sleep(&self, key: &str, until: i64) -> Result<(), Failure> {
        match self.deadline {
            Some(d) if until >= d => {
                // The execution's deadline comes first: this is the
                // execution's own timeout timer (same key, same deadline),
                // so the state's timer is not spent when a redrive sets a
                // new deadline.
                self.host
                    .sleep_until(&execution_timeout_key(self.info.redrive_count), d)
                    .await;
                self.timed_out
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                Err(execution_timeout())
            }
            _ => {
                self.host.sleep_until(key, until).await;
                Ok(())
            }
        }
    }

    fn is_timed_out(&self) -> bool {
        self.timed_out.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn record(&self, frame: &mut Frame, ty: &str, details: Value) -> u64 {
        let id = self.host.record(ty, frame.prev, details);
        frame.prev = id;
        id
    }

    /// The context object `$$` (`only`: just that top-level field).
    fn context(
        &self,
        v: &Visit<'_>,
        map_item: Option<(usize, &Value)>,
        only: Option<&str>,
    ) -> Value {
        if let Some(f) = only {
            let part = match f {
                "Execution" => json!({
                    "Id": self.info.execution_arn,
                    "Input": self.input,
                    "Name": self.info.name,
                    "RoleArn": self.info.role_arn,
                    "StartTime": self.info.start_time,
                    "RedriveCount": self.info.redrive_count,
                }),
                "State" => json!({
                    "EnteredTime": format_timestamp(v.entered_ms),
                    "Name": v.state.name,
                    "RetryCount": v.retry_count,
                }),
                "StateMachine" => json!({
                    "Id": self.info.state_machine_arn,
                    "Name": self.info.state_machine_name,
                }),
                "Task" => match &v.token {
                    Some(t) => json!({"Token": t}),
                    None => return json!({}),
                },
                "Map" => match map_item {
                    Some((i, item)) => json!({"Item": {"Index": i, "Value": item}}),
                    None => return json!({}),
                },
                _ => return json!({}),
            };
            let mut m = Map::new();
            m.insert(f.to_string(), part);
            return Value::Object(m);
        }
        let mut c = json!({
            "Execution": {
                "Id": self.info.execution_arn,
                "Input": self.input,
                "Name": self.info.name,
                "RoleArn": self.info.role_arn,
                "StartTime": self.info.start_time,
                "RedriveCount": self.info.redrive_count,
            },
            "State": {
                "EnteredTime": format_timestamp(v.entered_ms),
                "Name": v.state.name,
                "RetryCount": v.retry_count,
            },
            "StateMachine": {
                "Id": self.info.state_machine_arn,
                "Name": self.info.state_machine_name,
            },
        });
        if let Some(o) = c.as_object_mut() {
            if let Some(t) = &v.token {
                o.insert("Task".into(), json!({"Token": t}));
            }
            if let Some((i, item)) = map_item {
                o.insert("Map".into(), json!({"Item": {"Index": i, "Value": item}}));
            }
        }
        c
    }

    fn capture(&self, key: &str, v: &Value) {
        if let Some(m) = self.inspect
            && let Ok(mut m) = m.lock()
        {
            m.insert(key.into(), Value::String(v.to_string()));
        }
    }
}

/// "An error occurred while executing the state 'X' (entered at the event
/// id #N). " + cause: AWS's wording for States.Runtime failures.
fn runtime(v: &Visit<'_>, e: EvalError) -> Failure {
    if e.error == "States.Runtime" || e.error == "States.QueryEvaluationError" {
        Failure::new(
            e.error,
            format!(
                "An error occurred while executing the state '{}' (entered at the event id #{}). {}",
                v.state.name, v.entered_id, e.cause
            ),
        )
    } else {
        e.into()
    }
}

fn ser(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The deepest nesting a state's input or output may have (Jackson's
/// default maximum nesting depth, which Step Functions' JSON parser
/// applies). Deeper values would also make serialising and dropping them
/// recurse without bound.
pub const MAX_NESTING_DEPTH: usize = 1000;

/// Whether `v` nests deeper than `max` levels (recursion bounded by `max`).
fn deeper_than(v: &Value, max: usize) -> bool {
    match v {
        Value::Array(a) if !a.is_empty() => max == 0 || a.iter().any(|x| deeper_than(x, max - 1)),
        Value::Object(o) if !o.is_empty() => {
            max == 0 || o.values().any(|x| deeper_than(x, max - 1))
        }
        _ => false,
    }
}

fn size_check(v: &Value, what: &str, name: &str) -> Result<String, Failure> {
    if deeper_than(v, MAX_NESTING_DEPTH) {
        return Err(Failure::new(
            "States.Runtime",
            format!(
                "The state/task '{name}' {what} a value nested more than {MAX_NESTING_DEPTH} levels deep"
            ),
        ));
    }
    let s = ser(v);
    if s.len() > MAX_PAYLOAD_BYTES {
        return Err(Failure::new(
            "States.DataLimitExceeded",
            format!(
                "The state/task '{name}' {what} a result with a size exceeding the maximum number of bytes service limit."
            ),
        ));
    }
    Ok(s)
}

/// Evaluates a JSONPath-mode path field against `input`. Err: AWS's
/// "Invalid path" cause.
fn apply_io_path<'v>(
    p: &IoPath,
    input: &'v Value,
    context: &Lazy<'_>,
    vars: &Vars,
) -> Result<Cow<'v, Value>, EvalError> {
    match p {
        IoPath::Default => Ok(Cow::Borrowed(input)),
        IoPath::Null => Ok(Cow::Owned(Value::Object(Map::new()))),
        IoPath::Path(p) => {
            if p.is_root() && *p.root() == Root::Input {
                return Ok(Cow::Borrowed(input));
            }
            if *p.root() == Root::Input
                && p.is_definite()
                && let Some(v) = p.select_ref(input)
            {
                return Ok(Cow::Owned(v.clone()));
            }
            let found = match p.root() {
                Root::Input => p.select(input),
                Root::Context => context.select(p),
                Root::Variable(n) => vars.get(n).and_then(|v| p.select(v)),
            };
            found.map(Cow::Owned).ok_or_else(|| {
                EvalError::runtime(format!(
                    "Invalid path '{}' : No results for path: {}",
                    p.text(),
                    p.normalized()
                ))
            })
        }
    }
}

/// OutputPath over an owned value (no copy when it is `$` or absent).
fn output_path(p: &IoPath, v: Value, context: &Lazy<'_>, vars: &Vars) -> Result<Value, EvalError> {
    match p {
        IoPath::Default => Ok(v),
        IoPath::Path(path) if path.is_root() && *path.root() == Root::Input => Ok(v),
        _ => apply_io_path(p, &v, context, vars).map(Cow::into_owned),
    }
}

fn eval_template(
    ex: &Exec<'_>,
    t: &crate::path::Template,
    input: &Value,
    context: &Lazy<'_>,
    vars: &Vars,
    key: &str,
) -> Result<Value, EvalError> {
    let lookup = |n: &str| vars.get(n).cloned();
    let mut entropy = HostEntropy {
        host: ex.host,
        key,
        n: 0,
    };
    let mut scope = Scope {
        input,
        context,
        variable: &lookup,
        entropy: &mut entropy,
    };
    t.evaluate(&mut scope)
}

/// The JSONata environment of a state: `$states` plus every variable and
/// Step Functions' extra functions.
fn jsonata_env(
    ex: &Exec<'_>,
    vars: &Vars,
    states: Value,
    key: &str,
) -> stratus_jsonata::Environment {
    let mut env = stratus_jsonata::Environment::new();
    for (k, v) in vars.outer.iter().chain(vars.local.iter()) {
        env.bind(k, v.clone());
    }
    env.bind("states", states);
    crate::jsonata_functions::register(
        &mut env,
        Arc::new(Mutex::new(JsonataEntropy::new(ex, key))),
    );
    env
}

/// Entropy for JSONata's `$random()` / `$uuid()`: one host-provided seed
/// per evaluation environment (key `<state key>/jsonata`), expanded with
/// splitmix64, so replays draw the same values.
struct JsonataEntropy {
    state: u64,
}

impl JsonataEntropy {
    fn new(ex: &Exec<'_>, key: &str) -> JsonataEntropy {
        JsonataEntropy {
            state: ex.host.random_u64(&format!("{key}/jsonata")),
        }
    }
}

impl crate::Entropy for JsonataEntropy {
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn states_var(
    input: &Value,
    context: Value,
    result: Option<&Value>,
    error_output: Option<&Value>,
) -> Value {
    let mut m = Map::new();
    m.insert("input".into(), input.clone());
    m.insert("context".into(), context);
    if let Some(r) = result {
        m.insert("result".into(), r.clone());
    }
    if let Some(e) = error_output {
        m.insert("errorOutput".into(), e.clone());
    }
    Value::Object(m)
}

/// Evaluates Assign (JSONPath: a payload template over `data`; JSONata:
/// values over `$states`) into the variables to set.
fn eval_assign(
    ex: &Exec<'_>,
    a: &Assign,
    data: &Value,
    context: &Lazy<'_>,
    env: Option<&stratus_jsonata::Environment>,
    vars: &Vars,
    key: &str,
) -> Result<Map<String, Value>, EvalError> {
    let v = match a {
        Assign::Path(t) => eval_template(ex, t, data, context, vars, key)?,
        Assign::Jsonata(j) => {
            let owned;
            let env = match env {
                Some(e) => e,
                None => {
                    owned = jsonata_env(
                        ex,
                        vars,
                        states_var(data, context.get().clone(), None, None),
                        key,
                    );
                    &owned
                }
            };
            j.evaluate("Assign", env, data)?
        }
    };
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(EvalError {
            error: "States.QueryEvaluationError".into(),
            cause: "The value for the field 'Assign' must evaluate to an OBJECT".into(),
        }),
    }
}

fn num_value(
    ex: &Exec<'_>,
    n: &Num,
    field: &str,
    input: &Value,
    context: &Lazy<'_>,
    vars: &Vars,
    env: Option<&stratus_jsonata::Environment>,
) -> Result<f64, EvalError> {
    let v = match n {
        Num::Lit(x) => return Ok(*x),
        Num::Path(p) => {
            let found = match p.root() {
                Root::Input => p.select(input),
                Root::Context => context.select(p),
                Root::Variable(name) => vars.get(name).and_then(|v| p.select(v)),
            };
            match found {
                Some(v) => v,
                None => {
                    return Err(EvalError::runtime(format!(
                        "Invalid path '{}' : No results for path: {}",
                        p.text(),
                        p.normalized()
                    )));
                }
            }
        }
        Num::Expr(j) => {
            let owned;
            let env = match env {
                Some(e) => e,
                None => {
                    owned = jsonata_env(
                        ex,
                        vars,
                        states_var(input, context.get().clone(), None, None),
                        "num",
                    );
                    &owned
                }
            };
            j.evaluate(field, env, input)?
        }
    };
    match v.as_f64() {
        Some(x) if x >= 0.0 => Ok(x),
        _ => Err(EvalError {
            error: match n {
                Num::Expr(_) => "States.QueryEvaluationError".into(),
                _ => "States.Runtime".into(),
            },
            cause: format!(
                "The value for the field '{field}' must be a non-negative number, but was '{}'",
                ser(&v)
            ),
        }),
    }
}

fn text_value(
    ex: &Exec<'_>,
    t: &Text,
    field: &str,
    input: &Value,
    context: &Lazy<'_>,
    vars: &Vars,
    key: &str,
) -> Result<Option<String>, EvalError> {
    match t {
        Text::Lit(s) => Ok(Some(s.clone())),
        Text::Path(p) => {
            let found = match p.root() {
                Root::Input => p.select(input),
                Root::Context => context.select(p),
                Root::Variable(n) => vars.get(n).and_then(|v| p.select(v)),
            };
            match found {
                Some(Value::String(s)) => Ok(Some(s)),
                Some(v) => Err(EvalError::runtime(format!(
                    "The value '{}' selected by the path '{}' for the field '{field}' is not a string",
                    ser(&v),
                    p.text()
                ))),
                None => Err(EvalError::runtime(format!(
                    "Invalid path '{}' : No results for path: {}",
                    p.text(),
                    p.normalized()
                ))),
            }
        }
        Text::Intrinsic(expr) => {
            let lookup = |n: &str| vars.get(n).cloned();
            let resolve = |p: &str| -> Option<Value> {
                let p = Path::parse(p).ok()?;
                match p.root() {
                    Root::Input => p.select(input),
                    Root::Context => context.select(&p),
                    Root::Variable(n) => p.select(&lookup(n)?),
                }
            };
            let mut entropy = HostEntropy {
                host: ex.host,
                key,
                n: 0,
            };
            let v = crate::intrinsics::evaluate(expr, &resolve, &mut entropy).map_err(|e| {
                EvalError {
                    error: e.error,
                    cause: e.cause,
                }
            })?;
            Ok(Some(match v {
                Value::String(s) => s,
                v => ser(&v),
            }))
        }
        Text::Expr(j) => {
            let env = jsonata_env(
                ex,
                vars,
                states_var(input, context.get().clone(), None, None),
                key,
            );
            match j.evaluate(field, &env, input)? {
                Value::String(s) => Ok(Some(s)),
                v => Ok(Some(ser(&v))),
            }
        }
    }
}

/// Whether a retrier's or catcher's ErrorEquals matches `error`
/// ("Handling errors": States.ALL matches every error except
/// States.Runtime and States.DataLimitExceeded; States.TaskFailed matches
/// every error except States.Timeout; States.Runtime is never retried or
/// caught; States.Timeout also matches States.HeartbeatTimeout).
pub fn error_matches(list: &[String], error: &str) -> bool {
    if error == "States.Runtime" {
        return false;
    }
    let terminal = error == "States.DataLimitExceeded";
    list.iter().any(|e| {
        e == error
            || (e == "States.Timeout" && error == "States.HeartbeatTimeout")
            || (e == "States.ALL" && !terminal)
            || (e == "States.TaskFailed"
                && !terminal
                && !matches!(error, "States.Timeout" | "States.HeartbeatTimeout"))
    })
}

fn error_output(f: &Failure) -> Value {
    json!({"Error": f.error, "Cause": f.cause})
}

/// The resourceType/resource pair of an integration ARN
/// ("arn:aws:states:::lambda:invoke" -> ("lambda", "invoke");
/// "arn:aws:states:::states:startExecution.sync:2" -> ("states",
/// "startExecution.sync:2")).
fn resource_parts(resource: &str) -> (String, String) {
    let rest = resource.splitn(6, ':').nth(5).unwrap_or("");
    if let Some(base) = rest.strip_suffix(".sync:2")
        && let Some((ty, r)) = base.rsplit_once(':')
    {
        return (ty.to_string(), format!("{r}.sync:2"));
    }
    match rest.rsplit_once(':') {
        Some((ty, r)) => (ty.to_string(), r.to_string()),
        None => (rest.to_string(), String::new()),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum ResourceKind {
    Integration,
    Lambda,
    Activity,
}

fn resource_kind(resource: &str) -> ResourceKind {
    let parts: Vec<&str> = resource.splitn(7, ':').collect();
    match parts.as_slice() {
        [_, _, "lambda", _, _, "function", ..] => ResourceKind::Lambda,
        [_, _, "states", r, a, "activity", ..] if !r.is_empty() && !a.is_empty() => {
            ResourceKind::Activity
        }
        _ => ResourceKind::Integration,
    }
}

/// The Entered / Exited event types of a state type.
fn event_names(ty: &str) -> (&'static str, &'static str) {
    match ty {
        "Pass" => ("PassStateEntered", "PassStateExited"),
        "Task" => ("TaskStateEntered", "TaskStateExited"),
        "Choice" => ("ChoiceStateEntered", "ChoiceStateExited"),
        "Wait" => ("WaitStateEntered", "WaitStateExited"),
        "Succeed" => ("SucceedStateEntered", "SucceedStateExited"),
        "Parallel" => ("ParallelStateEntered", "ParallelStateExited"),
        "Map" => ("MapStateEntered", "MapStateExited"),
        _ => ("FailStateEntered", "FailStateExited"),
    }
}

fn run_graph<'a>(
    ex: &'a Exec<'a>,
    graph: &'a Graph,
    input: Value,
    frame: &'a mut Frame,
) -> BoxFuture<'a, Result<Value, Failure>> {
    Box::pin(async move {
        let mut cur = graph.start;
        let mut input = input;
        // The previous state's output, already serialised.
        let mut carried: Option<String> = None;
        loop {
            let state = &graph.states[cur];
            let visit = {
                if frame.visits.len() < graph.states.len() {
                    frame.visits.resize(graph.states.len(), 0);
                }
                frame.visits[cur] += 1;
                frame.visits[cur]
            };
            let key = if visit > 1 {
                format!("{}{}@{visit}", frame.prefix, state.name)
            } else {
                format!("{}{}", frame.prefix, state.name)
            };
            let ty = state.type_name();
            let input_s = match carried.take() {
                Some(s) => s,
                None => size_check(&input, "received", &state.name)?,
            };
            let (entered_ty, exited_ty) = event_names(ty);
            let entered_id = ex.record(
                frame,
                entered_ty,
                json!({"name": state.name, "input": input_s, "inputDetails": {"truncated": false}}),
            );
            ex.capture("input", &input);
            let v = Visit {
                state,
                key,
                entered_id,
                entered_ms: ex.host.now_ms(),
                retry_count: 0,
                token: None,
            };
            let step = run_state(ex, graph, state, input, frame, v).await?;
            let out_s = size_check(&step.output, "returned", &state.name)?;
            let mut details =
                json!({"name": state.name, "output": out_s, "outputDetails": {"truncated": false}});
            if let (Some(a), Some(d)) = (&step.assigned, details.as_object_mut()) {
                let vars: Map<String, Value> = a
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(ser(v))))
                    .collect();
                // Variables: at most 256 KiB for what one Assign sets
                // ("Passing data between states with variables", limits).
                let total: usize = vars
                    .iter()
                    .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
                    .sum();
                if total > MAX_PAYLOAD_BYTES {
                    return Err(Failure::new(
                        "States.DataLimitExceeded",
                        format!(
                            "The variables assigned by the state '{}' are {total} bytes, more than the {MAX_PAYLOAD_BYTES}-byte limit.",
                            state.name
                        ),
                    ));
                }
                d.insert("assignedVariables".into(), Value::Object(vars));
                d.insert(
                    "assignedVariablesDetails".into(),
                    json!({"truncated": false}),
                );
            }
            ex.record(frame, exited_ty, details);
            match step.next {
                Some(n) => {
                    cur = n;
                    input = step.output;
                    carried = Some(out_s);
                }
                None => return Ok(step.output),
            }
        }
    })
}

/// Runs one state: data processing, the state's work, retries and
/// catchers. Records the state's inner events (not Entered/Exited).
async fn run_state<'a>(
    ex: &'a Exec<'a>,
    _graph: &'a Graph,
    state: &'a State,
    input: Value,
    frame: &'a mut Frame,
    mut v: Visit<'a>,
) -> Result<Step, Failure> {
    match &state.kind {
        Kind::Pass { result } => pass(ex, state, result.as_ref(), input, frame, &v),
        Kind::Succeed => {
            let (output, _) = simple_io(ex, state, input, frame, &v, None)?;
            Ok(Step {
                output,
                next: None,
                assigned: None,
            })
        }
        Kind::Fail { error, cause } => {
            let context_fn = |only: Option<&str>| ex.context(&v, None, only);
            let context = Lazy::new(&context_fn);
            let e = match error {
                Some(t) => text_value(ex, t, "Error", &input, &context, &frame.vars, &v.key)
                    .map_err(|e| runtime(&v, e))?,
                None => None,
            };
            let c = match cause {
                Some(t) => text_value(ex, t, "Cause", &input, &context, &frame.vars, &v.key)
                    .map_err(|e| runtime(&v, e))?,
                None => None,
            };
            Err(Failure::new(e.unwrap_or_default(), c.unwrap_or_default()))
        }
        Kind::Wait(w) => {
            let (output, assigned, until) = {
                let context_fn = |only: Option<&str>| ex.context(&v, None, only);
                let context = Lazy::new(&context_fn);
                let jsonata = state.ql == QueryLanguage::Jsonata;
                let env = jsonata.then(|| {
                    jsonata_env(
                        ex,
                        &frame.vars,
                        states_var(&input, context.get().clone(), None, None),
                        &v.key,
                    )
                });
                let effective = if jsonata {
                    Cow::Borrowed(&input)
                } else {
                    apply_io_path(&state.input_path, &input, &context, &frame.vars)
                        .map_err(|e| runtime(&v, e))?
                };
                let until = match w {
                    Wait::Seconds(n) => {
                        let secs = num_value(
                            ex,
                            n,
                            "Seconds",
                            &effective,
                            &context,
                            &frame.vars,
                            env.as_ref(),
                        )
                        .map_err(|e| runtime(&v, e))?;
                        v.entered_ms + (secs * 1000.0) as i64
                    }
                    Wait::Timestamp(t) => {
                        let s = text_value(
                            ex,
                            t,
                            "Timestamp",
                            &effective,
                            &context,
                            &frame.vars,
                            &v.key,
                        )
                        .map_err(|e| runtime(&v, e))?
                        .unwrap_or_default();
                        // Wait considers whole seconds: milliseconds are truncated.
                        parse_timestamp(&s).map(|ms| ms.div_euclid(1000) * 1000).ok_or_else(|| {
                            runtime(
                                &v,
                                EvalError {
                                    error: if jsonata { "States.QueryEvaluationError".into() } else { "States.Runtime".into() },
                                    cause: format!("The value '{s}' for the field 'Timestamp' is not a valid ISO-8601 timestamp"),
                                },
                            )
                        })?
                    }
                };
                let effective = effective.into_owned();
                let (output, assigned) = finish_simple(
                    ex,
                    state,
                    &input,
                    effective,
                    frame,
                    &v,
                    env.as_ref(),
                    &context,
                )?;
                (output, assigned, until)
            };
            let key = format!("{}/wait", v.key);
            ex.sleep(&key, until).await?;
            Ok(Step {
                output,
                next: state.next,
                assigned,
            })
        }
        Kind::Choice(c) => {
            let context_fn = |only: Option<&str>| ex.context(&v, None, only);
            let context = Lazy::new(&context_fn);
            let jsonata = state.ql == QueryLanguage::Jsonata;
            let env = jsonata.then(|| {
                jsonata_env(
                    ex,
                    &frame.vars,
                    states_var(&input, context.get().clone(), None, None),
                    &v.key,
                )
            });
            let effective = if jsonata {
                Cow::Borrowed(&input)
            } else {
                apply_io_path(&state.input_path, &input, &context, &frame.vars)
                    .map_err(|e| runtime(&v, e))?
            };
            let mut chosen = None;
            for b in &c.branches {
                let hit = match &b.cond {
                    ChoiceCond::Path { rule, paths } => {
                        let resolve = |s: &str| -> Option<Value> {
                            let owned;
                            let p = match paths.get(s) {
                                Some(p) => p,
                                None => {
                                    owned = Path::parse(s).ok()?;
                                    &owned
                                }
                            };
                            match p.root() {
                                Root::Input => match p.select_ref(&effective) {
                                    Some(x) if p.is_definite() => Some(x.clone()),
                                    _ => p.select(&effective),
                                },
                                Root::Context => context.select(p),
                                Root::Variable(n) => frame.vars.get(n).and_then(|x| p.select(x)),
                            }
                        };
                        rule.evaluate(&resolve).map_err(|e| {
                            runtime(
                                &v,
                                EvalError {
                                    error: e.error,
                                    cause: e.cause,
                                },
                            )
                        })?
                    }
                    ChoiceCond::Jsonata(j) => {
                        let env = env
                            .as_ref()
                            .ok_or_else(|| Failure::new("States.Runtime", "no environment"))?;
                        match j
                            .evaluate("Condition", env, &effective)
                            .map_err(|e| runtime(&v, e))?
                        {
                            Value::Bool(b) => b,
                            other => {
                                return Err(Failure::new(
                                    "States.QueryEvaluationError",
                                    format!(
                                        "The JSONata expression specified for the field 'Condition' returned '{}', which is not a boolean",
                                        ser(&other)
                                    ),
                                ));
                            }
                        }
                    }
                };
                if hit {
                    chosen = Some(b);
                    break;
                }
            }
            let next = match (chosen, c.default) {
                (Some(b), _) => b.next,
                (None, Some(d)) => d,
                (None, None) => {
                    return Err(Failure::new(
                        "States.NoChoiceMatched",
                        format!(
                            "An error occurred while executing the state '{}' (entered at the event id #{}). No Choice rule matched and no Default was specified",
                            state.name, v.entered_id
                        ),
                    ));
                }
            };
            // Assign and Output: the state's own, then the chosen rule's.
            let effective = match effective {
                Cow::Borrowed(_) => input,
                Cow::Owned(v) => v,
            };
            let mut assigned: Option<Map<String, Value>> = None;
            for a in [
                state.assign.as_ref(),
                chosen.and_then(|b| b.assign.as_ref()),
            ]
            .into_iter()
            .flatten()
            {
                let m = eval_assign(
                    ex,
                    a,
                    &effective,
                    &context,
                    env.as_ref(),
                    &frame.vars,
                    &v.key,
                )
                .map_err(|e| runtime(&v, e))?;
                assigned.get_or_insert_with(Map::new).extend(m);
            }
            let output = match (
                chosen
                    .and_then(|b| b.output.as_ref())
                    .or(state.output.as_ref()),
                &env,
            ) {
                (Some(o), Some(env)) => o
                    .evaluate("Output", env, &effective)
                    .map_err(|e| runtime(&v, e))?,
                _ => {
                    if jsonata {
                        effective
                    } else {
                        output_path(&state.output_path, effective, &context, &frame.vars)
                            .map_err(|e| runtime(&v, e))?
                    }
                }
            };
            if let Some(a) = &assigned {
                frame
                    .vars
                    .assign(a.clone())
                    .map_err(|c| Failure::new("States.Runtime", c))?;
            }
            Ok(Step {
                output,
                next: Some(next),
                assigned,
            })
        }
        Kind::Task(_) | Kind::Parallel(_) | Kind::Map(_) => {
            let redrives = ex.info.redrive_count;
            // The run (0 = original, n = n-th redrive) whose attempts this
            // loop replays or runs; see `rerun_after_redrive`.
            let mut generation = 0u32;
            let mut counts = vec![0u64; state.retry.len()];
            let mut attempt = 1u32;
            loop {
                v.retry_count = attempt - 1;
                let attempt_key = attempt_key(&v.key, generation, attempt);
                let r = if redrives > 0 && !matches!(state.kind, Kind::Task(_)) {
                    // Inner states see what this attempt would retry or
                    // catch.
                    let saved = frame.vars.guards.clone();
                    let mut guards = (*saved).clone();
                    guards.push(Guard {
                        retriers: state
                            .retry
                            .iter()
                            .zip(&counts)
                            .map(|(r, n)| (r.errors.clone(), *n < r.max_attempts))
                            .collect(),
                        catchers: state.catch.iter().map(|c| c.errors.clone()).collect(),
                    });
                    frame.vars.guards = Arc::new(guards);
                    let r = attempt_state(ex, state, &input, frame, &v, &attempt_key).await;
                    frame.vars.guards = saved;
                    r
                } else {
                    attempt_state(ex, state, &input, frame, &v, &attempt_key).await
                };
                let f = match r {
                    Ok(step) => return Ok(step),
                    Err(f) => f,
                };
                if ex.is_timed_out() {
                    return Err(f);
                }
                if let Some(i) = state
                    .retry
                    .iter()
                    .position(|r| error_matches(&r.errors, &f.error))
                {
                    let r = &state.retry[i];
                    if counts[i] < r.max_attempts {
                        let mut delay = r.interval * r.backoff.powi(counts[i] as i32);
                        if let Some(m) = r.max_delay {
                            delay = delay.min(m);
                        }
                        if r.full_jitter {
                            let x = ex.host.random_u64(&format!("{attempt_key}/jitter"));
                            delay *= (x >> 11) as f64 / (1u64 << 53) as f64;
                        }
                        counts[i] += 1;
                        let until = ex.host.now_ms() + (delay * 1000.0) as i64;
                        let key = format!("{attempt_key}/retry");
                        ex.sleep(&key, until).await?;
                        attempt += 1;
                        continue;
                    }
                }
                if let Some(c) = state
                    .catch
                    .iter()
                    .find(|c| error_matches(&c.errors, &f.error))
                {
                    return catch(ex, state, c, &input, &f, frame, &v);
                }
                if rerun_after_redrive(ex, state, frame, generation, &attempt_key, &f) {
                    generation += 1;
                    counts.iter_mut().for_each(|n| *n = 0);
                    attempt = 1;
                    continue;
                }
                return Err(f);
            }
        }
    }
}

/// The replay key of one attempt of a Task, Parallel or Map state:
/// `<visit key>#<attempt>` in the original run, `<visit key>~<n>#<attempt>`
/// when the state is rerun by the n-th redrive (so the journal has no
/// result for it and the task really runs again).
fn attempt_key(visit_key: &str, generation: u32, attempt: u32) -> String {
    if generation == 0 {
        format!("{visit_key}#{attempt}")
    } else {
        format!("{visit_key}~{generation}#{attempt}")
    }
}

/// Redrive ("Redriving executions", Developer Guide): whether a Task state
/// whose failure nothing handles is run again instead of failing. It is
/// when the failed call's result was recorded by an earlier run than the
/// current redrive, and no enclosing Parallel / Map attempt retries or
/// catches the error (that handling already happened in the earlier run).
/// The rerun starts at attempt 1 with fresh retry counts, one redrive
/// generation later (each generation's attempts are replayed in turn).
fn rerun_after_redrive(
    ex: &Exec<'_>,
    state: &State,
    frame: &Frame,
    generation: u32,
    attempt_key: &str,
    f: &Failure,
) -> bool {
    generation < ex.info.redrive_count
        && matches!(state.kind, Kind::Task(_))
        && !frame.vars.guards.iter().any(|g| g.handles(&f.error))
        && ex
            .host
            .task_generation(attempt_key)
            .is_some_and(|g| g < ex.info.redrive_count)
}

/// Applies a catcher: the error output placed by ResultPath (JSONPath) or
/// shaped by Output (JSONata), the catcher's Assign, and its Next.
fn catch(
    ex: &Exec<'_>,
    state: &State,
    c: &Catcher,
    raw_input: &Value,
    f: &Failure,
    frame: &mut Frame,
    v: &Visit<'_>,
) -> Result<Step, Failure> {
    let err = error_output(f);
    let context_fn = |only: Option<&str>| ex.context(v, None, only);
    let context = Lazy::new(&context_fn);
    let (output, assigned) = if state.ql == QueryLanguage::Jsonata {
        let env = jsonata_env(
            ex,
            &frame.vars,
            states_var(raw_input, context.get().clone(), None, Some(&err)),
            &v.key,
        );
        let assigned = match &c.assign {
            Some(a) => Some(
                eval_assign(ex, a, raw_input, &context, Some(&env), &frame.vars, &v.key)
                    .map_err(|e| runtime(v, e))?,
            ),
            None => None,
        };
        let output = match &c.output {
            Some(o) => o
                .evaluate("Output", &env, raw_input)
                .map_err(|e| runtime(v, e))?,
            None => err.clone(),
        };
        (output, assigned)
    } else {
        let assigned = match &c.assign {
            Some(a) => Some(
                eval_assign(ex, a, &err, &context, None, &frame.vars, &v.key)
                    .map_err(|e| runtime(v, e))?,
            ),
            None => None,
        };
        let output = match &c.result_path {
            IoPath::Default => err.clone(),
            IoPath::Null => raw_input.clone(),
            IoPath::Path(p) => insert_result(raw_input.clone(), p, err.clone())
                .map_err(|c| runtime(v, EvalError::runtime(c)))?,
        };
        (output, assigned)
    };
    if let Some(a) = &assigned {
        frame
            .vars
            .assign(a.clone())
            .map_err(|c| Failure::new("States.Runtime", c))?;
    }
    if ex.inspect.is_some() {
        ex.capture("errorDetails", &json!({"catchIndex": state.catch.iter().position(|x| std::ptr::eq(x, c)).unwrap_or(0)}));
    }
    Ok(Step {
        output,
        next: Some(c.next),
        assigned,
    })
}

/// InputPath → (state) → OutputPath for Succeed; Output for JSONata.
fn simple_io(
    ex: &Exec<'_>,
    state: &State,
    input: Value,
    frame: &mut Frame,
    v: &Visit<'_>,
    _unused: Option<()>,
) -> Result<(Value, Option<Map<String, Value>>), Failure> {
    let context_fn = |only: Option<&str>| ex.context(v, None, only);
    let context = Lazy::new(&context_fn);
    if state.ql == QueryLanguage::Jsonata {
        let env = jsonata_env(
            ex,
            &frame.vars,
            states_var(&input, context.get().clone(), None, None),
            &v.key,
        );
        return finish_simple(
            ex,
            state,
            &input,
            input.clone(),
            frame,
            v,
            Some(&env),
            &context,
        );
    }
    let effective = apply_io_path(&state.input_path, &input, &context, &frame.vars)
        .map_err(|e| runtime(v, e))?
        .into_owned();
    finish_simple(ex, state, &input, effective, frame, v, None, &context)
}

/// Assign + OutputPath/Output for states without a result (Wait, Succeed).
#[allow(clippy::too_many_arguments)]
fn finish_simple(
    ex: &Exec<'_>,
    state: &State,
    raw_input: &Value,
    effective: Value,
    frame: &mut Frame,
    v: &Visit<'_>,
    env: Option<&stratus_jsonata::Environment>,
    context: &Lazy<'_>,
) -> Result<(Value, Option<Map<String, Value>>), Failure> {
    let assigned = match &state.assign {
        Some(a) => Some(
            eval_assign(ex, a, &effective, context, env, &frame.vars, &v.key)
                .map_err(|e| runtime(v, e))?,
        ),
        None => None,
    };
    let output = match (state.ql, &state.output, env) {
        (QueryLanguage::Jsonata, Some(o), Some(env)) => o
            .evaluate("Output", env, raw_input)
            .map_err(|e| runtime(v, e))?,
        (QueryLanguage::Jsonata, _, _) => effective,
        _ => output_path(&state.output_path, effective, context, &frame.vars)
            .map_err(|e| runtime(v, e))?,
    };
    if let Some(a) = &assigned {
        frame
            .vars
            .assign(a.clone())
            .map_err(|c| Failure::new("States.Runtime", c))?;
    }
    Ok((output, assigned))
}

fn pass(
    ex: &Exec<'_>,
    state: &State,
    result: Option<&Value>,
    input: Value,
    frame: &mut Frame,
    v: &Visit<'_>,
) -> Result<Step, Failure> {
    // The common case: nothing to process, the input passes through.
    if state.ql == QueryLanguage::JsonPath
        && matches!(state.input_path, IoPath::Default)
        && matches!(state.output_path, IoPath::Default)
        && matches!(state.result_path, IoPath::Default)
        && state.parameters.is_none()
        && result.is_none()
        && state.assign.is_none()
        && ex.inspect.is_none()
    {
        return Ok(Step {
            output: input,
            next: state.next,
            assigned: None,
        });
    }
    let context_fn = |only: Option<&str>| ex.context(v, None, only);
    let context = Lazy::new(&context_fn);
    if state.ql == QueryLanguage::Jsonata {
        let env = jsonata_env(
            ex,
            &frame.vars,
            states_var(&input, context.get().clone(), None, None),
            &v.key,
        );
        let assigned = match &state.assign {
            Some(a) => Some(
                eval_assign(ex, a, &input, &context, Some(&env), &frame.vars, &v.key)
                    .map_err(|e| runtime(v, e))?,
            ),
            None => None,
        };
        let output = match &state.output {
            Some(o) => o
                .evaluate("Output", &env, &input)
                .map_err(|e| runtime(v, e))?,
            None => input,
        };
        if let Some(a) = &assigned {
            frame
                .vars
                .assign(a.clone())
                .map_err(|c| Failure::new("States.Runtime", c))?;
        }
        return Ok(Step {
            output,
            next: state.next,
            assigned,
        });
    }
    let effective = apply_io_path(&state.input_path, &input, &context, &frame.vars)
        .map_err(|e| runtime(v, e))?;
    ex.capture("afterInputPath", &effective);
    let effective: Cow<'_, Value> = match &state.parameters {
        Some(t) => Cow::Owned(
            eval_template(ex, t, &effective, &context, &frame.vars, &v.key)
                .map_err(|e| runtime(v, e))?,
        ),
        None => effective,
    };
    ex.capture("afterParameters", &effective);
    let result = match result {
        Some(r) => r.clone(),
        None => effective.into_owned(),
    };
    ex.capture("result", &result);
    let assigned = match &state.assign {
        Some(a) => Some(
            eval_assign(ex, a, &result, &context, None, &frame.vars, &v.key)
                .map_err(|e| runtime(v, e))?,
        ),
        None => None,
    };
    let combined = match &state.result_path {
        IoPath::Default => result,
        IoPath::Null => input,
        IoPath::Path(p) => {
            insert_result(input, p, result).map_err(|c| runtime(v, EvalError::runtime(c)))?
        }
    };
    ex.capture("afterResultPath", &combined);
    let output = output_path(&state.output_path, combined, &context, &frame.vars)
        .map_err(|e| runtime(v, e))?;
    if let Some(a) = &assigned {
        frame
            .vars
            .assign(a.clone())
            .map_err(|c| Failure::new("States.Runtime", c))?;
    }
    Ok(Step {
        output,
        next: state.next,
        assigned,
    })
}

/// The effective input of a Task / Parallel / Map (JSONPath: InputPath then
/// Parameters; JSONata: Arguments), plus the values its timeouts need.
struct Prepared {
    effective: Value,
    env: Option<stratus_jsonata::Environment>,
}

fn prepare(
    ex: &Exec<'_>,
    state: &State,
    input: &Value,
    frame: &Frame,
    v: &Visit<'_>,
    key: &str,
) -> Result<Prepared, Failure> {
    let context_fn = |only: Option<&str>| ex.context(v, None, only);
    let context = Lazy::new(&context_fn);
    if state.ql == QueryLanguage::Jsonata {
        let env = jsonata_env(
            ex,
            &frame.vars,
            states_var(input, context.get().clone(), None, None),
            key,
        );
        let effective = match &state.arguments {
            Some(a) => a
                .evaluate("Arguments", &env, input)
                .map_err(|e| runtime(v, e))?,
            None => input.clone(),
        };
        ex.capture("afterArguments", &effective);
        return Ok(Prepared {
            effective,
            env: Some(env),
        });
    }
    let effective = apply_io_path(&state.input_path, input, &context, &frame.vars)
        .map_err(|e| runtime(v, e))?;
    ex.capture("afterInputPath", &effective);
    let effective = match (&state.parameters, &state.kind) {
        (_, Kind::Map(_)) => effective.into_owned(),
        (Some(t), _) => eval_template(ex, t, &effective, &context, &frame.vars, key)
            .map_err(|e| runtime(v, e))?,
        (None, _) => effective.into_owned(),
    };
    if !matches!(state.kind, Kind::Map(_)) {
        ex.capture("afterParameters", &effective);
    }
    Ok(Prepared {
        effective,
        env: None,
    })
}

/// ResultSelector → ResultPath → OutputPath (JSONPath) or Output
/// (JSONata), plus Assign, after a successful task/branches/iterations.
fn finish_result(
    ex: &Exec<'_>,
    state: &State,
    raw_input: &Value,
    result: Value,
    frame: &mut Frame,
    v: &Visit<'_>,
) -> Result<Step, Failure> {
    let context_fn = |only: Option<&str>| ex.context(v, None, only);
    let context = Lazy::new(&context_fn);
    ex.capture("result", &result);
    if state.ql == QueryLanguage::Jsonata {
        let env = jsonata_env(
            ex,
            &frame.vars,
            states_var(raw_input, context.get().clone(), Some(&result), None),
            &v.key,
        );
        let assigned = match &state.assign {
            Some(a) => Some(
                eval_assign(ex, a, raw_input, &context, Some(&env), &frame.vars, &v.key)
                    .map_err(|e| runtime(v, e))?,
            ),
            None => None,
        };
        let output = match &state.output {
            Some(o) => o
                .evaluate("Output", &env, raw_input)
                .map_err(|e| runtime(v, e))?,
            None => result,
        };
        if let Some(a) = &assigned {
            frame
                .vars
                .assign(a.clone())
                .map_err(|c| Failure::new("States.Runtime", c))?;
        }
        return Ok(Step {
            output,
            next: state.next,
            assigned,
        });
    }
    let result = match &state.result_selector {
        Some(t) => eval_template(ex, t, &result, &context, &frame.vars, &v.key)
            .map_err(|e| runtime(v, e))?,
        None => result,
    };
    ex.capture("afterResultSelector", &result);
    let assigned = match &state.assign {
        Some(a) => Some(
            eval_assign(ex, a, &result, &context, None, &frame.vars, &v.key)
                .map_err(|e| runtime(v, e))?,
        ),
        None => None,
    };
    let combined = match &state.result_path {
        IoPath::Default => result,
        IoPath::Null => raw_input.clone(),
        IoPath::Path(p) => insert_result(raw_input.clone(), p, result)
            .map_err(|c| runtime(v, EvalError::runtime(c)))?,
    };
    ex.capture("afterResultPath", &combined);
    let output = output_path(&state.output_path, combined, &context, &frame.vars)
        .map_err(|e| runtime(v, e))?;
    if let Some(a) = &assigned {
        frame
            .vars
            .assign(a.clone())
            .map_err(|c| Failure::new("States.Runtime", c))?;
    }
    Ok(Step {
        output,
        next: state.next,
        assigned,
    })
}

/// One attempt of a Task, Parallel or Map state.
fn attempt_state<'a>(
    ex: &'a Exec<'a>,
    state: &'a State,
    input: &'a Value,
    frame: &'a mut Frame,
    v: &'a Visit<'a>,
    key: &'a str,
) -> BoxFuture<'a, Result<Step, Failure>> {
    Box::pin(async move {
        match &state.kind {
            Kind::Task(t) => {
                let mut vv = Visit {
                    state: v.state,
                    key: v.key.clone(),
                    entered_id: v.entered_id,
                    entered_ms: v.entered_ms,
                    retry_count: v.retry_count,
                    token: None,
                };
                if t.resource.ends_with(".waitForTaskToken") {
                    vv.token = Some(ex.host.task_token(key));
                }
                let prepared = prepare(ex, state, input, frame, &vv, key)?;
                let (timeout, heartbeat, credentials) = {
                    let context_fn = |only: Option<&str>| ex.context(&vv, None, only);
                    let context = Lazy::new(&context_fn);
                    let eff = &prepared.effective;
                    let num = |n: &Option<Num>, f: &str| -> Result<Option<u64>, Failure> {
                        match n {
                            None => Ok(None),
                            Some(n) => num_value(
                                ex,
                                n,
                                f,
                                if state.ql == QueryLanguage::Jsonata {
                                    input
                                } else {
                                    eff
                                },
                                &context,
                                &frame.vars,
                                prepared.env.as_ref(),
                            )
                            .map(|x| Some(x as u64))
                            .map_err(|e| runtime(&vv, e)),
                        }
                    };
                    let timeout = num(&t.timeout, "TimeoutSeconds")?;
                    let heartbeat = num(&t.heartbeat, "HeartbeatSeconds")?;
                    let credentials = match &t.credentials {
                        None => None,
                        Some(CredentialsSpec::Path(tpl)) => Some(
                            eval_template(ex, tpl, eff, &context, &frame.vars, key)
                                .map_err(|e| runtime(&vv, e))?,
                        ),
                        Some(CredentialsSpec::Jsonata(j)) => match &prepared.env {
                            Some(env) => Some(
                                j.evaluate("Credentials", env, input)
                                    .map_err(|e| runtime(&vv, e))?,
                            ),
                            None => None,
                        },
                    };
                    (timeout, heartbeat, credentials)
                };
                let kind = resource_kind(&t.resource);
                let params_s = size_check(&prepared.effective, "received", &state.name)?;
                let (rtype, rname) = resource_parts(&t.resource);
                match kind {
                    ResourceKind::Lambda => {
                        let mut d = json!({"resource": t.resource, "input": params_s, "inputDetails": {"truncated": false}});
                        if let (Some(o), Some(ts)) = (d.as_object_mut(), timeout) {
                            o.insert("timeoutInSeconds".into(), json!(ts));
                        }
                        if let (Some(o), Some(c)) = (d.as_object_mut(), &credentials) {
                            o.insert(
                                "taskCredentials".into(),
                                json!({"roleArn": c.get("RoleArn")}),
                            );
                        }
                        ex.record(frame, "LambdaFunctionScheduled", d);
                        ex.record(frame, "LambdaFunctionStarted", json!({}));
                    }
                    ResourceKind::Activity => {
                        if let Some(f) = ex.host.activity_schedule_failure(key, &t.resource) {
                            ex.record(
                                frame,
                                "ActivityScheduleFailed",
                                json!({"error": f.error, "cause": f.cause}),
                            );
                            return Err(f);
                        }
                        let mut d = json!({"resource": t.resource, "input": params_s, "inputDetails": {"truncated": false}});
                        if let Some(o) = d.as_object_mut() {
                            if let Some(ts) = timeout {
                                o.insert("timeoutInSeconds".into(), json!(ts));
                            }
                            if let Some(h) = heartbeat {
                                o.insert("heartbeatInSeconds".into(), json!(h));
                            }
                        }
                        ex.record(frame, "ActivityScheduled", d);
                    }
                    ResourceKind::Integration => {
                        let mut d = json!({"resourceType": rtype, "resource": rname, "region": ex.region, "parameters": params_s});
                        if let Some(o) = d.as_object_mut() {
                            if let Some(ts) = timeout {
                                o.insert("timeoutInSeconds".into(), json!(ts));
                            }
                            if let Some(h) = heartbeat {
                                o.insert("heartbeatInSeconds".into(), json!(h));
                            }
                            if let Some(c) = &credentials {
                                o.insert(
                                    "taskCredentials".into(),
                                    json!({"roleArn": c.get("RoleArn")}),
                                );
                            }
                        }
                        ex.record(frame, "TaskScheduled", d);
                        ex.record(
                            frame,
                            "TaskStarted",
                            json!({"resourceType": rtype, "resource": rname}),
                        );
                    }
                }
                let call = TaskCall {
                    key: key.to_string(),
                    state_name: state.name.clone(),
                    resource: t.resource.clone(),
                    input: prepared.effective,
                    timeout_seconds: timeout,
                    heartbeat_seconds: heartbeat,
                    credentials,
                    task_token: vv.token.clone(),
                };
                let task_until = timeout.map(|ts| ex.host.now_ms() + ts as i64 * 1000);
                let until = match (task_until, ex.deadline) {
                    (Some(t), Some(d)) => Some(t.min(d)),
                    (t, d) => t.or(d),
                };
                let result = match until {
                    Some(until) => {
                        // A redrive gives tasks still running a fresh
                        // timeout (the earlier run's timer has passed).
                        let tkey = match ex.info.redrive_count {
                            0 => format!("{key}/timeout"),
                            n => format!("{key}/timeout~{n}"),
                        };
                        let task = ex.host.call_task(call);
                        let sleep = ex.host.sleep_until(&tkey, until);
                        match futures::future::select(task, sleep).await {
                            futures::future::Either::Left((r, _)) => r,
                            futures::future::Either::Right(_) => {
                                if task_until.is_some_and(|t| ex.deadline.is_none_or(|d| t < d)) {
                                    Err(Failure::new("States.Timeout", ""))
                                } else {
                                    ex.timed_out
                                        .store(true, std::sync::atomic::Ordering::SeqCst);
                                    Err(execution_timeout())
                                }
                            }
                        }
                    }
                    None => ex.host.call_task(call).await,
                };
                let result =
                    result.and_then(|r| size_check(&r, "returned", &state.name).map(|s| (r, s)));
                match result {
                    Ok((r, s)) => {
                        match kind {
                            ResourceKind::Lambda => ex.record(frame, "LambdaFunctionSucceeded", json!({"output": s, "outputDetails": {"truncated": false}})),
                            ResourceKind::Activity => ex.record(frame, "ActivitySucceeded", json!({"output": s, "outputDetails": {"truncated": false}})),
                            ResourceKind::Integration => ex.record(
                                frame,
                                "TaskSucceeded",
                                json!({"resourceType": rtype, "resource": rname, "output": s, "outputDetails": {"truncated": false}}),
                            ),
                        };
                        finish_result(ex, state, input, r, frame, &vv)
                    }
                    Err(f) => {
                        let timed_out =
                            f.error == "States.Timeout" || f.error == "States.HeartbeatTimeout";
                        let d = match kind {
                            ResourceKind::Integration => {
                                json!({"resourceType": rtype, "resource": rname, "error": f.error, "cause": f.cause})
                            }
                            _ => json!({"error": f.error, "cause": f.cause}),
                        };
                        let ty = match (kind, timed_out) {
                            (ResourceKind::Lambda, false) => "LambdaFunctionFailed",
                            (ResourceKind::Lambda, true) => "LambdaFunctionTimedOut",
                            (ResourceKind::Activity, false) => "ActivityFailed",
                            (ResourceKind::Activity, true) => "ActivityTimedOut",
                            (ResourceKind::Integration, false) => "TaskFailed",
                            (ResourceKind::Integration, true) => "TaskTimedOut",
                        };
                        ex.record(frame, ty, d);
                        Err(f)
                    }
                }
            }
            Kind::Parallel(p) => {
                let prepared = prepare(ex, state, input, frame, v, key)?;
                ex.record(frame, "ParallelStateStarted", json!({}));
                let started = frame.prev;
                let child_vars = frame.vars.child();
                let effective = prepared.effective;
                let mut futs = futures::stream::FuturesUnordered::new();
                for (i, b) in p.branches.iter().enumerate() {
                    let input = effective.clone();
                    let vars = child_vars.clone();
                    let prefix = format!("{key}/Branch[{i}]/");
                    futs.push(async move {
                        let mut f = Frame {
                            prefix,
                            vars,
                            prev: started,
                            visits: Vec::new(),
                        };
                        (i, run_graph(ex, b, input, &mut f).await)
                    });
                }
                let mut results: Vec<Value> = vec![Value::Null; p.branches.len()];
                let mut failure = None;
                while let Some((i, r)) = futs.next().await {
                    match r {
                        Ok(out) => results[i] = out,
                        Err(f) => {
                            failure = Some(f);
                            break;
                        }
                    }
                }
                drop(futs);
                if let Some(f) = failure {
                    ex.record(
                        frame,
                        "ParallelStateFailed",
                        json!({"error": f.error, "cause": f.cause}),
                    );
                    return Err(f);
                }
                ex.record(frame, "ParallelStateSucceeded", json!({}));
                finish_result(ex, state, input, Value::Array(results), frame, v)
            }
            Kind::Map(m) => run_map(ex, state, m, input, frame, v, key).await,
            _ => Err(Failure::new("States.Runtime", "not a task-like state")),
        }
    })
}

async fn run_map<'a>(
    ex: &'a Exec<'a>,
    state: &'a State,
    m: &'a MapState,
    input: &'a Value,
    frame: &'a mut Frame,
    v: &'a Visit<'a>,
    key: &'a str,
) -> Result<Step, Failure> {
    let prepared = prepare(ex, state, input, frame, v, key)?;
    let effective = prepared.effective;
    // ItemReader / ResultWriter parameters: a payload template (JSONPath)
    // or Arguments (JSONata) over the state's effective input.
    let io_vars = frame.vars.clone();
    let io_params = |io: &IoResource, what: &str| -> Result<Value, Failure> {
        let cfn = |only: Option<&str>| ex.context(v, None, only);
        let ctx = Lazy::new(&cfn);
        match (&io.params, &prepared.env) {
            (None, _) => Ok(Value::Object(Map::new())),
            (Some(Assign::Path(t)), _) => {
                eval_template(ex, t, &effective, &ctx, &io_vars, &format!("{key}/{what}"))
                    .map_err(|e| runtime(v, e))
            }
            (Some(Assign::Jsonata(j)), Some(env)) => {
                j.evaluate(what, env, input).map_err(|e| runtime(v, e))
            }
            (Some(Assign::Jsonata(_)), None) => Ok(Value::Object(Map::new())),
        }
    };
    let map_run_arn = map_run_arn(ex.info, m.label.as_deref().unwrap_or(&state.name), key);
    // ItemReader: the host reads the items (for example listObjectsV2 over
    // an S3 prefix, or an object's JSON / CSV / JSONL lines) and answers
    // with a JSON array.
    let read_items: Option<Value> = match &m.item_reader {
        None => None,
        Some(reader) => {
            let mut params = io_params(reader, "ItemReader")?;
            if let Value::Object(o) = &mut params {
                o.insert("ReaderConfig".into(), reader.config.clone());
            }
            let call = TaskCall {
                key: format!("{key}/ItemReader"),
                state_name: state.name.clone(),
                resource: reader.resource.clone(),
                input: params,
                timeout_seconds: None,
                heartbeat_seconds: None,
                credentials: None,
                task_token: None,
            };
            let items = ex.host.call_task(call).await.map_err(|f| {
                Failure::new(
                    "States.ItemReaderFailed",
                    format!("{}: {}", f.error, f.cause),
                )
            })?;
            let mut items = match items {
                Value::Array(a) => a,
                other => {
                    return Err(Failure::new(
                        "States.ItemReaderFailed",
                        format!(
                            "The ItemReader returned {} instead of an array of items",
                            ser(&other)
                        ),
                    ));
                }
            };
            if let Some(max) = reader.config.get("MaxItems").and_then(Value::as_u64) {
                items.truncate(max as usize);
            } else if let Some(p) = reader.config.get("MaxItemsPath").and_then(Value::as_str)
                && let Ok(path) = Path::parse(p)
                && let Some(max) = path.select(&effective).and_then(|x| x.as_u64())
            {
                items.truncate(max as usize);
            }
            Some(Value::Array(items))
        }
    };
    // Items, selectors and limits, evaluated synchronously.
    let (items, max_conc, tol_pct, tol_count, item_count, per_child) = {
        let context_fn = |only: Option<&str>| ex.context(v, None, only);
        let context = Lazy::new(&context_fn);
        let items_v: Value = if let Some(reader) = &read_items {
            reader.clone()
        } else if state.ql == QueryLanguage::Jsonata {
            match (&m.items, &prepared.env) {
                (Some(j), Some(env)) => {
                    j.evaluate("Items", env, input).map_err(|e| runtime(v, e))?
                }
                _ => effective.clone(),
            }
        } else {
            match &m.items_path {
                None => effective.clone(),
                Some(p) => {
                    let found = match p.root() {
                        Root::Input => p.select(&effective),
                        Root::Context => context.select(p),
                        Root::Variable(n) => frame.vars.get(n).and_then(|x| p.select(x)),
                    };
                    found.ok_or_else(|| {
                        runtime(
                            v,
                            EvalError::runtime(format!(
                                "Invalid path '{}' : No results for path: {}",
                                p.text(),
                                p.normalized()
                            )),
                        )
                    })?
                }
            }
        };
        let Value::Array(items) = items_v else {
            let (error, what) = if state.ql == QueryLanguage::Jsonata {
                (
                    "States.QueryEvaluationError",
                    "The field 'Items' must evaluate to a JSON array",
                )
            } else {
                ("States.Runtime", "The ItemsPath must select a JSON array")
            };
            return Err(runtime(
                v,
                EvalError {
                    error: error.into(),
                    cause: format!("{what}, but the value is '{}'", ser(&items_v)),
                },
            ));
        };
        if ex.inspect.is_some() {
            ex.capture("afterItemsPath", &Value::Array(items.clone()));
        }
        let n = |x: &Option<Num>, f: &str| -> Result<Option<f64>, Failure> {
            match x {
                None => Ok(None),
                Some(x) => num_value(
                    ex,
                    x,
                    f,
                    &effective,
                    &context,
                    &frame.vars,
                    prepared.env.as_ref(),
                )
                .map(Some)
                .map_err(|e| runtime(v, e)),
            }
        };
        let max_conc = n(&m.max_concurrency, "MaxConcurrency")?
            .map(|x| x as usize)
            .unwrap_or(0);
        let tol_pct = n(&m.tolerated_percentage, "ToleratedFailurePercentage")?;
        let tol_count = n(&m.tolerated_count, "ToleratedFailureCount")?;
        if let Some(p) = tol_pct
            && p > 100.0
        {
            return Err(runtime(
                v,
                EvalError::runtime("ToleratedFailurePercentage must be between 0 and 100".into()),
            ));
        }
        // Item inputs: ItemSelector (or Parameters) with $$.Map.Item.
        let mut inputs = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let item_input = match &m.item_selector {
                None => item,
                Some(sel) => {
                    let cfn = |only: Option<&str>| ex.context(v, Some((i, &item)), only);
                    let ctx = Lazy::new(&cfn);
                    match sel {
                        Assign::Path(t) => eval_template(
                            ex,
                            t,
                            &effective,
                            &ctx,
                            &frame.vars,
                            &format!("{key}/Map[{i}]"),
                        )
                        .map_err(|e| runtime(v, e))?,
                        Assign::Jsonata(j) => {
                            let mut states = states_var(input, ctx.get().clone(), None, None);
                            if let Some(o) = states.as_object_mut() {
                                o.insert("context".into(), ctx.get().clone());
                            }
                            let env =
                                jsonata_env(ex, &frame.vars, states, &format!("{key}/Map[{i}]"));
                            j.evaluate("ItemSelector", &env, input)
                                .map_err(|e| runtime(v, e))?
                        }
                    }
                }
            };
            inputs.push(item_input);
        }
        if let Some(first) = inputs.first() {
            ex.capture("afterItemSelector", first);
        }
        let item_count = inputs.len();
        // Items per child (empty: one each).
        let mut per_child: Vec<usize> = Vec::new();
        // ItemBatcher: children get {"Items": [...], "BatchInput": ...}.
        let inputs = match &m.item_batcher {
            None => inputs,
            Some((cfg, batch_input)) => {
                let num = |lit: &str, path: &str| -> Option<usize> {
                    cfg.get(lit)
                        .and_then(Value::as_u64)
                        .map(|n| n as usize)
                        .or_else(|| {
                            let p = cfg.get(path)?.as_str()?;
                            let path = Path::parse(p).ok()?;
                            path.select(&effective)?.as_u64().map(|n| n as usize)
                        })
                };
                let max_items = num("MaxItemsPerBatch", "MaxItemsPerBatchPath");
                let max_bytes =
                    num("MaxInputBytesPerBatch", "MaxInputBytesPerBatchPath").unwrap_or(256 * 1024);
                let batch_input = match batch_input {
                    None => None,
                    Some(a) => {
                        let cfn = |only: Option<&str>| ex.context(v, None, only);
                        let ctx = Lazy::new(&cfn);
                        Some(match (a, &prepared.env) {
                            (Assign::Path(t), _) => eval_template(
                                ex,
                                t,
                                &effective,
                                &ctx,
                                &frame.vars,
                                &format!("{key}/BatchInput"),
                            )
                            .map_err(|e| runtime(v, e))?,
                            (Assign::Jsonata(j), Some(env)) => j
                                .evaluate("BatchInput", env, input)
                                .map_err(|e| runtime(v, e))?,
                            (Assign::Jsonata(_), None) => Value::Null,
                        })
                    }
                };
                let mut batches = Vec::new();
                let mut current: Vec<Value> = Vec::new();
                let mut bytes = 0usize;
                for item in inputs {
                    let size = ser(&item).len() + 1;
                    let full_items = max_items.is_some_and(|n| current.len() >= n.max(1));
                    let full_bytes = !current.is_empty() && bytes + size > max_bytes;
                    if full_items || full_bytes {
                        batches.push(std::mem::take(&mut current));
                        bytes = 0;
                    }
                    bytes += size;
                    current.push(item);
                }
                if !current.is_empty() {
                    batches.push(current);
                }
                per_child = batches.iter().map(Vec::len).collect();
                batches
                    .into_iter()
                    .map(|items| {
                        let mut o = Map::new();
                        if let Some(b) = &batch_input {
                            o.insert("BatchInput".into(), b.clone());
                        }
                        o.insert("Items".into(), Value::Array(items));
                        Value::Object(o)
                    })
                    .collect()
            }
        };
        (inputs, max_conc, tol_pct, tol_count, item_count, per_child)
    };
    let len = items.len();
    // A Distributed Map whose host runs child executions: a Map Run.
    let label = m.label.as_deref().unwrap_or(&state.name);
    let hosted: Option<Arc<dyn MapRunHost>> = if m.distributed {
        let mut definition = m.processor_json.clone();
        if let Value::Object(o) = &mut definition {
            o.insert("QueryLanguage".into(), Value::from(state.ql.as_str()));
        }
        let spec = MapRunSpec {
            map_run_arn: map_run_arn.clone(),
            label: label.to_string(),
            state_name: state.name.clone(),
            key: key.to_string(),
            definition: ser(&definition),
            execution_type: m
                .execution_type
                .clone()
                .unwrap_or_else(|| "STANDARD".into()),
            max_concurrency: max_conc,
            tolerated_failure_percentage: tol_pct,
            tolerated_failure_count: tol_count,
            item_count,
            child_count: len,
        };
        ex.host.map_run(&spec).await
    } else {
        None
    };
    if m.distributed {
        // A Distributed Map's parent history shows the map run; its
        // children are separate executions with histories of their own.
        ex.record(frame, "MapRunStarted", json!({"mapRunArn": map_run_arn}));
    } else {
        ex.record(frame, "MapStateStarted", json!({"length": len}));
    }
    let started = frame.prev;
    let (results, map_failure) = match &hosted {
        Some(mr) => run_hosted_children(mr.as_ref(), items, &per_child).await,
        None => {
            run_inline_children(
                ex, state, m, frame, items, key, started, max_conc, tol_pct, tol_count,
            )
            .await
        }
    };
    if let Some(f) = map_failure {
        if m.distributed {
            ex.record(
                frame,
                "MapRunFailed",
                json!({"error": f.error, "cause": f.cause}),
            );
        } else {
            ex.record(
                frame,
                "MapStateFailed",
                json!({"error": f.error, "cause": f.cause}),
            );
        }
        if let Some(mr) = &hosted {
            mr.finish(MapRunEnd::Failed(f.clone())).await;
        }
        return Err(f);
    }
    // ResultWriter: the host stores the results (AWS writes a manifest and
    // result files) and the Map's result names where they went.
    let result = match &m.result_writer {
        None => Value::Array(results),
        Some(writer) => {
            let mut params = io_params(writer, "ResultWriter")?;
            if let Value::Object(o) = &mut params {
                o.insert("WriterConfig".into(), writer.config.clone());
                o.insert("MapRunArn".into(), Value::String(map_run_arn.clone()));
                o.insert("Results".into(), Value::Array(results));
            }
            let call = TaskCall {
                key: format!("{key}/ResultWriter"),
                state_name: state.name.clone(),
                resource: writer.resource.clone(),
                input: params,
                timeout_seconds: None,
                heartbeat_seconds: None,
                credentials: None,
                task_token: None,
            };
            match ex.host.call_task(call).await {
                Ok(details) => json!({"MapRunArn": map_run_arn, "ResultWriterDetails": details}),
                Err(f) => {
                    let f = Failure::new(
                        "States.ResultWriterFailed",
                        format!("{}: {}", f.error, f.cause),
                    );
                    ex.record(
                        frame,
                        "MapRunFailed",
                        json!({"error": f.error, "cause": f.cause}),
                    );
                    if let Some(mr) = &hosted {
                        mr.finish(MapRunEnd::Failed(f.clone())).await;
                    }
                    return Err(f);
                }
            }
        }
    };
    if m.distributed {
        ex.record(frame, "MapRunSucceeded", json!({}));
        if let Some(mr) = &hosted {
            mr.finish(MapRunEnd::Succeeded {
                results_written: m.result_writer.is_some(),
            })
            .await;
        }
    } else {
        ex.record(frame, "MapStateSucceeded", json!({}));
    }
    finish_result(ex, state, input, result, frame, v)
}

/// Whether `failed` failed children out of `len` fail the Map: always
/// without thresholds; otherwise when either threshold (percentage 0-100,
/// count) is exceeded, each being a maximum on its own.
fn exceeds_tolerance(tolerance: (Option<f64>, Option<f64>), failed: usize, len: usize) -> bool {
    let (pct, count) = tolerance;
    if pct.is_none() && count.is_none() {
        return failed > 0;
    }
    let over_count = count.is_some_and(|c| failed as f64 > c);
    let over_pct = pct.is_some_and(|p| len > 0 && (failed as f64 * 100.0 / len as f64) > p);
    over_count || over_pct
}

/// The failure of a Map whose children failed beyond its tolerance: the
/// first child's failure without thresholds,
/// States.ExceedToleratedFailureThreshold with them.
fn map_failure(tolerance: (Option<f64>, Option<f64>), first: Failure) -> Failure {
    if tolerance.0.is_some() || tolerance.1.is_some() {
        Failure::new(
            "States.ExceedToleratedFailureThreshold",
            "The specified tolerated failure threshold was exceeded",
        )
    } else {
        first
    }
}

/// Runs a Map Run's children through its host: at most the host's current
/// MaxConcurrency at a time (read again whenever a child ends or the
/// settings change, so UpdateMapRun raises or lowers it during the run),
/// never more than [`MAX_DISTRIBUTED_CONCURRENCY`]. Returns the children's
/// results by index (a failed child's is its error output) and the Map's
/// failure, if the failures exceed the tolerated thresholds.
async fn run_hosted_children(
    mr: &dyn MapRunHost,
    items: Vec<Value>,
    per_child: &[usize],
) -> (Vec<Value>, Option<Failure>) {
    let len = items.len();
    let mut results: Vec<Value> = vec![Value::Null; len];
    let mut pending = items.into_iter().enumerate();
    let mut inflight = futures::stream::FuturesUnordered::new();
    let mut failed = 0usize;
    let mut first_failure: Option<Failure> = None;
    loop {
        let seen = mr.settings_version();
        let limit = match mr.max_concurrency() {
            0 => MAX_DISTRIBUTED_CONCURRENCY,
            n => n.min(MAX_DISTRIBUTED_CONCURRENCY),
        };
        while inflight.len() < limit {
            let Some((i, item)) = pending.next() else {
                break;
            };
            let n = per_child.get(i).copied().unwrap_or(1);
            inflight.push(async move { (i, mr.run_child(i, item, n).await) });
        }
        if inflight.is_empty() {
            break;
        }
        let next = inflight.next();
        let changed = mr.settings_changed(seen);
        match futures::future::select(next, changed).await {
            futures::future::Either::Left((Some((i, r)), _)) => {
                if let Err(f) = &r {
                    failed += 1;
                    results[i] = error_output(f);
                    if first_failure.is_none() {
                        first_failure = Some(f.clone());
                    }
                    if exceeds_tolerance(mr.tolerated_failures(), failed, len) {
                        break;
                    }
                } else if let Ok(out) = r {
                    results[i] = out;
                }
            }
            futures::future::Either::Left((None, _)) => break,
            // New settings: a lowered threshold may already be exceeded.
            futures::future::Either::Right(_) => {
                if failed > 0 && exceeds_tolerance(mr.tolerated_failures(), failed, len) {
                    break;
                }
            }
        }
    }
    let tolerance = mr.tolerated_failures();
    let failure = match first_failure {
        Some(f) if exceeds_tolerance(tolerance, failed, len) => Some(map_failure(tolerance, f)),
        _ => None,
    };
    (results, failure)
}

/// Runs a Map's iterations as branches of this execution (inline Maps,
/// and Distributed Maps whose host has no child executions), at most
/// MaxConcurrency at a time. Returns the results by index and the Map's
/// failure, if any.
#[allow(clippy::too_many_arguments)]
async fn run_inline_children<'a>(
    ex: &'a Exec<'a>,
    state: &'a State,
    m: &'a MapState,
    frame: &'a Frame,
    items: Vec<Value>,
    key: &'a str,
    started: u64,
    max_conc: usize,
    tol_pct: Option<f64>,
    tol_count: Option<f64>,
) -> (Vec<Value>, Option<Failure>) {
    let len = items.len();
    let quiet = QuietHost { inner: ex.host };
    let child_ex = Exec {
        host: if m.distributed { &quiet } else { ex.host },
        info: ex.info,
        input: ex.input,
        region: ex.region.clone(),
        inspect: ex.inspect,
        deadline: ex.deadline,
        timed_out: std::sync::atomic::AtomicBool::new(
            ex.timed_out.load(std::sync::atomic::Ordering::Relaxed),
        ),
    };
    let ex_children = &child_ex;
    // A Distributed Map's children are separate executions: they do not
    // see the outer scopes' variables.
    let child_vars = if m.distributed {
        Vars::default()
    } else {
        frame.vars.child()
    };
    let limit = match max_conc {
        0 if m.distributed => len.clamp(1, MAX_DISTRIBUTED_CONCURRENCY),
        0 => len.max(1),
        n => n,
    };
    let name = &state.name;
    let graph = &m.processor;
    // Iterations started and not yet finished (for MapIterationAborted).
    let running: Mutex<std::collections::BTreeSet<usize>> = Mutex::new(Default::default());
    let running_ref = &running;
    let iterations = futures::stream::iter(items.into_iter().enumerate().map(|(i, item)| {
        let vars = child_vars.clone();
        async move {
            if let Ok(mut r) = running_ref.lock() {
                r.insert(i);
            }
            let mut f = Frame {
                prefix: format!("{key}/Map[{i}]/"),
                vars,
                prev: started,
                visits: Vec::new(),
            };
            let id = ex_children.host.record(
                "MapIterationStarted",
                f.prev,
                json!({"name": name, "index": i}),
            );
            f.prev = id;
            let r = run_graph(ex_children, graph, item, &mut f).await;
            let ty = if r.is_ok() {
                "MapIterationSucceeded"
            } else {
                "MapIterationFailed"
            };
            ex_children
                .host
                .record(ty, f.prev, json!({"name": name, "index": i}));
            if let Ok(mut r) = running_ref.lock() {
                r.remove(&i);
            }
            (i, r)
        }
    }))
    .buffer_unordered(limit);
    futures::pin_mut!(iterations);
    let mut results: Vec<Value> = vec![Value::Null; len];
    let mut failed = 0usize;
    let mut first_failure: Option<Failure> = None;
    let tolerating = tol_pct.is_some() || tol_count.is_some();
    let exceeds = |failed: usize| -> bool {
        let over_count = tol_count.is_some_and(|c| failed as f64 > c);
        let over_pct = tol_pct.is_some_and(|p| len > 0 && (failed as f64 * 100.0 / len as f64) > p);
        // Each threshold is a maximum on its own: exceeding either fails
        // the Map.
        over_count || over_pct
    };
    while let Some((i, r)) = iterations.next().await {
        match r {
            Ok(out) => results[i] = out,
            Err(f) => {
                failed += 1;
                results[i] = error_output(&f);
                if first_failure.is_none() {
                    first_failure = Some(f);
                }
                if !tolerating || exceeds(failed) {
                    break;
                }
            }
        }
    }
    // Iterations still running are no longer polled: they are aborted.
    if let Ok(r) = running.lock() {
        for i in r.iter() {
            ex_children.host.record(
                "MapIterationAborted",
                started,
                json!({"name": name, "index": i}),
            );
        }
    }
    let failure = match first_failure {
        Some(f) if !tolerating || exceeds(failed) => Some(map_failure((tol_pct, tol_count), f)),
        _ => None,
    };
    (results, failure)
}
/// The ARN of a Distributed Map's map run:
/// `arn:<partition>:states:<region>:<account>:mapRun:<state machine>/<label>:<id>`,
/// the id derived from the execution and the Map's place in it (stable
/// across replays).
fn map_run_arn(info: &ExecutionInfo, label: &str, key: &str) -> String {
    let parts: Vec<&str> = info.execution_arn.split(':').collect();
    let (partition, region, account) = (
        parts.get(1).copied().unwrap_or("aws"),
        parts.get(3).copied().unwrap_or("us-east-1"),
        parts.get(4).copied().unwrap_or("123456789012"),
    );
    // FNV-1a over the execution ARN and the Map's key.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in info.execution_arn.bytes().chain(key.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let id = format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (h >> 32) as u32,
        (h >> 16) as u16,
        (h & 0xfff) as u16,
        ((h >> 20) & 0xfff) as u16,
        h & 0xffff_ffff_ffff
    );
    format!(
        "arn:{partition}:states:{region}:{account}:mapRun:{}/{label}:{id}",
        info.state_machine_name
    )
}

/// The host of a Distributed Map's children: tasks, time and randomness go
/// to the execution's host; history events are not added to the parent's
/// history (each child is an execution of its own on AWS).
struct QuietHost<'a> {
    inner: &'a dyn Host,
}

impl Host for QuietHost<'_> {
    fn call_task<'a>(&'a self, call: TaskCall) -> crate::BoxFuture<'a, Result<Value, Failure>> {
        self.inner.call_task(call)
    }
    fn now_ms(&self) -> i64 {
        self.inner.now_ms()
    }
    fn sleep_until<'a>(&'a self, key: &'a str, until_ms: i64) -> crate::BoxFuture<'a, ()> {
        self.inner.sleep_until(key, until_ms)
    }
    fn random_u64(&self, key: &str) -> u64 {
        self.inner.random_u64(key)
    }
    fn task_token(&self, key: &str) -> String {
        self.inner.task_token(key)
    }
    fn record(&self, _event_type: &str, previous_event_id: u64, _details: Value) -> u64 {
        previous_event_id
    }
    fn task_generation(&self, key: &str) -> Option<u32> {
        self.inner.task_generation(key)
    }
    fn redriven_at_ms(&self) -> Option<i64> {
        self.inner.redriven_at_ms()
    }
    fn activity_schedule_failure(&self, key: &str, resource: &str) -> Option<Failure> {
        self.inner.activity_schedule_failure(key, resource)
    }
}

fn region_of(arn: &str) -> String {
    arn.split(':').nth(3).unwrap_or("us-east-1").to_string()
}

/// Runs an execution to its end: Ok(output) or Err(failure) (error + cause
/// as DescribeExecution reports them). Records every history event after
/// ExecutionStarted, including the final ExecutionSucceeded /
/// ExecutionFailed / ExecutionTimedOut. The execution-level TimeoutSeconds
/// is enforced through [`Host::sleep_until`] (key `"$execution/timeout"`,
/// `"$execution/timeout~<n>"` after the n-th redrive), counted from
/// ExecutionInfo.start_time (or now, if it does not parse), or from
/// [`Host::redriven_at_ms`] after a redrive.
///
/// Redrive: with `info.redrive_count` > 0 the engine replays the earlier
/// runs from the host's journal and reruns each Task state whose
/// unhandled failure an earlier run recorded ([`Host::task_generation`]),
/// so only the failed or aborted steps (branches, iterations) run again.
pub async fn execute(
    machine: &StateMachine,
    input: Value,
    info: &ExecutionInfo,
    host: &dyn Host,
) -> Result<Value, Failure> {
    let exec_input = input.clone();
    // A redrive resets the execution's timeout: it counts from the redrive.
    let deadline = machine.timeout_seconds.map(|t| {
        host.redriven_at_ms()
            .or_else(|| parse_timestamp(&info.start_time))
            .unwrap_or_else(|| host.now_ms())
            + t as i64 * 1000
    });
    let timeout_key = execution_timeout_key(info.redrive_count);
    let ex = Exec {
        host,
        info,
        input: &exec_input,
        region: region_of(&info.execution_arn),
        inspect: None,
        deadline,
        timed_out: std::sync::atomic::AtomicBool::new(false),
    };
    let mut frame = Frame {
        prefix: String::new(),
        vars: Vars::default(),
        prev: 0,
        visits: Vec::new(),
    };
    let r = match deadline {
        Some(until) => {
            let run = run_graph(&ex, &machine.graph, input, &mut frame);
            let sleep = host.sleep_until(&timeout_key, until);
            match futures::future::select(run, sleep).await {
                futures::future::Either::Left((r, _)) => r.map_err(|f| (f, ex.is_timed_out())),
                futures::future::Either::Right(_) => Err((execution_timeout(), true)),
            }
        }
        None => run_graph(&ex, &machine.graph, input, &mut frame)
            .await
            .map_err(|f| (f, false)),
    };
    match r {
        Ok(out) => {
            let s = ser(&out);
            host.record(
                "ExecutionSucceeded",
                frame.prev,
                json!({"output": s, "outputDetails": {"truncated": false}}),
            );
            Ok(out)
        }
        Err((f, timed_out)) => {
            let ty = if timed_out {
                "ExecutionTimedOut"
            } else {
                "ExecutionFailed"
            };
            host.record(ty, frame.prev, json!({"error": f.error, "cause": f.cause}));
            Err(f)
        }
    }
}

/// TestState: runs one state definition (JSON text) with `input`. The
/// state's transitions need not exist (TestState tests one state). A whole
/// state machine definition (with StartAt and States) tests its StartAt
/// state. `variables`: a JSON object of the variables the state sees. Retries
/// are not run: a matching retrier gives status RETRIABLE; a matching
/// catcher gives CAUGHT_ERROR with the catcher's output and Next.
/// Err: the definition's ERROR diagnostics.
pub async fn test_state(
    state_definition: &str,
    input: Value,
    info: &ExecutionInfo,
    host: &dyn Host,
    level: InspectionLevel,
    variables: Option<Value>,
) -> Result<TestStateResult, Vec<Diagnostic>> {
    let (machine, _name) = crate::definition::parse_single_state(state_definition)?;
    let state = &machine.graph.states[machine.graph.start];
    let names: Vec<&str> = machine
        .graph
        .states
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    let exec_input = input.clone();
    let inspect = Mutex::new(Map::new());
    let ex = Exec {
        host,
        info,
        input: &exec_input,
        region: region_of(&info.execution_arn),
        inspect: Some(&inspect),
        deadline: None,
        timed_out: std::sync::atomic::AtomicBool::new(false),
    };
    let mut vars = Vars::default();
    if let Some(Value::Object(m)) = variables {
        vars.local.extend(m);
    }
    let mut frame = Frame {
        prefix: String::new(),
        vars,
        prev: 0,
        visits: Vec::new(),
    };
    ex.capture("input", &input);
    let v = Visit {
        state,
        key: state.name.clone(),
        entered_id: 1,
        entered_ms: host.now_ms(),
        retry_count: 0,
        token: None,
    };
    let raw_input = input.clone();
    let r: Result<(Step, Option<Failure>), (Failure, bool)> = match &state.kind {
        Kind::Task(_) | Kind::Parallel(_) | Kind::Map(_) => {
            let key = format!("{}#1", v.key);
            match attempt_state(&ex, state, &raw_input, &mut frame, &v, &key).await {
                Ok(s) => Ok((s, None)),
                Err(f) => {
                    if state
                        .retry
                        .iter()
                        .find(|r| error_matches(&r.errors, &f.error))
                        .is_some_and(|r| r.max_attempts > 0)
                    {
                        Err((f, true))
                    } else if let Some(c) = state
                        .catch
                        .iter()
                        .find(|c| error_matches(&c.errors, &f.error))
                    {
                        match catch(&ex, state, c, &raw_input, &f, &mut frame, &v) {
                            Ok(s) => Ok((s, Some(f))),
                            Err(f2) => Err((f2, false)),
                        }
                    } else {
                        Err((f, false))
                    }
                }
            }
        }
        _ => run_state(&ex, &machine.graph, state, input, &mut frame, v)
            .await
            .map(|s| (s, None))
            .map_err(|f| (f, false)),
    };
    let mut data = inspect.into_inner().unwrap_or_default();
    data.remove("errorDetails");
    if let Ok((s, _)) = &r {
        data.entry("afterResultPath")
            .or_insert_with(|| Value::String(ser(&s.output)));
    }
    data.insert(
        "variables".into(),
        Value::String(ser(&Value::Object(frame.vars.all()))),
    );
    let inspection_data = if level == InspectionLevel::Info {
        json!({})
    } else {
        Value::Object(data)
    };
    Ok(match r {
        Ok((step, caught)) => TestStateResult {
            status: if caught.is_some() {
                "CAUGHT_ERROR"
            } else {
                "SUCCEEDED"
            }
            .into(),
            output: Some(step.output),
            error: caught.as_ref().map(|f| f.error.clone()),
            cause: caught.map(|f| f.cause),
            next_state: step.next.map(|n| names[n].to_string()),
            inspection_data,
        },
        Err((f, retriable)) => TestStateResult {
            status: if retriable { "RETRIABLE" } else { "FAILED" }.into(),
            output: None,
            error: Some(f.error),
            cause: Some(f.cause),
            next_state: None,
            inspection_data,
        },
    })
}
#[cfg(test)]
mod redrive_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) use tests::support as tests_support;
