//! State machines: CreateStateMachine, DescribeStateMachine,
//! UpdateStateMachine, DeleteStateMachine, ListStateMachines,
//! ValidateStateMachineDefinition and tags (TagResource, UntagResource,
//! ListTagsForResource), as the botocore model `stepfunctions/2016-11-23`
//! and the Step Functions API reference define them.
//!
//! A state machine is stored as one JSON document ([`MachineRecord`]) in the
//! store's `resources` table (kind `states.machine`, keyed by region and
//! name).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use stratus_core::{AwsError, AwsResult};

use crate::names::{self, err};
use crate::{
    States, epoch, opt_bool, opt_int, opt_str, page_size, page_token, parse_page_token, req_str,
};

/// Resource kind of state machines in the store.
pub const KIND: &str = "states.machine";

/// AWS's limit on tags per resource: 50.
pub const MAX_TAGS: usize = 50;

/// The largest definition: 1,048,576 characters (model shape `Definition`).
pub const MAX_DEFINITION: usize = 1_048_576;

/// One state machine as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MachineRecord {
    pub state_machine_arn: String,
    pub name: String,
    pub region: String,
    /// The definition (Amazon States Language, JSON text) as given.
    pub definition: String,
    pub role_arn: String,
    /// `STANDARD` or `EXPRESS`.
    #[serde(rename = "type")]
    pub machine_type: String,
    /// ms since the epoch.
    pub creation_ms: i64,
    /// ms since the epoch of the last UpdateStateMachine (creation if none).
    pub update_ms: i64,
    /// `{"level": "OFF"|"ALL"|"ERROR"|"FATAL", "includeExecutionData": bool, "destinations": [...]}`.
    pub logging_configuration: Value,
    /// `{"enabled": bool}`.
    pub tracing_configuration: Value,
    /// `[{"key": ..., "value": ...}]`.
    pub tags: Vec<Tag>,
    /// A new UUID on every update.
    pub revision_id: String,
    /// Published versions, oldest first.
    #[serde(default)]
    pub versions: Vec<VersionRecord>,
    /// The number of the last version published (numbers are not reused).
    #[serde(default)]
    pub last_version: u64,
    /// Aliases routing to versions.
    #[serde(default)]
    pub aliases: Vec<crate::aliases::AliasRecord>,
}

/// A published, immutable version of a state machine
/// (`<state machine ARN>:<version number>`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VersionRecord {
    pub version: u64,
    pub definition: String,
    pub role_arn: String,
    pub logging_configuration: Value,
    pub tracing_configuration: Value,
    /// The revision of the state machine that was published.
    pub revision_id: String,
    pub description: Option<String>,
    /// ms since the epoch.
    pub creation_ms: i64,
}

/// AWS's quota of versions per state machine: 1,000.
pub const MAX_VERSIONS: usize = 1000;

/// A resource tag (`Tag` shape: key 1-128, value 0-256 characters).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tag {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

impl MachineRecord {
    /// The ARN of version `n`.
    pub fn version_arn(&self, n: u64) -> String {
        format!("{}:{n}", self.state_machine_arn)
    }

    /// Publishes the current revision as a version, or returns the version
    /// that already has it (AWS's idempotency of PublishStateMachineVersion).
    ///
    /// Errors: `ServiceQuotaExceededException` past 1,000 versions.
    pub fn publish(&mut self, description: Option<&str>, now: i64) -> AwsResult<VersionRecord> {
        if let Some(v) = self
            .versions
            .iter()
            .find(|v| v.revision_id == self.revision_id)
        {
            return Ok(v.clone());
        }
        if self.versions.len() >= MAX_VERSIONS {
            return Err(err(
                "ServiceQuotaExceededException",
                format!(
                    "A state machine can have at most {MAX_VERSIONS} versions: delete some first."
                ),
            ));
        }
        self.last_version += 1;
        let v = VersionRecord {
            version: self.last_version,
            definition: self.definition.clone(),
            role_arn: self.role_arn.clone(),
            logging_configuration: self.logging_configuration.clone(),
            tracing_configuration: self.tracing_configuration.clone(),
            revision_id: self.revision_id.clone(),
            description: description.map(str::to_string),
            creation_ms: now,
        };
        self.versions.push(v.clone());
        Ok(v)
    }

    /// The state machine as version `v` runs it (definition, role, logging).
    pub fn at_version(&self, v: &VersionRecord) -> MachineRecord {
        MachineRecord {
            definition: v.definition.clone(),
            role_arn: v.role_arn.clone(),
            logging_configuration: v.logging_configuration.clone(),
            tracing_configuration: v.tracing_configuration.clone(),
            revision_id: v.revision_id.clone(),
            ..self.clone()
        }
    }

    /// The DescribeStateMachine answer.
    pub fn describe(&self) -> Value {
        json!({
            "stateMachineArn": self.state_machine_arn,
            "name": self.name,
            "status": "ACTIVE",
            "definition": self.definition,
            "roleArn": self.role_arn,
            "type": self.machine_type,
            "creationDate": epoch(self.creation_ms),
            "loggingConfiguration": self.logging_configuration,
            "tracingConfiguration": self.tracing_configuration,
            "revisionId": self.revision_id,
        })
    }
}

fn default_logging() -> Value {
    json!({"level": "OFF", "includeExecutionData": false})
}

/// Checks a `loggingConfiguration` and fills in AWS's defaults
/// (`level` OFF, `includeExecutionData` false).
///
/// Errors: `InvalidLoggingConfiguration` (a level other than OFF without
/// exactly one CloudWatch Logs destination, an unknown level).
pub fn check_logging(v: Option<&Value>) -> AwsResult<Value> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(default_logging());
    };
    let Some(obj) = v.as_object() else {
        return Err(err(
            "InvalidLoggingConfiguration",
            "Invalid Logging Configuration: the loggingConfiguration must be an object.",
        ));
    };
    let level = obj.get("level").and_then(Value::as_str).unwrap_or("OFF");
    if !matches!(level, "ALL" | "ERROR" | "FATAL" | "OFF") {
        return Err(names::validation(
            level,
            "loggingConfiguration.level",
            "Member must satisfy enum value set: [ALL, ERROR, FATAL, OFF]",
        ));
    }
    let destinations = obj
        .get("destinations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if level != "OFF" && destinations.len() != 1 {
        return Err(err(
            "InvalidLoggingConfiguration",
            "Invalid Logging Configuration: Must specify exactly one Log Destination.",
        ));
    }
    for d in &destinations {
        let arn = d
            .pointer("/cloudWatchLogsLogGroup/logGroupArn")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !arn.starts_with("arn:aws:logs:") {
            return Err(err(
                "InvalidLoggingConfiguration",
                format!(
                    "Invalid Logging Configuration: the log destination '{arn}' is not a CloudWatch Logs log group ARN (arn:aws:logs:<region>:<account>:log-group:<name>:*)."
                ),
            ));
        }
    }
    let mut out = json!({
        "level": level,
        "includeExecutionData": obj.get("includeExecutionData").and_then(Value::as_bool).unwrap_or(false),
    });
    if !destinations.is_empty() {
        out["destinations"] = Value::Array(destinations);
    }
    Ok(out)
}

fn check_tracing(v: Option<&Value>) -> AwsResult<Value> {
    match v.filter(|v| !v.is_null()) {
        None => Ok(json!({"enabled": false})),
        Some(Value::Object(o)) => Ok(json!({
            "enabled": o.get("enabled").and_then(Value::as_bool).unwrap_or(false)
        })),
        Some(_) => Err(err(
            "InvalidTracingConfiguration",
            "Invalid Tracing Configuration: the tracingConfiguration must be an object.",
        )),
    }
}

/// Parses a `tags` list (`[{"key", "value"}]`).
///
/// Errors: `ValidationException` for keys or values of the wrong length.
pub fn parse_tags(v: Option<&Value>) -> AwsResult<Vec<Tag>> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let list: Vec<Tag> = serde_json::from_value(v.clone()).map_err(|_| {
        AwsError::new(
            400,
            "SerializationException",
            "The tags must be a list of {\"key\": ..., \"value\": ...} objects.",
        )
    })?;
    for t in &list {
        names::check_len(&t.key, "tags.member.key", 1, 128)?;
        names::check_len(&t.value, "tags.member.value", 0, 256)?;
    }
    Ok(list)
}

/// Adds `add` to `into`, replacing the values of keys already there.
pub(crate) fn merge_tags(into: &mut Vec<Tag>, add: Vec<Tag>) {
    for t in add {
        match into.iter_mut().find(|x| x.key == t.key) {
            Some(x) => x.value = t.value,
            None => into.push(t),
        }
    }
}

/// `TooManyTags` for the resource `arn` (more than [`MAX_TAGS`]).
pub(crate) fn too_many_tags(arn: &str) -> AwsError {
    err(
        "TooManyTags",
        format!("Too many tags: a resource can have at most {MAX_TAGS} tags."),
    )
    .with_field("resourceName", arn)
}

/// TagResource's `tags` merged into `current` (a state machine's or an
/// activity's tags).
///
/// Errors: `ValidationException` / `SerializationException` for malformed
/// tags, `TooManyTags` beyond [`MAX_TAGS`].
pub(crate) fn tag_request(
    req: &Map<String, Value>,
    arn: &str,
    current: &mut Vec<Tag>,
) -> AwsResult<()> {
    let tags = parse_tags(Some(req.get("tags").unwrap_or(&Value::Array(vec![]))))?;
    merge_tags(current, tags);
    if current.len() > MAX_TAGS {
        return Err(too_many_tags(arn));
    }
    Ok(())
}

/// UntagResource's `tagKeys`.
///
/// Errors: `ValidationException` when absent, `SerializationException`
/// when not a list of strings.
pub(crate) fn untag_keys(req: &Map<String, Value>) -> AwsResult<Vec<String>> {
    match req.get("tagKeys") {
        Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
            AwsError::new(
                400,
                "SerializationException",
                "tagKeys must be a list of strings.",
            )
        }),
        None => Err(AwsError::validation_errors(&[
            "Value null at 'tagKeys' failed to satisfy constraint: Member must not be null"
                .to_string(),
        ])),
    }
}

/// Checks that an Express state machine's definition uses only the
/// request-response pattern (see
/// [`crate::integrations::express_unsupported_resources`]).
///
/// Errors: `InvalidDefinition`
/// (`SCHEMA_VALIDATION_FAILED: Express state machine does not support ...`).
pub fn check_express_definition(definition: &str) -> AwsResult<()> {
    let problems: Vec<String> = crate::integrations::express_unsupported_resources(definition)
        .into_iter()
        .map(|(location, resource)| {
            let what = if crate::activities::is_activity_arn(&resource) {
                "activities".to_string()
            } else {
                let pattern = [".sync:2", ".sync", ".waitForTaskToken"]
                    .into_iter()
                    .find(|p| resource.ends_with(p))
                    .unwrap_or(".sync");
                format!("'{pattern}' service integration")
            };
            format!("SCHEMA_VALIDATION_FAILED: Express state machine does not support {what} at {location}")
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(err(
            "InvalidDefinition",
            format!(
                "Invalid State Machine Definition: '{}'",
                problems.join(", ")
            ),
        ))
    }
}

/// Checks a definition: it parses and validates as Amazon States Language,
/// and every Task resource is one stratus can run.
///
/// Errors: `InvalidDefinition` with AWS's message form
/// (`Invalid State Machine Definition: 'CODE: message at /path'`).
pub fn check_definition(definition: &str) -> AwsResult<()> {
    names::check_len(definition, "definition", 1, MAX_DEFINITION)?;
    let mut problems: Vec<String> = match stratus_asl::StateMachine::parse(definition) {
        Ok(_) => Vec::new(),
        Err(diags) => diags
            .iter()
            .map(|d| match &d.location {
                Some(l) => format!("{}: {} at {}", d.code, d.message, l),
                None => format!("{}: {}", d.code, d.message),
            })
            .collect(),
    };
    if problems.is_empty() {
        for (location, resource) in crate::integrations::unsupported_resources(definition) {
            problems.push(format!(
                "INVALID_RESOURCE: {} at {location}",
                crate::integrations::unsupported_message(&resource)
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(err(
            "InvalidDefinition",
            format!(
                "Invalid State Machine Definition: '{}'",
                problems.join(", ")
            ),
        ))
    }
}

fn check_role(role: &str) -> AwsResult<()> {
    names::check_len(role, "roleArn", 1, 256)?;
    let parts: Vec<&str> = role.split(':').collect();
    if parts.len() < 6 || parts[0] != "arn" || parts[2] != "iam" {
        return Err(err(
            "InvalidArn",
            format!("Invalid Arn: 'Invalid ARN prefix: {role}'"),
        ));
    }
    Ok(())
}

impl States {
    /// Loads the state machine of a `stateMachineArn`.
    ///
    /// Errors: `InvalidArn`; `StateMachineDoesNotExist`.
    pub(crate) fn load_machine(&self, arn: &str) -> AwsResult<MachineRecord> {
        let a = names::check_state_machine_arn(arn)?;
        let missing = || {
            err(
                "StateMachineDoesNotExist",
                format!("State Machine Does Not Exist: '{arn}'"),
            )
        };
        if a.account != self.account || a.parts.len() != 1 {
            return Err(missing());
        }
        let body = self
            .store
            .get(KIND, &a.region, &a.parts[0])?
            .ok_or_else(missing)?;
        serde_json::from_str(&body).map_err(|e| {
            AwsError::service(format!("stored state machine {arn} is unreadable: {e}"))
        })
    }

    /// Loads the state machine of a `stateMachineArn` that may name a
    /// version (`<arn>:<n>`): the state machine, and the version if one is
    /// named.
    ///
    /// Errors: `InvalidArn`; `StateMachineDoesNotExist` (also for a version
    /// that does not exist, and for aliases, which stratus does not have).
    pub(crate) fn load_target(
        &self,
        arn: &str,
    ) -> AwsResult<(MachineRecord, Option<VersionRecord>)> {
        let a = names::check_state_machine_arn(arn)?;
        if a.parts.len() == 1 {
            return Ok((self.load_machine(arn)?, None));
        }
        let missing = || {
            err(
                "StateMachineDoesNotExist",
                format!("State Machine Does Not Exist: '{arn}'"),
            )
        };
        let n: u64 = a.parts[1].parse().map_err(|_| missing())?;
        let base = arn.rsplit_once(':').map(|(b, _)| b).unwrap_or(arn);
        let m = self.load_machine(base).map_err(|_| missing())?;
        let v = m
            .versions
            .iter()
            .find(|v| v.version == n)
            .cloned()
            .ok_or_else(missing)?;
        Ok((m, Some(v)))
    }

    /// Stores a state machine's record (replacing the previous one).
    pub(crate) fn store_machine(&self, m: &MachineRecord) -> AwsResult<()> {
        self.save_machine(m)
    }

    fn save_machine(&self, m: &MachineRecord) -> AwsResult<()> {
        let body = serde_json::to_string(m).map_err(|e| AwsError::service(e.to_string()))?;
        self.store.put(KIND, &m.region, &m.name, &body)?;
        Ok(())
    }

    /// CreateStateMachine. Idempotent: the same name, definition, type,
    /// logging and tracing configuration return the existing state machine
    /// (a different roleArn or tags are ignored, as AWS documents).
    ///
    /// Errors: `InvalidName`, `InvalidArn` (roleArn), `InvalidDefinition`,
    /// `InvalidLoggingConfiguration`, `TooManyTags`, `ValidationException`,
    /// `StateMachineAlreadyExists` (same name, other settings).
    pub(crate) async fn create_state_machine(
        &self,
        region: &str,
        req: &Map<String, Value>,
    ) -> AwsResult<Value> {
        let name = req_str(req, "name")?;
        let definition = req_str(req, "definition")?;
        let role = req_str(req, "roleArn")?;
        let machine_type = opt_str(req, "type")?.unwrap_or("STANDARD");
        if !matches!(machine_type, "STANDARD" | "EXPRESS") {
            return Err(names::validation(
                machine_type,
                "type",
                "Member must satisfy enum value set: [STANDARD, EXPRESS]",
            ));
        }
        names::check_name(name)?;
        check_role(role)?;
        let logging = check_logging(req.get("loggingConfiguration"))?;
        let tracing = check_tracing(req.get("tracingConfiguration"))?;
        let tags = parse_tags(req.get("tags"))?;
        let publish = opt_bool(req, "publish")? == Some(true);
        let version_description = opt_str(req, "versionDescription")?;
        if let Some(d) = version_description {
            names::check_len(d, "versionDescription", 0, 256)?;
            if !publish {
                return Err(AwsError::validation(
                    "Version description can only be set when publish is true",
                ));
            }
        }
        check_definition(definition)?;
        if machine_type == "EXPRESS" {
            check_express_definition(definition)?;
        }
        let arn = names::state_machine_arn(region, &self.account, name);
        let mut deduped: Vec<Tag> = Vec::new();
        merge_tags(&mut deduped, tags);
        if deduped.len() > MAX_TAGS {
            return Err(too_many_tags(&arn));
        }
        let now = stratus_core::time::now_ms();
        let mut rec = MachineRecord {
            state_machine_arn: arn.clone(),
            name: name.to_string(),
            region: region.to_string(),
            definition: definition.to_string(),
            role_arn: role.to_string(),
            machine_type: machine_type.to_string(),
            creation_ms: now,
            update_ms: now,
            logging_configuration: logging,
            tracing_configuration: tracing,
            tags: deduped,
            revision_id: uuid::Uuid::new_v4().to_string(),
            versions: Vec::new(),
            last_version: 0,
            aliases: Vec::new(),
        };
        let version = if publish {
            Some(rec.publish(version_description, now)?)
        } else {
            None
        };
        let body = serde_json::to_string(&rec).map_err(|e| AwsError::service(e.to_string()))?;
        if !self.store.insert_new(KIND, region, name, &body)? {
            let existing = self.load_machine(&arn)?;
            let same = existing.definition == rec.definition
                && existing.machine_type == rec.machine_type
                && existing.logging_configuration == rec.logging_configuration
                && existing.tracing_configuration == rec.tracing_configuration;
            if !same {
                return Err(err(
                    "StateMachineAlreadyExists",
                    format!("State Machine Already Exists: '{arn}'"),
                ));
            }
            let mut out = json!({
                "stateMachineArn": existing.state_machine_arn,
                "creationDate": epoch(existing.creation_ms),
            });
            if publish && let Some(v) = existing.versions.last() {
                out["stateMachineVersionArn"] = Value::from(existing.version_arn(v.version));
            }
            return Ok(out);
        }
        let mut out = json!({"stateMachineArn": arn, "creationDate": epoch(now)});
        if let Some(v) = version {
            out["stateMachineVersionArn"] = Value::from(rec.version_arn(v.version));
        }
        Ok(out)
    }

    /// DescribeStateMachine.
    ///
    /// Errors: `InvalidArn`, `StateMachineDoesNotExist`.
    pub(crate) fn describe_state_machine(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let arn = req_str(req, "stateMachineArn")?;
        match self.load_target(arn)? {
            (m, None) => Ok(m.describe()),
            (m, Some(v)) => {
                let mut d = m.at_version(&v).describe();
                d["stateMachineArn"] = Value::from(m.version_arn(v.version));
                d["creationDate"] = epoch(v.creation_ms);
                if let Some(desc) = &v.description {
                    d["description"] = Value::from(desc.clone());
                }
                Ok(d)
            }
        }
    }

    /// UpdateStateMachine: definition, roleArn, loggingConfiguration,
    /// tracingConfiguration. Running executions keep the definition they
    /// started with.
    ///
    /// Errors: `MissingRequiredParameter` (nothing to update), `InvalidArn`,
    /// `StateMachineDoesNotExist`, `InvalidDefinition`,
    /// `InvalidLoggingConfiguration`.
    pub(crate) async fn update_state_machine(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let arn = req_str(req, "stateMachineArn")?;
        let definition = opt_str(req, "definition")?;
        let role = opt_str(req, "roleArn")?;
        let logging = req.get("loggingConfiguration").filter(|v| !v.is_null());
        let tracing = req.get("tracingConfiguration").filter(|v| !v.is_null());
        let mut m = self.load_machine(arn)?;
        if definition.is_none() && role.is_none() && logging.is_none() && tracing.is_none() {
            return Err(err(
                "MissingRequiredParameter",
                "Either the definition, the role ARN, the LoggingConfiguration, or the TracingConfiguration must be specified",
            ));
        }
        let publish = opt_bool(req, "publish")? == Some(true);
        let version_description = opt_str(req, "versionDescription")?;
        if let Some(d) = version_description {
            names::check_len(d, "versionDescription", 0, 256)?;
            if !publish {
                return Err(AwsError::validation(
                    "Version description can only be set when publish is true",
                ));
            }
        }
        if let Some(d) = definition {
            check_definition(d)?;
            if m.machine_type == "EXPRESS" {
                check_express_definition(d)?;
            }
            m.definition = d.to_string();
        }
        if let Some(r) = role {
            check_role(r)?;
            m.role_arn = r.to_string();
        }
        if logging.is_some() {
            m.logging_configuration = check_logging(logging)?;
        }
        if tracing.is_some() {
            m.tracing_configuration = check_tracing(tracing)?;
        }
        m.update_ms = stratus_core::time::now_ms().max(m.update_ms + 1);
        m.revision_id = uuid::Uuid::new_v4().to_string();
        let version = if publish {
            Some(m.publish(version_description, m.update_ms)?)
        } else {
            None
        };
        self.save_machine(&m)?;
        let mut out = json!({"updateDate": epoch(m.update_ms), "revisionId": m.revision_id});
        if let Some(v) = version {
            out["stateMachineVersionArn"] = Value::from(m.version_arn(v.version));
        }
        Ok(out)
    }

    /// PublishStateMachineVersion: publishes the current revision (or
    /// returns the version that already has it). `revisionId`, when given,
    /// must be the current revision.
    ///
    /// Errors: `InvalidArn`, `StateMachineDoesNotExist`, `ConflictException`
    /// (another revision), `ServiceQuotaExceededException`,
    /// `ValidationException`.
    pub(crate) async fn publish_version(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let arn = req_str(req, "stateMachineArn")?;
        let description = opt_str(req, "description")?;
        if let Some(d) = description {
            names::check_len(d, "description", 0, 256)?;
        }
        let mut m = self.load_machine(arn)?;
        if let Some(r) = opt_str(req, "revisionId")?
            && r != m.revision_id
        {
            return Err(err(
                "ConflictException",
                format!(
                    "Failed to publish the State Machine version for revision {r}. The current State Machine revision is {}.",
                    m.revision_id
                ),
            ));
        }
        let v = m.publish(description, stratus_core::time::now_ms())?;
        self.save_machine(&m)?;
        Ok(json!({
            "creationDate": epoch(v.creation_ms),
            "stateMachineVersionArn": m.version_arn(v.version),
        }))
    }

    /// ListStateMachineVersions: newest first, in pages.
    ///
    /// Errors: `InvalidArn`, `StateMachineDoesNotExist`, `InvalidToken`.
    pub(crate) fn list_versions(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let arn = req_str(req, "stateMachineArn")?;
        let m = self.load_machine(arn)?;
        let start = parse_page_token(opt_str(req, "nextToken")?)?;
        let size = page_size(req)?;
        let items: Vec<Value> = m
            .versions
            .iter()
            .rev()
            .skip(start)
            .take(size)
            .map(|v| {
                json!({
                    "stateMachineVersionArn": m.version_arn(v.version),
                    "creationDate": epoch(v.creation_ms),
                })
            })
            .collect();
        let mut out = json!({"stateMachineVersions": items});
        if start + size < m.versions.len() {
            out["nextToken"] = Value::from(page_token(start + size));
        }
        Ok(out)
    }

    /// DeleteStateMachineVersion (a version that does not exist: nothing
    /// to do). Running executions of the version finish.
    ///
    /// Errors: `InvalidArn`, `ValidationException`.
    pub(crate) async fn delete_version(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let arn = req_str(req, "stateMachineVersionArn")?;
        let a = names::check_state_machine_arn(arn)?;
        let Some(n) = a.parts.get(1).and_then(|p| p.parse::<u64>().ok()) else {
            return Err(err(
                "InvalidArn",
                format!("Invalid Arn: 'Resource type not valid in this context: {arn}'"),
            ));
        };
        let base = arn.rsplit_once(':').map(|(b, _)| b).unwrap_or(arn);
        if let Ok(mut m) = self.load_machine(base) {
            if let Some(a) = m
                .aliases
                .iter()
                .find(|a| a.routing.iter().any(|(v, _)| *v == n))
            {
                return Err(err(
                    "ConflictException",
                    format!(
                        "Version to be deleted must not be referenced by an alias. Current list of aliases referencing this version: [{}]",
                        a.name
                    ),
                ));
            }
            let before = m.versions.len();
            m.versions.retain(|v| v.version != n);
            if m.versions.len() != before {
                self.save_machine(&m)?;
            }
        }
        Ok(json!({}))
    }

    /// DeleteStateMachine. Deleting a state machine that does not exist
    /// succeeds (AWS's behaviour); executions already running finish.
    ///
    /// Errors: `InvalidArn`.
    pub(crate) async fn delete_state_machine(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let arn = req_str(req, "stateMachineArn")?;
        let a = names::check_state_machine_arn(arn)?;
        if a.account == self.account && a.parts.len() == 1 {
            self.store.delete(KIND, &a.region, &a.parts[0])?;
        }
        Ok(json!({}))
    }

    /// ListStateMachines of the request's region, by name, in pages
    /// (`maxResults` 1-1000, default 100; `nextToken`).
    ///
    /// Errors: `InvalidToken`.
    pub(crate) fn list_state_machines(
        &self,
        region: &str,
        req: &Map<String, Value>,
    ) -> AwsResult<Value> {
        let start = parse_page_token(opt_str(req, "nextToken")?)?;
        let size = page_size(req)?;
        let all = self.store.list(KIND, region)?;
        let mut items = Vec::new();
        for (_, body) in all.iter().skip(start).take(size) {
            if let Ok(m) = serde_json::from_str::<MachineRecord>(body) {
                items.push(json!({
                    "stateMachineArn": m.state_machine_arn,
                    "name": m.name,
                    "type": m.machine_type,
                    "creationDate": epoch(m.creation_ms),
                }));
            }
        }
        let mut out = json!({"stateMachines": items});
        if start + size < all.len() {
            out["nextToken"] = Value::from(page_token(start + size));
        }
        Ok(out)
    }

    /// ValidateStateMachineDefinition: `result` OK or FAIL and the
    /// diagnostics (errors first, then warnings), including one per Task
    /// resource stratus cannot run. `severity` ERROR (default) returns only
    /// errors, WARNING both; `maxResults` (1-100, default 100) caps the
    /// list and sets `truncated`.
    ///
    /// Errors: `ValidationException`.
    pub(crate) fn validate_definition(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let definition = req_str(req, "definition")?;
        names::check_len(definition, "definition", 1, MAX_DEFINITION)?;
        if let Some(t) = opt_str(req, "type")?
            && !matches!(t, "STANDARD" | "EXPRESS")
        {
            return Err(names::validation(
                t,
                "type",
                "Member must satisfy enum value set: [STANDARD, EXPRESS]",
            ));
        }
        let severity = opt_str(req, "severity")?.unwrap_or("ERROR");
        if !matches!(severity, "ERROR" | "WARNING") {
            return Err(names::validation(
                severity,
                "severity",
                "Member must satisfy enum value set: [ERROR, WARNING]",
            ));
        }
        let max = match opt_int(req, "maxResults", 0, 100)? {
            None | Some(0) => 100,
            Some(n) => n as usize,
        };
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        for d in stratus_asl::validate(definition) {
            let (list, sev) = match d.severity {
                stratus_asl::Severity::Error => (&mut errors, "ERROR"),
                stratus_asl::Severity::Warning => (&mut warnings, "WARNING"),
            };
            let mut v = json!({"severity": sev, "code": d.code, "message": d.message});
            if let Some(l) = d.location {
                v["location"] = Value::from(l);
            }
            list.push(v);
        }
        if errors.is_empty() {
            for (location, resource) in crate::integrations::unsupported_resources(definition) {
                errors.push(json!({
                    "severity": "ERROR",
                    "code": "INVALID_RESOURCE",
                    "message": crate::integrations::unsupported_message(&resource),
                    "location": location,
                }));
            }
        }
        let result = if errors.is_empty() { "OK" } else { "FAIL" };
        let mut all = errors;
        if severity == "WARNING" {
            all.extend(warnings);
        }
        let truncated = all.len() > max;
        all.truncate(max);
        Ok(json!({"result": result, "diagnostics": all, "truncated": truncated}))
    }

    fn tagged_machine(&self, arn: &str) -> AwsResult<MachineRecord> {
        names::parse_arn(arn)?;
        self.load_machine(arn).map_err(|e| {
            if e.code == "StateMachineDoesNotExist" || e.code == "InvalidArn" {
                err("ResourceNotFound", format!("Resource not found: '{arn}'"))
                    .with_field("resourceName", arn)
            } else {
                e
            }
        })
    }

    /// TagResource: adds or replaces tags of a state machine.
    ///
    /// Errors: `InvalidArn`, `ResourceNotFound`, `TooManyTags`.
    pub(crate) async fn tag_resource(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let arn = req_str(req, "resourceArn")?;
        let mut m = self.tagged_machine(arn)?;
        tag_request(req, arn, &mut m.tags)?;
        self.save_machine(&m)?;
        Ok(json!({}))
    }

    /// UntagResource: removes tags by key (absent keys are ignored).
    ///
    /// Errors: `InvalidArn`, `ResourceNotFound`.
    pub(crate) async fn untag_resource(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let arn = req_str(req, "resourceArn")?;
        let keys = untag_keys(req)?;
        let mut m = self.tagged_machine(arn)?;
        m.tags.retain(|t| !keys.contains(&t.key));
        self.save_machine(&m)?;
        Ok(json!({}))
    }

    /// ListTagsForResource.
    ///
    /// Errors: `InvalidArn`, `ResourceNotFound`.
    pub(crate) fn list_tags(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let arn = req_str(req, "resourceArn")?;
        let m = self.tagged_machine(arn)?;
        Ok(json!({"tags": m.tags}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn express_machines_use_request_response_only() {
        let def = |resource: &str| {
            json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true,
                "Branches": [{"StartAt": "T", "States": {"T": {"Type": "Task",
                    "Resource": resource, "End": true}}}]}}})
            .to_string()
        };
        for (resource, said) in [
            (
                "arn:aws:states:::states:startExecution.sync",
                "'.sync' service integration",
            ),
            (
                "arn:aws:states:::states:startExecution.sync:2",
                "'.sync:2' service integration",
            ),
            (
                "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "'.waitForTaskToken' service integration",
            ),
            (
                "arn:aws:states:us-east-1:123456789012:activity:a",
                "activities",
            ),
        ] {
            let e = check_express_definition(&def(resource)).unwrap_err();
            assert_eq!(e.code, "InvalidDefinition");
            assert!(e.message.contains(said), "{}", e.message);
            assert!(
                e.message
                    .contains("at /States/P/Branches/0/States/T/Resource"),
                "{}",
                e.message
            );
        }
        for resource in [
            "arn:aws:states:::states:startExecution",
            "arn:aws:states:::lambda:invoke",
            "arn:aws:lambda:us-east-1:123456789012:function:f",
        ] {
            check_express_definition(&def(resource)).unwrap();
        }
    }

    #[test]
    fn logging_defaults_and_checks() {
        assert_eq!(check_logging(None).unwrap()["level"], "OFF");
        let e = check_logging(Some(&json!({"level": "ALL"}))).unwrap_err();
        assert_eq!(e.code, "InvalidLoggingConfiguration");
        let ok = check_logging(Some(&json!({
            "level": "ERROR",
            "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": "arn:aws:logs:us-east-1:123456789012:log-group:g:*"}}]
        })))
        .unwrap();
        assert_eq!(ok["includeExecutionData"], false);
        assert_eq!(
            check_logging(Some(&json!({"level": "LOUD"})))
                .unwrap_err()
                .code,
            "ValidationException"
        );
    }

    #[test]
    fn tags_merge_by_key() {
        let mut t = vec![Tag {
            key: "a".into(),
            value: "1".into(),
        }];
        merge_tags(
            &mut t,
            vec![
                Tag {
                    key: "a".into(),
                    value: "2".into(),
                },
                Tag {
                    key: "b".into(),
                    value: "3".into(),
                },
            ],
        );
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].value, "2");
        assert!(parse_tags(Some(&json!([{"key": ""}]))).is_err());
        assert!(parse_tags(Some(&json!("x"))).is_err());
    }
}
