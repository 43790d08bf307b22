//! Step Functions execution logging ("Using CloudWatch Logs to log
//! execution history in Step Functions", Step Functions Developer Guide).
//!
//! A state machine's `loggingConfiguration` names a log group
//! (`destinations[0].cloudWatchLogsLogGroup.logGroupArn`,
//! `arn:aws:logs:<region>:<account>:log-group:<name>:*`), a `level` and
//! `includeExecutionData`. Each history event the level admits becomes one
//! log event whose message is a JSON record:
//!
//! ```json
//! {"id": "1", "type": "ExecutionStarted", "details": {...},
//!  "previous_event_id": "0", "event_timestamp": "1700000000000",
//!  "execution_arn": "arn:aws:states:...", "redrive_count": "0"}
//! ```
//!
//! Levels ("Log levels" table): `ALL` every event; `ERROR` the failure,
//! time-out and abort events plus `FailStateEntered` (never `...Started`,
//! `...Succeeded`, `ExecutionSucceeded`); `FATAL` only `ExecutionFailed`,
//! `ExecutionAborted` and `ExecutionTimedOut`; `OFF` nothing. With
//! `includeExecutionData` false, `input` and `output` (and their
//! `inputDetails` / `outputDetails`) are left out of `details`.
//!
//! Records go to the stream `states/<state machine>/<YYYY-MM-DD-HH-MM of the
//! execution start>/<8 hex digits of the execution>`. Delivery is
//! best-effort, as AWS's is: records are queued to the store's log writer
//! and committed within milliseconds; a log group that does not exist
//! receives nothing.

use std::sync::Arc;

use serde_json::{Map, Value};
use stratus_store::{LogEvent, Store, rusqlite::OptionalExtension};

/// Which events a logging level admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    All,
    Error,
    Fatal,
}

impl Level {
    /// The level of a `loggingConfiguration.level` value; `None` for `OFF`
    /// (and anything unknown).
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "ALL" => Some(Level::All),
            "ERROR" => Some(Level::Error),
            "FATAL" => Some(Level::Fatal),
            _ => None,
        }
    }

    /// Whether a history event of `event_type` is logged at this level.
    pub fn admits(self, event_type: &str) -> bool {
        match self {
            Level::All => true,
            Level::Fatal => matches!(
                event_type,
                "ExecutionFailed" | "ExecutionAborted" | "ExecutionTimedOut"
            ),
            Level::Error => {
                event_type == "FailStateEntered"
                    || event_type.ends_with("Failed")
                    || event_type.ends_with("TimedOut")
                    || event_type.ends_with("Aborted")
            }
        }
    }
}

/// Delivers one execution's history events to its log group.
pub struct ExecutionLogger {
    store: Store,
    region: String,
    group: String,
    stream: String,
    execution_arn: String,
    level: Level,
    include_data: bool,
    redrive_count: std::sync::atomic::AtomicU32,
}

/// FNV-1a: a stable 32-bit digest for stream names.
fn fnv(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// `(region, log group name)` of a log group ARN.
fn parse_group_arn(arn: &str) -> Option<(String, String)> {
    let rest = arn.strip_prefix("arn:")?;
    let mut parts = rest.splitn(5, ':');
    let (_partition, service, region, _account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if service != "logs" {
        return None;
    }
    let name = resource.strip_prefix("log-group:")?;
    let name = name.strip_suffix(":*").unwrap_or(name);
    if name.is_empty() {
        return None;
    }
    Some((region.to_string(), name.to_string()))
}

impl ExecutionLogger {
    /// The logger of an execution, or `None` when nothing is to be logged:
    /// level `OFF` (the default), no destination, or a destination log
    /// group that does not exist. `logging_configuration` is the state
    /// machine's stored `loggingConfiguration`; `start_ms` the execution's
    /// start (ms since the epoch).
    pub fn for_execution(
        store: &Store,
        logging_configuration: &Value,
        state_machine_name: &str,
        execution_arn: &str,
        start_ms: i64,
    ) -> Option<Arc<ExecutionLogger>> {
        let level = Level::parse(logging_configuration.get("level")?.as_str()?)?;
        let arn = logging_configuration
            .get("destinations")?
            .get(0)?
            .get("cloudWatchLogsLogGroup")?
            .get("logGroupArn")?
            .as_str()?;
        let (region, group) = parse_group_arn(arn)?;
        let exists = store
            .read(|c| {
                c.prepare_cached("SELECT 1 FROM log_groups WHERE region = ?1 AND name = ?2")?
                    .query_row([&region, &group], |_| Ok(()))
                    .optional()
            })
            .ok()
            .flatten()
            .is_some();
        if !exists {
            tracing::warn!(
                execution = %execution_arn,
                "log group {group} ({region}) does not exist: the execution is not logged"
            );
            return None;
        }
        let minute = stratus_core::time::iso_ms(start_ms)
            .get(..16)
            .unwrap_or_default()
            .replace(['T', ':'], "-");
        Some(Arc::new(ExecutionLogger {
            store: store.clone(),
            region,
            group,
            stream: format!(
                "states/{state_machine_name}/{minute}/{:08x}",
                fnv(execution_arn)
            ),
            execution_arn: execution_arn.to_string(),
            level,
            include_data: logging_configuration
                .get("includeExecutionData")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            redrive_count: std::sync::atomic::AtomicU32::new(0),
        }))
    }

    /// Sets the `redrive_count` of the records logged from now on: how many
    /// times the execution was redriven (RedriveExecution).
    pub fn set_redrive_count(&self, count: u32) {
        self.redrive_count
            .store(count, std::sync::atomic::Ordering::Relaxed);
    }

    /// The log stream records go to.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The JSON record of one history event (see the module doc), or
    /// `None` when the level does not admit it.
    pub fn record(
        &self,
        id: u64,
        event_type: &str,
        previous_id: u64,
        timestamp_ms: i64,
        details: &Value,
    ) -> Option<String> {
        if !self.level.admits(event_type) {
            return None;
        }
        let details = if self.include_data {
            details.clone()
        } else {
            let mut d: Map<String, Value> = details.as_object().cloned().unwrap_or_default();
            for k in ["input", "output", "inputDetails", "outputDetails"] {
                d.remove(k);
            }
            Value::Object(d)
        };
        let mut rec = Map::new();
        rec.insert("id".into(), Value::from(id.to_string()));
        rec.insert("type".into(), Value::from(event_type));
        rec.insert("details".into(), details);
        rec.insert(
            "previous_event_id".into(),
            Value::from(previous_id.to_string()),
        );
        rec.insert(
            "event_timestamp".into(),
            Value::from(timestamp_ms.to_string()),
        );
        rec.insert(
            "execution_arn".into(),
            Value::from(self.execution_arn.clone()),
        );
        rec.insert(
            "redrive_count".into(),
            Value::from(
                self.redrive_count
                    .load(std::sync::atomic::Ordering::Relaxed)
                    .to_string(),
            ),
        );
        Some(Value::Object(rec).to_string())
    }

    /// Queues the record of one history event (if the level admits it) for
    /// the store's log writer; never blocks.
    pub fn log(
        &self,
        id: u64,
        event_type: &str,
        previous_id: u64,
        timestamp_ms: i64,
        details: &Value,
    ) {
        if let Some(message) = self.record(id, event_type, previous_id, timestamp_ms, details) {
            self.store.append_log(LogEvent {
                region: self.region.clone(),
                log_group: self.group.clone(),
                log_stream: self.stream.clone(),
                timestamp: timestamp_ms,
                message,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The "Log levels" table of the Step Functions Developer Guide.
    #[test]
    fn levels_follow_the_table() {
        for t in ["ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"] {
            assert!(Level::Fatal.admits(t));
            assert!(Level::Error.admits(t));
        }
        for t in [
            "FailStateEntered",
            "LambdaFunctionFailed",
            "LambdaFunctionScheduleFailed",
            "LambdaFunctionStartFailed",
            "LambdaFunctionTimedOut",
            "MapIterationAborted",
            "MapStateFailed",
            "ParallelStateAborted",
            "TaskFailed",
            "TaskStartFailed",
            "TaskStateAborted",
            "TaskSubmitFailed",
            "TaskTimedOut",
            "WaitStateAborted",
        ] {
            assert!(Level::Error.admits(t), "{t}");
            assert!(!Level::Fatal.admits(t), "{t}");
        }
        for t in [
            "ExecutionStarted",
            "ExecutionSucceeded",
            "PassStateEntered",
            "TaskScheduled",
            "TaskSucceeded",
            "MapIterationSucceeded",
            "ChoiceStateExited",
        ] {
            assert!(!Level::Error.admits(t), "{t}");
            assert!(Level::All.admits(t), "{t}");
        }
        assert_eq!(Level::parse("OFF"), None);
    }

    #[test]
    fn group_arns() {
        assert_eq!(
            parse_group_arn(
                "arn:aws:logs:us-east-1:123456789012:log-group:/aws/vendedlogs/states/x:*"
            ),
            Some(("us-east-1".into(), "/aws/vendedlogs/states/x".into()))
        );
        assert_eq!(parse_group_arn("arn:aws:sqs:us-east-1:1:log-group:x"), None);
    }

    #[test]
    fn records_drop_data_unless_included() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .read(|c| {
                c.execute(
                    "INSERT INTO log_groups (region, name, creation_time) VALUES ('us-east-1', 'g', 0)",
                    [],
                )
            })
            .unwrap();
        let cfg = serde_json::json!({
            "level": "ALL",
            "includeExecutionData": false,
            "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": "arn:aws:logs:us-east-1:123456789012:log-group:g:*"}}]
        });
        let arn = "arn:aws:states:us-east-1:123456789012:express:m:e";
        let l = ExecutionLogger::for_execution(&store, &cfg, "m", arn, 1_614_834_367_089).unwrap();
        assert_eq!(
            l.stream(),
            format!("states/m/2021-03-04-05-06/{:08x}", fnv(arn))
        );
        let details = serde_json::json!({"input": "{}", "inputDetails": {"truncated": false}, "roleArn": "r"});
        let rec: Value =
            serde_json::from_str(&l.record(1, "ExecutionStarted", 0, 5, &details).unwrap())
                .unwrap();
        assert_eq!(rec["id"], "1");
        assert_eq!(rec["previous_event_id"], "0");
        assert_eq!(rec["event_timestamp"], "5");
        assert_eq!(rec["execution_arn"], arn);
        assert_eq!(rec["redrive_count"], "0");
        assert_eq!(rec["details"], serde_json::json!({"roleArn": "r"}));
        let missing = serde_json::json!({
            "level": "ALL",
            "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": "arn:aws:logs:us-east-1:123456789012:log-group:nope:*"}}]
        });
        assert!(ExecutionLogger::for_execution(&store, &missing, "m", arn, 0).is_none());
        let off = serde_json::json!({"level": "OFF"});
        assert!(ExecutionLogger::for_execution(&store, &off, "m", arn, 0).is_none());
    }
}
