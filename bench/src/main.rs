//! Benchmarks of the Lambda core, run against a real `stratus server`
//! (release build) over HTTP, the way SDK clients talk to it.
//!
//! Measures: server start-up time and idle RSS; cold start per runtime split
//! into what the platform adds and the runtime's own init; warm sequential
//! invoke latency (p50/p99) of a no-op `provided.al2023` function built with
//! the `lambda_runtime` crate; throughput with 32 concurrent clients; server
//! RSS with 100 warm environments. Appends a dated section to
//! `bench/RESULTS.md`.
//!
//! Usage: `stratus-bench --stratus target/release/stratus --noop-zip PATH [--out bench/RESULTS.md]`
//! (`bench/run` builds everything and passes these).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use stratus_bench::{
    self as common, BaseArgs, Conn, Res, Stop, append_section, call, connect, create, field_ms,
    invoke, invoke_tail, or_exit, pct, report_line, retire, rss_kb, start_server, utc_date, zip_of,
};

const PROG: &str = "stratus-bench";

/// Memory of the benchmark functions: 1,769 MB is one full vCPU on AWS (and
/// under stratus's cgroup CPU limits), so the figures measure the platform,
/// not the CPU share of a small function (128 MB gets 7.2% of a vCPU).
const BENCH_MEMORY_MB: u32 = 1769;

struct Args {
    base: BaseArgs,
    warm_n: usize,
    secs: usize,
}

fn parse_args() -> Res<Args> {
    let (mut warm_n, mut secs) = (5000, 5);
    let base = common::parse_args(&mut [("--warm", &mut warm_n), ("--secs", &mut secs)])?;
    Ok(Args { base, warm_n, secs })
}

/// Creates `name` at [`BENCH_MEMORY_MB`] with a 30 s timeout.
async fn create_fn(s: &mut Conn, name: &str, runtime: &str, handler: &str, zip: &[u8]) -> Res<()> {
    create(s, name, runtime, handler, zip, BENCH_MEMORY_MB, 30).await
}

struct Cold {
    runtime: String,
    client_ms: f64,
    init_ms: f64,
    duration_ms: f64,
    platform_ms: f64,
}

/// Cold start: change the description (which retires warm environments, as
/// an update does on AWS), then invoke once with LogType Tail and read the
/// REPORT line. Platform-added time = client latency - Init Duration -
/// Duration. Median of `reps`.
async fn cold_start(s: &mut Conn, name: &str, runtime: &str, reps: usize) -> Res<Cold> {
    let mut rows = Vec::new();
    for i in 0..reps {
        retire(s, name, i, Duration::from_millis(50)).await?;
        let (client, log) = invoke_tail(s, name, "{}").await?;
        let report = report_line(&log).ok_or("no REPORT line")?;
        let init = field_ms(report, "Init Duration:").ok_or("cold invoke has no Init Duration")?;
        let dur = field_ms(report, "Duration:").ok_or("no Duration")?;
        rows.push((client, init, dur));
    }
    rows.sort_by(|a, b| (a.0 - a.1 - a.2).total_cmp(&(b.0 - b.1 - b.2)));
    let (client, init, dur) = rows[rows.len() / 2];
    Ok(Cold {
        runtime: runtime.into(),
        client_ms: client,
        init_ms: init,
        duration_ms: dur,
        platform_ms: client - init - dur,
    })
}

/// Warm sequential latency of `name` over one connection: 200 invokes to
/// warm up, then `n` timed ones. Returns (p50, p99) in us.
async fn warm_latency(c: &mut Conn, name: &str, n: usize) -> Res<(f64, f64)> {
    for _ in 0..200 {
        invoke(c, name, "{}", false).await?;
    }
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        invoke(c, name, "{}", false).await?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    lat.sort_by(f64::total_cmp);
    Ok((pct(&lat, 0.5), pct(&lat, 0.99)))
}

/// Warm sequential latency (p50, p99 in us) and 32-client throughput
/// (invokes/s) of the same no-op function under `cargo lambda watch`, if
/// `cargo lambda` runs here. The function's project is `fn_dir`.
async fn cargo_lambda_peer(
    fn_dir: &str,
    target_dir: &str,
    n: usize,
    secs: usize,
) -> Res<Option<(f64, f64, f64)>> {
    let ok = Command::new("cargo")
        .args(["lambda", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !ok.map(|s| s.success()).unwrap_or(false) {
        return Ok(None);
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let mut child = {
        use std::os::unix::process::CommandExt;
        Command::new("cargo")
            .args([
                "lambda",
                "watch",
                "--release",
                "-A",
                "127.0.0.1",
                "-P",
                &port.to_string(),
            ])
            .current_dir(fn_dir)
            // The watcher runs in the function's directory: an absolute
            // target dir reuses the build bench/run just made.
            .env(
                "CARGO_TARGET_DIR",
                std::fs::canonicalize(target_dir).unwrap_or_else(|_| target_dir.into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cargo lambda watch: {e}"))?
    };
    let pgid = child.id() as i32;
    let result = async {
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut c = loop {
            if Instant::now() > deadline {
                return Err("cargo lambda watch did not answer within 300 s".to_string());
            }
            if let Ok(mut c) = connect(&addr).await
                && invoke(&mut c, "bootstrap", "{}", false).await.is_ok()
            {
                break c;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let (p50, p99) = warm_latency(&mut c, "bootstrap", n).await?;
        let rate = throughput(&addr, "bootstrap", secs).await?;
        Ok(Some((p50, p99, rate)))
    }
    .await;
    kill_group(pgid);
    let _ = child.wait();
    result
}

/// Kills a process group with kill(1).
fn kill_group(pgid: i32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .status();
}

/// Invokes/s of `name` with 32 concurrent keep-alive clients over `secs`.
async fn throughput(addr: &str, name: &'static str, secs: usize) -> Res<f64> {
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let addr = addr.to_string();
        let (count, stop) = (count.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = connect(&addr).await?;
            invoke(&mut c, name, "{}", false).await?;
            while !stop.load(Ordering::Relaxed) {
                invoke(&mut c, name, "{}", false).await?;
                count.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), String>(())
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let c0 = count.load(Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs as u64)).await;
    let c1 = count.load(Ordering::Relaxed);
    let rate = (c1 - c0) as f64 / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(rate)
}

async fn run(a: Args) -> Res<String> {
    let noop = a.base.read_noop_zip()?;
    let srv = start_server(&a.base.stratus, None, &[], Stop::Term)?;
    let pid = srv.child.id();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_rss = rss_kb(pid);
    let mut s = connect(&srv.addr).await?;

    create_fn(&mut s, "noop", "provided.al2023", "bootstrap", &noop).await?;
    let py = zip_of(&[(
        "app.py",
        b"def handler(event, context):\n    return event\n",
        0o644,
    )])?;
    create_fn(&mut s, "py-noop", "python3.12", "app.handler", &py).await?;
    let js = zip_of(&[(
        "index.js",
        b"exports.handler = async (event) => event;\n",
        0o644,
    )])?;
    create_fn(&mut s, "node-noop", "nodejs20.x", "index.handler", &js).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut colds = Vec::new();
    for (name, rt) in [
        ("noop", "provided.al2023"),
        ("py-noop", "python3.12"),
        ("node-noop", "nodejs20.x"),
    ] {
        colds.push(cold_start(&mut s, name, rt, 7).await?);
    }

    // Warm sequential latency.
    let (p50, p99) = warm_latency(&mut s, "noop", a.warm_n).await?;

    // Throughput with 32 concurrent clients.
    let rate = throughput(&srv.addr, "noop", a.secs).await?;

    // 100 warm environments: 100 overlapping invocations of a function that
    // holds each one for 300 ms.
    let sleeper = zip_of(&[(
        "app.py",
        b"import time\ndef handler(event, context):\n    time.sleep(0.3)\n    return 1\n",
        0o644,
    )])?;
    create_fn(&mut s, "sleeper", "python3.12", "app.handler", &sleeper).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_kb(pid);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let addr = srv.addr.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = connect(&addr).await?;
            invoke(&mut c, "sleeper", "{}", false).await.map(|_| ())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let health = call(&mut s, "GET", "/_stratus/health", &[], Bytes::new()).await?;
    let h: Value = serde_json::from_slice(&health.body).map_err(|e| e.to_string())?;
    let isolation = h["isolation"].as_str().unwrap_or("unknown").to_string();
    let envs = h["idleEnvironments"].as_u64().unwrap_or(0);
    let rss_100 = rss_kb(pid);

    let peer = cargo_lambda_peer(
        "tests/functions/rust_noop",
        "tests/.build/rust_noop",
        a.warm_n,
        a.secs,
    )
    .await?;

    let date = utc_date();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = common::cores();
    let mut out = String::new();
    out.push_str(&format!("\n## Lambda core: {date}\n\n"));
    out.push_str(&format!("Machine: {cores} cores ({cpu}). Server: release build, default isolation ({isolation}), functions at {BENCH_MEMORY_MB} MB (one vCPU), loopback HTTP/1.1 keep-alive clients.\n\n"));
    out.push_str("| metric | result | target |\n|---|---|---|\n");
    out.push_str(&format!(
        "| server start to listening | {:.1} ms | |\n",
        srv.startup.as_secs_f64() * 1000.0
    ));
    out.push_str(&format!(
        "| server RSS idle | {:.1} MB | <= 30 MB |\n",
        idle_rss as f64 / 1024.0
    ));
    out.push_str(&format!("| warm invoke p50 (no-op provided.al2023, lambda_runtime, {} sequential) | {p50:.0} us | <= 250 us |\n", a.warm_n));
    out.push_str(&format!("| warm invoke p99 | {p99:.0} us | |\n"));
    out.push_str(&format!(
        "| throughput, 32 concurrent clients, {} s | {rate:.0} invokes/s | >= 10,000 |\n",
        a.secs
    ));
    out.push_str(&format!(
        "| server RSS with {envs} warm environments | {:.1} MB (before: {:.1} MB; {:.0} KB per environment) | |\n",
        rss_100 as f64 / 1024.0,
        before as f64 / 1024.0,
        (rss_100.saturating_sub(before)) as f64 / envs.max(1) as f64
    ));
    match peer {
        Some((cp50, cp99, crate_)) => {
            out.push_str(&format!(
                "\nSame no-op function under `cargo lambda watch --release` (cargo-lambda 1.9), same client, same run: p50 {cp50:.0} us, p99 {cp99:.0} us, {crate_:.0} invokes/s with 32 clients. stratus / cargo-lambda: p50 latency {:.2}x, throughput {:.2}x.\n",
                p50 / cp50.max(1.0),
                rate / crate_.max(1.0)
            ));
        }
        None => out
            .push_str("\n`cargo lambda` is not installed here: no peer comparison in this run.\n"),
    }
    out.push_str("\nCold start (median of 7; platform-added = client latency - Init Duration - Duration):\n\n");
    out.push_str("| runtime | client latency | runtime init (Init Duration) | handler (Duration) | platform-added | target |\n|---|---|---|---|---|---|\n");
    for c in &colds {
        out.push_str(&format!(
            "| {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | <= 5 ms |\n",
            c.runtime, c.client_ms, c.init_ms, c.duration_ms, c.platform_ms
        ));
    }
    Ok(out)
}

#[tokio::main]
async fn main() {
    let a = or_exit(PROG, 2, parse_args());
    let out = a.base.out.clone();
    let section = or_exit(PROG, 1, run(a).await);
    append_section(PROG, &out, &section);
}
