//! Group commit: many writers, one SQLite transaction per round.
//!
//! Services that must not acknowledge before their data is durable (an
//! asynchronous invoke's 202, an SQS `SendMessage`, a Step Functions history
//! event) hand a closure to [`Store::write`]. A dedicated writer thread runs
//! every closure queued since its last round inside one transaction, each
//! within its own savepoint (so one failing closure does not undo the
//! others), commits, and only then completes the callers' futures. Under
//! load a round carries hundreds of writes for the cost of one commit; idle,
//! a write costs one commit.
//!
//! Each round is a `BEGIN IMMEDIATE` transaction: it takes the write lock
//! first (waiting for other writers up to the busy timeout) instead of
//! upgrading a read snapshot, which in WAL mode fails at once with
//! `SQLITE_BUSY` when another connection committed in between.
//!
//! Durability: the database is in WAL mode with `synchronous=NORMAL`, so a
//! committed round survives the process being killed (SIGKILL); it may not
//! survive a power loss (SQLite's documented trade-off for NORMAL in WAL).

use std::sync::{Arc, Condvar, Mutex};
use std::thread;

use rusqlite::Connection;

use crate::{StoreError, StoreResult};

type Completion = Box<dyn FnOnce(Option<&StoreError>) + Send>;
type Job = Box<dyn FnOnce(&mut rusqlite::Transaction<'_>) -> Completion + Send>;

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    closed: bool,
}

/// The queue of the group-commit writer thread.
#[derive(Clone)]
pub(crate) struct Committer {
    queue: Arc<(Mutex<Queue>, Condvar)>,
}

impl Committer {
    /// Starts the writer thread on its own connection.
    pub(crate) fn start(conn: Connection) -> StoreResult<Committer> {
        let queue: Arc<(Mutex<Queue>, Condvar)> = Arc::default();
        let q = queue.clone();
        thread::Builder::new()
            .name("stratus-committer".into())
            .spawn(move || run(conn, q))
            .map_err(|e| StoreError(e.to_string()))?;
        Ok(Committer { queue })
    }

    fn push(&self, job: Job) -> StoreResult<()> {
        let (m, cv) = &*self.queue;
        let mut q = m.lock().unwrap_or_else(|p| p.into_inner());
        if q.closed {
            return Err(StoreError("the store is closed".into()));
        }
        q.jobs.push(job);
        if q.jobs.len() == 1 {
            cv.notify_one();
        }
        Ok(())
    }

    /// Queues `f`; `done` receives its result once the round committed.
    pub(crate) fn submit<T, F, D>(&self, f: F, done: D) -> StoreResult<()>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
        D: FnOnce(StoreResult<T>) + Send + 'static,
    {
        self.push(Box::new(move |tx: &mut rusqlite::Transaction<'_>| {
            let outcome = match tx.savepoint() {
                Err(e) => Err(StoreError::from(e)),
                Ok(mut sp) => match f(&sp) {
                    Ok(v) => match sp.commit() {
                        Ok(()) => Ok(v),
                        Err(e) => Err(StoreError::from(e)),
                    },
                    Err(e) => {
                        let _ = sp.rollback();
                        Err(StoreError::from(e))
                    }
                },
            };
            Box::new(
                move |commit_error: Option<&StoreError>| match (outcome, commit_error) {
                    (Ok(_), Some(e)) => done(Err(StoreError(e.0.clone()))),
                    (outcome, _) => done(outcome),
                },
            ) as Completion
        }))
    }
}

fn run(mut conn: Connection, queue: Arc<(Mutex<Queue>, Condvar)>) {
    let (m, cv) = &*queue;
    loop {
        let jobs = {
            let mut q = m.lock().unwrap_or_else(|p| p.into_inner());
            while q.jobs.is_empty() {
                // Only this thread holds the queue: every Store is gone.
                if Arc::strong_count(&queue) == 1 {
                    q.closed = true;
                    return;
                }
                q = cv
                    .wait_timeout(q, std::time::Duration::from_millis(200))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            std::mem::take(&mut q.jobs)
        };
        let mut completions = Vec::with_capacity(jobs.len());
        let result = (|| -> StoreResult<()> {
            let mut tx =
                conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for job in jobs {
                completions.push(job(&mut tx));
            }
            tx.commit()?;
            Ok(())
        })();
        let err = result.err();
        for c in completions {
            c(err.as_ref());
        }
    }
}
