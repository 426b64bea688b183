//! Sending: every eligible contact once at the campaign's pace, across a pause and a dead
//! worker, and followed along the delivery funnel.

use super::*;

/// 300 tagged contacts, one opted out, five others without the tag: one send per eligible
/// contact, rendered for that contact, never more than messagesPerSecond in any second.
async fn a_campaign_reaches_every_eligible_contact_once_at_its_pace(app: TestApp) {
    let stand = Stand::new(&app, "PN-CAMP-BULK", json!([plan_template()])).await;
    stand.accepts(Duration::ZERO).await;
    let vips = import_contacts(&app, "557", 300, "vip").await;
    let others = import_contacts(&app, "558", 5, "lapsed").await;
    let opted_out = &vips[17];
    app.ok(
        "mutation($id: ID!) { updateContact(id: $id, input: {optedOut: true}) { optedOut } }",
        json!({"id": contact_id(&app, opted_out).await}),
    )
    .await;

    const PER_SECOND: usize = 50;
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
            total: 300,
            sent: 299,
            skipped: 1,
            ..Counts::default()
        }
        .json()
    );

    let sends = stand.sends().await;
    let to = recipients_of(&sends);
    let distinct: BTreeSet<&String> = to.iter().collect();
    assert_eq!(sends.len(), 299, "one send per eligible contact");
    assert_eq!(distinct.len(), 299, "no contact twice");
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
    assert_eq!(all.len(), 300);
    let sent = recipients(&app, &id, Some("SENT")).await;
    assert_eq!(sent.len(), 299);
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
    // One a second: the campaign is seen RUNNING before it completes.
    let id = create_campaign(
        &app,
        plan_campaign(&stand.sender, json!({"contactIds": ids}), 1),
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
    // Inside its send window a started campaign runs at once, and says so (issue 18).
    let started = lifecycle(&app, "startCampaign", &id).await;
    assert_eq!(
        (&started["status"], &started["statusReason"]),
        (&json!("RUNNING"), &Value::Null),
        "{started}"
    );
    let running =
        progress_event(&mut subscriber, WAIT, "RUNNING", |e| e["status"] != "DRAFT").await;
    assert_eq!(running["status"], "RUNNING", "{running}");
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

/// A customer stored in one form of their number who writes from the other (Argentina's,
/// without and with the 9) answers the campaign all the same. The message's write transaction
/// asks whether anyone awaits a reply from the number the message names; the campaign awaits
/// the stored one, so that answer must not stand for it.
async fn a_reply_from_another_form_of_the_number_counts(app: TestApp) {
    const PN: &str = "PN-CAMP-FORMS";
    let stand = Stand::new(&app, PN, json!([plan_template()])).await;
    stand.accepts(Duration::ZERO).await;
    let contact = create_contact(&app, "+541158749895", "Lu", json!({"plan": "gold"})).await;
    let id = create_campaign(
        &app,
        plan_campaign(&stand.sender, json!({"contactIds": [contact]}), 10),
    )
    .await;
    lifecycle(&app, "startCampaign", &id).await;
    campaign_becomes(&app, &id, "COMPLETED", Duration::from_secs(20)).await;
    let now = chrono::Utc::now().timestamp().to_string();
    let reply = messages_webhook(
        PN,
        json!({"contacts": [{"profile": {"name": "Lu"}, "wa_id": "5491158749895"}],
               "messages": [{"from": "5491158749895", "id": "wamid.CAMP-FORMS-REPLY",
                             "timestamp": now, "type": "text", "text": {"body": "¿Precio?"}}]}),
    );
    assert_eq!(app.webhook(&reply, Some(APP_SECRET)).await, 200);
    let replied = eventually("the recipient REPLIED", || async {
        let all = recipients(&app, &id, None).await;
        (all.len() == 1 && all[0]["status"] == "REPLIED").then(|| all[0].clone())
    })
    .await;
    assert_eq!(replied["phone"], "+541158749895", "{replied}");
}

waflow_tests::on_both_databases!(
    a_campaign_reaches_every_eligible_contact_once_at_its_pace,
    a_paused_campaign_sends_nothing_until_resumed,
    statuses_and_replies_move_recipients_along,
    a_reply_from_another_form_of_the_number_counts,
);
