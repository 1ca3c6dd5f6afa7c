//! `POST /v1/chat/completions` and `GET /v1/models`, as OpenAI clients expect them, plus
//! Cerebras-style `time_info` (queue, prompt and completion seconds) next to `usage`.

use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use k2_engine::decode::plain::{CancelToken, GenerateOptions, Generation, StopReason};
use k2_engine::serving::{ServeEvent, ServeRequest};
use k2_protocol::FinishReason;
use k2_scaffold::openai::{
    self as wire, openai_finish_reason, ChatChunk, ChatCompletion, ChatCompletionRequest,
    ChunkChoice, ErrorBody, MessageText, ModelEntry, ModelList, ResponseChoice, TimeInfo, Usage,
};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::auth::Identity;
use crate::error::ApiError;
use crate::state::AppState;

/// A request turned into what the scheduler runs.
struct Prepared {
    request: ServeRequest,
    /// The think tag the prompt opened (see `ChatPrompt::stream_opening_tag`): sent first in
    /// every choice's content, so clients read the same self-describing text as the scaffold.
    opened_reasoning: Option<&'static str>,
    n: usize,
    stream: bool,
    include_usage: bool,
}

fn prepare(request: ChatCompletionRequest, state: &AppState) -> Result<Prepared, ApiError> {
    if let Some(model) = &request.model {
        if !model.is_empty() && model != &state.model_id {
            return Err(ApiError::not_found(format!(
                "model `{model}` is not served here; this server serves `{}`",
                state.model_id
            )));
        }
    }
    if request.messages.is_empty() {
        return Err(ApiError::bad_request("`messages` is empty"));
    }
    let limit = state.limits.max_tokens;
    let options: GenerateOptions = request
        .to_options(limit, rand::random())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if options.max_tokens > limit {
        return Err(ApiError::bad_request(format!(
            "max_tokens is {}, above this server's limit of {limit}",
            options.max_tokens
        )));
    }
    let n = request.n.unwrap_or(1);
    let max_rows = state.scheduler.config().max_rows;
    if n == 0 || n > max_rows {
        return Err(ApiError::bad_request(format!(
            "n must be between 1 and {max_rows}"
        )));
    }
    if options.stop.len() > 4 {
        return Err(ApiError::bad_request("at most 4 stop sequences"));
    }
    let prompt = state
        .model
        .chat_prompt(&request.chat_messages(), options.effort)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Prepared {
        request: ServeRequest {
            prompt_ids: prompt.ids,
            n,
            options,
        },
        opened_reasoning: prompt.opened_reasoning,
        n,
        stream: request.stream,
        include_usage: request.stream_options.is_some_and(|o| o.include_usage),
    })
}

pub async fn models(State(state): State<AppState>) -> Json<ModelList> {
    Json(ModelList {
        object: "list".into(),
        data: vec![ModelEntry {
            id: state.model_id.clone(),
            object: "model".into(),
            created: unix_seconds(state.started),
            owned_by: "k2-tutor".into(),
        }],
    })
}

pub async fn chat_completions(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Json(request): Json<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    // The model answers whatever it is asked, solutions included: a student's token gets the
    // tutor's runs (where student mode holds), not the raw model, unless the teacher allows it.
    if !identity.is_teacher() && !state.class.as_ref().is_some_and(|c| c.policy.student_chat) {
        return Err(ApiError::forbidden(
            "students use the tutor's runs; the teacher can allow chat with `k2 serve --student-chat`",
        ));
    }
    // Rendering runs the model's chat template, a program from the model file, and tokenizes
    // the prompt: off the async workers, so a slow one holds neither other requests nor
    // `/health` (the template's own limits end it, see `k2_engine::chat`).
    let prepared = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || prepare(request, &state))
            .await
            .map_err(|e| ApiError::internal(format!("the request could not be prepared ({e})")))??
    };
    let events = state
        .scheduler
        .submit(prepared.request.clone(), CancelToken::new())?;
    let answer = Answer::new(
        &state.model_id,
        prepared.n,
        prepared.request.prompt_ids.len(),
        prepared.opened_reasoning.unwrap_or_default(),
    );
    if prepared.stream {
        Ok(streamed(answer, events, prepared.include_usage))
    } else {
        whole(answer, events, prepared.request.options).await
    }
}

/// What is known of an answer as its events arrive.
struct Answer {
    id: String,
    created: u64,
    model: String,
    prompt_tokens: usize,
    /// What every choice's content starts with: the think tag the prompt opened, or "".
    opening_tag: &'static str,
    queue_seconds: f64,
    rows: Vec<Option<Generation>>,
}

impl Answer {
    fn new(model: &str, n: usize, prompt_tokens: usize, opening_tag: &'static str) -> Self {
        Answer {
            opening_tag,
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

    fn usage(&self) -> Usage {
        let completion: usize = self
            .rows
            .iter()
            .flatten()
            .map(|g| g.stats.generated_tokens)
            .sum();
        Usage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: completion,
            total_tokens: self.prompt_tokens + completion,
        }
    }

    /// Seconds queued, processing the prompt, and generating (the slowest row's).
    fn time_info(&self) -> TimeInfo {
        let finished = self.rows.iter().flatten();
        let prompt = finished
            .clone()
            .map(|g| g.stats.prefill_seconds)
            .fold(0.0, f64::max);
        let completion = finished.map(|g| g.stats.decode_seconds).fold(0.0, f64::max);
        TimeInfo {
            queue_time: self.queue_seconds,
            prompt_time: prompt,
            completion_time: completion,
            total_time: self.queue_seconds + prompt + completion,
            created: self.created,
        }
    }

    fn chunk(&self, choices: Vec<ChunkChoice>) -> ChatChunk {
        ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices,
            ..ChatChunk::default()
        }
    }
}

/// A row's finish as the two fields of a choice: OpenAI's `finish_reason` and k2's own
/// `k2_finish_reason` (see `k2_scaffold::openai`: a loop is `length` to OpenAI clients).
fn finish_reasons(reason: StopReason) -> (Option<String>, Option<FinishReason>) {
    let finish = FinishReason::from(reason);
    (Some(openai_finish_reason(finish).into()), Some(finish))
}

async fn whole(
    mut answer: Answer,
    mut events: mpsc::UnboundedReceiver<ServeEvent>,
    options: GenerateOptions,
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
    let choices = answer
        .rows
        .iter()
        .flatten()
        .enumerate()
        .map(|(index, g)| ResponseChoice {
            index,
            message: MessageText {
                role: Some("assistant".into()),
                content: Some(format!("{}{}", answer.opening_tag, g.text)),
                reasoning_content: None,
            },
            finish_reason: finish_reasons(g.stop_reason).0,
            k2_finish_reason: finish_reasons(g.stop_reason).1,
        })
        .collect();
    Ok(Json(ChatCompletion {
        id: answer.id.clone(),
        object: "chat.completion".into(),
        created: answer.created,
        model: answer.model.clone(),
        choices,
        usage: Some(answer.usage()),
        time_info: Some(answer.time_info()),
        k2_options: Some(options),
    })
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
        let send = |data: String| {
            let out = out.clone();
            async move { out.send(Ok(SseEvent::default().data(data))).await }
        };
        let roles = (0..answer.rows.len())
            .map(|index| ChunkChoice {
                index,
                delta: Some(MessageText {
                    role: Some("assistant".into()),
                    content: Some(answer.opening_tag.into()),
                    reasoning_content: None,
                }),
                finish_reason: None,
                k2_finish_reason: None,
            })
            .collect();
        if send(data(&answer.chunk(roles))).await.is_err() {
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
                Some(ServeEvent::Delta { row, text }) => answer.chunk(vec![ChunkChoice {
                    index: row,
                    delta: Some(MessageText {
                        content: Some(text),
                        ..MessageText::default()
                    }),
                    finish_reason: None,
                    k2_finish_reason: None,
                }]),
                Some(ServeEvent::Finished { row, generation }) => {
                    let (finish_reason, k2_finish_reason) = finish_reasons(generation.stop_reason);
                    answer.rows[row] = Some(generation);
                    answer.chunk(vec![ChunkChoice {
                        index: row,
                        delta: Some(MessageText::default()),
                        finish_reason,
                        k2_finish_reason,
                    }])
                }
                Some(ServeEvent::Failed { message }) => {
                    let _ =
                        send(data(&server_error(format!("generation failed: {message}")))).await;
                    return;
                }
                None => {
                    let _ = send(data(&server_error("the scheduler stopped".into()))).await;
                    return;
                }
            };
            if send(data(&chunk)).await.is_err() {
                return;
            }
        }
        if include_usage {
            let last = ChatChunk {
                usage: Some(answer.usage()),
                time_info: Some(answer.time_info()),
                ..answer.chunk(Vec::new())
            };
            if send(data(&last)).await.is_err() {
                return;
            }
        }
        let _ = out.send(Ok(SseEvent::default().data("[DONE]"))).await;
    });
    Sse::new(ReceiverStream::new(stream))
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn server_error(message: String) -> ErrorBody {
    ErrorBody {
        error: wire::ApiError {
            message,
            kind: Some("server_error".into()),
        },
    }
}

/// A chunk or an error body, as one `data:` line.
fn data(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
