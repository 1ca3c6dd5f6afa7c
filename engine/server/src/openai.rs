//! `POST /v1/chat/completions` and `GET /v1/models`, as OpenAI clients expect them, plus
//! Cerebras-style `time_info` (queue, prompt and completion seconds) next to `usage`.

use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use k2_engine::chat::ChatMessage;
use k2_engine::generate::{CancelToken, GenerateOptions, Generation, StopReason};
use k2_engine::sample::SamplingParams;
use k2_engine::serving::{ServeEvent, ServeRequest};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct ChatCompletionRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub messages: Vec<RequestMessage>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_p: Option<f32>,
    #[serde(default)]
    pub max_tokens: Option<usize>,
    /// The newer name of `max_tokens`.
    #[serde(default)]
    pub max_completion_tokens: Option<usize>,
    #[serde(default)]
    pub stop: Option<Stop>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub n: Option<usize>,
}

#[derive(Debug, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Deserialize)]
pub struct RequestMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
}

/// Message content: a string, or a list of parts of which the text parts are read.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

/// A request turned into what the scheduler runs.
struct Prepared {
    request: ServeRequest,
    n: usize,
    include_usage: bool,
}

impl ChatCompletionRequest {
    fn prepare(self, state: &AppState) -> Result<Prepared, ApiError> {
        if let Some(model) = &self.model {
            if !model.is_empty() && model != &state.model_id {
                return Err(ApiError::not_found(format!(
                    "model `{model}` is not served here; this server serves `{}`",
                    state.model_id
                )));
            }
        }
        if self.messages.is_empty() {
            return Err(ApiError::bad_request("`messages` is empty"));
        }
        let messages: Vec<ChatMessage> = self
            .messages
            .into_iter()
            .map(|m| {
                let content = match m.content {
                    None => String::new(),
                    Some(Content::Text(t)) => t,
                    Some(Content::Parts(parts)) => parts
                        .into_iter()
                        .filter(|p| p.kind == "text")
                        .filter_map(|p| p.text)
                        .collect::<Vec<_>>()
                        .join("\n"),
                };
                ChatMessage::new(m.role, content)
            })
            .collect();

        let limit = state.limits.max_tokens;
        let max_tokens = self
            .max_completion_tokens
            .or(self.max_tokens)
            .unwrap_or(limit);
        if max_tokens > limit {
            return Err(ApiError::bad_request(format!(
                "max_tokens is {max_tokens}, above this server's limit of {limit}"
            )));
        }
        let n = self.n.unwrap_or(1);
        let max_rows = state.scheduler.config().max_rows;
        if n == 0 || n > max_rows {
            return Err(ApiError::bad_request(format!(
                "n must be between 1 and {max_rows}"
            )));
        }
        let stop = match self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s],
            Some(Stop::Many(v)) => v,
        };
        if stop.len() > 4 {
            return Err(ApiError::bad_request("at most 4 stop sequences"));
        }
        let sampling = SamplingParams {
            temperature: self.temperature.unwrap_or(1.0),
            top_p: self.top_p.unwrap_or(1.0),
            seed: self.seed.unwrap_or_else(rand::random),
            ..SamplingParams::default()
        };
        sampling
            .validate()
            .map_err(|e| ApiError::bad_request(e.to_string()))?;

        let prompt_ids = state
            .model
            .chat_prompt_ids(&messages)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(Prepared {
            request: ServeRequest {
                prompt_ids,
                n,
                options: GenerateOptions {
                    sampling,
                    max_tokens,
                    stop,
                },
            },
            n,
            include_usage: self.stream_options.is_some_and(|o| o.include_usage),
        })
    }
}

pub async fn models(State(state): State<AppState>) -> Json<Value> {
    let created = unix_seconds(state.started);
    Json(json!({
        "object": "list",
        "data": [{
            "id": state.model_id,
            "object": "model",
            "created": created,
            "owned_by": "k2-tutor",
        }]
    }))
}

pub async fn chat_completions(
    State(state): State<AppState>,
    Json(request): Json<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    let stream = request.stream;
    let prepared = request.prepare(&state)?;
    let events = state
        .scheduler
        .submit(prepared.request.clone(), CancelToken::new())?;
    let answer = Answer::new(
        &state.model_id,
        prepared.n,
        prepared.request.prompt_ids.len(),
    );
    if stream {
        Ok(streamed(answer, events, prepared.include_usage))
    } else {
        whole(answer, events).await
    }
}

/// What is known of an answer as its events arrive.
struct Answer {
    id: String,
    created: u64,
    model: String,
    prompt_tokens: usize,
    queue_seconds: f64,
    rows: Vec<Option<Generation>>,
}

impl Answer {
    fn new(model: &str, n: usize, prompt_tokens: usize) -> Self {
        Answer {
            id: format!("chatcmpl-{}", crate::token::generate()),
            created: unix_seconds(SystemTime::now()),
            model: model.to_owned(),
            prompt_tokens,
            queue_seconds: 0.0,
            rows: vec![None; n],
        }
    }

    fn is_complete(&self) -> bool {
        self.rows.iter().all(Option::is_some)
    }

    fn usage(&self) -> Value {
        let completion: usize = self
            .rows
            .iter()
            .flatten()
            .map(|g| g.stats.generated_tokens)
            .sum();
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        })
    }

    /// Seconds queued, processing the prompt, and generating (the slowest row's).
    fn time_info(&self) -> Value {
        let finished = self.rows.iter().flatten();
        let prompt = finished
            .clone()
            .map(|g| g.stats.prefill_seconds)
            .fold(0.0, f64::max);
        let completion = finished.map(|g| g.stats.decode_seconds).fold(0.0, f64::max);
        json!({
            "queue_time": self.queue_seconds,
            "prompt_time": prompt,
            "completion_time": completion,
            "total_time": self.queue_seconds + prompt + completion,
            "created": self.created,
        })
    }

    fn chunk(&self, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        })
    }
}

fn finish_reason(reason: StopReason) -> &'static str {
    match reason {
        StopReason::EndOfGeneration | StopReason::StopString | StopReason::Cancelled => "stop",
        StopReason::MaxTokens | StopReason::ContextFull => "length",
    }
}

async fn whole(
    mut answer: Answer,
    mut events: mpsc::UnboundedReceiver<ServeEvent>,
) -> Result<Response, ApiError> {
    while !answer.is_complete() {
        match events.recv().await {
            Some(ServeEvent::Admitted { queue_seconds }) => answer.queue_seconds = queue_seconds,
            Some(ServeEvent::Delta { .. }) => {}
            Some(ServeEvent::Finished { row, generation }) => answer.rows[row] = Some(generation),
            Some(ServeEvent::Failed { message }) => {
                return Err(ApiError::unavailable(format!(
                    "generation failed: {message}"
                )))
            }
            None => return Err(ApiError::unavailable("the scheduler stopped")),
        }
    }
    let choices: Vec<Value> = answer
        .rows
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, g)| {
            json!({
                "index": i,
                "message": {"role": "assistant", "content": g.text},
                "finish_reason": finish_reason(g.stop_reason),
            })
        })
        .collect();
    Ok(Json(json!({
        "id": answer.id,
        "object": "chat.completion",
        "created": answer.created,
        "model": answer.model,
        "choices": choices,
        "usage": answer.usage(),
        "time_info": answer.time_info(),
    }))
    .into_response())
}

/// Streams chunks as the rows produce text. A client that disconnects drops the response
/// stream, which closes the channel to the scheduler, which then frees the rows.
fn streamed(
    mut answer: Answer,
    mut events: mpsc::UnboundedReceiver<ServeEvent>,
    include_usage: bool,
) -> Response {
    let (out, stream) = mpsc::channel::<Result<SseEvent, Infallible>>(64);
    tokio::spawn(async move {
        let send = |value: Value| {
            let out = out.clone();
            async move {
                out.send(Ok(SseEvent::default().data(value.to_string())))
                    .await
            }
        };
        let roles: Vec<Value> = (0..answer.rows.len())
            .map(|i| json!({"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}))
            .collect();
        if send(answer.chunk(Value::Array(roles))).await.is_err() {
            return;
        }
        while !answer.is_complete() {
            let next = tokio::select! {
                _ = out.closed() => return,
                event = events.recv() => event,
            };
            let chunk = match next {
                Some(ServeEvent::Admitted { queue_seconds }) => {
                    answer.queue_seconds = queue_seconds;
                    continue;
                }
                Some(ServeEvent::Delta { row, text }) => answer.chunk(json!([{
                    "index": row, "delta": {"content": text}, "finish_reason": null
                }])),
                Some(ServeEvent::Finished { row, generation }) => {
                    let reason = finish_reason(generation.stop_reason);
                    answer.rows[row] = Some(generation);
                    answer.chunk(json!([{"index": row, "delta": {}, "finish_reason": reason}]))
                }
                Some(ServeEvent::Failed { message }) => {
                    json!({"error": {"message": format!("generation failed: {message}"), "type": "server_error"}})
                }
                None => {
                    json!({"error": {"message": "the scheduler stopped", "type": "server_error"}})
                }
            };
            let failed = chunk.get("error").is_some();
            if send(chunk).await.is_err() || failed {
                return;
            }
        }
        if include_usage {
            let mut last = answer.chunk(json!([]));
            last["usage"] = answer.usage();
            last["time_info"] = answer.time_info();
            if send(last).await.is_err() {
                return;
            }
        }
        let _ = out.send(Ok(SseEvent::default().data("[DONE]"))).await;
    });
    Sse::new(ReceiverStream::new(stream))
        .keep_alive(KeepAlive::default())
        .into_response()
}

pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
