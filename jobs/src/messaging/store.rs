//! The writes that sending and receiving share: contacts upserted by phone, the 24-hour window,
//! the active conversation of a (sender, contact) pair, and conversation counters. Everything
//! here runs inside the caller's transaction.
//!
//! Uniqueness (one contact per phone, one ACTIVE conversation per pair, one message per provider
//! id) is enforced by the database; a transaction that loses a race fails with a unique
//! violation and is retried whole by [`retry_on_conflict`].

use std::future::Future;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbErr,
    EntityTrait, QueryFilter, Set, TryInsertResult, TryIntoModel,
    sea_query::{Alias, Expr, ExprTrait as _, Func, OnConflict, Query, SelectStatement},
};
use uuid::Uuid;
use waflow_entities::{
    CustomerAddress, E164, contact, contact_window, conversation,
    enums::{
        ConversationStatus, ConversationType, EndReason, MessageDirection, MessageKind,
        MessageRole, MessageStatus,
    },
    message, sender, workspace,
};

use crate::{
    error::{Error, Result},
    events::ConversationEnded,
};

/// What an inbound message's write transaction reads first ([`opening_read`]).
pub struct OpeningRead {
    /// The message is an erased contact's (`replay::erased_query` found it).
    pub erased: bool,
    /// The workspace's `routes_version` (`crate::event_routes`).
    pub routes_version: i64,
    /// The reactions whose probe found nothing (`crate::context::Reaction::probe`).
    pub idle_reactions: Vec<&'static str>,
    /// The Cloud API senders' version (`crate::sender_directory`), when asked for.
    pub senders_version: Option<i64>,
}

/// Reads, in one statement, what the write transaction of an inbound message needs before it
/// writes: whether `erased` finds a row, the workspace's `routes_version`, the senders' version
/// when `with_senders_version`, and which `probes` find none. Every statement costs both
/// processes a send and a wake-up, and most messages would otherwise pay one read per reaction
/// after they commit. `NOT_FOUND` for a workspace that does not exist.
pub async fn opening_read(
    txn: &DatabaseTransaction,
    workspace_id: Uuid,
    erased: SelectStatement,
    with_senders_version: bool,
    probes: Vec<(&'static str, SelectStatement)>,
) -> Result<OpeningRead> {
    let mut query = Query::select();
    query
        .column(workspace::Column::RoutesVersion)
        .expr_as(Expr::exists(erased), Alias::new("erased"))
        .from(workspace::Entity)
        .and_where(Expr::col(workspace::Column::Id).eq(workspace_id));
    if with_senders_version {
        let version = crate::sender_directory::version_query();
        query.expr_as(
            Expr::SubQuery(None, Box::new(version.into())),
            Alias::new("senders_version"),
        );
    }
    let (reactions, probes): (Vec<_>, Vec<_>) = probes.into_iter().unzip();
    for (i, probe) in probes.into_iter().enumerate() {
        query.expr_as(Expr::exists(probe), Alias::new(format!("probe_{i}")));
    }
    let row = txn
        .query_one(&query)
        .await?
        .ok_or(Error::NotFound("workspace"))?;
    let mut idle_reactions = Vec::new();
    for (i, reaction) in reactions.into_iter().enumerate() {
        if !row.try_get::<bool>("", &format!("probe_{i}"))? {
            idle_reactions.push(reaction);
        }
    }
    let senders_version = match with_senders_version {
        true => Some(row.try_get("", "senders_version")?),
        false => None,
    };
    Ok(OpeningRead {
        erased: row.try_get("", "erased")?,
        routes_version: row.try_get("", "routes_version")?,
        idle_reactions,
        senders_version,
    })
}

/// Runs `attempt` again (up to three times) when it failed on a unique constraint: another
/// request created the same contact or conversation at the same moment, and a fresh
/// transaction will now find it.
pub async fn retry_on_conflict<T, F, Fut>(mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(Error::Database(e)) if tries < 2 && is_unique_violation(&e) => tries += 1,
            other => return other,
        }
    }
}

pub fn is_unique_violation(e: &DbErr) -> bool {
    matches!(
        e.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// A customer as a provider or a user names them: at least one of `phone` and `user_id`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Customer {
    /// The dialable number (see `E164::from_wa_id`), unless the customer hides it.
    pub phone: Option<E164>,
    /// WhatsApp's id for the number, as a webhook gave it (digits).
    pub wa_id: Option<String>,
    /// Meta's business-scoped user id.
    pub user_id: Option<String>,
    pub username: Option<String>,
    /// The WhatsApp profile name, or the name a user gave.
    pub profile_name: Option<String>,
}

impl Customer {
    /// The customer a user or a flow addressed.
    pub fn addressed(to: &CustomerAddress, name: Option<&str>) -> Self {
        Self {
            phone: to.phone().cloned(),
            user_id: to.user_id().map(str::to_owned),
            profile_name: name.map(str::to_owned),
            ..Self::default()
        }
    }
}

/// Of the contacts that matched `customer`, the one that is them: the one matching both
/// identifiers, else the one with the number, else the one with the user id.
fn the_one(found: Vec<contact::Model>, customer: &Customer) -> Option<contact::Model> {
    let has_phone = |c: &contact::Model| customer.phone.as_ref().is_some_and(|p| c.has_number(p));
    let has_user_id =
        |c: &contact::Model| customer.user_id.is_some() && c.user_id == customer.user_id;
    let rank = |c: &contact::Model| u8::from(has_phone(c)) * 2 + u8::from(has_user_id(c));
    found.into_iter().max_by_key(rank)
}

/// A contact as [`upsert_contact`] left it.
pub struct UpsertedContact {
    pub contact: contact::Model,
    /// Created by this transaction: it has no conversation yet.
    pub created: bool,
}

/// The contact that is `customer` (by number in any of its forms, or by user id), created when
/// new, with what the customer told us filled in: the id WhatsApp gave, the user id, the
/// username. A name fills an empty one; `overwrite_name` replaces a stored one (a WhatsApp
/// profile name is the customer's own choice).
pub async fn upsert_contact(
    txn: &DatabaseTransaction,
    workspace_id: Uuid,
    customer: &Customer,
    overwrite_name: bool,
) -> Result<UpsertedContact> {
    let Some(identity) =
        contact::identified_by(customer.phone.as_ref(), customer.user_id.as_deref())
    else {
        return Err(Error::Internal(
            "a customer without a number or a user id".into(),
        ));
    };
    let found = contact::Entity::find()
        .filter(contact::Column::WorkspaceId.eq(workspace_id))
        .filter(identity)
        .all(txn)
        .await?;
    let name = customer
        .profile_name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    let now = Utc::now();
    let holders: Vec<Uuid> = found
        .iter()
        .filter(|c| customer.user_id.is_some() && c.user_id == customer.user_id)
        .map(|c| c.id)
        .collect();
    let Some(found) = the_one(found, customer) else {
        let created = contact::ActiveModel {
            id: Set(Uuid::now_v7()),
            workspace_id: Set(workspace_id),
            phone: Set(customer.phone.as_ref().map(E164::to_string)),
            wa_id: Set(customer.wa_id.clone()),
            user_id: Set(customer.user_id.clone()),
            username: Set(customer.username.clone()),
            name: Set(name.map(str::to_owned)),
            attributes: Set(serde_json::json!({})),
            opted_out: Set(false),
            opted_out_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(txn)
        .await?;
        return Ok(UpsertedContact {
            contact: created,
            created: true,
        });
    };
    let newer = |given: &Option<String>, stored: &Option<String>| {
        given.clone().filter(|g| stored.as_ref() != Some(g))
    };
    let rename = name
        .filter(|n| (overwrite_name || found.name.is_none()) && found.name.as_deref() != Some(*n));
    let phone = match (&customer.phone, &found.phone) {
        (Some(phone), None) => Some(phone.to_string()),
        _ => None,
    };
    // The id WhatsApp gave is the number's: kept only on the contact that has that number.
    let same_number = customer
        .phone
        .as_ref()
        .is_some_and(|p| phone.is_some() || found.has_number(p));
    let wa_id = newer(&customer.wa_id, &found.wa_id).filter(|_| same_number);
    // Another contact holds the user id: leave it there rather than break uniqueness.
    let held_elsewhere = holders.iter().any(|id| *id != found.id);
    let user_id = newer(&customer.user_id, &found.user_id).filter(|_| !held_elsewhere);
    let username = newer(&customer.username, &found.username);
    if rename.is_none()
        && phone.is_none()
        && wa_id.is_none()
        && user_id.is_none()
        && username.is_none()
    {
        return Ok(UpsertedContact {
            contact: found,
            created: false,
        });
    }
    let mut model: contact::ActiveModel = found.into();
    if let Some(name) = rename {
        model.name = Set(Some(name.to_owned()));
    }
    if phone.is_some() {
        model.phone = Set(phone);
    }
    if wa_id.is_some() {
        model.wa_id = Set(wa_id);
    }
    if user_id.is_some() {
        model.user_id = Set(user_id);
    }
    if username.is_some() {
        model.username = Set(username);
    }
    model.updated_at = Set(now);
    Ok(UpsertedContact {
        contact: model.update(txn).await?,
        created: false,
    })
}

/// Records that the contact wrote to the sender at `at`, which opens (or extends) the 24-hour
/// window. Never moves the window back for a late, out-of-order message.
pub async fn open_window(
    txn: &DatabaseTransaction,
    workspace_id: Uuid,
    contact_id: Uuid,
    sender_id: Uuid,
    at: DateTime<Utc>,
) -> Result<()> {
    // One statement: insert, or move the stored time forward only (the `WHERE` of the update).
    let later = Expr::col((
        contact_window::Entity,
        contact_window::Column::LastInboundAt,
    ))
    .lt(Expr::col((
        Alias::new("excluded"),
        contact_window::Column::LastInboundAt,
    )));
    contact_window::Entity::insert(contact_window::ActiveModel {
        contact_id: Set(contact_id),
        sender_id: Set(sender_id),
        workspace_id: Set(workspace_id),
        last_inbound_at: Set(at),
    })
    .on_conflict(
        OnConflict::columns([
            contact_window::Column::ContactId,
            contact_window::Column::SenderId,
        ])
        .update_column(contact_window::Column::LastInboundAt)
        .action_and_where(later)
        .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

/// When the contact last wrote to the sender, if ever.
pub async fn last_inbound_at(
    db: &impl sea_orm::ConnectionTrait,
    contact_id: Uuid,
    sender_id: Uuid,
) -> Result<Option<DateTime<Utc>>> {
    Ok(contact_window::Entity::find_by_id((contact_id, sender_id))
        .one(db)
        .await?
        .map(|w| w.last_inbound_at))
}

/// The conversation a message between a sender and a contact belongs to.
pub struct ActiveConversation {
    pub conversation: conversation::Model,
    /// The message opens a new conversation.
    pub started: bool,
    /// The previous conversation had fallen silent past the sender's timeout without its
    /// inactivity job having run yet; it was ended here and this is its payload, to publish.
    pub ended: Option<ConversationEnded>,
}

/// The ACTIVE WhatsApp conversation of (sender, contact) with the message at `at` counted in it
/// (the caller inserts that message): a live one is found and counted by one `UPDATE`, a new
/// one is created with its first message counted. One that has been silent longer than
/// `timeout_seconds` is ended first (found by a lookup when the `UPDATE` found nothing): the
/// next message after the timeout starts a new conversation even if no worker has run the
/// inactivity job. A contact created by this transaction has no conversation to look up. So
/// a known contact's message costs one statement here when its conversation goes on, and three
/// when it opens a new one (the `UPDATE` that finds nothing, the lookup, the insert): the
/// common case is the message in a conversation that goes on.
pub async fn active_conversation(
    txn: &DatabaseTransaction,
    sender: &sender::Model,
    upserted: &UpsertedContact,
    at: DateTime<Utc>,
) -> Result<ActiveConversation> {
    let workspace_id = sender.workspace_id;
    let timeout_seconds = sender.inactivity_timeout_seconds;
    let contact_id = upserted.contact.id;
    let found = match upserted.created {
        true => None,
        false => {
            let live_since = at - chrono::Duration::seconds(timeout_seconds.into());
            if let Some(counted) = count_if_live(txn, sender.id, contact_id, live_since, at).await?
            {
                return Ok(ActiveConversation {
                    conversation: counted,
                    started: false,
                    ended: None,
                });
            }
            // None active, or one silent past the timeout, which is ended below.
            conversation::Entity::find()
                .filter(active_whatsapp(sender.id, contact_id))
                .one(txn)
                .await?
        }
    };
    let mut ended = None;
    if let Some(conversation) = found {
        let deadline =
            conversation.last_message_at + chrono::Duration::seconds(timeout_seconds.into());
        if deadline > at {
            return Ok(ActiveConversation {
                conversation: count_message(txn, conversation, at).await?,
                started: false,
                ended: None,
            });
        }
        let (_, payload) =
            super::lifecycle::end_in(txn, conversation, EndReason::Inactivity, deadline).await?;
        ended = Some(payload);
    }
    let mut new = new_conversation(workspace_id, ConversationType::Whatsapp, at);
    new.sender_id = Set(Some(sender.id));
    new.contact_id = Set(Some(contact_id));
    new.assistant_id = Set(sender.assistant_id);
    new.message_count = Set(1);
    Ok(ActiveConversation {
        conversation: new.insert(txn).await?,
        started: true,
        ended,
    })
}

/// The WhatsApp conversations between a sender and a contact, whatever their status.
pub fn whatsapp_between(sender_id: Uuid, contact_id: Uuid) -> Condition {
    Condition::all()
        .add(conversation::Column::SenderId.eq(sender_id))
        .add(conversation::Column::ContactId.eq(contact_id))
        .add(conversation::Column::Type.eq(ConversationType::Whatsapp))
}

/// The ACTIVE one of them (an index keeps at most one).
fn active_whatsapp(sender_id: Uuid, contact_id: Uuid) -> Condition {
    whatsapp_between(sender_id, contact_id)
        .add(conversation::Column::Status.eq(ConversationStatus::Active))
}

/// Counts one more message in the sender's active WhatsApp conversation with the contact,
/// if its last message is after `live_since` (it has not been silent past the timeout), and
/// returns it: the lookup and the count in one statement, for the common case of a message in
/// a conversation that goes on. `None`: no such conversation, and nothing changed.
async fn count_if_live(
    txn: &DatabaseTransaction,
    sender_id: Uuid,
    contact_id: Uuid,
    live_since: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Result<Option<conversation::Model>> {
    let last_message_at = Expr::col(conversation::Column::LastMessageAt);
    let counted = conversation::Entity::update_many()
        .col_expr(
            conversation::Column::MessageCount,
            Expr::col(conversation::Column::MessageCount).add(1),
        )
        .col_expr(
            conversation::Column::LastMessageAt,
            Func::greatest([last_message_at, Expr::val(at)]).into(),
        )
        .filter(active_whatsapp(sender_id, contact_id))
        .filter(conversation::Column::LastMessageAt.gt(live_since))
        .exec_with_returning(txn)
        .await?;
    Ok(counted.into_iter().next())
}

/// A new ACTIVE conversation with nothing said yet; the caller sets who it is between.
pub fn new_conversation(
    workspace_id: Uuid,
    r#type: ConversationType,
    at: DateTime<Utc>,
) -> conversation::ActiveModel {
    conversation::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(workspace_id),
        r#type: Set(r#type),
        status: Set(ConversationStatus::Active),
        end_reason: Set(None),
        sender_id: Set(None),
        contact_id: Set(None),
        customer_identifier: Set(None),
        assistant_id: Set(None),
        ai_enabled: Set(true),
        input_variables: Set(serde_json::json!({})),
        extracted_variables: Set(serde_json::json!({})),
        ended_payload: Set(None),
        message_count: Set(0),
        created_at: Set(at),
        last_message_at: Set(at),
        ended_at: Set(None),
        extraction_status: Set(None),
        extraction_error: Set(None),
        ai_replied_through: Set(None),
        ai_reply_due_at: Set(None),
        ai_locked_until: Set(None),
        campaign_id: Set(None),
        referral: Set(None),
    }
}

/// Counts one more message in the conversation and moves its last activity forward.
pub async fn count_message(
    txn: &DatabaseTransaction,
    conversation: conversation::Model,
    at: DateTime<Utc>,
) -> Result<conversation::Model> {
    let last = std::cmp::max(conversation.last_message_at, at);
    let count = conversation.message_count + 1;
    let mut model: conversation::ActiveModel = conversation.into();
    model.message_count = Set(count);
    model.last_message_at = Set(last);
    Ok(model.update(txn).await?)
}

/// Inserts an inbound message unless `sender`'s provider delivered its id before: `None` for
/// a redelivery (the unique index on `(sender_id, provider_message_id)` decides, so two
/// deliveries racing each other store one message). Inserting first and looking only when it
/// conflicts spares every new message a lookup; redeliveries are the rare case.
pub async fn insert_unless_delivered(
    txn: &DatabaseTransaction,
    row: message::ActiveModel,
) -> Result<Option<message::Model>> {
    let delivered_before = OnConflict::columns([
        message::Column::SenderId,
        message::Column::ProviderMessageId,
    ])
    .do_nothing()
    .to_owned();
    let inserted = message::Entity::insert(row.clone())
        .on_conflict(delivered_before)
        .try_insert()
        .exec_without_returning(txn)
        .await?;
    match inserted {
        TryInsertResult::Inserted(1) => Ok(Some(row.try_into_model()?)),
        _ => Ok(None),
    }
}

/// The message `sender`'s provider delivered with `provider_message_id`, if it was stored: a
/// redelivery is recognised by it.
pub async fn stored_message(
    db: &impl sea_orm::ConnectionTrait,
    sender_id: Uuid,
    provider_message_id: &str,
) -> Result<Option<message::Model>> {
    Ok(message::Entity::find()
        .filter(message::Column::SenderId.eq(sender_id))
        .filter(message::Column::ProviderMessageId.eq(provider_message_id))
        .one(db)
        .await?)
}

/// A message the customer's side sent through `sender` (as the customer, by default), stored
/// at `at` in `conversation`; the caller sets what it says.
pub fn inbound_row(
    sender: &sender::Model,
    conversation: &conversation::Model,
    contact_id: Uuid,
    provider_message_id: &str,
    at: DateTime<Utc>,
) -> message::ActiveModel {
    message::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(sender.workspace_id),
        conversation_id: Set(conversation.id),
        sender_id: Set(Some(sender.id)),
        contact_id: Set(Some(contact_id)),
        direction: Set(MessageDirection::Inbound),
        role: Set(MessageRole::Customer),
        kind: Set(MessageKind::Text),
        body: Set(None),
        template_id: Set(None),
        template_params: Set(None),
        provider_message_id: Set(Some(provider_message_id.to_owned())),
        status: Set(MessageStatus::Received),
        error_code: Set(None),
        error_message: Set(None),
        idempotency_key: Set(None),
        payload: Set(None),
        created_at: Set(at),
        updated_at: Set(Utc::now()),
    }
}
