//! The S3 operations Step Functions workflows use, over S3's rest-xml
//! protocol with path-style URLs (`<endpoint>/<bucket>/<key>`), shaped as
//! the AWS SDK integration returns them (botocore `s3/2006-03-01`).

use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use quick_xml::events::Event;
use serde_json::{Map, Value, json};

use crate::{CallError, Upstream, exception_name};

/// Characters kept as they are in a key path (RFC 3986 unreserved and `/`).
const KEY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');
/// Characters kept in a query value.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

const OPERATIONS: [&str; 5] = [
    "GetObject",
    "PutObject",
    "ListObjectsV2",
    "HeadObject",
    "DeleteObject",
];

pub(crate) fn supports(action: &str) -> bool {
    OPERATIONS.contains(&action)
}

fn param<'a>(params: &'a Value, name: &str, prefix: &str) -> Result<&'a str, CallError> {
    params[name]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| CallError {
            error: format!("{prefix}.SdkClientException"),
            cause: format!("the parameter {name} is required and must be a string"),
        })
}

/// One element of an XML document.
#[derive(Debug, Default)]
struct Node {
    name: String,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
    fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }
}

/// Parses an XML document into a tree (namespaces dropped).
fn parse_xml(body: &[u8]) -> Result<Node, String> {
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut stack: Vec<Node> = vec![Node::default()];
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                stack.push(Node {
                    name,
                    ..Default::default()
                });
                if stack.len() > 64 {
                    return Err("XML nested too deeply".into());
                }
            }
            Ok(Event::Empty(e)) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if let Some(top) = stack.last_mut() {
                    top.children.push(Node {
                        name,
                        ..Default::default()
                    });
                }
            }
            Ok(Event::Text(t)) => {
                let s = t.xml10_content().map_err(|e| e.to_string())?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&s);
                }
            }
            Ok(Event::GeneralRef(r)) => {
                let name = String::from_utf8_lossy(&r).into_owned();
                let s = match name.as_str() {
                    "amp" => "&".to_string(),
                    "lt" => "<".to_string(),
                    "gt" => ">".to_string(),
                    "quot" => "\"".to_string(),
                    "apos" => "'".to_string(),
                    n => n
                        .strip_prefix("#x")
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .or_else(|| n.strip_prefix('#').and_then(|d| d.parse().ok()))
                        .and_then(char::from_u32)
                        .map(String::from)
                        .unwrap_or_default(),
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&s);
                }
            }
            Ok(Event::CData(t)) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Ok(Event::End(_)) => {
                if stack.len() > 1 {
                    let n = stack.pop().unwrap_or_default();
                    if let Some(top) = stack.last_mut() {
                        top.children.push(n);
                    }
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
        buf.clear();
    }
    let mut root = stack.into_iter().next().unwrap_or_default();
    Ok(root.children.pop().unwrap_or_default())
}

fn s3_error(status: u16, body: &[u8], prefix: &str) -> CallError {
    let (code, message) = match parse_xml(body) {
        Ok(n) if n.name == "Error" => (
            n.text_of("Code").unwrap_or("").to_string(),
            n.text_of("Message").unwrap_or("").to_string(),
        ),
        _ => (String::new(), String::new()),
    };
    // HEAD answers carry no body: name the status as S3 does.
    let code = if code.is_empty() {
        match status {
            404 => "NotFound".to_string(),
            403 => "AccessDenied".to_string(),
            s => format!("Http{s}"),
        }
    } else {
        code
    };
    CallError {
        error: format!("{prefix}.{}", exception_name(&code)),
        cause: format!("{message} (Service: S3, Status Code: {status}, Error Code: {code})"),
    }
}

fn header(a: &crate::Answer, name: &str) -> Option<String> {
    a.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The object metadata fields of GetObject / HeadObject answers.
fn object_fields(a: &crate::Answer) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(v) = header(a, "content-length").and_then(|v| v.parse::<u64>().ok()) {
        m.insert("ContentLength".into(), json!(v));
    }
    for (h, k) in [
        ("content-type", "ContentType"),
        ("etag", "ETag"),
        ("last-modified", "LastModified"),
        ("accept-ranges", "AcceptRanges"),
    ] {
        if let Some(v) = header(a, h) {
            m.insert(k.into(), json!(v));
        }
    }
    let metadata: Map<String, Value> = a
        .headers
        .iter()
        .filter_map(|(k, v)| {
            k.as_str()
                .strip_prefix("x-amz-meta-")
                .map(|n| (n.to_string(), json!(v.to_str().unwrap_or(""))))
        })
        .collect();
    m.insert("Metadata".into(), Value::Object(metadata));
    m
}

pub(crate) async fn call(
    up: &Upstream,
    region: &str,
    endpoint: &str,
    action: &str,
    params: &Value,
    prefix: &str,
) -> Result<Value, CallError> {
    if !supports(action) {
        return Err(CallError {
            error: "States.TaskFailed".into(),
            cause: format!(
                "stratus forwards these S3 actions: {}; not {action}.",
                OPERATIONS.join(", ")
            ),
        });
    }
    let bucket = param(params, "Bucket", prefix)?;
    let bucket = utf8_percent_encode(bucket, QUERY).to_string();
    match action {
        "ListObjectsV2" => {
            let mut q = vec!["list-type=2".to_string()];
            for (p, k) in [
                ("Prefix", "prefix"),
                ("ContinuationToken", "continuation-token"),
                ("Delimiter", "delimiter"),
                ("StartAfter", "start-after"),
            ] {
                if let Some(v) = params[p].as_str() {
                    q.push(format!("{k}={}", utf8_percent_encode(v, QUERY)));
                }
            }
            if let Some(n) = params["MaxKeys"].as_i64() {
                q.push(format!("max-keys={n}"));
            }
            let url = format!("{endpoint}/{bucket}?{}", q.join("&"));
            let a = up
                .send(region, "s3", "GET", &url, Vec::new(), Bytes::new(), prefix)
                .await?;
            if a.status >= 300 {
                return Err(s3_error(a.status, &a.body, prefix));
            }
            let n = parse_xml(&a.body).map_err(|e| CallError {
                error: format!("{prefix}.SdkClientException"),
                cause: format!("the upstream ListObjectsV2 answer is not XML: {e}"),
            })?;
            let contents: Vec<Value> = n
                .children
                .iter()
                .filter(|c| c.name == "Contents")
                .map(|c| {
                    json!({
                        "Key": c.text_of("Key").unwrap_or(""),
                        "LastModified": c.text_of("LastModified").unwrap_or(""),
                        "ETag": c.text_of("ETag").unwrap_or(""),
                        "Size": c.text_of("Size").and_then(|s| s.parse::<u64>().ok()).unwrap_or(0),
                        "StorageClass": c.text_of("StorageClass").unwrap_or("STANDARD"),
                    })
                })
                .collect();
            let mut out = json!({
                "IsTruncated": n.text_of("IsTruncated") == Some("true"),
                "Contents": contents,
                "Name": n.text_of("Name").unwrap_or(""),
                "Prefix": n.text_of("Prefix").unwrap_or(""),
                "MaxKeys": n.text_of("MaxKeys").and_then(|s| s.parse::<u64>().ok()).unwrap_or(1000),
                "KeyCount": n.text_of("KeyCount").and_then(|s| s.parse::<u64>().ok()).unwrap_or(0),
            });
            if let Some(t) = n.text_of("NextContinuationToken") {
                out["NextContinuationToken"] = json!(t);
            }
            Ok(out)
        }
        _ => {
            let key = param(params, "Key", prefix)?;
            let url = format!("{endpoint}/{bucket}/{}", utf8_percent_encode(key, KEY));
            match action {
                "GetObject" => {
                    let a = up
                        .send(region, "s3", "GET", &url, Vec::new(), Bytes::new(), prefix)
                        .await?;
                    if a.status >= 300 {
                        return Err(s3_error(a.status, &a.body, prefix));
                    }
                    let mut m = object_fields(&a);
                    m.insert("Body".into(), json!(String::from_utf8_lossy(&a.body)));
                    Ok(Value::Object(m))
                }
                "HeadObject" => {
                    let a = up
                        .send(region, "s3", "HEAD", &url, Vec::new(), Bytes::new(), prefix)
                        .await?;
                    if a.status >= 300 {
                        return Err(s3_error(a.status, &a.body, prefix));
                    }
                    Ok(Value::Object(object_fields(&a)))
                }
                "DeleteObject" => {
                    let a = up
                        .send(
                            region,
                            "s3",
                            "DELETE",
                            &url,
                            Vec::new(),
                            Bytes::new(),
                            prefix,
                        )
                        .await?;
                    if a.status >= 300 {
                        return Err(s3_error(a.status, &a.body, prefix));
                    }
                    Ok(json!({}))
                }
                _ => {
                    // PutObject: a string Body is stored as is; any other
                    // JSON value as its JSON text (as Step Functions does).
                    let body = match &params["Body"] {
                        Value::String(s) => s.clone(),
                        Value::Null => String::new(),
                        v => v.to_string(),
                    };
                    let mut headers = Vec::new();
                    if let Some(ct) = params["ContentType"].as_str() {
                        headers.push(("content-type".to_string(), ct.to_string()));
                    }
                    let a = up
                        .send(
                            region,
                            "s3",
                            "PUT",
                            &url,
                            headers,
                            Bytes::from(body),
                            prefix,
                        )
                        .await?;
                    if a.status >= 300 {
                        return Err(s3_error(a.status, &a.body, prefix));
                    }
                    let mut out = json!({});
                    if let Some(e) = header(&a, "etag") {
                        out["ETag"] = json!(e);
                    }
                    Ok(out)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_list_results_and_errors() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>in/</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>
<Contents><Key>in/a&amp;b.json</Key><Size>12</Size><ETag>&quot;x&quot;</ETag></Contents><Contents><Key>in/c.csv</Key><Size>3</Size></Contents></ListBucketResult>"#;
        let n = parse_xml(xml).unwrap();
        assert_eq!(n.name, "ListBucketResult");
        let keys: Vec<_> = n
            .children
            .iter()
            .filter(|c| c.name == "Contents")
            .map(|c| c.text_of("Key").unwrap().to_string())
            .collect();
        assert_eq!(keys, ["in/a&b.json", "in/c.csv"]);
        assert_eq!(
            n.children
                .iter()
                .find(|c| c.name == "Contents")
                .unwrap()
                .text_of("ETag"),
            Some("\"x\"")
        );
        let e = s3_error(404, b"<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>", "S3");
        assert_eq!(e.error, "S3.NoSuchKeyException");
        assert_eq!(s3_error(404, b"", "S3").error, "S3.NotFoundException");
        assert!(parse_xml(b"<a><b></a>").is_err() || parse_xml(b"<a><b></a>").is_ok());
    }
}
