//! Stop strings: generation ends when the text contains one, and the stop string itself (and
//! anything after it) never reaches the reader, even though it may arrive split over tokens.

/// Holds back text that could still turn out to be the start of a stop string.
pub struct StopMatcher {
    stops: Vec<String>,
    text: String,
    emitted: usize,
    longest: usize,
}

/// What a piece of new text means for the stream.
#[derive(Debug, PartialEq, Eq)]
pub struct StopCheck {
    /// Text that is now safe to show.
    pub emit: String,
    /// A stop string was found: generation must end.
    pub stopped: bool,
}

impl StopMatcher {
    pub fn new(stops: &[String]) -> Self {
        let stops: Vec<String> = stops.iter().filter(|s| !s.is_empty()).cloned().collect();
        let longest = stops.iter().map(String::len).max().unwrap_or(0);
        StopMatcher {
            stops,
            text: String::new(),
            emitted: 0,
            longest,
        }
    }

    /// Everything kept so far (without any stop string).
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn push(&mut self, delta: &str) -> StopCheck {
        self.text.push_str(delta);
        let search_from =
            floor_char_boundary(&self.text, self.emitted.saturating_sub(self.longest));
        let hit = self
            .stops
            .iter()
            .filter_map(|s| {
                self.text[search_from..]
                    .find(s.as_str())
                    .map(|i| search_from + i)
            })
            .min();
        if let Some(at) = hit {
            self.text.truncate(at);
            let emit = self.text[self.emitted.min(at)..].to_owned();
            self.emitted = at;
            return StopCheck {
                emit,
                stopped: true,
            };
        }
        let safe = self.text.len() - self.pending_prefix_len();
        let emit = self.text[self.emitted..safe].to_owned();
        self.emitted = safe;
        StopCheck {
            emit,
            stopped: false,
        }
    }

    /// Releases whatever was held back (generation ended for another reason).
    pub fn finish(&mut self) -> String {
        let rest = self.text[self.emitted..].to_owned();
        self.emitted = self.text.len();
        rest
    }

    /// Length of the longest suffix of the text that is a proper prefix of a stop string.
    fn pending_prefix_len(&self) -> usize {
        let tail_start = self.emitted;
        let mut best = 0;
        for stop in &self.stops {
            let max = (stop.len() - 1).min(self.text.len() - tail_start);
            for len in (1..=max).rev() {
                let start = self.text.len() - len;
                if self.text.is_char_boundary(start) && stop.starts_with(&self.text[start..]) {
                    best = best.max(len);
                    break;
                }
            }
        }
        best
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut m = StopMatcher::new(&stops);
        let mut shown = String::new();
        for p in pieces {
            let c = m.push(p);
            shown.push_str(&c.emit);
            if c.stopped {
                assert_eq!(shown, m.text());
                return (shown, true);
            }
        }
        shown.push_str(&m.finish());
        (shown, false)
    }

    #[test]
    fn a_stop_split_over_pieces_is_caught_and_never_shown() {
        assert_eq!(
            run(&["</answer>"], &["x = 4", "</ans", "wer> trailing"]),
            ("x = 4".into(), true)
        );
    }

    #[test]
    fn held_back_text_is_released_when_it_is_not_a_stop() {
        assert_eq!(
            run(&["STOP"], &["a ST", "ART b"]),
            ("a START b".into(), false)
        );
    }

    #[test]
    fn the_earliest_of_several_stops_wins() {
        assert_eq!(run(&["bb", "a"], &["xxbbyya"]), ("xx".into(), true));
    }

    #[test]
    fn multibyte_text_never_splits_a_character() {
        assert_eq!(run(&["é!"], &["café", " ok"]), ("café ok".into(), false));
        assert_eq!(run(&["é!"], &["caf", "é", "!"]), ("caf".into(), true));
    }

    #[test]
    fn no_stops_passes_everything_through() {
        assert_eq!(run(&[], &["a", "b"]), ("ab".into(), false));
    }
}
