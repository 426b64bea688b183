//! The GraphQL console at `GET /graphql`: GraphiQL served from the binary (no CDN), taking the
//! API key, checked in a real headless Chromium driven over the DevTools protocol.
//!
//! The browser test needs Chromium (`apt-get install -y chromium`; `WAFLOW_TEST_CHROMIUM` names
//! another binary). Without it the test says so loudly and passes, except on CI (`CI=true`),
//! where it fails.

use std::{collections::HashSet, path::PathBuf, process::Stdio, time::Duration};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use waflow_tests::{Backend, TestApp, spawn_app};

const PAGE_WAIT: Duration = Duration::from_secs(30);

/// The asset URLs of the page, as it references them.
fn asset_urls(page: &str) -> Vec<String> {
    page.split(['"', '\''])
        .filter(|part| part.starts_with("/graphql/assets/"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn console_is_served_from_the_binary() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let response = app.http.get(app.url("/graphql")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    let page = response.text().await.unwrap();
    assert!(
        !page.contains("http:") && !page.contains("https:") && !page.contains("//"),
        "the page must load nothing from elsewhere:\n{page}"
    );

    let assets = asset_urls(&page);
    let names: HashSet<_> = assets
        .iter()
        .map(|url| {
            url.trim_start_matches("/graphql/assets/")
                .split('?')
                .next()
                .unwrap()
        })
        .collect();
    for name in [
        "react.production.min.js",
        "react-dom.production.min.js",
        "graphiql.min.js",
        "graphiql.min.css",
        "console.js",
        "console.css",
    ] {
        assert!(names.contains(name), "{name} is not on the page:\n{page}");
    }
    for url in &assets {
        assert!(url.contains("?v="), "{url} has no version to bust caches");
        let response = app.http.get(app.url(url)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let kind = response.headers()["content-type"].to_str().unwrap();
        let expected = if url.contains(".css") {
            "text/css; charset=utf-8"
        } else {
            "text/javascript; charset=utf-8"
        };
        assert_eq!(kind, expected, "{url}");
        assert_eq!(
            response.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert!(!response.bytes().await.unwrap().is_empty(), "{url}");
    }
    for missing in ["/graphql/assets/nope.js", "/graphql/assets/..%2FCargo.toml"] {
        let response = app.http.get(app.url(missing)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{missing}");
    }
    // The API itself still wants its key.
    let refused = app.gql_as(None, "{ __typename }", json!({})).await;
    assert_eq!(waflow_tests::error_code(&refused), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn console_in_a_headless_browser_loads_the_schema_and_runs_queries_and_subscriptions() {
    let Some(chromium) = chromium() else {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "Chromium is required on CI for the console's browser test: apt-get install -y chromium"
        );
        eprintln!(
            "\n*** SKIPPED: no Chromium for the console's browser test; apt-get install -y chromium ***\n"
        );
        return;
    };
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let sender_id = app.sandbox_sender("+14155550100").await;
    let browser = Browser::launch(&chromium).await;
    let mut tab = browser.tab().await;
    let origin = app.url("");

    // First visit: the key comes in the fragment, once, with the document to open.
    tab.navigate(&console_url(
        &app,
        &[
            ("key", &app.key),
            ("query", "query Console { workspace { name } }"),
        ],
    ))
    .await;
    tab.wait_for(".graphiql-execute-button").await;

    // The key was stored, shown in the bar, and taken out of the address.
    assert_eq!(
        tab.eval("location.href").await,
        app.url("/graphql").as_str()
    );
    assert_eq!(
        tab.eval("localStorage.getItem('waflow:apiKey')").await,
        app.key.as_str()
    );
    assert_eq!(
        tab.eval("document.getElementById('waflow-key-input').value")
            .await,
        app.key.as_str()
    );

    // The schema loaded (with the key): the documentation explorer lists its root types.
    tab.click("button[aria-label='Show Documentation Explorer']")
        .await;
    tab.wait_for_text(".graphiql-doc-explorer", "SubscriptionRoot")
        .await;
    tab.wait_for_text(".graphiql-doc-explorer", "QueryRoot")
        .await;

    // A query answers.
    tab.click(".graphiql-execute-button").await;
    tab.wait_for_text(".graphiql-response", "\"name\": \"Test workspace\"")
        .await;

    // Second visit, no key in the address: the stored one is used, for a subscription too
    // (over /graphql/ws, the key in connection_init). Away first, so the page loads anew.
    tab.navigate("about:blank").await;
    tab.navigate(&console_url(
        &app,
        &[(
            "query",
            "subscription Inbound { messageReceived { message customerPhone } }",
        )],
    ))
    .await;
    tab.wait_for(".graphiql-execute-button").await;
    tab.click(".graphiql-execute-button").await;
    // The subscription starts when the WebSocket is acknowledged; until then messages pass
    // unseen, so keep writing until one shows.
    let deadline = tokio::time::Instant::now() + PAGE_WAIT;
    loop {
        app.customer_writes(&sender_id, "+14155550123", "Hello from the console")
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let shown = tab
            .eval("document.querySelector('.graphiql-response')?.innerText ?? ''")
            .await;
        if shown
            .as_str()
            .unwrap_or_default()
            .contains("\"message\": \"Hello from the console\"")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the subscription's event never showed; the response pane says: {shown}\n{}",
            tab.problems()
        );
    }

    // Everything the page loaded came from the server, and nothing went wrong on the way.
    let loaded = tab
        .eval("performance.getEntriesByType('resource').map(e => e.name)")
        .await;
    let loaded = loaded.as_array().unwrap();
    assert!(!loaded.is_empty());
    for resource in loaded {
        assert!(
            resource.as_str().unwrap().starts_with(&origin),
            "{resource} is not from {origin}"
        );
    }
    assert!(tab.errors.is_empty(), "{}", tab.problems());
    drop(app);
}

/// `/graphql#…` with `fragment` URL-encoded, as the console reads it.
fn console_url(app: &TestApp, fragment: &[(&str, &str)]) -> String {
    let mut encoded = reqwest::Url::parse("http://fragment.invalid/").unwrap();
    encoded.query_pairs_mut().extend_pairs(fragment);
    format!("{}#{}", app.url("/graphql"), encoded.query().unwrap())
}

/// The Chromium binary: `WAFLOW_TEST_CHROMIUM`, or the first of the usual names on PATH.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("WAFLOW_TEST_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// A headless Chromium of its own (own profile, killed when dropped) that can resolve no host
/// name: a page that tried to load anything from the internet would fail.
struct Browser {
    _process: tokio::process::Child,
    _profile: tempfile::TempDir,
    port: u16,
}

impl Browser {
    async fn launch(program: &std::path::Path) -> Self {
        let profile = tempfile::tempdir().unwrap();
        let process = tokio::process::Command::new(program)
            .args([
                "--headless=new",
                "--disable-gpu",
                "--no-sandbox",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        // Chromium writes the port it chose to this file, first line.
        let port_file = profile.path().join("DevToolsActivePort");
        let deadline = tokio::time::Instant::now() + PAGE_WAIT;
        let port = loop {
            if let Some(port) = tokio::fs::read_to_string(&port_file)
                .await
                .ok()
                .and_then(|text| text.lines().next()?.trim().parse().ok())
            {
                break port;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "Chromium did not open its DevTools port"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        Self {
            _process: process,
            _profile: profile,
            port,
        }
    }

    /// The DevTools session of the browser's first page.
    async fn tab(&self) -> Tab {
        let targets: Value = reqwest::get(format!("http://127.0.0.1:{}/json/list", self.port))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let page = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .expect("a page target");
        let (socket, _) =
            tokio_tungstenite::connect_async(page["webSocketDebuggerUrl"].as_str().unwrap())
                .await
                .expect("DevTools WebSocket");
        let mut tab = Tab {
            socket,
            next_id: 0,
            errors: Vec::new(),
        };
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            tab.call(domain, json!({})).await;
        }
        tab
    }
}

/// One page, over the Chrome DevTools Protocol. Errors the page reports (exceptions, console
/// errors, failed loads, CSP violations) are kept in `errors`.
struct Tab {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
    errors: Vec<Value>,
}

impl Tab {
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({"id": id, "method": method, "params": params});
        self.socket
            .send(Message::Text(request.to_string().into()))
            .await
            .unwrap();
        loop {
            let message = tokio::time::timeout(PAGE_WAIT, self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method}"))
                .expect("the DevTools connection closed")
                .unwrap();
            let Message::Text(text) = message else {
                continue;
            };
            let message: Value = serde_json::from_str(&text).unwrap();
            if message["id"] == id {
                assert!(message["error"].is_null(), "{method}: {message}");
                return message["result"].clone();
            }
            self.observe(message);
        }
    }

    fn observe(&mut self, event: Value) {
        let error = match event["method"].as_str() {
            Some("Runtime.exceptionThrown") => true,
            Some("Runtime.consoleAPICalled") => event["params"]["type"] == "error",
            Some("Log.entryAdded") => {
                let entry = &event["params"]["entry"];
                // Headless Chromium may ask for a favicon the server does not have.
                entry["level"] == "error"
                    && !entry["url"]
                        .as_str()
                        .is_some_and(|u| u.ends_with("/favicon.ico"))
            }
            _ => false,
        };
        if error {
            self.errors.push(event["params"].clone());
        }
    }

    fn problems(&self) -> String {
        format!("errors in the page: {:#?}", self.errors)
    }

    async fn navigate(&mut self, url: &str) {
        let result = self.call("Page.navigate", json!({"url": url})).await;
        assert!(result["errorText"].is_null(), "{url}: {result}");
    }

    /// Evaluates `expression` in the page; its value.
    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        assert!(
            result["exceptionDetails"].is_null(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    async fn wait_for(&mut self, selector: &str) {
        self.wait_for_text(selector, "").await;
    }

    /// Waits until an element matching `selector` exists and its text contains `text`.
    async fn wait_for_text(&mut self, selector: &str, text: &str) {
        let expression = format!(
            "document.querySelector({})?.innerText ?? null",
            json!(selector)
        );
        let deadline = tokio::time::Instant::now() + PAGE_WAIT;
        loop {
            let shown = self.eval(&expression).await;
            if shown.as_str().is_some_and(|shown| shown.contains(text)) {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                let response = self
                    .eval("document.querySelector('.graphiql-response')?.innerText ?? null")
                    .await;
                eprintln!("the response pane shows: {response}");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{selector} never showed {text:?}; it shows {shown}\n{}",
                self.problems()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn click(&mut self, selector: &str) {
        self.wait_for(selector).await;
        self.eval(&format!(
            "document.querySelector({}).click()",
            json!(selector)
        ))
        .await;
    }
}
