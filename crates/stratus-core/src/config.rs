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
}

impl Config {
    /// A configuration with the documented defaults and the given data dir.
    pub fn with_data_dir(data_dir: PathBuf) -> Config {
        Config {
            listen: "127.0.0.1:4566".parse().expect("static address"),
            sdk_dir: data_dir.join("sdk"),
            data_dir,
            account_id: crate::DEFAULT_ACCOUNT_ID.to_string(),
            idle_timeout_secs: 600,
            shutdown_grace_ms: 500,
            strict_runtimes: false,
            runtime_overrides: HashMap::new(),
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
