//! Step Functions execution metrics (namespace `AWS/States`, dimension
//! `StateMachineArn`), as "Monitoring Step Functions metrics using Amazon
//! CloudWatch" lists them: ExecutionsStarted, ExecutionsSucceeded,
//! ExecutionsFailed, ExecutionsAborted, ExecutionsTimedOut,
//! ExecutionThrottled (counts) and ExecutionTime (ms from start to close).
//!
//! Stored per minute in `sfn_metrics`. The Step Functions service counts a
//! start with [`count_started`] inside the transaction that inserts the
//! execution (so a start is counted exactly once, durably), and an end with
//! [`record_end`] once the final status is committed: that reads the
//! stored execution (`sfn_executions`: status, start and stop times) and
//! counts it once (`sfn_metrics_ended` remembers which executions are
//! counted, so an end reported twice counts once). [`catch_up`] counts the
//! ends a crash left uncounted.

use std::collections::HashSet;
use std::sync::Mutex;

use stratus_store::rusqlite::{self, Connection, OptionalExtension, params};
use stratus_store::{Store, StoreResult};

/// The tables of Step Functions metrics.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS sfn_metrics (
    region            TEXT NOT NULL,
    state_machine_arn TEXT NOT NULL,
    minute            INTEGER NOT NULL,
    started           INTEGER NOT NULL DEFAULT 0,
    succeeded         INTEGER NOT NULL DEFAULT 0,
    failed            INTEGER NOT NULL DEFAULT 0,
    aborted           INTEGER NOT NULL DEFAULT 0,
    timed_out         INTEGER NOT NULL DEFAULT 0,
    throttled         INTEGER NOT NULL DEFAULT 0,
    time_count        INTEGER NOT NULL DEFAULT 0,
    time_sum_ms       REAL NOT NULL DEFAULT 0,
    time_min_ms       REAL,
    time_max_ms       REAL,
    PRIMARY KEY (region, state_machine_arn, minute)
);
CREATE INDEX IF NOT EXISTS sfn_metrics_minute ON sfn_metrics (minute);
CREATE TABLE IF NOT EXISTS sfn_metrics_ended (
    execution_arn TEXT PRIMARY KEY
);
"#;

/// Stores whose tables exist (by path), so [`ensure_schema`] runs the DDL
/// once per store.
static MIGRATED: Mutex<Option<HashSet<std::path::PathBuf>>> = Mutex::new(None);

/// Creates the metric tables in `store` (once per store and process).
///
/// Errors: the DDL fails.
pub fn ensure_schema(store: &Store) -> StoreResult<()> {
    let mut m = MIGRATED.lock().unwrap_or_else(|p| p.into_inner());
    let set = m.get_or_insert_with(HashSet::new);
    if set.contains(store.path()) {
        return Ok(());
    }
    store.migrate(SCHEMA)?;
    set.insert(store.path().to_path_buf());
    Ok(())
}

fn minute_of(ms: i64) -> i64 {
    ms - ms.rem_euclid(60_000)
}

/// Counts one ExecutionsStarted of `state_machine_arn` at `at_ms` (ms since
/// the epoch). Call it inside the write that inserts the execution, after
/// [`ensure_schema`].
///
/// Errors: the SQL fails.
pub fn count_started(
    c: &Connection,
    region: &str,
    state_machine_arn: &str,
    at_ms: i64,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO sfn_metrics (region, state_machine_arn, minute, started) VALUES (?1, ?2, ?3, 1)
         ON CONFLICT (region, state_machine_arn, minute) DO UPDATE SET started = started + 1",
    )?
    .execute(params![region, state_machine_arn, minute_of(at_ms)])?;
    Ok(())
}

/// Counts the end of execution `execution_arn` from its stored row, once:
/// the status's counter (SUCCEEDED, FAILED, ABORTED, TIMED_OUT) and
/// ExecutionTime (stop - start, ms) in the minute it stopped. Returns
/// whether it counted (false: still running, unknown, or already counted).
///
/// Errors: the SQL fails.
pub fn count_ended(c: &Connection, execution_arn: &str) -> rusqlite::Result<bool> {
    let row: Option<(String, String, String, i64, Option<i64>)> = c
        .prepare_cached(
            "SELECT region, state_machine_arn, status, start_ms, stop_ms FROM sfn_executions WHERE arn = ?1",
        )?
        .query_row(params![execution_arn], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    let Some((region, sm, status, start_ms, Some(stop_ms))) = row else {
        return Ok(false);
    };
    let Some(column) = status_column(&status) else {
        return Ok(false);
    };
    let fresh = c
        .prepare_cached("INSERT OR IGNORE INTO sfn_metrics_ended (execution_arn) VALUES (?1)")?
        .execute(params![execution_arn])?;
    if fresh == 0 {
        return Ok(false);
    }
    add_end(c, &region, &sm, column, start_ms, stop_ms)?;
    Ok(true)
}

/// The `sfn_metrics` column of a final status.
fn status_column(status: &str) -> Option<&'static str> {
    Some(match status {
        "SUCCEEDED" => "succeeded",
        "FAILED" => "failed",
        "ABORTED" => "aborted",
        "TIMED_OUT" => "timed_out",
        _ => return None,
    })
}

fn add_end(
    c: &Connection,
    region: &str,
    sm: &str,
    column: &str,
    start_ms: i64,
    stop_ms: i64,
) -> rusqlite::Result<()> {
    let took = (stop_ms - start_ms).max(0) as f64;
    c.execute(
        &format!(
            "INSERT INTO sfn_metrics (region, state_machine_arn, minute, {column}, time_count, time_sum_ms, time_min_ms, time_max_ms)
             VALUES (?1, ?2, ?3, 1, 1, ?4, ?4, ?4)
             ON CONFLICT (region, state_machine_arn, minute) DO UPDATE SET
               {column} = {column} + 1,
               time_count = time_count + 1,
               time_sum_ms = time_sum_ms + excluded.time_sum_ms,
               time_min_ms = MIN(COALESCE(time_min_ms, excluded.time_min_ms), excluded.time_min_ms),
               time_max_ms = MAX(COALESCE(time_max_ms, excluded.time_max_ms), excluded.time_max_ms)"
        ),
        params![region, sm, minute_of(stop_ms), took],
    )?;
    Ok(())
}

/// Counts a StartSyncExecution execution (not stored as an execution):
/// its start and its end (`status` SUCCEEDED, FAILED or TIMED_OUT) with
/// its ExecutionTime.
///
/// Errors: the SQL fails.
pub fn count_sync(
    c: &Connection,
    region: &str,
    state_machine_arn: &str,
    start_ms: i64,
    stop_ms: i64,
    status: &str,
) -> rusqlite::Result<()> {
    count_started(c, region, state_machine_arn, start_ms)?;
    if let Some(column) = status_column(status) {
        add_end(c, region, state_machine_arn, column, start_ms, stop_ms)?;
    }
    Ok(())
}

/// Records a StartSyncExecution execution ([`count_sync`]) in the
/// background; a failure is logged.
pub fn record_sync(
    store: &Store,
    region: &str,
    state_machine_arn: &str,
    start_ms: i64,
    stop_ms: i64,
    status: &str,
) {
    if let Err(e) = ensure_schema(store) {
        tracing::error!("cannot create the Step Functions metric tables: {e}");
        return;
    }
    let (region, sm, status) = (
        region.to_string(),
        state_machine_arn.to_string(),
        status.to_string(),
    );
    let write = move |c: &Connection| count_sync(c, &region, &sm, start_ms, stop_ms, &status);
    in_background(store, write);
}

fn in_background<F>(store: &Store, write: F)
where
    F: FnOnce(&Connection) -> rusqlite::Result<()> + Send + 'static,
{
    let store = store.clone();
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            h.spawn(async move {
                if let Err(e) = store.write(write).await {
                    tracing::error!("cannot count an execution in its metrics: {e}");
                }
            });
        }
        Err(_) => {
            if let Err(e) = store.write_blocking(write) {
                tracing::error!("cannot count an execution in its metrics: {e}");
            }
        }
    }
}

/// Counts every ended execution not counted yet (ends whose count a crash
/// cut off). Returns how many it counted.
///
/// Errors: the SQL fails.
pub fn catch_up(c: &Connection) -> rusqlite::Result<usize> {
    let exists: bool = c.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sfn_executions')",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(0);
    }
    let arns: Vec<String> = c
        .prepare(
            "SELECT e.arn FROM sfn_executions e
             WHERE e.status != 'RUNNING' AND e.stop_ms IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM sfn_metrics_ended m WHERE m.execution_arn = e.arn)",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut n = 0;
    for arn in arns {
        n += usize::from(count_ended(c, &arn)?);
    }
    Ok(n)
}

/// Records the end of `execution_arn` (see [`count_ended`]) in the
/// background: called right after its final status is committed. A failure
/// is logged; [`catch_up`] at the next start counts it.
pub fn record_end(store: &Store, execution_arn: &str) {
    if let Err(e) = ensure_schema(store) {
        tracing::error!("cannot create the Step Functions metric tables: {e}");
        return;
    }
    let arn = execution_arn.to_string();
    in_background(store, move |c: &Connection| {
        count_ended(c, &arn).map(|_| ())
    });
}
