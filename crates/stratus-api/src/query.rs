//! The AWS query protocol (SNS; SQS for older clients): a form-encoded body
//! (`application/x-www-form-urlencoded`) with `Action=<Operation>`,
//! `Version=...` and the parameters flattened into dotted names
//! (`Attributes.entry.1.key`, `MessageAttributes.entry.1.Value.StringValue`),
//! answered with XML:
//!
//! ```xml
//! <ActionResponse xmlns="..."><ActionResult>...</ActionResult>
//!   <ResponseMetadata><RequestId>...</RequestId></ResponseMetadata></ActionResponse>
//! ```
//!
//! and errors as `<ErrorResponse><Error><Type>Sender</Type><Code>...</Code>
//! <Message>...</Message></Error><RequestId>...</RequestId></ErrorResponse>`
//! with the error's HTTP status (botocore's `query` protocol parser).
//!
//! The service is the one named by the SigV4 credential scope
//! (`Credential=AKID/date/region/<service>/aws4_request`); without one, a
//! request posted to a queue URL path (`/<account>/<queue>`) is SQS, else
//! the service whose action list contains the action. The codec knows
//! nothing of the operations: a service gets the parameters and returns the
//! inner XML of its `<ActionResult>`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use stratus_core::{AwsError, AwsResult};

/// One query-protocol request.
#[derive(Debug, Clone)]
pub struct QueryRequest {
    /// The request's region (SigV4 credential scope, else `us-east-1`).
    pub region: String,
    /// The `Action` parameter, e.g. `Publish`.
    pub action: String,
    /// Every form parameter except `Action` and `Version`, in order.
    pub params: Vec<(String, String)>,
    /// The request path (`/` or a queue URL's path).
    pub path: String,
    /// The `Host` header, for building URLs that point back at stratus.
    pub host: String,
}

impl QueryRequest {
    /// The value of parameter `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A boxed future answering one action with the inner XML of its result.
pub type QueryFuture = Pin<Box<dyn Future<Output = AwsResult<String>> + Send>>;

/// Serves the actions of one service.
pub type QueryHandler = Arc<dyn Fn(QueryRequest) -> QueryFuture + Send + Sync>;

/// One query-protocol service.
#[derive(Clone)]
pub struct QueryService {
    /// SigV4 signing name: `sns`, `sqs`.
    pub signing_name: &'static str,
    /// The XML namespace of answers, e.g. `http://sns.amazonaws.com/doc/2010-03-31/`.
    pub xmlns: &'static str,
    /// The actions it serves (to pick a service for unsigned requests).
    pub actions: &'static [&'static str],
    pub handler: QueryHandler,
}

/// The query-protocol services the edge serves.
#[derive(Clone, Default)]
pub struct QueryServices(Arc<Vec<QueryService>>);

impl QueryServices {
    /// No services.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a service.
    pub fn with<F, Fut>(
        self,
        signing_name: &'static str,
        xmlns: &'static str,
        actions: &'static [&'static str],
        f: F,
    ) -> Self
    where
        F: Fn(QueryRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = AwsResult<String>> + Send + 'static,
    {
        let mut v = (*self.0).clone();
        v.push(QueryService {
            signing_name,
            xmlns,
            actions,
            handler: Arc::new(move |r| Box::pin(f(r))),
        });
        QueryServices(Arc::new(v))
    }

    fn pick(&self, h: &HeaderMap, path: &str, action: &str) -> Option<&QueryService> {
        if let Some(name) = signing_name(h) {
            return self.0.iter().find(|s| s.signing_name == name);
        }
        if path.trim_matches('/').contains('/')
            && let Some(s) = self.0.iter().find(|s| s.signing_name == "sqs")
        {
            return Some(s);
        }
        self.0.iter().find(|s| s.actions.contains(&action))
    }
}

/// The service of the SigV4 credential scope, if the request is signed.
fn signing_name(h: &HeaderMap) -> Option<String> {
    let auth = h.get("authorization")?.to_str().ok()?;
    let cred = auth.split("Credential=").nth(1)?;
    let scope = cred.split([',', ' ']).next()?;
    scope.split('/').nth(3).map(str::to_string)
}

/// Escapes text for an XML element or attribute.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
    out
}

fn xml_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("text/xml"));
    r
}

/// Encodes an error in the query protocol's XML shape.
pub fn query_error(e: &AwsError, xmlns: &str, request_id: &str) -> Response {
    let kind = if e.status >= 500 {
        "Receiver"
    } else {
        "Sender"
    };
    let body = format!(
        "<?xml version=\"1.0\"?><ErrorResponse xmlns=\"{}\"><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
        xml_escape(xmlns),
        xml_escape(&e.code),
        xml_escape(&e.message)
    );
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = xml_response(status, body);
    if let Ok(v) = HeaderValue::from_str(request_id) {
        r.headers_mut().insert("x-amzn-requestid", v);
    }
    if let Ok(v) = HeaderValue::from_str(&e.code) {
        r.headers_mut().insert("x-amzn-errortype", v);
    }
    r
}

/// Answers a form-encoded request.
pub async fn dispatch(
    services: &QueryServices,
    h: &HeaderMap,
    path: &str,
    body: &[u8],
) -> Response {
    let request_id = stratus_core::request_id();
    // botocore gzips large bodies of operations with the
    // `requestcompression` trait (CloudWatch's PutMetricData).
    let inflated;
    let body = if stratus_cloudwatch::gzip::is_gzip(body)
        && h.get("content-encoding")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"))
    {
        match stratus_cloudwatch::gzip::gunzip(body) {
            Ok(b) => {
                inflated = b;
                &inflated[..]
            }
            Err(e) => {
                return query_error(
                    &AwsError::new(
                        400,
                        "MalformedQueryString",
                        format!("The gzip request body cannot be decompressed: {e}."),
                    ),
                    "",
                    &request_id,
                );
            }
        }
    } else {
        body
    };
    let mut action = None;
    let mut params = Vec::new();
    for (k, v) in form_urlencoded::parse(body) {
        match &*k {
            "Action" => action = Some(v.into_owned()),
            "Version" => {}
            _ => params.push((k.into_owned(), v.into_owned())),
        }
    }
    let Some(action) = action else {
        return query_error(
            &AwsError::new(
                400,
                "MissingAction",
                "The request has no Action parameter: stratus cannot tell which operation it asks for.",
            ),
            "",
            &request_id,
        );
    };
    let Some(svc) = services.pick(h, path, &action) else {
        return query_error(
            &AwsError::new(
                400,
                "InvalidAction",
                format!("The action {action} is not valid for this endpoint."),
            ),
            "",
            &request_id,
        );
    };
    let req = QueryRequest {
        region: crate::region_of(h),
        action: action.clone(),
        params,
        path: path.to_string(),
        host: h
            .get("host")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("localhost")
            .to_string(),
    };
    match (svc.handler)(req).await {
        Ok(inner) => {
            // Always present: botocore looks for it whenever the operation
            // has an output shape, even an empty one.
            let result = format!("<{action}Result>{inner}</{action}Result>");
            let body = format!(
                "<?xml version=\"1.0\"?><{action}Response xmlns=\"{}\">{result}<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>",
                xml_escape(svc.xmlns)
            );
            let mut r = xml_response(StatusCode::OK, body);
            if let Ok(v) = HeaderValue::from_str(&request_id) {
                r.headers_mut().insert("x-amzn-requestid", v);
            }
            r
        }
        Err(e) => query_error(&e, svc.xmlns, &request_id),
    }
}

/// Whether a request's body is form-encoded (the query protocol).
pub fn is_form(h: &HeaderMap) -> bool {
    h.get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services() -> QueryServices {
        QueryServices::new()
            .with(
                "sns",
                "http://sns.amazonaws.com/doc/2010-03-31/",
                &["Publish"],
                |r| async move {
                    if r.action == "Fail" {
                        return Err(AwsError::new(404, "NotFound", "Topic does not exist"));
                    }
                    Ok(format!(
                        "<MessageId>{}</MessageId>",
                        xml_escape(r.get("Message").unwrap_or(""))
                    ))
                },
            )
            .with(
                "sqs",
                "http://queue.amazonaws.com/doc/2012-11-05/",
                &["SendMessage"],
                |r| async move { Ok(format!("<Path>{}</Path>", r.path)) },
            )
    }

    async fn text(r: Response) -> (StatusCode, String) {
        let s = r.status();
        let b = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (s, String::from_utf8(b.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn routes_by_action_and_path_and_scope() {
        let h = HeaderMap::new();
        let (s, b) =
            text(dispatch(&services(), &h, "/", b"Action=Publish&Message=a%26b").await).await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            b.contains("<PublishResult><MessageId>a&amp;b</MessageId></PublishResult>"),
            "{b}"
        );
        let (_, b) =
            text(dispatch(&services(), &h, "/123456789012/q", b"Action=SendMessage").await).await;
        assert!(b.contains("<Path>/123456789012/q</Path>"), "{b}");
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=AK/20261129/eu-west-1/sns/aws4_request, SignedHeaders=host, Signature=x"),
        );
        let (s, b) = text(dispatch(&services(), &h, "/", b"Action=Fail").await).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert!(
            b.contains("<Type>Sender</Type><Code>NotFound</Code>"),
            "{b}"
        );
        let (s, b) = text(dispatch(&services(), &HeaderMap::new(), "/", b"Version=1").await).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(b.contains("MissingAction"), "{b}");
    }
}
