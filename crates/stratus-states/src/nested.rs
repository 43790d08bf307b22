//! Nested executions: a Task state that starts an execution of another
//! state machine (`arn:aws:states:::states:startExecution`), as the Step
//! Functions Developer Guide describes it in "Start a new AWS Step Functions
//! state machine from a running execution" and "Start workflow executions
//! from a task state".
//!
//! Resources and results:
//!
//! * `arn:aws:states:::states:startExecution` (request-response): the
//!   StartExecution answer `{ExecutionArn, StartDate, SdkHttpMetadata,
//!   SdkResponseMetadata}` (`StartDate` in ms since the epoch).
//! * `...startExecution.sync`: waits for the child to end; the result is the
//!   child's DescribeExecution answer with capitalized member names
//!   (`ExecutionArn`, `StateMachineArn`, `Name`, `Status`, `StartDate`,
//!   `StopDate` (ms since the epoch), `Input`, `InputDetails`, `Output`,
//!   `OutputDetails`, `RedriveCount`, and `StateMachineVersionArn` /
//!   `StateMachineAliasArn` when the child runs a version), `Input` and
//!   `Output` as JSON text.
//! * `...startExecution.sync:2`: the same with `Input` and `Output` as JSON.
//! * `...startExecution.waitForTaskToken`: starts the child, then waits for
//!   SendTaskSuccess / SendTaskFailure like every callback task.
//!
//! Parameters: `StateMachineArn` (a state machine, version or alias ARN),
//! `Input` (JSON, or JSON text passed as is; `{}` when absent), `Name`.
//! Without `Name` the child's name is derived from the parent execution ARN
//! and the task's replay key (a name-based UUID), so a Standard parent that
//! replays after a restart finds the child it started instead of starting a
//! second one.
//!
//! Errors: a child that ends FAILED, TIMED_OUT or ABORTED fails a `.sync`
//! task with `States.TaskFailed`, the cause being the result described above
//! (with `Error` and `Cause`) as JSON text. A refused StartExecution fails
//! the task with `StepFunctions.<code>` (the code with an `Exception`
//! suffix: `StepFunctions.ExecutionAlreadyExistsException`,
//! `StepFunctions.StateMachineDoesNotExistException`,
//! `StepFunctions.InvalidExecutionInputException`,
//! `StepFunctions.ValidationException`, ...), the cause worded as the AWS
//! SDK words service exceptions.
//!
//! A child whose input has the member
//! `AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID` (set from `$$.Execution.Id`)
//! belongs to that execution: StopExecution of the parent stops it. Running
//! children of `.sync` tasks are stopped with their parent too, and when
//! the task stops waiting for them (TimeoutSeconds, a failed Parallel
//! branch beside it): the Run a Job pattern stops the job of a task that is
//! stopped.

use serde_json::{Map, Value, json};
use stratus_asl::Failure;
use stratus_core::AwsError;
use stratus_store::rusqlite::{OptionalExtension, params};

use crate::States;
use crate::executions::FullRow;

/// The input member that links a child execution to the execution that
/// started it (its value: the parent's execution ARN, `$$.Execution.Id`).
pub const STARTED_BY_MEMBER: &str = "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID";

/// How a `states:startExecution` task waits for its child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NestedMode {
    /// `startExecution`: the StartExecution answer.
    RequestResponse,
    /// `startExecution.sync`: the child's description, data as JSON text.
    Sync,
    /// `startExecution.sync:2`: the child's description, data as JSON.
    Sync2,
}

impl NestedMode {
    fn waits(self) -> bool {
        self != NestedMode::RequestResponse
    }
}

/// Classifies a `states:startExecution` resource: the mode and whether it
/// ends in `.waitForTaskToken`. `None` for any other resource (including
/// `.sync` combined with `.waitForTaskToken`, which AWS does not have).
pub fn classify(resource: &str) -> Option<(NestedMode, bool)> {
    let rest = resource.strip_prefix("arn:")?;
    let (partition, rest) = rest.split_once(':')?;
    if !partition.starts_with("aws") {
        return None;
    }
    match rest {
        "states:::states:startExecution" => Some((NestedMode::RequestResponse, false)),
        "states:::states:startExecution.waitForTaskToken" => {
            Some((NestedMode::RequestResponse, true))
        }
        "states:::states:startExecution.sync" => Some((NestedMode::Sync, false)),
        "states:::states:startExecution.sync:2" => Some((NestedMode::Sync2, false)),
        _ => None,
    }
}

/// The execution that runs a nested task: its ARN and the task's replay key
/// (`TaskCall.key`, stable across replays).
#[derive(Debug, Clone, Copy)]
pub struct Parent<'a> {
    pub arn: &'a str,
    pub key: &'a str,
}

/// The child name used when the task gives none: a name-based UUID of the
/// parent execution ARN and the task key (the same after a replay).
pub fn derived_name(parent: &Parent<'_>) -> String {
    let digest = <md5::Md5 as md5::Digest>::digest(format!("{}\n{}", parent.arn, parent.key));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_md5_bytes(bytes).into_uuid().to_string()
}

fn failure(error: impl Into<String>, cause: impl Into<String>) -> Failure {
    Failure {
        error: error.into(),
        cause: cause.into(),
    }
}

/// The task failure of a refused StartExecution: `StepFunctions.<code>`
/// with an `Exception` suffix, and the AWS SDK's wording as the cause.
pub fn service_failure(e: &AwsError) -> Failure {
    let code = if e.code.is_empty() || e.code.contains('.') {
        "AWSStepFunctionsException".to_string()
    } else if e.code.ends_with("Exception") {
        e.code.clone()
    } else {
        format!("{}Exception", e.code)
    };
    failure(
        format!("StepFunctions.{code}"),
        format!(
            "{} (Service: AWSStepFunctions; Status Code: {}; Error Code: {}; Request ID: {}; Proxy: null)",
            e.message,
            e.status,
            e.code,
            stratus_core::request_id()
        ),
    )
}

/// The execution input a task's `Input` parameter gives: JSON text as is,
/// other JSON serialized, `{}` when absent or null.
fn input_text(input: Option<&Value>) -> String {
    match input {
        None | Some(Value::Null) => "{}".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

fn data_value(text: &str, as_json: bool) -> Value {
    if as_json {
        serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
    } else {
        Value::String(text.to_string())
    }
}

/// A child's DescribeExecution answer as a `.sync` (`as_json` false) or
/// `.sync:2` (`as_json` true) task returns it: capitalized member names,
/// dates in ms since the epoch.
pub(crate) fn describe_for_task(row: &FullRow, as_json: bool) -> Value {
    let mut v = Map::new();
    v.insert("ExecutionArn".into(), Value::from(row.arn.clone()));
    v.insert(
        "StateMachineArn".into(),
        Value::from(row.state_machine_arn.clone()),
    );
    v.insert("Name".into(), Value::from(row.name.clone()));
    v.insert("Status".into(), Value::from(row.status.clone()));
    v.insert("StartDate".into(), Value::from(row.start_ms));
    if let Some(s) = row.stop_ms {
        v.insert("StopDate".into(), Value::from(s));
    }
    v.insert("Input".into(), data_value(&row.input, as_json));
    v.insert("InputDetails".into(), json!({"Included": true}));
    if let Some(o) = &row.output {
        v.insert("Output".into(), data_value(o, as_json));
        v.insert("OutputDetails".into(), json!({"Included": true}));
    }
    if let Some(e) = &row.error {
        v.insert("Error".into(), Value::from(e.clone()));
    }
    if let Some(c) = &row.cause {
        v.insert("Cause".into(), Value::from(c.clone()));
    }
    v.insert("RedriveCount".into(), Value::from(0));
    if let Ok(snapshot) = serde_json::from_str::<Value>(&row.machine) {
        for (from, to) in [
            ("versionArn", "StateMachineVersionArn"),
            ("aliasArn", "StateMachineAliasArn"),
        ] {
            if let Some(a) = snapshot.get(from).and_then(Value::as_str) {
                v.insert(to.into(), Value::from(a));
            }
        }
    }
    Value::Object(v)
}

/// The SDK metadata of a StartExecution answer of `len` bytes.
fn sdk_metadata(len: usize) -> (Value, Value) {
    let request_id = stratus_core::request_id();
    let headers = json!({
        "Content-Length": len.to_string(),
        "Content-Type": "application/x-amz-json-1.0",
        "x-amzn-RequestId": request_id,
    });
    let all: Map<String, Value> = headers
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), Value::Array(vec![v.clone()])))
                .collect()
        })
        .unwrap_or_default();
    (
        json!({"AllHttpHeaders": all, "HttpHeaders": headers, "HttpStatusCode": 200}),
        json!({"RequestId": request_id}),
    )
}

/// Stops the child of a `.sync` task that its parent abandons while the
/// parent keeps running (the task's TimeoutSeconds passed, a Parallel
/// branch beside it failed): the Run a Job pattern stops the job of a task
/// that no longer waits for it. A parent that stops running here (server
/// shutdown, StopExecution) leaves it alone: it is no longer in the
/// service's running table when its engine is dropped.
struct AbandonGuard<'a> {
    states: &'a States,
    parent: Option<String>,
    child: String,
    armed: bool,
}

impl Drop for AbandonGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Some(parent) = &self.parent else { return };
        if !self.states.is_running_here(parent) {
            return;
        }
        let (Some(states), Ok(rt)) = (self.states.arc(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let child = self.child.clone();
        rt.spawn(async move {
            let mut req = Map::new();
            req.insert("executionArn".into(), Value::from(child.clone()));
            if let Err(e) = states.stop_execution(&req).await {
                tracing::warn!(execution = %child, "cannot stop the abandoned child execution: {e}");
            }
        });
    }
}

/// Journal key under which a Standard parent records the child a `.sync`
/// task started.
fn journal_key(key: &str) -> String {
    format!("nested-sync:{key}")
}

impl States {
    /// Runs a `states:startExecution` task with its effective `input`
    /// (the task's Parameters). `parent` is the execution running the task
    /// (absent for TestState). Ok: the result described in the module
    /// documentation; Err: the task failure.
    pub(crate) async fn run_nested(
        &self,
        mode: NestedMode,
        input: &Value,
        parent: Option<Parent<'_>>,
    ) -> Result<Value, Failure> {
        let child = match self.recorded_child(mode, parent.as_ref()) {
            Some(arn) => arn,
            None => {
                let started = self.start_child(mode, input, parent.as_ref()).await?;
                if !mode.waits() {
                    let row = self
                        .load_full_row(&started)
                        .map_err(|e| service_failure(&e))?;
                    let start_ms = row.map(|r| r.start_ms).unwrap_or_default();
                    let body =
                        json!({"executionArn": started, "startDate": start_ms as f64 / 1000.0})
                            .to_string();
                    let (http, sdk) = sdk_metadata(body.len());
                    return Ok(json!({
                        "ExecutionArn": started,
                        "StartDate": start_ms,
                        "SdkHttpMetadata": http,
                        "SdkResponseMetadata": sdk,
                    }));
                }
                started
            }
        };
        let mut guard = AbandonGuard {
            states: self,
            parent: parent.map(|p| p.arn.to_string()),
            child: child.clone(),
            armed: true,
        };
        let row = self.wait_for_end(&child).await;
        guard.armed = false;
        let row = row.map_err(|e| service_failure(&e))?;
        let described = describe_for_task(&row, mode == NestedMode::Sync2);
        if row.status == "SUCCEEDED" {
            Ok(described)
        } else {
            Err(failure("States.TaskFailed", described.to_string()))
        }
    }

    /// The child a `.sync` task of `parent` already started (recorded in
    /// the parent's journal), when the parent replays after a restart.
    fn recorded_child(&self, mode: NestedMode, parent: Option<&Parent<'_>>) -> Option<String> {
        let p = parent?;
        if !mode.waits() {
            return None;
        }
        self.journal_value(p.arn, &journal_key(p.key))
    }

    /// A value of `execution`'s journal.
    fn journal_value(&self, execution: &str, key: &str) -> Option<String> {
        let (arn, key) = (execution.to_string(), key.to_string());
        self.store
            .read(move |c| {
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

    /// Records a value in `execution`'s journal (committed before it
    /// returns; a store failure is logged, the task goes on).
    async fn journal_write(&self, execution: &str, key: String, value: String) {
        let arn = execution.to_string();
        let r = self
            .store
            .write(move |c| {
                c.execute(
                    "INSERT OR REPLACE INTO sfn_journal (execution_arn, key, value) VALUES (?1, ?2, ?3)",
                    params![arn, key, value],
                )
            })
            .await;
        if let Err(e) = r {
            tracing::error!(execution = %execution, "cannot record a nested execution: {e}");
        }
    }

    /// Starts the child execution; returns its ARN. Records it in the
    /// parent's journal (Standard parents) before answering.
    async fn start_child(
        &self,
        mode: NestedMode,
        params: &Value,
        parent: Option<&Parent<'_>>,
    ) -> Result<String, Failure> {
        let mut req = Map::new();
        if let Some(sm) = params.get("StateMachineArn").filter(|v| !v.is_null()) {
            req.insert("stateMachineArn".into(), sm.clone());
        }
        let input = input_text(params.get("Input"));
        req.insert("input".into(), Value::from(input.clone()));
        let standard_parent = parent.filter(|p| p.arn.contains(":execution:"));
        // `replaying`: this task asked for this name before a restart (its
        // start may have happened, and the child may have ended since).
        let (derived, replaying) = match params.get("Name").filter(|v| !v.is_null()) {
            Some(n) => {
                req.insert("name".into(), n.clone());
                let mut replaying = false;
                if let (Some(p), Some(name)) = (standard_parent, n.as_str()) {
                    let key = format!("nested-name:{}", p.key);
                    replaying = self.journal_value(p.arn, &key).as_deref() == Some(name);
                    if !replaying {
                        self.journal_write(p.arn, key, name.to_string()).await;
                    }
                }
                (false, replaying)
            }
            None => match parent {
                Some(p) => {
                    req.insert("name".into(), Value::from(derived_name(p)));
                    (true, false)
                }
                None => (false, false),
            },
        };
        let arn = match self.start_execution(&req).await {
            Ok(answer) => answer
                .get("executionArn")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            Err(e) if e.code == "ExecutionAlreadyExists" && (derived || replaying) => {
                // The child this task started before a restart, already
                // ended: a derived name is this task's alone, and a given
                // one was recorded before the start.
                self.existing_child(&req, &input)
                    .ok_or_else(|| service_failure(&e))?
            }
            Err(e) => return Err(service_failure(&e)),
        };
        if let Some(p) = standard_parent
            && mode.waits()
        {
            self.journal_write(p.arn, journal_key(p.key), arn.clone())
                .await;
        }
        Ok(arn)
    }

    /// The Standard execution a derived child name already names, if it
    /// has the same input.
    fn existing_child(&self, req: &Map<String, Value>, input: &str) -> Option<String> {
        let sm = req.get("stateMachineArn")?.as_str()?;
        let name = req.get("name")?.as_str()?;
        let (m, _, _) = self.load_for_execution(sm).ok()?;
        let arn = crate::names::execution_arn(&m.region, &self.account, &m.name, name);
        let row = self.load_full_row(&arn).ok()??;
        (row.input == input).then_some(arn)
    }

    /// Stops the running children of `parent`: executions whose input names
    /// it in [`STARTED_BY_MEMBER`], and children of its `.sync` tasks.
    /// Each child's own children are stopped in turn.
    pub(crate) async fn stop_children(&self, parent: &str) {
        let p = parent.to_string();
        let children: Vec<String> = self
            .store
            .read(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT arn FROM sfn_executions
                     WHERE status = 'RUNNING' AND json_valid(input)
                       AND json_extract(input, '$.AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID') = ?1
                     UNION
                     SELECT e.arn FROM sfn_journal j JOIN sfn_executions e ON e.arn = j.value
                     WHERE j.execution_arn = ?1 AND j.key LIKE 'nested-sync:%' AND e.status = 'RUNNING'",
                )?;
                let rows = st.query_map(params![p], |r| r.get(0))?;
                rows.collect()
            })
            .unwrap_or_else(|e| {
                tracing::error!(execution = %parent, "cannot list child executions: {e}");
                Vec::new()
            });
        for child in children {
            let mut req = Map::new();
            req.insert("executionArn".into(), Value::from(child.clone()));
            if let Err(e) = Box::pin(self.stop_execution(&req)).await {
                tracing::warn!(execution = %child, "cannot stop the child execution: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{call, service, until};

    #[test]
    fn resources_are_classified() {
        assert_eq!(
            classify("arn:aws:states:::states:startExecution"),
            Some((NestedMode::RequestResponse, false))
        );
        assert_eq!(
            classify("arn:aws:states:::states:startExecution.sync"),
            Some((NestedMode::Sync, false))
        );
        assert_eq!(
            classify("arn:aws:states:::states:startExecution.sync:2"),
            Some((NestedMode::Sync2, false))
        );
        assert_eq!(
            classify("arn:aws:states:::states:startExecution.waitForTaskToken"),
            Some((NestedMode::RequestResponse, true))
        );
        assert_eq!(
            classify("arn:aws-us-gov:states:::states:startExecution.sync"),
            Some((NestedMode::Sync, false))
        );
        assert_eq!(
            classify("arn:aws:states:::states:startExecution.sync.waitForTaskToken"),
            None
        );
        assert_eq!(
            classify("arn:aws:states:::states:startExecution.sync:3"),
            None
        );
        assert_eq!(classify("arn:aws:states:::states:stopExecution"), None);
        // Through the integrations table too; lambda:invoke has no .sync.
        assert!(
            crate::integrations::classify("arn:aws:states:::states:startExecution.sync:2")
                .is_some()
        );
        assert!(crate::integrations::classify("arn:aws:states:::lambda:invoke.sync").is_none());
    }

    #[test]
    fn derived_names_are_stable_valid_names() {
        let p = Parent {
            arn: "arn:aws:states:us-east-1:123456789012:execution:parent:e1",
            key: "Run/Map[3]/Child",
        };
        let a = derived_name(&p);
        assert_eq!(a, derived_name(&p));
        assert!(crate::names::check_name(&a).is_ok(), "{a}");
        assert_eq!(a.len(), 36);
        let q = Parent {
            key: "Run/Map[4]/Child",
            ..p
        };
        assert_ne!(a, derived_name(&q));
    }

    #[test]
    fn service_errors_are_named_with_the_step_functions_prefix() {
        let f = service_failure(&crate::names::err(
            "ExecutionAlreadyExists",
            "Execution Already Exists: 'x'",
        ));
        assert_eq!(f.error, "StepFunctions.ExecutionAlreadyExistsException");
        assert!(f.cause.starts_with(
            "Execution Already Exists: 'x' (Service: AWSStepFunctions; Status Code: 400; Error Code: ExecutionAlreadyExists;"
        ));
        let v = service_failure(&AwsError::validation("bad"));
        assert_eq!(v.error, "StepFunctions.ValidationException");
    }

    async fn machine(states: &States, name: &str, definition: Value) -> String {
        let sm = call(
            states,
            "CreateStateMachine",
            json!({"name": name, "definition": definition.to_string(),
                   "roleArn": "arn:aws:iam::123456789012:role/r"}),
        )
        .await;
        sm["stateMachineArn"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn run(states: &States, sm: &str, input: Value) -> FullRow {
        let ex = call(
            states,
            "StartExecution",
            json!({"stateMachineArn": sm, "input": input.to_string()}),
        )
        .await;
        let arn = ex["executionArn"].as_str().unwrap_or_default().to_string();
        tokio::time::timeout(
            std::time::Duration::from_secs(20),
            states.wait_for_end(&arn),
        )
        .await
        .expect("the execution ends")
        .expect("row")
    }

    fn parent_def(resource: &str, parameters: Value) -> Value {
        json!({"StartAt": "Child", "States": {"Child": {
            "Type": "Task", "Resource": resource, "Parameters": parameters, "End": true}}})
    }

    fn output(row: &FullRow) -> Value {
        serde_json::from_str(row.output.as_deref().unwrap_or("null")).unwrap_or_default()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sync_and_sync2_return_the_child_description() {
        let (_dir, states) = service();
        let child = machine(
            &states,
            "child",
            json!({"StartAt": "P", "States": {"P": {"Type": "Pass",
                "Parameters": {"doubled.$": "States.MathAdd($.n, $.n)"}, "End": true}}}),
        )
        .await;
        for (resource, as_json) in [
            ("arn:aws:states:::states:startExecution.sync", false),
            ("arn:aws:states:::states:startExecution.sync:2", true),
        ] {
            let parent = machine(
                &states,
                &format!("parent-{}", as_json),
                parent_def(
                    resource,
                    json!({"StateMachineArn": child, "Input": {"n.$": "$.n"}, "Name": format!("c-{as_json}")}),
                ),
            )
            .await;
            let row = run(&states, &parent, json!({"n": 21})).await;
            assert_eq!(row.status, "SUCCEEDED", "{row:?}");
            let out = output(&row);
            let child_arn =
                format!("arn:aws:states:us-east-1:123456789012:execution:child:c-{as_json}");
            assert_eq!(out["ExecutionArn"], Value::from(child_arn.clone()));
            assert_eq!(out["StateMachineArn"], Value::from(child.clone()));
            assert_eq!(out["Name"], Value::from(format!("c-{as_json}")));
            assert_eq!(out["Status"], "SUCCEEDED");
            assert_eq!(out["InputDetails"], json!({"Included": true}));
            assert_eq!(out["OutputDetails"], json!({"Included": true}));
            assert!(
                out["StartDate"].is_i64() && out["StopDate"].is_i64(),
                "{out}"
            );
            if as_json {
                assert_eq!(out["Output"], json!({"doubled": 42}));
                assert_eq!(out["Input"], json!({"n": 21}));
            } else {
                assert_eq!(out["Output"], Value::from(r#"{"doubled":42}"#));
                assert_eq!(out["Input"], Value::from(r#"{"n":21}"#));
            }
            let c = states
                .load_full_row(&child_arn)
                .ok()
                .flatten()
                .expect("child");
            assert_eq!(c.status, "SUCCEEDED");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn request_response_returns_the_start_answer() {
        let (_dir, states) = service();
        let child = machine(
            &states,
            "slow",
            json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1, "End": true}}}),
        )
        .await;
        let parent = machine(
            &states,
            "starter",
            parent_def(
                "arn:aws:states:::states:startExecution",
                json!({"StateMachineArn": child, "Input": "{\"raw\": true}"}),
            ),
        )
        .await;
        let row = run(&states, &parent, json!({})).await;
        assert_eq!(row.status, "SUCCEEDED", "{row:?}");
        let out = output(&row);
        let arn = out["ExecutionArn"].as_str().unwrap_or_default().to_string();
        assert!(arn.starts_with("arn:aws:states:us-east-1:123456789012:execution:slow:"));
        assert!(out["StartDate"].is_i64());
        assert_eq!(out["SdkHttpMetadata"]["HttpStatusCode"], 200);
        assert!(out["SdkResponseMetadata"]["RequestId"].is_string());
        // The parent did not wait: its child is still running, its input
        // the JSON text as given.
        let c = states.load_full_row(&arn).ok().flatten().expect("child");
        assert_eq!(c.status, "RUNNING");
        assert_eq!(c.input, "{\"raw\": true}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_child_fails_the_task_with_task_failed() {
        let (_dir, states) = service();
        let child = machine(
            &states,
            "failing",
            json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Boom", "Cause": "it broke"}}}),
        )
        .await;
        let parent = machine(
            &states,
            "catcher",
            json!({"StartAt": "Child", "States": {
                "Child": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2",
                          "Parameters": {"StateMachineArn": child},
                          "Catch": [{"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.err", "Next": "Caught"}],
                          "End": true},
                "Caught": {"Type": "Pass", "End": true}}}),
        )
        .await;
        let row = run(&states, &parent, json!({})).await;
        assert_eq!(row.status, "SUCCEEDED", "{row:?}");
        let out = output(&row);
        assert_eq!(out["err"]["Error"], "States.TaskFailed");
        let cause: Value = serde_json::from_str(out["err"]["Cause"].as_str().unwrap_or("null"))
            .unwrap_or_default();
        assert_eq!(cause["Status"], "FAILED");
        assert_eq!(cause["Error"], "Boom");
        assert_eq!(cause["Cause"], "it broke");
        assert_eq!(cause["Input"], json!({}));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn start_errors_are_step_functions_errors() {
        let (_dir, states) = service();
        let missing = machine(
            &states,
            "no-arn",
            parent_def(
                "arn:aws:states:::states:startExecution.sync",
                json!({"Input": {}}),
            ),
        )
        .await;
        let row = run(&states, &missing, json!({})).await;
        assert_eq!(row.status, "FAILED");
        assert_eq!(
            row.error.as_deref(),
            Some("StepFunctions.ValidationException")
        );
        let unknown = machine(
            &states,
            "unknown",
            parent_def(
                "arn:aws:states:::states:startExecution",
                json!({"StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:nope"}),
            ),
        )
        .await;
        let row = run(&states, &unknown, json!({})).await;
        assert_eq!(row.status, "FAILED");
        assert_eq!(
            row.error.as_deref(),
            Some("StepFunctions.StateMachineDoesNotExistException")
        );
        assert!(
            row.cause
                .unwrap_or_default()
                .contains("Service: AWSStepFunctions")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stopping_the_parent_stops_its_children() {
        let (_dir, states) = service();
        let child = machine(
            &states,
            "long",
            json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": true}}}),
        )
        .await;
        let parent = machine(
            &states,
            "owner",
            json!({"StartAt": "Fire", "States": {
                "Fire": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution",
                         "Parameters": {"StateMachineArn": child, "Name": "linked",
                                        "Input": {"AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$": "$$.Execution.Id"}},
                         "Next": "Wait"},
                "Wait": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync",
                         "Parameters": {"StateMachineArn": child, "Name": "waited"},
                         "End": true}}}),
        )
        .await;
        let ex = call(
            &states,
            "StartExecution",
            json!({"stateMachineArn": parent}),
        )
        .await;
        let parent_arn = ex["executionArn"].as_str().unwrap_or_default().to_string();
        let linked = "arn:aws:states:us-east-1:123456789012:execution:long:linked";
        let waited = "arn:aws:states:us-east-1:123456789012:execution:long:waited";
        until(
            || states.load_full_row(waited).ok().flatten().is_some(),
            5_000,
            "the second child",
        )
        .await;
        call(
            &states,
            "StopExecution",
            json!({"executionArn": parent_arn}),
        )
        .await;
        for arn in [linked, waited] {
            let row = states.load_full_row(arn).ok().flatten().expect("child");
            assert_eq!(row.status, "ABORTED", "{arn}");
        }
        let row = states.load_full_row(linked).ok().flatten().expect("child");
        let input: Value = serde_json::from_str(&row.input).unwrap_or_default();
        assert_eq!(input[STARTED_BY_MEMBER], Value::from(parent_arn));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_timed_out_task_stops_its_child() {
        let (_dir, states) = service();
        let child = machine(
            &states,
            "endless",
            json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": true}}}),
        )
        .await;
        let parent = machine(
            &states,
            "impatient",
            json!({"StartAt": "Child", "States": {"Child": {
                "Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync",
                "Parameters": {"StateMachineArn": child, "Name": "abandoned"},
                "TimeoutSeconds": 1, "End": true}}}),
        )
        .await;
        let row = run(&states, &parent, json!({})).await;
        assert_eq!(row.status, "FAILED");
        assert_eq!(row.error.as_deref(), Some("States.Timeout"));
        let arn = "arn:aws:states:us-east-1:123456789012:execution:endless:abandoned";
        until(
            || {
                states
                    .load_full_row(arn)
                    .ok()
                    .flatten()
                    .is_some_and(|r| r.status == "ABORTED")
            },
            5_000,
            "the abandoned child to be stopped",
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_replayed_parent_waits_for_the_child_it_started() {
        let (_dir, states) = service();
        let child = machine(
            &states,
            "pause",
            json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 2, "Next": "P"},
                                             "P": {"Type": "Pass", "Result": "late", "End": true}}}),
        )
        .await;
        let parent = machine(
            &states,
            "durable",
            parent_def(
                "arn:aws:states:::states:startExecution.sync:2",
                json!({"StateMachineArn": child, "Input": {"k": 1}}),
            ),
        )
        .await;
        let ex = call(
            &states,
            "StartExecution",
            json!({"stateMachineArn": parent}),
        )
        .await;
        let parent_arn = ex["executionArn"].as_str().unwrap_or_default().to_string();
        let children = |states: &States| -> Vec<String> {
            let sm = child.clone();
            states
                .store
                .read(move |c| {
                    let mut st =
                        c.prepare("SELECT arn FROM sfn_executions WHERE state_machine_arn = ?1")?;
                    let rows = st.query_map(params![sm], |r| r.get(0))?;
                    rows.collect()
                })
                .unwrap_or_default()
        };
        until(|| children(&states).len() == 1, 5_000, "the child to start").await;
        // A crash: every engine is gone; the store keeps what was committed.
        states.shutdown();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let kid = children(&states).pop().unwrap_or_default();
        assert_eq!(
            states.load_full_row(&kid).ok().flatten().map(|r| r.status),
            Some("RUNNING".to_string()),
            "a shutdown leaves the child running"
        );
        let tasks = states.spawn();
        let row = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            states.wait_for_end(&parent_arn),
        )
        .await
        .expect("the parent ends")
        .expect("row");
        for t in tasks {
            t.abort();
        }
        assert_eq!(row.status, "SUCCEEDED", "{row:?}");
        assert_eq!(output(&row)["Output"], Value::from("late"));
        assert_eq!(children(&states).len(), 1, "one child execution");
    }

    /// A crash between the child's start and the parent's record of it,
    /// and the child ends before the parent replays: the parent still
    /// finds its child, with a derived name or its own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_child_that_ended_during_the_downtime_is_found() {
        let (_dir, states) = service();
        let child = machine(
            &states,
            "brief",
            json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1, "Next": "P"},
                                             "P": {"Type": "Pass", "Result": "ok", "End": true}}}),
        )
        .await;
        for (i, parameters) in [
            json!({"StateMachineArn": child}),
            json!({"StateMachineArn": child, "Name": "given"}),
        ]
        .into_iter()
        .enumerate()
        {
            let parent = machine(
                &states,
                &format!("crashy-{i}"),
                parent_def("arn:aws:states:::states:startExecution.sync:2", parameters),
            )
            .await;
            let ex = call(
                &states,
                "StartExecution",
                json!({"stateMachineArn": parent}),
            )
            .await;
            let parent_arn = ex["executionArn"].as_str().unwrap_or_default().to_string();
            let recorded = |states: &States| {
                states
                    .load_journal(&parent_arn)
                    .unwrap_or_default()
                    .into_iter()
                    .find(|(k, _)| k.starts_with("nested-sync:"))
            };
            until(
                || recorded(&states).is_some(),
                5_000,
                "the child to be recorded",
            )
            .await;
            let (key, kid) = recorded(&states).unwrap_or_default();
            states.shutdown();
            // The record of the start is lost; the child runs to its end.
            let arn = parent_arn.clone();
            states
                .store
                .write(move |c| {
                    c.execute(
                        "DELETE FROM sfn_journal WHERE execution_arn = ?1 AND key = ?2",
                        params![arn, key],
                    )
                })
                .await
                .expect("delete");
            states.resume(&kid);
            let row = states.wait_for_end(&kid).await.expect("child");
            assert_eq!(row.status, "SUCCEEDED");
            states.resume(&parent_arn);
            let row = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                states.wait_for_end(&parent_arn),
            )
            .await
            .expect("the parent ends")
            .expect("row");
            assert_eq!(row.status, "SUCCEEDED", "{row:?}");
            assert_eq!(output(&row)["ExecutionArn"], Value::from(kid));
        }
    }
}
