//! The sampling flags of `k2 generate`, `k2 solve` and `k2 eval`: one set of flags whose
//! defaults are one table, [`SamplingSettings::default()`] (the settings the server, the UI and
//! stored runs default to as well).
//!
//! A new sampling option is a field of `SamplingSettings` (with its default) and a field here
//! (its flag and its line in [`SamplingArgs::settings`]); every command gets it.

use clap::Args as ClapArgs;
use k2_protocol::SamplingSettings;

/// The defaults of every flag below: `SamplingSettings::default()`, read once.
fn defaults() -> &'static SamplingSettings {
    static DEFAULTS: std::sync::OnceLock<SamplingSettings> = std::sync::OnceLock::new();
    DEFAULTS.get_or_init(SamplingSettings::default)
}

/// How tokens are drawn. The defaults are the scaffold's (K2-Think's temperature 1.0, top-p
/// 0.95, 2048 tokens per candidate): `solve` and `eval` sample several candidates and vote,
/// so they need diversity.
///
/// `k2 generate` changes two of them, in its own `Args` (`mut_arg`, so `k2 generate --help`
/// shows them): it is greedy (`--temperature 0`), because one completion is read as "what the
/// model says" and must be reproducible (speculative decoding and the llama.cpp goldens are
/// checked token for token against it), and it stops at 512 tokens. Sampling flags given to
/// `generate` otherwise default as everywhere else.
#[derive(ClapArgs, Debug, Clone, PartialEq)]
pub struct SamplingArgs {
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = defaults().temperature)]
    pub temperature: f32,
    /// Nucleus sampling: keep the most likely tokens up to this probability mass.
    #[arg(long, default_value_t = defaults().top_p)]
    pub top_p: f32,
    /// Keep only the k most likely tokens (0 = off).
    #[arg(long, default_value_t = defaults().top_k)]
    pub top_k: usize,
    /// Drop tokens less likely than this fraction of the most likely one (0 = off).
    #[arg(long, default_value_t = defaults().min_p)]
    pub min_p: f32,
    /// Random seed: the same seed, the same output (a run's candidate i samples with a seed
    /// derived from it).
    #[arg(long, default_value_t = defaults().seed)]
    pub seed: u64,
    /// Maximum number of tokens to generate (per candidate).
    #[arg(long, default_value_t = defaults().max_tokens)]
    pub max_tokens: usize,
}

impl SamplingArgs {
    pub fn settings(&self) -> SamplingSettings {
        SamplingSettings {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            min_p: self.min_p,
            seed: self.seed,
            max_tokens: self.max_tokens,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        sampling: SamplingArgs,
    }

    #[test]
    fn the_defaults_are_the_protocols() {
        let flags = Flags::try_parse_from(["k2"]).unwrap();
        assert_eq!(flags.sampling.settings(), SamplingSettings::default());
    }

    #[test]
    fn every_flag_reaches_the_settings() {
        let flags = Flags::try_parse_from([
            "k2",
            "--temperature",
            "0.5",
            "--top-p",
            "0.5",
            "--top-k",
            "7",
            "--min-p",
            "0.25",
            "--seed",
            "9",
            "--max-tokens",
            "33",
        ])
        .unwrap();
        assert_eq!(
            flags.sampling.settings(),
            SamplingSettings {
                temperature: 0.5,
                top_p: 0.5,
                top_k: 7,
                min_p: 0.25,
                seed: 9,
                max_tokens: 33,
            }
        );
    }
}
