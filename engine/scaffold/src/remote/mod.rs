//! An OpenAI-compatible server as a [`Backend`]: our own `k2 serve`, llama.cpp's server, vLLM,
//! SGLang. Plan, best-of-N and verification run against it unchanged.
//!
//! Each of the `n` completions is one streamed request on its own thread (servers differ in
//! whether they honour `n`; a batching server batches concurrent requests anyway), with the
//! seed derived as for local rows. Connection failures before any answer are retried with
//! backoff, as are 429/503 answers within their `Retry-After`; a stream that breaks halfway is
//! never re-sent (the text already streamed would be duplicated) but reported. A server is
//! held to what was asked of it (`limits`): bytes in proportion to `max_tokens`, lines of
//! bounded length, and a time limit for the whole answer.

mod limits;
pub mod sse;

use std::io::{BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k2_protocol::FinishReason;

use crate::backend::{
    derive_seed, Backend, CancelToken, ChatMessage, Completion, GenerateOptions, SamplingParams,
};
use crate::error::{Result, ScaffoldError};
use crate::openai::{
    error_message, excerpt, read_finish_reason, ChatChunk, ChatCompletion, ChatCompletionRequest,
    ModelList, Usage,
};
use crate::think::DEFAULT_THINK_TAGS;
use limits::{LimitedReader, StreamLimits};
use sse::{LimitExceeded, SseItem, SseReader};

/// The longest `Retry-After` the client waits out before reporting the server busy.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// The server's base URL, with or without `/v1` (`http://lab-server:8000`).
    pub url: String,
    /// Bearer token, if the server wants one.
    pub token: Option<String>,
    /// The model to ask for; `None` takes the first the server lists.
    pub model: Option<String>,
    /// Stream completions (`true`) or ask for whole answers.
    pub stream: bool,
    pub connect_timeout: Duration,
    /// How long the server may stay silent (before its first byte, or between chunks).
    pub idle_timeout: Duration,
    /// How long a whole answer may take; `None`: the idle timeout plus a second per token
    /// asked for (`limits::StreamLimits`). Stops a server that trickles, which the idle
    /// timeout alone never would.
    pub answer_timeout: Option<Duration>,
    /// Retries of a request that could not connect or was refused as busy.
    pub retries: u32,
    /// How the front end names these settings, for errors that say what to change.
    pub settings: SettingNames,
}

/// How the front end that configured a remote backend names its settings, so that an error
/// tells its user what to change there: the CLI's options (`--backend-token`), or plain words
/// where there are no such options (the desktop app, issue 28).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingNames {
    pub model: &'static str,
    pub token: &'static str,
    /// [`RemoteConfig::idle_timeout`].
    pub idle_timeout: &'static str,
    /// [`RemoteConfig::answer_timeout`].
    pub answer_timeout: &'static str,
}

impl SettingNames {
    /// Plain words, for a front end without options of its own for these settings.
    pub const IN_WORDS: SettingNames = SettingNames {
        model: "the model name",
        token: "the server's token",
        idle_timeout: "the server's timeout",
        answer_timeout: "the time allowed for an answer",
    };
}

impl RemoteConfig {
    pub fn new(url: impl Into<String>) -> Self {
        RemoteConfig {
            url: url.into(),
            token: None,
            model: None,
            stream: true,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            answer_timeout: None,
            retries: 3,
            settings: SettingNames::IN_WORDS,
        }
    }
}

pub struct RemoteBackend {
    config: RemoteConfig,
    /// `…/v1`, no trailing slash.
    api: String,
    model: String,
    agent: ureq::Agent,
}

impl RemoteBackend {
    /// Connects: checks the address and the token by listing the server's models, and picks
    /// the model. Fails with the reason (unreachable, refused token, unknown model).
    pub fn connect(config: RemoteConfig) -> Result<Self> {
        let api = api_base(&config.url)?;
        let agent = ureq::AgentBuilder::new()
            // Every request opens its own connection: a pooled one may have been closed by
            // the server (idle timeout, restart) and a POST on it cannot be safely retried.
            // Completions are long streams, so a connection per request costs nothing.
            .max_idle_connections(0)
            .timeout_connect(config.connect_timeout)
            .timeout_read(config.idle_timeout)
            .timeout_write(config.idle_timeout)
            .build();
        let mut backend = RemoteBackend {
            api,
            model: String::new(),
            agent,
            config,
        };
        let listed = backend.list_models()?;
        backend.model = match &backend.config.model {
            Some(wanted) => {
                // Servers that list nothing (or list aliases) still get the name asked for.
                if !listed.is_empty() && !listed.iter().any(|m| m == wanted) {
                    tracing::warn!(model = %wanted, listed = ?listed, "the server does not list this model; asking for it anyway");
                }
                wanted.clone()
            }
            None => listed.into_iter().next().ok_or_else(|| {
                backend.error(format!(
                    "the server lists no models; name the one to use ({})",
                    backend.config.settings.model
                ))
            })?,
        };
        Ok(backend)
    }

    pub fn model_name(&self) -> &str {
        &self.model
    }

    fn error(&self, message: impl Into<String>) -> ScaffoldError {
        ScaffoldError::Remote {
            url: self.config.url.clone(),
            message: message.into(),
        }
    }

    fn list_models(&self) -> Result<Vec<String>> {
        let mut request = self.agent.get(&format!("{}/models", self.api));
        if let Some(token) = &self.config.token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        let response = request
            .call()
            .map_err(|e| self.error(describe(e, &self.config.settings)))?;
        let list: ModelList = response
            .into_json()
            .map_err(|e| self.error(format!("GET /v1/models: not a model list ({e})")))?;
        Ok(list.data.into_iter().map(|m| m.id).collect())
    }
}

impl Backend for RemoteBackend {
    fn describe(&self) -> String {
        format!("{} at {}", self.model, self.config.url)
    }

    fn complete(
        &self,
        messages: &[ChatMessage],
        n: usize,
        options: &GenerateOptions,
        cancel: &CancelToken,
        on_delta: &mut dyn FnMut(usize, &str),
    ) -> Result<Vec<Completion>> {
        let abandon = Arc::new(AtomicBool::new(false));
        let (sender, receiver) = mpsc::channel::<Message>();
        let limits = StreamLimits::new(
            options.max_tokens,
            self.config.idle_timeout,
            self.config.answer_timeout,
        )
        .changed_with(self.config.settings);
        for row in 0..n {
            let seed = derive_seed(options.sampling.seed, row);
            let row_options = GenerateOptions {
                sampling: SamplingParams {
                    seed,
                    ..options.sampling.clone()
                },
                ..options.clone()
            };
            let request = ChatCompletionRequest::from_options(
                &self.model,
                messages,
                &row_options,
                self.config.stream,
            );
            let body = serde_json::to_string(&request)
                .map_err(|e| self.error(format!("cannot encode the request: {e}")))?;
            let call = Call {
                agent: self.agent.clone(),
                url: format!("{}/chat/completions", self.api),
                token: self.config.token.clone(),
                retries: self.config.retries,
                body,
                row,
                sender: sender.clone(),
                abandon: abandon.clone(),
                limits,
            };
            std::thread::Builder::new()
                .name(format!("k2-remote-{row}"))
                .spawn(move || call.run())
                .map_err(|e| self.error(format!("cannot start a request thread: {e}")))?;
        }
        drop(sender);

        let mut texts = vec![String::new(); n];
        let mut done: Vec<Option<Completion>> = vec![None; n];
        let result = loop {
            if done.iter().all(Option::is_some) {
                break Ok(());
            }
            if cancel.is_cancelled() {
                break Err(ScaffoldError::Cancelled);
            }
            // Also while a request waits for its answer to begin, which no read limits.
            if Instant::now() >= limits.deadline {
                break Err(self.error(limits.deadline_error()));
            }
            match receiver.recv_timeout(Duration::from_millis(50)) {
                Ok(Message::Delta(row, text)) => {
                    on_delta(row, &text);
                    texts[row].push_str(&text);
                }
                Ok(Message::Done(row, Ok(completion))) => done[row] = Some(completion),
                Ok(Message::Done(_, Err(message))) => break Err(self.error(message)),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    break Err(self.error("a request thread ended without a result"))
                }
            }
        };
        // Requests still streaming stop at their next chunk and close their connections.
        abandon.store(true, Ordering::Relaxed);
        match result {
            Ok(()) => Ok(done.into_iter().flatten().collect()),
            Err(ScaffoldError::Cancelled) => Ok(texts
                .into_iter()
                .zip(done)
                .map(|(text, done)| {
                    done.unwrap_or(Completion {
                        text,
                        prompt_tokens: 0,
                        tokens: 0,
                        finish: FinishReason::Cancelled,
                        seconds: 0.0,
                        drafted_tokens: 0,
                        accepted_draft_tokens: 0,
                        target_passes: 0,
                    })
                })
                .collect()),
            Err(e) => Err(e),
        }
    }
}

/// The OpenAI API root of a user-given server address.
fn api_base(url: &str) -> Result<String> {
    let trimmed = url.trim().trim_end_matches('/');
    if !(trimmed.starts_with("http://") || trimmed.starts_with("https://")) {
        return Err(ScaffoldError::InvalidSetting(format!(
            "backend URL `{url}` must start with http:// or https://"
        )));
    }
    Ok(if trimmed.ends_with("/v1") {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/v1")
    })
}

enum Message {
    Delta(usize, String),
    Done(usize, std::result::Result<Completion, String>),
}

/// One completion request, run on its own thread.
struct Call {
    agent: ureq::Agent,
    url: String,
    token: Option<String>,
    retries: u32,
    body: String,
    row: usize,
    sender: mpsc::Sender<Message>,
    abandon: Arc<AtomicBool>,
    limits: StreamLimits,
}

impl Call {
    fn run(self) {
        let started = Instant::now();
        let result = self.send().and_then(|response| {
            let streamed = response
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/event-stream"));
            let mut assembler = TextAssembler::default();
            let reader = BufReader::new(LimitedReader::new(response.into_reader(), self.limits));
            let outcome = if streamed {
                self.read_stream(reader, &mut assembler)
            } else {
                self.read_whole(reader, &mut assembler)
            };
            outcome.map(|(finish, usage)| Completion {
                tokens: usage.map_or(assembler.chunks, |u| u.completion_tokens),
                prompt_tokens: usage.map_or(0, |u| u.prompt_tokens),
                text: assembler.text,
                finish,
                seconds: started.elapsed().as_secs_f64(),
                drafted_tokens: 0,
                accepted_draft_tokens: 0,
                target_passes: 0,
            })
        });
        let _ = self.sender.send(Message::Done(self.row, result));
    }

    /// Sends the request, retrying what is safe to retry: a connection that never opened,
    /// and a busy answer (429/503) whose `Retry-After` is short.
    fn send(&self) -> std::result::Result<ureq::Response, String> {
        let mut attempt = 0;
        loop {
            let mut request = self
                .agent
                .post(&self.url)
                .set("Content-Type", "application/json");
            if let Some(token) = &self.token {
                request = request.set("Authorization", &format!("Bearer {token}"));
            }
            let wait = match request.send_string(&self.body) {
                Ok(response) => return Ok(response),
                Err(ureq::Error::Status(code, response)) if code == 429 || code == 503 => {
                    let retry_after = response
                        .header("retry-after")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs)
                        .unwrap_or(Duration::from_secs(1 << attempt.min(4)));
                    let error =
                        describe(ureq::Error::Status(code, response), &self.limits.settings);
                    if attempt >= self.retries || retry_after > MAX_RETRY_AFTER {
                        return Err(error);
                    }
                    tracing::warn!(%error, ?retry_after, "server busy; retrying");
                    retry_after
                }
                Err(e @ ureq::Error::Transport(_)) if is_connect_error(&e) => {
                    let error = describe(e, &self.limits.settings);
                    if attempt >= self.retries {
                        return Err(error);
                    }
                    tracing::warn!(%error, attempt, "cannot connect; retrying");
                    Duration::from_millis(250 << attempt.min(5))
                }
                Err(e) => return Err(describe(e, &self.limits.settings)),
            };
            if self.abandon.load(Ordering::Relaxed) {
                return Err("cancelled".into());
            }
            std::thread::sleep(wait);
            attempt += 1;
        }
    }

    fn read_stream(
        &self,
        reader: impl std::io::BufRead,
        assembler: &mut TextAssembler,
    ) -> std::result::Result<(FinishReason, Option<Usage>), String> {
        let mut events = SseReader::new(reader);
        let mut finish = None;
        let mut usage = None;
        loop {
            if self.abandon.load(Ordering::Relaxed) {
                return Ok((FinishReason::Cancelled, usage));
            }
            let item = events
                .next_item()
                .map_err(|e| read_error(&e, assembler, &self.limits.settings))?;
            let data = match item {
                Some(SseItem::Data(data)) => data,
                Some(SseItem::Done) => break,
                None if finish.is_some() => break,
                None => {
                    return Err(format!(
                        "the server closed the stream mid-answer (after {} characters); the partial answer was not retried",
                        assembler.text.chars().count()
                    ))
                }
            };
            let chunk: ChatChunk = serde_json::from_str(&data).map_err(|e| {
                format!(
                    "malformed stream: `{}` is not a completion chunk ({e})",
                    excerpt(&data, 120)
                )
            })?;
            if let Some(error) = chunk.error {
                return Err(format!("the server reported an error: {}", error.message));
            }
            usage = chunk.usage.or(usage);
            for choice in chunk.choices {
                if let Some(delta) = choice.delta {
                    let text = assembler
                        .push(delta.reasoning_content.as_deref(), delta.content.as_deref());
                    if let Some(error) = self.limits.check_text(assembler.text.len()) {
                        return Err(error);
                    }
                    self.emit(text);
                }
                if choice.finish_reason.is_some() || choice.k2_finish_reason.is_some() {
                    finish = Some(read_finish_reason(
                        choice.finish_reason.as_deref(),
                        choice.k2_finish_reason,
                    ));
                }
            }
        }
        self.emit(assembler.close());
        Ok((finish.unwrap_or(FinishReason::Complete), usage))
    }

    fn read_whole(
        &self,
        mut reader: impl Read,
        assembler: &mut TextAssembler,
    ) -> std::result::Result<(FinishReason, Option<Usage>), String> {
        let mut body = String::new();
        reader
            .read_to_string(&mut body)
            .map_err(|e| read_error(&e, assembler, &self.limits.settings))?;
        let response: ChatCompletion = serde_json::from_str(&body).map_err(|e| {
            format!(
                "malformed answer: `{}` is not a chat completion ({e})",
                excerpt(&body, 120)
            )
        })?;
        let choice = response
            .choices
            .into_iter()
            .next()
            .ok_or("malformed answer: the completion has no choices")?;
        let mut text = assembler.push(
            choice.message.reasoning_content.as_deref(),
            choice.message.content.as_deref(),
        );
        text.push_str(&assembler.close());
        if let Some(error) = self.limits.check_text(assembler.text.len()) {
            return Err(error);
        }
        self.emit(text);
        let finish = read_finish_reason(choice.finish_reason.as_deref(), choice.k2_finish_reason);
        Ok((finish, response.usage))
    }

    fn emit(&self, text: String) {
        if !text.is_empty() {
            let _ = self.sender.send(Message::Delta(self.row, text));
        }
    }
}

/// Builds the completion text: reasoning sent in its own field is put inside `<think>` tags,
/// so the scaffold reads reasoning the same way from every server.
#[derive(Default)]
struct TextAssembler {
    text: String,
    in_reasoning: bool,
    /// Chunks that carried text: the token count when the server reports none.
    chunks: usize,
}

impl TextAssembler {
    /// Adds a delta; returns the text to stream.
    fn push(&mut self, reasoning: Option<&str>, content: Option<&str>) -> String {
        let mut out = String::new();
        if let Some(r) = reasoning.filter(|r| !r.is_empty()) {
            if !self.in_reasoning {
                out.push_str(DEFAULT_THINK_TAGS.0);
                out.push('\n');
                self.in_reasoning = true;
            }
            out.push_str(r);
        }
        if let Some(c) = content.filter(|c| !c.is_empty()) {
            out.push_str(&self.end_reasoning());
            out.push_str(c);
        }
        if !out.is_empty() {
            self.chunks += 1;
        }
        self.text.push_str(&out);
        out
    }

    fn end_reasoning(&mut self) -> String {
        if self.in_reasoning {
            self.in_reasoning = false;
            format!("\n{}\n\n", DEFAULT_THINK_TAGS.1)
        } else {
            String::new()
        }
    }

    /// Closes reasoning left open by the end of the stream.
    fn close(&mut self) -> String {
        let tail = self.end_reasoning();
        self.text.push_str(&tail);
        tail
    }
}

fn read_error(e: &std::io::Error, assembler: &TextAssembler, settings: &SettingNames) -> String {
    let after = assembler.text.chars().count();
    if let Some(limit) = LimitExceeded::in_io(e) {
        return format!("{limit} (after {after} characters)");
    }
    match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => format!(
            "the server sent nothing for too long (after {after} characters); it may be hung or overloaded (raise {})",
            settings.idle_timeout
        ),
        _ => format!("the connection broke mid-answer (after {after} characters): {e}"),
    }
}

fn is_connect_error(e: &ureq::Error) -> bool {
    matches!(e, ureq::Error::Transport(t) if matches!(t.kind(), ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::Dns))
}

/// What a failed request means for the user.
fn describe(e: ureq::Error, settings: &SettingNames) -> String {
    match e {
        ureq::Error::Status(code, response) => {
            let retry_after = response.header("retry-after").map(str::to_owned);
            let message = response
                .into_string()
                .map(|b| error_message(&b))
                .unwrap_or_default();
            match code {
                401 | 403 => format!(
                    "the server refused the token (HTTP {code}: {message}); check {}",
                    settings.token
                ),
                404 => format!(
                    "not found (HTTP 404: {message}); check the URL and {}",
                    settings.model
                ),
                413 => format!("the request is too large for the server (HTTP 413: {message})"),
                429 | 503 => format!(
                    "the server is busy (HTTP {code}: {message}){}",
                    retry_after
                        .map(|s| format!("; it asks to retry in {s} s"))
                        .unwrap_or_default()
                ),
                400..=499 => format!("the server rejected the request (HTTP {code}: {message})"),
                _ => format!("the server failed (HTTP {code}: {message})"),
            }
        }
        ureq::Error::Transport(t) => match t.kind() {
            ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::Dns => {
                format!("cannot connect ({t}); is the server running at that address?")
            }
            ureq::ErrorKind::Io if t.to_string().contains("timed out") => format!(
                "the server did not answer in time ({t}); it may be hung or overloaded (raise {})",
                settings.idle_timeout
            ),
            _ => format!("the request failed: {t}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_base_accepts_root_or_v1() {
        assert_eq!(api_base("http://h:1").unwrap(), "http://h:1/v1");
        assert_eq!(api_base("http://h:1/v1/").unwrap(), "http://h:1/v1");
        assert!(api_base("h:1").is_err());
    }

    #[test]
    fn reasoning_fields_become_think_tags() {
        let mut a = TextAssembler::default();
        let mut out = a.push(Some("Let me"), None);
        out += &a.push(Some(" think."), None);
        out += &a.push(None, Some("The answer is 4."));
        out += &a.close();
        assert_eq!(out, "<think>\nLet me think.\n</think>\n\nThe answer is 4.");
        assert_eq!(a.text, out);
        assert_eq!(a.chunks, 3);

        let mut open = TextAssembler::default();
        let mut out = open.push(Some("cut off"), None);
        out += &open.close();
        assert_eq!(out, "<think>\ncut off\n</think>\n\n");
    }
}
