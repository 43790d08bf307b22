//! The embedded store: one SQLite database (`<data-dir>/stratus.db`, WAL mode)
//! holding every resource stratus keeps, and the log events functions write.
//!
//! Resources are stored as JSON documents keyed by `(kind, region, id)`, so a
//! service can grow its shapes without a migration. Log events go through a
//! background writer thread that commits them in batches.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

mod commit;

/// The SQLite binding, for services that keep tables of their own
/// (see [`Store::migrate`], [`Store::write`], [`Store::read`]).
pub use rusqlite;

/// An error from the store; services map it to a `ServiceException`.
#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "store error: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

impl From<StoreError> for stratus_core::AwsError {
    fn from(e: StoreError) -> Self {
        stratus_core::AwsError::service(e.to_string())
    }
}

/// Result alias for store operations.
pub type StoreResult<T> = Result<T, StoreError>;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS resources (
    kind   TEXT NOT NULL,
    region TEXT NOT NULL,
    id     TEXT NOT NULL,
    body   TEXT NOT NULL,
    PRIMARY KEY (kind, region, id)
);
CREATE TABLE IF NOT EXISTS log_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    region     TEXT NOT NULL,
    log_group  TEXT NOT NULL,
    log_stream TEXT NOT NULL,
    timestamp  INTEGER NOT NULL,
    ingestion  INTEGER NOT NULL,
    message    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS log_events_group ON log_events (region, log_group, seq);
CREATE INDEX IF NOT EXISTS log_events_stream ON log_events (region, log_group, log_stream, seq);
CREATE INDEX IF NOT EXISTS log_events_stream_time ON log_events (region, log_group, log_stream, timestamp, seq);
CREATE INDEX IF NOT EXISTS log_events_group_time ON log_events (region, log_group, timestamp, seq);
CREATE TABLE IF NOT EXISTS log_groups (
    region         TEXT NOT NULL,
    name           TEXT NOT NULL,
    creation_time  INTEGER NOT NULL,
    retention_days INTEGER,
    tags           TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (region, name)
);
CREATE TABLE IF NOT EXISTS log_streams (
    region          TEXT NOT NULL,
    log_group       TEXT NOT NULL,
    name            TEXT NOT NULL,
    creation_time   INTEGER NOT NULL,
    first_event     INTEGER,
    last_event      INTEGER,
    last_ingestion  INTEGER,
    stored_bytes    INTEGER NOT NULL DEFAULT 0,
    upload_seq      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (region, log_group, name)
);
CREATE TABLE IF NOT EXISTS lambda_metrics (
    region        TEXT NOT NULL,
    function_name TEXT NOT NULL,
    dimension     TEXT NOT NULL,
    qualifier     TEXT NOT NULL,
    minute        INTEGER NOT NULL,
    invocations   INTEGER NOT NULL DEFAULT 0,
    errors        INTEGER NOT NULL DEFAULT 0,
    throttles     INTEGER NOT NULL DEFAULT 0,
    concurrent_executions             INTEGER NOT NULL DEFAULT 0,
    provisioned_concurrent_executions INTEGER NOT NULL DEFAULT 0,
    provisioned_allocated             INTEGER NOT NULL DEFAULT 0,
    provisioned_invocations           INTEGER NOT NULL DEFAULT 0,
    spillover_invocations             INTEGER NOT NULL DEFAULT 0,
    duration_sum_ms   REAL NOT NULL DEFAULT 0,
    duration_count    INTEGER NOT NULL DEFAULT 0,
    duration_max_ms   REAL NOT NULL DEFAULT 0,
    billed_ms         INTEGER NOT NULL DEFAULT 0,
    gb_seconds_x86_64 REAL NOT NULL DEFAULT 0,
    gb_seconds_arm64  REAL NOT NULL DEFAULT 0,
    provisioned_gb_seconds_x86_64 REAL NOT NULL DEFAULT 0,
    provisioned_gb_seconds_arm64  REAL NOT NULL DEFAULT 0,
    allocated_gb_seconds_x86_64   REAL NOT NULL DEFAULT 0,
    allocated_gb_seconds_arm64    REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (region, function_name, dimension, qualifier, minute)
);
CREATE INDEX IF NOT EXISTS lambda_metrics_minute ON lambda_metrics (minute);
"#;

fn open_conn(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// One log event as CloudWatch Logs models it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// Region of the log group.
    pub region: String,
    /// Log group name, e.g. `/aws/lambda/my-function`.
    pub log_group: String,
    /// Log stream name, e.g. `2024/01/31/[$LATEST]0123...`.
    pub log_stream: String,
    /// Event time, ms since the epoch.
    pub timestamp: i64,
    /// The message (one line, without the trailing newline).
    pub message: String,
}

/// One minute of a Lambda metric series: a function (`dimension`
/// `function`, empty `qualifier`), a version (`version`, the executed
/// version, `$LATEST` included) or an alias (`alias`, its name).
///
/// Counters and sums add up when the same minute is written again; the
/// `*_max`-like fields (`concurrent_executions`,
/// `provisioned_concurrent_executions`, `provisioned_allocated`,
/// `duration_max_ms`) keep the maximum. GB-seconds: on-demand billed
/// duration x memory (`gb_seconds_*`), billed duration x memory on
/// provisioned environments (`provisioned_gb_seconds_*`), and provisioned
/// environments allocated x memory x time (`allocated_gb_seconds_*`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricRow {
    pub region: String,
    pub function_name: String,
    /// `function`, `version` or `alias`.
    pub dimension: String,
    pub qualifier: String,
    /// Start of the minute, ms since the epoch.
    pub minute: i64,
    pub invocations: u64,
    pub errors: u64,
    pub throttles: u64,
    pub concurrent_executions: u64,
    pub provisioned_concurrent_executions: u64,
    pub provisioned_allocated: u64,
    pub provisioned_invocations: u64,
    pub spillover_invocations: u64,
    pub duration_sum_ms: f64,
    pub duration_count: u64,
    pub duration_max_ms: f64,
    pub billed_ms: u64,
    pub gb_seconds_x86_64: f64,
    pub gb_seconds_arm64: f64,
    pub provisioned_gb_seconds_x86_64: f64,
    pub provisioned_gb_seconds_arm64: f64,
    pub allocated_gb_seconds_x86_64: f64,
    pub allocated_gb_seconds_arm64: f64,
}

impl MetricRow {
    /// ProvisionedConcurrencyUtilization of the minute (0 without
    /// provisioned environments): the busiest moment over those allocated.
    pub fn provisioned_utilization(&self) -> f64 {
        if self.provisioned_allocated == 0 {
            0.0
        } else {
            self.provisioned_concurrent_executions as f64 / self.provisioned_allocated as f64
        }
    }
}

/// Which metric rows [`Store::read_metrics`] returns.
#[derive(Debug, Clone, Default)]
pub struct MetricQuery<'a> {
    pub region: Option<&'a str>,
    pub function_name: Option<&'a str>,
    /// `function`, `version` or `alias`.
    pub dimension: Option<&'a str>,
    /// Minutes starting at or after this (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Minutes starting before this.
    pub until_ms: Option<i64>,
}

/// A stored log event with its sequence number (increasing, unique).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLogEvent {
    /// Store-wide increasing sequence number.
    pub seq: i64,
    /// The event.
    pub event: LogEvent,
    /// Ingestion time, ms since the epoch.
    pub ingestion: i64,
}

/// Log events waiting for the writer thread, plus flush requests.
#[derive(Default)]
struct LogQueue {
    events: Vec<LogEvent>,
    flushes: Vec<mpsc::Sender<()>>,
    closed: bool,
}

/// How long queued log events may wait before the writer commits them.
/// Appending never wakes the writer (that would cost a futex wake per line
/// on the invoke path); it sleeps this long or until the queue is big.
const LOG_COMMIT_INTERVAL: Duration = Duration::from_millis(20);
const LOG_WAKE_AT: usize = 8192;

/// Handle to the store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    logs: Arc<(Mutex<LogQueue>, Condvar)>,
    committer: commit::Committer,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store at `<data_dir>/stratus.db` and
    /// starts the log writer thread.
    ///
    /// Errors: the directory cannot be created or the database cannot be
    /// opened or migrated.
    pub fn open(data_dir: &Path) -> StoreResult<Store> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError(format!("{}: {e}", data_dir.display())))?;
        let path = data_dir.join("stratus.db");
        let conn = open_conn(&path)?;
        conn.execute_batch(SCHEMA)?;
        backfill_log_resources(&conn)?;
        let writer = open_conn(&path)?;
        let logs: Arc<(Mutex<LogQueue>, Condvar)> = Arc::default();
        let q = logs.clone();
        thread::Builder::new()
            .name("stratus-log-writer".into())
            .spawn(move || log_writer(writer, q))
            .map_err(|e| StoreError(e.to_string()))?;
        let committer = commit::Committer::start(open_conn(&path)?)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            logs,
            committer,
            path,
        })
    }

    /// Opens an existing store read-only-ish for the CLI (no writer thread is
    /// needed, but one is started for symmetry; it idles).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        Ok(f(&conn)?)
    }

    /// Creates a service's own tables and indexes: `sql` is a batch of
    /// `CREATE ... IF NOT EXISTS` statements, run once at start-up.
    ///
    /// Errors: the SQL fails.
    pub fn migrate(&self, sql: &str) -> StoreResult<()> {
        self.with(|c| c.execute_batch(sql))
    }

    /// Runs `f` on the reading connection. It sees every committed write
    /// (including [`Store::write`]s that have completed).
    ///
    /// Errors: `f` fails.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        self.with(f)
    }

    /// Runs `f` in a write transaction shared with other writers (group
    /// commit, see the `commit` module) and resolves once that transaction
    /// is committed: after `.await` returns `Ok`, the write survives SIGKILL.
    /// `f` runs inside its own savepoint: if it returns `Err`, its changes
    /// are rolled back and the others' are kept.
    ///
    /// Errors: `f` fails, the commit fails, or the store is closed.
    pub async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.committer.submit(f, move |r| {
            let _ = tx.send(r);
        })?;
        rx.await
            .unwrap_or_else(|_| Err(StoreError("the store writer stopped".into())))
    }

    /// [`Store::write`] for threads outside the async runtime: blocks until
    /// the round is committed.
    pub fn write_blocking<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        self.committer.submit(f, move |r| {
            let _ = tx.send(r);
        })?;
        rx.recv()
            .unwrap_or_else(|_| Err(StoreError("the store writer stopped".into())))
    }

    /// Inserts or replaces the JSON document of a resource.
    pub fn put(&self, kind: &str, region: &str, id: &str, body: &str) -> StoreResult<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO resources (kind, region, id, body) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (kind, region, id) DO UPDATE SET body = excluded.body",
                params![kind, region, id, body],
            )
            .map(|_| ())
        })
    }

    /// Inserts a resource only if it does not exist yet. Returns false when
    /// it already existed (nothing is written).
    pub fn insert_new(&self, kind: &str, region: &str, id: &str, body: &str) -> StoreResult<bool> {
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO resources (kind, region, id, body) VALUES (?1, ?2, ?3, ?4)",
                params![kind, region, id, body],
            )
            .map(|n| n == 1)
        })
    }

    /// The JSON document of a resource, if it exists.
    pub fn get(&self, kind: &str, region: &str, id: &str) -> StoreResult<Option<String>> {
        self.with(|c| {
            c.prepare_cached(
                "SELECT body FROM resources WHERE kind = ?1 AND region = ?2 AND id = ?3",
            )?
            .query_row(params![kind, region, id], |r| r.get(0))
            .optional()
        })
    }

    /// Every resource of a kind in a region, ordered by id: `(id, body)`.
    pub fn list(&self, kind: &str, region: &str) -> StoreResult<Vec<(String, String)>> {
        self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, body FROM resources WHERE kind = ?1 AND region = ?2 ORDER BY id",
            )?;
            let rows = st.query_map(params![kind, region], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    /// Every resource of a kind in every region: `(region, id, body)`.
    pub fn list_all(&self, kind: &str) -> StoreResult<Vec<(String, String, String)>> {
        self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT region, id, body FROM resources WHERE kind = ?1 ORDER BY region, id",
            )?;
            let rows = st.query_map(params![kind], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })
    }

    /// Deletes a resource. Returns whether it existed.
    pub fn delete(&self, kind: &str, region: &str, id: &str) -> StoreResult<bool> {
        self.with(|c| {
            c.execute(
                "DELETE FROM resources WHERE kind = ?1 AND region = ?2 AND id = ?3",
                params![kind, region, id],
            )
            .map(|n| n > 0)
        })
    }

    /// Queues a log event for the writer thread (never blocks).
    pub fn append_log(&self, event: LogEvent) {
        let (m, cv) = &*self.logs;
        let mut q = m.lock().unwrap_or_else(|p| p.into_inner());
        q.events.push(event);
        if q.events.len() == LOG_WAKE_AT {
            cv.notify_one();
        }
    }

    /// Waits until every log event queued so far is committed.
    pub fn flush_logs(&self) {
        let (tx, rx) = mpsc::channel();
        {
            let (m, cv) = &*self.logs;
            let mut q = m.lock().unwrap_or_else(|p| p.into_inner());
            if q.closed {
                return;
            }
            q.flushes.push(tx);
            cv.notify_one();
        }
        let _ = rx.recv_timeout(Duration::from_secs(10));
    }

    /// Log events of a group (optionally one stream) with `seq > after`,
    /// oldest first, at most `limit`.
    pub fn read_logs(
        &self,
        region: &str,
        log_group: &str,
        log_stream: Option<&str>,
        after: i64,
        limit: usize,
    ) -> StoreResult<Vec<StoredLogEvent>> {
        self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT seq, log_stream, timestamp, ingestion, message FROM log_events
                 WHERE region = ?1 AND log_group = ?2 AND (?3 IS NULL OR log_stream = ?3) AND seq > ?4
                 ORDER BY seq LIMIT ?5",
            )?;
            let rows = st.query_map(params![region, log_group, log_stream, after, limit as i64], |r| {
                Ok(StoredLogEvent {
                    seq: r.get(0)?,
                    ingestion: r.get(3)?,
                    event: LogEvent {
                        region: region.to_string(),
                        log_group: log_group.to_string(),
                        log_stream: r.get(1)?,
                        timestamp: r.get(2)?,
                        message: r.get(4)?,
                    },
                })
            })?;
            rows.collect()
        })
    }
}

const METRIC_COLUMNS: &str = "region, function_name, dimension, qualifier, minute, invocations, errors, throttles, \
    concurrent_executions, provisioned_concurrent_executions, provisioned_allocated, provisioned_invocations, \
    spillover_invocations, duration_sum_ms, duration_count, duration_max_ms, billed_ms, gb_seconds_x86_64, \
    gb_seconds_arm64, provisioned_gb_seconds_x86_64, provisioned_gb_seconds_arm64, allocated_gb_seconds_x86_64, \
    allocated_gb_seconds_arm64";

impl Store {
    /// Adds minutes of Lambda metrics in one transaction: counters and sums
    /// add to what the minute has, maxima keep the larger value.
    pub fn add_metrics(&self, rows: &[MetricRow]) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut st = tx.prepare_cached(&format!(
                "INSERT INTO lambda_metrics ({METRIC_COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23) \
                 ON CONFLICT (region, function_name, dimension, qualifier, minute) DO UPDATE SET \
                 invocations = invocations + excluded.invocations, \
                 errors = errors + excluded.errors, \
                 throttles = throttles + excluded.throttles, \
                 concurrent_executions = MAX(concurrent_executions, excluded.concurrent_executions), \
                 provisioned_concurrent_executions = MAX(provisioned_concurrent_executions, excluded.provisioned_concurrent_executions), \
                 provisioned_allocated = MAX(provisioned_allocated, excluded.provisioned_allocated), \
                 provisioned_invocations = provisioned_invocations + excluded.provisioned_invocations, \
                 spillover_invocations = spillover_invocations + excluded.spillover_invocations, \
                 duration_sum_ms = duration_sum_ms + excluded.duration_sum_ms, \
                 duration_count = duration_count + excluded.duration_count, \
                 duration_max_ms = MAX(duration_max_ms, excluded.duration_max_ms), \
                 billed_ms = billed_ms + excluded.billed_ms, \
                 gb_seconds_x86_64 = gb_seconds_x86_64 + excluded.gb_seconds_x86_64, \
                 gb_seconds_arm64 = gb_seconds_arm64 + excluded.gb_seconds_arm64, \
                 provisioned_gb_seconds_x86_64 = provisioned_gb_seconds_x86_64 + excluded.provisioned_gb_seconds_x86_64, \
                 provisioned_gb_seconds_arm64 = provisioned_gb_seconds_arm64 + excluded.provisioned_gb_seconds_arm64, \
                 allocated_gb_seconds_x86_64 = allocated_gb_seconds_x86_64 + excluded.allocated_gb_seconds_x86_64, \
                 allocated_gb_seconds_arm64 = allocated_gb_seconds_arm64 + excluded.allocated_gb_seconds_arm64"
            ))?;
            for r in rows {
                st.execute(params![
                    r.region,
                    r.function_name,
                    r.dimension,
                    r.qualifier,
                    r.minute,
                    r.invocations as i64,
                    r.errors as i64,
                    r.throttles as i64,
                    r.concurrent_executions as i64,
                    r.provisioned_concurrent_executions as i64,
                    r.provisioned_allocated as i64,
                    r.provisioned_invocations as i64,
                    r.spillover_invocations as i64,
                    r.duration_sum_ms,
                    r.duration_count as i64,
                    r.duration_max_ms,
                    r.billed_ms as i64,
                    r.gb_seconds_x86_64,
                    r.gb_seconds_arm64,
                    r.provisioned_gb_seconds_x86_64,
                    r.provisioned_gb_seconds_arm64,
                    r.allocated_gb_seconds_x86_64,
                    r.allocated_gb_seconds_arm64,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Minutes of Lambda metrics matching `q`, ordered by function,
    /// dimension, qualifier and minute.
    pub fn read_metrics(&self, q: &MetricQuery<'_>) -> StoreResult<Vec<MetricRow>> {
        self.with(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {METRIC_COLUMNS} FROM lambda_metrics \
                 WHERE (?1 IS NULL OR region = ?1) AND (?2 IS NULL OR function_name = ?2) \
                 AND (?3 IS NULL OR dimension = ?3) AND (?4 IS NULL OR minute >= ?4) \
                 AND (?5 IS NULL OR minute < ?5) \
                 ORDER BY region, function_name, dimension, qualifier, minute"
            ))?;
            let rows = st.query_map(
                params![
                    q.region,
                    q.function_name,
                    q.dimension,
                    q.since_ms,
                    q.until_ms
                ],
                |r| {
                    let u = |i: usize| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
                    Ok(MetricRow {
                        region: r.get(0)?,
                        function_name: r.get(1)?,
                        dimension: r.get(2)?,
                        qualifier: r.get(3)?,
                        minute: r.get(4)?,
                        invocations: u(5)?,
                        errors: u(6)?,
                        throttles: u(7)?,
                        concurrent_executions: u(8)?,
                        provisioned_concurrent_executions: u(9)?,
                        provisioned_allocated: u(10)?,
                        provisioned_invocations: u(11)?,
                        spillover_invocations: u(12)?,
                        duration_sum_ms: r.get(13)?,
                        duration_count: u(14)?,
                        duration_max_ms: r.get(15)?,
                        billed_ms: u(16)?,
                        gb_seconds_x86_64: r.get(17)?,
                        gb_seconds_arm64: r.get(18)?,
                        provisioned_gb_seconds_x86_64: r.get(19)?,
                        provisioned_gb_seconds_arm64: r.get(20)?,
                        allocated_gb_seconds_x86_64: r.get(21)?,
                        allocated_gb_seconds_arm64: r.get(22)?,
                    })
                },
            )?;
            rows.collect()
        })
    }
}

fn now_ms() -> i64 {
    stratus_core::time::now_ms()
}

/// Gives log events written before the `log_groups` / `log_streams` tables
/// existed their group and stream rows (once: only while `log_groups` is
/// empty).
fn backfill_log_resources(conn: &Connection) -> rusqlite::Result<()> {
    let groups: i64 = conn.query_row("SELECT COUNT(*) FROM log_groups", [], |r| r.get(0))?;
    if groups > 0 {
        return Ok(());
    }
    conn.execute_batch(
        "INSERT OR IGNORE INTO log_streams
             (region, log_group, name, creation_time, first_event, last_event, last_ingestion, stored_bytes)
         SELECT region, log_group, log_stream, MIN(ingestion), MIN(timestamp), MAX(timestamp), MAX(ingestion),
                SUM(LENGTH(CAST(message AS BLOB)))
         FROM log_events GROUP BY region, log_group, log_stream;
         INSERT OR IGNORE INTO log_groups (region, name, creation_time)
         SELECT region, log_group, MIN(creation_time) FROM log_streams GROUP BY region, log_group;",
    )
}

/// Inserts log events inside the caller's transaction and keeps their log
/// streams and log groups up to date: a stream or group that does not exist
/// yet is created (as AWS Lambda creates `/aws/lambda/<function>` on its
/// first write), and each stream's first/last event timestamps, last
/// ingestion time, stored bytes (UTF-8 message bytes) and upload sequence
/// number follow the new events. `ingestion` is ms since the epoch.
///
/// Returns the sequence numbers given to the events, in order.
///
/// Errors: the SQL fails (the caller's transaction should then roll back).
pub fn insert_log_events(
    c: &Connection,
    events: &[LogEvent],
    ingestion: i64,
) -> rusqlite::Result<Vec<i64>> {
    use std::collections::HashMap;
    let mut seqs = Vec::with_capacity(events.len());
    // (region, group, stream) -> (first ts, last ts, bytes)
    let mut streams: HashMap<(&str, &str, &str), (i64, i64, i64)> = HashMap::new();
    {
        let mut st = c.prepare_cached(
            "INSERT INTO log_events (region, log_group, log_stream, timestamp, ingestion, message)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for e in events {
            st.execute(params![
                e.region,
                e.log_group,
                e.log_stream,
                e.timestamp,
                ingestion,
                e.message
            ])?;
            seqs.push(c.last_insert_rowid());
            let entry = streams
                .entry((&e.region, &e.log_group, &e.log_stream))
                .or_insert((e.timestamp, e.timestamp, 0));
            entry.0 = entry.0.min(e.timestamp);
            entry.1 = entry.1.max(e.timestamp);
            entry.2 += e.message.len() as i64;
        }
    }
    let mut group_st = c.prepare_cached(
        "INSERT OR IGNORE INTO log_groups (region, name, creation_time) VALUES (?1, ?2, ?3)",
    )?;
    let mut stream_st = c.prepare_cached(
        "INSERT INTO log_streams
             (region, log_group, name, creation_time, first_event, last_event, last_ingestion, stored_bytes, upload_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?4, ?7, 1)
         ON CONFLICT (region, log_group, name) DO UPDATE SET
             first_event = MIN(COALESCE(first_event, excluded.first_event), excluded.first_event),
             last_event = MAX(COALESCE(last_event, excluded.last_event), excluded.last_event),
             last_ingestion = excluded.last_ingestion,
             stored_bytes = stored_bytes + excluded.stored_bytes,
             upload_seq = upload_seq + 1",
    )?;
    for ((region, group, stream), (first, last, bytes)) in streams {
        group_st.execute(params![region, group, ingestion])?;
        stream_st.execute(params![
            region, group, stream, ingestion, first, last, bytes
        ])?;
    }
    Ok(seqs)
}

fn log_writer(mut conn: Connection, queue: Arc<(Mutex<LogQueue>, Condvar)>) {
    let (m, cv) = &*queue;
    loop {
        let (batch, flushes) = {
            let mut q = m.lock().unwrap_or_else(|p| p.into_inner());
            if q.events.len() < LOG_WAKE_AT && q.flushes.is_empty() {
                q = cv
                    .wait_timeout(q, LOG_COMMIT_INTERVAL)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            // The store handles are gone: only this thread holds the queue.
            if Arc::strong_count(&queue) == 1 && q.events.is_empty() {
                q.closed = true;
                return;
            }
            (
                std::mem::take(&mut q.events),
                std::mem::take(&mut q.flushes),
            )
        };
        if !batch.is_empty() {
            let ingestion = now_ms();
            let res: rusqlite::Result<()> = (|| {
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                insert_log_events(&tx, &batch, ingestion)?;
                tx.commit()
            })();
            if let Err(e) = res {
                eprintln!("stratus: writing {} log events failed: {e}", batch.len());
            }
        }
        for f in flushes {
            let _ = f.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> PathBuf {
        let d = std::env::temp_dir().join(format!("stratus-store-test-{}", stratus_core::hex32()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn group_commit_isolates_failures_and_persists() {
        let d = tmp();
        let s = Store::open(&d).unwrap();
        s.migrate("CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            .unwrap();
        let mut handles = Vec::new();
        for i in 0..200i64 {
            let s = s.clone();
            handles.push(tokio::spawn(async move {
                s.write(move |tx| {
                    tx.execute("INSERT INTO t (k, v) VALUES (?1, 'x')", params![i])?;
                    if i % 10 == 0 {
                        // Fails: duplicate key. Only this write is undone.
                        tx.execute("INSERT INTO t (k, v) VALUES (?1, 'y')", params![i])?;
                    }
                    Ok(i)
                })
                .await
            }));
        }
        let mut failed = 0;
        for h in handles {
            if h.await.unwrap().is_err() {
                failed += 1;
            }
        }
        assert_eq!(failed, 20);
        let n: i64 = s
            .read(|c| c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(n, 180);
        drop(s);
        let s = Store::open(&d).unwrap();
        let n: i64 = s
            .read(|c| c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(n, 180);
        let v = s
            .write_blocking(|tx| {
                tx.query_row("SELECT v FROM t WHERE k = 1", [], |r| r.get::<_, String>(0))
            })
            .unwrap();
        assert_eq!(v, "x");
    }

    #[test]
    fn resources_roundtrip() {
        let d = tmp();
        let s = Store::open(&d).unwrap();
        assert!(s.insert_new("function", "us-east-1", "a", "{}").unwrap());
        assert!(
            !s.insert_new("function", "us-east-1", "a", "{\"x\":1}")
                .unwrap()
        );
        assert_eq!(
            s.get("function", "us-east-1", "a").unwrap().as_deref(),
            Some("{}")
        );
        assert_eq!(s.get("function", "eu-west-1", "a").unwrap(), None);
        s.put("function", "us-east-1", "b", "{\"b\":1}").unwrap();
        assert_eq!(s.list("function", "us-east-1").unwrap().len(), 2);
        assert!(s.delete("function", "us-east-1", "a").unwrap());
        assert!(!s.delete("function", "us-east-1", "a").unwrap());
        drop(s);
        let s = Store::open(&d).unwrap();
        assert_eq!(
            s.list("function", "us-east-1").unwrap(),
            vec![("b".into(), "{\"b\":1}".into())]
        );
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn metrics_add_up() {
        let d = tmp();
        let s = Store::open(&d).unwrap();
        let row = MetricRow {
            region: "us-east-1".into(),
            function_name: "f".into(),
            dimension: "function".into(),
            minute: 60_000,
            invocations: 2,
            concurrent_executions: 3,
            duration_sum_ms: 10.0,
            duration_count: 2,
            duration_max_ms: 6.0,
            gb_seconds_x86_64: 0.5,
            ..Default::default()
        };
        s.add_metrics(std::slice::from_ref(&row)).unwrap();
        let mut again = row.clone();
        again.concurrent_executions = 1;
        again.duration_max_ms = 9.0;
        s.add_metrics(&[again]).unwrap();
        drop(s);
        let s = Store::open(&d).unwrap();
        let got = s
            .read_metrics(&MetricQuery {
                function_name: Some("f"),
                since_ms: Some(60_000),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].invocations, 4);
        assert_eq!(got[0].concurrent_executions, 3);
        assert_eq!(got[0].duration_max_ms, 9.0);
        assert_eq!(got[0].gb_seconds_x86_64, 1.0);
        let none = s
            .read_metrics(&MetricQuery {
                since_ms: Some(120_000),
                ..Default::default()
            })
            .unwrap();
        assert!(none.is_empty());
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn logs_roundtrip() {
        let d = tmp();
        let s = Store::open(&d).unwrap();
        for i in 0..10 {
            s.append_log(LogEvent {
                region: "us-east-1".into(),
                log_group: "/aws/lambda/f".into(),
                log_stream: if i % 2 == 0 { "s0".into() } else { "s1".into() },
                timestamp: i,
                message: format!("line {i}"),
            });
        }
        s.flush_logs();
        let all = s
            .read_logs("us-east-1", "/aws/lambda/f", None, 0, 100)
            .unwrap();
        assert_eq!(all.len(), 10);
        assert_eq!(all[3].event.message, "line 3");
        let s1 = s
            .read_logs("us-east-1", "/aws/lambda/f", Some("s1"), 0, 100)
            .unwrap();
        assert_eq!(s1.len(), 5);
        let after = s
            .read_logs("us-east-1", "/aws/lambda/f", None, all[7].seq, 100)
            .unwrap();
        assert_eq!(after.len(), 2);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn log_writes_keep_groups_and_streams() {
        let d = tmp();
        let s = Store::open(&d).unwrap();
        for (ts, msg) in [(20, "b"), (10, "aa"), (30, "ccc")] {
            s.append_log(LogEvent {
                region: "us-east-1".into(),
                log_group: "/aws/lambda/g".into(),
                log_stream: "st".into(),
                timestamp: ts,
                message: msg.into(),
            });
        }
        s.flush_logs();
        let (first, last, bytes): (i64, i64, i64) = s
            .read(|c| {
                c.query_row(
                    "SELECT first_event, last_event, stored_bytes FROM log_streams
                     WHERE region = 'us-east-1' AND log_group = '/aws/lambda/g' AND name = 'st'",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
            })
            .unwrap();
        assert_eq!((first, last, bytes), (10, 30, 6));
        let groups: i64 = s
            .read(|c| {
                c.query_row(
                    "SELECT COUNT(*) FROM log_groups WHERE name = '/aws/lambda/g'",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap();
        assert_eq!(groups, 1);
        std::fs::remove_dir_all(d).unwrap();
    }
}
