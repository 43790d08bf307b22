//! Benchmarks of the Amazon States Language interpreter (`stratus-asl`),
//! in process, on one core:
//!
//! (a) a 1,000-state Pass chain (each state with InputPath, Parameters
//!     with a `.$` path, ResultPath and OutputPath, so every transition
//!     runs the whole JSONPath data-processing pipeline);
//! (b) a Choice-heavy loop: a Choice state with four rules (numeric,
//!     string, boolean and And/Not) and a Pass state incrementing a counter
//!     with `States.MathAdd`, 10,000 iterations;
//! (c) an inline Map over 10,000 items, each iteration one Pass state with
//!     an ItemSelector using `$$.Map.Item.Index`.
//!
//! The host answers at once and records history events by serialising
//! their details (as a store would) and dropping them, so the figures are
//! the engine's cost plus event construction. A transition is one state
//! entered and exited.
//!
//! Usage: `stratus-bench-asl [--rounds 5] [--out bench/RESULTS.md]`.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use serde_json::{Value, json};
use stratus_asl::{BoxFuture, ExecutionInfo, Failure, Host, StateMachine, TaskCall, execute};
use stratus_bench::{append_section, or_exit, parse_args, utc_date};

const PROG: &str = "stratus-bench-asl";

struct BenchHost {
    events: AtomicU64,
    bytes: AtomicU64,
}

impl Host for BenchHost {
    fn call_task<'a>(&'a self, call: TaskCall) -> BoxFuture<'a, Result<Value, Failure>> {
        Box::pin(async move { Ok(call.input) })
    }
    fn now_ms(&self) -> i64 {
        1_700_000_000_000
    }
    fn sleep_until<'a>(&'a self, _key: &'a str, _until_ms: i64) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
    fn random_u64(&self, key: &str) -> u64 {
        key.len() as u64
    }
    fn task_token(&self, key: &str) -> String {
        key.to_string()
    }
    fn record(&self, _event_type: &str, _previous_event_id: u64, details: Value) -> u64 {
        let n = serde_json::to_string(&details)
            .map(|s| s.len())
            .unwrap_or(0);
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        self.events.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Polls a future that never waits (the bench host answers at once).
fn run_now<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn info() -> ExecutionInfo {
    ExecutionInfo {
        execution_arn: "arn:aws:states:us-east-1:123456789012:execution:bench:run".into(),
        name: "run".into(),
        start_time: "2026-01-01T00:00:00.000Z".into(),
        role_arn: "arn:aws:iam::123456789012:role/bench".into(),
        state_machine_arn: "arn:aws:states:us-east-1:123456789012:stateMachine:bench".into(),
        state_machine_name: "bench".into(),
        redrive_count: 0,
    }
}

fn pass_chain(n: usize) -> String {
    let mut states = serde_json::Map::new();
    for i in 0..n {
        let mut s = json!({"Type": "Pass", "InputPath": "$", "Parameters": {"count.$": "$.count", "tag": "t"},
                           "ResultPath": "$", "OutputPath": "$"});
        if i + 1 == n {
            s["End"] = json!(true);
        } else {
            s["Next"] = json!(format!("S{}", i + 1));
        }
        states.insert(format!("S{i}"), s);
    }
    json!({"StartAt": "S0", "States": states}).to_string()
}

fn choice_loop() -> String {
    json!({"StartAt": "Check", "States": {
        "Check": {"Type": "Choice", "Choices": [
            {"Variable": "$.flag", "BooleanEquals": false, "Next": "Done"},
            {"Variable": "$.name", "StringEquals": "stop", "Next": "Done"},
            {"And": [{"Variable": "$.i", "NumericGreaterThanEquals": 0},
                     {"Not": {"Variable": "$.i", "NumericGreaterThanEqualsPath": "$.limit"}}], "Next": "Inc"}],
            "Default": "Done"},
        "Inc": {"Type": "Pass", "Parameters": {"i.$": "States.MathAdd($.i, 1)", "limit.$": "$.limit",
                "flag.$": "$.flag", "name.$": "$.name"}, "Next": "Check"},
        "Done": {"Type": "Succeed"}}})
    .to_string()
}

fn inline_map() -> String {
    json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true, "ItemsPath": "$.items",
        "ItemSelector": {"index.$": "$$.Map.Item.Index", "value.$": "$$.Map.Item.Value"},
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass",
            "Parameters": {"v.$": "$.value", "i.$": "$.index"}, "End": true}}}}}})
    .to_string()
}

/// Runs `def` with `input` `rounds` times; the median transitions per
/// second and the number of transitions of one run.
fn measure(
    host: &BenchHost,
    def: &str,
    input: &Value,
    rounds: usize,
    transitions: impl Fn(&Value) -> u64,
) -> Result<(f64, u64), String> {
    let m = StateMachine::parse(def).map_err(|d| format!("{d:?}"))?;
    let info = info();
    let mut rates = Vec::new();
    let mut per_run = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let out = run_now(execute(&m, input.clone(), &info, host))
            .map_err(|f| format!("{}: {}", f.error, f.cause))?;
        let secs = t.elapsed().as_secs_f64();
        per_run = transitions(&out);
        rates.push(per_run as f64 / secs);
        black_box(out);
    }
    rates.sort_by(|a, b| a.total_cmp(b));
    Ok((rates[rates.len() / 2], per_run))
}

fn main() {
    let mut rounds = 5usize;
    let base = or_exit(PROG, 2, parse_args(&mut [("--rounds", &mut rounds)]));
    let rounds = rounds.max(1);
    // Other work on the machine skews the figures: say how busy it was.
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    let host = BenchHost {
        events: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
    };
    let (chain, chain_n) = or_exit(
        PROG,
        1,
        measure(
            &host,
            &pass_chain(1000),
            &json!({"count": 1}),
            rounds * 20,
            |_| 1000,
        ),
    );
    let loops = 10_000u64;
    let (choice, choice_n) = or_exit(
        PROG,
        1,
        measure(
            &host,
            &choice_loop(),
            &json!({"i": 0, "limit": loops, "flag": true, "name": "go"}),
            rounds,
            // Check + Inc per iteration, the last Check, Done.
            |out| out["i"].as_u64().unwrap_or(0) * 2 + 2,
        ),
    );
    let items: Vec<Value> = (0..10_000).map(|i| json!({"n": i})).collect();
    let (map, map_n) = or_exit(
        PROG,
        1,
        measure(
            &host,
            &inline_map(),
            &json!({"items": items}),
            rounds,
            // The Map state plus one Pass per item.
            |out| out.as_array().map(|a| a.len() as u64).unwrap_or(0) + 1,
        ),
    );
    let ok = |v: f64| if v >= 200_000.0 { "met" } else { "MISSED" };
    let section = format!(
        "\n## ASL interpreter: {date}\n\n\
         Machine: {cores} cores; one core used (the interpreter runs on the calling thread, the host answers at once and serialises each history event's details). Release build. Median of the runs. Load average at the start: {load}.\n\n\
         | workload | transitions per run | transitions/s | target |\n|---|---|---|---|\n\
         | 1,000-state Pass chain (InputPath, Parameters with a path, ResultPath, OutputPath on every state) | {chain_n} | {chain:.0} ({a}) | >= 200,000 |\n\
         | Choice loop (4 rules incl. And/Not and a Path comparison; Pass with States.MathAdd) | {choice_n} | {choice:.0} ({b}) | >= 200,000 |\n\
         | inline Map over 10,000 items (ItemSelector with $$.Map.Item, one Pass per item) | {map_n} | {map:.0} | |\n\n\
         History events recorded: {events} ({mb:.1} MB of event details serialised).\n",
        date = utc_date(),
        load = load,
        cores = stratus_bench::cores(),
        a = ok(chain),
        b = ok(choice),
        events = host.events.load(Ordering::Relaxed),
        mb = host.bytes.load(Ordering::Relaxed) as f64 / 1e6,
    );
    append_section(PROG, &base.out, &section);
}
