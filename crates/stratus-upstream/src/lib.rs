//! Calls to AWS-compatible services stratus does not implement itself
//! (DynamoDB, S3, ECS, Secrets Manager, ...), for Step Functions' AWS SDK
//! integrations (`arn:aws:states:::aws-sdk:<service>:<action>`) and the
//! optimized integrations that map onto the same API calls
//! (`arn:aws:states:::dynamodb:putItem`, `arn:aws:states:::s3:getObject`, ...).
//!
//! The user points stratus at an upstream endpoint (`--upstream-endpoint
//! URL`, optionally per service: `--upstream-endpoint dynamodb=URL`), for
//! example `moto_server` or LocalStack. Each call is signed with SigV4
//! (credentials from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
//! `AWS_SESSION_TOKEN`, else `test` / `test`) and sent over HTTP, or over
//! TLS 1.2 / 1.3 for `https://` endpoints, whose certificates are verified
//! against the system roots plus an extra CA bundle (`--upstream-ca-bundle`
//! or `AWS_CA_BUNDLE`; see [`tls`]).
//!
//! Protocols: the AWS json protocol (DynamoDB, ECS, Secrets Manager, SSM,
//! Kinesis, KMS, CloudWatch Logs, ...: the action becomes the
//! `X-Amz-Target`) and, for S3, the rest-xml operations Step Functions
//! workflows use (GetObject, PutObject, ListObjectsV2, HeadObject,
//! DeleteObject), path-style.
//!
//! Errors follow the Step Functions naming rule ("Learning to use AWS
//! service SDK integrations": the error is `ServiceName.ErrorName`, both in
//! PascalCase, with an `Exception` suffix even when the service's own name
//! lacks one, e.g. `S3.NoSuchKeyException`); optimized integrations use
//! their own prefix (`DynamoDB.ConditionalCheckFailedException`). A transport
//! failure is `<Prefix>.SdkClientException`.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Map, Value, json};

mod s3;
pub mod tls;

/// How long one upstream call may take before it fails with
/// `<Prefix>.SdkClientException`.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A failed call, named as Step Functions names it.
#[derive(Debug, Clone, PartialEq)]
pub struct CallError {
    /// `ServiceName.ErrorName`, e.g. `DynamoDb.ConditionalCheckFailedException`,
    /// or `States.TaskFailed` when no upstream is configured.
    pub error: String,
    /// The service's message, or what went wrong.
    pub cause: String,
}

/// Checks that `url` is an absolute `http://` or `https://` URL (the
/// scheme of `schemes`) naming a host, with a port of 1-65535 when one is
/// given: the form upstream endpoints and SNS `http` / `https`
/// subscription endpoints must have to be reachable at all.
///
/// Errors: a sentence saying what is wrong (no such scheme, no host, a
/// port out of range, or the URL parser's own complaint).
pub fn check_http_url(url: &str, schemes: &[&str]) -> Result<http::Uri, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url} is not a valid URL ({e})"))?;
    let scheme = uri.scheme_str().unwrap_or("");
    if !schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme)) {
        let list: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
        return Err(format!("{url} does not start with {}", list.join(" or ")));
    }
    let Some(authority) = uri.authority() else {
        return Err(format!("{url} names no host"));
    };
    let host = authority.host();
    if host.is_empty() {
        return Err(format!("{url} names no host"));
    }
    // What follows the host in the authority: nothing, or `:port`.
    let hostport = authority
        .as_str()
        .rsplit_once('@')
        .map_or(authority.as_str(), |(_, hp)| hp);
    let rest = hostport.strip_prefix(host).unwrap_or("");
    if let Some(port) = rest.strip_prefix(':') {
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err(format!("{url} has a port outside 1-65535")),
        }
    }
    Ok(uri)
}

/// Which upstream endpoint serves which service.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpstreamConfig {
    /// The endpoint for every service without its own (`http://host:port`
    /// or `https://host:port`).
    pub default: Option<String>,
    /// `(service, endpoint)` pairs, e.g. `("s3", "http://127.0.0.1:9000")`.
    pub per_service: Vec<(String, String)>,
    /// A PEM file of certificate authorities trusted for `https://`
    /// endpoints besides the system roots ([`tls::client_config`]).
    pub ca_bundle: Option<PathBuf>,
}

impl UpstreamConfig {
    /// Parses the values of `--upstream-endpoint`: `URL` or `SERVICE=URL`.
    ///
    /// Errors: a value that is not an `http://` or `https://` URL with a
    /// host, or a second default.
    pub fn parse(values: &[String]) -> Result<UpstreamConfig, String> {
        let mut c = UpstreamConfig::default();
        for v in values {
            let (service, url) = match v.split_once('=') {
                Some((s, u)) if !s.contains("://") => {
                    (Some(s.trim().to_ascii_lowercase()), u.trim())
                }
                _ => (None, v.trim()),
            };
            if service.as_deref() == Some("") {
                return Err(format!(
                    "--upstream-endpoint {v}: the service name before '=' is empty, e.g. dynamodb=https://127.0.0.1:4443"
                ));
            }
            if let Err(e) = check_http_url(url, &["http", "https"]) {
                return Err(format!(
                    "--upstream-endpoint {v}: the endpoint must be an http:// or https:// URL with a host, e.g. https://127.0.0.1:4443: {e}"
                ));
            }
            let url = url.trim_end_matches('/').to_string();
            match service {
                Some(s) => c.per_service.push((s, url)),
                None if c.default.is_some() => {
                    return Err(format!(
                        "--upstream-endpoint {v}: a default endpoint is already set"
                    ));
                }
                None => c.default = Some(url),
            }
        }
        Ok(c)
    }

    /// The same endpoints, trusting the certificate authorities of the PEM
    /// file `ca_bundle` too (`None`: the system roots only).
    pub fn with_ca_bundle(mut self, ca_bundle: Option<PathBuf>) -> UpstreamConfig {
        self.ca_bundle = ca_bundle;
        self
    }

    /// The endpoint for `service`, if any.
    pub fn endpoint(&self, service: &str) -> Option<&str> {
        self.per_service
            .iter()
            .find(|(s, _)| s == service)
            .map(|(_, u)| u.as_str())
            .or(self.default.as_deref())
    }
}

/// The wire protocol of a service.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Protocol {
    /// AWS json: `X-Amz-Target: <target>.<Action>`, `application/x-amz-json-<version>`.
    /// `camel`: the service's JSON members are camelCase (Step Functions'
    /// parameters and results are PascalCase and are converted).
    Json {
        target: &'static str,
        version: &'static str,
        camel: bool,
    },
    /// S3's rest-xml (the operations in [`s3`]).
    S3,
}

/// A service stratus can forward to: its AWS SDK name (as in
/// `aws-sdk:<name>:`), SigV4 signing name, PascalCase name for errors, and
/// protocol (from the botocore service models).
struct Service {
    sdk: &'static str,
    signing: &'static str,
    pascal: &'static str,
    protocol: Protocol,
}

const SERVICES: &[Service] = &[
    Service {
        sdk: "dynamodb",
        signing: "dynamodb",
        pascal: "DynamoDb",
        protocol: Protocol::Json {
            target: "DynamoDB_20120810",
            version: "1.0",
            camel: false,
        },
    },
    Service {
        sdk: "s3",
        signing: "s3",
        pascal: "S3",
        protocol: Protocol::S3,
    },
    Service {
        sdk: "ecs",
        signing: "ecs",
        pascal: "Ecs",
        protocol: Protocol::Json {
            target: "AmazonEC2ContainerServiceV20141113",
            version: "1.1",
            camel: true,
        },
    },
    Service {
        sdk: "secretsmanager",
        signing: "secretsmanager",
        pascal: "SecretsManager",
        protocol: Protocol::Json {
            target: "secretsmanager",
            version: "1.1",
            camel: false,
        },
    },
    Service {
        sdk: "ssm",
        signing: "ssm",
        pascal: "Ssm",
        protocol: Protocol::Json {
            target: "AmazonSSM",
            version: "1.1",
            camel: false,
        },
    },
    Service {
        sdk: "kinesis",
        signing: "kinesis",
        pascal: "Kinesis",
        protocol: Protocol::Json {
            target: "Kinesis_20131202",
            version: "1.1",
            camel: false,
        },
    },
    Service {
        sdk: "kms",
        signing: "kms",
        pascal: "Kms",
        protocol: Protocol::Json {
            target: "TrentService",
            version: "1.1",
            camel: false,
        },
    },
    Service {
        sdk: "cloudwatchlogs",
        signing: "logs",
        pascal: "CloudWatchLogs",
        protocol: Protocol::Json {
            target: "Logs_20140328",
            version: "1.1",
            camel: true,
        },
    },
    Service {
        sdk: "athena",
        signing: "athena",
        pascal: "Athena",
        protocol: Protocol::Json {
            target: "AmazonAthena",
            version: "1.1",
            camel: false,
        },
    },
    Service {
        sdk: "glue",
        signing: "glue",
        pascal: "Glue",
        protocol: Protocol::Json {
            target: "AWSGlue",
            version: "1.1",
            camel: false,
        },
    },
    Service {
        sdk: "codebuild",
        signing: "codebuild",
        pascal: "CodeBuild",
        protocol: Protocol::Json {
            target: "CodeBuild_20161006",
            version: "1.1",
            camel: true,
        },
    },
    Service {
        sdk: "firehose",
        signing: "firehose",
        pascal: "Firehose",
        protocol: Protocol::Json {
            target: "Firehose_20150804",
            version: "1.1",
            camel: false,
        },
    },
    Service {
        sdk: "ecr",
        signing: "ecr",
        pascal: "Ecr",
        protocol: Protocol::Json {
            target: "AmazonEC2ContainerRegistry_V20150921",
            version: "1.1",
            camel: true,
        },
    },
];

/// The names of the services [`Upstream`] can call (`aws-sdk:<name>:`).
pub fn supported_services() -> impl Iterator<Item = &'static str> {
    SERVICES.iter().map(|s| s.sdk)
}

/// Whether `aws-sdk:<service>:<action>` is something [`Upstream`] can
/// forward (S3 only for the operations in this crate).
pub fn supports(service: &str, action: &str) -> bool {
    match SERVICES.iter().find(|s| s.sdk == service) {
        Some(s) if s.protocol == Protocol::S3 => s3::supports(&pascal_case(action)),
        Some(_) => true,
        None => false,
    }
}

/// `putItem` -> `PutItem`.
pub fn pascal_case(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

fn camel_case(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_lowercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

/// Converts every object key of `v` with `f` (deeply).
fn rekey(v: &Value, f: &dyn Fn(&str) -> String) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (f(k), rekey(v, f)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| rekey(v, f)).collect()),
        v => v.clone(),
    }
}

/// `ErrorName` with the `Exception` suffix Step Functions requires.
fn exception_name(code: &str) -> String {
    if code.ends_with("Exception") {
        code.to_string()
    } else {
        format!("{code}Exception")
    }
}

/// The client: one per server, cheap to share.
pub struct Upstream {
    config: UpstreamConfig,
    client: Client<HttpConnector, Full<Bytes>>,
    /// The client for `https://` endpoints, made at the first such call
    /// (reading the system roots takes a moment), or why it cannot be.
    tls_client: OnceLock<Result<TlsClient, String>>,
    credentials: aws_credential_types::Credentials,
}

type TlsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// One HTTP answer.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Upstream {
    /// A client for the endpoints of `config`, with credentials from the
    /// environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`), else `test` / `test`.
    pub fn new(config: UpstreamConfig) -> Upstream {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let credentials = aws_credential_types::Credentials::new(
            env("AWS_ACCESS_KEY_ID").unwrap_or_else(|| "test".into()),
            env("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|| "test".into()),
            env("AWS_SESSION_TOKEN"),
            None,
            "stratus-upstream",
        );
        Upstream {
            config,
            client: Client::builder(TokioExecutor::new()).build_http(),
            tls_client: OnceLock::new(),
            credentials,
        }
    }

    /// The configuration this client uses.
    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// An AWS SDK integration call: `arn:aws:states:::aws-sdk:<service>:<action>`
    /// with Step Functions' PascalCase `params`; the result in PascalCase.
    ///
    /// Errors: [`CallError`] named `<ServiceName>.<ErrorName>`;
    /// `States.TaskFailed` when the service is unknown or has no endpoint.
    pub async fn call_sdk(
        &self,
        region: &str,
        service: &str,
        action: &str,
        params: &Value,
    ) -> Result<Value, CallError> {
        let prefix = SERVICES
            .iter()
            .find(|s| s.sdk == service)
            .map(|s| s.pascal)
            .unwrap_or("");
        self.call(region, service, action, params, prefix).await
    }

    /// A call whose errors are named `<error_prefix>.<ErrorName>` (optimized
    /// integrations use their own prefix, e.g. `DynamoDB`).
    ///
    /// Errors: as [`Upstream::call_sdk`].
    pub async fn call(
        &self,
        region: &str,
        service: &str,
        action: &str,
        params: &Value,
        error_prefix: &str,
    ) -> Result<Value, CallError> {
        let Some(svc) = SERVICES.iter().find(|s| s.sdk == service) else {
            return Err(CallError {
                error: "States.TaskFailed".into(),
                cause: format!(
                    "stratus cannot call the '{service}' service: the AWS SDK integrations it forwards are {}.",
                    supported_services().collect::<Vec<_>>().join(", ")
                ),
            });
        };
        let Some(endpoint) = self.config.endpoint(service) else {
            return Err(CallError {
                error: "States.TaskFailed".into(),
                cause: format!(
                    "stratus has no upstream endpoint for the '{service}' service: start the server with --upstream-endpoint http://HOST:PORT or https://HOST:PORT (or --upstream-endpoint {service}=URL) pointing at an AWS-compatible endpoint such as moto_server."
                ),
            });
        };
        let action = pascal_case(action);
        match svc.protocol {
            Protocol::Json {
                target,
                version,
                camel,
            } => {
                let body = if camel {
                    rekey(params, &camel_case)
                } else {
                    params.clone()
                };
                let body = Bytes::from(body.to_string());
                let headers = vec![
                    (
                        "content-type".to_string(),
                        format!("application/x-amz-json-{version}"),
                    ),
                    ("x-amz-target".to_string(), format!("{target}.{action}")),
                ];
                let a = self
                    .send(
                        region,
                        svc.signing,
                        "POST",
                        &format!("{endpoint}/"),
                        headers,
                        body,
                        error_prefix,
                    )
                    .await?;
                if a.status >= 300 {
                    return Err(json_error(&a, error_prefix));
                }
                let v: Value = if a.body.is_empty() {
                    json!({})
                } else {
                    serde_json::from_slice(&a.body).map_err(|e| CallError {
                        error: format!("{error_prefix}.SdkClientException"),
                        cause: format!("the upstream answer to {action} is not JSON: {e}"),
                    })?
                };
                Ok(if camel { rekey(&v, &pascal_case) } else { v })
            }
            Protocol::S3 => s3::call(self, region, endpoint, &action, params, error_prefix).await,
        }
    }

    /// The https client, made on first use.
    ///
    /// Errors: the CA bundle cannot be loaded ([`tls::client_config`]).
    fn tls_client(&self) -> Result<&TlsClient, String> {
        self.tls_client
            .get_or_init(|| {
                let config = tls::client_config(self.config.ca_bundle.as_deref())?;
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config((*config).clone())
                    .https_or_http()
                    .enable_http1()
                    .build();
                Ok(Client::builder(TokioExecutor::new()).build(connector))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Signs and sends one request (over TLS for `https://` URLs).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn send(
        &self,
        region: &str,
        signing_name: &str,
        method: &str,
        url: &str,
        mut headers: Vec<(String, String)>,
        body: Bytes,
        error_prefix: &str,
    ) -> Result<Answer, CallError> {
        let client_error = |cause: String| CallError {
            error: format!("{error_prefix}.SdkClientException"),
            cause,
        };
        let uri: http::Uri = url
            .parse()
            .map_err(|e| client_error(format!("bad upstream URL {url}: {e}")))?;
        let host = uri.authority().map(|a| a.to_string()).unwrap_or_default();
        let uri_is_https = uri.scheme_str() == Some("https");
        headers.push(("host".into(), host));
        if signing_name == "s3" {
            headers.push(("x-amz-content-sha256".into(), "UNSIGNED-PAYLOAD".into()));
        }
        let identity = self.credentials.clone().into();
        let mut settings = aws_sigv4::http_request::SigningSettings::default();
        if signing_name == "s3" {
            settings.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::NoHeader;
        }
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(signing_name)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| client_error(format!("cannot sign the request: {e}")))?
            .into();
        let signable_body = if signing_name == "s3" {
            aws_sigv4::http_request::SignableBody::UnsignedPayload
        } else {
            aws_sigv4::http_request::SignableBody::Bytes(&body)
        };
        let signable = aws_sigv4::http_request::SignableRequest::new(
            method,
            url,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            signable_body,
        )
        .map_err(|e| client_error(format!("cannot sign the request: {e}")))?;
        let (instructions, _) = aws_sigv4::http_request::sign(signable, &params)
            .map_err(|e| client_error(format!("cannot sign the request: {e}")))?
            .into_parts();
        let mut req = http::Request::builder().method(method).uri(uri);
        for (k, v) in &headers {
            if k != "host" {
                req = req.header(k.as_str(), v.as_str());
            }
        }
        for (k, v) in instructions.headers() {
            req = req.header(k, v);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| client_error(format!("cannot build the request: {e}")))?;
        let tls = if uri_is_https {
            Some(self.tls_client().map_err(|e| {
                client_error(format!("cannot call the upstream endpoint {url}: {e}"))
            })?)
        } else {
            None
        };
        let fut = async {
            let sent = match tls {
                Some(c) => c.request(req).await,
                None => self.client.request(req).await,
            };
            let resp = sent.map_err(|e| {
                client_error(format!(
                    "the upstream endpoint {url} cannot be reached: {}",
                    tls::describe(&e)
                ))
            })?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| client_error(format!("reading the upstream answer failed: {e}")))?
                .to_bytes();
            Ok(Answer {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(CALL_TIMEOUT, fut).await.map_err(|_| {
            client_error(format!(
                "the upstream endpoint {url} did not answer within {} s",
                CALL_TIMEOUT.as_secs()
            ))
        })?
    }
}

/// The error of a json-protocol answer (`__type` / `x-amzn-ErrorType`).
fn json_error(a: &Answer, prefix: &str) -> CallError {
    let body: Value = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
    let raw = body["__type"]
        .as_str()
        .map(str::to_string)
        .or_else(|| {
            a.headers
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_else(|| format!("Http{}", a.status));
    // `com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException`,
    // `ConditionalCheckFailedException:http://internal.amazon.com/...`.
    let code = raw.rsplit('#').next().unwrap_or(&raw);
    let code = code.split(':').next().unwrap_or(code);
    let message = body["message"]
        .as_str()
        .or(body["Message"].as_str())
        .unwrap_or("")
        .to_string();
    CallError {
        error: format!("{prefix}.{}", exception_name(code)),
        cause: if message.is_empty() {
            format!("{code} (HTTP {})", a.status)
        } else {
            format!(
                "{message} (Service: {prefix}, Status Code: {}, Error Code: {code})",
                a.status
            )
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoints() {
        let c = UpstreamConfig::parse(&[
            "http://127.0.0.1:5000/".into(),
            "s3=http://127.0.0.1:9000".into(),
        ])
        .unwrap();
        assert_eq!(c.endpoint("dynamodb"), Some("http://127.0.0.1:5000"));
        assert_eq!(c.endpoint("s3"), Some("http://127.0.0.1:9000"));
        let c = UpstreamConfig::parse(&[
            "https://127.0.0.1:4443".into(),
            "dynamodb=https://db.example:8443/".into(),
        ])
        .unwrap();
        assert_eq!(c.endpoint("s3"), Some("https://127.0.0.1:4443"));
        assert_eq!(c.endpoint("dynamodb"), Some("https://db.example:8443"));
        assert!(UpstreamConfig::parse(&["ftp://x".into()]).is_err());
        assert!(UpstreamConfig::parse(&["https://".into()]).is_err());
        assert!(UpstreamConfig::parse(&["127.0.0.1:5000".into()]).is_err());
        assert!(UpstreamConfig::parse(&["http://a".into(), "http://b".into()]).is_err());
        // No host, no service name, or a port that cannot exist.
        assert!(UpstreamConfig::parse(&["https://:99".into()]).is_err());
        assert!(UpstreamConfig::parse(&["=http://x".into()]).is_err());
        assert!(UpstreamConfig::parse(&["https://127.0.0.1:99999".into()]).is_err());
        assert!(UpstreamConfig::parse(&["https://127.0.0.1:0".into()]).is_err());
        assert!(UpstreamConfig::parse(&["s3=https://[::1".into()]).is_err());
        let c = UpstreamConfig::parse(&["s3=https://[::1]:4443".into()]).unwrap();
        assert_eq!(c.endpoint("s3"), Some("https://[::1]:4443"));
        assert!(UpstreamConfig::parse(&["http://user@127.0.0.1:5000".into()]).is_ok());
        assert_eq!(UpstreamConfig::parse(&[]).unwrap().endpoint("s3"), None);
    }

    #[test]
    fn names_errors_as_step_functions_does() {
        let a = Answer {
            status: 400,
            headers: http::HeaderMap::new(),
            body: Bytes::from_static(
                br#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"The conditional request failed"}"#,
            ),
        };
        let e = json_error(&a, "DynamoDB");
        assert_eq!(e.error, "DynamoDB.ConditionalCheckFailedException");
        assert!(e.cause.contains("The conditional request failed"));
        assert_eq!(exception_name("NoSuchKey"), "NoSuchKeyException");
    }

    #[test]
    fn converts_key_case_for_camel_case_services() {
        let v = json!({"Cluster": "c", "Overrides": {"ContainerOverrides": [{"Name": "x"}]}});
        let c = rekey(&v, &camel_case);
        assert_eq!(
            c,
            json!({"cluster": "c", "overrides": {"containerOverrides": [{"name": "x"}]}})
        );
        assert_eq!(rekey(&c, &pascal_case), v);
    }

    #[tokio::test]
    async fn without_an_endpoint_the_task_fails_with_advice() {
        let u = Upstream::new(UpstreamConfig::default());
        let e = u
            .call_sdk("us-east-1", "dynamodb", "putItem", &json!({}))
            .await
            .unwrap_err();
        assert_eq!(e.error, "States.TaskFailed");
        assert!(e.cause.contains("--upstream-endpoint"));
        let e = u
            .call_sdk("us-east-1", "nosuch", "x", &json!({}))
            .await
            .unwrap_err();
        assert_eq!(e.error, "States.TaskFailed");
    }

    /// A one-connection-at-a-time HTTPS server on 127.0.0.1 with the test
    /// certificate (`testdata/server.pem`, issued by `testdata/ca.pem` for
    /// IP 127.0.0.1) speaking only `versions`; it answers every request
    /// with `answer` (JSON) and sends each request head it read to `heads`.
    async fn tls_server(
        versions: &'static [&'static rustls::SupportedProtocolVersion],
        answer: &'static str,
    ) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
        use rustls::pki_types::pem::PemObject;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let certs = rustls::pki_types::CertificateDer::pem_slice_iter(include_bytes!(
            "../testdata/server.pem"
        ))
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(include_bytes!(
            "../testdata/server.key"
        ))
        .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => break None,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break Some(i + 4);
                    }
                };
                let Some(head_end) = head_end else { continue };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = tx.send(head);
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = tls.write_all(reply.as_bytes()).await;
                let _ = tls.shutdown().await;
            }
        });
        (port, rx)
    }

    static TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    static TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];

    fn test_ca() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/ca.pem")
    }

    #[tokio::test]
    async fn https_calls_are_signed_and_verified_with_the_ca_bundle() {
        const ITEM: &str = r#"{"Item":{"id":{"S":"1"}}}"#;
        for versions in [TLS13, TLS12] {
            let (port, mut heads) = tls_server(versions, ITEM).await;
            let u = Upstream::new(
                UpstreamConfig::parse(&[format!("https://127.0.0.1:{port}")])
                    .unwrap()
                    .with_ca_bundle(Some(test_ca())),
            );
            let out = u
                .call_sdk(
                    "us-east-1",
                    "dynamodb",
                    "getItem",
                    &json!({"TableName": "t", "Key": {"id": {"S": "1"}}}),
                )
                .await
                .unwrap();
            assert_eq!(out, json!({"Item": {"id": {"S": "1"}}}));
            let head = heads.recv().await.unwrap();
            assert!(head.starts_with("post / http/1.1"), "{head}");
            assert!(
                head.contains("x-amz-target: dynamodb_20120810.getitem"),
                "{head}"
            );
            assert!(
                head.contains("authorization: aws4-hmac-sha256 credential="),
                "{head}"
            );
            assert!(head.contains("/us-east-1/dynamodb/aws4_request"), "{head}");
        }
    }

    #[tokio::test]
    async fn an_untrusted_certificate_is_an_sdk_client_exception() {
        let (port, _heads) = tls_server(TLS13, "{}").await;
        let u =
            Upstream::new(UpstreamConfig::parse(&[format!("https://127.0.0.1:{port}")]).unwrap());
        let e = u
            .call("us-east-1", "dynamodb", "getItem", &json!({}), "DynamoDB")
            .await
            .unwrap_err();
        assert_eq!(e.error, "DynamoDB.SdkClientException");
        assert!(e.cause.contains("UnknownIssuer"), "{}", e.cause);
        // The certificate names 127.0.0.1, not localhost.
        let u = Upstream::new(
            UpstreamConfig::parse(&[format!("https://localhost:{port}")])
                .unwrap()
                .with_ca_bundle(Some(test_ca())),
        );
        let e = u
            .call("us-east-1", "dynamodb", "getItem", &json!({}), "DynamoDB")
            .await
            .unwrap_err();
        assert_eq!(e.error, "DynamoDB.SdkClientException");
        assert!(e.cause.contains("not valid for name"), "{}", e.cause);
        // A CA bundle that cannot be read fails the call and names the file.
        let u = Upstream::new(
            UpstreamConfig::parse(&[format!("https://127.0.0.1:{port}")])
                .unwrap()
                .with_ca_bundle(Some(PathBuf::from("/nonexistent/ca.pem"))),
        );
        let e = u
            .call("us-east-1", "dynamodb", "getItem", &json!({}), "DynamoDB")
            .await
            .unwrap_err();
        assert_eq!(e.error, "DynamoDB.SdkClientException");
        assert!(e.cause.contains("/nonexistent/ca.pem"), "{}", e.cause);
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_an_sdk_client_exception() {
        // A port nothing listens on.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let u =
            Upstream::new(UpstreamConfig::parse(&[format!("http://127.0.0.1:{port}")]).unwrap());
        let e = u
            .call_sdk(
                "us-east-1",
                "dynamodb",
                "getItem",
                &json!({"TableName": "t"}),
            )
            .await
            .unwrap_err();
        assert_eq!(e.error, "DynamoDb.SdkClientException");
    }
}
