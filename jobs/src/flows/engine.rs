//! The engine: runs a flow run from its saved position until it finishes, fails, or parks (a
//! delay, a wait for a reply, a retry's backoff). One worker at a time holds a run (a lease on
//! its row, renewed while it works and expiring if the worker dies); the state is saved around
//! every side effect and when the run parks or ends, so whichever worker picks the run up next
//! continues from there (`Executor` says why that is enough).
//! The walk through the steps is `interpreter`'s; `executor` is its effects for a run.

use std::time::Duration;

use sea_orm::EntityTrait;
use uuid::Uuid;
use waflow_entities::{enums::RunStatus, flow_run};

use super::{
    FlowJob,
    executor::Executor,
    interpreter,
    lease::{Lease, Taken, Which},
    runs,
    state::RunState,
    versions,
};
use crate::{Services, crash_points::CrashPoint, error::Result};

/// How soon a job that found its run held by another worker tries again.
const HELD_RETRY: Duration = Duration::from_secs(1);

/// Runs of one concurrency key that one job runs one after the other, each handed on by the
/// end of the one before (no trip through the queue and its poll); the run after them goes
/// through the queue, so that a job ends and a busy key does not keep a worker's slot for good.
const MAX_HANDOFFS: usize = 100;

pub use super::executor::Resume;

pub fn is_finished(status: RunStatus) -> bool {
    matches!(
        status,
        RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
    )
}

/// The flow job: continues the run if no other worker holds it, then the runs of its
/// concurrency key that its end lets start.
///
/// Every job is a poke: whatever it carries, it does what the run's row says is due. So a job
/// delivered twice, late, or after its worker died does no harm, and one that finds nothing
/// due leaves the run to the wake-up that is due later. A job whose worker dies in the middle
/// of a hand-off is delivered again, finds its run finished and releases the next one (whose
/// lease, taken by the dead worker, expires).
pub async fn execute(services: &Services, run_id: Uuid, resume: Resume) -> Result<()> {
    let Some(taken) = Lease::take(services, &services.db, Which::Run(run_id)).await? else {
        return not_taken(services, run_id, resume).await;
    };
    let mut next = run_taken(services, taken, resume).await?;
    for _ in 0..MAX_HANDOFFS {
        let Some(taken) = next else {
            return Ok(());
        };
        next = run_taken(services, taken, Resume::Token(None)).await?;
    }
    match next {
        Some(taken) => {
            taken.lease.release(services).await?;
            runs::poke(services, taken.run.id, None).await
        }
        None => Ok(()),
    }
}

/// Continues a run this job holds; answers the next run of its concurrency key, taken, when
/// this one ended.
async fn run_taken(services: &Services, taken: Taken, resume: Resume) -> Result<Option<Taken>> {
    let Taken { lease, run } = taken;
    let run_id = run.id;
    let work = run_locked(services, &lease, run, resume);
    tokio::pin!(work);
    let mut renew = tokio::time::interval(services.runs.lease / 3);
    renew.tick().await;
    let outcome = loop {
        tokio::select! {
            outcome = &mut work => break outcome,
            _ = renew.tick() => {
                if let Err(error) = lease.extend(services).await {
                    tracing::warn!(%run_id, %error, "cannot renew the hold on a flow run");
                }
            }
        }
    };
    match outcome {
        // Parked or ended: the save that said so gave the run up.
        Ok(Ended {
            released: true,
            next,
        }) => Ok(next),
        Ok(Ended {
            released: false, ..
        }) => lease.release(services).await.map(|()| None),
        Err(error) => {
            lease.release(services).await?;
            Err(error)
        }
    }
}

/// The run could not be taken: it is gone, finished, held by another job, or waiting for an
/// earlier run of its concurrency key.
async fn not_taken(services: &Services, run_id: Uuid, resume: Resume) -> Result<()> {
    let Some(run) = flow_run::Entity::find_by_id(run_id)
        .one(&services.db)
        .await?
    else {
        return Ok(());
    };
    if is_finished(run.status) {
        // Mostly a stale wake-up. It may also be the job of a worker that died after saving the
        // run's end and before handing on the next run of its concurrency key: release it again
        // (a second release only pokes a run that checks for itself whether it may start).
        return runs::release_next(services, &run).await;
    }
    let free = run
        .locked_until
        .is_none_or(|until| until < chrono::Utc::now());
    if run.status == RunStatus::Queued && free {
        // An earlier run of its key has not finished: that one's end takes this one.
        return Ok(());
    }
    let job = match resume {
        Resume::Token(token) => FlowJob::Run { run_id, token },
        Resume::Reply(reply) => FlowJob::Reply { run_id, reply },
    };
    services.jobs.flows.push(job, Some(HELD_RETRY)).await?;
    services
        .crash_points
        .pass(CrashPoint::HeldRetryQueued, run_id)
        .await;
    Ok(())
}

/// How a job's work on a run ended.
#[derive(Default)]
struct Ended {
    /// The run's last save gave up the lease (it parked or ended).
    released: bool,
    /// The next run of the concurrency key, taken, when this run ended.
    next: Option<Taken>,
}

async fn run_locked(
    services: &Services,
    lease: &Lease,
    run: flow_run::Model,
    resume: Resume,
) -> Result<Ended> {
    let Some(version) = versions::find(services, run.flow_version_id).await? else {
        return Ok(Ended::default());
    };
    let state: RunState =
        serde_json::from_value(run.state.clone()).unwrap_or_else(|_| RunState::new());
    let definition = version.definition.clone();
    let mut executor = Executor::new(services, lease, run, state, definition.clone());
    match definition {
        None => {
            executor
                .fail_run(None, "the flow version's definition cannot be read".into())
                .await?
        }
        Some(definition) => {
            if executor.resume(resume).await? {
                interpreter::advance(&mut executor, &definition).await?;
            }
        }
    }
    Ok(Ended {
        released: executor.released,
        next: executor.next,
    })
}
