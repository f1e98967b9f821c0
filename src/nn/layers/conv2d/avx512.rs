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
