//! The edge: one HTTP port for every API. Routes requests to services and
//! encodes their answers and errors in each protocol's wire format.
//!
//! Lambda speaks rest-json (botocore `lambda/2015-03-31`): the operation is
//! chosen by method and URI, errors carry the `x-amzn-ErrorType` header and a
//! JSON body `{"Type": "User", "message": "..."}`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::Value;
use stratus_core::error::ErrorKind;
use stratus_core::{AwsError, DEFAULT_REGION};
use stratus_lambda::{InvokeRequest, Lambda};

pub mod json_rpc;
pub mod query;
pub mod rpc_v2;
/// The body of a request, or return the AWS error response for a body that
/// cannot be read (too large for `$op`, or broken).
macro_rules! body_or_return {
    ($body:expr, $op:expr) => {
        match $crate::body_or_error($body, $op) {
            Ok(b) => b,
            Err(r) => return r,
        }
    };
}

mod lambda_async;
mod lambda_layers;
mod lambda_versions;

pub use json_rpc::JsonServices;
pub use query::{QueryRequest, QueryServices};

/// Largest request body the edge accepts (69,905,067 bytes: a 50 MB zip in
/// base64 inside JSON, the limit AWS names for CreateFunction).
pub const MAX_REQUEST_BYTES: usize = 69_905_067;

/// Everything the handlers need.
#[derive(Clone)]
pub struct Edge {
    /// The Lambda service.
    pub lambda: Arc<Lambda>,
    /// Extra facts reported by the health endpoint (isolation mode, ...).
    pub health: Arc<Value>,
}

/// Builds the edge router.
pub fn router(edge: Edge) -> Router {
    router_with(edge, JsonServices::new())
}

/// Builds the edge router with the json-protocol services answering
/// `POST /` by `X-Amz-Target` (see [`json_rpc`]).
pub fn router_with(edge: Edge, json_services: JsonServices) -> Router {
    router_with_all(edge, json_services, QueryServices::new())
}

/// Builds the edge router with the json-protocol services (`POST /` with
/// `X-Amz-Target`) and the query-protocol services (`POST /` or a queue
/// URL path with a form-encoded body, see [`query`]).
pub fn router_with_all(
    edge: Edge,
    json_services: JsonServices,
    query_services: QueryServices,
) -> Router {
    Router::new()
        .route("/", axum::routing::post(post_root))
        .route(
            "/{account}/{queue}",
            axum::routing::post(post_queue_path).fallback(unknown),
        )
        .route(
            "/2015-03-31/functions",
            post(create_function).get(list_functions),
        )
        .route(
            "/2015-03-31/functions/",
            post(create_function).get(list_functions),
        )
        .route(
            "/2015-03-31/functions/{name}",
            get(get_function).delete(delete_function),
        )
        .route(
            "/2015-03-31/functions/{name}/configuration",
            get(get_function_configuration).put(update_function_configuration),
        )
        .route(
            "/2015-03-31/functions/{name}/code",
            put(update_function_code),
        )
        .route("/2015-03-31/functions/{name}/invocations", post(invoke))
        .route(
            "/2015-03-31/functions/{name}/versions",
            post(lambda_versions::publish_version).get(lambda_versions::list_versions),
        )
        .route(
            "/2015-03-31/functions/{name}/aliases",
            post(lambda_versions::create_alias).get(lambda_versions::list_aliases),
        )
        .route(
            "/2015-03-31/functions/{name}/aliases/{alias}",
            get(lambda_versions::get_alias)
                .put(lambda_versions::update_alias)
                .delete(lambda_versions::delete_alias),
        )
        .route(
            "/2017-10-31/functions/{name}/concurrency",
            put(lambda_versions::put_function_concurrency)
                .delete(lambda_versions::delete_function_concurrency),
        )
        .route(
            "/2019-09-30/functions/{name}/concurrency",
            get(lambda_versions::get_function_concurrency),
        )
        .route(
            "/2019-09-30/functions/{name}/provisioned-concurrency",
            put(lambda_versions::put_provisioned)
                .get(lambda_versions::get_provisioned)
                .delete(lambda_versions::delete_provisioned),
        )
        .route(
            "/2019-09-25/functions/{name}/event-invoke-config",
            put(lambda_async::put_config)
                .post(lambda_async::update_config)
                .get(lambda_async::get_config)
                .delete(lambda_async::delete_config),
        )
        .route(
            "/2019-09-25/functions/{name}/event-invoke-config/list",
            get(lambda_async::list_configs),
        )
        .route(
            "/2014-11-13/functions/{name}/invoke-async",
            post(lambda_async::invoke_async),
        )
        .route(
            "/2014-11-13/functions/{name}/invoke-async/",
            post(lambda_async::invoke_async),
        )
        .route("/2016-08-19/account-settings", get(account_settings))
        .route("/2016-08-19/account-settings/", get(account_settings))
        .route(
            "/2017-03-31/tags/{arn}",
            get(list_tags).post(tag_resource).delete(untag_resource),
        )
        .route("/2018-10-31/layers", get(lambda_layers::list_layers))
        .route("/2018-10-31/layers/", get(lambda_layers::list_layers))
        .route(
            "/2018-10-31/layers/{name}/versions",
            post(lambda_layers::publish_layer_version).get(lambda_layers::list_layer_versions),
        )
        .route(
            "/2018-10-31/layers/{name}/versions/{version}",
            get(lambda_layers::get_layer_version).delete(lambda_layers::delete_layer_version),
        )
        .route(
            "/2018-10-31/layers/{name}/versions/{version}/policy",
            post(lambda_layers::add_layer_version_permission)
                .get(lambda_layers::get_layer_version_policy),
        )
        .route(
            "/2018-10-31/layers/{name}/versions/{version}/policy/{sid}",
            axum::routing::delete(lambda_layers::remove_layer_version_permission),
        )
        .route(
            "/_stratus/layers/{region}/{name}/{version}/{file}",
            get(lambda_layers::layer_download),
        )
        .route("/_stratus/health", get(health))
        .route("/_stratus/code/{region}/{name}/{file}", get(code_download))
        .fallback(unknown)
        .layer(axum::Extension(json_services))
        .layer(axum::Extension(query_services))
        .layer(axum::middleware::map_response(aws_error_shape))
        .layer(axum::middleware::map_request(check_qualifier))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(edge)
}

/// The region of a request: the SigV4 credential scope of its
/// `Authorization` header, else `us-east-1`.
pub fn region_of(h: &HeaderMap) -> String {
    h.get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(stratus_core::arn::region_from_authorization)
        .unwrap_or_else(|| DEFAULT_REGION.to_string())
}

/// Encodes an [`AwsError`] as Lambda's rest-json error response.
pub fn error_response(e: &AwsError) -> Response {
    let mut body = serde_json::Map::new();
    body.insert(
        "Type".into(),
        Value::from(if e.kind == ErrorKind::User {
            "User"
        } else {
            "Service"
        }),
    );
    body.insert("message".into(), Value::from(e.message.clone()));
    for (k, v) in &e.extra {
        body.insert(k.clone(), Value::from(v.clone()));
    }
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (status, Value::Object(body).to_string()).into_response();
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&e.code) {
        h.insert("x-amzn-errortype", v);
    }
    with_request_id(r)
}

fn with_request_id(mut r: Response) -> Response {
    if let Ok(v) = HeaderValue::from_str(&stratus_core::request_id()) {
        r.headers_mut().insert("x-amzn-requestid", v);
    }
    r
}

fn json(status: StatusCode, v: Value) -> Response {
    with_request_id(
        (
            status,
            [("content-type", "application/json")],
            v.to_string(),
        )
            .into_response(),
    )
}

fn reply(status: StatusCode, r: Result<Value, AwsError>) -> Response {
    match r {
        Ok(v) => json(status, v),
        Err(e) => error_response(&e),
    }
}

fn no_content(r: Result<(), AwsError>) -> Response {
    match r {
        Ok(()) => with_request_id(StatusCode::NO_CONTENT.into_response()),
        Err(e) => error_response(&e),
    }
}

// The error is a ready response, returned once per request: boxing it would
// buy nothing.
#[allow(clippy::result_large_err)]
pub(crate) fn body_or_error(b: Result<Bytes, BytesRejection>, op: &str) -> Result<Bytes, Response> {
    b.map_err(|rej| {
        let e = if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AwsError::new(
                413,
                "RequestEntityTooLargeException",
                format!(
                    "Request must be smaller than {MAX_REQUEST_BYTES} bytes for the {op} operation"
                ),
            )
        } else {
            AwsError::invalid_request_content(format!("Could not read the request body: {rej}"))
        };
        error_response(&e)
    })
}

/// Query parameters in order, percent-decoded (`tagKeys` repeats).
fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = q else { return Vec::new() };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    percent_encoding::percent_decode_str(&s)
        .decode_utf8_lossy()
        .into_owned()
}

fn query_get(q: &[(String, String)], key: &str) -> Option<String> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

async fn create_function(
    State(s): State<Edge>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = body_or_return!(body, "CreateFunction");
    reply(
        StatusCode::CREATED,
        s.lambda.create_function(&region_of(&h), &body).await,
    )
}

async fn list_functions(State(s): State<Edge>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let q = query_pairs(q.as_deref());
    reply(
        StatusCode::OK,
        s.lambda.list_functions(
            &region_of(&h),
            query_get(&q, "Marker").as_deref(),
            query_get(&q, "MaxItems").as_deref(),
        ),
    )
}

async fn get_function(
    State(s): State<Edge>,
    h: HeaderMap,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query_pairs(q.as_deref());
    reply(
        StatusCode::OK,
        s.lambda
            .get_function(&region_of(&h), &name, query_get(&q, "Qualifier").as_deref()),
    )
}

async fn get_function_configuration(
    State(s): State<Edge>,
    h: HeaderMap,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query_pairs(q.as_deref());
    reply(
        StatusCode::OK,
        s.lambda.get_function_configuration(
            &region_of(&h),
            &name,
            query_get(&q, "Qualifier").as_deref(),
        ),
    )
}

async fn update_function_configuration(
    State(s): State<Edge>,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = body_or_return!(body, "UpdateFunctionConfiguration");
    reply(
        StatusCode::OK,
        s.lambda
            .update_function_configuration(&region_of(&h), &name, &body)
            .await,
    )
}

async fn update_function_code(
    State(s): State<Edge>,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = body_or_return!(body, "UpdateFunctionCode");
    reply(
        StatusCode::OK,
        s.lambda
            .update_function_code(&region_of(&h), &name, &body)
            .await,
    )
}

async fn delete_function(
    State(s): State<Edge>,
    h: HeaderMap,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query_pairs(q.as_deref());
    no_content(
        s.lambda
            .delete_function(&region_of(&h), &name, query_get(&q, "Qualifier").as_deref())
            .await,
    )
}

/// A header's value; a header that is present but not visible ASCII is an
/// error (`invalid` builds it).
fn header_str(
    h: &HeaderMap,
    name: &str,
    invalid: fn(String) -> AwsError,
) -> Result<Option<String>, AwsError> {
    match h.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.to_string()))
            .map_err(|_| invalid(format!("The {name} header must be visible ASCII text."))),
    }
}

async fn invoke(
    State(s): State<Edge>,
    h: HeaderMap,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let payload = match body {
        Ok(b) => b,
        Err(rej) if rej.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error_response(&AwsError::new(
                413,
                "RequestTooLargeException",
                format!(
                    "Request must be smaller than {} bytes for the InvokeFunction operation",
                    stratus_lambda::invoke::MAX_SYNC_PAYLOAD
                ),
            ));
        }
        Err(rej) => {
            return error_response(&AwsError::invalid_request_content(format!(
                "Could not read the request body: {rej}"
            )));
        }
    };
    let q = query_pairs(q.as_deref());
    let req = InvokeRequest {
        function_name: name,
        qualifier: query_get(&q, "Qualifier"),
        invocation_type: match header_str(&h, "x-amz-invocation-type", AwsError::validation) {
            Ok(v) => v,
            Err(e) => return error_response(&e),
        },
        log_type: match header_str(&h, "x-amz-log-type", AwsError::validation) {
            Ok(v) => v,
            Err(e) => return error_response(&e),
        },
        client_context: match header_str(
            &h,
            "x-amz-client-context",
            AwsError::invalid_request_content,
        ) {
            Ok(v) => v,
            Err(e) => return error_response(&e),
        },
        payload,
    };
    match s.lambda.invoke(&region_of(&h), req).await {
        Err(e) => error_response(&e),
        Ok(r) => {
            let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
            let mut resp = (status, r.payload).into_response();
            let hm = resp.headers_mut();
            if status != StatusCode::NO_CONTENT {
                hm.insert("content-type", HeaderValue::from_static("application/json"));
            }
            if let Some(v) = r
                .executed_version
                .and_then(|v| HeaderValue::from_str(&v).ok())
            {
                hm.insert("x-amz-executed-version", v);
            }
            if let Some(v) = r
                .function_error
                .and_then(|v| HeaderValue::from_str(&v).ok())
            {
                hm.insert("x-amz-function-error", v);
            }
            if let Some(v) = r.log_result.and_then(|v| HeaderValue::from_str(&v).ok()) {
                hm.insert("x-amz-log-result", v);
            }
            match r.request_id.and_then(|v| HeaderValue::from_str(&v).ok()) {
                Some(v) => {
                    resp.headers_mut().insert("x-amzn-requestid", v);
                    resp
                }
                None => with_request_id(resp),
            }
        }
    }
}

async fn account_settings(State(s): State<Edge>, h: HeaderMap) -> Response {
    reply(
        StatusCode::OK,
        s.lambda.get_account_settings(&region_of(&h)),
    )
}

async fn list_tags(State(s): State<Edge>, h: HeaderMap, Path(arn): Path<String>) -> Response {
    reply(StatusCode::OK, s.lambda.list_tags(&region_of(&h), &arn))
}

async fn tag_resource(
    State(s): State<Edge>,
    h: HeaderMap,
    Path(arn): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = body_or_return!(body, "TagResource");
    no_content(s.lambda.tag_resource(&region_of(&h), &arn, &body).await)
}

async fn untag_resource(
    State(s): State<Edge>,
    h: HeaderMap,
    Path(arn): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query_pairs(q.as_deref());
    let keys: Vec<String> = q
        .into_iter()
        .filter(|(k, _)| k == "tagKeys")
        .map(|(_, v)| v)
        .collect();
    if keys.is_empty() {
        return error_response(&AwsError::invalid_parameter(
            "TagKeys is a required parameter and was not provided.",
        ));
    }
    no_content(s.lambda.untag_resource(&region_of(&h), &arn, &keys).await)
}

async fn health(State(s): State<Edge>) -> Response {
    let mut v = (*s.health).clone();
    v["status"] = Value::from("ok");
    v["idleEnvironments"] = Value::from(s.lambda.idle_environments());
    v["environments"] = Value::from(s.lambda.environments());
    v["provisionedEnvironments"] = Value::from(s.lambda.provisioned_environments());
    json(StatusCode::OK, v)
}

async fn code_download(
    State(s): State<Edge>,
    Path((region, name, file)): Path<(String, String, String)>,
) -> Response {
    let Some(hex) = file.strip_suffix(".zip") else {
        return error_response(&AwsError::not_found("No such code package."));
    };
    match s.lambda.code_bytes(&region, &name, hex) {
        Ok(b) => with_request_id(([("content-type", "application/zip")], b).into_response()),
        Err(e) => error_response(&e),
    }
}

/// `POST /`: the query protocol for form-encoded bodies, else the json
/// protocol (`X-Amz-Target`).
async fn post_root(
    json: axum::Extension<JsonServices>,
    axum::Extension(query): axum::Extension<QueryServices>,
    h: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    if query::is_form(&h) {
        return match body {
            Ok(b) => query::dispatch(&query, &h, "/", &b).await,
            Err(rej) => query::query_error(
                &AwsError::new(
                    400,
                    "MalformedQueryString",
                    format!("Could not read the request body: {rej}"),
                ),
                "",
                &stratus_core::request_id(),
            ),
        };
    }
    json_rpc::dispatch(json, h, body).await
}

/// `POST /<account>/<queue>`: an SQS queue URL (older SQS clients post
/// query-protocol requests to the queue's URL; current ones post json to
/// `/` but some send it to the queue URL too).
async fn post_queue_path(
    json: axum::Extension<JsonServices>,
    axum::Extension(query): axum::Extension<QueryServices>,
    uri: Uri,
    h: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    // A queue URL's path starts with the 12-digit account id.
    let account = uri
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("");
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return unknown(Method::POST, uri).await;
    }
    if query::is_form(&h) {
        return match body {
            Ok(b) => query::dispatch(&query, &h, uri.path(), &b).await,
            Err(rej) => query::query_error(
                &AwsError::new(
                    400,
                    "MalformedQueryString",
                    format!("Could not read the request body: {rej}"),
                ),
                "",
                &stratus_core::request_id(),
            ),
        };
    }
    if h.contains_key("x-amz-target") {
        return json_rpc::dispatch(json, h, body).await;
    }
    unknown(Method::POST, uri).await
}

async fn unknown(method: Method, uri: Uri) -> Response {
    error_response(&AwsError::new(
        404,
        "UnknownOperationException",
        format!("stratus has no operation at {method} {}", uri.path()),
    ))
}

/// The `Qualifier` query parameter has one constraint everywhere in the
/// Lambda model (shape `Qualifier`/`NumericLatestPublishedOrAliasQualifier`:
/// 1-128 characters of `[a-zA-Z0-9$_-]`); a request breaking it is refused
/// with `ValidationException` before any handler runs.
async fn check_qualifier(req: axum::extract::Request) -> Result<axum::extract::Request, Response> {
    if let Some(q) = req.uri().query()
        && let Some((_, v)) = query_pairs(Some(q))
            .into_iter()
            .find(|(k, _)| k == "Qualifier")
        && (v.is_empty()
            || v.len() > 128
            || !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "$_-".contains(c)))
    {
        return Err(error_response(&AwsError::validation_errors(&[format!(
            "Value '{v}' at 'qualifier' failed to satisfy constraint: Member must satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+) and have length between 1 and 128"
        )])));
    }
    Ok(req)
}

/// Gives every error response AWS's shape. Errors produced by the HTTP layer
/// itself (a path that is not UTF-8, a method a route does not serve, a body
/// it cannot read) come out of axum as plain text; they get an error code, a
/// JSON body and a request id like every other error.
async fn aws_error_shape(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error())
        || resp.headers().contains_key("x-amzn-errortype")
    {
        return resp;
    }
    let (_, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let (code, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "UnknownOperationException",
            "stratus has no operation for this method on this path.".to_string(),
        ),
        StatusCode::NOT_FOUND => (
            "UnknownOperationException",
            "stratus has no operation at this path.".to_string(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "RequestEntityTooLargeException",
            format!("Request must be smaller than {MAX_REQUEST_BYTES} bytes."),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("UnsupportedMediaTypeException", text),
        s if s.is_client_error() => (
            "ValidationException",
            if text.is_empty() {
                "The request is not valid.".to_string()
            } else {
                text
            },
        ),
        _ => (
            "ServiceException",
            if text.is_empty() {
                "Internal error.".to_string()
            } else {
                text
            },
        ),
    };
    error_response(&AwsError::new(status.as_u16(), code, message))
}
