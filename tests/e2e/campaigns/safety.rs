//! The safety rules: a dropping quality rating, failures and a closed send window stop sends.

use super::*;

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

/// A campaign on a sandbox sender with the `plan_note` template, to the contacts of `audience`.
async fn sandbox_campaign(
    app: &TestApp,
    phone: &str,
    audience: Value,
    per_second: u32,
) -> (String, String) {
    let sender = app.sandbox_sender(phone).await;
    app.approved_template(
        &sender,
        "plan_note",
        "UTILITY",
        "Hi {{1}}, your plan is {{2}}",
    )
    .await;
    let mut input = plan_campaign(&sender, audience, per_second);
    input["language"] = json!("en");
    let id = create_campaign(app, input).await;
    (sender, id)
}

async fn paused(app: &TestApp, id: &str) -> Value {
    eventually("the campaign to pause", || async {
        let c = campaign(app, id).await;
        (c["status"] == "PAUSED").then_some(c)
    })
    .await
}

async fn first_send(app: &TestApp, id: &str) {
    eventually("a first send", || async {
        (campaign(app, id).await["progress"]["sent"]
            .as_u64()
            .unwrap()
            >= 1)
            .then_some(())
    })
    .await;
}

/// The sender goes offline mid-campaign: the campaign pauses with the reason and, once the
/// sender is back and the campaign resumed, finishes with one message per contact.
async fn an_offline_sender_pauses_the_campaign(app: TestApp) {
    import_contacts(&app, "571", 12, "offline").await;
    let (sender, id) = sandbox_campaign(
        &app,
        "+14155550177",
        json!({"filter": {"tags": ["offline"]}}),
        4,
    )
    .await;
    let mut events = app.subscriber(&app.key).await.unwrap();
    events.subscribe("paused", PAUSED_EVENTS).await;
    lifecycle(&app, "startCampaign", &id).await;
    first_send(&app, &id).await;
    let set_status = |status: &'static str| {
        let app = &app;
        let sender = sender.clone();
        async move {
            app.ok(
                "mutation($id: ID!, $s: SenderStatus!) { updateSender(id: $id, input: {status: $s}) { status } }",
                json!({"id": sender, "s": status}),
            )
            .await
        }
    };
    set_status("OFFLINE").await;
    let stopped = paused(&app, &id).await;
    let reason = stopped["statusReason"].as_str().unwrap();
    assert!(reason.contains("offline"), "{reason}");
    assert!(
        stopped["progress"]["pending"].as_u64().unwrap() > 0,
        "{stopped}"
    );
    let event = events
        .next_event(WAIT)
        .await
        .expect("a campaignPaused event");
    assert_eq!(event["campaignPaused"]["automatic"], true, "{event}");
    assert_eq!(event["campaignPaused"]["campaignId"], id.as_str());

    set_status("ONLINE").await;
    lifecycle(&app, "resumeCampaign", &id).await;
    let done = campaign_becomes(&app, &id, "COMPLETED", Duration::from_secs(30)).await;
    assert_eq!(done["progress"]["sent"], 12, "{done}");
    let messages: BTreeSet<String> = recipients(&app, &id, None)
        .await
        .iter()
        .map(|r| r["messageId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(messages.len(), 12, "one message per contact");
}

/// Meta pauses the template mid-campaign: the campaign pauses and says which template.
async fn a_template_withdrawn_mid_campaign_pauses_it(app: TestApp) {
    import_contacts(&app, "572", 10, "withdrawn").await;
    let (sender, id) = sandbox_campaign(
        &app,
        "+14155550178",
        json!({"filter": {"tags": ["withdrawn"]}}),
        2,
    )
    .await;
    lifecycle(&app, "startCampaign", &id).await;
    first_send(&app, &id).await;
    let template = app
        .ok(
            "query { templates(first: 10) { edges { node { id name sender { id } } } } }",
            json!({}),
        )
        .await["templates"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"]["sender"]["id"] == sender.as_str())
        .unwrap()["node"]["id"]
        .clone();
    app.ok(
        "mutation($id: ID!) { setTemplateStatus(id: $id, status: PAUSED) { status } }",
        json!({"id": template}),
    )
    .await;
    let stopped = paused(&app, &id).await;
    let reason = stopped["statusReason"].as_str().unwrap();
    assert!(
        reason.contains("plan_note") && reason.contains("PAUSED"),
        "{reason}"
    );
    assert!(
        stopped["progress"]["pending"].as_u64().unwrap() > 0,
        "{stopped}"
    );
}

/// A contact the variables cannot be filled for gets nothing (no message with a blank in it),
/// and `testCampaign` for them says which variable.
async fn contacts_whose_variables_cannot_be_filled_are_skipped(app: TestApp) {
    let complete = create_contact(&app, "+14155730001", "Ana", json!({"plan": "gold"})).await;
    let lacking = create_contact(&app, "+14155730002", "Bo", json!({})).await;
    let (_, id) = sandbox_campaign(
        &app,
        "+14155550179",
        json!({"contactIds": [complete, lacking]}),
        10,
    )
    .await;
    let refused = app
        .gql(
            "mutation($id: ID!) { testCampaign(id: $id, phone: \"+14155730002\") { id } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(error_code(&refused), Some("VALIDATION_FAILED"), "{refused}");
    assert_eq!(error_fields(&refused), ["variables"]);
    lifecycle(&app, "startCampaign", &id).await;
    let done = campaign_becomes(&app, &id, "COMPLETED", WAIT).await;
    assert_eq!(done["progress"]["sent"], 1, "{done}");
    assert_eq!(done["progress"]["skipped"], 1, "{done}");
    let skipped = recipients(&app, &id, Some("SKIPPED_INVALID")).await;
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["phone"], "+14155730002");
    assert!(skipped[0]["messageId"].is_null());
    let why = skipped[0]["errorMessage"].as_str().unwrap();
    assert!(why.contains("contact.attributes.plan"), "{why}");
}

waflow_tests::on_both_databases!(
    a_red_quality_rating_pauses_a_running_campaign,
    a_high_failure_rate_pauses_the_campaign,
    a_closed_send_window_holds_the_campaign,
    an_offline_sender_pauses_the_campaign,
    a_template_withdrawn_mid_campaign_pauses_it,
    contacts_whose_variables_cannot_be_filled_are_skipped,
);
