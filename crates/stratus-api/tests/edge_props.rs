//! Property tests for the edge: no request can make the server panic, hang or
//! answer with anything but a proper AWS response.
//!
//! The router runs in-process on a temporary data directory and every request
//! goes through `tower::ServiceExt::oneshot` on a clone of it. For every
//! response we check:
//! - the status is 2xx or 4xx (a 5xx fails the test: there is no documented
//!   `ServiceException` a client can provoke on a healthy data directory);
//! - every response carries `x-amzn-RequestId`;
//! - a 4xx carries a non-empty, known `x-amzn-ErrorType` and a JSON body
//!   `{"Type": "User", "message": "<non-empty>"}`;
//! - a failed request changed nothing (function list, the target function's
//!   `RevisionId` and tags are as before);
//! - the server still answers `GET /_stratus/health` with 200 afterwards.
//!
//! Every request runs under a timeout, so a hang fails the test rather than
//! blocking it.

use std::io::{Cursor, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use base64::Engine;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestCaseError, TestRunner};
use serde_json::{Value, json};
use stratus_api::{Edge, router};
use stratus_lambda::Lambda;
use tower::ServiceExt;
use zip::ZipWriter;
use zip::write::SimpleFileOptions;

/// No single request may take longer than this (the target function echoes
/// its event and has the default 3 s timeout).
const REQUEST_LIMIT: Duration = Duration::from_secs(30);

const ACCOUNT: &str = "123456789012";
const TARGET: &str = "fuzz-target";
const ROLE: &str = "arn:aws:iam::123456789012:role/lambda-role";

/// Error codes Lambda (botocore `lambda/2015-03-31`) and its front end use.
const KNOWN_CODES: &[&str] = &[
    "AccessDeniedException",
    "InvalidParameterValueException",
    "InvalidRequestContentException",
    "PreconditionFailedException",
    "RequestEntityTooLargeException",
    "RequestTooLargeException",
    "ResourceConflictException",
    "ResourceNotFoundException",
    "TooManyRequestsException",
    "UnknownOperationException",
    "UnsupportedMediaTypeException",
    "ValidationException",
];

// ---------------------------------------------------------------------------
// The server under test

struct Server {
    rt: tokio::runtime::Runtime,
    lambda: Arc<Lambda>,
    app: Router,
    _dir: tempfile::TempDir,
}

#[derive(Clone)]
struct Req {
    method: Method,
    /// Path and query, already percent-encoded.
    uri: String,
    headers: Vec<(String, HeaderValue)>,
    body: Bytes,
}

/// Shows at most 500 bytes of the body, so a failing 100 kB case stays
/// readable.
impl std::fmt::Debug for Req {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = &self.body[..self.body.len().min(500)];
        f.debug_struct("Req")
            .field("method", &self.method)
            .field("uri", &self.uri)
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .field("body", &String::from_utf8_lossy(shown))
            .finish()
    }
}

impl Req {
    fn new(method: Method, uri: impl Into<String>) -> Req {
        Req {
            method,
            uri: uri.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }
    fn body(mut self, b: impl Into<Bytes>) -> Req {
        self.body = b.into();
        self
    }
    fn json(self, v: &Value) -> Req {
        self.body(v.to_string())
    }
    fn header(mut self, k: &str, v: &str) -> Req {
        self.headers
            .push((k.to_string(), HeaderValue::from_str(v).unwrap()));
        self
    }
}

#[derive(Debug)]
struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    fn error_type(&self) -> &str {
        self.headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    fn brief(&self) -> String {
        let body = String::from_utf8_lossy(&self.body);
        let body: String = body.chars().take(300).collect();
        format!("{} [{}] {body}", self.status, self.error_type())
    }
}

impl Server {
    fn new() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let data = dir.path().to_path_buf();
        let (lambda, app) = rt.block_on(async {
            let config = stratus_core::Config::with_data_dir(data.clone());
            let store = stratus_store::Store::open(&data).unwrap();
            let lambda = Lambda::new(config, store).unwrap();
            let app = router(Edge {
                lambda: lambda.clone(),
                health: Arc::new(json!({"isolation": "process"})),
            });
            (lambda, app)
        });
        Server {
            rt,
            lambda,
            app,
            _dir: dir,
        }
    }

    fn send(&self, r: &Req) -> Resp {
        let mut b = Request::builder().method(r.method.clone()).uri(&r.uri);
        for (k, v) in &r.headers {
            b = b.header(k, v.clone());
        }
        let req = b.body(Body::from(r.body.clone())).unwrap_or_else(|e| {
            panic!("test built an invalid request {} {}: {e}", r.method, r.uri)
        });
        let app = self.app.clone();
        self.rt.block_on(async {
            tokio::time::timeout(REQUEST_LIMIT, async move {
                let resp = app.oneshot(req).await.unwrap();
                let (parts, body) = resp.into_parts();
                let body = axum::body::to_bytes(body, usize::MAX)
                    .await
                    .expect("response body");
                Resp {
                    status: parts.status,
                    headers: parts.headers,
                    body,
                }
            })
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "request hung for {REQUEST_LIMIT:?}: {} {} ({} body bytes)",
                    r.method,
                    r.uri,
                    r.body.len()
                )
            })
        })
    }

    /// Sends and checks the response is a proper AWS answer.
    fn call(&self, r: &Req) -> Resp {
        let resp = self.send(r);
        if let Err(e) = check_response(r, &resp) {
            panic!("{e}");
        }
        resp
    }

    fn healthy(&self) -> Result<(), String> {
        let r = self.send(&Req::new(Method::GET, "/_stratus/health"));
        if r.status != StatusCode::OK || r.json()["status"] != "ok" {
            return Err(format!("health check failed: {}", r.brief()));
        }
        Ok(())
    }

    /// Function names in a region (the region of `auth`, default us-east-1).
    /// Every function name, following `NextMarker` (ListFunctions answers
    /// at most 50 per page).
    fn function_names(&self, auth: Option<&HeaderValue>) -> Vec<String> {
        let mut names = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let uri = match &marker {
                None => "/2015-03-31/functions".to_string(),
                Some(m) => format!(
                    "/2015-03-31/functions?Marker={}",
                    m.replace('+', "%2B")
                        .replace('/', "%2F")
                        .replace('=', "%3D")
                ),
            };
            let mut req = Req::new(Method::GET, uri);
            if let Some(a) = auth {
                req.headers.push(("authorization".into(), a.clone()));
            }
            let r = self.send(&req);
            assert_eq!(r.status, StatusCode::OK, "ListFunctions: {}", r.brief());
            let v = r.json();
            names.extend(
                v["Functions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f["FunctionName"].as_str().unwrap().to_string()),
            );
            match v["NextMarker"].as_str() {
                Some(m) => marker = Some(m.to_string()),
                None => return names,
            }
        }
    }

    fn get_config(&self, name: &str) -> Resp {
        self.send(&Req::new(
            Method::GET,
            format!("/2015-03-31/functions/{name}/configuration"),
        ))
    }

    /// What a failed request must leave untouched.
    fn snapshot(&self, auth: Option<&HeaderValue>) -> Snapshot {
        let target = self.get_config(TARGET);
        let tags = self.send(&Req::new(
            Method::GET,
            format!("/2017-03-31/tags/{}", target_arn()),
        ));
        Snapshot {
            functions: self.function_names(auth),
            default_region_functions: self.function_names(None),
            target_revision: (target.status == StatusCode::OK)
                .then(|| target.json()["RevisionId"].as_str().unwrap().to_string()),
            target_tags: (tags.status == StatusCode::OK).then(|| tags.json()["Tags"].clone()),
        }
    }

    /// Creates the echo function the fuzzers aim at and waits (through a real
    /// invoke, which waits for the function to become Active) until it runs.
    fn create_target(&self) {
        let r = self.call(&create_req(TARGET, &python_zip_b64()));
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.brief());
        let r = self.call(
            &Req::new(
                Method::POST,
                format!("/2015-03-31/functions/{TARGET}/invocations"),
            )
            .body(r#"{"hello": "world"}"#),
        );
        assert_eq!(r.status, StatusCode::OK, "{}", r.brief());
        assert!(
            r.headers.get("x-amz-function-error").is_none(),
            "{}",
            r.brief()
        );
        assert_eq!(r.json(), json!({"hello": "world"}));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let lambda = self.lambda.clone();
        self.rt.block_on(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), lambda.shutdown()).await;
        });
    }
}

#[derive(Debug, PartialEq)]
struct Snapshot {
    functions: Vec<String>,
    default_region_functions: Vec<String>,
    target_revision: Option<String>,
    target_tags: Option<Value>,
}

fn target_arn() -> String {
    format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:{TARGET}")
}

/// The checks every response must pass.
fn check_response(req: &Req, r: &Resp) -> Result<(), String> {
    let ctx = || {
        format!(
            "{} {} (headers {:?}, body {:?}) -> {}",
            req.method,
            req.uri,
            req.headers,
            String::from_utf8_lossy(&req.body[..req.body.len().min(200)]),
            r.brief()
        )
    };
    if r.status.is_server_error() {
        return Err(format!("5xx answer: {}", ctx()));
    }
    if !(r.status.is_success() || r.status.is_client_error()) {
        return Err(format!("status is neither 2xx nor 4xx: {}", ctx()));
    }
    if r.headers
        .get("x-amzn-requestid")
        .is_none_or(|v| v.is_empty())
    {
        return Err(format!("no x-amzn-RequestId: {}", ctx()));
    }
    if r.status.is_client_error() {
        let code = r.error_type();
        if code.is_empty() {
            return Err(format!("4xx without x-amzn-ErrorType: {}", ctx()));
        }
        if !KNOWN_CODES.contains(&code) {
            return Err(format!("unknown error code {code:?}: {}", ctx()));
        }
        if req.method == Method::HEAD {
            return Ok(());
        }
        let ct = r
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct.starts_with("application/json") {
            return Err(format!("4xx content-type {ct:?}: {}", ctx()));
        }
        let v: Value = serde_json::from_slice(&r.body)
            .map_err(|e| format!("4xx body is not JSON ({e}): {}", ctx()))?;
        if v["message"].as_str().is_none_or(|m| m.trim().is_empty()) {
            return Err(format!("4xx body without a message: {}", ctx()));
        }
        if v["Type"] != "User" {
            return Err(format!("4xx body Type is not User: {}", ctx()));
        }
    } else if req.method != Method::HEAD
        // An invoke answers with the function's own output.
        && !req.uri.split('?').next().unwrap_or("").ends_with("/invocations")
        && r
            .headers
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
        && serde_json::from_slice::<serde::de::IgnoredAny>(&r.body).is_err()
    {
        return Err(format!("JSON answer whose body is not JSON: {}", ctx()));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Packages and request bodies

fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in files {
        w.start_file(
            *name,
            SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored)
                .unix_permissions(0o644),
        )
        .unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

const ECHO_PY: &[u8] = b"def handler(event, context):\n    return event\n";

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn python_zip_b64() -> String {
    b64(&zip_of(&[("app.py", ECHO_PY)]))
}

/// A zip whose directory is intact but whose file data does not match its
/// CRC (one byte of the stored data flipped).
fn bad_crc_zip() -> Vec<u8> {
    let mut z = zip_of(&[("app.py", ECHO_PY)]);
    let at = z
        .windows(ECHO_PY.len())
        .position(|w| w == ECHO_PY)
        .expect("stored data in the archive");
    z[at] ^= 0x20;
    z
}

fn create_body(name: &str, zip_b64: &str) -> Value {
    json!({
        "FunctionName": name,
        "Runtime": "python3.12",
        "Role": ROLE,
        "Handler": "app.handler",
        "Code": {"ZipFile": zip_b64},
    })
}

fn create_req(name: &str, zip_b64: &str) -> Req {
    Req::new(Method::POST, "/2015-03-31/functions").json(&create_body(name, zip_b64))
}

/// A JSON document with raw (possibly invalid) leaves, so values serde_json
/// cannot represent (`1e309`, lone surrogates) can be sent.
#[derive(Debug, Clone)]
enum J {
    Raw(String),
    Obj(Vec<(String, J)>),
    Arr(Vec<J>),
}

impl J {
    fn s(v: &str) -> J {
        J::Raw(Value::from(v).to_string())
    }
    fn render(&self, out: &mut String) {
        match self {
            J::Raw(r) => out.push_str(r),
            J::Obj(kv) => {
                out.push('{');
                for (i, (k, v)) in kv.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::from(k.as_str()).to_string());
                    out.push(':');
                    v.render(out);
                }
                out.push('}');
            }
            J::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.render(out);
                }
                out.push(']');
            }
        }
    }
    fn text(&self) -> String {
        let mut s = String::new();
        self.render(&mut s);
        s
    }
    /// Sets (or adds) the value at a dotted path, creating objects on the way.
    fn set(&mut self, path: &[&str], v: J) {
        let Some((first, rest)) = path.split_first() else {
            *self = v;
            return;
        };
        match self {
            J::Obj(kv) => {
                if let Some((_, slot)) = kv.iter_mut().find(|(k, _)| k == first) {
                    slot.set(rest, v);
                } else {
                    let mut slot = J::Obj(Vec::new());
                    slot.set(rest, v);
                    kv.push((first.to_string(), slot));
                }
            }
            J::Arr(items) => match first.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                Some(slot) => slot.set(rest, v),
                None => {
                    let mut slot = J::Obj(Vec::new());
                    slot.set(rest, v);
                    items.push(slot);
                }
            },
            J::Raw(_) => {
                *self = J::Obj(Vec::new());
                self.set(path, v);
            }
        }
    }
    fn remove(&mut self, key: &str) {
        if let J::Obj(kv) = self {
            kv.retain(|(k, _)| k != key);
        }
    }
}

/// Stands for a fresh function name; replaced when the request is sent so
/// every CreateFunction attempt names a function that does not exist yet.
const NAME_SLOT: &str = "__FRESH_NAME__";

fn full_create_template() -> J {
    J::Obj(vec![
        ("FunctionName".into(), J::s(NAME_SLOT)),
        ("Runtime".into(), J::s("python3.12")),
        ("Role".into(), J::s(ROLE)),
        ("Handler".into(), J::s("app.handler")),
        (
            "Code".into(),
            J::Obj(vec![("ZipFile".into(), J::s(&python_zip_b64()))]),
        ),
        ("Description".into(), J::s("fuzzed")),
        ("Timeout".into(), J::Raw("3".into())),
        ("MemorySize".into(), J::Raw("128".into())),
        (
            "Environment".into(),
            J::Obj(vec![(
                "Variables".into(),
                J::Obj(vec![("A1".into(), J::s("x"))]),
            )]),
        ),
        (
            "EphemeralStorage".into(),
            J::Obj(vec![("Size".into(), J::Raw("512".into()))]),
        ),
        (
            "TracingConfig".into(),
            J::Obj(vec![("Mode".into(), J::s("PassThrough"))]),
        ),
        (
            "LoggingConfig".into(),
            J::Obj(vec![("LogFormat".into(), J::s("Text"))]),
        ),
        ("Tags".into(), J::Obj(vec![("k".into(), J::s("v"))])),
        ("Architectures".into(), J::Arr(vec![J::s("x86_64")])),
        ("PackageType".into(), J::s("Zip")),
        ("Publish".into(), J::Raw("false".into())),
        ("Layers".into(), J::Arr(vec![])),
    ])
}

/// Every field of CreateFunction (and the nested ones), as dotted paths.
const CREATE_FIELDS: &[&str] = &[
    "FunctionName",
    "Runtime",
    "Role",
    "Handler",
    "Code",
    "Code.ZipFile",
    "Code.S3Bucket",
    "Code.S3Key",
    "Code.ImageUri",
    "Description",
    "Timeout",
    "MemorySize",
    "Environment",
    "Environment.Variables",
    "Environment.Variables.A1",
    "EphemeralStorage",
    "EphemeralStorage.Size",
    "TracingConfig",
    "TracingConfig.Mode",
    "LoggingConfig",
    "LoggingConfig.LogFormat",
    "LoggingConfig.LogGroup",
    "Tags",
    "Tags.k",
    "Architectures",
    "Architectures.0",
    "PackageType",
    "Publish",
    "Layers",
    "RevisionId",
    "KMSKeyArn",
    "VpcConfig",
];

const CONFIG_FIELDS: &[&str] = &[
    "Runtime",
    "Role",
    "Handler",
    "Description",
    "Timeout",
    "MemorySize",
    "Environment",
    "Environment.Variables",
    "Environment.Variables.A1",
    "EphemeralStorage.Size",
    "TracingConfig.Mode",
    "LoggingConfig.LogFormat",
    "LoggingConfig.LogGroup",
    "RevisionId",
    "Layers",
];

/// Fields of PublishVersion, CreateAlias / UpdateAlias and
/// PutFunctionConcurrency. `ProvisionedConcurrentExecutions` is left out on
/// purpose: a valid value legitimately starts that many environments.
const VERSION_FIELDS: &[&str] = &[
    "Name",
    "FunctionVersion",
    "Description",
    "RevisionId",
    "CodeSha256",
    "RoutingConfig",
    "RoutingConfig.AdditionalVersionWeights",
    "RoutingConfig.AdditionalVersionWeights.1",
    "ReservedConcurrentExecutions",
];

const CODE_FIELDS: &[&str] = &[
    "ZipFile",
    "S3Bucket",
    "S3Key",
    "ImageUri",
    "Publish",
    "DryRun",
    "RevisionId",
    "Architectures",
    "Architectures.0",
];

/// Raw JSON values of every type and edge, valid or not for a given field.
fn raw_value() -> impl Strategy<Value = J> {
    let fixed = prop::sample::select(vec![
        "\"x\"",
        "\"\"",
        "\" \"",
        "0",
        "1",
        "-1",
        "3",
        "64",
        "127",
        "128",
        "900",
        "901",
        "10240",
        "10241",
        "512",
        "1.5",
        "1e3",
        "1e309",
        "-1e309",
        "1e-400",
        "-0",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775809",
        "18446744073709551616",
        "4294967424",
        "123456789012345678901234567890123456789012345678901234567890",
        "true",
        "false",
        "null",
        "[]",
        "{}",
        "[\"x\"]",
        "[\"x86_64\",\"arm64\"]",
        "[\"arm64\"]",
        "[1]",
        "{\"a\":1}",
        "{\"Variables\":{\"A\":1}}",
        "{\"Variables\":{\"AWS_REGION\":\"x\"}}",
        "{\"Variables\":{\"1A\":\"x\"}}",
        "{\"Variables\":null}",
        "{\"Size\":\"x\"}",
        "{\"Mode\":\"Active\"}",
        "\"\\ud800\"",
        "\"\\u0000\"",
        "\"a\\nb\"",
        "\"日本語🦀\"",
        "\"python3.12\"",
        "\"nodejs20.x\"",
        "\"provided.al2023\"",
        "\"python2.7\"",
        "\"java21\"",
        "\"cobol\"",
        "\"Image\"",
        "\"arn:aws:iam::123456789012:role/r\"",
        "\"arn:aws:lambda:us-east-1:123456789012:function:f\"",
        "\"nope\"",
        "\"UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==\"",
        "\"not base64!\"",
        "\"UEsDBA\"",
    ])
    .prop_map(|s| J::Raw(s.to_string()));
    prop_oneof![
        6 => fixed,
        1 => any::<i64>().prop_map(|n| J::Raw(n.to_string())),
        1 => any::<f64>().prop_map(|f| J::Raw(Value::from(f).to_string())),
        1 => any::<String>().prop_map(|s| J::Raw(Value::from(s).to_string())),
        1 => (1usize..400).prop_map(|n| J::Raw(format!("\"{}\"", "x".repeat(n)))),
        1 => (1usize..300).prop_map(|n| J::Raw(format!("{}{}", "[".repeat(n), "]".repeat(n)))),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| J::Raw(format!("\"{}\"", b64(&b)))),
    ]
}

/// A CreateFunction body: the full valid template with fields dropped and
/// replaced by values of the wrong type.
fn create_body_strategy() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(CREATE_FIELDS), 0..3),
        prop::collection::vec((prop::sample::select(CREATE_FIELDS), raw_value()), 0..4),
    )
        .prop_map(|(drop, set)| {
            let mut j = full_create_template();
            for d in drop {
                if !d.contains('.') {
                    j.remove(d);
                }
            }
            for (path, v) in set {
                let p: Vec<&str> = path.split('.').collect();
                j.set(&p, v);
            }
            j.text()
        })
}

fn partial_body_strategy(fields: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(fields), raw_value()), 0..4).prop_map(|set| {
        let mut j = J::Obj(Vec::new());
        for (path, v) in set {
            let p: Vec<&str> = path.split('.').collect();
            j.set(&p, v);
        }
        j.text()
    })
}

fn tags_body_strategy() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("k".to_string()),
        Just("aws:x".to_string()),
        Just(String::new()),
        (127usize..=130).prop_map(|n| "k".repeat(n)),
        any::<String>(),
    ];
    let val = prop_oneof![
        3 => any::<String>().prop_map(|s| J::Raw(Value::from(s).to_string())),
        1 => (255usize..=258).prop_map(|n| J::s(&"v".repeat(n))),
        2 => raw_value(),
    ];
    prop_oneof![
        4 => prop::collection::vec((key, val), 0..5)
            .prop_map(|kv| J::Obj(vec![("Tags".into(), J::Obj(kv))]).text()),
        1 => (51usize..60).prop_map(|n| {
            let kv = (0..n).map(|i| (format!("k{i}"), J::s("v"))).collect();
            J::Obj(vec![("Tags".into(), J::Obj(kv))]).text()
        }),
        1 => raw_value().prop_map(|v| J::Obj(vec![("Tags".into(), v)]).text()),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Bodies that are not what any operation expects.
fn junk_body() -> impl Strategy<Value = Vec<u8>> {
    let deep = (
        prop::sample::select(vec![129usize, 1_000, 100_000]),
        prop::sample::select(vec!["[", "{\"a\":", "[{\"Tags\":"]),
        any::<bool>(),
    )
        .prop_map(|(n, open, closed)| {
            let mut s = open.repeat(n);
            if closed {
                s.push_str("null");
                let close = if open == "[" { "]" } else { "}" };
                s.push_str(&close.repeat(n));
            }
            s.into_bytes()
        });
    let numbers = prop::sample::select(vec![
        "1e309",
        "-1e309",
        "[1e309]",
        "{\"Timeout\": 1e309}",
        "{\"MemorySize\": 1e400, \"Timeout\": 3}",
        "NaN",
        "Infinity",
        "-Infinity",
        "{\"MemorySize\": NaN}",
        "0x10",
        "{\"Timeout\": 0x10}",
        "{\"Timeout\": 00012}",
        "{\"Timeout\": +3}",
    ])
    .prop_map(|s| s.as_bytes().to_vec());
    let huge_int =
        (300usize..3000).prop_map(|n| format!("{{\"Timeout\": {}}}", "9".repeat(n)).into_bytes());
    let syntax = prop::sample::select(vec![
        "",
        " \n\t\r ",
        "{",
        "}",
        "{\"FunctionName\": ",
        "{\"a\":1,}",
        "[1,]",
        "{'a': 1}",
        "{\"a\" 1}",
        "{\"a\":1}{\"b\":2}",
        "{\"a\":1} trailing",
        "\u{feff}{}",
        "{\"Tags\":{\"k\":\"v\"},\"Tags\":{\"k\":1}}",
        "{\"FunctionName\":\"a\",\"FunctionName\":\"b\"}",
        "null",
        "true",
        "\"string\"",
        "[]",
        "{\"a\":\"\\ud800\"}",
        "{\"a\":\"\\uZZZZ\"}",
        "{\"a\":\"\u{1}\"}",
    ])
    .prop_map(|s| s.as_bytes().to_vec());
    prop_oneof![
        2 => prop::collection::vec(any::<u8>(), 0..300),
        2 => any::<String>().prop_map(String::into_bytes),
        2 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => deep,
        2 => numbers,
        1 => huge_int,
        3 => syntax,
        // Invalid UTF-8 inside an otherwise valid JSON string.
        1 => prop::collection::vec(128u8..=255, 1..8).prop_map(|b| {
            let mut v = b"{\"FunctionName\":\"".to_vec();
            v.extend(b);
            v.extend(b"\"}");
            v
        }),
    ]
}

fn body_for(kind: BodyKind) -> BoxedStrategy<Vec<u8>> {
    let specific: BoxedStrategy<String> = match kind {
        BodyKind::Create => create_body_strategy().boxed(),
        BodyKind::Config => partial_body_strategy(CONFIG_FIELDS).boxed(),
        BodyKind::Code => partial_body_strategy(CODE_FIELDS).boxed(),
        BodyKind::Tags => tags_body_strategy().boxed(),
        BodyKind::Invoke => json_value().prop_map(|v| v.to_string()).boxed(),
    };
    prop_oneof![
        3 => specific.prop_map(String::into_bytes),
        2 => junk_body(),
    ]
    .boxed()
}

#[derive(Debug, Clone, Copy)]
enum BodyKind {
    Create,
    Config,
    Code,
    Tags,
    Invoke,
}

// ---------------------------------------------------------------------------
// URIs and headers

/// Characters left as they are in a path segment; everything else is
/// percent-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn encode(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// A function name path segment (already encoded): the target in every form
/// Lambda accepts, near misses, and junk. Never contains invalid UTF-8 once
/// decoded (see `known_bug_invalid_utf8_in_path_is_not_an_aws_error`).
fn segment() -> impl Strategy<Value = String> {
    let target_forms = prop::sample::select(vec![
        TARGET.to_string(),
        format!("{TARGET}:$LATEST"),
        format!("{TARGET}:%24LATEST"),
        format!("{TARGET}:1"),
        format!("{TARGET}:prod"),
        format!("{ACCOUNT}:function:{TARGET}"),
        format!("{ACCOUNT}:function:{TARGET}:$LATEST"),
        target_arn(),
        format!("{}:$LATEST", target_arn()),
        format!("arn%3Aaws%3Alambda%3Aus-east-1%3A{ACCOUNT}%3Afunction%3A{TARGET}"),
        format!("arn:aws:lambda:eu-west-1:{ACCOUNT}:function:{TARGET}"),
        format!("arn:aws:lambda:us-east-1:999999999999:function:{TARGET}"),
        format!("999999999999:function:{TARGET}"),
        "Fuzz-Target".to_string(),
        "nope".to_string(),
        "arn:aws:lambda:us-east-1:123456789012:layer:x".to_string(),
        "arn:aws:iam::123456789012:role/r".to_string(),
    ]);
    let odd = prop::sample::select(vec![
        ".",
        "..",
        "%2e%2e",
        "%2F",
        "a%2Fb",
        "%00",
        "%20",
        "+",
        "%2B",
        "$",
        ":",
        "::",
        "%3A",
        "a:b:c",
        "%25",
        "%25FF",
        "%E2%80%AE",
        "%F0%9F%A6%80",
    ])
    .prop_map(str::to_string);
    prop_oneof![
        4 => target_forms,
        2 => odd,
        2 => any::<String>().prop_filter("non-empty", |s| !s.is_empty()).prop_map(|s| encode(&s)),
        1 => "[a-zA-Z0-9_-]{1,80}",
        1 => (60usize..300).prop_map(|n| "f".repeat(n)),
    ]
}

/// Raw query strings: the parameters the operations read, with junk values.
fn query() -> impl Strategy<Value = Option<String>> {
    let key = prop_oneof![
        4 => prop::sample::select(vec!["MaxItems", "Marker", "Qualifier", "tagKeys", "FunctionVersion", "MasterRegion"])
            .prop_map(str::to_string),
        1 => any::<String>().prop_map(|s| encode(&s)),
    ];
    let value = prop_oneof![
        3 => prop::sample::select(vec![
            "", "0", "1", "-1", "50", "10000", "10001", "1e3", " 5", "+5", "%2B5", "0x10", "5.0",
            "99999999999999999999999", "-9223372036854775808", "$LATEST", "%24LATEST", "LATEST",
            "1", "prod", "k", "aws:k", "%00", "%FF", "%", "%zz", "%2", "a%2Bb", "+", "=", "%3D",
            "ZnV6ei10YXJnZXQ=", "!!!", "AAAA", "%C3%A9",
        ])
        .prop_map(str::to_string),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<String>().prop_map(|s| encode(&s)),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| encode(&b64(&b))),
        1 => (129usize..300).prop_map(|n| "q".repeat(n)),
    ];
    let pair = (key, prop::option::of(value)).prop_map(|(k, v)| match v {
        Some(v) => format!("{k}={v}"),
        None => k,
    });
    prop::option::of(
        (
            prop::collection::vec(pair, 0..5),
            prop::sample::select(vec!["&", "&", "&&", ";"]),
        )
            .prop_map(|(pairs, sep)| pairs.join(sep)),
    )
}

fn header_value() -> impl Strategy<Value = HeaderValue> {
    prop_oneof![
        3 => "[ -~]{0,60}".prop_map(|s| s.into_bytes()),
        // obs-text: bytes HeaderValue accepts but `to_str` refuses.
        1 => prop::collection::vec(prop_oneof![32u8..=126, 128u8..=255, Just(b'\t')], 0..40),
    ]
    .prop_filter_map("valid header value", |b| HeaderValue::from_bytes(&b).ok())
}

fn auth_header() -> impl Strategy<Value = HeaderValue> {
    prop_oneof![
        3 => prop::sample::select(vec!["us-east-1", "eu-west-1", "", "x", "us-east-1/extra", "é"])
            .prop_filter_map("ascii", |r| HeaderValue::from_str(&format!(
                "AWS4-HMAC-SHA256 Credential=AKID/20240101/{r}/lambda/aws4_request, SignedHeaders=host, Signature=abc"
            )).ok()),
        1 => "[!-~]{0,40}".prop_filter_map("valid", |r| HeaderValue::from_str(&format!(
                "AWS4-HMAC-SHA256 Credential=AKID/20240101/{r}/lambda/aws4_request"
            )).ok()),
        1 => header_value(),
    ]
}

fn invoke_headers() -> impl Strategy<Value = Vec<(String, HeaderValue)>> {
    let inv_type = prop_oneof![
        3 => prop::sample::select(vec!["RequestResponse", "DryRun", "Event", "requestresponse", "", "Bogus"])
            .prop_map(HeaderValue::from_static),
        1 => header_value(),
    ];
    let log_type = prop_oneof![
        3 => prop::sample::select(vec!["None", "Tail", "tail", ""]).prop_map(HeaderValue::from_static),
        1 => header_value(),
    ];
    let client_context = prop_oneof![
        2 => json_value().prop_filter_map("header", |v| HeaderValue::from_str(&b64(v.to_string().as_bytes())).ok()),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_filter_map("header", |b| HeaderValue::from_str(&b64(&b)).ok()),
        1 => header_value(),
    ];
    (
        prop::option::weighted(0.25, inv_type),
        prop::option::weighted(0.25, log_type),
        prop::option::weighted(0.25, client_context),
    )
        .prop_map(|(t, l, c)| {
            let mut h = Vec::new();
            if let Some(t) = t {
                h.push(("x-amz-invocation-type".to_string(), t));
            }
            if let Some(l) = l {
                h.push(("x-amz-log-type".to_string(), l));
            }
            if let Some(c) = c {
                h.push(("x-amz-client-context".to_string(), c));
            }
            h
        })
}

fn common_headers() -> impl Strategy<Value = Vec<(String, HeaderValue)>> {
    (
        prop::option::weighted(0.3, auth_header()),
        prop::option::weighted(
            0.3,
            prop_oneof![
                Just(HeaderValue::from_static("application/json")),
                Just(HeaderValue::from_static("application/x-amz-json-1.1")),
                Just(HeaderValue::from_static("text/plain")),
                header_value(),
            ],
        ),
    )
        .prop_map(|(a, ct)| {
            let mut h = Vec::new();
            if let Some(a) = a {
                h.push(("authorization".to_string(), a));
            }
            if let Some(ct) = ct {
                h.push(("content-type".to_string(), ct));
            }
            h
        })
}

fn with_query(path: String, q: Option<String>) -> String {
    match q {
        Some(q) => format!("{path}?{q}"),
        None => path,
    }
}

/// One request to one of the operations stratus serves.
fn operation() -> impl Strategy<Value = Req> {
    let f = "/2015-03-31/functions";
    let create = (
        prop::sample::select(vec![f, "/2015-03-31/functions/"]),
        body_for(BodyKind::Create),
    )
        .prop_map(|(p, b)| Req::new(Method::POST, p).body(b));
    let list = query().prop_map(move |q| Req::new(Method::GET, with_query(f.into(), q)));
    let get = (segment(), query(), any::<bool>()).prop_map(move |(s, q, conf)| {
        let p = if conf {
            format!("{f}/{s}/configuration")
        } else {
            format!("{f}/{s}")
        };
        Req::new(Method::GET, with_query(p, q))
    });
    let update_config = (segment(), body_for(BodyKind::Config))
        .prop_map(move |(s, b)| Req::new(Method::PUT, format!("{f}/{s}/configuration")).body(b));
    let update_code = (segment(), body_for(BodyKind::Code))
        .prop_map(move |(s, b)| Req::new(Method::PUT, format!("{f}/{s}/code")).body(b));
    let invoke = (
        prop_oneof![2 => Just(TARGET.to_string()), 3 => segment()],
        prop::option::weighted(0.3, query()).prop_map(Option::flatten),
        body_for(BodyKind::Invoke),
        invoke_headers(),
    )
        .prop_map(move |(s, q, b, h)| {
            let mut r =
                Req::new(Method::POST, with_query(format!("{f}/{s}/invocations"), q)).body(b);
            r.headers.extend(h);
            r
        });
    // DeleteFunction only on names that are not the target.
    let delete = (
        segment().prop_filter("not the target", |s| !s.contains(TARGET)),
        query(),
    )
        .prop_map(move |(s, q)| Req::new(Method::DELETE, with_query(format!("{f}/{s}"), q)));
    let tag = (segment(), body_for(BodyKind::Tags))
        .prop_map(|(s, b)| Req::new(Method::POST, format!("/2017-03-31/tags/{s}")).body(b));
    let list_tags = segment().prop_map(|s| Req::new(Method::GET, format!("/2017-03-31/tags/{s}")));
    let untag = (segment(), query()).prop_map(|(s, q)| {
        Req::new(
            Method::DELETE,
            with_query(format!("/2017-03-31/tags/{s}"), q),
        )
    });
    let settings = prop::sample::select(vec![
        "/2016-08-19/account-settings",
        "/2016-08-19/account-settings/",
    ])
    .prop_map(|p| Req::new(Method::GET, p));
    let code = (segment(), segment(), segment())
        .prop_map(|(a, b, c)| Req::new(Method::GET, format!("/_stratus/code/{a}/{b}/{c}")));
    let stray = (
        prop::sample::select(vec![Method::GET, Method::POST, Method::PUT, Method::DELETE]),
        prop::sample::select(vec![
            "",
            "/",
            "/2015-03-31",
            "/2015-03-31/functions/x/y",
            "/2015-03-31/functions/x/invocations/",
            "/2015-03-31/functions//invocations",
            "/2015-03-31/functions/x/configuration/",
            "/2017-03-31/tags/",
            "/2014-11-13/functions/x/invoke-async/",
            "/_stratus",
            "/_stratus/code/a/b/c",
            "/%FF",
        ]),
        segment(),
        junk_body(),
    )
        .prop_map(|(m, p, s, b)| Req::new(m, format!("{p}/{s}")).body(b));
    (
        prop_oneof![
            2 => versions_and_aliases(),
            3 => create,
            1 => list,
            2 => get,
            3 => update_config,
            3 => update_code,
            4 => invoke,
            1 => delete,
            2 => tag,
            1 => list_tags,
            1 => untag,
            1 => settings,
            1 => code,
            2 => stray,
        ],
        common_headers(),
    )
        .prop_map(|(mut r, h)| {
            r.headers.extend(h);
            r
        })
        .prop_filter("the URI must parse", |r| r.uri.parse::<Uri>().is_ok())
}

/// Versions, aliases and concurrency: the routes served next to the ones the
/// fuzzer was written for, each with the methods it serves.
fn versions_and_aliases() -> impl Strategy<Value = Req> {
    let route = prop::sample::select(vec![
        (Method::POST, "/2015-03-31/functions/{}/versions"),
        (Method::GET, "/2015-03-31/functions/{}/versions"),
        (Method::POST, "/2015-03-31/functions/{}/aliases"),
        (Method::GET, "/2015-03-31/functions/{}/aliases"),
        (Method::GET, "/2015-03-31/functions/{}/aliases/{}"),
        (Method::PUT, "/2015-03-31/functions/{}/aliases/{}"),
        (Method::DELETE, "/2015-03-31/functions/{}/aliases/{}"),
        (Method::PUT, "/2017-10-31/functions/{}/concurrency"),
        (Method::DELETE, "/2017-10-31/functions/{}/concurrency"),
        (Method::GET, "/2019-09-30/functions/{}/concurrency"),
        (
            Method::GET,
            "/2019-09-30/functions/{}/provisioned-concurrency",
        ),
        (
            Method::DELETE,
            "/2019-09-30/functions/{}/provisioned-concurrency",
        ),
        (
            Method::PUT,
            "/2019-09-30/functions/{}/provisioned-concurrency",
        ),
    ]);
    let alias = prop_oneof![
        2 => prop::sample::select(vec!["live", "1", "$LATEST", "%24LATEST", "a:b", "x"]).prop_map(str::to_string),
        1 => segment(),
    ];
    (
        route,
        prop_oneof![2 => Just(TARGET.to_string()), 3 => segment()],
        alias,
        query(),
        prop_oneof![
            2 => partial_body_strategy(VERSION_FIELDS).prop_map(String::into_bytes),
            1 => junk_body(),
        ],
    )
        .prop_map(|((m, tpl), name, alias, q, body)| {
            let path = tpl.replacen("{}", &name, 1).replacen("{}", &alias, 1);
            // Provisioned concurrency only gets junk: a valid request would
            // start real environments.
            let body = if tpl.ends_with("provisioned-concurrency") && m == Method::PUT {
                let mut b = b"{\"Provisioned\": ".to_vec();
                b.extend(body);
                b
            } else {
                body
            };
            Req::new(m, with_query(path, q)).body(body)
        })
}

// ---------------------------------------------------------------------------
// Property tests

static FRESH: AtomicUsize = AtomicUsize::new(0);

/// Sends one fuzzed request and checks everything that must hold after it.
fn check_case(s: &Server, mut req: Req) -> Result<(), TestCaseError> {
    let fresh = format!("fresh-{}", FRESH.fetch_add(1, Ordering::Relaxed));
    if let Ok(text) = std::str::from_utf8(&req.body)
        && text.contains(NAME_SLOT)
    {
        req.body = Bytes::from(text.replace(NAME_SLOT, &fresh));
    }
    let auth = req
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.clone());
    let before = s.snapshot(auth.as_ref());
    let resp = s.send(&req);
    check_response(&req, &resp).map_err(TestCaseError::fail)?;
    if !resp.status.is_success() {
        let after = s.snapshot(auth.as_ref());
        prop_assert_eq!(
            &before,
            &after,
            "a failed request changed state: {} {} -> {}",
            req.method,
            req.uri,
            resp.brief()
        );
    }
    s.healthy().map_err(TestCaseError::fail)?;
    Ok(())
}

fn run_fuzz(cases: u32, strategy: impl Strategy<Value = Req>) {
    let s = Server::new();
    s.create_target();
    let mut runner = TestRunner::new(PropConfig {
        cases,
        failure_persistence: None,
        max_shrink_iters: 256,
        ..PropConfig::default()
    });
    if let Err(e) = runner.run(&strategy, |req| check_case(&s, req)) {
        panic!("{e}");
    }
    // The target still works after everything the fuzzer sent.
    s.healthy().unwrap();
    let r = s.send(&Req::new(
        Method::GET,
        format!("/2015-03-31/functions/{TARGET}"),
    ));
    assert_eq!(r.status, StatusCode::OK, "{}", r.brief());
}

/// Every operation, every kind of junk.
#[test]
fn fuzz_every_operation() {
    run_fuzz(1024, operation());
}

/// CreateFunction bodies with every field dropped or of the wrong type: a
/// failure creates nothing, a success creates exactly the named function.
#[test]
fn fuzz_create_function_bodies() {
    let s = Server::new();
    let mut runner = TestRunner::new(PropConfig {
        cases: 256,
        failure_persistence: None,
        max_shrink_iters: 256,
        ..PropConfig::default()
    });
    let strategy = (create_body_strategy(), common_headers());
    let result = runner.run(&strategy, |(body, headers)| {
        let name = format!("cf-{}", FRESH.fetch_add(1, Ordering::Relaxed));
        let body = body.replace(NAME_SLOT, &name);
        let mut req = Req::new(Method::POST, "/2015-03-31/functions").body(body.clone());
        req.headers = headers;
        let auth = req
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.clone());
        let before = s.function_names(auth.as_ref());
        let resp = s.send(&req);
        check_response(&req, &resp).map_err(TestCaseError::fail)?;
        let after = s.function_names(auth.as_ref());
        if resp.status == StatusCode::CREATED {
            let created = resp.json()["FunctionName"].as_str().unwrap().to_string();
            prop_assert!(!before.contains(&created));
            let mut expected = before.clone();
            expected.push(created);
            expected.sort();
            prop_assert_eq!(after, expected);
        } else {
            prop_assert_eq!(
                before,
                after,
                "failed CreateFunction created something: {} -> {}",
                body,
                resp.brief()
            );
        }
        s.healthy().map_err(TestCaseError::fail)?;
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    /// Percent-decoding of query strings: whatever the bytes, ListFunctions
    /// answers 200 or a 400 naming the parameter.
    #[test]
    fn fuzz_list_functions_query(
        max in prop::option::of(prop_oneof![any::<i64>().prop_map(|n| n.to_string()), "[ -~]{0,12}", any::<String>()]),
        marker in prop::option::of(prop_oneof![prop::collection::vec(any::<u8>(), 0..30).prop_map(|b| b64(&b)), any::<String>()]),
    ) {
        let s = list_server();
        let mut q = Vec::new();
        if let Some(m) = &max {
            q.push(format!("MaxItems={}", encode(m)));
        }
        if let Some(m) = &marker {
            q.push(format!("Marker={}", encode(m)));
        }
        let req = Req::new(Method::GET, format!("/2015-03-31/functions?{}", q.join("&")));
        let resp = s.send(&req);
        check_response(&req, &resp).map_err(TestCaseError::fail)?;
        let max_ok = max.as_deref().is_none_or(|m| m.parse::<i64>().is_ok_and(|n| (1..=10_000).contains(&n)));
        if max_ok && marker.is_none() {
            prop_assert_eq!(resp.status, StatusCode::OK, "{}", resp.brief());
        }
        if !max_ok {
            prop_assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{}", resp.brief());
        }
        if resp.status == StatusCode::OK {
            let v = resp.json();
            let n = v["Functions"].as_array().unwrap().len();
            let limit = max.as_deref().and_then(|m| m.parse::<usize>().ok()).unwrap_or(50);
            prop_assert!(n <= limit);
        }
    }
}

/// A server shared by the query property (it only reads).
fn list_server() -> &'static Server {
    static S: std::sync::OnceLock<Server> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let s = Server::new();
        for i in 0..3 {
            let r = s.call(&create_req(&format!("list-{i}"), &python_zip_b64()));
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.brief());
        }
        s
    })
}

// ---------------------------------------------------------------------------
// Examples with the exact AWS codes

fn expect(s: &Server, req: &Req, status: u16, code: &str) -> Resp {
    let r = s.call(req);
    assert_eq!(
        (r.status.as_u16(), r.error_type()),
        (status, code),
        "{} {} {:?} -> {}",
        req.method,
        req.uri,
        String::from_utf8_lossy(&req.body[..req.body.len().min(200)]),
        r.brief()
    );
    r
}

fn create_with(s: &Server, edit: impl FnOnce(&mut Value)) -> Resp {
    let mut body = create_body("ex-fn", &python_zip_b64());
    edit(&mut body);
    s.call(&Req::new(Method::POST, "/2015-03-31/functions").json(&body))
}

fn create_raw(name: &str, field: &str, raw: &str) -> Req {
    let mut j = full_create_template();
    j.set(&[field], J::Raw(raw.to_string()));
    let text = j.text().replace(NAME_SLOT, name);
    Req::new(Method::POST, "/2015-03-31/functions").body(text)
}

/// An edit of a valid CreateFunction body.
type Edit = Box<dyn Fn(&mut Value)>;

#[test]
fn aws_error_codes() {
    let s = Server::new();
    let nothing = |s: &Server| assert_eq!(s.function_names(None), Vec::<String>::new());
    let post = |body: &str| Req::new(Method::POST, "/2015-03-31/functions").body(body.to_string());

    // Malformed JSON.
    for body in [
        "{\"FunctionName\": ",
        "{",
        "not json",
        "{\"a\":1,}",
        "[1e309]",
        &"[".repeat(100_000),
        &"{\"a\":".repeat(100_000),
    ] {
        expect(&s, &post(body), 400, "InvalidRequestContentException");
        nothing(&s);
    }
    // Wrong types for fields.
    for (field, raw) in [
        ("MemorySize", "\"x\""),
        ("MemorySize", "1.5"),
        ("Timeout", "1e309"),
        ("Timeout", "\"3\""),
        ("Timeout", "99999999999999999999"),
        ("Environment", "{\"Variables\": {\"A\": 1}}"),
        ("Environment", "[]"),
        ("Tags", "{\"k\": 1}"),
        ("Architectures", "\"x86_64\""),
        ("Code", "\"UEsFBg==\""),
        ("FunctionName", "7"),
        ("Publish", "\"yes\""),
    ] {
        expect(
            &s,
            &create_raw("ex-fn", field, raw),
            400,
            "InvalidRequestContentException",
        );
        nothing(&s);
    }

    // Unknown function.
    for uri in [
        "/2015-03-31/functions/nope",
        "/2015-03-31/functions/nope/configuration",
        "/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:nope",
    ] {
        let r = expect(
            &s,
            &Req::new(Method::GET, uri),
            404,
            "ResourceNotFoundException",
        );
        assert!(r.json()["message"].as_str().unwrap().contains("nope"));
    }
    expect(
        &s,
        &Req::new(Method::POST, "/2015-03-31/functions/nope/invocations").body("{}"),
        404,
        "ResourceNotFoundException",
    );

    // Settings out of range.
    let cases: Vec<(Edit, u16, &str)> = vec![
        (
            Box::new(|b| b["MemorySize"] = json!(64)),
            400,
            "ValidationException",
        ),
        (
            Box::new(|b| b["MemorySize"] = json!(10241)),
            400,
            "ValidationException",
        ),
        (
            Box::new(|b| b["Timeout"] = json!(0)),
            400,
            "ValidationException",
        ),
        (
            Box::new(|b| b["Timeout"] = json!(901)),
            400,
            "InvalidParameterValueException",
        ),
        (
            Box::new(|b| b["Runtime"] = json!("cobol")),
            400,
            "ValidationException",
        ),
        (
            Box::new(|b| b["Role"] = json!("nope")),
            400,
            "ValidationException",
        ),
        (
            Box::new(|b| b["FunctionName"] = json!("bad name")),
            400,
            "ValidationException",
        ),
        (
            Box::new(|b| b["FunctionName"] = json!("x".repeat(65))),
            400,
            "ValidationException",
        ),
        (
            Box::new(|b| b["Handler"] = json!("")),
            400,
            "ValidationException",
        ),
        (
            Box::new(|b| b["EphemeralStorage"] = json!({"Size": 100})),
            400,
            "ValidationException",
        ),
        (
            Box::new(|b| b["Architectures"] = json!(["sparc"])),
            400,
            "ValidationException",
        ),
        (
            Box::new(|b| b["Environment"] = json!({"Variables": {"AWS_REGION": "x"}})),
            400,
            "InvalidParameterValueException",
        ),
        (
            Box::new(|b| b["Tags"] = json!({"aws:x": "v"})),
            400,
            "InvalidParameterValueException",
        ),
        (
            Box::new(|b| {
                b.as_object_mut()
                    .unwrap()
                    .remove("Role")
                    .map(drop)
                    .unwrap_or(())
            }),
            400,
            "InvalidParameterValueException",
        ),
        (
            Box::new(|b| {
                b.as_object_mut()
                    .unwrap()
                    .remove("Code")
                    .map(drop)
                    .unwrap_or(())
            }),
            400,
            "InvalidParameterValueException",
        ),
        (
            Box::new(|b| {
                b["FunctionName"] = json!("arn:aws:lambda:us-east-1:999999999999:function:ex-fn")
            }),
            403,
            "AccessDeniedException",
        ),
        // Packages that are not base64 or not a zip.
        (
            Box::new(|b| b["Code"]["ZipFile"] = json!("not base64!")),
            400,
            "InvalidRequestContentException",
        ),
        (
            Box::new(|b| b["Code"]["ZipFile"] = json!("")),
            400,
            "InvalidParameterValueException",
        ),
        (
            Box::new(|b| b["Code"]["ZipFile"] = json!(b64(b"this is not a zip archive"))),
            400,
            "InvalidParameterValueException",
        ),
        (
            Box::new(|b| {
                let z = zip_of(&[("app.py", ECHO_PY)]);
                b["Code"]["ZipFile"] = json!(b64(&z[..z.len() / 2]));
            }),
            400,
            "InvalidParameterValueException",
        ),
        (
            Box::new(|b| b["Code"]["ZipFile"] = json!(b64(&zip_of(&[("../escape.py", ECHO_PY)])))),
            400,
            "InvalidParameterValueException",
        ),
    ];
    for (edit, status, code) in cases {
        let r = create_with(&s, edit);
        assert_eq!(
            (r.status.as_u16(), r.error_type()),
            (status, code),
            "{}",
            r.brief()
        );
        nothing(&s);
    }

    // Too large for the edge: the CreateFunction body limit.
    let big = vec![b' '; stratus_api::MAX_REQUEST_BYTES + 1];
    expect(
        &s,
        &post("").body(big),
        413,
        "RequestEntityTooLargeException",
    );
    nothing(&s);

    // Unknown operations.
    expect(
        &s,
        &Req::new(Method::GET, "/2015-03-31/nothing-here"),
        404,
        "UnknownOperationException",
    );
    expect(
        &s,
        &Req::new(Method::POST, "/2015-03-31/functions/x/no-such-operation"),
        404,
        "UnknownOperationException",
    );
    nothing(&s);

    // ListFunctions parameters.
    for q in ["MaxItems=0", "MaxItems=10001", "MaxItems=-1"] {
        expect(
            &s,
            &Req::new(Method::GET, format!("/2015-03-31/functions?{q}")),
            400,
            "ValidationException",
        );
    }
    for q in ["MaxItems=abc", "MaxItems=", "Marker=!!!", "Marker=%FF"] {
        expect(
            &s,
            &Req::new(Method::GET, format!("/2015-03-31/functions?{q}")),
            400,
            "InvalidParameterValueException",
        );
    }

    // Now one real function: conflicts, invoke payload checks, updates.
    let r = create_with(&s, |_| {});
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.brief());
    let revision = r.json()["RevisionId"].as_str().unwrap().to_string();
    assert_eq!(s.function_names(None), ["ex-fn"]);
    let r = create_with(&s, |_| {});
    assert_eq!(
        (r.status.as_u16(), r.error_type()),
        (409, "ResourceConflictException")
    );

    let invoke = |body: Vec<u8>| {
        Req::new(Method::POST, "/2015-03-31/functions/ex-fn/invocations").body(body)
    };
    let max = stratus_lambda::invoke::MAX_SYNC_PAYLOAD;
    assert_eq!(max, 6 * 1024 * 1024);
    // 6 MB + 1 byte of valid JSON: too large, before anything else.
    let mut over = vec![b'"'; 1];
    over.extend(std::iter::repeat_n(b'x', max - 1));
    over.push(b'"');
    assert_eq!(over.len(), max + 1);
    expect(&s, &invoke(over.clone()), 413, "RequestTooLargeException");
    expect(
        &s,
        &Req::new(Method::POST, "/2015-03-31/functions/nope/invocations").body(over),
        413,
        "RequestTooLargeException",
    );
    for bad in [
        &b"not json"[..],
        b"{",
        b"{\"a\":1}}",
        b"\xff\xfe",
        b"NaN",
        b"{'a': 1}",
    ] {
        expect(
            &s,
            &invoke(bad.to_vec()),
            400,
            "InvalidRequestContentException",
        );
    }
    expect(
        &s,
        &invoke(b"[".repeat(100_000)),
        400,
        "InvalidRequestContentException",
    );
    expect(
        &s,
        &invoke(b"{}".to_vec()).header("x-amz-invocation-type", "Bogus"),
        400,
        "ValidationException",
    );
    expect(
        &s,
        &invoke(b"{}".to_vec()).header("x-amz-log-type", "Everything"),
        400,
        "ValidationException",
    );
    expect(
        &s,
        &invoke(b"{}".to_vec()).header("x-amz-client-context", "not base64"),
        400,
        "InvalidRequestContentException",
    );
    expect(
        &s,
        &invoke(b"{}".to_vec()).header("x-amz-client-context", &b64(b"[1]")),
        400,
        "InvalidRequestContentException",
    );
    // A valid invoke still works, and echoes the payload.
    let r = s.call(&invoke(br#"{"k": [1, "two", null]}"#.to_vec()));
    assert_eq!(r.status, StatusCode::OK, "{}", r.brief());
    assert_eq!(r.json(), json!({"k": [1, "two", null]}));

    // Failed updates change nothing.
    let config = |s: &Server| s.get_config("ex-fn").json();
    let cfg = config(&s);
    let revision_now = cfg["RevisionId"].as_str().unwrap().to_string();
    assert_eq!(revision_now, revision, "nothing updated the function yet");
    let put = |what: &str, body: &str| {
        Req::new(Method::PUT, format!("/2015-03-31/functions/ex-fn/{what}")).body(body.to_string())
    };
    for (what, body, status, code) in [
        (
            "configuration",
            "{\"MemorySize\": 64}",
            400,
            "ValidationException",
        ),
        (
            "configuration",
            "{\"Timeout\": 901}",
            400,
            "InvalidParameterValueException",
        ),
        (
            "configuration",
            "{\"Runtime\": \"cobol\"}",
            400,
            "ValidationException",
        ),
        (
            "configuration",
            "{\"MemorySize\": \"x\"}",
            400,
            "InvalidRequestContentException",
        ),
        (
            "configuration",
            "{\"RevisionId\": \"stale\"}",
            412,
            "PreconditionFailedException",
        ),
        (
            "code",
            "{\"ZipFile\": \"not base64!\"}",
            400,
            "InvalidRequestContentException",
        ),
        (
            "code",
            "{\"ZipFile\": \"\"}",
            400,
            "InvalidParameterValueException",
        ),
        ("code", "{}", 400, "InvalidParameterValueException"),
        ("code", "{", 400, "InvalidRequestContentException"),
    ] {
        expect(&s, &put(what, body), status, code);
        assert_eq!(
            config(&s),
            cfg,
            "failed {what} update {body} changed the function"
        );
    }
    // Tags.
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:ex-fn";
    expect(
        &s,
        &Req::new(Method::DELETE, format!("/2017-03-31/tags/{arn}")),
        400,
        "InvalidParameterValueException",
    );
    expect(
        &s,
        &Req::new(Method::POST, format!("/2017-03-31/tags/{arn}")).body("{\"Tags\": {\"k\": 1}}"),
        400,
        "InvalidRequestContentException",
    );
    expect(
        &s,
        &Req::new(Method::POST, "/2017-03-31/tags/ex-fn").body("{\"Tags\": {\"k\": \"v\"}}"),
        400,
        "ValidationException",
    );
    let r = s.call(&Req::new(Method::GET, format!("/2017-03-31/tags/{arn}")));
    assert_eq!(r.json(), json!({"Tags": {}}));

    assert_eq!(s.function_names(None), ["ex-fn"]);
    s.healthy().unwrap();
}

// ---------------------------------------------------------------------------
// Regressions: each test pins an error shape the fuzzers once found wrong.

/// A percent-encoded path segment that is not UTF-8 (`%FF`) is refused by
/// axum's `Path<String>` extractor with its own plain-text 400, which has no
/// `x-amzn-ErrorType`, no JSON body and no request id.
#[test]
fn regression_invalid_utf8_in_path_is_not_an_aws_error() {
    let s = Server::new();
    for uri in [
        "/2015-03-31/functions/%FF",
        "/2015-03-31/functions/%FF/configuration",
        "/2015-03-31/functions/%C3/invocations",
        "/2017-03-31/tags/%FF",
        "/_stratus/code/%FF/a/b.zip",
    ] {
        let method = if uri.ends_with("invocations") {
            Method::POST
        } else {
            Method::GET
        };
        let req = Req::new(method, uri).body("{}");
        let r = s.send(&req);
        check_response(&req, &r).unwrap();
    }
}

/// A method the route does not serve (`PATCH /2015-03-31/functions`,
/// `GET .../invocations`) gets axum's bare 405 without an AWS error body.
#[test]
fn regression_wrong_method_is_not_an_aws_error() {
    let s = Server::new();
    for (m, uri) in [
        (Method::PATCH, "/2015-03-31/functions"),
        (Method::PUT, "/2015-03-31/functions"),
        (Method::GET, "/2015-03-31/functions/x/invocations"),
        (Method::POST, "/2015-03-31/functions/x"),
        (Method::DELETE, "/2015-03-31/functions/x/code"),
        (Method::PUT, "/2017-03-31/tags/x"),
    ] {
        let req = Req::new(m, uri);
        let r = s.send(&req);
        check_response(&req, &r).unwrap();
    }
}

/// A zip whose data does not match its CRC passes `accept_zip` (which only
/// reads the directory), so UpdateFunctionCode answers 200; unpacking then
/// fails in the background, LastUpdateStatus becomes Failed but State stays
/// Active with `code_hex` pointing at code that was never unpacked, and the
/// next invoke answers 500 ServiceException "The code of ... is not
/// unpacked". Expected: the corrupt package is refused with 400
/// InvalidParameterValueException, or invokes keep running the last good code.
#[test]
fn regression_bad_crc_package_breaks_invoke() {
    let s = Server::new();
    s.create_target();
    let req = Req::new(Method::PUT, format!("/2015-03-31/functions/{TARGET}/code"))
        .json(&json!({"ZipFile": b64(&bad_crc_zip())}));
    let r = s.send(&req);
    check_response(&req, &r).unwrap();
    let invoke = Req::new(
        Method::POST,
        format!("/2015-03-31/functions/{TARGET}/invocations"),
    )
    .body("{}");
    let r = s.send(&invoke);
    check_response(&invoke, &r).unwrap();
}

/// CreateFunction with a corrupt (bad CRC) package answers 201; the function
/// then goes to State Failed. Expected (as for other unreadable packages):
/// 400 InvalidParameterValueException and nothing created.
#[test]
fn regression_bad_crc_package_accepted_by_create() {
    let s = Server::new();
    expect(
        &s,
        &create_req("crc", &b64(&bad_crc_zip())),
        400,
        "InvalidParameterValueException",
    );
    assert_eq!(s.function_names(None), Vec::<String>::new());
}

/// A well-formed zip with no entries is accepted (201) and gives a function
/// with no code. Expected: 400 InvalidParameterValueException as for an
/// empty upload (AWS: "Uploaded file must be a non-empty zip").
#[test]
fn regression_empty_zip_archive_accepted() {
    let s = Server::new();
    expect(
        &s,
        &create_req("empty", &b64(&zip_of(&[]))),
        400,
        "InvalidParameterValueException",
    );
    assert_eq!(s.function_names(None), Vec::<String>::new());
}

/// The `Qualifier` query parameter is never checked against its model
/// constraints (length 1-128, pattern `(|[a-zA-Z0-9$_-]+)`): an empty, NUL
/// or over-long qualifier answers 404 ResourceNotFoundException naming
/// `...:function:fuzz-target:` instead of 400 ValidationException.
#[test]
fn regression_qualifier_query_not_validated() {
    let s = Server::new();
    s.create_target();
    let long = "q".repeat(200);
    for (m, path) in [
        (Method::GET, format!("/2015-03-31/functions/{TARGET}")),
        (
            Method::GET,
            format!("/2015-03-31/functions/{TARGET}/configuration"),
        ),
        (
            Method::POST,
            format!("/2015-03-31/functions/{TARGET}/invocations"),
        ),
        (Method::DELETE, format!("/2015-03-31/functions/{TARGET}")),
    ] {
        for q in ["", "%00x", "a%20b", long.as_str()] {
            let req = Req::new(m.clone(), format!("{path}?Qualifier={q}")).body("{}");
            let r = s.call(&req);
            assert_eq!(
                (r.status.as_u16(), r.error_type()),
                (400, "ValidationException"),
                "{} {} -> {}",
                req.method,
                req.uri,
                r.brief()
            );
        }
    }
}

/// `X-Amz-Invocation-Type` / `X-Amz-Log-Type` / `X-Amz-Client-Context`
/// values that are not visible ASCII are silently dropped (`header_str`
/// ignores values `to_str` refuses), so `X-Amz-Invocation-Type: Bogus\xff`
/// runs the function (200) instead of answering 400 ValidationException.
#[test]
fn regression_non_ascii_invoke_headers_ignored() {
    let s = Server::new();
    s.create_target();
    for (h, code) in [
        ("x-amz-invocation-type", "ValidationException"),
        ("x-amz-log-type", "ValidationException"),
        ("x-amz-client-context", "InvalidRequestContentException"),
    ] {
        let mut req = Req::new(
            Method::POST,
            format!("/2015-03-31/functions/{TARGET}/invocations"),
        )
        .body("{}");
        req.headers.push((
            h.to_string(),
            HeaderValue::from_bytes(b"Bogus\xff").unwrap(),
        ));
        let r = s.call(&req);
        assert_eq!(
            (r.status.as_u16(), r.error_type()),
            (400, code),
            "{h}: {}",
            r.brief()
        );
    }
}
