//! A 2×2, stride-2 max-pool run by the Conv2D before it: pooled from two freshly computed output
//! rows while they are in L1, so the convolution's full-size output is never stored. Backward
//! needs only which of the four won (one byte each) and the pooled value: with ReLU, a window's
//! winner was positive exactly when the pooled value is.
//!
//! Ties and NaNs go as in `MaxPooling2D`: corners in the order top-left, top-right, bottom-left,
//! bottom-right, and a later corner wins only when strictly greater. Only the direct path fuses
//! pools, so these run its SIMD kernels; this file checks their bounds.

use super::tiles;
use crate::nn::simd::Level;

/// Pools two output rows (`pair`: 2 × `width` pixels of `channels`, a multiple of 16) into one
/// row of `width / 2` pixels, recording each winner's corner in `corner`.
pub(crate) fn pool_pair(
    pair: &[f32],
    width: usize,
    channels: usize,
    (pooled, corner): (&mut [f32], &mut [u8]),
    level: Level,
) {
    let pair_len = width
        .checked_mul(channels)
        .and_then(|line| line.checked_mul(2));
    assert!(channels.is_multiple_of(16) && level.is_available());
    assert!(pair_len.is_some_and(|needed| pair.len() >= needed));
    let (line, out) = (width * channels, width / 2 * channels);
    assert!(pooled.len() >= out && corner.len() >= out);
    let (top, bottom) = (pair.as_ptr(), pair[line..].as_ptr());
    let (pixels, pooled, corner) = (width / 2, pooled.as_mut_ptr(), corner.as_mut_ptr());
    // SAFETY: the processor has the level's features; both rows hold `width` pixels and the
    // outputs `width / 2`, in whole vectors (16 channels hold one or two of any level).
    unsafe {
        match level {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => {
                tiles::avx512::pool_pair(top, bottom, pixels, channels, pooled, corner)
            }
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => tiles::avx2::pool_pair(top, bottom, pixels, channels, pooled, corner),
            #[cfg(target_arch = "aarch64")]
            Level::Neon => tiles::neon::pool_pair(top, bottom, pixels, channels, pooled, corner),
            _ => tiles::scalar::pool_pair(top, bottom, pixels, channels, pooled, corner),
        }
    }
}

/// The gradient of the convolution's output from the pool's: each window's winner gets the pooled
/// gradient (zero when `relu` and the pooled value is not positive), the other three zero, and so
/// do the rows and columns no window covers.
pub(crate) struct Unpool<'a> {
    pub pooled: &'a [f32],
    pub grad: &'a [f32],
    pub corner: &'a [u8],
    pub relu: bool,
    /// The convolution's output: height, width, channels.
    pub size: (usize, usize, usize),
    pub level: Level,
}

impl Unpool<'_> {
    /// Writes output pixel (y, x) at `out[y · row_stride + x · channels ..]`, and adds to `sums`
    /// (when given) each channel's total: the bias gradient.
    pub fn write(&self, out: &mut [f32], row_stride: usize, mut sums: Option<&mut [f32]>) {
        let (h, w, c) = self.size;
        let (ph, pw) = (h / 2, w / 2);
        // Checked products: a wrapped one would pass the length checks below.
        let row_len = w.checked_mul(c).expect("convolution output row too long");
        assert!(c.is_multiple_of(16) && self.level.is_available() && row_stride >= row_len);
        let out_len = (h.max(1) - 1)
            .checked_mul(row_stride)
            .and_then(|start| start.checked_add(row_len));
        assert!(h > 0 && out_len.is_some_and(|needed| out.len() >= needed));
        let pooled_len = ph * pw * c; // at most a quarter of `out_len`
        assert!(self.grad.len() >= pooled_len && self.pooled.len() >= pooled_len);
        assert!(self.corner.len() >= pooled_len);
        assert!(sums.as_ref().is_none_or(|s| s.len() >= c));
        for py in 0..ph {
            let (upper, lower) = out[2 * py * row_stride..].split_at_mut(row_stride);
            let (top, bottom) = (&mut upper[..row_len], &mut lower[..row_len]);
            let sums_ptr = sums
                .as_deref_mut()
                .map_or(std::ptr::null_mut(), |s| s.as_mut_ptr());
            let at = py * pw * c;
            let (grad, pooled, corner) = (
                self.grad[at..].as_ptr(),
                self.pooled[at..].as_ptr(),
                self.corner[at..].as_ptr(),
            );
            let rows = (top.as_mut_ptr(), bottom.as_mut_ptr());
            let relu = self.relu;
            // SAFETY: the processor has the level's features; the pooled row holds `pw` pixels,
            // both output rows `w ≥ 2 pw`, `sums` (if any) `c` values, in whole vectors.
            unsafe {
                match self.level {
                    #[cfg(target_arch = "x86_64")]
                    Level::Avx512 => tiles::avx512::unpool_pair(
                        grad, pooled, corner, relu, pw, c, rows, sums_ptr,
                    ),
                    #[cfg(target_arch = "x86_64")]
                    Level::Avx2 => {
                        tiles::avx2::unpool_pair(grad, pooled, corner, relu, pw, c, rows, sums_ptr)
                    }
                    #[cfg(target_arch = "aarch64")]
                    Level::Neon => {
                        tiles::neon::unpool_pair(grad, pooled, corner, relu, pw, c, rows, sums_ptr)
                    }
                    _ => tiles::scalar::unpool_pair(
                        grad, pooled, corner, relu, pw, c, rows, sums_ptr,
                    ),
                }
            }
            top[2 * pw * c..].fill(0.0);
            bottom[2 * pw * c..].fill(0.0);
        }
        for y in 2 * ph..h {
            out[y * row_stride..][..row_len].fill(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Thirteen values, negatives among them, so windows have ties and ReLU zeros.
    fn rows(width: usize, channels: usize) -> Vec<f32> {
        (0..2 * width * channels)
            .map(|i| ((i * 7919) % 13) as f32 - 6.0)
            .collect()
    }

    /// `MaxPooling2D`'s rule: corners in order, a later one wins only when strictly greater.
    fn naive_pool(pair: &[f32], width: usize, c: usize) -> (Vec<f32>, Vec<u8>) {
        let (mut pooled, mut corner) = (vec![], vec![]);
        for px in 0..width / 2 {
            for ch in 0..c {
                let at = |row: usize, dx: usize| pair[row * width * c + (2 * px + dx) * c + ch];
                let candidates = [at(0, 0), at(0, 1), at(1, 0), at(1, 1)];
                let (mut best, mut won) = (candidates[0], 0u8);
                for (k, &v) in candidates.iter().enumerate().skip(1) {
                    if v > best {
                        (best, won) = (v, k as u8);
                    }
                }
                pooled.push(best);
                corner.push(won);
            }
        }
        (pooled, corner)
    }

    #[test]
    fn every_level_pools_and_unpools_as_max_pooling_does() {
        let (width, c) = (7, 32);
        let pair = rows(width, c);
        let (expected, expected_corner) = naive_pool(&pair, width, c);
        for level in Level::available() {
            let mut pooled = vec![f32::NAN; expected.len()];
            let mut corner = vec![9u8; expected.len()];
            pool_pair(&pair, width, c, (&mut pooled, &mut corner), level);
            assert_eq!(pooled, expected, "{level}");
            assert_eq!(corner, expected_corner, "{level}");

            let grad: Vec<f32> = (0..pooled.len()).map(|i| i as f32 + 0.5).collect();
            let unpool = Unpool {
                pooled: &pooled,
                grad: &grad,
                corner: &corner,
                relu: true,
                size: (2, width, c),
                level,
            };
            let mut out = vec![f32::NAN; 2 * width * c];
            let mut sums = vec![0.0; c];
            unpool.write(&mut out, width * c, Some(&mut sums));
            let mut expected_out = vec![0.0; 2 * width * c];
            let mut expected_sums = vec![0.0; c];
            for (i, (&g, &k)) in grad.iter().zip(&corner).enumerate() {
                let g = if pooled[i] > 0.0 { g } else { 0.0 };
                let (px, ch) = (i / c, i % c);
                let (row, dx) = (k as usize / 2, k as usize % 2);
                expected_out[row * width * c + (2 * px + dx) * c + ch] = g;
                expected_sums[ch] += g;
            }
            assert_eq!(out, expected_out, "{level}");
            assert_eq!(sums, expected_sums, "{level}");
        }
    }
}
