//! Every template and expression a workspace writes (flow values and conditions, campaign
//! variables, assistant prompts and scripted replies) is compiled and run here, never on the
//! server's own threads: in a small pool of sandbox processes (`waflow sandbox`, see `child`),
//! each with a cap on its memory, killed when a request takes too long. Within a request,
//! minijinja's fuel bounds the work and a byte budget bounds the output (`render`).
//!
//! | limit | value | what the user sees |
//! | --- | --- | --- |
//! | work | `render::FUEL` instructions | "it runs more than 200000 steps (the limit on work)" |
//! | output | `render::MAX_OUTPUT` bytes per request | "it gives more than 1024 KiB (the limit on output)" |
//! | memory | `child::MEMORY_LIMIT` per process | "it needs more than 384 MiB of memory (the limit on memory)" |
//! | time | `TIMEOUT` per request | "it takes longer than 2 s (the limit on time)" |
//!
//! A request waits for a free process; one workspace holds at most one process at a time, so a
//! workspace whose templates are hostile slows only itself.

pub mod child;
pub mod render;

use std::{
    collections::hash_map::DefaultHasher,
    hash::{Hash, Hasher},
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, BufReader},
    process::{ChildStdin, ChildStdout},
    sync::Semaphore,
};
use uuid::Uuid;

pub use render::Source;
use render::{Request, Response};

use crate::error::{Error, Result};

/// How long one request may take, compiling included.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// How long a request waits for a free process before it gives up (the sandbox is busy).
const QUEUE_TIMEOUT: Duration = Duration::from_secs(10);
/// Sandbox processes per server process.
const PROCESSES: usize = 2;
/// Workspaces are spread over this many lanes of one request at a time each.
const LANES: usize = 64;

/// Why a template gave no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// The template's fault (a syntax error, an undefined value, a limit): the same input fails
    /// again. The message is for the user.
    Template(String),
    /// Ours: no sandbox could be started or reached in time. Worth trying again.
    Unavailable(String),
}

impl TemplateError {
    pub fn is_ours(&self) -> bool {
        matches!(self, TemplateError::Unavailable(_))
    }
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TemplateError::Template(m) | TemplateError::Unavailable(m) => f.write_str(m),
        }
    }
}

impl TemplateError {
    /// As the error of a request: VALIDATION_FAILED on `field` when the template is at fault.
    pub fn on_field(self, field: &str) -> Error {
        match self {
            TemplateError::Template(m) => Error::field(field, m),
            TemplateError::Unavailable(m) => Error::Internal(m),
        }
    }
}

type Answer<T> = Result<T, TemplateError>;

/// The pool of sandbox processes. Cheap to clone.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("program", &self.inner.program)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum Program {
    Command {
        path: PathBuf,
        args: Vec<String>,
    },
    /// Nothing configured: every request fails (a Services built without a sandbox).
    Missing,
    /// Unit tests of this crate: no process, no memory or time limit.
    #[cfg(test)]
    InProcess,
}

struct Inner {
    program: Program,
    idle: Mutex<Vec<Process>>,
    processes: Semaphore,
    lanes: Vec<Semaphore>,
}

struct Process {
    // Killed when dropped (`kill_on_drop`).
    _child: tokio::process::Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Sandbox {
    fn with(program: Program) -> Self {
        Self {
            inner: Arc::new(Inner {
                program,
                idle: Mutex::new(Vec::new()),
                processes: Semaphore::new(PROCESSES),
                lanes: (0..LANES).map(|_| Semaphore::new(1)).collect(),
            }),
        }
    }

    /// Sandbox processes started as `path args…`, a program whose `main` calls
    /// `child::serve`.
    pub fn command(path: impl Into<PathBuf>, args: &[&str]) -> Self {
        Self::with(Program::Command {
            path: path.into(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        })
    }

    /// None: every request fails as unavailable. What a `Services` has until one is set.
    pub fn missing() -> Self {
        Self::with(Program::Missing)
    }

    #[cfg(test)]
    pub fn in_process() -> Self {
        Self::with(Program::InProcess)
    }

    /// Requests on behalf of `workspace_id`.
    pub fn for_workspace(&self, workspace_id: Uuid) -> Templates<'_> {
        Templates {
            sandbox: self,
            workspace_id,
        }
    }

    async fn call(&self, workspace_id: Uuid, request: Request) -> Answer<Response> {
        let path = match &self.inner.program {
            Program::Command { path, .. } => path,
            Program::Missing => {
                return Err(TemplateError::Unavailable(
                    "no template sandbox is configured".into(),
                ));
            }
            #[cfg(test)]
            Program::InProcess => return Ok(render::execute(request)),
        };
        let busy = || {
            TemplateError::Unavailable(format!(
                "the template sandbox is busy: no process free within {} s",
                QUEUE_TIMEOUT.as_secs()
            ))
        };
        let lane = &self.inner.lanes[lane_of(workspace_id)];
        let permits = async {
            let lane = lane.acquire().await;
            let process = self.inner.processes.acquire().await;
            (lane, process)
        };
        let (_lane, _process) = tokio::time::timeout(QUEUE_TIMEOUT, permits)
            .await
            .map_err(|_| busy())?;
        let bytes = serde_json::to_vec(&request)
            .map_err(|e| TemplateError::Unavailable(format!("cannot encode a request: {e}")))?;
        let idle = self.inner.idle.lock().expect("sandbox pool lock").pop();
        let mut process = match idle {
            Some(process) => process,
            None => self.spawn().map_err(|e| {
                TemplateError::Unavailable(format!(
                    "cannot start the template sandbox {}: {e}",
                    path.display()
                ))
            })?,
        };
        match tokio::time::timeout(TIMEOUT, process.exchange(&bytes)).await {
            Ok(Ok(response)) => {
                // A process that hit a limit may keep the memory it took: replace it.
                if !response.hit_a_limit() {
                    self.inner
                        .idle
                        .lock()
                        .expect("sandbox pool lock")
                        .push(process);
                }
                Ok(response)
            }
            // The process died: its memory limit (an allocation failed and it aborted).
            Ok(Err(error)) => {
                tracing::warn!(%workspace_id, %error, "a template sandbox process died");
                Err(TemplateError::Template(format!(
                    "it needs more than {} MiB of memory (the limit on memory)",
                    child::MEMORY_LIMIT >> 20
                )))
            }
            Err(_) => {
                tracing::warn!(%workspace_id, "a template ran out of time; its sandbox process is killed");
                Err(TemplateError::Template(format!(
                    "it takes longer than {} s (the limit on time)",
                    TIMEOUT.as_secs()
                )))
            }
        }
    }

    fn spawn(&self) -> std::io::Result<Process> {
        let Program::Command { path, args } = &self.inner.program else {
            unreachable!("only commands are spawned");
        };
        let mut child = tokio::process::Command::new(path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .env("RUST_BACKTRACE", "0")
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Ok(Process {
            _child: child,
            stdin,
            stdout,
        })
    }
}

fn lane_of(workspace_id: Uuid) -> usize {
    let mut hasher = DefaultHasher::new();
    workspace_id.hash(&mut hasher);
    (hasher.finish() % LANES as u64) as usize
}

impl Process {
    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<Response> {
        let length = u32::try_from(request.len())
            .ok()
            .filter(|n| *n as usize <= child::MAX_FRAME)
            .ok_or_else(|| std::io::Error::other("the request is too large"))?;
        self.stdin.write_all(&length.to_be_bytes()).await?;
        self.stdin.write_all(request).await?;
        self.stdin.flush().await?;
        let mut length = [0u8; 4];
        self.stdout.read_exact(&mut length).await?;
        let length = u32::from_be_bytes(length) as usize;
        if length > child::MAX_FRAME {
            return Err(std::io::Error::other("the answer is too large"));
        }
        let mut answer = vec![0; length];
        self.stdout.read_exact(&mut answer).await?;
        serde_json::from_slice(&answer).map_err(std::io::Error::other)
    }
}

/// The sandbox as one workspace uses it. Every answer's error names the source and what is
/// wrong with it.
pub struct Templates<'a> {
    sandbox: &'a Sandbox,
    workspace_id: Uuid,
}

fn unexpected(response: Response) -> TemplateError {
    TemplateError::Unavailable(format!("the template sandbox answered {response:?}"))
}

impl Templates<'_> {
    async fn call(&self, request: Request) -> Answer<Response> {
        match self.sandbox.call(self.workspace_id, request).await? {
            Response::Failed(message) => Err(TemplateError::Template(message)),
            response => Ok(response),
        }
    }

    /// A template to text; an undefined value is an error.
    pub async fn render(&self, source: &str, context: &Value) -> Answer<String> {
        let request = Request::Render {
            source: source.to_owned(),
            context: context.clone(),
        };
        match self.call(request).await? {
            Response::Text(text) => Ok(text),
            other => Err(unexpected(other)),
        }
    }

    /// An expression to its JSON value; undefined is an error.
    pub async fn eval(&self, source: &str, context: &Value) -> Answer<Value> {
        let request = Request::Eval {
            source: source.to_owned(),
            context: context.clone(),
        };
        match self.call(request).await? {
            Response::Value(value) => Ok(value),
            other => Err(unexpected(other)),
        }
    }

    pub async fn is_true(&self, source: &str, context: &Value) -> Answer<bool> {
        let request = Request::IsTrue {
            source: source.to_owned(),
            context: context.clone(),
        };
        match self.call(request).await? {
            Response::Bool(truth) => Ok(truth),
            other => Err(unexpected(other)),
        }
    }

    /// Every string in `value` rendered as a template, in one request; a string that is a
    /// single `{{ … }}` keeps the type of what it gives (a list, a number).
    pub async fn render_value(&self, value: &Value, context: &Value) -> Answer<Value> {
        let request = Request::RenderValue {
            value: value.clone(),
            context: context.clone(),
        };
        match self.call(request).await? {
            Response::Value(value) => Ok(value),
            other => Err(unexpected(other)),
        }
    }

    /// Compiles each source; for each, `None` or what is wrong with it. A source that breaks a
    /// limit while compiling (minijinja folds constant expressions) is found by checking the
    /// sources one by one.
    pub async fn check(&self, sources: Vec<Source>) -> Answer<Vec<Option<String>>> {
        if sources.is_empty() {
            return Ok(Vec::new());
        }
        match self.checked(sources.clone()).await {
            Err(TemplateError::Template(_)) if sources.len() > 1 => {
                let mut answers = Vec::with_capacity(sources.len());
                for source in sources {
                    answers.push(match self.checked(vec![source]).await {
                        Ok(mut one) => one.pop().flatten(),
                        Err(TemplateError::Template(m)) => Some(format!("is not usable: {m}")),
                        Err(ours) => return Err(ours),
                    });
                }
                Ok(answers)
            }
            Err(TemplateError::Template(m)) => Ok(vec![Some(format!("is not usable: {m}"))]),
            other => other,
        }
    }

    async fn checked(&self, sources: Vec<Source>) -> Answer<Vec<Option<String>>> {
        match self.call(Request::Check { sources }).await? {
            Response::Checked(answers) => Ok(answers),
            other => Err(unexpected(other)),
        }
    }
}

/// Template and expression sources gathered with the field each came from, to be checked in
/// one request (validation of a flow, a campaign, an assistant).
#[derive(Debug, Default)]
pub struct SourceChecks {
    items: Vec<(String, Source)>,
}

impl SourceChecks {
    pub fn template(&mut self, field: impl Into<String>, source: &str) {
        self.items
            .push((field.into(), Source::Template(source.to_owned())));
    }

    pub fn expression(&mut self, field: impl Into<String>, source: &str) {
        self.items
            .push((field.into(), Source::Expression(source.to_owned())));
    }

    /// Every string inside `value` as a template.
    pub fn value(&mut self, field: &str, value: &Value) {
        match value {
            Value::String(s) => self.template(field, s),
            Value::Array(items) => items.iter().for_each(|v| self.value(field, v)),
            Value::Object(map) => map.values().for_each(|v| self.value(field, v)),
            _ => {}
        }
    }

    /// Checks them all; answers the fields with what is wrong with each.
    pub async fn run(self, templates: &Templates<'_>) -> Result<Vec<(String, String)>> {
        let (fields, sources): (Vec<String>, Vec<Source>) = self.items.into_iter().unzip();
        let answers = templates
            .check(sources)
            .await
            .map_err(|e| e.on_field("template"))?;
        Ok(fields
            .into_iter()
            .zip(answers)
            .filter_map(|(field, problem)| Some((field, problem?)))
            .collect())
    }
}
