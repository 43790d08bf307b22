//! Task resources stratus runs, and what they return.
//!
//! * A Lambda function ARN (`arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]`):
//!   the function's payload is the task result (the "legacy" form).
//! * `arn:aws:states:::lambda:invoke`: Parameters `FunctionName`,
//!   `Payload`, `Qualifier`, `InvocationType`, `ClientContext`, `LogType`;
//!   the result is AWS's envelope `{ExecutedVersion, Payload,
//!   SdkHttpMetadata, SdkResponseMetadata, StatusCode}`.
//! * `arn:aws:states:::sqs:sendMessage`, `arn:aws:states:::sns:publish`,
//!   `arn:aws:states:::events:putEvents`: delivered through
//!   [`stratus_core::Targets`].
//! * Each of them with `.waitForTaskToken`: the task ends with
//!   SendTaskSuccess / SendTaskFailure (see [`crate::runner`]).
//!
//! Errors follow "Handling errors in Step Functions workflows" and the
//! Lambda integration page of the Step Functions Developer Guide: a
//! function error is named by the function's `errorType` (cause: the
//! function's error JSON), `Lambda.Unknown` when it has none; Lambda
//! service errors are `Lambda.<ExceptionName>` (`Lambda.ServiceException`,
//! `Lambda.TooManyRequestsException`, `Lambda.ResourceNotFoundException`,
//! ...), with the cause worded as the AWS SDK words service exceptions.

use std::collections::BTreeMap;

use md5::Digest;
use serde_json::{Value, json};
use stratus_asl::Failure;
use stratus_core::{AwsError, Delivery, MessageAttribute};
use stratus_lambda::invoke::InvokeRequest;

use crate::States;

/// What a Task resource runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integration {
    /// A Lambda function ARN used directly as the resource.
    LambdaFunction(String),
    /// `arn:aws:states:::lambda:invoke`.
    LambdaInvoke,
    /// `arn:aws:states:::sqs:sendMessage`.
    SqsSendMessage,
    /// `arn:aws:states:::sns:publish`.
    SnsPublish,
    /// `arn:aws:states:::events:putEvents`.
    EventsPutEvents,
    /// A service stratus does not implement, forwarded to the upstream
    /// endpoint (AWS SDK integrations, DynamoDB, ECS).
    Upstream(crate::upstream_tasks::UpstreamTask),
    /// A Distributed Map's ItemReader (`s3:listObjectsV2`, `s3:getObject`)
    /// or ResultWriter (`s3:putObject`), over the upstream endpoint.
    ItemIo(String),
    /// `arn:aws:states:::states:startExecution` (`.sync`, `.sync:2`): a
    /// nested execution (see [`crate::nested`]).
    StartExecution(crate::nested::NestedMode),
    /// An activity ARN (`arn:aws:states:<region>:<account>:activity:<name>`):
    /// the task goes to a worker polling GetActivityTask
    /// ([`crate::activities`]).
    Activity(String),
}

/// A classified Task resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub integration: Integration,
    /// The resource ends in `.waitForTaskToken`.
    pub wait_for_token: bool,
}

/// Classifies a Task state's `Resource`; `None` when stratus cannot run it.
pub fn classify(resource: &str) -> Option<Resource> {
    if resource.starts_with("arn:aws:lambda:") {
        let r = stratus_core::FunctionRef::parse(resource, "Resource").ok()?;
        r.region.as_ref()?;
        return Some(Resource {
            integration: Integration::LambdaFunction(resource.to_string()),
            wait_for_token: false,
        });
    }
    if crate::item_io::is_item_io(resource) {
        return Some(Resource {
            integration: Integration::ItemIo(resource.to_string()),
            wait_for_token: false,
        });
    }
    if let Some((task, wait_for_token)) = crate::upstream_tasks::classify(resource) {
        return Some(Resource {
            integration: Integration::Upstream(task),
            wait_for_token,
        });
    }
    if let Some((mode, wait_for_token)) = crate::nested::classify(resource) {
        return Some(Resource {
            integration: Integration::StartExecution(mode),
            wait_for_token,
        });
    }
    if crate::activities::is_activity_arn(resource) {
        return Some(Resource {
            integration: Integration::Activity(resource.to_string()),
            wait_for_token: false,
        });
    }
    let parts: Vec<&str> = resource.split(':').collect();
    if parts.len() != 7 || parts[0] != "arn" || !parts[1].starts_with("aws") || parts[2] != "states"
    {
        return None;
    }
    let (action, wait_for_token) = match parts[6].strip_suffix(".waitForTaskToken") {
        Some(a) => (a, true),
        None => (parts[6], false),
    };
    let integration = match (parts[5], action) {
        ("lambda", "invoke") => Integration::LambdaInvoke,
        ("sqs", "sendMessage") => Integration::SqsSendMessage,
        ("sns", "publish") => Integration::SnsPublish,
        ("events", "putEvents") => Integration::EventsPutEvents,
        _ => return None,
    };
    Some(Resource {
        integration,
        wait_for_token,
    })
}

/// The validation message for a resource stratus cannot run.
pub fn unsupported_message(resource: &str) -> String {
    if resource.ends_with(":lambda:invoke.sync") {
        // AWS's Lambda integration has request-response and
        // .waitForTaskToken only.
        return format!(
            "The resource provided {resource} is not recognized: AWS Step Functions has no .sync \
             integration pattern for lambda:invoke (arn:aws:states:::lambda:invoke already waits for \
             the function's answer)"
        );
    }
    format!(
        "stratus cannot run the resource '{resource}': supported Task resources are Lambda function ARNs, \
         arn:aws:states:::lambda:invoke, arn:aws:states:::sqs:sendMessage, \
         arn:aws:states:::sns:publish, arn:aws:states:::events:putEvents and \
         arn:aws:states:::states:startExecution (each also with .waitForTaskToken), \
         arn:aws:states:::states:startExecution.sync(:2), activity ARNs \
         (arn:aws:states:<region>:<account>:activity:<name>), arn:aws:states:::dynamodb:putItem/getItem/updateItem/deleteItem, \
         arn:aws:states:::ecs:runTask(.sync) and arn:aws:states:::aws-sdk:<service>:<action> for the services \
         stratus forwards to its upstream endpoint ({}); Map ItemReaders s3:listObjectsV2 / s3:getObject and \
         the ResultWriter s3:putObject",
        stratus_upstream::supported_services()
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn pointer_escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Every Task resource of a definition that stratus cannot run (and every
/// Map ItemReader / ResultWriter resource), as
/// `(JSON pointer of the Resource field, resource)`; nested Parallel
/// branches and Map processors included. A definition that is not JSON
/// yields nothing (the parser reports it).
pub fn unsupported_resources(definition: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Ok(v) = serde_json::from_str::<Value>(definition) {
        walk_states(&v, "", &mut out, 0);
    }
    out
}

/// The Task resources (JSON pointer of the `Resource` member, resource)
/// whose integration pattern an Express state machine cannot use: `.sync`,
/// `.sync:2`, `.waitForTaskToken` and activities. AWS: "Express Workflows
/// only support Request Response integrations" (Developer Guide,
/// "Integrating optimized services with Step Functions"), and activities
/// are a Standard-only feature.
pub fn express_unsupported_resources(definition: &str) -> Vec<(String, String)> {
    fn walk(machine: &Value, at: &str, out: &mut Vec<(String, String)>, depth: usize) {
        if depth > 64 {
            return;
        }
        let Some(states) = machine.get("States").and_then(Value::as_object) else {
            return;
        };
        for (name, state) in states {
            let here = format!("{at}/States/{}", pointer_escape(name));
            if let Some(r) = state.get("Resource").and_then(Value::as_str)
                && state.get("Type").and_then(Value::as_str) == Some("Task")
                && (r.ends_with(".sync")
                    || r.ends_with(".sync:2")
                    || r.ends_with(".waitForTaskToken")
                    || crate::activities::is_activity_arn(r))
            {
                out.push((format!("{here}/Resource"), r.to_string()));
            }
            if let Some(branches) = state.get("Branches").and_then(Value::as_array) {
                for (i, b) in branches.iter().enumerate() {
                    walk(b, &format!("{here}/Branches/{i}"), out, depth + 1);
                }
            }
            for field in ["ItemProcessor", "Iterator"] {
                if let Some(p) = state.get(field) {
                    walk(p, &format!("{here}/{field}"), out, depth + 1);
                }
            }
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_json::from_str::<Value>(definition) {
        walk(&v, "", &mut out, 0);
    }
    out
}

fn walk_states(machine: &Value, at: &str, out: &mut Vec<(String, String)>, depth: usize) {
    if depth > 64 {
        return;
    }
    let Some(states) = machine.get("States").and_then(Value::as_object) else {
        return;
    };
    for (name, state) in states {
        let here = format!("{at}/States/{}", pointer_escape(name));
        match state.get("Type").and_then(Value::as_str) {
            Some("Task") => {
                if let Some(r) = state.get("Resource").and_then(Value::as_str)
                    && classify(r).is_none()
                {
                    out.push((format!("{here}/Resource"), r.to_string()));
                }
            }
            Some("Parallel") => {
                if let Some(branches) = state.get("Branches").and_then(Value::as_array) {
                    for (i, b) in branches.iter().enumerate() {
                        walk_states(b, &format!("{here}/Branches/{i}"), out, depth + 1);
                    }
                }
            }
            Some("Map") => {
                // Distributed Map's ItemReader / ResultWriter read and write
                // S3 through the upstream endpoint.
                for field in ["ItemReader", "ResultWriter"] {
                    if let Some(r) = state
                        .get(field)
                        .and_then(|f| f.get("Resource"))
                        .and_then(Value::as_str)
                        && !crate::item_io::is_item_io(r)
                    {
                        out.push((format!("{here}/{field}/Resource"), r.to_string()));
                    }
                }
                for field in ["ItemProcessor", "Iterator"] {
                    if let Some(p) = state.get(field) {
                        walk_states(p, &format!("{here}/{field}"), out, depth + 1);
                    }
                }
            }
            _ => {}
        }
    }
}

fn failure(error: impl Into<String>, cause: impl Into<String>) -> Failure {
    Failure {
        error: error.into(),
        cause: cause.into(),
    }
}

/// A service exception's cause as the AWS SDK words it.
fn sdk_cause(service: &str, e: &AwsError) -> String {
    format!(
        "{} (Service: {service}; Status Code: {}; Error Code: {}; Request ID: {}; Proxy: null)",
        e.message,
        e.status,
        e.code,
        stratus_core::request_id()
    )
}

/// The Step Functions error name of a Lambda service error:
/// `Lambda.<ExceptionName>`; `Lambda.ServiceException` for failures inside
/// the service without a more precise name.
pub fn lambda_error_name(e: &AwsError) -> String {
    match e.code.as_str() {
        "" => "Lambda.AWSLambdaException".to_string(),
        c if c.contains('.') => "Lambda.AWSLambdaException".to_string(),
        c => format!("Lambda.{c}"),
    }
}

/// The error of a function that failed (`X-Amz-Function-Error`): the
/// `errorType` of its error JSON, `Lambda.Unknown` without one; the cause
/// is the error JSON as the function returned it.
pub fn function_failure(payload: &[u8]) -> Failure {
    let text = String::from_utf8_lossy(payload).into_owned();
    let error = serde_json::from_slice::<Value>(payload)
        .ok()
        .and_then(|v| {
            v.get("errorType")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "Lambda.Unknown".to_string());
    let cause = if text.is_empty() {
        "The cause could not be determined because Lambda did not return an error type.".to_string()
    } else {
        text
    };
    failure(error, cause)
}

fn payload_value(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

fn sdk_metadata(request_id: &str, extra_headers: &[(&str, String)]) -> (Value, Value) {
    let mut headers = BTreeMap::new();
    headers.insert("Content-Type".to_string(), "application/json".to_string());
    headers.insert("x-amzn-RequestId".to_string(), request_id.to_string());
    for (k, v) in extra_headers {
        headers.insert(k.to_string(), v.clone());
    }
    let all: BTreeMap<String, Vec<String>> = headers
        .iter()
        .map(|(k, v)| (k.clone(), vec![v.clone()]))
        .collect();
    (
        json!({"AllHttpHeaders": all, "HttpHeaders": headers, "HttpStatusCode": 200}),
        json!({"RequestId": request_id}),
    )
}

fn string_or_json(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn param<'a>(input: &'a Value, name: &str) -> Option<&'a Value> {
    input.get(name).filter(|v| !v.is_null())
}

fn missing(service: &str, name: &str) -> Failure {
    failure(
        "States.Runtime",
        format!("The {service} task's parameters have no '{name}' field, which the API requires."),
    )
}

/// SQS / SNS message attributes (`{"name": {"DataType", "StringValue",
/// "BinaryValue"}}`) as deliveries carry them.
fn message_attributes(v: Option<&Value>) -> BTreeMap<String, MessageAttribute> {
    let mut out = BTreeMap::new();
    if let Some(Value::Object(m)) = v {
        for (k, a) in m {
            let data_type = a
                .get("DataType")
                .and_then(Value::as_str)
                .unwrap_or("String")
                .to_string();
            out.insert(
                k.clone(),
                MessageAttribute {
                    data_type,
                    string_value: a
                        .get("StringValue")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    binary_value: a
                        .get("BinaryValue")
                        .and_then(Value::as_str)
                        .map(|s| s.as_bytes().to_vec()),
                },
            );
        }
    }
    out
}

/// The queue ARN of an SQS queue URL
/// (`https://sqs.<region>.amazonaws.com/<account>/<name>`, or a stratus
/// URL `http://host:port/<account>/<name>`); `region` when the host names none.
pub fn queue_arn_from_url(url: &str, region: &str) -> Option<String> {
    if url.starts_with("arn:aws:sqs:") {
        return Some(url.to_string());
    }
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let (host, path) = rest.split_once('/')?;
    let mut segs = path.trim_end_matches('/').split('/');
    let account = segs.next()?;
    let name = segs.next()?;
    if segs.next().is_some() || account.is_empty() || name.is_empty() {
        return None;
    }
    let host_region = host
        .split(':')
        .next()
        .and_then(|h| {
            let labels: Vec<&str> = h.split('.').collect();
            match labels.as_slice() {
                ["sqs", r, ..] if r.contains('-') => Some(r.to_string()),
                [r, "queue", ..] if r.contains('-') => Some(r.to_string()),
                _ => None,
            }
        })
        .unwrap_or_else(|| region.to_string());
    Some(format!("arn:aws:sqs:{host_region}:{account}:{name}"))
}

fn target_error(prefix: &str, generic: &str, e: &AwsError, service: &str) -> Failure {
    let name = if e.code.is_empty() || e.code.contains('.') {
        generic.to_string()
    } else if e.code.ends_with("Exception") {
        e.code.clone()
    } else {
        format!("{}Exception", e.code)
    };
    failure(format!("{prefix}.{name}"), sdk_cause(service, e))
}

impl States {
    /// Runs one Task resource for an execution in `region` with the task's
    /// effective input. Ok: the task result; Err: the failure as Step
    /// Functions names it.
    pub(crate) async fn run_integration(
        &self,
        region: &str,
        resource: &Resource,
        input: &Value,
    ) -> Result<Value, Failure> {
        match &resource.integration {
            Integration::LambdaFunction(arn) => self.lambda_legacy(arn, input).await,
            Integration::LambdaInvoke => self.lambda_invoke(region, input).await,
            Integration::SqsSendMessage => self.sqs_send(region, input).await,
            Integration::SnsPublish => self.sns_publish(input).await,
            Integration::EventsPutEvents => self.events_put(region, input).await,
            Integration::Upstream(task) => {
                crate::upstream_tasks::run(&self.upstream, region, task, input).await
            }
            Integration::ItemIo(r) if r == "arn:aws:states:::s3:putObject" => {
                crate::item_io::write_results(&self.upstream, region, input).await
            }
            Integration::ItemIo(r) => {
                crate::item_io::read_items(&self.upstream, region, r, input).await
            }
            Integration::StartExecution(mode) => self.run_nested(*mode, input, None).await,
            // Activity tasks wait for a worker; the execution's host runs
            // them (runner.rs), never this dispatch.
            Integration::Activity(arn) => Err(failure(
                "States.Runtime",
                format!("The activity '{arn}' can only run as a Task state of an execution."),
            )),
        }
    }

    async fn lambda_legacy(&self, arn: &str, input: &Value) -> Result<Value, Failure> {
        let region = stratus_core::FunctionRef::parse(arn, "Resource")
            .ok()
            .and_then(|r| r.region)
            .unwrap_or_default();
        let req = InvokeRequest {
            function_name: arn.to_string(),
            payload: bytes::Bytes::from(input.to_string()),
            ..Default::default()
        };
        match self.lambda.invoke(&region, req).await {
            Ok(resp) if resp.function_error.is_some() => Err(function_failure(&resp.payload)),
            Ok(resp) => Ok(payload_value(&resp.payload)),
            Err(e) => Err(failure(lambda_error_name(&e), sdk_cause("AWSLambda", &e))),
        }
    }

    async fn lambda_invoke(&self, region: &str, input: &Value) -> Result<Value, Failure> {
        let Some(name) = param(input, "FunctionName").and_then(Value::as_str) else {
            return Err(missing("lambda:invoke", "FunctionName"));
        };
        let fn_region = stratus_core::FunctionRef::parse(name, "FunctionName")
            .ok()
            .and_then(|r| r.region)
            .unwrap_or_else(|| region.to_string());
        let payload = match param(input, "Payload") {
            None => bytes::Bytes::new(),
            Some(Value::String(s)) => bytes::Bytes::from(s.clone()),
            Some(v) => bytes::Bytes::from(v.to_string()),
        };
        let req = InvokeRequest {
            function_name: name.to_string(),
            qualifier: param(input, "Qualifier").map(string_or_json),
            invocation_type: param(input, "InvocationType").map(string_or_json),
            log_type: param(input, "LogType").map(string_or_json),
            client_context: param(input, "ClientContext").map(string_or_json),
            payload,
        };
        let resp = match self.lambda.invoke(&fn_region, req).await {
            Ok(r) => r,
            Err(e) => return Err(failure(lambda_error_name(&e), sdk_cause("AWSLambda", &e))),
        };
        if resp.function_error.is_some() {
            return Err(function_failure(&resp.payload));
        }
        let request_id = resp
            .request_id
            .clone()
            .unwrap_or_else(stratus_core::request_id);
        let version = resp
            .executed_version
            .clone()
            .unwrap_or_else(|| "$LATEST".into());
        let mut extra = vec![("Content-Length", resp.payload.len().to_string())];
        if resp.status == 200 {
            extra.push(("X-Amz-Executed-Version", version.clone()));
        }
        if let Some(l) = &resp.log_result {
            extra.push(("X-Amz-Log-Result", l.clone()));
        }
        let (http, sdk) = sdk_metadata(&request_id, &extra);
        let mut http = http;
        http["HttpStatusCode"] = Value::from(resp.status);
        let mut out = json!({
            "Payload": if resp.status == 200 { payload_value(&resp.payload) } else { Value::String(String::new()) },
            "SdkHttpMetadata": http,
            "SdkResponseMetadata": sdk,
            "StatusCode": resp.status,
        });
        if resp.status == 200 {
            out["ExecutedVersion"] = Value::from(version);
        }
        if let Some(l) = resp.log_result {
            out["LogResult"] = Value::from(l);
        }
        Ok(out)
    }

    async fn sqs_send(&self, region: &str, input: &Value) -> Result<Value, Failure> {
        let Some(url) = param(input, "QueueUrl").and_then(Value::as_str) else {
            return Err(missing("sqs:sendMessage", "QueueUrl"));
        };
        let Some(body) = param(input, "MessageBody") else {
            return Err(missing("sqs:sendMessage", "MessageBody"));
        };
        let Some(arn) = queue_arn_from_url(url, region) else {
            return Err(failure(
                "SQS.AmazonSQSException",
                format!(
                    "The QueueUrl '{url}' is not a queue URL (Service: AmazonSQS; Status Code: 400; Error Code: InvalidAddress; Proxy: null)"
                ),
            ));
        };
        let body = string_or_json(body);
        let delivery = Delivery {
            body: body.clone(),
            attributes: message_attributes(param(input, "MessageAttributes")),
            message_group_id: param(input, "MessageGroupId").map(string_or_json),
            deduplication_id: param(input, "MessageDeduplicationId").map(string_or_json),
            ..Default::default()
        };
        let id = self
            .targets
            .deliver(&arn, delivery)
            .await
            .map_err(|e| target_error("SQS", "AmazonSQSException", &e, "AmazonSQS"))?;
        let md5 = md5::Md5::digest(body.as_bytes());
        let md5_hex: String = md5.iter().map(|b| format!("{b:02x}")).collect();
        let (http, sdk) = sdk_metadata(&stratus_core::request_id(), &[]);
        Ok(json!({
            "MD5OfMessageBody": md5_hex,
            "MessageId": id,
            "SdkHttpMetadata": http,
            "SdkResponseMetadata": sdk,
        }))
    }

    async fn sns_publish(&self, input: &Value) -> Result<Value, Failure> {
        let Some(arn) = param(input, "TopicArn")
            .or_else(|| param(input, "TargetArn"))
            .and_then(Value::as_str)
        else {
            return Err(missing("sns:publish", "TopicArn"));
        };
        let Some(message) = param(input, "Message") else {
            return Err(missing("sns:publish", "Message"));
        };
        let delivery = Delivery {
            body: string_or_json(message),
            attributes: message_attributes(param(input, "MessageAttributes")),
            subject: param(input, "Subject").map(string_or_json),
            message_group_id: param(input, "MessageGroupId").map(string_or_json),
            deduplication_id: param(input, "MessageDeduplicationId").map(string_or_json),
            ..Default::default()
        };
        let id = self
            .targets
            .deliver(arn, delivery)
            .await
            .map_err(|e| target_error("SNS", "AmazonSNSException", &e, "AmazonSNS"))?;
        let (http, sdk) = sdk_metadata(&stratus_core::request_id(), &[]);
        Ok(json!({"MessageId": id, "SdkHttpMetadata": http, "SdkResponseMetadata": sdk}))
    }

    async fn events_put(&self, region: &str, input: &Value) -> Result<Value, Failure> {
        let Some(entries) = param(input, "Entries").and_then(Value::as_array) else {
            return Err(missing("events:putEvents", "Entries"));
        };
        let mut results = Vec::new();
        let mut failed = 0;
        for entry in entries {
            let bus = entry
                .get("EventBusName")
                .and_then(Value::as_str)
                .unwrap_or("default");
            let bus_arn = if bus.starts_with("arn:") {
                bus.to_string()
            } else {
                format!("arn:aws:events:{region}:{}:event-bus/{bus}", self.account)
            };
            let delivery = Delivery {
                body: entry
                    .get("Detail")
                    .map(string_or_json)
                    .unwrap_or_else(|| "{}".into()),
                source: entry
                    .get("Source")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                detail_type: entry
                    .get("DetailType")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                resources: entry
                    .get("Resources")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
                ..Default::default()
            };
            match self.targets.deliver(&bus_arn, delivery).await {
                Ok(id) => results.push(json!({"EventId": id})),
                Err(e) => {
                    failed += 1;
                    results.push(json!({"ErrorCode": e.code, "ErrorMessage": e.message}));
                }
            }
        }
        let out = json!({"Entries": results, "FailedEntryCount": failed});
        if failed > 0 {
            // AWS: a putEvents task with a failed entry fails with
            // EventBridge.FailedEntry, the answer as its cause.
            return Err(failure("EventBridge.FailedEntry", out.to_string()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_classified() {
        assert_eq!(
            classify("arn:aws:lambda:ap-northeast-1:123456789012:function:validate-input")
                .unwrap()
                .integration,
            Integration::LambdaFunction(
                "arn:aws:lambda:ap-northeast-1:123456789012:function:validate-input".into()
            )
        );
        let r = classify("arn:aws:states:::lambda:invoke.waitForTaskToken").unwrap();
        assert_eq!(r.integration, Integration::LambdaInvoke);
        assert!(r.wait_for_token);
        assert_eq!(
            classify("arn:aws:states:::sqs:sendMessage")
                .unwrap()
                .integration,
            Integration::SqsSendMessage
        );
        // Forwarded to the upstream endpoint.
        assert!(matches!(
            classify("arn:aws:states:::dynamodb:putItem")
                .unwrap()
                .integration,
            Integration::Upstream(_)
        ));
        assert!(matches!(
            classify("arn:aws:states:::ecs:runTask.sync")
                .unwrap()
                .integration,
            Integration::Upstream(_)
        ));
        assert!(classify("arn:aws:states:::dynamodb:scan").is_none());
        assert!(classify("arn:aws:states:::aws-sdk:nosuchservice:doIt").is_none());
        assert_eq!(
            classify("arn:aws:states:us-east-1:123456789012:activity:a").map(|r| r.integration),
            Some(Integration::Activity(
                "arn:aws:states:us-east-1:123456789012:activity:a".into()
            ))
        );
        assert!(classify("arn:aws:states:us-east-1:123456789012:activity:").is_none());
        assert!(classify("arn:aws:lambda:...:send-email").is_none());
    }

    #[test]
    fn unsupported_resources_are_found_in_nested_states() {
        let def = json!({
            "StartAt": "P",
            "States": {
                "P": {"Type": "Parallel", "Branches": [
                    {"StartAt": "D", "States": {"D": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:scan", "End": true}}}
                ], "Next": "M"},
                "M": {"Type": "Map", "ItemProcessor": {"StartAt": "L", "States": {
                    "L": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true}}}, "End": true}
            }
        })
        .to_string();
        let found = unsupported_resources(&def);
        assert_eq!(
            found,
            vec![(
                "/States/P/Branches/0/States/D/Resource".to_string(),
                "arn:aws:states:::dynamodb:scan".to_string()
            )]
        );
        let distributed = json!({"StartAt": "D", "States": {"D": {
            "Type": "Map", "End": true,
            "ItemReader": {"Resource": "arn:aws:states:::s3:listObjectsV2", "Parameters": {"Bucket": "b"}},
            "ResultWriter": {"Resource": "arn:aws:states:::s3:copyObject", "Parameters": {"Bucket": "b"}},
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                              "StartAt": "F", "States": {"F": {"Type": "Pass", "End": true}}}}}})
        .to_string();
        // The S3 item reader is supported; a writer resource that is not
        // s3:putObject is not.
        assert_eq!(
            unsupported_resources(&distributed),
            vec![(
                "/States/D/ResultWriter/Resource".to_string(),
                "arn:aws:states:::s3:copyObject".to_string()
            )]
        );
    }

    #[test]
    fn function_errors_are_named_by_error_type() {
        let f = function_failure(br#"{"errorMessage":"bad","errorType":"ValidationError"}"#);
        assert_eq!(f.error, "ValidationError");
        assert!(f.cause.contains("\"errorMessage\":\"bad\""));
        assert_eq!(function_failure(b"{}").error, "Lambda.Unknown");
        let e = AwsError::new(429, "TooManyRequestsException", "Rate exceeded");
        assert_eq!(lambda_error_name(&e), "Lambda.TooManyRequestsException");
        let c = sdk_cause("AWSLambda", &e);
        assert!(c.starts_with("Rate exceeded (Service: AWSLambda; Status Code: 429; Error Code: TooManyRequestsException;"));
    }

    #[test]
    fn queue_urls_map_to_arns() {
        assert_eq!(
            queue_arn_from_url(
                "https://sqs.eu-west-1.amazonaws.com/123456789012/q",
                "us-east-1"
            )
            .unwrap(),
            "arn:aws:sqs:eu-west-1:123456789012:q"
        );
        assert_eq!(
            queue_arn_from_url("http://127.0.0.1:4566/123456789012/q", "us-east-1").unwrap(),
            "arn:aws:sqs:us-east-1:123456789012:q"
        );
        assert!(queue_arn_from_url("http://host/only", "us-east-1").is_none());
    }

    /// Records deliveries and answers with an id (or fails for ARNs
    /// containing "missing").
    struct Capture(std::sync::Mutex<Vec<(String, Delivery)>>);

    impl stratus_core::Target for Capture {
        fn deliver<'a>(
            &'a self,
            arn: &'a str,
            d: Delivery,
        ) -> stratus_core::targets::BoxFuture<'a, stratus_core::AwsResult<String>> {
            Box::pin(async move {
                if arn.contains("missing") {
                    return Err(AwsError::new(400, "NotFound", "Topic does not exist"));
                }
                let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
                v.push((arn.to_string(), d));
                Ok(format!("id-{}", v.len()))
            })
        }
    }

    async fn run_sync(states: &States, definition: Value, input: Value) -> Value {
        use crate::test_support::call;
        let name = format!("m{}", uuid::Uuid::new_v4().simple());
        let sm = call(
            states,
            "CreateStateMachine",
            json!({"name": name, "type": "EXPRESS", "definition": definition.to_string(),
                   "roleArn": "arn:aws:iam::123456789012:role/r"}),
        )
        .await;
        call(
            states,
            "StartSyncExecution",
            json!({"stateMachineArn": sm["stateMachineArn"], "input": input.to_string()}),
        )
        .await
    }

    fn task(resource: &str, parameters: Value) -> Value {
        json!({"StartAt": "T", "States": {"T": {
            "Type": "Task", "Resource": resource, "Parameters": parameters, "End": true}}})
    }

    #[tokio::test]
    async fn sqs_sns_and_events_go_through_targets() {
        let targets = stratus_core::Targets::new();
        let sink = std::sync::Arc::new(Capture(std::sync::Mutex::new(Vec::new())));
        for svc in ["sqs", "sns", "events"] {
            targets.register(svc, sink.clone());
        }
        let (_dir, states) = crate::test_support::service_with(targets);

        let r = run_sync(
            &states,
            task(
                "arn:aws:states:::sqs:sendMessage",
                json!({"QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/orders",
                       "MessageBody.$": "$",
                       "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "order"}}}),
            ),
            json!({"orderId": 1}),
        )
        .await;
        assert_eq!(r["status"], "SUCCEEDED", "{r}");
        let out: Value =
            serde_json::from_str(r["output"].as_str().unwrap_or("null")).unwrap_or_default();
        assert_eq!(out["MessageId"], "id-1");
        // MD5 of the body as SQS computes it (hex of the MD5 digest).
        let body = r#"{"orderId":1}"#;
        let want: String = md5::Md5::digest(body.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(out["MD5OfMessageBody"], Value::from(want));
        {
            let got = sink.0.lock().unwrap_or_else(|p| p.into_inner());
            assert_eq!(got[0].0, "arn:aws:sqs:us-east-1:123456789012:orders");
            assert_eq!(got[0].1.body, body);
            assert_eq!(
                got[0].1.attributes["kind"].string_value.as_deref(),
                Some("order")
            );
        }

        let r = run_sync(
            &states,
            task(
                "arn:aws:states:::sns:publish",
                json!({"TopicArn": "arn:aws:sns:us-east-1:123456789012:t",
                       "Message.$": "States.Format('New order: {}', $.orderId)",
                       "Subject": "New Order Received"}),
            ),
            json!({"orderId": "A-1"}),
        )
        .await;
        assert_eq!(r["status"], "SUCCEEDED", "{r}");
        {
            let got = sink.0.lock().unwrap_or_else(|p| p.into_inner());
            assert_eq!(got[1].1.body, "New order: A-1");
            assert_eq!(got[1].1.subject.as_deref(), Some("New Order Received"));
        }

        let r = run_sync(
            &states,
            task(
                "arn:aws:states:::events:putEvents",
                json!({"Entries": [{"Detail": {"orderId.$": "$.orderId"}, "DetailType": "Order",
                                    "Source": "shop"}]}),
            ),
            json!({"orderId": 9}),
        )
        .await;
        assert_eq!(r["status"], "SUCCEEDED", "{r}");
        let out: Value =
            serde_json::from_str(r["output"].as_str().unwrap_or("null")).unwrap_or_default();
        assert_eq!(
            out,
            json!({"Entries": [{"EventId": "id-3"}], "FailedEntryCount": 0})
        );
        {
            let got = sink.0.lock().unwrap_or_else(|p| p.into_inner());
            assert_eq!(
                got[2].0,
                "arn:aws:events:us-east-1:123456789012:event-bus/default"
            );
            assert_eq!(got[2].1.body, r#"{"orderId":9}"#);
            assert_eq!(got[2].1.source.as_deref(), Some("shop"));
        }

        let r = run_sync(
            &states,
            task(
                "arn:aws:states:::sns:publish",
                json!({"TopicArn": "arn:aws:sns:us-east-1:123456789012:missing", "Message": "x"}),
            ),
            json!({}),
        )
        .await;
        assert_eq!(r["status"], "FAILED");
        assert_eq!(r["error"], "SNS.NotFoundException");
        assert!(
            r["cause"]
                .as_str()
                .unwrap_or("")
                .contains("Service: AmazonSNS")
        );
    }

    #[tokio::test]
    async fn state_machines_are_a_delivery_target() {
        use crate::test_support::call;
        let (_dir, states) = crate::test_support::service();
        let sm = call(
            &states,
            "CreateStateMachine",
            json!({"name": "target", "definition": json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}).to_string(),
                   "roleArn": "arn:aws:iam::123456789012:role/r"}),
        )
        .await;
        let arn = sm["stateMachineArn"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let ex =
            stratus_core::Target::deliver(&*states, &arn, Delivery::body(r#"{"from":"rule"}"#))
                .await
                .expect("delivered");
        assert!(ex.starts_with("arn:aws:states:us-east-1:123456789012:execution:target:"));
        crate::test_support::until(
            || {
                states
                    .load_full_row(&ex)
                    .ok()
                    .flatten()
                    .is_some_and(|r| r.status == "SUCCEEDED")
            },
            5_000,
            "the execution",
        )
        .await;
        let row = states.load_full_row(&ex).ok().flatten().expect("row");
        assert_eq!(row.output.as_deref(), Some(r#"{"from":"rule"}"#));
        let missing = arn.replace(":target", ":nope");
        let e = stratus_core::Target::deliver(&*states, &missing, Delivery::body("{}"))
            .await
            .unwrap_err();
        assert_eq!(e.code, "StateMachineDoesNotExist");
    }
}
