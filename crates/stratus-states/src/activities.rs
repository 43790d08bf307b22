//! Activities: Task states whose work is done by a worker outside Step
//! Functions, as the Step Functions Developer Guide ("Learn about
//! Activities in Step Functions") and the botocore model
//! `stepfunctions/2016-11-23` define them.
//!
//! * CreateActivity, DescribeActivity, ListActivities, DeleteActivity, and
//!   TagResource / UntagResource / ListTagsForResource on activity ARNs.
//!   An activity is stored as one JSON document ([`ActivityRecord`]) in the
//!   store's `resources` table (kind [`KIND`], keyed by region and name).
//! * A Task whose `Resource` is an activity ARN
//!   (`arn:aws:states:<region>:<account>:activity:<name>`) offers an
//!   activity task (its effective input and a task token) to the workers
//!   polling GetActivityTask for that activity, oldest first, each task to
//!   one worker. The engine records `ActivityScheduled`; the host records
//!   `ActivityStarted` (with the poll's `workerName`) when a worker takes
//!   the task, before the worker gets its answer. The worker ends the task
//!   with SendTaskSuccess / SendTaskFailure and keeps it alive with
//!   SendTaskHeartbeat: `HeartbeatSeconds` without a heartbeat fail it with
//!   States.HeartbeatTimeout (the clock starts when the task is scheduled
//!   and restarts when a worker takes it and at every heartbeat);
//!   `TimeoutSeconds` (enforced by the engine) with States.Timeout.
//! * Durability: the task's token and its place in the queue (a sequence
//!   number) are in the execution's journal (`token-of:<key>`,
//!   `activity-seq:<key>`). After a restart the execution's replay offers
//!   the task again with the same token and place, so a worker that took
//!   it before the restart can still answer; `ActivityStarted` is recorded
//!   once (`activity-started:<key>`). A stopped execution's engine is
//!   dropped, which withdraws its offers.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use stratus_asl::{Failure, Host, TaskCall};
use stratus_core::{AwsError, AwsResult};
use tokio::sync::{Notify, oneshot};

use crate::machines::{
    MAX_TAGS, Tag, merge_tags, parse_tags, tag_request, too_many_tags, untag_keys,
};
use crate::names::{self, err};
use crate::runner::{ExecHost, TokenWaiter, parse_ok_or_err};
use crate::{States, epoch, opt_str, page_size, page_token, parse_page_token, req_str};

/// Resource kind of activities in the store.
pub const KIND: &str = "states.activity";

/// AWS's quota of registered activities per account and Region: 10,000
/// (Step Functions service quotas, "Maximum number of registered
/// activities").
pub const MAX_ACTIVITIES: usize = 10_000;

/// The most GetActivityTask polls open at once on one activity; one more
/// is refused with `ActivityWorkerLimitExceeded`.
pub const MAX_POLLERS: usize = 1_000;

/// How long GetActivityTask holds a poll before answering without a task:
/// 60 seconds (API reference, GetActivityTask).
pub const POLL_MS: u64 = 60_000;

/// One activity as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ActivityRecord {
    pub activity_arn: String,
    pub name: String,
    pub region: String,
    /// ms since the epoch.
    pub creation_ms: i64,
    /// `[{"key": ..., "value": ...}]`.
    pub tags: Vec<Tag>,
    /// The `encryptionConfiguration` given at creation, as given (stratus
    /// keeps task data in its own store and does not call KMS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_configuration: Option<Value>,
}

/// Whether `resource` is an activity ARN:
/// `arn:<partition>:states:<region>:<12-digit account>:activity:<name>`.
pub fn is_activity_arn(resource: &str) -> bool {
    let parts: Vec<&str> = resource.split(':').collect();
    parts.len() == 7
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "states"
        && !parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5] == "activity"
        && !parts[6].is_empty()
}

/// Checks an `activityArn` parameter: `(region, name)`.
///
/// Errors: `ValidationException` (length 1-256), `InvalidArn` (not a
/// Step Functions ARN, or not an activity's).
pub fn check_activity_arn(arn: &str) -> AwsResult<(String, String)> {
    names::check_len(arn, "activityArn", 1, 256)?;
    let a = names::parse_arn(arn)?;
    if a.resource_type != "activity" {
        return Err(err(
            "InvalidArn",
            format!(
                "Invalid Arn: 'Resource type not valid in this context: {}'",
                a.resource_type
            ),
        ));
    }
    if a.parts.len() != 1 {
        return Err(err(
            "InvalidArn",
            format!("Invalid Arn: 'Unable to parse ARN: {arn}'"),
        ));
    }
    Ok((a.region, a.parts[0].clone()))
}

/// Whether a TagResource / UntagResource / ListTagsForResource request
/// names an activity (its `resourceArn` has the resource type `activity`).
pub(crate) fn tags_an_activity(req: &Map<String, Value>) -> bool {
    req.get("resourceArn")
        .and_then(Value::as_str)
        .and_then(|a| names::parse_arn(a).ok())
        .is_some_and(|a| a.resource_type == "activity")
}

fn activity_missing(arn: &str) -> AwsError {
    err(
        "ActivityDoesNotExist",
        format!("Activity Does Not Exist: '{arn}'"),
    )
}

/// Checks an `encryptionConfiguration` (model shape
/// `EncryptionConfiguration`): `type` AWS_OWNED_KEY or
/// CUSTOMER_MANAGED_KMS_KEY; a customer managed key needs `kmsKeyId`
/// (1-2048 characters); `kmsDataKeyReusePeriodSeconds` 60-900.
///
/// Errors: `InvalidEncryptionConfiguration`, `ValidationException`,
/// `SerializationException` (not an object).
fn check_encryption(v: Option<&Value>) -> AwsResult<Option<Value>> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let Some(o) = v.as_object() else {
        return Err(AwsError::new(
            400,
            "SerializationException",
            "The field 'encryptionConfiguration' must be an object.",
        ));
    };
    let ty = req_str(o, "type").map_err(|_| {
        AwsError::validation_errors(&[
            "Value null at 'encryptionConfiguration.type' failed to satisfy constraint: Member must not be null"
                .to_string(),
        ])
    })?;
    if !matches!(ty, "AWS_OWNED_KEY" | "CUSTOMER_MANAGED_KMS_KEY") {
        return Err(names::validation(
            ty,
            "encryptionConfiguration.type",
            "Member must satisfy enum value set: [CUSTOMER_MANAGED_KMS_KEY, AWS_OWNED_KEY]",
        ));
    }
    let key = opt_str(o, "kmsKeyId")?;
    if let Some(k) = key {
        names::check_len(k, "encryptionConfiguration.kmsKeyId", 1, 2048)?;
    }
    if let Some(p) = o
        .get("kmsDataKeyReusePeriodSeconds")
        .filter(|p| !p.is_null())
    {
        match p.as_i64() {
            Some(n) if (60..=900).contains(&n) => {}
            _ => {
                return Err(err(
                    "InvalidEncryptionConfiguration",
                    "Invalid Encryption Configuration: kmsDataKeyReusePeriodSeconds must be between 60 and 900.",
                ));
            }
        }
    }
    if ty == "CUSTOMER_MANAGED_KMS_KEY" && key.is_none() {
        return Err(err(
            "InvalidEncryptionConfiguration",
            "Invalid Encryption Configuration: kmsKeyId is required when the type is CUSTOMER_MANAGED_KMS_KEY.",
        ));
    }
    if ty == "AWS_OWNED_KEY" && key.is_some() {
        return Err(err(
            "InvalidEncryptionConfiguration",
            "Invalid Encryption Configuration: kmsKeyId can only be given when the type is CUSTOMER_MANAGED_KMS_KEY.",
        ));
    }
    Ok(Some(v.clone()))
}

// --------------------------------------------------------------------------
// the queues of activity tasks
// --------------------------------------------------------------------------

/// What a worker's poll hands to the waiting task: the worker's name (empty
/// when the poll gave none), and `ack`, answered once `ActivityStarted` is
/// stored (dropped when the task went away meanwhile).
pub(crate) struct Taken {
    pub worker: Option<String>,
    pub ack: oneshot::Sender<()>,
}

/// One activity task offered to workers.
struct Offer {
    token: String,
    input: String,
    taken: oneshot::Sender<Taken>,
}

#[derive(Default)]
struct Queue {
    /// Offers by (sequence number, token): the oldest first.
    offers: BTreeMap<(u64, String), Offer>,
    /// GetActivityTask polls open on this activity.
    pollers: usize,
    /// Wakes the open polls when a task is offered.
    notify: Arc<Notify>,
}

/// The activity tasks waiting for a worker, by activity ARN, in memory:
/// each is offered by the execution engine that waits for it, so a task
/// exists exactly as long as its engine waits (a stopped or finished
/// execution withdraws it; a restarted server offers it again when the
/// execution's replay reaches it).
#[derive(Default)]
pub struct ActivityQueues {
    queues: Mutex<HashMap<String, Queue>>,
    last_seq: Mutex<u64>,
    /// The server is shutting down: open polls answer without a task.
    closed: std::sync::atomic::AtomicBool,
}

/// Counts an open poll; the count drops when the poll ends.
pub(crate) struct PollGuard<'a> {
    queues: &'a ActivityQueues,
    activity: String,
}

impl Drop for PollGuard<'_> {
    fn drop(&mut self) {
        let mut qs = self.queues.lock();
        if let Some(q) = qs.get_mut(&self.activity) {
            q.pollers = q.pollers.saturating_sub(1);
            if q.pollers == 0 && q.offers.is_empty() {
                qs.remove(&self.activity);
            }
        }
    }
}

impl ActivityQueues {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Queue>> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new sequence number, above every one this process gave out and
    /// based on the clock (µs since the epoch), so tasks scheduled after a
    /// restart queue behind the ones scheduled before it.
    pub(crate) fn next_seq(&self) -> u64 {
        let mut last = self.last_seq.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        *last = now.max(*last + 1);
        *last
    }

    /// Offers a task of `activity` at place `seq`; wakes the open polls.
    /// The receiver gets the worker that took it.
    pub(crate) fn offer(
        &self,
        activity: &str,
        seq: u64,
        token: &str,
        input: &str,
    ) -> oneshot::Receiver<Taken> {
        let (tx, rx) = oneshot::channel();
        let mut qs = self.lock();
        let q = qs.entry(activity.to_string()).or_default();
        q.offers.insert(
            (seq, token.to_string()),
            Offer {
                token: token.to_string(),
                input: input.to_string(),
                taken: tx,
            },
        );
        q.notify.notify_waiters();
        rx
    }

    /// Withdraws an offer (no-op when a worker took it already).
    pub(crate) fn withdraw(&self, activity: &str, seq: u64, token: &str) {
        let mut qs = self.lock();
        if let Some(q) = qs.get_mut(activity) {
            q.offers.remove(&(seq, token.to_string()));
            if q.pollers == 0 && q.offers.is_empty() {
                qs.remove(activity);
            }
        }
    }

    /// Ends every open poll (they answer without a task) and refuses new
    /// ones the same way: the server is shutting down.
    pub(crate) fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        for q in self.lock().values() {
            q.notify.notify_waiters();
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The number of tasks of `activity` waiting for a worker.
    pub fn waiting(&self, activity: &str) -> usize {
        self.lock().get(activity).map_or(0, |q| q.offers.len())
    }

    /// Opens a poll on `activity`: the guard that counts it and the signal
    /// of new offers. `None` when [`MAX_POLLERS`] polls are open already.
    pub(crate) fn enter_poll(&self, activity: &str) -> Option<(PollGuard<'_>, Arc<Notify>)> {
        let mut qs = self.lock();
        let q = qs.entry(activity.to_string()).or_default();
        if q.pollers >= MAX_POLLERS {
            return None;
        }
        q.pollers += 1;
        let notify = q.notify.clone();
        drop(qs);
        Some((
            PollGuard {
                queues: self,
                activity: activity.to_string(),
            },
            notify,
        ))
    }

    fn pop(&self, activity: &str) -> Option<Offer> {
        let mut qs = self.lock();
        let q = qs.get_mut(activity)?;
        let (_, offer) = q.offers.pop_first()?;
        Some(offer)
    }

    /// Hands the oldest waiting task of `activity` to `worker`: `(task
    /// token, input)` once the task has recorded that it started; `None`
    /// when no task waits. A task whose execution went away meanwhile is
    /// skipped.
    pub(crate) async fn take(
        &self,
        activity: &str,
        worker: Option<&str>,
    ) -> Option<(String, String)> {
        loop {
            let offer = self.pop(activity)?;
            let (ack, acked) = oneshot::channel();
            let taken = Taken {
                worker: worker.map(str::to_string),
                ack,
            };
            if offer.taken.send(taken).is_err() {
                continue;
            }
            if acked.await.is_ok() {
                return Some((offer.token, offer.input));
            }
        }
    }
}

// --------------------------------------------------------------------------
// operations
// --------------------------------------------------------------------------

impl States {
    fn load_activity(&self, arn: &str) -> AwsResult<ActivityRecord> {
        let (region, name) = check_activity_arn(arn)?;
        let a = names::parse_arn(arn)?;
        if a.account != self.account {
            return Err(activity_missing(arn));
        }
        let body = self
            .store
            .get(KIND, &region, &name)?
            .ok_or_else(|| activity_missing(arn))?;
        serde_json::from_str(&body)
            .map_err(|e| AwsError::service(format!("stored activity {arn} is unreadable: {e}")))
    }

    fn save_activity(&self, a: &ActivityRecord) -> AwsResult<()> {
        let body = serde_json::to_string(a).map_err(|e| AwsError::service(e.to_string()))?;
        self.store.put(KIND, &a.region, &a.name, &body)?;
        Ok(())
    }

    /// Whether the activity `arn` exists.
    pub(crate) fn activity_exists(&self, arn: &str) -> bool {
        self.load_activity(arn).is_ok()
    }

    /// CreateActivity: `{"activityArn", "creationDate"}`. Idempotent by
    /// name, as the API reference documents: creating an existing name
    /// answers with the existing activity and ignores different `tags`; a
    /// different `encryptionConfiguration` is `ActivityAlreadyExists`.
    ///
    /// Errors: `InvalidName`, `TooManyTags`, `InvalidEncryptionConfiguration`,
    /// `ActivityAlreadyExists`, `ActivityLimitExceeded` (more than
    /// [`MAX_ACTIVITIES`] in the Region), `ValidationException`.
    pub(crate) async fn create_activity(
        &self,
        region: &str,
        req: &Map<String, Value>,
    ) -> AwsResult<Value> {
        let name = req_str(req, "name")?;
        names::check_name(name)?;
        let tags = parse_tags(req.get("tags"))?;
        let encryption = check_encryption(req.get("encryptionConfiguration"))?;
        let arn = format!("arn:aws:states:{region}:{}:activity:{name}", self.account);
        let mut deduped = Vec::new();
        merge_tags(&mut deduped, tags);
        if deduped.len() > MAX_TAGS {
            return Err(too_many_tags(&arn));
        }
        if let Some(body) = self.store.get(KIND, region, name)? {
            return self.existing_activity(&arn, &body, &encryption);
        }
        if self.store.list(KIND, region)?.len() >= MAX_ACTIVITIES {
            return Err(err(
                "ActivityLimitExceeded",
                format!(
                    "Activity Limit Exceeded: a Region can have at most {MAX_ACTIVITIES} activities."
                ),
            ));
        }
        let now = stratus_core::time::now_ms();
        let rec = ActivityRecord {
            activity_arn: arn.clone(),
            name: name.to_string(),
            region: region.to_string(),
            creation_ms: now,
            tags: deduped,
            encryption_configuration: encryption.clone(),
        };
        let body = serde_json::to_string(&rec).map_err(|e| AwsError::service(e.to_string()))?;
        if !self.store.insert_new(KIND, region, name, &body)? {
            // Created by a concurrent request meanwhile.
            let body = self
                .store
                .get(KIND, region, name)?
                .ok_or_else(|| activity_missing(&arn))?;
            return self.existing_activity(&arn, &body, &encryption);
        }
        Ok(json!({"activityArn": arn, "creationDate": epoch(now)}))
    }

    fn existing_activity(
        &self,
        arn: &str,
        body: &str,
        encryption: &Option<Value>,
    ) -> AwsResult<Value> {
        let existing: ActivityRecord = serde_json::from_str(body)
            .map_err(|e| AwsError::service(format!("stored activity {arn} is unreadable: {e}")))?;
        if &existing.encryption_configuration != encryption {
            return Err(err(
                "ActivityAlreadyExists",
                format!(
                    "Activity already exists: '{arn}' (its encryptionConfiguration may not be updated)"
                ),
            ));
        }
        Ok(json!({
            "activityArn": existing.activity_arn,
            "creationDate": epoch(existing.creation_ms),
        }))
    }

    /// DescribeActivity: `{"activityArn", "name", "creationDate",
    /// "encryptionConfiguration"?}`.
    ///
    /// Errors: `InvalidArn`, `ActivityDoesNotExist`, `ValidationException`.
    pub(crate) fn describe_activity(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let a = self.load_activity(req_str(req, "activityArn")?)?;
        let mut out = json!({
            "activityArn": a.activity_arn,
            "name": a.name,
            "creationDate": epoch(a.creation_ms),
        });
        if let Some(e) = a.encryption_configuration {
            out["encryptionConfiguration"] = e;
        }
        Ok(out)
    }

    /// ListActivities of the request's Region, by name, in pages
    /// (`maxResults` 1-1000, default 100; `nextToken`).
    ///
    /// Errors: `InvalidToken`, `ValidationException`.
    pub(crate) fn list_activities(
        &self,
        region: &str,
        req: &Map<String, Value>,
    ) -> AwsResult<Value> {
        let token = opt_str(req, "nextToken")?;
        if let Some(t) = token {
            names::check_len(t, "nextToken", 1, 1024)?;
        }
        let start = parse_page_token(token)?;
        let size = page_size(req)?;
        let all = self.store.list(KIND, region)?;
        let mut items = Vec::new();
        for (_, body) in all.iter().skip(start).take(size) {
            if let Ok(a) = serde_json::from_str::<ActivityRecord>(body) {
                items.push(json!({
                    "activityArn": a.activity_arn,
                    "name": a.name,
                    "creationDate": epoch(a.creation_ms),
                }));
            }
        }
        let mut out = json!({"activities": items});
        if start + size < all.len() {
            out["nextToken"] = Value::from(page_token(start + size));
        }
        Ok(out)
    }

    /// DeleteActivity. Deleting an activity that does not exist succeeds
    /// (the model lists only `InvalidArn`). Polls already open keep
    /// receiving the tasks scheduled before the delete; new polls answer
    /// `ActivityDoesNotExist`.
    ///
    /// Errors: `InvalidArn`, `ValidationException`.
    pub(crate) async fn delete_activity(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let arn = req_str(req, "activityArn")?;
        let (region, name) = check_activity_arn(arn)?;
        let a = names::parse_arn(arn)?;
        if a.account == self.account {
            self.store.delete(KIND, &region, &name)?;
        }
        Ok(json!({}))
    }

    /// GetActivityTask: the oldest task waiting for a worker of the
    /// activity, `{"taskToken", "input"}`; the poll is held up to
    /// [`POLL_MS`] and answers `{}` (no `taskToken`) when no task came.
    /// `workerName` (1-80 characters) goes into the task's
    /// `ActivityStarted` event.
    ///
    /// Errors: `InvalidArn`, `ActivityDoesNotExist`,
    /// `ActivityWorkerLimitExceeded` ([`MAX_POLLERS`] polls open),
    /// `ValidationException`.
    pub(crate) async fn get_activity_task(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let arn = req_str(req, "activityArn")?;
        let worker = opt_str(req, "workerName")?;
        if let Some(w) = worker {
            names::check_len(w, "workerName", 1, names::MAX_NAME)?;
        }
        self.load_activity(arn)?;
        self.poll_activity(arn, worker, Duration::from_millis(POLL_MS))
            .await
    }

    async fn poll_activity(
        &self,
        arn: &str,
        worker: Option<&str>,
        hold: Duration,
    ) -> AwsResult<Value> {
        let Some((_guard, notify)) = self.activity_queues.enter_poll(arn) else {
            return Err(err(
                "ActivityWorkerLimitExceeded",
                format!(
                    "Activity Worker Limit Exceeded: at most {MAX_POLLERS} GetActivityTask polls may be open on '{arn}'."
                ),
            ));
        };
        let deadline = tokio::time::Instant::now() + hold;
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.activity_queues.is_closed() {
                return Ok(json!({}));
            }
            if let Some((token, input)) = self.activity_queues.take(arn, worker).await {
                return Ok(json!({"taskToken": token, "input": input}));
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(json!({}));
            }
        }
    }

    fn tagged_activity(&self, arn: &str) -> AwsResult<ActivityRecord> {
        self.load_activity(arn).map_err(|e| {
            if e.code == "ActivityDoesNotExist" {
                err("ResourceNotFound", format!("Resource not found: '{arn}'"))
                    .with_field("resourceName", arn)
            } else {
                e
            }
        })
    }

    /// TagResource on an activity: adds or replaces tags.
    ///
    /// Errors: `InvalidArn`, `ResourceNotFound`, `TooManyTags`.
    pub(crate) async fn tag_activity(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let arn = req_str(req, "resourceArn")?;
        let mut a = self.tagged_activity(arn)?;
        tag_request(req, arn, &mut a.tags)?;
        self.save_activity(&a)?;
        Ok(json!({}))
    }

    /// UntagResource on an activity: removes tags by key (absent keys are
    /// ignored).
    ///
    /// Errors: `InvalidArn`, `ResourceNotFound`, `ValidationException`.
    pub(crate) async fn untag_activity(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let arn = req_str(req, "resourceArn")?;
        let keys = untag_keys(req)?;
        let mut a = self.tagged_activity(arn)?;
        a.tags.retain(|t| !keys.contains(&t.key));
        self.save_activity(&a)?;
        Ok(json!({}))
    }

    /// ListTagsForResource on an activity: `{"tags": [...]}`.
    ///
    /// Errors: `InvalidArn`, `ResourceNotFound`.
    pub(crate) fn list_activity_tags(&self, req: &Map<String, Value>) -> AwsResult<Value> {
        let arn = req_str(req, "resourceArn")?;
        let a = self.tagged_activity(arn)?;
        Ok(json!({"tags": a.tags}))
    }
}

// --------------------------------------------------------------------------
// the task side: an execution waiting for its activity task
// --------------------------------------------------------------------------

/// Withdraws an offer and the task's SendTask* waiter when the task ends
/// or its engine goes away; marks the task closed in the journal when the
/// engine dropped it before it ended (its TimeoutSeconds passed), so a late
/// SendTask* answers TaskTimedOut.
struct TaskGuard<'a> {
    host: &'a ExecHost,
    activity: String,
    seq: u64,
    token: String,
    closed_key: String,
    ended: bool,
}

impl Drop for TaskGuard<'_> {
    fn drop(&mut self) {
        let states = &self.host.states;
        states
            .activity_queues
            .withdraw(&self.activity, self.seq, &self.token);
        states
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.token);
        if !self.ended {
            self.host
                .journal_put(std::mem::take(&mut self.closed_key), "true".into());
        }
    }
}

impl ExecHost {
    /// Runs a Task state whose resource is the activity `activity`: offers
    /// the task to the activity's workers and waits for SendTaskSuccess /
    /// SendTaskFailure (see the module documentation). `scheduled` is the
    /// id of the task's ActivityScheduled event (ActivityStarted's
    /// previous event).
    ///
    /// Failures: `States.Runtime` when the activity does not exist when the
    /// task is scheduled; `States.HeartbeatTimeout`; the worker's error.
    pub(crate) async fn run_activity_task(
        &self,
        call: &TaskCall,
        activity: &str,
        scheduled: Option<u64>,
    ) -> Result<Value, Failure> {
        // Closing and ActivityStarted belong to one run of the execution: a
        // redrive runs a task its earlier run left open (stopped, timed
        // out) as a new task, with a new token and its own ActivityStarted.
        let run = match self.generation() {
            0 => String::new(),
            g => format!("@{g}"),
        };
        let closed_key = format!("activity-closed:{}{run}", call.key);
        if self.journal_get(&closed_key).is_some() {
            // Ended by its timeout before a restart: the engine's replayed
            // timer ends it again.
            return std::future::pending().await;
        }
        let seq_key = format!("activity-seq:{}", call.key);
        let seq = match self
            .journal_get(&seq_key)
            .and_then(|s| s.parse::<u64>().ok())
        {
            Some(s) => s,
            None => {
                if !self.states.activity_exists(activity) {
                    return Err(Failure {
                        error: "States.Runtime".into(),
                        cause: format!("Activity Does Not Exist: '{activity}'"),
                    });
                }
                let s = self.states.activity_queues.next_seq();
                self.journal_put(seq_key, s.to_string());
                s
            }
        };
        let token = self.task_token(&call.key);
        let waiter = Arc::new(TokenWaiter {
            notify: Notify::new(),
            beat: Mutex::new(std::time::Instant::now()),
        });
        self.states
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.clone(), waiter.clone());
        let mut guard = TaskGuard {
            host: self,
            activity: activity.to_string(),
            seq,
            token: token.clone(),
            closed_key,
            ended: false,
        };
        // The token and place are durable before any worker sees them.
        self.flush().await;
        let input = call.input.to_string();
        let queues = &self.states.activity_queues;
        let mut taken = Some(queues.offer(activity, seq, &token, &input));
        let started_key = format!("activity-started:{}{run}", call.key);
        // A worker's poll that took the task, to be answered.
        let mut took: Option<Taken> = None;
        loop {
            let notified = waiter.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if took.is_none()
                && let Some(rx) = taken.as_mut()
            {
                match rx.try_recv() {
                    Ok(t) => took = Some(t),
                    Err(oneshot::error::TryRecvError::Empty) => {}
                    Err(oneshot::error::TryRecvError::Closed) => taken = None,
                }
            }
            if let Some(t) = took.take() {
                taken = self
                    .activity_started(t, &started_key, scheduled, &waiter)
                    .await
                    .then(|| queues.offer(activity, seq, &token, &input));
            }
            if let Some(outcome) = self.states.callback_outcome(&self.arn, &token)
                && let Some(r) = parse_ok_or_err(&outcome)
            {
                guard.ended = true;
                return r;
            }
            let beat_deadline = match call.heartbeat_seconds {
                Some(hb) if hb > 0 => {
                    let last = *waiter.beat.lock().unwrap_or_else(|p| p.into_inner());
                    let deadline = last + Duration::from_secs(hb);
                    if std::time::Instant::now() >= deadline {
                        guard.ended = true;
                        return Err(Failure {
                            error: "States.HeartbeatTimeout".into(),
                            cause: format!(
                                "No heartbeat was received within HeartbeatSeconds ({hb} s)."
                            ),
                        });
                    }
                    Some(tokio::time::Instant::from_std(deadline))
                }
                _ => None,
            };
            let beat = async {
                match beat_deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let take = async {
                match taken.as_mut() {
                    Some(rx) => rx.await.ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                t = take => match t {
                    Some(t) => took = Some(t),
                    None => taken = None,
                },
                _ = &mut notified => {}
                _ = beat => {}
            }
        }
    }

    /// A worker took the task: records ActivityStarted (once per task, also
    /// across restarts), restarts the heartbeat clock, and lets the worker's
    /// poll answer. Returns true when the poll went away before it could
    /// answer, so the task is offered again.
    async fn activity_started(
        &self,
        t: Taken,
        started_key: &str,
        scheduled: Option<u64>,
        waiter: &TokenWaiter,
    ) -> bool {
        if self.journal_get(started_key).is_none() {
            let details = match &t.worker {
                Some(w) => json!({"workerName": w}),
                None => json!({}),
            };
            self.record("ActivityStarted", scheduled.unwrap_or(0), details);
            self.journal_put(
                started_key.to_string(),
                t.worker.clone().unwrap_or_default(),
            );
            self.flush().await;
        }
        *waiter.beat.lock().unwrap_or_else(|p| p.into_inner()) = std::time::Instant::now();
        t.ack.send(()).is_err()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{call, service, until};

    const ARN: &str = "arn:aws:states:us-east-1:123456789012:activity:work";

    /// Answers every offer of `rx` as a task side would.
    fn ack_all(mut rx: oneshot::Receiver<Taken>) -> tokio::task::JoinHandle<Option<String>> {
        tokio::spawn(async move {
            let t = (&mut rx).await.ok()?;
            let _ = t.ack.send(());
            t.worker
        })
    }

    #[tokio::test]
    async fn tasks_go_out_oldest_first_whatever_the_offer_order() {
        let q = ActivityQueues::default();
        let _c = ack_all(q.offer(ARN, 30, "c", "3"));
        let _a = ack_all(q.offer(ARN, 10, "a", "1"));
        let _b = ack_all(q.offer(ARN, 20, "b", "2"));
        assert_eq!(q.waiting(ARN), 3);
        let mut got = Vec::new();
        while let Some((token, input)) = q.take(ARN, Some("w")).await {
            got.push((token, input));
        }
        assert_eq!(
            got,
            vec![
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "2".to_string()),
                ("c".to_string(), "3".to_string())
            ]
        );
        assert_eq!(q.waiting(ARN), 0);
        assert!(q.take(ARN, None).await.is_none());
    }

    #[tokio::test]
    async fn a_task_goes_to_one_worker_and_carries_its_name() {
        let q = Arc::new(ActivityQueues::default());
        let side = ack_all(q.offer(ARN, 1, "only", "{}"));
        let (q1, q2) = (q.clone(), q.clone());
        let w1 = tokio::spawn(async move { q1.take(ARN, Some("w1")).await });
        let w2 = tokio::spawn(async move { q2.take(ARN, Some("w2")).await });
        let r1 = w1.await.expect("join");
        let r2 = w2.await.expect("join");
        assert_eq!(
            [r1.is_some(), r2.is_some()].iter().filter(|x| **x).count(),
            1,
            "exactly one worker gets the task"
        );
        let winner = if r1.is_some() { "w1" } else { "w2" };
        assert_eq!(side.await.expect("join").as_deref(), Some(winner));
    }

    #[tokio::test]
    async fn withdrawn_and_abandoned_tasks_are_skipped() {
        let q = ActivityQueues::default();
        let gone = q.offer(ARN, 1, "gone", "{}");
        drop(gone); // its execution went away without withdrawing
        let _w = q.offer(ARN, 2, "withdrawn", "{}");
        q.withdraw(ARN, 2, "withdrawn");
        // Taken but never acknowledged (the task ended meanwhile).
        let unacked = q.offer(ARN, 3, "unacked", "{}");
        let dropper = tokio::spawn(async move {
            let t = unacked.await.ok();
            drop(t);
        });
        let _live = ack_all(q.offer(ARN, 4, "live", "{\"n\":1}"));
        let got = q.take(ARN, None).await;
        dropper.await.expect("join");
        assert_eq!(got, Some(("live".to_string(), "{\"n\":1}".to_string())));
        assert_eq!(q.waiting(ARN), 0);
    }

    #[test]
    fn polls_are_limited_per_activity() {
        let q = ActivityQueues::default();
        let mut guards = Vec::new();
        for _ in 0..MAX_POLLERS {
            guards.push(q.enter_poll(ARN).expect("below the limit"));
        }
        assert!(q.enter_poll(ARN).is_none());
        assert!(
            q.enter_poll("arn:aws:states:us-east-1:123456789012:activity:other")
                .is_some()
        );
        guards.pop();
        assert!(q.enter_poll(ARN).is_some());
        drop(guards);
        assert!(q.lock().get(ARN).is_none(), "an idle queue is forgotten");
    }

    #[test]
    fn sequence_numbers_increase() {
        let q = ActivityQueues::default();
        let a = q.next_seq();
        let b = q.next_seq();
        assert!(b > a);
    }

    #[test]
    fn activity_arns_are_recognised() {
        assert!(is_activity_arn(ARN));
        assert!(is_activity_arn(
            "arn:aws-cn:states:cn-north-1:123456789012:activity:x"
        ));
        for bad in [
            "arn:aws:states:us-east-1:123456789012:activity:",
            "arn:aws:states:us-east-1:123456789012:stateMachine:x",
            "arn:aws:states:us-east-1:1234:activity:x",
            "arn:aws:states:::activity:x",
            "arn:aws:states:us-east-1:123456789012:activity:x:y",
        ] {
            assert!(!is_activity_arn(bad), "{bad}");
        }
        assert_eq!(
            check_activity_arn("arn:aws:states:us-east-1:123456789012:stateMachine:x")
                .unwrap_err()
                .code,
            "InvalidArn"
        );
        assert_eq!(check_activity_arn("junk").unwrap_err().code, "InvalidArn");
    }

    #[test]
    fn encryption_configurations_are_checked() {
        assert_eq!(check_encryption(None).unwrap(), None);
        assert!(
            check_encryption(Some(&json!({"type": "AWS_OWNED_KEY"})))
                .unwrap()
                .is_some()
        );
        assert_eq!(
            check_encryption(Some(&json!({"type": "CUSTOMER_MANAGED_KMS_KEY"})))
                .unwrap_err()
                .code,
            "InvalidEncryptionConfiguration"
        );
        assert_eq!(
            check_encryption(Some(&json!({"type": "CUSTOMER_MANAGED_KMS_KEY",
                "kmsKeyId": "k", "kmsDataKeyReusePeriodSeconds": 30})))
            .unwrap_err()
            .code,
            "InvalidEncryptionConfiguration"
        );
        assert_eq!(
            check_encryption(Some(&json!({"type": "NONE"})))
                .unwrap_err()
                .code,
            "ValidationException"
        );
    }

    #[tokio::test]
    async fn an_empty_poll_answers_after_the_hold() {
        let (_dir, states) = service();
        let t0 = std::time::Instant::now();
        let r = states
            .poll_activity(ARN, None, Duration::from_millis(300))
            .await
            .expect("poll");
        assert_eq!(r, json!({}));
        assert!(t0.elapsed() >= Duration::from_millis(300));
        assert!(states.activity_queues.lock().get(ARN).is_none());
    }

    #[tokio::test]
    async fn shutting_down_ends_open_polls() {
        let (_dir, states) = service();
        let s2 = states.clone();
        let poll =
            tokio::spawn(async move { s2.poll_activity(ARN, None, Duration::from_secs(60)).await });
        until(
            || {
                states
                    .activity_queues
                    .lock()
                    .get(ARN)
                    .is_some_and(|q| q.pollers == 1)
            },
            5_000,
            "the poll to open",
        )
        .await;
        let t0 = std::time::Instant::now();
        states.shutdown();
        let r = poll.await.expect("join").expect("poll");
        assert_eq!(r, json!({}));
        assert!(t0.elapsed() < Duration::from_secs(5));
    }

    fn status(states: &States, arn: &str) -> String {
        states
            .load_full_row(arn)
            .ok()
            .flatten()
            .map(|r| r.status)
            .unwrap_or_default()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_worker_runs_the_task_and_a_replay_offers_it_again() {
        let (_dir, states) = service();
        let act = call(&states, "CreateActivity", json!({"name": "work"})).await;
        let act_arn = act["activityArn"].as_str().unwrap_or_default().to_string();
        assert_eq!(act_arn, ARN);
        let sm = call(
            &states,
            "CreateStateMachine",
            json!({"name": "m", "roleArn": "arn:aws:iam::123456789012:role/r",
                   "definition": json!({"StartAt": "A", "States": {"A": {
                       "Type": "Task", "Resource": ARN, "End": true}}}).to_string()}),
        )
        .await;
        let ex = call(
            &states,
            "StartExecution",
            json!({"stateMachineArn": sm["stateMachineArn"], "input": "{\"n\": 7}"}),
        )
        .await;
        let ex_arn = ex["executionArn"].as_str().unwrap_or_default().to_string();
        let got = call(
            &states,
            "GetActivityTask",
            json!({"activityArn": ARN, "workerName": "w1"}),
        )
        .await;
        assert_eq!(got["input"], "{\"n\":7}");
        let token = got["taskToken"].as_str().unwrap_or_default().to_string();
        // A crash: the engine goes away; the replay offers the same task.
        let engines: Vec<_> = states
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for (_, h) in engines {
            h.task.abort();
            let _ = h.task.await;
        }
        assert_eq!(states.activity_queues.waiting(ARN), 0);
        states.resume(&ex_arn);
        until(
            || states.activity_queues.waiting(ARN) == 1,
            5_000,
            "the task offered again",
        )
        .await;
        let again = call(
            &states,
            "GetActivityTask",
            json!({"activityArn": ARN, "workerName": "w2"}),
        )
        .await;
        assert_eq!(again["taskToken"], token.as_str());
        call(
            &states,
            "SendTaskSuccess",
            json!({"taskToken": token, "output": "{\"done\": true}"}),
        )
        .await;
        until(
            || status(&states, &ex_arn) == "SUCCEEDED",
            5_000,
            "the execution to succeed",
        )
        .await;
        let events = states.load_events(&ex_arn).expect("events");
        let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "ExecutionStarted",
                "TaskStateEntered",
                "ActivityScheduled",
                "ActivityStarted",
                "ActivitySucceeded",
                "TaskStateExited",
                "ExecutionSucceeded"
            ]
        );
        assert_eq!(events[3].details, json!({"workerName": "w1"}));
        assert_eq!(events[3].previous_id, events[2].id);
        let late = states
            .call(
                "us-east-1",
                "SendTaskSuccess",
                bytes::Bytes::from(json!({"taskToken": token, "output": "{}"}).to_string()),
            )
            .await
            .unwrap_err();
        assert_eq!(late.code, "TaskTimedOut");
    }

    #[tokio::test]
    async fn activities_are_created_idempotently_and_listed_in_pages() {
        let (_dir, states) = service();
        let a = call(
            &states,
            "CreateActivity",
            json!({"name": "a1", "tags": [{"key": "k", "value": "v"}]}),
        )
        .await;
        let again = call(
            &states,
            "CreateActivity",
            json!({"name": "a1", "tags": [{"key": "other", "value": "x"}]}),
        )
        .await;
        assert_eq!(a, again);
        let tags = call(
            &states,
            "ListTagsForResource",
            json!({"resourceArn": a["activityArn"]}),
        )
        .await;
        assert_eq!(tags, json!({"tags": [{"key": "k", "value": "v"}]}));
        let e = states
            .call(
                "us-east-1",
                "CreateActivity",
                bytes::Bytes::from(
                    json!({"name": "a1", "encryptionConfiguration": {"type": "AWS_OWNED_KEY"}})
                        .to_string(),
                ),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, "ActivityAlreadyExists");
        call(&states, "CreateActivity", json!({"name": "a2"})).await;
        call(&states, "CreateActivity", json!({"name": "a3"})).await;
        let p1 = call(&states, "ListActivities", json!({"maxResults": 2})).await;
        assert_eq!(p1["activities"].as_array().map(Vec::len), Some(2));
        let p2 = call(
            &states,
            "ListActivities",
            json!({"maxResults": 2, "nextToken": p1["nextToken"]}),
        )
        .await;
        assert_eq!(p2["activities"][0]["name"], "a3");
        assert!(p2.get("nextToken").is_none());
        call(
            &states,
            "DeleteActivity",
            json!({"activityArn": a["activityArn"]}),
        )
        .await;
        let e = states
            .call(
                "us-east-1",
                "DescribeActivity",
                bytes::Bytes::from(json!({"activityArn": a["activityArn"]}).to_string()),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, "ActivityDoesNotExist");
    }
}
