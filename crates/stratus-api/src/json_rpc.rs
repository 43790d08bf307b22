//! The AWS json protocol (json 1.0 / 1.1): `POST /` with the operation in
//! the `X-Amz-Target` header (`<TargetPrefix>.<Operation>`), a JSON body
//! (`application/x-amz-json-1.x`), and errors as HTTP 400/500 with
//! `{"__type": "<Code>", "message": "..."}` and `x-amzn-ErrorType`.
//!
//! Services join by target prefix ([`JsonServices::with`]): Application
//! Auto Scaling is `AnyScaleFrontendService` (json 1.1); Step Functions
//! (`AWSStepFunctions`, 1.0), SQS (`AmazonSQS`, 1.0), EventBridge
//! (`AWSEvents`, 1.1) and CloudWatch Logs (`Logs_20140328`, 1.1) fit the same
//! shape. The codec knows nothing of the operations.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use stratus_core::{AwsError, AwsResult};

/// A boxed future answering one operation.
pub type JsonFuture = Pin<Box<dyn Future<Output = AwsResult<Value>> + Send>>;

/// Serves the operations of one service: `(region, operation, body)`.
pub type JsonHandler = Arc<dyn Fn(String, String, Bytes) -> JsonFuture + Send + Sync>;

/// One service of the json protocol.
#[derive(Clone)]
pub struct JsonService {
    /// `X-Amz-Target` prefix, e.g. `AnyScaleFrontendService`.
    pub target_prefix: &'static str,
    /// `1.0` or `1.1` (the content type of answers).
    pub json_version: &'static str,
    pub handler: JsonHandler,
}

/// The json-protocol services the edge serves on `POST /`.
#[derive(Clone, Default)]
pub struct JsonServices(Arc<Vec<JsonService>>);

impl JsonServices {
    /// No services.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a service answering `X-Amz-Target: <prefix>.<Operation>`.
    pub fn with<F, Fut>(self, target_prefix: &'static str, json_version: &'static str, f: F) -> Self
    where
        F: Fn(String, String, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = AwsResult<Value>> + Send + 'static,
    {
        let mut v = (*self.0).clone();
        v.push(JsonService {
            target_prefix,
            json_version,
            handler: Arc::new(move |r, o, b| Box::pin(f(r, o, b))),
        });
        JsonServices(Arc::new(v))
    }

    fn find(&self, prefix: &str) -> Option<&JsonService> {
        self.0.iter().find(|s| s.target_prefix == prefix)
    }
}

fn content_type(version: &str) -> HeaderValue {
    if version == "1.0" {
        HeaderValue::from_static("application/x-amz-json-1.0")
    } else {
        HeaderValue::from_static("application/x-amz-json-1.1")
    }
}

/// Encodes an error in the json protocol's shape.
pub fn json_error(e: &AwsError, version: &str) -> Response {
    let mut body = serde_json::Map::new();
    body.insert("__type".into(), Value::from(e.code.clone()));
    body.insert("message".into(), Value::from(e.message.clone()));
    // Extra fields named `x-amzn-...` are headers (SQS's
    // `x-amzn-query-error`), the others body fields (an `__type` replaces
    // the code in the body, as awsQueryCompatible services answer).
    let mut headers = Vec::new();
    for (k, v) in &e.extra {
        if k.starts_with("x-amzn-") {
            headers.push((k, v));
        } else {
            body.insert(k.clone(), Value::from(v.clone()));
        }
    }
    // The error type header names the same shape as `__type`.
    let error_type = body
        .get("__type")
        .and_then(Value::as_str)
        .map(|t| t.rsplit('#').next().unwrap_or(t).to_string())
        .unwrap_or_else(|| e.code.clone());
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (status, Value::Object(body).to_string()).into_response();
    let h = r.headers_mut();
    h.insert("content-type", content_type(version));
    if let Ok(v) = HeaderValue::from_str(&error_type) {
        h.insert("x-amzn-errortype", v);
    }
    for (k, v) in headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.insert(name, value);
        }
    }
    crate::with_request_id(r)
}

/// `POST /`: finds the service by the `X-Amz-Target` prefix and calls it.
pub async fn dispatch(
    Extension(services): Extension<JsonServices>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let target = h
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let version = h
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.strip_prefix("application/x-amz-json-"))
        .map(|v| if v.starts_with("1.0") { "1.0" } else { "1.1" })
        .unwrap_or("1.1");
    let Some((prefix, op)) = target.split_once('.') else {
        let msg = if target.is_empty() {
            "The request has no X-Amz-Target header: stratus cannot tell which operation it asks for."
                .to_string()
        } else {
            format!("X-Amz-Target '{target}' does not name an operation (Service.Operation).")
        };
        return json_error(
            &AwsError::new(400, "UnknownOperationException", msg),
            version,
        );
    };
    let Some(svc) = services.find(prefix) else {
        return json_error(
            &AwsError::new(
                400,
                "UnknownOperationException",
                format!(
                    "stratus serves no service with the target prefix {prefix} (X-Amz-Target {target})."
                ),
            ),
            version,
        );
    };
    let body = match body {
        Ok(b) => b,
        Err(rej) => {
            let e = if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AwsError::new(
                    413,
                    "RequestEntityTooLargeException",
                    "The request body is too large.",
                )
            } else {
                AwsError::new(
                    400,
                    "SerializationException",
                    format!("Could not read the request body: {rej}"),
                )
            };
            return json_error(&e, svc.json_version);
        }
    };
    match (svc.handler)(crate::region_of(&h), op.to_string(), body).await {
        Ok(v) => {
            let mut r = (StatusCode::OK, v.to_string()).into_response();
            r.headers_mut()
                .insert("content-type", content_type(svc.json_version));
            crate::with_request_id(r)
        }
        Err(e) => json_error(&e, svc.json_version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::post;
    use tower::ServiceExt;

    fn app() -> Router {
        let services =
            JsonServices::new().with("EchoService", "1.1", |region, op, body| async move {
                if op == "Fail" {
                    return Err(AwsError::new(400, "ValidationException", "bad"));
                }
                if op == "QueryCompatible" {
                    return Err(AwsError::new(400, "AWS.Queue.Gone", "gone")
                        .with_field("__type", "com.example#Gone")
                        .with_field("x-amzn-query-error", "AWS.Queue.Gone;Sender"));
                }
                Ok(serde_json::json!({"region": region, "op": op, "len": body.len()}))
            });
        Router::new()
            .route("/", post(dispatch))
            .layer(Extension(services))
    }

    async fn call(target: Option<&str>) -> (StatusCode, HeaderMap, Value) {
        let mut req =
            axum::http::Request::post("/").header("content-type", "application/x-amz-json-1.1");
        if let Some(t) = target {
            req = req.header("x-amz-target", t);
        }
        let resp = app()
            .oneshot(req.body(axum::body::Body::from("{}")).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, headers, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn routes_by_target() {
        let (s, h, v) = call(Some("EchoService.DoIt")).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(h["content-type"], "application/x-amz-json-1.1");
        assert_eq!(v["op"], "DoIt");
        assert_eq!(v["region"], "us-east-1");
    }

    #[tokio::test]
    async fn errors_in_json_shape() {
        let (s, h, v) = call(Some("EchoService.Fail")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(h["x-amzn-errortype"], "ValidationException");
        assert_eq!(v["__type"], "ValidationException");
        assert_eq!(v["message"], "bad");
        // awsQueryCompatible: `__type` names the shape, the query code
        // travels in the `x-amzn-query-error` header, not in the body.
        let (s, h, v) = call(Some("EchoService.QueryCompatible")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(v["__type"], "com.example#Gone");
        assert_eq!(h["x-amzn-query-error"], "AWS.Queue.Gone;Sender");
        assert_eq!(h["x-amzn-errortype"], "Gone");
        assert!(v.get("x-amzn-query-error").is_none());
        for t in [None, Some("Nope"), Some("OtherService.DoIt")] {
            let (s, h, v) = call(t).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{t:?}");
            assert_eq!(h["x-amzn-errortype"], "UnknownOperationException");
            assert_eq!(v["__type"], "UnknownOperationException");
        }
    }
}
