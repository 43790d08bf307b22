//! RedriveExecution: restarting a Standard execution that FAILED, TIMED_OUT
//! or was ABORTED from its unsuccessful steps (API reference
//! "RedriveExecution"; Developer Guide "Redriving executions").
//!
//! How a redrive runs: the execution keeps its history and journal. The
//! redrive commits, in one transaction, the `ExecutionRedriven` event
//! (`executionRedrivenEventDetails.redriveCount`), the status RUNNING and
//! the redrive count and date (table `sfn_redrives`); then the engine is
//! replayed from the start against the journal, as after a restart. Task
//! results recorded by earlier runs answer the replay, so successful steps
//! do not run again; a Task state whose unhandled failure an earlier run
//! recorded is run again with fresh retry counts (the engine's
//! [`stratus_asl::Host::task_generation`]); tasks that were still running
//! when an execution was aborted or timed out have no recorded result and
//! simply run. The earlier run's final event and the `ExecutionRedriven`
//! event are not matched by the replay, so a new end is a new event, with
//! an id after the existing ones. The state machine's TimeoutSeconds counts
//! again from the redrive.
//!
//! Redrivability (`redriveStatus` / `redriveStatusReason` of
//! DescribeExecution, and the `ExecutionNotRedrivable` error): the
//! execution is STANDARD, not RUNNING or SUCCEEDED, its state machine still
//! exists, its history has fewer than 24,999 events, it started less than
//! a year ago and ended less than 14 days ago.

use std::time::Duration;

use serde_json::{Map, Value, json};
use stratus_core::{AwsError, AwsResult};
use stratus_store::rusqlite::{OptionalExtension, params};

use crate::executions::FullRow;
use crate::names::{self, err};
use crate::{States, epoch, opt_str, req_str};

/// The redrive table: one row per redriven execution.
pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS sfn_redrives (
    execution_arn TEXT PRIMARY KEY,
    redrive_count INTEGER NOT NULL,
    redrive_ms    INTEGER NOT NULL,
    client_tokens TEXT NOT NULL DEFAULT '[]'
);
"#;

/// How long after its end an execution can be redriven: 14 days, in ms.
pub const REDRIVABLE_PERIOD_MS: i64 = 14 * 24 * 3600 * 1000;

/// The longest an execution may be open: one year, in ms (quota "Maximum
/// execution time" of Standard workflows).
pub const MAX_OPEN_MS: i64 = 365 * 24 * 3600 * 1000;

/// A redrive needs room for `ExecutionRedriven` and at least one more event:
/// the history must hold fewer than 24,999 events.
pub const MAX_EVENTS_FOR_REDRIVE: u64 = 24_999;

/// AWS answers idempotently for the last 10 client tokens of an execution...
pub const CLIENT_TOKENS_KEPT: usize = 10;

/// ...each for 15 minutes after its first use (ms).
pub const CLIENT_TOKEN_TTL_MS: i64 = 15 * 60 * 1000;

/// An execution's redrives so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedriveInfo {
    /// How many times it was redriven (at least 1).
    pub count: u32,
    /// When it was last redriven (ms since the epoch).
    pub redrive_ms: i64,
}

/// What a RedriveExecution transaction decided.
enum Decision {
    /// Redriven now, or earlier with the same client token: the redrive date.
    Redriven(i64, bool),
    NotRedrivable(String),
    Missing,
}

/// Why an execution cannot be redriven now, if it cannot: the reasons
/// DescribeExecution's `redriveStatusReason` documents.
fn not_redrivable_reason(
    machine_type: &str,
    status: &str,
    start_ms: i64,
    stop_ms: Option<i64>,
    events: u64,
    machine_exists: bool,
    now: i64,
) -> Option<String> {
    if machine_type != "STANDARD" {
        return Some("Execution of an EXPRESS state machine cannot be redriven".into());
    }
    if !machine_exists {
        return Some("State machine is in DELETING status".into());
    }
    match status {
        "RUNNING" | "SUCCEEDED" => {
            return Some(format!("Execution is {status} and cannot be redriven"));
        }
        "FAILED" | "TIMED_OUT" | "ABORTED" => {}
        other => return Some(format!("Execution is {other} and cannot be redriven")),
    }
    if events >= MAX_EVENTS_FOR_REDRIVE {
        return Some("Execution history event limit exceeded".into());
    }
    if now - start_ms > MAX_OPEN_MS {
        return Some("Execution has exceeded the max execution time".into());
    }
    if now - stop_ms.unwrap_or(start_ms) > REDRIVABLE_PERIOD_MS {
        return Some("Execution redrivable period exceeded".into());
    }
    None
}

/// Checks a `clientToken` against the model: 1-64 printable ASCII
/// characters without spaces (pattern `[!-~]+`).
///
/// Errors: `ValidationException`.
fn check_client_token(token: &str) -> AwsResult<()> {
    names::check_len(token, "clientToken", 1, 64)?;
    if !token.chars().all(|c| ('!'..='~').contains(&c)) {
        return Err(names::validation(
            token,
            "clientToken",
            "Member must satisfy regular expression pattern: [!-~]+",
        ));
    }
    Ok(())
}

/// The `redriveFilter` of ListExecutions: REDRIVEN or NOT_REDRIVEN.
///
/// Errors: `ValidationException` (another value).
pub(crate) fn redrive_filter(req: &Map<String, Value>) -> AwsResult<Option<String>> {
    match opt_str(req, "redriveFilter")? {
        None => Ok(None),
        Some(f @ ("REDRIVEN" | "NOT_REDRIVEN")) => Ok(Some(f.to_string())),
        Some(other) => Err(names::validation(
            other,
            "redriveFilter",
            "Member must satisfy enum value set: [REDRIVEN, NOT_REDRIVEN]",
        )),
    }
}

fn event_count(
    c: &stratus_store::rusqlite::Connection,
    arn: &str,
) -> stratus_store::rusqlite::Result<u64> {
    let n: i64 = c.query_row(
        "SELECT COUNT(*) FROM sfn_history WHERE execution_arn = ?1",
        params![arn],
        |r| r.get(0),
    )?;
    Ok(n as u64)
}

impl States {
    /// The redrives of an execution, if it was redriven.
    pub(crate) fn redrive_of(&self, arn: &str) -> Option<RedriveInfo> {
        let arn = arn.to_string();
        self.store
            .read(move |c| {
                c.query_row(
                    "SELECT redrive_count, redrive_ms FROM sfn_redrives
                     WHERE execution_arn = ?1 AND redrive_count > 0",
                    params![arn],
                    |r| {
                        Ok(RedriveInfo {
                            count: r.get::<_, i64>(0)? as u32,
                            redrive_ms: r.get(1)?,
                        })
                    },
                )
                .optional()
            })
            .ok()
            .flatten()
    }

    /// DescribeExecution's redrive members: `redriveCount`, `redriveDate`
    /// (once redriven), `redriveStatus` (REDRIVABLE / NOT_REDRIVABLE) and
    /// `redriveStatusReason` (when NOT_REDRIVABLE).
    pub(crate) fn describe_redrive(&self, row: &FullRow, out: &mut Value) {
        let info = self.redrive_of(&row.arn);
        out["redriveCount"] = json!(info.map_or(0, |i| i.count));
        if let Some(i) = info {
            out["redriveDate"] = epoch(i.redrive_ms);
        }
        match self.redrive_reason(row) {
            // A Map Run's child (its state machine is the parent's
            // ItemProcessor) is redriven with its parent.
            None if self.map_run_of(&row.arn).is_some() => {
                out["redriveStatus"] = json!("REDRIVABLE_BY_MAP_RUN")
            }
            None => out["redriveStatus"] = json!("REDRIVABLE"),
            Some(reason) => {
                out["redriveStatus"] = json!("NOT_REDRIVABLE");
                out["redriveStatusReason"] = json!(reason);
            }
        }
    }

    /// Why `row` cannot be redriven, if it cannot (see
    /// [`not_redrivable_reason`]); a Map Run's child has the state machine
    /// of its parent's ItemProcessor, which is not a stored one.
    fn redrive_reason(&self, row: &FullRow) -> Option<String> {
        let arn = row.arn.clone();
        let events = self.store.read(move |c| event_count(c, &arn)).unwrap_or(0);
        let exists = self.load_machine(&row.state_machine_arn).is_ok()
            || self.map_run_of(&row.arn).is_some();
        not_redrivable_reason(
            &row.machine_type,
            &row.status,
            row.start_ms,
            row.stop_ms,
            events,
            exists,
            stratus_core::time::now_ms(),
        )
    }

    /// ListExecutions' redrive members of one item: `redriveCount` and, once
    /// redriven, `redriveDate`.
    pub(crate) fn list_item_redrive(&self, arn: &str, item: &mut Value) {
        let info = self.redrive_of(arn);
        item["redriveCount"] = json!(info.map_or(0, |i| i.count));
        if let Some(i) = info {
            item["redriveDate"] = epoch(i.redrive_ms);
        }
    }

    /// RedriveExecution: restarts a FAILED, TIMED_OUT or ABORTED Standard
    /// execution from its unsuccessful steps (see the module docs). The
    /// redrive (event, status, count, date) is committed before the answer
    /// `{"redriveDate": <epoch seconds>}`. A `clientToken` used for one of
    /// the execution's last 10 redrives within the last 15 minutes answers
    /// with that redrive's date and redrives nothing.
    ///
    /// Errors: `ValidationException` (missing ARN, lengths, token pattern),
    /// `InvalidArn`, `ExecutionDoesNotExist`, `ExecutionNotRedrivable` (with
    /// the reason).
    pub(crate) async fn redrive_execution(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        self.redrive(req, false).await
    }

    /// RedriveExecution of a Map Run's STANDARD child by its redriven
    /// parent ([`crate::map_runs`]): the child's state machine is the
    /// parent's ItemProcessor, which exists while the parent does.
    ///
    /// Errors: as [`States::redrive_execution`].
    pub(crate) async fn redrive_map_run_child(&self, arn: &str) -> AwsResult<Value> {
        let mut req = Map::new();
        req.insert("executionArn".into(), Value::from(arn));
        self.redrive(&req, true).await
    }

    async fn redrive(&self, req: &Map<String, Value>, by_map_run: bool) -> AwsResult<Value> {
        let arn = req_str(req, "executionArn")?.to_string();
        names::check_len(&arn, "executionArn", 1, 256)?;
        let token = opt_str(req, "clientToken")?.map(str::to_string);
        if let Some(t) = &token {
            check_client_token(t)?;
        }
        names::check_execution_arn(&arn)?;
        let Some(row) = self.load_full_row(&arn)? else {
            return Err(err(
                "ExecutionDoesNotExist",
                format!("Execution Does Not Exist: '{arn}'"),
            ));
        };
        if !by_map_run && self.map_run_of(&arn).is_some() {
            let reason = self.redrive_reason(&row).unwrap_or_else(|| {
                "Execution is a child workflow execution of a Map Run and is redriven by redriving its parent workflow".into()
            });
            return Err(err(
                "ExecutionNotRedrivable",
                format!("Execution '{arn}' cannot be redriven: {reason}."),
            ));
        }
        let machine_exists = by_map_run || self.load_machine(&row.state_machine_arn).is_ok();
        let now = stratus_core::time::now_ms();
        let arn2 = arn.clone();
        let decision = self
            .store
            .write(move |c| {
                let row: Option<(String, String, i64, Option<i64>)> = c
                    .query_row(
                        "SELECT type, status, start_ms, stop_ms FROM sfn_executions WHERE arn = ?1",
                        params![arn2],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                    )
                    .optional()?;
                let Some((typ, status, start_ms, stop_ms)) = row else {
                    return Ok(Decision::Missing);
                };
                let stored: Option<(i64, String)> = c
                    .query_row(
                        "SELECT redrive_count, client_tokens FROM sfn_redrives WHERE execution_arn = ?1",
                        params![arn2],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                let count = stored.as_ref().map_or(0, |s| s.0);
                // [[token, first use (ms), redrive date (ms)], ...]
                let mut tokens: Vec<(String, i64, i64)> = stored
                    .as_ref()
                    .and_then(|s| serde_json::from_str(&s.1).ok())
                    .unwrap_or_default();
                if let Some(t) = &token
                    && let Some((_, _, date)) = tokens
                        .iter()
                        .find(|(k, first, _)| k == t && now - first <= CLIENT_TOKEN_TTL_MS)
                {
                    return Ok(Decision::Redriven(*date, false));
                }
                let events = event_count(c, &arn2)?;
                if let Some(reason) = not_redrivable_reason(
                    &typ,
                    &status,
                    start_ms,
                    stop_ms,
                    events,
                    machine_exists,
                    now,
                ) {
                    return Ok(Decision::NotRedrivable(reason));
                }
                let count = count + 1;
                if let Some(t) = &token {
                    tokens.push((t.clone(), now, now));
                    if tokens.len() > CLIENT_TOKENS_KEPT {
                        tokens.drain(..tokens.len() - CLIENT_TOKENS_KEPT);
                    }
                }
                let tokens = serde_json::to_string(&tokens).unwrap_or_else(|_| "[]".into());
                c.execute(
                    "UPDATE sfn_executions SET status = 'RUNNING', stop_ms = NULL, output = NULL,
                         error = NULL, cause = NULL, wake_ms = NULL
                     WHERE arn = ?1",
                    params![arn2],
                )?;
                c.execute(
                    "INSERT INTO sfn_redrives (execution_arn, redrive_count, redrive_ms, client_tokens)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (execution_arn) DO UPDATE SET
                         redrive_count = excluded.redrive_count,
                         redrive_ms = excluded.redrive_ms,
                         client_tokens = excluded.client_tokens",
                    params![arn2, count, now, tokens],
                )?;
                let last: i64 = c.query_row(
                    "SELECT COALESCE(MAX(id), 0) FROM sfn_history WHERE execution_arn = ?1",
                    params![arn2],
                    |r| r.get(0),
                )?;
                c.execute(
                    "INSERT INTO sfn_history (execution_arn, id, type, previous_id, timestamp_ms, details)
                     VALUES (?1, ?2, 'ExecutionRedriven', ?3, ?4, ?5)",
                    params![
                        arn2,
                        last + 1,
                        last,
                        now,
                        json!({"redriveCount": count}).to_string()
                    ],
                )?;
                Ok(Decision::Redriven(now, true))
            })
            .await?;
        match decision {
            Decision::Missing => Err(err(
                "ExecutionDoesNotExist",
                format!("Execution Does Not Exist: '{arn}'"),
            )),
            Decision::NotRedrivable(reason) => Err(err(
                "ExecutionNotRedrivable",
                format!("Execution '{arn}' cannot be redriven: {reason}."),
            )),
            Decision::Redriven(date, now_redriven) => {
                if now_redriven {
                    self.start_redriven(&arn).await?;
                }
                Ok(json!({"redriveDate": epoch(date)}))
            }
        }
    }

    /// Starts the engine of an execution just redriven (a replay). The
    /// engine of its earlier run may still be leaving (its end is stored
    /// before it lets go of the execution): that is waited for.
    async fn start_redriven(&self, arn: &str) -> AwsResult<()> {
        let me = self
            .arc()
            .ok_or_else(|| AwsError::service("the Step Functions service is shutting down"))?;
        for _ in 0..250 {
            if !me.is_running_here(arn) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        me.resume(arn);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{call, service, until};

    const DAY: i64 = 24 * 3600 * 1000;

    #[test]
    fn redrivability_follows_the_documented_reasons() {
        let now = 1_800_000_000_000;
        let ok = |status, start, stop, events| {
            not_redrivable_reason("STANDARD", status, start, stop, events, true, now)
        };
        for s in ["FAILED", "TIMED_OUT", "ABORTED"] {
            assert_eq!(ok(s, now - DAY, Some(now - DAY), 10), None, "{s}");
        }
        assert_eq!(
            ok("RUNNING", now, None, 3).as_deref(),
            Some("Execution is RUNNING and cannot be redriven")
        );
        assert_eq!(
            ok("SUCCEEDED", now, Some(now), 3).as_deref(),
            Some("Execution is SUCCEEDED and cannot be redriven")
        );
        assert_eq!(
            ok("FAILED", now - 15 * DAY, Some(now - 15 * DAY), 3).as_deref(),
            Some("Execution redrivable period exceeded")
        );
        assert_eq!(ok("FAILED", now - 20 * DAY, Some(now - 13 * DAY), 3), None);
        assert_eq!(
            ok("FAILED", now - 366 * DAY, Some(now - DAY), 3).as_deref(),
            Some("Execution has exceeded the max execution time")
        );
        assert_eq!(
            ok("FAILED", now, Some(now), 24_999).as_deref(),
            Some("Execution history event limit exceeded")
        );
        assert_eq!(ok("FAILED", now, Some(now), 24_998), None);
        assert_eq!(
            not_redrivable_reason("STANDARD", "FAILED", now, Some(now), 3, false, now).as_deref(),
            Some("State machine is in DELETING status")
        );
        assert!(not_redrivable_reason("EXPRESS", "FAILED", now, Some(now), 0, true, now).is_some());
    }

    #[test]
    fn client_tokens_follow_the_model() {
        assert!(check_client_token("abc-123_!~").is_ok());
        assert_eq!(
            check_client_token("has space").unwrap_err().code,
            "ValidationException"
        );
        assert_eq!(
            check_client_token("").unwrap_err().code,
            "ValidationException"
        );
        assert!(check_client_token(&"x".repeat(64)).is_ok());
        assert!(check_client_token(&"x".repeat(65)).is_err());
    }

    fn status(states: &States, arn: &str) -> String {
        states
            .load_full_row(arn)
            .ok()
            .flatten()
            .map(|r| r.status)
            .unwrap_or_default()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fail_state_fails_again_with_new_events_after_the_redriven_one() {
        let (_dir, states) = service();
        let sm = call(
            &states,
            "CreateStateMachine",
            json!({"name": "m", "roleArn": "arn:aws:iam::123456789012:role/r",
                   "definition": json!({"StartAt": "P", "States": {
                       "P": {"Type": "Pass", "Next": "F"},
                       "F": {"Type": "Fail", "Error": "E", "Cause": "c"}}}).to_string()}),
        )
        .await;
        let ex = call(
            &states,
            "StartExecution",
            json!({"stateMachineArn": sm["stateMachineArn"]}),
        )
        .await;
        let arn = ex["executionArn"].as_str().unwrap_or_default().to_string();
        until(|| status(&states, &arn) == "FAILED", 5_000, "the failure").await;
        let d = call(&states, "DescribeExecution", json!({"executionArn": arn})).await;
        assert_eq!(d["redriveStatus"], "REDRIVABLE");
        assert_eq!(d["redriveCount"], 0);
        let r = call(
            &states,
            "RedriveExecution",
            json!({"executionArn": arn, "clientToken": "t1"}),
        )
        .await;
        assert!(r["redriveDate"].as_f64().is_some());
        until(
            || status(&states, &arn) == "FAILED",
            5_000,
            "the second failure",
        )
        .await;
        let kinds: Vec<(u64, String, u64)> = states
            .load_events(&arn)
            .expect("events")
            .into_iter()
            .map(|e| (e.id, e.event_type, e.previous_id))
            .collect();
        let types: Vec<&str> = kinds.iter().map(|k| k.1.as_str()).collect();
        assert_eq!(
            types,
            [
                "ExecutionStarted",
                "PassStateEntered",
                "PassStateExited",
                "FailStateEntered",
                "ExecutionFailed",
                "ExecutionRedriven",
                "ExecutionFailed"
            ]
        );
        assert_eq!(
            kinds.iter().map(|k| k.0).collect::<Vec<_>>(),
            (1..=7).collect::<Vec<u64>>()
        );
        assert_eq!(kinds[5].2, 5, "ExecutionRedriven follows the earlier end");
        let d = call(&states, "DescribeExecution", json!({"executionArn": arn})).await;
        assert_eq!(d["redriveCount"], 1);
        assert_eq!(d["status"], "FAILED");
        // The same client token answers with the same date and redrives
        // nothing.
        let again = call(
            &states,
            "RedriveExecution",
            json!({"executionArn": arn, "clientToken": "t1"}),
        )
        .await;
        assert_eq!(again["redriveDate"], r["redriveDate"]);
        assert_eq!(status(&states, &arn), "FAILED");
        assert_eq!(states.load_events(&arn).expect("events").len(), 7);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_redrives_redrive_once() {
        let (_dir, states) = service();
        let sm = call(
            &states,
            "CreateStateMachine",
            json!({"name": "w", "roleArn": "arn:aws:iam::123456789012:role/r",
                   "definition": json!({"StartAt": "W", "States": {
                       "W": {"Type": "Wait", "Seconds": 30, "End": true}}}).to_string()}),
        )
        .await;
        let ex = call(
            &states,
            "StartExecution",
            json!({"stateMachineArn": sm["stateMachineArn"]}),
        )
        .await;
        let arn = ex["executionArn"].as_str().unwrap_or_default().to_string();
        call(&states, "StopExecution", json!({"executionArn": arn})).await;
        assert_eq!(status(&states, &arn), "ABORTED");
        let redrive = |token: &str| {
            let body = json!({"executionArn": arn, "clientToken": token}).to_string();
            let states = states.clone();
            async move {
                states
                    .call("us-east-1", "RedriveExecution", bytes::Bytes::from(body))
                    .await
            }
        };
        let (a, b) = tokio::join!(redrive("a"), redrive("b"));
        let errors: Vec<String> = [&a, &b]
            .iter()
            .filter_map(|r| r.as_ref().err().map(|e| e.code.clone()))
            .collect();
        assert_eq!(errors, ["ExecutionNotRedrivable"], "{a:?} {b:?}");
        assert_eq!(status(&states, &arn), "RUNNING");
        let d = call(&states, "DescribeExecution", json!({"executionArn": arn})).await;
        assert_eq!(d["redriveCount"], 1);
        assert_eq!(d["redriveStatus"], "NOT_REDRIVABLE");
        assert_eq!(
            d["redriveStatusReason"],
            "Execution is RUNNING and cannot be redriven"
        );
        let redriven = states
            .load_events(&arn)
            .expect("events")
            .iter()
            .filter(|e| e.event_type == "ExecutionRedriven")
            .count();
        assert_eq!(redriven, 1);
        call(&states, "StopExecution", json!({"executionArn": arn})).await;
    }

    #[tokio::test]
    async fn errors_name_the_problem() {
        let (_dir, states) = service();
        let missing = states
            .call(
                "us-east-1",
                "RedriveExecution",
                bytes::Bytes::from(
                    json!({"executionArn": "arn:aws:states:us-east-1:123456789012:execution:m:nope"})
                        .to_string(),
                ),
            )
            .await
            .unwrap_err();
        assert_eq!(missing.code, "ExecutionDoesNotExist");
        let bad = states
            .call(
                "us-east-1",
                "RedriveExecution",
                bytes::Bytes::from(json!({"executionArn": "not-an-arn"}).to_string()),
            )
            .await
            .unwrap_err();
        assert_eq!(bad.code, "InvalidArn");
        let none = states
            .call("us-east-1", "RedriveExecution", bytes::Bytes::from("{}"))
            .await
            .unwrap_err();
        assert_eq!(none.code, "ValidationException");
    }
}
