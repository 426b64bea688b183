//! What an inbound message costs the database (issue 20's "work per unit"). Two reactions must
//! read before they act on a message: the runs waiting for the customer's reply, and the
//! campaign recipients it may answer. Most messages answer neither, so the message's write
//! transaction asks about both in the statement it opens with, and neither table is read again
//! unless something waits. And a new customer's first message does not look for a
//! conversation their contact, created by the same transaction, cannot have.

use serde_json::json;
use waflow_tests::{Backend, spawn_app_logging};

use crate::flows::{live_flow, run_flow, run_in};

const CUSTOMER: &str = "+14155550123";

async fn a_message_nothing_waits_for_reads_no_run_and_no_recipient(backend: Backend) {
    let Some((app, statements)) = spawn_app_logging(backend, &["flow_run", "campaign_recipient"]).await
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

/// The lookup of a (sender, contact) pair's active conversation, as the ORM writes it.
const CONVERSATION_LOOKUP: &str = "\"conversation\".\"contact_id\" =";

/// A contact created by the message's transaction has no conversation to look up; a known one
/// has.
async fn a_new_customers_first_message_looks_up_no_conversation(backend: Backend) {
    let Some((app, statements)) = spawn_app_logging(backend, &[CONVERSATION_LOOKUP]).await else {
        return;
    };
    let sender = app.sandbox_sender("+14155550199").await;
    for (text, lookups) in [("Hello", 0), ("Again", 1)] {
        statements.count(true);
        let message = app.customer_writes(&sender, CUSTOMER, text).await;
        let seen = statements.take();
        assert_eq!(seen.len(), lookups, "{text}: {seen:#?}");
        assert_eq!(message["conversation"]["messageCount"], lookups + 1);
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

mod a_new_customers_first_message_looks_up_no_conversation {
    #[tokio::test]
    async fn sqlite() {
        super::a_new_customers_first_message_looks_up_no_conversation(
            waflow_tests::Backend::Sqlite,
        )
        .await;
    }

    #[tokio::test]
    async fn postgres() {
        super::a_new_customers_first_message_looks_up_no_conversation(
            waflow_tests::Backend::Postgres,
        )
        .await;
    }
}
