//! Provisioned concurrency
//! (<https://docs.aws.amazon.com/lambda/latest/dg/provisioned-concurrency.html>):
//! Put / Get / List / DeleteProvisionedConcurrencyConfig on a published
//! version or an alias, and the environments they keep initialized.
//!
//! * A configuration is stored under kind [`KIND_PROVISIONED`] with id
//!   `name:qualifier`; on restart every configuration is provisioned again.
//! * Its environments are started ahead of traffic with
//!   `AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency` and kept in a
//!   pool per function version, apart from the on-demand pool: the idle
//!   reaper never sees them. An alias's environments belong to the version(s)
//!   it points to (split by the routing weights), so invoking the version
//!   directly uses them too.
//! * Status: `IN_PROGRESS` until all of them have initialized, then `READY`;
//!   `FAILED` with `StatusReason` when an init fails.
//! * An environment that crashes or times out is replaced; an invocation
//!   that finds every provisioned environment busy spills over to on-demand
//!   environments (with a cold start if none is warm).
//!
//! The operations take typed arguments ([`Lambda::put_provisioned_concurrency_config`]
//! and friends) so Application Auto Scaling can call them in-process.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use stratus_core::{AwsError, AwsResult, FunctionRef, arn};

use crate::invoke::{ColdStartError, EnvEntry, retire};
use crate::model::FunctionRecord;
use crate::service::Lambda;
use crate::versions::{is_version_number, page, parse_max_items, qualified_id};

/// Store kind of provisioned concurrency configurations (id `name:qualifier`).
pub const KIND_PROVISIONED: &str = "provisioned_concurrency";

/// Attempts at initializing one provisioned environment before the
/// configuration turns FAILED (a loaded host can make an init time out).
const INIT_ATTEMPTS: u32 = 3;

/// How many provisioned environments initialize at once: one per core.
fn parallel_inits() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 16)
}

/// What the store keeps for a provisioned concurrency configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProvisionedConfigRecord {
    pub function_name: String,
    /// A version number or an alias name.
    pub qualifier: String,
    /// ProvisionedConcurrentExecutions.
    pub requested: u32,
    /// `YYYY-MM-DDThh:mm:ss.sss+0000`.
    pub last_modified: String,
}

/// A provisioned concurrency configuration as the API reports it
/// (`GetProvisionedConcurrencyConfigResponse`, and with `FunctionArn` a
/// `ProvisionedConcurrencyConfigListItem`).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ProvisionedConcurrencyView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_arn: Option<String>,
    pub requested_provisioned_concurrent_executions: u32,
    pub available_provisioned_concurrent_executions: u32,
    pub allocated_provisioned_concurrent_executions: u32,
    /// `IN_PROGRESS`, `READY` or `FAILED`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    pub last_modified: String,
}

/// How busy a configuration's environments are right now (for target
/// tracking on `LambdaProvisionedConcurrencyUtilization`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProvisionedUsage {
    /// Environments initialized.
    pub allocated: u32,
    /// Of those, serving an invocation now.
    pub busy: u32,
}

/// (region, function, version).
type VKey = (String, String, String);

/// The provisioned environments of one function version.
#[derive(Default)]
struct VersionPool {
    /// Environments wanted (sum over the configurations that reach it).
    target: u32,
    idle: Vec<Arc<EnvEntry>>,
    busy: u32,
    starting: u32,
    /// Why an init failed (Status FAILED).
    failure: Option<String>,
    /// All `target` environments have been initialized at least once.
    reached: bool,
    /// An environment was lost and must be replaced.
    dirty: bool,
}

impl VersionPool {
    fn count(&self) -> u32 {
        self.idle.len() as u32 + self.busy + self.starting
    }

    fn ready(&self) -> u32 {
        self.idle.len() as u32 + self.busy
    }
}

type Pools = Arc<Mutex<HashMap<VKey, VersionPool>>>;

fn lock(p: &Pools) -> std::sync::MutexGuard<'_, HashMap<VKey, VersionPool>> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

/// The provisioned environments of every function version.
pub(crate) struct Provisioned {
    pools: Pools,
    starts: Arc<tokio::sync::Semaphore>,
    closed: std::sync::atomic::AtomicBool,
}

impl Provisioned {
    pub(crate) fn new() -> Provisioned {
        Provisioned {
            pools: Arc::default(),
            starts: Arc::new(tokio::sync::Semaphore::new(parallel_inits())),
            closed: Default::default(),
        }
    }

    /// Shuts every provisioned environment down (server shutdown).
    pub(crate) async fn shutdown_all(&self, grace: Duration) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        let all: Vec<Arc<EnvEntry>> = lock(&self.pools)
            .drain()
            .flat_map(|(_, p)| p.idle)
            .collect();
        let tasks: Vec<_> = all
            .into_iter()
            .map(|e| tokio::spawn(async move { e.env.shutdown(grace).await }))
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    }

    /// Number of provisioned environments initialized (idle or busy).
    pub(crate) fn allocated_count(&self) -> usize {
        lock(&self.pools).values().map(|p| p.ready() as usize).sum()
    }
}

/// A provisioned environment checked out for one invocation. Dropping it
/// without [`ProvisionedTicket::checkin`] (a cancelled request) retires the
/// environment, and the pool replaces it.
pub(crate) struct ProvisionedTicket {
    pools: Pools,
    key: VKey,
    entry: Option<Arc<EnvEntry>>,
}

impl ProvisionedTicket {
    /// The environment.
    pub(crate) fn entry(&self) -> Option<Arc<EnvEntry>> {
        self.entry.clone()
    }

    /// Gives the environment back after an invocation. Returns true when it
    /// was lost (crashed, timed out) and the pool needs a replacement.
    pub(crate) fn checkin(mut self, healthy: bool) -> bool {
        let Some(entry) = self.entry.take() else {
            return false;
        };
        let mut pools = lock(&self.pools);
        let Some(p) = pools.get_mut(&self.key) else {
            drop(pools);
            retire(entry);
            return false;
        };
        p.busy = p.busy.saturating_sub(1);
        if healthy && !entry.env.is_dead() && p.count() < p.target {
            *entry.last_used.lock().unwrap_or_else(|e| e.into_inner()) = std::time::Instant::now();
            p.idle.push(entry);
            false
        } else {
            let lost = p.count() < p.target;
            if lost {
                p.dirty = true;
            }
            drop(pools);
            retire(entry);
            lost
        }
    }
}

impl Drop for ProvisionedTicket {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            let mut pools = lock(&self.pools);
            if let Some(p) = pools.get_mut(&self.key) {
                p.busy = p.busy.saturating_sub(1);
                p.dirty = true;
            }
            drop(pools);
            retire(entry);
        }
    }
}

/// Body of PutProvisionedConcurrencyConfig.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutInput {
    provisioned_concurrent_executions: Option<i64>,
}

/// Parses the body of PutProvisionedConcurrencyConfig:
/// `ProvisionedConcurrentExecutions`.
pub fn parse_put_body(body: &[u8]) -> AwsResult<i64> {
    let input: PutInput = crate::service::parse_body(body)?;
    input.provisioned_concurrent_executions.ok_or_else(|| {
        AwsError::validation_errors(&[
            "Value null at 'provisionedConcurrentExecutions' failed to satisfy constraint: Member must not be null".to_string(),
        ])
    })
}

impl Lambda {
    /// The function and qualifier of a provisioned concurrency operation.
    fn pc_ref(
        &self,
        region: &str,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> AwsResult<(String, String)> {
        let fref = FunctionRef::parse(function_name, "functionName")?;
        self.check_ref(region, &fref)?;
        let q = match (fref.qualifier.as_deref(), qualifier) {
            (Some(a), Some(b)) if a != b => {
                return Err(AwsError::invalid_parameter(
                    "The derived qualifier from the function name does not match the specified qualifier.",
                ));
            }
            (Some(a), _) => a.to_string(),
            (None, Some(b)) => b.to_string(),
            (None, None) => {
                return Err(AwsError::validation_errors(&[
                    "Value null at 'qualifier' failed to satisfy constraint: Member must not be null"
                        .to_string(),
                ]));
            }
        };
        if !arn::valid_qualifier(&q) {
            return Err(AwsError::validation_errors(&[format!(
                "Value '{q}' at 'qualifier' failed to satisfy constraint: Member must satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+)"
            )]));
        }
        Ok((fref.name, q))
    }

    /// Checks that the function and the version or alias exist.
    fn pc_check_target(&self, region: &str, name: &str, q: &str) -> AwsResult<()> {
        self.load(region, name)?;
        if is_version_number(q) {
            self.load_version(region, name, q)?;
        } else {
            self.load_alias(region, name, q)?;
        }
        Ok(())
    }

    /// The provisioned concurrency configurations of a region (of one
    /// function when `function` is given), ordered by id.
    pub(crate) fn provisioned_records(
        &self,
        region: &str,
        function: Option<&str>,
    ) -> AwsResult<Vec<ProvisionedConfigRecord>> {
        let prefix = function.map(|f| format!("{f}:"));
        Ok(self
            .store
            .list(KIND_PROVISIONED, region)?
            .into_iter()
            .filter(|(id, _)| prefix.as_ref().is_none_or(|p| id.starts_with(p)))
            .filter_map(|(_, body)| serde_json::from_str(&body).ok())
            .collect())
    }

    /// The configuration on a qualifier, if any.
    pub(crate) fn load_provisioned_config(
        &self,
        region: &str,
        name: &str,
        qualifier: &str,
    ) -> Option<ProvisionedConfigRecord> {
        self.store
            .get(KIND_PROVISIONED, region, &qualified_id(name, qualifier))
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_str(&b).ok())
    }

    /// Σ provisioned concurrency of a function's versions and aliases.
    pub(crate) fn provisioned_total(&self, region: &str, name: &str) -> AwsResult<u32> {
        Ok(self
            .provisioned_records(region, Some(name))?
            .iter()
            .map(|c| c.requested)
            .sum())
    }

    /// How a configuration's environments are spread over versions:
    /// `(version, share)`. An alias with routing weights splits its
    /// provisioned concurrency between its two versions by weight.
    fn pc_parts(&self, region: &str, c: &ProvisionedConfigRecord) -> Vec<(String, u32)> {
        if is_version_number(&c.qualifier) {
            return vec![(c.qualifier.clone(), c.requested)];
        }
        let Ok(a) = self.load_alias(region, &c.function_name, &c.qualifier) else {
            return Vec::new();
        };
        if a.function_version == "$LATEST" {
            return Vec::new();
        }
        let mut parts = Vec::new();
        let mut rest = c.requested;
        for (v, w) in a.weights() {
            let k = ((c.requested as f64) * w).round().min(rest as f64) as u32;
            rest -= k;
            parts.push((v.to_string(), k));
        }
        parts.push((a.function_version.clone(), rest));
        parts
    }

    /// Environments wanted per version of a function.
    fn pc_targets(&self, region: &str, name: &str) -> AwsResult<BTreeMap<String, u32>> {
        let mut t = BTreeMap::new();
        for c in self.provisioned_records(region, Some(name))? {
            for (v, n) in self.pc_parts(region, &c) {
                *t.entry(v).or_insert(0) += n;
            }
        }
        Ok(t)
    }

    /// The API view of a configuration, from its environments' state.
    fn pc_view(
        &self,
        region: &str,
        c: &ProvisionedConfigRecord,
        with_arn: bool,
    ) -> ProvisionedConcurrencyView {
        let parts = self.pc_parts(region, c);
        let pools = lock(&self.provisioned.pools);
        let mut allocated = 0;
        let mut reached = true;
        let mut failure = None;
        for (v, share) in &parts {
            if *share == 0 {
                continue;
            }
            let key = (region.to_string(), c.function_name.clone(), v.clone());
            match pools.get(&key) {
                Some(p) if p.target > 0 => {
                    allocated += (*share).min(p.ready() * share / p.target);
                    reached &= p.reached;
                    if p.failure.is_some() {
                        failure = p.failure.clone();
                    }
                }
                _ => reached = false,
            }
        }
        drop(pools);
        let status = if failure.is_some() {
            "FAILED"
        } else if reached || allocated >= c.requested {
            "READY"
        } else {
            "IN_PROGRESS"
        };
        ProvisionedConcurrencyView {
            function_arn: with_arn
                .then(|| self.qualified_arn(region, &c.function_name, &c.qualifier)),
            requested_provisioned_concurrent_executions: c.requested,
            available_provisioned_concurrent_executions: allocated,
            allocated_provisioned_concurrent_executions: allocated,
            status: status.into(),
            status_reason: failure,
            last_modified: c.last_modified.clone(),
        }
    }

    /// PutProvisionedConcurrencyConfig
    /// (`PUT /2019-09-30/functions/{FunctionName}/provisioned-concurrency?Qualifier=Q`, 202):
    /// sets how many environments of a version or alias stay initialized.
    /// Answers at once with Status `IN_PROGRESS`; the environments start in
    /// the background.
    ///
    /// Errors: `InvalidParameterValueException` on `$LATEST` (or an alias
    /// pointing at it), above the function's reserved concurrency, or when
    /// fewer than 100 would stay unreserved; `ResourceConflictException`
    /// (409) when a version and an alias pointing at it would both be
    /// provisioned; `ResourceNotFoundException` (404);
    /// `ValidationException` for a value below 1.
    pub async fn put_provisioned_concurrency_config(
        self: &Arc<Self>,
        region: &str,
        function_name: &str,
        qualifier: Option<&str>,
        requested: i64,
    ) -> AwsResult<ProvisionedConcurrencyView> {
        let (name, q) = self.pc_ref(region, function_name, qualifier)?;
        if requested < 1 {
            return Err(AwsError::validation_errors(&[format!(
                "Value '{requested}' at 'provisionedConcurrentExecutions' failed to satisfy constraint: Member must have value greater than or equal to 1"
            )]));
        }
        if q == "$LATEST" {
            return Err(AwsError::invalid_parameter(
                "Provisioned Concurrency Configs cannot be applied to unpublished function versions.",
            ));
        }
        let requested = requested.min(u32::MAX as i64) as u32;
        let g = self.write_lock.lock().await;
        let rec = self.load(region, &name)?;
        self.pc_check_target(region, &name, &q)?;
        let configs = self.provisioned_records(region, Some(&name))?;
        if is_version_number(&q) {
            for a in self.alias_records(region, &name)? {
                if a.function_version == q && configs.iter().any(|c| c.qualifier == a.name) {
                    return Err(AwsError::conflict(
                        "Version is pointed by a Provisioned Concurrency alias",
                    ));
                }
            }
        } else {
            let a = self.load_alias(region, &name, &q)?;
            if a.function_version == "$LATEST" {
                return Err(AwsError::invalid_parameter(
                    "Provisioned Concurrency Configs cannot be applied to unpublished function versions.",
                ));
            }
            if configs.iter().any(|c| c.qualifier == a.function_version) {
                return Err(AwsError::conflict(
                    "Alias can't be used for Provisioned Concurrency configuration on an already Provisioned version",
                ));
            }
        }
        let old = configs
            .iter()
            .find(|c| c.qualifier == q)
            .map(|c| c.requested)
            .unwrap_or(0);
        let others: u32 = configs
            .iter()
            .filter(|c| c.qualifier != q)
            .map(|c| c.requested)
            .sum();
        let limit = self.sched.limit();
        if let Some(r) = rec.reserved_concurrency {
            if others as u64 + requested as u64 > r as u64 {
                return Err(AwsError::invalid_parameter(
                    "Requested Provisioned Concurrency should not be greater than the reservedConcurrentExecution for function",
                ));
            }
        } else {
            if requested > limit {
                return Err(AwsError::invalid_parameter(format!(
                    "Specified ConcurrentExecutions for function is greater than account's unreserved concurrency [{limit}]."
                )));
            }
            let unreserved = self.unreserved(region)? as i64 + old as i64;
            let min = self.sched.min_unreserved();
            if unreserved - (requested as i64) < min as i64 {
                return Err(AwsError::invalid_parameter(format!(
                    "Specified ConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [{min}]."
                )));
            }
        }
        let c = ProvisionedConfigRecord {
            function_name: name.clone(),
            qualifier: q.clone(),
            requested,
            last_modified: stratus_core::time::lambda_timestamp(stratus_core::time::now_ms()),
        };
        let body = serde_json::to_string(&c).map_err(|e| AwsError::service(e.to_string()))?;
        self.store
            .put(KIND_PROVISIONED, region, &qualified_id(&name, &q), &body)?;
        drop(g);
        self.refresh_unreserved(region);
        self.reconcile_now(region, &name);
        Ok(self.pc_view(region, &c, false))
    }

    /// GetProvisionedConcurrencyConfig.
    ///
    /// Errors: `ProvisionedConcurrencyConfigNotFoundException` (404) when the
    /// version or alias has none, `InvalidParameterValueException` for
    /// `$LATEST`, `ResourceNotFoundException` (404).
    pub fn get_provisioned_concurrency_config(
        &self,
        region: &str,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> AwsResult<ProvisionedConcurrencyView> {
        let (name, q) = self.pc_ref(region, function_name, qualifier)?;
        if q == "$LATEST" {
            return Err(AwsError::invalid_parameter(
                "The function resource provided must be an alias or a published version.",
            ));
        }
        self.pc_check_target(region, &name, &q)?;
        let c = self
            .load_provisioned_config(region, &name, &q)
            .ok_or_else(|| {
                AwsError::new(
                    404,
                    "ProvisionedConcurrencyConfigNotFoundException",
                    "No Provisioned Concurrency Config found for this function",
                )
            })?;
        Ok(self.pc_view(region, &c, false))
    }

    /// ListProvisionedConcurrencyConfigs
    /// (`GET .../provisioned-concurrency?List=ALL`): `MaxItems` 1-50.
    pub fn list_provisioned_concurrency_configs(
        &self,
        region: &str,
        function_name: &str,
        marker: Option<&str>,
        max_items: Option<&str>,
    ) -> AwsResult<Value> {
        let fref = FunctionRef::parse(function_name, "functionName")?;
        self.check_ref(region, &fref)?;
        let max = parse_max_items(max_items, 50, 50)?;
        self.load(region, &fref.name)?;
        let items: Vec<(String, Value)> = self
            .provisioned_records(region, Some(&fref.name))?
            .iter()
            .map(|c| {
                (
                    c.qualifier.clone(),
                    serde_json::to_value(self.pc_view(region, c, true)).unwrap_or(Value::Null),
                )
            })
            .collect();
        let (out, next) = page(items, marker, max)?;
        let mut resp = json!({"ProvisionedConcurrencyConfigs": out});
        if let Some(n) = next {
            resp["NextMarker"] = json!(n);
        }
        Ok(resp)
    }

    /// DeleteProvisionedConcurrencyConfig (204): the environments are shut
    /// down. Deleting a configuration that does not exist succeeds.
    pub async fn delete_provisioned_concurrency_config(
        self: &Arc<Self>,
        region: &str,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> AwsResult<()> {
        let (name, q) = self.pc_ref(region, function_name, qualifier)?;
        if q == "$LATEST" {
            return Err(AwsError::invalid_parameter(
                "The function resource provided must be an alias or a published version.",
            ));
        }
        let g = self.write_lock.lock().await;
        self.pc_check_target(region, &name, &q)?;
        let existed = self
            .store
            .delete(KIND_PROVISIONED, region, &qualified_id(&name, &q))?;
        drop(g);
        if existed {
            self.refresh_unreserved(region);
            self.reconcile_now(region, &name);
        }
        Ok(())
    }

    /// Allocated and busy environments of the configuration on a version or
    /// alias (None without one): the numbers behind
    /// `ProvisionedConcurrencyUtilization`.
    pub fn provisioned_usage(
        &self,
        region: &str,
        function: &str,
        qualifier: &str,
    ) -> Option<ProvisionedUsage> {
        let c = self.load_provisioned_config(region, function, qualifier)?;
        let parts = self.pc_parts(region, &c);
        let pools = lock(&self.provisioned.pools);
        let mut u = ProvisionedUsage {
            allocated: 0,
            busy: 0,
        };
        for (v, share) in parts {
            if let Some(p) = pools.get(&(region.to_string(), function.to_string(), v))
                && p.target > 0
            {
                u.allocated += share.min(p.ready() * share / p.target);
                u.busy += share.min(p.busy * share / p.target);
            }
        }
        Some(u)
    }

    /// Checks an idle provisioned environment of `rec`'s version out.
    pub(crate) fn provisioned_checkout(
        &self,
        region: &str,
        rec: &FunctionRecord,
    ) -> Option<ProvisionedTicket> {
        if rec.config.version == "$LATEST" {
            return None;
        }
        let key = (
            region.to_string(),
            rec.config.function_name.clone(),
            rec.config.version.clone(),
        );
        let mut pools = lock(&self.provisioned.pools);
        let p = pools.get_mut(&key)?;
        while let Some(e) = p.idle.pop() {
            if e.env.is_dead() {
                p.dirty = true;
                retire(e);
                continue;
            }
            p.busy += 1;
            drop(pools);
            return Some(ProvisionedTicket {
                pools: self.provisioned.pools.clone(),
                key,
                entry: Some(e),
            });
        }
        None
    }

    /// Brings a function's provisioned environments in line with its
    /// configurations, in the background.
    pub(crate) fn reconcile_provisioned(self: &Arc<Self>, region: &str, name: &str) {
        self.reconcile_now(region, name);
    }

    /// Brings a function's provisioned environments in line with its
    /// configurations: starts missing ones (in the background), shuts extra
    /// idle ones down, forgets versions no longer provisioned.
    fn reconcile_now(self: &Arc<Self>, region: &str, name: &str) {
        if self
            .provisioned
            .closed
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return;
        }
        let targets = match self.pc_targets(region, name) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!("provisioned concurrency of {name}: {e}");
                return;
            }
        };
        let mut spawns = Vec::new();
        let mut retired = Vec::new();
        {
            let mut pools = lock(&self.provisioned.pools);
            let mut versions: Vec<String> = pools
                .keys()
                .filter(|(r, n, _)| r == region && n == name)
                .map(|(_, _, v)| v.clone())
                .collect();
            for v in targets.keys() {
                if !versions.contains(v) {
                    versions.push(v.clone());
                }
            }
            for v in versions {
                let key = (region.to_string(), name.to_string(), v.clone());
                let target = targets.get(&v).copied().unwrap_or(0);
                let p = pools.entry(key.clone()).or_default();
                if p.target != target {
                    p.target = target;
                    p.reached = false;
                    p.failure = None;
                }
                let (alive, dead): (Vec<_>, Vec<_>) =
                    p.idle.drain(..).partition(|e| !e.env.is_dead());
                p.idle = alive;
                retired.extend(dead);
                while p.count() > p.target && !p.idle.is_empty() {
                    if let Some(e) = p.idle.pop() {
                        retired.push(e);
                    }
                }
                if p.ready() >= p.target && p.target > 0 {
                    p.reached = true;
                }
                // A failed init is not retried until the configuration changes.
                if p.failure.is_none() && p.count() < p.target {
                    let n = p.target - p.count();
                    p.starting += n;
                    spawns.push((v.clone(), n));
                }
                p.dirty = false;
                if p.target == 0 && p.count() == 0 {
                    pools.remove(&key);
                }
            }
        }
        for e in retired {
            retire(e);
        }
        for (v, n) in spawns {
            for _ in 0..n {
                let me = self.clone();
                let (region, name, v) = (region.to_string(), name.to_string(), v.clone());
                tokio::spawn(async move { me.allocate(region, name, v).await });
            }
        }
    }

    /// Initializes one provisioned environment of a version.
    async fn allocate(self: Arc<Self>, region: String, name: String, version: String) {
        let key = (region.clone(), name.clone(), version.clone());
        let finish = |entry: Option<Arc<EnvEntry>>, failure: Option<String>| {
            let mut pools = lock(&self.provisioned.pools);
            let keep = match pools.get_mut(&key) {
                Some(p) => {
                    p.starting = p.starting.saturating_sub(1);
                    if let Some(f) = failure {
                        p.failure = Some(f);
                    }
                    match entry {
                        Some(e) if p.count() < p.target => {
                            p.idle.push(e);
                            if p.ready() >= p.target {
                                p.reached = true;
                            }
                            None
                        }
                        other => other,
                    }
                }
                None => entry,
            };
            drop(pools);
            if let Some(e) = keep {
                retire(e);
            }
        };
        let Ok(_permit) = self.provisioned.starts.clone().acquire_owned().await else {
            finish(None, None);
            return;
        };
        // The version may still be Pending right after PublishVersion.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        let rec = loop {
            let notified = self.state_change.notified();
            match self.load_version(&region, &name, &version) {
                Ok(r) if r.config.state == "Active" => break r,
                Ok(r) if r.config.state == "Failed" => {
                    finish(None, Some(r.config.state_reason.unwrap_or_default()));
                    return;
                }
                Ok(_) if tokio::time::Instant::now() < deadline => {}
                _ => {
                    finish(None, None);
                    return;
                }
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        };
        let wanted = lock(&self.provisioned.pools)
            .get(&key)
            .is_some_and(|p| p.idle.len() as u32 + p.busy + p.starting <= p.target);
        if !wanted
            || self
                .provisioned
                .closed
                .load(std::sync::atomic::Ordering::SeqCst)
        {
            finish(None, None);
            return;
        }
        let mut r = rec;
        r.provisioned_init = true;
        for attempt in 1..=INIT_ATTEMPTS {
            match self.cold_start(&region, &r).await {
                Ok(entry) => {
                    finish(Some(entry), None);
                    return;
                }
                Err(ColdStartError::Init {
                    env,
                    error_type,
                    body,
                }) => {
                    tracing::warn!(
                        "provisioned environment of {name}:{version} failed to initialize (attempt {attempt} of {INIT_ATTEMPTS}): {error_type}: {}",
                        String::from_utf8_lossy(&body)
                    );
                    if let Some(env) = env {
                        env.drain_output().await;
                        env.kill();
                    }
                }
                Err(ColdStartError::Refused(e)) => {
                    finish(None, Some(e.message));
                    return;
                }
            }
            if self
                .provisioned
                .closed
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250 * attempt as u64)).await;
        }
        finish(None, Some("FUNCTION_ERROR_INIT_FAILURE".into()));
    }

    /// Replaces lost provisioned environments (called with the idle reaper).
    pub(crate) fn provisioned_tick(self: &Arc<Self>) {
        let mut todo: Vec<(String, String)> = Vec::new();
        {
            let pools = lock(&self.provisioned.pools);
            for ((r, n, _), p) in pools.iter() {
                if (p.dirty || p.idle.iter().any(|e| e.env.is_dead()))
                    && !todo.iter().any(|(a, b)| a == r && b == n)
                {
                    todo.push((r.clone(), n.clone()));
                }
            }
        }
        for (r, n) in todo {
            self.reconcile_now(&r, &n);
        }
    }

    /// Provisions every stored configuration again (startup).
    pub(crate) fn recover_provisioned(self: &Arc<Self>) {
        let Ok(all) = self.store.list_all(KIND_PROVISIONED) else {
            return;
        };
        let mut seen: Vec<(String, String)> = Vec::new();
        for (region, _, body) in all {
            if let Ok(c) = serde_json::from_str::<ProvisionedConfigRecord>(&body)
                && !seen
                    .iter()
                    .any(|(r, n)| r == &region && n == &c.function_name)
            {
                seen.push((region, c.function_name));
            }
        }
        for (r, n) in seen {
            self.reconcile_now(&r, &n);
        }
    }

    /// Number of provisioned environments initialized now.
    pub fn provisioned_environments(&self) -> usize {
        self.provisioned.allocated_count()
    }

    /// Provisioned environments initialized now, by function version:
    /// `(region, function, version, ready)` (for [`crate::metrics`]).
    pub(crate) fn provisioned_snapshot(&self) -> Vec<(String, String, String, u32)> {
        lock(&self.provisioned.pools)
            .iter()
            .filter(|(_, p)| p.target > 0 || p.ready() > 0)
            .map(|((r, f, v), p)| (r.clone(), f.clone(), v.clone(), p.ready()))
            .collect()
    }

    /// True when `rec`'s version has provisioned concurrency (an invocation
    /// that got no provisioned environment spilled over).
    pub(crate) fn has_provisioned(&self, region: &str, rec: &FunctionRecord) -> bool {
        if rec.config.version == "$LATEST" {
            return false;
        }
        let key = (
            region.to_string(),
            rec.config.function_name.clone(),
            rec.config.version.clone(),
        );
        lock(&self.provisioned.pools)
            .get(&key)
            .is_some_and(|p| p.target > 0)
    }
}
