//! Hostile and damaged model files through the real `k2` binary (issue 28, findings 2, 3 and
//! 8): copies of the real SmolLM2-135M GGUF with one setting changed. Each must end in a clear
//! `error:` and exit code 1 (or, for a blank template, a printed warning), never a signal, an
//! abort on allocation or a hang. The runs are held to an address-space limit, so an
//! allocation sized from a hostile number fails at once instead of swapping the machine.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::gguf_patch::GgufPatch;
use common::*;
use serde_json::json;

/// What a limited run of `k2` did.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    seconds: f64,
}

/// Address space a run may use: well above what the 135M model needs (~2 GB with threads'
/// stacks), far below what a hostile size would allocate.
const ADDRESS_SPACE_KB: u64 = 8 * 1024 * 1024;

/// Runs `k2 args` under `ulimit -v`, killed after `limit`.
fn k2_limited<S: AsRef<OsStr>>(args: &[S], limit: Duration) -> Ran {
    let started = Instant::now();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {ADDRESS_SPACE_KB}; exec \"$@\""))
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_k2"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "k2 {:?} ran past {limit:?}; stderr: {}",
                args.iter().map(|a| a.as_ref()).collect::<Vec<_>>(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Asserts a clean refusal (exit 1, `error:`, no panic or abort) and returns stderr.
fn refused(ran: Ran) -> String {
    let stderr = ran.stderr;
    assert_eq!(
        ran.code,
        Some(1),
        "k2 should exit 1 (a signal has no code); stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "k2 panicked: {stderr}");
    assert!(
        !stderr.contains("memory allocation"),
        "k2 ran out of memory: {stderr}"
    );
    assert!(stderr.contains("error: "), "stderr: {stderr}");
    stderr
}

/// `k2 generate` of a short prompt on `model`.
fn generate(model: &Path, extra: &[&str]) -> Ran {
    let mut args: Vec<&OsStr> = ["generate", "--device", "cpu", "--max-tokens", "4"]
        .iter()
        .map(OsStr::new)
        .collect();
    args.extend([OsStr::new("--model"), model.as_os_str()]);
    args.extend(extra.iter().map(OsStr::new));
    args.extend(["--prompt", "What is 2 + 2?"].iter().map(OsStr::new));
    k2_limited(&args, Duration::from_secs(120))
}

/// A patched copy of a model, deleted when dropped (each is ~100 MB).
struct Patched {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl std::ops::Deref for Patched {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

/// A copy of SmolLM2 with `patch` applied, written as `name`.
fn patched(name: &str, patch: impl FnOnce(&mut GgufPatch)) -> Patched {
    let mut gguf = GgufPatch::read(&smollm());
    patch(&mut gguf);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    gguf.write(&path);
    Patched { _dir: dir, path }
}

#[test]
fn the_patcher_leaves_a_working_model_working() {
    // Rewriting the header unchanged must give a file that runs: the corruption tests below
    // then fail for what they change, not for how the file was written.
    let copy = patched("unchanged.gguf", |_| {});
    let ran = generate(&copy, &[]);
    assert_eq!(ran.code, Some(0), "stderr: {}", ran.stderr);
    assert!(!ran.stdout.trim().is_empty());
}

#[test]
fn huge_sizes_in_the_metadata_are_refused_before_anything_is_allocated() {
    for (key, says) in [
        ("llama.block_count", "layers"),
        ("llama.embedding_length", "hidden size"),
        ("llama.context_length", "context"),
        ("llama.feed_forward_length", "feed-forward"),
        ("llama.attention.head_count", "attention heads"),
    ] {
        let file = format!("huge-{key}.gguf");
        let model = patched(&file, |g| {
            g.set_u32(key, u32::MAX);
        });
        let ran = generate(&model, &[]);
        let seconds = ran.seconds;
        let err = refused(ran);
        assert!(err.contains(says), "{key}: {err}");
        assert!(err.contains("4294967295"), "{key}: {err}");
        assert!(seconds < 30.0, "{key} took {seconds:.1}s");
    }
}

#[test]
fn a_layer_count_the_tensors_do_not_bear_out_is_refused() {
    // SmolLM2 has 30 layers; 31 is within any sane range, but the file has no layer 30.
    let model = patched("31-layers.gguf", |g| {
        g.set_u32("llama.block_count", 31);
    });
    let err = refused(generate(&model, &[]));
    assert!(err.contains("31 layers"), "{err}");
    assert!(err.contains("blk.30"), "{err}");
}

#[test]
fn nan_and_out_of_range_settings_are_refused() {
    for (key, value, says) in [
        ("llama.rope.freq_base", f32::NAN, "rotary base"),
        (
            "llama.attention.layer_norm_rms_epsilon",
            f32::NAN,
            "norm epsilon",
        ),
        (
            "llama.attention.layer_norm_rms_epsilon",
            -1e-5,
            "norm epsilon",
        ),
        (
            "llama.attention.layer_norm_rms_epsilon",
            f32::INFINITY,
            "norm epsilon",
        ),
        ("llama.rope.freq_base", 0.0, "rotary base"),
    ] {
        let model = patched("bad-setting.gguf", |g| {
            g.set_f32(key, value);
        });
        let err = refused(generate(&model, &[]));
        assert!(err.contains(says), "{key} = {value}: {err}");
    }
}

#[test]
fn a_misaligned_tensor_offset_is_refused() {
    let model = patched("misaligned.gguf", |g| {
        g.shift_tensor("blk.0.attn_norm.weight", 1);
    });
    let err = refused(generate(&model, &[]));
    assert!(err.contains("blk.0.attn_norm.weight"), "{err}");
    assert!(err.contains("aligned"), "{err}");
}

#[test]
fn an_alignment_of_zero_is_refused() {
    let model = patched("alignment-0.gguf", |g| {
        g.set_u32("general.alignment", 0);
    });
    let err = refused(generate(&model, &[]));
    assert!(err.contains("alignment"), "{err}");
}

#[test]
fn a_blank_chat_template_falls_back_to_chatml_with_a_warning() {
    let model = patched("blank-template.gguf", |g| {
        g.set_str("tokenizer.chat_template", "  \n ");
    });
    let ran = generate(&model, &[]);
    assert_eq!(ran.code, Some(0), "stderr: {}", ran.stderr);
    assert!(ran.stderr.contains("WARN"), "{}", ran.stderr);
    assert!(ran.stderr.contains("blank"), "{}", ran.stderr);
    assert!(ran.stderr.contains("ChatML"), "{}", ran.stderr);
}

/// Nested loops of 100,000 each: 10^10 steps, which minijinja would run for hours.
const ENDLESS_TEMPLATE: &str = "{% for a in range(100000) %}{% for b in range(100000) %}\
{{ '' }}{% endfor %}{% endfor %}{{ messages[0]['content'] }}";

#[test]
fn a_chat_template_that_runs_too_long_is_stopped_with_a_clear_error() {
    let model = patched("endless-template.gguf", |g| {
        g.set_str("tokenizer.chat_template", ENDLESS_TEMPLATE);
    });
    let ran = generate(&model, &[]);
    let seconds = ran.seconds;
    let err = refused(ran);
    assert!(err.contains("chat template ran too long"), "{err}");
    assert!(seconds < 20.0, "took {seconds:.1}s");

    // `k2 solve` renders the same template for the plan and the candidates.
    let solve = k2_limited(
        &[
            OsStr::new("solve"),
            OsStr::new("--device"),
            OsStr::new("cpu"),
            OsStr::new("--no-store"),
            OsStr::new("--model"),
            model.as_os_str(),
            OsStr::new("What is 2 + 2?"),
        ],
        Duration::from_secs(60),
    );
    let err = refused(solve);
    assert!(err.contains("chat template ran too long"), "{err}");
}

#[test]
fn a_chat_template_that_writes_too_much_is_stopped() {
    // 200 rounds of 100,000 bytes: each step is cheap, the output is not.
    let model = patched("flood-template.gguf", |g| {
        g.set_str(
            "tokenizer.chat_template",
            "{% for a in range(200) %}{{ 'x' * 100000 }}{% endfor %}",
        );
    });
    let err = refused(generate(&model, &[]));
    assert!(err.contains("chat template"), "{err}");
}

#[test]
fn the_server_refuses_a_runaway_template_and_keeps_answering() {
    let model = patched("endless-template-serve.gguf", |g| {
        g.set_str("tokenizer.chat_template", ENDLESS_TEMPLATE);
    });
    let server = Server::start_with_model(&model, &[]);
    let address = server.address;
    // Two at once: as many as the server has async workers.
    let requests: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                let started = Instant::now();
                let body = chat_body("What is 2 + 2?", json!({"max_tokens": 4}));
                let response = request(address, "POST", "/v1/chat/completions", &[auth()], &body);
                (response, started.elapsed())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    assert_eq!(server.health()["status"], "ok");
    assert!(started.elapsed() < Duration::from_secs(2));
    for handle in requests {
        let (response, took) = handle.join().unwrap();
        assert_eq!(response.status, 400, "{}", response.text());
        assert!(
            response.text().contains("chat template ran too long"),
            "{}",
            response.text()
        );
        assert!(took < Duration::from_secs(20), "took {took:?}");
    }
    assert_eq!(server.health()["status"], "ok");
}

#[test]
fn candidates_are_capped_with_a_clear_error() {
    let ran = k2_limited(
        &[
            OsStr::new("solve"),
            OsStr::new("--device"),
            OsStr::new("cpu"),
            OsStr::new("--no-store"),
            OsStr::new("-n"),
            OsStr::new("1000"),
            OsStr::new("--model"),
            smollm().as_os_str(),
            OsStr::new("What is 2 + 2?"),
        ],
        Duration::from_secs(60),
    );
    let err = refused(ran);
    assert!(err.contains("at most 64"), "{err}");
}

#[test]
fn a_run_whose_cache_cannot_fit_in_memory_is_refused_with_the_numbers() {
    // SmolLM2 with a declared context of 131,072 positions: 64 candidates of that length need
    // ~390 GB of key/value cache, more than any machine these tests run on.
    let model = patched("long-context.gguf", |g| {
        g.set_u32("llama.context_length", 131_072);
    });
    let ran = k2_limited(
        &[
            OsStr::new("solve"),
            OsStr::new("--device"),
            OsStr::new("cpu"),
            OsStr::new("--no-store"),
            OsStr::new("--no-plan"),
            OsStr::new("-n"),
            OsStr::new("64"),
            OsStr::new("--max-tokens"),
            OsStr::new("131000"),
            OsStr::new("--model"),
            model.as_os_str(),
            OsStr::new("What is 2 + 2?"),
        ],
        Duration::from_secs(60),
    );
    let err = refused(ran);
    assert!(err.contains("GB"), "{err}");
    assert!(err.contains("this machine has"), "{err}");
}

/// The tiny Qwen3 fixture's Hugging Face folder (`tests/fixtures/arch/qwen3-tied/hf`, weights
/// from transformers) copied with its `config.json` edited by `edit`, and a byte-level
/// tokenizer of 256 tokens (its vocabulary has 320 rows) so that `k2` can run it.
fn hf_fixture(edit: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
    let from =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/arch/qwen3-tied/hf");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        from.join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(from.join("config.json")).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    std::fs::write(dir.path().join("tokenizer.json"), byte_level_tokenizer()).unwrap();
    dir
}

/// A `tokenizer.json` with one token per byte (GPT-2's byte-to-character mapping) and no merges.
fn byte_level_tokenizer() -> String {
    // Printable bytes stand for themselves; the others get 256, 257, ... in byte order.
    let mut next = 256;
    let mut vocab = serde_json::Map::new();
    for b in 0..256u32 {
        let c = if (u32::from(b'!')..=u32::from(b'~')).contains(&b)
            || (0xA1..=0xAC).contains(&b)
            || (0xAE..=0xFF).contains(&b)
        {
            b
        } else {
            next += 1;
            next - 1
        };
        vocab.insert(char::from_u32(c).unwrap().to_string(), json!(b));
    }
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false,
        "trim_offsets": true, "use_regex": true});
    json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": byte_level, "post_processor": null,
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": false,
            "byte_fallback": false, "vocab": vocab, "merges": []}
    })
    .to_string()
}

#[test]
fn a_config_json_layer_count_is_checked_before_anything_is_sized_by_it() {
    // The fixture runs as it is: the refusals below are for the numbers, not the folder.
    let good = hf_fixture(|_| {});
    let ran = generate(good.path(), &[]);
    assert_eq!(ran.code, Some(0), "stderr: {}", ran.stderr);

    let huge = hf_fixture(|c| c["num_hidden_layers"] = json!(1u64 << 30));
    let err = refused(generate(huge.path(), &[]));
    assert!(err.contains("number of layers is 1073741824"), "{err}");

    let one_more = hf_fixture(|c| c["num_hidden_layers"] = json!(3));
    let err = refused(generate(one_more.path(), &[]));
    assert!(err.contains("declares 3 layers"), "{err}");
    assert!(
        err.contains("model.layers.2.input_layernorm.weight"),
        "{err}"
    );

    let negative_eps = hf_fixture(|c| c["rms_norm_eps"] = json!(-1.0));
    let err = refused(generate(negative_eps.path(), &[]));
    assert!(err.contains("norm epsilon"), "{err}");
}
