//! The engine with a fixed clock: scheduled actions run at their time (not a
//! millisecond before), once, honour StartTime / EndTime and suspension, and
//! what is stored survives a new service over the same store. No sleeping:
//! time is whatever the test says it is.

use std::io::{Cursor, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use serde_json::{Value, json};
use stratus_autoscaling::AutoScaling;
use stratus_core::Config;
use stratus_core::config::Isolation;
use stratus_lambda::Lambda;
use stratus_store::Store;

const REGION: &str = "us-east-1";
const RID: &str = "function:f:live";
const DIM: &str = "lambda:function:ProvisionedConcurrency";

/// 2030-01-01T07:59:00Z.
const T0: i64 = 1_893_484_740_000;
const MINUTE: i64 = 60_000;
const DAY: i64 = 24 * 60 * MINUTE;

fn zip_of(name: &str, data: &[u8]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    w.start_file(name, zip::write::SimpleFileOptions::default())
        .unwrap();
    w.write_all(data).unwrap();
    w.finish().unwrap().into_inner()
}

struct World {
    _dir: tempfile::TempDir,
    lambda: Arc<Lambda>,
    store: Store,
    config: Config,
    clock: Arc<AtomicI64>,
    aas: Arc<AutoScaling>,
}

impl World {
    async fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::with_data_dir(dir.path().to_path_buf());
        config.isolation = Some(Isolation::Process);
        let store = Store::open(dir.path()).unwrap();
        let lambda = Lambda::new(config.clone(), store.clone()).unwrap();
        let code = zip_of(
            "app.py",
            b"def handler(event, context):\n    return event\n",
        );
        let b64 = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(code)
        };
        let body = json!({
            "FunctionName": "f", "Runtime": "python3.12", "Handler": "app.handler",
            "Role": "arn:aws:iam::123456789012:role/lambda-role", "Code": {"ZipFile": b64},
        });
        lambda
            .create_function(REGION, body.to_string().as_bytes())
            .await
            .unwrap();
        // Publishing waits for nothing the engine cares about; the version
        // and alias only have to exist.
        for _ in 0..400 {
            let c = lambda
                .get_function_configuration(REGION, "f", None)
                .unwrap();
            if c["State"] == "Active" {
                break;
            }
            tokio::task::yield_now().await;
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        lambda.publish_version(REGION, "f", b"{}").await.unwrap();
        lambda
            .create_alias(REGION, "f", br#"{"Name": "live", "FunctionVersion": "1"}"#)
            .await
            .unwrap();
        let clock = Arc::new(AtomicI64::new(T0));
        let aas = Self::service(&lambda, &store, &config, &clock);
        World {
            _dir: dir,
            lambda,
            store,
            config,
            clock,
            aas,
        }
    }

    fn service(
        lambda: &Arc<Lambda>,
        store: &Store,
        config: &Config,
        clock: &Arc<AtomicI64>,
    ) -> Arc<AutoScaling> {
        let c = clock.clone();
        AutoScaling::with_clock(
            lambda.clone(),
            store.clone(),
            config,
            Arc::new(move || c.load(Ordering::SeqCst)),
        )
    }

    async fn call(&self, op: &str, body: Value) -> Value {
        self.aas
            .call(REGION, op, body.to_string().as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{op}: {e}"))
    }

    /// Advances the clock to `t` and runs one engine tick.
    async fn tick(&self, t: i64) {
        self.clock.store(t, Ordering::SeqCst);
        self.aas.tick(t).await;
    }

    async fn activities(&self) -> Vec<Value> {
        self.call(
            "DescribeScalingActivities",
            json!({"ServiceNamespace": "lambda", "ResourceId": RID}),
        )
        .await["ScalingActivities"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn limits(&self) -> (i64, i64) {
        let v = self
            .call(
                "DescribeScalableTargets",
                json!({"ServiceNamespace": "lambda", "ResourceIds": [RID]}),
            )
            .await;
        let t = &v["ScalableTargets"][0];
        (
            t["MinCapacity"].as_i64().unwrap(),
            t["MaxCapacity"].as_i64().unwrap(),
        )
    }

    async fn schedule(&self, name: &str, extra: Value) {
        let mut body = json!({
            "ServiceNamespace": "lambda", "ResourceId": RID, "ScalableDimension": DIM,
            "ScheduledActionName": name,
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        self.call("PutScheduledAction", body).await;
    }
}

fn target(min: i64, max: i64) -> Value {
    json!({"ServiceNamespace": "lambda", "ResourceId": RID, "ScalableDimension": DIM,
           "MinCapacity": min, "MaxCapacity": max})
}

#[tokio::test(flavor = "multi_thread")]
async fn cron_action_runs_at_its_minute_once_a_day() {
    let w = World::new().await;
    w.call("RegisterScalableTarget", target(0, 0)).await;
    w.schedule(
        "morning",
        json!({"Schedule": "cron(0 8 * * ? *)", "ScalableTargetAction": {"MinCapacity": 0, "MaxCapacity": 7}}),
    )
    .await;

    w.tick(T0 + MINUTE - 1).await; // 07:59:59.999
    assert!(w.activities().await.is_empty());
    assert_eq!(w.limits().await, (0, 0));

    w.tick(T0 + MINUTE).await; // 08:00:00
    let acts = w.activities().await;
    assert_eq!(acts.len(), 1, "{acts:?}");
    assert_eq!(
        acts[0]["Description"],
        "Setting min capacity to 0 and max capacity to 7"
    );
    assert_eq!(
        acts[0]["Cause"],
        "scheduled action name morning was triggered"
    );
    assert_eq!(acts[0]["StatusCode"], "Successful");
    assert_eq!(acts[0]["StartTime"], json!((T0 + MINUTE) as f64 / 1000.0));
    assert_eq!(w.limits().await, (0, 7));

    // Once: not again that day, again the next morning.
    w.tick(T0 + 2 * MINUTE).await;
    w.tick(T0 + DAY).await;
    assert_eq!(w.activities().await.len(), 1);
    w.tick(T0 + DAY + MINUTE).await;
    assert_eq!(w.activities().await.len(), 2);

    // Suspended: skipped, and not run late when resumed.
    w.call(
        "RegisterScalableTarget",
        json!({"ServiceNamespace": "lambda", "ResourceId": RID, "ScalableDimension": DIM,
               "SuspendedState": {"ScheduledScalingSuspended": true}}),
    )
    .await;
    w.tick(T0 + 2 * DAY + MINUTE).await;
    assert_eq!(w.activities().await.len(), 2);
    w.call(
        "RegisterScalableTarget",
        json!({"ServiceNamespace": "lambda", "ResourceId": RID, "ScalableDimension": DIM,
               "SuspendedState": {"ScheduledScalingSuspended": false}}),
    )
    .await;
    w.tick(T0 + 2 * DAY + 2 * MINUTE).await;
    assert_eq!(w.activities().await.len(), 2);
    w.tick(T0 + 3 * DAY + MINUTE).await;
    assert_eq!(w.activities().await.len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_and_at_with_start_and_end_times() {
    let w = World::new().await;
    w.call("RegisterScalableTarget", target(0, 0)).await;
    // rate(5 minutes) from StartTime T0+10 min until T0+21 min: 10, 15, 20.
    w.schedule(
        "every5",
        json!({"Schedule": "rate(5 minutes)", "StartTime": (T0 + 10 * MINUTE) as f64 / 1000.0,
               "EndTime": (T0 + 21 * MINUTE) as f64 / 1000.0,
               "ScalableTargetAction": {"MaxCapacity": 1}}),
    )
    .await;
    let mut fired = Vec::new();
    for m in 0..40 {
        let before = w.activities().await.len();
        w.tick(T0 + m * MINUTE).await;
        if w.activities().await.len() > before {
            fired.push(m);
        }
    }
    assert_eq!(fired, [10, 15, 20]);
    let a = &w.activities().await[0];
    assert_eq!(a["Description"], "Setting max capacity to 1");

    // at(): once, at the wall-clock time of its time zone (Tokyo is UTC+9:
    // 2030-01-01T17:45:00 there is 08:45 UTC, T0 + 46 minutes).
    w.schedule(
        "once",
        json!({"Schedule": "at(2030-01-01T17:45:00)", "Timezone": "Asia/Tokyo",
               "ScalableTargetAction": {"MaxCapacity": 2}}),
    )
    .await;
    w.tick(T0 + 46 * MINUTE - 1).await;
    assert_eq!(w.limits().await, (0, 1));
    w.tick(T0 + 46 * MINUTE).await;
    assert_eq!(w.limits().await, (0, 2));
    let n = w.activities().await.len();
    w.tick(T0 + 30 * DAY).await;
    assert_eq!(w.activities().await.len(), n);
    // Activities older than six weeks are forgotten.
    w.tick(T0 + 60 * DAY).await;
    assert!(w.activities().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn state_survives_a_new_service_and_a_missed_run_happens_once() {
    let w = World::new().await;
    w.call("RegisterScalableTarget", target(0, 0)).await;
    w.schedule(
        "morning",
        json!({"Schedule": "cron(0 8 * * ? *)", "ScalableTargetAction": {"MaxCapacity": 3}}),
    )
    .await;
    let before = w
        .call(
            "DescribeScheduledActions",
            json!({"ServiceNamespace": "lambda"}),
        )
        .await;
    // "Restart": a new service over the same store; the server was down
    // across two mornings.
    let again = World::service(&w.lambda, &w.store, &w.config, &w.clock);
    let w = World { aas: again, ..w };
    assert_eq!(
        w.call(
            "DescribeScheduledActions",
            json!({"ServiceNamespace": "lambda"})
        )
        .await,
        before
    );
    w.tick(T0 + 2 * DAY + 5 * MINUTE).await;
    assert_eq!(w.activities().await.len(), 1);
    assert_eq!(w.limits().await, (0, 3));
    w.tick(T0 + 2 * DAY + 6 * MINUTE).await;
    assert_eq!(w.activities().await.len(), 1);
}
