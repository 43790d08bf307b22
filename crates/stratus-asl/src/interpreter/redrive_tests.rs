//! Redrive in the engine ("Redriving executions", Step Functions Developer
//! Guide): a redriven execution continues from its unsuccessful steps;
//! successful steps keep their results and do not run again; a rerun
//! state's retries start again from attempt 0; in a Parallel only the
//! failed branches and in an inline Map only the failed iterations run
//! again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use super::*;

type Behaviour = dyn Fn(&TaskCall, u32) -> Result<Value, Failure> + Send + Sync;

/// Task results by key, each with the run that recorded it.
type Journal = HashMap<String, (Result<Value, Failure>, u32)>;

/// A host with a journal, as a durable service keeps one: task results by
/// key, each with the run (0 = original, n = n-th redrive) that recorded
/// it. `generation` is the current run.
struct JournalHost {
    generation: u32,
    redriven_at: Option<i64>,
    journal: Mutex<Journal>,
    /// Keys of the calls that really ran in the current run.
    ran: Mutex<Vec<String>>,
    sleeps: Mutex<Vec<(String, i64)>>,
    next_id: AtomicU64,
    behaviour: Box<Behaviour>,
}

impl JournalHost {
    fn new(
        behaviour: impl Fn(&TaskCall, u32) -> Result<Value, Failure> + Send + Sync + 'static,
    ) -> JournalHost {
        JournalHost {
            generation: 0,
            redriven_at: None,
            journal: Mutex::new(HashMap::new()),
            ran: Mutex::new(Vec::new()),
            sleeps: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            behaviour: Box::new(behaviour),
        }
    }

    /// The next run: same journal, one redrive later.
    fn redrive(mut self) -> JournalHost {
        self.generation += 1;
        self.redriven_at = Some(1_800_000_000_000);
        self.ran = Mutex::new(Vec::new());
        self
    }

    fn ran(&self) -> Vec<String> {
        let mut v = self.ran.lock().unwrap().clone();
        v.sort();
        v
    }
}

impl Host for JournalHost {
    fn call_task<'a>(&'a self, call: TaskCall) -> BoxFuture<'a, Result<Value, Failure>> {
        let r = {
            let mut j = self.journal.lock().unwrap();
            match j.get(&call.key) {
                Some((r, _)) => r.clone(),
                None => {
                    let r = (self.behaviour)(&call, self.generation);
                    j.insert(call.key.clone(), (r.clone(), self.generation));
                    self.ran.lock().unwrap().push(call.key.clone());
                    r
                }
            }
        };
        Box::pin(async move { r })
    }
    fn now_ms(&self) -> i64 {
        self.redriven_at.unwrap_or(1_700_000_000_000)
    }
    fn sleep_until<'a>(&'a self, key: &'a str, until_ms: i64) -> BoxFuture<'a, ()> {
        self.sleeps
            .lock()
            .unwrap()
            .push((key.to_string(), until_ms));
        Box::pin(async {})
    }
    fn random_u64(&self, _key: &str) -> u64 {
        7
    }
    fn task_token(&self, key: &str) -> String {
        format!("token-{key}")
    }
    fn record(&self, _event_type: &str, _previous_event_id: u64, _details: Value) -> u64 {
        self.next_id.fetch_add(1, Ordering::SeqCst) + 1
    }
    fn task_generation(&self, key: &str) -> Option<u32> {
        self.journal.lock().unwrap().get(key).map(|(_, g)| *g)
    }
    fn redriven_at_ms(&self) -> Option<i64> {
        self.redriven_at
    }
}

fn run(def: &Value, input: Value, host: &JournalHost) -> Result<Value, Failure> {
    let m = StateMachine::parse(&def.to_string()).unwrap_or_else(|d| panic!("{d:?}"));
    let mut i = super::tests::support::info();
    i.redrive_count = host.generation;
    futures::executor::block_on(execute(&m, input, &i, host))
}

const FN: &str = "arn:aws:lambda:us-east-1:123456789012:function:f";

fn task(next: Option<&str>) -> Value {
    let mut t = json!({"Type": "Task", "Resource": FN});
    match next {
        Some(n) => t["Next"] = json!(n),
        None => t["End"] = json!(true),
    }
    t
}

/// Fails the calls of state `name` in the runs before `fixed_in`.
fn fails_until(
    name: &'static str,
    fixed_in: u32,
) -> impl Fn(&TaskCall, u32) -> Result<Value, Failure> {
    move |c: &TaskCall, generation: u32| {
        if c.state_name == name && generation < fixed_in {
            Err(Failure::new("Boom", format!("{} failed", c.key)))
        } else {
            Ok(json!({"from": c.state_name}))
        }
    }
}

#[test]
fn a_redrive_reruns_the_failed_task_only() {
    let def = json!({"StartAt": "A", "States": {
        "A": task(Some("B")), "B": task(Some("C")), "C": task(None)}});
    let host = JournalHost::new(fails_until("B", 1));
    let f = run(&def, json!({}), &host).unwrap_err();
    assert_eq!(f.error, "Boom");
    assert_eq!(host.ran(), ["A#1", "B#1"]);
    let host = host.redrive();
    let out = run(&def, json!({}), &host).unwrap();
    assert_eq!(out, json!({"from": "C"}));
    // A kept its result; B ran again under the redrive's key, then C.
    assert_eq!(host.ran(), ["B~1#1", "C#1"]);
}

#[test]
fn retries_start_again_at_attempt_zero() {
    let def = json!({"StartAt": "B", "States": {"B": {"Type": "Task", "Resource": FN,
        "Retry": [{"ErrorEquals": ["Boom"], "MaxAttempts": 2, "IntervalSeconds": 1}],
        "Parameters": {"retry.$": "$$.State.RetryCount", "redrive.$": "$$.Execution.RedriveCount"},
        "End": true}}});
    let host = JournalHost::new(|c: &TaskCall, generation: u32| {
        // The first run always fails; the redrive fails once, then works.
        if generation == 0 || c.input["retry"] == json!(0) {
            Err(Failure::new("Boom", ""))
        } else {
            Ok(c.input.clone())
        }
    });
    assert!(run(&def, json!({}), &host).is_err());
    assert_eq!(host.ran(), ["B#1", "B#2", "B#3"]);
    let host = host.redrive();
    let out = run(&def, json!({}), &host).unwrap();
    assert_eq!(out, json!({"retry": 1, "redrive": 1}));
    assert_eq!(host.ran(), ["B~1#1", "B~1#2"]);
}

#[test]
fn a_failure_of_the_current_run_is_not_rerun() {
    let def = json!({"StartAt": "A", "States": {"A": task(Some("B")), "B": task(None)}});
    // B fails in the original run and in the first redrive.
    let host = JournalHost::new(fails_until("B", 2));
    assert!(run(&def, json!({}), &host).is_err());
    let host = host.redrive();
    assert!(run(&def, json!({}), &host).is_err());
    assert_eq!(host.ran(), ["B~1#1"], "one rerun per redrive");
    // The second redrive replays the first one's failed rerun, then runs B
    // once more.
    let host = host.redrive();
    assert_eq!(run(&def, json!({}), &host).unwrap(), json!({"from": "B"}));
    assert_eq!(host.ran(), ["B~2#1"]);
}

#[test]
fn a_task_without_a_recorded_result_runs_once() {
    // An aborted execution: its task in flight recorded no result. The
    // redrive runs it (once), and a failure now is the redrive's own.
    let def = json!({"StartAt": "A", "States": {"A": task(Some("B")), "B": task(None)}});
    let host = JournalHost::new(fails_until("B", 5)).redrive();
    host.journal
        .lock()
        .unwrap()
        .insert("A#1".into(), (Ok(json!({"a": 1})), 0));
    assert!(run(&def, json!({}), &host).is_err());
    assert_eq!(host.ran(), ["B#1"]);
}

#[test]
fn only_the_failed_parallel_branch_runs_again() {
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true,
        "Branches": [
            {"StartAt": "Ok", "States": {"Ok": task(None)}},
            {"StartAt": "B", "States": {"B": task(None)}}]}}});
    let host = JournalHost::new(fails_until("B", 1));
    assert!(run(&def, json!({}), &host).is_err());
    let host = host.redrive();
    let out = run(&def, json!({}), &host).unwrap();
    assert_eq!(out, json!([{"from": "Ok"}, {"from": "B"}]));
    assert_eq!(host.ran(), ["P#1/Branch[1]/B~1#1"]);
}

#[test]
fn only_the_failed_map_iterations_run_again() {
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true,
        "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Task", "Resource": FN, "End": true}}}}}});
    let host = JournalHost::new(|c: &TaskCall, generation: u32| {
        if c.input == json!(2) && generation == 0 {
            Err(Failure::new("Boom", ""))
        } else {
            Ok(json!({"item": c.input}))
        }
    });
    assert!(run(&def, json!([1, 2, 3]), &host).is_err());
    let host = host.redrive();
    let out = run(&def, json!([1, 2, 3]), &host).unwrap();
    assert_eq!(out, json!([{"item": 1}, {"item": 2}, {"item": 3}]));
    let ran = host.ran();
    assert!(ran.contains(&"M#1/Map[1]/I~1#1".to_string()), "{ran:?}");
    // Item 1 succeeded in the original run (item 3 too, unless the Map
    // stopped it when item 2 failed): neither reruns a recorded result.
    assert!(!ran.iter().any(|k| k.starts_with("M#1/Map[0]/")), "{ran:?}");
    assert!(!ran.iter().any(|k| k == "M#1/Map[1]/I#1"), "{ran:?}");
}

#[test]
fn a_failure_an_enclosing_state_caught_is_not_rerun() {
    // The branch's failure was caught by the Parallel's Catch in the
    // original run; the execution then failed in Fallback. The redrive
    // reruns Fallback, not the caught branch.
    let def = json!({"StartAt": "P", "States": {
        "P": {"Type": "Parallel", "Next": "Done",
              "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Fallback"}],
              "Branches": [{"StartAt": "B", "States": {"B": task(None)}}]},
        "Fallback": task(None),
        "Done": {"Type": "Succeed"}}});
    let host = JournalHost::new(|c: &TaskCall, generation: u32| {
        if generation == 0 || c.state_name == "B" {
            Err(Failure::new("Boom", ""))
        } else {
            Ok(json!({"from": c.state_name}))
        }
    });
    assert!(run(&def, json!({}), &host).is_err());
    assert_eq!(host.ran(), ["Fallback#1", "P#1/Branch[0]/B#1"]);
    let host = host.redrive();
    assert_eq!(
        run(&def, json!({}), &host).unwrap(),
        json!({"from": "Fallback"})
    );
    assert_eq!(host.ran(), ["Fallback~1#1"]);
}

#[test]
fn the_execution_timeout_counts_from_the_redrive() {
    let def = json!({"TimeoutSeconds": 60, "StartAt": "A", "States": {"A": task(None)}});
    let host = JournalHost::new(fails_until("A", 1));
    assert!(run(&def, json!({}), &host).is_err());
    let host = host.redrive();
    run(&def, json!({}), &host).unwrap();
    let sleeps = host.sleeps.lock().unwrap().clone();
    assert!(
        sleeps.contains(&("$execution/timeout~1".to_string(), 1_800_000_060_000)),
        "{sleeps:?}"
    );
}

#[test]
fn a_wait_cut_short_by_the_execution_timeout_leaves_its_own_timer_unspent() {
    // The Wait would end after the deadline: it sleeps on the execution's
    // timeout timer, so a redrive (with a new deadline) computes the Wait's
    // own timer afresh instead of finding it spent.
    let def = json!({"TimeoutSeconds": 3, "StartAt": "Pause", "States": {
        "Pause": {"Type": "Wait", "Seconds": 5, "End": true}}});
    let host = JournalHost::new(|_: &TaskCall, _: u32| Ok(json!({})));
    let f = run(&def, json!({}), &host).unwrap_err();
    assert_eq!(f.error, "States.Timeout");
    let sleeps = host.sleeps.lock().unwrap().clone();
    assert!(
        !sleeps.is_empty()
            && sleeps
                .iter()
                .all(|(k, until)| k == "$execution/timeout" && *until == 1_700_000_003_000),
        "{sleeps:?}"
    );
    let host = host.redrive();
    host.sleeps.lock().unwrap().clear();
    assert!(run(&def, json!({}), &host).is_err());
    let sleeps = host.sleeps.lock().unwrap().clone();
    assert!(
        !sleeps.is_empty()
            && sleeps
                .iter()
                .all(|(k, until)| k == "$execution/timeout~1" && *until == 1_800_000_003_000),
        "{sleeps:?}"
    );
}
