//! Campaigns: one approved template sent to a frozen audience, paced, windowed, paused by users
//! and by the safety rules (quality, failure rate), surviving a worker crash, and followed along
//! the delivery funnel, against a local stand-in for Meta.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::Datelike;
use serde_json::{Value, json};
use waflow_tests::{
    APP_SECRET, Backend, Meta, Subscriber, TestApp, WebhookReceiver, Worker, error_code,
    error_fields, eventually, messages_webhook, meta_error, spawn_app_without_workers,
};
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{method, path},
};

mod checks;
mod parameters;
mod safety;
mod sending;

const SENDER_PHONE: &str = "+14155550199";
const WAIT: Duration = Duration::from_secs(10);

const CREATE: &str = "mutation($input: CreateCampaignInput!) { createCampaign(input: $input) { \
    id name status statusReason timezone messagesPerSecond pauseOnQuality failureRateWindow \
    failureRateThreshold acknowledgeNoOptOut sender { id } progress { total } } }";
const CAMPAIGN: &str = "query($id: ID!) { campaign(id: $id) { id name status statusReason \
    startedAt completedAt progress { total pending sent delivered read replied failed skipped } } }";
const RECIPIENTS: &str = "query($id: ID!, $after: String, $status: RecipientStatus) { campaign(id: $id) { \
    recipients(first: 100, after: $after, status: $status) { \
      edges { node { id contactId phone status errorCode errorMessage messageId conversationId sentAt } } \
      pageInfo { hasNextPage endCursor } } } }";
const PAUSED_EVENTS: &str =
    "subscription { campaignPaused { campaignId campaignName senderId reason automatic } }";

// ---------------------------------------------------------------------------------------------
// Meta's stand-in
// ---------------------------------------------------------------------------------------------

/// Meta accepting a send with a fresh message id, after `delay`; each request's arrival is noted.
struct Accepts {
    arrivals: Arc<Mutex<Vec<Instant>>>,
    delay: Duration,
}

impl wiremock::Respond for Accepts {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        self.arrivals.lock().unwrap().push(Instant::now());
        ResponseTemplate::new(200)
            .set_body_json(json!({
                "messaging_product": "whatsapp",
                "contacts": [{"input": "14155550123", "wa_id": "14155550123"}],
                "messages": [{"id": format!("wamid.CAMP-{}", uuid::Uuid::now_v7().simple()),
                              "message_status": "accepted"}]}))
            .set_delay(self.delay)
    }
}

/// A Cloud API sender (`+14155550199`) on its own phone number id, with Meta's approved templates
/// synced.
struct Stand {
    meta: Meta,
    sender: String,
    pn: &'static str,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

fn meta_template(name: &str, body: &str, category: &str) -> Value {
    json!({"name": name, "language": "en_US", "status": "APPROVED", "category": category,
           "id": format!("tpl-{name}"), "components": [{"type": "BODY", "text": body}]})
}

/// The UTILITY template most scenarios send.
fn plan_template() -> Value {
    meta_template("plan_note", "Hi {{1}}, your plan is {{2}}", "UTILITY")
}

impl Stand {
    async fn new(app: &TestApp, pn: &'static str, templates: Value) -> Self {
        let meta = Meta::start().await;
        let sender = app.cloud_sender(&meta, SENDER_PHONE, pn).await;
        meta.lists_templates(templates.clone()).await;
        assert_eq!(
            app.sync_templates(&sender).await as usize,
            templates.as_array().unwrap().len()
        );
        Self {
            meta,
            sender,
            pn,
            arrivals: Arc::default(),
        }
    }

    /// From now on Meta accepts every send, answering after `delay`.
    async fn accepts(&self, delay: Duration) {
        Mock::given(method("POST"))
            .and(path(format!("/v21.0/{}/messages", self.pn)))
            .respond_with(Accepts {
                arrivals: self.arrivals.clone(),
                delay,
            })
            .mount(&self.meta.server)
            .await;
    }

    /// The JSON bodies of the sends that reached Meta, in arrival order.
    async fn sends(&self) -> Vec<Value> {
        self.meta
            .requests("POST", &format!("/{}/messages", self.pn))
            .await
            .iter()
            .map(|r| serde_json::from_slice(&r.body).expect("a JSON send"))
            .collect()
    }

    async fn send_count(&self) -> usize {
        self.sends().await.len()
    }

    /// Waits until at least `n` sends reached Meta.
    async fn wait_for_sends(&self, n: usize) {
        eventually(&format!("{n} sends at Meta"), || async {
            (self.send_count().await >= n).then_some(())
        })
        .await;
    }

    /// Asserts that no send reaches Meta for `quiet` (after `settle`, for one in flight) once the
    /// campaign stopped at `stopped`; returns the count.
    async fn sends_stop(&self, stopped: Instant, settle: Duration, quiet: Duration) -> usize {
        tokio::time::sleep(settle).await;
        let before = self.send_count().await;
        tokio::time::sleep(quiet).await;
        let after = self.send_count().await;
        let late: Vec<String> = self
            .arrivals
            .lock()
            .unwrap()
            .iter()
            .filter(|t| **t > stopped)
            .map(|t| format!("{:?}", *t - stopped))
            .collect();
        assert_eq!(
            after, before,
            "sends went on reaching Meta after the campaign stopped; sends arrived this long \
             after it was seen stopped: {late:?}"
        );
        after
    }
}

/// The `to` of each send, digits only as Meta takes them.
fn recipients_of(sends: &[Value]) -> Vec<String> {
    sends
        .iter()
        .map(|s| s["to"].as_str().expect("a `to`").to_owned())
        .collect()
}

/// The texts of a template send's body parameters.
fn body_parameters(send: &Value) -> Vec<String> {
    send["template"]["components"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["type"] == "body")
        .flat_map(|c| c["parameters"].as_array().cloned().unwrap_or_default())
        .map(|p| p["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Asserts that no `per_second + 1` sends arrived within one second (100 ms allowed for jitter).
fn assert_paced(arrivals: &Arc<Mutex<Vec<Instant>>>, per_second: usize) {
    let mut times = arrivals.lock().unwrap().clone();
    times.sort();
    for i in 0..times.len().saturating_sub(per_second) {
        let span = times[i + per_second] - times[i];
        assert!(
            span >= Duration::from_millis(900),
            "{} sends reached Meta within {span:?} (from send #{i}); the campaign allows {per_second}/s",
            per_second + 1
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Contacts and campaigns through the API
// ---------------------------------------------------------------------------------------------

/// `+1415{block}{i:04}`, the phone of the `i`th contact of a block.
fn phone(block: &str, i: usize) -> String {
    format!("+1415{block}{i:04}")
}

fn digits(phone: &str) -> String {
    phone.trim_start_matches('+').to_owned()
}

/// Imports `count` contacts `Customer {i}` with plan gold (even) or silver (odd), tagged `tags`.
async fn import_contacts(app: &TestApp, block: &str, count: usize, tags: &str) -> Vec<String> {
    let mut csv = String::from("phone,name,plan,tags\n");
    let phones: Vec<String> = (0..count).map(|i| phone(block, i)).collect();
    for (i, p) in phones.iter().enumerate() {
        let plan = if i % 2 == 0 { "gold" } else { "silver" };
        csv.push_str(&format!("{p},Customer {i},{plan},{tags}\n"));
    }
    let response = app
        .http
        .post(app.url("/api/contacts/import"))
        .bearer_auth(&app.key)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["created"], count, "{report}");
    phones
}

async fn contact_id(app: &TestApp, phone: &str) -> String {
    let data = app
        .ok(
            "query($s: String!) { contacts(search: $s, first: 5) { edges { node { id phone } } } }",
            json!({"s": phone}),
        )
        .await;
    data["contacts"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"]["phone"] == phone)
        .unwrap_or_else(|| panic!("contact {phone}: {data}"))["node"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn create_contact(app: &TestApp, phone: &str, name: &str, attributes: Value) -> String {
    let data = app
        .ok(
            "mutation($input: CreateContactInput!) { createContact(input: $input) { id } }",
            json!({"input": {"phone": phone, "name": name, "attributes": attributes}}),
        )
        .await;
    data["createContact"]["id"].as_str().unwrap().to_owned()
}

/// A campaign input for `plan_note` with the usual variables; tests change what they need.
fn plan_campaign(sender: &str, audience: Value, per_second: u32) -> Value {
    json!({"name": "Plan reminder", "senderId": sender, "templateName": "plan_note", "language": "en_US",
           "variables": ["{{ contact.name }}", "{{ contact.attributes.plan }}"],
           "audience": audience, "messagesPerSecond": per_second})
}

async fn create_campaign(app: &TestApp, input: Value) -> String {
    let data = app.ok(CREATE, json!({"input": input})).await;
    assert_eq!(data["createCampaign"]["status"], "DRAFT");
    data["createCampaign"]["id"].as_str().unwrap().to_owned()
}

async fn lifecycle(app: &TestApp, mutation: &str, id: &str) -> Value {
    let data = app
        .ok(
            &format!("mutation($id: ID!) {{ {mutation}(id: $id) {{ id status statusReason }} }}"),
            json!({"id": id}),
        )
        .await;
    data[mutation].clone()
}

async fn campaign(app: &TestApp, id: &str) -> Value {
    app.ok(CAMPAIGN, json!({"id": id})).await["campaign"].clone()
}

/// Waits up to `within` for the campaign to be `status`; fails at once if it settles elsewhere.
async fn campaign_becomes(app: &TestApp, id: &str, status: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let c = campaign(app, id).await;
        if c["status"] == status {
            return c;
        }
        let settled = ["COMPLETED", "CANCELLED", "PAUSED"].contains(&c["status"].as_str().unwrap());
        assert!(
            !settled,
            "the campaign became {} while {status} was expected: {c:#}",
            c["status"]
        );
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the campaign to be {status}: {c:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every recipient (optionally of one status), oldest first.
async fn recipients(app: &TestApp, id: &str, status: Option<&str>) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = app
            .ok(
                RECIPIENTS,
                json!({"id": id, "after": after, "status": status}),
            )
            .await;
        let connection = &data["campaign"]["recipients"];
        all.extend(
            connection["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"].clone()),
        );
        if connection["pageInfo"]["hasNextPage"] != true {
            return all;
        }
        after = connection["pageInfo"]["endCursor"].clone();
    }
}

/// A campaign's expected counts; those not named are 0.
#[derive(Default)]
struct Counts {
    total: u64,
    pending: u64,
    sent: u64,
    delivered: u64,
    read: u64,
    replied: u64,
    failed: u64,
    skipped: u64,
}

impl Counts {
    fn json(&self) -> Value {
        json!({"total": self.total, "pending": self.pending, "sent": self.sent,
               "delivered": self.delivered, "read": self.read, "replied": self.replied,
               "failed": self.failed, "skipped": self.skipped})
    }
}

/// Reads `campaignProgress` events until one satisfies `wanted`; fails after `wait`.
async fn progress_event(
    subscriber: &mut Subscriber,
    wait: Duration,
    what: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + wait;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(event) = subscriber.next_event(left).await else {
            panic!("no campaignProgress event with {what}; seen: {seen:#?}");
        };
        let event = event["campaignProgress"].clone();
        if wanted(&event) {
            return event;
        }
        seen.push(event);
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------
