//! Full-text search over runs' problems, plans and answers (SQLite FTS5, see
//! `migrations/0003_search.sql`).

use crate::decode::Fields;
use crate::error::Result;
use crate::runs::summary_from_row;
use crate::types::SearchHit;
use crate::Store;

impl Store {
    /// Runs whose problem, plan or answer contain every word of `text`, best matches first.
    /// Any text is accepted: LaTeX, quotes and FTS operators are searched for as words, never
    /// parsed as query syntax.
    pub async fn search(&self, text: &str, limit: u32) -> Result<Vec<SearchHit>> {
        let Some(query) = fts_query(text) else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT r.id, r.session_id, s.title AS session_title, r.problem_id, \
                    substr(p.text, 1, 200) AS problem, r.status, r.started_at, r.finished_at, \
                    r.answer, snippet(run_search, -1, '«', '»', '…', 12) AS snippet \
             FROM run_search \
             JOIN runs r ON r.id = run_search.rowid \
             JOIN sessions s ON s.id = r.session_id \
             JOIN problems p ON p.id = r.problem_id \
             WHERE run_search MATCH ? \
             ORDER BY run_search.rank, r.id DESC LIMIT ?",
        )
        .bind(query)
        .bind(i64::from(limit.clamp(1, 500)))
        .fetch_all(&self.pool)
        .await?;
        Ok(self.readable(&rows, |row| {
            Ok(SearchHit {
                run: summary_from_row(row)?,
                snippet: Fields::new(row, "run_search").get("snippet")?,
            })
        }))
    }
}

/// Each whitespace-separated word becomes a quoted FTS5 phrase (all must match), so user text
/// is data, not syntax. `\frac{1}{2}` becomes the phrase `frac 1 2`, as the tokenizer indexed
/// it. Words without a letter or digit carry nothing searchable and are dropped.
fn fts_query(text: &str) -> Option<String> {
    let phrases: Vec<String> = text
        .split_whitespace()
        .filter(|word| word.chars().any(char::is_alphanumeric))
        .map(|word| format!("\"{}\"", word.replace('"', "\"\"")))
        .collect();
    (!phrases.is_empty()).then(|| phrases.join(" "))
}

#[cfg(test)]
mod tests {
    use super::fts_query;

    #[test]
    fn user_text_is_quoted_word_by_word() {
        assert_eq!(
            fts_query(r#"\frac{1}{2} "x" OR"#).unwrap(),
            r#""\frac{1}{2}" """x""" "OR""#
        );
        assert_eq!(fts_query("  + - * "), None);
        assert_eq!(fts_query("théorème"), Some("\"théorème\"".into()));
    }
}
