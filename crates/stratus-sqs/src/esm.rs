//! Lambda event source mappings from SQS queues (botocore
//! `lambda/2015-03-31`: `CreateEventSourceMapping`, `Get...`, `Update...`,
//! `Delete...`, `ListEventSourceMappings`) and their pollers.
//!
//! A poller receives batches from the queue (long polling), invokes the
//! function synchronously with the event AWS documents in "Using Lambda
//! with Amazon SQS" (`Records[]` with `messageId`, `receiptHandle`, `body`,
//! `attributes`, `messageAttributes`, `md5OfBody`, `eventSource`
//! `aws:sqs`, `eventSourceARN`, `awsRegion`), deletes the batch when the
//! function succeeds, and leaves it to reappear after the visibility
//! timeout when it fails (so the queue's redrive policy applies). With
//! `FunctionResponseTypes: ["ReportBatchItemFailures"]` only the messages
//! not listed in the answer's `batchItemFailures[].itemIdentifier` are
//! deleted.
//!
//! Mappings are stored as resources (kind `lambda-esm`) and their pollers
//! restart with the server.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use stratus_core::{AwsError, AwsResult, FunctionRef};
use stratus_lambda::{InvokeRequest, Lambda};
use stratus_store::Store;
use tokio::sync::watch;

use crate::service::{Core, encode_receipt};

const KIND: &str = "lambda-esm";

/// Default `BatchSize` for SQS (10) and the largest (10,000).
pub const DEFAULT_BATCH: u32 = 10;
const MAX_BATCH: u32 = 10_000;
/// Pollers per mapping when `ScalingConfig` sets no `MaximumConcurrency`.
const DEFAULT_POLLERS: u32 = 5;
/// Most pollers one mapping runs here, whatever `MaximumConcurrency` says.
const MAX_POLLERS: u32 = 20;

/// One event source mapping as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mapping {
    /// The mapping's identifier (a UUID v4).
    pub uuid: String,
    /// The region the mapping was created in.
    pub region: String,
    /// The queue's ARN.
    pub event_source_arn: String,
    /// The function's ARN, with the qualifier given at creation if any.
    pub function_arn: String,
    /// `BatchSize`: most messages per invoke (1-10,000).
    pub batch_size: u32,
    /// `MaximumBatchingWindowInSeconds` (0-300).
    pub batching_window: u32,
    /// `Enabled`: whether pollers run.
    pub enabled: bool,
    /// `Creating`, `Enabling`, `Enabled`, `Disabling`, `Disabled`,
    /// `Updating`, `Deleting`.
    pub state: String,
    /// `FunctionResponseTypes` (`ReportBatchItemFailures` or none).
    pub function_response_types: Vec<String>,
    /// `ScalingConfig.MaximumConcurrency` (2-1,000), if set.
    pub maximum_concurrency: Option<u32>,
    /// Seconds since the epoch (fractional).
    pub last_modified: f64,
}

impl Mapping {
    fn to_json(&self, account: &str) -> Value {
        let mut m = Map::new();
        m.insert("UUID".into(), json!(self.uuid));
        m.insert("BatchSize".into(), json!(self.batch_size));
        m.insert(
            "MaximumBatchingWindowInSeconds".into(),
            json!(self.batching_window),
        );
        m.insert("EventSourceArn".into(), json!(self.event_source_arn));
        m.insert("FunctionArn".into(), json!(self.function_arn));
        m.insert("LastModified".into(), json!(self.last_modified));
        m.insert("State".into(), json!(self.state));
        m.insert("StateTransitionReason".into(), json!("USER_INITIATED"));
        m.insert(
            "FunctionResponseTypes".into(),
            json!(self.function_response_types),
        );
        if let Some(c) = self.maximum_concurrency {
            m.insert("ScalingConfig".into(), json!({"MaximumConcurrency": c}));
        }
        m.insert(
            "EventSourceMappingArn".into(),
            json!(format!(
                "arn:aws:lambda:{}:{account}:event-source-mapping:{}",
                self.region, self.uuid
            )),
        );
        Value::Object(m)
    }

    fn reports_failures(&self) -> bool {
        self.function_response_types
            .iter()
            .any(|t| t == "ReportBatchItemFailures")
    }
}

/// The event source mappings and their pollers.
pub struct Esm {
    store: Store,
    core: Arc<Core>,
    lambda: Arc<Lambda>,
    account: String,
    mappings: RwLock<HashMap<String, Mapping>>,
    /// Stop signals of running pollers, by UUID.
    running: Mutex<HashMap<String, watch::Sender<bool>>>,
    /// Set when the server shuts down: every poller stops.
    shutdown: watch::Sender<bool>,
}

/// Stops every poller when dropped (the server's shutdown aborts the task
/// holding it).
pub struct ShutdownGuard(Arc<Esm>);

impl Drop for ShutdownGuard {
    fn drop(&mut self) {
        self.0.shutdown.send_replace(true);
    }
}

fn now_s() -> f64 {
    stratus_core::time::now_ms() as f64 / 1000.0
}

fn validation(field: &str, value: impl std::fmt::Display, constraint: &str) -> AwsError {
    AwsError::validation_errors(&[format!(
        "Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
    )])
}

fn not_found() -> AwsError {
    AwsError::not_found("The resource you requested does not exist.")
}

/// The fields Create and Update accept.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MappingInput {
    event_source_arn: Option<String>,
    function_name: Option<String>,
    enabled: Option<bool>,
    batch_size: Option<i64>,
    maximum_batching_window_in_seconds: Option<i64>,
    function_response_types: Option<Vec<String>>,
    scaling_config: Option<ScalingInput>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ScalingInput {
    maximum_concurrency: Option<i64>,
}

impl Esm {
    /// Loads the stored mappings.
    ///
    /// Errors: the store cannot be read.
    pub fn new(
        store: Store,
        core: Arc<Core>,
        lambda: Arc<Lambda>,
        account: String,
    ) -> Result<Arc<Esm>, String> {
        let mut mappings = HashMap::new();
        for (_, _, body) in store.list_all(KIND).map_err(|e| e.to_string())? {
            match serde_json::from_str::<Mapping>(&body) {
                Ok(m) => {
                    mappings.insert(m.uuid.clone(), m);
                }
                Err(e) => tracing::warn!("skipping unreadable event source mapping: {e}"),
            }
        }
        Ok(Arc::new(Esm {
            store,
            core,
            lambda,
            account,
            mappings: RwLock::new(mappings),
            running: Mutex::new(HashMap::new()),
            shutdown: watch::channel(false).0,
        }))
    }

    fn get(&self, uuid: &str) -> Option<Mapping> {
        self.mappings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(uuid)
            .cloned()
    }

    async fn save(&self, m: Mapping) -> AwsResult<()> {
        let body = serde_json::to_string(&m).map_err(|e| AwsError::service(e.to_string()))?;
        let (region, uuid) = (m.region.clone(), m.uuid.clone());
        self.store
            .write(move |c| {
                c.execute(
                    "INSERT INTO resources (kind, region, id, body) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (kind, region, id) DO UPDATE SET body = excluded.body",
                    stratus_store::rusqlite::params![KIND, region, uuid, body],
                )
            })
            .await?;
        self.mappings
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(m.uuid.clone(), m);
        Ok(())
    }

    async fn remove(&self, m: &Mapping) -> AwsResult<()> {
        let (region, uuid) = (m.region.clone(), m.uuid.clone());
        self.store
            .write(move |c| {
                c.execute(
                    "DELETE FROM resources WHERE kind = ?1 AND region = ?2 AND id = ?3",
                    stratus_store::rusqlite::params![KIND, region, uuid],
                )
            })
            .await?;
        self.mappings
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&m.uuid);
        Ok(())
    }

    /// Starts the pollers of every enabled mapping and finishes
    /// transitions interrupted by a restart.
    pub fn start_all(self: &Arc<Self>) {
        let all: Vec<Mapping> = self
            .mappings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for m in all {
            let this = self.clone();
            tokio::spawn(async move {
                match m.state.as_str() {
                    "Deleting" => {
                        let _ = this.remove(&m).await;
                    }
                    "Disabling" | "Disabled" => {
                        if m.state != "Disabled" {
                            let mut d = m.clone();
                            d.state = "Disabled".into();
                            let _ = this.save(d).await;
                        }
                    }
                    _ => this.start(&m.uuid),
                }
            });
        }
    }

    /// A guard whose drop stops every poller for good.
    pub fn shutdown_guard(self: &Arc<Self>) -> ShutdownGuard {
        ShutdownGuard(self.clone())
    }

    /// Starts the pollers of mapping `uuid` unless they run.
    fn start(self: &Arc<Self>, uuid: &str) {
        if *self.shutdown.borrow() {
            return;
        }
        let Some(m) = self.get(uuid) else { return };
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.contains_key(uuid) {
            return;
        }
        let (tx, rx) = watch::channel(false);
        running.insert(uuid.to_string(), tx);
        drop(running);
        let this = self.clone();
        let uuid = uuid.to_string();
        tokio::spawn(async move {
            if matches!(m.state.as_str(), "Creating" | "Enabling" | "Updating") {
                let mut e = m.clone();
                e.state = "Enabled".into();
                if let Err(err) = this.save(e).await {
                    tracing::warn!("event source mapping {uuid}: {err}");
                }
            }
            let n = m
                .maximum_concurrency
                .unwrap_or(DEFAULT_POLLERS)
                .clamp(1, MAX_POLLERS);
            let mut workers = Vec::new();
            for _ in 0..n {
                let this = this.clone();
                let uuid = uuid.clone();
                let rx = rx.clone();
                workers.push(tokio::spawn(async move { this.poll(&uuid, rx).await }));
            }
            for w in workers {
                let _ = w.await;
            }
            this.running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&uuid);
            // Finish the transition that stopped the pollers.
            if let Some(m) = this.get(&uuid) {
                match m.state.as_str() {
                    "Deleting" => {
                        let _ = this.remove(&m).await;
                    }
                    "Disabling" => {
                        let mut d = m.clone();
                        d.state = "Disabled".into();
                        let _ = this.save(d).await;
                    }
                    _ if m.enabled => this.start(&uuid),
                    _ => {}
                }
            }
        });
    }

    fn stop(&self, uuid: &str) -> bool {
        match self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(uuid)
        {
            Some(tx) => {
                let _ = tx.send(true);
                true
            }
            None => false,
        }
    }

    /// One poller: receive, invoke, delete, until stopped.
    async fn poll(self: &Arc<Self>, uuid: &str, mut stop: watch::Receiver<bool>) {
        let mut down = self.shutdown.subscribe();
        loop {
            if *stop.borrow() || *down.borrow() {
                return;
            }
            let Some(m) = self.get(uuid) else { return };
            if !m.enabled || m.state == "Deleting" || m.state == "Disabling" {
                return;
            }
            let q = match self.core.queue_by_arn(&m.event_source_arn) {
                Ok(q) => q,
                Err(_) => {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.changed() => {}
                        _ = down.changed() => return,
                    }
                    continue;
                }
            };
            let batch = tokio::select! {
                b = self.collect(&m, q.id) => b,
                _ = stop.changed() => return,
                _ = down.changed() => return,
            };
            let (q, records) = match batch {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            self.deliver(&m, &q, records).await;
        }
    }

    /// Receives one batch: up to `BatchSize` messages, waiting up to the
    /// batching window once the first arrived.
    async fn collect(
        &self,
        m: &Mapping,
        queue_id: i64,
    ) -> AwsResult<Option<(Arc<crate::queue::Queue>, Vec<crate::messages::Received>)>> {
        let (q, mut got) = self
            .core
            .receive_messages(queue_id, (m.batch_size as usize).min(10), None, 20)
            .await?;
        if got.is_empty() {
            return Ok(None);
        }
        let until = tokio::time::Instant::now() + Duration::from_secs(m.batching_window as u64);
        while got.len() < m.batch_size as usize {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            let want = (m.batch_size as usize - got.len()).min(10);
            let wait = left.as_secs() as i64;
            let (_, more) = self
                .core
                .receive_messages(queue_id, want, None, wait)
                .await?;
            if more.is_empty() && tokio::time::Instant::now() >= until {
                break;
            }
            got.extend(more);
            if tokio::time::Instant::now() >= until {
                break;
            }
        }
        Ok(Some((q, got)))
    }

    fn event(
        &self,
        m: &Mapping,
        q: &crate::queue::Queue,
        records: &[crate::messages::Received],
    ) -> Value {
        let names = vec!["All".to_string()];
        let recs: Vec<Value> = records
            .iter()
            .map(|r| {
                let sys = self.core.system_attributes(q, r, &names);
                let mut attrs = Map::new();
                let user = Core::message_attributes(r);
                for (name, a) in &user {
                    let mut o = Map::new();
                    if let Some(s) = &a.string_value {
                        o.insert("stringValue".into(), json!(s));
                    }
                    if let Some(b) = &a.binary_value {
                        o.insert(
                            "binaryValue".into(),
                            json!(base64::engine::general_purpose::STANDARD.encode(b)),
                        );
                    }
                    o.insert("stringListValues".into(), json!([]));
                    o.insert("binaryListValues".into(), json!([]));
                    o.insert("dataType".into(), json!(a.data_type));
                    attrs.insert(name.clone(), Value::Object(o));
                }
                let mut o = Map::new();
                o.insert("messageId".into(), json!(r.message_id));
                o.insert(
                    "receiptHandle".into(),
                    json!(encode_receipt(q.id, r.seq, &r.receipt)),
                );
                o.insert("body".into(), json!(r.body));
                o.insert("attributes".into(), json!(sys));
                o.insert("messageAttributes".into(), Value::Object(attrs));
                o.insert("md5OfBody".into(), json!(r.md5_body));
                if let Some(md5) = crate::attrs::md5_of_attributes(&user) {
                    o.insert("md5OfMessageAttributes".into(), json!(md5));
                }
                o.insert("eventSource".into(), json!("aws:sqs"));
                o.insert("eventSourceARN".into(), json!(m.event_source_arn));
                o.insert("awsRegion".into(), json!(q.region));
                Value::Object(o)
            })
            .collect();
        json!({"Records": recs})
    }

    /// Invokes the function with one batch and deletes what succeeded.
    async fn deliver(
        &self,
        m: &Mapping,
        q: &crate::queue::Queue,
        records: Vec<crate::messages::Received>,
    ) {
        let event = self.event(m, q, &records);
        let req = InvokeRequest {
            function_name: m.function_arn.clone(),
            qualifier: None,
            invocation_type: None,
            log_type: None,
            client_context: None,
            payload: Bytes::from(event.to_string()),
        };
        let resp = match self.lambda.invoke(&m.region, req).await {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(
                    "event source mapping {}: invoke failed, the batch returns to the queue: {e}",
                    m.uuid
                );
                return;
            }
        };
        if resp.function_error.is_some() {
            return;
        }
        let failed = if m.reports_failures() {
            match failed_items(&resp.payload, &records) {
                Some(f) => f,
                // An answer that is not a valid report fails the whole batch.
                None => return,
            }
        } else {
            Vec::new()
        };
        let done: Vec<(i64, String)> = records
            .iter()
            .filter(|r| !failed.contains(&r.message_id))
            .map(|r| (r.seq, r.receipt.clone()))
            .collect();
        if let Err(e) = self.core.delete_received(q.id, done).await {
            tracing::warn!("event source mapping {}: delete failed: {e}", m.uuid);
        }
    }

    fn resolve_function(&self, region: &str, name: &str) -> AwsResult<String> {
        let r = FunctionRef::parse(name, "functionName")?;
        let (rec, _) = self.lambda.resolve(region, name, None)?;
        let mut arn = rec.config.function_arn.clone();
        // A version's record carries its qualified ARN; keep only the
        // unqualified part, then add the qualifier asked for.
        if let Some(i) = arn.find(&format!(":function:{}:", r.name)) {
            arn.truncate(i + ":function:".len() + r.name.len());
        }
        if let Some(q) = &r.qualifier {
            arn = format!("{arn}:{q}");
        }
        Ok(arn)
    }

    fn check_common(input: &MappingInput, fifo: bool, batch: u32, window: u32) -> AwsResult<()> {
        if let Some(types) = &input.function_response_types {
            for t in types {
                if t != "ReportBatchItemFailures" {
                    return Err(validation(
                        "functionResponseTypes",
                        t,
                        "Member must satisfy enum value set: [ReportBatchItemFailures]",
                    ));
                }
            }
        }
        if fifo && batch > 10 {
            return Err(AwsError::invalid_parameter(
                "Batch size must be between 1 and 10 for FIFO queues.",
            ));
        }
        if batch > 10 && window == 0 {
            return Err(AwsError::invalid_parameter(
                "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10",
            ));
        }
        Ok(())
    }

    fn check_ranges(input: &MappingInput) -> AwsResult<()> {
        if let Some(b) = input.batch_size
            && !(1..=MAX_BATCH as i64).contains(&b)
        {
            let c = if b < 1 {
                "Member must have value greater than or equal to 1"
            } else {
                "Member must have value less than or equal to 10000"
            };
            return Err(validation("batchSize", b, c));
        }
        if let Some(w) = input.maximum_batching_window_in_seconds
            && !(0..=300).contains(&w)
        {
            let c = if w < 0 {
                "Member must have value greater than or equal to 0"
            } else {
                "Member must have value less than or equal to 300"
            };
            return Err(validation("maximumBatchingWindowInSeconds", w, c));
        }
        if let Some(c) = input
            .scaling_config
            .as_ref()
            .and_then(|s| s.maximum_concurrency)
            && !(2..=1000).contains(&c)
        {
            let k = if c < 2 {
                "Member must have value greater than or equal to 2"
            } else {
                "Member must have value less than or equal to 1000"
            };
            return Err(validation("scalingConfig.maximumConcurrency", c, k));
        }
        Ok(())
    }

    /// `CreateEventSourceMapping` (202).
    ///
    /// Errors: `ValidationException` for values outside the model's
    /// ranges; `InvalidParameterValueException` when the source is not an
    /// existing SQS queue or the batch settings do not fit it;
    /// `ResourceNotFoundException` for an unknown function;
    /// `ResourceConflictException` when the queue and function are
    /// already mapped.
    pub async fn create(self: &Arc<Self>, region: &str, body: &[u8]) -> AwsResult<Value> {
        let input: MappingInput = stratus_lambda::service::parse_body(body)?;
        Self::check_ranges(&input)?;
        let source = input.event_source_arn.clone().ok_or_else(|| {
            AwsError::invalid_parameter(
                "EventSourceArn is required for an SQS event source mapping.",
            )
        })?;
        let function = input
            .function_name
            .clone()
            .ok_or_else(|| validation("functionName", "null", "Member must not be null"))?;
        if crate::queue::parse_arn(&source).is_none() {
            return Err(AwsError::invalid_parameter(format!(
                "Unrecognized event source, must be an Amazon SQS queue ARN: {source}"
            )));
        }
        let q = self.core.queue_by_arn(&source).map_err(|_| {
            AwsError::invalid_parameter(format!(
                "Error occurred while ReceiveMessage. SQS Error Code: AWS.SimpleQueueService.NonExistentQueue. SQS Error Message: The specified queue does not exist ({source})."
            ))
        })?;
        let function_arn = self.resolve_function(region, &function)?;
        let batch = input.batch_size.unwrap_or(DEFAULT_BATCH as i64) as u32;
        let window = input.maximum_batching_window_in_seconds.unwrap_or(0) as u32;
        Self::check_common(&input, q.fifo, batch, window)?;
        let existing = self
            .mappings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .find(|m| m.event_source_arn == source && m.function_arn == function_arn)
            .map(|m| m.uuid.clone());
        if let Some(u) = existing {
            return Err(AwsError::conflict(format!(
                "An event source mapping with SQS arn (\" {source} \") and function (\" {function} \") already exists. Please update or delete the existing mapping with UUID {u}"
            )));
        }
        let enabled = input.enabled.unwrap_or(true);
        let m = Mapping {
            uuid: uuid::Uuid::new_v4().to_string(),
            region: region.to_string(),
            event_source_arn: source,
            function_arn,
            batch_size: batch,
            batching_window: window,
            enabled,
            state: if enabled { "Creating" } else { "Disabled" }.into(),
            function_response_types: input.function_response_types.unwrap_or_default(),
            maximum_concurrency: input
                .scaling_config
                .and_then(|s| s.maximum_concurrency)
                .map(|c| c as u32),
            last_modified: now_s(),
        };
        self.save(m.clone()).await?;
        if enabled {
            self.start(&m.uuid);
        }
        Ok(m.to_json(&self.account))
    }

    fn in_region(&self, region: &str, uuid: &str) -> AwsResult<Mapping> {
        self.get(uuid)
            .filter(|m| m.region == region)
            .ok_or_else(not_found)
    }

    /// `UpdateEventSourceMapping` (202).
    ///
    /// Errors: as [`Esm::create`]; `ResourceNotFoundException` for an
    /// unknown UUID; `ResourceInUseException` while it is being deleted.
    pub async fn update(
        self: &Arc<Self>,
        region: &str,
        uuid: &str,
        body: &[u8],
    ) -> AwsResult<Value> {
        let input: MappingInput = stratus_lambda::service::parse_body(body)?;
        Self::check_ranges(&input)?;
        let mut m = self.in_region(region, uuid)?;
        if m.state == "Deleting" {
            return Err(AwsError::new(
                400,
                "ResourceInUseException",
                format!("Cannot update the event source mapping {uuid}: it is being deleted."),
            ));
        }
        if let Some(f) = &input.function_name {
            m.function_arn = self.resolve_function(region, f)?;
        }
        let fifo = self
            .core
            .queue_by_arn(&m.event_source_arn)
            .map(|q| q.fifo)
            .unwrap_or(false);
        let batch = input.batch_size.map(|b| b as u32).unwrap_or(m.batch_size);
        let window = input
            .maximum_batching_window_in_seconds
            .map(|w| w as u32)
            .unwrap_or(m.batching_window);
        Self::check_common(&input, fifo, batch, window)?;
        m.batch_size = batch;
        m.batching_window = window;
        if let Some(t) = input.function_response_types {
            m.function_response_types = t;
        }
        if let Some(s) = input.scaling_config {
            m.maximum_concurrency = s.maximum_concurrency.map(|c| c as u32);
        }
        let was = m.enabled;
        if let Some(e) = input.enabled {
            m.enabled = e;
        }
        m.last_modified = now_s();
        m.state = match (was, m.enabled) {
            (_, false) => {
                if self
                    .running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains_key(uuid)
                {
                    "Disabling"
                } else {
                    "Disabled"
                }
            }
            (false, true) => "Enabling",
            (true, true) => "Updating",
        }
        .into();
        self.save(m.clone()).await?;
        // Pollers pick up new settings by restarting.
        if !self.stop(uuid) && m.enabled {
            self.start(uuid);
        }
        Ok(m.to_json(&self.account))
    }

    /// `DeleteEventSourceMapping` (202): answers with state `Deleting`;
    /// the mapping disappears once its pollers stopped.
    ///
    /// Errors: `ResourceNotFoundException` for an unknown UUID.
    pub async fn delete(self: &Arc<Self>, region: &str, uuid: &str) -> AwsResult<Value> {
        let mut m = self.in_region(region, uuid)?;
        m.state = "Deleting".into();
        m.last_modified = now_s();
        self.save(m.clone()).await?;
        if !self.stop(uuid) {
            self.remove(&m).await?;
        }
        Ok(m.to_json(&self.account))
    }

    /// `ListEventSourceMappings`: filtered by `EventSourceArn` and
    /// `FunctionName`, paged by `Marker` / `MaxItems` (1-10,000, default 100).
    ///
    /// Errors: `ValidationException` for a bad `MaxItems`;
    /// `InvalidParameterValueException` for a bad marker.
    pub fn list(&self, region: &str, query: &BTreeMap<String, String>) -> AwsResult<Value> {
        let max = match query.get("MaxItems") {
            Some(s) => {
                let n: i64 = s
                    .parse()
                    .map_err(|_| validation("maxItems", s, "Member must be an integer"))?;
                if !(1..=10_000).contains(&n) {
                    return Err(validation(
                        "maxItems",
                        n,
                        "Member must have value between 1 and 10000",
                    ));
                }
                n as usize
            }
            None => 100,
        };
        let fref = match query.get("FunctionName") {
            Some(f) => Some(FunctionRef::parse(f, "functionName")?),
            None => None,
        };
        let mut all: Vec<Mapping> = self
            .mappings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|m| m.region == region)
            .filter(|m| {
                query
                    .get("EventSourceArn")
                    .is_none_or(|a| &m.event_source_arn == a)
            })
            .filter(|m| {
                fref.as_ref().is_none_or(|f| {
                    let tail = m
                        .function_arn
                        .split(":function:")
                        .nth(1)
                        .unwrap_or_default();
                    let mut parts = tail.splitn(2, ':');
                    let name = parts.next().unwrap_or_default();
                    let qual = parts.next();
                    name == f.name && (f.qualifier.is_none() || f.qualifier.as_deref() == qual)
                })
            })
            .cloned()
            .collect();
        all.sort_by(|a, b| a.uuid.cmp(&b.uuid));
        if let Some(marker) = query.get("Marker") {
            let pos = all
                .iter()
                .position(|m| &m.uuid == marker)
                .ok_or_else(|| AwsError::invalid_parameter("The marker is not valid."))?;
            all.drain(..pos);
        }
        let next = (all.len() > max).then(|| all[max].uuid.clone());
        all.truncate(max);
        let mut out = json!({"EventSourceMappings": all.iter().map(|m| m.to_json(&self.account)).collect::<Vec<_>>()});
        if let Some(n) = next {
            out["NextMarker"] = json!(n);
        }
        Ok(out)
    }
}

/// The message ids a function reported as failed
/// (`{"batchItemFailures": [{"itemIdentifier": "<messageId>"}]}`); `None`
/// when the report is malformed or names a message outside the batch,
/// which fails the whole batch as Lambda documents. An empty or `null`
/// answer reports no failures.
pub fn failed_items(payload: &[u8], records: &[crate::messages::Received]) -> Option<Vec<String>> {
    let text = std::str::from_utf8(payload).ok()?.trim();
    if text.is_empty() || text == "null" {
        return Some(Vec::new());
    }
    let v: Value = serde_json::from_str(text).ok()?;
    let Some(obj) = v.as_object() else {
        return Some(Vec::new());
    };
    let list = match obj.get("batchItemFailures") {
        None | Some(Value::Null) => return Some(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return None,
    };
    let mut out = Vec::new();
    for item in list {
        let id = item.get("itemIdentifier").and_then(Value::as_str)?;
        if id.is_empty() || !records.iter().any(|r| r.message_id == id) {
            return None;
        }
        out.push(id.to_string());
    }
    Some(out)
}

fn region(h: &HeaderMap) -> String {
    h.get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(stratus_core::arn::region_from_authorization)
        .unwrap_or_else(|| stratus_core::DEFAULT_REGION.to_string())
}

fn answer(status: StatusCode, r: AwsResult<Value>) -> Response {
    let mut resp = match r {
        Ok(v) => (status, v.to_string()).into_response(),
        Err(e) => {
            let body = json!({"Type": if e.status >= 500 { "Service" } else { "User" }, "message": e.message});
            let mut r = (
                StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                body.to_string(),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&e.code) {
                r.headers_mut().insert("x-amzn-errortype", v);
            }
            r
        }
    };
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&stratus_core::request_id()) {
        h.insert("x-amzn-requestid", v);
    }
    resp
}

async fn create_h(State(e): State<Arc<Esm>>, h: HeaderMap, body: Bytes) -> Response {
    answer(StatusCode::ACCEPTED, e.create(&region(&h), &body).await)
}

async fn list_h(State(e): State<Arc<Esm>>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let query: BTreeMap<String, String> = q.as_deref().map(url_pairs).unwrap_or_default();
    answer(StatusCode::OK, e.list(&region(&h), &query))
}

fn url_pairs(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn get_h(State(e): State<Arc<Esm>>, h: HeaderMap, Path(uuid): Path<String>) -> Response {
    let r = e
        .in_region(&region(&h), &uuid)
        .map(|m| m.to_json(&e.account));
    answer(StatusCode::OK, r)
}

async fn update_h(
    State(e): State<Arc<Esm>>,
    h: HeaderMap,
    Path(uuid): Path<String>,
    body: Bytes,
) -> Response {
    answer(
        StatusCode::ACCEPTED,
        e.update(&region(&h), &uuid, &body).await,
    )
}

async fn delete_h(State(e): State<Arc<Esm>>, h: HeaderMap, Path(uuid): Path<String>) -> Response {
    answer(StatusCode::ACCEPTED, e.delete(&region(&h), &uuid).await)
}

/// The routes of the event source mapping operations.
pub fn router(esm: Arc<Esm>) -> Router {
    Router::new()
        .route(
            "/2015-03-31/event-source-mappings",
            get(list_h).post(create_h),
        )
        .route(
            "/2015-03-31/event-source-mappings/",
            get(list_h).post(create_h),
        )
        .route(
            "/2015-03-31/event-source-mappings/{uuid}",
            get(get_h).put(update_h).delete(delete_h),
        )
        .with_state(esm)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str) -> crate::messages::Received {
        crate::messages::Received {
            seq: 1,
            message_id: id.into(),
            receipt: "r".into(),
            body: "b".into(),
            md5_body: String::new(),
            attrs: None,
            sys_attrs: None,
            sent_ms: 0,
            receive_count: 1,
            first_receive_ms: 0,
            group_id: None,
            dedup_id: None,
            sender_id: String::new(),
            dlq_source: None,
        }
    }

    #[test]
    fn batch_item_failures() {
        let recs = [rec("a"), rec("b")];
        assert_eq!(failed_items(b"", &recs), Some(vec![]));
        assert_eq!(failed_items(b"null", &recs), Some(vec![]));
        assert_eq!(failed_items(b"{}", &recs), Some(vec![]));
        assert_eq!(
            failed_items(br#"{"batchItemFailures":[]}"#, &recs),
            Some(vec![])
        );
        assert_eq!(
            failed_items(br#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#, &recs),
            Some(vec!["b".to_string()])
        );
        // Unknown, empty or missing identifiers fail the whole batch.
        assert_eq!(
            failed_items(br#"{"batchItemFailures":[{"itemIdentifier":"zz"}]}"#, &recs),
            None
        );
        assert_eq!(
            failed_items(br#"{"batchItemFailures":[{"itemIdentifier":""}]}"#, &recs),
            None
        );
        assert_eq!(failed_items(br#"{"batchItemFailures":[{}]}"#, &recs), None);
    }

    #[test]
    fn query_strings() {
        let q = url_pairs("EventSourceArn=arn%3Aaws%3Asqs%3Aus-east-1%3A1%3Aq&MaxItems=5");
        assert_eq!(q["EventSourceArn"], "arn:aws:sqs:us-east-1:1:q");
        assert_eq!(q["MaxItems"], "5");
    }
}
