//! Lambda routes for asynchronous invocation: the event invoke
//! configuration operations and the deprecated InvokeAsync (URIs and status
//! codes from botocore's `lambda/2015-03-31` model).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;
use stratus_lambda::InvokeRequest;

use crate::{Edge, no_content, query_get, query_pairs, region_of, reply};

/// PutFunctionEventInvokeConfig: `PUT /2019-09-25/functions/{FunctionName}/event-invoke-config`.
pub(crate) async fn put_config(
    State(s): State<Edge>,
    h: HeaderMap,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = body_or_return!(body, "PutFunctionEventInvokeConfig");
    let q = query_pairs(q.as_deref());
    reply(
        StatusCode::OK,
        s.lambda
            .put_event_invoke_config(
                &region_of(&h),
                &name,
                query_get(&q, "Qualifier").as_deref(),
                &body,
            )
            .await,
    )
}

/// UpdateFunctionEventInvokeConfig: `POST /2019-09-25/functions/{FunctionName}/event-invoke-config`.
pub(crate) async fn update_config(
    State(s): State<Edge>,
    h: HeaderMap,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = body_or_return!(body, "UpdateFunctionEventInvokeConfig");
    let q = query_pairs(q.as_deref());
    reply(
        StatusCode::OK,
        s.lambda
            .update_event_invoke_config(
                &region_of(&h),
                &name,
                query_get(&q, "Qualifier").as_deref(),
                &body,
            )
            .await,
    )
}

/// GetFunctionEventInvokeConfig: `GET /2019-09-25/functions/{FunctionName}/event-invoke-config`.
pub(crate) async fn get_config(
    State(s): State<Edge>,
    h: HeaderMap,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query_pairs(q.as_deref());
    reply(
        StatusCode::OK,
        s.lambda.get_event_invoke_config(
            &region_of(&h),
            &name,
            query_get(&q, "Qualifier").as_deref(),
        ),
    )
}

/// DeleteFunctionEventInvokeConfig: `DELETE /2019-09-25/functions/{FunctionName}/event-invoke-config` (204).
pub(crate) async fn delete_config(
    State(s): State<Edge>,
    h: HeaderMap,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query_pairs(q.as_deref());
    no_content(
        s.lambda
            .delete_event_invoke_config(
                &region_of(&h),
                &name,
                query_get(&q, "Qualifier").as_deref(),
            )
            .await,
    )
}

/// ListFunctionEventInvokeConfigs: `GET /2019-09-25/functions/{FunctionName}/event-invoke-config/list`.
pub(crate) async fn list_configs(
    State(s): State<Edge>,
    h: HeaderMap,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query_pairs(q.as_deref());
    reply(
        StatusCode::OK,
        s.lambda.list_event_invoke_configs(
            &region_of(&h),
            &name,
            query_get(&q, "Marker").as_deref(),
            query_get(&q, "MaxItems").as_deref(),
        ),
    )
}

/// InvokeAsync (deprecated): `POST /2014-11-13/functions/{FunctionName}/invoke-async/`
/// (202, `{"Status": 202}`); the event is queued as Invoke with
/// `InvocationType: Event` queues it. The payload limit is 256 KB (the
/// InvokeAsync API reference).
pub(crate) async fn invoke_async(
    State(s): State<Edge>,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = body_or_return!(body, "InvokeAsync");
    if body.len() > 262_144 {
        return crate::error_response(&stratus_core::AwsError::new(
            413,
            "RequestTooLargeException",
            "Request must be smaller than 262144 bytes for the InvokeAsync operation",
        ));
    }
    let req = InvokeRequest {
        function_name: name,
        qualifier: None,
        invocation_type: Some("Event".into()),
        log_type: None,
        client_context: None,
        payload: body,
    };
    reply(
        StatusCode::ACCEPTED,
        s.lambda
            .invoke(&region_of(&h), req)
            .await
            .map(|_| json!({"Status": 202})),
    )
}
