//! PutRetentionPolicy / DeleteRetentionPolicy and the sweeper that deletes
//! expired events. Reads never return events older than the retention
//! period (`now - retentionInDays` days, by event timestamp), whether or
//! not the sweeper has deleted them yet.

use serde_json::{Value, json};
use stratus_core::AwsResult;
use stratus_store::rusqlite::params;

use crate::input::{Input, check_group_name};
use crate::{DAY_MS, Logs, RETENTION_DAYS, group_not_found, invalid, store_err};

impl Logs {
    /// PutRetentionPolicy: `retentionInDays` must be one of
    /// [`RETENTION_DAYS`].
    ///
    /// Errors: `ResourceNotFoundException`, `InvalidParameterException`.
    pub(crate) async fn put_retention_policy(&self, region: &str, req: &Input) -> AwsResult<Value> {
        let name = req.req_str("logGroupName")?.to_string();
        check_group_name(&name, "logGroupName")?;
        let days = req
            .opt_i64("retentionInDays")?
            .ok_or_else(|| invalid("Missing required parameter retentionInDays."))?;
        if !RETENTION_DAYS.contains(&days) {
            return Err(invalid(format!(
                "1 validation error detected: Value '{days}' at 'retentionInDays' failed to satisfy constraint: Member must satisfy enum value set: {RETENTION_DAYS:?}"
            )));
        }
        self.set_retention(region, name, Some(days)).await
    }

    /// DeleteRetentionPolicy: events are kept forever again.
    ///
    /// Errors: `ResourceNotFoundException`, `InvalidParameterException`.
    pub(crate) async fn delete_retention_policy(
        &self,
        region: &str,
        req: &Input,
    ) -> AwsResult<Value> {
        let name = req.req_str("logGroupName")?.to_string();
        check_group_name(&name, "logGroupName")?;
        self.set_retention(region, name, None).await
    }

    async fn set_retention(
        &self,
        region: &str,
        name: String,
        days: Option<i64>,
    ) -> AwsResult<Value> {
        let region = region.to_string();
        let changed = self
            .store
            .write(move |c| {
                c.execute(
                    "UPDATE log_groups SET retention_days = ?3 WHERE region = ?1 AND name = ?2",
                    params![region, name, days],
                )
            })
            .await
            .map_err(store_err)?;
        if changed == 0 {
            return Err(group_not_found());
        }
        Ok(json!({}))
    }

    /// Deletes the events of every group with a retention policy that are
    /// older than it, and recounts the stored bytes of the streams touched.
    ///
    /// Errors: a store failure.
    pub async fn sweep_retention(&self) -> AwsResult<usize> {
        let now = stratus_core::time::now_ms();
        self.store
            .write(move |c| {
                let groups: Vec<(String, String, i64)> = {
                    let mut st = c.prepare(
                        "SELECT region, name, retention_days FROM log_groups WHERE retention_days IS NOT NULL",
                    )?;
                    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                    rows.collect::<Result<_, _>>()?
                };
                let mut deleted = 0;
                for (region, name, days) in groups {
                    let cutoff = now - days * DAY_MS;
                    let n = c.execute(
                        "DELETE FROM log_events WHERE region = ?1 AND log_group = ?2 AND timestamp < ?3",
                        params![region, name, cutoff],
                    )?;
                    if n > 0 {
                        c.execute(
                            "UPDATE log_streams SET stored_bytes = COALESCE((
                                 SELECT SUM(LENGTH(CAST(message AS BLOB))) FROM log_events e
                                 WHERE e.region = log_streams.region AND e.log_group = log_streams.log_group
                                   AND e.log_stream = log_streams.name), 0)
                             WHERE region = ?1 AND log_group = ?2",
                            params![region, name],
                        )?;
                    }
                    deleted += n;
                }
                Ok(deleted)
            })
            .await
            .map_err(store_err)
    }
}
