//! Benchmarks of execution environment isolation (issue 3), run against real
//! `stratus server` processes (release build) over HTTP:
//!
//! * cold start of the no-op `provided.al2023` function (lambda_runtime) in
//!   `namespace` vs `process` mode (target: namespace adds <= 10 ms);
//! * a CPU-bound Python function at 1,769 MB vs 885 MB (expect ~2x: CPU is
//!   in proportion to memory);
//! * how many idle, frozen no-op environments fit, and the server's RSS per
//!   environment (targets: >= 1,000 environments, <= 2 MB each).
//!
//! Appends a dated section to `bench/RESULTS.md`. Needs root (namespaces,
//! cgroups).
//!
//! Usage: `stratus-bench-isolation --stratus target/release/stratus --noop-zip PATH
//! [--envs 1000] [--out bench/RESULTS.md]` (`bench/run isolation` builds
//! everything and passes these).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};
use stratus_bench::{
    self as common, BaseArgs, Conn, Res, Server, Stop, append_section, call, connect, create,
    field_ms, invoke_tail, median, mem_available_mb, or_exit, proc_kb, retire, utc_date, zip_of,
};

const PROG: &str = "stratus-bench-isolation";

struct Args {
    base: BaseArgs,
    envs: usize,
    reps: usize,
}

fn parse_args() -> Res<Args> {
    let (mut envs, mut reps) = (1000, 15);
    let base = common::parse_args(&mut [("--envs", &mut envs), ("--reps", &mut reps)])?;
    Ok(Args { base, envs, reps })
}

/// A server in `isolation` mode, stopped with SIGTERM so that it removes its
/// cgroups.
fn start_server(bin: &Path, isolation: &str, extra: &[&str]) -> Res<Server> {
    common::start_server(bin, Some(isolation), extra, Stop::Term)
}

/// Timeout of the benchmark functions (s).
const TIMEOUT_S: u32 = 60;

/// Creates a copy of the no-op function (provided.al2023, 128 MB).
async fn create_noop(s: &mut Conn, name: &str, noop: &[u8]) -> Res<()> {
    create(
        s,
        name,
        "provided.al2023",
        "bootstrap",
        noop,
        128,
        TIMEOUT_S,
    )
    .await
}

/// Median cold start (client latency, Init Duration) of the no-op function.
async fn cold_starts(srv: &Server, noop: &[u8], reps: usize) -> Res<(f64, f64)> {
    let mut s = connect(&srv.addr).await?;
    create_noop(&mut s, "noop", noop).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut client, mut init) = (Vec::new(), Vec::new());
    for i in 0..reps + 2 {
        retire(&mut s, "noop", i, Duration::from_millis(100)).await?;
        let (ms, log) = invoke_tail(&mut s, "noop", "{}").await?;
        let init_ms =
            field_ms(&log, "Init Duration:").ok_or("cold invoke without Init Duration")?;
        if i >= 2 {
            client.push(ms);
            init.push(init_ms);
        }
    }
    Ok((median(client), median(init)))
}

const CPU_APP: &[u8] = br#"import time
def handler(event, context):
    t = time.process_time()
    x = 0
    for i in range(event['n']):
        x += i * i % 7
    return {'cpu_ms': (time.process_time() - t) * 1000}
"#;

/// Median handler Duration of a CPU-bound loop at `memory` MB.
async fn cpu_bound(s: &mut Conn, memory: u32, n: u64) -> Res<f64> {
    let name = format!("cpu-{memory}");
    let zip = zip_of(&[("app.py", CPU_APP, 0o644)])?;
    create(
        s,
        &name,
        "python3.12",
        "app.handler",
        &zip,
        memory,
        TIMEOUT_S,
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let payload = json!({ "n": n }).to_string();
    invoke_tail(s, &name, payload.clone()).await?; // cold start
    let mut d = Vec::new();
    for _ in 0..5 {
        let (_, log) = invoke_tail(s, &name, payload.clone()).await?;
        d.push(field_ms(&log, "Duration:").ok_or("no Duration")?);
    }
    Ok(median(d))
}

fn frozen_count(dirs: &[PathBuf]) -> usize {
    // v1: the freezer hierarchy's directory; v2: the only one.
    let Some(freezer) = dirs
        .iter()
        .find(|d| d.components().any(|c| c.as_os_str() == "freezer"))
        .or(if dirs.len() == 1 { dirs.first() } else { None })
    else {
        return 0;
    };
    std::fs::read_dir(freezer)
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    std::fs::read_to_string(e.path().join("freezer.state"))
                        .is_ok_and(|s| s.trim() == "FROZEN")
                        || std::fs::read_to_string(e.path().join("cgroup.events"))
                            .is_ok_and(|s| s.contains("frozen 1"))
                })
                .count()
        })
        .unwrap_or(0)
}

struct Density {
    envs: u64,
    frozen: usize,
    rss_before_kb: u64,
    rss_after_kb: u64,
    host_mb_used: u64,
    secs: f64,
}

/// Starts `n` idle no-op environments (one per function, 8 clients at a
/// time) and measures the server's RSS and the host memory they take.
async fn density(srv: &Server, noop: &[u8], n: usize) -> Res<Density> {
    let pid = srv.child.id();
    let mut s = connect(&srv.addr).await?;
    for i in 0..n {
        create_noop(&mut s, &format!("idle-{i}"), noop).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before_kb = proc_kb(pid, "VmRSS:");
    let avail_before = mem_available_mb();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    let per = n.div_ceil(8);
    for w in 0..8 {
        let addr = srv.addr.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = connect(&addr).await?;
            for i in (w * per)..((w + 1) * per).min(n) {
                invoke_tail(&mut c, &format!("idle-{i}"), "{}").await?;
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let secs = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let h = call(&mut s, "GET", "/_stratus/health", &[], Bytes::new()).await?;
    let h: Value = serde_json::from_slice(&h.body).map_err(|e| e.to_string())?;
    let dirs: Vec<PathBuf> = h["cgroups"]["dirs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d.as_str().map(PathBuf::from))
                .collect()
        })
        .unwrap_or_default();
    Ok(Density {
        envs: h["environments"].as_u64().unwrap_or(0),
        frozen: frozen_count(&dirs),
        rss_before_kb,
        rss_after_kb: proc_kb(pid, "VmRSS:"),
        host_mb_used: avail_before.saturating_sub(mem_available_mb()),
        secs,
    })
}

async fn run(a: Args) -> Res<String> {
    let noop = a.base.read_noop_zip()?;

    // Cold starts, one server per mode (not at the same time).
    let (proc_client, proc_init) = {
        let srv = start_server(&a.base.stratus, "process", &[])?;
        cold_starts(&srv, &noop, a.reps).await?
    };
    let (ns_client, ns_init) = {
        let srv = start_server(&a.base.stratus, "namespace", &[])?;
        cold_starts(&srv, &noop, a.reps).await?
    };

    // CPU in proportion to memory (namespace mode).
    let (cpu_1769, cpu_885) = {
        let srv = start_server(&a.base.stratus, "namespace", &[])?;
        let mut s = connect(&srv.addr).await?;
        let n = 3_000_000;
        (
            cpu_bound(&mut s, 1769, n).await?,
            cpu_bound(&mut s, 885, n).await?,
        )
    };

    // Density of idle frozen environments.
    let dens = {
        let srv = start_server(&a.base.stratus, "namespace", &["--idle-timeout", "3600"])?;
        density(&srv, &noop, a.envs).await?
    };

    let date = utc_date();
    let cores = common::cores();
    let per_env_kb =
        dens.rss_after_kb.saturating_sub(dens.rss_before_kb) as f64 / dens.envs.max(1) as f64;
    let mut out = String::new();
    out.push_str(&format!("\n## Isolation: {date}\n\n"));
    out.push_str(&format!(
        "Machine: {cores} cores. Server: release build, cgroups {}, loopback HTTP/1.1 keep-alive clients. \
         No-op function: provided.al2023, lambda_runtime, 128 MB.\n\n",
        if Path::new("/sys/fs/cgroup/memory").is_dir() { "v1" } else { "v2" }
    ));
    out.push_str("| metric | result | target |\n|---|---|---|\n");
    out.push_str(&format!(
        "| cold start, process mode (client latency / Init Duration, median of {}) | {proc_client:.2} ms / {proc_init:.2} ms | |\n",
        a.reps
    ));
    out.push_str(&format!(
        "| cold start, namespace mode (client latency / Init Duration) | {ns_client:.2} ms / {ns_init:.2} ms | |\n"
    ));
    out.push_str(&format!(
        "| namespace mode adds (client latency) | {:.2} ms | <= 10 ms |\n",
        ns_client - proc_client
    ));
    out.push_str(&format!(
        "| CPU-bound Python loop, Duration at 885 MB / 1,769 MB (median of 5) | {cpu_885:.0} ms / {cpu_1769:.0} ms = {:.2}x | ~2x |\n",
        cpu_885 / cpu_1769.max(0.001)
    ));
    out.push_str(&format!(
        "| idle no-op environments started (namespace mode) | {} in {:.1} s, {} frozen | >= 1,000 |\n",
        dens.envs, dens.secs, dens.frozen
    ));
    out.push_str(&format!(
        "| server RSS per idle environment | {per_env_kb:.0} KB ({:.1} MB -> {:.1} MB) | <= 2 MB |\n",
        dens.rss_before_kb as f64 / 1024.0,
        dens.rss_after_kb as f64 / 1024.0
    ));
    out.push_str(&format!(
        "| host memory per idle environment (MemAvailable drop / environments; runtime, helpers, cgroup) | {:.2} MB | |\n",
        dens.host_mb_used as f64 / dens.envs.max(1) as f64
    ));
    Ok(out)
}

#[tokio::main]
async fn main() {
    let a = or_exit(PROG, 2, parse_args());
    let out = a.base.out.clone();
    let section = or_exit(PROG, 1, run(a).await);
    append_section(PROG, &out, &section);
}
