//! Durability benchmarks of Step Functions (`bench/run states`), each
//! against its own release `stratus server` (SQLite store, WAL) driven over
//! loopback HTTP/1.1 keep-alive connections with the json 1.0 protocol
//! (`X-Amz-Target: AWSStepFunctions.<Operation>`):
//!
//! (a) durable state transitions per second: a STANDARD state machine of a
//!     chain of 50 Pass states; `--execs` executions (400) started from
//!     `--conns` connections (16); the clock runs from the first
//!     StartExecution until ListExecutions (statusFilter RUNNING) is empty.
//!     A transition is one state entered, as AWS bills Standard workflows,
//!     so transitions/s = executions x 50 / wall time. Also the p50 and p99
//!     of the executions' durations (stopDate - startDate).
//! (b) server RSS with `--parked` (100,000) STANDARD executions parked in a
//!     one-day Wait state, started from 32 connections (the start rate is
//!     reported too); RSS of the server process is read from
//!     /proc/<pid>/status once it is idle (RSS within 1 MB and under 5% of
//!     a core of CPU for 3 consecutive seconds), and ListExecutions must
//!     list every execution as RUNNING.
//! (c) a Distributed Map (ProcessorConfig Mode DISTRIBUTED, ExecutionType
//!     EXPRESS, one Pass state per child) over `--items` (100,000) items
//!     made by the JSONata range operator (`[0..99999]`) in a STANDARD
//!     parent; items/s from the parent's startDate to stopDate. The same
//!     with ExecutionType STANDARD over `--standard-children` (1,000)
//!     items: every child a durable execution with its own history. When
//!     the service cannot run one, the row says why (the execution's error
//!     and cause). An inline Map over `--items` items in an EXPRESS parent
//!     (StartSyncExecution) is measured as a separate row.
//!
//! `--maps-only 1` runs (c) alone.
//!
//! Usage: `stratus-bench-states --stratus target/release/stratus [--execs 400] [--conns 16] [--parked 100000] [--items 100000] [--standard-children 1000] [--maps-only 0|1] [--out bench/RESULTS.md]`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};
use stratus_bench::{
    self as common, Conn, Res, Stop, append_section, call, connect, or_exit, pct, rss_kb,
    start_server, utc_date,
};

const PROG: &str = "stratus-bench-states";
const ROLE: &str = "arn:aws:iam::123456789012:role/sfn";
/// States in the Pass chain of (a).
const CHAIN: usize = 50;
/// Connections starting the parked executions of (b).
const PARK_CONNS: usize = 32;

/// One Step Functions operation; the response body, or the error with the
/// server's answer.
async fn sfn(s: &mut Conn, op: &str, body: &Value) -> Res<Value> {
    let target = format!("AWSStepFunctions.{op}");
    let r = call(
        s,
        "POST",
        "/",
        &[
            ("x-amz-target", &target),
            ("content-type", "application/x-amz-json-1.0"),
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
    serde_json::from_slice(&r.body).map_err(|e| format!("{op}: {e}"))
}

/// CreateStateMachine; the state machine ARN.
async fn create_machine(s: &mut Conn, name: &str, kind: &str, definition: &Value) -> Res<String> {
    let out = sfn(
        s,
        "CreateStateMachine",
        &json!({"name": name, "definition": definition.to_string(), "roleArn": ROLE, "type": kind}),
    )
    .await?;
    out["stateMachineArn"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("CreateStateMachine: no stateMachineArn in {out}"))
}

/// Starts `n` executions of `machine` (input `{}`) from `conns` keep-alive
/// connections; the seconds it took.
async fn start_many(addr: &str, machine: &str, n: usize, conns: usize) -> Res<f64> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..conns {
        clients.push(connect(addr).await?);
    }
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for mut c in clients {
        let (next, machine) = (next.clone(), machine.to_string());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Res::Ok(());
                }
                let body =
                    json!({"stateMachineArn": machine, "name": format!("e{i}"), "input": "{}"});
                sfn(&mut c, "StartExecution", &body).await?;
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(t0.elapsed().as_secs_f64())
}

/// Every execution of `machine` with `status` (ListExecutions, pages of
/// 1,000).
async fn list_all(s: &mut Conn, machine: &str, status: &str) -> Res<Vec<Value>> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut body =
            json!({"stateMachineArn": machine, "statusFilter": status, "maxResults": 1000});
        if let Some(t) = &token {
            body["nextToken"] = Value::from(t.clone());
        }
        let out = sfn(s, "ListExecutions", &body).await?;
        if let Some(items) = out["executions"].as_array() {
            all.extend(items.iter().cloned());
        }
        match out["nextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => return Ok(all),
        }
    }
}

/// Whether any execution of `machine` is RUNNING.
async fn any_running(s: &mut Conn, machine: &str) -> Res<bool> {
    let out = sfn(
        s,
        "ListExecutions",
        &json!({"stateMachineArn": machine, "statusFilter": "RUNNING", "maxResults": 1}),
    )
    .await?;
    Ok(out["executions"].as_array().is_some_and(|a| !a.is_empty()))
}

struct Transitions {
    execs: usize,
    secs: f64,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// (a): executions of a 50-state Pass chain, to the end of the last one.
async fn transitions(bin: &Path, execs: usize, conns: usize) -> Res<Transitions> {
    let server = start_server(bin, None, &[], Stop::Term)?;
    let mut s = connect(&server.addr).await?;
    let mut states = serde_json::Map::new();
    for i in 0..CHAIN {
        let state = if i + 1 == CHAIN {
            json!({"Type": "Pass", "End": true})
        } else {
            json!({"Type": "Pass", "Next": format!("S{}", i + 1)})
        };
        states.insert(format!("S{i}"), state);
    }
    let def = json!({"StartAt": "S0", "States": states});
    let machine = create_machine(&mut s, "chain", "STANDARD", &def).await?;
    let t0 = Instant::now();
    start_many(&server.addr, &machine, execs, conns).await?;
    let deadline = t0 + Duration::from_secs(600);
    while any_running(&mut s, &machine).await? {
        if Instant::now() > deadline {
            return Err("executions still RUNNING after 600 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let done = list_all(&mut s, &machine, "SUCCEEDED").await?;
    if done.len() != execs {
        let failed = list_all(&mut s, &machine, "FAILED").await?;
        return Err(format!(
            "{} of {execs} executions SUCCEEDED ({} FAILED)",
            done.len(),
            failed.len()
        ));
    }
    let mut ms: Vec<f64> = done
        .iter()
        .filter_map(|e| Some((e["stopDate"].as_f64()? - e["startDate"].as_f64()?) * 1000.0))
        .collect();
    ms.sort_by(f64::total_cmp);
    Ok(Transitions {
        execs,
        secs,
        per_sec: (execs * CHAIN) as f64 / secs,
        p50_ms: pct(&ms, 0.5),
        p99_ms: pct(&ms, 0.99),
    })
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

/// Waits until `pid` is idle: RSS within 1 MB and under 5% of a core of
/// CPU (clock ticks are 1/100 s) for 3 consecutive one-second samples.
/// Returns the seconds waited.
async fn wait_idle(pid: u32, limit: Duration) -> Res<f64> {
    let t0 = Instant::now();
    let (mut rss, mut cpu, mut calm) = (rss_kb(pid), cpu_ticks(pid), 0);
    while calm < 3 {
        if t0.elapsed() > limit {
            return Err(format!("server not idle after {} s", limit.as_secs()));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (r, c) = (rss_kb(pid), cpu_ticks(pid));
        calm = if r.abs_diff(rss) < 1024 && c - cpu < 5 {
            calm + 1
        } else {
            0
        };
        (rss, cpu) = (r, c);
    }
    Ok(t0.elapsed().as_secs_f64())
}

struct Parked {
    n: usize,
    start_rate: f64,
    settle_s: f64,
    rss_before_mb: f64,
    rss_mb: f64,
    running: usize,
}

/// (b): RSS with `n` executions parked in a one-day Wait state.
async fn parked(bin: &Path, n: usize) -> Res<Parked> {
    let server = start_server(bin, None, &[], Stop::Term)?;
    let pid = server.child.id();
    let mut s = connect(&server.addr).await?;
    let def =
        json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 86400, "End": true}}});
    let machine = create_machine(&mut s, "wait", "STANDARD", &def).await?;
    wait_idle(pid, Duration::from_secs(60)).await?;
    let rss_before = rss_kb(pid);
    let secs = start_many(&server.addr, &machine, n, PARK_CONNS).await?;
    let settle_s = wait_idle(pid, Duration::from_secs(600)).await?;
    let rss = rss_kb(pid);
    let running = list_all(&mut s, &machine, "RUNNING").await?.len();
    if running != n {
        return Err(format!("{running} of {n} executions are RUNNING"));
    }
    Ok(Parked {
        n,
        start_rate: n as f64 / secs,
        settle_s,
        rss_before_mb: rss_before as f64 / 1024.0,
        rss_mb: rss as f64 / 1024.0,
        running,
    })
}

/// A Map row: what ran and how fast, or why it did not.
enum MapRow {
    Ran { secs: f64, items_per_sec: f64 },
    Failed(String),
}

/// A JSONata-mode machine whose Map runs one Pass state per item over
/// `[0..items-1]` and outputs the number of results.
/// `children`: None for an inline Map, else the Distributed Map's
/// ExecutionType.
fn map_machine(items: usize, children: Option<&str>) -> Value {
    let mut processor = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}});
    if let Some(t) = children {
        processor["ProcessorConfig"] = json!({"Mode": "DISTRIBUTED", "ExecutionType": t});
    }
    json!({"QueryLanguage": "JSONata", "StartAt": "M", "States": {"M": {
        "Type": "Map",
        "Items": format!("{{% [0..{}] %}}", items - 1),
        "ItemProcessor": processor,
        "Output": "{% {\"count\": $count($states.result)} %}",
        "End": true
    }}})
}

/// Checks a Map execution's output: `{"count": items}`.
fn check_count(output: &str, items: usize) -> Res<()> {
    let v: Value = serde_json::from_str(output).map_err(|e| format!("output {output}: {e}"))?;
    if v["count"].as_u64() != Some(items as u64) {
        return Err(format!("output {output}, expected a count of {items}"));
    }
    Ok(())
}

/// A Distributed Map over `items` items with `children` (EXPRESS or
/// STANDARD) child executions in a STANDARD parent: items/s from the
/// parent's startDate to stopDate.
async fn distributed(s: &mut Conn, name: &str, items: usize, children: &str) -> Res<MapRow> {
    let dist = create_machine(s, name, "STANDARD", &map_machine(items, Some(children))).await?;
    let ex = sfn(
        s,
        "StartExecution",
        &json!({"stateMachineArn": dist, "input": "{}"}),
    )
    .await?;
    let arn = ex["executionArn"].as_str().unwrap_or_default().to_string();
    let deadline = Instant::now() + Duration::from_secs(900);
    let d = loop {
        let d = sfn(s, "DescribeExecution", &json!({"executionArn": arn})).await?;
        if d["status"] != "RUNNING" {
            break d;
        }
        if Instant::now() > deadline {
            return Err("the Distributed Map execution is still RUNNING after 900 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    Ok(if d["status"] == "SUCCEEDED" {
        check_count(d["output"].as_str().unwrap_or("null"), items)?;
        let secs = d["stopDate"].as_f64().unwrap_or(0.0) - d["startDate"].as_f64().unwrap_or(0.0);
        MapRow::Ran {
            secs,
            items_per_sec: items as f64 / secs,
        }
    } else {
        MapRow::Failed(format!(
            "the execution ended {} with {}: {}",
            d["status"].as_str().unwrap_or("?"),
            d["error"].as_str().unwrap_or(""),
            d["cause"].as_str().unwrap_or("")
        ))
    })
}

/// (c): Distributed Maps in a STANDARD parent (EXPRESS children over
/// `items`, STANDARD children over `std_items`); then an inline Map in an
/// EXPRESS parent run with StartSyncExecution.
async fn maps(bin: &Path, items: usize, std_items: usize) -> Res<(MapRow, MapRow, MapRow)> {
    let server = start_server(bin, None, &[], Stop::Term)?;
    let mut s = connect(&server.addr).await?;
    let distributed_express = distributed(&mut s, "dmap", items, "EXPRESS").await?;
    let distributed_standard = distributed(&mut s, "dmap-std", std_items, "STANDARD").await?;
    let inline = create_machine(&mut s, "imap", "EXPRESS", &map_machine(items, None)).await?;
    let t0 = Instant::now();
    let out = sfn(
        &mut s,
        "StartSyncExecution",
        &json!({"stateMachineArn": inline, "input": "{}"}),
    )
    .await?;
    let secs = t0.elapsed().as_secs_f64();
    let inline = if out["status"] == "SUCCEEDED" {
        check_count(out["output"].as_str().unwrap_or("null"), items)?;
        MapRow::Ran {
            secs,
            items_per_sec: items as f64 / secs,
        }
    } else {
        MapRow::Failed(format!(
            "the execution ended {} with {}: {}",
            out["status"].as_str().unwrap_or("?"),
            out["error"].as_str().unwrap_or(""),
            out["cause"].as_str().unwrap_or("")
        ))
    };
    Ok((distributed_express, distributed_standard, inline))
}

/// A table cell for a Map row.
fn map_cell(r: &MapRow, items: usize) -> String {
    match r {
        MapRow::Ran {
            secs,
            items_per_sec,
        } => format!("{items_per_sec:.0} items/s ({items} items in {secs:.2} s)"),
        MapRow::Failed(why) => format!("not measured: {}", why.replace('|', "\\|")),
    }
}

fn main() {
    let (mut execs, mut conns, mut parked_n, mut items) = (400, 16, 100_000, 100_000);
    let (mut std_items, mut maps_only) = (1_000, 0);
    let base = or_exit(
        PROG,
        2,
        common::parse_args(&mut [
            ("--execs", &mut execs),
            ("--conns", &mut conns),
            ("--parked", &mut parked_n),
            ("--items", &mut items),
            ("--standard-children", &mut std_items),
            ("--maps-only", &mut maps_only),
        ]),
    );
    let rt = or_exit(
        PROG,
        1,
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string()),
    );
    let durability = if maps_only == 0 {
        let t = or_exit(
            PROG,
            1,
            rt.block_on(transitions(&base.stratus, execs, conns)),
        );
        eprintln!(
            "{PROG}: transitions: {:.0}/s, p50 {:.1} ms",
            t.per_sec, t.p50_ms
        );
        let p = or_exit(PROG, 1, rt.block_on(parked(&base.stratus, parked_n)));
        eprintln!(
            "{PROG}: parked: {:.1} MB -> {:.1} MB",
            p.rss_before_mb, p.rss_mb
        );
        Some((t, p))
    } else {
        None
    };
    let (dist, dist_std, inline) =
        or_exit(PROG, 1, rt.block_on(maps(&base.stratus, items, std_items)));
    let ok = |v: bool| if v { "met" } else { "MISSED" };
    let map_rows = format!(
        "| Distributed Map over {items} items (JSONata `[0..{last}]`), EXPRESS children (one Pass state), STANDARD parent, startDate to stopDate | {dist} | |\n\
         | Distributed Map over {std_items} items, STANDARD child executions (one Pass state; each a durable execution with its history), STANDARD parent, startDate to stopDate | {dist_std} | |\n\
         | inline Map over {items} items (one Pass state each, JSONata `[0..{last}]`), EXPRESS parent, StartSyncExecution, client time | {inline} | |\n",
        last = items - 1,
        dist = map_cell(&dist, items),
        dist_std = map_cell(&dist_std, std_items),
        inline = map_cell(&inline, items),
    );
    let machine = format!(
        "Machine: {cores} cores. Release server, SQLite store (WAL, synchronous=NORMAL: a commit survives a killed process, not an OS crash), \
         loopback HTTP/1.1 keep-alive clients, json 1.0 protocol.",
        cores = common::cores(),
    );
    let section = match durability {
        None => format!(
            "\n## Step Functions Distributed Map: {date}\n\n{machine} Each child of a Distributed Map is a child execution of its Map Run \
             (DescribeMapRun counts it); STANDARD children are durable executions listed by ListExecutions(mapRunArn).\n\n\
             | measure | value | target |\n|---|---|---|\n{map_rows}",
            date = utc_date(),
        ),
        Some((t, p)) => format!(
            "\n## Step Functions durability: {date}\n\n\
             {machine} A transition is one state entered (as AWS bills Standard workflows); \
             every Standard execution's history is committed before its end is visible.\n\n\
             | measure | value | target |\n|---|---|---|\n\
             | durable state transitions, STANDARD, chain of {CHAIN} Pass states, {execs} executions started from {conns} connections, first StartExecution to none RUNNING | {tps:.0}/s ({tr} transitions in {secs:.2} s; {ok_a}) | >= 5,000/s |\n\
             | execution duration (stopDate - startDate) p50 / p99 | {p50:.1} ms / {p99:.1} ms | |\n\
             | StartExecution rate, {n} STANDARD executions into a 86,400 s Wait, {PARK_CONNS} connections | {rate:.0}/s | |\n\
             | server RSS before / with {n} executions parked (idle {settle:.0} s after the last start; ListExecutions: {running} RUNNING) | {before:.1} MB / {rss:.1} MB ({per:.2} KB per execution; {ok_b}) | <= 200 MB |\n\
             {map_rows}",
            date = utc_date(),
            tps = t.per_sec,
            tr = t.execs * CHAIN,
            secs = t.secs,
            ok_a = ok(t.per_sec >= 5000.0),
            p50 = t.p50_ms,
            p99 = t.p99_ms,
            n = p.n,
            rate = p.start_rate,
            settle = p.settle_s,
            running = p.running,
            before = p.rss_before_mb,
            rss = p.rss_mb,
            per = (p.rss_mb - p.rss_before_mb) * 1024.0 / p.n as f64,
            ok_b = ok(p.rss_mb <= 200.0),
        ),
    };
    append_section(PROG, &base.out, &section);
}
