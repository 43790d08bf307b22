//! The concurrency model
//! (<https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html>):
//!
//! * each region has the account's concurrency quota (`--account-concurrency`,
//!   AWS's default 1,000);
//! * a function with reserved concurrency R runs at most R invocations at a
//!   time (0: every invocation is throttled), and R is carved out of the
//!   quota; past R a synchronous invocation gets 429 with Reason
//!   `ReservedFunctionConcurrentInvocationLimitExceeded`;
//! * functions without reserved concurrency share what is left (the
//!   unreserved pool, minus the provisioned concurrency of those functions);
//!   past it: 429 with Reason `ConcurrentInvocationLimitExceeded`;
//! * invocations served by provisioned concurrency environments of a
//!   function without reserved concurrency do not draw on the unreserved
//!   pool; those that spill over to on-demand environments do;
//! * at least 100 (or the whole quota when it is smaller) stays unreserved:
//!   PutFunctionConcurrency and PutProvisionedConcurrencyConfig refuse to go
//!   below with AWS's message;
//! * the concurrency scaling rate: each function may start at most
//!   `--scaling-rate` new on-demand environments per 10 seconds (AWS: 1,000),
//!   refilled continuously; past it: 429 with Reason
//!   `FunctionInvocationRateLimitExceeded` (or
//!   `ReservedFunctionInvocationRateLimitExceeded` for a function with
//!   reserved concurrency). AWS names these reasons in the service model's
//!   `ThrottleReason` without saying which limit each one reports; these are
//!   the ones whose names match.
//!
//! The [`Scheduler`] holds the counters: one mutex, a few integer updates per
//! invocation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Value, json};
use stratus_core::{AwsError, AwsResult, FunctionRef};

use crate::invoke::InvokeTarget;
use crate::model::FunctionRecord;
use crate::service::{KIND_FUNCTION, Lambda, parse_body};

/// AWS keeps at least this much of the account's concurrency unreserved.
pub const MIN_UNRESERVED: u32 = 100;

/// The throttle error Lambda answers a synchronous invocation with.
pub fn throttle(reason: &str) -> AwsError {
    AwsError::new(429, "TooManyRequestsException", "Rate Exceeded.").with_field("Reason", reason)
}

#[derive(Default)]
struct RegionState {
    /// Invocations running on the unreserved pool.
    unreserved_in_flight: u32,
    /// None until computed: the whole quota.
    unreserved_capacity: Option<u32>,
}

struct FunctionState {
    in_flight: u32,
    /// Scaling-rate tokens and when they were last refilled.
    tokens: f64,
    refilled: Instant,
}

#[derive(Default)]
struct State {
    regions: HashMap<String, RegionState>,
    functions: HashMap<(String, String), FunctionState>,
}

/// Concurrency counters of every region and function.
pub struct Scheduler {
    limit: u32,
    scaling_rate: u32,
    state: Mutex<State>,
}

/// One admitted invocation: its concurrency is given back when dropped.
pub struct Lease {
    sched: Arc<Scheduler>,
    region: String,
    name: String,
    unreserved: bool,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("region", &self.region)
            .field("function", &self.name)
            .field("unreserved", &self.unreserved)
            .finish()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut s = self.sched.lock();
        let key = (
            std::mem::take(&mut self.region),
            std::mem::take(&mut self.name),
        );
        if let Some(f) = s.functions.get_mut(&key) {
            f.in_flight = f.in_flight.saturating_sub(1);
        }
        if self.unreserved
            && let Some(r) = s.regions.get_mut(&key.0)
        {
            r.unreserved_in_flight = r.unreserved_in_flight.saturating_sub(1);
        }
    }
}

impl Scheduler {
    /// A scheduler for an account quota of `limit` and a scaling rate of
    /// `scaling_rate` environments per 10 s per function.
    pub fn new(limit: u32, scaling_rate: u32) -> Arc<Scheduler> {
        Arc::new(Scheduler {
            limit: limit.max(1),
            scaling_rate: scaling_rate.max(1),
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The account quota.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// What must stay unreserved: 100, or the whole quota when smaller.
    pub fn min_unreserved(&self) -> u32 {
        MIN_UNRESERVED.min(self.limit)
    }

    /// Sets the unreserved pool of a region (quota minus reservations).
    pub fn set_unreserved_capacity(&self, region: &str, capacity: u32) {
        self.lock()
            .regions
            .entry(region.to_string())
            .or_default()
            .unreserved_capacity = Some(capacity);
    }

    /// Admits one invocation of function `name` or throttles it.
    ///
    /// `reserved` is the function's reserved concurrency; `provisioned`
    /// tells whether a provisioned environment will serve it (then a
    /// function without reserved concurrency does not draw on the
    /// unreserved pool). `take_provisioned` is called (once) under the lock
    /// to check an environment out; it runs only when the invocation may
    /// proceed as far as reserved concurrency is concerned.
    pub fn admit<T>(
        self: &Arc<Self>,
        region: &str,
        name: &str,
        reserved: Option<u32>,
        take_provisioned: impl FnOnce() -> Option<T>,
    ) -> AwsResult<(Lease, Option<T>)> {
        let mut s = self.lock();
        let rate = self.scaling_rate as f64;
        let key = (region.to_string(), name.to_string());
        let in_flight = s
            .functions
            .get(&key)
            .map(|f| f.in_flight)
            .unwrap_or_default();
        let mut unreserved = false;
        let env;
        if let Some(r) = reserved {
            if in_flight >= r {
                return Err(throttle(
                    "ReservedFunctionConcurrentInvocationLimitExceeded",
                ));
            }
            env = take_provisioned();
        } else {
            env = take_provisioned();
            if env.is_none() {
                let limit = self.limit;
                let reg = s.regions.entry(region.to_string()).or_default();
                if reg.unreserved_in_flight >= reg.unreserved_capacity.unwrap_or(limit) {
                    return Err(throttle("ConcurrentInvocationLimitExceeded"));
                }
                reg.unreserved_in_flight += 1;
                unreserved = true;
            }
        }
        s.functions
            .entry(key.clone())
            .or_insert_with(|| FunctionState {
                in_flight: 0,
                tokens: rate,
                refilled: Instant::now(),
            })
            .in_flight += 1;
        drop(s);
        Ok((
            Lease {
                sched: self.clone(),
                region: key.0,
                name: key.1,
                unreserved,
            },
            env,
        ))
    }

    /// Takes one scaling-rate token of a function before it starts a new
    /// on-demand environment. Errors: 429 with Reason
    /// `FunctionInvocationRateLimitExceeded` (or
    /// `ReservedFunctionInvocationRateLimitExceeded`).
    pub fn scaling_token(&self, region: &str, name: &str, reserved: bool) -> AwsResult<()> {
        let rate = self.scaling_rate as f64;
        let mut s = self.lock();
        let f = s
            .functions
            .entry((region.to_string(), name.to_string()))
            .or_insert_with(|| FunctionState {
                in_flight: 0,
                tokens: rate,
                refilled: Instant::now(),
            });
        let now = Instant::now();
        let elapsed = now.duration_since(f.refilled).as_secs_f64();
        f.tokens = (f.tokens + elapsed * rate / 10.0).min(rate);
        f.refilled = now;
        if f.tokens >= 1.0 {
            f.tokens -= 1.0;
            Ok(())
        } else if reserved {
            Err(throttle("ReservedFunctionInvocationRateLimitExceeded"))
        } else {
            Err(throttle("FunctionInvocationRateLimitExceeded"))
        }
    }

    /// Invocations of a function running now.
    pub fn in_flight(&self, region: &str, name: &str) -> u32 {
        self.lock()
            .functions
            .get(&(region.to_string(), name.to_string()))
            .map(|f| f.in_flight)
            .unwrap_or_default()
    }

    /// Forgets a deleted function's counters (running invocations still
    /// give theirs back).
    pub fn forget(&self, region: &str, name: &str) {
        let mut s = self.lock();
        let key = (region.to_string(), name.to_string());
        if s.functions.get(&key).is_some_and(|f| f.in_flight == 0) {
            s.functions.remove(&key);
        }
    }
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutConcurrencyInput {
    reserved_concurrent_executions: Option<i64>,
}

/// What reservations take out of a region's quota.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Reservations {
    /// Σ reserved concurrency.
    pub reserved: u64,
    /// Σ provisioned concurrency of functions without reserved concurrency.
    pub provisioned_unreserved: u64,
}

impl Lambda {
    fn function_only(&self, region: &str, function_name: &str) -> AwsResult<String> {
        let fref = FunctionRef::parse(function_name, "functionName")?;
        self.check_ref(region, &fref)?;
        if fref.qualifier.is_some() {
            return Err(AwsError::invalid_parameter(
                "This operation is permitted on Lambda functions only. Aliases and versions do not support this operation. Please specify either a function name or an unqualified function ARN.",
            ));
        }
        Ok(fref.name)
    }

    /// Reservations of a region, leaving out function `except` (whose new
    /// settings the caller is checking).
    pub(crate) fn reservations(
        &self,
        region: &str,
        except: Option<&str>,
    ) -> AwsResult<Reservations> {
        let mut out = Reservations::default();
        let mut reserved_fns = std::collections::HashSet::new();
        for (name, body) in self.store.list(KIND_FUNCTION, region)? {
            if Some(name.as_str()) == except {
                continue;
            }
            if let Ok(rec) = serde_json::from_str::<FunctionRecord>(&body)
                && let Some(r) = rec.reserved_concurrency
            {
                out.reserved += r as u64;
                reserved_fns.insert(name);
            }
        }
        for c in self.provisioned_records(region, None)? {
            if Some(c.function_name.as_str()) != except && !reserved_fns.contains(&c.function_name)
            {
                out.provisioned_unreserved += c.requested as u64;
            }
        }
        Ok(out)
    }

    /// UnreservedConcurrentExecutions of a region.
    pub(crate) fn unreserved(&self, region: &str) -> AwsResult<u64> {
        let r = self.reservations(region, None)?;
        Ok((self.sched.limit() as u64).saturating_sub(r.reserved + r.provisioned_unreserved))
    }

    /// Recomputes a region's unreserved pool after reservations changed.
    pub(crate) fn refresh_unreserved(&self, region: &str) {
        match self.unreserved(region) {
            Ok(u) => self
                .sched
                .set_unreserved_capacity(region, u.min(u32::MAX as u64) as u32),
            Err(e) => tracing::error!("computing unreserved concurrency of {region}: {e}"),
        }
    }

    /// Computes the unreserved pool of every region with functions (startup).
    pub(crate) fn refresh_all_unreserved(&self) {
        let mut regions = std::collections::BTreeSet::new();
        if let Ok(all) = self.store.list_all(KIND_FUNCTION) {
            for (region, _, _) in all {
                regions.insert(region);
            }
        }
        for r in regions {
            self.refresh_unreserved(&r);
        }
    }

    /// Admits an invocation of `rec` (a version of a function whose reserved
    /// concurrency is in `target`), checking a provisioned concurrency
    /// environment out into `target` when one is idle. Errors: 429
    /// `TooManyRequestsException` with AWS's Reason.
    pub(crate) fn admit(
        &self,
        region: &str,
        rec: &FunctionRecord,
        target: &mut InvokeTarget,
    ) -> AwsResult<Lease> {
        let name = &rec.config.function_name;
        let (lease, env) = self.sched.admit(region, name, target.reserved, || {
            self.provisioned_checkout(region, rec)
        })?;
        target.provisioned = env;
        Ok(lease)
    }

    /// PutFunctionConcurrency (`PUT /2017-10-31/functions/{FunctionName}/concurrency`).
    ///
    /// Errors: `InvalidParameterValueException` when fewer than 100 would
    /// stay unreserved or when the value is below the function's provisioned
    /// concurrency, `ValidationException` for a negative value.
    pub async fn put_function_concurrency(
        self: &Arc<Self>,
        region: &str,
        function_name: &str,
        body: &[u8],
    ) -> AwsResult<Value> {
        let input: PutConcurrencyInput = parse_body(body)?;
        let name = self.function_only(region, function_name)?;
        let n = input.reserved_concurrent_executions.ok_or_else(|| {
            AwsError::invalid_parameter(
                "ReservedConcurrentExecutions is a required parameter and was not provided.",
            )
        })?;
        if n < 0 {
            return Err(AwsError::validation_errors(&[format!(
                "Value '{n}' at 'reservedConcurrentExecutions' failed to satisfy constraint: Member must have value greater than or equal to 0"
            )]));
        }
        let _g = self.write_lock.lock().await;
        let mut rec = self.load(region, &name)?;
        let others = self.reservations(region, Some(&name))?;
        let left = self.sched.limit() as i64
            - (others.reserved + others.provisioned_unreserved) as i64
            - n;
        let min = self.sched.min_unreserved();
        if left < min as i64 {
            return Err(AwsError::invalid_parameter(format!(
                "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [{min}]."
            )));
        }
        let provisioned = self.provisioned_total(region, &name)?;
        if (provisioned as i64) > n {
            return Err(AwsError::invalid_parameter(format!(
                " ReservedConcurrentExecutions  {n} should not be lower than function's total provisioned concurrency [{provisioned}]."
            )));
        }
        rec.reserved_concurrency = Some(n as u32);
        self.save(region, &rec)?;
        drop(_g);
        self.refresh_unreserved(region);
        Ok(json!({"ReservedConcurrentExecutions": n}))
    }

    /// GetFunctionConcurrency (`GET /2019-09-30/functions/{FunctionName}/concurrency`):
    /// `{}` when the function has no reserved concurrency.
    pub fn get_function_concurrency(&self, region: &str, function_name: &str) -> AwsResult<Value> {
        let name = self.function_only(region, function_name)?;
        let rec = self.load(region, &name)?;
        Ok(match rec.reserved_concurrency {
            Some(n) => json!({"ReservedConcurrentExecutions": n}),
            None => json!({}),
        })
    }

    /// DeleteFunctionConcurrency (`DELETE /2017-10-31/functions/{FunctionName}/concurrency`, 204).
    pub async fn delete_function_concurrency(
        self: &Arc<Self>,
        region: &str,
        function_name: &str,
    ) -> AwsResult<()> {
        let name = self.function_only(region, function_name)?;
        let _g = self.write_lock.lock().await;
        let mut rec = self.load(region, &name)?;
        if rec.reserved_concurrency.take().is_some() {
            self.save(region, &rec)?;
        }
        drop(_g);
        self.refresh_unreserved(region);
        Ok(())
    }

    /// Invocations of a function running now (all versions).
    pub fn concurrent_executions(&self, region: &str, function: &str) -> u32 {
        self.sched.in_flight(region, function)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(e: &AwsError) -> &str {
        e.extra
            .iter()
            .find(|(k, _)| k == "Reason")
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    #[test]
    fn reserved_caps_a_function() {
        let s = Scheduler::new(1000, 1000);
        let a = s.admit("r", "f", Some(2), || None::<()>).unwrap();
        let b = s.admit("r", "f", Some(2), || None::<()>).unwrap();
        let e = s.admit("r", "f", Some(2), || None::<()>).unwrap_err();
        assert_eq!(e.status, 429);
        assert_eq!(
            reason(&e),
            "ReservedFunctionConcurrentInvocationLimitExceeded"
        );
        drop(a);
        let _c = s.admit("r", "f", Some(2), || None::<()>).unwrap();
        drop(b);
        let e = s.admit("r", "g", Some(0), || None::<()>).unwrap_err();
        assert_eq!(
            reason(&e),
            "ReservedFunctionConcurrentInvocationLimitExceeded"
        );
    }

    #[test]
    fn unreserved_pool_is_shared() {
        let s = Scheduler::new(3, 1000);
        let l1 = s.admit("r", "f", None, || None::<()>).unwrap();
        let _l2 = s.admit("r", "g", None, || None::<()>).unwrap();
        let _l3 = s.admit("r", "f", None, || None::<()>).unwrap();
        let e = s.admit("r", "h", None, || None::<()>).unwrap_err();
        assert_eq!(reason(&e), "ConcurrentInvocationLimitExceeded");
        // Another region has its own quota.
        let _o = s.admit("other", "h", None, || None::<()>).unwrap();
        // Provisioned environments do not draw on the pool.
        let (_p, env) = s.admit("r", "f", None, || Some(7)).unwrap();
        assert_eq!(env, Some(7));
        drop(l1);
        let _l4 = s.admit("r", "h", None, || None::<()>).unwrap();
        // Reserved functions do not use the unreserved pool either.
        let _r = s.admit("r", "k", Some(5), || None::<()>).unwrap();
    }

    #[test]
    fn capacity_follows_reservations() {
        let s = Scheduler::new(1000, 1000);
        s.set_unreserved_capacity("r", 1);
        let _a = s.admit("r", "f", None, || None::<()>).unwrap();
        assert!(s.admit("r", "g", None, || None::<()>).is_err());
        s.set_unreserved_capacity("r", 2);
        let _b = s.admit("r", "g", None, || None::<()>).unwrap();
    }

    #[test]
    fn scaling_rate() {
        let s = Scheduler::new(1000, 2);
        s.scaling_token("r", "f", false).unwrap();
        s.scaling_token("r", "f", false).unwrap();
        let e = s.scaling_token("r", "f", false).unwrap_err();
        assert_eq!(reason(&e), "FunctionInvocationRateLimitExceeded");
        let e = s.scaling_token("r", "f", true).unwrap_err();
        assert_eq!(reason(&e), "ReservedFunctionInvocationRateLimitExceeded");
        // Per function.
        s.scaling_token("r", "g", false).unwrap();
    }

    #[test]
    fn minimum_unreserved() {
        assert_eq!(Scheduler::new(1000, 1).min_unreserved(), 100);
        assert_eq!(Scheduler::new(10, 1).min_unreserved(), 10);
    }
}
