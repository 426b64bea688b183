//! What follows an event, in one place. A lower layer commits a change and emits its event
//! (`Services::emit`) without naming anyone above it; here, at the top of the stack, the
//! consequences are listed in the order they run, and `crate::assembly` registers them:
//!
//! 1. outgoing webhooks: one delivery recorded (and queued) per subscribed endpoint, before
//!    anyone else hears of the event, so that a subscriber that sees it can find its deliveries;
//! 2. subscribers: the event bus (GraphQL subscriptions, other processes);
//! 3. waiting runs: an inbound message handed to the runs parked in `wait_for_reply` for it;
//! 4. flows: runs started by the triggers the event matches, marketing paused on a RED quality
//!    rating;
//! 5. campaigns: recipients' statuses counted, replies attributed, campaigns paused on a quality
//!    drop or an opt-out.
//!
//! The two that must read before they act on an inbound message (3 and 5) give a probe
//! (`Reaction::probe`): the message's write transaction asks whether they have anything to do,
//! and for most messages they are not run at all.
//!
//! AI replies are not a reaction: an inbound message schedules its auto-reply inside the
//! webhook's handling (`messaging::ingest`), because a reply that cannot be scheduled must fail
//! the webhook so that Meta delivers it again, and a reaction's failure is only logged.

use std::{future::Future, pin::Pin, sync::Arc};

use sea_orm::{QueryTrait, sea_query::SelectStatement};

use crate::{
    campaigns::feedback,
    context::{ProbedMessage, Reaction, Reactions, Services},
    events::Event,
    flows::replies,
};

/// Every reaction, in the order `Services::emit` runs them.
pub fn all() -> Reactions {
    Reactions::new(vec![
        Arc::new(WebhookDeliveries),
        Arc::new(Subscribers),
        Arc::new(WaitingRuns),
        Arc::new(FlowTriggers),
        Arc::new(CampaignFeedback),
    ])
}

type Reacting<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Records one delivery per enabled endpoint of the workspace that subscribes to the event.
struct WebhookDeliveries;

impl Reaction for WebhookDeliveries {
    fn name(&self) -> &'static str {
        "webhook deliveries"
    }

    fn react<'a>(&'a self, services: &'a Services, event: &'a Event) -> Reacting<'a> {
        Box::pin(async move {
            if let Err(error) = services.webhooks().fan_out(event).await {
                tracing::error!(%error, event_id = %event.id, "could not record webhook deliveries");
            }
        })
    }
}

/// Publishes the event on the bus: this process's subscriptions and, in production, every other
/// process's.
struct Subscribers;

impl Reaction for Subscribers {
    fn name(&self) -> &'static str {
        "subscribers"
    }

    fn react<'a>(&'a self, services: &'a Services, event: &'a Event) -> Reacting<'a> {
        Box::pin(services.events.publish(event.clone()))
    }
}

/// Hands an inbound message to the runs waiting for its customer's reply.
struct WaitingRuns;

impl Reaction for WaitingRuns {
    fn name(&self) -> &'static str {
        "waiting runs"
    }

    fn react<'a>(&'a self, services: &'a Services, event: &'a Event) -> Reacting<'a> {
        Box::pin(async move { services.flows().hand_reply(event).await })
    }

    fn probe(&self, m: &ProbedMessage<'_>) -> Option<SelectStatement> {
        replies::waiting_for(m.sender_id, m.customer_phone, m.customer_user_id)
            .map(QueryTrait::into_query)
    }
}

/// Starts the flows the event triggers.
struct FlowTriggers;

impl Reaction for FlowTriggers {
    fn name(&self) -> &'static str {
        "flow triggers"
    }

    fn react<'a>(&'a self, services: &'a Services, event: &'a Event) -> Reacting<'a> {
        Box::pin(async move { services.flows().on_event(event).await })
    }
}

/// Keeps campaigns' recipient counts and automatic pauses in step with statuses and opt-outs.
struct CampaignFeedback;

impl Reaction for CampaignFeedback {
    fn name(&self) -> &'static str {
        "campaign feedback"
    }

    fn react<'a>(&'a self, services: &'a Services, event: &'a Event) -> Reacting<'a> {
        Box::pin(async move { services.campaigns().on_event(event).await })
    }

    /// An inbound message is only ever a reply here: the recipients it may answer.
    fn probe(&self, m: &ProbedMessage<'_>) -> Option<SelectStatement> {
        Some(feedback::replied_by(m.workspace_id, m.customer_phone).into_query())
    }
}
