//! Replays every committed crasher of the fuzz targets (`fuzz/regressions/<target>/*`) through
//! the same entry function its fuzz target calls: each must now run to its end, without a
//! panic, within the fuzzer's own limit for a hang.

use std::path::Path;
use std::time::{Duration, Instant};

/// The fuzzer's `-timeout`: an input that takes longer is a hang.
const HANG: Duration = Duration::from_secs(10);

fn regressions() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions")
}

/// Replays every file under `root/<target>/`; answers what failed and how many ran.
fn replay(root: &Path) -> (Vec<String>, usize) {
    let mut replayed = 0;
    let mut failures = Vec::new();
    for (target, entry) in k2_fuzzing::TARGETS {
        let dir = root.join(target);
        let Ok(files) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = files.flatten().map(|e| e.path()).collect();
        files.sort();
        for file in files {
            let data = std::fs::read(&file).unwrap();
            let started = Instant::now();
            let outcome = std::panic::catch_unwind(|| entry(&data));
            let took = started.elapsed();
            replayed += 1;
            match outcome {
                Err(_) => failures.push(format!("{}: panicked", file.display())),
                Ok(()) if took > HANG => {
                    failures.push(format!("{}: took {took:?}", file.display()))
                }
                Ok(()) => {}
            }
        }
    }
    (failures, replayed)
}

#[test]
fn every_committed_crasher_runs_to_its_end() {
    let (failures, replayed) = replay(&regressions());
    assert!(failures.is_empty(), "{failures:#?}");
    eprintln!("replayed {replayed} committed crashers");
}

#[test]
fn every_regression_folder_names_a_target() {
    let names: Vec<&str> = k2_fuzzing::TARGETS.iter().map(|(n, _)| *n).collect();
    for entry in std::fs::read_dir(regressions()).unwrap().flatten() {
        if entry.path().is_dir() {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(
                names.contains(&name.as_str()),
                "fuzz/regressions/{name} is no target"
            );
        }
    }
}

#[test]
fn every_target_has_a_fuzz_binary() {
    let manifest = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/Cargo.toml"),
    )
    .unwrap();
    for (name, _) in k2_fuzzing::TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no target {name}"
        );
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../../fuzz/fuzz_targets/{name}.rs"));
        let text = std::fs::read_to_string(&source).unwrap();
        assert!(
            text.contains(&format!("k2_fuzzing::{name}(")),
            "{}",
            source.display()
        );
    }
}

#[test]
fn the_entry_functions_take_real_inputs() {
    // The seeds scripts/fuzz.sh starts from: they must get past the readers' first checks.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let gguf = std::fs::read(root.join("tests/fixtures/arch/qwen3-tied/model-q4_0.gguf")).unwrap();
    k2_fuzzing::gguf(&gguf);
    k2_fuzzing::tokenizer("What is 17 + 25? <|im_end|> ∑ 😀".as_bytes());
    k2_fuzzing::sse(b"\x05data: {\"choices\":[]}\n\ndata: [DONE]\n\n");
    k2_fuzzing::answer(b"The answer is \\boxed{\\frac{1}{2}}\x000.5");
    k2_fuzzing::render(b"# Title\n$x^2$ and \\(\\sqrt{2}\\)");
    k2_fuzzing::chat_template(b"\x01Hi\x00What is 2+2?\x00ok\x00user");
    k2_fuzzing::store_payload(b"{\"type\":\"plan_delta\",\"text\":\"x\"}\n{\"problem\":\"1+1\"}");
}

/// The first GGUF crasher (`crash-088fb2d…`): a tensor whose shape multiplies past `usize`.
/// Release builds have no overflow checks, so its replay alone would pass even unfixed (the
/// size wrapped and the file passed the truncation check); its error is checked here.
#[test]
fn a_tensor_size_that_overflows_is_reported_as_corrupt() {
    let path = regressions().join("gguf/crash-088fb2d02bc18ea4d5e7f42676cbf6e1f4e84360");
    let error = match k2_engine::gguf::GgufFile::open(&path) {
        Ok(_) => panic!("the file opened"),
        Err(e) => e.to_string(),
    };
    assert!(error.contains("impossible size or offset"), "{error}");
}
