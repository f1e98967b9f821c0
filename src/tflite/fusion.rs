//! Ops the interpreter runs as one: a convolution writes its output max-pooled when a
//! MAX_POOL_2D whose windows tile it is its only reader (the tutorial's Conv2D → MaxPooling2D
//! blocks), so the full-size output is never written or read again. The values are the
//! pool's: a float convolution pools its outputs as the pool would; a quantized one pools its
//! 32-bit sums, which gives the same stored values because requantization never decreases,
//! and requantizes a fraction of them.

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
    let mut readers = vec![Vec::new(); kept.len()];
    for (m, node) in nodes.iter().enumerate().filter(|(m, _)| runs[*m]) {
        for &t in node.inputs().iter().flatten() {
            readers[t].push(m);
        }
    }
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
