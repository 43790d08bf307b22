//! SQS throughput through the real HTTP API of a release `stratus server`
//! (json protocol, as current SDKs speak it), with keep-alive clients:
//!
//! - single: each client sends one message per `SendMessage`, then
//!   receives with `MaxNumberOfMessages=1` and deletes each with
//!   `DeleteMessage`;
//! - batch: `SendMessageBatch` of 10, `ReceiveMessage` of up to 10 and
//!   `DeleteMessageBatch` of what was received;
//! - pipeline: producers sending batches while consumers receive and
//!   delete batches at the same time, on one queue.
//!
//! Every send is acknowledged only after its group commit, so the figures
//! include durability. Each figure counts messages, not requests.
//!
//! Usage: `stratus-bench-sqs --stratus target/release/stratus
//! [--clients 16] [--single 4000] [--batch 40000] [--out bench/RESULTS.md]`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};
use stratus_bench::{
    Conn, Res, Stop, append_section, call, connect, or_exit, start_server, utc_date,
};

const PROG: &str = "stratus-bench-sqs";
const BODY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123";

async fn sqs(c: &mut Conn, op: &str, body: Value) -> Res<Value> {
    let target = format!("AmazonSQS.{op}");
    let r = call(
        c,
        "POST",
        "/",
        &[
            ("x-amz-target", target.as_str()),
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

fn handles(v: &Value) -> Vec<String> {
    v.get("Messages")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|m| m.get("ReceiptHandle").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `clients` tasks of `f(conn, client index)` and returns the time all took.
async fn run<F, Fut>(addr: &str, clients: usize, f: F) -> Res<Duration>
where
    F: Fn(Conn, usize) -> Fut + Send + Sync + 'static + Clone,
    Fut: std::future::Future<Output = Res<()>> + Send + 'static,
{
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(connect(addr).await?);
    }
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (i, c) in conns.into_iter().enumerate() {
        let f = f.clone();
        tasks.push(tokio::spawn(async move { f(c, i).await }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(t0.elapsed())
}

/// When the last of `target` messages was consumed.
type Finish = Arc<Mutex<Option<Instant>>>;

/// Receives and deletes until `target` messages were consumed in total
/// (and notes in `finish` when that happened: idle long polls of the other
/// consumers after the end do not count).
async fn consume(
    mut c: Conn,
    url: String,
    done: Arc<AtomicUsize>,
    target: usize,
    max: usize,
    finish: Finish,
) -> Res<()> {
    while done.load(Ordering::Relaxed) < target {
        let r = sqs(
            &mut c,
            "ReceiveMessage",
            json!({"QueueUrl": url, "MaxNumberOfMessages": max, "WaitTimeSeconds": 1}),
        )
        .await?;
        let hs = handles(&r);
        if hs.is_empty() {
            continue;
        }
        if max == 1 {
            for h in &hs {
                sqs(
                    &mut c,
                    "DeleteMessage",
                    json!({"QueueUrl": url, "ReceiptHandle": h}),
                )
                .await?;
            }
        } else {
            let entries: Vec<Value> = hs
                .iter()
                .enumerate()
                .map(|(i, h)| json!({"Id": i.to_string(), "ReceiptHandle": h}))
                .collect();
            let d = sqs(
                &mut c,
                "DeleteMessageBatch",
                json!({"QueueUrl": url, "Entries": entries}),
            )
            .await?;
            if d.get("Failed")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty())
            {
                return Err(format!("DeleteMessageBatch failed entries: {d}"));
            }
        }
        let before = done.fetch_add(hs.len(), Ordering::Relaxed);
        if before < target && before + hs.len() >= target {
            *finish.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        }
    }
    Ok(())
}

async fn send(mut c: Conn, url: String, count: usize, batch: bool) -> Res<()> {
    if batch {
        let entries: Vec<Value> = (0..10)
            .map(|i| json!({"Id": i.to_string(), "MessageBody": BODY}))
            .collect();
        for _ in 0..count / 10 {
            let r = sqs(
                &mut c,
                "SendMessageBatch",
                json!({"QueueUrl": url, "Entries": entries}),
            )
            .await?;
            if r.get("Failed")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty())
            {
                return Err(format!("SendMessageBatch failed entries: {r}"));
            }
        }
    } else {
        for _ in 0..count {
            sqs(
                &mut c,
                "SendMessage",
                json!({"QueueUrl": url, "MessageBody": BODY}),
            )
            .await?;
        }
    }
    Ok(())
}

struct Phase {
    send: f64,
    consume: f64,
    total: f64,
}

async fn phase(addr: &str, url: &str, clients: usize, messages: usize, batch: bool) -> Res<Phase> {
    let per = messages / clients;
    let n = per * clients;
    let u = url.to_string();
    let sent = run(addr, clients, move |c, _| send(c, u.clone(), per, batch)).await?;
    let done = Arc::new(AtomicUsize::new(0));
    let u = url.to_string();
    let d = done.clone();
    let max = if batch { 10 } else { 1 };
    let finish: Finish = Arc::default();
    let f = finish.clone();
    let t0 = Instant::now();
    run(addr, clients, move |c, _| {
        consume(c, u.clone(), d.clone(), n, max, f.clone())
    })
    .await?;
    let consumed = finish
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .map_or_else(|| t0.elapsed(), |end| end - t0);
    Ok(Phase {
        send: n as f64 / sent.as_secs_f64(),
        consume: n as f64 / consumed.as_secs_f64(),
        total: n as f64 / (sent + consumed).as_secs_f64(),
    })
}

/// Producers and consumers at the same time: messages/s through the queue.
async fn pipeline(addr: &str, url: &str, clients: usize, messages: usize) -> Res<f64> {
    let producers = clients / 2;
    let per = messages / producers / 10 * 10;
    let n = per * producers;
    let done = Arc::new(AtomicUsize::new(0));
    let u = url.to_string();
    let d = done.clone();
    let finish: Finish = Arc::default();
    let f = finish.clone();
    let t0 = Instant::now();
    run(addr, clients, move |c, i| {
        let u = u.clone();
        let d = d.clone();
        let f = f.clone();
        async move {
            if i < producers {
                send(c, u, per, true).await
            } else {
                consume(c, u, d, n, 10, f).await
            }
        }
    })
    .await?;
    let t = finish
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .map_or_else(|| t0.elapsed(), |end| end - t0);
    Ok(n as f64 / t.as_secs_f64())
}

fn main() {
    let mut clients = 16usize;
    let mut single = 4000usize;
    let mut batch = 40_000usize;
    let args = or_exit(
        PROG,
        2,
        stratus_bench::parse_args(&mut [
            ("--clients", &mut clients),
            ("--single", &mut single),
            ("--batch", &mut batch),
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
    let server = or_exit(PROG, 1, start_server(&args.stratus, None, &[], Stop::Term));
    let addr = server.addr.clone();
    let result: Res<String> = rt.block_on(async move {
        let mut c = connect(&addr).await?;
        let url = sqs(&mut c, "CreateQueue", json!({"QueueName": "bench"})).await?["QueueUrl"]
            .as_str()
            .ok_or("CreateQueue: no QueueUrl")?
            .to_string();
        let one = phase(&addr, &url, clients, single, false).await?;
        let ten = phase(&addr, &url, clients, batch, true).await?;
        let pipe = pipeline(&addr, &url, clients, batch).await?;
        let cpu = stratus_bench::cores();
        Ok(format!(
            "\n## SQS throughput ({date})\n\n\
             `stratus-bench-sqs`: release `stratus server`, json protocol over HTTP/1.1 keep-alive, \
             {clients} concurrent clients, {body}-byte bodies, {cpu} CPU cores; every send acknowledged \
             after its group commit. Messages per second:\n\n\
             | mode | send | receive + delete | send, then receive + delete | producers and consumers at once |\n\
             |---|---|---|---|---|\n\
             | single (`SendMessage`, `ReceiveMessage` of 1, `DeleteMessage`; {single} messages) | {:.0} | {:.0} | {:.0} | |\n\
             | batch of 10 (`SendMessageBatch`, `ReceiveMessage` of 10, `DeleteMessageBatch`; {batch} messages) | {:.0} | {:.0} | {:.0} | {:.0} |\n",
            one.send,
            one.consume,
            one.total,
            ten.send,
            ten.consume,
            ten.total,
            pipe,
            date = utc_date(),
            body = BODY.len(),
        ))
    });
    let section = or_exit(PROG, 1, result);
    drop(server);
    append_section(PROG, &args.out, &section);
}
