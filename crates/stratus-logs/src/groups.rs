//! Log groups, log streams and tags: CreateLogGroup, DeleteLogGroup,
//! DescribeLogGroups, CreateLogStream, DeleteLogStream, DescribeLogStreams,
//! TagResource, UntagResource, ListTagsForResource and the older
//! TagLogGroup, UntagLogGroup, ListTagsLogGroup.

use serde_json::{Map, Value, json};
use stratus_core::{AwsError, AwsResult};
use stratus_store::rusqlite::{self, OptionalExtension, params};

use crate::input::{Input, check_group_name, check_stream_name, group_of_arn, serialization};
use crate::{Logs, group_not_found, invalid, store_err, stream_not_found};

/// Most tags on a log group.
pub const MAX_TAGS: usize = 50;
/// Most log groups or streams in one Describe page (and the default).
pub const DESCRIBE_LIMIT: usize = 50;

/// A stored log group.
pub(crate) struct GroupRow {
    pub name: String,
    pub creation_time: i64,
    pub retention_days: Option<i64>,
    pub tags: Map<String, Value>,
}

fn group_from_sql(r: &rusqlite::Row<'_>) -> rusqlite::Result<GroupRow> {
    let tags: String = r.get(3)?;
    Ok(GroupRow {
        name: r.get(0)?,
        creation_time: r.get(1)?,
        retention_days: r.get(2)?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
    })
}

fn already_exists(msg: &str) -> AwsError {
    AwsError::new(400, "ResourceAlreadyExistsException", msg)
}

/// Decodes a Describe paging token (an offset).
fn offset_token(t: Option<&str>) -> AwsResult<usize> {
    match t {
        None => Ok(0),
        Some(t) => t
            .strip_prefix("o/")
            .and_then(|n| n.parse::<u32>().ok())
            .map(|n| n as usize)
            .ok_or_else(|| invalid("The specified nextToken is invalid.")),
    }
}

/// Checks a `tags` map that was given against the model's `Tags` shape:
/// 1-50 entries, keys 1-128 characters, values strings of at most 256.
///
/// Errors: `InvalidParameterException` (no entry, a key or value out of
/// bounds), `SerializationException` (a value that is not a string).
fn check_tags(tags: &Map<String, Value>) -> AwsResult<()> {
    if tags.is_empty() {
        return Err(invalid(
            "1 validation error detected: Value '{}' at 'tags' failed to satisfy constraint: Member must have length greater than or equal to 1",
        ));
    }
    for (k, v) in tags {
        let Some(v) = v.as_str() else {
            return Err(serialization(format!(
                "The value of tag '{k}' must be a string."
            )));
        };
        if k.is_empty() || k.chars().count() > 128 {
            return Err(invalid(format!(
                "Tag key '{k}' must be between 1 and 128 characters long."
            )));
        }
        if v.chars().count() > 256 {
            return Err(invalid(format!(
                "The value of tag '{k}' is longer than 256 characters."
            )));
        }
    }
    Ok(())
}

fn too_many_tags(arn: &str) -> AwsError {
    AwsError::new(
        400,
        "TooManyTagsException",
        format!("A resource can have no more than {MAX_TAGS} tags: {arn} would have more."),
    )
    .with_field("resourceName", arn)
}

impl Logs {
    pub(crate) fn load_group(&self, region: &str, name: &str) -> AwsResult<Option<GroupRow>> {
        let (region, name) = (region.to_string(), name.to_string());
        self.store
            .read(move |c| {
                c.prepare_cached(
                    "SELECT name, creation_time, retention_days, tags FROM log_groups
                     WHERE region = ?1 AND name = ?2",
                )?
                .query_row(params![region, name], group_from_sql)
                .optional()
            })
            .map_err(store_err)
    }

    pub(crate) fn group(&self, region: &str, name: &str) -> AwsResult<GroupRow> {
        self.load_group(region, name)?.ok_or_else(group_not_found)
    }

    pub(crate) fn stream_exists(&self, region: &str, group: &str, stream: &str) -> AwsResult<bool> {
        self.store
            .read(|c| {
                c.prepare_cached(
                    "SELECT 1 FROM log_streams WHERE region = ?1 AND log_group = ?2 AND name = ?3",
                )?
                .query_row(params![region, group, stream], |_| Ok(()))
                .optional()
                .map(|r| r.is_some())
            })
            .map_err(store_err)
    }

    /// CreateLogGroup: `logGroupName`, optional `tags`, `kmsKeyId`
    /// (accepted, not used), `logGroupClass` (STANDARD only).
    ///
    /// Errors: `ResourceAlreadyExistsException`, `InvalidParameterException`,
    /// `TooManyTagsException`.
    pub(crate) async fn create_log_group(&self, region: &str, req: &Input) -> AwsResult<Value> {
        let name = req.req_str("logGroupName")?;
        check_group_name(name, "logGroupName")?;
        let tags = req.opt_map("tags")?.cloned();
        if let Some(t) = &tags {
            check_tags(t)?;
        }
        let tags = tags.unwrap_or_default();
        if tags.len() > MAX_TAGS {
            return Err(too_many_tags(&self.group_arn(region, name)));
        }
        if let Some(class) = req.opt_str("logGroupClass")?
            && class != "STANDARD"
        {
            return Err(invalid(format!(
                "Log group class {class} is not supported by stratus: only STANDARD log groups are."
            )));
        }
        let now = stratus_core::time::now_ms();
        let tags = Value::Object(tags).to_string();
        let (r, n) = (region.to_string(), name.to_string());
        let inserted = self
            .store
            .write(move |c| {
                c.execute(
                    "INSERT OR IGNORE INTO log_groups (region, name, creation_time, tags) VALUES (?1, ?2, ?3, ?4)",
                    params![r, n, now, tags],
                )
            })
            .await
            .map_err(store_err)?;
        if inserted == 0 {
            return Err(already_exists("The specified log group already exists"));
        }
        Ok(json!({}))
    }

    /// DeleteLogGroup: the group, its streams and its events.
    ///
    /// Errors: `ResourceNotFoundException`, `InvalidParameterException`.
    pub(crate) async fn delete_log_group(&self, region: &str, req: &Input) -> AwsResult<Value> {
        let name = req.req_str("logGroupName")?.to_string();
        check_group_name(&name, "logGroupName")?;
        let region = region.to_string();
        let deleted = self
            .store
            .write(move |c| {
                let n = c.execute(
                    "DELETE FROM log_groups WHERE region = ?1 AND name = ?2",
                    params![region, name],
                )?;
                c.execute(
                    "DELETE FROM log_streams WHERE region = ?1 AND log_group = ?2",
                    params![region, name],
                )?;
                c.execute(
                    "DELETE FROM log_events WHERE region = ?1 AND log_group = ?2",
                    params![region, name],
                )?;
                Ok(n > 0)
            })
            .await
            .map_err(store_err)?;
        if !deleted {
            return Err(group_not_found());
        }
        Ok(json!({}))
    }

    /// DescribeLogGroups: by name, `logGroupNamePrefix` or
    /// `logGroupNamePattern` (case-insensitive substring), pages of `limit`
    /// (1-50, default 50).
    ///
    /// Errors: `InvalidParameterException` (prefix and pattern together, a
    /// bad limit or token).
    pub(crate) fn describe_log_groups(&self, region: &str, req: &Input) -> AwsResult<Value> {
        let prefix = req.opt_str("logGroupNamePrefix")?;
        let pattern = req.opt_str("logGroupNamePattern")?;
        if prefix.is_some() && pattern.is_some() {
            return Err(invalid(
                "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.",
            ));
        }
        if let Some(p) = prefix {
            check_group_name(p, "logGroupNamePrefix")?;
        }
        let identifiers: Option<Vec<String>> =
            req.opt_str_list("logGroupIdentifiers")?.map(|ids| {
                ids.iter()
                    .map(|id| group_of_arn(id).unwrap_or(id).to_string())
                    .collect()
            });
        if identifiers.is_some() && (prefix.is_some() || pattern.is_some()) {
            return Err(invalid(
                "logGroupIdentifiers cannot be combined with logGroupNamePrefix or logGroupNamePattern.",
            ));
        }
        let limit = req.limit("limit", 1, 50)?.unwrap_or(DESCRIBE_LIMIT);
        let offset = offset_token(req.opt_str("nextToken")?)?;
        let rows: Vec<(GroupRow, i64)> = self
            .store
            .read(|c| {
                let mut st = c.prepare_cached(
                    "SELECT g.name, g.creation_time, g.retention_days, g.tags,
                            COALESCE((SELECT SUM(stored_bytes) FROM log_streams s
                                      WHERE s.region = g.region AND s.log_group = g.name), 0)
                     FROM log_groups g
                     WHERE g.region = ?1 AND (?2 IS NULL OR substr(g.name, 1, length(?2)) = ?2)
                     ORDER BY g.name",
                )?;
                let rows = st.query_map(params![region, prefix], |r| {
                    Ok((group_from_sql(r)?, r.get::<_, i64>(4)?))
                })?;
                rows.collect()
            })
            .map_err(store_err)?;
        let pattern = pattern.map(str::to_lowercase);
        let matching: Vec<_> = rows
            .into_iter()
            .filter(|(g, _)| {
                pattern
                    .as_deref()
                    .is_none_or(|p| g.name.to_lowercase().contains(p))
                    && identifiers.as_ref().is_none_or(|ids| ids.contains(&g.name))
            })
            .collect();
        let page: Vec<Value> = matching
            .iter()
            .skip(offset)
            .take(limit)
            .map(|(g, bytes)| {
                let arn = self.group_arn(region, &g.name);
                let mut v = json!({
                    "logGroupName": g.name,
                    "creationTime": g.creation_time,
                    "metricFilterCount": 0,
                    "arn": format!("{arn}:*"),
                    "logGroupArn": arn,
                    "storedBytes": bytes,
                    "logGroupClass": "STANDARD",
                });
                if let Some(d) = g.retention_days {
                    v["retentionInDays"] = Value::from(d);
                }
                v
            })
            .collect();
        let mut out = json!({"logGroups": page});
        if offset.saturating_add(limit) < matching.len() {
            out["nextToken"] = Value::from(format!("o/{}", offset.saturating_add(limit)));
        }
        Ok(out)
    }

    /// CreateLogStream.
    ///
    /// Errors: `ResourceNotFoundException` (no such group),
    /// `ResourceAlreadyExistsException`, `InvalidParameterException`.
    pub(crate) async fn create_log_stream(&self, region: &str, req: &Input) -> AwsResult<Value> {
        let group = req.req_str("logGroupName")?;
        check_group_name(group, "logGroupName")?;
        let stream = req.req_str("logStreamName")?;
        check_stream_name(stream, "logStreamName")?;
        self.group(region, group)?;
        let now = stratus_core::time::now_ms();
        let (r, g, st) = (region.to_string(), group.to_string(), stream.to_string());
        let inserted = self
            .store
            .write(move |c| {
                // The group may have been deleted since it was looked up.
                let exists = c
                    .query_row(
                        "SELECT 1 FROM log_groups WHERE region = ?1 AND name = ?2",
                        params![r, g],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some();
                if !exists {
                    return Ok(None);
                }
                c.execute(
                    "INSERT OR IGNORE INTO log_streams (region, log_group, name, creation_time)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![r, g, st, now],
                )
                .map(Some)
            })
            .await
            .map_err(store_err)?
            .ok_or_else(group_not_found)?;
        if inserted == 0 {
            return Err(already_exists("The specified log stream already exists"));
        }
        Ok(json!({}))
    }

    /// DeleteLogStream: the stream and its events.
    ///
    /// Errors: `ResourceNotFoundException` (group or stream),
    /// `InvalidParameterException`.
    pub(crate) async fn delete_log_stream(&self, region: &str, req: &Input) -> AwsResult<Value> {
        let group = req.req_str("logGroupName")?.to_string();
        check_group_name(&group, "logGroupName")?;
        let stream = req.req_str("logStreamName")?.to_string();
        check_stream_name(&stream, "logStreamName")?;
        self.group(region, &group)?;
        let region = region.to_string();
        let deleted = self
            .store
            .write(move |c| {
                let n = c.execute(
                    "DELETE FROM log_streams WHERE region = ?1 AND log_group = ?2 AND name = ?3",
                    params![region, group, stream],
                )?;
                c.execute(
                    "DELETE FROM log_events WHERE region = ?1 AND log_group = ?2 AND log_stream = ?3",
                    params![region, group, stream],
                )?;
                Ok(n > 0)
            })
            .await
            .map_err(store_err)?;
        if !deleted {
            return Err(stream_not_found());
        }
        Ok(json!({}))
    }

    /// DescribeLogStreams: `orderBy` LogStreamName (default) or
    /// LastEventTime, `descending`, `logStreamNamePrefix` (only with
    /// LogStreamName order), pages of `limit` (1-50, default 50).
    ///
    /// Errors: `ResourceNotFoundException`, `InvalidParameterException`.
    pub(crate) fn describe_log_streams(&self, region: &str, req: &Input) -> AwsResult<Value> {
        let group = req.group()?;
        let prefix = req.opt_str("logStreamNamePrefix")?;
        if let Some(p) = prefix {
            check_stream_name(p, "logStreamNamePrefix")?;
        }
        let order = req.opt_str("orderBy")?.unwrap_or("LogStreamName");
        let by_time = match order {
            "LogStreamName" => false,
            "LastEventTime" => true,
            other => {
                return Err(invalid(format!(
                    "1 validation error detected: Value '{other}' at 'orderBy' failed to satisfy constraint: Member must satisfy enum value set: [LogStreamName, LastEventTime]"
                )));
            }
        };
        if by_time && prefix.is_some() {
            return Err(invalid(
                "Cannot order by LastEventTime with a logStreamNamePrefix.",
            ));
        }
        let descending = req.opt_bool("descending")?.unwrap_or(false);
        let limit = req.limit("limit", 1, 50)?.unwrap_or(DESCRIBE_LIMIT);
        let offset = offset_token(req.opt_str("nextToken")?)?;
        let g = self.group(region, &group)?;
        let cutoff = g
            .retention_days
            .map(|d| stratus_core::time::now_ms() - d * crate::DAY_MS);
        let dir = if descending { "DESC" } else { "ASC" };
        let order_sql = if by_time {
            format!("COALESCE(last_event, -1) {dir}, name {dir}")
        } else {
            format!("name {dir}")
        };
        let sql = format!(
            "SELECT name, creation_time, first_event, last_event, last_ingestion, stored_bytes, upload_seq
             FROM log_streams
             WHERE region = ?1 AND log_group = ?2 AND (?3 IS NULL OR substr(name, 1, length(?3)) = ?3)
             ORDER BY {order_sql} LIMIT ?4 OFFSET ?5"
        );
        let rows: Vec<Value> = self
            .store
            .read(|c| {
                let mut st = c.prepare(&sql)?;
                let rows = st.query_map(
                    params![region, group, prefix, (limit + 1) as i64, offset as i64],
                    |r| {
                        let name: String = r.get(0)?;
                        let first: Option<i64> = r.get(2)?;
                        let last: Option<i64> = r.get(3)?;
                        let ingestion: Option<i64> = r.get(4)?;
                        let upload: i64 = r.get(6)?;
                        let mut v = json!({
                            "logStreamName": name,
                            "creationTime": r.get::<_, i64>(1)?,
                            "arn": format!("{}:log-stream:{name}", self.group_arn(region, &group)),
                            "storedBytes": r.get::<_, i64>(5)?,
                        });
                        // Events past the retention period are gone.
                        if let Some(last) = last.filter(|l| cutoff.is_none_or(|c| *l >= c)) {
                            v["firstEventTimestamp"] =
                                Value::from(first.unwrap_or(last).max(cutoff.unwrap_or(0)));
                            v["lastEventTimestamp"] = Value::from(last);
                        }
                        if let Some(i) = ingestion {
                            v["lastIngestionTime"] = Value::from(i);
                        }
                        if upload > 0 {
                            v["uploadSequenceToken"] =
                                Value::from(crate::writing::sequence_token(upload));
                        }
                        Ok(v)
                    },
                )?;
                rows.collect()
            })
            .map_err(store_err)?;
        let more = rows.len() > limit;
        let page: Vec<Value> = rows.into_iter().take(limit).collect();
        let mut out = json!({"logStreams": page});
        if more {
            out["nextToken"] = Value::from(format!("o/{}", offset.saturating_add(limit)));
        }
        Ok(out)
    }

    /// The log group a tagging ARN names, which must exist.
    fn tagged_group(&self, region: &str, arn: &str) -> AwsResult<GroupRow> {
        let name = group_of_arn(arn).ok_or_else(|| {
            invalid(format!(
                "'{arn}' is not a log group ARN (arn:aws:logs:<region>:<account>:log-group:<name>); stratus tags log groups only."
            ))
        })?;
        self.group(region, name)
    }

    async fn write_tags(
        &self,
        region: &str,
        name: &str,
        tags: &Map<String, Value>,
    ) -> AwsResult<()> {
        let text = Value::Object(tags.clone()).to_string();
        let (r, n) = (region.to_string(), name.to_string());
        self.store
            .write(move |c| {
                c.execute(
                    "UPDATE log_groups SET tags = ?3 WHERE region = ?1 AND name = ?2",
                    params![r, n, text],
                )
            })
            .await
            .map_err(store_err)?;
        Ok(())
    }

    async fn add_tags(&self, region: &str, g: GroupRow, new: &Map<String, Value>) -> AwsResult<()> {
        check_tags(new)?;
        let mut tags = g.tags;
        for (k, v) in new {
            tags.insert(k.clone(), v.clone());
        }
        if tags.len() > MAX_TAGS {
            return Err(too_many_tags(&self.group_arn(region, &g.name)));
        }
        self.write_tags(region, &g.name, &tags).await
    }

    async fn remove_tags(&self, region: &str, g: GroupRow, keys: &[&str]) -> AwsResult<()> {
        let mut tags = g.tags;
        for k in keys {
            tags.remove(*k);
        }
        self.write_tags(region, &g.name, &tags).await
    }

    /// TagResource: adds or replaces tags on a log group (by ARN).
    ///
    /// Errors: `ResourceNotFoundException`, `InvalidParameterException`,
    /// `TooManyTagsException`.
    pub(crate) async fn tag_resource(&self, region: &str, req: &Input) -> AwsResult<Value> {
        let g = self.tagged_group(region, req.req_str("resourceArn")?)?;
        let tags = req
            .opt_map("tags")?
            .ok_or_else(|| invalid("Missing required parameter tags."))?;
        self.add_tags(region, g, tags).await?;
        Ok(json!({}))
    }

    /// UntagResource: removes `tagKeys` from a log group (by ARN).
    ///
    /// Errors: `ResourceNotFoundException`, `InvalidParameterException`.
    pub(crate) async fn untag_resource(&self, region: &str, req: &Input) -> AwsResult<Value> {
        let g = self.tagged_group(region, req.req_str("resourceArn")?)?;
        let keys = req
            .opt_str_list("tagKeys")?
            .ok_or_else(|| invalid("Missing required parameter tagKeys."))?;
        self.remove_tags(region, g, &keys).await?;
        Ok(json!({}))
    }

    /// ListTagsForResource: `{"tags": {...}}` of a log group (by ARN).
    ///
    /// Errors: `ResourceNotFoundException`, `InvalidParameterException`.
    pub(crate) fn list_tags_for_resource(&self, region: &str, req: &Input) -> AwsResult<Value> {
        let g = self.tagged_group(region, req.req_str("resourceArn")?)?;
        Ok(json!({"tags": g.tags}))
    }

    /// TagLogGroup (deprecated form of TagResource, by name).
    ///
    /// Errors: as TagResource.
    pub(crate) async fn tag_log_group(&self, region: &str, req: &Input) -> AwsResult<Value> {
        let name = req.req_str("logGroupName")?;
        check_group_name(name, "logGroupName")?;
        let g = self.group(region, name)?;
        let tags = req
            .opt_map("tags")?
            .ok_or_else(|| invalid("Missing required parameter tags."))?;
        self.add_tags(region, g, tags).await?;
        Ok(json!({}))
    }

    /// UntagLogGroup (deprecated form of UntagResource; `tags` is the list
    /// of keys).
    ///
    /// Errors: as UntagResource.
    pub(crate) async fn untag_log_group(&self, region: &str, req: &Input) -> AwsResult<Value> {
        let name = req.req_str("logGroupName")?;
        check_group_name(name, "logGroupName")?;
        let g = self.group(region, name)?;
        let keys = req
            .opt_str_list("tags")?
            .ok_or_else(|| invalid("Missing required parameter tags."))?;
        self.remove_tags(region, g, &keys).await?;
        Ok(json!({}))
    }

    /// ListTagsLogGroup (deprecated form of ListTagsForResource).
    ///
    /// Errors: `ResourceNotFoundException`.
    pub(crate) fn list_tags_log_group(&self, region: &str, req: &Input) -> AwsResult<Value> {
        let name = req.req_str("logGroupName")?;
        check_group_name(name, "logGroupName")?;
        let g = self.group(region, name)?;
        Ok(json!({"tags": g.tags}))
    }
}
