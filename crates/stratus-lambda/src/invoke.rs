//! Invoke: execution environment pool, cold and warm starts, the platform log
//! lines, and mapping Runtime API outcomes to Lambda's Invoke response.
//!
//! Behaviour follows "Lambda execution environment lifecycle"
//! (<https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html>)
//! and "Invoke" (<https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html>).

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use serde_json::json;
use stratus_core::{AwsError, AwsResult};
use stratus_sandbox::env::{
    EnvSpec, Environment, InitOutcome, Invocation, LogSink, MAX_RESPONSE_BYTES, Outcome,
};
use stratus_sandbox::isolation::{Isolation, RUNTIME_DIR, SDK_DIR, TASK_ROOT};
use stratus_sandbox::runtime::{self, Family};
use stratus_store::{LogEvent, Store};

use crate::model::FunctionRecord;
use crate::service::Lambda;

/// The account's concurrent executions limit (AWS's default quota; the
/// server's is `Config::account_concurrency`, see [`crate::concurrency`]).
pub const ACCOUNT_CONCURRENCY: usize = stratus_core::config::DEFAULT_ACCOUNT_CONCURRENCY as usize;

/// AWS's limit on a synchronous invoke request payload: 6 MB.
pub const MAX_SYNC_PAYLOAD: usize = 6 * 1024 * 1024;

/// Init phase limit for on-demand environments: 10 s.
pub const INIT_LIMIT: Duration = Duration::from_secs(10);

/// The error type of an init phase that ran out of time.
const INIT_TIMEOUT: &str = "Sandbox.Timedout";

/// LogType Tail returns the last 4 KB of the invocation's log.
pub const TAIL_BYTES: usize = 4096;

/// The Invoke request, decoded from the wire.
#[derive(Debug, Clone, Default)]
pub struct InvokeRequest {
    pub function_name: String,
    pub qualifier: Option<String>,
    /// `RequestResponse` (default), `Event` or `DryRun`.
    pub invocation_type: Option<String>,
    /// `None` or `Tail`.
    pub log_type: Option<String>,
    /// Base64 JSON client context (`X-Amz-Client-Context`).
    pub client_context: Option<String>,
    pub payload: Bytes,
}

/// The Invoke response.
#[derive(Debug, Clone)]
pub struct InvokeResponse {
    /// 200, 202 or 204.
    pub status: u16,
    /// The invocation's request id (the `x-amzn-RequestId` of the answer),
    /// absent when no invocation ran (DryRun).
    pub request_id: Option<String>,
    /// `X-Amz-Function-Error`: `Unhandled` when the function failed.
    pub function_error: Option<String>,
    /// `X-Amz-Log-Result`: base64 of the last 4 KB of the log.
    pub log_result: Option<String>,
    /// `X-Amz-Executed-Version`.
    pub executed_version: Option<String>,
    pub payload: Bytes,
}

/// What an invocation runs and how it was asked for.
pub(crate) struct InvokeTarget {
    /// The ARN the caller used (`invoked_function_arn` in the context):
    /// unqualified, or with the version or alias given.
    pub(crate) invoked_arn: String,
    /// The function's reserved concurrency.
    pub(crate) reserved: Option<u32>,
    /// A provisioned concurrency environment checked out for it, if one was idle.
    pub(crate) provisioned: Option<crate::provisioned::ProvisionedTicket>,
    /// The request id to run under (an asynchronous event's); a new one
    /// when `None`.
    pub(crate) request_id: Option<String>,
}

pub(crate) struct EnvEntry {
    pub(crate) env: Environment,
    pub(crate) revision: String,
    pub(crate) last_used: Mutex<Instant>,
}

/// On-demand environments by function version, idle ones ready for reuse.
/// The key's name is [`crate::versions::pool_key`]: the function name for
/// `$LATEST`, `name:N` for version N. Provisioned concurrency environments
/// live apart ([`crate::provisioned`]).
pub struct Pool {
    idle: Mutex<IdleMap>,
}

/// Idle environments by (region, pool key).
type IdleMap = HashMap<(String, String), Vec<Arc<EnvEntry>>>;

impl Pool {
    pub(crate) fn new() -> Pool {
        Pool {
            idle: Mutex::new(HashMap::new()),
        }
    }

    fn take(&self, region: &str, name: &str, revision: &str) -> Option<Arc<EnvEntry>> {
        let e = self.take_idle(region, name, revision)?;
        // Thaw it (outside the pool lock): one write to the freezer.
        e.env.begin_use();
        Some(e)
    }

    fn take_idle(&self, region: &str, name: &str, revision: &str) -> Option<Arc<EnvEntry>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(&(region.to_string(), name.to_string()))?;
        while let Some(e) = list.pop() {
            if e.revision == revision && !e.env.is_dead() {
                return Some(e);
            }
            retire(e);
        }
        None
    }

    fn put(&self, region: &str, name: &str, e: Arc<EnvEntry>) {
        *e.last_used.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        if e.env.can_freeze() {
            // Idle environments are frozen (no CPU) until the next invoke.
            let token = e.env.end_use();
            let e2 = e.clone();
            tokio::spawn(async move { e2.env.freeze_when_idle(token).await });
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.entry((region.to_string(), name.to_string()))
            .or_default()
            .push(e);
    }

    /// Shuts down every idle environment of a function (after an update or
    /// delete, new invocations get fresh environments).
    pub(crate) fn retire_function(&self, region: &str, name: &str) {
        let list = self
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(region.to_string(), name.to_string()));
        for e in list.unwrap_or_default() {
            retire(e);
        }
    }

    /// Number of environments currently idle.
    pub fn idle_count(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(Vec::len)
            .sum()
    }

    /// Removes environments idle for longer than `max_idle` and shuts them down.
    pub fn reap(&self, max_idle: Duration, grace: Duration) {
        let mut old = Vec::new();
        {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            for list in idle.values_mut() {
                list.retain(|e| {
                    let keep = !e.env.is_dead()
                        && e.last_used
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .elapsed()
                            < max_idle;
                    if !keep {
                        old.push(e.clone());
                    }
                    keep
                });
            }
            idle.retain(|_, l| !l.is_empty());
        }
        for e in old {
            tokio::spawn(async move { e.env.shutdown(grace).await });
        }
    }

    /// Shuts down idle environments, least recently used first, until the
    /// memory they use adds up to `bytes` (the host is short of memory).
    /// Returns how many were reclaimed.
    pub(crate) fn reclaim(&self, bytes: u64, grace: Duration) -> usize {
        let mut victims = Vec::new();
        {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            let mut all: Vec<(Instant, Arc<EnvEntry>)> = idle
                .values()
                .flatten()
                .map(|e| {
                    (
                        *e.last_used.lock().unwrap_or_else(|p| p.into_inner()),
                        e.clone(),
                    )
                })
                .collect();
            all.sort_by_key(|(t, _)| *t);
            let mut freed = 0u64;
            for (_, e) in all {
                if freed >= bytes {
                    break;
                }
                freed += e.env.memory_usage_bytes().max(1);
                victims.push(e);
            }
            for list in idle.values_mut() {
                list.retain(|e| !victims.iter().any(|v| Arc::ptr_eq(v, e)));
            }
            idle.retain(|_, l| !l.is_empty());
        }
        let n = victims.len();
        for e in victims {
            tokio::spawn(async move { e.env.shutdown(grace).await });
        }
        n
    }

    /// Shuts every idle environment down (server shutdown): SIGTERM, `grace`,
    /// then SIGKILL, all in parallel.
    pub async fn shutdown_all(&self, grace: Duration) {
        let all: Vec<Arc<EnvEntry>> = self
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .flat_map(|(_, v)| v)
            .collect();
        let mut tasks = Vec::new();
        for e in all {
            tasks.push(tokio::spawn(async move { e.env.shutdown(grace).await }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

pub(crate) fn retire(e: Arc<EnvEntry>) {
    tokio::spawn(async move { e.env.shutdown(Duration::from_millis(500)).await });
}

/// Writes an environment's output to its log stream in the store.
struct StoreSink {
    store: Store,
    region: String,
    group: String,
    stream: String,
}

impl LogSink for StoreSink {
    fn line(&self, timestamp_ms: i64, line: &str) {
        self.store.append_log(LogEvent {
            region: self.region.clone(),
            log_group: self.group.clone(),
            log_stream: self.stream.clone(),
            timestamp: timestamp_ms,
            message: line.to_string(),
        });
    }
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn error_payload(error_type: &str, message: &str) -> Bytes {
    Bytes::from(json!({"errorType": error_type, "errorMessage": message}).to_string())
}

fn trace_id() -> String {
    let now = stratus_core::time::now_ms() / 1000;
    let hex = stratus_core::hex32();
    format!(
        "Root=1-{now:08x}-{};Parent={};Sampled=0;Lineage=1:{}:0",
        &hex[..24],
        &hex[..16],
        &hex[24..32]
    )
}

impl Lambda {
    /// Invoke (`POST /2015-03-31/functions/{FunctionName}/invocations`).
    ///
    /// Errors: `ResourceNotFoundException` (404), `RequestTooLargeException`
    /// (413) for payloads over 6 MB, `InvalidRequestContentException` (400)
    /// for a payload or client context that is not JSON,
    /// `TooManyRequestsException` (429) past the account's concurrency,
    /// `ResourceConflictException` (409) when the function is not Active.
    /// Function failures are not errors: they come back with
    /// `function_error = Unhandled` and AWS's error payload.
    pub async fn invoke(
        self: &Arc<Self>,
        region: &str,
        req: InvokeRequest,
    ) -> AwsResult<InvokeResponse> {
        self.invoke_as(region, req, None).await
    }

    /// [`Lambda::invoke`] with the invocation's request id chosen by the
    /// caller (an asynchronous event keeps the id its 202 answer gave across
    /// every attempt, as AWS does).
    pub(crate) async fn invoke_as(
        self: &Arc<Self>,
        region: &str,
        req: InvokeRequest,
        request_id: Option<String>,
    ) -> AwsResult<InvokeResponse> {
        let event = req.invocation_type.as_deref() == Some("Event");
        if event && req.payload.len() > crate::async_invoke::MAX_ASYNC_PAYLOAD {
            return Err(AwsError::new(
                413,
                "RequestTooLargeException",
                format!(
                    "Request must be smaller than {} bytes for the InvokeFunction operation",
                    crate::async_invoke::MAX_ASYNC_PAYLOAD
                ),
            ));
        }
        if req.payload.len() > MAX_SYNC_PAYLOAD {
            return Err(AwsError::new(
                413,
                "RequestTooLargeException",
                format!(
                    "Request must be smaller than {MAX_SYNC_PAYLOAD} bytes for the InvokeFunction operation"
                ),
            ));
        }
        let invocation_type = req.invocation_type.as_deref().unwrap_or("RequestResponse");
        if !matches!(invocation_type, "RequestResponse" | "Event" | "DryRun") {
            return Err(AwsError::validation_errors(&[format!(
                "Value '{invocation_type}' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]"
            )]));
        }
        if let Some(l) = req.log_type.as_deref()
            && l != "None"
            && l != "Tail"
        {
            return Err(AwsError::validation_errors(&[format!(
                "Value '{l}' at 'logType' failed to satisfy constraint: Member must satisfy enum value set: [None, Tail]"
            )]));
        }
        let (mut rec, mut target) =
            self.invoke_target(region, &req.function_name, req.qualifier.as_deref())?;
        let payload = if req.payload.iter().all(u8::is_ascii_whitespace) {
            Bytes::from_static(b"{}")
        } else {
            req.payload.clone()
        };
        if serde_json::from_slice::<serde::de::IgnoredAny>(&payload).is_err() {
            return Err(AwsError::invalid_request_content(
                "Could not parse request body into json: the payload is not valid JSON.",
            ));
        }
        let client_context = match &req.client_context {
            None => None,
            Some(cc) => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(cc.as_bytes())
                    .ok()
                    .filter(|b| {
                        serde_json::from_slice::<serde_json::Value>(b).is_ok_and(|v| v.is_object())
                    })
                    .ok_or_else(|| {
                        AwsError::invalid_request_content(
                            "Client context must be a valid Base64-encoded JSON object.",
                        )
                    })?;
                Some(String::from_utf8_lossy(&raw).into_owned())
            }
        };
        if invocation_type == "DryRun" {
            return Ok(InvokeResponse {
                status: 204,
                request_id: None,
                function_error: None,
                log_result: None,
                executed_version: None,
                payload: Bytes::new(),
            });
        }
        if invocation_type == "Event" {
            return self
                .enqueue_event(region, &rec, &target, req.qualifier.clone(), payload)
                .await;
        }
        target.request_id = request_id;
        // A function being created or updated becomes Active within
        // milliseconds here; wait for it rather than fail.
        let wait_until = Instant::now() + Duration::from_secs(5);
        while rec.config.state == "Pending"
            || rec.config.last_update_status.as_deref() == Some("InProgress")
        {
            let notified = self.state_change.notified();
            rec = self.reload(region, &rec)?;
            if !(rec.config.state == "Pending"
                || rec.config.last_update_status.as_deref() == Some("InProgress"))
            {
                break;
            }
            if Instant::now() > wait_until {
                return Err(AwsError::conflict(format!(
                    "The operation cannot be performed at this time. The function is currently in the following state: {}",
                    rec.config.state
                )));
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        }
        if rec.config.state == "Failed" {
            return Err(AwsError::conflict(format!(
                "The operation cannot be performed at this time. The function is currently in the following state: Failed ({})",
                rec.config.state_reason.clone().unwrap_or_default()
            )));
        }

        // Reserved concurrency, the unreserved pool, provisioned environments.
        let _lease = self.admit(region, &rec, &mut target).inspect_err(|_| {
            self.metrics.throttle(region, &rec, &target.invoked_arn);
        })?;
        self.run(
            region,
            &rec,
            target,
            payload,
            client_context,
            req.log_type.as_deref() == Some("Tail"),
        )
        .await
    }

    async fn run(
        self: &Arc<Self>,
        region: &str,
        rec: &FunctionRecord,
        mut target: InvokeTarget,
        payload: Bytes,
        client_context: Option<String>,
        tail: bool,
    ) -> AwsResult<InvokeResponse> {
        let name = &rec.config.function_name;
        // The version that runs (X-Amz-Executed-Version, START line).
        let qualifier = rec.config.version.as_str();
        let pool_key = crate::versions::pool_key(rec);
        let request_id = target
            .request_id
            .take()
            .unwrap_or_else(stratus_core::request_id);
        let invoke_start = Instant::now();
        let mut init_ms: Option<f64> = None;
        let ticket = target.provisioned.take();
        let spillover = ticket.is_none() && self.has_provisioned(region, rec);
        let metrics = self.metrics.begin(
            region,
            rec,
            &target.invoked_arn,
            ticket.is_some(),
            spillover,
        );
        let warm = match ticket.as_ref().and_then(|t| t.entry()) {
            Some(e) => Some(e),
            None => self.pool.take(region, &pool_key, &rec.config.revision_id),
        };
        let entry = match warm {
            Some(e) => e,
            None => {
                // A new on-demand environment: the concurrency scaling rate.
                if let Err(e) = self
                    .sched
                    .scaling_token(region, name, target.reserved.is_some())
                {
                    metrics.throttled();
                    return Err(e);
                }
                let t0 = Instant::now();
                let mut attempt = self
                    .cold_start_limited(region, rec, INIT_LIMIT, Some(&request_id))
                    .await;
                // "If all three tasks do not complete within 10 seconds, Lambda
                // retries the Init phase at the time of the first function
                // invocation with the configured function timeout."
                // (Lambda execution environment lifecycle.)
                if let Err(ColdStartError::Init {
                    env: Some(old),
                    error_type,
                    ..
                }) = &attempt
                    && error_type == INIT_TIMEOUT
                {
                    old.platform_line(&format!(
                        "INIT_REPORT Init Duration: {:.2} ms\tPhase: init\tStatus: timeout",
                        t0.elapsed().as_secs_f64() * 1000.0
                    ));
                    old.kill();
                    let limit = Duration::from_secs(rec.config.timeout as u64);
                    attempt = self
                        .cold_start_limited(region, rec, limit, Some(&request_id))
                        .await;
                }
                let entry = match attempt {
                    Ok(e) => e,
                    Err(ColdStartError::Refused(e)) => return Err(e),
                    Err(ColdStartError::Init {
                        env,
                        error_type,
                        body,
                    }) => {
                        let init = t0.elapsed().as_secs_f64() * 1000.0;
                        metrics.finish(init, true);
                        return Ok(self
                            .init_failure(rec, &request_id, env, init, &error_type, body, tail)
                            .await);
                    }
                };
                init_ms = Some(t0.elapsed().as_secs_f64() * 1000.0);
                entry
            }
        };
        let env = &entry.env;
        if tail {
            env.begin_capture();
        }
        env.platform_line(&format!(
            "START RequestId: {request_id} Version: {qualifier}"
        ));
        let start = Instant::now();
        let deadline_ms = stratus_core::time::now_ms() + rec.config.timeout as i64 * 1000;
        let deadline = tokio::time::Instant::from_std(invoke_start.max(start))
            + Duration::from_secs(rec.config.timeout as u64);
        let outcome = env
            .invoke(
                Invocation {
                    request_id: request_id.clone(),
                    payload,
                    deadline_ms,
                    invoked_function_arn: target.invoked_arn.clone(),
                    trace_id: trace_id(),
                    client_context,
                    cognito_identity: None,
                },
                deadline,
            )
            .await;
        let duration_ms = start.elapsed().as_secs_f64() * 1000.0;
        let failed = !matches!(outcome, Outcome::Response(_));
        metrics.finish(duration_ms, failed);
        env.drain_output().await;
        let mut healthy = true;
        let mut oom = false;
        let mut status_suffix = String::new();
        let (function_error, body) = match outcome {
            Outcome::Response(b) => (None, b),
            Outcome::FunctionError {
                error_type: _,
                body,
            } => (Some("Unhandled".to_string()), body),
            Outcome::ResponseTooLarge(_) => (
                Some("Unhandled".to_string()),
                error_payload(
                    "Function.ResponseSizeTooLarge",
                    &format!(
                        "Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."
                    ),
                ),
            ),
            Outcome::Timeout => {
                healthy = false;
                let secs = format!("{:.2}", rec.config.timeout as f64);
                env.platform_line(&format!(
                    "{} {request_id} Task timed out after {secs} seconds",
                    stratus_core::time::iso_ms(stratus_core::time::now_ms())
                ));
                status_suffix = "Status: timeout\t".into();
                (
                    Some("Unhandled".to_string()),
                    error_payload(
                        "Sandbox.Timedout",
                        &format!(
                            "RequestId: {request_id} Error: Task timed out after {secs} seconds"
                        ),
                    ),
                )
            }
            Outcome::Exited(desc) => {
                healthy = false;
                let msg =
                    format!("RequestId: {request_id} Error: Runtime exited with error: {desc}");
                env.platform_line(&msg);
                // Killed for reaching the memory limit: AWS's OOM error.
                let error_type = if env.oom_killed() {
                    oom = true;
                    "Runtime.OutOfMemory"
                } else {
                    "Runtime.ExitError"
                };
                status_suffix = format!("Status: error\tError Type: {error_type}\t");
                (
                    Some("Unhandled".to_string()),
                    error_payload(error_type, &msg),
                )
            }
        };
        // Max Memory Used: the cgroup's peak (at the limit after an OOM kill).
        let max_mem = if oom {
            rec.config.memory_size as u64
        } else {
            env.max_memory_used_kb()
                .map(|kb| kb.div_ceil(1024))
                .unwrap_or(0)
                .min(rec.config.memory_size as u64)
        };
        env.platform_line(&format!("END RequestId: {request_id}"));
        env.platform_line(&report_line(
            &request_id,
            duration_ms,
            rec.config.memory_size,
            max_mem,
            init_ms,
            &status_suffix,
        ));
        // The same figures for Telemetry API subscribers (platform.report).
        let status = match (status_suffix.as_str(), &function_error) {
            (s, _) if s.starts_with("Status: timeout") => "timeout",
            (s, _) if s.starts_with("Status: error") => "error",
            (_, Some(_)) => "failure",
            _ => "success",
        };
        env.telemetry_report(
            &request_id,
            status,
            None,
            duration_ms,
            rec.config.memory_size,
            max_mem,
            init_ms,
        );
        let log_result = if tail {
            Some(b64(last_bytes(&env.end_capture().await, TAIL_BYTES)))
        } else {
            None
        };
        let reusable = healthy && !env.is_dead() && !env.extension_crashed();
        if let Some(t) = ticket {
            // A provisioned environment goes back to its pool; a lost one is
            // replaced.
            drop(entry);
            if t.checkin(reusable) {
                self.reconcile_provisioned(region, name);
            }
        } else if reusable {
            self.pool.put(region, &pool_key, entry);
        } else {
            retire(entry);
        }
        Ok(InvokeResponse {
            status: 200,
            request_id: Some(request_id.clone()),
            function_error,
            log_result,
            executed_version: Some(qualifier.to_string()),
            payload: body,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn init_failure(
        &self,
        rec: &FunctionRecord,
        request_id: &str,
        env: Option<Environment>,
        init_ms: f64,
        error_type: &str,
        body: Bytes,
        tail: bool,
    ) -> InvokeResponse {
        let mut log = Vec::new();
        let mut push = |env: Option<&Environment>, line: String| {
            if let Some(e) = env {
                e.platform_line(&line);
            }
            log.extend_from_slice(line.as_bytes());
            log.push(b'\n');
        };
        let e = env.as_ref();
        if let Some(e) = e {
            e.drain_output().await;
        }
        let init_status = if error_type == INIT_TIMEOUT {
            "Status: timeout".to_string()
        } else {
            format!("Status: error\tError Type: {error_type}")
        };
        push(
            e,
            format!("INIT_REPORT Init Duration: {init_ms:.2} ms\tPhase: init\t{init_status}"),
        );
        let max_mem = e
            .and_then(|e| e.peak_rss_kb())
            .map(|kb| kb.div_ceil(1024))
            .unwrap_or(0)
            .min(rec.config.memory_size as u64);
        push(
            e,
            format!(
                "START RequestId: {request_id} Version: {}",
                rec.config.version
            ),
        );
        push(e, format!("END RequestId: {request_id}"));
        push(
            e,
            report_line(
                request_id,
                init_ms,
                rec.config.memory_size,
                max_mem,
                None,
                &format!("{init_status}\t"),
            ),
        );
        if let Some(env) = env {
            env.kill();
        }
        InvokeResponse {
            status: 200,
            request_id: Some(request_id.to_string()),
            function_error: Some("Unhandled".into()),
            log_result: if tail {
                Some(b64(last_bytes(&log, TAIL_BYTES)))
            } else {
                None
            },
            executed_version: Some(rec.config.version.clone()),
            payload: body,
        }
    }

    /// Reclaims idle environments, least recently used first, while the
    /// host's MemAvailable is below `--min-free-memory-mb` (default: 10% of
    /// MemTotal). Called before each cold start and by the reaper.
    pub(crate) fn reclaim_memory(&self) -> usize {
        let Some((total, avail)) = stratus_sandbox::isolation::host_memory_mb() else {
            return 0;
        };
        let min_free = self.config.min_free_memory_mb.unwrap_or(total / 10);
        if avail >= min_free {
            return 0;
        }
        let n = self.pool.reclaim(
            (min_free - avail) * 1024 * 1024,
            Duration::from_millis(self.config.shutdown_grace_ms),
        );
        if n > 0 {
            tracing::info!(
                reclaimed = n,
                available_mb = avail,
                min_free_mb = min_free,
                "host memory is short: reclaimed idle execution environments"
            );
        }
        n
    }

    pub(crate) async fn cold_start(
        self: &Arc<Self>,
        region: &str,
        rec: &FunctionRecord,
    ) -> Result<Arc<EnvEntry>, ColdStartError> {
        self.cold_start_limited(region, rec, INIT_LIMIT, None).await
    }

    /// Starts an environment and runs its init phase within `init_limit`.
    /// `request_id` is the invocation that needs it (named in init errors
    /// as AWS does), if any.
    pub(crate) async fn cold_start_limited(
        self: &Arc<Self>,
        region: &str,
        rec: &FunctionRecord,
        init_limit: Duration,
        request_id: Option<&str>,
    ) -> Result<Arc<EnvEntry>, ColdStartError> {
        let rid = request_id.unwrap_or("");
        let c = &rec.config;
        let runtime_id = c.runtime.clone().unwrap_or_default();
        let resolved = runtime::resolve(
            &runtime_id,
            &self.config.runtime_overrides,
            self.config.strict_runtimes,
        )
        .map_err(|m| ColdStartError::Refused(AwsError::new(502, "InvalidRuntimeException", m)))?;
        let task_root = self.code_dir(&rec.code_hex);
        if !task_root.is_dir() {
            return Err(ColdStartError::Refused(AwsError::service(format!(
                "The code of {} is not unpacked at {}.",
                c.function_name,
                task_root.display()
            ))));
        }
        self.reclaim_memory();
        // The function's layers, merged into one /opt (see crate::layers).
        let opt_dir = self
            .layers_opt_dir(rec)
            .await
            .map_err(ColdStartError::Refused)?;
        let (mut isolation, interpreter) = self
            .sandbox
            .spec(
                c.memory_size,
                c.ephemeral_storage.size,
                &task_root,
                opt_dir.as_deref(),
                resolved.family,
                resolved.interpreter.as_deref(),
            )
            .map_err(|m| {
                ColdStartError::Refused(AwsError::new(502, "InvalidRuntimeException", m))
            })?;
        // In namespace mode the runtime sees its code at /var/task and the
        // bootstraps at /var/runtime, as on AWS.
        let ns = isolation.mode == Isolation::Namespace;
        let mut resolved = resolved;
        resolved.interpreter = interpreter;
        let host_task_root = task_root.clone();
        let task_root = if ns {
            std::path::PathBuf::from(TASK_ROOT)
        } else {
            task_root
        };
        let rt_dir = &if ns {
            std::path::PathBuf::from(RUNTIME_DIR)
        } else {
            self.runtime_dir.clone()
        };
        // A custom runtime may come from a layer: /opt/bootstrap.
        let opt_bootstrap =
            crate::layers::opt_bootstrap(resolved.family, &host_task_root, opt_dir.as_deref(), ns);
        let command: Vec<String> = match resolved.family {
            Family::Provided if opt_bootstrap.is_some() => opt_bootstrap.into_iter().collect(),
            Family::Python => vec![
                resolved.interpreter.clone().unwrap_or_default(),
                "-u".into(),
                rt_dir
                    .join("python/bootstrap.py")
                    .to_string_lossy()
                    .into_owned(),
            ],
            Family::Node => vec![
                resolved.interpreter.clone().unwrap_or_default(),
                rt_dir
                    .join("node/bootstrap.mjs")
                    .to_string_lossy()
                    .into_owned(),
            ],
            Family::Provided => {
                let b = task_root.join("bootstrap");
                // The sandbox user must be able to run it (others' x bit).
                // In process mode any x bit will do (the server's own user).
                if std::fs::metadata(host_task_root.join("bootstrap")).is_ok_and(|m| {
                    let mode = m.permissions().mode();
                    m.is_file() && (mode & 0o111 == 0 || (ns && mode & 0o001 == 0))
                }) {
                    let msg = format!(
                        "RequestId: {rid} Error: fork/exec /var/task/bootstrap: permission denied"
                    );
                    return Err(ColdStartError::Init {
                        env: None,
                        error_type: "Runtime.InvalidEntrypoint".into(),
                        body: error_payload("Runtime.InvalidEntrypoint", &msg),
                    });
                }
                if !host_task_root.join("bootstrap").is_file() {
                    let msg =
                        "Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]";
                    let body = error_payload("Runtime.InvalidEntrypoint", msg);
                    return Err(ColdStartError::Init {
                        env: None,
                        error_type: "Runtime.InvalidEntrypoint".into(),
                        body,
                    });
                }
                vec![b.to_string_lossy().into_owned()]
            }
        };
        let env_id = stratus_core::hex32();
        let now = stratus_core::time::now_ms();
        // `YYYY/MM/DD/[$LATEST]<id>` or `YYYY/MM/DD/[1]<id>` for version 1.
        let stream = format!(
            "{}/[{}]{}",
            stratus_core::time::date_path(now),
            c.version,
            env_id
        );
        let group = c.logging_config.log_group.clone();
        let vars = self.process_vars(region, rec, &resolved, &task_root, &group, &stream);
        // Layer paths, AWS_LAMBDA_EXEC_WRAPPER and external extensions.
        let (command, vars, extensions) = self.layer_environment(
            rec,
            resolved.family,
            opt_dir.as_deref(),
            &mut isolation,
            command,
            vars,
        );
        let sink = Arc::new(StoreSink {
            store: self.store.clone(),
            region: region.to_string(),
            group,
            stream,
        });
        let spec = EnvSpec {
            command,
            cwd: task_root,
            vars,
            isolation,
            extensions,
        };
        let env =
            Environment::start(spec, env_id, sink)
                .await
                .map_err(|e| ColdStartError::Init {
                    env: None,
                    error_type: "Runtime.InvalidEntrypoint".into(),
                    body: error_payload(
                        "Runtime.InvalidEntrypoint",
                        &format!("RequestId: {rid} Error: could not start the runtime: {e}"),
                    ),
                })?;
        match env.wait_init(init_limit).await {
            InitOutcome::Ready => Ok(Arc::new(EnvEntry {
                env,
                revision: c.revision_id.clone(),
                last_used: Mutex::new(Instant::now()),
            })),
            InitOutcome::Error { error_type, body } => Err(ColdStartError::Init {
                env: Some(env),
                error_type,
                body,
            }),
            InitOutcome::Exited(desc) => {
                let msg = format!("RequestId: {rid} Error: Runtime exited with error: {desc}");
                // Killed for reaching the memory limit: AWS's OOM error.
                let error_type = if env.oom_killed() {
                    "Runtime.OutOfMemory"
                } else {
                    "Runtime.ExitError"
                };
                Err(ColdStartError::Init {
                    env: Some(env),
                    error_type: error_type.into(),
                    body: error_payload(error_type, &msg),
                })
            }
            InitOutcome::Timeout => {
                let msg = format!(
                    "RequestId: {rid} Error: Task timed out after {:.2} seconds",
                    init_limit.as_secs_f64()
                );
                Err(ColdStartError::Init {
                    env: Some(env),
                    error_type: INIT_TIMEOUT.into(),
                    body: error_payload(INIT_TIMEOUT, &msg),
                })
            }
        }
    }

    fn process_vars(
        &self,
        region: &str,
        rec: &FunctionRecord,
        rt: &runtime::ResolvedRuntime,
        task_root: &std::path::Path,
        group: &str,
        stream: &str,
    ) -> Vec<(String, String)> {
        let c = &rec.config;
        let ns = self.sandbox.mode() == Isolation::Namespace;
        // Inside a namespace environment the host's PATH means nothing; the
        // interpreter's own directory stands in for it.
        let host_path = if ns {
            rt.interpreter
                .as_deref()
                .and_then(|i| std::path::Path::new(i).parent())
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|| "/usr/local/sbin:/usr/sbin:/sbin".into())
        } else {
            std::env::var("PATH").unwrap_or_default()
        };
        let (runtime_dir, sdk_dir) = if ns {
            (RUNTIME_DIR.into(), SDK_DIR.into())
        } else {
            (self.runtime_dir.clone(), self.config.sdk_dir.clone())
        };
        let task = task_root.to_string_lossy().into_owned();
        let mut v: Vec<(String, String)> = vec![
            ("AWS_LAMBDA_FUNCTION_NAME".into(), c.function_name.clone()),
            ("AWS_LAMBDA_FUNCTION_VERSION".into(), c.version.clone()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(),
                c.memory_size.to_string(),
            ),
            ("AWS_REGION".into(), region.into()),
            ("AWS_DEFAULT_REGION".into(), region.into()),
            ("_HANDLER".into(), c.handler.clone().unwrap_or_default()),
            ("LAMBDA_TASK_ROOT".into(), task.clone()),
            (
                "LAMBDA_RUNTIME_DIR".into(),
                runtime_dir.to_string_lossy().into_owned(),
            ),
            ("TZ".into(), ":UTC".into()),
            ("LANG".into(), "en_US.UTF-8".into()),
            ("AWS_LAMBDA_LOG_GROUP_NAME".into(), group.into()),
            ("AWS_LAMBDA_LOG_STREAM_NAME".into(), stream.into()),
            (
                "AWS_LAMBDA_INITIALIZATION_TYPE".into(),
                rec.initialization_type().into(),
            ),
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            ("AWS_SESSION_TOKEN".into(), "test".into()),
            ("AWS_ENDPOINT_URL".into(), self.config.edge_url()),
            (
                "PATH".into(),
                format!("/usr/local/bin:/usr/bin/:/bin:/opt/bin:{host_path}"),
            ),
            (
                "LD_LIBRARY_PATH".into(),
                format!("/lib64:/usr/lib64:{task}:{task}/lib:/opt/lib"),
            ),
        ];
        if let Some(e) = &rt.execution_env {
            v.push(("AWS_EXECUTION_ENV".into(), e.clone()));
        }
        match rt.family {
            Family::Python => {
                v.push((
                    "STRATUS_SDK_PATH".into(),
                    sdk_dir.join("python").to_string_lossy().into_owned(),
                ));
            }
            Family::Node => {
                v.push((
                    "STRATUS_SDK_PATH".into(),
                    sdk_dir
                        .join("node/node_modules")
                        .to_string_lossy()
                        .into_owned(),
                ));
                v.push((
                    "NODE_PATH".into(),
                    format!("/opt/nodejs/node_modules:/opt/nodejs/node20/node_modules:{task}"),
                ));
            }
            Family::Provided => {}
        }
        if let Some(env) = &c.environment {
            for (k, val) in &env.variables {
                v.retain(|(kk, _)| kk != k);
                v.push((k.clone(), val.clone()));
            }
        }
        v
    }
}

pub(crate) enum ColdStartError {
    Refused(AwsError),
    Init {
        env: Option<Environment>,
        error_type: String,
        body: Bytes,
    },
}

/// AWS's REPORT line (text log format):
/// `REPORT RequestId: <id>\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 20 MB\t`
/// with `Init Duration: x ms\t` on cold starts. Billed Duration is the
/// duration rounded up to the next ms.
pub fn report_line(
    request_id: &str,
    duration_ms: f64,
    memory_mb: u32,
    max_used_mb: u64,
    init_ms: Option<f64>,
    suffix: &str,
) -> String {
    let billed = duration_ms.ceil().max(1.0) as u64;
    let mut s = format!(
        "REPORT RequestId: {request_id}\tDuration: {duration_ms:.2} ms\tBilled Duration: {billed} ms\tMemory Size: {memory_mb} MB\tMax Memory Used: {max_used_mb} MB\t"
    );
    if let Some(i) = init_ms {
        s.push_str(&format!("Init Duration: {i:.2} ms\t"));
    }
    s.push_str(suffix);
    s
}

fn last_bytes(b: &[u8], n: usize) -> &[u8] {
    if b.len() <= n {
        return b;
    }
    let mut start = b.len() - n;
    // Do not cut a UTF-8 sequence in half.
    while start < b.len() && (b[start] & 0xC0) == 0x80 {
        start += 1;
    }
    &b[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_format() {
        let l = report_line("abc", 1.234, 128, 20, Some(10.0), "");
        assert_eq!(
            l,
            "REPORT RequestId: abc\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 20 MB\tInit Duration: 10.00 ms\t"
        );
        assert!(!report_line("abc", 3.0, 128, 20, None, "").contains("Init"));
    }

    #[test]
    fn tail_cut() {
        assert_eq!(last_bytes(b"abcdef", 3), b"def");
        let s = "ééé".as_bytes();
        assert_eq!(last_bytes(s, 3), "é".as_bytes());
    }
}
