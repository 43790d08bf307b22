//! Runs parsing and evaluation on a thread with a large stack, so the depth
//! limits (not the caller's thread stack size) decide how deep an expression
//! may nest.

use std::cell::Cell;
use std::sync::Mutex;

/// Stack size of the worker thread: 256 MiB of address space, committed only
/// as it is used.
const STACK_BYTES: usize = 256 * 1024 * 1024;

thread_local! {
    static ON_LARGE_STACK: Cell<bool> = const { Cell::new(false) };
}

/// Whether the current thread is one started by [`with_large_stack`].
pub(crate) fn on_large_stack() -> bool {
    ON_LARGE_STACK.with(|c| c.get())
}

/// Runs `f` on a scoped thread with a [`STACK_BYTES`] stack, or inline when
/// already on one or when no thread can be started (the depth limits are then
/// reduced by the caller through [`on_large_stack`]).
pub(crate) fn with_large_stack<T: Send, F: FnOnce() -> T + Send>(f: F) -> T {
    if on_large_stack() {
        return f();
    }
    let cell = Mutex::new(Some(f));
    let spawned = std::thread::scope(|s| {
        let cell = &cell;
        let handle = std::thread::Builder::new()
            .name("jsonata".into())
            .stack_size(STACK_BYTES)
            .spawn_scoped(s, move || {
                ON_LARGE_STACK.with(|c| c.set(true));
                let job = cell.lock().ok().and_then(|mut g| g.take());
                job.map(|g| g())
            });
        match handle {
            Ok(h) => match h.join() {
                Ok(v) => v,
                Err(p) => std::panic::resume_unwind(p),
            },
            Err(_) => None,
        }
    });
    if let Some(v) = spawned {
        return v;
    }
    let job = match cell.into_inner() {
        Ok(j) => j,
        Err(poisoned) => poisoned.into_inner(),
    };
    match job {
        Some(g) => g(),
        None => unreachable!("the job runs exactly once"),
    }
}
