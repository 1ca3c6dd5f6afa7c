//! When a step needs more product workspace than any before, after which captured graphs are
//! dropped (see `cuda_graph`). Plain arithmetic, kept apart from the CUDA code so it is
//! tested on every machine.

/// Candle's quantized products quantize their input into a workspace holding each input row
/// padded to a multiple of 512 values: up to 8 rows for the vector kernels, any count for the
/// tiled ones. A step's largest need is its widest input (the MLP's down projection, fed
/// every token) padded that way, times its tokens. Graphs captured before a step larger than
/// any before were seen to replay wrong logits afterwards (`device_bench`'s growth check, on
/// the H100), and dropping them then fixed it. We first took the workspace for a per-device
/// buffer that grows; candle 0.11.1 in fact allocates it per product from CUDA's
/// stream-ordered pool, so what went stale is not pinned down, and this guard stays a
/// conservative, measured fix. Without the padding, two models' needs compare wrongly (a
/// 4,864-wide input pads to 5,120, a 8,960-wide one to 9,216). A step larger than all before
/// starts a new epoch, and graphs of older epochs are dropped.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(super) struct Scratch {
    vector: usize,
    tiled: usize,
    epoch: u64,
}

/// Values each input row of a quantized product is padded to a multiple of in candle's
/// scratch buffers (`MATRIX_ROW_PADDING` in candle's CUDA quantized code).
const SCRATCH_ROW_PADDING: usize = 512;

/// Rows a product may have and still use candle's vector (MMVQ) kernels.
const VECTOR_KERNEL_MAX_ROWS: usize = 8;

#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
impl Scratch {
    pub(super) const fn new() -> Scratch {
        Scratch {
            vector: 0,
            tiled: 0,
            epoch: 0,
        }
    }

    /// Records a step of `tokens` positions through products at most `widest_input` wide,
    /// and returns the epoch the step runs in.
    pub(super) fn record(&mut self, tokens: usize, widest_input: usize) -> u64 {
        let widest_input = widest_input.next_multiple_of(SCRATCH_ROW_PADDING);
        let vector = tokens.min(VECTOR_KERNEL_MAX_ROWS) * widest_input;
        let tiled = if tokens > VECTOR_KERNEL_MAX_ROWS {
            tokens * widest_input
        } else {
            0
        };
        if vector > self.vector || tiled > self.tiled {
            self.vector = self.vector.max(vector);
            self.tiled = self.tiled.max(tiled);
            self.epoch += 1;
        }
        self.epoch
    }
}

#[cfg(test)]
mod tests {
    use super::Scratch;

    /// The 1.5B solver's and the 0.5B planner's widest product inputs (their MLPs).
    const SOLVER: usize = 8960;
    const PLANNER: usize = 4864;

    #[test]
    fn only_a_step_larger_than_every_one_before_starts_an_epoch() {
        let mut scratch = Scratch::new();
        let first = scratch.record(1, SOLVER);
        assert_eq!(scratch.record(1, SOLVER), first);
        let wider = scratch.record(8, SOLVER);
        assert!(
            wider > first,
            "8 rows need more of the vector buffer than 1"
        );
        let tiled = scratch.record(9, SOLVER);
        assert!(tiled > wider, "9 rows are the tiled kernels' first use");
        assert_eq!(scratch.record(9, SOLVER), tiled);
        assert_eq!(scratch.record(4, SOLVER), tiled, "smaller steps fit");
        assert_eq!(scratch.record(100, PLANNER), tiled + 1);
    }

    #[test]
    fn another_models_step_is_compared_with_candles_padding() {
        // 183 planner rows need 183 x 5,120 padded values, more than 100 solver rows'
        // 100 x 9,216, though unpadded they look smaller (890,112 < 896,000).
        let mut scratch = Scratch::new();
        let solver = scratch.record(100, SOLVER);
        const { assert!(183 * PLANNER < 100 * SOLVER) };
        assert!(scratch.record(183, PLANNER) > solver);
    }
}
