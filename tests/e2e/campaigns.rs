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
        Mock::given(method("GET"))
            .and(path("/v21.0/WABA-1/message_templates"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"data": templates, "paging": {"cursors": {"before": "a", "after": "b"}}}),
            ))
            .mount(&meta.server)
            .await;
        let synced = app
            .ok(
                "mutation($id: ID!) { syncTemplates(senderId: $id) { created } }",
                json!({"id": sender}),
            )
            .await;
        assert_eq!(
            synced["syncTemplates"]["created"],
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

/// 200 tagged contacts, one opted out, five others without the tag: one send per eligible
/// contact, rendered for that contact, never more than messagesPerSecond in any second.
async fn a_campaign_reaches_every_eligible_contact_once_at_its_pace(app: TestApp) {
    let stand = Stand::new(&app, "PN-CAMP-BULK", json!([plan_template()])).await;
    stand.accepts(Duration::ZERO).await;
    let vips = import_contacts(&app, "557", 200, "vip").await;
    let others = import_contacts(&app, "558", 5, "lapsed").await;
    let opted_out = &vips[17];
    app.ok(
        "mutation($id: ID!) { updateContact(id: $id, input: {optedOut: true}) { optedOut } }",
        json!({"id": contact_id(&app, opted_out).await}),
    )
    .await;

    const PER_SECOND: usize = 40;
    let id = create_campaign(
        &app,
        plan_campaign(
            &stand.sender,
            json!({"filter": {"tags": ["vip"]}}),
            PER_SECOND as u32,
        ),
    )
    .await;
    let started = lifecycle(&app, "startCampaign", &id).await;
    assert!(
        ["SCHEDULED", "RUNNING"].contains(&started["status"].as_str().unwrap()),
        "{started}"
    );
    let done = campaign_becomes(&app, &id, "COMPLETED", Duration::from_secs(40)).await;
    assert!(done["completedAt"].is_string(), "{done}");
    assert!(done["startedAt"].is_string(), "{done}");
    assert_eq!(
        done["progress"],
        Counts {
            total: 200,
            sent: 199,
            skipped: 1,
            ..Counts::default()
        }
        .json()
    );

    let sends = stand.sends().await;
    let to = recipients_of(&sends);
    let distinct: BTreeSet<&String> = to.iter().collect();
    assert_eq!(sends.len(), 199, "one send per eligible contact");
    assert_eq!(distinct.len(), 199, "no contact twice");
    let eligible: BTreeSet<String> = vips
        .iter()
        .filter(|p| *p != opted_out)
        .map(|p| digits(p))
        .collect();
    assert_eq!(
        distinct.into_iter().cloned().collect::<BTreeSet<_>>(),
        eligible
    );
    assert!(!to.contains(&digits(opted_out)), "nothing to the opted-out");
    for other in &others {
        assert!(
            !to.contains(&digits(other)),
            "{other} is not in the audience"
        );
    }

    // Rendered for each contact: Customer 42 has the gold plan, Customer 43 the silver one.
    for (i, plan) in [(42, "gold"), (43, "silver")] {
        let send = sends.iter().find(|s| s["to"] == digits(&vips[i])).unwrap();
        assert_eq!(send["type"], "template");
        assert_eq!(send["template"]["name"], "plan_note");
        assert_eq!(send["template"]["language"]["code"], "en_US");
        assert_eq!(
            body_parameters(send),
            [format!("Customer {i}"), plan.into()]
        );
    }

    let skipped = recipients(&app, &id, Some("SKIPPED_OPTED_OUT")).await;
    assert_eq!(skipped.len(), 1, "{skipped:#?}");
    assert_eq!(skipped[0]["phone"], opted_out.as_str());
    assert_eq!(skipped[0]["messageId"], Value::Null);
    let all = recipients(&app, &id, None).await;
    assert_eq!(all.len(), 200);
    let sent = recipients(&app, &id, Some("SENT")).await;
    assert_eq!(sent.len(), 199);
    assert!(
        sent.iter()
            .all(|r| r["messageId"].is_string() && r["sentAt"].is_string()),
        "every SENT recipient names its message"
    );

    assert_paced(&stand.arrivals, PER_SECOND);
}

/// A user pauses a running campaign: nothing more is sent until it resumes, and no contact gets
/// two messages across the pause.
async fn a_paused_campaign_sends_nothing_until_resumed(app: TestApp) {
    let stand = Stand::new(&app, "PN-CAMP-PAUSE", json!([plan_template()])).await;
    stand.accepts(Duration::ZERO).await;
    let receiver = WebhookReceiver::register(&app, json!(["CAMPAIGN_PAUSED"])).await;
    let mut paused_events = app.subscriber(&app.key).await.unwrap();
    paused_events.subscribe("p", PAUSED_EVENTS).await;
    let phones = import_contacts(&app, "561", 60, "pause").await;
    let id = create_campaign(
        &app,
        plan_campaign(&stand.sender, json!({"filter": {"tags": ["pause"]}}), 10),
    )
    .await;
    lifecycle(&app, "startCampaign", &id).await;
    stand.wait_for_sends(8).await;

    let paused = lifecycle(&app, "pauseCampaign", &id).await;
    let paused_at = Instant::now();
    assert_eq!(paused["status"], "PAUSED");
    assert_eq!(paused["statusReason"], "paused by a user");
    let held = stand
        .sends_stop(
            paused_at,
            Duration::from_millis(500),
            Duration::from_secs(2),
        )
        .await;
    assert!(held < 60, "paused before the end: {held} sends");
    let still = campaign(&app, &id).await;
    assert_eq!(still["status"], "PAUSED");
    assert_eq!(still["progress"]["sent"], held, "{still}");
    assert_eq!(still["progress"]["pending"], 60 - held as u64, "{still}");

    let event = paused_events
        .next_event(WAIT)
        .await
        .expect("campaignPaused")["campaignPaused"]
        .clone();
    assert_eq!(
        event,
        json!({"campaignId": id, "campaignName": "Plan reminder", "senderId": stand.sender,
               "reason": "paused by a user", "automatic": false})
    );
    let delivery = receiver.first_delivery("the campaign.paused webhook").await;
    assert_eq!(delivery["event"], "campaign.paused");
    assert_eq!(delivery["campaign_id"], id.as_str());
    assert_eq!(delivery["automatic"], false);

    let resumed = lifecycle(&app, "resumeCampaign", &id).await;
    assert!(
        ["SCHEDULED", "RUNNING"].contains(&resumed["status"].as_str().unwrap()),
        "{resumed}"
    );
    let done = campaign_becomes(&app, &id, "COMPLETED", Duration::from_secs(30)).await;
    assert_eq!(
        done["progress"],
        Counts {
            total: 60,
            sent: 60,
            ..Counts::default()
        }
        .json()
    );
    let to = recipients_of(&stand.sends().await);
    assert_eq!(to.len(), 60, "one send per contact across the pause");
    let distinct: BTreeSet<String> = to.into_iter().collect();
    let expected: BTreeSet<String> = phones.iter().map(|p| digits(p)).collect();
    assert_eq!(distinct, expected);
    assert_paced(&stand.arrivals, 10);
}

/// The worker sending a campaign dies; another finishes it, and no contact gets two messages.
async fn a_campaign_survives_its_worker(backend: Backend) {
    let Some(app) = spawn_app_without_workers(backend).await else {
        return;
    };
    let first_worker = Worker::start(&app);
    let stand = Stand::new(&app, "PN-CAMP-CRASH", json!([plan_template()])).await;
    // Meta takes a moment with each send, so the worker may well die waiting for an answer.
    stand.accepts(Duration::from_millis(50)).await;
    let phones = import_contacts(&app, "562", 40, "crash").await;
    let id = create_campaign(
        &app,
        plan_campaign(&stand.sender, json!({"filter": {"tags": ["crash"]}}), 20),
    )
    .await;
    lifecycle(&app, "startCampaign", &id).await;
    stand.wait_for_sends(10).await;
    first_worker.kill();
    let killed_at = stand.send_count().await;
    assert!(killed_at < 40, "killed mid-campaign: {killed_at} sends");
    let _second_worker = Worker::start(&app);

    let done = campaign_becomes(&app, &id, "COMPLETED", Duration::from_secs(90)).await;
    let to = recipients_of(&stand.sends().await);
    let distinct: BTreeSet<String> = to.iter().cloned().collect();
    assert_eq!(distinct.len(), to.len(), "nobody is sent twice: {to:?}");
    // A send the killed worker had stored but whose answer it never saw may or may not have
    // reached Meta: it is recorded as DELIVERY_UNKNOWN and never sent again. Everyone else
    // reached Meta exactly once.
    let rows = recipients(&app, &id, None).await;
    let unknown: Vec<&Value> = rows
        .iter()
        .filter(|r| r["errorCode"] == "DELIVERY_UNKNOWN")
        .collect();
    assert!(
        unknown.len() <= 1,
        "one worker died, so at most one send is in doubt: {unknown:#?}"
    );
    for u in &unknown {
        assert_eq!(u["status"], "FAILED", "{u}");
    }
    for p in phones.iter().filter(|p| !to.contains(&digits(p))) {
        let row = rows.iter().find(|r| r["phone"] == p.as_str()).unwrap();
        assert_eq!(
            row["errorCode"], "DELIVERY_UNKNOWN",
            "a contact Meta never heard of must be the one in doubt (killed after {killed_at} sends): {row}"
        );
    }
    let expected: BTreeSet<String> = phones.iter().map(|p| digits(p)).collect();
    assert!(distinct.is_subset(&expected), "{distinct:?}");
    assert!(to.len() >= 39, "{} of 40 contacts reached", to.len());
    assert_eq!(done["progress"]["pending"], 0, "{done}");
    assert_eq!(done["progress"]["total"], 40, "{done}");
    assert_eq!(
        done["progress"]["sent"].as_u64().unwrap() + done["progress"]["failed"].as_u64().unwrap(),
        40,
        "{done}"
    );
}

mod a_campaign_survives_its_worker {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::a_campaign_survives_its_worker(waflow_tests::Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::a_campaign_survives_its_worker(waflow_tests::Backend::Postgres).await;
    }
}

/// The number turns RED while a slow campaign runs: it pauses itself, says why, tells the
/// workspace's webhook, and sends nothing more.
async fn a_red_quality_rating_pauses_a_running_campaign(app: TestApp) {
    const PN: &str = "PN-CAMP-RED";
    let stand = Stand::new(&app, PN, json!([plan_template()])).await;
    stand.accepts(Duration::ZERO).await;
    let receiver = WebhookReceiver::register(&app, json!(["CAMPAIGN_PAUSED"])).await;
    import_contacts(&app, "563", 30, "slow").await;
    let id = create_campaign(
        &app,
        plan_campaign(&stand.sender, json!({"filter": {"tags": ["slow"]}}), 1),
    )
    .await;
    lifecycle(&app, "startCampaign", &id).await;
    stand.wait_for_sends(2).await;

    // From now on Meta reports the number RED, and says so by webhook.
    Mock::given(method("GET"))
        .and(path(format!("/v21.0/{PN}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"quality_rating": "RED", "status": "CONNECTED", "messaging_limit_tier": "TIER_1K"}),
        ))
        .with_priority(1)
        .mount(&stand.meta.server)
        .await;
    let flagged = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA-1", "time": 1748454394, "changes": [{
        "field": "phone_number_quality_update",
        "value": {"display_phone_number": "14155550199", "event": "FLAGGED", "current_limit": "TIER_1K"}}]}]});
    assert_eq!(app.webhook(&flagged, Some(APP_SECRET)).await, 200);

    let paused = eventually("the campaign to pause itself", || async {
        let c = campaign(&app, &id).await;
        assert_ne!(c["status"], "COMPLETED", "{c}");
        (c["status"] == "PAUSED").then_some(c)
    })
    .await;
    let paused_at = Instant::now();
    let reason = paused["statusReason"].as_str().unwrap_or_default();
    assert!(reason.contains("RED"), "{paused}");

    let delivery = receiver.first_delivery("the campaign.paused webhook").await;
    assert_eq!(delivery["event"], "campaign.paused");
    assert_eq!(delivery["campaign_id"], id.as_str());
    assert_eq!(delivery["campaign_name"], "Plan reminder");
    assert_eq!(delivery["sender_id"], stand.sender.as_str());
    assert_eq!(delivery["automatic"], true);
    assert!(
        delivery["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("RED"),
        "{delivery}"
    );

    let held = stand
        .sends_stop(
            paused_at,
            Duration::from_millis(500),
            Duration::from_secs(2),
        )
        .await;
    assert!(held < 30, "{held} sends");
    let c = campaign(&app, &id).await;
    assert_eq!(c["status"], "PAUSED");
    assert_eq!(c["progress"]["pending"], 30 - held as u64, "{c}");
}

/// Meta refuses every send: after more than 20% of the last 10 sends failed, the campaign pauses
/// itself instead of burning through the audience.
async fn a_high_failure_rate_pauses_the_campaign(app: TestApp) {
    const PN: &str = "PN-CAMP-FAIL";
    let stand = Stand::new(&app, PN, json!([plan_template()])).await;
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{PN}/messages")))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(meta_error(131026, "Message undeliverable")),
        )
        .mount(&stand.meta.server)
        .await;
    let mut paused_events = app.subscriber(&app.key).await.unwrap();
    paused_events.subscribe("p", PAUSED_EVENTS).await;
    import_contacts(&app, "564", 40, "failing").await;
    let mut input = plan_campaign(&stand.sender, json!({"filter": {"tags": ["failing"]}}), 5);
    input["failureRateWindow"] = json!(10);
    input["failureRateThreshold"] = json!(0.2);
    let id = create_campaign(&app, input).await;
    lifecycle(&app, "startCampaign", &id).await;

    let paused = eventually("the campaign to pause itself", || async {
        let c = campaign(&app, &id).await;
        assert_ne!(c["status"], "COMPLETED", "{c}");
        (c["status"] == "PAUSED").then_some(c)
    })
    .await;
    let paused_at = Instant::now();
    let reason = paused["statusReason"].as_str().unwrap_or_default();
    assert!(reason.to_lowercase().contains("failure rate"), "{paused}");
    let event = paused_events
        .next_event(WAIT)
        .await
        .expect("campaignPaused")["campaignPaused"]
        .clone();
    assert_eq!(event["campaignId"], id.as_str());
    assert_eq!(event["automatic"], true);

    let refused = stand
        .sends_stop(
            paused_at,
            Duration::from_millis(500),
            Duration::from_secs(1),
        )
        .await;
    assert!(
        (3..=6).contains(&refused),
        "three failures (more than 0.2 x 10) are enough: {refused} sends reached Meta"
    );
    let failed = recipients(&app, &id, Some("FAILED")).await;
    assert_eq!(failed.len(), refused, "{failed:#?}");
    for recipient in &failed {
        assert_eq!(recipient["errorCode"], "131026", "{recipient}");
    }
    let c = campaign(&app, &id).await;
    assert_eq!(
        c["progress"],
        Counts {
            total: 40,
            pending: 40 - refused as u64,
            failed: refused as u64,
            ..Counts::default()
        }
        .json()
    );
}

/// Outside its send window a started campaign waits, SCHEDULED, saying when it opens.
async fn a_closed_send_window_holds_the_campaign(app: TestApp) {
    let stand = Stand::new(&app, "PN-CAMP-WINDOW", json!([plan_template()])).await;
    stand.accepts(Duration::ZERO).await;
    import_contacts(&app, "565", 3, "window").await;
    // Every day but today and tomorrow (UTC), so the window stays closed should the test run
    // across midnight.
    let today = chrono::Utc::now().weekday();
    let days: Vec<String> = [
        chrono::Weekday::Mon,
        chrono::Weekday::Tue,
        chrono::Weekday::Wed,
        chrono::Weekday::Thu,
        chrono::Weekday::Fri,
        chrono::Weekday::Sat,
        chrono::Weekday::Sun,
    ]
    .into_iter()
    .filter(|d| *d != today && *d != today.succ())
    .map(|d| format!("{d:?}").to_uppercase())
    .collect();
    assert_eq!(days.len(), 5);
    let mut input = plan_campaign(&stand.sender, json!({"filter": {"tags": ["window"]}}), 10);
    input["timezone"] = json!("UTC");
    input["sendWindow"] = json!({"days": days, "startTime": "00:00", "endTime": "23:59"});
    let id = create_campaign(&app, input).await;
    let started = lifecycle(&app, "startCampaign", &id).await;
    assert_eq!(started["status"], "SCHEDULED", "{started}");

    tokio::time::sleep(Duration::from_secs(3)).await;
    let c = campaign(&app, &id).await;
    assert_eq!(c["status"], "SCHEDULED", "{c}");
    assert!(
        c["statusReason"]
            .as_str()
            .is_some_and(|r| !r.trim().is_empty()),
        "the reason says when the window opens: {c}"
    );
    assert_eq!(
        c["progress"],
        Counts {
            total: 3,
            pending: 3,
            ..Counts::default()
        }
        .json()
    );
    assert_eq!(stand.send_count().await, 0, "nothing reached Meta");
}

/// testCampaign sends the rendered template once to one phone, and the campaign stays a draft.
async fn a_test_send_goes_to_one_phone_only(app: TestApp) {
    let stand = Stand::new(&app, "PN-CAMP-TEST", json!([plan_template()])).await;
    stand.accepts(Duration::ZERO).await;
    import_contacts(&app, "566", 3, "test").await;
    create_contact(&app, "+14155669000", "Ada", json!({"plan": "platinum"})).await;
    let id = create_campaign(
        &app,
        plan_campaign(&stand.sender, json!({"filter": {"tags": ["test"]}}), 10),
    )
    .await;
    let sent = app
        .ok(
            "mutation($id: ID!, $p: String!) { testCampaign(id: $id, phone: $p) { id body } }",
            json!({"id": id, "p": "+14155669000"}),
        )
        .await;
    assert_eq!(
        sent["testCampaign"]["body"], "Hi Ada, your plan is platinum",
        "{sent}"
    );
    let sends = stand.sends().await;
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0]["to"], "14155669000");
    assert_eq!(sends[0]["template"]["name"], "plan_note");
    assert_eq!(body_parameters(&sends[0]), ["Ada", "platinum"]);

    let bad = app
        .gql(
            "mutation($id: ID!, $p: String!) { testCampaign(id: $id, phone: $p) { id } }",
            json!({"id": id, "p": "12345"}),
        )
        .await;
    assert_eq!(error_code(&bad), Some("INVALID_PHONE_NUMBER"), "{bad}");
    assert_eq!(stand.send_count().await, 1);

    let c = campaign(&app, &id).await;
    assert_eq!(c["status"], "DRAFT");
    assert_eq!(c["progress"]["total"], 0);
    assert!(recipients(&app, &id, None).await.is_empty());
}

/// Meta's statuses and a customer's reply move recipients along the funnel; the reply's
/// conversation names the campaign; campaignProgress streams the counts.
async fn statuses_and_replies_move_recipients_along(app: TestApp) {
    const PN: &str = "PN-CAMP-FUNNEL";
    let stand = Stand::new(&app, PN, json!([plan_template()])).await;
    stand.accepts(Duration::ZERO).await;
    let mut contacts = Vec::new();
    for (i, name) in ["Ana", "Bea", "Cy"].into_iter().enumerate() {
        let phone = phone("567", i);
        let id = create_contact(&app, &phone, name, json!({"plan": "gold"})).await;
        contacts.push((phone, id));
    }
    let ids: Vec<&String> = contacts.iter().map(|(_, id)| id).collect();
    let id = create_campaign(
        &app,
        plan_campaign(&stand.sender, json!({"contactIds": ids}), 10),
    )
    .await;
    let mut subscriber = app.subscriber(&app.key).await.unwrap();
    subscriber
        .subscribe(
            "c",
            &format!(
                "subscription {{ campaignProgress(id: \"{id}\") {{ campaignId status statusReason \
                 progress {{ total pending sent delivered read replied failed skipped }} }} }}"
            ),
        )
        .await;
    lifecycle(&app, "startCampaign", &id).await;
    let done = campaign_becomes(&app, &id, "COMPLETED", Duration::from_secs(20)).await;
    assert_eq!(
        done["progress"],
        Counts {
            total: 3,
            sent: 3,
            ..Counts::default()
        }
        .json()
    );
    let completed = progress_event(&mut subscriber, WAIT, "COMPLETED, 3 sent", |e| {
        e["status"] == "COMPLETED" && e["progress"]["sent"] == 3
    })
    .await;
    assert_eq!(completed["campaignId"], id.as_str());
    assert_eq!(
        completed["progress"],
        Counts {
            total: 3,
            sent: 3,
            ..Counts::default()
        }
        .json()
    );

    let by_phone = |all: &[Value], phone: &str| {
        all.iter()
            .find(|r| r["phone"] == phone)
            .unwrap_or_else(|| panic!("recipient {phone}: {all:#?}"))
            .clone()
    };
    let sent = recipients(&app, &id, None).await;
    let (ana, bea) = (&contacts[0].0, &contacts[1].0);
    let message_of = |recipient: Value| {
        let app = &app;
        async move {
            app.ok(
                "query($id: ID!) { message(id: $id) { providerMessageId conversation { id } } }",
                json!({"id": recipient["messageId"]}),
            )
            .await["message"]
                .clone()
        }
    };
    let ana_message = message_of(by_phone(&sent, ana)).await;
    let bea_message = message_of(by_phone(&sent, bea)).await;
    let provider_id = ana_message["providerMessageId"].as_str().unwrap();
    assert!(provider_id.starts_with("wamid.CAMP-"), "{ana_message}");

    let now = chrono::Utc::now().timestamp().to_string();
    for status in ["delivered", "read"] {
        let update = messages_webhook(
            PN,
            json!({"statuses": [{"id": provider_id, "status": status, "timestamp": now,
                                 "recipient_id": digits(ana)}]}),
        );
        assert_eq!(app.webhook(&update, Some(APP_SECRET)).await, 200);
    }
    let reply = messages_webhook(
        PN,
        json!({"contacts": [{"profile": {"name": "Bea"}, "wa_id": digits(bea)}],
               "messages": [{"from": digits(bea), "id": "wamid.CAMP-REPLY", "timestamp": now,
                             "type": "text", "text": {"body": "Can I upgrade?"}}]}),
    );
    assert_eq!(app.webhook(&reply, Some(APP_SECRET)).await, 200);

    let (ana_row, bea_row) = eventually("READ and REPLIED recipients", || async {
        let all = recipients(&app, &id, None).await;
        let (a, b) = (by_phone(&all, ana), by_phone(&all, bea));
        (a["status"] == "READ" && b["status"] == "REPLIED").then_some((a, b))
    })
    .await;
    assert_eq!(ana_row["conversationId"], Value::Null);
    let conversation = bea_row["conversationId"]
        .as_str()
        .expect("the reply's conversation");
    assert_eq!(conversation, bea_message["conversation"]["id"]);
    let data = app
        .ok(
            "query($id: ID!) { conversation(id: $id) { campaignId } }",
            json!({"id": conversation}),
        )
        .await;
    assert_eq!(data["conversation"]["campaignId"], id.as_str());
    assert_eq!(
        by_phone(&recipients(&app, &id, None).await, &contacts[2].0)["status"],
        "SENT"
    );

    let expected = Counts {
        total: 3,
        sent: 3,
        delivered: 2,
        read: 2,
        replied: 1,
        ..Counts::default()
    }
    .json();
    assert_eq!(campaign(&app, &id).await["progress"], expected);
    let last = progress_event(&mut subscriber, WAIT, "the funnel's counts", |e| {
        e["progress"] == expected
    })
    .await;
    assert_eq!(last["status"], "COMPLETED");
}

/// Every refusal names its problem; lifecycle transitions are checked; another workspace's
/// campaign does not exist.
async fn campaigns_are_validated(app: TestApp) {
    let sender = app.sandbox_sender("+14155550100").await;
    app.approved_template(
        &sender,
        "plan_note",
        "UTILITY",
        "Hi {{1}}, your plan is {{2}}",
    )
    .await;
    app.approved_template(&sender, "promo", "MARKETING", "Big sale this week!")
        .await;
    app.approved_template(
        &sender,
        "promo_stop",
        "MARKETING",
        "Big sale this week! Reply STOP to opt out",
    )
    .await;
    app.ok(
        "mutation($input: CreateTemplateInput!) { createTemplate(input: $input) { id } }",
        json!({"input": {"senderId": sender, "name": "under_review", "language": "en", "category": "UTILITY",
               "components": {"body": "Hello"}}}),
    )
    .await;
    let ana = create_contact(&app, "+14155568000", "Ana", json!({"plan": "gold"})).await;
    let bob = create_contact(&app, "+14155568001", "Bob", json!({"plan": "silver"})).await;
    let input = |template: &str, variables: Value| {
        let mut input = json!({"name": "Spring", "senderId": sender, "templateName": template,
                               "language": "en", "audience": {"contactIds": [ana, bob]}});
        if !variables.is_null() {
            input["variables"] = variables;
        }
        input
    };
    let plan_variables = || json!(["{{ contact.name }}", "{{ contact.attributes.plan }}"]);
    let refused = |input: Value| {
        let app = &app;
        async move { app.gql(CREATE, json!({"input": input})).await }
    };

    // Defaults.
    let data = app
        .ok(
            CREATE,
            json!({"input": input("plan_note", plan_variables())}),
        )
        .await;
    let draft = &data["createCampaign"];
    let sender_rate = app
        .ok(
            "query($id: ID!) { sender(id: $id) { messagesPerSecond } }",
            json!({"id": sender}),
        )
        .await["sender"]["messagesPerSecond"]
        .clone();
    assert_eq!(
        draft,
        &json!({"id": draft["id"], "name": "Spring", "status": "DRAFT", "statusReason": null,
                "timezone": "UTC", "messagesPerSecond": sender_rate, "pauseOnQuality": "YELLOW",
                "failureRateWindow": 50, "failureRateThreshold": 0.2, "acknowledgeNoOptOut": false,
                "sender": {"id": sender}, "progress": {"total": 0}})
    );

    let body = refused(input("no_such_template", plan_variables())).await;
    assert_eq!(error_code(&body), Some("TEMPLATE_NOT_FOUND"), "{body}");
    let body = refused(input("under_review", Value::Null)).await;
    assert_eq!(error_code(&body), Some("TEMPLATE_NOT_APPROVED"), "{body}");
    let body = refused(input("plan_note", json!(["{{ contact.name }}"]))).await;
    assert_eq!(
        error_code(&body),
        Some("TEMPLATE_VARIABLES_MISMATCH"),
        "{body}"
    );
    let body = refused(input(
        "plan_note",
        json!(["{{ contact.name", "{{ contact.attributes.plan }}"]),
    ))
    .await;
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"), "{body}");
    assert_eq!(error_fields(&body), ["variables[0]"]);
    let mut unknown_sender = input("plan_note", plan_variables());
    unknown_sender["senderId"] = json!(uuid::Uuid::now_v7().to_string());
    let body = refused(unknown_sender).await;
    assert_eq!(error_code(&body), Some("SENDER_NOT_FOUND"), "{body}");

    // MARKETING needs a way to opt out, or the user's acknowledgement that there is none.
    let body = refused(input("promo", Value::Null)).await;
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"), "{body}");
    assert_eq!(error_fields(&body), ["acknowledgeNoOptOut"]);
    let mut acknowledged = input("promo", Value::Null);
    acknowledged["acknowledgeNoOptOut"] = json!(true);
    let data = app.ok(CREATE, json!({"input": acknowledged})).await;
    assert_eq!(data["createCampaign"]["acknowledgeNoOptOut"], true);
    app.ok(CREATE, json!({"input": input("promo_stop", Value::Null)}))
        .await;

    let mut bad_zone = input("plan_note", plan_variables());
    bad_zone["timezone"] = json!("Mars/Olympus_Mons");
    let body = refused(bad_zone).await;
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"), "{body}");
    assert_eq!(error_fields(&body), ["timezone"]);
    let mut backwards = input("plan_note", plan_variables());
    backwards["sendWindow"] =
        json!({"days": ["MON", "TUE"], "startTime": "18:00", "endTime": "09:00"});
    let body = refused(backwards).await;
    assert_eq!(error_fields(&body), ["sendWindow.endTime"], "{body}");
    let mut both = input("plan_note", plan_variables());
    both["audience"] = json!({"contactIds": [ana], "filter": {"tags": ["vip"]}});
    let body = refused(both).await;
    assert_eq!(error_fields(&body), ["audience"], "{body}");

    // An audience that matches nobody cannot start.
    let mut nobody = input("plan_note", plan_variables());
    nobody["audience"] = json!({"filter": {"tags": ["nobody"]}});
    let empty = create_campaign(&app, nobody).await;
    let body = app
        .gql(
            "mutation($id: ID!) { startCampaign(id: $id) { id } }",
            json!({"id": empty}),
        )
        .await;
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"), "{body}");
    assert_eq!(error_fields(&body), ["audience"]);
    assert_eq!(campaign(&app, &empty).await["status"], "DRAFT");

    // Starting twice, cancelling, and what a cancelled campaign refuses.
    let mut later = input("plan_note", plan_variables());
    later["startAt"] = json!((chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339());
    let scheduled = create_campaign(&app, later).await;
    let started = lifecycle(&app, "startCampaign", &scheduled).await;
    assert_eq!(started["status"], "SCHEDULED", "{started}");
    assert!(started["statusReason"].is_string(), "{started}");
    let start = "mutation($id: ID!) { startCampaign(id: $id) { id } }";
    let again = app.gql(start, json!({"id": scheduled})).await;
    assert_eq!(error_code(&again), Some("VALIDATION_FAILED"), "{again}");
    assert_eq!(error_fields(&again), ["status"]);
    let cancelled = lifecycle(&app, "cancelCampaign", &scheduled).await;
    assert_eq!(cancelled["status"], "CANCELLED");
    let rows = recipients(&app, &scheduled, None).await;
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter().all(|r| r["status"] == "SKIPPED_CANCELLED"),
        "{rows:#?}"
    );
    assert_eq!(
        campaign(&app, &scheduled).await["progress"],
        Counts {
            total: 2,
            skipped: 2,
            ..Counts::default()
        }
        .json()
    );
    for mutation in ["startCampaign", "resumeCampaign", "pauseCampaign"] {
        let body = app
            .gql(
                &format!("mutation($id: ID!) {{ {mutation}(id: $id) {{ id }} }}"),
                json!({"id": scheduled}),
            )
            .await;
        assert_eq!(error_fields(&body), ["status"], "{mutation}: {body}");
    }
    let listed = app
        .ok(
            "{ campaigns(first: 20, status: CANCELLED) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        listed["campaigns"]["edges"],
        json!([{"node": {"id": scheduled}}])
    );

    // Another workspace sees none of it.
    let other = app.other_workspace().await;
    let theirs = app
        .gql_as(Some(&other), CAMPAIGN, json!({"id": scheduled}))
        .await;
    assert_eq!(error_code(&theirs), Some("NOT_FOUND"), "{theirs}");
    let draft_id = draft["id"].as_str().unwrap();
    let theirs = app
        .gql_as(
            Some(&other),
            "mutation($id: ID!) { startCampaign(id: $id) { id } }",
            json!({"id": draft_id}),
        )
        .await;
    assert_eq!(error_code(&theirs), Some("NOT_FOUND"), "{theirs}");
    assert_eq!(campaign(&app, draft_id).await["status"], "DRAFT");
    let listed = app
        .gql_as(
            Some(&other),
            "{ campaigns(first: 20) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(listed["data"]["campaigns"]["edges"], json!([]), "{listed}");
    let unknown = app
        .gql(CAMPAIGN, json!({"id": uuid::Uuid::now_v7().to_string()}))
        .await;
    assert_eq!(error_code(&unknown), Some("NOT_FOUND"), "{unknown}");
}

waflow_tests::on_both_databases!(
    a_campaign_reaches_every_eligible_contact_once_at_its_pace,
    a_paused_campaign_sends_nothing_until_resumed,
    a_red_quality_rating_pauses_a_running_campaign,
    a_high_failure_rate_pauses_the_campaign,
    a_closed_send_window_holds_the_campaign,
    a_test_send_goes_to_one_phone_only,
    statuses_and_replies_move_recipients_along,
    campaigns_are_validated,
);
