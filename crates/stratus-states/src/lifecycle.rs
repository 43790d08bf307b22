//! The end of an execution, as other parts of the service see it.
//!
//! Every path that gives an execution its final status (the runner's
//! `finish`, StopExecution) calls [`States::execution_ended`] after the
//! status is committed. Whoever needs to know when an execution ends (a
//! parent's `states:startExecution.sync` task, a Distributed Map run waiting
//! for its child executions) calls [`States::wait_for_end`], which returns
//! the stored final row.

use std::sync::Arc;
use std::time::Duration;

use stratus_core::AwsResult;

use crate::States;
use crate::executions::FullRow;
use crate::names::err;

/// How often a waiter looks at the store even without a notification, so
/// an end recorded by a path that did not notify is still seen (ms).
const RECHECK_MS: u64 = 5_000;

impl States {
    /// Tells everyone waiting on `arn` that it ended. `status` is the final
    /// status just committed (SUCCEEDED, FAILED, TIMED_OUT or ABORTED).
    /// Also counts the end in CloudWatch's `AWS/States` metrics (once per
    /// execution, from the stored row).
    pub(crate) fn execution_ended(&self, arn: &str, status: &str) {
        stratus_cloudwatch::states::record_end(&self.store, arn);
        let notify = self
            .ended
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(arn);
        if let Some(n) = notify {
            n.notify_waiters();
        }
        // An execution that ended without finishing its Map Runs (timed
        // out, reached its history quota) aborts them.
        if self.has_live_map_runs(arn)
            && let Some(me) = self.arc()
        {
            let arn = arn.to_string();
            tokio::spawn(async move { me.abort_map_runs(&arn).await });
        }
        tracing::debug!(execution = %arn, status, "execution ended");
    }

    /// Waits until the execution `arn` has a final status and returns its
    /// stored row (status, output, error, cause, stop date).
    ///
    /// Errors: `ExecutionDoesNotExist` when there is no such execution;
    /// a store failure as `ServiceException` (HTTP 500).
    pub(crate) async fn wait_for_end(&self, arn: &str) -> AwsResult<FullRow> {
        loop {
            let notify = self
                .ended
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(arn.to_string())
                .or_insert_with(|| Arc::new(tokio::sync::Notify::new()))
                .clone();
            let notified = notify.notified();
            tokio::pin!(notified);
            // Registered before the store is read: an end committed after
            // the read still wakes this waiter.
            notified.as_mut().enable();
            let Some(row) = self.load_full_row(arn)? else {
                return Err(err(
                    "ExecutionDoesNotExist",
                    format!("Execution Does Not Exist: '{arn}'"),
                ));
            };
            if row.status != "RUNNING" {
                return Ok(row);
            }
            let _ = tokio::time::timeout(Duration::from_millis(RECHECK_MS), notified).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::test_support::{call, service};

    #[tokio::test]
    async fn waiters_see_the_end_of_an_execution() {
        let (_dir, states) = service();
        let def = json!({"StartAt": "W", "States": {
            "W": {"Type": "Wait", "Seconds": 1, "Next": "P"},
            "P": {"Type": "Pass", "Result": {"done": true}, "End": true}}});
        let sm = call(
            &states,
            "CreateStateMachine",
            json!({"name": "w", "definition": def.to_string(),
                   "roleArn": "arn:aws:iam::123456789012:role/r"}),
        )
        .await;
        let arn = sm["stateMachineArn"].as_str().unwrap().to_string();
        let ex = call(&states, "StartExecution", json!({"stateMachineArn": arn})).await;
        let exec_arn = ex["executionArn"].as_str().unwrap().to_string();
        let (a, b) = tokio::join!(
            states.wait_for_end(&exec_arn),
            states.wait_for_end(&exec_arn)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.status, "SUCCEEDED");
        assert_eq!(b.output.as_deref(), Some(r#"{"done":true}"#));
        // An ended execution answers at once.
        let again = states.wait_for_end(&exec_arn).await.unwrap();
        assert_eq!(again.status, "SUCCEEDED");
        let missing = states
            .wait_for_end("arn:aws:states:us-east-1:123456789012:execution:w:nope")
            .await
            .unwrap_err();
        assert_eq!(missing.code, "ExecutionDoesNotExist");
    }

    #[tokio::test]
    async fn a_stopped_execution_wakes_its_waiters() {
        let (_dir, states) = service();
        let def = json!({"StartAt": "W", "States": {
            "W": {"Type": "Wait", "Seconds": 3600, "End": true}}});
        let sm = call(
            &states,
            "CreateStateMachine",
            json!({"name": "s", "definition": def.to_string(),
                   "roleArn": "arn:aws:iam::123456789012:role/r"}),
        )
        .await;
        let arn = sm["stateMachineArn"].as_str().unwrap().to_string();
        let ex = call(&states, "StartExecution", json!({"stateMachineArn": arn})).await;
        let exec_arn = ex["executionArn"].as_str().unwrap().to_string();
        let waiter = {
            let states = states.clone();
            let exec_arn = exec_arn.clone();
            tokio::spawn(async move { states.wait_for_end(&exec_arn).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        call(
            &states,
            "StopExecution",
            json!({"executionArn": exec_arn, "error": "E"}),
        )
        .await;
        let row = tokio::time::timeout(std::time::Duration::from_secs(2), waiter)
            .await
            .expect("woken before the recheck interval")
            .unwrap()
            .unwrap();
        assert_eq!(row.status, "ABORTED");
        assert_eq!(row.error.as_deref(), Some("E"));
    }
}
