//! The `k2` command line contract other components rely on, run on the real models.

use std::path::PathBuf;
use std::process::Command;

fn model(file: &str) -> PathBuf {
    let dir = k2_engine::models_dir::models_dir();
    let path = dir.join(file);
    assert!(
        path.exists(),
        "test model {} is missing: run scripts/fetch-test-models.sh first",
        path.display()
    );
    path
}

fn k2(args: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_k2"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "k2 {args:?} failed: {stderr}");
    (stdout, stderr)
}

#[test]
fn generate_jsonl_streams_tokens_and_ends_with_the_full_result() {
    let path = model("smollm2-135m-instruct-q4_1.gguf");
    let (stdout, _) = k2(&[
        "generate",
        "--model",
        path.to_str().unwrap(),
        "--prompt",
        "Name three prime numbers.",
        "--max-tokens",
        "12",
        "--format",
        "jsonl",
    ]);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    let last = lines.last().unwrap();
    let ids = last["token_ids"].as_array().unwrap();
    assert!(!ids.is_empty() && ids.len() <= 12);
    // One line per generated token before the final object, whose text is their concatenation.
    let streamed: String = lines[..lines.len() - 1]
        .iter()
        .map(|l| l["text"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, last["text"].as_str().unwrap());
    let stats = &last["stats"];
    for key in [
        "prompt_tokens",
        "generated_tokens",
        "prefill_tokens_per_s",
        "decode_tokens_per_s",
    ] {
        assert!(
            stats[key].as_f64().is_some(),
            "stats.{key} missing: {stats}"
        );
    }
    assert_eq!(
        stats["generated_tokens"].as_u64().unwrap() as usize,
        ids.len()
    );
}

#[test]
fn generating_with_the_15b_model_peaks_under_one_and_a_half_times_its_file() {
    let path = model("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf");
    let file_size = std::fs::metadata(&path).unwrap().len() as f64;
    let (stdout, _) = k2(&[
        "generate",
        "--model",
        path.to_str().unwrap(),
        "--device",
        "cpu",
        "--prompt",
        "Prove that the square root of 2 is irrational.",
        "--max-tokens",
        "48",
        "--format",
        "jsonl",
    ]);
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let peak = last["stats"]["peak_rss_bytes"]
        .as_f64()
        .expect("peak_rss_bytes on Linux");
    let ratio = peak / file_size;
    eprintln!(
        "peak RSS {:.0} MB for a {:.0} MB file: {ratio:.2}x",
        peak / 1e6,
        file_size / 1e6
    );
    assert!(ratio <= 1.5, "peak RSS is {ratio:.2}x the file size");
}

#[test]
fn models_lists_the_installed_models_with_their_facts() {
    let path = model("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
    let dir = path.parent().unwrap().to_str().unwrap().to_owned();
    let out = Command::new(env!("CARGO_BIN_EXE_k2"))
        .args(["models", "--format", "jsonl"])
        .env("K2_MODELS_DIR", &dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let qwen: serde_json::Value = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|m| m["name"] == "qwen2.5-coder-0.5b-instruct-q4_k_m")
        .expect("the 0.5B model is listed");
    assert_eq!(qwen["architecture"], "qwen2");
    assert_eq!(qwen["quantization"], "Q4_K_M");
    assert_eq!(qwen["size_bytes"], 491_400_064);
    assert_eq!(qwen["context_length"], 32768);
}

#[test]
fn solve_streams_a_solution_and_extracts_the_answer() {
    let path = model("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf");
    let (stdout, _) = k2(&[
        "solve",
        "Tom has 12 apples and buys 30 more. How many apples does he have?",
        "--model",
        path.to_str().unwrap(),
        "--max-tokens",
        "400",
        // Deterministic: greedy, one candidate, no plan (the scaffold's own tests cover those).
        "--no-plan",
        "-n",
        "1",
        "--temperature",
        "0",
    ]);
    assert!(stdout.contains("Problem: Tom has 12 apples"), "{stdout}");
    assert!(stdout.contains("\nSolution\n"), "{stdout}");
    // One solution checks nothing: the card calls its answer a best guess (k2_answer::card).
    assert!(stdout.contains("Best guess, not verified: 42"), "{stdout}");
}

#[test]
fn speculative_generate_reports_its_counters_and_matches_plain_output() {
    let path = model("smollm2-135m-instruct-q4_1.gguf");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "generate",
            "--model",
            path.to_str().unwrap(),
            "--prompt",
            "Repeat after me: one two three, one two three, one two three.",
            "--max-tokens",
            "40",
            "--format",
            "jsonl",
        ];
        args.extend_from_slice(extra);
        let (stdout, _) = k2(&args);
        let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        last
    };
    let plain = run(&["--spec", "off"]);
    // The default: suffix drafting, with the same text as plain decoding. Its draft lengths
    // follow measured pass times, so on a busy machine it may draft nothing at all: that it
    // drafts is checked with fixed lengths instead.
    let suffix = run(&[]);
    let suffix_fixed = run(&["--spec", "suffix", "--draft-fixed"]);
    let lookup = run(&["--spec", "ngram", "--draft-fixed"]);
    let drafted = run(&["--draft", path.to_str().unwrap()]);
    for other in [&suffix, &suffix_fixed, &lookup, &drafted] {
        assert_eq!(plain["token_ids"], other["token_ids"], "{other}");
    }
    assert!(
        suffix_fixed["stats"]["drafted_tokens"].as_u64().unwrap() > 0,
        "{suffix_fixed}"
    );
    for last in [&suffix, &suffix_fixed, &lookup, &drafted] {
        let stats = &last["stats"];
        let drafted_tokens = stats["drafted_tokens"].as_u64().unwrap();
        let accepted = stats["accepted_draft_tokens"].as_u64().unwrap();
        assert!(accepted <= drafted_tokens);
        assert!(stats["target_passes"].as_u64().unwrap() > 0);
    }
    assert_eq!(plain["stats"]["drafted_tokens"], 0);
}

#[test]
fn a_draft_from_another_family_is_refused_with_what_to_do() {
    let target = model("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
    let draft = model("smollm2-135m-instruct-q4_1.gguf");
    let out = Command::new(env!("CARGO_BIN_EXE_k2"))
        .args([
            "generate",
            "--model",
            target.to_str().unwrap(),
            "--draft",
            draft.to_str().unwrap(),
            "--prompt",
            "hi",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot draft for"), "{stderr}");
    assert!(stderr.contains("--spec ngram"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `k2 eval` on a small problem set of our own, `--jobs 1` then `--jobs 3`: the report's items
/// must be the same, so a parallel (batched) evaluation is the recorded one's equal.
#[test]
fn eval_in_parallel_grades_every_problem_exactly_as_one_at_a_time() {
    let smollm = model("smollm2-135m-instruct-q4_1.gguf");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("problems.jsonl");
    std::fs::write(
        &data,
        concat!(
            r#"{"id": "a", "problem": "What is 7 + 5?", "answer": "12"}"#,
            "\n",
            r#"{"id": "b", "problem": "What is 3 times 4?", "answer": "12"}"#,
            "\n",
            r#"{"id": "c", "problem": "Write 1/4 as a decimal.", "answer": "0.25"}"#,
            "\n",
        ),
    )
    .unwrap();
    let report = |jobs: &str| {
        let out = dir.path().join(format!("jobs-{jobs}.json"));
        k2(&[
            "eval",
            "--data",
            data.to_str().unwrap(),
            "--mode",
            "single",
            "--mode",
            "bon",
            "--max-tokens",
            "24",
            "--seed",
            "5",
            "--model",
            smollm.to_str().unwrap(),
            "--planner",
            "solver",
            "--jobs",
            jobs,
            "--out",
            out.to_str().unwrap(),
        ]);
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
        report
    };
    let (alone, together) = (report("1"), report("3"));
    let items = |report: &serde_json::Value, mode: usize| {
        let mut items = report["modes"][mode]["items"].as_array().unwrap().clone();
        for item in &mut items {
            // Wall time is the one field that may differ.
            item.as_object_mut().unwrap().remove("seconds");
        }
        items
    };
    for mode in 0..2 {
        let (a, b) = (items(&alone, mode), items(&together, mode));
        assert_eq!(a.len(), 3, "every problem graded once: {a:?}");
        let ids: Vec<&str> = b.iter().map(|i| i["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["a", "b", "c"], "items kept in the problems' order");
        assert_eq!(
            a, b,
            "mode {mode}: parallel results differ from sequential ones"
        );
    }
    let candidates = items(&together, 1)[0]["candidates"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(candidates, 3, "best-of-N samples three candidates");
}

#[test]
fn models_recommended_lists_the_catalogue_with_what_fits_this_machine() {
    let (stdout, _) = k2(&["models", "recommended", "--format", "jsonl"]);
    let models: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    assert!(models.len() >= 10, "{stdout}");
    for m in &models {
        for key in [
            "name",
            "family",
            "repo",
            "file",
            "bytes",
            "sha256",
            "ram_bytes",
            "fits",
        ] {
            assert!(m.get(key).is_some(), "{key} missing in {m}");
        }
    }
    let by_name = |name: &str| models.iter().find(|m| m["name"] == name).unwrap();
    // This machine (CI and development: 24 GiB) fits the 1.5B reasoner; its file is pinned.
    let r1 = by_name("DeepSeek-R1-Distill-Qwen-1.5B");
    assert_eq!(r1["fits"], true);
    assert_eq!(r1["bytes"], 1_117_320_800u64);
    assert_eq!(
        r1["sha256"],
        "1741e5b2d062b07acf048bf0d2c514dadf2a48f94e2b4aa0cfe069af3838ee2f"
    );
    assert_eq!(by_name("K2-Horizon-3.7B")["family"], "k2-horizon");
    // Where no file is published, the entry says so instead of pretending.
    assert_eq!(by_name("OpenMath-Nemotron-1.5B")["downloadable"], false);
}

#[test]
fn downloading_an_unknown_recommended_name_lists_the_known_ones() {
    let out = Command::new(env!("CARGO_BIN_EXE_k2"))
        .args(["models", "download", "gpt-5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not a recommended model") && stderr.contains("Qwen3-4B"),
        "{stderr}"
    );
}
