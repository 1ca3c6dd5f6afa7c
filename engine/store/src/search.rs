//! Full-text search over runs' problems, plans and answers (SQLite FTS5, see
//! `migrations/0003_search.sql`).

use crate::decode::Fields;
use crate::error::Result;
use crate::runs::{summary_from_row, SUMMARY_COLUMNS, SUMMARY_JOINS};
use crate::types::{SearchHit, StudentId};
use crate::Store;

impl Store {
    /// Runs whose problem, plan or answer contain every word of `text`, best matches first.
    /// Any text is accepted: LaTeX, quotes and FTS operators are searched for as words, never
    /// parsed as query syntax.
    pub async fn search(&self, text: &str, limit: u32) -> Result<Vec<SearchHit>> {
        self.search_where(text, limit, None).await
    }

    /// One student's runs whose problem contains every word of `text`. Their problems only:
    /// a student-mode run's plan and answer are not theirs to read, and a match there (or its
    /// snippet) would tell them.
    pub async fn search_owned(
        &self,
        owner: StudentId,
        text: &str,
        limit: u32,
    ) -> Result<Vec<SearchHit>> {
        self.search_where(text, limit, Some(owner)).await
    }

    async fn search_where(
        &self,
        text: &str,
        limit: u32,
        owner: Option<StudentId>,
    ) -> Result<Vec<SearchHit>> {
        let Some(query) = fts_query(text, owner.map(|_| "problem")) else {
            return Ok(Vec::new());
        };
        // Column -1 lets the snippet come from whichever column matched best; 0 is `problem`.
        let (snippet_column, owner_condition) = match owner {
            Some(_) => (0, "AND r.owner_id = ?"),
            None => (-1, ""),
        };
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS}, \
                    snippet(run_search, {snippet_column}, '«', '»', '…', 12) AS snippet \
             FROM run_search JOIN runs r ON r.id = run_search.rowid {SUMMARY_JOINS} \
             WHERE run_search MATCH ? {owner_condition} \
             ORDER BY run_search.rank, r.id DESC LIMIT ?"
        );
        let mut statement = sqlx::query(&sql).bind(query);
        if let Some(owner) = owner {
            statement = statement.bind(owner);
        }
        let rows = statement
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
/// it. Words without a letter or digit carry nothing searchable and are dropped. With a
/// `column`, every phrase must match in that column.
fn fts_query(text: &str, column: Option<&str>) -> Option<String> {
    let filter = column.map(|c| format!("{c} : ")).unwrap_or_default();
    let phrases: Vec<String> = text
        .split_whitespace()
        .filter(|word| word.chars().any(char::is_alphanumeric))
        .map(|word| format!("{filter}\"{}\"", word.replace('"', "\"\"")))
        .collect();
    (!phrases.is_empty()).then(|| phrases.join(" "))
}

#[cfg(test)]
mod tests {
    use super::fts_query;

    #[test]
    fn user_text_is_quoted_word_by_word() {
        assert_eq!(
            fts_query(r#"\frac{1}{2} "x" OR"#, None).unwrap(),
            r#""\frac{1}{2}" """x""" "OR""#
        );
        assert_eq!(fts_query("  + - * ", None), None);
        assert_eq!(fts_query("théorème", None), Some("\"théorème\"".into()));
        assert_eq!(
            fts_query("two words", Some("problem")).unwrap(),
            r#"problem : "two" problem : "words""#
        );
    }
}
