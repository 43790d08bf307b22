//! Executions: StartExecution, StartSyncExecution, DescribeExecution,
//! DescribeStateMachineForExecution, ListExecutions, StopExecution,
//! GetExecutionHistory, and the callbacks of `.waitForTaskToken` tasks
//! (SendTaskSuccess, SendTaskFailure, SendTaskHeartbeat), as the botocore
//! model `stepfunctions/2016-11-23` and the Step Functions API reference
//! define them.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use stratus_asl::StateMachine;
use stratus_core::{AwsError, AwsResult};
use stratus_store::rusqlite::{self, OptionalExtension, params};

use crate::names::{self, err};
use crate::runner::{EventRow, ExecHost, ExecRow, MachineSnapshot};
use crate::{States, epoch, opt_bool, opt_str, page_size, page_token, parse_page_token, req_str};

/// The largest execution input or output: 262,144 characters (model shape
/// `SensitiveData`).
pub const MAX_DATA: usize = 262_144;

/// The longest an Express execution runs: 5 minutes (AWS's quota).
pub const EXPRESS_MAX_MS: u64 = 5 * 60 * 1000;

/// The HistoryEvent members that carry event details (model shape
/// `HistoryEvent`); an event's details go in `<type>EventDetails`, except
/// `*StateEntered` / `*StateExited` (`stateEnteredEventDetails`,
/// `stateExitedEventDetails`).
const DETAIL_MEMBERS: &[&str] = &[
    "activityFailedEventDetails",
    "activityScheduleFailedEventDetails",
    "activityScheduledEventDetails",
    "activityStartedEventDetails",
    "activitySucceededEventDetails",
    "activityTimedOutEventDetails",
    "taskFailedEventDetails",
    "taskScheduledEventDetails",
    "taskStartFailedEventDetails",
    "taskStartedEventDetails",
    "taskSubmitFailedEventDetails",
    "taskSubmittedEventDetails",
    "taskSucceededEventDetails",
    "taskTimedOutEventDetails",
    "executionFailedEventDetails",
    "executionStartedEventDetails",
    "executionSucceededEventDetails",
    "executionAbortedEventDetails",
    "executionTimedOutEventDetails",
    "executionRedrivenEventDetails",
    "mapStateStartedEventDetails",
    "mapIterationStartedEventDetails",
    "mapIterationSucceededEventDetails",
    "mapIterationFailedEventDetails",
    "mapIterationAbortedEventDetails",
    "lambdaFunctionFailedEventDetails",
    "lambdaFunctionScheduleFailedEventDetails",
    "lambdaFunctionScheduledEventDetails",
    "lambdaFunctionStartFailedEventDetails",
    "lambdaFunctionSucceededEventDetails",
    "lambdaFunctionTimedOutEventDetails",
    "mapRunStartedEventDetails",
    "mapRunFailedEventDetails",
    "mapRunRedrivenEventDetails",
    "evaluationFailedEventDetails",
];

/// The HistoryEvent member holding the details of an event type, if the
/// model has one.
pub fn details_member(event_type: &str) -> Option<String> {
    if event_type.ends_with("StateEntered") {
        return Some("stateEnteredEventDetails".into());
    }
    if event_type.ends_with("StateExited") {
        return Some("stateExitedEventDetails".into());
    }
    let mut c = event_type.chars();
    let first = c.next()?.to_ascii_lowercase();
    let member = format!("{first}{}EventDetails", c.as_str());
    DETAIL_MEMBERS.contains(&member.as_str()).then_some(member)
}

/// One event as GetExecutionHistory returns it.
pub fn event_json(e: &EventRow, include_data: bool) -> Value {
    let mut v = json!({
        "timestamp": epoch(e.timestamp_ms),
        "type": e.event_type,
        "id": e.id,
        "previousEventId": e.previous_id,
    });
    if let (Some(member), Value::Object(d)) = (details_member(&e.event_type), &e.details)
        && !d.is_empty()
    {
        let mut d = d.clone();
        if !include_data {
            d.remove("input");
            d.remove("output");
        }
        v[member] = Value::Object(d);
    }
    v
}

fn row_from_sql(r: &rusqlite::Row<'_>) -> rusqlite::Result<FullRow> {
    Ok(FullRow {
        arn: r.get(0)?,
        region: r.get(1)?,
        state_machine_arn: r.get(2)?,
        name: r.get(3)?,
        machine_type: r.get(4)?,
        status: r.get(5)?,
        start_ms: r.get(6)?,
        stop_ms: r.get(7)?,
        input: r.get(8)?,
        output: r.get(9)?,
        error: r.get(10)?,
        cause: r.get(11)?,
        machine: r.get(12)?,
        trace_header: r.get(13)?,
    })
}

const ROW_COLUMNS: &str = "arn, region, state_machine_arn, name, type, status, start_ms, stop_ms, input, output, error, cause, machine, trace_header";

/// An execution row with everything DescribeExecution shows.
#[derive(Debug, Clone)]
pub(crate) struct FullRow {
    pub arn: String,
    pub region: String,
    pub state_machine_arn: String,
    pub name: String,
    pub machine_type: String,
    pub status: String,
    pub start_ms: i64,
    pub stop_ms: Option<i64>,
    pub input: String,
    pub output: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub machine: String,
    pub trace_header: Option<String>,
}

impl FullRow {
    fn snapshot(&self) -> AwsResult<MachineSnapshot> {
        serde_json::from_str(&self.machine).map_err(|e| {
            AwsError::service(format!("stored execution {} is unreadable: {e}", self.arn))
        })
    }

    fn describe(&self, include_data: bool) -> Value {
        let mut v = json!({
            "executionArn": self.arn,
            "stateMachineArn": self.state_machine_arn,
            "name": self.name,
            "status": self.status,
            "startDate": epoch(self.start_ms),
            "redriveCount": 0,
        });
        if let Some(s) = self.stop_ms {
            v["stopDate"] = epoch(s);
        }
        if include_data {
            v["input"] = Value::from(self.input.clone());
            v["inputDetails"] = json!({"included": true});
            if let Some(o) = &self.output {
                v["output"] = Value::from(o.clone());
                v["outputDetails"] = json!({"included": true});
            }
        } else {
            v["inputDetails"] = json!({"included": false});
        }
        if let Some(e) = &self.error {
            v["error"] = Value::from(e.clone());
        }
        if let Some(c) = &self.cause {
            v["cause"] = Value::from(c.clone());
        }
        if let Some(t) = &self.trace_header {
            v["traceHeader"] = Value::from(t.clone());
        }
        if let Ok(s) = self.snapshot() {
            if let Some(va) = s.version_arn {
                v["stateMachineVersionArn"] = Value::from(va);
            }
            if let Some(aa) = s.alias_arn {
                v["stateMachineAliasArn"] = Value::from(aa);
            }
        }
        v
    }
}

fn included_data(req: &Map<String, Value>) -> AwsResult<bool> {
    match opt_str(req, "includedData")? {
        None | Some("ALL_DATA") => Ok(true),
        Some("METADATA_ONLY") => Ok(false),
        Some(o) => Err(names::validation(
            o,
            "includedData",
            "Member must satisfy enum value set: [ALL_DATA, METADATA_ONLY]",
        )),
    }
}

/// Checks an execution input: JSON text of at most 262,144 characters.
///
/// Errors: `InvalidExecutionInput`, `ValidationException` (length).
fn check_input(input: Option<&str>) -> AwsResult<(String, Value)> {
    let text = input.unwrap_or("{}");
    names::check_payload_bytes(text, "input", MAX_DATA)?;
    let text = if text.trim().is_empty() { "{}" } else { text };
    let value: Value = serde_json::from_str(text).map_err(|e| {
        err(
            "InvalidExecutionInput",
            format!("Invalid State Machine Execution Input: '{e}'"),
        )
    })?;
    Ok((text.to_string(), value))
}

fn parse_machine(definition: &str) -> AwsResult<Arc<StateMachine>> {
    StateMachine::parse(definition)
        .map(Arc::new)
        .map_err(|diags| {
            let msg: Vec<String> = diags
                .iter()
                .map(|d| format!("{}: {}", d.code, d.message))
                .collect();
            err(
                "InvalidDefinition",
                format!("Invalid State Machine Definition: '{}'", msg.join(", ")),
            )
        })
}

impl States {
    pub(crate) fn load_full_row(&self, arn: &str) -> AwsResult<Option<FullRow>> {
        let arn = arn.to_string();
        Ok(self.store.read(move |c| {
            c.query_row(
                &format!("SELECT {ROW_COLUMNS} FROM sfn_executions WHERE arn = ?1"),
                params![arn],
                row_from_sql,
            )
            .optional()
        })?)
    }

    /// The execution of an `executionArn`.
    ///
    /// Errors: `InvalidArn`; `ExecutionDoesNotExist`.
    fn execution(&self, arn: &str) -> AwsResult<FullRow> {
        names::check_execution_arn(arn)?;
        self.load_full_row(arn)?.ok_or_else(|| {
            err(
                "ExecutionDoesNotExist",
                format!("Execution Does Not Exist: '{arn}'"),
            )
        })
    }

    pub(crate) fn load_exec_row(&self, arn: &str) -> stratus_store::StoreResult<Option<ExecRow>> {
        let arn_s = arn.to_string();
        let row = self.store.read(move |c| {
            c.query_row(
                &format!(
                    "SELECT {ROW_COLUMNS} FROM sfn_executions WHERE arn = ?1 AND status = 'RUNNING'"
                ),
                params![arn_s],
                row_from_sql,
            )
            .optional()
        })?;
        let Some(row) = row else { return Ok(None) };
        let machine: MachineSnapshot = serde_json::from_str(&row.machine)
            .map_err(|e| stratus_store::StoreError(format!("execution {arn}: {e}")))?;
        Ok(Some(ExecRow {
            arn: row.arn,
            region: row.region,
            name: row.name,
            machine_type: row.machine_type,
            start_ms: row.start_ms,
            input: row.input,
            machine,
        }))
    }

    pub(crate) fn load_events(&self, arn: &str) -> stratus_store::StoreResult<Vec<EventRow>> {
        let arn = arn.to_string();
        self.store.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT id, type, previous_id, timestamp_ms, details FROM sfn_history
                 WHERE execution_arn = ?1 ORDER BY id",
            )?;
            let rows = st.query_map(params![arn], |r| {
                let details: String = r.get(4)?;
                Ok(EventRow {
                    id: r.get::<_, i64>(0)? as u64,
                    event_type: r.get(1)?,
                    previous_id: r.get::<_, i64>(2)? as u64,
                    timestamp_ms: r.get(3)?,
                    details: serde_json::from_str(&details).unwrap_or(Value::Null),
                })
            })?;
            rows.collect()
        })
    }

    pub(crate) fn load_journal(
        &self,
        arn: &str,
    ) -> stratus_store::StoreResult<HashMap<String, String>> {
        let arn = arn.to_string();
        self.store.read(move |c| {
            let mut st =
                c.prepare_cached("SELECT key, value FROM sfn_journal WHERE execution_arn = ?1")?;
            let rows = st.query_map(params![arn], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    /// RUNNING executions: (ARN, wake-up time if parked).
    pub(crate) fn running_rows(&self) -> stratus_store::StoreResult<Vec<(String, Option<i64>)>> {
        self.store.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT arn, wake_ms FROM sfn_executions WHERE status = 'RUNNING' ORDER BY start_ms",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    /// Parked executions whose timer is due at `now` and that do not run here.
    pub(crate) fn due_rows(&self, now: i64) -> stratus_store::StoreResult<Vec<String>> {
        let arns: Vec<String> = self.store.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT arn FROM sfn_executions WHERE status = 'RUNNING' AND wake_ms IS NOT NULL AND wake_ms <= ?1",
            )?;
            let rows = st.query_map(params![now], |r| r.get(0))?;
            rows.collect()
        })?;
        Ok(arns
            .into_iter()
            .filter(|a| !self.is_running_here(a))
            .collect())
    }

    /// StartExecution. Standard executions: the execution and its
    /// ExecutionStarted event are committed before the answer. Calling it
    /// again with the name and input of a running execution returns that
    /// execution (AWS's idempotency); otherwise a name in use is
    /// `ExecutionAlreadyExists`. Express executions run asynchronously and
    /// their outcome is stored for DescribeExecution.
    ///
    /// Errors: `InvalidArn`, `StateMachineDoesNotExist`, `InvalidName`,
    /// `InvalidExecutionInput`, `ExecutionAlreadyExists`,
    /// `ValidationException`.
    pub(crate) async fn start_execution(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let sm_arn = req_str(req, "stateMachineArn")?;
        let (m, version, alias_arn) = self.load_for_execution(sm_arn)?;
        let version_arn = version.as_ref().map(|v| m.version_arn(v.version));
        let m = match &version {
            Some(v) => m.at_version(v),
            None => m,
        };
        let name = match opt_str(req, "name")? {
            Some(n) => {
                names::check_name(n)?;
                n.to_string()
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        let (input_text, _) = check_input(opt_str(req, "input")?)?;
        let trace = opt_str(req, "traceHeader")?.map(str::to_string);
        if let Some(t) = &trace {
            names::check_len(t, "traceHeader", 0, 256)?;
        }
        let machine = parse_machine(&m.definition)?;
        let standard = m.machine_type == "STANDARD";
        let arn = if standard {
            names::execution_arn(&m.region, &self.account, &m.name, &name)
        } else {
            names::express_execution_arn(&m.region, &self.account, &m.name, &name)
        };
        let snapshot = MachineSnapshot {
            state_machine_arn: m.state_machine_arn.clone(),
            name: m.name.clone(),
            definition: m.definition.clone(),
            role_arn: m.role_arn.clone(),
            machine_type: m.machine_type.clone(),
            update_ms: m.update_ms,
            revision_id: m.revision_id.clone(),
            logging_configuration: m.logging_configuration.clone(),
            tracing_configuration: m.tracing_configuration.clone(),
            version_arn: version_arn.clone(),
            alias_arn: alias_arn.clone(),
        };
        let snapshot_text =
            serde_json::to_string(&snapshot).map_err(|e| AwsError::service(e.to_string()))?;
        let start_ms = stratus_core::time::now_ms();
        let mut started = json!({
            "input": input_text,
            "inputDetails": {"truncated": false},
            "roleArn": m.role_arn,
        });
        if let Some(v) = &version_arn {
            started["stateMachineVersionArn"] = Value::from(v.clone());
        }
        if let Some(a) = &alias_arn {
            started["stateMachineAliasArn"] = Value::from(a.clone());
        }
        let started = started.to_string();
        let inserted = {
            let (arn, region, sm, name, typ, input, trace) = (
                arn.clone(),
                m.region.clone(),
                m.state_machine_arn.clone(),
                name.clone(),
                m.machine_type.clone(),
                input_text.clone(),
                trace.clone(),
            );
            stratus_cloudwatch::states::ensure_schema(&self.store)?;
            self.store
                .write(move |c| {
                    let n = c.execute(
                        "INSERT OR IGNORE INTO sfn_executions
                         (arn, region, state_machine_arn, name, type, status, start_ms, input, machine, trace_header)
                         VALUES (?1, ?2, ?3, ?4, ?5, 'RUNNING', ?6, ?7, ?8, ?9)",
                        params![arn, region, sm, name, typ, start_ms, input, snapshot_text, trace],
                    )?;
                    if n == 1 && typ == "STANDARD" {
                        c.execute(
                            "INSERT INTO sfn_history (execution_arn, id, type, previous_id, timestamp_ms, details)
                             VALUES (?1, 1, 'ExecutionStarted', 0, ?2, ?3)",
                            params![arn, start_ms, started],
                        )?;
                    }
                    if n == 1 {
                        // CloudWatch's ExecutionsStarted, with the execution.
                        stratus_cloudwatch::states::count_started(c, &region, &sm, start_ms)?;
                    }
                    Ok(n == 1)
                })
                .await?
        };
        if !inserted {
            let existing = self.load_full_row(&arn)?;
            return match existing {
                Some(e) if e.status == "RUNNING" && e.input == input_text => Ok(json!({
                    "executionArn": e.arn,
                    "startDate": epoch(e.start_ms),
                })),
                _ => Err(err(
                    "ExecutionAlreadyExists",
                    format!("Execution Already Exists: '{arn}'"),
                )),
            };
        }
        let row = ExecRow {
            arn: arn.clone(),
            region: m.region.clone(),
            name,
            machine_type: m.machine_type.clone(),
            start_ms,
            input: input_text,
            machine: snapshot,
        };
        let me = self
            .arc()
            .ok_or_else(|| AwsError::service("the Step Functions service is shutting down"))?;
        // Event 1 is ExecutionStarted (stored for Standard executions,
        // logged for both).
        me.launch(&row, machine, None, 2);
        Ok(json!({"executionArn": arn, "startDate": epoch(start_ms)}))
    }

    /// StartSyncExecution: runs an Express execution to its end (at most 5
    /// minutes, then TIMED_OUT) and answers with its outcome and
    /// `billingDetails` (memory billed in 64 MB steps, duration rounded up
    /// to 100 ms, as AWS bills Express workflows).
    ///
    /// Errors: `InvalidArn`, `StateMachineDoesNotExist`,
    /// `StateMachineTypeNotSupported` (a STANDARD state machine),
    /// `InvalidName`, `InvalidExecutionInput`.
    pub(crate) async fn start_sync_execution(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let sm_arn = req_str(req, "stateMachineArn")?;
        let (m, version, _) = self.load_for_execution(sm_arn)?;
        let m = match &version {
            Some(v) => m.at_version(v),
            None => m,
        };
        if m.machine_type != "EXPRESS" {
            return Err(err(
                "StateMachineTypeNotSupported",
                "This operation is not supported by this type of state machine: StartSyncExecution runs EXPRESS state machines only.",
            ));
        }
        let name = match opt_str(req, "name")? {
            Some(n) => {
                names::check_name(n)?;
                n.to_string()
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        let (input_text, input) = check_input(opt_str(req, "input")?)?;
        let include = included_data(req)?;
        let trace = opt_str(req, "traceHeader")?.map(str::to_string);
        let machine = parse_machine(&m.definition)?;
        let arn = names::express_execution_arn(&m.region, &self.account, &m.name, &name);
        let me = self
            .arc()
            .ok_or_else(|| AwsError::service("the Step Functions service is shutting down"))?;
        let host = ExecHost::new(me, &arn, &m.region, false, 2);
        let start_ms = stratus_core::time::now_ms();
        if let Some(logger) = stratus_logs::sfn::ExecutionLogger::for_execution(
            &self.store,
            &m.logging_configuration,
            &m.name,
            &arn,
            start_ms,
        ) {
            let mut started = json!({
                "input": input_text,
                "inputDetails": {"truncated": false},
                "roleArn": m.role_arn,
            });
            if let Some(v) = &version {
                started["stateMachineVersionArn"] = Value::from(m.version_arn(v.version));
            }
            logger.log(1, "ExecutionStarted", 0, start_ms, &started);
            host.set_logger(logger);
        }
        let info = stratus_asl::ExecutionInfo {
            execution_arn: arn.clone(),
            name: name.clone(),
            start_time: stratus_core::time::iso_ms(start_ms),
            role_arn: m.role_arn.clone(),
            state_machine_arn: m.state_machine_arn.clone(),
            state_machine_name: m.name.clone(),
            redrive_count: 0,
        };
        host.set_deadline(start_ms + EXPRESS_MAX_MS as i64);
        let run =
            crate::runner::CatchStop::new(stratus_asl::execute(&machine, input, &info, &host));
        let result =
            match tokio::time::timeout(std::time::Duration::from_millis(EXPRESS_MAX_MS), run).await
            {
                Ok(Ok(r)) => Ok(r),
                Ok(Err(stop)) => Ok(Err(crate::runner::stop_failure(stop))),
                Err(_) => Err(()),
            };
        let stop_ms = stratus_core::time::now_ms().max(start_ms);
        let mut out = json!({
            "executionArn": arn,
            "stateMachineArn": m.state_machine_arn,
            "name": name,
            "startDate": epoch(start_ms),
            "stopDate": epoch(stop_ms),
        });
        let mut output_len = 0;
        match result {
            Ok(Ok(v)) => {
                out["status"] = Value::from("SUCCEEDED");
                let text = v.to_string();
                output_len = text.len();
                if include {
                    out["output"] = Value::from(text);
                    out["outputDetails"] = json!({"included": true});
                } else {
                    out["outputDetails"] = json!({"included": false});
                }
            }
            Ok(Err(f)) => {
                let timed_out = host.recorded_final().as_deref() == Some("ExecutionTimedOut")
                    || (f.error == "States.Timeout"
                        && stratus_core::time::now_ms() >= start_ms + EXPRESS_MAX_MS as i64);
                out["status"] = Value::from(if timed_out { "TIMED_OUT" } else { "FAILED" });
                out["error"] = Value::from(f.error);
                out["cause"] = Value::from(f.cause);
            }
            Err(_) => {
                out["status"] = Value::from("TIMED_OUT");
                out["error"] = Value::from("States.Timeout");
                out["cause"] = Value::from(
                    "The execution did not finish within the Express workflow limit of 5 minutes.",
                );
            }
        }
        if let Some(status) = out["status"].as_str() {
            // CloudWatch's AWS/States metrics (this execution is not stored).
            stratus_cloudwatch::states::record_sync(
                &self.store,
                &m.region,
                &m.state_machine_arn,
                start_ms,
                stop_ms,
                status,
            );
        }
        if include {
            out["input"] = Value::from(input_text.clone());
            out["inputDetails"] = json!({"included": true});
        } else {
            out["inputDetails"] = json!({"included": false});
        }
        if let Some(t) = trace {
            out["traceHeader"] = Value::from(t);
        }
        out["billingDetails"] = billing(
            m.definition.len() + input_text.len() + output_len,
            (stop_ms - start_ms) as u64,
        );
        Ok(out)
    }

    /// DescribeExecution, with the redrive members (`redriveCount`,
    /// `redriveDate`, `redriveStatus`, `redriveStatusReason`).
    ///
    /// Errors: `InvalidArn`, `ExecutionDoesNotExist`.
    pub(crate) fn describe_execution(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let arn = req_str(req, "executionArn")?;
        let include = included_data(req)?;
        let row = self.execution(arn)?;
        let mut out = row.describe(include);
        if let Some(run) = self.map_run_of(arn) {
            out["mapRunArn"] = Value::from(run);
        }
        self.describe_redrive(&row, &mut out);
        Ok(out)
    }

    /// DescribeStateMachineForExecution: the state machine as the execution
    /// runs it (the definition and settings at its start).
    ///
    /// Errors: `InvalidArn`, `ExecutionDoesNotExist`.
    pub(crate) fn describe_machine_for_execution(
        &self,
        req: &Map<String, Value>,
    ) -> AwsResult<Value> {
        let arn = req_str(req, "executionArn")?;
        included_data(req)?;
        let row = self.execution(arn)?;
        let s = row.snapshot()?;
        let mut out = json!({
            "stateMachineArn": s.state_machine_arn,
            "name": s.name,
            "definition": s.definition,
            "roleArn": s.role_arn,
            "updateDate": epoch(s.update_ms),
            "loggingConfiguration": s.logging_configuration,
            "tracingConfiguration": s.tracing_configuration,
            "revisionId": s.revision_id,
        });
        // A Map Run's child: its run and the Map's label.
        if let Some(run) = self.map_run_of(arn) {
            if let Some((_, label)) = s.name.split_once('/') {
                out["label"] = Value::from(label);
            }
            out["mapRunArn"] = Value::from(run);
        }
        Ok(out)
    }

    /// ListExecutions of a state machine (or of one of its versions or
    /// aliases), newest first, optionally by `statusFilter` and
    /// `redriveFilter` (REDRIVEN / NOT_REDRIVEN), in pages (`maxResults`
    /// 1-1000, default 100). Items carry `redriveCount` (and `redriveDate`
    /// once redriven).
    ///
    /// Errors: `InvalidArn`, `StateMachineDoesNotExist`,
    /// `StateMachineTypeNotSupported` (EXPRESS: AWS lists only Standard
    /// executions), `InvalidToken`, `ValidationException`.
    pub(crate) fn list_executions(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        if opt_str(req, "mapRunArn")?.is_some() {
            return self.list_map_run_executions(req);
        }
        let Some(sm_arn) = opt_str(req, "stateMachineArn")? else {
            return Err(AwsError::validation(
                "Must provide a StateMachine ARN or MapRun ARN",
            ));
        };
        // The members are checked against the model before any lookup.
        let status = opt_str(req, "statusFilter")?.map(str::to_string);
        if let Some(s) = &status
            && !matches!(
                s.as_str(),
                "RUNNING" | "SUCCEEDED" | "FAILED" | "TIMED_OUT" | "ABORTED" | "PENDING_REDRIVE"
            )
        {
            return Err(names::validation(
                s,
                "statusFilter",
                "Member must satisfy enum value set: [RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED, PENDING_REDRIVE]",
            ));
        }
        let redriven = crate::redrive::redrive_filter(req)?;
        let start = parse_page_token(opt_str(req, "nextToken")?)?;
        let size = page_size(req)?;
        // A version or alias ARN lists the executions started through it.
        let qualified = names::check_state_machine_arn(sm_arn)?.parts.len() == 2;
        let m = if qualified {
            let base = sm_arn.rsplit_once(':').map(|(b, _)| b).unwrap_or(sm_arn);
            let m = self.load_machine(base).map_err(|_| {
                err(
                    "StateMachineDoesNotExist",
                    format!("State Machine Does Not Exist: '{sm_arn}'"),
                )
            })?;
            let known = m
                .versions
                .iter()
                .any(|v| m.version_arn(v.version) == sm_arn)
                || m.aliases.iter().any(|a| m.alias_arn(&a.name) == sm_arn);
            if !known {
                return Err(err(
                    "ResourceNotFound",
                    format!("Resource not found: '{sm_arn}'"),
                )
                .with_field("resourceName", sm_arn));
            }
            m
        } else {
            self.load_machine(sm_arn)?
        };
        let qualifier = qualified.then(|| sm_arn.to_string());
        if m.machine_type == "EXPRESS" {
            return Err(err(
                "StateMachineTypeNotSupported",
                "This operation is not supported by this type of state machine: ListExecutions lists STANDARD executions only.",
            ));
        }
        let sm = m.state_machine_arn.clone();
        let rows: Vec<FullRow> = self.store.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {ROW_COLUMNS} FROM sfn_executions
                 WHERE state_machine_arn = ?1 AND (?2 IS NULL OR status = ?2)
                   AND (?5 IS NULL OR json_extract(machine, '$.versionArn') = ?5
                        OR json_extract(machine, '$.aliasArn') = ?5)
                   AND (?6 IS NULL OR (?6 = 'REDRIVEN') = EXISTS (
                        SELECT 1 FROM sfn_redrives r
                        WHERE r.execution_arn = sfn_executions.arn AND r.redrive_count > 0))
                 ORDER BY start_ms DESC, arn LIMIT ?3 OFFSET ?4"
            ))?;
            let rows = st.query_map(
                params![
                    sm,
                    status,
                    (size + 1) as i64,
                    start as i64,
                    qualifier,
                    redriven
                ],
                row_from_sql,
            )?;
            rows.collect()
        })?;
        let more = rows.len() > size;
        let items: Vec<Value> = rows
            .iter()
            .take(size)
            .map(|r| {
                let mut v = json!({
                    "executionArn": r.arn,
                    "stateMachineArn": r.state_machine_arn,
                    "name": r.name,
                    "status": r.status,
                    "startDate": epoch(r.start_ms),
                });
                if let Some(s) = r.stop_ms {
                    v["stopDate"] = epoch(s);
                }
                if let Ok(snap) = r.snapshot() {
                    if let Some(va) = snap.version_arn {
                        v["stateMachineVersionArn"] = Value::from(va);
                    }
                    if let Some(aa) = snap.alias_arn {
                        v["stateMachineAliasArn"] = Value::from(aa);
                    }
                }
                self.list_item_redrive(&r.arn, &mut v);
                v
            })
            .collect();
        let mut out = json!({"executions": items});
        if more {
            out["nextToken"] = Value::from(page_token(start + size));
        }
        Ok(out)
    }

    /// StopExecution: a running execution ends ABORTED with an
    /// ExecutionAborted event carrying `error` and `cause`. Stopping an
    /// execution that already ended changes nothing and answers with its
    /// stop date.
    ///
    /// Errors: `InvalidArn`, `ExecutionDoesNotExist`, `ValidationException`.
    pub(crate) async fn stop_execution(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let arn = req_str(req, "executionArn")?.to_string();
        let error = opt_str(req, "error")?.map(str::to_string);
        let cause = opt_str(req, "cause")?.map(str::to_string);
        if let Some(e) = &error {
            names::check_len(e, "error", 0, 256)?;
        }
        if let Some(c) = &cause {
            names::check_len(c, "cause", 0, 32768)?;
        }
        let row = self.execution(&arn)?;
        if row.status != "RUNNING" {
            return Ok(json!({"stopDate": epoch(row.stop_ms.unwrap_or(row.start_ms))}));
        }
        let handle = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&arn);
        let mut pending = (Vec::new(), Vec::new());
        let mut express_next_id = None;
        let mut logger = None;
        if let Some(h) = handle {
            h.task.abort();
            let host = h.host.clone();
            let _ = h.task.await;
            pending = host.take_pending_rows();
            express_next_id = Some(host.next_event_id());
        }
        if let Ok(snapshot) = row.snapshot() {
            logger = stratus_logs::sfn::ExecutionLogger::for_execution(
                &self.store,
                &snapshot.logging_configuration,
                &snapshot.name,
                &arn,
                row.start_ms,
            );
            if let (Some(l), Some(r)) = (&logger, self.redrive_of(&arn)) {
                l.set_redrive_count(r.count);
            }
        }
        let logged_pending = logger.as_ref().map(|_| pending.0.clone());
        let stop_ms = stratus_core::time::now_ms();
        let mut details = Map::new();
        if let Some(e) = &error {
            details.insert("error".into(), Value::from(e.clone()));
        }
        if let Some(c) = &cause {
            details.insert("cause".into(), Value::from(c.clone()));
        }
        let details_json = Value::Object(details);
        let details = details_json.to_string();
        let standard = row.machine_type == "STANDARD";
        let arn2 = arn.clone();
        let aborted = self.store
            .write(move |c| {
                // A write comes first: the round's transaction takes the
                // write lock before it reads anything.
                let changed = c.execute(
                    "UPDATE sfn_executions SET status = 'ABORTED', stop_ms = ?1, error = ?2, cause = ?3, wake_ms = NULL
                     WHERE arn = ?4 AND status = 'RUNNING'",
                    params![stop_ms, error, cause, arn2],
                )?;
                if changed == 0 {
                    return Ok(None);
                }
                if !standard {
                    return Ok(Some(0));
                }
                let (events, journal) = &pending;
                crate::runner::write_rows(c, &arn2, events, journal)?;
                let last: Option<i64> = c.query_row(
                    "SELECT MAX(id) FROM sfn_history WHERE execution_arn = ?1",
                    params![arn2],
                    |r| r.get(0),
                )?;
                let last = last.unwrap_or(0);
                c.execute(
                    "INSERT INTO sfn_history (execution_arn, id, type, previous_id, timestamp_ms, details)
                     VALUES (?1, ?2, 'ExecutionAborted', ?3, ?4, ?5)",
                    params![arn2, last + 1, last, stop_ms, details],
                )?;
                Ok(Some(last))
            })
            .await?;
        if let (Some(l), Some(last)) = (&logger, aborted) {
            for e in logged_pending.as_deref().unwrap_or_default() {
                l.log(
                    e.id,
                    &e.event_type,
                    e.previous_id,
                    e.timestamp_ms,
                    &e.details,
                );
            }
            let id = if standard {
                last as u64 + 1
            } else {
                express_next_id.unwrap_or(2)
            };
            l.log(id, "ExecutionAborted", id - 1, stop_ms, &details_json);
        }
        // Its Map Runs end with it, and their running children stop.
        self.abort_map_runs(&arn).await;
        self.execution_ended(&arn, "ABORTED");
        // Nested executions it started end with it (see crate::nested).
        self.stop_children(&arn).await;
        Ok(json!({"stopDate": epoch(stop_ms)}))
    }

    /// GetExecutionHistory of a Standard execution: events by id
    /// (`reverseOrder` for newest first), `includeExecutionData` (default
    /// true) to keep inputs and outputs, pages of `maxResults` (1-1000,
    /// default 100).
    ///
    /// Errors: `InvalidArn`, `ExecutionDoesNotExist`, `InvalidToken`,
    /// `StateMachineTypeNotSupported` (Express executions have no history
    /// in AWS's API).
    pub(crate) fn get_execution_history(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let arn = req_str(req, "executionArn")?;
        let row = self.execution(arn)?;
        if row.machine_type != "STANDARD" {
            return Err(err(
                "StateMachineTypeNotSupported",
                "This operation is not supported by this type of state machine: Express executions have no execution history.",
            ));
        }
        let reverse = opt_bool(req, "reverseOrder")?.unwrap_or(false);
        let include = opt_bool(req, "includeExecutionData")?.unwrap_or(true);
        let start = parse_page_token(opt_str(req, "nextToken")?)?;
        let size = page_size(req)?;
        let mut events = self.load_events(arn)?;
        if reverse {
            events.reverse();
        }
        let total = events.len();
        let page: Vec<Value> = events
            .iter()
            .skip(start)
            .take(size)
            .map(|e| event_json(e, include))
            .collect();
        let mut out = json!({"events": page});
        if start + size < total {
            out["nextToken"] = Value::from(page_token(start + size));
        }
        Ok(out)
    }

    /// Checks a task token and that its task still waits: `(execution ARN,
    /// token)`.
    ///
    /// Errors: `InvalidToken` (not a token stratus issued),
    /// `TaskDoesNotExist` (no such task), `TaskTimedOut` (the task or its
    /// execution already ended).
    fn open_task(&self, req: &Map<String, Value>) -> AwsResult<(String, String)> {
        let token = req_str(req, "taskToken")?;
        names::check_len(token, "taskToken", 1, 2048)?;
        let Some((arn, key)) = crate::runner::parse_token(token) else {
            return Err(err("InvalidToken", "Invalid token"));
        };
        let waiting_here = self
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(token);
        if !waiting_here {
            let journal = self.load_journal(&arn)?;
            let issued = journal.get(&format!("token-of:{key}")).cloned();
            if issued.as_deref() != Some(token) {
                return Err(err(
                    "TaskDoesNotExist",
                    "Task Does Not Exist: no task was issued this token.",
                ));
            }
            // The task ended without a callback (heartbeat or activity
            // timeout) while the execution goes on.
            // (An activity task's closing is noted per run of the
            // execution: `activity-closed:<key>` or `...@<redrive count>`.)
            let closed = format!("activity-closed:{key}");
            let task_ended = journal.contains_key(&format!("task:{key}"))
                || journal.keys().any(|k| {
                    k.strip_prefix(closed.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('@'))
                });
            match self.load_full_row(&arn)? {
                Some(r) if r.status == "RUNNING" && !task_ended => {}
                _ => {
                    return Err(err(
                        "TaskTimedOut",
                        "Task Timed Out: 'Provided task does not exist anymore'",
                    ));
                }
            }
        }
        if self.callback_outcome(&arn, token).is_some() {
            return Err(err(
                "TaskTimedOut",
                "Task Timed Out: 'Provided task does not exist anymore'",
            ));
        }
        Ok((arn, token.to_string()))
    }

    async fn close_task(&self, arn: String, token: String, outcome: String) -> AwsResult<()> {
        let key = format!("token:{token}");
        self.store
            .write(move |c| {
                c.execute(
                    "INSERT OR IGNORE INTO sfn_journal (execution_arn, key, value) VALUES (?1, ?2, ?3)",
                    params![arn, key, outcome],
                )
            })
            .await?;
        let waiter = self
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&token)
            .cloned();
        if let Some(w) = waiter {
            w.notify.notify_one();
        }
        Ok(())
    }

    /// SendTaskSuccess: the waiting task succeeds with `output` (JSON).
    ///
    /// Errors: `InvalidToken`, `TaskDoesNotExist`, `TaskTimedOut`,
    /// `InvalidOutput` (not JSON).
    pub(crate) async fn send_task_success(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let output = req_str(req, "output")?;
        names::check_payload_bytes(output, "output", MAX_DATA)?;
        let value: Value = serde_json::from_str(output)
            .map_err(|e| err("InvalidOutput", format!("Invalid Output: '{e}'")))?;
        let (arn, token) = self.open_task(req)?;
        self.close_task(arn, token, json!({"ok": value}).to_string())
            .await?;
        Ok(json!({}))
    }

    /// SendTaskFailure: the waiting task fails with `error` and `cause`.
    ///
    /// Errors: `InvalidToken`, `TaskDoesNotExist`, `TaskTimedOut`.
    pub(crate) async fn send_task_failure(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let error = opt_str(req, "error")?.unwrap_or("");
        let cause = opt_str(req, "cause")?.unwrap_or("");
        names::check_len(error, "error", 0, 256)?;
        names::check_len(cause, "cause", 0, 32768)?;
        let (arn, token) = self.open_task(req)?;
        self.close_task(
            arn,
            token,
            json!({"error": error, "cause": cause}).to_string(),
        )
        .await?;
        Ok(json!({}))
    }

    /// SendTaskHeartbeat: restarts the task's HeartbeatSeconds clock.
    ///
    /// Errors: `InvalidToken`, `TaskDoesNotExist`, `TaskTimedOut`.
    pub(crate) async fn send_task_heartbeat(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let (_, token) = self.open_task(req)?;
        let waiter = self
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&token)
            .cloned();
        if let Some(w) = waiter {
            *w.beat.lock().unwrap_or_else(|p| p.into_inner()) = std::time::Instant::now();
            w.notify.notify_one();
        }
        Ok(json!({}))
    }
}

impl States {
    /// TestState: runs one state definition with `input` (Task states call
    /// their resource for real), and answers with status, output or error,
    /// next state and, at DEBUG / TRACE, the inspection data. `mock`
    /// answers Task states with a given result or error instead of running
    /// them; `context` and `stateConfiguration` are not supported.
    ///
    /// Errors: `InvalidDefinition` (the state does not validate),
    /// `InvalidExecutionInput`, `ValidationException`.
    pub(crate) async fn test_state(
        &self,
        region: &str,
        req: &Map<String, Value>,
    ) -> AwsResult<Value> {
        let definition = req_str(req, "definition")?;
        names::check_len(definition, "definition", 1, crate::machines::MAX_DEFINITION)?;
        let (_, input) = check_input(opt_str(req, "input")?)?;
        let level = match opt_str(req, "inspectionLevel")?.unwrap_or("INFO") {
            "INFO" => stratus_asl::InspectionLevel::Info,
            "DEBUG" => stratus_asl::InspectionLevel::Debug,
            "TRACE" => stratus_asl::InspectionLevel::Trace,
            other => {
                return Err(names::validation(
                    other,
                    "inspectionLevel",
                    "Member must satisfy enum value set: [INFO, DEBUG, TRACE]",
                ));
            }
        };
        let variables =
            match opt_str(req, "variables")? {
                None => None,
                Some(v) => Some(serde_json::from_str::<Value>(v).map_err(|e| {
                    err("InvalidExecutionInput", format!("Invalid variables: '{e}'"))
                })?),
            };
        for unsupported in ["stateConfiguration", "context"] {
            if req.get(unsupported).is_some_and(|v| !v.is_null()) {
                return Err(AwsError::validation(format!(
                    "stratus's TestState does not support '{unsupported}'."
                )));
            }
        }
        let mock = match req.get("mock").filter(|v| !v.is_null()) {
            None => None,
            Some(m) => Some(parse_mock(m)?),
        };
        if let Ok(v) = serde_json::from_str::<Value>(definition)
            && let Some(r) = v.get("Resource").and_then(Value::as_str)
            && crate::integrations::classify(r).is_none()
        {
            return Err(err(
                "InvalidDefinition",
                format!(
                    "Invalid State Machine Definition: 'INVALID_RESOURCE: {} at /Resource'",
                    crate::integrations::unsupported_message(r)
                ),
            ));
        }
        let role = opt_str(req, "roleArn")?.unwrap_or_default().to_string();
        let me = self
            .arc()
            .ok_or_else(|| AwsError::service("the Step Functions service is shutting down"))?;
        let name = uuid::Uuid::new_v4().to_string();
        let arn = names::express_execution_arn(region, &self.account, "TestState", &name);
        let host = ExecHost::new(me, &arn, region, false, 1);
        if let Some(m) = mock {
            host.set_mock(m);
        }
        let info = stratus_asl::ExecutionInfo {
            execution_arn: arn,
            name,
            start_time: stratus_core::time::iso_ms(stratus_core::time::now_ms()),
            role_arn: role,
            state_machine_arn: names::state_machine_arn(region, &self.account, "TestState"),
            state_machine_name: "TestState".into(),
            redrive_count: 0,
        };
        let r = stratus_asl::test_state(definition, input, &info, &host, level, variables)
            .await
            .map_err(|diags| {
                let msg: Vec<String> = diags
                    .iter()
                    .map(|d| match &d.location {
                        Some(l) => format!("{}: {} at {}", d.code, d.message, l),
                        None => format!("{}: {}", d.code, d.message),
                    })
                    .collect();
                err(
                    "InvalidDefinition",
                    format!("Invalid State Machine Definition: '{}'", msg.join(", ")),
                )
            })?;
        let mut out = json!({"status": r.status});
        if let Some(o) = r.output {
            out["output"] = Value::from(o.to_string());
        }
        if let Some(e) = r.error {
            out["error"] = Value::from(e);
        }
        if let Some(c) = r.cause {
            out["cause"] = Value::from(c);
        }
        if let Some(n) = r.next_state {
            out["nextState"] = Value::from(n);
        }
        if r.inspection_data.as_object().is_some_and(|o| !o.is_empty()) {
            out["inspectionData"] = r.inspection_data;
        }
        Ok(out)
    }
}

/// TestState's `mock`: `{"result": "<JSON text>"}` or `{"errorOutput":
/// {"error", "cause"}}` (exactly one of them).
///
/// Errors: `ValidationException` (neither or both, a result that is not
/// JSON).
fn parse_mock(m: &Value) -> AwsResult<Result<Value, stratus_asl::Failure>> {
    let result = m.get("result").filter(|v| !v.is_null());
    let error = m.get("errorOutput").filter(|v| !v.is_null());
    match (result, error) {
        (Some(r), None) => {
            let text = r.as_str().ok_or_else(|| {
                AwsError::new(
                    400,
                    "SerializationException",
                    "mock.result must be a string.",
                )
            })?;
            let v = serde_json::from_str(text)
                .map_err(|e| AwsError::validation(format!("mock.result is not valid JSON: {e}")))?;
            Ok(Ok(v))
        }
        (None, Some(e)) => Ok(Err(stratus_asl::Failure {
            error: e
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            cause: e
                .get("cause")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        })),
        _ => Err(AwsError::validation(
            "A mock must have exactly one of 'result' and 'errorOutput'.",
        )),
    }
}

/// Express billing: memory in 64 MB steps (at least 64 MB) for the
/// definition and data held, duration rounded up to the next 100 ms
/// (at least 100 ms), as "Step Functions pricing" describes Express
/// workflow billing.
pub fn billing(bytes_held: usize, duration_ms: u64) -> Value {
    const CHUNK_MB: u64 = 64;
    let mb = (bytes_held as u64).div_ceil(1024 * 1024).max(1);
    let billed_mb = mb.div_ceil(CHUNK_MB) * CHUNK_MB;
    let billed_ms = duration_ms.div_ceil(100).max(1) * 100;
    json!({"billedMemoryUsedInMB": billed_mb, "billedDurationInMilliseconds": billed_ms})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_members_follow_the_model() {
        assert_eq!(
            details_member("PassStateEntered").unwrap(),
            "stateEnteredEventDetails"
        );
        assert_eq!(
            details_member("TaskStateExited").unwrap(),
            "stateExitedEventDetails"
        );
        assert_eq!(
            details_member("ExecutionStarted").unwrap(),
            "executionStartedEventDetails"
        );
        assert_eq!(
            details_member("LambdaFunctionScheduled").unwrap(),
            "lambdaFunctionScheduledEventDetails"
        );
        assert_eq!(
            details_member("MapIterationStarted").unwrap(),
            "mapIterationStartedEventDetails"
        );
        assert!(details_member("ParallelStateStarted").is_none());
        assert!(details_member("WaitStateAborted").is_none());
    }

    #[test]
    fn events_drop_data_on_request() {
        let e = EventRow {
            id: 2,
            event_type: "PassStateEntered".into(),
            previous_id: 1,
            timestamp_ms: 1_700_000_000_123,
            details: json!({"name": "P", "input": "{}", "inputDetails": {"truncated": false}}),
        };
        let full = event_json(&e, true);
        assert_eq!(full["stateEnteredEventDetails"]["input"], "{}");
        assert_eq!(full["timestamp"], 1_700_000_000.123);
        let meta = event_json(&e, false);
        assert!(meta["stateEnteredEventDetails"].get("input").is_none());
        assert_eq!(meta["stateEnteredEventDetails"]["name"], "P");
    }

    #[test]
    fn express_billing_rounds_up() {
        assert_eq!(
            billing(10, 1),
            json!({"billedMemoryUsedInMB": 64, "billedDurationInMilliseconds": 100})
        );
        assert_eq!(billing(65 * 1024 * 1024, 250)["billedMemoryUsedInMB"], 128);
        assert_eq!(billing(1, 250)["billedDurationInMilliseconds"], 300);
    }

    #[test]
    fn inputs_must_be_json() {
        assert_eq!(check_input(None).unwrap().0, "{}");
        assert_eq!(
            check_input(Some("{bad")).unwrap_err().code,
            "InvalidExecutionInput"
        );
        assert!(check_input(Some(&"1".repeat(MAX_DATA + 1))).is_err());
    }
}
