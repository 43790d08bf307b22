//! The SQS operations, on json-protocol shaped input and output
//! (botocore `sqs/2012-11-05`). The query protocol is translated to and
//! from these shapes in [`crate::query`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use base64::Engine;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use stratus_core::{AwsError, AwsResult, MessageAttribute};
use stratus_store::Store;
use stratus_store::rusqlite::{OptionalExtension, params};
use tokio::sync::Notify;

use crate::attrs;
use crate::errors::*;
use crate::messages::{self, NewMessage, ReceiveSpec, Received, RedriveTarget};
use crate::queue::{self, Queue};

/// Most entries in one batch request.
pub const MAX_BATCH: usize = 10;
/// Longest long poll, seconds.
pub const MAX_WAIT_SECONDS: i64 = 20;
/// Longest visibility timeout, seconds (12 hours).
pub const MAX_VISIBILITY: i64 = 43_200;

/// The queues and messages of every region.
pub struct Core {
    pub(crate) store: Store,
    pub(crate) account: String,
    pub(crate) edge_url: String,
    queues: RwLock<HashMap<(String, String), Arc<Queue>>>,
    /// Queue ids to `(region, name)`.
    ids: RwLock<HashMap<i64, (String, String)>>,
    notifies: Mutex<HashMap<i64, Arc<Notify>>>,
    purges: Mutex<HashMap<i64, i64>>,
}

/// Input accessors with SQS's errors.
pub(crate) struct Input<'a>(pub &'a Map<String, Value>);

impl<'a> Input<'a> {
    pub(crate) fn str(&self, k: &str) -> AwsResult<Option<&'a str>> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(invalid_param(format!(
                "The parameter {k} must be a string."
            ))),
        }
    }

    pub(crate) fn req(&self, k: &str) -> AwsResult<&'a str> {
        self.str(k)?.ok_or_else(|| missing_param(k))
    }

    pub(crate) fn int(&self, k: &str) -> AwsResult<Option<i64>> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| invalid_param(format!("The parameter {k} must be an integer."))),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| {
                invalid_param(format!(
                    "Value {s} for parameter {k} is invalid. Reason: Must be an integer."
                ))
            }),
            Some(_) => Err(invalid_param(format!(
                "The parameter {k} must be an integer."
            ))),
        }
    }

    pub(crate) fn strings(&self, k: &str) -> AwsResult<Vec<String>> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| invalid_param(format!("{k} must be a list of strings.")))
                })
                .collect(),
            Some(_) => Err(invalid_param(format!("{k} must be a list of strings."))),
        }
    }

    pub(crate) fn string_map(&self, k: &str) -> AwsResult<BTreeMap<String, String>> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(BTreeMap::new()),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(a, v)| match v {
                    Value::String(s) => Ok((a.clone(), s.clone())),
                    Value::Number(n) => Ok((a.clone(), n.to_string())),
                    Value::Bool(b) => Ok((a.clone(), b.to_string())),
                    _ => Err(invalid_param(format!(
                        "{k}: the value of {a} must be a string."
                    ))),
                })
                .collect(),
            Some(_) => Err(invalid_param(format!("{k} must be a map of strings."))),
        }
    }
}

fn in_range(name: &str, v: i64, lo: i64, hi: i64) -> AwsResult<i64> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(invalid_param(format!(
            "Value {v} for parameter {name} is invalid. Reason: Must be between {lo} and {hi}, if provided."
        )))
    }
}

fn valid_batch_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 80
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `MessageGroupId` / `MessageDeduplicationId`: 1-128 characters of
/// alphanumerics and punctuation.
fn valid_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_graphic())
}

fn valid_body(body: &str) -> bool {
    body.chars().all(|c| {
        matches!(c, '\u{9}' | '\u{A}' | '\u{D}')
            || ('\u{20}'..='\u{D7FF}').contains(&c)
            || ('\u{E000}'..='\u{FFFD}').contains(&c)
            || c >= '\u{10000}'
    })
}

/// One message to send, as parsed from `SendMessage` or a batch entry.
#[derive(Debug, Clone, Default)]
pub struct SendInput {
    /// `MessageBody`.
    pub body: String,
    /// `DelaySeconds` (0-900; standard queues only).
    pub delay: Option<i64>,
    /// `MessageAttributes` (at most 10).
    pub attributes: BTreeMap<String, MessageAttribute>,
    /// `MessageSystemAttributes` (`AWSTraceHeader`).
    pub system_attributes: BTreeMap<String, MessageAttribute>,
    /// `MessageGroupId` (required on FIFO queues).
    pub group_id: Option<String>,
    /// `MessageDeduplicationId` (FIFO queues).
    pub dedup_id: Option<String>,
}

impl SendInput {
    fn parse(m: &Map<String, Value>) -> AwsResult<SendInput> {
        let i = Input(m);
        let body = i.req("MessageBody")?.to_string();
        let attributes = attrs::from_json(m.get("MessageAttributes"))?;
        let system_attributes = attrs::from_json(m.get("MessageSystemAttributes"))?;
        for name in system_attributes.keys() {
            if name != "AWSTraceHeader" {
                return Err(invalid_param(format!(
                    "Message system attribute name '{name}' is invalid: only AWSTraceHeader can be set."
                )));
            }
        }
        Ok(SendInput {
            body,
            delay: i.int("DelaySeconds")?,
            attributes,
            system_attributes,
            group_id: i.str("MessageGroupId")?.map(str::to_string),
            dedup_id: i.str("MessageDeduplicationId")?.map(str::to_string),
        })
    }
}

/// A message checked against its queue, with its digests.
struct Prepared {
    new: NewMessage,
    md5_attrs: Option<String>,
    md5_sys: Option<String>,
}

/// The answer to one send.
#[derive(Debug, Clone)]
pub struct SendResult {
    /// `MessageId` (the first message's for a deduplicated send).
    pub message_id: String,
    /// `MD5OfMessageBody`.
    pub md5_body: String,
    /// `MD5OfMessageAttributes`, when there are attributes.
    pub md5_attrs: Option<String>,
    /// `MD5OfMessageSystemAttributes`, when there are system attributes.
    pub md5_sys: Option<String>,
    /// FIFO only: the 20-digit sequence number.
    pub sequence_number: Option<String>,
}

impl SendResult {
    fn to_json(&self, id: Option<&str>) -> Value {
        let mut m = Map::new();
        if let Some(id) = id {
            m.insert("Id".into(), Value::from(id));
        }
        m.insert("MessageId".into(), Value::from(self.message_id.clone()));
        m.insert(
            "MD5OfMessageBody".into(),
            Value::from(self.md5_body.clone()),
        );
        if let Some(v) = &self.md5_attrs {
            m.insert("MD5OfMessageAttributes".into(), Value::from(v.clone()));
        }
        if let Some(v) = &self.md5_sys {
            m.insert(
                "MD5OfMessageSystemAttributes".into(),
                Value::from(v.clone()),
            );
        }
        if let Some(v) = &self.sequence_number {
            m.insert("SequenceNumber".into(), Value::from(v.clone()));
        }
        Value::Object(m)
    }
}

fn sequence_number(seq: i64) -> String {
    format!("{seq:020}")
}

/// An opaque receipt handle: base64 of `<queue id>:<seq>:<nonce>`.
pub fn encode_receipt(queue_id: i64, seq: i64, nonce: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{queue_id}:{seq}:{nonce}"))
}

/// Decodes a receipt handle of queue `queue_id` into `(seq, nonce)`.
///
/// Errors: `ReceiptHandleIsInvalid` (400).
pub fn decode_receipt(handle: &str, queue_id: i64) -> AwsResult<(i64, String)> {
    let bad = || receipt_invalid(handle);
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(handle)
        .map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let mut p = text.splitn(3, ':');
    let q: i64 = p.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let seq: i64 = p.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let nonce = p.next().filter(|n| n.len() == 32).ok_or_else(bad)?;
    if q != queue_id {
        return Err(bad());
    }
    Ok((seq, nonce.to_string()))
}

fn now_ms() -> i64 {
    stratus_core::time::now_ms()
}

/// A batch entry's failure (`BatchResultErrorEntry`).
fn failure(id: &str, e: &AwsError) -> Value {
    json!({"Id": id, "SenderFault": e.status < 500, "Code": e.code, "Message": e.message})
}

/// Checks a batch's entries: 1-10, ids valid and distinct.
fn check_entries<'a>(
    entries: Option<&'a Value>,
    what: &str,
) -> AwsResult<Vec<(&'a str, &'a Map<String, Value>)>> {
    let list = match entries {
        None | Some(Value::Null) => return Err(empty_batch(what)),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(invalid_param("Entries must be a list.")),
    };
    if list.is_empty() {
        return Err(empty_batch(what));
    }
    if list.len() > MAX_BATCH {
        return Err(too_many_entries(list.len()));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(list.len());
    for e in list {
        let m = e
            .as_object()
            .ok_or_else(|| invalid_param("Each batch entry must be a structure."))?;
        let id = Input(m).req("Id")?;
        if !valid_batch_id(id) {
            return Err(invalid_entry_id(id));
        }
        if !seen.insert(id) {
            return Err(ids_not_distinct(id));
        }
        out.push((id, m));
    }
    Ok(out)
}

impl Core {
    /// Loads the queues from the store.
    pub fn open(store: Store, account: String, edge_url: String) -> Result<Core, String> {
        store.migrate(messages::SCHEMA).map_err(|e| e.to_string())?;
        let rows: Vec<(i64, String)> = store
            .read(|c| {
                let mut st = c.prepare("SELECT id, body FROM sqs_queues")?;
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
            })
            .map_err(|e| e.to_string())?;
        let mut queues = HashMap::new();
        for (id, body) in rows {
            match serde_json::from_str::<Queue>(&body) {
                Ok(mut q) => {
                    q.id = id;
                    queues.insert((q.region.clone(), q.name.clone()), Arc::new(q));
                }
                Err(e) => tracing::warn!("skipping unreadable queue {id}: {e}"),
            }
        }
        let ids = queues.iter().map(|(k, q)| (q.id, k.clone())).collect();
        Ok(Core {
            store,
            account,
            edge_url,
            queues: RwLock::new(queues),
            ids: RwLock::new(ids),
            notifies: Mutex::new(HashMap::new()),
            purges: Mutex::new(HashMap::new()),
        })
    }

    /// `<edge>/<account>/<name>`.
    pub fn queue_url(&self, name: &str) -> String {
        format!("{}/{}/{}", self.edge_url, self.account, name)
    }

    pub(crate) fn arn(&self, q: &Queue) -> String {
        queue::queue_arn(&q.region, &self.account, &q.name)
    }

    fn cached(&self, region: &str, name: &str) -> Option<Arc<Queue>> {
        self.queues
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(region.to_string(), name.to_string()))
            .cloned()
    }

    fn by_id(&self, id: i64) -> Option<Arc<Queue>> {
        let key = self
            .ids
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()?;
        self.queues
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned()
    }

    fn put_cache(&self, q: Queue) -> Arc<Queue> {
        let q = Arc::new(q);
        self.ids
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(q.id, (q.region.clone(), q.name.clone()));
        self.queues
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert((q.region.clone(), q.name.clone()), q.clone());
        q
    }

    pub(crate) fn notify(&self, id: i64) -> Arc<Notify> {
        self.notifies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id)
            .or_default()
            .clone()
    }

    fn wake(&self, id: i64) {
        let n = self
            .notifies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned();
        if let Some(n) = n {
            n.notify_waiters();
        }
    }

    /// The queue a `QueueUrl` names in `region`.
    ///
    /// Errors: `QueueDoesNotExist` (400).
    pub fn queue_by_url(&self, region: &str, url: &str) -> AwsResult<Arc<Queue>> {
        let (account, name) = queue::parse_url(url).ok_or_else(queue_missing)?;
        if account != self.account {
            return Err(queue_missing());
        }
        self.cached(region, name).ok_or_else(queue_missing)
    }

    /// The queue an ARN names.
    ///
    /// Errors: `QueueDoesNotExist` (400).
    pub fn queue_by_arn(&self, arn: &str) -> AwsResult<Arc<Queue>> {
        let (region, account, name) = queue::parse_arn(arn).ok_or_else(queue_missing)?;
        if account != self.account {
            return Err(queue_missing());
        }
        self.cached(region, name).ok_or_else(queue_missing)
    }

    fn queue_of(&self, region: &str, i: &Input<'_>) -> AwsResult<Arc<Queue>> {
        self.queue_by_url(region, i.req("QueueUrl")?)
    }

    /// Answers one operation.
    pub async fn dispatch(
        &self,
        region: &str,
        op: &str,
        input: &Map<String, Value>,
    ) -> AwsResult<Value> {
        let i = Input(input);
        match op {
            "CreateQueue" => self.create_queue(region, &i).await,
            "DeleteQueue" => self.delete_queue(region, &i).await,
            "GetQueueUrl" => {
                let name = i.req("QueueName")?;
                if let Some(owner) = i.str("QueueOwnerAWSAccountId")?
                    && owner != self.account
                {
                    return Err(queue_missing());
                }
                self.cached(region, name).ok_or_else(queue_missing)?;
                Ok(json!({"QueueUrl": self.queue_url(name)}))
            }
            "ListQueues" => self.list_queues(region, &i),
            "GetQueueAttributes" => self.get_attributes(region, &i),
            "SetQueueAttributes" => self.set_attributes(region, &i).await,
            "PurgeQueue" => self.purge(region, &i).await,
            "SendMessage" => {
                let q = self.queue_of(region, &i)?;
                let m = SendInput::parse(input)?;
                let r = self.send(&q, m).await?;
                Ok(r.to_json(None))
            }
            "SendMessageBatch" => self.send_batch(region, &i).await,
            "ReceiveMessage" => self.receive(region, &i).await,
            "DeleteMessage" => {
                let q = self.queue_of(region, &i)?;
                let handle = i.req("ReceiptHandle")?;
                let (seq, nonce) = decode_receipt(handle, q.id)?;
                let id = q.id;
                self.store
                    .write(move |c| messages::delete(c, id, seq, &nonce))
                    .await
                    .map_err(store)?;
                Ok(json!({}))
            }
            "DeleteMessageBatch" => self.delete_batch(region, &i).await,
            "ChangeMessageVisibility" => {
                let q = self.queue_of(region, &i)?;
                let handle = i.req("ReceiptHandle")?;
                let timeout = i
                    .int("VisibilityTimeout")?
                    .ok_or_else(|| missing_param("VisibilityTimeout"))?;
                let timeout = in_range("VisibilityTimeout", timeout, 0, MAX_VISIBILITY)?;
                let (seq, nonce) = decode_receipt(handle, q.id)?;
                let id = q.id;
                let now = now_ms();
                let ok = self
                    .store
                    .write(move |c| {
                        messages::change_visibility(c, id, seq, &nonce, now, timeout * 1000)
                    })
                    .await
                    .map_err(store)?;
                if !ok {
                    return Err(not_inflight());
                }
                if timeout == 0 {
                    self.wake(id);
                }
                Ok(json!({}))
            }
            "ChangeMessageVisibilityBatch" => self.change_visibility_batch(region, &i).await,
            "TagQueue" => {
                let q = self.queue_of(region, &i)?;
                let tags = i.string_map("Tags")?;
                let mut next = (*q).clone();
                next.tags.extend(tags);
                if next.tags.len() > 50 {
                    return Err(invalid_param(
                        "Too many tags added for queue: a queue can have at most 50 tags.",
                    ));
                }
                self.save(next).await?;
                Ok(json!({}))
            }
            "UntagQueue" => {
                let q = self.queue_of(region, &i)?;
                let keys = i.strings("TagKeys")?;
                let mut next = (*q).clone();
                for k in keys {
                    next.tags.remove(&k);
                }
                self.save(next).await?;
                Ok(json!({}))
            }
            "ListQueueTags" => {
                let q = self.queue_of(region, &i)?;
                if q.tags.is_empty() {
                    Ok(json!({}))
                } else {
                    Ok(json!({"Tags": q.tags}))
                }
            }
            "ListDeadLetterSourceQueues" => {
                let q = self.queue_of(region, &i)?;
                let arn = self.arn(&q);
                let mut urls: Vec<String> = self
                    .queues
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .values()
                    .filter(|s| {
                        s.region == region
                            && s.redrive().is_some_and(|r| r.dead_letter_target_arn == arn)
                    })
                    .map(|s| self.queue_url(&s.name))
                    .collect();
                urls.sort();
                Ok(json!({"queueUrls": urls}))
            }
            "AddPermission"
            | "RemovePermission"
            | "StartMessageMoveTask"
            | "CancelMessageMoveTask"
            | "ListMessageMoveTasks" => {
                Err(unsupported(format!("stratus does not implement {op}.")))
            }
            _ => Err(invalid_action(op)),
        }
    }

    async fn save(&self, mut q: Queue) -> AwsResult<Arc<Queue>> {
        q.modified = now_ms() / 1000;
        let body = serde_json::to_string(&q).map_err(|e| AwsError::service(e.to_string()))?;
        let id = q.id;
        self.store
            .write(move |c| {
                c.execute(
                    "UPDATE sqs_queues SET body = ?2 WHERE id = ?1",
                    params![id, body],
                )
            })
            .await
            .map_err(store)?;
        Ok(self.put_cache(q))
    }

    async fn create_queue(&self, region: &str, i: &Input<'_>) -> AwsResult<Value> {
        let name = i.req("QueueName")?.to_string();
        let given = i.string_map("Attributes")?;
        let tags = i.string_map("tags")?;
        let fifo_attr = given
            .get("FifoQueue")
            .map(|v| v.eq_ignore_ascii_case("true"));
        let fifo = fifo_attr.unwrap_or(false);
        if name.ends_with(".fifo") && !fifo {
            return Err(invalid_param(
                "The name of a FIFO queue must end with .fifo and the queue needs the attribute FifoQueue=true; a standard queue's name cannot end with .fifo.",
            ));
        }
        queue::validate_name(&name, fifo)?;
        let mut attrs_map = queue::defaults(fifo);
        let mut requested = BTreeMap::new();
        for (k, v) in &given {
            match queue::check_attribute(k, v, fifo, true)? {
                Some(v) => {
                    attrs_map.insert(k.clone(), v.clone());
                    requested.insert(k.clone(), Some(v));
                }
                None => {
                    attrs_map.remove(k);
                    requested.insert(k.clone(), None);
                }
            }
        }
        if let Some(r) = attrs_map
            .get("RedrivePolicy")
            .and_then(|p| queue::parse_redrive(p).ok())
        {
            self.queue_by_arn(&r.dead_letter_target_arn).map_err(|_| {
                invalid_attribute_value("RedrivePolicy", "Dead letter target does not exist.")
            })?;
        }
        if tags.len() > 50 {
            return Err(invalid_param("A queue can have at most 50 tags."));
        }
        let now = now_ms() / 1000;
        let q = Queue {
            id: 0,
            region: region.to_string(),
            name: name.clone(),
            fifo,
            attrs: attrs_map,
            tags,
            created: now,
            modified: now,
        };
        let body = serde_json::to_string(&q).map_err(|e| AwsError::service(e.to_string()))?;
        let (region_s, name_s) = (region.to_string(), name.clone());
        let (id, existing): (i64, Option<String>) = self
            .store
            .write(move |c| {
                let prior: Option<(i64, String)> = c
                    .query_row(
                        "SELECT id, body FROM sqs_queues WHERE region = ?1 AND name = ?2",
                        params![region_s, name_s],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                if let Some((id, body)) = prior {
                    return Ok((id, Some(body)));
                }
                c.execute(
                    "INSERT INTO sqs_queues (region, name, body) VALUES (?1, ?2, ?3)",
                    params![region_s, name_s, body],
                )?;
                Ok((c.last_insert_rowid(), None))
            })
            .await
            .map_err(store)?;
        if let Some(body) = existing {
            let prior: Queue =
                serde_json::from_str(&body).map_err(|e| AwsError::service(e.to_string()))?;
            let same = requested
                .iter()
                .all(|(k, v)| prior.attrs.get(k) == v.as_ref());
            if !same {
                return Err(queue_exists(&name));
            }
            return Ok(json!({"QueueUrl": self.queue_url(&name)}));
        }
        let mut q = q;
        q.id = id;
        self.put_cache(q);
        Ok(json!({"QueueUrl": self.queue_url(&name)}))
    }

    async fn delete_queue(&self, region: &str, i: &Input<'_>) -> AwsResult<Value> {
        let q = self.queue_of(region, i)?;
        let id = q.id;
        self.store
            .write(move |c| {
                messages::purge(c, id)?;
                c.execute("DELETE FROM sqs_queues WHERE id = ?1", params![id])
            })
            .await
            .map_err(store)?;
        self.queues
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(q.region.clone(), q.name.clone()));
        self.ids
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        self.wake(id);
        self.notifies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        Ok(json!({}))
    }

    fn list_queues(&self, region: &str, i: &Input<'_>) -> AwsResult<Value> {
        let prefix = i.str("QueueNamePrefix")?.unwrap_or("");
        let max = match i.int("MaxResults")? {
            Some(n) => Some(in_range("MaxResults", n, 1, 1000)? as usize),
            None => None,
        };
        let after = match i.str("NextToken")? {
            Some(t) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(t)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| invalid_param("Invalid or expired next token."))?,
            ),
            None => None,
        };
        let mut names: Vec<String> = self
            .queues
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|q| q.region == region && q.name.starts_with(prefix))
            .map(|q| q.name.clone())
            .collect();
        names.sort();
        if let Some(a) = &after {
            names.retain(|n| n > a);
        }
        let limit = max.unwrap_or(1000);
        let more = max.is_some() && names.len() > limit;
        names.truncate(limit);
        let mut out = Map::new();
        if !names.is_empty() {
            out.insert(
                "QueueUrls".into(),
                Value::from(names.iter().map(|n| self.queue_url(n)).collect::<Vec<_>>()),
            );
        }
        if more && let Some(last) = names.last() {
            out.insert(
                "NextToken".into(),
                Value::from(base64::engine::general_purpose::STANDARD.encode(last)),
            );
        }
        Ok(Value::Object(out))
    }

    /// The attributes of a queue, as `GetQueueAttributes` reports them
    /// (`names` empty = none, `All` = every one).
    ///
    /// Errors: `InvalidAttributeName` for an unknown name.
    pub fn attributes(&self, q: &Queue, names: &[String]) -> AwsResult<BTreeMap<String, String>> {
        let all = names.iter().any(|n| n == "All");
        for n in names {
            if n != "All"
                && !queue::SETTABLE.contains(&n.as_str())
                && !queue::READ_ONLY.contains(&n.as_str())
            {
                return Err(invalid_attribute_name(n));
            }
        }
        let want = |n: &str| all || names.iter().any(|x| x == n);
        let mut out = BTreeMap::new();
        for (k, v) in &q.attrs {
            if want(k) {
                out.insert(k.clone(), v.clone());
            }
        }
        if want("QueueArn") {
            out.insert("QueueArn".into(), self.arn(q));
        }
        if want("CreatedTimestamp") {
            out.insert("CreatedTimestamp".into(), q.created.to_string());
        }
        if want("LastModifiedTimestamp") {
            out.insert("LastModifiedTimestamp".into(), q.modified.to_string());
        }
        let counted = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ];
        if counted.iter().any(|n| want(n)) {
            let id = q.id;
            let now = now_ms();
            let (v, nv, d) = self
                .store
                .read(move |c| messages::counts(c, id, now))
                .map_err(store)?;
            for (n, c) in counted.iter().zip([v, nv, d]) {
                if want(n) {
                    out.insert(n.to_string(), c.to_string());
                }
            }
        }
        Ok(out)
    }

    fn get_attributes(&self, region: &str, i: &Input<'_>) -> AwsResult<Value> {
        let q = self.queue_of(region, i)?;
        let names = i.strings("AttributeNames")?;
        let a = self.attributes(&q, &names)?;
        if a.is_empty() {
            Ok(json!({}))
        } else {
            Ok(json!({"Attributes": a}))
        }
    }

    async fn set_attributes(&self, region: &str, i: &Input<'_>) -> AwsResult<Value> {
        let q = self.queue_of(region, i)?;
        let given = i.string_map("Attributes")?;
        let mut next = (*q).clone();
        for (k, v) in &given {
            match queue::check_attribute(k, v, q.fifo, false)? {
                Some(v) => {
                    next.attrs.insert(k.clone(), v);
                }
                None => {
                    next.attrs.remove(k);
                }
            }
        }
        if let Some(r) = next.redrive() {
            self.queue_by_arn(&r.dead_letter_target_arn).map_err(|_| {
                invalid_attribute_value("RedrivePolicy", "Dead letter target does not exist.")
            })?;
        }
        self.save(next).await?;
        self.wake(q.id);
        Ok(json!({}))
    }

    async fn purge(&self, region: &str, i: &Input<'_>) -> AwsResult<Value> {
        let q = self.queue_of(region, i)?;
        let now = now_ms();
        {
            let mut p = self.purges.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(last) = p.get(&q.id)
                && now - last < 60_000
            {
                return Err(purge_in_progress(&self.queue_url(&q.name)));
            }
            p.insert(q.id, now);
        }
        let id = q.id;
        self.store
            .write(move |c| messages::purge(c, id))
            .await
            .map_err(store)?;
        Ok(json!({}))
    }

    fn prepare(&self, q: &Queue, m: SendInput, now: i64) -> AwsResult<Prepared> {
        if m.body.is_empty() {
            return Err(missing_param("MessageBody"));
        }
        if !valid_body(&m.body) {
            return Err(invalid_contents());
        }
        let size = m.body.len()
            + m.attributes
                .iter()
                .map(|(n, a)| attrs::attribute_size(n, a))
                .sum::<usize>();
        let max = q.max_message_size();
        if size > max {
            return Err(invalid_param(format!(
                "One or more parameters are invalid. Reason: Message must be shorter than {max} bytes."
            )));
        }
        if let Some(d) = m.delay {
            if q.fifo {
                return Err(invalid_param(format!(
                    "Value {d} for parameter DelaySeconds is invalid. Reason: The request include parameter that is not valid for this queue type."
                )));
            }
            in_range("DelaySeconds", d, 0, 900)?;
        }
        // FIFO: the deduplication id (given, or the body's SHA-256) and its
        // key in the deduplication table (per group when so scoped).
        let mut dedup_key = None;
        let mut dedup_id = None;
        if q.fifo {
            let group = m
                .group_id
                .as_deref()
                .ok_or_else(|| missing_param("MessageGroupId"))?;
            if !valid_token(group) {
                return Err(invalid_param(format!(
                    "Value {group} for parameter MessageGroupId is invalid. Reason: It can contain only 1 to 128 alphanumeric and punctuation characters."
                )));
            }
            let dedup = match &m.dedup_id {
                Some(d) => {
                    if !valid_token(d) {
                        return Err(invalid_param(format!(
                            "Value {d} for parameter MessageDeduplicationId is invalid. Reason: It can contain only 1 to 128 alphanumeric and punctuation characters."
                        )));
                    }
                    d.clone()
                }
                None if q.content_dedup() => {
                    let h = Sha256::digest(m.body.as_bytes());
                    h.iter().map(|b| format!("{b:02x}")).collect()
                }
                None => {
                    return Err(invalid_param(
                        "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
                    ));
                }
            };
            dedup_key = Some(if q.dedup_per_group() {
                format!("{group}\u{0}{dedup}")
            } else {
                dedup.clone()
            });
            dedup_id = Some(dedup);
        } else {
            if m.dedup_id.is_some() {
                return Err(invalid_param(
                    "The request include parameter MessageDeduplicationId that is not valid for this queue type",
                ));
            }
            if let Some(g) = &m.group_id
                && !valid_token(g)
            {
                return Err(invalid_param(format!(
                    "Value {g} for parameter MessageGroupId is invalid. Reason: It can contain only 1 to 128 alphanumeric and punctuation characters."
                )));
            }
        }
        let delay = m.delay.unwrap_or_else(|| q.delay_seconds());
        let md5_attrs = attrs::md5_of_attributes(&m.attributes);
        let md5_sys = attrs::md5_of_attributes(&m.system_attributes);
        let new = NewMessage {
            message_id: uuid::Uuid::new_v4().to_string(),
            md5_body: attrs::md5_hex(m.body.as_bytes()),
            body: m.body,
            attrs: (!m.attributes.is_empty()).then(|| attrs::to_json(&m.attributes).to_string()),
            sys_attrs: (!m.system_attributes.is_empty())
                .then(|| attrs::to_json(&m.system_attributes).to_string()),
            sent_ms: now,
            visible_at: now + delay * 1000,
            group_id: m.group_id,
            dedup_id,
            dedup_key,
            sender_id: self.account.clone(),
        };
        Ok(Prepared {
            new,
            md5_attrs,
            md5_sys,
        })
    }

    fn result_of(q: &Queue, p: &Prepared, ins: &messages::Inserted) -> SendResult {
        SendResult {
            message_id: ins.message_id.clone(),
            md5_body: p.new.md5_body.clone(),
            md5_attrs: p.md5_attrs.clone(),
            md5_sys: p.md5_sys.clone(),
            sequence_number: q.fifo.then(|| sequence_number(ins.seq)),
        }
    }

    /// Sends one message to `q`; answers once it is committed.
    ///
    /// Errors: `InvalidParameterValue`, `MissingParameter`,
    /// `InvalidMessageContents` (400) for a message SQS refuses.
    pub async fn send(&self, q: &Arc<Queue>, m: SendInput) -> AwsResult<SendResult> {
        let p = self.prepare(q, m, now_ms())?;
        let id = q.id;
        let new = p.new.clone();
        let ins = self
            .store
            .write(move |c| messages::insert(c, id, &new))
            .await
            .map_err(store)?;
        self.wake(id);
        Ok(Self::result_of(q, &p, &ins))
    }

    async fn send_batch(&self, region: &str, i: &Input<'_>) -> AwsResult<Value> {
        let q = self.queue_of(region, i)?;
        let entries = check_entries(i.0.get("Entries"), "SendMessageBatchRequestEntry")?;
        let total: usize = entries
            .iter()
            .map(|(_, m)| {
                m.get("MessageBody")
                    .and_then(Value::as_str)
                    .map_or(0, str::len)
                    + attrs::from_json(m.get("MessageAttributes"))
                        .map(|a| a.iter().map(|(n, v)| attrs::attribute_size(n, v)).sum())
                        .unwrap_or(0)
            })
            .sum();
        if total > queue::MAX_MESSAGE_BYTES {
            return Err(batch_too_long(total));
        }
        let now = now_ms();
        let mut failed = Vec::new();
        let mut ok: Vec<(String, Prepared)> = Vec::new();
        for (id, m) in entries {
            match SendInput::parse(m).and_then(|s| self.prepare(&q, s, now)) {
                Ok(p) => ok.push((id.to_string(), p)),
                Err(e) => failed.push(failure(id, &e)),
            }
        }
        let news: Vec<NewMessage> = ok.iter().map(|(_, p)| p.new.clone()).collect();
        let qid = q.id;
        let inserted = if news.is_empty() {
            Vec::new()
        } else {
            self.store
                .write(move |c| {
                    news.iter()
                        .map(|m| messages::insert(c, qid, m))
                        .collect::<Result<Vec<_>, _>>()
                })
                .await
                .map_err(store)?
        };
        if !inserted.is_empty() {
            self.wake(qid);
        }
        let successful: Vec<Value> = ok
            .iter()
            .zip(&inserted)
            .map(|((id, p), ins)| Self::result_of(&q, p, ins).to_json(Some(id)))
            .collect();
        Ok(json!({"Successful": successful, "Failed": failed}))
    }

    fn receive_spec(&self, q: &Queue, max: usize, visibility_s: i64) -> ReceiveSpec {
        let redrive = q.redrive().and_then(|r| {
            let dlq = self.queue_by_arn(&r.dead_letter_target_arn).ok()?;
            Some(RedriveTarget {
                dlq_id: dlq.id,
                dlq_fifo: dlq.fifo,
                max_receive_count: r.max_receive_count,
                source_arn: self.arn(q),
            })
        });
        ReceiveSpec {
            queue_id: q.id,
            fifo: q.fifo,
            max,
            visibility_ms: visibility_s * 1000,
            retention_ms: q.retention_seconds() * 1000,
            redrive,
            now: now_ms(),
        }
    }

    /// Receives up to `max` messages from the queue `queue_id`, waiting up
    /// to `wait_s` seconds for one to arrive (long polling: a send wakes
    /// the wait at once). `visibility_s` defaults to the queue's.
    /// Returns the messages and the queue as it was at the receive.
    ///
    /// Errors: `QueueDoesNotExist` when the queue is gone.
    pub async fn receive_messages(
        &self,
        queue_id: i64,
        max: usize,
        visibility_s: Option<i64>,
        wait_s: i64,
    ) -> AwsResult<(Arc<Queue>, Vec<Received>)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(wait_s.max(0) as u64);
        let notify = self.notify(queue_id);
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let q = self.by_id(queue_id).ok_or_else(queue_missing)?;
            let spec = self.receive_spec(
                &q,
                max,
                visibility_s.unwrap_or_else(|| q.visibility_timeout()),
            );
            let now = spec.now;
            let dlq = spec.redrive.as_ref().map(|r| r.dlq_id);
            let out = self
                .store
                .write(move |c| messages::receive(c, &spec))
                .await
                .map_err(store)?;
            if out.moved > 0
                && let Some(d) = dlq
            {
                self.wake(d);
            }
            if !out.messages.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok((q, out.messages));
            }
            let mut wake = deadline;
            if let Some(next) = out.next_visible {
                let at =
                    tokio::time::Instant::now() + Duration::from_millis((next - now).max(1) as u64);
                wake = wake.min(at);
            }
            let _ = tokio::time::timeout_at(wake, notified).await;
        }
    }

    async fn receive(&self, region: &str, i: &Input<'_>) -> AwsResult<Value> {
        let q = self.queue_of(region, i)?;
        let max = in_range(
            "MaxNumberOfMessages",
            i.int("MaxNumberOfMessages")?.unwrap_or(1),
            1,
            10,
        )? as usize;
        let visibility = match i.int("VisibilityTimeout")? {
            Some(v) => Some(in_range("VisibilityTimeout", v, 0, MAX_VISIBILITY)?),
            None => None,
        };
        let wait = match i.int("WaitTimeSeconds")? {
            Some(v) => in_range("WaitTimeSeconds", v, 0, MAX_WAIT_SECONDS)?,
            None => q.wait_seconds(),
        };
        let mut sys_names = i.strings("AttributeNames")?;
        sys_names.extend(i.strings("MessageSystemAttributeNames")?);
        let attr_names = i.strings("MessageAttributeNames")?;
        let (q, msgs) = self.receive_messages(q.id, max, visibility, wait).await?;
        let list: Vec<Value> = msgs
            .iter()
            .map(|m| self.message_json(&q, m, &sys_names, &attr_names))
            .collect();
        if list.is_empty() {
            Ok(json!({}))
        } else {
            Ok(json!({"Messages": list}))
        }
    }

    /// The system attributes of a received message (`All` or the names
    /// asked for).
    pub fn system_attributes(
        &self,
        q: &Queue,
        m: &Received,
        names: &[String],
    ) -> BTreeMap<String, String> {
        let all = names.iter().any(|n| n == "All");
        let want = |n: &str| all || names.iter().any(|x| x == n);
        let mut a = BTreeMap::new();
        if want("SenderId") {
            a.insert("SenderId".into(), m.sender_id.clone());
        }
        if want("SentTimestamp") {
            a.insert("SentTimestamp".into(), m.sent_ms.to_string());
        }
        if want("ApproximateReceiveCount") {
            a.insert(
                "ApproximateReceiveCount".into(),
                m.receive_count.to_string(),
            );
        }
        if want("ApproximateFirstReceiveTimestamp") {
            a.insert(
                "ApproximateFirstReceiveTimestamp".into(),
                m.first_receive_ms.to_string(),
            );
        }
        if let Some(g) = &m.group_id
            && want("MessageGroupId")
        {
            a.insert("MessageGroupId".into(), g.clone());
        }
        if q.fifo {
            if want("SequenceNumber") {
                a.insert("SequenceNumber".into(), sequence_number(m.seq));
            }
            if let Some(d) = &m.dedup_id
                && want("MessageDeduplicationId")
            {
                a.insert("MessageDeduplicationId".into(), d.clone());
            }
        }
        if let Some(src) = &m.dlq_source
            && want("DeadLetterQueueSourceArn")
        {
            a.insert("DeadLetterQueueSourceArn".into(), src.clone());
        }
        if want("AWSTraceHeader")
            && let Some(sys) = &m.sys_attrs
            && let Ok(v) = serde_json::from_str::<Value>(sys)
            && let Some(t) = v
                .pointer("/AWSTraceHeader/StringValue")
                .and_then(Value::as_str)
        {
            a.insert("AWSTraceHeader".into(), t.to_string());
        }
        a
    }

    /// The message attributes of a received message.
    pub fn message_attributes(m: &Received) -> BTreeMap<String, MessageAttribute> {
        m.attrs
            .as_deref()
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .and_then(|v| attrs::from_json(Some(&v)).ok())
            .unwrap_or_default()
    }

    fn message_json(
        &self,
        q: &Queue,
        m: &Received,
        sys_names: &[String],
        attr_names: &[String],
    ) -> Value {
        let mut o = Map::new();
        o.insert("MessageId".into(), Value::from(m.message_id.clone()));
        o.insert(
            "ReceiptHandle".into(),
            Value::from(encode_receipt(q.id, m.seq, &m.receipt)),
        );
        o.insert("MD5OfBody".into(), Value::from(m.md5_body.clone()));
        o.insert("Body".into(), Value::from(m.body.clone()));
        let sys = self.system_attributes(q, m, sys_names);
        if !sys.is_empty() {
            o.insert("Attributes".into(), json!(sys));
        }
        let mut selected = Self::message_attributes(m);
        selected.retain(|n, _| attrs::selected(attr_names, n));
        if let Some(md5) = attrs::md5_of_attributes(&selected) {
            o.insert("MD5OfMessageAttributes".into(), Value::from(md5));
            o.insert("MessageAttributes".into(), attrs::to_json(&selected));
        }
        Value::Object(o)
    }

    async fn delete_batch(&self, region: &str, i: &Input<'_>) -> AwsResult<Value> {
        let q = self.queue_of(region, i)?;
        let entries = check_entries(i.0.get("Entries"), "DeleteMessageBatchRequestEntry")?;
        let mut failed = Vec::new();
        let mut todo = Vec::new();
        for (id, m) in entries {
            match Input(m)
                .req("ReceiptHandle")
                .and_then(|h| decode_receipt(h, q.id))
            {
                Ok((seq, nonce)) => todo.push((id.to_string(), seq, nonce)),
                Err(e) => failed.push(failure(id, &e)),
            }
        }
        let qid = q.id;
        let ids: Vec<String> = todo.iter().map(|(id, _, _)| id.clone()).collect();
        if !todo.is_empty() {
            self.store
                .write(move |c| {
                    for (_, seq, nonce) in &todo {
                        messages::delete(c, qid, *seq, nonce)?;
                    }
                    Ok(())
                })
                .await
                .map_err(store)?;
        }
        let ok: Vec<Value> = ids.iter().map(|id| json!({"Id": id})).collect();
        Ok(json!({"Successful": ok, "Failed": failed}))
    }

    async fn change_visibility_batch(&self, region: &str, i: &Input<'_>) -> AwsResult<Value> {
        let q = self.queue_of(region, i)?;
        let entries = check_entries(
            i.0.get("Entries"),
            "ChangeMessageVisibilityBatchRequestEntry",
        )?;
        let mut failed = Vec::new();
        let mut todo = Vec::new();
        for (id, m) in entries {
            let e = Input(m);
            let parsed = e.req("ReceiptHandle").and_then(|h| {
                let t = e
                    .int("VisibilityTimeout")?
                    .ok_or_else(|| missing_param("VisibilityTimeout"))?;
                let t = in_range("VisibilityTimeout", t, 0, MAX_VISIBILITY)?;
                let (seq, nonce) = decode_receipt(h, q.id)?;
                Ok((seq, nonce, t))
            });
            match parsed {
                Ok((seq, nonce, t)) => todo.push((id.to_string(), seq, nonce, t)),
                Err(e) => failed.push(failure(id, &e)),
            }
        }
        let qid = q.id;
        let now = now_ms();
        let ids: Vec<String> = todo.iter().map(|t| t.0.clone()).collect();
        let results = if todo.is_empty() {
            Vec::new()
        } else {
            self.store
                .write(move |c| {
                    todo.iter()
                        .map(|(_, seq, nonce, t)| {
                            messages::change_visibility(c, qid, *seq, nonce, now, t * 1000)
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .await
                .map_err(store)?
        };
        let mut ok = Vec::new();
        for (id, done) in ids.iter().zip(results) {
            if done {
                ok.push(json!({"Id": id}));
            } else {
                failed.push(failure(id, &not_inflight()));
            }
        }
        self.wake(qid);
        Ok(json!({"Successful": ok, "Failed": failed}))
    }

    /// Deletes received messages by `(seq, receipt nonce)` (event source
    /// mappings).
    pub async fn delete_received(&self, queue_id: i64, items: Vec<(i64, String)>) -> AwsResult<()> {
        if items.is_empty() {
            return Ok(());
        }
        self.store
            .write(move |c| {
                for (seq, nonce) in &items {
                    messages::delete(c, queue_id, *seq, nonce)?;
                }
                Ok(())
            })
            .await
            .map_err(store)?;
        Ok(())
    }

    /// Deletes messages past their queues' retention periods.
    pub async fn sweep(&self) -> AwsResult<usize> {
        let retention: BTreeMap<i64, i64> = self
            .queues
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|q| (q.id, q.retention_seconds() * 1000))
            .collect();
        let now = now_ms();
        self.store
            .write(move |c| messages::sweep(c, &retention, now))
            .await
            .map_err(store)
    }
}
