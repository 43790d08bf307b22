//! The EventBridge API operations (botocore `events` 2015-10-07): event
//! buses, rules, targets, PutEvents, TestEventPattern and tags.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use stratus_core::{AwsError, AwsResult};
use stratus_store::rusqlite::{self, params};

use crate::delivery::Envelope;
use crate::model::{
    BusRec, DEFAULT_BUS, Input, RuleRec, already_exists, check_name, constraint, internal,
    invalid_pattern, limit_exceeded, not_found, read_tags, tags_json, validation,
};
use crate::pattern::Pattern;
use crate::schedule::Schedule;
use crate::transform::{JsonPath, Transformer};
use crate::{BusState, CompiledRule, Events, InputMode, TargetSpec};

/// Most entries in one PutEvents call (botocore: max 10).
pub const MAX_ENTRIES: usize = 10;
/// Most bytes of entries in one PutEvents call (256 KB).
pub const MAX_PUT_BYTES: usize = 256 * 1024;
/// Most targets per rule.
pub const MAX_TARGETS: usize = 5;
/// AWS's default RetryPolicy: most retries.
pub const DEFAULT_RETRIES: u32 = 185;
/// AWS's default RetryPolicy: most event age, seconds.
pub const DEFAULT_MAX_AGE_S: i64 = 86_400;

fn secs(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

/// Resolves `EventBusName` (a name or an event bus ARN); absent is the
/// default bus.
fn bus_name(input: &Input, key: &str) -> AwsResult<String> {
    match input.opt_str(key)? {
        None => Ok(DEFAULT_BUS.to_string()),
        Some(v) => {
            let name = match v.strip_prefix("arn:") {
                Some(_) => v
                    .split_once(":event-bus/")
                    .map(|(_, n)| n)
                    .ok_or_else(|| validation(format!("'{v}' is not an event bus ARN.")))?,
                None => v,
            };
            check_name(name, &crate::model::lower_first(key), 256, true)?;
            Ok(name.to_string())
        }
    }
}

/// Compiles a stored (or requested) target.
///
/// Errors: a `ValidationException` naming the target and the problem.
pub(crate) fn compile_target(t: &Map<String, Value>) -> AwsResult<TargetSpec> {
    let s = |k: &str| t.get(k).and_then(Value::as_str);
    let id = s("Id").ok_or_else(|| validation("Every target needs an Id."))?;
    check_name(id, "targets.member.id", 64, false)?;
    let arn = s("Arn").ok_or_else(|| validation(format!("Target {id} needs an Arn.")))?;
    if arn.is_empty()
        || arn.chars().count() > 1600
        || stratus_core::Targets::service_of(arn).is_none()
    {
        return Err(validation(format!(
            "Parameter {arn} is not valid. Reason: the Arn of target {id} must be an ARN (arn:aws:<service>:<region>:<account>:<resource>)."
        )));
    }
    let given = ["Input", "InputPath", "InputTransformer"]
        .iter()
        .filter(|k| t.get(**k).is_some_and(|v| !v.is_null()))
        .count();
    if given > 1 {
        return Err(validation(format!(
            "Target {id}: only one of Input, InputPath and InputTransformer may be given."
        )));
    }
    let input = if let Some(v) = t.get("Input").filter(|v| !v.is_null()) {
        let text = v
            .as_str()
            .ok_or_else(|| validation(format!("Input of target {id} must be a string.")))?;
        if text.chars().count() > 8192 {
            return Err(validation(format!(
                "Input of target {id} is longer than 8192 characters."
            )));
        }
        serde_json::from_str::<Value>(text)
            .map_err(|e| validation(format!("Input of target {id} is not valid JSON: {e}")))?;
        InputMode::Constant(text.to_string())
    } else if let Some(v) = t.get("InputPath").filter(|v| !v.is_null()) {
        let text = v
            .as_str()
            .ok_or_else(|| validation(format!("InputPath of target {id} must be a string.")))?;
        if text.chars().count() > 256 {
            return Err(validation(format!(
                "InputPath of target {id} is longer than 256 characters."
            )));
        }
        InputMode::Path(
            JsonPath::parse(text)
                .map_err(|e| validation(format!("InputPath of target {id}: {e}")))?,
        )
    } else if let Some(v) = t.get("InputTransformer").filter(|v| !v.is_null()) {
        let template = v
            .get("InputTemplate")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                validation(format!(
                    "InputTransformer of target {id} needs an InputTemplate."
                ))
            })?;
        if template.chars().count() > 8192 {
            return Err(validation(format!(
                "InputTemplate of target {id} is longer than 8192 characters."
            )));
        }
        let mut paths = BTreeMap::new();
        match v.get("InputPathsMap") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, p) in m {
                    let p = p.as_str().ok_or_else(|| {
                        validation(format!(
                            "InputPathsMap of target {id}: the path of {k} must be a string."
                        ))
                    })?;
                    paths.insert(k.clone(), p.to_string());
                }
            }
            Some(_) => {
                return Err(validation(format!(
                    "InputPathsMap of target {id} must be a map of names to JSON paths."
                )));
            }
        }
        InputMode::Transformer(Box::new(Transformer::new(&paths, template).map_err(
            |e| validation(format!("Invalid InputTemplate for target {id} : {e}")),
        )?))
    } else {
        InputMode::Event
    };
    let mut max_retries = DEFAULT_RETRIES;
    let mut max_age_s = DEFAULT_MAX_AGE_S;
    if let Some(rp) = t.get("RetryPolicy").filter(|v| !v.is_null()) {
        if let Some(n) = rp.get("MaximumRetryAttempts").filter(|v| !v.is_null()) {
            match n.as_i64() {
                Some(n) if (0..=185).contains(&n) => max_retries = n as u32,
                _ => {
                    return Err(AwsError::validation_errors(&[constraint(
                        &n.to_string(),
                        "targets.member.retryPolicy.maximumRetryAttempts",
                        "Member must have value between 0 and 185",
                    )]));
                }
            }
        }
        if let Some(n) = rp.get("MaximumEventAgeInSeconds").filter(|v| !v.is_null()) {
            match n.as_i64() {
                Some(n) if (60..=86_400).contains(&n) => max_age_s = n,
                _ => {
                    return Err(AwsError::validation_errors(&[constraint(
                        &n.to_string(),
                        "targets.member.retryPolicy.maximumEventAgeInSeconds",
                        "Member must have value between 60 and 86400",
                    )]));
                }
            }
        }
    }
    let dead_letter_arn = match t
        .get("DeadLetterConfig")
        .and_then(|d| d.get("Arn"))
        .and_then(Value::as_str)
    {
        Some(a) if stratus_core::Targets::service_of(a) == Some("sqs") => Some(a.to_string()),
        Some(a) => {
            return Err(validation(format!(
                "The DeadLetterConfig of target {id} must name an SQS queue ARN, not '{a}'."
            )));
        }
        None => None,
    };
    let message_group_id = match t.get("SqsParameters").filter(|v| !v.is_null()) {
        None => None,
        Some(p) => match p.get("MessageGroupId") {
            None | Some(Value::Null) => None,
            Some(Value::String(g)) if !g.is_empty() && g.chars().count() <= 128 => Some(g.clone()),
            Some(_) => {
                return Err(validation(format!(
                    "SqsParameters.MessageGroupId of target {id} must be a string of 1-128 characters."
                )));
            }
        },
    };
    Ok(TargetSpec {
        id: id.to_string(),
        arn: arn.to_string(),
        input,
        max_retries,
        max_age_s,
        dead_letter_arn,
        message_group_id,
    })
}

/// Compiles a stored rule.
pub(crate) fn compile_rule(rec: RuleRec) -> AwsResult<CompiledRule> {
    let pattern = match &rec.event_pattern {
        Some(p) => Some(Pattern::parse(p).map_err(invalid_pattern)?),
        None => None,
    };
    let schedule = match &rec.schedule {
        Some(s) => Some(Schedule::parse(s).map_err(validation)?),
        None => None,
    };
    let targets = rec
        .targets
        .iter()
        .map(compile_target)
        .collect::<AwsResult<Vec<_>>>()?;
    Ok(CompiledRule {
        rec,
        pattern,
        schedule,
        targets,
    })
}

fn rule_json(r: &RuleRec, describe: bool, account: &str) -> Value {
    let mut m = Map::new();
    m.insert("Name".into(), json!(r.name));
    m.insert("Arn".into(), json!(r.arn));
    if let Some(p) = &r.event_pattern {
        m.insert("EventPattern".into(), json!(p));
    }
    if let Some(s) = &r.schedule {
        m.insert("ScheduleExpression".into(), json!(s));
    }
    m.insert("State".into(), json!(r.state));
    if let Some(d) = &r.description {
        m.insert("Description".into(), json!(d));
    }
    if let Some(a) = &r.role_arn {
        m.insert("RoleArn".into(), json!(a));
    }
    m.insert("EventBusName".into(), json!(r.bus));
    if describe {
        m.insert("CreatedBy".into(), json!(account));
    }
    Value::Object(m)
}

fn bus_json(b: &BusRec) -> Value {
    let mut m = Map::new();
    m.insert("Name".into(), json!(b.name));
    m.insert("Arn".into(), json!(b.arn));
    if let Some(d) = &b.description {
        m.insert("Description".into(), json!(d));
    }
    m.insert("CreationTime".into(), secs(b.created_ms));
    m.insert("LastModifiedTime".into(), secs(b.modified_ms));
    Value::Object(m)
}

/// A page of `items` after the `NextToken` (the last name of the previous
/// page).
fn page<T: Clone>(
    items: Vec<(String, T)>,
    input: &Input,
    default_limit: usize,
) -> AwsResult<(Vec<T>, Option<String>)> {
    let limit = input
        .opt_int("Limit", 1, 100)?
        .map_or(default_limit, |n| n as usize);
    let after = input.opt_str("NextToken")?;
    let mut it = items
        .into_iter()
        .filter(|(k, _)| after.is_none_or(|a| k.as_str() > a))
        .peekable();
    let mut out = Vec::new();
    let mut last = None;
    while out.len() < limit {
        match it.next() {
            Some((k, v)) => {
                last = Some(k);
                out.push(v);
            }
            None => break,
        }
    }
    let next = if it.peek().is_some() { last } else { None };
    Ok((out, next))
}

impl Events {
    pub(crate) fn bus_arn(&self, region: &str, name: &str) -> String {
        format!("arn:aws:events:{region}:{}:event-bus/{name}", self.account)
    }

    pub(crate) fn rule_arn(&self, region: &str, bus: &str, name: &str) -> String {
        if bus == DEFAULT_BUS {
            format!("arn:aws:events:{region}:{}:rule/{name}", self.account)
        } else {
            format!("arn:aws:events:{region}:{}:rule/{bus}/{name}", self.account)
        }
    }

    fn default_bus(&self, region: &str) -> BusRec {
        let now = self.boot_ms;
        BusRec {
            name: DEFAULT_BUS.into(),
            arn: self.bus_arn(region, DEFAULT_BUS),
            description: None,
            created_ms: now,
            modified_ms: now,
            tags: BTreeMap::new(),
        }
    }

    /// Makes sure the region's default bus is in memory.
    fn touch_region(&self, region: &str) {
        if self
            .read_state()
            .regions
            .get(region)
            .is_some_and(|r| r.contains_key(DEFAULT_BUS))
        {
            return;
        }
        let mut st = self.write_state();
        let buses = st.regions.entry(region.to_string()).or_default();
        if !buses.contains_key(DEFAULT_BUS) {
            buses.insert(
                DEFAULT_BUS.to_string(),
                BusState::new(self.default_bus(region), false),
            );
        }
    }

    /// Loads buses and rules from the store at start-up.
    pub(crate) fn load(&self) -> Result<(), String> {
        let buses: Vec<(String, String)> = self
            .store
            .read(|c| {
                let mut st = c.prepare("SELECT region, body FROM events_buses")?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|e| e.to_string())?;
        let rules: Vec<(String, String)> = self
            .store
            .read(|c| {
                let mut st = c.prepare("SELECT region, body FROM events_rules")?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|e| e.to_string())?;
        for (region, body) in buses {
            let rec: BusRec = serde_json::from_str(&body).map_err(|e| e.to_string())?;
            self.touch_region(&region);
            let mut st = self.write_state();
            if let Some(r) = st.regions.get_mut(&region) {
                r.insert(rec.name.clone(), BusState::new(rec, true));
            }
        }
        for (region, body) in rules {
            let rec: RuleRec = serde_json::from_str(&body).map_err(|e| e.to_string())?;
            let name = rec.name.clone();
            let bus = rec.bus.clone();
            let compiled = match compile_rule(rec) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(rule = %name, error = %e, "stored rule does not compile; skipped");
                    continue;
                }
            };
            self.touch_region(&region);
            let mut st = self.write_state();
            if let Some(b) = st.regions.get_mut(&region).and_then(|r| r.get_mut(&bus)) {
                b.rules.insert(name, Arc::new(compiled));
            }
        }
        let mut st = self.write_state();
        for buses in st.regions.values_mut() {
            for b in buses.values_mut() {
                b.reindex();
            }
        }
        Ok(())
    }

    pub(crate) async fn dispatch(&self, region: &str, op: &str, body: &[u8]) -> AwsResult<Value> {
        let input = Input::parse(body)?;
        self.touch_region(region);
        match op {
            "CreateEventBus" => self.create_event_bus(region, &input).await,
            "DeleteEventBus" => self.delete_event_bus(region, &input).await,
            "DescribeEventBus" => self.describe_event_bus(region, &input),
            "ListEventBuses" => self.list_event_buses(region, &input),
            "PutEvents" => self.put_events(region, &input).await,
            "PutRule" => self.put_rule(region, &input).await,
            "DescribeRule" => self.describe_rule(region, &input),
            "ListRules" => self.list_rules(region, &input),
            "DeleteRule" => self.delete_rule(region, &input).await,
            "EnableRule" => self.set_rule_state(region, &input, "ENABLED").await,
            "DisableRule" => self.set_rule_state(region, &input, "DISABLED").await,
            "PutTargets" => self.put_targets(region, &input).await,
            "RemoveTargets" => self.remove_targets(region, &input).await,
            "ListTargetsByRule" => self.list_targets_by_rule(region, &input),
            "ListRuleNamesByTarget" => self.list_rule_names_by_target(region, &input),
            "TestEventPattern" => test_event_pattern(&input),
            "TagResource" => self.tag_resource(region, &input, true).await,
            "UntagResource" => self.tag_resource(region, &input, false).await,
            "ListTagsForResource" => self.list_tags(region, &input),
            other => Err(AwsError::new(
                400,
                "UnknownOperationException",
                format!("stratus does not implement the EventBridge operation {other}."),
            )),
        }
    }

    // ---------------------------------------------------------------- buses

    async fn save_bus(&self, region: &str, rec: &BusRec) -> AwsResult<()> {
        let body = serde_json::to_string(rec).map_err(internal)?;
        let (region, name) = (region.to_string(), rec.name.clone());
        self.store
            .write(move |c| {
                c.execute(
                    "INSERT OR REPLACE INTO events_buses (region, name, body) VALUES (?1, ?2, ?3)",
                    params![region, name, body],
                )
            })
            .await
            .map_err(internal)?;
        Ok(())
    }

    async fn create_event_bus(&self, region: &str, input: &Input) -> AwsResult<Value> {
        let name = input.str("Name")?;
        check_name(name, "name", 256, true)?;
        if input.opt_str("EventSourceName")?.is_some() {
            return Err(validation(
                "stratus has no partner event sources: create the bus without EventSourceName.",
            ));
        }
        if name.contains('/') {
            return Err(validation(
                "Event bus name must not contain '/': only partner event buses have it.",
            ));
        }
        if name.starts_with("aws.") {
            return Err(validation(
                "Event bus names starting with 'aws.' are reserved.",
            ));
        }
        let description = input.opt_str("Description")?.map(str::to_string);
        if description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 512)
        {
            return Err(AwsError::validation_errors(&[constraint(
                "...",
                "description",
                "Member must have length less than or equal to 512",
            )]));
        }
        let tags = read_tags(input.opt_array("Tags")?)?;
        let _g = self.ops.lock().await;
        let exists = self
            .read_state()
            .regions
            .get(region)
            .is_some_and(|r| r.contains_key(name));
        if exists {
            return Err(already_exists(format!("Event bus {name} already exists.")));
        }
        let now = stratus_core::time::now_ms();
        let rec = BusRec {
            name: name.to_string(),
            arn: self.bus_arn(region, name),
            description: description.clone(),
            created_ms: now,
            modified_ms: now,
            tags,
        };
        self.save_bus(region, &rec).await?;
        let arn = rec.arn.clone();
        self.write_state()
            .regions
            .entry(region.to_string())
            .or_default()
            .insert(name.to_string(), BusState::new(rec, true));
        let mut out = json!({"EventBusArn": arn});
        if let Some(d) = description {
            out["Description"] = json!(d);
        }
        Ok(out)
    }

    async fn delete_event_bus(&self, region: &str, input: &Input) -> AwsResult<Value> {
        let name = input.str("Name")?;
        check_name(name, "name", 256, true)?;
        if name == DEFAULT_BUS {
            return Err(validation("Cannot delete event bus default."));
        }
        let _g = self.ops.lock().await;
        let has_rules = match self
            .read_state()
            .regions
            .get(region)
            .and_then(|r| r.get(name))
        {
            None => return Ok(json!({})),
            Some(b) => !b.rules.is_empty(),
        };
        if has_rules {
            return Err(validation(format!(
                "Event bus {name} still has rules: delete them (DeleteRule) before the bus."
            )));
        }
        let (r, n) = (region.to_string(), name.to_string());
        self.store
            .write(move |c| {
                c.execute(
                    "DELETE FROM events_buses WHERE region = ?1 AND name = ?2",
                    params![r, n],
                )
            })
            .await
            .map_err(internal)?;
        if let Some(r) = self.write_state().regions.get_mut(region) {
            r.remove(name);
        }
        Ok(json!({}))
    }

    fn bus_rec(&self, region: &str, name: &str) -> AwsResult<BusRec> {
        self.read_state()
            .regions
            .get(region)
            .and_then(|r| r.get(name))
            .map(|b| b.rec.clone())
            .ok_or_else(|| not_found(format!("Event bus {name} does not exist.")))
    }

    fn describe_event_bus(&self, region: &str, input: &Input) -> AwsResult<Value> {
        let name = bus_name(input, "Name")?;
        Ok(bus_json(&self.bus_rec(region, &name)?))
    }

    fn list_event_buses(&self, region: &str, input: &Input) -> AwsResult<Value> {
        let prefix = input.opt_str("NamePrefix")?.unwrap_or("");
        let items: Vec<(String, Value)> = self
            .read_state()
            .regions
            .get(region)
            .map(|r| {
                r.values()
                    .filter(|b| b.rec.name.starts_with(prefix))
                    .map(|b| (b.rec.name.clone(), bus_json(&b.rec)))
                    .collect()
            })
            .unwrap_or_default();
        let (buses, next) = page(items, input, 100)?;
        let mut out = json!({"EventBuses": buses});
        if let Some(n) = next {
            out["NextToken"] = json!(n);
        }
        Ok(out)
    }

    // ---------------------------------------------------------------- events

    async fn put_events(&self, region: &str, input: &Input) -> AwsResult<Value> {
        let entries = input.opt_array("Entries")?.ok_or_else(|| {
            AwsError::validation_errors(&[
                "Value null at 'entries' failed to satisfy constraint: Member must not be null"
                    .to_string(),
            ])
        })?;
        if entries.is_empty() || entries.len() > MAX_ENTRIES {
            return Err(AwsError::validation_errors(&[format!(
                "Value '{}' at 'entries' failed to satisfy constraint: Member must have length between 1 and {MAX_ENTRIES}",
                entries.len()
            )]));
        }
        // Entry size as AWS computes it: Time 14 bytes, plus the UTF-8
        // bytes of Source, DetailType, Detail and each resource.
        let size: usize = entries
            .iter()
            .map(|e| {
                let s = |k: &str| e.get(k).and_then(Value::as_str).map_or(0, str::len);
                let time = if e.get("Time").is_some_and(|t| !t.is_null()) {
                    14
                } else {
                    0
                };
                let resources: usize =
                    e.get("Resources").and_then(Value::as_array).map_or(0, |a| {
                        a.iter().filter_map(Value::as_str).map(str::len).sum()
                    });
                time + s("Source") + s("DetailType") + s("Detail") + resources
            })
            .sum();
        if size > MAX_PUT_BYTES {
            return Err(validation(format!(
                "Total size of the entries in the request is over the limit: {size} bytes, at most {MAX_PUT_BYTES}."
            )));
        }
        let now = stratus_core::time::now_ms();
        let mut results = Vec::with_capacity(entries.len());
        let mut failed = 0;
        let mut deliveries = Vec::new();
        for e in entries {
            match self.put_entry(region, e, now) {
                Ok((id, ds)) => {
                    deliveries.extend(ds);
                    results.push(json!({"EventId": id}));
                }
                Err((code, msg)) => {
                    failed += 1;
                    results.push(json!({"ErrorCode": code, "ErrorMessage": msg}));
                }
            }
        }
        self.enqueue(deliveries).await?;
        Ok(json!({"FailedEntryCount": failed, "Entries": results}))
    }

    /// Checks one PutEvents entry and routes it. Errors are the entry's
    /// `(ErrorCode, ErrorMessage)`.
    #[allow(clippy::type_complexity)]
    fn put_entry(
        &self,
        region: &str,
        e: &Value,
        now: i64,
    ) -> Result<(String, Vec<crate::model::PendingDelivery>), (&'static str, String)> {
        let invalid = |field: &str, why: &str| {
            (
                "InvalidArgument",
                format!("Parameter {field} is not valid. Reason: {why}"),
            )
        };
        let Some(e) = e.as_object() else {
            return Err(invalid("Entries", "each entry must be an object."));
        };
        let text = |k: &str| -> Result<Option<&str>, (&'static str, String)> {
            match e.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(invalid(k, &format!("{k} must be a string."))),
            }
        };
        let source = text("Source")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("Source", "Source is a required argument."))?;
        if source.starts_with("aws.") {
            return Err((
                "NotAuthorizedForSourceException",
                "Not authorized for the source.".to_string(),
            ));
        }
        let detail_type = text("DetailType")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("DetailType", "DetailType is a required argument."))?;
        let detail =
            text("Detail")?.ok_or_else(|| invalid("Detail", "Detail is a required argument."))?;
        let detail_value = match serde_json::from_str::<Value>(detail) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Err(("MalformedDetail", "Detail is malformed.".to_string())),
        };
        let resources: Vec<String> = match e.get("Resources") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => {
                let mut out = Vec::with_capacity(a.len());
                for r in a {
                    match r.as_str() {
                        Some(s) if s.len() <= 2048 => out.push(s.to_string()),
                        _ => {
                            return Err(invalid(
                                "Resources",
                                "each resource must be a string of at most 2048 characters.",
                            ));
                        }
                    }
                }
                out
            }
            Some(_) => return Err(invalid("Resources", "Resources must be a list.")),
        };
        let time_ms = match e.get("Time") {
            None | Some(Value::Null) => now,
            Some(t) => crate::model::parse_time(t)
                .ok_or_else(|| invalid("Time", "Time must be a timestamp."))?,
        };
        let bus = match text("EventBusName")? {
            None => DEFAULT_BUS.to_string(),
            Some(b) => match b.split_once(":event-bus/") {
                Some((_, n)) if b.starts_with("arn:") => n.to_string(),
                _ => b.to_string(),
            },
        };
        let env = Envelope::new(
            &self.account,
            region,
            source,
            detail_type,
            resources,
            detail.to_string(),
            Some(detail_value),
            time_ms,
        );
        // As EventBridge does, an event for a bus that does not exist is
        // accepted (it gets an id) and goes nowhere.
        let ds = self.route(region, &bus, &env).unwrap_or_else(|| {
            tracing::warn!(bus = %bus, region, "PutEvents: event bus does not exist; the event is dropped");
            Vec::new()
        });
        Ok((env.id, ds))
    }

    // ---------------------------------------------------------------- rules

    async fn save_rule(&self, region: &str, rec: &RuleRec) -> AwsResult<()> {
        let body = serde_json::to_string(rec).map_err(internal)?;
        let (region, bus, name) = (region.to_string(), rec.bus.clone(), rec.name.clone());
        self.store
            .write(move |c| {
                c.execute(
                    "INSERT OR REPLACE INTO events_rules (region, bus, name, body) VALUES (?1, ?2, ?3, ?4)",
                    params![region, bus, name, body],
                )
            })
            .await
            .map_err(internal)?;
        Ok(())
    }

    /// Stores and installs a rule (the caller holds `ops`).
    async fn install_rule(&self, region: &str, compiled: CompiledRule) -> AwsResult<()> {
        self.save_rule(region, &compiled.rec).await?;
        let mut st = self.write_state();
        let bus = st
            .regions
            .get_mut(region)
            .and_then(|r| r.get_mut(&compiled.rec.bus))
            .ok_or_else(|| not_found(format!("Event bus {} does not exist.", compiled.rec.bus)))?;
        bus.rules
            .insert(compiled.rec.name.clone(), Arc::new(compiled));
        bus.reindex();
        Ok(())
    }

    fn existing_bus(&self, region: &str, bus: &str) -> AwsResult<()> {
        self.bus_rec(region, bus).map(|_| ())
    }

    fn rule(&self, region: &str, bus: &str, name: &str) -> AwsResult<Arc<CompiledRule>> {
        let st = self.read_state();
        let b = st
            .regions
            .get(region)
            .and_then(|r| r.get(bus))
            .ok_or_else(|| not_found(format!("Event bus {bus} does not exist.")))?;
        b.rules
            .get(name)
            .cloned()
            .ok_or_else(|| not_found(format!("Rule {name} does not exist on EventBus {bus}.")))
    }

    async fn put_rule(&self, region: &str, input: &Input) -> AwsResult<Value> {
        let name = input.str("Name")?;
        check_name(name, "name", 64, false)?;
        let bus = bus_name(input, "EventBusName")?;
        let pattern = input.opt_str("EventPattern")?;
        let schedule = input
            .opt_str("ScheduleExpression")?
            .filter(|s| !s.is_empty());
        if pattern.is_none() && schedule.is_none() {
            return Err(validation(
                "Parameter(s) EventPattern or ScheduleExpression must be specified.",
            ));
        }
        if let Some(p) = pattern {
            Pattern::parse(p).map_err(invalid_pattern)?;
        }
        if let Some(s) = schedule {
            Schedule::parse(s).map_err(validation)?;
            if bus != DEFAULT_BUS {
                return Err(validation(
                    "ScheduleExpression is supported only on the default event bus.",
                ));
            }
        }
        let state = input.opt_str("State")?.unwrap_or("ENABLED");
        if !matches!(
            state,
            "ENABLED" | "DISABLED" | "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
        ) {
            return Err(AwsError::validation_errors(&[constraint(
                state,
                "state",
                "Member must satisfy enum value set: [ENABLED, DISABLED, ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS]",
            )]));
        }
        let description = input.opt_str("Description")?;
        if description.is_some_and(|d| d.chars().count() > 512) {
            return Err(AwsError::validation_errors(&[constraint(
                "...",
                "description",
                "Member must have length less than or equal to 512",
            )]));
        }
        let tags = read_tags(input.opt_array("Tags")?)?;
        let _g = self.ops.lock().await;
        self.existing_bus(region, &bus)?;
        let old = self.rule(region, &bus, name).ok();
        let arn = self.rule_arn(region, &bus, name);
        let rec = RuleRec {
            name: name.to_string(),
            bus: bus.clone(),
            arn: arn.clone(),
            event_pattern: pattern.map(str::to_string),
            schedule: schedule.map(str::to_string),
            state: state.to_string(),
            description: description.map(str::to_string),
            role_arn: input.opt_str("RoleArn")?.map(str::to_string),
            created_ms: old
                .as_ref()
                .map_or_else(stratus_core::time::now_ms, |o| o.rec.created_ms),
            tags: match &old {
                Some(o) if tags.is_empty() => o.rec.tags.clone(),
                Some(o) => {
                    let mut t = o.rec.tags.clone();
                    t.extend(tags);
                    t
                }
                None => tags,
            },
            targets: old.map(|o| o.rec.targets.clone()).unwrap_or_default(),
        };
        self.install_rule(region, compile_rule(rec)?).await?;
        Ok(json!({"RuleArn": arn}))
    }

    fn describe_rule(&self, region: &str, input: &Input) -> AwsResult<Value> {
        let name = input.str("Name")?;
        check_name(name, "name", 64, false)?;
        let bus = bus_name(input, "EventBusName")?;
        let r = self.rule(region, &bus, name)?;
        Ok(rule_json(&r.rec, true, &self.account))
    }

    fn list_rules(&self, region: &str, input: &Input) -> AwsResult<Value> {
        let bus = bus_name(input, "EventBusName")?;
        let prefix = input.opt_str("NamePrefix")?.unwrap_or("");
        let items: Vec<(String, Value)> = {
            let st = self.read_state();
            let b = st
                .regions
                .get(region)
                .and_then(|r| r.get(&bus))
                .ok_or_else(|| not_found(format!("Event bus {bus} does not exist.")))?;
            b.rules
                .values()
                .filter(|r| r.rec.name.starts_with(prefix))
                .map(|r| (r.rec.name.clone(), rule_json(&r.rec, false, &self.account)))
                .collect()
        };
        let (rules, next) = page(items, input, 100)?;
        let mut out = json!({"Rules": rules});
        if let Some(n) = next {
            out["NextToken"] = json!(n);
        }
        Ok(out)
    }

    async fn delete_rule(&self, region: &str, input: &Input) -> AwsResult<Value> {
        let name = input.str("Name")?;
        check_name(name, "name", 64, false)?;
        let bus = bus_name(input, "EventBusName")?;
        let _g = self.ops.lock().await;
        self.existing_bus(region, &bus)?;
        let Ok(rule) = self.rule(region, &bus, name) else {
            return Ok(json!({}));
        };
        if !rule.rec.targets.is_empty() {
            return Err(validation("Rule can't be deleted since it has targets."));
        }
        let (r, b, n) = (region.to_string(), bus.clone(), name.to_string());
        self.store
            .write(move |c| {
                c.execute(
                    "DELETE FROM events_rules WHERE region = ?1 AND bus = ?2 AND name = ?3",
                    params![r, b, n],
                )
            })
            .await
            .map_err(internal)?;
        let mut st = self.write_state();
        if let Some(b) = st.regions.get_mut(region).and_then(|r| r.get_mut(&bus)) {
            b.rules.remove(name);
            b.reindex();
        }
        Ok(json!({}))
    }

    async fn set_rule_state(&self, region: &str, input: &Input, state: &str) -> AwsResult<Value> {
        let name = input.str("Name")?;
        check_name(name, "name", 64, false)?;
        let bus = bus_name(input, "EventBusName")?;
        let _g = self.ops.lock().await;
        let rule = self.rule(region, &bus, name)?;
        let mut rec = rule.rec.clone();
        rec.state = state.to_string();
        self.install_rule(region, compile_rule(rec)?).await?;
        Ok(json!({}))
    }

    // ---------------------------------------------------------------- targets

    async fn put_targets(&self, region: &str, input: &Input) -> AwsResult<Value> {
        let name = input.str("Rule")?;
        check_name(name, "rule", 64, false)?;
        let bus = bus_name(input, "EventBusName")?;
        let targets = input.opt_array("Targets")?.ok_or_else(|| {
            AwsError::validation_errors(&[
                "Value null at 'targets' failed to satisfy constraint: Member must not be null"
                    .to_string(),
            ])
        })?;
        if targets.is_empty() || targets.len() > 100 {
            return Err(AwsError::validation_errors(&[format!(
                "Value '{}' at 'targets' failed to satisfy constraint: Member must have length between 1 and 100",
                targets.len()
            )]));
        }
        let mut new = Vec::with_capacity(targets.len());
        let mut ids = HashSet::new();
        for t in targets {
            let Some(m) = t.as_object() else {
                return Err(validation("Every target must be an object."));
            };
            let spec = compile_target(m)?;
            if !ids.insert(spec.id.clone()) {
                return Err(validation(format!(
                    "Target Id {} appears more than once in the request.",
                    spec.id
                )));
            }
            new.push(m.clone());
        }
        let _g = self.ops.lock().await;
        let rule = self.rule(region, &bus, name)?;
        let mut rec = rule.rec.clone();
        for m in new {
            let id = m
                .get("Id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            match rec
                .targets
                .iter_mut()
                .find(|t| t.get("Id").and_then(Value::as_str) == Some(id.as_str()))
            {
                Some(slot) => *slot = m,
                None => rec.targets.push(m),
            }
        }
        if rec.targets.len() > MAX_TARGETS {
            return Err(limit_exceeded(format!(
                "The requested resource exceeds the maximum number allowed: rule {name} would have {} targets; a rule can have at most {MAX_TARGETS}.",
                rec.targets.len()
            )));
        }
        self.install_rule(region, compile_rule(rec)?).await?;
        Ok(json!({"FailedEntryCount": 0, "FailedEntries": []}))
    }

    async fn remove_targets(&self, region: &str, input: &Input) -> AwsResult<Value> {
        let name = input.str("Rule")?;
        check_name(name, "rule", 64, false)?;
        let bus = bus_name(input, "EventBusName")?;
        let ids = input.opt_array("Ids")?.ok_or_else(|| {
            AwsError::validation_errors(&[
                "Value null at 'ids' failed to satisfy constraint: Member must not be null"
                    .to_string(),
            ])
        })?;
        if ids.is_empty() || ids.len() > 100 {
            return Err(AwsError::validation_errors(&[format!(
                "Value '{}' at 'ids' failed to satisfy constraint: Member must have length between 1 and 100",
                ids.len()
            )]));
        }
        let ids: HashSet<&str> = ids.iter().filter_map(Value::as_str).collect();
        let _g = self.ops.lock().await;
        let rule = self.rule(region, &bus, name)?;
        let mut rec = rule.rec.clone();
        rec.targets.retain(|t| {
            !t.get("Id")
                .and_then(Value::as_str)
                .is_some_and(|i| ids.contains(i))
        });
        self.install_rule(region, compile_rule(rec)?).await?;
        Ok(json!({"FailedEntryCount": 0, "FailedEntries": []}))
    }

    fn list_targets_by_rule(&self, region: &str, input: &Input) -> AwsResult<Value> {
        let name = input.str("Rule")?;
        check_name(name, "rule", 64, false)?;
        let bus = bus_name(input, "EventBusName")?;
        let rule = self.rule(region, &bus, name)?;
        let items: Vec<(String, Value)> = rule
            .rec
            .targets
            .iter()
            .map(|t| {
                (
                    t.get("Id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    Value::Object(t.clone()),
                )
            })
            .collect();
        let mut items = items;
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let (targets, next) = page(items, input, 100)?;
        let mut out = json!({"Targets": targets});
        if let Some(n) = next {
            out["NextToken"] = json!(n);
        }
        Ok(out)
    }

    fn list_rule_names_by_target(&self, region: &str, input: &Input) -> AwsResult<Value> {
        let arn = input.str("TargetArn")?;
        let bus = bus_name(input, "EventBusName")?;
        let items: Vec<(String, Value)> = {
            let st = self.read_state();
            let b = st
                .regions
                .get(region)
                .and_then(|r| r.get(&bus))
                .ok_or_else(|| not_found(format!("Event bus {bus} does not exist.")))?;
            b.rules
                .values()
                .filter(|r| r.targets.iter().any(|t| t.arn == arn))
                .map(|r| (r.rec.name.clone(), json!(r.rec.name)))
                .collect()
        };
        let (names, next) = page(items, input, 100)?;
        let mut out = json!({"RuleNames": names});
        if let Some(n) = next {
            out["NextToken"] = json!(n);
        }
        Ok(out)
    }

    // ---------------------------------------------------------------- tags

    /// Finds a tagged resource by ARN: `(bus, Some(rule))` or `(bus, None)`.
    fn resource_of(&self, region: &str, arn: &str) -> AwsResult<(String, Option<String>)> {
        let missing = || not_found(format!("Resource {arn} does not exist."));
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let [_, _, "events", _, _, res] = parts.as_slice() else {
            return Err(missing());
        };
        if let Some(bus) = res.strip_prefix("event-bus/") {
            self.existing_bus(region, bus).map_err(|_| missing())?;
            return Ok((bus.to_string(), None));
        }
        if let Some(rest) = res.strip_prefix("rule/") {
            let (bus, rule) = match rest.rsplit_once('/') {
                Some((b, r)) => (b.to_string(), r.to_string()),
                None => (DEFAULT_BUS.to_string(), rest.to_string()),
            };
            self.rule(region, &bus, &rule).map_err(|_| missing())?;
            return Ok((bus, Some(rule)));
        }
        Err(missing())
    }

    async fn tag_resource(&self, region: &str, input: &Input, add: bool) -> AwsResult<Value> {
        let arn = input.str("ResourceARN")?;
        let (tags, keys): (BTreeMap<String, String>, Vec<String>) = if add {
            let tags = read_tags(Some(input.opt_array("Tags")?.ok_or_else(|| {
                AwsError::validation_errors(&[
                    "Value null at 'tags' failed to satisfy constraint: Member must not be null"
                        .to_string(),
                ])
            })?))?;
            (tags, Vec::new())
        } else {
            let keys = input
                .opt_array("TagKeys")?
                .ok_or_else(|| {
                    AwsError::validation_errors(&[
                        "Value null at 'tagKeys' failed to satisfy constraint: Member must not be null"
                            .to_string(),
                    ])
                })?
                .iter()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect();
            (BTreeMap::new(), keys)
        };
        let _g = self.ops.lock().await;
        let (bus, rule) = self.resource_of(region, arn)?;
        let apply = |t: &mut BTreeMap<String, String>| {
            if add {
                t.extend(tags.clone());
            } else {
                for k in &keys {
                    t.remove(k);
                }
            }
        };
        match rule {
            Some(rule) => {
                let mut rec = self.rule(region, &bus, &rule)?.rec.clone();
                apply(&mut rec.tags);
                self.install_rule(region, compile_rule(rec)?).await?;
            }
            None => {
                let mut rec = self.bus_rec(region, &bus)?;
                apply(&mut rec.tags);
                rec.modified_ms = stratus_core::time::now_ms();
                self.save_bus(region, &rec).await?;
                let mut st = self.write_state();
                if let Some(b) = st.regions.get_mut(region).and_then(|r| r.get_mut(&bus)) {
                    b.rec = rec;
                    b.stored = true;
                }
            }
        }
        Ok(json!({}))
    }

    fn list_tags(&self, region: &str, input: &Input) -> AwsResult<Value> {
        let arn = input.str("ResourceARN")?;
        let (bus, rule) = self.resource_of(region, arn)?;
        let tags = match rule {
            Some(rule) => self.rule(region, &bus, &rule)?.rec.tags.clone(),
            None => self.bus_rec(region, &bus)?.tags,
        };
        Ok(json!({"Tags": tags_json(&tags)}))
    }
}

/// TestEventPattern: the event must carry the fields every event has
/// (`id`, `account`, `source`, `time`, `region`, `resources`,
/// `detail-type`), as the API reference requires.
fn test_event_pattern(input: &Input) -> AwsResult<Value> {
    let pattern = input.str("EventPattern")?;
    let event = input.str("Event")?;
    let p = Pattern::parse(pattern).map_err(invalid_pattern)?;
    let v: Value = serde_json::from_str(event)
        .map_err(|e| validation(format!("Parameter Event is not valid. Reason: {e}")))?;
    let Some(obj) = v.as_object() else {
        return Err(validation(
            "Parameter Event is not valid. Reason: the event must be a JSON object.",
        ));
    };
    let missing: Vec<&str> = [
        "id",
        "account",
        "source",
        "time",
        "region",
        "resources",
        "detail-type",
    ]
    .into_iter()
    .filter(|k| !obj.contains_key(*k))
    .collect();
    if !missing.is_empty() {
        return Err(validation(format!(
            "Parameter Event is not valid. Reason: the event lacks the required field(s) {}.",
            missing.join(", ")
        )));
    }
    Ok(json!({"Result": p.matches(&v)}))
}
