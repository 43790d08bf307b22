//! Server configuration shared by every service.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// How stratus runs; filled from the command line and environment by the
/// `stratus` binary.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address of the edge HTTP server (default `127.0.0.1:4566`).
    pub listen: SocketAddr,
    /// Directory holding the SQLite store, code packages and unpacked code
    /// (default `./.stratus`).
    pub data_dir: PathBuf,
    /// Account id used in ARNs (default `123456789012`).
    pub account_id: String,
    /// Seconds an idle execution environment is kept before it is shut down
    /// (default 600).
    pub idle_timeout_secs: u64,
    /// Grace period in ms between SIGTERM and SIGKILL when environments
    /// shut down (default 500 ms, as AWS's Shutdown phase for runtimes).
    pub shutdown_grace_ms: u64,
    /// Refuse a runtime whose exact interpreter version is missing instead
    /// of falling back to the host's `python3` / `node`.
    pub strict_runtimes: bool,
    /// Interpreter overrides: runtime id (`python3.12`, `nodejs20.x`) or family
    /// (`python`, `nodejs`) to the program that serves it.
    pub runtime_overrides: HashMap<String, String>,
    /// Directory with the AWS SDKs provided to functions (boto3 under
    /// `python/`, `@aws-sdk/*` under `node/node_modules`).
    pub sdk_dir: PathBuf,
    /// Isolation mode asked for (`--isolation`); `None` picks `namespace`
    /// where the host allows it, else `process`.
    pub isolation: Option<Isolation>,
    /// Reclaim idle environments, least recently used first, while the
    /// host's MemAvailable is below this many MB (`None`: 10% of MemTotal).
    pub min_free_memory_mb: Option<u64>,
    /// Extra host paths visible read-only (at the same path) inside
    /// `namespace` environments, e.g. an interpreter a custom runtime uses.
    pub sandbox_paths: Vec<PathBuf>,
    /// The account's concurrent executions quota in each region (AWS's
    /// default: 1,000). Reserved concurrency is carved out of it.
    pub account_concurrency: u32,
    /// Concurrency scaling rate: new execution environments each function may
    /// start per 10 seconds (AWS's rate: 1,000), refilled continuously.
    pub scaling_rate: u32,
    /// Speeds up platform-internal timers by this factor (`--time-scale`,
    /// default 1): Application Auto Scaling's metric period and cooldowns,
    /// asynchronous invocation retry delays and event age, delivery retry
    /// backoffs. Never function timeouts, and never wall-clock schedules.
    pub time_scale: f64,
    /// `--upstream-endpoint` values: `http://HOST:PORT` (every service) or
    /// `SERVICE=http://HOST:PORT`; AWS-compatible endpoints that Step
    /// Functions' AWS SDK integrations call for services stratus does not
    /// implement (see the `stratus-upstream` crate).
    pub upstream_endpoints: Vec<String>,
    /// A PEM file of extra certificate authorities trusted, besides the
    /// system roots, for outgoing https: upstream endpoints and SNS `https`
    /// subscriptions (`--upstream-ca-bundle PATH`, else `AWS_CA_BUNDLE`).
    pub ca_bundle: Option<PathBuf>,
}

/// AWS's default concurrent executions quota per account and region.
pub const DEFAULT_ACCOUNT_CONCURRENCY: u32 = 1000;

/// AWS's concurrency scaling rate: 1,000 execution environments every 10
/// seconds per function
/// (<https://docs.aws.amazon.com/lambda/latest/dg/scaling-behavior.html>).
pub const DEFAULT_SCALING_RATE: u32 = 1000;

/// How execution environments are isolated from the host and each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// A plain child process of the server (development).
    #[default]
    Process,
    /// Own mount, PID, IPC and UTS namespaces, a read-only root view, an
    /// unprivileged user and a seccomp filter.
    Namespace,
}

impl Isolation {
    /// `process` / `namespace`.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Process => "process",
            Isolation::Namespace => "namespace",
        }
    }

    /// Parses `process` / `namespace`.
    pub fn parse(s: &str) -> Option<Isolation> {
        match s {
            "process" => Some(Isolation::Process),
            "namespace" => Some(Isolation::Namespace),
            _ => None,
        }
    }
}

impl Config {
    /// A configuration with the documented defaults and the given data dir.
    pub fn with_data_dir(data_dir: PathBuf) -> Config {
        Config {
            listen: "127.0.0.1:4566".parse().expect("static address"),
            sdk_dir: data_dir.join("sdk"),
            isolation: None,
            min_free_memory_mb: None,
            sandbox_paths: Vec::new(),
            data_dir,
            account_id: crate::DEFAULT_ACCOUNT_ID.to_string(),
            idle_timeout_secs: 600,
            shutdown_grace_ms: 500,
            strict_runtimes: false,
            runtime_overrides: HashMap::new(),
            account_concurrency: DEFAULT_ACCOUNT_CONCURRENCY,
            scaling_rate: DEFAULT_SCALING_RATE,
            time_scale: 1.0,
            upstream_endpoints: Vec::new(),
            ca_bundle: None,
        }
    }

    /// The URL on which the edge server is reachable from functions
    /// (`http://127.0.0.1:4566`); `0.0.0.0` is mapped to loopback.
    pub fn edge_url(&self) -> String {
        let ip = if self.listen.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            self.listen.ip().to_string()
        };
        format!("http://{}:{}", ip, self.listen.port())
    }
}
