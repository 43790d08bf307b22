//! Lambda routes for layers (URIs, status codes and query parameters from
//! botocore's `lambda/2015-03-31` model, API version `2018-10-31`).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::{
    Edge, error_response, no_content, query_get, query_pairs, region_of, reply, with_request_id,
};

/// `GET /2018-10-31/layers`: ListLayers, or GetLayerVersionByArn with
/// `?find=LayerVersion&Arn=...`.
pub(crate) async fn list_layers(
    State(s): State<Edge>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query_pairs(q.as_deref());
    let region = region_of(&h);
    if query_get(&q, "find").as_deref() == Some("LayerVersion") {
        return reply(
            StatusCode::OK,
            s.lambda
                .get_layer_version_by_arn(&region, query_get(&q, "Arn").as_deref()),
        );
    }
    reply(
        StatusCode::OK,
        s.lambda.list_layers(
            &region,
            query_get(&q, "CompatibleRuntime").as_deref(),
            query_get(&q, "CompatibleArchitecture").as_deref(),
            query_get(&q, "Marker").as_deref(),
            query_get(&q, "MaxItems").as_deref(),
        ),
    )
}

/// PublishLayerVersion: `POST /2018-10-31/layers/{LayerName}/versions` (201).
pub(crate) async fn publish_layer_version(
    State(s): State<Edge>,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = body_or_return!(body, "PublishLayerVersion");
    reply(
        StatusCode::CREATED,
        s.lambda
            .publish_layer_version(&region_of(&h), &name, &body)
            .await,
    )
}

/// ListLayerVersions: `GET /2018-10-31/layers/{LayerName}/versions`.
pub(crate) async fn list_layer_versions(
    State(s): State<Edge>,
    h: HeaderMap,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query_pairs(q.as_deref());
    reply(
        StatusCode::OK,
        s.lambda.list_layer_versions(
            &region_of(&h),
            &name,
            query_get(&q, "CompatibleRuntime").as_deref(),
            query_get(&q, "CompatibleArchitecture").as_deref(),
            query_get(&q, "Marker").as_deref(),
            query_get(&q, "MaxItems").as_deref(),
        ),
    )
}

/// GetLayerVersion: `GET /2018-10-31/layers/{LayerName}/versions/{VersionNumber}`.
pub(crate) async fn get_layer_version(
    State(s): State<Edge>,
    h: HeaderMap,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    reply(
        StatusCode::OK,
        s.lambda.get_layer_version(&region_of(&h), &name, &version),
    )
}

/// DeleteLayerVersion: `DELETE /2018-10-31/layers/{LayerName}/versions/{VersionNumber}` (204).
pub(crate) async fn delete_layer_version(
    State(s): State<Edge>,
    h: HeaderMap,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    no_content(
        s.lambda
            .delete_layer_version(&region_of(&h), &name, &version)
            .await,
    )
}

/// AddLayerVersionPermission: `POST .../versions/{VersionNumber}/policy` (201).
pub(crate) async fn add_layer_version_permission(
    State(s): State<Edge>,
    h: HeaderMap,
    Path((name, version)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = body_or_return!(body, "AddLayerVersionPermission");
    let q = query_pairs(q.as_deref());
    reply(
        StatusCode::CREATED,
        s.lambda
            .add_layer_version_permission(
                &region_of(&h),
                &name,
                &version,
                query_get(&q, "RevisionId").as_deref(),
                &body,
            )
            .await,
    )
}

/// GetLayerVersionPolicy: `GET .../versions/{VersionNumber}/policy`.
pub(crate) async fn get_layer_version_policy(
    State(s): State<Edge>,
    h: HeaderMap,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    reply(
        StatusCode::OK,
        s.lambda
            .get_layer_version_policy(&region_of(&h), &name, &version),
    )
}

/// RemoveLayerVersionPermission: `DELETE .../policy/{StatementId}` (204).
pub(crate) async fn remove_layer_version_permission(
    State(s): State<Edge>,
    h: HeaderMap,
    Path((name, version, sid)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query_pairs(q.as_deref());
    no_content(
        s.lambda
            .remove_layer_version_permission(
                &region_of(&h),
                &name,
                &version,
                &sid,
                query_get(&q, "RevisionId").as_deref(),
            )
            .await,
    )
}

/// `Content.Location` of a layer version: the zip itself.
pub(crate) async fn layer_download(
    State(s): State<Edge>,
    Path((region, name, version, file)): Path<(String, String, String, String)>,
) -> Response {
    let Some(hex) = file.strip_suffix(".zip") else {
        return error_response(&stratus_core::AwsError::not_found("No such layer archive."));
    };
    match s.lambda.layer_bytes(&region, &name, &version, hex) {
        Ok(b) => with_request_id(([("content-type", "application/zip")], b).into_response()),
        Err(e) => error_response(&e),
    }
}
