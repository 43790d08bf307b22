//! Map Runs: the child executions of a Distributed Map, and the Map Run
//! APIs (DescribeMapRun, ListMapRuns, UpdateMapRun; ListExecutions with a
//! `mapRunArn`).
//!
//! A Distributed Map (ProcessorConfig Mode DISTRIBUTED) starts one Map Run;
//! the engine hands each child (one item, or one ItemBatcher batch) to it
//! through [`stratus_asl::MapRunHost`], and this module runs the child as
//! an execution of the ItemProcessor's state machine:
//!
//! * ExecutionType STANDARD: a durable execution with a row in
//!   `sfn_executions` and a history of its own (GetExecutionHistory), listed
//!   by `ListExecutions(mapRunArn)`. Its name is derived from the Map Run
//!   and the child's index, so a parent replayed after a restart finds the
//!   children it started (resumed by the service's recovery like any other
//!   execution) and waits for them instead of starting new ones.
//! * ExecutionType EXPRESS: runs in memory (at most 5 minutes), is counted
//!   in the Map Run and is not listed (AWS lists no Express executions).
//!
//! The Map Run record (`sfn_map_runs`) holds the status (RUNNING,
//! SUCCEEDED, FAILED, ABORTED), the settings UpdateMapRun changes and the
//! item and execution counts of DescribeMapRun; while the run goes on in
//! this process the counts are live in memory and stored when it ends.
//!
//! ARNs (Step Functions Developer Guide, "Examining Map Runs"; API
//! reference, StartExecution): Map Run
//! `arn:aws:states:<region>:<account>:mapRun:<machine>/<label>:<id>`, child
//! execution `arn:aws:states:<region>:<account>:execution:<machine>/<label>:<name>`,
//! the children's state machine `arn:aws:states:<region>:<account>:stateMachine:<machine>/<label>`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};
use stratus_asl::{
    BoxFuture, ExecutionInfo, Failure, MapRunEnd, MapRunHost, MapRunSpec, StateMachine,
};
use stratus_core::{AwsError, AwsResult};
use stratus_store::rusqlite::{self, OptionalExtension, params};

use crate::names::{self, err};
use crate::runner::{CatchStop, ExecHost, ExecRow, MachineSnapshot, Stop, stop_failure};
use crate::{States, epoch, opt_int, opt_str, page_size, page_token, parse_page_token, req_str};

/// Tables of Map Runs and of their STANDARD child executions.
pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS sfn_map_runs (
    arn                  TEXT PRIMARY KEY,
    execution_arn        TEXT NOT NULL,
    state_machine_arn    TEXT NOT NULL,
    status               TEXT NOT NULL,
    start_ms             INTEGER NOT NULL,
    stop_ms              INTEGER,
    max_concurrency      INTEGER NOT NULL,
    tolerated_percentage REAL,
    tolerated_count      INTEGER,
    execution_type       TEXT NOT NULL,
    item_counts          TEXT NOT NULL,
    execution_counts     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sfn_map_runs_execution ON sfn_map_runs (execution_arn, start_ms);
CREATE TABLE IF NOT EXISTS sfn_map_run_children (
    map_run_arn   TEXT NOT NULL,
    idx           INTEGER NOT NULL,
    execution_arn TEXT NOT NULL,
    item_count    INTEGER NOT NULL,
    PRIMARY KEY (map_run_arn, idx)
);
CREATE INDEX IF NOT EXISTS sfn_map_run_children_execution ON sfn_map_run_children (execution_arn);
"#;

/// The cause recorded on child executions stopped with their Map Run.
const ABORT_CAUSE: &str = "The Map Run of this child execution was aborted.";

// --------------------------------------------------------------------------
// ARNs and names
// --------------------------------------------------------------------------

/// `(arn:<partition>:states:<region>:<account>, <machine>/<label>, <id>)` of
/// a Map Run ARN, `None` if it is not one.
fn split_map_run_arn(arn: &str) -> Option<(&str, &str, &str)> {
    let (prefix, rest) = arn.split_once(":mapRun:")?;
    let (machine_label, id) = rest.rsplit_once(':')?;
    if machine_label.is_empty() || id.is_empty() || !machine_label.contains('/') {
        return None;
    }
    Some((prefix, machine_label, id))
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The name of child `index` of a Map Run: UUID-shaped (36 characters),
/// derived from the Map Run ARN and the index, so the same child gets the
/// same name when its parent is replayed; distinct for every index.
pub(crate) fn child_name(map_run_arn: &str, index: usize) -> String {
    let h = fnv(map_run_arn.as_bytes());
    let i = index as u64;
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        (h >> 32) as u32,
        (h >> 16) as u16,
        (h & 0xfff) as u16,
        0x8000 | ((i >> 48) & 0x0fff) as u16,
        i & 0xffff_ffff_ffff
    )
}

/// The ARN of child `index` of a Map Run:
/// `arn:aws:states:<region>:<account>:execution:<machine>/<label>:<name>`.
pub(crate) fn child_execution_arn(map_run_arn: &str, index: usize) -> String {
    match split_map_run_arn(map_run_arn) {
        Some((prefix, machine_label, _)) => format!(
            "{prefix}:execution:{machine_label}:{}",
            child_name(map_run_arn, index)
        ),
        None => format!("{map_run_arn}:{index}"),
    }
}

/// Checks a `mapRunArn` parameter.
///
/// Errors: `InvalidArn`.
fn check_map_run_arn(arn: &str) -> AwsResult<()> {
    let a = names::parse_arn(arn)?;
    if a.resource_type != "mapRun" || a.parts.len() != 2 || !a.parts[0].contains('/') {
        return Err(err(
            "InvalidArn",
            format!("Invalid Arn: 'Resource type not valid in this context: {arn}'"),
        ));
    }
    Ok(())
}

fn not_found(arn: &str) -> AwsError {
    err("ResourceNotFound", format!("Resource not found: '{arn}'")).with_field("resourceName", arn)
}

// --------------------------------------------------------------------------
// counts
// --------------------------------------------------------------------------

/// Items or child executions of a Map Run by state (DescribeMapRun's
/// `MapRunItemCounts` / `MapRunExecutionCounts`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Counts {
    pub running: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub aborted: u64,
    pub total: u64,
    pub results_written: u64,
}

impl Counts {
    fn ended(&self) -> u64 {
        self.succeeded + self.failed + self.timed_out + self.aborted
    }

    /// The model's shape: `pending` is what has not started yet.
    fn to_json(self) -> Value {
        json!({
            "pending": self.total.saturating_sub(self.running + self.ended()),
            "running": self.running,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "timedOut": self.timed_out,
            "aborted": self.aborted,
            "total": self.total,
            "resultsWritten": self.results_written,
            "failuresNotRedrivable": 0,
            "pendingRedrive": 0,
        })
    }

    fn end(&mut self, n: u64, status: &str) {
        self.running = self.running.saturating_sub(n);
        match status {
            "SUCCEEDED" => self.succeeded += n,
            "TIMED_OUT" => self.timed_out += n,
            "ABORTED" => self.aborted += n,
            _ => self.failed += n,
        }
    }

    /// Children still running become aborted.
    fn abort_running(&mut self) {
        self.aborted += self.running;
        self.running = 0;
    }
}

// --------------------------------------------------------------------------
// the live Map Run
// --------------------------------------------------------------------------

/// Settings UpdateMapRun changes while the run goes on.
#[derive(Debug, Clone, Copy)]
struct Settings {
    max_concurrency: usize,
    tolerated_percentage: Option<f64>,
    tolerated_count: Option<f64>,
}

/// A Map Run going on in this process.
pub(crate) struct LiveMapRun {
    states: Arc<States>,
    arn: String,
    execution_arn: String,
    region: String,
    /// `<machine>/<label>`: the children's state machine name.
    child_machine_name: String,
    /// `arn:...:stateMachine:<machine>/<label>`.
    child_machine_arn: String,
    role_arn: String,
    /// The parent's state machine as it runs (revision, logging, tracing).
    parent_machine: MachineSnapshot,
    definition: String,
    machine: Arc<StateMachine>,
    standard: bool,
    settings: Mutex<Settings>,
    version: AtomicU64,
    changed: tokio::sync::Notify,
    /// (items, executions).
    counts: Mutex<(Counts, Counts)>,
    /// Set once the run ended (finished or aborted): no child starts.
    ended: std::sync::atomic::AtomicBool,
    /// How many times the parent was redriven (0: never): a STANDARD child
    /// that ended unsuccessfully in an earlier run, and was redriven fewer
    /// times than that, is redriven rather than answering with its failure.
    parent_redrives: u32,
}

impl LiveMapRun {
    fn counts(&self) -> (Counts, Counts) {
        *self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn settings(&self) -> Settings {
        *self.settings.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count_start(&self, items: usize) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.0.running += items as u64;
        c.1.running += 1;
    }

    fn count_end(&self, items: usize, status: &str) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.0.end(items as u64, status);
        c.1.end(1, status);
    }

    /// Runs child `index` to its end; its final status and outcome.
    async fn run_child(
        &self,
        index: usize,
        input: Value,
        items: usize,
    ) -> (&'static str, Result<Value, Failure>) {
        if self.ended.load(Ordering::SeqCst) {
            return (
                "ABORTED",
                Err(Failure::new("States.Runtime", ABORT_CAUSE.to_string())),
            );
        }
        if self.standard {
            self.run_standard_child(index, input, items).await
        } else {
            self.run_express_child(index, input).await
        }
    }

    fn info(&self, arn: &str, name: &str, start_ms: i64) -> ExecutionInfo {
        ExecutionInfo {
            execution_arn: arn.to_string(),
            name: name.to_string(),
            start_time: stratus_core::time::iso_ms(start_ms),
            role_arn: self.role_arn.clone(),
            state_machine_arn: self.child_machine_arn.clone(),
            state_machine_name: self.child_machine_name.clone(),
            redrive_count: 0,
        }
    }

    /// An EXPRESS child: the engine runs in memory against a non-durable
    /// host, at most 5 minutes (then TIMED_OUT, as Express executions).
    async fn run_express_child(
        &self,
        index: usize,
        input: Value,
    ) -> (&'static str, Result<Value, Failure>) {
        let name = child_name(&self.arn, index);
        let arn = child_execution_arn(&self.arn, index);
        let start_ms = stratus_core::time::now_ms();
        let host = ExecHost::new(self.states.clone(), &arn, &self.region, false, 1);
        let deadline = start_ms + crate::executions::EXPRESS_MAX_MS as i64;
        host.set_deadline(deadline);
        let info = self.info(&arn, &name, start_ms);
        let run = CatchStop::new(stratus_asl::execute(&self.machine, input, &info, &host));
        let r = tokio::select! {
            r = run => match r {
                Ok(r) => r,
                Err(stop) => Err(stop_failure(stop)),
            },
            _ = tokio::time::sleep(Duration::from_millis(crate::executions::EXPRESS_MAX_MS)) => {
                Err(stop_failure(Stop::Deadline))
            }
        };
        let status = match (&r, host.recorded_final().as_deref()) {
            (Ok(_), _) => "SUCCEEDED",
            (Err(_), Some("ExecutionTimedOut")) => "TIMED_OUT",
            (Err(f), _) if f == &stop_failure(Stop::Deadline) => "TIMED_OUT",
            _ => "FAILED",
        };
        (status, r)
    }

    /// A STANDARD child: a durable execution. Started once (its row, its
    /// ExecutionStarted event and its place in the Map Run are one
    /// commit); a child that exists already (the parent is replayed) is
    /// waited for instead.
    async fn run_standard_child(
        &self,
        index: usize,
        input: Value,
        items: usize,
    ) -> (&'static str, Result<Value, Failure>) {
        let arn = child_execution_arn(&self.arn, index);
        let existing = self.states.load_full_row(&arn).ok().flatten();
        if let Some(row) = &existing {
            self.redrive_child(&arn, &row.status).await;
        }
        if existing.is_none()
            && let Err(e) = self.start_standard_child(index, &arn, input, items).await
        {
            return (
                "FAILED",
                Err(Failure::new(
                    "States.Runtime",
                    format!("The child execution could not be started: {}", e.message),
                )),
            );
        }
        match self.states.wait_for_end(&arn).await {
            Ok(row) => {
                let status = match row.status.as_str() {
                    "SUCCEEDED" => "SUCCEEDED",
                    "TIMED_OUT" => "TIMED_OUT",
                    "ABORTED" => "ABORTED",
                    _ => "FAILED",
                };
                let r = if status == "SUCCEEDED" {
                    Ok(row
                        .output
                        .as_deref()
                        .and_then(|o| serde_json::from_str(o).ok())
                        .unwrap_or(Value::Null))
                } else {
                    Err(Failure::new(
                        row.error.unwrap_or_else(|| "States.Runtime".into()),
                        row.cause.unwrap_or_default(),
                    ))
                };
                (status, r)
            }
            Err(e) => (
                "FAILED",
                Err(Failure::new("States.Runtime", e.message.to_string())),
            ),
        }
    }

    /// A redriven parent redrives its Map Run ("Redriving executions": the
    /// parent redrives all unsuccessful states, including a failed Map Run):
    /// a STANDARD child that ended FAILED, TIMED_OUT or ABORTED is redriven
    /// (RedriveExecution) once per redrive of the parent; a child that
    /// cannot be redriven keeps its outcome.
    async fn redrive_child(&self, arn: &str, status: &str) {
        if self.parent_redrives == 0 || !matches!(status, "FAILED" | "TIMED_OUT" | "ABORTED") {
            return;
        }
        let done = self.states.redrive_of(arn).map_or(0, |r| r.count);
        if done >= self.parent_redrives {
            return;
        }
        if let Err(e) = Box::pin(self.states.redrive_map_run_child(arn)).await {
            tracing::warn!(execution = %arn, "the Map Run child is not redriven: {e}");
        }
    }

    async fn start_standard_child(
        &self,
        index: usize,
        arn: &str,
        input: Value,
        items: usize,
    ) -> AwsResult<()> {
        let name = child_name(&self.arn, index);
        let start_ms = stratus_core::time::now_ms();
        let input_text = input.to_string();
        let snapshot = MachineSnapshot {
            state_machine_arn: self.child_machine_arn.clone(),
            name: self.child_machine_name.clone(),
            definition: self.definition.clone(),
            role_arn: self.role_arn.clone(),
            machine_type: "STANDARD".into(),
            update_ms: self.parent_machine.update_ms,
            revision_id: self.parent_machine.revision_id.clone(),
            logging_configuration: self.parent_machine.logging_configuration.clone(),
            tracing_configuration: self.parent_machine.tracing_configuration.clone(),
            version_arn: None,
            alias_arn: None,
        };
        let snapshot_text =
            serde_json::to_string(&snapshot).map_err(|e| AwsError::service(e.to_string()))?;
        let started = json!({
            "input": input_text,
            "inputDetails": {"truncated": false},
            "roleArn": self.role_arn,
        })
        .to_string();
        let (a, region, sm, n, inp, run) = (
            arn.to_string(),
            self.region.clone(),
            self.child_machine_arn.clone(),
            name.clone(),
            input_text.clone(),
            self.arn.clone(),
        );
        let inserted = self
            .states
            .store
            .write(move |c| {
                let n = c.execute(
                    "INSERT OR IGNORE INTO sfn_executions
                     (arn, region, state_machine_arn, name, type, status, start_ms, input, machine)
                     VALUES (?1, ?2, ?3, ?4, 'STANDARD', 'RUNNING', ?5, ?6, ?7)",
                    params![a, region, sm, n, start_ms, inp, snapshot_text],
                )?;
                if n == 1 {
                    c.execute(
                        "INSERT INTO sfn_history (execution_arn, id, type, previous_id, timestamp_ms, details)
                         VALUES (?1, 1, 'ExecutionStarted', 0, ?2, ?3)",
                        params![a, start_ms, started],
                    )?;
                    c.execute(
                        "INSERT OR REPLACE INTO sfn_map_run_children (map_run_arn, idx, execution_arn, item_count)
                         VALUES (?1, ?2, ?3, ?4)",
                        params![run, index as i64, a, items as i64],
                    )?;
                }
                Ok(n == 1)
            })
            .await?;
        if inserted {
            let row = ExecRow {
                arn: arn.to_string(),
                region: self.region.clone(),
                name,
                machine_type: "STANDARD".into(),
                start_ms,
                input: input_text,
                machine: snapshot,
            };
            self.states.launch(&row, self.machine.clone(), None, 2);
        }
        Ok(())
    }

    /// Stores the run's status, stop date, settings and counts.
    async fn store(&self, status: &'static str, stop_ms: Option<i64>) {
        let (items, execs) = self.counts();
        let s = self.settings();
        let arn = self.arn.clone();
        let r = self
            .states
            .store
            .write(move |c| {
                c.execute(
                    "UPDATE sfn_map_runs SET status = ?1, stop_ms = ?2, max_concurrency = ?3,
                       tolerated_percentage = ?4, tolerated_count = ?5, item_counts = ?6,
                       execution_counts = ?7
                     WHERE arn = ?8 AND status != 'ABORTED'",
                    params![
                        status,
                        stop_ms,
                        s.max_concurrency as i64,
                        s.tolerated_percentage,
                        s.tolerated_count.map(|c| c as i64),
                        serde_json::to_string(&items).unwrap_or_default(),
                        serde_json::to_string(&execs).unwrap_or_default(),
                        arn
                    ],
                )
            })
            .await;
        if let Err(e) = r {
            tracing::error!(map_run = %self.arn, "cannot store the map run: {e}");
        }
    }

    /// STANDARD children of this run that are still RUNNING.
    fn running_children(&self) -> Vec<String> {
        running_children_of(&self.states, &self.arn)
    }
}

fn running_children_of(states: &States, map_run_arn: &str) -> Vec<String> {
    let run = map_run_arn.to_string();
    states
        .store
        .read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT c.execution_arn FROM sfn_map_run_children c
                 JOIN sfn_executions e ON e.arn = c.execution_arn
                 WHERE c.map_run_arn = ?1 AND e.status = 'RUNNING' ORDER BY c.idx",
            )?;
            let rows = st.query_map(params![run], |r| r.get(0))?;
            rows.collect()
        })
        .unwrap_or_default()
}

/// What the engine holds: the live run, and the parent's count of work in
/// progress (an execution waiting for its Map Run is not parked).
struct MapRunHandle {
    run: Arc<LiveMapRun>,
    parent_busy: Arc<AtomicUsize>,
}

impl Drop for MapRunHandle {
    fn drop(&mut self) {
        self.parent_busy.fetch_sub(1, Ordering::SeqCst);
    }
}

impl MapRunHost for MapRunHandle {
    fn run_child<'a>(
        &'a self,
        index: usize,
        input: Value,
        items: usize,
    ) -> BoxFuture<'a, Result<Value, Failure>> {
        Box::pin(async move {
            let run = &self.run;
            run.count_start(items);
            let (status, r) = run.run_child(index, input, items).await;
            run.count_end(items, status);
            r
        })
    }

    fn max_concurrency(&self) -> usize {
        self.run.settings().max_concurrency
    }

    fn tolerated_failures(&self) -> (Option<f64>, Option<f64>) {
        let s = self.run.settings();
        (s.tolerated_percentage, s.tolerated_count)
    }

    fn settings_version(&self) -> u64 {
        self.run.version.load(Ordering::SeqCst)
    }

    fn settings_changed<'a>(&'a self, seen: u64) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            loop {
                let notified = self.run.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.run.version.load(Ordering::SeqCst) != seen {
                    return;
                }
                notified.await;
            }
        })
    }

    fn finish<'a>(&'a self, end: MapRunEnd) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let run = &self.run;
            run.ended.store(true, Ordering::SeqCst);
            let status = match &end {
                MapRunEnd::Succeeded { results_written } => {
                    if *results_written {
                        let mut c = run.counts.lock().unwrap_or_else(|p| p.into_inner());
                        c.0.results_written = c.0.ended();
                        c.1.results_written = c.1.ended();
                    }
                    "SUCCEEDED"
                }
                MapRunEnd::Failed(_) => "FAILED",
            };
            if status == "FAILED" {
                // Children still running are stopped with their run.
                for child in run.running_children() {
                    stop_child(&run.states, &child).await;
                }
                let mut c = run.counts.lock().unwrap_or_else(|p| p.into_inner());
                c.0.abort_running();
                c.1.abort_running();
            }
            run.store(status, Some(stratus_core::time::now_ms())).await;
            run.states
                .map_runs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&run.arn);
        })
    }
}

async fn stop_child(states: &States, arn: &str) {
    let mut req = Map::new();
    req.insert("executionArn".into(), Value::from(arn));
    req.insert("cause".into(), Value::from(ABORT_CAUSE));
    // A child's own Map Runs are aborted by the same call.
    let r = Box::pin(states.stop_execution(&req)).await;
    if let Err(e) = r {
        tracing::warn!(execution = %arn, "cannot stop the child execution: {e}");
    }
}

/// Starts (or, on a replay, finds again) the Map Run of a Distributed Map
/// in the execution `parent_arn`. `None` when the children's state machine
/// does not parse as one (they then run inside the parent).
pub(crate) async fn open(
    states: &Arc<States>,
    parent_arn: &str,
    region: &str,
    spec: &MapRunSpec,
    parent_busy: Arc<AtomicUsize>,
    parent_redrives: u32,
) -> Option<Arc<dyn MapRunHost>> {
    let (_, machine_label, _) = split_map_run_arn(&spec.map_run_arn)?;
    let machine = match StateMachine::parse(&spec.definition) {
        Ok(m) => Arc::new(m),
        Err(d) => {
            tracing::warn!(map_run = %spec.map_run_arn, "the ItemProcessor does not parse as a state machine ({d:?}); its children run inside the parent");
            return None;
        }
    };
    let parent = states.load_full_row(parent_arn).ok().flatten()?;
    let snapshot: MachineSnapshot = serde_json::from_str(&parent.machine).ok()?;
    let start_ms = stratus_core::time::now_ms();
    let mut settings = Settings {
        max_concurrency: spec.max_concurrency,
        tolerated_percentage: spec.tolerated_failure_percentage,
        tolerated_count: spec.tolerated_failure_count,
    };
    let items_total = spec.item_count as u64;
    let execs_total = spec.child_count as u64;
    let fresh = (
        Counts {
            total: items_total,
            ..Default::default()
        },
        Counts {
            total: execs_total,
            ..Default::default()
        },
    );
    let (arn, exec, sm, typ) = (
        spec.map_run_arn.clone(),
        parent_arn.to_string(),
        parent.state_machine_arn.clone(),
        spec.execution_type.clone(),
    );
    let counts_text = (
        serde_json::to_string(&fresh.0).unwrap_or_default(),
        serde_json::to_string(&fresh.1).unwrap_or_default(),
    );
    let s = settings;
    // The row, or the stored settings of a run found again.
    let stored = states
        .store
        .write(move |c| {
            c.execute(
                "INSERT OR IGNORE INTO sfn_map_runs
                 (arn, execution_arn, state_machine_arn, status, start_ms, max_concurrency,
                  tolerated_percentage, tolerated_count, execution_type, item_counts, execution_counts)
                 VALUES (?1, ?2, ?3, 'RUNNING', ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    arn,
                    exec,
                    sm,
                    start_ms,
                    s.max_concurrency as i64,
                    s.tolerated_percentage,
                    s.tolerated_count.map(|c| c as i64),
                    typ,
                    counts_text.0,
                    counts_text.1
                ],
            )?;
            if parent_redrives > 0 {
                // A redriven parent runs its Map Run again.
                c.execute(
                    "UPDATE sfn_map_runs SET status = 'RUNNING', stop_ms = NULL WHERE arn = ?1",
                    params![arn],
                )?;
            }
            c.query_row(
                "SELECT max_concurrency, tolerated_percentage, tolerated_count FROM sfn_map_runs WHERE arn = ?1",
                params![arn],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Option<f64>>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                    ))
                },
            )
        })
        .await;
    match stored {
        Ok((mc, pct, count)) => {
            settings = Settings {
                max_concurrency: mc.max(0) as usize,
                tolerated_percentage: pct,
                tolerated_count: count.map(|c| c as f64),
            };
        }
        Err(e) => {
            tracing::error!(map_run = %spec.map_run_arn, "cannot store the map run: {e}");
            return None;
        }
    }
    let prefix = spec
        .map_run_arn
        .split(":mapRun:")
        .next()
        .unwrap_or_default();
    let run = Arc::new(LiveMapRun {
        states: states.clone(),
        arn: spec.map_run_arn.clone(),
        execution_arn: parent_arn.to_string(),
        region: region.to_string(),
        child_machine_name: machine_label.to_string(),
        child_machine_arn: format!("{prefix}:stateMachine:{machine_label}"),
        role_arn: snapshot.role_arn.clone(),
        parent_machine: snapshot,
        definition: spec.definition.clone(),
        machine,
        standard: spec.execution_type != "EXPRESS",
        settings: Mutex::new(settings),
        version: AtomicU64::new(0),
        changed: tokio::sync::Notify::new(),
        counts: Mutex::new(fresh),
        ended: std::sync::atomic::AtomicBool::new(false),
        parent_redrives,
    });
    states
        .map_runs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(run.arn.clone(), run.clone());
    parent_busy.fetch_add(1, Ordering::SeqCst);
    Some(Arc::new(MapRunHandle { run, parent_busy }))
}

// --------------------------------------------------------------------------
// the API
// --------------------------------------------------------------------------

/// A stored Map Run row.
struct RunRow {
    arn: String,
    execution_arn: String,
    state_machine_arn: String,
    status: String,
    start_ms: i64,
    stop_ms: Option<i64>,
    max_concurrency: i64,
    tolerated_percentage: Option<f64>,
    tolerated_count: Option<i64>,
    item_counts: Counts,
    execution_counts: Counts,
}

const RUN_COLUMNS: &str = "arn, execution_arn, state_machine_arn, status, start_ms, stop_ms, max_concurrency, tolerated_percentage, tolerated_count, item_counts, execution_counts";

fn run_from_sql(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    let items: String = r.get(9)?;
    let execs: String = r.get(10)?;
    Ok(RunRow {
        arn: r.get(0)?,
        execution_arn: r.get(1)?,
        state_machine_arn: r.get(2)?,
        status: r.get(3)?,
        start_ms: r.get(4)?,
        stop_ms: r.get(5)?,
        max_concurrency: r.get(6)?,
        tolerated_percentage: r.get(7)?,
        tolerated_count: r.get(8)?,
        item_counts: serde_json::from_str(&items).unwrap_or_default(),
        execution_counts: serde_json::from_str(&execs).unwrap_or_default(),
    })
}

impl States {
    fn load_map_run(&self, arn: &str) -> AwsResult<Option<RunRow>> {
        let arn = arn.to_string();
        Ok(self.store.read(move |c| {
            c.query_row(
                &format!("SELECT {RUN_COLUMNS} FROM sfn_map_runs WHERE arn = ?1"),
                params![arn],
                run_from_sql,
            )
            .optional()
        })?)
    }

    fn live_map_run(&self, arn: &str) -> Option<Arc<LiveMapRun>> {
        self.map_runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(arn)
            .cloned()
    }

    /// DescribeMapRun: status, dates, settings and the item and child
    /// execution counts (live while the run goes on in this process).
    ///
    /// Errors: `InvalidArn`; `ResourceNotFound`.
    pub(crate) fn describe_map_run(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let arn = req_str(req, "mapRunArn")?;
        check_map_run_arn(arn)?;
        let row = self.load_map_run(arn)?.ok_or_else(|| not_found(arn))?;
        let (status, max_conc, pct, count, items, execs) = match self.live_map_run(arn) {
            Some(live) if row.status == "RUNNING" => {
                let s = live.settings();
                let (items, execs) = live.counts();
                (
                    row.status.clone(),
                    s.max_concurrency as i64,
                    s.tolerated_percentage,
                    s.tolerated_count.map(|c| c as i64),
                    items,
                    execs,
                )
            }
            _ => (
                row.status.clone(),
                row.max_concurrency,
                row.tolerated_percentage,
                row.tolerated_count,
                row.item_counts,
                row.execution_counts,
            ),
        };
        let mut out = json!({
            "mapRunArn": row.arn,
            "executionArn": row.execution_arn,
            "status": status,
            "startDate": epoch(row.start_ms),
            "maxConcurrency": max_conc,
            "toleratedFailurePercentage": pct.unwrap_or(0.0),
            "toleratedFailureCount": count.unwrap_or(0),
            "itemCounts": items.to_json(),
            "executionCounts": execs.to_json(),
            "redriveCount": 0,
        });
        if let Some(s) = row.stop_ms {
            out["stopDate"] = epoch(s);
        }
        Ok(out)
    }

    /// ListMapRuns of an execution, oldest first, in pages (`maxResults`
    /// 1-1000, default 100).
    ///
    /// Errors: `InvalidArn`, `ExecutionDoesNotExist`, `InvalidToken`,
    /// `ValidationException`.
    pub(crate) fn list_map_runs(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let arn = req_str(req, "executionArn")?;
        names::check_execution_arn(arn)?;
        if self.load_full_row(arn)?.is_none() {
            return Err(err(
                "ExecutionDoesNotExist",
                format!("Execution Does Not Exist: '{arn}'"),
            ));
        }
        let start = parse_page_token(opt_str(req, "nextToken")?)?;
        let size = page_size(req)?;
        let exec = arn.to_string();
        let rows: Vec<RunRow> = self.store.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM sfn_map_runs WHERE execution_arn = ?1
                 ORDER BY start_ms, arn LIMIT ?2 OFFSET ?3"
            ))?;
            let rows =
                st.query_map(params![exec, (size + 1) as i64, start as i64], run_from_sql)?;
            rows.collect()
        })?;
        let more = rows.len() > size;
        let runs: Vec<Value> = rows
            .iter()
            .take(size)
            .map(|r| {
                let mut v = json!({
                    "executionArn": r.execution_arn,
                    "mapRunArn": r.arn,
                    "stateMachineArn": r.state_machine_arn,
                    "startDate": epoch(r.start_ms),
                });
                if let Some(s) = r.stop_ms {
                    v["stopDate"] = epoch(s);
                }
                v
            })
            .collect();
        let mut out = json!({"mapRuns": runs});
        if more {
            out["nextToken"] = Value::from(page_token(start + size));
        }
        Ok(out)
    }

    /// UpdateMapRun: changes a running Map Run's MaxConcurrency (0 = up to
    /// 10,000 children at once) and tolerated failure thresholds; the run
    /// applies them to the children it starts from then on and to its
    /// failure decision.
    ///
    /// Errors: `InvalidArn`; `ResourceNotFound`; `ValidationException` (a
    /// value out of the model's range, none of the three settings given, or
    /// a Map Run that already ended).
    pub(crate) async fn update_map_run(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let arn = req_str(req, "mapRunArn")?;
        let max_conc = opt_int(req, "maxConcurrency", 0, i32::MAX as i64)?;
        let count = opt_int(req, "toleratedFailureCount", 0, i64::MAX)?;
        let pct = match req.get("toleratedFailurePercentage") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let p = v.as_f64().ok_or_else(|| {
                    AwsError::new(
                        400,
                        "SerializationException",
                        "The field 'toleratedFailurePercentage' must be a number.",
                    )
                })?;
                if !(0.0..=100.0).contains(&p) {
                    return Err(names::validation(
                        &p.to_string(),
                        "toleratedFailurePercentage",
                        if p < 0.0 {
                            "Member must have value greater than or equal to 0"
                        } else {
                            "Member must have value less than or equal to 100"
                        },
                    ));
                }
                Some(p)
            }
        };
        check_map_run_arn(arn)?;
        if max_conc.is_none() && count.is_none() && pct.is_none() {
            return Err(AwsError::validation(
                "At least one of maxConcurrency, toleratedFailurePercentage or toleratedFailureCount must be provided.",
            ));
        }
        let row = self.load_map_run(arn)?.ok_or_else(|| not_found(arn))?;
        if row.status != "RUNNING" {
            return Err(AwsError::validation(format!(
                "The Map Run '{arn}' is not running (status {}); only a running Map Run can be updated.",
                row.status
            )));
        }
        let (a, mc) = (arn.to_string(), max_conc);
        self.store
            .write(move |c| {
                c.execute(
                    "UPDATE sfn_map_runs SET
                       max_concurrency = COALESCE(?1, max_concurrency),
                       tolerated_percentage = COALESCE(?2, tolerated_percentage),
                       tolerated_count = COALESCE(?3, tolerated_count)
                     WHERE arn = ?4",
                    params![mc, pct, count, a],
                )
            })
            .await?;
        if let Some(live) = self.live_map_run(arn) {
            {
                let mut s = live.settings.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(m) = max_conc {
                    s.max_concurrency = m as usize;
                }
                if let Some(p) = pct {
                    s.tolerated_percentage = Some(p);
                }
                if let Some(c) = count {
                    s.tolerated_count = Some(c as f64);
                }
            }
            live.version.fetch_add(1, Ordering::SeqCst);
            live.changed.notify_waiters();
        }
        Ok(json!({}))
    }

    /// ListExecutions with a `mapRunArn`: the run's STANDARD child
    /// executions, newest first, with `mapRunArn` and `itemCount`.
    ///
    /// Errors: `InvalidArn`; `ResourceNotFound`; `ValidationException`
    /// (both `stateMachineArn` and `mapRunArn`, or a bad `statusFilter`);
    /// `InvalidToken`.
    pub(crate) fn list_map_run_executions(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let arn = req_str(req, "mapRunArn")?;
        if opt_str(req, "stateMachineArn")?.is_some() {
            return Err(AwsError::validation(
                "Must provide a StateMachine ARN or MapRun ARN, not both",
            ));
        }
        check_map_run_arn(arn)?;
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
        if self.load_map_run(arn)?.is_none() {
            return Err(not_found(arn));
        }
        let start = parse_page_token(opt_str(req, "nextToken")?)?;
        let size = page_size(req)?;
        let run = arn.to_string();
        type Item = (String, String, String, String, i64, Option<i64>, i64);
        let rows: Vec<Item> = self.store.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT e.arn, e.state_machine_arn, e.name, e.status, e.start_ms, e.stop_ms, c.item_count
                 FROM sfn_map_run_children c JOIN sfn_executions e ON e.arn = c.execution_arn
                 WHERE c.map_run_arn = ?1 AND (?2 IS NULL OR e.status = ?2)
                 ORDER BY e.start_ms DESC, c.idx DESC LIMIT ?3 OFFSET ?4",
            )?;
            let rows = st.query_map(
                params![run, status, (size + 1) as i64, start as i64],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                },
            )?;
            rows.collect()
        })?;
        let more = rows.len() > size;
        let items: Vec<Value> = rows
            .into_iter()
            .take(size)
            .map(|(e, sm, name, status, start_ms, stop_ms, n)| {
                let mut v = json!({
                    "executionArn": e,
                    "stateMachineArn": sm,
                    "name": name,
                    "status": status,
                    "startDate": epoch(start_ms),
                    "mapRunArn": arn,
                    "itemCount": n,
                });
                if let Some(s) = stop_ms {
                    v["stopDate"] = epoch(s);
                }
                self.list_item_redrive(&e, &mut v);
                v
            })
            .collect();
        let mut out = json!({"executions": items});
        if more {
            out["nextToken"] = Value::from(page_token(start + size));
        }
        Ok(out)
    }

    /// The Map Run that started the execution `arn`, if it is a child
    /// execution (DescribeExecution's `mapRunArn`).
    pub(crate) fn map_run_of(&self, arn: &str) -> Option<String> {
        let arn = arn.to_string();
        self.store
            .read(move |c| {
                c.query_row(
                    "SELECT map_run_arn FROM sfn_map_run_children WHERE execution_arn = ?1",
                    params![arn],
                    |r| r.get(0),
                )
                .optional()
            })
            .ok()
            .flatten()
    }

    /// Whether the execution `arn` has Map Runs going on in this process.
    pub(crate) fn has_live_map_runs(&self, arn: &str) -> bool {
        self.map_runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .any(|r| r.execution_arn == arn)
    }

    /// Aborts the RUNNING Map Runs of the execution `arn` (it was stopped
    /// or ended without finishing them): each becomes ABORTED with its
    /// running children counted as aborted, and its STANDARD children
    /// still running are stopped.
    pub(crate) async fn abort_map_runs(&self, arn: &str) {
        let exec = arn.to_string();
        let runs: Vec<String> = self
            .store
            .read(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT arn FROM sfn_map_runs WHERE execution_arn = ?1 AND status = 'RUNNING'",
                )?;
                let rows = st.query_map(params![exec], |r| r.get(0))?;
                rows.collect()
            })
            .unwrap_or_default();
        for run_arn in runs {
            let live = self
                .map_runs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&run_arn);
            if let Some(l) = &live {
                l.ended.store(true, Ordering::SeqCst);
            }
            for child in running_children_of(self, &run_arn) {
                stop_child(self, &child).await;
            }
            let counts = live.as_ref().map(|l| {
                let mut c = l.counts.lock().unwrap_or_else(|p| p.into_inner());
                c.0.abort_running();
                c.1.abort_running();
                (
                    serde_json::to_string(&c.0).unwrap_or_default(),
                    serde_json::to_string(&c.1).unwrap_or_default(),
                )
            });
            let stop_ms = stratus_core::time::now_ms();
            let a = run_arn.clone();
            let r = self
                .store
                .write(move |c| {
                    c.execute(
                        "UPDATE sfn_map_runs SET status = 'ABORTED', stop_ms = ?1,
                           item_counts = COALESCE(?2, item_counts),
                           execution_counts = COALESCE(?3, execution_counts)
                         WHERE arn = ?4 AND status = 'RUNNING'",
                        params![
                            stop_ms,
                            counts.as_ref().map(|c| c.0.clone()),
                            counts.as_ref().map(|c| c.1.clone()),
                            a
                        ],
                    )
                })
                .await;
            if let Err(e) = r {
                tracing::error!(map_run = %run_arn, "cannot abort the map run: {e}");
            }
        }
    }
}

/// Live Map Runs by ARN (the service's `map_runs` field).
pub(crate) type LiveMapRuns = Mutex<HashMap<String, Arc<LiveMapRun>>>;

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str =
        "arn:aws:states:us-east-1:123456789012:mapRun:sm/Proc:0a1b2c3d-0000-4000-8000-000000000000";

    #[test]
    fn child_names_are_stable_and_distinct() {
        assert_eq!(child_name(RUN, 7), child_name(RUN, 7));
        assert_ne!(child_name(RUN, 7), child_name(RUN, 8));
        assert_eq!(child_name(RUN, 0).len(), 36);
        assert!(names::check_name(&child_name(RUN, 123_456)).is_ok());
        let arn = child_execution_arn(RUN, 3);
        assert!(arn.starts_with("arn:aws:states:us-east-1:123456789012:execution:sm/Proc:"));
        assert!(names::check_execution_arn(&arn).is_ok());
    }

    #[test]
    fn map_run_arns_are_checked() {
        assert!(check_map_run_arn(RUN).is_ok());
        for bad in [
            "nope",
            "arn:aws:states:us-east-1:123456789012:execution:sm:x",
            "arn:aws:states:us-east-1:123456789012:mapRun:sm:x",
        ] {
            assert_eq!(check_map_run_arn(bad).unwrap_err().code, "InvalidArn");
        }
    }

    async fn run_machine(
        states: &Arc<States>,
        execution_type: &str,
        items: usize,
    ) -> (String, String) {
        use crate::test_support::call;
        let def = json!({"StartAt": "M", "States": {"M": {
            "Type": "Map", "ItemsPath": "$.items", "Label": "Each",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": execution_type},
                "StartAt": "P",
                "States": {"P": {"Type": "Pass", "Parameters": {"v.$": "$.v"}, "End": true}}},
            "End": true}}});
        let sm = call(
            states,
            "CreateStateMachine",
            json!({"name": format!("m-{execution_type}"), "definition": def.to_string(),
                   "roleArn": "arn:aws:iam::123456789012:role/r"}),
        )
        .await;
        let input: Vec<Value> = (0..items).map(|v| json!({"v": v})).collect();
        let ex = call(
            states,
            "StartExecution",
            json!({"stateMachineArn": sm["stateMachineArn"],
                   "input": json!({"items": input}).to_string()}),
        )
        .await;
        let arn = ex["executionArn"].as_str().unwrap().to_string();
        let row = states.wait_for_end(&arn).await.unwrap();
        assert_eq!(row.status, "SUCCEEDED", "{:?}", row.cause);
        let runs = call(states, "ListMapRuns", json!({"executionArn": arn})).await;
        let run = runs["mapRuns"][0]["mapRunArn"]
            .as_str()
            .unwrap()
            .to_string();
        (arn, run)
    }

    #[tokio::test]
    async fn standard_children_are_listed_executions_of_the_run() {
        use crate::test_support::{call, service};
        let (_dir, states) = service();
        let (arn, run) = run_machine(&states, "STANDARD", 3).await;
        let out = states.wait_for_end(&arn).await.unwrap().output.unwrap();
        assert_eq!(out, r#"[{"v":0},{"v":1},{"v":2}]"#);
        let mr = call(&states, "DescribeMapRun", json!({"mapRunArn": run})).await;
        assert_eq!(mr["status"], "SUCCEEDED");
        assert_eq!(mr["executionCounts"]["succeeded"], 3);
        assert_eq!(mr["itemCounts"]["total"], 3);
        let kids = call(&states, "ListExecutions", json!({"mapRunArn": run})).await;
        let kids = kids["executions"].as_array().unwrap().clone();
        assert_eq!(kids.len(), 3);
        for k in &kids {
            let a = k["executionArn"].as_str().unwrap();
            assert!(a.contains(":execution:m-STANDARD/Each:"), "{a}");
            let d = call(&states, "DescribeExecution", json!({"executionArn": a})).await;
            assert_eq!(d["mapRunArn"], run.as_str());
        }
    }

    #[tokio::test]
    async fn express_children_are_counted_not_listed() {
        use crate::test_support::{call, service};
        let (_dir, states) = service();
        let (_arn, run) = run_machine(&states, "EXPRESS", 25).await;
        let mr = call(&states, "DescribeMapRun", json!({"mapRunArn": run})).await;
        assert_eq!(mr["executionCounts"]["succeeded"], 25);
        assert_eq!(mr["executionCounts"]["pending"], 0);
        let kids = call(&states, "ListExecutions", json!({"mapRunArn": run})).await;
        assert_eq!(kids["executions"], json!([]));
        let err = states
            .call(
                "us-east-1",
                "UpdateMapRun",
                bytes::Bytes::from(json!({"mapRunArn": run, "maxConcurrency": 1}).to_string()),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code, "ValidationException");
    }

    #[test]
    fn counts_follow_the_model() {
        let mut c = Counts {
            total: 10,
            ..Default::default()
        };
        c.running = 3;
        c.end(1, "SUCCEEDED");
        c.end(1, "TIMED_OUT");
        let v = c.to_json();
        assert_eq!(v["pending"], 7);
        assert_eq!(v["running"], 1);
        assert_eq!(v["succeeded"], 1);
        assert_eq!(v["timedOut"], 1);
        c.abort_running();
        assert_eq!(c.to_json()["aborted"], 1);
    }
}
