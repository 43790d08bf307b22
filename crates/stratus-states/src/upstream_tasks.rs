//! Task resources forwarded to the upstream endpoint (`--upstream-endpoint`,
//! see `stratus-upstream`):
//!
//! - AWS SDK integrations `arn:aws:states:::aws-sdk:<service>:<action>`
//!   (errors named `<ServiceName>.<ErrorName>`, e.g. `DynamoDb.ConditionalCheckFailedException`);
//! - the optimized DynamoDB integrations `arn:aws:states:::dynamodb:putItem`,
//!   `getItem`, `updateItem`, `deleteItem` (errors named
//!   `DynamoDB.<ErrorName>`, as the "Call DynamoDB with Step Functions" page
//!   shows);
//! - `arn:aws:states:::ecs:runTask` and `.sync` (ECS RunTask; `.sync`
//!   polls DescribeTasks until the task is STOPPED and fails with
//!   `States.TaskFailed` when a container exited with a non-zero code).
//!
//! Without an upstream endpoint these tasks fail with `States.TaskFailed`
//! and a cause that says what to configure.

use std::time::Duration;

use serde_json::{Value, json};
use stratus_asl::Failure;
use stratus_upstream::Upstream;

/// A Task resource for the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamTask {
    /// `aws-sdk:<service>:<action>`.
    Sdk { service: String, action: String },
    /// `dynamodb:<action>`.
    DynamoDb(String),
    /// `ecs:runTask`, `sync`: wait for the task to stop.
    EcsRunTask { sync: bool },
}

/// Classifies `arn:aws:states:::<...>` resources this module runs; the
/// second value is whether the resource ends in `.waitForTaskToken`.
pub(crate) fn classify(resource: &str) -> Option<(UpstreamTask, bool)> {
    let rest = resource.strip_prefix("arn:aws:states:::")?;
    let (rest, wait_for_token) = match rest.strip_suffix(".waitForTaskToken") {
        Some(r) => (r, true),
        None => (rest, false),
    };
    if let Some(sdk) = rest.strip_prefix("aws-sdk:") {
        let (service, action) = sdk.split_once(':')?;
        if service.is_empty() || action.is_empty() || action.contains(':') {
            return None;
        }
        // `.sync` is not an AWS SDK integration pattern for most services.
        if action.contains('.') || !stratus_upstream::supports(service, action) {
            return None;
        }
        return Some((
            UpstreamTask::Sdk {
                service: service.to_string(),
                action: action.to_string(),
            },
            wait_for_token,
        ));
    }
    match rest {
        "dynamodb:putItem" | "dynamodb:getItem" | "dynamodb:updateItem" | "dynamodb:deleteItem" => {
            Some((
                UpstreamTask::DynamoDb(rest["dynamodb:".len()..].to_string()),
                wait_for_token,
            ))
        }
        "ecs:runTask" => Some((UpstreamTask::EcsRunTask { sync: false }, wait_for_token)),
        "ecs:runTask.sync" if !wait_for_token => {
            Some((UpstreamTask::EcsRunTask { sync: true }, false))
        }
        _ => None,
    }
}

fn from_call(e: stratus_upstream::CallError) -> Failure {
    Failure {
        error: e.error,
        cause: e.cause,
    }
}

/// How often `.sync` asks ECS whether the task stopped.
const ECS_POLL: Duration = Duration::from_millis(500);

/// Runs one upstream task with the task's effective input.
///
/// Errors: the upstream's errors as Step Functions names them;
/// `States.TaskFailed` without an upstream or when an ECS task failed.
pub(crate) async fn run(
    up: &Upstream,
    region: &str,
    task: &UpstreamTask,
    input: &Value,
) -> Result<Value, Failure> {
    match task {
        UpstreamTask::Sdk { service, action } => up
            .call_sdk(region, service, action, input)
            .await
            .map_err(from_call),
        UpstreamTask::DynamoDb(action) => up
            .call(region, "dynamodb", action, input, "DynamoDB")
            .await
            .map_err(from_call),
        UpstreamTask::EcsRunTask { sync } => {
            let started = up
                .call(region, "ecs", "runTask", input, "ECS")
                .await
                .map_err(from_call)?;
            if !sync {
                return Ok(started);
            }
            let Some(task_arn) = started["Tasks"][0]["TaskArn"].as_str().map(str::to_string) else {
                let why = started["Failures"].to_string();
                return Err(Failure {
                    error: "States.TaskFailed".into(),
                    cause: format!("ECS RunTask started no task: {why}"),
                });
            };
            let cluster = input.get("Cluster").cloned().unwrap_or(json!("default"));
            loop {
                let d = up
                    .call(
                        region,
                        "ecs",
                        "describeTasks",
                        &json!({"Cluster": cluster, "Tasks": [task_arn]}),
                        "ECS",
                    )
                    .await
                    .map_err(from_call)?;
                let t = d["Tasks"][0].clone();
                if t["LastStatus"].as_str() == Some("STOPPED") {
                    let bad_exit = t["Containers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["ExitCode"].as_i64().is_some_and(|code| code != 0));
                    if bad_exit {
                        return Err(Failure {
                            error: "States.TaskFailed".into(),
                            cause: t.to_string(),
                        });
                    }
                    return Ok(t);
                }
                tokio::time::sleep(ECS_POLL).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_classified() {
        assert_eq!(
            classify("arn:aws:states:::aws-sdk:dynamodb:putItem"),
            Some((
                UpstreamTask::Sdk {
                    service: "dynamodb".into(),
                    action: "putItem".into()
                },
                false
            ))
        );
        assert_eq!(
            classify("arn:aws:states:::dynamodb:updateItem"),
            Some((UpstreamTask::DynamoDb("updateItem".into()), false))
        );
        assert_eq!(
            classify("arn:aws:states:::ecs:runTask.sync"),
            Some((UpstreamTask::EcsRunTask { sync: true }, false))
        );
        assert!(classify("arn:aws:states:::aws-sdk:nosuch:doIt").is_none());
        assert!(classify("arn:aws:states:::aws-sdk:s3:createBucket").is_none());
        assert!(classify("arn:aws:states:::dynamodb:scan").is_none());
        assert!(classify("arn:aws:lambda:us-east-1:1:function:f").is_none());
    }
}
