//! Benchmarks of the concurrency scheduler (`bench/run scheduler`):
//!
//! (a) in-process, the scheduler's cost per invoke with 1,000 live
//!     invocations (1,000 functions, each with one invocation running and
//!     its metric series live): the record lookup (`Lambda::resolve`),
//!     admission (`Scheduler::admit`, reserved or unreserved pool, with the
//!     provisioned check-out closure), the scaling-rate token, the metrics
//!     aggregator (`Metrics::begin` + `finish`) and giving the concurrency
//!     back. The idle-environment pick itself (a map lookup and a `Vec::pop`
//!     under a mutex) needs real environments and is not in this figure.
//! (b) over HTTP against a release `stratus server`: a function with
//!     reserved concurrency 1 whose only slot is held by a slow invocation,
//!     driven by 32 keep-alive clients; throttled (429) responses per second.
//!
//! Usage: `stratus-bench-scheduler --stratus target/release/stratus [--secs 5] [--out bench/RESULTS.md]`.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use stratus_bench::{
    self as common, Res, Stop, append_section, call, connect, create, or_exit, start_server,
    utc_date, zip_of,
};
use stratus_lambda::concurrency::Scheduler;
use stratus_lambda::metrics::Metrics;

const PROG: &str = "stratus-bench-scheduler";
const LIVE: usize = 1000;
const CLIENTS: usize = 32;

const SLOW_APP: &[u8] = b"import time\n\ndef handler(event, context):\n    time.sleep(float(event.get('seconds', 0)))\n    return {}\n";

fn zip() -> Vec<u8> {
    or_exit(PROG, 1, zip_of(&[("app.py", SLOW_APP, 0o644)]))
}

/// (a): ns per scheduler round, median of 5 runs of `iters` rounds.
async fn in_process(iters: usize) -> Res<(f64, f64, f64, f64)> {
    let dir = std::env::temp_dir().join(format!("stratus-bench-sched-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = stratus_store::Store::open(&dir).map_err(|e| e.to_string())?;
    let config = stratus_core::Config::with_data_dir(dir.clone());
    let lambda = stratus_lambda::Lambda::new(config, store).map_err(|e| e.to_string())?;
    let region = "us-east-1";
    let body = serde_json::json!({
        "FunctionName": "f0", "Runtime": "python3.12", "Handler": "app.handler",
        "Role": "arn:aws:iam::123456789012:role/bench",
        "Code": {"ZipFile": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, zip())},
    });
    lambda
        .create_function(region, body.to_string().as_bytes())
        .await
        .map_err(|e| e.message.clone())?;
    let rec = lambda.load(region, "f0").map_err(|e| e.message.clone())?;
    let sched = Scheduler::new(10_000, 1_000_000);
    let metrics = Metrics::new();
    // 1,000 live invocations of 1,000 functions.
    let records: Vec<_> = (0..LIVE)
        .map(|i| {
            let mut r = rec.clone();
            r.config.function_name = format!("fn-{i}");
            r
        })
        .collect();
    let mut leases = Vec::new();
    let mut live = Vec::new();
    for r in &records {
        let (l, _) = sched
            .admit(region, &r.config.function_name, None, || None::<()>)
            .map_err(|e| e.message)?;
        leases.push(l);
        live.push(metrics.begin(region, r, &r.config.function_arn, false, false));
    }
    let mut runs = Vec::new();
    for _ in 0..5 {
        let mut t = [0f64; 4];
        for i in 0..iters {
            let r = &records[i % LIVE];
            let name = &r.config.function_name;
            let reserved = (i % 2 == 0).then_some(5);
            let t0 = Instant::now();
            let got = lambda.resolve(region, "f0", None).map_err(|e| e.message)?;
            black_box(&got);
            let t1 = Instant::now();
            let (lease, env) = sched
                .admit(region, name, reserved, || None::<()>)
                .map_err(|e| e.message)?;
            sched
                .scaling_token(region, name, reserved.is_some())
                .map_err(|e| e.message)?;
            black_box(env);
            let t2 = Instant::now();
            let m = metrics.begin(region, r, &r.config.function_arn, false, false);
            m.finish(1.5, false);
            let t3 = Instant::now();
            drop(lease);
            let t4 = Instant::now();
            t[0] += (t1 - t0).as_nanos() as f64;
            t[1] += (t2 - t1).as_nanos() as f64 + (t4 - t3).as_nanos() as f64;
            t[2] += (t3 - t2).as_nanos() as f64;
            t[3] += (t4 - t0).as_nanos() as f64;
        }
        runs.push(t.map(|x| x / iters as f64));
    }
    drop(live);
    drop(leases);
    let _ = std::fs::remove_dir_all(&dir);
    runs.sort_by(|a, b| a[3].total_cmp(&b[3]));
    let m = runs[runs.len() / 2];
    Ok((m[0], m[1], m[2], m[3]))
}

/// (b): 429 responses per second and other responses seen.
async fn throttled(bin: &std::path::Path, secs: usize) -> Res<(f64, u64, u64)> {
    let server = start_server(bin, None, &[], Stop::Term)?;
    let mut s = connect(&server.addr).await?;
    create(
        &mut s,
        "slow",
        "python3.12",
        "app.handler",
        &zip(),
        128,
        300,
    )
    .await?;
    // Wait for Active.
    for _ in 0..100 {
        let r = call(
            &mut s,
            "GET",
            "/2015-03-31/functions/slow",
            &[],
            Bytes::new(),
        )
        .await?;
        if String::from_utf8_lossy(&r.body).contains("\"State\":\"Active\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = call(
        &mut s,
        "PUT",
        "/2017-10-31/functions/slow/concurrency",
        &[("content-type", "application/json")],
        Bytes::from(r#"{"ReservedConcurrentExecutions": 1}"#),
    )
    .await?;
    if r.status != 200 {
        return Err(format!("PutFunctionConcurrency: {}", r.status));
    }
    // The one slot: an invocation that outlasts the measurement.
    let addr = server.addr.clone();
    let hold_secs = secs + 10;
    let holder = tokio::spawn(async move {
        let mut c = connect(&addr).await?;
        call(
            &mut c,
            "POST",
            "/2015-03-31/functions/slow/invocations",
            &[],
            Bytes::from(format!("{{\"seconds\": {hold_secs}}}")),
        )
        .await
    });
    loop {
        let r = call(
            &mut s,
            "POST",
            "/2015-03-31/functions/slow/invocations",
            &[],
            Bytes::from_static(b"{}"),
        )
        .await?;
        if r.status == 429 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let n429 = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (stop, n429, other, addr) = (
            stop.clone(),
            n429.clone(),
            other.clone(),
            server.addr.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut c = connect(&addr).await?;
            while !stop.load(Ordering::Relaxed) {
                let r = call(
                    &mut c,
                    "POST",
                    "/2015-03-31/functions/slow/invocations",
                    &[],
                    Bytes::from_static(b"{}"),
                )
                .await?;
                if r.status == 429 {
                    n429.fetch_add(1, Ordering::Relaxed);
                } else {
                    other.fetch_add(1, Ordering::Relaxed);
                }
            }
            Res::Ok(())
        }));
    }
    let t0 = Instant::now();
    let start429 = n429.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(secs as u64)).await;
    let got = n429.load(Ordering::Relaxed) - start429;
    let elapsed = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    holder.abort();
    Ok((got as f64 / elapsed, got, other.load(Ordering::Relaxed)))
}

fn main() {
    let mut secs = 5;
    let mut iters = 200_000;
    let base = or_exit(
        PROG,
        2,
        common::parse_args(&mut [("--secs", &mut secs), ("--iters", &mut iters)]),
    );
    let rt = or_exit(
        PROG,
        1,
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string()),
    );
    let (lookup, sched, metrics, total) = or_exit(PROG, 1, rt.block_on(in_process(iters)));
    let (rate, n429, other) = or_exit(PROG, 1, rt.block_on(throttled(&base.stratus, secs)));
    let ok = |v: bool| if v { "met" } else { "MISSED" };
    let section = format!(
        "\n## Scheduler: {date}\n\n\
         Machine: {cores} cores. (a) in process, release build, {LIVE} live invocations of {LIVE} functions (leases and metric series held), {iters} rounds, median of 5 runs. \
         (b) release server, loopback HTTP/1.1 keep-alive clients, Python function sleeping in its only slot (reserved concurrency 1), {CLIENTS} clients for {secs} s.\n\n\
         | metric | result | target |\n|---|---|---|\n\
         | scheduler per invoke: record lookup + admit + scaling token + metrics + release | {t:.2} us ({ok_a}) | <= 10 us |\n\
         | of which record lookup (`resolve`, cached record clone) | {l:.2} us | |\n\
         | of which admission, scaling token, release (`Scheduler`) | {s:.2} us | |\n\
         | of which metrics aggregator (`begin` + `finish`, 2 series) | {m:.2} us | |\n\
         | throttled responses (429 ReservedFunctionConcurrentInvocationLimitExceeded) | {rate:.0}/s ({n429} in {secs} s, {other} other answers; {ok_b}) | >= 20,000/s |\n\n\
         Not measured: picking an idle environment from the pool with 1,000 environments (a map lookup and a `Vec::pop` under one mutex; it needs real environments, see the warm invoke figures).\n",
        date = utc_date(),
        cores = common::cores(),
        t = total / 1000.0,
        l = lookup / 1000.0,
        s = sched / 1000.0,
        m = metrics / 1000.0,
        ok_a = ok(total / 1000.0 <= 10.0),
        ok_b = ok(rate >= 20_000.0),
    );
    append_section(PROG, &base.out, &section);
}
