//! What the store keeps for Application Auto Scaling (scalable targets,
//! scaling policies, scheduled actions, scaling activities), how each is
//! shown on the wire, the errors of the service, and request parsing.
//!
//! Shapes and error codes follow botocore's `application-autoscaling`
//! 2016-02-06 model (json 1.1). Timestamps travel as epoch seconds.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use stratus_core::{AwsError, AwsResult};

/// Store kinds.
pub const KIND_TARGET: &str = "autoscaling_target";
pub const KIND_POLICY: &str = "autoscaling_policy";
pub const KIND_ACTION: &str = "autoscaling_scheduled_action";
pub const KIND_ACTIVITY: &str = "autoscaling_activity";

/// The one namespace / dimension stratus scales.
pub const LAMBDA_NAMESPACE: &str = "lambda";
pub const LAMBDA_DIMENSION: &str = "lambda:function:ProvisionedConcurrency";
pub const LAMBDA_METRIC: &str = "LambdaProvisionedConcurrencyUtilization";

/// AWS's quotas per scalable target.
pub const MAX_POLICIES_PER_TARGET: usize = 50;
pub const MAX_ACTIONS_PER_TARGET: usize = 200;

/// How long activities are kept (AWS: six weeks).
pub const ACTIVITY_RETENTION_MS: i64 = 42 * 24 * 3600 * 1000;

/// `ServiceNamespace` enum of the model.
pub const NAMESPACES: &[&str] = &[
    "ecs",
    "elasticmapreduce",
    "ec2",
    "appstream",
    "dynamodb",
    "rds",
    "sagemaker",
    "custom-resource",
    "comprehend",
    "lambda",
    "cassandra",
    "kafka",
    "elasticache",
    "neptune",
    "workspaces",
];

/// `ScalableDimension` enum of the model.
pub const DIMENSIONS: &[&str] = &[
    "ecs:service:DesiredCount",
    "ec2:spot-fleet-request:TargetCapacity",
    "elasticmapreduce:instancegroup:InstanceCount",
    "appstream:fleet:DesiredCapacity",
    "dynamodb:table:ReadCapacityUnits",
    "dynamodb:table:WriteCapacityUnits",
    "dynamodb:index:ReadCapacityUnits",
    "dynamodb:index:WriteCapacityUnits",
    "rds:cluster:ReadReplicaCount",
    "sagemaker:variant:DesiredInstanceCount",
    "custom-resource:ResourceType:Property",
    "comprehend:document-classifier-endpoint:DesiredInferenceUnits",
    "comprehend:entity-recognizer-endpoint:DesiredInferenceUnits",
    "lambda:function:ProvisionedConcurrency",
    "cassandra:table:ReadCapacityUnits",
    "cassandra:table:WriteCapacityUnits",
    "kafka:broker-storage:VolumeSize",
    "elasticache:cache-cluster:Nodes",
    "elasticache:replication-group:NodeGroups",
    "elasticache:replication-group:Replicas",
    "neptune:cluster:ReadReplicaCount",
    "sagemaker:variant:DesiredProvisionedConcurrency",
    "sagemaker:inference-component:DesiredCopyCount",
    "workspaces:workspacespool:DesiredUserSessions",
];

/// `PolicyType` enum of the model.
pub const POLICY_TYPES: &[&str] = &["StepScaling", "TargetTrackingScaling", "PredictiveScaling"];

// ---------------------------------------------------------------- errors

/// `ValidationException` (400).
pub fn validation(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "ValidationException", message)
}

/// `ObjectNotFoundException` (400).
pub fn object_not_found(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "ObjectNotFoundException", message)
}

/// `InvalidNextTokenException` (400).
pub fn invalid_next_token() -> AwsError {
    AwsError::new(400, "InvalidNextTokenException", "Invalid NextToken")
}

/// `LimitExceededException` (400).
pub fn limit_exceeded(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "LimitExceededException", message)
}

/// `SerializationException` (400): the body is not the JSON the operation takes.
pub fn serialization(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "SerializationException", message)
}

/// Maps an internal failure (store, ...) to `InternalServiceException`.
pub fn internal(e: AwsError) -> AwsError {
    if e.status >= 500 {
        AwsError::new(500, "InternalServiceException", e.message)
    } else {
        e
    }
}

/// `ObjectNotFoundException` for a scalable target.
pub fn target_not_found(k: &TargetKey, registered: bool) -> AwsError {
    object_not_found(format!(
        "No scalable target {} for service namespace: {}, resource ID: {}, scalable dimension: {}",
        if registered { "registered" } else { "found" },
        k.namespace,
        k.resource_id,
        k.dimension
    ))
}

// ---------------------------------------------------------------- records

/// What identifies a scalable target.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TargetKey {
    pub namespace: String,
    pub resource_id: String,
    pub dimension: String,
}

impl TargetKey {
    /// Store id: `namespace|dimension|resource-id`.
    pub fn id(&self) -> String {
        format!("{}|{}|{}", self.namespace, self.dimension, self.resource_id)
    }

    /// Store id of a policy or scheduled action of this target.
    pub fn child_id(&self, name: &str) -> String {
        format!("{}|{name}", self.id())
    }

    /// The function and qualifier of a `function:NAME:QUALIFIER` resource id.
    pub fn function(&self) -> Option<(&str, &str)> {
        parse_lambda_resource(&self.resource_id)
    }
}

/// `function:NAME:QUALIFIER` with a valid function name and a version or
/// alias (not `$LATEST`).
pub fn parse_lambda_resource(rid: &str) -> Option<(&str, &str)> {
    let rest = rid.strip_prefix("function:")?;
    let (name, qualifier) = rest.split_once(':')?;
    (stratus_core::arn::valid_function_name(name)
        && qualifier != "$LATEST"
        && stratus_core::arn::valid_qualifier(qualifier))
    .then_some((name, qualifier))
}

/// `SuspendedState`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspended {
    pub dynamic_in: bool,
    pub dynamic_out: bool,
    pub scheduled: bool,
}

/// A scalable target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetRecord {
    pub key: TargetKey,
    pub min_capacity: i64,
    pub max_capacity: i64,
    pub role_arn: String,
    pub arn: String,
    pub created_ms: i64,
    #[serde(default)]
    pub suspended: Suspended,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// An alarm a target tracking policy created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmRecord {
    pub name: String,
    pub arn: String,
}

/// A scaling policy (target tracking).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyRecord {
    pub key: TargetKey,
    pub name: String,
    pub arn: String,
    pub policy_type: String,
    /// `TargetTrackingScalingPolicyConfiguration` as given (echoed back).
    pub configuration: Value,
    pub alarm_high: AlarmRecord,
    #[serde(default)]
    pub alarm_low: Option<AlarmRecord>,
    pub created_ms: i64,
}

/// A scheduled action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    pub key: TargetKey,
    pub name: String,
    pub arn: String,
    pub schedule: String,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub start_ms: Option<i64>,
    #[serde(default)]
    pub end_ms: Option<i64>,
    #[serde(default)]
    pub min_capacity: Option<i64>,
    #[serde(default)]
    pub max_capacity: Option<i64>,
    pub created_ms: i64,
    /// When the action runs next (None: never again).
    #[serde(default)]
    pub next_run_ms: Option<i64>,
}

/// What an in-progress activity waits for: the provisioned concurrency
/// configuration of a function version or alias to become READY.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingCapacity {
    pub function: String,
    pub qualifier: String,
    pub desired: u32,
}

/// A scaling activity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityRecord {
    pub id: String,
    pub key: TargetKey,
    pub description: String,
    pub cause: String,
    pub start_ms: i64,
    #[serde(default)]
    pub end_ms: Option<i64>,
    /// `Pending`, `InProgress`, `Successful`, `Overridden`, `Unfulfilled`, `Failed`.
    pub status: String,
    #[serde(default)]
    pub status_message: Option<String>,
    #[serde(default)]
    pub pending: Option<PendingCapacity>,
}

impl ActivityRecord {
    /// Store id: sorts by time within a target.
    pub fn store_id(&self) -> String {
        format!("{}|{:015}|{}", self.key.id(), self.start_ms, self.id)
    }
}

// ---------------------------------------------------------------- wire views

/// Epoch seconds, as the json protocol sends timestamps.
pub fn epoch(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

impl TargetRecord {
    pub fn to_wire(&self) -> Value {
        json!({
            "ServiceNamespace": self.key.namespace,
            "ResourceId": self.key.resource_id,
            "ScalableDimension": self.key.dimension,
            "MinCapacity": self.min_capacity,
            "MaxCapacity": self.max_capacity,
            "RoleARN": self.role_arn,
            "CreationTime": epoch(self.created_ms),
            "SuspendedState": {
                "DynamicScalingInSuspended": self.suspended.dynamic_in,
                "DynamicScalingOutSuspended": self.suspended.dynamic_out,
                "ScheduledScalingSuspended": self.suspended.scheduled,
            },
            "ScalableTargetARN": self.arn,
        })
    }
}

impl PolicyRecord {
    pub fn alarms(&self) -> Value {
        let mut a =
            vec![json!({"AlarmName": self.alarm_high.name, "AlarmARN": self.alarm_high.arn})];
        if let Some(l) = &self.alarm_low {
            a.push(json!({"AlarmName": l.name, "AlarmARN": l.arn}));
        }
        Value::Array(a)
    }

    pub fn to_wire(&self) -> Value {
        json!({
            "PolicyARN": self.arn,
            "PolicyName": self.name,
            "ServiceNamespace": self.key.namespace,
            "ResourceId": self.key.resource_id,
            "ScalableDimension": self.key.dimension,
            "PolicyType": self.policy_type,
            "TargetTrackingScalingPolicyConfiguration": self.configuration,
            "Alarms": self.alarms(),
            "CreationTime": epoch(self.created_ms),
        })
    }
}

impl ActionRecord {
    pub fn to_wire(&self) -> Value {
        let mut v = json!({
            "ScheduledActionName": self.name,
            "ScheduledActionARN": self.arn,
            "ServiceNamespace": self.key.namespace,
            "Schedule": self.schedule,
            "ResourceId": self.key.resource_id,
            "ScalableDimension": self.key.dimension,
            "CreationTime": epoch(self.created_ms),
        });
        if let Some(tz) = &self.timezone {
            v["Timezone"] = json!(tz);
        }
        if let Some(t) = self.start_ms {
            v["StartTime"] = epoch(t);
        }
        if let Some(t) = self.end_ms {
            v["EndTime"] = epoch(t);
        }
        let mut action = Map::new();
        if let Some(n) = self.min_capacity {
            action.insert("MinCapacity".into(), json!(n));
        }
        if let Some(n) = self.max_capacity {
            action.insert("MaxCapacity".into(), json!(n));
        }
        v["ScalableTargetAction"] = Value::Object(action);
        v
    }
}

impl ActivityRecord {
    pub fn to_wire(&self) -> Value {
        let mut v = json!({
            "ActivityId": self.id,
            "ServiceNamespace": self.key.namespace,
            "ResourceId": self.key.resource_id,
            "ScalableDimension": self.key.dimension,
            "Description": self.description,
            "Cause": self.cause,
            "StartTime": epoch(self.start_ms),
            "StatusCode": self.status,
        });
        if let Some(t) = self.end_ms {
            v["EndTime"] = epoch(t);
        }
        if let Some(m) = &self.status_message {
            v["StatusMessage"] = json!(m);
        }
        v
    }
}

// ---------------------------------------------------------------- pagination

/// One page of `items` (sorted by their key) starting at `token`, with the
/// token of the next page. Tokens are opaque: the key of the next item.
pub fn paginate(
    items: Vec<(String, Value)>,
    max_results: Option<i64>,
    token: Option<&str>,
) -> AwsResult<(Vec<Value>, Option<String>)> {
    let max = match max_results {
        None => 50,
        Some(n) if (1..=50).contains(&n) => n as usize,
        Some(n) => {
            return Err(validation(format!(
                "1 validation error detected: Value '{n}' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 50"
            )));
        }
    };
    let start = match token {
        None => 0,
        Some(t) => {
            let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.strip_prefix("stratus:").map(str::to_string))
                .ok_or_else(invalid_next_token)?;
            items.partition_point(|(k, _)| k < &key)
        }
    };
    let mut rest = items.into_iter().skip(start);
    let page: Vec<Value> = rest.by_ref().take(max).map(|(_, v)| v).collect();
    let next = rest.next().map(|(k, _)| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("stratus:{k}"))
    });
    Ok((page, next))
}

// ---------------------------------------------------------------- input

/// A json-1.1 request body.
pub struct Input(Map<String, Value>);

/// `ResourceId` → `resourceId`: the member name AWS's messages use.
fn wire_name(key: &str) -> String {
    let mut c = key.chars();
    match c.next() {
        Some(f) => f.to_ascii_lowercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

fn type_error(key: &str, want: &str) -> AwsError {
    serialization(format!("{key} must be {want}."))
}

impl Input {
    /// Parses a body (empty means `{}`).
    pub fn parse(body: &[u8]) -> AwsResult<Input> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Input(Map::new()));
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => Ok(Input(m)),
            Ok(_) => Err(serialization("The request body must be a JSON object.")),
            Err(e) => Err(serialization(format!(
                "The request body is not valid JSON: {e}"
            ))),
        }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn str(&self, key: &str) -> AwsResult<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(type_error(key, "a string")),
        }
    }

    /// A required string member of 1..=`max` characters.
    pub fn req_str(&self, key: &str, max: usize) -> AwsResult<String> {
        let s = self.str(key)?.ok_or_else(|| null_error(key))?;
        check_len(key, &s, max)?;
        Ok(s)
    }

    /// A required member of an enum.
    pub fn req_enum(&self, key: &str, values: &[&str]) -> AwsResult<String> {
        let s = self.str(key)?.ok_or_else(|| null_error(key))?;
        check_enum(key, &s, values)?;
        Ok(s)
    }

    pub fn int(&self, key: &str) -> AwsResult<Option<i64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| type_error(key, "an integer")),
        }
    }

    pub fn float(&self, key: &str) -> AwsResult<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| type_error(key, "a number")),
        }
    }

    pub fn bool(&self, key: &str) -> AwsResult<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(type_error(key, "a boolean")),
        }
    }

    /// A timestamp: epoch seconds (what the SDKs send), or ISO 8601 text.
    pub fn time_ms(&self, key: &str) -> AwsResult<Option<i64>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_f64()
                .filter(|f| f.is_finite() && f.abs() < 1e12)
                .map(|f| Some((f * 1000.0).round() as i64))
                .ok_or_else(|| type_error(key, "a timestamp")),
            Some(Value::String(s)) => s
                .parse::<jiff::Timestamp>()
                .map(|t| Some(t.as_millisecond()))
                .map_err(|_| type_error(key, "a timestamp")),
            Some(_) => Err(type_error(key, "a timestamp")),
        }
    }

    /// A list of strings of at most `max_items`.
    pub fn str_list(&self, key: &str, max_items: usize) -> AwsResult<Option<Vec<String>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => {
                let list = a
                    .iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect::<Option<Vec<String>>>()
                    .ok_or_else(|| type_error(key, "a list of strings"))?;
                if list.len() > max_items {
                    return Err(validation(format!(
                        "1 validation error detected: Value '[{}]' at '{}' failed to satisfy constraint: Member must have length less than or equal to {max_items}",
                        list.join(", "),
                        wire_name(key)
                    )));
                }
                Ok(Some(list))
            }
            Some(_) => Err(type_error(key, "a list of strings")),
        }
    }

    /// A structure member.
    pub fn obj(&self, key: &str) -> AwsResult<Option<Input>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(Input(m.clone()))),
            Some(_) => Err(type_error(key, "an object")),
        }
    }

    /// A map of strings.
    pub fn str_map(&self, key: &str) -> AwsResult<Option<BTreeMap<String, String>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect::<Option<BTreeMap<_, _>>>()
                .map(Some)
                .ok_or_else(|| type_error(key, "a map of strings")),
            Some(_) => Err(type_error(key, "a map of strings")),
        }
    }

    /// The members as they came.
    pub fn raw(&self) -> &Map<String, Value> {
        &self.0
    }
}

/// `Value null at 'x' failed to satisfy constraint: Member must not be null`.
pub fn null_error(key: &str) -> AwsError {
    validation(format!(
        "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
        wire_name(key)
    ))
}

pub fn check_len(key: &str, s: &str, max: usize) -> AwsResult<()> {
    let n = s.chars().count();
    if n == 0 || n > max {
        return Err(validation(format!(
            "1 validation error detected: Value '{s}' at '{}' failed to satisfy constraint: Member must have length between 1 and {max}",
            wire_name(key)
        )));
    }
    Ok(())
}

pub fn check_enum(key: &str, s: &str, values: &[&str]) -> AwsResult<()> {
    if !values.contains(&s) {
        return Err(validation(format!(
            "1 validation error detected: Value '{s}' at '{}' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
            wire_name(key),
            values.join(", ")
        )));
    }
    Ok(())
}

/// `ScheduledActionName`: 1-256 characters, no leading or trailing space,
/// none of `:`, `/`, `|` or control characters.
pub fn check_action_name(s: &str) -> AwsResult<()> {
    check_len("ScheduledActionName", s, 256)?;
    let bad = s.starts_with(' ')
        || s.ends_with(' ')
        || s.chars()
            .any(|c| matches!(c, ':' | '/' | '|') || c.is_control());
    if bad {
        return Err(validation(format!(
            "1 validation error detected: Value '{s}' at 'scheduledActionName' failed to satisfy constraint: Member must satisfy regular expression pattern: (?!((^[ ]+.*)|(.*([\\u0000-\\u001f]|[\\u007f-\\u009f]|[:/|])+.*)|(.*[ ]+$))).+"
        )));
    }
    Ok(())
}

/// `PolicyName`: 1-256 printable characters.
pub fn check_policy_name(s: &str) -> AwsResult<()> {
    check_len("PolicyName", s, 256)?;
    if s.chars().any(|c| c.is_control()) {
        return Err(validation(format!(
            "1 validation error detected: Value '{s}' at 'policyName' failed to satisfy constraint: Member must satisfy regular expression pattern: \\p{{Print}}+"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_resource_ids() {
        assert_eq!(
            parse_lambda_resource("function:my-api-function:prod"),
            Some(("my-api-function", "prod"))
        );
        assert_eq!(parse_lambda_resource("function:f:1"), Some(("f", "1")));
        for bad in [
            "function:f",
            "function:f:$LATEST",
            "function::prod",
            "fn:f:prod",
            "function:f:prod:extra",
            "service/default/web",
        ] {
            assert_eq!(parse_lambda_resource(bad), None, "{bad}");
        }
    }

    #[test]
    fn pages() {
        let items: Vec<(String, Value)> = (0..5).map(|i| (format!("k{i}"), json!(i))).collect();
        let (p, next) = paginate(items.clone(), Some(2), None).unwrap();
        assert_eq!(p, [json!(0), json!(1)]);
        let (p, next) = paginate(items.clone(), Some(2), next.as_deref()).unwrap();
        assert_eq!(p, [json!(2), json!(3)]);
        let (p, next) = paginate(items.clone(), Some(2), next.as_deref()).unwrap();
        assert_eq!((p, next), (vec![json!(4)], None));
        assert_eq!(
            paginate(items.clone(), None, Some("garbage!"))
                .unwrap_err()
                .code,
            "InvalidNextTokenException"
        );
        assert_eq!(
            paginate(items, Some(51), None).unwrap_err().code,
            "ValidationException"
        );
    }

    #[test]
    fn input_types() {
        let i = Input::parse(br#"{"A": "x", "B": 3, "C": true, "D": 1700000000.5, "E": ["a"]}"#)
            .unwrap();
        assert_eq!(i.str("A").unwrap().as_deref(), Some("x"));
        assert_eq!(i.int("B").unwrap(), Some(3));
        assert_eq!(i.bool("C").unwrap(), Some(true));
        assert_eq!(i.time_ms("D").unwrap(), Some(1_700_000_000_500));
        assert_eq!(i.str_list("E", 50).unwrap(), Some(vec!["a".to_string()]));
        assert_eq!(i.int("A").unwrap_err().code, "SerializationException");
        assert_eq!(
            i.req_str("Missing", 10).unwrap_err().message,
            "1 validation error detected: Value null at 'missing' failed to satisfy constraint: Member must not be null"
        );
        assert!(Input::parse(b"[1]").is_err());
        assert!(Input::parse(b"{nope").is_err());
        assert!(Input::parse(b"").is_ok());
    }

    #[test]
    fn action_names() {
        assert!(check_action_name("morning-scale-up").is_ok());
        for bad in ["", " x", "x ", "a:b", "a/b", "a|b", "a\nb"] {
            assert!(check_action_name(bad).is_err(), "{bad:?}");
        }
    }
}
