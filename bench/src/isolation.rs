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

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use serde_json::{Value, json};

type Res<T> = Result<T, String>;
type Conn = SendRequest<Full<Bytes>>;

struct Args {
    stratus: PathBuf,
    noop_zip: PathBuf,
    out: PathBuf,
    envs: usize,
    reps: usize,
}

fn parse_args() -> Res<Args> {
    let mut a = Args {
        stratus: "target/release/stratus".into(),
        noop_zip: "tests/.build/rust_noop.zip".into(),
        out: "bench/RESULTS.md".into(),
        envs: 1000,
        reps: 15,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--stratus" => a.stratus = v.into(),
            "--noop-zip" => a.noop_zip = v.into(),
            "--out" => a.out = v.into(),
            "--envs" => a.envs = v.parse().map_err(|e| format!("--envs: {e}"))?,
            "--reps" => a.reps = v.parse().map_err(|e| format!("--reps: {e}"))?,
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    Ok(a)
}

struct Server {
    child: Child,
    addr: String,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM: the server shuts its environments down and removes its
        // cgroups.
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_server(bin: &Path, isolation: &str, extra: &[&str]) -> Res<Server> {
    let dir = std::env::temp_dir().join(format!(
        "stratus-bench-iso-{}-{isolation}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(bin)
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--isolation",
            isolation,
        ])
        .args(extra)
        .arg("--data-dir")
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
    std::thread::spawn(move || for _ in lines {});
    Ok(Server { child, addr, dir })
}

fn proc_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn mem_available_mb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0)
        / 1024
}

async fn connect(addr: &str) -> Res<Conn> {
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
    s: &mut Conn,
    method: &str,
    path: &str,
    hdrs: &[(&str, &str)],
    body: Bytes,
) -> Res<Resp> {
    s.ready().await.map_err(|e| e.to_string())?;
    let mut b = Request::builder().method(method).uri(path).header("host", "127.0.0.1").header(
        "authorization",
        "AWS4-HMAC-SHA256 Credential=bench/20260101/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=0",
    );
    for (k, v) in hdrs {
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
    s: &mut Conn,
    name: &str,
    runtime: &str,
    handler: &str,
    zip: &[u8],
    memory: u32,
) -> Res<()> {
    let body = json!({
        "FunctionName": name, "Runtime": runtime, "Handler": handler,
        "Role": "arn:aws:iam::123456789012:role/bench", "MemorySize": memory, "Timeout": 60,
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

/// Invokes with LogType Tail; returns the client latency (ms) and the
/// decoded log tail.
async fn invoke(s: &mut Conn, name: &str, payload: &str) -> Res<(f64, String, Bytes)> {
    let path = format!("/2015-03-31/functions/{name}/invocations");
    let t = Instant::now();
    let r = call(
        s,
        "POST",
        &path,
        &[("x-amz-log-type", "Tail")],
        Bytes::from(payload.to_string()),
    )
    .await?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    if r.status != 200 || r.headers.contains_key("x-amz-function-error") {
        return Err(format!(
            "invoke {name}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        ));
    }
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
    Ok((ms, log, r.body))
}

fn field_ms(log: &str, key: &str) -> Option<f64> {
    let report = log.lines().find(|l| l.starts_with("REPORT"))?;
    report
        .split('\t')
        .find_map(|p| p.trim().strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches(" ms").parse().ok())
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn retire(s: &mut Conn, name: &str, i: usize) -> Res<()> {
    let body = json!({"Description": format!("cold {i}")}).to_string();
    let r = call(
        s,
        "PUT",
        &format!("/2015-03-31/functions/{name}/configuration"),
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
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}

/// Median cold start (client latency, Init Duration) of the no-op function.
async fn cold_starts(srv: &Server, noop: &[u8], reps: usize) -> Res<(f64, f64)> {
    let mut s = connect(&srv.addr).await?;
    create(&mut s, "noop", "provided.al2023", "bootstrap", noop, 128).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut client, mut init) = (Vec::new(), Vec::new());
    for i in 0..reps + 2 {
        retire(&mut s, "noop", i).await?;
        let (ms, log, _) = invoke(&mut s, "noop", "{}").await?;
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
    create(s, &name, "python3.12", "app.handler", &zip, memory).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let payload = json!({ "n": n }).to_string();
    invoke(s, &name, &payload).await?; // cold start
    let mut d = Vec::new();
    for _ in 0..5 {
        let (_, log, _) = invoke(s, &name, &payload).await?;
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
        create(
            &mut s,
            &format!("idle-{i}"),
            "provided.al2023",
            "bootstrap",
            noop,
            128,
        )
        .await?;
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
                invoke(&mut c, &format!("idle-{i}"), "{}").await?;
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
    let noop = std::fs::read(&a.noop_zip)
        .map_err(|e| format!("{}: {e} (build it with bench/run)", a.noop_zip.display()))?;

    // Cold starts, one server per mode (not at the same time).
    let (proc_client, proc_init) = {
        let srv = start_server(&a.stratus, "process", &[])?;
        cold_starts(&srv, &noop, a.reps).await?
    };
    let (ns_client, ns_init) = {
        let srv = start_server(&a.stratus, "namespace", &[])?;
        cold_starts(&srv, &noop, a.reps).await?
    };

    // CPU in proportion to memory (namespace mode).
    let (cpu_1769, cpu_885) = {
        let srv = start_server(&a.stratus, "namespace", &[])?;
        let mut s = connect(&srv.addr).await?;
        let n = 3_000_000;
        (
            cpu_bound(&mut s, 1769, n).await?,
            cpu_bound(&mut s, 885, n).await?,
        )
    };

    // Density of idle frozen environments.
    let dens = {
        let srv = start_server(&a.stratus, "namespace", &["--idle-timeout", "3600"])?;
        density(&srv, &noop, a.envs).await?
    };

    let date = time::OffsetDateTime::now_utc()
        .format(&time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute] UTC"
        ))
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
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
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("stratus-bench-isolation: {e}");
            std::process::exit(2);
        }
    };
    let out_path = a.out.clone();
    match run(a).await {
        Ok(section) => {
            print!("{section}");
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&out_path)
            {
                Ok(mut f) => {
                    let _ = f.write_all(section.as_bytes());
                }
                Err(e) => {
                    eprintln!("stratus-bench-isolation: {}: {e}", out_path.display());
                    std::process::exit(1);
                }
            }
        }
        Err(e) => {
            eprintln!("stratus-bench-isolation: {e}");
            std::process::exit(1);
        }
    }
}
