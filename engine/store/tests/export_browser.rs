//! A run exported as standalone HTML, opened in real headless Chromium: math laid out, no
//! script errors, no network requests; raw HTML from the model shown as text.

mod common;

use std::path::Path;
use std::process::Command;

use common::{config, temp_store};
use k2_protocol::{Event, RunEvent, RunRequest, TextPart};
use k2_store::export::{export_run, ExportFormat};
use k2_store::{NewProblem, RunRecorder};

const SOLUTION: &str = r#"We set up a table of values:

| $n$ | $n^2$ |
|-----|-------|
| 1   | 1     |
| 2   | 4     |

A quick check in code:

```python
print(sum(range(1, 100, 2)))  # <b>not bold</b>
```

The sum is \(\sum_{k=1}^{50} (2k-1) = 50^2\), so
\[ \boxed{2500} \]
A broken formula stays readable: $\frac{1}$ and $\notacommand{x}$.
<script>alert("model output must not run")</script>
<img src="http://example.com/tracker.png">
![diagram](https://example.com/diagram.png)
"#;

#[tokio::test]
async fn exported_html_renders_in_chromium_without_errors_or_network() {
    let t = temp_store().await;
    let session = t.store.create_session("Browser check").await.unwrap();
    let problem = t
        .store
        .add_problem(&NewProblem::typed("Compute $1+3+5+\\dots+99$."))
        .await
        .unwrap();
    let run = t
        .store
        .start_run(session, problem, &config(), Default::default())
        .await
        .unwrap();
    let recorder = RunRecorder::start(&t.store, run);
    let mut request = RunRequest::new("Compute $1+3+5+\\dots+99$.");
    request.settings.candidates = 1;
    let kinds = [
        RunEvent::Started { request },
        RunEvent::CandidateDelta {
            candidate: 0,
            part: TextPart::Reasoning,
            text: "Odd numbers sum to squares: $1+3=2^2$.".into(),
        },
        RunEvent::CandidateDelta {
            candidate: 0,
            part: TextPart::Answer,
            text: SOLUTION.into(),
        },
        RunEvent::FinalAnswer {
            candidate: 0,
            answer: Some("2500".into()),
            method: k2_protocol::SelectionMethod::Single,
        },
        RunEvent::Stats(Default::default()),
    ];
    for (seq, kind) in kinds.into_iter().enumerate() {
        recorder.record(&Event {
            seq: seq as u64,
            elapsed_ms: seq as u64 * 100,
            kind,
        });
    }
    recorder.finish().await.unwrap();
    t.store
        .add_note(
            run,
            Some(2),
            Some("Mr. Lee"),
            "Nice table; explain **why** it works.",
        )
        .await
        .unwrap();

    let export = t.store.load_run_export(run).await.unwrap();
    let html = export_run(&export, ExportFormat::Html);
    assert!(
        !html.contains("<script"),
        "raw HTML from the model must be escaped"
    );
    assert!(!html.contains("<img"), "images must not be fetched");
    assert!(html.contains("&lt;script&gt;"));
    assert!(
        html.contains("class=\"math-error\""),
        "malformed LaTeX is marked, not dropped"
    );
    let markdown = export_run(&export, ExportFormat::Markdown);
    assert!(markdown.contains("\\boxed{2500}") && markdown.contains("Mr. Lee"));

    let file = t.dir.path().join("run.html");
    std::fs::write(&file, &html).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser/check_export.mjs");
    let out = Command::new("node")
        .arg(&script)
        .arg(&file)
        .output()
        .expect("node is needed for the browser tests (scripts/test.sh installs what they use)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "Chromium check failed:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("1 passed, 0 failed"), "{report}");
}
