//! Unit tests of the operations over a temporary store. Expected values
//! are CloudWatch's documented statistics of the values put.

use std::sync::Arc;

use serde_json::{Value, json};
use stratus_store::{MetricRow, Store};

use crate::CloudWatch;

fn service() -> (tempfile::TempDir, Arc<CloudWatch>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, CloudWatch::new(store).unwrap())
}

async fn call(cw: &CloudWatch, op: &str, body: Value) -> Result<Value, stratus_core::AwsError> {
    cw.call_json("us-east-1", op, body.to_string().as_bytes())
        .await
}

fn now_s() -> f64 {
    stratus_core::time::now_ms() as f64 / 1000.0
}

#[tokio::test]
async fn put_then_statistics() {
    let (_d, cw) = service();
    let t = now_s();
    call(
        &cw,
        "PutMetricData",
        json!({"Namespace": "App", "MetricData": [
            {"MetricName": "Latency", "Dimensions": [{"Name": "Svc", "Value": "a"}],
             "Values": [10, 20, 30], "Counts": [1, 2, 1], "Unit": "Milliseconds", "Timestamp": t},
            {"MetricName": "Latency", "Dimensions": [{"Name": "Svc", "Value": "a"}],
             "Value": 40, "Unit": "Milliseconds", "Timestamp": t}]}),
    )
    .await
    .unwrap();
    let out = call(
        &cw,
        "GetMetricStatistics",
        json!({"Namespace": "App", "MetricName": "Latency", "Dimensions": [{"Name": "Svc", "Value": "a"}],
               "StartTime": t - 600.0, "EndTime": t + 600.0, "Period": 3600,
               "Statistics": ["SampleCount", "Sum", "Average", "Minimum", "Maximum"]}),
    )
    .await
    .unwrap();
    let dps = out["Datapoints"].as_array().unwrap();
    assert_eq!(dps.len(), 1, "{out}");
    let d = &dps[0];
    assert_eq!(d["SampleCount"], 5.0);
    assert_eq!(d["Sum"], 120.0);
    assert_eq!(d["Average"], 24.0);
    assert_eq!(d["Minimum"], 10.0);
    assert_eq!(d["Maximum"], 40.0);
    assert_eq!(d["Unit"], "Milliseconds");
    let out = call(
        &cw,
        "GetMetricStatistics",
        json!({"Namespace": "App", "MetricName": "Latency", "Dimensions": [{"Name": "Svc", "Value": "a"}],
               "StartTime": t - 600.0, "EndTime": t + 600.0, "Period": 3600,
               "ExtendedStatistics": ["p50", "p100"]}),
    )
    .await
    .unwrap();
    assert_eq!(
        out["Datapoints"][0]["ExtendedStatistics"],
        json!({"p50": 20.0, "p100": 40.0})
    );
    // Other dimensions (none here) are another metric.
    let out = call(
        &cw,
        "GetMetricStatistics",
        json!({"Namespace": "App", "MetricName": "Latency",
               "StartTime": t - 600.0, "EndTime": t + 600.0, "Period": 60, "Statistics": ["Sum"]}),
    )
    .await
    .unwrap();
    assert_eq!(out["Datapoints"], json!([]));
}

#[tokio::test]
async fn bad_requests() {
    let (_d, cw) = service();
    let t = now_s();
    let base = json!({"Namespace": "App", "MetricName": "M", "StartTime": t - 60.0, "EndTime": t, "Statistics": ["Sum"]});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let e = call(&cw, "GetMetricStatistics", with("Period", json!(7)))
        .await
        .unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (400, "InvalidParameterValue"));
    let e = call(&cw, "GetMetricStatistics", base.clone())
        .await
        .unwrap_err();
    assert_eq!(e.code, "MissingParameter");
    let mut b = with("Period", json!(60));
    b.as_object_mut().unwrap().remove("Statistics");
    let e = call(&cw, "GetMetricStatistics", b).await.unwrap_err();
    assert_eq!(e.code, "InvalidParameterCombination");
    let mut b = with("Period", json!(60));
    b["StartTime"] = json!(t - 86_400.0 * 2.0);
    b["Period"] = json!(60);
    let e = call(&cw, "GetMetricStatistics", b).await.unwrap_err();
    assert_eq!(
        e.code, "InvalidParameterCombination",
        "2 days by the minute is 2,880 datapoints"
    );
    let many: Vec<Value> = (0..31)
        .map(|i| json!({"Name": format!("d{i}"), "Value": "v"}))
        .collect();
    let e = call(
        &cw,
        "PutMetricData",
        json!({"Namespace": "App", "MetricData": [{"MetricName": "M", "Value": 1, "Dimensions": many}]}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, "InvalidParameterValue");
    let e = call(
        &cw,
        "PutMetricData",
        json!({"Namespace": "AWS/Lambda", "MetricData": [{"MetricName": "M", "Value": 1}]}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, "InvalidParameterValue");
    let e = call(
        &cw,
        "PutMetricData",
        json!({"Namespace": "App", "MetricData": [{"MetricName": "M", "Value": 1,
               "StatisticValues": {"SampleCount": 1, "Sum": 1, "Minimum": 1, "Maximum": 1}}]}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, "InvalidParameterCombination");
    let e = call(
        &cw,
        "PutMetricData",
        json!({"Namespace": "App", "MetricData": [{"MetricName": "M", "Values": [1, 2], "Counts": [1]}]}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, "InvalidParameterValue");
    let e = call(
        &cw,
        "PutMetricData",
        json!({"Namespace": "App", "MetricData": [{"MetricName": "M", "Value": 1, "Timestamp": t - 15.0 * 86_400.0}]}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, "InvalidParameterValue");
    // Nothing of a rejected request is stored.
    let e = call(
        &cw,
        "PutMetricData",
        json!({"Namespace": "Half", "MetricData": [{"MetricName": "ok", "Value": 1}, {"MetricName": "bad", "Value": 1, "Unit": "Parsecs"}]}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, "InvalidParameterValue");
    let l = call(&cw, "ListMetrics", json!({"Namespace": "Half"}))
        .await
        .unwrap();
    assert_eq!(l["Metrics"], json!([]));
    let e = call(&cw, "DescribeAlarms", json!({})).await.unwrap_err();
    assert_eq!(e.code, "InvalidAction");
    let e = cw
        .call_json("us-east-1", "ListMetrics", b"{not json")
        .await
        .unwrap_err();
    assert_eq!(e.code, "SerializationException");
}

#[tokio::test]
async fn list_and_data_with_paging() {
    let (_d, cw) = service();
    let t = (stratus_core::time::now_ms() / 60_000 * 60) as f64 - 600.0;
    let data: Vec<Value> = (0..5)
        .map(|i| {
            json!({"MetricName": "Hits", "Dimensions": [{"Name": "Page", "Value": "home"}],
                        "Value": i + 1, "Timestamp": t + 60.0 * i as f64})
        })
        .collect();
    call(
        &cw,
        "PutMetricData",
        json!({"Namespace": "Web", "MetricData": data}),
    )
    .await
    .unwrap();
    call(
        &cw,
        "PutMetricData",
        json!({"Namespace": "Web", "MetricData": [{"MetricName": "Hits", "Dimensions": [{"Name": "Page", "Value": "about"}], "Value": 1}]}),
    )
    .await
    .unwrap();
    let l = call(
        &cw,
        "ListMetrics",
        json!({"Namespace": "Web", "Dimensions": [{"Name": "Page", "Value": "home"}]}),
    )
    .await
    .unwrap();
    assert_eq!(
        l["Metrics"],
        json!([{"Namespace": "Web", "MetricName": "Hits", "Dimensions": [{"Name": "Page", "Value": "home"}]}])
    );
    let l = call(
        &cw,
        "ListMetrics",
        json!({"Dimensions": [{"Name": "Page"}]}),
    )
    .await
    .unwrap();
    assert_eq!(l["Metrics"].as_array().unwrap().len(), 2);
    let q = |token: Option<&str>| {
        let mut b = json!({"StartTime": t, "EndTime": t + 300.0, "MaxDatapoints": 3, "ScanBy": "TimestampAscending",
            "MetricDataQueries": [{"Id": "m1", "Label": "hits", "MetricStat": {
                "Metric": {"Namespace": "Web", "MetricName": "Hits", "Dimensions": [{"Name": "Page", "Value": "home"}]},
                "Period": 60, "Stat": "Sum"}}]});
        if let Some(t) = token {
            b["NextToken"] = json!(t);
        }
        b
    };
    let p1 = call(&cw, "GetMetricData", q(None)).await.unwrap();
    assert_eq!(p1["MetricDataResults"][0]["Values"], json!([1.0, 2.0, 3.0]));
    assert_eq!(p1["MetricDataResults"][0]["Label"], "hits");
    assert_eq!(p1["MetricDataResults"][0]["StatusCode"], "PartialData");
    let tok = p1["NextToken"].as_str().unwrap().to_string();
    let p2 = call(&cw, "GetMetricData", q(Some(&tok))).await.unwrap();
    assert_eq!(p2["MetricDataResults"][0]["Values"], json!([4.0, 5.0]));
    assert_eq!(p2["MetricDataResults"][0]["StatusCode"], "Complete");
    assert!(p2.get("NextToken").is_none());
    let e = call(&cw, "GetMetricData", q(Some("garbage")))
        .await
        .unwrap_err();
    assert_eq!(e.code, "InvalidNextToken");
    let mut expr = q(None);
    expr["MetricDataQueries"] = json!([{"Id": "e1", "Expression": "SUM(METRICS())"}]);
    let e = call(&cw, "GetMetricData", expr).await.unwrap_err();
    assert_eq!(e.code, "ValidationError");
}

#[tokio::test]
async fn lambda_metrics_with_aws_dimensions() {
    let (_d, cw) = service();
    let minute = stratus_core::time::now_ms() / 60_000 * 60_000;
    let row = |dim: &str, q: &str| MetricRow {
        region: "us-east-1".into(),
        function_name: "f".into(),
        dimension: dim.into(),
        qualifier: q.into(),
        minute,
        invocations: 4,
        errors: 1,
        duration_sum_ms: 100.0,
        duration_count: 4,
        duration_max_ms: 40.0,
        ..Default::default()
    };
    cw.store()
        .add_metrics(&[
            row("function", ""),
            row("version", "$LATEST"),
            row("alias", "live"),
        ])
        .unwrap();
    let t = minute as f64 / 1000.0;
    let stats = |dims: Value, name: &str| {
        json!({"Namespace": "AWS/Lambda", "MetricName": name, "Dimensions": dims,
               "StartTime": t - 60.0, "EndTime": t + 60.0, "Period": 60,
               "Statistics": ["Sum", "SampleCount", "Average", "Maximum"]})
    };
    let out = call(
        &cw,
        "GetMetricStatistics",
        stats(
            json!([{"Name": "FunctionName", "Value": "f"}]),
            "Invocations",
        ),
    )
    .await
    .unwrap();
    assert_eq!(out["Datapoints"][0]["Sum"], 4.0);
    assert_eq!(out["Datapoints"][0]["Unit"], "Count");
    let out = call(
        &cw,
        "GetMetricStatistics",
        stats(json!([{"Name": "FunctionName", "Value": "f"}]), "Errors"),
    )
    .await
    .unwrap();
    assert_eq!(out["Datapoints"][0]["Sum"], 1.0);
    assert_eq!(out["Datapoints"][0]["Average"], 0.25);
    let out = call(
        &cw,
        "GetMetricStatistics",
        stats(json!([{"Name": "FunctionName", "Value": "f"}]), "Duration"),
    )
    .await
    .unwrap();
    assert_eq!(out["Datapoints"][0]["Average"], 25.0);
    assert_eq!(out["Datapoints"][0]["Maximum"], 40.0);
    assert_eq!(out["Datapoints"][0]["Unit"], "Milliseconds");
    let out = call(
        &cw,
        "GetMetricStatistics",
        stats(json!([{"Name": "FunctionName", "Value": "f"}, {"Name": "Resource", "Value": "f:live"}]), "Invocations"),
    )
    .await
    .unwrap();
    assert_eq!(out["Datapoints"][0]["Sum"], 4.0);
    let out = call(&cw, "GetMetricStatistics", stats(json!([]), "Invocations"))
        .await
        .unwrap();
    assert_eq!(out["Datapoints"][0]["Sum"], 4.0);
    let l = call(
        &cw,
        "ListMetrics",
        json!({"Namespace": "AWS/Lambda", "MetricName": "Invocations"}),
    )
    .await
    .unwrap();
    let sets: Vec<Value> = l["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Dimensions"].clone())
        .collect();
    assert_eq!(
        sets,
        vec![
            json!([]),
            json!([{"Name": "FunctionName", "Value": "f"}]),
            json!([{"Name": "FunctionName", "Value": "f"}, {"Name": "Resource", "Value": "f:live"}]),
        ]
    );
}

#[tokio::test]
async fn step_functions_counts() {
    let (_d, cw) = service();
    let store = cw.store().clone();
    store
        .migrate(
            "CREATE TABLE IF NOT EXISTS sfn_executions (arn TEXT PRIMARY KEY, region TEXT, state_machine_arn TEXT,
             status TEXT, start_ms INTEGER, stop_ms INTEGER)",
        )
        .unwrap();
    let sm = "arn:aws:states:us-east-1:123456789012:stateMachine:m";
    let now = stratus_core::time::now_ms();
    let rows = [
        ("e1", "SUCCEEDED", 1_000),
        ("e2", "FAILED", 3_000),
        ("e3", "ABORTED", 500),
        ("e4", "RUNNING", 0),
    ];
    for (arn, status, took) in rows {
        let (sm, arn, status) = (sm.to_string(), arn.to_string(), status.to_string());
        store
            .write(move |c| {
                c.execute(
                    "INSERT INTO sfn_executions VALUES (?1, 'us-east-1', ?2, ?3, ?4, ?5)",
                    stratus_store::rusqlite::params![
                        arn,
                        sm,
                        status,
                        now - took,
                        (status != "RUNNING").then_some(now)
                    ],
                )?;
                crate::states::count_started(c, "us-east-1", &sm, now - took)
            })
            .await
            .unwrap();
    }
    for arn in ["e1", "e2", "e3", "e4", "e1"] {
        let arn = arn.to_string();
        store
            .write(move |c| crate::states::count_ended(c, &arn))
            .await
            .unwrap();
    }
    // Nothing left to catch up: every end is counted once.
    assert_eq!(cw.recover().await.unwrap(), 0);
    let t = now as f64 / 1000.0;
    let get = |name: &str, stat: &str| {
        json!({"Namespace": "AWS/States", "MetricName": name,
               "Dimensions": [{"Name": "StateMachineArn", "Value": sm}],
               "StartTime": t - 600.0, "EndTime": t + 60.0, "Period": 3600, "Statistics": [stat]})
    };
    for (name, stat, want) in [
        ("ExecutionsStarted", "Sum", 4.0),
        ("ExecutionsSucceeded", "Sum", 1.0),
        ("ExecutionsFailed", "Sum", 1.0),
        ("ExecutionsAborted", "Sum", 1.0),
        ("ExecutionTime", "SampleCount", 3.0),
        ("ExecutionTime", "Maximum", 3_000.0),
        ("ExecutionTime", "Minimum", 500.0),
        ("ExecutionTime", "Average", 1_500.0),
    ] {
        let out = call(&cw, "GetMetricStatistics", get(name, stat))
            .await
            .unwrap();
        assert_eq!(out["Datapoints"][0][stat], want, "{name} {stat}: {out}");
    }
    let out = call(&cw, "GetMetricStatistics", get("ExecutionsTimedOut", "Sum"))
        .await
        .unwrap();
    assert_eq!(out["Datapoints"], json!([]));
}

#[tokio::test]
async fn embedded_metric_format_lines() {
    let (_d, cw) = service();
    let now = stratus_core::time::now_ms();
    let line = json!({"_aws": {"Timestamp": now, "CloudWatchMetrics": [{"Namespace": "MyApplication",
        "Dimensions": [["Environment", "Service"]],
        "Metrics": [{"Name": "ProcessingTime", "Unit": "Milliseconds"}]}]},
        "ProcessingTime": [12.5, 7.5], "Environment": "production", "Service": "order-api"});
    for message in [
        line.to_string(),
        "plain text".into(),
        r#"{"_aws": {"Timestamp": "x"}}"#.into(),
    ] {
        cw.store().append_log(stratus_store::LogEvent {
            region: "us-east-1".into(),
            log_group: "/aws/lambda/f".into(),
            log_stream: "s".into(),
            timestamp: now,
            message,
        });
    }
    cw.store().flush_logs();
    assert_eq!(cw.scan_emf().await.unwrap(), 3);
    assert_eq!(
        cw.scan_emf().await.unwrap(),
        0,
        "the cursor moved past the lines"
    );
    let t = now as f64 / 1000.0;
    let out = call(
        &cw,
        "GetMetricStatistics",
        json!({"Namespace": "MyApplication", "MetricName": "ProcessingTime",
               "Dimensions": [{"Name": "Service", "Value": "order-api"}, {"Name": "Environment", "Value": "production"}],
               "StartTime": t - 120.0, "EndTime": t + 60.0, "Period": 60, "Statistics": ["Sum", "SampleCount"]}),
    )
    .await
    .unwrap();
    assert_eq!(out["Datapoints"][0]["Sum"], 20.0, "{out}");
    assert_eq!(out["Datapoints"][0]["SampleCount"], 2.0);
    assert_eq!(out["Datapoints"][0]["Unit"], "Milliseconds");
}

#[tokio::test]
async fn query_protocol_round_trip() {
    let (_d, cw) = service();
    let p = |k: &str, v: &str| (k.to_string(), v.to_string());
    let now = stratus_core::time::now_ms();
    let iso = stratus_core::time::iso_ms(now);
    cw.call_query(
        "us-east-1",
        "PutMetricData",
        &[
            p("Namespace", "Q"),
            p("MetricData.member.1.MetricName", "m"),
            p("MetricData.member.1.Value", "2.5"),
            p("MetricData.member.1.Timestamp", &iso),
        ],
    )
    .await
    .unwrap();
    let x = cw
        .call_query(
            "us-east-1",
            "GetMetricStatistics",
            &[
                p("Namespace", "Q"),
                p("MetricName", "m"),
                p("Period", "60"),
                p("Statistics.member.1", "Sum"),
                p("StartTime", &stratus_core::time::iso_ms(now - 120_000)),
                p("EndTime", &stratus_core::time::iso_ms(now + 60_000)),
            ],
        )
        .await
        .unwrap();
    assert!(x.contains("<Sum>2.5</Sum>"), "{x}");
    assert!(x.contains("<Label>m</Label>"), "{x}");
}

#[tokio::test]
async fn cbor_requests_and_errors() {
    let (_d, cw) = service();
    let now = stratus_core::time::now_ms() as f64 / 1000.0;
    let put = crate::cbor::encode(
        &json!({"Namespace": "C", "MetricData": [{"MetricName": "m", "Value": 3.0}]}),
    );
    let r = cw.call_cbor("us-east-1", "PutMetricData", &put).await;
    assert_eq!(r.status, 200);
    assert!(
        r.headers
            .contains(&("smithy-protocol".into(), "rpc-v2-cbor".into()))
    );
    let get = crate::cbor::encode(
        &json!({"Namespace": "C", "MetricName": "m", "StartTime": now - 120.0,
        "EndTime": now + 60.0, "Period": 60, "Statistics": ["Sum"]}),
    );
    let r = cw.call_cbor("us-east-1", "GetMetricStatistics", &get).await;
    assert_eq!(r.status, 200);
    let v = crate::cbor::decode(&r.body).unwrap();
    assert_eq!(v["Datapoints"][0]["Sum"], 3.0);
    let bad = crate::cbor::encode(
        &json!({"Namespace": "AWS/X", "MetricData": [{"MetricName": "m", "Value": 3.0}]}),
    );
    let r = cw.call_cbor("us-east-1", "PutMetricData", &bad).await;
    assert_eq!(r.status, 400);
    let v = crate::cbor::decode(&r.body).unwrap();
    assert_eq!(
        v["__type"],
        "com.amazonaws.cloudwatch#InvalidParameterValueException"
    );
    assert!(r.headers.contains(&(
        "x-amzn-query-error".into(),
        "InvalidParameterValue;Sender".into()
    )));
    let r = cw.call_cbor("us-east-1", "ListMetrics", &[0xff]).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn gzip_bodies() {
    let (_d, cw) = service();
    // A gzip member with one stored DEFLATE block (RFC 1951/1952), built
    // here; the codec's own tests cover compressed blocks.
    let text = br#"{"Namespace": "Z", "MetricData": [{"MetricName": "m", "Value": 1}]}"#;
    let mut gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 3, 1];
    gz.extend_from_slice(&(text.len() as u16).to_le_bytes());
    gz.extend_from_slice(&(!(text.len() as u16)).to_le_bytes());
    gz.extend_from_slice(text);
    let crc = {
        let mut c = !0u32;
        for &b in text.iter() {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0xEDB8_8320
                } else {
                    c >> 1
                };
            }
        }
        !c
    };
    gz.extend_from_slice(&crc.to_le_bytes());
    gz.extend_from_slice(&(text.len() as u32).to_le_bytes());
    cw.call_json("us-east-1", "PutMetricData", &gz)
        .await
        .unwrap();
    let l = call(&cw, "ListMetrics", json!({"Namespace": "Z"}))
        .await
        .unwrap();
    assert_eq!(l["Metrics"][0]["MetricName"], "m");
    gz[20] ^= 0xff;
    let e = cw
        .call_json("us-east-1", "PutMetricData", &gz)
        .await
        .unwrap_err();
    assert_eq!(e.code, "SerializationException");
}

#[tokio::test]
async fn lambda_duration_minimum_from_report_lines() {
    let (_d, cw) = service();
    let now = stratus_core::time::now_ms();
    let minute = now - now.rem_euclid(60_000);
    cw.store()
        .add_metrics(&[MetricRow {
            region: "us-east-1".into(),
            function_name: "f".into(),
            dimension: "function".into(),
            minute,
            invocations: 3,
            duration_sum_ms: 60.0,
            duration_count: 3,
            duration_max_ms: 30.0,
            ..Default::default()
        }])
        .unwrap();
    for (i, d) in [10.0, 20.0, 30.0].into_iter().enumerate() {
        cw.store().append_log(stratus_store::LogEvent {
            region: "us-east-1".into(),
            log_group: "/aws/lambda/f".into(),
            log_stream: "2026/11/29/[$LATEST]abc".into(),
            timestamp: minute + i as i64,
            message: format!(
                "REPORT RequestId: r{i}\tDuration: {d:.2} ms\tBilled Duration: {} ms\tMemory Size: 128 MB\tMax Memory Used: 20 MB\t",
                d as i64
            ),
        });
    }
    cw.store().flush_logs();
    cw.scan_emf().await.unwrap();
    let t = minute as f64 / 1000.0;
    let q = |stats: Value| {
        let mut b = json!({"Namespace": "AWS/Lambda", "MetricName": "Duration",
            "Dimensions": [{"Name": "FunctionName", "Value": "f"}],
            "StartTime": t, "EndTime": t + 60.0, "Period": 60});
        b.as_object_mut()
            .unwrap()
            .extend(stats.as_object().unwrap().clone());
        b
    };
    let out = call(
        &cw,
        "GetMetricStatistics",
        q(json!({"Statistics": ["Minimum", "Maximum"]})),
    )
    .await
    .unwrap();
    assert_eq!(out["Datapoints"][0]["Minimum"], 10.0);
    assert_eq!(out["Datapoints"][0]["Maximum"], 30.0);
    let out = call(
        &cw,
        "GetMetricStatistics",
        q(json!({"ExtendedStatistics": ["p50"]})),
    )
    .await
    .unwrap();
    assert_eq!(out["Datapoints"][0]["ExtendedStatistics"]["p50"], 20.0);
    assert_eq!(
        crate::emf::report_duration(
            "/aws/lambda/g",
            "2026/11/29/[3]x",
            "REPORT RequestId: a\tDuration: 1.50 ms\t"
        ),
        Some(("g", "3", 1.5))
    );
    assert_eq!(
        crate::emf::report_duration(
            "/custom",
            "[1]x",
            "REPORT RequestId: a\tDuration: 1.50 ms\t"
        ),
        None
    );
}

/// The parsers never panic, on random bytes or on valid inputs with bytes
/// changed (a deterministic xorshift generator, so a failure repeats).
#[test]
fn parsers_survive_garbage() {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let cbor_seed = crate::cbor::encode(&json!({"Namespace": "N", "MetricData": [
        {"MetricName": "m", "Values": [1.0, 2.5], "Dimensions": [{"Name": "a", "Value": "b"}], "Timestamp": 1}]}));
    // gzip.compress(b"hello hello hello hello", mtime=0) from Python.
    let gzip_seed: &[u8] = &[
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xcb, 0x48, 0xcd, 0xc9, 0xc9,
        0x57, 0xc8, 0x40, 0x27, 0x01, 0xe3, 0x51, 0x3d, 0x8d, 0x17, 0x00, 0x00, 0x00,
    ];
    let emf_seed = br#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[["d"]],"Metrics":[{"Name":"m"}]}]},"m":[1,2],"d":"v"}"#;
    for round in 0..20_000 {
        let mut bytes: Vec<u8> = match round % 4 {
            0 => cbor_seed.clone(),
            1 => gzip_seed.to_vec(),
            2 => emf_seed.to_vec(),
            _ => (0..(next() % 64)).map(|_| next() as u8).collect(),
        };
        for _ in 0..(next() % 4) {
            if !bytes.is_empty() {
                let i = (next() as usize) % bytes.len();
                bytes[i] = next() as u8;
            }
        }
        if next() % 5 == 0 {
            let keep = (next() as usize) % (bytes.len() + 1);
            bytes.truncate(keep);
        }
        let _ = crate::cbor::decode(&bytes);
        let _ = crate::gzip::gunzip(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        let _ = crate::input::parse_iso(&text);
        let _ = crate::emf::extract(&text, 1_000);
        let _ = crate::stats::Stat::percentile(&text);
        let _ = crate::query::params_to_json(&[(text.to_string(), "v".into())]);
    }
}

/// Requests with values of the wrong type or out of range get errors, never
/// a panic: every field of valid requests replaced by odd values in turn.
#[tokio::test]
async fn odd_values_in_every_field() {
    let (_d, cw) = service();
    let t = now_s();
    let valid = [
        (
            "PutMetricData",
            json!({"Namespace": "N", "MetricData": [{"MetricName": "m", "Value": 1,
            "Dimensions": [{"Name": "a", "Value": "b"}], "Timestamp": t, "Unit": "Count", "StorageResolution": 1,
            "Values": [1], "Counts": [1], "StatisticValues": {"SampleCount": 1, "Sum": 1, "Minimum": 1, "Maximum": 1}}]}),
        ),
        (
            "GetMetricStatistics",
            json!({"Namespace": "N", "MetricName": "m", "StartTime": t - 60.0, "EndTime": t,
            "Period": 60, "Statistics": ["Sum"], "ExtendedStatistics": ["p9"], "Unit": "Count",
            "Dimensions": [{"Name": "a", "Value": "b"}]}),
        ),
        (
            "GetMetricData",
            json!({"StartTime": t - 60.0, "EndTime": t, "NextToken": "gmd-0", "ScanBy": "TimestampAscending",
            "MaxDatapoints": 5, "MetricDataQueries": [{"Id": "q", "ReturnData": true, "Label": "l", "MetricStat": {
                "Metric": {"Namespace": "N", "MetricName": "m", "Dimensions": [{"Name": "a", "Value": "b"}]},
                "Period": 60, "Stat": "p50", "Unit": "Count"}}]}),
        ),
        (
            "ListMetrics",
            json!({"Namespace": "N", "MetricName": "m", "RecentlyActive": "PT3H", "NextToken": "lm-0",
            "Dimensions": [{"Name": "a", "Value": "b"}]}),
        ),
    ];
    let odd = [
        json!(null),
        json!(-1),
        json!(0),
        json!(1e300),
        json!(-1e300),
        json!(9.2e18),
        json!(""),
        json!("x"),
        json!([]),
        json!({}),
        json!([null]),
        json!(true),
        json!("p100.5"),
        json!("1e999"),
        json!("-5"),
    ];
    fn paths(v: &Value, at: Vec<Value>, out: &mut Vec<Vec<Value>>) {
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    let mut p = at.clone();
                    p.push(json!(k));
                    out.push(p.clone());
                    paths(c, p, out);
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    let mut p = at.clone();
                    p.push(json!(i));
                    out.push(p.clone());
                    paths(c, p, out);
                }
            }
            _ => {}
        }
    }
    for (op, body) in valid {
        let mut all = Vec::new();
        paths(&body, Vec::new(), &mut all);
        for p in all {
            for o in &odd {
                let mut b = body.clone();
                let mut cur = &mut b;
                for k in &p {
                    cur = match k {
                        Value::String(s) => &mut cur[s.as_str()],
                        Value::Number(n) => &mut cur[n.as_u64().unwrap() as usize],
                        _ => unreachable!(),
                    };
                }
                *cur = o.clone();
                let r = cw
                    .call_json("us-east-1", op, b.to_string().as_bytes())
                    .await;
                if let Err(e) = r {
                    assert!(
                        e.status == 400 || e.status == 413,
                        "{op} {p:?} = {o}: {e:?}"
                    );
                    assert!(!e.message.is_empty());
                }
            }
        }
    }
}
