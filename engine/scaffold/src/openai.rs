//! The OpenAI chat-completions wire format: the one definition that our client (the remote
//! backend) writes and reads and our server (`k2 serve`) reads and writes, so the two cannot
//! drift apart.
//!
//! Requests: [`ChatCompletionRequest`], built from [`GenerateOptions`] by
//! [`ChatCompletionRequest::from_options`] and turned back into them by
//! [`ChatCompletionRequest::to_options`]; every sampling setting (temperature, top-k, top-p,
//! min-p, seed), `max_tokens`, `stop` and the reasoning effort (`reasoning_effort`) round-trip. `top_k` and `min_p` are not in OpenAI's
//! API but llama.cpp, vLLM and SGLang read them; they are sent only when they do something, so
//! servers that refuse unknown fields see them only when asked for.
//!
//! Two k2 extensions ride along, sent only when they differ from the default so other
//! servers never see them otherwise: `k2_thinking_budget` and `k2_loop_guard` (the
//! [`GenerateOptions`] fields of the same names), which `k2 serve` honours.
//!
//! A choice's `finish_reason` is one OpenAI clients know: `stop`, or `length` for an answer
//! cut short, which includes a loop the loop guard ended (typed clients reject values
//! outside OpenAI's list, and `length` tells them what matters: the text is unfinished).
//! k2's own reason goes next to it as `k2_finish_reason` (`"loop"`), which our client reads
//! first.
//!
//! Answers: [`ChatCompletion`], [`ChatChunk`], [`Usage`], [`TimeInfo`], [`ModelList`]. Parsing
//! is lenient: unknown fields are ignored and missing ones take defaults, as servers (vLLM,
//! SGLang, llama.cpp, ours) each add and leave out their own.

use k2_protocol::FinishReason;
use serde::{Deserialize, Serialize};

use crate::backend::{ChatMessage, GenerateOptions, SamplingParams};
use crate::error::{Result, ScaffoldError};
use k2_protocol::Effort;

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub messages: Vec<RequestMessage>,
    #[serde(default)]
    pub stream: bool,
    /// Asks for token counts in the last chunk (ignored by servers that do not know it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Not OpenAI's; llama.cpp's, vLLM's and SGLang's. 0 or negative (vLLM's -1) disables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i64>,
    /// Not OpenAI's; llama.cpp's, vLLM's and SGLang's. 0 disables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_p: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
    /// The newer name of `max_tokens`; wins where both are given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<usize>,
    /// Ours: [`GenerateOptions::thinking_budget`].
    #[serde(
        default,
        rename = "k2_thinking_budget",
        skip_serializing_if = "Option::is_none"
    )]
    pub thinking_budget: Option<usize>,
    /// Ours: [`GenerateOptions::loop_guard`]; sent only to turn the guard off.
    #[serde(
        default,
        rename = "k2_loop_guard",
        skip_serializing_if = "Option::is_none"
    )]
    pub loop_guard: Option<bool>,
    /// OpenAI's name for the reasoning effort (vLLM, SGLang and llama.cpp read it too). Kept as
    /// text so a value of OpenAI's we do not model (`minimal`, `xhigh`...) is read by
    /// [`ChatCompletionRequest::to_options`], not refused by the JSON parser.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
}

impl ChatCompletionRequest {
    /// The request for one completion of `messages` decoded with `options` (every sampling
    /// setting, `max_tokens` and `stop`), streamed (with usage in the last chunk) or whole.
    pub fn from_options(
        model: &str,
        messages: &[ChatMessage],
        options: &GenerateOptions,
        stream: bool,
    ) -> Self {
        let SamplingParams {
            temperature,
            top_k,
            top_p,
            min_p,
            seed,
        } = options.sampling.clone();
        ChatCompletionRequest {
            model: Some(model.to_owned()),
            messages: messages.iter().map(RequestMessage::from).collect(),
            stream,
            stream_options: stream.then_some(StreamOptions {
                include_usage: true,
            }),
            temperature: Some(temperature),
            top_p: Some(top_p),
            // Disabled is the default everywhere; leaving the field out keeps requests valid
            // for servers that refuse fields they do not know (OpenAI's own).
            top_k: (top_k > 0).then(|| i64::try_from(top_k).unwrap_or(i64::MAX)),
            min_p: (min_p > 0.0).then_some(min_p),
            seed: Some(seed),
            max_tokens: Some(options.max_tokens),
            max_completion_tokens: None,
            stop: (!options.stop.is_empty()).then(|| Stop::Many(options.stop.clone())),
            n: None,
            thinking_budget: options.thinking_budget,
            loop_guard: (!options.loop_guard).then_some(false),
            reasoning_effort: options.effort.map(|e| e.name().to_owned()),
        }
    }

    /// The options this request asks to decode with, validated. What it leaves out takes
    /// OpenAI's defaults (temperature 1, top-p 1, no top-k or min-p, no stop), except
    /// `max_tokens` (`default_max_tokens`), the seed (`fallback_seed`, e.g. a random one) and
    /// k2's own (no thinking budget, the loop guard on).
    pub fn to_options(
        &self,
        default_max_tokens: usize,
        fallback_seed: u64,
    ) -> Result<GenerateOptions> {
        let sampling = SamplingParams {
            temperature: self.temperature.unwrap_or(1.0),
            top_k: self
                .top_k
                .map_or(0, |k| usize::try_from(k.max(0)).unwrap_or(usize::MAX)),
            top_p: self.top_p.unwrap_or(1.0),
            min_p: self.min_p.unwrap_or(0.0),
            seed: self.seed.unwrap_or(fallback_seed),
        };
        let options = GenerateOptions {
            sampling,
            max_tokens: self
                .max_completion_tokens
                .or(self.max_tokens)
                .unwrap_or(default_max_tokens),
            stop: self.stop.clone().map(Stop::into_vec).unwrap_or_default(),
            thinking_budget: self.thinking_budget,
            loop_guard: self.loop_guard.unwrap_or(true),
            effort: self
                .reasoning_effort
                .as_deref()
                .map(effort_from_wire)
                .transpose()?,
        };
        options.validate()?;
        Ok(options)
    }

    /// The conversation, with each message's text.
    pub fn chat_messages(&self) -> Vec<ChatMessage> {
        self.messages
            .iter()
            .map(|m| ChatMessage::new(m.role.clone(), m.text()))
            .collect()
    }
}

/// `reasoning_effort` as OpenAI spells it. Its levels below `low` (`none`, `minimal`) ask for
/// as little thinking as there is, and above `high` (`xhigh`) for as much.
fn effort_from_wire(value: &str) -> Result<Effort> {
    match value {
        "none" | "minimal" => Ok(Effort::Low),
        "xhigh" => Ok(Effort::High),
        other => other.parse().map_err(|_| {
            ScaffoldError::InvalidSetting(format!(
                "unknown reasoning_effort `{other}` (use low, medium or high)"
            ))
        }),
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
}

impl RequestMessage {
    /// The text: the string, or the text parts joined by newlines.
    pub fn text(&self) -> String {
        match &self.content {
            None => String::new(),
            Some(Content::Text(t)) => t.clone(),
            Some(Content::Parts(parts)) => parts
                .iter()
                .filter(|p| p.kind == "text")
                .filter_map(|p| p.text.as_deref())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

impl From<&ChatMessage> for RequestMessage {
    fn from(m: &ChatMessage) -> Self {
        RequestMessage {
            role: m.role.clone(),
            content: Some(Content::Text(m.content.clone())),
        }
    }
}

/// Message content: a string, or a list of parts of which the text parts are read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// `stop`: one string or a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s],
            Stop::Many(v) => v,
        }
    }
}

/// A whole (non-streamed) completion, `"object": "chat.completion"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletion {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub choices: Vec<ResponseChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Cerebras-style timings (ours too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_info: Option<TimeInfo>,
    /// Ours: the options the server decoded with, after defaults (its random seed included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k2_options: Option<GenerateOptions>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseChoice {
    #[serde(default)]
    pub index: usize,
    #[serde(default)]
    pub message: MessageText,
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Ours: k2's own finish reason (see the module's notes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k2_finish_reason: Option<FinishReason>,
}

/// One `data:` chunk of a streamed completion, `"object": "chat.completion.chunk"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatChunk {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_info: Option<TimeInfo>,
    /// Some servers (ours) report a failure inside the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    #[serde(default)]
    pub index: usize,
    #[serde(default)]
    pub delta: Option<MessageText>,
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Ours: k2's own finish reason (see the module's notes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k2_finish_reason: Option<FinishReason>,
}

/// The `finish_reason` OpenAI clients are shown for k2's own reason: `length` for every
/// answer cut short (a limit or a loop), `stop` otherwise.
pub fn openai_finish_reason(finish: FinishReason) -> &'static str {
    match finish {
        FinishReason::Complete | FinishReason::Cancelled => "stop",
        FinishReason::MaxTokens | FinishReason::ContextFull | FinishReason::Loop => "length",
    }
}

/// k2's finish reason for a choice: `k2_finish_reason` when the server sent one (ours),
/// else read from OpenAI's `finish_reason` (`length` is the token limit; anything else,
/// or nothing, is a complete answer).
pub fn read_finish_reason(openai: Option<&str>, k2: Option<FinishReason>) -> FinishReason {
    match (k2, openai) {
        (Some(k2), _) => k2,
        (None, Some("length")) => FinishReason::MaxTokens,
        (None, _) => FinishReason::Complete,
    }
}

/// A message or a delta: the answer text and, from reasoning servers (DeepSeek, vLLM's
/// reasoning parsers), the reasoning as a separate field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageText {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, alias = "reasoning", skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: usize,
    #[serde(default)]
    pub completion_tokens: usize,
    #[serde(default)]
    pub total_tokens: usize,
}

/// Seconds queued, processing the prompt and generating, and when the request arrived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TimeInfo {
    #[serde(default)]
    pub queue_time: f64,
    #[serde(default)]
    pub prompt_time: f64,
    #[serde(default)]
    pub completion_time: f64,
    #[serde(default)]
    pub total_time: f64,
    #[serde(default)]
    pub created: u64,
}

/// An error body, `{"error": {...}}`, as a server sends it (also as a stream chunk).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ApiError,
}

/// An error, as the `error` of a body or of a stream chunk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    #[serde(default)]
    pub message: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// `GET /v1/models`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelList {
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub data: Vec<ModelEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry {
    pub id: String,
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub owned_by: String,
}

/// The `message` of an error body (`{"error":{"message":...}}`, or `{"detail":...}` as
/// FastAPI servers send), else the start of the body.
pub fn error_message(body: &str) -> String {
    #[derive(Deserialize)]
    struct Body {
        error: Option<ErrorField>,
        detail: Option<serde_json::Value>,
        message: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ErrorField {
        Object(ApiError),
        Text(String),
    }
    if let Ok(parsed) = serde_json::from_str::<Body>(body) {
        match (parsed.error, parsed.detail, parsed.message) {
            (Some(ErrorField::Object(e)), _, _) if !e.message.is_empty() => return e.message,
            (Some(ErrorField::Text(t)), _, _) => return t,
            (_, Some(serde_json::Value::String(d)), _) => return d,
            (_, Some(d), _) => return d.to_string(),
            (_, _, Some(m)) => return m,
            _ => {}
        }
    }
    excerpt(body, 200)
}

/// At most `max` characters of `text`, on one line.
pub fn excerpt(text: &str, max: usize) -> String {
    let flat: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() > max {
        format!("{}…", flat.chars().take(max).collect::<String>())
    } else {
        flat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_of_common_servers() {
        assert_eq!(
            error_message(r#"{"error":{"message":"Invalid API key","type":"auth"}}"#),
            "Invalid API key"
        );
        assert_eq!(error_message(r#"{"detail":"Not Found"}"#), "Not Found");
        assert_eq!(error_message(r#"{"error":"busy"}"#), "busy");
        assert_eq!(
            error_message("<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
    }

    /// Options with every field away from its default (and from OpenAI's defaults).
    fn distinctive_options() -> GenerateOptions {
        GenerateOptions {
            sampling: SamplingParams {
                temperature: 0.73,
                top_k: 17,
                top_p: 0.81,
                min_p: 0.07,
                seed: 0xDEAD_BEEF_1234,
            },
            max_tokens: 37,
            stop: vec!["</answer>".into(), "\n\nQ:".into()],
            thinking_budget: Some(23),
            loop_guard: false,
            effort: Some(Effort::Medium),
        }
    }

    #[test]
    fn every_option_round_trips_through_request_json() {
        let options = distinctive_options();
        assert_ne!(options.sampling, SamplingParams::default());
        let messages = [
            ChatMessage::system("Be brief."),
            ChatMessage::user("2 + 2?"),
        ];
        for stream in [false, true] {
            let request = ChatCompletionRequest::from_options("m", &messages, &options, stream);
            let json = serde_json::to_string(&request).unwrap();
            let value: serde_json::Value = serde_json::from_str(&json).unwrap();
            for field in [
                "temperature",
                "top_k",
                "top_p",
                "min_p",
                "seed",
                "max_tokens",
                "stop",
                "k2_thinking_budget",
                "k2_loop_guard",
                "reasoning_effort",
            ] {
                assert!(value.get(field).is_some(), "`{field}` is sent: {json}");
            }
            let parsed: ChatCompletionRequest = serde_json::from_str(&json).unwrap();
            assert_eq!(parsed, request);
            assert_eq!(parsed.to_options(1, 2).unwrap(), options, "{json}");
            assert_eq!(parsed.chat_messages(), messages);
            assert_eq!(parsed.stream, stream);
            assert_eq!(
                parsed.stream_options.is_some_and(|o| o.include_usage),
                stream
            );
        }

        // Defaults round-trip too, without sending what OpenAI's own API would refuse.
        let plain = GenerateOptions::default();
        let request = ChatCompletionRequest::from_options("m", &messages, &plain, false);
        let json = serde_json::to_value(&request).unwrap();
        for field in [
            "top_k",
            "min_p",
            "stop",
            "n",
            "stream_options",
            "k2_thinking_budget",
            "k2_loop_guard",
            "reasoning_effort",
        ] {
            assert!(json.get(field).is_none(), "`{field}` is left out: {json}");
        }
        let parsed: ChatCompletionRequest = serde_json::from_value(json).unwrap();
        assert_eq!(parsed.to_options(1, 2).unwrap(), plain);
    }

    #[test]
    fn foreign_requests_parse_leniently() {
        let request: ChatCompletionRequest = serde_json::from_str(
            r#"{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url"},{"type":"text","text":"b"}]}],
                "stop":"END","top_k":-1,"max_completion_tokens":9,"max_tokens":3,"logprobs":false,"user":"x"}"#,
        )
        .unwrap();
        assert_eq!(request.chat_messages(), [ChatMessage::user("a\nb")]);
        let options = request.to_options(100, 42).unwrap();
        assert_eq!(options.stop, ["END"]);
        assert_eq!(options.max_tokens, 9);
        assert_eq!(
            options.sampling,
            SamplingParams {
                temperature: 1.0,
                top_k: 0,
                top_p: 1.0,
                min_p: 0.0,
                seed: 42
            }
        );
        assert_eq!(options.effort, None);
        let bad: ChatCompletionRequest =
            serde_json::from_str(r#"{"messages":[],"min_p":1.5}"#).unwrap();
        assert!(bad.to_options(1, 1).is_err());
    }

    #[test]
    fn openai_effort_levels_map_onto_ours_and_unknown_ones_are_refused_clearly() {
        let effort = |value: &str| {
            let request = ChatCompletionRequest {
                reasoning_effort: Some(value.into()),
                ..ChatCompletionRequest::default()
            };
            request.to_options(1, 1).map(|o| o.effort)
        };
        assert_eq!(effort("low").unwrap(), Some(Effort::Low));
        assert_eq!(effort("medium").unwrap(), Some(Effort::Medium));
        assert_eq!(effort("high").unwrap(), Some(Effort::High));
        assert_eq!(effort("minimal").unwrap(), Some(Effort::Low));
        assert_eq!(effort("xhigh").unwrap(), Some(Effort::High));
        let message = effort("max").unwrap_err().to_string();
        assert!(message.contains("reasoning_effort `max`"), "{message}");
    }

    #[test]
    fn answers_serialize_as_openai_clients_expect() {
        let chunk = ChatChunk {
            id: "c".into(),
            object: "chat.completion.chunk".into(),
            created: 5,
            model: "m".into(),
            choices: vec![ChunkChoice {
                index: 1,
                delta: Some(MessageText::default()),
                finish_reason: Some("stop".into()),
                k2_finish_reason: None,
            }],
            ..ChatChunk::default()
        };
        assert_eq!(
            serde_json::to_value(&chunk).unwrap(),
            serde_json::json!({"id":"c","object":"chat.completion.chunk","created":5,"model":"m",
                "choices":[{"index":1,"delta":{},"finish_reason":"stop"}]})
        );
        let back: ChatChunk =
            serde_json::from_value(serde_json::to_value(&chunk).unwrap()).unwrap();
        assert_eq!(back, chunk);
        let error = serde_json::to_string(&ErrorBody {
            error: ApiError {
                message: "boom".into(),
                kind: Some("server_error".into()),
            },
        })
        .unwrap();
        let parsed: ChatChunk = serde_json::from_str(&error).unwrap();
        assert_eq!(parsed.error.unwrap().message, "boom");
        assert!(parsed.choices.is_empty());
    }

    #[test]
    fn a_loop_reads_as_length_to_openai_clients_and_as_loop_to_ours() {
        let choice = ChunkChoice {
            finish_reason: Some(openai_finish_reason(FinishReason::Loop).into()),
            k2_finish_reason: Some(FinishReason::Loop),
            ..ChunkChoice::default()
        };
        let json = serde_json::to_value(&choice).unwrap();
        assert_eq!(json["finish_reason"], "length");
        assert_eq!(json["k2_finish_reason"], "loop");
        let back: ChunkChoice = serde_json::from_value(json).unwrap();
        assert_eq!(
            read_finish_reason(back.finish_reason.as_deref(), back.k2_finish_reason),
            FinishReason::Loop
        );
        // Other servers send only OpenAI's field.
        assert_eq!(
            read_finish_reason(Some("length"), None),
            FinishReason::MaxTokens
        );
        assert_eq!(
            read_finish_reason(Some("stop"), None),
            FinishReason::Complete
        );
        assert_eq!(read_finish_reason(None, None), FinishReason::Complete);
        for finish in [
            FinishReason::Complete,
            FinishReason::MaxTokens,
            FinishReason::ContextFull,
            FinishReason::Cancelled,
            FinishReason::Loop,
        ] {
            assert!(["stop", "length"].contains(&openai_finish_reason(finish)));
        }
    }

    #[test]
    fn a_zero_thinking_budget_is_refused() {
        let bad: ChatCompletionRequest =
            serde_json::from_str(r#"{"messages":[],"k2_thinking_budget":0}"#).unwrap();
        assert!(bad.to_options(1, 1).is_err());
    }

    #[test]
    fn reasoning_field_aliases() {
        let c: ChatChunk =
            serde_json::from_str(r#"{"choices":[{"delta":{"reasoning":"hmm"}}]}"#).unwrap();
        let d = c.choices[0].delta.as_ref().unwrap();
        assert_eq!(d.reasoning_content.as_deref(), Some("hmm"));
    }
}
