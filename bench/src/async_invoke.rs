//! Benchmark of the asynchronous invocation queue (`bench/run async`):
//! durable enqueue rate. 32 keep-alive clients send `InvocationType: Event`
//! invokes to a release `stratus server` for a fixed time; every 202 means
//! the event was committed to SQLite first (group commit). The function has
//! reserved concurrency 0, so the events stay queued and the figure is the
//! queue's, not the function's.
//!
//! Usage: `stratus-bench-async --stratus target/release/stratus [--secs 5] [--out bench/RESULTS.md]`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use stratus_bench::{
    Res, Stop, append_section, call, connect, create, or_exit, start_server, utc_date, zip_of,
};

const PROG: &str = "stratus-bench-async";
const CLIENTS: usize = 32;
const APP: &[u8] = b"def handler(event, context):\n    return event\n";

async fn run(bin: &std::path::Path, secs: u64) -> Res<(f64, u64, Vec<f64>)> {
    let server = start_server(bin, None, &[], Stop::Term)?;
    let mut s = connect(&server.addr).await?;
    let zip = zip_of(&[("app.py", APP, 0o644)])?;
    create(&mut s, "sink", "python3.12", "app.handler", &zip, 128, 30).await?;
    let r = call(
        &mut s,
        "PUT",
        "/2017-10-31/functions/sink/concurrency",
        &[("content-type", "application/json")],
        Bytes::from(r#"{"ReservedConcurrentExecutions": 0}"#),
    )
    .await?;
    if r.status != 200 {
        return Err(format!("PutFunctionConcurrency: {}", r.status));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (stop, accepted, other, addr) = (
            stop.clone(),
            accepted.clone(),
            other.clone(),
            server.addr.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut conn = connect(&addr).await?;
            let mut lat = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let r = call(
                    &mut conn,
                    "POST",
                    "/2015-03-31/functions/sink/invocations",
                    &[("x-amz-invocation-type", "Event")],
                    Bytes::from(format!("{{\"client\": {c}, \"n\": {i}}}")),
                )
                .await?;
                lat.push(t0.elapsed().as_secs_f64() * 1e6);
                if r.status == 202 {
                    accepted.fetch_add(1, Ordering::Relaxed);
                } else {
                    other.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
            Ok::<Vec<f64>, String>(lat)
        }));
    }
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.map_err(|e| e.to_string())??);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    Ok((
        accepted.load(Ordering::Relaxed) as f64 / elapsed,
        other.load(Ordering::Relaxed),
        lat,
    ))
}

#[tokio::main]
async fn main() {
    let mut secs = 5usize;
    let args = or_exit(
        PROG,
        2,
        stratus_bench::parse_args(&mut [("--secs", &mut secs)]),
    );
    let (rate, other, lat) = or_exit(PROG, 1, run(&args.stratus, secs as u64).await);
    let p50 = stratus_bench::pct(&lat, 0.50);
    let p99 = stratus_bench::pct(&lat, 0.99);
    let section = format!(
        "## Asynchronous invocation: {date}\n\n\
         Release `stratus server`, {cores} cores, {CLIENTS} keep-alive clients for {secs} s sending \
         `InvocationType: Event` invokes to one function with reserved concurrency 0 (events stay queued). \
         Each 202 is answered after the event is committed to SQLite (WAL, group commit).\n\n\
         | measure | value | target |\n|---|---|---|\n\
         | durable enqueue rate | {rate:.0} events/s | >= 5,000 events/s |\n\
         | Invoke (Event) latency p50 / p99 | {p50:.0} us / {p99:.0} us | |\n\
         | answers other than 202 | {other} | 0 |\n",
        date = utc_date(),
        cores = stratus_bench::cores(),
    );
    print!("{section}");
    append_section(PROG, &args.out, &section);
}
