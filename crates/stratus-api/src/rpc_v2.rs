//! The Smithy RPC v2 CBOR protocol: `POST /service/<service>/operation/<op>`
//! with `smithy-protocol: rpc-v2-cbor` and a CBOR body (botocore's
//! `smithy-rpc-v2-cbor`; `<service>` is the model's `targetPrefix`).
//!
//! Services join by service name ([`RpcV2Services::with`]) and own their
//! CBOR codec: a handler gets `(region, operation, body)` and returns the
//! status, headers and body of the answer. The codec here only routes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

/// An answer: HTTP status, headers, body.
pub type RpcV2Reply = (u16, Vec<(String, String)>, Vec<u8>);

/// A boxed future answering one operation.
pub type RpcV2Future = Pin<Box<dyn Future<Output = RpcV2Reply> + Send>>;

/// Serves the operations of one service: `(region, operation, body)`.
pub type RpcV2Handler = Arc<dyn Fn(String, String, Bytes) -> RpcV2Future + Send + Sync>;

/// The RPC v2 CBOR services the edge serves.
#[derive(Clone, Default)]
pub struct RpcV2Services(Arc<Vec<(&'static str, RpcV2Handler)>>);

impl RpcV2Services {
    /// No services.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the service answering `/service/<service>/operation/...`.
    pub fn with<F, Fut>(self, service: &'static str, f: F) -> Self
    where
        F: Fn(String, String, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = RpcV2Reply> + Send + 'static,
    {
        let mut v = (*self.0).clone();
        v.push((service, Arc::new(move |r, o, b| Box::pin(f(r, o, b)))));
        RpcV2Services(Arc::new(v))
    }
}

/// The routes of the RPC v2 CBOR services (merge into the edge router).
pub fn router(services: RpcV2Services) -> Router {
    Router::new()
        .route("/service/{service}/operation/{operation}", post(dispatch))
        .layer(Extension(services))
}

/// A CBOR map of two text entries, `__type` and `message` (the error body
/// for a service or operation nobody serves).
fn cbor_error(code: &str, message: &str) -> Vec<u8> {
    let mut out = vec![0xa2];
    for s in ["__type", code, "message", message] {
        let n = s.len();
        if n < 24 {
            out.push(0x60 | n as u8);
        } else if n <= 0xff {
            out.extend_from_slice(&[0x78, n as u8]);
        } else {
            out.push(0x79);
            out.extend_from_slice(&(n.min(0xffff) as u16).to_be_bytes());
        }
        out.extend_from_slice(&s.as_bytes()[..n.min(0xffff)]);
    }
    out
}

async fn dispatch(
    Extension(services): Extension<RpcV2Services>,
    Path((service, operation)): Path<(String, String)>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let (status, headers, body) = match services.0.iter().find(|(s, _)| *s == service) {
        Some((_, handler)) => handler(crate::region_of(&h), operation, body).await,
        None => (
            404,
            vec![
                ("smithy-protocol".to_string(), "rpc-v2-cbor".to_string()),
                ("content-type".to_string(), "application/cbor".to_string()),
            ],
            cbor_error(
                "UnknownOperationException",
                &format!(
                    "stratus serves no service named '{service}' over the rpc-v2-cbor protocol."
                ),
            ),
        ),
    };
    let mut r = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body,
    )
        .into_response();
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            r.headers_mut().insert(k, v);
        }
    }
    crate::with_request_id(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_is_a_two_entry_cbor_map() {
        let b = cbor_error("E", "m");
        // RFC 8949: map(2), text(6) "__type", text(1) "E", text(7) "message", text(1) "m".
        let mut want = vec![0xa2, 0x66];
        want.extend_from_slice(b"__type");
        want.extend_from_slice(&[0x61, b'E', 0x67]);
        want.extend_from_slice(b"message");
        want.extend_from_slice(&[0x61, b'm']);
        assert_eq!(b, want);
        let long = "x".repeat(300);
        let b = cbor_error("E", &long);
        let at = b.len() - 300 - 3;
        assert_eq!(&b[at..at + 3], &[0x79, 0x01, 0x2c]);
    }
}
