//! One execution environment: a runtime process tree plus its own Runtime API
//! endpoint (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>).
//!
//! Each environment listens on its own loopback port, so the runtime client
//! inside finds it through `AWS_LAMBDA_RUNTIME_API=127.0.0.1:<port>` exactly as
//! on AWS. The environment serves one invocation at a time.

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as AxPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::mpsc;

use crate::cgroup::{EnvCgroup, Limits, PIDS_MAX};
use crate::isolation::{INIT_ARG, InitConfig, Isolation, IsolationSpec};

/// How long an idle environment runs on after its runtime is back in
/// `/invocation/next` before it is frozen.
pub const FREEZE_DELAY: Duration = Duration::from_millis(10);

/// Environments whose resources (process tree, cgroup) are not yet all
/// released, in this server process.
static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Number of environments started and not yet fully cleaned up.
pub fn live_environments() -> usize {
    LIVE.load(Ordering::SeqCst)
}

/// AWS's limit on a synchronous response payload: 6 MB plus 100 bytes
/// (6,291,556 bytes, the figure AWS's `Function.ResponseSizeTooLarge` error names).
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024 + 100;

/// Longest log line kept as one event; longer lines are split (CloudWatch
/// Logs' 256 KB event limit).
pub const MAX_LOG_LINE: usize = 256 * 1024;

/// Where an environment's output goes.
pub trait LogSink: Send + Sync + 'static {
    /// One line (or one record) printed by the environment, with its time in
    /// ms since the epoch.
    fn line(&self, timestamp_ms: i64, line: &str);
}

/// What starts an environment.
#[derive(Debug, Clone, Default)]
pub struct EnvSpec {
    /// Program and arguments of the runtime process.
    pub command: Vec<String>,
    /// Working directory (`LAMBDA_TASK_ROOT`).
    pub cwd: PathBuf,
    /// Environment variables of the runtime process (the Runtime API address
    /// is added by [`Environment::start`]).
    pub vars: Vec<(String, String)>,
    /// Isolation mode, limits and root view (see [`crate::isolation`]). In
    /// `namespace` mode `command`, `cwd` and `vars` are as seen inside.
    pub isolation: IsolationSpec,
    /// Extensions API and Telemetry API settings (see [`crate::extensions`]).
    pub extensions: crate::extensions::ExtensionsSpec,
}

/// One invocation handed to the runtime through `/invocation/next`.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// `Lambda-Runtime-Aws-Request-Id`.
    pub request_id: String,
    /// The event (JSON bytes, passed through unchanged).
    pub payload: Bytes,
    /// `Lambda-Runtime-Deadline-Ms`: deadline in ms since the epoch.
    pub deadline_ms: i64,
    /// `Lambda-Runtime-Invoked-Function-Arn`.
    pub invoked_function_arn: String,
    /// `Lambda-Runtime-Trace-Id` (X-Ray header value).
    pub trace_id: String,
    /// `Lambda-Runtime-Client-Context`: the decoded client context JSON.
    pub client_context: Option<String>,
    /// `Lambda-Runtime-Cognito-Identity` JSON.
    pub cognito_identity: Option<String>,
}

/// How an invocation ended, as seen from the Runtime API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `/invocation/{id}/response` with this body.
    Response(Bytes),
    /// `/invocation/{id}/error`: `Lambda-Runtime-Function-Error-Type` and body.
    FunctionError { error_type: String, body: Bytes },
    /// The response was larger than [`MAX_RESPONSE_BYTES`] (its size).
    ResponseTooLarge(usize),
    /// The deadline passed; the environment has been killed.
    Timeout,
    /// The runtime process exited (its exit description, e.g. `exit status 1`).
    Exited(String),
}

/// How the init phase ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitOutcome {
    /// The runtime asked for its first invocation.
    Ready,
    /// `/init/error`: error type and body.
    Error { error_type: String, body: Bytes },
    /// The runtime exited before asking for work.
    Exited(String),
    /// Init took longer than the limit; the environment has been killed.
    Timeout,
}

enum Signal {
    Next,
    InitError {
        error_type: String,
        body: Bytes,
    },
    Response {
        id: String,
        body: Bytes,
    },
    TooLarge {
        id: String,
        size: usize,
    },
    Error {
        id: String,
        error_type: String,
        body: Bytes,
    },
    Exited(String),
}

struct Shared {
    signals: mpsc::UnboundedSender<Signal>,
    work: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    current: Mutex<Option<String>>,
    /// The runtime is blocked in `/invocation/next` waiting for work.
    waiting: AtomicBool,
    waiting_changed: tokio::sync::Notify,
    /// Extensions API and Telemetry API state.
    ext: Arc<crate::extensions::Extensions>,
}

/// An environment's cgroup and what was last read from it.
struct CgState {
    cg: EnvCgroup,
    peak_kb: AtomicU64,
    oom_kills: AtomicU64,
    usage: Mutex<Usage>,
}

impl CgState {
    fn refresh(&self) {
        if let Some(b) = self.cg.peak_bytes() {
            self.peak_kb.fetch_max(b / 1024, Ordering::SeqCst);
        }
        if let Some(n) = self.cg.oom_kills() {
            self.oom_kills.fetch_max(n, Ordering::SeqCst);
        }
    }
}

/// Busy/idle and frozen state (freezing happens only while idle).
#[derive(Default)]
struct Usage {
    busy: bool,
    frozen: bool,
    generation: u64,
}

/// A running execution environment.
pub struct Environment {
    /// 32-hex id, also the suffix of the log stream name.
    pub id: String,
    /// `127.0.0.1:<port>` of this environment's Runtime API.
    pub runtime_api: String,
    pid: AtomicI32,
    peak_kb: AtomicU64,
    work_tx: mpsc::Sender<Invocation>,
    signals: tokio::sync::Mutex<mpsc::UnboundedReceiver<Signal>>,
    shared: Arc<Shared>,
    dead: Arc<AtomicBool>,
    tail: Arc<Mutex<Option<Vec<u8>>>>,
    sink: Arc<dyn LogSink>,
    pipes: Vec<i32>,
    /// Held by an output reader while it turns bytes it read into lines.
    io: Arc<tokio::sync::Mutex<()>>,
    server: tokio::task::JoinHandle<()>,
    /// When the environment was started.
    pub started: Instant,
    cg: Option<Arc<CgState>>,
    mode: Isolation,
}

fn header(h: &mut HeaderMap, name: &'static str, v: &str) {
    if let Ok(v) = HeaderValue::from_str(v) {
        h.insert(name, v);
    }
}

fn api_error(status: StatusCode, error_type: &str, msg: &str) -> Response {
    let body = serde_json::json!({"errorMessage": msg, "errorType": error_type}).to_string();
    (status, [("content-type", "application/json")], body).into_response()
}

async fn next(State(s): State<Arc<Shared>>) -> Response {
    let _ = s.signals.send(Signal::Next);
    s.waiting.store(true, Ordering::SeqCst);
    s.waiting_changed.notify_waiters();
    let inv = {
        let mut rx = s.work.lock().await;
        let got = rx.recv().await;
        s.waiting.store(false, Ordering::SeqCst);
        match got {
            Some(inv) => inv,
            None => {
                return api_error(
                    StatusCode::GONE,
                    "EnvironmentShutdown",
                    "environment is shutting down",
                );
            }
        }
    };
    *s.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(inv.request_id.clone());
    let mut h = HeaderMap::new();
    header(&mut h, "content-type", "application/json");
    header(&mut h, "lambda-runtime-aws-request-id", &inv.request_id);
    header(
        &mut h,
        "lambda-runtime-deadline-ms",
        &inv.deadline_ms.to_string(),
    );
    header(
        &mut h,
        "lambda-runtime-invoked-function-arn",
        &inv.invoked_function_arn,
    );
    header(&mut h, "lambda-runtime-trace-id", &inv.trace_id);
    if let Some(cc) = &inv.client_context {
        header(&mut h, "lambda-runtime-client-context", cc);
    }
    if let Some(ci) = &inv.cognito_identity {
        header(&mut h, "lambda-runtime-cognito-identity", ci);
    }
    (StatusCode::OK, h, inv.payload).into_response()
}

fn is_current(s: &Shared, id: &str) -> bool {
    s.current
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_deref()
        == Some(id)
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        [("content-type", "application/json")],
        "{\"status\":\"OK\"}",
    )
        .into_response()
}

async fn response(
    State(s): State<Arc<Shared>>,
    AxPath(id): AxPath<String>,
    body: Bytes,
) -> Response {
    if !is_current(&s, &id) {
        return api_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            "Invalid request ID",
        );
    }
    *s.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
    if body.len() > MAX_RESPONSE_BYTES {
        let size = body.len();
        let _ = s.signals.send(Signal::TooLarge { id, size });
        return api_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            &format!("Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."),
        );
    }
    let _ = s.signals.send(Signal::Response { id, body });
    accepted()
}

fn error_type(h: &HeaderMap) -> String {
    h.get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
        .unwrap_or("Unhandled")
        .to_string()
}

async fn error(
    State(s): State<Arc<Shared>>,
    AxPath(id): AxPath<String>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    if !is_current(&s, &id) {
        return api_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            "Invalid request ID",
        );
    }
    *s.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
    let _ = s.signals.send(Signal::Error {
        id,
        error_type: error_type(&h),
        body,
    });
    accepted()
}

async fn init_error(State(s): State<Arc<Shared>>, h: HeaderMap, body: Bytes) -> Response {
    let _ = s.signals.send(Signal::InitError {
        error_type: error_type(&h),
        body,
    });
    accepted()
}

async fn not_found() -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        "InvalidRequest",
        "unknown Runtime API path",
    )
}

fn fionread(fd: i32) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int to the pointer we pass.
    let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    if rc < 0 { 0 } else { n }
}

/// Reads one output pipe of an environment and turns it into log lines.
///
/// The pipe is read with non-blocking `read(2)` under `io`, so
/// [`Environment::drain_output`] can take `io` and know that every byte that
/// has left the pipe has also reached the log (and the Tail capture).
fn spawn_reader(
    fd: std::os::fd::OwnedFd,
    sink: Arc<dyn LogSink>,
    tail: Arc<Mutex<Option<Vec<u8>>>>,
    io: Arc<tokio::sync::Mutex<()>>,
) {
    tokio::spawn(async move {
        // tokio's `into_owned_fd` hands the pipe back in blocking mode; a
        // blocking read would stall a runtime worker (and the whole server).
        // SAFETY: fcntl on the descriptor we own.
        unsafe {
            let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
            let fl = libc::fcntl(raw, libc::F_GETFL);
            libc::fcntl(raw, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        // SAFETY: the File owns the pipe's descriptor and lives inside the
        // AsyncFd until the registration is dropped with it.
        let Ok(afd) = (unsafe { tokio::io::unix::AsyncFd::register(std::fs::File::from(fd)) })
        else {
            return;
        };
        let mut pending: Vec<u8> = Vec::with_capacity(4096);
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let Ok(mut ready) = afd.readable().await else {
                break;
            };
            let _held = io.lock().await;
            let res = ready.try_io(|inner| {
                use std::io::Read;
                inner.get_ref().read(&mut chunk)
            });
            let n = match res {
                Err(_would_block) => continue,
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(Err(_)) | Ok(Ok(0)) => {
                    if !pending.is_empty() {
                        emit_line(&pending, &sink, &tail);
                    }
                    break;
                }
                Ok(Ok(n)) => n,
            };
            pending.extend_from_slice(&chunk[..n]);
            let mut start = 0;
            while let Some(pos) = pending[start..].iter().position(|b| *b == b'\n') {
                emit_line(&pending[start..start + pos], &sink, &tail);
                start += pos + 1;
            }
            pending.drain(..start);
            // A line longer than one log event is cut into events.
            while pending.len() >= MAX_LOG_LINE {
                emit_line(&pending[..MAX_LOG_LINE], &sink, &tail);
                pending.drain(..MAX_LOG_LINE);
            }
        }
    });
}

/// The Runtime API listener of one environment: sets TCP_NODELAY and, when
/// `allowed_uid` is set, drops connections whose client socket belongs to
/// another uid than the environment's (or root), so one environment cannot
/// take another's invocations.
struct PeerFilter {
    inner: tokio::net::TcpListener,
    port: u16,
    allowed_uid: Option<u32>,
}

impl axum::serve::Listener for PeerFilter {
    type Io = tokio::net::TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (tcp, peer) = axum::serve::Listener::accept(&mut self.inner).await;
            if let Some(uid) = self.allowed_uid {
                match crate::isolation::peer_uid(peer, self.port) {
                    Some(u) if u == uid || u == 0 => {}
                    other => {
                        tracing::warn!(
                            "refused a Runtime API connection from {peer} (uid {other:?}, environment uid {uid})"
                        );
                        continue;
                    }
                }
            }
            let _ = tcp.set_nodelay(true);
            return (tcp, peer);
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// One line of output: to the log sink, and to the Tail capture if active.
fn emit_line(raw: &[u8], sink: &Arc<dyn LogSink>, tail: &Arc<Mutex<Option<Vec<u8>>>>) {
    let ts = stratus_core::time::now_ms();
    for chunk in raw.chunks(MAX_LOG_LINE) {
        // Runtimes write a multi-line record as one line with `\r` for its
        // inner newlines (AWS's convention for stdout); the record is one log
        // event with real newlines.
        let line = String::from_utf8_lossy(chunk).replace('\r', "\n");
        if let Some(t) = tail.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            t.extend_from_slice(crate::extensions::visible(&line).as_bytes());
            t.push(b'\n');
        }
        sink.line(ts, &line);
    }
}

impl Environment {
    /// Binds a Runtime API port, spawns the runtime process (in its own
    /// process group, stdout/stderr captured line by line into `sink`) and
    /// returns at once; call [`Environment::wait_init`] next.
    ///
    /// Errors: the port cannot be bound or the process cannot be spawned
    /// (the message says which program).
    pub async fn start(
        spec: EnvSpec,
        id: String,
        sink: Arc<dyn LogSink>,
    ) -> std::io::Result<Environment> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let runtime_api = format!("127.0.0.1:{}", addr.port());
        let (sig_tx, sig_rx) = mpsc::unbounded_channel();
        let (work_tx, work_rx) = mpsc::channel(1);
        // An extension's init failure ends the init phase like the runtime's.
        let ext_tx = sig_tx.clone();
        let ext = crate::extensions::Extensions::new(spec.extensions.clone(), move |t, b| {
            let _ = ext_tx.send(Signal::InitError {
                error_type: t,
                body: b,
            });
        });
        let tap: Arc<dyn LogSink> = Arc::new(crate::extensions::Tap {
            inner: sink.clone(),
            ext: ext.clone(),
        });
        let shared = Arc::new(Shared {
            signals: sig_tx.clone(),
            work: tokio::sync::Mutex::new(work_rx),
            current: Mutex::new(None),
            waiting: AtomicBool::new(false),
            waiting_changed: tokio::sync::Notify::new(),
            ext: ext.clone(),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .nest_service("/2020-01-01", crate::extensions::extension_api(ext.clone()))
            .nest_service("/2022-07-01", crate::extensions::telemetry_api(ext))
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(MAX_RESPONSE_BYTES * 4))
            .with_state(shared.clone());
        // In namespace mode only the environment's own uid (and root, the
        // server's side) may talk to its Runtime API.
        let allowed_uid =
            (spec.isolation.mode == Isolation::Namespace).then_some(spec.isolation.uid);
        let listener = PeerFilter {
            inner: listener,
            port: addr.port(),
            allowed_uid,
        };
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });

        if spec.command.is_empty() {
            server.abort();
            return Err(std::io::Error::other("no runtime command"));
        }
        let iso = &spec.isolation;
        let cg = match &iso.cgroups {
            Some(root) => match root.create(
                &id,
                Limits {
                    memory_mb: iso.memory_mb.max(1),
                    pids_max: PIDS_MAX,
                },
            ) {
                Ok(cg) => Some(Arc::new(CgState {
                    cg,
                    peak_kb: AtomicU64::new(0),
                    oom_kills: AtomicU64::new(0),
                    usage: Mutex::new(Usage {
                        busy: true,
                        ..Usage::default()
                    }),
                })),
                Err(e) => {
                    server.abort();
                    return Err(e);
                }
            },
            None => None,
        };
        let namespace = iso.mode == Isolation::Namespace;
        let mut cmd = if namespace {
            // The sandbox helper (this binary) builds the namespaces and
            // execs the runtime; see crate::isolation.
            let mut c = tokio::process::Command::new("/proc/self/exe");
            c.arg(INIT_ARG)
                .current_dir("/")
                .env_clear()
                .stdin(std::process::Stdio::piped());
            c
        } else {
            let mut c = tokio::process::Command::new(&spec.command[0]);
            c.args(&spec.command[1..])
                .current_dir(&spec.cwd)
                .env_clear()
                .envs(spec.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .env("AWS_LAMBDA_RUNTIME_API", &runtime_api)
                .stdin(std::process::Stdio::null());
            c
        };
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        // Paths the child writes `0` to, to join the environment's cgroup
        // before it execs (built here: no allocation after fork).
        let join: Vec<std::ffi::CString> = cg
            .as_ref()
            .map(|c| {
                c.cg.procs_files()
                    .iter()
                    .filter_map(|p| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).ok())
                    .collect()
            })
            .unwrap_or_default();
        // The environment must not outlive the server, even when the server
        // is SIGKILLed: the kernel kills it when its parent goes away.
        // SAFETY: prctl, open, write and close are async-signal-safe and the
        // paths were allocated before fork.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                for p in &join {
                    let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let rc = libc::write(fd, b"0".as_ptr() as *const libc::c_void, 1);
                    libc::close(fd);
                    if rc != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                server.abort();
                if let Some(c) = &cg {
                    c.cg.try_destroy();
                }
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("{}: {e}", spec.command[0]),
                ));
            }
        };
        LIVE.fetch_add(1, Ordering::SeqCst);
        if namespace && let Some(mut stdin) = child.stdin.take() {
            let mut env = spec.vars.clone();
            env.retain(|(k, _)| k != "AWS_LAMBDA_RUNTIME_API");
            env.push(("AWS_LAMBDA_RUNTIME_API".into(), runtime_api.clone()));
            let cfg = InitConfig {
                root: iso.root_dir.clone(),
                mounts: iso.mounts.clone(),
                hostname: crate::isolation::HOSTNAME.into(),
                uid: iso.uid,
                gid: iso.uid,
                cwd: spec.cwd.clone(),
                command: spec.command.clone(),
                env,
                seccomp: true,
            };
            let json = serde_json::to_vec(&cfg).unwrap_or_default();
            use tokio::io::AsyncWriteExt;
            // The helper reads its configuration before anything else; if
            // it died instead, the exit is reported like any other.
            let _ = stdin.write_all(&json).await;
            drop(stdin);
        }
        let pid = child.id().map(|p| p as i32).unwrap_or(0);
        let tail = Arc::new(Mutex::new(None));
        let mut pipes = Vec::new();
        let io = Arc::new(tokio::sync::Mutex::new(()));
        if let Some(out) = child.stdout.take() {
            pipes.push(out.as_raw_fd());
            if let Ok(fd) = out.into_owned_fd() {
                spawn_reader(fd, tap.clone(), tail.clone(), io.clone());
            }
        }
        if let Some(err) = child.stderr.take() {
            pipes.push(err.as_raw_fd());
            if let Ok(fd) = err.into_owned_fd() {
                spawn_reader(fd, tap.clone(), tail.clone(), io.clone());
            }
        }
        let dead = Arc::new(AtomicBool::new(false));
        let dead2 = dead.clone();
        let cg2 = cg.clone();
        let api = server.abort_handle();
        tokio::spawn(async move {
            let status = child.wait().await;
            // Final memory figures before the cgroup goes away.
            if let Some(c) = &cg2 {
                c.refresh();
            }
            dead2.store(true, Ordering::SeqCst);
            let desc = match status {
                Ok(s) => describe_exit(s),
                Err(e) => e.to_string(),
            };
            // Reap whatever is left of the process group.
            if pid > 0 {
                // SAFETY: signalling a process group we created.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
            let _ = sig_tx.send(Signal::Exited(desc));
            // A dead runtime needs no Runtime API: release its listener now.
            api.abort();
            // Kill anything that left the process group and remove the
            // cgroup (processes may take a moment to exit).
            if let Some(c) = cg2 {
                for _ in 0..500 {
                    if c.cg.try_destroy() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            LIVE.fetch_sub(1, Ordering::SeqCst);
        });
        Ok(Environment {
            id,
            runtime_api,
            pid: AtomicI32::new(pid),
            peak_kb: AtomicU64::new(0),
            work_tx,
            signals: tokio::sync::Mutex::new(sig_rx),
            shared,
            dead,
            tail,
            sink,
            pipes,
            io,
            server,
            started: Instant::now(),
            cg,
            mode: iso.mode,
        })
    }

    /// The Extensions API and Telemetry API state.
    pub(crate) fn extensions(&self) -> &Arc<crate::extensions::Extensions> {
        &self.shared.ext
    }

    /// The runtime process id (its process group id too).
    pub fn pid(&self) -> i32 {
        self.pid.load(Ordering::SeqCst)
    }

    /// True once the runtime process has exited or been killed.
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    /// Waits for the init phase to end: the runtime's first `/next`, an
    /// `/init/error`, an exit, or `limit` passing (the environment is then
    /// killed).
    pub async fn wait_init(&self, limit: Duration) -> InitOutcome {
        let mut sig = self.signals.lock().await;
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, sig.recv()).await {
                Err(_) => {
                    self.kill();
                    return InitOutcome::Timeout;
                }
                Ok(None) => return InitOutcome::Exited("environment closed".into()),
                Ok(Some(Signal::Next)) => {
                    // Init ends when every registered extension is in `next` too.
                    if let Err(o) = self.extensions_init_done(deadline).await {
                        return o;
                    }
                    let _ = self.peak_rss_kb();
                    // Init runs unthrottled; invocations get the CPU share
                    // of the function's memory size.
                    if let Some(c) = &self.cg {
                        c.cg.limit_cpu();
                    }
                    return InitOutcome::Ready;
                }
                Ok(Some(Signal::InitError { error_type, body })) => {
                    // The runtime exits after reporting; make sure it does.
                    self.kill();
                    return InitOutcome::Error { error_type, body };
                }
                Ok(Some(Signal::Exited(d))) => return InitOutcome::Exited(d),
                Ok(Some(_)) => continue,
            }
        }
    }

    /// Starts capturing this environment's output for an invocation's
    /// `LogType: Tail`.
    pub fn begin_capture(&self) {
        *self.tail.lock().unwrap_or_else(|p| p.into_inner()) = Some(Vec::new());
    }

    /// Waits briefly until output written so far has been read, then stops
    /// capturing and returns what was captured.
    pub async fn end_capture(&self) -> Vec<u8> {
        self.drain_output().await;
        self.tail
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_default()
    }

    /// Gives the output readers a moment to consume bytes already in the
    /// pipes (at most ~20 ms), so log lines printed before a response are
    /// attributed to that invocation.
    pub async fn drain_output(&self) {
        for _ in 0..100 {
            if self.is_dead() {
                return;
            }
            {
                // Holding `io`, no reader is between a read and its log
                // lines: an empty pipe means everything printed is logged.
                let _held = self.io.lock().await;
                if self.pipes.iter().all(|fd| fionread(*fd) == 0) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }

    /// Writes a platform line (START, END, REPORT, ...) to the log, and to the
    /// capture if one is active.
    pub fn platform_line(&self, line: &str) {
        if let Some(t) = self.tail.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            t.extend_from_slice(line.as_bytes());
            t.push(b'\n');
        }
        self.sink.line(stratus_core::time::now_ms(), line);
    }

    /// Hands one invocation to the runtime and waits for its outcome until
    /// `deadline` (after which the environment is killed and
    /// [`Outcome::Timeout`] returned).
    pub async fn invoke(&self, inv: Invocation, deadline: tokio::time::Instant) -> Outcome {
        let mut sig = self.signals.lock().await;
        // Drop stale signals (a `/next` already counted, for instance).
        while let Ok(s) = sig.try_recv() {
            if let Signal::Exited(d) = s {
                return Outcome::Exited(d);
            }
        }
        if self.is_dead() {
            return Outcome::Exited("runtime is not running".into());
        }
        let id = inv.request_id.clone();
        self.extensions_invoke(&inv);
        match tokio::time::timeout_at(deadline, self.work_tx.send(inv)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Outcome::Exited("runtime is not running".into()),
            Err(_) => {
                self.kill();
                return Outcome::Timeout;
            }
        }
        loop {
            match tokio::time::timeout_at(deadline, sig.recv()).await {
                Err(_) => {
                    self.kill();
                    return Outcome::Timeout;
                }
                Ok(None) => return Outcome::Exited("environment closed".into()),
                // The invocation ends when the extensions are done too.
                Ok(Some(Signal::Response { id: rid, body })) if rid == id => {
                    let o = Outcome::Response(body);
                    return self.extensions_invoke_done(o, deadline).await;
                }
                Ok(Some(Signal::Error {
                    id: rid,
                    error_type,
                    body,
                })) if rid == id => {
                    let o = Outcome::FunctionError { error_type, body };
                    return self.extensions_invoke_done(o, deadline).await;
                }
                Ok(Some(Signal::TooLarge { id: rid, size })) if rid == id => {
                    let o = Outcome::ResponseTooLarge(size);
                    return self.extensions_invoke_done(o, deadline).await;
                }
                Ok(Some(Signal::Exited(d))) => return Outcome::Exited(d),
                Ok(Some(_)) => continue,
            }
        }
    }

    /// Peak resident memory of the runtime process in kB (`VmHWM`); after
    /// the process is gone, the last value read.
    pub fn peak_rss_kb(&self) -> Option<u64> {
        let read = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
            });
        if let Some(kb) = read {
            self.peak_kb.fetch_max(kb, Ordering::SeqCst);
        }
        match self.peak_kb.load(Ordering::SeqCst) {
            0 => None,
            kb => Some(kb),
        }
    }

    /// Max Memory Used in kB: the cgroup's peak when the environment has a
    /// cgroup (what AWS reports), else the runtime process's peak RSS.
    pub fn max_memory_used_kb(&self) -> Option<u64> {
        if let Some(c) = &self.cg {
            if !self.is_dead() {
                c.refresh();
            }
            match c.peak_kb.load(Ordering::SeqCst) {
                0 => {}
                kb => return Some(kb),
            }
        }
        self.peak_rss_kb()
    }

    /// True if the kernel's OOM killer killed a process of this environment
    /// (its cgroup reached the memory limit).
    pub fn oom_killed(&self) -> bool {
        match &self.cg {
            Some(c) => {
                if !self.is_dead() {
                    c.refresh();
                }
                c.oom_kills.load(Ordering::SeqCst) > 0
            }
            None => false,
        }
    }

    /// Memory the environment uses now, in bytes (cgroup usage, else RSS).
    pub fn memory_usage_bytes(&self) -> u64 {
        if let Some(b) = self.cg.as_ref().and_then(|c| c.cg.usage_bytes()) {
            return b;
        }
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    }

    /// The environment's cgroup directories (empty without cgroups).
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        self.cg
            .as_ref()
            .map(|c| c.cg.dirs().to_vec())
            .unwrap_or_default()
    }

    /// CPU time the environment has used, in ns (needs cgroups).
    pub fn cpu_usage_ns(&self) -> Option<u64> {
        self.cg.as_ref().and_then(|c| c.cg.cpu_usage_ns())
    }

    /// `process` or `namespace`.
    pub fn isolation(&self) -> Isolation {
        self.mode
    }

    /// True while the environment's cgroup is frozen (idle).
    pub fn is_frozen(&self) -> bool {
        self.cg
            .as_ref()
            .is_some_and(|c| c.usage.lock().unwrap_or_else(|p| p.into_inner()).frozen)
    }

    fn thaw_now(&self) {
        if let Some(c) = &self.cg {
            let mut u = c.usage.lock().unwrap_or_else(|p| p.into_inner());
            let _ = c.cg.thaw();
            u.frozen = false;
        }
    }

    /// Marks the environment in use (an invocation is about to be handed
    /// to it) and thaws it if it is frozen: one write to the freezer.
    pub fn begin_use(&self) {
        let Some(c) = &self.cg else {
            return;
        };
        let mut u = c.usage.lock().unwrap_or_else(|p| p.into_inner());
        u.busy = true;
        u.generation += 1;
        if u.frozen {
            let _ = c.cg.thaw();
            u.frozen = false;
        }
    }

    /// Marks the environment idle; returns a token for
    /// [`Environment::freeze_when_idle`].
    pub fn end_use(&self) -> u64 {
        let Some(c) = &self.cg else {
            return 0;
        };
        let mut u = c.usage.lock().unwrap_or_else(|p| p.into_inner());
        u.busy = false;
        u.generation += 1;
        u.generation
    }

    /// True if the environment can be frozen (it has a freezer cgroup).
    pub fn can_freeze(&self) -> bool {
        self.cg.is_some()
    }

    /// Freezes the environment once the runtime is back in
    /// `/invocation/next` (at most 1 s after the invocation ended) and
    /// [`FREEZE_DELAY`] has passed, unless it has been taken for another
    /// invocation since `token` was issued. The delay spares environments
    /// under steady load a freeze and thaw per invocation.
    pub async fn freeze_when_idle(&self, token: u64) {
        let Some(c) = &self.cg else {
            return;
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        loop {
            let changed = self.shared.waiting_changed.notified();
            if self.shared.waiting.load(Ordering::SeqCst) {
                break;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                break;
            }
        }
        // Telemetry API subscribers get what is buffered before the freeze.
        self.extensions_settle().await;
        tokio::time::sleep(FREEZE_DELAY).await;
        let mut u = c.usage.lock().unwrap_or_else(|p| p.into_inner());
        if !u.busy && u.generation == token && !u.frozen && !self.is_dead() {
            // Keep Max Memory Used current before the environment sleeps.
            c.refresh();
            if c.cg.freeze().is_ok() {
                u.frozen = true;
            }
        }
    }

    /// Kills the whole process group at once (SIGKILL).
    pub fn kill(&self) {
        let pid = self.pid();
        if pid > 0 && !self.is_dead() {
            let _ = self.peak_rss_kb();
            self.thaw_now();
            // SAFETY: signalling the process group we created.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
    }

    /// AWS's Shutdown phase: SIGTERM to the runtime, `grace` to exit, then
    /// SIGKILL. The Runtime API endpoint is closed afterwards.
    pub async fn shutdown(&self, grace: Duration) {
        let pid = self.pid();
        if pid > 0 && !self.is_dead() {
            // A frozen environment cannot handle SIGTERM.
            self.thaw_now();
            // ... nor SHUTDOWN: no freeze still pending from its last
            // invocation may take it from here on.
            self.begin_use();
            // SHUTDOWN to extensions first; with external ones the phase
            // may take up to 2 s.
            let grace = self.extensions_shutdown(grace).await;
            // SAFETY: signalling the process group we created.
            unsafe { libc::kill(-pid, libc::SIGTERM) };
            let end = Instant::now() + grace;
            while !self.is_dead() && Instant::now() < end {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            self.kill();
        }
        self.server.abort();
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        self.kill();
        self.server.abort();
        let _ = &self.shared;
    }
}

fn describe_exit(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = s.code() {
        format!("exit status {code}")
    } else if let Some(sig) = s.signal() {
        let name = match sig {
            libc::SIGKILL => "killed".to_string(),
            libc::SIGSEGV => "segmentation fault".to_string(),
            libc::SIGABRT => "aborted".to_string(),
            libc::SIGTERM => "terminated".to_string(),
            n => format!("signal {n}"),
        };
        format!("signal: {name}")
    } else {
        "exited".into()
    }
}
