//! AVX-512 kernels of the direct convolution. They read a zero-padded input, so no tap needs a
//! bounds check, and keep a tile of outputs in the 32 vector registers for the whole reduction:
//! the convolution runs at GEMM speed without writing an im2col matrix.
//!
//! Every function here is `unsafe`: the callers in `direct.rs` check that every address the
//! geometry implies lies inside the slices before calling.

use super::direct::Geometry;
use std::arch::x86_64::*;

/// Output pixels per forward tile for `V` vectors of 16 filters: accumulators, the `V` kernel
/// vectors and one broadcast fit in the 32 registers.
pub(super) const fn tile_pixels(v: usize) -> usize {
    match v {
        1 | 2 => 12,
        3 => 8,
        _ => 6,
    }
}

/// Kernel rows per weight-gradient block for `V` vectors of 16 filters.
pub(super) const fn block_rows(v: usize) -> usize {
    match v {
        1 => 24,
        2 => 12,
        3 => 8,
        _ => 6,
    }
}

/// One output row, filters `f0 .. f0 + 16·V`: `out` points at the row's first pixel. Tiles of
/// `P` pixels; the last tile is moved left to end at the row's end (recomputing a few pixels)
/// rather than run a narrower, slower tile. `C` is 0, or the input channels when the column
/// stride is 1: then every tap's offset is a constant and no pointer has to leave a register.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn forward_row<const V: usize, const P: usize, const C: usize>(
    g: &Geometry,
    x: *const f32,
    w: *const f32,
    bias: *const f32,
    relu: bool,
    oy: usize,
    f0: usize,
    out: *mut f32,
) {
    if g.out_w < P {
        for ox in 0..g.out_w {
            forward_tile::<V, 1, 0>(g, x, w, bias, relu, oy, ox, f0, out);
        }
        return;
    }
    let mut ox = 0;
    while ox + P <= g.out_w {
        forward_tile::<V, P, C>(g, x, w, bias, relu, oy, ox, f0, out);
        ox += P;
    }
    if ox < g.out_w {
        forward_tile::<V, P, C>(g, x, w, bias, relu, oy, g.out_w - P, f0, out);
    }
}

#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn forward_tile<const V: usize, const P: usize, const C: usize>(
    g: &Geometry,
    x: *const f32,
    w: *const f32,
    bias: *const f32,
    relu: bool,
    oy: usize,
    ox: usize,
    f0: usize,
    out: *mut f32,
) {
    let c_in = if C > 0 { C } else { g.channels };
    let pixel_step = if C > 0 { C } else { g.sx * c_in };
    let mut acc = [[_mm512_setzero_ps(); V]; P];
    for v in 0..V {
        let b = _mm512_loadu_ps(bias.add(f0 + 16 * v));
        for p in 0..P {
            acc[p][v] = b;
        }
    }
    for ky in 0..g.kh {
        let row = x.add(((oy * g.sy + ky) * g.in_w + ox * g.sx) * c_in);
        for kx in 0..g.kw {
            let taps = row.add(kx * c_in);
            let weights = w.add((ky * g.kw + kx) * c_in * g.filters + f0);
            for c in 0..c_in {
                let mut wv = [_mm512_setzero_ps(); V];
                for v in 0..V {
                    wv[v] = _mm512_loadu_ps(weights.add(c * g.filters + 16 * v));
                }
                for p in 0..P {
                    let xv = _mm512_set1_ps(*taps.add(p * pixel_step + c));
                    for v in 0..V {
                        acc[p][v] = _mm512_fmadd_ps(xv, wv[v], acc[p][v]);
                    }
                }
            }
        }
    }
    let zero = _mm512_setzero_ps();
    for p in 0..P {
        for v in 0..V {
            let value = if relu {
                _mm512_max_ps(acc[p][v], zero)
            } else {
                acc[p][v]
            };
            _mm512_storeu_ps(out.add((ox + p) * g.filters + f0 + 16 * v), value);
        }
    }
}

/// Adds to kernel rows `r0 .. r0 + R` (flattened (kx, c) of kernel row `ky`; they are
/// contiguous in the padded input) and filters `f0 .. f0 + 16·V` their gradient over output
/// rows `oys`: Σ over pixels of input tap × output gradient. `dy` points at the gradient's
/// first output row, `dy_row` floats apart; rows below `keep_from` of the block are already
/// counted by a previous block and are not added again.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
pub(super) unsafe fn weight_grad_block<const V: usize, const R: usize>(
    g: &Geometry,
    x: *const f32,
    dy: *const f32,
    dy_row: usize,
    oys: std::ops::Range<usize>,
    ky: usize,
    r0: usize,
    keep_from: usize,
    f0: usize,
    dw: *mut f32,
) {
    let c_in = g.channels;
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    for oy in oys {
        let taps_row = x.add(((oy * g.sy + ky) * g.in_w) * c_in + r0);
        let grads = dy.add(oy * dy_row + f0);
        for ox in 0..g.out_w {
            let taps = taps_row.add(ox * g.sx * c_in);
            let grad = grads.add(ox * g.filters);
            let mut d = [_mm512_setzero_ps(); V];
            for v in 0..V {
                d[v] = _mm512_loadu_ps(grad.add(16 * v));
            }
            for r in 0..R {
                let xv = _mm512_set1_ps(*taps.add(r));
                for v in 0..V {
                    acc[r][v] = _mm512_fmadd_ps(xv, d[v], acc[r][v]);
                }
            }
        }
    }
    let rows = dw.add((ky * g.kw * c_in + r0) * g.filters + f0);
    for r in keep_from..R {
        for v in 0..V {
            let at = rows.add(r * g.filters + 16 * v);
            _mm512_storeu_ps(at, _mm512_add_ps(_mm512_loadu_ps(at), acc[r][v]));
        }
    }
}

/// Pools two output rows (`top`, `bottom`) into `pixels` pooled pixels of `c` channels (a multiple
/// of 16), writing each winner's corner (0‥3: top-left, top-right, bottom-left, bottom-right; a
/// later corner wins only when strictly greater).
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn pool_pair(
    top: *const f32,
    bottom: *const f32,
    pixels: usize,
    c: usize,
    pooled: *mut f32,
    corner: *mut u8,
) {
    for px in 0..pixels {
        for v in (0..c).step_by(16) {
            let at = 2 * px * c + v;
            let candidates = [
                _mm512_loadu_ps(top.add(at + c)),
                _mm512_loadu_ps(bottom.add(at)),
                _mm512_loadu_ps(bottom.add(at + c)),
            ];
            let mut best = _mm512_loadu_ps(top.add(at));
            let mut won = _mm512_setzero_si512();
            for (k, candidate) in candidates.into_iter().enumerate() {
                let better = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(candidate, best);
                best = _mm512_mask_mov_ps(best, better, candidate);
                won = _mm512_mask_mov_epi32(won, better, _mm512_set1_epi32(k as i32 + 1));
            }
            _mm512_storeu_ps(pooled.add(px * c + v), best);
            _mm_storeu_si128(corner.add(px * c + v).cast(), _mm512_cvtepi32_epi8(won));
        }
    }
}

/// The output gradient of two convolution rows from one pooled row: each window's winner gets
/// the pooled gradient (zero when `relu` and the pooled value is not positive), the others zero.
/// Adds what each channel received to `sums` when it is not null.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn unpool_pair(
    grad: *const f32,
    pooled: *const f32,
    corner: *const u8,
    relu: bool,
    pixels: usize,
    c: usize,
    (top, bottom): (*mut f32, *mut f32),
    sums: *mut f32,
) {
    let zero = _mm512_setzero_ps();
    for px in 0..pixels {
        for v in (0..c).step_by(16) {
            let i = px * c + v;
            let mut g = _mm512_loadu_ps(grad.add(i));
            if relu {
                let positive =
                    _mm512_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_loadu_ps(pooled.add(i)), zero);
                g = _mm512_maskz_mov_ps(positive, g);
            }
            if !sums.is_null() {
                _mm512_storeu_ps(sums.add(v), _mm512_add_ps(_mm512_loadu_ps(sums.add(v)), g));
            }
            let won = _mm512_cvtepu8_epi32(_mm_loadu_si128(corner.add(i).cast()));
            let o = 2 * px * c + v;
            let targets = [top.add(o), top.add(o + c), bottom.add(o), bottom.add(o + c)];
            for (k, target) in targets.into_iter().enumerate() {
                let mine = _mm512_cmpeq_epi32_mask(won, _mm512_set1_epi32(k as i32));
                _mm512_storeu_ps(target, _mm512_maskz_mov_ps(mine, g));
            }
        }
    }
}
