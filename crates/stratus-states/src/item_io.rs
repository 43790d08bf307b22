//! A Distributed Map's ItemReader and ResultWriter, over S3 through the
//! upstream endpoint (`--upstream-endpoint`), as the Step Functions
//! Developer Guide describes them ("ItemReader (Map)", "ResultWriter
//! (Map)"):
//!
//! - `arn:aws:states:::s3:listObjectsV2` with `Bucket` / `Prefix`: one item
//!   per object (`Key`, `Size`, `ETag`, `LastModified`, `StorageClass`), every
//!   page of the listing.
//! - `arn:aws:states:::s3:getObject` with `Bucket` / `Key` and
//!   `ReaderConfig.InputType`: `JSON` (the object is a JSON array), `JSONL`
//!   (one JSON value per line), `CSV` (`CSVHeaderLocation` `FIRST_ROW` or
//!   `GIVEN` with `CSVHeaders`; `CSVDelimiter` `COMMA`, `PIPE`, `SEMICOLON`,
//!   `SPACE`, `TAB`; every value a string), `MANIFEST` (an S3 inventory
//!   `manifest.json`: its CSV data files, one item per row with `Bucket` and
//!   `Key`; gzip-compressed data files are refused).
//! - `arn:aws:states:::s3:putObject` (ResultWriter) with `Bucket` / `Prefix`:
//!   writes `<Prefix>/<map run id>/SUCCEEDED_0.json`, `FAILED_0.json`,
//!   `PENDING_0.json` and a `manifest.json` naming them, and answers
//!   `{"Bucket", "Key"}` of the manifest.

use serde_json::{Value, json};
use stratus_asl::Failure;
use stratus_upstream::Upstream;

/// Whether `resource` is an ItemReader or ResultWriter resource this module
/// runs.
pub(crate) fn is_item_io(resource: &str) -> bool {
    matches!(
        resource,
        "arn:aws:states:::s3:listObjectsV2"
            | "arn:aws:states:::s3:getObject"
            | "arn:aws:states:::s3:putObject"
    )
}

fn fail(error: &str, cause: impl Into<String>) -> Failure {
    Failure {
        error: error.to_string(),
        cause: cause.into(),
    }
}

fn from_call(e: stratus_upstream::CallError) -> Failure {
    fail(&e.error, e.cause)
}

/// Reads the items of an ItemReader. `input` is the reader's evaluated
/// Parameters plus `ReaderConfig`.
///
/// Errors: the upstream's errors (`S3.NoSuchKeyException`, ...), or
/// `States.ItemReaderFailed` for content that is not what `InputType` says.
pub(crate) async fn read_items(
    up: &Upstream,
    region: &str,
    resource: &str,
    input: &Value,
) -> Result<Value, Failure> {
    let config = input.get("ReaderConfig").cloned().unwrap_or(Value::Null);
    let mut params = input.clone();
    if let Value::Object(o) = &mut params {
        o.remove("ReaderConfig");
    }
    match resource {
        "arn:aws:states:::s3:listObjectsV2" => {
            let mut items = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let mut p = params.clone();
                if let (Value::Object(o), Some(t)) = (&mut p, &token) {
                    o.insert("ContinuationToken".into(), json!(t));
                }
                let page = up
                    .call_sdk(region, "s3", "listObjectsV2", &p)
                    .await
                    .map_err(from_call)?;
                if let Some(c) = page["Contents"].as_array() {
                    items.extend(c.iter().cloned());
                }
                match page["NextContinuationToken"].as_str() {
                    Some(t) if page["IsTruncated"] == json!(true) => token = Some(t.to_string()),
                    _ => break,
                }
            }
            Ok(Value::Array(items))
        }
        "arn:aws:states:::s3:getObject" => {
            let obj = up
                .call_sdk(region, "s3", "getObject", &params)
                .await
                .map_err(from_call)?;
            let body = obj["Body"].as_str().unwrap_or("");
            let input_type = config["InputType"].as_str().unwrap_or("JSON");
            parse_items(body, input_type, &config, up, region).await
        }
        other => Err(fail(
            "States.ItemReaderFailed",
            format!("stratus cannot read items with the resource '{other}'"),
        )),
    }
}

/// Parses an object's body into items by `InputType`.
async fn parse_items(
    body: &str,
    input_type: &str,
    config: &Value,
    up: &Upstream,
    region: &str,
) -> Result<Value, Failure> {
    let bad = |what: String| fail("States.ItemReaderFailed", what);
    match input_type {
        "JSON" => match serde_json::from_str::<Value>(body) {
            Ok(Value::Array(a)) => Ok(Value::Array(a)),
            Ok(_) => Err(bad(
                "The object read with InputType JSON must contain a JSON array".into(),
            )),
            Err(e) => Err(bad(format!(
                "The object read with InputType JSON is not valid JSON: {e}"
            ))),
        },
        "JSONL" => body
            .lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str::<Value>(l).map_err(|e| {
                    bad(format!(
                        "Line {} of the JSONL object is not valid JSON: {e}",
                        i + 1
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        "CSV" => parse_csv(body, config).map(Value::Array),
        "MANIFEST" => {
            let manifest: Value = serde_json::from_str(body)
                .map_err(|e| bad(format!("The S3 inventory manifest is not valid JSON: {e}")))?;
            if manifest["fileFormat"].as_str().is_some_and(|f| f != "CSV") {
                return Err(bad("Only CSV S3 inventories can be read".into()));
            }
            let bucket = manifest["destinationBucket"]
                .as_str()
                .map(|b| b.trim_start_matches("arn:aws:s3:::").to_string())
                .unwrap_or_default();
            let columns: Vec<String> = manifest["fileSchema"]
                .as_str()
                .unwrap_or("Bucket, Key")
                .split(',')
                .map(|c| c.trim().to_string())
                .collect();
            let mut items = Vec::new();
            for f in manifest["files"].as_array().into_iter().flatten() {
                let key = f["key"].as_str().unwrap_or("");
                if key.ends_with(".gz") {
                    return Err(bad(format!(
                        "The inventory file {key} is gzip-compressed; stratus reads uncompressed CSV inventory files only"
                    )));
                }
                let obj = up
                    .call_sdk(
                        region,
                        "s3",
                        "getObject",
                        &json!({"Bucket": bucket, "Key": key}),
                    )
                    .await
                    .map_err(from_call)?;
                let cfg = json!({"CSVHeaderLocation": "GIVEN", "CSVHeaders": columns});
                items.extend(parse_csv(obj["Body"].as_str().unwrap_or(""), &cfg)?);
            }
            Ok(Value::Array(items))
        }
        other => Err(bad(format!(
            "InputType must be one of CSV, JSON, JSONL, MANIFEST, not '{other}'"
        ))),
    }
}

/// CSV rows as objects of strings, headers from the first row or from
/// `CSVHeaders`.
fn parse_csv(body: &str, config: &Value) -> Result<Vec<Value>, Failure> {
    let bad = |what: String| fail("States.ItemReaderFailed", what);
    let delimiter = match config["CSVDelimiter"].as_str().unwrap_or("COMMA") {
        "COMMA" => b',',
        "PIPE" => b'|',
        "SEMICOLON" => b';',
        "SPACE" => b' ',
        "TAB" => b'\t',
        other => return Err(bad(format!("Unknown CSVDelimiter '{other}'"))),
    };
    let given = config["CSVHeaderLocation"].as_str() == Some("GIVEN");
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(!given)
        .flexible(true)
        .from_reader(body.as_bytes());
    let headers: Vec<String> = if given {
        config["CSVHeaders"]
            .as_array()
            .ok_or_else(|| bad("CSVHeaderLocation GIVEN needs CSVHeaders".into()))?
            .iter()
            .map(|h| h.as_str().unwrap_or("").to_string())
            .collect()
    } else {
        reader
            .headers()
            .map_err(|e| bad(format!("The CSV header row cannot be read: {e}")))?
            .iter()
            .map(str::to_string)
            .collect()
    };
    let mut items = Vec::new();
    for (n, row) in reader.records().enumerate() {
        let row = row.map_err(|e| bad(format!("CSV row {} cannot be read: {e}", n + 1)))?;
        let mut o = serde_json::Map::new();
        for (i, h) in headers.iter().enumerate() {
            o.insert(h.clone(), json!(row.get(i).unwrap_or("")));
        }
        items.push(Value::Object(o));
    }
    Ok(items)
}

/// Writes a map run's results (ResultWriter). `input` is the writer's
/// evaluated Parameters plus `MapRunArn`, `Results` and `WriterConfig`.
///
/// Errors: the upstream's errors, or `States.ResultWriterFailed` without a
/// `Bucket`.
pub(crate) async fn write_results(
    up: &Upstream,
    region: &str,
    input: &Value,
) -> Result<Value, Failure> {
    let bucket = input["Bucket"].as_str().ok_or_else(|| {
        fail(
            "States.ResultWriterFailed",
            "The ResultWriter needs a Bucket",
        )
    })?;
    let prefix = input["Prefix"].as_str().unwrap_or("");
    let map_run_arn = input["MapRunArn"].as_str().unwrap_or("");
    let run_id = map_run_arn.rsplit(':').next().unwrap_or("map-run");
    let base = if prefix.is_empty() {
        run_id.to_string()
    } else {
        format!("{}/{run_id}", prefix.trim_end_matches('/'))
    };
    let (mut succeeded, mut failed) = (Vec::new(), Vec::new());
    for (i, r) in input["Results"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        // A failed item's result is its error output {"Error", "Cause"}.
        let is_failure = r
            .as_object()
            .is_some_and(|o| o.len() == 2 && o.contains_key("Error") && o.contains_key("Cause"));
        let mut entry = json!({
            "ExecutionArn": crate::map_runs::child_execution_arn(map_run_arn, i),
            "Name": crate::map_runs::child_name(map_run_arn, i),
            "Status": if is_failure { "FAILED" } else { "SUCCEEDED" },
            "InputDetails": {"Included": false},
            "RedriveCount": 0,
            "RedriveStatus": "NOT_REDRIVABLE",
        });
        if is_failure {
            entry["Error"] = r["Error"].clone();
            entry["Cause"] = r["Cause"].clone();
            failed.push(entry);
        } else {
            entry["Output"] = json!(r.to_string());
            entry["OutputDetails"] = json!({"Included": true});
            succeeded.push(entry);
        }
    }
    let mut files = json!({"SUCCEEDED": [], "FAILED": [], "PENDING": []});
    for (status, entries) in [
        ("SUCCEEDED", succeeded),
        ("FAILED", failed),
        ("PENDING", Vec::new()),
    ] {
        let key = format!("{base}/{status}_0.json");
        let body = Value::Array(entries).to_string();
        let size = body.len();
        up.call_sdk(
            region,
            "s3",
            "putObject",
            &json!({"Bucket": bucket, "Key": key, "Body": body, "ContentType": "application/json"}),
        )
        .await
        .map_err(from_call)?;
        if let Some(a) = files[status].as_array_mut() {
            a.push(json!({"Key": key, "Size": size}));
        }
    }
    let manifest_key = format!("{base}/manifest.json");
    let manifest = json!({
        "DestinationBucket": bucket,
        "MapRunArn": map_run_arn,
        "ResultFiles": files,
    });
    up.call_sdk(
        region,
        "s3",
        "putObject",
        &json!({"Bucket": bucket, "Key": manifest_key, "Body": manifest.to_string(), "ContentType": "application/json"}),
    )
    .await
    .map_err(from_call)?;
    Ok(json!({"Bucket": bucket, "Key": manifest_key}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_become_objects_of_strings() {
        let items = parse_csv("id,name\n1,apple\n2,\"b,c\"\n", &json!({})).unwrap();
        assert_eq!(
            items,
            vec![
                json!({"id": "1", "name": "apple"}),
                json!({"id": "2", "name": "b,c"})
            ]
        );
        let items = parse_csv("1|x\n", &json!({"CSVHeaderLocation": "GIVEN", "CSVHeaders": ["n", "v"], "CSVDelimiter": "PIPE"})).unwrap();
        assert_eq!(items, vec![json!({"n": "1", "v": "x"})]);
        assert!(parse_csv("a\n", &json!({"CSVDelimiter": "NOPE"})).is_err());
    }

    #[tokio::test]
    async fn json_and_jsonl_bodies() {
        let up = Upstream::new(Default::default());
        let v = parse_items("[1, {\"a\": 2}]", "JSON", &Value::Null, &up, "us-east-1")
            .await
            .unwrap();
        assert_eq!(v, json!([1, {"a": 2}]));
        let v = parse_items(
            "{\"a\":1}\n\n{\"a\":2}\n",
            "JSONL",
            &Value::Null,
            &up,
            "us-east-1",
        )
        .await
        .unwrap();
        assert_eq!(v, json!([{"a": 1}, {"a": 2}]));
        assert_eq!(
            parse_items("{}", "JSON", &Value::Null, &up, "us-east-1")
                .await
                .unwrap_err()
                .error,
            "States.ItemReaderFailed"
        );
        assert!(
            parse_items("x", "XML", &Value::Null, &up, "us-east-1")
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn without_an_upstream_reading_fails_with_advice() {
        let up = Upstream::new(Default::default());
        let e = read_items(
            &up,
            "us-east-1",
            "arn:aws:states:::s3:listObjectsV2",
            &json!({"Bucket": "b"}),
        )
        .await
        .unwrap_err();
        assert_eq!(e.error, "States.TaskFailed");
        assert!(e.cause.contains("--upstream-endpoint"));
    }
}
