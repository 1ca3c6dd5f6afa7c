//! What a remote server may send for one completion: a server is untrusted, so an answer of at
//! most `max_tokens` tokens is held to a byte budget derived from them (generously: tokens can
//! be long, and every streamed token comes wrapped in a JSON chunk), and to a time limit for
//! the whole answer, so a server that ignores `max_tokens` or trickles a byte at a time (which
//! the idle timeout alone never stops) ends the request with an error that says so.

use std::io::Read;
use std::time::{Duration, Instant};

use super::sse::LimitExceeded;
use super::SettingNames;

/// Bytes of answer text allowed per requested token. Real tokens are a few bytes; the longest
/// in common vocabularies (runs of spaces or dashes) stay well under this.
const TEXT_BYTES_PER_TOKEN: usize = 64;
/// Bytes on the wire allowed per requested token: a streamed token is one SSE event of a JSON
/// chunk (id, model, choices, sometimes logprobs), a few hundred bytes on real servers.
const STREAM_BYTES_PER_TOKEN: usize = 2048;
/// Slack for what does not scale with tokens: the final usage chunk, keep-alive comments, an
/// error body, a reasoning header.
const TEXT_SLACK: usize = 64 << 10;
const STREAM_SLACK: usize = 1 << 20;
/// Time allowed per requested token on top of the idle timeout, when no deadline is set: the
/// slowest real servers generate several tokens a second.
const SECONDS_PER_TOKEN: u64 = 1;

/// The limits of one completion request.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    pub max_tokens: usize,
    /// Answer text (reasoning included).
    pub text_bytes: usize,
    /// Everything read from the response body.
    pub stream_bytes: usize,
    /// When the whole answer must be in.
    pub deadline: Instant,
    /// The deadline's length, for the message.
    pub answer_timeout: Duration,
    /// What the user changes to allow more (in the messages).
    pub settings: SettingNames,
}

impl StreamLimits {
    /// Limits for an answer of at most `max_tokens` tokens, started now: within
    /// `answer_timeout`, or by default the idle timeout plus a second per token.
    pub fn new(
        max_tokens: usize,
        idle_timeout: Duration,
        answer_timeout: Option<Duration>,
    ) -> Self {
        let tokens = max_tokens.max(1);
        let answer_timeout = answer_timeout.unwrap_or_else(|| {
            idle_timeout.saturating_add(Duration::from_secs(
                (tokens as u64).saturating_mul(SECONDS_PER_TOKEN),
            ))
        });
        StreamLimits {
            max_tokens,
            text_bytes: tokens
                .saturating_mul(TEXT_BYTES_PER_TOKEN)
                .saturating_add(TEXT_SLACK),
            stream_bytes: tokens
                .saturating_mul(STREAM_BYTES_PER_TOKEN)
                .saturating_add(STREAM_SLACK),
            deadline: Instant::now()
                .checked_add(answer_timeout)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 24 * 3600)),
            answer_timeout,
            settings: SettingNames::IN_WORDS,
        }
    }

    /// These limits, their messages naming the settings as `settings` does.
    pub fn changed_with(self, settings: SettingNames) -> Self {
        StreamLimits { settings, ..self }
    }

    /// The error for answer text past `text_bytes`, or `None` while within it.
    pub fn check_text(&self, text_len: usize) -> Option<String> {
        (text_len > self.text_bytes).then(|| {
            format!(
                "the server sent more than {} bytes of text for an answer of at most {} tokens; \
                 stopped reading (the server does not honour max_tokens)",
                self.text_bytes, self.max_tokens
            )
        })
    }

    /// The error for a request past its deadline.
    pub fn deadline_error(&self) -> String {
        format!(
            "the server did not finish an answer of at most {} tokens within {} s; it may be \
             hung or sending very slowly (raise {})",
            self.max_tokens,
            self.answer_timeout.as_secs(),
            self.settings.answer_timeout
        )
    }
}

/// The response body, failing with [`LimitExceeded`] once more than `stream_bytes` have come
/// or the deadline has passed (checked at every read, so a trickle stops at its next byte).
pub struct LimitedReader<R> {
    inner: R,
    read: usize,
    limits: StreamLimits,
}

impl<R: Read> LimitedReader<R> {
    pub fn new(inner: R, limits: StreamLimits) -> Self {
        LimitedReader {
            inner,
            read: 0,
            limits,
        }
    }
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if Instant::now() >= self.limits.deadline {
            return Err(LimitExceeded(self.limits.deadline_error()).into_io());
        }
        let n = self.inner.read(buf)?;
        self.read = self.read.saturating_add(n);
        if self.read > self.limits.stream_bytes {
            return Err(LimitExceeded(format!(
                "the server sent more than {} bytes for an answer of at most {} tokens; stopped \
                 reading (the server does not honour max_tokens)",
                self.limits.stream_bytes, self.limits.max_tokens
            ))
            .into_io());
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_grow_with_max_tokens_and_never_overflow() {
        let small = StreamLimits::new(50, Duration::from_secs(120), None);
        assert_eq!(small.text_bytes, 50 * 64 + (64 << 10));
        assert_eq!(small.answer_timeout, Duration::from_secs(170));
        assert!(small.check_text(small.text_bytes).is_none());
        assert!(small
            .check_text(small.text_bytes + 1)
            .unwrap()
            .contains("at most 50 tokens"));
        let huge = StreamLimits::new(usize::MAX, Duration::MAX, None);
        assert_eq!(huge.text_bytes, usize::MAX);
        let fixed = StreamLimits::new(50, Duration::from_secs(120), Some(Duration::from_secs(3)));
        assert_eq!(fixed.answer_timeout, Duration::from_secs(3));
    }

    #[test]
    fn the_reader_stops_past_its_bytes() {
        let mut limits = StreamLimits::new(1, Duration::from_secs(60), None);
        limits.stream_bytes = 10;
        let mut reader = LimitedReader::new(&[7u8; 100][..], limits);
        let mut all = Vec::new();
        let e = reader.read_to_end(&mut all).unwrap_err();
        assert!(LimitExceeded::in_io(&e)
            .unwrap()
            .0
            .contains("more than 10 bytes"));
    }

    #[test]
    fn the_reader_stops_past_its_deadline() {
        let limits = StreamLimits::new(1, Duration::ZERO, Some(Duration::ZERO));
        let mut reader = LimitedReader::new(&b"data"[..], limits);
        let e = reader.read(&mut [0u8; 4]).unwrap_err();
        assert!(LimitExceeded::in_io(&e)
            .unwrap()
            .0
            .contains("raise the time allowed for an answer"));
        // A front end with options of its own has them named.
        let cli = SettingNames {
            answer_timeout: "--backend-deadline",
            ..SettingNames::IN_WORDS
        };
        let mut reader = LimitedReader::new(&b"data"[..], limits.changed_with(cli));
        let e = reader.read(&mut [0u8; 4]).unwrap_err();
        assert!(LimitExceeded::in_io(&e)
            .unwrap()
            .0
            .contains("raise --backend-deadline"));
    }
}
