//! `--spec` and `--draft`: choosing and loading speculative decoding for `generate`, `solve`
//! and `eval`.

use std::sync::Arc;

use anyhow::Result;
use clap::Args as ClapArgs;
use k2_engine::backend::{Drafter, Speculation};
use k2_engine::decode::speculative::compat::check_draft_compatible;
use k2_engine::decode::speculative::SpecTuning;
use k2_engine::loader::LoadedModel;

use crate::load::{load, ModelArgs};

/// Qwen2.5's tokenizer on the problems and solutions of shared/data: ids below 32768 cover
/// 95.1% of tokens, below 49152 97.4%, below 65536 98.7%, below 98304 99.99%.
const DEFAULT_DRAFT_VOCABULARY: usize = 65536;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SpecMode {
    /// Plain decoding.
    Off,
    /// Prompt lookup: drafts copied from earlier in the prompt or output (no draft model).
    Ngram,
    /// Cross-candidate suffix drafting: drafts copied from the prompt, the candidate's own
    /// output and the other candidates' (no draft model), as long as they pay.
    Suffix,
    /// A small draft model of the target's family (`--draft`).
    Draft,
}

#[derive(ClapArgs, Debug, Clone)]
pub struct SpecArgs {
    /// Speculative decoding [default: draft if --draft is given, else suffix, the fastest
    /// measured without a draft model (BENCHMARKS.md)]. Lossless: greedy output is identical to
    /// plain decoding; suffix and ngram drafts leave sampled output identical too (same seed,
    /// same text), a draft model keeps the model's distribution.
    #[arg(long, value_enum)]
    pub spec: Option<SpecMode>,
    /// The draft model: a path or an installed model's name (same tokenizer as the model).
    #[arg(long)]
    pub draft: Option<String>,
    /// Most tokens drafted per pass of the model.
    #[arg(long, default_value_t = SpecTuning::default().max_draft)]
    pub draft_max: usize,
    /// The draft model stops drafting below this confidence in its top token.
    #[arg(long, default_value_t = SpecTuning::default().p_min)]
    pub draft_p_min: f32,
    /// Keep the draft length fixed at --draft-max instead of adapting it to acceptance.
    #[arg(long)]
    pub draft_fixed: bool,
    /// The draft model predicts only the first N token ids (0 = all). Frequent tokens come
    /// first in BPE vocabularies, and a smaller output layer makes each draft token cheaper;
    /// lossless either way (speculation accounts for exactly the distribution drafted from).
    #[arg(long, default_value_t = DEFAULT_DRAFT_VOCABULARY)]
    pub draft_vocab: usize,
    /// With a draft model, try prompt lookup first and use the model where it finds nothing.
    #[arg(long)]
    pub lookup_first: bool,
}

impl SpecArgs {
    pub fn mode(&self) -> SpecMode {
        self.spec.unwrap_or(if self.draft.is_some() {
            SpecMode::Draft
        } else {
            SpecMode::Suffix
        })
    }

    fn tuning(&self) -> SpecTuning {
        SpecTuning {
            max_draft: self.draft_max,
            p_min: self.draft_p_min,
            adaptive: !self.draft_fixed,
            lookup_first: self.lookup_first,
            ..SpecTuning::default()
        }
    }

    /// The speculation to decode `target` with, loading and checking the draft model; `None`
    /// for plain decoding.
    pub fn load(
        &self,
        target: &LoadedModel,
        device: &ModelArgs,
        quiet: bool,
    ) -> Result<Option<Speculation>> {
        let drafter = match (self.mode(), &self.draft) {
            (SpecMode::Off, _) => return Ok(None),
            (SpecMode::Ngram, _) => Drafter::Ngram,
            (SpecMode::Suffix, _) => Drafter::Suffix,
            (SpecMode::Draft, None) => {
                anyhow::bail!(
                    "--spec draft needs a draft model: add --draft PATH (or use --spec ngram)"
                )
            }
            (SpecMode::Draft, Some(spec)) => {
                let args = ModelArgs {
                    model: Some(spec.clone()),
                    device: device.device,
                };
                let mut draft = load(&args, quiet)?;
                check_draft_compatible(
                    &target.tokenizer,
                    &target.info.name,
                    &draft.tokenizer,
                    &draft.info.name,
                )?;
                if self.draft_vocab > 0 && draft.model.limit_output_vocabulary(self.draft_vocab) {
                    tracing::info!(
                        tokens = self.draft_vocab,
                        "draft predicts the first ids only"
                    );
                }
                Drafter::Model(Arc::new(draft))
            }
        };
        Ok(Some(Speculation {
            drafter,
            tuning: self.tuning(),
        }))
    }
}
