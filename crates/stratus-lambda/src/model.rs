//! Lambda's shapes (botocore `lambda/2015-03-31/service-2.json`) and the
//! checks CreateFunction / UpdateFunctionConfiguration apply to them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use stratus_core::AwsError;

/// `FunctionConfiguration`, as GetFunctionConfiguration returns it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionConfiguration {
    pub function_name: String,
    pub function_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    pub role: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// Size of the deployment package in bytes.
    pub code_size: u64,
    pub description: String,
    /// Seconds (1-900).
    pub timeout: u32,
    /// MB (128-10240).
    pub memory_size: u32,
    /// `YYYY-MM-DDThh:mm:ss.sss+0000`.
    pub last_modified: String,
    /// Base64 of the SHA-256 of the package.
    pub code_sha256: String,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<EnvironmentResponse>,
    pub tracing_config: TracingConfig,
    pub revision_id: String,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_reason_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update_status_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update_status_reason_code: Option<String>,
    pub package_type: String,
    pub architectures: Vec<String>,
    pub ephemeral_storage: EphemeralStorage,
    pub snap_start: SnapStartResponse,
    pub logging_config: LoggingConfig,
    /// The function's layers in order (absent without layers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<Layer>>,
    /// `DeadLetterConfig`: where failed asynchronous events go (an SQS queue
    /// or SNS topic ARN); absent when none is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_config: Option<DeadLetterConfig>,
}

/// `DeadLetterConfig` (request and response): `TargetArn` is an SQS queue or
/// SNS topic ARN, or empty to remove it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct DeadLetterConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_arn: Option<String>,
}

/// `Layer`: a layer version a function uses, as FunctionConfiguration shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Layer {
    pub arn: String,
    /// Size of the layer archive in bytes.
    pub code_size: u64,
}

/// What a function keeps of each of its layer versions, so it runs with them
/// even after a version is deleted (see [`crate::layers`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LayerCode {
    /// The layer version ARN.
    pub arn: String,
    /// Hex SHA-256 of the layer's zip (names its files under `<data>/code/`).
    pub code_hex: String,
    /// Size of the archive in bytes.
    pub code_size: u64,
    /// Bytes of the archive once unzipped.
    pub unzipped_size: u64,
}

/// `EnvironmentResponse`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct EnvironmentResponse {
    pub variables: BTreeMap<String, String>,
}

/// `TracingConfigResponse`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct TracingConfig {
    pub mode: String,
}

/// `EphemeralStorage`: size of /tmp in MB (512-10240).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct EphemeralStorage {
    pub size: u32,
}

/// `SnapStartResponse`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct SnapStartResponse {
    pub apply_on: String,
    pub optimization_status: String,
}

/// `LoggingConfig`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct LoggingConfig {
    pub log_format: String,
    pub log_group: String,
}

/// What the store keeps for a function.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FunctionRecord {
    pub config: FunctionConfiguration,
    pub tags: BTreeMap<String, String>,
    /// Hex SHA-256 of the package (names the files under `<data>/code/`).
    pub code_hex: String,
    /// Bytes of the package once unzipped.
    pub unzipped_size: u64,
    /// ReservedConcurrentExecutions (PutFunctionConcurrency); function-level,
    /// kept on the `$LATEST` record only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_concurrency: Option<u32>,
    /// The number the next PublishVersion takes (numbers are never reused,
    /// even after a version is deleted); `0` in records written before
    /// versions existed means 1. On the `$LATEST` record only.
    #[serde(default)]
    pub next_version: u64,
    /// On a published version: the fingerprint of the code and configuration
    /// it was published from (see [`crate::versions`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Not stored: set on the copy handed to a cold start that allocates a
    /// provisioned concurrency environment.
    #[serde(skip)]
    pub provisioned_init: bool,
    /// The function's layers, in order (`config.layers` shows them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layer_code: Vec<LayerCode>,
}

impl FunctionRecord {
    /// `AWS_LAMBDA_INITIALIZATION_TYPE` for an environment started from this
    /// record: `provisioned-concurrency` or `on-demand`.
    pub fn initialization_type(&self) -> &'static str {
        if self.provisioned_init {
            "provisioned-concurrency"
        } else {
            "on-demand"
        }
    }
}

/// The optional settings CreateFunction and UpdateFunctionConfiguration share.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigInput {
    pub runtime: Option<String>,
    pub role: Option<String>,
    pub handler: Option<String>,
    pub description: Option<String>,
    pub timeout: Option<i64>,
    pub memory_size: Option<i64>,
    pub environment: Option<EnvironmentInput>,
    pub ephemeral_storage: Option<EphemeralStorageInput>,
    pub tracing_config: Option<TracingInput>,
    pub revision_id: Option<String>,
    pub layers: Option<Vec<String>>,
    pub logging_config: Option<LoggingInput>,
    pub dead_letter_config: Option<DeadLetterConfig>,
}

/// `Environment` in a request.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct EnvironmentInput {
    pub variables: Option<BTreeMap<String, String>>,
}

/// `EphemeralStorage` in a request.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EphemeralStorageInput {
    pub size: i64,
}

/// `TracingConfig` in a request.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TracingInput {
    pub mode: Option<String>,
}

/// `LoggingConfig` in a request.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LoggingInput {
    pub log_format: Option<String>,
    pub log_group: Option<String>,
}

/// `FunctionCode` in CreateFunction.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct CodeInput {
    /// Base64 of the zip (the JSON encoding of a blob).
    pub zip_file: Option<String>,
    #[serde(rename = "S3Bucket")]
    pub s3_bucket: Option<String>,
    #[serde(rename = "S3Key")]
    pub s3_key: Option<String>,
    pub image_uri: Option<String>,
}

/// The `CreateFunction` request body.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateFunctionInput {
    pub function_name: Option<String>,
    pub code: Option<CodeInput>,
    pub package_type: Option<String>,
    pub publish: Option<bool>,
    pub architectures: Option<Vec<String>>,
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub config: ConfigInput,
}

/// The `UpdateFunctionCode` request body.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateCodeInput {
    /// Base64 of the zip.
    pub zip_file: Option<String>,
    #[serde(rename = "S3Bucket")]
    pub s3_bucket: Option<String>,
    #[serde(rename = "S3Key")]
    pub s3_key: Option<String>,
    pub image_uri: Option<String>,
    pub publish: Option<bool>,
    pub dry_run: Option<bool>,
    pub revision_id: Option<String>,
    pub architectures: Option<Vec<String>>,
}

/// Every runtime id in the service model's `Runtime` enum (in model order).
pub const RUNTIME_ENUM: &[&str] = &[
    "nodejs",
    "nodejs4.3",
    "nodejs6.10",
    "nodejs8.10",
    "nodejs10.x",
    "nodejs12.x",
    "nodejs14.x",
    "nodejs16.x",
    "java8",
    "java8.al2",
    "java11",
    "python2.7",
    "python3.6",
    "python3.7",
    "python3.8",
    "python3.9",
    "dotnetcore1.0",
    "dotnetcore2.0",
    "dotnetcore2.1",
    "dotnetcore3.1",
    "dotnet6",
    "dotnet8",
    "nodejs4.3-edge",
    "go1.x",
    "ruby2.5",
    "ruby2.7",
    "provided",
    "provided.al2",
    "nodejs18.x",
    "python3.10",
    "java17",
    "ruby3.2",
    "ruby3.3",
    "ruby3.4",
    "python3.11",
    "nodejs20.x",
    "provided.al2023",
    "python3.12",
    "java21",
    "python3.13",
    "nodejs22.x",
    "nodejs24.x",
    "python3.14",
    "java25",
    "dotnet10",
    "ruby4.0",
];

/// Environment variable keys Lambda reserves
/// (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime>).
pub const RESERVED_ENV_KEYS: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// Maximum total size of a function's environment variables: 4 KB.
pub const MAX_ENV_BYTES: usize = 4096;

fn constraint(value: impl std::fmt::Display, field: &str, rule: &str) -> String {
    format!("Value '{value}' at '{field}' failed to satisfy constraint: {rule}")
}

/// Checks the model constraints of the shared settings, collecting every
/// `ValidationException` failure, then Lambda's semantic checks
/// (`InvalidParameterValueException`).
pub fn validate_config(c: &ConfigInput) -> Result<(), AwsError> {
    let mut f = Vec::new();
    if let Some(m) = c.memory_size {
        if m < 128 {
            f.push(constraint(
                m,
                "memorySize",
                "Member must have value greater than or equal to 128",
            ));
        } else if m > 10240 {
            f.push(constraint(
                m,
                "memorySize",
                "Member must have value less than or equal to 10240",
            ));
        }
    }
    if let Some(t) = c.timeout
        && t < 1
    {
        f.push(constraint(
            t,
            "timeout",
            "Member must have value greater than or equal to 1",
        ));
    }
    if let Some(r) = &c.runtime
        && !RUNTIME_ENUM.contains(&r.as_str())
    {
        f.push(constraint(
            r,
            "runtime",
            &format!(
                "Member must satisfy enum value set: [{}]",
                RUNTIME_ENUM.join(", ")
            ),
        ));
    }
    if let Some(h) = &c.handler
        && (h.len() > 128 || h.is_empty() || h.chars().any(char::is_whitespace))
    {
        f.push(constraint(
            h,
            "handler",
            "Member must satisfy regular expression pattern: [^\\s]+",
        ));
    }
    if let Some(d) = &c.description
        && d.chars().count() > 256
    {
        f.push(constraint(
            d,
            "description",
            "Member must have length less than or equal to 256",
        ));
    }
    if let Some(r) = &c.role
        && !valid_role(r)
    {
        f.push(constraint(
            r,
            "role",
            "Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+",
        ));
    }
    if let Some(e) = &c.ephemeral_storage {
        if e.size < 512 {
            f.push(constraint(
                e.size,
                "ephemeralStorage.size",
                "Member must have value greater than or equal to 512",
            ));
        } else if e.size > 10240 {
            f.push(constraint(
                e.size,
                "ephemeralStorage.size",
                "Member must have value less than or equal to 10240",
            ));
        }
    }
    if let Some(t) = &c.tracing_config
        && let Some(m) = &t.mode
        && m != "Active"
        && m != "PassThrough"
    {
        f.push(constraint(
            m,
            "tracingConfig.mode",
            "Member must satisfy enum value set: [Active, PassThrough]",
        ));
    }
    if let Some(env) = &c.environment
        && let Some(vars) = &env.variables
    {
        for k in vars.keys() {
            if !valid_env_key(k) {
                f.push(constraint(
                    k,
                    "environment.variables",
                    "Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+",
                ));
            }
        }
    }
    if let Some(l) = &c.layers
        && l.iter().any(|a| !crate::layers::valid_layer_version_arn(a))
    {
        f.push(constraint(
            format!("[{}]", l.join(", ")),
            "layers",
            "Member must satisfy constraint: [Member must have length less than or equal to 140, Member must have length greater than or equal to 1, Member must satisfy regular expression pattern: (arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+)|(arn:[a-zA-Z0-9-]+:lambda:::awslayer:[a-zA-Z0-9-_]+)]",
        ));
    }
    if !f.is_empty() {
        return Err(AwsError::validation_errors(&f));
    }
    if let Some(t) = c.timeout
        && t > 900
    {
        return Err(AwsError::invalid_parameter(format!(
            "Timeout value {t} is out of range. The maximum function timeout is 900 seconds."
        )));
    }
    if let Some(env) = &c.environment
        && let Some(vars) = &env.variables
    {
        let reserved: Vec<&str> = vars
            .keys()
            .map(String::as_str)
            .filter(|k| RESERVED_ENV_KEYS.contains(k))
            .collect();
        if !reserved.is_empty() {
            return Err(AwsError::invalid_parameter(format!(
                "Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: {}",
                reserved.join(", ")
            )));
        }
        let size = serde_json::to_string(vars).map(|s| s.len()).unwrap_or(0);
        if size > MAX_ENV_BYTES {
            return Err(AwsError::invalid_parameter(format!(
                "Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit. String measured: {size} bytes"
            )));
        }
    }
    if let Some(l) = &c.layers
        && l.len() > crate::layers::MAX_FUNCTION_LAYERS
    {
        return Err(AwsError::invalid_parameter(format!(
            "Cannot reference more than {} layers.",
            crate::layers::MAX_FUNCTION_LAYERS
        )));
    }
    Ok(())
}

/// Checks `Architectures` (exactly one of `x86_64`, `arm64`).
pub fn validate_architectures(a: &[String]) -> Result<(), AwsError> {
    let mut f = Vec::new();
    if a.len() != 1 {
        f.push(constraint(
            format!("[{}]", a.join(", ")),
            "architectures",
            "Member must have length less than or equal to 1 and greater than or equal to 1",
        ));
    }
    for x in a {
        if x != "x86_64" && x != "arm64" {
            f.push(constraint(
                format!("[{}]", a.join(", ")),
                "architectures",
                "Member must satisfy constraint: [Member must satisfy enum value set: [x86_64, arm64]]",
            ));
            break;
        }
    }
    if f.is_empty() {
        Ok(())
    } else {
        Err(AwsError::validation_errors(&f))
    }
}

/// Checks resource tags as Lambda does (at most 50; keys 1-128 characters,
/// values up to 256; keys may not start with `aws:`).
pub fn validate_tags(tags: &BTreeMap<String, String>) -> Result<(), AwsError> {
    if tags.len() > 50 {
        return Err(AwsError::invalid_parameter(
            "The number of tags exceeds the limit of 50 tags per resource.",
        ));
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(AwsError::invalid_parameter(format!(
                "Tag key '{k}' must be 1 to 128 characters long."
            )));
        }
        if v.chars().count() > 256 {
            return Err(AwsError::invalid_parameter(format!(
                "Tag value for key '{k}' must be at most 256 characters long."
            )));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(AwsError::invalid_parameter(format!(
                "Tag key '{k}' uses the reserved prefix 'aws:'."
            )));
        }
    }
    Ok(())
}

fn valid_env_key(k: &str) -> bool {
    let mut cs = k.chars();
    k.len() >= 2
        && cs.next().is_some_and(|c| c.is_ascii_alphabetic())
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+`.
pub fn valid_role(r: &str) -> bool {
    let p: Vec<&str> = r.splitn(6, ':').collect();
    if p.len() != 6
        || p[0] != "arn"
        || !(p[1].is_empty() || p[1].starts_with("aws"))
        || p[2] != "iam"
        || !p[3].is_empty()
    {
        return false;
    }
    if p[4].len() != 12 || !p[4].chars().all(|c| c.is_ascii_digit()) {
        return false;
    }
    let Some(rest) = p[5].strip_prefix("role") else {
        return false;
    };
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_/".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles() {
        assert!(valid_role("arn:aws:iam::123456789012:role/lambda-role"));
        assert!(valid_role(
            "arn:aws:iam::123456789012:role/service-role/x.y@z"
        ));
        assert!(!valid_role("arn:aws:iam::12345:role/x"));
        assert!(!valid_role("role"));
        assert!(!valid_role("arn:aws:iam::123456789012:user/x"));
    }

    #[test]
    fn config_checks() {
        let mut c = ConfigInput {
            memory_size: Some(64),
            timeout: Some(0),
            ..Default::default()
        };
        let e = validate_config(&c).unwrap_err();
        assert_eq!(e.code, "ValidationException");
        assert!(
            e.message.starts_with("2 validation errors detected"),
            "{}",
            e.message
        );
        c = ConfigInput {
            timeout: Some(901),
            ..Default::default()
        };
        assert_eq!(
            validate_config(&c).unwrap_err().code,
            "InvalidParameterValueException"
        );
        let mut vars = BTreeMap::new();
        vars.insert("AWS_REGION".to_string(), "x".to_string());
        c = ConfigInput {
            environment: Some(EnvironmentInput {
                variables: Some(vars),
            }),
            ..Default::default()
        };
        assert!(
            validate_config(&c)
                .unwrap_err()
                .message
                .contains("AWS_REGION")
        );
        assert!(validate_architectures(&["x86_64".into()]).is_ok());
        assert!(validate_architectures(&["sparc".into()]).is_err());
        assert!(validate_architectures(&[]).is_err());
    }
}
