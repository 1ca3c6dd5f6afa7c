//! Chat templates: turning a conversation into the prompt text a model was trained on, using
//! the model's own Jinja template (GGUF `tokenizer.chat_template` or Hugging Face
//! `tokenizer_config.json`), rendered with minijinja.
//!
//! Templates are written for Python's Jinja2 as Hugging Face `transformers` runs it, so the
//! environment imitates that one: `trim_blocks` + `lstrip_blocks`, Python string/dict methods
//! (`.strip()`, `.startswith()`, `.items()` via minijinja-contrib's pycompat), a `tojson` that
//! matches `json.dumps` (", " / ": " separators, non-ASCII kept), `raise_exception`,
//! `strftime_now`, and `bos_token` / `eos_token` variables. Hugging Face's `{% generation %}`
//! marker is rewritten into plain Jinja before compiling (see [`generation_blocks`]).
//!
//! Reasoning models read keyword arguments that `apply_chat_template(**kwargs)` passes:
//! Qwen3's `enable_thinking`, K2 Horizon's `reasoning_effort`. [`TemplateOptions`] carries
//! them and [`ChatTemplate::reasoning_controls`] says which ones a template reads.

mod generation_blocks;

use crate::error::{EngineError, Result};
use candle_core::quantized::gguf_file::{Content, Value as GgufValue};
use k2_protocol::Effort;
use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Environment, ErrorKind};

use std::fmt::Write as _;
use std::path::Path;

pub use k2_scaffold::ChatMessage;

/// ChatML, used when a model ships no template (Qwen-style models understand it).
pub const CHATML_TEMPLATE: &str = "{%- for message in messages %}\
{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}\
{%- endfor %}\
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

const TEMPLATE_NAME: &str = "chat";

/// Steps (minijinja instructions) one render may take. Models come from the internet and a
/// template is a program: two nested loops over `range(100000)` would run for hours, holding
/// a CLI or a server worker. Real templates take 4,000 to 14,000 steps for a conversation of
/// 200 long messages (the bundled ones, measured by this module's tests); this is 150 times
/// that, and a render that spends it all takes well under a second.
const RENDER_FUEL: u64 = 2_000_000;

/// Bytes a rendered prompt may have: far more than any context holds (131,072 tokens are
/// well under 1 MB of text), so only a template that floods its output reaches it.
const MAX_RENDERED_BYTES: usize = 8 << 20;

// Templates are shared between runs on different threads.
const _: () = {
    const fn send_sync<T: Send + Sync + Clone>() {}
    send_sync::<ChatTemplate>();
};

/// The keyword arguments a render passes to the template besides the conversation. `None`
/// leaves a variable undefined, so the template's own default applies (as it does when
/// `transformers` is not given the kwarg).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TemplateOptions {
    /// `enable_thinking` (Qwen3, K2 Horizon): `false` renders an empty, closed think block.
    pub enable_thinking: Option<bool>,
    /// `reasoning_effort` as `"low"`, `"medium"` or `"high"` (K2 Horizon picks its think tag
    /// by it).
    pub reasoning_effort: Option<Effort>,
}

/// What a template offers to control reasoning, read once from its source. The engine maps a
/// run's effort onto these (`crate::reasoning`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReasoningControls {
    /// Reads `enable_thinking` (Qwen3, K2 Horizon).
    pub thinking_switch: bool,
    /// Reads `reasoning_effort` (K2 Horizon).
    pub effort_kwarg: bool,
    /// Writes K2 Horizon's `<ifm|think…>` tags, whose three variants are its effort levels.
    /// Such a template also requires a thinking field on every assistant turn.
    pub effort_tags: bool,
}

impl ReasoningControls {
    fn of_source(source: &str) -> Self {
        ReasoningControls {
            thinking_switch: source.contains("enable_thinking"),
            effort_kwarg: source.contains("reasoning_effort"),
            // The template may build the tag from pieces (`'<' ~ 'ifm|' ~ field ~ '>'`).
            effort_tags: source.contains("ifm|think"),
        }
    }
}

/// One message as templates see it. A struct, not a map, so its fields keep this order: a
/// template's `tojson` must print `role` before `content`, as Python's `json.dumps` of the
/// message dict does.
#[derive(serde::Serialize)]
struct TemplateMessage<'a> {
    role: &'a str,
    content: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
}

/// A compiled chat template. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    bos_token: String,
    eos_token: String,
    is_fallback: bool,
    reasoning: ReasoningControls,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bytes", &self.source.len())
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .field("is_fallback", &self.is_fallback)
            .finish()
    }
}

impl ChatTemplate {
    /// Compiles `source`. `bos_token` / `eos_token` are the texts templates see as variables.
    pub fn new(
        source: impl Into<String>,
        bos_token: impl Into<String>,
        eos_token: impl Into<String>,
    ) -> Result<Self> {
        Self::build(source.into(), bos_token.into(), eos_token.into(), false)
    }

    /// The ChatML fallback.
    pub fn chatml() -> Self {
        // The built-in template is known to compile; fall back to an empty one only if
        // minijinja ever rejects it, rather than panic.
        Self::build(
            CHATML_TEMPLATE.to_string(),
            String::new(),
            "<|im_end|>".to_string(),
            true,
        )
        .unwrap_or_else(|_| ChatTemplate {
            env: Environment::new(),
            source: String::new(),
            bos_token: String::new(),
            eos_token: String::new(),
            is_fallback: true,
            reasoning: ReasoningControls::default(),
        })
    }

    fn build(
        source: String,
        bos_token: String,
        eos_token: String,
        is_fallback: bool,
    ) -> Result<Self> {
        let mut env = Environment::new();
        env.set_fuel(Some(RENDER_FUEL));
        // Hugging Face renders with Jinja2(trim_blocks=True, lstrip_blocks=True).
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("tojson", tojson);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned(
            TEMPLATE_NAME,
            generation_blocks::strip_generation_blocks(&source)?,
        )
        .map_err(template_error)?;
        Ok(ChatTemplate {
            env,
            reasoning: ReasoningControls::of_source(&source),
            source,
            bos_token,
            eos_token,
            is_fallback,
        })
    }

    /// The template stored in a GGUF file (`tokenizer.chat_template`), with BOS/EOS texts from
    /// its vocabulary; ChatML when the file has none.
    pub fn from_gguf(content: &Content) -> Result<Self> {
        let token = |key: &str| -> String {
            let id = match content.metadata.get(key) {
                Some(GgufValue::U32(id)) => *id as usize,
                Some(GgufValue::I32(id)) if *id >= 0 => *id as usize,
                Some(GgufValue::U64(id)) => *id as usize,
                _ => return String::new(),
            };
            match content.metadata.get("tokenizer.ggml.tokens") {
                Some(GgufValue::Array(tokens)) => match tokens.get(id) {
                    Some(GgufValue::String(s)) => s.clone(),
                    _ => String::new(),
                },
                _ => String::new(),
            }
        };
        let source = match content.metadata.get("tokenizer.chat_template") {
            Some(GgufValue::String(source)) => Some(source.clone()),
            _ => None,
        };
        match usable_source(source) {
            Some(source) => Self::new(
                source,
                token("tokenizer.ggml.bos_token_id"),
                token("tokenizer.ggml.eos_token_id"),
            ),
            None => Ok(Self::chatml()),
        }
    }

    /// The template of a Hugging Face folder: `chat_template` in `tokenizer_config.json` (a
    /// string, or a list of named templates of which "default" is used), else a
    /// `chat_template.jinja` / `chat_template.json` beside it (newer `transformers` layout),
    /// else ChatML.
    pub fn from_tokenizer_config(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| EngineError::io(path, e))?;
        let config: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            EngineError::ChatTemplate(format!("{}: invalid JSON: {e}", path.display()))
        })?;
        let special = |key: &str| -> String {
            match config.get(key) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Object(o)) => o
                    .get("content")
                    .and_then(|c| c.as_str())
                    .unwrap_or_default()
                    .to_string(),
                _ => String::new(),
            }
        };
        let (bos, eos) = (special("bos_token"), special("eos_token"));

        let mut source = template_from_json(config.get("chat_template"), path)?;
        if source.is_none() {
            let jinja = path.with_file_name("chat_template.jinja");
            let json = path.with_file_name("chat_template.json");
            if jinja.exists() {
                source =
                    Some(std::fs::read_to_string(&jinja).map_err(|e| EngineError::io(&jinja, e))?);
            } else if json.exists() {
                let text = std::fs::read_to_string(&json).map_err(|e| EngineError::io(&json, e))?;
                let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                    EngineError::ChatTemplate(format!("{}: invalid JSON: {e}", json.display()))
                })?;
                source = template_from_json(v.get("chat_template"), &json)?;
            }
        }
        match usable_source(source) {
            Some(source) => Self::new(source, bos, eos),
            None => {
                let mut t = Self::chatml();
                t.bos_token = bos;
                if !eos.is_empty() {
                    t.eos_token = eos;
                }
                Ok(t)
            }
        }
    }

    /// Renders the conversation. With `add_generation_prompt`, the text ends where the
    /// assistant's reply begins (e.g. `<|im_start|>assistant\n`).
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        self.render_with(messages, add_generation_prompt, &TemplateOptions::default())
    }

    /// [`ChatTemplate::render`] with the reasoning kwargs of `options`.
    pub fn render_with(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        options: &TemplateOptions,
    ) -> Result<String> {
        self.render_counted(messages, add_generation_prompt, options)
            .map(|(text, _)| text)
    }

    /// [`ChatTemplate::render_with`] and the steps the render took.
    fn render_counted(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        options: &TemplateOptions,
    ) -> Result<(String, u64)> {
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(template_error)?;
        let mut context = vec![
            ("messages", self.template_messages(messages)),
            ("add_generation_prompt", Value::from(add_generation_prompt)),
            ("bos_token", Value::from(self.bos_token.as_str())),
            ("eos_token", Value::from(self.eos_token.as_str())),
        ];
        if let Some(enable) = options.enable_thinking {
            context.push(("enable_thinking", Value::from(enable)));
        }
        if let Some(effort) = options.reasoning_effort {
            context.push(("reasoning_effort", Value::from(effort.name())));
        }
        let mut out = BoundedOutput::default();
        match template.render_captured_to(Value::from_iter(context), &mut out) {
            Ok(captured) => {
                let steps = captured.state().fuel_levels().map_or(0, |(used, _)| used);
                let text = String::from_utf8(out.bytes).map_err(|_| {
                    EngineError::ChatTemplate("the rendered prompt is not valid UTF-8".into())
                })?;
                Ok((text, steps))
            }
            Err(_) if out.overflowed => Err(EngineError::TemplateLimit(format!(
                "wrote more than {} MB",
                MAX_RENDERED_BYTES >> 20
            ))),
            Err(e) if e.kind() == ErrorKind::OutOfFuel => Err(EngineError::TemplateLimit(format!(
                "ran too long (stopped after {RENDER_FUEL} steps)"
            ))),
            Err(e) => Err(template_error(e)),
        }
    }

    /// The conversation as the template sees it. K2 Horizon's template refuses an assistant
    /// turn without a thinking field; like llama.cpp, an empty `reasoning_content` is given to
    /// turns that have none (only there: Qwen3's template reads a defined one differently).
    fn template_messages(&self, messages: &[ChatMessage]) -> Value {
        let needs_thinking_field = self.reasoning.effort_tags;
        messages
            .iter()
            .map(|m| {
                Value::from_serialize(TemplateMessage {
                    role: &m.role,
                    content: &m.content,
                    reasoning_content: (needs_thinking_field && m.role == "assistant")
                        .then_some(""),
                })
            })
            .collect()
    }

    /// Which reasoning kwargs and tags this template knows.
    pub fn reasoning_controls(&self) -> ReasoningControls {
        self.reasoning
    }

    /// The Jinja source in use.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when the model had no template and ChatML is used instead.
    pub fn is_fallback(&self) -> bool {
        self.is_fallback
    }

    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }
}

/// The template source a model file gives, or `None` for the ChatML fallback: a file without
/// a template gets ChatML (Qwen-style models understand it); a blank one too, with a warning,
/// since the file claims a template and may be damaged (a blank template would otherwise
/// render every conversation as an empty prompt).
fn usable_source(source: Option<String>) -> Option<String> {
    match source {
        None => {
            tracing::info!("the model has no chat template; using ChatML");
            None
        }
        Some(s) if s.trim().is_empty() => {
            tracing::warn!(
                "the model's chat template is blank (the file may be damaged); using ChatML instead"
            );
            None
        }
        Some(s) => Some(s),
    }
}

/// A render's output, refused past [`MAX_RENDERED_BYTES`].
#[derive(Default)]
struct BoundedOutput {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl std::io::Write for BoundedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_RENDERED_BYTES {
            self.overflowed = true;
            return Err(std::io::Error::other("the rendered prompt is too long"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `chat_template` is a string or `[{"name": ..., "template": ...}]`.
fn template_from_json(v: Option<&serde_json::Value>, path: &Path) -> Result<Option<String>> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(serde_json::Value::Array(list)) => {
            let named = |name: &str| {
                list.iter().find_map(|t| {
                    (t.get("name")?.as_str()? == name)
                        .then(|| t.get("template")?.as_str().map(str::to_string))
                        .flatten()
                })
            };
            match named("default") {
                Some(t) => Ok(Some(t)),
                None => Err(EngineError::ChatTemplate(format!(
                    "{}: `chat_template` lists named templates but none is called \"default\"",
                    path.display()
                ))),
            }
        }
        Some(_) => Err(EngineError::ChatTemplate(format!(
            "{}: `chat_template` is neither a string nor a list of named templates",
            path.display()
        ))),
    }
}

/// The template's own message for `raise_exception`, or minijinja's with the line it refers to.
fn template_error(e: minijinja::Error) -> EngineError {
    let mut msg = match (e.kind(), e.detail()) {
        (ErrorKind::InvalidOperation, Some(detail)) if e.name().is_none() => detail.to_string(),
        _ => e.to_string(),
    };
    let mut source = std::error::Error::source(&e);
    while let Some(inner) = source {
        let _ = write!(msg, ": {inner}");
        source = inner.source();
    }
    EngineError::ChatTemplate(msg)
}

fn raise_exception(message: String) -> std::result::Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
}

/// `strftime_now(format)`: the current UTC time formatted with the common strftime codes
/// (`%Y %m %d %B %b %A %a %H %M %S %I %p %y %j %e %%`).
fn strftime_now(format: String) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    strftime(&format, secs)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Proleptic Gregorian (year, month 1-12, day 1-31) from days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

pub(crate) fn strftime(format: &str, unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let sod = unix_secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (sod / 3600, (sod % 3600) / 60, sod % 60);
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
    let is_leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let cumulative = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = cumulative[(m - 1) as usize] + d + u32::from(is_leap && m > 2);

    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let _ = match chars.next() {
            Some('Y') => write!(out, "{y}"),
            Some('y') => write!(out, "{:02}", y.rem_euclid(100)),
            Some('m') => write!(out, "{m:02}"),
            Some('d') => write!(out, "{d:02}"),
            Some('e') => write!(out, "{d:2}"),
            Some('B') => write!(out, "{}", MONTHS[(m - 1) as usize]),
            Some('b') | Some('h') => write!(out, "{}", &MONTHS[(m - 1) as usize][..3]),
            Some('A') => write!(out, "{}", WEEKDAYS[weekday]),
            Some('a') => write!(out, "{}", &WEEKDAYS[weekday][..3]),
            Some('H') => write!(out, "{hh:02}"),
            Some('I') => write!(out, "{:02}", if hh % 12 == 0 { 12 } else { hh % 12 }),
            Some('p') => write!(out, "{}", if hh < 12 { "AM" } else { "PM" }),
            Some('M') => write!(out, "{mm:02}"),
            Some('S') => write!(out, "{ss:02}"),
            Some('j') => write!(out, "{yday:03}"),
            Some('%') => write!(out, "%"),
            Some(other) => write!(out, "%{other}"),
            None => write!(out, "%"),
        };
    }
    out
}

/// `tojson` as Hugging Face defines it: `json.dumps(x, ensure_ascii=False, indent=indent,
/// separators=None, sort_keys=False)`. Unlike minijinja's built-in, it does not HTML-escape.
fn tojson(value: Value, kwargs: Kwargs) -> std::result::Result<Value, minijinja::Error> {
    let indent: Option<Value> = kwargs.get("indent")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => match v.kind() {
            ValueKind::Number => Some(" ".repeat(usize::try_from(v).unwrap_or(0))),
            ValueKind::String => Some(v.as_str().unwrap_or_default().to_string()),
            _ => {
                return Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson: indent must be a number or a string",
                ))
            }
        },
    };
    let opts = JsonOpts {
        indent,
        ensure_ascii: ensure_ascii.unwrap_or(false),
        sort_keys: sort_keys.unwrap_or(false),
    };
    let mut out = String::new();
    write_json(&value, &opts, 0, &mut out)?;
    Ok(Value::from_safe_string(out))
}

struct JsonOpts {
    indent: Option<String>,
    ensure_ascii: bool,
    sort_keys: bool,
}

fn write_json(
    v: &Value,
    opts: &JsonOpts,
    depth: usize,
    out: &mut String,
) -> std::result::Result<(), minijinja::Error> {
    // Same guard as Python's RecursionError, without blowing the stack.
    if depth > 256 {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            "tojson: value nested too deeply",
        ));
    }
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => write_number(v, out),
        ValueKind::String | ValueKind::Bytes => {
            write_string(v.as_str().unwrap_or_default(), opts.ensure_ascii, out)
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            write_container(out, opts, depth, '[', ']', items.len(), |i, out| {
                write_json(&items[i], opts, depth + 1, out)
            })?;
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = v.try_iter()?.collect();
            if opts.sort_keys {
                keys.sort();
            }
            write_container(out, opts, depth, '{', '}', keys.len(), |i, out| {
                let key = &keys[i];
                // Python turns non-string keys into strings (`1` -> "1", `True` -> "true").
                match key.as_str() {
                    Some(s) => write_string(s, opts.ensure_ascii, out),
                    None => {
                        let mut k = String::new();
                        write_json(key, opts, depth + 1, &mut k)?;
                        write_string(&k, opts.ensure_ascii, out);
                    }
                }
                out.push_str(": ");
                write_json(&v.get_item(key)?, opts, depth + 1, out)
            })?;
        }
        _ => write_string(&v.to_string(), opts.ensure_ascii, out),
    }
    Ok(())
}

/// Python's layout: `[a, b]` on one line, or one item per line when indenting (then the item
/// separator is `,` without a trailing space).
fn write_container(
    out: &mut String,
    opts: &JsonOpts,
    depth: usize,
    open: char,
    close: char,
    len: usize,
    mut item: impl FnMut(usize, &mut String) -> std::result::Result<(), minijinja::Error>,
) -> std::result::Result<(), minijinja::Error> {
    out.push(open);
    if len == 0 {
        out.push(close);
        return Ok(());
    }
    for i in 0..len {
        match &opts.indent {
            Some(ind) => {
                if i > 0 {
                    out.push(',');
                }
                out.push('\n');
                out.push_str(&ind.repeat(depth + 1));
            }
            None => {
                if i > 0 {
                    out.push_str(", ");
                }
            }
        }
        item(i, out)?;
    }
    if let Some(ind) = &opts.indent {
        out.push('\n');
        out.push_str(&ind.repeat(depth));
    }
    out.push(close);
    Ok(())
}

fn write_number(v: &Value, out: &mut String) {
    if v.is_integer() {
        // Integers print as themselves (i64 covers templates' numbers; i128 for the rest).
        match i128::try_from(v.clone()) {
            Ok(i) => {
                let _ = write!(out, "{i}");
            }
            Err(_) => out.push_str(&v.to_string()),
        }
        return;
    }
    let f = f64::try_from(v.clone()).unwrap_or(f64::NAN);
    if f.is_nan() {
        out.push_str("NaN");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
    } else if f.fract() == 0.0 && f.abs() < 1e16 {
        // Python's repr keeps the ".0" of a whole float.
        let _ = write!(out, "{f:.1}");
    } else {
        let _ = write!(out, "{f}");
    }
}

fn write_string(s: &str, ensure_ascii: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ensure_ascii && !c.is_ascii()) => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bundled real templates (Qwen3, QwQ, DeepSeek-R1 distill, a K2 Horizon-style one)
    /// and ChatML on a long conversation: what they take stays far below the limits.
    #[test]
    fn real_templates_stay_far_below_the_render_limits() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chat_templates");
        let mut templates = vec![("ChatML".to_string(), ChatTemplate::chatml())];
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "jinja") {
                let source = std::fs::read_to_string(&path).unwrap();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                templates.push((name, ChatTemplate::new(source, "<s>", "</s>").unwrap()));
            }
        }
        assert!(templates.len() >= 5);
        // 100 exchanges of a page each, the assistant's with a think block.
        let page = "Let x be the number of apples. Then 3x + 4 = 19, so x = 5. ".repeat(30);
        let mut messages = vec![ChatMessage::system("You are a careful maths tutor.")];
        for _ in 0..100 {
            messages.push(ChatMessage::user(page.clone()));
            messages.push(ChatMessage::new(
                "assistant",
                format!("<think>{page}</think>{page}"),
            ));
        }
        messages.push(ChatMessage::user(page.clone()));
        for (name, template) in templates {
            let (text, steps) = template
                .render_counted(&messages, true, &TemplateOptions::default())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            // Measured: 3,800 (ChatML) to 13,600 (Qwen3) steps for these 202 messages.
            assert!(
                steps > 0 && steps < RENDER_FUEL / 50,
                "{name}: {steps} steps"
            );
            assert!(
                text.len() < MAX_RENDERED_BYTES / 8,
                "{name}: {} bytes",
                text.len()
            );
        }
    }

    #[test]
    fn a_runaway_template_stops_at_its_limits() {
        let nested = ChatTemplate::new(
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
            "",
            "",
        )
        .unwrap();
        let started = std::time::Instant::now();
        let err = nested.render(&[], true).unwrap_err();
        assert!(matches!(err, EngineError::TemplateLimit(_)), "{err}");
        assert!(
            err.to_string().contains("chat template ran too long"),
            "{err}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));

        let flood = ChatTemplate::new(
            "{% for a in range(200) %}{{ 'x' * 100000 }}{% endfor %}",
            "",
            "",
        )
        .unwrap();
        let err = flood.render(&[], true).unwrap_err();
        assert!(err.to_string().contains("wrote more than 8 MB"), "{err}");
    }

    #[test]
    fn strftime_known_dates() {
        // 2024-07-26 13:05:09 UTC, a Friday.
        let t = 1_722_000_309;
        assert_eq!(strftime("%d %b %Y", t), "26 Jul 2024");
        assert_eq!(
            strftime("%A %B %e %H:%M:%S %j %%", t),
            "Friday July 26 13:25:09 208 %"
        );
        assert_eq!(strftime("%Y-%m-%d", 951_782_400), "2000-02-29");
    }
}
