//! State machine aliases: CreateStateMachineAlias,
//! DescribeStateMachineAlias, UpdateStateMachineAlias,
//! DeleteStateMachineAlias, ListStateMachineAliases (botocore model
//! `stepfunctions/2016-11-23`). An alias (`<state machine ARN>:<name>`)
//! routes executions to one version, or splits them between two by
//! weight; StartExecution accepts an alias ARN.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use stratus_core::{AwsError, AwsResult};

use crate::machines::{MachineRecord, VersionRecord};
use crate::names::{self, err};
use crate::{States, epoch, opt_str, page_size, page_token, parse_page_token, req_str};

/// AWS's quota of aliases per state machine: 100.
pub const MAX_ALIASES: usize = 100;

/// One alias as stored in its state machine's record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AliasRecord {
    pub name: String,
    pub description: Option<String>,
    /// `(version number, weight in percent)`; one or two entries, weights
    /// adding up to 100.
    pub routing: Vec<(u64, u64)>,
    /// ms since the epoch.
    pub creation_ms: i64,
    pub update_ms: i64,
}

/// Checks an alias name (`CharacterRestrictedName`: 1-80 of
/// `[a-zA-Z0-9_.-]`, at least one of them not a digit).
///
/// Errors: `ValidationException`.
pub fn check_alias_name(name: &str) -> AwsResult<()> {
    names::check_len(name, "name", 1, 80)?;
    let allowed = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    let not_numeric = name.chars().any(|c| !c.is_ascii_digit());
    if !allowed || !not_numeric {
        return Err(names::validation(
            name,
            "name",
            "Member must satisfy regular expression pattern: ^(?=.*[a-zA-Z_\\-\\.])[a-zA-Z0-9_\\-\\.]+$",
        ));
    }
    Ok(())
}

fn not_found(arn: &str) -> AwsError {
    err("ResourceNotFound", format!("Resource not found: '{arn}'")).with_field("resourceName", arn)
}

impl MachineRecord {
    /// The ARN of alias `name`.
    pub fn alias_arn(&self, name: &str) -> String {
        format!("{}:{name}", self.state_machine_arn)
    }

    /// Parses and checks a `routingConfiguration` against this state
    /// machine's versions.
    ///
    /// Errors: `ValidationException` (shape, weights not adding up to 100,
    /// a version of another state machine, the same version twice),
    /// `ResourceNotFound` (a version that does not exist).
    fn routing(&self, v: Option<&Value>) -> AwsResult<Vec<(u64, u64)>> {
        let list = v.and_then(Value::as_array).ok_or_else(|| {
            AwsError::validation_errors(&[
                "Value null at 'routingConfiguration' failed to satisfy constraint: Member must not be null"
                    .to_string(),
            ])
        })?;
        if list.is_empty() || list.len() > 2 {
            return Err(names::validation(
                &list.len().to_string(),
                "routingConfiguration",
                "Member must have length less than or equal to 2 and greater than or equal to 1",
            ));
        }
        let mut out = Vec::new();
        for item in list {
            let arn = item
                .get("stateMachineVersionArn")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let weight = item
                .get("weight")
                .and_then(Value::as_u64)
                .unwrap_or(u64::MAX);
            if weight > 100 {
                return Err(names::validation(
                    &weight.to_string(),
                    "routingConfiguration.member.weight",
                    "Member must have value less than or equal to 100",
                ));
            }
            let version = arn
                .strip_prefix(&format!("{}:", self.state_machine_arn))
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| {
                    AwsError::validation(format!(
                        "Routing configuration must contain versions of {}; '{arn}' is not one.",
                        self.state_machine_arn
                    ))
                })?;
            if !self.versions.iter().any(|v| v.version == version) {
                return Err(not_found(arn));
            }
            if out.iter().any(|(v, _)| *v == version) {
                return Err(AwsError::validation(
                    "Routing configuration must contain distinct state machine versions.",
                ));
            }
            out.push((version, weight));
        }
        if out.iter().map(|(_, w)| w).sum::<u64>() != 100 {
            return Err(AwsError::validation(
                "Sum of routing configuration weights must be equal to 100.",
            ));
        }
        Ok(out)
    }

    /// The version an execution started through alias `name` runs:
    /// chosen by the routing weights with `roll` (0-99).
    pub fn route(&self, name: &str, roll: u64) -> Option<VersionRecord> {
        let alias = self.aliases.iter().find(|a| a.name == name)?;
        let mut acc = 0;
        let mut chosen = alias.routing.first()?.0;
        for (v, w) in &alias.routing {
            acc += w;
            if roll % 100 < acc {
                chosen = *v;
                break;
            }
        }
        self.versions.iter().find(|v| v.version == chosen).cloned()
    }

    fn describe_alias(&self, a: &AliasRecord) -> Value {
        let mut v = json!({
            "stateMachineAliasArn": self.alias_arn(&a.name),
            "name": a.name,
            "routingConfiguration": a.routing.iter().map(|(n, w)| json!({
                "stateMachineVersionArn": self.version_arn(*n),
                "weight": w,
            })).collect::<Vec<_>>(),
            "creationDate": epoch(a.creation_ms),
            "updateDate": epoch(a.update_ms),
        });
        if let Some(d) = &a.description {
            v["description"] = Value::from(d.clone());
        }
        v
    }
}

impl States {
    /// What a `stateMachineArn` of StartExecution names: the state machine,
    /// the version to run (named, or chosen by an alias's routing), and the
    /// alias ARN when an alias was named.
    ///
    /// Errors: `InvalidArn`, `StateMachineDoesNotExist`.
    pub(crate) fn load_for_execution(
        &self,
        arn: &str,
    ) -> AwsResult<(MachineRecord, Option<VersionRecord>, Option<String>)> {
        let a = names::check_state_machine_arn(arn)?;
        match a.parts.get(1) {
            Some(name) if name.parse::<u64>().is_err() => {
                let missing = || {
                    err(
                        "StateMachineDoesNotExist",
                        format!("State Machine Does Not Exist: '{arn}'"),
                    )
                };
                let base = arn.rsplit_once(':').map(|(b, _)| b).unwrap_or(arn);
                let m = self.load_machine(base).map_err(|_| missing())?;
                let roll = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) * 100 / 256;
                let v = m.route(name, roll).ok_or_else(missing)?;
                Ok((m, Some(v), Some(arn.to_string())))
            }
            _ => {
                let (m, v) = self.load_target(arn)?;
                Ok((m, v, None))
            }
        }
    }

    /// The state machine and alias name of an alias ARN.
    ///
    /// Errors: `InvalidArn`, `ResourceNotFound`.
    fn load_alias(&self, arn: &str) -> AwsResult<(MachineRecord, String)> {
        let a = names::check_state_machine_arn(arn)?;
        let Some(name) = a.parts.get(1).filter(|n| n.parse::<u64>().is_err()) else {
            return Err(err(
                "InvalidArn",
                format!("Invalid Arn: 'Resource type not valid in this context: {arn}'"),
            ));
        };
        let base = arn.rsplit_once(':').map(|(b, _)| b).unwrap_or(arn);
        let m = self.load_machine(base).map_err(|_| not_found(arn))?;
        if !m.aliases.iter().any(|x| &x.name == name) {
            return Err(not_found(arn));
        }
        Ok((m, name.clone()))
    }

    /// CreateStateMachineAlias. Idempotent for the same description and
    /// routing.
    ///
    /// Errors: `InvalidArn`, `ValidationException`, `ResourceNotFound`,
    /// `ConflictException` (the name is in use with other settings),
    /// `ServiceQuotaExceededException`.
    pub(crate) async fn create_alias(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let name = req_str(req, "name")?;
        check_alias_name(name)?;
        let description = opt_str(req, "description")?;
        if let Some(d) = description {
            names::check_len(d, "description", 0, 256)?;
        }
        let routing_value = req.get("routingConfiguration");
        let first = routing_value
            .and_then(Value::as_array)
            .and_then(|l| l.first())
            .and_then(|i| i.get("stateMachineVersionArn"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let base = first.rsplit_once(':').map(|(b, _)| b).unwrap_or(first);
        names::check_state_machine_arn(first)?;
        let mut m = self.load_machine(base).map_err(|_| not_found(first))?;
        let routing = m.routing(routing_value)?;
        if let Some(existing) = m.aliases.iter().find(|a| a.name == name) {
            if existing.routing == routing && existing.description.as_deref() == description {
                return Ok(json!({
                    "stateMachineAliasArn": m.alias_arn(name),
                    "creationDate": epoch(existing.creation_ms),
                }));
            }
            return Err(err(
                "ConflictException",
                format!("Alias '{name}' already exists with a different configuration."),
            ));
        }
        if m.aliases.len() >= MAX_ALIASES {
            return Err(err(
                "ServiceQuotaExceededException",
                format!("A state machine can have at most {MAX_ALIASES} aliases."),
            ));
        }
        let now = stratus_core::time::now_ms();
        m.aliases.push(AliasRecord {
            name: name.to_string(),
            description: description.map(str::to_string),
            routing,
            creation_ms: now,
            update_ms: now,
        });
        self.store_machine(&m)?;
        Ok(json!({"stateMachineAliasArn": m.alias_arn(name), "creationDate": epoch(now)}))
    }

    /// DescribeStateMachineAlias.
    ///
    /// Errors: `InvalidArn`, `ResourceNotFound`.
    pub(crate) fn describe_alias(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let arn = req_str(req, "stateMachineAliasArn")?;
        let (m, name) = self.load_alias(arn)?;
        let a = m
            .aliases
            .iter()
            .find(|a| a.name == name)
            .ok_or_else(|| not_found(arn))?;
        Ok(m.describe_alias(a))
    }

    /// UpdateStateMachineAlias: description and/or routing.
    ///
    /// Errors: `InvalidArn`, `ResourceNotFound`, `ValidationException`
    /// (nothing to update, bad routing).
    pub(crate) async fn update_alias(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let arn = req_str(req, "stateMachineAliasArn")?;
        let description = opt_str(req, "description")?;
        if let Some(d) = description {
            names::check_len(d, "description", 0, 256)?;
        }
        let routing_value = req.get("routingConfiguration").filter(|v| !v.is_null());
        if description.is_none() && routing_value.is_none() {
            return Err(AwsError::validation(
                "Either the description or the RoutingConfiguration must be specified",
            ));
        }
        let (mut m, name) = self.load_alias(arn)?;
        let routing = match routing_value {
            Some(v) => Some(m.routing(Some(v))?),
            None => None,
        };
        let now = stratus_core::time::now_ms();
        let a = m
            .aliases
            .iter_mut()
            .find(|a| a.name == name)
            .ok_or_else(|| not_found(arn))?;
        if let Some(d) = description {
            a.description = Some(d.to_string());
        }
        if let Some(r) = routing {
            a.routing = r;
        }
        a.update_ms = now.max(a.update_ms + 1);
        let update_ms = a.update_ms;
        self.store_machine(&m)?;
        Ok(json!({"updateDate": epoch(update_ms)}))
    }

    /// DeleteStateMachineAlias.
    ///
    /// Errors: `InvalidArn`, `ResourceNotFound`.
    pub(crate) async fn delete_alias(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let arn = req_str(req, "stateMachineAliasArn")?;
        let (mut m, name) = self.load_alias(arn)?;
        m.aliases.retain(|a| a.name != name);
        self.store_machine(&m)?;
        Ok(json!({}))
    }

    /// ListStateMachineAliases of a state machine, in pages.
    ///
    /// Errors: `InvalidArn`, `StateMachineDoesNotExist`, `InvalidToken`.
    pub(crate) fn list_aliases(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let arn = req_str(req, "stateMachineArn")?;
        let m = self.load_machine(arn)?;
        let start = parse_page_token(opt_str(req, "nextToken")?)?;
        let size = page_size(req)?;
        let items: Vec<Value> = m
            .aliases
            .iter()
            .skip(start)
            .take(size)
            .map(|a| {
                json!({
                    "stateMachineAliasArn": m.alias_arn(&a.name),
                    "creationDate": epoch(a.creation_ms),
                })
            })
            .collect();
        let mut out = json!({"stateMachineAliases": items});
        if start + size < m.aliases.len() {
            out["nextToken"] = Value::from(page_token(start + size));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_names_follow_the_model_pattern() {
        assert!(check_alias_name("PROD").is_ok());
        assert!(check_alias_name("v1.2-beta_x").is_ok());
        assert!(check_alias_name("123").is_err());
        assert!(check_alias_name("has space").is_err());
        assert!(check_alias_name("").is_err());
    }
}
