//! Amazon CloudWatch Logs (botocore `logs` 2014-03-28, json 1.1,
//! `X-Amz-Target: Logs_20140328.<Operation>`): log groups, log streams,
//! PutLogEvents, GetLogEvents, FilterLogEvents (with AWS's filter pattern
//! syntax, see [`filter`]), retention policies and tags.
//!
//! Log events live in the store's `log_events` table, the same one AWS
//! Lambda function logs are written to, so `/aws/lambda/<function>` log
//! groups and their streams appear here without being created. Step
//! Functions delivers execution history events through [`sfn`].
//!
//! Every client error is HTTP 400, as CloudWatch Logs answers:
//! `InvalidParameterException`, `ResourceNotFoundException`,
//! `ResourceAlreadyExistsException`, `TooManyTagsException`,
//! `ValidationException`, `SerializationException`.

pub mod filter;
mod groups;
mod input;
mod reading;
mod retention;
pub mod sfn;
mod writing;

use serde_json::Value;
use stratus_core::{AwsError, AwsResult};
use stratus_store::Store;

/// The json protocol's target prefix of CloudWatch Logs.
pub const TARGET_PREFIX: &str = "Logs_20140328";

/// Retention periods PutRetentionPolicy accepts, in days (AWS's list).
pub const RETENTION_DAYS: &[i64] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// One day in ms.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// The CloudWatch Logs service.
#[derive(Clone)]
pub struct Logs {
    pub(crate) store: Store,
    pub(crate) account: String,
}

/// `InvalidParameterException` (400).
pub(crate) fn invalid(msg: impl Into<String>) -> AwsError {
    AwsError::new(400, "InvalidParameterException", msg)
}

/// `ResourceNotFoundException` (400, as CloudWatch Logs answers it).
pub(crate) fn not_found(msg: impl Into<String>) -> AwsError {
    AwsError::new(400, "ResourceNotFoundException", msg)
}

pub(crate) fn group_not_found() -> AwsError {
    not_found("The specified log group does not exist.")
}

pub(crate) fn stream_not_found() -> AwsError {
    not_found("The specified log stream does not exist.")
}

pub(crate) fn store_err(e: stratus_store::StoreError) -> AwsError {
    AwsError::new(500, "ServiceUnavailableException", e.to_string())
}

impl Logs {
    /// The service over `store` (whose schema holds the `log_groups`,
    /// `log_streams` and `log_events` tables); ARNs carry `account`.
    pub fn new(store: Store, account: &str) -> Logs {
        Logs {
            store,
            account: account.to_string(),
        }
    }

    /// `arn:aws:logs:<region>:<account>:log-group:<name>` (the
    /// `logGroupArn` form, without the trailing `:*`).
    pub fn group_arn(&self, region: &str, name: &str) -> String {
        format!("arn:aws:logs:{region}:{}:log-group:{name}", self.account)
    }

    /// Starts the retention sweeper: every minute, events older than their
    /// group's retention are deleted (reads already skip them).
    pub fn spawn(&self) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                if let Err(e) = me.sweep_retention().await {
                    tracing::warn!("log retention sweep failed: {e}");
                }
            }
        })
    }

    /// Answers one operation: `op` is the part of `X-Amz-Target` after
    /// `Logs_20140328.`, `body` the JSON request.
    ///
    /// Errors: the operation's own errors; `UnknownOperationException` for
    /// an operation stratus does not implement; `SerializationException`
    /// for a body that is not a JSON object.
    pub async fn call(&self, region: &str, op: &str, body: &[u8]) -> AwsResult<Value> {
        let req = input::Input::parse(body)?;
        match op {
            "CreateLogGroup" => self.create_log_group(region, &req).await,
            "DeleteLogGroup" => self.delete_log_group(region, &req).await,
            "DescribeLogGroups" => self.describe_log_groups(region, &req),
            "CreateLogStream" => self.create_log_stream(region, &req).await,
            "DeleteLogStream" => self.delete_log_stream(region, &req).await,
            "DescribeLogStreams" => self.describe_log_streams(region, &req),
            "PutLogEvents" => self.put_log_events(region, &req).await,
            "GetLogEvents" => self.get_log_events(region, &req),
            "FilterLogEvents" => self.filter_log_events(region, &req),
            "PutRetentionPolicy" => self.put_retention_policy(region, &req).await,
            "DeleteRetentionPolicy" => self.delete_retention_policy(region, &req).await,
            "TagResource" => self.tag_resource(region, &req).await,
            "UntagResource" => self.untag_resource(region, &req).await,
            "ListTagsForResource" => self.list_tags_for_resource(region, &req),
            "TagLogGroup" => self.tag_log_group(region, &req).await,
            "UntagLogGroup" => self.untag_log_group(region, &req).await,
            "ListTagsLogGroup" => self.list_tags_log_group(region, &req),
            _ => Err(AwsError::new(
                400,
                "UnknownOperationException",
                format!("CloudWatch Logs operation {op} is not supported by stratus."),
            )),
        }
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    pub fn service() -> (Logs, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        (Logs::new(store, "123456789012"), dir)
    }

    pub async fn call(l: &Logs, op: &str, body: Value) -> AwsResult<Value> {
        l.call("us-east-1", op, body.to_string().as_bytes()).await
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{call, service};
    use serde_json::json;

    #[tokio::test]
    async fn groups_streams_and_events_round_trip() {
        let (l, _dir) = service();
        call(&l, "CreateLogGroup", json!({"logGroupName": "g"}))
            .await
            .unwrap();
        let e = call(&l, "CreateLogGroup", json!({"logGroupName": "g"}))
            .await
            .unwrap_err();
        assert_eq!(
            (e.status, e.code.as_str()),
            (400, "ResourceAlreadyExistsException")
        );
        call(
            &l,
            "CreateLogStream",
            json!({"logGroupName": "g", "logStreamName": "s"}),
        )
        .await
        .unwrap();
        let t = stratus_core::time::now_ms();
        let r = call(
            &l,
            "PutLogEvents",
            json!({"logGroupName": "g", "logStreamName": "s", "logEvents": [
                {"timestamp": t - 2, "message": "one"}, {"timestamp": t - 1, "message": "two"}]}),
        )
        .await
        .unwrap();
        assert!(r.get("rejectedLogEventsInfo").is_none());
        let got = call(
            &l,
            "GetLogEvents",
            json!({"logGroupName": "g", "logStreamName": "s", "startFromHead": true}),
        )
        .await
        .unwrap();
        let msgs: Vec<&str> = got["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["message"].as_str().unwrap())
            .collect();
        assert_eq!(msgs, ["one", "two"]);
        let streams = call(&l, "DescribeLogStreams", json!({"logGroupName": "g"}))
            .await
            .unwrap();
        assert_eq!(streams["logStreams"][0]["lastEventTimestamp"], t - 1);
        assert_eq!(streams["logStreams"][0]["storedBytes"], 6);
        call(&l, "DeleteLogGroup", json!({"logGroupName": "g"}))
            .await
            .unwrap();
        let e = call(&l, "FilterLogEvents", json!({"logGroupName": "g"}))
            .await
            .unwrap_err();
        assert_eq!(e.code, "ResourceNotFoundException");
    }

    #[tokio::test]
    async fn function_log_groups_appear_with_their_first_line() {
        let (l, _dir) = service();
        l.store.append_log(stratus_store::LogEvent {
            region: "us-east-1".into(),
            log_group: "/aws/lambda/f".into(),
            log_stream: "2024/01/01/[$LATEST]abc".into(),
            timestamp: stratus_core::time::now_ms(),
            message: "START RequestId: 1 Version: $LATEST".into(),
        });
        l.store.flush_logs();
        let groups = call(
            &l,
            "DescribeLogGroups",
            json!({"logGroupNamePrefix": "/aws/lambda/"}),
        )
        .await
        .unwrap();
        assert_eq!(groups["logGroups"][0]["logGroupName"], "/aws/lambda/f");
        let found = call(
            &l,
            "FilterLogEvents",
            json!({"logGroupName": "/aws/lambda/f", "filterPattern": "START"}),
        )
        .await
        .unwrap();
        assert_eq!(found["events"].as_array().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn retention_sweeper_deletes_expired_events() {
        let (l, _dir) = service();
        call(&l, "CreateLogGroup", json!({"logGroupName": "g"}))
            .await
            .unwrap();
        call(
            &l,
            "CreateLogStream",
            json!({"logGroupName": "g", "logStreamName": "s"}),
        )
        .await
        .unwrap();
        let t = stratus_core::time::now_ms();
        call(
            &l,
            "PutLogEvents",
            json!({"logGroupName": "g", "logStreamName": "s", "logEvents": [
                {"timestamp": t - 2 * super::DAY_MS, "message": "old"}]}),
        )
        .await
        .unwrap();
        call(
            &l,
            "PutRetentionPolicy",
            json!({"logGroupName": "g", "retentionInDays": 1}),
        )
        .await
        .unwrap();
        assert_eq!(l.sweep_retention().await.unwrap(), 1);
        let n: i64 = l
            .store
            .read(|c| c.query_row("SELECT COUNT(*) FROM log_events", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(n, 0);
    }

    /// Events sharing one timestamp page without loss or repeats, forward
    /// and backward (the key breaks ties by arrival).
    #[tokio::test]
    async fn equal_timestamps_page_in_arrival_order() {
        let (l, _dir) = service();
        call(&l, "CreateLogGroup", json!({"logGroupName": "g"}))
            .await
            .unwrap();
        call(
            &l,
            "CreateLogStream",
            json!({"logGroupName": "g", "logStreamName": "s"}),
        )
        .await
        .unwrap();
        let t = stratus_core::time::now_ms() - 1000;
        let events: Vec<_> = (0..2500)
            .map(|i| json!({"timestamp": t, "message": format!("m{i}")}))
            .collect();
        call(
            &l,
            "PutLogEvents",
            json!({"logGroupName": "g", "logStreamName": "s", "logEvents": events}),
        )
        .await
        .unwrap();
        let expected: Vec<String> = (0..2500).map(|i| format!("m{i}")).collect();
        let messages = |v: &serde_json::Value| -> Vec<String> {
            v["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["message"].as_str().unwrap().to_string())
                .collect()
        };
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut req = json!({"logGroupName": "g", "limit": 700});
            if let Some(t) = &token {
                req["nextToken"] = json!(t);
            }
            let page = call(&l, "FilterLogEvents", req).await.unwrap();
            seen.extend(messages(&page));
            match page["nextToken"].as_str() {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
        assert_eq!(seen, expected);
        let mut seen = Vec::new();
        let mut req =
            json!({"logGroupName": "g", "logStreamName": "s", "limit": 900, "startFromHead": true});
        loop {
            let page = call(&l, "GetLogEvents", req.clone()).await.unwrap();
            let got = messages(&page);
            if got.is_empty() {
                break;
            }
            seen.extend(got);
            req = json!({"logGroupName": "g", "logStreamName": "s", "limit": 900,
                         "nextToken": page["nextForwardToken"]});
        }
        assert_eq!(seen, expected);
        let mut back = Vec::new();
        let mut req = json!({"logGroupName": "g", "logStreamName": "s", "limit": 900});
        loop {
            let page = call(&l, "GetLogEvents", req.clone()).await.unwrap();
            let got = messages(&page);
            if got.is_empty() {
                break;
            }
            back.splice(0..0, got);
            req = json!({"logGroupName": "g", "logStreamName": "s", "limit": 900,
                         "nextToken": page["nextBackwardToken"]});
        }
        assert_eq!(back, expected);
    }
}
