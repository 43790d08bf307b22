//! Interpreter tests. Expected values follow the examples and rules of the
//! Step Functions Developer Guide ("Processing input and output", "Handling
//! errors", "Map state", "Parallel state", "Passing data between states
//! with variables") and the Amazon States Language specification.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use serde_json::{Value, json};

use super::*;

type TaskFn = dyn Fn(&TaskCall) -> Result<Value, Failure> + Send + Sync;

pub(crate) mod support {
    pub(crate) use super::{TestHost, info};
}

pub(crate) struct TestHost {
    pub events: Mutex<Vec<(u64, String, u64, Value)>>,
    pub calls: Mutex<Vec<TaskCall>>,
    pub sleeps: Mutex<Vec<(String, i64)>>,
    pub now: AtomicI64,
    next_id: AtomicU64,
    task: Box<TaskFn>,
}

impl TestHost {
    pub(crate) fn new(
        task: impl Fn(&TaskCall) -> Result<Value, Failure> + Send + Sync + 'static,
    ) -> TestHost {
        TestHost {
            events: Mutex::new(Vec::new()),
            calls: Mutex::new(Vec::new()),
            sleeps: Mutex::new(Vec::new()),
            now: AtomicI64::new(1_700_000_000_000),
            next_id: AtomicU64::new(1),
            task: Box::new(task),
        }
    }

    pub(crate) fn types(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.1.clone())
            .collect()
    }
}

impl Host for TestHost {
    fn call_task<'a>(&'a self, call: TaskCall) -> BoxFuture<'a, Result<Value, Failure>> {
        let r = (self.task)(&call);
        self.calls.lock().unwrap().push(call);
        Box::pin(async move { r })
    }
    fn now_ms(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }
    fn sleep_until<'a>(&'a self, key: &'a str, until_ms: i64) -> BoxFuture<'a, ()> {
        self.sleeps
            .lock()
            .unwrap()
            .push((key.to_string(), until_ms));
        // Time jumps forward to the wake-up time (never backwards).
        self.now.fetch_max(until_ms, Ordering::SeqCst);
        Box::pin(async {})
    }
    fn random_u64(&self, key: &str) -> u64 {
        key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        })
    }
    fn task_token(&self, key: &str) -> String {
        format!("token-{key}")
    }
    fn record(&self, event_type: &str, previous_event_id: u64, details: Value) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        self.events
            .lock()
            .unwrap()
            .push((id, event_type.to_string(), previous_event_id, details));
        id
    }
}

pub(crate) fn info() -> ExecutionInfo {
    ExecutionInfo {
        execution_arn: "arn:aws:states:us-east-1:123456789012:execution:sm:run1".into(),
        name: "run1".into(),
        start_time: "2023-11-14T22:13:20.000Z".into(),
        role_arn: "arn:aws:iam::123456789012:role/r".into(),
        state_machine_arn: "arn:aws:states:us-east-1:123456789012:stateMachine:sm".into(),
        state_machine_name: "sm".into(),
        redrive_count: 0,
    }
}

fn run(def: Value, input: Value, host: &TestHost) -> Result<Value, Failure> {
    let m = StateMachine::parse(&def.to_string()).unwrap_or_else(|d| panic!("{d:?}"));
    futures::executor::block_on(execute(&m, input, &info(), host))
}

fn echo() -> TestHost {
    TestHost::new(|c| Ok(c.input.clone()))
}

const FN: &str = "arn:aws:lambda:us-east-1:123456789012:function:f";

#[test]
fn pass_result_and_result_path() {
    // Guide, "ResultPath": a Pass state's Result placed at $.taskresult.
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Pass",
        "Result": "Hello, Step Functions!", "ResultPath": "$.taskresult", "End": true}}});
    let out = run(
        def,
        json!({"comment": "An input comment.", "data": {"val1": 23, "val2": 17}}),
        &echo(),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"comment": "An input comment.", "data": {"val1": 23, "val2": 17}, "taskresult": "Hello, Step Functions!"})
    );
}

#[test]
fn input_output_processing_order() {
    // Guide, "Example: Manipulating state data with paths": InputPath,
    // Parameters, ResultSelector, ResultPath, OutputPath in that order.
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FN,
        "InputPath": "$.library",
        "Parameters": {"staticValue": "Just a string", "catalog": {"myFavoriteMovie.$": "$.movies[0]"}},
        "ResultSelector": {"modifiedPayload": {"body.$": "$.catalog", "static": "x"}},
        "ResultPath": "$.taskResult",
        "OutputPath": "$.taskResult.modifiedPayload",
        "End": true}}});
    let host = echo();
    let out = run(
        def,
        json!({"library": {"movies": ["Ghost", "Jaws"]}}),
        &host,
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"body": {"myFavoriteMovie": "Ghost"}, "static": "x"})
    );
    assert_eq!(
        host.calls.lock().unwrap()[0].input,
        json!({"staticValue": "Just a string", "catalog": {"myFavoriteMovie": "Ghost"}})
    );
}

#[test]
fn result_path_null_keeps_input_and_null_paths_give_empty_object() {
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FN,
        "ResultPath": null, "Next": "P"},
        "P": {"Type": "Pass", "InputPath": null, "End": true}}});
    let host = TestHost::new(|_| Ok(json!("ignored")));
    assert_eq!(run(def, json!({"a": 1}), &host).unwrap(), json!({}));
}

#[test]
fn missing_input_path_is_states_runtime() {
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "InputPath": "$.nope", "End": true}}});
    let host = echo();
    let f = run(def, json!({"a": 1}), &host).unwrap_err();
    assert_eq!(f.error, "States.Runtime");
    assert!(
        f.cause.starts_with(
            "An error occurred while executing the state 'P' (entered at the event id #"
        ),
        "{}",
        f.cause
    );
    assert!(f.cause.contains("Invalid path '$.nope'"), "{}", f.cause);
    assert_eq!(host.types().last().unwrap(), "ExecutionFailed");
}

#[test]
fn task_history_events() {
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke", "End": true}}});
    let host = echo();
    run(def, json!({"x": 1}), &host).unwrap();
    assert_eq!(
        host.types(),
        [
            "TaskStateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSucceeded",
            "TaskStateExited",
            "ExecutionSucceeded"
        ]
    );
    let ev = host.events.lock().unwrap();
    assert_eq!(ev[0].2, 0);
    for w in ev.windows(2) {
        assert_eq!(w[1].2, w[0].0, "previous event ids chain");
    }
    assert_eq!(ev[1].3["resourceType"], "lambda");
    assert_eq!(ev[1].3["resource"], "invoke");
    assert_eq!(ev[1].3["region"], "us-east-1");
    assert_eq!(ev[1].3["parameters"], "{\"x\":1}");
    assert_eq!(ev[0].3["input"], "{\"x\":1}");
}

#[test]
fn legacy_lambda_arn_records_lambda_events() {
    let def =
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FN, "End": true}}});
    let host = TestHost::new(|_| Err(Failure::new("MyError", "boom")));
    let f = run(def, json!({}), &host).unwrap_err();
    assert_eq!(f, Failure::new("MyError", "boom"));
    assert_eq!(
        host.types(),
        [
            "TaskStateEntered",
            "LambdaFunctionScheduled",
            "LambdaFunctionStarted",
            "LambdaFunctionFailed",
            "ExecutionFailed"
        ]
    );
}

#[test]
fn retry_backoff_and_max_attempts() {
    // Guide, "Retrying after an error": IntervalSeconds 1, BackoffRate 2,
    // MaxAttempts 3 waits 1, 2 and 4 seconds, then fails.
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FN, "End": true,
        "Retry": [{"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 1, "BackoffRate": 2, "MaxAttempts": 3}]}}});
    let host = TestHost::new(|_| Err(Failure::new("States.TaskFailed", "x")));
    let start = host.now_ms();
    let f = run(def, json!({}), &host).unwrap_err();
    assert_eq!(f.error, "States.TaskFailed");
    let sleeps = host.sleeps.lock().unwrap().clone();
    let waits: Vec<i64> = sleeps
        .iter()
        .scan(start, |t, (_, u)| {
            let d = u - *t;
            *t = *u;
            Some(d)
        })
        .collect();
    assert_eq!(waits, vec![1000, 2000, 4000]);
    assert_eq!(host.calls.lock().unwrap().len(), 4);
    let keys: Vec<String> = host
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.key.clone())
        .collect();
    assert_eq!(keys, ["T#1", "T#2", "T#3", "T#4"]);
}

#[test]
fn max_attempts_zero_never_retries_and_max_delay_caps() {
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FN, "End": true,
        "Retry": [{"ErrorEquals": ["A"], "MaxAttempts": 0},
                  {"ErrorEquals": ["B"], "IntervalSeconds": 10, "MaxAttempts": 2, "BackoffRate": 10, "MaxDelaySeconds": 15}]}}});
    let host = TestHost::new(|_| Err(Failure::new("A", "")));
    run(def.clone(), json!({}), &host).unwrap_err();
    assert_eq!(host.calls.lock().unwrap().len(), 1);
    let host = TestHost::new(|_| Err(Failure::new("B", "")));
    let start = host.now_ms();
    run(def, json!({}), &host).unwrap_err();
    let s = host.sleeps.lock().unwrap().clone();
    assert_eq!(s[0].1 - start, 10_000);
    assert_eq!(s[1].1 - s[0].1, 15_000);
}

#[test]
fn catch_places_error_output_with_result_path() {
    // Guide, "Fallback states": error output {"Error","Cause"} at ResultPath.
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": FN, "Next": "Done",
              "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Recover"}]},
        "Recover": {"Type": "Pass", "End": true},
        "Done": {"Type": "Succeed"}}});
    let host = TestHost::new(|_| Err(Failure::new("CustomError", "It failed")));
    let out = run(def, json!({"a": 1}), &host).unwrap();
    assert_eq!(
        out,
        json!({"a": 1, "error": {"Error": "CustomError", "Cause": "It failed"}})
    );
    let t = host.types();
    assert_eq!(
        &t[..5],
        [
            "TaskStateEntered",
            "LambdaFunctionScheduled",
            "LambdaFunctionStarted",
            "LambdaFunctionFailed",
            "TaskStateExited"
        ]
    );
}

#[test]
fn error_name_matching_rules() {
    let all = vec!["States.ALL".to_string()];
    let tf = vec!["States.TaskFailed".to_string()];
    assert!(error_matches(&all, "Lambda.Unknown"));
    assert!(!error_matches(&all, "States.Runtime"));
    assert!(!error_matches(&all, "States.DataLimitExceeded"));
    assert!(error_matches(&tf, "MyError"));
    assert!(!error_matches(&tf, "States.Timeout"));
    assert!(error_matches(
        &["States.Timeout".to_string()],
        "States.HeartbeatTimeout"
    ));
    assert!(!error_matches(
        &["States.Runtime".to_string()],
        "States.Runtime"
    ));
}

#[test]
fn choice_loop_counts_to_three() {
    let def = json!({"StartAt": "Init", "States": {
        "Init": {"Type": "Pass", "Result": 0, "ResultPath": "$.i", "Next": "Check"},
        "Check": {"Type": "Choice", "Choices": [
            {"Variable": "$.i", "NumericGreaterThanEquals": 3, "Next": "Done"}], "Default": "Inc"},
        "Inc": {"Type": "Pass", "Parameters": {"i.$": "States.MathAdd($.i, 1)"}, "Next": "Check"},
        "Done": {"Type": "Succeed"}}});
    let host = echo();
    assert_eq!(run(def, json!({}), &host).unwrap(), json!({"i": 3}));
    let checks = host
        .types()
        .iter()
        .filter(|t| *t == "ChoiceStateEntered")
        .count();
    assert_eq!(checks, 4);
}

#[test]
fn choice_without_match_or_default_fails() {
    let def = json!({"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "BooleanEquals": true, "Next": "D"}]},
        "D": {"Type": "Succeed"}}});
    let f = run(def, json!({"x": false}), &echo()).unwrap_err();
    assert_eq!(f.error, "States.NoChoiceMatched");
}

#[test]
fn fail_state_error_and_cause_paths() {
    let def = json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "ErrorPath": "$.e", "CausePath": "$.c"}}});
    let host = echo();
    let f = run(def, json!({"e": "E1", "c": "because"}), &host).unwrap_err();
    assert_eq!(f, Failure::new("E1", "because"));
    assert_eq!(host.types(), ["FailStateEntered", "ExecutionFailed"]);
}

#[test]
fn wait_seconds_and_timestamp() {
    let def = json!({"StartAt": "W", "States": {
        "W": {"Type": "Wait", "Seconds": 10, "Next": "W2"},
        "W2": {"Type": "Wait", "TimestampPath": "$.t", "End": true}}});
    let host = echo();
    let start = host.now_ms();
    run(def, json!({"t": "2030-01-01T00:00:00Z"}), &host).unwrap();
    let s = host.sleeps.lock().unwrap().clone();
    assert_eq!(s[0], ("W/wait".to_string(), start + 10_000));
    assert_eq!(s[1].1, parse_timestamp("2030-01-01T00:00:00Z").unwrap());
    assert_eq!(s[1].1, 1_893_456_000_000);
}

#[test]
fn parallel_outputs_array_in_branch_order_and_fails_with_branch_error() {
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": "a", "End": true}}},
        {"StartAt": "B", "States": {"B": {"Type": "Pass", "Parameters": {"v.$": "$.x"}, "End": true}}}]}}});
    let host = echo();
    assert_eq!(
        run(def, json!({"x": 2}), &host).unwrap(),
        json!(["a", {"v": 2}])
    );
    let t = host.types();
    assert_eq!(t[0], "ParallelStateEntered");
    assert_eq!(t[1], "ParallelStateStarted");
    assert!(t.contains(&"ParallelStateSucceeded".to_string()));
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}},
        {"StartAt": "B", "States": {"B": {"Type": "Fail", "Error": "BranchErr", "Cause": "c"}}}]}}});
    let host = echo();
    let f = run(def, json!({}), &host).unwrap_err();
    assert_eq!(f, Failure::new("BranchErr", "c"));
    assert!(host.types().contains(&"ParallelStateFailed".to_string()));
}

#[test]
fn map_items_path_item_selector_and_context() {
    // Guide, "Map state": ItemSelector with $$.Map.Item.Index / Value.
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true,
        "ItemsPath": "$.detail.shipped",
        "ItemSelector": {"index.$": "$$.Map.Item.Index", "value.$": "$$.Map.Item.Value", "id.$": "$.detail.id"},
        "ItemProcessor": {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FN, "End": true}}}}}});
    let host = echo();
    let out = run(
        def,
        json!({"detail": {"id": 7, "shipped": ["a", "b"]}}),
        &host,
    )
    .unwrap();
    assert_eq!(
        out,
        json!([{"index": 0, "value": "a", "id": 7}, {"index": 1, "value": "b", "id": 7}])
    );
    let mut keys: Vec<String> = host
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.key.clone())
        .collect();
    keys.sort();
    assert_eq!(keys, ["M#1/Map[0]/T#1", "M#1/Map[1]/T#1"]);
    let t = host.types();
    assert!(t.contains(&"MapStateStarted".to_string()));
    assert_eq!(
        t.iter().filter(|x| *x == "MapIterationSucceeded").count(),
        2
    );
}

#[test]
fn map_iterator_form_and_failure_threshold() {
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true, "MaxConcurrency": 1,
        "ToleratedFailureCount": 1,
        "Iterator": {"StartAt": "C", "States": {
            "C": {"Type": "Choice", "Choices": [{"Variable": "$", "NumericEquals": 0, "Next": "Bad"}], "Default": "Ok"},
            "Bad": {"Type": "Fail", "Error": "Zero"},
            "Ok": {"Type": "Succeed"}}}}}});
    let host = echo();
    let out = run(def.clone(), json!([1, 0, 2]), &host).unwrap();
    assert_eq!(out[0], json!(1));
    assert_eq!(out[2], json!(2));
    let f = run(def, json!([0, 0, 2]), &echo()).unwrap_err();
    assert_eq!(f.error, "States.ExceedToleratedFailureThreshold");
}

#[test]
fn map_failure_without_tolerance_fails_with_iteration_error() {
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true,
        "ItemProcessor": {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "E", "Cause": "c"}}}}}});
    let host = echo();
    let f = run(def, json!([1]), &host).unwrap_err();
    assert_eq!(f, Failure::new("E", "c"));
    assert!(host.types().contains(&"MapStateFailed".to_string()));
}

#[test]
fn variables_assign_and_scoping() {
    let def = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Assign": {"x": 1, "y.$": "$.v"}, "Next": "B"},
        "B": {"Type": "Pass", "Parameters": {"x.$": "$x", "y.$": "$y"}, "Next": "M"},
        "M": {"Type": "Map", "ItemsPath": "$.items", "End": true,
              "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass",
                  "Parameters": {"outer.$": "$x", "item.$": "$"}, "End": true}}}}}});
    let out = run(def, json!({"v": "vee", "items": [5]}), &echo());
    // B's output has no "items", so the Map's ItemsPath selects nothing.
    assert_eq!(out.unwrap_err().error, "States.Runtime");
    let def = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Assign": {"x": 1}, "Next": "M"},
        "M": {"Type": "Map", "End": true,
              "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass",
                  "Parameters": {"outer.$": "$x", "item.$": "$"}, "End": true}}}}}});
    let host = echo();
    assert_eq!(
        run(def, json!([5, 6]), &host).unwrap(),
        json!([{"outer": 1, "item": 5}, {"outer": 1, "item": 6}])
    );
    let ev = host.events.lock().unwrap();
    let exited = ev.iter().find(|e| e.1 == "PassStateExited").unwrap();
    assert_eq!(exited.3["assignedVariables"], json!({"x": "1"}));
}

#[test]
fn inner_scope_cannot_assign_outer_variable() {
    let def = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Assign": {"x": 1}, "Next": "P"},
        "P": {"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "I", "States": {"I": {"Type": "Pass", "Assign": {"x": 2}, "End": true}}}]}}});
    let d = StateMachine::parse(&def.to_string()).unwrap_err();
    assert_eq!(d[0].code, "SCHEMA_VALIDATION_FAILED");
    assert_eq!(
        d[0].location.as_deref(),
        Some("/States/P/Branches[0]/States/I/Assign")
    );
}

#[test]
fn assign_reads_values_from_before_the_state() {
    // Guide: all assignments of a state see the variable values from
    // before the state (swap).
    let def = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Assign": {"a": 1, "b": 2}, "Next": "B"},
        "B": {"Type": "Pass", "Assign": {"a.$": "$b", "b.$": "$a"}, "Next": "C"},
        "C": {"Type": "Pass", "Parameters": {"a.$": "$a", "b.$": "$b"}, "End": true}}});
    assert_eq!(
        run(def, json!({}), &echo()).unwrap(),
        json!({"a": 2, "b": 1})
    );
}

#[test]
fn context_object_and_task_token() {
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"token.$": "$$.Task.Token", "name.$": "$$.Execution.Name", "state.$": "$$.State.Name",
                       "sm.$": "$$.StateMachine.Name", "input.$": "$$.Execution.Input"},
        "End": true}}});
    let host = echo();
    let out = run(def, json!({"k": 1}), &host).unwrap();
    assert_eq!(
        out,
        json!({"token": "token-T#1", "name": "run1", "state": "T", "sm": "sm", "input": {"k": 1}})
    );
    assert_eq!(
        host.calls.lock().unwrap()[0].task_token.as_deref(),
        Some("token-T#1")
    );
}

#[test]
fn data_limit_exceeded() {
    let big = "x".repeat(MAX_PAYLOAD_BYTES);
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}});
    let f = run(def, json!({"big": big}), &echo()).unwrap_err();
    assert_eq!(f.error, "States.DataLimitExceeded");
}

#[test]
fn task_timeout_is_states_timeout() {
    struct Slow(TestHost);
    impl Host for Slow {
        fn call_task<'a>(&'a self, _c: TaskCall) -> BoxFuture<'a, Result<Value, Failure>> {
            Box::pin(futures::future::pending())
        }
        fn now_ms(&self) -> i64 {
            self.0.now_ms()
        }
        fn sleep_until<'a>(&'a self, key: &'a str, until_ms: i64) -> BoxFuture<'a, ()> {
            self.0.sleep_until(key, until_ms)
        }
        fn random_u64(&self, key: &str) -> u64 {
            self.0.random_u64(key)
        }
        fn task_token(&self, key: &str) -> String {
            self.0.task_token(key)
        }
        fn record(&self, t: &str, p: u64, d: Value) -> u64 {
            self.0.record(t, p, d)
        }
    }
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke", "TimeoutSeconds": 5, "End": true}}});
    let host = Slow(echo());
    let m = StateMachine::parse(&def.to_string()).unwrap();
    let f = futures::executor::block_on(execute(&m, json!({}), &info(), &host)).unwrap_err();
    assert_eq!(f.error, "States.Timeout");
    assert!(host.0.types().contains(&"TaskTimedOut".to_string()));
}

#[test]
fn test_state_statuses_and_inspection_data() {
    let host = echo();
    let r = futures::executor::block_on(test_state(
        &json!({"Type": "Pass", "InputPath": "$.a", "Parameters": {"b.$": "$.b"}, "ResultPath": "$.r", "Next": "X"}).to_string(),
        json!({"a": {"b": 1}}),
        &info(),
        &host,
        InspectionLevel::Debug,
        None,
    ))
    .unwrap();
    assert_eq!(r.status, "SUCCEEDED");
    assert_eq!(r.next_state.as_deref(), Some("X"));
    assert_eq!(r.output, Some(json!({"a": {"b": 1}, "r": {"b": 1}})));
    assert_eq!(r.inspection_data["afterInputPath"], "{\"b\":1}");
    assert_eq!(r.inspection_data["afterParameters"], "{\"b\":1}");

    let failing = TestHost::new(|_| Err(Failure::new("Boom", "c")));
    let def = json!({"Type": "Task", "Resource": FN, "End": true,
        "Retry": [{"ErrorEquals": ["Boom"]}]})
    .to_string();
    let r = futures::executor::block_on(test_state(
        &def,
        json!({}),
        &info(),
        &failing,
        InspectionLevel::Info,
        None,
    ))
    .unwrap();
    assert_eq!(r.status, "RETRIABLE");
    let def = json!({"Type": "Task", "Resource": FN, "End": true,
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "H"}]})
    .to_string();
    let r = futures::executor::block_on(test_state(
        &def,
        json!({}),
        &info(),
        &failing,
        InspectionLevel::Info,
        None,
    ))
    .unwrap();
    assert_eq!(r.status, "CAUGHT_ERROR");
    assert_eq!(r.next_state.as_deref(), Some("H"));
    assert_eq!(r.output, Some(json!({"Error": "Boom", "Cause": "c"})));
    let def = json!({"Type": "Task", "Resource": FN, "End": true}).to_string();
    let r = futures::executor::block_on(test_state(
        &def,
        json!({}),
        &info(),
        &failing,
        InspectionLevel::Info,
        None,
    ))
    .unwrap();
    assert_eq!(r.status, "FAILED");
    assert_eq!(r.error.as_deref(), Some("Boom"));
    let bad = futures::executor::block_on(test_state(
        "{\"Type\": \"Nope\"}",
        json!({}),
        &info(),
        &failing,
        InspectionLevel::Info,
        None,
    ));
    assert!(bad.is_err());
}

#[test]
fn execution_timeout() {
    struct NeverEnding(TestHost);
    impl Host for NeverEnding {
        fn call_task<'a>(&'a self, _c: TaskCall) -> BoxFuture<'a, Result<Value, Failure>> {
            Box::pin(futures::future::pending())
        }
        fn now_ms(&self) -> i64 {
            self.0.now_ms()
        }
        fn sleep_until<'a>(&'a self, key: &'a str, until_ms: i64) -> BoxFuture<'a, ()> {
            self.0.sleep_until(key, until_ms)
        }
        fn random_u64(&self, key: &str) -> u64 {
            self.0.random_u64(key)
        }
        fn task_token(&self, key: &str) -> String {
            self.0.task_token(key)
        }
        fn record(&self, t: &str, p: u64, d: Value) -> u64 {
            self.0.record(t, p, d)
        }
    }
    let def = json!({"TimeoutSeconds": 60, "StartAt": "T", "States": {"T": {"Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke", "End": true}}});
    let host = NeverEnding(echo());
    let m = StateMachine::parse(&def.to_string()).unwrap();
    let f = futures::executor::block_on(execute(&m, json!({}), &info(), &host)).unwrap_err();
    assert_eq!(f.error, "States.Timeout");
    assert_eq!(host.0.types().last().unwrap(), "ExecutionTimedOut");
}

#[test]
fn timestamps_round_trip() {
    assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        parse_timestamp("2016-03-14T01:59:00Z"),
        Some(1_457_920_740_000)
    );
    assert_eq!(
        parse_timestamp("2016-03-14T01:59:00.5+01:00"),
        Some(1_457_917_140_500)
    );
    assert_eq!(parse_timestamp("2016-02-30T01:59:00Z"), None);
    assert_eq!(
        format_timestamp(1_457_920_740_123),
        "2016-03-14T01:59:00.123Z"
    );
    let _ = HashMap::<u8, u8>::new();
}

#[test]
fn execute_and_test_state_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let m = StateMachine::parse(
        &json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}).to_string(),
    )
    .unwrap();
    let host = echo();
    let i = info();
    let f = execute(&m, json!({}), &i, &host);
    assert_send(&f);
    let t = test_state("{}", json!({}), &i, &host, InspectionLevel::Info, None);
    assert_send(&t);
}

#[test]
fn jsonata_arguments_output_assign_and_condition() {
    // Guide, "Transforming data with JSONata": Arguments shape the task
    // input, Output the state output ($states.result), Assign sets
    // variables that later states read as $name.
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": FN,
              "Arguments": {"total": "{% $states.input.price * $states.input.qty %}", "fixed": 1},
              "Assign": {"seen": "{% $states.result.total %}"},
              "Output": {"r": "{% $states.result %}", "exec": "{% $states.context.Execution.Name %}"},
              "Next": "C"},
        "C": {"Type": "Choice", "Choices": [{"Condition": "{% $seen > 10 %}", "Next": "Big",
              "Output": {"size": "big", "seen": "{% $seen %}"}}], "Default": "Small"},
        "Big": {"Type": "Succeed"},
        "Small": {"Type": "Fail", "Error": "{% 'Small' & $string($seen) %}"}}});
    let host = echo();
    let out = run(def.clone(), json!({"price": 4, "qty": 3}), &host).unwrap();
    assert_eq!(out, json!({"size": "big", "seen": 12}));
    assert_eq!(
        host.calls.lock().unwrap()[0].input,
        json!({"total": 12, "fixed": 1})
    );
    let f = run(def, json!({"price": 1, "qty": 3}), &echo()).unwrap_err();
    assert_eq!(f.error, "Small3");
}

#[test]
fn jsonata_catch_error_output_and_map_items() {
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "M", "States": {
        "M": {"Type": "Map", "Items": "{% $states.input.xs %}",
              "ItemSelector": {"v": "{% $states.context.Map.Item.Value %}", "i": "{% $states.context.Map.Item.Index %}"},
              "ItemProcessor": {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FN, "End": true}}},
              "Catch": [{"ErrorEquals": ["States.ALL"], "Output": {"caught": "{% $states.errorOutput.Error %}"}, "Next": "Done"}],
              "Next": "Done"},
        "Done": {"Type": "Pass", "End": true}}});
    let out = run(def.clone(), json!({"xs": ["a", "b"]}), &echo()).unwrap();
    assert_eq!(out, json!([{"v": "a", "i": 0}, {"v": "b", "i": 1}]));
    let host = TestHost::new(|_| Err(Failure::new("Oops", "")));
    assert_eq!(
        run(def, json!({"xs": [1]}), &host).unwrap(),
        json!({"caught": "Oops"})
    );
}

#[test]
fn jsonata_evaluation_errors_are_query_evaluation_errors() {
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "P", "States": {
        "P": {"Type": "Pass", "Output": "{% $states.input.a + 'x' %}", "End": true}}});
    let f = run(def, json!({"a": 1}), &echo()).unwrap_err();
    assert_eq!(f.error, "States.QueryEvaluationError");
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "W", "States": {
        "W": {"Type": "Wait", "Seconds": "{% $states.input.s %}", "End": true}}});
    let host = echo();
    let start = host.now_ms();
    run(def, json!({"s": 7}), &host).unwrap();
    assert_eq!(host.sleeps.lock().unwrap()[0].1, start + 7000);
}

#[test]
fn test_state_accepts_a_machine_and_variables() {
    let def = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Parameters": {"v.$": "$x"}, "Next": "B"},
        "B": {"Type": "Succeed"}}})
    .to_string();
    let r = futures::executor::block_on(test_state(
        &def,
        json!({}),
        &info(),
        &echo(),
        InspectionLevel::Debug,
        Some(json!({"x": 5})),
    ))
    .unwrap();
    assert_eq!(r.status, "SUCCEEDED");
    assert_eq!(r.output, Some(json!({"v": 5})));
    assert_eq!(r.next_state.as_deref(), Some("B"));
    assert_eq!(r.inspection_data["variables"], "{\"x\":5}");
}

#[test]
fn assigned_variables_are_limited_to_256_kib() {
    let def = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Assign": {"big.$": "$.s"}, "End": true}}});
    let f = run(def, json!({"s": "x".repeat(200 * 1024), "t": 1}), &echo());
    assert!(f.is_ok());
    let def = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Assign": {"a.$": "$.s", "b.$": "$.s"}, "OutputPath": "$.t", "End": true}}});
    let f = run(def, json!({"s": "x".repeat(200 * 1024), "t": 1}), &echo()).unwrap_err();
    assert_eq!(f.error, "States.DataLimitExceeded");
}

#[test]
fn resource_parts_keep_the_sync_2_suffix() {
    assert_eq!(
        resource_parts("arn:aws:states:::lambda:invoke"),
        ("lambda".to_string(), "invoke".to_string())
    );
    assert_eq!(
        resource_parts("arn:aws:states:::states:startExecution.sync:2"),
        ("states".to_string(), "startExecution.sync:2".to_string())
    );
    assert_eq!(
        resource_parts("arn:aws:states:::states:startExecution.sync"),
        ("states".to_string(), "startExecution.sync".to_string())
    );
}
