//! The architectures beyond `qwen2` and `llama` (`qwen3`, `k2-horizon`, `smollm3`'s NoPE
//! layers, `granite`'s multipliers) against independent references, on
//! tiny random models committed under `tests/fixtures/arch/` with the logits that
//! transformers and llama.cpp compute for them (made by `scripts/fixtures/arch_fixtures.py`,
//! which says which reference covers which case and why).
//!
//! - F32 weights (GGUF and the Hugging Face folder): logits within `F32_TOLERANCE` of every
//!   reference at every position, and the same greedy token at every position.
//! - Decoding position by position gives the logits of one whole prefill.
//! - Q8_0 and Q4_0 GGUF: against llama.cpp on the same file, by the near-tie rule of
//!   `llamacpp_parity.rs` (quantized activations make exact agreement a matter of luck;
//!   correctness means every disagreement is a near-tie).

use std::path::PathBuf;

use candle_core::Device;
use k2_engine::decode::sample::argmax;
use k2_engine::gguf::GgufFile;
use k2_engine::model::{
    load_gguf, load_safetensors, Architecture, LogitsFor, Model, ModelConfig, Multipliers,
    OutputGate, QkNorm,
};
use serde::Deserialize;

const F32_TOLERANCE: f32 = 1e-4;
/// The least logit margin under which two tokens are a tie for quantized formats (the margin
/// of `llamacpp_parity.rs` on real models); wider where the quantization noise of a fixture
/// is (tied random embeddings make logits of size ~8).
const NEAR_TIE: f32 = 0.08;

#[derive(Deserialize)]
struct CaseFile {
    tokens: Vec<u32>,
    vocab: usize,
    references: std::collections::BTreeMap<String, String>,
}

struct Case {
    dir: PathBuf,
    file: CaseFile,
}

impl Case {
    fn open(name: &str) -> Case {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/arch")
            .join(name);
        let text = std::fs::read_to_string(dir.join("case.json")).unwrap();
        let file: CaseFile = serde_json::from_str(&text).unwrap();
        Case { dir, file }
    }

    /// `[positions][vocab]` logits a reference wrote, or `None` where it does not cover this case.
    fn reference(&self, name: &str) -> Option<Vec<Vec<f32>>> {
        let bytes = std::fs::read(self.dir.join(format!("reference-{name}.f32"))).ok()?;
        let values: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(
            values.len(),
            self.file.tokens.len() * self.file.vocab,
            "{name}"
        );
        Some(
            values
                .chunks(self.file.vocab)
                .map(<[f32]>::to_vec)
                .collect(),
        )
    }

    /// The f32 references (at least one must exist for every case).
    fn f32_references(&self) -> Vec<(&'static str, Vec<Vec<f32>>)> {
        let refs: Vec<_> = [
            ("transformers", self.reference("transformers")),
            ("llama.cpp", self.reference("llamacpp-f32")),
        ]
        .into_iter()
        .filter_map(|(name, r)| r.map(|r| (name, r)))
        .collect();
        assert!(
            !refs.is_empty(),
            "{}: no reference logits",
            self.dir.display()
        );
        assert_eq!(
            refs.len(),
            self.file.references.len(),
            "case.json lists {:?}",
            self.file.references
        );
        refs
    }

    fn gguf(&self, format: &str) -> Model {
        let path = self.dir.join(format!("model-{format}.gguf"));
        load_gguf(&GgufFile::open(&path).unwrap(), &Device::Cpu, &mut |_| {}).unwrap()
    }

    fn hf(&self) -> Model {
        load_safetensors(&self.dir.join("hf"), &Device::Cpu).unwrap()
    }
}

/// Logits at every position from one prefill of the whole sequence.
fn prefill_logits(model: &Model, tokens: &[u32]) -> Vec<Vec<f32>> {
    let mut cache = model.new_cache(None);
    cache.add_row().unwrap();
    model
        .forward(&mut cache, &[tokens], LogitsFor::All)
        .unwrap()[0]
        .to_vec2::<f32>()
        .unwrap()
}

/// Logits at every position from a prefill of the first few tokens, then one token a step.
fn stepwise_logits(model: &Model, tokens: &[u32]) -> Vec<Vec<f32>> {
    let mut cache = model.new_cache(None);
    cache.add_row().unwrap();
    let (prefix, rest) = tokens.split_at(5);
    let mut rows = model
        .forward(&mut cache, &[prefix], LogitsFor::All)
        .unwrap()[0]
        .to_vec2::<f32>()
        .unwrap();
    for &t in rest {
        let step = model.forward(&mut cache, &[&[t]], LogitsFor::All).unwrap();
        rows.extend(step[0].to_vec2::<f32>().unwrap());
    }
    rows
}

fn worst_difference(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(x, y)| (x - y).abs()))
        .fold(0.0, f32::max)
}

fn assert_same_function(what: &str, ours: &[Vec<f32>], reference: &[Vec<f32>]) {
    let worst = worst_difference(ours, reference);
    eprintln!("{what}: max |logit difference| {worst:.2e}");
    assert!(
        worst < F32_TOLERANCE,
        "{what}: logits differ by up to {worst}"
    );
    for (position, (a, b)) in ours.iter().zip(reference).enumerate() {
        assert_eq!(
            argmax(a),
            argmax(b),
            "{what}: greedy token differs at position {position}"
        );
    }
}

/// Every f32 check of one case: both file formats against every reference, and decoding
/// step by step against one prefill.
fn f32_parity(name: &str) {
    let case = Case::open(name);
    let tokens = &case.file.tokens;
    let gguf = case.gguf("f32");
    let hf = case.hf();
    // Llama-style GGUF files (llama.cpp's NORM rotary pairs) hold q/k rows permuted from the
    // Hugging Face layout: the one difference their configs may have.
    assert_eq!(
        gguf.config().rope_style,
        gguf.config().architecture.traits().gguf_rope_style,
        "{name}"
    );
    assert_eq!(
        &ModelConfig {
            rope_style: hf.config().rope_style,
            ..gguf.config().clone()
        },
        hf.config(),
        "{name}: GGUF and config.json disagree"
    );
    let from_gguf = prefill_logits(&gguf, tokens);
    let from_hf = prefill_logits(&hf, tokens);
    for (reference, expected) in case.f32_references() {
        assert_same_function(
            &format!("{name}, GGUF F32 vs {reference}"),
            &from_gguf,
            &expected,
        );
        assert_same_function(
            &format!("{name}, safetensors vs {reference}"),
            &from_hf,
            &expected,
        );
    }
    let stepwise = stepwise_logits(&gguf, tokens);
    assert_same_function(
        &format!("{name}, step by step vs prefill"),
        &stepwise,
        &from_gguf,
    );
}

fn mean_difference(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    let total: f32 = a
        .iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(x, y)| (x - y).abs()))
        .sum();
    total / (a.len() * a[0].len()) as f32
}

/// A quantized GGUF against llama.cpp on the very same file, measured against the exact
/// function of the unquantized weights (llama.cpp's F32 logits): our quantized inference must
/// be about as close to it as llama.cpp's own, and wherever our greedy token differs from
/// llama.cpp's, the two must be a near-tie at the scale of that quantization noise.
fn quantized_parity(name: &str, format: &str) {
    let case = Case::open(name);
    let reference = |file: &str| {
        case.reference(file)
            .unwrap_or_else(|| panic!("{name}: no {file} logits"))
    };
    let (exact, theirs) = (
        reference("llamacpp-f32"),
        reference(&format!("llamacpp-{format}")),
    );
    let ours = prefill_logits(&case.gguf(format), &case.file.tokens);
    let (our_error, their_error) = (
        mean_difference(&ours, &exact),
        mean_difference(&theirs, &exact),
    );
    eprintln!(
        "{name} {format}: mean |ours - exact| {our_error:.4}, |llama.cpp - exact| {their_error:.4}, |ours - llama.cpp| {:.4}",
        mean_difference(&ours, &theirs)
    );
    assert!(
        our_error <= 1.5 * their_error + 1e-3,
        "{name} {format}: our quantized logits are {our_error} from exact, llama.cpp's {their_error}"
    );
    let near_tie = NEAR_TIE.max(4.0 * their_error);
    for (position, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        let (mine, theirs) = (argmax(a), argmax(b));
        let margin = a[mine as usize] - a[theirs as usize];
        assert!(
            margin < near_tie,
            "{name} {format}, position {position}: llama.cpp chose {theirs}, {margin:.3} below our {mine}"
        );
    }
}

#[test]
fn qwen3_tied_matches_transformers_and_llamacpp() {
    f32_parity("qwen3-tied");
}

#[test]
fn qwen3_untied_with_yarn_past_its_window_matches_transformers_and_llamacpp() {
    f32_parity("qwen3-untied-yarn");
}

#[test]
fn k2_horizon_one_group_matches_transformers_and_llamacpp() {
    f32_parity("k2-horizon-g1");
}

#[test]
fn k2_horizon_four_groups_qk_norm_gate_and_yarn_match_llamacpp() {
    f32_parity("k2-horizon-g4-qknorm-gate-yarn");
}

#[test]
fn smollm3_with_a_nope_layer_matches_transformers_and_llamacpp() {
    f32_parity("smollm3-nope");
}

#[test]
fn granite_multipliers_match_transformers_and_llamacpp() {
    f32_parity("granite-multipliers");
}

#[test]
fn quantized_files_agree_with_llamacpp_on_the_same_file() {
    for name in [
        "qwen3-tied",
        "qwen3-untied-yarn",
        "k2-horizon-g1",
        "k2-horizon-g4-qknorm-gate-yarn",
        "smollm3-nope",
        "granite-multipliers",
    ] {
        for format in ["q8_0", "q4_0"] {
            quantized_parity(name, format);
        }
    }
}

/// The switches each fixture was made to cover are the ones the loaders read back.
#[test]
fn fixtures_cover_the_switches_they_claim() {
    let config = |name: &str| Case::open(name).gguf("f32").config().clone();
    let tied = config("qwen3-tied");
    assert_eq!(tied.architecture, Architecture::Qwen3);
    assert_eq!(tied.switches.qk_norm, QkNorm::Shared);
    assert_ne!(tied.head_dim * tied.num_heads, tied.hidden_size);
    let k2 = config("k2-horizon-g4-qknorm-gate-yarn");
    assert_eq!(k2.architecture, Architecture::K2Horizon);
    assert_eq!(k2.switches.norm_groups, 4);
    assert_eq!(k2.switches.qk_norm, QkNorm::PerHead);
    assert_eq!(k2.switches.output_gate, Some(OutputGate::SoftplusBase2));
    assert!(matches!(
        k2.switches.rope_scaling,
        k2_engine::model::RopeScaling::Yarn {
            original_context: 32,
            ..
        }
    ));
    let g1 = config("k2-horizon-g1");
    assert_eq!(g1.switches.norm_groups, 1);
    assert_eq!(g1.switches.qk_norm, QkNorm::None);
    assert_eq!(g1.switches.output_gate, None);
    for name in [
        "qwen3-tied",
        "qwen3-untied-yarn",
        "k2-horizon-g1",
        "k2-horizon-g4-qknorm-gate-yarn",
    ] {
        let c = config(name);
        assert!(c.switches.nope_layers.is_empty(), "{name}");
        assert_eq!(c.switches.multipliers, Multipliers::default(), "{name}");
    }
    // SmolLM3: the GGUF says nothing, llama.cpp's `smollm3` implies every 4th layer; the
    // config.json lists the layers (checked equal to the GGUF's by `f32_parity`).
    let smol = config("smollm3-nope");
    assert_eq!(smol.architecture, Architecture::SmolLm3);
    assert_eq!(smol.num_layers, 5);
    assert_eq!(smol.switches.nope_layers, vec![3]);
    assert_eq!(
        Case::open("smollm3-nope")
            .hf()
            .config()
            .switches
            .nope_layers,
        vec![3]
    );
    let granite = config("granite-multipliers");
    assert_eq!(granite.architecture, Architecture::Granite);
    assert_eq!(
        granite.switches.multipliers,
        Multipliers {
            embedding: 3.0,
            residual: 0.5,
            attention: Some(1.0 / 32.0),
            logits_divisor: 4.0,
        }
    );
}
