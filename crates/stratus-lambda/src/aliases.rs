//! Aliases: CreateAlias, GetAlias, UpdateAlias, DeleteAlias, ListAliases,
//! and the weighted routing of `RoutingConfig.AdditionalVersionWeights`
//! (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-aliases.html>).
//!
//! An alias is stored under kind [`KIND_ALIAS`] with id `name:alias`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use stratus_core::{AwsError, AwsResult, FunctionRef};

use crate::service::{Lambda, parse_body};
use crate::versions::{is_version_number, page, parse_max_items, qualified_id};

/// Store kind of aliases (id `name:alias`).
pub const KIND_ALIAS: &str = "alias";

/// What the store keeps for an alias.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AliasRecord {
    pub function_name: String,
    pub name: String,
    /// The version the alias points to (`$LATEST` or a number).
    pub function_version: String,
    pub description: String,
    /// `AdditionalVersionWeights`: at most one other version and the share
    /// of invocations (0.0-1.0) routed to it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub additional_version_weights: BTreeMap<String, f64>,
    pub revision_id: String,
}

impl AliasRecord {
    /// The additional versions and their weights.
    pub fn weights(&self) -> impl Iterator<Item = (&str, f64)> {
        self.additional_version_weights
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
    }

    /// The version an invocation through this alias runs: the additional
    /// version with probability equal to its weight, else the primary one.
    /// `r` is uniform in [0, 1).
    pub fn route(&self, r: f64) -> &str {
        let mut acc = 0.0;
        for (v, w) in self.weights() {
            acc += w;
            if r < acc {
                return v;
            }
        }
        &self.function_version
    }
}

/// A uniform random number in [0, 1) (53 random bits of a v4 UUID).
pub(crate) fn uniform() -> f64 {
    let bits = (uuid::Uuid::new_v4().as_u128() >> 64) as u64 >> 11;
    bits as f64 / (1u64 << 53) as f64
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RoutingInput {
    additional_version_weights: Option<BTreeMap<String, f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AliasInput {
    name: Option<String>,
    function_version: Option<String>,
    description: Option<String>,
    routing_config: Option<RoutingInput>,
    revision_id: Option<String>,
}

/// `(?!^[0-9]+$)([a-zA-Z0-9-_]+)`, 1-128 characters.
pub fn valid_alias_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !s.bytes().all(|b| b.is_ascii_digit())
}

fn check_alias_name(name: &str) -> AwsResult<()> {
    if valid_alias_name(name) {
        Ok(())
    } else {
        Err(AwsError::validation_errors(&[format!(
            "Value '{name}' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)"
        )]))
    }
}

fn check_function_version(v: &str) -> AwsResult<()> {
    if v == "$LATEST" || is_version_number(v) {
        Ok(())
    } else {
        Err(AwsError::validation_errors(&[format!(
            "Value '{v}' at 'functionVersion' failed to satisfy constraint: Member must satisfy regular expression pattern: (\\$LATEST|[0-9]+)"
        )]))
    }
}

fn check_description(d: &str) -> AwsResult<()> {
    if d.chars().count() > 256 {
        return Err(AwsError::validation_errors(&[format!(
            "Value '{d}' at 'description' failed to satisfy constraint: Member must have length less than or equal to 256"
        )]));
    }
    Ok(())
}

fn alias_ref(region: &str, lambda: &Lambda, function_name: &str) -> AwsResult<String> {
    let fref = FunctionRef::parse(function_name, "functionName")?;
    lambda.check_ref(region, &fref)?;
    Ok(fref.name)
}

impl Lambda {
    /// The ARN of an alias.
    fn alias_arn(&self, region: &str, a: &AliasRecord) -> String {
        self.qualified_arn(region, &a.function_name, &a.name)
    }

    /// `AliasConfiguration` as the API answers it.
    pub(crate) fn alias_value(&self, region: &str, a: &AliasRecord) -> Value {
        let mut v = json!({
            "AliasArn": self.alias_arn(region, a),
            "Name": a.name,
            "FunctionVersion": a.function_version,
            "Description": a.description,
            "RevisionId": a.revision_id,
        });
        if !a.additional_version_weights.is_empty() {
            v["RoutingConfig"] = json!({"AdditionalVersionWeights": a.additional_version_weights});
        }
        v
    }

    fn alias_not_found(&self, region: &str, function: &str, alias: &str) -> AwsError {
        AwsError::not_found(format!(
            "Cannot find alias arn: {}",
            self.qualified_arn(region, function, alias)
        ))
    }

    /// Loads an alias. Errors: `ResourceNotFoundException` (404).
    pub fn load_alias(&self, region: &str, function: &str, alias: &str) -> AwsResult<AliasRecord> {
        let key = (region.to_string(), qualified_id(function, alias));
        if let Some(a) = self
            .qualified
            .aliases
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok((**a).clone());
        }
        match self.store.get(KIND_ALIAS, region, &key.1)? {
            Some(body) => {
                let a: AliasRecord = serde_json::from_str(&body)
                    .map_err(|e| AwsError::service(format!("stored alias is unreadable: {e}")))?;
                self.qualified
                    .aliases
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, Arc::new(a.clone()));
                Ok(a)
            }
            None => Err(self.alias_not_found(region, function, alias)),
        }
    }

    fn save_alias(&self, region: &str, a: &AliasRecord) -> AwsResult<()> {
        let id = qualified_id(&a.function_name, &a.name);
        let body = serde_json::to_string(a).map_err(|e| AwsError::service(e.to_string()))?;
        self.store.put(KIND_ALIAS, region, &id, &body)?;
        self.qualified
            .aliases
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert((region.to_string(), id), Arc::new(a.clone()));
        Ok(())
    }

    /// Every alias of a function, ordered by name.
    pub(crate) fn alias_records(
        &self,
        region: &str,
        function: &str,
    ) -> AwsResult<Vec<AliasRecord>> {
        let prefix = format!("{function}:");
        Ok(self
            .store
            .list(KIND_ALIAS, region)?
            .into_iter()
            .filter(|(id, _)| id.starts_with(&prefix))
            .filter_map(|(_, body)| serde_json::from_str(&body).ok())
            .collect())
    }

    /// Checks `AdditionalVersionWeights` against the alias's primary version,
    /// as AWS does: at most one entry, a published version other than the
    /// primary, weight 0.0-1.0, and a primary that is not `$LATEST`.
    fn check_routing(
        &self,
        region: &str,
        function: &str,
        primary: &str,
        weights: &BTreeMap<String, f64>,
    ) -> AwsResult<()> {
        if weights.len() > 1 {
            return Err(AwsError::invalid_parameter(
                "Number of items in AdditionalVersionWeights cannot be greater than 1",
            ));
        }
        for (k, w) in weights {
            if !w.is_finite() || *w < 0.0 || *w > 1.0 {
                return Err(AwsError::validation_errors(&[format!(
                    "Value '{{{k}={w}}}' at 'routingConfig.additionalVersionWeights' failed to satisfy constraint: Map value must satisfy constraint: [Member must have value less than or equal to 1.0, Member must have value greater than or equal to 0.0, Member must not be null]"
                )]));
            }
            if !is_version_number(k) {
                return Err(AwsError::validation_errors(&[format!(
                    "Value '{{{k}={w}}}' at 'routingConfig.additionalVersionWeights' failed to satisfy constraint: Map keys must satisfy constraint: [Member must have length less than or equal to 1024, Member must have length greater than or equal to 1, Member must satisfy regular expression pattern: [0-9]+, Member must not be null]"
                )]));
            }
            if k == primary {
                return Err(AwsError::invalid_parameter(format!(
                    "Invalid function version {k}. Function version {k} is already included in routing configuration."
                )));
            }
            if primary == "$LATEST" {
                return Err(AwsError::invalid_parameter(
                    "$LATEST is not supported for an alias pointing to more than 1 version",
                ));
            }
            self.load_version(region, function, k)?;
        }
        Ok(())
    }

    /// CreateAlias (`POST /2015-03-31/functions/{FunctionName}/aliases`, 201).
    ///
    /// Errors: `ValidationException` for a bad name or version,
    /// `ResourceNotFoundException` when the function or version does not
    /// exist, `ResourceConflictException` (409) when the alias exists,
    /// `InvalidParameterValueException` for bad routing.
    pub async fn create_alias(
        self: &Arc<Self>,
        region: &str,
        function_name: &str,
        body: &[u8],
    ) -> AwsResult<Value> {
        let input: AliasInput = parse_body(body)?;
        let function = alias_ref(region, self, function_name)?;
        let name = input.name.ok_or_else(|| {
            AwsError::invalid_parameter("Name is a required parameter and was not provided.")
        })?;
        check_alias_name(&name)?;
        let version = input.function_version.ok_or_else(|| {
            AwsError::invalid_parameter(
                "FunctionVersion is a required parameter and was not provided.",
            )
        })?;
        check_function_version(&version)?;
        let description = input.description.unwrap_or_default();
        check_description(&description)?;
        let _g = self.write_lock.lock().await;
        self.load(region, &function)?;
        if version != "$LATEST" {
            self.load_version(region, &function, &version)?;
        }
        let weights = input
            .routing_config
            .and_then(|r| r.additional_version_weights)
            .unwrap_or_default();
        if let Ok(existing) = self.load_alias(region, &function, &name) {
            return Err(AwsError::conflict(format!(
                "Alias already exists: {}",
                self.alias_arn(region, &existing)
            )));
        }
        self.check_routing(region, &function, &version, &weights)?;
        let a = AliasRecord {
            function_name: function.clone(),
            name: name.clone(),
            function_version: version,
            description,
            additional_version_weights: weights,
            revision_id: uuid::Uuid::new_v4().to_string(),
        };
        let body = serde_json::to_string(&a).map_err(|e| AwsError::service(e.to_string()))?;
        if !self
            .store
            .insert_new(KIND_ALIAS, region, &qualified_id(&function, &name), &body)?
        {
            return Err(AwsError::conflict(format!(
                "Alias already exists: {}",
                self.alias_arn(region, &a)
            )));
        }
        Ok(self.alias_value(region, &a))
    }

    /// GetAlias (`GET .../aliases/{Name}`).
    pub fn get_alias(&self, region: &str, function_name: &str, alias: &str) -> AwsResult<Value> {
        let function = alias_ref(region, self, function_name)?;
        self.load(region, &function)?;
        let a = self.load_alias(region, &function, alias)?;
        Ok(self.alias_value(region, &a))
    }

    /// UpdateAlias (`PUT .../aliases/{Name}`): any of FunctionVersion,
    /// Description, RoutingConfig (an empty `AdditionalVersionWeights`
    /// removes the routing); `RevisionId` precondition (412). A new
    /// RevisionId every time. Provisioned concurrency on the alias follows
    /// it to its new version(s).
    pub async fn update_alias(
        self: &Arc<Self>,
        region: &str,
        function_name: &str,
        alias: &str,
        body: &[u8],
    ) -> AwsResult<Value> {
        let input: AliasInput = parse_body(body)?;
        let function = alias_ref(region, self, function_name)?;
        if let Some(v) = &input.function_version {
            check_function_version(v)?;
        }
        if let Some(d) = &input.description {
            check_description(d)?;
        }
        let _g = self.write_lock.lock().await;
        self.load(region, &function)?;
        let mut a = self.load_alias(region, &function, alias)?;
        if let Some(r) = &input.revision_id
            && r != &a.revision_id
        {
            return Err(AwsError::new(
                412,
                "PreconditionFailedException",
                "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
            ));
        }
        if let Some(v) = input.function_version {
            if v != "$LATEST" {
                self.load_version(region, &function, &v)?;
            }
            a.function_version = v;
        }
        if let Some(d) = input.description {
            a.description = d;
        }
        if let Some(r) = input.routing_config {
            a.additional_version_weights = r.additional_version_weights.unwrap_or_default();
        }
        self.check_routing(
            region,
            &function,
            &a.function_version,
            &a.additional_version_weights,
        )?;
        if a.function_version == "$LATEST"
            && self
                .load_provisioned_config(region, &function, alias)
                .is_some()
        {
            return Err(AwsError::invalid_parameter(
                "Provisioned Concurrency Configs cannot be applied to unpublished function versions.",
            ));
        }
        a.revision_id = uuid::Uuid::new_v4().to_string();
        self.save_alias(region, &a)?;
        drop(_g);
        self.reconcile_provisioned(region, &function);
        Ok(self.alias_value(region, &a))
    }

    /// DeleteAlias (`DELETE .../aliases/{Name}`, 204): also removes the
    /// alias's provisioned concurrency. Deleting an alias that does not exist
    /// succeeds (the operation is idempotent).
    pub async fn delete_alias(
        self: &Arc<Self>,
        region: &str,
        function_name: &str,
        alias: &str,
    ) -> AwsResult<()> {
        let function = alias_ref(region, self, function_name)?;
        let _g = self.write_lock.lock().await;
        self.load(region, &function)?;
        let id = qualified_id(&function, alias);
        self.store.delete(KIND_ALIAS, region, &id)?;
        self.qualified
            .aliases
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(region.to_string(), id.clone()));
        let had_pc = self
            .store
            .delete(crate::provisioned::KIND_PROVISIONED, region, &id)?;
        drop(_g);
        if had_pc {
            self.refresh_unreserved(region);
            self.reconcile_provisioned(region, &function);
        }
        Ok(())
    }

    /// ListAliases (`GET .../aliases`): ordered by name, optionally only
    /// those pointing at `FunctionVersion`; `MaxItems` / `Marker` paging.
    pub fn list_aliases(
        &self,
        region: &str,
        function_name: &str,
        function_version: Option<&str>,
        marker: Option<&str>,
        max_items: Option<&str>,
    ) -> AwsResult<Value> {
        let function = alias_ref(region, self, function_name)?;
        let max = parse_max_items(max_items, 50, 10_000)?;
        if let Some(v) = function_version {
            check_function_version(v)?;
        }
        self.load(region, &function)?;
        let items: Vec<(String, Value)> = self
            .alias_records(region, &function)?
            .into_iter()
            .filter(|a| function_version.is_none_or(|v| a.function_version == v))
            .map(|a| (a.name.clone(), self.alias_value(region, &a)))
            .collect();
        let (out, next) = page(items, marker, max)?;
        let mut resp = json!({"Aliases": out});
        if let Some(n) = next {
            resp["NextMarker"] = json!(n);
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(weights: &[(&str, f64)]) -> AliasRecord {
        AliasRecord {
            function_name: "f".into(),
            name: "live".into(),
            function_version: "1".into(),
            description: String::new(),
            additional_version_weights: weights.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            revision_id: "r".into(),
        }
    }

    #[test]
    fn names() {
        assert!(valid_alias_name("prod"));
        assert!(valid_alias_name("v1-live_2"));
        assert!(!valid_alias_name("12"));
        assert!(!valid_alias_name(""));
        assert!(!valid_alias_name("a:b"));
        assert!(!valid_alias_name("$LATEST"));
    }

    #[test]
    fn routing() {
        let a = alias(&[("2", 0.3)]);
        assert_eq!(a.route(0.0), "2");
        assert_eq!(a.route(0.299), "2");
        assert_eq!(a.route(0.3), "1");
        assert_eq!(a.route(0.99), "1");
        assert_eq!(alias(&[]).route(0.0), "1");
        assert_eq!(alias(&[("2", 1.0)]).route(0.999), "2");
        assert_eq!(alias(&[("2", 0.0)]).route(0.0), "1");
    }

    #[test]
    fn uniform_in_range() {
        let n = 10_000;
        let mut below = 0;
        for _ in 0..n {
            let r = uniform();
            assert!((0.0..1.0).contains(&r));
            if r < 0.3 {
                below += 1;
            }
        }
        // Binomial(10000, 0.3): sd ~ 46; 10 sd of slack.
        assert!((2540..=3460).contains(&below), "{below}");
    }
}
