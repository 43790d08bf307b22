//! Service tests: the actions against a real store, deliveries through a
//! recording target.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use stratus_core::{Delivery, Target, targets::BoxFuture};

use super::*;

/// Records deliveries; fails the first `fail` of them with `status`.
#[derive(Default)]
struct Recorder {
    got: Mutex<Vec<(String, Delivery)>>,
    fail: AtomicU32,
    status: AtomicU32,
}

impl Target for Recorder {
    fn deliver<'a>(&'a self, arn: &'a str, d: Delivery) -> BoxFuture<'a, AwsResult<String>> {
        Box::pin(async move {
            if self.fail.load(Ordering::SeqCst) > 0 {
                self.fail.fetch_sub(1, Ordering::SeqCst);
                let status = self.status.load(Ordering::SeqCst) as u16;
                return Err(AwsError::new(status, "Boom", "endpoint failed"));
            }
            self.got.lock().unwrap().push((arn.to_string(), d));
            Ok("id".into())
        })
    }
}

struct Env {
    _dir: tempfile::TempDir,
    store: Store,
    sns: Arc<Sns>,
    rec: Arc<Recorder>,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (sns, rec) = service(&store, 1000.0);
    Env {
        _dir: dir,
        store,
        sns,
        rec,
    }
}

fn service(store: &Store, time_scale: f64) -> (Arc<Sns>, Arc<Recorder>) {
    let mut config = Config::with_data_dir(std::path::PathBuf::from("/nonexistent"));
    config.time_scale = time_scale;
    let targets = Targets::new();
    let rec = Arc::new(Recorder::default());
    targets.register("sqs", rec.clone());
    targets.register("lambda", rec.clone());
    let sns = Sns::new(store.clone(), &config, targets).unwrap();
    (sns, rec)
}

fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn call(sns: &Sns, action: &str, pairs: &[(&str, &str)]) -> AwsResult<String> {
    sns.call_query("us-east-1", action, &q(pairs)).await
}

fn between<'a>(xml: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open).map(|i| i + open.len()).unwrap_or(0);
    let end = xml[start..]
        .find(&close)
        .map(|i| i + start)
        .unwrap_or(start);
    &xml[start..end]
}

async fn wait_for(rec: &Recorder, n: usize) -> Vec<(String, Delivery)> {
    wait_for_within(rec, n, Duration::from_secs(10)).await
}

async fn wait_for_within(rec: &Recorder, n: usize, limit: Duration) -> Vec<(String, Delivery)> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if rec.got.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rec.got.lock().unwrap().clone()
}

const QUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:q";
const FN: &str = "arn:aws:lambda:us-east-1:123456789012:function:f";

#[tokio::test]
async fn topic_lifecycle_and_errors() {
    let e = env();
    let xml = call(&e.sns, "CreateTopic", &[("Name", "t")]).await.unwrap();
    let arn = between(&xml, "TopicArn").to_string();
    assert_eq!(arn, "arn:aws:sns:us-east-1:123456789012:t");
    // Idempotent.
    let again = call(&e.sns, "CreateTopic", &[("Name", "t")]).await.unwrap();
    assert_eq!(between(&again, "TopicArn"), arn);
    // Same name, other attributes.
    let err = call(
        &e.sns,
        "CreateTopic",
        &[
            ("Name", "t"),
            ("Attributes.entry.1.key", "DisplayName"),
            ("Attributes.entry.1.value", "x"),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, "InvalidParameter");
    let attrs = call(&e.sns, "GetTopicAttributes", &[("TopicArn", &arn)])
        .await
        .unwrap();
    assert!(attrs.contains("<key>SubscriptionsConfirmed</key><value>0</value>"));
    assert!(attrs.contains("<key>Owner</key><value>123456789012</value>"));
    assert!(attrs.contains("__default_policy_ID"));
    let missing = "arn:aws:sns:us-east-1:123456789012:missing";
    let err = call(&e.sns, "GetTopicAttributes", &[("TopicArn", missing)])
        .await
        .unwrap_err();
    assert_eq!((err.status, err.code.as_str()), (404, "NotFound"));
    let err = call(&e.sns, "GetTopicAttributes", &[("TopicArn", "nope")])
        .await
        .unwrap_err();
    assert_eq!((err.status, err.code.as_str()), (400, "InvalidParameter"));
    call(&e.sns, "DeleteTopic", &[("TopicArn", &arn)])
        .await
        .unwrap();
    call(&e.sns, "DeleteTopic", &[("TopicArn", &arn)])
        .await
        .unwrap();
    let list = call(&e.sns, "ListTopics", &[]).await.unwrap();
    assert!(!list.contains(&arn));
}

#[tokio::test]
async fn list_topics_pages_by_100() {
    let e = env();
    for i in 0..150 {
        call(&e.sns, "CreateTopic", &[("Name", &format!("t{i:03}"))])
            .await
            .unwrap();
    }
    let first = call(&e.sns, "ListTopics", &[]).await.unwrap();
    assert_eq!(first.matches("<member>").count(), 100);
    let token = between(&first, "NextToken").to_string();
    assert!(!token.is_empty());
    let second = call(&e.sns, "ListTopics", &[("NextToken", &token)])
        .await
        .unwrap();
    assert_eq!(second.matches("<member>").count(), 50);
    assert!(!second.contains("<NextToken>"));
    let err = call(&e.sns, "ListTopics", &[("NextToken", "garbage")])
        .await
        .unwrap_err();
    assert_eq!(err.message, "Invalid parameter: NextToken");
}

#[tokio::test]
async fn publish_delivers_envelope_and_raw_to_sqs_and_event_to_lambda() {
    let e = env();
    e.sns.spawn();
    let xml = call(&e.sns, "CreateTopic", &[("Name", "t")]).await.unwrap();
    let arn = between(&xml, "TopicArn").to_string();
    let s1 = call(
        &e.sns,
        "Subscribe",
        &[("TopicArn", &arn), ("Protocol", "sqs"), ("Endpoint", QUEUE)],
    )
    .await
    .unwrap();
    let sub_arn = between(&s1, "SubscriptionArn").to_string();
    call(
        &e.sns,
        "Subscribe",
        &[
            ("TopicArn", &arn),
            ("Protocol", "sqs"),
            ("Endpoint", "arn:aws:sqs:us-east-1:123456789012:raw"),
            ("Attributes.entry.1.key", "RawMessageDelivery"),
            ("Attributes.entry.1.value", "true"),
        ],
    )
    .await
    .unwrap();
    call(
        &e.sns,
        "Subscribe",
        &[("TopicArn", &arn), ("Protocol", "lambda"), ("Endpoint", FN)],
    )
    .await
    .unwrap();
    let out = call(
        &e.sns,
        "Publish",
        &[
            ("TopicArn", &arn),
            ("Message", "hello"),
            ("Subject", "greeting"),
            ("MessageAttributes.entry.1.Name", "color"),
            ("MessageAttributes.entry.1.Value.DataType", "String"),
            ("MessageAttributes.entry.1.Value.StringValue", "red"),
        ],
    )
    .await
    .unwrap();
    let mid = between(&out, "MessageId").to_string();
    let got = wait_for(&e.rec, 3).await;
    assert_eq!(got.len(), 3, "{got:?}");
    let by = |arn: &str| got.iter().find(|(a, _)| a == arn).unwrap().1.clone();
    let env_msg: serde_json::Value = serde_json::from_str(&by(QUEUE).body).unwrap();
    assert_eq!(env_msg["Type"], "Notification");
    assert_eq!(env_msg["MessageId"], mid.as_str());
    assert_eq!(env_msg["TopicArn"], arn.as_str());
    assert_eq!(env_msg["Subject"], "greeting");
    assert_eq!(env_msg["Message"], "hello");
    assert!(
        env_msg["UnsubscribeURL"]
            .as_str()
            .unwrap()
            .contains("Unsubscribe")
    );
    assert_eq!(
        env_msg["MessageAttributes"]["color"],
        serde_json::json!({"Type": "String", "Value": "red"})
    );
    let raw = by("arn:aws:sqs:us-east-1:123456789012:raw");
    assert_eq!(raw.body, "hello");
    assert_eq!(raw.attributes["color"].string_value.as_deref(), Some("red"));
    let ev: serde_json::Value = serde_json::from_str(&by(FN).body).unwrap();
    assert_eq!(ev["Records"][0]["EventSource"], "aws:sns");
    assert_eq!(ev["Records"][0]["Sns"]["Message"], "hello");
    assert_eq!(ev["Records"][0]["Sns"]["Subject"], "greeting");
    // Unsubscribe, then the queue gets nothing more.
    call(&e.sns, "Unsubscribe", &[("SubscriptionArn", &sub_arn)])
        .await
        .unwrap();
    // Again: nothing to do, and no error.
    call(&e.sns, "Unsubscribe", &[("SubscriptionArn", &sub_arn)])
        .await
        .unwrap();
    let attrs = call(&e.sns, "GetTopicAttributes", &[("TopicArn", &arn)])
        .await
        .unwrap();
    assert!(attrs.contains("<key>SubscriptionsDeleted</key><value>1</value>"));
    assert!(attrs.contains("<key>SubscriptionsConfirmed</key><value>2</value>"));
}

#[tokio::test]
async fn filter_policies_select_subscriptions() {
    let e = env();
    e.sns.spawn();
    let xml = call(&e.sns, "CreateTopic", &[("Name", "t")]).await.unwrap();
    let arn = between(&xml, "TopicArn").to_string();
    call(
        &e.sns,
        "Subscribe",
        &[
            ("TopicArn", &arn),
            ("Protocol", "sqs"),
            ("Endpoint", QUEUE),
            ("Attributes.entry.1.key", "FilterPolicy"),
            ("Attributes.entry.1.value", r#"{"color": ["red"]}"#),
        ],
    )
    .await
    .unwrap();
    for color in ["blue", "red"] {
        call(
            &e.sns,
            "Publish",
            &[
                ("TopicArn", &arn),
                ("Message", color),
                ("MessageAttributes.entry.1.Name", "color"),
                ("MessageAttributes.entry.1.Value.DataType", "String"),
                ("MessageAttributes.entry.1.Value.StringValue", color),
            ],
        )
        .await
        .unwrap();
    }
    let got = wait_for(&e.rec, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let got_after = e.rec.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got_after.len(), 1);
    let v: serde_json::Value = serde_json::from_str(&got[0].1.body).unwrap();
    assert_eq!(v["Message"], "red");
    // A bad policy is refused as AWS words it.
    let err = call(
        &e.sns,
        "Subscribe",
        &[
            ("TopicArn", &arn),
            ("Protocol", "sqs"),
            ("Endpoint", "arn:aws:sqs:us-east-1:123456789012:other"),
            ("Attributes.entry.1.key", "FilterPolicy"),
            ("Attributes.entry.1.value", r#"{"color": [{"bogus": 1}]}"#),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, "InvalidParameter");
    assert!(err.message.starts_with("Invalid parameter: FilterPolicy: "));
}

#[tokio::test]
async fn failed_deliveries_are_retried_and_client_errors_dropped() {
    let e = env();
    e.sns.spawn();
    let xml = call(&e.sns, "CreateTopic", &[("Name", "t")]).await.unwrap();
    let arn = between(&xml, "TopicArn").to_string();
    call(
        &e.sns,
        "Subscribe",
        &[("TopicArn", &arn), ("Protocol", "sqs"), ("Endpoint", QUEUE)],
    )
    .await
    .unwrap();
    // Server-side failures: retried (3 immediate, then 1 s / 1000 scale).
    e.rec.fail.store(5, Ordering::SeqCst);
    e.rec.status.store(500, Ordering::SeqCst);
    call(&e.sns, "Publish", &[("TopicArn", &arn), ("Message", "m1")])
        .await
        .unwrap();
    let got = wait_for(&e.rec, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(e.rec.fail.load(Ordering::SeqCst), 0);
    // A client-side failure ends the delivery.
    e.rec.fail.store(1, Ordering::SeqCst);
    e.rec.status.store(400, Ordering::SeqCst);
    call(&e.sns, "Publish", &[("TopicArn", &arn), ("Message", "m2")])
        .await
        .unwrap();
    // The failed attempt consumed the failure and the row is gone, with no
    // retry delivering it.
    let left = || -> i64 {
        e.store
            .read(|c| c.query_row("SELECT COUNT(*) FROM sns_deliveries", [], |r| r.get(0)))
            .unwrap()
    };
    let start = std::time::Instant::now();
    while (left() > 0 || e.rec.fail.load(Ordering::SeqCst) > 0)
        && start.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(e.rec.fail.load(Ordering::SeqCst), 0);
    assert_eq!(left(), 0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(e.rec.got.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn pending_deliveries_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let arn;
    {
        // No worker: the publish is committed but not delivered.
        let (sns, _rec) = service(&store, 1000.0);
        let xml = call(&sns, "CreateTopic", &[("Name", "t")]).await.unwrap();
        arn = between(&xml, "TopicArn").to_string();
        call(
            &sns,
            "Subscribe",
            &[("TopicArn", &arn), ("Protocol", "sqs"), ("Endpoint", QUEUE)],
        )
        .await
        .unwrap();
        call(&sns, "Publish", &[("TopicArn", &arn), ("Message", "kept")])
            .await
            .unwrap();
    }
    let (sns, rec) = service(&store, 1000.0);
    sns.spawn();
    let got = wait_for(&rec, 1).await;
    assert_eq!(got.len(), 1);
    let v: serde_json::Value = serde_json::from_str(&got[0].1.body).unwrap();
    assert_eq!(v["Message"], "kept");
    assert_eq!(v["TopicArn"], arn.as_str());
}

#[tokio::test]
async fn fifo_topics_sequence_and_deduplicate() {
    let e = env();
    e.sns.spawn();
    let err = call(
        &e.sns,
        "CreateTopic",
        &[
            ("Name", "t"),
            ("Attributes.entry.1.key", "FifoTopic"),
            ("Attributes.entry.1.value", "true"),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, "InvalidParameter");
    let xml = call(
        &e.sns,
        "CreateTopic",
        &[
            ("Name", "t.fifo"),
            ("Attributes.entry.1.key", "FifoTopic"),
            ("Attributes.entry.1.value", "true"),
            ("Attributes.entry.2.key", "ContentBasedDeduplication"),
            ("Attributes.entry.2.value", "true"),
        ],
    )
    .await
    .unwrap();
    let arn = between(&xml, "TopicArn").to_string();
    let queue = "arn:aws:sqs:us-east-1:123456789012:q.fifo";
    call(
        &e.sns,
        "Subscribe",
        &[("TopicArn", &arn), ("Protocol", "sqs"), ("Endpoint", queue)],
    )
    .await
    .unwrap();
    let err = call(
        &e.sns,
        "Subscribe",
        &[("TopicArn", &arn), ("Protocol", "lambda"), ("Endpoint", FN)],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, "InvalidParameter");
    let err = call(&e.sns, "Publish", &[("TopicArn", &arn), ("Message", "a")])
        .await
        .unwrap_err();
    assert!(err.message.contains("MessageGroupId"), "{}", err.message);
    let a = call(
        &e.sns,
        "Publish",
        &[
            ("TopicArn", &arn),
            ("Message", "a"),
            ("MessageGroupId", "g"),
        ],
    )
    .await
    .unwrap();
    let dup = call(
        &e.sns,
        "Publish",
        &[
            ("TopicArn", &arn),
            ("Message", "a"),
            ("MessageGroupId", "g"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(between(&a, "MessageId"), between(&dup, "MessageId"));
    let b = call(
        &e.sns,
        "Publish",
        &[
            ("TopicArn", &arn),
            ("Message", "b"),
            ("MessageGroupId", "g"),
        ],
    )
    .await
    .unwrap();
    let (sa, sb) = (between(&a, "SequenceNumber"), between(&b, "SequenceNumber"));
    assert_eq!(sa.len(), 20);
    assert!(sb > sa);
    let got = wait_for(&e.rec, 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        e.rec.got.lock().unwrap().len(),
        2,
        "the duplicate is not delivered"
    );
    assert_eq!(got[0].1.message_group_id.as_deref(), Some("g"));
    assert!(got[0].1.deduplication_id.is_some());
    let first: serde_json::Value = serde_json::from_str(&got[0].1.body).unwrap();
    assert_eq!(first["Message"], "a");
    // A standard topic refuses a FIFO queue.
    let xml = call(&e.sns, "CreateTopic", &[("Name", "std")])
        .await
        .unwrap();
    let std_arn = between(&xml, "TopicArn").to_string();
    let err = call(
        &e.sns,
        "Subscribe",
        &[
            ("TopicArn", &std_arn),
            ("Protocol", "sqs"),
            ("Endpoint", queue),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, "InvalidParameter");
}

/// Parameters, expected error code, part of the expected message.
type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);

#[tokio::test]
async fn publish_validation() {
    let e = env();
    let xml = call(&e.sns, "CreateTopic", &[("Name", "t")]).await.unwrap();
    let arn = between(&xml, "TopicArn").to_string();
    let big = "x".repeat(MAX_MESSAGE_BYTES + 1);
    let cases: Vec<Case> = vec![
        (
            vec![("TopicArn", &arn), ("Message", "")],
            "InvalidParameter",
            "Empty message",
        ),
        (
            vec![("TopicArn", &arn), ("Message", &big)],
            "InvalidParameter",
            "Message too long",
        ),
        (
            vec![
                ("TopicArn", &arn),
                ("Message", "{}"),
                ("MessageStructure", "json"),
            ],
            "InvalidParameter",
            "No default entry in JSON message body",
        ),
        (
            vec![
                ("TopicArn", &arn),
                ("Message", "nope"),
                ("MessageStructure", "json"),
            ],
            "InvalidParameter",
            "JSON message body failed to parse",
        ),
        (
            vec![
                ("TopicArn", &arn),
                ("Message", "m"),
                ("MessageDeduplicationId", "d"),
            ],
            "InvalidParameter",
            "MessageDeduplicationId",
        ),
        (vec![("Message", "m")], "InvalidParameter", "TopicArn"),
        (
            vec![
                ("TopicArn", "arn:aws:sns:us-east-1:123456789012:missing"),
                ("Message", "m"),
            ],
            "NotFound",
            "Topic does not exist",
        ),
    ];
    for (params, code, msg) in cases {
        let err = call(&e.sns, "Publish", &params).await.unwrap_err();
        assert_eq!(err.code, code, "{params:?}");
        assert!(err.message.contains(msg), "{params:?}: {}", err.message);
    }
    // Exactly 256 KiB is accepted.
    let max = "x".repeat(MAX_MESSAGE_BYTES);
    call(&e.sns, "Publish", &[("TopicArn", &arn), ("Message", &max)])
        .await
        .unwrap();
}

#[tokio::test]
async fn publish_batch_results_and_errors() {
    let e = env();
    let xml = call(&e.sns, "CreateTopic", &[("Name", "t")]).await.unwrap();
    let arn = between(&xml, "TopicArn").to_string();
    let out = call(
        &e.sns,
        "PublishBatch",
        &[
            ("TopicArn", &arn),
            ("PublishBatchRequestEntries.member.1.Id", "ok"),
            ("PublishBatchRequestEntries.member.1.Message", "m"),
            ("PublishBatchRequestEntries.member.2.Id", "bad"),
            ("PublishBatchRequestEntries.member.2.Message", ""),
        ],
    )
    .await
    .unwrap();
    assert!(
        out.contains("<Successful><member><Id>ok</Id><MessageId>"),
        "{out}"
    );
    assert!(
        out.contains("<Failed><member><Id>bad</Id><Code>InvalidParameter</Code>"),
        "{out}"
    );
    assert!(out.contains("<SenderFault>true</SenderFault>"));
    let err = call(&e.sns, "PublishBatch", &[("TopicArn", &arn)])
        .await
        .unwrap_err();
    assert_eq!(err.code, "EmptyBatchRequest");
    let dup = call(
        &e.sns,
        "PublishBatch",
        &[
            ("TopicArn", &arn),
            ("PublishBatchRequestEntries.member.1.Id", "a"),
            ("PublishBatchRequestEntries.member.1.Message", "m"),
            ("PublishBatchRequestEntries.member.2.Id", "a"),
            ("PublishBatchRequestEntries.member.2.Message", "m"),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(dup.code, "BatchEntryIdsNotDistinct");
    let mut many = vec![("TopicArn".to_string(), arn.clone())];
    for i in 1..=11 {
        many.push((
            format!("PublishBatchRequestEntries.member.{i}.Id"),
            format!("e{i}"),
        ));
        many.push((
            format!("PublishBatchRequestEntries.member.{i}.Message"),
            "m".into(),
        ));
    }
    let err = e
        .sns
        .call_query("us-east-1", "PublishBatch", &many)
        .await
        .unwrap_err();
    assert_eq!(err.code, "TooManyEntriesInBatchRequest");
}

#[tokio::test]
async fn tags_and_subscription_attributes() {
    let e = env();
    let xml = call(
        &e.sns,
        "CreateTopic",
        &[
            ("Name", "t"),
            ("Tags.member.1.Key", "a"),
            ("Tags.member.1.Value", "1"),
        ],
    )
    .await
    .unwrap();
    let arn = between(&xml, "TopicArn").to_string();
    call(
        &e.sns,
        "TagResource",
        &[
            ("ResourceArn", &arn),
            ("Tags.member.1.Key", "b"),
            ("Tags.member.1.Value", "2"),
        ],
    )
    .await
    .unwrap();
    call(
        &e.sns,
        "UntagResource",
        &[("ResourceArn", &arn), ("TagKeys.member.1", "a")],
    )
    .await
    .unwrap();
    let tags = call(&e.sns, "ListTagsForResource", &[("ResourceArn", &arn)])
        .await
        .unwrap();
    assert_eq!(
        tags,
        "<Tags><member><Key>b</Key><Value>2</Value></member></Tags>"
    );
    let err = call(
        &e.sns,
        "ListTagsForResource",
        &[("ResourceArn", "arn:aws:sns:us-east-1:123456789012:missing")],
    )
    .await
    .unwrap_err();
    assert_eq!((err.status, err.code.as_str()), (404, "ResourceNotFound"));
    let s = call(
        &e.sns,
        "Subscribe",
        &[("TopicArn", &arn), ("Protocol", "sqs"), ("Endpoint", QUEUE)],
    )
    .await
    .unwrap();
    let sub = between(&s, "SubscriptionArn").to_string();
    // Subscribing again answers the same subscription.
    let s2 = call(
        &e.sns,
        "Subscribe",
        &[("TopicArn", &arn), ("Protocol", "sqs"), ("Endpoint", QUEUE)],
    )
    .await
    .unwrap();
    assert_eq!(between(&s2, "SubscriptionArn"), sub);
    call(
        &e.sns,
        "SetSubscriptionAttributes",
        &[
            ("SubscriptionArn", &sub),
            ("AttributeName", "RawMessageDelivery"),
            ("AttributeValue", "true"),
        ],
    )
    .await
    .unwrap();
    let a = call(
        &e.sns,
        "GetSubscriptionAttributes",
        &[("SubscriptionArn", &sub)],
    )
    .await
    .unwrap();
    assert!(
        a.contains("<key>RawMessageDelivery</key><value>true</value>"),
        "{a}"
    );
    assert!(a.contains("<key>PendingConfirmation</key><value>false</value>"));
    let err = call(
        &e.sns,
        "SetSubscriptionAttributes",
        &[
            ("SubscriptionArn", &sub),
            ("AttributeName", "FilterPolicy"),
            ("AttributeValue", r#"{"a": {"b": ["c"]}}"#),
        ],
    )
    .await
    .unwrap_err();
    assert!(err.message.contains("nested"), "{}", err.message);
    let err = call(
        &e.sns,
        "Subscribe",
        &[
            ("TopicArn", &arn),
            ("Protocol", "carrier-pigeon"),
            ("Endpoint", "x"),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, "InvalidParameter");
    let err = call(
        &e.sns,
        "Subscribe",
        &[
            ("TopicArn", &arn),
            ("Protocol", "sqs"),
            ("Endpoint", "not-an-arn"),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(err.message, "Invalid parameter: SQS endpoint ARN");
}

#[tokio::test]
async fn topic_is_a_delivery_target() {
    let e = env();
    e.sns.spawn();
    let xml = call(&e.sns, "CreateTopic", &[("Name", "t")]).await.unwrap();
    let arn = between(&xml, "TopicArn").to_string();
    call(
        &e.sns,
        "Subscribe",
        &[
            ("TopicArn", &arn),
            ("Protocol", "sqs"),
            ("Endpoint", QUEUE),
            ("Attributes.entry.1.key", "RawMessageDelivery"),
            ("Attributes.entry.1.value", "true"),
        ],
    )
    .await
    .unwrap();
    let id = e
        .sns
        .deliver(&arn, Delivery::body(r#"{"from":"lambda"}"#))
        .await
        .unwrap();
    assert_eq!(id.len(), 36);
    let got = wait_for(&e.rec, 1).await;
    assert_eq!(got[0].1.body, r#"{"from":"lambda"}"#);
    let err = e
        .sns
        .deliver(
            "arn:aws:sns:us-east-1:123456789012:missing",
            Delivery::body("x"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "NotFound");
}

#[tokio::test]
async fn list_subscriptions_pages_by_100() {
    let e = env();
    let xml = call(&e.sns, "CreateTopic", &[("Name", "t")]).await.unwrap();
    let arn = between(&xml, "TopicArn").to_string();
    for i in 0..105 {
        call(
            &e.sns,
            "Subscribe",
            &[
                ("TopicArn", &arn),
                ("Protocol", "sqs"),
                (
                    "Endpoint",
                    &format!("arn:aws:sqs:us-east-1:123456789012:q{i}"),
                ),
            ],
        )
        .await
        .unwrap();
    }
    for action in ["ListSubscriptions", "ListSubscriptionsByTopic"] {
        let first = call(&e.sns, action, &[("TopicArn", &arn)]).await.unwrap();
        assert_eq!(first.matches("<member>").count(), 100, "{action}");
        let token = between(&first, "NextToken").to_string();
        let second = call(&e.sns, action, &[("TopicArn", &arn), ("NextToken", &token)])
            .await
            .unwrap();
        assert_eq!(second.matches("<member>").count(), 5, "{action}");
        assert!(!second.contains("<NextToken>"));
    }
    let attrs = call(&e.sns, "GetTopicAttributes", &[("TopicArn", &arn)])
        .await
        .unwrap();
    assert!(attrs.contains("<key>SubscriptionsConfirmed</key><value>105</value>"));
}

#[tokio::test]
async fn at_most_200_filter_policies_per_topic() {
    let e = env();
    let xml = call(&e.sns, "CreateTopic", &[("Name", "t")]).await.unwrap();
    let arn = between(&xml, "TopicArn").to_string();
    let sub = |i: usize, policy: bool| {
        let arn = arn.clone();
        let sns = e.sns.clone();
        async move {
            let endpoint = format!("arn:aws:sqs:us-east-1:123456789012:q{i}");
            let mut p = vec![
                ("TopicArn", arn.as_str()),
                ("Protocol", "sqs"),
                ("Endpoint", endpoint.as_str()),
            ];
            if policy {
                p.push(("Attributes.entry.1.key", "FilterPolicy"));
                p.push(("Attributes.entry.1.value", r#"{"a": ["b"]}"#));
            }
            call(&sns, "Subscribe", &p).await
        }
    };
    for i in 0..MAX_FILTER_POLICIES {
        sub(i, true).await.unwrap();
    }
    let err = sub(1000, true).await.unwrap_err();
    assert_eq!(
        (err.status, err.code.as_str()),
        (403, "FilterPolicyLimitExceeded")
    );
    let plain = sub(1001, false).await.unwrap();
    let plain_arn = between(&plain, "SubscriptionArn").to_string();
    let err = call(
        &e.sns,
        "SetSubscriptionAttributes",
        &[
            ("SubscriptionArn", &plain_arn),
            ("AttributeName", "FilterPolicy"),
            ("AttributeValue", r#"{"a": ["b"]}"#),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, "FilterPolicyLimitExceeded");
}

/// Takes 6 s for queues named `slow`, records the others at once.
struct Slow(Arc<Recorder>);

impl Target for Slow {
    fn deliver<'a>(&'a self, arn: &'a str, d: Delivery) -> BoxFuture<'a, AwsResult<String>> {
        Box::pin(async move {
            if arn.ends_with(":slow") {
                tokio::time::sleep(Duration::from_secs(6)).await;
            }
            self.0.deliver(arn, d).await
        })
    }
}

#[tokio::test]
async fn a_slow_endpoint_holds_up_no_other_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let targets = Targets::new();
    let rec = Arc::new(Recorder::default());
    targets.register("sqs", Arc::new(Slow(rec.clone())));
    let config = Config::with_data_dir(std::path::PathBuf::from("/nonexistent"));
    let sns = Sns::new(store.clone(), &config, targets).unwrap();
    sns.spawn();
    let xml = call(&sns, "CreateTopic", &[("Name", "t")]).await.unwrap();
    let arn = between(&xml, "TopicArn").to_string();
    for q in ["slow", "fast"] {
        let endpoint = format!("arn:aws:sqs:us-east-1:123456789012:{q}");
        call(
            &sns,
            "Subscribe",
            &[
                ("TopicArn", &arn),
                ("Protocol", "sqs"),
                ("Endpoint", &endpoint),
            ],
        )
        .await
        .unwrap();
    }
    for i in 0..3 {
        call(
            &sns,
            "Publish",
            &[("TopicArn", &arn), ("Message", &format!("m{i}"))],
        )
        .await
        .unwrap();
    }
    // The fast queue gets its three messages while the slow one still
    // holds its first.
    let got = wait_for_within(&rec, 3, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got.iter().all(|(a, _)| a.ends_with(":fast")), "{got:?}");
    assert_eq!(
        wait_for_within(&rec, 6, Duration::from_secs(20))
            .await
            .len(),
        6
    );
}

#[tokio::test]
async fn arns_use_the_configured_account() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut config = Config::with_data_dir(dir.path().to_path_buf());
    config.account_id = "111122223333".into();
    let sns = Sns::new(store, &config, Targets::new()).unwrap();
    let xml = sns
        .call_query("eu-west-1", "CreateTopic", &q(&[("Name", "t")]))
        .await
        .unwrap();
    assert_eq!(
        between(&xml, "TopicArn"),
        "arn:aws:sns:eu-west-1:111122223333:t"
    );
    let attrs = sns
        .call_query(
            "eu-west-1",
            "GetTopicAttributes",
            &q(&[("TopicArn", "arn:aws:sns:eu-west-1:111122223333:t")]),
        )
        .await
        .unwrap();
    assert!(attrs.contains("<key>Owner</key><value>111122223333</value>"));
    // Topics are listed in their own region only.
    let other = sns
        .call_query("us-east-1", "ListTopics", &[])
        .await
        .unwrap();
    assert_eq!(other, "<Topics></Topics>");
}

#[tokio::test]
async fn https_subscriptions_take_https_urls_and_delivery_policies() {
    let e = env();
    let xml = call(&e.sns, "CreateTopic", &[("Name", "web")])
        .await
        .unwrap();
    let topic = between(&xml, "TopicArn").to_string();
    for bad in [
        "http://127.0.0.1:8443/x",
        "https://",
        "https:///x",
        "127.0.0.1:8443",
    ] {
        let err = call(
            &e.sns,
            "Subscribe",
            &[
                ("TopicArn", &topic),
                ("Protocol", "https"),
                ("Endpoint", bad),
            ],
        )
        .await
        .unwrap_err();
        assert_eq!(
            (err.status, err.code.as_str()),
            (400, "InvalidParameter"),
            "{bad}"
        );
    }
    let xml = call(
        &e.sns,
        "Subscribe",
        &[
            ("TopicArn", &topic),
            ("Protocol", "https"),
            ("Endpoint", "https://127.0.0.1:8443/hook"),
            ("Attributes.entry.1.key", "DeliveryPolicy"),
            (
                "Attributes.entry.1.value",
                r#"{"healthyRetryPolicy": {"numRetries": 1, "minDelayTarget": 1, "maxDelayTarget": 1}}"#,
            ),
        ],
    )
    .await
    .unwrap();
    let sub = between(&xml, "SubscriptionArn").to_string();
    let attrs = call(
        &e.sns,
        "GetSubscriptionAttributes",
        &[("SubscriptionArn", &sub)],
    )
    .await
    .unwrap();
    assert!(
        attrs.contains("<key>Protocol</key><value>https</value>"),
        "{attrs}"
    );
    assert!(
        attrs.contains("<key>EffectiveDeliveryPolicy</key>"),
        "{attrs}"
    );
    assert!(attrs.contains("<key>DeliveryPolicy</key>"), "{attrs}");
    // AWS's default HTTP/S retry policy applies to https too.
    assert_eq!(crate::delivery::retry_delay_ms("https", 3), Some(20_000));
    assert_eq!(crate::delivery::retry_delay_ms("https", 4), None);
}

#[tokio::test]
async fn http_endpoints_must_name_a_host_and_a_valid_port() {
    let e = env();
    let xml = call(&e.sns, "CreateTopic", &[("Name", "hooks")])
        .await
        .unwrap();
    let arn = between(&xml, "TopicArn").to_string();
    let sub = |protocol: &'static str, endpoint: &'static str| {
        let (sns, arn) = (&e.sns, arn.clone());
        async move {
            call(
                sns,
                "Subscribe",
                &[
                    ("TopicArn", &arn),
                    ("Protocol", protocol),
                    ("Endpoint", endpoint),
                ],
            )
            .await
        }
    };
    for (protocol, endpoint, why) in [
        ("https", "http://example.com/", "must start with https://"),
        ("https", "https://", "not a valid URL"),
        ("https", "https://:443/x", "names no host"),
        ("https", "https://localhost:99999/x", "port outside 1-65535"),
        ("http", "http://localhost:0/", "port outside 1-65535"),
        ("http", "http:// bad host/", "not a valid URL"),
    ] {
        let err = sub(protocol, endpoint).await.unwrap_err();
        assert_eq!(
            (err.status, err.code.as_str()),
            (400, "InvalidParameter"),
            "{endpoint}"
        );
        assert!(err.message.contains(why), "{endpoint}: {}", err.message);
    }
    for endpoint in ["https://127.0.0.1:8443/hook", "https://[::1]/hook"] {
        sub("https", endpoint).await.unwrap();
    }
}
