//! Named points in the flow engine where a test can stop a job dead, to prove that a run
//! survives a worker dying at that exact instant: everything the job wrote before the point
//! stays, nothing after it happens, and the job is never acknowledged. The test arms points on
//! one worker's `Services`, waits until they are reached, then kills that worker (its runtime),
//! which is what a SIGKILL does to a process; or the job stalls there and then goes on, as a
//! process that was paused does. Unarmed (always, outside tests) a point is one branch on
//! `None`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use uuid::Uuid;

/// A place in the engine between two writes that a crash could separate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrashPoint {
    /// A delay's, reply wait's or retry's wake-up is in the queue; the run is not yet saved as
    /// parked.
    WakeQueued,
    /// The run is saved as parked (WAITING, or RUNNING until a retry).
    Parked,
    /// A wake-up that came early is back in the queue for its time.
    WakeRescheduled,
    /// A job found the run held by another worker and queued its retry.
    HeldRetryQueued,
    /// A reply was taken and saved; the steps after the wait have not run.
    ReplyTaken,
    /// The run is saved as finished; the next run of its concurrency key is not yet released.
    Finished,
}

/// The points armed on one worker, each for one run. Cheap to clone; `Default` arms nothing.
#[derive(Clone, Default)]
pub struct CrashPoints {
    armed: Option<Arc<Armed>>,
}

/// What a job does at an armed point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Stops for good, as if its process died there.
    Stop,
    /// Blocks its thread this long, as a process that stalls (swapped out, paused by a
    /// debugger) does: no progress, no lease renewal, then on as if nothing happened.
    Stall(Duration),
}

struct Armed {
    points: Mutex<HashMap<(CrashPoint, Uuid), Action>>,
    reached: tokio::sync::watch::Sender<usize>,
}

impl std::fmt::Debug for CrashPoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.armed.is_some() {
            "CrashPoints(armed)"
        } else {
            "CrashPoints(none)"
        })
    }
}

impl CrashPoints {
    /// Crash points to arm one by one; the receiver counts the points reached so far.
    pub fn new() -> (Self, tokio::sync::watch::Receiver<usize>) {
        let (reached, receiver) = tokio::sync::watch::channel(0);
        let armed = Armed {
            points: Mutex::new(HashMap::new()),
            reached,
        };
        (
            Self {
                armed: Some(Arc::new(armed)),
            },
            receiver,
        )
    }

    /// The first job of `run_id` to reach `point` stops there for good.
    pub fn arm(&self, point: CrashPoint, run_id: Uuid) {
        self.set(point, run_id, Action::Stop);
    }

    /// The first job of `run_id` to reach `point` blocks its thread for `stall`, then goes on.
    pub fn stall(&self, point: CrashPoint, run_id: Uuid, stall: Duration) {
        self.set(point, run_id, Action::Stall(stall));
    }

    fn set(&self, point: CrashPoint, run_id: Uuid, action: Action) {
        let armed = self.armed.as_ref().expect("made by CrashPoints::new");
        armed
            .points
            .lock()
            .expect("crash points lock")
            .insert((point, run_id), action);
    }

    /// Passes `point` for `run_id`: at once unless it is armed for that run.
    pub(crate) async fn pass(&self, point: CrashPoint, run_id: Uuid) {
        let Some(armed) = &self.armed else {
            return;
        };
        let action = armed
            .points
            .lock()
            .expect("crash points lock")
            .remove(&(point, run_id));
        let Some(action) = action else {
            return;
        };
        tracing::warn!(?point, %run_id, ?action, "crash point reached");
        armed.reached.send_modify(|n| *n += 1);
        match action {
            Action::Stop => std::future::pending::<()>().await,
            Action::Stall(stall) => std::thread::sleep(stall),
        }
    }
}
