//! Amazon CloudWatch's metric API (`monitoring`, 2010-08-01) over the
//! metrics stratus records: GetMetricStatistics, GetMetricData,
//! ListMetrics and PutMetricData.
//!
//! Wire protocols: botocore's model lists `smithy-rpc-v2-cbor`, `json` and
//! `query`; botocore (boto3, AWS CLI v1) picks the first of its own
//! priority list it supports, which is `json` (json 1.0,
//! `X-Amz-Target: GraniteServiceVersion20100801.<Operation>`, served by
//! [`CloudWatch::call_json`]). Older clients send the query protocol
//! (form body, XML answers; [`CloudWatch::call_query`]); SDKs that prefer
//! Smithy RPC v2 CBOR get it from [`CloudWatch::call_cbor`]. Errors carry the
//! query code in `x-amzn-query-error` (`awsQueryCompatible`, see
//! [`errors`]).
//!
//! Metrics served: custom namespaces (PutMetricData, Embedded Metric Format
//! log lines of Lambda functions), `AWS/Lambda` (from the invocation
//! metrics Lambda records) and `AWS/States` (execution metrics, see
//! [`states`]). See `docs/metrics.md`.

use std::sync::Arc;

use serde_json::{Map, Value};
use stratus_core::{AwsError, AwsResult};
use stratus_store::{Store, StoreResult};

pub mod cbor;
pub mod emf;
pub mod errors;
pub mod gzip;
pub mod input;
mod ops;
pub mod query;
pub mod sources;
pub mod states;
pub mod stats;

/// The json protocol's `X-Amz-Target` prefix (model `targetPrefix`).
pub const TARGET_PREFIX: &str = "GraniteServiceVersion20100801";

/// The query protocol's XML namespace (model `xmlNamespace`).
pub const XMLNS: &str = "http://monitoring.amazonaws.com/doc/2010-08-01/";

/// SigV4 signing name (model `endpointPrefix`).
pub const SIGNING_NAME: &str = "monitoring";

/// Operations served.
pub const ACTIONS: &[&str] = &[
    "GetMetricData",
    "GetMetricStatistics",
    "ListMetrics",
    "PutMetricData",
];

/// Largest request body accepted: PutMetricData's 1 MB limit for HTTP POST
/// ("CloudWatch service quotas").
pub const MAX_BODY_BYTES: usize = 1_048_576;

/// The CloudWatch metrics service.
pub struct CloudWatch {
    store: Store,
}

impl CloudWatch {
    /// Opens the service over `store`, creating its tables.
    ///
    /// Errors: the store fails.
    pub fn new(store: Store) -> StoreResult<Arc<CloudWatch>> {
        store.migrate(sources::SCHEMA)?;
        store.migrate(emf::SCHEMA)?;
        states::ensure_schema(&store)?;
        Ok(Arc::new(CloudWatch { store }))
    }

    /// The store the metrics live in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Start-up work: counts Step Functions execution ends a crash left
    /// uncounted ([`states::catch_up`]). Returns how many it counted.
    ///
    /// Errors: the store fails.
    pub async fn recover(&self) -> StoreResult<usize> {
        self.store.write(states::catch_up).await
    }

    /// Serves one json-protocol request: `op` from `X-Amz-Target`, `body`
    /// the json document (gzip-compressed or not).
    ///
    /// Errors: `SerializationException` (400) for a body that is not a
    /// json object (or not valid gzip), `RequestEntityTooLarge` (413) above
    /// 1 MB, `InvalidAction` (400) for operations not served, and each
    /// operation's errors.
    pub async fn call_json(&self, region: &str, op: &str, body: &[u8]) -> AwsResult<Value> {
        let body = unpack(body)?;
        let req: Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Err(serialization("The request body must be a json object.")),
                Err(e) => {
                    return Err(serialization(format!(
                        "The request body is not valid json: {e}."
                    )));
                }
            }
        };
        self.call(region, op, &req).await
    }

    /// Serves one Smithy RPC v2 CBOR request (`POST
    /// /service/GraniteServiceVersion20100801/operation/<op>`, header
    /// `smithy-protocol: rpc-v2-cbor`): returns the HTTP status, the
    /// headers and the CBOR body of the answer; an error is a CBOR map
    /// `{"__type": "com.amazonaws.cloudwatch#<Shape>", "message": ...}` with
    /// `x-amzn-query-error`.
    pub async fn call_cbor(&self, region: &str, op: &str, body: &[u8]) -> CborReply {
        let r = match unpack(body).and_then(|b| {
            cbor::decode(&b)
                .map_err(|e| serialization(format!("The request body is not valid CBOR: {e}.")))
        }) {
            Ok(Value::Object(req)) => self.call(region, op, &req).await,
            Ok(_) => Err(serialization("The request body must be a CBOR map.")),
            Err(e) => Err(e),
        };
        let mut headers = vec![
            ("smithy-protocol".to_string(), "rpc-v2-cbor".to_string()),
            ("content-type".to_string(), "application/cbor".to_string()),
        ];
        match r {
            Ok(v) => CborReply {
                status: 200,
                headers,
                body: cbor::encode(&v),
            },
            Err(e) => {
                let mut m = Map::new();
                m.insert("__type".into(), Value::from(e.code.clone()));
                m.insert("message".into(), Value::from(e.message.clone()));
                for (k, v) in &e.extra {
                    if k.starts_with("x-amzn-") {
                        headers.push((k.clone(), v.clone()));
                    } else {
                        m.insert(k.clone(), Value::from(v.clone()));
                    }
                }
                CborReply {
                    status: e.status,
                    headers,
                    body: cbor::encode(&Value::Object(m)),
                }
            }
        }
    }

    /// Serves one query-protocol request and returns the inner XML of its
    /// `<{Action}Result>` (empty for PutMetricData).
    ///
    /// Errors: as [`CloudWatch::call_json`].
    pub async fn call_query(
        &self,
        region: &str,
        action: &str,
        params: &[(String, String)],
    ) -> AwsResult<String> {
        let size: usize = params.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        if size > MAX_BODY_BYTES {
            return Err(too_large(size));
        }
        let req = query::params_to_json(params);
        let out = self.call(region, action, &req).await?;
        Ok(query::to_xml(&out))
    }

    /// Runs operation `op` on a request already read into json.
    ///
    /// Errors: `InvalidAction` (400) for operations not served, and each
    /// operation's errors.
    pub async fn call(&self, region: &str, op: &str, req: &Map<String, Value>) -> AwsResult<Value> {
        match op {
            "GetMetricStatistics" => self.get_metric_statistics(region, req),
            "GetMetricData" => self.get_metric_data(region, req),
            "ListMetrics" => self.list_metrics(region, req),
            "PutMetricData" => self.put_metric_data(region, req).await,
            _ => Err(errors::cw_error(
                400,
                "InvalidAction",
                "InvalidAction",
                format!(
                    "stratus does not serve CloudWatch's {op}; it serves {}.",
                    ACTIONS.join(", ")
                ),
            )),
        }
    }
}

/// An answer of the CBOR protocol: HTTP status, headers, body.
#[derive(Debug, Clone)]
pub struct CborReply {
    /// HTTP status: 200, or the error's (400, 413, 500).
    pub status: u16,
    /// `smithy-protocol`, `content-type` and, for errors, `x-amzn-query-error`.
    pub headers: Vec<(String, String)>,
    /// The CBOR-encoded answer or error map.
    pub body: Vec<u8>,
}

fn serialization(message: impl Into<String>) -> AwsError {
    errors::cw_error(
        400,
        "SerializationException",
        "SerializationException",
        message,
    )
}

/// The request body, checked against the 1 MB limit and decompressed when
/// it is gzip ([`gzip`]).
fn unpack(body: &[u8]) -> AwsResult<std::borrow::Cow<'_, [u8]>> {
    if body.len() > MAX_BODY_BYTES {
        return Err(too_large(body.len()));
    }
    if gzip::is_gzip(body) {
        return gzip::gunzip(body)
            .map(std::borrow::Cow::Owned)
            .map_err(|e| serialization(format!("The request body is not valid gzip: {e}.")));
    }
    Ok(std::borrow::Cow::Borrowed(body))
}

fn too_large(n: usize) -> AwsError {
    errors::cw_error(
        413,
        "RequestEntityTooLarge",
        "RequestEntityTooLarge",
        format!("The request is {n} bytes; CloudWatch accepts at most {MAX_BODY_BYTES} bytes."),
    )
}

#[cfg(test)]
mod tests;
