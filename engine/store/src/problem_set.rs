//! Problem sets as JSONL, in the format of the evaluation data: one object per line with `id`,
//! `problem`, `answer` and optionally `solution` and `source`. Import checks every line first and,
//! unless asked to skip bad lines, imports all or nothing.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::decode::Fields;
use crate::error::{Result, StoreError};
use crate::problems::upsert_problem;
use crate::types::NewProblem;
use crate::Store;

/// A line that could not be imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    /// 1-based, as editors count.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl LineError {
    pub(crate) fn list(errors: &[LineError]) -> String {
        errors
            .iter()
            .map(|e| format!("  {e}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportReport {
    /// Problems stored (new, or updated because the set already had that id).
    pub imported: usize,
    /// Lines skipped because they were malformed (only with `partial`).
    pub skipped: Vec<LineError>,
}

/// One problem as written in a set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetProblem {
    pub id: String,
    pub problem: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solution: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Parses a whole set: the good problems with their line numbers, and every bad line.
pub fn parse_problem_set(text: &str) -> (Vec<(usize, SetProblem)>, Vec<LineError>) {
    let mut problems = Vec::new();
    let mut errors = Vec::new();
    let mut seen_ids = HashSet::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok(problem) if !seen_ids.insert(problem.id.clone()) => errors.push(LineError {
                line: line_no,
                message: format!("id `{}` appears earlier in the file", problem.id),
            }),
            Ok(problem) => problems.push((line_no, problem)),
            Err(message) => errors.push(LineError {
                line: line_no,
                message,
            }),
        }
    }
    (problems, errors)
}

fn parse_line(line: &str) -> Result<SetProblem, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    let object = value.as_object().ok_or("not a JSON object".to_string())?;
    let text_field = |name: &str, required: bool| -> Result<Option<String>, String> {
        match object.get(name) {
            None | Some(Value::Null) if required => Err(format!("missing `{name}`")),
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            // Answers and ids are often bare numbers in published sets.
            Some(Value::Number(n)) if name == "answer" || name == "id" => Ok(Some(n.to_string())),
            Some(other) => Err(format!("`{name}` should be text, found {other}")),
        }
    };
    let id = text_field("id", true)?.unwrap_or_default();
    let problem = text_field("problem", true)?.unwrap_or_default();
    if problem.trim().is_empty() {
        return Err("`problem` is empty".into());
    }
    Ok(SetProblem {
        id,
        problem,
        answer: text_field("answer", false)?,
        solution: text_field("solution", false)?,
        source: text_field("source", false)?,
    })
}

impl Store {
    /// Imports a JSONL problem set under `set_name`. With malformed lines, nothing is imported
    /// and every bad line is reported, unless `partial`, which imports the good lines and
    /// reports the skipped ones. Problems already in the set (same id) are updated.
    pub async fn import_problem_set(
        &self,
        set_name: &str,
        jsonl: &str,
        partial: bool,
    ) -> Result<ImportReport> {
        let (problems, errors) = parse_problem_set(jsonl);
        if !errors.is_empty() && !partial {
            return Err(StoreError::MalformedProblemSet(errors));
        }
        let mut tx = self.pool.begin().await?;
        for (_, problem) in &problems {
            let new = NewProblem {
                text: problem.problem.clone(),
                set: Some((set_name.to_owned(), problem.id.clone())),
                origin: problem.source.clone(),
                known_answer: problem.answer.clone(),
                solution: problem.solution.clone(),
            };
            upsert_problem(&mut tx, &new).await?;
        }
        tx.commit().await?;
        Ok(ImportReport {
            imported: problems.len(),
            skipped: errors,
        })
    }

    /// A stored set as JSONL, in import order.
    pub async fn export_problem_set(&self, set_name: &str) -> Result<String> {
        let rows = sqlx::query(
            "SELECT id, set_id, text, known_answer, solution, origin FROM problems \
             WHERE set_name = ? ORDER BY id",
        )
        .bind(set_name)
        .fetch_all(&self.pool)
        .await?;
        let problems = self.readable(&rows, |row| {
            let fields = Fields::new(row, "problems");
            Ok(SetProblem {
                id: fields.get("set_id")?,
                problem: fields.get("text")?,
                answer: fields.get("known_answer")?,
                solution: fields.get("solution")?,
                source: fields.get("origin")?,
            })
        });
        let mut out = String::new();
        for problem in problems {
            out.push_str(&serde_json::to_string(&problem).expect("problems serialize"));
            out.push('\n');
        }
        Ok(out)
    }

    /// Stored problem sets and how many problems each has.
    pub async fn problem_sets(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT set_name, count(*) AS problems FROM problems WHERE set_name IS NOT NULL \
             GROUP BY set_name ORDER BY set_name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(self.readable(&rows, |row| {
            let fields = Fields::keyed(row, "problems", "of a set".into());
            Ok((fields.get("set_name")?, fields.get("problems")?))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_line_is_reported_with_its_number() {
        let text = concat!(
            r#"{"id": "a", "problem": "1+1?", "answer": "2"}"#,
            "\n\n",
            "not json\n",
            r#"{"id": 7, "problem": "2+2?", "answer": 4}"#,
            "\n",
            r#"{"id": "a", "problem": "again"}"#,
            "\n",
            r#"{"problem": "no id"}"#,
            "\n",
            r#"{"id": "b", "problem": ["list"]}"#,
            "\n",
        );
        let (good, bad) = parse_problem_set(text);
        assert_eq!(good.len(), 2);
        assert_eq!(good[1].1.id, "7");
        assert_eq!(good[1].1.answer.as_deref(), Some("4"));
        let lines: Vec<usize> = bad.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 5, 6, 7]);
        assert!(bad[1].message.contains("earlier"), "{}", bad[1].message);
        assert!(
            bad[2].message.contains("missing `id`"),
            "{}",
            bad[2].message
        );
    }
}
