//! Names, ARNs and the errors Step Functions returns for them.
//!
//! Every Step Functions error is HTTP 400 with the code as the botocore
//! model (`stepfunctions/2016-11-23`) names it. Messages follow AWS's
//! wording (`State Machine Does Not Exist: '<arn>'`, `Invalid Arn: '...'`).

use stratus_core::AwsError;

/// A Step Functions error: HTTP 400 with `code` (`InvalidArn`,
/// `StateMachineDoesNotExist`, ...) and `message`.
pub fn err(code: &str, message: impl Into<String>) -> AwsError {
    AwsError::new(400, code, message)
}

/// `ValidationException` worded as AWS words constraint failures:
/// `1 validation error detected: Value 'x' at 'name' failed to satisfy constraint: ...`.
pub fn validation(value: &str, field: &str, constraint: &str) -> AwsError {
    AwsError::validation_errors(&[format!(
        "Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
    )])
}

/// The longest state machine or execution name: 80 characters
/// (model shape `Name`, max 80).
pub const MAX_NAME: usize = 80;

/// Checks a state machine, execution or activity name as AWS documents it
/// (CreateStateMachine `name`): 1 to 80 characters and none of white space,
/// `< > { } [ ]`, `? *`, `" # % \ ^ | ~ ` $ & , ; : /`, or control
/// characters (U+0000-001F, U+007F-009F).
///
/// Errors: `InvalidName` (`Invalid Name: '<name>'`).
pub fn check_name(name: &str) -> Result<(), AwsError> {
    let bad = name.is_empty()
        || name.chars().count() > MAX_NAME
        || name.chars().any(|c| {
            c.is_whitespace()
                || matches!(
                    c,
                    '<' | '>'
                        | '{'
                        | '}'
                        | '['
                        | ']'
                        | '?'
                        | '*'
                        | '"'
                        | '#'
                        | '%'
                        | '\\'
                        | '^'
                        | '|'
                        | '~'
                        | '`'
                        | '$'
                        | '&'
                        | ','
                        | ';'
                        | ':'
                        | '/'
                )
                || (c as u32) <= 0x1f
                || (0x7f..=0x9f).contains(&(c as u32))
        });
    if bad {
        return Err(err("InvalidName", format!("Invalid Name: '{name}'")));
    }
    Ok(())
}

/// The ARN of a state machine:
/// `arn:aws:states:<region>:<account>:stateMachine:<name>`.
pub fn state_machine_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:states:{region}:{account}:stateMachine:{name}")
}

/// The ARN of a Standard execution:
/// `arn:aws:states:<region>:<account>:execution:<state machine>:<name>`.
pub fn execution_arn(region: &str, account: &str, machine: &str, name: &str) -> String {
    format!("arn:aws:states:{region}:{account}:execution:{machine}:{name}")
}

/// The ARN of an Express execution (AWS's form, with a unique suffix):
/// `arn:aws:states:<region>:<account>:express:<state machine>:<name>:<uuid>`.
pub fn express_execution_arn(region: &str, account: &str, machine: &str, name: &str) -> String {
    let id = uuid::Uuid::new_v4();
    format!("arn:aws:states:{region}:{account}:express:{machine}:{name}:{id}")
}

/// A parsed Step Functions ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatesArn {
    pub region: String,
    pub account: String,
    /// `stateMachine`, `execution`, `express`, `activity`, ...
    pub resource_type: String,
    /// The parts after the resource type (`[name]`, `[machine, name]`, ...).
    pub parts: Vec<String>,
}

/// Parses `arn:<partition>:states:<region>:<account>:<type>:<rest...>`.
///
/// Errors: `InvalidArn` with AWS's message (`Invalid Arn: 'Invalid ARN
/// prefix: <arn>'`, `Invalid Arn: 'Unable to parse ARN: <arn>'`).
pub fn parse_arn(arn: &str) -> Result<StatesArn, AwsError> {
    let parts: Vec<&str> = arn.split(':').collect();
    if parts.len() < 7 || parts[0] != "arn" || parts[2] != "states" {
        return Err(err(
            "InvalidArn",
            format!("Invalid Arn: 'Invalid ARN prefix: {arn}'"),
        ));
    }
    if !parts[1].starts_with("aws")
        || parts[3].is_empty()
        || parts[4].len() != 12
        || !parts[4].bytes().all(|b| b.is_ascii_digit())
        || parts[5].is_empty()
        || parts[6..].iter().any(|p| p.is_empty())
    {
        return Err(err(
            "InvalidArn",
            format!("Invalid Arn: 'Unable to parse ARN: {arn}'"),
        ));
    }
    Ok(StatesArn {
        region: parts[3].to_string(),
        account: parts[4].to_string(),
        resource_type: parts[5].to_string(),
        parts: parts[6..].iter().map(|s| s.to_string()).collect(),
    })
}

fn wrong_type(t: &str) -> AwsError {
    err(
        "InvalidArn",
        format!("Invalid Arn: 'Resource type not valid in this context: {t}'"),
    )
}

/// Checks a `stateMachineArn` parameter: a state machine ARN (unqualified,
/// or with a version number or alias name after the name).
///
/// Errors: `InvalidArn`.
pub fn check_state_machine_arn(arn: &str) -> Result<StatesArn, AwsError> {
    let a = parse_arn(arn)?;
    if a.resource_type != "stateMachine" {
        return Err(wrong_type(&a.resource_type));
    }
    if a.parts.len() > 2 {
        return Err(err(
            "InvalidArn",
            format!("Invalid Arn: 'Unable to parse ARN: {arn}'"),
        ));
    }
    Ok(a)
}

/// Checks an `executionArn` parameter: a Standard (`execution`) or Express
/// (`express`) execution ARN.
///
/// Errors: `InvalidArn`.
pub fn check_execution_arn(arn: &str) -> Result<StatesArn, AwsError> {
    let a = parse_arn(arn)?;
    match (a.resource_type.as_str(), a.parts.len()) {
        ("execution", 2) | ("express", 3) => Ok(a),
        ("execution", _) | ("express", _) => Err(err(
            "InvalidArn",
            format!("Invalid Arn: 'Unable to parse ARN: {arn}'"),
        )),
        (t, _) => Err(wrong_type(t)),
    }
}

/// Checks a string parameter's length against the model (`min`..=`max`
/// characters).
///
/// Errors: `ValidationException`.
pub fn check_len(value: &str, field: &str, min: usize, max: usize) -> Result<(), AwsError> {
    let n = value.chars().count();
    if n < min {
        return Err(validation(
            value,
            field,
            &format!("Member must have length greater than or equal to {min}"),
        ));
    }
    if n > max {
        let shown: String = value.chars().take(64).collect();
        return Err(validation(
            &shown,
            field,
            &format!("Member must have length less than or equal to {max}"),
        ));
    }
    Ok(())
}

/// Checks a payload parameter (the model's `SensitiveData`: execution
/// input, task output) against its maximum size, which AWS states "as bytes
/// in UTF-8 encoding" (API reference, SendTaskSuccess `output`,
/// StartExecution `input`), not characters.
///
/// Errors: `ValidationException`.
pub fn check_payload_bytes(value: &str, field: &str, max: usize) -> Result<(), AwsError> {
    if value.len() > max {
        let shown: String = value.chars().take(64).collect();
        return Err(validation(
            &shown,
            field,
            &format!("Member must have length less than or equal to {max}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_sizes_count_utf8_bytes() {
        // 100,000 two-byte characters: 200,000 bytes, within 262,144.
        assert!(check_payload_bytes(&"é".repeat(100_000), "output", 262_144).is_ok());
        // 140,000 characters but 280,000 bytes: over the limit.
        let e = check_payload_bytes(&"é".repeat(140_000), "output", 262_144).unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (400, "ValidationException"));
        assert!(check_payload_bytes(&"x".repeat(262_144), "input", 262_144).is_ok());
        assert!(check_payload_bytes(&"x".repeat(262_145), "input", 262_144).is_err());
    }

    #[test]
    fn names_follow_the_documented_rules() {
        assert!(check_name("order-workflow_1").is_ok());
        assert!(check_name(&"a".repeat(80)).is_ok());
        for bad in [
            "",
            "has space",
            "a:b",
            "a/b",
            "a*",
            "x{y}",
            "tab\t",
            "\u{7f}",
        ] {
            let e = check_name(bad).unwrap_err();
            assert_eq!(e.code, "InvalidName", "{bad:?}");
            assert_eq!(e.status, 400);
        }
        assert!(check_name(&"a".repeat(81)).is_err());
    }

    #[test]
    fn arns_parse_and_check_their_type() {
        let a = check_state_machine_arn("arn:aws:states:us-east-1:123456789012:stateMachine:sm")
            .unwrap();
        assert_eq!(a.region, "us-east-1");
        assert_eq!(a.parts, vec!["sm".to_string()]);
        let e = check_state_machine_arn("arn:aws:states:us-east-1:123456789012:execution:sm:e")
            .unwrap_err();
        assert_eq!(e.code, "InvalidArn");
        assert!(
            e.message
                .contains("Resource type not valid in this context: execution")
        );
        assert_eq!(
            check_state_machine_arn("nope").unwrap_err().code,
            "InvalidArn"
        );
        assert_eq!(
            check_state_machine_arn("arn:aws:lambda:us-east-1:123456789012:function:f")
                .unwrap_err()
                .code,
            "InvalidArn"
        );
        assert!(
            check_execution_arn("arn:aws:states:us-east-1:123456789012:execution:sm:e").is_ok()
        );
        assert!(
            check_execution_arn("arn:aws:states:us-east-1:123456789012:express:sm:e:abc").is_ok()
        );
        assert!(check_execution_arn("arn:aws:states:us-east-1:123456789012:execution:sm").is_err());
        assert!(check_execution_arn("arn:aws:states:us-east-1:1234:execution:sm:e").is_err());
    }

    #[test]
    fn lengths_are_checked_against_the_model() {
        assert!(check_len("abc", "roleArn", 1, 256).is_ok());
        let e = check_len("", "roleArn", 1, 256).unwrap_err();
        assert_eq!(e.code, "ValidationException");
        assert!(e.message.contains("'roleArn'"));
        assert!(check_len(&"x".repeat(257), "roleArn", 1, 256).is_err());
    }
}
