//! The operations of Application Auto Scaling (json 1.1, target prefix
//! `AnyScaleFrontendService`) for `lambda:function:ProvisionedConcurrency`.
//!
//! Capacity is the provisioned concurrency of a function version or alias
//! (`ResourceId` `function:NAME:QUALIFIER`); changing it calls
//! [`Lambda::put_provisioned_concurrency_config`] (or deletes the
//! configuration for 0) in-process. Every change is a scaling activity,
//! `InProgress` until the configuration is READY.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use stratus_core::{AwsError, AwsResult, Config};
use stratus_lambda::Lambda;
use stratus_store::Store;

use crate::model::*;
use crate::schedule::{self, Schedule};
use crate::tracking::{self, Statistic, Tracker};

/// The clock the service reads (ms since the epoch); tests pass a fixed one.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The Application Auto Scaling service.
pub struct AutoScaling {
    pub(crate) lambda: Arc<Lambda>,
    pub(crate) store: Store,
    pub(crate) account: String,
    /// `--time-scale`: divides the metric period and the cooldowns.
    pub(crate) time_scale: f64,
    pub(crate) clock: Clock,
    /// Serializes changes (API calls and the engine's scaling).
    pub(crate) ops: tokio::sync::Mutex<()>,
    /// Utilization metric and alarm state per (region, target id).
    pub(crate) trackers: Mutex<HashMap<(String, String), Tracker>>,
    /// Activities waiting for their provisioned concurrency: (region, store id).
    pub(crate) pending: Mutex<Vec<(String, String)>>,
    pub(crate) last_prune_ms: Mutex<i64>,
    /// Start time of the last activity: each new one starts later, so
    /// activities list in the order they happened.
    last_activity_ms: Mutex<i64>,
}

/// The operations served, by `X-Amz-Target` suffix.
pub const OPERATIONS: &[&str] = &[
    "RegisterScalableTarget",
    "DeregisterScalableTarget",
    "DescribeScalableTargets",
    "PutScalingPolicy",
    "DescribeScalingPolicies",
    "DeleteScalingPolicy",
    "PutScheduledAction",
    "DescribeScheduledActions",
    "DeleteScheduledAction",
    "DescribeScalingActivities",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
];

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn short_id() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("{a}{}", &b[..4])
}

impl AutoScaling {
    /// The service over a Lambda service and the store, with the real clock.
    pub fn new(lambda: Arc<Lambda>, store: Store, config: &Config) -> Arc<AutoScaling> {
        Self::with_clock(lambda, store, config, Arc::new(stratus_core::time::now_ms))
    }

    /// The service with a given clock.
    pub fn with_clock(
        lambda: Arc<Lambda>,
        store: Store,
        config: &Config,
        clock: Clock,
    ) -> Arc<AutoScaling> {
        let time_scale = if config.time_scale.is_finite() && config.time_scale > 0.0 {
            config.time_scale
        } else {
            1.0
        };
        let me = Arc::new(AutoScaling {
            lambda,
            store,
            account: config.account_id.clone(),
            time_scale,
            clock,
            ops: tokio::sync::Mutex::new(()),
            trackers: Mutex::default(),
            pending: Mutex::default(),
            last_prune_ms: Mutex::new(0),
            last_activity_ms: Mutex::new(0),
        });
        me.recover_pending();
        me
    }

    pub(crate) fn now(&self) -> i64 {
        (self.clock)()
    }

    /// The start time of a new activity: now, and after the previous one.
    fn activity_start(&self) -> i64 {
        let mut last = lock(&self.last_activity_ms);
        *last = self.now().max(*last + 1);
        *last
    }

    /// A duration of platform time (metric period, cooldown) in real ms.
    pub(crate) fn scaled_ms(&self, ms: i64) -> i64 {
        ((ms as f64) / self.time_scale).round().max(1.0) as i64
    }

    /// Serves one operation: `op` is the part of `X-Amz-Target` after
    /// `AnyScaleFrontendService.`.
    pub async fn call(&self, region: &str, op: &str, body: &[u8]) -> AwsResult<Value> {
        let input = Input::parse(body)?;
        let r = match op {
            "RegisterScalableTarget" => self.register_scalable_target(region, &input).await,
            "DeregisterScalableTarget" => self.deregister_scalable_target(region, &input).await,
            "DescribeScalableTargets" => self.describe_scalable_targets(region, &input),
            "PutScalingPolicy" => self.put_scaling_policy(region, &input).await,
            "DescribeScalingPolicies" => self.describe_scaling_policies(region, &input),
            "DeleteScalingPolicy" => self.delete_scaling_policy(region, &input).await,
            "PutScheduledAction" => self.put_scheduled_action(region, &input).await,
            "DescribeScheduledActions" => self.describe_scheduled_actions(region, &input),
            "DeleteScheduledAction" => self.delete_scheduled_action(region, &input).await,
            "DescribeScalingActivities" => self.describe_scaling_activities(region, &input),
            "TagResource" => self.tag_resource(region, &input).await,
            "UntagResource" => self.untag_resource(region, &input).await,
            "ListTagsForResource" => self.list_tags_for_resource(region, &input),
            _ => Err(AwsError::new(
                400,
                "UnknownOperationException",
                format!("Application Auto Scaling in stratus has no operation {op}."),
            )),
        };
        r.map_err(internal)
    }

    // ------------------------------------------------------------ store

    fn get<T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        region: &str,
        id: &str,
    ) -> AwsResult<Option<T>> {
        match self.store.get(kind, region, id)? {
            None => Ok(None),
            Some(b) => serde_json::from_str(&b)
                .map(Some)
                .map_err(|e| AwsError::service(format!("stored {kind} {id} is unreadable: {e}"))),
        }
    }

    pub(crate) fn put<T: serde::Serialize>(
        &self,
        kind: &str,
        region: &str,
        id: &str,
        v: &T,
    ) -> AwsResult<()> {
        let body = serde_json::to_string(v).map_err(|e| AwsError::service(e.to_string()))?;
        Ok(self.store.put(kind, region, id, &body)?)
    }

    pub(crate) fn list<T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        region: &str,
    ) -> AwsResult<Vec<T>> {
        Ok(self
            .store
            .list(kind, region)?
            .into_iter()
            .filter_map(|(_, b)| serde_json::from_str(&b).ok())
            .collect())
    }

    pub(crate) fn load_target(
        &self,
        region: &str,
        k: &TargetKey,
    ) -> AwsResult<Option<TargetRecord>> {
        self.get(KIND_TARGET, region, &k.id())
    }

    pub(crate) fn policies_of(&self, region: &str, k: &TargetKey) -> AwsResult<Vec<PolicyRecord>> {
        Ok(self
            .list::<PolicyRecord>(KIND_POLICY, region)?
            .into_iter()
            .filter(|p| &p.key == k)
            .collect())
    }

    fn actions_of(&self, region: &str, k: &TargetKey) -> AwsResult<Vec<ActionRecord>> {
        Ok(self
            .list::<ActionRecord>(KIND_ACTION, region)?
            .into_iter()
            .filter(|a| &a.key == k)
            .collect())
    }

    // ------------------------------------------------------------ keys

    /// Reads ServiceNamespace / ResourceId / ScalableDimension.
    fn key(&self, input: &Input) -> AwsResult<TargetKey> {
        let namespace = input.req_enum("ServiceNamespace", NAMESPACES)?;
        let resource_id = input.req_str("ResourceId", 1600)?;
        let dimension = input.req_enum("ScalableDimension", DIMENSIONS)?;
        Ok(TargetKey {
            namespace,
            resource_id,
            dimension,
        })
    }

    /// A key stratus can scale: the lambda namespace, dimension and a
    /// `function:NAME:QUALIFIER` resource id.
    fn supported_key(&self, input: &Input) -> AwsResult<TargetKey> {
        let k = self.key(input)?;
        if k.namespace != LAMBDA_NAMESPACE && !k.dimension.starts_with("lambda:") {
            return Err(validation(format!(
                "stratus implements Application Auto Scaling for the lambda service namespace ({LAMBDA_DIMENSION}) only, not {}.",
                k.namespace
            )));
        }
        if k.namespace != LAMBDA_NAMESPACE
            || k.dimension != LAMBDA_DIMENSION
            || k.function().is_none()
        {
            return Err(validation(
                "Unsupported service namespace, resource type or scalable dimension",
            ));
        }
        Ok(k)
    }

    fn existing_target(&self, region: &str, k: &TargetKey) -> AwsResult<TargetRecord> {
        self.load_target(region, k)?
            .ok_or_else(|| target_not_found(k, true))
    }

    // ------------------------------------------------------------ capacity

    /// Provisioned concurrency requested on the target now (0: none).
    pub(crate) fn current_capacity(&self, region: &str, k: &TargetKey) -> AwsResult<u32> {
        let (name, q) = k.function().ok_or_else(|| {
            validation("Unsupported service namespace, resource type or scalable dimension")
        })?;
        match self
            .lambda
            .get_provisioned_concurrency_config(region, name, Some(q))
        {
            Ok(v) => Ok(v.requested_provisioned_concurrent_executions),
            Err(e) if e.code == "ProvisionedConcurrencyConfigNotFoundException" => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Sets the provisioned concurrency of a target and records the
    /// activity (in progress until the configuration is READY).
    pub(crate) async fn set_capacity(
        &self,
        region: &str,
        k: &TargetKey,
        desired: u32,
        cause: String,
    ) -> ActivityRecord {
        let now = self.activity_start();
        let mut a = ActivityRecord {
            id: uuid::Uuid::new_v4().to_string(),
            key: k.clone(),
            description: format!("Setting desired concurrency to {desired}."),
            cause,
            start_ms: now,
            end_ms: None,
            status: "InProgress".into(),
            status_message: None,
            pending: None,
        };
        let Some((name, q)) = k.function() else {
            a.status = "Failed".into();
            a.end_ms = Some(now);
            a.status_message =
                Some("The resource ID does not name a function version or alias.".into());
            self.save_activity(region, &a);
            return a;
        };
        let r = if desired == 0 {
            self.lambda
                .delete_provisioned_concurrency_config(region, name, Some(q))
                .await
                .map(|_| ())
        } else {
            self.lambda
                .put_provisioned_concurrency_config(region, name, Some(q), desired as i64)
                .await
                .map(|_| ())
        };
        match r {
            Err(e) => {
                a.status = "Failed".into();
                a.end_ms = Some(self.now().max(a.start_ms));
                a.status_message = Some(format!(
                    "Failed to set desired concurrency to {desired}. Reason: {} ({})",
                    e.message, e.code
                ));
            }
            Ok(()) if desired == 0 => {
                a.status = "Successful".into();
                a.end_ms = Some(self.now().max(a.start_ms));
                a.status_message = Some(fulfilled(0));
            }
            Ok(()) => {
                a.pending = Some(PendingCapacity {
                    function: name.to_string(),
                    qualifier: q.to_string(),
                    desired,
                });
            }
        }
        self.save_activity(region, &a);
        if a.pending.is_some() {
            lock(&self.pending).push((region.to_string(), a.store_id()));
        }
        a
    }

    pub(crate) fn save_activity(&self, region: &str, a: &ActivityRecord) {
        if let Err(e) = self.put(KIND_ACTIVITY, region, &a.store_id(), a) {
            tracing::error!("recording a scaling activity failed: {e}");
        }
    }

    /// Records an activity that is complete (Successful or Failed).
    pub(crate) fn record(
        &self,
        region: &str,
        k: &TargetKey,
        description: String,
        cause: String,
        status: &str,
        message: String,
    ) {
        let now = self.activity_start();
        let a = ActivityRecord {
            id: uuid::Uuid::new_v4().to_string(),
            key: k.clone(),
            description,
            cause,
            start_ms: now,
            end_ms: Some(now),
            status: status.into(),
            status_message: Some(message),
            pending: None,
        };
        self.save_activity(region, &a);
    }

    /// Brings the current capacity into `[min, max]`, with AWS's causes.
    pub(crate) async fn clamp_capacity(&self, region: &str, t: &TargetRecord) {
        let current = match self.current_capacity(region, &t.key) {
            Ok(c) => c as i64,
            Err(e) => {
                tracing::warn!(
                    "autoscaling: current capacity of {} unknown: {}",
                    t.key.resource_id,
                    e.message
                );
                return;
            }
        };
        if current < t.min_capacity {
            let n = t.min_capacity;
            self.set_capacity(
                region,
                &t.key,
                n as u32,
                format!("minimum capacity was set to {n}"),
            )
            .await;
        } else if current > t.max_capacity {
            let n = t.max_capacity;
            self.set_capacity(
                region,
                &t.key,
                n as u32,
                format!("maximum capacity was set to {n}"),
            )
            .await;
        }
    }

    // ------------------------------------------------------------ targets

    /// RegisterScalableTarget: creates or updates a scalable target, then
    /// brings the current capacity into its range.
    async fn register_scalable_target(&self, region: &str, input: &Input) -> AwsResult<Value> {
        let k = self.supported_key(input)?;
        let min = input.int("MinCapacity")?;
        let max = input.int("MaxCapacity")?;
        let role = input.str("RoleARN")?;
        if let Some(r) = &role {
            check_len("RoleARN", r, 1600)?;
        }
        let suspended = input.obj("SuspendedState")?;
        let tags = input.str_map("Tags")?;
        for (name, v) in [("MinCapacity", min), ("MaxCapacity", max)] {
            if v.is_some_and(|n| n < 0) {
                return Err(validation(format!("{name} cannot be less than 0")));
            }
        }
        let _g = self.ops.lock().await;
        let old = self.load_target(region, &k)?;
        let (min, max) = match (&old, min, max) {
            (None, Some(a), Some(b)) => (a, b),
            (None, _, _) => {
                return Err(validation(
                    "MinCapacity and MaxCapacity are required to register a new scalable target",
                ));
            }
            (Some(t), a, b) => (a.unwrap_or(t.min_capacity), b.unwrap_or(t.max_capacity)),
        };
        if min > max {
            return Err(validation(
                "Minimum capacity cannot be greater than maximum capacity",
            ));
        }
        if max > u32::MAX as i64 {
            return Err(validation("MaxCapacity is too large"));
        }
        // The function and its version or alias must exist.
        let (name, q) = k.function().unwrap_or_default();
        self.lambda
            .load(region, name)
            .and_then(|_| {
                if q.chars().all(|c| c.is_ascii_digit()) {
                    self.lambda.load_version(region, name, q).map(|_| ())
                } else {
                    self.lambda.load_alias(region, name, q).map(|_| ())
                }
            })
            .map_err(|e| {
                if e.status >= 500 {
                    e
                } else {
                    validation(e.message)
                }
            })?;
        let mut sus = old.as_ref().map(|t| t.suspended).unwrap_or_default();
        if let Some(s) = suspended {
            if let Some(b) = s.bool("DynamicScalingInSuspended")? {
                sus.dynamic_in = b;
            }
            if let Some(b) = s.bool("DynamicScalingOutSuspended")? {
                sus.dynamic_out = b;
            }
            if let Some(b) = s.bool("ScheduledScalingSuspended")? {
                sus.scheduled = b;
            }
        }
        let t = TargetRecord {
            key: k.clone(),
            min_capacity: min,
            max_capacity: max,
            role_arn: role
                .or_else(|| old.as_ref().map(|t| t.role_arn.clone()))
                .unwrap_or_else(|| {
                    format!(
                        "arn:aws:iam::{}:role/aws-service-role/lambda.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_LambdaConcurrency",
                        self.account
                    )
                }),
            arn: old.as_ref().map(|t| t.arn.clone()).unwrap_or_else(|| {
                format!(
                    "arn:aws:application-autoscaling:{region}:{}:scalable-target/{}",
                    self.account,
                    short_id()
                )
            }),
            created_ms: old.as_ref().map_or_else(|| self.now(), |t| t.created_ms),
            suspended: sus,
            tags: match (tags, &old) {
                (Some(mut new), Some(o)) => {
                    let mut all = o.tags.clone();
                    all.append(&mut new);
                    all
                }
                (Some(new), None) => new,
                (None, Some(o)) => o.tags.clone(),
                (None, None) => Default::default(),
            },
        };
        self.put(KIND_TARGET, region, &k.id(), &t)?;
        self.clamp_capacity(region, &t).await;
        Ok(json!({"ScalableTargetARN": t.arn}))
    }

    /// DeregisterScalableTarget: removes the target with its scaling
    /// policies and scheduled actions. The provisioned concurrency stays
    /// as it is.
    async fn deregister_scalable_target(&self, region: &str, input: &Input) -> AwsResult<Value> {
        let k = self.key(input)?;
        let _g = self.ops.lock().await;
        if self.load_target(region, &k)?.is_none() {
            return Err(target_not_found(&k, false));
        }
        for p in self.policies_of(region, &k)? {
            self.store
                .delete(KIND_POLICY, region, &k.child_id(&p.name))?;
        }
        for a in self.actions_of(region, &k)? {
            self.store
                .delete(KIND_ACTION, region, &k.child_id(&a.name))?;
        }
        self.store.delete(KIND_TARGET, region, &k.id())?;
        lock(&self.trackers).remove(&(region.to_string(), k.id()));
        Ok(json!({}))
    }

    /// DescribeScalableTargets.
    fn describe_scalable_targets(&self, region: &str, input: &Input) -> AwsResult<Value> {
        let ns = input.req_enum("ServiceNamespace", NAMESPACES)?;
        let ids = input.str_list("ResourceIds", 50)?;
        let dim = input.str("ScalableDimension")?;
        if let Some(d) = &dim {
            check_enum("ScalableDimension", d, DIMENSIONS)?;
        }
        let items: Vec<(String, Value)> = self
            .list::<TargetRecord>(KIND_TARGET, region)?
            .into_iter()
            .filter(|t| t.key.namespace == ns)
            .filter(|t| {
                ids.as_ref()
                    .is_none_or(|ids| ids.contains(&t.key.resource_id))
            })
            .filter(|t| dim.as_ref().is_none_or(|d| &t.key.dimension == d))
            .map(|t| (t.key.id(), t.to_wire()))
            .collect();
        let (page, next) = paginate(
            items,
            input.int("MaxResults")?,
            input.str("NextToken")?.as_deref(),
        )?;
        let mut v = json!({"ScalableTargets": page});
        if let Some(n) = next {
            v["NextToken"] = json!(n);
        }
        Ok(v)
    }

    // ------------------------------------------------------------ policies

    /// Reads a `TargetTrackingScalingPolicyConfiguration` for a Lambda
    /// target; returns it as it will be echoed back.
    fn tracking_configuration(&self, k: &TargetKey, input: &Input) -> AwsResult<Value> {
        let Some(c) = input.obj("TargetTrackingScalingPolicyConfiguration")? else {
            return Err(validation(
                "TargetTrackingScalingPolicyConfiguration is required for a policy of type TargetTrackingScaling",
            ));
        };
        let target = c.float("TargetValue")?.ok_or_else(|| {
            validation("1 validation error detected: Value null at 'targetTrackingScalingPolicyConfiguration.targetValue' failed to satisfy constraint: Member must not be null")
        })?;
        if !(8.515920e-109..=1.174271e+108).contains(&target) {
            return Err(validation(format!(
                "The target value {target} is outside the valid range (8.515920e-109, 1.174271e+108)"
            )));
        }
        for name in ["ScaleOutCooldown", "ScaleInCooldown"] {
            if let Some(n) = c.int(name)?
                && !(0..=31_536_000).contains(&n)
            {
                return Err(validation(format!(
                    "{name} must be between 0 and 31536000 seconds"
                )));
            }
        }
        c.bool("DisableScaleIn")?;
        let predefined = c.obj("PredefinedMetricSpecification")?;
        let customized = c.obj("CustomizedMetricSpecification")?;
        match (predefined, customized) {
            (Some(_), Some(_)) => {
                return Err(validation(
                    "Only one of PredefinedMetricSpecification and CustomizedMetricSpecification can be specified",
                ));
            }
            (None, None) => {
                return Err(validation(
                    "Either PredefinedMetricSpecification or CustomizedMetricSpecification must be specified",
                ));
            }
            (Some(p), None) => {
                let t = p.str("PredefinedMetricType")?.ok_or_else(|| {
                    validation("1 validation error detected: Value null at 'targetTrackingScalingPolicyConfiguration.predefinedMetricSpecification.predefinedMetricType' failed to satisfy constraint: Member must not be null")
                })?;
                if t != LAMBDA_METRIC {
                    return Err(validation(format!(
                        "Unsupported metric type {t} for scalable dimension {LAMBDA_DIMENSION}; use {LAMBDA_METRIC}"
                    )));
                }
            }
            (None, Some(m)) => {
                customized_statistic(k, &m)?;
            }
        }
        Ok(Value::Object(c.raw().clone()))
    }

    /// PutScalingPolicy: creates or updates a target tracking policy.
    async fn put_scaling_policy(&self, region: &str, input: &Input) -> AwsResult<Value> {
        let name = input.req_str("PolicyName", 256)?;
        check_policy_name(&name)?;
        let k = self.supported_key(input)?;
        let policy_type = input
            .str("PolicyType")?
            .unwrap_or_else(|| "StepScaling".into());
        check_enum("PolicyType", &policy_type, POLICY_TYPES)?;
        if policy_type != "TargetTrackingScaling" {
            return Err(validation(format!(
                "stratus supports TargetTrackingScaling policies for {LAMBDA_DIMENSION}, not {policy_type}"
            )));
        }
        let configuration = self.tracking_configuration(&k, input)?;
        let disable_in = configuration
            .get("DisableScaleIn")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let _g = self.ops.lock().await;
        self.existing_target(region, &k)?;
        let id = k.child_id(&name);
        let old: Option<PolicyRecord> = self.get(KIND_POLICY, region, &id)?;
        if old.is_none() && self.policies_of(region, &k)?.len() >= MAX_POLICIES_PER_TARGET {
            return Err(limit_exceeded(format!(
                "A scalable target can have at most {MAX_POLICIES_PER_TARGET} scaling policies"
            )));
        }
        let alarm = |kind: &str| {
            let n = format!(
                "TargetTracking-{}-{kind}-{}",
                k.resource_id,
                uuid::Uuid::new_v4()
            );
            AlarmRecord {
                arn: format!("arn:aws:cloudwatch:{region}:{}:alarm:{n}", self.account),
                name: n,
            }
        };
        let alarm_high = old
            .as_ref()
            .map(|p| p.alarm_high.clone())
            .unwrap_or_else(|| alarm("AlarmHigh"));
        let alarm_low = if disable_in {
            None
        } else {
            old.as_ref()
                .and_then(|p| p.alarm_low.clone())
                .or_else(|| Some(alarm("AlarmLow")))
        };
        let p = PolicyRecord {
            arn: old.as_ref().map(|p| p.arn.clone()).unwrap_or_else(|| {
                format!(
                    "arn:aws:autoscaling:{region}:{}:scalingPolicy:{}:resource/{}/{}:policyName/{name}",
                    self.account,
                    uuid::Uuid::new_v4(),
                    k.namespace,
                    k.resource_id
                )
            }),
            key: k,
            name,
            policy_type,
            configuration,
            alarm_high,
            alarm_low,
            created_ms: old.as_ref().map_or_else(|| self.now(), |p| p.created_ms),
        };
        self.put(KIND_POLICY, region, &id, &p)?;
        Ok(json!({"PolicyARN": p.arn, "Alarms": p.alarms()}))
    }

    /// DescribeScalingPolicies.
    fn describe_scaling_policies(&self, region: &str, input: &Input) -> AwsResult<Value> {
        self.describe_children::<PolicyRecord>(
            region,
            input,
            KIND_POLICY,
            "PolicyNames",
            "ScalingPolicies",
            |p| (&p.key, &p.name, p.to_wire()),
        )
    }

    /// The Describe operation of policies or scheduled actions (`T`, stored
    /// as `kind`): filtered by namespace, the names in `names_field`,
    /// ResourceId and ScalableDimension, then paged into `out_field`.
    /// `view` gives a record's target, name and wire shape.
    fn describe_children<T: serde::de::DeserializeOwned>(
        &self,
        region: &str,
        input: &Input,
        kind: &str,
        names_field: &str,
        out_field: &str,
        view: impl Fn(&T) -> (&TargetKey, &String, Value),
    ) -> AwsResult<Value> {
        let ns = input.req_enum("ServiceNamespace", NAMESPACES)?;
        let names = input.str_list(names_field, 50)?;
        let rid = input.str("ResourceId")?;
        let dim = input.str("ScalableDimension")?;
        if let Some(d) = &dim {
            check_enum("ScalableDimension", d, DIMENSIONS)?;
        }
        let items: Vec<(String, Value)> = self
            .list::<T>(kind, region)?
            .iter()
            .map(&view)
            .filter(|(k, _, _)| k.namespace == ns)
            .filter(|(_, n, _)| names.as_ref().is_none_or(|l| l.contains(n)))
            .filter(|(k, _, _)| rid.as_ref().is_none_or(|r| &k.resource_id == r))
            .filter(|(k, _, _)| dim.as_ref().is_none_or(|d| &k.dimension == d))
            .map(|(k, n, wire)| (k.child_id(n), wire))
            .collect();
        let (page, next) = paginate(
            items,
            input.int("MaxResults")?,
            input.str("NextToken")?.as_deref(),
        )?;
        let mut v = json!({ out_field: page });
        if let Some(n) = next {
            v["NextToken"] = json!(n);
        }
        Ok(v)
    }

    /// DeleteScalingPolicy.
    async fn delete_scaling_policy(&self, region: &str, input: &Input) -> AwsResult<Value> {
        let name = input.req_str("PolicyName", 1600)?;
        let k = self.key(input)?;
        let _g = self.ops.lock().await;
        if !self.store.delete(KIND_POLICY, region, &k.child_id(&name))? {
            return Err(object_not_found(format!(
                "No scaling policy found for service namespace: {}, resource ID: {}, scalable dimension: {}, policy name: {name}",
                k.namespace, k.resource_id, k.dimension
            )));
        }
        if self.policies_of(region, &k)?.is_empty() {
            lock(&self.trackers).remove(&(region.to_string(), k.id()));
        }
        Ok(json!({}))
    }

    // ------------------------------------------------------------ schedules

    /// PutScheduledAction: creates or updates a scheduled action.
    async fn put_scheduled_action(&self, region: &str, input: &Input) -> AwsResult<Value> {
        let name = input.req_str("ScheduledActionName", 256)?;
        check_action_name(&name)?;
        let k = self.supported_key(input)?;
        let schedule = input.str("Schedule")?;
        if let Some(s) = &schedule {
            check_len("Schedule", s, 1600)?;
            Schedule::parse(s).map_err(validation)?;
        }
        let timezone = input.str("Timezone")?;
        if let Some(tz) = &timezone {
            check_len("Timezone", tz, 1600)?;
            schedule::time_zone(Some(tz)).map_err(validation)?;
        }
        let start = input.time_ms("StartTime")?;
        let end = input.time_ms("EndTime")?;
        let action = input.obj("ScalableTargetAction")?;
        let (amin, amax) = match &action {
            Some(a) => (a.int("MinCapacity")?, a.int("MaxCapacity")?),
            None => (None, None),
        };
        for (n, v) in [("MinCapacity", amin), ("MaxCapacity", amax)] {
            if v.is_some_and(|x| !(0..=u32::MAX as i64).contains(&x)) {
                return Err(validation(format!(
                    "ScalableTargetAction.{n} must be between 0 and {}",
                    u32::MAX
                )));
            }
        }
        if let (Some(a), Some(b)) = (amin, amax)
            && a > b
        {
            return Err(validation(
                "Minimum capacity cannot be greater than maximum capacity",
            ));
        }
        let _g = self.ops.lock().await;
        self.existing_target(region, &k)?;
        let id = k.child_id(&name);
        let old: Option<ActionRecord> = self.get(KIND_ACTION, region, &id)?;
        if old.is_none() {
            if schedule.is_none() {
                return Err(validation(
                    "Schedule is required to create a scheduled action",
                ));
            }
            if self.actions_of(region, &k)?.len() >= MAX_ACTIONS_PER_TARGET {
                return Err(limit_exceeded(format!(
                    "A scalable target can have at most {MAX_ACTIONS_PER_TARGET} scheduled actions"
                )));
            }
        }
        let now = self.now();
        let o = old.as_ref();
        let mut a = ActionRecord {
            arn: o.map(|a| a.arn.clone()).unwrap_or_else(|| {
                format!(
                    "arn:aws:autoscaling:{region}:{}:scheduledAction:{}:resource/{}/{}:scheduledActionName/{name}",
                    self.account,
                    uuid::Uuid::new_v4(),
                    k.namespace,
                    k.resource_id
                )
            }),
            key: k,
            name,
            schedule: schedule
                .or_else(|| o.map(|a| a.schedule.clone()))
                .unwrap_or_default(),
            timezone: timezone.or_else(|| o.and_then(|a| a.timezone.clone())),
            start_ms: start.or_else(|| o.and_then(|a| a.start_ms)),
            end_ms: end.or_else(|| o.and_then(|a| a.end_ms)),
            min_capacity: if action.is_some() { amin } else { o.and_then(|a| a.min_capacity) },
            max_capacity: if action.is_some() { amax } else { o.and_then(|a| a.max_capacity) },
            created_ms: o.map_or(now, |a| a.created_ms),
            next_run_ms: None,
        };
        if let (Some(s), Some(e)) = (a.start_ms, a.end_ms)
            && s >= e
        {
            return Err(validation("EndTime must be later than StartTime"));
        }
        a.next_run_ms = next_run(&a, now);
        self.put(KIND_ACTION, region, &id, &a)?;
        Ok(json!({}))
    }

    /// DescribeScheduledActions.
    fn describe_scheduled_actions(&self, region: &str, input: &Input) -> AwsResult<Value> {
        self.describe_children::<ActionRecord>(
            region,
            input,
            KIND_ACTION,
            "ScheduledActionNames",
            "ScheduledActions",
            |a| (&a.key, &a.name, a.to_wire()),
        )
    }

    /// DeleteScheduledAction.
    async fn delete_scheduled_action(&self, region: &str, input: &Input) -> AwsResult<Value> {
        let name = input.req_str("ScheduledActionName", 1600)?;
        let k = self.key(input)?;
        let _g = self.ops.lock().await;
        if !self.store.delete(KIND_ACTION, region, &k.child_id(&name))? {
            return Err(object_not_found(format!(
                "No scheduled action found for service namespace: {}, resource ID: {}, scalable dimension: {}, scheduled action name: {name}",
                k.namespace, k.resource_id, k.dimension
            )));
        }
        Ok(json!({}))
    }

    // ------------------------------------------------------------ activities

    /// DescribeScalingActivities: newest first.
    fn describe_scaling_activities(&self, region: &str, input: &Input) -> AwsResult<Value> {
        let ns = input.req_enum("ServiceNamespace", NAMESPACES)?;
        let rid = input.str("ResourceId")?;
        let dim = input.str("ScalableDimension")?;
        if let Some(d) = &dim {
            check_enum("ScalableDimension", d, DIMENSIONS)?;
        }
        input.bool("IncludeNotScaledActivities")?;
        let mut acts: Vec<ActivityRecord> = self
            .list::<ActivityRecord>(KIND_ACTIVITY, region)?
            .into_iter()
            .filter(|a| a.key.namespace == ns)
            .filter(|a| rid.as_ref().is_none_or(|r| &a.key.resource_id == r))
            .filter(|a| dim.as_ref().is_none_or(|d| &a.key.dimension == d))
            .collect();
        acts.sort_by(|a, b| b.start_ms.cmp(&a.start_ms).then_with(|| a.id.cmp(&b.id)));
        let items: Vec<(String, Value)> = acts
            .iter()
            .map(|a| {
                (
                    format!("{:015}|{}", i64::MAX / 1000 - a.start_ms, a.id),
                    a.to_wire(),
                )
            })
            .collect();
        let (page, next) = paginate(
            items,
            input.int("MaxResults")?,
            input.str("NextToken")?.as_deref(),
        )?;
        let mut v = json!({"ScalingActivities": page});
        if let Some(n) = next {
            v["NextToken"] = json!(n);
        }
        Ok(v)
    }

    // ------------------------------------------------------------ tags

    fn target_by_arn(&self, region: &str, arn: &str) -> AwsResult<TargetRecord> {
        self.list::<TargetRecord>(KIND_TARGET, region)?
            .into_iter()
            .find(|t| t.arn == arn)
            .ok_or_else(|| {
                AwsError::new(
                    400,
                    "ResourceNotFoundException",
                    format!("No scalable target found for ARN {arn}"),
                )
                .with_field("ResourceName", arn)
            })
    }

    async fn tag_resource(&self, region: &str, input: &Input) -> AwsResult<Value> {
        let arn = input.req_str("ResourceARN", 1011)?;
        let tags = input.str_map("Tags")?.ok_or_else(|| null_error("Tags"))?;
        let _g = self.ops.lock().await;
        let mut t = self.target_by_arn(region, &arn)?;
        let mut tags = tags;
        t.tags.append(&mut tags);
        if t.tags.len() > 50 {
            return Err(AwsError::new(
                400,
                "TooManyTagsException",
                "A scalable target can have at most 50 tags",
            ));
        }
        self.put(KIND_TARGET, region, &t.key.id(), &t)?;
        Ok(json!({}))
    }

    async fn untag_resource(&self, region: &str, input: &Input) -> AwsResult<Value> {
        let arn = input.req_str("ResourceARN", 1011)?;
        let keys = input
            .str_list("TagKeys", 200)?
            .ok_or_else(|| null_error("TagKeys"))?;
        let _g = self.ops.lock().await;
        let mut t = self.target_by_arn(region, &arn)?;
        for k in keys {
            t.tags.remove(&k);
        }
        self.put(KIND_TARGET, region, &t.key.id(), &t)?;
        Ok(json!({}))
    }

    fn list_tags_for_resource(&self, region: &str, input: &Input) -> AwsResult<Value> {
        let arn = input.req_str("ResourceARN", 1011)?;
        let t = self.target_by_arn(region, &arn)?;
        Ok(json!({"Tags": t.tags}))
    }
}

/// "Successfully set desired concurrency to N. ..."
pub(crate) fn fulfilled(n: u32) -> String {
    format!("Successfully set desired concurrency to {n}. Change successfully fulfilled by lambda.")
}

/// When a scheduled action runs next after `after_ms`, within its
/// StartTime / EndTime window.
pub fn next_run(a: &ActionRecord, after_ms: i64) -> Option<i64> {
    let s = Schedule::parse(&a.schedule).ok()?;
    let tz = schedule::time_zone(a.timezone.as_deref()).ok()?;
    let after = match a.start_ms {
        Some(st) => after_ms.max(st - 1),
        None => after_ms,
    };
    let anchor = match (&s, a.start_ms) {
        (_, Some(st)) => st,
        (Schedule::Rate(period), None) => a.created_ms + period,
        _ => a.created_ms,
    };
    let next = s.next_after(after, anchor, &tz)?;
    match a.end_ms {
        Some(e) if next > e => None,
        _ => Some(next),
    }
}

/// The statistic of a customized metric stratus can follow:
/// `AWS/Lambda` `ProvisionedConcurrencyUtilization` of this function's
/// version or alias (dimensions `FunctionName` and `Resource`).
pub(crate) fn customized_statistic(k: &TargetKey, m: &Input) -> AwsResult<Statistic> {
    let unsupported = || {
        validation(format!(
            "stratus can track a customized metric only when it is AWS/Lambda ProvisionedConcurrencyUtilization of this function's version or alias (dimensions FunctionName and Resource) with the statistic Average, Maximum or Minimum; otherwise use PredefinedMetricType {LAMBDA_METRIC}"
        ))
    };
    if m.has("Metrics") {
        return Err(unsupported());
    }
    if m.str("Namespace")?.as_deref() != Some("AWS/Lambda")
        || m.str("MetricName")?.as_deref() != Some("ProvisionedConcurrencyUtilization")
    {
        return Err(unsupported());
    }
    let (name, q) = k.function().ok_or_else(unsupported)?;
    if let Some(Value::Array(dims)) = m.raw().get("Dimensions") {
        for d in dims {
            let n = d.get("Name").and_then(Value::as_str).unwrap_or_default();
            let v = d.get("Value").and_then(Value::as_str).unwrap_or_default();
            let ok = match n {
                "FunctionName" => v == name,
                "Resource" => v == format!("{name}:{q}"),
                _ => false,
            };
            if !ok {
                return Err(unsupported());
            }
        }
    }
    match m.str("Statistic")?.as_deref() {
        Some("Average") => Ok(Statistic::Average),
        Some("Maximum") => Ok(Statistic::Maximum),
        Some("Minimum") => Ok(Statistic::Minimum),
        _ => Err(unsupported()),
    }
}

/// What the engine needs of a stored policy.
pub(crate) fn policy_params(p: &PolicyRecord, svc: &AutoScaling) -> Option<tracking::PolicyParams> {
    let c = &p.configuration;
    let target_value = c.get("TargetValue")?.as_f64()?;
    let statistic = match c.get("CustomizedMetricSpecification") {
        Some(Value::Object(m)) => {
            customized_statistic(&p.key, &Input::parse(&serde_json::to_vec(m).ok()?).ok()?).ok()?
        }
        _ => Statistic::Average,
    };
    let secs = |k: &str| c.get(k).and_then(Value::as_i64).unwrap_or(0);
    Some(tracking::PolicyParams {
        name: p.name.clone(),
        target_value,
        statistic,
        scale_out_cooldown_ms: svc.scaled_ms(secs("ScaleOutCooldown") * 1000),
        scale_in_cooldown_ms: svc.scaled_ms(secs("ScaleInCooldown") * 1000),
        disable_scale_in: c
            .get("DisableScaleIn")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        alarm_high: p.alarm_high.name.clone(),
        alarm_low: p.alarm_low.as_ref().map(|a| a.name.clone()),
    })
}
