//! Helpers shared by the benchmark binaries (`stratus-bench` and
//! `stratus-bench-isolation`): their common command-line options, a
//! `stratus server` child process, an HTTP/1 client of its Lambda API,
//! readings from /proc, percentiles and appending a section to
//! `bench/RESULTS.md`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use serde_json::json;

pub type Res<T> = Result<T, String>;
pub type Conn = SendRequest<Full<Bytes>>;

/// The options every benchmark binary takes.
pub struct BaseArgs {
    pub stratus: PathBuf,
    pub noop_zip: PathBuf,
    pub out: PathBuf,
}

impl BaseArgs {
    /// The no-op function's package (`--noop-zip`).
    pub fn read_noop_zip(&self) -> Res<Vec<u8>> {
        std::fs::read(&self.noop_zip)
            .map_err(|e| format!("{}: {e} (build it with bench/run)", self.noop_zip.display()))
    }
}

/// Parses `--key value` pairs: `--stratus`, `--noop-zip`, `--out` and the
/// whole-number options `numbers` (name, value to set).
pub fn parse_args(numbers: &mut [(&str, &mut usize)]) -> Res<BaseArgs> {
    let mut a = BaseArgs {
        stratus: "target/release/stratus".into(),
        noop_zip: "tests/.build/rust_noop.zip".into(),
        out: "bench/RESULTS.md".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--stratus" => a.stratus = v.into(),
            "--noop-zip" => a.noop_zip = v.into(),
            "--out" => a.out = v.into(),
            _ => match numbers.iter_mut().find(|(name, _)| *name == k) {
                Some((_, n)) => **n = v.parse().map_err(|e| format!("{k}: {e}"))?,
                None => return Err(format!("unknown argument {k}")),
            },
        }
    }
    Ok(a)
}

/// The value of `r`, or `prog: error` on stderr and exit with `code`.
pub fn or_exit<T>(prog: &str, code: i32, r: Res<T>) -> T {
    r.unwrap_or_else(|e| {
        eprintln!("{prog}: {e}");
        std::process::exit(code);
    })
}

/// Prints `section` and appends it to `out` (exit 1 if `out` cannot be
/// opened).
pub fn append_section(prog: &str, out: &Path, section: &str) {
    print!("{section}");
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
    {
        Ok(mut f) => {
            let _ = f.write_all(section.as_bytes());
        }
        Err(e) => {
            eprintln!("{prog}: {}: {e}", out.display());
            std::process::exit(1);
        }
    }
}

/// The current time for a section heading, e.g. `2026-01-01 12:00 UTC`.
pub fn utc_date() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute] UTC"
        ))
        .unwrap_or_default()
}

pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0)
}

/// How a [`Server`] is stopped when dropped.
pub enum Stop {
    /// SIGKILL straight away.
    Kill,
    /// SIGTERM, so that the server shuts its environments down and removes
    /// its cgroups; SIGKILL if it has not exited within 30 s.
    Term,
}

/// A running `stratus server` with its own data directory, stopped and the
/// directory removed on drop.
pub struct Server {
    pub child: Child,
    pub addr: String,
    /// From spawning the process to its "listening on" line.
    pub startup: Duration,
    dir: PathBuf,
    stop: Stop,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Stop::Term = self.stop {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            let end = Instant::now() + Duration::from_secs(30);
            while Instant::now() < end {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `bin server` on a free loopback port with `--isolation` (if given)
/// and `extra` arguments, and waits for it to listen.
pub fn start_server(
    bin: &Path,
    isolation: Option<&str>,
    extra: &[&str],
    stop: Stop,
) -> Res<Server> {
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(match isolation {
        Some(mode) => format!("stratus-bench-iso-{pid}-{mode}"),
        None => format!("stratus-bench-{pid}"),
    });
    let _ = std::fs::remove_dir_all(&dir);
    let t0 = Instant::now();
    let mut cmd = Command::new(bin);
    cmd.args(["server", "--listen", "127.0.0.1:0"]);
    if let Some(mode) = isolation {
        cmd.args(["--isolation", mode]);
    }
    let mut child = cmd
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
    let startup = t0.elapsed();
    std::thread::spawn(move || for _ in lines {});
    Ok(Server {
        child,
        addr,
        startup,
        dir,
        stop,
    })
}

/// The number (in kB) on the line of `file` that starts with `key`; 0 if
/// there is none.
fn kb_in(file: &str, key: &str) -> u64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A kB value of `/proc/{pid}/status`, e.g. `proc_kb(pid, "VmRSS:")`.
pub fn proc_kb(pid: u32, key: &str) -> u64 {
    kb_in(&format!("/proc/{pid}/status"), key)
}

pub fn rss_kb(pid: u32) -> u64 {
    proc_kb(pid, "VmRSS:")
}

pub fn mem_available_mb() -> u64 {
    kb_in("/proc/meminfo", "MemAvailable:") / 1024
}

pub async fn connect(addr: &str) -> Res<Conn> {
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

pub struct Resp {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

pub async fn call(
    s: &mut Conn,
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

/// `{what} {name}: {status} {body}`.
fn api_error(what: &str, name: &str, r: &Resp) -> String {
    format!(
        "{what} {name}: {} {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    )
}

/// A zip of `(name, contents, unix mode)` entries.
pub fn zip_of(files: &[(&str, &[u8], u32)]) -> Res<Vec<u8>> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data, mode) in files {
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
        w.start_file(*name, opts).map_err(|e| e.to_string())?;
        w.write_all(data).map_err(|e| e.to_string())?;
    }
    Ok(w.finish().map_err(|e| e.to_string())?.into_inner())
}

/// CreateFunction with a zip package, `memory` MB and a `timeout` in seconds.
pub async fn create(
    s: &mut Conn,
    name: &str,
    runtime: &str,
    handler: &str,
    zip: &[u8],
    memory: u32,
    timeout: u32,
) -> Res<()> {
    let body = json!({
        "FunctionName": name, "Runtime": runtime, "Handler": handler,
        "Role": "arn:aws:iam::123456789012:role/bench", "MemorySize": memory, "Timeout": timeout,
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
        return Err(api_error("create", name, &r));
    }
    Ok(())
}

/// Changes the description of `name` to `cold {i}`, which retires its warm
/// environments (as an update does on AWS), then waits `settle` for the
/// update to finish so that the next invoke does not wait on it.
pub async fn retire(s: &mut Conn, name: &str, i: usize, settle: Duration) -> Res<()> {
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
    tokio::time::sleep(settle).await;
    Ok(())
}

/// Invokes `name` (with LogType Tail if `tail`); an error unless it answers
/// 200 without a function error.
pub async fn invoke(s: &mut Conn, name: &str, payload: impl Into<Bytes>, tail: bool) -> Res<Resp> {
    let path = format!("/2015-03-31/functions/{name}/invocations");
    let h: &[(&str, &str)] = if tail {
        &[("x-amz-log-type", "Tail")]
    } else {
        &[]
    };
    let r = call(s, "POST", &path, h, payload.into()).await?;
    if r.status != 200 || r.headers.contains_key("x-amz-function-error") {
        return Err(api_error("invoke", name, &r));
    }
    Ok(r)
}

/// Invokes with LogType Tail; returns the client latency (ms) and the
/// decoded log tail.
pub async fn invoke_tail(
    s: &mut Conn,
    name: &str,
    payload: impl Into<Bytes>,
) -> Res<(f64, String)> {
    let t = Instant::now();
    let r = invoke(s, name, payload, true).await?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
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
    Ok((ms, log))
}

/// The REPORT line of a log tail.
pub fn report_line(log: &str) -> Option<&str> {
    log.lines().find(|l| l.starts_with("REPORT"))
}

/// A `key: N ms` field of the REPORT line in `log` (a log tail, or the line
/// itself).
pub fn field_ms(log: &str, key: &str) -> Option<f64> {
    report_line(log)?
        .split('\t')
        .find_map(|p| p.trim().strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches(" ms").parse().ok())
}

/// The `p` quantile (0 to 1, nearest rank) of ascending `sorted`; 0 if
/// empty.
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The median (the upper one of an even count: `pct(.., 0.5)` rounds the
/// index half up, so this is `v[v.len() / 2]` of the sorted values); 0 if
/// empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    pct(&v, 0.5)
}
