//! What an inbound message costs the database (issue 20's "work per unit"). Two reactions must
//! read before they act on a message: the runs waiting for the customer's reply, and the
//! campaign recipients it may answer. Most messages answer neither, so the message's write
//! transaction asks about both in the statement it opens with, and neither table is read again
//! unless something waits. And a message costs one statement on its conversation.

use serde_json::json;
use waflow_tests::{Backend, spawn_app_logging};

use crate::flows::{live_flow, run_flow, run_in};

const CUSTOMER: &str = "+14155550123";

async fn a_message_nothing_waits_for_reads_no_run_and_no_recipient(backend: Backend) {
    let Some((app, statements)) =
        spawn_app_logging(backend, &["flow_run", "campaign_recipient"]).await
    else {
        return;
    };
    let sender = app.sandbox_sender("+14155550199").await;

    statements.count(true);
    app.customer_writes(&sender, CUSTOMER, "Hello").await;
    let seen = statements.take();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    let opening = &seen[0];
    assert!(
        [
            "routes_version",
            "erased_message",
            "flow_run",
            "campaign_recipient"
        ]
        .iter()
        .all(|name| opening.contains(name)),
        "one statement asks about the erasure, the routes, the runs and the recipients: {opening}"
    );

    // A run waits for this customer: the message is handed to it.
    let (flow, _) = live_flow(
        &app,
        json!({"trigger": {"type": "manual"}, "steps": [
            {"id": "size", "type": "wait_for_reply", "timeoutSeconds": 60, "senderId": sender,
             "phone": CUSTOMER},
            {"id": "note", "type": "set_variables", "values": {"size": "{{ steps.size.message.message }}"}}]}),
    )
    .await;
    let run = run_flow(&app, &flow, json!({})).await;
    run_in(&app, &run, "WAITING").await;
    app.customer_writes(&sender, CUSTOMER, "M").await;
    let done = run_in(&app, &run, "SUCCEEDED").await;
    assert_eq!(done["vars"], json!({"size": "M"}));
}

/// The statements on conversations.
const CONVERSATIONS: &str = "\"conversation\"";
/// How the mutation's answer reads the conversation back: by its id, in the workspace.
const ANSWERS_READ: &str = "\"conversation\".\"workspace_id\" = ";

/// A message costs one statement on its conversation: a new customer's first message inserts
/// it (their contact, created by the same transaction, has none to look up), and a message in
/// a conversation that goes on finds and counts it with one `UPDATE`.
async fn a_message_costs_one_statement_on_its_conversation(backend: Backend) {
    let Some((app, statements)) = spawn_app_logging(backend, &[CONVERSATIONS]).await else {
        return;
    };
    let sender = app.sandbox_sender("+14155550199").await;
    for (text, verb, count) in [("Hello", "INSERT", 1), ("Again", "UPDATE", 2)] {
        statements.count(true);
        let message = app.customer_writes(&sender, CUSTOMER, text).await;
        // The mutation's answer reads the conversation back: that is the API's, not ingest's.
        let seen: Vec<String> = statements
            .take()
            .into_iter()
            .filter(|sql| !(sql.starts_with("SELECT") && sql.contains(ANSWERS_READ)))
            .collect();
        let verbs = waflow_tests::verbs(&seen);
        assert_eq!(verbs, [verb], "{text}: {seen:#?}");
        assert_eq!(message["conversation"]["messageCount"], count);
    }
}

mod a_message_nothing_waits_for_reads_no_run_and_no_recipient {
    #[tokio::test]
    async fn sqlite() {
        super::a_message_nothing_waits_for_reads_no_run_and_no_recipient(
            waflow_tests::Backend::Sqlite,
        )
        .await;
    }

    #[tokio::test]
    async fn postgres() {
        super::a_message_nothing_waits_for_reads_no_run_and_no_recipient(
            waflow_tests::Backend::Postgres,
        )
        .await;
    }
}

mod a_message_costs_one_statement_on_its_conversation {
    #[tokio::test]
    async fn sqlite() {
        super::a_message_costs_one_statement_on_its_conversation(waflow_tests::Backend::Sqlite)
            .await;
    }

    #[tokio::test]
    async fn postgres() {
        super::a_message_costs_one_statement_on_its_conversation(waflow_tests::Backend::Postgres)
            .await;
    }
}
