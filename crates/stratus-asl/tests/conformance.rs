//! Conformance suite for the Amazon States Language interpreter.
//!
//! Every file in `tests/fixtures/*.json` holds a JSON array of cases (or one
//! case object). The file name is the case's area in the summary table. Each
//! expected value comes from the AWS Step Functions Developer Guide or the
//! Amazon States Language specification; the page is in the case's `source`.
//!
//! A case has this shape (all fields but `name`, `source`, `definition` and
//! `expected` are optional):
//!
//! ```json
//! {
//!   "name": "...", "source": "https://docs.aws.amazon.com/...",
//!   "definition": { "StartAt": "...", "States": { } },   // or "definition_text": "<raw text>"
//!   "input": { },
//!   "context": { "Execution": { "Name": "...", "StartTime": "2026-01-01T00:00:00.000Z",
//!                               "Id": "...", "RoleArn": "...", "RedriveCount": 0 },
//!                "StateMachine": { "Id": "...", "Name": "..." } },
//!   "tasks": { "<resource>": [ {"result": 1}, {"error": "E", "cause": "c"}, {"echo": true} ] },
//!   "expected": { "output": 1 }
//! }
//! ```
//!
//! `expected` is one of:
//! - `{"output": V}`: the execution succeeds with output V (numbers compare by value);
//! - `{"succeeded": true}`: the execution succeeds (other assertions check the output);
//! - `{"error": "E", "cause": "C", "cause_contains": "c"}`: the execution fails with
//!   error E (cause and cause_contains optional);
//! - `{"failed": true, "cause": "C"}`: the execution fails, whatever its error name;
//! - `{"invalid": true, "code": "SCHEMA_VALIDATION_FAILED"}`: `StateMachine::parse`
//!   rejects the definition with a diagnostic of that code (code optional).
//!
//! Task outcomes, one per call of the resource, in order:
//! - `{"result": V}` returns V; `{"echo": true}` returns the task's input;
//! - `{"error": "E", "cause": "C"}` fails the call;
//! - `"duration_seconds": N` makes the call take N virtual seconds; when the
//!   call's `timeout_seconds` is shorter, the call fails with `States.Timeout`
//!   after `timeout_seconds` instead;
//! - `"silent_seconds": N` with a `heartbeat_seconds` below N fails the call with
//!   `States.HeartbeatTimeout` after `heartbeat_seconds`;
//! - `"repeat": true` on the last outcome serves every further call.
//!
//! A resource called more often than its list allows fails the case.
//!
//! Other assertions: `calls` (`{"<resource>": n}`), `task_inputs` (exact inputs
//! in call order), `task_inputs_unordered` (same inputs, any order),
//! `elapsed_seconds` / `elapsed_seconds_at_most` (virtual time from start to
//! end), `output_matches` (`{"$.path": "regex"}`, for strings), `output_range`
//! (`{"$.path": [min, max)}`), `output_integer` (`["$.path"]`), `output_equal` /
//! `output_distinct` (`[["$.a", "$.b"]]`), and `history_types` (these event
//! types appear in this order among the recorded history events).
//!
//! In `input` and task results, `{"$repeat": "a", "times": N}` stands for a
//! string of N copies of "a" (payload-size cases stay small on disk).
//!
//! Time is virtual: `now_ms` starts at the context's StartTime
//! (2026-01-01T00:00:00.000Z by default) and `sleep_until` advances it at
//! once. Randomness is a fixed-seed generator. Task tokens are `tok-1`,
//! `tok-2`, ... in the order they are first asked for.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use serde_json::Value;
use stratus_asl::{BoxFuture, ExecutionInfo, Failure, Host, StateMachine, TaskCall, execute};

/// The minimum size of the suite; fewer cases means fixtures went missing.
const MIN_CASES: usize = 320;
/// Wall-clock limit for one case; a case that takes longer is reported as hung.
const CASE_LIMIT: Duration = Duration::from_secs(5);
/// Default StartTime of the virtual clock.
const DEFAULT_START: &str = "2026-01-01T00:00:00.000Z";

// ---------------------------------------------------------------------------
// Fixture loading

struct Case {
    area: String,
    file: String,
    name: String,
    body: Value,
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}

fn load_cases() -> Result<Vec<Case>, String> {
    let mut files = Vec::new();
    collect_json(&fixtures_dir(), &mut files)?;
    files.sort();
    let mut cases = Vec::new();
    let mut seen = HashMap::new();
    for path in files {
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let area = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("fixtures")
            .to_string();
        let file = path.display().to_string();
        let list = match value {
            Value::Array(list) => list,
            other => vec![other],
        };
        for body in list {
            let name = body
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{file}: a case has no name"))?
                .to_string();
            check_shape(&body).map_err(|e| format!("{file}: {name}: {e}"))?;
            if let Some(other) = seen.insert(name.clone(), file.clone()) {
                return Err(format!("case name {name:?} is used in {other} and {file}"));
            }
            cases.push(Case {
                area: area.clone(),
                file: file.clone(),
                name,
                body,
            });
        }
    }
    Ok(cases)
}

fn collect_json(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            collect_json(&path, out)?;
        } else if path.extension().and_then(|e| e.to_str()) == Some("json") {
            out.push(path);
        }
    }
    Ok(())
}

/// Every case names its source page and has a definition and an expectation.
fn check_shape(body: &Value) -> Result<(), String> {
    let source = body.get("source").and_then(Value::as_str).unwrap_or("");
    if !(source.starts_with("https://docs.aws.amazon.com/")
        || source.starts_with("https://states-language.net/"))
    {
        return Err(format!(
            "source {source:?} is not an AWS documentation page or the ASL specification"
        ));
    }
    if body.get("definition").is_none() && body.get("definition_text").is_none() {
        return Err("no definition".into());
    }
    let expected = body.get("expected").ok_or("no expected")?;
    let kinds = ["output", "succeeded", "error", "failed", "invalid"];
    if !kinds.iter().any(|k| expected.get(k).is_some()) {
        return Err(format!("expected has none of {kinds:?}"));
    }
    Ok(())
}

/// Replaces `{"$repeat": s, "times": n}` with a string of n copies of s.
fn expand(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            if let (Some(Value::String(s)), Some(n), 2) = (
                map.get("$repeat"),
                map.get("times").and_then(Value::as_u64),
                map.len(),
            ) {
                return Value::String(s.repeat(n as usize));
            }
            Value::Object(map.iter().map(|(k, v)| (k.clone(), expand(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(expand).collect()),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------
// The host: virtual clock, task mocks, seeded randomness, history

struct Outcome {
    spec: Value,
    repeat: bool,
}

#[derive(Default)]
struct HostState {
    now_ms: i64,
    outcomes: HashMap<String, VecDeque<Outcome>>,
    calls: BTreeMap<String, Vec<Value>>,
    problems: Vec<String>,
    rng: u64,
    tokens: HashMap<String, String>,
    history: Vec<String>,
}

struct MockHost {
    state: Mutex<HostState>,
}

impl MockHost {
    fn new(start_ms: i64, tasks: Option<&Value>) -> Result<MockHost, String> {
        let mut state = HostState {
            now_ms: start_ms,
            rng: 0x5DEE_CE66_D1CE_4E5B,
            ..HostState::default()
        };
        if let Some(tasks) = tasks {
            let tasks = tasks.as_object().ok_or("tasks is not an object")?;
            for (resource, list) in tasks {
                let list = list
                    .as_array()
                    .ok_or_else(|| format!("tasks[{resource}] is not an array"))?;
                let queue = list
                    .iter()
                    .map(|spec| Outcome {
                        repeat: spec.get("repeat").and_then(Value::as_bool) == Some(true),
                        spec: expand(spec),
                    })
                    .collect();
                state.outcomes.insert(resource.clone(), queue);
            }
        }
        Ok(MockHost {
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HostState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn answer(&self, call: &TaskCall) -> Result<Value, Failure> {
        let mut st = self.lock();
        st.calls
            .entry(call.resource.clone())
            .or_default()
            .push(call.input.clone());
        let spec = match st.outcomes.get_mut(&call.resource) {
            Some(queue) if queue.len() > 1 => queue.pop_front().map(|o| o.spec),
            Some(queue) => match queue.front() {
                Some(o) if o.repeat => Some(o.spec.clone()),
                Some(_) => queue.pop_front().map(|o| o.spec),
                None => None,
            },
            None => None,
        };
        let Some(spec) = spec else {
            let n = st.calls.get(&call.resource).map_or(0, Vec::len);
            st.problems.push(format!(
                "resource {} called {} time(s), more than the fixture lists",
                call.resource, n
            ));
            return Err(Failure {
                error: "Conformance.UnexpectedCall".into(),
                cause: format!("no outcome listed for call {n} of {}", call.resource),
            });
        };
        let duration = spec
            .get("duration_seconds")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        if let Some(timeout) = call.timeout_seconds
            && duration > timeout as f64
        {
            st.now_ms += timeout as i64 * 1000;
            return Err(Failure {
                error: "States.Timeout".into(),
                cause: String::new(),
            });
        }
        if let (Some(silent), Some(heartbeat)) = (
            spec.get("silent_seconds").and_then(Value::as_f64),
            call.heartbeat_seconds,
        ) && silent > heartbeat as f64
        {
            st.now_ms += heartbeat as i64 * 1000;
            return Err(Failure {
                error: "States.HeartbeatTimeout".into(),
                cause: String::new(),
            });
        }
        st.now_ms += (duration * 1000.0).round() as i64;
        if let Some(error) = spec.get("error").and_then(Value::as_str) {
            return Err(Failure {
                error: error.to_string(),
                cause: spec
                    .get("cause")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            });
        }
        if spec.get("echo").and_then(Value::as_bool) == Some(true) {
            return Ok(call.input.clone());
        }
        Ok(spec.get("result").cloned().unwrap_or(Value::Null))
    }
}

impl Host for MockHost {
    fn call_task<'a>(&'a self, call: TaskCall) -> BoxFuture<'a, Result<Value, Failure>> {
        Box::pin(async move { self.answer(&call) })
    }

    fn now_ms(&self) -> i64 {
        self.lock().now_ms
    }

    fn sleep_until<'a>(&'a self, _key: &'a str, until_ms: i64) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let mut st = self.lock();
            if until_ms > st.now_ms {
                st.now_ms = until_ms;
            }
        })
    }

    fn random_u64(&self, _key: &str) -> u64 {
        // splitmix64
        let mut st = self.lock();
        st.rng = st.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = st.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn task_token(&self, key: &str) -> String {
        let mut st = self.lock();
        let next = st.tokens.len() + 1;
        st.tokens
            .entry(key.to_string())
            .or_insert_with(|| format!("tok-{next}"))
            .clone()
    }

    fn record(&self, event_type: &str, _previous_event_id: u64, _details: Value) -> u64 {
        let mut st = self.lock();
        st.history.push(event_type.to_string());
        st.history.len() as u64
    }
}

// ---------------------------------------------------------------------------
// Running one case

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park(),
        }
    }
}

fn execution_info(context: Option<&Value>) -> ExecutionInfo {
    let get = |a: &str, b: &str| {
        context
            .and_then(|c| c.get(a))
            .and_then(|c| c.get(b))
            .cloned()
    };
    let text = |a: &str, b: &str, default: String| {
        get(a, b)
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or(default)
    };
    let name = text("Execution", "Name", "conformance-run".into());
    let sm_name = text("StateMachine", "Name", "ConformanceMachine".into());
    ExecutionInfo {
        execution_arn: text(
            "Execution",
            "Id",
            format!("arn:aws:states:us-east-1:123456789012:execution:{sm_name}:{name}"),
        ),
        start_time: text("Execution", "StartTime", DEFAULT_START.into()),
        role_arn: text(
            "Execution",
            "RoleArn",
            "arn:aws:iam::123456789012:role/service-role/ConformanceRole".into(),
        ),
        state_machine_arn: text(
            "StateMachine",
            "Id",
            format!("arn:aws:states:us-east-1:123456789012:stateMachine:{sm_name}"),
        ),
        redrive_count: get("Execution", "RedriveCount")
            .and_then(|v| v.as_u64())
            .unwrap_or(0) as u32,
        name,
        state_machine_name: sm_name,
    }
}

fn run_case(body: &Value) -> Result<(), String> {
    let text = match body.get("definition_text").and_then(Value::as_str) {
        Some(t) => t.to_string(),
        None => serde_json::to_string(&body["definition"]).map_err(|e| e.to_string())?,
    };
    let expected = &body["expected"];
    if expected.get("invalid").and_then(Value::as_bool) == Some(true) {
        return match StateMachine::parse(&text) {
            Ok(_) => Err("the definition was accepted; expected a validation error".into()),
            Err(diags) if diags.is_empty() => Err("parse failed without any diagnostic".into()),
            Err(diags) => match expected.get("code").and_then(Value::as_str) {
                Some(code) if !diags.iter().any(|d| d.code == code) => Err(format!(
                    "rejected, but with codes {:?} instead of {code}: {:?}",
                    diags.iter().map(|d| d.code.as_str()).collect::<Vec<_>>(),
                    diags.iter().map(|d| d.message.as_str()).collect::<Vec<_>>()
                )),
                _ => Ok(()),
            },
        };
    }
    let machine = StateMachine::parse(&text).map_err(|diags| {
        format!(
            "definition rejected: {:?}",
            diags
                .iter()
                .map(|d| format!("{}: {} at {:?}", d.code, d.message, d.location))
                .collect::<Vec<_>>()
        )
    })?;
    let info = execution_info(body.get("context"));
    let start_ms = parse_timestamp_ms(&info.start_time)
        .ok_or_else(|| format!("bad StartTime {:?}", info.start_time))?;
    let host = MockHost::new(start_ms, body.get("tasks"))?;
    let input = expand(
        body.get("input")
            .unwrap_or(&Value::Object(Default::default())),
    );

    let result = block_on(execute(&machine, input, &info, &host));

    let st = host.lock();
    let mut problems: Vec<String> = st.problems.clone();
    let shown = |r: &Result<Value, Failure>| match r {
        Ok(v) => format!("output {}", short(v)),
        Err(f) => format!("error {:?} cause {:?}", f.error, short_str(&f.cause)),
    };

    if let Some(want) = expected.get("output") {
        match &result {
            Ok(got) if json_eq(got, want) => {}
            other => problems.push(format!(
                "expected output {}, got {}",
                short(want),
                shown(other)
            )),
        }
    }
    if expected.get("succeeded").and_then(Value::as_bool) == Some(true) && result.is_err() {
        problems.push(format!("expected success, got {}", shown(&result)));
    }
    let want_error = expected.get("error").and_then(Value::as_str);
    let want_failure = want_error.is_some() || expected.get("failed").is_some();
    if want_failure {
        match &result {
            Err(f) => {
                if let Some(e) = want_error
                    && f.error != e
                {
                    problems.push(format!("expected error {e:?}, got {}", shown(&result)));
                }
                if let Some(c) = expected.get("cause").and_then(Value::as_str)
                    && f.cause != c
                {
                    problems.push(format!("expected cause {c:?}, got {:?}", f.cause));
                }
                if let Some(c) = expected.get("cause_contains").and_then(Value::as_str)
                    && !f.cause.contains(c)
                {
                    problems.push(format!(
                        "expected cause containing {c:?}, got {:?}",
                        f.cause
                    ));
                }
            }
            Ok(_) => problems.push(format!(
                "expected error {:?}, got {}",
                want_error.unwrap_or("(any)"),
                shown(&result)
            )),
        }
    }

    if let Some(calls) = body.get("calls").and_then(Value::as_object) {
        for (resource, n) in calls {
            let got = st.calls.get(resource).map_or(0, Vec::len) as u64;
            if Some(got) != n.as_u64() {
                problems.push(format!("expected {n} call(s) of {resource}, got {got}"));
            }
        }
    }
    if let Some(inputs) = body.get("task_inputs").and_then(Value::as_object) {
        for (resource, want) in inputs {
            let got = Value::Array(st.calls.get(resource).cloned().unwrap_or_default());
            if !json_eq(&got, want) {
                problems.push(format!(
                    "task inputs of {resource}: expected {}, got {}",
                    short(want),
                    short(&got)
                ));
            }
        }
    }
    if let Some(inputs) = body.get("task_inputs_unordered").and_then(Value::as_object) {
        for (resource, want) in inputs {
            let got = st.calls.get(resource).cloned().unwrap_or_default();
            let want = want.as_array().cloned().unwrap_or_default();
            if !same_multiset(&got, &want) {
                problems.push(format!(
                    "task inputs of {resource} (any order): expected {}, got {}",
                    short(&Value::Array(want)),
                    short(&Value::Array(got))
                ));
            }
        }
    }
    let elapsed = (st.now_ms - start_ms) as f64 / 1000.0;
    if let Some(want) = body.get("elapsed_seconds").and_then(Value::as_f64)
        && (elapsed - want).abs() > 1e-6
    {
        problems.push(format!(
            "expected {want} s of virtual time, got {elapsed} s"
        ));
    }
    if let Some(max) = body.get("elapsed_seconds_at_most").and_then(Value::as_f64)
        && elapsed > max + 1e-6
    {
        problems.push(format!(
            "expected at most {max} s of virtual time, got {elapsed} s"
        ));
    }
    if let Some(want) = body.get("history_types").and_then(Value::as_array) {
        let want: Vec<&str> = want.iter().filter_map(Value::as_str).collect();
        if !is_subsequence(&want, &st.history) {
            problems.push(format!(
                "history {:?} does not contain {:?} in this order",
                st.history, want
            ));
        }
    }
    if let Ok(output) = &result {
        output_assertions(body, output, &mut problems);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn output_assertions(body: &Value, output: &Value, problems: &mut Vec<String>) {
    if let Some(m) = body.get("output_matches").and_then(Value::as_object) {
        for (path, pattern) in m {
            let pattern = pattern.as_str().unwrap_or_default();
            match select(output, path) {
                Some(Value::String(s)) if regex_match(pattern, &s) => {}
                other => problems.push(format!("{path} = {other:?} does not match /{pattern}/")),
            }
        }
    }
    if let Some(m) = body.get("output_range").and_then(Value::as_object) {
        for (path, range) in m {
            let lo = range.get(0).and_then(Value::as_f64).unwrap_or(f64::MIN);
            let hi = range.get(1).and_then(Value::as_f64).unwrap_or(f64::MAX);
            match select(output, path).as_ref().and_then(Value::as_f64) {
                Some(x) if x >= lo && x < hi => {}
                other => problems.push(format!("{path} = {other:?} is not in [{lo}, {hi})")),
            }
        }
    }
    if let Some(list) = body.get("output_integer").and_then(Value::as_array) {
        for path in list.iter().filter_map(Value::as_str) {
            match select(output, path) {
                Some(Value::Number(n)) if n.is_i64() || n.is_u64() => {}
                other => problems.push(format!("{path} = {other:?} is not an integer")),
            }
        }
    }
    for (key, want_equal) in [("output_equal", true), ("output_distinct", false)] {
        if let Some(pairs) = body.get(key).and_then(Value::as_array) {
            for pair in pairs {
                let a = pair.get(0).and_then(Value::as_str).unwrap_or("$");
                let b = pair.get(1).and_then(Value::as_str).unwrap_or("$");
                let (va, vb) = (select(output, a), select(output, b));
                let equal = match (&va, &vb) {
                    (Some(x), Some(y)) => json_eq(x, y),
                    _ => false,
                };
                if va.is_none() || vb.is_none() || equal != want_equal {
                    problems.push(format!(
                        "{a} = {va:?} and {b} = {vb:?} should be {}",
                        if want_equal { "equal" } else { "different" }
                    ));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Helpers: comparison, paths, timestamps, a small regex matcher

/// JSON equality where numbers compare by value (1 equals 1.0).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(i), Some(j)) = (x.as_i64(), y.as_i64()) {
                i == j
            } else if let (Some(i), Some(j)) = (x.as_u64(), y.as_u64()) {
                i == j
            } else {
                match (x.as_f64(), y.as_f64()) {
                    (Some(i), Some(j)) => i == j,
                    _ => false,
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(i, j)| json_eq(i, j))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn same_multiset(got: &[Value], want: &[Value]) -> bool {
    if got.len() != want.len() {
        return false;
    }
    let mut used = vec![false; got.len()];
    want.iter().all(
        |w| match (0..got.len()).find(|&i| !used[i] && json_eq(&got[i], w)) {
            Some(i) => {
                used[i] = true;
                true
            }
            None => false,
        },
    )
}

fn is_subsequence(want: &[&str], got: &[String]) -> bool {
    let mut it = got.iter();
    want.iter().all(|w| it.any(|g| g == w))
}

/// Selects `$`, `$.a.b`, `$.a[0]` or `$['a b']` from a value.
fn select(root: &Value, path: &str) -> Option<Value> {
    let mut cur = root;
    let rest = path.strip_prefix('$')?;
    let chars: Vec<char> = rest.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && chars[j] != '.' && chars[j] != '[' {
                    j += 1;
                }
                let key: String = chars[start..j].iter().collect();
                cur = cur.get(&key)?;
                i = j;
            }
            '[' => {
                let end = (i..chars.len()).find(|&j| chars[j] == ']')?;
                let inner: String = chars[i + 1..end].iter().collect();
                if let Some(quoted) = inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
                    cur = cur.get(quoted)?;
                } else {
                    cur = cur.get(inner.trim().parse::<usize>().ok()?)?;
                }
                i = end + 1;
            }
            _ => return None,
        }
    }
    Some(cur.clone())
}

/// Milliseconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.fff]Z`.
fn parse_timestamp_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || !s.ends_with('Z') {
        return None;
    }
    let num = |from: usize, to: usize| s.get(from..to)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let mut ms = 0;
    if b[19] == b'.' {
        let frac = &s[20..s.len() - 1];
        let digits: String = frac.chars().chain("000".chars()).take(3).collect();
        ms = digits.parse::<i64>().ok()?;
    }
    // days from civil (Howard Hinnant)
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000 + ms)
}

/// One element of a pattern: what it matches and how often.
struct Piece {
    set: Vec<(char, char)>,
    negated: bool,
    any: bool,
    min: usize,
    max: usize,
}

/// Full-string match of a small regex dialect: literals, `\` escapes, `.`,
/// `[...]` classes with ranges and `^` negation, quantifiers `* + ? {n} {n,m}`.
/// `^` and `$` anchors are accepted (the match is always anchored).
fn regex_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let mut pieces = Vec::new();
    let mut i = 0;
    while i < p.len() {
        let (mut piece, next) = match p[i] {
            '^' if i == 0 => {
                i += 1;
                continue;
            }
            '$' if i == p.len() - 1 => break,
            '.' => (lit_piece(None), i + 1),
            '\\' if i + 1 < p.len() => (lit_piece(Some(p[i + 1])), i + 2),
            '[' => {
                let mut j = i + 1;
                let negated = p.get(j) == Some(&'^');
                if negated {
                    j += 1;
                }
                let mut set = Vec::new();
                while j < p.len() && p[j] != ']' {
                    if j + 2 < p.len() && p[j + 1] == '-' && p[j + 2] != ']' {
                        set.push((p[j], p[j + 2]));
                        j += 3;
                    } else {
                        set.push((p[j], p[j]));
                        j += 1;
                    }
                }
                (
                    Piece {
                        set,
                        negated,
                        any: false,
                        min: 1,
                        max: 1,
                    },
                    j + 1,
                )
            }
            c => (lit_piece(Some(c)), i + 1),
        };
        i = next;
        if i < p.len() {
            match p[i] {
                '*' => (piece.min, piece.max, i) = (0, usize::MAX, i + 1),
                '+' => (piece.min, piece.max, i) = (1, usize::MAX, i + 1),
                '?' => (piece.min, piece.max, i) = (0, 1, i + 1),
                '{' => {
                    if let Some(end) = (i..p.len()).find(|&j| p[j] == '}') {
                        let inner: String = p[i + 1..end].iter().collect();
                        let mut parts = inner.splitn(2, ',');
                        let lo = parts
                            .next()
                            .and_then(|s| s.trim().parse().ok())
                            .unwrap_or(0);
                        let hi = match parts.next() {
                            None => lo,
                            Some(s) if s.trim().is_empty() => usize::MAX,
                            Some(s) => s.trim().parse().unwrap_or(lo),
                        };
                        (piece.min, piece.max, i) = (lo, hi, end + 1);
                    }
                }
                _ => {}
            }
        }
        pieces.push(piece);
    }
    let t: Vec<char> = text.chars().collect();
    match_from(&pieces, &t)
}

fn lit_piece(c: Option<char>) -> Piece {
    Piece {
        set: c.map(|c| vec![(c, c)]).unwrap_or_default(),
        negated: false,
        any: c.is_none(),
        min: 1,
        max: 1,
    }
}

fn piece_accepts(piece: &Piece, c: char) -> bool {
    if piece.any {
        return true;
    }
    let inside = piece.set.iter().any(|&(lo, hi)| lo <= c && c <= hi);
    inside != piece.negated
}

fn match_from(pieces: &[Piece], text: &[char]) -> bool {
    let Some((first, rest)) = pieces.split_first() else {
        return text.is_empty();
    };
    let mut n = 0;
    while n < first.min {
        if n >= text.len() || !piece_accepts(first, text[n]) {
            return false;
        }
        n += 1;
    }
    loop {
        if match_from(rest, &text[n..]) {
            return true;
        }
        if n >= first.max || n >= text.len() || !piece_accepts(first, text[n]) {
            return false;
        }
        n += 1;
    }
}

fn short(v: &Value) -> String {
    short_str(&v.to_string())
}

fn short_str(s: &str) -> String {
    if s.chars().count() > 300 {
        let head: String = s.chars().take(300).collect();
        format!("{head}... ({} bytes)", s.len())
    } else {
        s.to_string()
    }
}

// ---------------------------------------------------------------------------
// The test

#[test]
fn conformance() {
    let cases = match load_cases() {
        Ok(c) => c,
        Err(e) => panic!("fixtures: {e}"),
    };
    assert!(
        cases.len() >= MIN_CASES,
        "only {} fixture cases, expected at least {MIN_CASES}",
        cases.len()
    );

    // area -> (passed, failed)
    let mut table: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for case in &cases {
        let (tx, rx) = mpsc::channel();
        let body = case.body.clone();
        // A thread per case: a panic or a hang in one case does not stop the others.
        let spawned = std::thread::Builder::new()
            .name(case.name.clone())
            .spawn(move || {
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_case(&body)))
                        .unwrap_or_else(|panic| {
                            let msg = panic
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                                .unwrap_or_default();
                            Err(format!("panicked: {msg}"))
                        });
                let _ = tx.send(outcome);
            });
        let outcome = match spawned {
            Ok(_) => rx
                .recv_timeout(CASE_LIMIT)
                .unwrap_or_else(|_| Err(format!("did not finish within {CASE_LIMIT:?}"))),
            Err(e) => Err(format!("could not start: {e}")),
        };
        let entry = table.entry(case.area.clone()).or_default();
        match outcome {
            Ok(()) => entry.0 += 1,
            Err(why) => {
                entry.1 += 1;
                failures.push(format!(
                    "[{}] {}\n    {}\n    ({})",
                    case.area, case.name, why, case.file
                ));
            }
        }
    }

    println!("\n{:<20} {:>7} {:>7}", "area", "passed", "failed");
    let (mut total_pass, mut total_fail) = (0, 0);
    for (area, (pass, fail)) in &table {
        println!("{area:<20} {pass:>7} {fail:>7}");
        total_pass += pass;
        total_fail += fail;
    }
    println!("{:<20} {total_pass:>7} {total_fail:>7}", "total");
    if !failures.is_empty() {
        println!("\nfailing cases:");
        for f in &failures {
            println!("{f}");
        }
        panic!("{total_fail} of {} conformance cases failed", cases.len());
    }
}

#[test]
fn runner_helpers() {
    assert!(regex_match(
        "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
        "ca4c1140-dcc1-40cd-ad05-7b4aa23df4a8"
    ));
    assert!(!regex_match(
        "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
        "ca4c1140-dcc1-30cd-ad05-7b4aa23df4a8"
    ));
    assert!(regex_match("a.*c", "abbbc") && !regex_match("a.+c", "ac"));
    assert_eq!(parse_timestamp_ms("1970-01-01T00:00:01.500Z"), Some(1500));
    assert_eq!(
        parse_timestamp_ms("2026-01-01T00:00:00.000Z"),
        Some(1_767_225_600_000)
    );
    assert!(json_eq(&serde_json::json!(1), &serde_json::json!(1.0)));
    assert!(!json_eq(&serde_json::json!(1), &serde_json::json!("1")));
    assert_eq!(
        select(&serde_json::json!({"a": [{"b": 2}]}), "$.a[0].b"),
        Some(serde_json::json!(2))
    );
    assert_eq!(
        expand(&serde_json::json!({"x": {"$repeat": "ab", "times": 2}})),
        serde_json::json!({"x": "abab"})
    );
    assert!(is_subsequence(
        &["A", "C"],
        &["A".into(), "B".into(), "C".into()]
    ));
}
