//! Receiving inbound messages, whichever provider reported them (delivery statuses are
//! `statuses`). A real webhook and `simulateInboundMessage` both end here, so the sandbox
//! behaves like WhatsApp.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use uuid::Uuid;
use waflow_entities::{
    CustomerAddress, E164, contact, conversation, enums::MessageKind, message, sender,
};

use super::{MessagingService, replay, store};
use crate::context::ProbedMessage;
use crate::error::Result;
use crate::events::{ConversationStarted, Event, EventPayload, MessageReceived};

pub use super::store::Customer;

/// One inbound message, already authenticated and parsed from the provider's format.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    pub provider_message_id: String,
    /// Who wrote.
    pub customer: Customer,
    pub timestamp: DateTime<Utc>,
    pub kind: MessageKind,
    /// What a person reads in the transcript: the text, a caption, a button's title, an
    /// order's items (see `meta_inbound`).
    pub body: Option<String>,
    /// The structured content as the provider sent it (`{"type": …, <type>: {…}}`), with
    /// `referral` when it came from an ad (see [`referral`]).
    pub payload: Option<serde_json::Value>,
}

/// The Click-to-WhatsApp ad or post a message came from: Meta's `referral`, kept in its
/// payload.
pub fn referral(payload: Option<&serde_json::Value>) -> Option<&serde_json::Value> {
    payload?.get("referral").filter(|r| r.is_object())
}

/// WhatsApp's notice that a customer's number or business-scoped user id changed: not the
/// customer talking. `customer` is who they were.
#[derive(Debug, Clone)]
pub struct SystemNotice {
    pub provider_message_id: String,
    pub customer: Customer,
    pub timestamp: DateTime<Utc>,
    pub body: Option<String>,
    pub change: IdentityChange,
    pub payload: serde_json::Value,
}

/// Who the customer is now, as a system notice says.
#[derive(Debug, Clone)]
pub struct IdentityChange {
    /// Meta's `system.type`: `user_changed_number` or `user_changed_user_id`.
    pub kind: String,
    pub phone: Option<E164>,
    pub wa_id: Option<String>,
    pub user_id: Option<String>,
}

/// What receiving a message did.
#[derive(Debug, Clone)]
pub struct Received {
    pub message: message::Model,
    pub conversation: conversation::Model,
    pub contact: contact::Model,
    /// The message opened a new conversation.
    pub conversation_started: bool,
    /// The provider delivered this message before; nothing changed.
    pub duplicate: bool,
    /// The contact's previous conversation, ended by inactivity when this message came.
    pub ended: Option<Box<crate::events::ConversationEnded>>,
    /// The workspace's `routes_version` as the write transaction read it: the message's events
    /// are routed by it (`crate::event_routes`). `None` for a redelivery, which announces
    /// nothing.
    pub routes_version: Option<i64>,
    /// The reactions the write transaction found nothing for, for the `MessageReceived` event
    /// (`crate::context::Reaction::probe`). Empty when the contact's number or user id is not
    /// the one the probes were asked about: the reactions then read for themselves.
    pub idle_reactions: Vec<&'static str>,
}

/// Keywords that opt a contact out of (or back into) messages, compared trimmed and ignoring
/// case, as the whole message.
const OPT_OUT: [&str; 6] = ["STOP", "UNSUBSCRIBE", "STOP ALL", "ALTO", "ARRET", "ARRÊT"];
const OPT_IN: [&str; 2] = ["START", "UNSTOP"];

fn opt_change(body: Option<&str>) -> Option<bool> {
    let word = body?.trim().to_uppercase();
    if OPT_OUT.contains(&word.as_str()) {
        Some(true)
    } else if OPT_IN.contains(&word.as_str()) {
        Some(false)
    } else {
        None
    }
}

/// Whether a message of `kind` asks for an answer: a reaction or a deletion does not.
fn answers(kind: MessageKind) -> bool {
    !matches!(kind, MessageKind::Reaction | MessageKind::Revoke)
}

/// What the write transaction of an inbound message found.
enum Stored {
    New(Box<Received>),
    /// The provider delivered this message before.
    DeliveredBefore,
    /// It was an erased contact's message.
    Erased,
    /// The senders are not the version the delivery was verified against.
    SendersChanged,
}

impl MessagingService<'_> {
    /// Stores an inbound message: upserts the contact, opens the 24-hour window, finds or starts
    /// the conversation and applies opt-out keywords, all in one transaction. A message the
    /// provider delivered before is recognised by its id and changes nothing. `None`: the
    /// message was an erased contact's, and stays erased; one older than a redelivery can be is
    /// recorded and nothing more (see `replay`).
    pub async fn receive(
        &self,
        sender: &sender::Model,
        inbound: InboundMessage,
    ) -> Result<Option<Received>> {
        self.receive_as_of(sender, inbound, None).await
    }

    /// [`Self::receive`], for a webhook delivery verified against the Cloud API senders as of
    /// `senders_version` (`crate::sender_directory`): stored only if that is still their
    /// version when the message's write transaction opens, else `SendersChanged`.
    pub async fn receive_signed(
        &self,
        sender: &sender::Model,
        inbound: InboundMessage,
        senders_version: i64,
    ) -> Result<Option<Received>> {
        self.receive_as_of(sender, inbound, Some(senders_version))
            .await
    }

    async fn receive_as_of(
        &self,
        sender: &sender::Model,
        inbound: InboundMessage,
        senders_version: Option<i64>,
    ) -> Result<Option<Received>> {
        let stale = replay::is_stale(inbound.timestamp, self.services.inbound_max_age);
        let store = || self.store_inbound(sender, &inbound, stale, senders_version);
        let received = match store::retry_on_conflict(store).await? {
            Stored::New(received) => *received,
            Stored::SendersChanged => return Err(crate::Error::SendersChanged),
            Stored::DeliveredBefore => match self.stored_inbound(sender, &inbound).await? {
                Some(received) => received,
                // Erased between the two reads: it stays erased.
                None => return Ok(None),
            },
            Stored::Erased => {
                tracing::info!(sender_id = %sender.id, "ignoring a replayed message of an erased contact");
                return Ok(None);
            }
        };
        if stale && !received.duplicate {
            tracing::warn!(
                sender_id = %sender.id,
                message_id = %received.message.id,
                sent_at = %inbound.timestamp,
                "recorded a message older than Meta redelivers: a replay, it runs nothing"
            );
        } else if !received.duplicate {
            metrics::counter!("waflow_messages_received_total", "sender" => sender.id.to_string())
                .increment(1);
            if let Some(ended) = &received.ended {
                self.publish_ended(sender.workspace_id, (**ended).clone())
                    .await;
            }
            self.publish_received(sender, &received).await;
            self.services
                .jobs
                .arm_inactivity(received.conversation.id, sender.inactivity_timeout_seconds)
                .await?;
            if answers(received.message.kind) {
                self.services
                    .ai_replies()
                    .schedule(sender, &received.conversation)
                    .await?;
            }
        }
        Ok(Some(received))
    }

    async fn publish_received(&self, sender: &sender::Model, r: &Received) {
        if r.conversation_started {
            let started = ConversationStarted {
                conversation_id: r.conversation.id,
                customer_phone: r.contact.phone.clone(),
                customer_user_id: r.contact.user_id.clone(),
                customer_name: r.contact.name.clone(),
                first_message: r.message.body.clone(),
                referral: r.conversation.referral.clone(),
                sender: sender.into(),
            };
            let event = Event::new(
                sender.workspace_id,
                EventPayload::ConversationStarted(started),
            );
            self.services.emit(event.routed_by(r.routes_version)).await;
        }
        let message = MessageReceived {
            message_id: r.message.id,
            conversation_id: r.conversation.id,
            sender_id: sender.id,
            customer_phone: r.contact.phone.clone(),
            customer_user_id: r.contact.user_id.clone(),
            customer_username: r.contact.username.clone(),
            customer_name: r.contact.name.clone(),
            message: r.message.body.clone(),
            kind: r.message.kind,
            payload: r.message.payload.clone(),
            referral: referral(r.message.payload.as_ref()).cloned(),
            timestamp: r.message.created_at,
        };
        let event = Event::new(sender.workspace_id, EventPayload::MessageReceived(message))
            .routed_by(r.routes_version)
            .idle_for(r.idle_reactions.clone());
        self.services.emit(event).await;
    }

    async fn stored_inbound(
        &self,
        sender: &sender::Model,
        inbound: &InboundMessage,
    ) -> Result<Option<Received>> {
        let db = &self.services.db;
        let Some(message) =
            store::stored_message(db, sender.id, &inbound.provider_message_id).await?
        else {
            return Ok(None);
        };
        let conversation = conversation::Entity::find_by_id(message.conversation_id)
            .one(db)
            .await?;
        let contact = match message.contact_id {
            Some(id) => contact::Entity::find_by_id(id).one(db).await?,
            None => None,
        };
        Ok(conversation
            .zip(contact)
            .map(|(conversation, contact)| Received {
                message,
                conversation,
                contact,
                conversation_started: false,
                duplicate: true,
                ended: None,
                routes_version: None,
                idle_reactions: Vec::new(),
            }))
    }

    /// `stale`: a replay, whose opt-out keyword no longer speaks for the contact.
    /// `senders_version`: the version of the senders the delivery was verified against. The
    /// checks of the senders' version and of erasure, the reactions' probes and the redelivery
    /// check run inside the one write transaction, so a new message that answers no waiting run
    /// or campaign costs one transaction; a redelivery is recognised when its insert conflicts,
    /// and is then read back by the caller.
    async fn store_inbound(
        &self,
        sender: &sender::Model,
        inbound: &InboundMessage,
        stale: bool,
        senders_version: Option<i64>,
    ) -> Result<Stored> {
        let workspace_id = sender.workspace_id;
        // Asked about the customer as the message names them; kept only if the contact turns
        // out to be stored under the same number and user id (the event carries the contact's).
        let phone = inbound.customer.phone.as_ref().map(E164::to_string);
        let probed = ProbedMessage {
            workspace_id,
            sender_id: sender.id,
            customer_phone: phone.as_deref(),
            customer_user_id: inbound.customer.user_id.as_deref(),
        };
        let txn = crate::db::begin_write(&self.services.db).await?;
        let erased = replay::erased_query(sender.id, &inbound.provider_message_id);
        let probes = self.services.probes(&probed);
        let opening = store::opening_read(
            &txn,
            workspace_id,
            erased,
            senders_version.is_some(),
            probes,
        )
        .await?;
        if opening.senders_version != senders_version {
            txn.rollback().await?;
            return Ok(Stored::SendersChanged);
        }
        if opening.erased {
            txn.commit().await?;
            return Ok(Stored::Erased);
        }
        let at = inbound.timestamp;
        let mut upserted =
            store::upsert_contact(&txn, workspace_id, &inbound.customer, true).await?;
        let typed = matches!(inbound.kind, MessageKind::Text | MessageKind::Interactive);
        if let Some(opted_out) = opt_change(inbound.body.as_deref().filter(|_| typed))
            .filter(|&o| o != upserted.contact.opted_out)
            .filter(|_| !stale)
        {
            let mut model: contact::ActiveModel = upserted.contact.into();
            model.opted_out = Set(opted_out);
            model.opted_out_at = Set(opted_out.then_some(at));
            model.updated_at = Set(Utc::now());
            upserted.contact = model.update(&txn).await?;
        }
        let contact_id = upserted.contact.id;
        store::open_window(&txn, workspace_id, contact_id, sender.id, at).await?;
        let store::ActiveConversation {
            mut conversation,
            started,
            ended,
        } = store::active_conversation(&txn, sender, &upserted, at).await?;
        let contact = upserted.contact;
        let row = message::ActiveModel {
            kind: Set(inbound.kind),
            body: Set(inbound.body.clone()),
            payload: Set(inbound.payload.clone()),
            ..store::inbound_row(
                sender,
                &conversation,
                contact.id,
                &inbound.provider_message_id,
                at,
            )
        };
        let Some(message) = store::insert_unless_delivered(&txn, row).await? else {
            // Undo what this delivery changed on the way: it was all done the first time.
            txn.rollback().await?;
            return Ok(Stored::DeliveredBefore);
        };
        if let (None, Some(referral)) = (&conversation.referral, referral(inbound.payload.as_ref()))
        {
            let mut model: conversation::ActiveModel = conversation.into();
            model.referral = Set(Some(referral.clone()));
            conversation = model.update(&txn).await?;
        }
        txn.commit().await?;
        let as_probed = (contact.phone.as_deref(), contact.user_id.as_deref())
            == (probed.customer_phone, probed.customer_user_id);
        Ok(Stored::New(Box::new(Received {
            message,
            conversation,
            contact,
            conversation_started: started,
            duplicate: false,
            ended: ended.map(Box::new),
            routes_version: Some(opening.routes_version),
            idle_reactions: if as_probed {
                opening.idle_reactions
            } else {
                Vec::new()
            },
        })))
    }
}

impl MessagingService<'_> {
    /// Feeds an inbound text to a SANDBOX sender through the same path as a real webhook, so
    /// demos and tests need no Meta account.
    pub async fn simulate_inbound(
        &self,
        workspace_id: Uuid,
        sender_id: Uuid,
        from: &str,
        text: &str,
        name: Option<String>,
    ) -> Result<Received> {
        use waflow_entities::enums::SenderProvider;
        let sender = crate::context::find_in_workspace!(
            &self.services.db,
            sender,
            workspace_id,
            sender_id,
            "sender"
        )
        .map_err(|_| crate::Error::SenderNotFound(sender_id.to_string()))?;
        if sender.provider != SenderProvider::Sandbox {
            return Err(crate::Error::field(
                "senderId",
                "only SANDBOX senders take simulated messages",
            ));
        }
        let from = CustomerAddress::parse(from).map_err(|e| crate::Error::phone("from", e))?;
        if text.trim().is_empty() {
            return Err(crate::Error::field("text", "must not be empty"));
        }
        if text.chars().count() > super::MAX_TEXT_CHARS {
            return Err(crate::Error::MessageTooLong {
                length: text.chars().count(),
            });
        }
        let inbound = InboundMessage {
            provider_message_id: format!("wamid.SANDBOX-IN.{}", Uuid::now_v7().simple()),
            customer: Customer::addressed(&from, name.as_deref()),
            timestamp: Utc::now(),
            kind: MessageKind::Text,
            body: Some(text.to_owned()),
            payload: None,
        };
        self.receive(&sender, inbound).await?.ok_or_else(|| {
            crate::Error::Internal("a new sandbox message was taken for erased".into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opt_out_keywords_are_whole_messages_in_any_case() {
        for word in [
            "STOP",
            " stop ",
            "Stop All",
            "unsubscribe",
            "alto",
            "Arret",
            "arrêt",
        ] {
            assert_eq!(opt_change(Some(word)), Some(true), "{word}");
        }
        for word in ["start", "UNSTOP "] {
            assert_eq!(opt_change(Some(word)), Some(false), "{word}");
        }
        for word in ["please stop", "stopping", "", "STOP!"] {
            assert_eq!(opt_change(Some(word)), None, "{word}");
        }
    }
}
