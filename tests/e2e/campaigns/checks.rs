//! What is checked before anything is sent: the test send and the validation of a campaign.

use super::*;

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

waflow_tests::on_both_databases!(a_test_send_goes_to_one_phone_only, campaigns_are_validated,);
