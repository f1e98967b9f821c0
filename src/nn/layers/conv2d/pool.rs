//! A 2×2, stride-2 max-pool run by the Conv2D before it: pooled from two freshly computed output
//! rows while they are in L1, so the convolution's full-size output is never stored. Backward
//! needs only which of the four won (one byte each) and the pooled value: with ReLU, a window's
//! winner was positive exactly when the pooled value is.
//!
//! Ties and NaNs go as in `MaxPooling2D`: corners in the order top-left, top-right, bottom-left,
//! bottom-right, and a later corner wins only when strictly greater. Only the direct path fuses
//! pools, so these run the AVX-512 kernels; this file checks their bounds.

/// Pools two output rows (`pair`: 2 × `width` pixels of `channels`, a multiple of 16) into one
/// row of `width / 2` pixels, recording each winner's corner in `corner`.
pub(super) fn pool_pair(
    pair: &[f32],
    width: usize,
    channels: usize,
    pooled: &mut [f32],
    corner: &mut [u8],
) {
    let pair_len = width
        .checked_mul(channels)
        .and_then(|line| line.checked_mul(2));
    assert!(channels.is_multiple_of(16) && super::direct::available());
    assert!(pair_len.is_some_and(|needed| pair.len() >= needed));
    let (line, out) = (width * channels, width / 2 * channels);
    assert!(pooled.len() >= out && corner.len() >= out);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the processor has AVX-512; both rows hold `width` pixels and the outputs `width / 2`,
    // in whole vectors of 16 channels.
    unsafe {
        let (top, bottom) = (pair.as_ptr(), pair[line..].as_ptr());
        super::avx512::pool_pair(
            top,
            bottom,
            width / 2,
            channels,
            pooled.as_mut_ptr(),
            corner.as_mut_ptr(),
        );
    }
}

/// The gradient of the convolution's output from the pool's: each window's winner gets the pooled
/// gradient (zero when `relu` and the pooled value is not positive), the other three zero, and so
/// do the rows and columns no window covers.
pub(super) struct Unpool<'a> {
    pub pooled: &'a [f32],
    pub grad: &'a [f32],
    pub corner: &'a [u8],
    pub relu: bool,
    /// The convolution's output: height, width, channels.
    pub size: (usize, usize, usize),
}

impl Unpool<'_> {
    /// Writes output pixel (y, x) at `out[y · row_stride + x · channels ..]`, and adds to `sums`
    /// (when given) each channel's total: the bias gradient.
    pub fn write(&self, out: &mut [f32], row_stride: usize, mut sums: Option<&mut [f32]>) {
        let (h, w, c) = self.size;
        let (ph, pw) = (h / 2, w / 2);
        // Checked products: a wrapped one would pass the length checks below.
        let row_len = w.checked_mul(c).expect("convolution output row too long");
        assert!(c.is_multiple_of(16) && super::direct::available() && row_stride >= row_len);
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
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the processor has AVX-512; the pooled row holds `pw` pixels, both output rows
            // `w ≥ 2 pw`, `sums` (if any) `c` values, all in whole vectors of 16 channels.
            unsafe {
                super::avx512::unpool_pair(
                    self.grad[at..].as_ptr(),
                    self.pooled[at..].as_ptr(),
                    self.corner[at..].as_ptr(),
                    self.relu,
                    pw,
                    c,
                    (top.as_mut_ptr(), bottom.as_mut_ptr()),
                    sums_ptr,
                );
            }
            top[2 * pw * c..].fill(0.0);
            bottom[2 * pw * c..].fill(0.0);
        }
        for y in 2 * ph..h {
            out[y * row_stride..][..row_len].fill(0.0);
        }
    }
}
