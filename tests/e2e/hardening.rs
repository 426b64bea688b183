//! Limits that protect the server: query depth and complexity, body size, CORS, and the
//! endpoints a browser or load balancer reaches without a key.

use serde_json::json;
use waflow_tests::{Backend, error_code, spawn_app, spawn_server};

#[tokio::test]
async fn deep_and_costly_queries_are_refused() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    // The standard introspection query (15 levels) passes; one nested deeper than 16 does not.
    let of_type = |n: usize| "ofType { ".repeat(n) + "name" + &" }".repeat(n);
    let introspection = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {} }} }} }} }} }}",
        of_type(10)
    );
    let body = app.gql(&introspection, json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {} }} }} }} }} }}",
        of_type(12)
    );
    let deep = deep.as_str();
    let body = app.gql(deep, json!({})).await;
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("nested too deep"), "{body}");
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"));

    let costly: String = (0..300)
        .map(|i| format!("a{i}: workspace {{ id name createdAt }} "))
        .collect();
    let body = app.gql(&format!("{{ {costly} }}"), json!({})).await;
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("too complex"), "{body}");
    assert!(body["data"].is_null());
}

#[tokio::test]
async fn oversized_bodies_are_refused_unread() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let huge = format!("{{ workspace {{ id }} }} # {}", "x".repeat(2 * 1024 * 1024));
    let response = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth(&app.key)
        .json(&json!({"query": huge}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn health_and_graphiql_need_no_key() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let page = app.http.get(app.url("/graphql")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .to_lowercase()
            .contains("graphiql")
    );
}

/// Browsers on allowed origins may call the API; others get no CORS grant. Without configured
/// origins no cross-origin access is granted at all.
#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let with_cors = spawn_server(app.services.clone(), &["https://app.example.com"]).await;
    let preflight = |addr: std::net::SocketAddr, origin: &'static str| {
        let http = app.http.clone();
        async move {
            http.request(reqwest::Method::OPTIONS, format!("http://{addr}/graphql"))
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "authorization,content-type",
                )
                .send()
                .await
                .unwrap()
        }
    };
    let allowed = preflight(with_cors, "https://app.example.com").await;
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let allowed_headers = allowed.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        allowed_headers.contains("authorization"),
        "{allowed_headers}"
    );
    let refused = preflight(with_cors, "https://evil.example.com").await;
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let default = preflight(app.addr, "https://app.example.com").await;
    assert!(
        default
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

/// Input the schema itself rejects (an unknown enum value, a missing required field, a typo in a
/// field name) is answered with VALIDATION_FAILED and a message naming the bad part.
#[tokio::test]
async fn documents_the_schema_rejects_carry_a_code() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let create = "mutation($input: CreateSenderInput!) { createSender(input: $input) { id } }";
    let cases = [
        (
            create,
            json!({"input": {"phoneNumber": "+14155551234", "displayName": "A", "provider": "WHATSAPP"}}),
            "provider",
        ),
        (
            create,
            json!({"input": {"phoneNumber": "+14155551234", "provider": "SANDBOX"}}),
            "displayName",
        ),
        (
            "{ senders { edges { node { phoneNumbr } } } }",
            json!({}),
            "phoneNumbr",
        ),
        (
            "{ senders(first: \"ten\") { edges { cursor } } }",
            json!({}),
            "first",
        ),
    ];
    for (query, variables, named) in cases {
        let body = app.gql(query, variables).await;
        assert_eq!(
            error_code(&body),
            Some("VALIDATION_FAILED"),
            "{query}: {body}"
        );
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(named), "{message} should name {named}");
    }
}
