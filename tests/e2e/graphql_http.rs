//! GraphQL over HTTP (the graphql.github.io draft): the response's media type follows
//! `Accept`, status codes tell request errors from executed ones under
//! `application/graphql-response+json`, queries work over GET and mutations do not, and
//! requests that are not GraphQL requests get 4xx. The key is checked before all of it.

use serde_json::{Value, json};
use waflow_tests::{Backend, TestApp, error_code, spawn_app};

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

/// What a test looks at: the status, the media type (without parameters), the body as JSON.
struct Answer {
    status: u16,
    media: String,
    charset: Option<String>,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    async fn of(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let mut parts = content_type.split(';');
        let media = parts.next().unwrap().trim().to_owned();
        let charset = parts
            .filter_map(|p| p.trim().strip_prefix("charset="))
            .map(str::to_owned)
            .next();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("not JSON ({status} {content_type}): {text}"));
        Self {
            status,
            media,
            charset,
            headers,
            body,
        }
    }

    /// A request error: errors, and no `data` entry at all.
    fn is_request_error(&self) -> bool {
        self.body.get("data").is_none() && self.body["errors"][0]["message"].is_string()
    }
}

async fn post(app: &TestApp, accept: Option<&str>, body: Value) -> Answer {
    let mut request = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth(&app.key)
        .json(&body);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    Answer::of(request.send().await.unwrap()).await
}

async fn get(app: &TestApp, key: Option<&str>, accept: &str, query: &[(&str, &str)]) -> Answer {
    let mut request = app
        .http
        .get(app.url("/graphql"))
        .query(query)
        .header("accept", accept);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    Answer::of(request.send().await.unwrap()).await
}

const WORKSPACE: &str = "{ workspace { name } }";
const MISSING_CONTACT: &str = "{ contact(id: \"00000000-0000-0000-0000-000000000000\") { id } }";

#[tokio::test]
async fn accept_application_json_is_answered_in_application_json() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let answer = post(&app, Some(JSON), json!({"query": WORKSPACE})).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.media, JSON);
    assert!(
        answer
            .charset
            .as_deref()
            .is_none_or(|c| c.eq_ignore_ascii_case("utf-8"))
    );
    assert_eq!(answer.body["data"]["workspace"]["name"], "Test workspace");
    assert!(answer.body.get("errors").is_none());
    assert_eq!(
        answer.headers.get("vary").map(|v| v.to_str().unwrap()),
        Some("accept")
    );
}

#[tokio::test]
async fn graphql_response_json_answers_request_errors_with_400_and_no_data() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let accept = Some(GRAPHQL_RESPONSE);

    let ok = post(&app, accept, json!({"query": WORKSPACE})).await;
    assert_eq!((ok.status, ok.media.as_str()), (200, GRAPHQL_RESPONSE));
    assert_eq!(ok.body["data"]["workspace"]["name"], "Test workspace");

    // The client's preference wins over application/json when ranked higher.
    let both = post(
        &app,
        Some("application/graphql-response+json; charset=utf-8, application/json; charset=utf-8"),
        json!({"query": WORKSPACE}),
    )
    .await;
    assert_eq!((both.status, both.media.as_str()), (200, GRAPHQL_RESPONSE));

    for (what, request) in [
        (
            "a document that does not parse",
            json!({"query": "{ workspace {"}),
        ),
        (
            "a document that does not validate",
            json!({"query": "{ noSuchField }"}),
        ),
        (
            "an operation that is not in the document",
            json!({"query": "query A { workspace { name } }", "operationName": "B"}),
        ),
        (
            "a variable of the wrong type",
            json!({"query": "query($first: Int) { contacts(first: $first) { edges { node { id } } } }",
                   "variables": {"first": "ten"}}),
        ),
        (
            "a required variable without a value",
            json!({"query": "query($id: ID!) { contact(id: $id) { id } }", "variables": {}}),
        ),
        (
            "a required variable given null",
            json!({"query": "query($id: ID!) { contact(id: $id) { id } }", "variables": {"id": null}}),
        ),
    ] {
        let answer = post(&app, accept, request).await;
        assert_eq!(answer.status, 400, "{what}: {}", answer.body);
        assert_eq!(answer.media, GRAPHQL_RESPONSE, "{what}");
        assert!(answer.is_request_error(), "{what}: {}", answer.body);
        assert_eq!(
            error_code(&answer.body),
            Some("VALIDATION_FAILED"),
            "{what}: {}",
            answer.body
        );
    }

    // A field error during execution is a response with data: 200.
    let executed = post(&app, accept, json!({"query": MISSING_CONTACT})).await;
    assert_eq!(executed.status, 200, "{}", executed.body);
    assert_eq!(executed.media, GRAPHQL_RESPONSE);
    assert!(executed.body.get("data").is_some(), "{}", executed.body);
    assert_eq!(error_code(&executed.body), Some("NOT_FOUND"));
}

#[tokio::test]
async fn any_or_no_accept_gets_application_json_and_200_for_request_errors() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    for accept in ["*/*", "application/*", "text/html, */*;q=0.8"] {
        let ok = post(&app, Some(accept), json!({"query": WORKSPACE})).await;
        assert_eq!((ok.status, ok.media.as_str()), (200, JSON), "{accept}");
        assert_eq!(ok.body["data"]["workspace"]["name"], "Test workspace");
        // The legacy watershed: under application/json a request error is still 200.
        let invalid = post(&app, Some(accept), json!({"query": "{ noSuchField }"})).await;
        assert_eq!((invalid.status, invalid.media.as_str()), (200, JSON));
        assert!(invalid.is_request_error(), "{}", invalid.body);
        assert_eq!(error_code(&invalid.body), Some("VALIDATION_FAILED"));
    }

    // reqwest always sends an Accept header: this request has none.
    let (status, headers, body) =
        raw_post_without_accept(&app, r#"{"query":"{ noSuchField }"}"#).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        headers.contains("content-type: application/json"),
        "{headers}"
    );
    let body: Value = serde_json::from_str(&body).unwrap();
    assert!(
        body.get("data").is_none() && body["errors"].is_array(),
        "{body}"
    );
    let (status, headers, body) =
        raw_post_without_accept(&app, r#"{"query":"{ __typename }"}"#).await;
    assert_eq!(status, 200, "{body}");
    assert!(headers.contains("content-type: application/json"));
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["data"]["__typename"],
        "QueryRoot"
    );
}

/// A POST over a plain socket, without an `Accept` header: the status, the lowercased headers
/// and the body. Blocking I/O, off the runtime that serves the app.
async fn raw_post_without_accept(app: &TestApp, body: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let request = format!(
        "POST /graphql HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        app.addr,
        app.key,
        body.len()
    );
    let addr = app.addr;
    let response = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    })
    .await
    .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test]
async fn a_post_without_a_supported_content_type_gets_415() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let body = json!({"query": WORKSPACE}).to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/graphql"),
        Some("application/json; charset=iso-8859-1"),
    ] {
        let mut request = app
            .http
            .post(app.url("/graphql"))
            .bearer_auth(&app.key)
            .body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let answer = Answer::of(request.send().await.unwrap()).await;
        assert_eq!(answer.status, 415, "{content_type:?}: {}", answer.body);
        assert_eq!(answer.media, JSON);
        assert!(answer.is_request_error(), "{}", answer.body);
        assert_eq!(error_code(&answer.body), Some("UNSUPPORTED_MEDIA_TYPE"));
    }

    // application/json whose body is not a GraphQL request: 400 under either media type.
    for accept in [JSON, GRAPHQL_RESPONSE] {
        for body in [
            "NONSENSE",
            r#"{"query":"#,
            r#"{"qeury": "{ __typename }"}"#,
            r#"{"query": 7}"#,
            r#"{"query": "query Q($i: Int!) { __typename }", "variables": [7]}"#,
            r#"[{"query": "{ __typename }"}]"#,
        ] {
            let response = app
                .http
                .post(app.url("/graphql"))
                .bearer_auth(&app.key)
                .header("content-type", "application/json")
                .header("accept", accept)
                .body(body)
                .send()
                .await
                .unwrap();
            let answer = Answer::of(response).await;
            assert_eq!(answer.status, 400, "{accept} {body}: {}", answer.body);
            assert_eq!(answer.media, accept);
            assert!(answer.is_request_error(), "{}", answer.body);
            assert_eq!(error_code(&answer.body), Some("BAD_REQUEST"));
            if body.starts_with('[') {
                let message = answer.body["errors"][0]["message"].as_str().unwrap();
                assert!(message.contains("batched requests"), "{message}");
            }
        }
    }
}

#[tokio::test]
async fn queries_work_over_get_and_mutations_get_405() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let key = Some(app.key.as_str());

    let typename = get(&app, key, JSON, &[("query", "{__typename}")]).await;
    assert_eq!((typename.status, typename.media.as_str()), (200, JSON));
    assert_eq!(typename.body, json!({"data": {"__typename": "QueryRoot"}}));

    let with_variables = get(
        &app,
        key,
        GRAPHQL_RESPONSE,
        &[
            ("query", "query W($n: Int) { workspace { name } contacts(first: $n) { edges { node { id } } } }"),
            ("operationName", "W"),
            ("variables", r#"{"n": 3}"#),
        ],
    )
    .await;
    assert_eq!(with_variables.status, 200, "{}", with_variables.body);
    assert_eq!(with_variables.media, GRAPHQL_RESPONSE);
    assert_eq!(
        with_variables.body["data"]["workspace"]["name"],
        "Test workspace"
    );

    for (query, operation_name) in [
        (
            "mutation { createContact(input: {phone: \"+14155550101\"}) { id } }",
            None,
        ),
        (
            "query Q { __typename } mutation M { createContact(input: {phone: \"+14155550101\"}) { id } }",
            Some("M"),
        ),
    ] {
        let mut params = vec![("query", query)];
        params.extend(operation_name.map(|name| ("operationName", name)));
        for accept in [JSON, GRAPHQL_RESPONSE] {
            let refused = get(&app, key, accept, &params).await;
            assert_eq!(refused.status, 405, "{query}: {}", refused.body);
            assert_eq!(
                refused.headers.get("allow").map(|v| v.to_str().unwrap()),
                Some("POST")
            );
            assert_eq!(refused.media, accept);
            assert!(refused.is_request_error());
            assert_eq!(error_code(&refused.body), Some("METHOD_NOT_ALLOWED"));
        }
    }
    let contacts = app
        .ok(
            "{ contacts(first: 5) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        contacts["contacts"]["edges"],
        json!([]),
        "no mutation ran over GET"
    );

    // A GET without a query is not a GraphQL request, unless a browser asks for the console.
    let missing = get(&app, key, JSON, &[]).await;
    assert_eq!(missing.status, 400, "{}", missing.body);
    assert_eq!(error_code(&missing.body), Some("BAD_REQUEST"));
    for accept in ["text/html,application/xhtml+xml,*/*;q=0.8", "*/*"] {
        let page = app
            .http
            .get(app.url("/graphql"))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        assert!(
            page.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{accept}"
        );
    }

    // Validation failures over GET follow the same rules as over POST.
    let invalid = get(&app, key, GRAPHQL_RESPONSE, &[("query", "{ noSuchField }")]).await;
    assert_eq!(invalid.status, 400);
    assert!(invalid.is_request_error());
    let bad_variables = get(
        &app,
        key,
        GRAPHQL_RESPONSE,
        &[("query", "{__typename}"), ("variables", "[1]")],
    )
    .await;
    assert_eq!(bad_variables.status, 400);
    assert_eq!(error_code(&bad_variables.body), Some("BAD_REQUEST"));
}

#[tokio::test]
async fn an_accept_without_a_graphql_media_type_gets_406() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    for accept in [
        "text/plain",
        "text/html",
        "application/json; charset=iso-8859-1",
    ] {
        let answer = post(&app, Some(accept), json!({"query": WORKSPACE})).await;
        assert_eq!(answer.status, 406, "{accept}: {}", answer.body);
        assert_eq!(answer.media, JSON);
        assert!(answer.is_request_error());
        assert_eq!(error_code(&answer.body), Some("NOT_ACCEPTABLE"));
    }
    let over_get = get(
        &app,
        Some(app.key.as_str()),
        "text/plain",
        &[("query", "{__typename}")],
    )
    .await;
    assert_eq!(over_get.status, 406);
}

#[tokio::test]
async fn the_key_is_checked_before_anything_else() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let checks: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "a valid POST",
            app.http
                .post(app.url("/graphql"))
                .header("accept", GRAPHQL_RESPONSE)
                .json(&json!({"query": WORKSPACE})),
        ),
        (
            "a POST without a content type",
            app.http.post(app.url("/graphql")).body("{}"),
        ),
        (
            "a POST with an unacceptable Accept",
            app.http
                .post(app.url("/graphql"))
                .header("accept", "text/plain")
                .json(&json!({"query": WORKSPACE})),
        ),
        (
            "a GET query",
            app.http
                .get(app.url("/graphql"))
                .query(&[("query", "{__typename}")]),
        ),
        (
            "a GET mutation",
            app.http.get(app.url("/graphql")).query(&[(
                "query",
                "mutation { createContact(input: {phone: \"+14155550101\"}) { id } }",
            )]),
        ),
    ];
    for (what, request) in checks {
        for key in [None, Some("wf_not-a-real-key")] {
            let mut request = request.try_clone().unwrap();
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            let answer = Answer::of(request.send().await.unwrap()).await;
            assert_eq!(answer.status, 401, "{what} with {key:?}: {}", answer.body);
            assert_eq!(error_code(&answer.body), Some("UNAUTHENTICATED"), "{what}");
            assert!(answer.is_request_error(), "{what}: {}", answer.body);
        }
    }
    // A refusal is in the media type the client asked for.
    let refused = app
        .http
        .post(app.url("/graphql"))
        .header("accept", GRAPHQL_RESPONSE)
        .json(&json!({"query": WORKSPACE}))
        .send()
        .await
        .unwrap();
    let refused = Answer::of(refused).await;
    assert_eq!(
        (refused.status, refused.media.as_str()),
        (401, GRAPHQL_RESPONSE)
    );
}
