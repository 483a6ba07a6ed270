//! Receptive-field pruning: computing only the positions that the requested outputs depend on.
//!
//! Fine-tuning and next-item inference read one position of the last block (`[CLS]`, or the last
//! item; two in centred mode), yet a plain forward pass computes every position of every layer.
//! Output `t` of a convolution with kernel `k`, dilation `d` and left padding `left` reads its
//! input at `t + j·d − left` for `j = 0..k`, so walking the blocks from the top down gives, for
//! every layer, the set of positions the requested outputs depend on. A [`PositionPlan`] holds
//! those sets; [`crate::NextItNet::forward_planned`] runs every layer on its set only, as a
//! *compact* tensor `[batch, |set|, C]` whose rows are the set's positions in increasing order.
//! The convolutions gather their taps from the compact input ([`TapPlan`]); the residual and the
//! parallel patches, which read a layer's input at its output positions, keep a subset of rows
//! ([`Restriction`]).
//!
//! The result is the same function, position by position (tested against the full pass, values
//! and gradients, causal and centred, with every kind of patch). The saving grows with the
//! dilation of the top blocks. For the paper's blocks `[1, 4] × 4` (kernel 3) and 51 positions
//! (50 items and `[CLS]`), the top three blocks compute 47 + 31 + 15 + 7 + 3 + 1 of their
//! 6 × 51 convolution rows: 614 of 816 over the stack, 25% fewer (`plan_of_the_paper_shape`
//! below); for `[1, 2, 4, 8] × 2` and 21 positions, 211 of 336, 37% fewer.

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};

/// A rank-1 `Int` tensor of row (or position) indices, its length taken from `index`.
pub(crate) fn index_tensor<B: Backend>(index: Vec<i64>, device: &B::Device) -> Tensor<B, 1, Int> {
    let len = index.len();
    Tensor::from_data(TensorData::new(index, [len]), device)
}

/// Where one convolution reads its taps: kernel width, dilation and left padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Kernel width `k`.
    pub kernel_size: usize,
    /// Dilation `d`.
    pub dilation: usize,
    /// Padding on the left: output `t` reads input `t + j·d − left`.
    pub left: usize,
}

impl ConvGeometry {
    /// The input position that each tap `j = 0..k` of output `t` reads, or `None` when it lies
    /// outside `0..length`.
    fn sources(self, t: usize, length: usize) -> impl Iterator<Item = Option<usize>> {
        (0..self.kernel_size).map(move |j| {
            (t + j * self.dilation)
                .checked_sub(self.left)
                .filter(|&s| s < length)
        })
    }

    /// The sorted input positions that the `outputs` need: every in-sequence tap, and the
    /// outputs themselves (the residual and the parallel patches read the input there; for a
    /// causal or odd-kernel convolution they are taps anyway).
    ///
    /// # Panics
    /// If an output reaches `length`.
    pub fn needed_inputs(self, outputs: &[usize], length: usize) -> Vec<usize> {
        let mut needed = vec![false; length];
        for &t in outputs {
            needed[t] = true;
            for s in self.sources(t, length).flatten() {
                needed[s] = true;
            }
        }
        (0..length).filter(|&p| needed[p]).collect()
    }
}

/// The taps of one convolution from a compact input to a compact output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapPlan {
    inputs: usize,
    outputs: usize,
    kernel_size: usize,
    /// Entry `o·k + j`: the compact input row of tap `j` of output `o`, or `None` outside the
    /// sequence (the zero row).
    sources: Vec<Option<usize>>,
    identity: bool,
}

impl TapPlan {
    /// The taps of `outputs` (sorted positions) read from `inputs` (sorted positions that hold
    /// every in-sequence tap of every output).
    ///
    /// # Panics
    /// If a tap of an output lies in the sequence but not in `inputs`.
    pub fn new(inputs: &[usize], outputs: &[usize], length: usize, geometry: ConvGeometry) -> Self {
        let sources: Vec<Option<usize>> = outputs
            .iter()
            .flat_map(|&t| geometry.sources(t, length))
            .map(|s| {
                s.map(|s| {
                    inputs
                        .binary_search(&s)
                        .expect("every in-sequence tap is among the inputs")
                })
            })
            .collect();
        let identity = geometry.kernel_size == 1 && inputs == outputs;
        Self {
            inputs: inputs.len(),
            outputs: outputs.len(),
            kernel_size: geometry.kernel_size,
            sources,
            identity,
        }
    }

    /// Rows of the compact input, per sequence.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Rows of the compact output, per sequence.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Kernel width `k`.
    pub fn kernel_size(&self) -> usize {
        self.kernel_size
    }

    /// Entry `o·k + j`: the compact input row (within its sequence) of tap `j` of output `o`, or
    /// `None` for a position outside the sequence.
    pub(crate) fn sources(&self) -> &[Option<usize>] {
        &self.sources
    }

    /// Whether the convolution is a plain per-row product of its input (`k = 1`, same positions).
    pub fn is_identity(&self) -> bool {
        self.identity
    }

    /// Row indices of the tap gather over `batch` sequences of compact input rows flattened to
    /// `[batch·inputs + 1, C]`, the last row zeros: `batch·outputs·k` entries, output-major.
    pub fn row_index(&self, batch: usize) -> Vec<i64> {
        let zero_row = (batch * self.inputs) as i64;
        let mut index = Vec::with_capacity(batch * self.sources.len());
        for b in 0..batch {
            let base = b * self.inputs;
            index.extend(
                self.sources
                    .iter()
                    .map(|s| s.map_or(zero_row, |s| (base + s) as i64)),
            );
        }
        index
    }
}

/// The rows of a compact tensor kept for a subset of its positions (none dropped when the two
/// sets are equal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restriction {
    inputs: usize,
    kept: Option<Vec<usize>>,
}

impl Restriction {
    /// Keeps the rows of `outputs` (sorted positions, a subset of the sorted `inputs`).
    ///
    /// # Panics
    /// If an output is not among the inputs.
    pub fn new(inputs: &[usize], outputs: &[usize]) -> Self {
        let kept = (inputs != outputs).then(|| {
            outputs
                .iter()
                .map(|t| {
                    inputs
                        .binary_search(t)
                        .expect("outputs are among the inputs")
                })
                .collect()
        });
        Self {
            inputs: inputs.len(),
            kept,
        }
    }

    /// Keeps the rows.
    ///
    /// # Shapes
    /// - x: `[batch, inputs, C]`
    /// - output: `[batch, outputs, C]`
    pub fn apply<B: Backend>(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let Some(kept) = &self.kept else {
            return x;
        };
        let [batch, inputs, channels] = x.dims();
        debug_assert_eq!(inputs, self.inputs);
        let index: Vec<i64> = (0..batch)
            .flat_map(|b| kept.iter().map(move |&r| (b * inputs + r) as i64))
            .collect();
        let index = index_tensor(index, &x.device());
        x.reshape([batch * inputs, channels])
            .select(0, index)
            .reshape([batch, kept.len(), channels])
    }
}

/// The positions one residual block computes: its input, the output of its first convolution
/// (`middle`) and its output, each a sorted set with `output ⊆ middle ⊆ input`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockPlan {
    /// Positions of the block's input.
    pub input: Vec<usize>,
    /// Positions of the first convolution's output (the second one's input).
    pub middle: Vec<usize>,
    /// Positions of the block's output.
    pub output: Vec<usize>,
    /// Taps of the first convolution (`input → middle`).
    pub conv1: TapPlan,
    /// Taps of the second convolution (`middle → output`).
    pub conv2: TapPlan,
    /// The input at the middle positions (a parallel first patch reads it).
    pub input_to_middle: Restriction,
    /// The middle at the output positions (a parallel second patch reads it).
    pub middle_to_output: Restriction,
    /// The input at the output positions (the residual).
    pub input_to_output: Restriction,
}

impl BlockPlan {
    /// The plan of a block whose convolutions have geometries `conv1` and `conv2`, for the
    /// sorted `output` positions of a `length`-position sequence.
    ///
    /// # Panics
    /// If an output reaches `length`.
    pub fn new(
        conv1: ConvGeometry,
        conv2: ConvGeometry,
        length: usize,
        output: Vec<usize>,
    ) -> Self {
        let middle = conv2.needed_inputs(&output, length);
        let input = conv1.needed_inputs(&middle, length);
        Self {
            conv1: TapPlan::new(&input, &middle, length, conv1),
            conv2: TapPlan::new(&middle, &output, length, conv2),
            input_to_middle: Restriction::new(&input, &middle),
            middle_to_output: Restriction::new(&middle, &output),
            input_to_output: Restriction::new(&input, &output),
            input,
            middle,
            output,
        }
    }
}

/// The positions every layer of a backbone computes for a set of requested outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionPlan {
    /// Positions in the sequence.
    pub length: usize,
    /// Positions of the tokens embedded (the first block's input).
    pub input: Vec<usize>,
    /// One plan per block, bottom up.
    pub blocks: Vec<BlockPlan>,
}

impl PositionPlan {
    /// The plan of blocks with the given convolution geometries (bottom up) for the sorted,
    /// distinct `outputs` of a `length`-position sequence.
    ///
    /// # Panics
    /// If `outputs` is empty, not strictly increasing or reaches `length`.
    pub fn new(
        geometries: &[(ConvGeometry, ConvGeometry)],
        length: usize,
        outputs: &[usize],
    ) -> Self {
        assert!(!outputs.is_empty(), "request at least one position");
        assert!(
            outputs.windows(2).all(|w| w[0] < w[1]),
            "requested positions must be strictly increasing: {outputs:?}"
        );
        assert!(
            outputs.last().is_none_or(|&t| t < length),
            "requested positions must lie below the length {length}: {outputs:?}"
        );
        let mut needed = outputs.to_vec();
        let mut blocks: Vec<BlockPlan> = geometries
            .iter()
            .rev()
            .map(|&(conv1, conv2)| {
                let plan = BlockPlan::new(conv1, conv2, length, std::mem::take(&mut needed));
                needed = plan.input.clone();
                plan
            })
            .collect();
        blocks.reverse();
        Self {
            length,
            input: needed,
            blocks,
        }
    }

    /// Positions of the final output.
    pub fn outputs(&self) -> &[usize] {
        self.blocks.last().map_or(&self.input, |b| &b.output)
    }

    /// Convolution output rows per sequence over all blocks (the products this plan computes).
    pub fn conv_rows(&self) -> usize {
        self.blocks
            .iter()
            .map(|b| b.middle.len() + b.output.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn causal(kernel_size: usize, dilation: usize) -> ConvGeometry {
        ConvGeometry {
            kernel_size,
            dilation,
            left: (kernel_size - 1) * dilation,
        }
    }

    fn blocks(dilations: &[usize]) -> Vec<(ConvGeometry, ConvGeometry)> {
        dilations
            .iter()
            .map(|&d| (causal(3, d), causal(3, 2 * d)))
            .collect()
    }

    /// The paper's blocks and 51 positions (50 items and `[CLS]`), the last one requested: the
    /// sets worked out by hand.
    #[test]
    fn plan_of_the_paper_shape() {
        let plan = PositionPlan::new(&blocks(&[1, 4, 1, 4, 1, 4, 1, 4]), 51, &[50]);
        let all: Vec<usize> = (0..51).collect();
        assert_eq!(plan.input, all);
        for b in &plan.blocks[..5] {
            assert_eq!((&b.input, &b.middle, &b.output), (&all, &all, &all));
        }
        // Block 6 (dilations 4, 8): its output feeds block 7's input, 20..=50.
        assert_eq!(plan.blocks[5].middle, (4..51).collect::<Vec<_>>());
        assert_eq!(plan.blocks[5].output, (20..51).collect::<Vec<_>>());
        // Block 7 (dilations 1, 2).
        assert_eq!(
            plan.blocks[6].middle,
            (22..51).step_by(2).collect::<Vec<_>>()
        );
        assert_eq!(
            plan.blocks[6].output,
            (26..51).step_by(4).collect::<Vec<_>>()
        );
        // Block 8 (dilations 4, 8).
        assert_eq!(plan.blocks[7].middle, vec![34, 42, 50]);
        assert_eq!(plan.blocks[7].output, vec![50]);
        assert_eq!(plan.outputs(), &[50]);
        assert_eq!(plan.conv_rows(), 10 * 51 + 47 + 31 + 15 + 7 + 3 + 1);
    }

    /// Shape A's blocks and 21 positions: 211 of 336 convolution rows.
    #[test]
    fn plan_of_shape_a() {
        let plan = PositionPlan::new(&blocks(&[1, 2, 4, 8, 1, 2, 4, 8]), 21, &[20]);
        assert_eq!(plan.blocks[7].middle, vec![4, 20]);
        assert_eq!(plan.blocks[7].input, vec![4, 12, 20]);
        assert_eq!(
            plan.blocks[4].output,
            (0..21).step_by(2).collect::<Vec<_>>()
        );
        assert_eq!(plan.conv_rows(), 211);
    }

    /// Requesting every position changes nothing: no row is dropped anywhere.
    #[test]
    fn full_plan_restricts_nothing() {
        let all: Vec<usize> = (0..9).collect();
        let plan = PositionPlan::new(&blocks(&[1, 2, 4]), 9, &all);
        for b in &plan.blocks {
            assert_eq!((&b.input, &b.middle, &b.output), (&all, &all, &all));
            for r in [&b.input_to_middle, &b.middle_to_output, &b.input_to_output] {
                assert!(r.kept.is_none());
            }
            assert_eq!((b.conv1.inputs(), b.conv1.outputs()), (9, 9));
            assert!(!b.conv1.is_identity(), "k = 3 gathers its taps");
        }
        let pointwise = ConvGeometry {
            kernel_size: 1,
            dilation: 1,
            left: 0,
        };
        assert!(TapPlan::new(&all, &all, 9, pointwise).is_identity());
        assert!(!TapPlan::new(&all, &[8], 9, pointwise).is_identity());
    }

    /// Taps: a centred convolution reads on both sides, and taps outside the sequence point at
    /// the zero row.
    #[test]
    fn tap_rows_of_a_centred_convolution() {
        let g = ConvGeometry {
            kernel_size: 3,
            dilation: 2,
            left: 2,
        };
        let outputs = [0, 5];
        let inputs = g.needed_inputs(&outputs, 6);
        assert_eq!(inputs, vec![0, 2, 3, 5]);
        let taps = TapPlan::new(&inputs, &outputs, 6, g);
        // Zero row = 2 sequences · 4 rows = 8. Position 0 reads −2, 0, 2; position 5 reads 3, 5, 7.
        assert_eq!(taps.row_index(2), vec![8, 0, 1, 2, 3, 8, 8, 4, 5, 6, 7, 8]);
    }

    #[test]
    #[should_panic(expected = "strictly increasing")]
    fn unsorted_positions_are_refused() {
        PositionPlan::new(&blocks(&[1]), 5, &[3, 1]);
    }

    #[test]
    #[should_panic(expected = "below the length")]
    fn positions_past_the_end_are_refused() {
        PositionPlan::new(&blocks(&[1]), 5, &[2, 5]);
    }

    #[test]
    #[should_panic(expected = "at least one position")]
    fn an_empty_request_is_refused() {
        PositionPlan::new(&blocks(&[1]), 5, &[]);
    }
}
