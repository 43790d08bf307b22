//! The Telemetry API of an execution environment
//! (<https://docs.aws.amazon.com/lambda/latest/dg/telemetry-api.html>):
//! `PUT /2022-07-01/telemetry` subscribes a registered extension to the
//! `platform`, `function` and `extension` streams; events are delivered in
//! batches (`buffering`: `maxItems`, `maxBytes`, `timeoutMs`) as a JSON array
//! of `{time, type, record}` by HTTP POST to the extension's listener, or as
//! newline-delimited JSON over TCP.
//!
//! Records follow the event schema reference (schema version 2022-12-13):
//! `platform.initStart`, `platform.initRuntimeDone`, `platform.initReport`,
//! `platform.extension`, `platform.telemetrySubscription`, `platform.start`,
//! `platform.runtimeDone`, `platform.report`, `platform.logsDropped`;
//! `function` and `extension` records are the log line (a JSON object when
//! the line is one).
//!
//! Events of the init phase are kept until init ends, so an extension that
//! subscribes during init receives them (`platform.initStart`, the
//! function's init logs). The listener host `sandbox.localdomain` (or
//! `sandbox`) is the environment itself: stratus connects to 127.0.0.1.
//! Delivery is retried with backoff while the listener is not up yet; a
//! batch that still cannot be delivered is dropped and reported with
//! `platform.logsDropped`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

/// Schema versions the Subscribe API accepts.
pub const SCHEMA_VERSIONS: &[&str] = &["2022-07-01", "2022-12-13", "2025-01-29"];

/// Events kept for subscribers that subscribe during init.
const MAX_REPLAY: usize = 10_000;

/// The buffering limits of AWS's documentation: (default, minimum, maximum).
const MAX_ITEMS: (u64, u64, u64) = (10_000, 1_000, 10_000);
const MAX_BYTES: (u64, u64, u64) = (262_144, 262_144, 1_048_576);
const TIMEOUT_MS: (u64, u64, u64) = (1_000, 25, 30_000);

/// Delivery attempts of one batch before it is dropped.
const ATTEMPTS: u32 = 8;

#[derive(Clone)]
struct Event {
    category: &'static str,
    json: Arc<String>,
}

enum Cmd {
    Event(Event),
    Flush(oneshot::Sender<()>),
}

struct Subscription {
    ext_id: String,
    types: Vec<String>,
    tx: mpsc::UnboundedSender<Cmd>,
    task: tokio::task::AbortHandle,
}

/// The Telemetry API state of one environment.
pub(crate) struct Telemetry {
    subs: Mutex<Vec<Subscription>>,
    /// Init-phase events, kept while `Some`.
    replay: Mutex<Option<Vec<Event>>>,
    active: AtomicBool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscribeInput {
    schema_version: Option<String>,
    destination: Option<Destination>,
    types: Option<Vec<String>>,
    buffering: Option<Buffering>,
}

#[derive(Deserialize)]
struct Destination {
    protocol: Option<String>,
    #[serde(rename = "URI")]
    uri: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Buffering {
    max_items: Option<i64>,
    max_bytes: Option<i64>,
    timeout_ms: Option<i64>,
}

#[derive(Clone, Copy)]
struct Limits {
    max_items: usize,
    max_bytes: usize,
    timeout: Duration,
}

#[derive(Clone)]
enum Target {
    Http {
        addr: String,
        host: String,
        path: String,
    },
    Tcp {
        addr: String,
    },
}

fn category_of(kind: &str) -> &'static str {
    if kind.starts_with("platform.") {
        "platform"
    } else if kind == "extension" {
        "extension"
    } else {
        "function"
    }
}

fn event_json(time_ms: i64, kind: &str, record: Value) -> String {
    json!({
        "time": stratus_core::time::iso_ms(time_ms),
        "type": kind,
        "record": record,
    })
    .to_string()
}

impl Telemetry {
    /// `keep_init_events`: keep init-phase events for later subscribers
    /// (the function has external extensions).
    pub(crate) fn new(keep_init_events: bool) -> Telemetry {
        Telemetry {
            subs: Mutex::new(Vec::new()),
            replay: Mutex::new(keep_init_events.then(Vec::new)),
            active: AtomicBool::new(keep_init_events),
        }
    }

    /// True while events have somewhere to go.
    pub(crate) fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    fn push(&self, kind: &str, time_ms: i64, record: Value) {
        if !self.active() {
            return;
        }
        let ev = Event {
            category: category_of(kind),
            json: Arc::new(event_json(time_ms, kind, record)),
        };
        if let Some(r) = self
            .replay
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
            && r.len() < MAX_REPLAY
        {
            r.push(ev.clone());
        }
        for s in self.subs.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            if s.types.iter().any(|t| t == ev.category) {
                let _ = s.tx.send(Cmd::Event(ev.clone()));
            }
        }
    }

    /// A platform event now.
    pub(crate) fn platform(&self, kind: &str, record: Value) {
        self.push(kind, stratus_core::time::now_ms(), record);
    }

    /// A log line of the function (`function`) or an extension (`extension`).
    pub(crate) fn log(&self, kind: &str, time_ms: i64, line: &str) {
        if !self.active() {
            return;
        }
        let record = if line.starts_with('{') {
            serde_json::from_str::<Value>(line)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| json!(line))
        } else {
            json!(line)
        };
        self.push(kind, time_ms, record);
    }

    /// The init phase is over: init-phase events are no longer kept.
    pub(crate) fn end_init(&self) {
        *self.replay.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.update_active();
    }

    fn update_active(&self) {
        let any = !self
            .subs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
            || self
                .replay
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some();
        self.active.store(any, Ordering::Relaxed);
    }

    /// Subscribe API. Errors: the message of a `ValidationError` (400).
    pub(crate) fn subscribe(&self, ext_id: &str, name: &str, body: &[u8]) -> Result<(), String> {
        let input: SubscribeInput = serde_json::from_slice(body)
            .map_err(|e| format!("Could not parse the subscription request: {e}"))?;
        let mut problems = Vec::new();
        match input.schema_version.as_deref() {
            Some(v) if SCHEMA_VERSIONS.contains(&v) => {}
            Some(v) => problems.push(format!(
                "schemaVersion {v} is not supported (supported: {})",
                SCHEMA_VERSIONS.join(", ")
            )),
            None => problems.push("schemaVersion is required".to_string()),
        }
        let types = input.types.unwrap_or_default();
        if types.is_empty() {
            problems.push("types should not be empty".into());
        }
        for t in &types {
            if !["platform", "function", "extension"].contains(&t.as_str()) {
                problems.push(format!(
                    "type {t} is not valid (valid: platform, function, extension)"
                ));
            }
        }
        let b = input.buffering.unwrap_or_default();
        let limit = |v: Option<i64>, (def, min, max): (u64, u64, u64), field: &str| match v {
            None => Ok(def),
            Some(n) if n >= min as i64 && n <= max as i64 => Ok(n as u64),
            Some(n) => Err(format!(
                "buffering.{field} {n} is out of range [{min}, {max}]"
            )),
        };
        let mut lim = Limits {
            max_items: MAX_ITEMS.0 as usize,
            max_bytes: MAX_BYTES.0 as usize,
            timeout: Duration::from_millis(TIMEOUT_MS.0),
        };
        match limit(b.max_items, MAX_ITEMS, "maxItems") {
            Ok(v) => lim.max_items = v as usize,
            Err(e) => problems.push(e),
        }
        match limit(b.max_bytes, MAX_BYTES, "maxBytes") {
            Ok(v) => lim.max_bytes = v as usize,
            Err(e) => problems.push(e),
        }
        match limit(b.timeout_ms, TIMEOUT_MS, "timeoutMs") {
            Ok(v) => lim.timeout = Duration::from_millis(v),
            Err(e) => problems.push(e),
        }
        let target = match input.destination {
            None => {
                problems.push("destination is required".into());
                None
            }
            Some(d) => match parse_destination(d.protocol.as_deref(), d.uri.as_deref()) {
                Ok(t) => Some(t),
                Err(e) => {
                    problems.push(e);
                    None
                }
            },
        };
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        let Some(target) = target else {
            return Err("destination is required".into());
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(deliver(rx, target, lim)).abort_handle();
        let replayed: Vec<Event> = self
            .replay
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|r| {
                r.iter()
                    .filter(|e| types.iter().any(|t| t == e.category))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for e in replayed {
            let _ = tx.send(Cmd::Event(e));
        }
        {
            let mut subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(old) = subs.iter().position(|s| s.ext_id == ext_id) {
                subs.remove(old).task.abort();
            }
            subs.push(Subscription {
                ext_id: ext_id.to_string(),
                types: types.clone(),
                tx,
                task,
            });
        }
        self.active.store(true, Ordering::Relaxed);
        self.platform(
            "platform.telemetrySubscription",
            json!({"name": name, "state": "Subscribed", "types": types}),
        );
        Ok(())
    }

    /// Delivers what every subscription has buffered, waiting at most `max`.
    pub(crate) async fn flush(&self, max: Duration) {
        let waits: Vec<oneshot::Receiver<()>> = self
            .subs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|s| {
                let (tx, rx) = oneshot::channel();
                s.tx.send(Cmd::Flush(tx)).ok().map(|_| rx)
            })
            .collect();
        if waits.is_empty() {
            return;
        }
        let _ = tokio::time::timeout(max, async {
            for w in waits {
                let _ = w.await;
            }
        })
        .await;
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        for s in self.subs.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            s.task.abort();
        }
    }
}

/// Maps the destination to where stratus connects. Listeners are inside the
/// environment: `sandbox.localdomain`, `sandbox`, `localhost` and loopback
/// addresses are 127.0.0.1.
fn parse_destination(protocol: Option<&str>, uri: Option<&str>) -> Result<Target, String> {
    let uri = uri.ok_or("destination.URI is required")?;
    let protocol = protocol.ok_or("destination.protocol is required")?;
    let rest = match protocol {
        "HTTP" => uri
            .strip_prefix("http://")
            .ok_or("URI must start with http:// (Lambda supports HTTP, not HTTPS)")?,
        "TCP" => uri.strip_prefix("tcp://").unwrap_or(uri),
        p => return Err(format!("protocol {p} is not valid (valid: HTTP, TCP)")),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = authority
        .rsplit_once(':')
        .ok_or("URI port is not provided")?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("URI port {port} is not valid"))?;
    let local = matches!(
        host,
        "sandbox.localdomain" | "sandbox" | "localhost" | "0.0.0.0" | "[::1]"
    ) || host.starts_with("127.");
    if !local {
        return Err(format!(
            "URI host {host} is not in the execution environment (use sandbox.localdomain)"
        ));
    }
    let addr = format!("127.0.0.1:{port}");
    Ok(match protocol {
        "HTTP" => Target::Http {
            addr,
            host: authority.to_string(),
            path: path.to_string(),
        },
        _ => Target::Tcp { addr },
    })
}

/// One subscription's delivery loop: batches events and sends them.
async fn deliver(mut rx: mpsc::UnboundedReceiver<Cmd>, target: Target, lim: Limits) {
    let mut batch: Vec<Event> = Vec::new();
    let mut bytes = 0usize;
    let mut first: Option<tokio::time::Instant> = None;
    let mut dropped = (0u64, 0u64);
    let mut tcp: Option<tokio::net::TcpStream> = None;
    loop {
        let due = first.map(|t| t + lim.timeout);
        let cmd = match due {
            Some(d) => match tokio::time::timeout_at(d, rx.recv()).await {
                Ok(c) => c,
                Err(_) => {
                    send_batch(&target, &mut tcp, &mut batch, &mut dropped).await;
                    bytes = 0;
                    first = None;
                    continue;
                }
            },
            None => rx.recv().await,
        };
        match cmd {
            None => {
                if !batch.is_empty() {
                    send_batch(&target, &mut tcp, &mut batch, &mut dropped).await;
                }
                return;
            }
            Some(Cmd::Event(e)) => {
                bytes += e.json.len();
                batch.push(e);
                first.get_or_insert_with(tokio::time::Instant::now);
                if batch.len() >= lim.max_items || bytes >= lim.max_bytes {
                    send_batch(&target, &mut tcp, &mut batch, &mut dropped).await;
                    bytes = 0;
                    first = None;
                }
            }
            Some(Cmd::Flush(ack)) => {
                if !batch.is_empty() {
                    send_batch(&target, &mut tcp, &mut batch, &mut dropped).await;
                }
                bytes = 0;
                first = None;
                let _ = ack.send(());
            }
        }
    }
}

async fn send_batch(
    target: &Target,
    tcp: &mut Option<tokio::net::TcpStream>,
    batch: &mut Vec<Event>,
    dropped: &mut (u64, u64),
) {
    let mut items: Vec<Arc<String>> = Vec::with_capacity(batch.len() + 1);
    if dropped.0 > 0 {
        items.push(Arc::new(event_json(
            stratus_core::time::now_ms(),
            "platform.logsDropped",
            json!({
                "droppedRecords": dropped.0,
                "droppedBytes": dropped.1,
                "reason": "The telemetry listener could not be reached; the records were dropped.",
            }),
        )));
    }
    items.extend(batch.iter().map(|e| e.json.clone()));
    let mut delay = Duration::from_millis(25);
    for _ in 0..ATTEMPTS {
        let ok = match target {
            Target::Http { addr, host, path } => post(addr, host, path, &items).await,
            Target::Tcp { addr } => send_tcp(addr, tcp, &items).await,
        };
        if ok {
            *dropped = (0, 0);
            batch.clear();
            return;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(1000));
    }
    dropped.0 += batch.len() as u64;
    dropped.1 += batch.iter().map(|e| e.json.len() as u64).sum::<u64>();
    batch.clear();
}

async fn post(addr: &str, host: &str, path: &str, items: &[Arc<String>]) -> bool {
    let mut body = String::with_capacity(items.iter().map(|i| i.len() + 1).sum::<usize>() + 2);
    body.push('[');
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(it);
    }
    body.push(']');
    let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let io = hyper_util::rt::TokioIo::new(stream);
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(io).await else {
        return false;
    };
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = match axum::http::Request::post(path)
        .header("host", host)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
    {
        Ok(r) => r,
        Err(_) => {
            driver.abort();
            return false;
        }
    };
    let ok = match sender.send_request(req).await {
        Ok(resp) => {
            let status = resp.status();
            let _ = resp.into_body().collect().await;
            status.is_success()
        }
        Err(_) => false,
    };
    driver.abort();
    ok
}

async fn send_tcp(
    addr: &str,
    conn: &mut Option<tokio::net::TcpStream>,
    items: &[Arc<String>],
) -> bool {
    if conn.is_none() {
        *conn = tokio::net::TcpStream::connect(addr).await.ok();
    }
    let Some(s) = conn.as_mut() else {
        return false;
    };
    let mut buf = Vec::new();
    for it in items {
        buf.extend_from_slice(it.as_bytes());
        buf.push(b'\n');
    }
    if s.write_all(&buf).await.is_err() {
        *conn = None;
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        assert!(matches!(
            parse_destination(Some("HTTP"), Some("http://sandbox.localdomain:8080")),
            Ok(Target::Http { ref addr, ref path, .. }) if addr == "127.0.0.1:8080" && path == "/"
        ));
        assert!(matches!(
            parse_destination(Some("HTTP"), Some("http://sandbox:4243/lambda_logs")),
            Ok(Target::Http { ref path, .. }) if path == "/lambda_logs"
        ));
        assert_eq!(
            parse_destination(Some("HTTP"), Some("http://sandbox.localdomain")).err(),
            Some("URI port is not provided".to_string())
        );
        assert!(parse_destination(Some("HTTP"), Some("https://x:1")).is_err());
        assert!(parse_destination(Some("HTTP"), Some("http://example.com:80")).is_err());
        assert!(parse_destination(Some("TCP"), Some("sandbox.localdomain:9")).is_ok());
        assert!(parse_destination(Some("UDP"), Some("http://sandbox:9")).is_err());
    }

    #[test]
    fn subscribe_validates_as_aws() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let t = Telemetry::new(true);
            let e = t.subscribe("x", "n", br#"{"schemaVersion":"2022-12-13","types":[],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain"}}"#).unwrap_err();
            assert!(e.contains("URI port is not provided"), "{e}");
            assert!(e.contains("types should not be empty"), "{e}");
            let e = t.subscribe("x", "n", br#"{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{"maxItems":5},"destination":{"protocol":"HTTP","URI":"http://sandbox:1"}}"#).unwrap_err();
            assert!(e.contains("maxItems"), "{e}");
            assert!(t.subscribe("x", "n", br#"{"schemaVersion":"2022-12-13","types":["platform","function"],"destination":{"protocol":"HTTP","URI":"http://sandbox:1"}}"#).is_ok());
        });
    }

    #[test]
    fn log_records() {
        assert_eq!(category_of("platform.report"), "platform");
        assert_eq!(category_of("function"), "function");
        assert_eq!(category_of("extension"), "extension");
        let j: Value = serde_json::from_str(&event_json(0, "function", json!("hi"))).unwrap();
        assert_eq!(j["time"], "1970-01-01T00:00:00.000Z");
        assert_eq!(j["record"], "hi");
    }
}
