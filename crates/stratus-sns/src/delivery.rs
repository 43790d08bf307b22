//! Durable delivery to subscriptions, with AWS's retry policies
//! (<https://docs.aws.amazon.com/sns/latest/dg/sns-message-delivery-retries.html>).
//!
//! A publish commits one `sns_deliveries` row per matching subscription
//! before it answers; a worker delivers due rows and deletes them once the
//! endpoint took the message, so nothing acknowledged is lost across a
//! restart (delivery is at least once).
//!
//! Retry schedule after a failed attempt, for `lambda` and `sqs`
//! endpoints (AWS managed endpoints): 3 immediate retries, 2 retries 1 s
//! apart, 10 retries with exponential backoff from 1 s to 20 s, then
//! 100,000 retries 20 s apart (100,015 retries, about 23 days). For `http`
//! and `https` endpoints, the subscription's effective HTTP/S delivery policy
//! ([`crate::http_policy`]; AWS's default: 3 retries 20 s apart). Delays are
//! divided by the server's `--time-scale`. Only server-side failures are
//! retried (HTTP 5xx, 429, connection and TLS handshake failures, timeouts
//! of 15 s); a
//! client-side failure (another 4xx, e.g. the queue or function no longer
//! exists) ends the delivery at once. A delivery that ends without success
//! goes to the subscription's dead-letter queue (`RedrivePolicy`
//! `deadLetterTargetArn`) when it has one, else it is dropped (and logged).
//! Deliveries to one subscription of a FIFO topic happen one at a time in
//! publish order.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::{Deserialize, Serialize};
use stratus_core::{AwsError, Delivery, MessageAttribute};
use stratus_store::rusqlite::{self, params};

use crate::Sns;

/// Most deliveries in flight at once.
const MAX_IN_FLIGHT: usize = 512;
/// Due rows read per round (beyond those in flight).
const DUE_BATCH: usize = 256;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Longest one delivery attempt may take before it counts as failed, ms.
pub const ATTEMPT_TIMEOUT_MS: u64 = 15_000;

/// One pending delivery (`sns_deliveries.body`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    /// The subscription it is for.
    pub subscription_arn: String,
    /// `sqs`, `lambda`, `http`, `https`, or `dlq` (a dead-letter queue copy).
    pub protocol: String,
    /// Queue ARN, function ARN or URL.
    pub endpoint: String,
    /// What is sent.
    pub body: String,
    /// Message attributes sent with it (raw SQS delivery).
    #[serde(default)]
    pub attributes: Vec<StoredAttribute>,
    /// FIFO queues: `MessageGroupId`.
    #[serde(default)]
    pub group_id: Option<String>,
    /// FIFO queues: `MessageDeduplicationId`.
    #[serde(default)]
    pub dedup_id: Option<String>,
    /// HTTP headers (`x-amz-sns-*`).
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The notification document, for a dead-letter queue.
    #[serde(default)]
    pub dlq_body: Option<String>,
    /// HTTP: the subscription's effective delivery policy.
    #[serde(default)]
    pub http_policy: Option<crate::http_policy::HttpPolicy>,
}

/// A message attribute in the store (binary values in base64).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredAttribute {
    /// Attribute name.
    pub name: String,
    /// `String`, `Number`, `Binary`, `String.Array` (with labels).
    pub data_type: String,
    /// String value.
    pub string_value: Option<String>,
    /// Binary value, base64.
    pub binary_value: Option<String>,
}

/// Converts attributes for the store.
pub fn store_attributes(attrs: &BTreeMap<String, MessageAttribute>) -> Vec<StoredAttribute> {
    attrs
        .iter()
        .map(|(k, a)| StoredAttribute {
            name: k.clone(),
            data_type: a.data_type.clone(),
            string_value: a.string_value.clone(),
            binary_value: a
                .binary_value
                .as_ref()
                .map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
        })
        .collect()
}

fn load_attributes(v: &[StoredAttribute]) -> BTreeMap<String, MessageAttribute> {
    v.iter()
        .map(|a| {
            (
                a.name.clone(),
                MessageAttribute {
                    data_type: a.data_type.clone(),
                    string_value: a.string_value.clone(),
                    binary_value: a
                        .binary_value
                        .as_ref()
                        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok()),
                },
            )
        })
        .collect()
}

/// Number of retries of the AWS managed endpoint policy (3 + 2 + 10 + 100,000).
pub const MANAGED_RETRIES: u32 = 100_015;
/// Number of retries of AWS's default HTTP/S policy.
pub const HTTP_RETRIES: u32 = 3;

/// The delay before retry number `retry` (1-based), in ms before time
/// scaling, or `None` when the policy is exhausted. `http` and `https`
/// follow AWS's default HTTP/S policy, every other protocol the managed
/// endpoint policy.
pub fn retry_delay_ms(protocol: &str, retry: u32) -> Option<u64> {
    if protocol == "http" || protocol == "https" {
        return (retry <= HTTP_RETRIES).then_some(20_000);
    }
    match retry {
        0 => Some(0),
        1..=3 => Some(0),
        4..=5 => Some(1_000),
        6..=15 => {
            // 10 steps from 1 s to 20 s: 1 s x 20^(i/9).
            let i = f64::from(retry - 6);
            Some((1_000.0 * 20f64.powf(i / 9.0)).round() as u64)
        }
        16..=MANAGED_RETRIES => Some(20_000),
        _ => None,
    }
}

/// Whether a failure is the endpoint's fault for good (client-side: no retry).
fn client_side(e: &AwsError) -> bool {
    (400..500).contains(&e.status) && e.status != 429
}

struct Row {
    id: i64,
    attempts: u32,
    pending: Pending,
}

enum Outcome {
    Done,
    Retry(u64),
    GiveUp(String),
}

impl Sns {
    /// Delivers due rows until the server stops.
    pub(crate) async fn delivery_loop(self: Arc<Self>) {
        // Rows being delivered: each attempt settles its own row, so a slow
        // endpoint holds up no other delivery. A FIFO subscription's next
        // row becomes due only once its oldest row is gone, so its order
        // holds.
        let inflight: Arc<Mutex<HashSet<i64>>> = Arc::default();
        loop {
            let now = stratus_core::time::now_ms();
            let busy = lock(&inflight).len();
            if busy >= MAX_IN_FLIGHT {
                self.idle(1_000).await;
                continue;
            }
            let rows = match self.due_rows(now, busy + DUE_BATCH).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("sns: reading pending deliveries failed: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let rows: Vec<Row> = {
                let set = lock(&inflight);
                rows.into_iter().filter(|r| !set.contains(&r.id)).collect()
            };
            if rows.is_empty() {
                let next = self
                    .store
                    .read(|c| {
                        c.query_row(
                            "SELECT MIN(next_ms) FROM sns_deliveries WHERE next_ms > ?1",
                            params![now],
                            |r| r.get::<_, Option<i64>>(0),
                        )
                    })
                    .ok()
                    .flatten();
                // Due rows in flight wake the loop when they settle.
                let wait = next.map(|n| (n - now).clamp(1, 60_000)).unwrap_or(60_000);
                self.idle(wait as u64).await;
                continue;
            }
            for r in rows {
                lock(&inflight).insert(r.id);
                let me = self.clone();
                let inflight = inflight.clone();
                tokio::spawn(async move {
                    let id = r.id;
                    let o = me.attempt(&r).await;
                    me.settle(vec![(r, o)]).await;
                    lock(&inflight).remove(&id);
                    me.wake.notify_one();
                });
            }
        }
    }

    /// Waits for a publish or a settled delivery, at most `ms`.
    async fn idle(&self, ms: u64) {
        tokio::select! {
            _ = self.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
        }
    }

    /// Due rows, oldest first; rows whose body cannot be read are deleted.
    async fn due_rows(
        &self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<Row>, stratus_store::StoreError> {
        let (rows, bad) = self.read_due(now, limit)?;
        if !bad.is_empty() {
            self.store
                .write(move |c| {
                    for id in &bad {
                        c.execute("DELETE FROM sns_deliveries WHERE id = ?1", params![id])?;
                    }
                    Ok(())
                })
                .await?;
        }
        Ok(rows)
    }

    fn read_due(
        &self,
        now: i64,
        limit: usize,
    ) -> Result<(Vec<Row>, Vec<i64>), stratus_store::StoreError> {
        self.store.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, attempts, body FROM sns_deliveries d WHERE next_ms <= ?1 \
                 AND (fifo = 0 OR id = (SELECT MIN(id) FROM sns_deliveries e \
                      WHERE e.subscription_arn = d.subscription_arn AND e.fifo = 1)) \
                 ORDER BY id LIMIT ?2",
            )?;
            let rows = st.query_map(params![now, limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, u32>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            let mut out = Vec::new();
            let mut bad = Vec::new();
            for r in rows {
                let (id, attempts, body) = r?;
                match serde_json::from_str::<Pending>(&body) {
                    Ok(pending) => out.push(Row {
                        id,
                        attempts,
                        pending,
                    }),
                    Err(e) => {
                        tracing::warn!("sns: unreadable pending delivery {id} is dropped: {e}");
                        bad.push(id);
                    }
                }
            }
            Ok((out, bad))
        })
    }

    async fn attempt(&self, r: &Row) -> Outcome {
        let p = &r.pending;
        if p.protocol != "dlq" {
            let exists = self
                .store
                .read(|c| {
                    c.query_row(
                        "SELECT COUNT(*) FROM sns_subscriptions WHERE arn = ?1",
                        params![p.subscription_arn],
                        |r| r.get::<_, i64>(0),
                    )
                })
                .unwrap_or(1);
            if exists == 0 {
                return Outcome::Done;
            }
        }
        let fut = async {
            match p.protocol.as_str() {
                "http" | "https" => {
                    let ct = p
                        .http_policy
                        .as_ref()
                        .and_then(|h| h.content_type.as_deref())
                        .unwrap_or("text/plain; charset=UTF-8");
                    let tls = if p.endpoint.starts_with("https://") {
                        Some(self.tls_config()?)
                    } else {
                        None
                    };
                    post(&p.endpoint, tls, ct, &p.headers, p.body.clone()).await
                }
                _ => {
                    let d = Delivery {
                        body: p.body.clone(),
                        attributes: load_attributes(&p.attributes),
                        message_group_id: p.group_id.clone(),
                        deduplication_id: p.dedup_id.clone(),
                        ..Default::default()
                    };
                    self.targets.deliver(&p.endpoint, d).await.map(|_| ())
                }
            }
        };
        let res = match tokio::time::timeout(Duration::from_millis(ATTEMPT_TIMEOUT_MS), fut).await {
            Ok(r) => r,
            Err(_) => Err(AwsError::new(
                504,
                "Timeout",
                format!("the endpoint did not answer within {ATTEMPT_TIMEOUT_MS} ms"),
            )),
        };
        match res {
            Ok(()) => Outcome::Done,
            Err(e) if client_side(&e) => Outcome::GiveUp(e.to_string()),
            Err(e) => {
                let delay = match (&p.protocol[..], &p.http_policy) {
                    ("http" | "https", Some(h)) => {
                        h.retry.delay_s(r.attempts + 1).map(|s| s * 1000)
                    }
                    ("http" | "https", None) => retry_delay_ms("http", r.attempts + 1),
                    _ => retry_delay_ms("managed", r.attempts + 1),
                };
                match delay {
                    Some(d) => {
                        tracing::debug!(
                            "sns: delivery to {} failed ({e}); retry {} in {d} ms",
                            p.endpoint,
                            r.attempts + 1
                        );
                        Outcome::Retry((d as f64 / self.time_scale.max(0.001)) as u64)
                    }
                    None => Outcome::GiveUp(e.to_string()),
                }
            }
        }
    }

    async fn settle(&self, results: Vec<(Row, Outcome)>) {
        let now = stratus_core::time::now_ms();
        let mut dead = Vec::new();
        for (r, o) in &results {
            if let Outcome::GiveUp(why) = o {
                let dlq = if r.pending.protocol == "dlq" {
                    None
                } else {
                    self.dead_letter_queue(&r.pending.subscription_arn)
                };
                match dlq {
                    Some(q) => {
                        tracing::info!(
                            "sns: delivery to {} failed for good ({why}); moving it to {q}",
                            r.pending.endpoint
                        );
                        let body = r
                            .pending
                            .dlq_body
                            .clone()
                            .unwrap_or_else(|| r.pending.body.clone());
                        dead.push(Pending {
                            subscription_arn: r.pending.subscription_arn.clone(),
                            protocol: "dlq".into(),
                            endpoint: q,
                            body,
                            attributes: r.pending.attributes.clone(),
                            group_id: r.pending.group_id.clone(),
                            dedup_id: r.pending.dedup_id.clone(),
                            headers: Vec::new(),
                            dlq_body: None,
                            http_policy: None,
                        });
                    }
                    None => tracing::warn!(
                        "sns: delivery to {} of subscription {} failed for good and is dropped: {why}",
                        r.pending.endpoint,
                        r.pending.subscription_arn
                    ),
                }
            }
        }
        let plan: Vec<(i64, Option<(u32, i64)>)> = results
            .iter()
            .map(|(r, o)| match o {
                Outcome::Done | Outcome::GiveUp(_) => (r.id, None),
                Outcome::Retry(d) => (r.id, Some((r.attempts + 1, now + *d as i64))),
            })
            .collect();
        let dead_rows: Vec<String> = dead
            .iter()
            .filter_map(|p| serde_json::to_string(p).ok())
            .collect();
        let r = self
            .store
            .write(move |c| {
                for (id, next) in &plan {
                    match next {
                        None => {
                            c.execute("DELETE FROM sns_deliveries WHERE id = ?1", params![id])?;
                        }
                        Some((attempts, at)) => {
                            c.execute(
                                "UPDATE sns_deliveries SET attempts = ?2, next_ms = ?3 WHERE id = ?1",
                                params![id, attempts, at],
                            )?;
                        }
                    }
                }
                for body in &dead_rows {
                    insert_row(c, "", false, now, body)?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = r {
            tracing::warn!("sns: recording delivery outcomes failed: {e}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The TLS client configuration for `https` deliveries, made once.
    ///
    /// Errors: 503 `EndpointUnavailable` when the CA bundle cannot be
    /// loaded (retried, as a connection failure).
    fn tls_config(&self) -> Result<Arc<stratus_upstream::tls::ClientConfig>, AwsError> {
        self.tls
            .get_or_init(|| stratus_upstream::tls::client_config(self.ca_bundle.as_deref()))
            .clone()
            .map_err(|e| AwsError::new(503, "EndpointUnavailable", e))
    }

    fn dead_letter_queue(&self, subscription_arn: &str) -> Option<String> {
        self.subscription(subscription_arn)
            .ok()
            .flatten()
            .and_then(|s| s.dead_letter_queue())
    }
}

/// Inserts one pending delivery due at `now`.
pub(crate) fn insert_row(
    c: &rusqlite::Connection,
    subscription_arn: &str,
    fifo: bool,
    now: i64,
    body: &str,
) -> rusqlite::Result<()> {
    let sub = if subscription_arn.is_empty() {
        serde_json::from_str::<Pending>(body)
            .map(|p| p.subscription_arn)
            .unwrap_or_default()
    } else {
        subscription_arn.to_string()
    };
    c.execute(
        "INSERT INTO sns_deliveries (subscription_arn, fifo, attempts, next_ms, body) VALUES (?1, ?2, 0, ?3, ?4)",
        params![sub, fifo as i64, now, body],
    )?;
    Ok(())
}

/// POSTs `body` to an `http://` URL, or to an `https://` URL over TLS
/// with `tls` (certificate verified for the URL's host); 2xx is success.
///
/// Errors: a connection or TLS handshake failure (503
/// `EndpointUnavailable`, retried), or the endpoint's status with code
/// `EndpointError`.
async fn post(
    url: &str,
    tls: Option<Arc<stratus_upstream::tls::ClientConfig>>,
    content_type: &str,
    headers: &[(String, String)],
    body: String,
) -> Result<(), AwsError> {
    let unavailable = |m: String| AwsError::new(503, "EndpointUnavailable", m);
    let (rest, default_port) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(r), _) => (r, 80),
        (_, Some(r)) => (r, 443),
        _ => {
            return Err(AwsError::new(
                400,
                "InvalidEndpoint",
                format!("{url} is not an http or https URL"),
            ));
        }
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('?') => (&rest[..i], format!("/{}", &rest[i..])),
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    // `host`, `host:port`, `[v6]`, `[v6]:port`.
    let (host, addr) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, authority.to_string()),
        _ => (authority, format!("{authority}:{default_port}")),
    };
    let stream = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| unavailable(format!("cannot connect to {addr}: {e}")))?;
    let (mut sender, driver) = match (url.starts_with("https://"), tls) {
        (true, Some(config)) => {
            let stream = stratus_upstream::tls::connect(config, host, stream)
                .await
                .map_err(|e| unavailable(format!("TLS handshake with {addr} failed: {e}")))?;
            http1(stream, &addr).await?
        }
        (true, None) => {
            return Err(unavailable(format!(
                "{url}: no TLS configuration for an https endpoint"
            )));
        }
        (false, _) => http1(stream, &addr).await?,
    };
    let mut req = hyper::Request::post(path.as_str())
        .header("host", authority)
        .header("content-type", content_type)
        .header("user-agent", "Amazon Simple Notification Service Agent");
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req.body(Full::new(Bytes::from(body))).map_err(|e| {
        AwsError::new(
            400,
            "InvalidEndpoint",
            format!("bad request for {url}: {e}"),
        )
    })?;
    let res = sender.send_request(req).await;
    let out = match res {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let _ = resp.into_body().collect().await;
            if (200..300).contains(&status) {
                Ok(())
            } else {
                Err(AwsError::new(
                    status,
                    "EndpointError",
                    format!("{url} answered HTTP {status}"),
                ))
            }
        }
        Err(e) => Err(unavailable(format!("POST {url} failed: {e}"))),
    };
    driver.abort();
    out
}

/// An HTTP/1.1 connection over `io` (plain TCP or TLS): the request
/// sender and the task driving the connection (abort it when done).
///
/// Errors: 503 `EndpointUnavailable` when the handshake fails.
async fn http1<S>(
    io: S,
    addr: &str,
) -> Result<
    (
        hyper::client::conn::http1::SendRequest<Full<Bytes>>,
        tokio::task::JoinHandle<()>,
    ),
    AwsError,
>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .map_err(|e| {
            AwsError::new(
                503,
                "EndpointUnavailable",
                format!("HTTP handshake with {addr} failed: {e}"),
            )
        })?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok((sender, driver))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_schedule_follows_aws_phases() {
        // Immediate phase: 3 retries without delay.
        for r in 1..=3 {
            assert_eq!(retry_delay_ms("managed", r), Some(0));
        }
        // Pre-backoff: 2 retries 1 s apart.
        assert_eq!(retry_delay_ms("managed", 4), Some(1_000));
        assert_eq!(retry_delay_ms("managed", 5), Some(1_000));
        // Backoff: 10 retries from 1 s to 20 s, increasing.
        assert_eq!(retry_delay_ms("managed", 6), Some(1_000));
        assert_eq!(retry_delay_ms("managed", 15), Some(20_000));
        let backoff: Vec<u64> = (6..=15)
            .filter_map(|r| retry_delay_ms("managed", r))
            .collect();
        assert!(backoff.windows(2).all(|w| w[0] < w[1]), "{backoff:?}");
        // Post-backoff: 100,000 retries 20 s apart, then nothing.
        assert_eq!(retry_delay_ms("managed", 16), Some(20_000));
        assert_eq!(retry_delay_ms("managed", 100_015), Some(20_000));
        assert_eq!(retry_delay_ms("managed", 100_016), None);
        // HTTP default policy: 3 retries 20 s apart.
        assert_eq!(retry_delay_ms("http", 3), Some(20_000));
        assert_eq!(retry_delay_ms("http", 4), None);
    }
}
