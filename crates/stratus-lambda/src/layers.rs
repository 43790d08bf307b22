//! Lambda layers: PublishLayerVersion, GetLayerVersion(ByArn), ListLayers,
//! ListLayerVersions, DeleteLayerVersion, the layer version permissions
//! (Add/RemoveLayerVersionPermission, GetLayerVersionPolicy), the `Layers`
//! of a function, and the merged `/opt` directory its environments see.
//!
//! Behaviour follows "Managing Lambda dependencies with layers"
//! (<https://docs.aws.amazon.com/lambda/latest/dg/chapter-layers.html>) and
//! the API reference; shapes follow botocore's `lambda/2015-03-31` model.
//!
//! - A layer is stored as one record of kind [`KIND_LAYER`] (id: its name)
//!   holding its versions. Version numbers start at 1 and are never reused,
//!   even after a version is deleted.
//! - The content is a content-addressed package like a function's: the zip
//!   at `<data>/code/<sha256>.zip`, unpacked once at `<data>/code/<sha256>/`.
//! - A function keeps what it needs of each of its layer versions
//!   ([`LayerCode`]), so it keeps running with a version deleted after it was
//!   added ("Your functions can continue to use any layer version that you've
//!   already added, even after that layer version has been deleted").
//! - `CompatibleRuntimes` and `CompatibleArchitectures` are metadata for
//!   ListLayers / ListLayerVersions filtering; as on AWS, adding a layer whose
//!   lists do not name the function's runtime or architecture is allowed (a
//!   warning is logged).
//! - Execution environments see the layers merged into one `/opt` in order, a
//!   later layer's file replacing an earlier one's: [`Lambda::merged_opt_dir`]
//!   builds `<data>/opt/<key>/` once per list of layer contents, with hard
//!   links (copies across file systems).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use stratus_core::{AwsError, AwsResult};
use stratus_sandbox::package;

use stratus_sandbox::extensions::ExtensionsSpec;
use stratus_sandbox::isolation::{Isolation, IsolationSpec, Mount};
use stratus_sandbox::runtime::Family;

use crate::model::{FunctionRecord, Layer, LayerCode, RUNTIME_ENUM};
use crate::service::{Lambda, parse_body};
use crate::versions::{page, parse_max_items};

/// Store kind of layers (id: the layer name).
pub const KIND_LAYER: &str = "layer";

/// A function references at most 5 layers.
pub const MAX_FUNCTION_LAYERS: usize = 5;

/// `LayerName`, `LayerArn` and `LayerVersionArn` are at most 140 characters.
const MAX_LAYER_NAME: usize = 140;

const LAYER_NAME_PATTERN: &str =
    "(arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\\d{12}:layer:[a-zA-Z0-9-_]+)|[a-zA-Z0-9-_]+";
const LAYER_VERSION_ARN_PATTERN: &str =
    "arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+";

/// A layer and its versions, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LayerRecord {
    pub(crate) name: String,
    /// The number the next PublishLayerVersion takes.
    pub(crate) next_version: u64,
    /// Live versions, oldest first.
    pub(crate) versions: Vec<LayerVersionRecord>,
}

/// One layer version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LayerVersionRecord {
    pub(crate) version: u64,
    pub(crate) description: String,
    #[serde(default)]
    pub(crate) license_info: Option<String>,
    #[serde(default)]
    pub(crate) compatible_runtimes: Vec<String>,
    #[serde(default)]
    pub(crate) compatible_architectures: Vec<String>,
    /// `YYYY-MM-DDThh:mm:ss.sss+0000`.
    pub(crate) created_date: String,
    pub(crate) code_hex: String,
    /// Base64 of the SHA-256 of the zip.
    pub(crate) code_sha256: String,
    pub(crate) code_size: u64,
    pub(crate) unzipped_size: u64,
    /// Resource-based policy statements (AddLayerVersionPermission).
    #[serde(default)]
    pub(crate) statements: Vec<Value>,
    /// The policy's revision, renewed on every change.
    #[serde(default)]
    pub(crate) policy_revision: Option<String>,
}

/// `PublishLayerVersion` request body.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct PublishInput {
    description: Option<String>,
    content: Option<ContentInput>,
    compatible_runtimes: Option<Vec<String>>,
    license_info: Option<String>,
    compatible_architectures: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ContentInput {
    #[serde(rename = "S3Bucket")]
    s3_bucket: Option<String>,
    #[serde(rename = "S3Key")]
    s3_key: Option<String>,
    zip_file: Option<String>,
}

/// `AddLayerVersionPermission` request body.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct PermissionInput {
    statement_id: Option<String>,
    action: Option<String>,
    principal: Option<String>,
    organization_id: Option<String>,
}

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

fn arn_part(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// `arn:P:lambda:R:ACCOUNT:layer:NAME[:VERSION]` split into its parts
/// (partition, region, account, name, version).
fn split_layer_arn(s: &str) -> Option<(&str, &str, &str, &str, Option<&str>)> {
    let p: Vec<&str> = s.split(':').collect();
    if !(p.len() == 7 || p.len() == 8) || p[0] != "arn" || p[2] != "lambda" || p[5] != "layer" {
        return None;
    }
    if !arn_part(p[1])
        || !arn_part(p[3])
        || p[4].len() != 12
        || !p[4].bytes().all(|b| b.is_ascii_digit())
        || p[6].is_empty()
        || !p[6].chars().all(name_char)
    {
        return None;
    }
    let version = match p.get(7) {
        None => None,
        Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => Some(*v),
        Some(_) => return None,
    };
    Some((p[1], p[3], p[4], p[6], version))
}

/// True if `s` satisfies the model's `LayerVersionArn` (or AWS's own
/// `awslayer`) pattern and length, as `Layers` of a function must.
pub fn valid_layer_version_arn(s: &str) -> bool {
    if s.is_empty() || s.len() > MAX_LAYER_NAME {
        return false;
    }
    if let Some(rest) = s.strip_prefix("arn:") {
        // (arn:[a-zA-Z0-9-]+:lambda:::awslayer:[a-zA-Z0-9-_]+)
        let p: Vec<&str> = rest.split(':').collect();
        if p.len() == 6
            && arn_part(p[0])
            && p[1] == "lambda"
            && p[2].is_empty()
            && p[3].is_empty()
            && p[4] == "awslayer"
            && !p[5].is_empty()
            && p[5].chars().all(name_char)
        {
            return true;
        }
    }
    matches!(split_layer_arn(s), Some((_, _, _, _, Some(_))))
}

fn validation(value: &str, field: &str, rule: &str) -> AwsError {
    AwsError::validation_errors(&[format!(
        "Value '{value}' at '{field}' failed to satisfy constraint: {rule}"
    )])
}

/// AWS's answer for a layer or layer version that does not exist.
fn no_such_resource() -> AwsError {
    AwsError::not_found("The resource you requested does not exist.")
}

/// Parses the `VersionNumber` URI parameter (a long).
fn parse_version_number(raw: &str) -> AwsResult<u64> {
    raw.parse::<i64>()
        .map_err(|_| validation(raw, "versionNumber", "Member must be a number"))
        .map(|n| n.max(0) as u64)
}

impl Lambda {
    /// The layer name a `LayerName` parameter (a name or a layer ARN of this
    /// account and region) refers to.
    ///
    /// Errors: `ValidationException` for a value outside the model's pattern,
    /// `ResourceNotFoundException` for an ARN of another account or region.
    fn layer_name(&self, region: &str, raw: &str) -> AwsResult<String> {
        let bad = || {
            validation(
                raw,
                "layerName",
                &format!(
                    "Member must satisfy regular expression pattern: {LAYER_NAME_PATTERN} and have length between 1 and {MAX_LAYER_NAME}"
                ),
            )
        };
        if raw.is_empty() || raw.len() > MAX_LAYER_NAME {
            return Err(bad());
        }
        if raw.starts_with("arn:") {
            let Some((_, r, acct, name, None)) = split_layer_arn(raw) else {
                return Err(bad());
            };
            if r != region || acct != self.config.account_id {
                return Err(no_such_resource());
            }
            return Ok(name.to_string());
        }
        if !raw.chars().all(name_char) {
            return Err(bad());
        }
        Ok(raw.to_string())
    }

    fn layer_arn(&self, region: &str, name: &str) -> String {
        format!(
            "arn:aws:lambda:{region}:{}:layer:{name}",
            self.config.account_id
        )
    }

    fn load_layer(&self, region: &str, name: &str) -> AwsResult<Option<LayerRecord>> {
        match self.store.get(KIND_LAYER, region, name)? {
            None => Ok(None),
            Some(body) => serde_json::from_str(&body)
                .map(Some)
                .map_err(|e| AwsError::service(format!("stored layer {name} is unreadable: {e}"))),
        }
    }

    fn save_layer(&self, region: &str, rec: &LayerRecord) -> AwsResult<()> {
        let body = serde_json::to_string(rec).map_err(|e| AwsError::service(e.to_string()))?;
        self.store.put(KIND_LAYER, region, &rec.name, &body)?;
        Ok(())
    }

    fn layer_version_view(&self, region: &str, name: &str, v: &LayerVersionRecord) -> Value {
        let arn = self.layer_arn(region, name);
        let mut out = json!({
            "Content": {
                "Location": format!(
                    "{}/_stratus/layers/{region}/{name}/{}/{}.zip",
                    self.config.edge_url(),
                    v.version,
                    v.code_hex
                ),
                "CodeSha256": v.code_sha256,
                "CodeSize": v.code_size,
            },
            "LayerArn": arn,
            "LayerVersionArn": format!("{arn}:{}", v.version),
            "Description": v.description,
            "CreatedDate": v.created_date,
            "Version": v.version,
        });
        add_compat(&mut out, v);
        out
    }

    fn list_item(&self, region: &str, name: &str, v: &LayerVersionRecord) -> Value {
        let mut out = json!({
            "LayerVersionArn": format!("{}:{}", self.layer_arn(region, name), v.version),
            "Version": v.version,
            "Description": v.description,
            "CreatedDate": v.created_date,
        });
        add_compat(&mut out, v);
        out
    }

    /// PublishLayerVersion (`POST /2018-10-31/layers/{LayerName}/versions`,
    /// 201): a new version from `Content.ZipFile`.
    ///
    /// Errors: `ValidationException` for values outside the model,
    /// `InvalidParameterValueException` for a bad or missing package,
    /// `RequestEntityTooLargeException` (413) for a zip over 50 MB.
    pub async fn publish_layer_version(
        self: &Arc<Self>,
        region: &str,
        layer_name: &str,
        body: &[u8],
    ) -> AwsResult<Value> {
        let name = self.layer_name(region, layer_name)?;
        let input: PublishInput = parse_body(body)?;
        let runtimes = input.compatible_runtimes.clone().unwrap_or_default();
        let archs = input.compatible_architectures.clone().unwrap_or_default();
        let mut f = Vec::new();
        if let Some(d) = &input.description
            && d.chars().count() > 256
        {
            f.push(format!("Value '{d}' at 'description' failed to satisfy constraint: Member must have length less than or equal to 256"));
        }
        if let Some(l) = &input.license_info
            && l.chars().count() > 512
        {
            f.push(format!("Value '{l}' at 'licenseInfo' failed to satisfy constraint: Member must have length less than or equal to 512"));
        }
        if runtimes.len() > 15 {
            f.push(format!(
                "Value '[{}]' at 'compatibleRuntimes' failed to satisfy constraint: Member must have length less than or equal to 15",
                runtimes.join(", ")
            ));
        }
        if runtimes.iter().any(|r| !RUNTIME_ENUM.contains(&r.as_str())) {
            f.push(format!(
                "Value '[{}]' at 'compatibleRuntimes' failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value set: [{}]]",
                runtimes.join(", "),
                RUNTIME_ENUM.join(", ")
            ));
        }
        if archs.len() > 2 {
            f.push(format!(
                "Value '[{}]' at 'compatibleArchitectures' failed to satisfy constraint: Member must have length less than or equal to 2",
                archs.join(", ")
            ));
        }
        if archs.iter().any(|a| a != "x86_64" && a != "arm64") {
            f.push(format!(
                "Value '[{}]' at 'compatibleArchitectures' failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value set: [x86_64, arm64]]",
                archs.join(", ")
            ));
        }
        if !f.is_empty() {
            return Err(AwsError::validation_errors(&f));
        }
        let content = input.content.unwrap_or_default();
        let zip_b64 = match (&content.zip_file, &content.s3_bucket, &content.s3_key) {
            (Some(z), _, _) => z.clone(),
            (None, Some(_), _) | (None, None, Some(_)) => {
                return Err(AwsError::invalid_parameter(
                    "stratus cannot read layer content from S3 yet; upload the archive with Content.ZipFile (--zip-file fileb://layer.zip).",
                ));
            }
            (None, None, None) => {
                return Err(AwsError::invalid_parameter(
                    "Please provide a source for the layer content: Content.ZipFile (--zip-file fileb://layer.zip).",
                ));
            }
        };
        let (hex, sha_b64, size, unzipped) = self.accept_zip(&zip_b64).await?;
        let _g = self.write_lock.lock().await;
        let mut rec = self.load_layer(region, &name)?.unwrap_or(LayerRecord {
            name: name.clone(),
            next_version: 1,
            versions: Vec::new(),
        });
        let version = rec.next_version.max(1);
        rec.next_version = version + 1;
        let v = LayerVersionRecord {
            version,
            description: input.description.unwrap_or_default(),
            license_info: input.license_info,
            compatible_runtimes: runtimes,
            compatible_architectures: archs,
            created_date: stratus_core::time::lambda_timestamp(stratus_core::time::now_ms()),
            code_hex: hex,
            code_sha256: sha_b64,
            code_size: size,
            unzipped_size: unzipped,
            statements: Vec::new(),
            policy_revision: None,
        };
        rec.versions.push(v.clone());
        self.save_layer(region, &rec)?;
        Ok(self.layer_version_view(region, &name, &v))
    }

    fn find_version(
        &self,
        region: &str,
        name: &str,
        version: u64,
    ) -> AwsResult<(LayerRecord, usize)> {
        let rec = self
            .load_layer(region, name)?
            .ok_or_else(no_such_resource)?;
        let i = rec
            .versions
            .iter()
            .position(|v| v.version == version)
            .ok_or_else(no_such_resource)?;
        Ok((rec, i))
    }

    /// GetLayerVersion (`GET /2018-10-31/layers/{LayerName}/versions/{VersionNumber}`).
    pub fn get_layer_version(
        &self,
        region: &str,
        layer_name: &str,
        version: &str,
    ) -> AwsResult<Value> {
        let name = self.layer_name(region, layer_name)?;
        let n = parse_version_number(version)?;
        let (rec, i) = self.find_version(region, &name, n)?;
        Ok(self.layer_version_view(region, &name, &rec.versions[i]))
    }

    /// GetLayerVersionByArn (`GET /2018-10-31/layers?find=LayerVersion&Arn=...`).
    pub fn get_layer_version_by_arn(&self, region: &str, arn: Option<&str>) -> AwsResult<Value> {
        let arn = arn.ok_or_else(|| {
            AwsError::invalid_parameter("Arn is a required parameter and was not provided.")
        })?;
        let Some((_, r, acct, name, Some(v))) =
            split_layer_arn(arn).filter(|_| arn.len() <= MAX_LAYER_NAME)
        else {
            return Err(validation(
                arn,
                "arn",
                &format!(
                    "Member must satisfy regular expression pattern: {LAYER_VERSION_ARN_PATTERN}"
                ),
            ));
        };
        if r != region || acct != self.config.account_id {
            return Err(no_such_resource());
        }
        let n = parse_version_number(v)?;
        let (rec, i) = self.find_version(region, name, n)?;
        Ok(self.layer_version_view(region, name, &rec.versions[i]))
    }

    /// ListLayers (`GET /2018-10-31/layers`): each layer with its latest
    /// version matching `CompatibleRuntime` / `CompatibleArchitecture`,
    /// ordered by name; `MaxItems` 1-50 (default 50) and `Marker` paging.
    pub fn list_layers(
        &self,
        region: &str,
        runtime: Option<&str>,
        architecture: Option<&str>,
        marker: Option<&str>,
        max_items: Option<&str>,
    ) -> AwsResult<Value> {
        check_filters(runtime, architecture)?;
        let max = parse_max_items(max_items, 50, 50)?;
        let mut items = Vec::new();
        for (name, body) in self.store.list(KIND_LAYER, region)? {
            let Ok(rec) = serde_json::from_str::<LayerRecord>(&body) else {
                continue;
            };
            if let Some(v) = rec
                .versions
                .iter()
                .rev()
                .find(|v| matches_filters(v, runtime, architecture))
            {
                items.push((
                    name.clone(),
                    json!({
                        "LayerName": name,
                        "LayerArn": self.layer_arn(region, &rec.name),
                        "LatestMatchingVersion": self.list_item(region, &rec.name, v),
                    }),
                ));
            }
        }
        let (layers, next) = page(items, marker, max)?;
        let mut out = json!({ "Layers": layers });
        if let Some(n) = next {
            out["NextMarker"] = json!(n);
        }
        Ok(out)
    }

    /// ListLayerVersions (`GET /2018-10-31/layers/{LayerName}/versions`):
    /// live versions, newest first, with the same filters and paging.
    pub fn list_layer_versions(
        &self,
        region: &str,
        layer_name: &str,
        runtime: Option<&str>,
        architecture: Option<&str>,
        marker: Option<&str>,
        max_items: Option<&str>,
    ) -> AwsResult<Value> {
        let name = self.layer_name(region, layer_name)?;
        check_filters(runtime, architecture)?;
        let max = parse_max_items(max_items, 50, 50)?;
        let versions = self
            .load_layer(region, &name)?
            .map(|r| r.versions)
            .unwrap_or_default();
        let items: Vec<(String, Value)> = versions
            .iter()
            .rev()
            .filter(|v| matches_filters(v, runtime, architecture))
            .map(|v| (v.version.to_string(), self.list_item(region, &name, v)))
            .collect();
        let (list, next) = page(items, marker, max)?;
        let mut out = json!({ "LayerVersions": list });
        if let Some(n) = next {
            out["NextMarker"] = json!(n);
        }
        Ok(out)
    }

    /// DeleteLayerVersion (`DELETE .../versions/{VersionNumber}`, 204).
    /// Deleting a version that does not exist succeeds, as on AWS. Functions
    /// that use the version keep their copy of it.
    pub async fn delete_layer_version(
        &self,
        region: &str,
        layer_name: &str,
        version: &str,
    ) -> AwsResult<()> {
        let name = self.layer_name(region, layer_name)?;
        let n = parse_version_number(version)?;
        let _g = self.write_lock.lock().await;
        if let Some(mut rec) = self.load_layer(region, &name)? {
            let before = rec.versions.len();
            rec.versions.retain(|v| v.version != n);
            if rec.versions.len() != before {
                self.save_layer(region, &rec)?;
            }
        }
        Ok(())
    }

    /// AddLayerVersionPermission (`POST .../versions/{VersionNumber}/policy`,
    /// 201): `{Statement, RevisionId}`.
    pub async fn add_layer_version_permission(
        &self,
        region: &str,
        layer_name: &str,
        version: &str,
        revision_id: Option<&str>,
        body: &[u8],
    ) -> AwsResult<Value> {
        let name = self.layer_name(region, layer_name)?;
        let n = parse_version_number(version)?;
        let input: PermissionInput = parse_body(body)?;
        let missing = |f: &str| {
            AwsError::invalid_parameter(format!(
                "{f} is a required parameter and was not provided."
            ))
        };
        let sid = input.statement_id.ok_or_else(|| missing("StatementId"))?;
        let action = input.action.ok_or_else(|| missing("Action"))?;
        let principal = input.principal.ok_or_else(|| missing("Principal"))?;
        let mut f = Vec::new();
        if sid.is_empty() || sid.len() > 100 || !sid.chars().all(name_char) {
            f.push(format!("Value '{sid}' at 'statementId' failed to satisfy constraint: Member must satisfy regular expression pattern: ([a-zA-Z0-9-_]+)"));
        }
        if action != "lambda:GetLayerVersion" {
            f.push(format!("Value '{action}' at 'action' failed to satisfy constraint: Member must satisfy regular expression pattern: lambda:GetLayerVersion"));
        }
        if !valid_principal(&principal) {
            f.push(format!("Value '{principal}' at 'principal' failed to satisfy constraint: Member must satisfy regular expression pattern: \\d{{12}}|\\*|arn:(aws[a-zA-Z-]*):iam::\\d{{12}}:root"));
        }
        if let Some(o) = &input.organization_id
            && !valid_org(o)
        {
            f.push(format!("Value '{o}' at 'organizationId' failed to satisfy constraint: Member must satisfy regular expression pattern: o-[a-z0-9]{{10,32}}"));
        }
        if !f.is_empty() {
            return Err(AwsError::validation_errors(&f));
        }
        let _g = self.write_lock.lock().await;
        let (mut rec, i) = self.find_version(region, &name, n)?;
        let arn = format!("{}:{n}", self.layer_arn(region, &name));
        let v = &mut rec.versions[i];
        check_policy_revision(v, revision_id)?;
        if v.statements.iter().any(|s| s["Sid"] == json!(sid)) {
            return Err(AwsError::conflict(format!(
                "The statement id ({sid}) provided already exists. Please provide a new statement id, or remove the existing statement."
            )));
        }
        let principal_v = if principal == "*" {
            json!("*")
        } else if principal.starts_with("arn:") {
            json!({ "AWS": principal })
        } else {
            json!({ "AWS": format!("arn:aws:iam::{principal}:root") })
        };
        let mut statement = json!({
            "Sid": sid,
            "Effect": "Allow",
            "Principal": principal_v,
            "Action": action,
            "Resource": arn,
        });
        if let Some(o) = input.organization_id {
            statement["Condition"] = json!({ "StringEquals": { "aws:PrincipalOrgID": o } });
        }
        v.statements.push(statement.clone());
        let revision = uuid::Uuid::new_v4().to_string();
        v.policy_revision = Some(revision.clone());
        self.save_layer(region, &rec)?;
        Ok(json!({ "Statement": statement.to_string(), "RevisionId": revision }))
    }

    /// RemoveLayerVersionPermission (`DELETE .../policy/{StatementId}`, 204).
    pub async fn remove_layer_version_permission(
        &self,
        region: &str,
        layer_name: &str,
        version: &str,
        statement_id: &str,
        revision_id: Option<&str>,
    ) -> AwsResult<()> {
        let name = self.layer_name(region, layer_name)?;
        let n = parse_version_number(version)?;
        let _g = self.write_lock.lock().await;
        let (mut rec, i) = self.find_version(region, &name, n)?;
        let v = &mut rec.versions[i];
        check_policy_revision(v, revision_id)?;
        let before = v.statements.len();
        v.statements.retain(|s| s["Sid"] != json!(statement_id));
        if v.statements.len() == before {
            return Err(AwsError::not_found(format!(
                "Statement {statement_id} is not found in resource policy."
            )));
        }
        v.policy_revision = Some(uuid::Uuid::new_v4().to_string());
        self.save_layer(region, &rec)
    }

    /// GetLayerVersionPolicy (`GET .../versions/{VersionNumber}/policy`):
    /// `{Policy, RevisionId}`, the policy as a JSON document string.
    pub fn get_layer_version_policy(
        &self,
        region: &str,
        layer_name: &str,
        version: &str,
    ) -> AwsResult<Value> {
        let name = self.layer_name(region, layer_name)?;
        let n = parse_version_number(version)?;
        let (rec, i) = self.find_version(region, &name, n)?;
        let v = &rec.versions[i];
        if v.statements.is_empty() {
            return Err(AwsError::not_found(
                "No policy is associated with the given resource.",
            ));
        }
        let policy = json!({
            "Version": "2012-10-17",
            "Id": "default",
            "Statement": v.statements,
        });
        Ok(json!({
            "Policy": policy.to_string(),
            "RevisionId": v.policy_revision.clone().unwrap_or_default(),
        }))
    }

    /// The zip of a layer version, for `Content.Location` downloads.
    pub fn layer_bytes(
        &self,
        region: &str,
        name: &str,
        version: &str,
        hex: &str,
    ) -> AwsResult<Vec<u8>> {
        let n = parse_version_number(version)?;
        let (rec, i) = self.find_version(region, name, n)?;
        if rec.versions[i].code_hex != hex {
            return Err(no_such_resource());
        }
        std::fs::read(self.code_zip_path(hex))
            .map_err(|e| AwsError::service(format!("reading layer archive: {e}")))
    }

    /// Resolves a function's `Layers` to the layer versions it will keep.
    /// `current` are the function's layers so far: a version it already
    /// uses is kept even if it has been deleted since.
    ///
    /// Errors (`InvalidParameterValueException`): a version that does not
    /// exist, the same layer twice.
    pub(crate) fn resolve_layers(
        &self,
        region: &str,
        arns: &[String],
        current: &[LayerCode],
    ) -> AwsResult<Vec<LayerCode>> {
        let mut out: Vec<LayerCode> = Vec::new();
        let mut layers_seen: Vec<(String, &str)> = Vec::new();
        for a in arns {
            let missing =
                || AwsError::invalid_parameter(format!("Layer version {a} does not exist."));
            let Some((_, r, acct, name, Some(v))) = split_layer_arn(a) else {
                return Err(missing());
            };
            let layer_arn = format!("arn:aws:lambda:{r}:{acct}:layer:{name}");
            if let Some((_, other)) = layers_seen.iter().find(|(l, _)| *l == layer_arn) {
                return Err(AwsError::invalid_parameter(format!(
                    "Two different versions of the same layer are not allowed to be referenced in the same function. {other} and {a} reference the same layer."
                )));
            }
            layers_seen.push((layer_arn, a));
            if let Some(c) = current.iter().find(|c| &c.arn == a) {
                out.push(c.clone());
                continue;
            }
            if r != region || acct != self.config.account_id {
                return Err(missing());
            }
            let n = parse_version_number(v)?;
            let (rec, i) = self.find_version(region, name, n).map_err(|_| missing())?;
            let lv = &rec.versions[i];
            out.push(LayerCode {
                arn: a.clone(),
                code_hex: lv.code_hex.clone(),
                code_size: lv.code_size,
                unzipped_size: lv.unzipped_size,
            });
        }
        Ok(out)
    }

    /// Logs a warning for each layer whose compatible runtimes or
    /// architectures do not name the function's (AWS does not refuse it).
    pub(crate) fn warn_incompatible_layers(
        &self,
        region: &str,
        layers: &[LayerCode],
        runtime: Option<&str>,
        architecture: Option<&str>,
    ) {
        for l in layers {
            let Some((_, _, _, name, Some(v))) = split_layer_arn(&l.arn) else {
                continue;
            };
            let Ok(n) = v.parse::<u64>() else { continue };
            let Ok((rec, i)) = self.find_version(region, name, n) else {
                continue;
            };
            let lv = &rec.versions[i];
            if let Some(r) = runtime
                && !lv.compatible_runtimes.is_empty()
                && !lv.compatible_runtimes.iter().any(|c| c == r)
            {
                tracing::warn!(
                    layer = %l.arn,
                    "layer's CompatibleRuntimes [{}] do not include {r}",
                    lv.compatible_runtimes.join(", ")
                );
            }
            if let Some(a) = architecture
                && !lv.compatible_architectures.is_empty()
                && !lv.compatible_architectures.iter().any(|c| c == a)
            {
                tracing::warn!(
                    layer = %l.arn,
                    "layer's CompatibleArchitectures [{}] do not include {a}",
                    lv.compatible_architectures.join(", ")
                );
            }
        }
    }

    /// A merged `/opt` for `layers` (in order, a later layer's file wins):
    /// `<data>/opt/<key>/`, built once and shared by every environment
    /// with the same layer contents. Blocking (file system work).
    pub(crate) fn merged_opt_dir(&self, layers: &[LayerCode]) -> io::Result<PathBuf> {
        let mut h = Sha256::new();
        for l in layers {
            h.update(l.code_hex.as_bytes());
            h.update(b"\n");
        }
        let key: String = h
            .finalize()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        let root = self.config.data_dir.join("opt");
        let dir = root.join(&key);
        if dir.is_dir() {
            return Ok(dir);
        }
        std::fs::create_dir_all(&root)?;
        let tmp = root.join(format!(".tmp-{}", stratus_core::hex32()));
        let built = (|| -> io::Result<()> {
            create_dir_mode(&tmp, 0o755)?;
            for l in layers {
                let src = self.code_dir(&l.code_hex);
                if !src.is_dir() {
                    // The unpacked copy is gone (data dir cleaned): unpack the zip again.
                    let zip = std::fs::read(self.code_zip_path(&l.code_hex))?;
                    match package::unpack_zip(&zip, &src, package::MAX_UNZIPPED_BYTES) {
                        Ok(_) => {}
                        Err(_) if src.is_dir() => {}
                        Err(e) => return Err(io::Error::other(e.aws_message())),
                    }
                }
                merge_tree(&src, &tmp)?;
            }
            Ok(())
        })();
        if let Err(e) = built {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        match std::fs::rename(&tmp, &dir) {
            Ok(()) => Ok(dir),
            // Another cold start built the same directory meanwhile.
            Err(_) if dir.is_dir() => {
                let _ = std::fs::remove_dir_all(&tmp);
                Ok(dir)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                Err(e)
            }
        }
    }
}

impl Lambda {
    /// The merged `/opt` of a function with layers (`None` without).
    pub(crate) async fn layers_opt_dir(
        self: &Arc<Self>,
        rec: &FunctionRecord,
    ) -> AwsResult<Option<PathBuf>> {
        if rec.layer_code.is_empty() {
            return Ok(None);
        }
        let me = self.clone();
        let layers = rec.layer_code.clone();
        tokio::task::spawn_blocking(move || me.merged_opt_dir(&layers))
            .await
            .map_err(|e| AwsError::service(format!("preparing the layers failed: {e}")))?
            .map(Some)
            .map_err(|e| AwsError::service(format!("could not prepare the function's layers: {e}")))
    }

    /// What the layers bring to an environment, applied to its runtime
    /// `command` and variables:
    /// - process mode: `/opt/...` entries of `PATH`, `LD_LIBRARY_PATH` and
    ///   `NODE_PATH` point into the merged directory, and `STRATUS_OPT_DIR`
    ///   names it (the bootstraps read it for `/opt/python` and
    ///   `/opt/nodejs`);
    /// - `AWS_LAMBDA_EXEC_WRAPPER` (managed runtimes): the wrapper runs with
    ///   the runtime's command line as its arguments;
    /// - executables in `/opt/extensions`: the launcher starts them before
    ///   the runtime (see `stratus_sandbox::extensions`), and in namespace
    ///   mode `sandbox.localdomain` resolves to the environment.
    pub(crate) fn layer_environment(
        &self,
        rec: &FunctionRecord,
        family: Family,
        opt_dir: Option<&Path>,
        isolation: &mut IsolationSpec,
        command: Vec<String>,
        vars: Vec<(String, String)>,
    ) -> (Vec<String>, Vec<(String, String)>, ExtensionsSpec) {
        let ns = isolation.mode == Isolation::Namespace;
        let (mut command, mut vars) = (command, vars);
        // `/opt/x` as the runtime sees it.
        let seen = |p: &str| -> String {
            match opt_dir {
                Some(o) if !ns && (p == "/opt" || p.starts_with("/opt/")) => {
                    format!("{}{}", o.display(), &p[4..])
                }
                _ => p.to_string(),
            }
        };
        if let Some(o) = opt_dir
            && !ns
        {
            for (k, v) in vars.iter_mut() {
                if matches!(k.as_str(), "PATH" | "LD_LIBRARY_PATH" | "NODE_PATH") {
                    *v = v.split(':').map(seen).collect::<Vec<_>>().join(":");
                }
            }
            vars.retain(|(k, _)| k != "STRATUS_OPT_DIR");
            vars.push(("STRATUS_OPT_DIR".into(), o.to_string_lossy().into_owned()));
        }
        if family != Family::Provided
            && let Some(w) = vars
                .iter()
                .find(|(k, _)| k == "AWS_LAMBDA_EXEC_WRAPPER")
                .map(|(_, v)| v.clone())
                .filter(|w| !w.is_empty())
        {
            command.insert(0, seen(&w));
        }
        let external: Vec<String> = opt_dir
            .map(|o| stratus_sandbox::launcher::extension_files(&o.join("extensions")))
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        if !external.is_empty() {
            let dir = seen("/opt/extensions");
            let mut c = vec![
                "/proc/self/exe".to_string(),
                stratus_sandbox::extensions::LAUNCHER_ARG.to_string(),
                "--dir".to_string(),
                dir,
            ];
            if ns {
                c.push("--forward".into());
            }
            c.push("--".into());
            c.extend(command);
            command = c;
            if ns && let Ok(hosts) = std::fs::read_to_string("/etc/hosts") {
                let mut contents = hosts;
                if !contents.ends_with('\n') && !contents.is_empty() {
                    contents.push('\n');
                }
                contents.push_str("127.0.0.1\tsandbox.localdomain sandbox\n");
                isolation.mounts.push(Mount::File {
                    dst: "/etc/hosts".into(),
                    contents,
                });
            }
        }
        let c = &rec.config;
        let spec = ExtensionsSpec {
            external,
            function_name: c.function_name.clone(),
            function_version: c.version.clone(),
            handler: c.handler.clone().unwrap_or_default(),
            account_id: self.config.account_id.clone(),
            initialization_type: rec.initialization_type().to_string(),
        };
        (command, vars, spec)
    }
}

/// The command of a custom runtime whose `bootstrap` comes from a layer
/// (`/opt/bootstrap`, used when the package has no `bootstrap`).
pub(crate) fn opt_bootstrap(
    family: Family,
    task_root: &Path,
    opt_dir: Option<&Path>,
    ns: bool,
) -> Option<String> {
    let o = opt_dir?;
    if family != Family::Provided
        || task_root.join("bootstrap").is_file()
        || !o.join("bootstrap").is_file()
    {
        return None;
    }
    Some(if ns {
        "/opt/bootstrap".to_string()
    } else {
        o.join("bootstrap").to_string_lossy().into_owned()
    })
}

/// `Layers` of FunctionConfiguration for a function's layer versions
/// (`None` without layers).
pub(crate) fn config_layers(layers: &[LayerCode]) -> Option<Vec<Layer>> {
    if layers.is_empty() {
        return None;
    }
    Some(
        layers
            .iter()
            .map(|l| Layer {
                arn: l.arn.clone(),
                code_size: l.code_size,
            })
            .collect(),
    )
}

/// Checks the function + layers unzipped size quota (250 MB).
pub(crate) fn check_total_size(code_unzipped: u64, layers: &[LayerCode]) -> AwsResult<()> {
    let total = code_unzipped + layers.iter().map(|l| l.unzipped_size).sum::<u64>();
    if total > package::MAX_UNZIPPED_BYTES {
        return Err(AwsError::invalid_parameter(format!(
            "Function code combined with layers exceeds the maximum allowed size of {} bytes. The actual size is {total} bytes.",
            package::MAX_UNZIPPED_BYTES
        )));
    }
    Ok(())
}

fn add_compat(out: &mut Value, v: &LayerVersionRecord) {
    if !v.compatible_runtimes.is_empty() {
        out["CompatibleRuntimes"] = json!(v.compatible_runtimes);
    }
    if let Some(l) = &v.license_info {
        out["LicenseInfo"] = json!(l);
    }
    if !v.compatible_architectures.is_empty() {
        out["CompatibleArchitectures"] = json!(v.compatible_architectures);
    }
}

fn check_filters(runtime: Option<&str>, architecture: Option<&str>) -> AwsResult<()> {
    let mut f = Vec::new();
    if let Some(r) = runtime
        && !RUNTIME_ENUM.contains(&r)
    {
        f.push(format!(
            "Value '{r}' at 'compatibleRuntime' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
            RUNTIME_ENUM.join(", ")
        ));
    }
    if let Some(a) = architecture
        && a != "x86_64"
        && a != "arm64"
    {
        f.push(format!(
            "Value '{a}' at 'compatibleArchitecture' failed to satisfy constraint: Member must satisfy enum value set: [x86_64, arm64]"
        ));
    }
    if f.is_empty() {
        Ok(())
    } else {
        Err(AwsError::validation_errors(&f))
    }
}

fn matches_filters(
    v: &LayerVersionRecord,
    runtime: Option<&str>,
    architecture: Option<&str>,
) -> bool {
    runtime.is_none_or(|r| v.compatible_runtimes.iter().any(|c| c == r))
        && architecture.is_none_or(|a| v.compatible_architectures.iter().any(|c| c == a))
}

fn check_policy_revision(v: &LayerVersionRecord, revision_id: Option<&str>) -> AwsResult<()> {
    if let Some(r) = revision_id
        && Some(r) != v.policy_revision.as_deref()
    {
        return Err(AwsError::new(
            412,
            "PreconditionFailedException",
            "The Revision Id provided does not match the latest Revision Id. Call the GetLayerVersionPolicy API to retrieve the latest Revision Id",
        ));
    }
    Ok(())
}

/// `\d{12}|\*|arn:(aws[a-zA-Z-]*):iam::\d{12}:root`.
fn valid_principal(p: &str) -> bool {
    let acct = |s: &str| s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit());
    if p == "*" || acct(p) {
        return true;
    }
    let parts: Vec<&str> = p.split(':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[1][3..]
            .chars()
            .all(|c| c.is_ascii_alphabetic() || c == '-')
        && parts[2] == "iam"
        && parts[3].is_empty()
        && acct(parts[4])
        && parts[5] == "root"
}

/// `o-[a-z0-9]{10,32}`.
fn valid_org(o: &str) -> bool {
    o.strip_prefix("o-").is_some_and(|r| {
        (10..=32).contains(&r.len())
            && r.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    })
}

fn create_dir_mode(p: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(mode).create(p)
}

/// Merges the tree `src` into `dst`: directories are merged, anything else
/// replaces what `dst` has at the same path (hard link, else copy;
/// symlinks are recreated).
fn merge_tree(src: &Path, dst: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let meta = std::fs::symlink_metadata(&from)?;
        let existing = std::fs::symlink_metadata(&to).ok();
        if meta.is_dir() {
            match existing {
                Some(m) if m.is_dir() => {}
                Some(_) => {
                    std::fs::remove_file(&to)?;
                    create_dir_mode(&to, meta.permissions().mode() & 0o7777)?;
                }
                None => create_dir_mode(&to, meta.permissions().mode() & 0o7777)?,
            }
            merge_tree(&from, &to)?;
            continue;
        }
        match existing {
            Some(m) if m.is_dir() => std::fs::remove_dir_all(&to)?,
            Some(_) => std::fs::remove_file(&to)?,
            None => {}
        }
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
        } else if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to)?;
            std::fs::set_permissions(&to, meta.permissions())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_version_arns() {
        assert!(valid_layer_version_arn(
            "arn:aws:lambda:us-east-1:123456789012:layer:my-layer:1"
        ));
        assert!(valid_layer_version_arn(
            "arn:aws:lambda:::awslayer:AWSLambda-Python-AWS-SDK"
        ));
        assert!(!valid_layer_version_arn(
            "arn:aws:lambda:us-east-1:123456789012:layer:my-layer"
        ));
        assert!(!valid_layer_version_arn(
            "arn:aws:lambda:us-east-1:123456789012:layer:my-layer:latest"
        ));
        assert!(!valid_layer_version_arn("my-layer:1"));
        assert!(!valid_layer_version_arn(""));
        assert_eq!(
            split_layer_arn("arn:aws:lambda:ap-northeast-1:123456789012:layer:x_y-z:3"),
            Some(("aws", "ap-northeast-1", "123456789012", "x_y-z", Some("3")))
        );
    }

    #[test]
    fn principals_and_orgs() {
        assert!(valid_principal("*"));
        assert!(valid_principal("210987654321"));
        assert!(valid_principal("arn:aws:iam::210987654321:root"));
        assert!(!valid_principal("arn:aws:iam::210987654321:user/x"));
        assert!(!valid_principal("21098765432"));
        assert!(valid_org("o-abcdefghij"));
        assert!(!valid_org("o-ABC"));
    }

    #[test]
    fn total_size() {
        let l = |n| LayerCode {
            arn: String::new(),
            code_hex: String::new(),
            code_size: 1,
            unzipped_size: n,
        };
        assert!(check_total_size(100, &[l(100)]).is_ok());
        let e = check_total_size(package::MAX_UNZIPPED_BYTES, &[l(1)]).unwrap_err();
        assert_eq!(e.code, "InvalidParameterValueException");
        assert!(e.message.contains("The actual size is 262144001 bytes."));
    }

    #[test]
    fn merge_later_wins() {
        let t = tempdir();
        let a = t.join("a");
        let b = t.join("b");
        let out = t.join("out");
        std::fs::create_dir_all(a.join("python/common")).unwrap();
        std::fs::create_dir_all(b.join("python/common")).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(a.join("python/common/x.py"), "a").unwrap();
        std::fs::write(a.join("python/only_a.py"), "a").unwrap();
        std::fs::write(b.join("python/common/x.py"), "b").unwrap();
        merge_tree(&a, &out).unwrap();
        merge_tree(&b, &out).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("python/common/x.py")).unwrap(),
            "b"
        );
        assert_eq!(
            std::fs::read_to_string(out.join("python/only_a.py")).unwrap(),
            "a"
        );
        // The layer's own files are untouched.
        assert_eq!(
            std::fs::read_to_string(a.join("python/common/x.py")).unwrap(),
            "a"
        );
        let _ = std::fs::remove_dir_all(&t);
    }

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("stratus-layers-{}", stratus_core::hex32()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
