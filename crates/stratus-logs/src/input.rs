//! Request fields, checked against the botocore model's types and
//! constraints (`logs` 2014-03-28).

use serde_json::{Map, Value};
use stratus_core::{AwsError, AwsResult};

use crate::invalid;

/// A request body: a JSON object.
pub(crate) struct Input(pub Map<String, Value>);

/// `SerializationException` (HTTP 400): a member of the wrong JSON type.
pub(crate) fn serialization(msg: String) -> AwsError {
    AwsError::new(400, "SerializationException", msg)
}

impl Input {
    /// Parses the body; an empty body is an empty object.
    ///
    /// Errors: `SerializationException` when it is not a JSON object.
    pub fn parse(body: &[u8]) -> AwsResult<Input> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Input(Map::new()));
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => Ok(Input(m)),
            Ok(_) => Err(serialization(
                "The request body must be a JSON object.".into(),
            )),
            Err(e) => Err(serialization(format!(
                "The request body is not valid JSON: {e}"
            ))),
        }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    pub fn opt_str(&self, key: &str) -> AwsResult<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(serialization(format!("{key} must be a string."))),
        }
    }

    pub fn req_str(&self, key: &str) -> AwsResult<&str> {
        self.opt_str(key)?
            .ok_or_else(|| invalid(format!("Missing required parameter {key}.")))
    }

    pub fn opt_i64(&self, key: &str) -> AwsResult<Option<i64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| serialization(format!("{key} must be an integer."))),
        }
    }

    pub fn opt_bool(&self, key: &str) -> AwsResult<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(serialization(format!("{key} must be a boolean."))),
        }
    }

    pub fn opt_list(&self, key: &str) -> AwsResult<Option<&Vec<Value>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(serialization(format!("{key} must be a list."))),
        }
    }

    pub fn opt_str_list(&self, key: &str) -> AwsResult<Option<Vec<&str>>> {
        match self.opt_list(key)? {
            None => Ok(None),
            Some(a) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .ok_or_else(|| serialization(format!("{key} must be a list of strings.")))
                })
                .collect::<AwsResult<Vec<_>>>()
                .map(Some),
        }
    }

    pub fn opt_map(&self, key: &str) -> AwsResult<Option<&Map<String, Value>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(serialization(format!("{key} must be a map."))),
        }
    }

    /// An integer limit within `lo..=hi`.
    ///
    /// Errors: `InvalidParameterException` outside the range.
    pub fn limit(&self, key: &str, lo: i64, hi: i64) -> AwsResult<Option<usize>> {
        match self.opt_i64(key)? {
            None => Ok(None),
            Some(n) if (lo..=hi).contains(&n) => Ok(Some(n as usize)),
            Some(n) => Err(invalid(format!(
                "1 validation error detected: Value '{n}' at '{key}' failed to satisfy constraint: Member must have value between {lo} and {hi} inclusive"
            ))),
        }
    }
}

fn constraint(value: &str, field: &str, what: &str) -> AwsError {
    invalid(format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {what}"
    ))
}

/// Checks a log group name: 1-512 characters of `[.\-_/#A-Za-z0-9]`.
///
/// Errors: `InvalidParameterException` naming the constraint.
pub(crate) fn check_group_name(name: &str, field: &str) -> AwsResult<()> {
    if name.is_empty() || name.chars().count() > 512 {
        return Err(constraint(
            name,
            field,
            "Member must have length between 1 and 512",
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | '#'))
    {
        return Err(constraint(
            name,
            field,
            "Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+",
        ));
    }
    Ok(())
}

/// Checks a log stream name: 1-512 characters, no `:` or `*`.
///
/// Errors: `InvalidParameterException` naming the constraint.
pub(crate) fn check_stream_name(name: &str, field: &str) -> AwsResult<()> {
    if name.is_empty() || name.chars().count() > 512 {
        return Err(constraint(
            name,
            field,
            "Member must have length between 1 and 512",
        ));
    }
    if name.contains([':', '*']) {
        return Err(constraint(
            name,
            field,
            "Member must satisfy regular expression pattern: [^:*]*",
        ));
    }
    Ok(())
}

/// The log group name of a log group ARN
/// (`arn:aws:logs:<region>:<account>:log-group:<name>`, optionally ending
/// in `:*`).
pub(crate) fn group_of_arn(arn: &str) -> Option<&str> {
    let rest = arn.strip_prefix("arn:")?;
    let (_, name) = rest.split_once(":log-group:")?;
    let name = name.strip_suffix(":*").unwrap_or(name);
    if rest.split(':').nth(1) != Some("logs") || name.is_empty() {
        return None;
    }
    Some(name)
}

impl Input {
    /// The log group a read names: `logGroupName`, or `logGroupIdentifier`
    /// (a name or a log group ARN); exactly one of them.
    ///
    /// Errors: `InvalidParameterException` when both or neither are given,
    /// or the name is malformed.
    pub fn group(&self) -> AwsResult<String> {
        match (
            self.opt_str("logGroupName")?,
            self.opt_str("logGroupIdentifier")?,
        ) {
            (Some(_), Some(_)) => Err(invalid(
                "LogGroup name and LogGroup ARN are mutually exclusive parameters.",
            )),
            (None, None) => Err(invalid(
                "Either logGroupName or logGroupIdentifier must be specified.",
            )),
            (Some(n), None) => {
                check_group_name(n, "logGroupName")?;
                Ok(n.to_string())
            }
            (None, Some(id)) => {
                let name = if id.starts_with("arn:") {
                    group_of_arn(id)
                        .ok_or_else(|| invalid(format!("'{id}' is not a log group ARN.")))?
                } else {
                    id
                };
                check_group_name(name, "logGroupIdentifier")?;
                Ok(name.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_name_their_group() {
        assert_eq!(
            group_of_arn("arn:aws:logs:us-east-1:123456789012:log-group:/aws/x:*"),
            Some("/aws/x")
        );
        assert_eq!(
            group_of_arn("arn:aws:logs:us-east-1:123456789012:log-group:g"),
            Some("g")
        );
        assert_eq!(group_of_arn("arn:aws:sqs:us-east-1:1:log-group:g"), None);
        assert_eq!(group_of_arn("g"), None);
    }

    #[test]
    fn names_follow_the_model() {
        assert!(check_group_name("/aws/lambda/f-1_x.y#z", "n").is_ok());
        assert!(check_group_name("bad name", "n").is_err());
        assert!(check_group_name("", "n").is_err());
        assert!(check_stream_name("2024/01/01/[$LATEST]abc", "n").is_ok());
        assert!(check_stream_name("a:b", "n").is_err());
    }
}
