//! The Lambda control plane: CreateFunction, GetFunction, ListFunctions,
//! UpdateFunctionCode/Configuration, DeleteFunction, tags, account settings.
//!
//! Operation semantics follow the Lambda API reference
//! (<https://docs.aws.amazon.com/lambda/latest/api/>); shapes follow botocore's
//! `lambda/2015-03-31/service-2.json`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use stratus_core::{AwsError, AwsResult, Config, FunctionRef, arn};
use stratus_sandbox::package;
use stratus_sandbox::runtime::{self, DEPRECATED_RUNTIMES, Family};
use stratus_store::Store;
use tokio::sync::Notify;

use crate::invoke::Pool;
use crate::model::*;

/// Store kind under which functions are kept.
pub const KIND_FUNCTION: &str = "function";

/// The Lambda service: control plane plus the invoke path ([`crate::invoke`]).
pub struct Lambda {
    pub(crate) config: Config,
    pub(crate) store: Store,
    pub(crate) pool: Pool,
    /// Wakes invokes waiting for a Pending function to become Active.
    pub(crate) state_change: Notify,
    /// Serialises control-plane writes so read-modify-write is atomic.
    pub(crate) write_lock: tokio::sync::Mutex<()>,
    /// Concurrency counters: reserved, unreserved pool, scaling rate.
    pub(crate) sched: Arc<crate::concurrency::Scheduler>,
    /// Provisioned concurrency environments.
    pub(crate) provisioned: crate::provisioned::Provisioned,
    /// Invocation and concurrency metrics, flushed to the store each few seconds.
    pub(crate) metrics: crate::metrics::Metrics,
    /// Cached version and alias records.
    pub(crate) qualified: crate::versions::QualifiedCache,
    /// `LAMBDA_RUNTIME_DIR`: where the embedded bootstraps are written.
    pub(crate) runtime_dir: PathBuf,
    /// Isolation mode, cgroups and root view of execution environments.
    pub(crate) sandbox: Arc<stratus_sandbox::isolation::Sandbox>,
    /// Asynchronous invocation: which queued event is due when.
    pub(crate) async_queue: crate::async_invoke::AsyncQueue,
    /// Function records by (region, name), kept in step with the store (this
    /// process is the store's only writer) so invokes skip SQLite and JSON.
    cache: std::sync::RwLock<std::collections::HashMap<(String, String), Arc<FunctionRecord>>>,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Maximum `MaxItems` for ListFunctions.
const MAX_LIST_ITEMS: i64 = 10_000;

impl Lambda {
    /// Opens the service on a store: writes the embedded runtime bootstraps
    /// under `<data>/runtime` and finishes any state transitions a previous
    /// run left half-way (Pending functions are unpacked again).
    ///
    /// Errors: the data directory is not writable.
    pub fn new(config: Config, store: Store) -> std::io::Result<Arc<Lambda>> {
        let sandbox = Arc::new(stratus_sandbox::isolation::Sandbox::plain());
        Self::with_sandbox(config, store, sandbox)
    }

    /// [`Lambda::new`] with the server's isolation setup (`stratus server`
    /// builds it with [`stratus_sandbox::isolation::Sandbox::setup`]; `new`
    /// uses plain processes without cgroups).
    pub fn with_sandbox(
        config: Config,
        store: Store,
        sandbox: Arc<stratus_sandbox::isolation::Sandbox>,
    ) -> std::io::Result<Arc<Lambda>> {
        let runtime_dir = runtime::install_bootstraps(&config.data_dir.join("runtime"))?;
        std::fs::create_dir_all(config.data_dir.join("code"))?;
        let lambda = Arc::new(Lambda {
            pool: Pool::new(),
            sched: crate::concurrency::Scheduler::new(
                config.account_concurrency,
                config.scaling_rate,
            ),
            provisioned: crate::provisioned::Provisioned::new(),
            metrics: crate::metrics::Metrics::new(),
            qualified: Default::default(),
            config,
            store,
            state_change: Notify::new(),
            write_lock: tokio::sync::Mutex::new(()),
            runtime_dir,
            sandbox,
            cache: Default::default(),
            async_queue: Default::default(),
        });
        lambda.open_async_queue().map_err(std::io::Error::other)?;
        Ok(lambda)
    }

    /// The server configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Completes Pending / InProgress transitions left by a previous run,
    /// computes each region's unreserved concurrency and provisions the
    /// stored provisioned concurrency configurations again.
    pub async fn recover(self: &Arc<Self>) {
        self.refresh_all_unreserved();
        self.recover_versions();
        self.recover_provisioned();
        let Ok(all) = self.store.list_all(KIND_FUNCTION) else {
            return;
        };
        for (region, name, body) in all {
            if let Ok(rec) = serde_json::from_str::<FunctionRecord>(&body)
                && (rec.config.state == "Pending"
                    || rec.config.last_update_status.as_deref() == Some("InProgress"))
            {
                self.settle(&region, &name, &rec.config.revision_id).await;
            }
        }
        let removed = self.collect_unused_code();
        if removed > 0 {
            tracing::info!("removed {removed} unused code packages");
        }
    }

    /// Removes code packages (zip and unpacked tree under `<data>/code/`)
    /// that no function, version or layer version refers to any more, and
    /// leftovers of interrupted uploads. Runs at start-up, before any
    /// environment could be using an old tree. Returns how many entries
    /// were removed.
    pub fn collect_unused_code(&self) -> usize {
        fn refs(v: &Value, out: &mut std::collections::HashSet<String>) {
            match v {
                Value::Object(m) => {
                    for (k, x) in m {
                        match (k.as_str(), x.as_str()) {
                            ("code_hex", Some(h)) => {
                                out.insert(h.to_string());
                            }
                            _ => refs(x, out),
                        }
                    }
                }
                Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
                _ => {}
            }
        }
        let mut used = std::collections::HashSet::new();
        for kind in [
            KIND_FUNCTION,
            crate::versions::KIND_VERSION,
            crate::layers::KIND_LAYER,
        ] {
            let Ok(all) = self.store.list_all(kind) else {
                // Without a complete picture nothing may be removed.
                return 0;
            };
            for (_, _, body) in all {
                if let Ok(v) = serde_json::from_str::<Value>(&body) {
                    refs(&v, &mut used);
                }
            }
        }
        let Ok(entries) = std::fs::read_dir(self.config.data_dir.join("code")) else {
            return 0;
        };
        let mut removed = 0;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let hex = name.split('.').next().unwrap_or("");
            if used.contains(hex) && !name.contains(".tmp-") {
                continue;
            }
            let path = e.path();
            let res = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            if res.is_ok() {
                removed += 1;
            }
        }
        removed
    }

    pub(crate) fn code_zip_path(&self, hex: &str) -> PathBuf {
        self.config.data_dir.join("code").join(format!("{hex}.zip"))
    }

    pub(crate) fn code_dir(&self, hex: &str) -> PathBuf {
        self.config.data_dir.join("code").join(hex)
    }

    /// Loads a function record. Errors: `ResourceNotFoundException` naming the ARN.
    pub fn load(&self, region: &str, name: &str) -> AwsResult<FunctionRecord> {
        let key = (region.to_string(), name.to_string());
        if let Some(r) = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok((**r).clone());
        }
        match self.store.get(KIND_FUNCTION, region, name)? {
            Some(body) => {
                let rec: FunctionRecord = serde_json::from_str(&body).map_err(|e| {
                    AwsError::service(format!("stored function {name} is unreadable: {e}"))
                })?;
                self.cache
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, Arc::new(rec.clone()));
                Ok(rec)
            }
            None => Err(self.not_found(region, name, None)),
        }
    }

    fn cache_put(&self, region: &str, rec: &FunctionRecord) {
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                (region.to_string(), rec.config.function_name.clone()),
                Arc::new(rec.clone()),
            );
    }

    fn cache_remove(&self, region: &str, name: &str) {
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(region.to_string(), name.to_string()));
    }

    pub(crate) fn not_found(&self, region: &str, name: &str, qualifier: Option<&str>) -> AwsError {
        let mut a = arn::function_arn(region, &self.config.account_id, name);
        if let Some(q) = qualifier {
            a = format!("{a}:{q}");
        }
        AwsError::not_found(format!("Function not found: {a}"))
    }

    /// Resolves a `FunctionName` parameter and `Qualifier` to the record of
    /// `$LATEST`, a version, or the version an alias points to, and the
    /// qualifier asked for (`$LATEST` when none).
    pub fn resolve(
        &self,
        region: &str,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> AwsResult<(FunctionRecord, String)> {
        let r = FunctionRef::parse(function_name, "functionName")?;
        self.check_ref(region, &r)?;
        let q = match (r.qualifier.as_deref(), qualifier) {
            (Some(a), Some(b)) if a != b => {
                return Err(AwsError::invalid_parameter(
                    "The derived qualifier from the function name does not match the specified qualifier.",
                ));
            }
            (Some(a), _) => a.to_string(),
            (None, Some(b)) => b.to_string(),
            (None, None) => "$LATEST".to_string(),
        };
        let explicit = r.qualifier.is_some() || qualifier.is_some();
        let rec = self.load_qualified(region, &r.name, explicit.then_some(q.as_str()))?;
        Ok((rec, q))
    }

    pub(crate) fn check_ref(&self, region: &str, r: &FunctionRef) -> AwsResult<()> {
        if let Some(acct) = &r.account
            && acct != &self.config.account_id
        {
            return Err(AwsError::new(
                403,
                "AccessDeniedException",
                format!(
                    "The function belongs to account {acct}, not to this stratus account ({}).",
                    self.config.account_id
                ),
            ));
        }
        if let Some(reg) = &r.region
            && reg != region
        {
            return Err(AwsError::invalid_parameter(format!(
                "The function ARN names region {reg}, but the request was made to region {region}."
            )));
        }
        Ok(())
    }

    fn check_runtime(&self, runtime_id: &str) -> AwsResult<runtime::ResolvedRuntime> {
        if DEPRECATED_RUNTIMES.contains(&runtime_id) {
            return Err(AwsError::invalid_parameter(format!(
                "The runtime parameter of {runtime_id} is no longer supported for creating or updating AWS Lambda functions. We recommend you use a supported runtime while creating or updating functions."
            )));
        }
        let r = runtime::resolve(
            runtime_id,
            &self.config.runtime_overrides,
            self.config.strict_runtimes,
        )
        .map_err(AwsError::invalid_parameter)?;
        if let Some(w) = &r.warning {
            tracing::warn!("{w}");
        }
        Ok(r)
    }

    /// Decodes and checks a base64 zip, stores it under `<data>/code/<hex>.zip`.
    /// Returns (hex sha, base64 sha, size, unzipped size).
    /// Decodes a base64 zip, checks it and unpacks it (once per code
    /// revision, under `<data>/code/<hex>/`, which also verifies every entry's
    /// CRC), then stores the zip under `<data>/code/<hex>.zip`. A package that
    /// fails any check leaves nothing behind.
    /// Returns (hex sha, base64 sha, size, unzipped size).
    pub(crate) async fn accept_zip(&self, zip_b64: &str) -> AwsResult<(String, String, u64, u64)> {
        let zip = b64().decode(zip_b64.as_bytes()).map_err(|_| {
            AwsError::invalid_request_content(
                "Could not decode ZipFile: it must be a base64-encoded .zip archive.",
            )
        })?;
        if zip.len() > package::MAX_ZIPPED_UPLOAD_BYTES {
            return Err(AwsError::new(
                413,
                "RequestEntityTooLargeException",
                format!(
                    "Zipped file size ({} bytes) exceeds the maximum of {} bytes for direct upload.",
                    zip.len(),
                    package::MAX_ZIPPED_UPLOAD_BYTES
                ),
            ));
        }
        let digest = Sha256::digest(&zip);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let sha_b64 = b64().encode(digest);
        let path = self.code_zip_path(&hex);
        let dir = self.code_dir(&hex);
        let size = zip.len() as u64;
        let unzipped = tokio::task::spawn_blocking(move || -> AwsResult<u64> {
            let info = package::inspect_zip(&zip, package::MAX_UNZIPPED_BYTES)
                .map_err(|e| AwsError::invalid_parameter(e.aws_message()))?;
            if info.file_count == 0 && info.symlink_count == 0 {
                return Err(AwsError::invalid_parameter(
                    "Could not unzip uploaded file. Please check your file, then try to upload again. (The archive holds no files.)",
                ));
            }
            if !dir.exists() {
                match package::unpack_zip(&zip, &dir, package::MAX_UNZIPPED_BYTES) {
                    Ok(_) => {}
                    // Another request unpacked the same package meanwhile.
                    Err(_) if dir.exists() => {}
                    Err(e) if e.is_client_error() => return Err(AwsError::invalid_parameter(e.aws_message())),
                    Err(e) => return Err(AwsError::service(format!("could not unpack the package: {e}"))),
                }
            }
            if !path.exists() {
                let tmp = path.with_extension(format!("tmp-{}", stratus_core::hex32()));
                std::fs::write(&tmp, &zip).and_then(|_| std::fs::rename(&tmp, &path)).map_err(|e| {
                    let _ = std::fs::remove_file(&tmp);
                    AwsError::service(format!("could not store the package: {e}"))
                })?;
            }
            Ok(info.total_unzipped_bytes)
        })
        .await
        .map_err(|e| AwsError::service(format!("package check failed: {e}")))??;
        Ok((hex, sha_b64, size, unzipped))
    }

    pub(crate) fn save(&self, region: &str, rec: &FunctionRecord) -> AwsResult<()> {
        let body = serde_json::to_string(rec).map_err(|e| AwsError::service(e.to_string()))?;
        self.store
            .put(KIND_FUNCTION, region, &rec.config.function_name, &body)?;
        self.cache_put(region, rec);
        Ok(())
    }

    /// CreateFunction (`POST /2015-03-31/functions`, 201).
    ///
    /// Errors: `ValidationException` / `InvalidParameterValueException` (400)
    /// for bad settings, runtimes or packages, `ResourceConflictException`
    /// (409) when the name is taken, `RequestEntityTooLargeException` (413).
    pub async fn create_function(self: &Arc<Self>, region: &str, body: &[u8]) -> AwsResult<Value> {
        let input: CreateFunctionInput = parse_body(body)?;
        let name_raw = input
            .function_name
            .clone()
            .ok_or_else(|| missing("FunctionName"))?;
        let fref = FunctionRef::parse(&name_raw, "functionName")?;
        self.check_ref(region, &fref)?;
        if fref.qualifier.is_some() {
            return Err(AwsError::invalid_parameter(
                "FunctionName must not carry a qualifier in CreateFunction.",
            ));
        }
        let role = input.config.role.clone().ok_or_else(|| missing("Role"))?;
        let code = input.code.clone().ok_or_else(|| missing("Code"))?;
        validate_config(&input.config)?;
        let architectures = input
            .architectures
            .clone()
            .unwrap_or_else(|| vec!["x86_64".into()]);
        validate_architectures(&architectures)?;
        if let Some(t) = &input.tags {
            validate_tags(t)?;
        }
        if input.package_type.as_deref().is_some_and(|p| p != "Zip") || code.image_uri.is_some() {
            return Err(AwsError::invalid_parameter(
                "stratus runs .zip deployment packages; container images (PackageType Image) are not supported yet.",
            ));
        }
        let runtime_id = input.config.runtime.clone().ok_or_else(|| {
            AwsError::invalid_parameter("Runtime and Handler are mandatory parameters for functions created with deployment packages.")
        })?;
        let resolved = self.check_runtime(&runtime_id)?;
        if resolved.family != Family::Provided && input.config.handler.is_none() {
            return Err(AwsError::invalid_parameter(
                "Runtime and Handler are mandatory parameters for functions created with deployment packages.",
            ));
        }
        let zip_b64 = match (&code.zip_file, &code.s3_bucket) {
            (Some(z), _) => z.clone(),
            (None, Some(_)) => {
                return Err(AwsError::invalid_parameter(
                    "stratus cannot read code from S3 yet; upload the package with ZipFile (--zip-file fileb://function.zip).",
                ));
            }
            (None, None) => {
                return Err(AwsError::invalid_parameter(
                    "Please provide a source for function code.",
                ));
            }
        };
        let layer_code = match &input.config.layers {
            Some(arns) => self.resolve_layers(region, arns, &[])?,
            None => Vec::new(),
        };
        let dead_letter_config =
            crate::async_invoke::dead_letter_config(input.config.dead_letter_config.as_ref())?;
        let (hex, sha_b64, size, unzipped) = self.accept_zip(&zip_b64).await?;
        crate::layers::check_total_size(unzipped, &layer_code)?;
        self.warn_incompatible_layers(
            region,
            &layer_code,
            Some(&runtime_id),
            architectures.first().map(String::as_str),
        );
        let name = fref.name.clone();
        let now = stratus_core::time::now_ms();
        let c = &input.config;
        let config = FunctionConfiguration {
            function_arn: arn::function_arn(region, &self.config.account_id, &name),
            function_name: name.clone(),
            runtime: Some(runtime_id),
            role,
            handler: c.handler.clone(),
            code_size: size,
            description: c.description.clone().unwrap_or_default(),
            timeout: c.timeout.unwrap_or(3) as u32,
            memory_size: c.memory_size.unwrap_or(128) as u32,
            last_modified: stratus_core::time::lambda_timestamp(now),
            code_sha256: sha_b64,
            version: "$LATEST".into(),
            environment: c.environment.as_ref().map(|e| EnvironmentResponse {
                variables: e.variables.clone().unwrap_or_default(),
            }),
            tracing_config: TracingConfig {
                mode: c
                    .tracing_config
                    .as_ref()
                    .and_then(|t| t.mode.clone())
                    .unwrap_or_else(|| "PassThrough".into()),
            },
            revision_id: uuid::Uuid::new_v4().to_string(),
            state: "Pending".into(),
            state_reason: Some("The function is being created.".into()),
            state_reason_code: Some("Creating".into()),
            last_update_status: None,
            last_update_status_reason: None,
            last_update_status_reason_code: None,
            package_type: "Zip".into(),
            architectures,
            ephemeral_storage: EphemeralStorage {
                size: c
                    .ephemeral_storage
                    .as_ref()
                    .map(|e| e.size as u32)
                    .unwrap_or(512),
            },
            snap_start: SnapStartResponse {
                apply_on: "None".into(),
                optimization_status: "Off".into(),
            },
            logging_config: logging_config(c.logging_config.as_ref(), &name, None),
            layers: crate::layers::config_layers(&layer_code),
            dead_letter_config,
        };
        let mut rec = FunctionRecord {
            config,
            tags: input.tags.clone().unwrap_or_default(),
            code_hex: hex,
            unzipped_size: unzipped,
            reserved_concurrency: None,
            next_version: 1,
            fingerprint: None,
            provisioned_init: false,
            layer_code,
        };
        let body = serde_json::to_string(&rec).map_err(|e| AwsError::service(e.to_string()))?;
        let mut published = None;
        {
            let _g = self.write_lock.lock().await;
            if !self.store.insert_new(KIND_FUNCTION, region, &name, &body)? {
                return Err(AwsError::conflict(format!(
                    "Function already exist: {name}"
                )));
            }
            if input.publish == Some(true) {
                let (v, _) = self.publish_locked(region, &mut rec, None)?;
                self.save(region, &rec)?;
                published = Some(v);
            }
        }
        let answer = match published {
            // With Publish, the answer is version 1's configuration under
            // the function's unqualified ARN.
            Some(mut v) => {
                v.config.function_arn = rec.config.function_arn.clone();
                to_value(&v.config)
            }
            None => to_value(&rec.config),
        };
        self.settle(region, &name, &rec.config.revision_id).await;
        answer
    }

    /// Unpacks the code of a function if that has not happened yet (uploads
    /// are unpacked while they are checked; a restart may leave one to do),
    /// then moves State Pending -> Active and LastUpdateStatus InProgress ->
    /// Successful (or Failed with AWS's reason code). Callers answer with the
    /// Pending / InProgress configuration, as AWS does, and settle right
    /// after, so the function is Active before the client's next call.
    pub(crate) async fn settle(&self, region: &str, name: &str, revision: &str) {
        let (region, name) = (region.to_string(), name.to_string());
        let rec = match self.load(&region, &name) {
            Ok(r) if r.config.revision_id == revision => r,
            _ => return,
        };
        let dir = self.code_dir(&rec.code_hex);
        let zip_path = self.code_zip_path(&rec.code_hex);
        let result = tokio::task::spawn_blocking(move || -> Result<(), String> {
            if dir.exists() {
                return Ok(());
            }
            let bytes = std::fs::read(&zip_path).map_err(|e| e.to_string())?;
            package::unpack_zip(&bytes, &dir, package::MAX_UNZIPPED_BYTES)
                .map(|_| ())
                .map_err(|e| e.aws_message())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        let _g = self.write_lock.lock().await;
        let Ok(mut rec) = self.load(&region, &name) else {
            return;
        };
        if rec.config.revision_id != revision {
            return;
        }
        match result {
            Ok(()) => {
                rec.config.state = "Active".into();
                rec.config.state_reason = None;
                rec.config.state_reason_code = None;
                rec.config.last_update_status = Some("Successful".into());
                rec.config.last_update_status_reason = None;
                rec.config.last_update_status_reason_code = None;
            }
            Err(msg) => {
                tracing::error!("unpacking {name}: {msg}");
                if rec.config.state == "Pending" {
                    rec.config.state = "Failed".into();
                    rec.config.state_reason = Some(msg.clone());
                    rec.config.state_reason_code = Some("InvalidZipFileException".into());
                }
                rec.config.last_update_status = Some("Failed".into());
                rec.config.last_update_status_reason = Some(msg);
                rec.config.last_update_status_reason_code = Some("InvalidZipFileException".into());
            }
        }
        let _ = self.save(&region, &rec);
        drop(_g);
        self.state_change.notify_waiters();
    }

    /// GetFunction (`GET /2015-03-31/functions/{FunctionName}`).
    pub fn get_function(
        &self,
        region: &str,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> AwsResult<Value> {
        let (rec, _q) = self.resolve(region, function_name, qualifier)?;
        let location = format!(
            "{}/_stratus/code/{}/{}/{}.zip",
            self.config.edge_url(),
            region,
            rec.config.function_name,
            rec.code_hex
        );
        let mut out = json!({
            "Configuration": to_value(&rec.config)?,
            "Code": {"RepositoryType": "S3", "Location": location},
        });
        // Tags and reserved concurrency belong to the function, whatever
        // version or alias was asked for.
        let function = self.load(region, &rec.config.function_name)?;
        if !function.tags.is_empty() {
            out["Tags"] = json!(function.tags);
        }
        if let Some(n) = function.reserved_concurrency {
            out["Concurrency"] = json!({"ReservedConcurrentExecutions": n});
        }
        Ok(out)
    }

    /// The package bytes of a function, for `Code.Location` downloads.
    pub fn code_bytes(&self, region: &str, name: &str, hex: &str) -> AwsResult<Vec<u8>> {
        let rec = self.load(region, name)?;
        if rec.code_hex != hex && !self.version_has_code(region, name, hex) {
            return Err(AwsError::not_found(
                "The code package is no longer current for this function.",
            ));
        }
        std::fs::read(self.code_zip_path(hex))
            .map_err(|e| AwsError::service(format!("reading package: {e}")))
    }

    /// GetFunctionConfiguration.
    pub fn get_function_configuration(
        &self,
        region: &str,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> AwsResult<Value> {
        let (rec, _q) = self.resolve(region, function_name, qualifier)?;
        to_value(&rec.config)
    }

    /// ListFunctions with `Marker` / `MaxItems` (1-10000, default 50) paging.
    /// The marker is the last name returned, base64-encoded.
    pub fn list_functions(
        &self,
        region: &str,
        marker: Option<&str>,
        max_items: Option<&str>,
    ) -> AwsResult<Value> {
        let max = match max_items {
            None => 50,
            Some(s) => {
                let n: i64 = s.parse().map_err(|_| {
                    AwsError::invalid_parameter(format!("MaxItems must be a number; got '{s}'."))
                })?;
                if !(1..=MAX_LIST_ITEMS).contains(&n) {
                    return Err(AwsError::validation_errors(&[format!(
                        "Value '{n}' at 'maxItems' failed to satisfy constraint: Member must have value {}",
                        if n < 1 {
                            "greater than or equal to 1"
                        } else {
                            "less than or equal to 10000"
                        }
                    )]));
                }
                // "ListFunctions returns a maximum of 50 items in each
                // response, even if you set the number higher."
                (n as usize).min(50)
            }
        };
        let after = match marker {
            None | Some("") => None,
            Some(m) => Some(
                b64()
                    .decode(m)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        AwsError::invalid_parameter(
                            "The Marker is not valid: pass the NextMarker of a previous response.",
                        )
                    })?,
            ),
        };
        let all = self.store.list(KIND_FUNCTION, region)?;
        let mut out = Vec::new();
        let mut next = None;
        for (name, body) in all {
            if after.as_ref().is_some_and(|a| name.as_str() <= a.as_str()) {
                continue;
            }
            if out.len() == max {
                next = out
                    .last()
                    .and_then(|v: &Value| v["FunctionName"].as_str())
                    .map(|s| b64().encode(s));
                break;
            }
            if let Ok(rec) = serde_json::from_str::<FunctionRecord>(&body) {
                out.push(list_item(&rec.config)?);
            }
        }
        let mut resp = json!({"Functions": out});
        if let Some(n) = next {
            resp["NextMarker"] = json!(n);
        }
        Ok(resp)
    }

    pub(crate) fn check_revision(rec: &FunctionRecord, revision: Option<&str>) -> AwsResult<()> {
        if let Some(r) = revision
            && r != rec.config.revision_id
        {
            return Err(AwsError::new(
                412,
                "PreconditionFailedException",
                "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
            ));
        }
        Ok(())
    }

    pub(crate) fn check_not_in_progress(rec: &FunctionRecord) -> AwsResult<()> {
        if rec.config.last_update_status.as_deref() == Some("InProgress")
            || rec.config.state == "Pending"
        {
            return Err(AwsError::conflict(format!(
                "The operation cannot be performed at this time. An update is in progress for resource: {}",
                rec.config.function_arn
            )));
        }
        Ok(())
    }

    /// UpdateFunctionCode (`PUT .../code`): new package, LastUpdateStatus
    /// InProgress then Successful; environments of the old code are retired.
    pub async fn update_function_code(
        self: &Arc<Self>,
        region: &str,
        function_name: &str,
        body: &[u8],
    ) -> AwsResult<Value> {
        let input: UpdateCodeInput = parse_body(body)?;
        let fref = FunctionRef::parse(function_name, "functionName")?;
        self.check_ref(region, &fref)?;
        if let Some(a) = &input.architectures {
            validate_architectures(a)?;
        }
        let zip_b64 = match (&input.zip_file, &input.s3_bucket, &input.image_uri) {
            (Some(z), _, _) => z.clone(),
            (None, Some(_), _) => {
                return Err(AwsError::invalid_parameter(
                    "stratus cannot read code from S3 yet; upload the package with ZipFile (--zip-file fileb://function.zip).",
                ));
            }
            (None, None, Some(_)) => {
                return Err(AwsError::invalid_parameter(
                    "Container images are not supported yet.",
                ));
            }
            _ => {
                return Err(AwsError::invalid_parameter(
                    "Please provide a source for function code.",
                ));
            }
        };
        // Validate before taking the lock so a bad package writes nothing.
        self.load(region, &fref.name)?;
        let (hex, sha_b64, size, unzipped) = self.accept_zip(&zip_b64).await?;
        let g = self.write_lock.lock().await;
        let mut rec = self.load(region, &fref.name)?;
        Self::check_revision(&rec, input.revision_id.as_deref())?;
        Self::check_not_in_progress(&rec)?;
        crate::layers::check_total_size(unzipped, &rec.layer_code)?;
        if input.dry_run == Some(true) {
            return to_value(&rec.config);
        }
        rec.code_hex = hex;
        rec.unzipped_size = unzipped;
        rec.config.code_sha256 = sha_b64;
        rec.config.code_size = size;
        if let Some(a) = input.architectures {
            rec.config.architectures = a;
        }
        self.mark_in_progress(&mut rec);
        self.save(region, &rec)?;
        // With Publish, the new code becomes a version too (it turns Active
        // once the package is unpacked) and the answer is that version's.
        let published = if input.publish == Some(true) {
            let (v, _) = self.publish_locked(region, &mut rec, None)?;
            self.save(region, &rec)?;
            Some(v)
        } else {
            None
        };
        drop(g);
        self.pool.retire_function(region, &rec.config.function_name);
        let answer = to_value(&published.as_ref().unwrap_or(&rec).config);
        self.settle(region, &rec.config.function_name, &rec.config.revision_id)
            .await;
        answer
    }

    fn mark_in_progress(&self, rec: &mut FunctionRecord) {
        rec.config.revision_id = uuid::Uuid::new_v4().to_string();
        rec.config.last_modified =
            stratus_core::time::lambda_timestamp(stratus_core::time::now_ms());
        rec.config.last_update_status = Some("InProgress".into());
        rec.config.last_update_status_reason = Some("The function is being created.".into());
        rec.config.last_update_status_reason_code = Some("Creating".into());
    }

    /// UpdateFunctionConfiguration (`PUT .../configuration`).
    pub async fn update_function_configuration(
        self: &Arc<Self>,
        region: &str,
        function_name: &str,
        body: &[u8],
    ) -> AwsResult<Value> {
        let input: ConfigInput = parse_body(body)?;
        let fref = FunctionRef::parse(function_name, "functionName")?;
        self.check_ref(region, &fref)?;
        validate_config(&input)?;
        if let Some(r) = &input.runtime {
            self.check_runtime(r)?;
        }
        let g = self.write_lock.lock().await;
        let mut rec = self.load(region, &fref.name)?;
        Self::check_revision(&rec, input.revision_id.as_deref())?;
        Self::check_not_in_progress(&rec)?;
        let runtime_changed = input.runtime.is_some();
        let c = &mut rec.config;
        if let Some(v) = input.runtime {
            c.runtime = Some(v);
        }
        if let Some(v) = input.role {
            c.role = v;
        }
        if let Some(v) = input.handler {
            c.handler = Some(v);
        }
        if let Some(v) = input.description {
            c.description = v;
        }
        if let Some(v) = input.timeout {
            c.timeout = v as u32;
        }
        if let Some(v) = input.memory_size {
            c.memory_size = v as u32;
        }
        if let Some(e) = input.environment {
            c.environment = Some(EnvironmentResponse {
                variables: e.variables.unwrap_or_default(),
            });
        }
        if let Some(e) = input.ephemeral_storage {
            c.ephemeral_storage.size = e.size as u32;
        }
        if let Some(d) = input.dead_letter_config.as_ref() {
            c.dead_letter_config = crate::async_invoke::dead_letter_config(Some(d))?;
        }
        if let Some(t) = input.tracing_config.and_then(|t| t.mode) {
            c.tracing_config.mode = t;
        }
        if let Some(l) = input.logging_config.as_ref() {
            c.logging_config = logging_config(Some(l), &c.function_name, Some(&c.logging_config));
        }
        if let Some(arns) = &input.layers {
            let layer_code = self.resolve_layers(region, arns, &rec.layer_code)?;
            crate::layers::check_total_size(rec.unzipped_size, &layer_code)?;
            rec.config.layers = crate::layers::config_layers(&layer_code);
            rec.layer_code = layer_code;
        }
        let c = &mut rec.config;
        if input.layers.is_some() || runtime_changed {
            self.warn_incompatible_layers(
                region,
                &rec.layer_code,
                c.runtime.as_deref(),
                c.architectures.first().map(String::as_str),
            );
        }
        let handler_needed =
            c.runtime.as_deref().and_then(runtime::family_of) != Some(Family::Provided);
        if handler_needed && c.handler.is_none() {
            return Err(AwsError::invalid_parameter(
                "Handler is a mandatory parameter for this runtime.",
            ));
        }
        self.mark_in_progress(&mut rec);
        self.save(region, &rec)?;
        drop(g);
        self.pool.retire_function(region, &rec.config.function_name);
        let answer = to_value(&rec.config);
        self.settle(region, &rec.config.function_name, &rec.config.revision_id)
            .await;
        answer
    }

    /// DeleteFunction (`DELETE /2015-03-31/functions/{FunctionName}`, 204):
    /// removes the function and shuts its environments down.
    pub async fn delete_function(
        self: &Arc<Self>,
        region: &str,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> AwsResult<()> {
        let fref = FunctionRef::parse(function_name, "functionName")?;
        self.check_ref(region, &fref)?;
        let q = qualifier.map(str::to_string).or(fref.qualifier.clone());
        let _g = self.write_lock.lock().await;
        let rec = self.load(region, &fref.name)?;
        if let Some(q) = q {
            // One version (never $LATEST, never one an alias points at).
            return self.delete_version_locked(region, &fref.name, &q);
        }
        self.store
            .delete(KIND_FUNCTION, region, &rec.config.function_name)?;
        self.cache_remove(region, &rec.config.function_name);
        self.pool.retire_function(region, &rec.config.function_name);
        // Its versions, aliases and provisioned concurrency go with it.
        self.delete_all_qualified_locked(region, &rec.config.function_name);
        self.sched.forget(region, &rec.config.function_name);
        self.delete_event_invoke_configs(region, &rec.config.function_name, None);
        Ok(())
    }

    fn tag_target(&self, region: &str, resource: &str) -> AwsResult<String> {
        let r = FunctionRef::parse(resource, "resource")?;
        if r.region.is_none() || r.account.is_none() {
            return Err(AwsError::validation_errors(&[format!(
                "Value '{resource}' at 'resource' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*):lambda:[a-z]{{2}}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{{1}}:\\d{{12}}:(function:[a-zA-Z0-9-_]+(:(\\$LATEST|[a-zA-Z0-9-_]+))?|layer:[a-zA-Z0-9-_]+|code-signing-config:csc-[a-z0-9]{{17}}|event-source-mapping:[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}})"
            )]));
        }
        self.check_ref(region, &r)?;
        if r.qualifier.is_some() {
            return Err(AwsError::invalid_parameter(
                "Tags are managed on the unqualified function ARN.",
            ));
        }
        Ok(r.name)
    }

    /// TagResource (`POST /2017-03-31/tags/{ARN}`, 204).
    pub async fn tag_resource(&self, region: &str, resource: &str, body: &[u8]) -> AwsResult<()> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            tags: Option<BTreeMap<String, String>>,
        }
        let name = self.tag_target(region, resource)?;
        let input: In = parse_body(body)?;
        let tags = input.tags.ok_or_else(|| missing("Tags"))?;
        let _g = self.write_lock.lock().await;
        let mut rec = self.load(region, &name)?;
        let mut merged = rec.tags.clone();
        merged.extend(tags);
        validate_tags(&merged)?;
        rec.tags = merged;
        self.save(region, &rec)
    }

    /// UntagResource (`DELETE /2017-03-31/tags/{ARN}?tagKeys=..`, 204).
    pub async fn untag_resource(
        &self,
        region: &str,
        resource: &str,
        keys: &[String],
    ) -> AwsResult<()> {
        let name = self.tag_target(region, resource)?;
        let _g = self.write_lock.lock().await;
        let mut rec = self.load(region, &name)?;
        for k in keys {
            rec.tags.remove(k);
        }
        self.save(region, &rec)
    }

    /// ListTags (`GET /2017-03-31/tags/{ARN}`).
    pub fn list_tags(&self, region: &str, resource: &str) -> AwsResult<Value> {
        let name = self.tag_target(region, resource)?;
        let rec = self.load(region, &name)?;
        Ok(json!({"Tags": rec.tags}))
    }

    /// GetAccountSettings (`GET /2016-08-19/account-settings`): AWS's default
    /// quotas and this region's usage.
    pub fn get_account_settings(&self, region: &str) -> AwsResult<Value> {
        let all = self.store.list(KIND_FUNCTION, region)?;
        let mut total = 0u64;
        for (_, body) in &all {
            if let Ok(rec) = serde_json::from_str::<FunctionRecord>(body) {
                total += rec.config.code_size;
            }
        }
        Ok(json!({
            "AccountLimit": {
                "TotalCodeSize": 80_530_636_800u64,
                "CodeSizeUnzipped": package::MAX_UNZIPPED_BYTES,
                "CodeSizeZipped": package::MAX_ZIPPED_UPLOAD_BYTES,
                "ConcurrentExecutions": self.sched.limit(),
                "UnreservedConcurrentExecutions": self.unreserved(region)?,
            },
            "AccountUsage": {"TotalCodeSize": total, "FunctionCount": all.len()},
        }))
    }
}

fn logging_config(
    input: Option<&LoggingInput>,
    name: &str,
    current: Option<&LoggingConfig>,
) -> LoggingConfig {
    let default_group = format!("/aws/lambda/{name}");
    LoggingConfig {
        log_format: input
            .and_then(|l| l.log_format.clone())
            .or_else(|| current.map(|c| c.log_format.clone()))
            .unwrap_or_else(|| "Text".into()),
        log_group: input
            .and_then(|l| l.log_group.clone())
            .or_else(|| current.map(|c| c.log_group.clone()))
            .unwrap_or(default_group),
    }
}

fn missing(field: &str) -> AwsError {
    AwsError::invalid_parameter(format!(
        "{field} is a required parameter and was not provided."
    ))
}

/// Parses a JSON request body. Errors: `InvalidRequestContentException` (400)
/// with serde's reason.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> AwsResult<T> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        AwsError::invalid_request_content(format!("Could not parse request body into json: {e}"))
    })
}

/// A function as ListFunctions / ListVersionsByFunction show it: the
/// configuration without the state fields ("To get the additional fields
/// (State, StateReasonCode, StateReason, LastUpdateStatus,
/// LastUpdateStatusReason, LastUpdateStatusReasonCode) for a function or
/// version, use GetFunction": ListFunctions API reference).
pub(crate) fn list_item(c: &FunctionConfiguration) -> AwsResult<Value> {
    let mut v = to_value(c)?;
    if let Some(m) = v.as_object_mut() {
        for k in [
            "State",
            "StateReason",
            "StateReasonCode",
            "LastUpdateStatus",
            "LastUpdateStatusReason",
            "LastUpdateStatusReasonCode",
        ] {
            m.remove(k);
        }
    }
    Ok(v)
}

fn to_value<T: serde::Serialize>(v: &T) -> AwsResult<Value> {
    serde_json::to_value(v).map_err(|e| AwsError::service(e.to_string()))
}

impl Lambda {
    /// Number of idle (warm) execution environments.
    pub fn idle_environments(&self) -> usize {
        self.pool.idle_count()
    }

    /// Execution environments whose resources (processes, cgroup) are not
    /// all released yet: busy, idle and shutting down.
    pub fn environments(&self) -> usize {
        stratus_sandbox::env::live_environments()
    }

    /// The isolation setup environments start with.
    pub fn sandbox(&self) -> &Arc<stratus_sandbox::isolation::Sandbox> {
        &self.sandbox
    }

    /// Shuts down idle on-demand environments past the idle timeout (never
    /// provisioned concurrency ones) and replaces lost provisioned ones.
    pub fn reap_idle(self: &Arc<Self>) {
        self.reclaim_memory();
        self.provisioned_tick();
        self.metrics_tick();
        self.pool.reap(
            std::time::Duration::from_secs(self.config.idle_timeout_secs),
            std::time::Duration::from_millis(self.config.shutdown_grace_ms),
        );
    }

    /// Shuts every environment down (SIGTERM, grace period, SIGKILL).
    pub async fn shutdown(&self) {
        self.provisioned
            .shutdown_all(std::time::Duration::from_millis(
                self.config.shutdown_grace_ms,
            ))
            .await;
        self.pool
            .shutdown_all(std::time::Duration::from_millis(
                self.config.shutdown_grace_ms,
            ))
            .await;
        self.flush_metrics();
    }
}
