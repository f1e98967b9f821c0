//! Ops the interpreter runs as one, so that a full-size intermediate tensor is never written
//! or read again:
//! - a convolution writes its output max-pooled when a MAX_POOL_2D whose windows tile it is its
//!   only reader (the tutorial's Conv2D → MaxPooling2D blocks). The values are the pool's: a
//!   float convolution pools its outputs as the pool would; a quantized one pools its 32-bit
//!   sums, which gives the same stored values because requantization never decreases, and
//!   requantizes a fraction of them;
//! - a float LOGISTIC writes x·σ(x) when its only reader is a MUL of it by its own input (the
//!   swish TensorFlow's converter writes as the two ops, 65 pairs in EfficientNetB0), the same
//!   bits as the two ops;
//! - a float CONV_2D or DEPTHWISE_CONV_2D applies the element-wise activation that is its
//!   output's only reader (HARD_SWISH in the MobileNetV3s, a swish in EfficientNet) to each
//!   block of its output as it finishes it, while the block is in the core's cache, the same
//!   bits as the activation running after it.

use super::ops::Op;

/// What fusion needs of an operator: its op and the tensors it reads and writes.
pub(super) trait Fusible {
    fn op(&mut self) -> &mut dyn Op;
    fn inputs(&self) -> &[Option<usize>];
    fn outputs(&self) -> &[usize];
}

/// Per node, the node whose work it takes over and whose outputs it writes; none without
/// `fuse`. Each node is asked again (and so unfused when nothing qualifies), as shapes may
/// have changed since the last time. `runs` marks the nodes that run; `kept` the tensors a
/// caller reads after a run.
pub(super) fn max_pools<N: Fusible>(
    nodes: &mut [N],
    runs: &[bool],
    kept: &[bool],
    fuse: bool,
) -> Vec<Option<usize>> {
    let readers = readers(nodes, runs, kept.len());
    let mut fused = vec![None; nodes.len()];
    for n in 0..nodes.len() {
        let pool = match (fuse && runs[n], nodes[n].outputs()) {
            (true, &[t]) if !kept[t] => match readers[t][..] {
                [m] if nodes[m].inputs().first() == Some(&Some(t)) => {
                    nodes[m].op().tiling_max_pool().map(|pool| (m, pool))
                }
                _ => None,
            },
            _ => None,
        };
        if nodes[n].op().pool_output(pool.map(|(_, p)| p)) {
            fused[n] = pool.map(|(m, _)| m);
        }
    }
    fused
}

/// Per node, the MUL a float LOGISTIC takes over (see the module's doc); none without `fuse`.
/// Each LOGISTIC is asked again, as [`max_pools`] asks convolutions.
pub(super) fn swishes<N: Fusible>(
    nodes: &mut [N],
    runs: &[bool],
    kept: &[bool],
    fuse: bool,
) -> Vec<Option<usize>> {
    let readers = readers(nodes, runs, kept.len());
    let mut fused = vec![None; nodes.len()];
    for n in 0..nodes.len() {
        let product = match (fuse && runs[n], nodes[n].inputs(), nodes[n].outputs()) {
            (true, &[Some(x)], &[t]) if !kept[t] && x != t => match readers[t][..] {
                [m] if times_own_input(&nodes[m], x, t)
                    && nodes[m].op().is_plain_float_product() =>
                {
                    Some(m)
                }
                _ => None,
            },
            _ => None,
        };
        if nodes[n].op().multiply_by_input(product.is_some()) {
            fused[n] = product;
        }
    }
    fused
}

/// Whether `node` reads exactly `x` and `t`, in either order.
fn times_own_input<N: Fusible>(node: &N, x: usize, t: usize) -> bool {
    matches!(node.inputs(), [Some(a), Some(b)] if (*a, *b) == (x, t) || (*a, *b) == (t, x))
}

/// Per tensor, the running nodes that read it.
fn readers<N: Fusible>(nodes: &[N], runs: &[bool], tensors: usize) -> Vec<Vec<usize>> {
    let mut readers = vec![Vec::new(); tensors];
    for (m, node) in nodes.iter().enumerate().filter(|(m, _)| runs[*m]) {
        for &t in node.inputs().iter().flatten() {
            readers[t].push(m);
        }
    }
    readers
}

/// Per node, the element-wise activation it applies to its output itself (see the module's doc);
/// none without `fuse`. `runs` must leave out the nodes other fusions took over, so that a swish's
/// MUL does not count as a second reader.
pub(super) fn activations<N: Fusible>(
    nodes: &mut [N],
    runs: &[bool],
    kept: &[bool],
    fuse: bool,
) -> Vec<Option<usize>> {
    let readers = readers(nodes, runs, kept.len());
    let mut fused = vec![None; nodes.len()];
    for n in 0..nodes.len() {
        let activation = match (fuse && runs[n], nodes[n].outputs()) {
            (true, &[t]) if !kept[t] => match readers[t][..] {
                [m] if nodes[m].inputs() == [Some(t)] => nodes[m].op().in_place().map(|f| (m, f)),
                _ => None,
            },
            _ => None,
        };
        let (m, then) = activation.unzip();
        if nodes[n].op().then_apply(then) {
            fused[n] = m;
        }
    }
    fused
}
