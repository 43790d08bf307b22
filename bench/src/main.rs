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

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use serde_json::{Value, json};

type Res<T> = Result<T, String>;

/// Memory of the benchmark functions: 1,769 MB is one full vCPU on AWS (and
/// under stratus's cgroup CPU limits), so the figures measure the platform,
/// not the CPU share of a small function (128 MB gets 7.2% of a vCPU).
const BENCH_MEMORY_MB: u32 = 1769;

struct Args {
    stratus: PathBuf,
    noop_zip: PathBuf,
    out: PathBuf,
    warm_n: usize,
    secs: u64,
}

fn parse_args() -> Res<Args> {
    let mut a = Args {
        stratus: "target/release/stratus".into(),
        noop_zip: "tests/.build/rust_noop.zip".into(),
        out: "bench/RESULTS.md".into(),
        warm_n: 5000,
        secs: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--stratus" => a.stratus = v.into(),
            "--noop-zip" => a.noop_zip = v.into(),
            "--out" => a.out = v.into(),
            "--warm" => a.warm_n = v.parse().map_err(|e| format!("--warm: {e}"))?,
            "--secs" => a.secs = v.parse().map_err(|e| format!("--secs: {e}"))?,
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    Ok(a)
}

struct Server {
    child: Child,
    addr: String,
    startup: Duration,
    _dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

fn start_server(bin: &PathBuf) -> Res<Server> {
    let dir = std::env::temp_dir().join(format!("stratus-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let t0 = Instant::now();
    let mut child = Command::new(bin)
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .env("STRATUS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(out).lines();
    let addr = loop {
        let line = lines
            .next()
            .ok_or("server exited before listening")?
            .map_err(|e| e.to_string())?;
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.trim().to_string();
        }
    };
    let startup = t0.elapsed();
    std::thread::spawn(move || for _ in lines {});
    Ok(Server {
        child,
        addr,
        startup,
        _dir: dir,
    })
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn connect(addr: &str) -> Res<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(send)
}

struct Resp {
    status: u16,
    headers: hyper::HeaderMap,
    body: Bytes,
}

async fn call(
    s: &mut SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Res<Resp> {
    s.ready().await.map_err(|e| e.to_string())?;
    let mut b = Request::builder().method(method).uri(path).header("host", "127.0.0.1").header(
        "authorization",
        "AWS4-HMAC-SHA256 Credential=bench/20260101/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=0",
    );
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(body)).map_err(|e| e.to_string())?;
    let resp = s.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Resp {
        status,
        headers,
        body,
    })
}

fn zip_of(files: &[(&str, &[u8], u32)]) -> Res<Vec<u8>> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data, mode) in files {
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
        w.start_file(*name, opts).map_err(|e| e.to_string())?;
        w.write_all(data).map_err(|e| e.to_string())?;
    }
    Ok(w.finish().map_err(|e| e.to_string())?.into_inner())
}

async fn create(
    s: &mut SendRequest<Full<Bytes>>,
    name: &str,
    runtime: &str,
    handler: &str,
    zip: &[u8],
) -> Res<()> {
    let body = json!({
        "FunctionName": name, "Runtime": runtime, "Handler": handler,
        "Role": "arn:aws:iam::123456789012:role/bench", "MemorySize": BENCH_MEMORY_MB, "Timeout": 30,
        "Code": {"ZipFile": base64::engine::general_purpose::STANDARD.encode(zip)},
    });
    let r = call(
        s,
        "POST",
        "/2015-03-31/functions",
        &[("content-type", "application/json")],
        Bytes::from(body.to_string()),
    )
    .await?;
    if r.status != 201 {
        return Err(format!(
            "create {name}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        ));
    }
    Ok(())
}

async fn invoke(
    s: &mut SendRequest<Full<Bytes>>,
    name: &str,
    payload: &'static str,
    tail: bool,
) -> Res<Resp> {
    let path = format!("/2015-03-31/functions/{name}/invocations");
    let h: &[(&str, &str)] = if tail {
        &[("x-amz-log-type", "Tail")]
    } else {
        &[]
    };
    let r = call(s, "POST", &path, h, Bytes::from_static(payload.as_bytes())).await?;
    if r.status != 200 || r.headers.contains_key("x-amz-function-error") {
        return Err(format!(
            "invoke {name}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        ));
    }
    Ok(r)
}

fn field_ms(report: &str, key: &str) -> Option<f64> {
    report
        .split('\t')
        .find_map(|p| p.trim().strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches(" ms").parse().ok())
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
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
async fn cold_start(
    s: &mut SendRequest<Full<Bytes>>,
    name: &str,
    runtime: &str,
    reps: usize,
) -> Res<Cold> {
    let mut rows = Vec::new();
    for i in 0..reps {
        let body = json!({"Description": format!("cold {i}")}).to_string();
        let path = format!("/2015-03-31/functions/{name}/configuration");
        let r = call(
            s,
            "PUT",
            &path,
            &[("content-type", "application/json")],
            Bytes::from(body),
        )
        .await?;
        if r.status != 200 {
            return Err(format!(
                "update {name}: {}",
                String::from_utf8_lossy(&r.body)
            ));
        }
        // Let the update finish so the invoke does not wait on it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let t = Instant::now();
        let r = invoke(s, name, "{}", true).await?;
        let client = t.elapsed().as_secs_f64() * 1000.0;
        let log = r
            .headers
            .get("x-amz-log-result")
            .and_then(|v| {
                base64::engine::general_purpose::STANDARD
                    .decode(v.as_bytes())
                    .ok()
            })
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let report = log
            .lines()
            .find(|l| l.starts_with("REPORT"))
            .ok_or("no REPORT line")?;
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

/// Warm sequential latency (p50, p99 in us) and 32-client throughput
/// (invokes/s) of the same no-op function under `cargo lambda watch`, if
/// `cargo lambda` runs here. The function's project is `fn_dir`.
async fn cargo_lambda_peer(
    fn_dir: &str,
    target_dir: &str,
    n: usize,
    secs: u64,
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
            .env("CARGO_TARGET_DIR", target_dir)
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
        for _ in 0..200 {
            invoke(&mut c, "bootstrap", "{}", false).await?;
        }
        let mut lat = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            invoke(&mut c, "bootstrap", "{}", false).await?;
            lat.push(t.elapsed().as_secs_f64() * 1e6);
        }
        lat.sort_by(f64::total_cmp);
        let rate = throughput(&addr, "bootstrap", secs).await?;
        Ok(Some((pct(&lat, 0.5), pct(&lat, 0.99), rate)))
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
async fn throughput(addr: &str, name: &'static str, secs: u64) -> Res<f64> {
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
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let c1 = count.load(Ordering::Relaxed);
    let rate = (c1 - c0) as f64 / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(rate)
}

async fn run(a: Args) -> Res<String> {
    let noop = std::fs::read(&a.noop_zip)
        .map_err(|e| format!("{}: {e} (build it with bench/run)", a.noop_zip.display()))?;
    let srv = start_server(&a.stratus)?;
    let pid = srv.child.id();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_rss = rss_kb(pid);
    let mut s = connect(&srv.addr).await?;

    create(&mut s, "noop", "provided.al2023", "bootstrap", &noop).await?;
    let py = zip_of(&[(
        "app.py",
        b"def handler(event, context):\n    return event\n",
        0o644,
    )])?;
    create(&mut s, "py-noop", "python3.12", "app.handler", &py).await?;
    let js = zip_of(&[(
        "index.js",
        b"exports.handler = async (event) => event;\n",
        0o644,
    )])?;
    create(&mut s, "node-noop", "nodejs20.x", "index.handler", &js).await?;
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
    for _ in 0..200 {
        invoke(&mut s, "noop", "{}", false).await?;
    }
    let mut lat = Vec::with_capacity(a.warm_n);
    for _ in 0..a.warm_n {
        let t = Instant::now();
        invoke(&mut s, "noop", "{}", false).await?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    lat.sort_by(f64::total_cmp);
    let (p50, p99) = (pct(&lat, 0.5), pct(&lat, 0.99));

    // Throughput with 32 concurrent clients.
    let rate = throughput(&srv.addr, "noop", a.secs).await?;

    // 100 warm environments: 100 overlapping invocations of a function that
    // holds each one for 300 ms.
    let sleeper = zip_of(&[(
        "app.py",
        b"import time\ndef handler(event, context):\n    time.sleep(0.3)\n    return 1\n",
        0o644,
    )])?;
    create(&mut s, "sleeper", "python3.12", "app.handler", &sleeper).await?;
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

    let now = time::OffsetDateTime::now_utc();
    let date = now
        .format(&time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute] UTC"
        ))
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
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
                "\nSame no-op function under `cargo lambda watch --release` (cargo-lambda 1.9), same client, same run: p50 {cp50:.0} us, p99 {cp99:.0} us, {crate_:.0} invokes/s with 32 clients. Ratio cargo-lambda / stratus: p50 {:.2}x, throughput {:.2}x.\n",
                cp50 / p50,
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
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("stratus-bench: {e}");
            std::process::exit(2);
        }
    };
    let out_path = a.out.clone();
    match run(a).await {
        Ok(section) => {
            print!("{section}");
            let mut f = match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&out_path)
            {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("stratus-bench: {}: {e}", out_path.display());
                    std::process::exit(1);
                }
            };
            let _ = f.write_all(section.as_bytes());
        }
        Err(e) => {
            eprintln!("stratus-bench: {e}");
            std::process::exit(1);
        }
    }
}
