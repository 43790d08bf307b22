//! Amazon SNS: topics, subscriptions (`sqs`, `lambda`, `http`, `https`) and
//! publishing, over the query protocol (botocore model `sns/2010-03-31`),
//! durable in the store.
//!
//! * [`Sns::call_query`] answers `CreateTopic`, `DeleteTopic`,
//!   `ListTopics`, `GetTopicAttributes`, `SetTopicAttributes`, `Subscribe`,
//!   `ConfirmSubscription`, `Unsubscribe`, `ListSubscriptions`,
//!   `ListSubscriptionsByTopic`, `GetSubscriptionAttributes`,
//!   `SetSubscriptionAttributes`, `Publish`, `PublishBatch`, `TagResource`,
//!   `UntagResource` and `ListTagsForResource`.
//! * A publish answers after one pending delivery per matching
//!   subscription ([`filter`]) is committed; the worker started by
//!   [`Sns::spawn`] delivers them through the [`Targets`] registry (queues,
//!   functions) or by HTTP POST (over TLS for `https` subscriptions, with
//!   the certificate rules of [`stratus_upstream::tls`]), retrying as
//!   [`delivery`] documents.
//! * [`Sns`] is itself a [`stratus_core::Target`]: a delivery addressed to
//!   a topic ARN is published to the topic.

pub mod delivery;
pub mod envelope;
pub mod filter;
pub mod http_policy;
pub mod model;
pub mod params;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256};
use stratus_core::{AwsError, AwsResult, Config, MessageAttribute, Targets};
use stratus_store::Store;
use stratus_store::rusqlite::{self, OptionalExtension, params};
use tokio::sync::Notify;

use crate::delivery::{Pending, insert_row, store_attributes};
use crate::envelope::Notification;
use crate::filter::Scope;
use crate::model::{
    DEFAULT_EFFECTIVE_DELIVERY_POLICY, Subscription, TOPIC_ATTRIBUTES, Topic,
    check_subscription_attributes, parse_topic_arn, topic_of_subscription,
};
use crate::params::Params;

/// XML namespace of query-protocol answers.
pub const XMLNS: &str = "http://sns.amazonaws.com/doc/2010-03-31/";

/// Query-protocol actions (used to route unsigned requests).
pub const ACTIONS: &[&str] = &[
    "CreateTopic",
    "DeleteTopic",
    "ListTopics",
    "GetTopicAttributes",
    "SetTopicAttributes",
    "Subscribe",
    "ConfirmSubscription",
    "Unsubscribe",
    "ListSubscriptions",
    "ListSubscriptionsByTopic",
    "GetSubscriptionAttributes",
    "SetSubscriptionAttributes",
    "Publish",
    "PublishBatch",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
];

/// Largest message, attributes included: 256 KiB (262,144 bytes), as the
/// `Publish` API reference states.
pub const MAX_MESSAGE_BYTES: usize = 262_144;
/// Most entries in one `PublishBatch`.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// Items per `ListTopics` / `ListSubscriptions*` page (AWS: 100).
pub const PAGE_SIZE: usize = 100;
/// Most tags on one topic (AWS: 50).
pub const MAX_TAGS: usize = 50;
/// Most subscriptions of one topic with a filter policy (AWS's default
/// quota: 200 per topic).
pub const MAX_FILTER_POLICIES: usize = 200;
/// How long a FIFO topic remembers a deduplication id: 5 minutes, in ms.
pub const DEDUP_WINDOW_MS: i64 = 5 * 60 * 1000;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS sns_topics (
    arn    TEXT PRIMARY KEY,
    region TEXT NOT NULL,
    body   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sns_subscriptions (
    arn       TEXT PRIMARY KEY,
    topic_arn TEXT NOT NULL,
    region    TEXT NOT NULL,
    body      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sns_subscriptions_topic ON sns_subscriptions(topic_arn);
CREATE TABLE IF NOT EXISTS sns_deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_arn TEXT NOT NULL,
    fifo             INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_ms          INTEGER NOT NULL,
    body             TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sns_deliveries_due ON sns_deliveries(next_ms);
CREATE INDEX IF NOT EXISTS sns_deliveries_sub ON sns_deliveries(subscription_arn, id);
CREATE TABLE IF NOT EXISTS sns_dedup (
    topic_arn  TEXT NOT NULL,
    dedup_id   TEXT NOT NULL,
    message_id TEXT NOT NULL,
    sequence   TEXT,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (topic_arn, dedup_id)
);
"#;

/// The inner XML of an empty `<ActionResult>` element: `TagResource` and
/// `UntagResource` have an output shape with a result wrapper, so their
/// answers carry an (empty) `<TagResourceResult>` that botocore looks for;
/// the query codec writes the wrapper only around non-empty content.
const EMPTY_RESULT: &str = " ";

/// `InvalidParameter` (400), SNS's error for bad parameters.
pub fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "InvalidParameter", message)
}

fn topic_not_found() -> AwsError {
    AwsError::new(404, "NotFound", "Topic does not exist")
}

/// `FilterPolicyLimitExceeded` (403): the topic has [`MAX_FILTER_POLICIES`]
/// subscriptions with a filter policy.
fn filter_policy_limit() -> AwsError {
    AwsError::new(
        403,
        "FilterPolicyLimitExceeded",
        format!(
            "Filter policy limit exceeded: a topic can have at most {MAX_FILTER_POLICIES} subscriptions with a filter policy"
        ),
    )
}

fn has_filter_policy(attrs: &BTreeMap<String, String>) -> bool {
    attrs.get("FilterPolicy").is_some_and(|p| !p.is_empty())
}

fn resource_not_found() -> AwsError {
    AwsError::new(404, "ResourceNotFound", "Resource does not exist")
}

/// `TagLimitExceeded` (400): more than [`MAX_TAGS`] tags on a topic.
fn tag_limit() -> AwsError {
    AwsError::new(
        400,
        "TagLimitExceeded",
        format!(
            "Could not complete request: tag quota of per resource exceeded (at most {MAX_TAGS} tags)"
        ),
    )
}

fn subscription_not_found() -> AwsError {
    AwsError::new(404, "NotFound", "Subscription does not exist")
}

fn store_err(e: stratus_store::StoreError) -> AwsError {
    AwsError::new(500, "InternalError", e.to_string())
}

/// The SNS service.
pub struct Sns {
    store: Store,
    targets: Targets,
    account: String,
    edge_url: String,
    time_scale: f64,
    wake: Notify,
    /// Extra certificate authorities for `https` subscriptions
    /// ([`Config::ca_bundle`]).
    ca_bundle: Option<PathBuf>,
    /// The TLS client configuration, made at the first `https` delivery,
    /// or why it cannot be.
    tls: OnceLock<Result<Arc<stratus_upstream::tls::ClientConfig>, String>>,
}

/// A message about to be published.
#[derive(Debug, Clone, Default)]
struct Outgoing {
    message: String,
    structured: bool,
    subject: Option<String>,
    attributes: BTreeMap<String, MessageAttribute>,
    group_id: Option<String>,
    dedup_id: Option<String>,
}

impl Sns {
    /// Opens the service's tables in `store`.
    ///
    /// Errors: the tables cannot be created.
    pub fn new(store: Store, config: &Config, targets: Targets) -> Result<Arc<Sns>, String> {
        store.migrate(SCHEMA).map_err(|e| e.to_string())?;
        Ok(Arc::new(Sns {
            store,
            targets,
            account: config.account_id.clone(),
            edge_url: config.edge_url(),
            time_scale: if config.time_scale > 0.0 {
                config.time_scale
            } else {
                1.0
            },
            wake: Notify::new(),
            ca_bundle: config.ca_bundle.clone(),
            tls: OnceLock::new(),
        }))
    }

    /// Starts the delivery worker (it resumes deliveries left pending by
    /// an earlier run).
    pub fn spawn(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        vec![tokio::spawn(self.clone().delivery_loop())]
    }

    /// Answers one query-protocol action with the inner XML of its result
    /// (`<ActionResult>` content; empty for actions without output).
    ///
    /// Errors: as each action documents; `InvalidAction` (400) for actions
    /// SNS does not have here.
    pub async fn call_query(
        &self,
        region: &str,
        action: &str,
        params: &[(String, String)],
    ) -> AwsResult<String> {
        let p = Params::new(params);
        match action {
            "CreateTopic" => self.create_topic(region, &p).await,
            "DeleteTopic" => self.delete_topic(&p).await,
            "ListTopics" => self.list_topics(region, &p),
            "GetTopicAttributes" => self.get_topic_attributes(&p),
            "SetTopicAttributes" => self.set_topic_attributes(&p).await,
            "Subscribe" => self.subscribe(&p).await,
            "ConfirmSubscription" => self.confirm_subscription(&p),
            "Unsubscribe" => self.unsubscribe(&p).await,
            "ListSubscriptions" => self.list_subscriptions(region, None, &p),
            "ListSubscriptionsByTopic" => {
                let arn = p.required("TopicArn")?;
                parse_topic_arn(arn, "TopicArn")?;
                self.topic(arn)?.ok_or_else(topic_not_found)?;
                self.list_subscriptions(region, Some(arn), &p)
            }
            "GetSubscriptionAttributes" => self.get_subscription_attributes(&p),
            "SetSubscriptionAttributes" => self.set_subscription_attributes(&p).await,
            "Publish" => self.publish_action(&p).await,
            "PublishBatch" => self.publish_batch(&p).await,
            "TagResource" => self.tag_resource(&p).await,
            "UntagResource" => self.untag_resource(&p).await,
            "ListTagsForResource" => self.list_tags(&p),
            other => Err(AwsError::new(
                400,
                "InvalidAction",
                format!("The action {other} is not valid for this endpoint."),
            )),
        }
    }

    // ----------------------------------------------------------------
    // store access
    // ----------------------------------------------------------------

    fn topic(&self, arn: &str) -> AwsResult<Option<Topic>> {
        let arn = arn.to_string();
        let body = self
            .store
            .read(move |c| {
                c.query_row(
                    "SELECT body FROM sns_topics WHERE arn = ?1",
                    params![arn],
                    |r| r.get::<_, String>(0),
                )
                .optional()
            })
            .map_err(store_err)?;
        Ok(body.and_then(|b| serde_json::from_str(&b).ok()))
    }

    fn subscription(&self, arn: &str) -> AwsResult<Option<Subscription>> {
        let arn = arn.to_string();
        let body = self
            .store
            .read(move |c| {
                c.query_row(
                    "SELECT body FROM sns_subscriptions WHERE arn = ?1",
                    params![arn],
                    |r| r.get::<_, String>(0),
                )
                .optional()
            })
            .map_err(store_err)?;
        Ok(body.and_then(|b| serde_json::from_str(&b).ok()))
    }

    fn subscriptions_of(&self, topic_arn: &str) -> AwsResult<Vec<Subscription>> {
        let arn = topic_arn.to_string();
        let bodies = self
            .store
            .read(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT body FROM sns_subscriptions WHERE topic_arn = ?1 ORDER BY arn",
                )?;
                let rows = st.query_map(params![arn], |r| r.get::<_, String>(0))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(store_err)?;
        Ok(bodies
            .iter()
            .filter_map(|b| serde_json::from_str(b).ok())
            .collect())
    }

    /// Reads, changes and writes a topic in one write transaction, so
    /// concurrent changes (FIFO sequence numbers, counters, tags) are not
    /// lost. `f` refuses a change by returning an error; `missing` is the
    /// error when the topic does not exist.
    async fn update_topic<F>(&self, arn: &str, missing: AwsError, f: F) -> AwsResult<()>
    where
        F: FnOnce(&mut Topic) -> AwsResult<()> + Send + 'static,
    {
        let arn = arn.to_string();
        self.store
            .write(move |c| {
                let body: Option<String> = c
                    .query_row(
                        "SELECT body FROM sns_topics WHERE arn = ?1",
                        params![arn],
                        |r| r.get(0),
                    )
                    .optional()?;
                let Some(mut t) = body.and_then(|b| serde_json::from_str::<Topic>(&b).ok()) else {
                    return Ok(Err(missing));
                };
                if let Err(e) = f(&mut t) {
                    return Ok(Err(e));
                }
                let body = serde_json::to_string(&t)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                c.execute(
                    "UPDATE sns_topics SET body = ?2 WHERE arn = ?1",
                    params![arn, body],
                )?;
                Ok(Ok(()))
            })
            .await
            .map_err(store_err)?
    }

    // ----------------------------------------------------------------
    // topics
    // ----------------------------------------------------------------

    async fn create_topic(&self, region: &str, p: &Params) -> AwsResult<String> {
        let name = p.required("Name")?;
        let attrs = p.string_map("Attributes")?;
        let tags = p.tags("Tags")?;
        check_tags(&tags)?;
        for k in attrs.keys() {
            if !TOPIC_ATTRIBUTES.contains(&k.as_str()) {
                return Err(invalid(format!(
                    "Invalid parameter: Attributes Reason: Unknown attribute {k}"
                )));
            }
        }
        let fifo = attrs
            .get("FifoTopic")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if let Some(v) = attrs.get("FifoTopic")
            && !v.eq_ignore_ascii_case("true")
            && !v.eq_ignore_ascii_case("false")
        {
            return Err(invalid(format!(
                "Invalid parameter: Attributes Reason: FifoTopic: Invalid value [{v}]. Must be true or false."
            )));
        }
        if fifo {
            if !name.ends_with(".fifo") || !model::valid_topic_name(name) {
                return Err(invalid(
                    "Invalid parameter: Fifo Topic names must end with .fifo and must be made up of only uppercase and lowercase ASCII letters, numbers, underscores, and hyphens, and must be between 1 and 256 characters long.",
                ));
            }
        } else if name.ends_with(".fifo") || !model::valid_topic_name(name) {
            return Err(invalid("Invalid parameter: Topic Name"));
        }
        for (k, v) in &attrs {
            check_topic_attribute(k, v, fifo)?;
        }
        let account = self.account.clone();
        let arn = format!("arn:aws:sns:{region}:{account}:{name}");
        let mut stored_attrs = attrs.clone();
        stored_attrs.remove("FifoTopic");
        let topic = Topic {
            arn: arn.clone(),
            name: name.to_string(),
            region: region.to_string(),
            account,
            fifo,
            attributes: stored_attrs,
            tags: tags.clone(),
            sequence: 0,
            subscriptions_deleted: 0,
        };
        let body = serde_json::to_string(&topic).map_err(|e| AwsError::service(e.to_string()))?;
        let region = region.to_string();
        let given_attrs = !attrs.is_empty();
        let res = self
            .store
            .write(move |c| {
                let existing: Option<String> = c
                    .query_row(
                        "SELECT body FROM sns_topics WHERE arn = ?1",
                        params![topic.arn],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(b) = existing {
                    let Ok(old) = serde_json::from_str::<Topic>(&b) else {
                        return Ok(Err(AwsError::new(500, "InternalError", "unreadable topic")));
                    };
                    let mut old_attrs = old.attributes.clone();
                    if old.fifo {
                        old_attrs.insert("FifoTopic".into(), "true".into());
                    }
                    let mut new_attrs = topic.attributes.clone();
                    if topic.fifo {
                        new_attrs.insert("FifoTopic".into(), "true".into());
                    }
                    if given_attrs && old_attrs != new_attrs {
                        return Ok(Err(invalid(
                            "Invalid parameter: Attributes Reason: Topic already exists with different attributes",
                        )));
                    }
                    if !topic.tags.is_empty() {
                        let a: BTreeMap<_, _> = old.tags.iter().cloned().collect();
                        let b: BTreeMap<_, _> = topic.tags.iter().cloned().collect();
                        if a != b {
                            return Ok(Err(invalid(
                                "Invalid parameter: Tags Reason: Topic already exists with different tags",
                            )));
                        }
                    }
                    return Ok(Ok(old.arn));
                }
                c.execute(
                    "INSERT INTO sns_topics (arn, region, body) VALUES (?1, ?2, ?3)",
                    params![topic.arn, region, body],
                )?;
                Ok(Ok(topic.arn.clone()))
            })
            .await
            .map_err(store_err)??;
        Ok(format!("<TopicArn>{}</TopicArn>", esc(&res)))
    }

    async fn delete_topic(&self, p: &Params) -> AwsResult<String> {
        let arn = p.required("TopicArn")?.to_string();
        parse_topic_arn(&arn, "TopicArn")?;
        // Idempotent, as the DeleteTopic API reference states.
        self.store
            .write(move |c| {
                c.execute(
                    "DELETE FROM sns_deliveries WHERE subscription_arn IN \
                     (SELECT arn FROM sns_subscriptions WHERE topic_arn = ?1)",
                    params![arn],
                )?;
                c.execute(
                    "DELETE FROM sns_subscriptions WHERE topic_arn = ?1",
                    params![arn],
                )?;
                c.execute("DELETE FROM sns_dedup WHERE topic_arn = ?1", params![arn])?;
                c.execute("DELETE FROM sns_topics WHERE arn = ?1", params![arn])?;
                Ok(())
            })
            .await
            .map_err(store_err)?;
        Ok(String::new())
    }

    fn list_topics(&self, region: &str, p: &Params) -> AwsResult<String> {
        let after = p.get("NextToken").unwrap_or("").to_string();
        if !after.is_empty() && parse_topic_arn(&after, "NextToken").is_err() {
            return Err(invalid("Invalid parameter: NextToken"));
        }
        let region = region.to_string();
        let arns = self
            .store
            .read(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT arn FROM sns_topics WHERE region = ?1 AND arn > ?2 ORDER BY arn LIMIT ?3",
                )?;
                let rows = st.query_map(params![region, after, PAGE_SIZE as i64 + 1], |r| {
                    r.get::<_, String>(0)
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(store_err)?;
        let mut out = String::from("<Topics>");
        for a in arns.iter().take(PAGE_SIZE) {
            out.push_str(&format!("<member><TopicArn>{}</TopicArn></member>", esc(a)));
        }
        out.push_str("</Topics>");
        if arns.len() > PAGE_SIZE
            && let Some(last) = arns.get(PAGE_SIZE - 1)
        {
            out.push_str(&format!("<NextToken>{}</NextToken>", esc(last)));
        }
        Ok(out)
    }

    fn get_topic_attributes(&self, p: &Params) -> AwsResult<String> {
        let arn = p.required("TopicArn")?;
        parse_topic_arn(arn, "TopicArn")?;
        let t = self.topic(arn)?.ok_or_else(topic_not_found)?;
        let subs = self.subscriptions_of(arn)?;
        let mut m: BTreeMap<String, String> = BTreeMap::new();
        m.insert("TopicArn".into(), t.arn.clone());
        m.insert("Owner".into(), t.account.clone());
        m.insert("Policy".into(), t.default_policy());
        m.insert("DisplayName".into(), String::new());
        m.insert("SubscriptionsConfirmed".into(), subs.len().to_string());
        m.insert("SubscriptionsPending".into(), "0".into());
        m.insert(
            "SubscriptionsDeleted".into(),
            t.subscriptions_deleted.to_string(),
        );
        m.insert(
            "EffectiveDeliveryPolicy".into(),
            DEFAULT_EFFECTIVE_DELIVERY_POLICY.into(),
        );
        if t.fifo {
            m.insert("FifoTopic".into(), "true".into());
            m.insert("ContentBasedDeduplication".into(), "false".into());
        }
        for (k, v) in &t.attributes {
            m.insert(k.clone(), v.clone());
        }
        if t.attributes.contains_key("DeliveryPolicy") {
            m.insert(
                "EffectiveDeliveryPolicy".into(),
                t.attributes["DeliveryPolicy"].clone(),
            );
        }
        Ok(format!("<Attributes>{}</Attributes>", entries(&m)))
    }

    async fn set_topic_attributes(&self, p: &Params) -> AwsResult<String> {
        let arn = p.required("TopicArn")?;
        parse_topic_arn(arn, "TopicArn")?;
        let name = p.required("AttributeName")?.to_string();
        let value = p.get("AttributeValue").unwrap_or("").to_string();
        self.topic(arn)?.ok_or_else(topic_not_found)?;
        if !TOPIC_ATTRIBUTES.contains(&name.as_str()) {
            return Err(invalid(format!(
                "Invalid parameter: AttributeName Reason: Unknown attribute {name}"
            )));
        }
        if name == "FifoTopic" {
            return Err(invalid(
                "Invalid parameter: AttributeName Reason: FifoTopic can only be set when the topic is created",
            ));
        }
        self.update_topic(arn, topic_not_found(), move |t| {
            if value.is_empty() && name != "DisplayName" {
                t.attributes.remove(&name);
            } else {
                check_topic_attribute(&name, &value, t.fifo)?;
                t.attributes.insert(name, value);
            }
            Ok(())
        })
        .await?;
        Ok(String::new())
    }

    // ----------------------------------------------------------------
    // subscriptions
    // ----------------------------------------------------------------

    async fn subscribe(&self, p: &Params) -> AwsResult<String> {
        let topic_arn = p.required("TopicArn")?;
        parse_topic_arn(topic_arn, "TopicArn")?;
        let protocol = p.required("Protocol")?.to_ascii_lowercase();
        let endpoint = p.get("Endpoint").unwrap_or("");
        let attrs = p.string_map("Attributes")?;
        let _ = p.bool("ReturnSubscriptionArn")?;
        let topic = self.topic(topic_arn)?.ok_or_else(topic_not_found)?;
        match protocol.as_str() {
            "sqs" => {
                let ok = endpoint.split(':').count() == 6
                    && endpoint.starts_with("arn:")
                    && endpoint.split(':').nth(2) == Some("sqs")
                    && endpoint.rsplit(':').next().is_some_and(|n| !n.is_empty());
                if !ok {
                    return Err(invalid("Invalid parameter: SQS endpoint ARN"));
                }
                let queue_fifo = endpoint.ends_with(".fifo");
                if queue_fifo && !topic.fifo {
                    return Err(invalid(
                        "Invalid parameter: Invalid parameter: Endpoint Reason: FIFO SQS Queues can not be subscribed to standard SNS topics",
                    ));
                }
            }
            "lambda" => {
                let parts: Vec<&str> = endpoint.split(':').collect();
                let ok = (parts.len() == 7 || parts.len() == 8)
                    && parts[0] == "arn"
                    && parts[2] == "lambda"
                    && parts[5] == "function"
                    && !parts[6].is_empty();
                if !ok {
                    return Err(invalid("Invalid parameter: Lambda endpoint ARN"));
                }
            }
            "http" | "https" => {
                let scheme = format!("{protocol}://");
                if !endpoint.starts_with(&scheme) {
                    return Err(invalid(format!(
                        "Invalid parameter: Endpoint Reason: An {protocol} endpoint must start with {scheme}"
                    )));
                }
                if let Err(why) = stratus_upstream::check_http_url(endpoint, &[&protocol]) {
                    return Err(invalid(format!(
                        "Invalid parameter: Endpoint Reason: {why}"
                    )));
                }
            }
            "email" | "email-json" | "sms" | "application" | "firehose" => {
                return Err(invalid(format!(
                    "Invalid parameter: Protocol Reason: stratus delivers to sqs, lambda, http and https endpoints; it cannot deliver to {protocol} endpoints"
                )));
            }
            other => {
                return Err(invalid(format!(
                    "Invalid parameter: Amazon SNS does not support this protocol string: {other}"
                )));
            }
        }
        if topic.fifo && protocol != "sqs" {
            return Err(invalid(format!(
                "Invalid parameter: Invalid protocol type: {protocol}. FIFO topics deliver only to SQS queues"
            )));
        }
        check_subscription_attributes(&protocol, &attrs)?;
        let sub = Subscription {
            arn: format!("{}:{}", topic.arn, stratus_core::request_id()),
            topic_arn: topic.arn.clone(),
            protocol: protocol.clone(),
            endpoint: endpoint.to_string(),
            owner: topic.account.clone(),
            attributes: attrs,
        };
        let body = serde_json::to_string(&sub).map_err(|e| AwsError::service(e.to_string()))?;
        let region = topic.region.clone();
        let arn = self
            .store
            .write(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT body FROM sns_subscriptions WHERE topic_arn = ?1",
                )?;
                let rows = st.query_map(params![sub.topic_arn], |r| r.get::<_, String>(0))?;
                let mut with_policy = 0;
                for b in rows {
                    let Ok(old) = serde_json::from_str::<Subscription>(&b?) else {
                        continue;
                    };
                    if has_filter_policy(&old.attributes) {
                        with_policy += 1;
                    }
                    if old.protocol == sub.protocol && old.endpoint == sub.endpoint {
                        if !sub.attributes.is_empty() && old.attributes != sub.attributes {
                            return Ok(Err(invalid(
                                "Invalid parameter: Attributes Reason: Subscription already exists with different attributes",
                            )));
                        }
                        return Ok(Ok(old.arn));
                    }
                }
                if has_filter_policy(&sub.attributes) && with_policy >= MAX_FILTER_POLICIES {
                    return Ok(Err(filter_policy_limit()));
                }
                c.execute(
                    "INSERT INTO sns_subscriptions (arn, topic_arn, region, body) VALUES (?1, ?2, ?3, ?4)",
                    params![sub.arn, sub.topic_arn, region, body],
                )?;
                Ok(Ok(sub.arn.clone()))
            })
            .await
            .map_err(store_err)??;
        Ok(format!("<SubscriptionArn>{}</SubscriptionArn>", esc(&arn)))
    }

    fn confirm_subscription(&self, p: &Params) -> AwsResult<String> {
        let topic_arn = p.required("TopicArn")?;
        parse_topic_arn(topic_arn, "TopicArn")?;
        p.required("Token")?;
        self.topic(topic_arn)?.ok_or_else(topic_not_found)?;
        // Subscriptions are confirmed when they are made, so no token is
        // ever issued and none can be valid.
        Err(invalid("Invalid parameter: Token"))
    }

    async fn unsubscribe(&self, p: &Params) -> AwsResult<String> {
        let arn = p.required("SubscriptionArn")?.to_string();
        let topic_arn = topic_of_subscription(&arn)?.to_string();
        // Unsubscribing a subscription that no longer exists succeeds, as
        // it does on AWS.
        self.store
            .write(move |c| {
                let n = c.execute("DELETE FROM sns_subscriptions WHERE arn = ?1", params![arn])?;
                if n == 0 {
                    return Ok(false);
                }
                c.execute(
                    "DELETE FROM sns_deliveries WHERE subscription_arn = ?1",
                    params![arn],
                )?;
                let body: Option<String> = c
                    .query_row(
                        "SELECT body FROM sns_topics WHERE arn = ?1",
                        params![topic_arn],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(mut t) = body.and_then(|b| serde_json::from_str::<Topic>(&b).ok()) {
                    t.subscriptions_deleted += 1;
                    if let Ok(b) = serde_json::to_string(&t) {
                        c.execute(
                            "UPDATE sns_topics SET body = ?2 WHERE arn = ?1",
                            params![topic_arn, b],
                        )?;
                    }
                }
                Ok(true)
            })
            .await
            .map_err(store_err)?;
        Ok(String::new())
    }

    fn list_subscriptions(
        &self,
        region: &str,
        topic: Option<&str>,
        p: &Params,
    ) -> AwsResult<String> {
        let after = p.get("NextToken").unwrap_or("").to_string();
        if !after.is_empty() && topic_of_subscription(&after).is_err() {
            return Err(invalid("Invalid parameter: NextToken"));
        }
        let region = region.to_string();
        let topic = topic.map(str::to_string);
        let bodies = self
            .store
            .read(move |c| {
                let limit = PAGE_SIZE as i64 + 1;
                let rows: Vec<String> = match &topic {
                    Some(t) => {
                        let mut st = c.prepare_cached(
                            "SELECT body FROM sns_subscriptions WHERE topic_arn = ?1 AND arn > ?2 ORDER BY arn LIMIT ?3",
                        )?;
                        st.query_map(params![t, after, limit], |r| r.get(0))?
                            .collect::<rusqlite::Result<_>>()?
                    }
                    None => {
                        let mut st = c.prepare_cached(
                            "SELECT body FROM sns_subscriptions WHERE region = ?1 AND arn > ?2 ORDER BY arn LIMIT ?3",
                        )?;
                        st.query_map(params![region, after, limit], |r| r.get(0))?
                            .collect::<rusqlite::Result<_>>()?
                    }
                };
                Ok(rows)
            })
            .map_err(store_err)?;
        let subs: Vec<Subscription> = bodies
            .iter()
            .filter_map(|b| serde_json::from_str(b).ok())
            .collect();
        let mut out = String::from("<Subscriptions>");
        for s in subs.iter().take(PAGE_SIZE) {
            out.push_str(&format!(
                "<member><SubscriptionArn>{}</SubscriptionArn><Owner>{}</Owner><Protocol>{}</Protocol><Endpoint>{}</Endpoint><TopicArn>{}</TopicArn></member>",
                esc(&s.arn),
                esc(&s.owner),
                esc(&s.protocol),
                esc(&s.endpoint),
                esc(&s.topic_arn)
            ));
        }
        out.push_str("</Subscriptions>");
        if subs.len() > PAGE_SIZE
            && let Some(last) = subs.get(PAGE_SIZE - 1)
        {
            out.push_str(&format!("<NextToken>{}</NextToken>", esc(&last.arn)));
        }
        Ok(out)
    }

    fn get_subscription_attributes(&self, p: &Params) -> AwsResult<String> {
        let arn = p.required("SubscriptionArn")?;
        topic_of_subscription(arn)?;
        let s = self.subscription(arn)?.ok_or_else(subscription_not_found)?;
        let mut m: BTreeMap<String, String> = BTreeMap::new();
        m.insert("SubscriptionArn".into(), s.arn.clone());
        m.insert("TopicArn".into(), s.topic_arn.clone());
        m.insert("Owner".into(), s.owner.clone());
        m.insert("Protocol".into(), s.protocol.clone());
        m.insert("Endpoint".into(), s.endpoint.clone());
        m.insert("ConfirmationWasAuthenticated".into(), "true".into());
        m.insert("PendingConfirmation".into(), "false".into());
        m.insert("RawMessageDelivery".into(), "false".into());
        if s.protocol == "http" || s.protocol == "https" {
            let topic = self.topic(&s.topic_arn)?;
            let eff = http_policy::effective(
                topic
                    .as_ref()
                    .and_then(|t| t.attributes.get("DeliveryPolicy"))
                    .map(String::as_str),
                s.attributes.get("DeliveryPolicy").map(String::as_str),
            );
            m.insert("EffectiveDeliveryPolicy".into(), eff.to_json());
        }
        for (k, v) in &s.attributes {
            m.insert(k.clone(), v.clone());
        }
        if s.attributes.contains_key("FilterPolicy")
            && !s.attributes.contains_key("FilterPolicyScope")
        {
            m.insert("FilterPolicyScope".into(), "MessageAttributes".into());
        }
        Ok(format!("<Attributes>{}</Attributes>", entries(&m)))
    }

    async fn set_subscription_attributes(&self, p: &Params) -> AwsResult<String> {
        let arn = p.required("SubscriptionArn")?.to_string();
        topic_of_subscription(&arn)?;
        let name = p.required("AttributeName")?.to_string();
        let value = p.get("AttributeValue").unwrap_or("").to_string();
        self.subscription(&arn)?
            .ok_or_else(subscription_not_found)?;
        if !model::SUBSCRIPTION_ATTRIBUTES.contains(&name.as_str()) {
            return Err(invalid(format!(
                "Invalid parameter: AttributeName Reason: Unknown subscription attribute {name}"
            )));
        }
        // Read, check and write in one transaction: concurrent changes to
        // other attributes are kept.
        self.store
            .write(move |c| {
                let body: Option<String> = c
                    .query_row(
                        "SELECT body FROM sns_subscriptions WHERE arn = ?1",
                        params![arn],
                        |r| r.get(0),
                    )
                    .optional()?;
                let Some(mut s) = body.and_then(|b| serde_json::from_str::<Subscription>(&b).ok())
                else {
                    return Ok(Err(subscription_not_found()));
                };
                let had_policy = has_filter_policy(&s.attributes);
                if value.is_empty() {
                    s.attributes.remove(&name);
                } else {
                    s.attributes.insert(name, value);
                }
                if !had_policy && has_filter_policy(&s.attributes) {
                    let mut st = c.prepare_cached(
                        "SELECT body FROM sns_subscriptions WHERE topic_arn = ?1",
                    )?;
                    let mut with_policy = 0;
                    for b in st.query_map(params![s.topic_arn], |r| r.get::<_, String>(0))? {
                        if serde_json::from_str::<Subscription>(&b?)
                            .is_ok_and(|o| has_filter_policy(&o.attributes))
                        {
                            with_policy += 1;
                        }
                    }
                    if with_policy >= MAX_FILTER_POLICIES {
                        return Ok(Err(filter_policy_limit()));
                    }
                }
                if let Err(e) = check_subscription_attributes(&s.protocol, &s.attributes) {
                    return Ok(Err(e));
                }
                let body = serde_json::to_string(&s)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                c.execute(
                    "UPDATE sns_subscriptions SET body = ?2 WHERE arn = ?1",
                    params![arn, body],
                )?;
                Ok(Ok(()))
            })
            .await
            .map_err(store_err)??;
        Ok(String::new())
    }

    // ----------------------------------------------------------------
    // publishing
    // ----------------------------------------------------------------

    /// Reads and validates one message (a `Publish` request or one
    /// `PublishBatch` entry) for `topic`.
    fn outgoing(&self, topic: &Topic, p: &Params) -> AwsResult<Outgoing> {
        let message = p.get("Message").ok_or_else(|| {
            invalid("Invalid parameter: Message Reason: The parameter Message is required")
        })?;
        if message.is_empty() {
            return Err(invalid("Invalid parameter: Empty message"));
        }
        let attributes = p.message_attributes()?;
        let size = message.len()
            + attributes
                .iter()
                .map(|(k, a)| {
                    k.len()
                        + a.data_type.len()
                        + a.string_value.as_ref().map_or(0, String::len)
                        + a.binary_value.as_ref().map_or(0, Vec::len)
                })
                .sum::<usize>();
        if size > MAX_MESSAGE_BYTES {
            return Err(invalid("Invalid parameter: Message too long"));
        }
        let subject = p.get("Subject").map(str::to_string);
        if let Some(s) = &subject
            && (s.is_empty()
                || s.chars().count() > 100
                || s.chars().any(|c| c.is_control())
                || !s.is_ascii())
        {
            return Err(invalid("Invalid parameter: Subject"));
        }
        let structured = match p.get("MessageStructure") {
            None => false,
            Some("json") => {
                let v: serde_json::Value = serde_json::from_str(message).map_err(|_| {
                    invalid(
                        "Invalid parameter: Message Structure - JSON message body failed to parse",
                    )
                })?;
                let Some(obj) = v.as_object() else {
                    return Err(invalid(
                        "Invalid parameter: Message Structure - JSON message body failed to parse",
                    ));
                };
                match obj.get("default") {
                    Some(serde_json::Value::String(_)) => {}
                    _ => {
                        return Err(invalid(
                            "Invalid parameter: Message Structure - No default entry in JSON message body",
                        ));
                    }
                }
                true
            }
            Some(other) => {
                return Err(invalid(format!(
                    "Invalid parameter: MessageStructure Reason: '{other}' is not 'json'"
                )));
            }
        };
        let group_id = p.get("MessageGroupId").map(str::to_string);
        let mut dedup_id = p.get("MessageDeduplicationId").map(str::to_string);
        for (what, v) in [
            ("MessageGroupId", &group_id),
            ("MessageDeduplicationId", &dedup_id),
        ] {
            if let Some(v) = v
                && (v.is_empty() || v.len() > 128 || !v.bytes().all(|b| b.is_ascii_graphic()))
            {
                return Err(invalid(format!(
                    "Invalid parameter: {what} Reason: {what} can contain up to 128 alphanumeric and punctuation characters"
                )));
            }
        }
        if topic.fifo {
            if group_id.is_none() {
                return Err(invalid(
                    "Invalid parameter: The MessageGroupId parameter is required for FIFO topics",
                ));
            }
            if dedup_id.is_none() {
                if !topic.content_based_dedup() {
                    return Err(invalid(
                        "Invalid parameter: The topic should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
                    ));
                }
                dedup_id = Some(hex(&Sha256::digest(message.as_bytes())));
            }
        } else if dedup_id.is_some() {
            return Err(invalid(
                "Invalid parameter: MessageDeduplicationId Reason: The request includes MessageDeduplicationId parameter that is not valid for this topic type",
            ));
        }
        Ok(Outgoing {
            message: message.to_string(),
            structured,
            subject,
            attributes,
            group_id,
            dedup_id,
        })
    }

    async fn publish_action(&self, p: &Params) -> AwsResult<String> {
        if p.get("PhoneNumber").is_some() {
            return Err(invalid(
                "Invalid parameter: PhoneNumber Reason: stratus does not send SMS messages; publish to a topic",
            ));
        }
        let arn = match (p.get("TopicArn"), p.get("TargetArn")) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "Invalid parameter: TopicArn Reason: Only one of TopicArn or TargetArn may be specified",
                ));
            }
            (Some(t), None) => {
                parse_topic_arn(t, "TopicArn")?;
                t
            }
            (None, Some(t)) => {
                parse_topic_arn(t, "TargetArn")?;
                t
            }
            (None, None) => {
                return Err(invalid(
                    "Invalid parameter: TopicArn or TargetArn Reason: no value for required parameter",
                ));
            }
        };
        let topic = self.topic(arn)?.ok_or_else(topic_not_found)?;
        let out = self.outgoing(&topic, p)?;
        let (id, seq) = self.publish(&topic, out).await?;
        let mut xml = format!("<MessageId>{}</MessageId>", esc(&id));
        if let Some(s) = seq {
            xml.push_str(&format!("<SequenceNumber>{}</SequenceNumber>", esc(&s)));
        }
        Ok(xml)
    }

    async fn publish_batch(&self, p: &Params) -> AwsResult<String> {
        let arn = p.required("TopicArn")?;
        parse_topic_arn(arn, "TopicArn")?;
        let entries = p.members("PublishBatchRequestEntries.member");
        let topic = self.topic(arn)?.ok_or_else(topic_not_found)?;
        if entries.is_empty() {
            return Err(AwsError::new(
                400,
                "EmptyBatchRequest",
                "The batch request doesn't contain any entries.",
            ));
        }
        if entries.len() > MAX_BATCH_ENTRIES {
            return Err(AwsError::new(
                400,
                "TooManyEntriesInBatchRequest",
                format!(
                    "The batch request contains more entries than permissible: at most {MAX_BATCH_ENTRIES}."
                ),
            ));
        }
        let mut seen = HashSet::new();
        let mut total = 0usize;
        for e in &entries {
            let id = e.get("Id").unwrap_or("");
            if id.is_empty()
                || id.len() > 80
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(AwsError::new(
                    400,
                    "InvalidBatchEntryId",
                    "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.",
                ));
            }
            if !seen.insert(id.to_string()) {
                return Err(AwsError::new(
                    400,
                    "BatchEntryIdsNotDistinct",
                    "Two or more batch entries in the request have the same Id.",
                ));
            }
            total += e.get("Message").map_or(0, str::len);
        }
        if total > MAX_MESSAGE_BYTES {
            return Err(AwsError::new(
                400,
                "BatchRequestTooLong",
                "The length of all the messages put together is more than the limit.",
            ));
        }
        let mut ok = String::new();
        let mut failed = String::new();
        for e in &entries {
            let id = e.get("Id").unwrap_or("");
            let res = match self.outgoing(&topic, e) {
                Ok(out) => self.publish(&topic, out).await,
                Err(err) => Err(err),
            };
            match res {
                Ok((mid, seq)) => {
                    ok.push_str(&format!(
                        "<member><Id>{}</Id><MessageId>{}</MessageId>",
                        esc(id),
                        esc(&mid)
                    ));
                    if let Some(s) = seq {
                        ok.push_str(&format!("<SequenceNumber>{}</SequenceNumber>", esc(&s)));
                    }
                    ok.push_str("</member>");
                }
                Err(err) => {
                    failed.push_str(&format!(
                        "<member><Id>{}</Id><Code>{}</Code><Message>{}</Message><SenderFault>{}</SenderFault></member>",
                        esc(id),
                        esc(&err.code),
                        esc(&err.message),
                        err.status < 500
                    ));
                }
            }
        }
        Ok(format!(
            "<Successful>{ok}</Successful><Failed>{failed}</Failed>"
        ))
    }

    /// Commits one pending delivery per matching subscription and answers
    /// `(message id, sequence number)`. On FIFO topics a deduplication id
    /// seen in the last 5 minutes answers the first message's ids and
    /// delivers nothing.
    async fn publish(&self, topic: &Topic, out: Outgoing) -> AwsResult<(String, Option<String>)> {
        let subs = self.subscriptions_of(&topic.arn)?;
        let now = stratus_core::time::now_ms();
        let message_id = stratus_core::request_id();
        let topic_arn = topic.arn.clone();
        let fifo = topic.fifo;
        let topic_policy = topic.attributes.get("DeliveryPolicy").cloned();
        let signature_version = topic
            .attributes
            .get("SignatureVersion")
            .cloned()
            .unwrap_or_else(|| "1".into());
        let edge_url = self.edge_url.clone();
        let res = self
            .store
            .write(move |c| {
                let mut sequence = None;
                if fifo {
                    let dedup = out.dedup_id.clone().unwrap_or_default();
                    c.execute(
                        "DELETE FROM sns_dedup WHERE topic_arn = ?1 AND expires_ms <= ?2",
                        params![topic_arn, now],
                    )?;
                    let seen: Option<(String, Option<String>)> = c
                        .query_row(
                            "SELECT message_id, sequence FROM sns_dedup WHERE topic_arn = ?1 AND dedup_id = ?2",
                            params![topic_arn, dedup],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )
                        .optional()?;
                    if let Some(prev) = seen {
                        return Ok(Some(prev));
                    }
                    let body: Option<String> = c
                        .query_row(
                            "SELECT body FROM sns_topics WHERE arn = ?1",
                            params![topic_arn],
                            |r| r.get(0),
                        )
                        .optional()?;
                    let Some(mut t) = body.and_then(|b| serde_json::from_str::<Topic>(&b).ok())
                    else {
                        return Ok(None);
                    };
                    t.sequence += 1;
                    let seq = format!("{}", 10_000_000_000_000_000_000u128 + u128::from(t.sequence));
                    let b = serde_json::to_string(&t)
                        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                    c.execute(
                        "UPDATE sns_topics SET body = ?2 WHERE arn = ?1",
                        params![topic_arn, b],
                    )?;
                    c.execute(
                        "INSERT INTO sns_dedup (topic_arn, dedup_id, message_id, sequence, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![topic_arn, dedup, message_id, seq, now + DEDUP_WINDOW_MS],
                    )?;
                    sequence = Some(seq);
                }
                let note = Notification {
                    message_id: message_id.clone(),
                    topic_arn: topic_arn.clone(),
                    subject: out.subject.clone(),
                    message: out.message.clone(),
                    structured: out.structured,
                    timestamp_ms: now,
                    attributes: out.attributes.clone(),
                    sequence_number: sequence.clone(),
                    edge_url,
                    signature_version,
                };
                for s in &subs {
                    if let Some(p) = pending_for(s, &note, &out, fifo, topic_policy.as_deref())
                        && let Ok(body) = serde_json::to_string(&p)
                    {
                        insert_row(c, &s.arn, fifo, now, &body)?;
                    }
                }
                Ok(Some((message_id, sequence)))
            })
            .await
            .map_err(store_err)?;
        // The topic was deleted since it was read.
        let res = res.ok_or_else(topic_not_found)?;
        self.wake.notify_one();
        Ok(res)
    }

    // ----------------------------------------------------------------
    // tags
    // ----------------------------------------------------------------

    fn tagged_topic(&self, p: &Params) -> AwsResult<Topic> {
        let arn = p.required("ResourceArn")?;
        parse_topic_arn(arn, "ResourceArn")?;
        self.topic(arn)?.ok_or_else(resource_not_found)
    }

    async fn tag_resource(&self, p: &Params) -> AwsResult<String> {
        let t = self.tagged_topic(p)?;
        let tags = p.tags("Tags")?;
        check_tags(&tags)?;
        self.update_topic(&t.arn, resource_not_found(), move |t| {
            for (k, v) in tags {
                match t.tags.iter_mut().find(|(tk, _)| *tk == k) {
                    Some(slot) => slot.1 = v,
                    None => t.tags.push((k, v)),
                }
            }
            if t.tags.len() > MAX_TAGS {
                return Err(tag_limit());
            }
            Ok(())
        })
        .await?;
        Ok(EMPTY_RESULT.to_string())
    }

    async fn untag_resource(&self, p: &Params) -> AwsResult<String> {
        let t = self.tagged_topic(p)?;
        let keys = p.strings("TagKeys");
        self.update_topic(&t.arn, resource_not_found(), move |t| {
            t.tags.retain(|(k, _)| !keys.contains(k));
            Ok(())
        })
        .await?;
        Ok(EMPTY_RESULT.to_string())
    }

    fn list_tags(&self, p: &Params) -> AwsResult<String> {
        let t = self.tagged_topic(p)?;
        let mut out = String::from("<Tags>");
        for (k, v) in &t.tags {
            out.push_str(&format!(
                "<member><Key>{}</Key><Value>{}</Value></member>",
                esc(k),
                esc(v)
            ));
        }
        out.push_str("</Tags>");
        Ok(out)
    }
}

/// What subscription `s` gets for `note`, or `None` when its filter policy
/// rejects the message.
fn pending_for(
    s: &Subscription,
    note: &Notification,
    out: &Outgoing,
    fifo: bool,
    topic_delivery_policy: Option<&str>,
) -> Option<Pending> {
    if let Some((policy, scope)) = s.filter() {
        let ok = match scope {
            Scope::MessageAttributes => policy.matches_attributes(&out.attributes),
            Scope::MessageBody => policy.matches_body(&note.message_for(&s.protocol)),
        };
        if !ok {
            return None;
        }
    }
    let web = s.protocol == "http" || s.protocol == "https";
    let envelope = note.envelope(if web { &s.protocol } else { "sqs" }, &s.arn);
    let mut p = Pending {
        subscription_arn: s.arn.clone(),
        protocol: s.protocol.clone(),
        endpoint: s.endpoint.clone(),
        body: String::new(),
        attributes: Vec::new(),
        group_id: None,
        dedup_id: None,
        headers: Vec::new(),
        dlq_body: None,
        http_policy: None,
    };
    match s.protocol.as_str() {
        "lambda" => {
            p.body = note.lambda_event(&s.arn);
            p.dlq_body = Some(envelope);
            p.attributes = store_attributes(&out.attributes);
        }
        "http" | "https" => {
            p.headers = vec![
                ("x-amz-sns-message-type".into(), "Notification".into()),
                ("x-amz-sns-message-id".into(), note.message_id.clone()),
                ("x-amz-sns-topic-arn".into(), note.topic_arn.clone()),
                ("x-amz-sns-subscription-arn".into(), s.arn.clone()),
            ];
            if s.raw() {
                p.headers
                    .push(("x-amz-sns-rawdelivery".into(), "true".into()));
                p.body = note.message_for(&s.protocol);
            } else {
                p.body = envelope.clone();
            }
            p.dlq_body = Some(envelope);
            p.attributes = store_attributes(&out.attributes);
            p.http_policy = Some(http_policy::effective(
                topic_delivery_policy,
                s.attributes.get("DeliveryPolicy").map(String::as_str),
            ));
        }
        _ => {
            if s.raw() {
                p.body = note.message_for("sqs");
                p.attributes = store_attributes(&out.attributes);
            } else {
                p.body = envelope;
            }
            if s.endpoint.ends_with(".fifo") {
                p.group_id = out.group_id.clone();
                p.dedup_id = out.dedup_id.clone();
            } else if !fifo {
                p.group_id = out.group_id.clone();
            }
        }
    }
    Some(p)
}

/// Validates a topic attribute value.
fn check_topic_attribute(name: &str, value: &str, fifo: bool) -> AwsResult<()> {
    match name {
        "ContentBasedDeduplication" => {
            if !value.eq_ignore_ascii_case("true") && !value.eq_ignore_ascii_case("false") {
                return Err(invalid(format!(
                    "Invalid parameter: Attributes Reason: ContentBasedDeduplication: Invalid value [{value}]. Must be true or false."
                )));
            }
            if !fifo {
                return Err(invalid(
                    "Invalid parameter: Attributes Reason: ContentBasedDeduplication can only be set for FIFO topics",
                ));
            }
        }
        "FifoThroughputScope" if !fifo => {
            return Err(invalid(
                "Invalid parameter: Attributes Reason: FifoThroughputScope can only be set for FIFO topics",
            ));
        }
        "FifoThroughputScope" if value != "Topic" && value != "MessageGroup" => {
            return Err(invalid(format!(
                "Invalid parameter: Attributes Reason: FifoThroughputScope: Invalid value [{value}]. Must be Topic or MessageGroup."
            )));
        }
        "DeliveryPolicy" => {
            http_policy::parse_topic_policy(value)?;
        }
        "Policy" | "DataProtectionPolicy" | "ArchivePolicy"
            if serde_json::from_str::<serde_json::Value>(value)
                .map(|v| !v.is_object())
                .unwrap_or(true) =>
        {
            return Err(invalid(format!(
                "Invalid parameter: {name}: failed to parse JSON"
            )));
        }
        "SignatureVersion" if value != "1" && value != "2" => {
            return Err(invalid(format!(
                "Invalid parameter: SignatureVersion Reason: Invalid value [{value}]. Must be 1 or 2."
            )));
        }
        "DisplayName" if value.chars().count() > 100 => {
            return Err(invalid(
                "Invalid parameter: DisplayName Reason: DisplayName can be at most 100 characters",
            ));
        }
        _ => {}
    }
    Ok(())
}

/// Tag keys 1-128 characters, values 0-256 (AWS's tagging rules).
fn check_tags(tags: &[(String, String)]) -> AwsResult<()> {
    if tags.len() > MAX_TAGS {
        return Err(tag_limit());
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(invalid(format!(
                "Invalid parameter: Tags Reason: Tag key '{k}' must be 1 to 128 characters long"
            )));
        }
        if v.chars().count() > 256 {
            return Err(invalid(format!(
                "Invalid parameter: Tags Reason: The value of tag '{k}' can be at most 256 characters long"
            )));
        }
    }
    Ok(())
}

/// Escapes text for XML.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
    out
}

/// `<entry><key>k</key><value>v</value></entry>...` of a map.
fn entries(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| {
            format!(
                "<entry><key>{}</key><value>{}</value></entry>",
                esc(k),
                esc(v)
            )
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl stratus_core::Target for Sns {
    /// Publishes `delivery` to the topic `arn`: the body is the message,
    /// with its subject, message attributes and (FIFO topics) message group
    /// and deduplication ids. Returns the message id.
    ///
    /// Errors: `InvalidParameter` (bad ARN or message), `NotFound` (404)
    /// when the topic does not exist.
    fn deliver<'a>(
        &'a self,
        arn: &'a str,
        delivery: stratus_core::Delivery,
    ) -> stratus_core::targets::BoxFuture<'a, AwsResult<String>> {
        Box::pin(async move {
            parse_topic_arn(arn, "TopicArn")?;
            let topic = self.topic(arn)?.ok_or_else(topic_not_found)?;
            let mut items = vec![("Message".to_string(), delivery.body)];
            if let Some(s) = delivery.subject {
                items.push(("Subject".into(), s));
            }
            if let Some(g) = delivery.message_group_id {
                items.push(("MessageGroupId".into(), g));
            }
            if let Some(d) = delivery.deduplication_id
                && topic.fifo
            {
                items.push(("MessageDeduplicationId".into(), d));
            }
            for (i, (k, a)) in delivery.attributes.iter().enumerate() {
                let pre = format!("MessageAttributes.entry.{}", i + 1);
                items.push((format!("{pre}.Name"), k.clone()));
                items.push((format!("{pre}.Value.DataType"), a.data_type.clone()));
                if let Some(s) = &a.string_value {
                    items.push((format!("{pre}.Value.StringValue"), s.clone()));
                }
                if let Some(b) = &a.binary_value {
                    use base64::Engine;
                    items.push((
                        format!("{pre}.Value.BinaryValue"),
                        base64::engine::general_purpose::STANDARD.encode(b),
                    ));
                }
            }
            let out = self.outgoing(&topic, &Params::new(&items))?;
            self.publish(&topic, out).await.map(|(id, _)| id)
        })
    }
}

#[cfg(test)]
mod tests;
