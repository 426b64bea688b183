//! Senders: creation rules, write-only secrets, updates and deletion.

use sea_orm::EntityTrait;
use serde_json::{Value, json};
use waflow_entities::sender;
use waflow_tests::{TestApp, error_code, error_fields};

const CREATE: &str = "mutation($input: CreateSenderInput!) { createSender(input: $input) { \
    id phoneNumber displayName provider status statusReason qualityRating messagingLimitTier \
    messagesPerSecond inactivityTimeoutSeconds createdAt updatedAt \
    cloudApi { phoneNumberId businessAccountId apiBaseUrl accessTokenSet appSecretSet verifyTokenSet } } }";

const SECRETS: [&str; 3] = [
    "EAAG-secret-access-token",
    "app-secret-xyz",
    "verify-token-abc",
];

fn cloud_input(phone: &str, phone_number_id: &str) -> Value {
    json!({"input": {"phoneNumber": phone, "displayName": "Acme Support", "provider": "CLOUD_API",
        "cloudApi": {"phoneNumberId": phone_number_id, "businessAccountId": "WABA1",
            "accessToken": SECRETS[0], "appSecret": SECRETS[1], "verifyToken": SECRETS[2],
            "apiBaseUrl": "http://127.0.0.1:9/v21.0"}}})
}

async fn sandbox_sender_is_created_online_with_defaults(app: TestApp) {
    let data = app
        .ok(CREATE, json!({"input": {"phoneNumber": "+1 (415) 555-1234", "displayName": " Acme ", "provider": "SANDBOX"}}))
        .await;
    let s = &data["createSender"];
    assert_eq!(s["phoneNumber"], "+14155551234", "stored in E.164");
    assert_eq!(s["displayName"], "Acme");
    assert_eq!(s["provider"], "SANDBOX");
    assert_eq!(s["status"], "ONLINE");
    assert_eq!(s["qualityRating"], "GREEN");
    assert_eq!(s["messagesPerSecond"], 80);
    assert_eq!(s["inactivityTimeoutSeconds"], 1800);
    assert!(s["cloudApi"].is_null());
    let read = app
        .ok(
            "query($id: ID!) { sender(id: $id) { phoneNumber } }",
            json!({"id": s["id"]}),
        )
        .await;
    assert_eq!(read["sender"]["phoneNumber"], "+14155551234");
}

/// Secrets go in and never come out: not in the mutation's answer, not in any query, and the
/// database holds only ciphertext.
async fn cloud_api_secrets_are_write_only_and_encrypted(app: TestApp) {
    let data = app.ok(CREATE, cloud_input("+14155551300", "PNID-1")).await;
    let s = &data["createSender"];
    assert_eq!(
        s["status"], "OFFLINE",
        "online only once the Cloud API confirms the number"
    );
    assert_eq!(s["qualityRating"], "UNKNOWN");
    assert_eq!(
        s["cloudApi"],
        json!({"phoneNumberId": "PNID-1", "businessAccountId": "WABA1", "apiBaseUrl": "http://127.0.0.1:9/v21.0",
               "accessTokenSet": true, "appSecretSet": true, "verifyTokenSet": true})
    );
    let listed = app
        .ok(
            "{ senders { edges { node { id phoneNumber displayName statusReason \
               cloudApi { phoneNumberId businessAccountId apiBaseUrl } } } } }",
            json!({}),
        )
        .await;
    for body in [data.to_string(), listed.to_string()] {
        for secret in SECRETS {
            assert!(!body.contains(secret), "{secret} leaked: {body}");
        }
    }
    let row = sender::Entity::find()
        .one(&app.services.db)
        .await
        .unwrap()
        .unwrap();
    let stored = [
        &row.access_token_enc,
        &row.app_secret_enc,
        &row.verify_token_enc,
    ];
    for (secret, stored) in SECRETS.iter().zip(stored) {
        let stored = stored.as_deref().unwrap();
        assert!(!stored.contains(secret), "stored in plaintext");
        assert_eq!(app.services.secrets.decrypt(stored).unwrap(), *secret);
    }
}

async fn bad_sender_input_is_refused_with_the_field_named(app: TestApp) {
    for phone in ["(415) 555-1234", "07123456789", "+1415555", "+14155551234x"] {
        let body = app
            .gql(
                CREATE,
                json!({"input": {"phoneNumber": phone, "displayName": "A", "provider": "SANDBOX"}}),
            )
            .await;
        assert_eq!(
            error_code(&body),
            Some("INVALID_PHONE_NUMBER"),
            "{phone}: {body}"
        );
        assert_eq!(body["errors"][0]["extensions"]["field"], "phoneNumber");
    }
    let body = app
        .gql(CREATE, json!({"input": {"phoneNumber": "+14155551234", "displayName": "", "provider": "CLOUD_API",
              "messagesPerSecond": 0, "inactivityTimeoutSeconds": 2}}))
        .await;
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"));
    assert_eq!(
        error_fields(&body),
        [
            "displayName",
            "messagesPerSecond",
            "inactivityTimeoutSeconds",
            "cloudApi"
        ]
    );

    let mut missing = cloud_input("+14155551234", "PNID-2");
    missing["input"]["cloudApi"]["accessToken"] = json!(" ");
    missing["input"]["cloudApi"]["apiBaseUrl"] = json!("ftp://x");
    let body = app.gql(CREATE, missing).await;
    assert_eq!(
        error_fields(&body),
        ["cloudApi.accessToken", "cloudApi.apiBaseUrl"]
    );

    let mut sandbox_with_creds = cloud_input("+14155551234", "PNID-2");
    sandbox_with_creds["input"]["provider"] = json!("SANDBOX");
    assert_eq!(
        error_fields(&app.gql(CREATE, sandbox_with_creds).await),
        ["cloudApi"]
    );

    assert_eq!(
        app.ok("{ senders { edges { node { id } } } }", json!({}))
            .await["senders"]["edges"],
        json!([]),
        "nothing was stored"
    );
}

async fn duplicate_numbers_are_refused(app: TestApp) {
    app.ok(CREATE, cloud_input("+14155551400", "PNID-9")).await;
    let same_phone = app
        .gql(CREATE, cloud_input("+14155551400", "PNID-10"))
        .await;
    assert_eq!(error_fields(&same_phone), ["phoneNumber"]);
    // A Cloud API number id routes Meta's webhooks, so it is unique across workspaces.
    let other = app.other_workspace().await;
    let same_pnid = app
        .gql_as(Some(&other), CREATE, cloud_input("+14155551401", "PNID-9"))
        .await;
    assert_eq!(error_fields(&same_pnid), ["cloudApi.phoneNumberId"]);
}

async fn updates_follow_the_provider_rules(app: TestApp) {
    let sandbox = app.sandbox_sender("+14155551500").await;
    let update = "mutation($id: ID!, $input: UpdateSenderInput!) { updateSender(id: $id, input: $input) { \
                  displayName status messagesPerSecond inactivityTimeoutSeconds \
                  cloudApi { phoneNumberId accessTokenSet } } }";
    let data = app
        .ok(
            update,
            json!({"id": sandbox, "input": {"status": "OFFLINE", "displayName": "Night shift",
              "messagesPerSecond": 10, "inactivityTimeoutSeconds": 600}}),
        )
        .await;
    assert_eq!(
        data["updateSender"],
        json!({"displayName": "Night shift", "status": "OFFLINE", "messagesPerSecond": 10,
               "inactivityTimeoutSeconds": 600, "cloudApi": null})
    );
    let creds_on_sandbox = app
        .gql(
            update,
            json!({"id": sandbox, "input": {"cloudApi": {"accessToken": "x"}}}),
        )
        .await;
    assert_eq!(error_fields(&creds_on_sandbox), ["cloudApi"]);

    let cloud =
        app.ok(CREATE, cloud_input("+14155551501", "PNID-20")).await["createSender"]["id"].clone();
    let status = app
        .gql(update, json!({"id": cloud, "input": {"status": "ONLINE"}}))
        .await;
    assert_eq!(error_code(&status), Some("VALIDATION_FAILED"));
    assert_eq!(error_fields(&status), ["status"]);
    let rotated = app
        .ok(update, json!({"id": cloud, "input": {"cloudApi": {"accessToken": "EAAG-rotated", "phoneNumberId": "PNID-21"}}}))
        .await;
    assert_eq!(
        rotated["updateSender"]["cloudApi"],
        json!({"phoneNumberId": "PNID-21", "accessTokenSet": true})
    );
    let row = sender::Entity::find_by_id(cloud.as_str().unwrap().parse::<uuid::Uuid>().unwrap())
        .one(&app.services.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        app.services
            .secrets
            .decrypt(row.access_token_enc.as_deref().unwrap())
            .unwrap(),
        "EAAG-rotated"
    );
    assert_eq!(
        app.services
            .secrets
            .decrypt(row.app_secret_enc.as_deref().unwrap())
            .unwrap(),
        SECRETS[1]
    );
}

async fn deleting_a_sender_removes_its_templates(app: TestApp) {
    let sender_id = app.sandbox_sender("+14155551600").await;
    let template = app
        .ok(
            "mutation($input: CreateTemplateInput!) { createTemplate(input: $input) { id } }",
            json!({"input": {"senderId": sender_id, "name": "hello", "language": "en", "category": "UTILITY",
                   "components": {"body": "Hi"}}}),
        )
        .await;
    let deleted = app
        .ok(
            "mutation($id: ID!) { deleteSender(id: $id) }",
            json!({"id": sender_id}),
        )
        .await;
    assert_eq!(deleted["deleteSender"], sender_id.as_str());
    let gone = app
        .gql(
            "query($id: ID!) { sender(id: $id) { id } }",
            json!({"id": sender_id}),
        )
        .await;
    assert_eq!(error_code(&gone), Some("NOT_FOUND"));
    let template_gone = app
        .gql(
            "query($id: ID!) { template(id: $id) { id } }",
            json!({"id": template["createTemplate"]["id"]}),
        )
        .await;
    assert_eq!(error_code(&template_gone), Some("NOT_FOUND"));
    let again = app
        .gql(
            "mutation($id: ID!) { deleteSender(id: $id) }",
            json!({"id": sender_id}),
        )
        .await;
    assert_eq!(error_code(&again), Some("NOT_FOUND"));
}

waflow_tests::on_both_databases!(
    sandbox_sender_is_created_online_with_defaults,
    cloud_api_secrets_are_write_only_and_encrypted,
    bad_sender_input_is_refused_with_the_field_named,
    duplicate_numbers_are_refused,
    updates_follow_the_provider_rules,
    deleting_a_sender_removes_its_templates,
);
