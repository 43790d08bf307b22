//! `stratus`: run AWS Lambda functions on your own machine, behind AWS's own
//! APIs.
//!
//! * `stratus server` starts the edge server (default `127.0.0.1:4566`).
//! * `stratus logs FUNCTION [--follow]` prints a function's logs.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

mod sdk;
use stratus_core::{Config, FunctionRef};

#[derive(Parser)]
#[command(
    name = "stratus",
    version,
    about = "A self-hosted AWS Lambda, speaking AWS's APIs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the server (Lambda API and Runtime API) on one edge port.
    Server(ServerArgs),
    /// Print a function's logs (log group /aws/lambda/FUNCTION).
    Logs(LogsArgs),
    /// What the recorded usage would cost on AWS: requests, duration,
    /// provisioned concurrency (us-east-1 rates unless --prices overrides them).
    Cost(CostArgs),
    /// Manage the AWS SDKs provided to functions (boto3, AWS SDK for JavaScript v3).
    Sdk {
        #[command(subcommand)]
        command: SdkCommand,
    },
}

#[derive(Subcommand)]
enum SdkCommand {
    /// Install boto3 and the AWS SDK for JavaScript v3 clients into the data dir.
    Install(SdkArgs),
}

#[derive(Args)]
struct SdkArgs {
    #[command(flatten)]
    data: DataDir,
    /// Only install boto3 for Python functions.
    #[arg(long, conflicts_with = "node_only")]
    python_only: bool,
    /// Only install the JavaScript SDK for Node.js functions.
    #[arg(long)]
    node_only: bool,
    /// Python interpreter whose pip installs boto3.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Further npm packages to install for Node.js functions.
    #[arg(long = "node-package")]
    node_packages: Vec<String>,
}

#[derive(Args)]
struct DataDir {
    /// Directory for the store, code packages and runtimes.
    #[arg(long, env = "STRATUS_DATA_DIR", default_value = "./.stratus")]
    data_dir: PathBuf,
}

#[derive(Args)]
struct ServerArgs {
    /// Address of the edge HTTP server.
    #[arg(long, env = "STRATUS_LISTEN", default_value = "127.0.0.1:4566")]
    listen: SocketAddr,
    #[command(flatten)]
    data: DataDir,
    /// Account id used in ARNs.
    #[arg(long, env = "STRATUS_ACCOUNT_ID", default_value = stratus_core::DEFAULT_ACCOUNT_ID)]
    account_id: String,
    /// Seconds an idle execution environment is kept before shutdown.
    #[arg(long, env = "STRATUS_IDLE_TIMEOUT", default_value_t = 600)]
    idle_timeout: u64,
    /// Refuse runtimes whose exact interpreter version this host lacks,
    /// instead of falling back to python3 / node with a warning.
    #[arg(long, env = "STRATUS_STRICT_RUNTIMES")]
    strict_runtimes: bool,
    /// Map a runtime id or family to an interpreter, e.g.
    /// `--runtime python3.12=/usr/bin/python3.12` or `--runtime nodejs=/opt/node22/bin/node`.
    #[arg(long = "runtime", value_name = "ID=PROGRAM")]
    runtimes: Vec<String>,
    /// How execution environments are isolated: `namespace` (own mount, PID,
    /// IPC and UTS namespaces, read-only root view, unprivileged user,
    /// seccomp; needs root) or `process` (plain child processes). Default:
    /// namespace where the host allows it, else process with a warning.
    #[arg(long, env = "STRATUS_ISOLATION", value_parser = ["process", "namespace"])]
    isolation: Option<String>,
    /// Reclaim idle environments, least recently used first, while the
    /// host's available memory is below this many MB (default: 10% of RAM).
    #[arg(long, env = "STRATUS_MIN_FREE_MEMORY_MB")]
    min_free_memory_mb: Option<u64>,
    /// Host path made visible read-only inside namespace environments (at
    /// the same path), e.g. an interpreter a custom runtime runs;
    /// repeatable, or `:`-separated in the environment variable.
    #[arg(
        long = "sandbox-path",
        env = "STRATUS_SANDBOX_PATHS",
        value_delimiter = ':'
    )]
    sandbox_paths: Vec<PathBuf>,
    /// The account's concurrent executions quota per region (AWS's default
    /// 1,000); synchronous invocations past it get 429 TooManyRequestsException.
    #[arg(long, env = "STRATUS_ACCOUNT_CONCURRENCY", default_value_t = stratus_core::config::DEFAULT_ACCOUNT_CONCURRENCY,
          value_parser = clap::value_parser!(u32).range(1..))]
    account_concurrency: u32,
    /// Concurrency scaling rate: new execution environments per function per
    /// 10 seconds (AWS's rate: 1,000).
    #[arg(long, env = "STRATUS_SCALING_RATE", default_value_t = stratus_core::config::DEFAULT_SCALING_RATE,
          value_parser = clap::value_parser!(u32).range(1..))]
    scaling_rate: u32,
    /// Speed up platform-internal timers by this factor: Application Auto
    /// Scaling's metric period (60 s) and cooldowns run this many times
    /// faster. Function timeouts and wall-clock schedules are unchanged.
    #[arg(long, env = "STRATUS_TIME_SCALE", default_value_t = 1.0,
          value_parser = parse_time_scale)]
    time_scale: f64,
    /// An AWS-compatible endpoint (for example moto_server or LocalStack)
    /// that Step Functions' AWS SDK integrations call for services stratus
    /// does not implement (DynamoDB, S3, ECS, ...): `http://HOST:PORT` for
    /// every service, or `SERVICE=http://HOST:PORT` for one; repeatable.
    /// `https://` endpoints are verified against the system roots and
    /// `--upstream-ca-bundle`.
    #[arg(
        long = "upstream-endpoint",
        value_name = "[SERVICE=]URL",
        env = "STRATUS_UPSTREAM_ENDPOINT",
        value_delimiter = ','
    )]
    upstream_endpoints: Vec<String>,
    /// A PEM file of certificate authorities to trust, besides the system
    /// roots, for https upstream endpoints and SNS https subscriptions
    /// (e.g. the CA of a self-signed local endpoint). Default: the
    /// `AWS_CA_BUNDLE` environment variable, when set and not empty.
    #[arg(long = "upstream-ca-bundle", value_name = "PATH")]
    upstream_ca_bundle: Option<PathBuf>,
}

fn parse_time_scale(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.001..=100_000.0).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' is not a factor between 0.001 and 100000")),
    }
}

#[derive(Args)]
struct CostArgs {
    /// Only this function (name or ARN).
    #[arg(long)]
    function: Option<String>,
    /// Only usage from this time on: RFC 3339, YYYY-MM-DD, epoch seconds or
    /// an age (30m, 12h, 7d).
    #[arg(long)]
    since: Option<String>,
    #[command(flatten)]
    data: DataDir,
    /// Region of the functions.
    #[arg(long, env = "AWS_REGION", default_value = stratus_core::DEFAULT_REGION)]
    region: String,
    /// JSON price table overriding AWS's us-east-1 rates, e.g.
    /// {"requests_per_million": 0.2, "x86_64": {"duration_gb_second": 0.0000166667}}.
    #[arg(long, value_name = "FILE")]
    prices: Option<PathBuf>,
    /// Print JSON (usage and breakdown per function, and the total).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct LogsArgs {
    /// Function name or ARN.
    function: String,
    #[command(flatten)]
    data: DataDir,
    /// Region of the function.
    #[arg(long, env = "AWS_REGION", default_value = stratus_core::DEFAULT_REGION)]
    region: String,
    /// Keep printing new log lines as they arrive.
    #[arg(long, short = 'f')]
    follow: bool,
}

fn main() {
    // The execution environment helper (see stratus_sandbox::isolation) is
    // this same binary, started by the server with a hidden first argument.
    let args: Vec<String> = std::env::args_os()
        .take(3)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if args.get(1).map(String::as_str) == Some(stratus_sandbox::isolation::INIT_ARG) {
        std::process::exit(stratus_sandbox::isolation::init_main(&args));
    }
    // The extensions launcher, run inside an execution environment whose
    // layers have extensions (see stratus_sandbox::extensions).
    if args.get(1).map(String::as_str) == Some(stratus_sandbox::extensions::LAUNCHER_ARG) {
        std::process::exit(stratus_sandbox::extensions::launcher_main());
    }
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Server(a) => run_server(a),
        Command::Logs(a) => run_logs(a),
        Command::Cost(a) => run_cost(a),
        Command::Sdk {
            command: SdkCommand::Install(a),
        } => {
            let dir = Config::with_data_dir(a.data.data_dir).sdk_dir;
            match sdk::install(
                &dir,
                !a.node_only,
                !a.python_only,
                &a.python,
                &a.node_packages,
            ) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("stratus: {e}");
                    1
                }
            }
        }
    };
    std::process::exit(code);
}

fn runtime_overrides(list: &[String]) -> Result<HashMap<String, String>, String> {
    let mut m = HashMap::new();
    for item in list {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("--runtime expects ID=PROGRAM, got '{item}'"))?;
        m.insert(k.to_string(), v.to_string());
    }
    Ok(m)
}

fn run_server(a: ServerArgs) -> i32 {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STRATUS_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let overrides = match runtime_overrides(&a.runtimes) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("stratus: {e}");
            return 2;
        }
    };
    let mut config = Config::with_data_dir(a.data.data_dir);
    config.listen = a.listen;
    config.account_id = a.account_id;
    config.idle_timeout_secs = a.idle_timeout;
    config.strict_runtimes = a.strict_runtimes;
    config.runtime_overrides = overrides;
    config.isolation = a
        .isolation
        .as_deref()
        .and_then(stratus_core::config::Isolation::parse);
    config.min_free_memory_mb = a.min_free_memory_mb;
    config.sandbox_paths = a
        .sandbox_paths
        .into_iter()
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    config.account_concurrency = a.account_concurrency;
    config.scaling_rate = a.scaling_rate;
    config.time_scale = a.time_scale;
    config.upstream_endpoints = a.upstream_endpoints;
    config.ca_bundle = a
        .upstream_ca_bundle
        .or_else(|| std::env::var_os("AWS_CA_BUNDLE").map(PathBuf::from))
        .filter(|p| !p.as_os_str().is_empty());
    if let Some(p) = &config.ca_bundle
        && let Err(e) = stratus_upstream::tls::load_ca_bundle(p)
    {
        eprintln!("stratus: --upstream-ca-bundle / AWS_CA_BUNDLE: {e}");
        return 2;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stratus: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(serve(config)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("stratus: {e}");
            1
        }
    }
}

async fn serve(mut config: Config) -> Result<(), String> {
    // Environments run with their code directory as working directory, so
    // every path handed to them must be absolute.
    std::fs::create_dir_all(&config.data_dir)
        .and_then(|_| std::fs::canonicalize(&config.data_dir))
        .map(|abs| {
            config.sdk_dir = abs.join("sdk");
            config.data_dir = abs;
        })
        .map_err(|e| format!("cannot use data dir {}: {e}", config.data_dir.display()))?;
    let store = stratus_store::Store::open(&config.data_dir).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    config.listen = listener.local_addr().map_err(|e| e.to_string())?;
    // Each environment holds a few descriptors (Runtime API listener, output pipes).
    stratus_sandbox::isolation::raise_fd_limit();
    let sandbox = stratus_sandbox::isolation::Sandbox::setup(
        config.isolation,
        &config.data_dir,
        &config.data_dir.join("runtime"),
        &config.sdk_dir,
        &config.sandbox_paths,
    )?;
    for w in sandbox.warnings() {
        eprintln!("stratus: warning: {w}");
    }
    let sandbox = Arc::new(sandbox);
    let isolation = sandbox.mode().as_str();
    let cgroups = sandbox.cgroups().map(|c| {
        serde_json::json!({
            "version": c.version().as_str(),
            "dirs": c.instance_dirs().iter().map(|d| d.display().to_string()).collect::<Vec<_>>(),
        })
    });
    let lambda =
        stratus_lambda::Lambda::with_sandbox(config.clone(), store.clone(), sandbox.clone())
            .map_err(|e| format!("cannot prepare {}: {e}", config.data_dir.display()))?;
    lambda.recover().await;
    let health = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "isolation": isolation,
        "cgroups": cgroups,
        "dataDir": config.data_dir.display().to_string(),
    });
    let autoscaling = stratus_autoscaling::AutoScaling::new(lambda.clone(), store.clone(), &config);
    let autoscaling_engine = autoscaling.spawn_engine();
    // Services deliver to each other by ARN through this registry.
    let targets = stratus_core::Targets::new();
    let sqs = stratus_sqs::Sqs::new(store.clone(), &config, targets.clone(), lambda.clone())?;
    let sns = stratus_sns::Sns::new(store.clone(), &config, targets.clone())?;
    let events = stratus_events::Events::new(store.clone(), &config, targets.clone())?;
    targets.register("sqs", sqs.clone());
    targets.register("sns", sns.clone());
    targets.register("events", events.clone());
    targets.register(
        "lambda",
        Arc::new(stratus_lambda::async_invoke::AsyncInvokeTarget(
            lambda.clone(),
        )),
    );
    let states =
        stratus_states::States::new(store.clone(), &config, targets.clone(), lambda.clone())?;
    targets.register("states", states.clone());
    let logs = stratus_logs::Logs::new(store.clone(), &config.account_id);
    let cloudwatch = stratus_cloudwatch::CloudWatch::new(store.clone())
        .map_err(|e| format!("cannot create the CloudWatch tables: {e}"))?;
    match cloudwatch.recover().await {
        Ok(0) => {}
        Ok(n) => tracing::info!("counted {n} Step Functions execution ends in their metrics"),
        Err(e) => {
            tracing::error!("cannot count Step Functions execution ends in their metrics: {e}")
        }
    }
    let mut background = Vec::new();
    background.push(logs.spawn());
    background.extend(sqs.spawn());
    background.extend(sns.spawn());
    background.extend(events.spawn());
    background.push(lambda.spawn_async_processor(targets.clone()));
    background.extend(states.spawn());
    background.push(cloudwatch.spawn_emf(Duration::from_secs(1)));
    let json_services = stratus_api::JsonServices::new()
        .with(
            stratus_autoscaling::TARGET_PREFIX,
            "1.1",
            move |region, op, body| {
                let a = autoscaling.clone();
                async move { a.call(&region, &op, &body).await }
            },
        )
        .with(stratus_sqs::TARGET_PREFIX, "1.0", {
            let sqs = sqs.clone();
            move |region, op, body| {
                let sqs = sqs.clone();
                async move { sqs.call_json(&region, &op, body).await }
            }
        })
        .with(stratus_events::TARGET_PREFIX, "1.1", {
            let events = events.clone();
            move |region, op, body| {
                let events = events.clone();
                async move { events.call(&region, &op, body).await }
            }
        })
        .with(stratus_logs::TARGET_PREFIX, "1.1", {
            let logs = logs.clone();
            move |region, op, body| {
                let logs = logs.clone();
                async move { logs.call(&region, &op, &body).await }
            }
        })
        .with(stratus_states::TARGET_PREFIX, "1.0", {
            let states = states.clone();
            move |region, op, body| {
                let states = states.clone();
                async move { states.call(&region, &op, body).await }
            }
        })
        .with(stratus_cloudwatch::TARGET_PREFIX, "1.0", {
            let cw = cloudwatch.clone();
            move |region, op, body| {
                let cw = cw.clone();
                async move { cw.call_json(&region, &op, &body).await }
            }
        });
    let query_services = stratus_api::QueryServices::new()
        .with("sqs", stratus_sqs::XMLNS, stratus_sqs::ACTIONS, {
            let sqs = sqs.clone();
            move |r: stratus_api::QueryRequest| {
                let sqs = sqs.clone();
                async move {
                    sqs.call_query(&r.region, &r.action, &r.params, &r.path)
                        .await
                }
            }
        })
        .with("sns", stratus_sns::XMLNS, stratus_sns::ACTIONS, {
            let sns = sns.clone();
            move |r: stratus_api::QueryRequest| {
                let sns = sns.clone();
                async move { sns.call_query(&r.region, &r.action, &r.params).await }
            }
        })
        .with(
            stratus_cloudwatch::SIGNING_NAME,
            stratus_cloudwatch::XMLNS,
            stratus_cloudwatch::ACTIONS,
            {
                let cw = cloudwatch.clone();
                move |r: stratus_api::QueryRequest| {
                    let cw = cw.clone();
                    async move { cw.call_query(&r.region, &r.action, &r.params).await }
                }
            },
        );
    let app = stratus_api::router_with_all(
        stratus_api::Edge {
            lambda: lambda.clone(),
            health: Arc::new(health),
        },
        json_services,
        query_services,
    )
    .merge(sqs.esm_router())
    .merge(stratus_api::rpc_v2::router(
        stratus_api::rpc_v2::RpcV2Services::new().with(stratus_cloudwatch::TARGET_PREFIX, {
            let cw = cloudwatch.clone();
            move |region: String, op: String, body: axum::body::Bytes| {
                let cw = cw.clone();
                async move {
                    let r = cw.call_cbor(&region, &op, &body).await;
                    (r.status, r.headers, r.body)
                }
            }
        }),
    ));

    let reaper = {
        let lambda = lambda.clone();
        // Every second: idle timeouts and host memory pressure.
        let every = Duration::from_secs(1);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                lambda.reap_idle();
            }
        })
    };

    // SIGTERM / SIGINT handlers are in place before the server says it is
    // listening, so a signal right after that line shuts it down cleanly.
    let stop = shutdown_signal();
    println!("stratus listening on {}", config.edge_url());
    println!(
        "isolation mode: {isolation}; cgroups: {}; data dir: {}",
        sandbox.cgroups().map_or("none", |c| c.version().as_str()),
        config.data_dir.display()
    );
    let _ = std::io::stdout().flush();

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, app).with_graceful_shutdown({
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|v| *v).await;
        }
    });
    let server = tokio::spawn(async move { server.await });
    stop.await;
    eprintln!("stratus: shutting down");
    let _ = stop_tx.send(true);
    reaper.abort();
    autoscaling_engine.abort();
    for task in background {
        task.abort();
    }
    states.shutdown();
    // Environments get their grace period, then are killed; in-flight
    // requests are not waited for longer than that.
    lambda.shutdown().await;
    // Whatever is left (environments still busy) goes with its cgroups.
    sandbox.destroy();
    let _ = tokio::time::timeout(
        Duration::from_millis(config.shutdown_grace_ms + 500),
        server,
    )
    .await;
    store.flush_logs();
    Ok(())
}

/// Registers the SIGTERM and SIGINT handlers now; the future completes on
/// the first of them.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut t), Ok(mut i)) => {
                tokio::select! {
                    _ = t.recv() => {}
                    _ = i.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

fn run_logs(a: LogsArgs) -> i32 {
    let (name, qualifier) = match FunctionRef::parse(&a.function, "functionName") {
        Ok(r) => (r.name, r.qualifier),
        Err(e) => {
            eprintln!("stratus: {}", e.message);
            return 2;
        }
    };
    // A version's environments log to streams named `.../[N]<id>`.
    let stream_tag = qualifier.map(|q| format!("/[{q}]"));
    if !a.data.data_dir.join("stratus.db").exists() {
        eprintln!(
            "stratus: no stratus data in {} (use --data-dir)",
            a.data.data_dir.display()
        );
        return 1;
    }
    let store = match stratus_store::Store::open(&a.data.data_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("stratus: {e}");
            return 1;
        }
    };
    let group = format!("/aws/lambda/{name}");
    let mut after = 0i64;
    let mut printed_any = false;
    let stdout = std::io::stdout();
    loop {
        let batch = match store.read_logs(&a.region, &group, None, after, 1000) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("stratus: {e}");
                return 1;
            }
        };
        let mut out = stdout.lock();
        for e in &batch {
            after = e.seq;
            if stream_tag
                .as_ref()
                .is_some_and(|t| !e.event.log_stream.contains(t.as_str()))
            {
                continue;
            }
            if writeln!(out, "{}", e.event.message).is_err() {
                return 0;
            }
            printed_any = true;
        }
        let _ = out.flush();
        drop(out);
        if batch.len() < 1000 {
            if !a.follow {
                if !printed_any && after == 0 {
                    // As CloudWatch Logs: no events, no log group.
                    eprintln!(
                        "stratus: log group {group} has no events in {} (region {})",
                        a.data.data_dir.display(),
                        a.region
                    );
                    return 1;
                }
                return 0;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

fn run_cost(a: CostArgs) -> i32 {
    use stratus_lambda::cost;
    let prices = match &a.prices {
        None => cost::Prices::default(),
        Some(p) => match std::fs::read_to_string(p)
            .map_err(|e| format!("{}: {e}", p.display()))
            .and_then(|t| cost::Prices::from_json(&t))
        {
            Ok(p) => p,
            Err(e) => {
                eprintln!("stratus: {e}");
                return 2;
            }
        },
    };
    let since = match a.since.as_deref() {
        None => None,
        Some(s) => match cost::parse_since(s, stratus_core::time::now_ms()) {
            Ok(ms) => Some(ms),
            Err(e) => {
                eprintln!("stratus: {e}");
                return 2;
            }
        },
    };
    let function = match a.function.as_deref() {
        None => None,
        Some(f) => match FunctionRef::parse(f, "functionName") {
            Ok(r) => Some(r.name),
            Err(e) => {
                eprintln!("stratus: {}", e.message);
                return 2;
            }
        },
    };
    if !a.data.data_dir.join("stratus.db").exists() {
        eprintln!(
            "stratus: no stratus data in {} (use --data-dir)",
            a.data.data_dir.display()
        );
        return 1;
    }
    let store = match stratus_store::Store::open(&a.data.data_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("stratus: {e}");
            return 1;
        }
    };
    // A minute counts when it starts at or after --since.
    let rows = match store.read_metrics(&stratus_store::MetricQuery {
        region: Some(&a.region),
        function_name: function.as_deref(),
        dimension: Some(stratus_lambda::metrics::DIM_FUNCTION),
        since_ms: since.map(|ms| ms - ms.rem_euclid(60_000)),
        until_ms: None,
    }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("stratus: {e}");
            return 1;
        }
    };
    let mut names: Vec<&str> = rows.iter().map(|r| r.function_name.as_str()).collect();
    names.dedup();
    if let Some(f) = &function
        && names.is_empty()
    {
        names.push(f);
    }
    let per_fn: Vec<(&str, cost::Usage, cost::Breakdown)> = names
        .iter()
        .map(|n| {
            let u = cost::Usage::from_rows(rows.iter().filter(|r| r.function_name == *n));
            let b = cost::breakdown(&u, &prices);
            (*n, u, b)
        })
        .collect();
    let all = cost::Usage::from_rows(&rows);
    let total = cost::breakdown(&all, &prices);
    let since_txt = since
        .map(stratus_core::time::iso_ms)
        .unwrap_or_else(|| "the first recorded minute".into());
    if a.json {
        let v = serde_json::json!({
            "region": a.region,
            "since": since.map(stratus_core::time::iso_ms),
            "prices": prices,
            "functions": per_fn.iter().map(|(n, u, b)| serde_json::json!({
                "function": n, "usage": u, "breakdown": b,
            })).collect::<Vec<_>>(),
            "usage": all,
            "total": total,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return 0;
    }
    println!(
        "Lambda cost in {} since {since_txt} (AWS rates{}; each line rounded to the cent as billed)",
        a.region,
        if a.prices.is_some() {
            " overridden by the price file"
        } else {
            ", us-east-1"
        }
    );
    for (n, _, b) in &per_fn {
        println!();
        print!("{}", cost::render(&format!("Function {n}"), b));
    }
    if per_fn.len() != 1 {
        println!();
        print!("{}", cost::render("All functions", &total));
    }
    0
}
