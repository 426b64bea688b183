//! Replies: an inbound message continues the runs parked in `wait_for_reply` for its customer
//! on its sender. Most messages answer no run, so the message's write transaction first asks
//! whether any run waits (`waiting_for`, a reaction's probe: `crate::context::Reaction`), and
//! the runs are read only when one does.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Select};
use uuid::Uuid;
use waflow_entities::{CustomerAddress, enums::RunStatus, flow_run};

use super::{FlowJob, FlowService, runs, triggers::whatsapp_payload};
use crate::{
    error::Result,
    events::{Event, EventPayload},
};

/// The runs that a message from `customer_phone` (else `customer_user_id`) to `sender_id` is
/// the reply for: WAITING under its `runs::reply_key`, which is the same for every form of a
/// number. `None`: the message names no customer a run could wait on.
pub fn waiting_for(
    sender_id: Uuid,
    customer_phone: Option<&str>,
    customer_user_id: Option<&str>,
) -> Option<Select<flow_run::Entity>> {
    let customer = CustomerAddress::parse_known(customer_phone.or(customer_user_id)?).ok()?;
    Some(
        flow_run::Entity::find()
            .filter(flow_run::Column::WaitingFor.eq(runs::reply_key(sender_id, &customer)))
            .filter(flow_run::Column::Status.eq(RunStatus::Waiting)),
    )
}

impl FlowService<'_> {
    /// The contact wrote: the runs waiting for their reply continue with the message (its
    /// trigger payload). Called for every event after it is published; a failure is logged,
    /// never undoes the event.
    pub async fn hand_reply(&self, event: &Event) {
        if let Err(error) = self.try_hand_reply(event).await {
            tracing::error!(%error, event_id = %event.id, "could not hand a reply to the runs waiting for it");
        }
    }

    async fn try_hand_reply(&self, event: &Event) -> Result<()> {
        let EventPayload::MessageReceived(m) = &event.payload else {
            return Ok(());
        };
        let customer = (m.customer_phone.as_deref(), m.customer_user_id.as_deref());
        let Some(waiting) = waiting_for(m.sender_id, customer.0, customer.1) else {
            return Ok(());
        };
        let runs = waiting.all(&self.services.db).await?;
        let Some((_, _, reply)) = whatsapp_payload(event).filter(|_| !runs.is_empty()) else {
            return Ok(());
        };
        for run in runs {
            let job = FlowJob::Reply {
                run_id: run.id,
                reply: reply.clone(),
            };
            self.services.jobs.flows.push(job, None).await?;
        }
        Ok(())
    }
}
