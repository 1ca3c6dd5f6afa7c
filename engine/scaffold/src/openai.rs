//! The OpenAI chat-completions wire format, as much of it as the client reads and writes.
//! Unknown fields are ignored: servers (vLLM, SGLang, llama.cpp, ours) each add their own.

use serde::{Deserialize, Serialize};

use crate::backend::ChatMessage;

#[derive(Debug, Serialize)]
pub struct ChatRequest<'a> {
    pub model: &'a str,
    pub messages: Vec<WireMessage<'a>>,
    pub stream: bool,
    pub max_tokens: usize,
    pub temperature: f32,
    pub top_p: f32,
    pub seed: u64,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub stop: &'a [String],
    /// Asks for token counts in the last chunk (ignored by servers that do not know it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
}

#[derive(Debug, Serialize)]
pub struct WireMessage<'a> {
    pub role: &'a str,
    pub content: &'a str,
}

impl<'a> From<&'a ChatMessage> for WireMessage<'a> {
    fn from(m: &'a ChatMessage) -> Self {
        WireMessage {
            role: &m.role,
            content: &m.content,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct StreamOptions {
    pub include_usage: bool,
}

/// One `data:` chunk of a streamed completion.
#[derive(Debug, Deserialize)]
pub struct ChatChunk {
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    #[serde(default)]
    pub usage: Option<Usage>,
    /// Some servers report a failure inside the stream.
    #[serde(default)]
    pub error: Option<ApiError>,
}

#[derive(Debug, Deserialize)]
pub struct ChunkChoice {
    #[serde(default)]
    pub delta: Option<MessageText>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// A message or a delta: the answer text and, from reasoning servers (DeepSeek, vLLM's
/// reasoning parsers), the reasoning as a separate field.
#[derive(Debug, Default, Deserialize)]
pub struct MessageText {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default, alias = "reasoning")]
    pub reasoning_content: Option<String>,
}

/// A whole (non-streamed) completion.
#[derive(Debug, Deserialize)]
pub struct ChatResponse {
    #[serde(default)]
    pub choices: Vec<ResponseChoice>,
    #[serde(default)]
    pub usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
pub struct ResponseChoice {
    #[serde(default)]
    pub message: MessageText,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: usize,
    #[serde(default)]
    pub completion_tokens: usize,
}

#[derive(Debug, Deserialize)]
pub struct ApiError {
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Deserialize)]
pub struct ModelList {
    #[serde(default)]
    pub data: Vec<ModelEntry>,
}

#[derive(Debug, Deserialize)]
pub struct ModelEntry {
    pub id: String,
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

    #[test]
    fn reasoning_field_aliases() {
        let c: ChatChunk =
            serde_json::from_str(r#"{"choices":[{"delta":{"reasoning":"hmm"}}]}"#).unwrap();
        let d = c.choices[0].delta.as_ref().unwrap();
        assert_eq!(d.reasoning_content.as_deref(), Some("hmm"));
    }
}
