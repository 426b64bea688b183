//! `http_request`: calls a URL through the egress policy and keeps the answer (status, headers,
//! a body cut at 200 KiB). A dry run performs a GET when allowed, and answers a placeholder
//! otherwise.

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{Outcome, Simulation, StepContext, StepError, StepResult, StepType};
use crate::{
    Services, egress,
    flows::{limits::HOP_HEADER, validate::Checks},
};

const HTTP_METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
/// How long a request waits for its answer unless the step says.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a dry run's GET waits.
const DRY_RUN_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest response body a step keeps, so one large answer cannot bloat a run's state.
const MAX_BODY_BYTES: usize = 200 * 1024;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRequest {
    #[serde(default = "get")]
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub body: Option<Value>,
    pub timeout_seconds: Option<u64>,
}

fn get() -> String {
    "GET".into()
}

impl StepType for HttpRequest {
    const TYPE: &'static str = "http_request";

    fn validate(&self, path: &str, checks: &mut Checks<'_>) {
        checks.problems.check(
            HTTP_METHODS.contains(&self.method.to_uppercase().as_str()),
            format!("{path}.method"),
            format!("must be one of {}", HTTP_METHODS.join(", ")),
        );
        checks.templates(path, &[("url", Some(&self.url))]);
        for (name, value) in &self.headers {
            checks
                .sources
                .template(format!("{path}.headers.{name}"), value);
        }
        if let Some(body) = &self.body {
            checks.sources.value(&format!("{path}.body"), body);
        }
        if let Some(t) = self.timeout_seconds {
            checks.problems.check(
                (1..=120).contains(&t),
                format!("{path}.timeoutSeconds"),
                "must be 1 to 120",
            );
        }
        // A URL written out (no template in it) is held to the egress policy now; a rendered
        // one is when the request is made.
        if !self.url.contains("{{") && !self.url.contains("{%") {
            checks
                .problems
                .outgoing_url(checks.egress, &format!("{path}.url"), &self.url);
        }
    }

    async fn run(&self, cx: &StepContext<'_>) -> Result<Outcome, StepError> {
        let url = cx.render("url", &self.url).await?;
        let mut headers = Vec::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            let value = cx.render(&format!("headers.{name}"), value).await?;
            headers.push((name.clone(), value));
        }
        let body = match &self.body {
            Some(body) => Some(cx.render_value("body", body).await?),
            None => None,
        };
        let call = Call {
            method: &self.method,
            url: &url,
            headers: &headers,
            body: body.as_ref(),
            timeout: self
                .timeout_seconds
                .map_or(DEFAULT_TIMEOUT, Duration::from_secs),
            hop: cx.hop,
        };
        exchange(cx.services, call).await.map(Outcome::Output)
    }

    async fn simulate(&self, cx: &Simulation<'_>) -> Result<Outcome, StepError> {
        let input = cx.input;
        if !(cx.allow_http && self.method.eq_ignore_ascii_case("GET")) {
            // The answer's shape with an empty body: give `stepOutputs` (or allowHttp for a
            // GET) to trace steps that read the body.
            return Ok(Outcome::Output(
                json!({"dry_run": true, "performed": false, "status": 200, "headers": {},
                    "body": {}, "truncated": false, "request": input}),
            ));
        }
        let url = input["url"].as_str().unwrap_or_default();
        let headers: Vec<(String, String)> = input["headers"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect();
        let call = Call {
            method: "GET",
            url,
            headers: &headers,
            body: None,
            timeout: DRY_RUN_TIMEOUT,
            hop: cx.hop,
        };
        exchange(cx.services, call).await.map(Outcome::Output)
    }
}

/// One request of an http_request step, rendered.
pub struct Call<'c> {
    pub method: &'c str,
    pub url: &'c str,
    pub headers: &'c [(String, String)],
    pub body: Option<&'c Value>,
    pub timeout: Duration,
    /// The calling run's place in a chain; the request carries one more.
    pub hop: u32,
}

/// One request of an http_request step (or of its dry run), through the egress policy, and
/// its answer, of which at most `MAX_BODY_BYTES` are read.
pub async fn exchange(services: &Services, call: Call<'_>) -> StepResult {
    let Call {
        method,
        url,
        headers,
        body,
        timeout,
        hop,
    } = call;
    let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes())
        .map_err(|_| StepError::permanent(format!("method {method:?} is not an HTTP method")))?;
    let mut request = services
        .egress
        .request(method, url)
        .map_err(|refused| StepError::permanent(format!("HTTP_ERROR: {refused}")))?
        .timeout(timeout);
    // The chain's length is ours to say: a step cannot reset it.
    for (name, value) in headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case(HOP_HEADER))
    {
        request = request.header(name, value);
    }
    request = request.header(HOP_HEADER, (hop + 1).to_string());
    if let Some(body) = body {
        request = request.json(body);
    }
    let unreachable = |e: reqwest::Error| {
        StepError::transient(if e.is_timeout() {
            format!(
                "HTTP_ERROR: {url} did not answer within {} s",
                timeout.as_secs()
            )
        } else {
            format!("HTTP_ERROR: cannot reach {url}: {}", egress::describe(&e))
        })
    };
    let response = request.send().await.map_err(unreachable)?;
    let status = response.status();
    let response_headers: Map<String, Value> = response
        .headers()
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_owned(),
                Value::String(v.to_str().ok()?.to_owned()),
            ))
        })
        .collect();
    let (bytes, truncated) = egress::read_capped(response, MAX_BODY_BYTES)
        .await
        .map_err(unreachable)?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
    if !status.is_success() {
        return Err(StepError {
            message: format!("HTTP_ERROR: {url} answered {status}"),
            // A server error may pass; a client error will not, nor a loop (508: a chain of
            // flows calling webhooks that Waflow stopped).
            retryable: (status.is_server_error() && status.as_u16() != 508)
                || status.as_u16() == 429,
            retry_after: None,
        });
    }
    Ok(
        json!({"status": status.as_u16(), "headers": response_headers, "body": body,
        "truncated": truncated}),
    )
}
