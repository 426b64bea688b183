//! Meta's WhatsApp webhook: who may call it (the signature), and what its payloads mean for
//! Waflow (inbound messages, delivery statuses, template reviews, quality updates).
//!
//! The signature is checked against the raw body before anything is parsed: Meta signs with the
//! app secret of the app a number belongs to, and the request does not say which app that is,
//! so every connected app's secret is tried (in constant time), from this process's copy of the
//! Cloud API senders (`crate::sender_directory`, kept exact by a version every write of the
//! delivery checks). Afterwards only the senders of the app that signed are touched: one app
//! cannot speak for another's numbers.

use hmac::{Hmac, Mac};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;
use waflow_entities::{
    enums::{MessageStatus, QualityRating, SenderProvider},
    sender,
};

use super::{
    dead_letters::{self, Cause},
    meta_inbound::{self, Reading},
    statuses::StatusUpdate,
};
use crate::{
    Services,
    error::{Error, Result},
    sender_directory::{self, Directory},
    templates::TemplateReview,
};

/// Why a webhook delivery was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("missing or invalid X-Hub-Signature-256")]
    BadSignature,
    #[error("malformed payload: {0}")]
    Malformed(String),
    #[error(transparent)]
    Service(#[from] Error),
}

/// What one delivery did, for the logs and the tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub messages_stored: u32,
    pub duplicates: u32,
    pub statuses_applied: u32,
    pub templates_updated: u32,
    pub quality_updates: u32,
    /// System notices applied (a customer's number changed).
    pub notices: u32,
    /// Entries kept as dead letters: unreadable, or for no known sender.
    pub dead_letters: u32,
    pub ignored: u32,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    id: Option<String>,
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Change {
    field: Option<String>,
    #[serde(default)]
    value: Value,
}

/// How many copies of the senders a delivery is verified against (the first and fresh ones
/// after each change met while handling it) before Meta is asked to deliver it again.
const ATTEMPTS: usize = 3;

/// A delivery one app's secret signed: that app's senders, as of the directory version they
/// were read at. Anything but an inbound message is written only after the version is checked
/// (once per delivery, `check`); an inbound message's write transaction checks it itself
/// (`checked_by_message`). A delivery that wrote nothing is checked before it is answered.
struct Signed<'a> {
    senders: &'a [sender::Model],
    version: i64,
    checked: bool,
}

impl Signed<'_> {
    /// Fails with `SendersChanged` when the senders changed since the copy was read.
    async fn check(&mut self, services: &Services) -> Result<()> {
        if !self.checked {
            if sender_directory::version(&services.db).await? != self.version {
                return Err(Error::SendersChanged);
            }
            self.checked = true;
        }
        Ok(())
    }

    /// An inbound message's write transaction found the version unchanged.
    fn checked_by_message(&mut self) {
        self.checked = true;
    }
}

/// Handles one delivery of Meta's webhook. `signature` is its `X-Hub-Signature-256` header,
/// `sha256=<hex>` of HMAC-SHA256 over the raw `body` with the app secret of the app it is for
/// (WhatsApp Cloud API, Webhooks: "Validating payloads"). The signature is checked against this
/// process's copy of the Cloud API senders (`crate::sender_directory`); when the senders
/// changed since the copy was read, the delivery is checked again against a fresh copy, so a
/// revoked secret is refused, and a new one accepted, for every delivery whose check comes
/// after the change committed. `BadSignature` when no app's secret produced it; `Malformed`
/// for a body that is not a delivery; `Service` when it could not be stored (Meta delivers it
/// again).
pub async fn handle(
    services: &Services,
    body: &[u8],
    signature: Option<&str>,
) -> Result<Report, WebhookError> {
    let expected = signature
        .and_then(|s| s.trim().strip_prefix("sha256="))
        .and_then(|h| hex::decode(h).ok())
        .ok_or(WebhookError::BadSignature)?;
    let (db, secrets) = (&services.db, &services.secrets);
    let mut directory = services.sender_directory.get(db, secrets).await?;
    let mut attempts_left = ATTEMPTS;
    loop {
        attempts_left -= 1;
        match attempt(services, &directory, body, &expected).await {
            Err(WebhookError::Service(Error::SendersChanged)) if attempts_left > 0 => {}
            outcome => return outcome,
        }
        directory = services
            .sender_directory
            .renew(db, secrets, &directory)
            .await?;
    }
}

/// The delivery, verified against `directory` and processed for the senders of the app that
/// signed it.
async fn attempt(
    services: &Services,
    directory: &Directory,
    body: &[u8],
    expected: &[u8],
) -> Result<Report, WebhookError> {
    let signer = directory.apps.iter().find(|app| {
        let mut mac = Hmac::<Sha256>::new_from_slice(app.secret().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(body);
        mac.verify_slice(expected).is_ok()
    });
    let Some(app) = signer else {
        // The secret may have been added since the copy was read.
        if sender_directory::version(&services.db).await? != directory.version {
            return Err(Error::SendersChanged.into());
        }
        return Err(WebhookError::BadSignature);
    };
    let mut signed = Signed {
        senders: &app.senders,
        version: directory.version,
        checked: false,
    };
    let outcome = process(services, &mut signed, body).await;
    if let Ok(_) | Err(WebhookError::Malformed(_)) = outcome {
        // Even a delivery that changed nothing is answered only for a current secret.
        signed.check(services).await?;
    }
    outcome
}

/// Meta's subscription handshake: true when `token` is the verify token of a connected sender.
pub async fn verify_subscription(
    services: &Services,
    mode: Option<&str>,
    token: Option<&str>,
) -> Result<bool> {
    let (Some("subscribe"), Some(token)) = (mode, token) else {
        return Ok(false);
    };
    let senders = sender::Entity::find()
        .filter(sender::Column::Provider.eq(SenderProvider::CloudApi))
        .all(&services.db)
        .await?;
    Ok(senders
        .iter()
        .filter_map(|s| s.verify_token_enc.as_deref())
        .any(|stored| {
            services
                .secrets
                .decrypt(stored)
                .is_ok_and(|known| constant_time_eq(known.as_bytes(), token.as_bytes()))
        }))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Handles one signed delivery for the senders of the app that signed it.
async fn process(
    services: &Services,
    signed: &mut Signed<'_>,
    body: &[u8],
) -> Result<Report, WebhookError> {
    let payload: Payload =
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let mut report = Report::default();
    for entry in payload.entry {
        for change in entry.changes {
            match change.field.as_deref() {
                Some("messages") => messages(services, signed, &change.value, &mut report).await?,
                Some("message_template_status_update") => {
                    signed.check(services).await?;
                    template_review(
                        services,
                        signed.senders,
                        entry.id.as_deref(),
                        &change.value,
                        &mut report,
                    )
                    .await?
                }
                Some("phone_number_quality_update") => {
                    signed.check(services).await?;
                    quality(services, signed.senders, &change.value, &mut report).await?
                }
                other => {
                    tracing::debug!(field = ?other, "ignoring a webhook field Waflow does not use");
                    report.ignored += 1;
                }
            }
        }
    }
    Ok(report)
}

async fn messages(
    services: &Services,
    signed: &mut Signed<'_>,
    value: &Value,
    report: &mut Report,
) -> Result<()> {
    let phone_number_id = value["metadata"]["phone_number_id"].as_str();
    let Some(sender) = signed
        .senders
        .iter()
        .find(|s| s.phone_number_id.as_deref() == phone_number_id && phone_number_id.is_some())
    else {
        // The sender may have been added since the copy was read.
        signed.check(services).await?;
        if value["messages"].as_array().is_some_and(|m| !m.is_empty()) {
            let why = format!("no sender has the phone number id {phone_number_id:?}");
            dead_letters::record(services, None, Cause::UnknownPhoneNumber, &why, value).await?;
            report.dead_letters += 1;
        } else {
            tracing::warn!(
                ?phone_number_id,
                "statuses for a phone number id no sender has"
            );
            report.ignored += 1;
        }
        return Ok(());
    };
    let contacts = &value["contacts"];
    for item in value["messages"].as_array().into_iter().flatten() {
        match meta_inbound::read(item, contacts) {
            Reading::Message(inbound) => {
                let messaging = services.messaging();
                let received = messaging
                    .receive_signed(sender, inbound, signed.version)
                    .await?;
                signed.checked_by_message();
                match received {
                    Some(received) if received.duplicate => report.duplicates += 1,
                    Some(_) => report.messages_stored += 1,
                    None => report.ignored += 1,
                }
            }
            Reading::Notice(notice) => {
                signed.check(services).await?;
                match services.messaging().receive_notice(sender, notice).await? {
                    Some(_) => report.notices += 1,
                    None => report.duplicates += 1,
                }
            }
            Reading::Unreadable(why) => {
                signed.check(services).await?;
                let cause = Cause::UnreadableMessage;
                dead_letters::record(services, Some(sender), cause, &why, item).await?;
                report.dead_letters += 1;
            }
        }
    }
    for status in value["statuses"].as_array().into_iter().flatten() {
        let Some(update) = status_update(status) else {
            report.ignored += 1;
            continue;
        };
        signed.check(services).await?;
        match services.messaging().apply_status(sender.id, update).await? {
            Some(_) => report.statuses_applied += 1,
            None => report.ignored += 1,
        }
    }
    Ok(())
}

fn status_update(s: &Value) -> Option<StatusUpdate> {
    let status = match s["status"].as_str()? {
        "sent" => MessageStatus::Sent,
        "delivered" => MessageStatus::Delivered,
        "read" | "played" => MessageStatus::Read,
        "failed" => MessageStatus::Failed,
        _ => return None,
    };
    let error = &s["errors"][0];
    let error_message = error["message"]
        .as_str()
        .or(error["title"].as_str())
        .map(|m| match error["error_data"]["details"].as_str() {
            Some(details) => format!("{m}: {details}"),
            None => m.to_owned(),
        });
    Some(StatusUpdate {
        provider_message_id: s["id"].as_str()?.to_owned(),
        status,
        timestamp: meta_inbound::timestamp(&s["timestamp"]),
        error_code: error["code"].as_i64().map(|c| c.to_string()),
        error_message,
    })
}

async fn template_review(
    services: &Services,
    senders: &[sender::Model],
    business_account_id: Option<&str>,
    value: &Value,
    report: &mut Report,
) -> Result<()> {
    // Only a business account of the app that signed may have its templates changed.
    let Some(waba) = business_account_id.filter(|id| {
        senders
            .iter()
            .any(|s| s.business_account_id.as_deref() == Some(*id))
    }) else {
        report.ignored += 1;
        return Ok(());
    };
    let id = &value["message_template_id"];
    let review = TemplateReview {
        provider_template_id: id
            .as_str()
            .map(str::to_owned)
            .or_else(|| id.as_i64().map(|n| n.to_string())),
        name: value["message_template_name"].as_str().map(str::to_owned),
        language: value["message_template_language"]
            .as_str()
            .map(|l| l.replace('-', "_")),
        event: value["event"].as_str().unwrap_or_default().to_owned(),
        reason: value["reason"].as_str().map(str::to_owned),
    };
    match services.templates().apply_review(waba, &review).await? {
        Some(_) => report.templates_updated += 1,
        None => report.ignored += 1,
    }
    Ok(())
}

/// Meta's quality webhook names the number (digits) and an event, not the rating itself: a
/// FLAGGED number is treated as RED at once (marketing stops); the rating is then re-read from
/// the Cloud API either way.
async fn quality(
    services: &Services,
    senders: &[sender::Model],
    value: &Value,
    report: &mut Report,
) -> Result<()> {
    let digits: String = value["display_phone_number"]
        .as_str()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let Some(sender) = senders
        .iter()
        .find(|s| !digits.is_empty() && s.phone_number.trim_start_matches('+') == digits)
    else {
        report.ignored += 1;
        return Ok(());
    };
    if value["event"].as_str() == Some("FLAGGED") {
        services
            .senders()
            .set_quality(sender.clone(), QualityRating::Red)
            .await?;
    }
    services.jobs.refresh_sender(sender).await?;
    report.quality_updates += 1;
    Ok(())
}

#[cfg(test)]
mod never_panics {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever Meta (or anyone) posts, reading a message, a status or a time returns a
        /// value or nothing; it never panics.
        #[test]
        fn reading_any_json(value in crate::test_support::json()) {
            let _ = meta_inbound::read(&value, &value["contacts"]);
            let _ = status_update(&value);
            let _ = meta_inbound::timestamp(&value);
            for item in value["messages"].as_array().into_iter().flatten() {
                let _ = meta_inbound::read(item, &value["contacts"]);
            }
        }
    }
}
