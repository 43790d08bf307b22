//! EventBridge benchmarks:
//!
//! * matching one event against 1,000 rules of varied patterns (exact
//!   sources and detail types, prefixes, suffixes, numeric ranges,
//!   anything-but, exists, wildcards, CIDR blocks, `$or`), in process, with
//!   the rule index stratus uses and, for comparison, testing every rule;
//! * PutEvents throughput through a release `stratus server`: 32 keep-alive
//!   clients sending batches of 10 entries, first to a bus with no matching
//!   rule, then to the default bus where a rule matches every event and
//!   forwards it to another bus (each matched event is committed as a
//!   pending delivery before PutEvents answers).
//!
//! Usage: `stratus-bench-events --stratus target/release/stratus [--secs 5] [--out bench/RESULTS.md]`.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};
use stratus_bench::{Res, Stop, append_section, call, connect, or_exit, start_server, utc_date};
use stratus_events::matcher::RuleSet;
use stratus_events::pattern::Pattern;

const PROG: &str = "stratus-bench-events";
const RULES: usize = 1000;
const CLIENTS: usize = 32;
const BATCH: usize = 10;

/// Rule `i` of the 1,000: a mix of the pattern forms users write.
fn pattern(i: usize) -> String {
    let src = format!("app.service{}", i % 100);
    match i % 10 {
        0 => json!({"source": [src]}),
        1 => json!({"source": [src], "detail-type": [format!("Order {}", i % 7)]}),
        2 => json!({"source": [src], "detail": {"amount": [{"numeric": [">=", i, "<", i * 10 + 1]}]}}),
        3 => json!({"source": [src], "detail": {"state": [{"anything-but": ["failed", "cancelled"]}]}}),
        4 => json!({"source": [src], "detail": {"customer": {"tier": ["gold", "platinum"]}}}),
        5 => json!({"detail-type": [format!("Order {}", i % 7)], "detail": {"region": [{"prefix": "eu-"}]}}),
        6 => json!({"source": [src], "detail": {"file": [{"suffix": ".png"}], "size": [{"exists": true}]}}),
        7 => json!({"source": [src], "detail": {"ip": [{"cidr": "10.0.0.0/8"}]}}),
        8 => json!({"source": [{"prefix": format!("app.service{}", i % 100)}],
                    "detail": {"path": [{"wildcard": "*/orders/*"}]}}),
        _ => json!({"source": [src], "$or": [
            {"detail": {"amount": [{"numeric": [">", 1000]}]}},
            {"detail": {"priority": [true]}}
        ]}),
    }
    .to_string()
}

fn event() -> Value {
    json!({
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "Order 3",
        "source": "app.service42",
        "account": "123456789012",
        "time": "2024-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:dynamodb:us-east-1:123456789012:table/orders"],
        "detail": {
            "amount": 4300, "state": "paid", "customer": {"tier": "gold", "id": "c-1"},
            "region": "eu-west-1", "file": "receipt.png", "size": 2048, "ip": "10.1.2.3",
            "path": "/api/orders/17", "priority": false
        }
    })
}

/// (index ns per event, brute-force ns per event, rules matched).
fn matching() -> Res<(f64, f64, usize)> {
    let patterns: Vec<Pattern> = (0..RULES)
        .map(|i| Pattern::parse(&pattern(i)).map_err(|e| format!("rule {i}: {e}")))
        .collect::<Res<_>>()?;
    let set = RuleSet::new(patterns.clone());
    let ev = event();
    let matched = set.matching(&ev).len();
    let brute: usize = patterns.iter().filter(|p| p.matches(&ev)).count();
    if matched != brute {
        return Err(format!(
            "index found {matched} rules, testing all found {brute}"
        ));
    }
    let time = |f: &dyn Fn() -> usize| {
        for _ in 0..1000 {
            black_box(f());
        }
        let n = 20_000;
        let t0 = Instant::now();
        for _ in 0..n {
            black_box(f());
        }
        t0.elapsed().as_secs_f64() * 1e9 / n as f64
    };
    let indexed = time(&|| set.matching(black_box(&ev)).len());
    let all = time(&|| {
        patterns
            .iter()
            .filter(|p| p.matches(black_box(&ev)))
            .count()
    });
    Ok((indexed, all, matched))
}

async fn events_call(s: &mut stratus_bench::Conn, op: &str, body: Value) -> Res<Value> {
    let r = call(
        s,
        "POST",
        "/",
        &[
            ("x-amz-target", &format!("AWSEvents.{op}")),
            ("content-type", "application/x-amz-json-1.1"),
        ],
        Bytes::from(body.to_string()),
    )
    .await?;
    if r.status != 200 {
        return Err(format!(
            "{op}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        ));
    }
    serde_json::from_slice(&r.body).map_err(|e| e.to_string())
}

/// Events per second accepted by PutEvents on `bus`, and calls answered
/// with failed entries.
async fn throughput(addr: &str, bus: &str, secs: u64) -> Res<(f64, u64)> {
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (stop, accepted, failed, addr, bus) = (
            stop.clone(),
            accepted.clone(),
            failed.clone(),
            addr.to_string(),
            bus.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let mut conn = connect(&addr).await?;
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let entries: Vec<Value> = (0..BATCH)
                    .map(|k| {
                        json!({"Source": "bench", "DetailType": "Tick", "EventBusName": bus,
                               "Detail": json!({"client": c, "n": n, "k": k}).to_string()})
                    })
                    .collect();
                let out = events_call(&mut conn, "PutEvents", json!({"Entries": entries})).await?;
                let f = out["FailedEntryCount"].as_u64().unwrap_or(BATCH as u64);
                accepted.fetch_add(BATCH as u64 - f, Ordering::Relaxed);
                failed.fetch_add(f, Ordering::Relaxed);
                n += 1;
            }
            Ok::<(), String>(())
        }));
    }
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    Ok((
        accepted.load(Ordering::Relaxed) as f64 / elapsed,
        failed.load(Ordering::Relaxed),
    ))
}

async fn server_figures(bin: &std::path::Path, secs: u64) -> Res<(f64, f64, u64)> {
    let server = start_server(bin, None, &[], Stop::Term)?;
    let mut s = connect(&server.addr).await?;
    events_call(&mut s, "CreateEventBus", json!({"Name": "quiet"})).await?;
    events_call(&mut s, "CreateEventBus", json!({"Name": "sink"})).await?;
    events_call(
        &mut s,
        "PutRule",
        json!({"Name": "all", "EventPattern": r#"{"source": ["bench"]}"#}),
    )
    .await?;
    events_call(
        &mut s,
        "PutTargets",
        json!({"Rule": "all", "Targets": [{"Id": "sink",
            "Arn": "arn:aws:events:us-east-1:123456789012:event-bus/sink"}]}),
    )
    .await?;
    let (unmatched, f1) = throughput(&server.addr, "quiet", secs).await?;
    let (matched, f2) = throughput(&server.addr, "default", secs).await?;
    Ok((unmatched, matched, f1 + f2))
}

#[tokio::main]
async fn main() {
    let mut secs = 5usize;
    let args = or_exit(
        PROG,
        2,
        stratus_bench::parse_args(&mut [("--secs", &mut secs)]),
    );
    let (indexed_ns, all_ns, matched) = or_exit(PROG, 1, matching());
    let (unmatched, matched_rate, failed) =
        or_exit(PROG, 1, server_figures(&args.stratus, secs as u64).await);
    let met = if indexed_ns <= 50_000.0 {
        "met"
    } else {
        "not met"
    };
    let section = format!(
        "## EventBridge: {date}\n\n\
         Machine: {cores} cores. Matching: one event against {RULES} compiled rules of ten pattern forms \
         (exact, prefix, suffix, numeric range, anything-but, nested objects, exists, CIDR, wildcard, $or; \
         {matched} of them match), release build, mean of 20,000 runs. PutEvents: release `stratus server`, \
         {CLIENTS} keep-alive clients for {secs} s each, {BATCH} entries per call.\n\n\
         | measure | value | target |\n|---|---|---|\n\
         | match one event against {RULES} rules (rule index) | {idx:.2} us ({met}) | <= 50 us |\n\
         | match one event against {RULES} rules (testing every rule) | {all:.2} us | |\n\
         | PutEvents, no rule matches | {unmatched:.0} events/s | |\n\
         | PutEvents, one rule matches every event (delivery committed before the answer) | {matched_rate:.0} events/s | |\n\
         | failed entries | {failed} | 0 |\n",
        date = utc_date(),
        cores = stratus_bench::cores(),
        idx = indexed_ns / 1000.0,
        all = all_ns / 1000.0,
    );
    print!("{section}");
    append_section(PROG, &args.out, &section);
}
