//! A job's hold on a flow run, so that one worker at a time runs it: taken when the run's
//! lease is free or expired, renewed while the job works (`engine::execute`), given up when the
//! run parks or ends (in the same statement that saves it, `runs::save`) or otherwise at the
//! end of the job, and expiring by itself if the worker dies.

use chrono::Utc;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QueryTrait, Statement,
    sea_query::Expr,
};
use uuid::Uuid;
use waflow_entities::flow_run;

use crate::{Services, error::Result};

/// An earlier run with the same concurrency key as the run `flow_run` that has not finished:
/// an SQL condition on `flow_run`, the one statement of the rule by which the runs of a key go
/// one at a time, in the order they came. `$lock` ends each subquery (a locking clause, or
/// nothing).
///
/// One `EXISTS` per unfinished status, each an equality on the status, so that each reads only
/// the key's runs in that status through the key's index. One condition `status IN (…) OR
/// (status = 'QUEUED' AND id < …)` made PostgreSQL read every run the key ever had (5,185
/// finished runs filtered per take in `bench runs --same-customer`, 5 ms and growing), and even
/// `status IN ('RUNNING', 'WAITING')` alone was left to a filter by a generic plan that found
/// two index descents dearer than one.
macro_rules! earlier_unfinished {
    ($lock:literal) => {
        concat!(
            "(",
            earlier_where!("RUNNING", "earlier.id <> flow_run.id", $lock),
            " OR ",
            earlier_where!("WAITING", "earlier.id <> flow_run.id", $lock),
            " OR ",
            earlier_where!("QUEUED", "earlier.id < flow_run.id", $lock),
            ")"
        )
    };
}

/// A run `earlier` of the same flow and concurrency key as `flow_run`, in `$status`, matches
/// `$condition`.
macro_rules! earlier_where {
    ($status:literal, $condition:literal, $lock:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM flow_run AS earlier WHERE ",
            key_in_status!("earlier", $status, "flow_run.concurrency_key"),
            " AND ",
            $condition,
            " AND ",
            same_flow!("earlier.flow_id", "flow_run.flow_id"),
            $lock,
            ")"
        )
    };
}

/// The run `$run` (an alias of `flow_run`) has the concurrency key `$key` (an SQL expression)
/// and the status `$status`, in the terms of the key's index (migration
/// `m0023_key_lookup_index`): the status as the expression `status || ''`, which no other
/// index has, so that PostgreSQL looks a key's runs up through that index whether or not the
/// table has statistics. As a column, `status = …` was answered as cheaply by `(status,
/// wake_at)` on a young table, and plans made then read every running run per lookup. The key
/// stays a column: in one expression with the status, its equality was estimated at 0.5% of
/// the table, and the plan was a bitmap scan of all of a key's queued runs where the lookup
/// needs the first (one customer's runs: 285 → 109 runs/s).
macro_rules! key_in_status {
    ($run:literal, $status:literal, $key:literal) => {
        concat!(
            $run,
            ".concurrency_key = ",
            $key,
            " AND ",
            $run,
            ".status || '' = '",
            $status,
            "'"
        )
    };
}

/// Two runs' flows are the same, for the lookups of a key's runs: `IS NOT DISTINCT FROM`
/// (`flow_id` is never null, so it means `=`) because no index answers it. With `=` the index
/// on `(flow_id, status)` competed with the key's index on a table without statistics, and
/// plans made then read the flow's whole backlog of queued runs per lookup (2,865 filtered per
/// insert in `bench runs`, 4 ms of PostgreSQL's CPU per run).
macro_rules! same_flow {
    ($run:literal, $other:literal) => {
        concat!($run, " IS NOT DISTINCT FROM ", $other)
    };
}

/// The first queued run of the concurrency key `$key` in the flow `$flow` (SQL parameters):
/// a `SELECT` of its id.
macro_rules! next_of_key {
    ($key:literal, $flow:literal) => {
        concat!(
            "SELECT queued.id FROM flow_run AS queued WHERE ",
            key_in_status!("queued", "QUEUED", $key),
            " AND ",
            same_flow!("queued.flow_id", $flow),
            " ORDER BY queued.id LIMIT 1"
        )
    };
}

/// Whether an earlier run with the same concurrency key has not finished, so that the queued
/// run `flow_run` waits: an SQL condition on a row of `flow_run`, for taking a run (below) and
/// for the reconciler.
pub(crate) const BLOCKED_BY_EARLIER: &str = concat!(
    "(flow_run.status = 'QUEUED'
    AND flow_run.concurrency_key IS NOT NULL
    AND ",
    earlier_unfinished!(""),
    ")"
);

/// Inserts a new run and answers whether it waits for an earlier run of its key, in one
/// statement. A run that waits needs no job: the end of the run before hands it on
/// (`runs::save`). On PostgreSQL the earlier run's row is locked for the check: a run whose end
/// is being saved right now is read once that save committed (finished: the new run needs a
/// job), so an end that could not see the new run is never the one counted on to hand it on.
/// The lock is shared (`FOR SHARE`): it conflicts with the save's update of the row, not with
/// the other inserts of the key, which with `FOR UPDATE` went one commit at a time (`Lock:tuple`
/// in most samples of `bench runs --same-customer`). SQLite has one writer: an end saved after
/// the insert sees the new run.
pub(crate) async fn insert_run(
    db: &impl ConnectionTrait,
    run: flow_run::ActiveModel,
) -> Result<(flow_run::Model, bool)> {
    let backend = db.get_database_backend();
    let insert = flow_run::Entity::insert(run).build(backend);
    let waits = match backend {
        sea_orm::DbBackend::Postgres => earlier_unfinished!(" FOR SHARE"),
        _ => earlier_unfinished!(""),
    };
    let sql = format!("{} RETURNING *, {waits} AS waits", insert.sql);
    let row = db
        .query_one_raw(Statement { sql, ..insert })
        .await?
        .ok_or(crate::Error::NotFound("inserted flow run"))?;
    Ok((
        flow_run::Model::from_query_result(&row, "")?,
        row.try_get("", "waits")?,
    ))
}

/// A job's hold on a run: the row's `locked_by` names this job until `locked_until`. Renewal,
/// release and every save check the name, so a worker that stalled past its lease and lost the
/// run to another can no longer write to it.
pub(crate) struct Lease {
    pub(crate) run_id: Uuid,
    pub(crate) holder: Uuid,
}

/// A run this job now holds, as it was when taken.
pub(crate) struct Taken {
    pub(crate) lease: Lease,
    pub(crate) run: flow_run::Model,
}

/// Which run to take.
pub(crate) enum Which<'a> {
    /// This one.
    Run(Uuid),
    /// The first queued run of this flow and concurrency key, as one ends.
    NextOf { flow_id: Uuid, key: &'a str },
}

/// Takes the lease of an unfinished run that no job holds and no earlier run of its key
/// blocks, and reads it, in one statement: the engine's only read of a run it starts.
const TAKE: &str = "UPDATE flow_run SET locked_until = $1, locked_by = $2
    WHERE id = RUN
      AND status NOT IN ('SUCCEEDED', 'FAILED', 'CANCELLED')
      AND (locked_until IS NULL OR locked_until < $3)
      AND NOT BLOCKED
    RETURNING *";

const NEXT_OF_KEY: &str = concat!("(", next_of_key!("$4", "$5"), ")");

/// The first queued run of `key` in the flow `flow_id`, without taking it.
pub(crate) async fn next_queued(
    db: &impl ConnectionTrait,
    flow_id: Uuid,
    key: &str,
) -> Result<Option<Uuid>> {
    let statement = Statement::from_sql_and_values(
        db.get_database_backend(),
        next_of_key!("$1", "$2"),
        [key.into(), flow_id.into()],
    );
    Ok(match db.query_one_raw(statement).await? {
        Some(row) => Some(row.try_get_by_index(0)?),
        None => None,
    })
}

impl Lease {
    /// The run, held by this job; `None` when there is none to take: finished, held by another
    /// job, waiting for an earlier run of its key, or gone. `db`: a connection, or the
    /// transaction that ends the run before.
    pub(super) async fn take(
        services: &Services,
        db: &impl ConnectionTrait,
        which: Which<'_>,
    ) -> Result<Option<Taken>> {
        let now = Utc::now();
        let holder = Uuid::now_v7();
        let mut values: Vec<sea_orm::Value> = vec![
            (now + services.runs.lease).into(),
            holder.into(),
            now.into(),
        ];
        let run = match which {
            Which::Run(id) => {
                values.push(id.into());
                "$4"
            }
            Which::NextOf { flow_id, key } => {
                values.extend([key.into(), flow_id.into()]);
                NEXT_OF_KEY
            }
        };
        let sql = TAKE
            .replace("RUN", run)
            .replace("BLOCKED", BLOCKED_BY_EARLIER);
        let statement = Statement::from_sql_and_values(db.get_database_backend(), sql, values);
        let Some(row) = db.query_one_raw(statement).await? else {
            return Ok(None);
        };
        let run = flow_run::Model::from_query_result(&row, "")?;
        Ok(Some(Taken {
            lease: Lease {
                run_id: run.id,
                holder,
            },
            run,
        }))
    }

    pub(super) async fn extend(&self, services: &Services) -> Result<()> {
        flow_run::Entity::update_many()
            .col_expr(
                flow_run::Column::LockedUntil,
                Expr::value(Utc::now() + services.runs.lease),
            )
            .filter(flow_run::Column::Id.eq(self.run_id))
            .filter(flow_run::Column::LockedBy.eq(self.holder))
            .exec(&services.db)
            .await?;
        Ok(())
    }

    pub(super) async fn release(&self, services: &Services) -> Result<()> {
        flow_run::Entity::update_many()
            .col_expr(
                flow_run::Column::LockedUntil,
                Expr::value(Option::<chrono::DateTime<Utc>>::None),
            )
            .col_expr(
                flow_run::Column::LockedBy,
                Expr::value(Option::<Uuid>::None),
            )
            .filter(flow_run::Column::Id.eq(self.run_id))
            .filter(flow_run::Column::LockedBy.eq(self.holder))
            .exec(&services.db)
            .await?;
        Ok(())
    }
}
