//! Function versions: PublishVersion, ListVersionsByFunction, DeleteFunction
//! with a `Qualifier`, `Publish=true` on CreateFunction / UpdateFunctionCode,
//! and the resolution of a qualifier (`$LATEST`, a version number, an alias)
//! to the record that describes it.
//!
//! A version is an immutable copy of `$LATEST`'s code and configuration
//! (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-versions.html>).
//! It is stored as a [`FunctionRecord`] of kind [`KIND_VERSION`] with id
//! `name:N`; its code is the same content-addressed package under
//! `<data>/code/<sha256>/`, so publishing copies no files.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use stratus_core::{AwsError, AwsResult, FunctionRef, arn};

use crate::aliases::AliasRecord;
use crate::invoke::InvokeTarget;
use crate::model::FunctionRecord;
use crate::service::{Lambda, parse_body};

/// Store kind of published versions (id `name:N`).
pub const KIND_VERSION: &str = "function_version";

/// Store id of a per-function resource: `name:qualifier`.
pub fn qualified_id(name: &str, qualifier: &str) -> String {
    format!("{name}:{qualifier}")
}

/// True for a published version number (`[0-9]+`).
pub fn is_version_number(q: &str) -> bool {
    !q.is_empty() && q.len() <= 1024 && q.bytes().all(|b| b.is_ascii_digit())
}

/// The key of a function version's environments in the invoke pool:
/// `name` for `$LATEST`, `name:N` for a version.
pub(crate) fn pool_key(rec: &FunctionRecord) -> String {
    if rec.config.version == "$LATEST" {
        rec.config.function_name.clone()
    } else {
        qualified_id(&rec.config.function_name, &rec.config.version)
    }
}

/// Records of versions and aliases by (region, `name:qualifier`), kept in
/// step with the store so invokes skip SQLite and JSON.
#[derive(Default)]
pub(crate) struct QualifiedCache {
    versions: RwLock<HashMap<(String, String), Arc<FunctionRecord>>>,
    pub(crate) aliases: RwLock<HashMap<(String, String), Arc<AliasRecord>>>,
}

impl QualifiedCache {
    pub(crate) fn put_version(&self, region: &str, rec: &FunctionRecord) {
        self.versions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert((region.to_string(), pool_key(rec)), Arc::new(rec.clone()));
    }

    pub(crate) fn remove_version(&self, region: &str, id: &str) {
        self.versions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(region.to_string(), id.to_string()));
    }

    fn get_version(&self, region: &str, id: &str) -> Option<Arc<FunctionRecord>> {
        self.versions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(region.to_string(), id.to_string()))
            .cloned()
    }
}

/// The fingerprint of what a version freezes: the code and every setting of
/// the configuration, without the fields that change by themselves (ARN,
/// version, revision, timestamps, state). PublishVersion returns the last
/// version instead of a new one when `$LATEST`'s fingerprint equals it
/// ("Lambda doesn't create a new version if the code in $LATEST hasn't
/// changed since the last version").
pub(crate) fn fingerprint(rec: &FunctionRecord) -> String {
    let mut v = serde_json::to_value(&rec.config).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        for k in [
            "FunctionArn",
            "Version",
            "RevisionId",
            "LastModified",
            "State",
            "StateReason",
            "StateReasonCode",
            "LastUpdateStatus",
            "LastUpdateStatusReason",
            "LastUpdateStatusReasonCode",
        ] {
            o.remove(k);
        }
    }
    let mut h = Sha256::new();
    h.update(rec.code_hex.as_bytes());
    h.update(b"\n");
    h.update(v.to_string().as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses `MaxItems` of a list operation (1..=`max`, default `default`).
pub(crate) fn parse_max_items(raw: Option<&str>, default: usize, max: usize) -> AwsResult<usize> {
    let Some(s) = raw else { return Ok(default) };
    let n: i64 = s.parse().map_err(|_| {
        AwsError::invalid_parameter(format!("MaxItems must be a number; got '{s}'."))
    })?;
    if n < 1 || n > max as i64 {
        return Err(AwsError::validation_errors(&[format!(
            "Value '{n}' at 'maxItems' failed to satisfy constraint: Member must have value {}",
            if n < 1 {
                "greater than or equal to 1".to_string()
            } else {
                format!("less than or equal to {max}")
            }
        )]));
    }
    Ok(n as usize)
}

/// One page of `items` (already in order, each with its sort key): the items
/// after `marker`, at most `max`, and the NextMarker if more remain. Markers
/// are the base64 of the last key returned.
pub(crate) fn page<T>(
    items: Vec<(String, T)>,
    marker: Option<&str>,
    max: usize,
) -> AwsResult<(Vec<T>, Option<String>)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let after = match marker {
        None | Some("") => None,
        Some(m) => Some(
            b64.decode(m)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    AwsError::invalid_parameter(
                        "The Marker is not valid: pass the NextMarker of a previous response.",
                    )
                })?,
        ),
    };
    let mut started = after.is_none();
    let mut out = Vec::new();
    let mut last_key = None;
    let mut next = None;
    for (k, item) in items {
        if !started {
            if Some(&k) == after.as_ref() {
                started = true;
            }
            continue;
        }
        if out.len() == max {
            next = last_key.map(|k: String| b64.encode(k));
            break;
        }
        last_key = Some(k);
        out.push(item);
    }
    Ok((out, next))
}

fn json_value<T: serde::Serialize>(v: &T) -> AwsResult<Value> {
    serde_json::to_value(v).map_err(|e| AwsError::service(e.to_string()))
}

/// The `PublishVersion` request body.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PublishInput {
    code_sha256: Option<String>,
    description: Option<String>,
    revision_id: Option<String>,
}

impl Lambda {
    /// The ARN of a function with a qualifier: `arn:aws:lambda:R:A:function:name:q`.
    pub(crate) fn qualified_arn(&self, region: &str, name: &str, qualifier: &str) -> String {
        format!(
            "{}:{qualifier}",
            arn::function_arn(region, &self.config.account_id, name)
        )
    }

    /// Loads a published version. Errors: `ResourceNotFoundException` naming
    /// the version's ARN.
    pub fn load_version(
        &self,
        region: &str,
        name: &str,
        version: &str,
    ) -> AwsResult<FunctionRecord> {
        let id = qualified_id(name, version);
        if let Some(r) = self.qualified.get_version(region, &id) {
            return Ok((*r).clone());
        }
        match self.store.get(KIND_VERSION, region, &id)? {
            Some(body) => {
                let rec: FunctionRecord = serde_json::from_str(&body).map_err(|e| {
                    AwsError::service(format!("stored version {id} is unreadable: {e}"))
                })?;
                self.qualified.put_version(region, &rec);
                Ok(rec)
            }
            None => Err(self.not_found(region, name, Some(version))),
        }
    }

    pub(crate) fn save_version(&self, region: &str, rec: &FunctionRecord) -> AwsResult<()> {
        let body = serde_json::to_string(rec).map_err(|e| AwsError::service(e.to_string()))?;
        self.store
            .put(KIND_VERSION, region, &pool_key(rec), &body)?;
        self.qualified.put_version(region, rec);
        Ok(())
    }

    /// Every published version of a function, in version order.
    pub(crate) fn version_records(
        &self,
        region: &str,
        name: &str,
    ) -> AwsResult<Vec<FunctionRecord>> {
        let prefix = format!("{name}:");
        let mut out: Vec<FunctionRecord> = self
            .store
            .list(KIND_VERSION, region)?
            .into_iter()
            .filter(|(id, _)| id.starts_with(&prefix))
            .filter_map(|(_, body)| serde_json::from_str(&body).ok())
            .collect();
        out.sort_by_key(|r| r.config.version.parse::<u64>().unwrap_or(u64::MAX));
        Ok(out)
    }

    /// The record a qualifier names: `$LATEST`, a published version, or the
    /// version an alias points to (with the alias's ARN as FunctionArn, as
    /// GetFunction through an alias answers). With an explicit qualifier the
    /// FunctionArn is qualified.
    pub(crate) fn load_qualified(
        &self,
        region: &str,
        name: &str,
        qualifier: Option<&str>,
    ) -> AwsResult<FunctionRecord> {
        let latest = self.load(region, name)?;
        let Some(q) = qualifier else {
            return Ok(latest);
        };
        let mut rec = if q == "$LATEST" {
            latest
        } else if is_version_number(q) {
            self.load_version(region, name, q)?
        } else {
            let alias = self
                .load_alias(region, name, q)
                .map_err(|_| self.not_found(region, name, Some(q)))?;
            if alias.function_version == "$LATEST" {
                latest
            } else {
                self.load_version(region, name, &alias.function_version)?
            }
        };
        rec.config.function_arn = self.qualified_arn(region, name, q);
        Ok(rec)
    }

    /// What an Invoke of `function_name` (with `qualifier`) runs: `$LATEST`,
    /// a version, or through an alias the version its routing picks (the
    /// additional version with the probability of its weight).
    pub(crate) fn invoke_target(
        &self,
        region: &str,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> AwsResult<(FunctionRecord, InvokeTarget)> {
        let r = FunctionRef::parse(function_name, "functionName")?;
        self.check_ref(region, &r)?;
        let q = match (r.qualifier.as_deref(), qualifier) {
            (Some(a), Some(b)) if a != b => {
                return Err(AwsError::invalid_parameter(
                    "The derived qualifier from the function name does not match the specified qualifier.",
                ));
            }
            (Some(a), _) => Some(a.to_string()),
            (None, b) => b.map(str::to_string),
        };
        let latest = self.load(region, &r.name)?;
        let reserved = latest.reserved_concurrency;
        let invoked_arn = match &q {
            None => latest.config.function_arn.clone(),
            Some(q) => self.qualified_arn(region, &r.name, q),
        };
        let rec = match q.as_deref() {
            None | Some("$LATEST") => latest,
            Some(v) if is_version_number(v) => self.load_version(region, &r.name, v)?,
            Some(a) => {
                let alias = self
                    .load_alias(region, &r.name, a)
                    .map_err(|_| self.not_found(region, &r.name, Some(a)))?;
                match alias.route(crate::aliases::uniform()) {
                    "$LATEST" => latest,
                    v => self.load_version(region, &r.name, v)?,
                }
            }
        };
        Ok((
            rec,
            InvokeTarget {
                invoked_arn,
                reserved,
                provisioned: None,
                request_id: None,
            },
        ))
    }

    /// Reloads the record `rec` was loaded from (`$LATEST` or its version),
    /// for waiting on a state change.
    pub(crate) fn reload(&self, region: &str, rec: &FunctionRecord) -> AwsResult<FunctionRecord> {
        let name = &rec.config.function_name;
        if rec.config.version == "$LATEST" {
            self.load(region, name)
        } else {
            self.load_version(region, name, &rec.config.version)
        }
    }

    /// True if a published version of the function uses the package `hex`
    /// (for `Code.Location` downloads of versions).
    pub(crate) fn version_has_code(&self, region: &str, name: &str, hex: &str) -> bool {
        self.version_records(region, name)
            .map(|v| v.iter().any(|r| r.code_hex == hex))
            .unwrap_or(false)
    }

    /// Publishes `$LATEST` (`latest`, mutated: its `next_version`) as a new
    /// version, or returns the last version when nothing changed since it
    /// was published. The caller holds the write lock and saves `latest`
    /// when the second value is true.
    pub(crate) fn publish_locked(
        self: &Arc<Self>,
        region: &str,
        latest: &mut FunctionRecord,
        description: Option<String>,
    ) -> AwsResult<(FunctionRecord, bool)> {
        let name = latest.config.function_name.clone();
        let fp = fingerprint(latest);
        if let Some(last) = self.version_records(region, &name)?.pop()
            && last.fingerprint.as_deref() == Some(fp.as_str())
        {
            return Ok((last, false));
        }
        let n = latest.next_version.max(1);
        latest.next_version = n + 1;
        let mut v = latest.clone();
        v.tags.clear();
        v.reserved_concurrency = None;
        v.next_version = 0;
        v.fingerprint = Some(fp);
        v.provisioned_init = false;
        let c = &mut v.config;
        c.version = n.to_string();
        c.function_arn = self.qualified_arn(region, &name, &c.version);
        c.revision_id = uuid::Uuid::new_v4().to_string();
        if let Some(d) = description {
            c.description = d;
        }
        // A version has a State but never a LastUpdateStatus; it becomes
        // Active once its code is ready (at once when $LATEST is Active).
        c.last_update_status = None;
        c.last_update_status_reason = None;
        c.last_update_status_reason_code = None;
        c.state = "Pending".into();
        c.state_reason = Some("The function is being created.".into());
        c.state_reason_code = Some("Creating".into());
        let body = serde_json::to_string(&v).map_err(|e| AwsError::service(e.to_string()))?;
        if !self
            .store
            .insert_new(KIND_VERSION, region, &pool_key(&v), &body)?
        {
            return Err(AwsError::conflict(format!(
                "Version {n} of {name} already exists."
            )));
        }
        self.qualified.put_version(region, &v);
        self.clone()
            .finish_version(region.to_string(), name, v.config.version.clone());
        Ok((v, true))
    }

    /// Moves a new version from Pending to Active once its package is
    /// unpacked (by `$LATEST`'s own update), or to Failed when that failed.
    fn finish_version(self: Arc<Self>, region: String, name: String, version: String) {
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            loop {
                let notified = self.state_change.notified();
                let Ok(v) = self.load_version(&region, &name, &version) else {
                    return;
                };
                if v.config.state != "Pending" {
                    return;
                }
                let ready = self.code_dir(&v.code_hex).is_dir();
                let failed = if ready {
                    None
                } else {
                    match self.load(&region, &name) {
                        Ok(l)
                            if l.code_hex == v.code_hex
                                && l.config.last_update_status.as_deref() == Some("Failed") =>
                        {
                            Some(l.config.last_update_status_reason.unwrap_or_default())
                        }
                        Ok(l) if l.code_hex == v.code_hex && l.config.state == "Failed" => {
                            Some(l.config.state_reason.unwrap_or_default())
                        }
                        Err(_) => return,
                        _ => None,
                    }
                };
                if ready || failed.is_some() || tokio::time::Instant::now() > deadline {
                    let _g = self.write_lock.lock().await;
                    let Ok(mut v) = self.load_version(&region, &name, &version) else {
                        return;
                    };
                    if ready {
                        v.config.state = "Active".into();
                        v.config.state_reason = None;
                        v.config.state_reason_code = None;
                    } else {
                        v.config.state = "Failed".into();
                        v.config.state_reason = Some(failed.unwrap_or_else(|| {
                            "The code of the version could not be prepared.".into()
                        }));
                        v.config.state_reason_code = Some("InvalidZipFileException".into());
                    }
                    let _ = self.save_version(&region, &v);
                    drop(_g);
                    self.state_change.notify_waiters();
                    return;
                }
                let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
            }
        });
    }

    /// Versions left Pending by a previous run finish now.
    pub(crate) fn recover_versions(self: &Arc<Self>) {
        let Ok(all) = self.store.list_all(KIND_VERSION) else {
            return;
        };
        for (region, _id, body) in all {
            if let Ok(v) = serde_json::from_str::<FunctionRecord>(&body)
                && v.config.state == "Pending"
            {
                self.clone()
                    .finish_version(region, v.config.function_name, v.config.version);
            }
        }
    }

    /// PublishVersion (`POST /2015-03-31/functions/{FunctionName}/versions`, 201).
    ///
    /// Errors: `PreconditionFailedException` (412) when `RevisionId` is not
    /// `$LATEST`'s, `InvalidParameterValueException` when `CodeSha256` is
    /// not `$LATEST`'s, `ResourceConflictException` (409) while an update is
    /// in progress, `ResourceNotFoundException` (404).
    pub async fn publish_version(
        self: &Arc<Self>,
        region: &str,
        function_name: &str,
        body: &[u8],
    ) -> AwsResult<Value> {
        let input: PublishInput = parse_body(body)?;
        let fref = FunctionRef::parse(function_name, "functionName")?;
        self.check_ref(region, &fref)?;
        if let Some(d) = &input.description
            && d.chars().count() > 256
        {
            return Err(AwsError::validation_errors(&[format!(
                "Value '{d}' at 'description' failed to satisfy constraint: Member must have length less than or equal to 256"
            )]));
        }
        let _g = self.write_lock.lock().await;
        let mut latest = self.load(region, &fref.name)?;
        Self::check_revision(&latest, input.revision_id.as_deref())?;
        if let Some(sha) = &input.code_sha256
            && sha != &latest.config.code_sha256
        {
            return Err(AwsError::invalid_parameter(format!(
                "CodeSHA256 ({sha}) is different from current CodeSHA256 in $LATEST ({}). Please try again with the CodeSHA256 in $LATEST.",
                latest.config.code_sha256
            )));
        }
        Self::check_not_in_progress(&latest)?;
        let (v, created) = self.publish_locked(region, &mut latest, input.description)?;
        if created {
            // Publishing changes $LATEST's RevisionId.
            latest.config.revision_id = uuid::Uuid::new_v4().to_string();
            self.save(region, &latest)?;
        }
        json_value(&v.config)
    }

    /// ListVersionsByFunction (`GET .../versions`): `$LATEST` then each
    /// version in order, with qualified ARNs; `MaxItems` 1-10000 (default
    /// 50) and `Marker` paging.
    pub fn list_versions_by_function(
        &self,
        region: &str,
        function_name: &str,
        marker: Option<&str>,
        max_items: Option<&str>,
    ) -> AwsResult<Value> {
        let fref = FunctionRef::parse(function_name, "functionName")?;
        self.check_ref(region, &fref)?;
        let max = parse_max_items(max_items, 50, 10_000)?;
        let mut latest = self.load(region, &fref.name)?;
        latest.config.function_arn = self.qualified_arn(region, &fref.name, "$LATEST");
        let mut items = vec![("$LATEST".to_string(), json_value(&latest.config)?)];
        for v in self.version_records(region, &fref.name)? {
            items.push((v.config.version.clone(), json_value(&v.config)?));
        }
        let (out, next) = page(items, marker, max)?;
        let mut resp = json!({"Versions": out});
        if let Some(n) = next {
            resp["NextMarker"] = json!(n);
        }
        Ok(resp)
    }

    /// DeleteFunction with a version qualifier: removes that version, its
    /// provisioned concurrency and its environments. Called with the write
    /// lock held.
    ///
    /// Errors: `InvalidParameterValueException` for `$LATEST` or an alias
    /// name, `ResourceNotFoundException`, `ResourceConflictException` (409)
    /// when aliases point at the version.
    pub(crate) fn delete_version_locked(
        self: &Arc<Self>,
        region: &str,
        name: &str,
        q: &str,
    ) -> AwsResult<()> {
        if q == "$LATEST" {
            return Err(AwsError::invalid_parameter(
                "$LATEST version cannot be deleted without deleting the function.",
            ));
        }
        if !is_version_number(q) {
            return Err(AwsError::invalid_parameter(format!(
                "DeleteFunction deletes a function or one of its versions; '{q}' is not a version number. Delete an alias with DeleteAlias."
            )));
        }
        self.load(region, name)?;
        self.load_version(region, name, q)?;
        let users: Vec<String> = self
            .alias_records(region, name)?
            .into_iter()
            .filter(|a| a.function_version == q || a.weights().any(|(v, _)| v == q))
            .map(|a| a.name)
            .collect();
        if !users.is_empty() {
            return Err(AwsError::conflict(format!(
                "Unable to delete version because the following aliases reference it: [{}]",
                users.join(", ")
            )));
        }
        let id = qualified_id(name, q);
        self.store
            .delete(crate::provisioned::KIND_PROVISIONED, region, &id)?;
        self.store.delete(KIND_VERSION, region, &id)?;
        self.qualified.remove_version(region, &id);
        self.pool.retire_function(region, &id);
        self.refresh_unreserved(region);
        self.reconcile_provisioned(region, name);
        Ok(())
    }

    /// DeleteFunction without a qualifier also removes every version,
    /// alias and provisioned concurrency configuration of the function, and
    /// their environments. Called with the write lock held.
    pub(crate) fn delete_all_qualified_locked(self: &Arc<Self>, region: &str, name: &str) {
        let prefix = format!("{name}:");
        for kind in [
            KIND_VERSION,
            crate::aliases::KIND_ALIAS,
            crate::provisioned::KIND_PROVISIONED,
        ] {
            let ids: Vec<String> = self
                .store
                .list(kind, region)
                .unwrap_or_default()
                .into_iter()
                .map(|(id, _)| id)
                .filter(|id| id.starts_with(&prefix))
                .collect();
            for id in ids {
                let _ = self.store.delete(kind, region, &id);
                self.qualified.remove_version(region, &id);
                self.qualified
                    .aliases
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&(region.to_string(), id.clone()));
                if kind == KIND_VERSION {
                    self.pool.retire_function(region, &id);
                }
            }
        }
        self.refresh_unreserved(region);
        self.reconcile_provisioned(region, name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_numbers() {
        assert!(is_version_number("1"));
        assert!(is_version_number("42"));
        assert!(!is_version_number(""));
        assert!(!is_version_number("$LATEST"));
        assert!(!is_version_number("prod"));
        assert!(!is_version_number("1a"));
    }

    #[test]
    fn paging() {
        let items: Vec<(String, u32)> = (1..=5).map(|i| (i.to_string(), i)).collect();
        let (p1, next) = page(items.clone(), None, 2).unwrap();
        assert_eq!(p1, vec![1, 2]);
        let (p2, next) = page(items.clone(), next.as_deref(), 2).unwrap();
        assert_eq!(p2, vec![3, 4]);
        let (p3, next) = page(items.clone(), next.as_deref(), 2).unwrap();
        assert_eq!(p3, vec![5]);
        assert!(next.is_none());
        let (all, next) = page(items.clone(), None, 5).unwrap();
        assert_eq!(all.len(), 5);
        assert!(next.is_none());
        assert!(page(items, Some("%%%"), 2).is_err());
    }

    #[test]
    fn max_items() {
        assert_eq!(parse_max_items(None, 50, 10_000).unwrap(), 50);
        assert_eq!(parse_max_items(Some("7"), 50, 10_000).unwrap(), 7);
        assert_eq!(
            parse_max_items(Some("0"), 50, 10_000).unwrap_err().code,
            "ValidationException"
        );
        assert_eq!(
            parse_max_items(Some("51"), 50, 50).unwrap_err().code,
            "ValidationException"
        );
    }
}
