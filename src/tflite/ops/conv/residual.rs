//! A residual connection's float ADD done by the convolution whose output it reads (see
//! `crate::tflite::fusion`): each block of the convolution's output, while in the core's cache,
//! gets the skip tensor's values added and the ADD's activation applied, the same bits as the
//! ADD running after it (the operands kept in their order).

use crate::nn::kernels::clamp;
use crate::tflite::ops::ResidualAdd;

crate::nn::simd::compiled_per_level! {
    /// `block[i] = clamp(block[i] + skip[i])`, or `skip[i] + block[i]` with `skip_first`,
    /// vectorised at the selected level.
    fn add_skip(add: ResidualAdd, block: &mut [f32], skip: &[f32]) = add_skip_portable
}

#[inline(always)]
fn add_skip_portable(add: ResidualAdd, block: &mut [f32], skip: &[f32]) {
    let (min, max) = add.range;
    match add.skip_first {
        true => block
            .iter_mut()
            .zip(skip)
            .for_each(|(v, &s)| *v = clamp(s + *v, min, max)),
        false => block
            .iter_mut()
            .zip(skip)
            .for_each(|(v, &s)| *v = clamp(*v + s, min, max)),
    }
}

/// What a convolution applies to each block of its output (a part of it, found by its address
/// from the output's `start`) to take over `add` of `skip`, a tensor of the output's shape.
pub(super) fn adding(
    add: ResidualAdd,
    start: usize,
    skip: &[f32],
) -> impl Fn(&mut [f32]) + Sync + '_ {
    move |block: &mut [f32]| {
        let at = (block.as_ptr() as usize - start) / std::mem::size_of::<f32>();
        add_skip(add, block, &skip[at..at + block.len()]);
    }
}
