//! Lambda routes for versions, aliases, reserved concurrency and provisioned
//! concurrency (URIs, status codes and query parameters from botocore's
//! `lambda/2015-03-31` model).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;
use stratus_core::AwsError;

use crate::{Edge, no_content, query_get, query_pairs, region_of, reply};

/// PublishVersion: `POST /2015-03-31/functions/{FunctionName}/versions` (201).
pub(crate) async fn publish_version(
    State(s): State<Edge>,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = body_or_return!(body, "PublishVersion");
    reply(
        StatusCode::CREATED,
        s.lambda.publish_version(&region_of(&h), &name, &body).await,
    )
}

/// ListVersionsByFunction: `GET /2015-03-31/functions/{FunctionName}/versions`.
pub(crate) async fn list_versions(
    State(s): State<Edge>,
    h: HeaderMap,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query_pairs(q.as_deref());
    reply(
        StatusCode::OK,
        s.lambda.list_versions_by_function(
            &region_of(&h),
            &name,
            query_get(&q, "Marker").as_deref(),
            query_get(&q, "MaxItems").as_deref(),
        ),
    )
}

/// CreateAlias: `POST /2015-03-31/functions/{FunctionName}/aliases` (201).
pub(crate) async fn create_alias(
    State(s): State<Edge>,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = body_or_return!(body, "CreateAlias");
    reply(
        StatusCode::CREATED,
        s.lambda.create_alias(&region_of(&h), &name, &body).await,
    )
}

/// ListAliases: `GET /2015-03-31/functions/{FunctionName}/aliases`.
pub(crate) async fn list_aliases(
    State(s): State<Edge>,
    h: HeaderMap,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query_pairs(q.as_deref());
    reply(
        StatusCode::OK,
        s.lambda.list_aliases(
            &region_of(&h),
            &name,
            query_get(&q, "FunctionVersion").as_deref(),
            query_get(&q, "Marker").as_deref(),
            query_get(&q, "MaxItems").as_deref(),
        ),
    )
}

/// GetAlias: `GET /2015-03-31/functions/{FunctionName}/aliases/{Name}`.
pub(crate) async fn get_alias(
    State(s): State<Edge>,
    h: HeaderMap,
    Path((name, alias)): Path<(String, String)>,
) -> Response {
    reply(
        StatusCode::OK,
        s.lambda.get_alias(&region_of(&h), &name, &alias),
    )
}

/// UpdateAlias: `PUT /2015-03-31/functions/{FunctionName}/aliases/{Name}`.
pub(crate) async fn update_alias(
    State(s): State<Edge>,
    h: HeaderMap,
    Path((name, alias)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = body_or_return!(body, "UpdateAlias");
    reply(
        StatusCode::OK,
        s.lambda
            .update_alias(&region_of(&h), &name, &alias, &body)
            .await,
    )
}

/// DeleteAlias: `DELETE /2015-03-31/functions/{FunctionName}/aliases/{Name}` (204).
pub(crate) async fn delete_alias(
    State(s): State<Edge>,
    h: HeaderMap,
    Path((name, alias)): Path<(String, String)>,
) -> Response {
    no_content(s.lambda.delete_alias(&region_of(&h), &name, &alias).await)
}

/// PutFunctionConcurrency: `PUT /2017-10-31/functions/{FunctionName}/concurrency`.
pub(crate) async fn put_function_concurrency(
    State(s): State<Edge>,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = body_or_return!(body, "PutFunctionConcurrency");
    reply(
        StatusCode::OK,
        s.lambda
            .put_function_concurrency(&region_of(&h), &name, &body)
            .await,
    )
}

/// DeleteFunctionConcurrency: `DELETE /2017-10-31/functions/{FunctionName}/concurrency` (204).
pub(crate) async fn delete_function_concurrency(
    State(s): State<Edge>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    no_content(
        s.lambda
            .delete_function_concurrency(&region_of(&h), &name)
            .await,
    )
}

/// GetFunctionConcurrency: `GET /2019-09-30/functions/{FunctionName}/concurrency`.
pub(crate) async fn get_function_concurrency(
    State(s): State<Edge>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    reply(
        StatusCode::OK,
        s.lambda.get_function_concurrency(&region_of(&h), &name),
    )
}

fn view(
    r: Result<stratus_lambda::ProvisionedConcurrencyView, AwsError>,
) -> Result<Value, AwsError> {
    r.and_then(|v| serde_json::to_value(v).map_err(|e| AwsError::service(e.to_string())))
}

/// PutProvisionedConcurrencyConfig:
/// `PUT /2019-09-30/functions/{FunctionName}/provisioned-concurrency?Qualifier=Q` (202).
pub(crate) async fn put_provisioned(
    State(s): State<Edge>,
    h: HeaderMap,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = body_or_return!(body, "PutProvisionedConcurrencyConfig");
    let q = query_pairs(q.as_deref());
    let requested = match stratus_lambda::provisioned::parse_put_body(&body) {
        Ok(n) => n,
        Err(e) => return crate::error_response(&e),
    };
    reply(
        StatusCode::ACCEPTED,
        view(
            s.lambda
                .put_provisioned_concurrency_config(
                    &region_of(&h),
                    &name,
                    query_get(&q, "Qualifier").as_deref(),
                    requested,
                )
                .await,
        ),
    )
}

/// GetProvisionedConcurrencyConfig (`GET ...?Qualifier=Q`) or
/// ListProvisionedConcurrencyConfigs (`GET ...?List=ALL`).
pub(crate) async fn get_provisioned(
    State(s): State<Edge>,
    h: HeaderMap,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query_pairs(q.as_deref());
    let region = region_of(&h);
    if query_get(&q, "List").is_some() {
        return reply(
            StatusCode::OK,
            s.lambda.list_provisioned_concurrency_configs(
                &region,
                &name,
                query_get(&q, "Marker").as_deref(),
                query_get(&q, "MaxItems").as_deref(),
            ),
        );
    }
    reply(
        StatusCode::OK,
        view(s.lambda.get_provisioned_concurrency_config(
            &region,
            &name,
            query_get(&q, "Qualifier").as_deref(),
        )),
    )
}

/// DeleteProvisionedConcurrencyConfig: `DELETE ...?Qualifier=Q` (204).
pub(crate) async fn delete_provisioned(
    State(s): State<Edge>,
    h: HeaderMap,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query_pairs(q.as_deref());
    no_content(
        s.lambda
            .delete_provisioned_concurrency_config(
                &region_of(&h),
                &name,
                query_get(&q, "Qualifier").as_deref(),
            )
            .await,
    )
}
