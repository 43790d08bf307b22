//! AWS Step Functions: state machines, executions and their history, on top
//! of the Amazon States Language engine (`stratus-asl`).
//!
//! Wire protocol: json 1.0, `X-Amz-Target: AWSStepFunctions.<Operation>`,
//! shapes and error codes from the botocore model `stepfunctions/2016-11-23`
//! (every error is HTTP 400). Timestamps are epoch seconds, as the json
//! protocol encodes them.
//!
//! * [`machines`]: CreateStateMachine, DescribeStateMachine,
//!   UpdateStateMachine, DeleteStateMachine, ListStateMachines,
//!   ValidateStateMachineDefinition, tags, versions.
//! * [`aliases`]: state machine aliases and their routing to versions.
//! * [`executions`]: StartExecution, StartSyncExecution, DescribeExecution,
//!   DescribeStateMachineForExecution, ListExecutions, StopExecution,
//!   GetExecutionHistory, SendTaskSuccess/Failure/Heartbeat, TestState.
//! * `map_runs`: Distributed Map child executions and the Map Run APIs
//!   (DescribeMapRun, ListMapRuns, UpdateMapRun).
//! * [`redrive`]: RedriveExecution and the redrive members of
//!   DescribeExecution / ListExecutions.
//! * [`runner`]: the engine's host. Standard executions write every history
//!   event, task result, timer and random value to the store before the
//!   step that depends on them becomes visible, and are resumed after a
//!   restart by replaying the engine against that journal.
//! * [`integrations`]: the Task resources stratus runs (Lambda, SQS, SNS,
//!   EventBridge).
//! * [`nested`]: `states:startExecution` tasks (nested executions).
//! * [`activities`]: CreateActivity, DescribeActivity, ListActivities,
//!   DeleteActivity, GetActivityTask, and Task states on activity ARNs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use serde_json::{Map, Value};
use stratus_core::{AwsError, AwsResult, Config, Targets};
use stratus_lambda::Lambda;
use stratus_store::Store;

pub mod activities;
pub mod aliases;
pub mod executions;
pub mod integrations;
mod item_io;
mod lifecycle;
pub mod machines;
mod map_runs;
pub mod names;
pub mod nested;
pub mod redrive;
pub mod runner;
pub mod upstream_tasks;

use names::err;

/// `X-Amz-Target` prefix of the json protocol.
pub const TARGET_PREFIX: &str = "AWSStepFunctions";

/// Tables of executions, their history and their replay journal.
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS sfn_executions (
    arn               TEXT PRIMARY KEY,
    region            TEXT NOT NULL,
    state_machine_arn TEXT NOT NULL,
    name              TEXT NOT NULL,
    type              TEXT NOT NULL,
    status            TEXT NOT NULL,
    start_ms          INTEGER NOT NULL,
    stop_ms           INTEGER,
    wake_ms           INTEGER,
    input             TEXT NOT NULL,
    output            TEXT,
    error             TEXT,
    cause             TEXT,
    machine           TEXT NOT NULL,
    trace_header      TEXT
);
CREATE INDEX IF NOT EXISTS sfn_executions_machine ON sfn_executions (state_machine_arn, start_ms);
CREATE INDEX IF NOT EXISTS sfn_executions_status ON sfn_executions (status, wake_ms);
CREATE TABLE IF NOT EXISTS sfn_history (
    execution_arn TEXT NOT NULL,
    id            INTEGER NOT NULL,
    type          TEXT NOT NULL,
    previous_id   INTEGER NOT NULL,
    timestamp_ms  INTEGER NOT NULL,
    details       TEXT NOT NULL,
    PRIMARY KEY (execution_arn, id)
);
CREATE TABLE IF NOT EXISTS sfn_journal (
    execution_arn TEXT NOT NULL,
    key           TEXT NOT NULL,
    value         TEXT NOT NULL,
    PRIMARY KEY (execution_arn, key)
);
"#;

/// The Step Functions service.
pub struct States {
    pub(crate) store: Store,
    pub(crate) account: String,
    pub(crate) lambda: Arc<Lambda>,
    pub(crate) targets: Targets,
    /// Executions whose engine runs in this process, by execution ARN.
    pub(crate) running: Mutex<HashMap<String, runner::RunningHandle>>,
    /// Tasks waiting for SendTaskSuccess / SendTaskFailure, by task token.
    pub(crate) waiters: Mutex<HashMap<String, Arc<runner::TokenWaiter>>>,
    /// Waiters for the end of an execution, by execution ARN
    /// ([`States::wait_for_end`]).
    pub(crate) ended: Mutex<HashMap<String, Arc<tokio::sync::Notify>>>,
    /// Distributed Map runs going on in this process, by Map Run ARN.
    pub(crate) map_runs: map_runs::LiveMapRuns,
    pub(crate) me: Weak<States>,
    /// Where AWS SDK integrations and S3 item readers / result writers go
    /// (`--upstream-endpoint`).
    pub(crate) upstream: stratus_upstream::Upstream,
    /// Activity tasks waiting for a worker (GetActivityTask).
    pub(crate) activity_queues: activities::ActivityQueues,
}

impl States {
    /// Opens the service's tables in `store`. `targets` is where SQS, SNS
    /// and EventBridge task integrations deliver; `lambda` runs Lambda tasks.
    ///
    /// Errors: the tables cannot be created.
    pub fn new(
        store: Store,
        config: &Config,
        targets: Targets,
        lambda: Arc<Lambda>,
    ) -> Result<Arc<States>, String> {
        store
            .migrate(SCHEMA)
            .map_err(|e| format!("cannot create the Step Functions tables: {e}"))?;
        store
            .migrate(map_runs::SCHEMA)
            .map_err(|e| format!("cannot create the Map Run tables: {e}"))?;
        store
            .migrate(redrive::SCHEMA)
            .map_err(|e| format!("cannot create the Step Functions redrive table: {e}"))?;
        let upstream = stratus_upstream::Upstream::new(
            stratus_upstream::UpstreamConfig::parse(&config.upstream_endpoints)?
                .with_ca_bundle(config.ca_bundle.clone()),
        );
        Ok(Arc::new_cyclic(|me| States {
            upstream,
            store,
            account: config.account_id.clone(),
            lambda,
            targets,
            running: Mutex::new(HashMap::new()),
            waiters: Mutex::new(HashMap::new()),
            ended: Mutex::new(HashMap::new()),
            activity_queues: activities::ActivityQueues::default(),
            map_runs: Mutex::new(HashMap::new()),
            me: me.clone(),
        }))
    }

    pub(crate) fn arc(&self) -> Option<Arc<States>> {
        self.me.upgrade()
    }

    /// Answers one json-protocol operation (`op` without the target prefix)
    /// for `region` with the request `body`.
    ///
    /// Errors: the operation's modelled errors (all HTTP 400);
    /// `UnknownOperationException` for operations stratus does not serve;
    /// `SerializationException` for a body that is not a JSON object.
    pub async fn call(&self, region: &str, op: &str, body: Bytes) -> AwsResult<Value> {
        let req = parse_request(&body)?;
        match op {
            "CreateStateMachine" => self.create_state_machine(region, &req).await,
            "DescribeStateMachine" => self.describe_state_machine(&req),
            "UpdateStateMachine" => self.update_state_machine(&req).await,
            "DeleteStateMachine" => self.delete_state_machine(&req).await,
            "ListStateMachines" => self.list_state_machines(region, &req),
            "ValidateStateMachineDefinition" => self.validate_definition(&req),
            "TagResource" if activities::tags_an_activity(&req) => self.tag_activity(&req).await,
            "UntagResource" if activities::tags_an_activity(&req) => {
                self.untag_activity(&req).await
            }
            "ListTagsForResource" if activities::tags_an_activity(&req) => {
                self.list_activity_tags(&req)
            }
            "TagResource" => self.tag_resource(&req).await,
            "UntagResource" => self.untag_resource(&req).await,
            "ListTagsForResource" => self.list_tags(&req),
            "CreateActivity" => self.create_activity(region, &req).await,
            "DescribeActivity" => self.describe_activity(&req),
            "ListActivities" => self.list_activities(region, &req),
            "DeleteActivity" => self.delete_activity(&req).await,
            "GetActivityTask" => self.get_activity_task(&req).await,
            "PublishStateMachineVersion" => self.publish_version(&req).await,
            "ListStateMachineVersions" => self.list_versions(&req),
            "DeleteStateMachineVersion" => self.delete_version(&req).await,
            "CreateStateMachineAlias" => self.create_alias(&req).await,
            "DescribeStateMachineAlias" => self.describe_alias(&req),
            "UpdateStateMachineAlias" => self.update_alias(&req).await,
            "DeleteStateMachineAlias" => self.delete_alias(&req).await,
            "ListStateMachineAliases" => self.list_aliases(&req),
            "StartExecution" => self.start_execution(&req).await,
            "StartSyncExecution" => self.start_sync_execution(&req).await,
            "DescribeExecution" => self.describe_execution(&req),
            "DescribeStateMachineForExecution" => self.describe_machine_for_execution(&req),
            "ListExecutions" => self.list_executions(&req),
            "StopExecution" => self.stop_execution(&req).await,
            "RedriveExecution" => self.redrive_execution(&req).await,
            "GetExecutionHistory" => self.get_execution_history(&req),
            "SendTaskSuccess" => self.send_task_success(&req).await,
            "SendTaskFailure" => self.send_task_failure(&req).await,
            "SendTaskHeartbeat" => self.send_task_heartbeat(&req).await,
            "TestState" => self.test_state(region, &req).await,
            "DescribeMapRun" => self.describe_map_run(&req),
            "ListMapRuns" => self.list_map_runs(&req),
            "UpdateMapRun" => self.update_map_run(&req).await,
            _ => Err(AwsError::new(
                400,
                "UnknownOperationException",
                format!("stratus does not serve the Step Functions operation {op}."),
            )),
        }
    }

    /// Starts background work: resumes the Standard executions that were
    /// running when the server stopped (replaying their journal), and the
    /// timer loop that wakes executions parked in long Wait states.
    pub fn spawn(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        vec![runner::spawn_recovery(self.clone())]
    }

    /// Stops every execution engine running in this process (their state is
    /// in the store; they resume on the next start), and ends the open
    /// GetActivityTask polls (they answer without a task).
    pub fn shutdown(&self) {
        self.activity_queues.close();
        let handles: Vec<runner::RunningHandle> = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, h)| h)
            .collect();
        for h in handles {
            h.task.abort();
        }
    }
}

impl stratus_core::Target for States {
    /// Starts an execution of the state machine `arn` with the delivery's
    /// body as input (EventBridge rule targets, Lambda destinations).
    /// Returns the execution ARN.
    fn deliver<'a>(
        &'a self,
        arn: &'a str,
        delivery: stratus_core::Delivery,
    ) -> stratus_core::targets::BoxFuture<'a, AwsResult<String>> {
        Box::pin(async move {
            let mut req = Map::new();
            req.insert("stateMachineArn".into(), Value::from(arn));
            req.insert("input".into(), Value::from(delivery.body));
            let out = self.start_execution(&req).await?;
            Ok(out["executionArn"].as_str().unwrap_or_default().to_string())
        })
    }
}

// --------------------------------------------------------------------------
// request helpers
// --------------------------------------------------------------------------

/// A request body as a JSON object (`{}` when empty).
pub(crate) fn parse_request(body: &[u8]) -> AwsResult<Map<String, Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(AwsError::new(
            400,
            "SerializationException",
            "The request body is not a JSON object.",
        )),
    }
}

fn type_error(field: &str, want: &str) -> AwsError {
    AwsError::new(
        400,
        "SerializationException",
        format!("The field '{field}' must be {want}."),
    )
}

/// An optional string member.
pub(crate) fn opt_str<'a>(req: &'a Map<String, Value>, field: &str) -> AwsResult<Option<&'a str>> {
    match req.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(type_error(field, "a string")),
    }
}

/// A required string member.
///
/// Errors: `ValidationException` (`Member must not be null`).
pub(crate) fn req_str<'a>(req: &'a Map<String, Value>, field: &str) -> AwsResult<&'a str> {
    opt_str(req, field)?.ok_or_else(|| {
        AwsError::validation_errors(&[format!(
            "Value null at '{field}' failed to satisfy constraint: Member must not be null"
        )])
    })
}

/// An optional boolean member.
pub(crate) fn opt_bool(req: &Map<String, Value>, field: &str) -> AwsResult<Option<bool>> {
    match req.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(type_error(field, "a boolean")),
    }
}

/// An optional integer member within `min..=max`.
pub(crate) fn opt_int(
    req: &Map<String, Value>,
    field: &str,
    min: i64,
    max: i64,
) -> AwsResult<Option<i64>> {
    match req.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let n = v.as_i64().ok_or_else(|| type_error(field, "an integer"))?;
            if n < min {
                return Err(names::validation(
                    &n.to_string(),
                    field,
                    &format!("Member must have value greater than or equal to {min}"),
                ));
            }
            if n > max {
                return Err(names::validation(
                    &n.to_string(),
                    field,
                    &format!("Member must have value less than or equal to {max}"),
                ));
            }
            Ok(Some(n))
        }
    }
}

/// A timestamp as the json protocol encodes it: epoch seconds.
pub(crate) fn epoch(ms: i64) -> Value {
    Value::from(ms as f64 / 1000.0)
}

/// Decodes a `nextToken` made by [`page_token`].
///
/// Errors: `InvalidToken`.
pub(crate) fn parse_page_token(token: Option<&str>) -> AwsResult<usize> {
    match token {
        None => Ok(0),
        Some(t) => t
            .strip_prefix("stratus-page-")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| err("InvalidToken", format!("Invalid Token: '{t}'"))),
    }
}

/// The `nextToken` of the page starting at `offset`.
pub(crate) fn page_token(offset: usize) -> String {
    format!("stratus-page-{offset}")
}

/// A page size: `maxResults` (0 or absent = the default page of 100).
pub(crate) fn page_size(req: &Map<String, Value>) -> AwsResult<usize> {
    Ok(match opt_int(req, "maxResults", 0, 1000)? {
        None | Some(0) => 100,
        Some(n) => n as usize,
    })
}

/// Helpers for the unit tests: a service on a temporary store.
#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::Value;
    use stratus_core::{Config, Targets};

    use crate::States;

    /// A service on a fresh store, delivering to `targets`.
    pub(crate) fn service_with(targets: Targets) -> (tempfile::TempDir, Arc<States>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = stratus_store::Store::open(dir.path()).expect("store");
        let config = Config::with_data_dir(dir.path().to_path_buf());
        let lambda = stratus_lambda::Lambda::new(config.clone(), store.clone()).expect("lambda");
        let states = States::new(store, &config, targets, lambda).expect("states");
        (dir, states)
    }

    /// A service on a fresh store without delivery targets.
    pub(crate) fn service() -> (tempfile::TempDir, Arc<States>) {
        service_with(Targets::new())
    }

    /// Calls an operation; panics on an error.
    pub(crate) async fn call(states: &States, op: &str, body: Value) -> Value {
        states
            .call("us-east-1", op, bytes::Bytes::from(body.to_string()))
            .await
            .unwrap_or_else(|e| panic!("{op}: {e}"))
    }

    /// Waits up to `ms` for `f`.
    pub(crate) async fn until<F: Fn() -> bool>(f: F, ms: u64, what: &str) {
        let deadline = std::time::Instant::now() + Duration::from_millis(ms);
        while !f() {
            assert!(std::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_members_are_typed() {
        let m = parse_request(br#"{"a":"x","b":true,"n":5}"#).unwrap();
        assert_eq!(opt_str(&m, "a").unwrap(), Some("x"));
        assert_eq!(opt_str(&m, "zz").unwrap(), None);
        assert!(opt_str(&m, "b").is_err());
        assert_eq!(req_str(&m, "zz").unwrap_err().code, "ValidationException");
        assert_eq!(opt_bool(&m, "b").unwrap(), Some(true));
        assert_eq!(opt_int(&m, "n", 0, 10).unwrap(), Some(5));
        assert_eq!(
            opt_int(&m, "n", 0, 4).unwrap_err().code,
            "ValidationException"
        );
        assert!(parse_request(b"[1]").is_err());
        assert!(parse_request(b"").unwrap().is_empty());
    }

    #[test]
    fn page_tokens_round_trip() {
        assert_eq!(parse_page_token(Some(&page_token(42))).unwrap(), 42);
        assert_eq!(parse_page_token(None).unwrap(), 0);
        assert_eq!(
            parse_page_token(Some("junk")).unwrap_err().code,
            "InvalidToken"
        );
    }
}
