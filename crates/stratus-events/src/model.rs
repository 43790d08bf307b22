//! Stored records (event buses, rules with their targets, pending
//! deliveries), request reading helpers, and the errors EventBridge
//! answers with. Shapes follow botocore's `events` 2015-10-07 model; every
//! EventBridge client error is HTTP 400.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use stratus_core::AwsError;

/// The name of every region's default event bus.
pub const DEFAULT_BUS: &str = "default";

/// `ResourceNotFoundException` (400).
pub fn not_found(msg: impl Into<String>) -> AwsError {
    AwsError::new(400, "ResourceNotFoundException", msg)
}

/// `ResourceAlreadyExistsException` (400).
pub fn already_exists(msg: impl Into<String>) -> AwsError {
    AwsError::new(400, "ResourceAlreadyExistsException", msg)
}

/// `ValidationException` (400).
pub fn validation(msg: impl Into<String>) -> AwsError {
    AwsError::new(400, "ValidationException", msg)
}

/// `LimitExceededException` (400).
pub fn limit_exceeded(msg: impl Into<String>) -> AwsError {
    AwsError::new(400, "LimitExceededException", msg)
}

/// `InvalidEventPatternException` (400).
pub fn invalid_pattern(msg: impl Into<String>) -> AwsError {
    AwsError::new(400, "InvalidEventPatternException", msg)
}

/// `InternalException` (500), for store failures.
pub fn internal(msg: impl std::fmt::Display) -> AwsError {
    AwsError::new(500, "InternalException", format!("{msg}"))
}

/// AWS's wording of one failed constraint, for
/// [`AwsError::validation_errors`].
pub fn constraint(value: &str, field: &str, what: &str) -> String {
    format!("Value '{value}' at '{field}' failed to satisfy constraint: {what}")
}

/// An event bus. The default bus of a region exists without a record
/// until it is tagged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BusRec {
    /// `default` or a custom bus name.
    pub name: String,
    /// `arn:aws:events:<region>:<account>:event-bus/<name>`.
    pub arn: String,
    /// `Description` (at most 512 characters).
    #[serde(default)]
    pub description: Option<String>,
    /// ms since the epoch.
    pub created_ms: i64,
    /// ms since the epoch.
    pub modified_ms: i64,
    /// Tags by key.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// A rule and its targets (each target kept as the JSON object PutTargets
/// received, so ListTargetsByRule answers it back unchanged).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleRec {
    /// Rule name (`[\.\-_A-Za-z0-9]+`, at most 64 characters).
    pub name: String,
    /// Name of the rule's event bus.
    pub bus: String,
    /// `arn:aws:events:<region>:<account>:rule/[<bus>/]<name>`.
    pub arn: String,
    /// `EventPattern` as given.
    #[serde(default)]
    pub event_pattern: Option<String>,
    /// `ScheduleExpression` as given.
    #[serde(default)]
    pub schedule: Option<String>,
    /// `ENABLED` or `DISABLED`.
    pub state: String,
    /// `Description` (at most 512 characters).
    #[serde(default)]
    pub description: Option<String>,
    /// `RoleArn` (kept, not used).
    #[serde(default)]
    pub role_arn: Option<String>,
    /// ms since the epoch.
    pub created_ms: i64,
    /// Tags by key.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The targets, each the `Target` object PutTargets received.
    #[serde(default)]
    pub targets: Vec<Map<String, Value>>,
}

impl RuleRec {
    /// True when the rule's `State` lets it match or fire.
    pub fn enabled(&self) -> bool {
        self.state != "DISABLED"
    }
}

/// One delivery waiting to be made (or retried) to a target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingDelivery {
    /// The target's `Arn`.
    pub target_arn: String,
    /// The target's `Id`.
    pub target_id: String,
    /// The ARN of the rule that matched (or fired).
    pub rule_arn: String,
    /// What the target receives (JSON or text).
    pub payload: String,
    /// The event's `source` (these four fields feed targets that are
    /// event buses).
    pub source: String,
    /// The event's `detail-type`.
    pub detail_type: String,
    /// The event's `resources`.
    pub resources: Vec<String>,
    /// The event's `detail`, JSON text.
    pub detail: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the event was first offered, ms since the epoch.
    pub first_ms: i64,
    /// RetryPolicy: most retries (AWS's default 185).
    pub max_retries: u32,
    /// RetryPolicy: most age in seconds (AWS's default 86400).
    pub max_age_s: i64,
    /// DeadLetterConfig.Arn: an SQS queue for events that fail for good.
    #[serde(default)]
    pub dead_letter_arn: Option<String>,
    /// `SqsParameters.MessageGroupId` of the target (FIFO queues); the
    /// event id is then the message deduplication id.
    #[serde(default)]
    pub message_group_id: Option<String>,
    /// The event's id.
    #[serde(default)]
    pub event_id: String,
    /// Region of the rule.
    pub region: String,
    /// True when the target receives the whole event (no Input,
    /// InputPath or InputTransformer).
    #[serde(default)]
    pub whole_event: bool,
}

/// The request body of one operation.
pub struct Input(pub Map<String, Value>);

impl Input {
    /// Parses a json-protocol body (an empty body is `{}`).
    ///
    /// Errors: `SerializationException` when it is not a JSON object.
    pub fn parse(body: &[u8]) -> Result<Input, AwsError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Input(Map::new()));
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => Ok(Input(m)),
            _ => Err(AwsError::new(
                400,
                "SerializationException",
                "The request body is not a JSON object.",
            )),
        }
    }

    /// An optional string member.
    ///
    /// Errors: `SerializationException` when it is not a string.
    pub fn opt_str(&self, k: &str) -> Result<Option<&str>, AwsError> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(AwsError::new(
                400,
                "SerializationException",
                format!("{k} must be a string."),
            )),
        }
    }

    /// A required string member.
    ///
    /// Errors: `ValidationException` when missing.
    pub fn str(&self, k: &str) -> Result<&str, AwsError> {
        self.opt_str(k)?.ok_or_else(|| {
            AwsError::validation_errors(&[format!(
                "Value null at '{}' failed to satisfy constraint: Member must not be null",
                lower_first(k)
            )])
        })
    }

    /// An optional boolean member.
    pub fn opt_bool(&self, k: &str) -> Result<Option<bool>, AwsError> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(AwsError::new(
                400,
                "SerializationException",
                format!("{k} must be a boolean."),
            )),
        }
    }

    /// An optional integer member within `lo..=hi`.
    ///
    /// Errors: `ValidationException` when out of range.
    pub fn opt_int(&self, k: &str, lo: i64, hi: i64) -> Result<Option<i64>, AwsError> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_i64() {
                Some(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
                Some(n) => Err(AwsError::validation_errors(&[constraint(
                    &n.to_string(),
                    &lower_first(k),
                    &format!("Member must have value between {lo} and {hi}"),
                )])),
                None => Err(AwsError::new(
                    400,
                    "SerializationException",
                    format!("{k} must be an integer."),
                )),
            },
        }
    }

    /// An optional array member.
    pub fn opt_array(&self, k: &str) -> Result<Option<&Vec<Value>>, AwsError> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(AwsError::new(
                400,
                "SerializationException",
                format!("{k} must be a list."),
            )),
        }
    }
}

/// `Name` -> `name`, as AWS names fields in validation messages.
pub fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Checks a name against `[\.\-_A-Za-z0-9]+` (rules, targets) or
/// `[/\.\-_A-Za-z0-9]+` (buses) and a length limit.
///
/// Errors: `ValidationException` in AWS's wording.
pub fn check_name(value: &str, field: &str, max: usize, slash: bool) -> Result<(), AwsError> {
    let ok_char =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') || (slash && c == '/');
    let mut failures = Vec::new();
    if value.is_empty() || value.chars().count() > max {
        failures.push(constraint(
            value,
            field,
            &format!("Member must have length between 1 and {max}"),
        ));
    }
    if !value.chars().all(ok_char) {
        let re = if slash {
            "[/\\.\\-_A-Za-z0-9]+"
        } else {
            "[\\.\\-_A-Za-z0-9]+"
        };
        failures.push(constraint(
            value,
            field,
            &format!("Member must satisfy regular expression pattern: {re}"),
        ));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(AwsError::validation_errors(&failures))
    }
}

/// Reads `Tags` (`[{"Key", "Value"}]`).
///
/// Errors: `ValidationException` for a malformed tag.
pub fn read_tags(v: Option<&Vec<Value>>) -> Result<BTreeMap<String, String>, AwsError> {
    let mut out = BTreeMap::new();
    for t in v.into_iter().flatten() {
        let key = t.get("Key").and_then(Value::as_str);
        let value = t.get("Value").and_then(Value::as_str);
        match (key, value) {
            (Some(k), Some(v))
                if !k.is_empty() && k.chars().count() <= 128 && v.chars().count() <= 256 =>
            {
                out.insert(k.to_string(), v.to_string());
            }
            _ => {
                return Err(validation(
                    "Every tag needs a Key (1-128 characters) and a Value (0-256 characters).",
                ));
            }
        }
    }
    Ok(out)
}

/// `Tags` in the answer shape.
pub fn tags_json(tags: &BTreeMap<String, String>) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| serde_json::json!({"Key": k, "Value": v}))
            .collect(),
    )
}

/// `2015-11-11T21:29:54Z`: the `time` of events (UTC, whole seconds).
pub fn event_time(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Reads a `Time` member: epoch seconds (what the SDKs send in the json
/// protocol) or an RFC 3339 string. Gives ms since the epoch.
pub fn parse_time(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_f64().map(|s| (s * 1000.0).round() as i64),
        Value::String(s) => {
            if let Ok(f) = s.parse::<f64>() {
                return Some((f * 1000.0).round() as i64);
            }
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .ok()
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(event_time(1_447_277_394_000), "2015-11-11T21:29:54Z");
        assert_eq!(
            parse_time(&Value::from(1_447_277_394.5)),
            Some(1_447_277_394_500)
        );
        assert_eq!(
            parse_time(&Value::from("2015-11-11T21:29:54Z")),
            Some(1_447_277_394_000)
        );
        assert_eq!(parse_time(&Value::from("yesterday")), None);
    }

    #[test]
    fn names() {
        assert!(check_name("my-rule_1.x", "name", 64, false).is_ok());
        let e = check_name("bad name", "name", 64, false).unwrap_err();
        assert_eq!(e.code, "ValidationException");
        assert!(e.message.contains("regular expression"));
        assert!(check_name(&"a".repeat(65), "name", 64, false).is_err());
        assert!(check_name("a/b", "name", 256, true).is_ok());
    }
}
