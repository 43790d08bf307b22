//! The Extensions API of an execution environment
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html>),
//! served with the Runtime API and the Telemetry API ([`crate::telemetry`])
//! on the environment's `AWS_LAMBDA_RUNTIME_API` address, and the launcher
//! that starts external extensions inside the environment.
//!
//! ## Lifecycle, as AWS documents it
//!
//! - **Init.** External extensions are the executables in
//!   `/opt/extensions` (from layers). When a function has any, its runtime
//!   command is wrapped by the launcher (`stratus __lambda-extensions`, this
//!   same binary, run inside the environment): it starts every extension,
//!   waits until each has registered (`POST /2020-01-01/extension/register`),
//!   and only then starts the runtime ("After each extension registers with
//!   Lambda, Lambda starts the Runtime init phase"). Internal extensions
//!   (threads of the runtime process) may register during init too. Init
//!   completes when the runtime and every registered extension have called
//!   `next`.
//! - **Invoke.** Each invocation sends an `INVOKE` event to the extensions
//!   registered for it; the invocation completes when the runtime has
//!   responded and every extension has called `next` again, so REPORT's
//!   Duration includes the extensions' post-processing.
//! - **Shutdown.** `SHUTDOWN` (reason `spindown`) goes to the extensions
//!   registered for it before the runtime gets SIGTERM; with external
//!   extensions the phase may last up to 2,000 ms, then everything left is
//!   killed.
//!
//! Errors follow the Lambda runtime interface emulator: 403 with
//! `Extension.InvalidExtensionName`, `Extension.RegistrationClosed`,
//! `Extension.UnknownExtensionIdentifier`, `Extension.InvalidExtensionState`,
//! `Extension.MissingHeader`, `Extension.TooManyExtensions`,
//! `Extension.InvalidEventType` or `InvalidRequestFormat`; an extension that
//! fails during init fails the init with `Extension.InitError`,
//! `Extension.ExitError`, `Extension.Crash` or `Extension.LaunchError`.
//!
//! ## Output
//!
//! Extensions' stdout and stderr go to the function's log stream as on AWS.
//! The launcher reads them and writes each line to the environment's output
//! prefixed with [`EXT_LINE_MARKER`], which the server strips; it tells
//! extension lines (Telemetry API type `extension`) from the function's
//! (type `function`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::env::{Environment, InitOutcome, Invocation, LogSink, Outcome};
use crate::telemetry::Telemetry;

/// argv[1] that makes the `stratus` binary run as the extensions launcher.
pub const LAUNCHER_ARG: &str = "__lambda-extensions";

/// Prefix of an extension's output line on the environment's stdout.
pub const EXT_LINE_MARKER: &str = "\u{1e}x\u{1f}";

/// At most 10 extensions per function ("You can register up to 10
/// extensions for a function").
pub const MAX_EXTENSIONS: usize = 10;

/// Limit of the Shutdown phase with external extensions: 2,000 ms.
pub const SHUTDOWN_BUDGET: Duration = Duration::from_millis(2000);

/// Environment variables an extension does not see (they belong to the
/// runtime process).
pub const RUNTIME_ONLY_VARS: &[&str] = &[
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_XRAY_CONTEXT_MISSING",
    "AWS_XRAY_DAEMON_ADDRESS",
    "LAMBDA_RUNTIME_DIR",
    "LAMBDA_TASK_ROOT",
    "_AWS_XRAY_DAEMON_ADDRESS",
    "_AWS_XRAY_DAEMON_PORT",
    "_HANDLER",
];

/// What the Extensions and Telemetry APIs of an environment need to know.
#[derive(Debug, Clone, Default)]
pub struct ExtensionsSpec {
    /// File names of the external extensions the launcher starts (the
    /// executables in `/opt/extensions`); empty without extensions.
    pub external: Vec<String>,
    /// `functionName` of the register response.
    pub function_name: String,
    /// `functionVersion` (`$LATEST` or `N`).
    pub function_version: String,
    /// `handler`.
    pub handler: String,
    /// `accountId` (sent when the extension accepts the `accountId` feature).
    pub account_id: String,
    /// `on-demand` or `provisioned-concurrency` (Telemetry API init events).
    pub initialization_type: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Init,
    Invoke,
    Shutdown,
}

struct Ext {
    id: String,
    name: String,
    external: bool,
    events: Vec<String>,
    queue: VecDeque<Value>,
    /// Holds an event (or has just registered) and has not called `next` since.
    busy: bool,
    /// `InitError` or `ExitError` once reported.
    failed: Option<&'static str>,
    exited: bool,
    wake: Arc<Notify>,
}

impl Ext {
    fn alive(&self) -> bool {
        self.failed.is_none() && !self.exited
    }
}

struct ExtState {
    phase: Phase,
    exts: Vec<Ext>,
    /// The init failure reported (error type, message).
    failure: Option<(String, String)>,
    /// An extension failed after init: the environment must not be reused.
    crashed: bool,
    /// External extensions that exited or failed to launch before registering.
    gone_early: Vec<String>,
    /// The invocation in progress: request id and when it was handed over.
    invoke: Option<(String, Instant)>,
}

type InitErrorFn = Box<dyn Fn(String, Bytes) + Send + Sync>;

/// The Extensions API state of one environment.
pub struct Extensions {
    spec: ExtensionsSpec,
    state: Mutex<ExtState>,
    changed: Notify,
    init_error: InitErrorFn,
    pub(crate) telemetry: Telemetry,
}

fn uuid() -> String {
    let h = stratus_core::hex32();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn error(status: StatusCode, error_type: &str, msg: &str) -> Response {
    let body = json!({"errorMessage": msg, "errorType": error_type}).to_string();
    (status, [("content-type", "application/json")], body).into_response()
}

fn forbidden(error_type: &str, msg: &str) -> Response {
    error(StatusCode::FORBIDDEN, error_type, msg)
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        [("content-type", "application/json")],
        "{\"status\":\"OK\"}",
    )
        .into_response()
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn error_body(error_type: &str, msg: &str) -> Bytes {
    Bytes::from(json!({"errorType": error_type, "errorMessage": msg}).to_string())
}

impl Extensions {
    /// A fresh state; `init_error` reports an extension's init failure to the
    /// environment (it ends the init phase with that error).
    pub(crate) fn new(
        spec: ExtensionsSpec,
        init_error: impl Fn(String, Bytes) + Send + Sync + 'static,
    ) -> Arc<Extensions> {
        let telemetry = Telemetry::new(!spec.external.is_empty());
        telemetry.platform(
            "platform.initStart",
            json!({
                "initializationType": spec.initialization_type,
                "phase": "init",
                "functionName": spec.function_name,
                "functionVersion": spec.function_version,
            }),
        );
        Arc::new(Extensions {
            spec,
            state: Mutex::new(ExtState {
                phase: Phase::Init,
                exts: Vec::new(),
                failure: None,
                crashed: false,
                gone_early: Vec::new(),
                invoke: None,
            }),
            changed: Notify::new(),
            init_error: Box::new(init_error),
            telemetry,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ExtState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The name of a registered extension by its identifier.
    pub(crate) fn name_of(&self, id: &str) -> Option<String> {
        self.lock()
            .exts
            .iter()
            .find(|e| e.id == id)
            .map(|e| e.name.clone())
    }

    /// True once an extension has failed or exited after init.
    pub fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Records an init failure once and reports it to the environment.
    fn fail_init(&self, st: &mut ExtState, error_type: &str, msg: String) {
        if st.failure.is_none() && st.phase == Phase::Init {
            st.failure = Some((error_type.to_string(), msg.clone()));
            (self.init_error)(error_type.to_string(), error_body(error_type, &msg));
        }
    }

    fn all_registered(&self, st: &ExtState) -> bool {
        self.spec.external.iter().all(|n| {
            st.exts.iter().any(|e| e.external && &e.name == n) || st.gone_early.contains(n)
        })
    }
}

// ------------------------------------------------------------------ handlers

/// The `/2020-01-01` routes (nested under that prefix).
pub(crate) fn extension_api(ext: Arc<Extensions>) -> Router {
    Router::new()
        .route("/extension/register", post(register))
        .route("/extension/event/next", get(next))
        .route("/extension/init/error", post(init_error))
        .route("/extension/exit/error", post(exit_error))
        .route("/extension/_stratus/ready", get(launcher_ready))
        .route("/extension/_stratus/exited", post(launcher_exited))
        .with_state(ext)
}

/// The `/2022-07-01` routes (nested under that prefix).
pub(crate) fn telemetry_api(ext: Arc<Extensions>) -> Router {
    Router::new()
        .route("/telemetry", put(subscribe))
        .route("/telemetry/", put(subscribe))
        .with_state(ext)
}

async fn register(State(x): State<Arc<Extensions>>, h: HeaderMap, body: Bytes) -> Response {
    let Some(name) = header(&h, "lambda-extension-name").map(str::to_string) else {
        return forbidden("Extension.InvalidExtensionName", "Empty extension name");
    };
    let events: Vec<String> = if body.iter().all(u8::is_ascii_whitespace) {
        Vec::new()
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) if v.is_object() => {
                if v.get("configurationKeys")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty())
                {
                    return forbidden(
                        "InvalidRequestFormat",
                        "configurationKeys are deprecated; use environment variables instead",
                    );
                }
                match v.get("events") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(a)) if a.iter().all(Value::is_string) => a
                        .iter()
                        .filter_map(|e| e.as_str().map(str::to_string))
                        .collect(),
                    Some(_) => {
                        return forbidden(
                            "InvalidRequestFormat",
                            "events must be an array of strings",
                        );
                    }
                }
            }
            Ok(_) => return forbidden("InvalidRequestFormat", "the body must be a JSON object"),
            Err(e) => return forbidden("InvalidRequestFormat", &e.to_string()),
        }
    };
    let external = x.spec.external.contains(&name);
    for e in &events {
        match e.as_str() {
            "INVOKE" => {}
            "SHUTDOWN" if external => {}
            "SHUTDOWN" => {
                return forbidden(
                    "Extension.InvalidEventType",
                    "SHUTDOWN: internal extensions are not permitted to register for the Shutdown event",
                );
            }
            other => {
                return forbidden(
                    "Extension.InvalidEventType",
                    &format!("{other}: unknown event type (valid: INVOKE, SHUTDOWN)"),
                );
            }
        }
    }
    let id = uuid();
    {
        let mut st = x.lock();
        if st.phase != Phase::Init {
            return forbidden(
                "Extension.RegistrationClosed",
                "Extension registration closed already",
            );
        }
        if st.exts.iter().any(|e| e.name == name) {
            let msg = if external {
                format!(
                    "State transition from Registered to Registered failed for extension {name}. Error: the extension is registered already"
                )
            } else {
                "Extension with this name already registered".to_string()
            };
            return forbidden("Extension.InvalidExtensionState", &msg);
        }
        if st.exts.len() >= MAX_EXTENSIONS {
            return forbidden(
                "Extension.TooManyExtensions",
                &format!("Extension limit ({MAX_EXTENSIONS}) reached"),
            );
        }
        st.exts.push(Ext {
            id: id.clone(),
            name: name.clone(),
            external,
            events,
            queue: VecDeque::new(),
            busy: true,
            failed: None,
            exited: false,
            wake: Arc::new(Notify::new()),
        });
    }
    x.changed.notify_waiters();
    let mut out = json!({
        "functionName": x.spec.function_name,
        "functionVersion": x.spec.function_version,
        "handler": x.spec.handler,
    });
    if header(&h, "lambda-extension-accept-feature").is_some_and(|f| {
        f.split(',')
            .any(|s| s.trim().eq_ignore_ascii_case("accountId"))
    }) {
        out["accountId"] = json!(x.spec.account_id);
    }
    let mut r = (
        StatusCode::OK,
        [("content-type", "application/json")],
        out.to_string(),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&id) {
        r.headers_mut().insert("lambda-extension-identifier", v);
    }
    r
}

/// The extension identifier of a request, or the error answer.
#[allow(clippy::result_large_err)]
fn ext_id(h: &HeaderMap) -> Result<String, Response> {
    header(h, "lambda-extension-identifier")
        .map(str::to_string)
        .ok_or_else(|| {
            forbidden(
                "Extension.MissingHeader",
                "Missing Lambda-Extension-Identifier header",
            )
        })
}

fn state_name(e: &Ext) -> &'static str {
    if e.exited {
        "Exited"
    } else if let Some(f) = e.failed {
        f
    } else if e.busy {
        "Registered"
    } else {
        "Ready"
    }
}

async fn next(State(x): State<Arc<Extensions>>, h: HeaderMap) -> Response {
    let id = match ext_id(&h) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let wake = {
        let mut st = x.lock();
        let Some(e) = st.exts.iter_mut().find(|e| e.id == id) else {
            return forbidden(
                "Extension.UnknownExtensionIdentifier",
                &format!("Unknown extension {id}"),
            );
        };
        if !e.alive() {
            return forbidden(
                "Extension.InvalidExtensionState",
                &format!(
                    "State transition from {} to Ready failed for extension {id}. Error: the extension has reported an error",
                    state_name(e)
                ),
            );
        }
        e.busy = false;
        e.wake.clone()
    };
    x.changed.notify_waiters();
    loop {
        {
            let mut st = x.lock();
            let Some(e) = st.exts.iter_mut().find(|e| e.id == id) else {
                return forbidden(
                    "Extension.UnknownExtensionIdentifier",
                    &format!("Unknown extension {id}"),
                );
            };
            if let Some(ev) = e.queue.pop_front() {
                e.busy = true;
                drop(st);
                x.changed.notify_waiters();
                let mut r = (
                    StatusCode::OK,
                    [("content-type", "application/json")],
                    ev.to_string(),
                )
                    .into_response();
                if let Ok(v) = HeaderValue::from_str(&uuid()) {
                    r.headers_mut()
                        .insert("lambda-extension-event-identifier", v);
                }
                if let Ok(v) = HeaderValue::from_str(&id) {
                    r.headers_mut().insert("lambda-extension-identifier", v);
                }
                return r;
            }
        }
        wake.notified().await;
    }
}

async fn report_error(x: Arc<Extensions>, h: HeaderMap, body: Bytes, exit: bool) -> Response {
    let id = match ext_id(&h) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let Some(error_type) = header(&h, "lambda-extension-function-error-type").map(str::to_string)
    else {
        return forbidden(
            "Extension.MissingHeader",
            "Missing Lambda-Extension-Function-Error-Type header",
        );
    };
    let target = if exit { "ExitError" } else { "InitError" };
    {
        let mut st = x.lock();
        let phase = st.phase;
        let Some(e) = st.exts.iter_mut().find(|e| e.id == id) else {
            return forbidden(
                "Extension.UnknownExtensionIdentifier",
                &format!("Unknown {}", "Lambda-Extension-Identifier"),
            );
        };
        if (!exit && phase != Phase::Init) || e.exited || e.failed.is_some() {
            return forbidden(
                "Extension.InvalidExtensionState",
                &format!(
                    "State transition from {} to {target} failed for extension {id}. Error: not allowed in this phase",
                    state_name(e)
                ),
            );
        }
        e.failed = Some(if exit { "ExitError" } else { "InitError" });
        e.busy = false;
        let name = e.name.clone();
        let detail = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("errorMessage")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        let msg = format!("RequestId: Error: extension {name} reported {error_type}{detail}");
        if phase == Phase::Init {
            let t = if exit {
                "Extension.ExitError"
            } else {
                "Extension.InitError"
            };
            x.fail_init(&mut st, t, msg);
        } else if phase == Phase::Invoke {
            st.crashed = true;
        }
    }
    x.changed.notify_waiters();
    accepted()
}

async fn init_error(State(x): State<Arc<Extensions>>, h: HeaderMap, body: Bytes) -> Response {
    report_error(x, h, body, false).await
}

async fn exit_error(State(x): State<Arc<Extensions>>, h: HeaderMap, body: Bytes) -> Response {
    report_error(x, h, body, true).await
}

/// The launcher polls this until every external extension has registered:
/// `ready`, `wait` (asked again at once) or `fail`.
async fn launcher_ready(State(x): State<Arc<Extensions>>) -> Response {
    let until = tokio::time::Instant::now() + Duration::from_millis(50);
    loop {
        let changed = x.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        {
            let st = x.lock();
            if st.failure.is_some() {
                return "fail".into_response();
            }
            if x.all_registered(&st) {
                return "ready".into_response();
            }
        }
        if tokio::time::timeout_at(until, changed).await.is_err() {
            return "wait".into_response();
        }
    }
}

/// The launcher reports an external extension that exited: body
/// `name\ndescription` (`exit code 0`, `exit status 2`, `signal: killed`,
/// `launch: <error>`).
async fn launcher_exited(State(x): State<Arc<Extensions>>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body);
    let (name, desc) = text.split_once('\n').unwrap_or((&text, "exited"));
    let (name, desc) = (name.trim().to_string(), desc.trim().to_string());
    {
        let mut st = x.lock();
        let phase = st.phase;
        let registered = st.exts.iter().position(|e| e.external && e.name == name);
        if let Some(i) = registered {
            st.exts[i].exited = true;
            st.exts[i].busy = false;
        } else if !st.gone_early.contains(&name) {
            st.gone_early.push(name.clone());
        }
        let failed = registered.and_then(|i| st.exts[i].failed);
        match phase {
            Phase::Shutdown => {}
            Phase::Init => {
                let t = if desc.starts_with("launch") {
                    "Extension.LaunchError"
                } else if failed == Some("InitError") {
                    "Extension.InitError"
                } else if failed == Some("ExitError") {
                    "Extension.ExitError"
                } else {
                    "Extension.Crash"
                };
                let msg = match desc.strip_prefix("launch: ") {
                    Some(m) => format!("RequestId: Error: {m}"),
                    None => format!("RequestId: Error: {desc}"),
                };
                x.fail_init(&mut st, t, msg);
            }
            Phase::Invoke => st.crashed = true,
        }
    }
    x.changed.notify_waiters();
    accepted()
}

async fn subscribe(State(x): State<Arc<Extensions>>, h: HeaderMap, body: Bytes) -> Response {
    let id = match ext_id(&h) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let Some(name) = x.name_of(&id) else {
        return forbidden(
            "Extension.UnknownExtensionIdentifier",
            &format!("Unknown extension {id}"),
        );
    };
    match x.telemetry.subscribe(&id, &name, &body) {
        Ok(()) => (
            StatusCode::OK,
            [("content-type", "application/json")],
            "\"OK\"",
        )
            .into_response(),
        Err(msg) => error(StatusCode::BAD_REQUEST, "ValidationError", &msg),
    }
}

// ------------------------------------------------------------------ log tap

/// The sink the environment's output readers write to: strips the
/// extension marker, stores the line, and feeds the Telemetry API.
pub(crate) struct Tap {
    pub(crate) inner: Arc<dyn LogSink>,
    pub(crate) ext: Arc<Extensions>,
}

impl LogSink for Tap {
    fn line(&self, timestamp_ms: i64, line: &str) {
        match line.strip_prefix(EXT_LINE_MARKER) {
            Some(rest) => {
                self.inner.line(timestamp_ms, rest);
                self.ext.telemetry.log("extension", timestamp_ms, rest);
            }
            None => {
                self.inner.line(timestamp_ms, line);
                self.ext.telemetry.log("function", timestamp_ms, line);
            }
        }
    }
}

/// A line as the tail capture (`LogType: Tail`) shows it: without the
/// extension marker.
pub(crate) fn visible(line: &str) -> &str {
    line.strip_prefix(EXT_LINE_MARKER).unwrap_or(line)
}

// ------------------------------------------------------------------ environment hooks

impl Environment {
    /// Ends the init phase once every registered extension has called
    /// `next` (the runtime has already): `Ok` then, or how the init failed
    /// (an extension's error, the runtime's exit, `deadline`).
    pub(crate) async fn extensions_init_done(
        &self,
        deadline: tokio::time::Instant,
    ) -> Result<(), InitOutcome> {
        let x = self.extensions();
        loop {
            let changed = x.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut st = x.lock();
                if let Some((t, m)) = st.failure.clone() {
                    drop(st);
                    self.kill();
                    return Err(InitOutcome::Error {
                        error_type: t.clone(),
                        body: error_body(&t, &m),
                    });
                }
                if x.all_registered(&st) && st.exts.iter().all(|e| !e.busy || !e.alive()) {
                    st.phase = Phase::Invoke;
                    let ready: Vec<(String, Vec<String>)> = st
                        .exts
                        .iter()
                        .map(|e| (e.name.clone(), e.events.clone()))
                        .collect();
                    drop(st);
                    for (name, events) in ready {
                        // AWS's log line per extension at the end of init.
                        self.platform_line(&format!(
                            "EXTENSION\tName: {name}\tState: Ready\tEvents: [{}]",
                            events.join(",")
                        ));
                        x.telemetry.platform(
                            "platform.extension",
                            json!({"name": name, "state": "Ready", "events": events}),
                        );
                    }
                    let ms = self.started.elapsed().as_secs_f64() * 1000.0;
                    let kind = &x.spec.initialization_type;
                    x.telemetry.platform(
                        "platform.initRuntimeDone",
                        json!({"initializationType": kind, "phase": "init", "status": "success"}),
                    );
                    x.telemetry.platform(
                        "platform.initReport",
                        json!({
                            "initializationType": kind,
                            "phase": "init",
                            "status": "success",
                            "metrics": {"durationMs": round2(ms)},
                        }),
                    );
                    x.telemetry.end_init();
                    return Ok(());
                }
            }
            if self.is_dead() {
                return Err(InitOutcome::Exited("runtime exited during init".into()));
            }
            let wake = deadline.min(tokio::time::Instant::now() + Duration::from_millis(50));
            let _ = tokio::time::timeout_at(wake, changed).await;
            if tokio::time::Instant::now() >= deadline {
                self.kill();
                return Err(InitOutcome::Timeout);
            }
        }
    }

    /// Sends `INVOKE` to the extensions registered for it and
    /// `platform.start` to Telemetry API subscribers.
    pub(crate) fn extensions_invoke(&self, inv: &Invocation) {
        let x = self.extensions();
        {
            let mut st = x.lock();
            st.invoke = Some((inv.request_id.clone(), Instant::now()));
            if st.exts.is_empty() && !x.telemetry.active() {
                return;
            }
            let event = json!({
                "eventType": "INVOKE",
                "deadlineMs": inv.deadline_ms,
                "requestId": inv.request_id,
                "invokedFunctionArn": inv.invoked_function_arn,
                "tracing": {"type": "X-Amzn-Trace-Id", "value": inv.trace_id},
            });
            for e in st.exts.iter_mut() {
                if e.alive() && e.events.iter().any(|v| v == "INVOKE") {
                    e.queue.push_back(event.clone());
                    e.wake.notify_one();
                }
            }
        }
        x.telemetry.platform(
            "platform.start",
            json!({
                "requestId": inv.request_id,
                "version": x.spec.function_version,
                "tracing": {"type": "X-Amzn-Trace-Id", "value": inv.trace_id},
            }),
        );
    }

    /// After the runtime's answer: `platform.runtimeDone`, then waits until
    /// every extension has called `next` again (until `deadline`, after
    /// which the environment is killed and the invocation timed out).
    pub(crate) async fn extensions_invoke_done(
        &self,
        outcome: Outcome,
        deadline: tokio::time::Instant,
    ) -> Outcome {
        let x = self.extensions();
        if !x.telemetry.active() && x.lock().exts.is_empty() {
            return outcome;
        }
        let (request_id, took) = match x.lock().invoke.clone() {
            Some((id, t)) => (id, t.elapsed()),
            None => (String::new(), Duration::ZERO),
        };
        let (status, produced, error_type) = match &outcome {
            Outcome::Response(b) => ("success", b.len(), None),
            Outcome::FunctionError { error_type, body } => {
                ("failure", body.len(), Some(error_type.clone()))
            }
            Outcome::ResponseTooLarge(n) => (
                "failure",
                *n,
                Some("Function.ResponseSizeTooLarge".to_string()),
            ),
            _ => ("error", 0, None),
        };
        let mut record = json!({
            "requestId": request_id,
            "status": status,
            "metrics": {
                "durationMs": round2(took.as_secs_f64() * 1000.0),
                "producedBytes": produced,
            },
        });
        if let Some(t) = error_type {
            record["errorType"] = json!(t);
        }
        x.telemetry.platform("platform.runtimeDone", record);
        loop {
            let changed = x.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let st = x.lock();
                if st
                    .exts
                    .iter()
                    .all(|e| !e.alive() || (!e.busy && e.queue.is_empty()))
                {
                    return outcome;
                }
            }
            if self.is_dead() {
                return Outcome::Exited("runtime is not running".into());
            }
            let wake = deadline.min(tokio::time::Instant::now() + Duration::from_millis(100));
            let _ = tokio::time::timeout_at(wake, changed).await;
            if tokio::time::Instant::now() >= deadline {
                self.kill();
                return Outcome::Timeout;
            }
        }
    }

    /// Starts the Shutdown phase for the extensions: pending telemetry is
    /// delivered, then `SHUTDOWN` goes to the extensions registered for it.
    /// Returns how long the phase may last: `grace`, or
    /// [`SHUTDOWN_BUDGET`] with such extensions.
    pub(crate) async fn extensions_shutdown(&self, grace: Duration) -> Duration {
        let x = self.extensions();
        let targets = {
            let mut st = x.lock();
            st.phase = Phase::Shutdown;
            st.exts
                .iter()
                .filter(|e| e.alive() && e.events.iter().any(|v| v == "SHUTDOWN"))
                .count()
        };
        x.telemetry
            .flush(Duration::from_millis(if targets > 0 { 300 } else { 50 }))
            .await;
        if targets == 0 {
            return grace;
        }
        let deadline_ms = stratus_core::time::now_ms() + SHUTDOWN_BUDGET.as_millis() as i64;
        {
            let mut st = x.lock();
            let event = json!({
                "eventType": "SHUTDOWN",
                "shutdownReason": "spindown",
                "deadlineMs": deadline_ms,
            });
            for e in st.exts.iter_mut() {
                if e.alive() && e.events.iter().any(|v| v == "SHUTDOWN") {
                    e.queue.push_back(event.clone());
                    e.wake.notify_one();
                }
            }
        }
        grace.max(SHUTDOWN_BUDGET)
    }

    /// Delivers buffered telemetry before the environment is frozen ("Lambda
    /// freezes the execution environment when each process has completed and
    /// there are no pending events"), waiting at most 500 ms.
    pub(crate) async fn extensions_settle(&self) {
        let x = self.extensions();
        if x.telemetry.active() {
            x.telemetry.flush(Duration::from_millis(500)).await;
        }
    }

    /// `platform.report` for the Telemetry API: the REPORT line's metrics.
    #[allow(clippy::too_many_arguments)]
    pub fn telemetry_report(
        &self,
        request_id: &str,
        status: &str,
        error_type: Option<&str>,
        duration_ms: f64,
        memory_mb: u32,
        max_memory_used_mb: u64,
        init_duration_ms: Option<f64>,
    ) {
        let x = self.extensions();
        if !x.telemetry.active() {
            return;
        }
        let mut metrics = json!({
            "durationMs": round2(duration_ms),
            "billedDurationMs": duration_ms.ceil().max(1.0) as u64,
            "memorySizeMB": memory_mb,
            "maxMemoryUsedMB": max_memory_used_mb,
        });
        if let Some(i) = init_duration_ms {
            metrics["initDurationMs"] = json!(round2(i));
        }
        let mut record = json!({
            "requestId": request_id,
            "status": status,
            "metrics": metrics,
        });
        if let Some(t) = error_type {
            record["errorType"] = json!(t);
        }
        x.telemetry.platform("platform.report", record);
    }

    /// True if an extension failed or exited after init (the environment
    /// must not be reused).
    pub fn extension_crashed(&self) -> bool {
        self.extensions().crashed()
    }
}

fn round2(ms: f64) -> f64 {
    (ms * 100.0).round() / 100.0
}

// ------------------------------------------------------------------ launcher

pub use crate::launcher::launcher_main;

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(external: &[&str]) -> ExtensionsSpec {
        ExtensionsSpec {
            external: external.iter().map(|s| s.to_string()).collect(),
            function_name: "f".into(),
            function_version: "$LATEST".into(),
            handler: "app.handler".into(),
            account_id: "123456789012".into(),
            initialization_type: "on-demand".into(),
        }
    }

    #[test]
    fn uuids_look_like_uuids() {
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(u.matches('-').count(), 4);
    }

    #[test]
    fn registration_waits_for_every_external_extension() {
        let x = Extensions::new(spec(&["a", "b"]), |_, _| {});
        let st = x.lock();
        assert!(!x.all_registered(&st));
    }

    #[test]
    fn marker_is_stripped() {
        assert_eq!(visible(&format!("{EXT_LINE_MARKER}hello")), "hello");
        assert_eq!(visible("plain"), "plain");
    }
}
