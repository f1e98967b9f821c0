//! Ops the interpreter runs as one, so that a full-size intermediate tensor is never written
//! or read again:
//! - a convolution writes its output max-pooled when a MAX_POOL_2D whose windows tile it is its
//!   only reader (the tutorial's Conv2D → MaxPooling2D blocks). The values are the pool's: a
//!   float convolution pools its outputs as the pool would; a quantized one pools its 32-bit
//!   sums, which gives the same stored values because requantization never decreases, and
//!   requantizes a fraction of them;
//! - a LOGISTIC writes x·σ(x) when its only reader is a MUL of it by its own input (the swish
//!   TensorFlow's converter writes as the two ops, 65 pairs in EfficientNetB0), the same bits
//!   as the two ops: in float, computing the product; quantized, by one table of the MUL's
//!   stored output for each of the 256 stored inputs;
//! - a float CONV_2D or DEPTHWISE_CONV_2D applies the element-wise activation that is its
//!   output's only reader (HARD_SWISH in the MobileNetV3s, a swish in EfficientNet) to each
//!   block of its output as it finishes it, while the block is in the core's cache, the same
//!   bits as the activation running after it;
//! - a float 1×1 CONV_2D whose output only a DEPTHWISE_CONV_2D reads, and would not stay in a
//!   core's cache (MobileNetV2's first expansions, 1.8–4.8 MB), makes it a band of rows at a
//!   time for the depthwise convolution to read at once (`kernels::expanded_depthwise`), the
//!   same bits as the two ops;
//! - a float convolution whose output only a residual connection's ADD reads adds the other
//!   operand (the skip, written by an earlier node) to each block of its output as it finishes
//!   it, the same bits as the ADD running after it.

use super::ops::{DepthwiseStage, InPlace, InputProduct, Op, ResidualAdd, TilingMaxPool};

/// What fusion needs of an operator: its op and the tensors it reads and writes.
pub(super) trait Fusible {
    fn op(&mut self) -> &mut dyn Op;
    fn inputs(&self) -> &[Option<usize>];
    fn outputs(&self) -> &[usize];
}

/// What fusion decided, per node.
pub(super) struct TakeOvers {
    /// The node whose work it takes over.
    pub taken: Vec<Option<usize>>,
    /// The tensor it then reads besides its inputs, after them (a residual ADD's skip).
    pub extra_input: Vec<Option<usize>>,
}

/// Per node, the node whose work it takes over (see the module's doc); none without `fuse`.
/// Each node is asked again (and so unfused when nothing qualifies), as shapes may have changed
/// since the last time. `runs` marks the nodes that run, and comes back with those taken over
/// unmarked; `kept` marks the tensors a caller reads after a run. A node may take over one that
/// took over another (a convolution, the LOGISTIC of a swish).
pub(super) fn take_overs<N: Fusible>(
    nodes: &mut [N],
    runs: &mut [bool],
    kept: &[bool],
    fuse: bool,
) -> TakeOvers {
    let mut fused = vec![None; nodes.len()];
    let mut merge = |found: Vec<Option<usize>>, runs: &mut [bool]| {
        for (fused, found) in fused.iter_mut().zip(found) {
            *fused = fused.or(found);
        }
        for m in fused.iter().flatten() {
            runs[*m] = false;
        }
    };
    // Pools and swishes in one pass: neither takes over a node the other would. Activations
    // after, on the nodes still running, so that a swish's MUL is not a second reader. Within a
    // pass no node both takes over and is taken over (the ops that take are never offered), so
    // a taker's work covers its whole chain: a LOGISTIC's function includes its swish's MUL.
    let pools = take_sole_readers(nodes, (runs, kept, fuse), max_pool_offer, |op, pool| {
        op.pool_output(pool)
    });
    let swishes = take_sole_readers(nodes, (runs, kept, fuse), swish_offer, |op, product| {
        op.multiply_by_input(product)
    });
    merge(pools, runs);
    merge(swishes, runs);
    let activations = take_sole_readers(nodes, (runs, kept, fuse), activation_offer, |op, f| {
        op.then_apply(f)
    });
    merge(activations, runs);
    // Last, so that a depthwise convolution comes with the activation it took over, and a
    // convolution that took over one is not offered a depthwise one.
    let depthwise = take_sole_readers(nodes, (runs, kept, fuse), depthwise_offer, |op, stage| {
        op.expand_into(stage)
    });
    merge(depthwise, runs);
    // Last of all: no pass after it may stop a node writing a skip.
    let (residuals, extra_input) = take_residual_adds(nodes, (runs, kept, fuse));
    merge(residuals, runs);
    TakeOvers {
        taken: fused,
        extra_input,
    }
}

/// Each running node whose one output `t` nobody keeps and only a running residual ADD `m`
/// reads, asked to take `m` over (and the others, to take nothing): per node, the ADD taken
/// and its skip. The skip must be written by an earlier node (or be an input of the graph), so
/// that it is there when the node runs; and an ADD of two such outputs goes to one of them.
fn take_residual_adds<N: Fusible>(
    nodes: &mut [N],
    (runs, kept, fuse): (&[bool], &[bool], bool),
) -> (Vec<Option<usize>>, Vec<Option<usize>>) {
    let mut readers = vec![Vec::new(); kept.len()];
    let mut writer = vec![None; kept.len()];
    for (m, node) in nodes.iter().enumerate().filter(|(m, _)| runs[*m]) {
        node.inputs()
            .iter()
            .flatten()
            .for_each(|&t| readers[t].push(m));
        node.outputs().iter().for_each(|&t| writer[t] = Some(m));
    }
    let (mut taken, mut skips) = (vec![None; nodes.len()], vec![None; nodes.len()]);
    let mut add_taken = vec![false; nodes.len()];
    for n in 0..nodes.len() {
        let offered = match (fuse && runs[n], nodes[n].outputs()) {
            (true, &[t]) if !kept[t] => match readers[t][..] {
                [m] if !add_taken[m] => residual_offer(nodes, t, m)
                    .filter(|&(_, skip)| writer[skip].is_none_or(|w| w < n))
                    .map(|(add, skip)| (m, add, skip)),
                _ => None,
            },
            _ => None,
        };
        let (m, add, skip) = match offered {
            Some((m, add, skip)) => (Some(m), Some(add), Some(skip)),
            None => (None, None, None),
        };
        if nodes[n].op().add_residual(add) {
            (taken[n], skips[n]) = (m, skip);
            m.into_iter().for_each(|m| add_taken[m] = true);
        }
    }
    (taken, skips)
}

/// The float residual ADD `m` of `t` and another tensor, if it is one: the ADD as the
/// convolution would do it, and the other tensor (the skip).
fn residual_offer<N: Fusible>(nodes: &mut [N], t: usize, m: usize) -> Option<(ResidualAdd, usize)> {
    let (skip, skip_first) = match *nodes[m].inputs() {
        [Some(a), Some(b)] if a == t && b != t => (b, false),
        [Some(a), Some(b)] if b == t && a != t => (a, true),
        _ => return None,
    };
    let range = nodes[m].op().residual_range()?;
    Some((ResidualAdd { range, skip_first }, skip))
}

/// The float depthwise convolution `m` of `t`, if it is one.
fn depthwise_offer<N: Fusible>(
    nodes: &mut [N],
    _: usize,
    t: usize,
    m: usize,
) -> Option<DepthwiseStage> {
    let reads_first = nodes[m].inputs().first() == Some(&Some(t));
    reads_first
        .then(|| nodes[m].op().depthwise_stage())
        .flatten()
}

/// The max-pool `m` that reads `t` (first), when its windows tile it.
fn max_pool_offer<N: Fusible>(
    nodes: &mut [N],
    _: usize,
    t: usize,
    m: usize,
) -> Option<TilingMaxPool> {
    let reads_first = nodes[m].inputs().first() == Some(&Some(t));
    reads_first
        .then(|| nodes[m].op().tiling_max_pool())
        .flatten()
}

/// The product `m` is of LOGISTIC `n`'s output `t` by `n`'s input, if it is one.
fn swish_offer<N: Fusible>(nodes: &mut [N], n: usize, t: usize, m: usize) -> Option<InputProduct> {
    let &[Some(x)] = nodes[n].inputs() else {
        return None;
    };
    let pair = match nodes[m].inputs() {
        &[Some(a), Some(b)] => [a, b],
        _ => return None,
    };
    if x == t || !(pair == [x, t] || pair == [t, x]) {
        return None;
    }
    let op = nodes[m].op();
    if op.is_plain_float_product() {
        return Some(InputProduct::Float);
    }
    let product = op.stored_product()?;
    let input_first = pair == [x, t];
    Some(InputProduct::Stored(std::sync::Arc::new(
        move |v, s| match input_first {
            true => product(v, s),
            false => product(s, v),
        },
    )))
}

/// The element-wise activation `m` of `t` alone, as a function in place.
fn activation_offer<N: Fusible>(nodes: &mut [N], _: usize, t: usize, m: usize) -> Option<InPlace> {
    let only_input = nodes[m].inputs() == [Some(t)];
    only_input.then(|| nodes[m].op().in_place()).flatten()
}

/// Asks each running node `n` whose one output `t` nobody keeps, and has one running reader
/// `m`, what it would take over from `m` (`offer(nodes, n, t, m)`), then asks the node's op to
/// take that or, with `None`, nothing (`accept`, true when it takes it).
fn take_sole_readers<N: Fusible, T>(
    nodes: &mut [N],
    (runs, kept, fuse): (&[bool], &[bool], bool),
    offer: impl Fn(&mut [N], usize, usize, usize) -> Option<T>,
    accept: impl Fn(&mut dyn Op, Option<T>) -> bool,
) -> Vec<Option<usize>> {
    let mut readers = vec![Vec::new(); kept.len()];
    for (m, node) in nodes.iter().enumerate().filter(|(m, _)| runs[*m]) {
        for &t in node.inputs().iter().flatten() {
            readers[t].push(m);
        }
    }
    let mut fused = vec![None; nodes.len()];
    for n in 0..nodes.len() {
        let offered = match (fuse && runs[n], nodes[n].outputs()) {
            (true, &[t]) if !kept[t] => match readers[t][..] {
                [m] => offer(nodes, n, t, m).map(|what| (m, what)),
                _ => None,
            },
            _ => None,
        };
        let (m, what) = offered.unzip();
        if accept(nodes[n].op(), what) {
            fused[n] = m;
        }
    }
    fused
}

#[cfg(test)]
mod tests {
    use super::super::export::graph::Graph;
    use crate::tflite::schema::{
        ActivationFunctionType, AddOptions, BuiltinOperator, BuiltinOptions, Conv2DOptions,
        DepthwiseConv2DOptions, Padding, TensorType,
    };
    use crate::tflite::{Interpreter, Tensor};

    fn values(n: usize, seed: usize) -> Vec<f32> {
        let value = |i: usize| ((i * 7919) % 37) as f32 / 20.0 - 0.9;
        (0..n).map(|i| value(i + seed)).collect()
    }

    /// A 1×1 convolution of `x` (`size`² pixels) from `from` to `to` channels.
    fn conv(
        g: &mut Graph,
        x: i32,
        (from, to, size): (usize, usize, i32),
        activation: ActivationFunctionType,
        name: &str,
    ) -> i32 {
        let w = g.constant_f32(
            format!("{name}/w"),
            &[to, 1, 1, from],
            &values(to * from, 3),
        );
        let b = g.constant_f32(format!("{name}/b"), &[to], &values(to, 5));
        let y = g.activation(name.into(), &[size, size, to as i32]);
        let options = Conv2DOptions {
            padding: Padding::Same,
            stride_w: 1,
            stride_h: 1,
            fused_activation_function: activation,
            dilation_w_factor: 1,
            dilation_h_factor: 1,
            quantized_bias_type: TensorType::Float32,
        };
        let options = Some(BuiltinOptions::Conv2DOptions(Box::new(options)));
        g.op(BuiltinOperator::Conv2d, vec![x, w, b], y, options);
        y
    }

    /// The model's output bits for `image`, and per operator whether it ran, fused or not.
    fn run(model: &[u8], image: &Tensor, fused: bool) -> (Vec<u32>, Vec<bool>) {
        let mut interpreter = Interpreter::from_bytes(model, "fusion").unwrap();
        interpreter.preserve_all_tensors(!fused);
        interpreter.profile(true);
        let signature = interpreter.signature_list().remove(0);
        let outputs = (interpreter.signature_runner(&signature.key).unwrap())
            .run(&[(&signature.inputs[0].name, image)])
            .unwrap();
        let output = outputs.into_values().next().unwrap();
        let bits: Vec<u32> = output
            .as_f32()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect();
        let ran: Vec<bool> = (interpreter.op_times().into_iter())
            .map(|(_, time)| !time.is_zero())
            .collect();
        (bits, ran)
    }

    /// A 1×1 convolution expanding 8 channels to 96 over 112×112 pixels (4.8 MB: made a band at
    /// a time), a 3×3 depthwise convolution of it at stride 2, then a 1×1 projection, as in
    /// MobileNetV2: fused, the bits of the ops one after the other, and the depthwise
    /// convolution does not run on its own.
    #[test]
    fn an_expansion_makes_its_depthwise_convolutions_input_a_band_at_a_time() {
        let mut g = Graph::default();
        let x = g.activation("x".into(), &[112, 112, 8]);
        let relu6 = ActivationFunctionType::Relu6;
        let expanded = conv(&mut g, x, (8, 96, 112), relu6, "expand");
        let w = g.constant_f32("depthwise/w".into(), &[1, 3, 3, 96], &values(9 * 96, 7));
        let b = g.constant_f32("depthwise/b".into(), &[96], &values(96, 11));
        let filtered = g.activation("depthwise".into(), &[56, 56, 96]);
        let options = DepthwiseConv2DOptions {
            padding: Padding::Same,
            stride_w: 2,
            stride_h: 2,
            depth_multiplier: 1,
            fused_activation_function: relu6,
            dilation_w_factor: 1,
            dilation_h_factor: 1,
        };
        let options = Some(BuiltinOptions::DepthwiseConv2DOptions(Box::new(options)));
        g.op(
            BuiltinOperator::DepthwiseConv2d,
            vec![expanded, w, b],
            filtered,
            options,
        );
        g.output = conv(&mut g, filtered, (96, 8, 56), relu6, "project");
        g.input = x;
        let model = g.serialise();
        let image = Tensor::f32(vec![1, 112, 112, 8], values(112 * 112 * 8, 1));
        let ((fused, ran), (plain, plain_ran)) =
            (run(&model, &image, true), run(&model, &image, false));
        assert_eq!(fused, plain);
        assert_eq!((ran, plain_ran), (vec![true, false, true], vec![true; 3]));
    }

    /// Residual blocks as MobileNetV2 and ResNet50 make them: a projection whose output only
    /// an ADD with the block's input reads (either operand first), and an ADD of two
    /// convolutions' outputs that each only it reads. Fused, the bits of the ops one after the
    /// other; the first two ADDs do not run, and the third is done by one convolution (the
    /// later one, whose skip the earlier writes).
    #[test]
    fn a_convolution_adds_the_skip_of_the_residual_add_it_alone_feeds() {
        let mut g = Graph::default();
        let x = g.activation("x".into(), &[14, 14, 24]);
        let add = |g: &mut Graph, a: i32, b: i32, activation, name: &str| {
            let y = g.activation(name.into(), &[14, 14, 24]);
            let options = AddOptions {
                fused_activation_function: activation,
                pot_scale_int16: false,
            };
            let options = Some(BuiltinOptions::AddOptions(Box::new(options)));
            g.op(BuiltinOperator::Add, vec![a, b], y, options);
            y
        };
        let (none, relu) = (ActivationFunctionType::None, ActivationFunctionType::Relu);
        let projected = conv(&mut g, x, (24, 24, 14), none, "project");
        let first = add(&mut g, projected, x, none, "first");
        let projected = conv(&mut g, first, (24, 24, 14), relu, "project2");
        let second = add(&mut g, first, projected, relu, "second");
        let main = conv(&mut g, second, (24, 24, 14), none, "main");
        let shortcut = conv(&mut g, first, (24, 24, 14), none, "shortcut");
        g.output = add(&mut g, main, shortcut, relu, "third");
        g.input = x;
        let model = g.serialise();
        let image = Tensor::f32(vec![1, 14, 14, 24], values(14 * 14 * 24, 1));
        let ((fused, ran), (plain, plain_ran)) =
            (run(&model, &image, true), run(&model, &image, false));
        assert_eq!(fused, plain);
        let expected = vec![true, false, true, false, true, true, false];
        assert_eq!((ran, plain_ran), (expected, vec![true; 7]));
    }
}
